"""GPU tests of the CUDA backend (fastconv/backend/cuda/, fastconv/cuda/*.cu).

Every test carries the ``gpu`` marker and the module skips without CuPy or without a
visible GPU. On a GPU machine:

    python -m pytest tests/test_gpu.py -m gpu -v

What is checked
  * every function of the kernel interface against the CPU backend (fastconv.backend.cpu)
    on the same random inputs, and against torch's CUDA operators where torch has CUDA,
    in strict float32 (TF32 off on both sides);
  * the direct cuBLAS GEMM path against the cupy.matmul fallback, chunked against
    unchunked convolutions, the TF32 switch;
  * the random-number generator (seeding through fastconv.manual_seed, state round trip,
    dropout masks);
  * a NIN training step on the GPU against the same step on the CPU;
  * a training step captured as a CUDA graph: replays give the weights of eager steps.

Comparison and tolerances come from tests/helpers.py: ``assert_close`` at FWD_RTOL, FWD_ATOL
(rtol 1e-4, atol 1e-5, DESIGN.md) for float32 against float32. Two looser cases, each marked
where used: reductions over many terms (weight, bias and batch-norm parameter gradients sum
up to ~1e5 products in a different order on each side, an error of about sqrt(n) * 6e-8
relative to the largest term: ``helpers.reduction_atol``), and whole-network comparisons
(errors of every layer compound).
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gpu

cupy = pytest.importorskip("cupy")


def _device_count() -> int:
    try:
        return cupy.cuda.runtime.getDeviceCount()
    except Exception:  # noqa: BLE001 -- any CUDA runtime/driver error means no usable GPU
        return 0


if _device_count() == 0:
    pytest.skip("no CUDA GPU visible to CuPy", allow_module_level=True)

from helpers import assert_close, reduction_atol, to_numpy

import fastconv as fc
import fastconv.functional as F
from fastconv.backend import cpu as cpu_be
from fastconv.backend import cuda as gpu_be

try:
    import torch

    TORCH_CUDA = torch.cuda.is_available()
except ImportError:  # pragma: no cover
    torch = None
    TORCH_CUDA = False

needs_torch_cuda = pytest.mark.skipif(not TORCH_CUDA, reason="torch with CUDA not available")


@pytest.fixture(autouse=True)
def strict_fp32():
    """TF32 off on both sides (PyTorch enables it for cuDNN convolutions by default)."""
    gpu_be.set_tf32(False)
    saved = None
    if TORCH_CUDA:
        saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    yield
    gpu_be.set_tf32(False)
    if saved is not None:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def g(a):
    """Host array -> device array."""
    return cupy.asarray(a)


def rand(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def tt(a, grad=False):
    """Host array -> torch CUDA float64 tensor (a float64 oracle on the GPU)."""
    return torch.tensor(a, dtype=torch.float64, device="cuda", requires_grad=grad)


# ------------------------------------------------------------------------------------------
# Convolution
# ------------------------------------------------------------------------------------------

CONV_CASES = [
    # N, C, H, W, OC, KH, KW, stride, padding, dilation, groups, bias
    (2, 3, 7, 6, 4, 3, 3, (1, 1), (1, 1), (1, 1), 1, True),
    (3, 4, 9, 8, 6, 3, 2, (2, 1), (1, 0), (1, 1), 2, True),
    (2, 2, 11, 10, 3, 3, 3, (1, 2), (2, 2), (2, 2), 1, False),
    (1, 1, 5, 5, 1, 5, 5, (1, 1), (0, 0), (1, 1), 1, True),
    (4, 32, 16, 16, 24, 1, 1, (1, 1), (0, 0), (1, 1), 1, True),       # 1x1, no im2col
    (2, 16, 9, 9, 8, 1, 1, (1, 1), (0, 0), (1, 1), 4, False),         # grouped 1x1
    (2, 8, 9, 9, 8, 1, 1, (2, 2), (0, 0), (1, 1), 1, True),           # strided 1x1
    (8, 3, 32, 32, 64, 5, 5, (1, 1), (2, 2), (1, 1), 1, True),        # NIN conv1
    (4, 96, 16, 16, 64, 5, 5, (1, 1), (2, 2), (1, 1), 1, True),       # NIN conv2-like
    (2, 3, 227, 227, 96, 11, 11, (4, 4), (0, 0), (1, 1), 1, True),    # AlexNet conv1
    (2, 96, 27, 27, 256, 5, 5, (1, 1), (2, 2), (1, 1), 2, True),      # AlexNet conv2 (towers)
    (2, 192, 7, 7, 384, 3, 3, (1, 1), (1, 1), (1, 1), 1, True),       # GoogLeNet 5b 3x3
    (2, 3, 224, 224, 64, 7, 7, (2, 2), (3, 3), (1, 1), 1, True),      # GoogLeNet conv1
]


def _conv_id(c):
    return f"{c[0]}x{c[1]}x{c[2]}x{c[3]}-{c[4]}k{c[5]}x{c[6]}s{c[7][0]}p{c[8][0]}d{c[9][0]}g{c[10]}"


@pytest.mark.parametrize("case", CONV_CASES, ids=_conv_id)
def test_conv2d(case):
    N, C, H, W, OC, KH, KW, stride, padding, dilation, groups, has_b = case
    rng = np.random.default_rng(1)
    x = rand(rng, N, C, H, W)
    w = rand(rng, OC, C // groups, KH, KW, scale=(C // groups * KH * KW) ** -0.5)
    b = rand(rng, OC) if has_b else None
    y = gpu_be.conv2d_forward(g(x), g(w), g(b) if has_b else None, stride, padding, dilation,
                              groups)
    assert isinstance(y, cupy.ndarray) and y.dtype == np.float32
    y_cpu = cpu_be.conv2d_forward(x, w, b, stride, padding, dilation, groups)
    assert_close(y, y_cpu, name="forward vs CPU")
    dy = rand(rng, *y.shape)
    dx, dw, db = gpu_be.conv2d_backward(g(x), g(w), g(dy), stride, padding, dilation, groups,
                                        True, True, has_b)
    dx_c, dw_c, db_c = cpu_be.conv2d_backward(x, w, dy, stride, padding, dilation, groups,
                                              True, True, has_b)
    terms = N * y.shape[2] * y.shape[3]           # dw, db: sums over the batch and pixels
    assert_close(dx, dx_c, name="dx vs CPU")
    assert_close(dw, dw_c, atol=reduction_atol(dw_c, terms), name="dw vs CPU (reduction)")
    if has_b:
        assert_close(db, db_c, atol=reduction_atol(db_c, terms), name="db vs CPU (reduction)")
    else:
        assert db is None
    if TORCH_CUDA:
        xt, wt = tt(x, True), tt(w, True)
        bt = tt(b, True) if has_b else None
        yt = torch.nn.functional.conv2d(xt, wt, bt, stride, padding, dilation, groups)
        yt.backward(tt(dy))
        assert_close(y, yt, name="forward vs torch")
        assert_close(dx, xt.grad, name="dx vs torch")
        assert_close(dw, wt.grad, atol=reduction_atol(wt.grad, terms),
                     name="dw vs torch (reduction)")
        if has_b:
            assert_close(db, bt.grad, atol=reduction_atol(bt.grad, terms),
                         name="db vs torch (reduction)")


def test_conv2d_chunked_equals_whole():
    rng = np.random.default_rng(2)
    x, w, b = g(rand(rng, 6, 8, 20, 20)), g(rand(rng, 16, 8, 3, 3)), g(rand(rng, 16))
    y1 = gpu_be.conv2d_forward(x, w, b, (1, 1), (1, 1), (1, 1), 1)
    dy = g(rand(rng, *y1.shape))
    r1 = gpu_be.conv2d_backward(x, w, dy, (1, 1), (1, 1), (1, 1), 1, True, True, True)
    old = gpu_be.conv._workspace_limit
    try:
        gpu_be.set_workspace_limit(1)        # one image per chunk
        y2 = gpu_be.conv2d_forward(x, w, b, (1, 1), (1, 1), (1, 1), 1)
        r2 = gpu_be.conv2d_backward(x, w, dy, (1, 1), (1, 1), (1, 1), 1, True, True, True)
    finally:
        gpu_be.set_workspace_limit(old)
    assert_close(y2, y1, rtol=1e-6, atol=1e-6)
    for a, b_ in zip(r2, r1):
        assert_close(a, b_, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", [CONV_CASES[1], CONV_CASES[4], CONV_CASES[7]], ids=_conv_id)
def test_conv2d_cublas_path_matches_matmul_fallback(case, monkeypatch):
    N, C, H, W, OC, KH, KW, stride, padding, dilation, groups, _ = case
    rng = np.random.default_rng(3)
    x, w = g(rand(rng, N, C, H, W)), g(rand(rng, OC, C // groups, KH, KW))
    y1 = gpu_be.conv2d_forward(x, w, None, stride, padding, dilation, groups)
    dy = g(rand(rng, *y1.shape))
    r1 = gpu_be.conv2d_backward(x, w, dy, stride, padding, dilation, groups, True, True, False)
    monkeypatch.setattr(gpu_be.blas, "_use_raw_cublas", False)
    y2 = gpu_be.conv2d_forward(x, w, None, stride, padding, dilation, groups)
    r2 = gpu_be.conv2d_backward(x, w, dy, stride, padding, dilation, groups, True, True, False)
    assert_close(y2, y1)
    assert_close(r2[0], r1[0])
    assert_close(r2[1], r1[1], atol=reduction_atol(r1[1], N * H * W))


def test_gemm():
    rng = np.random.default_rng(4)
    a, b = rand(rng, 37, 53), rand(rng, 53, 29)
    ref = a.astype(np.float64) @ b
    assert_close(gpu_be.gemm(g(a), g(b)), ref)
    assert_close(gpu_be.gemm(g(a.T.copy()), g(b), trans_a=True), ref)
    assert_close(gpu_be.gemm(g(a), g(b.T.copy()), trans_b=True), ref)
    assert_close(gpu_be.gemm(g(a.T.copy()), g(b.T.copy()), True, True), ref)
    assert_close(cpu_be.gemm(a, b), ref)


def test_tf32_switch():
    rng = np.random.default_rng(5)
    a, b = rand(rng, 1024, 1024), rand(rng, 1024, 1024)
    ref = a.astype(np.float64) @ b
    scale = np.abs(ref).max()
    strict = np.abs(to_numpy(gpu_be.gemm(g(a), g(b))) - ref).max() / scale
    assert not gpu_be.get_tf32()
    try:
        gpu_be.set_tf32(True)
        assert gpu_be.get_tf32()
        fast = np.abs(to_numpy(gpu_be.gemm(g(a), g(b))) - ref).max() / scale
    finally:
        gpu_be.set_tf32(False)
    again = np.abs(to_numpy(gpu_be.gemm(g(a), g(b))) - ref).max() / scale
    assert strict < 1e-5 and again < 1e-5, (strict, again)
    major = int(cupy.cuda.Device().compute_capability) // 10
    if major >= 8:   # tensor cores with TF32: a 10-bit mantissa shows
        assert 1e-5 < fast < 1e-2, fast


# ------------------------------------------------------------------------------------------
# Pooling
# ------------------------------------------------------------------------------------------

POOL_CASES = [
    (2, 3, 8, 8, (2, 2), (2, 2), (0, 0), False),
    (2, 3, 13, 13, (3, 3), (2, 2), (0, 0), True),
    (1, 2, 7, 9, (3, 2), (2, 3), (1, 1), True),
    (2, 2, 6, 5, (3, 3), (1, 1), (1, 1), False),
    (4, 96, 55, 55, (3, 3), (2, 2), (0, 0), False),     # AlexNet pool1
    (4, 64, 112, 112, (3, 3), (2, 2), (0, 0), True),    # GoogLeNet pool1 (ceil)
    (8, 192, 32, 32, (3, 3), (2, 2), (0, 0), True),     # NIN pool1
]


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_max_pool2d(case):
    N, C, H, W, k, s, p, ceil = case
    rng = np.random.default_rng(6)
    x = rand(rng, N, C, H, W)
    x[..., ::2, :] = np.round(x[..., ::2, :])          # ties: first maximum wins
    y, idx = gpu_be.max_pool2d_forward(g(x), k, s, p, ceil)
    y_c, idx_c = cpu_be.max_pool2d_forward(x, k, s, p, ceil)
    assert_close(y, y_c, rtol=0, atol=0, name="forward vs CPU")
    assert idx.dtype == np.int32
    np.testing.assert_array_equal(to_numpy(idx), to_numpy(idx_c))
    dy = rand(rng, *y.shape)
    dx_c = cpu_be.max_pool2d_backward(dy, idx_c, x.shape, k, s, p)
    assert_close(gpu_be.max_pool2d_backward(g(dy), idx, x.shape, k, s, p), dx_c, name="backward")
    if TORCH_CUDA:
        yt, it = torch.nn.functional.max_pool2d(tt(x), k, s, p, ceil_mode=ceil,
                                                return_indices=True)
        assert_close(y, yt, rtol=0, atol=0)
        np.testing.assert_array_equal(to_numpy(idx), to_numpy(it))


def test_max_pool2d_op_gradient_is_deterministic():
    """Overlapping windows (3x3, stride 2) through the op: the op passes the window, so the
    backward gathers and two runs give bitwise the same dx."""
    rng = np.random.default_rng(16)
    x = np.round(rand(rng, 8, 64, 33, 33) * 4) / 4          # many ties across windows
    grads = []
    for _ in range(2):
        xt = fc.tensor(x, requires_grad=True, device="cuda")
        y = F.max_pool2d(xt, 3, 2, 1, ceil_mode=True)
        (y * fc.tensor(rand(np.random.default_rng(17), *y.shape), device="cuda")).sum().backward()
        grads.append(to_numpy(xt.grad.data))
    np.testing.assert_array_equal(grads[0], grads[1])


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
@pytest.mark.parametrize("include_pad", [True, False])
def test_avg_pool2d(case, include_pad):
    N, C, H, W, k, s, p, ceil = case
    rng = np.random.default_rng(7)
    x = rand(rng, N, C, H, W)
    y = gpu_be.avg_pool2d_forward(g(x), k, s, p, ceil, include_pad)
    assert_close(y, cpu_be.avg_pool2d_forward(x, k, s, p, ceil, include_pad),
                 name="forward vs CPU")
    dy = rand(rng, *y.shape)
    dx = gpu_be.avg_pool2d_backward(g(dy), x.shape, k, s, p, ceil, include_pad)
    assert_close(dx, cpu_be.avg_pool2d_backward(dy, x.shape, k, s, p, ceil, include_pad),
                 name="backward vs CPU")
    if TORCH_CUDA:
        xt = tt(x, True)
        yt = torch.nn.functional.avg_pool2d(xt, k, s, p, ceil_mode=ceil,
                                            count_include_pad=include_pad)
        yt.backward(tt(dy))
        assert_close(y, yt)
        assert_close(dx, xt.grad)


@pytest.mark.parametrize("shape", [(128, 10, 8, 8), (16, 1024, 7, 7), (2, 3, 1, 1)])
def test_global_avg_pool(shape):
    rng = np.random.default_rng(8)
    x = rand(rng, *shape)
    ref = x.astype(np.float64).mean(axis=(2, 3), keepdims=True)
    assert_close(gpu_be.pool.global_avg_pool2d_forward(g(x)), ref)
    k = shape[2:]
    assert_close(gpu_be.avg_pool2d_forward(g(x), k, k, (0, 0), False, True), ref)
    dy = rand(rng, shape[0], shape[1], 1, 1)
    assert_close(gpu_be.pool.global_avg_pool2d_backward(g(dy), x.shape),
                 np.broadcast_to(dy / (shape[2] * shape[3]), shape))


# ------------------------------------------------------------------------------------------
# LRN, batch norm, ReLU, loss
# ------------------------------------------------------------------------------------------

LRN_CASES = [
    # shape, size, alpha, beta, k
    ((2, 12, 5, 4), 5, 1e-2, 0.75, 2.0),
    ((2, 7, 3, 3), 4, 1e-2, 0.75, 1.0),
    ((3, 3, 4, 4), 9, 1e-3, 0.75, 1.0),
    ((4, 96, 55, 55), 5, 5e-4, 0.75, 2.0),    # AlexNet after conv1
    ((4, 64, 56, 56), 5, 1e-4, 0.75, 1.0),    # GoogLeNet stem
]


@pytest.mark.parametrize("case", LRN_CASES, ids=str)
def test_lrn(case):
    shape, size, alpha, beta, k = case
    rng = np.random.default_rng(9)
    x = rand(rng, *shape, scale=3.0)
    y, scale = gpu_be.lrn_forward(g(x), size, alpha, beta, k)
    y_c, scale_c = cpu_be.lrn_forward(x, size, alpha, beta, k)
    assert_close(y, y_c, name="y vs CPU")
    assert_close(scale, scale_c, name="scale vs CPU")
    dy = rand(rng, *shape)
    dx = gpu_be.lrn_backward(g(x), y, scale, g(dy), size, alpha, beta, k)
    assert_close(dx, cpu_be.lrn_backward(x, y_c, scale_c, dy, size, alpha, beta, k),
                 name="dx vs CPU")
    if TORCH_CUDA:
        xt = tt(x, True)
        yt = torch.nn.functional.local_response_norm(xt, size, alpha, beta, k)
        yt.backward(tt(dy))
        assert_close(y, yt)
        assert_close(dx, xt.grad)


@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (64, 10), (8, 192, 32, 32), (2, 5, 1, 1)])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm(shape, affine):
    rng = np.random.default_rng(10)
    x = rand(rng, *shape, scale=3.0) + 5.0     # an offset mean exercises the one-pass statistics
    C = shape[1]
    w = rand(rng, C) if affine else None
    b = rand(rng, C) if affine else None
    eps = 1e-5
    y, mean, var = gpu_be.batch_norm_forward_train(g(x), g(w) if affine else None,
                                                   g(b) if affine else None, eps)
    ones, zeros = np.ones(C, np.float32), np.zeros(C, np.float32)
    y_c, mean_c, var_c = cpu_be.batch_norm_forward_train(x, w if affine else ones,
                                                         b if affine else zeros, eps)
    n = x.size // C
    assert_close(mean, mean_c, atol=reduction_atol(mean_c, n))
    assert_close(var, var_c, rtol=2e-4, atol=reduction_atol(var_c, n))  # merged partial sums
    assert_close(y, y_c, rtol=2e-4, atol=1e-4)     # invstd from statistics of n terms
    dy = rand(rng, *shape)
    dx, dw, db = gpu_be.batch_norm_backward(g(x), g(w) if affine else None, mean, var, eps,
                                            g(dy))
    dx_c, dw_c, db_c = cpu_be.batch_norm_backward(x, w if affine else ones, mean_c, var_c, eps,
                                                  dy)
    assert_close(dx, dx_c, rtol=1e-3, atol=1e-4, name="dx (reduction inside)")
    assert_close(dw, dw_c, rtol=1e-3, atol=reduction_atol(dw_c, n), name="dweight (reduction)")
    assert_close(db, db_c, rtol=1e-3, atol=reduction_atol(db_c, n), name="dbias (reduction)")
    rm, rv = rand(rng, C), np.abs(rand(rng, C)) + 0.5
    ye = gpu_be.batch_norm_forward_eval(g(x), g(rm), g(rv), g(w) if affine else None,
                                        g(b) if affine else None, eps)
    assert_close(ye, cpu_be.batch_norm_forward_eval(x, rm, rv, w if affine else ones,
                                                    b if affine else zeros, eps))
    if TORCH_CUDA:
        xt = tt(x, True)
        wt, bt = (tt(w, True), tt(b, True)) if affine else (None, None)
        yt = torch.nn.functional.batch_norm(xt, None, None, wt, bt, training=True, eps=eps)
        yt.backward(tt(dy))
        # the same tolerances as against the CPU above, for the same reasons
        assert_close(y, yt, rtol=2e-4, atol=1e-4)
        assert_close(dx, xt.grad, rtol=1e-3, atol=1e-4)
        if affine:
            assert_close(dw, wt.grad, rtol=1e-3, atol=reduction_atol(wt.grad, n))
            assert_close(db, bt.grad, rtol=1e-3, atol=reduction_atol(bt.grad, n))


def test_relu():
    rng = np.random.default_rng(11)
    x = rand(rng, 64, 33, 7)
    x[0, 0] = 0.0
    y = gpu_be.relu_forward(g(x))
    np.testing.assert_array_equal(to_numpy(y), cpu_be.relu_forward(x))
    dy = rand(rng, *x.shape)
    np.testing.assert_array_equal(to_numpy(gpu_be.relu_backward(y, g(dy))),
                                  cpu_be.relu_backward(to_numpy(y), dy))


@pytest.mark.parametrize("N,K", [(128, 10), (16, 1000), (1, 2), (37, 33)])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_softmax_cross_entropy(N, K, smoothing):
    rng = np.random.default_rng(12)
    logits = rand(rng, N, K, scale=4.0)
    target = rng.integers(0, K, size=N).astype(np.int64)
    loss, prob = gpu_be.softmax_cross_entropy_forward(g(logits), g(target), smoothing)
    assert isinstance(loss, cupy.ndarray) and loss.shape == ()
    loss_c, prob_c = cpu_be.softmax_cross_entropy_forward(logits, target, smoothing)
    assert_close(loss, np.float64(loss_c), atol=reduction_atol(np.float64(loss_c), N))
    assert_close(prob, prob_c)
    d = gpu_be.softmax_cross_entropy_backward(prob, g(target), smoothing, 1.5)
    d_c = cpu_be.softmax_cross_entropy_backward(prob_c, target, smoothing, 1.5)
    assert_close(d, d_c)
    d_dev = gpu_be.softmax_cross_entropy_backward(prob, g(target), smoothing,
                                                  cupy.asarray(1.5, dtype=np.float32))
    assert_close(d_dev, d_c)
    if TORCH_CUDA:
        lt = tt(logits, True)
        ref = torch.nn.functional.cross_entropy(lt, torch.tensor(target, device="cuda"),
                                                label_smoothing=smoothing)
        ref.backward(torch.tensor(1.5, dtype=torch.float64, device="cuda"))
        assert_close(loss, ref, atol=reduction_atol(ref, N))
        assert_close(d, lt.grad)


# ------------------------------------------------------------------------------------------
# Random numbers, dropout
# ------------------------------------------------------------------------------------------

def test_rng_seeding_through_fastconv():
    fc.manual_seed(1234)       # reaches the GPU generator through fastconv.random's listeners
    a = to_numpy(gpu_be.random_uniform((1000,)))
    b = to_numpy(gpu_be.random_uniform((1000,)))
    fc.manual_seed(1234)
    np.testing.assert_array_equal(to_numpy(gpu_be.random_uniform((1000,))), a)
    assert not np.array_equal(a, b)
    assert a.min() >= 0.0 and a.max() < 1.0 and abs(a.mean() - 0.5) < 0.05
    state = gpu_be.get_rng_state()
    c = to_numpy(gpu_be.random_uniform(17))
    gpu_be.set_rng_state(state)
    np.testing.assert_array_equal(to_numpy(gpu_be.random_uniform(17)), c)


def test_random_uniform_statistics():
    gpu_be.manual_seed(7)
    u = to_numpy(gpu_be.random_uniform((1 << 20,))).astype(np.float64)
    assert abs(u.mean() - 0.5) < 2e-3 and abs(u.var() - 1 / 12) < 2e-3
    hist = np.histogram(u, bins=16, range=(0, 1))[0] / u.size
    assert np.abs(hist - 1 / 16).max() < 3e-3


def test_functional_dropout_on_gpu():
    fc.manual_seed(9)
    x = fc.tensor(np.ones((64, 128), np.float32), device="cuda", requires_grad=True)
    out = F.dropout(x, 0.25, training=True)
    y = to_numpy(out.data)
    assert set(np.unique(y).tolist()) <= {0.0, np.float32(1 / 0.75)}
    assert abs((y > 0).mean() - 0.75) < 0.03
    out.sum().backward()  # the gradient is the mask, and x is all ones: the output
    np.testing.assert_array_equal(to_numpy(x.grad.data), y)


# ------------------------------------------------------------------------------------------
# Whole training steps: GPU against CPU
# ------------------------------------------------------------------------------------------

def _no_dropout(model):
    """Dropout draws from different generators on the two devices: switch it off."""
    for m in model.modules():
        if hasattr(m, "p") and type(m).__name__.startswith("Dropout"):
            m.p = 0.0
    return model


def _small_net():
    nn = fc.nn
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.LocalResponseNorm(5, alpha=1e-3, beta=0.75, k=1.0),
        nn.MaxPool2d(3, stride=2, ceil_mode=True),
        nn.Conv2d(16, 24, 1), nn.ReLU(), nn.Dropout(0.5),
        nn.Conv2d(24, 10, 3, padding=1, groups=2), nn.ReLU(),
        nn.AvgPool2d(3, stride=2, ceil_mode=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )


def _nin():
    try:
        import models

        return models.get_model("nin_cifar", num_classes=10)
    except Exception as exc:  # noqa: BLE001 -- models/ is optional here; the small net still runs
        pytest.skip(f"models.get_model('nin_cifar') unavailable: {exc}")


def _twin(make):
    """The same network (same weights) on the CPU and on the GPU."""
    fc.manual_seed(0)
    cpu_model = _no_dropout(make())
    gpu_model = _no_dropout(make())
    gpu_model.load_state_dict(cpu_model.state_dict())
    gpu_model.to("cuda")
    return cpu_model, gpu_model


@pytest.mark.parametrize("make", [_small_net, _nin], ids=["small", "nin_cifar"])
def test_training_step_gpu_matches_cpu(make):
    cpu_model, gpu_model = _twin(make)
    rng = np.random.default_rng(16)
    N = 32
    x = rng.standard_normal((N, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, size=N)
    results = []
    for model, dev in ((cpu_model, "cpu"), (gpu_model, "cuda")):
        model.train()
        opt = fc.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        losses = []
        for _ in range(2):
            opt.zero_grad()
            loss = F.cross_entropy(model(fc.tensor(x, device=dev)), fc.tensor(y, device=dev))
            loss.backward()
            opt.step()
            losses.append(float(loss.item()))
        results.append((losses, model.state_dict()))
    (loss_c, state_c), (loss_g, state_g) = results
    # whole-network tolerance: every layer's float32 rounding differs and compounds
    assert_close(loss_g, loss_c, name="losses")
    for name in state_c:
        assert_close(state_g[name], state_c[name], rtol=1e-3, atol=1e-4, name=name)


# ------------------------------------------------------------------------------------------
# CUDA graph capture
# ------------------------------------------------------------------------------------------

def test_is_capturing_outside_a_capture():
    assert gpu_be.is_capturing() is False


def test_captured_random_numbers_follow_the_eager_stream():
    gpu_be.manual_seed(21)
    eager = [to_numpy(gpu_be.random_uniform(64)) for _ in range(4)]
    gpu_be.manual_seed(21)
    step = gpu_be.CapturedStep(lambda: gpu_be.random_uniform(64), warmup=1)   # draws #0
    replays = [to_numpy(step.replay()).copy() for _ in range(3)]              # draws #1..#3
    for got, ref in zip(replays, eager[1:]):
        np.testing.assert_array_equal(got, ref)


def _training_pair(loss_kind):
    """Two identical GPU models with their optimizers and static input buffers."""
    fc.manual_seed(1)
    a = _small_net()
    b = _small_net()
    b.load_state_dict(a.state_dict())
    out = []
    for model in (a, b):
        model.to("cuda").train()
        opt = fc.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        xs = fc.tensor(np.zeros((16, 3, 32, 32), np.float32), device="cuda")
        ys = fc.tensor(np.zeros(16, np.int64), device="cuda")
        ts = fc.tensor(np.zeros((16, 10), np.float32), device="cuda")

        def step(model=model, opt=opt, xs=xs, ys=ys, ts=ts):
            opt.zero_grad()
            logits = model(xs)
            if loss_kind == "cross_entropy":
                loss = F.cross_entropy(logits, ys)
            else:   # a loss made of plain tensor arithmetic (no host synchronisation at all)
                loss = ((logits - ts) * (logits - ts)).mean()
            loss.backward()
            opt.step()
            return loss.data

        out.append((model, step, xs, ys, ts))
    return out


@pytest.mark.parametrize("loss_kind", ["squared_error", "cross_entropy"])
def test_captured_training_step_matches_eager(loss_kind):
    """warmup eager steps + replays == the same number of eager steps (dropout included).

    cross_entropy needs the ops layer to skip its host-side checks while capturing
    (fastconv.backend.cuda.is_capturing()) and to hand the loss gradient to the kernel as
    a device array rather than float(dy).
    """
    (ma, step_a, xa, ya, ta), (mb, step_b, xb, yb, tb) = _training_pair(loss_kind)
    rng = np.random.default_rng(17)
    batches = [(rng.standard_normal((16, 3, 32, 32)).astype(np.float32),
                rng.integers(0, 10, size=16), rng.standard_normal((16, 10)).astype(np.float32))
               for _ in range(5)]
    warmup = 2

    def load(xs, ys, ts, batch):
        xs.data[...] = cupy.asarray(batch[0])
        ys.data[...] = cupy.asarray(batch[1])
        ts.data[...] = cupy.asarray(batch[2])

    fc.manual_seed(5)
    load(xa, ya, ta, batches[0])
    eager_losses = []
    for i in range(warmup + len(batches) - 1):
        if i >= warmup:
            load(xa, ya, ta, batches[i - warmup + 1])
        eager_losses.append(float(to_numpy(step_a())))
    fc.manual_seed(5)
    load(xb, yb, tb, batches[0])
    captured = gpu_be.CapturedStep(step_b, warmup=warmup, params=list(mb.parameters()))
    replay_losses = []
    for batch in batches[1:]:
        load(xb, yb, tb, batch)
        replay_losses.append(float(to_numpy(captured.replay())))
    assert_close(replay_losses, eager_losses[warmup:], rtol=1e-5, atol=1e-6, name="losses")
    sa, sb = ma.state_dict(), mb.state_dict()
    for name in sa:
        assert_close(sb[name], sa[name], rtol=1e-5, atol=1e-6, name=name)


def test_capture_rejects_rebound_parameters():
    class Param:
        data = cupy.zeros(4, dtype=np.float32)

    param = Param()

    def step():
        param.data = param.data + 1      # rebinds instead of updating in place
        return param.data

    with pytest.raises(RuntimeError, match="in place"):
        gpu_be.CapturedStep(step, warmup=1, params=[param])


# ---- bfloat16 autocast on the tensor cores ----------------------------------------------------
def test_bf16_gemms_match_the_float32_gemms_of_rounded_operands():
    """On a GPU of compute capability 8.0 or later the autocast products run as cublasGemmEx
    on bfloat16 copies; they give the float32 GEMM's results on rounded operands up to the
    order of the sums, and the autocast convolution agrees with torch's."""
    cc = int(cupy.cuda.Device().compute_capability)
    assert gpu_be.bf16_kernels() == ("cublas" if cc >= 80 else "none")
    rng = np.random.default_rng(21)
    x = cupy.asarray(rng.standard_normal((4, 16, 12, 12)).astype(np.float32))
    w = cupy.asarray((rng.standard_normal((32, 16, 3, 3)) * 0.1).astype(np.float32))

    def rounded(a):
        r = a.copy()
        gpu_be.round_bf16_(r)
        return r

    y = gpu_be.conv2d_forward_bf16(x, w, None, (1, 1), (1, 1), (1, 1), 1)
    ref = gpu_be.conv2d_forward(rounded(x), rounded(w), None, (1, 1), (1, 1), (1, 1), 1)
    assert_close(y, ref, rtol=1e-4, atol=1e-4)
    if torch is not None and TORCH_CUDA:
        fx, fw = fc.tensor(to_numpy(x), device="cuda"), fc.tensor(to_numpy(w), device="cuda")
        with fc.autocast("cuda", dtype=fc.bfloat16):
            got = F.conv2d(fx, fw, padding=1)
        tx = torch.tensor(to_numpy(x), device="cuda")
        tw = torch.tensor(to_numpy(w), device="cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            want = torch.nn.functional.conv2d(tx, tw, padding=1)
        np.testing.assert_allclose(to_numpy(got.data), want.float().cpu().numpy(), rtol=2e-2,
                                   atol=2e-2)


# ---- composed ops on the GPU: the same code path as on the CPU, through CuPy --------------------
_COMPOSED = {
    "conv_transpose2d": (lambda x, w: F.conv_transpose2d(x, w, None, 2, 1, 1, 2),
                         [(2, 4, 5, 6), (4, 3, 3, 3)]),
    "conv1d": (lambda x, w: F.conv1d(x, w, None, 2, 1), [(2, 4, 9), (6, 4, 3)]),
    "grid_sample": (lambda x, g: F.grid_sample(x, g * 1.2, padding_mode="reflection"),
                    [(2, 3, 5, 6), (2, 4, 7, 2)]),
    "affine_grid": (lambda t: F.affine_grid(t, (2, 3, 4, 5)), [(2, 2, 3)]),
    "max_pool1d": (lambda x: F.max_pool1d(x, 3, 2, 1), [(2, 3, 11)]),
    "interpolate_linear": (lambda x: F.interpolate(x, scale_factor=2, mode="linear"),
                           [(2, 3, 7)]),
}


@pytest.mark.parametrize("name", sorted(_COMPOSED))
def test_composed_ops_gpu_match_cpu(name):
    fn, shapes = _COMPOSED[name]
    rng = np.random.default_rng(17)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    cpu = [fc.tensor(a, requires_grad=True) for a in arrays]
    gpu = [fc.tensor(a, device="cuda", requires_grad=True) for a in arrays]
    y_cpu, y_gpu = fn(*cpu), fn(*gpu)
    assert y_gpu.device == "cuda"
    dy = rng.standard_normal(y_cpu.shape).astype(np.float32)
    y_cpu.backward(fc.tensor(dy))
    y_gpu.backward(fc.tensor(dy, device="cuda"))
    assert_close(to_numpy(y_gpu), to_numpy(y_cpu), rtol=1e-4, atol=1e-4)
    for c, g in zip(cpu, gpu):
        assert_close(to_numpy(g.grad), to_numpy(c.grad), rtol=1e-4, atol=1e-4)
