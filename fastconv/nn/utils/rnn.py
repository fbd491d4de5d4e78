"""``torch.nn.utils.rnn``: batches of sequences of different lengths, padded or packed.

A PackedSequence keeps only the real time steps: ``data`` holds step 0 of every sequence,
then step 1 of every sequence still running, and so on, the sequences in order of
decreasing length; ``batch_sizes[t]`` is how many sequences have a step t. ``sorted_indices``
gives, for each position of that order, the sequence's index in the batch as the user gave
it (None when the batch was already sorted), and ``unsorted_indices`` the inverse
permutation. The recurrent layers (nn.RNN, nn.LSTM, nn.GRU) take and return
PackedSequences, so padded steps are never computed and each final state is taken at its
sequence's last real step.

    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, h_n = gru(packed)
    y, lengths = pad_packed_sequence(out, batch_first=True)

Every function is differentiable: packing and padding are one gather / one scatter of rows
(``index_select`` / ``index_copy``), so gradients flow back to the padded input (zero at
padded positions) and to the sequences.

Where fastconv differs on purpose:

* A length greater than the input's time dimension raises a RuntimeError (torch reads past
  the end of the input), and so does one greater than the padded length in unpad_sequence.
* With ``enforce_sorted=False`` equal lengths keep their order in the batch (a stable sort);
  torch's sort may order ties either way, which changes the row order of ``data`` (never the
  padded results or the final states).
* ``unpad_sequence`` leaves its input alone (torch's transposes it in place when
  ``batch_first=False``).
"""

from __future__ import annotations

import numbers
from collections import namedtuple
from collections.abc import Iterable

import numpy as np

from fastconv.tensor import Tensor, _as_array

__all__ = ["PackedSequence", "invert_permutation", "pack_padded_sequence", "pack_sequence",
           "pad_packed_sequence", "pad_sequence", "unpack_sequence", "unpad_sequence"]


def _host_ints(t) -> np.ndarray:
    """The values of an index Tensor (on any device), a list or an array, as host int64."""
    if isinstance(t, Tensor):
        t = t.detach().__array__()
    return np.asarray(t).astype(np.int64)


def _cpu_int64(values) -> Tensor:
    return Tensor(np.asarray(values, dtype=np.int64))


def invert_permutation(permutation: Tensor | None) -> Tensor | None:
    """The inverse of the permutation ``permutation`` (1-D): ``out[permutation[i]] = i``;
    None for None."""
    if permutation is None:
        return None
    perm = _host_ints(permutation).reshape(-1)
    out = np.empty_like(perm)
    out[perm] = np.arange(perm.size, dtype=np.int64)
    return Tensor(_as_array(out, permutation.device if isinstance(permutation, Tensor)
                            else "cpu"))


_PackedSequenceBase = namedtuple("PackedSequence_", ["data", "batch_sizes", "sorted_indices",
                                                     "unsorted_indices"])


class PackedSequence(_PackedSequenceBase):
    """A batch of sequences of different lengths without their padding (module docstring).

    Fields, as torch's (a named tuple, so ``data, batch_sizes, sorted_indices,
    unsorted_indices = packed`` works):
        data: (sum of the lengths, *) the steps, time step by time step.
        batch_sizes: int64 CPU Tensor, the number of sequences at each time step.
        sorted_indices, unsorted_indices: int64 Tensors on data's device, or None.

    Made by :func:`pack_padded_sequence` or :func:`pack_sequence` (constructing one by hand
    takes the same fields; ``unsorted_indices`` is derived from ``sorted_indices`` when
    omitted). ``to()``, ``cuda()``, ``cpu()`` and the dtype methods convert ``data`` and move
    the indices along with it, returning ``self`` when nothing changes.
    """

    __slots__ = ()

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if batch_sizes is None:  # PackedSequence((data, batch_sizes)), as torch allows
            if not (isinstance(data, (list, tuple)) and len(data) == 2):
                raise TypeError("PackedSequence: give data and batch_sizes, or one (data, "
                                f"batch_sizes) pair; got {type(data).__name__} alone")
            data, batch_sizes = data
        if not isinstance(batch_sizes, Tensor):
            batch_sizes = _cpu_int64(batch_sizes)
        elif batch_sizes.device != "cpu":
            raise ValueError("batch_sizes should always be on CPU. Instances of PackedSequence "
                             "should never be created manually. They should be instantiated "
                             "by functions like pack_sequence and pack_padded_sequences in "
                             "nn.utils.rnn.")
        if unsorted_indices is None:
            unsorted_indices = invert_permutation(sorted_indices)
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def _with_data(self, data: Tensor) -> PackedSequence:
        if data is self.data:
            return self
        move = lambda t: None if t is None else t.to(data.device)  # noqa: E731
        return type(self)(data, self.batch_sizes, move(self.sorted_indices),
                          move(self.unsorted_indices))

    def to(self, *args, **kwargs) -> PackedSequence:
        """``data.to(*args, **kwargs)``, the indices moved to data's new device."""
        return self._with_data(self.data.to(*args, **kwargs))

    def cuda(self, *args, **kwargs) -> PackedSequence:
        return self._with_data(self.data.cuda(*args, **kwargs))

    def cpu(self, *args, **kwargs) -> PackedSequence:
        return self._with_data(self.data.cpu(*args, **kwargs))

    def double(self) -> PackedSequence:
        return self._with_data(self.data.double())

    def float(self) -> PackedSequence:
        return self._with_data(self.data.float())

    def half(self) -> PackedSequence:
        return self._with_data(self.data.half())

    def long(self) -> PackedSequence:
        return self._with_data(self.data.long())

    def int(self) -> PackedSequence:
        return self._with_data(self.data.int())

    def short(self) -> PackedSequence:
        return self._with_data(self.data.short())

    def char(self) -> PackedSequence:
        return self._with_data(self.data.char())

    def byte(self) -> PackedSequence:
        return self._with_data(self.data.byte())

    def pin_memory(self) -> PackedSequence:
        return self._with_data(self.data.pin_memory())

    def is_pinned(self) -> bool:
        return self.data.is_pinned()

    @property
    def is_cuda(self) -> bool:
        return self.data.is_cuda


def check_packed(sequence, op: str) -> list[int]:
    """Check that ``sequence`` is a consistent PackedSequence; returns its batch sizes as
    Python ints."""
    if not isinstance(sequence, PackedSequence):
        raise TypeError(f"{op}: expected a PackedSequence, got {type(sequence).__name__}")
    data, batch_sizes, sorted_indices, _ = sequence
    if not isinstance(data, Tensor) or data.ndim < 1:
        raise RuntimeError(f"{op}: PackedSequence.data must be a Tensor of shape (sum of the "
                           f"lengths, *), got {getattr(data, 'shape', type(data).__name__)}")
    bs = _host_ints(batch_sizes)
    if bs.ndim != 1 or bs.size == 0 or bs.min() <= 0 or np.any(np.diff(bs) > 0):
        raise RuntimeError(f"{op}: PackedSequence.batch_sizes must be a non-empty 1-D tensor of "
                           f"positive, non-increasing sizes, got {bs.tolist()}")
    if int(bs.sum()) != data.shape[0]:
        raise RuntimeError(f"{op}: PackedSequence.data has {data.shape[0]} rows but "
                           f"batch_sizes add up to {int(bs.sum())}")
    if sorted_indices is not None and tuple(sorted_indices.shape) != (int(bs[0]),):
        raise RuntimeError(f"{op}: PackedSequence.sorted_indices must hold one index per "
                           f"sequence ({int(bs[0])}), got shape {tuple(sorted_indices.shape)}")
    return [int(b) for b in bs]


def _lengths(lengths, op: str) -> np.ndarray:
    if isinstance(lengths, Tensor):
        if lengths.ndim != 1:
            raise RuntimeError(f"'lengths' argument should be a 1D CPU int64 tensor, but got "
                               f"{lengths.ndim}D {lengths.device} {lengths.dtype} tensor")
        return _host_ints(lengths)
    try:
        out = np.asarray(lengths)
    except (TypeError, ValueError):
        out = None
    if out is None or out.ndim != 1 or out.dtype.kind not in "iuf":
        raise TypeError(f"{op}: lengths must be a 1-D list or Tensor of integers, got "
                        f"{lengths!r}")
    return out.astype(np.int64)


def pack_padded_sequence(input: Tensor, lengths, batch_first: bool = False,
                         enforce_sorted: bool = True) -> PackedSequence:
    """Pack a padded batch of sequences: ``input`` is (T, B, *) (or (B, T, *) with
    ``batch_first``) and sequence b has ``lengths[b]`` real steps (its first ones).

    Args:
        input: the padded batch (any dtype; at least 2 dims).
        lengths: the B lengths (a list or a 1-D Tensor), each in [1, T].
        batch_first: whether ``input`` is (B, T, *).
        enforce_sorted: the lengths must already decrease along the batch (then
            ``sorted_indices`` is None); with False the batch is sorted here.
    Returns a PackedSequence whose ``data`` is differentiable with respect to ``input``.
    """
    op = "pack_padded_sequence"
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: input must be a fastconv.Tensor, got {type(input).__name__}")
    lengths = _lengths(lengths, op)
    if input.ndim < 2:
        raise IndexError(f"{op}: input must be (T, B, *) or (B, T, *) with at least 2 dims, "
                         f"got shape {tuple(input.shape)}")
    if input.numel() == 0:
        raise RuntimeError("Cannot pack empty tensors.")
    t_dim, b_dim = (1, 0) if batch_first else (0, 1)
    steps, batch = input.shape[t_dim], input.shape[b_dim]
    if lengths.size != batch:
        raise RuntimeError(f"Expected `len(lengths)` to be equal to batch_size, but got "
                           f"{lengths.size} (batch_size={batch})")
    order = None
    if not enforce_sorted:
        order = np.argsort(-lengths, kind="stable")
        lengths = lengths[order]
    if lengths[-1] <= 0:
        raise RuntimeError("Length of all samples has to be greater than 0, but found an "
                           "element in 'lengths' that is <= 0")
    if np.any(np.diff(lengths) > 0):
        raise RuntimeError("`lengths` array must be sorted in decreasing order when "
                           "`enforce_sorted` is True. You can pass `enforce_sorted=False` to "
                           "pack_padded_sequence and/or pack_sequence to sidestep this "
                           "requirement if you do not need ONNX exportability.")
    if lengths[0] > steps:
        raise RuntimeError(f"{op}: a sequence length ({int(lengths[0])}) is greater than the "
                           f"input's time dimension (dim {t_dim}, of size {steps})")
    max_len = int(lengths[0])
    batch_sizes = (lengths[None, :] > np.arange(max_len)[:, None]).sum(axis=1)
    # (t, j) for every packed row, in packed order: time steps, then sorted positions
    t_idx, j_idx = np.nonzero(lengths[None, :] > np.arange(max_len)[:, None])
    b_idx = j_idx if order is None else order[j_idx]
    rows = b_idx * steps + t_idx if batch_first else t_idx * batch + b_idx
    data = input.reshape(steps * batch, *input.shape[2:]).index_select(0, rows)
    sorted_indices = None if order is None else Tensor(_as_array(order, input.device))
    return PackedSequence(data, _cpu_int64(batch_sizes), sorted_indices, None)


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False,
                        padding_value=0.0, total_length: int | None = None):
    """The inverse of :func:`pack_padded_sequence`: (padded, lengths).

    ``padded`` is (T, B, *) (or (B, T, *) with ``batch_first``), T the longest length (or
    ``total_length``, which must be at least that), the batch in the order it was packed
    from, padded with ``padding_value``; ``lengths`` is an int64 CPU Tensor. Differentiable
    with respect to ``sequence.data``.
    """
    op = "pad_packed_sequence"
    bs = np.asarray(check_packed(sequence, op), dtype=np.int64)
    data = sequence.data
    max_len = bs.size
    if total_length is not None:
        if not isinstance(total_length, numbers.Integral) or isinstance(total_length, bool):
            raise TypeError(f"{op}: total_length must be an int, got "
                            f"{type(total_length).__name__}")
        if total_length < max_len:
            raise ValueError("Expected total_length to be at least the length of the longest "
                             f"sequence in input, but got total_length={total_length} and max "
                             f"sequence length being {max_len}")
        max_len = int(total_length)
    batch = int(bs[0])
    lengths = (bs[None, :] > np.arange(batch)[:, None]).sum(axis=1)  # sorted order
    j_idx = np.concatenate([np.arange(b) for b in bs])
    t_idx = np.repeat(np.arange(bs.size), bs)
    order = None
    if sequence.unsorted_indices is not None:
        unsorted = _host_ints(sequence.unsorted_indices)
        order = np.empty_like(unsorted)
        order[unsorted] = np.arange(unsorted.size)  # the sorted position -> batch index
        lengths = lengths[unsorted]
    b_idx = j_idx if order is None else order[j_idx]
    rows = b_idx * max_len + t_idx if batch_first else t_idx * batch + b_idx
    rest = tuple(data.shape[1:])
    padded = data.new_full((max_len * batch,) + rest, padding_value).index_copy(0, rows, data)
    shape = (batch, max_len) if batch_first else (max_len, batch)
    return padded.reshape(*shape, *rest), _cpu_int64(lengths)


def pad_sequence(sequences, batch_first: bool = False, padding_value=0.0,
                 padding_side: str = "right") -> Tensor:
    """Stack sequences of shapes (L_i, *) into one (T, B, *) Tensor ((B, T, *) with
    ``batch_first``), T the longest L_i, filling with ``padding_value`` after each sequence
    (``padding_side="right"``) or before it ("left"). Differentiable in every sequence."""
    from fastconv.toplevel import cat

    if not isinstance(sequences, Iterable):
        raise RuntimeError("pad_sequence: Expected iterable for input sequences, but got arg "
                           f"of type: {type(sequences)}")
    sequences = tuple(sequences)
    if not sequences:
        raise RuntimeError("received an empty list of sequences")
    if padding_side not in ("left", "right"):
        raise RuntimeError(f"Expected padding_side to be one of left or right, but got "
                           f"{padding_side}.")
    for i, s in enumerate(sequences):
        if not isinstance(s, Tensor):
            raise TypeError(f"pad_sequence: sequence {i} is a {type(s).__name__}, expected a "
                            "fastconv.Tensor")
        if s.ndim == 0:
            raise RuntimeError(f"pad_sequence: sequence {i} is 0-d; each sequence needs a "
                               "first dim (its length)")
        if s.shape[1:] != sequences[0].shape[1:]:
            raise RuntimeError(f"pad_sequence: sequence {i} has shape {tuple(s.shape)}, whose "
                               f"trailing dims do not match {tuple(sequences[0].shape[1:])} "
                               "of sequence 0")
    lens = np.array([s.shape[0] for s in sequences], dtype=np.int64)
    batch, max_len, rest = len(sequences), int(lens.max()), tuple(sequences[0].shape[1:])
    b_idx = np.repeat(np.arange(batch), lens)
    t_idx = np.concatenate([np.arange(n) for n in lens])
    if padding_side == "left":
        t_idx = t_idx + np.repeat(max_len - lens, lens)
    rows = b_idx * max_len + t_idx if batch_first else t_idx * batch + b_idx
    data = cat(list(sequences), 0) if batch > 1 else sequences[0]
    padded = data.new_full((max_len * batch,) + rest, padding_value).index_copy(0, rows, data)
    shape = (batch, max_len) if batch_first else (max_len, batch)
    return padded.reshape(*shape, *rest)


def unpad_sequence(padded_sequences: Tensor, lengths, batch_first: bool = False) -> list:
    """The sequences of a padded batch (T, B, *) ((B, T, *) with ``batch_first``) as a list
    of (L_i, *) Tensors, L_i = lengths[i] (right padding). Differentiable."""
    op = "unpad_sequence"
    if not isinstance(padded_sequences, Tensor) or padded_sequences.ndim < 2:
        raise TypeError(f"{op}: padded_sequences must be a Tensor of at least 2 dims, got "
                        f"{getattr(padded_sequences, 'shape', type(padded_sequences).__name__)}")
    lengths = _lengths(lengths, op)
    batch = padded_sequences.shape[0 if batch_first else 1]
    steps = padded_sequences.shape[1 if batch_first else 0]
    if lengths.size != batch:
        raise ValueError(f"{op}: got {lengths.size} lengths for a batch of {batch} sequences")
    if lengths.size and (lengths.min() < 0 or lengths.max() > steps):
        raise ValueError(f"{op}: lengths must be in [0, {steps}] (the padded length), got "
                         f"{lengths.tolist()}")
    if batch_first:
        return [padded_sequences[i, :n] for i, n in enumerate(lengths.tolist())]
    return [padded_sequences[:n, i] for i, n in enumerate(lengths.tolist())]


def pack_sequence(sequences, enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of sequences of shapes (L_i, *): ``pad_sequence`` then
    ``pack_padded_sequence``. With ``enforce_sorted`` the L_i must decrease."""
    sequences = list(sequences) if isinstance(sequences, Iterable) else sequences
    padded = pad_sequence(sequences)
    return pack_padded_sequence(padded, [s.shape[0] for s in sequences],
                                enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences: PackedSequence) -> list:
    """The sequences of a PackedSequence as a list of (L_i, *) Tensors, in the batch's
    original order."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
