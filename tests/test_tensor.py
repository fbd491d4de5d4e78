"""Tensor and the autograd engine: arithmetic, broadcasting, reductions, shape ops,
indexing, and the graph itself (accumulation, no_grad, freeing, detach)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close, check_op, distinct, randn, to_numpy

import fastconv

# ----------------------------------------------------------------------------- construction


def test_tensor_converts_float64_to_float32_and_copies(rng):
    a = rng.standard_normal((3, 4))
    with pytest.warns(fastconv.DtypeWarning, match="float64"):
        t = fastconv.tensor(a)
    assert t.dtype == np.float32
    assert t.shape == (3, 4) and t.ndim == 2 and t.numel() == 12
    assert t.size() == (3, 4) and t.size(1) == 4 and t.size(-1) == 4
    assert t.device == "cpu"
    assert_close(t.numpy(), a, name="values")
    a[0, 0] = 123.0
    assert t.numpy()[0, 0] != 123.0, "fastconv.tensor must copy its input"


def test_tensor_keeps_integer_dtype(rng):
    a = rng.integers(0, 10, size=7)
    t = fastconv.tensor(a)
    assert t.dtype.kind == "i"
    np.testing.assert_array_equal(t.numpy(), a)
    t32 = fastconv.tensor(a.astype(np.int32))
    assert t32.dtype.kind == "i"


def test_tensor_dtype_argument_and_device_moves(rng):
    t = fastconv.tensor(np.arange(6).reshape(2, 3), dtype=np.float32)
    assert t.dtype == np.float32
    np.testing.assert_array_equal(t.numpy(), np.arange(6).reshape(2, 3))
    x = fastconv.tensor(randn(rng, 2, 2))
    assert x.to("cpu") is x and x.cpu() is x


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(TypeError):
        fastconv.tensor(np.arange(3), requires_grad=True)


def test_item_and_python_lists(rng):
    v = float(rng.standard_normal())
    assert fastconv.tensor(np.float32(v)).item() == pytest.approx(v, rel=1e-6)
    t = fastconv.tensor([[1.5, 2.0], [3.0, 4.0]])
    assert t.dtype == np.float32 and t.shape == (2, 2)
    with pytest.raises((ValueError, RuntimeError)):
        fastconv.tensor(np.ones(3, np.float32)).item()


def test_detach_cuts_the_graph(rng):
    x = fastconv.tensor(randn(rng, 4), requires_grad=True)
    d = x.detach()
    assert not d.requires_grad
    y = (x * d).sum()  # d acts as a constant
    y.backward()
    assert_close(to_numpy(x.grad), to_numpy(x), name="d(x*detach(x))/dx")


# ----------------------------------------------------------------------------- elementwise

BROADCAST_SHAPES = [
    ((3, 4), (3, 4)),
    ((3, 4), (4,)),
    ((4,), (3, 4)),
    ((2, 1, 4), (3, 1)),
    ((1,), (2, 3)),
    ((2, 3, 1, 5), (1, 3, 4, 1)),
    ((2, 3), ()),
]


def _denominator(rng, shape):
    """Values bounded away from zero, for the divisor."""
    return (np.sign(rng.standard_normal(shape)) * (0.5 + np.abs(rng.standard_normal(shape)))
            ).astype(np.float32)


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_binary_broadcast(op, shapes, rng):
    sa, sb = shapes
    fns = {
        "add": (lambda a, b: a + b),
        "sub": (lambda a, b: a - b),
        "mul": (lambda a, b: a * b),
        "div": (lambda a, b: a / b),
    }
    f = fns[op]
    a = randn(rng, *sa)
    b = _denominator(rng, sb) if op == "div" else randn(rng, *sb)
    check_op(f, f, [a, b], rng=rng, name=f"{op}{shapes}")


@pytest.mark.parametrize("name,fc,ref,positive", [
    ("x+2", lambda x: x + 2, lambda x: x + 2, False),
    ("2+x", lambda x: 2 + x, lambda x: 2 + x, False),
    ("x-2", lambda x: x - 2, lambda x: x - 2, False),
    ("2-x", lambda x: 2 - x, lambda x: 2 - x, False),
    ("3*x", lambda x: 3 * x, lambda x: 3 * x, False),
    ("x*3", lambda x: x * 3, lambda x: x * 3, False),
    ("x/4", lambda x: x / 4, lambda x: x / 4, False),
    ("2/x", lambda x: 2 / x, lambda x: 2 / x, True),
    ("-x", lambda x: -x, lambda x: -x, False),
    ("x**2", lambda x: x ** 2, lambda x: x ** 2, False),
    ("x**3", lambda x: x ** 3, lambda x: x ** 3, False),
    ("x**0.5", lambda x: x ** 0.5, lambda x: x ** 0.5, True),
    ("x**-1.5", lambda x: x ** -1.5, lambda x: x ** -1.5, True),
    ("exp", lambda x: x.exp(), np.exp, False),
    ("log", lambda x: x.log(), np.log, True),
    ("sqrt", lambda x: x.sqrt(), np.sqrt, True),
    ("relu", lambda x: x.relu(), lambda x: np.maximum(x, 0), False),
])
def test_unary_and_scalar_ops(name, fc, ref, positive, rng):
    x = randn(rng, 3, 5)
    if positive:
        x = (0.3 + np.abs(x)).astype(np.float32)
    check_op(fc, ref, [x], rng=rng, name=name)


def test_numpy_array_operand_is_a_constant(rng):
    a = randn(rng, 3, 4)
    c = randn(rng, 4)
    x = fastconv.tensor(a, requires_grad=True)
    y = x * c  # ndarray operand
    z = c + x  # ndarray on the left
    assert isinstance(y, fastconv.Tensor) and isinstance(z, fastconv.Tensor)
    (y.sum() + z.sum()).backward()
    assert_close(to_numpy(x.grad), np.broadcast_to(c + 1.0, (3, 4)), name="grad")


@pytest.mark.parametrize("sa,sb", [((3, 4), (4, 5)), ((1, 7), (7, 1)), ((2, 3, 4), (2, 4, 5)),
                                   ((2, 3, 4), (4, 5)), ((5,), (5, 3))], ids=str)
def test_matmul(sa, sb, rng):
    check_op(lambda a, b: a @ b, lambda a, b: a @ b, [randn(rng, *sa), randn(rng, *sb)],
             rng=rng, name="matmul")


# ----------------------------------------------------------------------------- reductions

@pytest.mark.parametrize("dim,keepdim", [(None, False), (0, False), (1, True), (-1, False),
                                         ((0, 2), False), ((1, 2), True)], ids=str)
@pytest.mark.parametrize("op", ["sum", "mean"])
def test_sum_mean(op, dim, keepdim, rng):
    x = randn(rng, 2, 3, 4)
    axis = dim if dim is None or isinstance(dim, int) else tuple(dim)

    def ref(a):
        return getattr(np, op)(a, axis=axis, keepdims=keepdim)

    def fc(t):
        return getattr(t, op)() if dim is None else getattr(t, op)(dim=dim, keepdim=keepdim)
    check_op(fc, ref, [x], rng=rng, name=f"{op}({dim}, keepdim={keepdim})")


def _values(out):
    """``x.max(dim)`` may return the values or PyTorch's (values, indices)."""
    return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_max_dim_values_and_gradient(dim, rng):
    x = distinct(rng, 3, 4, 5)
    check_op(lambda t: _values(t.max(dim)), lambda a: a.max(axis=dim), [x], rng=rng, name="max")


def test_max_dim_tie_gradient_goes_to_one_element():
    x = fastconv.tensor(np.array([[1.0, 3.0, 3.0, 0.0]], np.float32), requires_grad=True)
    _values(x.max(1)).sum().backward()
    g = to_numpy(x.grad)
    assert g.sum() == pytest.approx(1.0), f"the max's gradient must not be duplicated: {g}"
    np.testing.assert_array_equal(g, [[0, 1, 0, 0]])  # first maximum, like argmax


def test_argmax(rng):
    x = distinct(rng, 4, 6)
    t = fastconv.tensor(x)
    np.testing.assert_array_equal(to_numpy(t.argmax(1)), x.argmax(1))
    np.testing.assert_array_equal(to_numpy(t.argmax(0)), x.argmax(0))
    assert int(to_numpy(t.argmax())) == int(x.argmax())


# ----------------------------------------------------------------------------- shape ops

@pytest.mark.parametrize("name,fc,ref", [
    ("reshape", lambda t: t.reshape(6, 4), lambda a: a.reshape(6, 4)),
    ("reshape-tuple", lambda t: t.reshape((4, -1)), lambda a: a.reshape(4, -1)),
    ("view", lambda t: t.view(2, 12), lambda a: a.reshape(2, 12)),
    ("flatten", lambda t: t.flatten(), lambda a: a.reshape(-1)),
    ("flatten1", lambda t: t.flatten(1), lambda a: a.reshape(2, -1)),
    ("flatten01", lambda t: t.flatten(0, 1), lambda a: a.reshape(6, 4)),
    ("transpose", lambda t: t.transpose(0, 2), lambda a: a.transpose(2, 1, 0)),
    ("permute", lambda t: t.permute(1, 2, 0), lambda a: a.transpose(1, 2, 0)),
])
def test_shape_ops(name, fc, ref, rng):
    check_op(fc, ref, [randn(rng, 2, 3, 4)], rng=rng, name=name)


@pytest.mark.parametrize("name,index", [
    ("int", 1),
    ("neg-int", -1),
    ("slice", (slice(None), slice(1, 3))),
    ("step", (Ellipsis, slice(None, None, 2))),
    ("int-and-slice", (0, slice(None), 2)),
    ("array-with-repeats", np.array([0, 2, 0, 0])),
    ("two-arrays", (np.array([0, 1, 1]), np.array([2, 0, 2]))),
])
def test_indexing(name, index, rng):
    # repeated indices must accumulate their gradients
    check_op(lambda t: t[index], lambda a: a[index], [randn(rng, 3, 4, 5)], rng=rng,
             name=f"x[{name}]")


def test_indexing_with_boolean_mask(rng):
    x = randn(rng, 4, 5)
    mask = x > 0.2
    check_op(lambda t: t[mask], lambda a: a[mask], [x], rng=rng, name="x[mask]")


def test_cat(rng):
    from fastconv import functional as F

    a, b, c = randn(rng, 2, 3, 4, 4), randn(rng, 2, 1, 4, 4), randn(rng, 2, 5, 4, 4)
    check_op(lambda x, y, z: F.cat([x, y, z], 1),
             lambda x, y, z: np.concatenate([x, y, z], 1), [a, b, c], rng=rng, name="cat")


# ----------------------------------------------------------------------------- the engine

def test_diamond_graph_sums_both_paths(rng):
    a = randn(rng, 5)
    check_op(lambda x: x * x + x.exp() * x - x, lambda x: x * x + np.exp(x) * x - x, [a],
             rng=rng, name="diamond")


def test_shared_subexpression(rng):
    # y is used three times: its gradient must be the sum of the three contributions
    a = randn(rng, 4)

    def fc(x):
        y = x * 2.0
        return y * y + y

    check_op(fc, lambda x: (2 * x) ** 2 + 2 * x, [a], rng=rng, name="shared")


def test_leaf_gradients_accumulate(rng):
    a = randn(rng, 3, 3)
    x = fastconv.tensor(a, requires_grad=True)
    (x * x).sum().backward()
    assert_close(to_numpy(x.grad), 2 * a.astype(np.float64), name="first")
    (x * 3.0).sum().backward()
    assert_close(to_numpy(x.grad), 2 * a.astype(np.float64) + 3, name="accumulated")


def test_large_leaf_gradients_accumulate(rng):
    # Large enough for the threaded in-place sum; three sums, each checked.
    a = randn(rng, 300, 257)
    x = fastconv.tensor(a, requires_grad=True)
    expected = np.zeros(a.shape)
    for scale in (1.0, -2.5, 0.75):
        (x * x * scale).sum().backward()
        expected += 2 * scale * a.astype(np.float64)
        assert_close(to_numpy(x.grad), expected, name=f"after the sum with scale {scale}")


def test_cpu_accumulate_handles_any_layout(rng):
    from fastconv.backend import cpu

    dst, src = randn(rng, 64, 600), randn(rng, 600, 64)
    expected = dst.astype(np.float64) + src.T
    cpu.accumulate_(dst, src.T)  # a transposed view: NumPy's path
    assert_close(dst, expected, name="strided")
    dst64 = dst.astype(np.float64)
    cpu.accumulate_(dst64, src.T)  # another dtype
    assert_close(dst64, expected + src.T, name="float64")
    whole = randn(rng, 5000)
    expected = whole[1:].astype(np.float64) + whole[:-1]
    cpu.accumulate_(whole[1:], whole[:-1])  # overlapping: NumPy's buffered add
    assert_close(whole[1:], expected, name="overlapping")


def test_backward_with_explicit_gradient(rng):
    a, g = randn(rng, 2, 3), randn(rng, 2, 3)
    x = fastconv.tensor(a, requires_grad=True)
    (x * x).backward(fastconv.tensor(g))
    assert_close(to_numpy(x.grad), 2.0 * a.astype(np.float64) * g, name="grad")


def test_backward_of_non_scalar_without_gradient_raises(rng):
    x = fastconv.tensor(randn(rng, 3), requires_grad=True)
    with pytest.raises(RuntimeError):
        (x * 2.0).backward()


def test_backward_twice_through_freed_graph_raises(rng):
    x = fastconv.tensor(randn(rng, 3), requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="(?i)free"):
        y.backward()


def test_backward_through_partly_freed_graph_raises(rng):
    # z shares the sub-graph h with y; after y.backward() that part is freed
    x = fastconv.tensor(randn(rng, 3), requires_grad=True)
    h = x.exp()
    y = (h * 2.0).sum()
    z = (h * 3.0).sum()
    y.backward()
    with pytest.raises(RuntimeError):
        z.backward()


def test_retain_graph_allows_a_second_backward(rng):
    a = randn(rng, 4)
    x = fastconv.tensor(a, requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert_close(to_numpy(x.grad), 4 * a.astype(np.float64), name="two backwards")


def test_requires_grad_propagation(rng):
    a = fastconv.tensor(randn(rng, 3))
    b = fastconv.tensor(randn(rng, 3), requires_grad=True)
    assert not (a * 2.0).requires_grad
    assert (a * b).requires_grad
    c = (a * b).sum()
    c.backward()
    assert a.grad is None
    assert b.grad is not None
    with pytest.raises(RuntimeError):
        (a * 2.0).sum().backward()


def test_no_grad(rng):
    x = fastconv.tensor(randn(rng, 3), requires_grad=True)
    assert fastconv.is_grad_enabled()
    with fastconv.no_grad():
        assert not fastconv.is_grad_enabled()
        y = x * 2.0 + 1.0
        assert not y.requires_grad
    assert fastconv.is_grad_enabled()
    assert (x * 2.0).requires_grad


def test_no_grad_restores_flag_after_exception():
    with pytest.raises(KeyError), fastconv.no_grad():
        raise KeyError("boom")
    assert fastconv.is_grad_enabled()


def test_grad_modes_as_torch():
    """no_grad / enable_grad / inference_mode / set_grad_enabled as context managers, as
    decorators and (set_grad_enabled) as a plain call, against torch's flags."""
    torch = pytest.importorskip("torch")
    seen = []
    for lib in (torch, fastconv):
        flags = []

        @lib.no_grad()
        def evaluate(depth=0, lib=lib, flags=flags):
            flags.append(lib.is_grad_enabled())
            if depth < 1:
                evaluate(depth + 1)
            with lib.enable_grad():
                flags.append(lib.is_grad_enabled())

        @lib.set_grad_enabled(False)
        def frozen(lib=lib):
            return lib.is_grad_enabled()

        flags.append(lib.is_grad_enabled())  # decorating changed nothing
        evaluate()
        flags += [lib.is_grad_enabled(), frozen(), lib.is_grad_enabled()]
        with lib.inference_mode():
            flags.append(lib.is_grad_enabled())
        with lib.inference_mode(False):
            flags.append(lib.is_grad_enabled())
        for phase in ("train", "val"):
            with lib.set_grad_enabled(phase == "train"):
                flags.append(lib.is_grad_enabled())
        flags.append(lib.is_grad_enabled())
        lib.set_grad_enabled(False)  # a plain call switches recording off until switched on
        flags.append(lib.is_grad_enabled())
        lib.set_grad_enabled(True)
        flags.append(lib.is_grad_enabled())
        seen.append(flags)
    assert seen[1] == seen[0]
    x = fastconv.tensor([1.0, 2.0], requires_grad=True)
    with fastconv.inference_mode():
        assert not (x * 2.0).requires_grad


def test_grad_mode_decorators_without_parentheses_and_on_generators_as_torch():
    """``@no_grad`` / ``@enable_grad`` / ``@inference_mode`` bare, as torch's; a decorated
    generator runs each resumption under the mode while the caller keeps its own."""
    torch = pytest.importorskip("torch")
    seen = []
    for lib in (torch, fastconv):
        flags = []
        for name, outer in (("no_grad", True), ("enable_grad", False), ("inference_mode", True)):
            for bare in (True, False):
                dec = getattr(lib, name) if bare else getattr(lib, name)()

                @dec
                def plain(x, lib=lib):
                    """kept"""
                    return lib.is_grad_enabled(), x

                @dec
                def gen(lib=lib):
                    got = yield lib.is_grad_enabled()
                    try:
                        yield got, lib.is_grad_enabled()
                    except ValueError:
                        yield "thrown", lib.is_grad_enabled()
                    return "done"

                with lib.set_grad_enabled(outer):
                    flags += [plain(7), plain.__name__, plain.__doc__]
                    it = gen()
                    flags += [next(it), lib.is_grad_enabled(), it.send("sent"),
                              lib.is_grad_enabled(), it.throw(ValueError()), lib.is_grad_enabled()]
                    try:
                        next(it)
                    except StopIteration as stop:
                        flags.append(stop.value)
                    it = gen()
                    next(it)
                    it.close()
                    flags.append(lib.is_grad_enabled())
                flags.append(lib.is_grad_enabled())

        @lib.inference_mode(False)
        def recording(lib=lib):
            return lib.is_grad_enabled()

        with lib.no_grad():
            flags.append(recording())
        x = lib.ones(2, requires_grad=True)

        @lib.no_grad
        def double(t):
            return t * 2

        flags.append(double(x).requires_grad)
        seen.append(flags)
    assert seen[1] == seen[0]


def test_no_grad_nested():
    with fastconv.no_grad():
        with fastconv.no_grad():
            pass
        assert not fastconv.is_grad_enabled()
    assert fastconv.is_grad_enabled()


def test_deep_graph_has_no_recursion_limit(rng):
    a = randn(rng, 3)
    x = fastconv.tensor(a, requires_grad=True)
    y = x
    for _ in range(3000):
        y = y * 1.0001
    y.sum().backward()
    assert_close(to_numpy(x.grad), np.full(3, 1.0001 ** 3000), rtol=1e-3,
                 name="grad of a 3000-op chain")  # rtol: 3000 float32 roundings


def test_unused_branch_gets_no_gradient(rng):
    x = fastconv.tensor(randn(rng, 3), requires_grad=True)
    w = fastconv.tensor(randn(rng, 3), requires_grad=True)
    _unused = x * w  # never reaches the output
    (x * 2.0).sum().backward()
    assert w.grad is None
    assert_close(to_numpy(x.grad), np.full(3, 2.0), name="grad")
