"""Max, average and adaptive average pooling over NCHW maps."""

from __future__ import annotations

from fastconv.backend import pool_output_size
from fastconv.function import Function
from fastconv.ops.validate import contiguous, float_tensor, pair


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


def adaptive_avg_pool2d(x, output_size):
    """Average pooling to a fixed output size.

    Output size 1 is the global average pooling of NIN and GoogLeNet (a mean over
    H and W). Other sizes must divide the input evenly, and then the op is an
    average pooling with kernel = stride = input / output.
    """
    op = "adaptive_avg_pool2d"
    float_tensor(x, "input", op, (4,))
    out = pair(output_size, "output_size", op, 1)
    H, W = x.shape[2:]
    if out == (1, 1):
        return x.mean(dim=(2, 3), keepdim=True)
    if H % out[0] or W % out[1]:
        raise ValueError(f"{op}: output_size {out} must divide the input size ({H}, {W})")
    kernel = (H // out[0], W // out[1])
    return avg_pool2d(x, kernel, kernel)
