"""cross_entropy (with label smoothing, int Tensor or ndarray targets) and top-k accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import reference as R
from helpers import assert_close, check_op, check_vs_torch, distinct, randn, to_numpy

import fastconv
import fastconv.functional as F


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("n,k", [(8, 10), (1, 3), (5, 100), (3, 1)], ids=str)
def test_cross_entropy_vs_reference(n, k, label_smoothing, rng):
    target = rng.integers(0, k, size=n)
    check_op(lambda t: F.cross_entropy(t, target, label_smoothing=label_smoothing),
             lambda a: R.cross_entropy(a, target, label_smoothing),
             [randn(rng, n, k, scale=2.0)], rng=rng, name="cross_entropy")


@pytest.mark.parametrize("make_target", [
    lambda t: t,                                        # int64 ndarray
    lambda t: t.astype(np.int32),                       # int32 ndarray
    lambda t: fastconv.tensor(t),                       # int Tensor
    lambda t: fastconv.tensor(t.astype(np.int32)),
], ids=["ndarray-int64", "ndarray-int32", "tensor-int64", "tensor-int32"])
def test_cross_entropy_target_types(make_target, rng):
    logits = randn(rng, 6, 4)
    target = rng.integers(0, 4, size=6)
    loss = F.cross_entropy(fastconv.tensor(logits), make_target(target))
    assert loss.shape == () and loss.dtype == np.float32
    assert_close(to_numpy(loss), R.cross_entropy(logits, target), name="loss")


def test_cross_entropy_gradient_closed_form(rng):
    """d loss / d logits = (softmax - smoothed one-hot) / N."""
    n, k, ls = 7, 5, 0.2
    logits, target = randn(rng, n, k), rng.integers(0, k, size=n)
    t = fastconv.tensor(logits, requires_grad=True)
    F.cross_entropy(t, target, label_smoothing=ls).backward()
    onehot = np.eye(k)[target]
    want = (R.softmax(logits, 1) - ((1 - ls) * onehot + ls / k)) / n
    assert_close(to_numpy(t.grad), want, name="dlogits")


def test_cross_entropy_upstream_gradient_scales(rng):
    logits, target = randn(rng, 4, 6), rng.integers(0, 6, size=4)
    t1 = fastconv.tensor(logits, requires_grad=True)
    F.cross_entropy(t1, target).backward()
    t2 = fastconv.tensor(logits, requires_grad=True)
    (F.cross_entropy(t2, target) * 3.0).backward()
    assert_close(to_numpy(t2.grad), 3.0 * to_numpy(t1.grad).astype(np.float64), name="3 * grad")


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.3])
def test_cross_entropy_vs_torch(label_smoothing, rng):
    torch = pytest.importorskip("torch")
    target = rng.integers(0, 1000, size=32)
    check_vs_torch(lambda t: F.cross_entropy(t, target, label_smoothing=label_smoothing),
                   lambda t: torch.nn.functional.cross_entropy(
                       t, torch.tensor(target), label_smoothing=label_smoothing),
                   [randn(rng, 32, 1000, scale=3.0)], rng=rng, name="cross_entropy")


def test_cross_entropy_is_stable_for_large_logits(rng):
    logits = (randn(rng, 4, 10) * 30 + 500.0).astype(np.float32)
    target = rng.integers(0, 10, size=4)
    t = fastconv.tensor(logits, requires_grad=True)
    loss = F.cross_entropy(t, target, label_smoothing=0.1)
    assert np.isfinite(to_numpy(loss))
    assert_close(to_numpy(loss), R.cross_entropy(logits, target, 0.1), name="loss")
    loss.backward()
    assert np.all(np.isfinite(to_numpy(t.grad)))


def test_cross_entropy_with_a_minus_infinity_logit(rng):
    """A class masked out with -inf (a common trick) leaves the loss finite unless it is the
    target; label smoothing then makes it infinite, as torch's."""
    torch = pytest.importorskip("torch")
    logits = randn(rng, 6, 5)
    logits[:, 1] = -np.inf
    target = rng.choice([0, 2, 3, 4], size=6)
    for ls in (0.0, 0.2):
        for reduction in ("mean", "sum", "none"):
            got = F.cross_entropy(fastconv.tensor(logits), target, label_smoothing=ls,
                                  reduction=reduction)
            want = torch.nn.functional.cross_entropy(
                torch.tensor(logits), torch.tensor(target), label_smoothing=ls,
                reduction=reduction)
            if ls > 0:  # the smoothing term's mean over classes includes the -inf one
                assert np.isposinf(to_numpy(got)).all() and np.isposinf(want.numpy()).all()
            else:
                assert_close(to_numpy(got), want.numpy(), rtol=1e-5, atol=1e-6,
                             name=f"label_smoothing={ls} {reduction}")


@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss"])
def test_every_target_ignored_gives_a_zero_gradient(loss, rng):
    """A batch whose targets are all ignore_index: the mean is NaN (0 / 0), as torch's, but
    the gradient is zero, so one such batch cannot put NaN into the weights."""
    torch = pytest.importorskip("torch")
    x = randn(rng, 4, 5)
    target = np.full(4, -100)
    t = fastconv.tensor(x, requires_grad=True)
    out = getattr(F, loss)(t, target)
    out.backward()
    ref = torch.tensor(x, requires_grad=True)
    getattr(torch.nn.functional, loss)(ref, torch.tensor(target)).backward()
    assert np.isnan(to_numpy(out))
    assert_close(to_numpy(t.grad), ref.grad.numpy(), rtol=0, atol=0, name="gradient")


# ----------------------------------------------------------------------------- accuracy

def test_accuracy_vs_reference(rng):
    logits = distinct(rng, 50, 10)
    target = rng.integers(0, 10, size=50)
    got = F.accuracy(fastconv.tensor(logits), target, topk=(1, 3, 5, 10))
    assert isinstance(got, list) and len(got) == 4
    assert all(isinstance(v, float) for v in got)
    assert got == pytest.approx(R.accuracy(logits, target, (1, 3, 5, 10)))
    assert got[-1] == pytest.approx(100.0)


def test_accuracy_known_values():
    logits = np.array([[0.1, 0.9, 0.0],    # top-1: class 1
                       [0.8, 0.1, 0.3],    # top-1: class 0, top-2: 0, 2
                       [0.2, 0.3, 0.5],    # top-1: class 2
                       [0.6, 0.3, 0.1]], np.float32)
    target = np.array([1, 2, 0, 0])
    top1, top2 = F.accuracy(fastconv.tensor(logits), fastconv.tensor(target), topk=(1, 2))
    assert top1 == pytest.approx(50.0)   # rows 0 and 3
    assert top2 == pytest.approx(75.0)   # rows 0, 1 and 3
    (only,) = F.accuracy(fastconv.tensor(logits), target, topk=(1,))
    assert only == pytest.approx(50.0)


def test_accuracy_never_flatters_constant_tied_or_nan_logits(rng):
    # Constant logits: every row predicts class 0 (argmax's first maximum), so top-1 is the
    # share of class-0 targets, not 100%; top-k holds classes 0..k-1.
    n, K = 64, 10
    target = rng.integers(0, K, size=n)
    const = np.full((n, K), rng.normal(), np.float32)
    top1, top3 = F.accuracy(fastconv.tensor(const), target, topk=(1, 3))
    assert top1 == pytest.approx(100.0 * np.mean(target == 0))
    assert top3 == pytest.approx(100.0 * np.mean(target < 3))
    # Ties among the leaders: the lower index wins, as a stable descending sort.
    tied = distinct(rng, n, K)
    a, b = rng.choice(K, size=2, replace=False)
    tied[:, a] = tied[:, b] = tied.max(axis=1) + 1.0
    got = F.accuracy(fastconv.tensor(tied), target, topk=(1, 2, 5))
    assert got == pytest.approx(R.accuracy(tied, target, (1, 2, 5)))
    assert got[0] == pytest.approx(100.0 * np.mean(target == min(a, b)))
    # NaN rows are never right, whatever k; the other rows count as usual.
    nan = distinct(rng, n, K)
    bad = rng.random(n) < 0.3
    nan[bad, rng.integers(0, K, size=int(bad.sum()))] = np.nan
    got = F.accuracy(fastconv.tensor(nan), target, topk=(1, 5, K))
    assert got == pytest.approx(R.accuracy(nan, target, (1, 5, K)))
    assert got[2] == pytest.approx(100.0 * np.mean(~bad))
    all_nan = np.full((n, K), np.nan, np.float32)
    assert F.accuracy(fastconv.tensor(all_nan), target, topk=(1, 5)) == [0.0, 0.0]


def test_top1_matches_torch_argmax_on_ties(rng):
    torch = pytest.importorskip("torch")
    scores = rng.integers(0, 3, size=(200, 7)).astype(np.float32)  # many ties
    target = rng.integers(0, 7, size=200)
    (top1,) = F.accuracy(fastconv.tensor(scores), target, topk=(1,))
    expect = (torch.from_numpy(scores).argmax(dim=1).numpy() == target).mean() * 100.0
    assert top1 == pytest.approx(expect)


def test_metrics_predictions_and_confusion(rng):
    from fastconv.metrics import confusion_matrix, predicted_class

    scores = distinct(rng, 40, 4)
    scores[3] = 0.0           # constant row: class 0
    scores[5, 2] = np.nan     # no prediction
    target = rng.integers(0, 4, size=40)
    pred = predicted_class(scores)
    assert pred[3] == 0 and pred[5] == -1
    ok = np.arange(40) != 5
    np.testing.assert_array_equal(pred[ok], np.argmax(scores[ok], axis=1))
    conf = confusion_matrix(target, pred, 4)
    expect = np.zeros((4, 4), np.int64)
    for t, p in zip(target[ok], pred[ok]):
        expect[t, p] += 1
    np.testing.assert_array_equal(conf, expect)
    with pytest.raises(ValueError, match="class index"):
        F.accuracy(fastconv.tensor(scores), np.full(40, 4), topk=(1,))


def test_accuracy_default_topk_is_1_and_5(rng):
    logits = distinct(rng, 20, 10)
    target = rng.integers(0, 10, size=20)
    assert F.accuracy(fastconv.tensor(logits), target) == pytest.approx(
        R.accuracy(logits, target, (1, 5)))
