"""F.grid_sample and F.affine_grid against torch: every mode, padding mode and align_corners,
on random grids reaching past the borders, forward and the input, grid and theta gradients;
the identity transform; a spatial-transformer step; bad arguments."""

from __future__ import annotations

import fastconv.nn.functional as F
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastconv as fc

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _compare(rng, shape, out_hw, mode, padding_mode, align_corners, spread=1.3):
    x = rng.standard_normal(shape).astype(np.float32)
    g = ((rng.random((shape[0],) + out_hw + (2,)) * 2 - 1) * spread).astype(np.float32)
    fx, fg = fc.tensor(x, requires_grad=True), fc.tensor(g, requires_grad=True)
    tx, tg = torch.tensor(x, requires_grad=True), torch.tensor(g, requires_grad=True)
    fy = F.grid_sample(fx, fg, mode, padding_mode, align_corners)
    ty = TF.grid_sample(tx, tg, mode, padding_mode, align_corners)
    dy = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
    fy.backward(fc.tensor(dy))
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(fy.detach().numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fx.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fg.grad.numpy(), tg.grad.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [False, True])
def test_grid_sample_matches_torch(rng, mode, padding_mode, align_corners):
    _compare(rng, (2, 3, 5, 6), (4, 7), mode, padding_mode, align_corners)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_shapes_match_torch(data):
    draw = data.draw
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 6)),
             draw(st.integers(1, 6)))
    out_hw = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    _compare(rng, shape, out_hw, draw(st.sampled_from(["bilinear", "nearest"])),
             draw(st.sampled_from(["zeros", "border", "reflection"])), draw(st.booleans()),
             spread=draw(st.sampled_from([0.5, 1.0, 3.0])))


@pytest.mark.parametrize("align_corners", [False, True])
def test_affine_grid_matches_torch_and_identity_reproduces_the_input(rng, align_corners):
    theta = rng.standard_normal((3, 2, 3)).astype(np.float32)
    ft, tt = fc.tensor(theta, requires_grad=True), torch.tensor(theta, requires_grad=True)
    fgrid = F.affine_grid(ft, (3, 2, 4, 5), align_corners)
    tgrid = TF.affine_grid(tt, (3, 2, 4, 5), align_corners)
    d = rng.standard_normal(tuple(tgrid.shape)).astype(np.float32)
    fgrid.backward(fc.tensor(d))
    tgrid.backward(torch.tensor(d))
    np.testing.assert_allclose(fgrid.detach().numpy(), tgrid.detach().numpy(), atol=1e-6)
    np.testing.assert_allclose(ft.grad.numpy(), tt.grad.numpy(), rtol=1e-5, atol=1e-5)
    x = rng.standard_normal((2, 3, 6, 7)).astype(np.float32)
    eye = fc.tensor(np.tile(np.eye(2, 3, dtype=np.float32), (2, 1, 1)))
    same = F.grid_sample(fc.tensor(x), F.affine_grid(eye, x.shape, align_corners),
                         align_corners=align_corners)
    np.testing.assert_allclose(same.numpy(), x, atol=1e-5)


def test_a_spatial_transformer_step_matches_torch(rng):
    """theta from a small localisation layer, the image resampled, a loss: every parameter's
    gradient through affine_grid and grid_sample as torch's."""
    x = rng.standard_normal((2, 1, 8, 8)).astype(np.float32)
    w = (rng.standard_normal((6, 64)) * 0.05).astype(np.float32)
    # near the identity but off it: at exact pixel centres bilinear's derivative jumps, and
    # float rounding would pick a side
    b = np.array([0.9, 0.1, 0.05, -0.08, 0.85, -0.1], np.float32)
    grads = {}
    for lib, Fn in (("fc", F), ("torch", TF)):
        mod = fc if lib == "fc" else torch
        tw, tb = mod.tensor(w, requires_grad=True), mod.tensor(b, requires_grad=True)
        img = mod.tensor(x, requires_grad=True)
        theta = (img.reshape(2, 64) @ tw.T + tb).reshape(2, 2, 3)
        out = Fn.grid_sample(img, Fn.affine_grid(theta, (2, 1, 8, 8), align_corners=False),
                             align_corners=False)
        (out * out).sum().backward()
        grads[lib] = [t.grad.detach().numpy() for t in (tw, tb, img)]
    for a, c in zip(grads["fc"], grads["torch"]):  # float32 sums of terms up to ~100s
        np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-5 * float(np.abs(c).max()))


def test_bad_arguments():
    x, g = fc.randn(2, 3, 4, 4), fc.randn(2, 3, 3, 2)
    with pytest.raises(ValueError, match="mode"):
        F.grid_sample(x, g, mode="lanczos")
    with pytest.raises(ValueError, match="padding_mode"):
        F.grid_sample(x, g, padding_mode="wrap")
    with pytest.raises(ValueError, match="grid must be"):
        F.grid_sample(x, fc.randn(3, 3, 3, 2))
    with pytest.raises(ValueError, match="grid must be"):
        F.grid_sample(x, fc.randn(2, 3, 3, 3))
    with pytest.raises(ValueError, match="4-D"):
        F.grid_sample(fc.randn(3, 4, 4), g)
    with pytest.raises(ValueError, match="theta of shape"):
        F.affine_grid(fc.randn(2, 3, 3), (2, 3, 4, 4))
    with pytest.raises(NotImplementedError, match="2-D"):
        F.affine_grid(fc.randn(2, 2, 3), (2, 3, 4, 4, 4))
