"""3-D convolution, transposed convolution and pooling over (N, C, D, H, W) or unbatched
(C, D, H, W) input, on the 2-D kernels: the depth axis is unrolled into the batch.

For each kernel depth offset kd, the input slices that output depth od reads
(od * stride_d - padding_d + kd * dilation_d) are gathered along D (``index_select``), folded
into the batch (N * OD images), convolved (or pooled) in 2-D, and the kd results are
combined: summed for the convolution, averaged for average pooling. Every step is a
differentiable op, so the gradients are those of the 2-D kernels routed back by the gather.
Depth padding is explicit (zeros, or -inf for max pooling).

Max pooling finds its maxima that way without recording a graph (the 2-D kernel's argmax
per kd, then the first kd holding the largest value), turns them into torch's flat indices
d * H * W + h * W + w, and gathers the output from the input at those indices, so the
gradient reaches exactly the element each maximum came from, as in torch.

The transposed convolution runs the other way: every input depth slice goes through one
2-D transposed convolution whose output channels hold all KD kernel depths at once (weight
(C, OC/g, KD, KH, KW) viewed as (C, KD * OC/g, KH, KW)), and :class:`DepthOverlapAdd` adds
slice i's kd-th result into output depth i * stride_d - padding_d + kd * dilation_d.
"""

from __future__ import annotations

import numpy as np

from fastconv.backend import get_backend
from fastconv.function import Function
from fastconv.ops import conv, pool
from fastconv.ops.validate import (
    ArgumentError,
    check_allocation,
    float_tensor,
    nonempty,
    positive_int,
)
from fastconv.output_size import conv_output_size, conv_transpose_output_size


def triple(value, name: str, op: str, minimum: int) -> tuple:
    """An int or a 3-element sequence of ints, each at least ``minimum``."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * 3
    if len(values) != 3 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                   for v in values):
        raise ArgumentError(f"{op}: {name} must be an int or 3 ints, got {value!r}")
    if min(values) < minimum:
        raise ArgumentError(f"{op}: {name} must be >= {minimum}, got {value!r}")
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
    weight (OC, C // groups, KD, KH, KW). ``padding``: an int, 3 ints, "valid" (none) or
    "same" (stride 1; each output size equals the input's, the odd pixel of an odd total
    padded at the end, as torch's)."""
    op = "conv3d"
    float_tensor(weight, "weight", op, (5,))
    x, unbatched = _batched(op, input)
    stride = triple(stride, "stride", op, 1)
    dilation = triple(dilation, "dilation", op, 1)
    x, padding = conv.string_padding(op, x, padding, weight.shape[2:], stride, dilation)
    padding = triple(padding, "padding", op, 0)
    N, C, D = x.shape[:3]
    KD = weight.shape[2]
    if C != weight.shape[1] * groups:
        raise ArgumentError(f"{op}: input has {C} channels but weight {tuple(weight.shape)} "
                            f"expects "
                            f"{weight.shape[1]} x groups={groups}")
    OD = conv_output_size(D, KD, stride[0], padding[0], dilation[0])
    if OD < 1:
        raise ArgumentError(f"{op}: empty output depth for input {tuple(input.shape)} and weight "
                            f"{tuple(weight.shape)}")
    if bias is not None:  # checked before any work: a wrong length would broadcast
        float_tensor(bias, "bias", op, (1,))
        if tuple(bias.shape) != (weight.shape[0],):
            raise ArgumentError(f"{op}: bias must have shape ({weight.shape[0]},) to match "
                                f"weight {tuple(weight.shape)}, got {tuple(bias.shape)}")
    if padding[0]:
        x = _pad_depth(x, padding[0], padding[0], 0.0)
    y = None
    for kd in range(KD):
        part = conv.conv2d(_depth_slices(x, OD, stride[0], dilation[0], kd), weight[:, :, kd],
                           None, stride[1:], padding[1:], dilation[1:], groups)
        y = part if y is None else y + part
    y = _unfold_depth(y, N, OD)
    if bias is not None:
        y = y + bias.reshape(1, -1, 1, 1, 1)
    return y.squeeze(0) if unbatched else y


class DepthOverlapAdd(Function):
    """(N, D, KD, C, H, W) per-slice results -> (N, C, OD, H, W): part [:, i, kd] is added
    at output depth i * stride - padding + kd * dilation (dropped outside [0, OD)). The
    gradient reads each part back from where it was added."""

    double_backward = "linear"

    def forward(self, parts, stride: int, dilation: int, padding: int, OD: int):
        xp = self.xp
        N, D, KD = parts.shape[:3]
        rest = parts.shape[3:]
        span = (D - 1) * stride + 1
        length = max(span + dilation * (KD - 1), padding + OD)
        full = xp.zeros((N, length) + rest, np.float32)
        for kd in range(KD):
            full[:, kd * dilation:kd * dilation + span:stride] += parts[:, :, kd]
        self.geometry = (parts.shape, length, span, stride, dilation, padding, OD)
        return xp.ascontiguousarray(full[:, padding:padding + OD].swapaxes(1, 2))

    def backward(self, dy):
        xp = self.xp
        shape, length, span, stride, dilation, padding, OD = self.geometry
        N, D, KD = shape[:3]
        full = xp.zeros((N, length) + shape[3:], np.float32)
        full[:, padding:padding + OD] = dy.swapaxes(1, 2)
        dparts = xp.empty(shape, np.float32)
        for kd in range(KD):
            dparts[:, :, kd] = full[:, kd * dilation:kd * dilation + span:stride]
        return dparts, None, None, None, None


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1, output_size=None):
    """torch's conv_transpose3d, the gradient of conv3d with respect to its input, as an op:

        y[n, g*OCg + o, i*sd - pd + kd*dd, j*sh - ph + kh*dh, k*sw - pw + kw*dw] +=
            w[g*Cg + c, o, kd, kh, kw] * x[n, g*Cg + c, i, j, k]

    plus bias[o]. weight is (in_channels, out_channels / groups, KD, KH, KW). The output
    size per axis is (size - 1) * stride - 2 * padding + dilation * (kernel - 1) +
    output_padding + 1; ``output_size`` (D, H, W) (or with the leading dims) picks the
    output_padding that gives it, as nn.ConvTranspose3d. output_padding must be smaller
    than the stride or the dilation of its axis."""
    op = "conv_transpose3d"
    float_tensor(weight, "weight", op, (5,))
    x, unbatched = _batched(op, input)
    nonempty(input, "input", op, input.ndim - 3)  # torch: no empty volume (see conv_transpose2d)
    stride = triple(stride, "stride", op, 1)
    padding = triple(padding, "padding", op, 0)
    output_padding = triple(output_padding, "output_padding", op, 0)
    dilation = triple(dilation, "dilation", op, 1)
    groups = positive_int(groups, "groups", op)
    N, C = x.shape[:2]
    IC, OCG = weight.shape[:2]
    kernel = tuple(weight.shape[2:])
    if C != IC:
        raise ArgumentError(f"{op}: input {tuple(input.shape)} has {C} channels but weight "
                            f"{tuple(weight.shape)} expects {IC} (weight is (in_channels, "
                            "out_channels/groups, kD, kH, kW))")
    if IC % groups:
        raise ArgumentError(f"{op}: groups={groups} must divide the input channels ({IC})")
    if bias is not None:
        float_tensor(bias, "bias", op, (1,))
        if tuple(bias.shape) != (OCG * groups,):
            raise ArgumentError(f"{op}: bias must have shape ({OCG * groups},) to match weight "
                                f"{tuple(weight.shape)} and groups={groups}, got "
                                f"{tuple(bias.shape)}")
    sizes = tuple(x.shape[2:])
    if output_size is not None:
        wanted = tuple(int(n) for n in output_size)
        if len(wanted) not in (3, input.ndim):
            raise ArgumentError(f"{op}: for {input.ndim}-D input, output_size must have 3 or "
                                f"{input.ndim} elements, got {output_size!r}")
        wanted = wanted[-3:]
        output_padding = []
        for i in range(3):
            smallest = conv_transpose_output_size(sizes[i], kernel[i], stride[i], padding[i],
                                                  dilation[i], 0)
            largest = smallest + stride[i] - 1
            if not smallest <= wanted[i] <= largest:
                raise ArgumentError(f"{op}: requested an output size of {wanted}, but valid "
                                    f"sizes range from {smallest} to {largest} along dim {i + 2} "
                                    f"(for an input of {tuple(input.shape)})")
            output_padding.append(wanted[i] - smallest)
        output_padding = tuple(output_padding)
    out = []
    for i in range(3):
        if not output_padding[i] < max(stride[i], dilation[i]):
            raise ArgumentError(f"{op}: output_padding {output_padding} must be smaller than "
                                f"either stride {stride} or dilation {dilation}")
        out.append(conv_transpose_output_size(sizes[i], kernel[i], stride[i], padding[i],
                                              dilation[i], output_padding[i]))
    if min(out) < 1:
        raise ArgumentError(f"{op}: empty output {tuple(out)} for input {tuple(input.shape)}, "
                            f"weight {tuple(weight.shape)}, stride {stride}, padding {padding}, "
                            f"dilation {dilation}")
    D, H, W = sizes
    KD = kernel[0]
    check_allocation(op, (N, OCG * groups) + tuple(out))
    # the depth overlap-add sums every slice at its full stride before cropping the padding
    check_allocation(op, (N, max((D - 1) * stride[0] + 1 + dilation[0] * (KD - 1),
                                 padding[0] + out[0]), OCG * groups) + tuple(out[1:]))
    # every depth slice as an image; the KD kernel depths as extra output channels
    slices = x.permute(0, 2, 1, 3, 4).reshape(N * D, C, H, W)
    w2 = weight.permute(0, 2, 1, 3, 4).reshape(IC, KD * OCG, kernel[1], kernel[2])
    y2 = conv.conv_transpose2d(slices, w2, None, stride[1:], padding[1:], output_padding[1:],
                               groups, dilation[1:])  # (N * D, groups * KD * OCG, OH, OW)
    OH, OW = y2.shape[2:]
    parts = (y2.reshape(N, D, groups, KD, OCG, OH, OW).permute(0, 1, 3, 2, 4, 5, 6)
             .reshape(N, D, KD, groups * OCG, OH, OW))
    y = DepthOverlapAdd.apply(parts, stride[0], dilation[0], padding[0], out[0])
    if bias is not None:
        y = y + bias.reshape(1, -1, 1, 1, 1)
    return y.squeeze(0) if unbatched else y


def _pad_depth(x, before: int, after: int, value: float):
    from fastconv.ops.pad import pad

    return pad(x, (0, 0, 0, 0, before, after), value=value)


def _pool_depth(op, x, kernel, stride, padding, ceil_mode, dilation=1):
    """Output depth of a pooling window along D, with torch's rules (and its checks)."""
    from fastconv.output_size import pool_output_size

    D = x.shape[2]
    if padding * 2 > kernel:  # PyTorch's rule: the kernel size, not the dilated span
        raise ArgumentError(f"{op}: padding {padding} must be at most half of the kernel depth "
                            f"{kernel}")
    OD = pool_output_size(D, kernel, stride, padding, ceil_mode, dilation)
    if OD < 1:
        raise ArgumentError(f"{op}: empty output depth for input {tuple(x.shape)}")
    return OD


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """torch's max_pool3d: y[n, c, d, h, w] = the maximum of x over the (dilated) window
    starting at (d*sd - pd, h*sh - ph, w*sw - pw), with -inf padding (at most half the
    dilated kernel) and ``ceil_mode`` as torch's. ``return_indices`` also returns the int64
    flat index d * H * W + h * W + w of each maximum within its (D, H, W) volume (what
    ``max_unpool3d`` takes). The first maximum in (d, h, w) order receives the gradient."""
    from fastconv import autograd
    from fastconv.tensor import Tensor

    op = "max_pool3d"
    x, unbatched = _batched(op, input)
    nonempty(input, "input", op, input.ndim - 4)
    kernel = triple(kernel_size, "kernel_size", op, 1)
    stride = kernel if stride is None else triple(stride, "stride", op, 1)
    padding = triple(padding, "padding", op, 0)
    dilation = triple(dilation, "dilation", op, 1)
    OD = _pool_depth(op, x, kernel[0], stride[0], padding[0], ceil_mode, dilation[0])
    N, C, D, H, W = x.shape
    need = (OD - 1) * stride[0] + dilation[0] * (kernel[0] - 1) + 1  # padded depth read
    after = max(0, need - D - padding[0])
    with autograd.no_grad():
        xd = x.detach()
        if padding[0] or after:
            xd = _pad_depth(xd, padding[0], after, float("-inf"))
        found = [pool.max_pool2d(_depth_slices(xd, OD, stride[0], dilation[0], kd),
                                 kernel[1:], stride[1:], padding[1:], dilation[1:], ceil_mode,
                                 return_indices=True) for kd in range(kernel[0])]
    xp = get_backend(x.device).xp
    values = xp.stack([v.data for v, _ in found])  # (KD, N * OD, C, OH, OW)
    planes = xp.stack([i.data for _, i in found])
    best = values.argmax(axis=0)  # the first kd holding the maximum
    hw = xp.take_along_axis(planes, best[None], axis=0)[0]
    od = xp.arange(OD).reshape(1, OD, 1, 1, 1)
    depth = od * stride[0] - padding[0] + best.reshape((N, OD) + best.shape[1:]) * dilation[0]
    # (a window of nothing but -inf may name a padded slice: kept inside the volume)
    flat = xp.clip(depth, 0, D - 1) * (H * W) + xp.clip(hw.reshape(depth.shape), 0, H * W - 1)
    flat = xp.ascontiguousarray(flat.transpose(0, 2, 1, 3, 4))  # (N, C, OD, OH, OW)
    index = Tensor(flat.astype(np.int64))
    # (sizes spelled out: -1 cannot stand for a dim of an empty batch)
    y = x.reshape(N, C, D * H * W).gather(2, index.reshape(N, C, int(np.prod(flat.shape[2:]))))
    y = y.reshape(flat.shape)
    if unbatched:
        y, index = y.squeeze(0), index.squeeze(0)
    return (y, index) if return_indices else y


def max_unpool3d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """torch's max_unpool3d: the inverse placement of max_pool3d(return_indices=True).
    Input value [n, c, i, j, k] goes to flat position indices[n, c, i, j, k] of its
    (D, H, W) output volume, the rest is zero. The output is (size - 1) * stride -
    2 * padding + kernel_size per axis, or ``output_size`` ((D, H, W), or with the leading
    dims), which must lie within stride of that. Where two inputs name one position, one
    of them lands there (which one is unspecified, as in torch)."""
    from fastconv.tensor import Tensor

    op = "max_unpool3d"
    x, unbatched = _batched(op, input)
    nonempty(input, "input", op, input.ndim - 4)
    if not isinstance(indices, Tensor) or indices.dtype.kind not in "iu":
        raise TypeError(f"{op}: indices must be an int64 Tensor (from max_pool3d's "
                        "return_indices), got " + (str(indices.dtype) if isinstance(
                            indices, Tensor) else type(indices).__name__))
    if tuple(indices.shape) != tuple(input.shape):
        raise ArgumentError(f"{op}: indices {tuple(indices.shape)} must have input's shape "
                            f"{tuple(input.shape)}")
    idx = indices.unsqueeze(0) if unbatched else indices
    kernel = triple(kernel_size, "kernel_size", op, 1)
    stride = kernel if stride is None else triple(stride, "stride", op, 1)
    padding = triple(padding, "padding", op, 0)
    default = tuple((x.shape[2 + i] - 1) * stride[i] - 2 * padding[i] + kernel[i]
                    for i in range(3))
    if output_size is None:
        out = default
    else:
        out = tuple(int(n) for n in output_size)
        if len(out) == 5:
            out = out[2:]
        if len(out) != 3:
            raise ArgumentError(f"{op}: output_size should be a sequence containing 3 or 5 "
                                f"elements, but it has a length of {len(tuple(output_size))}")
        for i in range(3):
            low, high = default[i] - stride[i], default[i] + stride[i]
            if not low < out[i] < high:
                raise ArgumentError(f"{op}: invalid output_size {tuple(output_size)} (dim {i} "
                                    f"must be between {low} and {high})")
    if min(out) < 1:
        raise ArgumentError(f"{op}: empty output size {out} for input {tuple(input.shape)}")
    flat = idx.data
    volume = out[0] * out[1] * out[2]
    if flat.size and (int(flat.min()) < 0 or int(flat.max()) >= volume):
        bad = int(flat.min()) if int(flat.min()) < 0 else int(flat.max())
        raise RuntimeError(f"{op}: found an invalid max index {bad} (output volumes are of "
                           f"size {out[0]}x{out[1]}x{out[2]})")
    y = pool.MaxUnpool2d.apply(x, flat.astype(np.int64, copy=False), out)
    return y.squeeze(0) if unbatched else y


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """torch's avg_pool3d: each window's sum over the product of its size (clipped to the
    padded input), or over its real elements with ``count_include_pad=False``, or over
    ``divisor_override``."""
    from fastconv.tensor import Tensor, _as_array

    op = "avg_pool3d"
    x, unbatched = _batched(op, input)
    nonempty(input, "input", op, input.ndim - 4)
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
            raise ArgumentError(f"{op}: divisor_override must be a non-zero int, got "
                                f"{divisor_override!r}")
        divisor = np.full((OD, OH, OW), float(divisor_override), np.float32)
    else:
        divisor = np.einsum("i,j,k->ijk", *sizes).astype(np.float32)
    y = total / Tensor(_as_array(divisor, total.device))
    return y.squeeze(0) if unbatched else y


def lp_pool3d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """Power-average pooling over (D, H, W) windows: (sum of x^p)^(1/p), as torch's (no
    padding; the same form as :func:`fastconv.ops.pool.lp_pool2d`)."""
    _batched("lp_pool3d", input)
    nonempty(input, "input", "lp_pool3d", input.ndim - 4)
    kernel = triple(kernel_size, "kernel_size", "lp_pool3d", 1)
    p = float(norm_type)
    if p in (np.inf, -np.inf):  # the limits, as torch takes them: max (min) of |x|
        sign = 1.0 if p > 0 else -1.0
        return max_pool3d(input.abs() * sign, kernel, stride, 0, 1, ceil_mode) * sign
    out = avg_pool3d(input.pow(p), kernel, stride, 0, ceil_mode)
    return (out.sign() * out.abs().relu() * float(np.prod(kernel))).pow(1.0 / p)


def adaptive_avg_pool3d(input, output_size):
    """torch's adaptive_avg_pool3d: output cell i along an axis of input size S averages cells
    floor(i*S/out) to ceil((i+1)*S/out) - 1, per axis (separable averaging matrices)."""
    from fastconv.backend import get_backend
    from fastconv.tensor import Tensor, _as_array
    from fastconv.toplevel import cat as fcat

    op = "adaptive_avg_pool3d"
    x, unbatched = _batched(op, input)
    sizes = x.shape[2:]
    out = output_size if isinstance(output_size, (tuple, list)) else (output_size,) * 3
    if len(out) != 3:
        raise ArgumentError(f"{op}: output_size must be an int or 3 values, got {output_size!r}")
    out = tuple(s if o is None else int(o) for s, o in zip(sizes, out))
    if min(out) < 1:
        raise ArgumentError(f"{op}: output_size must be positive, got {out} for input "
                            f"{tuple(input.shape)}")
    if out == (1, 1, 1):  # torch's mean, which takes any input (an empty volume: NaN)
        return input.mean(dim=(-3, -2, -1), keepdim=True)
    nonempty(input, "input", op, 1)  # torch: dims 1.. (the channels only when batched)
    y = x
    for axis, (size, n) in enumerate(zip(sizes, out)):
        # each window's cells gathered and weighted on their own (a matmul with the dense
        # averaging matrix would spread an inf or NaN over the whole line: 0 * inf)
        index, weight = pool._window_taps(size, n)  # (n, K), padded with index = size
        d = 2 + axis
        if int(index.max()) >= size:  # the padding taps read an appended zero slice
            zeros = list(y.shape)
            zeros[d] = 1
            y = fcat([y, Tensor(get_backend(x.device).xp.zeros(zeros, np.float32))], d)
        taps = y.index_select(d, Tensor(_as_array(index.reshape(-1), x.device)))
        taps = taps.reshape(y.shape[:d] + (n, index.shape[1]) + y.shape[d + 1:])
        w = Tensor(_as_array(weight.reshape((n, -1) + (1,) * (y.ndim - d - 1)), x.device))
        y = (taps * w).sum(d + 1)
    return y.squeeze(0) if unbatched else y
