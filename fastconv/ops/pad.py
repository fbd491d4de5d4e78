"""Padding: constant (negative amounts crop), reflect, replicate and circular.

Every mode is a gather through one index table per padded dim: output position o along a
dim reads the input position the mode maps it to (:func:`_source_index`), or the constant
value where that is -1. The backend kernels (csrc/pad.cpp, fastconv/cuda/pad.cu) take the
tables, so the modes' rules live only here; the gradient adds each output's dy back onto
the position it read.
"""

from __future__ import annotations

import numpy as np

from fastconv.function import Function
from fastconv.ops.validate import (
    ArgumentError,
    check_allocation,
    contiguous,
    float_tensor,
    nonempty,
)

MODES = ("constant", "reflect", "replicate", "circular")


def _source_index(mode: str, size: int, before: int, after: int) -> np.ndarray:
    """For each of the ``before + size + after`` output positions, the input position it
    copies (int64), or -1 for the constant value. Negative amounts crop: in constant, reflect
    and replicate mode the padded input is cropped, in circular mode the cropped input is
    wrapped (torch's orders)."""
    if mode == "circular":
        lo, hi = max(-before, 0), size - max(-after, 0)  # the input kept
        j = np.arange(-max(before, 0), hi - lo + max(after, 0), dtype=np.int64)
        return j % (hi - lo) + lo if j.size else j
    j = np.arange(-before, size + after, dtype=np.int64)
    if mode == "constant":
        return np.where((j >= 0) & (j < size), j, -1)
    if mode == "reflect":  # mirror without repeating the edge: -1 -> 1, size -> size - 2
        period = 2 * (size - 1)
        j = np.abs(j) % period if period else np.zeros_like(j)
        return np.where(j >= size, period - j, j)
    if mode == "replicate":
        return np.clip(j, 0, size - 1)
    return j % size  # circular


class Pad(Function):
    """y = x gathered through one index table per padded dim (None: the dim is kept)."""

    def forward(self, x, index, value):
        self.x_shape, self.index = x.shape, index
        return self.kernels.pad_forward(contiguous(self.xp, x), index, value)

    def backward(self, dy):
        return (self.kernels.pad_backward(contiguous(self.xp, dy), self.x_shape, self.index),
                None, None)

    def backward_graph(self, dy):
        # linear in x but for the fill value: the adjoint of the backward pads with zeros
        from fastconv.double_backward import AdjointPair, node_backward

        def pad_with_zeros(g):
            return self.kernels.pad_forward(contiguous(self.xp, g), self.index, 0.0)

        return AdjointPair.apply(dy, node_backward(self), pad_with_zeros), None, None


def _pad(x, pads, mode, value):
    check_allocation("pad", [n + sum(pads.get(d, (0, 0))) for d, n in enumerate(x.shape)])
    index = [None] * x.ndim
    for d, (before, after) in pads.items():
        if before or after:
            index[d] = _source_index(mode, x.shape[d], before, after)
    if x.ndim == 0:  # nothing to pad: the kernels see a 1-element vector
        return Pad.apply(x.reshape(1), [None], value).reshape(())
    return Pad.apply(x, tuple(index), value)


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
    (one batch dim optional, as in PyTorch). Negative amounts crop there too: reflect and
    replicate pad first and crop the result, circular crops first and wraps the rest, as
    PyTorch.
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
        raise ArgumentError(f"{op}: padding length {len(pad)} is too large for input of shape "
                            f"{input.shape} (at most 2 * {input.ndim})")
    pads = {input.ndim - 1 - i: (int(pad[2 * i]), int(pad[2 * i + 1])) for i in range(k)}
    if mode == "constant":
        for d, (before, after) in pads.items():
            if input.shape[d] + before + after < 0:
                raise ArgumentError(f"{op}: padding {pad} crops dim {d} of input {input.shape} "
                                    "below size 0")
        return _pad(input, pads, mode, 0.0 if value is None else float(value))
    if value not in (None, 0, 0.0):
        raise ArgumentError(f"{op}: padding mode {mode!r} doesn't take in value argument")
    if k not in (1, 2, 3) or input.ndim not in (k + 1, k + 2):
        raise ArgumentError(f"{op}: {mode} padding of the last {k} dim(s) needs a {k + 1}-D or "
                            f"{k + 2}-D input, got shape {input.shape}")
    if mode in ("reflect", "replicate"):  # torch's take no empty plane nor channel list
        nonempty(input, "input", op, input.ndim - k - 1)
    for d, (before, after) in pads.items():
        n = input.shape[d]
        out = n + before + after
        if out < 0:
            raise ArgumentError(f"{op}: padding ({before}, {after}) crops dim {d} of input "
                                f"{input.shape} below size 0")
        kept = n - max(-before, 0) - max(-after, 0)
        if mode == "circular" and out and max(before, after) > kept:
            # torch reads uninitialised memory here (and its gradient is wrong)
            raise ArgumentError(f"{op}: circular padding ({before}, {after}) at dim {d} wraps "
                                f"around more than once the {max(kept, 0)} positions its "
                                f"negative amount leaves of input {input.shape}")
        if mode == "reflect" and max(before, after) >= n:
            raise ArgumentError(f"{op}: padding size should be less than the corresponding input "
                                f"dimension, but got padding ({before}, {after}) at dim {d} of "
                                f"input {input.shape}")
        if mode == "circular" and max(before, after) > n:
            raise ArgumentError(f"{op}: circular padding ({before}, {after}) at dim {d} is larger "
                                f"than that dim of input {input.shape}")
        if mode == "replicate" and n == 0 and before + after:
            raise ArgumentError(f"{op}: cannot replicate an empty dim {d} of input {input.shape}")
    return _pad(input, pads, mode, 0.0)
