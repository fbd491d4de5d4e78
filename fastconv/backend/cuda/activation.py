"""Leaky ReLU, ELU, GELU, SiLU, sigmoid and tanh (``fastconv/cuda/activation.cu``).

Each is one elementwise kernel forward and one backward; the backwards read the forward's
input x, except sigmoid and tanh, which read its output y.
"""

from __future__ import annotations

import cupy

from .launch import device_f32, f32, i32, i64, launch


def _pair(a, b, name_a):
    a, b = device_f32(a, name_a), device_f32(b, "grad_output")
    if a.shape != b.shape:
        raise ValueError(f"activation backward: {name_a} {a.shape} and grad_output {b.shape} "
                         "differ in shape")
    return a, b, cupy.empty_like(b)


def leaky_relu_forward(x, negative_slope):
    x = device_f32(x, "x")
    y = cupy.empty_like(x)
    launch("activation.cu", "leaky_relu_forward", x.size, (x, y, i64(x.size), f32(negative_slope)))
    return y


def leaky_relu_backward(x, dy, negative_slope):
    x, dy, dx = _pair(x, dy, "x")
    launch("activation.cu", "leaky_relu_backward", dx.size,
           (x, dy, dx, i64(dx.size), f32(negative_slope)))
    return dx


def elu_forward(x, alpha):
    x = device_f32(x, "x")
    y = cupy.empty_like(x)
    launch("activation.cu", "elu_forward", x.size, (x, y, i64(x.size), f32(alpha)))
    return y


def elu_backward(x, dy, alpha):
    x, dy, dx = _pair(x, dy, "x")
    launch("activation.cu", "elu_backward", dx.size, (x, dy, dx, i64(dx.size), f32(alpha)))
    return dx


def gelu_forward(x, approximate):
    x = device_f32(x, "x")
    y = cupy.empty_like(x)
    launch("activation.cu", "gelu_forward", x.size,
           (x, y, i64(x.size), i32(approximate == "tanh")))
    return y


def gelu_backward(x, dy, approximate):
    x, dy, dx = _pair(x, dy, "x")
    launch("activation.cu", "gelu_backward", dx.size,
           (x, dy, dx, i64(dx.size), i32(approximate == "tanh")))
    return dx


def silu_forward(x):
    x = device_f32(x, "x")
    y = cupy.empty_like(x)
    launch("activation.cu", "silu_forward", x.size, (x, y, i64(x.size)))
    return y


def silu_backward(x, dy):
    x, dy, dx = _pair(x, dy, "x")
    launch("activation.cu", "silu_backward", dx.size, (x, dy, dx, i64(dx.size)))
    return dx


def sigmoid_forward(x):
    x = device_f32(x, "x")
    y = cupy.empty_like(x)
    launch("activation.cu", "sigmoid_forward", x.size, (x, y, i64(x.size)))
    return y


def sigmoid_backward(y, dy):
    y, dy, dx = _pair(y, dy, "y")
    launch("activation.cu", "sigmoid_backward", dx.size, (y, dy, dx, i64(dx.size)))
    return dx


def tanh_forward(x):
    x = device_f32(x, "x")
    y = cupy.empty_like(x)
    launch("activation.cu", "tanh_forward", x.size, (x, y, i64(x.size)))
    return y


def tanh_backward(y, dy):
    y, dy, dx = _pair(y, dy, "y")
    launch("activation.cu", "tanh_backward", dx.size, (y, dy, dx, i64(dx.size)))
    return dx
