"""Spatial transformers: ``affine_grid`` (sampling positions of an affine map) and
``grid_sample`` (the input read at those positions), as torch's, with gradients for the
input, the grid and theta.

Positions are normalised: -1 and 1 are the left/top and right/bottom edges, meaning the
centres of the corner pixels with ``align_corners=True`` and their outer edges with False.
:func:`_unnormalise` maps them to pixel coordinates and applies the padding mode (the only
place modes are interpreted), returning with each coordinate its derivative with respect
to the grid value, which the grid's gradient needs. Sampling gathers the 16 (bicubic), 4
(bilinear) or 1 (nearest) neighbours of each position with array indexing; the input
gradient scatters back with ``add.at`` (NumPy) or ``cupyx.scatter_add`` (CuPy).

Bicubic differs in where the padding mode applies, as in torch: the position is only
unnormalised, and each of its 16 taps (floor(p) - 1 .. floor(p) + 2 along each axis) is
mapped by the padding mode on its own (:func:`_tap_index`): zeros reads 0 outside, border
clamps the tap, reflection reflects it and then clamps. The weights are Keys' cubic
convolution with a = -0.75 (``upsample.cubic_weights``), so the grid gradient is the
derivative of those weights times the unnormalising scale.

Non-finite positions follow torch's CPU kernels. Clamping maps NaN to 0 (+inf to the last
pixel, -inf to 0), so with "border" a NaN or -inf position reads pixel 0 and +inf the last
one, and with "reflection" (whose reflection of +-inf is NaN) every non-finite position
reads pixel 0; there the position is a constant to the gradient, as clamped positions are.
(torch's own backward computes such positions without the clamp and indexes memory with
the overflowed integer: it crashes or returns garbage, so it cannot be the reference there.)
With "zeros" every tap of a non-finite position is outside the input and reads 0, but its
weights are NaN, and a weight times a value of 0 is NaN: the output is NaN, as torch's.
Bicubic weights come from the unclamped position, so a non-finite position gives NaN with
every padding mode; its taps are placed by the padding mode as above, so the input gradient
is NaN at the taps it reads.
"""

from __future__ import annotations

import numpy as np

from fastconv.function import Function
from fastconv.ops.upsample import cubic_weights, cubic_weights_grad
from fastconv.ops.validate import ArgumentError, check_allocation, contiguous, float_tensor

MODES = ("bilinear", "nearest", "bicubic")
PADDING_MODES = ("zeros", "border", "reflection")


def _reflect(xp, coord, twice_low: int, twice_high: int):
    """Reflect ``coord`` into [twice_low / 2, twice_high / 2] (torch's reflect_coordinates)
    and the sign of d(result)/d(coord)."""
    if twice_low == twice_high:
        return xp.zeros_like(coord), xp.zeros_like(coord)
    low, span = twice_low / 2, (twice_high - twice_low) / 2
    shifted = coord - low
    sign = xp.where(shifted < 0, -1.0, 1.0).astype(np.float32)
    shifted = xp.abs(shifted)
    extra = xp.fmod(shifted, span)
    flips = xp.floor(shifted / span)
    even = (flips % 2) == 0
    out = xp.where(even, extra + low, span - extra + low)
    return out.astype(np.float32), xp.where(even, sign, -sign).astype(np.float32)


def _clamp(xp, coord, size: int):
    """``coord`` clamped to [0, size - 1] as torch's clip_coordinates: NaN becomes 0."""
    return xp.where(coord > 0, xp.minimum(coord, np.float32(size - 1)),
                    np.float32(0)).astype(np.float32)


def _index(xp, coord):
    """Integer pixel coordinates of whole-valued float ``coord``. A non-finite or huge one
    (only reachable with "zeros" padding, where it reads 0) becomes -8, outside the input
    for every tap of it (bicubic reads up to 2 pixels either side), and casting it never
    sees a value beyond int64."""
    return xp.where(xp.abs(coord) < np.float32(2 ** 30), coord, np.float32(-8)).astype(np.int64)


def _unnormalise(xp, g, size: int, align_corners: bool, padding_mode: str):
    """Pixel coordinates of normalised positions ``g`` along an axis of ``size`` pixels, with
    d(coordinate)/d(g)."""
    if align_corners:
        scale = (size - 1) / 2
        coord = (g + 1) * np.float32(scale)
    else:
        scale = size / 2
        coord = ((g + 1) * np.float32(size) - 1) / 2
    coord = coord.astype(np.float32)
    slope = xp.full(g.shape, scale, dtype=np.float32)
    if padding_mode == "reflection":
        if align_corners:
            coord, sign = _reflect(xp, coord, 0, 2 * (size - 1))
        else:
            coord, sign = _reflect(xp, coord, -1, 2 * size - 1)
        slope *= sign
    if padding_mode in ("border", "reflection"):
        inside = (coord > 0) & (coord < size - 1)  # False for NaN: a constant once clamped
        coord = _clamp(xp, coord, size)
        slope = xp.where(inside, slope, np.float32(0))
    return coord, slope


def _tap_index(xp, tap, size: int, align_corners: bool, padding_mode: str):
    """A bicubic tap's integer coordinate (as float32) after the padding mode (torch's
    compute_coordinates): border clamps it, reflection reflects then clamps, zeros leaves
    it (out-of-range taps then weigh 0)."""
    if padding_mode == "reflection":
        if align_corners:
            tap, _ = _reflect(xp, tap, 0, 2 * (size - 1))
        else:
            tap, _ = _reflect(xp, tap, -1, 2 * size - 1)
    if padding_mode in ("border", "reflection"):
        tap = _clamp(xp, tap, size)
    return tap


class GridSample(Function):
    def forward(self, x, grid, mode, padding_mode, align_corners):
        xp = self.xp
        x, grid = contiguous(xp, x), contiguous(xp, grid)
        with np.errstate(invalid="ignore"):  # NaN from a non-finite position is the result
            return self._forward(xp, x, grid, mode, padding_mode, align_corners)

    def _forward(self, xp, x, grid, mode, padding_mode, align_corners):
        N, C, H, W = x.shape
        self.shape, self.mode = x.shape, mode
        # bicubic applies the padding mode to each tap, not to the position
        position_padding = "zeros" if mode == "bicubic" else padding_mode
        ix, sx = _unnormalise(xp, grid[..., 0], W, align_corners, position_padding)
        iy, sy = _unnormalise(xp, grid[..., 1], H, align_corners, position_padding)
        batch = xp.arange(N).reshape(N, 1, 1)
        if mode == "nearest":
            # round half to even, as torch's nearbyint
            taps = [(_index(xp, xp.rint(iy)), _index(xp, xp.rint(ix)),
                     xp.ones(ix.shape, np.float32))]
        elif mode == "bicubic":
            x0, y0 = xp.floor(ix), xp.floor(iy)
            tx, ty = (ix - x0).astype(np.float32), (iy - y0).astype(np.float32)
            wx, wy = cubic_weights(xp, tx), cubic_weights(xp, ty)
            cols = [_index(xp, _tap_index(xp, x0 + (j - 1), W, align_corners, padding_mode))
                    for j in range(4)]
            rows = [_index(xp, _tap_index(xp, y0 + (i - 1), H, align_corners, padding_mode))
                    for i in range(4)]
            taps = [(rows[i], cols[j], wy[i] * wx[j]) for i in range(4) for j in range(4)]
            self.parts = (tx, ty, wx, wy, sx, sy)
        else:
            x0, y0 = xp.floor(ix), xp.floor(iy)
            wx1, wy1 = ix - x0, iy - y0
            x0, y0 = _index(xp, x0), _index(xp, y0)
            taps = [(y0, x0, (1 - wy1) * (1 - wx1)), (y0, x0 + 1, (1 - wy1) * wx1),
                    (y0 + 1, x0, wy1 * (1 - wx1)), (y0 + 1, x0 + 1, wy1 * wx1)]
            self.parts = (wx1, wy1, sx, sy)
        planes = x.transpose(0, 2, 3, 1)  # (N, H, W, C): one gather reads a pixel's channels
        y = xp.zeros(grid.shape[:3] + (C,), np.float32)
        self.taps = []
        for yy, xx, w in taps:
            ok = (yy >= 0) & (yy < H) & (xx >= 0) & (xx < W)
            yc, xc = xp.clip(yy, 0, H - 1), xp.clip(xx, 0, W - 1)
            # an out-of-bounds tap reads 0, still times its weight (NaN at a non-finite
            # position, as torch's); the input gradient skips it
            v = xp.where(ok[..., None], planes[batch, yc, xc], np.float32(0))
            y += w.astype(np.float32)[..., None] * v
            self.taps.append(((batch * H + yc) * W + xc,
                              xp.where(ok, w, np.float32(0)).astype(np.float32), v))
        return xp.ascontiguousarray(y.transpose(0, 3, 1, 2))

    def backward(self, dy):
        with np.errstate(invalid="ignore"):
            return self._backward(dy)

    def _backward(self, dy):
        xp = self.xp
        N, C, H, W = self.shape
        dyc = dy.transpose(0, 2, 3, 1)  # (N, Ho, Wo, C)
        dx = dgrid = None
        if self.needs_input_grad[0]:
            acc = xp.zeros((N * H * W, C), np.float32)
            for flat, w, _ in self.taps:
                contrib = (w[..., None] * dyc).reshape(flat.size, C)  # (C may be 0)
                if xp is np:
                    np.add.at(acc, flat.reshape(-1), contrib)
                else:
                    import cupyx

                    cupyx.scatter_add(acc, flat.reshape(-1), contrib)
            dx = xp.ascontiguousarray(acc.reshape(N, H, W, C).transpose(0, 3, 1, 2))
        if self.needs_input_grad[1]:
            dgrid = xp.zeros(dyc.shape[:3] + (2,), np.float32)
            if self.mode == "bilinear":
                wx1, wy1, sx, sy = self.parts
                (_, _, v00), (_, _, v01), (_, _, v10), (_, _, v11) = self.taps
                # d(out)/d(ix) and d(out)/d(iy) of the bilinear blend, per channel
                gx = ((1 - wy1)[..., None] * (v01 - v00) + wy1[..., None] * (v11 - v10))
                gy = ((1 - wx1)[..., None] * (v10 - v00) + wx1[..., None] * (v11 - v01))
                dgrid[..., 0] = (gx * dyc).sum(-1) * sx
                dgrid[..., 1] = (gy * dyc).sum(-1) * sy
            elif self.mode == "bicubic":
                tx, ty, wx, wy, sx, sy = self.parts
                dwx, dwy = cubic_weights_grad(xp, tx), cubic_weights_grad(xp, ty)
                gx = gy = 0
                for k, (_, _, v) in enumerate(self.taps):
                    i, j = divmod(k, 4)
                    vd = (v * dyc).sum(-1)  # (N, Ho, Wo): the tap's value times dy
                    gx = gx + vd * (wy[i] * dwx[j])
                    gy = gy + vd * (dwy[i] * wx[j])
                dgrid[..., 0] = gx * sx
                dgrid[..., 1] = gy * sy
        return dx, dgrid, None, None, None


def grid_sample(input, grid, mode: str = "bilinear", padding_mode: str = "zeros",
                align_corners=None):
    """torch.nn.functional.grid_sample for (N, C, H, W) input and an (N, Ho, Wo, 2) grid of
    (x, y) positions in [-1, 1] (see the module docstring); modes "bilinear", "nearest" and
    "bicubic" (Keys' cubic convolution, a = -0.75, over the 4x4 neighbours, as torch's),
    padding "zeros", "border" or "reflection". ``align_corners`` defaults to False."""
    op = "grid_sample"
    float_tensor(input, "input", op, (4,))
    float_tensor(grid, "grid", op, (4,))
    if mode not in MODES:
        raise ArgumentError(f"{op}: mode must be one of {MODES}, got {mode!r}")
    if padding_mode not in PADDING_MODES:
        raise ArgumentError(f"{op}: padding_mode must be one of {PADDING_MODES}, got "
                            f"{padding_mode!r}")
    if grid.shape[0] != input.shape[0] or grid.shape[3] != 2:
        raise ArgumentError(f"{op}: grid must be (N, H_out, W_out, 2) with input's batch "
                            f"{input.shape[0]}, got grid {tuple(grid.shape)} for input "
                            f"{tuple(input.shape)}")
    if input.device != grid.device:
        raise RuntimeError(f"{op}: input is on {input.device} and grid on {grid.device}")
    if min(input.shape[2:]) < 1:
        raise ArgumentError(f"{op}: input has an empty spatial dimension: {tuple(input.shape)}")
    return GridSample.apply(input, grid, mode, padding_mode, bool(align_corners))


class AffineGrid(Function):
    def forward(self, theta, H, W, align_corners):
        xp = self.xp

        def axis(n):
            if align_corners:
                return xp.linspace(-1, 1, n, dtype=np.float32) if n > 1 else \
                    xp.zeros(1, np.float32)
            return ((xp.arange(n, dtype=np.float32) * 2 + 1) / n - 1).astype(np.float32)

        ys, xs = xp.meshgrid(axis(H), axis(W), indexing="ij")
        self.base = xp.stack([xs.ravel(), ys.ravel(), xp.ones(H * W, np.float32)], axis=1)
        self.hw = (H, W)
        grid = xp.matmul(self.base[None], contiguous(xp, theta).transpose(0, 2, 1))
        return grid.reshape(theta.shape[0], H, W, 2)

    def backward(self, dgrid):
        N = dgrid.shape[0]
        d = dgrid.reshape(N, -1, 2)
        return self.xp.matmul(d.transpose(0, 2, 1), self.base[None]), None, None, None


def affine_grid(theta, size, align_corners=None):
    """torch.nn.functional.affine_grid: the (N, H, W, 2) sampling grid of the affine maps
    ``theta`` (N, 2, 3) for an output of ``size`` (N, C, H, W)."""
    op = "affine_grid"
    float_tensor(theta, "theta", op, (3,))
    size = tuple(int(s) for s in size)
    if len(size) != 4:
        raise NotImplementedError(f"{op}: only 2-D sizes (N, C, H, W) are supported, got "
                                  f"{size}")
    if tuple(theta.shape) != (size[0], 2, 3):
        raise ArgumentError(f"{op}: expected theta of shape ({size[0]}, 2, 3) for size {size}, "
                            f"got {tuple(theta.shape)}")
    if min(size) < 1:
        raise ArgumentError(f"{op}: expected a non-zero, positive size, got {size}")
    check_allocation(op, (size[0], size[2], size[3], 2))
    return AffineGrid.apply(theta, size[2], size[3], bool(align_corners))
