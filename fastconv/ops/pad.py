"""Padding: constant (negative amounts crop), reflect, replicate and circular.

Array code on the backend's array module (NumPy or CuPy). Constant padding is one slice
copy each way. The other modes take, per padded dim, an index array mapping each output
position to its input position; the gradient is the interior slice plus the few border
columns added back onto the positions they copied (a loop over the pad widths, never over
pixels).
"""

from __future__ import annotations

import numpy as np

from fastconv.function import Function
from fastconv.ops.validate import float_tensor

MODES = ("constant", "reflect", "replicate", "circular")


def _source_index(mode: str, size: int, before: int, after: int) -> np.ndarray:
    """For each of the ``before + size + after`` output positions, the input position it
    copies."""
    j = np.arange(-before, size + after)
    if mode == "reflect":  # mirror without repeating the edge: -1 -> 1, size -> size - 2
        period = 2 * (size - 1)
        j = np.abs(j) % period if period else np.zeros_like(j)
        return np.where(j >= size, period - j, j)
    if mode == "replicate":
        return np.clip(j, 0, size - 1)
    return j % size  # circular


class ConstantPad(Function):
    """y = value everywhere, then the (possibly cropped) input copied into its place."""

    def forward(self, x, pads, value):
        xp = self.xp
        shape, src, dst = list(x.shape), [slice(None)] * x.ndim, [slice(None)] * x.ndim
        for d, (before, after) in pads.items():
            n = x.shape[d]
            shape[d] = n + before + after
            src[d] = slice(max(-before, 0), n - max(-after, 0))
            dst[d] = slice(max(before, 0), max(before, 0) + (src[d].stop - src[d].start))
        self.x_shape, self.src, self.dst = x.shape, tuple(src), tuple(dst)
        y = xp.full(shape, value, dtype=x.dtype)
        y[self.dst] = x[self.src]
        return y

    def backward(self, dy):
        dx = self.xp.zeros(self.x_shape, dtype=dy.dtype)
        dx[self.src] = dy[self.dst]
        return dx, None, None


class IndexPad(Function):
    """Reflect, replicate or circular padding: y = x gathered through one index array per
    padded dim."""

    def forward(self, x, pads, mode):
        xp = self.xp
        self.steps = []
        y = x
        for d, (before, after) in pads.items():
            idx = _source_index(mode, x.shape[d], before, after)
            self.steps.append((d, idx, before, x.shape[d]))
            y = xp.take(y, xp.asarray(idx), axis=d)
        return xp.ascontiguousarray(y)

    def backward(self, dy):
        xp = self.xp
        g = dy
        for d, idx, before, size in reversed(self.steps):
            g = xp.moveaxis(g, d, -1)
            dx = g[..., before:before + size].copy()
            for j in list(range(before)) + list(range(before + size, len(idx))):
                dx[..., int(idx[j])] += g[..., j]
            g = xp.moveaxis(dx, -1, d)
        return xp.ascontiguousarray(g), None, None


def pad(input, pad, mode="constant", value=None):
    """Pad (or, with negative amounts in constant mode, crop) the last dims of ``input``.

    ``pad`` lists amounts from the last dim backwards, as PyTorch:
    (left, right) pads the last dim, (left, right, top, bottom) the last two, and so on.

    Modes:
        constant: fill with ``value`` (default 0); any number of dims; negative amounts crop.
        reflect: mirror without repeating the edge (x[1], x[0] | x[0] ... | x[-1], x[-2]);
            each amount below the dim's size.
        replicate: repeat the edge value.
        circular: wrap around (x[-p:] | x | x[:p]); each amount at most the dim's size.
    The non-constant modes pad the last 1, 2 or 3 dims of a 2-4-D, 3-4-D or 4-5-D input
    (one batch dim optional, as in PyTorch) and take no negative amounts in fastconv.
    """
    op = "pad"
    float_tensor(input, "input", op)
    if not isinstance(pad, (tuple, list)) or len(pad) % 2 or any(
            isinstance(p, bool) or not isinstance(p, (int, np.integer)) for p in pad):
        raise TypeError(f"{op}: pad must be a tuple of ints of even length (left, right, top, "
                        f"bottom, ...), got {pad!r}")
    if mode not in MODES:
        raise NotImplementedError(f"{op}: mode must be one of {', '.join(MODES)}, got {mode!r}")
    k = len(pad) // 2
    if k > input.ndim:
        raise ValueError(f"{op}: padding length {len(pad)} is too large for input of shape "
                         f"{input.shape} (at most 2 * {input.ndim})")
    pads = {input.ndim - 1 - i: (int(pad[2 * i]), int(pad[2 * i + 1])) for i in range(k)}
    if mode == "constant":
        for d, (before, after) in pads.items():
            if input.shape[d] + before + after < 0:
                raise ValueError(f"{op}: padding {pad} crops dim {d} of input {input.shape} "
                                 "below size 0")
        return ConstantPad.apply(input, pads, 0.0 if value is None else float(value))
    if value not in (None, 0, 0.0):
        raise ValueError(f"{op}: padding mode {mode!r} doesn't take in value argument")
    if k not in (1, 2, 3) or input.ndim not in (k + 1, k + 2):
        raise ValueError(f"{op}: {mode} padding of the last {k} dim(s) needs a {k + 1}-D or "
                         f"{k + 2}-D input, got shape {input.shape}")
    for d, (before, after) in pads.items():
        n = input.shape[d]
        if before < 0 or after < 0:
            raise ValueError(f"{op}: {mode} padding takes no negative amounts in fastconv, got "
                             f"{pad}")
        if mode == "reflect" and max(before, after) >= n:
            raise ValueError(f"{op}: padding size should be less than the corresponding input "
                             f"dimension, but got padding ({before}, {after}) at dim {d} of "
                             f"input {input.shape}")
        if mode == "circular" and max(before, after) > n:
            raise ValueError(f"{op}: circular padding ({before}, {after}) at dim {d} is larger "
                             f"than that dim of input {input.shape}")
        if mode == "replicate" and n == 0 and before + after:
            raise ValueError(f"{op}: cannot replicate an empty dim {d} of input {input.shape}")
    return IndexPad.apply(input, pads, mode)
