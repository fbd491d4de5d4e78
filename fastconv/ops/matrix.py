"""Matrix-shaped helpers as PyTorch has them at its top level: diagonals (``diagonal``,
``diag``, ``diag_embed``, ``trace``), products (``kron``, ``tensordot``, ``addmv``,
``addr``, ``chain_matmul``), constructions (``block_diag``, ``cartesian_prod``,
``combinations``, ``vander``, ``tril_indices``, ``triu_indices``) and distances (``cdist``,
``dist``, ``renorm``).

:class:`Diagonal` and :class:`DiagEmbed` are the two primitives (each the other's
gradient); the rest are compositions of differentiable Tensor ops, so their gradients and
both backends come for free.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from fastconv import dtypes
from fastconv.function import Function
from fastconv.ops import arith
from fastconv.ops.validate import ArgumentError


def _tensor(x, op, name="input"):
    from fastconv.tensor import Tensor

    if not isinstance(x, Tensor):
        raise TypeError(f"{op}(): argument '{name}' must be Tensor, not {type(x).__name__}")
    return x


def _diagonal_index(xp, rows: int, cols: int, offset: int):
    """(i, j) of the ``offset`` diagonal of a rows x cols matrix."""
    n = max(0, min(rows + min(offset, 0), cols - max(offset, 0)))
    i = xp.arange(n) - min(offset, 0)
    return i, i + offset


class Diagonal(Function):
    """The ``offset`` diagonal of the (dim1, dim2) matrices, as a new last dim."""

    double_backward = "linear"

    def forward(self, a, offset, dim1, dim2):
        self.shape, self.args = a.shape, (offset, dim1, dim2)
        m = self.xp.moveaxis(a, (dim1, dim2), (-2, -1))
        i, j = _diagonal_index(self.xp, m.shape[-2], m.shape[-1], offset)
        return self.xp.ascontiguousarray(m[..., i, j])

    def backward(self, dy):
        offset, dim1, dim2 = self.args
        dx = self.xp.zeros(self.shape, dtype=dy.dtype)
        m = self.xp.moveaxis(dx, (dim1, dim2), (-2, -1))  # a view: writes land in dx
        i, j = _diagonal_index(self.xp, m.shape[-2], m.shape[-1], offset)
        m[..., i, j] = dy
        return dx, None, None, None


class DiagEmbed(Function):
    """Matrices (on dims dim1, dim2 of the output) whose ``offset`` diagonal is the last
    dim of the input, zero elsewhere."""

    double_backward = "linear"

    def forward(self, a, offset, dim1, dim2):
        n = a.shape[-1] + abs(offset)
        self.args = (offset, dim1, dim2)
        out_ndim = a.ndim + 1
        rest = list(a.shape[:-1])
        shape = [0] * out_ndim
        others = [d for d in range(out_ndim) if d not in (dim1, dim2)]
        for d, size in zip(others, rest):
            shape[d] = size
        shape[dim1] = shape[dim2] = n
        out = self.xp.zeros(shape, dtype=a.dtype)
        m = self.xp.moveaxis(out, (dim1, dim2), (-2, -1))
        i, j = _diagonal_index(self.xp, n, n, offset)
        m[..., i, j] = a
        return out

    def backward(self, dy):
        offset, dim1, dim2 = self.args
        m = self.xp.moveaxis(dy, (dim1, dim2), (-2, -1))
        i, j = _diagonal_index(self.xp, m.shape[-2], m.shape[-1], offset)
        return self.xp.ascontiguousarray(m[..., i, j]), None, None, None


def _two_dims(op, ndim, dim1, dim2):
    d1, d2 = arith._normalise_dims(dim1, ndim)[0], arith._normalise_dims(dim2, ndim)[0]
    if d1 == d2:
        raise RuntimeError(f"{op}(): dim1 and dim2 cannot be identical, but got dim1 = {dim1} "
                           f"and dim2 = {dim2}")
    return d1, d2


def diagonal(input, offset: int = 0, dim1: int = 0, dim2: int = 1):
    """The ``offset`` diagonal (above the main one for offset > 0) of the matrices formed by
    dims ``dim1`` and ``dim2``, appended as the last dim (``torch.diagonal``)."""
    _tensor(input, "diagonal")
    if input.ndim < 2:
        raise RuntimeError(f"diagonal(): expected a tensor of at least 2 dims, got "
                           f"{input.ndim}-D of shape {tuple(input.shape)}")
    d1, d2 = _two_dims("diagonal", input.ndim, dim1, dim2)
    return Diagonal.apply(input, int(offset), d1, d2)


def diag_embed(input, offset: int = 0, dim1: int = -2, dim2: int = -1):
    """Matrices on dims (dim1, dim2) of the output whose ``offset`` diagonal is the input's
    last dim (``torch.diag_embed``)."""
    _tensor(input, "diag_embed")
    if input.ndim < 1:
        raise RuntimeError("diag_embed(): expected a tensor of at least 1 dim, got a 0-D tensor")
    d1, d2 = _two_dims("diag_embed", input.ndim + 1, dim1, dim2)
    return DiagEmbed.apply(input, int(offset), d1, d2)


def diag(input, diagonal: int = 0):
    """A 1-D input becomes the square matrix with it on the ``diagonal``-th diagonal; a 2-D
    input gives that diagonal as a 1-D tensor (``torch.diag``)."""
    _tensor(input, "diag")
    if input.ndim == 1:
        return DiagEmbed.apply(input, int(diagonal), 0, 1)
    if input.ndim == 2:
        return Diagonal.apply(input, int(diagonal), 0, 1)
    raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {input.ndim}D")


def trace(input):
    """The sum of the main diagonal of a 2-D tensor."""
    _tensor(input, "trace")
    if input.ndim != 2:
        raise RuntimeError(f"trace: expected a matrix, but got tensor with dim {input.ndim}")
    return Diagonal.apply(input, 0, 0, 1).sum()


def kron(input, other):
    """The Kronecker product: blocks ``input[i...] * other`` (the smaller-rank operand is
    padded with leading ones)."""
    a, b = _tensor(input, "kron"), _tensor(other, "kron", "other")
    nd = max(a.ndim, b.ndim)
    sa, sb = (1,) * (nd - a.ndim) + tuple(a.shape), (1,) * (nd - b.ndim) + tuple(b.shape)
    a = a.reshape(*[v for n in sa for v in (n, 1)])
    b = b.reshape(*[v for n in sb for v in (1, n)])
    return (a * b).reshape(*[x * y for x, y in zip(sa, sb)])


def tensordot(a, b, dims=2, out=None):
    """Sum of products over the last ``dims`` dims of ``a`` and the first of ``b`` (or over
    the listed dim pairs: ``dims=([1, 0], [0, 1])``)."""
    _tensor(a, "tensordot", "a")
    _tensor(b, "tensordot", "b")
    if out is not None:
        raise NotImplementedError("tensordot: out= is not supported by fastconv; use the "
                                  "returned tensor")
    if isinstance(dims, int) or (hasattr(dims, "ndim") and dims.ndim == 0):
        k = int(dims)
        if k < 0:
            raise RuntimeError(f"tensordot expects dims >= 0, but got dims={k}")
        if k > min(a.ndim, b.ndim):
            raise RuntimeError(f"tensordot expects dims < ndim_a or ndim_b, but got dims={k}")
        da, db = list(range(a.ndim - k, a.ndim)), list(range(k))
    else:
        da, db = dims
        da = [da] if isinstance(da, int) else list(da)
        db = [db] if isinstance(db, int) else list(db)
        if len(da) != len(db):
            raise RuntimeError("both dimension lists should have same length")
        da = [arith._normalise_dims(d, a.ndim)[0] for d in da]
        db = [arith._normalise_dims(d, b.ndim)[0] for d in db]
    for x, y in zip(da, db):
        if a.shape[x] != b.shape[y]:
            raise RuntimeError(f"contracted dimensions need to match, but first has size "
                               f"{a.shape[x]} in dim {x} and second has size {b.shape[y]} in "
                               f"dim {y}")
    free_a = [d for d in range(a.ndim) if d not in da]
    free_b = [d for d in range(b.ndim) if d not in db]
    k = math.prod(a.shape[d] for d in da)
    m = math.prod(a.shape[d] for d in free_a)
    n = math.prod(b.shape[d] for d in free_b)
    left = a.permute(*free_a, *da).reshape(m, k)  # explicit sizes: -1 is ambiguous when empty
    right = b.permute(*db, *free_b).reshape(k, n)
    return (left @ right).reshape(*[a.shape[d] for d in free_a], *[b.shape[d] for d in free_b])


def addmv(input, mat, vec, *, beta=1, alpha=1):
    """``beta * input + alpha * (mat @ vec)`` (input ignored when beta == 0)."""
    _tensor(mat, "addmv", "mat")
    _tensor(vec, "addmv", "vec")
    if mat.ndim != 2 or vec.ndim != 1:
        raise RuntimeError(f"addmv: expected a matrix and a vector, got shapes "
                           f"{tuple(mat.shape)} and {tuple(vec.shape)}")
    return _scaled_sum(input, mat.mv(vec), beta, alpha)


def addr(input, vec1, vec2, *, beta=1, alpha=1):
    """``beta * input + alpha * outer(vec1, vec2)`` (input ignored when beta == 0)."""
    _tensor(vec1, "addr", "vec1")
    _tensor(vec2, "addr", "vec2")
    if vec1.ndim != 1 or vec2.ndim != 1:
        raise RuntimeError(f"addr: Expected 1-D argument vec1 and vec2, but got shapes "
                           f"{tuple(vec1.shape)} and {tuple(vec2.shape)}")
    return _scaled_sum(input, vec1.outer(vec2), beta, alpha)


def _scaled_sum(input, product, beta, alpha):
    out = product if alpha == 1 else product * alpha
    if beta == 0:
        return out
    return out + (input if beta == 1 else input * beta)


def chain_matmul(*matrices):
    """The product of 2-D matrices, left to right (``torch.chain_matmul``)."""
    if len(matrices) == 1 and isinstance(matrices[0], (list, tuple)):
        matrices = tuple(matrices[0])
    if not matrices:
        raise RuntimeError("chain_matmul(): Expected one or more matrices")
    out = None
    for i, m in enumerate(matrices):
        _tensor(m, "chain_matmul", f"matrices[{i}]")
        if m.ndim != 2:
            raise RuntimeError(f"chain_matmul(): Tensor {i} must be 2-D, got {m.ndim}-D")
        out = m if out is None else out @ m
    return out


def block_diag(*tensors):
    """The tensors (0-, 1- or 2-D) on the diagonal of one matrix, zero elsewhere."""
    from fastconv.toplevel import cat

    if not tensors:
        from fastconv.creation import empty

        return empty(1, 0)
    mats = []
    for i, t in enumerate(tensors):
        _tensor(t, "block_diag", f"tensors[{i}]")
        if t.ndim > 2:
            raise RuntimeError(f"torch.block_diag: Input tensors must have 2 or fewer "
                               f"dimensions. Input {i} has {t.ndim} dimensions")
        mats.append(t.reshape(1, -1) if t.ndim < 2 else t)
    dtype = mats[0].dtype
    for m in mats[1:]:
        dtype = dtypes.promote(dtype, m.dtype)
    width = sum(m.shape[1] for m in mats)
    rows, left = [], 0
    for m in mats:
        m = m._cast(dtype)
        right = width - left - m.shape[1]
        rows.append(cat([m.new_zeros(m.shape[0], left), m, m.new_zeros(m.shape[0], right)], 1))
        left += m.shape[1]
    return cat(rows, 0)


def cartesian_prod(*tensors):
    """Every combination of one entry from each 1-D tensor, as rows (itertools.product)."""
    from fastconv.toplevel import meshgrid, stack

    for i, t in enumerate(tensors):
        _tensor(t, "cartesian_prod", f"tensors[{i}]")
        if t.ndim != 1:
            raise RuntimeError(f"Expect a 1D vector, but got shape {list(t.shape)}")
    if len(tensors) == 1:
        return tensors[0]
    return stack([g.reshape(-1) for g in meshgrid(*tensors, indexing="ij")], 1)


def combinations(input, r: int = 2, with_replacement: bool = False):
    """The length-``r`` combinations of a 1-D tensor's entries, as rows
    (itertools.combinations, or combinations_with_replacement)."""
    _tensor(input, "combinations")
    if input.ndim != 1:
        raise RuntimeError(f"Expect a 1D vector, but got shape {list(input.shape)}")
    if r < 0:
        raise RuntimeError(f"Expect a non-negative number, but got {r}")
    if r == 0:
        return input.new_empty(0)
    pick = itertools.combinations_with_replacement if with_replacement \
        else itertools.combinations
    idx = np.array(list(pick(range(input.shape[0]), r)), dtype=np.int64).reshape(-1, r)
    return input[idx.reshape(-1)].reshape(-1, r)


def vander(x, N=None, increasing: bool = False):
    """The Vandermonde matrix of a 1-D tensor: columns ``x**(N-1), ..., x, 1`` (or
    increasing powers)."""
    from fastconv.toplevel import stack

    _tensor(x, "vander", "x")
    if x.ndim != 1:
        raise RuntimeError("x must be a one-dimensional tensor.")
    n = x.shape[0] if N is None else int(N)
    if n < 0:
        raise RuntimeError("N must be non-negative.")
    if n == 0:
        return x.new_empty(x.shape[0], 0)
    one = x * 0 + 1  # a column of ones that stays in the graph (zero gradient), as torch's
    cols = [one] + [x] * (n > 1)
    for _ in range(2, n):
        cols.append(cols[-1] * x)
    if not increasing:
        cols = cols[::-1]
    out = stack(cols, 1)
    return out if out.dtype.kind != "b" else out.long()


def _triangle_indices(op, keep, row, col, offset, dtype, device):
    from fastconv.tensor import Tensor

    for name, v in (("row", row), ("col", col)):
        if v < 0:
            raise RuntimeError(f"{op}: {name} must be non-negative, got {v}")
    i, j = np.indices((row, col))
    mask = keep(j - i, offset)
    out = np.stack([i[mask], j[mask]]).astype(dtypes.resolve(dtype or dtypes.int64))
    return Tensor(out).to(device) if device is not None else Tensor(out)


def tril_indices(row: int, col: int, offset: int = 0, *, dtype=None, device=None, layout=None):
    """The (2, N) row and column indices of the lower triangle (j - i <= offset), row by row."""
    return _triangle_indices("tril_indices", lambda d, k: d <= k, row, col, offset, dtype,
                             device)


def triu_indices(row: int, col: int, offset: int = 0, *, dtype=None, device=None, layout=None):
    """The (2, N) row and column indices of the upper triangle (j - i >= offset), row by row."""
    return _triangle_indices("triu_indices", lambda d, k: d >= k, row, col, offset, dtype,
                             device)


def cdist(x1, x2, p: float = 2.0, compute_mode="use_mm_for_euclid_dist_if_necessary"):
    """p-norm distances between each row vector of ``x1`` (..., P, M) and each of ``x2``
    (..., R, M): a (..., P, R) tensor, batch dims broadcast. Computed from the differences
    (exact at zero distance, where the gradient is zero as PyTorch's)."""
    _tensor(x1, "cdist", "x1")
    _tensor(x2, "cdist", "x2")
    if x1.ndim < 2 or x2.ndim < 2:
        raise RuntimeError(f"cdist only supports at least 2D tensors, X1 got: {x1.ndim}D, "
                           f"X2 got: {x2.ndim}D")
    if x1.shape[-1] != x2.shape[-1]:
        raise RuntimeError(f"X1 and X2 must have the same number of columns. X1: "
                           f"{x1.shape[-1]} X2: {x2.shape[-1]}")
    if x1.dtype.kind != "f" or x2.dtype.kind != "f":
        raise RuntimeError(f"cdist only supports floating-point dtypes, X1 got: {x1.dtype}, "
                           f"X2 got: {x2.dtype}")
    if not p >= 0:
        raise RuntimeError(f"cdist only supports non-negative p values, got {p}")
    if compute_mode not in ("use_mm_for_euclid_dist_if_necessary", "use_mm_for_euclid_dist",
                            "donot_use_mm_for_euclid_dist"):
        raise ArgumentError(f"{compute_mode} is not a valid value for compute_mode")
    return (x1.unsqueeze(-2) - x2.unsqueeze(-3)).norm(p, -1)


def dist(input, other, p: float = 2):
    """The p-norm of ``input - other`` (broadcast), as a 0-d tensor."""
    _tensor(input, "dist")
    return (input - other).norm(p)


def renorm(input, p: float, dim: int, maxnorm: float):
    """Each slice along ``dim`` whose p-norm exceeds ``maxnorm`` scaled down to norm
    ``maxnorm`` (the others unchanged), as ``torch.renorm``."""
    _tensor(input, "renorm")
    if not p > 0:
        raise RuntimeError(f"renorm: non-positive-norm not supported, got p={p}")
    if maxnorm < 0:
        raise RuntimeError(f"renorm: expected maxnorm to be >= 0 but got {maxnorm}")
    if input.ndim <= 1:
        raise RuntimeError(f"renorm: input needs at least 2 dimensions, got {input.ndim} "
                           "dimensions")
    (d,) = arith._normalise_dims(dim, input.ndim)
    others = tuple(k for k in range(input.ndim) if k != d)
    norms = input.norm(p, others, keepdim=True)
    factor = (maxnorm / (norms + 1e-7)).clamp(max=1.0)
    return input * factor
