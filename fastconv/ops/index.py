"""Indexing ops along one dim: gather, scatter, scatter_add, index_select, index_add /
index_copy / index_fill, embedding.

Array code on the inputs' array module (NumPy or CuPy), each backward next to its forward.
The index checks live in :func:`check_index` (called by the Tensor methods before
``apply``), so the ops themselves only compute. Out-of-range indices raise as PyTorch does
(RuntimeError naming the index, the dim and its size), never wrap around like NumPy's
negative indices.
"""

from __future__ import annotations

import math

import numpy as np

from fastconv.function import Function


def _grids(xp, index, dim):
    """Open index grids addressing every entry of ``index``, with ``index`` itself on
    ``dim``: ``a[_grids(index, d)]`` is torch's gather of ``a`` along ``d``."""
    grids = list(xp.ix_(*[xp.arange(n) for n in index.shape])) if index.ndim else []
    grids[dim] = index
    return tuple(grids)


def _add_at(xp, target, where, values):
    # add.at, not +=: an index that repeats must add each contribution.
    if xp is np:
        np.add.at(target, where, values)
    else:
        xp.add.at(target, where, values)


def _leading(src, shape):
    """The leading ``shape`` block of ``src`` (torch reads only that part of src)."""
    return src[tuple(slice(0, n) for n in shape)]


def check_index(op, index, size, dim, what="index"):
    """Raise PyTorch's RuntimeError when an entry of ``index`` is outside [0, size)."""
    if index.size == 0:
        return
    lo, hi = int(index.min()), int(index.max())
    if lo < 0 or hi >= size:
        bad = lo if lo < 0 else hi
        raise RuntimeError(f"{op}: {what} {bad} is out of bounds for dimension {dim} with "
                           f"size {size}")


class Gather(Function):
    """``out[i][j] = a[index[i][j]][j]`` (for dim 0); the gradient adds back to the
    gathered positions."""

    double_backward = "linear"

    def forward(self, a, index, dim):
        self.shape, self.dim = a.shape, dim
        self.where = _grids(self.xp, index, dim)
        return a[self.where]

    def backward(self, dy):
        dx = self.xp.zeros(self.shape, dtype=dy.dtype)
        _add_at(self.xp, dx, self.where, dy)
        return dx, None, None


class Scatter(Function):
    """``out = a`` with ``out[index[i][j]][j] = src[i][j]`` (dim 0), or added to it
    (``reduce="add"``) or multiplied into it (``"multiply"``; repeated indices multiply up,
    and there is no gradient, as in torch). ``src`` is a tensor or a number. Overwritten
    entries pass no gradient to ``a``; ``src`` gets the gradient of the entries it was
    written to (gathered)."""

    def forward(self, a, index, src, dim, reduce=None):
        self.where = _grids(self.xp, index, dim)
        self.index_shape = index.shape
        self.add, self.reduce = reduce == "add", reduce
        values = _leading(src, index.shape) if hasattr(src, "shape") and np.ndim(src) else src
        self.src_shape = np.shape(src)
        out = a.copy()
        if reduce == "add":
            _add_at(self.xp, out, self.where, values)
        elif reduce == "multiply":
            if not hasattr(self.xp.multiply, "at"):
                raise NotImplementedError("scatter(reduce='multiply') on this device")
            self.xp.multiply.at(out, self.where, values)
        else:
            out[self.where] = values
        return out

    def backward(self, dy):
        if self.reduce == "multiply":
            raise RuntimeError("derivative for scatter with reduce='multiply' is not "
                               "implemented (as in torch)")
        xp = self.xp
        da = dsrc = None
        if self.needs_input_grad[0]:
            da = dy
            if not self.add:
                da = dy.copy()
                da[self.where] = 0
        if self.needs_input_grad[2]:
            dsrc = xp.zeros(self.src_shape, dtype=dy.dtype)
            dsrc[tuple(slice(0, n) for n in self.index_shape)] = dy[self.where]
        return da, None, dsrc, None, None


class ScatterReduce(Function):
    """``out = a`` with each ``src[i][j]`` reduced into ``out[index[i][j]][j]`` (dim 0) by
    sum, prod, mean, amax or amin; with ``include_self=False`` the scattered-to entries of
    ``a`` take no part. Gradients as torch's: amax/amin share among the tied entries, prod
    divides out the entry (exactly, also with zeros), mean divides by the count."""

    def forward(self, a, index, src, dim, reduce, include_self):
        xp = self.xp
        self.where = _grids(xp, index, dim)
        self.reduce, self.include_self = reduce, include_self
        self.src_shape = src.shape
        src = _leading(src, index.shape)
        hit = xp.zeros(a.shape, dtype=bool)
        hit[self.where] = True
        count = xp.zeros(a.shape, dtype=np.int64)
        _add_at(xp, count, self.where, 1)
        if include_self:
            count = count + 1
        start = {"sum": 0, "mean": 0, "prod": 1, "amax": -np.inf, "amin": np.inf}[reduce]
        out = a.copy()
        if not include_self:
            out[hit] = start if a.dtype.kind == "f" or reduce in ("sum", "mean", "prod") \
                else (np.iinfo(a.dtype).min if reduce == "amax" else np.iinfo(a.dtype).max)
        ufunc = {"sum": xp.add, "mean": xp.add, "prod": xp.multiply, "amax": xp.maximum,
                 "amin": xp.minimum}[reduce]
        if xp is np:
            ufunc.at(out, self.where, src)
        elif reduce in ("sum", "mean"):
            _add_at(xp, out, self.where, src)
        else:
            import cupyx

            fn = {"amax": cupyx.scatter_max, "amin": cupyx.scatter_min}.get(reduce)
            if fn is None:
                raise NotImplementedError("scatter_reduce(reduce='prod') on this device")
            fn(out, self.where, src)
        if reduce == "mean":
            div = xp.maximum(count, 1).astype(out.dtype)
            out = out / div if out.dtype.kind == "f" else out // div
            out = xp.where(hit, out, a).astype(a.dtype, copy=False)
        self.save_for_backward(a, src, out, count, hit)
        return out

    def backward(self, dy):
        xp = self.xp
        a, src, out, count, hit = self.saved
        w = self.where
        keep = ~hit if not self.include_self else xp.ones(a.shape, dtype=bool)
        if self.reduce == "sum":
            da, dsrc = xp.where(keep, dy, 0), dy[w]
        elif self.reduce == "mean":
            scale = dy / xp.maximum(count, 1)
            da, dsrc = xp.where(keep, xp.where(hit, scale, dy), 0), scale[w]
        elif self.reduce in ("amax", "amin"):
            # torch counts a tied original entry even with include_self=False (it then
            # gets no gradient): matched here, so the shares equal torch's.
            tie_a = a == out
            tie_s = src == out[w]
            n = tie_a.astype(dy.dtype)
            _add_at(xp, n, w, tie_s.astype(dy.dtype))
            share = dy / xp.maximum(n, 1)
            da, dsrc = xp.where(tie_a & keep, share, 0), xp.where(tie_s, share[w], 0)
        else:  # prod: d out / d v = product of the others, without dividing by a zero v
            zeros = xp.zeros(a.shape, dtype=np.int64)
            nonzero = xp.where(keep, xp.where(a == 0, 1, a), 1).astype(dy.dtype)
            zeros += (keep & (a == 0))
            _add_at(xp, zeros, w, (src == 0).astype(np.int64))
            if xp is np:
                np.multiply.at(nonzero, w, np.where(src == 0, 1, src))
            else:
                raise NotImplementedError("scatter_reduce(reduce='prod') on this device")

            def grad(v, zeros_at, nonzero_at, dy_at, out_at):
                with np.errstate(divide="ignore", invalid="ignore"):
                    return xp.where(v != 0, dy_at * out_at / v,
                                    xp.where(zeros_at == 1, dy_at * nonzero_at, 0))

            da = xp.where(keep, grad(a, zeros, nonzero, dy, out), 0)
            dsrc = grad(src, zeros[w], nonzero[w], dy[w], out[w])
        if self.needs_input_grad[2]:
            full = xp.zeros(self.src_shape, dtype=dy.dtype)
            full[tuple(slice(0, n) for n in dsrc.shape)] = dsrc
            dsrc = full
        else:
            dsrc = None
        return da.astype(dy.dtype, copy=False), None, dsrc, None, None, None


class IndexSelect(Function):
    """The entries of ``a`` at ``index`` (1-D) along ``dim``; repeated indices add their
    gradients."""

    double_backward = "linear"

    def forward(self, a, index, dim):
        self.shape, self.index, self.dim = a.shape, index, dim
        return self.xp.take(a, index, axis=dim)

    def backward(self, dy):
        dx = self.xp.zeros(self.shape, dtype=dy.dtype)
        where = (slice(None),) * self.dim + (self.index,)
        _add_at(self.xp, dx, where, dy)
        return dx, None, None


class IndexPut(Function):
    """``a`` with the slices at the 1-D ``index`` along ``dim`` replaced by ``src``'s
    ("copy") or increased by ``alpha * src`` ("add"; repeated indices add up). ``src`` may be
    a constant array (index_fill's value)."""

    def forward(self, a, src, index, dim, mode, alpha):
        self.where = (slice(None),) * dim + (index,)
        self.index, self.dim, self.mode, self.alpha = index, dim, mode, alpha
        out = a.copy()
        if mode == "add":
            _add_at(self.xp, out, self.where, src * alpha if alpha != 1 else src)
        else:
            out[self.where] = src
        return out

    def backward(self, dy):
        da = dy
        if self.mode == "copy" and self.needs_input_grad[0]:
            da = dy.copy()
            da[self.where] = 0
        dsrc = None
        if self.needs_input_grad[1]:
            dsrc = self.xp.take(dy, self.index, axis=self.dim)
            if self.mode == "add" and self.alpha != 1:
                dsrc = dsrc * self.alpha
        return da, dsrc, None, None, None, None


class Embedding(Function):
    """Rows of ``weight`` at ``index`` (any shape); rows at ``padding_idx`` get no gradient.
    ``scale_grad_by_freq``: each row's gradient is divided by how often its index occurs."""

    def forward(self, weight, index, padding_idx=None, scale_grad_by_freq=False):
        self.shape, self.index, self.padding_idx = weight.shape, index, padding_idx
        self.inv_freq = None
        if scale_grad_by_freq:
            counts = self.xp.bincount(index.reshape(-1), minlength=weight.shape[0])
            self.inv_freq = (1.0 / self.xp.maximum(counts, 1)).astype(weight.dtype)[:, None]
        return weight[index]

    def backward(self, dy):
        dw = self.xp.zeros(self.shape, dtype=dy.dtype)
        # (sizes spelled out: -1 cannot stand beside an embedding_dim of 0)
        _add_at(self.xp, dw, self.index.reshape(-1), dy.reshape(self.index.size, self.shape[1]))
        if self.inv_freq is not None:
            dw *= self.inv_freq
        if self.padding_idx is not None:
            dw[self.padding_idx] = 0
        return dw, None, None, None

    def backward_graph(self, dy):
        from fastconv.double_backward import AdjointPair, node_backward

        def gather(g):  # the adjoint: rows at the indices, the padding row's as zeros
            if self.padding_idx is not None or self.inv_freq is not None:
                g = g.copy() if self.inv_freq is None else g * self.inv_freq
            if self.padding_idx is not None:
                g[self.padding_idx] = 0
            return g[self.index]

        return AdjointPair.apply(dy, node_backward(self), gather), None, None, None


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False, sparse=False):
    """Rows of ``weight`` (num_embeddings, embedding_dim) at the integer ``input`` (any
    shape): output shape input.shape + (embedding_dim,). The row at ``padding_idx`` gets
    no gradient. With ``max_norm``, each looked-up row whose ``norm_type``-norm exceeds it
    is first scaled in place to that norm (torch's embedding_renorm_, outside autograd).
    ``scale_grad_by_freq``: each row's gradient is divided by the number of times its index
    occurs in ``input``."""
    from fastconv.ops.validate import float_tensor
    from fastconv.tensor import Tensor

    op = "embedding"
    float_tensor(weight, "weight", op, (2,))
    if not isinstance(input, Tensor) or input.dtype.kind not in "iu":
        raise RuntimeError(f"{op}: Expected tensor for argument #1 'indices' to have one of the "
                           f"following scalar types: Long, Int; but got "
                           f"{getattr(input, 'dtype', type(input).__name__)} instead")
    if sparse:
        raise NotImplementedError(f"{op}: sparse=True is not supported by fastconv")
    n = weight.shape[0]
    if padding_idx is not None:
        if not -n <= padding_idx < n:
            raise AssertionError("Padding_idx must be within num_embeddings")
        padding_idx %= n
    idx = input.data.astype(np.int64, copy=False)
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise IndexError("index out of range in self")
    if max_norm is not None:
        _renorm_rows(weight, idx, float(max_norm), float(norm_type))
    return Embedding.apply(weight, idx, padding_idx, bool(scale_grad_by_freq))


def _renorm_rows(weight, idx, max_norm: float, p: float) -> None:
    from fastconv.backend import get_backend

    xp = get_backend(weight.device).xp
    rows = xp.unique(idx.reshape(-1))
    w = weight.data[rows]
    # torch's vector norms: p = 0 counts the non-zeros, p = inf takes the largest
    if p == 0:
        norms = (w != 0).sum(axis=1).astype(w.dtype)
    elif math.isinf(p):
        a = xp.abs(w)
        norms = (a.max(axis=1) if p > 0 else a.min(axis=1)) if w.shape[1] else \
            xp.zeros(len(rows), w.dtype)
    else:
        norms = (xp.abs(w) ** p).sum(axis=1) ** (1.0 / p)
    scale = xp.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0).astype(w.dtype)
    weight.data[rows] = w * scale[:, None]
