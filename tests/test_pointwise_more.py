"""More of PyTorch's elementwise math: the trigonometric and hyperbolic functions and their
numpy-style aliases, angle conversions, exp2, sign bits and infinities, nan_to_num, frexp,
ldexp, float_power, and the two-argument functions (atan2, hypot, logaddexp, logaddexp2,
copysign, heaviside, fmax, fmin, gcd, lcm).

Each op is checked as a Tensor method, a top-level function and (where torch has one) an
in-place method, forward and backward against torch (float64 autograd) on fresh random
inputs, with broadcasting, integer inputs where torch accepts them (the result dtype as
torch's), and torch's exception types for the arguments torch refuses.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close, check_devices, check_vs_torch, distinct, randn

import fastconv as fc

torch = pytest.importorskip("torch")


def _uniform(rng, lo, hi, *shape):
    return rng.uniform(lo, hi, size=shape).astype(np.float32)


def _dtype_name(t):
    return str(t.dtype).replace("torch.", "")


def _same(got, want):
    """Equal values (NaN where torch has NaN) and the same dtype."""
    __tracebackhide__ = True
    assert str(got.dtype) == _dtype_name(want), f"dtype {got.dtype}, torch's {want.dtype}"
    np.testing.assert_array_equal(np.asarray(got.numpy()), want.numpy())


# ----------------------------------------------------------------------------- unary, floating

# name, input sampler (inside the function's domain), numpy-style alias
UNARY = [
    ("tan", lambda rng, *s: _uniform(rng, -1.2, 1.2, *s), None),
    ("asin", lambda rng, *s: _uniform(rng, -0.9, 0.9, *s), "arcsin"),
    ("acos", lambda rng, *s: _uniform(rng, -0.9, 0.9, *s), "arccos"),
    ("atan", lambda rng, *s: randn(rng, *s) * 2, "arctan"),
    ("sinh", lambda rng, *s: randn(rng, *s), None),
    ("cosh", lambda rng, *s: randn(rng, *s), None),
    ("asinh", lambda rng, *s: randn(rng, *s) * 2, "arcsinh"),
    ("acosh", lambda rng, *s: 1.1 + np.abs(randn(rng, *s)) * 2, "arccosh"),
    ("atanh", lambda rng, *s: _uniform(rng, -0.9, 0.9, *s), "arctanh"),
    ("deg2rad", lambda rng, *s: randn(rng, *s) * 90, None),
    ("rad2deg", lambda rng, *s: randn(rng, *s), None),
    ("exp2", lambda rng, *s: randn(rng, *s) * 2, None),
]


@pytest.mark.parametrize("name, sample, alias", UNARY, ids=[u[0] for u in UNARY])
def test_unary_forward_backward_and_forms(name, sample, alias, rng):
    x = sample(rng, 3, 4)
    check_vs_torch(lambda t: getattr(t, name)(), lambda t: getattr(t, name)(), [x], rng=rng,
                   name=name)
    check_vs_torch(lambda t: getattr(fc, name)(t), lambda t: getattr(torch, name)(t), [x],
                   rng=rng, name=f"fc.{name}")
    for form in [alias] if alias else []:
        check_vs_torch(lambda t: getattr(fc, form)(t) * getattr(t, form)(),
                       lambda t: getattr(torch, form)(t) * getattr(t, form)(), [x], rng=rng,
                       name=form)
    y = fc.tensor(x.copy())
    assert getattr(y, name + "_")() is y
    assert_close(y, getattr(torch.tensor(x), name)())
    if alias:
        z = fc.tensor(x.copy())
        getattr(z, alias + "_")()
        assert_close(z, y)
    empty = getattr(fc, name)(fc.zeros(0, 3))
    assert empty.shape == (0, 3) and empty.dtype == fc.float32


@pytest.mark.parametrize("name", [u[0] for u in UNARY])
def test_unary_integer_input_becomes_float32(name, rng):
    ints = rng.integers(-3, 4, size=(2, 5))
    if name == "acosh":
        ints = np.abs(ints) + 1
    elif name in ("asin", "acos", "atanh"):
        ints = rng.integers(-1, 2, size=(2, 5))
    got, want = getattr(fc, name)(fc.tensor(ints)), getattr(torch, name)(torch.tensor(ints))
    assert got.dtype == fc.float32 and want.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-6)
    bools = fc.tensor(ints > 0)
    np.testing.assert_allclose(getattr(bools, name)().numpy(),
                               getattr(torch.tensor(ints > 0), name)().numpy(), rtol=1e-6)
    with pytest.raises(RuntimeError, match="can't be cast"):  # float result into an int tensor
        getattr(fc.tensor(ints), name + "_")()


def test_outside_the_domain_gives_nan_as_torch():
    x = np.array([2.0, -1.5, 0.5], np.float32)
    for name in ("asin", "acos", "acosh", "atanh"):
        got, want = getattr(fc, name)(fc.tensor(x)), getattr(torch, name)(torch.tensor(x))
        np.testing.assert_array_equal(np.isnan(got.numpy()), np.isnan(want.numpy()))
    assert float(fc.atanh(fc.tensor([1.0]))[0]) == float("inf")


def test_tensor_methods_record_a_graph_through_chains(rng):
    x = _uniform(rng, 0.2, 0.8, 4, 3)
    check_vs_torch(lambda t: t.asin().cosh() + t.tan().atan() * fc.exp2(t),
                   lambda t: t.asin().cosh() + t.tan().atan() * torch.exp2(t), [x], rng=rng,
                   name="chain")


# ----------------------------------------------------------------------------- sign, infinities

def test_sgn_absolute_negative_fix(rng):
    x = randn(rng, 3, 4) * 3
    for name in ("sgn", "absolute", "negative", "fix"):
        check_vs_torch(lambda t, n=name: getattr(t, n)() * t, lambda t, n=name: getattr(t, n)() * t,
                       [x], rng=rng, name=name)
        # (+ t: torch's gradient of sgn alone is a ZeroTensor, which has no numpy())
        check_vs_torch(lambda t, n=name: getattr(fc, n)(t) + t,
                       lambda t, n=name: getattr(torch, n)(t) + t, [x], rng=rng,
                       name=f"fc.{name}")
        y = fc.tensor(x.copy())
        getattr(y, name + "_")()
        assert_close(y, getattr(torch.tensor(x), name)())
        ints = rng.integers(-5, 6, size=(7,))
        _same(getattr(fc, name)(fc.tensor(ints)), getattr(torch, name)(torch.tensor(ints)))
        yi = fc.tensor(ints.copy())
        getattr(yi, name + "_")()
        _same(yi, getattr(torch.tensor(ints), name)())
    b = np.array([True, False])
    _same(fc.sgn(fc.tensor(b)), torch.sgn(torch.tensor(b)))
    for name, exc in (("absolute", NotImplementedError), ("negative", RuntimeError),
                      ("fix", NotImplementedError), ("trunc", NotImplementedError),
                      ("floor", NotImplementedError)):
        with pytest.raises(exc):
            getattr(torch, name)(torch.tensor(b))
        with pytest.raises(exc, match="Bool|bool"):
            getattr(fc, name)(fc.tensor(b))


SPECIAL = np.array([-0.0, 0.0, 1.5, -2.0, np.inf, -np.inf, np.nan, -np.nan], np.float32)


@pytest.mark.parametrize("name", ["signbit", "isposinf", "isneginf", "isreal"])
def test_bool_valued_checks(name, rng):
    for data in (SPECIAL, randn(rng, 2, 3), rng.integers(-3, 3, size=(4,)),
                 np.array([True, False]), np.zeros((0, 2), np.float32)):
        _same(getattr(fc, name)(fc.tensor(data)), getattr(torch, name)(torch.tensor(data)))
        _same(getattr(fc.tensor(data), name)(), getattr(torch.tensor(data), name)())
    x = fc.tensor(randn(rng, 3), requires_grad=True)
    assert not getattr(x, name)().requires_grad
    assert not hasattr(fc.Tensor, name + "_") and not hasattr(torch.Tensor, name + "_")


def test_nan_to_num_defaults_arguments_and_gradient(rng):
    x = np.concatenate([SPECIAL, randn(rng, 4)])
    _same(fc.nan_to_num(fc.tensor(x)), torch.nan_to_num(torch.tensor(x)))
    for kw in ({"nan": 1.5}, {"posinf": 7.0}, {"neginf": -7}, {"nan": -1.0, "posinf": 2.0,
                                                               "neginf": -3.0}):
        _same(fc.tensor(x).nan_to_num(**kw), torch.tensor(x).nan_to_num(**kw))
        y = fc.tensor(x.copy())
        assert y.nan_to_num_(**kw) is y
        _same(y, torch.tensor(x).nan_to_num(**kw))
    # the gradient is zero where the input was replaced
    check_vs_torch(lambda t: fc.nan_to_num(t, nan=0.5, posinf=2.0, neginf=-3.0) * 2,
                   lambda t: torch.nan_to_num(t, nan=0.5, posinf=2.0, neginf=-3.0) * 2,
                   [x.reshape(3, 4)], rng=rng, name="nan_to_num")
    ints = rng.integers(-5, 5, size=(6,))
    _same(fc.nan_to_num(fc.tensor(ints), nan=3.0), torch.nan_to_num(torch.tensor(ints), nan=3.0))
    with pytest.raises(TypeError):
        torch.nan_to_num(torch.tensor(x), nan="zero")
    with pytest.raises(TypeError, match="nan"):
        fc.nan_to_num(fc.tensor(x), nan="zero")


def test_frexp_values_dtypes_and_gradient(rng):
    x = np.concatenate([randn(rng, 10) * 100, np.array([0.0, -0.0, 1.0, 0.5, 1e-30], np.float32)])
    got, want = fc.frexp(fc.tensor(x)), torch.frexp(torch.tensor(x))
    _same(got.mantissa, want.mantissa)
    _same(got.exponent, want.exponent)
    m, e = fc.tensor(x).frexp()
    assert e.dtype == fc.int32
    assert_close(fc.ldexp(m, e), x)
    check_vs_torch(lambda t: t.frexp().mantissa, lambda t: t.frexp().mantissa,
                   [randn(rng, 3, 4) * 10], rng=rng, name="frexp")
    with pytest.raises(RuntimeError):
        torch.frexp(torch.tensor([1, 2]))
    with pytest.raises(RuntimeError, match="floating-point"):
        fc.frexp(fc.tensor([1, 2]))
    assert not hasattr(fc.Tensor, "frexp_") and not hasattr(torch.Tensor, "frexp_")


# ----------------------------------------------------------------------------- two arguments

# name, sampler for (a, b), integers allowed (torch's result dtype checked), alias
BINARY = [
    ("atan2", lambda rng, sa, sb: (randn(rng, *sa), randn(rng, *sb)), True, "arctan2"),
    ("hypot", lambda rng, sa, sb: (randn(rng, *sa), randn(rng, *sb)), False, None),
    ("logaddexp", lambda rng, sa, sb: (randn(rng, *sa) * 3, randn(rng, *sb) * 3), False, None),
    ("logaddexp2", lambda rng, sa, sb: (randn(rng, *sa) * 3, randn(rng, *sb) * 3), False, None),
    ("copysign", lambda rng, sa, sb: (randn(rng, *sa), randn(rng, *sb)), True, None),
    ("ldexp", lambda rng, sa, sb: (randn(rng, *sa), randn(rng, *sb)), True, None),
    ("float_power", lambda rng, sa, sb: (np.abs(randn(rng, *sa)) + 0.5, randn(rng, *sb)), True,
     None),
    ("fmax", lambda rng, sa, sb: (randn(rng, *sa), randn(rng, *sb)), True, None),
    ("fmin", lambda rng, sa, sb: (randn(rng, *sa), randn(rng, *sb)), True, None),
]
SHAPES = [((3, 4), (3, 4)), ((3, 1), (4,)), ((2, 1, 3), (1, 4, 1)), ((3, 4), ())]


@pytest.mark.parametrize("shapes", SHAPES, ids=[f"{a}x{b}" for a, b in SHAPES])
@pytest.mark.parametrize("name, sample, ints, alias", BINARY, ids=[b[0] for b in BINARY])
def test_binary_forward_backward_broadcasting(name, sample, ints, alias, shapes, rng):
    a, b = sample(rng, *shapes)
    check_vs_torch(lambda x, y: getattr(x, name)(y), lambda x, y: getattr(x, name)(y), [a, b],
                   rng=rng, name=name)
    check_vs_torch(lambda x, y: getattr(fc, name)(y, x), lambda x, y: getattr(torch, name)(y, x),
                   [b, a] if name != "float_power" else [a, np.abs(b) + 0.5], rng=rng,
                   name=f"fc.{name} swapped")
    if alias:
        check_vs_torch(lambda x, y: getattr(fc, alias)(x, y),
                       lambda x, y: getattr(torch, alias)(x, y), [a, b], rng=rng, name=alias)


@pytest.mark.parametrize("name, sample, ints, alias", BINARY, ids=[b[0] for b in BINARY])
def test_binary_in_place_and_integer_inputs(name, sample, ints, alias, rng):
    a, b = sample(rng, (3, 4), (4,))
    if hasattr(torch.Tensor, name + "_"):
        y = fc.tensor(a.copy())
        assert getattr(y, name + "_")(fc.tensor(b)) is y
        want = getattr(torch.tensor(a), name)(torch.tensor(b))
        assert_close(y, want.float())
        w = fc.tensor(a, requires_grad=True)
        with pytest.raises(RuntimeError, match="leaf Variable"):
            getattr(w, name + "_")(fc.tensor(b))
        # in place on a non-leaf: recorded, gradients as torch's
        check_vs_torch(lambda x, z: getattr(x * 1, name + "_")(z),
                       lambda x, z: getattr(x * 1, name + "_")(z) if name != "float_power"
                       else getattr(x * 1, name)(z).to(x.dtype), [a, b], rng=rng,
                       name=f"{name}_")
    else:
        assert not hasattr(fc.Tensor, name + "_")
    i = rng.integers(1, 5, size=(3, 4))
    j = rng.integers(-3, 4, size=(4,))
    fi = fc.tensor(i)
    ti = torch.tensor(i)
    for other, tother in ((fc.tensor(j), torch.tensor(j)), (fc.tensor(j.astype(np.int32)),
                                                          torch.tensor(j.astype(np.int32))),
                          (fc.tensor(b), torch.tensor(b))):
        try:
            want = getattr(torch, name)(ti, tother)
        except (NotImplementedError, RuntimeError) as e:
            with pytest.raises(type(e)):
                getattr(fc, name)(fi, other)
            continue
        got = getattr(fc, name)(fi, other)
        if want.dtype == torch.float64:  # float_power: fastconv's result is float32
            assert name == "float_power" and got.dtype == fc.float32
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
        else:
            assert str(got.dtype) == _dtype_name(want), (name, got.dtype, want.dtype)
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-6)
    assert ints == (name not in ("hypot", "logaddexp", "logaddexp2"))


def test_binary_scalars_where_torch_takes_them(rng):
    x = randn(rng, 3, 4)
    check_vs_torch(lambda t: t.copysign(-1.0), lambda t: t.copysign(-1.0), [x], rng=rng,
                   name="copysign(number)")
    check_vs_torch(lambda t: fc.copysign(t, 2), lambda t: torch.copysign(t, 2), [x], rng=rng,
                   name="copysign(int)")
    p = np.abs(x) + 0.5
    check_vs_torch(lambda t: t.float_power(2), lambda t: t.float_power(2), [p], rng=rng,
                   name="float_power(2)")
    check_vs_torch(lambda t: t.float_power(-1.5), lambda t: t.float_power(-1.5), [p], rng=rng,
                   name="float_power(-1.5)")
    check_vs_torch(lambda t: fc.float_power(2.5, t), lambda t: torch.float_power(2.5, t), [x],
                   rng=rng, name="float_power(2.5, x)")
    check_vs_torch(lambda t: t.float_power(0), lambda t: t.float_power(0), [x], rng=rng,
                   name="float_power(0)")
    i = np.array([-3, 0, 4])
    _same(fc.copysign(fc.tensor(i), -1), torch.copysign(torch.tensor(i), -1))
    got = fc.float_power(fc.tensor(i), 2)
    assert got.dtype == fc.float32
    np.testing.assert_array_equal(got.numpy(), torch.float_power(torch.tensor(i), 2).numpy())


@pytest.mark.parametrize("name", ["atan2", "hypot", "logaddexp", "logaddexp2", "ldexp",
                                  "fmax", "fmin", "heaviside", "gcd"])
def test_binary_refuse_a_number_where_torch_does(name):
    with pytest.raises(TypeError):
        getattr(torch, name)(torch.tensor([1.0, 2.0]), 2.0)
    with pytest.raises(TypeError, match="must be Tensor"):
        getattr(fc, name)(fc.tensor([1.0, 2.0]), 2.0)
    with pytest.raises(TypeError, match="must be Tensor"):
        getattr(fc.tensor([1.0, 2.0]), name)(np.array([2.0, 3.0]))


def test_fmax_fmin_nan_and_ties():
    a = np.array([np.nan, 1.0, np.nan, 2.0, -1.0, 3.0], np.float32)
    b = np.array([2.0, np.nan, np.nan, 2.0, 0.5, -4.0], np.float32)
    for name in ("fmax", "fmin"):
        fa, fb = fc.tensor(a, requires_grad=True), fc.tensor(b, requires_grad=True)
        ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
        got, want = getattr(fc, name)(fa, fb), getattr(torch, name)(ta, tb)
        np.testing.assert_array_equal(got.detach().numpy(), want.detach().numpy())
        g = np.arange(1, 7, dtype=np.float32)
        got.backward(fc.tensor(g))
        want.backward(torch.tensor(g))
        np.testing.assert_array_equal(fa.grad.numpy(), ta.grad.numpy())  # ties: all to a
        np.testing.assert_array_equal(fb.grad.numpy(), tb.grad.numpy())
    i, j = np.array([1, -5, 7]), np.array([3, -6, 7])
    _same(fc.fmax(fc.tensor(i), fc.tensor(j)), torch.fmax(torch.tensor(i), torch.tensor(j)))
    _same(fc.tensor(i).fmin(fc.tensor(j.astype(np.int32))),
          torch.tensor(i).fmin(torch.tensor(j.astype(np.int32))))


def test_heaviside_values_dtypes_and_no_gradient(rng):
    x = np.array([-1.5, 0.0, -0.0, 2.0, np.nan], np.float32)
    v = np.array([0.25], np.float32)
    _same(fc.heaviside(fc.tensor(x), fc.tensor(v)), torch.heaviside(torch.tensor(x),
                                                                    torch.tensor(v)))
    vv = randn(rng, 5)
    _same(fc.tensor(x).heaviside(fc.tensor(vv)), torch.tensor(x).heaviside(torch.tensor(vv)))
    i = rng.integers(-2, 3, size=(3, 4))
    iv = rng.integers(5, 9, size=(4,))
    _same(fc.heaviside(fc.tensor(i), fc.tensor(iv)), torch.heaviside(torch.tensor(i),
                                                                     torch.tensor(iv)))
    y = fc.tensor(x.copy())
    y.heaviside_(fc.tensor(v))
    _same(y, torch.heaviside(torch.tensor(x), torch.tensor(v)))
    with pytest.raises(RuntimeError):
        torch.heaviside(torch.tensor(x), torch.tensor([1]))
    with pytest.raises(RuntimeError, match="different dtypes"):
        fc.heaviside(fc.tensor(x), fc.tensor([1]))
    t = torch.tensor(x[:4], requires_grad=True)
    f = fc.tensor(x[:4], requires_grad=True)
    with pytest.raises(RuntimeError, match="derivative for aten::heaviside is not implemented"):
        torch.heaviside(t, torch.tensor(v)).sum().backward()
    with pytest.raises(RuntimeError, match="derivative for aten::heaviside is not implemented"):
        fc.heaviside(f, fc.tensor(v)).sum().backward()


def test_gcd_lcm_integers(rng):
    a = rng.integers(-30, 31, size=(4, 5))
    b = rng.integers(-30, 31, size=(5,))
    a[0, 0], b[0] = 0, 0  # gcd(0, 0) = 0, lcm(0, 0) = 0
    for name in ("gcd", "lcm"):
        for x, y in ((a, b), (a.astype(np.int32), b), (a.astype(np.int16), b.astype(np.int8)),
                     (a.astype(np.uint8) % 30, b.astype(np.uint8) % 30)):
            _same(getattr(fc, name)(fc.tensor(x), fc.tensor(y)),
                  getattr(torch, name)(torch.tensor(x), torch.tensor(y)))
            _same(getattr(fc.tensor(x), name)(fc.tensor(y)),
                  getattr(torch.tensor(x), name)(torch.tensor(y)))
        z = fc.tensor(a.copy())
        getattr(z, name + "_")(fc.tensor(b))
        _same(z, getattr(torch, name)(torch.tensor(a), torch.tensor(b)))
        for bad in (np.array([1.0, 2.0], np.float32), np.array([True, False])):
            with pytest.raises(NotImplementedError):
                getattr(torch, name)(torch.tensor(bad), torch.tensor(bad))
            with pytest.raises(NotImplementedError, match="not implemented for"):
                getattr(fc, name)(fc.tensor(bad), fc.tensor(bad))


def test_integer_only_pairs_refused_where_torch_has_no_kernel():
    i = np.array([1, 2, 3])
    for name in ("hypot", "logaddexp", "logaddexp2"):
        with pytest.raises(NotImplementedError):
            getattr(torch, name)(torch.tensor(i), torch.tensor(i))
        with pytest.raises(NotImplementedError, match="'Long'"):
            getattr(fc, name)(fc.tensor(i), fc.tensor(i))


def test_ldexp_with_integer_exponents(rng):
    x = randn(rng, 3, 4)
    e = rng.integers(-4, 5, size=(4,))
    _same(fc.ldexp(fc.tensor(x), fc.tensor(e)), torch.ldexp(torch.tensor(x), torch.tensor(e)))
    # torch's gradient for an integer exponent tensor is pow(2, e) in integers (0 for e < 0);
    # fastconv's is 2.0 ** e, torch's gradient for the same exponent as floats
    check_vs_torch(lambda t: fc.ldexp(t, fc.tensor(e)),
                   lambda t: torch.ldexp(t, torch.tensor(e, dtype=torch.float64)), [x], rng=rng,
                   name="ldexp(int exponent)")
    y = fc.tensor(x.copy())
    y.ldexp_(fc.tensor(e))
    assert_close(y, torch.tensor(x).ldexp(torch.tensor(e)))


def test_binary_results_stay_on_graph_with_other_ops(rng):
    a, b = distinct(rng, 3, 4), randn(rng, 4)
    check_vs_torch(lambda x, y: (fc.fmax(x, y) + fc.hypot(x, y)).logaddexp(x * y),
                   lambda x, y: (torch.fmax(x, y) + torch.hypot(x, y)).logaddexp(x * y),
                   [a, b], rng=rng, name="binary chain")


@pytest.mark.gpu
def test_new_ops_on_the_gpu_match_the_cpu(rng):
    x = _uniform(rng, -0.9, 0.9, 3, 4)
    for name in [u[0] for u in UNARY] + ["sgn", "fix", "absolute", "negative"]:
        check_devices(lambda t, n=name: getattr(t, n)() * t, [x], rng=rng, name=name)
    check_devices(lambda t: t.frexp().mantissa, [x * 100], rng=rng, name="frexp")
    check_devices(lambda t: fc.nan_to_num(t.log()), [x], rng=rng, name="nan_to_num")
    for name, sample, _, _ in BINARY:
        a, b = sample(rng, (3, 1), (4,))
        check_devices(lambda p, q, n=name: getattr(p, n)(q), [a, b], rng=rng, name=name)
    i, j = rng.integers(-20, 20, size=(3, 4)), rng.integers(-20, 20, size=(4,))
    for name in ("gcd", "lcm", "fmax", "heaviside", "signbit", "isposinf"):
        args = (fc.tensor(j, device="cuda"),) if name not in ("signbit", "isposinf") else ()
        got = getattr(fc.tensor(i, device="cuda"), name)(*args)
        want = getattr(fc.tensor(i), name)(*(fc.tensor(j),) if args else ())
        np.testing.assert_array_equal(np.asarray(got.cpu().numpy()), want.numpy())


# ----------------------------------------------------------------------------- the names

NAMES = [u[0] for u in UNARY] + [u[2] for u in UNARY if u[2]] + [
    "absolute", "negative", "sgn", "signbit", "isposinf", "isneginf", "isreal", "nan_to_num",
    "float_power", "ldexp", "frexp", "fix", "clip", "atan2", "arctan2", "hypot", "logaddexp",
    "logaddexp2", "copysign", "heaviside", "fmax", "fmin", "gcd", "lcm"]


@pytest.mark.parametrize("name", NAMES)
def test_every_name_where_torch_has_it(name):
    """A top-level function, a Tensor method, and an in-place method exactly where torch has
    one; the top-level functions are exported in fastconv.__all__."""
    assert hasattr(torch, name) and callable(getattr(fc, name))
    assert name in fc.__all__
    assert hasattr(fc.Tensor, name)
    assert hasattr(fc.Tensor, name + "_") == hasattr(torch.Tensor, name + "_"), name
