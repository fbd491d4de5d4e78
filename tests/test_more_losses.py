"""The margin, embedding and likelihood losses (margin ranking, hinge embedding, cosine
embedding, triplet margin, multi-class and multi-label margin, soft margin, Poisson and
Gaussian NLL) and the remaining activations (softsign, softshrink, hardshrink, tanhshrink,
rrelu, Softmax2d).

Each is checked forward and backward against torch (float64 autograd) on random inputs kept
off the kinks, for every reduction, through the function and the nn module; bad shapes and
arguments must raise torch's exception type.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from helpers import assert_close, check_vs_torch, randn

import fastconv as fc
import fastconv.functional as F
from fastconv import nn

torch = pytest.importorskip("torch")
TF = torch.nn.functional

REDUCTIONS = ["mean", "sum", "none"]


def _labels(rng, *shape):
    return rng.choice([-1.0, 1.0], size=shape).astype(np.float32)


def _off_kink(a, at=0.0, gap=0.02):
    """Move entries of ``a`` that sit within ``gap`` of ``at`` away from it."""
    a = np.array(a, dtype=np.float32)
    a[np.abs(a - at) < gap] += 2 * gap
    return a


# ----------------------------------------------------------------------------- pairwise losses


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_margin_ranking_loss(reduction, rng):
    x1, x2, y = randn(rng, 6), randn(rng, 6), _labels(rng, 6)
    margin = 0.3
    x1 = x2 + _off_kink(x1 - x2, margin) * 1.0
    x1 = x2 + _off_kink(x1 - x2, -margin)
    check_vs_torch(lambda a, b, t: F.margin_ranking_loss(a, b, t, margin, reduction=reduction),
                   lambda a, b, t: TF.margin_ranking_loss(a, b, t, margin, reduction=reduction),
                   [x1, x2, y], rng=rng, name=f"margin_ranking_loss {reduction}")
    check_vs_torch(lambda a, b, t: nn.MarginRankingLoss(margin, reduction=reduction)(a, b, t),
                   lambda a, b, t: torch.nn.MarginRankingLoss(margin, reduction=reduction)(
                       a, b, t), [x1, x2, y], rng=rng, name="MarginRankingLoss")
    # broadcasting a (1,) input, integer labels
    check_vs_torch(lambda a, b: F.margin_ranking_loss(a, b, fc.tensor(y.astype(np.int64)),
                                                      reduction=reduction),
                   lambda a, b: TF.margin_ranking_loss(a, b, torch.tensor(y.astype(np.int64)),
                                                       reduction=reduction),
                   [x1, x2[:1] + 0.05], rng=rng, name="margin_ranking_loss broadcast")


def test_margin_ranking_loss_errors():
    with pytest.raises(RuntimeError, match="same dimension"):
        F.margin_ranking_loss(fc.randn(3), fc.randn(3), fc.ones(3, 1))
    with pytest.raises(RuntimeError):
        F.margin_ranking_loss(fc.randn(3), fc.randn(4), fc.ones(3))
    with pytest.raises(ValueError, match="reduction"):
        F.margin_ranking_loss(fc.randn(3), fc.randn(3), fc.ones(3), reduction="bad")


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_hinge_embedding_loss(reduction, rng):
    x = _off_kink(randn(rng, 4, 5), 1.5)
    y = _labels(rng, 4, 5)
    check_vs_torch(lambda a: F.hinge_embedding_loss(a, fc.tensor(y), 1.5, reduction=reduction),
                   lambda a: TF.hinge_embedding_loss(a, torch.tensor(y), 1.5,
                                                     reduction=reduction),
                   [x], rng=rng, name=f"hinge_embedding_loss {reduction}")
    check_vs_torch(lambda a: nn.HingeEmbeddingLoss(reduction=reduction)(a, fc.tensor(y)),
                   lambda a: torch.nn.HingeEmbeddingLoss(reduction=reduction)(
                       a, torch.tensor(y)), [_off_kink(x, 1.0)], rng=rng,
                   name="HingeEmbeddingLoss")
    # labels other than +-1 add both terms; the target broadcasts against the input
    odd = y.copy()
    odd[0, :2] = 0.5
    x5 = _off_kink(x[0], 1.0)
    check_vs_torch(lambda a: F.hinge_embedding_loss(a, fc.tensor(odd), reduction=reduction),
                   lambda a: TF.hinge_embedding_loss(a, torch.tensor(odd), reduction=reduction),
                   [x5], rng=rng, name="hinge_embedding_loss broadcast")


def test_hinge_embedding_loss_errors():
    with pytest.raises(RuntimeError):
        F.hinge_embedding_loss(fc.randn(3), fc.ones(4))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cosine_embedding_loss(reduction, rng):
    a, b, y = randn(rng, 5, 4), randn(rng, 5, 4), _labels(rng, 5)
    margin = -0.2
    cos = (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))
    b[np.abs(cos - margin) < 0.02] *= -1  # off the kink at cos == margin
    check_vs_torch(lambda u, v: F.cosine_embedding_loss(u, v, fc.tensor(y), margin,
                                                        reduction=reduction),
                   lambda u, v: TF.cosine_embedding_loss(u, v, torch.tensor(y), margin,
                                                         reduction=reduction),
                   [a, b], rng=rng, name=f"cosine_embedding_loss {reduction}")
    check_vs_torch(lambda u, v: nn.CosineEmbeddingLoss(reduction=reduction)(
                       u, v, fc.tensor(y.astype(np.int64))),
                   lambda u, v: torch.nn.CosineEmbeddingLoss(reduction=reduction)(
                       u, v, torch.tensor(y.astype(np.int64))),
                   [a, b], rng=rng, name="CosineEmbeddingLoss")
    for label in (1.0, -1.0):  # one pair, a 0-D target
        check_vs_torch(lambda u, v: F.cosine_embedding_loss(u, v, fc.tensor(label), -1.0,
                                                            reduction=reduction),
                       lambda u, v: TF.cosine_embedding_loss(u, v, torch.tensor(label), -1.0,
                                                             reduction=reduction),
                       [a[0], b[0]], rng=rng, name="cosine_embedding_loss 1-D")


def test_cosine_embedding_loss_errors():
    a = fc.randn(3, 4)
    with pytest.raises(RuntimeError, match="multi-target not supported"):
        F.cosine_embedding_loss(a, a, fc.ones(3, 1))
    with pytest.raises(RuntimeError, match="1D target tensor expects 2D input"):
        F.cosine_embedding_loss(fc.randn(4), fc.randn(4), fc.ones(3))
    with pytest.raises(RuntimeError, match="0D target tensor expects 1D input"):
        F.cosine_embedding_loss(a, a, fc.tensor(1.0))
    with pytest.raises(RuntimeError):
        F.cosine_embedding_loss(a, a, fc.ones(2))
    with pytest.raises(RuntimeError):
        F.cosine_embedding_loss(a, fc.randn(2, 4), fc.ones(3))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p, swap", [(2, False), (1, True), (3, False)])
def test_triplet_margin_loss(reduction, p, swap, rng):
    a, pos, neg = randn(rng, 6, 4), randn(rng, 6, 4), randn(rng, 6, 4)
    tfa, tfp, tfn = (torch.tensor(v, dtype=torch.float64) for v in (a, pos, neg))
    d = lambda u, v: (u - v + 1e-6).norm(p, -1)  # noqa: E731
    dn = torch.minimum(d(tfa, tfn), d(tfp, tfn)) if swap else d(tfa, tfn)
    gap = (1.0 + d(tfa, tfp) - dn).numpy()
    a[np.abs(gap) < 0.02] += 0.3  # off the hinge's kink
    kw = dict(margin=1.0, p=p, swap=swap, reduction=reduction)
    check_vs_torch(lambda u, v, w: F.triplet_margin_loss(u, v, w, **kw),
                   lambda u, v, w: TF.triplet_margin_loss(u, v, w, **kw),
                   [a, pos, neg], rng=rng, name=f"triplet_margin_loss p={p} swap={swap}")
    check_vs_torch(lambda u, v, w: nn.TripletMarginLoss(**kw)(u, v, w),
                   lambda u, v, w: torch.nn.TripletMarginLoss(**kw)(u, v, w),
                   [a, pos, neg], rng=rng, name="TripletMarginLoss")


def test_triplet_margin_loss_broadcast_and_errors(rng):
    a, pos, neg = randn(rng, 4), randn(rng, 4), randn(rng, 4)
    check_vs_torch(lambda u, v, w: F.triplet_margin_loss(u, v, w, margin=5.0, reduction="none"),
                   lambda u, v, w: TF.triplet_margin_loss(u, v, w, margin=5.0,
                                                          reduction="none"),
                   [a, pos, neg], rng=rng, name="triplet_margin_loss 1-D")
    b = randn(rng, 3, 4)
    check_vs_torch(lambda u, v, w: F.triplet_margin_loss(u, v, w, margin=5.0, eps=1e-3),
                   lambda u, v, w: TF.triplet_margin_loss(u, v, w, margin=5.0, eps=1e-3),
                   [b, pos[None], b[::-1].copy()], rng=rng, name="triplet broadcast")
    with pytest.raises(RuntimeError, match="same number of dimensions"):
        F.triplet_margin_loss(fc.randn(3, 4), fc.randn(3, 4), fc.randn(4))
    with pytest.raises(ValueError, match="margin must be greater than 0"):
        F.triplet_margin_loss(fc.randn(3, 4), fc.randn(3, 4), fc.randn(3, 4), margin=0)
    with pytest.raises(ValueError, match="greater than 0"):
        nn.TripletMarginLoss(margin=-1.0)


# ----------------------------------------------------------------------------- multi-class losses


def _distinct_rows(rng, n, c):
    """Scores whose pairwise differences stay off the margin kinks (margin 1 and 0.5)."""
    x = rng.permutation(n * c).reshape(n, c).astype(np.float32) * 0.37 / c
    return (x + rng.uniform(0.01, 0.02, (n, c))).astype(np.float32)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p", [1, 2])
def test_multi_margin_loss(reduction, p, rng):
    x = randn(rng, 5, 4, scale=0.6)
    t = rng.integers(0, 4, 5)
    w = (np.abs(randn(rng, 4)) + 0.5).astype(np.float32)
    for margin in (1.0, 0.4):
        gaps = margin - x[np.arange(5), t][:, None] + x
        x[np.abs(gaps) < 0.02] += 0.05
        check_vs_torch(lambda a: F.multi_margin_loss(a, fc.tensor(t), p, margin,
                                                     reduction=reduction),
                       lambda a: TF.multi_margin_loss(a, torch.tensor(t), p, margin,
                                                      reduction=reduction),
                       [x], rng=rng, name=f"multi_margin_loss p={p}")
    check_vs_torch(lambda a, ww: F.multi_margin_loss(a, fc.tensor(t), p, weight=ww,
                                                     reduction=reduction),
                   lambda a, ww: TF.multi_margin_loss(a, torch.tensor(t), p, weight=ww,
                                                      reduction=reduction),
                   [x, w], rng=rng, grad_idx=[0], name="multi_margin_loss weight")
    layer = nn.MultiMarginLoss(p=p, weight=fc.tensor(w), reduction=reduction)
    tlayer = torch.nn.MultiMarginLoss(p=p, weight=torch.tensor(w, dtype=torch.float64),
                                      reduction=reduction)
    check_vs_torch(lambda a: layer(a, fc.tensor(t)), lambda a: tlayer(a, torch.tensor(t)),
                   [x], rng=rng, name="MultiMarginLoss")
    # one sample: (C,) input with a 0-D or (1,) target
    for tt in (np.int64(t[0]), t[:1]):
        check_vs_torch(lambda a: F.multi_margin_loss(a, fc.tensor(tt), p, reduction=reduction),
                       lambda a: TF.multi_margin_loss(a, torch.tensor(tt), p,
                                                      reduction=reduction),
                       [x[0]], rng=rng, name="multi_margin_loss 1-D")


def test_multi_margin_loss_errors():
    x, t = fc.randn(3, 4), fc.tensor([1, 2, 3])
    with pytest.raises(RuntimeError, match="expected scalar type Long"):
        F.multi_margin_loss(x, fc.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(RuntimeError, match="Expected target size"):
        F.multi_margin_loss(x, fc.tensor([1, 2]))
    with pytest.raises(RuntimeError, match="target out of range"):
        F.multi_margin_loss(x, fc.tensor([1, 2, 4]))
    with pytest.raises(RuntimeError, match="non-empty vector or matrix"):
        F.multi_margin_loss(fc.randn(2, 3, 4), fc.tensor([1]))
    with pytest.raises(RuntimeError, match="inconsistent weight size"):
        F.multi_margin_loss(x, t, weight=fc.ones(3))
    with pytest.raises(ValueError, match="one-dimensional"):
        F.multi_margin_loss(x, t, weight=fc.ones(1, 4))
    with pytest.raises(ValueError, match="only p == 1 and p == 2"):
        F.multi_margin_loss(x, t, p=3)
    with pytest.raises(ValueError, match="only p == 1 and p == 2"):
        nn.MultiMarginLoss(p=3)
    with pytest.raises(ValueError, match="reduction"):
        F.multi_margin_loss(x, t, reduction="bad")


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_multilabel_margin_loss(reduction, rng):
    x = _distinct_rows(rng, 4, 5)
    t = np.array([[3, 0, -1, 1, 1],   # stops at the first -1
                  [4, 4, 2, -1, -1],  # a repeated class counts twice
                  [-1, 2, 0, 0, 0],   # no targets: 0
                  [0, 1, 2, 3, 4]], dtype=np.int64)  # every class a target: 0
    check_vs_torch(lambda a: F.multilabel_margin_loss(a, fc.tensor(t), reduction=reduction),
                   lambda a: TF.multilabel_margin_loss(a, torch.tensor(t), reduction=reduction),
                   [x], rng=rng, name=f"multilabel_margin_loss {reduction}")
    check_vs_torch(lambda a: nn.MultiLabelMarginLoss(reduction=reduction)(a, fc.tensor(t)),
                   lambda a: torch.nn.MultiLabelMarginLoss(reduction=reduction)(
                       a, torch.tensor(t)), [x * 3], rng=rng, name="MultiLabelMarginLoss")
    check_vs_torch(lambda a: F.multilabel_margin_loss(a, fc.tensor(t[0]), reduction=reduction),
                   lambda a: TF.multilabel_margin_loss(a, torch.tensor(t[0]),
                                                       reduction=reduction),
                   [x[0]], rng=rng, name="multilabel_margin_loss 1-D")


def test_multilabel_margin_loss_errors():
    x = fc.randn(3, 4)
    with pytest.raises(RuntimeError, match="expected scalar type Long"):
        F.multilabel_margin_loss(x, fc.zeros(3, 4))
    with pytest.raises(RuntimeError, match="inconsistent target size"):
        F.multilabel_margin_loss(x, fc.zeros(2, 4, dtype=fc.long))
    with pytest.raises(RuntimeError, match="out of range"):
        F.multilabel_margin_loss(x, fc.tensor([[1, 5, -1, 0]] * 3))
    with pytest.raises(RuntimeError, match="non-empty vector or matrix"):
        F.multilabel_margin_loss(fc.randn(2, 3, 4), fc.zeros(2, 3, 4, dtype=fc.long))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_multilabel_soft_margin_loss(reduction, rng):
    x = randn(rng, 4, 5, scale=2.0)
    y = rng.integers(0, 2, (4, 5)).astype(np.float32)
    w = (np.abs(randn(rng, 5)) + 0.5).astype(np.float32)
    check_vs_torch(lambda a, t: F.multilabel_soft_margin_loss(a, t, reduction=reduction),
                   lambda a, t: TF.multilabel_soft_margin_loss(a, t, reduction=reduction),
                   [x, y], rng=rng, name=f"multilabel_soft_margin_loss {reduction}")
    check_vs_torch(lambda a, t, ww: F.multilabel_soft_margin_loss(a, t, ww, reduction=reduction),
                   lambda a, t, ww: TF.multilabel_soft_margin_loss(a, t, ww,
                                                                   reduction=reduction),
                   [x, y, w], rng=rng, name="multilabel_soft_margin_loss weight")
    layer = nn.MultiLabelSoftMarginLoss(weight=fc.tensor(w), reduction=reduction)
    tlayer = torch.nn.MultiLabelSoftMarginLoss(weight=torch.tensor(w, dtype=torch.float64),
                                               reduction=reduction)
    check_vs_torch(lambda a, t: layer(a, t), lambda a, t: tlayer(a, t), [x, y], rng=rng,
                   name="MultiLabelSoftMarginLoss")
    check_vs_torch(lambda a, t: F.multilabel_soft_margin_loss(a, t, reduction=reduction),
                   lambda a, t: TF.multilabel_soft_margin_loss(a, t, reduction=reduction),
                   [x[0], y[0]], rng=rng, name="multilabel_soft_margin_loss 1-D")
    with pytest.raises(ValueError, match="reduction"):
        F.multilabel_soft_margin_loss(fc.tensor(x), fc.tensor(y), reduction="bad")


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_soft_margin_loss(reduction, rng):
    x, y = randn(rng, 3, 4, scale=2.0), _labels(rng, 3, 4)
    check_vs_torch(lambda a: F.soft_margin_loss(a, fc.tensor(y), reduction=reduction),
                   lambda a: TF.soft_margin_loss(a, torch.tensor(y), reduction=reduction),
                   [x], rng=rng, name=f"soft_margin_loss {reduction}")
    check_vs_torch(lambda a, t: nn.SoftMarginLoss(reduction=reduction)(a, t),
                   lambda a, t: torch.nn.SoftMarginLoss(reduction=reduction)(a, t),
                   [x, y[:1]], rng=rng, grad_idx=[0], name="SoftMarginLoss broadcast target")
    with pytest.raises(RuntimeError, match="doesn't match the broadcast shape"):
        F.soft_margin_loss(fc.randn(3), fc.ones(2, 3))
    with pytest.raises(RuntimeError):
        F.soft_margin_loss(fc.randn(3), fc.ones(4))


# ----------------------------------------------------------------------------- likelihoods


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("log_input, full", [(True, False), (False, True), (True, True),
                                             (False, False)])
def test_poisson_nll_loss(reduction, log_input, full, rng):
    y = rng.poisson(2.0, (4, 5)).astype(np.float32)
    y[0, :3] = [0.0, 1.0, 1.5]  # the Stirling term is 0 for y <= 1
    x = randn(rng, 4, 5) if log_input else rng.uniform(0.2, 3.0, (4, 5)).astype(np.float32)
    kw = dict(log_input=log_input, full=full, reduction=reduction)
    check_vs_torch(lambda a, t: F.poisson_nll_loss(a, t, **kw),
                   lambda a, t: TF.poisson_nll_loss(a, t, **kw), [x, y], rng=rng,
                   name=f"poisson_nll_loss {kw}")
    check_vs_torch(lambda a, t: nn.PoissonNLLLoss(log_input, full, eps=1e-3,
                                                  reduction=reduction)(a, t),
                   lambda a, t: torch.nn.PoissonNLLLoss(log_input, full, eps=1e-3,
                                                        reduction=reduction)(a, t),
                   [x, y], rng=rng, name="PoissonNLLLoss")


def test_poisson_nll_loss_broadcast_and_errors(rng):
    x, y = randn(rng, 5), rng.poisson(3.0, (2, 5)).astype(np.float32) + 2
    check_vs_torch(lambda a, t: F.poisson_nll_loss(a, t, full=True, reduction="none"),
                   lambda a, t: TF.poisson_nll_loss(a, t, full=True, reduction="none"),
                   [x, y], rng=rng, name="poisson_nll_loss broadcast")
    with pytest.raises(RuntimeError):
        F.poisson_nll_loss(fc.randn(3), fc.ones(4))
    with pytest.raises(ValueError, match="reduction"):
        F.poisson_nll_loss(fc.randn(3), fc.ones(3), reduction="bad")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("var_shape", [(3, 4, 5), (3, 4), (3, 1, 5), (3, 4, 1)])
def test_gaussian_nll_loss(reduction, var_shape, rng):
    x, y = randn(rng, 3, 4, 5), randn(rng, 3, 4, 5)
    var = rng.uniform(0.2, 2.0, var_shape).astype(np.float32)
    var.flat[0] = 1e-8  # clamped at eps: the gradient still reaches var, as in torch
    for full in (False, True):
        kw = dict(full=full, eps=1e-3, reduction=reduction)
        check_vs_torch(lambda a, t, v: F.gaussian_nll_loss(a, t, v, **kw),
                       lambda a, t, v: TF.gaussian_nll_loss(a, t, v, **kw), [x, y, var],
                       rng=rng, name=f"gaussian_nll_loss {var_shape} full={full}")
    check_vs_torch(lambda a, t, v: nn.GaussianNLLLoss(reduction=reduction)(a, t, v),
                   lambda a, t, v: torch.nn.GaussianNLLLoss(reduction=reduction)(a, t, v),
                   [x, y, var], rng=rng, name="GaussianNLLLoss")


def test_gaussian_nll_loss_scalar_var_broadcast_and_errors(rng):
    x, y = randn(rng, 3, 4), randn(rng, 1, 4)
    check_vs_torch(lambda a, t: F.gaussian_nll_loss(a, t, 0.7, full=True),
                   lambda a, t: TF.gaussian_nll_loss(a, t, 0.7, full=True), [x, y], rng=rng,
                   name="gaussian_nll_loss float var")
    a = fc.randn(3, 4)
    with pytest.raises(ValueError, match="negative"):
        F.gaussian_nll_loss(a, a, -1.0)
    with pytest.raises(ValueError, match="negative"):
        F.gaussian_nll_loss(a, a, fc.tensor(-np.ones((3, 4), np.float32)))
    with pytest.raises(ValueError, match="incorrect size"):
        F.gaussian_nll_loss(a, a, fc.ones(3, 2))
    with pytest.raises(ValueError, match="incorrect size"):
        F.gaussian_nll_loss(fc.randn(3, 4, 5), fc.randn(3, 4, 5), fc.ones(3, 1, 1))
    with pytest.raises(ValueError, match="reduction"):
        F.gaussian_nll_loss(a, a, fc.ones(3, 4), reduction="bad")


# ----------------------------------------------------------------------------- shared behaviour


LEGACY = [
    ("margin_ranking_loss", lambda f, a, kw: f.margin_ranking_loss(a, a * 0.5, a.sign(), **kw)),
    ("hinge_embedding_loss", lambda f, a, kw: f.hinge_embedding_loss(a, a.sign(), **kw)),
    ("soft_margin_loss", lambda f, a, kw: f.soft_margin_loss(a, a.sign(), **kw)),
    ("poisson_nll_loss", lambda f, a, kw: f.poisson_nll_loss(a, a.abs(), **kw)),
    ("multilabel_soft_margin_loss",
     lambda f, a, kw: f.multilabel_soft_margin_loss(a, (a > 0).float(), **kw)),
]


@pytest.mark.parametrize("name, call", LEGACY, ids=[n for n, _ in LEGACY])
@pytest.mark.parametrize("size_average, reduce", [(False, None), (None, False), (True, True)])
def test_deprecated_size_average_and_reduce(name, call, size_average, reduce, rng):
    x = randn(rng, 3, 4)
    kw = dict(size_average=size_average, reduce=reduce)
    with pytest.warns(UserWarning, match="deprecated"):
        got = call(F, fc.tensor(x), kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = call(TF, torch.tensor(x), kw)
    assert_close(got, want, name=f"{name} {kw}")


def test_loss_modules_take_legacy_flags_and_repr():
    with pytest.warns(UserWarning, match="reduction='sum'"):
        layer = nn.SoftMarginLoss(size_average=False)
    assert layer.reduction == "sum"
    assert nn.MultiMarginLoss(weight=fc.ones(3)).weight.shape == (3,)
    assert "weight" in dict(nn.MultiLabelSoftMarginLoss(weight=fc.ones(3)).named_buffers())


# ----------------------------------------------------------------------------- activations

ACTIVATIONS = [
    ("softsign", lambda f, t: f.softsign(t), nn.Softsign, torch.nn.Softsign, ()),
    ("softshrink", lambda f, t: f.softshrink(t, 0.7), nn.Softshrink, torch.nn.Softshrink,
     (0.7,)),
    ("softshrink default", lambda f, t: f.softshrink(t), nn.Softshrink, torch.nn.Softshrink, ()),
    ("hardshrink", lambda f, t: f.hardshrink(t, 0.7), nn.Hardshrink, torch.nn.Hardshrink,
     (0.7,)),
    ("hardshrink default", lambda f, t: f.hardshrink(t), nn.Hardshrink, torch.nn.Hardshrink, ()),
    ("tanhshrink", lambda f, t: f.tanhshrink(t), nn.Tanhshrink, torch.nn.Tanhshrink, ()),
]


@pytest.mark.parametrize("name, fn, fc_layer, torch_layer, args", ACTIVATIONS,
                         ids=[a[0] for a in ACTIVATIONS])
def test_activations(name, fn, fc_layer, torch_layer, args, rng):
    x = randn(rng, 3, 4, 5, scale=1.5)
    for kink in (0.5, -0.5, 0.7, -0.7):  # keep |x| off lambd
        x = _off_kink(x, kink)
    check_vs_torch(lambda t: fn(F, t), lambda t: fn(TF, t), [x], rng=rng, name=name)
    check_vs_torch(lambda t: fc_layer(*args)(t), lambda t: torch_layer(*args)(t), [x],
                   rng=rng, name=f"nn layer {name}")
    assert repr(fc_layer(*args)).startswith(fc_layer.__name__)


def test_shrink_errors():
    with pytest.raises(RuntimeError, match="lambda must be in range"):
        F.softshrink(fc.randn(3), -1.0)
    with pytest.raises(TypeError):
        F.hardshrink(fc.randn(3), "0.5")


@pytest.mark.parametrize("lower, upper", [(1.0 / 8, 1.0 / 3), (0.1, 0.1), (0.0, 0.9)])
def test_rrelu_evaluation_matches_torch(lower, upper, rng):
    x = _off_kink(randn(rng, 4, 5))
    check_vs_torch(lambda t: F.rrelu(t, lower, upper), lambda t: TF.rrelu(t, lower, upper),
                   [x], rng=rng, name="rrelu eval")
    check_vs_torch(lambda t: F.rrelu(t, lower, upper, training=False),
                   lambda t: TF.rrelu(t, lower, upper, training=False), [x], rng=rng,
                   name="rrelu training=False")
    layer, tlayer = nn.RReLU(lower, upper).eval(), torch.nn.RReLU(lower, upper).eval()
    check_vs_torch(lambda t: layer(t), lambda t: tlayer(t), [x], rng=rng, name="RReLU eval")


def test_rrelu_training_draws_a_slope_per_element(rng):
    lower, upper = 0.1, 0.4
    x = _off_kink(randn(rng, 200, 50))
    t = fc.tensor(x, requires_grad=True)
    fc.manual_seed(7)
    y = F.rrelu(t, lower, upper, training=True)
    y.sum().backward()
    y, g = y.detach().numpy(), t.grad.numpy()
    neg = x < 0
    np.testing.assert_array_equal(y[~neg], x[~neg])
    np.testing.assert_array_equal(g[~neg], 1.0)
    slope = y[neg] / x[neg]
    assert slope.min() >= lower - 1e-6 and slope.max() <= upper + 1e-6
    np.testing.assert_allclose(g[neg], slope, rtol=1e-5)  # the gradient is the drawn slope
    # uniform on [lower, upper]: mean and spread, and not one shared slope
    n = slope.size
    assert abs(slope.mean() - (lower + upper) / 2) < 4 * (upper - lower) / math.sqrt(12 * n)
    assert abs(slope.std() - (upper - lower) / math.sqrt(12)) < 0.01
    hist = np.histogram(slope, bins=5, range=(lower, upper))[0] / n
    assert np.all(np.abs(hist - 0.2) < 0.03)
    # reproducible under manual_seed, different on the next draw
    fc.manual_seed(7)
    again = F.rrelu(fc.tensor(x), lower, upper, training=True).numpy()
    np.testing.assert_array_equal(again, y)
    assert not np.array_equal(F.rrelu(fc.tensor(x), lower, upper, training=True).numpy(), y)
    # the module draws in training mode only
    layer = nn.RReLU(lower, upper)
    assert layer.training and not np.array_equal(layer(fc.tensor(x)).numpy(),
                                                 layer.eval()(fc.tensor(x)).numpy())


def test_rrelu_errors():
    with pytest.raises(RuntimeError, match="Lower bound should be less than or equal"):
        F.rrelu(fc.randn(3), 0.5, 0.2)
    with pytest.raises(RuntimeError, match="Lower bound"):
        F.rrelu(fc.randn(3), 0.5, 0.2, training=True)
    x = fc.randn(3, 4)
    want = F.rrelu(x).numpy()  # evaluation: the mean slope
    assert F.rrelu(x, inplace=True) is x
    np.testing.assert_array_equal(x.numpy(), want)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 4, 5)])
def test_softmax2d(shape, rng):
    x = randn(rng, *shape)
    check_vs_torch(lambda t: nn.Softmax2d()(t), lambda t: torch.nn.Softmax2d()(t), [x],
                   rng=rng, name="Softmax2d")


def test_softmax2d_errors():
    with pytest.raises(ValueError, match="expected input to be 3D or 4D, got 2D"):
        nn.Softmax2d()(fc.randn(3, 4))
