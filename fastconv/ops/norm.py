"""Batch normalisation and local response normalisation."""

from __future__ import annotations

import numpy as np

from fastconv.function import Function
from fastconv.ops.validate import contiguous, float_tensor


class BatchNormTrain(Function):
    """Normalise with the batch statistics and fold them into the running averages in place."""

    def forward(self, x, weight, bias, eps, running_mean, running_var, momentum):
        xp = self.xp
        x = contiguous(xp, x)
        y, mean, var = self.kernels.batch_norm_forward_train(
            x, contiguous(xp, weight), contiguous(xp, bias), eps)
        if running_mean is not None:
            count = x.size // x.shape[1]
            running_mean *= 1 - momentum
            running_mean += momentum * mean
            running_var *= 1 - momentum
            running_var += (momentum * count / (count - 1)) * var  # unbiased, as in PyTorch
        self.save_for_backward(x, weight, mean, var)
        self.eps = eps
        return y

    def backward(self, dy):
        x, weight, mean, var = self.saved
        dx, dweight, dbias = self.kernels.batch_norm_backward(
            x, contiguous(self.xp, weight), mean, var, self.eps, contiguous(self.xp, dy))
        need_x, need_w, need_b = self.needs_input_grad[:3]
        return (dx if need_x else None, dweight if need_w else None,
                dbias if need_b else None) + (None,) * 4


class BatchNormEval(Function):
    """Normalise with fixed statistics: y = (x - mean) / sqrt(var + eps) * weight + bias."""

    def forward(self, x, weight, bias, mean, var, eps):
        xp = self.xp
        self.invstd = (1.0 / xp.sqrt(var + eps)).astype(np.float32)
        self.save_for_backward(x, weight, mean)
        return self.kernels.batch_norm_forward_eval(
            contiguous(xp, x), contiguous(xp, mean), contiguous(xp, var),
            contiguous(xp, weight), contiguous(xp, bias), eps)

    def backward(self, dy):
        x, weight, mean = self.saved
        shape = (1, -1) + (1,) * (x.ndim - 2)
        axes = (0,) + tuple(range(2, dy.ndim))
        need_x, need_w, need_b = self.needs_input_grad[:3]
        dx = dy * (weight * self.invstd).reshape(shape) if need_x else None
        dweight = ((dy * ((x - mean.reshape(shape)) * self.invstd.reshape(shape))).sum(axis=axes)
                   if need_w else None)
        dbias = dy.sum(axis=axes) if need_b else None
        return dx, dweight, dbias, None, None, None


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Batch normalisation (Ioffe & Szegedy, 2015).

    y = (x - E[x]) / sqrt(Var[x] + eps) * weight + bias, with the statistics taken
    per channel (dim 1) over the batch and the spatial dims. In training the batch
    statistics are used and ``running_mean`` / ``running_var`` are updated in place:
    running = (1 - momentum) * running + momentum * batch (the variance unbiased,
    as in PyTorch). In evaluation the running statistics are used.

    Args:
        x: (N, C), (N, C, L) or (N, C, H, W).
        running_mean, running_var: (C,) Tensors, or None to always use batch statistics.
        weight, bias: (C,) affine parameters, or None (1 and 0).
    """
    from fastconv.backend import get_backend
    from fastconv.tensor import Tensor

    op = "batch_norm"
    float_tensor(x, "input", op, (2, 3, 4))
    C = x.shape[1]
    xp = get_backend(x.device).xp
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None:
            float_tensor(t, name, op, (1,))
            if t.shape != (C,):
                raise ValueError(f"{op}: {name} must have shape ({C},) for input {x.shape}, "
                                 f"got {t.shape}")
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: give both running_mean and running_var, or neither")
    if x.ndim == 3:  # (N, C, L): the kernels see it as (N, C, L, 1)
        y = batch_norm(x.reshape(*x.shape, 1), running_mean, running_var, weight, bias,
                       training, momentum, eps)
        return y.reshape(x.shape)
    weight = weight if weight is not None else Tensor(xp.ones(C, dtype=np.float32))
    bias = bias if bias is not None else Tensor(xp.zeros(C, dtype=np.float32))
    if training or running_mean is None:
        if x.data.size // C < 2:
            raise ValueError(f"{op}: batch statistics need more than one value per channel, "
                             f"got input {x.shape}")
        update = training and running_mean is not None
        return BatchNormTrain.apply(x, weight, bias, float(eps),
                                    running_mean.data if update else None,
                                    running_var.data if update else None, float(momentum))
    return BatchNormEval.apply(x, weight, bias, running_mean.data, running_var.data, float(eps))


class LocalResponseNorm(Function):
    def forward(self, x, size, alpha, beta, k):
        x = contiguous(self.xp, x)
        y, scale = self.kernels.lrn_forward(x, size, alpha, beta, k)
        self.save_for_backward(x, y, scale)
        self.args = (size, alpha, beta, k)
        return y

    def backward(self, dy):
        x, y, scale = self.saved
        return self.kernels.lrn_backward(x, y, scale, contiguous(self.xp, dy), *self.args)


def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """Local response normalisation across channels (Krizhevsky et al., 2012), PyTorch's form.

        y[c] = x[c] / (k + alpha / size * sum_{j in window(c)} x[j]^2) ** beta

    with window(c) = [c - size//2, c + (size-1)//2] clipped to the channels.

    Mapping from other frameworks:
      * TensorFlow ``tf.nn.local_response_normalization(depth_radius=r, bias=b,
        alpha=a, beta=be)`` sums a window of 2r+1 channels and does *not* divide
        alpha by it: ``size = 2*r + 1, alpha = a * size, k = b, beta = be``.
      * Caffe ``LRN(local_size=n, alpha=a, beta=be, k=kk)`` (ACROSS_CHANNELS)
        divides alpha by n like PyTorch: ``size = n, alpha = a, k = kk``.
    """
    op = "local_response_norm"
    float_tensor(x, "input", op, (3, 4))
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"{op}: size must be a positive int, got {size!r}")
    squeeze = x.ndim == 3
    if squeeze:
        x = x.reshape(x.shape[0], x.shape[1], x.shape[2], 1)
    y = LocalResponseNorm.apply(x, size, float(alpha), float(beta), float(k))
    return y.reshape(y.shape[:3]) if squeeze else y
