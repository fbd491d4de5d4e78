"""3-D convolution and pooling over (N, C, D, H, W) or unbatched (C, D, H, W) input, on the
2-D kernels: the depth axis is unrolled into the batch.

For each kernel depth offset kd, the input slices that output depth od reads
(od * stride_d - padding_d + kd * dilation_d) are gathered along D (``index_select``), folded
into the batch (N * OD images), convolved (or pooled) in 2-D, and the kd results are
combined: summed for the convolution, the maximum for max pooling, averaged for average
pooling. Every step is a differentiable op, so the gradients are those of the 2-D kernels
routed back by the gather. Depth padding is explicit (zeros, or -inf for max pooling).
"""

from __future__ import annotations

import numpy as np

from fastconv.ops import conv, pool
from fastconv.ops.validate import float_tensor
from fastconv.output_size import conv_output_size


def triple(value, name: str, op: str, minimum: int) -> tuple:
    """An int or a 3-element sequence of ints, each at least ``minimum``."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * 3
    if len(values) != 3 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                   for v in values):
        raise ValueError(f"{op}: {name} must be an int or 3 ints, got {value!r}")
    if min(values) < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value!r}")
    return tuple(int(v) for v in values)


def _batched(op, input):
    float_tensor(input, "input", op, (4, 5))
    return (input.unsqueeze(0), True) if input.ndim == 4 else (input, False)


def _depth_slices(x, od_count: int, stride: int, dilation: int, kd: int):
    """x's depth slices read at kernel offset kd by each output depth, as a batch of
    (N * OD) images (N, C, D, H, W) -> (N * OD, C, H, W)."""
    from fastconv.tensor import Tensor

    idx = Tensor(np.arange(od_count, dtype=np.int64) * stride + kd * dilation)
    if x.device != "cpu":
        idx = idx.to(x.device)
    N, C = x.shape[:2]
    s = x.index_select(2, idx)  # (N, C, OD, H, W)
    return s.permute(0, 2, 1, 3, 4).reshape(N * od_count, C, x.shape[3], x.shape[4])


def _unfold_depth(y, N: int, od_count: int):
    """(N * OD, C, H, W) -> (N, C, OD, H, W)."""
    return y.reshape(N, od_count, *y.shape[1:]).permute(0, 2, 1, 3, 4)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """torch's conv3d: y[n, o, d, h, w] = b[o] + sum over c, kd, kh, kw of
    w[o, c, kd, kh, kw] * x[n, g*Cg + c, d*sd - pd + kd*dd, h*sh - ph + kh*dh, w*sw - pw + kw*dw].
    weight (OC, C // groups, KD, KH, KW)."""
    op = "conv3d"
    float_tensor(weight, "weight", op, (5,))
    x, unbatched = _batched(op, input)
    stride = triple(stride, "stride", op, 1)
    padding = triple(padding, "padding", op, 0)
    dilation = triple(dilation, "dilation", op, 1)
    N, C, D = x.shape[:3]
    KD = weight.shape[2]
    if C != weight.shape[1] * groups:
        raise ValueError(f"{op}: input has {C} channels but weight {tuple(weight.shape)} expects "
                         f"{weight.shape[1]} x groups={groups}")
    OD = conv_output_size(D, KD, stride[0], padding[0], dilation[0])
    if OD < 1:
        raise ValueError(f"{op}: empty output depth for input {tuple(input.shape)} and weight "
                         f"{tuple(weight.shape)}")
    if padding[0]:
        x = _pad_depth(x, padding[0], padding[0], 0.0)
    y = None
    for kd in range(KD):
        part = conv.conv2d(_depth_slices(x, OD, stride[0], dilation[0], kd), weight[:, :, kd],
                           None, stride[1:], padding[1:], dilation[1:], groups)
        y = part if y is None else y + part
    y = _unfold_depth(y, N, OD)
    if bias is not None:
        float_tensor(bias, "bias", op, (1,))
        y = y + bias.reshape(1, -1, 1, 1, 1)
    return y.squeeze(0) if unbatched else y


def _pad_depth(x, before: int, after: int, value: float):
    from fastconv.ops.pad import pad

    return pad(x, (0, 0, 0, 0, before, after), value=value)


def _pool_depth(op, x, kernel, stride, padding, ceil_mode, dilation=1):
    """Output depth of a pooling window along D, with torch's rules (and its checks)."""
    from fastconv.output_size import pool_output_size

    D = x.shape[2]
    if padding * 2 > dilation * (kernel - 1) + 1:
        raise ValueError(f"{op}: padding {padding} must be at most half of the kernel depth "
                         f"{kernel}")
    OD = pool_output_size(D, kernel, stride, padding, ceil_mode, dilation)
    if OD < 1:
        raise ValueError(f"{op}: empty output depth for input {tuple(x.shape)}")
    return OD


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """torch's max_pool3d (indices are not returned: ``return_indices`` is refused)."""
    op = "max_pool3d"
    if return_indices:
        raise NotImplementedError(f"{op}: return_indices=True is not supported by fastconv")
    x, unbatched = _batched(op, input)
    kernel = triple(kernel_size, "kernel_size", op, 1)
    stride = kernel if stride is None else triple(stride, "stride", op, 1)
    padding = triple(padding, "padding", op, 0)
    dilation = triple(dilation, "dilation", op, 1)
    OD = _pool_depth(op, x, kernel[0], stride[0], padding[0], ceil_mode, dilation[0])
    N, D = x.shape[0], x.shape[2]
    need = (OD - 1) * stride[0] + dilation[0] * (kernel[0] - 1) + 1  # padded depth read
    after = max(0, need - D - padding[0])
    if padding[0] or after:
        x = _pad_depth(x, padding[0], after, float("-inf"))
    parts = [pool.max_pool2d(_depth_slices(x, OD, stride[0], dilation[0], kd), kernel[1:],
                             stride[1:], padding[1:], dilation[1:], ceil_mode)
             for kd in range(kernel[0])]
    from fastconv.toplevel import stack

    y = _unfold_depth(stack(parts).amax(0), N, OD)
    return y.squeeze(0) if unbatched else y


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """torch's avg_pool3d: each window's sum over the product of its size (clipped to the
    padded input), or over its real elements with ``count_include_pad=False``, or over
    ``divisor_override``."""
    from fastconv.tensor import Tensor, _as_array

    op = "avg_pool3d"
    x, unbatched = _batched(op, input)
    kernel = triple(kernel_size, "kernel_size", op, 1)
    stride = kernel if stride is None else triple(stride, "stride", op, 1)
    padding = triple(padding, "padding", op, 0)
    OD = _pool_depth(op, x, kernel[0], stride[0], padding[0], ceil_mode)
    N, D = x.shape[0], x.shape[2]
    need = (OD - 1) * stride[0] + kernel[0]
    after = max(0, need - D - padding[0])
    if padding[0] or after:
        x = _pad_depth(x, padding[0], after, 0.0)
    # window sums: 2-D sums (the average times its window size, count_include_pad=True and
    # divisor_override = 1 give exactly the sum) added over the kernel depth
    total = None
    for kd in range(kernel[0]):
        part = pool.avg_pool2d(_depth_slices(x, OD, stride[0], 1, kd), kernel[1:], stride[1:],
                               padding[1:], ceil_mode, True, 1)
        total = part if total is None else total + part
    total = _unfold_depth(total, N, OD)  # (N, C, OD, OH, OW) window sums
    OH, OW = total.shape[3:]
    sizes = []
    for axis, (size, k, s, p, n) in enumerate(zip((D,) + tuple(input.shape[-2:]), kernel,
                                                  stride, padding, (OD, OH, OW))):
        start = np.arange(n) * s - p
        end_padded = np.minimum(start + k, size + p)
        real = np.minimum(start + k, size) - np.maximum(start, 0)
        sizes.append((end_padded - start) if count_include_pad else real)
    if divisor_override is not None:
        if isinstance(divisor_override, bool) or not isinstance(divisor_override, int) \
                or divisor_override == 0:
            raise ValueError(f"{op}: divisor_override must be a non-zero int, got "
                             f"{divisor_override!r}")
        divisor = np.full((OD, OH, OW), float(divisor_override), np.float32)
    else:
        divisor = np.einsum("i,j,k->ijk", *sizes).astype(np.float32)
    y = total / Tensor(_as_array(divisor, total.device))
    return y.squeeze(0) if unbatched else y


def adaptive_avg_pool3d(input, output_size):
    """torch's adaptive_avg_pool3d: output cell i along an axis of input size S averages cells
    floor(i*S/out) to ceil((i+1)*S/out) - 1, per axis (separable averaging matrices)."""
    from fastconv.tensor import Tensor, _as_array

    op = "adaptive_avg_pool3d"
    x, unbatched = _batched(op, input)
    sizes = x.shape[2:]
    out = output_size if isinstance(output_size, (tuple, list)) else (output_size,) * 3
    if len(out) != 3:
        raise ValueError(f"{op}: output_size must be an int or 3 values, got {output_size!r}")
    out = tuple(s if o is None else int(o) for s, o in zip(sizes, out))
    if min(out) < 1 or min(sizes) < 1:
        raise ValueError(f"{op}: sizes must be positive: input {tuple(input.shape)}, output "
                         f"{out}")
    y = x
    for axis, (size, n) in enumerate(zip(sizes, out)):
        m = pool._window_average_matrix(np, size, n)  # (n, size)
        mat = Tensor(_as_array(m, x.device))
        y = (y.movedim(2 + axis, -1) @ mat.t()).movedim(-1, 2 + axis)
    return y.squeeze(0) if unbatched else y
