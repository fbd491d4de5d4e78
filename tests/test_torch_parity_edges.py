"""Edge cases against torch: grid_sample at non-finite positions, ops on inputs with an empty
dim, conv3d's padding strings, and 5-D interpolate (nearest, nearest-exact, trilinear, area).

Each test runs fresh random data (a fixed seed per test) through fastconv and torch and
compares outputs, gradients, refusals and result shapes.
"""

from __future__ import annotations

import warnings

import fastconv.nn.functional as F
import numpy as np
import pytest

import fastconv as fc

torch = pytest.importorskip("torch")
TF = torch.nn.functional

RTOL, ATOL = 1e-4, 1e-5


def _close(got, want, name, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True, err_msg=name)


# ----------------------------------------------------------------------------- grid_sample

def _nonfinite_grid(rng, n):
    """An (n, 4, 5, 2) grid in [-1.3, 1.3] whose first sample has NaN, +inf and -inf in x,
    in y and in both (the other samples stay finite)."""
    g = ((rng.random((n, 4, 5, 2)) * 2 - 1) * 1.3).astype(np.float32)
    values = [np.nan, np.inf, -np.inf]
    for k, (a, b) in enumerate([(v, None) for v in values] + [(None, v) for v in values]
                               + [(v, w) for v in values for w in values]):
        i, j = divmod(k, 5)
        g[0, i, j] = [g[0, i, j, 0] if a is None else a, g[0, i, j, 1] if b is None else b]
    return g


# (nearest with "zeros" is left out: every tap of a non-finite position is outside the
# input and reads 0, with weight 1, which fastconv already gave)
GRID_MODES = [(m, p) for m in ("bilinear", "nearest", "bicubic")
              for p in ("zeros", "border", "reflection") if (m, p) != ("nearest", "zeros")]


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("mode, padding_mode", GRID_MODES)
def test_grid_sample_at_nonfinite_positions_matches_torch(mode, padding_mode, align_corners):
    """torch clamps NaN to 0 ("border" and "reflection": pixel 0; +inf the last pixel with
    "border"; any non-finite position reflects to NaN, so pixel 0 with "reflection"); with
    "zeros" and with bicubic weights the NaN reaches the output. Forward and both gradients,
    NaN where torch's are NaN."""
    rng = np.random.default_rng(20261)
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    g = _nonfinite_grid(rng, 2)
    dy = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    # torch's bilinear backward does not clamp where its forward does: it indexes memory with
    # the integer of a NaN (a crash, or garbage). There fastconv's gradient is that of its
    # forward, a clamped position being a constant: torch's at grid value -1 (pixel 0, on
    # the border, where the clamp's slope is 0 too).
    torch_grid = g
    if mode == "bilinear" and padding_mode != "zeros":
        bad = np.isnan(g) if padding_mode == "border" else ~np.isfinite(g)
        torch_grid = np.where(bad, np.float32(-1), g)
    fx, fg = fc.tensor(x, requires_grad=True), fc.tensor(g, requires_grad=True)
    tx, tg = torch.tensor(x, requires_grad=True), torch.tensor(torch_grid, requires_grad=True)
    fy = F.grid_sample(fx, fg, mode, padding_mode, align_corners)
    ty = TF.grid_sample(tx, tg, mode, padding_mode, align_corners)
    want = TF.grid_sample(torch.tensor(x), torch.tensor(g), mode, padding_mode, align_corners)
    _close(fy.detach().numpy(), want.numpy(), "forward")
    _close(fy.detach().numpy(), ty.detach().numpy(), "forward at the stand-in grid")
    fy.backward(fc.tensor(dy))
    ty.backward(torch.tensor(dy))
    _close(fx.grad.numpy(), tx.grad.numpy(), "input gradient")
    _close(fg.grad.numpy(), tg.grad.numpy(), "grid gradient")


def test_grid_sample_out_of_bounds_tap_beside_an_inf_pixel_reads_zero():
    """A tap outside the input reads 0 (with "zeros"), not the clipped border pixel times a
    zero weight, which is NaN when that pixel is inf; torch's output stays finite."""
    rng = np.random.default_rng(20262)
    x = rng.standard_normal((1, 2, 3, 4)).astype(np.float32)
    x[0, 0, 0, 0] = np.inf
    g = np.array([[[[-1.2, -1.1], [-1.05, 0.2], [0.1, -1.3]]]], np.float32)  # left of/above
    for mode in ("bilinear", "bicubic"):
        fy = F.grid_sample(fc.tensor(x), fc.tensor(g), mode, "zeros", False).numpy()
        ty = TF.grid_sample(torch.tensor(x), torch.tensor(g), mode, "zeros", False).numpy()
        _close(fy, ty, mode)


# ----------------------------------------------------------------------------- empty dims

def _w(*shape):
    return np.random.default_rng(sum(shape) + 7).standard_normal(shape).astype(np.float32)


class _Lib:
    def __init__(self, name):
        self.name = name
        self.F = F if name == "fastconv" else TF
        self.nn = fc.nn if name == "fastconv" else torch.nn

    def T(self, a, grad=False):
        return (fc.tensor if self.name == "fastconv" else torch.tensor)(a, requires_grad=grad)


def _s(x, i):
    return tuple(x.shape)[i]


# id: (input shape, call(lib, x)); every case is one dim set to 0 where torch and fastconv
# used to disagree (torch refusing where fastconv ran, or accepting where it failed)
EMPTY_CASES = {
    # torch refuses an empty channel list (and plane) in pooling, resizing, padding, unfolding
    "max_pool1d C=0": ((2, 0, 8), lambda L, x: L.F.max_pool1d(x, 2)),
    "max_pool2d C=0": ((2, 0, 6, 7), lambda L, x: L.F.max_pool2d(x, 3, 2, 1, ceil_mode=True)),
    "max_pool2d ceil H=0": ((2, 3, 0, 7), lambda L, x: L.F.max_pool2d(x, 3, 2, 1,
                                                                      ceil_mode=True)),
    "max_pool2d unbatched C=0": ((0, 6, 7), lambda L, x: L.F.max_pool2d(x, 2)),
    "avg_pool1d C=0": ((2, 0, 8), lambda L, x: L.F.avg_pool1d(x, 2)),
    "avg_pool2d C=0": ((2, 0, 6, 7), lambda L, x: L.F.avg_pool2d(x, 2, divisor_override=3)),
    "avg_pool3d C=0": ((2, 0, 4, 5, 6), lambda L, x: L.F.avg_pool3d(x, 2)),
    "lp_pool1d C=0": ((2, 0, 8), lambda L, x: L.F.lp_pool1d(x, 2, 2)),
    "lp_pool2d C=0": ((2, 0, 6, 7), lambda L, x: L.F.lp_pool2d(x, 2, 2)),
    "lp_pool3d C=0": ((2, 0, 4, 5, 6), lambda L, x: L.F.lp_pool3d(x, 2, 2)),
    "adaptive_max_pool1d C=0": ((2, 0, 8), lambda L, x: L.F.adaptive_max_pool1d(x, 3)),
    "adaptive_max_pool2d C=0": ((2, 0, 6, 7), lambda L, x: L.F.adaptive_max_pool2d(x, 2)),
    "adaptive_avg_pool3d C=0": ((2, 0, 4, 5, 6), lambda L, x: L.F.adaptive_avg_pool3d(x, 2)),
    "fractional_max_pool2d C=0": ((2, 0, 6, 7), lambda L, x: L.F.fractional_max_pool2d(
        x, 2, output_size=(3, 3))),
    "interpolate nearest C=0": ((2, 0, 8), lambda L, x: L.F.interpolate(x, size=5)),
    "interpolate bilinear C=0": ((2, 0, 6, 7), lambda L, x: L.F.interpolate(
        x, scale_factor=2.0, mode="bilinear")),
    "interpolate bicubic C=0": ((2, 0, 6, 7), lambda L, x: L.F.interpolate(
        x, size=(4, 9), mode="bicubic")),
    "interpolate antialias C=0": ((2, 0, 6, 7), lambda L, x: L.F.interpolate(
        x, size=(4, 3), mode="bilinear", antialias=True)),
    "pad reflect C=0": ((2, 0, 6, 7), lambda L, x: L.F.pad(x, (1, 2, 2, 1), mode="reflect")),
    "pad replicate C=0": ((2, 0, 4, 5, 6), lambda L, x: L.F.pad(x, (1,) * 6,
                                                               mode="replicate")),
    "pad reflect unbatched C=0": ((0, 6, 7), lambda L, x: L.F.pad(x, (1, 1, 1, 1),
                                                                 mode="reflect")),
    "unfold C=0": ((2, 0, 6, 7), lambda L, x: L.F.unfold(x, 2)),
    "fold C=0": ((2, 0, 30), lambda L, x: L.F.fold(x, (6, 7), 2)),
    "conv_transpose3d D=0": ((2, 3, 0, 5, 6), lambda L, x: L.F.conv_transpose3d(
        x, L.T(_w(3, 4, 2, 2, 2)))),
    "conv_transpose2d unbatched H=0": ((3, 0, 7), lambda L, x: L.F.conv_transpose2d(
        x, L.T(_w(3, 4, 3, 3)))),
    "MaxPool2d C=0": ((2, 0, 6, 7), lambda L, x: L.nn.MaxPool2d(2)(x)),
    "Upsample C=0": ((2, 0, 6, 7), lambda L, x: L.nn.Upsample(scale_factor=2)(x)),
    "ReflectionPad1d C=0": ((2, 0, 8), lambda L, x: L.nn.ReflectionPad1d(1)(x)),
    "Unfold C=0": ((2, 0, 6, 7), lambda L, x: L.nn.Unfold(2)(x)),
    # torch accepts these, fastconv failed
    "max_pool3d N=0": ((0, 3, 4, 5, 6), lambda L, x: L.F.max_pool3d(x, 2, return_indices=True)),
    "max_unpool1d N=0": ((0, 3, 8), lambda L, x: L.F.max_unpool1d(
        *L.F.max_pool1d(x, 2, return_indices=True), 2)),
    "max_unpool2d N=0": ((0, 3, 6, 7), lambda L, x: L.F.max_unpool2d(
        *L.F.max_pool2d(x, 2, return_indices=True), 2)),
    "max_unpool3d N=0": ((0, 3, 4, 5, 6), lambda L, x: L.F.max_unpool3d(
        *L.F.max_pool3d(x, 2, return_indices=True), 2)),
    "adaptive_max_pool3d unbatched C=0": ((0, 4, 5, 6), lambda L, x: L.F.adaptive_max_pool3d(
        x, 2, return_indices=True)),
    "adaptive_avg_pool3d to 1, H=0": ((2, 3, 4, 0, 6), lambda L, x: L.F.adaptive_avg_pool3d(
        x, 1)),
    "interpolate area to 1, W=0": ((2, 3, 6, 0), lambda L, x: L.F.interpolate(
        x, size=(1, 1), mode="area")),
    "grid_sample C=0": ((2, 0, 6, 7), lambda L, x: L.F.grid_sample(
        x, L.T(_w(_s(x, 0), 4, 5, 2)), mode="bicubic", padding_mode="border",
        align_corners=True)),
    "glu C=0": ((2, 0, 6, 7), lambda L, x: L.F.glu(x, dim=1)),
    "embedding_dim 0": ((6, 0), lambda L, w: L.F.embedding(
        L.T(np.random.default_rng(3).integers(0, 6, (2, 4))), w)),
    "scaled_dot_product_attention E=0": ((2, 2, 4, 0), lambda L, q: (
        L.F.scaled_dot_product_attention(q, L.T(_w(*_s(q, slice(None)))),
                                         L.T(_w(*_s(q, slice(None))))))),
    "batch_norm C=0, running stats for 3": ((2, 0, 6, 7), lambda L, x: L.F.batch_norm(
        x, L.T(_w(3)), L.T(np.abs(_w(3)) + 1), L.T(_w(3)), L.T(_w(3)), training=True)),
    "BatchNorm2d(3) C=0": ((2, 0, 6, 7), lambda L, x: L.nn.BatchNorm2d(3).eval()(x)),
    "instance_norm C=0, weight of 3": ((2, 0, 6, 7), lambda L, x: L.F.instance_norm(
        x, weight=L.T(_w(3)), bias=L.T(_w(3)))),
    "Upsample trilinear N=0": ((0, 3, 4, 5, 6), lambda L, x: L.nn.Upsample(
        scale_factor=2, mode="trilinear")(x)),
}


def _outcome(lib, call, shape):
    x = lib.T(np.random.default_rng(11).standard_normal(shape).astype(np.float32), grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            y = call(lib, x)
        except (ValueError, RuntimeError) as e:
            return x, None, e
    return x, (y if isinstance(y, tuple) else (y,)), None


@pytest.mark.parametrize("case", list(EMPTY_CASES))
def test_empty_dims_refused_or_accepted_as_torch(case):
    """Where torch refuses, fastconv refuses with a message naming the input's shape (a
    ValueError that is also a RuntimeError); where torch accepts, the results have torch's
    shapes and backward reaches the input."""
    shape, call = EMPTY_CASES[case]
    _, tys, terr = _outcome(_Lib("torch"), call, shape)
    x, ys, err = _outcome(_Lib("fastconv"), call, shape)
    if terr is not None:
        assert err is not None, f"{case}: torch refuses ({terr}), fastconv returned " \
                                f"{[tuple(y.shape) for y in ys]}"
        assert isinstance(err, ValueError) and isinstance(err, RuntimeError), repr(err)
        assert str(tuple(shape)) in str(err), str(err)
        return
    assert err is None, f"{case}: torch accepts, fastconv refused: {err!r}"
    assert [tuple(y.shape) for y in ys] == [tuple(t.shape) for t in tys]
    with np.errstate(divide="ignore", invalid="ignore"):  # a mean over nothing: NaN, as torch
        ys[0].sum().backward()
    assert tuple(x.grad.shape) == tuple(shape)


def test_empty_refusals_name_the_op_the_argument_and_the_empty_dim():
    x = fc.tensor(np.random.default_rng(12).standard_normal((2, 0, 6, 7)).astype(np.float32))
    with pytest.raises(ValueError, match=r"max_pool2d: expected input to have a non-zero size "
                                         r"in every non-batch dim, got shape \(2, 0, 6, 7\) "
                                         r"\(dim 1 is 0\)"):
        F.max_pool2d(x, 2)
    with pytest.raises(RuntimeError, match=r"max_pool1d: .*\(2, 0, 7\)"):
        F.max_pool1d(x[:, :, 0], 2)  # the 1-D op's name, not that of the 2-D op it runs on


def test_instance_norm_of_an_empty_plane_needs_running_stats_per_channel():
    """torch averages the per-sample statistics back through an (N, C) view: running
    statistics of another length are refused; an empty plane leaves them as they were."""
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 3, 0, 7)).astype(np.float32)
    for n in (3, 5):
        stats = [rng.standard_normal(n).astype(np.float32) for _ in range(2)]
        stats[1] = np.abs(stats[1]) + 1
        ours = [fc.tensor(s.copy()) for s in stats]
        theirs = [torch.tensor(s.copy()) for s in stats]
        try:
            TF.instance_norm(torch.tensor(x), *theirs)
        except RuntimeError:
            with pytest.raises(ValueError, match="running_mean of shape"):
                F.instance_norm(fc.tensor(x), *ours)
            continue
        assert n == 3
        F.instance_norm(fc.tensor(x), *ours)
        for a, b in zip(ours, theirs):
            _close(a.numpy(), b.numpy(), "running statistics")


# ----------------------------------------------------------------------------- conv3d padding

@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("kernel, dilation", [((3, 2, 4), (1, 2, 1)), ((2, 3, 2), (2, 1, 3)),
                                              ((1, 1, 1), 1)])
def test_conv3d_padding_strings_match_torch(kernel, dilation, padding):
    """"same" pads dilation * (kernel - 1) per axis, the odd pixel at the end; "valid" none.
    Output, input, weight and bias gradients, batched and unbatched."""
    rng = np.random.default_rng(20263)
    x = rng.standard_normal((2, 4, 5, 6, 7)).astype(np.float32)
    w = rng.standard_normal((4, 2) + kernel).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    for inp in (x, x[0]):
        fs = [fc.tensor(a, requires_grad=True) for a in (inp, w, b)]
        ts = [torch.tensor(a, requires_grad=True) for a in (inp, w, b)]
        fy = F.conv3d(*fs, 1, padding, dilation, 2)
        with warnings.catch_warnings():  # torch's note on even kernels with "same"
            warnings.simplefilter("ignore")
            ty = TF.conv3d(*ts, 1, padding, dilation, 2)
        assert fy.shape == tuple(ty.shape)
        _close(fy.detach().numpy(), ty.detach().numpy(), "output")
        dy = rng.standard_normal(fy.shape).astype(np.float32)
        fy.backward(fc.tensor(dy))
        ty.backward(torch.tensor(dy))
        for name, f, t in zip(("input", "weight", "bias"), fs, ts):
            # weight and bias gradients sum up to 2 * 5 * 6 * 7 products of O(1) values in
            # float32 in another order than torch: absolute error about 1e-5 of values ~10
            _close(f.grad.numpy(), t.grad.numpy(), f"{name} gradient", atol=1e-4)


def test_conv3d_padding_string_errors_and_the_layer():
    x = fc.tensor(np.random.default_rng(20264).standard_normal((1, 2, 4, 4, 4))
                  .astype(np.float32))
    w = fc.tensor(np.random.default_rng(20265).standard_normal((3, 2, 2, 2, 2))
                  .astype(np.float32))
    with pytest.raises(ValueError, match=r"conv3d: padding='same' is not supported for strided"):
        F.conv3d(x, w, stride=(1, 2, 1), padding="same")
    with pytest.raises(ValueError, match=r"conv3d: invalid padding string 'full'"):
        F.conv3d(x, w, padding="full")
    layer = fc.nn.Conv3d(2, 3, (2, 3, 2), padding="same", dilation=(2, 1, 1))
    assert layer(x).shape == (1, 3, 4, 4, 4)
    want = F.conv3d(x, layer.weight, layer.bias, 1, "same", (2, 1, 1))
    np.testing.assert_array_equal(layer(x).detach().numpy(), want.detach().numpy())


# ----------------------------------------------------------------------------- 5-D interpolate

INTERP_5D = [
    ("nearest", {"size": (5, 7, 3)}), ("nearest", {"scale_factor": (0.6, 2, 1.3)}),
    ("nearest", {"scale_factor": 2.0}), ("nearest", {"size": (3, 4, 5)}),
    ("nearest-exact", {"size": (2, 9, 4)}), ("nearest-exact", {"scale_factor": 1.7}),
    ("nearest-exact", {"scale_factor": (0.6, 2, 1.3), "recompute_scale_factor": True}),
    ("trilinear", {"size": (5, 7, 3)}), ("trilinear", {"size": (2, 2, 9),
                                                      "align_corners": True}),
    ("trilinear", {"scale_factor": 1.7, "align_corners": False}),
    ("trilinear", {"scale_factor": (0.6, 2, 1.3)}),
    ("trilinear", {"scale_factor": (0.6, 2, 1.3), "recompute_scale_factor": True}),
    ("trilinear", {"size": (3, 6, 5)}),  # D and W keep their sizes: copied
    ("area", {"size": (2, 3, 4)}), ("area", {"size": 4}), ("area", {"scale_factor": 0.5}),
]


@pytest.mark.parametrize("mode, kw", INTERP_5D, ids=[f"{m}-{kw}" for m, kw in INTERP_5D])
def test_interpolate_5d_matches_torch(mode, kw):
    rng = np.random.default_rng(20266)
    x = rng.standard_normal((2, 3, 3, 6, 5)).astype(np.float32)
    fx, tx = fc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    fy = F.interpolate(fx, mode=mode, **kw)
    ty = TF.interpolate(tx, mode=mode, **kw)
    assert fy.shape == tuple(ty.shape)
    _close(fy.detach().numpy(), ty.detach().numpy(), "output")
    dy = rng.standard_normal(fy.shape).astype(np.float32)
    fy.backward(fc.tensor(dy))
    ty.backward(torch.tensor(dy))
    _close(fx.grad.numpy(), tx.grad.numpy(), "input gradient")


def test_interpolate_5d_nonfinite_values_reach_only_their_readers_and_the_layer():
    rng = np.random.default_rng(20267)
    x = rng.standard_normal((1, 2, 3, 4, 5)).astype(np.float32)
    x[0, 0, 1, 2, 3], x[0, 1, 0, 0, 0] = np.inf, np.nan
    for mode in ("nearest", "trilinear"):
        fy = F.interpolate(fc.tensor(x), size=(4, 6, 5), mode=mode).numpy()
        ty = TF.interpolate(torch.tensor(x), size=(4, 6, 5), mode=mode).numpy()
        _close(fy, ty, mode)
    layer = fc.nn.Upsample(scale_factor=(2, 1, 0.5), mode="trilinear", align_corners=True)
    want = TF.interpolate(torch.tensor(x), scale_factor=(2, 1, 0.5), mode="trilinear",
                          align_corners=True)
    _close(layer(fc.tensor(x)).numpy(), want.numpy(), "Upsample")


def test_interpolate_trilinear_needs_a_5d_input():
    x = fc.tensor(np.random.default_rng(20268).standard_normal((1, 2, 4, 4)).astype(np.float32))
    with pytest.raises(ValueError, match=r"interpolate: mode 'trilinear' needs a 5-D input "
                                         r"\(N, C, D, H, W\), got shape \(1, 2, 4, 4\)"):
        F.interpolate(x, size=3, mode="trilinear")
