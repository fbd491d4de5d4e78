"""Running and sorted-order ops along one dim: ``cummax``, ``cummin``, ``logcumsumexp``,
``diff``, ``searchsorted``, ``bucketize``.

The running maximum/minimum and the running log-sum-exp are NumPy ufunc ``accumulate``
scans; a CuPy input is scanned on the host (these are small bookkeeping ops, not hot
paths). ``cummax`` / ``cummin`` values are a gather at the returned indices, so their
gradient is the gather's.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from fastconv.function import Function
from fastconv.ops import arith

CumResult = namedtuple("CumResult", ["values", "indices"])


def _host(a):
    return a if isinstance(a, np.ndarray) else a.get()


def _like(xp, a):
    return a if xp is np else xp.asarray(a)


def _dim(op, input, dim):
    from fastconv.tensor import Tensor

    if not isinstance(input, Tensor):
        raise TypeError(f"{op}(): argument 'input' must be Tensor, not {type(input).__name__}")
    return arith._normalise_dims(dim, max(input.ndim, 1))[0]


def _cum_extreme(op, input, dim, largest):
    from fastconv.tensor import Tensor

    d = _dim(op, input, dim)
    if input.ndim == 0:
        return CumResult(input.clone(), input.new_zeros((), dtype=np.int64))
    xp = np if input.device == "cpu" else __import__("cupy")
    a = _host(input.data)
    ufunc = np.maximum if largest else np.minimum
    run = ufunc.accumulate(a, axis=d) if a.size else a
    # The index of the latest entry equal to the running extreme (PyTorch takes the last of
    # ties), or of the latest NaN once one has been seen (NaN propagates, as in PyTorch).
    nan = np.isnan(a) if a.dtype.kind == "f" else np.zeros(a.shape, bool)
    here = (a == run) | nan
    pos = np.arange(a.shape[d]).reshape([-1 if k == d else 1 for k in range(a.ndim)])
    idx = np.where(here, pos, 0)
    idx = np.maximum.accumulate(idx, axis=d) if a.size else idx.astype(np.int64)
    idx = Tensor(_like(xp, idx.astype(np.int64)))
    return CumResult(input.gather(d, idx), idx)


def cummax(input, dim):
    """(values, indices): the running maximum along ``dim`` and where each was found (the
    latest of equal values)."""
    return _cum_extreme("cummax", input, dim, True)


def cummin(input, dim):
    """(values, indices): the running minimum along ``dim`` and where each was found."""
    return _cum_extreme("cummin", input, dim, False)


def _logcumsumexp(a, axis, reverse=False):
    """log(cumsum(exp(a))) along ``axis`` on the host, stable for any range of values."""
    if reverse:
        return np.flip(np.logaddexp.accumulate(np.flip(a, axis), axis=axis), axis)
    return np.logaddexp.accumulate(a, axis=axis)


class LogCumSumExp(Function):
    """y_i = log(sum_{j<=i} exp(x_j)); dx_j = sum_{i>=j} dy_i exp(x_j - y_i), summed in log
    space (positive and negative dy apart) so it never overflows."""

    def forward(self, a, dim):
        self.dim = dim
        h = _host(a)
        with np.errstate(divide="ignore", invalid="ignore"):
            y = _logcumsumexp(h, dim) if h.size else h.copy()
        self.save_for_backward(h, y)
        return _like(self.xp, y.astype(a.dtype, copy=False))

    def backward(self, dy):
        a, y = self.saved
        g = _host(dy).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            pos = _logcumsumexp(np.log(np.where(g > 0, g, 0)) - y, self.dim, reverse=True)
            neg = _logcumsumexp(np.log(np.where(g < 0, -g, 0)) - y, self.dim, reverse=True)
            dx = np.exp(a + pos) - np.exp(a + neg)
        return _like(self.xp, dx.astype(a.dtype)), None


def logcumsumexp(input, dim):
    """log(cumsum(exp(input))) along ``dim``, computed without overflow."""
    d = _dim("logcumsumexp", input, dim)
    if input.dtype.kind != "f":
        raise RuntimeError(f"logcumsumexp(): expected a floating point tensor, got "
                           f"{input.dtype}")
    if input.ndim == 0:
        return input.clone()
    return LogCumSumExp.apply(input, d)


def diff(input, n: int = 1, dim: int = -1, prepend=None, append=None):
    """The n-th forward difference along ``dim`` (``out[i] = x[i+1] - x[i]``, applied n
    times), after concatenating ``prepend`` / ``append`` along it."""
    from fastconv.tensor import Tensor
    from fastconv.toplevel import cat

    d = _dim("diff", input, dim)
    if input.ndim == 0:
        raise RuntimeError("diff expects input to be at least one-dimensional")
    if n < 0:
        raise RuntimeError(f"order must be non-negative but got {n}")
    if n == 0:
        return input  # torch ignores prepend / append when there is nothing to difference
    parts = []
    for name, extra in (("prepend", prepend), (None, input), ("append", append)):
        if extra is None:
            continue
        if not isinstance(extra, Tensor):
            extra = Tensor(np.asarray(extra, dtype=input.dtype)).to(input.device)
        if name and extra.ndim == 0:
            shape = list(input.shape)
            shape[d] = 1
            extra = extra.expand(*shape)
        if extra.ndim != input.ndim:
            raise RuntimeError(f"diff expects prepend or append to be the same dimension as "
                               f"input, got {extra.ndim}-D and {input.ndim}-D")
        parts.append(extra)
    x = cat(parts, d) if len(parts) > 1 else input
    for _ in range(n):
        if x.shape[d] == 0:
            break
        m = x.shape[d] - 1
        hi, lo = x.narrow(d, 1, m), x.narrow(d, 0, m)
        x = hi.logical_xor(lo) if x.dtype.kind == "b" else hi - lo
    return x


def searchsorted(sorted_sequence, input, *, out_int32: bool = False, right: bool = False,
                 side=None, sorter=None):
    """Indices where ``input``'s values would be inserted into ``sorted_sequence`` (sorted
    along its last dim) to keep it sorted: the first such place, or the last one with
    ``right=True`` / ``side="right"``. A 1-D sequence serves every value; an N-D one pairs
    its leading dims with the input's."""
    from fastconv.tensor import Tensor

    seq = sorted_sequence
    if not isinstance(seq, Tensor):
        raise TypeError(f"searchsorted(): argument 'sorted_sequence' must be Tensor, not "
                        f"{type(seq).__name__}")
    scalar = not isinstance(input, Tensor)
    values = np.asarray(input) if scalar else _host(input.data)
    if side is not None:
        if side not in ("left", "right"):
            raise RuntimeError(f"torch.searchsorted(): side can only be 'left' or 'right' but "
                               f"got {side}")
        if right and side == "left":
            raise RuntimeError("torch.searchsorted(): side and right can't be set to opposites, "
                               "got side of left while right was True")
        right = side == "right"
    s = _host(seq.data)
    if sorter is not None:
        order = _host(sorter.data if isinstance(sorter, Tensor) else np.asarray(sorter))
        if order.shape != s.shape:
            raise RuntimeError(f"torch.searchsorted(): boundary and sorter must have the same "
                               f"size, but got boundary tensor {list(s.shape)}and got sorter "
                               f"tensor {list(order.shape)}")
        s = np.take_along_axis(s, order.astype(np.int64), -1)
    how = "right" if right else "left"
    if s.ndim == 1:
        out = np.searchsorted(s, values, side=how)
    else:
        if scalar or values.ndim != s.ndim or values.shape[:-1] != s.shape[:-1]:
            raise RuntimeError(f"torch.searchsorted(): boundaries tensor should be 1 dimension "
                               f"or the first N-1 dimensions of boundaries tensor and input "
                               f"value tensor must match, but we got boundaries tensor "
                               f"{list(s.shape)} and input value tensor "
                               f"{list(np.shape(values))}")
        lead = int(np.prod(s.shape[:-1]))
        rows_s = s.reshape(lead, s.shape[-1])
        rows_v = values.reshape(lead, values.shape[-1])
        out = np.zeros(rows_v.shape, np.int64)
        for i, (a, v) in enumerate(zip(rows_s, rows_v)):
            out[i] = np.searchsorted(a, v, side=how)
        out = out.reshape(values.shape)
    out = np.asarray(out, dtype=np.int32 if out_int32 else np.int64)
    xp = np if seq.device == "cpu" else __import__("cupy")
    return Tensor(_like(xp, out))


def bucketize(input, boundaries, *, out_int32: bool = False, right: bool = False):
    """The bucket of each value among the sorted 1-D ``boundaries``: i with
    boundaries[i-1] < x <= boundaries[i] (``right=True``: boundaries[i-1] <= x <
    boundaries[i])."""
    from fastconv.tensor import Tensor

    if not isinstance(boundaries, Tensor) or boundaries.ndim != 1:
        raise RuntimeError("bucketize(): boundaries tensor must be 1 dimension, but got "
                           f"{getattr(boundaries, 'ndim', type(boundaries).__name__)}")
    return searchsorted(boundaries, input, out_int32=out_int32, right=right)
