"""Max, average and adaptive (average and max) pooling over NCHW maps, and adaptive max
pooling over NCDHW volumes (separably, on the 2-D kernels).

Max pooling (any dilation), adaptive max pooling and average pooling run the backend
kernels; adaptive average pooling to sizes that do not divide the input runs separable
averaging matrices (array code; a plane holding an inf or NaN runs on the windows' tap tables
instead, so that only the windows that contain it are non-finite, as in PyTorch).

Unbatched (C, H, W) input is accepted wherever PyTorch accepts it (it runs as a batch of
one and the batch dim is dropped again).
"""

from __future__ import annotations

import numpy as np

from fastconv.function import Function
from fastconv.ops.upsample import separable, separable_transpose
from fastconv.ops.validate import (
    ArgumentError,
    check_allocation,
    contiguous,
    float_tensor,
    nonempty,
    pair,
    positive_int,
)
from fastconv.output_size import pool_output_size

_INT32_MAX = 2**31 - 1


def _pool_args(op, x, kernel_size, stride, padding, ceil_mode, dilation=1):
    float_tensor(x, "input", op, (4,))
    kernel = pair(kernel_size, "kernel_size", op, 1)
    stride = kernel if stride is None else pair(stride, "stride", op, 1)
    padding = pair(padding, "padding", op, 0)
    dilation = pair(dilation, "dilation", op, 1)
    for name, value in (("kernel_size", kernel), ("stride", stride), ("padding", padding),
                         ("dilation", dilation)):
        # PyTorch's pooling takes 32-bit ints; past that the window sums and divisors of the
        # kernels overflow (a wrong average, not an error)
        if max(value) > _INT32_MAX:
            raise ArgumentError(f"{op}: {name} {value} is too large (at most {_INT32_MAX})")
    for i, axis in enumerate(("height", "width")):
        span = dilation[i] * (kernel[i] - 1) + 1  # the effective kernel size
        if padding[i] * 2 > kernel[i]:  # PyTorch's rule: the kernel size, not the span
            raise ArgumentError(f"{op}: padding {padding} must be at most half of kernel_size "
                                f"{kernel} (a window could then hold only padding)")
        size = x.shape[2 + i]
        # PyTorch's rule: only the output size counts; in ceil mode the last window may reach
        # past the padded input (its taps there are skipped, as the padding's are)
        if pool_output_size(size, kernel[i], stride[i], padding[i], ceil_mode, dilation[i]) < 1:
            raise ArgumentError(f"{op}: kernel_size {kernel} (dilation {dilation}, effective "
                                f"{span} in {axis}) leaves no output for the padded input ({axis} "
                                f"{size} + 2*{padding[i]}); input shape {x.shape}")
    return kernel, stride, padding, dilation


def _batched(op, x):
    """(x as (N, C, H, W), whether it was unbatched (C, H, W))."""
    float_tensor(x, "input", op, (3, 4))
    return (x.reshape(1, *x.shape), True) if x.ndim == 3 else (x, False)


class MaxPool2d(Function):
    def forward(self, x, kernel, stride, padding, ceil_mode, dilation, indices_out=None):
        self.x_shape = x.shape
        self.window = (kernel, stride, padding, dilation)
        y, self.indices = self.kernels.max_pool2d_forward(
            contiguous(self.xp, x), kernel, stride, padding, ceil_mode, dilation)
        if indices_out is not None:  # return_indices: hand the argmax positions out
            indices_out.append(self.indices)
        return y

    def backward(self, dy):
        return self.kernels.max_pool2d_backward(contiguous(self.xp, dy), self.indices, self.x_shape,
                                                *self.window)

    def backward_graph(self, dy):
        return _scatter_to_maxima(self, dy)


class AdaptiveMaxPool2d(Function):
    def forward(self, x, output_size, indices_out=None):
        self.x_shape = x.shape
        y, self.indices = self.kernels.adaptive_max_pool2d_forward(contiguous(self.xp, x),
                                                                   output_size)
        if indices_out is not None:
            indices_out.append(self.indices)
        return y

    def backward(self, dy):
        return self.kernels.adaptive_max_pool2d_backward(contiguous(self.xp, dy), self.indices,
                                                         self.x_shape), None

    def backward_graph(self, dy):
        return _scatter_to_maxima(self, dy)


def _scatter_to_maxima(fn, dy):
    """A max pool's backward as a differentiable op: dy scattered to the argmax positions is
    linear in dy, and its adjoint gathers from those positions (a window of padding only,
    index -1, gets nothing)."""
    from fastconv.double_backward import AdjointPair, node_backward

    xp, indices = fn.xp, fn.indices
    flat = indices.reshape(indices.shape[0], indices.shape[1], -1)
    valid = flat >= 0
    safe = xp.where(valid, flat, 0)

    def gather(g):
        planes = g.reshape(g.shape[0], g.shape[1], -1)
        return (xp.take_along_axis(planes, safe, axis=2) * valid).reshape(indices.shape)

    return (AdjointPair.apply(dy, node_backward(fn), gather),) + (None,) * (len(fn.parents) - 1)


def _pool_result(op_unbatched, y, indices, return_indices):
    from fastconv.tensor import Tensor

    if op_unbatched:
        y = y.reshape(y.shape[1:])
    if not return_indices:
        return y
    idx = indices.astype(np.int64)
    return y, Tensor(idx.reshape(idx.shape[1:]) if op_unbatched else idx)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max pooling over (N, C, H, W) or unbatched (C, H, W) input:

        y[n, c, i, j] = max_{p, q} x[n, c, i*s_h - pad_h + p*d_h, j*s_w - pad_w + q*d_w]

    Args:
        kernel_size, stride (default: kernel_size), padding (implicit -inf, at most half
            the dilated kernel), dilation: an int or an (h, w) pair.
        ceil_mode: ceil instead of floor for the output size, as in PyTorch.
        return_indices: also return the int64 flat index h * W + w of each maximum within
            its input plane (what ``max_unpool2d`` takes in PyTorch).
    Ties: the first maximum in row-major order of the window receives the gradient.
    """
    op = "max_pool2d"
    x, unbatched = _batched(op, input)
    nonempty(input, "input", op, input.ndim - 3)
    kernel, stride, padding, dilation = _pool_args(op, x, kernel_size, stride, padding,
                                                   ceil_mode, dilation)
    box = [] if return_indices else None
    y = MaxPool2d.apply(x, kernel, stride, padding, bool(ceil_mode), dilation, indices_out=box)
    return _pool_result(unbatched, y, box[0] if box else None, return_indices)


class AvgPool2d(Function):
    double_backward = "linear"

    def forward(self, x, kernel, stride, padding, ceil_mode, count_include_pad):
        self.x_shape = x.shape
        self.args = (kernel, stride, padding, ceil_mode, count_include_pad)
        return self.kernels.avg_pool2d_forward(contiguous(self.xp, x), *self.args)

    def backward(self, dy):
        return self.kernels.avg_pool2d_backward(contiguous(self.xp, dy), self.x_shape, *self.args)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """Average pooling over (N, C, H, W) or unbatched (C, H, W) input.

    Args: kernel_size, stride (default: kernel_size), padding (zeros, at most half the
    kernel), ceil_mode, count_include_pad (True: divide by the window size including
    padding, clipped to the padded input as in PyTorch; False: by the number of real input
    elements). ``divisor_override``: divide each window's sum by this number instead.
    """
    op = "avg_pool2d"
    if divisor_override is not None and (isinstance(divisor_override, bool) or not isinstance(
            divisor_override, (int, np.integer)) or divisor_override == 0):
        raise ArgumentError(f"{op}: divisor_override must be a non-zero int, got "
                            f"{divisor_override!r}")
    x, unbatched = _batched(op, input)
    nonempty(input, "input", op, input.ndim - 3)
    kernel, stride, padding, _ = _pool_args(op, x, kernel_size, stride, padding, ceil_mode)
    include = bool(count_include_pad) or divisor_override is not None
    y = AvgPool2d.apply(x, kernel, stride, padding, bool(ceil_mode), include)
    if divisor_override is not None:  # the average over each window's size, times size / d
        y = y * _window_sizes(x, y, kernel, stride, padding, y.device) / float(divisor_override)
    return y.reshape(y.shape[1:]) if unbatched else y


def _window_sizes(x, y, kernel, stride, padding, device):
    """Each output's window size as count_include_pad counts it: the window clipped to the
    padded input (an (OH, OW) float32 tensor)."""
    from fastconv.tensor import Tensor, _as_array

    sizes = []
    for i in range(2):
        start = np.arange(y.shape[2 + i]) * stride[i] - padding[i]
        end = np.minimum(start + kernel[i], x.shape[2 + i] + padding[i])
        sizes.append((end - start).astype(np.float32))
    return Tensor(_as_array(np.outer(*sizes), device))


def _window_average_matrix(xp, size: int, out: int):
    """(out, size) matrix whose row i averages input cells [floor(i*size/out),
    ceil((i+1)*size/out)): PyTorch's adaptive windows along one axis."""
    m = np.zeros((out, size), dtype=np.float32)
    for i in range(out):
        start, end = (i * size) // out, -(-((i + 1) * size) // out)
        m[i, start:end] = 1.0 / (end - start)
    return xp.asarray(m)


def _window_taps(size: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """The same windows as a tap table (index, weight), both (out, K) with K the widest
    window: the cells of window i and 1 / its size, narrower windows padded with index =
    size (fastconv.ops.upsample.separable's convention)."""
    start = np.arange(out) * size // out
    end = -(-(np.arange(1, out + 1) * size) // out)
    cells = start[:, None] + np.arange(int((end - start).max()))
    inside = cells < end[:, None]
    weight = np.where(inside, (1.0 / (end - start))[:, None], 0.0).astype(np.float32)
    return np.where(inside, cells, size), weight


class AdaptiveAvgPool2d(Function):
    """Windows of uneven (possibly overlapping) size. A window's average is separable, so
    y = Ah x Aw^T per plane with the matrices above, and dx = Ah^T dy Aw (planes with a
    non-finite value: the window tap tables, see fastconv.ops.upsample.separable)."""

    double_backward = "linear"

    def forward(self, x, output_size):
        (H, W), (OH, OW) = x.shape[2:], output_size
        self.ah = _window_average_matrix(self.xp, H, OH)
        self.aw = _window_average_matrix(self.xp, W, OW)
        self.x_hw = (H, W)
        return separable(self.xp, x, self.ah, self.aw, self._taps)

    def _taps(self):
        (H, W), (OH, OW) = self.x_hw, (self.ah.shape[0], self.aw.shape[0])
        return _window_taps(H, OH), _window_taps(W, OW)

    def backward(self, dy):
        return separable_transpose(self.xp, dy, self.ah, self.aw, self._taps, self.x_hw)


def _adaptive_size(op, x, output_size):
    H, W = x.shape[2:]
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        output_size = tuple(size if s is None else s for s, size in zip(output_size, (H, W)))
    out = pair(output_size, "output_size", op, 1)
    check_allocation(op, x.shape[:2] + out)
    return out


def adaptive_avg_pool2d(input, output_size):
    """Average pooling to a fixed output size, with PyTorch's windows: output cell i
    along an axis of input size S averages cells floor(i*S/out) to ceil((i+1)*S/out) - 1.

    ``input`` is (N, C, H, W) or unbatched (C, H, W); ``output_size`` is an int or an
    (h, w) pair; None in the pair keeps that input size.
    Output size 1 is the global average pooling of NIN and GoogLeNet (a mean over H and
    W), and sizes that divide the input run as avg_pool2d with kernel = stride =
    input / output; other sizes (windows of uneven size) take separable averaging
    matrices.
    """
    op = "adaptive_avg_pool2d"
    x, unbatched = _batched(op, input)
    H, W = x.shape[2:]
    out = _adaptive_size(op, x, output_size)
    if out != (1, 1):  # torch's mean for (1, 1) takes any input (an empty plane: NaN)
        nonempty(input, "input", op, input.ndim - 2)  # (torch takes an empty channel list)
    if x.shape[1] == 0:  # nothing to average: an empty result
        y = x.reshape(x.shape[:2] + out)
    elif out == (1, 1):
        y = x.mean(dim=(2, 3), keepdim=True)
    elif H % out[0] == 0 and W % out[1] == 0:
        kernel = (H // out[0], W // out[1])
        y = avg_pool2d(x, kernel, kernel)
    else:
        y = AdaptiveAvgPool2d.apply(x, out)
    return y.reshape(y.shape[1:]) if unbatched else y


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Max pooling to a fixed output size, with PyTorch's windows: output cell i along an
    axis of input size S takes the maximum of cells floor(i*S/out) to ceil((i+1)*S/out) - 1.

    Args:
        input: (N, C, H, W) or unbatched (C, H, W) float32.
        output_size: an int or an (h, w) pair; None in the pair keeps that input size.
        return_indices: also return the int64 flat index h * W + w of each maximum.
    """
    op = "adaptive_max_pool2d"
    x, unbatched = _batched(op, input)
    nonempty(input, "input", op, 1)  # torch: dims 1.. (the channels only when batched)
    out = _adaptive_size(op, x, output_size)
    box = [] if return_indices else None
    y = AdaptiveMaxPool2d.apply(x, out, indices_out=box)
    return _pool_result(unbatched, y, box[0] if box else None, return_indices)


class MaxUnpool2d(Function):
    """Each input value placed at its flat index within its output plane (the indices
    max_pool2d returned), or volume for out_hw (D, H, W) (max_pool3d's); the rest zero. The
    gradient reads those positions back."""

    def forward(self, x, indices, out_hw):
        xp = self.xp
        N, C = x.shape[:2]
        plane = int(np.prod(out_hw))
        self.flat = (xp.arange(N * C).reshape(N, C, 1) * plane
                     + indices.reshape(N, C, int(np.prod(x.shape[2:])))).reshape(-1)
        y = xp.zeros(N * C * plane, np.float32)
        y[self.flat] = x.reshape(-1)
        self.x_shape = x.shape
        return y.reshape((N, C) + tuple(out_hw))

    def backward(self, dy):
        return dy.reshape(-1)[self.flat].reshape(self.x_shape), None, None


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """torch's max_unpool2d: the inverse placement of max_pool2d(return_indices=True).
    The output is (H - 1) * stride - 2 * padding + kernel_size per axis, or ``output_size``
    ((H, W), or with the leading dims). Where windows overlap, two inputs can name the same
    position: one of them lands there (which one is unspecified, as in torch)."""
    from fastconv.tensor import Tensor

    op = "max_unpool2d"
    x, unbatched = _batched(op, input)
    nonempty(input, "input", op, input.ndim - 3)
    if not isinstance(indices, Tensor) or indices.dtype.kind not in "iu":
        raise TypeError(f"{op}: indices must be an int64 Tensor (from max_pool2d's "
                        "return_indices), got " + type(indices).__name__)
    idx = indices.reshape(1, *indices.shape) if unbatched else indices
    if tuple(idx.shape) != tuple(x.shape):
        raise ArgumentError(f"{op}: indices {tuple(indices.shape)} must have input's shape "
                            f"{tuple(input.shape)}")
    kernel = pair(kernel_size, "kernel_size", op, 1)
    stride = kernel if stride is None else pair(stride, "stride", op, 1)
    padding = pair(padding, "padding", op, 0)
    default = tuple((x.shape[2 + i] - 1) * stride[i] - 2 * padding[i] + kernel[i]
                    for i in range(2))
    if output_size is None:
        out_hw = default
    else:
        out_hw = tuple(int(n) for n in output_size)[-2:]
        if len(tuple(output_size)) not in (2, 3, 4):
            raise ArgumentError(f"{op}: output_size must have 2 to 4 elements, got {output_size}")
        # torch's rule: within a stride of the default size (any other size would not be
        # an inverse of the pooling, and a huge one is an allocation the indices never use)
        for i in range(2):
            low, high = default[i] - stride[i], default[i] + stride[i]
            if not low < out_hw[i] < high:
                raise ArgumentError(f"{op}: invalid output_size {tuple(output_size)} (dim {i} "
                                    f"must be between {low} and {high})")
    if min(out_hw) < 1:
        raise ArgumentError(f"{op}: empty output size {out_hw}")
    flat = idx.data
    plane = out_hw[0] * out_hw[1]
    if flat.size and (int(flat.min()) < 0 or int(flat.max()) >= plane):
        raise RuntimeError(f"{op}: found an invalid max index {int(flat.max())} (output "
                           f"volumes are of size {out_hw[0]}x{out_hw[1]})")
    y = MaxUnpool2d.apply(x, flat.astype(np.int64, copy=False), out_hw)
    return y.reshape(y.shape[1:]) if unbatched else y


def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """Power-average pooling: (sum over the window of x^p)^(1/p), as torch's (no padding)."""
    float_tensor(input, "input", "lp_pool2d", (3, 4))
    nonempty(input, "input", "lp_pool2d", input.ndim - 3)
    kernel = pair(kernel_size, "kernel_size", "lp_pool2d", 1)
    p = float(norm_type)
    if p in (np.inf, -np.inf):  # the limits, as torch takes them: max (min) of |x|
        sign = 1.0 if p > 0 else -1.0
        return max_pool2d(input.abs() * sign, kernel, stride, 0, 1, ceil_mode) * sign
    out = avg_pool2d(input.pow(p), kernel, stride, 0, ceil_mode)
    return (out.sign() * out.abs().relu() * float(kernel[0] * kernel[1])).pow(1.0 / p)



def adaptive_max_pool3d(input, output_size, return_indices=False):
    """Max pooling of (N, C, D, H, W) or unbatched (C, D, H, W) input to a fixed output size,
    with PyTorch's windows per axis: output cell i along an axis of input size S takes cells
    floor(i*S/out) to ceil((i+1)*S/out) - 1.

    A window is a box, so its maximum runs separably on the adaptive_max_pool2d kernels:
    over (H, W) for every depth, then over D. The first maximum in (d, h, w) order wins a
    tie, as in PyTorch.

    Args:
        output_size: an int or 3 values; None keeps that input size.
        return_indices: also return the int64 flat index d * H * W + h * W + w of each
            maximum within its input volume (what ``max_unpool3d`` takes).
    """
    from fastconv.backend import get_backend
    from fastconv.tensor import Tensor

    op = "adaptive_max_pool3d"
    float_tensor(input, "input", op, (4, 5))
    unbatched = input.ndim == 4
    x = input.reshape(1, *input.shape) if unbatched else input
    nonempty(input, "input", op, 1)  # torch: dims 1.. (the channels only when batched)
    N, C, D, H, W = x.shape
    out = output_size if isinstance(output_size, (tuple, list)) else (output_size,) * 3
    if len(out) != 3:
        raise ArgumentError(f"{op}: output_size must be an int or 3 values, got {output_size!r}")
    od, oh, ow = (size if o is None else positive_int(o, "output_size", op)
                  for size, o in zip((D, H, W), out))
    check_allocation(op, (N, C, od, oh, ow))
    if C == 0:  # (an unbatched input without channels: the 2-D pools refuse (1, 0, H, W))
        y = x.reshape(N, C, od, oh, ow)
        y = y.reshape(y.shape[1:]) if unbatched else y
        xp = get_backend(x.device).xp
        return (y, Tensor(xp.zeros(y.shape, np.int64))) if return_indices else y
    y, i_hw = adaptive_max_pool2d(x.reshape(N, C * D, H, W), (oh, ow), return_indices=True)
    # depth last: (N, C * oh * ow, 1, D), one line of depths per output (h, w)
    y = y.reshape(N, C, D, oh * ow).transpose(2, 3).reshape(N, C * oh * ow, 1, D)
    y, i_d = adaptive_max_pool2d(y, (1, od), return_indices=True)
    y = y.reshape(N, C, oh, ow, od).permute(0, 1, 4, 2, 3)
    if unbatched:
        y = y.reshape(y.shape[1:])
    if not return_indices:
        return y
    xp = get_backend(x.device).xp
    depth = xp.ascontiguousarray(i_d.data.reshape(N, C, oh * ow, od).transpose(0, 1, 3, 2))
    within = xp.take_along_axis(i_hw.data.reshape(N, C, D, oh * ow), depth, axis=2)
    idx = (depth * (H * W) + within).reshape(N, C, od, oh, ow).astype(np.int64)
    return y, Tensor(idx[0] if unbatched else idx)
