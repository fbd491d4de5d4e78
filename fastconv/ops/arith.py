"""Tensor arithmetic, reductions and shape ops, written once on the array module.

These are memory-bound one-liners, so they use the array library of the
inputs (NumPy or CuPy) directly; the backend kernels are kept for the ops where
a hand-written loop pays.
"""

from __future__ import annotations

import numpy as np

from fastconv.function import Function


def sum_to(grad, shape):
    """Sum ``grad`` (an array, or a Tensor in a recorded backward pass) over the axes that
    broadcasting added or stretched to reach ``shape``."""
    if tuple(grad.shape) == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


def unbroadcast(xp, grad, shape):
    """:func:`sum_to` with the array module in the call, as the array backwards write it."""
    return sum_to(grad, shape)


class Add(Function):
    def forward(self, a, b):
        self.shapes = (np.shape(a), np.shape(b))
        return a + b

    def backward(self, dy):
        return (unbroadcast(self.xp, dy, self.shapes[0]) if self.needs_input_grad[0] else None,
                unbroadcast(self.xp, dy, self.shapes[1]) if self.needs_input_grad[1] else None)

    def backward_graph(self, dy):
        return (sum_to(dy, self.shapes[0]) if self.needs_input_grad[0] else None,
                sum_to(dy, self.shapes[1]) if self.needs_input_grad[1] else None)


class Sub(Function):
    def forward(self, a, b):
        self.shapes = (np.shape(a), np.shape(b))
        return a - b

    def backward(self, dy):
        return (unbroadcast(self.xp, dy, self.shapes[0]) if self.needs_input_grad[0] else None,
                unbroadcast(self.xp, -dy, self.shapes[1]) if self.needs_input_grad[1] else None)

    def backward_graph(self, dy):
        return (sum_to(dy, self.shapes[0]) if self.needs_input_grad[0] else None,
                sum_to(-dy, self.shapes[1]) if self.needs_input_grad[1] else None)


class Mul(Function):
    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a * b

    def backward(self, dy):
        a, b = self.saved
        return (unbroadcast(self.xp, dy * b, np.shape(a)) if self.needs_input_grad[0] else None,
                unbroadcast(self.xp, dy * a, np.shape(b)) if self.needs_input_grad[1] else None)

    def backward_graph(self, dy):
        a, b = self.parents
        return (sum_to(dy * b, np.shape(self.saved[0])) if self.needs_input_grad[0] else None,
                sum_to(dy * a, np.shape(self.saved[1])) if self.needs_input_grad[1] else None)


class Div(Function):
    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a / b

    def backward(self, dy):
        a, b = self.saved
        da = unbroadcast(self.xp, dy / b, np.shape(a)) if self.needs_input_grad[0] else None
        db = (unbroadcast(self.xp, -dy * a / (b * b), np.shape(b))
              if self.needs_input_grad[1] else None)
        return da, db

    def backward_graph(self, dy):
        a, b = self.parents
        shapes = [np.shape(v) for v in self.saved]
        da = sum_to(dy / b, shapes[0]) if self.needs_input_grad[0] else None
        db = sum_to(-dy * a / (b * b), shapes[1]) if self.needs_input_grad[1] else None
        return da, db


class Neg(Function):
    double_backward = "linear"

    def forward(self, a):
        return -a

    def backward(self, dy):
        return -dy


class Pow(Function):
    """a ** p for a constant exponent p."""

    def forward(self, a, p):
        self.save_for_backward(a)
        self.p = p
        return a ** p

    def backward(self, dy):
        (a,) = self.saved
        if self.p == 0:  # constant 1: zero gradient, also at a = 0 (not 0 * inf)
            return self.xp.zeros_like(dy), None
        return dy * self.p * a ** (self.p - 1), None

    def backward_graph(self, dy):
        if self.p == 0:
            return dy * 0.0, None
        return dy * self.p * self.parents[0] ** (self.p - 1), None


class Exp(Function):
    def forward(self, a):
        y = self.xp.exp(a)
        self.save_for_backward(y)
        return y

    def backward(self, dy):
        return dy * self.saved[0]

    def backward_graph(self, dy):
        return dy * self.parents[0].exp()


class Log(Function):
    def forward(self, a):
        self.save_for_backward(a)
        return self.xp.log(a)

    def backward(self, dy):
        return dy / self.saved[0]

    def backward_graph(self, dy):
        return dy / self.parents[0]


class MatMul(Function):
    """2-D matrix product through the backend BLAS (batched or 1-D operands via the array
    module); under autocast on the bfloat16 GEMM where the backend has one."""

    autocast_lowp = True

    def forward(self, a, b):
        # 2-D float products under autocast run on the bfloat16 GEMM where the backend has one;
        # it rounds a and b as it packs them.
        self.on_bf16_gemm = a.ndim == 2 and b.ndim == 2 and self.use_bf16_gemm()
        if self.on_bf16_gemm:
            a, b = self.xp.asarray(a, self.xp.float32), self.xp.asarray(b, self.xp.float32)
        elif self.lowp:
            a, b = self.bf16(a), self.bf16(b)
        blas = a.ndim == 2 and b.ndim == 2 and a.dtype == b.dtype == self.xp.float32
        if blas or self.on_bf16_gemm:  # the GEMMs take C-contiguous operands; a column
            # slice (x[:, i:i + 1]) is a strided view
            a, b = self.xp.ascontiguousarray(a), self.xp.ascontiguousarray(b)
        self.save_for_backward(a, b)
        if self.on_bf16_gemm:
            y = self.kernels.gemm_bf16(a, b)
        else:
            y = self.kernels.gemm(a, b) if blas else self.xp.matmul(a, b)  # ints: NumPy's
        if self.lowp:
            y = self.xp.ascontiguousarray(y)
            self.kernels.round_bf16_(y)
        return y

    def backward(self, dy):
        grads = self._grads(self.bf16(dy) if self.lowp else dy)
        if self.lowp:  # torch's input gradients of a bfloat16 product are bfloat16
            grads = tuple(None if g is None else self.bf16(g) for g in grads)
        return grads

    def backward_graph(self, dy):
        a, b = self.parents
        need_a, need_b = self.needs_input_grad
        if a.ndim == 1 and b.ndim == 1:  # a dot product: dy is a scalar
            return dy * b if need_a else None, dy * a if need_b else None
        # as _grads: vectors promoted to matrices, broadcast batch axes summed
        a2 = a.unsqueeze(0) if a.ndim == 1 else a
        b2 = b.unsqueeze(1) if b.ndim == 1 else b
        dy2 = dy.unsqueeze(-2) if a.ndim == 1 else dy
        dy2 = dy2.unsqueeze(-1) if b.ndim == 1 else dy2
        da = sum_to(dy2 @ b2.transpose(-1, -2), a2.shape).reshape(a.shape) if need_a else None
        db = sum_to(a2.transpose(-1, -2) @ dy2, b2.shape).reshape(b.shape) if need_b else None
        return da, db

    def _grads(self, dy):
        a, b = self.saved
        xp = self.xp
        if self.on_bf16_gemm:
            dy = xp.ascontiguousarray(dy)
            da = self.kernels.gemm_bf16(dy, b, trans_b=True) if self.needs_input_grad[0] else None
            db = self.kernels.gemm_bf16(a, dy, trans_a=True) if self.needs_input_grad[1] else None
            return da, db
        if a.ndim == 2 and b.ndim == 2:
            dy = xp.ascontiguousarray(dy)
            da = self.kernels.gemm(dy, b, trans_b=True) if self.needs_input_grad[0] else None
            db = self.kernels.gemm(a, dy, trans_a=True) if self.needs_input_grad[1] else None
            return da, db
        if a.ndim == 1 and b.ndim == 1:  # a dot product: dy is a scalar
            return (dy * b if self.needs_input_grad[0] else None,
                    dy * a if self.needs_input_grad[1] else None)
        # General case (batched / vectors): promote vectors, then reduce broadcast batch axes.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        dy2 = dy
        if a.ndim == 1:
            dy2 = xp.expand_dims(dy2, -2)
        if b.ndim == 1:
            dy2 = xp.expand_dims(dy2, -1)
        da = db = None
        if self.needs_input_grad[0]:
            da = unbroadcast(xp, xp.matmul(dy2, xp.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
        if self.needs_input_grad[1]:
            db = unbroadcast(xp, xp.matmul(xp.swapaxes(a2, -1, -2), dy2), b2.shape).reshape(b.shape)
        return da, db


def dim_out_of_range(dim, ndim) -> IndexError:
    """torch's error for a dim outside [-ndim, ndim - 1] (a 0-d tensor takes 0 and -1)."""
    n = max(ndim, 1)
    return IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], "
                      f"but got {dim})")


def _dim_int(d, what="dim"):
    """``d`` as an int: Python and NumPy integers and 0-d integer tensors are dims; bools,
    floats and the rest are refused, as torch's argument parser does."""
    if isinstance(d, (int, np.integer)) and not isinstance(d, (bool, np.bool_)):
        return int(d)
    if hasattr(d, "__index__") and not isinstance(d, (bool, np.bool_)) and \
            getattr(getattr(d, "dtype", None), "kind", "i") in "iu":
        return int(d.__index__())
    raise TypeError(f"{what} must be an int or a tuple of ints, not {type(d).__name__}")


def _normalise_dims(dim, ndim):
    """The dims ``dim`` (None: all; an int; or a sequence of ints) as sorted non-negative
    indices into a tensor of ``ndim`` dims, with torch's errors: IndexError for a dim out of
    range, RuntimeError for a dim given twice, TypeError for a non-integer."""
    if dim is None:
        return tuple(range(ndim))
    n = max(ndim, 1)  # a 0-d tensor takes dim 0 or -1, as torch's
    if type(dim) is int:  # the common case
        if not -n <= dim < n:
            raise dim_out_of_range(dim, ndim)
        return (dim % n,)
    if isinstance(dim, (list, tuple)):
        dims = dim
    elif isinstance(dim, (str, bytes)) or not hasattr(dim, "__iter__") or \
            getattr(dim, "ndim", 1) == 0:
        dims = (dim,)
    else:
        dims = tuple(dim)
    out = []
    for d in dims:
        d = _dim_int(d)
        if not -n <= d < n:
            raise dim_out_of_range(d, ndim)
        d %= n
        if d in out:
            raise RuntimeError(f"dim {d} appears multiple times in the list of dims")
        out.append(d)
    return tuple(sorted(out))


def broadcast_error(*shapes):
    """torch's RuntimeError for ``shapes`` that do not broadcast together, or None when they
    do. The shapes fold left to right, as torch's TensorIterator does: "tensor a" is the
    broadcast of the shapes before the conflict and "tensor b" the next shape; the dims are
    compared from the last one back, and the one named counts from the front of the
    broadcast shape."""
    out = None
    for shape in shapes:
        shape = tuple(shape)
        if out is None:
            out = shape
            continue
        n = max(len(out), len(shape))
        a = (1,) * (n - len(out)) + out
        b = (1,) * (n - len(shape)) + shape
        for d in range(n - 1, -1, -1):
            x, y = a[d], b[d]
            if x != y and x != 1 and y != 1:
                return RuntimeError(f"The size of tensor a ({x}) must match the size of tensor "
                                    f"b ({y}) at non-singleton dimension {d}")
        out = tuple(y if x == 1 else x for x, y in zip(a, b))
    return None


def broadcast_shapes(*shapes) -> tuple:
    """The shape ``shapes`` broadcast to, or torch's RuntimeError naming a conflicting
    dimension (see :func:`broadcast_error`)."""
    err = broadcast_error(*shapes)
    if err is not None:
        raise err
    return tuple(np.broadcast_shapes(*shapes))


def raise_if_not_broadcastable(*operands):
    """For an array op that failed (NumPy raises ValueError when operands do not broadcast):
    raise torch's broadcast error when the shapes of ``operands`` (tensors, arrays or
    numbers, in the order torch names them a, b, ...) conflict; return otherwise, so the
    caller re-raises the original error. Called only after a failure: no cost when the op
    works."""
    err = broadcast_error(*(o.shape if hasattr(o, "shape") else np.shape(o) for o in operands))
    if err is not None:
        raise err from None


def matmul_shape_error(a_shape, b_shape):
    """torch.matmul's RuntimeError for operands of these shapes that cannot be multiplied
    (the message of the mm / mv / dot / bmm it dispatches to), or None when they can."""
    a_shape, b_shape = tuple(a_shape), tuple(b_shape)
    da, db = len(a_shape), len(b_shape)
    if da == 0 or db == 0:
        return RuntimeError(f"both arguments to matmul need to be at least 1D, but they are "
                            f"{da}D and {db}D")
    k = a_shape[-1]
    if da == 1 and db == 1:
        if k == b_shape[0]:
            return None
        return RuntimeError(f"inconsistent tensor size, expected tensor [{k}] and src "
                            f"[{b_shape[0]}] to have the same number of elements, but got {k} "
                            f"and {b_shape[0]} elements respectively")
    if db == 1:  # (..., n, k) @ (k,): the leading dims fold into the rows of an mv
        rows = int(np.prod(a_shape[:-1]))
        if k == b_shape[0]:
            return None
        return RuntimeError(f"size mismatch, got input ({rows}), mat ({rows}x{k}), vec "
                            f"({b_shape[0]})")
    m, p = b_shape[-2], b_shape[-1]
    if db == 2:  # (k,) or (..., n, k) @ (m, p): the leading dims fold into an mm's rows
        rows = int(np.prod(a_shape[:-1]))
        if k == m:
            return None
        return RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({rows}x{k} and "
                            f"{m}x{p})")
    batch_err = broadcast_error(a_shape[:-2], b_shape[:-2])
    if batch_err is not None:
        return batch_err
    if k == m:
        return None
    batch = int(np.prod(np.broadcast_shapes(a_shape[:-2], b_shape[:-2])))
    return RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                        f"[{batch}, {k}] but got: [{batch}, {m}].")


class Sum(Function):
    double_backward = "linear"

    def forward(self, a, dim=None, keepdim=False):
        self.shape = a.shape
        self.dims = _normalise_dims(dim, a.ndim)
        self.keepdim = keepdim
        return a.sum(axis=self.dims, keepdims=keepdim)

    def backward(self, dy):
        if not self.keepdim:
            dy = dy.reshape([1 if i in self.dims else n for i, n in enumerate(self.shape)])
        return self.xp.broadcast_to(dy, self.shape).copy()


class Mean(Function):
    double_backward = "linear"

    def forward(self, a, dim=None, keepdim=False):
        self.shape = a.shape
        self.dims = _normalise_dims(dim, a.ndim)
        self.keepdim = keepdim
        self.count = int(np.prod([a.shape[d] for d in self.dims])) if a.ndim else 1
        return a.mean(axis=self.dims, keepdims=keepdim)

    def backward(self, dy):
        if not self.keepdim:
            dy = dy.reshape([1 if i in self.dims else n for i, n in enumerate(self.shape)])
        return self.xp.broadcast_to(dy / self.count, self.shape).copy()


class Max(Function):
    """Maximum along one dim; the gradient goes to the first maximum (as argmax picks it)."""

    def forward(self, a, dim, keepdim=False):
        xp = self.xp
        (self.dim,) = _normalise_dims(dim, a.ndim)
        self.shape = a.shape
        self.keepdim = keepdim
        self.index = xp.expand_dims(a.argmax(axis=self.dim), self.dim)
        y = xp.take_along_axis(a, self.index, axis=self.dim)
        return y if keepdim else y.squeeze(self.dim)

    def backward(self, dy):
        xp = self.xp
        if not self.keepdim:
            dy = xp.expand_dims(dy, self.dim)
        dx = xp.zeros(self.shape, dtype=dy.dtype)
        xp.put_along_axis(dx, self.index, dy, axis=self.dim)
        return dx

    def backward_graph(self, dy):
        from fastconv.double_backward import AdjointPair, node_backward

        def gather(g):  # the adjoint of putting dy at the maxima
            picked = self.xp.take_along_axis(g, self.index, axis=self.dim)
            return picked if self.keepdim else picked.squeeze(self.dim)

        return AdjointPair.apply(dy, node_backward(self), gather), None, None


class Reshape(Function):
    double_backward = "linear"

    def forward(self, a, shape):
        self.shape = a.shape
        return a.reshape(shape)

    def backward(self, dy):
        return dy.reshape(self.shape), None


class Permute(Function):
    double_backward = "linear"

    def forward(self, a, dims):
        self.inverse = tuple(int(i) for i in np.argsort(dims))
        return self.xp.ascontiguousarray(a.transpose(dims))

    def backward(self, dy):
        return self.xp.ascontiguousarray(dy.transpose(self.inverse)), None


class GetItem(Function):
    double_backward = "linear"

    def forward(self, a, index):
        self.shape = a.shape
        self.index = index
        return a[index]

    def backward(self, dy):
        dx = self.xp.zeros(self.shape, dtype=dy.dtype)
        # add.at: an index that repeats an element must add its gradients, not overwrite.
        if self.xp is np:
            np.add.at(dx, self.index, dy)
        else:
            self.xp.add.at(dx, self.index, dy)
        return dx, None


class Cat(Function):
    def forward(self, *arrays, dim=0):
        self.dim = dim
        self.sizes = [a.shape[dim] for a in arrays]
        return self.xp.concatenate(arrays, axis=dim)

    def backward(self, dy):
        bounds = np.cumsum(self.sizes)[:-1]
        parts = self.xp.split(dy, [int(b) for b in bounds], axis=self.dim)
        return tuple(self.xp.ascontiguousarray(p) if need else None
                     for p, need in zip(parts, self.needs_input_grad))

    def backward_graph(self, dy):
        grads, start = [], 0
        for size, need in zip(self.sizes, self.needs_input_grad):
            grads.append(dy[(slice(None),) * self.dim + (slice(start, start + size),)]
                         if need else None)
            start += size
        return tuple(grads)
