"""fastconv.linalg and fastconv.special against torch.linalg and torch.special.

Every function is run on fresh random float32 inputs through fastconv and through torch in
float64 (``check_vs_torch``): forward values, then the gradients of ``sum(out * g)`` for a
random ``g`` from fastconv's backward and torch's autograd. Matrices are drawn with a known
spectrum, so the float32 results are meaningful at the project's tolerances: well-conditioned
(singular values in [1, 3]) for inverses and solvers, symmetric with eigenvalues at least 0.5
apart for eigh, singular values at least 0.4 apart for svd.

Decompositions are unique only up to the signs of their vectors (each LAPACK picks its own),
so outputs are compared after a sign normalisation that is itself differentiable (a product
with a constant sign): the sign of each vector's projection on a fixed random direction. A
loss through the normalised vectors is sign-invariant, so its gradient is the same whatever
signs each library chose.

Tolerances: the project's float32 rule (rtol 1e-4, atol 1e-5; gradients' atol scaled by the
largest gradient) throughout, eigenvector and singular-vector gradients included: they divide
by eigenvalue gaps, which the spectra above keep at 0.4 or more (30 runs of fresh seeds passed
at these bounds).

Bad arguments must raise torch's exception type with a message naming the problem; a
singular or non-positive-definite matrix raises LinAlgError, never returns NaNs. A hypothesis
test fuzzes shapes, dims and ords of the norms.
"""

from __future__ import annotations

import math
import sys
import types
import warnings

import numpy as np
import pytest
from helpers import assert_close, assert_grad_close, check_devices, check_vs_torch, randn, to_numpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastconv as fc
from fastconv import linalg as LA
from fastconv import special as SP

torch = pytest.importorskip("torch")
# torch's older forms (torch.cholesky, torch.qr), used here as references, warn that they are
pytestmark = [pytest.mark.filterwarnings(r"ignore:torch\.cholesky is deprecated"),
              pytest.mark.filterwarnings(r"ignore:torch\.qr is deprecated")]
TL = torch.linalg
TS = torch.special
INF = math.inf


# ----------------------------------------------------------------------------- inputs


def _orthogonal(rng, *shape):
    """Random orthogonal matrices of shape (*batch, n, n)."""
    q, r = np.linalg.qr(rng.standard_normal(shape))
    return q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[..., None, :]


def well_conditioned(rng, *shape):
    """(*batch, m, n) with singular values in [1, 3] (condition number <= 3)."""
    *batch, m, n = shape
    k = min(m, n)
    u = _orthogonal(rng, *batch, m, m)[..., :, :k]
    v = _orthogonal(rng, *batch, n, n)[..., :, :k]
    s = rng.uniform(1, 3, size=(*batch, k))
    return ((u * s[..., None, :]) @ np.swapaxes(v, -1, -2)).astype(np.float32)


def distinct_singular(rng, *shape):
    """(*batch, m, n) with singular values 1.0, 1.4, 1.8, ... (gaps 0.4), in random order."""
    *batch, m, n = shape
    k = min(m, n)
    u = _orthogonal(rng, *batch, m, m)[..., :, :k]
    v = _orthogonal(rng, *batch, n, n)[..., :, :k]
    s = 1.0 + 0.4 * np.arange(k) + rng.uniform(0, 0.05, size=(*batch, k))
    return ((u * s[..., None, :]) @ np.swapaxes(v, -1, -2)).astype(np.float32)


def symmetric(rng, *shape, positive=False):
    """Symmetric (*batch, n, n) with eigenvalues at least 0.5 apart (all >= 0.5 if positive)."""
    *batch, n, _ = shape
    q = _orthogonal(rng, *batch, n, n)
    base = 0.5 if positive else -0.25 * n
    w = base + 0.75 * np.arange(n) + rng.uniform(0, 0.2, size=(*batch, n))
    a = (q * w[..., None, :]) @ np.swapaxes(q, -1, -2)
    a = ((a + np.swapaxes(a, -1, -2)) / 2).astype(np.float32)
    return a


def _signs(x, direction, vectors_in):
    """The sign of each vector's projection on ``direction`` (vectors in columns of the last
    two dims when vectors_in == "cols", rows when "rows"), shaped to multiply x."""
    if vectors_in == "cols":
        return (x * direction[:, None]).sum(-2, keepdim=True).sign()
    return (x * direction[None, :]).sum(-1, keepdim=True).sign()


def _direction(rng, n, lib):
    d = rng.standard_normal(n)
    return fc.tensor(d.astype(np.float32)) if lib == "fc" else torch.tensor(d)


def _cat(lib, parts):
    flat = [p.reshape(-1) for p in parts]
    return fc.cat(flat) if lib == "fc" else torch.cat(flat)


# ----------------------------------------------------------------------------- vector_norm


ORDS = [2, 1, 3, 0.5, -1, -2.5, INF, -INF, 0]


@pytest.mark.parametrize("ord", ORDS)
@pytest.mark.parametrize("dim, keepdim", [(None, False), (1, False), ((0, 2), True),
                                          (-1, True), ((), False)])
def test_vector_norm(ord, dim, keepdim, rng):
    x = randn(rng, 3, 4, 5)
    x[np.abs(x) < 0.05] = 0.1  # |x|^(p-1) for p < 1 stays moderate
    # ord 0 counts non-zeros: torch gives it no gradient (None); fastconv's is zero
    check_vs_torch(lambda t: LA.vector_norm(t, ord, dim, keepdim),
                   lambda t: TL.vector_norm(t, ord, dim, keepdim), [x], rng=rng,
                   grad=ord != 0, name=f"vector_norm ord={ord} dim={dim}")
    if ord == 0:
        t = fc.tensor(x, requires_grad=True)
        LA.vector_norm(t, ord, dim, keepdim).sum().backward()
        assert not t.grad.numpy().any()


@pytest.mark.parametrize("ord", [2, 1, 3, 0.5, INF, -INF])
def test_vector_norm_at_zero_and_ties(ord, rng):
    # a zero row (the norm is 0: torch's gradient is 0 there for ord >= 1) and tied maxima
    # (the inf norms share the gradient between them)
    x = randn(rng, 3, 4)
    x[0] = 0
    x[1] = [2.0, -2.0, 1.0, 0.5]
    if ord < 1:
        x[0] = 0.3  # 0 ** (p - 1) is infinite for p < 1: no gradient exists there
    check_vs_torch(lambda t: LA.vector_norm(t, ord, 1), lambda t: TL.vector_norm(t, ord, 1),
                   [x], rng=rng, name=f"vector_norm zero/ties ord={ord}")


def test_vector_norm_scalar_and_empty(rng):
    x = np.float32(-3.0)
    for ord in (2, 0.5, INF, 0):
        assert_close(LA.vector_norm(fc.tensor(x), ord),
                     TL.vector_norm(torch.tensor(float(x)), ord), name=f"0-d ord={ord}")
    e = fc.zeros(0, 3)
    assert LA.vector_norm(e).item() == 0
    assert LA.vector_norm(e, INF, dim=1).shape == (0,)
    with pytest.raises(RuntimeError, match="empty"):
        LA.vector_norm(e, INF)
    with pytest.raises(RuntimeError, match="empty"):
        LA.vector_norm(e, -1, dim=0)


# ----------------------------------------------------------------------------- matrix_norm, norm


@pytest.mark.parametrize("ord", ["fro", "nuc", 1, -1, 2, -2, INF, -INF])
@pytest.mark.parametrize("dim, keepdim", [((-2, -1), False), ((0, 2), True), ((2, 0), False)])
def test_matrix_norm(ord, dim, keepdim, rng):
    x = randn(rng, 3, 4, 5)
    check_vs_torch(lambda t: LA.matrix_norm(t, ord, dim, keepdim),
                   lambda t: TL.matrix_norm(t, ord, dim, keepdim), [x], rng=rng,
                   name=f"matrix_norm ord={ord} dim={dim}")


@pytest.mark.parametrize("shape, ord, dim", [
    ((3, 4), None, None), ((2, 3, 4), None, None), ((2, 3, 4), None, 1),
    ((2, 3, 4), None, (0, 2)), ((3, 4), "fro", None), ((3, 4), "nuc", None), ((3, 4), 2, None),
    ((5,), 2, None), ((5,), INF, None), ((2, 3, 4), INF, (0, 1)), ((2, 3, 4), -1, (2, 1)),
    ((2, 3, 4), 3, 2), ((2, 3, 4), "nuc", (0, 2)),
])
def test_linalg_norm(shape, ord, dim, rng):
    x = randn(rng, *shape)
    check_vs_torch(lambda t: LA.norm(t, ord, dim), lambda t: TL.norm(t, ord, dim), [x], rng=rng,
                   name=f"linalg.norm {shape} ord={ord} dim={dim}")


@pytest.mark.parametrize("p, dim", [("fro", None), ("fro", 1), ("fro", (0, 1)), ("nuc", None),
                                    ("nuc", (1, 0)), (2, None), (1, 0), (INF, 1), (-INF, None),
                                    (0, 1), (3, (0, 1)), (None, None), (0.5, 1)])
def test_torch_norm_and_tensor_norm(p, dim, rng):
    x = randn(rng, 3, 4)
    x[np.abs(x) < 0.05] = 0.1
    check_vs_torch(lambda t: fc.norm(t, p, dim), lambda t: torch.norm(t, p, dim), [x], rng=rng,
                   grad=p != 0, name=f"torch.norm p={p} dim={dim}")
    check_vs_torch(lambda t: t.norm(p, dim, keepdim=True),
                   lambda t: t.norm(p, dim, keepdim=True), [x], rng=rng, grad=p != 0,
                   name=f"Tensor.norm p={p} dim={dim}")


def test_cond(rng):
    a = well_conditioned(rng, 2, 4, 4)
    for p in (None, 2, -2):
        check_vs_torch(lambda t: LA.cond(t, p), lambda t: TL.cond(t, p), [a], rng=rng,
                       name=f"cond p={p}")
    for p in ("fro", "nuc", 1, -1, INF, -INF):
        check_vs_torch(lambda t: LA.cond(t, p), lambda t: TL.cond(t, p), [a], rng=rng,
                       grad=False, name=f"cond p={p}")
        # torch's own backward of cond fails for these p (an in-place write in it): its
        # definition, norm(A) * norm(inv(A)), gives the reference gradient
        check_vs_torch(lambda t: LA.cond(t, p),
                       lambda t: TL.matrix_norm(t, p) * TL.matrix_norm(TL.inv(t), p), [a],
                       rng=rng, name=f"cond p={p} gradient")
    r = randn(rng, 5, 3)
    check_vs_torch(lambda t: LA.cond(t), lambda t: TL.cond(t), [r], rng=rng, name="cond 5x3")


# ----------------------------------------------------------------------------- inv, det, slogdet


@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (2, 4, 4), (2, 1, 3, 3)])
def test_inv(shape, rng):
    a = well_conditioned(rng, *shape)
    check_vs_torch(LA.inv, TL.inv, [a], rng=rng, name=f"inv {shape}")
    check_vs_torch(lambda t: t.inverse(), lambda t: t.inverse(), [a], rng=rng,
                   name="Tensor.inverse")
    check_vs_torch(fc.inverse, torch.inverse, [a], rng=rng, name="fastconv.inverse")


def test_inv_empty():
    assert LA.inv(fc.zeros(0, 3, 3)).shape == (0, 3, 3)
    assert LA.inv(fc.zeros(0, 0)).shape == (0, 0)


@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (2, 4, 4), (2, 1, 3, 3)])
def test_det(shape, rng):
    a = well_conditioned(rng, *shape)
    check_vs_torch(LA.det, TL.det, [a], rng=rng, name=f"det {shape}")
    check_vs_torch(lambda t: t.det(), lambda t: t.det(), [a], rng=rng, name="Tensor.det")
    check_vs_torch(fc.det, torch.det, [a], rng=rng, name="fastconv.det")


def test_det_gradient_of_singular_matrices_is_the_adjugate(rng):
    # rank n-1 (adjugate non-zero) and rank n-2 (adjugate zero) matrices next to a regular one
    a = well_conditioned(rng, 3, 4, 4)
    u, s, vh = np.linalg.svd(a[:2].astype(np.float64))
    s[0, -1] = 0
    s[1, -2:] = 0
    a[:2] = ((u * s[:, None, :]) @ vh).astype(np.float32)
    t = fc.tensor(a, requires_grad=True)
    d = LA.det(t)
    assert np.abs(to_numpy(d)[:2]).max() < 1e-5
    d.sum().backward()
    # torch's own singular-input formula (it takes it with create_graph=True; its default
    # backward returns zeros for an exactly singular matrix)
    ta = torch.tensor(a.astype(np.float64), requires_grad=True)
    (want,) = torch.autograd.grad(TL.det(ta).sum(), ta, create_graph=True)
    assert_grad_close(t.grad, want.detach(), name="det grad at singular matrices")
    # and the adjugate from central differences (det is a polynomial)
    eps, num = 1e-6, np.zeros((4, 4))
    base = a[0].astype(np.float64)
    for i in range(4):
        for j in range(4):
            e = np.zeros((4, 4))
            e[i, j] = eps
            num[i, j] = (np.linalg.det(base + e) - np.linalg.det(base - e)) / (2 * eps)
    assert_grad_close(t.grad[0], num, name="det grad vs central differences")


@pytest.mark.parametrize("shape", [(3, 3), (2, 4, 4)])
def test_slogdet_and_logdet(shape, rng):
    a = well_conditioned(rng, *shape)
    a[..., 0, :] *= -1  # flips the sign of the determinant: some negative, some positive
    got = LA.slogdet(fc.tensor(a))
    want = TL.slogdet(torch.tensor(a.astype(np.float64)))
    assert type(got).__name__ == "linalg_slogdet" and got._fields == ("sign", "logabsdet")
    assert_close(got.sign, want.sign, name="sign")
    check_vs_torch(lambda t: LA.slogdet(t).logabsdet, lambda t: TL.slogdet(t).logabsdet, [a],
                   rng=rng, name="slogdet")
    check_vs_torch(lambda t: fc.slogdet(t)[1], lambda t: torch.slogdet(t)[1], [a], rng=rng,
                   name="fastconv.slogdet")
    check_vs_torch(lambda t: t.slogdet().logabsdet, lambda t: t.slogdet().logabsdet, [a],
                   rng=rng, name="Tensor.slogdet")
    b = a.copy()
    b[..., 0, :] *= -1  # positive determinants again: logdet is finite, with its gradient
    s = np.linalg.det(b)
    b[s < 0] = b[s < 0][..., [1, 0] + list(range(2, b.shape[-1])), :]
    check_vs_torch(fc.logdet, torch.logdet, [b], rng=rng, name="logdet")
    check_vs_torch(lambda t: t.logdet(), lambda t: t.logdet(), [b], rng=rng,
                   name="Tensor.logdet")
    neg = fc.logdet(fc.tensor(a)).numpy()
    assert np.array_equal(np.isnan(neg), np.linalg.det(a) < 0)


def test_slogdet_of_singular_matrix():
    sign, logabsdet = LA.slogdet(fc.zeros(3, 3))
    assert sign.item() == 0 and logabsdet.item() == -INF
    assert fc.logdet(fc.zeros(2, 2)).item() == -INF
    assert LA.det(fc.zeros(3, 3)).item() == 0


# ----------------------------------------------------------------------------- solvers


@pytest.mark.parametrize("a_shape, b_shape", [
    ((3, 3), (3,)), ((3, 3), (3, 2)), ((2, 3, 3), (2, 3)), ((2, 3, 3), (3, 4)),
    ((3, 3), (2, 3, 4)), ((2, 1, 3, 3), (5, 3, 1)), ((1, 1), (1,)),
])
def test_solve(a_shape, b_shape, rng):
    a = well_conditioned(rng, *a_shape)
    b = randn(rng, *b_shape)
    check_vs_torch(LA.solve, TL.solve, [a, b], rng=rng, name=f"solve {a_shape} {b_shape}")


@pytest.mark.parametrize("a_shape, b_shape", [((3, 3), (2, 3)), ((2, 3, 3), (4, 3)),
                                              ((3, 3), (2, 5, 3))])
def test_solve_left_false(a_shape, b_shape, rng):
    a = well_conditioned(rng, *a_shape)
    b = randn(rng, *b_shape)
    check_vs_torch(lambda x, y: LA.solve(x, y, left=False),
                   lambda x, y: TL.solve(x, y, left=False), [a, b], rng=rng,
                   name=f"solve left=False {a_shape} {b_shape}")


@pytest.mark.parametrize("upper", [True, False])
@pytest.mark.parametrize("left", [True, False])
@pytest.mark.parametrize("unitriangular", [False, True])
def test_solve_triangular(upper, left, unitriangular, rng):
    a = randn(rng, 2, 4, 4, scale=0.3)
    a += np.eye(4, dtype=np.float32) * 2  # a well-conditioned triangle
    b = randn(rng, 2, 4, 3) if left else randn(rng, 2, 3, 4)
    kw = dict(upper=upper, left=left, unitriangular=unitriangular)
    check_vs_torch(lambda x, y: LA.solve_triangular(x, y, **kw),
                   lambda x, y: TL.solve_triangular(x, y, **kw), [a, b], rng=rng,
                   name=f"solve_triangular {kw}")


@pytest.mark.parametrize("a_shape, b_shape", [((6, 3), (6, 2)), ((6, 3), (6,)),
                                              ((2, 5, 3), (1, 5, 2)), ((2, 5, 3), (2, 5)),
                                              ((3, 5), (3, 2)), ((4, 4), (4, 1))])
def test_lstsq_solution(a_shape, b_shape, rng):
    a = well_conditioned(rng, *a_shape)
    b = randn(rng, *b_shape)
    check_vs_torch(lambda x, y: LA.lstsq(x, y).solution,
                   lambda x, y: TL.lstsq(x, y).solution, [a, b], rng=rng,
                   name=f"lstsq {a_shape} {b_shape}")


@pytest.mark.parametrize("driver", [None, "gels", "gelsy", "gelsd", "gelss"])
@pytest.mark.parametrize("shape", [(6, 3), (3, 6)])
def test_lstsq_fields(driver, shape, rng):
    a = well_conditioned(rng, 2, *shape)
    b = randn(rng, 2, shape[0], 2)
    got = LA.lstsq(fc.tensor(a), fc.tensor(b), driver=driver)
    want = TL.lstsq(torch.tensor(a.astype(np.float64)), torch.tensor(b.astype(np.float64)),
                    driver=driver)
    assert type(got).__name__ == "linalg_lstsq"
    assert got._fields == ("solution", "residuals", "rank", "singular_values")
    for name in got._fields:
        g, w = getattr(got, name), getattr(want, name)
        assert tuple(g.shape) == tuple(w.shape), f"{name}: {g.shape} vs {w.shape}"
        if name == "rank":
            assert g.dtype == fc.int64
            np.testing.assert_array_equal(g.numpy(), w.numpy())
        else:
            assert_close(g, w, name=f"lstsq {driver} {name}")


def test_lstsq_rank_deficient_is_minimum_norm(rng):
    a = randn(rng, 6, 4)
    a[:, 3] = a[:, 0] + a[:, 1]  # rank 3
    b = randn(rng, 6, 2)
    got = LA.lstsq(fc.tensor(a), fc.tensor(b))
    assert got.rank.item() == 3
    # (in float32 the dependent column is dependent only to rounding: the cut-off decides)
    want = np.linalg.pinv(a.astype(np.float64), rtol=1e-5) @ b
    assert_close(got.solution, want, name="minimum-norm solution")


def test_lstsq_residuals_gradient(rng):
    a = well_conditioned(rng, 6, 3)
    b = randn(rng, 6, 2)
    check_vs_torch(lambda x, y: LA.lstsq(x, y, driver="gelsd").residuals,
                   lambda x, y: TL.lstsq(x, y, driver="gelsd").residuals, [a, b], rng=rng,
                   name="lstsq residuals")


# ----------------------------------------------------------------------------- cholesky, qr


@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (2, 4, 4)])
@pytest.mark.parametrize("upper", [False, True])
def test_cholesky(shape, upper, rng):
    a = symmetric(rng, *shape, positive=True)
    check_vs_torch(lambda t: LA.cholesky(t, upper=upper),
                   lambda t: TL.cholesky(t, upper=upper), [a], rng=rng,
                   name=f"cholesky {shape} upper={upper}")
    check_vs_torch(lambda t: fc.cholesky(t, upper), lambda t: torch.cholesky(t, upper), [a],
                   rng=rng, name="fastconv.cholesky")
    check_vs_torch(lambda t: t.cholesky(upper), lambda t: t.cholesky(upper), [a], rng=rng,
                   name="Tensor.cholesky")


def test_cholesky_reads_the_lower_triangle(rng):
    a = symmetric(rng, 3, 3, positive=True)
    a[0, 2] = 100.0  # the upper triangle is not read
    assert_close(LA.cholesky(fc.tensor(a)), TL.cholesky(torch.tensor(a.astype(np.float64))))


def _qr_fixed(lib, q, r):
    """Q and R with R's diagonal made non-negative (QR is unique up to these signs)."""
    k = min(r.shape[-2], r.shape[-1])
    d = (r[..., :k, :k] * (fc.eye(k) if lib == "fc" else torch.eye(k))).sum(-1).sign()
    return q[..., :, :k] * d[..., None, :], r[..., :k, :] * d[..., :, None]


@pytest.mark.parametrize("shape", [(4, 3), (3, 4), (3, 3), (2, 5, 3), (2, 3, 5), (1, 1)])
def test_qr_reduced(shape, rng):
    a = well_conditioned(rng, *shape)

    def fc_fn(t):
        q, r = _qr_fixed("fc", *LA.qr(t))
        return _cat("fc", [q, r])

    def torch_fn(t):
        q, r = _qr_fixed("torch", *TL.qr(t))
        return _cat("torch", [q, r])

    check_vs_torch(fc_fn, torch_fn, [a], rng=rng, name=f"qr {shape}")


@pytest.mark.parametrize("shape", [(4, 3), (3, 4), (3, 3)])
def test_qr_complete_and_r(shape, rng):
    a = well_conditioned(rng, *shape)
    m, n = shape
    q, r = LA.qr(fc.tensor(a), mode="complete")
    assert q.shape == (m, m) and r.shape == (m, n)
    assert_close(q.numpy().T @ q.numpy(), np.eye(m), name="complete Q orthonormal")
    assert_close(q.numpy() @ r.numpy(), a, name="Q R = A")
    assert np.all(np.tril(r.numpy(), -1) == 0)
    q0, r0 = LA.qr(fc.tensor(a), mode="r")
    assert q0.shape == (0,)
    assert_close(np.abs(r0.numpy()), np.abs(TL.qr(torch.tensor(a.astype(np.float64)),
                                                  mode="r").R.numpy()))
    if m <= n:  # differentiable (Q is then determined)
        check_vs_torch(lambda t: _cat("fc", _qr_fixed("fc", *LA.qr(t, "complete"))),
                       lambda t: _cat("torch", _qr_fixed("torch", *TL.qr(t, "complete"))),
                       [a], rng=rng, name="qr complete")
    t = fc.tensor(a, requires_grad=True)
    with pytest.raises(RuntimeError, match="mode='r'"):
        LA.qr(t, mode="r").R.sum().backward()
    if m > n:
        t = fc.tensor(a, requires_grad=True)
        with pytest.raises(RuntimeError, match="complete"):
            LA.qr(t, mode="complete").Q.sum().backward()


def test_old_qr_and_svd_and_pinverse(rng):
    a = well_conditioned(rng, 4, 3)
    for some in (True, False):
        q, r = fc.qr(fc.tensor(a), some)
        tq, tr = torch.qr(torch.tensor(a.astype(np.float64)), some)
        assert q.shape == tuple(tq.shape) and r.shape == tuple(tr.shape)
        assert_close((q @ r).numpy(), a)
        q2, _ = fc.tensor(a).qr(some)
        assert q2.shape == tuple(tq.shape)
    b = distinct_singular(rng, 4, 3)
    for some in (True, False):
        u, s, v = fc.svd(fc.tensor(b), some)
        tu, ts, tv = torch.svd(torch.tensor(b.astype(np.float64)), some)
        assert (u.shape, s.shape, v.shape) == (tuple(tu.shape), tuple(ts.shape), tuple(tv.shape))
        k = 3
        assert_close((u[:, :k] * s[None, :]) @ v[:, :k].mT, b)
    u, s, v = fc.tensor(b).svd(compute_uv=False)
    assert u.shape == (4, 4) and v.shape == (3, 3) and not u.numpy().any()
    check_vs_torch(lambda t: t.pinverse(), lambda t: t.pinverse(), [a], rng=rng,
                   name="Tensor.pinverse")
    check_vs_torch(fc.pinverse, torch.pinverse, [a], rng=rng, name="fastconv.pinverse")


# ----------------------------------------------------------------------------- eigh, svd


@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (2, 4, 4), (2, 1, 3, 3)])
@pytest.mark.parametrize("uplo", ["L", "U"])
def test_eigh(shape, uplo, rng):
    a = symmetric(rng, *shape)
    n = shape[-1]
    seed = int(rng.integers(1 << 31))

    def make(lib, eigh):  # one direction for both libraries
        d = _direction(np.random.default_rng(seed), n, lib)

        def fn(t):
            w, v = eigh(t, UPLO=uplo)
            return _cat(lib, [w, v * _signs(v, d, "cols")])
        return fn

    fc_fn, torch_fn = make("fc", LA.eigh), make("torch", TL.eigh)
    check_vs_torch(fc_fn, torch_fn, [a], rng=rng, name=f"eigh {shape} {uplo}")
    check_vs_torch(lambda t: LA.eigvalsh(t, uplo), lambda t: TL.eigvalsh(t, uplo), [a],
                   rng=rng, name=f"eigvalsh {shape} {uplo}")
    # only the eigenvalues of eigh used: the gradient is eigvalsh's
    check_vs_torch(lambda t: LA.eigh(t, uplo).eigenvalues,
                   lambda t: TL.eigh(t, uplo).eigenvalues, [a], rng=rng,
                   name="eigh eigenvalues only")


def test_eigh_reads_one_triangle_and_repeated_eigenvalues(rng):
    a = symmetric(rng, 4, 4)
    b = a.copy()
    b[np.triu_indices(4, 1)] = 7.0
    for uplo, m in (("L", b), ("U", b.T.copy())):
        assert_close(LA.eigvalsh(fc.tensor(m), uplo), np.linalg.eigvalsh(a), name=uplo)
    # a repeated eigenvalue: the eigenvalues' gradient is still finite (V only in V diag V^T)
    t = fc.tensor(np.eye(3, dtype=np.float32), requires_grad=True)
    LA.eigh(t).eigenvalues.sum().backward()
    assert_close(t.grad, np.eye(3), name="grad of the trace through eigh")
    w, v = LA.eigh(fc.tensor(a))
    assert_close(v.numpy() @ np.diag(w.numpy()) @ v.numpy().T, a, name="V diag(w) V^T")


@pytest.mark.parametrize("shape", [(4, 3), (3, 4), (3, 3), (2, 5, 3), (2, 3, 5), (1, 1)])
def test_svd(shape, rng):
    a = distinct_singular(rng, *shape)
    m, n = shape[-2:]
    seed = int(rng.integers(1 << 31))

    def make(lib, svd):
        rd = np.random.default_rng(seed)
        du = _direction(rd, m, lib)

        def fn(t):
            u, s, vh = svd(t, full_matrices=False)
            su = _signs(u, du, "cols")
            return _cat(lib, [u * su, s, vh * su.mT])
        return fn

    check_vs_torch(make("fc", LA.svd), make("torch", TL.svd), [a], rng=rng,
                   name=f"svd {shape}")
    check_vs_torch(LA.svdvals, TL.svdvals, [a], rng=rng, name=f"svdvals {shape}")
    check_vs_torch(lambda t: LA.svd(t).S, lambda t: TL.svd(t).S, [a], rng=rng,
                   name="svd S only")


@pytest.mark.parametrize("shape", [(5, 3), (3, 5)])
def test_svd_full_matrices(shape, rng):
    a = distinct_singular(rng, *shape)
    m, n = shape
    k = min(m, n)
    u, s, vh = LA.svd(fc.tensor(a))
    assert u.shape == (m, m) and s.shape == (k,) and vh.shape == (n, n)
    assert_close(u.numpy().T @ u.numpy(), np.eye(m), name="U orthogonal")
    assert_close(vh.numpy() @ vh.numpy().T, np.eye(n), name="Vh orthogonal")
    assert_close((u.numpy()[:, :k] * s.numpy()) @ vh.numpy()[:k], a, name="U S Vh")
    seed = int(rng.integers(1 << 31))

    def make(lib, svd):
        rd = np.random.default_rng(seed)
        du = _direction(rd, m, lib)

        def fn(t):  # the extra columns are arbitrary: the loss uses the first k
            u, s, vh = svd(t)
            su = _signs(u[:, :k], du, "cols")
            return _cat(lib, [u[:, :k] * su, s, vh[:k] * su.mT])
        return fn

    check_vs_torch(make("fc", LA.svd), make("torch", TL.svd), [a], rng=rng,
                   name=f"svd full_matrices {shape}")


def test_svd_and_eigh_of_empty():
    u, s, vh = LA.svd(fc.zeros(2, 0, 3))
    assert u.shape == (2, 0, 0) and s.shape == (2, 0) and vh.shape == (2, 3, 3)
    assert_close(vh[0], np.eye(3))
    assert LA.eigvalsh(fc.zeros(0, 0)).shape == (0,)


# ----------------------------------------------------------------------------- pinv, matrix_rank


@pytest.mark.parametrize("shape", [(4, 3), (3, 4), (3, 3), (2, 5, 3)])
def test_pinv(shape, rng):
    a = well_conditioned(rng, *shape)
    check_vs_torch(LA.pinv, TL.pinv, [a], rng=rng, name=f"pinv {shape}")


def test_pinv_hermitian_and_tolerances(rng):
    a = symmetric(rng, 2, 4, 4)
    a[np.abs(a) < 1e-3] = 1e-3
    check_vs_torch(lambda t: LA.pinv(t, hermitian=True), lambda t: TL.pinv(t, hermitian=True),
                   [a], rng=rng, name="pinv hermitian")
    # rank-deficient: the small singular values are cut off by atol / rtol, as torch
    b = distinct_singular(rng, 4, 4)
    u, s, vh = np.linalg.svd(b.astype(np.float64))
    s[-1] = 1e-3
    b = ((u * s) @ vh).astype(np.float32)
    for kw in (dict(atol=0.01), dict(rtol=0.01), dict(atol=0.01, rtol=0.0), dict(rcond=0.01),
               dict(atol=1e-6)):
        tkw = {("rtol" if k == "rcond" else k): v for k, v in kw.items()}
        check_vs_torch(lambda t: LA.pinv(t, **kw), lambda t: TL.pinv(t, **tkw), [b], rng=rng,
                       grad=False, name=f"pinv {kw}")


def test_matrix_rank(rng):
    a = randn(rng, 3, 5, 4)
    a[1, :, 3] = a[1, :, 0] - 2 * a[1, :, 1]  # rank 3
    a[2] = np.outer(randn(rng, 5), randn(rng, 4))  # rank 1
    got = LA.matrix_rank(fc.tensor(a))
    assert got.dtype == fc.int64
    np.testing.assert_array_equal(got.numpy(), [4, 3, 1])
    t = torch.tensor(a.astype(np.float64))
    for kw in (dict(atol=1.0), dict(rtol=0.3), dict(atol=0.5, rtol=0.1)):
        np.testing.assert_array_equal(LA.matrix_rank(fc.tensor(a), **kw).numpy(),
                                      TL.matrix_rank(t, **kw).numpy(), err_msg=str(kw))
    np.testing.assert_array_equal(LA.matrix_rank(fc.tensor(a), 1.0).numpy(),
                                  LA.matrix_rank(fc.tensor(a), atol=1.0, rtol=0.0).numpy())
    h = symmetric(rng, 4, 4)
    assert LA.matrix_rank(fc.tensor(h), hermitian=True).item() == 4


# ----------------------------------------------------------------------------- products, shapes


@pytest.mark.parametrize("a_shape, b_shape, dim", [((3,), (3,), -1), ((4, 3), (4, 3), -1),
                                                   ((1, 3), (5, 3), -1), ((3, 4), (3, 4), 0),
                                                   ((2, 3, 4), (1, 3, 1), 1)])
def test_cross(a_shape, b_shape, dim, rng):
    a, b = randn(rng, *a_shape), randn(rng, *b_shape)
    check_vs_torch(lambda x, y: LA.cross(x, y, dim=dim),
                   lambda x, y: TL.cross(x, y, dim=dim), [a, b], rng=rng,
                   name=f"cross {a_shape} {b_shape}")
    check_vs_torch(lambda x, y: fc.cross(x, y, dim), lambda x, y: torch.cross(x, y, dim),
                   [a, b], rng=rng, name="fastconv.cross")


def test_cross_default_dim_is_the_first_of_length_3(rng):
    a, b = randn(rng, 4, 3, 3), randn(rng, 4, 3, 3)
    with warnings.catch_warnings():  # torch's deprecation of the default (once per process)
        warnings.simplefilter("ignore")
        want = torch.cross(torch.tensor(a), torch.tensor(b))
    assert_close(fc.cross(fc.tensor(a), fc.tensor(b)), want)
    assert_close(fc.tensor(a).cross(fc.tensor(b)), want)


@pytest.mark.parametrize("shapes", [[(3, 4), (4, 5)], [(4,), (4, 2), (2, 6), (6,)],
                                    [(2, 30), (30, 3), (3, 40), (40, 1)], [(5,), (5, 3)],
                                    [(3, 5), (5,)], [(1, 2), (2, 3), (3, 1)]])
def test_multi_dot(shapes, rng):
    xs = [randn(rng, *s) for s in shapes]
    check_vs_torch(lambda *t: LA.multi_dot(t), lambda *t: TL.multi_dot(t), xs, rng=rng,
                   name=f"multi_dot {shapes}")


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, -1, -2])
def test_matrix_power(n, rng):
    a = well_conditioned(rng, 2, 3, 3) / 2
    check_vs_torch(lambda t: LA.matrix_power(t, n), lambda t: TL.matrix_power(t, n), [a],
                   rng=rng, grad=n != 0, name=f"matrix_power {n}")
    check_vs_torch(lambda t: t.matrix_power(n), lambda t: t.matrix_power(n), [a], rng=rng,
                   grad=n != 0, name="Tensor.matrix_power")


@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (2, 4, 4)])
def test_matrix_exp(shape, rng):
    a = randn(rng, *shape, scale=0.7)
    check_vs_torch(LA.matrix_exp, TL.matrix_exp, [a], rng=rng, name=f"matrix_exp {shape}")
    check_vs_torch(fc.matrix_exp, torch.matrix_exp, [a], rng=rng, name="fastconv.matrix_exp")
    check_vs_torch(lambda t: t.matrix_exp(), lambda t: t.matrix_exp(), [a], rng=rng,
                   name="Tensor.matrix_exp")


@pytest.mark.parametrize("offset, dim1, dim2", [(0, -2, -1), (1, -2, -1), (-2, -2, -1),
                                                (0, 0, 2), (1, 2, 0), (-1, 1, 2), (5, -2, -1)])
def test_diagonal(offset, dim1, dim2, rng):
    x = randn(rng, 3, 4, 5)
    check_vs_torch(lambda t: LA.diagonal(t, offset=offset, dim1=dim1, dim2=dim2),
                   lambda t: TL.diagonal(t, offset=offset, dim1=dim1, dim2=dim2), [x], rng=rng,
                   name=f"linalg.diagonal {offset} {dim1} {dim2}")
    check_vs_torch(lambda t: t.diagonal(offset, dim1, dim2),
                   lambda t: t.diagonal(offset, dim1, dim2), [x], rng=rng,
                   name="Tensor.diagonal")
    check_vs_torch(lambda t: fc.diagonal(t, offset), lambda t: torch.diagonal(t, offset), [x],
                   rng=rng, name="fastconv.diagonal (dims 0, 1)")


def test_trace_vecdot_matmul(rng):
    a = randn(rng, 3, 4)
    check_vs_torch(fc.trace, torch.trace, [a], rng=rng, name="trace")
    check_vs_torch(lambda t: t.trace(), lambda t: t.trace(), [a], rng=rng, name="Tensor.trace")
    assert fc.trace(fc.tensor(np.arange(9).reshape(3, 3))).item() == 12
    x, y = randn(rng, 2, 3), randn(rng, 3)
    check_vs_torch(LA.vecdot, TL.vecdot, [x, y], rng=rng, name="vecdot")
    check_vs_torch(lambda p, q: LA.vecdot(p, q, dim=0), lambda p, q: TL.vecdot(p, q, dim=0),
                   [randn(rng, 3, 2), randn(rng, 3, 1)], rng=rng, name="vecdot dim=0")
    check_vs_torch(LA.matmul, TL.matmul, [randn(rng, 2, 3, 4), randn(rng, 4, 2)], rng=rng,
                   name="matmul")


# ----------------------------------------------------------------------------- errors


def _same_error(fc_call, torch_call, fc_type, match):
    """torch raises ``fc_type`` (or a subclass) too, and fastconv's message matches."""
    with pytest.raises(fc_type):
        torch_call()
    with pytest.raises(fc_type, match=match):
        fc_call()


def test_singular_and_not_positive_definite_raise_linalg_error(rng):
    sing = np.stack([np.eye(3, dtype=np.float32), np.ones((3, 3), np.float32)])
    t, tt = fc.tensor(sing), torch.tensor(sing)
    _same_error(lambda: LA.inv(t), lambda: TL.inv(tt), RuntimeError,
                r"linalg.inv: \(Batch element 1\): .*singular")
    with pytest.raises(LA.LinAlgError):
        LA.inv(fc.zeros(2, 2))
    assert issubclass(LA.LinAlgError, RuntimeError)
    b = fc.tensor(randn(rng, 2, 3))
    _same_error(lambda: LA.solve(t, b), lambda: TL.solve(tt, torch.tensor(b.numpy())),
                RuntimeError, "singular")
    _same_error(lambda: LA.matrix_power(t, -1), lambda: TL.matrix_power(tt, -1), RuntimeError,
                "singular")
    npd = symmetric(rng, 4, 4, positive=True)
    npd[2, 2] = -5.0
    _same_error(lambda: LA.cholesky(fc.tensor(npd)), lambda: TL.cholesky(torch.tensor(npd)),
                RuntimeError, "not positive-definite.*leading minor of order 3")
    with pytest.raises(LA.LinAlgError, match="Batch element 1"):
        LA.cholesky(fc.tensor(np.stack([np.eye(4, dtype=np.float32), npd])))


@pytest.mark.parametrize("name, fc_call, torch_call, exc, match", [
    ("inv non-square", lambda: LA.inv(fc.zeros(2, 3)), lambda: TL.inv(torch.zeros(2, 3)),
     RuntimeError, r"square matrices.*2 by 3"),
    ("inv 1-D", lambda: LA.inv(fc.zeros(3)), lambda: TL.inv(torch.zeros(3)), RuntimeError,
     "at least 2 dimensions"),
    ("det integer", lambda: LA.det(fc.zeros(3, 3, dtype=fc.int64)),
     lambda: TL.det(torch.zeros(3, 3, dtype=torch.int64)), RuntimeError, "floating point"),
    ("det non-square", lambda: LA.det(fc.zeros(2, 3)), lambda: TL.det(torch.zeros(2, 3)),
     RuntimeError, "square"),
    ("solve shapes", lambda: LA.solve(fc.eye(3), fc.zeros(4)),
     lambda: TL.solve(torch.eye(3), torch.zeros(4)), RuntimeError, r"Incompatible.*3x3 and 4x1"),
    ("solve left=False vector", lambda: LA.solve(fc.eye(3), fc.zeros(3), left=False),
     lambda: TL.solve(torch.eye(3), torch.zeros(3), left=False), RuntimeError, "left=False"),
    ("solve batch", lambda: LA.solve(fc.zeros(2, 3, 3), fc.zeros(4, 3, 1)),
     lambda: TL.solve(torch.zeros(2, 3, 3), torch.zeros(4, 3, 1)), RuntimeError, "broadcast"),
    ("matrix_norm ord", lambda: LA.matrix_norm(fc.zeros(3, 3), 3),
     lambda: TL.matrix_norm(torch.zeros(3, 3), 3), RuntimeError, "Order 3 not supported"),
    ("matrix_norm dim", lambda: LA.matrix_norm(fc.zeros(3, 3), dim=(0,)),
     lambda: TL.matrix_norm(torch.zeros(3, 3), dim=(0,)), RuntimeError, "2-tuple"),
    ("matrix_norm int dim", lambda: LA.matrix_norm(fc.zeros(3, 3), dim=0),
     lambda: TL.matrix_norm(torch.zeros(3, 3), dim=0), TypeError, "dim"),
    ("matrix_norm 1-D", lambda: LA.matrix_norm(fc.zeros(3)),
     lambda: TL.matrix_norm(torch.zeros(3)), RuntimeError, "at least 2 dimensions"),
    ("vector_norm str", lambda: LA.vector_norm(fc.zeros(3), "fro"),
     lambda: TL.vector_norm(torch.zeros(3), "fro"), TypeError, "ord"),
    ("vector_norm int", lambda: LA.vector_norm(fc.zeros(3, dtype=fc.int64)),
     lambda: TL.vector_norm(torch.zeros(3, dtype=torch.int64)), RuntimeError, "Long"),
    ("vector_norm repeated dim", lambda: LA.vector_norm(fc.zeros(2, 3), 2, (0, -2)),
     lambda: TL.vector_norm(torch.zeros(2, 3), 2, (0, -2)), RuntimeError, "multiple times"),
    ("vector_norm dim range", lambda: LA.vector_norm(fc.zeros(2, 3), 2, 5),
     lambda: TL.vector_norm(torch.zeros(2, 3), 2, 5), IndexError, "out of range"),
    ("norm 3-D with ord", lambda: LA.norm(fc.zeros(2, 2, 2), 2),
     lambda: TL.norm(torch.zeros(2, 2, 2), 2), RuntimeError, "1D or 2D. Got 3D"),
    ("norm 3 dims", lambda: LA.norm(fc.zeros(2, 2, 2), 2, (0, 1, 2)),
     lambda: TL.norm(torch.zeros(2, 2, 2), 2, (0, 1, 2)), RuntimeError, "length 1 or 2"),
    ("qr mode", lambda: LA.qr(fc.zeros(3, 3), "x"), lambda: TL.qr(torch.zeros(3, 3), "x"),
     RuntimeError, "unrecognized mode 'x'"),
    ("eigh UPLO", lambda: LA.eigh(fc.eye(3), "X"), lambda: TL.eigh(torch.eye(3), "X"),
     RuntimeError, "UPLO"),
    ("eigh non-square", lambda: LA.eigvalsh(fc.zeros(2, 3)),
     lambda: TL.eigvalsh(torch.zeros(2, 3)), RuntimeError, "square"),
    ("svd 1-D", lambda: LA.svd(fc.zeros(3)), lambda: TL.svd(torch.zeros(3)), RuntimeError,
     "at least 2 dimensions"),
    ("cross length", lambda: LA.cross(fc.zeros(4), fc.zeros(4)),
     lambda: TL.cross(torch.zeros(4), torch.zeros(4)), RuntimeError, "must have length 3"),
    ("multi_dot one", lambda: LA.multi_dot([fc.zeros(3, 3)]),
     lambda: TL.multi_dot([torch.zeros(3, 3)]), RuntimeError, "at least 2 tensors"),
    ("multi_dot shapes", lambda: LA.multi_dot([fc.zeros(3, 3), fc.zeros(4, 3)]),
     lambda: TL.multi_dot([torch.zeros(3, 3), torch.zeros(4, 3)]), RuntimeError,
     r"tensors 0 and 1 with shapes \[3, 3\] and \[4, 3\]"),
    ("multi_dot 3-D", lambda: LA.multi_dot([fc.zeros(3, 3), fc.zeros(3, 3, 3),
                                             fc.zeros(3, 3)]),
     lambda: TL.multi_dot([torch.zeros(3, 3), torch.zeros(3, 3, 3), torch.zeros(3, 3)]),
     RuntimeError, "tensor 1 must be 2D but got 3D"),
    ("matrix_exp shape", lambda: LA.matrix_exp(fc.zeros(2, 3)),
     lambda: TL.matrix_exp(torch.zeros(2, 3)), RuntimeError, "square"),
    ("matrix_power shape", lambda: LA.matrix_power(fc.zeros(2, 3), 2),
     lambda: TL.matrix_power(torch.zeros(2, 3), 2), RuntimeError, "square"),
    ("lstsq rows", lambda: LA.lstsq(fc.zeros(5, 3), fc.zeros(4, 2)),
     lambda: TL.lstsq(torch.zeros(5, 3), torch.zeros(4, 2)), RuntimeError, "size\\(-2\\)"),
    ("diagonal dims", lambda: fc.diagonal(fc.zeros(3, 3), 0, 1, 1),
     lambda: torch.diagonal(torch.zeros(3, 3), 0, 1, 1), RuntimeError, "identical"),
    ("trace 3-D", lambda: fc.trace(fc.zeros(2, 2, 2)), lambda: torch.trace(torch.zeros(2, 2, 2)),
     RuntimeError, "expected a matrix"),
])
def test_linalg_errors(name, fc_call, torch_call, exc, match):
    _same_error(fc_call, torch_call, exc, match)


def test_linalg_errors_without_a_torch_twin():
    with pytest.raises(RuntimeError, match="driver"):
        LA.lstsq(fc.zeros(5, 3), fc.zeros(5, 2), driver="foo")
    with pytest.raises(TypeError, match="'n' must be an int"):
        LA.matrix_power(fc.eye(3), 1.5)
    with pytest.raises(TypeError, match="must be a fastconv.Tensor"):
        LA.inv(np.eye(3))
    with pytest.raises(AttributeError, match="complex"):
        LA.eig  # noqa: B018
    with pytest.raises(AttributeError):
        LA.no_such_function  # noqa: B018
    with pytest.raises(NotImplementedError, match="out="):
        LA.inv(fc.eye(2), out=fc.eye(2))


# ----------------------------------------------------------------------------- fuzz


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4),
       ord=st.sampled_from([2, 1, 0, 3, 0.5, -1, INF, -INF, "fro", "nuc", -2, None]),
       dim_seed=st.integers(0, 10_000), keepdim=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_norms_fuzz(shape, ord, dim_seed, keepdim, seed):
    """linalg.norm, vector_norm and matrix_norm over random shapes, dims and ords: each call
    either matches torch (forward and gradient) or raises where torch raises."""
    rng = np.random.default_rng(seed)
    x = randn(rng, *shape)
    x[np.abs(x) < 0.05] = 0.1
    nd = len(shape)
    pick = np.random.default_rng(dim_seed)
    k = int(pick.integers(0, min(nd, 2) + 1))
    dim = None if k == 0 else tuple(int(d) - nd * int(pick.integers(0, 2))
                                    for d in pick.choice(nd, k, replace=False))
    calls = [("norm", lambda m, t: m.norm(t, ord, dim, keepdim))]
    if ord is not None and not isinstance(ord, str):
        calls.append(("vector_norm", lambda m, t: m.vector_norm(t, ord, dim, keepdim)))
    if dim is not None and len(dim) == 2 and ord is not None:
        calls.append(("matrix_norm", lambda m, t: m.matrix_norm(t, ord, dim, keepdim)))
    for name, call in calls:
        try:
            call(TL, torch.tensor(x.astype(np.float64)))
        except (RuntimeError, IndexError, TypeError, ValueError) as e:
            with pytest.raises(type(e)):
                call(LA, fc.tensor(x))
            continue
        check_vs_torch(lambda t: call(LA, t), lambda t: call(TL, t), [x], rng=rng,
                       grad=ord != 0, name=f"{name} {shape} ord={ord} dim={dim}")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(st.integers(1, 3), max_size=2), n=st.integers(1, 5),
       k=st.integers(0, 3), seed=st.integers(0, 2**31 - 1))
def test_solvers_fuzz(batch, n, k, seed):
    """inv, det, solve and cholesky over random batch shapes and sizes."""
    rng = np.random.default_rng(seed)
    a = well_conditioned(rng, *batch, n, n)
    check_vs_torch(LA.inv, TL.inv, [a], rng=rng, name="inv")
    check_vs_torch(LA.det, TL.det, [a], rng=rng, name="det")
    b = randn(rng, *batch, n) if k == 0 else randn(rng, n, k)
    check_vs_torch(LA.solve, TL.solve, [a, b], rng=rng, name="solve")
    spd = symmetric(rng, *batch, n, n, positive=True)
    check_vs_torch(LA.cholesky, TL.cholesky, [spd], rng=rng, name="cholesky")


# ============================================================================= special


def _uniform(rng, lo, hi, *shape):
    return rng.uniform(lo, hi, size=shape).astype(np.float32)


UNARY = [
    # name, domain, torch function
    ("erf", (-3, 3), TS.erf), ("erfc", (-3, 3), TS.erfc), ("erfcx", (-2, 20), TS.erfcx),
    ("erfinv", (-0.95, 0.95), TS.erfinv), ("expit", (-6, 6), TS.expit),
    ("gammaln", (0.1, 8), TS.gammaln), ("digamma", (0.2, 8), TS.digamma),
    ("psi", (0.2, 8), TS.psi), ("i0", (-8, 8), TS.i0), ("i0e", (-40, 40), TS.i0e),
    ("i1", (-8, 8), TS.i1), ("i1e", (-40, 40), TS.i1e), ("sinc", (-3, 3), TS.sinc),
    ("entr", (0.05, 4), TS.entr), ("log1p", (-0.9, 4), TS.log1p),
    ("expm1", (-3, 3), TS.expm1), ("exp2", (-5, 5), TS.exp2), ("ndtr", (-5, 5), TS.ndtr),
    ("ndtri", (0.02, 0.98), TS.ndtri), ("log_ndtr", (-30, 5), TS.log_ndtr),
]


@pytest.mark.parametrize("name, domain, torch_fn", UNARY, ids=[u[0] for u in UNARY])
def test_special_unary(name, domain, torch_fn, rng):
    x = _uniform(rng, *domain, 3, 40)
    check_vs_torch(getattr(SP, name), torch_fn, [x], rng=rng, name=f"special.{name}")


def test_special_negative_arguments(rng):
    # the reflection paths of gammaln / digamma (away from the poles), and the tails
    x = -(np.arange(1, 6, dtype=np.float32)[:, None] - 0.5 + _uniform(rng, -0.3, 0.3, 5, 4))
    for name in ("gammaln", "digamma"):
        check_vs_torch(getattr(SP, name), getattr(TS, name), [x], rng=rng, name=name)
    check_vs_torch(SP.erfinv, TS.erfinv, [_uniform(rng, 0.99, 0.99999, 30)], rng=rng,
                   grad=False, name="erfinv tail")
    check_vs_torch(SP.ndtri, TS.ndtri, [10.0 ** _uniform(rng, -30, -3, 30)], rng=rng,
                   grad=False, name="ndtri tail")


@pytest.mark.parametrize("n", [1, 2, 3])
def test_polygamma(n, rng):
    x = _uniform(rng, 0.5, 6, 30)
    check_vs_torch(lambda t: SP.polygamma(n, t), lambda t: TS.polygamma(n, t), [x], rng=rng,
                   name=f"polygamma {n}")
    check_vs_torch(lambda t: fc.polygamma(n, t), lambda t: torch.polygamma(n, t), [x],
                   rng=rng, name="fastconv.polygamma")
    check_vs_torch(lambda t: t.polygamma(n), lambda t: t.polygamma(n), [x], rng=rng,
                   name="Tensor.polygamma")
    neg = -_uniform(rng, 0.2, 0.8, 10) - 1
    check_vs_torch(lambda t: SP.polygamma(n, t), lambda t: TS.polygamma(n, t), [neg],
                   rng=rng, grad=False, rtol=1e-4, name=f"polygamma {n} negative")


@pytest.mark.parametrize("p", [1, 2, 3, 5])
def test_multigammaln(p, rng):
    x = _uniform(rng, (p - 1) / 2 + 0.2, 6, 30)
    check_vs_torch(lambda t: SP.multigammaln(t, p), lambda t: TS.multigammaln(t, p), [x],
                   rng=rng, name=f"multigammaln {p}")
    check_vs_torch(lambda t: t.mvlgamma(p), lambda t: t.mvlgamma(p), [x], rng=rng,
                   name="Tensor.mvlgamma")


@pytest.mark.parametrize("eps", [None, 0.1])
def test_logit(eps, rng):
    x = _uniform(rng, 0.02, 0.98, 40)
    check_vs_torch(lambda t: SP.logit(t, eps), lambda t: TS.logit(t, eps), [x], rng=rng,
                   name=f"logit eps={eps}")
    check_vs_torch(lambda t: t.logit(eps), lambda t: t.logit(eps), [x], rng=rng,
                   name="Tensor.logit")
    # outside [0, 1] (or [eps, 1 - eps]): torch's values and gradients (NaN, or 0 with eps)
    edge = np.array([-0.5, 0.0, 0.05, 0.5, 0.95, 1.0, 1.5], np.float32)
    t, tt = fc.tensor(edge, requires_grad=True), torch.tensor(edge, requires_grad=True)
    y, ty = SP.logit(t, eps), TS.logit(tt, eps)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-5)
    y.sum().backward()
    ty.sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-5)


@pytest.mark.parametrize("name", ["xlogy", "xlog1py"])
def test_xlogy_xlog1py(name, rng):
    x, y = randn(rng, 3, 4), _uniform(rng, 0.1, 3, 4)
    x[0, :2] = 0
    f, tf = getattr(SP, name), getattr(TS, name)
    check_vs_torch(f, tf, [x, y], rng=rng, name=name)
    check_vs_torch(lambda a: f(a, 2.5), lambda a: tf(a, 2.5), [x], rng=rng, name=f"{name}(t, s)")
    check_vs_torch(lambda b: f(1.5, b), lambda b: tf(1.5, b), [y], rng=rng, name=f"{name}(s, t)")
    # x == 0 gives 0 (also where log(y) is -inf or NaN), unless y is NaN
    edge_x = np.array([0, 0, 0, 1, 2], np.float32)
    edge_y = np.array([0, -1, np.nan, 0, -1], np.float32)
    got = f(fc.tensor(edge_x), fc.tensor(edge_y)).numpy()
    want = tf(torch.tensor(edge_x), torch.tensor(edge_y)).numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(got[~np.isnan(got)], want[~np.isnan(want)])
    if name == "xlogy":
        check_vs_torch(fc.xlogy, torch.xlogy, [x, y], rng=rng, name="fastconv.xlogy")
        check_vs_torch(lambda a, b: a.xlogy(b), lambda a, b: a.xlogy(b), [x, y], rng=rng,
                       name="Tensor.xlogy")


def test_zeta(rng):
    x, q = _uniform(rng, 1.5, 6, 20), _uniform(rng, 0.3, 5, 20)
    check_vs_torch(SP.zeta, TS.zeta, [x, q], rng=rng, grad_idx=[1], name="zeta")
    check_vs_torch(lambda b: SP.zeta(2.0, b), lambda b: TS.zeta(2.0, b), [q], rng=rng,
                   name="zeta(2, q)")
    edge_x = np.array([1.0, 0.5, 2.0, 2.0, 3.0, 2.5], np.float32)
    edge_q = np.array([1.0, 1.0, -1.0, -1.5, 0.0, -0.5], np.float32)
    got = SP.zeta(fc.tensor(edge_x), fc.tensor(edge_q)).numpy()
    want = TS.zeta(torch.tensor(edge_x), torch.tensor(edge_q)).numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=1e-5)
    t = fc.tensor(x, requires_grad=True)
    with pytest.raises(NotImplementedError, match="zeta"):
        SP.zeta(t, fc.tensor(q)).sum().backward()


def test_special_edge_values():
    """Poles, infinities and the ends of the domains give torch's values (torch in float64,
    rounded to float32: what overflows float32 is inf on both sides)."""
    vals = np.array([0.0, -0.0, -1.0, -2.0, 1.0, -0.5, 1e-30, 40.0, -40.0, np.inf, -np.inf,
                     np.nan, 1e10, 0.5, 1.5, -1e-30], np.float32)
    t, tt = fc.tensor(vals), torch.tensor(vals.astype(np.float64))
    for name in ("erfc", "erfcx", "erfinv", "expit", "gammaln", "digamma", "i0e", "i1e",
                 "sinc", "entr", "log1p", "expm1", "exp2", "ndtr", "ndtri", "log_ndtr"):
        got, want = getattr(SP, name)(t).numpy(), getattr(TS, name)(tt).float().numpy()
        nan = np.isnan(want)
        np.testing.assert_array_equal(np.isnan(got), nan, err_msg=name)
        np.testing.assert_allclose(got[~nan], want[~nan], rtol=2e-6, atol=1e-30, err_msg=name)
    for name in ("i0", "i1"):  # in their range (they overflow float32 past ~89)
        v = vals[np.abs(vals) < 50]
        got, want = getattr(SP, name)(fc.tensor(v)).numpy(), getattr(TS, name)(
            torch.tensor(v.astype(np.float64))).float().numpy()
        np.testing.assert_allclose(got, want, rtol=2e-6, equal_nan=True, err_msg=name)


def test_special_reused_ops(rng):
    x = randn(rng, 3, 5)
    check_vs_torch(lambda t: SP.logsumexp(t, 1), lambda t: TS.logsumexp(t, 1), [x], rng=rng,
                   name="logsumexp")
    check_vs_torch(lambda t: SP.logsumexp(t, (0, 1), keepdim=True),
                   lambda t: TS.logsumexp(t, (0, 1), keepdim=True), [x], rng=rng,
                   name="logsumexp dims")
    check_vs_torch(lambda t: SP.softmax(t, 0), lambda t: TS.softmax(t, 0), [x], rng=rng,
                   name="softmax")
    check_vs_torch(lambda t: SP.log_softmax(t, -1), lambda t: TS.log_softmax(t, -1), [x],
                   rng=rng, name="log_softmax")
    check_vs_torch(lambda t: SP.round(t * 10, decimals=1),
                   lambda t: TS.round(t * 10, decimals=1), [x], rng=rng, name="round")


def test_special_tensor_methods_toplevel_and_inplace(rng):
    x = _uniform(rng, 0.1, 0.9, 12)
    for name, torch_name in [("erfc", "erfc"), ("erfinv", "erfinv"), ("lgamma", "lgamma"),
                             ("digamma", "digamma"), ("i0", "i0"), ("sinc", "sinc"),
                             ("exp2", "exp2"), ("logit", "logit")]:
        check_vs_torch(lambda t, n=name: getattr(t, n)(),
                       lambda t, n=torch_name: getattr(t, n)(), [x], rng=rng,
                       name=f"Tensor.{name}")
        check_vs_torch(lambda t, n=name: getattr(fc, n)(t),
                       lambda t, n=torch_name: getattr(torch, n)(t), [x], rng=rng,
                       name=f"fastconv.{name}")
        t = fc.tensor(x.copy())
        getattr(t, name + "_")()
        assert_close(t, getattr(torch.tensor(x.astype(np.float64)), torch_name)(),
                     name=f"{name}_")
    t = fc.tensor(x.copy())
    t.polygamma_(1)
    assert_close(t, torch.polygamma(1, torch.tensor(x.astype(np.float64))), name="polygamma_")
    t = fc.tensor(x.copy() + 2)
    t.mvlgamma_(2)
    assert_close(t, torch.mvlgamma(torch.tensor(x.astype(np.float64) + 2), 2), name="mvlgamma_")
    check_vs_torch(lambda t: fc.mvlgamma(t + 2, 3), lambda t: torch.mvlgamma(t + 2, 3), [x],
                   rng=rng, name="fastconv.mvlgamma")
    check_vs_torch(lambda t: fc.logit(t, 0.2), lambda t: torch.logit(t, 0.2), [x], rng=rng,
                   name="fastconv.logit eps")


def test_special_integer_input_becomes_float():
    ints = fc.tensor(np.array([1, 2, 3]))
    for name in ("erfc", "gammaln", "digamma", "i0", "exp2", "ndtr", "expit", "erf"):
        out = getattr(SP, name)(ints)
        assert out.dtype == fc.float32, name
        assert_close(out, getattr(TS, name)(torch.tensor([1, 2, 3])), name=name)
    assert SP.xlogy(ints, ints).dtype == fc.float32
    assert SP.polygamma(1, ints).dtype == fc.float32


def test_special_errors():
    with pytest.raises(RuntimeError, match="negative n"):
        SP.polygamma(-1, fc.ones(2))
    with pytest.raises(RuntimeError, match="greater than or equal to 1"):
        SP.multigammaln(fc.ones(2), 0)
    with pytest.raises(TypeError, match="must be a fastconv.Tensor"):
        SP.erfc([1.0, 2.0])
    with pytest.raises(TypeError, match="at least one"):
        SP.xlogy(1.0, 2.0)
    with pytest.raises(RuntimeError, match="broadcast"):
        SP.xlogy(fc.ones(2), fc.ones(3))
    with pytest.raises(TypeError, match="'n' must be an int"):
        SP.polygamma(1.0, fc.ones(2))


# ----------------------------------------------------------------------------- backends


def test_special_cpu_kernels_against_scipy(rng):
    """The float64 kernels written here, over a wide range, against SciPy's (a test-only
    oracle: fastconv does not depend on SciPy)."""
    sc = pytest.importorskip("scipy.special")
    from fastconv.ops import special as ops

    x = np.concatenate([rng.standard_normal(500) * 3, rng.standard_normal(200) * 40,
                        10.0 ** rng.uniform(-30, 2, 200), -(10.0 ** rng.uniform(-30, 2, 200))])
    x = x.astype(np.float32).astype(np.float64)
    p = np.concatenate([rng.uniform(0, 1, 500), 10.0 ** rng.uniform(-40, 0, 200),
                        1 - 10.0 ** rng.uniform(-7, 0, 100)]).astype(np.float32).astype(float)
    cases = [(n, x) for n in ("erf", "erfc", "erfcx", "ndtr", "log_ndtr", "gammaln", "digamma",
                              "i0", "i0e", "i1", "i1e", "entr")]
    cases += [("ndtri", p), ("erfinv", 2 * p - 1)]
    for name, arg in cases:
        with np.errstate(all="ignore"):
            got, want = ops.CPU[name](arg), getattr(sc, name)(arg)
        ok = np.isfinite(want) & (np.abs(want) > 1e-300)
        assert_close(got[ok], want[ok], rtol=1e-10, atol=0, name=name)
    for n in (1, 2, 3):
        arg = x[(x > 0.05) | (np.abs(x - np.round(x)) > 0.05)]
        assert_close(ops.polygamma(n, arg), sc.polygamma(n, arg), rtol=1e-9, atol=0,
                     name=f"polygamma {n}")
    s, q = rng.uniform(1.1, 12, 300), rng.uniform(-6, 10, 300)
    q[np.abs(q - np.round(q)) < 0.05] += 0.1
    s[q < 0] = np.maximum(np.round(s[q < 0]), 2)  # q < 0 needs an integer s (> 1)
    assert_close(ops.zeta(s, q), sc.zeta(s, q), rtol=1e-10, atol=0, name="zeta")


def test_gpu_dispatch_names_match_cupyx(monkeypatch, rng):
    """The GPU path calls cupyx.scipy.special by SciPy's names and argument order; checked
    with SciPy standing in for cupyx (its API is SciPy's), so a renamed function or a swapped
    argument shows here without a GPU."""
    sc = pytest.importorskip("scipy.special")
    from fastconv.ops import special as ops

    cupyx = types.ModuleType("cupyx")
    cupyx.scipy = types.ModuleType("cupyx.scipy")
    cupyx.scipy.special = sc
    monkeypatch.setitem(sys.modules, "cupyx", cupyx)
    monkeypatch.setitem(sys.modules, "cupyx.scipy", cupyx.scipy)
    monkeypatch.setitem(sys.modules, "cupyx.scipy.special", sc)
    fake_xp = types.SimpleNamespace(sinc=np.sinc, exp2=np.exp2)
    x = rng.uniform(0.1, 0.9, 20)
    for name in ops.CPU:
        assert_close(ops.call(fake_xp, name, x), ops.call(np, name, x), rtol=1e-9, name=name)
    assert_close(ops.call(fake_xp, "polygamma", 2, x), ops.call(np, "polygamma", 2, x),
                 rtol=1e-9, name="polygamma")
    assert_close(ops.call(fake_xp, "zeta", x + 2, x), ops.call(np, "zeta", x + 2, x),
                 rtol=1e-9, name="zeta")


def test_lapack_failures_on_the_cupy_path(monkeypatch):
    """The GPU path runs LAPACK under cupyx.errstate(linalg='raise') (CuPy ignores cuSOLVER's
    info otherwise) and turns its error into LinAlgError with the batch element."""
    from fastconv.ops import linalg as ops

    entered = []

    class _Errstate:
        def __init__(self, **kw):
            entered.append(kw)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    cupyx = types.ModuleType("cupyx")
    cupyx.errstate = _Errstate
    monkeypatch.setitem(sys.modules, "cupyx", cupyx)
    fake_xp = types.SimpleNamespace(linalg=types.SimpleNamespace(inv=np.linalg.inv,
                                                                 LinAlgError=np.linalg.LinAlgError))
    a = np.stack([np.eye(2), np.ones((2, 2))]).astype(np.float32)
    with pytest.raises(ops.LinAlgError, match=r"linalg.inv: \(Batch element 1\)"):
        ops.lapack(fake_xp, "linalg.inv", "singular", fake_xp.linalg.inv, a)
    assert entered and all(kw == {"linalg": "raise"} for kw in entered)


@pytest.mark.gpu
def test_linalg_and_special_cuda_vs_cpu(rng):
    a = well_conditioned(rng, 2, 4, 4)
    s = symmetric(rng, 2, 4, 4, positive=True)
    for name, fn, x in [("inv", LA.inv, a), ("det", LA.det, a), ("cholesky", LA.cholesky, s),
                        ("eigvalsh", LA.eigvalsh, s), ("svdvals", LA.svdvals, a),
                        ("pinv", LA.pinv, a), ("matrix_norm nuc", lambda t: LA.matrix_norm(
                            t, "nuc"), a), ("vector_norm 3", lambda t: LA.vector_norm(t, 3), a),
                        ("slogdet", lambda t: LA.slogdet(t).logabsdet, a)]:
        check_devices(fn, [x], rng=rng, name=name)
    check_devices(LA.solve, [a, randn(rng, 2, 4, 3)], rng=rng, name="solve")
    check_devices(lambda t: LA.qr(t).R.abs(), [a], rng=rng, name="qr")
    with pytest.raises(LA.LinAlgError, match="singular"):
        LA.inv(fc.zeros(3, 3, device="cuda"))
    x = _uniform(rng, 0.1, 0.9, 50)
    for name in ("erfc", "erfinv", "gammaln", "digamma", "i0e", "i1", "ndtri", "log_ndtr",
                 "entr", "sinc", "exp2"):
        check_devices(getattr(SP, name), [x], rng=rng, name=name)
    check_devices(lambda t: SP.polygamma(2, t), [x], rng=rng, name="polygamma")
    check_devices(lambda t: SP.xlogy(t, t + 1), [x], rng=rng, name="xlogy")
