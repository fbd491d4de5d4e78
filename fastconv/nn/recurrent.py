"""Recurrent layers with PyTorch's names, arguments, parameter layout and semantics: the
multi-layer ``RNN`` (tanh or ReLU), ``LSTM`` and ``GRU``, and the single-step ``RNNCell``,
``LSTMCell`` and ``GRUCell``.

Everything is built from differentiable Tensor ops (``linear``, ``sigmoid``, ``tanh``,
``relu``, ``chunk``, ``stack``, ``cat``), so autograd needs nothing new. For each layer and
direction the input projection ``x W_ih^T + b_ih`` of every time step is one matmul; only
the recurrent part ``h W_hh^T + b_hh`` runs in a Python loop over time.

Gates are stacked in PyTorch's order, so a state_dict moves between fastconv and torch
unchanged:

- RNN:  h' = act(W_ih x + b_ih + W_hh h + b_hh)
- LSTM: rows of W are (i, f, g, o); c' = f * c + i * g, h' = o * tanh(c')
- GRU:  rows of W are (r, z, n); n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),
  h' = (1 - z) * n + z * h   (Cho et al., 2014, with the reset gate applied as cuDNN does)

The layers also take a PackedSequence (fastconv.nn.utils.rnn) and return one: each time
step runs on the sequences that have it, and each final state is taken at its sequence's
last step. LSTM projections (``proj_size > 0``) are not supported.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from fastconv import functional as F
from fastconv.nn import init
from fastconv.nn.module import Module, Parameter, factory_kwargs
from fastconv.nn.utils.rnn import PackedSequence, check_packed
from fastconv.tensor import Tensor
from fastconv.toplevel import cat, stack

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _reject_packed(input, name: str) -> None:
    if isinstance(input, PackedSequence):
        raise TypeError(f"{name}: input must be a Tensor, got a PackedSequence (a cell runs "
                        "one time step; nn.RNN, nn.LSTM and nn.GRU take PackedSequences)")
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}: input must be a Tensor, got {type(input).__name__}")


# One time step of each cell type. ``xp`` is the input projection W_ih x + b_ih (already
# computed for all steps); ``h``/``c`` are (N, H); the result is the new state.

def _rnn_step(xp, h, w_hh, b_hh, relu: bool):
    pre = xp + F.linear(h, w_hh, b_hh)
    return F.relu(pre) if relu else F.tanh(pre)


def _lstm_step(xp, h, c, w_hh, b_hh):
    i, f, g, o = (xp + F.linear(h, w_hh, b_hh)).chunk(4, -1)
    c = F.sigmoid(f) * c + F.sigmoid(i) * F.tanh(g)
    return F.sigmoid(o) * F.tanh(c), c


def _gru_step(xp, h, w_hh, b_hh):
    xr, xz, xn = xp.chunk(3, -1)
    hr, hz, hn = F.linear(h, w_hh, b_hh).chunk(3, -1)
    r = F.sigmoid(xr + hr)
    z = F.sigmoid(xz + hz)
    n = F.tanh(xn + r * hn)
    return (1 - z) * n + z * h


class RNNBase(Module):
    """Shared by RNN, LSTM and GRU: argument checks, parameters, the layer/direction loop."""

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, proj_size=0, device=None,
                 dtype=None):
        super().__init__()
        if (not isinstance(dropout, numbers.Number) or isinstance(dropout, bool)
                or not 0 <= dropout <= 1):
            raise ValueError("dropout should be a number in range [0, 1] representing the "
                             "probability of an element being zeroed")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, "
                          "so non-zero dropout expects num_layers greater than 1, but got "
                          f"dropout={dropout} and num_layers={num_layers}", stacklevel=3)
        for name, value, kind in (("bias", bias, bool), ("batch_first", batch_first, bool),
                                  ("input_size", input_size, int),
                                  ("hidden_size", hidden_size, int)):
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise TypeError(f"{name} should be of type {kind.__name__}, got: "
                                f"{type(value).__name__}")
        if input_size <= 0:
            raise ValueError("input_size must be greater than zero")
        if hidden_size <= 0:
            raise ValueError("hidden_size must be greater than zero")
        if num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable "
                             "projections")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if proj_size > 0:
            raise NotImplementedError("LSTM with proj_size > 0 is not supported by fastconv")
        if mode not in _GATES:
            raise ValueError("Unrecognized RNN mode: " + mode)
        self.mode = mode
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first = bias, batch_first
        self.dropout, self.bidirectional = float(dropout), bidirectional
        self.proj_size = proj_size
        gate_size = _GATES[mode] * hidden_size
        directions = 2 if bidirectional else 1
        # Registration order = torch's: per layer, per direction, w_ih, w_hh, b_ih, b_hh.
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * directions
            for direction in range(directions):
                sfx = self._suffix(layer, direction)
                shapes = [("weight_ih", (gate_size, layer_input)),
                          ("weight_hh", (gate_size, hidden_size))]
                if bias:
                    shapes += [("bias_ih", (gate_size,)), ("bias_hh", (gate_size,))]
                for name, shape in shapes:
                    setattr(self, name + sfx, Parameter(np.empty(shape, np.float32)))
        self.reset_parameters()
        factory_kwargs(self, device, dtype)

    @staticmethod
    def _suffix(layer: int, direction: int) -> str:
        return f"_l{layer}" + ("_reverse" if direction == 1 else "")

    def reset_parameters(self):
        """U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)) for every weight and bias, as torch."""
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def _weights(self, layer: int, direction: int):
        sfx = self._suffix(layer, direction)
        get = lambda name: getattr(self, name + sfx, None)  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")

    def _check_hidden(self, hx, expected, msg="Expected hidden size {}, got {}"):
        if tuple(hx.shape) != expected:
            raise RuntimeError(msg.format(expected, list(hx.shape)))

    def _step(self, xp, h, c, w_hh, b_hh):
        if self.mode == "LSTM":
            return _lstm_step(xp, h, c, w_hh, b_hh)
        if self.mode == "GRU":
            return _gru_step(xp, h, w_hh, b_hh), None
        return _rnn_step(xp, h, w_hh, b_hh, self.mode == "RNN_RELU"), None

    def _run_direction(self, x, batch_sizes, h, c, layer, direction):
        """One layer in one direction over a packed sequence: ``x`` (sum(batch_sizes), H_in)
        holds the time steps one after the other, step t as its first batch_sizes[t] rows
        (non-increasing: the sequences sorted by decreasing length); ``h``/``c`` are
        (batch_sizes[0], H). A padded batch (L, N, H_in) is the case batch_sizes = [N] * L.

        Returns the outputs (sum(batch_sizes), H) in the same layout and the final states,
        each sequence's taken at its own last step: going forward, a sequence's state is
        final when the batch shrinks past it; going backward, a sequence starts at its last
        step from its initial state, joining the batch when the batch grows to include it.
        """
        w_ih, w_hh, b_ih, b_hh = self._weights(layer, direction)
        xp = F.linear(x, w_ih, b_ih)  # every time step's input projection in one matmul
        offsets = np.concatenate([[0], np.cumsum(batch_sizes)]).tolist()
        lstm = self.mode == "LSTM"
        outs = [None] * len(batch_sizes)
        if direction == 0:
            done_h, done_c = [], []
            last = batch_sizes[0]
            for t, b in enumerate(batch_sizes):
                if b < last:  # sequences b .. last-1 ended at step t-1
                    done_h.append(h[b:last])
                    h = h[:b]
                    if lstm:
                        done_c.append(c[b:last])
                        c = c[:b]
                    last = b
                h, c = self._step(xp[offsets[t]:offsets[t + 1]], h, c, w_hh, b_hh)
                outs[t] = h
            if done_h:  # back in batch order: the longest sequences first
                h = cat([h] + done_h[::-1], 0)
                c = cat([c] + done_c[::-1], 0) if lstm else None
        else:
            h0, c0 = h, c
            last = batch_sizes[-1]
            if last < batch_sizes[0]:
                h = h0[:last]
                c = c0[:last] if lstm else None
            for t in range(len(batch_sizes) - 1, -1, -1):
                b = batch_sizes[t]
                if b > last:  # sequences last .. b-1 have their last step at t
                    h = cat([h, h0[last:b]], 0)
                    c = cat([c, c0[last:b]], 0) if lstm else None
                    last = b
                h, c = self._step(xp[offsets[t]:offsets[t + 1]], h, c, w_hh, b_hh)
                outs[t] = h
        return (outs[0] if len(outs) == 1 else cat(outs, 0)), h, c

    def _check_states(self, hs, lstm, is_batched, packed):
        """Check the rank of the initial states (h_0, and c_0 for LSTM)."""
        want = 3 if is_batched else 2
        if any(h.dim() != want for h in hs):
            kind = "PackedSequence (batched)" if packed else \
                ("batched 3-D" if is_batched else "unbatched 2-D")
            got = ", ".join(f"{h.dim()}-D" for h in hs)
            raise RuntimeError(f"For {kind} input, hx{' and cx' if lstm else ''} should also "
                               f"be {want}-D but got ({got}) tensor{'s' if lstm else ''}")

    def forward(self, input, hx=None):
        """``input``: (L, N, H_in), (N, L, H_in) with batch_first, unbatched (L, H_in), or a
        PackedSequence (then the output is one too, and each sequence's final state is taken
        at its own length; ``hx`` is indexed by the batch as given, as in torch)."""
        name = type(self).__name__
        lstm = self.mode == "LSTM"
        packed = isinstance(input, PackedSequence)
        hs = list(hx) if lstm and hx is not None else ([hx] if hx is not None else [])
        if lstm and hx is not None and len(hs) != 2:
            raise RuntimeError("LSTM: hx must be a tuple (h_0, c_0)")
        if packed:
            batch_sizes = check_packed(input, name)
            data = input.data
            if data.dim() != 2:
                raise RuntimeError(f"{name}: a PackedSequence's data must be 2-D (steps, "
                                   f"input_size), got {data.dim()}-D")
            is_batched, batch = True, batch_sizes[0]
            self._check_states(hs, lstm, True, True)
        else:
            _reject_packed(input, name)
            if input.dim() not in (2, 3):
                raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.dim()}D "
                                 "tensor instead")
            is_batched = input.dim() == 3
            batch_dim = 0 if self.batch_first else 1
            self._check_states(hs, lstm, is_batched, False)
            if not is_batched:
                input = input.unsqueeze(batch_dim)
                hs = [h.unsqueeze(1) for h in hs]
            if self.batch_first:
                input = input.transpose(0, 1)
            steps, batch = input.shape[0], input.shape[1]
            if steps == 0:
                raise RuntimeError("Expected sequence length to be larger than 0 in RNN")
            batch_sizes = [batch] * steps
            data = input.reshape(steps * batch, input.shape[-1])
        if self.input_size != data.shape[-1]:
            raise RuntimeError("input.size(-1) must be equal to input_size. Expected "
                               f"{self.input_size}, got {data.shape[-1]}")
        directions = 2 if self.bidirectional else 1
        expected = (self.num_layers * directions, batch, self.hidden_size)
        if hs:
            for i, h in enumerate(hs):
                msg = f"Expected hidden[{i}] size {{}}, got {{}}" if lstm else \
                    "Expected hidden size {}, got {}"
                self._check_hidden(h, expected, msg)
            if packed and input.sorted_indices is not None:
                # hx follows the batch as the user gave it; the packed batch is sorted
                hs = [h.index_select(1, input.sorted_indices) for h in hs]
        else:
            hs = [data.new_zeros(*expected) for _ in range(2 if lstm else 1)]

        x = data
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outs = []
            for direction in range(directions):
                k = layer * directions + direction
                out, h, c = self._run_direction(x, batch_sizes, hs[0][k],
                                                hs[1][k] if lstm else None, layer, direction)
                outs.append(out)
                h_n.append(h)
                c_n.append(c)
            x = outs[0] if directions == 1 else cat(outs, -1)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)

        h_n = stack(h_n, 0)
        c_n = stack(c_n, 0) if lstm else None
        if packed:
            output = PackedSequence(x, input.batch_sizes, input.sorted_indices,
                                    input.unsorted_indices)
            if input.unsorted_indices is not None:
                h_n = h_n.index_select(1, input.unsorted_indices)
                c_n = c_n.index_select(1, input.unsorted_indices) if lstm else None
            return (output, (h_n, c_n)) if lstm else (output, h_n)
        output = x.reshape(len(batch_sizes), batch, x.shape[-1])
        if self.batch_first:
            output = output.transpose(0, 1)
        if not is_batched:
            output = output.squeeze(batch_dim)
            h_n = h_n.squeeze(1)
            c_n = c_n.squeeze(1) if lstm else None
        return (output, (h_n, c_n)) if lstm else (output, h_n)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s


class RNN(RNNBase):
    """Elman RNN, h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh) with act tanh or ReLU,
    stacked ``num_layers`` deep, as ``torch.nn.RNN``.

    Arguments: input_size, hidden_size, num_layers=1, nonlinearity='tanh', bias=True,
    batch_first=False, dropout=0.0 (on each layer's output but the last, in training),
    bidirectional=False. ``forward(input, hx=None)`` takes (L, N, H_in), (N, L, H_in) with
    batch_first, or unbatched (L, H_in), and returns (output, h_n).
    """

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or "
                             "'relu'.")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size,
                         hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory (Hochreiter and Schmidhuber, 1997), as ``torch.nn.LSTM``:

        i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of (W_ih x + b_ih + W_hh h + b_hh)
        c' = f * c + i * g,   h' = o * tanh(c')

    Arguments as ``RNN`` (without nonlinearity) plus proj_size=0 (only 0 is supported).
    ``forward(input, hx=None)`` with hx = (h_0, c_0) returns (output, (h_n, c_n)).
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, device=device, dtype=dtype)


class GRU(RNNBase):
    """Gated recurrent unit (Cho et al., 2014), as ``torch.nn.GRU``:

        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr),  z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h' = (1 - z) * n + z * h

    Arguments as ``RNN`` without nonlinearity. ``forward(input, hx=None)`` returns
    (output, h_n).
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device=device, dtype=dtype)


class RNNCellBase(Module):
    """Shared by the cells: parameters weight_ih (G*H, H_in), weight_hh (G*H, H), bias_ih and
    bias_hh (G*H), and the input checks."""

    def __init__(self, input_size, hidden_size, bias, num_chunks, device=None, dtype=None):
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self.weight_ih = Parameter(np.empty((num_chunks * hidden_size, input_size), np.float32))
        self.weight_hh = Parameter(np.empty((num_chunks * hidden_size, hidden_size),
                                            np.float32))
        if bias:
            self.bias_ih = Parameter(np.empty(num_chunks * hidden_size, np.float32))
            self.bias_hh = Parameter(np.empty(num_chunks * hidden_size, np.float32))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()
        factory_kwargs(self, device, dtype)

    def reset_parameters(self):
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def _prepare(self, input, hx, n_states):
        """Checks the ranks and sizes; returns the batched input, the batched states (zeros
        when hx is None) and whether the input was batched."""
        name = type(self).__name__
        _reject_packed(input, name)
        if input.dim() not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.dim()}D "
                             "instead")
        states = [] if hx is None else (list(hx) if n_states == 2 else [hx])
        for h in states:
            if h.dim() not in (1, 2):
                raise ValueError(f"{name}: Expected hidden to be 1D or 2D, got {h.dim()}D "
                                 "instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"input has inconsistent input_size: got {input.shape[-1]} "
                               f"expected {self.input_size}")
        is_batched = input.dim() == 2
        if not is_batched:
            input = input.unsqueeze(0)
            states = [h.unsqueeze(0) for h in states]
        if not states:
            states = [input.new_zeros(input.shape[0], self.hidden_size)
                      for _ in range(n_states)]
        for i, h in enumerate(states):
            if h.shape[0] != input.shape[0]:
                raise RuntimeError(f"Input batch size {input.shape[0]} doesn't match "
                                   f"hidden{i} batch size {h.shape[0]}")
            if h.shape[1] != self.hidden_size:
                raise RuntimeError(f"hidden{i} has inconsistent hidden_size: got "
                                   f"{h.shape[1]}, expected {self.hidden_size}")
        return input, states, is_batched

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s


class RNNCell(RNNCellBase):
    """One step of ``RNN``: h' = act(W_ih x + b_ih + W_hh h + b_hh), act tanh or ReLU.
    ``forward(input, hx=None)`` with input (N, H_in) or (H_in) returns h'."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None,
                 dtype=None):
        super().__init__(input_size, hidden_size, bias, num_chunks=1, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        if self.nonlinearity not in ("tanh", "relu"):
            raise RuntimeError(f"Unknown nonlinearity: {self.nonlinearity}")
        x, (h,), is_batched = self._prepare(input, hx, 1)
        h = _rnn_step(F.linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh,
                      self.bias_hh, self.nonlinearity == "relu")
        return h if is_batched else h.squeeze(0)


class LSTMCell(RNNCellBase):
    """One step of ``LSTM``. ``forward(input, hx=None)`` with hx = (h, c) returns (h', c')."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, num_chunks=4, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        x, (h, c), is_batched = self._prepare(input, hx, 2)
        h, c = _lstm_step(F.linear(x, self.weight_ih, self.bias_ih), h, c, self.weight_hh,
                          self.bias_hh)
        return (h, c) if is_batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(RNNCellBase):
    """One step of ``GRU``. ``forward(input, hx=None)`` returns h'."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, num_chunks=3, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        x, (h,), is_batched = self._prepare(input, hx, 1)
        h = _gru_step(F.linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh,
                      self.bias_hh)
        return h if is_batched else h.squeeze(0)
