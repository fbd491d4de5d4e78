"""ReLU, dropout, the in-place sum of gradients and rounding to bfloat16
(``fastconv/cuda/elementwise.cu``)."""

from __future__ import annotations

import cupy
import numpy as np

from .launch import device_f32, i64, launch
from .rng import random_uniform


def relu_forward(x):
    x = device_f32(x, "x")
    y = cupy.empty_like(x)
    launch("elementwise.cu", "relu_forward", x.size, (x, y, i64(x.size)))
    return y


def relu_backward(y, dy):
    """dx = dy where y > 0, else 0."""
    y, dy = device_f32(y, "y"), device_f32(dy, "grad_output")
    if y.shape != dy.shape:
        raise ValueError(f"relu backward: y {y.shape} and grad_output {dy.shape} differ")
    dx = cupy.empty_like(dy)
    launch("elementwise.cu", "relu_backward", dy.size, (y, dy, dx, i64(dy.size)))
    return dx


def dropout_forward(x, p):
    """(y, mask): mask = 1 / (1 - p) where a uniform draw is >= p, else 0; y = x * mask."""
    x = device_f32(x, "x")
    mask = (random_uniform(x.shape) >= p).astype(np.float32) * np.float32(1.0 / (1.0 - p))
    return x * mask, mask


def dropout_backward(dy, mask):
    return device_f32(dy, "grad_output") * mask


def round_bf16_(x):
    """Round float32 x in place to the nearest bfloat16 (ties to even)."""
    if device_f32(x, "x") is not x:  # a converted copy would be rounded, not x
        raise ValueError("round_bf16_: x must be a C-contiguous float32 CUDA array")
    launch("elementwise.cu", "round_bf16", x.size, (x.view(np.uint32), i64(x.size)))


def accumulate_(dst, src):
    """dst += src in place."""
    dst += src
