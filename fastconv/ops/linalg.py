"""Matrix factorisations, solvers and norms: the differentiable core of :mod:`fastconv.linalg`.

Each op runs batched over the leading dims on the LAPACK of its input's array module
(``numpy.linalg`` on the CPU, ``cupy.linalg`` / cuSOLVER on the GPU), in float32, and keeps
its backward next to its forward. The backward formulas are PyTorch's (``FunctionsManual.cpp``:
``linalg_det_backward``, ``cholesky_backward``, ``linalg_qr_backward``,
``linalg_eig_backward``, ``svd_backward``, ``pinv_backward``, ``norm_backward``), so
gradients agree with torch's wherever the function is differentiable; the references are
M. Giles, "An extended collection of matrix derivative results for forward and reverse mode
AD" (2008), I. Murray, "Differentiation of the Cholesky decomposition" (2016) and
J. Townsend, "Differentiating the singular value decomposition" (2016).

Several outputs, one Function. A Function returns one array, so ``qr``, ``eigh`` and ``svd``
return their outputs packed: each one flattened over its matrix dims and concatenated along
a last axis (``pack``); :mod:`fastconv.linalg` slices them back out as tensors
(``unpack``: differentiable indexing and reshapes). The gradient of an output the loss does
not use then arrives as zeros, and the backward treats an all-zero block as absent, as torch
treats an undefined gradient (so a loss on the eigenvalues alone of a matrix with a repeated
eigenvalue keeps a finite gradient).

The matrix exponential is computed here too (no LAPACK routine has it): scaling and
squaring with the [13/13] Padé approximant (Higham, "The scaling and squaring method for the
matrix exponential revisited", SIAM J. Matrix Anal. Appl. 26(4), 2005), in float64 and
rounded once to float32; its gradient is the Fréchet derivative of exp at A^T in the
direction G, read off the upper-right block of exp([[A^T, G], [0, A^T]]) (Mathias, "A chain
rule for matrix functions and applications", 1996), as torch's.

Failures. LAPACK reports a singular matrix (inv, solve) or one that is not positive-definite
(cholesky) through its ``info``; NumPy raises on it, CuPy checks it only inside
``cupyx.errstate(linalg="raise")``, which :func:`lapack` sets. Either becomes a
:class:`LinAlgError` (a RuntimeError, as ``torch.linalg.LinAlgError``) naming the op and the
first failing batch element, never NaN output.
"""

from __future__ import annotations

import math

import numpy as np

from fastconv import autograd
from fastconv.function import Function
from fastconv.ops.arith import unbroadcast
from fastconv.ops.math import _exclusive_cumprod

EPS32 = float(np.finfo(np.float32).eps)


class LinAlgError(RuntimeError):
    """A matrix that a factorisation or solver cannot handle: singular (inv, solve) or not
    positive-definite (cholesky). ``torch.linalg.LinAlgError``'s counterpart (also a
    RuntimeError)."""


# ----------------------------------------------------------------------------- helpers


def mT(a):
    """The transpose of the last two dims (the real adjoint)."""
    return a.swapaxes(-1, -2)


def triangle(xp, a, k=0, lower=True):
    """``tril(a, k)`` (or ``triu``) over the last two dims of a batch of matrices."""
    rows, cols = a.shape[-2:]
    offset = xp.arange(cols)[None, :] - xp.arange(rows)[:, None]
    keep = offset <= k if lower else offset >= k
    return xp.where(keep, a, xp.zeros((), a.dtype))


def set_diagonal(xp, a, values):
    """A copy of ``a`` with the diagonal of its last two dims set to ``values``."""
    out = a.copy()
    n = min(a.shape[-2:])
    idx = xp.arange(n)
    out[..., idx, idx] = values
    return out


def _linalg_errors(xp):
    err = getattr(getattr(xp, "linalg", None), "LinAlgError", None)
    return (np.linalg.LinAlgError,) if err is None else (np.linalg.LinAlgError, err)


def _run(xp, fn, *args, **kwargs):
    if xp is np:
        return fn(*args, **kwargs)
    import cupyx

    with cupyx.errstate(linalg="raise"):
        return fn(*args, **kwargs)


def lapack(xp, op, what, fn, a, *args, probe=None, describe=None, **kwargs):
    """``fn(a, *args)``; where LAPACK fails, a :class:`LinAlgError` ``"{op}: {what}"`` naming
    the first failing batch element of ``a`` (found by ``probe``, one matrix at a time;
    ``describe(matrix)`` may add a detail about it)."""
    errors = _linalg_errors(xp)
    try:
        return _run(xp, fn, a, *args, **kwargs)
    except errors:
        pass
    probe = probe or fn
    flat = a.reshape((-1,) + a.shape[-2:])
    prefix, bad = "", None
    for i in range(flat.shape[0]):
        try:
            _run(xp, probe, flat[i])
        except errors:
            bad = flat[i]
            prefix = f"(Batch element {i}): " if a.ndim > 2 else ""
            break
    detail = describe(bad) if describe is not None and bad is not None else ""
    raise LinAlgError(f"{op}: {prefix}{what}{detail}") from None


def _leading_minor(xp):
    """The order of the first leading minor that is not positive-definite (cholesky's error)."""
    def describe(a):
        for k in range(1, a.shape[-1] + 1):
            try:
                _run(xp, xp.linalg.cholesky, a[:k, :k])
            except _linalg_errors(xp):
                return f" (the leading minor of order {k} is not positive-definite)"
        return ""
    return describe


def inverse_transpose(xp, a):
    """``A^{-T}`` batched, NaN for the matrices that have no inverse (a gradient through a
    singular matrix is undefined; the forward already succeeded)."""
    errors = _linalg_errors(xp)
    try:
        return mT(_run(xp, xp.linalg.inv, a))
    except errors:
        pass
    flat = a.reshape((-1,) + a.shape[-2:])
    out = xp.empty_like(flat)
    for i in range(flat.shape[0]):
        try:
            out[i] = mT(_run(xp, xp.linalg.inv, flat[i]))
        except errors:
            out[i] = np.nan
    return out.reshape(a.shape)


def pack(xp, *arrays, batch):
    """The arrays flattened after the ``batch`` dims and concatenated along a last axis."""
    parts = [a.reshape(batch + (-1,)) for a in arrays]
    return xp.concatenate(parts, axis=-1) if parts else xp.zeros(batch + (0,), np.float32)


def split(packed, shapes):
    """The arrays that :func:`pack` packed, given their shapes after the batch dims."""
    batch = packed.shape[:-1]
    out, start = [], 0
    for shape in shapes:
        size = math.prod(shape)
        out.append(packed[..., start:start + size].reshape(batch + tuple(shape)))
        start += size
    return out


def _present(xp, g):
    """Whether the gradient block ``g`` carries anything (an unused output's is all zeros)."""
    return g.size > 0 and bool(xp.any(g != 0))


def _float32(xp, a):
    return xp.asarray(a, dtype=np.float32)


# ----------------------------------------------------------------------------- inverse, det


_SINGULAR_INV = ("the inversion could not be completed because the input matrix is singular "
                 "(LU factorization has a zero pivot).")


class Inv(Function):
    """``A^{-1}``; the gradient is ``-A^{-T} G A^{-T}``."""

    def forward(self, a):
        xp = self.xp
        y = _float32(xp, lapack(xp, "linalg.inv", _SINGULAR_INV, xp.linalg.inv, a))
        self.save_for_backward(y)
        return y

    def backward(self, dy):
        (y,) = self.saved
        yt = mT(y)
        return -(yt @ dy @ yt)


def cofactor(xp, a, det):
    """The cofactor matrix ``det(A) A^{-T}`` (the gradient of det), also where ``A`` is
    singular: there through the SVD ``A = U S V^T`` as ``det(U) det(V^T) U diag(prod_{j != i}
    s_j) V^T`` (torch's formula for singular inputs), elsewhere through the inverse."""
    n = a.shape[-1]
    flat, d = a.reshape(-1, n, n), det.reshape(-1)
    out = xp.empty_like(flat)
    near = xp.abs(d) < 100 * EPS32
    near_host = np.asarray(near.get() if hasattr(near, "get") else near)
    if (~near_host).any():
        keep = xp.asarray(~near_host)
        out[keep] = d[keep][:, None, None] * inverse_transpose(xp, flat[keep])
    if near_host.any():
        pick = xp.asarray(near_host)
        u, s, vh = xp.linalg.svd(flat[pick])
        alpha = xp.linalg.det(u) * xp.linalg.det(vh)
        others = _exclusive_cumprod(xp, s, -1) * _exclusive_cumprod(xp, s, -1, reverse=True)
        out[pick] = alpha[:, None, None] * ((u * others[:, None, :]) @ vh)
    return out.reshape(a.shape)


class Det(Function):
    """``det(A)`` (LU); the gradient is the cofactor matrix times the incoming gradient."""

    def forward(self, a):
        d = _float32(self.xp, self.xp.linalg.det(a))
        self.save_for_backward(a, d)
        return d

    def backward(self, g):
        a, d = self.saved
        if a.size == 0:
            return self.xp.zeros_like(a)
        return (g[..., None, None] * cofactor(self.xp, a, d)).astype(a.dtype, copy=False)


class LogAbsDet(Function):
    """``log|det A|`` (the ``logabsdet`` of slogdet; the sign is appended to ``sign_out``, a
    list). The gradient is ``g A^{-T}`` (NaN where A is singular: not differentiable)."""

    def forward(self, a, sign_out):
        sign, logabs = self.xp.linalg.slogdet(a)
        sign_out.append(_float32(self.xp, sign))
        self.save_for_backward(a)
        return _float32(self.xp, logabs)

    def backward(self, g):
        (a,) = self.saved
        if a.size == 0:
            return self.xp.zeros_like(a), None
        return (g[..., None, None] * inverse_transpose(self.xp, a)).astype(a.dtype), None


# ----------------------------------------------------------------------------- solvers


class Solve(Function):
    """``X = A^{-1} B`` for A (*, n, n) and B (*, n, k), the batch dims broadcast. Gradients:
    ``G_B = A^{-T} G``, ``G_A = -G_B X^T`` (each summed back over broadcast dims)."""

    def forward(self, a, b):
        xp = self.xp
        self.shapes = (a.shape, b.shape)
        batch = tuple(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
        ab = xp.ascontiguousarray(xp.broadcast_to(a, batch + a.shape[-2:]))
        bb = xp.ascontiguousarray(xp.broadcast_to(b, batch + b.shape[-2:]))
        x = lapack(xp, "torch.linalg.solve", "The solver failed because the input matrix is "
                   "singular.", xp.linalg.solve, ab, bb, probe=xp.linalg.inv)
        x = _float32(xp, x)
        self.save_for_backward(ab, x)
        return x

    def backward(self, g):
        xp = self.xp
        ab, x = self.saved
        gb = _float32(xp, _run(xp, xp.linalg.solve, xp.ascontiguousarray(mT(ab)), g))
        da = unbroadcast(xp, -(gb @ mT(x)), self.shapes[0]) if self.needs_input_grad[0] else None
        db = unbroadcast(xp, gb, self.shapes[1]) if self.needs_input_grad[1] else None
        return da, db


# ----------------------------------------------------------------------------- factorisations


class Cholesky(Function):
    """The lower factor ``L`` of ``A = L L^T`` (read from A's lower triangle). Gradient
    (Murray 2016, as torch): ``L^{-T} Phi(L^T G) L^{-1}`` with ``Phi(X) = (tril(X) +
    tril(X, -1)^T) / 2`` made symmetric."""

    def forward(self, a):
        xp = self.xp
        what = "The factorization could not be completed because the input is not " \
               "positive-definite"
        low = lapack(xp, "linalg.cholesky", what, xp.linalg.cholesky, a,
                     describe=_leading_minor(xp))
        low = _float32(xp, triangle(xp, low))
        self.save_for_backward(low)
        return low

    def backward(self, g):
        xp = self.xp
        (low,) = self.saved
        ga = triangle(xp, mT(low) @ g)
        ga = 0.5 * (ga + mT(triangle(xp, ga, -1)))
        inv_low = _float32(xp, xp.linalg.inv(low))
        return (mT(inv_low) @ ga @ inv_low).astype(g.dtype, copy=False)


class QR(Function):
    """``A = Q R`` (Householder, as LAPACK's geqrf/orgqr), returned packed as ``(Q, R)``:
    ``mode`` "reduced" (Q m x k, R k x n, k = min(m, n)), "complete" (Q m x m, R m x n) or
    "r" (R only; Q has no columns). Differentiable for "reduced", and for "complete" with
    m <= n (torch's rule); the gradient is torch's ``linalg_qr_backward``."""

    def forward(self, a, mode):
        xp = self.xp
        m, n = a.shape[-2:]
        self.mode, self.batch = mode, a.shape[:-2]
        if mode == "r":
            r = xp.linalg.qr(a, mode="r")
            q = xp.zeros(self.batch + (m, 0), np.float32)
        else:
            q, r = xp.linalg.qr(a, mode=mode)
        q, r = _float32(xp, q), _float32(xp, r)
        self.shapes = (q.shape[-2:], r.shape[-2:])
        self.save_for_backward(q, r)
        return pack(xp, q, r, batch=self.batch)

    def backward(self, g):
        xp = self.xp
        q, r = self.saved
        m, n = q.shape[-2], r.shape[-1]
        if self.mode == "r":
            raise RuntimeError("The derivative of linalg.qr depends on Q, which is not computed "
                               "when mode='r'. Please use linalg.qr(A, mode='reduced') if you "
                               "are going to differentiate through linalg.qr.")
        if self.mode == "complete" and m > n:
            raise RuntimeError("The QR decomposition is not differentiable when "
                               "mode='complete' and nrows > ncols.")
        gq, gr = split(g, self.shapes)
        has_q = _present(xp, gq)
        ga = gr @ mT(r) - (mT(q) @ gq if has_q else 0)
        if m >= n:
            x = triangle(xp, ga, lower=False)
            x = x + mT(x)
            x = set_diagonal(xp, x, xp.diagonal(x, axis1=-2, axis2=-1) * 0.5)
            ga = q @ x + (gq if has_q else 0)
            # ga R^{-T}: solve R Y^T = ga^T
            return _float32(xp, mT(xp.linalg.solve(r, mT(ga))))
        x = triangle(xp, -ga - mT(-ga))
        ga = q @ x
        r1 = r[..., :, :m]
        ga = mT(xp.linalg.solve(r1, mT(ga)))
        ga = xp.concatenate([ga, xp.zeros(ga.shape[:-1] + (n - m,), ga.dtype)], axis=-1)
        return _float32(xp, ga + q @ gr)


class Eigh(Function):
    """Eigenvalues (ascending) and orthonormal eigenvectors of a symmetric matrix, read from
    its ``uplo`` triangle; packed ``(L, V)``, or ``L`` alone when ``vectors`` is False.
    Gradient (torch's ``linalg_eig_backward``, Hermitian case): ``V (diag(g_L) + skew(V^T g_V)
    / 2 / E) V^T`` with ``E_ij = L_j - L_i``; only ``V diag(g_L) V^T`` when V is unused."""

    def forward(self, a, uplo, vectors):
        xp = self.xp
        self.vectors = vectors
        need_v = vectors or (autograd.is_grad_enabled() and self.needs_input_grad[0])
        if need_v:
            w, v = xp.linalg.eigh(a, UPLO=uplo)
            w, v = _float32(xp, w), _float32(xp, v)
            self.save_for_backward(w, v)
        else:
            w = _float32(xp, xp.linalg.eigvalsh(a, UPLO=uplo))
        if not vectors:
            return w
        n = a.shape[-1]
        self.shapes = ((n,), (n, n))
        return pack(xp, w, v, batch=a.shape[:-2])

    def backward(self, g):
        xp = self.xp
        w, v = self.saved
        if self.vectors:
            gw, gv = split(g, self.shapes)
        else:
            gw, gv = g, None
        if gv is None or not _present(xp, gv):
            return _float32(xp, (v * gw[..., None, :]) @ mT(v)), None, None
        vgv = mT(v) @ gv
        vgv = 0.5 * (vgv - mT(vgv))
        e = w[..., None, :] - w[..., :, None]
        e = set_diagonal(xp, e, 1.0)
        inner = set_diagonal(xp, vgv / e, gw)
        return _float32(xp, v @ inner @ mT(v)), None, None


class SVD(Function):
    """``A = U diag(S) V^T`` (singular values descending), packed ``(U, S, Vh)`` with
    ``full_matrices`` as torch, or ``S`` alone when ``vectors`` is False. Gradient (torch's
    ``svd_backward``, Townsend 2016): with ``E_jk = s_k^2 - s_j^2``,
    ``U [skew(U^T g_U) S / E + S skew(V^T g_V) / E + diag(g_S)] V^T`` plus the terms for
    m != n; the extra columns of full_matrices' U and Vh get no gradient (as torch)."""

    def forward(self, a, full_matrices, vectors):
        xp = self.xp
        self.vectors = vectors
        m, n = a.shape[-2:]
        k = min(m, n)
        batch = a.shape[:-2]
        need_uv = vectors or (autograd.is_grad_enabled() and self.needs_input_grad[0])
        if not need_uv:
            return _float32(xp, xp.linalg.svd(a, compute_uv=False))
        if a.size == 0:
            u = xp.zeros(batch + (m, m if full_matrices else k), np.float32)
            vh = xp.zeros(batch + (n if full_matrices else k, n), np.float32)
            if full_matrices:  # torch's (and LAPACK's) empty-matrix convention
                u = u + xp.eye(m, dtype=np.float32)
                vh = vh + xp.eye(n, dtype=np.float32)
            s = xp.zeros(batch + (k,), np.float32)
        else:
            u, s, vh = xp.linalg.svd(a, full_matrices=full_matrices)
            u, s, vh = _float32(xp, u), _float32(xp, s), _float32(xp, vh)
        self.save_for_backward(u[..., :, :k], s, vh[..., :k, :])
        if not vectors:
            return s
        self.shapes = (u.shape[-2:], (k,), vh.shape[-2:])
        return pack(xp, u, s, vh, batch=batch)

    def backward(self, g):
        u, s, vh = self.saved
        k = s.shape[-1]
        if self.vectors:
            gu, gs, gvh = split(g, self.shapes)
            gu, gvh = gu[..., :, :k], gvh[..., :k, :]
        else:
            gu = gvh = None
            gs = g
        return self._grad(u, s, vh, gu, gs, gvh), None, None

    def _grad(self, u, s, vh, gu, gs, gvh):
        xp = self.xp
        m, n = u.shape[-2], vh.shape[-1]
        has_u = gu is not None and _present(xp, gu)
        has_v = gvh is not None and _present(xp, gvh)
        if not has_u and not has_v:
            return _float32(xp, (u * gs[..., None, :]) @ vh)
        s2 = s * s
        e = set_diagonal(xp, s2[..., None, :] - s2[..., :, None], 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            if has_u:
                ugu = mT(u) @ gu
                ugu = ugu - mT(ugu)
            if has_v:
                vgv = vh @ mT(gvh)
                vgv = vgv - mT(vgv)
            if has_u and has_v:
                inner = (ugu * s[..., None, :] + s[..., :, None] * vgv) / e
            elif has_u:
                inner = (ugu / e) * s[..., None, :]
            else:
                inner = s[..., :, None] * (vgv / e)
            inner = inner + _diag_embed(xp, gs)
            if m > n and has_u:
                ga = u @ inner
                gu_sinv = gu / s[..., None, :]
                ga = ga + gu_sinv - u @ (mT(u) @ gu_sinv)
                ga = ga @ vh
            elif m < n and has_v:
                ga = inner @ vh
                sinv_gvh = gvh / s[..., :, None]
                ga = ga + sinv_gvh - (sinv_gvh @ mT(vh)) @ vh
                ga = u @ ga
            else:
                ga = u @ inner @ vh
        return _float32(xp, ga)


def _diag_embed(xp, v):
    n = v.shape[-1]
    return v[..., :, None] * xp.eye(n, dtype=v.dtype)


class Pinv(Function):
    """The Moore-Penrose pseudo-inverse through the SVD (or, ``hermitian``, the symmetric
    eigendecomposition): singular values ``<= max(atol, rtol * s_max)`` count as zero (torch's
    rule). The gradient is torch's ``pinv_backward``."""

    def forward(self, a, atol, rtol, hermitian):
        xp = self.xp
        m, n = a.shape[-2:]
        if a.size == 0:
            y = xp.zeros(a.shape[:-2] + (n, m), np.float32)
        elif hermitian:
            w, v = xp.linalg.eigh(a)
            wabs = xp.abs(w)
            tol = xp.maximum(atol[..., None], rtol[..., None] * wabs.max(axis=-1, keepdims=True))
            with np.errstate(divide="ignore"):
                winv = xp.where(wabs > tol, 1 / w, 0)
            y = (v * winv[..., None, :]) @ mT(v)
        else:
            u, s, vh = xp.linalg.svd(a, full_matrices=False)
            tol = xp.maximum(atol[..., None], rtol[..., None] * s[..., :1])
            with np.errstate(divide="ignore"):
                sinv = xp.where(s > tol, 1 / s, 0)
            y = (mT(vh) * sinv[..., None, :]) @ mT(u)
        y = _float32(xp, y)
        self.save_for_backward(a, y)
        return y

    def backward(self, g):
        a, p = self.saved
        m, n = a.shape[-2:]
        ph, gh = mT(p), mT(g)
        if m <= n:
            k = gh @ p
            kph = k @ ph
            ga = -mT(p @ k) + kph - (a @ p) @ kph + (ph @ p) @ (gh - k @ a)
        else:
            k = p @ gh
            phk = ph @ k
            ga = -mT(k @ p) + ((gh - a @ k) @ p) @ ph + phk - (phk @ p) @ a
        return ga.astype(g.dtype, copy=False), None, None, None


# ----------------------------------------------------------------------------- matrix exponential

# Higham (2005), table 10.4: the Padé [13/13] coefficients b_0 .. b_13 and theta_13, the
# largest 1-norm for which the approximant is accurate to double precision unscaled.
_PADE13 = (64764752532480000.0, 32382376266240000.0, 7771770303897600.0,
           1187353796428800.0, 129060195264000.0, 10559470521600.0, 670442572800.0,
           33522128640.0, 1323241920.0, 40840800.0, 960960.0, 16380.0, 182.0, 1.0)
_THETA13 = 5.371920351148152


def expm(xp, a):
    """exp of each (n, n) matrix of the float64 array ``a`` (..., n, n)."""
    n = a.shape[-1]
    norm = float(xp.abs(a).sum(axis=-2).max()) if a.size else 0.0  # the largest 1-norm
    s = max(0, math.ceil(math.log2(norm / _THETA13))) if norm > _THETA13 else 0
    a = a / (2.0 ** s)
    b = _PADE13
    eye = xp.eye(n, dtype=a.dtype)
    a2 = a @ a
    a4 = a2 @ a2
    a6 = a4 @ a2
    u = a @ (a6 @ (b[13] * a6 + b[11] * a4 + b[9] * a2) + b[7] * a6 + b[5] * a4
             + b[3] * a2 + b[1] * eye)
    v = a6 @ (b[12] * a6 + b[10] * a4 + b[8] * a2) + b[6] * a6 + b[4] * a4 + b[2] * a2 \
        + b[0] * eye
    r = xp.linalg.solve(v - u, v + u)
    for _ in range(s):
        r = r @ r
    return r


class MatrixExp(Function):
    """exp(A) for each (n, n) matrix of A (..., n, n)."""

    def forward(self, a):
        self.a, self.dtype = a.astype(self.xp.float64), a.dtype
        return expm(self.xp, self.a).astype(a.dtype)

    def backward(self, dy):
        xp, at = self.xp, self.xp.swapaxes(self.a, -1, -2)
        n = at.shape[-1]
        block = xp.zeros(at.shape[:-2] + (2 * n, 2 * n), xp.float64)
        block[..., :n, :n] = at
        block[..., n:, n:] = at
        block[..., :n, n:] = dy
        return expm(xp, block)[..., :n, n:].astype(self.dtype)


# ----------------------------------------------------------------------------- for nn.utils

def _square(a, what: str, op: str):
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise RuntimeError(f"{op}: {what} must be a square matrix or a batch of square "
                           f"matrices (..., n, n), got shape {tuple(a.shape)}")
    if a.dtype.kind != "f":
        raise TypeError(f"{op}: {what} must be a floating-point tensor, got {a.dtype}")


def matrix_exp(a):
    """exp(A) = sum_k A^k / k! of each square matrix of the Tensor ``a`` (..., n, n), with its
    gradient (see the module docstring)."""
    _square(a, "A", "matrix_exp")
    return MatrixExp.apply(a)


def solve(a, b):
    """X with A X = B, for the Tensors ``a`` (..., n, n) and ``b`` (..., n, k) of one batch
    shape, with the gradients of both (a singular A raises LinAlgError)."""
    _square(a, "A", "solve")
    if b.ndim != a.ndim or b.shape[:-1] != a.shape[:-1] or b.dtype != a.dtype:
        raise RuntimeError(f"solve: B must be (..., {a.shape[-1]}, k) with A's batch shape "
                           f"{tuple(a.shape[:-2])} and dtype {a.dtype}, got shape "
                           f"{tuple(b.shape)} and dtype {b.dtype}")
    return Solve.apply(a, b)
