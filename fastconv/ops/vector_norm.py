"""The vector p-norm over some dims (``Tensor.norm``, ``linalg.vector_norm``), with
PyTorch's gradient: zero where the norm is zero (a zero vector has no direction), shared
equally among the tied entries for the inf / -inf norms."""

from __future__ import annotations

import math

import numpy as np

from fastconv.function import Function


class VectorNorm(Function):
    """(sum |x|^p)^(1/p) over ``dims`` (all dims for ()), for p = 0, +-inf or any other
    real p."""

    def forward(self, a, p, dims, keepdim):
        xp = self.xp
        self.p, self.dims, self.keepdim = p, dims, keepdim
        axis = dims if dims else None
        absa = xp.abs(a)
        if p == math.inf:
            reduced = dims if dims else range(a.ndim)
            if any(a.shape[d] == 0 for d in reduced):  # an empty max: 0 (callers may refuse it)
                n = xp.zeros([1 if d in reduced else s for d, s in enumerate(a.shape)], a.dtype)
            else:
                n = absa.max(axis=axis, keepdims=True)
        elif p == -math.inf:
            n = absa.min(axis=axis, keepdims=True)
        elif p == 0:
            n = (a != 0).sum(axis=axis, keepdims=True).astype(a.dtype)
        elif p == 1:
            n = absa.sum(axis=axis, keepdims=True)
        elif p == 2:
            n = xp.sqrt((a * a).sum(axis=axis, keepdims=True))
        else:
            with np.errstate(divide="ignore"):
                n = ((absa ** p).sum(axis=axis, keepdims=True)) ** (1.0 / p)
        self.save_for_backward(a, n)
        n = n.astype(a.dtype, copy=False)
        return n if keepdim else n.reshape(_reduced_shape(a.shape, dims))

    def backward_graph(self, dy):
        a, p, dims, keepdim = self.parents
        if p in (math.inf, -math.inf):
            from fastconv.double_backward import backward_graph

            return backward_graph(self, dy)  # refuses, naming the op
        if p == 0:
            return dy.sum() * 0.0 * a, None, None, None
        n = VectorNorm.apply(a, p, dims, True)
        dy = dy.reshape(n.shape)
        if p == 2:  # a zero vector gets 0, as in backward
            return dy * a / (n + (n == 0).float()), None, None, None
        return (dy * a.sign() * (a.abs() / n) ** (p - 1)), None, None, None

    def backward(self, dy):
        xp = self.xp
        a, n = self.saved
        dy = dy.reshape(n.shape)  # keepdim layout, broadcast against a
        p = self.p
        with np.errstate(divide="ignore", invalid="ignore"):
            if p == 0:
                dx = xp.zeros_like(a)
            elif p == 1:
                dx = dy * xp.sign(a)
            elif p in (math.inf, -math.inf):
                tied = (xp.abs(a) == n).astype(a.dtype)
                count = tied.sum(axis=self.dims or None, keepdims=True)
                dx = dy * xp.sign(a) * tied / count
            elif p == 2:
                dx = xp.where(n == 0, 0, dy * a / n)
            else:
                dx = xp.where((n == 0) | (a == 0), 0,
                              dy * xp.sign(a) * xp.abs(a) ** (p - 1) / n ** (p - 1))
        return dx.astype(a.dtype, copy=False), None, None, None


def _reduced_shape(shape, dims):
    if not dims:
        return ()
    return tuple(s for d, s in enumerate(shape) if d not in dims)
