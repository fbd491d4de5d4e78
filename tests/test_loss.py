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


def test_accuracy_default_topk_is_1_and_5(rng):
    logits = distinct(rng, 20, 10)
    target = rng.integers(0, 10, size=20)
    assert F.accuracy(fastconv.tensor(logits), target) == pytest.approx(
        R.accuracy(logits, target, (1, 5)))
