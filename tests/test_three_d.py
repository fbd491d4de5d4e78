"""3-D convolution, pooling and batch norm (functions and layers) against torch: random
configurations forward and every gradient, batched and unbatched, ceil_mode and padding
rules, the layers' form and initialisation, bad arguments."""

from __future__ import annotations

import fastconv.nn.functional as F
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastconv as fc

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _both(rng, f_call, t_call, *arrays, tol=1e-4):
    fs = [fc.tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    fy, ty = f_call(*fs), t_call(*ts)
    assert tuple(fy.shape) == tuple(ty.shape)
    scale = max(1.0, float(ty.detach().abs().max()))
    np.testing.assert_allclose(fy.detach().numpy(), ty.detach().numpy(), rtol=tol,
                               atol=tol * scale)
    dy = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
    fy.backward(fc.tensor(dy))
    ty.backward(torch.tensor(dy))
    for f, t in zip(fs, ts):
        gscale = max(1.0, float(t.grad.abs().max()))
        np.testing.assert_allclose(f.grad.numpy(), t.grad.numpy(), rtol=tol, atol=tol * gscale)


def _distinct(rng, *shape):
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) / n).astype(np.float32)  # no ties for max


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_conv3d_random_configurations(data):
    draw = data.draw
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    g = draw(st.integers(1, 2))
    C, OC = g * draw(st.integers(1, 2)), g * draw(st.integers(1, 3))
    k = tuple(draw(st.integers(1, 3)) for _ in range(3))
    s = tuple(draw(st.integers(1, 2)) for _ in range(3))
    d = tuple(draw(st.integers(1, 2)) for _ in range(3))
    p = tuple(draw(st.integers(0, d[i] * (k[i] - 1) // 2)) for i in range(3))
    size = tuple(draw(st.integers(d[i] * (k[i] - 1) + 1, 6)) for i in range(3))
    x = rng.standard_normal(((2, C) if draw(st.booleans()) else (C,)) + size)
    w = rng.standard_normal((OC, C // g) + k)
    b = rng.standard_normal(OC)
    _both(rng, lambda x_, w_, b_: F.conv3d(x_, w_, b_, s, p, d, g),
          lambda x_, w_, b_: TF.conv3d(x_, w_, b_, s, p, d, g),
          *(a.astype(np.float32) for a in (x, w, b)))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_pool3d_random_configurations(data):
    draw = data.draw
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    k = tuple(draw(st.integers(1, 3)) for _ in range(3))
    s = tuple(draw(st.integers(1, 3)) for _ in range(3))
    p = tuple(draw(st.integers(0, k[i] // 2)) for i in range(3))
    size = tuple(draw(st.integers(k[i], 7)) for i in range(3))
    ceil = draw(st.booleans())
    x = _distinct(rng, *(((2, 3) if draw(st.booleans()) else (3,)) + size))
    _both(rng, lambda x_: F.max_pool3d(x_, k, s, p, 1, ceil),
          lambda x_: TF.max_pool3d(x_, k, s, p, 1, ceil), x)
    cip = draw(st.booleans())
    div = draw(st.sampled_from([None, 3]))
    _both(rng, lambda x_: F.avg_pool3d(x_, k, s, p, ceil, cip, div),
          lambda x_: TF.avg_pool3d(x_, k, s, p, ceil, cip, div), x)
    out = tuple(draw(st.integers(1, n + 1)) for n in size)
    _both(rng, lambda x_: F.adaptive_avg_pool3d(x_, out),
          lambda x_: TF.adaptive_avg_pool3d(x_, out), x)


@pytest.mark.parametrize("kwargs", [{}, {"stride": 2, "padding": 1, "groups": 2, "bias": False},
                                    {"padding": "same", "dilation": (1, 2, 1)},
                                    {"padding": "valid"}])
def test_conv3d_layer_as_torch(rng, kwargs):
    f, t = fc.nn.Conv3d(4, 6, (3, 2, 3), **kwargs), torch.nn.Conv3d(4, 6, (3, 2, 3), **kwargs)
    assert repr(f) == repr(t)
    bound = 1 / np.sqrt(f.weight.shape[1] * 18)
    assert 0.7 * bound < float(np.abs(f.weight.detach().numpy()).max()) <= np.float32(bound)
    t.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in f.state_dict().items()})
    _both(rng, f, t, rng.standard_normal((2, 4, 5, 6, 5)).astype(np.float32))


def test_pool_and_norm_layers_as_torch(rng):
    x = _distinct(rng, 2, 3, 5, 6, 5)
    for f, t in ((fc.nn.MaxPool3d(2, 2, 1), torch.nn.MaxPool3d(2, 2, 1)),
                 (fc.nn.AvgPool3d(3, 2, 1, count_include_pad=False),
                  torch.nn.AvgPool3d(3, 2, 1, count_include_pad=False)),
                 (fc.nn.AdaptiveAvgPool3d((1, 2, None)), torch.nn.AdaptiveAvgPool3d((1, 2, None))),
                 (fc.nn.BatchNorm3d(3), torch.nn.BatchNorm3d(3))):
        assert repr(f) == repr(t)
        _both(rng, f, t, x)
    bn_f, bn_t = fc.nn.BatchNorm3d(3), torch.nn.BatchNorm3d(3)
    bn_f(fc.tensor(x))
    bn_t(torch.tensor(x))
    np.testing.assert_allclose(bn_f.running_var.numpy(), bn_t.running_var.numpy(), rtol=1e-5)
    bn_f.eval()
    bn_t.eval()
    _both(rng, bn_f, bn_t, x)


def test_bad_arguments():
    x = fc.randn(1, 2, 4, 4, 4)
    with pytest.raises(ValueError, match="4-D or 5-D"):
        F.conv3d(fc.randn(2, 4, 4), fc.randn(3, 2, 1, 1, 1))
    with pytest.raises(ValueError, match="channels"):
        F.conv3d(x, fc.randn(3, 3, 1, 1, 1))
    with pytest.raises(ValueError, match="3 ints"):
        F.max_pool3d(x, (2, 2))
    with pytest.raises(ValueError, match="half"):
        F.max_pool3d(x, 2, padding=(2, 0, 0))
    with pytest.raises(ValueError, match="5-D"):
        fc.nn.BatchNorm3d(2)(fc.randn(2, 2, 4, 4))
    with pytest.raises(ValueError, match="strided"):
        fc.nn.Conv3d(2, 2, 3, stride=2, padding="same")


@pytest.mark.parametrize("out", [(2, 3, 4), (1, 1, 1), (3, None, 2)])
def test_adaptive_avg_pool3d_keeps_a_non_finite_value_in_its_windows(out, rng):
    """An inf or NaN reaches only the output cells whose windows hold it, as torch's (a
    matmul with the dense averaging matrix spread it over the whole line)."""
    from helpers import assert_nonfinite_like, poison

    x = poison(rng, rng.standard_normal((2, 3, 5, 7, 6)).astype(np.float32))
    got = F.adaptive_avg_pool3d(fc.tensor(x), out)
    want = TF.adaptive_avg_pool3d(torch.tensor(x), out)
    assert_nonfinite_like(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    _both(rng, lambda x_: F.adaptive_avg_pool3d(x_, out),
          lambda x_: TF.adaptive_avg_pool3d(x_, out), rng.standard_normal(x.shape).astype(
              np.float32))
