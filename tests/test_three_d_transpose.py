"""3-D transposed convolution, max pooling with indices and max unpooling against torch:
random configurations (stride, padding, output_padding, groups, dilation, output_size),
forward and every gradient, batched and unbatched; the layers (form, initialisation, a
torch state_dict loaded); MaxPool3d(return_indices=True) into MaxUnpool3d; bad arguments."""

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


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_conv_transpose3d_random_configurations(data):
    draw = data.draw
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    g = draw(st.integers(1, 2))
    C, OCG = g * draw(st.integers(1, 2)), draw(st.integers(1, 3))
    k = tuple(draw(st.integers(1, 3)) for _ in range(3))
    s = tuple(draw(st.integers(1, 3)) for _ in range(3))
    d = tuple(draw(st.integers(1, 2)) for _ in range(3))
    p = tuple(draw(st.integers(0, d[i] * (k[i] - 1) // 2)) for i in range(3))
    op = tuple(draw(st.integers(0, max(s[i], d[i]) - 1)) for i in range(3))
    size = tuple(draw(st.integers(1, 4)) for _ in range(3))
    batched = draw(st.booleans())
    x = rng.standard_normal(((2, C) if batched else (C,)) + size).astype(np.float32)
    w = rng.standard_normal((C, OCG) + k).astype(np.float32)
    b = rng.standard_normal(OCG * g).astype(np.float32)
    if draw(st.booleans()):
        _both(rng, lambda x_, w_, b_: F.conv_transpose3d(x_, w_, b_, s, p, op, g, d),
              lambda x_, w_, b_: TF.conv_transpose3d(x_, w_, b_, s, p, op, g, d), x, w, b)
    else:
        _both(rng, lambda x_, w_: F.conv_transpose3d(x_, w_, None, s, p, op, g, d),
              lambda x_, w_: TF.conv_transpose3d(x_, w_, None, s, p, op, g, d), x, w)


@pytest.mark.parametrize("kwargs", [{}, {"stride": 2, "padding": 1, "output_padding": 1},
                                    {"stride": (2, 1, 3), "groups": 2, "bias": False},
                                    {"dilation": (2, 1, 1), "padding": (1, 0, 1),
                                     "output_padding": (1, 0, 0)}])
def test_conv_transpose3d_layer_as_torch(rng, kwargs):
    f = fc.nn.ConvTranspose3d(4, 6, (3, 2, 3), **kwargs)
    t = torch.nn.ConvTranspose3d(4, 6, (3, 2, 3), **kwargs)
    assert repr(f) == repr(t)
    assert {k: tuple(v.shape) for k, v in f.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in t.state_dict().items()}
    bound = 1 / np.sqrt(f.weight.shape[1] * 18)  # fan_in = out_channels / groups * kernel
    assert 0.7 * bound < float(np.abs(f.weight.detach().numpy()).max()) <= np.float32(bound)
    f.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    _both(rng, f, t, rng.standard_normal((2, 4, 3, 4, 3)).astype(np.float32))
    _both(rng, f, t, rng.standard_normal((4, 3, 2, 3)).astype(np.float32))  # unbatched


def test_conv_transpose3d_output_size(rng):
    """output_size picks the output_padding, as torch's (e.g. undoing a strided Conv3d)."""
    f = fc.nn.ConvTranspose3d(2, 3, 3, stride=2, padding=1)
    t = torch.nn.ConvTranspose3d(2, 3, 3, stride=2, padding=1)
    f.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    x = rng.standard_normal((1, 2, 3, 4, 5)).astype(np.float32)
    for size in ((5, 7, 9), (6, 8, 10), (6, 7, 10), (1, 2, 6, 8, 9)):
        _both(rng, lambda x_, s_=size: f(x_, output_size=s_),
              lambda x_, s_=size: t(x_, output_size=s_), x)
    with pytest.raises(ValueError, match="valid sizes range from 5 to 6"):
        f(fc.tensor(x), output_size=(7, 7, 9))
    with pytest.raises(ValueError, match="3 or 5 elements"):
        f(fc.tensor(x), output_size=(7, 9))


def test_conv_transpose3d_is_the_gradient_of_conv3d(rng):
    """<conv3d(x, w), y> = <x, conv_transpose3d(y, w)>: the adjoint identity, strided and
    dilated, with groups."""
    x = rng.standard_normal((2, 4, 7, 6, 5)).astype(np.float32)
    w = rng.standard_normal((6, 2, 3, 2, 3)).astype(np.float32)
    args = dict(stride=(2, 1, 2), padding=(1, 1, 0), dilation=(1, 2, 1), groups=2)
    y = F.conv3d(fc.tensor(x), fc.tensor(w), **args)
    v = rng.standard_normal(tuple(y.shape)).astype(np.float32)
    back = F.conv_transpose3d(fc.tensor(v), fc.tensor(w), output_size=x.shape[2:], **args)
    np.testing.assert_allclose(float((y.numpy() * v).sum()), float((x * back.numpy()).sum()),
                               rtol=1e-4)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_max_pool3d_indices_and_unpool_random_configurations(data):
    draw = data.draw
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    k = tuple(draw(st.integers(1, 3)) for _ in range(3))
    s = tuple(draw(st.integers(1, 3)) for _ in range(3))
    d = tuple(draw(st.integers(1, 2)) for _ in range(3))
    p = tuple(draw(st.integers(0, k[i] // 2)) for i in range(3))
    size = tuple(draw(st.integers(d[i] * (k[i] - 1) + 1, 7)) for i in range(3))
    ceil = draw(st.booleans())
    x = _distinct(rng, *(((2, 3) if draw(st.booleans()) else (3,)) + size))
    fx, tx = fc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    fy, fi = F.max_pool3d(fx, k, s, p, d, ceil, return_indices=True)
    ty, ti = TF.max_pool3d(tx, k, s, p, d, ceil, return_indices=True)
    assert fi.dtype == np.int64
    np.testing.assert_array_equal(fi.numpy(), ti.numpy())
    np.testing.assert_array_equal(fy.detach().numpy(), ty.detach().numpy())
    dy = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
    fy.backward(fc.tensor(dy))
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(fx.grad.numpy(), tx.grad.numpy(), atol=1e-6)
    # unpooling back to the input's size (valid whenever torch accepts it)
    pooled = ty.detach().numpy()
    try:
        TF.max_unpool3d(torch.tensor(pooled), ti, k, s, p, output_size=size)
    except (ValueError, RuntimeError):
        with pytest.raises(ValueError, match="output_size"):
            F.max_unpool3d(fc.tensor(pooled), fi, k, s, p, output_size=size)
        return
    _both(rng, lambda u: F.max_unpool3d(u, fi, k, s, p, output_size=size),
          lambda u: TF.max_unpool3d(u, ti, k, s, p, output_size=size), pooled)


def test_pool_unpool_layers_as_torch(rng):
    x = _distinct(rng, 2, 3, 6, 5, 7)
    fp, tp = fc.nn.MaxPool3d(2, 2, return_indices=True), \
        torch.nn.MaxPool3d(2, 2, return_indices=True)
    fu, tu = fc.nn.MaxUnpool3d(2, 2), torch.nn.MaxUnpool3d(2, 2)
    assert repr(fp) == repr(tp) and repr(fu) == repr(tu)
    fy, fi = fp(fc.tensor(x))
    ty, ti = tp(torch.tensor(x))
    np.testing.assert_array_equal(fi.numpy(), ti.numpy())
    pooled = ty.numpy()
    with pytest.raises(RuntimeError, match="invalid max index"):  # as torch's: the default
        fu(fc.tensor(pooled), fi)  # size (6, 4, 6) is too small for these indices
    even = x[:, :, :, :4, :6].copy()
    _both(rng, lambda u: fu(u, fp(fc.tensor(even))[1]),
          lambda u: tu(u, tp(torch.tensor(even))[1]), pooled[:, :, :, :, :3].copy())
    _both(rng, lambda u: fu(u, fi, output_size=x.shape),
          lambda u: tu(u, ti, output_size=x.shape), pooled)
    # unbatched
    fy1, fi1 = fp(fc.tensor(x[0]))
    np.testing.assert_array_equal(fi1.numpy(), ti[0].numpy())
    _both(rng, lambda u: fu(u, fi1, output_size=x.shape[2:]),
          lambda u: tu(u, ti[0], output_size=x.shape[2:]), pooled[0])
    with pytest.raises(ValueError, match="3 or 5"):  # as torch: not (C, D, H, W)
        fu(fc.tensor(pooled[0]), fi1, output_size=x.shape[1:])


def test_max_pool3d_ties_send_the_gradient_to_the_first_maximum():
    x = np.ones((1, 1, 2, 2, 2), np.float32)
    fx, tx = fc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    F.max_pool3d(fx, 2).sum().backward()
    TF.max_pool3d(tx, 2).sum().backward()
    np.testing.assert_array_equal(fx.grad.numpy(), tx.grad.numpy())


def test_bad_arguments():
    x, w = fc.randn(1, 4, 3, 3, 3), fc.randn(4, 2, 2, 2, 2)
    with pytest.raises(ValueError, match="4-D or 5-D"):
        F.conv_transpose3d(fc.randn(4, 3, 3), w)
    with pytest.raises(ValueError, match="weight must be 5-D"):
        F.conv_transpose3d(x, fc.randn(4, 2, 2, 2))
    with pytest.raises(ValueError, match="channels"):
        F.conv_transpose3d(fc.randn(1, 3, 3, 3, 3), w)
    with pytest.raises(ValueError, match="groups=3"):
        F.conv_transpose3d(x, w, groups=3)
    with pytest.raises(ValueError, match="bias must have shape"):
        F.conv_transpose3d(x, w, fc.randn(3))
    with pytest.raises(ValueError, match="output_padding"):
        F.conv_transpose3d(x, w, stride=2, output_padding=(0, 2, 0))
    with pytest.raises(ValueError, match="3 ints"):
        F.conv_transpose3d(x, w, stride=(1, 2))
    with pytest.raises(ValueError, match="empty output"):
        F.conv_transpose3d(x, w, padding=3)
    with pytest.raises(ValueError, match="output_padding"):
        fc.nn.ConvTranspose3d(2, 2, 3, output_padding=1)
    with pytest.raises(ValueError, match="padding_mode"):
        fc.nn.ConvTranspose3d(2, 2, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="groups"):
        fc.nn.ConvTranspose3d(3, 2, 3, groups=2)
    y, idx = F.max_pool3d(fc.randn(1, 2, 4, 4, 4), 2, return_indices=True)
    with pytest.raises(TypeError, match="int64"):
        F.max_unpool3d(y, y, 2)
    with pytest.raises(ValueError, match="input's shape"):
        F.max_unpool3d(y, idx[:, :1], 2)
    with pytest.raises(ValueError, match="3 or 5"):
        F.max_unpool3d(y, idx, 2, output_size=(4, 4))
    with pytest.raises(ValueError, match="invalid output_size"):
        F.max_unpool3d(y, idx, 2, output_size=(6, 4, 4))
    with pytest.raises(RuntimeError, match="invalid max index"):
        F.max_unpool3d(y, idx + 64, 2)
