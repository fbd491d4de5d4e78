"""Nearest and bilinear resizing (``fastconv/cuda/resize.cu``).

The per-axis source tables (NumPy, from fastconv/ops/upsample.py) are copied to the device;
for the backward the host also finds, for each input row and column, the range of outputs
that read it (the tables are monotone), so each thread gathers its dx element.
"""

from __future__ import annotations

import cupy
import numpy as np

from .launch import NULL, device_f32, i32, i64, launch


def _axis(name, size, index, weight):
    index = np.ascontiguousarray(index, dtype=np.int64)
    if index.ndim != 1 or (index.size and (index.min() < 0 or index.max() >= size)):
        raise ValueError(f"interpolate: {name} must be a 1-D table of positions in [0, {size})")
    if weight is not None:
        weight = np.ascontiguousarray(weight, dtype=np.float32)
        if weight.shape != index.shape:
            raise ValueError(f"interpolate: the weights of {name} must have shape {index.shape}")
    return index, weight


def _tables(x_shape, h_index, h_weight, w_index, w_weight):
    if len(x_shape) != 4:
        raise ValueError(f"interpolate: expected (N, C, H, W) input, got shape {tuple(x_shape)}")
    if (h_weight is None) != (w_weight is None):
        raise ValueError("interpolate: give both weights (bilinear) or neither (nearest)")
    N, C, H, W = (int(s) for s in x_shape)
    hi, hl = _axis("h_index", H, h_index, h_weight)
    wi, wl = _axis("w_index", W, w_index, w_weight)
    return N, C, H, W, hi, hl, wi, wl


def _device(a):
    return NULL if a is None else cupy.asarray(a)


def interpolate_forward(x, h_index, h_weight, w_index, w_weight):
    x = device_f32(x, "x")
    N, C, H, W, hi, hl, wi, wl = _tables(x.shape, h_index, h_weight, w_index, w_weight)
    OH, OW = len(hi), len(wi)
    y = cupy.empty((N, C, OH, OW), dtype=np.float32)
    launch("resize.cu", "interpolate_forward", y.size,
           (x, y, _device(hi), _device(hl), _device(wi), _device(wl), i64(N * C), i32(H),
            i32(W), i32(OH), i32(OW), i32(hl is not None)))
    return y


def _reader_ranges(i0, linear, size):
    """(size, 2) int64: for each input position, the outputs [lo, hi) that read it."""
    i1 = np.minimum(i0 + 1, size - 1) if linear else i0
    p = np.arange(size)
    return np.stack([np.searchsorted(i1, p, "left"), np.searchsorted(i0, p, "right")],
                    axis=1).astype(np.int64)


def interpolate_backward(dy, x_shape, h_index, h_weight, w_index, w_weight):
    dy = device_f32(dy, "grad_output")
    N, C, H, W, hi, hl, wi, wl = _tables(x_shape, h_index, h_weight, w_index, w_weight)
    OH, OW = len(hi), len(wi)
    if dy.shape != (N, C, OH, OW):
        raise ValueError(f"interpolate backward: grad_output {dy.shape}, expected "
                         f"{(N, C, OH, OW)}")
    linear = hl is not None
    dx = cupy.empty((N, C, H, W), dtype=np.float32)
    launch("resize.cu", "interpolate_backward", dx.size,
           (dy, dx, _device(hi), _device(hl), _device(wi), _device(wl),
            cupy.asarray(_reader_ranges(hi, linear, H)),
            cupy.asarray(_reader_ranges(wi, linear, W)), i64(N * C), i32(H), i32(W), i32(OH),
            i32(OW), i32(linear)))
    return dx
