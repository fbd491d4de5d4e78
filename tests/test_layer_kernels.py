"""The compiled CPU kernels of the activations (leaky ReLU, ELU, GELU, SiLU, sigmoid, tanh),
group / layer norm, padding, dilated and adaptive max pooling and interpolation.

Each op runs on fresh random configurations (odd sizes, size-1 dims, batch 1, non-contiguous
input through a permuted view) forward and backward against torch (float64) and the NumPy
reference of tests/reference.py; the kernels' own guards are called directly with arrays
that would otherwise make them read or write out of bounds; hypothesis throws malformed
and edge-case arguments (empty dims included) at the public ops, which must either compute
what torch computes or raise a clear error, never crash.
"""

from __future__ import annotations

import numpy as np
import pytest
import reference as R
from helpers import assert_close, check_op, check_vs_torch, distinct, randn, to_numpy

import fastconv
import fastconv.functional as F
from fastconv.backend import cpu

torch = pytest.importorskip("torch")
tF = torch.nn.functional
T = fastconv.tensor


def _shape(rng, ndim, lo=1, hi=7):
    """A random shape whose sizes include 1 and odd values."""
    return tuple(int(v) for v in rng.integers(lo, hi, size=ndim))


def _permuted(fn):
    """fn applied to a non-contiguous view (the last two dims swapped) of its input."""
    return lambda t: fn(t.transpose(-1, -2))


# ----------------------------------------------------------------------------- activations

ACTIVATIONS = {
    "leaky_relu": (lambda t: F.leaky_relu(t, 0.07), lambda t: tF.leaky_relu(t, 0.07),
                   lambda a: R.leaky_relu(a, 0.07)),
    "elu": (lambda t: F.elu(t, 1.3), lambda t: tF.elu(t, 1.3), lambda a: R.elu(a, 1.3)),
    "gelu": (F.gelu, tF.gelu, R.gelu),
    "gelu_tanh": (lambda t: F.gelu(t, approximate="tanh"),
                  lambda t: tF.gelu(t, approximate="tanh"), lambda a: R.gelu(a, "tanh")),
    "silu": (F.silu, tF.silu, R.silu),
    "sigmoid": (lambda t: t.sigmoid(), torch.sigmoid, R.sigmoid),
    "tanh": (lambda t: t.tanh(), torch.tanh, R.tanh),
}


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_kernels(name, rng):
    fc, tf, ref = ACTIVATIONS[name]
    shape = _shape(rng, int(rng.integers(1, 5)))
    check_op(fc, ref, [randn(rng, *shape, scale=3.0)], rng=rng, name=name)
    check_vs_torch(_permuted(fc), _permuted(tf), [randn(rng, 3, *_shape(rng, 2), scale=3.0)],
                   rng=rng, name=f"{name} (non-contiguous)")
    # large enough for the threaded path and the vector loops' tails (not a multiple of 16)
    check_vs_torch(fc, tf, [randn(rng, 3, 7, 61, 67, scale=4.0)], rng=rng, name=name)


def test_activation_kernels_at_extremes():
    x = np.array([-1e30, -300, -88.5, -87, -20, -1e-6, -0.0, 0.0, 1e-6, 20, 87, 88.5, 300, 1e30],
                 np.float32)
    for name, (fc, tf, _) in ACTIVATIONS.items():
        assert_close(to_numpy(fc(T(x))), tf(torch.tensor(x, dtype=torch.float64)), name=name)


def test_activation_kernels_propagate_nan():
    x = np.array([np.nan, 1.0, -1.0], np.float32)
    for name, (fc, _, _) in ACTIVATIONS.items():
        assert np.isnan(to_numpy(fc(T(x)))[0]), name


def test_activation_kernels_are_accurate_to_float32_rounding():
    """Dense sweep against float64: within a few float32 roundings (tighter than the
    project's 1e-4 / 1e-5), so the exp / erfc approximations lose nothing that matters.
    Near the far left tail the float64 torch values themselves cancel (1 + erf(x) for
    x << 0), so the sweep stops where the outputs reach 1e-9."""
    x = np.linspace(-12, 12, 48001, dtype=np.float32)
    x64 = torch.tensor(x, dtype=torch.float64)
    for name, (fc, tf, _) in ACTIVATIONS.items():
        want = tf(x64).numpy()
        keep = (np.abs(want) > 1e-9) | (x > -1)
        assert_close(to_numpy(fc(T(x)))[keep], want[keep], rtol=4e-6, atol=1e-7, name=name)


# ----------------------------------------------------------------------------- group / layer norm

def _check_group_norm(rng, affine):
    groups = int(rng.integers(1, 4))
    C = groups * int(rng.integers(1, 4))
    shape = (int(rng.integers(1, 4)), C) + _shape(rng, int(rng.integers(0, 3)))
    if (C // groups) * int(np.prod(shape[2:])) < 4:
        # Two or three values per group are ill-conditioned in float32 (dx is a difference of
        # nearly equal terms when they lie close together); a float64 oracle cannot judge that.
        shape = shape + (4,)
    w, b = (randn(rng, C), randn(rng, C)) if affine else (None, None)
    x = randn(rng, *shape, scale=2.0) + 0.5
    inputs = [x] + ([w, b] if affine else [])
    fc = (lambda a, c, d: F.group_norm(a, groups, c, d)) if affine else \
        (lambda a: F.group_norm(a, groups))
    tf = (lambda a, c, d: tF.group_norm(a, groups, c, d)) if affine else \
        (lambda a: tF.group_norm(a, groups))
    ref = (lambda a, c, d: R.group_norm(a, groups, c, d)) if affine else \
        (lambda a: R.group_norm(a, groups))
    check_op(fc, ref, inputs, rng=rng, name=f"group_norm {shape} / {groups}")
    check_vs_torch(fc, tf, inputs, rng=rng, name=f"group_norm {shape} / {groups}")


@pytest.mark.parametrize("affine", [True, False])
def test_group_norm_kernels(affine, rng):
    for _ in range(3):
        _check_group_norm(rng, affine)


def test_group_norm_wide_rows(rng):
    """Rows long enough for the vector loops and the threaded passes."""
    x, w, b = randn(rng, 3, 8, 37, 41, scale=3.0) + 4.0, randn(rng, 8), randn(rng, 8)
    check_vs_torch(lambda a, c, d: F.group_norm(a, 2, c, d),
                   lambda a, c, d: tF.group_norm(a, 2, c, d), [x, w, b], rng=rng,
                   name="group_norm wide")


def _check_layer_norm(rng, affine):
    shape = _shape(rng, int(rng.integers(1, 5)))
    k = int(rng.integers(1, len(shape) + 1))
    if 1 < int(np.prod(shape[len(shape) - k:])) < 4:  # ill-conditioned: see _check_group_norm
        shape = shape[:-1] + (shape[-1] + 3,)
    norm = shape[len(shape) - k:]
    w, b = (randn(rng, *norm), randn(rng, *norm)) if affine else (None, None)
    x = randn(rng, *shape, scale=2.0) - 1.0
    if affine:
        fc, tf = (lambda a, c, d: F.layer_norm(a, norm, c, d),
                  lambda a, c, d: tF.layer_norm(a, norm, c, d))
        check_op(fc, lambda a, c, d: R.layer_norm(a, norm, c, d), [x, w, b], rng=rng,
                 name=f"layer_norm {shape} {norm}")
        check_vs_torch(fc, tf, [x, w, b], rng=rng, name=f"layer_norm {shape} {norm}")
    else:
        check_op(lambda a: F.layer_norm(a, norm), lambda a: R.layer_norm(a, norm), [x],
                 rng=rng, name=f"layer_norm {shape} {norm}")


@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_kernels(affine, rng):
    for _ in range(3):
        _check_layer_norm(rng, affine)
    # a non-contiguous input and rows wide enough for the vector loops
    norm = (45,)
    check_vs_torch(lambda a, c, d: F.layer_norm(a.transpose(-1, -2), norm, c, d),
                   lambda a, c, d: tF.layer_norm(a.transpose(-1, -2), norm, c, d),
                   [randn(rng, 4, 45, 9), randn(rng, 45), randn(rng, 45)], rng=rng,
                   name="layer_norm (non-contiguous)")


def test_layer_norm_only_bias_or_only_weight(rng):
    x, v = randn(rng, 5, 7), randn(rng, 7)
    check_vs_torch(lambda a, c: F.layer_norm(a, (7,), None, c),
                   lambda a, c: tF.layer_norm(a, (7,), None, c), [x, v], rng=rng, name="bias only")
    check_vs_torch(lambda a, c: F.layer_norm(a, (7,), c), lambda a, c: tF.layer_norm(a, (7,), c),
                   [x, v], rng=rng, name="weight only")


# ----------------------------------------------------------------------------- padding

def _random_pads(rng, shape, mode):
    nd = len(shape)  # the non-constant modes pad the last k dims of a (k+1)- or (k+2)-D input
    k = int(rng.integers(1, nd + 1)) if mode == "constant" else \
        int(rng.choice([v for v in (nd - 2, nd - 1) if 1 <= v <= 3]))
    pads = []
    for i in range(k):
        n = shape[len(shape) - 1 - i]
        hi = {"reflect": n - 1, "circular": n, "replicate": 4, "constant": 3}[mode]
        lo = -(n // 2) if mode == "constant" else 0
        pads += [int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))]
    return tuple(pads)


def _check_pad(rng, mode):
    nd = int(rng.integers(2, 5)) if mode != "constant" else int(rng.integers(1, 5))
    shape = _shape(rng, nd, lo=2 if mode == "reflect" else 1)
    pads = _random_pads(rng, shape, mode)
    value = float(rng.normal()) if mode == "constant" else None
    fc = lambda t: F.pad(t, pads, mode=mode, value=value)
    tf = lambda t: tF.pad(t, pads, mode=mode, value=value)
    x = randn(rng, *shape)
    check_op(fc, lambda a: R.pad(a, pads, mode, value or 0.0), [x], rng=rng,
             name=f"pad {mode} {shape} {pads}")
    check_vs_torch(fc, tf, [x], rng=rng, name=f"pad {mode} {shape} {pads}")


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad_kernels(mode, rng):
    for _ in range(4):
        _check_pad(rng, mode)


def test_pad_non_contiguous_and_large(rng):
    x = randn(rng, 2, 5, 33, 31)
    for mode in ("constant", "reflect", "replicate", "circular"):
        check_vs_torch(_permuted(lambda t, m=mode: F.pad(t, (2, 3, 1, 4), mode=m)),
                       _permuted(lambda t, m=mode: tF.pad(t, (2, 3, 1, 4), mode=m)), [x],
                       rng=rng, name=f"pad {mode} (non-contiguous)")


def test_zero_pad2d_layer(rng):
    check_vs_torch(fastconv.nn.ZeroPad2d((1, 2, 0, 3)), torch.nn.ZeroPad2d((1, 2, 0, 3)),
                   [randn(rng, 1, 3, 5, 4)], rng=rng, name="ZeroPad2d")


# ----------------------------------------------------------------------------- pooling

def _check_max_pool2d_dilated(rng):
    k = tuple(int(v) for v in rng.integers(1, 4, size=2))
    d = tuple(int(v) for v in rng.integers(1, 4, size=2))
    s = tuple(int(v) for v in rng.integers(1, 4, size=2))
    span = [d[i] * (k[i] - 1) + 1 for i in range(2)]
    p = tuple(int(rng.integers(0, k[i] // 2 + 1)) for i in range(2))  # torch's bound
    ceil = bool(rng.integers(0, 2))
    H, W = (int(span[i] + rng.integers(0, 6)) for i in range(2))
    x = distinct(rng, int(rng.integers(1, 3)), int(rng.integers(1, 4)), H, W)
    args = (k, s, p, d, ceil)
    y, idx = F.max_pool2d(T(x), *args, return_indices=True)
    ty, tidx = tF.max_pool2d(torch.tensor(x), *args, return_indices=True)
    assert_close(to_numpy(y), ty, name=f"max_pool2d {x.shape} {args}")
    np.testing.assert_array_equal(to_numpy(idx), tidx.numpy())
    check_op(lambda t: F.max_pool2d(t, *args),
             lambda a: R.max_pool2d_dilated(a, *args)[0], [x], rng=rng,
             name=f"max_pool2d {x.shape} {args}")


def test_max_pool2d_dilated_kernels(rng):
    for _ in range(6):
        _check_max_pool2d_dilated(rng)


def test_max_pool2d_dilated_window_that_misses_the_input(rng):
    """Taps at rows -1 and 2 of a 2-row input (padding within torch's rule, dilation 3): the
    window holds only padding, so y = -inf, index -1 and no gradient, nothing out of bounds.
    (torch returns indices past the plane here, and its backward writes out of bounds.)"""
    x = T(randn(rng, 2, 3, 2, 5), requires_grad=True)
    y, idx = F.max_pool2d(x, (2, 1), 1, (1, 0), (3, 1), return_indices=True)
    assert y.shape == (2, 3, 1, 5)
    assert np.all(to_numpy(y) == -np.inf) and np.all(to_numpy(idx) == -1)
    y.backward(fastconv.tensor(randn(rng, *y.shape)))
    np.testing.assert_array_equal(to_numpy(x.grad), 0)


def test_max_pool2d_dilated_non_contiguous(rng):
    check_vs_torch(_permuted(lambda t: F.max_pool2d(t, 3, 2, 1, 2)),
                   _permuted(lambda t: tF.max_pool2d(t, 3, 2, 1, 2)), [distinct(rng, 2, 3, 9, 14)],
                   rng=rng, name="max_pool2d dilated (non-contiguous)")


def _check_adaptive_max_pool2d(rng):
    H, W = _shape(rng, 2, 1, 13)
    out = (int(rng.integers(1, H + 3)), int(rng.integers(1, W + 3)))
    x = distinct(rng, int(rng.integers(1, 3)), int(rng.integers(1, 4)), H, W)
    y, idx = F.adaptive_max_pool2d(T(x), out, return_indices=True)
    ty, tidx = tF.adaptive_max_pool2d(torch.tensor(x), out, return_indices=True)
    assert_close(to_numpy(y), ty)
    np.testing.assert_array_equal(to_numpy(idx), tidx.numpy())
    check_op(lambda t: F.adaptive_max_pool2d(t, out),
             lambda a: R.adaptive_max_pool2d(a, out)[0], [x], rng=rng,
             name=f"adaptive_max_pool2d {x.shape} -> {out}")


def test_adaptive_max_pool2d_kernels(rng):
    for _ in range(5):
        _check_adaptive_max_pool2d(rng)
    check_vs_torch(_permuted(lambda t: F.adaptive_max_pool2d(t, (4, 3))),
                   _permuted(lambda t: tF.adaptive_max_pool2d(t, (4, 3))),
                   [distinct(rng, 1, 2, 7, 10)], rng=rng, name="adaptive_max_pool2d (non-contig.)")


# ----------------------------------------------------------------------------- interpolate

def _check_interpolate(rng, mode, align):
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4))) + _shape(rng, 2, 1, 8)
    if rng.integers(0, 2):
        kw = {"size": _shape(rng, 2, 1, 12)}
        scale = None
    else:
        kw = {"scale_factor": float(rng.choice([0.5, 1.5, 2.0, 3.0]))}
        scale = (kw["scale_factor"],) * 2
    size = kw.get("size") or tuple(int(np.floor(n * kw["scale_factor"])) for n in shape[2:])
    if min(size) < 1:
        return
    fc = lambda t: F.interpolate(t, mode=mode, align_corners=align, **kw)
    tf = lambda t: tF.interpolate(t, mode=mode, align_corners=align, **kw)
    x = randn(rng, *shape)
    if mode != "nearest-exact":  # the reference knows nearest and bilinear
        check_op(fc, lambda a: R.interpolate(a, size, mode, bool(align), scale), [x],
                 rng=rng, name=f"interpolate {mode} {shape} {kw}")
    check_vs_torch(fc, tf, [x], rng=rng, name=f"interpolate {mode} {shape} {kw}")


@pytest.mark.parametrize("mode,align", [("nearest", None), ("nearest-exact", None),
                                        ("bilinear", False), ("bilinear", True)])
def test_interpolate_kernels(mode, align, rng):
    for _ in range(3):
        _check_interpolate(rng, mode, align)
    check_vs_torch(_permuted(lambda t: F.interpolate(t, (13, 6), mode=mode, align_corners=align)),
                   _permuted(lambda t: tF.interpolate(t, (13, 6), mode=mode,
                                                      align_corners=align)),
                   [randn(rng, 2, 3, 5, 9)], rng=rng, name=f"interpolate {mode} (non-contig.)")


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact", "bilinear"])
def test_interpolate_arbitrary_scale_factors(mode, rng):
    """Scale factors that are not round numbers, including ones whose output is exactly
    twice the input (torch's nearest then repeats each input twice, whatever the factor)."""
    for _ in range(6):
        x = randn(rng, 1, 2, int(rng.integers(1, 8)), int(rng.integers(1, 8)))
        sf = (2.0 + float(rng.uniform(-0.45, 0.45)), float(rng.uniform(0.4, 3.5)))
        if min(int(np.floor(n * f)) for n, f in zip(x.shape[2:], sf)) < 1:
            continue
        check_vs_torch(lambda t: F.interpolate(t, scale_factor=sf, mode=mode),
                       lambda t: tF.interpolate(t, scale_factor=sf, mode=mode), [x], rng=rng,
                       name=f"interpolate {mode} {x.shape} x{sf}")


def test_upsample_layer(rng):
    for mode in ("nearest", "bilinear"):
        check_vs_torch(fastconv.nn.Upsample(scale_factor=2, mode=mode),
                       torch.nn.Upsample(scale_factor=2, mode=mode), [randn(rng, 1, 2, 3, 5)],
                       rng=rng, name=f"Upsample {mode}")


# ----------------------------------------------------------------------------- the kernels' guards

def test_pad_kernel_refuses_tables_that_leave_the_input():
    x = np.ones((2, 3), np.float32)
    good = np.array([-1, 0, 1, 2, -1], np.int64)
    assert cpu.pad_forward(x, (None, good), 0.0).shape == (2, 5)
    for bad in (np.array([0, 3], np.int64), np.array([-2, 0], np.int64)):
        with pytest.raises(ValueError, match=r"index\[1\]"):
            cpu.pad_forward(x, (None, bad), 0.0)
        with pytest.raises(ValueError, match=r"index\[1\]"):
            cpu.pad_backward(np.ones((2, 2), np.float32), (2, 3), (None, bad))
    with pytest.raises(TypeError, match="int64"):
        cpu.pad_forward(x, (None, good.astype(np.int32)), 0.0)
    with pytest.raises(ValueError, match="one entry per dim"):
        cpu.pad_forward(x, (good,), 0.0)
    with pytest.raises(ValueError, match="dy must have shape"):
        cpu.pad_backward(np.ones((2, 4), np.float32), (2, 3), (None, good))


def test_interpolate_kernel_refuses_bad_tables():
    x = np.ones((1, 1, 3, 4), np.float32)
    rows, cols = np.array([0, 2], np.int64), np.array([0, 1, 3], np.int64)
    assert cpu.interpolate_forward(x, rows, None, cols, None).shape == (1, 1, 2, 3)
    with pytest.raises(ValueError, match="h_index"):
        cpu.interpolate_forward(x, np.array([3], np.int64), None, cols, None)
    with pytest.raises(ValueError, match="w_index"):
        cpu.interpolate_backward(np.ones((1, 1, 2, 1), np.float32), (1, 1, 3, 4), rows, None,
                                 np.array([-1], np.int64), None)
    with pytest.raises(ValueError, match="both"):
        cpu.interpolate_forward(x, rows, np.zeros(2, np.float32), cols, None)
    with pytest.raises(ValueError, match="weight"):
        cpu.interpolate_forward(x, rows, np.zeros(3, np.float32), cols, np.zeros(3, np.float32))


def test_norm_and_pool_kernels_refuse_mismatched_arrays():
    x = np.ones((2, 6, 3), np.float32)
    with pytest.raises(ValueError, match="groups"):
        cpu.group_norm_forward(x, None, None, 4, 1e-5)
    _, mean, rstd = cpu.group_norm_forward(x, None, None, 3, 1e-5)
    with pytest.raises(ValueError, match="mean"):
        cpu.group_norm_backward(x, None, mean[:2], rstd, x, 3, True, True)
    with pytest.raises(ValueError, match="weight"):
        cpu.group_norm_forward(x, np.ones(5, np.float32), None, 3, 1e-5)
    with pytest.raises(ValueError, match="dilation"):
        cpu.max_pool2d_forward(np.ones((1, 1, 4, 4), np.float32), (2, 2), (1, 1), (0, 0), False,
                               (0, 1))
    with pytest.raises(ValueError, match="leaves no output"):
        cpu.max_pool2d_forward(np.ones((1, 1, 4, 4), np.float32), (2, 2), (1, 1), (0, 0), False,
                               (4, 1))
    with pytest.raises(ValueError, match="output_size"):
        cpu.adaptive_max_pool2d_forward(np.ones((1, 1, 4, 4), np.float32), (0, 2))
    with pytest.raises(ValueError, match="dy must have shape"):
        cpu.leaky_relu_backward(np.ones(3, np.float32), np.ones(4, np.float32), 0.1)
