"""``torch.linalg`` for fastconv: norms, inverses, determinants, solvers and factorisations.

Names, arguments, defaults, batching (``(*, m, n)`` inputs) and error types follow
``torch.linalg``; each function is differentiable wherever torch's is, with torch's gradient
(the backward formulas sit next to the forwards in :mod:`fastconv.ops.linalg`). The work runs
on the LAPACK of the input's array module: NumPy's on the CPU, CuPy's (cuSOLVER) on the GPU,
in float32 (``matrix_exp``, which no LAPACK routine has, in float64, rounded once).

A singular matrix (``inv``, ``solve``, ``matrix_power`` with n < 0) or one that is not
positive-definite (``cholesky``) raises :class:`LinAlgError` (a RuntimeError, as
``torch.linalg.LinAlgError``) naming the batch element, never returns NaNs.

Decompositions that torch returns as named tuples come back as named tuples with torch's
field names (``Q, R = fastconv.linalg.qr(A)``, ``out.eigenvalues``, ...).

Where fastconv differs:

* No complex tensors, so no ``eig`` / ``eigvals`` (whose results are complex for a real
  matrix); ``eigh`` / ``eigvalsh`` cover the symmetric case.
* ``det``'s gradient at an exactly singular matrix is its adjugate (the true derivative,
  torch's answer with ``create_graph=True``); torch's default backward returns zeros there.
* ``lstsq`` computes the minimum-norm solution through ``pinv`` for every ``driver`` (torch's
  own gradient goes through ``pinv`` too), so rank-deficient systems get the same solution
  as torch's default ``gelsy`` driver; ``residuals``, ``rank`` and ``singular_values`` are
  filled in for the drivers for which torch fills them in.
* ``solve_triangular`` with a zero on the diagonal raises LinAlgError (torch returns inf/NaN).
"""

from __future__ import annotations

import math
import operator
from collections import namedtuple

import numpy as np

from fastconv import dtypes
from fastconv.backend import get_backend
from fastconv.ops import linalg as ops
from fastconv.ops import matrix as matrix_ops
from fastconv.ops import vector_norm as vector_norm_ops
from fastconv.ops.arith import _normalise_dims
from fastconv.ops.linalg import LinAlgError
from fastconv.tensor import Tensor

__all__ = [
    "LinAlgError", "cholesky", "cond", "cross", "det", "diagonal", "eigh", "eigvalsh", "inv",
    "lstsq", "matmul", "matrix_exp", "matrix_norm", "matrix_power", "matrix_rank", "multi_dot",
    "norm", "pinv", "qr", "slogdet", "solve", "solve_triangular", "svd", "svdvals", "vecdot",
    "vector_norm",
]

# torch.return_types
linalg_slogdet = namedtuple("linalg_slogdet", ["sign", "logabsdet"])
linalg_qr = namedtuple("linalg_qr", ["Q", "R"])
linalg_eigh = namedtuple("linalg_eigh", ["eigenvalues", "eigenvectors"])
linalg_svd = namedtuple("linalg_svd", ["U", "S", "Vh"])
linalg_lstsq = namedtuple("linalg_lstsq", ["solution", "residuals", "rank", "singular_values"])

_TYPE_NAMES = {"i": {8: "Long", 4: "Int", 2: "Short", 1: "Char"}, "u": "Byte", "b": "Bool"}


# ----------------------------------------------------------------------------- argument checks


def _float(t, op, name="A"):
    """``t`` must be a floating-point Tensor (torch: integer input is an error, not promoted)."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}(): argument '{name}' must be a fastconv.Tensor, not "
                        f"{type(t).__name__}")
    if t.dtype.kind != "f":
        kind = _TYPE_NAMES.get(t.dtype.kind, str(t.dtype))
        kind = kind[t.dtype.itemsize] if isinstance(kind, dict) else kind
        raise RuntimeError(f"{op}: Expected a floating point or complex tensor as input. "
                           f"Got {kind}")
    return t


def _matrix(t, op, name="A"):
    _float(t, op, name)
    if t.ndim < 2:
        raise RuntimeError(f"{op}: The input tensor {name} must have at least 2 dimensions "
                           f"(got shape {tuple(t.shape)}).")
    return t


def _square(t, op, name="A"):
    _matrix(t, op, name)
    m, n = t.shape[-2:]
    if m != n:
        raise RuntimeError(f"{op}: {name} must be batches of square matrices, but they are "
                           f"{m} by {n} matrices (shape {tuple(t.shape)}).")
    return t


def _no_out(out, op):
    if out is not None:
        raise NotImplementedError(f"{op}: out= is not supported by fastconv; use the returned "
                                  "tensor")


def _dtype(t, dtype, op):
    return t if dtype is None else t._cast(dtypes.storable(dtype, op, stacklevel=3))


def _batch_broadcast(op, a, b):
    try:
        return tuple(np.broadcast_shapes(a, b))
    except ValueError:
        raise RuntimeError(f"{op}: the batch dimensions {tuple(a)} and {tuple(b)} do not "
                           "broadcast") from None


def _unpack(packed: Tensor, batch, shapes):
    """Tensors of ``shapes`` (after the batch dims) out of a packed Function output."""
    out, start = [], 0
    for shape in shapes:
        size = math.prod(shape)
        out.append(packed[..., start:start + size].reshape(*batch, *shape))
        start += size
    return out


def _xp(t):
    return get_backend(t.device).xp


# ----------------------------------------------------------------------------- norms


def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None, out=None):
    """The vector ``ord``-norm ``(sum |x|^ord)^(1/ord)`` over ``dim`` (an int, a tuple, or
    None: every element). ``ord``: any real number, ``inf`` (max |x|), ``-inf`` (min |x|) or
    0 (the number of non-zero elements). Gradient as torch's (zero where the norm is zero)."""
    op = "linalg.vector_norm"
    _no_out(out, op)
    _float(x, op, "x")
    if isinstance(ord, bool) or not isinstance(ord, (int, float)):
        raise TypeError(f"{op}(): argument 'ord' must be a number, not {type(ord).__name__} "
                        "(matrix norms such as 'fro' and 'nuc' are linalg.matrix_norm's)")
    x = _dtype(x, dtype, op)
    dims = _reduce_dims(op, dim, x.ndim)
    ord = float(ord)
    if x.numel() == 0 and (ord < 0 or ord == math.inf):
        for d in dims if dims else range(x.ndim):
            if x.shape[d] == 0:
                raise RuntimeError(f"{op} cannot compute the {ord:g} norm on an empty tensor "
                                   f"because the operation does not have an identity "
                                   f"(dim {d} of shape {tuple(x.shape)} is empty)")
    return vector_norm_ops.VectorNorm.apply(x, ord, dims, keepdim)


def _reduce_dims(op, dim, ndim):
    """The sorted dims to reduce: all for None or (), an error for a repeated one."""
    if ndim == 0:
        if dim not in (None, (), [], 0, -1):
            raise IndexError(f"Dimension out of range (expected to be in range of [-1, 0], but "
                             f"got {dim})")
        return ()
    if dim is None or (isinstance(dim, (tuple, list)) and len(dim) == 0):
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    wrapped = []
    for d in dims:
        if not -ndim <= d < ndim:
            raise IndexError(f"Dimension out of range (expected to be in range of [{-ndim}, "
                             f"{ndim - 1}], but got {d})")
        if d % ndim in wrapped:
            raise RuntimeError(f"dim {d % ndim} appears multiple times in the list of dims")
        wrapped.append(d % ndim)
    return tuple(sorted(wrapped))


_MATRIX_ORDS = ("fro", "nuc", 1, -1, 2, -2, math.inf, -math.inf)


def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim=False, *, dtype=None, out=None):
    """The matrix norm over the two dims ``dim``: ``'fro'`` (Frobenius), ``'nuc'`` (sum of the
    singular values), 2 / -2 (largest / smallest singular value), 1 / -1 (max / min column
    sum of |A|), ``inf`` / ``-inf`` (max / min row sum of |A|)."""
    op = "linalg.matrix_norm"
    _no_out(out, op)
    _matrix(A, op)
    A = _dtype(A, dtype, op)
    if isinstance(dim, int):
        raise TypeError(f"{op}(): argument 'dim' must be a tuple of two ints, not int")
    if len(tuple(dim)) != 2:
        raise RuntimeError(f"{op}: dim must be a 2-tuple. Got {' '.join(map(str, dim))}")
    d0, d1 = (_normalise_dims(d, A.ndim)[0] for d in dim)
    if d0 == d1:
        raise RuntimeError(f"{op}: dims must be different. Got ({dim[0]}, {dim[1]})")
    if isinstance(ord, bool) or ord not in _MATRIX_ORDS:
        raise RuntimeError(f"{op}: Order {ord} not supported.")
    if ord == "fro":
        return vector_norm(A, 2, (d0, d1), keepdim)
    if ord in ("nuc", 2, -2):
        perm = [d for d in range(A.ndim) if d not in (d0, d1)] + [d0, d1]
        s = svdvals(A.permute(*perm))
        r = s.sum(-1) if ord == "nuc" else s.amax(-1) if ord == 2 else s.amin(-1)
        if keepdim:
            for d in sorted((d0, d1)):
                r = r.unsqueeze(d)
        return r
    # 1 / -1: sum over rows (dim 0) then max/min over columns; inf / -inf the other way round
    first, second = (d0, d1) if abs(ord) == 1 else (d1, d0)
    sums = A.abs().sum(first, keepdim=True)
    r = sums.amax(second, keepdim=True) if ord > 0 else sums.amin(second, keepdim=True)
    return r if keepdim else r.squeeze(max(d0, d1)).squeeze(min(d0, d1))


def norm(A, ord=None, dim=None, keepdim=False, *, dtype=None, out=None):
    """``vector_norm`` or ``matrix_norm``, chosen as torch does: a matrix norm when ``ord`` is
    a string, or when ``ord`` is given and ``dim`` is a 2-tuple (or A is 2-D and dim is None);
    otherwise the vector norm (ord 2 by default, over every element when dim is None)."""
    op = "linalg.norm"
    _no_out(out, op)
    _float(A, op)
    if dim is not None:
        dim = (dim,) if isinstance(dim, int) else tuple(dim)
        if len(dim) not in (1, 2):
            raise RuntimeError(f"{op}: If dim is specified, it must be of length 1 or 2. Got "
                               f"{list(dim)}")
    elif ord is not None and A.ndim not in (1, 2):
        raise RuntimeError(f"{op}: If dim is not specified but ord is, the input must be 1D or "
                           f"2D. Got {A.ndim}D.")
    if isinstance(ord, str) or (ord is not None and (len(dim) == 2 if dim is not None
                                                       else A.ndim == 2)):
        return matrix_norm(A, ord, dim if dim is not None else (0, 1), keepdim, dtype=dtype)
    return vector_norm(A, 2 if ord is None else ord, dim, keepdim, dtype=dtype)


def cond(A, p=None, *, out=None):
    """The condition number of A in the norm ``p``: ``s_max / s_min`` for None, 2 (and
    ``s_min / s_max`` for -2) from the singular values; otherwise ``||A||_p ||A^-1||_p``
    (square, invertible A) for 'fro', 'nuc', 1, -1, inf, -inf."""
    op = "linalg.cond"
    _no_out(out, op)
    _matrix(A, op)
    if p in (None, 2, -2):
        s = svdvals(A)
        return s[..., 0] / s[..., -1] if p != -2 else s[..., -1] / s[..., 0]
    _square(A, op)
    return matrix_norm(A, p) * matrix_norm(inv(A), p)


# ----------------------------------------------------------------------------- inverse, det


def inv(A, *, out=None):
    """The inverse of each square matrix in ``A`` (*, n, n). Singular -> LinAlgError."""
    _no_out(out, "linalg.inv")
    _square(A, "linalg.inv")
    return ops.Inv.apply(A)


def det(A, *, out=None):
    """The determinant of each square matrix (LU). Differentiable, singular matrices included
    (the gradient is the adjugate transposed)."""
    _no_out(out, "linalg.det")
    _square(A, "linalg.det")
    return ops.Det.apply(A)


def slogdet(A, *, out=None):
    """``(sign, logabsdet)`` with ``det(A) = sign * exp(logabsdet)``: the log-determinant
    without overflow. ``sign`` is 0 and ``logabsdet`` -inf for a singular matrix; only
    logabsdet has a gradient (``A^{-T}``)."""
    _no_out(out, "linalg.slogdet")
    return linalg_slogdet(*_slogdet(A, "linalg.slogdet"))


def _slogdet(A, op):
    _square(A, op)
    sign = []
    logabsdet = ops.LogAbsDet.apply(A, sign)
    return Tensor(sign[0]), logabsdet


# ----------------------------------------------------------------------------- solvers


def _is_vector_rhs(A, B):
    return B.ndim == 1 or (B.ndim == A.ndim - 1 and tuple(B.shape) == tuple(A.shape[:-1]))


def solve(A, B, *, left=True, out=None):
    """The solution X of ``A X = B`` (``X A = B`` with ``left=False``) for square A (*, n, n)
    and B (*, n, k), or B (*, n) a batch of vectors (as torch decides: B is 1-D, or has A's
    shape without its last dim); batch dims broadcast. Singular A -> LinAlgError."""
    op = "linalg.solve"
    _no_out(out, op)
    _square(A, op)
    _float(B, op, "B")
    vector = _is_vector_rhs(A, B)
    n = A.shape[-1]
    if not left:
        if vector:
            raise RuntimeError(f"{op}: Vector broadcasting of the left hand side is not "
                               "supported for left=False. In this case linalg.solve is "
                               "equivalent to B / A.squeeze(-1)")
        if B.ndim < 2 or B.shape[-1] != n:
            cols = B.shape[-2] if B.ndim >= 2 else 1
            raise RuntimeError(f"{op}: Incompatible shapes of A and B for the equation XA = B "
                               f"({n}x{n} and {cols}x{B.shape[-1]})")
        _batch_broadcast(op, A.shape[:-2], B.shape[:-2])
        return ops.Solve.apply(A.mT, B.mT).mT
    b = B.unsqueeze(-1) if vector else B
    if b.shape[-2] != n:
        raise RuntimeError(f"{op}: Incompatible shapes of A and B for the equation AX = B "
                           f"({n}x{n} and {b.shape[-2]}x{b.shape[-1]})")
    _batch_broadcast(op, A.shape[:-2], b.shape[:-2])
    x = ops.Solve.apply(A, b)
    return x.squeeze(-1) if vector else x


def solve_triangular(A, B, *, upper, left=True, unitriangular=False, out=None):
    """The solution X of ``A X = B`` (``X A = B`` with ``left=False``) reading only the upper
    or lower triangle of A (its diagonal taken as ones with ``unitriangular``). The gradient
    of A lies in that triangle, as torch's."""
    op = "linalg.solve_triangular"
    _no_out(out, op)
    _square(A, op)
    _matrix(B, op, "B")
    tri = A.triu(1 if unitriangular else 0) if upper else A.tril(-1 if unitriangular else 0)
    if unitriangular:
        tri = tri + Tensor(_xp(A).eye(A.shape[-1], dtype=A.dtype))
    return solve(tri, B, left=left)


def lstsq(A, B, rcond=None, *, driver=None):
    """The least-squares solution of ``A X = B`` for A (*, m, n) and B (*, m, k) (or (*, m)),
    as ``(solution, residuals, rank, singular_values)``. The solution is the minimum-norm one,
    ``pinv(A, rtol=rcond) @ B`` (rcond defaults to float32's eps times max(m, n)), with
    torch's gradient. ``residuals`` (the squared residual norms of each column) is filled in
    when m > n, every A has full rank and the driver is not 'gelsy'; ``rank`` for 'gelsy',
    'gelsd', 'gelss'; ``singular_values`` for 'gelsd', 'gelss' (as torch's CPU drivers)."""
    op = "torch.linalg.lstsq"
    _matrix(A, op)
    _float(B, op, "B")
    if driver is None:
        driver = "gelsy" if A.device == "cpu" else "gels"
    if driver not in ("gels", "gelsy", "gelsd", "gelss"):
        raise RuntimeError(f"{op}: parameter `driver` should be one of (gels, gelsy, gelsd, "
                           f"gelss), got {driver!r}")
    if not 0 <= A.ndim - B.ndim <= 1:
        raise RuntimeError(f"{op}: input.dim() must be greater or equal to other.dim() and "
                           f"(input.dim() - other.dim()) <= 1 (got shapes {tuple(A.shape)} and "
                           f"{tuple(B.shape)})")
    vector = A.ndim - B.ndim == 1
    b = B.unsqueeze(-1) if vector else B
    m, n = A.shape[-2:]
    if b.shape[-2] != m:
        raise RuntimeError(f"{op}: input.size(-2) should match other.size(-2) (got shapes "
                           f"{tuple(A.shape)} and {tuple(B.shape)})")
    _batch_broadcast(op, A.shape[:-2], b.shape[:-2])
    rtol = float(np.finfo(np.float32).eps) * max(m, n) if rcond is None else rcond
    x = pinv(A, rtol=rtol) @ b
    xp = _xp(A)
    empty = Tensor(xp.zeros((0,), A.dtype))
    rank = Tensor(xp.zeros((0,), np.int64))
    values = empty
    if driver in ("gelsy", "gelsd", "gelss"):
        rank = matrix_rank(A, rtol=rtol)
    if driver in ("gelsd", "gelss"):
        values = svdvals(A).detach()
    residuals = empty
    if m > n and driver != "gelsy":
        full = rank if rank.numel() else matrix_rank(A, rtol=rtol)
        if bool((full.data == n).all()):
            residuals = ((A @ x - b) ** 2).sum(-2)
    return linalg_lstsq(x.squeeze(-1) if vector else x, residuals, rank, values)


# ----------------------------------------------------------------------------- factorisations


def cholesky(A, *, upper=False, out=None):
    """The Cholesky factor of each symmetric positive-definite matrix (only its lower triangle
    is read): lower L with ``A = L L^T``, or upper ``U = L^T`` with ``upper=True``. Not
    positive-definite -> LinAlgError naming the leading minor."""
    _no_out(out, "linalg.cholesky")
    _square(A, "linalg.cholesky")
    low = ops.Cholesky.apply(A)
    return low.mT if upper else low


def qr(A, mode="reduced", *, out=None):
    """``A = Q R`` with orthonormal columns in Q and upper-triangular R, as ``(Q, R)``.
    ``mode``: 'reduced' (Q (*, m, k), R (*, k, n), k = min(m, n)), 'complete' (Q (*, m, m),
    R (*, m, n)) or 'r' (R only, Q empty). Differentiable for 'reduced', and for 'complete'
    when m <= n."""
    _no_out(out, "linalg.qr")
    if mode not in ("reduced", "complete", "r"):
        raise RuntimeError(f"qr received unrecognized mode '{mode}' but expected one of "
                           "'reduced' (default), 'r', or 'complete'")
    _matrix(A, "linalg.qr")
    batch = tuple(A.shape[:-2])
    m, n = A.shape[-2:]
    k = min(m, n)
    packed = ops.QR.apply(A, mode)
    if mode == "r":
        _, r = _unpack(packed, batch, [(m, 0), (k, n)])
        return linalg_qr(Tensor(_xp(A).zeros((0,), A.dtype)), r)
    cols = k if mode == "reduced" else m
    q, r = _unpack(packed, batch, [(m, cols), (cols, n)])
    return linalg_qr(q, r)


def _uplo(UPLO):
    if UPLO not in ("L", "U"):
        raise RuntimeError(f"Expected UPLO argument to be 'L' or 'U', but got {UPLO}")


def eigh(A, UPLO="L", *, out=None):
    """Eigenvalues (ascending) and orthonormal eigenvectors (columns) of each symmetric
    matrix, read from its lower (``UPLO='L'``) or upper triangle, as ``(eigenvalues,
    eigenvectors)``. An eigenvector's sign is arbitrary (LAPACK's choice); gradients through
    the eigenvectors need distinct eigenvalues, as in torch."""
    _no_out(out, "linalg.eigh")
    _uplo(UPLO)
    _square(A, "linalg.eigh")
    n = A.shape[-1]
    packed = ops.Eigh.apply(A, UPLO, True)
    w, v = _unpack(packed, tuple(A.shape[:-2]), [(n,), (n, n)])
    return linalg_eigh(w, v)


def eigvalsh(A, UPLO="L", *, out=None):
    """The eigenvalues (ascending) of each symmetric matrix (see :func:`eigh`)."""
    _no_out(out, "linalg.eigvalsh")
    _uplo(UPLO)
    _square(A, "linalg.eigvalsh")
    return ops.Eigh.apply(A, UPLO, False)


def svd(A, full_matrices=True, *, driver=None, out=None):
    """``A = U diag(S) Vh`` with the singular values S descending, as ``(U, S, Vh)``; U is
    (*, m, m) and Vh (*, n, n) with ``full_matrices`` (the default, as torch), else (*, m, k)
    and (*, k, n). Singular vectors' signs are arbitrary; gradients through U or Vh need
    distinct singular values (and full rank when m != n), as in torch. ``driver`` (a cuSOLVER
    choice in torch) is accepted and ignored."""
    _no_out(out, "linalg.svd")
    _matrix(A, "linalg.svd")
    m, n = A.shape[-2:]
    k = min(m, n)
    packed = ops.SVD.apply(A, bool(full_matrices), True)
    u_cols, vh_rows = (m, n) if full_matrices else (k, k)
    u, s, vh = _unpack(packed, tuple(A.shape[:-2]), [(m, u_cols), (k,), (vh_rows, n)])
    return linalg_svd(u, s, vh)


def svdvals(A, *, driver=None, out=None):
    """The singular values of each matrix, descending (gradient ``U diag(g) Vh``)."""
    _no_out(out, "linalg.svdvals")
    _matrix(A, "linalg.svdvals")
    return ops.SVD.apply(A, False, False)


def _tolerances(A, atol, rtol, op):
    """torch's (atol, rtol) as arrays over the batch: atol 0 when None; rtol eps * max(m, n)
    when None, or 0 when None and atol > 0."""
    xp = _xp(A)
    batch = tuple(A.shape[:-2])

    def arr(v):
        if isinstance(v, Tensor):
            return xp.broadcast_to(v.data.astype(np.float32), batch)
        return xp.full(batch, float(v), np.float32)

    default = float(np.finfo(np.float32).eps) * max(A.shape[-2:])
    a = arr(0.0 if atol is None else atol)
    if rtol is not None:
        r = arr(rtol)
    elif atol is not None:
        r = xp.where(a > 0, np.float32(0), np.float32(default))
    else:
        r = arr(default)
    return a, r


def pinv(A, rcond=None, hermitian=False, *, atol=None, rtol=None, out=None):
    """The Moore-Penrose pseudo-inverse (*, n, m) of A (*, m, n), through the SVD (or the
    symmetric eigendecomposition with ``hermitian=True``). Singular values at or below
    ``max(atol, rtol * s_max)`` count as zero (rtol defaults to eps * max(m, n), or 0 when only
    atol is given; the older ``rcond`` is rtol)."""
    op = "linalg.pinv"
    _no_out(out, op)
    _matrix(A, op)
    if rcond is not None:
        if rtol is not None:
            raise RuntimeError(f"{op}: rcond and rtol are the same argument; give one")
        rtol = rcond
    if hermitian:
        _square(A, op)
    a, r = _tolerances(A, atol, rtol, op)
    return ops.Pinv.apply(A, a, r, bool(hermitian))


def matrix_rank(A, tol=None, hermitian=False, *, atol=None, rtol=None, out=None):
    """The number of singular values above ``max(atol, rtol * s_max)`` (tolerances as
    :func:`pinv`; the older ``tol`` is atol with rtol 0), as an int64 tensor."""
    op = "linalg.matrix_rank"
    _no_out(out, op)
    _matrix(A, op)
    if tol is not None:
        if atol is not None or rtol is not None:
            raise RuntimeError(f"{op}: tol is the old name of atol (with rtol=0); give one")
        atol, rtol = tol, 0.0
    a, r = _tolerances(A, atol, rtol, op)
    xp = _xp(A)
    if hermitian:
        _square(A, op)
        s = xp.abs(xp.linalg.eigvalsh(A.data)) if A.numel() else xp.zeros(A.shape[:-1])
        smax = s.max(axis=-1, keepdims=True) if s.shape[-1] else xp.zeros(s.shape[:-1] + (1,))
    else:
        s = (xp.linalg.svd(A.data, compute_uv=False) if A.numel()
             else xp.zeros(A.shape[:-2] + (min(A.shape[-2:]),), np.float32))
        smax = s[..., :1] if s.shape[-1] else xp.zeros(s.shape[:-1] + (1,), np.float32)
    tol_ = xp.maximum(a[..., None], r[..., None] * smax)
    return Tensor((s > tol_).sum(axis=-1).astype(np.int64))


# ----------------------------------------------------------------------------- products


def matmul(input, other, *, out=None):
    """Matrix product with broadcasting (``fastconv.matmul``)."""
    _no_out(out, "linalg.matmul")
    return input @ other


def vecdot(x, y, *, dim=-1, out=None):
    """``sum(x * y, dim)`` with broadcasting (the dot product of vectors along ``dim``)."""
    _no_out(out, "linalg.vecdot")
    _float(x, "linalg.vecdot", "x")
    _float(y, "linalg.vecdot", "y")
    return (x * y).sum(dim)


def cross(input, other, *, dim=-1, out=None):
    """The cross product of 3-vectors along ``dim`` (the two inputs broadcast)."""
    op = "linalg.cross"
    _no_out(out, op)
    _float(input, op, "input")
    _float(other, op, "other")
    if input.ndim != other.ndim:
        raise RuntimeError(f"{op}: inputs must have the same number of dimensions (got shapes "
                           f"{tuple(input.shape)} and {tuple(other.shape)})")
    try:
        shape = tuple(np.broadcast_shapes(input.shape, other.shape))
    except ValueError:
        raise RuntimeError(f"{op}: the shapes {tuple(input.shape)} and {tuple(other.shape)} "
                           "do not broadcast") from None
    (d,) = _normalise_dims(dim, len(shape))
    if input.shape[d] != 3 or other.shape[d] != 3:
        raise RuntimeError(f"{op}: inputs dimension {dim} must have length 3. Got "
                           f"{input.shape[d]} and {other.shape[d]}")
    a, b = input.expand(*shape), other.expand(*shape)
    # (a1 b2 - a2 b1, a2 b0 - a0 b2, a0 b1 - a1 b0)
    return a.roll(-1, d) * b.roll(1, d) - a.roll(1, d) * b.roll(-1, d)


def multi_dot(tensors, *, out=None):
    """The product of a chain of matrices, multiplied in the cheapest order (dynamic
    programming over the chain); the first may be 1-D (a row vector) and the last 1-D (a
    column vector), as torch."""
    op = "multi_dot()"
    _no_out(out, "linalg.multi_dot")
    ts = list(tensors)
    if len(ts) < 2:
        raise RuntimeError(f"{op}: expected at least 2 tensors but got {len(ts)}")
    for i, t in enumerate(ts):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: tensor {i} must be a fastconv.Tensor, not "
                            f"{type(t).__name__}")
    first, last = ts[0].ndim, ts[-1].ndim
    if first not in (1, 2):
        raise RuntimeError(f"{op}: the first tensor must be 1D or 2D but got {first}D")
    if last not in (1, 2):
        raise RuntimeError(f"{op}: the last tensor must be 1D or 2D but got {last}D")
    for i, t in enumerate(ts[1:-1], 1):
        if t.ndim != 2:
            raise RuntimeError(f"{op}: tensor {i} must be 2D but got {t.ndim}D")
    mats = list(ts)
    if first == 1:
        mats[0] = mats[0].unsqueeze(0)
    if last == 1:
        mats[-1] = mats[-1].unsqueeze(-1)
    for i in range(len(mats) - 1):
        if mats[i].shape[1] != mats[i + 1].shape[0]:
            raise RuntimeError(f"{op}: tensors {i} and {i + 1} with shapes "
                               f"{list(ts[i].shape)} and {list(ts[i + 1].shape)} cannot be "
                               "multiplied")
    result = _chain(mats)
    if first == 1 and last == 1:
        return result.reshape(())
    if first == 1:
        return result.squeeze(0)
    if last == 1:
        return result.squeeze(-1)
    return result


def _chain(mats):
    """The product of 2-D tensors in the order with the fewest multiplications."""
    dims = [mats[0].shape[0]] + [m.shape[1] for m in mats]
    n = len(mats)
    cost = [[0] * n for _ in range(n)]
    split_at = [[0] * n for _ in range(n)]
    for length in range(1, n):
        for i in range(n - length):
            j = i + length
            cost[i][j] = math.inf
            for k in range(i, j):
                c = cost[i][k] + cost[k + 1][j] + dims[i] * dims[k + 1] * dims[j + 1]
                if c < cost[i][j]:
                    cost[i][j], split_at[i][j] = c, k

    def product(i, j):
        if i == j:
            return mats[i]
        k = split_at[i][j]
        return product(i, k) @ product(k + 1, j)

    return product(0, n - 1)


def matrix_power(A, n, *, out=None):
    """``A^n`` for an integer n by repeated squaring: the identity for n = 0, powers of
    ``inv(A)`` for n < 0 (singular A -> LinAlgError)."""
    op = "linalg.matrix_power"
    _no_out(out, op)
    if not isinstance(A, Tensor):
        raise TypeError(f"{op}(): argument 'A' must be a fastconv.Tensor, not "
                        f"{type(A).__name__}")
    if A.ndim < 2:
        raise RuntimeError(f"{op}: The input tensor A must have at least 2 dimensions (got "
                           f"shape {tuple(A.shape)}).")
    if A.shape[-1] != A.shape[-2]:
        raise RuntimeError(f"{op}: A must be batches of square matrices, but they are "
                           f"{A.shape[-2]} by {A.shape[-1]} matrices (shape {tuple(A.shape)}).")
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"{op}(): argument 'n' must be an int, not {type(n).__name__}") from None
    if n == 0:
        eye = _xp(A).broadcast_to(_xp(A).eye(A.shape[-1], dtype=A.dtype), A.shape)
        return Tensor(eye.copy())
    base = inv(A) if n < 0 else A
    n = abs(n)
    result = None
    while n:
        if n & 1:
            result = base if result is None else result @ base
        n >>= 1
        if n:
            base = base @ base
    return result


def diagonal(A, *, offset=0, dim1=-2, dim2=-1):
    """The diagonal ``offset`` (above the main one for > 0) of the planes (dim1, dim2), as a
    last dim (``torch.linalg.diagonal``; ``Tensor.diagonal`` defaults to dims 0 and 1)."""
    return matrix_ops.diagonal(A, offset, dim1, dim2)


def matrix_exp(A):
    """``exp(A) = sum_k A^k / k!`` of each square matrix (scaling and squaring with a Padé
    approximant, in float64), with torch's gradient (the Fréchet derivative)."""
    _square(A, "linalg.matrix_exp")
    return ops.MatrixExp.apply(A)


# ----------------------------------------------------------------------------- not provided

_MISSING = {
    "eig": "fastconv has no complex tensors (a real matrix's eigenvalues are complex); use "
           "eigh for symmetric matrices",
    "eigvals": "fastconv has no complex tensors; use eigvalsh for symmetric matrices",
}


def __getattr__(name):
    if name in _MISSING:
        raise AttributeError(f"fastconv.linalg has no {name!r}: {_MISSING[name]}")
    raise AttributeError(f"module 'fastconv.linalg' has no attribute {name!r}")
