"""The PyTorch tensor surface: factories, dtypes, devices, elementwise math, reductions,
selection, shape ops, in-place ops, hooks, and Module's device/dtype methods.

Each differentiable op is checked forward and backward against the NumPy float64 reference
(tests/reference.py, central differences) and against torch (float64 autograd).
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import reference as ref
from helpers import assert_close, check_op, check_vs_torch, distinct, randn

import fastconv as fc

torch = pytest.importorskip("torch")


def _both(fc_fn, ref_fn, torch_fn, inputs, rng, name, **kw):
    check_op(fc_fn, ref_fn, inputs, rng=rng, name=name, **kw)
    check_vs_torch(fc_fn, torch_fn, inputs, rng=rng, name=name, **kw)


def _positive(rng, *shape):
    return (np.abs(randn(rng, *shape)) + 0.5).astype(np.float32)


# ----------------------------------------------------------------------------- factories


def test_factories_shapes_dtypes_and_values():
    assert fc.zeros(2, 3).shape == (2, 3) and fc.zeros((2, 3)).dtype == fc.float32
    assert fc.ones([4]).numpy().tolist() == [1.0] * 4
    assert fc.empty(3, 2).shape == (3, 2)
    assert fc.full((2, 2), 7).dtype == fc.int64 and fc.full((2,), 1.5).dtype == fc.float32
    assert fc.full((2,), True).dtype == fc.bool
    assert fc.zeros(2, dtype=fc.long).dtype == fc.int64
    for fc_args, t_args in [((5,), (5,)), ((1, 7, 2), (1, 7, 2)),
                            ((0.0, 1.0, 0.25), (0.0, 1.0, 0.25))]:
        a, t = fc.arange(*fc_args), torch.arange(*t_args)
        assert str(a.dtype) == str(t.dtype).replace("torch.", "")
        np.testing.assert_allclose(a.numpy(), t.numpy())
    np.testing.assert_allclose(fc.linspace(-1, 2, 7).numpy(), torch.linspace(-1, 2, 7).numpy(),
                               rtol=1e-6)
    np.testing.assert_array_equal(fc.eye(3).numpy(), torch.eye(3).numpy())
    np.testing.assert_array_equal(fc.eye(2, 4).numpy(), torch.eye(2, 4).numpy())
    x = fc.ones(2, 3, requires_grad=True)
    assert x.requires_grad and x.is_leaf
    with pytest.raises(RuntimeError, match="negative dimension"):
        fc.zeros(-1, 2)


def test_like_factories_follow_the_input(rng):
    x = fc.tensor(randn(rng, 3, 4))
    i = fc.randint(0, 5, (2, 2))
    for f in (fc.zeros_like, fc.ones_like, fc.empty_like, fc.rand_like, fc.randn_like):
        y = f(x)
        assert y.shape == x.shape and y.dtype == fc.float32 and y.device == x.device
    assert fc.zeros_like(i).dtype == fc.int64
    assert fc.full_like(x, 2.5).numpy().tolist() == [[2.5] * 4] * 3
    r = fc.randint_like(i, 3, 9)
    assert r.dtype == fc.int64 and 3 <= r.numpy().min() and r.numpy().max() < 9
    assert fc.zeros_like(x, dtype=fc.int32).dtype == fc.int32
    assert fc.ones_like(x, requires_grad=True).requires_grad


def test_random_factories_are_seeded_and_take_a_generator():
    fc.manual_seed(3)
    a = [fc.rand(4), fc.randn(2, 3), fc.randint(10, (5,)), fc.randperm(6)]
    fc.manual_seed(3)
    b = [fc.rand(4), fc.randn(2, 3), fc.randint(10, (5,)), fc.randperm(6)]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    assert a[0].dtype == fc.float32 and a[2].dtype == fc.int64
    assert 0 <= a[0].numpy().min() and a[0].numpy().max() < 1
    assert sorted(a[3].numpy().tolist()) == list(range(6))
    g1, g2 = fc.Generator().manual_seed(11), fc.Generator().manual_seed(11)
    np.testing.assert_array_equal(fc.randn(5, generator=g1).numpy(),
                                  fc.randn(5, generator=g2).numpy())
    r = fc.randint(-3, 4, size=(200,))
    assert r.numpy().min() >= -3 and r.numpy().max() < 4
    z = fc.randn(1000)
    assert abs(float(z.mean())) < 0.15 and abs(float(z.std()) - 1) < 0.15
    assert fc.randn(2, requires_grad=True).requires_grad
    with pytest.raises(TypeError, match="size"):
        fc.randint(5)
    with pytest.raises(TypeError, match="Generator"):
        fc.rand(2, generator=np.random.default_rng(0))


def test_from_numpy_shares_memory_and_as_tensor(rng):
    a = randn(rng, 3)
    t = fc.from_numpy(a)
    a[0] = 42.0
    assert t[0].item() == 42.0
    t.add_(1.0)
    assert a[0] == 43.0
    i = np.arange(4)
    assert fc.from_numpy(i).dtype == fc.int64
    assert fc.as_tensor(a).numpy() is a or np.shares_memory(fc.as_tensor(a).numpy(), a)
    assert fc.as_tensor(t) is t
    assert fc.as_tensor([1, 2]).dtype == fc.int64
    with pytest.warns(fc.DtypeWarning, match="does not share memory"):
        t64 = fc.from_numpy(a.astype(np.float64))
    assert t64.dtype == fc.float32
    with pytest.raises(TypeError, match="expected np.ndarray"):
        fc.from_numpy([1.0])


# ----------------------------------------------------------------------------- dtypes


def test_dtype_names_and_aliases():
    assert fc.float is fc.float32 and fc.double is fc.float64 and fc.long is fc.int64
    assert fc.int is fc.int32 and fc.bool == np.bool_ and fc.half is fc.float16
    assert isinstance(fc.float32, fc.dtype)
    assert fc.tensor([1.0]).dtype == fc.float32 == np.float32


def test_float64_is_converted_with_a_warning_never_silently(rng):
    a = rng.standard_normal(4)
    with pytest.warns(fc.DtypeWarning, match="float32"):
        t = fc.tensor(a)
    assert t.dtype == fc.float32
    assert_close(t.numpy(), a, name="values")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fc.tensor([0.5, 1.5]).dtype == fc.float32  # Python floats: no warning
        assert fc.tensor(a.astype(np.float32)).dtype == fc.float32
    for make in (lambda: fc.zeros(2, dtype=fc.float64), lambda: t.double(),
                 lambda: t.to(fc.float64), lambda: fc.tensor(a, dtype=fc.double),
                 lambda: fc.as_tensor(a)):
        with pytest.warns(fc.DtypeWarning):
            assert make().dtype == fc.float32


def test_integer_promotion_follows_torch():
    i, f = fc.tensor([1, 2, 3]), fc.tensor([0.5, 1.5, 2.5])
    ti, tf = torch.tensor([1, 2, 3]), torch.tensor([0.5, 1.5, 2.5])
    cases = [
        (i + f, ti + tf), (i * 2.5, ti * 2.5), (i / 2, ti / 2), (i / i, ti / ti),
        (i + 1, ti + 1), (i.exp(), ti.exp()), (i.sum(), ti.sum()), (i.sqrt(), ti.sqrt()),
        (i.sigmoid(), ti.sigmoid()), (i.abs(), ti.abs()), (2 - i, 2 - ti), (1 / i, 1 / ti),
        (i.clamp(0, 2), ti.clamp(0, 2)), (i.max(), ti.max()),
    ]
    for got, want in cases:
        assert str(got.dtype) == str(want.dtype).replace("torch.", ""), (got, want)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
    with pytest.raises(RuntimeError, match=re.escape(
            "mean(): could not infer output dtype. Input dtype must be either a floating point "
            "or complex dtype. Got: Long")):
        i.mean()
    with pytest.raises(RuntimeError, match="result type Float can't be cast to the desired "
                                           "output type Long"):
        i.add_(1.5)
    with pytest.raises(TypeError, match="floating-point"):
        fc.tensor([1, 2], requires_grad=True)


# ----------------------------------------------------------------------------- devices


def test_device_objects_and_cuda_queries():
    d = fc.device("cuda:0")
    assert d.type == "cuda" and d.index == 0 and str(d) == "cuda:0"
    assert repr(fc.device("cpu")) == "device(type='cpu')"
    assert fc.device("cuda", 0) == d and fc.device("cpu") == "cpu"
    x = fc.ones(2)
    assert x.device == "cpu" and x.device.type == "cpu" and not x.is_cuda
    assert x.to("cpu") is x and x.to(fc.device("cpu")) is x and x.cpu() is x
    with pytest.raises(RuntimeError, match="Expected one of cpu, cuda"):
        fc.device("tpu")
    with pytest.raises(ValueError, match="one GPU"):
        fc.device("cuda:1")
    assert isinstance(fc.cuda.is_available(), bool)
    assert fc.cuda.device_count() >= 0
    if not fc.cuda.is_available():
        assert fc.cuda.device_count() == 0


def test_cuda_sources_still_ship_with_the_package():
    import importlib.resources

    names = {p.name for p in importlib.resources.files("fastconv.cuda").iterdir()}
    assert {"im2col.cu", "pool.cu", "elementwise.cu"} <= names


def test_to_forms_and_casts(rng):
    x = fc.tensor(randn(rng, 2, 3))
    i = fc.tensor([1, 2])
    assert x.to(fc.int64).dtype == fc.int64 and x.to("cpu", fc.int32).dtype == fc.int32
    assert x.to(i).dtype == fc.int64 and i.to(x).dtype == fc.float32
    assert x.to(device="cpu", dtype=fc.float32) is x
    assert x.to(fc.float32, copy=True) is not x
    assert x.float() is x and i.float().dtype == fc.float32
    assert x.long().dtype == fc.int64 and x.int().dtype == fc.int32
    assert (x > 0).dtype == fc.bool and x.bool().dtype == fc.bool
    assert x.type() == "fastconv.FloatTensor" and i.type() == "fastconv.LongTensor"
    with pytest.raises(TypeError, match="unexpected keyword"):
        x.to(devic="cpu")


# ----------------------------------------------------------------------------- scalars


def test_python_scalar_conversions(rng):
    v = float(rng.standard_normal())
    t = fc.tensor([v])
    assert float(t) == pytest.approx(v, rel=1e-6)
    assert int(fc.tensor([7.9])) == 7 and int(fc.tensor(3)) == 3
    assert f"{t:.3f}" == f"{v:.3f}"
    assert f"{fc.tensor(v):.2e}" == f"{np.float32(v):.2e}"
    assert bool(fc.tensor([1.0])) and not bool(fc.tensor(0))
    assert [10, 20, 30][fc.tensor(1)] == 20
    with pytest.raises(ValueError, match="only one element tensors"):
        float(fc.ones(2))
    with pytest.raises(TypeError, match="unsupported format string"):
        f"{fc.ones(2):.3f}"
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(fc.ones(2))


# ----------------------------------------------------------------------------- elementwise math

UNARY = [
    ("abs", lambda t: t.abs(), ref.abs_, torch.abs, False),
    ("sqrt", lambda t: t.sqrt(), ref.sqrt, torch.sqrt, True),
    ("sigmoid", lambda t: t.sigmoid(), ref.sigmoid, torch.sigmoid, False),
    ("tanh", lambda t: fc.tanh(t), ref.tanh, torch.tanh, False),
    ("exp", lambda t: fc.exp(t), np.exp, torch.exp, False),
    ("log", lambda t: fc.log(t), np.log, torch.log, True),
    ("sin", lambda t: fc.sin(t), np.sin, torch.sin, False),
    ("cos", lambda t: t.cos(), np.cos, torch.cos, False),
    ("neg", lambda t: fc.neg(t), np.negative, torch.neg, False),
    ("reciprocal", lambda t: t.reciprocal(), lambda a: 1 / a, torch.reciprocal, True),
]


@pytest.mark.parametrize("name, fc_fn, ref_fn, torch_fn, positive", UNARY,
                         ids=[u[0] for u in UNARY])
def test_unary_math(name, fc_fn, ref_fn, torch_fn, positive, rng):
    x = _positive(rng, 3, 5) if positive else randn(rng, 3, 5)
    _both(fc_fn, ref_fn, torch_fn, [x], rng, name)


@pytest.mark.parametrize("lo, hi", [(-0.5, 0.7), (None, 0.3), (-0.2, None)])
def test_clamp(lo, hi, rng):
    x = randn(rng, 4, 6)
    x[np.abs(x - (lo or 0)) < 1e-3] += 0.01  # keep central differences off the kinks
    x[np.abs(x - (hi or 0)) < 1e-3] += 0.01
    _both(lambda t: t.clamp(lo, hi), lambda a: ref.clamp(a, lo, hi),
          lambda t: torch.clamp(t, lo, hi), [x], rng, "clamp")
    _both(lambda t: fc.clip(t, min=lo, max=hi), lambda a: ref.clamp(a, lo, hi),
          lambda t: t.clip(lo, hi), [x], rng, "clip")


def test_clamp_with_tensor_bounds_maximum_minimum(rng):
    x, lo, hi = randn(rng, 3, 4), randn(rng, 4) - 1.0, randn(rng, 3, 1) + 1.0
    lo = np.where(np.abs(x - lo) < 1e-3, lo - 0.01, lo).astype(np.float32)[0]
    _both(lambda a, b, c: a.clamp(b, c), lambda a, b, c: np.minimum(np.maximum(a, b), c),
          lambda a, b, c: torch.clamp(a, b, c), [x, lo, hi], rng, "clamp(tensors)")
    _both(lambda a, b: fc.maximum(a, b), ref.maximum, torch.maximum,
          [x, randn(rng, 4)], rng, "maximum")
    _both(lambda a, b: a.minimum(b), ref.minimum, torch.minimum, [x, randn(rng, 3, 1)], rng,
          "minimum")
    with pytest.raises(RuntimeError, match="At least one of 'min' or 'max'"):
        fc.ones(2).clamp()


def test_where(rng):
    cond = rng.random((3, 4)) > 0.5
    _both(lambda a, b: fc.where(fc.tensor(cond), a, b), lambda a, b: ref.where(cond, a, b),
          lambda a, b: torch.where(torch.tensor(cond), a, b), [randn(rng, 3, 4), randn(rng, 4)],
          rng, "where")
    _both(lambda a: fc.where(fc.tensor(cond), a, 0.5), lambda a: ref.where(cond, a, 0.5),
          lambda a: torch.where(torch.tensor(cond), a, 0.5), [randn(rng, 3, 4)], rng,
          "where(scalar)")
    x = fc.tensor(randn(rng, 3, 4))
    assert_close(x.masked_fill(fc.tensor(cond), -1.0).numpy(),
                 np.where(cond, -1.0, x.numpy()), name="masked_fill")
    idx = fc.where(fc.tensor(cond))
    np.testing.assert_array_equal(idx[0].numpy(), np.nonzero(cond)[0])


def test_where_with_numbers_has_torchs_dtype_and_values(rng):
    """Two numbers (int64, float32, bool as torch), and numbers, 0-d and n-d tensors of each
    kind mixed: torch's result dtype and values (float64 aside: fastconv computes in float32)."""
    cond = rng.random((2, 3)) > 0.5
    values = {"int": int(rng.integers(-5, 5)), "float": float(rng.uniform(-2, 2)), "bool": True,
              "f32": rng.standard_normal((2, 3)).astype(np.float32),
              "i64": rng.integers(-9, 9, (3,)), "i32": rng.integers(-9, 9, (2, 3)).astype(np.int32),
              "b": rng.random(3) > 0.5, "f32 0-d": np.array(rng.standard_normal(), np.float32),
              "i64 0-d": np.array(rng.integers(-9, 9))}

    def make(lib, v):
        return v if np.isscalar(v) else (torch.from_numpy(v) if lib is torch else fc.tensor(v))

    for a in values:
        for b in values:
            want = torch.where(torch.from_numpy(cond), make(torch, values[a]),
                               make(torch, values[b]))
            got = fc.where(fc.tensor(cond), make(fc, values[a]), make(fc, values[b]))
            assert str(got.dtype) == str(want.dtype).replace("torch.", ""), (a, b)
            np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=f"{a}, {b}")
    got = fc.where(fc.tensor(cond), 1, 0)
    assert got.dtype == np.int64 and got.shape == (2, 3)
    np.testing.assert_array_equal(got.numpy(), cond.astype(np.int64))
    x = fc.tensor(randn(rng, 2, 3), requires_grad=True)
    fc.where(fc.tensor(cond), x, 0).sum().backward()  # a number beside a tensor keeps the grad
    np.testing.assert_array_equal(x.grad.numpy(), cond.astype(np.float32))


def test_softmax_functions_and_relu(rng):
    x = randn(rng, 3, 5)
    _both(lambda t: fc.softmax(t, dim=1), lambda a: ref.softmax(a, 1),
          lambda t: torch.softmax(t, dim=1), [x], rng, "fc.softmax")
    _both(lambda t: t.log_softmax(0), lambda a: ref.log_softmax(a, 0),
          lambda t: t.log_softmax(0), [x], rng, "log_softmax")
    x[np.abs(x) < 1e-3] = 0.1
    _both(lambda t: fc.relu(t), ref.relu, torch.relu, [x], rng, "fc.relu")


def test_binary_function_forms(rng):
    a, b = randn(rng, 3, 4), randn(rng, 4, 2)
    _both(lambda x, y: fc.matmul(x, y), lambda x, y: x @ y, torch.matmul, [a, b], rng, "matmul")
    _both(lambda x, y: fc.mm(x, y), lambda x, y: x @ y, torch.mm, [a, b], rng, "mm")
    _both(lambda x, y: fc.add(x, y, alpha=2), lambda x, y: x + 2 * y,
          lambda x, y: torch.add(x, y, alpha=2), [a, randn(rng, 4)], rng, "add")
    _both(lambda x, y: fc.div(x, y), lambda x, y: x / y, torch.div,
          [a, _positive(rng, 4)], rng, "div")


# ----------------------------------------------------------------------------- reductions


@pytest.mark.parametrize("dim, keepdim, unbiased", [(None, False, True), (1, False, True),
                                                    (0, True, False), ((0, 2), False, True)])
def test_var_std(dim, keepdim, unbiased, rng):
    x = randn(rng, 3, 4, 5)
    corr = 1 if unbiased else 0
    _both(lambda t: t.var(dim, unbiased=unbiased, keepdim=keepdim),
          lambda a: ref.var(a, dim, corr, keepdim),
          lambda t: t.var(dim, unbiased=unbiased, keepdim=keepdim), [x], rng, "var")
    _both(lambda t: fc.std(t, dim, keepdim=keepdim, correction=corr),
          lambda a: ref.std(a, dim, corr, keepdim),
          lambda t: torch.std(t, dim, keepdim=keepdim, correction=corr), [x], rng, "std")


@pytest.mark.parametrize("p", [2, 1, 3, float("inf"), "fro"])
@pytest.mark.parametrize("dim", [None, 1])
def test_norm(p, dim, rng):
    x = distinct(rng, 3, 4)
    x[np.abs(x) < 0.01] = 0.05
    ref_p = 2 if p == "fro" else p
    _both(lambda t: t.norm(p, dim), lambda a: ref.norm(a, ref_p, dim),
          lambda t: torch.linalg.vector_norm(t, ref_p, dim), [x], rng, f"norm p={p}")


@pytest.mark.parametrize("dim, keepdim", [(0, False), (1, True), (-1, False)])
def test_max_min_along_dim_return_values_and_indices(dim, keepdim, rng):
    x = distinct(rng, 3, 4)
    for name in ("max", "min"):
        got = getattr(fc, name)(fc.tensor(x), dim, keepdim)
        want = getattr(torch, name)(torch.tensor(x), dim, keepdim)
        assert type(got).__name__ == name and got._fields == ("values", "indices")
        _, indices = got
        np.testing.assert_array_equal(indices.numpy(), want.indices.numpy())
        assert indices.dtype == fc.int64
        _both(lambda t, n=name: getattr(t, n)(dim, keepdim).values,
              lambda a, n=name: (a.max if n == "max" else a.min)(axis=dim, keepdims=keepdim),
              lambda t, n=name: getattr(t, n)(dim, keepdim).values, [x], rng, f"{name}(dim)")


def test_full_max_min_and_arg_reductions(rng):
    x = distinct(rng, 4, 5)
    _both(lambda t: t.max(), lambda a: a.max(), lambda t: t.max(), [x], rng, "max()")
    _both(lambda t: fc.min(t), lambda a: a.min(), torch.min, [x], rng, "min()")
    _both(lambda t: fc.amax(t, 1), lambda a: a.max(1), lambda t: torch.amax(t, 1), [x], rng,
          "amax")
    tx = torch.tensor(x)
    assert fc.argmin(fc.tensor(x), 1).numpy().tolist() == tx.argmin(1).tolist()
    assert fc.tensor(x).argmax().item() == tx.argmax().item()
    # ties share the gradient of a full max, as in PyTorch
    t = fc.tensor([1.0, 3.0, 3.0], requires_grad=True)
    t.max().backward()
    np.testing.assert_allclose(t.grad.numpy(), [0, 0.5, 0.5])


@pytest.mark.parametrize("largest", [True, False])
def test_topk_and_sort(largest, rng):
    x = distinct(rng, 3, 6)
    tx = torch.tensor(x)
    v, i = fc.tensor(x).topk(3, dim=1, largest=largest)
    tv, ti = tx.topk(3, dim=1, largest=largest)
    np.testing.assert_array_equal(i.numpy(), ti.numpy())
    assert_close(v.numpy(), tv.numpy(), name="topk values")
    _both(lambda t: t.topk(2, 0, largest).values, lambda a: ref.topk_values(a, 2, 0, largest),
          lambda t: t.topk(2, 0, largest).values, [x], rng, "topk")
    s = fc.sort(fc.tensor(x), dim=0, descending=largest)
    ts = torch.sort(tx, dim=0, descending=largest)
    np.testing.assert_array_equal(s.indices.numpy(), ts.indices.numpy())
    assert type(s).__name__ == "sort"
    _both(lambda t: t.sort(-1, largest).values, lambda a: ref.sort_values(a, -1, largest),
          lambda t: t.sort(-1, largest).values, [x], rng, "sort")
    np.testing.assert_array_equal(fc.tensor(x).argsort(1).numpy(), tx.argsort(1).numpy())
    with pytest.raises(RuntimeError, match="selected index k out of range"):
        fc.tensor(x).topk(7)


def test_any_all_sum_mean(rng):
    m = rng.random((3, 4)) > 0.5
    tm = torch.tensor(m)
    for dim in (None, 0, 1):
        for name in ("any", "all"):
            got = getattr(fc.tensor(m), name)() if dim is None else getattr(fc.tensor(m), name)(dim)
            want = getattr(tm, name)() if dim is None else getattr(tm, name)(dim)
            np.testing.assert_array_equal(got.numpy(), want.numpy())
            assert got.dtype == fc.bool
    x = randn(rng, 3, 4)
    _both(lambda t: fc.sum(t, 1, keepdim=True), lambda a: a.sum(1, keepdims=True),
          lambda t: torch.sum(t, 1, keepdim=True), [x], rng, "fc.sum")
    _both(lambda t: fc.mean(t, (0, 1)), lambda a: a.mean((0, 1)),
          lambda t: torch.mean(t, (0, 1)), [x], rng, "fc.mean")
    assert fc.tensor(m).sum().dtype == fc.int64


# ----------------------------------------------------------------------------- shape ops

SHAPE_OPS = [
    ("squeeze", lambda t: t.squeeze(), lambda a: a.squeeze(), lambda t: t.squeeze()),
    ("squeeze(dim)", lambda t: t.squeeze(1), lambda a: a.squeeze(1), lambda t: t.squeeze(1)),
    ("squeeze(no-op dim)", lambda t: t.squeeze(0), lambda a: a, lambda t: t.squeeze(0)),
    ("unsqueeze", lambda t: t.unsqueeze(-1), lambda a: a[..., None], lambda t: t.unsqueeze(-1)),
    ("expand", lambda t: t.expand(2, 3, 4, 5), lambda a: ref.expand(a, (2, 3, 4, 5)),
     lambda t: t.expand(2, 3, 4, 5)),
    ("expand(-1)", lambda t: t.expand(-1, 4, -1), lambda a: ref.expand(a, (3, 4, 5)),
     lambda t: t.expand(-1, 4, -1)),
    ("repeat", lambda t: t.repeat(2, 1, 3), lambda a: ref.repeat(a, (2, 1, 3)),
     lambda t: t.repeat(2, 1, 3)),
    ("repeat(extra dims)", lambda t: t.repeat(2, 2, 1, 1), lambda a: ref.repeat(a, (2, 2, 1, 1)),
     lambda t: t.repeat(2, 2, 1, 1)),
    ("flip", lambda t: t.flip(0, 2), lambda a: ref.flip(a, (0, 2)), lambda t: t.flip(0, 2)),
    ("fc.flip", lambda t: fc.flip(t, [-1]), lambda a: ref.flip(a, (-1,)),
     lambda t: torch.flip(t, [-1])),
    ("clone", lambda t: t.clone(), lambda a: a.copy(), lambda t: t.clone()),
    ("t", lambda t: t[0].t(), lambda a: a[0].T, lambda t: t[0].t()),
    ("transpose+contiguous+view",
     lambda t: t.transpose(0, 2).contiguous().view(-1, 3),
     lambda a: a.transpose(2, 1, 0).reshape(-1, 3),
     lambda t: t.transpose(0, 2).contiguous().view(-1, 3)),
    ("fc.flatten", lambda t: fc.flatten(t, 1), lambda a: a.reshape(3, -1),
     lambda t: torch.flatten(t, 1)),
]


@pytest.mark.parametrize("name, fc_fn, ref_fn, torch_fn", SHAPE_OPS,
                         ids=[s[0] for s in SHAPE_OPS])
def test_shape_ops(name, fc_fn, ref_fn, torch_fn, rng):
    x = randn(rng, 3, 1, 5)
    _both(fc_fn, ref_fn, torch_fn, [x], rng, name)


@pytest.mark.parametrize("how", ["chunk3", "chunk4", "split2", "split_sizes", "unbind"])
def test_chunk_split_unbind(how, rng):
    x = randn(rng, 7, 3)
    calls = {
        "chunk3": (lambda t: t.chunk(3), lambda t: t.chunk(3)),
        "chunk4": (lambda t: fc.chunk(t, 4, dim=0), lambda t: torch.chunk(t, 4, dim=0)),
        "split2": (lambda t: t.split(2), lambda t: t.split(2)),
        "split_sizes": (lambda t: fc.split(t, [1, 2], dim=1), lambda t: torch.split(t, [1, 2], 1)),
        "unbind": (lambda t: t.unbind(1), lambda t: t.unbind(1)),
    }
    fc_fn, torch_fn = calls[how]
    pieces, want = fc_fn(fc.tensor(x)), torch_fn(torch.tensor(x))
    assert [p.shape for p in pieces] == [tuple(w.shape) for w in want]
    weights = [randn(rng, *p.shape) for p in pieces]

    def combine(t, pieces_fn, weight_fn):
        return sum((p * w).sum() for p, w in zip(pieces_fn(t), weight_fn))

    check_vs_torch(lambda t: combine(t, fc_fn, [fc.tensor(w) for w in weights]),
                   lambda t: combine(t, torch_fn, [torch.tensor(w, dtype=torch.float64)
                                                   for w in weights]), [x], rng=rng, name=how)


def test_stack_and_cat(rng):
    a, b = randn(rng, 2, 3), randn(rng, 2, 3)
    for dim in (0, 1, -1):
        _both(lambda x, y, d=dim: fc.stack([x, y], d), lambda x, y, d=dim: ref.stack([x, y], d),
              lambda x, y, d=dim: torch.stack([x, y], d), [a, b], rng, f"stack dim={dim}")
    _both(lambda x, y: fc.cat((x, y), 1), lambda x, y: np.concatenate([x, y], 1),
          lambda x, y: torch.cat((x, y), 1), [a, randn(rng, 2, 4)], rng, "cat")
    with pytest.raises(RuntimeError, match="stack expects each tensor to be equal size"):
        fc.stack([fc.ones(2), fc.ones(3)])


def test_dims_as_torch_accepts_them(rng):
    """Negative dims, NumPy and 0-d tensor dims, dim lists and the 0-d tensor's dim 0 / -1
    give torch's results (the range checks refuse only what torch refuses)."""
    x = randn(rng, 2, 3, 4)
    calls = [
        lambda m, t: t.sum(np.int64(-1)), lambda m, t: t.sum(m.tensor(1)),
        lambda m, t: t.mean([0, -1]), lambda m, t: t.amax((-3, 2)),
        lambda m, t: t.argmax(-1, keepdim=True), lambda m, t: t.argmin(np.int64(1)),
        lambda m, t: (t > 0).all((0, 1)), lambda m, t: (t > 0).any(-1, keepdim=True),
        lambda m, t: t.count_nonzero([0, 2]), lambda m, t: t.transpose(-1, -3),
        lambda m, t: t.permute(-1, 0, 1), lambda m, t: t.permute([2, 1, 0]),
        lambda m, t: m.tensor(t.size(-3)), lambda m, t: m.tensor(t.size(np.int64(1))),
        lambda m, t: m.cat([t, t], np.int64(-1)), lambda m, t: m.stack([t, t], -4),
        lambda m, t: m.stack([t[0, 0, 0], t[0, 0, 1]], -1), lambda m, t: t.reshape(-1, 4),
        lambda m, t: m.nn.functional.glu(t, -1), lambda m, t: t[0, 0, 0].sum(-1),
        lambda m, t: t[0, 0, 0].argmax(0), lambda m, t: t[0, 0, 0].all(-1),
        lambda m, t: t[0, 0, 0].count_nonzero(0), lambda m, t: t[0, 0, 0].transpose(0, -1),
        lambda m, t: t[0, 0, 0].max(0).values,
        lambda m, t: m.zeros(0, 3).max(1).values, lambda m, t: m.zeros(0, 3).argmin(1),
        lambda m, t: m.zeros(0, 3).aminmax(dim=1).max, lambda m, t: t + t[:, :1],
        lambda m, t: t[:, :1] * t[0], lambda m, t: m.ones(2, 1, 3, 4) @ m.ones(5, 4, 2),
    ]
    for i, call in enumerate(calls):
        got, want = call(fc, fc.tensor(x)), call(torch, torch.tensor(x))
        assert got.shape == tuple(want.shape), i
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, err_msg=str(i))
    for args in [(5,), (0,), (3, 3), (5, 0, -1), (0.0, 1.0, 0.25), (1, -2, -0.5)]:
        np.testing.assert_allclose(fc.arange(*args).numpy(), torch.arange(*args).numpy(),
                                   rtol=1e-6, err_msg=str(args))


def test_view_needs_compatible_strides_like_torch(rng):
    x = randn(rng, 2, 3, 4)
    t, tt = fc.tensor(x), torch.tensor(x)
    cases = [
        (lambda a: a.transpose(0, 1), (6, 4)), (lambda a: a.transpose(1, 2), (2, 12)),
        (lambda a: a.transpose(1, 2), (-1,)), (lambda a: a.permute(2, 0, 1), (4, 6)),
        (lambda a: a.permute(2, 0, 1), (2, 2, 6)), (lambda a: a[:, 1:], (2, 8)),
        (lambda a: a[:, 1:], (4, 4)), (lambda a: a[..., ::2], (12,)),
        (lambda a: a.expand(3, 2, 3, 4), (6, 12)), (lambda a: a.expand(3, 2, 3, 4), (3, 24)),
        (lambda a: a, (4, 6)),
    ]
    for make, shape in cases:
        src, tsrc = make(t), make(tt)
        assert src.is_contiguous() == tsrc.is_contiguous(), shape
        try:
            want = tsrc.view(*shape)
        except RuntimeError:
            with pytest.raises(RuntimeError, match=re.escape(
                    "view size is not compatible with input tensor's size and stride")):
                src.view(*shape)
            np.testing.assert_array_equal(src.reshape(*shape).numpy(),
                                          tsrc.reshape(*shape).numpy())
            continue
        got = src.view(*shape)
        np.testing.assert_array_equal(got.numpy(), want.numpy())
        assert got.is_contiguous() == want.is_contiguous(), shape
    with pytest.raises(RuntimeError, match="only one dimension can be inferred"):
        t.view(-1, -1)
    with pytest.raises(RuntimeError, match="is invalid for input of size 24"):
        t.view(5, 5)
    with pytest.raises(RuntimeError, match="expanded size"):
        t.expand(3, 3, 4)


# ----------------------------------------------------------------------------- in-place


def test_random_fills_in_place():
    """``w.normal_(mean, std)`` / ``w.uniform_(a, b)`` as in ``with torch.no_grad():
    m.weight.normal_(0, 0.01)``: same tensor, the right distribution, seeded, and refused
    on a leaf that requires grad outside no_grad (torch's error)."""
    w = fc.nn.Linear(300, 300).weight
    with fc.no_grad():
        assert w.normal_(0.5, 0.01) is w
    a = w.detach().numpy()
    assert abs(a.mean() - 0.5) < 1e-3 and abs(a.std() - 0.01) < 1e-3
    with fc.no_grad():
        w.uniform_(-2, -1)
    a = w.detach().numpy()
    assert a.min() >= -2 and a.max() < -1 and a.std() > 0.2
    fc.manual_seed(3)
    first = fc.empty(5).normal_().numpy()
    fc.manual_seed(3)
    np.testing.assert_array_equal(fc.empty(5).normal_().numpy(), first)
    g = fc.Generator().manual_seed(1)
    u = fc.zeros(4).uniform_(**{"from": 2.0, "to": 3.0}, generator=g)
    np.testing.assert_array_equal(u.numpy(), fc.zeros(4).uniform_(
        2.0, 3.0, generator=fc.Generator().manual_seed(1)).numpy())
    for lib in (fc, torch):
        with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
            lib.ones(2, requires_grad=True).normal_()
    with pytest.raises(RuntimeError, match="floating-point"):
        fc.zeros(2, dtype=fc.int64).normal_()


def test_inplace_values_match_torch(rng):
    x, y = randn(rng, 3, 4), randn(rng, 4)
    ops = [
        ("add_", lambda a: a.add_(fc.tensor(y), alpha=2),
         lambda a: a.add_(torch.tensor(y), alpha=2)),
        ("sub_", lambda a: a.sub_(0.5), lambda a: a.sub_(0.5)),
        ("mul_", lambda a: a.mul_(fc.tensor(y)), lambda a: a.mul_(torch.tensor(y))),
        ("div_", lambda a: a.div_(3.0), lambda a: a.div_(3.0)),
        ("zero_", lambda a: a.zero_(), lambda a: a.zero_()),
        ("fill_", lambda a: a.fill_(2.5), lambda a: a.fill_(2.5)),
        ("copy_", lambda a: a.copy_(fc.tensor(y)), lambda a: a.copy_(torch.tensor(y))),
        ("clamp_", lambda a: a.clamp_(-0.3, 0.4), lambda a: a.clamp_(-0.3, 0.4)),
        ("setitem", lambda a: a.__setitem__((slice(None), 1), 7.0),
         lambda a: a.__setitem__((slice(None), 1), 7.0)),
        ("setitem row", lambda a: a.__setitem__(0, fc.tensor(y)),
         lambda a: a.__setitem__(0, torch.tensor(y))),
    ]
    for name, fc_op, torch_op in ops:
        a, ta = fc.tensor(x), torch.tensor(x)
        data = a.data
        out = fc_op(a)
        torch_op(ta)
        assert out is None or out is a, name
        assert a.data is data, f"{name} must write into the same array"
        assert_close(a.numpy(), ta.numpy(), name=name)


def test_inplace_on_a_leaf_that_requires_grad_raises_torch_error(rng):
    w = fc.tensor(randn(rng, 3), requires_grad=True)
    for op in (lambda: w.add_(1), lambda: w.mul_(2.0), lambda: w.zero_(), lambda: w.fill_(1),
               lambda: w.clamp_(0, 1), lambda: w.copy_(fc.ones(3)), lambda: w.div_(2),
               lambda: w.sub_(1)):
        with pytest.raises(RuntimeError, match=re.escape(
                "a leaf Variable that requires grad is being used in an in-place operation.")):
            op()
    with pytest.raises(RuntimeError, match=re.escape(
            "a view of a leaf Variable that requires grad is being used in an in-place "
            "operation.")):
        w[0] = 1.0
    before = w.detach().numpy().copy()
    with fc.no_grad():
        w.add_(1.0)
        w[0] = 5.0
    assert w.is_leaf and w.requires_grad
    assert_close(w.detach().numpy(), np.r_[5.0, before[1:] + 1.0], name="no_grad update")


def test_inplace_on_non_leaf_is_differentiable_like_torch(rng):
    x, y = randn(rng, 3, 4), randn(rng, 4)

    def fc_fn(a, b):
        h = a * 2.0
        h.mul_(b)
        h.add_(b, alpha=0.5)
        h.clamp_(-1.0, 1.5)
        h[1] = b * 3.0
        return h.sigmoid()

    def torch_fn(a, b):
        h = a * 2.0
        h.mul_(b)
        h.add_(b, alpha=0.5)
        h.clamp_(-1.0, 1.5)
        h[1] = b * 3.0
        return h.sigmoid()

    check_vs_torch(fc_fn, torch_fn, [x, y], rng=rng, name="in-place chain")
    check_op(lambda a, b: fc_fn(a, b),
             lambda a, b: ref.sigmoid(ref.setitem(ref.clamp(2 * a * b + 0.5 * b, -1, 1.5),
                                                  3 * b, 1)),
             [x, y], rng=rng, name="in-place chain vs reference")


def test_changing_a_saved_tensor_in_place_fails_backward(rng):
    w = fc.tensor(randn(rng, 3), requires_grad=True)
    c = fc.tensor(randn(rng, 3))
    y = (w * c).sum()
    c.mul_(2.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


# ----------------------------------------------------------------------------- hooks


def test_register_hook_on_leaf_and_intermediate(rng):
    x = randn(rng, 3)
    seen = {}
    a = fc.tensor(x, requires_grad=True)
    h = a * 3.0
    h.retain_grad()
    handle = h.register_hook(lambda g: seen.setdefault("h", g.numpy().copy()))
    a.register_hook(lambda g: g * 2.0)  # doubles the leaf's gradient
    (h * h).sum().backward()
    assert_close(seen["h"], 2 * 3.0 * x, name="hook sees dL/dh")
    assert_close(h.grad.numpy(), 2 * 3.0 * x, name="retain_grad")
    assert_close(a.grad.numpy(), 2 * (2 * 9.0 * x), name="hook-replaced leaf grad")
    handle.remove()
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        fc.ones(2).register_hook(lambda g: g)


# ----------------------------------------------------------------------------- Module


def test_module_device_and_dtype_methods(rng):
    net = fc.nn.Sequential(fc.nn.Linear(4, 3), fc.nn.ReLU())
    params = list(net.parameters())
    assert net.to("cpu") is net and net.cpu() is net and net.float() is net
    assert net.to(fc.device("cpu"), fc.float32) is net and net.to(dtype=fc.float32) is net
    assert net.to(fc.ones(1)) is net
    assert list(net.parameters()) == params and all(p.dtype == fc.float32 for p in params)
    with pytest.warns(fc.DtypeWarning, match="float64"):
        assert net.double() is net
    with pytest.warns(fc.DtypeWarning):
        net.to(fc.float64)
    assert all(p.dtype == fc.float32 for p in net.parameters())
    with pytest.raises(TypeError, match="only accepts floating point"):
        net.to(fc.int64)
    if not fc.cuda.is_available():
        with pytest.raises((ImportError, RuntimeError)):
            net.cuda()


def test_augmented_assignment_is_in_place_as_in_torch(rng):
    torch = pytest.importorskip("torch")
    from fastconv import nn

    w = rng.standard_normal((2, 3)).astype(np.float32)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    ours, theirs = nn.Linear(3, 2), torch.nn.Linear(3, 2)
    ours.load_state_dict({"weight": w, "bias": np.zeros(2, np.float32)})
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(w))
        theirs.bias.zero_()
    ours(fc.tensor(x)).square().sum().backward()
    theirs(torch.from_numpy(x)).square().sum().backward()
    held = ours.weight
    with fc.no_grad():  # the manual SGD step of many tutorials
        for p in ours.parameters():
            p -= 0.1 * p.grad
    with torch.no_grad():
        for p in theirs.parameters():
            p -= 0.1 * p.grad
    assert ours.weight is held  # the model's parameter itself changed
    np.testing.assert_allclose(ours.weight.detach().numpy(), theirs.weight.detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    a = fc.tensor(x)
    view_of_data = a.data
    a *= 2.0
    a /= 4.0
    a += 1.0
    np.testing.assert_allclose(view_of_data, x / 2 + 1, rtol=1e-6)  # same memory
    with pytest.raises(RuntimeError, match="leaf Variable"):
        p = nn.Parameter(fc.tensor(x))
        p += 1.0
    with pytest.raises(RuntimeError, match="doesn't match the broadcast shape"):
        b = fc.tensor(x[0])
        b += fc.tensor(x)
