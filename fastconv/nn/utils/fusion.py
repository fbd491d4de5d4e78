"""Folding an evaluation-mode BatchNorm into the convolution or linear layer before it, as
``torch.nn.utils.fusion``.

In evaluation a BatchNorm is the affine map ``y = (x - mean) / sqrt(var + eps) * gamma + beta``
per channel, with the running statistics; after a convolution (or a linear layer) it can be
folded into that layer's weight and bias, so one layer computes what two did:

    scale = gamma / sqrt(var + eps)
    w' = w * scale      (per output channel: dim 0 of a convolution's weight, dim 1 of a
                         transposed convolution's, the rows of a linear layer's)
    b' = (b - mean) * scale + beta      (b = 0 when the layer has no bias)
"""

from __future__ import annotations

import copy

from fastconv.autograd import no_grad
from fastconv.tensor import Tensor

__all__ = ["fuse_conv_bn_eval", "fuse_conv_bn_weights", "fuse_linear_bn_eval",
           "fuse_linear_bn_weights"]


def _parameter(t: Tensor, requires_grad: bool):
    from fastconv.nn.module import Parameter

    return Parameter(t.detach().data.copy(), requires_grad)


def _zeros_like(t: Tensor) -> Tensor:
    return t.detach() * 0


def fuse_conv_bn_eval(conv, bn, transpose: bool = False):
    """A new convolution (a deep copy of ``conv``) that computes ``bn(conv(x))`` of the two
    modules in evaluation mode. ``transpose``: ``conv`` is a transposed convolution (its
    output channels are dim 1 of its weight). Both must be in eval mode (AssertionError
    otherwise, as torch's) and ``bn`` must track running statistics."""
    if conv.training or bn.training:
        raise AssertionError("Fusion only for eval!")
    fused_conv = copy.deepcopy(conv)
    if bn.running_mean is None or bn.running_var is None:
        raise AssertionError("bn.running_mean and bn.running_var must not be None")
    fused_conv.weight, fused_conv.bias = fuse_conv_bn_weights(
        fused_conv.weight, fused_conv.bias, bn.running_mean, bn.running_var, bn.eps,
        bn.weight, bn.bias, transpose)
    return fused_conv


def fuse_conv_bn_weights(conv_w, conv_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b,
                         transpose: bool = False):
    """The fused convolution's (weight, bias) as Parameters (see the module docstring).
    ``conv_b``, ``bn_w`` and ``bn_b`` may be None (zero bias, unit scale, zero shift). The
    weight Parameter requires a gradient when ``conv_w`` does, the bias when ``conv_b`` does
    (a missing bias gives one that does not), as torch's."""
    with no_grad():
        bias_requires_grad = conv_b is not None and conv_b.requires_grad
        if conv_b is None:
            conv_b = _zeros_like(bn_rm)
        if bn_w is None:
            bn_w = _zeros_like(bn_rm) + 1
        if bn_b is None:
            bn_b = _zeros_like(bn_rm)
        bn_var_rsqrt = (bn_rv + bn_eps).rsqrt()
        extra = [1] * (len(conv_w.shape) - 2)
        shape = [1, -1] + extra if transpose else [-1, 1] + extra
        fused_w = conv_w * (bn_w * bn_var_rsqrt).reshape(shape)
        fused_b = (conv_b - bn_rm) * bn_var_rsqrt * bn_w + bn_b
    return (_parameter(fused_w, conv_w.requires_grad),
            _parameter(fused_b, bias_requires_grad))


def fuse_linear_bn_eval(linear, bn):
    """A new linear layer (a deep copy of ``linear``) that computes ``bn(linear(x))`` of the
    two modules in evaluation mode: ``bn`` normalises the linear layer's output features
    (``bn.num_features == linear.out_features``, or 1)."""
    if linear.training or bn.training:
        raise AssertionError("Fusion only for eval!")
    fused_linear = copy.deepcopy(linear)
    if linear.out_features != bn.num_features and bn.num_features != 1:
        raise AssertionError(
            f"To fuse, linear.out_features == bn.num_features or bn.num_features == 1, "
            f"got linear.out_features={linear.out_features} and "
            f"bn.num_features={bn.num_features}")
    if bn.running_mean is None or bn.running_var is None:
        raise AssertionError("bn.running_mean and bn.running_var must not be None")
    fused_linear.weight, fused_linear.bias = fuse_linear_bn_weights(
        fused_linear.weight, fused_linear.bias, bn.running_mean, bn.running_var, bn.eps,
        bn.weight, bn.bias)
    return fused_linear


def fuse_linear_bn_weights(linear_w, linear_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b):
    """The fused linear layer's (weight, bias) as Parameters (see the module docstring);
    ``linear_b`` may be None."""
    with no_grad():
        bias_requires_grad = linear_b is not None and linear_b.requires_grad
        if linear_b is None:
            linear_b = _zeros_like(bn_rm)
        bn_scale = bn_w * (bn_rv + bn_eps).rsqrt()
        fused_w = linear_w * bn_scale.unsqueeze(-1)
        fused_b = (linear_b - bn_rm) * bn_scale + bn_b
    return (_parameter(fused_w, linear_w.requires_grad),
            _parameter(fused_b, bias_requires_grad))
