"""Moving pixels between space and channels: ``unfold`` / ``fold`` (sliding patches as
columns, PyTorch's im2col and col2im on tensors) and ``pixel_shuffle`` / ``pixel_unshuffle``
(Shi et al., 2016, "Real-Time Single Image and Video Super-Resolution ... Sub-Pixel
Convolutional Neural Network").

Array code: unfold is one gather with index arrays (its gradient adds back, through
GetItem), fold is the matching scatter-add (its gradient is the gather). The pixel
rearrangements are a reshape and a permute.
"""

from __future__ import annotations

import numpy as np

from fastconv.backend import get_backend
from fastconv.function import Function
from fastconv.ops.index import _add_at
from fastconv.ops.validate import check_allocation, float_tensor, nonempty, pair


def _geometry(op, size, kernel_size, dilation, padding, stride):
    """Per axis: the row index each (kernel offset, output position) pair reads in the
    padded input, shape (KH, OH) and (KW, OW)."""
    k = pair(kernel_size, "kernel_size", op, 1)
    d = pair(dilation, "dilation", op, 1)
    p = pair(padding, "padding", op, 0)
    s = pair(stride, "stride", op, 1)
    rows = []
    for axis in range(2):
        n = size[axis] + 2 * p[axis] - d[axis] * (k[axis] - 1) - 1
        if n < 0:
            raise RuntimeError(f"{op}: the kernel {k} (dilation {d}) does not fit the padded "
                               f"input of spatial size {tuple(size)} with padding {p}")
        out = n // s[axis] + 1
        # a huge padding or output size: refuse before building the index tables
        check_allocation(op, (k[axis], out), 8, what="a window index table")
        rows.append(np.arange(k[axis])[:, None] * d[axis] + np.arange(out)[None, :] * s[axis])
    return rows, p


def _batched(op, x, ndims):
    if x.ndim not in ndims:
        raise RuntimeError(f"{op}: expected a {ndims[0]}-D (unbatched) or {ndims[1]}-D (batched) "
                           f"input, got shape {x.shape}")
    return x.unsqueeze(0) if x.ndim == ndims[0] else x


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """Sliding local blocks of an (N, C, H, W) (or (C, H, W)) input as columns:
    (N, C * KH * KW, L), L the number of windows; the column of window (i, j) holds
    x[n, c, i*s - p + a*d, j*s - p + b*d] in (c, a, b) order."""
    from fastconv.functional import pad

    op = "unfold"
    float_tensor(input, "input", op)
    x = _batched(op, input, (3, 4))
    nonempty(input, "input", op, input.ndim - 3)
    (rows, cols), p = _geometry(op, x.shape[2:], kernel_size, dilation, padding, stride)
    check_allocation(op, (x.shape[0], x.shape[1] * rows.shape[0] * cols.shape[0],
                          rows.shape[1] * cols.shape[1]))
    if any(p):
        x = pad(x, (p[1], p[1], p[0], p[0]))
    xp = get_backend(x.device).xp
    # (N, C, KH, KW, OH, OW): advanced indices on dims 2 and 3 stay in place.
    blocks = x[:, :, xp.asarray(rows)[:, None, :, None], xp.asarray(cols)[None, :, None, :]]
    n, c = x.shape[:2]
    out = blocks.reshape(n, c * rows.shape[0] * cols.shape[0], rows.shape[1] * cols.shape[1])
    return out if input.ndim == 4 else out.squeeze(0)


class Fold(Function):
    """Columns back to an image, overlapping entries added (col2im)."""

    double_backward = "linear"

    def forward(self, cols, shape, rows, columns, padding):
        xp = self.xp
        n, c, h, w = shape
        ph, pw = padding
        self.where = (slice(None), slice(None), xp.asarray(rows)[:, None, :, None],
                      xp.asarray(columns)[None, :, None, :])
        self.shape = cols.shape
        self.crop = (slice(None), slice(None), slice(ph, ph + h), slice(pw, pw + w))
        blocks = cols.reshape(n, c, rows.shape[0], columns.shape[0], rows.shape[1],
                              columns.shape[1])
        out = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
        _add_at(xp, out, self.where, blocks)
        return xp.ascontiguousarray(out[self.crop])

    def backward(self, dy):
        xp = self.xp
        n, c, h, w = dy.shape
        full = xp.zeros((n, c, h + 2 * (self.crop[2].start), w + 2 * (self.crop[3].start)),
                        dtype=dy.dtype)
        full[self.crop] = dy
        return full[self.where].reshape(self.shape), None, None, None, None


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """The inverse arrangement of :func:`unfold`: (N, C * KH * KW, L) columns summed into
    an (N, C, H, W) image of ``output_size`` (entries that several windows cover add up)."""
    op = "fold"
    float_tensor(input, "input", op)
    x = _batched(op, input, (2, 3))
    nonempty(input, "input", op, input.ndim - 2)  # torch: columns and blocks
    size = pair(output_size, "output_size", op, 1)
    check_allocation(op, (x.shape[0], x.shape[1]) + size)
    (rows, cols), p = _geometry(op, size, kernel_size, dilation, padding, stride)
    kk = rows.shape[0] * cols.shape[0]
    windows = rows.shape[1] * cols.shape[1]
    if x.shape[1] % kk:
        raise RuntimeError(f"Expected size of input's dimension 1 to be divisible by the product "
                           f"of kernel_size, but got input.size(1)={x.shape[1]} and "
                           f"kernel_size={tuple(pair(kernel_size, 'kernel_size', op, 1))}")
    if x.shape[2] != windows:
        raise RuntimeError(f"Given output_size={size}, "
                           f"kernel_size={tuple(pair(kernel_size, 'k', op, 1))}"
                           f", dilation, padding, stride, expected size of input's dimension 2 "
                           f"to match the calculated number of sliding blocks {rows.shape[1]} * "
                           f"{cols.shape[1]} = {windows}, but got input.size(2)={x.shape[2]}.")
    out = Fold.apply(x, (x.shape[0], x.shape[1] // kk) + size, rows, cols, p)
    return out if input.ndim == 3 else out.squeeze(0)


def pixel_shuffle(input, upscale_factor):
    """(*, C r^2, H, W) -> (*, C, H r, W r): output pixel (h r + i, w r + j) of channel c is
    input channel c r^2 + i r + j at (h, w)."""
    r = _factor("pixel_shuffle", input, upscale_factor)
    *lead, c, h, w = input.shape
    if c % (r * r):
        raise RuntimeError(f"pixel_shuffle expects its input's 'channel' dimension to be "
                           f"divisible by the square of upscale_factor, but input.size(-3)={c} "
                           f"is not divisible by {r * r}")
    k = len(lead)
    x = input.reshape(*lead, c // (r * r), r, r, h, w)
    x = x.permute(*range(k), k, k + 3, k + 1, k + 4, k + 2)
    return x.reshape(*lead, c // (r * r), h * r, w * r)


def pixel_unshuffle(input, downscale_factor):
    """The inverse of :func:`pixel_shuffle`: (*, C, H r, W r) -> (*, C r^2, H, W)."""
    r = _factor("pixel_unshuffle", input, downscale_factor)
    *lead, c, h, w = input.shape
    if h % r or w % r:
        raise RuntimeError(f"pixel_unshuffle expects height and width to be divisible by "
                           f"downscale_factor, but input.size(-2)={h}, input.size(-1)={w} with "
                           f"downscale_factor={r}")
    k = len(lead)
    x = input.reshape(*lead, c, h // r, r, w // r, r)
    x = x.permute(*range(k), k, k + 2, k + 4, k + 1, k + 3)
    return x.reshape(*lead, c * r * r, h // r, w // r)


def channel_shuffle(input, groups: int):
    """ShuffleNet's channel shuffle (Zhang et al., 2018): (N, g * k, *) -> the channels
    reordered as (N, k, g, *) read row by row."""
    from fastconv.tensor import Tensor

    if not isinstance(input, Tensor):
        raise TypeError(f"channel_shuffle: input must be a fastconv.Tensor, got "
                        f"{type(input).__name__}")
    if input.ndim < 3:
        raise RuntimeError(f"channel_shuffle expects input to have at least 3 dimensions, but "
                           f"got input with sizes {list(input.shape)}")
    if not isinstance(groups, (int, np.integer)) or groups <= 0:
        raise RuntimeError(f"Number of groups to divide channels in must be positive. Value of "
                           f"groups:{groups}")
    n, c, *rest = input.shape
    if c % groups:
        raise RuntimeError(f"Number of channels must be divisible by groups. Got {c} channels "
                           f"and {groups} groups.")
    return input.reshape(n, groups, c // groups, *rest).transpose(1, 2).reshape(n, c, *rest)


def _factor(op, input, factor):
    from fastconv.tensor import Tensor

    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: input must be a fastconv.Tensor, got {type(input).__name__}")
    if input.ndim < 3:
        raise RuntimeError(f"{op} expects input to have at least 3 dimensions, but got input "
                           f"with {input.ndim} dimension(s)")
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
        raise RuntimeError(f"{op} expects a positive integer factor, got {factor!r}")
    return int(factor)
