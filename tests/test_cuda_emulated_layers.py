"""The CUDA kernels of the activations, group / layer norm, padding, dilated and adaptive max
pooling and interpolation (fastconv/cuda/activation.cu, norm_layer.cu, pad.cu, pool.cu,
resize.cu), run on the CPU through the stand-in CuPy of tests/cuda_emulation.py and checked
forward and backward against torch (float64), on random shapes with odd sizes and size-1 dims.

The tables that the padding and resizing kernels take come from the ops' own builders
(fastconv/ops/pad.py, upsample.py), exactly as the ops hand them over.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from cuda_emulation import load_emulated_backend
from helpers import assert_close, assert_grad_close, assert_nonfinite_like, distinct, poison, randn

from fastconv.ops import pad as pad_ops
from fastconv.ops import upsample as upsample_ops

torch = pytest.importorskip("torch")
tF = torch.nn.functional


@pytest.fixture(scope="module")
def be(tmp_path_factory):
    if shutil.which("g++") is None:
        pytest.skip("g++ is not on the PATH")
    return load_emulated_backend(tmp_path_factory.mktemp("cuda_emu_layers"))


def _torch(fn, *arrays):
    """fn on float64 torch copies of arrays that require grad: (output, the tensors)."""
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    return fn(*ts), ts


def _shape(rng, ndim, lo=1, hi=6):
    return tuple(int(v) for v in rng.integers(lo, hi, size=ndim))


# ----------------------------------------------------------------------------- activations

ACTIVATIONS = [
    ("leaky_relu", lambda be, x: be.leaky_relu_forward(x, 0.1),
     lambda be, x, y, dy: be.leaky_relu_backward(x, dy, 0.1), lambda t: tF.leaky_relu(t, 0.1)),
    ("elu", lambda be, x: be.elu_forward(x, 0.7),
     lambda be, x, y, dy: be.elu_backward(x, dy, 0.7), lambda t: tF.elu(t, 0.7)),
    ("gelu", lambda be, x: be.gelu_forward(x, "none"),
     lambda be, x, y, dy: be.gelu_backward(x, dy, "none"), tF.gelu),
    ("gelu_tanh", lambda be, x: be.gelu_forward(x, "tanh"),
     lambda be, x, y, dy: be.gelu_backward(x, dy, "tanh"),
     lambda t: tF.gelu(t, approximate="tanh")),
    ("silu", lambda be, x: be.silu_forward(x), lambda be, x, y, dy: be.silu_backward(x, dy),
     tF.silu),
    ("sigmoid", lambda be, x: be.sigmoid_forward(x),
     lambda be, x, y, dy: be.sigmoid_backward(y, dy), torch.sigmoid),
    ("tanh", lambda be, x: be.tanh_forward(x), lambda be, x, y, dy: be.tanh_backward(y, dy),
     torch.tanh),
]


@pytest.mark.parametrize("name,fwd,bwd,tf", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activations(be, name, fwd, bwd, tf, rng):
    x = randn(rng, *_shape(rng, 3), scale=3.0)
    y = fwd(be, x)
    yt, (xt,) = _torch(tf, x)
    assert_close(y, yt, name=name)
    dy = randn(rng, *x.shape)
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    assert_grad_close(bwd(be, x, y, dy), xt.grad, name=f"{name} backward")


# ----------------------------------------------------------------------------- group / layer norm

@pytest.mark.parametrize("affine", [True, False])
def test_group_norm(be, affine, rng):
    for _ in range(3):
        G = int(rng.integers(1, 4))
        C = G * int(rng.integers(1, 3))
        spatial = _shape(rng, int(rng.integers(0, 3)))
        if (C // G) * int(np.prod(spatial)) < 4:  # fewer values are ill-conditioned in float32
            spatial = spatial + (4,)
        x = randn(rng, int(rng.integers(1, 3)), C, *spatial, scale=2.0) + 1.0
        w, b = (randn(rng, C), randn(rng, C)) if affine else (None, None)
        y, mean, rstd = be.group_norm_forward(x, w, b, G, 1e-5)
        arrays = [x] + ([w, b] if affine else [])
        yt, ts = _torch(lambda a, *wb, g=G: tF.group_norm(a, g, *wb, eps=1e-5), *arrays)
        assert_close(y, yt, name="group_norm")
        dy = randn(rng, *x.shape)
        yt.backward(torch.tensor(dy, dtype=torch.float64))
        dx, dw, db = be.group_norm_backward(x, w, mean, rstd, dy, G, True, True)
        assert_grad_close(dx, ts[0].grad, name="group_norm dx")
        if affine:
            assert_grad_close(dw, ts[1].grad, name="group_norm dweight")
            assert_grad_close(db, ts[2].grad, name="group_norm dbias")
        dx2, dw2, db2 = be.group_norm_backward(x, w, mean, rstd, dy, G, True, False)
        assert dw2 is None and db2 is None
        np.testing.assert_array_equal(dx2, dx)


def test_layer_norm_as_one_group(be, rng):
    K = 13
    x, w, b = randn(rng, 3, 5, K, scale=2.0), randn(rng, K), randn(rng, K)
    y, mean, rstd = be.group_norm_forward(x.reshape(-1, K), w, b, 1, 1e-5)
    yt, (xt, wt, bt) = _torch(lambda a, c, d: tF.layer_norm(a, (K,), c, d), x, w, b)
    assert_close(y.reshape(x.shape), yt)
    dy = randn(rng, *x.shape)
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    dx, dw, db = be.group_norm_backward(x.reshape(-1, K), w, mean, rstd, dy.reshape(-1, K), 1,
                                        True, True)
    assert_grad_close(dx.reshape(x.shape), xt.grad)
    assert_grad_close(dw, wt.grad)
    assert_grad_close(db, bt.grad)


# ----------------------------------------------------------------------------- padding

PAD_CASES = [
    ((2, 3, 4, 5), (1, 2, 3, 0), "constant"),
    ((2, 3, 4, 5), (-1, 2, 1, -2, 1, 0), "constant"),
    ((1, 2, 5, 4), (3, 1, 2, 4), "reflect"),
    ((2, 1, 3, 4), (3, 1, 2, 4), "replicate"),
    ((2, 3, 4, 5), (5, 2, 1, 4), "circular"),
    ((3, 7), (6, 6), "reflect"),
    ((1, 2, 3, 2, 3), (1, 2, 0, 1, 2, 2), "replicate"),
]


@pytest.mark.parametrize("shape,pads,mode", PAD_CASES, ids=str)
def test_pad(be, shape, pads, mode, rng):
    x = randn(rng, *shape)
    index = [None] * x.ndim
    for i in range(len(pads) // 2):
        d = x.ndim - 1 - i
        index[d] = pad_ops._source_index(mode, shape[d], pads[2 * i], pads[2 * i + 1])
    value = 0.5 if mode == "constant" else 0.0
    y = be.pad_forward(x, tuple(index), value)
    kw = {"value": value} if mode == "constant" else {}
    yt, (xt,) = _torch(lambda t: tF.pad(t, pads, mode=mode, **kw), x)
    assert_close(y, yt)
    dy = randn(rng, *y.shape)
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    assert_grad_close(be.pad_backward(dy, x.shape, tuple(index)), xt.grad)


# ----------------------------------------------------------------------------- pooling

@pytest.mark.parametrize("k,s,p,d,ceil", [(3, 2, 1, 2, True), ((2, 3), 1, (1, 0), (2, 1), False),
                                          (2, 2, 0, 3, False), (3, 1, 1, 1, True)], ids=str)
def test_max_pool2d_dilated(be, k, s, p, d, ceil, rng):
    def pair(v):
        return (v, v) if isinstance(v, int) else v

    x = distinct(rng, 2, 3, 11, 10)
    y, idx = be.max_pool2d_forward(x, pair(k), pair(s), pair(p), ceil, pair(d))
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    yt, it = tF.max_pool2d(xt, k, s, p, d, ceil, return_indices=True)
    assert_close(y, yt)
    np.testing.assert_array_equal(idx, it.numpy())
    dy = randn(rng, *y.shape)
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    assert_grad_close(be.max_pool2d_backward(dy, idx, x.shape, pair(k), pair(s), pair(p),
                                             pair(d)), xt.grad)


def test_max_pool2d_dilated_window_that_misses_the_input(be, rng):
    x = randn(rng, 2, 3, 1, 5)
    y, idx = be.max_pool2d_forward(x, (2, 1), (1, 1), (2, 0), False, (3, 1))
    assert np.all(y == -np.inf) and np.all(idx == -1)
    dx = be.max_pool2d_backward(randn(rng, *y.shape), idx, x.shape, (2, 1), (1, 1), (2, 0), (3, 1))
    np.testing.assert_array_equal(dx, 0)


@pytest.mark.parametrize("out", [(4, 3), (1, 1), (11, 10), (13, 4), (3, 7)], ids=str)
def test_adaptive_max_pool2d(be, out, rng):
    x = distinct(rng, 2, 3, 11, 10)
    y, idx = be.adaptive_max_pool2d_forward(x, out)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    yt, it = tF.adaptive_max_pool2d(xt, out, return_indices=True)
    assert_close(y, yt)
    np.testing.assert_array_equal(idx, it.numpy())
    dy = randn(rng, *y.shape)
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    assert_grad_close(be.adaptive_max_pool2d_backward(dy, idx, x.shape), xt.grad)


# ----------------------------------------------------------------------------- interpolate

@pytest.mark.parametrize("mode,align", [("nearest", None), ("nearest-exact", None),
                                        ("bilinear", False), ("bilinear", True)])
@pytest.mark.parametrize("size", [(9, 7), (2, 3), (5, 1), (1, 6)], ids=str)
def test_interpolate(be, mode, align, size, rng):
    x = randn(rng, 2, 3, 4, 5)
    rows = upsample_ops._source_index(mode, 4, size[0], None, bool(align))
    cols = upsample_ops._source_index(mode, 5, size[1], None, bool(align))
    y = be.interpolate_forward(x, *rows, *cols)
    yt, (xt,) = _torch(lambda t: tF.interpolate(t, size, mode=mode, align_corners=align), x)
    assert_close(y, yt)
    dy = randn(rng, *y.shape)
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    assert_grad_close(be.interpolate_backward(dy, x.shape, *rows, *cols), xt.grad)


@pytest.mark.parametrize("mode,align", [("nearest", None), ("bilinear", False),
                                        ("bilinear", True)])
@pytest.mark.parametrize("size", [(9, 7), (4, 8), (4, 5), (2, 5), (3, 2)], ids=str)
def test_interpolate_nonfinite_values_reach_only_their_readers(be, mode, align, size, rng):
    """An inf or NaN in x makes non-finite exactly the outputs that read it (an axis that keeps
    its size is copied: its second tap, of weight 0, is the first one, as in torch), and one
    in dy exactly the inputs its output read."""
    x = poison(rng, randn(rng, 2, 3, 4, 5), count=3)
    rows = upsample_ops._source_index(mode, 4, size[0], None, bool(align))
    cols = upsample_ops._source_index(mode, 5, size[1], None, bool(align))
    xt = torch.tensor(x, requires_grad=True)
    yt = tF.interpolate(xt, size, mode=mode, align_corners=align)
    assert_nonfinite_like(be.interpolate_forward(x, *rows, *cols), yt.detach(),
                          name="interpolate_forward")
    dy = poison(rng, randn(rng, *yt.shape), count=2)
    yt.backward(torch.tensor(dy))
    # torch adds the weight-0 tap of a kept axis on its own (inf + 0 * inf = NaN) where the
    # gather adds the one weight 1 (inf): the same places, not always the same NaN / inf
    assert_nonfinite_like(be.interpolate_backward(dy, x.shape, *rows, *cols), xt.grad,
                          name="interpolate_backward", same_kind=False)
