"""The PyTorch ops a CNN script reaches for beyond the layers: indexing along a dim (gather,
scatter, index_select, masked_fill, embedding), scans and products (cumsum, cumprod, prod,
logsumexp), einsum, rounding and elementwise math, shape helpers, the extra activations and
losses, unfold/fold and pixel_shuffle.

Every differentiable op is checked forward and backward against torch (float64 autograd) on
fresh random inputs, with negative dims, keepdim and size-1 / empty dims where torch allows
them; bad arguments must raise torch's exception type with a message naming the problem.
A hypothesis test throws malformed arguments at the indexing ops: each call either matches
torch or raises where torch raises.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import assert_close, check_vs_torch, distinct, randn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastconv as fc
import fastconv.functional as F
from fastconv import nn

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _positive(rng, *shape):
    return (np.abs(randn(rng, *shape)) + 0.5).astype(np.float32)


def _index(rng, high, shape):
    return rng.integers(0, high, size=shape)


# ----------------------------------------------------------------------------- indexing along a dim


@pytest.mark.parametrize("dim", [0, 1, -1, -2])
def test_gather_forward_backward(dim, rng):
    x = randn(rng, 3, 5)
    n = x.shape[dim]
    shape = [2, 4]
    shape[dim] = 6  # larger than x along dim: allowed (and rows repeat)
    idx = _index(rng, n, shape)
    check_vs_torch(lambda t: t.gather(dim, fc.tensor(idx)),
                   lambda t: t.gather(dim, torch.tensor(idx)), [x], rng=rng, name="gather")
    check_vs_torch(lambda t: fc.gather(t, dim, fc.tensor(idx)),
                   lambda t: torch.gather(t, dim, torch.tensor(idx)), [x], rng=rng,
                   name="fc.gather")


def test_gather_edge_shapes(rng):
    x = randn(rng, 4, 1, 3)
    idx = _index(rng, 3, (2, 1, 5))
    check_vs_torch(lambda t: t.gather(-1, fc.tensor(idx)),
                   lambda t: t.gather(-1, torch.tensor(idx)), [x], rng=rng, name="gather 3d")
    empty = fc.zeros(0, 3).gather(0, fc.zeros(0, 3, dtype=fc.long))
    assert empty.shape == (0, 3)


@pytest.mark.parametrize("dim", [1, -2])
def test_scatter_and_scatter_add(dim, rng):
    x = randn(rng, 4, 5)
    d = dim % 2
    # distinct targets along dim for scatter (torch leaves duplicates unspecified)
    idx = np.stack([rng.permutation(x.shape[d])[:3] for _ in range(x.shape[1 - d])], 1 - d)
    src = randn(rng, *idx.shape)
    check_vs_torch(lambda a, s: a.scatter(dim, fc.tensor(idx), s),
                   lambda a, s: a.scatter(dim, torch.tensor(idx), s), [x, src], rng=rng,
                   name="scatter")
    check_vs_torch(lambda a: a.scatter(dim, fc.tensor(idx), 0.5),
                   lambda a: a.scatter(dim, torch.tensor(idx), 0.5), [x], rng=rng,
                   name="scatter(value)")
    dup = _index(rng, x.shape[d], idx.shape)  # repeats add up
    check_vs_torch(lambda a, s: fc.scatter_add(a, dim, fc.tensor(dup), s),
                   lambda a, s: torch.scatter_add(a, dim, torch.tensor(dup), s), [x, src],
                   rng=rng, name="scatter_add")


def test_scatter_in_place_forms(rng):
    idx = _index(rng, 4, (3, 4))
    src = randn(rng, 3, 4)
    got = fc.zeros(3, 4).scatter_add_(1, fc.tensor(idx), fc.tensor(src))
    want = torch.zeros(3, 4).scatter_add_(1, torch.tensor(idx), torch.tensor(src))
    assert_close(got, want)
    onehot = fc.zeros(3, 5).scatter_(1, fc.tensor(idx[:, :1]), 1.0)
    assert_close(onehot, torch.zeros(3, 5).scatter_(1, torch.tensor(idx[:, :1]), 1.0))
    w = fc.tensor(randn(rng, 3, 4), requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        w.scatter_(1, fc.tensor(idx), 0.0)


@pytest.mark.parametrize("dim", [0, -1])
def test_index_select(dim, rng):
    x = randn(rng, 4, 6)
    idx = _index(rng, x.shape[dim], 7)  # repeats add their gradients
    check_vs_torch(lambda t: t.index_select(dim, fc.tensor(idx)),
                   lambda t: t.index_select(dim, torch.tensor(idx)), [x], rng=rng,
                   name="index_select")
    assert fc.tensor(x).index_select(dim, fc.tensor(idx[:0])).shape == \
        torch.tensor(x).index_select(dim, torch.tensor(idx[:0])).shape


def test_masked_fill_and_select(rng):
    x = randn(rng, 3, 4)
    mask = rng.random((1, 4)) > 0.5
    check_vs_torch(lambda t: t.masked_fill(fc.tensor(mask), -2.0),
                   lambda t: t.masked_fill(torch.tensor(mask), -2.0), [x], rng=rng,
                   name="masked_fill")
    check_vs_torch(lambda t, v: t.masked_fill(fc.tensor(mask), v.sum()),
                   lambda t, v: t.masked_fill(torch.tensor(mask), v.sum()),
                   [x, randn(rng, 2)], rng=rng, name="masked_fill(tensor value)")
    full = rng.random((3, 4)) > 0.5
    check_vs_torch(lambda t: t.masked_select(fc.tensor(full)),
                   lambda t: t.masked_select(torch.tensor(full)), [x], rng=rng,
                   name="masked_select")
    y = fc.tensor(x.copy())
    y.masked_fill_(fc.tensor(full), 0.25)
    assert_close(y, torch.tensor(x).masked_fill_(torch.tensor(full), 0.25))
    ints = fc.tensor(_index(rng, 9, (3, 4))).masked_fill(fc.tensor(full), 7)
    assert ints.dtype == fc.int64
    with pytest.raises(RuntimeError, match="boolean masks"):
        fc.tensor(x).masked_fill(fc.tensor(full.astype(np.int64)), 1.0)
    with pytest.raises(RuntimeError, match="0-dimensional value tensor"):
        fc.tensor(x).masked_fill(fc.tensor(full), fc.ones(2))


INDEX_ERRORS = [
    ("gather out of range", lambda m, x: x.gather(1, m.tensor([[0, 4]])), RuntimeError,
     "out of bounds"),
    ("gather negative", lambda m, x: x.gather(1, m.tensor([[0, -1]])), RuntimeError,
     "out of bounds"),
    ("gather ndim", lambda m, x: x.gather(1, m.tensor([0, 1])), RuntimeError, "same number"),
    ("gather too big", lambda m, x: x.gather(0, m.tensor([[0, 1, 1, 1, 1]])), RuntimeError,
     "no larger"),
    ("gather dim", lambda m, x: x.gather(2, m.tensor([[0]])), IndexError, "out of range"),
    ("gather float index", lambda m, x: x.gather(1, m.tensor([[0.0]])), RuntimeError, "int"),
    ("scatter out of range", lambda m, x: x.scatter(1, m.tensor([[0, 5]]), m.ones(1, 2)),
     RuntimeError, "out of bounds"),
    ("scatter src too small", lambda m, x: x.scatter(1, m.tensor([[0, 1]]), m.ones(1, 1)),
     RuntimeError, "no larger"),
    ("scatter_add out of range", lambda m, x: x.scatter_add(0, m.tensor([[3]]), m.ones(1, 1)),
     RuntimeError, "out of bounds"),
    ("index_select out of range", lambda m, x: x.index_select(1, m.tensor([0, 4])),
     RuntimeError, ""),
    ("index_select 2-D index", lambda m, x: x.index_select(1, m.tensor([[0, 1]])), IndexError,
     "vector"),
    ("narrow past the end", lambda m, x: x.narrow(1, 3, 2), RuntimeError, "exceeds"),
    ("roll misaligned", lambda m, x: x.roll((1, 2), (0,)), RuntimeError, "align"),
    ("tril of a vector", lambda m, x: x[0].tril(), RuntimeError, "at least 2 dimensions"),
    ("outer of a matrix", lambda m, x: m.outer(x, x[0]), RuntimeError, "1-D"),
    ("cumsum dim", lambda m, x: x.cumsum(2), IndexError, "out of range"),
    ("bincount negative", lambda m, x: m.bincount(m.tensor([1, -1])), RuntimeError,
     "non-negative"),
    ("bincount 2-D", lambda m, x: m.bincount(m.tensor([[1]])), RuntimeError, "1-d"),
    ("einsum operand count", lambda m, x: m.einsum("ij,jk->ik", x), RuntimeError, "operands"),
    ("einsum sizes", lambda m, x: m.einsum("ij,ij->i", x, x.t()), RuntimeError, "subscript"),
    ("embedding out of range", lambda m, x: m.nn.functional.embedding(m.tensor([4]), x),
     IndexError, "index out of range"),
    ("pixel_shuffle channels", lambda m, x: m.nn.functional.pixel_shuffle(x[None], 2),
     RuntimeError, "divisible"),
    ("div rounding mode", lambda m, x: x.div(2, rounding_mode="round"), RuntimeError,
     "rounding_mode"),
]


@pytest.mark.parametrize("name, call, exc, match", INDEX_ERRORS, ids=[e[0] for e in INDEX_ERRORS])
def test_bad_arguments_raise_as_torch(name, call, exc, match, rng):
    x = randn(rng, 3, 4)
    with pytest.raises(exc):
        call(torch, torch.tensor(x))
    with pytest.raises(exc, match=match):
        call(fc, fc.tensor(x))


def test_embedding_layer_and_function(rng):
    w = randn(rng, 6, 3)
    idx = _index(rng, 6, (2, 5))
    idx[0, 0] = 2
    check_vs_torch(lambda t: F.embedding(fc.tensor(idx), t),
                   lambda t: TF.embedding(torch.tensor(idx), t), [w], rng=rng, name="embedding")
    check_vs_torch(lambda t: F.embedding(fc.tensor(idx), t, padding_idx=2),
                   lambda t: TF.embedding(torch.tensor(idx), t, padding_idx=2), [w], rng=rng,
                   name="embedding(padding_idx)")
    layer = nn.Embedding(10, 4, padding_idx=-1)
    assert layer.padding_idx == 9 and float(layer.weight[9].abs().sum()) == 0.0
    assert layer(fc.tensor(idx)).shape == (2, 5, 4)
    frozen = nn.Embedding.from_pretrained(fc.tensor(w))
    assert not frozen.weight.requires_grad
    assert_close(frozen(fc.tensor(idx)), w[idx])


# ----------------------------------------------------------------------------- scans and reductions


@pytest.mark.parametrize("dim", [0, -1])
def test_cumsum_cumprod(dim, rng):
    x = randn(rng, 3, 5)
    check_vs_torch(lambda t: t.cumsum(dim), lambda t: t.cumsum(dim), [x], rng=rng,
                   name="cumsum")
    check_vs_torch(lambda t: fc.cumprod(t, dim), lambda t: torch.cumprod(t, dim), [x], rng=rng,
                   name="cumprod")
    x[1, 2] = 0.0  # the exact gradient through a zero
    check_vs_torch(lambda t: t.cumprod(dim), lambda t: t.cumprod(dim), [x], rng=rng,
                   name="cumprod with a zero")
    ints = fc.tensor(_index(rng, 5, (3, 4)).astype(np.int32))
    assert ints.cumsum(0).dtype == fc.int64 and fc.tensor([True, False]).cumsum(0).dtype == fc.int64


@pytest.mark.parametrize("dim, keepdim", [(None, False), (1, False), (-1, True), (0, True)])
def test_prod(dim, keepdim, rng):
    x = randn(rng, 3, 4) * 0.5 + np.sign(randn(rng, 3, 4))
    args = () if dim is None else (dim, keepdim)
    check_vs_torch(lambda t: t.prod(*args), lambda t: t.prod(*args), [x], rng=rng, name="prod")
    x[0, 1] = 0.0
    check_vs_torch(lambda t: fc.prod(t, *args), lambda t: torch.prod(t, *args), [x], rng=rng,
                   name="prod with a zero")
    assert fc.tensor([2, 3]).prod().dtype == fc.int64


@pytest.mark.parametrize("dim, keepdim", [(1, False), (-1, True), ((0, 1), False), (0, True)])
def test_logsumexp_and_amax(dim, keepdim, rng):
    x = randn(rng, 3, 4) * 10
    check_vs_torch(lambda t: t.logsumexp(dim, keepdim), lambda t: t.logsumexp(dim, keepdim),
                   [x], rng=rng, name="logsumexp")
    x = distinct(rng, 3, 4)
    check_vs_torch(lambda t: t.amax(dim, keepdim), lambda t: t.amax(dim, keepdim), [x], rng=rng,
                   name="amax")
    check_vs_torch(lambda t: fc.amin(t, dim, keepdim), lambda t: torch.amin(t, dim, keepdim),
                   [x], rng=rng, name="amin")
    inf = fc.tensor([[-np.inf, -np.inf], [0.0, 1.0]]).logsumexp(1)
    assert np.isneginf(inf.numpy()[0]) and abs(inf.numpy()[1] - np.log(1 + np.e)) < 1e-6


def test_amax_ties_share_the_gradient():
    x = fc.tensor([[1.0, 3.0, 3.0]], requires_grad=True)
    t = torch.tensor([[1.0, 3.0, 3.0]], requires_grad=True)
    x.amax(1).sum().backward()
    t.amax(1).sum().backward()
    assert_close(x.grad, t.grad)


def test_median_std_mean_count_nonzero(rng):
    x = distinct(rng, 3, 5)
    for dim, keepdim in [(1, False), (-2, True)]:
        got, want = fc.tensor(x).median(dim, keepdim), torch.tensor(x).median(dim, keepdim)
        assert_close(got.values, want.values)
        np.testing.assert_array_equal(got.indices.numpy(), want.indices.numpy())
    check_vs_torch(lambda t: t.median(), lambda t: t.median(), [x], rng=rng, name="median")
    for fc_fn, t_fn in [(fc.std_mean, torch.std_mean), (fc.var_mean, torch.var_mean)]:
        for got, want in zip(fc_fn(fc.tensor(x), 1), t_fn(torch.tensor(x), 1)):
            assert_close(got, want)
    mask = rng.random((3, 5)) > 0.5
    assert int(fc.count_nonzero(fc.tensor(mask))) == int(torch.count_nonzero(torch.tensor(mask)))


# ----------------------------------------------------------------------------- einsum


EINSUMS = [
    ("ij,kj->ik", [(3, 4), (5, 4)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("ij->j", [(3, 4)]),
    ("ij", [(3, 4)]),
    ("ij,jk", [(3, 4), (4, 2)]),
    ("ii->i", [(4, 4)]),
    ("ii", [(3, 3)]),
    ("...j,j->...", [(2, 3, 4), (4,)]),
    ("bchw,bchw->bc", [(2, 3, 4, 4), (2, 3, 4, 4)]),
    ("i,j->ij", [(3,), (5,)]),
    ("ij,ij->", [(1, 4), (3, 4)]),
]


@pytest.mark.parametrize("equation, shapes", EINSUMS, ids=[e[0] for e in EINSUMS])
def test_einsum(equation, shapes, rng):
    inputs = [randn(rng, *s) for s in shapes]
    check_vs_torch(lambda *ts: fc.einsum(equation, *ts), lambda *ts: torch.einsum(equation, *ts),
                   inputs, rng=rng, name=f"einsum {equation}")
    got = fc.einsum(equation, [fc.tensor(a) for a in inputs])  # operands as one list
    assert_close(got, torch.einsum(equation, [torch.tensor(a) for a in inputs]))


# ----------------------------------------------------------------------------- elementwise math

UNARY = [
    ("expm1", False), ("log1p", True), ("log2", True), ("log10", True), ("erf", False),
    ("rsqrt", True), ("frac", False), ("square", False),
]


@pytest.mark.parametrize("name, positive", UNARY, ids=[u[0] for u in UNARY])
def test_unary_math(name, positive, rng):
    x = _positive(rng, 3, 4) if positive else randn(rng, 3, 4)
    check_vs_torch(lambda t: getattr(t, name)(), lambda t: getattr(t, name)(), [x], rng=rng,
                   name=name)
    check_vs_torch(lambda t: getattr(fc, name)(t), lambda t: getattr(torch, name)(t), [x],
                   rng=rng, name=f"fc.{name}")
    y = fc.tensor(x.copy())
    getattr(y, name + "_")()
    assert_close(y, getattr(torch.tensor(x), name)())


@pytest.mark.parametrize("name", ["round", "floor", "ceil", "trunc", "sign"])
def test_rounding_has_zero_gradient(name, rng):
    x = randn(rng, 3, 4) * 3
    check_vs_torch(lambda t: getattr(t, name)() * t, lambda t: getattr(t, name)() * t, [x],
                   rng=rng, name=name)
    ints = _index(rng, 9, (3,)) - 4
    got, want = getattr(fc.tensor(ints), name)(), getattr(torch.tensor(ints), name)()
    assert got.dtype == fc.int64
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    assert_close(fc.tensor(x).round(decimals=1), torch.tensor(x).round(decimals=1))


def test_pow_with_tensor_exponent_and_scalar_base(rng):
    a, b = _positive(rng, 3, 4), randn(rng, 4)
    check_vs_torch(lambda x, y: x ** y, lambda x, y: x ** y, [a, b], rng=rng, name="a ** b")
    check_vs_torch(lambda x: fc.pow(2.0, x), lambda x: torch.pow(2.0, x), [b], rng=rng,
                   name="2 ** x")
    check_vs_torch(lambda x: 3 ** x, lambda x: 3 ** x, [b], rng=rng, name="3 ** x")


def test_division_modes_and_modulus(rng):
    a, b = randn(rng, 3, 4) * 5, _positive(rng, 4) * np.sign(randn(rng, 4))
    for mode in ("floor", "trunc"):
        check_vs_torch(lambda x, y, mode=mode: x.div(y, rounding_mode=mode) * x,
                       lambda x, y, mode=mode: x.div(y, rounding_mode=mode) * x, [a, b], rng=rng,
                       name=f"div {mode}")
    check_vs_torch(lambda x, y: x % y, lambda x, y: x % y, [a, b], rng=rng, name="remainder")
    check_vs_torch(lambda x, y: fc.fmod(x, y), lambda x, y: torch.fmod(x, y), [a, b], rng=rng,
                   name="fmod")
    i, j = torch.tensor([-7, 7, 3]), torch.tensor([2, -2, 3])
    fi, fj = fc.tensor(i.numpy()), fc.tensor(j.numpy())
    for got, want in [(fi // fj, i // j), (fi % fj, i % j), (fc.fmod(fi, fj), torch.fmod(i, j)),
                      (fi.div(fj, rounding_mode="trunc"), i.div(j, rounding_mode="trunc")),
                      (fi / 2, i / 2), (7 // fj, 7 // j)]:
        assert str(got.dtype) == str(want.dtype).replace("torch.", "")
        np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_comparisons_logical_and_checks(rng):
    a, b = randn(rng, 3, 4), randn(rng, 4)
    ta, tb = torch.tensor(a), torch.tensor(b)
    fa, fb = fc.tensor(a), fc.tensor(b)
    for name in ("eq", "ne", "gt", "ge", "lt", "le", "greater", "less_equal"):
        np.testing.assert_array_equal(getattr(fc, name)(fa, fb).numpy(),
                                      getattr(torch, name)(ta, tb).numpy())
    m1, m2 = fa > 0, fb > 0
    for name in ("logical_and", "logical_or", "logical_xor"):
        np.testing.assert_array_equal(getattr(fc, name)(m1, m2).numpy(),
                                      getattr(torch, name)(ta > 0, tb > 0).numpy())
    np.testing.assert_array_equal((m1 ^ m2).numpy(), ((ta > 0) ^ (tb > 0)).numpy())
    np.testing.assert_array_equal(fc.logical_not(m1).numpy(), (~(ta > 0)).numpy())
    special = np.array([1.0, np.nan, np.inf, -np.inf], np.float32)
    for name in ("isnan", "isinf", "isfinite"):
        np.testing.assert_array_equal(getattr(fc.tensor(special), name)().numpy(),
                                      getattr(torch.tensor(special), name)().numpy())
    assert fa.allclose(fa + 1e-9) and not fa.allclose(fa + 1) and fa.equal(fc.tensor(a))
    near = a + (rng.standard_normal(a.shape) * 1e-5).astype(np.float32)
    near.ravel()[:2] = np.nan
    a_nan = a.copy()
    a_nan.ravel()[0] = np.nan
    for kw in ({}, {"rtol": 1e-3, "atol": 1e-6}, {"equal_nan": True}):
        np.testing.assert_array_equal(fc.isclose(fc.tensor(a_nan), fc.tensor(near), **kw).numpy(),
                                      torch.isclose(torch.tensor(a_nan), torch.tensor(near),
                                                    **kw).numpy())
    assert fa.isclose(fa).numpy().all() and fc.isclose(fa, 0.5).dtype == fc.bool


def test_blending_helpers(rng):
    a, b, c = randn(rng, 3, 4), randn(rng, 3, 4), _positive(rng, 3, 4)
    check_vs_torch(lambda x, y, z: x.addcmul(y, z, value=0.5),
                   lambda x, y, z: x.addcmul(y, z, value=0.5), [a, b, c], rng=rng, name="addcmul")
    check_vs_torch(lambda x, y, z: fc.addcdiv(x, y, z, value=2),
                   lambda x, y, z: torch.addcdiv(x, y, z, value=2), [a, b, c], rng=rng,
                   name="addcdiv")
    check_vs_torch(lambda x, y: fc.lerp(x, y, 0.3), lambda x, y: torch.lerp(x, y, 0.3), [a, b],
                   rng=rng, name="lerp")
    check_vs_torch(lambda x, y: x.add(y, alpha=2), lambda x, y: x.add(y, alpha=2), [a, b],
                   rng=rng, name="add(alpha)")
    check_vs_torch(lambda x: x.clamp_min(0.1), lambda x: x.clamp_min(0.1), [a + 0.05], rng=rng,
                   name="clamp_min")


# ----------------------------------------------------------------------------- shape and products

SHAPE_OPS = [
    ("narrow", lambda m, t: t.narrow(-1, 1, 2)),
    ("narrow negative start", lambda m, t: m.narrow(t, 0, -2, 2)),
    ("roll", lambda m, t: t.roll(1, 1)),
    ("roll dims", lambda m, t: m.roll(t, shifts=(1, -3), dims=(0, -1))),
    ("roll flat", lambda m, t: m.roll(t, 5)),
    ("tril", lambda m, t: t.tril()),
    ("triu", lambda m, t: m.triu(t, 1)),
    ("tril -1", lambda m, t: m.tril(t, -1)),
    ("movedim", lambda m, t: t.movedim(0, -1)),
    ("swapaxes", lambda m, t: t.swapaxes(0, 1)),
    ("unflatten", lambda m, t: t.unflatten(1, (2, -1))),
    ("ravel", lambda m, t: m.ravel(t)),
    ("flip dims=", lambda m, t: m.flip(t, dims=(0, 1))),
    ("repeat_interleave", lambda m, t: t.repeat_interleave(2, dim=0)),
    ("repeat_interleave flat", lambda m, t: m.repeat_interleave(t, 2)),
    ("outer", lambda m, t: m.outer(t[0], t[1])),
    ("dot", lambda m, t: m.dot(t[0], t[1])),
    ("mv", lambda m, t: m.mv(t, t[0])),
    ("mm", lambda m, t: t.mm(t.t())),
    ("baddbmm", lambda m, t: m.baddbmm(t[None, :, :3], t[None], t.t()[None], beta=0.5, alpha=2)),
    ("addmm", lambda m, t: m.addmm(t[0, :3], t, t.t())),
    ("meshgrid xy", lambda m, t: m.meshgrid(t[0], t[1, :3], indexing="xy")[0] * t[1, :1]),
    ("hstack", lambda m, t: m.hstack([t, t])),
    ("vstack", lambda m, t: m.vstack([t, t[0]])),
]


@pytest.mark.parametrize("name, fn", SHAPE_OPS, ids=[s[0] for s in SHAPE_OPS])
def test_shape_and_product_ops(name, fn, rng):
    x = randn(rng, 3, 4)
    check_vs_torch(lambda t: fn(fc, t), lambda t: fn(torch, t), [x], rng=rng, name=name)


def test_nonzero_unique_bincount(rng):
    m = rng.random((3, 4)) > 0.5
    np.testing.assert_array_equal(fc.nonzero(fc.tensor(m)).numpy(),
                                  torch.nonzero(torch.tensor(m)).numpy())
    for got, want in zip(fc.tensor(m).nonzero(as_tuple=True),
                         torch.tensor(m).nonzero(as_tuple=True)):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    assert fc.nonzero(fc.tensor(3.0)).shape == torch.nonzero(torch.tensor(3.0)).shape
    ints = _index(rng, 6, (4, 5))
    got = fc.unique(fc.tensor(ints), return_inverse=True, return_counts=True)
    want = torch.unique(torch.tensor(ints), return_inverse=True, return_counts=True)
    for g, w in zip(got, want):
        assert str(g.dtype) == str(w.dtype).replace("torch.", "")
        np.testing.assert_array_equal(g.numpy(), w.numpy())
    rows = fc.unique(fc.tensor(ints[[0, 1, 0]]), dim=0)
    np.testing.assert_array_equal(rows.numpy(), torch.unique(torch.tensor(ints[[0, 1, 0]]),
                                                             dim=0).numpy())
    flat = ints.ravel()
    np.testing.assert_array_equal(fc.bincount(fc.tensor(flat), minlength=9).numpy(),
                                  torch.bincount(torch.tensor(flat), minlength=9).numpy())
    w = randn(rng, flat.size)
    assert_close(fc.tensor(flat).bincount(fc.tensor(w)),
                 torch.tensor(flat).bincount(torch.tensor(w)))


# ----------------------------------------------------------------------------- activations

ACTIVATIONS = [
    ("relu6", lambda f, t: f.relu6(t * 4), nn.ReLU6, torch.nn.ReLU6, ()),
    ("hardtanh", lambda f, t: f.hardtanh(t, -0.5, 0.7), nn.Hardtanh, torch.nn.Hardtanh,
     (-0.5, 0.7)),
    ("hardsigmoid", lambda f, t: f.hardsigmoid(t * 4), nn.Hardsigmoid, torch.nn.Hardsigmoid, ()),
    ("hardswish", lambda f, t: f.hardswish(t * 4), nn.Hardswish, torch.nn.Hardswish, ()),
    ("softplus", lambda f, t: f.softplus(t * 8, beta=2, threshold=5), nn.Softplus,
     torch.nn.Softplus, (2, 5)),
    ("mish", lambda f, t: f.mish(t), nn.Mish, torch.nn.Mish, ()),
    ("selu", lambda f, t: f.selu(t), nn.SELU, torch.nn.SELU, ()),
    ("celu", lambda f, t: f.celu(t, 0.5), nn.CELU, torch.nn.CELU, (0.5,)),
    ("logsigmoid", lambda f, t: f.logsigmoid(t * 10), nn.LogSigmoid, torch.nn.LogSigmoid, ()),
    ("threshold", lambda f, t: f.threshold(t, 0.1, -2.0), nn.Threshold, torch.nn.Threshold,
     (0.1, -2.0)),
    ("softmin", lambda f, t: f.softmin(t, -1), nn.Softmin, torch.nn.Softmin, (-1,)),
    ("glu", lambda f, t: f.glu(t, 1), nn.GLU, torch.nn.GLU, (1,)),
]


@pytest.mark.parametrize("name, fn, fc_layer, torch_layer, args", ACTIVATIONS,
                         ids=[a[0] for a in ACTIVATIONS])
def test_activations(name, fn, fc_layer, torch_layer, args, rng):
    x = randn(rng, 3, 4)
    for kink in (0.0, -0.75, 0.75, 0.1):  # keep the kinks off the sample points
        x[np.abs(x * 4 - kink * 4) < 0.02] += 0.05
    check_vs_torch(lambda t: fn(F, t), lambda t: fn(TF, t), [x], rng=rng, name=name)
    assert_close(fc_layer(*args)(fc.tensor(x)), torch_layer(*args)(torch.tensor(x)),
                 name=f"nn layer {name}")


@pytest.mark.parametrize("name", ["hardswish", "hardsigmoid", "hardtanh", "relu6", "relu"])
def test_activation_gradients_at_the_kinks(name, rng):
    """Exactly at a kink the derivative is a convention: torch's, on both sides."""
    x = np.float32([-3.0, 3.0, -1.0, 1.0, 0.0, 6.0])
    g = randn(rng, 6)
    grads = []
    for lib in (fc, torch):
        t = lib.tensor(x, requires_grad=True)
        getattr(lib.nn.functional, name)(t).backward(lib.tensor(g))
        grads.append(t.grad.numpy())
    assert_close(grads[0], grads[1], rtol=1e-6, atol=0, name=f"{name} gradient at its kinks")


def test_prelu(rng):
    x = randn(rng, 2, 3, 4, 4)
    for w in (np.float32([0.2]), np.float32([0.1, -0.3, 0.25])):
        check_vs_torch(lambda t, a: F.prelu(t, a), TF.prelu, [x, w], rng=rng, name="prelu")
    layer = nn.PReLU(3)
    assert layer.weight.shape == (3,) and float(layer.weight[0]) == 0.25
    with pytest.raises(RuntimeError, match="Mismatch of parameter numbers"):
        F.prelu(fc.tensor(x), fc.ones(2))


# ----------------------------------------------------------------------------- losses and distances


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_regression_losses(reduction, rng):
    a, b = randn(rng, 4, 5), randn(rng, 4, 5)
    a[np.abs(np.abs(a - b) - 0.5) < 0.02] += 0.05  # off the kinks at beta / delta = 0.5
    a[np.abs(np.abs(a - b) - 1.0) < 0.02] += 0.05
    for fc_fn, t_fn in [(lambda x, y: F.smooth_l1_loss(x, y, reduction=reduction, beta=0.5),
                         lambda x, y: TF.smooth_l1_loss(x, y, reduction=reduction, beta=0.5)),
                        (lambda x, y: F.smooth_l1_loss(x, y, reduction=reduction),
                         lambda x, y: TF.smooth_l1_loss(x, y, reduction=reduction)),
                        (lambda x, y: F.huber_loss(x, y, reduction=reduction, delta=0.5),
                         lambda x, y: TF.huber_loss(x, y, reduction=reduction, delta=0.5))]:
        check_vs_torch(fc_fn, t_fn, [a, b], rng=rng, name=f"regression loss {reduction}")
    assert_close(nn.SmoothL1Loss(beta=0.5)(fc.tensor(a), fc.tensor(b)),
                 torch.nn.SmoothL1Loss(beta=0.5)(torch.tensor(a), torch.tensor(b)))
    assert_close(nn.HuberLoss(delta=2.0)(fc.tensor(a), fc.tensor(b)),
                 torch.nn.HuberLoss(delta=2.0)(torch.tensor(a), torch.tensor(b)))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_cross_entropy(reduction, rng):
    p = rng.uniform(0.05, 0.95, (4, 3)).astype(np.float32)
    t = rng.uniform(0, 1, (4, 3)).astype(np.float32)
    w = _positive(rng, 3)
    check_vs_torch(lambda x, y: F.binary_cross_entropy(x, y, reduction=reduction),
                   lambda x, y: TF.binary_cross_entropy(x, y, reduction=reduction), [p, t],
                   rng=rng, name="bce")
    check_vs_torch(lambda x, y: nn.BCELoss(weight=fc.tensor(w), reduction=reduction)(x, y),
                   lambda x, y: torch.nn.BCELoss(weight=torch.tensor(w, dtype=torch.float64),
                                                 reduction=reduction)(x, y),
                   [p, t], rng=rng, grad_idx=[0], name="BCELoss(weight)")
    edge = F.binary_cross_entropy(fc.tensor([0.0, 1.0]), fc.tensor([1.0, 0.0]))
    assert_close(edge, TF.binary_cross_entropy(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 0.0])))
    with pytest.raises(RuntimeError, match="input should be between 0 and 1"):
        F.binary_cross_entropy(fc.tensor([1.5]), fc.tensor([1.0]))
    with pytest.raises(RuntimeError, match="target should be between 0 and 1"):
        F.binary_cross_entropy(fc.tensor([0.5]), fc.tensor([2.0]))


def test_binary_cross_entropy_gradient_at_certain_probabilities(rng):
    """p = 0 or 1 exactly: torch's gradient (p - t) / max(p (1 - p), 1e-12) is finite there
    (the clamped logs' own derivative is not); the target's gradient log(1-p) - log p is
    infinite, as torch's."""
    p = np.concatenate([[0.0, 1.0, 0.0, 1.0], rng.uniform(0.05, 0.95, 4)]).astype(np.float32)
    t = rng.uniform(0, 1, 8).astype(np.float32)
    g = randn(rng, 8)
    grads = []
    for lib, fn in ((fc, F.binary_cross_entropy), (torch, TF.binary_cross_entropy)):
        x, y = lib.tensor(p, requires_grad=True), lib.tensor(t, requires_grad=True)
        loss = fn(x, y, reduction="none")
        loss.backward(lib.tensor(g))
        grads.append((loss.detach().numpy(), x.grad.numpy(), y.grad.numpy()))
    for got, want, name in zip(grads[0], grads[1], ("loss", "input grad", "target grad")):
        edge = ~np.isfinite(want)  # the target's gradient at p = 0 or 1: +-inf on both sides
        np.testing.assert_array_equal(got[edge], want[edge], err_msg=name)
        assert_close(got[~edge], want[~edge], rtol=1e-5, atol=1e-5, name=name)


@pytest.mark.parametrize("reduction, log_target", [("batchmean", False), ("sum", False),
                                                   ("none", True), ("mean", True)])
def test_kl_div(reduction, log_target, rng):
    a = randn(rng, 4, 5)
    t = rng.dirichlet(np.ones(5), 4).astype(np.float32)
    t[0, 1] = 0.0  # 0 * log 0 counts as 0
    if log_target:
        t = np.log(t + 0.1).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_vs_torch(lambda x, y: F.kl_div(x.log_softmax(1), y, reduction=reduction,
                                             log_target=log_target),
                       lambda x, y: TF.kl_div(x.log_softmax(1), y, reduction=reduction,
                                              log_target=log_target), [a, t], rng=rng,
                       name="kl_div")
    if reduction == "mean":
        with pytest.warns(UserWarning, match="batchmean"):
            F.kl_div(fc.tensor(a), fc.tensor(t), log_target=log_target)


def test_normalize_cosine_pairwise(rng):
    a, b = randn(rng, 4, 5), randn(rng, 1, 5)
    check_vs_torch(lambda x: F.normalize(x), lambda x: TF.normalize(x), [a], rng=rng,
                   name="normalize")
    check_vs_torch(lambda x: F.normalize(x, p=1, dim=0), lambda x: TF.normalize(x, p=1, dim=0),
                   [a], rng=rng, name="normalize p=1")
    check_vs_torch(lambda x, y: F.cosine_similarity(x, y), lambda x, y: TF.cosine_similarity(x, y),
                   [a, b], rng=rng, name="cosine_similarity")
    check_vs_torch(lambda x, y: nn.CosineSimilarity(dim=-1)(x, y),
                   lambda x, y: torch.nn.CosineSimilarity(dim=-1)(x, y), [a, b], rng=rng,
                   name="CosineSimilarity")
    # broadcast along the reduced dim: the size-1 operand's norm counts each of its entries
    # once per entry of the other
    for dim in (0, -1):
        check_vs_torch(lambda x, y: F.cosine_similarity(x, y, dim=dim),
                       lambda x, y: TF.cosine_similarity(x, y, dim=dim), [a, b], rng=rng,
                       name=f"cosine_similarity dim={dim}")
    check_vs_torch(lambda x, y: F.cosine_similarity(x, y, dim=0),
                   lambda x, y: TF.cosine_similarity(x, y, dim=0),
                   [randn(rng, 6), randn(rng, 1)], rng=rng, name="cosine_similarity 1-D")
    check_vs_torch(lambda x, y: F.pairwise_distance(x, y), lambda x, y: TF.pairwise_distance(x, y),
                   [a, b], rng=rng, name="pairwise_distance")


# ----------------------------------------------------------------------------- patches and pixels

FOLDS = [
    {"kernel_size": 2},
    {"kernel_size": (2, 3), "padding": 1, "stride": 2},
    {"kernel_size": 3, "dilation": 2, "padding": 2},
]


@pytest.mark.parametrize("kw", FOLDS, ids=[str(k) for k in FOLDS])
def test_unfold_fold(kw, rng):
    x = randn(rng, 2, 3, 5, 6)
    check_vs_torch(lambda t: F.unfold(t, **kw), lambda t: TF.unfold(t, **kw), [x], rng=rng,
                   name="unfold")
    cols = TF.unfold(torch.tensor(x), **kw).numpy()
    check_vs_torch(lambda t: F.fold(t, (5, 6), **kw), lambda t: TF.fold(t, (5, 6), **kw),
                   [cols], rng=rng, name="fold")
    check_vs_torch(lambda t: nn.Unfold(**kw)(t[0]), lambda t: torch.nn.Unfold(**kw)(t[0]), [x],
                   rng=rng, name="Unfold unbatched")
    with pytest.raises(RuntimeError, match="sliding blocks"):
        F.fold(fc.tensor(cols[:, :, 1:]), (5, 6), **kw)


def test_pixel_shuffle(rng):
    x = randn(rng, 2, 8, 3, 3)
    check_vs_torch(lambda t: F.pixel_shuffle(t, 2), lambda t: TF.pixel_shuffle(t, 2), [x],
                   rng=rng, name="pixel_shuffle")
    check_vs_torch(lambda t: nn.PixelUnshuffle(3)(t), lambda t: torch.nn.PixelUnshuffle(3)(t),
                   [randn(rng, 2, 6, 6)], rng=rng, name="pixel_unshuffle unbatched")


# ------------------------------------------------------------------------ layers and tensor helpers


def test_small_layers_and_helpers(rng):
    x = randn(rng, 2, 6, 4)
    assert nn.Identity(54, unused="x")(fc.tensor(x)).shape == x.shape
    assert nn.Unflatten(1, (2, 3))(fc.tensor(x)).shape == (2, 2, 3, 4)
    assert_close(nn.Dropout1d(0.5).eval()(fc.tensor(x)), x)
    y = nn.Dropout1d(0.5)(fc.tensor(x)).numpy()
    assert ((y == 0).all(-1) | (y != 0).all(-1)).all()  # whole channels
    t = fc.tensor(x)
    assert t.new_empty(2, 3).shape == (2, 3) and t.ndimension() == 3
    assert t.byte().dtype == fc.uint8 and t.short().dtype == fc.int16
    img = randn(rng, 2, 3, 5, 5)
    for affine in (False, True):
        got = nn.InstanceNorm2d(3, affine=affine)(fc.tensor(img))
        want = torch.nn.InstanceNorm2d(3, affine=affine)(torch.tensor(img))
        assert_close(got, want.detach())
    fc_in, t_in = nn.InstanceNorm2d(3, track_running_stats=True), \
        torch.nn.InstanceNorm2d(3, track_running_stats=True)
    fc_in(fc.tensor(img))
    t_in(torch.tensor(img))
    assert_close(fc_in.running_var, t_in.running_var)
    fc_in.eval()
    t_in.eval()
    assert_close(fc_in(fc.tensor(img)), t_in(torch.tensor(img)))
    check_vs_torch(lambda a: F.instance_norm(a), lambda a: TF.instance_norm(a), [img], rng=rng,
                   name="instance_norm")


# ----------------------------------------------------------------------------- fuzz


def _torch_outcome(fn):
    try:
        return fn(), None
    except Exception as e:  # noqa: BLE001 - recording which exception torch raises
        return None, type(e)


INDEX_FUZZ_OPS = {
    "gather": lambda m, x, dim, idx: x.gather(dim, m.tensor(idx)),
    "index_select": lambda m, x, dim, idx: x.index_select(dim, m.tensor(idx.ravel())),
    "scatter_add": lambda m, x, dim, idx: x.scatter_add(dim, m.tensor(idx),
                                                        m.ones(*idx.shape) if idx.ndim else
                                                        m.ones(())),
    "narrow": lambda m, x, dim, idx: x.narrow(dim, int(idx.ravel()[0]) if idx.size else 0, 1),
    "cumsum": lambda m, x, dim, idx: x.cumsum(dim),
    "logsumexp": lambda m, x, dim, idx: x.logsumexp(dim),
    "roll": lambda m, x, dim, idx: x.roll(int(idx.ravel()[0]) if idx.size else 1, dim),
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_index_ops_match_torch_or_raise_like_it(data):
    """Random shapes (with size-1 and empty dims), dims (also out of range) and indices (also
    out of range, negative): fastconv returns torch's values or raises where torch raises,
    with one of the exception types torch uses for that class of error."""
    op = data.draw(st.sampled_from(sorted(INDEX_FUZZ_OPS)))
    shape = tuple(data.draw(st.lists(st.integers(0, 3), min_size=1, max_size=3)))
    dim = data.draw(st.integers(-len(shape) - 1, len(shape)))
    idx_shape = tuple(data.draw(st.integers(0, 3)) for _ in shape)
    idx = np.asarray(data.draw(st.lists(st.integers(-2, 4), min_size=int(np.prod(idx_shape)),
                                        max_size=int(np.prod(idx_shape)))),
                     dtype=np.int64).reshape(idx_shape)
    x = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape) * 0.5 - 1.0
    fn = INDEX_FUZZ_OPS[op]
    want, torch_error = _torch_outcome(lambda: fn(torch, torch.tensor(x), dim, idx))
    if torch_error is not None:
        # Shape and range errors: torch raises RuntimeError or IndexError (sometimes its
        # ValueError); fastconv must raise one of these too, never return garbage.
        with pytest.raises((RuntimeError, IndexError, ValueError)):
            fn(fc, fc.tensor(x), dim, idx)
        return
    got = fn(fc, fc.tensor(x), dim, idx)
    assert got.shape == tuple(want.shape), (op, shape, dim, idx_shape)
    # assert_allclose: an empty logsumexp is -inf in both
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)


# ---- index_add / index_copy / index_fill, take_along_dim, kthvalue, quantile ---------------
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_index_add_copy_fill_match_torch(rng, dim):
    a = randn(rng, 4, 5, 3)
    d = dim % 3
    n = a.shape[d]
    repeated = np.array([1, n - 1, 1], np.int64)  # index_add adds repeats up
    distinct = rng.permutation(n)[:3].astype(np.int64)
    src_shape = list(a.shape)
    src_shape[d] = 3
    src = randn(rng, *src_shape)
    for name, idx, kw in (("index_add", repeated, {"alpha": -1.5}), ("index_add", repeated, {}),
                          ("index_copy", distinct, {})):
        fa, fs = fc.tensor(a, requires_grad=True), fc.tensor(src, requires_grad=True)
        ta, ts = torch.tensor(a, requires_grad=True), torch.tensor(src, requires_grad=True)
        fy = getattr(fa, name)(dim, fc.tensor(idx), fs, **kw)
        ty = getattr(ta, name)(dim, torch.tensor(idx), ts, **kw)
        g = randn(rng, *a.shape)
        fy.backward(fc.tensor(g))
        ty.backward(torch.tensor(g))
        assert_close(fy.detach().numpy(), ty.detach().numpy())
        assert_close(fa.grad.numpy(), ta.grad.numpy())
        assert_close(fs.grad.numpy(), ts.grad.numpy())
        inplace = fc.tensor(a)
        getattr(inplace, name + "_")(dim, fc.tensor(idx), fc.tensor(src), **kw)
        assert_close(inplace.numpy(), ty.detach().numpy())
    fa = fc.tensor(a, requires_grad=True)
    fy = fa.index_fill(dim, fc.tensor(distinct), -2.5)
    ta = torch.tensor(a, requires_grad=True)
    ty = ta.index_fill(dim, torch.tensor(distinct), -2.5)
    fy.sum().backward()
    ty.sum().backward()
    assert_close(fy.detach().numpy(), ty.detach().numpy())
    assert_close(fa.grad.numpy(), ta.grad.numpy())


def test_index_put_errors():
    a = fc.randn(3, 4)
    with pytest.raises(RuntimeError, match="out of bounds"):
        a.index_add(1, fc.tensor([4]), fc.randn(3, 1))
    with pytest.raises(RuntimeError, match="source has shape"):
        a.index_copy(0, fc.tensor([0, 1]), fc.randn(3, 4))
    with pytest.raises(RuntimeError, match="int32/int64"):
        a.index_fill(0, fc.tensor([0.0]), 1.0)
    with pytest.raises(IndexError, match="vector"):
        a.index_add(0, fc.tensor([[0]]), fc.randn(1, 4))
    with pytest.raises(RuntimeError, match="0-dimensional"):
        a.index_fill(0, fc.tensor([0]), fc.ones(2))


def test_take_along_dim_kthvalue_quantile_match_torch(rng):
    a = distinct(rng, 4, 6)
    idx = rng.integers(0, 6, (4, 3))
    for fi, ti, dim in ((idx, idx, 1), (idx[:1], idx[:1], 1),
                        (rng.integers(0, 4, (2, 6)), None, 0), (np.array([3, 23, 3]), None, None)):
        ti = fi if ti is None else ti
        fa, ta = fc.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
        fy = fc.take_along_dim(fa, fc.tensor(fi), dim)
        ty = torch.take_along_dim(ta, torch.tensor(ti), dim)
        fy.sum().backward()
        ty.sum().backward()
        assert_close(fy.detach().numpy(), ty.detach().numpy())
        assert_close(fa.grad.numpy(), ta.grad.numpy())  # repeated indices add up
    for k, dim, keepdim in ((1, 1, False), (3, 0, True), (6, -1, False)):
        fv, fi_ = fc.tensor(a).kthvalue(k, dim, keepdim)
        tv, ti_ = torch.tensor(a).kthvalue(k, dim, keepdim)
        assert_close(fv.numpy(), tv.numpy())
        np.testing.assert_array_equal(fi_.numpy(), ti_.numpy())
    with pytest.raises(IndexError, match="out of range"):
        fc.tensor(a).kthvalue(7, 1)
    for interpolation in ("linear", "lower", "higher", "midpoint", "nearest"):
        for q in (0.3, np.array([0.0, 0.25, 0.5, 0.9, 1.0], np.float32)):
            for dim, keepdim in ((None, False), (1, False), (0, True), (None, True)):
                fa, ta = fc.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
                fq = fa.quantile(fc.tensor(q) if np.ndim(q) else q, dim, keepdim,
                                 interpolation=interpolation)
                tq = ta.quantile(torch.tensor(q) if np.ndim(q) else q, dim, keepdim,
                                 interpolation=interpolation)
                assert tuple(fq.shape) == tuple(tq.shape)
                assert_close(fq.detach().numpy(), tq.detach().numpy())
                g = randn(rng, *tq.shape)
                fq.backward(fc.tensor(g))
                tq.backward(torch.tensor(g))
                assert_close(fa.grad.numpy(), ta.grad.numpy())
    with pytest.raises(RuntimeError, match=r"\[0, 1\]"):
        fc.tensor(a).quantile(1.5)
    with pytest.raises(ValueError, match="interpolation"):
        fc.tensor(a).quantile(0.5, interpolation="cubic")


# ---- avg_pool2d(divisor_override=), max_unpool2d ---------------------------------------------
@pytest.mark.parametrize("k,s,p,ceil,cip,d", [(2, 2, 0, False, True, 3), (3, 2, 1, True, True, 2),
                                              (3, 1, 1, False, False, 5),
                                              (2, 3, 1, True, False, 1)])
def test_avg_pool_divisor_override_matches_torch(rng, k, s, p, ceil, cip, d):
    x = randn(rng, 2, 3, 7, 8)
    fx, tx = fc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    fy = fc.nn.AvgPool2d(k, s, p, ceil, cip, d)(fx)
    ty = torch.nn.AvgPool2d(k, s, p, ceil, cip, d)(tx)
    g = randn(rng, *ty.shape)
    fy.backward(fc.tensor(g))
    ty.backward(torch.tensor(g))
    assert_close(fy.detach().numpy(), ty.detach().numpy())
    assert_close(fx.grad.numpy(), tx.grad.numpy())
    with pytest.raises(ValueError, match="divisor_override"):
        F.avg_pool2d(fx, 2, divisor_override=0)


@pytest.mark.parametrize("k,s,p,unbatched", [(2, 2, 0, False), (3, 2, 1, False), (2, 1, 0, True)])
def test_max_unpool_inverts_max_pool_as_torch(rng, k, s, p, unbatched):
    x = distinct(rng, 2, 3, 7, 8)
    x = x[0] if unbatched else x
    fy, fi = F.max_pool2d(fc.tensor(x), k, s, p, return_indices=True)
    ty, ti = torch.nn.functional.max_pool2d(torch.tensor(x), k, s, p, return_indices=True)
    np.testing.assert_array_equal(fi.numpy(), ti.numpy())
    # the pooled maxima themselves: with overlapping windows (stride < kernel) two outputs can
    # name the same position, and only equal values make the result independent of which
    # write lands last
    v = fy.numpy()
    fv, tv = fc.tensor(v, requires_grad=True), torch.tensor(v, requires_grad=True)
    fu = fc.nn.MaxUnpool2d(k, s, p)(fv, fi, output_size=x.shape[-2:])
    tu = torch.nn.MaxUnpool2d(k, s, p)(tv, ti, output_size=x.shape[-2:])
    g = randn(rng, *tu.shape)
    fu.backward(fc.tensor(g))
    tu.backward(torch.tensor(g))
    assert_close(fu.detach().numpy(), tu.detach().numpy())
    assert_close(fv.grad.numpy(), tv.grad.numpy())
    assert repr(fc.nn.MaxUnpool2d(k, s, p)) == repr(torch.nn.MaxUnpool2d(k, s, p))
    with pytest.raises(RuntimeError, match="invalid max index"):
        F.max_unpool2d(fv, fc.tensor(np.full(fi.shape, 10**6, np.int64)), k, s, p)
    with pytest.raises(ValueError, match="indices"):
        F.max_unpool2d(fv, fc.tensor(np.zeros((1,), np.int64)), k, s, p)


@pytest.mark.parametrize("shape,dim,keepdim", [((4, 9), 1, False), ((4, 9), 0, True),
                                               ((3, 5, 7), 1, False), ((6,), 0, False),
                                               ((2, 3, 4), -1, True)])
def test_mode_matches_torch(rng, shape, dim, keepdim):
    x = rng.integers(0, 4, shape).astype(np.float32)  # many ties: torch's tie rules matter
    fx, tx = fc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    fv, fi = fx.mode(dim, keepdim)
    tv, ti = torch.mode(tx, dim, keepdim)
    np.testing.assert_array_equal(fv.detach().numpy(), tv.detach().numpy())
    np.testing.assert_array_equal(fi.numpy(), ti.numpy())
    g = randn(rng, *tv.shape)
    fv.backward(fc.tensor(g))
    tv.backward(torch.tensor(g))
    assert_close(fx.grad.numpy(), tx.grad.numpy())
    with pytest.raises(IndexError):
        fc.zeros(2, 0).mode(1)


@pytest.mark.parametrize("kw", [{"scale_factor": 2}, {"size": 13}, {"scale_factor": 0.6},
                                {"size": 5, "align_corners": True},
                                {"scale_factor": 1.7, "recompute_scale_factor": True}])
def test_linear_interpolation_matches_torch(rng, kw):
    x = randn(rng, 2, 3, 8)
    fx, tx = fc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    fy = F.interpolate(fx, mode="linear", **kw)
    ty = torch.nn.functional.interpolate(tx, mode="linear", **kw)
    g = randn(rng, *ty.shape)
    fy.backward(fc.tensor(g))
    ty.backward(torch.tensor(g))
    assert_close(fy.detach().numpy(), ty.detach().numpy())
    assert_close(fx.grad.numpy(), tx.grad.numpy())
    assert nn.Upsample(scale_factor=2, mode="linear")(fc.tensor(x)).shape == (2, 3, 16)
    with pytest.raises(ValueError, match=r"3-D input \(N, C, L\)"):
        F.interpolate(fc.tensor(randn(rng, 1, 2, 4, 4)), scale_factor=2, mode="linear")


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, 0.0, float("inf"), -float("inf")])
def test_embedding_max_norm_renormalises_like_torch(rng, norm_type):
    """Any norm torch's vector norm takes (0 counts the non-zeros, +-inf the largest and the
    smallest |w|; 0 was a ZeroDivisionError)."""
    w = randn(rng, 10, 4, scale=2.0)
    idx = np.array([[1, 3, 3], [7, 1, 0]])
    fw, tw = nn.Parameter(fc.tensor(w)), torch.nn.Parameter(torch.tensor(w))
    fy = F.embedding(fc.tensor(idx), fw, max_norm=1.5, norm_type=norm_type)
    ty = torch.nn.functional.embedding(torch.tensor(idx), tw, max_norm=1.5, norm_type=norm_type)
    assert_close(fy.detach().numpy(), ty.detach().numpy())
    assert_close(fw.detach().numpy(), tw.detach().numpy())  # the looked-up rows, in place
    untouched = [r for r in range(10) if r not in idx]
    np.testing.assert_array_equal(fw.detach().numpy()[untouched], w[untouched])
    fy.sum().backward()
    ty.sum().backward()
    assert_close(fw.grad.numpy(), tw.grad.numpy())


def test_scatter_reduce_multiply_matches_torch(rng):
    x = randn(rng, 3, 4)
    idx = np.array([[0, 1, 2, 0], [0, 0, 1, 2]])  # repeated targets multiply up
    src = randn(rng, 2, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch: reduce= is deprecated there
        want = torch.tensor(x).scatter(0, torch.tensor(idx), torch.tensor(src), reduce="multiply")
        want_value = torch.tensor(x).scatter(1, torch.tensor(idx[:, :2]), 3.0, reduce="multiply")
    assert_close(fc.tensor(x).scatter(0, fc.tensor(idx), fc.tensor(src), reduce="multiply"),
                 want.numpy())
    assert_close(fc.tensor(x).scatter(1, fc.tensor(idx[:, :2]), 3.0, reduce="multiply"),
                 want_value.numpy())
    inplace = fc.tensor(x)
    inplace.scatter_(0, fc.tensor(idx), fc.tensor(src), reduce="multiply")
    assert_close(inplace.numpy(), want.numpy())
    leaf = fc.tensor(x, requires_grad=True)
    out = leaf.scatter(0, fc.tensor(idx), fc.tensor(src), reduce="multiply")
    with pytest.raises(RuntimeError, match="not implemented"):
        out.sum().backward()
    with pytest.raises(RuntimeError, match="add or multiply"):
        fc.tensor(x).scatter(0, fc.tensor(idx), fc.tensor(src), reduce="max")


@pytest.mark.parametrize("fn", ["quantile", "nanquantile"])
def test_quantiles_with_nan_match_torch(rng, fn):
    a = randn(rng, 4, 6)
    a[1, 2] = np.nan      # one NaN
    a[2, :] = np.nan      # all NaN
    a[3, [0, 5]] = np.nan  # two NaN
    for interpolation in ("linear", "lower", "higher", "midpoint", "nearest"):
        for q in (0.3, np.array([0.0, 0.25, 0.5, 0.9, 1.0], np.float32)):
            for dim, keepdim in ((None, False), (1, False), (0, True), (1, True)):
                fa, ta = fc.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
                fq = getattr(fa, fn)(fc.tensor(q) if np.ndim(q) else q, dim, keepdim,
                                     interpolation=interpolation)
                tq = getattr(ta, fn)(torch.tensor(q) if np.ndim(q) else q, dim, keepdim,
                                     interpolation=interpolation)
                assert tuple(fq.shape) == tuple(tq.shape)
                np.testing.assert_allclose(fq.detach().numpy(), tq.detach().numpy(), atol=1e-6,
                                           equal_nan=True)
                g = randn(rng, *tq.shape)
                fq.backward(fc.tensor(g))
                tq.backward(torch.tensor(g))
                if fn == "quantile" and dim is None:
                    continue  # which of several NaNs torch's unstable sort puts last varies
                np.testing.assert_allclose(fa.grad.numpy(), ta.grad.numpy(), atol=1e-6)
