"""Fractional max pooling (Graham, 2014, "Fractional Max-Pooling"): a kh x kw maximum over
windows whose starts step by a non-integer stride, drawn pseudo-randomly per sample and
channel, so a plane shrinks by any ratio (e.g. 1/sqrt(2) per layer).

The window starts follow PyTorch's sequence for each axis, from one uniform draw u per
(sample, channel, axis) (``_random_samples[..., 0]`` for the width, ``[..., 1]`` for the
height, as torch's): with alpha = (in - k) / (out - 1), start_i = floor((i + u) alpha) -
floor(u alpha) for i < out - 1 and start_{out-1} = in - k (computed in float32 as torch).
The gradient goes to the first maximum of each window (row-major), as ``max_pool2d``'s.
"""

from __future__ import annotations

import numpy as np

from fastconv.function import Function
from fastconv.ops.pool import _batched, _pool_result
from fastconv.ops.validate import ArgumentError, nonempty, pair


def _starts(xp, u, size: int, out: int, k: int):
    """(N, C, out) int64 window starts along one axis for draws ``u`` (N, C) float32."""
    if out == 1:
        return xp.full(u.shape + (1,), size - k, dtype=np.int64)
    alpha = np.float32(size - k) / np.float32(out - 1)
    i = xp.arange(out - 1, dtype=np.float32)
    u = u.astype(np.float32)[..., None]
    seq = (xp.floor((i + u) * alpha) - xp.floor(u * alpha)).astype(np.int64)
    last = xp.full(u.shape[:-1] + (1,), size - k, dtype=np.int64)
    return xp.concatenate([seq, last], axis=-1)


class FractionalMaxPool2d(Function):
    def forward(self, x, kernel, out, samples, indices_out=None):
        xp = self.xp
        N, C, H, W = x.shape
        kh, kw = kernel
        rows = _starts(xp, samples[..., 1], H, out[0], kh)[..., None] + xp.arange(kh)  # N,C,OH,kh
        cols = _starts(xp, samples[..., 0], W, out[1], kw)[..., None] + xp.arange(kw)  # N,C,OW,kw
        n = xp.arange(N)[:, None, None, None, None, None]
        c = xp.arange(C)[None, :, None, None, None, None]
        r = rows[:, :, :, None, :, None]
        q = cols[:, :, None, :, None, :]
        windows = x[n, c, r, q].reshape(N, C, out[0], out[1], kh * kw)
        best = windows.argmax(axis=-1)
        y = xp.take_along_axis(windows, best[..., None], axis=-1)[..., 0]
        bh, bw = best // kw, best % kw
        n4, c4 = xp.arange(N)[:, None, None, None], xp.arange(C)[None, :, None, None]
        h = rows[n4, c4, xp.arange(out[0])[None, None, :, None], bh]  # (N, C, OH, OW)
        w = cols[n4, c4, xp.arange(out[1])[None, None, None, :], bw]
        self.x_shape, self.flat = x.shape, (h * W + w).astype(np.int64)
        if indices_out is not None:
            indices_out.append(self.flat)
        return xp.ascontiguousarray(y)

    def backward(self, dy):
        xp = self.xp
        N, C, H, W = self.x_shape
        dx = xp.zeros((N, C, H * W), dtype=dy.dtype)
        n = xp.arange(N)[:, None, None, None]
        c = xp.arange(C)[None, :, None, None]
        if xp is np:
            np.add.at(dx, (n, c, self.flat), dy)
        else:
            import cupyx

            cupyx.scatter_add(dx, (n, c, self.flat), dy)
        return dx.reshape(self.x_shape), None, None, None


def fractional_max_pool2d(input, kernel_size, output_size=None, output_ratio=None,
                          return_indices: bool = False, _random_samples=None):
    """Fractional max pooling of (N, C, H, W) or unbatched (C, H, W) input to
    ``output_size`` (an int or (oh, ow)) or ``output_ratio`` times the input size (a float in
    (0, 1) or a pair), with kh x kw windows at pseudo-random fractional strides (see the
    module docstring). ``_random_samples``: the (N, C, 2) uniform draws to use (fresh ones
    from fastconv's generator when None). ``return_indices``: also the flat h * W + w of each
    maximum."""
    from fastconv.random import uniform

    op = "fractional_max_pool2d"
    x, unbatched = _batched(op, input)
    nonempty(input, "input", op, 1)  # torch: dims 1.. (the channels only when batched)
    kernel = pair(kernel_size, "kernel_size", op, 1)
    N, C, H, W = x.shape
    if output_size is None and output_ratio is None:
        raise ArgumentError("fractional_max_pool2d requires specifying either an output_size or "
                            "an output_ratio")
    if output_size is None:
        ratio = (output_ratio, output_ratio) if isinstance(output_ratio, (int, float)) \
            else tuple(output_ratio)
        if len(ratio) != 2 or not all(0 < r < 1 for r in ratio):
            raise ArgumentError(f"{op}: output_ratio must be in (0, 1) (a float or a pair), got "
                                f"{output_ratio!r}")
        out = (int(H * ratio[0]), int(W * ratio[1]))
    else:
        out = pair(output_size, "output_size", op, 1)
    for axis, size, o, k in (("height", H, out[0], kernel[0]), ("width", W, out[1], kernel[1])):
        if o + k - 1 > size:
            raise RuntimeError(f"{op}(): pool {axis} {k} too large relative to input {axis} "
                               f"{size} for output {axis} {o}")
    if _random_samples is None:
        samples = uniform((N, C, 2), x.device)
    else:
        s = _random_samples
        s = s.reshape(1, *s.shape) if unbatched and s.ndim == 2 else s
        if tuple(s.shape) != (N, C, 2):
            raise RuntimeError(f"{op}(): expected _random_samples of shape ({N}, {C}, 2), got "
                               f"{tuple(s.shape)}")
        samples = s.data
    box = [] if return_indices else None
    y = FractionalMaxPool2d.apply(x, kernel, out, samples, indices_out=box)
    return _pool_result(unbatched, y, box[0] if box else None, return_indices)
