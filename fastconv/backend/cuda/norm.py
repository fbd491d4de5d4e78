"""Local response normalisation (``fastconv/cuda/lrn.cu``) and batch normalisation
(``fastconv/cuda/batchnorm.cu``)."""

from __future__ import annotations

import cupy
import numpy as np

from .launch import (
    BLOCK,
    NULL,
    device_f32,
    device_f32_or_none,
    f32,
    get_kernel,
    i32,
    i64,
    launch,
    sms,
)

# ------------------------------------------------------------------ local response normalisation

def _lrn_segment(N, C, HW, size) -> int:
    """Channels per thread: all of them when the pixels alone fill the GPU, fewer otherwise."""
    target = 4 * sms() * BLOCK
    pixels = max(N * HW, 1)
    nseg = max(1, min(C, -(-target // pixels)))
    seg = -(-C // nseg)
    return max(1, max(seg, min(C, 2 * size)))


def lrn_forward(x, size, alpha, beta, k):
    """(y, scale): scale = k + alpha/size * window sum of x^2; y = x * scale^-beta."""
    x = device_f32(x, "x")
    if x.ndim < 2:
        raise ValueError(f"local_response_norm: expected (N, C, ...) input, got {x.shape}")
    size = int(size)
    N, C = x.shape[0], x.shape[1]
    HW = int(np.prod(x.shape[2:], dtype=np.int64)) if x.ndim > 2 else 1
    y = cupy.empty_like(x)
    scale = cupy.empty_like(x)
    if x.size == 0:
        return y, scale
    seg = _lrn_segment(N, C, HW, size)
    nseg = -(-C // seg)
    launch("lrn.cu", "lrn_forward", nseg * N * HW,
            (x, y, scale, i32(N), i32(C), i64(HW), i32(size), f32(alpha), f32(beta),
             f32(k), i32(seg)))
    return y, scale


def lrn_backward(x, y, scale, dy, size, alpha, beta, k):
    x, y, scale = device_f32(x, "x"), device_f32(y, "y"), device_f32(scale, "scale")
    dy = device_f32(dy, "grad_output")
    if not (x.shape == y.shape == scale.shape == dy.shape):
        raise ValueError(f"local_response_norm backward: shapes differ: x {x.shape}, "
                         f"y {y.shape}, scale {scale.shape}, grad_output {dy.shape}")
    size = int(size)
    N, C = x.shape[0], x.shape[1]
    HW = int(np.prod(x.shape[2:], dtype=np.int64)) if x.ndim > 2 else 1
    dx = cupy.empty_like(x)
    if x.size == 0:
        return dx
    seg = _lrn_segment(N, C, HW, size)
    nseg = -(-C // seg)
    launch("lrn.cu", "lrn_backward", nseg * N * HW,
            (x, y, scale, dy, dx, i32(N), i32(C), i64(HW), i32(size), f32(alpha),
             f32(beta), i32(seg)))
    return dx


# ------------------------------------------------------------------ batch normalisation

def _bn_dims(x):
    if x.ndim < 2:
        raise ValueError(f"batch_norm: expected (N, C) or (N, C, H, W) input, got {x.shape}")
    N, C = int(x.shape[0]), int(x.shape[1])
    HW = int(np.prod(x.shape[2:], dtype=np.int64)) if x.ndim > 2 else 1
    return N, C, HW


def _bn_splits(C, M) -> int:
    """Slices per channel for the statistics: enough blocks to fill the GPU, >= 1024 elems each.

    The slices are gridDim.y of the reductions, so at most 65535 (CUDA's limit)."""
    want = -(-4 * sms() // max(C, 1))
    return int(max(1, min(want, max(1, M // 1024), 65535)))


def _check_channels(a, C, name):
    if a is not None and a.shape != (C,):
        raise ValueError(f"batch_norm: {name} must have shape ({C},), got {a.shape}")


def batch_norm_forward_train(x, weight, bias, eps):
    """(y, mean, var) with one-pass Welford statistics over all axes but C (biased var)."""
    x = device_f32(x, "x")
    weight, bias = device_f32_or_none(weight, "weight"), device_f32_or_none(bias, "bias")
    N, C, HW = _bn_dims(x)
    _check_channels(weight, C, "weight")
    _check_channels(bias, C, "bias")
    M = N * HW
    mean = cupy.empty((C,), dtype=np.float32)
    var = cupy.empty((C,), dtype=np.float32)
    y = cupy.empty_like(x)
    if C == 0:
        return y, mean, var
    if M == 0:
        mean.fill(0)
        var.fill(0)
        return y, mean, var
    splits = _bn_splits(C, M)
    part = cupy.empty((C, splits, 3), dtype=np.float32)
    get_kernel("batchnorm.cu", "batch_norm_forward_partial")(
        (C, splits), (BLOCK,), (x, part, i32(N), i32(C), i64(HW), i32(splits)))
    launch("batchnorm.cu", "batch_norm_forward_finalize", C, (part, mean, var, i32(C), i32(splits)))
    launch("batchnorm.cu", "batch_norm_forward_apply", x.size,
            (x, mean, var, weight if weight is not None else NULL,
             bias if bias is not None else NULL, y, i32(N), i32(C), i64(HW), f32(eps)))
    return y, mean, var


def batch_norm_forward_eval(x, mean, var, weight, bias, eps):
    """y = (x - running_mean) / sqrt(running_var + eps) * weight + bias."""
    x = device_f32(x, "x")
    mean, var = device_f32(mean, "running_mean"), device_f32(var, "running_var")
    weight, bias = device_f32_or_none(weight, "weight"), device_f32_or_none(bias, "bias")
    N, C, HW = _bn_dims(x)
    for a, name in ((mean, "running_mean"), (var, "running_var"), (weight, "weight"),
                    (bias, "bias")):
        _check_channels(a, C, name)
    y = cupy.empty_like(x)
    launch("batchnorm.cu", "batch_norm_forward_apply", x.size,
            (x, mean, var, weight if weight is not None else NULL,
             bias if bias is not None else NULL, y, i32(N), i32(C), i64(HW), f32(eps)))
    return y


def batch_norm_backward(x, weight, mean, var, eps, dy):
    """(dx, dweight, dbias) of the training-mode batch norm (batch statistics mean, var)."""
    x, dy = device_f32(x, "x"), device_f32(dy, "grad_output")
    mean, var = device_f32(mean, "mean"), device_f32(var, "var")
    weight = device_f32_or_none(weight, "weight")
    if dy.shape != x.shape:
        raise ValueError(f"batch_norm backward: grad_output {dy.shape} != x {x.shape}")
    N, C, HW = _bn_dims(x)
    for a, name in ((mean, "mean"), (var, "var"), (weight, "weight")):
        _check_channels(a, C, name)
    M = N * HW
    dweight = cupy.zeros((C,), dtype=np.float32)
    dbias = cupy.zeros((C,), dtype=np.float32)
    dx = cupy.empty_like(x)
    if C == 0 or M == 0:
        return dx, dweight, dbias
    splits = _bn_splits(C, M)
    part = cupy.empty((C, splits, 2), dtype=np.float32)
    get_kernel("batchnorm.cu", "batch_norm_backward_partial")(
        (C, splits), (BLOCK,), (x, dy, mean, part, i32(N), i32(C), i64(HW), i32(splits)))
    sums = cupy.empty((C, 2), dtype=np.float32)
    launch("batchnorm.cu", "batch_norm_backward_finalize", C,
            (part, var, sums, dweight, dbias, i32(C), i32(splits), f32(eps)))
    launch("batchnorm.cu", "batch_norm_backward_apply", x.size,
            (x, dy, mean, var, weight if weight is not None else NULL, sums, dx, i32(N),
             i32(C), i64(HW), f32(eps)))
    return dx, dweight, dbias


def batch_norm_max_pool2d_forward(x, weight, bias, eps, kernel, stride, padding, ceil_mode,
                                  dilation=(1, 1)):
    """(y, indices, mean, var): the two kernels one after the other (the normalised x is
    stored in between; fusing them is the CPU's memory-traffic saving)."""
    from .pool import max_pool2d_forward

    normed, mean, var = batch_norm_forward_train(x, weight, bias, eps)
    y, indices = max_pool2d_forward(normed, kernel, stride, padding, ceil_mode, dilation)
    return y, indices, mean, var


def batch_norm_max_pool2d_backward(x, weight, mean, var, eps, dy, indices, kernel, stride,
                                   padding, dilation=(1, 1)):
    """(dx, dweight, dbias): batch_norm_backward of max_pool2d_backward's dx (which gathers
    through the window: the same on every run)."""
    from .pool import max_pool2d_backward

    full = max_pool2d_backward(dy, indices, x.shape, kernel, stride, padding, dilation)
    return batch_norm_backward(x, weight, mean, var, eps, full)
