"""Max, average and adaptive average pooling: forward, gradients, output sizes
(floor / ceil_mode), the count_include_pad divisor, and the max-pool tie rule."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import reference as R
from helpers import (
    assert_close,
    assert_nonfinite_like,
    check_op,
    check_vs_torch,
    distinct,
    poison,
    randn,
    to_numpy,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastconv
import fastconv.functional as F

# (N, C, H, W, kernel, stride, padding, ceil_mode)
POOL_CASES = {
    "2x2-s2": (2, 3, 6, 6, 2, None, 0, False),
    "2x2-s2-odd": (2, 2, 7, 5, 2, 2, 0, False),
    "2x2-s2-odd-ceil": (2, 2, 7, 5, 2, 2, 0, True),
    "3x3-s2 (overlapping)": (2, 2, 9, 9, 3, 2, 0, False),
    "3x3-s2-ceil (inception)": (1, 3, 8, 10, 3, 2, 0, True),
    "3x3-s2-pad1": (2, 2, 7, 8, 3, 2, 1, False),
    "3x3-s2-pad1-ceil": (2, 2, 8, 7, 3, 2, 1, True),
    "3x3-s1-pad1": (1, 2, 5, 6, 3, 1, 1, False),
    "3x3-s3-ceil": (1, 2, 10, 11, 3, 3, 0, True),
    "(2,3)-s(1,2)": (2, 2, 6, 7, (2, 3), (1, 2), 0, False),
    "(3,2)-s(2,1)-pad(1,0)-ceil": (1, 2, 6, 5, (3, 2), (2, 1), (1, 0), True),
    "1x1-s2": (2, 2, 5, 5, 1, 2, 0, False),
    "global": (2, 3, 5, 5, 5, 1, 0, False),
    "batch1-single-channel": (1, 1, 5, 7, 3, 2, 1, True),
    "stride-larger-than-kernel": (1, 2, 9, 9, 2, 3, 0, True),
}


def _pool_args(case):
    n, c, h, w, k, s, p, ceil = case
    return (n, c, h, w), dict(kernel_size=k, stride=s, padding=p, ceil_mode=ceil)


@pytest.mark.parametrize("case", list(POOL_CASES.values()), ids=list(POOL_CASES))
def test_max_pool2d_vs_reference(case, rng):
    shape, args = _pool_args(case)
    x = distinct(rng, *shape)  # no ties: the gradient is well defined
    check_op(lambda t: F.max_pool2d(t, **args), lambda a: R.max_pool2d(a, **args), [x],
             rng=rng, name="max_pool2d")


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("case", list(POOL_CASES.values()), ids=list(POOL_CASES))
def test_avg_pool2d_vs_reference(case, count_include_pad, rng):
    shape, args = _pool_args(case)
    args["count_include_pad"] = count_include_pad
    check_op(lambda t: F.avg_pool2d(t, **args), lambda a: R.avg_pool2d(a, **args),
             [randn(rng, *shape)], rng=rng, name="avg_pool2d")


@pytest.mark.parametrize("case", list(POOL_CASES.values()), ids=list(POOL_CASES))
def test_max_pool2d_vs_torch(case, rng):
    torch = pytest.importorskip("torch")
    shape, args = _pool_args(case)
    check_vs_torch(lambda t: F.max_pool2d(t, **args),
                   lambda t: torch.nn.functional.max_pool2d(t, **args),
                   [distinct(rng, *shape)], rng=rng, name="max_pool2d")


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("case", list(POOL_CASES.values()), ids=list(POOL_CASES))
def test_avg_pool2d_vs_torch(case, count_include_pad, rng):
    torch = pytest.importorskip("torch")
    shape, args = _pool_args(case)
    args["count_include_pad"] = count_include_pad
    check_vs_torch(lambda t: F.avg_pool2d(t, **args),
                   lambda t: torch.nn.functional.avg_pool2d(t, **args),
                   [randn(rng, *shape)], rng=rng, name="avg_pool2d")


def test_pool_network_shapes_vs_torch(rng):
    """GoogLeNet / AlexNet / NIN pooling layers at their real sizes (small batch)."""
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    cases = [((2, 64, 112, 112), 3, 2, 0, True), ((2, 96, 55, 55), 3, 2, 0, False),
             ((2, 192, 32, 32), 3, 2, 1, True), ((2, 48, 28, 28), 3, 1, 1, False)]
    for shape, k, s, p, ceil in cases:
        a = (k, s, p, ceil)
        check_vs_torch(lambda t, a=a: F.max_pool2d(t, *a[:3], ceil_mode=a[3]),
                       lambda t, a=a: tf.max_pool2d(t, *a[:3], ceil_mode=a[3]),
                       [distinct(rng, *shape)], rng=rng, name=f"max_pool2d{shape}")
        check_vs_torch(lambda t, a=a: F.avg_pool2d(t, *a),
                       lambda t, a=a: tf.avg_pool2d(t, *a[:3], ceil_mode=a[3]),
                       [randn(rng, *shape)], rng=rng, name=f"avg_pool2d{shape}")


@pytest.mark.parametrize("size,k,s,p", [(28, 3, 2, 0), (14, 3, 2, 0), (56, 3, 2, 0),
                                        (7, 2, 2, 0), (13, 3, 2, 1), (6, 3, 3, 1), (5, 2, 3, 0)])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_pool_output_size_matches_pytorch_rule(size, k, s, p, ceil_mode, rng):
    x = fastconv.tensor(randn(rng, 1, 1, size, size))
    want = R.pool_out_size(size, k, s, p, ceil_mode)
    assert F.max_pool2d(x, k, s, p, ceil_mode=ceil_mode).shape == (1, 1, want, want)
    assert F.avg_pool2d(x, k, s, p, ceil_mode).shape == (1, 1, want, want)


def test_pool_output_size_vs_torch(rng):
    torch = pytest.importorskip("torch")
    for size in range(3, 20):
        for k, s, p in [(3, 2, 0), (3, 2, 1), (2, 2, 0), (3, 3, 1), (2, 3, 1)]:
            for ceil in (False, True):
                if size + 2 * p < k:
                    continue
                want = torch.nn.functional.max_pool2d(torch.zeros(1, 1, size, size), k, s, p,
                                                      ceil_mode=ceil).shape
                got = F.max_pool2d(fastconv.tensor(randn(rng, 1, 1, size, size)), k, s, p,
                                   ceil_mode=ceil)
                assert got.shape == tuple(want), (size, k, s, p, ceil)


# ----------------------------------------------------------------------------- ties

def test_max_pool2d_ties_first_maximum_in_row_major_order_wins():
    """All-equal windows: the whole gradient goes to the window's first element."""
    x = np.full((1, 1, 4, 4), 2.5, np.float32)
    t = fastconv.tensor(x, requires_grad=True)
    y = F.max_pool2d(t, 2, 2)
    y.backward(fastconv.tensor(np.array([[[[1.0, 2.0], [3.0, 4.0]]]], np.float32)))
    want = np.zeros((4, 4))
    want[0, 0], want[0, 2], want[2, 0], want[2, 2] = 1, 2, 3, 4
    np.testing.assert_array_equal(to_numpy(t.grad)[0, 0], want)


def test_max_pool2d_ties_within_window_pick_first_in_scan_order():
    # window 3x3 over a 3x3 plane: maxima at (0, 2), (1, 0) and (2, 1); (0, 2) comes first
    x = np.array([[0, 1, 9], [9, 2, 3], [4, 9, 5]], np.float32)[None, None]
    t = fastconv.tensor(x, requires_grad=True)
    F.max_pool2d(t, 3).sum().backward()
    want = np.zeros((3, 3))
    want[0, 2] = 1
    np.testing.assert_array_equal(to_numpy(t.grad)[0, 0], want)
    # row-major, not column-major: (1, 0) precedes (0, 2) column-major, but loses here
    x2 = np.array([[0, 1, 7], [7, 2, 3], [4, 5, 6]], np.float32)[None, None]
    t2 = fastconv.tensor(x2, requires_grad=True)
    F.max_pool2d(t2, 3).sum().backward()
    assert to_numpy(t2.grad)[0, 0, 0, 2] == 1 and to_numpy(t2.grad)[0, 0, 1, 0] == 0


def test_max_pool2d_ties_overlapping_windows_match_reference_rule(rng):
    """Heavily tied input (values from {0, 1}) with overlap, padding and ceil mode:
    the gradient equals the one implied by the reference's first-max indices."""
    for k, s, p, ceil in [(3, 2, 1, True), (3, 1, 1, False), (2, 1, 0, False), (3, 2, 0, True)]:
        x = rng.integers(0, 2, size=(2, 3, 7, 6)).astype(np.float32)
        _, idx = R.max_pool2d_with_indices(x, k, s, p, ceil)
        g = randn(rng, *idx.shape)
        want = np.zeros(x.shape)
        n, c = np.indices(idx.shape[:2])
        for i in range(idx.shape[2]):
            for j in range(idx.shape[3]):
                np.add.at(want.reshape(2, 3, -1), (n, c, idx[:, :, i, j]), g[:, :, i, j])
        t = fastconv.tensor(x, requires_grad=True)
        F.max_pool2d(t, k, s, p, ceil_mode=ceil).backward(fastconv.tensor(g))
        assert_close(to_numpy(t.grad), want, name=f"max_pool2d tie grad k={k} s={s} p={p}")


def test_max_pool2d_padding_never_wins():
    """All-negative input: padding (implicitly -inf) must not be selected."""
    x = np.full((1, 1, 3, 3), -4.0, np.float32)
    t = fastconv.tensor(x, requires_grad=True)
    y = F.max_pool2d(t, 3, 1, 1)
    np.testing.assert_array_equal(to_numpy(y), np.full((1, 1, 3, 3), -4.0))
    y.sum().backward()
    # every window's first in-input element: (0,0) for the 4 windows touching it, ...
    _, idx = R.max_pool2d_with_indices(x, 3, 1, 1)
    want = np.bincount(idx.reshape(-1), minlength=9).reshape(3, 3)
    np.testing.assert_array_equal(to_numpy(t.grad)[0, 0], want)


def test_max_pool2d_backend_indices_follow_the_tie_rule(rng):
    """The kernel interface's indices: flat offset h*W + w of the first maximum."""
    from fastconv.backend import get_backend

    cpu = get_backend("cpu")
    x = rng.integers(0, 3, size=(2, 2, 7, 7)).astype(np.float32)
    for k, s, p, ceil in [((3, 3), (2, 2), (1, 1), True), ((2, 2), (1, 1), (0, 0), False)]:
        y, idx = cpu.max_pool2d_forward(np.ascontiguousarray(x), k, s, p, ceil)
        want_y, want_idx = R.max_pool2d_with_indices(x, k, s, p, ceil)
        assert idx.dtype == np.int32
        np.testing.assert_array_equal(y, want_y)
        np.testing.assert_array_equal(idx, want_idx)


# ----------------------------------------------------------------------------- adaptive

@pytest.mark.parametrize("shape,out", [
    ((2, 3, 5, 7), 1), ((1, 4, 6, 6), (1, 1)), ((2, 2, 8, 6), (4, 3)), ((2, 2, 6, 6), 2),
    ((2, 3, 7, 5), (3, 2)),        # uneven windows, overlapping along H
    ((1, 2, 5, 9), (4, 6)),        # overlapping along both axes
    ((2, 1, 3, 4), (5, 6)),        # output larger than the input: cells repeat
    ((1, 3, 10, 1), (3, 1)),       # a single column
], ids=str)
def test_adaptive_avg_pool2d(shape, out, rng):
    check_op(lambda t: F.adaptive_avg_pool2d(t, out), lambda a: R.adaptive_avg_pool2d(a, out),
             [randn(rng, *shape)], rng=rng, name="adaptive_avg_pool2d")


def test_adaptive_avg_pool2d_none_keeps_the_input_size(rng):
    x = randn(rng, 2, 3, 7, 5)
    y = F.adaptive_avg_pool2d(fastconv.tensor(x), (3, None))
    assert y.shape == (2, 3, 3, 5)
    assert_close(to_numpy(y), R.adaptive_avg_pool2d(x, (3, 5)), name="adaptive_avg_pool2d")


@pytest.mark.parametrize("shape,out", [((4, 64, 8, 8), 1), ((2, 8, 13, 11), (6, 4)),
                                       ((2, 3, 4, 4), (7, 3))], ids=str)
def test_adaptive_avg_pool2d_vs_torch(shape, out, rng):
    torch = pytest.importorskip("torch")
    check_vs_torch(lambda t: F.adaptive_avg_pool2d(t, out),
                   lambda t: torch.nn.functional.adaptive_avg_pool2d(t, out),
                   [randn(rng, *shape)], rng=rng, name="adaptive_avg_pool2d")


@pytest.mark.parametrize("shape,out", [
    ((2, 3, 8, 8), 3), ((2, 2, 13, 11), (6, 4)),   # uneven windows (the separable matrices)
    ((1, 3, 5, 7), (9, 4)),                        # output larger than the input along H
    ((2, 2, 1, 10), (1, 3)),                       # a single row (interpolate's area on 1-D)
    ((2, 3, 8, 6), (4, 3)), ((2, 2, 5, 5), 1),     # divisible sizes and global pooling
], ids=str)
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # inf - inf = NaN, as torch
def test_adaptive_avg_pool2d_nonfinite_values_stay_in_their_windows(shape, out, rng):
    """An inf or NaN in the input reaches only the outputs whose windows hold it (the product
    with the dense averaging matrices would spread it over its plane: 0 * inf = NaN), and one
    in dy only the inputs under its window: the same NaN / inf and values as torch."""
    torch = pytest.importorskip("torch")
    for trial in range(4):
        x = poison(rng, randn(rng, *shape), count=1 + trial)
        xf, xt = fastconv.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        y = F.adaptive_avg_pool2d(xf, out)
        yt = torch.nn.functional.adaptive_avg_pool2d(xt, out)
        assert_nonfinite_like(y.detach(), yt.detach(), name=f"adaptive_avg_pool2d{shape}")
        dy = randn(rng, *yt.shape)
        if trial % 2:
            poison(rng, dy, count=trial)
        y.backward(fastconv.tensor(dy))
        yt.backward(torch.tensor(dy))
        assert_nonfinite_like(xf.grad, xt.grad, name=f"adaptive_avg_pool2d{shape} grad")


def test_adaptive_avg_pool2d_one_inf_poisons_one_window():
    x = np.zeros((1, 1, 8, 8), np.float32)
    x[0, 0, 0, 0] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "invalid value encountered in matmul"
        y = to_numpy(F.adaptive_avg_pool2d(fastconv.tensor(x), 3))
    assert np.isposinf(y[0, 0, 0, 0]) and np.count_nonzero(~np.isfinite(y)) == 1
    np.testing.assert_array_equal(y.reshape(-1)[1:], 0.0)


# ----------------------------------------------------------------------------- random sweeps

def _draw_pool_case(d):
    kh, kw = d(st.integers(1, 4)), d(st.integers(1, 4))
    sh, sw = d(st.integers(1, 3)), d(st.integers(1, 3))
    ph, pw = d(st.integers(0, kh // 2)), d(st.integers(0, kw // 2))
    h = d(st.integers(max(1, kh - 2 * ph), 9))
    w = d(st.integers(max(1, kw - 2 * pw), 9))
    n, c = d(st.integers(1, 2)), d(st.integers(1, 3))
    args = dict(kernel_size=(kh, kw), stride=(sh, sw), padding=(ph, pw),
                ceil_mode=d(st.booleans()))
    return (n, c, h, w), args, np.random.default_rng(d(st.integers(0, 2**31 - 1)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_pool_random_shapes_vs_reference(data):
    shape, args, rng = _draw_pool_case(data.draw)
    check_op(lambda t: F.max_pool2d(t, **args), lambda a: R.max_pool2d(a, **args),
             [distinct(rng, *shape)], rng=rng, max_numerical=60, name=f"max_pool2d{shape}{args}")
    cip = data.draw(st.booleans())
    check_op(lambda t: F.avg_pool2d(t, count_include_pad=cip, **args),
             lambda a: R.avg_pool2d(a, count_include_pad=cip, **args),
             [randn(rng, *shape)], rng=rng, max_numerical=60, name=f"avg_pool2d{shape}{args}")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_pool_random_shapes_vs_torch(data):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    shape, args, rng = _draw_pool_case(data.draw)
    check_vs_torch(lambda t: F.max_pool2d(t, **args), lambda t: tf.max_pool2d(t, **args),
                   [distinct(rng, *shape)], rng=rng, name=f"max_pool2d{shape}{args}")
    cip = data.draw(st.booleans())
    check_vs_torch(lambda t: F.avg_pool2d(t, count_include_pad=cip, **args),
                   lambda t: tf.avg_pool2d(t, count_include_pad=cip, **args),
                   [randn(rng, *shape)], rng=rng, name=f"avg_pool2d{shape}{args}")


def test_max_pool2d_propagates_nan():
    """A NaN in a window makes that window's maximum NaN (as in PyTorch), not a silent number."""
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    x[0, 0, 1, 1] = np.nan
    y = to_numpy(F.max_pool2d(fastconv.tensor(x), 2))
    assert np.isnan(y[0, 0, 0, 0])
    np.testing.assert_array_equal(y[0, 0].reshape(-1)[1:], [7, 13, 15])


@pytest.mark.parametrize("kernel, stride, padding, ceil_mode", [
    (2, 2, 0, False), (2, 2, 1, True), (3, 2, 0, True), (3, 2, 1, False), (3, 1, 1, False),
    (3, 1, 0, False), ((3, 2), (2, 1), (1, 0), True), (4, 3, 2, False),
], ids=str)
def test_max_pool2d_ties_nan_and_infinities_vs_torch(kernel, stride, padding, ceil_mode, rng):
    """Values and indices on input full of ties, NaNs and infinities, for the windows with
    an unrolled kernel inside the plane (2x2/2, 3x3/2, 3x3/1) and the general one at the
    edges and elsewhere: the same as torch's (a later NaN takes the index over an earlier one)."""
    torch = pytest.importorskip("torch")
    shape = (2, 3, int(rng.integers(6, 14)), int(rng.integers(6, 40)))
    x = rng.integers(0, 3, size=shape).astype(np.float32)
    x[rng.random(shape) < 0.03] = np.nan
    x[rng.random(shape) < 0.03] = np.inf
    x[rng.random(shape) < 0.03] = -np.inf
    args = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode)
    y, idx = F.max_pool2d(fastconv.tensor(x), return_indices=True, **args)
    want_y, want_idx = torch.nn.functional.max_pool2d(torch.from_numpy(x), return_indices=True,
                                                      **args)
    np.testing.assert_array_equal(to_numpy(y), want_y.numpy())  # NaN in the same places
    np.testing.assert_array_equal(to_numpy(idx), want_idx.numpy())


@pytest.mark.parametrize("shape, kernel, stride, padding, dilation, kind", [
    ((2, 4, 1, 3), (1, 3), 3, 0, 2, "max"),     # the dilated kernel is longer than the input
    ((1, 2, 3, 3), 3, 3, 0, 2, "max"),
    ((1, 6, 12, 1), (1, 4), (1, 3), (0, 1), 1, "avg"),
    ((1, 2, 4, 4), 4, 3, 1, 1, "avg"),
])
def test_ceil_mode_window_past_the_padded_input(shape, kernel, stride, padding, dilation, kind,
                                                rng):
    """In ceil mode PyTorch only asks for an output of at least one: the last window may
    reach past the padded input, its taps there skipped (and, for the average, not counted
    beyond the padding)."""
    torch = pytest.importorskip("torch")
    x = distinct(rng, *shape)
    if kind == "max":
        check_vs_torch(lambda t: F.max_pool2d(t, kernel, stride, padding, dilation, True),
                       lambda t: torch.nn.functional.max_pool2d(t, kernel, stride, padding,
                                                                dilation, True),
                       [x], rng=rng, name="max_pool2d ceil overhang")
        return
    for include_pad in (True, False):
        check_vs_torch(lambda t: F.avg_pool2d(t, kernel, stride, padding, True, include_pad),
                       lambda t: torch.nn.functional.avg_pool2d(t, kernel, stride, padding, True,
                                                                include_pad),
                       [x], rng=rng, name="avg_pool2d ceil overhang")


def test_no_output_is_still_an_error(rng):
    x = fastconv.tensor(randn(rng, 1, 1, 1, 3))
    with pytest.raises(ValueError, match="leaves no output"):
        F.max_pool2d(x, (1, 3), 3, 0, 2, ceil_mode=False)


@pytest.mark.parametrize("args", [
    {"kernel_size": 10**6, "padding": 5 * 10**5},
    {"kernel_size": (3, 10**6), "stride": (1, 10**6), "padding": (1, 5 * 10**5)},
    {"kernel_size": (10**6, 2), "stride": 1, "padding": (5 * 10**5, 1), "dilation": (1, 3)},
], ids=["both", "wide", "tall-dilated"])
def test_max_pool2d_window_far_into_the_padding(args, rng):
    """A window that reaches far past the input costs the taps inside it, not its size (it
    used to take seconds and gigabytes of tap tables); values, indices and gradients as
    torch's."""
    torch = pytest.importorskip("torch")
    x = distinct(rng, 2, 3, 8, 9)
    check_vs_torch(lambda t: F.max_pool2d(t, **args),
                   lambda t: torch.nn.functional.max_pool2d(t, **args),
                   [x], rng=rng, name="max_pool2d")
    _, got = F.max_pool2d(fastconv.tensor(x), **args, return_indices=True)
    _, want = torch.nn.functional.max_pool2d(torch.tensor(x), **args, return_indices=True)
    np.testing.assert_array_equal(to_numpy(got), want.numpy())


@pytest.mark.parametrize("p", [float("inf"), -float("inf")])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_lp_pool_infinite_norm_is_torchs_max_of_abs(p, ceil_mode, rng):
    """norm_type=inf is the max of |x| over the window, -inf its min, as torch computes them
    (the power formula gave 1 everywhere)."""
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    x = distinct(rng, 2, 3, 7, 6)
    check_vs_torch(lambda t: F.lp_pool2d(t, p, 3, 2, ceil_mode),
                   lambda t: tf.lp_pool2d(t, p, 3, 2, ceil_mode), [x], rng=rng, name="lp_pool2d")
    check_vs_torch(lambda t: F.lp_pool1d(t, p, 3, 2, ceil_mode),
                   lambda t: tf.lp_pool1d(t, p, 3, 2, ceil_mode), [x[0]], rng=rng,
                   name="lp_pool1d")
    check_vs_torch(lambda t: F.lp_pool3d(t, p, (2, 3, 2), None, ceil_mode),
                   lambda t: tf.lp_pool3d(t, p, (2, 3, 2), None, ceil_mode), [x[None]], rng=rng,
                   name="lp_pool3d")
