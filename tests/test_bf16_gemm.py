"""The bfloat16 GEMM (csrc/gemm_bf16.h) and autocast on it.

This machine may have no bfloat16 instructions, so the tests run the emulated variants: the
same packing, blocking and micro-kernels as the real ones (avx512bf16, amx), with
VDPBF16PS / TDPBF16PS done in software. They switch the variant at run time through the
private ``_C._set_bf16_isa`` (``variant`` below), which takes FASTCONV_BF16_ISA's names and
checks; FASTCONV_BF16_ISA itself is tested in subprocesses.

(a) the emulations equal a NumPy transcription of the SDM's pseudocode bit for bit;
(b) on larger shapes they equal float64 products of the bfloat16-rounded inputs to float32
    accumulation accuracy;
(c) conv2d / linear / matmul under fastconv.autocast on the emulated GEMM equal the default
    path (round, then float32 kernels) up to summation order, and still match torch.autocast;
(d) a bad FASTCONV_BF16_ISA fails the import clearly;
(e) denormals, infinities and NaN behave as the instructions define.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fastconv
import fastconv.functional as F
from fastconv.backend import cpu as cpu_backend
from fastconv.function import Function

_C = cpu_backend._C
EMULATED = ("emulated", "emulated_amx")


def _runs_here(name):
    """Whether this CPU (and build) runs the real variant ``name``."""
    before = _C.bf16_kernels()
    try:
        _C._set_bf16_isa(name)
    except ValueError:
        return False
    _C._set_bf16_isa(before)
    return True


# The real variants this machine has: the same tests run on them (within float32 summation
# order of their emulation, as the first-use check allows; not bit for bit).
REAL = tuple(name for name in ("avx512bf16", "amx") if _runs_here(name))


@contextlib.contextmanager
def variant(name):
    """Run the block on the bfloat16 GEMM variant ``name``, then restore the one in use."""
    before = _C.bf16_kernels()
    _C._set_bf16_isa(name)
    try:
        yield
    finally:
        _C._set_bf16_isa(before)


# ---------------------------------------------------------------- the reference


def bf16_bits(x):
    """float32 -> bfloat16 bits, nearest even; NaN -> 0x7FC0 (as round_bf16_inplace)."""
    u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF
    return np.where((u & 0x7FFFFFFF) > 0x7F800000, 0x7FC0, r).astype(np.uint32)


def from_bits(h):
    return (np.asarray(h, np.uint32) << 16).view(np.float32)


def bf16(x):
    return from_bits(bf16_bits(x))


def flush(x):
    """DAZ / FTZ: a denormal float32 becomes a zero of its sign."""
    x = np.array(x, np.float32, copy=True)
    u = x.view(np.uint32)
    den = (u & 0x7F800000) == 0
    u[den] &= np.uint32(0x80000000)
    return x


def reference_gemm(a, b, kind, bias=None, c=None):
    """C (=, or += when c is given) bias + a @ b as the instructions compute it, step by step in
    float32. kind "emulated": VDPBF16PS, k padded to pairs, odd element of each pair first;
    "emulated_amx": TDPBF16PS, k padded to whole tiles (32), even element first. Each product
    and each sum is rounded to float32 and flushed (FTZ); inputs, the starting accumulator
    included, are read with DAZ."""
    M, K = a.shape
    N = b.shape[1]
    pad = 2 if kind == "emulated" else 32
    Kp = -(-K // pad) * pad
    A = np.zeros((M, Kp), np.float32)
    B = np.zeros((Kp, N), np.float32)
    A[:, :K] = flush(bf16(a))
    B[:K] = flush(bf16(b))
    acc = np.zeros((M, N), np.float32) if c is None else np.array(c, np.float32)
    if bias is not None:
        acc = acc + bias.astype(np.float32)[:, None]
    if K == 0:
        return acc
    acc = flush(acc)
    with np.errstate(all="ignore"):
        for k0 in range(0, Kp, 2):
            for k in ((k0 + 1, k0) if kind == "emulated" else (k0, k0 + 1)):
                acc = flush(acc + flush(A[:, k, None] * B[None, k, :]))
    return acc


def nonzero(rng, shape, scale=1.0, spread=0):
    """Random float32 values, none of them zero (a zero would hide a packing mistake), with
    magnitudes over 2^-spread .. 2^spread: wide enough, the float32 sums round at almost
    every step, so a different order of the operations shows in the last bits."""
    x = rng.uniform(0.25, 2.0, shape) * rng.choice([-1.0, 1.0], shape) * scale
    if spread:
        x *= np.exp2(rng.integers(-spread, spread + 1, shape))
    return x.astype(np.float32)


def wide(rng, shape):
    return nonzero(rng, shape, spread=8)


def same_bits(got, want):
    got, want = np.asarray(got, np.float32), np.asarray(want, np.float32)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan), "NaN in different places"
    bad = got[~nan].view(np.uint32) != want[~nan].view(np.uint32)
    assert not bad.any(), (f"{bad.sum()} of {bad.size} differ; first: got {got[~nan][bad][:4]}, "
                           f"want {want[~nan][bad][:4]}")


# ---------------------------------------------------------------- (a) bit for bit

SMALL_SHAPES = [  # (M, N, K): K = 1, odd K, edges of the 8 x 32 and 32 x 32 tiles, deep sums
    (1, 1, 1), (3, 5, 1), (7, 33, 2), (9, 31, 3), (8, 32, 17), (33, 65, 33),
    (17, 3, 515), (5, 40, 1100), (150, 7, 9), (2, 70, 64),
]


@pytest.mark.parametrize("kind", EMULATED)
@pytest.mark.parametrize("shape", SMALL_SHAPES)
def test_emulation_is_the_instruction_bit_for_bit(rng, kind, shape):
    M, N, K = shape
    a, b = wide(rng, (M, K)), wide(rng, (K, N))
    bias, c0 = wide(rng, (M,)), wide(rng, (M, N))
    with variant(kind):
        same_bits(cpu_backend.gemm_bf16(a, b), reference_gemm(a, b, kind))
        same_bits(cpu_backend.gemm_bf16(a, b, bias=bias), reference_gemm(a, b, kind, bias=bias))
        out = c0.copy()
        got = cpu_backend.gemm_bf16(a, b, bias=bias, out=out)
        assert got is out or np.shares_memory(got, out)
        same_bits(out, reference_gemm(a, b, kind, bias=bias, c=c0))


def test_the_reference_tells_the_orders_apart(rng):
    """The bit-for-bit tests mean something: on these inputs, summing the pairs' halves in the
    other order, or with fused multiply-adds (float64 here), changes many results."""
    a, b = wide(rng, (33, 101)), wide(rng, (101, 65))
    vnni, amx = reference_gemm(a, b, "emulated"), reference_gemm(a, b, "emulated_amx")
    assert (vnni != amx).mean() > 0.2
    exact = (bf16(a).astype(np.float64) @ bf16(b).astype(np.float64)).astype(np.float32)
    assert (vnni != exact).mean() > 0.2


@pytest.mark.parametrize("kind", EMULATED)
def test_any_strides(rng, kind):
    """Transposed, sliced and reversed operands are read in place, with the same result."""
    M, N, K = 19, 37, 45
    a, b = wide(rng, (M, K)), wide(rng, (K, N))
    want = reference_gemm(a, b, kind)
    big_a = nonzero(rng, (2 * K, 3 * M))
    big_a[::2, ::3] = a.T  # a^T as a strided view of a larger array
    with variant(kind):
        same_bits(cpu_backend.gemm_bf16(np.ascontiguousarray(a.T), b, trans_a=True), want)
        same_bits(cpu_backend.gemm_bf16(a, np.ascontiguousarray(b.T), trans_b=True), want)
        same_bits(cpu_backend.gemm_bf16(big_a[::2, ::3], b.T.copy().T, trans_a=True), want)
        same_bits(cpu_backend.gemm_bf16(a[::-1], b[:, ::-1])[::-1, ::-1], want)


# ---------------------------------------------------------------- (b) against float64


@pytest.mark.parametrize("kind, shape", [
    ("emulated", (130, 70, 700)), ("emulated", (64, 200, 257)), ("emulated", (5, 3, 1031)),
    ("emulated_amx", (70, 45, 300)),
] + [(kind, shape) for kind in REAL
     for shape in ((130, 70, 700), (64, 200, 257), (5, 3, 1031), (300, 333, 1500))])
def test_equals_exact_products_of_rounded_inputs(rng, kind, shape):
    M, N, K = shape
    a, b, bias = wide(rng, (M, K)), wide(rng, (K, N)), wide(rng, (M,))
    A, B = bf16(a).astype(np.float64), bf16(b).astype(np.float64)
    exact = bias[:, None] + A @ B
    mag = np.abs(bias)[:, None] + np.abs(A) @ np.abs(B)
    with variant(kind):
        got = cpu_backend.gemm_bf16(a, b, bias=bias)
    assert got.dtype == np.float32 and got.shape == (M, N)
    err = np.abs(got - exact) / mag
    assert err.max() < 2e-5, f"worst relative error {err.max():.3g}"
    # the inputs really were rounded: float32 inputs would give another product
    assert np.abs(got - (bias[:, None] + a.astype(np.float64) @ b)).max() > 1e-4 * mag.max()


# ---------------------------------------------------------------- (c) autocast on it


def assert_bf16_results_agree(got, want):
    """Two bfloat16 results of one product summed in different orders: equal, or one bfloat16
    step apart where the float32 sums fell on different sides of a rounding boundary."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    step = np.exp2(np.floor(np.log2(np.maximum(np.abs(want), 1e-30))) - 7)
    diff = np.abs(got - want)
    assert (diff <= step * 1.01 + 1e-6 * np.abs(want).max()).all(), f"worst {diff.max()}"
    assert (diff == 0).mean() > 0.9, f"only {(diff == 0).mean():.1%} equal"


CASES = {
    "conv": (((3, 8, 11, 9), (6, 8, 3, 3), (6,)), dict(padding=1)),
    "conv_grouped_strided": (((3, 8, 11, 9), (6, 4, 3, 3), (6,)),
                             dict(stride=2, padding=1, groups=2)),
    "conv_dilated": (((2, 5, 12, 10), (7, 5, 3, 2), None), dict(dilation=(2, 1), padding=(2, 0))),
    "conv_1x1": (((2, 16, 5, 7), (12, 16, 1, 1), (12,)), {}),
    # large enough for several chunks of images in each product (csrc/conv_bf16.cpp):
    # only on the real variants, the emulations would take minutes
    "conv_chunked": (((5, 64, 46, 46), (8, 64, 3, 3), (8,)), dict(padding=1)),
    "conv_1x1_chunked": (((5, 96, 40, 40), (24, 96, 1, 1), (24,)), {}),
    "linear": (((5, 33), (7, 33), (7,)), None),
    "matmul": (((9, 33), (33, 7)), None),
}


def run_case(case, arrays, dy):
    shapes, kw = CASES[case]
    if case.startswith("conv"):
        fn = lambda x, w, b=None: F.conv2d(x, w, b, **kw)  # noqa: E731
    elif case == "linear":
        fn = F.linear
    else:
        fn = lambda a, b: a @ b  # noqa: E731
    args = [fastconv.tensor(a.copy(), requires_grad=True) for a in arrays]
    with fastconv.autocast("cpu", dtype=fastconv.bfloat16):
        y = fn(*args)
    (y * fastconv.tensor(dy)).sum().backward()
    return y.detach().numpy(), [a.grad.numpy() for a in args]


@pytest.mark.parametrize("kind, case", [
    (kind, case) for kind in EMULATED + REAL for case in CASES
    if kind in REAL or "chunked" not in case])
def test_autocast_on_the_bf16_gemm_matches_the_default_path(rng, monkeypatch, case, kind):
    shapes, _ = CASES[case]
    arrays = [nonzero(rng, s, 0.3 if i == 1 else 1.0) for i, s in enumerate(shapes)
              if s is not None]
    with variant("none"):
        y0, g0 = run_case(case, arrays, np.zeros(1, np.float32))
    dy = nonzero(rng, y0.shape)
    with variant("none"):
        y0, g0 = run_case(case, arrays, dy)
    calls = []
    # the small cases are shallower than the depth where convolutions start to use the GEMM
    monkeypatch.setattr(Function, "MIN_BF16_GEMM_DEPTH", 1)
    for name in ("gemm_bf16", "conv2d_forward_bf16", "conv2d_backward_bf16"):
        real = getattr(cpu_backend, name)
        monkeypatch.setattr(cpu_backend, name,
                            lambda *a, _real=real, _name=name, **k: calls.append(_name)
                            or _real(*a, **k))
    with variant(kind):
        y1, g1 = run_case(case, arrays, dy)
    assert calls, "the bfloat16 GEMM did not run"
    assert np.array_equal(bf16(y1), y1)  # outputs are still bfloat16 values
    assert_bf16_results_agree(y1, y0)
    for i, (a, b) in enumerate(zip(g1, g0)):
        if i == 0 or case == "matmul":  # input gradients: bfloat16 values
            assert np.array_equal(bf16(a), a)
            assert_bf16_results_agree(a, b)
        else:  # weight and bias gradients: float32 sums
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())

    torch = pytest.importorskip("torch")
    tfn = {"linear": torch.nn.functional.linear}.get(case)
    if case.startswith("conv"):
        kw = CASES[case][1]
        tfn = lambda x, w, b=None: torch.nn.functional.conv2d(x, w, b, **kw)  # noqa: E731
    elif case == "matmul":
        tfn = lambda a, b: a @ b  # noqa: E731
    targs = [torch.from_numpy(a.copy()).requires_grad_() for a in arrays]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ty = tfn(*targs)
    (ty.float() * torch.from_numpy(dy)).sum().backward()
    tol = lambda want: dict(rtol=1.6e-2, atol=1.6e-2 * np.abs(want).max())  # noqa: E731
    want = ty.float().detach().numpy()
    np.testing.assert_allclose(y1, want, **tol(want))
    for a, t in zip(g1, targs):
        np.testing.assert_allclose(a, t.grad.numpy(), **tol(t.grad.numpy()))


@pytest.mark.parametrize("kind", EMULATED + REAL)
def test_shallow_convolutions_take_the_float32_kernels_forward(rng, monkeypatch, kind):
    """A first layer (3 x 3 x 3 taps) with fewer than 32 output channels runs forward on rounded
    copies and the float32 kernels, the deeper one beside it on the bfloat16 GEMM; backward,
    both take the bfloat16 GEMM. All give autocast's result."""
    used = {"forward": [], "backward": []}
    for name, key in (("conv2d_forward_bf16", "forward"), ("conv2d_backward_bf16", "backward")):
        real = getattr(cpu_backend, name)
        monkeypatch.setattr(cpu_backend, name, lambda *a, _r=real, _k=key, **k:
                            used[_k].append(a[1].shape) or _r(*a, **k))
    shallow = nonzero(rng, (8, 3, 3, 3), 0.3)
    deep = nonzero(rng, (5, 8, 3, 3), 0.3)
    x = nonzero(rng, (2, 3, 9, 8))
    dy = nonzero(rng, (2, 5, 7, 6))

    def run(kind):
        args = [fastconv.tensor(a, requires_grad=True) for a in (x, shallow, deep)]
        with variant(kind), fastconv.autocast("cpu", dtype=fastconv.bfloat16):
            h = F.conv2d(args[0], args[1], padding=1)
            y = F.conv2d(h, args[2])
            (y * fastconv.tensor(dy)).sum().backward()
        return h.detach().numpy(), y.detach().numpy(), [a.grad.numpy() for a in args]

    h, y, grads = run(kind)
    assert used == {"forward": [deep.shape], "backward": [deep.shape, shallow.shape]}
    h0, y0, grads0 = run("none")
    np.testing.assert_array_equal(h, h0)
    assert_bf16_results_agree(y, y0)
    assert_bf16_results_agree(grads[0], grads0[0])  # dx: bfloat16 values
    for a, b in zip(grads[1:], grads0[1:]):  # dw: float32 sums of the same terms
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())


@pytest.mark.parametrize("kind", EMULATED + REAL)
def test_shallow_convolutions_with_32_outputs_take_the_bf16_gemm(rng, monkeypatch, kind):
    """3 x 3 x 3 taps and 32 output channels per group (a full tile of rows): forward on the
    bfloat16 GEMM too, with autocast's result (the default path's within a bfloat16 step)."""
    used = []
    real = cpu_backend.conv2d_forward_bf16
    monkeypatch.setattr(cpu_backend, "conv2d_forward_bf16",
                        lambda *a, **k: used.append(a[1].shape) or real(*a, **k))
    x, w = nonzero(rng, (2, 3, 9, 8)), nonzero(rng, (64, 3, 3, 3), 0.3)
    with variant(kind), fastconv.autocast("cpu", dtype=fastconv.bfloat16):
        y = F.conv2d(fastconv.tensor(x), fastconv.tensor(w), padding=1)
        y_grouped = F.conv2d(fastconv.tensor(np.concatenate([x, x], 1)), fastconv.tensor(w),
                             padding=1, groups=2)  # 32 outputs per group
        F.conv2d(fastconv.tensor(x), fastconv.tensor(w[:31]), padding=1)  # fewer: float32
    assert used == [(64, 3, 3, 3), (64, 3, 3, 3)]
    with variant("none"), fastconv.autocast("cpu", dtype=fastconv.bfloat16):
        want = F.conv2d(fastconv.tensor(x), fastconv.tensor(w), padding=1).numpy()
    step = np.exp2(np.floor(np.log2(np.maximum(np.abs(want), 1e-30))) - 7)
    assert (np.abs(y.numpy() - want) <= step * 1.01 + 1e-6).all()
    assert y_grouped.shape == (2, 64, 9, 8)


def assert_variants_agree(arrays, dy, variants=None, frozen=(), **conv):
    """conv2d (x, w[, b]) under autocast, forward and backward, on each bfloat16 GEMM variant
    (the AMX emulation and the real ones here) against the default path: y and dx within one
    bfloat16 step of it, dw and db float32 sums of the same terms. ``frozen``: indices of the
    arrays that need no gradient."""
    def run(kind):
        args = [fastconv.tensor(a, requires_grad=i not in frozen) for i, a in enumerate(arrays)]
        with pytest.MonkeyPatch.context() as mp, variant(kind), \
                fastconv.autocast("cpu", dtype=fastconv.bfloat16):
            mp.setattr(Function, "MIN_BF16_GEMM_DEPTH", 1)  # the small shapes too
            y = F.conv2d(*args, **conv)
            (y * fastconv.tensor(dy)).sum().backward()
        return [y.detach().numpy()] + [a.grad.numpy() for a in args if a.requires_grad]

    want = run("none")
    for kind in variants or ("emulated_amx",) + REAL:
        got = run(kind)
        for i, (a, b) in enumerate(zip(got, want)):
            assert a.shape == b.shape
            if i < (1 if 0 in frozen else 2):  # y, dx: bfloat16 values, one bfloat16 step apart
                step = np.exp2(np.floor(np.log2(np.maximum(np.abs(b), 1e-30))) - 7)
                assert (np.abs(a - b) <= step * 1.01 + 1e-6).all(), (kind, i)
            else:
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(b).max()))


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_random_convolutions_on_every_variant(data):
    """Random convolution configurations (empty batches, strides, dilations, groups, padding,
    with and without bias) under autocast on each bfloat16 GEMM variant against the default
    path: y and dx within one bfloat16 step of it, dw and db float32 sums of the same terms."""
    draw = data.draw
    g = draw(st.sampled_from([1, 1, 2, 3]))
    cin, cout = g * draw(st.integers(1, 4)), g * draw(st.integers(1, 4))
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s, d = (draw(st.integers(1, 2)), draw(st.integers(1, 2))), (draw(st.integers(1, 2)), 1)
    p = (draw(st.integers(0, 1)), draw(st.integers(0, 1)))
    n, h, w = draw(st.integers(0, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 9))
    oh = (h + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    ow = (w + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    assume(oh > 0 and ow > 0)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    arrays = [nonzero(rng, (n, cin, h, w)), nonzero(rng, (cout, cin // g) + k, 0.3)]
    if draw(st.booleans()):
        arrays.append(nonzero(rng, (cout,)))
    dy = nonzero(rng, (n, cout, oh, ow))

    assert_variants_agree(arrays, dy, stride=s, padding=p, dilation=d, groups=g)


# csrc/conv_bf16.cpp's paths: the forward product packed from a bfloat16 copy of x with
# channels in pairs (an odd count leaves one channel alone; strides and dilations read pixel by
# pixel); dx as the convolution of dy with the flipped weights (stride 1, padding below the
# kernel, 32 channels or more per group; 1x1 layers too) or from columns; dW packed from the
# copy (stride 1 along rows) or from columns; images whose pixel count is odd, so pairs
# straddle two images.
PATH_CASES = {
    "dx_as_convolution": ((3, 33, 7, 6), (5, 33, 3, 3), dict(padding=1)),
    "dx_as_convolution_no_padding_5x5": ((2, 32, 9, 7), (4, 32, 5, 5), dict(padding=(0, 2))),
    "dx_as_convolution_grouped": ((2, 64, 5, 5), (6, 32, 3, 2), dict(padding=(2, 1), groups=2)),
    "dx_as_convolution_1x1": ((3, 40, 5, 3), (6, 40, 1, 1), {}),
    "forward_1x1_from_the_copy_on_planes_of_1024": ((2, 7, 32, 32), (5, 7, 1, 1), {}),
    "padding_as_large_as_the_kernel": ((2, 32, 5, 5), (4, 32, 2, 2), dict(padding=2)),
    "strided_rows": ((2, 32, 9, 9), (4, 32, 3, 3), dict(stride=(1, 2), padding=1)),
    "strided_and_dilated": ((3, 5, 11, 10), (4, 5, 3, 3), dict(stride=2, dilation=2, padding=2)),
    "odd_pixels_per_image": ((3, 7, 5, 5), (6, 7, 3, 3), {}),
    # dW's operands packed straight from x (1x1) and dy, with db summed as dy is packed:
    # 720 pixels over 9 images, so runs end at images and at packed chunks of 128 pairs.
    "dw_and_db_from_channel_rows_1x1": ((9, 24, 8, 10), (20, 24, 1, 1), {}),
    "dw_and_db_from_channel_rows_grouped": ((4, 12, 6, 6), (18, 4, 3, 3),
                                            dict(padding=1, groups=3)),
    # dy packed 16 channels by 16 pairs at a time on AVX-512 (pack_channel_tiles): 40
    # channels (two tiles and 8 rows alone), 32 pairs per image; and 18 pairs per image, so
    # an image ends inside the second tile of a chunk.
    "dw_and_db_from_channel_tiles": ((5, 24, 8, 8), (40, 24, 3, 3), dict(padding=1)),
    "dw_and_db_from_channel_tiles_short_images": ((3, 16, 6, 6), (33, 16, 3, 3), dict(padding=1)),
}


@pytest.mark.parametrize("case", PATH_CASES)
def test_each_packing_path_agrees_with_the_default(rng, case):
    xs, ws, conv = PATH_CASES[case]
    x, w = nonzero(rng, xs), nonzero(rng, ws, 0.3)
    b = nonzero(rng, ws[:1])
    y = F.conv2d(fastconv.tensor(x), fastconv.tensor(w), **conv)
    assert_variants_agree([x, w, b], nonzero(rng, y.shape), **conv)


def test_dy_rounds_ties_to_even_and_keeps_nan_as_the_default_path(rng):
    """dW and db pack dy rounded to bfloat16 (16 x 16 tiles on AVX-512): values exactly between
    two bfloat16 numbers go to the even one, NaN stays NaN, in every channel and image."""
    x, w, b = nonzero(rng, (4, 16, 8, 8)), nonzero(rng, (32, 16, 3, 3), 0.3), nonzero(rng, (32,))
    dy = nonzero(rng, (4, 32, 8, 8))
    scale = rng.choice([-1, 1, 3, 0.75], size=dy.shape).astype(np.float32)
    ties = np.float32(1 + 2.0 ** -8) * scale  # halfway between two bfloat16 numbers
    dy = np.where(rng.random(dy.shape) < 0.5, ties, dy).astype(np.float32)
    dy[2, 5, 3, 4] = np.nan
    assert_variants_agree([x, w, b], dy, frozen=(0,), padding=1)  # dw, db (dx: NaN spreads)


# Outputs of 4 MB and more are written once, streamed past the caches, as each tile is
# finished (csrc/gemm_bf16.inc); the emulations store them plainly. On a real variant every
# value must be its emulation's up to the order of the float32 sums (one bfloat16 step for
# y and dx; the instructions sum a pair's products their own way): a 1x1 layer whose last
# row tile has 8 rows (40 output channels), and a 3x3 layer summed over several depth
# blocks (288 terms). A store lost or left behind a fence would be off by far more.
@pytest.mark.skipif(not REAL, reason="no bfloat16 instructions on this CPU")
@pytest.mark.parametrize("xs, ws, padding", [((8, 48, 64, 64), (40, 48, 1, 1), 0),
                                              ((8, 32, 64, 64), (32, 32, 3, 3), 1)])
def test_large_outputs_are_the_emulations(rng, xs, ws, padding):
    x, w, b = nonzero(rng, xs), nonzero(rng, ws, 0.3), nonzero(rng, ws[:1])
    dy = nonzero(rng, (xs[0], ws[0], xs[2], xs[3]))
    conv = ((1, 1), (padding, padding), (1, 1), 1)

    def run(kind):
        with variant(kind):
            y = _C.conv2d_forward_bf16(x, w, b, *conv)
            return [y, *_C.conv2d_backward_bf16(x, w, dy, *conv, True, True, True)]

    for kind in REAL:
        emulation = {"amx": "emulated_amx", "avx512bf16": "emulated"}[kind]
        for got, want in zip(run(kind), run(emulation)):
            np.testing.assert_allclose(got, want, rtol=2**-7, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("frozen", [(1,), (0, 1), (0, 2)])
def test_gradients_of_some_inputs_only(rng, frozen):
    """db without dW (its own pass over dy), dW without db, dx alone: each as the default path."""
    x, w, b = nonzero(rng, (5, 32, 8, 8)), nonzero(rng, (16, 32, 3, 3), 0.3), nonzero(rng, (16,))
    assert_variants_agree([x, w, b], nonzero(rng, (5, 16, 8, 8)), frozen=frozen, padding=1)


def test_the_first_use_check_allows_another_summation_order():
    """A real variant is checked against its emulation within float32 summation-order
    tolerance: the two emulations, which sum in different orders (and differ in the last bits,
    test_the_reference_tells_the_orders_apart), pass it against each other."""
    assert _C._bf16_self_test("emulated_amx", "emulated") == ""
    assert _C._bf16_self_test("emulated", "emulated_amx") == ""
    with pytest.raises(ValueError, match="cannot run here"):
        _C._bf16_self_test("emulated", "none")


def test_the_default_is_never_an_emulation():
    features = cpu_backend.cpu_features()
    for key in ("avx512bf16", "amx_bf16", "amx_tile"):
        assert isinstance(features[key], bool)
    if "FASTCONV_BF16_ISA" not in os.environ:
        want = ("amx" if features["amx_bf16"] and features["amx_tile"] else
                "avx512bf16" if features["avx512bf16"] else "none")
        # a real variant that failed its self-test (or an OS without AMX) reports less
        assert features["bf16_kernels"] in {want, "avx512bf16", "none"}
    with variant("emulated_amx"):
        assert cpu_backend.cpu_features()["bf16_kernels"] == "emulated_amx"


# ---------------------------------------------------------------- (d) errors


def _import_with(isa):
    code = "from fastconv.backend import cpu; print(cpu.bf16_kernels())"
    env = dict(os.environ, FASTCONV_BF16_ISA=isa, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__))),
                          timeout=120)


def test_fastconv_bf16_isa_names_the_variant():
    out = _import_with("emulated")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "emulated"
    out = _import_with("avx1024bf16")
    assert out.returncode != 0
    assert "FASTCONV_BF16_ISA=avx1024bf16 is not one of amx, avx512bf16, emulated" in out.stderr
    assert "rebuild it" not in out.stderr.splitlines()[-1]  # not mistaken for a stale build
    missing = [isa for isa, has in (("avx512bf16", "avx512bf16"), ("amx", "amx_bf16"))
               if not cpu_backend.cpu_features()[has]]
    for isa in missing[:1]:
        out = _import_with(isa)
        assert out.returncode != 0
        assert f"FASTCONV_BF16_ISA={isa}: this CPU (or this build) cannot run it" in out.stderr


def test_bad_calls_fail_clearly(rng):
    a, b = nonzero(rng, (3, 4)), nonzero(rng, (4, 5))
    with pytest.raises(ValueError, match="not one of"):
        _C._set_bf16_isa("avx9000")
    with variant("none"):
        assert cpu_backend.bf16_kernels() == "none"
        with pytest.raises(ValueError, match="no bfloat16 kernels"):
            cpu_backend.gemm_bf16(a, b)
    with variant("emulated"):
        with pytest.raises(ValueError, match="inner dimensions differ"):
            cpu_backend.gemm_bf16(a, a)
        with pytest.raises(TypeError, match="float32"):
            cpu_backend.gemm_bf16(a.astype(np.float64), b)
        with pytest.raises(ValueError, match="2-D"):
            cpu_backend.gemm_bf16(a[0], b)
        with pytest.raises(ValueError, match="shape"):
            cpu_backend.gemm_bf16(a, b, out=np.zeros((3, 4), np.float32))
        with pytest.raises(ValueError, match="bias"):
            cpu_backend.gemm_bf16(a, b, bias=np.zeros(4, np.float32))
        assert cpu_backend.gemm_bf16(a[:, :0], b[:0]).tolist() == [[0.0] * 5] * 3  # K = 0
        assert cpu_backend.gemm_bf16(a[:0], b).shape == (0, 5)


# ---------------------------------------------------------------- (e) special values


@pytest.mark.parametrize("kind", EMULATED)
def test_denormals_infinities_and_nan(rng, kind):
    tiny = np.float32(2.0 ** -130)  # a float32 denormal; as bfloat16 still a denormal
    with variant(kind):
        g = lambda a, b, **k: cpu_backend.gemm_bf16(np.array(a, np.float32),  # noqa: E731
                                                    np.array(b, np.float32), **k)
        # DAZ: a denormal input counts as zero, even against a huge factor
        assert g([[tiny, 1.0]], [[2.0 ** 100], [3.0]])[0, 0] == 3.0
        # FTZ: a product below the normal range is flushed to zero (not a denormal 2^-140)
        assert g([[-(2.0 ** -70)]], [[2.0 ** -70]])[0, 0] == 0.0
        smallest = np.float32(2.0 ** -126)
        assert g([[2.0 ** -70, 1.0]], [[2.0 ** -70], [smallest]])[0, 0] == smallest
        # DAZ on the accumulator: a denormal C[i][j] is read as zero
        out = np.array([[tiny]], np.float32)
        g([[1.0]], [[2.0 ** -100]], out=out)
        assert out[0, 0] == np.float32(2.0 ** -100)
        # overflow to infinity, inf - inf = NaN, NaN propagates
        assert g([[2.0 ** 100, 1.0]], [[2.0 ** 100], [1.0]])[0, 0] == np.inf
        assert np.isnan(g([[np.inf, np.inf]], [[1.0], [-1.0]])[0, 0])
        assert np.isnan(g([[np.nan, 1.0]], [[1.0], [1.0]])[0, 0])
        # and all of it, mixed into random products, bit for bit as the reference
        M, N, K = 11, 35, 21
        a, b = wide(rng, (M, K)), wide(rng, (K, N))
        special = np.array([tiny, -tiny, 1e-39, 2.0 ** -70, -(2.0 ** -70), 1e30, -1e30, np.inf,
                            -np.inf, np.nan], np.float32)
        a.flat[rng.choice(a.size, 40, replace=False)] = rng.choice(special, 40)
        b.flat[rng.choice(b.size, 40, replace=False)] = rng.choice(special, 40)
        same_bits(cpu_backend.gemm_bf16(a, b), reference_gemm(a, b, kind))
