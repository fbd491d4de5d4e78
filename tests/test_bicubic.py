"""Bicubic resizing and sampling against torch: ``interpolate(mode="bicubic")`` (size and
scale_factor, recompute_scale_factor, align_corners both ways, up and down, border taps),
``nn.Upsample(mode="bicubic")`` and ``grid_sample(mode="bicubic")`` with every padding mode,
forward and every gradient, on fresh random inputs; bad arguments."""

from __future__ import annotations

import fastconv.nn.functional as F
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastconv as fc

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _interp_both(rng, shape, **kw):
    x = rng.standard_normal(shape).astype(np.float32)
    fx, tx = fc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    fy = F.interpolate(fx, mode="bicubic", **kw)
    ty = TF.interpolate(tx, mode="bicubic", **kw)
    assert tuple(fy.shape) == tuple(ty.shape)
    np.testing.assert_allclose(fy.detach().numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    dy = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
    fy.backward(fc.tensor(dy))
    ty.backward(torch.tensor(dy))
    return fx.grad.numpy(), tx.grad.numpy()


CASES = [
    {"size": (7, 9)},
    {"size": (3, 2)},
    {"size": (1, 1)},
    {"size": 8, "align_corners": True},
    {"size": (2, 11), "align_corners": True},
    {"scale_factor": 2},
    {"scale_factor": 2, "align_corners": True},
    {"scale_factor": 1.7},
    {"scale_factor": (0.5, 2.5)},
    {"scale_factor": 0.6, "recompute_scale_factor": True},
    {"scale_factor": (1.3, 0.7), "recompute_scale_factor": True, "align_corners": True},
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_interpolate_bicubic_matches_torch(rng, case):
    dx, tdx = _interp_both(rng, (2, 3, 5, 6), **case)
    np.testing.assert_allclose(dx, tdx, rtol=1e-5, atol=1e-5)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_interpolate_bicubic_random_configurations(data):
    draw = data.draw
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 8)),
             draw(st.integers(1, 8)))
    kw = {"align_corners": draw(st.sampled_from([None, False, True]))}
    if draw(st.booleans()):
        kw["size"] = (draw(st.integers(1, 12)), draw(st.integers(1, 12)))
    else:
        scale = st.sampled_from([0.5, 0.75, 1.0, 1.5, 2.0, 2.25, 3.0])
        kw["scale_factor"] = (draw(scale), draw(scale))
        kw["recompute_scale_factor"] = draw(st.sampled_from([None, True]))
        if any(int(n * s) < 1 for n, s in zip(shape[2:], kw["scale_factor"])):
            return
    dx, tdx = _interp_both(rng, shape, **kw)
    np.testing.assert_allclose(dx, tdx, rtol=1e-5, atol=1e-5)


def test_same_size_with_a_scale_factor_resamples_and_its_gradient_is_the_transpose(rng):
    """scale_factor=1.2 on 4 pixels gives 4 pixels read at other positions: torch's forward
    resamples and so does fastconv's. torch's backward then copies dy as if the output were
    the input (its gradient check fails there); fastconv's is the transpose of its forward,
    checked here column by column against torch's (linear) forward in float64."""
    dx, _ = _interp_both(rng, (1, 1, 4, 4), scale_factor=1.2)
    ty_basis = []
    for i in range(16):
        e = np.zeros((1, 1, 4, 4))
        e.flat[i] = 1.0
        ty_basis.append(TF.interpolate(torch.tensor(e), scale_factor=1.2, mode="bicubic"))
    # redo the backward with a known dy: dx_i = <dy, f(e_i)>
    x = fc.tensor(rng.standard_normal((1, 1, 4, 4)).astype(np.float32), requires_grad=True)
    y = F.interpolate(x, scale_factor=1.2, mode="bicubic")
    dy = rng.standard_normal(tuple(y.shape)).astype(np.float32)
    y.backward(fc.tensor(dy))
    want = np.array([float((t.numpy() * dy).sum()) for t in ty_basis]).reshape(1, 1, 4, 4)
    np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-5, atol=1e-5)


def test_bicubic_overshoots_and_reproduces_a_linear_ramp(rng):
    """Keys' kernel (a = -0.75) overshoots at a step (it is not a convex blend) and
    reproduces a linear ramp inside the image with align_corners=True."""
    step = np.zeros((1, 1, 1, 6), np.float32)
    step[..., 3:] = 1.0
    y = F.interpolate(fc.tensor(step), size=(1, 21), mode="bicubic", align_corners=True)
    assert float(y.max()) > 1.0 and float(y.min()) < 0.0
    ramp = np.tile(np.arange(8, dtype=np.float32), (1, 1, 8, 1))
    y = F.interpolate(fc.tensor(ramp), size=(8, 15), mode="bicubic", align_corners=True)
    inner = y.numpy()[..., 2:-2]
    np.testing.assert_allclose(inner, np.tile(np.arange(15) / 2.0, (1, 1, 8, 1))[..., 2:-2],
                               atol=1e-5)


def test_upsample_layer(rng):
    for kw in ({"scale_factor": 2, "mode": "bicubic"},
               {"size": (5, 7), "mode": "bicubic", "align_corners": True},
               {"scale_factor": (1.5, 0.5), "mode": "bicubic", "recompute_scale_factor": True}):
        f, t = fc.nn.Upsample(**kw), torch.nn.Upsample(**kw)
        assert repr(f) == repr(t)
        x = rng.standard_normal((2, 3, 4, 6)).astype(np.float32)
        np.testing.assert_allclose(f(fc.tensor(x)).numpy(), t(torch.tensor(x)).numpy(),
                                   rtol=1e-5, atol=1e-5)


def test_interpolate_bicubic_bad_arguments():
    x = fc.randn(1, 2, 4, 4)
    with pytest.raises(ValueError, match="4-D"):
        F.interpolate(fc.randn(1, 2, 4), 8, mode="bicubic")
    with pytest.raises(ValueError, match="4-D"):
        F.interpolate(fc.randn(1, 2, 4, 4, 4), 8, mode="bicubic")
    with pytest.raises(ValueError, match="antialias"):
        F.interpolate(fc.randn(1, 2, 4, 4, 4), 8, mode="bicubic", antialias=True)
    with pytest.raises(ValueError, match="only one"):
        F.interpolate(x, 8, 2.0, mode="bicubic")
    with pytest.raises(ValueError, match="recompute_scale_factor"):
        F.interpolate(x, 8, mode="bicubic", recompute_scale_factor=True)
    with pytest.raises(ValueError, match="size"):
        F.interpolate(x, (8, 8, 8), mode="bicubic")
    with pytest.raises(ValueError, match="empty"):
        F.interpolate(x, scale_factor=0.1, mode="bicubic")
    with pytest.raises(TypeError, match="float32"):
        F.interpolate(fc.tensor(np.zeros((1, 1, 2, 2), np.int64)), 4, mode="bicubic")


# ----------------------------------------------------------------------------- grid_sample

def _grid_both(rng, shape, out_hw, padding_mode, align_corners, spread):
    x = rng.standard_normal(shape).astype(np.float32)
    g = ((rng.random((shape[0],) + out_hw + (2,)) * 2 - 1) * spread).astype(np.float32)
    fx, fg = fc.tensor(x, requires_grad=True), fc.tensor(g, requires_grad=True)
    tx, tg = torch.tensor(x, requires_grad=True), torch.tensor(g, requires_grad=True)
    fy = F.grid_sample(fx, fg, "bicubic", padding_mode, align_corners)
    ty = TF.grid_sample(tx, tg, "bicubic", padding_mode, align_corners)
    dy = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
    fy.backward(fc.tensor(dy))
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(fy.detach().numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fx.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fg.grad.numpy(), tg.grad.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [False, True])
def test_grid_sample_bicubic_matches_torch(rng, padding_mode, align_corners):
    _grid_both(rng, (2, 3, 5, 6), (4, 7), padding_mode, align_corners, 1.3)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_grid_sample_bicubic_random_shapes(data):
    draw = data.draw
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 6)),
             draw(st.integers(1, 6)))
    out_hw = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    _grid_both(rng, shape, out_hw, draw(st.sampled_from(["zeros", "border", "reflection"])),
               draw(st.booleans()), draw(st.sampled_from([0.5, 1.0, 3.0])))


@pytest.mark.parametrize("align_corners", [False, True])
def test_grid_sample_bicubic_identity_grid_reproduces_the_input(rng, align_corners):
    x = rng.standard_normal((2, 3, 6, 7)).astype(np.float32)
    eye = fc.tensor(np.tile(np.eye(2, 3, dtype=np.float32), (2, 1, 1)))
    grid = F.affine_grid(eye, x.shape, align_corners)
    same = F.grid_sample(fc.tensor(x), grid, "bicubic", "border", align_corners)
    np.testing.assert_allclose(same.numpy(), x, atol=1e-5)


def test_grid_sample_bicubic_bad_arguments():
    x, g = fc.randn(2, 3, 4, 4), fc.randn(2, 3, 3, 2)
    with pytest.raises(ValueError, match="mode"):
        F.grid_sample(x, g, mode="cubic")
    with pytest.raises(ValueError, match="padding_mode"):
        F.grid_sample(x, g, mode="bicubic", padding_mode="wrap")
    with pytest.raises(ValueError, match="4-D"):
        F.grid_sample(fc.randn(2, 3, 4, 4, 4), fc.randn(2, 3, 3, 3, 3), mode="bicubic")
