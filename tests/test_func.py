"""fastconv.func (torch.func's transforms) against torch.func: functional_call, grad,
grad_and_value, vjp, jacrev / jacfwd, hessian and vmap, alone and composed (per-sample
gradients, second derivatives), on fresh random inputs."""

from __future__ import annotations

import pytest
from helpers import assert_close, randn

import fastconv as fc

torch = pytest.importorskip("torch")
tfunc = torch.func


def _model(lib, rng_state):
    model = lib.nn.Sequential(lib.nn.Linear(4, 6), lib.nn.Tanh(), lib.nn.Linear(6, 3))
    model.load_state_dict({k: lib.tensor(v) for k, v in rng_state.items()})
    return model


def _weights(rng):
    return {"0.weight": randn(rng, 6, 4), "0.bias": randn(rng, 6), "2.weight": randn(rng, 3, 6),
            "2.bias": randn(rng, 3)}


def test_per_sample_gradients_with_vmap_grad_and_functional_call(rng):
    w, x, y = _weights(rng), randn(rng, 7, 4), rng.integers(0, 3, 7)
    results = []
    for lib, func in ((fc, fc.func), (torch, tfunc)):
        model = _model(lib, w)
        params = {k: v.detach() for k, v in model.named_parameters()}

        def loss(p, xi, yi, model=model, lib=lib, func=func):
            out = func.functional_call(model, p, (xi.unsqueeze(0),))
            return lib.nn.functional.cross_entropy(out, yi.unsqueeze(0))

        results.append(func.vmap(func.grad(loss), in_dims=(None, 0, 0))(
            params, lib.tensor(x), lib.tensor(y)))
    for k in w:
        assert_close(results[0][k], results[1][k].detach(), rtol=1e-4, atol=1e-5, name=k)
    # the module keeps its own parameters
    model = _model(fc, w)
    fc.func.functional_call(model, {"0.weight": fc.zeros(6, 4)}, (fc.tensor(x),))
    assert_close(model[0].weight.detach(), w["0.weight"])


def test_functional_call_errors(rng):
    model = _model(fc, _weights(rng))
    with pytest.raises(KeyError, match="neither a parameter nor a buffer"):
        fc.func.functional_call(model, {"0.nothing": fc.zeros(1)}, (fc.zeros(1, 4),))
    with pytest.raises(RuntimeError, match="missing keys"):
        fc.func.functional_call(model, {"0.weight": fc.zeros(6, 4)}, (fc.zeros(1, 4),),
                                strict=True)
    assert fc.nn.utils.stateless.functional_call is fc.func.functional_call


@pytest.mark.parametrize("name", ["grad", "grad argnums", "grad of grad", "grad_and_value",
                                  "jacrev", "jacfwd", "hessian", "vjp", "vmap out_dims",
                                  "vmap tuple out", "vmap none"])
def test_transforms_match_torch_func(name, rng):
    x, z = randn(rng, 4), randn(rng, 4)

    def f(t, u):
        return (t.sin() * u).sum() + (t * t * u).sum() ** 2

    cases = {
        "grad": lambda F, a, b: F.grad(f)(a, b),
        "grad argnums": lambda F, a, b: F.grad(f, argnums=(0, 1))(a, b)[1],
        "grad of grad": lambda F, a, b: F.grad(lambda s: F.grad(lambda r: (r ** 3).sum() * s)(
            a).sum())(b.sum()),
        "grad_and_value": lambda F, a, b: F.grad_and_value(f)(a, b)[1],
        "jacrev": lambda F, a, b: F.jacrev(lambda t: t.sin() * b)(a),
        "jacfwd": lambda F, a, b: F.jacfwd(lambda t: t.tanh() * t)(a),
        "hessian": lambda F, a, b: F.hessian(lambda t: f(t, b))(a),
        "vjp": lambda F, a, b: F.vjp(lambda t: t.sin() * t, a)[1](b)[0],
        "vmap out_dims": lambda F, a, b: F.vmap(lambda r: r * r.sum(), in_dims=1, out_dims=1)(
            a.reshape(2, 2)),
        "vmap tuple out": lambda F, a, b: F.vmap(lambda r, s: (r * s, r.sum()))(
            a.reshape(2, 2), b.reshape(2, 2))[0],
        "vmap none": lambda F, a, b: F.vmap(lambda r, s: r @ s, in_dims=(0, None))(
            a.reshape(2, 2), b.reshape(2, 2)),
    }
    got = cases[name](fc.func, fc.tensor(x), fc.tensor(z))
    want = cases[name](tfunc, torch.tensor(x, dtype=torch.float64),
                       torch.tensor(z, dtype=torch.float64))
    assert tuple(got.shape) == tuple(want.shape)
    assert_close(got.detach(), want.detach(), rtol=1e-4, atol=1e-5, name=name)


def test_vmap_and_grad_errors(rng):
    with pytest.raises(ValueError, match="different sizes"):
        fc.func.vmap(lambda a, b: a + b)(fc.zeros(2, 3), fc.zeros(3, 3))
    with pytest.raises(ValueError, match="at least one argument"):
        fc.func.vmap(lambda a: a, in_dims=None)(fc.zeros(2))
    with pytest.raises(RuntimeError, match="one-element"):
        fc.func.grad(lambda a: a * 2)(fc.tensor(randn(rng, 3)))
    assert fc.vmap is fc.func.vmap
