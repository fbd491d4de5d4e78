"""Resizing (``interpolate``): nearest, nearest-exact, linear (1-D), bilinear, bicubic,
trilinear (3-D) and area.

Nearest and bilinear resizing read, for each output row and column, one or two source
positions with their weights. :func:`_source_index` computes them per axis with PyTorch's
rules (the only place the modes and ``align_corners`` are interpreted); the backend kernels
(csrc/resize.cpp, fastconv/cuda/resize.cu) take these tables and interpolate, forward and
backward. Bicubic resizing reads four source positions per axis; :func:`_cubic_taps` lists
them (clamped to the border) with their weights, :func:`taps_matrix` folds such a table into
an (out, size) matrix per axis, and :class:`SeparableResize` applies the two matrices with
the backend's matmul (array code: y = Ah x Aw^T per plane, dx = Ah^T dy Aw). Area mode is
adaptive average pooling, which runs the same separable product (:func:`separable`).

Volumes (N, C, D, H, W) resize one axis pair at a time, as every mode but area is separable
(:func:`_resize3d`): the (H, W) plane of each depth slice through the 2-D kernels, then the
depth through the same kernels on (D, OH * OW) planes whose column table keeps every column.
The same per-axis tables (:func:`_source_index`) hold PyTorch's rules for every axis, so a
trilinear output reads exactly PyTorch's eight taps. Area mode on volumes is
``adaptive_avg_pool3d``.

Non-finite values: in a matrix product an inf or NaN meets the zeros of its row and column
(0 * inf = NaN) and reaches every output of its plane, while PyTorch's kernels read only each
output's taps. :func:`separable` therefore computes the (rare) planes that hold a non-finite
value again from the tap tables, forward and backward, so that exactly the outputs whose
taps include it are non-finite, as in PyTorch.
"""

from __future__ import annotations

import math

import numpy as np

from fastconv.function import Function
from fastconv.ops.validate import (
    ArgumentError,
    check_allocation,
    contiguous,
    float_tensor,
    nonempty,
)

MODES = ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area")

#: The cubic convolution constant (Keys, 1981) torch uses for bicubic resizing and sampling.
CUBIC_A = -0.75


def _source_index(mode: str, size: int, out: int, scale: float | None,
                  align_corners: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """(i0, l1) along one axis, with PyTorch's source positions: output position o reads
    input i0[o] (int64) and, for bilinear, min(i0[o] + 1, size - 1) with weight l1[o]
    (float32; None for the nearest modes).

    ``scale`` is the user's scale factor when it sets the source positions (PyTorch then
    maps back with 1 / scale_factor), else None (size / out). With "nearest" and
    "bilinear", an axis whose size does not change is copied, and with "nearest" one whose
    size exactly doubles repeats each input twice, whatever the scale factor says (PyTorch's
    rules; "nearest-exact" and bicubic have none).
    """
    dst = np.arange(out, dtype=np.float32)
    if size == out and mode != "nearest-exact":
        return (np.arange(out, dtype=np.int64),
                None if mode == "nearest" else np.zeros(out, np.float32))
    if mode == "nearest" and out == 2 * size:  # PyTorch's exact doubling, whatever the scale
        return np.arange(out, dtype=np.int64) >> 1, None
    if mode in ("nearest", "nearest-exact"):
        # PyTorch computes the source index in float32: floor(dst * scale), clipped.
        s = np.float32(1.0 / scale) if scale is not None else np.float32(size / out)
        src = np.floor((dst + np.float32(0.5)) * s) if mode == "nearest-exact" \
            else np.floor(dst * s)
        return np.minimum(src.astype(np.int64), size - 1), None
    # bilinear (per axis: linear)
    if align_corners:
        s = np.float32((size - 1) / (out - 1)) if out > 1 else np.float32(0.0)
        src = dst * s
    else:
        s = np.float32(1.0 / scale) if scale is not None else np.float32(size / out)
        src = np.maximum((dst + np.float32(0.5)) * s - np.float32(0.5), np.float32(0.0))
    i0 = np.minimum(np.floor(src).astype(np.int64), size - 1)
    return i0, (src - i0).astype(np.float32)


def cubic_weights(xp, t):
    """The four weights of taps -1, 0, 1, 2 at fraction t in [0, 1] of Keys' cubic
    convolution with a = CUBIC_A (torch's get_cubic_upsample_coefficients):
    W(d) = (a + 2)|d|^3 - (a + 3)|d|^2 + 1 for |d| <= 1, a|d|^3 - 5a|d|^2 + 8a|d| - 4a for
    1 < |d| < 2."""
    a = np.float32(CUBIC_A)

    def near(d):  # |d| <= 1
        return ((a + 2) * d - (a + 3)) * d * d + 1

    def far(d):  # 1 < |d| < 2
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a

    one, two = np.float32(1), np.float32(2)
    return [far(t + one), near(t), near(one - t), far(two - t)]


def cubic_weights_grad(xp, t):
    """d/dt of :func:`cubic_weights` (for grid_sample's grid gradient)."""
    a = np.float32(CUBIC_A)

    def near(d):
        return (3 * (a + 2) * d - 2 * (a + 3)) * d

    def far(d):
        return (3 * a * d - 10 * a) * d + 8 * a

    one, two = np.float32(1), np.float32(2)
    return [far(t + one), near(t), -near(one - t), -far(two - t)]


def _cubic_taps(size: int, out: int, scale: float | None,
                align_corners: bool) -> tuple[np.ndarray, np.ndarray]:
    """(index, weight), both (out, 4): the four input positions bicubic output o reads along
    one axis and their weights. PyTorch's source position (no clamping at 0, unlike
    bilinear), its four taps floor(src) - 1 .. floor(src) + 2 clamped to the border, weights
    from the fraction. A clamped tap is listed as often as PyTorch reads it, and a tap of
    weight 0 is still listed: PyTorch reads it (an inf there gives NaN)."""
    dst = np.arange(out, dtype=np.float32)
    if align_corners:
        src = dst * (np.float32((size - 1) / (out - 1)) if out > 1 else np.float32(0.0))
    else:
        s = np.float32(1.0 / scale) if scale is not None else np.float32(size / out)
        src = (dst + np.float32(0.5)) * s - np.float32(0.5)
    i0 = np.minimum(np.floor(src).astype(np.int64), size - 1)
    t = np.clip(src - i0.astype(np.float32), 0, 1).astype(np.float32)
    index = np.stack([np.clip(i0 - 1 + k, 0, size - 1) for k in range(4)], axis=1)
    weight = np.stack([w.astype(np.float32) for w in cubic_weights(np, t)], axis=1)
    return index, weight


def _antialias_taps(size: int, out: int, scale: float | None, align_corners: bool,
                    cubic: bool) -> tuple[np.ndarray, np.ndarray]:
    """(index, weight), both (out, K): the taps of antialiased bilinear / bicubic resizing
    along one axis (PyTorch's ``antialias=True``, Pillow's resampling). The filter (the
    triangle, or Keys' cubic with a = -0.5) is stretched by the scale r when shrinking
    (r > 1), so each output averages every input it covers; the weights of each output sum
    to 1. An axis that keeps its size is copied, as PyTorch does."""
    if size == out:
        return np.arange(out)[:, None], np.ones((out, 1), np.float32)
    if align_corners:
        r = (size - 1) / (out - 1) if out > 1 else 0.0
    else:
        r = 1.0 / scale if scale is not None else size / out
    support = (2.0 if cubic else 1.0) * max(r, 1.0)
    invscale = 1.0 / r if r >= 1.0 else 1.0
    center = r * (np.arange(out) + 0.5)
    lo = np.maximum((center - support + 0.5).astype(np.int64), 0)
    hi = np.minimum((center + support + 0.5).astype(np.int64), size)
    index = lo[:, None] + np.arange(max(int((hi - lo).max()), 1))
    d = np.abs((index - center[:, None] + 0.5) * invscale)
    if cubic:
        a = -0.5
        w = np.where(d < 1, ((a + 2) * d - (a + 3)) * d * d + 1,
                     np.where(d < 2, (((d - 5) * d + 8) * d - 4) * a, 0.0))
    else:
        w = np.maximum(1.0 - d, 0.0)
    inside = index < hi[:, None]
    w = np.where(inside, w, 0.0)
    total = w.sum(axis=1, keepdims=True)
    w = w / np.where(total == 0, 1.0, total)
    return np.where(inside, index, size), w.astype(np.float32)


# ------------------------------------------------------------------ separable products and taps
#
# A tap table (index, weight), both (out, K), lists the input positions output o reads along
# one axis (index[o, k]) and the weights it reads them with; an index equal to the axis size
# is padding (a row with fewer than K taps) and reads zero.

def taps_matrix(index: np.ndarray, weight: np.ndarray, size: int) -> np.ndarray:
    """The (out, size) float32 matrix of a tap table: the weights of repeated taps add up."""
    out, width = index.shape
    m = np.zeros((out, size + 1), np.float32)  # the last column takes the padding
    rows = np.arange(out)
    for k in range(width):
        np.add.at(m, (rows, index[:, k]), weight[:, k].astype(np.float32))
    return m[:, :size]


def transpose_taps(index: np.ndarray, weight: np.ndarray,
                   size: int) -> tuple[np.ndarray, np.ndarray]:
    """The table of the transposed map: for each input position, the outputs that read it
    (one entry per tap, so a position read twice by one output is listed twice) and the
    weights; (size, K') with K' the most readers of one position, padded with index = out."""
    out = index.shape[0]
    o, k = np.nonzero(index < size)
    src = index[o, k]
    order = np.argsort(src, kind="stable")
    src, o, w = src[order], o[order], weight[o, k][order]
    counts = np.bincount(src, minlength=size)
    t_index = np.full((size, max(int(counts.max(initial=0)), 1)), out, np.int64)
    t_weight = np.zeros(t_index.shape, np.float32)
    slot = np.arange(src.size) - np.repeat(np.cumsum(counts) - counts, counts)
    t_index[src, slot], t_weight[src, slot] = o, w
    return t_index, t_weight


def _apply_taps(xp, a, index, weight, axis: int):
    """sum_k weight[o, k] * a[..., index[o, k], ...] along ``axis``: each product formed on
    its own, so a non-finite input reaches exactly the outputs that list it as a tap."""
    index = xp.asarray(index)
    if int(index.max()) >= a.shape[axis]:  # padding taps read an appended slice of zeros
        pad = list(a.shape)
        pad[axis] = 1
        a = xp.concatenate([a, xp.zeros(pad, a.dtype)], axis=axis)
    g = xp.take(a, index, axis=axis)  # (..., out, K, ...)
    w = xp.asarray(weight).reshape(weight.shape + (1,) * (a.ndim - axis - 1))
    return (g * w).sum(axis=axis + 1)


def separable(xp, a, left, right, taps):
    """left @ plane @ right.T for each (rows, cols) plane of ``a`` (..., rows, cols).

    The matmuls give the planes of finite values. A non-finite value would meet the
    zeros of the dense matrices there (0 * inf = NaN) and spread over its whole plane, so
    the planes that hold one are computed again from the tap tables (``taps()`` returns
    (left's, right's); it runs only then), where it reaches only the outputs that read it.
    """
    lead, (rows, cols) = a.shape[:-2], a.shape[-2:]
    planes = a.reshape((int(np.prod(lead)), rows, cols))
    n = planes.shape[0]
    with np.errstate(invalid="ignore"):  # NaN from inf * 0 is part of the result, not a slip
        t = xp.matmul(planes.reshape(n * rows, cols), right.T).reshape(n, rows, right.shape[0])
        y = xp.matmul(left, t)
        if n and not bool(xp.isfinite(planes).all()):
            bad = xp.flatnonzero(~xp.isfinite(planes).reshape(n, -1).all(axis=1))
            left_taps, right_taps = taps()
            y[bad] = _apply_taps(xp, _apply_taps(xp, planes[bad], *right_taps, axis=2),
                                 *left_taps, axis=1).astype(y.dtype, copy=False)
    return y.reshape(lead + y.shape[1:])


def separable_transpose(xp, dy, left, right, taps, sizes):
    """The adjoint of :func:`separable` (left.T @ plane @ right per plane of ``dy``), for
    input planes of ``sizes`` = (rows, cols)."""
    def transposed():
        (lt, rt), (rows, cols) = taps(), sizes
        return transpose_taps(*lt, rows), transpose_taps(*rt, cols)
    return separable(xp, dy, left.T, right.T, transposed)


class SeparableResize(Function):
    """y = ah x aw^T per (H, W) plane, for (OH, H) and (OW, W) matrices; ``taps`` are the two
    axes' tap tables (the planes with a non-finite value run on them: :func:`separable`).

    With identity matrices (bicubic to the input's own size, no scale factor) the backward
    copies dy, as PyTorch's does. That is the transpose of the identity too, but the tap
    tables list the three taps of weight 0 beside each input, through which an inf in dy
    would become NaN in its neighbours; PyTorch's copy keeps it where it is."""

    double_backward = "linear"

    def forward(self, x, ah, aw, taps):
        xp = self.xp
        self.identity = all(m.shape[0] == m.shape[1] and np.array_equal(m, np.eye(len(m)))
                            for m in (ah, aw))
        self.ah, self.aw, self.taps = xp.asarray(ah), xp.asarray(aw), taps
        self.x_hw = x.shape[2:]
        return separable(xp, contiguous(xp, x), self.ah, self.aw, lambda: self.taps)

    def backward(self, dy):
        if self.identity:
            return self.xp.array(dy, dtype=np.float32, order="C", copy=True), None, None
        return (separable_transpose(self.xp, dy, self.ah, self.aw, lambda: self.taps,
                                    self.x_hw), None, None)


class Resize2d(Function):
    """y[oh, ow] interpolated from the source rows and columns of the tables above."""

    double_backward = "linear"

    def forward(self, x, rows, cols):
        self.x_shape, self.tables = x.shape, rows + cols
        return self.kernels.interpolate_forward(contiguous(self.xp, x), *self.tables)

    def backward(self, dy):
        return (self.kernels.interpolate_backward(contiguous(self.xp, dy), self.x_shape,
                                                  *self.tables), None, None)


def _resize3d(op, x, mode, out, scales, align_corners):
    """Nearest, nearest-exact or trilinear resizing of (N, C, D, H, W) ``x`` to ``out``
    (OD, OH, OW): each depth slice's (H, W) plane, then the depth, through Resize2d."""
    kind = "bilinear" if mode == "trilinear" else mode
    N, C, D, H, W = x.shape
    OD, OH, OW = out
    depth, rows, cols = (_source_index(kind, n, o, s, align_corners)
                         for n, o, s in zip((D, H, W), out, scales))
    check_allocation(op, (N, C, D, OH, OW), what="the intermediate (H, W)-resized volume")
    planes = Resize2d.apply(x.reshape(N, C * D, H, W), rows, cols)
    # every column kept: the kernels copy an axis whose size does not change
    keep = (np.arange(OH * OW, dtype=np.int64),
            None if depth[1] is None else np.zeros(OH * OW, np.float32))
    y = Resize2d.apply(planes.reshape(N, C, D, OH * OW), depth, keep)
    return y.reshape(N, C, OD, OH, OW)


def _output_size(op, x, size, scale_factor, recompute_scale_factor):
    """(output size, scales to map back with or None per axis) for the spatial dims."""
    spatial = x.shape[2:]
    k = len(spatial)
    if size is None and scale_factor is None:
        raise ArgumentError(f"{op}: either size or scale_factor should be defined")
    if size is not None and scale_factor is not None:
        raise ArgumentError(f"{op}: only one of size or scale_factor should be defined")
    if size is not None:
        if recompute_scale_factor:
            raise ArgumentError(f"{op}: recompute_scale_factor is not meaningful with an explicit "
                                "size.")
        sizes = (size,) * k if isinstance(size, (int, np.integer, float)) else (
            tuple(size) if isinstance(size, (tuple, list)) else (size,))
        if len(sizes) != k or any(isinstance(s, bool) or not isinstance(s, (int, np.integer))
                                  or s < 1 for s in sizes):
            raise ArgumentError(f"{op}: size must be a positive int or {k} positive ints for input "
                                f"of shape {x.shape}, got {size!r}")
        check_allocation(op, x.shape[:2] + tuple(sizes))
        return tuple(int(s) for s in sizes), (None,) * k
    scales = (scale_factor,) * k if isinstance(scale_factor, (int, float)) else (
        tuple(scale_factor) if isinstance(scale_factor, (tuple, list)) else (scale_factor,))
    if len(scales) != k or any(isinstance(s, bool) or not isinstance(s, (int, float))
                               or not 0 < s < math.inf for s in scales):
        raise ArgumentError(f"{op}: scale_factor must be a finite positive number or {k} of them "
                            f"for input of shape {x.shape}, got {scale_factor!r}")
    out = tuple(math.floor(float(n) * float(s)) for n, s in zip(spatial, scales))
    if min(out) < 1:
        raise ArgumentError(f"{op}: scale_factor {scale_factor} gives an empty output for input "
                            f"of shape {x.shape}")
    check_allocation(op, x.shape[:2] + out)
    return out, ((None,) * k if recompute_scale_factor else tuple(float(s) for s in scales))


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resize (N, C, H, W) input, (N, C, L) input (nearest, nearest-exact, linear, area) or
    (N, C, D, H, W) input (nearest, nearest-exact, trilinear, area) to ``size`` or by
    ``scale_factor``, as PyTorch's ``interpolate``.

    Modes (output position i, input size S, output size O, scale r = S / O, or
    1 / scale_factor when a scale factor is given and ``recompute_scale_factor`` is not
    set):
        nearest: x[min(floor(i * r), S - 1)]  (PyTorch's "nearest", not pixel-centred)
        nearest-exact: x[min(floor((i + 0.5) * r), S - 1)]
        bilinear (4-D only): linear along each axis from source position
            max((i + 0.5) * r - 0.5, 0), or i * (S - 1) / (O - 1) with align_corners=True
        linear (3-D only): the same along L
        trilinear (5-D only): the same along D, H and W
        bicubic (4-D only): Keys' cubic convolution (a = -0.75, as PyTorch; Keys 1981,
            "Cubic convolution interpolation for digital image processing") along each
            axis over the taps floor(p) - 1 .. floor(p) + 2 of source position
            p = (i + 0.5) * r - 0.5 (not clamped at 0), or i * (S - 1) / (O - 1) with
            align_corners=True; taps outside the input read its border pixel.
        area: adaptive average pooling to the output size.
    With nearest, linear, bilinear and trilinear an axis whose size does not change is
    copied.

    Args:
        size: an int or one int per spatial dim.
        scale_factor: a number or one per spatial dim; output = floor(input * scale).
        align_corners: only for linear, bilinear, bicubic and trilinear (default False); an
            error for the others.
        recompute_scale_factor: with True, map back with S / O instead of 1 / scale_factor.
        antialias: with bilinear or bicubic (4-D input), filter as PyTorch's
            ``antialias=True`` when shrinking: the triangle or cubic (a = -0.5) filter is
            widened by the scale so that each output averages all the inputs it covers
            (Pillow's resampling); when enlarging, bilinear is unchanged and bicubic uses
            a = -0.5. An axis that keeps its size is copied.
    """
    op = "interpolate"
    float_tensor(input, "input", op)
    if mode not in MODES:
        raise NotImplementedError(f"{op}: mode {mode!r} is not supported by fastconv; "
                                  f"supported: {', '.join(MODES)}")
    if mode in ("nearest", "nearest-exact", "area") and align_corners is not None:
        raise ArgumentError("align_corners option can only be set with the interpolating modes: "
                            "linear | bilinear | bicubic | trilinear")
    if antialias and (mode not in ("bilinear", "bicubic") or input.ndim != 4):
        raise ArgumentError(f"{op}: antialias=True is supported for the bilinear and bicubic "
                            f"modes on a 4-D input, got mode {mode!r} and shape {input.shape}")
    want = {"bilinear": (4,), "bicubic": (4,), "linear": (3,), "trilinear": (5,)}.get(
        mode, (3, 4, 5))
    if input.ndim not in want:
        dims = {(4,): "H, W", (3,): "L", (5,): "D, H, W"}.get(want, "[[D,] H,] W")
        raise ArgumentError(f"{op}: mode {mode!r} needs a {' or '.join(f'{n}-D' for n in want)} "
                            f"input (N, C, {dims}), got shape {input.shape}")
    if mode != "area":  # torch's resizing kernels (area's adaptive pools check for themselves)
        nonempty(input, "input", op, 1)
    out, scales = _output_size(op, input, size, scale_factor, recompute_scale_factor)
    x = input
    if input.ndim == 3:  # (N, C, L) runs as (N, C, 1, L)
        x = input.reshape(input.shape[0], input.shape[1], 1, input.shape[2])
        out, scales = (1,) + out, (None,) + scales
    if mode == "area" and input.ndim == 5:
        from fastconv.ops.three_d import adaptive_avg_pool3d

        y = adaptive_avg_pool3d(x, out)
    elif mode == "area":
        from fastconv.ops.pool import adaptive_avg_pool2d

        y = adaptive_avg_pool2d(x, out)
    elif input.ndim == 5:
        y = _resize3d(op, x, mode, out, scales, bool(align_corners))
    elif antialias:
        th, tw = (_antialias_taps(x.shape[2 + i], out[i], scales[i], bool(align_corners),
                                  mode == "bicubic") for i in range(2))
        y = SeparableResize.apply(x, taps_matrix(*th, x.shape[2]), taps_matrix(*tw, x.shape[3]),
                                  taps=(th, tw))
    elif mode == "bicubic":
        th = _cubic_taps(x.shape[2], out[0], scales[0], bool(align_corners))
        tw = _cubic_taps(x.shape[3], out[1], scales[1], bool(align_corners))
        y = SeparableResize.apply(x, taps_matrix(*th, x.shape[2]), taps_matrix(*tw, x.shape[3]),
                                  taps=(th, tw))
    else:
        H, W = x.shape[2:]
        kind = "bilinear" if mode == "linear" else mode  # linear: bilinear on a 1-row plane
        rows = _source_index(kind, H, out[0], scales[0], bool(align_corners))
        cols = _source_index(kind, W, out[1], scales[1], bool(align_corners))
        y = Resize2d.apply(x, rows, cols)
    return y.reshape(input.shape[:2] + out[1:]) if input.ndim == 3 else y
