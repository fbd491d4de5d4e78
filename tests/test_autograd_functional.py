"""autograd.functional (jacobian, vjp, jvp), gradcheck, Variable and the optimizer's state
keyed by parameter, against torch on fresh random inputs."""

from __future__ import annotations

import pytest
from helpers import assert_close, randn

import fastconv as fc
from fastconv import nn

torch = pytest.importorskip("torch")


def _pair(x, y, m):
    return (x ** 2 * y.sum(), (x.exp() * 2).sum())


def test_jacobian_of_several_inputs_and_outputs(rng):
    a, b = randn(rng, 3), randn(rng, 2)
    got = fc.autograd.functional.jacobian(lambda x, y: _pair(x, y, fc),
                                          (fc.tensor(a), fc.tensor(b)))
    want = torch.autograd.functional.jacobian(lambda x, y: _pair(x, y, torch),
                                              (torch.tensor(a), torch.tensor(b)))
    for got_row, want_row in zip(got, want):
        for g, w in zip(got_row, want_row):
            assert_close(g, w, rtol=1e-5, atol=1e-6)
    one = fc.autograd.functional.jacobian(lambda x: x.tanh() * 3, fc.tensor(randn(rng, 2, 2)))
    assert tuple(one.shape) == (2, 2, 2, 2)


def test_vjp_and_jvp(rng):
    a, v = randn(rng, 4), randn(rng, 4)

    def f(x):
        return x.sin() * x

    out, g = fc.autograd.functional.vjp(f, fc.tensor(a), fc.tensor(v))
    t_out, t_g = torch.autograd.functional.vjp(f, torch.tensor(a), torch.tensor(v))
    assert_close(out, t_out)
    assert_close(g, t_g, rtol=1e-5, atol=1e-6)
    out, g = fc.autograd.functional.jvp(f, fc.tensor(a), fc.tensor(v))
    t_out, t_g = torch.autograd.functional.jvp(f, torch.tensor(a), torch.tensor(v))
    assert_close(g, t_g, rtol=1e-5, atol=1e-6)


def test_second_order_tools_match_torch(rng):
    """hessian, hvp and vhp on a function with a cross term (tests/test_double_backward.py
    checks the ops underneath one by one)."""
    x = randn(rng, 3)
    f = lambda t: (t ** 3).sum() * t[0] + (t[1] * t[2]).tanh()  # noqa: E731
    assert_close(fc.autograd.functional.hessian(f, fc.tensor(x)),
                 torch.autograd.functional.hessian(f, torch.tensor(x, dtype=torch.float64)),
                 rtol=1e-4, atol=1e-4)
    v = randn(rng, 3)
    for name in ("hvp", "vhp"):
        out, got = getattr(fc.autograd.functional, name)(f, fc.tensor(x), fc.tensor(v))
        t_out, want = getattr(torch.autograd.functional, name)(
            f, torch.tensor(x, dtype=torch.float64), torch.tensor(v, dtype=torch.float64))
        assert_close(out, t_out, rtol=1e-5, atol=1e-5)
        assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_gradcheck_passes_a_correct_gradient_and_catches_a_wrong_one(rng):
    w = fc.tensor(randn(rng, 2, 1, 3, 3))
    x = fc.tensor(randn(rng, 1, 1, 5, 5), requires_grad=True)
    assert fc.autograd.gradcheck(lambda t: fc.nn.functional.conv2d(t, w).tanh(), (x,))

    class WrongSquare(fc.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            ctx.save_for_backward(t)
            return t * t

        @staticmethod
        def backward(ctx, g):
            (t,) = ctx.saved_tensors
            return g * t  # should be 2 * t

    y = fc.tensor(randn(rng, 3), requires_grad=True)
    assert not fc.autograd.gradcheck(WrongSquare.apply, (y,), raise_exception=False)
    with pytest.raises(fc.autograd.GradcheckError, match="Jacobian mismatch"):
        fc.autograd.gradcheck(WrongSquare.apply, (y,))


def test_variable_is_the_tensor(rng):
    t = fc.tensor(randn(rng, 2))
    v = fc.autograd.Variable(t, requires_grad=True)
    assert v is t and v.requires_grad


def test_optimizer_state_by_parameter(rng):
    m = nn.Linear(3, 2)
    opt = fc.optim.Adam(m.parameters(), lr=1e-2)
    assert opt.state[m.weight] == {}
    m(fc.tensor(randn(rng, 4, 3))).sum().backward()
    opt.step()
    assert m.weight in opt.state and opt.state[m.weight] is opt.state[0]
    assert opt.state[m.bias]["exp_avg"].shape == (2,)
    opt.load_state_dict(opt.state_dict())
    assert opt.state[m.bias]["step"] == 1
    with pytest.raises(KeyError, match="not a parameter"):
        opt.state[fc.zeros(2)] = {}
