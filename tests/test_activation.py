"""relu, dropout / dropout2d (statistics, scaling, gradients, reproducibility
under manual_seed), softmax and log_softmax."""

from __future__ import annotations

import json

import numpy as np
import pytest
import reference as R
from helpers import assert_close, check_op, check_vs_torch, randn, to_numpy

import fastconv
import fastconv.functional as F

# ----------------------------------------------------------------------------- relu


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (7,), (3, 11)], ids=str)
def test_relu_vs_reference(shape, rng):
    check_op(F.relu, R.relu, [randn(rng, *shape)], rng=rng, name="relu")


def test_relu_vs_torch(rng):
    torch = pytest.importorskip("torch")
    check_vs_torch(F.relu, torch.nn.functional.relu, [randn(rng, 4, 16, 9, 9)], rng=rng,
                   name="relu")


def test_relu_gradient_is_zero_for_negative_inputs(rng):
    x = randn(rng, 50)
    t = fastconv.tensor(x, requires_grad=True)
    F.relu(t).sum().backward()
    np.testing.assert_array_equal(to_numpy(t.grad), (x > 0).astype(np.float32))


@pytest.mark.parametrize("offset", [0, 1])
def test_relu_of_large_arrays(rng, offset):
    """Arrays of 4 MB and more are written with streaming stores: every element, NaN, -0
    and the ends that are not 16-byte aligned (a view one element in) as the small path."""
    x = randn(rng, 1_100_003)
    x[rng.integers(0, x.size, 50)] = np.nan
    x[rng.integers(0, x.size, 50)] = -0.0
    x = x[offset:]
    t = fastconv.tensor(x, requires_grad=True)
    y = F.relu(t)
    want = np.where(x < 0, np.float32(0), x)
    np.testing.assert_array_equal(to_numpy(y).view(np.uint32), want.view(np.uint32))
    dy = randn(rng, x.size)
    y.backward(fastconv.tensor(dy))
    np.testing.assert_array_equal(to_numpy(t.grad), np.where(want > 0, dy, np.float32(0)))


# ----------------------------------------------------------------------------- dropout

def _binomial_bound(n, p, sigmas=6.0):
    return sigmas * np.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_statistics_and_scaling(p, rng):
    x = (1.0 + np.abs(randn(rng, 100, 1000))).astype(np.float32)  # positive: zeros mean dropped
    y = to_numpy(F.dropout(fastconv.tensor(x), p, training=True))
    dropped = y == 0
    assert abs(dropped.mean() - p) < _binomial_bound(x.size, p), f"drop rate {dropped.mean()}"
    kept = ~dropped
    assert_close(y[kept], x[kept] / (1 - p), name="kept values are scaled by 1/(1-p)")


def test_dropout_gradient_uses_the_same_mask(rng):
    p = 0.3
    x = (0.5 + np.abs(randn(rng, 20, 30))).astype(np.float32)
    g = randn(rng, 20, 30)
    t = fastconv.tensor(x, requires_grad=True)
    y = F.dropout(t, p, training=True)
    y.backward(fastconv.tensor(g))
    keep = to_numpy(y) != 0
    assert_close(to_numpy(t.grad), g * keep / (1 - p), name="dropout grad")


def test_dropout_eval_and_p0_are_identity(rng):
    x = randn(rng, 6, 7)
    for kwargs in (dict(p=0.5, training=False), dict(p=0.0, training=True)):
        t = fastconv.tensor(x, requires_grad=True)
        y = F.dropout(t, **kwargs)
        np.testing.assert_array_equal(to_numpy(y), x)
        (y * 2.0).sum().backward()
        np.testing.assert_array_equal(to_numpy(t.grad), np.full_like(x, 2.0))


def test_dropout_p1_drops_everything(rng):
    x = randn(rng, 5, 5)
    t = fastconv.tensor(x, requires_grad=True)
    y = F.dropout(t, 1.0, training=True)
    np.testing.assert_array_equal(to_numpy(y), np.zeros_like(x))
    y.sum().backward()
    np.testing.assert_array_equal(to_numpy(t.grad), np.zeros_like(x))


def test_dropout_reproducible_under_manual_seed(rng, seed):
    x = fastconv.tensor((1.0 + np.abs(randn(rng, 64, 64))).astype(np.float32))
    fastconv.manual_seed(seed)
    a1, a2 = to_numpy(F.dropout(x, 0.5)), to_numpy(F.dropout(x, 0.5))
    fastconv.manual_seed(seed)
    b1, b2 = to_numpy(F.dropout(x, 0.5)), to_numpy(F.dropout(x, 0.5))
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)
    assert not np.array_equal(a1 == 0, a2 == 0), "consecutive calls must draw new masks"
    fastconv.manual_seed(seed + 1)
    c1 = to_numpy(F.dropout(x, 0.5))
    assert not np.array_equal(a1 == 0, c1 == 0), "a different seed must give a different mask"


def test_rng_state_roundtrip_is_json_serialisable(rng):
    x = fastconv.tensor((1.0 + np.abs(randn(rng, 32, 32))).astype(np.float32))
    F.dropout(x, 0.5)  # advance the generator
    state = fastconv.get_rng_state()
    restored = json.loads(json.dumps(state))
    want = [to_numpy(F.dropout(x, 0.5)) for _ in range(3)]
    fastconv.set_rng_state(restored)
    got = [to_numpy(F.dropout(x, 0.5)) for _ in range(3)]
    for w, g in zip(want, got):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_dropout2d_drops_whole_feature_maps(p, rng):
    n, c = 64, 64
    x = (1.0 + np.abs(randn(rng, n, c, 3, 4))).astype(np.float32)
    y = to_numpy(F.dropout2d(fastconv.tensor(x), p, training=True))
    zero = (y == 0)
    per_map = zero.reshape(n, c, -1)
    assert np.all(per_map.all(axis=2) | ~per_map.any(axis=2)), "a map was partly dropped"
    rate = per_map.all(axis=2).mean()
    assert abs(rate - p) < _binomial_bound(n * c, p), f"map drop rate {rate}"
    kept = ~zero
    assert_close(y[kept], x[kept] / (1 - p), name="kept maps are scaled by 1/(1-p)")


def test_dropout2d_gradient_and_eval(rng):
    p = 0.5
    x = (0.5 + np.abs(randn(rng, 4, 8, 3, 3))).astype(np.float32)
    g = randn(rng, *x.shape)
    t = fastconv.tensor(x, requires_grad=True)
    y = F.dropout2d(t, p, training=True)
    y.backward(fastconv.tensor(g))
    keep = to_numpy(y) != 0
    assert_close(to_numpy(t.grad), g * keep / (1 - p), name="dropout2d grad")
    np.testing.assert_array_equal(to_numpy(F.dropout2d(fastconv.tensor(x), p, training=False)), x)


def test_dropout2d_reproducible_under_manual_seed(rng, seed):
    x = fastconv.tensor((1.0 + np.abs(randn(rng, 8, 16, 2, 2))).astype(np.float32))
    fastconv.manual_seed(seed)
    a = to_numpy(F.dropout2d(x, 0.5))
    fastconv.manual_seed(seed)
    b = to_numpy(F.dropout2d(x, 0.5))
    np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- softmax

@pytest.mark.parametrize("shape,dim", [((4, 7), 1), ((4, 7), -1), ((5, 3), 0), ((2, 3, 4), 1)],
                         ids=str)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_family_vs_reference(name, shape, dim, rng):
    fc, ref = getattr(F, name), getattr(R, name)
    check_op(lambda t: fc(t, dim=dim), lambda a: ref(a, dim), [randn(rng, *shape, scale=2.0)],
             rng=rng, name=name)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_family_vs_torch(name, rng):
    torch = pytest.importorskip("torch")
    check_vs_torch(lambda t: getattr(F, name)(t, dim=1),
                   lambda t: getattr(torch.nn.functional, name)(t, dim=1),
                   [randn(rng, 16, 100, scale=3.0)], rng=rng, name=name)


def test_softmax_is_stable_for_large_logits(rng):
    x = randn(rng, 3, 5) * 50 + 1000.0  # exp would overflow without the max shift
    for name in ("softmax", "log_softmax"):
        y = to_numpy(getattr(F, name)(fastconv.tensor(x), dim=1))
        assert np.all(np.isfinite(y)), name
        assert_close(y, getattr(R, name)(x.astype(np.float32), 1), name=name)
    s = to_numpy(F.softmax(fastconv.tensor(x), dim=1))
    assert_close(s.sum(axis=1), np.ones(3), name="rows sum to 1")


def test_zero_dim_input_keeps_its_shape(rng):
    """The kernel-backed activations on a 0-d tensor return a 0-d tensor, as torch's."""
    torch = pytest.importorskip("torch")
    x = float(rng.standard_normal())
    for name in ("relu", "sigmoid", "tanh", "gelu", "silu", "elu", "leaky_relu"):
        got = getattr(F, name)(fastconv.tensor(np.float32(x)))
        want = getattr(torch.nn.functional, name)(torch.tensor(x, dtype=torch.float32))
        assert got.shape == () and abs(float(got) - float(want)) < 1e-6, name


@pytest.mark.parametrize("threshold", [0.5, float("nan"), float("inf"), -float("inf")])
def test_threshold_keeps_nan_as_torch(threshold):
    """torch replaces x where x <= threshold: a NaN x, or any x against a NaN threshold,
    is kept (it became ``value``); the gradient passes where x is kept."""
    torch = pytest.importorskip("torch")
    x = np.array([np.nan, 1.0, -1.0, 0.5, np.inf, -np.inf], np.float32)
    fx = fastconv.tensor(x, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    fy = F.threshold(fx, threshold, 7.0)
    ty = torch.nn.functional.threshold(tx, threshold, 7.0)
    np.testing.assert_array_equal(to_numpy(fy), ty.detach().numpy())
    fy.sum().backward()
    ty.sum().backward()
    np.testing.assert_array_equal(to_numpy(fx.grad), tx.grad.numpy())
