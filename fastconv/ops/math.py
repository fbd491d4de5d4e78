"""Elementwise math, reductions, selection and shape ops (PyTorch's tensor methods).

Like :mod:`fastconv.ops.arith`, these are memory-bound array expressions, written once on
the array module of the inputs (``self.xp``: NumPy or CuPy), each backward next to its
forward. Dtype handling (integer promotion, float32 only) happens before ``apply``, in the
Tensor methods; see :mod:`fastconv.dtypes` for the policy.
"""

from __future__ import annotations

import numpy as np

from fastconv.function import Function
from fastconv.ops.arith import _normalise_dims, unbroadcast
from fastconv.ops.validate import contiguous

# ----------------------------------------------------------------------------- elementwise


class Abs(Function):
    def forward(self, a):
        self.save_for_backward(a)
        return self.xp.abs(a)

    def backward(self, dy):
        return dy * self.xp.sign(self.saved[0]).astype(dy.dtype)


class Sqrt(Function):
    def forward(self, a):
        y = self.xp.sqrt(a)
        self.save_for_backward(y)
        return y

    def backward(self, dy):
        return dy / (2 * self.saved[0])


class Sigmoid(Function):
    """On the backend kernels (csrc/activation.cpp, fastconv/cuda/activation.cu)."""

    def forward(self, a):
        y = self.kernels.sigmoid_forward(contiguous(self.xp, a))
        self.save_for_backward(y)
        return y

    def backward(self, dy):
        return self.kernels.sigmoid_backward(self.saved[0], contiguous(self.xp, dy))


class Tanh(Function):
    """On the backend kernels (csrc/activation.cpp, fastconv/cuda/activation.cu)."""

    def forward(self, a):
        y = self.kernels.tanh_forward(contiguous(self.xp, a))
        self.save_for_backward(y)
        return y

    def backward(self, dy):
        return self.kernels.tanh_backward(self.saved[0], contiguous(self.xp, dy))


class Sin(Function):
    def forward(self, a):
        self.save_for_backward(a)
        return self.xp.sin(a)

    def backward(self, dy):
        return dy * self.xp.cos(self.saved[0])


class Cos(Function):
    def forward(self, a):
        self.save_for_backward(a)
        return self.xp.cos(a)

    def backward(self, dy):
        return -dy * self.xp.sin(self.saved[0])


class Clamp(Function):
    """min(max(a, lo), hi) for constant bounds; the gradient passes where lo <= a <= hi
    (both ends included, as in PyTorch)."""

    def forward(self, a, lo, hi):
        self.mask = self.xp.ones(a.shape, dtype=bool)
        if lo is not None:
            self.mask &= a >= lo
        if hi is not None:
            self.mask &= a <= hi
        return self.xp.clip(a, lo, hi).astype(a.dtype, copy=False)

    def backward(self, dy):
        return dy * self.mask, None, None


class Maximum(Function):
    """Elementwise max of two tensors; ties split the gradient in half (as PyTorch)."""

    sign = 1

    def forward(self, a, b):
        self.shapes = (np.shape(a), np.shape(b))
        diff = (a - b) * self.sign
        self.wa = (diff > 0) + 0.5 * (diff == 0)
        return self.xp.maximum(a, b) if self.sign > 0 else self.xp.minimum(a, b)

    def backward(self, dy):
        wa = self.wa.astype(dy.dtype)
        da = unbroadcast(self.xp, dy * wa, self.shapes[0]) if self.needs_input_grad[0] else None
        db = (unbroadcast(self.xp, dy * (1 - wa), self.shapes[1])
              if self.needs_input_grad[1] else None)
        return da, db


class Minimum(Maximum):
    sign = -1


class Where(Function):
    """cond ? a : b with broadcasting; ``cond`` is a constant bool array."""

    def forward(self, cond, a, b):
        self.cond = cond
        self.shapes = (np.shape(a), np.shape(b))
        return self.xp.where(cond, a, b)

    def backward(self, dy):
        xp = self.xp
        zero = xp.zeros((), dtype=dy.dtype)
        da = (unbroadcast(xp, xp.where(self.cond, dy, zero), self.shapes[0])
              if self.needs_input_grad[1] else None)
        db = (unbroadcast(xp, xp.where(self.cond, zero, dy), self.shapes[1])
              if self.needs_input_grad[2] else None)
        return None, da, db


class Clone(Function):
    def forward(self, a):
        return a.copy()

    def backward(self, dy):
        return dy


class Cast(Function):
    """A float-to-float copy (only float32 exists, so it is the identity with a copy)."""

    def forward(self, a, dtype):
        return a.astype(dtype)

    def backward(self, dy):
        return dy, None


class ToDevice(Function):
    """A copy on another device; the gradient is copied back."""

    def forward(self, a, device):
        self.source = "cpu" if self.xp is np else "cuda"
        return _move(a, device)

    def backward(self, dy):
        return _move(dy, self.source), None


def _move(array, device):
    from fastconv.backend import device_of, get_backend

    if device_of(array) == device:
        return array
    return get_backend("cuda").xp.asarray(array) if device == "cuda" else array.get()


# ----------------------------------------------------------------------------- reductions


def _expand_reduced(xp, dy, shape, dims, keepdim):
    if not keepdim:
        dy = dy.reshape([1 if i in dims else n for i, n in enumerate(shape)])
    return dy


class Var(Function):
    """sum((a - mean)^2) / (N - correction) over ``dim``."""

    def forward(self, a, dim=None, correction=1, keepdim=False):
        self.dims = _normalise_dims(dim, a.ndim)
        self.keepdim = keepdim
        self.shape = a.shape
        n = int(np.prod([a.shape[d] for d in self.dims])) if a.ndim else 1
        self.denominator = max(n - correction, 0)
        self.centred = a - a.mean(axis=self.dims, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            var = (self.centred * self.centred).sum(axis=self.dims, keepdims=keepdim)
            return (var / a.dtype.type(self.denominator)).astype(a.dtype)

    def backward(self, dy):
        dy = _expand_reduced(self.xp, dy, self.shape, self.dims, self.keepdim)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (dy * self.centred * (2.0 / self.denominator)).astype(dy.dtype), None, None, None


class TakeAlong(Function):
    """``take_along_axis(a, index, dim)``: the values that max/min/topk/sort select; the
    gradient goes back to the selected positions (added where an index repeats)."""

    def forward(self, a, index, dim):
        self.shape, self.index, self.dim = a.shape, index, dim
        return self.xp.take_along_axis(a, index, axis=dim)

    def backward(self, dy):
        xp = self.xp
        dx = xp.zeros(self.shape, dtype=dy.dtype)
        if xp is np:
            # put_along_axis overwrites; index tuples are distinct for topk/sort/max/min.
            np.put_along_axis(dx, self.index, dy, axis=self.dim)
        else:
            xp.put_along_axis(dx, self.index, dy, axis=self.dim)
        return dx, None, None


class MaxAll(Function):
    """The largest (or smallest) element; ties share the gradient equally (as PyTorch)."""

    def forward(self, a, largest=True):
        y = a.max() if largest else a.min()
        self.mask = a == y
        return self.xp.asarray(y)

    def backward(self, dy):
        mask = self.mask.astype(dy.dtype)
        return dy * mask / mask.sum(), None


# ----------------------------------------------------------------------------- shape


class Expand(Function):
    def forward(self, a, shape):
        self.shape = a.shape
        return self.xp.ascontiguousarray(self.xp.broadcast_to(a, shape))

    def backward(self, dy):
        return unbroadcast(self.xp, dy, self.shape), None


class Repeat(Function):
    """``tile``: the gradient of each input element sums its copies."""

    def forward(self, a, repeats):
        self.shape = (1,) * (len(repeats) - a.ndim) + a.shape
        self.in_shape = a.shape
        self.repeats = repeats
        return self.xp.tile(a, repeats)

    def backward(self, dy):
        split = []
        for r, n in zip(self.repeats, self.shape):
            split += [r, n]
        g = dy.reshape(split).sum(axis=tuple(range(0, 2 * len(self.shape), 2)))
        return g.reshape(self.in_shape), None


class Flip(Function):
    def forward(self, a, dims):
        self.dims = dims
        return self.xp.ascontiguousarray(self.xp.flip(a, axis=dims))

    def backward(self, dy):
        return self.xp.ascontiguousarray(self.xp.flip(dy, axis=self.dims)), None


class Stack(Function):
    def forward(self, *arrays, dim=0):
        self.dim = dim
        return self.xp.stack(arrays, axis=dim)

    def backward(self, dy):
        xp = self.xp
        return tuple(xp.ascontiguousarray(xp.take(dy, i, axis=self.dim)) if need else None
                     for i, need in enumerate(self.needs_input_grad))


class SetItem(Function):
    """``a[index] = v`` as a new array: the overwritten entries get no gradient from ``a``;
    ``v`` gets the sum of their gradients (PyTorch's CopySlices)."""

    def forward(self, a, v, index):
        self.index = index
        self.v_shape = np.shape(v)
        out = a.copy()
        out[index] = v
        return out

    def backward(self, dy):
        da = dv = None
        if self.needs_input_grad[0]:
            da = dy.copy()
            da[self.index] = 0
        if self.needs_input_grad[1]:
            dv = unbroadcast(self.xp, dy[self.index], self.v_shape)
        return da, dv, None
