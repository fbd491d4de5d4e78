"""Max, average and adaptive average pooling over NCHW maps."""

from __future__ import annotations

import numpy as np

from fastconv.function import Function
from fastconv.ops.validate import contiguous, float_tensor, pair
from fastconv.output_size import pool_output_size


def _pool_args(op, x, kernel_size, stride, padding, ceil_mode):
    float_tensor(x, "input", op, (4,))
    kernel = pair(kernel_size, "kernel_size", op, 1)
    stride = kernel if stride is None else pair(stride, "stride", op, 1)
    padding = pair(padding, "padding", op, 0)
    for i, axis in enumerate(("height", "width")):
        if padding[i] * 2 > kernel[i]:
            raise ValueError(f"{op}: padding {padding} must be at most half of kernel_size "
                             f"{kernel} (a window could then hold only padding)")
        size = x.shape[2 + i]
        if size + 2 * padding[i] < kernel[i]:
            raise ValueError(f"{op}: kernel_size {kernel} is larger than the padded input "
                             f"({axis} {size} + 2*{padding[i]}); input shape {x.shape}")
        if pool_output_size(size, kernel[i], stride[i], padding[i], ceil_mode) < 1:
            raise ValueError(f"{op}: empty output for input {x.shape}")
    return kernel, stride, padding


class MaxPool2d(Function):
    def forward(self, x, kernel, stride, padding, ceil_mode):
        self.x_shape = x.shape
        self.window = (kernel, stride, padding)
        y, self.indices = self.kernels.max_pool2d_forward(
            contiguous(self.xp, x), kernel, stride, padding, ceil_mode)
        return y

    def backward(self, dy):
        return self.kernels.max_pool2d_backward(contiguous(self.xp, dy), self.indices, self.x_shape,
                                                *self.window)


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    kernel, stride, padding = _pool_args("max_pool2d", x, kernel_size, stride, padding, ceil_mode)
    return MaxPool2d.apply(x, kernel, stride, padding, bool(ceil_mode))


class AvgPool2d(Function):
    def forward(self, x, kernel, stride, padding, ceil_mode, count_include_pad):
        self.x_shape = x.shape
        self.args = (kernel, stride, padding, ceil_mode, count_include_pad)
        return self.kernels.avg_pool2d_forward(contiguous(self.xp, x), *self.args)

    def backward(self, dy):
        return self.kernels.avg_pool2d_backward(contiguous(self.xp, dy), self.x_shape, *self.args)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    kernel, stride, padding = _pool_args("avg_pool2d", x, kernel_size, stride, padding, ceil_mode)
    return AvgPool2d.apply(x, kernel, stride, padding, bool(ceil_mode), bool(count_include_pad))


def _window_average_matrix(xp, size: int, out: int):
    """(out, size) matrix whose row i averages input cells [floor(i*size/out),
    ceil((i+1)*size/out)): PyTorch's adaptive windows along one axis."""
    m = np.zeros((out, size), dtype=np.float32)
    for i in range(out):
        start, end = (i * size) // out, -(-((i + 1) * size) // out)
        m[i, start:end] = 1.0 / (end - start)
    return xp.asarray(m)


class AdaptiveAvgPool2d(Function):
    """Windows of uneven (possibly overlapping) size. A window's average is separable, so
    y = Ah x Aw^T per plane with the matrices above, and dx = Ah^T dy Aw."""

    def forward(self, x, output_size):
        self.ah = _window_average_matrix(self.xp, x.shape[2], output_size[0])
        self.aw = _window_average_matrix(self.xp, x.shape[3], output_size[1])
        return self.xp.ascontiguousarray(self.ah @ x @ self.aw.T)

    def backward(self, dy):
        return self.xp.ascontiguousarray(self.ah.T @ dy @ self.aw)


def adaptive_avg_pool2d(x, output_size):
    """Average pooling to a fixed output size, with PyTorch's windows: output cell i
    along an axis of input size S averages cells floor(i*S/out) to ceil((i+1)*S/out) - 1.

    ``output_size`` is an int or an (h, w) pair; None in the pair keeps that input size.
    Output size 1 is the global average pooling of NIN and GoogLeNet (a mean over H and
    W), and sizes that divide the input run as avg_pool2d with kernel = stride =
    input / output; other sizes (windows of uneven size) take separable averaging
    matrices.
    """
    op = "adaptive_avg_pool2d"
    float_tensor(x, "input", op, (4,))
    H, W = x.shape[2:]
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        output_size = tuple(size if s is None else s for s, size in zip(output_size, (H, W)))
    out = pair(output_size, "output_size", op, 1)
    if out == (1, 1):
        return x.mean(dim=(2, 3), keepdim=True)
    if H % out[0] == 0 and W % out[1] == 0:
        kernel = (H // out[0], W // out[1])
        return avg_pool2d(x, kernel, kernel)
    return AdaptiveAvgPool2d.apply(x, out)
