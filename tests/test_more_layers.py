"""Further torch layers: padding of 1-D and 3-D inputs in every mode, Dropout3d, AlphaDropout
and FeatureAlphaDropout, ChannelShuffle, LPPool1d/2d, MaxUnpool1d, InstanceNorm1d/3d,
RMSNorm and Bilinear, against torch (the random ones by their statistics and structure)."""

from __future__ import annotations

import numpy as np
import pytest

import fastconv as fc

torch = pytest.importorskip("torch")


def _same(f, t, *arrays, rng):
    t.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in f.state_dict().items()})
    assert repr(f) == repr(t)
    fs = [fc.tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    fy, ty = f(*fs), t(*ts)
    dy = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
    fy.backward(fc.tensor(dy))
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(fy.detach().numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    for a, b in zip(fs, ts):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-4, atol=1e-5)


CASES = [("ReflectionPad1d", (2,), "3d"), ("ReflectionPad3d", ((1, 2, 1, 0, 2, 1),), "5d"),
         ("ReplicationPad1d", (3,), "3d"), ("ReplicationPad3d", (1,), "5d"),
         ("ZeroPad1d", ((1, 2),), "3d"), ("ZeroPad3d", (1,), "5d"),
         ("ConstantPad1d", (2, 3.5), "3d"), ("ConstantPad3d", (1, -1.0), "5d"),
         ("CircularPad1d", (2,), "3d"), ("CircularPad3d", (1,), "5d"),
         ("ChannelShuffle", (3,), "4d"), ("LPPool2d", (2, 3, 2), "4d+"),
         ("LPPool1d", (3, 2), "3d+"), ("LPPool2d", (1.5, (2, 3), None, True), "4d+"),
         ("InstanceNorm1d", (6,), "3d"), ("InstanceNorm3d", (6, 1e-5, 0.1, True), "5d"),
         ("RMSNorm", ((5, 7),), "4d"), ("RMSNorm", (7, 1e-3, False), "4d")]


@pytest.mark.parametrize("name,args,kind", CASES, ids=[f"{c[0]}{i}" for i, c in enumerate(CASES)])
def test_layers_match_torch(rng, name, args, kind):
    shape = {"3d": (2, 6, 9), "4d": (2, 6, 5, 7), "5d": (2, 6, 3, 4, 5)}[kind.rstrip("+")]
    x = rng.standard_normal(shape).astype(np.float32)
    if kind.endswith("+"):  # power means of positive values
        x = np.abs(x) + 0.1
    _same(getattr(fc.nn, name)(*args), getattr(torch.nn, name)(*args), x, rng=rng)


def test_bilinear_matches_torch(rng):
    f, t = fc.nn.Bilinear(4, 5, 3), torch.nn.Bilinear(4, 5, 3)
    bound = 1 / np.sqrt(4)
    assert 0.7 * bound < float(np.abs(f.weight.detach().numpy()).max()) <= np.float32(bound)
    _same(f, t, rng.standard_normal((2, 6, 4)).astype(np.float32),
          rng.standard_normal((2, 6, 5)).astype(np.float32), rng=rng)
    with pytest.raises(RuntimeError, match="do not match"):
        f(fc.randn(2, 3), fc.randn(2, 5))


def test_max_unpool1d_inverts_max_pool1d(rng):
    x = (rng.permutation(2 * 3 * 11).reshape(2, 3, 11) / 66).astype(np.float32)
    fy, fi = fc.nn.functional.max_pool1d(fc.tensor(x), 3, 2, 1, return_indices=True)
    ty, ti = torch.nn.functional.max_pool1d(torch.tensor(x), 3, 2, 1, return_indices=True)
    f, t = fc.nn.MaxUnpool1d(3, 2, 1), torch.nn.MaxUnpool1d(3, 2, 1)
    assert repr(f) == repr(t)
    got = f(fy, fi, output_size=[11])
    want = t(ty, ti, output_size=[11])
    np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_dropout3d_and_alpha_dropouts():
    fc.manual_seed(4)
    x = fc.randn(8, 16, 3, 3, 3)
    y = fc.nn.Dropout3d(0.5)(x).numpy()
    per_map = y.reshape(8, 16, -1)
    dropped = (per_map == 0).all(-1)
    assert dropped.any() and (~dropped).any()
    np.testing.assert_allclose(per_map[~dropped], 2 * x.numpy().reshape(8, 16, -1)[~dropped],
                               rtol=1e-6)
    z = fc.randn(400000)
    for layer in (fc.nn.AlphaDropout(0.3), fc.nn.FeatureAlphaDropout(0.3)):
        out = layer(z.reshape(4000, 100) if isinstance(layer, fc.nn.FeatureAlphaDropout)
                    else z).numpy()
        assert abs(out.mean()) < 0.02 and abs(out.std() - 1.0) < 0.02  # SELU's fixed point
        layer.eval()
        assert layer(z) is z
    out = fc.nn.functional.alpha_dropout(z, 0.3, training=True).numpy()
    alpha = -1.0507009873554805 * 1.6732632423543772  # SELU's saturation value
    scale = ((1 - 0.3) * (1 + 0.3 * alpha ** 2)) ** -0.5
    dropped = np.isclose(out, scale * alpha * (1 - 0.3), rtol=1e-6)  # where they all land
    assert abs(dropped.mean() - 0.3) < 0.005
    assert fc.nn.functional.alpha_dropout(z, 0.3) is z  # torch's default: training=False
    with pytest.warns(UserWarning, match="deprecated"):  # torch's: unbatched, one draw a row
        rows = fc.nn.functional.dropout3d(fc.randn(30, 4), 0.5).numpy()
    assert ((rows == 0).all(1) | (rows != 0).all(1)).all()
