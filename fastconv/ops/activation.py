"""ReLU, dropout and the softmax family."""

from __future__ import annotations

import numpy as np

from fastconv import random
from fastconv.function import Function
from fastconv.ops.validate import contiguous, float_tensor


class ReLU(Function):
    def forward(self, x):
        y = self.kernels.relu_forward(contiguous(self.xp, x))
        self.save_for_backward(y)
        return y

    def backward(self, dy):
        return self.kernels.relu_backward(self.saved[0], contiguous(self.xp, dy))


def relu(x):
    """max(x, 0) elementwise."""
    float_tensor(x, "input", "relu")
    return ReLU.apply(x)


class MaskMultiply(Function):
    """y = x * mask for a constant mask (dropout's scaled keep-mask)."""

    def forward(self, x, mask):
        self.mask = mask
        return x * mask

    def backward(self, dy):
        return dy * self.mask, None


def _dropout(op, x, p, training, mask_shape):
    float_tensor(x, "input", op)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: p must be a probability in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    keep = random.uniform(mask_shape, x.device) >= p
    mask = keep.astype(np.float32) * np.float32(1.0 / (1.0 - p))
    return MaskMultiply.apply(x, mask)


def dropout(x, p=0.5, training=True):
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p) (Srivastava et al., 2014).

    Identity when ``training`` is False. Masks come from fastconv's generator
    (reproducible under ``fastconv.manual_seed``).
    """
    return _dropout("dropout", x, p, training, x.shape)


def dropout2d(x, p=0.5, training=True):
    """Spatial dropout (Tompson et al., 2015): zero whole feature maps of (N, C, H, W) input."""
    if x.ndim != 4:
        raise ValueError(f"dropout2d: input must be 4-D (N, C, H, W), got shape {x.shape}")
    return _dropout("dropout2d", x, p, training, x.shape[:2] + (1, 1))


class Softmax(Function):
    def forward(self, x, dim):
        xp = self.xp
        e = xp.exp(x - x.max(axis=dim, keepdims=True))
        y = e / e.sum(axis=dim, keepdims=True)
        self.save_for_backward(y)
        self.dim = dim
        return y

    def backward(self, dy):
        (y,) = self.saved
        return y * (dy - (dy * y).sum(axis=self.dim, keepdims=True)), None


class LogSoftmax(Function):
    def forward(self, x, dim):
        xp = self.xp
        shifted = x - x.max(axis=dim, keepdims=True)
        y = shifted - xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True))
        self.save_for_backward(y)
        self.dim = dim
        return y

    def backward(self, dy):
        (y,) = self.saved
        return dy - self.xp.exp(y) * dy.sum(axis=self.dim, keepdims=True), None


def softmax(x, dim=-1):
    """exp(x_i - max x) / sum_j exp(x_j - max x) along ``dim``."""
    float_tensor(x, "input", "softmax")
    return Softmax.apply(x, dim)


def log_softmax(x, dim=-1):
    """log(softmax(x)) computed stably as (x - max) - log(sum(exp(x - max)))."""
    float_tensor(x, "input", "log_softmax")
    return LogSoftmax.apply(x, dim)
