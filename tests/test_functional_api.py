"""The PyTorch functional surface added for torch scripts: activations (leaky_relu, elu, gelu,
silu, softmax's implicit dim), losses (cross_entropy with weight / ignore_index / reduction /
K-dim / probability targets, nll_loss, BCE with logits, mse, l1), one_hot, layer_norm,
group_norm, pad, interpolate, max_pool2d(dilation, return_indices), adaptive_max_pool2d,
conv2d(padding="same" | "valid") and unbatched (C, H, W) input.

Each op: forward and gradients against the NumPy float64 reference (tests/reference.py) and
against torch, on fresh random inputs, plus its argument errors.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import reference as R
from helpers import (
    assert_close,
    assert_nonfinite_like,
    check_op,
    check_vs_torch,
    conv_weight,
    distinct,
    poison,
    randn,
    to_numpy,
)

import fastconv
import fastconv.functional as F

torch = pytest.importorskip("torch")
tF = torch.nn.functional


def T(a, **kw):
    return fastconv.tensor(a, **kw)


def _raises(exc, fn, *words):
    with pytest.raises(exc) as info:
        fn()
    msg = str(info.value)
    for w in words:
        assert re.search(w, msg, re.IGNORECASE), f"message does not name {w!r}: {msg}"
    return msg


def test_nn_functional_is_the_functional_module():
    import fastconv.nn.functional as NF

    from fastconv.nn import functional as NF2

    assert NF is F and NF2 is F and fastconv.nn.functional is F


# ----------------------------------------------------------------------------- activations

ACTIVATIONS = [
    ("leaky_relu", lambda t: F.leaky_relu(t), R.leaky_relu, lambda t: tF.leaky_relu(t)),
    ("leaky_relu(0.2)", lambda t: F.leaky_relu(t, 0.2), lambda a: R.leaky_relu(a, 0.2),
     lambda t: tF.leaky_relu(t, 0.2)),
    ("elu", lambda t: F.elu(t), R.elu, lambda t: tF.elu(t)),
    ("elu(0.5)", lambda t: F.elu(t, alpha=0.5), lambda a: R.elu(a, 0.5),
     lambda t: tF.elu(t, alpha=0.5)),
    ("gelu", lambda t: F.gelu(t), R.gelu, lambda t: tF.gelu(t)),
    ("gelu(tanh)", lambda t: F.gelu(t, approximate="tanh"), lambda a: R.gelu(a, "tanh"),
     lambda t: tF.gelu(t, approximate="tanh")),
    ("silu", F.silu, R.silu, tF.silu),
]


@pytest.mark.parametrize("name,fc,ref,tf", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activation(name, fc, ref, tf, rng):
    x = randn(rng, 2, 3, 5, 4, scale=3.0)
    check_op(fc, ref, [x], rng=rng, name=name)
    check_vs_torch(fc, tf, [randn(rng, 3, 7, scale=3.0)], rng=rng, name=name)


def test_activations_at_extremes_stay_finite():
    x = T(np.array([-1e4, -100.0, -20.0, 0.0, 20.0, 100.0, 1e4], np.float32), requires_grad=True)
    for fn, tf in ((F.gelu, tF.gelu), (F.silu, tF.silu), (F.elu, tF.elu)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no overflow warnings either
            y = fn(x)
            y.sum().backward()
        want = tf(torch.tensor(x.data, dtype=torch.float64)).numpy()
        assert_close(to_numpy(y), want, name=fn.__name__)
        assert np.all(np.isfinite(to_numpy(x.grad)))
        x.grad = None


def test_inplace_writes_the_result_into_the_input(rng):
    for fn in (F.relu, F.leaky_relu, F.elu, F.silu, F.hardtanh, F.selu):
        x = T(randn(rng, 4, 5))
        want = to_numpy(fn(T(x.data.copy())))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert fn(x, inplace=True) is x
        assert_close(x.data, want, name=fn.__name__)
    fastconv.manual_seed(3)
    want = to_numpy(F.dropout2d(T(x4 := randn(rng, 2, 3, 4, 4)), 0.5, True))
    fastconv.manual_seed(3)
    x = T(x4.copy())
    assert F.dropout2d(x, 0.5, True, True) is x
    np.testing.assert_array_equal(x.data, want)
    x = T(x4.copy())
    assert F.dropout(x, 0.5, False, True) is x  # evaluation: the input itself, unchanged
    np.testing.assert_array_equal(x.data, x4)


def test_activation_errors(rng):
    _raises(ValueError, lambda: F.gelu(T(randn(rng, 3)), approximate="erf"), "approximate")
    _raises(TypeError, lambda: F.leaky_relu(T(randn(rng, 3)), "0.1"), "negative_slope")
    _raises(TypeError, lambda: F.elu(randn(rng, 3)), "input")


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4), (2, 3, 4, 5)], ids=str)
def test_softmax_implicit_dim_follows_pytorch(shape, rng):
    x = randn(rng, *shape)
    for fc, tf in ((F.softmax, tF.softmax), (F.log_softmax, tF.log_softmax)):
        with pytest.warns(UserWarning, match="Implicit dimension"):
            got = fc(T(x))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = tf(torch.tensor(x, dtype=torch.float64)).numpy()
        assert_close(to_numpy(got), want, name=fc.__name__)
    _raises(IndexError, lambda: F.softmax(T(x), dim=len(shape)), "dim")


# ----------------------------------------------------------------------------- losses

CE_CASES = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"ignore_index": 2},
    {"weight": True},
    {"weight": True, "reduction": "none", "ignore_index": 1},
    {"label_smoothing": 0.2, "ignore_index": 0},
    {"label_smoothing": 0.3, "weight": True, "reduction": "sum"},
    {"label_smoothing": 0.1, "weight": True},
]


@pytest.mark.parametrize("shape", [(6, 5), (5,), (3, 4, 2, 3)], ids=str)
@pytest.mark.parametrize("case", CE_CASES, ids=str)
def test_cross_entropy_arguments(shape, case, rng):
    C = shape[0] if len(shape) == 1 else shape[1]
    tshape = () if len(shape) == 1 else shape[:1] + shape[2:]
    target = rng.integers(0, C, size=tshape)
    kw = dict(case)
    w = rng.uniform(0.5, 2.0, C).astype(np.float32) if kw.pop("weight", False) else None
    if "ignore_index" in kw and target.size > 1:
        target.flat[0] = kw["ignore_index"]  # at least one ignored, at least one kept
        target.flat[1] = (kw["ignore_index"] + 1) % C
    elif "ignore_index" in kw:  # unbatched: one target, kept (all ignored gives NaN)
        target[...] = (kw["ignore_index"] + 1) % C
    fc = lambda t: F.cross_entropy(t, target, weight=None if w is None else T(w), **kw)
    ref = lambda a: R.cross_entropy_full(a, target, w, **kw)
    check_op(fc, ref, [randn(rng, *shape, scale=2.0)], rng=rng, name=f"cross_entropy {case}")
    tw = None if w is None else torch.tensor(w, dtype=torch.float64)
    check_vs_torch(fc, lambda t: tF.cross_entropy(t, torch.tensor(target), weight=tw, **kw),
                   [randn(rng, *shape, scale=2.0)], rng=rng, name=f"cross_entropy {case}")


@pytest.mark.parametrize("case", [{}, {"label_smoothing": 0.2}, {"reduction": "none"},
                                  {"weight": True, "reduction": "sum"}], ids=str)
def test_cross_entropy_probability_targets(case, rng):
    kw = dict(case)
    w = rng.uniform(0.5, 2.0, 4).astype(np.float32) if kw.pop("weight", False) else None
    p = rng.uniform(size=(3, 4, 2)).astype(np.float32)
    p /= p.sum(axis=1, keepdims=True)
    fc = lambda t: F.cross_entropy(t, T(p), weight=None if w is None else T(w), **kw)
    check_op(fc, lambda a: R.cross_entropy_probs(a, p, w, **kw), [randn(rng, 3, 4, 2)], rng=rng,
             name="cross_entropy(probabilities)")
    tw = None if w is None else torch.tensor(w, dtype=torch.float64)
    check_vs_torch(fc, lambda t: tF.cross_entropy(t, torch.tensor(p, dtype=torch.float64),
                                                  weight=tw, **kw),
                   [randn(rng, 3, 4, 2)], rng=rng, name="cross_entropy(probabilities)")


def test_cross_entropy_default_case_keeps_the_fused_kernel(rng):
    from fastconv.ops.loss import SoftmaxCrossEntropy

    x = T(randn(rng, 4, 6), requires_grad=True)
    target = np.array([0, 5, 2, 3])
    assert isinstance(F.cross_entropy(x, target)._ctx, SoftmaxCrossEntropy)
    assert isinstance(F.cross_entropy(x, target, label_smoothing=0.1)._ctx, SoftmaxCrossEntropy)
    assert not isinstance(F.cross_entropy(x, target, reduction="sum")._ctx, SoftmaxCrossEntropy)
    # a target equal to ignore_index leaves the fused path (which would count it)
    target[1] = 3
    got = F.cross_entropy(x, target, ignore_index=3)
    want = tF.cross_entropy(torch.tensor(x.data, dtype=torch.float64), torch.tensor(target),
                            ignore_index=3)
    assert_close(to_numpy(got), want.numpy())


def test_cross_entropy_all_targets_ignored_is_nan_like_pytorch(rng):
    x = T(randn(rng, 2, 3))
    got = F.cross_entropy(x, np.array([-100, -100]))
    assert np.isnan(got.item())
    assert np.isnan(tF.cross_entropy(torch.tensor(x.data), torch.tensor([-100, -100])).item())


@pytest.mark.parametrize("case", [{}, {"reduction": "sum"}, {"reduction": "none"},
                                  {"weight": True, "ignore_index": 0}], ids=str)
def test_nll_loss(case, rng):
    kw = dict(case)
    w = rng.uniform(0.5, 2.0, 5).astype(np.float32) if kw.pop("weight", False) else None
    target = rng.integers(0, 5, size=(4, 3))
    target[0, 0], target[0, 1] = 0, 1
    logp = np.log(rng.dirichlet(np.ones(5), size=(4, 3))).transpose(0, 2, 1).astype(np.float32)
    fc = lambda t: F.nll_loss(t, target, weight=None if w is None else T(w), **kw)
    check_op(fc, lambda a: R.nll_loss(a, target, w, **kw), [logp], rng=rng, name="nll_loss")
    tw = None if w is None else torch.tensor(w, dtype=torch.float64)
    check_vs_torch(fc, lambda t: tF.nll_loss(t, torch.tensor(target), weight=tw, **kw), [logp],
                   rng=rng, name="nll_loss")


def test_loss_argument_errors(rng):
    x = T(randn(rng, 4, 3))
    _raises(ValueError, lambda: F.cross_entropy(x, np.array([0, 1, 2, 3])), "target", "3")
    _raises(ValueError, lambda: F.cross_entropy(x, np.array([0, 1, 2])), "target", "input")
    _raises(TypeError, lambda: F.cross_entropy(x, np.zeros((4, 2), np.float32)), "target",
            "probabilities")
    _raises(ValueError, lambda: F.cross_entropy(x, np.array([0, 1, 2, 1]), reduction="avg"),
            "reduction")
    _raises(ValueError, lambda: F.cross_entropy(x, np.array([0, 1, 2, 1]), weight=T(np.ones(4))),
            "weight", r"\(3,\)")
    _raises(ValueError, lambda: F.nll_loss(x, np.array([0, 1, -1, 1])), "target", "-1")
    _raises(ValueError, lambda: F.binary_cross_entropy_with_logits(x, T(randn(rng, 4, 2))),
            "target", "input")
    _raises(ValueError, lambda: F.binary_cross_entropy_with_logits(
        x, T(randn(rng, 4, 3)), pos_weight=T(np.ones(2, np.float32))), "pos_weight")
    _raises(ValueError, lambda: F.mse_loss(x, T(randn(rng, 4, 3)), weight=T(np.ones(3))),
            "weight")
    with pytest.warns(UserWarning, match="target size"):
        F.mse_loss(x, T(randn(rng, 1, 3)))


def test_legacy_size_average_and_reduce_map_to_reduction_with_a_warning(rng):
    x, y = T(randn(rng, 4, 3)), T(randn(rng, 4, 3))
    with pytest.warns(UserWarning, match="reduction='sum'"):
        got = F.mse_loss(x, y, size_average=False)
    assert_close(to_numpy(got), R.mse_loss(x.data, y.data, "sum"))
    with pytest.warns(UserWarning, match="reduction='none'"):
        assert F.l1_loss(x, y, reduce=False).shape == (4, 3)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits(reduction, rng):
    x = randn(rng, 4, 3, scale=3.0)
    y = rng.uniform(size=(4, 3)).astype(np.float32)
    w = rng.uniform(0.2, 2.0, (4, 1)).astype(np.float32)
    pw = rng.uniform(0.5, 3.0, 3).astype(np.float32)
    # input, target and pos_weight: every gradient against central differences
    check_op(lambda a, b, c: F.binary_cross_entropy_with_logits(a, b, T(w), reduction=reduction,
                                                                pos_weight=c),
             lambda a, b, c: R.bce_with_logits(a, b, w, c, reduction), [x, y, pw], rng=rng,
             name="bce_with_logits")
    check_vs_torch(lambda a, b: F.binary_cross_entropy_with_logits(
        a, b, T(w), reduction=reduction, pos_weight=T(pw)),
        lambda a, b: tF.binary_cross_entropy_with_logits(
            a, b, torch.tensor(w, dtype=torch.float64), reduction=reduction,
            pos_weight=torch.tensor(pw, dtype=torch.float64)),
        [x, y], rng=rng, name="bce_with_logits")
    # no weights; large logits stay finite
    big = np.array([[-200.0, 0.5, 200.0]], np.float32)
    got = F.binary_cross_entropy_with_logits(T(big), T(np.array([[1.0, 0.0, 0.0]], np.float32)))
    want = tF.binary_cross_entropy_with_logits(torch.tensor(big, dtype=torch.float64),
                                               torch.tensor([[1.0, 0.0, 0.0]],
                                                            dtype=torch.float64))
    assert_close(to_numpy(got), want.numpy())


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
def test_pointwise_losses(name, reduction, rng):
    fc, ref, tf = getattr(F, name), getattr(R, name), getattr(tF, name)
    a, b = randn(rng, 3, 4, 2), randn(rng, 3, 4, 2)
    check_op(lambda s, t: fc(s, t, reduction=reduction), lambda s, t: ref(s, t, reduction),
             [a, b], rng=rng, name=name)
    check_vs_torch(lambda s, t: fc(s, t, reduction=reduction),
                   lambda s, t: tf(s, t, reduction=reduction), [a, b], rng=rng, name=name)
    w = rng.uniform(size=(3, 4, 2)).astype(np.float32)
    check_vs_torch(lambda s, t: fc(s, t, reduction=reduction, weight=T(w)),
                   lambda s, t: tf(s, t, reduction=reduction,
                                   weight=torch.tensor(w, dtype=torch.float64)),
                   [a, b], rng=rng, name=f"{name}(weight)")


@pytest.mark.parametrize("name, kw", [("mse_loss", {}), ("l1_loss", {}),
                                      ("smooth_l1_loss", {"beta": 0.5}),
                                      ("huber_loss", {"delta": 1.5})])
def test_regression_losses_promote_integer_and_bool_targets_as_torch(name, kw, rng):
    """An int64 / int32 / uint8 / bool target is promoted to float32 (torch's values); the
    input's gradient is torch's with the float target (torch's own backward of huber_loss
    with an integer target, and l1_loss with a bool one, fail)."""
    x = (rng.standard_normal((4, 5)) * 2).astype(np.float32)
    for dtype in (np.int64, np.int32, np.uint8, np.bool_):
        t = rng.integers(0, 3, (4, 5)).astype(dtype)
        for reduction in ("mean", "none"):
            xf = T(x, requires_grad=True)
            got = getattr(F, name)(xf, T(t), reduction=reduction, **kw)
            assert got.dtype == np.float32
            if not (name == "l1_loss" and dtype == np.bool_):
                want = getattr(tF, name)(torch.tensor(x), torch.tensor(t), reduction=reduction,
                                         **kw)
                assert want.dtype == torch.float32
                assert_close(to_numpy(got), want.numpy(), name=f"{name}({dtype.__name__})")
            got.sum().backward()
            xt = torch.tensor(x, requires_grad=True)
            getattr(tF, name)(xt, torch.tensor(t).float(), reduction=reduction,
                              **kw).sum().backward()
            assert_close(to_numpy(xf.grad), xt.grad.numpy(), name=f"d{name}({dtype.__name__})")
    _raises(TypeError, lambda: getattr(F, name)(T(np.arange(3)), T(np.arange(3))),
            "input must be float32")  # the input must still be floating


def test_one_hot(rng):
    t = rng.integers(0, 5, size=(3, 4))
    got = F.one_hot(T(t), 6)
    assert got.dtype == np.int64 and got.shape == (3, 4, 6)
    np.testing.assert_array_equal(to_numpy(got), R.one_hot(t, 6))
    np.testing.assert_array_equal(to_numpy(F.one_hot(T(t))),
                                  tF.one_hot(torch.tensor(t)).numpy())
    too_large = t.copy()
    too_large[0, 0] = 4  # a class index beyond num_classes=3, whatever the draw
    _raises(ValueError, lambda: F.one_hot(T(too_large), 3), "num_classes")
    _raises(ValueError, lambda: F.one_hot(T(np.array([-1, 0]))), "non-negative")
    _raises(TypeError, lambda: F.one_hot(T(np.zeros(3, np.float32))), "integer")


# ----------------------------------------------------------------------------- normalisation

@pytest.mark.parametrize("shape,norm", [((4, 6), (6,)), ((2, 3, 4, 5), (4, 5)),
                                        ((2, 3, 4, 5), (3, 4, 5))], ids=str)
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm(shape, norm, affine, rng):
    x = randn(rng, *shape, scale=2.0) + 1.0
    if affine:
        w, b = randn(rng, *norm), randn(rng, *norm)
        check_op(lambda a, c, d: F.layer_norm(a, norm, c, d), lambda a, c, d:
                 R.layer_norm(a, norm, c, d), [x, w, b], rng=rng, name="layer_norm")
        check_vs_torch(lambda a, c, d: F.layer_norm(a, norm, c, d),
                       lambda a, c, d: tF.layer_norm(a, norm, c, d), [x, w, b], rng=rng,
                       name="layer_norm")
    else:
        check_op(lambda a: F.layer_norm(a, norm, eps=1e-3), lambda a: R.layer_norm(a, norm,
                                                                                   eps=1e-3),
                 [x], rng=rng, name="layer_norm")
        check_vs_torch(lambda a: F.layer_norm(a, norm), lambda a: tF.layer_norm(a, norm), [x],
                       rng=rng, name="layer_norm")


@pytest.mark.parametrize("shape,groups", [((2, 6, 4, 3), 3), ((3, 4, 5), 2), ((2, 4), 4),
                                          ((2, 6, 3, 3), 1)], ids=str)
def test_group_norm(shape, groups, rng):
    C = shape[1]
    x, w, b = randn(rng, *shape, scale=2.0), randn(rng, C), randn(rng, C)
    check_op(lambda a, c, d: F.group_norm(a, groups, c, d),
             lambda a, c, d: R.group_norm(a, groups, c, d), [x, w, b], rng=rng, name="group_norm")
    check_vs_torch(lambda a, c, d: F.group_norm(a, groups, c, d),
                   lambda a, c, d: tF.group_norm(a, groups, c, d), [x, w, b], rng=rng,
                   name="group_norm")
    check_vs_torch(lambda a: F.group_norm(a, groups), lambda a: tF.group_norm(a, groups), [x],
                   rng=rng, name="group_norm (no affine)")


def test_norm_errors(rng):
    x = T(randn(rng, 2, 6, 4, 4))
    _raises(ValueError, lambda: F.layer_norm(x, (5, 4)), "normalized_shape", r"2, 6, 4, 4")
    _raises(ValueError, lambda: F.layer_norm(x, (4, 4), T(np.ones(4, np.float32))), "weight")
    _raises(ValueError, lambda: F.group_norm(x, 4), "num_groups", "6")
    _raises(ValueError, lambda: F.group_norm(x, 3, T(np.ones(3, np.float32))), "weight",
            r"\(6,\)")
    _raises(ValueError, lambda: F.group_norm(T(randn(rng, 6)), 3), "input")


# ----------------------------------------------------------------------------- padding

PAD_CASES = [
    ((2, 3, 4, 5), (1, 2), "constant"),
    ((2, 3, 4, 5), (1, 2, 0, 3, 1, 1), "constant"),
    ((2, 3, 4, 5), (-1, 2, 1, -2), "constant"),
    ((2, 3, 4, 5), (2, 1, 3, 0), "reflect"),
    ((3, 4, 5), (4, 4), "reflect"),
    ((2, 3, 4, 5), (3, 1, 2, 4), "replicate"),
    ((2, 6), (3, 0), "replicate"),
    ((2, 3, 4, 5), (2, 3, 1, 4), "circular"),
    ((3, 4, 5), (5, 5), "circular"),
    ((2, 2, 3, 4, 5), (1, 1, 2, 0, 2, 1), "reflect"),
]


@pytest.mark.parametrize("shape,pads,mode", PAD_CASES, ids=str)
def test_pad(shape, pads, mode, rng):
    value = 0.75 if mode == "constant" else None
    fc = lambda t: F.pad(t, pads, mode=mode, value=value)
    check_op(fc, lambda a: R.pad(a, pads, mode, 0.0 if value is None else value),
             [randn(rng, *shape)], rng=rng, name=f"pad {mode}")
    check_vs_torch(fc, lambda t: tF.pad(t, pads, mode=mode, value=value), [randn(rng, *shape)],
                   rng=rng, name=f"pad {mode}")


def test_pad_errors(rng):
    x = T(randn(rng, 2, 3, 4, 5))
    _raises(TypeError, lambda: F.pad(x, (1, 2, 3)), "pad", "even")
    _raises(NotImplementedError, lambda: F.pad(x, (1, 1), mode="symmetric"), "mode")
    _raises(ValueError, lambda: F.pad(x, (5, 0), mode="reflect"), "input")  # 1 dim of a 4-D input
    _raises(ValueError, lambda: F.pad(x, (5, 0, 0, 0), mode="reflect"), "padding", r"\(5, 0\)")
    _raises(ValueError, lambda: F.pad(x, (6, 0, 0, 0), mode="circular"), "circular")
    _raises(ValueError, lambda: F.pad(x, (-6, 0, 0, 0), mode="replicate"), "crops", "below")
    _raises(ValueError, lambda: F.pad(x, (1, 1, 0, 0), mode="reflect", value=2.0), "value")
    _raises(ValueError, lambda: F.pad(x, (-3, -3)), "crop")
    _raises(ValueError, lambda: F.pad(x, (1,) * 10), "too large")


# ----------------------------------------------------------------------------- interpolate

INTERP_CASES = [
    {"size": (7, 9), "mode": "nearest"},
    {"size": (3, 2), "mode": "nearest"},
    {"scale_factor": 2, "mode": "nearest"},
    {"scale_factor": 1.7, "mode": "nearest"},
    {"size": (7, 9), "mode": "bilinear"},
    {"size": (7, 9), "mode": "bilinear", "align_corners": True},
    {"size": (3, 2), "mode": "bilinear"},
    {"scale_factor": 2, "mode": "bilinear"},
    {"scale_factor": 1.5, "mode": "bilinear", "align_corners": True},
    {"scale_factor": 0.6, "mode": "bilinear", "recompute_scale_factor": True},
]


def _scales(case, shape):
    """The scale factors that set PyTorch's source positions (None: in / out)."""
    s = case.get("scale_factor")
    if s is None or case.get("recompute_scale_factor"):
        return None
    return (s, s)


def _size(case, shape):
    if "size" in case:
        return case["size"]
    return tuple(int(np.floor(n * case["scale_factor"])) for n in shape[2:])


@pytest.mark.parametrize("case", INTERP_CASES, ids=str)
def test_interpolate(case, rng):
    shape = (2, 3, 4, 5)
    fc = lambda t: F.interpolate(t, **case)
    check_op(fc, lambda a: R.interpolate(a, _size(case, shape), case["mode"],
                                         bool(case.get("align_corners")), _scales(case, shape)),
             [randn(rng, *shape)], rng=rng, name=f"interpolate {case}")
    check_vs_torch(fc, lambda t: tF.interpolate(t, **case), [randn(rng, *shape)], rng=rng,
                   name=f"interpolate {case}")


@pytest.mark.parametrize("case", [{"size": (3, 4), "mode": "nearest-exact"},
                                  {"size": (2, 3), "mode": "area"}, {"size": 9},
                                  {"scale_factor": 1.5}], ids=str)
def test_interpolate_other_modes_and_3d_input(case, rng):
    shape = (2, 3, 5, 6) if case.get("mode") else (2, 3, 6)
    check_vs_torch(lambda t: F.interpolate(t, **case), lambda t: tF.interpolate(t, **case),
                   [randn(rng, *shape)], rng=rng, name=f"interpolate {case}")


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact", "bilinear", "bicubic"])
def test_interpolate_axis_of_unchanged_size(mode, rng):
    """scale_factor 1.2 keeps 4 pixels 4: torch copies that axis for nearest and bilinear,
    and resamples it for nearest-exact and bicubic."""
    case = {"scale_factor": (1.2, 2.0), "mode": mode}
    check_vs_torch(lambda t: F.interpolate(t, **case), lambda t: tF.interpolate(t, **case),
                   [randn(rng, 2, 3, 4, 5)], rng=rng, name=f"interpolate {case}")


NONFINITE_INTERP_CASES = [
    {"size": (3, 5), "mode": "area"}, {"size": (7, 13), "mode": "area"},
    {"size": (7, 9), "mode": "bicubic"}, {"size": (3, 2), "mode": "bicubic"},
    {"scale_factor": 2, "mode": "bicubic", "align_corners": True},
    {"size": (6, 8), "mode": "bicubic"},             # same size: identity matrices
    {"size": (6, 11), "mode": "bicubic"},            # one axis keeps its size
    {"size": (11, 5), "mode": "bilinear"}, {"size": (6, 11), "mode": "bilinear"},
    {"size": (6, 8), "mode": "bilinear", "align_corners": True},
    {"scale_factor": (1.2, 2.0), "mode": "bilinear"},
    {"size": (11, 3), "mode": "bilinear", "align_corners": True},
    {"size": (5, 13), "mode": "nearest"}, {"size": (9, 5), "mode": "nearest-exact"},
]


@pytest.mark.parametrize("case", NONFINITE_INTERP_CASES, ids=str)
def test_interpolate_nonfinite_values_reach_only_the_outputs_that_read_them(case, rng):
    """An inf or NaN in the input makes non-finite exactly the outputs whose taps (or area
    windows) include it, with the same NaN / inf as torch (a tap of weight 0 included: torch
    reads it, 0 * inf = NaN), and the other outputs keep their values; the same for an inf
    or NaN in dy and the input gradient. (A dense matrix product would spread it over its
    plane.)"""
    shape = (2, 3, 6, 8)
    for trial in range(4):
        x = poison(rng, randn(rng, *shape), count=1 + trial)
        xf, xt = T(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            y = F.interpolate(xf, **case)
        yt = tF.interpolate(xt, **case)
        assert_nonfinite_like(y.detach(), yt.detach(), name=f"interpolate {case}")
        dy = randn(rng, *yt.shape)
        if trial % 2:
            poison(rng, dy, count=trial)
        y.backward(T(dy))
        yt.backward(torch.tensor(dy))
        assert_nonfinite_like(xf.grad, xt.grad, name=f"interpolate {case} grad")


@pytest.mark.parametrize("mode", ["linear", "area", "nearest"])
def test_interpolate_nonfinite_values_on_3d_input(mode, rng):
    """(N, C, L) input runs as a plane of one row. Its row axis keeps its size, which torch's
    bilinear reads with a second weight 0 (inf becomes NaN there) and its linear does not
    have: linear is held to the same non-finite places, not the same NaN / inf."""
    for size in (5, 13):
        x = poison(rng, randn(rng, 2, 3, 8), count=2)
        y = F.interpolate(T(x), size=size, mode=mode)
        assert_nonfinite_like(y, tF.interpolate(torch.tensor(x), size=size, mode=mode),
                              name=f"interpolate {mode} to {size}", same_kind=mode != "linear")


def test_interpolate_errors(rng):
    x = T(randn(rng, 1, 2, 4, 4))
    _raises(ValueError, lambda: F.interpolate(x), "size", "scale_factor")
    _raises(ValueError, lambda: F.interpolate(x, 4, 2.0), "only one")
    _raises(ValueError, lambda: F.interpolate(x, 8, align_corners=True), "align_corners")
    _raises(NotImplementedError, lambda: F.interpolate(x, 8, mode="lanczos"), "lanczos")
    _raises(ValueError, lambda: F.interpolate(x, 8, mode="nearest", antialias=True),
            "antialias")
    _raises(ValueError, lambda: F.interpolate(T(randn(rng, 2, 4, 4)), 8, mode="bilinear"),
            "4-D")
    _raises(ValueError, lambda: F.interpolate(x, (8, 8, 8)), "size")
    _raises(ValueError, lambda: F.interpolate(x, scale_factor=0.1), "empty")


# ----------------------------------------------------------------------------- pooling

MAXPOOL_CASES = [
    (3, 2, 1, 2, True),
    ((2, 3), 1, (1, 0), (2, 1), False),
    (2, 2, 0, 3, False),
    (3, 2, 1, 1, True),
    (3, 1, 1, 1, False),
]


@pytest.mark.parametrize("k,s,p,d,ceil", MAXPOOL_CASES, ids=str)
def test_max_pool2d_dilation_and_indices(k, s, p, d, ceil, rng):
    x = distinct(rng, 2, 3, 11, 12)
    y, idx = F.max_pool2d(T(x), k, s, p, d, ceil, return_indices=True)
    want_y, want_idx = R.max_pool2d_dilated(x, k, s, p, d, ceil)
    assert_close(to_numpy(y), want_y)
    assert idx.dtype == np.int64
    np.testing.assert_array_equal(to_numpy(idx), want_idx)
    _, tidx = tF.max_pool2d(torch.tensor(x), k, s, p, d, ceil, return_indices=True)
    np.testing.assert_array_equal(to_numpy(idx), tidx.numpy())
    check_op(lambda t: F.max_pool2d(t, k, s, p, d, ceil),
             lambda a: R.max_pool2d_dilated(a, k, s, p, d, ceil)[0], [x], rng=rng,
             name="max_pool2d")
    check_vs_torch(lambda t: F.max_pool2d(t, k, s, p, d, ceil_mode=ceil),
                   lambda t: tF.max_pool2d(t, k, s, p, d, ceil_mode=ceil),
                   [distinct(rng, 2, 3, 11, 12)], rng=rng, name="max_pool2d")


@pytest.mark.parametrize("out", [(4, 5), 3, (None, 2), (11, 12), 1], ids=str)
def test_adaptive_max_pool2d(out, rng):
    x = distinct(rng, 2, 3, 11, 12)
    y, idx = F.adaptive_max_pool2d(T(x), out, return_indices=True)
    _, tidx = tF.adaptive_max_pool2d(torch.tensor(x), out, return_indices=True)
    np.testing.assert_array_equal(to_numpy(idx), tidx.numpy())
    size = (11 if out[0] is None else out[0], out[1]) if isinstance(out, tuple) else out
    want_y, want_idx = R.adaptive_max_pool2d(x, size)
    assert_close(to_numpy(y), want_y)
    np.testing.assert_array_equal(to_numpy(idx), want_idx)
    check_op(lambda t: F.adaptive_max_pool2d(t, out), lambda a: R.adaptive_max_pool2d(a, size)[0],
             [x], rng=rng, name="adaptive_max_pool2d")
    check_vs_torch(lambda t: F.adaptive_max_pool2d(t, out),
                   lambda t: tF.adaptive_max_pool2d(t, out), [distinct(rng, 2, 3, 11, 12)],
                   rng=rng, name="adaptive_max_pool2d")


def test_max_pool2d_nan_wins_like_pytorch():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    x[0, 0, 0, 0] = np.nan
    for fn, tf in ((lambda t: F.max_pool2d(t, 2, dilation=2), lambda t: tF.max_pool2d(t, 2,
                                                                                   dilation=2)),
                   (lambda t: F.adaptive_max_pool2d(t, 3), lambda t: tF.adaptive_max_pool2d(t, 3))):
        np.testing.assert_array_equal(to_numpy(fn(T(x))), tf(torch.tensor(x)).numpy())


@pytest.mark.parametrize("name,fc,tf", [
    ("max_pool2d", lambda t: F.max_pool2d(t, 3, 2, 1, ceil_mode=True),
     lambda t: tF.max_pool2d(t, 3, 2, 1, ceil_mode=True)),
    ("max_pool2d(dilation)", lambda t: F.max_pool2d(t, 2, 1, 0, 2),
     lambda t: tF.max_pool2d(t, 2, 1, 0, 2)),
    ("avg_pool2d", lambda t: F.avg_pool2d(t, 3, 2, 1), lambda t: tF.avg_pool2d(t, 3, 2, 1)),
    ("adaptive_avg_pool2d", lambda t: F.adaptive_avg_pool2d(t, (3, 2)),
     lambda t: tF.adaptive_avg_pool2d(t, (3, 2))),
    ("adaptive_max_pool2d", lambda t: F.adaptive_max_pool2d(t, 3),
     lambda t: tF.adaptive_max_pool2d(t, 3)),
])
def test_pooling_takes_unbatched_input(name, fc, tf, rng):
    check_vs_torch(fc, tf, [distinct(rng, 3, 9, 8)], rng=rng, name=name)
    y, idx = F.max_pool2d(T(distinct(rng, 3, 9, 8)), 3, return_indices=True)
    assert y.shape == idx.shape == (3, 3, 2)


def test_max_pool2d_errors(rng):
    x = T(randn(rng, 1, 2, 9, 9))
    _raises(ValueError, lambda: F.max_pool2d(x, 3, padding=2, dilation=1), "padding", "half")
    # torch's rule counts the kernel size, not the dilated span: padding 2 > 3 / 2 raises
    _raises(ValueError, lambda: F.max_pool2d(x, 3, padding=2, dilation=2), "padding", "half")
    _raises(ValueError, lambda: F.max_pool2d(x, 3, dilation=5), "kernel_size", "dilation")
    _raises(ValueError, lambda: F.max_pool2d(x, 3, dilation=0), "dilation")
    _raises(TypeError, lambda: F.adaptive_max_pool2d(x, "3"), "output_size")
    _raises(ValueError, lambda: F.adaptive_max_pool2d(T(randn(rng, 9, 9)), 3), "input")
    _raises(ValueError, lambda: F.avg_pool2d(x, 3, divisor_override=2.5), "divisor_override")


# ----------------------------------------------------------------------------- conv2d

@pytest.mark.parametrize("k,d", [(3, 1), (4, 1), ((2, 5), 1), (3, 2), ((4, 3), (1, 3))], ids=str)
def test_conv2d_padding_same_and_valid(k, d, rng):
    kh, kw = (k, k) if isinstance(k, int) else k
    x, w, b = randn(rng, 2, 3, 9, 10), conv_weight(rng, 4, 3, kh, kw), randn(rng, 4)
    for padding in ("same", "valid"):
        fc = lambda a, c, e, p=padding: F.conv2d(a, c, e, padding=p, dilation=d)
        check_vs_torch(fc, lambda a, c, e, p=padding: tF.conv2d(a, c, e, padding=p, dilation=d),
                       [x, w, b], rng=rng, name=f"conv2d padding={padding}")
        if padding == "same":
            assert fc(T(x), T(w), T(b)).shape[2:] == (9, 10)


def test_conv2d_same_reference_for_an_even_kernel(rng):
    """An even kernel pads one more pixel at the bottom/right (PyTorch's rule)."""
    x, w = randn(rng, 1, 2, 6, 7), conv_weight(rng, 3, 2, 4, 2)
    ref = lambda a, c: R.conv2d(np.pad(a, ((0, 0), (0, 0), (1, 2), (0, 1))), c)
    check_op(lambda a, c: F.conv2d(a, c, padding="same"), ref, [x, w], rng=rng,
             name="conv2d same")


def test_conv2d_unbatched_input(rng):
    x, w, b = randn(rng, 3, 8, 7), conv_weight(rng, 4, 3, 3, 3), randn(rng, 4)
    check_op(lambda a, c, e: F.conv2d(a, c, e, 2, 1), lambda a, c, e: R.conv2d(a[None], c, e, 2,
                                                                                1)[0],
             [x, w, b], rng=rng, name="conv2d unbatched")
    check_vs_torch(lambda a, c, e: F.conv2d(a, c, e, 1, "same"),
                   lambda a, c, e: tF.conv2d(a, c, e, 1, "same"), [x, w, b], rng=rng,
                   name="conv2d unbatched")


def test_conv2d_padding_string_errors(rng):
    x, w = T(randn(rng, 1, 3, 8, 8)), T(conv_weight(rng, 4, 3, 3, 3))
    _raises(ValueError, lambda: F.conv2d(x, w, stride=2, padding="same"), "same", "strided")
    _raises(ValueError, lambda: F.conv2d(x, w, padding="full"), "padding", "'full'")
