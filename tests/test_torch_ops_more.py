"""More of PyTorch's top-level helpers: diagonals and matrix products (fastconv/ops/matrix.py),
running extremes and searches (ops/scans.py), statistics (ops/statistics.py), rearranging
(ops/arrange.py), scatter_reduce, the vector norm's gradient, Tensor.type and the default
generator.

Each differentiable op is checked forward and backward against torch (float64 autograd) on
fresh random inputs; the counting ops against torch's values; bad arguments must raise.
A hypothesis test draws shapes and arguments for the shape helpers: each call matches torch
or raises where torch raises.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close, check_vs_torch, distinct, randn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastconv as fc

torch = pytest.importorskip("torch")


# ----------------------------------------------------------------------------- diagonals


@pytest.mark.parametrize("offset, dim1, dim2", [(0, 0, 1), (1, 0, 1), (-2, 1, 2), (2, -1, 0),
                                                (5, 0, 1)])
def test_diagonal(offset, dim1, dim2, rng):
    x = randn(rng, 3, 4, 5)
    check_vs_torch(lambda t: fc.diagonal(t, offset, dim1, dim2),
                   lambda t: torch.diagonal(t, offset, dim1, dim2), [x], rng=rng,
                   name=f"diagonal {offset} {dim1} {dim2}")
    check_vs_torch(lambda t: t.diagonal(offset=offset, dim1=dim1, dim2=dim2),
                   lambda t: t.diagonal(offset=offset, dim1=dim1, dim2=dim2), [x], rng=rng,
                   name="Tensor.diagonal")


@pytest.mark.parametrize("offset, dim1, dim2", [(0, -2, -1), (1, 0, 2), (-1, 2, 0)])
def test_diag_embed(offset, dim1, dim2, rng):
    x = randn(rng, 2, 3)
    check_vs_torch(lambda t: fc.diag_embed(t, offset, dim1, dim2),
                   lambda t: torch.diag_embed(t, offset, dim1, dim2), [x], rng=rng,
                   name="diag_embed")


@pytest.mark.parametrize("k", [0, 1, -2])
def test_diag_and_trace(k, rng):
    v, m = randn(rng, 4), randn(rng, 4, 3)
    check_vs_torch(lambda t: fc.diag(t, k), lambda t: torch.diag(t, k), [v], rng=rng,
                   name="diag of a vector")
    check_vs_torch(lambda t: t.diag(k), lambda t: t.diag(k), [m], rng=rng,
                   name="diag of a matrix")
    check_vs_torch(lambda t: t.trace(), lambda t: t.trace(), [m], rng=rng, name="trace")
    with pytest.raises(RuntimeError, match="1D or 2D"):
        fc.diag(fc.tensor(randn(rng, 2, 2, 2)))
    with pytest.raises(RuntimeError, match="matrix"):
        fc.trace(fc.tensor(v))
    with pytest.raises(RuntimeError, match="identical"):
        fc.diagonal(fc.tensor(m), 0, 1, -1)


# ----------------------------------------------------------------------------- products


@pytest.mark.parametrize("sa, sb", [((2, 3), (4, 5)), ((3,), (2, 2)), ((2, 1, 3), (3, 2))])
def test_kron(sa, sb, rng):
    check_vs_torch(fc.kron, torch.kron, [randn(rng, *sa), randn(rng, *sb)], rng=rng,
                   name=f"kron {sa} {sb}")


@pytest.mark.parametrize("sa, sb, dims", [((3, 4, 5), (4, 5, 2), 2), ((3, 4), (4, 2), 1),
                                          ((2, 3), (4,), 0),
                                          ((3, 4, 5), (5, 3, 2), ([0, 2], [1, 0]))])
def test_tensordot(sa, sb, dims, rng):
    check_vs_torch(lambda a, b: fc.tensordot(a, b, dims), lambda a, b: torch.tensordot(a, b, dims),
                   [randn(rng, *sa), randn(rng, *sb)], rng=rng, name=f"tensordot {dims}")


def test_tensordot_mismatch_raises(rng):
    with pytest.raises(RuntimeError, match="contracted dimensions need to match"):
        fc.tensordot(fc.tensor(randn(rng, 3, 4)), fc.tensor(randn(rng, 5, 2)), 1)


def test_addmv_addr_chain_matmul(rng):
    check_vs_torch(lambda i, m, v: fc.addmv(i, m, v, beta=0.5, alpha=2.0),
                   lambda i, m, v: torch.addmv(i, m, v, beta=0.5, alpha=2.0),
                   [randn(rng, 3), randn(rng, 3, 4), randn(rng, 4)], rng=rng, name="addmv")
    check_vs_torch(lambda i, a, b: i.addr(a, b, alpha=3.0),
                   lambda i, a, b: i.addr(a, b, alpha=3.0),
                   [randn(rng, 3, 2), randn(rng, 3), randn(rng, 2)], rng=rng, name="addr")
    check_vs_torch(lambda a, b, c: fc.chain_matmul(a, b, c),
                   lambda a, b, c: a @ b @ c,
                   [randn(rng, 2, 3), randn(rng, 3, 4), randn(rng, 4, 2)], rng=rng,
                   name="chain_matmul")


def test_block_diag_cartesian_prod_combinations(rng):
    check_vs_torch(lambda a, b, c: fc.block_diag(a, b, c),
                   lambda a, b, c: torch.block_diag(a, b, c),
                   [randn(rng, 2, 3), randn(rng, 4), randn(rng, 1, 1)], rng=rng,
                   name="block_diag")
    check_vs_torch(lambda a, b: fc.cartesian_prod(a, b), lambda a, b: torch.cartesian_prod(a, b),
                   [randn(rng, 3), randn(rng, 2)], rng=rng, name="cartesian_prod")
    for r, rep in [(2, False), (3, True), (1, False)]:
        check_vs_torch(lambda a, r=r, rep=rep: fc.combinations(a, r, rep),
                       lambda a, r=r, rep=rep: torch.combinations(a, r, rep), [randn(rng, 4)],
                       rng=rng, name=f"combinations {r} {rep}")


@pytest.mark.parametrize("n, increasing", [(None, False), (4, True), (1, False)])
def test_vander(n, increasing, rng):
    # torch.vander's own backward fails (it writes its output in place), so the gradient
    # reference is the powers stacked by hand; the forward is checked against torch.vander.
    def powers(x):
        cols = [x ** k for k in range(x.shape[0] if n is None else n)]
        return torch.stack(cols if increasing else cols[::-1], 1)

    x = randn(rng, 3)
    assert_close(fc.vander(fc.tensor(x), n, increasing), torch.vander(torch.tensor(x), n,
                                                                      increasing))
    check_vs_torch(lambda x: fc.vander(x, n, increasing), powers, [x], rng=rng, name="vander")


@pytest.mark.parametrize("row, col, offset", [(4, 3, 0), (3, 5, 1), (5, 5, -2), (0, 3, 0)])
def test_triangle_indices(row, col, offset):
    for name in ("tril_indices", "triu_indices"):
        got = getattr(fc, name)(row, col, offset)
        want = getattr(torch, name)(row, col, offset)
        assert got.dtype == fc.int64
        np.testing.assert_array_equal(got.numpy(), want.numpy())


# ----------------------------------------------------------------------------- distances


@pytest.mark.parametrize("p", [2.0, 1.0, 3.0, 0.5, float("inf"), 0.0])
def test_cdist(p, rng):
    a, b = randn(rng, 2, 4, 3), randn(rng, 2, 5, 3)
    b[0, 1] = a[0, 2]  # a zero distance: finite gradient (zero), as torch's
    check_vs_torch(lambda x, y: fc.cdist(x, y, p), lambda x, y: torch.cdist(x, y, p), [a, b],
                   rng=rng, name=f"cdist p={p}", grad=p != 0.0)


def test_cdist_bad_shapes(rng):
    with pytest.raises(RuntimeError, match="same number of columns"):
        fc.cdist(fc.tensor(randn(rng, 3, 2)), fc.tensor(randn(rng, 3, 4)))
    with pytest.raises(RuntimeError, match="at least 2D"):
        fc.cdist(fc.tensor(randn(rng, 3)), fc.tensor(randn(rng, 3, 4)))


@pytest.mark.parametrize("p", [2, 1, 3.5, float("inf")])
def test_dist_and_renorm(p, rng):
    check_vs_torch(lambda x, y: fc.dist(x, y, p), lambda x, y: torch.dist(x, y, p),
                   [randn(rng, 3, 4), randn(rng, 4)], rng=rng, name=f"dist {p}")
    x = randn(rng, 4, 3, 2)
    check_vs_torch(lambda t: t.renorm(p, 1, 1.5), lambda t: t.renorm(p, 1, 1.5), [x], rng=rng,
                   name=f"renorm {p}")


@pytest.mark.parametrize("p", [2, 1, 3, 0.5, -1.5, float("inf"), -float("inf"), "fro"])
@pytest.mark.parametrize("dim", [None, 1, (0, 1)])
def test_norm_gradient_at_zero_is_zero(p, dim, rng):
    """A zero row has no direction: torch's gradient is zero there, never NaN."""
    x = randn(rng, 3, 4)
    x[0] = 0.0
    x[1, 1] = x[1, 2]  # a tie for the inf norms: the gradient is shared
    check_vs_torch(lambda t: t.norm(p, dim), lambda t: t.norm(p, dim), [x], rng=rng,
                   name=f"norm {p} {dim}")


def test_normalize_zero_vector_has_finite_gradient(rng):
    x = randn(rng, 3, 4)
    x[1] = 0.0
    check_vs_torch(lambda t: fc.nn.functional.normalize(t, dim=1),
                   lambda t: torch.nn.functional.normalize(t, dim=1), [x], rng=rng,
                   name="normalize")


# ----------------------------------------------------------------------------- scans


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cummax_cummin(dim, rng):
    x = randn(rng, 4, 5)
    x[2, 3] = x[1, 3]  # ties: the later index, as torch
    x[3, 1] = x[3, 0]
    for name in ("cummax", "cummin"):
        check_vs_torch(lambda t, name=name: getattr(t, name)(dim).values,
                       lambda t, name=name: getattr(t, name)(dim).values, [x], rng=rng,
                       name=name)
        got = getattr(fc, name)(fc.tensor(x), dim).indices
        want = getattr(torch, name)(torch.tensor(x), dim).indices
        np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_cummax_nan_and_ints(rng):
    x = randn(rng, 6)
    x[2] = np.nan
    got, want = fc.cummax(fc.tensor(x), 0), torch.cummax(torch.tensor(x), 0)
    np.testing.assert_array_equal(got.values.numpy(), want.values.numpy())
    np.testing.assert_array_equal(got.indices.numpy(), want.indices.numpy())
    ints = rng.integers(-5, 5, 7)
    got, want = fc.cummin(fc.tensor(ints), 0), torch.cummin(torch.tensor(ints), 0)
    np.testing.assert_array_equal(got.values.numpy(), want.values.numpy())
    np.testing.assert_array_equal(got.indices.numpy(), want.indices.numpy())


@pytest.mark.parametrize("dim", [0, -1])
def test_logcumsumexp(dim, rng):
    x = randn(rng, 5, 6) * 3
    x[0, 0] = -300.0  # far below the rest: no -inf, no overflow
    x[1, 1] = 200.0
    check_vs_torch(lambda t: t.logcumsumexp(dim), lambda t: t.logcumsumexp(dim), [x], rng=rng,
                   name="logcumsumexp")


@pytest.mark.parametrize("n, dim", [(1, -1), (2, 0), (3, 1), (0, 1)])
def test_diff(n, dim, rng):
    x = randn(rng, 4, 5)
    check_vs_torch(lambda t: fc.diff(t, n, dim), lambda t: torch.diff(t, n, dim), [x], rng=rng,
                   name=f"diff {n} {dim}")
    pre, app = randn(rng, 4, 5), randn(rng, 4, 5)
    check_vs_torch(lambda t, p, a: t.diff(n, dim, prepend=p, append=a),
                   lambda t, p, a: t.diff(n, dim, prepend=p, append=a), [x, pre, app], rng=rng,
                   name="diff with prepend/append", grad_idx=[0] if n == 0 else None)
    b = rng.integers(0, 2, (3, 4)).astype(bool)
    np.testing.assert_array_equal(fc.diff(fc.tensor(b)).numpy(), torch.diff(torch.tensor(b)))


@pytest.mark.parametrize("right", [False, True])
def test_searchsorted_bucketize(right, rng):
    seq = np.sort(rng.integers(0, 10, 8)).astype(np.float32)  # repeats: left/right differ
    values = rng.integers(-1, 11, (3, 4)).astype(np.float32)
    got = fc.searchsorted(fc.tensor(seq), fc.tensor(values), right=right)
    want = torch.searchsorted(torch.tensor(seq), torch.tensor(values), right=right)
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    assert got.dtype == fc.int64
    got = fc.bucketize(fc.tensor(values), fc.tensor(seq), right=right, out_int32=True)
    want = torch.bucketize(torch.tensor(values), torch.tensor(seq), right=right, out_int32=True)
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    assert got.dtype == fc.int32
    rows = np.sort(randn(rng, 3, 6), -1)
    vals = randn(rng, 3, 2)
    side = "right" if right else "left"
    np.testing.assert_array_equal(
        fc.searchsorted(fc.tensor(rows), fc.tensor(vals), side=side).numpy(),
        torch.searchsorted(torch.tensor(rows), torch.tensor(vals), side=side).numpy())
    with pytest.raises(RuntimeError, match="first N-1 dimensions"):
        fc.searchsorted(fc.tensor(rows), fc.tensor(randn(rng, 2, 2)))


# ----------------------------------------------------------------------------- statistics


def test_nansum_nanmean(rng):
    x = randn(rng, 4, 5)
    x[1, 2] = x[3, 0] = np.nan
    for dim in (None, 0, 1):
        check_vs_torch(lambda t, dim=dim: fc.nansum(t, dim),
                       lambda t, dim=dim: torch.nansum(t, dim), [x], rng=rng,
                       name=f"nansum {dim}")
        check_vs_torch(lambda t, dim=dim: t.nanmean(dim), lambda t, dim=dim: t.nanmean(dim),
                       [x], rng=rng, name=f"nanmean {dim}")


@pytest.mark.parametrize("correction", [1, 0, 2])
def test_cov_corrcoef(correction, rng):
    x = randn(rng, 3, 7)
    check_vs_torch(lambda t: fc.cov(t, correction=correction),
                   lambda t: torch.cov(t, correction=correction), [x], rng=rng, name="cov")
    check_vs_torch(lambda t: t.corrcoef(), lambda t: t.corrcoef(), [x], rng=rng, name="corrcoef")
    fw = rng.integers(1, 4, 7)
    aw = rng.uniform(0.5, 2.0, 7).astype(np.float32)
    check_vs_torch(lambda t: fc.cov(t, correction=correction, fweights=fc.tensor(fw),
                                    aweights=fc.tensor(aw)),
                   lambda t: torch.cov(t, correction=correction, fweights=torch.tensor(fw),
                                       aweights=torch.tensor(aw, dtype=torch.float64)),
                   [x], rng=rng, name="weighted cov")
    check_vs_torch(lambda t: fc.cov(t), lambda t: torch.cov(t), [randn(rng, 6)], rng=rng,
                   name="cov of one variable")


def test_histc_histogram(rng):
    x = randn(rng, 200)
    for args in [(10, 0, 0), (7, -1, 1.5)]:
        np.testing.assert_array_equal(fc.histc(fc.tensor(x), *args).numpy(),
                                      torch.histc(torch.tensor(x), *args).numpy())
    w = rng.uniform(0, 2, 200).astype(np.float32)
    got = fc.histogram(fc.tensor(x), 6, range=(-2.0, 2.0), weight=fc.tensor(w), density=True)
    want = torch.histogram(torch.tensor(x), 6, range=(-2.0, 2.0), weight=torch.tensor(w),
                           density=True)
    assert_close(got.hist, want.hist)
    assert_close(got.bin_edges, want.bin_edges)
    edges = np.array([-3.0, -1.0, 0.0, 0.5, 3.0], np.float32)
    got, want = fc.histogram(fc.tensor(x), fc.tensor(edges)), \
        torch.histogram(torch.tensor(x), torch.tensor(edges))
    assert_close(got.hist, want.hist)
    with pytest.raises(RuntimeError, match="bins must be > 0"):
        fc.histc(fc.tensor(x), 0)


# ----------------------------------------------------------------------------- rearranging


def test_tile_rot90_flips(rng):
    x = randn(rng, 2, 3, 4)
    for dims in [(2,), (2, 1, 3), (1, 2, 1, 2)]:
        check_vs_torch(lambda t, dims=dims: t.tile(dims), lambda t, dims=dims: t.tile(dims), [x],
                       rng=rng, name=f"tile {dims}")
    for k in (-1, 0, 1, 2, 3, 5):
        for dims in [(0, 1), (2, 0), (-1, -2)]:
            check_vs_torch(lambda t, k=k, dims=dims: fc.rot90(t, k, dims),
                           lambda t, k=k, dims=dims: torch.rot90(t, k, dims), [x], rng=rng,
                           name=f"rot90 {k} {dims}")
    check_vs_torch(lambda t: t.flipud(), lambda t: t.flipud(), [x], rng=rng, name="flipud")
    check_vs_torch(lambda t: fc.fliplr(t), lambda t: torch.fliplr(t), [x], rng=rng, name="fliplr")


@pytest.mark.parametrize("ios", [3, 4, 7, [1, 4], [-2, 9], [3, 1]])
def test_tensor_split(ios, rng):
    x = randn(rng, 5, 6)
    for dim in (0, 1):
        check_vs_torch(lambda t, dim=dim: fc.cat([p * (i + 1) for i, p in
                                                  enumerate(t.tensor_split(ios, dim))], dim),
                       lambda t, dim=dim: torch.cat([p * (i + 1) for i, p in
                                                     enumerate(t.tensor_split(ios, dim))], dim),
                       [x], rng=rng, name=f"tensor_split {ios} {dim}")
        got = [p.shape for p in fc.tensor_split(fc.tensor(x), ios, dim)]
        want = [tuple(p.shape) for p in torch.tensor_split(torch.tensor(x), ios, dim)]
        assert [tuple(s) for s in got] == want


def test_hsplit_vsplit_dsplit_stacks(rng):
    x = randn(rng, 4, 6, 2)
    for name, arg in [("hsplit", 3), ("vsplit", [1, 3]), ("dsplit", 2)]:
        got = getattr(fc, name)(fc.tensor(x), arg)
        want = getattr(torch, name)(torch.tensor(x), arg)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_close(g, w)
    with pytest.raises(RuntimeError, match="not divisible"):
        fc.hsplit(fc.tensor(x), 4)
    a, b = randn(rng, 3), randn(rng, 3)
    for name in ("dstack", "column_stack", "row_stack"):
        check_vs_torch(lambda s, t, name=name: getattr(fc, name)([s, t]),
                       lambda s, t, name=name: getattr(torch, name)([s, t]), [a, b], rng=rng,
                       name=name)
    for n in (1, 2, 3):
        for shape in [(), (3,), (2, 3), (2, 3, 4)]:
            got = getattr(fc, f"atleast_{n}d")(fc.tensor(randn(rng, *shape)))
            want = getattr(torch, f"atleast_{n}d")(torch.zeros(shape))
            assert tuple(got.shape) == tuple(want.shape), (n, shape)


def test_select_take_put(rng):
    x = randn(rng, 3, 4)
    check_vs_torch(lambda t: t.select(1, -1), lambda t: t.select(1, -1), [x], rng=rng,
                   name="select")
    idx = np.array([[0, -1], [5, 5]])
    check_vs_torch(lambda t: fc.take(t, fc.tensor(idx)), lambda t: torch.take(t, torch.tensor(idx)),
                   [x], rng=rng, name="take")
    src = randn(rng, 2, 2)
    for acc in (False, True):
        put_idx = np.array([[1, 7], [-2, 7]]) if acc else np.array([[1, 7], [-2, 3]])
        check_vs_torch(lambda t, s, acc=acc, i=put_idx: t.put(fc.tensor(i), s, acc),
                       lambda t, s, acc=acc, i=put_idx: t.put(torch.tensor(i), s, acc),
                       [x, src], rng=rng, name=f"put accumulate={acc}")
    with pytest.raises(IndexError, match="out of range"):
        fc.take(fc.tensor(x), fc.tensor(np.array([12])))


def test_index_put_accumulate_builds_a_confusion_matrix(rng):
    targets, preds = rng.integers(0, 4, 50), rng.integers(0, 4, 50)
    cm = fc.zeros(4, 4, dtype=fc.int64)
    cm.index_put_((fc.tensor(targets), fc.tensor(preds)), fc.tensor(1), accumulate=True)
    want = torch.zeros(4, 4, dtype=torch.int64).index_put_(
        (torch.tensor(targets), torch.tensor(preds)), torch.tensor(1), accumulate=True)
    np.testing.assert_array_equal(cm.numpy(), want.numpy())
    assert int(cm.sum()) == 50


@pytest.mark.parametrize("accumulate", [False, True])
def test_index_put_gradients(accumulate, rng):
    x, v = randn(rng, 4, 3, 2), randn(rng, 3, 2)
    rows = np.array([0, 2, 0]) if accumulate else np.array([0, 2, 3])
    check_vs_torch(lambda t, s: t.index_put((fc.tensor(rows),), s, accumulate),
                   lambda t, s: t.index_put((torch.tensor(rows),), s, accumulate), [x, v],
                   rng=rng, name="index_put rows")
    cols = np.array([1, 0, 1])
    v2 = randn(rng, 3, 2)
    check_vs_torch(lambda t, s: t.index_put((fc.tensor(rows), fc.tensor(cols)), s, accumulate),
                   lambda t, s: t.index_put((torch.tensor(rows), torch.tensor(cols)), s,
                                            accumulate), [x, v2], rng=rng,
                   name="index_put rows and cols")
    with pytest.raises(IndexError, match="out of bounds"):
        fc.tensor(x).index_put((fc.tensor(np.array([4])),), fc.tensor(v[:1]), True)


@pytest.mark.parametrize("reduce", ["sum", "prod", "mean", "amax", "amin"])
@pytest.mark.parametrize("include_self", [True, False])
def test_scatter_reduce(reduce, include_self, rng):
    a, src = distinct(rng, 4, 3), randn(rng, 5, 3)
    idx = rng.integers(0, 4, (5, 3))
    src[1, 1] = 0.0  # a zero entry: the prod gradient must not divide by it
    src[2, 0] = src[0, 0]  # a tie for amax/amin when both land together
    idx[2, 0] = idx[0, 0]
    check_vs_torch(lambda t, s: t.scatter_reduce(0, fc.tensor(idx), s, reduce,
                                                 include_self=include_self),
                   lambda t, s: t.scatter_reduce(0, torch.tensor(idx), s, reduce,
                                                 include_self=include_self),
                   [a, src], rng=rng, name=f"scatter_reduce {reduce} {include_self}")
    with pytest.raises(RuntimeError, match="reduce argument"):
        fc.tensor(a).scatter_reduce(0, fc.tensor(idx), fc.tensor(src), "max")


# ----------------------------------------------------------------------------- habits


def test_tensor_type_by_name_and_constructor(rng):
    x = fc.tensor(randn(rng, 3))
    assert x.type() == "fastconv.FloatTensor"
    assert x.type(fc.LongTensor).dtype == fc.int64
    assert x.type("torch.IntTensor").dtype == fc.int32
    assert x.type(fc.int16).dtype == fc.int16
    with pytest.raises(ValueError, match="invalid type"):
        x.type("torch.FooTensor")


def test_manual_seed_returns_the_default_generator():
    g = fc.manual_seed(7)
    assert g is fc.default_generator and g.initial_seed() == 7
    a = fc.randn(4)
    fc.default_generator.manual_seed(7)
    np.testing.assert_array_equal(a.numpy(), fc.randn(4, generator=fc.default_generator).numpy())
    assert isinstance(fc.seed(), int)


# ----------------------------------------------------------------------------- fuzz


def _outcome(fn):
    try:
        return "ok", fn()
    except (RuntimeError, IndexError, ValueError, TypeError) as e:
        return "error", type(e).__name__


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=st.lists(st.integers(0, 4), min_size=1, max_size=3),
       op=st.sampled_from(["tile", "rot90", "tensor_split", "diagonal", "diff", "cummax",
                           "take", "select"]),
       a=st.integers(-4, 4), b=st.integers(-3, 3))
def test_shape_helpers_match_torch_or_raise(shape, op, a, b):
    x = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape) + 0.5
    calls = {
        "tile": lambda m, t: t.tile((abs(a), abs(b))),
        "rot90": lambda m, t: m.rot90(t, a, (0, b % max(t.ndim, 1))),
        "tensor_split": lambda m, t: m.cat(t.tensor_split(abs(a) + 1 if b > 0 else [abs(a)], 0)),
        "diagonal": lambda m, t: m.diagonal(t, a, 0, -1),
        "diff": lambda m, t: m.diff(t, abs(a) % 3, b % t.ndim),
        "cummax": lambda m, t: m.cummax(t, b % t.ndim)[0],
        "take": lambda m, t: m.take(t, m.tensor(np.array([a, b]))),
        "select": lambda m, t: t.select(b % t.ndim, a),
    }
    want = _outcome(lambda: calls[op](torch, torch.tensor(x)).numpy())
    got = _outcome(lambda: calls[op](fc, fc.tensor(x)).numpy())
    if want[0] == "ok":
        assert got[0] == "ok", f"{op}: torch gives {want[1].shape}, fastconv raised {got[1]}"
        np.testing.assert_array_equal(got[1], want[1])
    else:
        assert got[0] == "error", f"{op}: torch raises {want[1]}, fastconv returned {got[1]}"


EDGE_INPUTS = {"empty": np.zeros((0,), np.float32), "empty rows": np.zeros((2, 0), np.float32),
               "0-d": np.float32(1.5), "int64": np.arange(6, dtype=np.int64).reshape(2, 3),
               "matrix": np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4),
               "3-d": np.linspace(-1, 3, 24, dtype=np.float32).reshape(2, 3, 4)}
EDGE_OPS = {
    "diagonal": lambda m, x: m.diagonal(x), "diag": lambda m, x: m.diag(x),
    "trace": lambda m, x: m.trace(x), "kron": lambda m, x: m.kron(x, x),
    "cdist": lambda m, x: m.cdist(x, x), "tile": lambda m, x: m.tile(x, (2,)),
    "rot90": lambda m, x: m.rot90(x), "cummax": lambda m, x: m.cummax(x, 0)[0],
    "logcumsumexp": lambda m, x: m.logcumsumexp(x, 0), "diff": lambda m, x: m.diff(x),
    "nansum": lambda m, x: m.nansum(x), "nanmean": lambda m, x: m.nanmean(x),
    "cov": lambda m, x: m.cov(x), "corrcoef": lambda m, x: m.corrcoef(x),
    "histc": lambda m, x: m.histc(x, 4), "tensor_split": lambda m, x: m.cat(m.tensor_split(x, 2)),
    "take": lambda m, x: m.take(x, m.tensor(np.array([0]))), "flipud": lambda m, x: m.flipud(x),
    "atleast_3d": lambda m, x: m.atleast_3d(x), "renorm": lambda m, x: m.renorm(x, 2, 0, 1.0),
    "dist": lambda m, x: m.dist(x, x), "block_diag": lambda m, x: m.block_diag(x, x),
    "tensordot": lambda m, x: m.tensordot(x, x, 1), "norm -inf": lambda m, x: x.norm(-np.inf),
    "searchsorted": lambda m, x: m.searchsorted(x, x), "diag_embed": lambda m, x: m.diag_embed(x),
}


@pytest.mark.parametrize("op", EDGE_OPS)
def test_edge_inputs_match_torch_or_raise(op):
    """Empty, 0-d and integer inputs: the same values as torch, or an error where torch
    raises one (never a crash or a silent wrong shape)."""
    for kind, a in EDGE_INPUTS.items():
        want = _outcome(lambda: np.asarray(EDGE_OPS[op](torch, torch.tensor(a)).numpy(),
                                           np.float64))
        got = _outcome(lambda: np.asarray(EDGE_OPS[op](fc, fc.tensor(a)).numpy(), np.float64))
        assert got[0] == want[0], f"{op} on {kind}: fastconv {got}, torch {want}"
        if want[0] == "ok":
            assert got[1].shape == want[1].shape, f"{op} on {kind}"
            np.testing.assert_allclose(got[1], want[1], rtol=1e-4, atol=1e-5, equal_nan=True)
