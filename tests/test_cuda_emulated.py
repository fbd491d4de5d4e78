"""The CUDA backend run on the CPU: fastconv/cuda/*.cu compiled as C++ and driven by
fastconv/backend/cuda through a stand-in for CuPy. No GPU, no CuPy, no nvcc needed.

How the emulation works: see tests/cuda_emulation.py (the stand-in CuPy). Both the direct
cuBLAS path and the ``cupy.matmul`` fallback path are tested.

What it checks: the emulated device itself (32-lane warp intrinsics against CUDA's
documented semantics, barriers, per-block and dynamic shared memory, the errors for broken
synchronisation and bad launches); every function of the kernel interface (Philox bit for
bit against a reference) against PyTorch's CPU operators at float32 tolerances, on shapes
with stride, padding, dilation, groups, 1x1 kernels, ceil_mode, ties, small and chunked
batches, partial blocks and warps, empty batches; that no kernel's result depends on the
order in which threads run; that launches stay within CUDA's limits for large shapes.

What it cannot check: CuPy's real launch path, real cuBLAS, memory-model effects beyond
thread order (the emulation is sequentially consistent), and speed. tests/test_gpu.py covers
those on a GPU.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import reference as R
from cuda_emulation import (
    ROOT,
    LaunchError,
    checks_only,
    compile_module,
    load_emulated_backend,
    thread_order,
)
from helpers import assert_close, assert_nonfinite_like, poison


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """One build folder for the module: each .cu file is compiled once."""
    if shutil.which("g++") is None:
        pytest.skip("g++ is not on the PATH")
    return tmp_path_factory.mktemp("cuda_emu")


@pytest.fixture(scope="module", params=["cublas", "matmul"])
def be(request, build):
    try:
        import fastconv.backend  # noqa: F401
    except Exception as exc:  # noqa: BLE001 -- fastconv does not import (e.g. unbuilt extension)
        pytest.skip(f"fastconv does not import: {exc}")
    return load_emulated_backend(build, with_cublas=request.param == "cublas")


torch = pytest.importorskip("torch")
F = torch.nn.functional


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


# ------------------------------------------------------------------------------------------
# The emulated device itself: small kernels whose results CUDA's documentation fixes
# ------------------------------------------------------------------------------------------

PROBES = r"""
extern "C" __global__ void shuffles(const float* x, float* out, int width, int arg)
{
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    const float v = x[t];
    out[4 * t + 0] = __shfl_sync(0xffffffffu, v, arg, width);
    out[4 * t + 1] = __shfl_up_sync(0xffffffffu, v, arg, width);
    out[4 * t + 2] = __shfl_down_sync(0xffffffffu, v, arg, width);
    out[4 * t + 3] = __shfl_xor_sync(0xffffffffu, v, arg, width);
}

extern "C" __global__ void votes(const int* p, unsigned int* out, unsigned int mask)
{
    const int t = threadIdx.x;
    if ((mask >> (t % 32)) & 1u) {
        out[3 * t + 0] = __ballot_sync(mask, p[t]);
        out[3 * t + 1] = __any_sync(mask, p[t]);
        out[3 * t + 2] = __all_sync(mask, p[t]);
    }
}

// y[i] = x[i] + x[i + 1 within the block], through shared memory; with sync = 0 the barrier
// between the writes and the reads is missing: a race.
extern "C" __global__ void neighbour_sum(const float* x, float* y, int sync)
{
    __shared__ float sh[1024];
    const int t = threadIdx.x, i = blockIdx.x * blockDim.x + t;
    sh[t] = x[i];
    if (sync) __syncthreads();
    y[i] = sh[t] + sh[(t + 1) % blockDim.x];
}

// Reads shared memory before writing it: what an earlier block left must not show.
extern "C" __global__ void read_before_write(const float* x, float* y)
{
    __shared__ float sh[256];
    const int t = threadIdx.x, i = blockIdx.x * blockDim.x + t;
    y[i] = sh[t];
    sh[t] = x[i];
}

extern "C" __global__ void reverse_block(const float* x, float* y)
{
    extern __shared__ __align__(16) float buf[];
    const int t = threadIdx.x, i = blockIdx.x * blockDim.x + t;
    buf[t] = x[i];
    __syncthreads();
    y[i] = buf[blockDim.x - 1 - t];
}

extern "C" __global__ void histogram(const int* v, int* h, int n)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
        atomicAdd(&h[v[i]], 1);
}

extern "C" __global__ void broken(float* y, int which)
{
    const int t = threadIdx.x;
    float v = y[t];
    if (which == 0) {                 // divergent barriers
        if (t < 16) __syncthreads();
        else __syncthreads();
    } else if (which == 1) {          // some threads exit before the barrier
        if (t >= 40) return;
        __syncthreads();
    } else if (which == 2) {          // a mask without the calling lane
        v = __shfl_sync(1u, v, 0);
    } else if (which == 3) {          // lanes of one mask at different intrinsics
        if (t % 32 < 16) v = __shfl_down_sync(0xffffffffu, v, 1);
        else v = __shfl_xor_sync(0xffffffffu, v, 1);
    } else if (which == 4) {          // lane 0 waits for lanes that wait at a barrier
        if (t == 0) v = __shfl_sync(0xffffffffu, v, 1);
        __syncthreads();
    }
    y[t] = v;
}
"""


@pytest.fixture(scope="module")
def probes(build):
    mod = compile_module(PROBES, build)
    return lambda name: mod.get_function(name)


def _cuda_shuffle_sources(lane, width, arg):
    """Source lane of __shfl_sync / _up / _down / _xor for ``lane`` (CUDA Programming Guide,
    "Warp Shuffle Functions"): each segment of ``width`` lanes shuffles on its own; up / down
    past the segment and xor into a later segment return the lane's own value."""
    seg = lane - lane % width
    xor = lane ^ arg
    return (seg + arg % width,
            lane - arg if lane - seg >= arg else lane,
            lane + arg if lane - seg + arg < width else lane,
            xor if xor < seg + width else lane)


@pytest.mark.parametrize("width,arg", [(32, 1), (32, 16), (32, 7), (16, 3), (8, 5), (4, 6)])
def test_emulated_shuffles_follow_cuda(probes, width, arg):
    rng = np.random.default_rng(width * 100 + arg)
    x = rand(rng, 2 * 64)
    out = np.empty((2 * 64, 4), np.float32)
    probes("shuffles")((2,), (64,), (x, out, np.int32(width), np.int32(arg)))
    for t in range(x.size):
        base = t - t % 32
        srcs = _cuda_shuffle_sources(t % 32, width, arg)
        np.testing.assert_array_equal(out[t], x[[base + s for s in srcs]], err_msg=f"thread {t}")


def test_emulated_shuffle_from_a_missing_lane_reads_poison(probes):
    """48 threads: the second warp has 16 lanes, so a full-mask shuffle down by 16 reads lanes
    the block does not have. On a GPU that value is undefined; here it is NaN."""
    x = rand(np.random.default_rng(1), 48)
    out = np.empty((48, 4), np.float32)
    probes("shuffles")((1,), (48,), (x, out, np.int32(32), np.int32(16)))
    np.testing.assert_array_equal(out[:16, 2], x[16:32])
    assert np.isnan(out[32:48, 2]).all()


@pytest.mark.parametrize("mask", [0xFFFFFFFF, 0x0F0F00FF, 0x80000001])
def test_emulated_votes_honour_the_mask(probes, mask):
    rng = np.random.default_rng(mask % 1000)
    p = rng.integers(0, 2, size=64).astype(np.int32)
    p[:32] = 1 if mask == 0x80000001 else p[:32]   # one warp where every lane votes yes
    out = np.full((64, 3), 0xDEAD, np.uint32)
    probes("votes")((1,), (64,), (p, out, np.uint32(mask)))
    for t in range(64):
        lane, base = t % 32, t - t % 32
        if not (mask >> lane) & 1:
            assert out[t].tolist() == [0xDEAD] * 3       # never called the intrinsic
            continue
        members = [j for j in range(32) if (mask >> j) & 1]
        ballot = sum(1 << j for j in members if p[base + j])
        assert out[t].tolist() == [ballot, int(ballot != 0),
                                   int(all(p[base + j] for j in members))], f"thread {t}"


def test_emulated_race_shows_in_thread_order(probes):
    """Without the barrier the result depends on the order threads run in; with it, never."""
    x = rand(np.random.default_rng(2), 2 * 100)
    want = (x.reshape(2, 100) + np.roll(x.reshape(2, 100), -1, axis=1)).ravel()
    results = {}
    for order, seed in (("ascending", 0), ("descending", 0), ("random", 5)):
        for sync in (0, 1):
            y = np.empty_like(x)
            with thread_order(order, seed):
                probes("neighbour_sum")((2,), (100,), (x, y, np.int32(sync)))
            results[order, sync] = y
        np.testing.assert_array_equal(results[order, 1], want)
    racy = [results[o, 0] for o in ("ascending", "descending", "random")]
    assert not np.array_equal(racy[0], racy[1], equal_nan=True)
    assert not np.array_equal(racy[0], racy[2], equal_nan=True)


def test_emulated_shared_memory_is_per_block(probes):
    x = rand(np.random.default_rng(3), 3 * 256)
    y = np.zeros_like(x)
    probes("read_before_write")((3,), (256,), (x, y))
    assert (y.view(np.uint32) == 0xFFFFFFFF).all()   # fresh (poisoned) in every block


def test_emulated_dynamic_shared_memory(probes):
    x = rand(np.random.default_rng(4), 3 * 96)
    y = np.empty_like(x)
    probes("reverse_block")((3,), (96,), (x, y), shared_mem=96 * 4)
    np.testing.assert_array_equal(y, x.reshape(3, 96)[:, ::-1].ravel())
    with pytest.raises(LaunchError, match="past the 256 bytes"):
        probes("reverse_block")((3,), (96,), (x, y), shared_mem=256)
    with pytest.raises(LaunchError, match="exceed the 49152-byte limit"):
        probes("reverse_block")((3,), (96,), (x, y), shared_mem=48 * 1024 + 4)


def test_emulated_atomic_add_is_exact_in_any_order(probes):
    v = np.random.default_rng(5).integers(0, 7, size=1000).astype(np.int32)
    with thread_order("random", 9):
        h = np.zeros(7, np.int32)
        probes("histogram")((3,), (128,), (v, h, np.int32(v.size)))
    np.testing.assert_array_equal(h, np.bincount(v, minlength=7))


@pytest.mark.parametrize("which,message", [
    (0, "divergent __syncthreads"),
    (1, "while 24 exited"),
    (2, "which does not name it"),
    (3, "must execute the same intrinsic"),
    (4, "deadlock"),
])
def test_emulated_broken_synchronisation_is_an_error(probes, which, message):
    y = rand(np.random.default_rng(6), 64)
    with pytest.raises(LaunchError, match=message):
        probes("broken")((1,), (64,), (y, np.int32(which)))


def test_emulated_launches_are_checked(probes):
    x, y = np.ones(1024, np.float32), np.empty(1024, np.float32)
    for grid, block in (((1,), (1025,)), ((1, 65536), (32,)), ((1,), (32, 32, 2)),
                        ((0,), (32,))):
        with pytest.raises(LaunchError, match="invalid configuration"):
            probes("neighbour_sum")(grid, block, (x, y, np.int32(1)))
    with pytest.raises(TypeError, match="int64 scalar for a i4"):
        probes("neighbour_sum")((1,), (32,), (x, y, np.int64(1)))
    with pytest.raises(TypeError, match="float64 array for a f4"):
        probes("neighbour_sum")((1,), (32,), (x.astype(np.float64), y, np.int32(1)))
    with pytest.raises(TypeError, match="not a NumPy scalar"):
        probes("neighbour_sum")((1,), (32,), (x, y, 1))
    with pytest.raises(TypeError, match="2 arguments for 3"):
        probes("neighbour_sum")((1,), (32,), (x, y))


# ------------------------------------------------------------------------------------------
# Convolution
# ------------------------------------------------------------------------------------------

CONV_CASES = [
    # N, C, H, W, OC, KH, KW, stride, padding, dilation, groups, bias
    (2, 3, 7, 6, 4, 3, 3, (1, 1), (1, 1), (1, 1), 1, True),
    (3, 4, 9, 8, 6, 3, 2, (2, 1), (1, 0), (1, 1), 2, True),
    (2, 2, 11, 10, 3, 3, 3, (1, 2), (2, 2), (2, 2), 1, False),
    (1, 1, 5, 5, 1, 5, 5, (1, 1), (0, 0), (1, 1), 1, True),         # kernel = input
    (2, 6, 6, 7, 4, 1, 1, (1, 1), (0, 0), (1, 1), 1, True),         # 1x1: no im2col
    (2, 6, 5, 5, 4, 1, 1, (1, 1), (0, 0), (1, 1), 2, False),        # grouped 1x1
    (2, 4, 7, 7, 5, 1, 1, (2, 2), (0, 0), (1, 1), 1, True),         # strided 1x1: im2col
    (2, 3, 18, 17, 4, 3, 3, (1, 1), (1, 1), (1, 1), 1, True),       # >= 256 px: batched GEMM
    (2, 4, 16, 16, 6, 3, 3, (1, 1), (1, 1), (1, 1), 2, True),       # batched GEMM + groups
    (3, 3, 23, 23, 4, 11, 11, (4, 4), (2, 2), (1, 1), 1, True),     # AlexNet conv1 geometry
]


def _torch_conv(x, w, b, stride, padding, dilation, groups, dy):
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True) if b is not None else None
    y = F.conv2d(xt, wt, bt, stride, padding, dilation, groups)
    y.backward(torch.tensor(dy, dtype=torch.float64))
    return y, xt.grad, wt.grad, (bt.grad if bt is not None else None)


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "x".join(map(str, c[:7])))
@pytest.mark.parametrize("chunked", [False, True], ids=["whole", "chunk1"])
def test_conv2d(be, case, chunked, monkeypatch):
    N, C, H, W, OC, KH, KW, stride, padding, dilation, groups, has_b = case
    rng = np.random.default_rng(hash(case) % 2**32)
    x = rand(rng, N, C, H, W)
    w = rand(rng, OC, C // groups, KH, KW) * 0.3
    b = rand(rng, OC) if has_b else None
    if chunked:   # one image per chunk: the column buffer bound in action
        monkeypatch.setattr(be.conv, "_workspace_limit", 1)
    y = be.conv2d_forward(x, w, b, stride, padding, dilation, groups)
    dy = rand(rng, *y.shape)
    yt, dxt, dwt, dbt = _torch_conv(x, w, b, stride, padding, dilation, groups, dy)
    assert y.shape == tuple(yt.shape) and y.dtype == np.float32
    assert_close(y, yt)
    dx, dw, db = be.conv2d_backward(x, w, dy, stride, padding, dilation, groups,
                                    True, True, has_b)
    assert_close(dx, dxt)
    assert_close(dw, dwt, rtol=2e-4, atol=1e-4)   # sums over N*OH*OW products
    if has_b:
        assert_close(db, dbt, rtol=2e-4, atol=1e-4)
    else:
        assert db is None
    # each gradient alone gives the same numbers
    dx2, dw2, db2 = be.conv2d_backward(x, w, dy, stride, padding, dilation, groups,
                                       True, False, False)
    assert dw2 is None and db2 is None
    np.testing.assert_array_equal(dx2, dx)
    dx3, dw3, _ = be.conv2d_backward(x, w, dy, stride, padding, dilation, groups,
                                     False, True, False)
    assert dx3 is None
    assert_close(dw3, dw, rtol=1e-6, atol=1e-6)


def test_conv2d_small_output_path(be, monkeypatch):
    """The single-GEMM + transpose(+bias) path and the batched path agree."""
    rng = np.random.default_rng(7)
    x, w, b = rand(rng, 3, 4, 18, 18), rand(rng, 8, 4, 3, 3), rand(rng, 8)
    y1 = be.conv2d_forward(x, w, b, (1, 1), (1, 1), (1, 1), 1)
    monkeypatch.setattr(be.conv, "_BATCHED_MIN_PIXELS", 10**9)
    y2 = be.conv2d_forward(x, w, b, (1, 1), (1, 1), (1, 1), 1)
    # atol 1e-5: on the cupy.matmul route both paths sum in float32, in different orders.
    assert_close(y1, y2, rtol=1e-6, atol=1e-5)


def test_conv2d_rejects_shapes_that_would_read_out_of_bounds(be):
    """The ops reject these with clearer messages; the backend still never runs them."""
    x = np.zeros((1, 3, 5, 5), np.float32)
    one, zero = (1, 1), (0, 0)
    with pytest.raises(ValueError, match="channels"):
        be.conv2d_forward(x, np.zeros((4, 2, 3, 3), np.float32), None, one, zero, one, 1)
    with pytest.raises(ValueError):   # a negative output size: nothing is allocated
        be.conv2d_forward(x, np.zeros((4, 3, 7, 7), np.float32), None, one, zero, one, 1)


def test_gemm(be):
    rng = np.random.default_rng(3)
    a, b = rand(rng, 5, 7), rand(rng, 7, 4)
    ref = a @ b
    assert_close(be.gemm(a, b), ref, rtol=1e-5, atol=1e-5)
    assert_close(be.gemm(a.T.copy(), b, trans_a=True), ref, rtol=1e-5, atol=1e-5)
    assert_close(be.gemm(a, b.T.copy(), trans_b=True), ref, rtol=1e-5, atol=1e-5)
    assert_close(be.gemm(a.T.copy(), b.T.copy(), True, True), ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="inner"):
        be.gemm(a, a)


# ------------------------------------------------------------------------------------------
# Pooling
# ------------------------------------------------------------------------------------------

POOL_CASES = [
    # N, C, H, W, kernel, stride, padding, ceil_mode
    (2, 3, 8, 8, (2, 2), (2, 2), (0, 0), False),
    (2, 3, 13, 13, (3, 3), (2, 2), (0, 0), True),     # AlexNet / GoogLeNet overlapping pool
    (1, 2, 7, 9, (3, 2), (2, 3), (1, 1), True),
    (2, 2, 6, 5, (3, 3), (1, 1), (1, 1), False),
    (1, 1, 1, 1, (1, 1), (1, 1), (0, 0), False),
    (2, 4, 10, 10, (3, 3), (3, 3), (1, 0), True),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_max_pool2d(be, case):
    N, C, H, W, k, s, p, ceil = case
    rng = np.random.default_rng(11)
    x = rand(rng, N, C, H, W)
    x[..., ::2, :] = np.round(x[..., ::2, :])   # plenty of ties
    y, idx = be.max_pool2d_forward(x, k, s, p, ceil)
    xt = torch.tensor(x, requires_grad=True)
    yt, it = F.max_pool2d(xt, k, s, p, ceil_mode=ceil, return_indices=True)
    assert_close(y, yt, rtol=0, atol=0)
    assert idx.dtype == np.int32
    np.testing.assert_array_equal(idx, it.numpy())   # same tie rule: first max, row-major
    dy = rand(rng, *y.shape)
    yt.backward(torch.tensor(dy))
    assert_close(be.max_pool2d_backward(dy, idx, x.shape, k, s, p), xt.grad)


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
@pytest.mark.parametrize("include_pad", [True, False])
def test_avg_pool2d(be, case, include_pad):
    N, C, H, W, k, s, p, ceil = case
    rng = np.random.default_rng(12)
    x = rand(rng, N, C, H, W)
    y = be.avg_pool2d_forward(x, k, s, p, ceil, include_pad)
    xt = torch.tensor(x, requires_grad=True)
    yt = F.avg_pool2d(xt, k, s, p, ceil_mode=ceil, count_include_pad=include_pad)
    assert_close(y, yt)
    dy = rand(rng, *y.shape)
    yt.backward(torch.tensor(dy))
    dx = be.avg_pool2d_backward(dy, x.shape, k, s, p, ceil, include_pad)
    assert_close(dx, xt.grad)


def test_global_avg_pool(be):
    rng = np.random.default_rng(13)
    x = rand(rng, 3, 5, 7, 6)
    for y in (be.pool.global_avg_pool2d_forward(x),
              be.avg_pool2d_forward(x, (7, 6), (7, 6), (0, 0), False, True)):
        assert_close(y, x.astype(np.float64).mean(axis=(2, 3), keepdims=True))
    dy = rand(rng, 3, 5, 1, 1)
    expect = np.broadcast_to(dy / 42.0, x.shape)
    assert_close(be.pool.global_avg_pool2d_backward(dy, x.shape), expect)
    assert_close(be.avg_pool2d_backward(dy, x.shape, (7, 6), (1, 1), (0, 0), False, False), expect)


# ------------------------------------------------------------------------------------------
# LRN, batch norm, ReLU
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size,C", [(5, 12), (4, 7), (1, 3), (9, 4), (3, 16)])
@pytest.mark.parametrize("segmented", [False, True])
def test_lrn(be, size, C, segmented, monkeypatch):
    if segmented:   # pretend the GPU is huge: several channel segments per pixel
        monkeypatch.setattr(be.norm, "sms", lambda: 10**6)
    rng = np.random.default_rng(size * 100 + C)
    x = rand(rng, 2, C, 5, 4) * 2
    alpha, beta, k = 1e-2, 0.75, 2.0
    y, scale = be.lrn_forward(x, size, alpha, beta, k)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    yt = F.local_response_norm(xt, size, alpha, beta, k)
    assert_close(y, yt)
    dy = rand(rng, *x.shape)
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    dx = be.lrn_backward(x, y, scale, dy, size, alpha, beta, k)
    assert_close(dx, xt.grad)


@pytest.mark.parametrize("size,C,beta", [(5, 12, 0.75), (4, 7, 0.5), (1, 3, 0.75), (9, 4, 1.3),
                                         (3, 16, 0.0)])
@pytest.mark.parametrize("segmented", [False, True])
def test_lrn_nonfinite_values_stay_in_their_windows(be, size, C, beta, segmented, monkeypatch):
    """An inf or NaN (or |x| > 1.8e19, whose float32 square is inf) reaches only the outputs
    whose windows hold it, with torch's NaN / inf: the running window sum is summed again
    once such a value has left (or a large one, whose rounding it would keep); the same in
    the backward, with non-finite dy too."""
    if segmented:
        monkeypatch.setattr(be.norm, "sms", lambda: 10**6)
    rng = np.random.default_rng(size * 100 + C)
    alpha, k = 0.5, 1.0
    values = (np.inf, -np.inf, np.nan, 3e19, -1e20, 1e15)
    for trial in range(3):
        x = poison(rng, rand(rng, 2, C, 3, 4), count=2 + trial, values=values)
        y, scale = be.lrn_forward(x, size, alpha, beta, k)
        xt = torch.tensor(x, requires_grad=True)
        yt = F.local_response_norm(xt, size, alpha, beta, k)
        assert_nonfinite_like(y, yt.detach(), name="lrn_forward")
        dy = rand(rng, *x.shape)
        if trial:
            poison(rng, dy, count=trial)
        yt.backward(torch.tensor(dy))
        dx = be.lrn_backward(x, y, scale, dy, size, alpha, beta, k)
        assert_nonfinite_like(dx, xt.grad, atol=1e-4, name="lrn_backward")


@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (16, 5), (1, 2, 3, 3), (3, 4, 40, 40)])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm(be, shape, affine):
    rng = np.random.default_rng(sum(shape))
    x = rand(rng, *shape) * 3 + 5        # an offset mean: the one-pass statistics must hold
    C = shape[1]
    w = rand(rng, C) if affine else None
    b = rand(rng, C) if affine else None
    eps = 1e-5
    y, mean, var = be.batch_norm_forward_train(x, w, b, eps)
    axes = (0,) + tuple(range(2, x.ndim))
    assert_close(mean, x.astype(np.float64).mean(axis=axes))
    # looser than FWD_*: float32 statistics of data with mean 5 and std 3 lose digits to the
    # mean, and y, dx, dweight, dbias inherit that, each adding a sum over N*H*W terms
    assert_close(var, x.astype(np.float64).var(axis=axes), rtol=2e-4)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True) if affine else None
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True) if affine else None
    yt = F.batch_norm(xt, None, None, wt, bt, training=True, eps=eps)
    assert_close(y, yt, rtol=2e-4, atol=1e-4)
    dy = rand(rng, *shape)
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    dx, dw, db = be.batch_norm_backward(x, w, mean, var, eps, dy)
    assert_close(dx, xt.grad, rtol=1e-3, atol=1e-4)
    if affine:
        assert_close(dw, wt.grad, rtol=1e-3, atol=1e-3)
        assert_close(db, bt.grad, rtol=1e-3, atol=1e-3)
    rm, rv = rand(rng, C), np.abs(rand(rng, C)) + 0.5
    ye = be.batch_norm_forward_eval(x, rm, rv, w, b, eps)
    yte = F.batch_norm(torch.tensor(x), torch.tensor(rm), torch.tensor(rv),
                       torch.tensor(w) if affine else None, torch.tensor(b) if affine else None,
                       training=False, eps=eps)
    assert_close(ye, yte)


def test_batch_norm_many_splits(be, monkeypatch):
    monkeypatch.setattr(be.norm, "sms", lambda: 64)   # several slices per channel, merged by Chan
    rng = np.random.default_rng(5)
    x = rand(rng, 8, 2, 32, 32) + 100.0
    assert be.norm._bn_splits(2, 8 * 32 * 32) > 1
    _, mean, var = be.batch_norm_forward_train(x, None, None, 1e-5)
    assert_close(mean, x.astype(np.float64).mean(axis=(0, 2, 3)))
    assert_close(var, x.astype(np.float64).var(axis=(0, 2, 3)), rtol=1e-3)  # mean 100, std 1


def test_relu(be):
    rng = np.random.default_rng(6)
    x = rand(rng, 3, 4, 5)
    x[0, 0, :2] = 0.0
    y = be.relu_forward(x)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    dy = rand(rng, *x.shape)
    np.testing.assert_array_equal(be.relu_backward(y, dy), np.where(y > 0, dy, 0))


def test_round_bf16(be):
    """Round to nearest even bfloat16 in place, bit for bit as the CPU kernel (itself checked
    against torch in tests/test_autocast.py)."""
    from fastconv.backend import cpu

    rng = np.random.default_rng(7)
    x = (rand(rng, 1000) * np.exp2(rng.integers(-30, 30, 1000))).astype(np.float32)
    x.view(np.uint32)[:50] = (x.view(np.uint32)[:50] & 0xFFFF0000) | 0x8000  # exact ties
    x[50:53] = [np.nan, np.inf, -0.0]
    got, want = x.copy(), x.copy()
    be.round_bf16_(got)
    cpu.round_bf16_(want)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    assert not np.array_equal(got, x)


def test_to_bf16_is_round_bf16s_upper_half(be):
    """The packed operands of the bfloat16 GEMMs: the same rounding, as uint16 bits."""
    rng = np.random.default_rng(8)
    x = (rand(rng, 999) * np.exp2(rng.integers(-30, 30, 999))).astype(np.float32)
    x.view(np.uint32)[:40] = (x.view(np.uint32)[:40] & 0xFFFF0000) | 0x8000  # exact ties
    x[40:43] = [np.nan, -np.inf, 3.4e38]
    out = np.empty(x.size, np.uint16)
    be.launch.launch("elementwise.cu", "to_bf16", x.size, (x.view(np.uint32), out,
                                                          np.int64(x.size)))
    want = x.copy()
    be.round_bf16_(want)
    np.testing.assert_array_equal(out, (want.view(np.uint32) >> 16).astype(np.uint16))


def _rounded(be, a):
    r = np.array(a, dtype=np.float32, copy=True)
    be.round_bf16_(r)
    return r


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "x".join(map(str, c[:7])))
def test_conv2d_bf16_is_the_float32_conv_of_rounded_operands(be, case, monkeypatch):
    """conv2d_forward_bf16 / conv2d_backward_bf16 (autocast's GPU convolutions): every GEMM
    on bfloat16-rounded operands, through cublasGemmEx on the cuBLAS stand-in (bf16_kernels()
    "cublas") or through rounded float32 copies without it ("none")."""
    monkeypatch.setattr(be.blas, "_bf16_checked", None)  # this copy's own first-use check
    assert be.bf16_kernels() == ("cublas" if be.blas._use_raw_cublas else "none")
    N, C, H, W, OC, KH, KW, stride, padding, dilation, groups, has_b = case
    rng = np.random.default_rng(hash(case) % 2**32 + 1)
    x = rand(rng, N, C, H, W)
    w = rand(rng, OC, C // groups, KH, KW) * 0.3
    b = rand(rng, OC) if has_b else None
    args = (stride, padding, dilation, groups)
    y = be.conv2d_forward_bf16(x, w, b, *args)
    y_ref = be.conv2d_forward(_rounded(be, x), _rounded(be, w), b, *args)
    assert np.array_equal(_rounded(be, y), y)  # outputs are bfloat16 values
    assert_close(y, y_ref, rtol=1e-2, atol=1e-2 * np.abs(y_ref).max())  # within a bf16 step
    assert np.abs(y - be.conv2d_forward(x, w, b, *args)).max() > 1e-4  # it did round
    g = rand(rng, *y.shape)
    dx, dw, db = be.conv2d_backward_bf16(x, w, g, *args, True, True, has_b)
    dy = _rounded(be, g)  # the incoming gradient is rounded first
    dx_ref, dw_ref, db_ref = be.conv2d_backward(_rounded(be, x), _rounded(be, w), dy, *args,
                                                True, True, has_b)
    assert np.array_equal(_rounded(be, dx), dx)
    assert_close(dx, dx_ref, rtol=1e-2, atol=1e-2 * np.abs(dx_ref).max())
    assert_close(dw, dw_ref, rtol=2e-4, atol=1e-4)
    if has_b:
        assert_close(db, db_ref, rtol=1e-5, atol=1e-5)
    else:
        assert db is None
    assert be.conv2d_backward_bf16(x, w, g, *args, False, True)[0] is None


def test_gemm_bf16(be, monkeypatch):
    monkeypatch.setattr(be.blas, "_bf16_checked", None)
    rng = np.random.default_rng(9)
    a, b = rand(rng, 7, 19), rand(rng, 19, 5)
    ra, rb = _rounded(be, a), _rounded(be, b)
    bias, out = rand(rng, 7), rand(rng, 7, 5)
    assert_close(be.gemm_bf16(a, b), ra @ rb)
    assert_close(be.gemm_bf16(a.T.copy(), b.T.copy(), True, True), ra @ rb)
    assert_close(be.gemm_bf16(a, b, bias=bias), ra @ rb + bias[:, None])
    want = out + ra @ rb
    got = be.gemm_bf16(a, b, out=out)
    assert got is out
    assert_close(got, want)


# ------------------------------------------------------------------------------------------
# Loss
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("N,K", [(5, 10), (3, 1000), (1, 2), (37, 33)])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_softmax_cross_entropy(be, N, K, smoothing):
    rng = np.random.default_rng(N * K)
    logits = rand(rng, N, K) * 4
    target = rng.integers(0, K, size=N).astype(np.int64)
    loss, prob = be.softmax_cross_entropy_forward(logits, target, smoothing)
    assert loss.shape == () and loss.dtype == np.float32
    lt = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    ref = F.cross_entropy(lt, torch.tensor(target), label_smoothing=smoothing)
    assert_close(loss, ref)
    assert_close(prob, torch.softmax(lt, 1))
    ref.backward(torch.tensor(2.5, dtype=torch.float64))
    assert_close(be.softmax_cross_entropy_backward(prob, target, smoothing, 2.5), lt.grad)
    dl = np.array(2.5, dtype=np.float32)   # a device scalar (the autograd seed)
    assert_close(be.softmax_cross_entropy_backward(prob, target, smoothing, dl), lt.grad)


def test_cross_entropy_bad_target_is_nan_not_a_crash(be):
    logits = np.zeros((2, 3), np.float32)
    loss, _ = be.softmax_cross_entropy_forward(logits, np.array([0, 7]), 0.0)
    assert np.isnan(loss)


# ------------------------------------------------------------------------------------------
# Random numbers
# ------------------------------------------------------------------------------------------

def test_philox_known_answer(be):
    # Random123's known-answer vector for philox4x32-10, counter 0, key 0.
    assert R.philox4x32_10((0, 0, 0, 0), (0, 0)) == (0x6627E8D5, 0xE169C58D, 0xBC57AC4C,
                                                 0x9B00DBD8)
    be.set_rng_state({"generator": "philox4x32-10", "seed": 0, "offset": 0})
    u = be.random_uniform(4)
    expect = np.array([v >> 8 for v in (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)],
                      dtype=np.float64) / 2**24
    np.testing.assert_array_equal(u.astype(np.float64), expect)


def test_random_uniform_stream(be):
    seed, offset = 0x1234_5678_9ABC_DEF0, 7
    be.set_rng_state({"generator": "philox4x32-10", "seed": seed, "offset": offset})
    u = be.random_uniform((3, 5))
    assert u.shape == (3, 5) and u.dtype == np.float32
    flat = u.reshape(-1)
    for i in range(flat.size):
        r = R.philox4x32_10((i // 4, 0, offset, 0), (seed & 0xFFFFFFFF, seed >> 32))
        assert flat[i] == np.float32((r[i % 4] >> 8) / 2**24)
    assert be.get_rng_state() == {"generator": "philox4x32-10", "seed": seed,
                                  "offset": offset + 1}


def test_random_uniform_is_the_cpu_backends(be):
    """The CPU backend draws the same Philox4x32-10 stream (csrc/random.cpp) for the same
    (seed, offset): one function on both devices."""
    from fastconv import _C

    seed, offset = 0xFEDC_BA98_7654_3210, 3
    be.set_rng_state({"generator": "philox4x32-10", "seed": seed, "offset": offset})
    np.testing.assert_array_equal(be.random_uniform((7, 143)), _C.random_uniform((7, 143), seed,
                                                                                 offset))


def test_random_uniform_seeding(be):
    be.manual_seed(123)
    a = be.random_uniform(1000)
    b = be.random_uniform(1000)
    be.manual_seed(123)
    a2 = be.random_uniform(1000)
    np.testing.assert_array_equal(a, a2)
    assert not np.array_equal(a, b)
    assert 0.0 <= a.min() and a.max() < 1.0 and abs(a.mean() - 0.5) < 0.05
    state = be.get_rng_state()
    c = be.random_uniform(10)
    be.set_rng_state(state)
    np.testing.assert_array_equal(be.random_uniform(10), c)


def test_device_mixups_are_type_errors(be):
    with pytest.raises(TypeError, match="CUDA"):
        be.relu_forward([1.0, 2.0])


# ------------------------------------------------------------------------------------------
# Every kernel under the real launch shapes: thread order, empty batches, large shapes
# ------------------------------------------------------------------------------------------

def _every_kernel(be, rng):
    """One call of every kernel-interface function on shapes with several blocks, partial
    blocks and warps (sizes that are not multiples of 32 or 256); returns all outputs."""
    x = rand(rng, 3, 5, 13, 11)
    w, b = rand(rng, 7, 5, 3, 3) * 0.3, rand(rng, 7)
    y = be.conv2d_forward(x, w, b, (1, 1), (1, 1), (1, 1), 1)
    outs = [y, *be.conv2d_backward(x, w, rand(rng, *y.shape), (1, 1), (1, 1), (1, 1), 1,
                                   True, True, True)]
    w1 = rand(rng, 6, 5, 1, 1)
    outs += be.conv2d_backward(x, w1, rand(rng, 3, 6, 13, 11), (1, 1), (0, 0), (1, 1), 1,
                               True, True, True)
    p, idx = be.max_pool2d_forward(x, (3, 3), (2, 2), (1, 1), True)
    outs += [p, idx, be.max_pool2d_backward(rand(rng, *p.shape), idx, x.shape, (3, 3), (2, 2),
                                            (1, 1))]
    a = be.avg_pool2d_forward(x, (3, 2), (2, 2), (1, 0), True, False)
    outs += [a, be.avg_pool2d_backward(rand(rng, *a.shape), x.shape, (3, 2), (2, 2), (1, 0),
                                       True, False)]
    outs += [be.pool.global_avg_pool2d_forward(x),
             be.pool.global_avg_pool2d_backward(rand(rng, 3, 5, 1, 1), x.shape)]
    ly, scale = be.lrn_forward(x, 3, 1e-2, 0.75, 2.0)
    outs += [ly, scale, be.lrn_backward(x, ly, scale, rand(rng, *x.shape), 3, 1e-2, 0.75, 2.0)]
    xb = rand(rng, 37, 3, 9, 8) + 2.0        # 592 elements per channel: several slices
    g, beta = rand(rng, 3), rand(rng, 3)
    by, mean, var = be.batch_norm_forward_train(xb, g, beta, 1e-5)
    outs += [by, mean, var, *be.batch_norm_backward(xb, g, mean, var, 1e-5, rand(rng, *xb.shape))]
    outs += [be.relu_forward(x), be.relu_backward(x, rand(rng, *x.shape))]
    logits = rand(rng, 37, 45)
    target = rng.integers(0, 45, size=37)
    loss, prob = be.softmax_cross_entropy_forward(logits, target, 0.1)
    outs += [loss, prob, be.softmax_cross_entropy_backward(prob, target, 0.1, 1.5)]
    be.manual_seed(5)
    outs += [be.random_uniform(1001)]
    return outs


@pytest.mark.parametrize("order,seed", [("descending", 0), ("random", 1), ("random", 2)])
def test_no_kernel_depends_on_thread_order(be, order, seed, monkeypatch):
    """Every output bit for bit the same whatever order threads and blocks run in: no races,
    and every reduction sums in a fixed order (the backend promises determinism)."""
    monkeypatch.setattr(be.norm, "sms", lambda: 64)   # several batch-norm slices per channel
    want = _every_kernel(be, np.random.default_rng(8))
    with thread_order(order, seed):
        got = _every_kernel(be, np.random.default_rng(8))
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == w.dtype and g.shape == w.shape, f"output {i}"
        assert np.array_equal(g, w), f"output {i} depends on the thread order"


def test_empty_batch(be):
    """N = 0 through every op whose public function allows it: empty outputs, zero
    parameter gradients, no launch of an empty grid."""
    rng = np.random.default_rng(9)
    x, w, b = np.empty((0, 3, 6, 5), np.float32), rand(rng, 4, 3, 3, 3), rand(rng, 4)
    y = be.conv2d_forward(x, w, b, (1, 1), (1, 1), (1, 1), 1)
    assert y.shape == (0, 4, 6, 5)
    dx, dw, db = be.conv2d_backward(x, w, y, (1, 1), (1, 1), (1, 1), 1, True, True, True)
    assert dx.shape == x.shape
    np.testing.assert_array_equal(dw, np.zeros_like(w))
    np.testing.assert_array_equal(db, np.zeros_like(b))
    p, idx = be.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), False)
    assert p.shape == (0, 3, 3, 2)
    assert be.max_pool2d_backward(p, idx, x.shape, (2, 2), (2, 2), (0, 0)).shape == x.shape
    a = be.avg_pool2d_forward(x, (2, 2), (1, 1), (1, 1), True, True)
    assert be.avg_pool2d_backward(a, x.shape, (2, 2), (1, 1), (1, 1), True, True).shape == x.shape
    assert be.pool.global_avg_pool2d_forward(x).shape == (0, 3, 1, 1)
    ly, scale = be.lrn_forward(x, 3, 1e-2, 0.75, 2.0)
    assert be.lrn_backward(x, ly, scale, ly, 3, 1e-2, 0.75, 2.0).shape == x.shape
    assert be.relu_forward(x).shape == x.shape
    ye = be.batch_norm_forward_eval(x, rand(rng, 3), np.ones(3, np.float32), None, None, 1e-5)
    assert ye.shape == x.shape


def test_launches_fit_cuda_limits_for_large_shapes(be):
    """Shapes too large to run here, launched with checks only: every grid and block within
    CUDA's limits (gridDim.y and .z at most 65535) and every argument of its C type."""
    big = 65535 + 2
    with checks_only() as launched:
        x = np.empty((2, big), np.float32)       # BatchNorm1d over 65537 features
        _, mean, var = be.batch_norm_forward_train(x, None, None, 1e-5)
        be.batch_norm_backward(x, None, mean, var, 1e-5, x)
        be.conv2d_backward(np.empty((1, 1, 2, 2), np.float32), np.empty((big, 1, 1, 1),
                           np.float32), np.empty((1, big, 2, 2), np.float32), (1, 1), (0, 0),
                           (1, 1), 1, False, False, True)
        be.softmax_cross_entropy_forward(np.empty((big * 9, 2), np.float32),
                                         np.zeros(big * 9, np.int64), 0.0)
        be.pool.global_avg_pool2d_forward(np.empty((big, 9, 1, 1), np.float32))
    assert {name for name, _, _ in launched} >= {
        "batch_norm_forward_partial", "batch_norm_backward_partial", "conv2d_backward_bias",
        "softmax_cross_entropy_forward", "global_avg_pool2d_forward"}


# ------------------------------------------------------------------------------------------
# Packaging: no CuPy, no GPU
# ------------------------------------------------------------------------------------------

def test_import_without_cupy_is_a_clear_error():
    """`import fastconv` works without CuPy; asking for the CUDA backend names the extra."""
    code = (
        "import sys\n"
        "sys.modules['cupy'] = None  # as if CuPy were not installed\n"
        "import fastconv\n"
        "x = fastconv.tensor([1.0, 2.0])\n"
        "try:\n"
        "    import fastconv.backend.cuda\n"
        "except ImportError as exc:\n"
        "    print('ERR', exc)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=str(ROOT), timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    assert "ERR" in r.stdout and "pip install -e .[cuda]" in r.stdout, r.stdout


def test_no_gpu_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match=r"no usable NVIDIA GPU.*pip install -e \.\[cuda\]"):
        load_emulated_backend(tmp_path, devices=0)
