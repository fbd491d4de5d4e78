"""Regressions from a randomized parity sweep of the public ops against torch: each case is a
configuration torch accepts where fastconv raised, or computed a different value or gradient.

Every test runs the same float32 data through fastconv and through torch (float64 autograd),
with a random upstream gradient, and compares the output and the gradient of every input.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import fastconv as fc
import fastconv.functional as F
from fastconv import nn

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _run(fn, arrays, grad, lib, seed=0):
    """fn(*tensors) in fastconv ("fc") or torch float64 ("torch"): (output, grads)."""
    if lib == "fc":
        ts = [fc.tensor(a, requires_grad=g) for a, g in zip(arrays, grad)]
    else:
        ts = [torch.tensor(a.astype(np.float64) if a.dtype.kind == "f" else a, requires_grad=g)
              for a, g in zip(arrays, grad)]
    y = fn(*ts)
    dy = np.random.default_rng(seed).standard_normal(tuple(y.shape))
    if lib == "fc":
        y.backward(fc.tensor(dy.astype(np.float32)))
        return y.detach().numpy(), [t.grad.numpy() if g else None for t, g in zip(ts, grad)]
    y.backward(torch.tensor(dy))
    return y.detach().numpy(), [t.grad.numpy() if g else None for t, g in zip(ts, grad)]


def _check(fc_fn, torch_fn, arrays, grad=None, rtol=1e-4, atol=1e-5):
    grad = [a.dtype.kind == "f" for a in arrays] if grad is None else grad
    y, gs = _run(fc_fn, arrays, grad, "fc")
    ty, tgs = _run(torch_fn, arrays, grad, "torch")
    scale = max(float(np.abs(ty).max()), 1.0) if ty.size else 1.0
    np.testing.assert_allclose(y, ty, rtol=rtol, atol=atol * scale)
    for g, tg in zip(gs, tgs):
        if tg is not None:
            scale = max(float(np.abs(tg).max()), 1.0) if tg.size else 1.0
            np.testing.assert_allclose(g, tg, rtol=rtol, atol=atol * scale)


# ----------------------------------------------------------------------------- wrong refusals

@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_pad_negative_amounts_crop_as_torch(mode):
    # reflect and replicate pad and then crop; circular crops and then wraps what is left
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    for pads in [(-1, 2, 0, 0), (2, -1, -2, 1), (-2, -1, 1, -1), (1, 1, -1, 0)]:
        _check(lambda t: F.pad(t, pads, mode=mode), lambda t: TF.pad(t, pads, mode=mode), [x])


def test_pad_circular_wrap_longer_than_the_crop_leaves_is_refused():
    # torch reads uninitialised memory here; fastconv refuses
    x = fc.tensor(np.random.default_rng(2).standard_normal((1, 1, 3)).astype(np.float32))
    with pytest.raises(ValueError, match="more than once"):
        F.pad(x, (3, -1), mode="circular")


def test_local_response_norm_5d_and_6d_input():
    rng = np.random.default_rng(3)
    for shape in [(2, 7, 3, 2, 4), (1, 5, 2, 2, 3, 2)]:
        x = (rng.standard_normal(shape) * 2).astype(np.float32)
        _check(lambda t: F.local_response_norm(t, 3, alpha=0.5, beta=0.75, k=2.0),
               lambda t: TF.local_response_norm(t, 3, alpha=0.5, beta=0.75, k=2.0), [x])
        _check(lambda t: nn.LocalResponseNorm(4, 0.1, 1.0, 1.0)(t),
               lambda t: torch.nn.LocalResponseNorm(4, 0.1, 1.0, 1.0)(t), [x])


def test_batch_norm_6d_input():
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((2, 3, 2, 3, 2, 2)) * 2 + 1).astype(np.float32)
    w, b = rng.standard_normal(3).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    rm, rv = rng.standard_normal(3).astype(np.float32), rng.uniform(0.5, 2, 3).astype(np.float32)
    for training in (True, False):
        fc_stats = [fc.tensor(rm), fc.tensor(rv)]
        t_stats = [torch.tensor(rm, dtype=torch.float64), torch.tensor(rv, dtype=torch.float64)]
        _check(lambda t, w_, b_: F.batch_norm(t, *fc_stats, w_, b_, training, 0.1, 1e-5),
               lambda t, w_, b_: TF.batch_norm(t, *t_stats, w_, b_, training, 0.1, 1e-5),
               [x, w, b])
        np.testing.assert_allclose(fc_stats[1].numpy(), t_stats[1].numpy(), rtol=1e-5)


def test_dropout2d_takes_3d_input_as_torch():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 6, 9)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _check(lambda t: F.dropout2d(t, 0.5, training=False),
               lambda t: TF.dropout2d(t, 0.5, training=False), [x])
        _check(lambda t: nn.Dropout2d(0.3).eval()(t),
               lambda t: torch.nn.Dropout2d(0.3).eval()(t), [x])
        # training: (N, C, L), a whole channel is kept (scaled by 1 / (1 - p)) or zeroed
        y = F.dropout2d(fc.tensor(x), 0.5, training=True).numpy()
    kept = (y != 0).all(axis=2)
    dropped = (y == 0).all(axis=2)
    assert (kept | dropped).all() and kept.any() and dropped.any()
    np.testing.assert_allclose(y[kept], x[kept] * 2, rtol=1e-6)


def test_embedding_scale_grad_by_freq():
    rng = np.random.default_rng(6)
    w = rng.standard_normal((7, 4)).astype(np.float32)
    idx = np.array([[0, 3, 3, 5], [3, 0, 6, 2]], np.int64)
    _check(lambda i, w_: F.embedding(i, w_, scale_grad_by_freq=True),
           lambda i, w_: TF.embedding(i, w_, scale_grad_by_freq=True), [idx, w])
    _check(lambda i, w_: F.embedding(i, w_, padding_idx=0, scale_grad_by_freq=True),
           lambda i, w_: TF.embedding(i, w_, padding_idx=0, scale_grad_by_freq=True), [idx, w])
    m, tm = nn.Embedding(7, 4, scale_grad_by_freq=True), torch.nn.Embedding(7, 4,
                                                                             scale_grad_by_freq=True)
    m.load_state_dict({"weight": w})
    tm.load_state_dict({"weight": torch.tensor(w)})
    m(fc.tensor(idx)).sum().backward()
    tm(torch.tensor(idx)).sum().backward()
    np.testing.assert_allclose(m.weight.grad.numpy(), tm.weight.grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_conv3d_layer_padding_modes(mode):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 4, 5, 3)).astype(np.float32)
    for kw in [dict(padding=(1, 2, 1)), dict(padding="same", dilation=(1, 2, 1))]:
        tm = torch.nn.Conv3d(3, 4, (3, 2, 3), padding_mode=mode, **kw)
        m = nn.Conv3d(3, 4, (3, 2, 3), padding_mode=mode, **kw)
        state = {k: rng.standard_normal(tuple(v.shape)).astype(np.float32)
                 for k, v in tm.state_dict().items()}
        m.load_state_dict(state)
        tm.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
        tm.double()
        _check(lambda t: m(t), lambda t: tm(t), [x])
        y, tw = m(fc.tensor(x)), tm(torch.tensor(x, dtype=torch.float64))
        y.sum().backward()
        tw.sum().backward()
        np.testing.assert_allclose(m.weight.grad.numpy(), tm.weight.grad.numpy(), rtol=1e-4,
                                   atol=1e-4)


def test_functions_take_torch_keyword_names():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    w = rng.standard_normal((2, 5)).astype(np.float32)
    c4 = np.ones(4, np.float32)
    for name, kwargs in [("linear", dict(weight=w)), ("relu", {}), ("dropout", dict(p=0.3,
                         training=False)), ("dropout2d", dict(p=0.3, training=False)),
                         ("local_response_norm", dict(size=2)),
                         ("batch_norm", dict(running_mean=c4 * 0, running_var=c4))]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y = getattr(F, name)(input=fc.tensor(x), **{k: fc.tensor(v) if isinstance(
                v, np.ndarray) else v for k, v in kwargs.items()})
            ty = getattr(TF, name)(input=torch.tensor(x), **{k: torch.tensor(v) if isinstance(
                v, np.ndarray) else v for k, v in kwargs.items()})
        np.testing.assert_allclose(y.detach().numpy(), ty.numpy(), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- missing op

@pytest.mark.parametrize("shape,out", [((2, 3, 5, 7, 6), (2, 3, 4)), ((3, 4, 4, 5), (5, None, 2)),
                                       ((1, 2, 3, 2, 9), 4)])
def test_adaptive_max_pool3d(shape, out):
    rng = np.random.default_rng(9)
    n = int(np.prod(shape))
    x = ((rng.permutation(n) - n / 2) / n * 6).astype(np.float32).reshape(shape)  # no ties
    _check(lambda t: F.adaptive_max_pool3d(t, out), lambda t: TF.adaptive_max_pool3d(t, out), [x])
    _check(lambda t: nn.AdaptiveMaxPool3d(out)(t),
           lambda t: torch.nn.AdaptiveMaxPool3d(out)(t), [x])
    _, idx = F.adaptive_max_pool3d(fc.tensor(x), out, return_indices=True)
    _, tidx = TF.adaptive_max_pool3d(torch.tensor(x), out, return_indices=True)
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    # ties: the first maximum in (d, h, w) order, as torch
    xt = rng.integers(0, 3, shape).astype(np.float32)
    _, idx = F.adaptive_max_pool3d_with_indices(fc.tensor(xt), out)
    _, tidx = TF.adaptive_max_pool3d(torch.tensor(xt), out, return_indices=True)
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())


# ----------------------------------------------------------------------------- wrong values

def test_logsigmoid_gradient_for_large_inputs():
    # 1 - sigmoid(x) cancels to 0 in float32 past x ~ 17; sigmoid(-x) keeps it
    x = np.array([5.0, 9.5, 17.0, 20.0, 30.0, -4.0], np.float32)
    _check(F.logsigmoid, TF.logsigmoid, [x], rtol=1e-5, atol=0)
    _check(lambda t: nn.LogSigmoid()(t), lambda t: torch.nn.LogSigmoid()(t), [x], rtol=1e-5,
           atol=0)


def test_cross_entropy_label_smoothing_all_targets_ignored():
    # NaN loss, as torch, but zero gradients (a division by the zero count sent NaN back)
    rng = np.random.default_rng(10)
    x = rng.standard_normal((3, 4, 2)).astype(np.float32)
    t = np.full((3, 2), 1, np.int64)
    for w in (None, rng.uniform(0.5, 2, 4).astype(np.float32)):
        kw = dict(ignore_index=1, label_smoothing=0.2)
        y = F.cross_entropy(xf := fc.tensor(x, requires_grad=True), fc.tensor(t),
                            None if w is None else fc.tensor(w), **kw)
        ty = TF.cross_entropy(xt := torch.tensor(x, requires_grad=True), torch.tensor(t),
                              None if w is None else torch.tensor(w), **kw)
        assert np.isnan(y.item()) and np.isnan(ty.item())
        y.backward()
        ty.backward()
        np.testing.assert_array_equal(xf.grad.numpy(), xt.grad.numpy())


def test_cosine_similarity_gradient_below_eps():
    # torch clamps the norms outside autograd: the gradient still flows through a norm below eps
    rng = np.random.default_rng(11)
    a = (rng.standard_normal((3, 4)) * 1e-3).astype(np.float32)
    a[1] = 0.0
    b = rng.standard_normal((3, 4)).astype(np.float32)
    _check(lambda u, v: F.cosine_similarity(u, v, dim=1, eps=1e-2),
           lambda u, v: TF.cosine_similarity(u, v, dim=1, eps=1e-2), [a, b])
    _check(lambda u, v: nn.CosineSimilarity(dim=0, eps=0.5)(u, v),
           lambda u, v: torch.nn.CosineSimilarity(dim=0, eps=0.5)(u, v), [a, b])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_huber_loss_weight_mean_divides_by_count(reduction):
    # torch's weighted huber 'mean' is the mean of the weighted losses (mse and l1 divide by
    # the weights' sum instead)
    rng = np.random.default_rng(12)
    x, t = (rng.standard_normal((2, 3, 4)) * 2).astype(np.float32), rng.standard_normal(
        (2, 3, 4)).astype(np.float32)
    w = rng.uniform(0.2, 2, (2, 3, 4)).astype(np.float32)
    _check(lambda a, b, c: F.huber_loss(a, b, reduction=reduction, delta=0.7, weight=c),
           lambda a, b, c: TF.huber_loss(a, b, reduction=reduction, delta=0.7, weight=c),
           [x, t, w], grad=[True, True, False])
    for name in ("mse_loss", "l1_loss"):
        _check(lambda a, b, c: getattr(F, name)(a, b, reduction=reduction, weight=c),
               lambda a, b, c: getattr(TF, name)(a, b, reduction=reduction, weight=c),
               [x, t, w], grad=[True, True, False])


def test_cross_entropy_probability_target_refuses_ignore_index():
    """torch refuses ignore_index with class probabilities; silently dropping it would train
    on the class the user meant to skip."""
    rng = np.random.default_rng(3)
    x = fc.tensor(rng.standard_normal((3, 4)).astype(np.float32))
    q = fc.tensor(rng.dirichlet(np.ones(4), size=3).astype(np.float32))
    with pytest.raises(RuntimeError, match="ignore_index"):
        F.cross_entropy(x, q, ignore_index=1)
    _check(lambda t: F.cross_entropy(t, q), lambda t: TF.cross_entropy(
        t, torch.tensor(q.numpy(), dtype=torch.float64)), [x.numpy()])
