"""Recurrent layers (RNN with tanh and ReLU, LSTM, GRU) and their cells against torch: same
state_dict keys and shapes, outputs, final states and the gradients of the input, of the
initial states and of every parameter; dropout between layers; repr; errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import fastconv as fc

torch = pytest.importorskip("torch")

MODES = {"rnn_tanh": ("RNN", {}), "rnn_relu": ("RNN", {"nonlinearity": "relu"}),
         "lstm": ("LSTM", {}), "gru": ("GRU", {})}
H_IN, H, L, N = 4, 5, 6, 3


def _pair(mode, **kw):
    name, extra = MODES[mode]
    f = getattr(fc.nn, name)(H_IN, H, **extra, **kw)
    t = getattr(torch.nn, name)(H_IN, H, **extra, **kw)
    state = f.state_dict()
    assert list(state) == list(t.state_dict())
    for k, v in t.state_dict().items():
        assert tuple(state[k].shape) == tuple(v.shape), k
    t.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in state.items()})
    assert repr(f) == repr(t)
    return f, t


def _flat(out):
    """(output, h_n) or (output, (h_n, c_n)) -> [output, h_n(, c_n)]."""
    y, h = out
    return [y, *h] if isinstance(h, tuple) else [y, h]


def _close(a, b, what, rtol=1e-4, atol=1e-5):
    np.testing.assert_allclose(a.detach().numpy() if hasattr(a, "detach") else a.numpy(),
                               b.detach().numpy(), rtol=rtol, atol=atol, err_msg=what)


def _compare(f, t, x, states, rng):
    """Runs both on ``x`` and the initial ``states`` (list of arrays, or None for zeros),
    backpropagates the same random weights of every result and compares everything."""
    fx, tx = fc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    fs = [fc.tensor(s, requires_grad=True) for s in states or []]
    ts = [torch.tensor(s, requires_grad=True) for s in states or []]
    lstm = isinstance(f, fc.nn.LSTM)
    fh = None if states is None else (tuple(fs) if lstm else fs[0])
    th = None if states is None else (tuple(ts) if lstm else ts[0])
    fouts, touts = _flat(f(fx, fh)), _flat(t(tx, th))
    floss, tloss = 0, 0
    for i, (a, b) in enumerate(zip(fouts, touts)):
        assert tuple(a.shape) == tuple(b.shape), i
        _close(a, b, f"result {i}", rtol=1e-5)
        w = rng.standard_normal(tuple(b.shape)).astype(np.float32)
        floss = floss + (a * fc.tensor(w)).sum()
        tloss = tloss + (b * torch.tensor(w)).sum()
    floss.backward()
    tloss.backward()
    _close(fx.grad, tx.grad, "grad of input")
    for i, (a, b) in enumerate(zip(fs, ts)):
        _close(a.grad, b.grad, f"grad of hx[{i}]")
    tparams = dict(t.named_parameters())
    for name, p in f.named_parameters():
        _close(p.grad, tparams[name].grad, f"grad of {name}")


def _states(mode, layers, directions, batch, rng):
    shape = (layers * directions,) + ((batch,) if batch else ()) + (H,)
    count = 2 if mode == "lstm" else 1
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(count)]


CONFIGS = list(itertools.product(MODES, (1, 2), (False, True), (False, True)))


@pytest.mark.parametrize("mode,num_layers,bidirectional,batch_first", CONFIGS,
                         ids=[f"{m}-l{n}-{'bi' if b else 'uni'}-{'bf' if f else 'tf'}"
                              for m, n, b, f in CONFIGS])
def test_matches_torch(rng, mode, num_layers, bidirectional, batch_first):
    f, t = _pair(mode, num_layers=num_layers, bidirectional=bidirectional,
                 batch_first=batch_first)
    shape = (N, L, H_IN) if batch_first else (L, N, H_IN)
    x = rng.standard_normal(shape).astype(np.float32)
    _compare(f, t, x, _states(mode, num_layers, 1 + bidirectional, N, rng), rng)


@pytest.mark.parametrize("mode", MODES)
def test_unbatched_no_bias_and_zero_state(rng, mode):
    f, t = _pair(mode, num_layers=2, bidirectional=True, bias=False)
    assert not any("bias" in name for name, _ in f.named_parameters())
    x = rng.standard_normal((L, H_IN)).astype(np.float32)
    _compare(f, t, x, _states(mode, 2, 2, None, rng), rng)  # unbatched, with hx
    _compare(f, t, x, None, rng)  # unbatched, hx=None
    f, t = _pair(mode, batch_first=True)
    _compare(f, t, rng.standard_normal((L, H_IN)).astype(np.float32), None, rng)
    _compare(f, t, rng.standard_normal((N, L, H_IN)).astype(np.float32), None, rng)


def test_parameters_and_init():
    fc.manual_seed(0)
    gru = fc.nn.GRU(7, 16, num_layers=2, bidirectional=True)
    shapes = {k: tuple(v.shape) for k, v in gru.state_dict().items()}
    assert shapes["weight_ih_l0"] == (48, 7) and shapes["weight_hh_l0_reverse"] == (48, 16)
    assert shapes["weight_ih_l1"] == (48, 32) and shapes["bias_hh_l1_reverse"] == (48,)
    bound = 1 / 4
    for p in gru.parameters():
        values = np.abs(p.detach().numpy())
        assert values.max() <= np.float32(bound) and values.max() > 0.7 * bound
    fc.manual_seed(0)
    again = fc.nn.GRU(7, 16, num_layers=2, bidirectional=True)
    for a, b in zip(gru.parameters(), again.parameters()):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


@pytest.mark.parametrize("mode", ["rnn_tanh", "lstm", "gru"])
def test_dropout_between_layers(rng, mode):
    f, t = _pair(mode, num_layers=3, dropout=0.5)
    x = rng.standard_normal((L, N, H_IN)).astype(np.float32)

    def run():
        return [o.detach().numpy() for o in _flat(f(fc.tensor(x)))]

    fc.manual_seed(3)
    first = run()
    fc.manual_seed(3)
    np.testing.assert_array_equal(first[0], run()[0])
    f.eval()
    t.eval()
    evaluated = run()
    assert not np.allclose(first[0], evaluated[0])
    _compare(f, t, x, _states(mode, 3, 1, N, rng), rng)
    # A single layer has no layer after it to drop into: training equals eval.
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        single = getattr(fc.nn, MODES[mode][0])(H_IN, H, dropout=0.5, **MODES[mode][1])
    out_train = _flat(single(fc.tensor(x)))[0].detach().numpy()
    np.testing.assert_array_equal(out_train, _flat(single.eval()(fc.tensor(x)))[0]
                                  .detach().numpy())


def test_repr_matches_torch():
    cases = [("RNN", (3, 4), {}), ("RNN", (3, 4, 2, "relu", False, True, 0.25, True), {}),
             ("LSTM", (3, 4), {"num_layers": 2, "batch_first": True}),
             ("GRU", (3, 4), {"bias": False, "bidirectional": True})]
    for name, args, kw in cases:
        assert repr(getattr(fc.nn, name)(*args, **kw)) == repr(getattr(torch.nn, name)(*args,
                                                                                    **kw))


CELLS = [("RNNCell", {}), ("RNNCell", {"nonlinearity": "relu"}), ("RNNCell", {"bias": False}),
         ("LSTMCell", {}), ("LSTMCell", {"bias": False}), ("GRUCell", {}),
         ("GRUCell", {"bias": False})]


@pytest.mark.parametrize("name,kw", CELLS, ids=[f"{c[0]}{i}" for i, c in enumerate(CELLS)])
def test_cells_match_torch(rng, name, kw):
    f, t = getattr(fc.nn, name)(H_IN, H, **kw), getattr(torch.nn, name)(H_IN, H, **kw)
    state = f.state_dict()
    assert list(state) == list(t.state_dict())
    t.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in state.items()})
    assert repr(f) == repr(t)
    lstm = name == "LSTMCell"
    for batch in ((N,), ()):
        x = rng.standard_normal(batch + (H_IN,)).astype(np.float32)
        hs = [rng.standard_normal(batch + (H,)).astype(np.float32) for _ in range(1 + lstm)]
        for given in (True, False):
            fx, tx = fc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
            fs = [fc.tensor(h, requires_grad=True) for h in hs]
            ts = [torch.tensor(h, requires_grad=True) for h in hs]
            fh = (tuple(fs) if lstm else fs[0]) if given else None
            th = (tuple(ts) if lstm else ts[0]) if given else None
            fo, to = f(fx, fh), t(tx, th)
            fo, to = (list(fo), list(to)) if lstm else ([fo], [to])
            floss, tloss = 0, 0
            for a, b in zip(fo, to):
                assert tuple(a.shape) == tuple(b.shape)
                _close(a, b, "result", rtol=1e-5)
                w = rng.standard_normal(tuple(b.shape)).astype(np.float32)
                floss = floss + (a * fc.tensor(w)).sum()
                tloss = tloss + (b * torch.tensor(w)).sum()
            floss.backward()
            tloss.backward()
            _close(fx.grad, tx.grad, "grad of input")
            if given:
                for a, b in zip(fs, ts):
                    _close(a.grad, b.grad, "grad of hx")
            tparams = dict(t.named_parameters())
            for pname, p in f.named_parameters():
                _close(p.grad, tparams[pname].grad, f"grad of {pname}")
                p.grad = None
                tparams[pname].grad = None


def test_errors():
    lstm = fc.nn.LSTM(H_IN, H, num_layers=2)
    with pytest.raises(RuntimeError, match="input.size\\(-1\\) must be equal to input_size"):
        lstm(fc.randn(L, N, H_IN + 1))
    with pytest.raises(ValueError, match="Expected input to be 2D or 3D, got 4D"):
        lstm(fc.randn(1, L, N, H_IN))
    with pytest.raises(RuntimeError, match=r"Expected hidden\[0\] size \(2, 3, 5\)"):
        lstm(fc.randn(L, N, H_IN), (fc.randn(1, N, H), fc.randn(2, N, H)))
    with pytest.raises(RuntimeError, match="should also be 3-D"):
        lstm(fc.randn(L, N, H_IN), (fc.randn(N, H), fc.randn(N, H)))
    gru = fc.nn.GRU(H_IN, H)
    with pytest.raises(RuntimeError, match=r"Expected hidden size \(1, 3, 5\), got \[1, 2, 5\]"):
        gru(fc.randn(L, N, H_IN), fc.randn(1, 2, H))
    with pytest.raises(RuntimeError, match="should also be 2-D"):
        gru(fc.randn(L, H_IN), fc.randn(1, 1, H))

    packed = fc.nn.utils.rnn.pack_sequence([fc.randn(3, H_IN), fc.randn(2, H_IN)])
    with pytest.raises(TypeError, match="got a PackedSequence"):  # layers take them, cells not
        fc.nn.GRUCell(H_IN, H)(packed)
    with pytest.raises(NotImplementedError, match="proj_size"):
        fc.nn.LSTM(H_IN, H, proj_size=2)
    with pytest.raises(ValueError, match="Unknown nonlinearity"):
        fc.nn.RNN(H_IN, H, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="dropout should be a number"):
        fc.nn.GRU(H_IN, H, num_layers=2, dropout=1.5)
    with pytest.raises(ValueError, match="num_layers must be greater than zero"):
        fc.nn.RNN(H_IN, H, num_layers=0)
    cell = fc.nn.LSTMCell(H_IN, H)
    with pytest.raises(RuntimeError, match="inconsistent input_size"):
        cell(fc.randn(N, H_IN + 1))
    with pytest.raises(ValueError, match="Expected input to be 1D or 2D"):
        cell(fc.randn(1, N, H_IN))
    with pytest.raises(RuntimeError, match="doesn't match hidden0 batch size"):
        cell(fc.randn(N, H_IN), (fc.randn(N + 1, H), fc.randn(N, H)))
