"""1-D convolution and pooling (conv1d, conv_transpose1d, max/avg/adaptive pools and their
layers) against torch: random configurations forward and backward, batched and unbatched,
padding modes, indices, the layers' form and initialisation, bad arguments."""

from __future__ import annotations

import fastconv.nn.functional as F
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastconv as fc

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _both(rng, f_call, t_call, *arrays):
    fs = [fc.tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    fy, ty = f_call(*fs), t_call(*ts)
    assert tuple(fy.shape) == tuple(ty.shape)
    np.testing.assert_allclose(fy.detach().numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    dy = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
    fy.backward(fc.tensor(dy))
    ty.backward(torch.tensor(dy))
    for f, t in zip(fs, ts):
        np.testing.assert_allclose(f.grad.numpy(), t.grad.numpy(), rtol=1e-4, atol=1e-4)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_conv1d_random_configurations(data):
    draw = data.draw
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    g = draw(st.integers(1, 2))
    C, OC = g * draw(st.integers(1, 3)), g * draw(st.integers(1, 3))
    k, s, d = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
    p = draw(st.integers(0, d * (k - 1) // 2))
    L = draw(st.integers(d * (k - 1) + 1 - 2 * p, 12))
    shape = (C, L) if draw(st.booleans()) else (2, C, L)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((OC, C // g, k)).astype(np.float32)
    b = rng.standard_normal(OC).astype(np.float32)
    _both(rng, lambda x_, w_, b_: F.conv1d(x_, w_, b_, s, p, d, g),
          lambda x_, w_, b_: TF.conv1d(x_, w_, b_, s, p, d, g), x, w, b)
    op = draw(st.integers(0, max(s, d) - 1))
    wt = rng.standard_normal((C, OC // g, k)).astype(np.float32)
    _both(rng, lambda x_, w_: F.conv_transpose1d(x_, w_, None, s, p, op, g, d),
          lambda x_, w_: TF.conv_transpose1d(x_, w_, None, s, p, op, g, d), x, wt)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_pools_random_configurations(data):
    draw = data.draw
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    k, s = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    p = draw(st.integers(0, k // 2))
    L = draw(st.integers(k, 13))
    shape = (3, L) if draw(st.booleans()) else (2, 3, L)
    # distinct values: a tie would give torch and fastconv different (both valid) argmaxes
    x = (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.01).astype(np.float32)
    ceil = draw(st.booleans())
    _both(rng, lambda x_: F.max_pool1d(x_, k, s, p, 1, ceil),
          lambda x_: TF.max_pool1d(x_, k, s, p, 1, ceil), x)
    cip = draw(st.booleans())
    _both(rng, lambda x_: F.avg_pool1d(x_, k, s, p, ceil, cip),
          lambda x_: TF.avg_pool1d(x_, k, s, p, ceil, cip), x)
    out = draw(st.integers(1, L + 2))
    _both(rng, lambda x_: F.adaptive_avg_pool1d(x_, out),
          lambda x_: TF.adaptive_avg_pool1d(x_, out), x)
    _both(rng, lambda x_: F.adaptive_max_pool1d(x_, out),
          lambda x_: TF.adaptive_max_pool1d(x_, out), x)
    fi = F.max_pool1d(fc.tensor(x), k, s, p, return_indices=True)[1]
    ti = TF.max_pool1d(torch.tensor(x), k, s, p, return_indices=True)[1]
    np.testing.assert_array_equal(fi.numpy(), ti.numpy())


@pytest.mark.parametrize("kwargs", [{}, {"stride": 2, "padding": 1, "dilation": 2, "groups": 2,
                                         "bias": False},
                                    {"padding": "same", "padding_mode": "reflect"},
                                    {"padding": 2, "padding_mode": "circular"},
                                    {"padding": "valid", "padding_mode": "replicate"}])
def test_conv1d_layer_as_torch(rng, kwargs):
    f, t = fc.nn.Conv1d(4, 6, 3, **kwargs), torch.nn.Conv1d(4, 6, 3, **kwargs)
    assert repr(f) == repr(t)
    assert f.weight.shape == tuple(t.weight.shape)
    bound = 1 / np.sqrt(f.weight.shape[1] * 3)
    assert 0.7 * bound < float(np.abs(f.weight.detach().numpy()).max()) <= np.float32(bound)
    t.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in f.state_dict().items()})
    x = rng.standard_normal((2, 4, 9)).astype(np.float32)
    _both(rng, f, t, x)


def test_transposed_and_pool_layers_as_torch(rng):
    pairs = [(fc.nn.ConvTranspose1d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2),
              torch.nn.ConvTranspose1d(4, 6, 3, stride=2, padding=1, output_padding=1,
                                       groups=2)),
             (fc.nn.MaxPool1d(3, 2, 1), torch.nn.MaxPool1d(3, 2, 1)),
             (fc.nn.AvgPool1d(3, 2, 1, count_include_pad=False),
              torch.nn.AvgPool1d(3, 2, 1, count_include_pad=False)),
             (fc.nn.AdaptiveAvgPool1d(4), torch.nn.AdaptiveAvgPool1d(4)),
             (fc.nn.AdaptiveMaxPool1d(4), torch.nn.AdaptiveMaxPool1d(4))]
    x = rng.standard_normal((2, 4, 9)).astype(np.float32)
    for f, t in pairs:
        assert repr(f) == repr(t)
        if f.state_dict():
            t.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in f.state_dict().items()})
        _both(rng, f, t, x)
    ct = pairs[0][0]
    assert ct(fc.tensor(x), output_size=[18]).shape == (2, 6, 18)


def test_bad_arguments():
    x = fc.randn(2, 4, 9)
    with pytest.raises(ValueError, match="2-D or 3-D"):
        F.conv1d(fc.randn(2, 4, 9, 9), fc.randn(6, 4, 3))
    with pytest.raises(ValueError, match="3-D"):
        F.conv1d(x, fc.randn(6, 4, 3, 3))
    with pytest.raises(ValueError, match="1-element"):
        F.conv1d(x, fc.randn(6, 4, 3), stride=(1, 2))
    with pytest.raises(TypeError, match="int"):
        F.max_pool1d(x, 2.5)
    with pytest.raises(ValueError):
        F.conv1d(x, fc.randn(6, 3, 3))  # channels do not match
    with pytest.raises(ValueError, match="groups"):
        fc.nn.Conv1d(4, 6, 3, groups=4)
    with pytest.raises(ValueError, match="strided"):
        fc.nn.Conv1d(4, 6, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="output_padding"):
        fc.nn.ConvTranspose1d(4, 6, 3, output_padding=1)


@pytest.mark.parametrize("call, words", [
    (lambda x: F.conv1d(x, fc.randn(3, 2, 3), stride=0), "conv1d: stride must be >= 1"),
    (lambda x: F.conv_transpose1d(x, fc.randn(2, 3, 3), dilation=0),
     "conv_transpose1d: dilation must be >= 1"),
    (lambda x: F.avg_pool1d(x, 0), "avg_pool1d: kernel_size must be >= 1"),
    (lambda x: F.max_pool1d(x, 2, padding=-1), "max_pool1d: padding must be >= 0"),
])
def test_bad_sizes_are_named_by_the_1d_op(call, words):
    """The 1-D ops run on their 2-D twins; a bad size is reported in the 1-D op's terms."""
    with pytest.raises(ValueError, match=words):
        call(fc.randn(1, 2, 8))
