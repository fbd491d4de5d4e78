"""conv_transpose2d / nn.ConvTranspose2d against torch: random configurations (strides,
padding, output_padding up to the dilation, groups, dilation) forward and every gradient,
output_size, unbatched input, bad arguments, the layer's initialisation, bfloat16 autocast and
ONNX export (checked by onnxruntime) and import."""

from __future__ import annotations

import fastconv.nn.functional as F
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastconv as fc

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _check(rng, N, C, H, W, OCg, k, s, p, op, g, d, bias=True):
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((C, OCg) + k).astype(np.float32)
    b = rng.standard_normal(OCg * g).astype(np.float32) if bias else None
    fx, fw = fc.tensor(x, requires_grad=True), fc.tensor(w, requires_grad=True)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    fb = fc.tensor(b, requires_grad=True) if bias else None
    tb = torch.tensor(b, requires_grad=True) if bias else None
    fy = F.conv_transpose2d(fx, fw, fb, s, p, op, g, d)
    ty = TF.conv_transpose2d(tx, tw, tb, s, p, op, g, d)
    assert tuple(fy.shape) == tuple(ty.shape)
    gy = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
    fy.backward(fc.tensor(gy))
    ty.backward(torch.tensor(gy))
    scale = max(1.0, float(np.abs(ty.detach().numpy()).max()))
    tol = dict(rtol=1e-4, atol=1e-5 * scale * np.sqrt(C * k[0] * k[1]))
    np.testing.assert_allclose(fy.detach().numpy(), ty.detach().numpy(), **tol)
    np.testing.assert_allclose(fx.grad.numpy(), tx.grad.numpy(), **tol)
    np.testing.assert_allclose(fw.grad.numpy(), tw.grad.numpy(), rtol=1e-4,
                               atol=1e-4 * np.sqrt(N * H * W))
    if bias:
        np.testing.assert_allclose(fb.grad.numpy(), tb.grad.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("cfg", [
    # N, C, H, W, OC/g, kernel, stride, padding, output_padding, groups, dilation
    (2, 4, 5, 6, 3, (3, 3), (2, 2), (1, 1), (1, 1), 2, (1, 1)),
    (1, 3, 4, 4, 2, (2, 2), (2, 2), (0, 0), (0, 0), 1, (1, 1)),
    (2, 2, 3, 5, 2, (3, 2), (1, 2), (1, 0), (0, 1), 1, (2, 1)),
    (1, 2, 3, 3, 2, (3, 3), (1, 1), (0, 0), (1, 1), 1, (2, 2)),   # output_padding >= stride
    (2, 4, 4, 4, 1, (1, 1), (3, 3), (0, 0), (2, 2), 4, (1, 1)),   # depthwise 1x1
    (1, 6, 7, 3, 4, (5, 3), (3, 1), (2, 1), (2, 0), 3, (1, 3)),
])
def test_matches_torch(rng, cfg):
    _check(rng, *cfg)
    _check(rng, *cfg, bias=False)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_configurations_match_torch(data):
    draw = data.draw
    g = draw(st.integers(1, 3))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = tuple(draw(st.integers(0, (d[i] * (k[i] - 1)) // 2 + 1)) for i in range(2))
    op = tuple(draw(st.integers(0, max(s[i], d[i]) - 1)) for i in range(2))
    H, W = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    out = [(n - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op[i] + 1
           for i, n in enumerate((H, W))]
    if min(out) < 1:
        with pytest.raises(ValueError, match="empty output"):
            F.conv_transpose2d(fc.randn(1, g, H, W), fc.randn(g, 1, *k), None, s, p, op, g, d)
        return
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    _check(rng, draw(st.integers(1, 2)), g * draw(st.integers(1, 2)), H, W,
           draw(st.integers(1, 3)), k, s, p, op, g, d, bias=draw(st.booleans()))


def test_layer_output_size_unbatched_and_init(rng):
    fm = fc.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2)
    tm = torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2)
    assert repr(fm) == repr(tm)
    assert fm.weight.shape == tuple(tm.weight.shape) and fm.bias.shape == (6,)
    bound = 1 / np.sqrt(3 * 3 * 3)  # fan_in = out_channels / groups * kH * kW
    assert np.abs(fm.weight.detach().numpy()).max() <= np.float32(bound)
    assert np.abs(fm.weight.detach().numpy()).max() > 0.8 * bound
    tm.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in fm.state_dict().items()})
    x = rng.standard_normal((4, 5, 5)).astype(np.float32)
    for size in (None, (9, 9), (10, 9), [6, 10, 10]):
        fy = fm(fc.tensor(x), output_size=size)
        ty = tm(torch.tensor(x), output_size=size)
        np.testing.assert_allclose(fy.detach().numpy(), ty.detach().numpy(), atol=1e-5)
    fy = fm(fc.tensor(x[None]), output_size=[1, 6, 9, 10])
    ty = tm(torch.tensor(x[None]), output_size=[1, 6, 9, 10])
    np.testing.assert_allclose(fy.detach().numpy(), ty.detach().numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="valid sizes range from 9 to 10"):
        fm(fc.tensor(x), output_size=(11, 9))
    with pytest.raises(ValueError, match="must have 2 or 3 elements"):
        fm(fc.tensor(x), output_size=(1, 6, 9, 9))


def test_bad_arguments(rng):
    x, w = fc.randn(1, 4, 3, 3), fc.randn(4, 2, 3, 3)
    with pytest.raises(ValueError, match="input has 3 channels"):
        F.conv_transpose2d(fc.randn(1, 3, 3, 3), w)
    with pytest.raises(ValueError, match="output_padding"):
        F.conv_transpose2d(x, w, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="groups=3 must divide"):
        F.conv_transpose2d(fc.randn(1, 4, 3, 3), fc.randn(4, 2, 3, 3), groups=3)
    with pytest.raises(ValueError, match="bias must have shape"):
        F.conv_transpose2d(x, w, fc.randn(3))
    with pytest.raises(ValueError, match="output_padding"):
        fc.nn.ConvTranspose2d(2, 2, 3, stride=1, output_padding=1)
    with pytest.raises(ValueError, match="zeros"):
        fc.nn.ConvTranspose2d(2, 2, 3, padding_mode="reflect")
    with pytest.raises((TypeError, ValueError)):
        F.conv_transpose2d(fc.randn(4, 3, 3), fc.randn(4, 2, 3))


def test_bfloat16_autocast_rounds_like_conv2d(rng):
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    with fc.autocast("cpu", dtype=fc.bfloat16):
        y = F.conv_transpose2d(fc.tensor(x), fc.tensor(w), stride=2).numpy()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ty = TF.conv_transpose2d(torch.tensor(x), torch.tensor(w), stride=2)
    assert ty.dtype == torch.bfloat16
    bits = y.view(np.uint32)
    assert not np.any(bits & 0xFFFF)  # every value a bfloat16 number
    np.testing.assert_allclose(y, ty.float().numpy(), rtol=2e-2, atol=2e-2)


def test_onnx_export_and_import(tmp_path, rng):
    ort = pytest.importorskip("onnxruntime")
    m = fc.nn.Sequential(fc.nn.Conv2d(3, 4, 3, stride=2, padding=1), fc.nn.ReLU(),
                         fc.nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1, output_padding=1,
                                               groups=2),
                         fc.nn.ConvTranspose2d(4, 3, 2, stride=2, dilation=2, padding=1,
                                               output_padding=1))
    m.eval()
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    path = str(tmp_path / "ct.onnx")
    fc.onnx.export(m, fc.tensor(x), path)
    sess = ort.InferenceSession(path)
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    want = m(fc.tensor(x)).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    back = fc.onnx.load(path)
    np.testing.assert_allclose(back(fc.tensor(x)).detach().numpy(), want, rtol=1e-6, atol=1e-6)
