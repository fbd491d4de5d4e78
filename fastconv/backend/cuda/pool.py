"""Max (any dilation), adaptive max, average and global average pooling
(``fastconv/cuda/pool.cu``).

The backwards gather: one thread per input element reads the windows that cover it, so dx is
the same on every run. An average pool whose window is the whole plane runs as the global
average pool (one warp per plane).
"""

from __future__ import annotations

import cupy
import numpy as np

from fastconv import output_size

from .launch import BLOCK, MAX_GRID, device_f32, get_kernel, i32, i64, launch


def _pool_geometry(x_shape, kernel, stride, padding, ceil_mode, dilation=(1, 1)):
    if len(x_shape) != 4:
        raise ValueError(f"pool2d: expected (N, C, H, W) input, got shape {tuple(x_shape)}")
    N, C, H, W = (int(s) for s in x_shape)
    KH, KW = kernel
    SH, SW = stride
    PH, PW = padding
    DH, DW = dilation
    OH = output_size.pool_output_size(H, KH, SH, PH, bool(ceil_mode), DH)
    OW = output_size.pool_output_size(W, KW, SW, PW, bool(ceil_mode), DW)
    return N, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW


def max_pool2d_forward(x, kernel, stride, padding, ceil_mode, dilation=(1, 1)):
    """(y, indices): indices int32 (N, C, OH, OW) = flat offset h*W + w of the window's max."""
    x = device_f32(x, "x")
    N, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW = _pool_geometry(x.shape, kernel, stride,
                                                                 padding, ceil_mode, dilation)
    y = cupy.empty((N, C, OH, OW), dtype=np.float32)
    idx = cupy.empty((N, C, OH, OW), dtype=np.int32)
    launch("pool.cu", "max_pool2d_forward", y.size,
            (x, y, idx, i64(N * C), i32(H), i32(W), i32(OH), i32(OW), i32(KH), i32(KW),
             i32(SH), i32(SW), i32(PH), i32(PW), i32(dilation[0]), i32(dilation[1])))
    return y, idx


def _max_backward_shapes(op, dy, indices, x_shape):
    """(dy, indices, N, C, H, W, OH, OW) checked for a gather over the saved argmax."""
    if not isinstance(indices, cupy.ndarray):
        raise TypeError(f"{op} backward: indices must be a CuPy array")
    if indices.shape != dy.shape:
        raise ValueError(f"{op} backward: indices {indices.shape} and grad_output "
                         f"{dy.shape} differ in shape")
    if len(x_shape) != 4 or dy.ndim != 4:
        raise ValueError(f"{op} backward: x_shape must be (N, C, H, W), got {x_shape}")
    N, C, H, W = (int(s) for s in x_shape)
    if tuple(dy.shape[:2]) != (N, C):
        raise ValueError(f"{op} backward: grad_output {dy.shape} does not match x_shape "
                         f"{tuple(x_shape)}")
    if indices.dtype != np.int32 or not indices.flags.c_contiguous:
        indices = cupy.ascontiguousarray(indices, dtype=np.int32)
    return indices, N, C, H, W, int(dy.shape[2]), int(dy.shape[3])


def adaptive_max_pool2d_forward(x, output_size):
    """(y, indices) over PyTorch's adaptive windows."""
    x = device_f32(x, "x")
    if x.ndim != 4:
        raise ValueError(f"adaptive_max_pool2d: expected (N, C, H, W) input, got {x.shape}")
    N, C, H, W = x.shape
    OH, OW = (int(s) for s in output_size)
    if OH < 1 or OW < 1 or (N * C and H * W == 0):
        raise ValueError(f"adaptive_max_pool2d: output size {output_size} for input {x.shape}")
    y = cupy.empty((N, C, OH, OW), dtype=np.float32)
    idx = cupy.empty((N, C, OH, OW), dtype=np.int32)
    launch("pool.cu", "adaptive_max_pool2d_forward", y.size,
           (x, y, idx, i64(N * C), i32(H), i32(W), i32(OH), i32(OW)))
    return y, idx


def adaptive_max_pool2d_backward(dy, indices, x_shape):
    """dx gathered per input element from the adaptive windows that contain it."""
    dy = device_f32(dy, "grad_output")
    indices, N, C, H, W, OH, OW = _max_backward_shapes("adaptive_max_pool2d", dy, indices,
                                                       x_shape)
    dx = cupy.empty((N, C, H, W), dtype=np.float32)
    launch("pool.cu", "adaptive_max_pool2d_backward", dx.size,
           (dy, indices, dx, i64(N * C), i32(H), i32(W), i32(OH), i32(OW)))
    return dx


def max_pool2d_backward(dy, indices, x_shape, kernel, stride, padding, dilation=(1, 1)):
    """dx from the saved argmax (written, not accumulated): each input element gathers from
    the windows that cover it, so the result is the same on every run (no atomics)."""
    dy = device_f32(dy, "grad_output")
    indices, N, C, H, W, OH, OW = _max_backward_shapes("max_pool2d", dy, indices, x_shape)
    KH, KW = kernel
    SH, SW = stride
    PH, PW = padding
    dx = cupy.empty((N, C, H, W), dtype=np.float32)
    launch("pool.cu", "max_pool2d_backward", dx.size,
            (dy, indices, dx, i64(N * C), i32(H), i32(W), i32(OH), i32(OW), i32(KH),
             i32(KW), i32(SH), i32(SW), i32(PH), i32(PW), i32(dilation[0]), i32(dilation[1])))
    return dx


def _is_global(H, W, KH, KW, PH, PW) -> bool:
    return KH == H and KW == W and PH == 0 and PW == 0


def avg_pool2d_forward(x, kernel, stride, padding, ceil_mode, count_include_pad):
    """Average pooling (PyTorch divisor rules); a window covering the whole plane -> global."""
    x = device_f32(x, "x")
    N, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW = _pool_geometry(x.shape, kernel, stride,
                                                                 padding, ceil_mode)
    if _is_global(H, W, KH, KW, PH, PW) and OH == 1 and OW == 1:
        return global_avg_pool2d_forward(x)
    y = cupy.empty((N, C, OH, OW), dtype=np.float32)
    launch("pool.cu", "avg_pool2d_forward", y.size,
            (x, y, i64(N * C), i32(H), i32(W), i32(OH), i32(OW), i32(KH), i32(KW),
             i32(SH), i32(SW), i32(PH), i32(PW), i32(1 if count_include_pad else 0)))
    return y


def avg_pool2d_backward(dy, x_shape, kernel, stride, padding, ceil_mode, count_include_pad):
    dy = device_f32(dy, "grad_output")
    N, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW = _pool_geometry(x_shape, kernel, stride,
                                                                 padding, ceil_mode)
    if dy.shape != (N, C, OH, OW):
        raise ValueError(f"avg_pool2d backward: grad_output has shape {dy.shape}, expected "
                         f"{(N, C, OH, OW)}")
    if _is_global(H, W, KH, KW, PH, PW) and OH == 1 and OW == 1:
        return global_avg_pool2d_backward(dy, x_shape)
    dx = cupy.empty((N, C, H, W), dtype=np.float32)
    launch("pool.cu", "avg_pool2d_backward", dx.size,
            (dy, dx, i64(N * C), i32(H), i32(W), i32(OH), i32(OW), i32(KH), i32(KW),
             i32(SH), i32(SW), i32(PH), i32(PW), i32(1 if count_include_pad else 0)))
    return dx


def global_avg_pool2d_forward(x):
    """(N, C, H, W) -> (N, C, 1, 1) plane means (adaptive_avg_pool2d to 1x1)."""
    x = device_f32(x, "x")
    if x.ndim != 4:
        raise ValueError(f"global_avg_pool2d: expected (N, C, H, W), got {x.shape}")
    N, C, H, W = x.shape
    y = cupy.empty((N, C, 1, 1), dtype=np.float32)
    NC, HW = N * C, H * W
    if NC == 0:
        return y
    warps = BLOCK // 32
    get_kernel("pool.cu", "global_avg_pool2d_forward")(
        (max(1, min((NC + warps - 1) // warps, MAX_GRID)),), (BLOCK,),
        (x, y, i64(NC), i64(HW)))
    return y


def global_avg_pool2d_backward(dy, x_shape):
    dy = device_f32(dy, "grad_output")
    N, C, H, W = (int(s) for s in x_shape)
    if dy.size != N * C:
        raise ValueError(f"global_avg_pool2d backward: grad_output {dy.shape} does not match "
                         f"x_shape {tuple(x_shape)}")
    dx = cupy.empty((N, C, H, W), dtype=np.float32)
    launch("pool.cu", "global_avg_pool2d_backward", dx.size,
            (dy, dx, i64(N * C), i64(H * W)))
    return dx
