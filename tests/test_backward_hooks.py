"""Module.register_full_backward_hook / register_full_backward_pre_hook against torch's: what
the hooks see (Grad-CAM reads a layer's output gradient this way), what replacing their
gradients does upstream, removal, and modules with several inputs."""

from __future__ import annotations

import numpy as np
import pytest

import fastconv as fc

torch = pytest.importorskip("torch")


def _twins(rng):
    def build(lib):
        nn = lib.nn
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 3),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 3))

    fm, tm = build(fc), build(torch)
    fm.load_state_dict({k: rng.standard_normal(v.shape).astype(np.float32) * 0.5
                        for k, v in fm.state_dict().items()})
    tm.load_state_dict({k: torch.tensor(v) for k, v in fm.state_dict().items()})
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    return fm, tm, x


def _np(t):
    return None if t is None else t.detach().numpy()


def _same(a, b, tol=1e-5):
    assert (a is None) == (b is None)
    if a is not None:
        np.testing.assert_allclose(_np(a), _np(b), rtol=tol, atol=tol)


def test_hooks_see_torchs_gradients(rng):
    fm, tm, x = _twins(rng)
    seen = {}
    for lib, m in (("fc", fm), ("torch", tm)):
        for i in (0, 2, 5):
            m[i].register_full_backward_hook(
                lambda mod, gi, go, key=(lib, i): seen.__setitem__(key, (gi, go)))
        m[2].register_full_backward_pre_hook(
            lambda mod, go, key=(lib, "pre"): seen.__setitem__(key, go))
    target = rng.integers(0, 3, 2)
    fc.nn.functional.cross_entropy(fm(fc.tensor(x)), fc.tensor(target)).backward()
    with pytest.warns(UserWarning):  # torch's note that layer 0's inputs need no gradient
        torch.nn.functional.cross_entropy(tm(torch.tensor(x)), torch.tensor(target)).backward()
    for i in (0, 2, 5):
        (fgi, fgo), (tgi, tgo) = seen[("fc", i)], seen[("torch", i)]
        assert len(fgi) == len(tgi) == 1 and len(fgo) == len(tgo) == 1
        _same(fgi[0], tgi[0])  # None for layer 0, whose input is the image
        _same(fgo[0], tgo[0])
    _same(seen[("fc", "pre")][0], seen[("torch", "pre")][0])


def test_returned_gradients_replace_the_module_ones(rng):
    fm, tm, x = _twins(rng)
    for m in (fm, tm):
        m[2].register_full_backward_hook(lambda mod, gi, go: (gi[0] * 3,))
        m[5].register_full_backward_pre_hook(lambda mod, go: (go[0] * -2,))
    fx, tx = fc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    fm(fx).square().sum().backward()
    tm(tx).square().sum().backward()
    _same(fx.grad, tx.grad, 1e-4)
    _same(fm[0].weight.grad, tm[0].weight.grad, 1e-4)
    _same(fm[5].weight.grad, tm[5].weight.grad, 1e-4)


def test_removed_and_no_grad_hooks_do_not_run(rng):
    fm, _, x = _twins(rng)
    calls = []
    handle = fm[2].register_full_backward_hook(lambda *a: calls.append("full"))
    with fc.no_grad():
        fm(fc.tensor(x))
    fm(fc.tensor(x)).sum().backward()
    assert calls == ["full"]
    handle.remove()
    fm(fc.tensor(x)).sum().backward()
    assert calls == ["full"]
    with pytest.warns(FutureWarning, match="full"):
        fm[2].register_backward_hook(lambda *a: calls.append("old"))
    fm(fc.tensor(x)).sum().backward()
    assert calls == ["full", "old"]
    with pytest.raises(TypeError, match="callable"):
        fm[0].register_full_backward_hook(3)


def test_a_module_with_two_inputs(rng):
    def build(lib):
        class Mix(lib.nn.Module):
            def forward(self, a, b):
                return a * b.tanh() + a

        return Mix()

    a = rng.standard_normal((3, 4)).astype(np.float32)
    b = rng.standard_normal((3, 4)).astype(np.float32)
    seen = {}
    results = {}
    for lib, mod in (("fc", fc), ("torch", torch)):
        m = build(mod)
        m.register_full_backward_hook(lambda mod_, gi, go, key=lib: seen.__setitem__(key, gi))
        ta = mod.tensor(a, requires_grad=True)
        tb = mod.tensor(b, requires_grad=True)
        m(ta, tb).sum().backward()
        results[lib] = (ta.grad, tb.grad)
        seen[lib + "_both"] = seen.pop(lib)
        # b needs no gradient: torch's hook gets zeros for it
        m(mod.tensor(a, requires_grad=True), mod.tensor(b)).sum().backward()
    for i in (0, 1):
        _same(seen["fc_both"][i], seen["torch_both"][i])
        _same(results["fc"][i], results["torch"][i])
        _same(seen["fc"][i], seen["torch"][i])
    assert not np.any(seen["fc"][1].numpy())
