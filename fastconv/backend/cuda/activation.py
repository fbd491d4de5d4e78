"""Leaky ReLU, ELU, GELU, SiLU, sigmoid and tanh (``fastconv/cuda/activation.cu``).

Each is one elementwise kernel forward and one backward; the backwards read the forward's
input x, except sigmoid and tanh, which read its output y. Every kernel takes its arrays,
the element count, then the activation's own parameters.
"""

from __future__ import annotations

import cupy

from .launch import device_f32, f32, i32, i64, launch


def _forward(kernel, x, *params):
    """y of ``kernel``, a (file, name) pair, for x."""
    x = device_f32(x, "x")
    y = cupy.empty_like(x)
    launch(*kernel, x.size, (x, y, i64(x.size), *params))
    return y


def _backward(kernel, a, dy, name_a, *params):
    """dx of ``kernel`` from ``a`` (the forward's x or y, named ``name_a``) and dy."""
    a, dy = device_f32(a, name_a), device_f32(dy, "grad_output")
    if a.shape != dy.shape:
        raise ValueError(f"activation backward: {name_a} {a.shape} and grad_output {dy.shape} "
                         "differ in shape")
    dx = cupy.empty_like(dy)
    launch(*kernel, dx.size, (a, dy, dx, i64(dx.size), *params))
    return dx


def leaky_relu_forward(x, negative_slope):
    return _forward(("activation.cu", "leaky_relu_forward"), x, f32(negative_slope))


def leaky_relu_backward(x, dy, negative_slope):
    return _backward(("activation.cu", "leaky_relu_backward"), x, dy, "x", f32(negative_slope))


def elu_forward(x, alpha):
    return _forward(("activation.cu", "elu_forward"), x, f32(alpha))


def elu_backward(x, dy, alpha):
    return _backward(("activation.cu", "elu_backward"), x, dy, "x", f32(alpha))


def gelu_forward(x, approximate):
    return _forward(("activation.cu", "gelu_forward"), x, i32(approximate == "tanh"))


def gelu_backward(x, dy, approximate):
    return _backward(("activation.cu", "gelu_backward"), x, dy, "x", i32(approximate == "tanh"))


def silu_forward(x):
    return _forward(("activation.cu", "silu_forward"), x)


def silu_backward(x, dy):
    return _backward(("activation.cu", "silu_backward"), x, dy, "x")


def sigmoid_forward(x):
    return _forward(("activation.cu", "sigmoid_forward"), x)


def sigmoid_backward(y, dy):
    return _backward(("activation.cu", "sigmoid_backward"), y, dy, "y")


def tanh_forward(x):
    return _forward(("activation.cu", "tanh_forward"), x)


def tanh_backward(y, dy):
    return _backward(("activation.cu", "tanh_backward"), y, dy, "y")
