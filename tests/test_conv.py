"""conv2d and linear: forward against the float64 reference, analytic gradients
against central differences, and both against torch.nn.functional."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import reference as R
from helpers import (
    FWD_ATOL,
    GRAD_ATOL,
    assert_close,
    assert_grad_close,
    backward_with,
    check_op,
    check_vs_torch,
    conv_weight,
    randn,
    to_numpy,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastconv
import fastconv.functional as F

# (N, C, H, W, OC, KH, KW, stride, padding, dilation, groups, bias)
CONV_CASES = {
    "3x3": (2, 3, 7, 7, 4, 3, 3, 1, 0, 1, 1, True),
    "3x3-pad1": (2, 3, 6, 6, 5, 3, 3, 1, 1, 1, 1, True),
    "stride2-pad1-odd": (2, 2, 9, 7, 3, 3, 3, 2, 1, 1, 1, True),
    "5x5-stride2 (kernel wider than stride)": (1, 2, 11, 9, 3, 5, 5, 2, 2, 1, 1, True),
    "dilation2": (2, 2, 9, 9, 3, 3, 3, 1, 1, 2, 1, True),
    "dilation(2,1)-stride(1,2)": (1, 3, 8, 9, 2, 3, 2, (1, 2), (0, 1), (2, 1), 1, True),
    "groups2": (2, 4, 6, 6, 6, 3, 3, 1, 1, 1, 2, True),
    "depthwise": (2, 3, 6, 5, 3, 3, 3, 1, 1, 1, 3, True),
    "depthwise-multiplier2": (1, 2, 5, 5, 4, 3, 3, 2, 1, 1, 2, False),
    "1x1": (2, 5, 4, 6, 3, 1, 1, 1, 0, 1, 1, True),
    "1x1-stride2": (2, 4, 7, 7, 3, 1, 1, 2, 0, 1, 1, True),
    "1x1-pad1": (1, 3, 4, 4, 2, 1, 1, 1, 1, 1, 1, True),
    "1x1-groups": (2, 4, 3, 3, 6, 1, 1, 1, 0, 1, 2, True),
    "1x3": (2, 3, 5, 7, 2, 1, 3, 1, (0, 1), 1, 1, True),
    "3x1": (2, 3, 7, 5, 2, 3, 1, 1, (1, 0), 1, 1, True),
    "batch1-single-channel": (1, 1, 5, 5, 1, 3, 3, 1, 0, 1, 1, True),
    "single-output-pixel": (2, 3, 4, 4, 3, 4, 4, 1, 0, 1, 1, True),
    "stride-larger-than-kernel": (2, 2, 10, 10, 3, 2, 2, 3, 0, 1, 1, True),
    "no-bias": (2, 3, 6, 6, 4, 3, 3, 1, 1, 1, 1, False),
    "pad-equals-kernel": (1, 2, 3, 3, 2, 3, 3, 1, 3, 1, 1, True),
}


def _conv_inputs(rng, case):
    n, c, h, w, oc, kh, kw, stride, padding, dilation, groups, bias = case
    x = randn(rng, n, c, h, w)
    wt = conv_weight(rng, oc, c // groups, kh, kw)
    inputs = [x, wt] + ([randn(rng, oc, scale=0.5)] if bias else [])
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return inputs, args


def _fc_conv(args):
    return lambda x, w, b=None: F.conv2d(x, w, b, **args)


def _ref_conv(args):
    return lambda x, w, b=None: R.conv2d(x, w, b, **args)


@pytest.mark.parametrize("case", list(CONV_CASES.values()), ids=list(CONV_CASES))
def test_conv2d_vs_reference(case, rng):
    inputs, args = _conv_inputs(rng, case)
    check_op(_fc_conv(args), _ref_conv(args), inputs, rng=rng, max_numerical=200, name="conv2d")


@pytest.mark.parametrize("case", list(CONV_CASES.values()), ids=list(CONV_CASES))
def test_conv2d_vs_torch(case, rng):
    torch = pytest.importorskip("torch")
    inputs, args = _conv_inputs(rng, case)
    check_vs_torch(_fc_conv(args), lambda x, w, b=None: torch.nn.functional.conv2d(x, w, b, **args),
                   inputs, rng=rng, name="conv2d")


# Network-sized layers (NIN, AlexNet, GoogLeNet shapes, reduced batch) against torch.
LARGE_CASES = {
    "nin-5x5": (4, 3, 32, 32, 32, 5, 5, 1, 2, 1, 1, True),
    "alexnet-11x11-s4": (2, 3, 67, 67, 16, 11, 11, 4, 2, 1, 1, True),
    "alexnet-groups2": (2, 16, 13, 13, 24, 3, 3, 1, 1, 1, 2, True),
    "inception-1x1": (3, 64, 14, 14, 48, 1, 1, 1, 0, 1, 1, True),
    "inception-3x3": (2, 32, 14, 14, 48, 3, 3, 1, 1, 1, 1, True),
    "inception-7x7-s2": (2, 3, 45, 45, 16, 7, 7, 2, 3, 1, 1, False),
    "batch33-odd (threads split the batch)": (33, 5, 13, 11, 7, 3, 3, 2, 1, 1, 1, True),
    "batch17-1x1-stride2": (17, 24, 9, 9, 10, 1, 1, 2, 0, 1, 1, True),
    # Winograd F(2x2) path: stride 1, 3x3 or 5x5, >= 32 input, >= 16 output channels per group.
    "winograd-3x3-odd-no-pad": (3, 32, 9, 7, 16, 3, 3, 1, 0, 1, 1, False),
    "winograd-5x5": (2, 32, 12, 12, 24, 5, 5, 1, 2, 1, 1, True),
    "winograd-3x3-groups2": (2, 64, 13, 13, 48, 3, 3, 1, 1, 1, 2, True),
    "winograd-5x5-groups2-odd": (2, 64, 11, 9, 32, 5, 5, 1, 2, 1, 2, True),
    "winograd-3x3-groups4": (2, 128, 6, 5, 64, 3, 3, 1, 1, 1, 4, False),
    "5x5-16-channels (im2col below 32)": (2, 16, 12, 12, 32, 5, 5, 1, 2, 1, 1, True),
    # The GEMM drivers' edges (csrc/conv_gemm.cpp): more than 4096 pixels per image (the
    # weight gradient splits the image) with 40 channels (a part-filled panel of 32);
    # sums deeper than 512 (split in two); layers deeper than 1024 rows, whose backward
    # runs on OpenBLAS (conv.cpp); an output of 16 MB or more (streaming stores);
    # 31 x 31 pixels (rows not 64-byte aligned: no streaming).
    "4356-pixels-40-channels": (2, 2, 66, 66, 40, 3, 3, 1, 1, 1, 1, True),
    "1x1-depth-600": (2, 600, 5, 7, 20, 1, 1, 1, 0, 1, 1, True),
    "3x3-s2-depth-576": (2, 64, 9, 9, 24, 3, 3, 2, 1, 1, 1, True),
    "3x3-s2-depth-720": (3, 80, 9, 8, 24, 3, 3, 2, 1, 1, 1, True),
    "3x3-s2-depth-1152 (OpenBLAS backward)": (2, 128, 9, 9, 24, 3, 3, 2, 1, 1, 1, True),
    "1x1-depth-300 (own dW, OpenBLAS dx)": (3, 300, 5, 6, 24, 1, 1, 1, 0, 1, 1, True),
    "16MB-output": (8, 3, 64, 64, 128, 3, 3, 1, 1, 1, 1, True),
    "16MB-output-unaligned-rows": (8, 2, 31, 31, 512, 1, 1, 1, 0, 1, 1, True),
}


@pytest.mark.parametrize("name", list(LARGE_CASES))
def test_conv2d_network_shapes_vs_torch(name, rng):
    torch = pytest.importorskip("torch")
    inputs, args = _conv_inputs(rng, LARGE_CASES[name])
    # Winograd F(2x2, 5x5) carries about 5e-6 of the largest entry in y and dx and up to 2e-5
    # in dW (its interpolation points reach +-2; winograd.cpp, "Accuracy"). With outputs up
    # to about 4 here, y's error reaches 2e-5 (1.24e-5 seen, FASTCONV_TEST_SEED=33): y and
    # the gradients are bounded at 4e-5, twice the larger figure.
    winograd_5x5 = name.startswith("winograd-5x5")
    check_vs_torch(_fc_conv(args), lambda x, w, b=None: torch.nn.functional.conv2d(x, w, b, **args),
                   inputs, rng=rng, name="conv2d", atol=4e-5 if winograd_5x5 else FWD_ATOL,
                   grad_atol=4e-5 if winograd_5x5 else GRAD_ATOL)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_conv2d_random_shapes_vs_reference(data):
    """A hypothesis sweep over shapes and hyper-parameters (forward and gradients)."""
    d = data.draw
    groups = d(st.integers(1, 3))
    c = groups * d(st.integers(1, 2))
    oc = groups * d(st.integers(1, 2))
    kh, kw = d(st.integers(1, 4)), d(st.integers(1, 4))
    sh, sw = d(st.integers(1, 3)), d(st.integers(1, 3))
    ph, pw = d(st.integers(0, 2)), d(st.integers(0, 2))
    dh, dw = d(st.integers(1, 2)), d(st.integers(1, 2))
    # input at least as large as the dilated kernel minus the padding
    h = d(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 9))
    w = d(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 9))
    n = d(st.integers(1, 2))
    bias = d(st.booleans())
    seed = d(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    case = (n, c, h, w, oc, kh, kw, (sh, sw), (ph, pw), (dh, dw), groups, bias)
    inputs, args = _conv_inputs(rng, case)
    check_op(_fc_conv(args), _ref_conv(args), inputs, rng=rng, max_numerical=60,
             name=f"conv2d{case}")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_conv2d_random_shapes_vs_torch(data):
    """The same sweep against torch, with larger channel counts."""
    torch = pytest.importorskip("torch")
    d = data.draw
    groups = d(st.sampled_from([1, 1, 2, 4]))
    c, oc = groups * d(st.integers(1, 6)), groups * d(st.integers(1, 6))
    kh, kw = d(st.integers(1, 5)), d(st.integers(1, 5))
    sh, sw = d(st.integers(1, 3)), d(st.integers(1, 3))
    ph, pw = d(st.integers(0, 3)), d(st.integers(0, 3))
    dh, dw = d(st.integers(1, 3)), d(st.integers(1, 3))
    h = d(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 17))
    w = d(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 17))
    case = (d(st.integers(1, 3)), c, h, w, oc, kh, kw, (sh, sw), (ph, pw), (dh, dw), groups,
            d(st.booleans()))
    rng = np.random.default_rng(d(st.integers(0, 2**31 - 1)))
    inputs, args = _conv_inputs(rng, case)
    check_vs_torch(_fc_conv(args), lambda x, w, b=None: torch.nn.functional.conv2d(x, w, b, **args),
                   inputs, rng=rng, name=f"conv2d{case}")


def test_conv2d_stride_past_the_input(rng):
    """A stride larger than the padded input leaves one output row or column, which reads the
    same pixels as stride 1 would there: the same values and gradients as the equivalent
    stride of the padded size (it used to allocate gigabytes, in proportion to the stride)."""
    x, w = randn(rng, 2, 3, 8, 9), randn(rng, 4, 3, 3, 3)
    padding = (1, 2)
    big = (10**8, 10**8)
    equal = (8 + 2 * padding[0], 9 + 2 * padding[1])  # one output per axis as well
    for stride in (big, (1, big[1]), (big[0], 2)):
        same = tuple(e if s == b else s for s, e, b in zip(stride, equal, big))
        check_op(lambda a, k: F.conv2d(a, k, stride=stride, padding=padding),
                 lambda a, k: R.conv2d(a, k, stride=same, padding=padding), [x, w])


@pytest.mark.parametrize("x_shape, w_shape", [
    ((2, 3, 6, 5), (0, 3, 3, 3)),   # no output channels
    ((0, 3, 6, 5), (4, 3, 3, 3)),   # no images
    ((2, 0, 6, 5), (4, 0, 3, 3)),   # no input channels
], ids=["no-out-channels", "no-images", "no-in-channels"])
def test_conv2d_empty_dimensions(x_shape, w_shape, rng):
    """Sums over nothing are zero: outputs (the bias alone), and every gradient; none of them
    may come back as uninitialised memory."""
    x, w = randn(rng, *x_shape), randn(rng, *w_shape)
    b = randn(rng, w_shape[0])
    ts = [fastconv.tensor(a, requires_grad=True) for a in (x, w, b)]
    y = F.conv2d(*ts, padding=1)
    want = np.broadcast_to(b.reshape(1, -1, 1, 1), (x_shape[0], w_shape[0], 6, 5))
    assert_close(to_numpy(y), want, rtol=0, atol=0)
    backward_with(y, randn(rng, *y.shape))
    for t, a in zip(ts[:2], (x, w)):
        assert_close(to_numpy(t.grad), np.zeros_like(a), rtol=0, atol=0, name="gradient")


def test_numpy_integer_arguments_are_accepted(rng):
    """groups (like stride, padding and dilation) may be a NumPy integer, as in torch:
    sizes read from arrays often are."""
    x, w = randn(rng, 1, 4, 6, 6), randn(rng, 4, 2, 3, 3)
    want = F.conv2d(fastconv.tensor(x), fastconv.tensor(w), groups=2)
    got = F.conv2d(fastconv.tensor(x), fastconv.tensor(w), groups=np.int64(2),
                   stride=np.int32(1))
    assert_close(to_numpy(got), to_numpy(want), rtol=0, atol=0)
    layer = fastconv.nn.Conv2d(np.int64(4), 4, 3, groups=np.int64(2))
    assert layer(fastconv.tensor(x)).shape == (1, 4, 4, 4)
    y = F.conv_transpose2d(fastconv.tensor(x), fastconv.tensor(w), groups=np.int64(2))
    assert y.shape == (1, 4, 8, 8)
    with pytest.raises(ValueError, match="groups must be a positive int"):
        F.conv2d(fastconv.tensor(x), fastconv.tensor(w), groups=True)


def test_conv_transpose2d_without_input_channels_is_its_bias(rng):
    x, w, b = randn(rng, 2, 0, 4, 5), randn(rng, 0, 3, 3, 3), randn(rng, 3)
    y = F.conv_transpose2d(fastconv.tensor(x), fastconv.tensor(w), fastconv.tensor(b), stride=2)
    assert y.shape == (2, 3, 9, 11)
    assert_close(to_numpy(y), np.broadcast_to(b.reshape(1, 3, 1, 1), y.shape), rtol=0, atol=0)


def test_conv2d_gradient_only_where_required(rng):
    inputs, args = _conv_inputs(rng, CONV_CASES["stride2-pad1-odd"])
    x, w, b = inputs
    g = randn(rng, *R.conv2d(x, w, b, **args).shape)
    # frozen weights: only the input gets a gradient
    tx = fastconv.tensor(x, requires_grad=True)
    tw, tb = fastconv.tensor(w), fastconv.tensor(b)
    F.conv2d(tx, tw, tb, **args).backward(fastconv.tensor(g))
    assert tw.grad is None and tb.grad is None
    want_dx = _numeric_dx(x, w, b, g, args)
    assert_grad_close(to_numpy(tx.grad), want_dx, name="dx")
    # first layer: the input needs no gradient, the weights do
    tx = fastconv.tensor(x)
    tw, tb = fastconv.tensor(w, requires_grad=True), fastconv.tensor(b, requires_grad=True)
    F.conv2d(tx, tw, tb, **args).backward(fastconv.tensor(g))
    assert tx.grad is None
    assert tw.grad is not None and tb.grad is not None
    assert_grad_close(to_numpy(tb.grad), g.astype(np.float64).sum(axis=(0, 2, 3)), name="db")


def _numeric_dx(x, w, b, g, args):
    """d sum(conv(x) * g) / dx, exactly: conv is linear in x, so the gradient is the
    correlation of g with the flipped kernel (computed here by differentiating the
    reference through each unit input)."""
    x64 = x.astype(np.float64)
    dx = np.zeros_like(x64)
    g64 = g.astype(np.float64)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x64)
        e[i] = 1.0
        dx[i] = np.sum(R.conv2d(e, w, None, **args) * g64)
    return dx


def test_conv2d_weight_gradient_accumulates_over_calls(rng):
    """A weight used twice (shared layer) gets the sum of both gradients."""
    x1, x2 = randn(rng, 2, 3, 5, 5), randn(rng, 2, 3, 5, 5)
    w = conv_weight(rng, 4, 3, 3, 3)
    tw = fastconv.tensor(w, requires_grad=True)
    y = F.conv2d(fastconv.tensor(x1), tw, padding=1) + F.conv2d(fastconv.tensor(x2), tw, padding=1)
    y.sum().backward()
    # d/dw sum(conv(x, w)) = sum over positions of the input patches: linear in x
    tw2 = fastconv.tensor(w, requires_grad=True)
    F.conv2d(fastconv.tensor(x1 + x2), tw2, padding=1).sum().backward()
    assert_grad_close(to_numpy(tw.grad), to_numpy(tw2.grad), name="dw")


def test_conv2d_does_not_modify_its_inputs(rng):
    inputs, args = _conv_inputs(rng, CONV_CASES["groups2"])
    copies = [a.copy() for a in inputs]
    ts = [fastconv.tensor(a, requires_grad=True) for a in inputs]
    F.conv2d(*ts, **args).sum().backward()
    for t, a in zip(ts, copies):
        np.testing.assert_array_equal(to_numpy(t), a)


def test_conv2d_non_contiguous_input(rng):
    x = randn(rng, 2, 6, 5, 3)  # permuted to (2, 3, 5, 6): not C-contiguous underneath
    w = conv_weight(rng, 4, 3, 3, 3)
    tx = fastconv.tensor(x).permute(0, 3, 2, 1)
    y = F.conv2d(tx, fastconv.tensor(w), padding=1)
    assert_close(to_numpy(y), R.conv2d(x.transpose(0, 3, 2, 1), w, padding=1), name="conv2d")


# ----------------------------------------------------------------------------- linear

@pytest.mark.parametrize("shape,out_features,bias", [
    ((4, 7), 5, True), ((1, 3), 1, True), ((6, 10), 4, False), ((2, 3, 8), 5, True),
], ids=str)
def test_linear_vs_reference(shape, out_features, bias, rng):
    x = randn(rng, *shape)
    w = randn(rng, out_features, shape[-1], scale=1 / np.sqrt(shape[-1]))
    inputs = [x, w] + ([randn(rng, out_features)] if bias else [])
    check_op(lambda x, w, b=None: F.linear(x, w, b), R.linear, inputs, rng=rng, name="linear")


def test_linear_vs_torch(rng):
    torch = pytest.importorskip("torch")
    x, w, b = randn(rng, 16, 300), randn(rng, 70, 300, scale=300 ** -0.5), randn(rng, 70)
    check_vs_torch(F.linear, torch.nn.functional.linear, [x, w, b], rng=rng, name="linear")


def test_blas_runs_on_openmp_threads_and_matches_numpy(rng):
    """OpenBLAS hands its parts of each product to OpenMP's threads (one pool, see
    csrc/blas.cpp); products big enough to be split must still equal NumPy's."""
    from fastconv.backend import cpu

    info = cpu._C.blas_info()
    assert info["loaded"] and info["batch_strided"]
    if "FASTCONV_BLAS_OWN_THREADS" not in os.environ:
        assert info["threads_on_openmp"]
    for m, k, n in [(512, 300, 700), (7, 1000, 5), (1024, 64, 1024)]:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        want = a.astype(np.float64) @ b.astype(np.float64)
        for trans_a, trans_b in [(False, False), (True, True)]:
            got = cpu._C.gemm(np.ascontiguousarray(a.T) if trans_a else a,
                              np.ascontiguousarray(b.T) if trans_b else b, trans_a, trans_b)
            assert_close(got, want, rtol=1e-4, atol=1e-4 * np.sqrt(k), name="gemm")


def test_thread_count_can_change_between_products(rng):
    """set_num_threads changes OpenMP's team and OpenBLAS's split together; results stay
    the same whatever the count."""
    x = fastconv.tensor(rng.standard_normal((4, 8, 20, 20), dtype=np.float32))
    w = fastconv.tensor(rng.standard_normal((16, 8, 3, 3), dtype=np.float32))
    a = rng.standard_normal((300, 400), dtype=np.float32)
    before = fastconv.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3, before):
            fastconv.set_num_threads(n)
            assert fastconv.get_num_threads() == n
            results.append((to_numpy(F.conv2d(x, w, stride=2)), fastconv.backend.cpu.gemm(a, a, False, True)))
        for y, g in results[1:]:
            assert_close(y, results[0][0], rtol=1e-5, atol=1e-5, name="conv2d")
            assert_close(g, results[0][1], rtol=1e-5, atol=1e-3, name="gemm")
    finally:
        fastconv.set_num_threads(before)
    with pytest.raises(ValueError, match="positive int"):
        fastconv.set_num_threads(0)


def _run_python(code, env):
    """Run ``code`` in a fresh interpreter (OpenMP reads its settings once, at load)."""
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out


def test_thread_limit_below_core_count_does_not_hang():
    """OpenBLAS's parts of a product wait on each other, so it must never split a product
    into more parts than OpenMP runs at once, even under OMP_THREAD_LIMIT=1."""
    code = ("import numpy as np, fastconv; from fastconv.backend import cpu; "
            "fastconv.set_num_threads(4); a = np.ones((600, 600), np.float32); "
            "assert np.allclose(cpu.gemm(a, a), 600); print(fastconv.get_num_threads())")
    env = dict(os.environ, OMP_THREAD_LIMIT="1")
    out = _run_python(code, env)
    assert out.stdout.strip() == "1"


@pytest.mark.parametrize("user_value", [None, "7"])
def test_openmp_spin_setting_is_scoped_to_loading(user_value):
    """The import sets a short OpenMP spin time only while libgomp loads, keeps a value the
    user set, and leaves the environment as it found it."""
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    if user_value is not None:
        env["GOMP_SPINCOUNT"] = user_value
    code = "import os, fastconv; print(os.environ.get('GOMP_SPINCOUNT'))"
    out = _run_python(code, env)
    assert out.stdout.strip() == str(user_value)


@pytest.mark.parametrize("case", [(6, 3, 17, 15, 8, 5, 5, 1, 2, 1, 1, True),
                                  (5, 12, 9, 9, 10, 1, 1, 1, 0, 1, 1, True),
                                  (2, 2, 66, 66, 40, 3, 3, 1, 1, 1, 1, True),
                                  (3, 128, 9, 9, 24, 3, 3, 2, 1, 1, 1, True),
                                  (3, 600, 5, 7, 20, 1, 1, 1, 0, 1, 1, True)],
                         ids=["im2col", "1x1", "image-split-in-chunks", "deep-openblas",
                              "deep-1x1-openblas"])
def test_gradients_are_the_same_for_any_thread_count(case, rng):
    """The weight gradient is summed chunk by chunk of pixels in a fixed order, and each
    image's input gradient is summed by one thread (whichever route: batch 2 takes the
    banded one with 1-2 threads, the chunked one with 3), so neither depends on how many
    threads computed it."""
    inputs, args = _conv_inputs(rng, case)
    with fastconv.no_grad():
        upstream = rng.standard_normal(F.conv2d(*(fastconv.tensor(a) for a in inputs), **args).shape,
                                       dtype=np.float32)
    before = fastconv.get_num_threads()
    grads = []
    try:
        for n in (1, 2, 3):
            fastconv.set_num_threads(n)
            x, w, b = (fastconv.tensor(a, requires_grad=True) for a in inputs)
            F.conv2d(x, w, b, **args).backward(upstream)
            grads.append((to_numpy(w.grad), to_numpy(x.grad)))
    finally:
        fastconv.set_num_threads(before)
    for dw, dx in grads[1:]:
        np.testing.assert_array_equal(dw, grads[0][0])
        np.testing.assert_array_equal(dx, grads[0][1])


def _cpu_runs(isa):
    features = fastconv.backend.cpu.cpu_features()
    return {"avx512": features.get("avx512f", False) and features.get("avx512dq", False),
            "avx2": features.get("avx2", False) and features.get("fma", False),
            "baseline": True}[isa]


@pytest.mark.parametrize("isa", ["avx512", "avx2", "baseline"])
def test_every_kernel_set_passes_the_convolution_tests(isa):
    """The convolution kernels exist once per instruction set and the import picks the widest
    one; FASTCONV_ISA selects another, so this machine checks each set it can run."""
    if not _cpu_runs(isa):
        pytest.skip(f"this CPU cannot run the {isa} kernels")
    tests = os.path.abspath(__file__)
    code = ("import sys, pytest, fastconv; from fastconv.backend import cpu; "
            f"assert cpu.cpu_features()['conv_kernels'] == {isa!r}; "
            f"sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', {tests!r}, "
            "'-k', 'vs_reference or vs_torch or thread_count']))")
    out = _run_python(code, dict(os.environ, FASTCONV_ISA=isa))
    assert " passed" in out.stdout and "failed" not in out.stdout, out.stdout


def test_unknown_kernel_set_fails_the_import_clearly():
    code = "import fastconv"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, FASTCONV_ISA="avx1024"))
    assert out.returncode != 0
    assert "FASTCONV_ISA=avx1024 is not one of avx512, avx2, baseline" in out.stderr
