"""Group normalisation, and layer normalisation through it (``fastconv/cuda/norm_layer.cu``).

One block per (sample, group) row for the statistics and for dx; one block per channel for
the parameter gradients; the affine forward is elementwise.
"""

from __future__ import annotations

import cupy
import numpy as np

from .launch import (
    BLOCK,
    MAX_GRID,
    NULL,
    device_f32,
    device_f32_or_none,
    f32,
    get_kernel,
    i32,
    i64,
    launch,
)


def _geometry(x, groups):
    if x.ndim < 2:
        raise ValueError(f"group_norm: expected (N, C, *) input, got shape {x.shape}")
    N, C = int(x.shape[0]), int(x.shape[1])
    groups = int(groups)
    if groups < 1 or C % groups:
        raise ValueError(f"group_norm: groups must be >= 1 and divide the {C} channels of input "
                         f"{x.shape}, got {groups}")
    S = int(np.prod(x.shape[2:], dtype=np.int64)) if x.ndim > 2 else 1
    return N, C, S, groups, C // groups


def _channel_vector(a, C, name):
    a = device_f32_or_none(a, name)
    if a is not None and a.shape != (C,):
        raise ValueError(f"group_norm: {name} must have shape ({C},), got {a.shape}")
    return a


def _rows_grid(rows):
    return (max(1, min(int(rows), MAX_GRID)),)


def group_norm_forward(x, weight, bias, groups, eps):
    """(y, mean, rstd), mean and rstd of shape (N * groups,)."""
    x = device_f32(x, "x")
    N, C, S, G, Cg = _geometry(x, groups)
    weight, bias = _channel_vector(weight, C, "weight"), _channel_vector(bias, C, "bias")
    rows, K = N * G, Cg * S
    mean = cupy.empty((rows,), dtype=np.float32)
    rstd = cupy.empty((rows,), dtype=np.float32)
    y = cupy.empty_like(x)
    if rows:
        get_kernel("norm_layer.cu", "group_norm_forward_stats")(
            _rows_grid(rows), (BLOCK,), (x, mean, rstd, i64(rows), i64(K), f32(eps)))
    launch("norm_layer.cu", "group_norm_forward_apply", x.size,
           (x, mean, rstd, NULL if weight is None else weight, NULL if bias is None else bias,
            y, i64(x.size), i64(K), i64(S), i32(G), i32(Cg)))
    return y, mean, rstd


def group_norm_backward(x, weight, mean, rstd, dy, groups, need_dx, need_dparams):
    """(dx, dweight, dbias); dx None unless need_dx, the others None unless need_dparams."""
    x, dy = device_f32(x, "x"), device_f32(dy, "grad_output")
    if dy.shape != x.shape:
        raise ValueError(f"group_norm backward: grad_output {dy.shape} and input {x.shape} "
                         "differ in shape")
    N, C, S, G, Cg = _geometry(x, groups)
    weight = _channel_vector(weight, C, "weight")
    mean, rstd = device_f32(mean, "mean"), device_f32(rstd, "rstd")
    rows, K = N * G, Cg * S
    if mean.shape != (rows,) or rstd.shape != (rows,):
        raise ValueError(f"group_norm backward: mean {mean.shape} and rstd {rstd.shape} must "
                         f"have shape ({rows},)")
    dx = dweight = dbias = None
    if need_dx:
        dx = cupy.empty_like(x)
        if rows:
            get_kernel("norm_layer.cu", "group_norm_backward_rows")(
                _rows_grid(rows), (BLOCK,),
                (x, dy, mean, rstd, NULL if weight is None else weight, dx, i64(rows), i64(K),
                 i64(S), i32(G), i32(Cg)))
    if need_dparams:
        dweight = cupy.zeros((C,), dtype=np.float32)
        dbias = cupy.zeros((C,), dtype=np.float32)
        if C:
            get_kernel("norm_layer.cu", "group_norm_backward_params")(
                _rows_grid(C), (BLOCK,),
                (x, dy, mean, rstd, dweight, dbias, i32(N), i32(C), i64(S), i32(G), i32(Cg)))
    return dx, dweight, dbias
