"""Batch normalisation and local response normalisation."""

from __future__ import annotations

import numpy as np

from fastconv.function import Function
from fastconv.ops.validate import ArgumentError, contiguous, float_tensor


class BatchNormTrain(Function):
    """Normalise with the batch statistics and fold them into the running averages in place."""

    def forward(self, x, weight, bias, eps, running_mean, running_var, momentum):
        xp = self.xp
        x = contiguous(xp, x)
        y, mean, var = self.kernels.batch_norm_forward_train(
            x, contiguous(xp, weight), contiguous(xp, bias), eps)
        _update_running(x, mean, var, running_mean, running_var, momentum)
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

    def composite(self, x, weight, bias, eps, *running):
        axes = (0,) + tuple(range(2, x.ndim))
        mean = x.mean(dim=axes, keepdim=True)
        var = ((x - mean) ** 2).mean(dim=axes, keepdim=True)
        return _affine((x - mean) / (var + eps).sqrt(), weight, bias)


def _update_running(x, mean, var, running_mean, running_var, momentum):
    """Folds the batch statistics into the running averages in place (if any)."""
    if running_mean is not None:
        count = x.size // x.shape[1]
        running_mean *= 1 - momentum
        running_mean += momentum * mean
        running_var *= 1 - momentum
        running_var += (momentum * count / (count - 1)) * var  # unbiased, as in PyTorch


class BatchNormMaxPool2d(Function):
    """max_pool2d(batch_norm(x)) with the batch statistics, as one op: on the CPU each plane is
    normalised in L1 and pooled, so the normalised activations are neither written nor read
    back, and the backward rebuilds each plane's gradient from the pooled one the same way.
    Values and gradients are the two ops', bit for bit."""

    def forward(self, x, weight, bias, eps, running_mean, running_var, momentum, kernel, stride,
                padding, ceil_mode, dilation):
        xp = self.xp
        x = contiguous(xp, x)
        y, self.indices, mean, var = self.kernels.batch_norm_max_pool2d_forward(
            x, contiguous(xp, weight), contiguous(xp, bias), eps, kernel, stride, padding,
            ceil_mode, dilation)
        _update_running(x, mean, var, running_mean, running_var, momentum)
        self.save_for_backward(x, weight, mean, var)
        self.eps, self.window = eps, (kernel, stride, padding, dilation)
        return y

    def backward(self, dy):
        x, weight, mean, var = self.saved
        dx, dweight, dbias = self.kernels.batch_norm_max_pool2d_backward(
            x, contiguous(self.xp, weight), mean, var, self.eps, contiguous(self.xp, dy),
            self.indices, *self.window)
        need_x, need_w, need_b = self.needs_input_grad[:3]
        return (dx if need_x else None, dweight if need_w else None,
                dbias if need_b else None) + (None,) * 9

    def composite(self, x, weight, bias, eps, running_mean, running_var, momentum, kernel, stride,
                  padding, ceil_mode, dilation):
        from fastconv.ops.pool import max_pool2d

        return max_pool2d(BatchNormTrain.composite(self, x, weight, bias, eps), kernel, stride,
                          padding, dilation, ceil_mode)


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

    def composite(self, x, weight, bias, mean, var, eps):
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return _affine((x - mean.reshape(shape)) * self.invstd.reshape(shape), weight, bias)


def _affine(normalised, weight, bias):
    """Per-channel scale and shift of (N, C, ...) activations (either may be None)."""
    shape = (1, -1) + (1,) * (normalised.ndim - 2)
    y = normalised if weight is None else normalised * weight.reshape(shape)
    return y if bias is None else y + bias.reshape(shape)


def _empty_norm(x):
    """torch's batch norm of an empty input: the input as it is, with no check of the
    per-channel tensors (running statistics, weight and bias of any length, or none, are
    neither read nor updated). torch 2.13 then multiplies by weight[0] and adds bias[0],
    failing on an empty weight or bias (an IndexError): that failure is not copied, there
    being nothing to normalise."""
    return x * 1.0


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Batch normalisation (Ioffe & Szegedy, 2015).

    y = (x - E[x]) / sqrt(Var[x] + eps) * weight + bias, with the statistics taken
    per channel (dim 1) over the batch and the spatial dims. In training the batch
    statistics are used and ``running_mean`` / ``running_var`` are updated in place:
    running = (1 - momentum) * running + momentum * batch (the variance unbiased,
    as in PyTorch). In evaluation the running statistics are used.

    Args:
        input: (N, C), (N, C, L), (N, C, H, W), (N, C, D, H, W) or more dims.
        running_mean, running_var: (C,) Tensors, or None (training only: the batch
            statistics; in evaluation they are required, as in PyTorch).
        weight, bias: (C,) affine parameters, or None (1 and 0).
    An empty input comes back as it is, as in torch (see :func:`_empty_norm`).
    """
    from fastconv.backend import get_backend

    op = "batch_norm"
    x = input
    float_tensor(x, "input", op)
    if x.ndim < 2:
        raise ArgumentError(f"{op}: input must be (N, C, ...) with at least 2 dims, got shape "
                            f"{x.shape}")
    C = x.shape[1]
    xp = get_backend(x.device).xp
    if x.data.size == 0:
        return _empty_norm(x)
    _check_statistics(op, x, running_mean, running_var, weight, bias, training)
    if x.ndim != 2 and x.ndim != 4:  # the kernels see (N, C, L) as (N, C, L, 1), (N, C, D,
        # H, W) as (N, C, D*H, W), and so on: the statistics are per channel either way
        rows = int(np.prod(x.shape[2:-1])) if x.ndim > 3 else x.shape[2]
        y = batch_norm(x.reshape(x.shape[0], C, rows, x.shape[-1] if x.ndim > 3 else 1),
                       running_mean, running_var, weight, bias, training, momentum, eps)
        return y.reshape(x.shape)
    weight, bias = _affine_or_identity(xp, C, weight, bias)
    if training:
        _check_training_batch(op, x)
        update = running_mean is not None
        return BatchNormTrain.apply(x, weight, bias, float(eps),
                                    running_mean.data if update else None,
                                    running_var.data if update else None, float(momentum))
    return BatchNormEval.apply(x, weight, bias, running_mean.data, running_var.data, float(eps))


def _check_statistics(op, x, running_mean, running_var, weight, bias, training):
    C = x.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None:
            float_tensor(t, name, op, (1,))
            if t.shape != (C,):
                raise ArgumentError(f"{op}: {name} must have shape ({C},) for input {x.shape}, "
                                    f"got {t.shape}")
    if (running_mean is None) != (running_var is None):
        raise ArgumentError(f"{op}: give both running_mean and running_var, or neither")
    if not training and running_mean is None:
        raise RuntimeError(f"{op}: running_mean must be defined in evaluation mode (pass "
                           "training=True to normalise with the batch's statistics)")


def _check_training_batch(op, x):
    if x.data.size // x.shape[1] == 1:
        raise ArgumentError(f"{op}: Expected more than 1 value per channel when training, "
                            f"got input size {x.shape}")


def _affine_or_identity(xp, C, weight, bias):
    """weight and bias, with None as 1 and 0 (affine=False)."""
    from fastconv.tensor import Tensor

    return (weight if weight is not None else Tensor(xp.ones(C, dtype=np.float32)),
            bias if bias is not None else Tensor(xp.zeros(C, dtype=np.float32)))


def batch_norm_max_pool2d(input, running_mean, running_var, weight, bias, momentum, eps,
                          kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """max_pool2d(batch_norm(input, ..., training=True), ...) in one op
    (:class:`BatchNormMaxPool2d`): what ``nn.Sequential`` runs for a BatchNorm2d in training
    mode, a ReLU and a MaxPool2d (then the ReLU on the pooled values). ``input`` (N, C, H, W),
    not empty; the arguments as batch_norm's and max_pool2d's."""
    from fastconv.backend import get_backend
    from fastconv.ops.pool import _pool_args

    op = "batch_norm"
    float_tensor(input, "input", op, (4,))
    _check_statistics(op, input, running_mean, running_var, weight, bias, True)
    _check_training_batch(op, input)
    window = _pool_args("max_pool2d", input, kernel_size, stride, padding, ceil_mode, dilation)
    weight, bias = _affine_or_identity(get_backend(input.device).xp, input.shape[1], weight, bias)
    update = running_mean is not None
    kernel, stride, padding, dilation = window
    return BatchNormMaxPool2d.apply(input, weight, bias, float(eps),
                                    running_mean.data if update else None,
                                    running_var.data if update else None, float(momentum),
                                    kernel, stride, padding, bool(ceil_mode), dilation)


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

    def composite(self, x, size, alpha, beta, k):
        from fastconv.ops.pad import pad

        channels = x.shape[1]
        squares = pad(x * x, (0, 0, 0, 0, size // 2, (size - 1) // 2))
        window = sum(squares[:, j:j + channels] for j in range(size))
        return x / (k + alpha / size * window) ** beta


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """Local response normalisation across channels (Krizhevsky et al., 2012), PyTorch's form.

        y[c] = x[c] / (k + alpha / size * sum_{j in window(c)} x[j]^2) ** beta

    with window(c) = [c - size//2, c + (size-1)//2] clipped to the channels; input is
    (N, C, ...) with at least one dim after the channels.

    Mapping from other frameworks:
      * TensorFlow ``tf.nn.local_response_normalization(depth_radius=r, bias=b,
        alpha=a, beta=be)`` sums a window of 2r+1 channels and does *not* divide
        alpha by it: ``size = 2*r + 1, alpha = a * size, k = b, beta = be``.
      * Caffe ``LRN(local_size=n, alpha=a, beta=be, k=kk)`` (ACROSS_CHANNELS)
        divides alpha by n like PyTorch: ``size = n, alpha = a, k = kk``.
    """
    op = "local_response_norm"
    float_tensor(input, "input", op)
    if input.ndim < 3:
        raise ArgumentError(f"{op}: Expected 3D or higher dimensionality input (got {input.ndim} "
                            "dimensions)")
    if not isinstance(size, int) or size < 1:
        raise ArgumentError(f"{op}: size must be a positive int, got {size!r}")
    if input.ndim == 4:
        return LocalResponseNorm.apply(input, size, float(alpha), float(beta), float(k))
    # the window runs across channels only: (N, C, ...) runs as (N, C, positions, 1)
    x = input.reshape(input.shape[0], input.shape[1], int(np.prod(input.shape[2:])), 1)
    y = LocalResponseNorm.apply(x, size, float(alpha), float(beta), float(k))
    return y.reshape(input.shape)


# ----------------------------------------------------------------------------- layer / group norm

class GroupNorm(Function):
    """Statistics per (sample, group) over the group's channels and positions; affine per
    channel. Layer norm runs here too: x viewed as (rows, K), one group, K "channels"."""

    def forward(self, x, weight, bias, groups, eps, view=None):
        xp = self.xp
        self.shape, self.groups = x.shape, groups
        self.view = view  # kept so the ONNX export can tell layer norm from group norm
        x = contiguous(xp, x)
        if view is not None:  # layer norm: (rows, K)
            x = x.reshape(view)
        self.param_shapes = tuple(None if t is None else t.shape for t in (weight, bias))
        self.weight = None if weight is None else contiguous(xp, weight).reshape(-1)
        y, mean, rstd = self.kernels.group_norm_forward(
            x, self.weight, None if bias is None else contiguous(xp, bias).reshape(-1),
            groups, eps)
        self.save_for_backward(x, mean, rstd)
        return y.reshape(self.shape)

    def backward(self, dy):
        x, mean, rstd = self.saved
        need_x, need_w, need_b = self.needs_input_grad[:3]
        dx, dw, db = self.kernels.group_norm_backward(
            x, self.weight, mean, rstd, contiguous(self.xp, dy).reshape(x.shape), self.groups,
            need_x, need_w or need_b)
        wshape, bshape = self.param_shapes
        return (dx.reshape(self.shape) if need_x else None,
                dw.reshape(wshape) if need_w else None,
                db.reshape(bshape) if need_b else None, None, None)

    def composite(self, x, weight, bias, groups, eps, view=None):
        if view is not None:  # layer norm: statistics per row, affine per column
            rows = x.reshape(view)
            mean = rows.mean(dim=1, keepdim=True)
            var = ((rows - mean) ** 2).mean(dim=1, keepdim=True)
            y = (rows - mean) / (var + eps).sqrt()
            y = y if weight is None else y * weight.reshape(-1)
            return (y if bias is None else y + bias.reshape(-1)).reshape(self.shape)
        flat = x.reshape(x.shape[0], groups, -1)
        mean = flat.mean(dim=2, keepdim=True)
        var = ((flat - mean) ** 2).mean(dim=2, keepdim=True)
        return _affine(((flat - mean) / (var + eps).sqrt()).reshape(self.shape), weight, bias)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Layer normalisation (Ba et al., 2016) over the last ``len(normalized_shape)`` dims.

        y = (x - E[x]) / sqrt(Var[x] + eps) * weight + bias

    with the mean and the (biased) variance taken over the normalised dims of each sample.

    Args:
        input: float32 Tensor whose trailing dims equal ``normalized_shape``.
        normalized_shape: an int or a tuple of ints.
        weight, bias: optional float32 Tensors of shape ``normalized_shape``.
        eps: added to the variance.
    """
    op = "layer_norm"
    float_tensor(input, "input", op)
    shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else \
        tuple(normalized_shape)
    if not shape or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0
                        for s in shape):
        raise ArgumentError(f"{op}: normalized_shape must be an int >= 0 or a non-empty tuple "
                            f"of ints >= 0, got {normalized_shape!r}")
    shape = tuple(int(s) for s in shape)
    if input.shape[input.ndim - len(shape):] != shape or input.ndim < len(shape):
        raise ArgumentError(f"{op}: given normalized_shape={list(shape)}, expected input with "
                            f"shape "
                            f"[*, {', '.join(map(str, shape))}], but got input of size "
                            f"{list(input.shape)}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None:
            float_tensor(t, name, op)
            if t.shape != shape:
                raise ArgumentError(f"{op}: {name} must have the normalized_shape {shape}, got "
                                    f"{t.shape}")
    k = int(np.prod(shape))
    if k == 0:  # nothing to normalise over: an empty result (as torch), with gradients
        y = input * 1.0
        return y if weight is None else (y * weight if bias is None else y * weight + bias)
    return GroupNorm.apply(input, weight, bias, 1, float(eps), view=(input.numel() // k, k))


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """Root-mean-square normalisation (Zhang & Sennrich, 2019) over the last
    ``len(normalized_shape)`` dims: y = x / sqrt(mean(x^2) + eps) * weight, eps defaulting to
    float32's machine epsilon (torch's)."""
    op = "rms_norm"
    float_tensor(input, "input", op)
    shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else \
        tuple(int(s) for s in normalized_shape)
    if not shape or input.ndim < len(shape) or input.shape[input.ndim - len(shape):] != shape:
        raise RuntimeError(f"{op}: given normalized_shape={list(shape)}, expected input with "
                           f"shape [*, {', '.join(map(str, shape))}], but got input of size "
                           f"{list(input.shape)}")
    if weight is not None and tuple(weight.shape) != shape:
        raise RuntimeError(f"{op}: weight must have the normalized_shape {shape}, got "
                           f"{tuple(weight.shape)}")
    eps = float(np.finfo(np.float32).eps) if eps is None else float(eps)
    dims = tuple(range(input.ndim - len(shape), input.ndim))
    y = input * (input.square().mean(dim=dims, keepdim=True) + eps).rsqrt()
    return y * weight if weight is not None else y


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Group normalisation (Wu & He, 2018): the channels of each sample are split into
    ``num_groups`` groups, and each group is normalised over its channels and positions:

        y = (x - E_group[x]) / sqrt(Var_group[x] + eps) * weight[c] + bias[c]

    Args:
        input: (N, C, *) float32, C divisible by ``num_groups``.
        num_groups: the number of groups.
        weight, bias: optional (C,) float32 per-channel affine parameters.
        eps: added to the (biased) variance.
    """
    op = "group_norm"
    float_tensor(input, "input", op)
    if input.ndim < 2:
        raise ArgumentError(f"{op}: expected at least 2 dims (N, C, *), got input of shape "
                            f"{input.shape}")
    if isinstance(num_groups, bool) or not isinstance(num_groups, (int, np.integer)) \
            or num_groups < 1:
        raise ArgumentError(f"{op}: num_groups must be a positive int, got {num_groups!r}")
    C = input.shape[1]
    if C % num_groups:
        raise ArgumentError(f"{op}: expected the number of channels in input ({C}, input shape "
                            f"{input.shape}) to be divisible by num_groups={num_groups}")
    if input.shape[0] * (C // num_groups) * int(np.prod(input.shape[2:])) == 1:
        # PyTorch's check (it refuses a single value to normalise over for the batch)
        raise ArgumentError(f"{op}: expected more than 1 value per channel when training, got "
                            f"input of shape {input.shape} with num_groups={num_groups}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None:
            float_tensor(t, name, op, (1,))
            if t.shape != (C,):
                raise ArgumentError(f"{op}: {name} must have shape ({C},) for input {input.shape}, "
                                    f"got {t.shape}")
    return GroupNorm.apply(input, weight, bias, int(num_groups), float(eps))


def _empty_instance_stats(op, x, running_mean, running_var):
    """torch's running statistics after instance norm of an empty input: the per-sample
    statistics, an (N, C) view of the running ones repeated N times, are averaged over the
    batch and copied back. So with samples the running statistics must have C entries (and
    keep their values); an empty batch averages nothing into NaN, copied into C entries (or
    into any number from one channel)."""
    N, C = x.shape[:2]
    for name, t in (("running_mean", running_mean), ("running_var", running_var)):
        if t is None:
            continue
        if t.numel() != C and (N or C != 1):
            raise ArgumentError(f"{op}: {name} of shape {tuple(t.shape)} does not match the "
                                f"{C} channels of input {tuple(x.shape)}")
        if not N:
            t.data[...] = np.nan


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats=True, momentum=0.1, eps=1e-5):
    """Instance normalisation (Ulyanov et al., 2016): each channel of each sample normalised
    over its positions (group norm with one channel per group). With ``running_mean`` /
    ``running_var`` given, they are updated with the batch's average instance statistics;
    ``use_input_stats=False`` normalises with them instead."""
    op = "instance_norm"
    float_tensor(input, "input", op)
    if input.ndim < 3:
        raise ArgumentError(f"{op}: expected at least 3 dims (N, C, *), got input of shape "
                            f"{input.shape}")
    C = input.shape[1]
    if use_input_stats and int(np.prod(input.shape[2:])) == 1:  # torch's check (0: empty result)
        raise ArgumentError(f"{op}: Expected more than 1 spatial element when training, got "
                            f"input size {input.shape}")
    if not use_input_stats and (running_mean is None or running_var is None):
        raise ArgumentError(f"{op}: Expected running_mean and running_var to be defined when "
                            "use_input_stats is false")
    if input.data.size == 0:  # torch: batch norm of the samples side by side
        if use_input_stats:
            _empty_instance_stats(op, input, running_mean, running_var)
        return _empty_norm(input)
    # per-channel vectors of the wrong length would broadcast (or fail deep in NumPy)
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None:
            float_tensor(t, name, op)
            if tuple(t.shape) != (C,):
                raise ArgumentError(f"{op}: {name} must have shape ({C},) for input "
                                    f"{tuple(input.shape)}, got {tuple(t.shape)}")
    if not use_input_stats:
        shape = (1, C) + (1,) * (input.ndim - 2)
        y = (input - running_mean.reshape(shape)) / (running_var.reshape(shape) + eps).sqrt()
        if weight is not None:
            y = y * weight.reshape(shape)
        return y + bias.reshape(shape) if bias is not None else y
    if running_mean is not None or running_var is not None:
        axes = tuple(range(2, input.ndim))
        x = input.data
        n = int(np.prod([input.shape[a] for a in axes]))
        mean = x.mean(axis=axes).mean(axis=0)
        var = (x.var(axis=axes) * (n / max(n - 1, 1))).mean(axis=0)
        if running_mean is not None:
            running_mean.data[...] = (1 - momentum) * running_mean.data + momentum * mean
        if running_var is not None:
            running_var.data[...] = (1 - momentum) * running_var.data + momentum * var
    return group_norm(input, C, weight, bias, eps)
