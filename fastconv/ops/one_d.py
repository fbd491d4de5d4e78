"""1-D convolution and pooling over (N, C, L) or unbatched (C, L) input: the 2-D ops on a
plane of height 1, so they share the 2-D kernels, their gradients and their argument rules
(torch's ``conv1d``, ``conv_transpose1d``, ``max_pool1d``, ``avg_pool1d`` and the adaptive
pools)."""

from __future__ import annotations

from fastconv.ops import conv, pool
from fastconv.ops.validate import ArgumentError, float_tensor, nonempty

# the smallest value of each 1-D size argument, checked here so that a message names the
# 1-D op and its argument rather than the 2-D op that runs it
_MINIMUM = {"kernel_size": 1, "stride": 1, "dilation": 1, "output_size": 1, "padding": 0,
            "output_padding": 0}


def single(value, name: str, op: str) -> int:
    """An int, or a 1-element sequence of one, as the 1-D ops take their sizes."""
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise ArgumentError(f"{op}: {name} must be an int or a 1-element tuple, got {value!r}")
        value = value[0]
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{op}: {name} must be an int, got {type(value).__name__}")
    if int(value) < _MINIMUM.get(name, int(value)):
        raise ArgumentError(f"{op}: {name} must be >= {_MINIMUM[name]}, got {int(value)}")
    return int(value)


def _plane(input, op: str, nonempty_from: int | None = None):
    """input as a 2-D op's input: (N, C, 1, L) or unbatched (C, 1, L). With
    ``nonempty_from``, a zero size in input's dims from that one on is refused first, as
    torch's 1-D ops do (:func:`nonempty`), so that the message names the 1-D op; negative
    counts from the end."""
    float_tensor(input, "input", op, (2, 3))
    if nonempty_from is not None:
        nonempty(input, "input", op, nonempty_from % input.ndim)
    return input.unsqueeze(-2)


def _pool_window(op, kernel_size, stride, padding):
    """(k, s, p) of a 1-D pooling window, with PyTorch's rule padding <= kernel_size / 2
    checked here so the message speaks of the 1-D arguments."""
    k = single(kernel_size, "kernel_size", op)
    s = k if stride is None or stride == [] else single(stride, "stride", op)
    p = single(padding, "padding", op)
    if p * 2 > k:
        raise ArgumentError(f"{op}: padding {p} must be at most half of kernel_size {k}")
    return k, s, p


def _line(y):
    return y.squeeze(-2)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    op = "conv1d"
    float_tensor(weight, "weight", op, (3,))
    if not isinstance(padding, str):
        padding = (0, single(padding, "padding", op))
    return _line(conv.conv2d(_plane(input, op), weight.unsqueeze(2), bias,
                             (1, single(stride, "stride", op)), padding,
                             (1, single(dilation, "dilation", op)), groups))


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1, output_size=None):
    op = "conv_transpose1d"
    float_tensor(weight, "weight", op, (3,))
    if output_size is not None:
        output_size = (1, int(list(output_size)[-1]))
    return _line(conv.conv_transpose2d(
        _plane(input, op, -1), weight.unsqueeze(2), bias,
        (1, single(stride, "stride", op)), (0, single(padding, "padding", op)),
        (0, single(output_padding, "output_padding", op)), groups,
        (1, single(dilation, "dilation", op)), output_size))


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    op = "max_pool1d"
    k, s, p = _pool_window(op, kernel_size, stride, padding)
    out = pool.max_pool2d(_plane(input, op, -2), (1, k), (1, s), (0, p),
                          (1, single(dilation, "dilation", op)), ceil_mode, return_indices)
    if return_indices:
        return _line(out[0]), _line(out[1])
    return _line(out)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    op = "avg_pool1d"
    k, s, p = _pool_window(op, kernel_size, stride, padding)
    return _line(pool.avg_pool2d(_plane(input, op, -2), (1, k), (1, s), (0, p),
                                 ceil_mode, count_include_pad))


def adaptive_avg_pool1d(input, output_size):
    op = "adaptive_avg_pool1d"
    return _line(pool.adaptive_avg_pool2d(_plane(input, op),
                                          (1, single(output_size, "output_size", op))))


def adaptive_max_pool1d(input, output_size, return_indices=False):
    op = "adaptive_max_pool1d"
    out = pool.adaptive_max_pool2d(_plane(input, op, 1),  # torch: dims 1..
                                   (1, single(output_size, "output_size", op)), return_indices)
    if return_indices:
        return _line(out[0]), _line(out[1])
    return _line(out)


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    op = "max_unpool1d"
    k = single(kernel_size, "kernel_size", op)
    s = k if stride is None or stride == [] else single(stride, "stride", op)
    size = None if output_size is None else (1, int(list(output_size)[-1]))
    return _line(pool.max_unpool2d(_plane(input, op, -2), indices.unsqueeze(-2),
                                   (1, k), (1, s), (0, single(padding, "padding", op)), size))


def lp_pool1d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    op = "lp_pool1d"
    k = single(kernel_size, "kernel_size", op)
    s = k if stride is None or stride == [] else single(stride, "stride", op)
    return _line(pool.lp_pool2d(_plane(input, op, -2), norm_type, (1, k), (1, s),
                                ceil_mode))

