"""nn.utils.weight_norm / spectral_norm against torch's: the same state_dict keys (checkpoints
load both ways), the same outputs and gradients over several training steps (power
iteration included), evaluation mode, removal, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import fastconv as fc

torch = pytest.importorskip("torch")


def _copy_into(f, t):
    t.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in f.state_dict().items()})


def _close(a, b, tol=1e-4):
    a = a.detach().numpy() if hasattr(a, "detach") else np.asarray(a)
    b = b.detach().numpy()
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, float(np.abs(b).max())))


@pytest.mark.parametrize("dim", [0, 1, None, -1])
def test_weight_norm_matches_torch(rng, dim):
    f, t = fc.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(3, 4, 3)
    _copy_into(f, t)
    fc.nn.utils.weight_norm(f, dim=dim)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.nn.utils.weight_norm(t, dim=dim)
    assert sorted(f.state_dict()) == sorted(t.state_dict()) == ["bias", "weight_g", "weight_v"]
    for k, v in t.state_dict().items():
        _close(np.asarray(f.state_dict()[k]), v, 1e-6)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    for _ in range(2):
        fy, ty = f(fc.tensor(x)), t(torch.tensor(x))
        fy.square().sum().backward()
        ty.square().sum().backward()
    _close(fy, ty, 1e-5)
    for name in ("weight_g", "weight_v", "bias"):
        _close(getattr(f, name).grad, getattr(t, name).grad)
    fc.nn.utils.remove_weight_norm(f)
    torch.nn.utils.remove_weight_norm(t)
    assert sorted(f.state_dict()) == ["bias", "weight"] and isinstance(f.weight, fc.nn.Parameter)
    _close(f.weight, t.weight, 1e-6)


@pytest.mark.parametrize("kind", ["conv", "linear", "conv_transpose"])
def test_spectral_norm_matches_torch(rng, kind):
    make = {"conv": lambda L: L.nn.Conv2d(3, 4, 3), "linear": lambda L: L.nn.Linear(5, 3),
            "conv_transpose": lambda L: L.nn.ConvTranspose2d(3, 4, 3)}[kind]
    f, t = make(fc), make(torch)
    fc.nn.utils.spectral_norm(f)
    torch.nn.utils.spectral_norm(t)
    assert sorted(f.state_dict()) == sorted(t.state_dict()) == \
        ["bias", "weight_orig", "weight_u", "weight_v"]
    f.load_state_dict({k: v.numpy() for k, v in t.state_dict().items()})  # the same u and v
    x = rng.standard_normal((2, 3, 6, 6) if kind != "linear" else (2, 5)).astype(np.float32)
    for _ in range(3):  # each training forward advances the power iteration
        fy, ty = f(fc.tensor(x)), t(torch.tensor(x))
        fy.square().sum().backward()
        ty.square().sum().backward()
    _close(fy, ty, 1e-5)
    _close(f.weight_u, t.weight_u, 1e-5)
    _close(f.weight_orig.grad, t.weight_orig.grad)
    f.eval()
    t.eval()
    u_before = f.weight_u.numpy().copy()
    _close(f(fc.tensor(x)), t(torch.tensor(x)), 1e-5)
    np.testing.assert_array_equal(f.weight_u.numpy(), u_before)  # evaluation: no iteration
    fc.nn.utils.remove_spectral_norm(f)
    torch.nn.utils.remove_spectral_norm(t)
    assert sorted(f.state_dict()) == ["bias", "weight"]
    _close(f.weight, t.weight, 1e-5)


def test_spectral_norm_bounds_the_largest_singular_value(rng):
    fc.manual_seed(0)
    layer = fc.nn.utils.spectral_norm(fc.nn.Linear(20, 30), n_power_iterations=5)
    for _ in range(10):
        layer(fc.randn(2, 20))
    sigma = np.linalg.svd(layer.weight.detach().numpy(), compute_uv=False)[0]
    assert abs(sigma - 1.0) < 1e-3
    w = layer.weight_orig.detach().numpy()
    np.testing.assert_allclose(layer.weight.detach().numpy(),
                               w / np.linalg.svd(w, compute_uv=False)[0], atol=1e-4)


def test_errors():
    layer = fc.nn.utils.weight_norm(fc.nn.Linear(3, 2))
    with pytest.raises(RuntimeError, match="two"):
        fc.nn.utils.weight_norm(layer, name="weight")
    with pytest.raises(ValueError, match="no parameter"):
        fc.nn.utils.spectral_norm(fc.nn.Linear(3, 2), name="kernel")
    with pytest.raises(ValueError, match="n_power_iterations"):
        fc.nn.utils.spectral_norm(fc.nn.Linear(3, 2), n_power_iterations=0)
    with pytest.raises(ValueError, match="not found"):
        fc.nn.utils.remove_spectral_norm(fc.nn.Linear(3, 2))
