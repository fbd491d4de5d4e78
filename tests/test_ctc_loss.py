"""ctc_loss / nn.CTCLoss against torch on fresh random inputs: padded and concatenated
targets, lengths as tensors or tuples, every reduction, a non-zero blank, unbatched input,
impossible alignments (inf and NaN gradients, or zeros with zero_infinity), the gradient
through log_softmax, a long sequence against torch in float64, a brute-force sum over all
alignments; the layer; bad arguments."""

from __future__ import annotations

import itertools

import fastconv.nn.functional as F
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastconv as fc

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _log_probs(rng, *shape, spread=2.0):
    x = (rng.standard_normal(shape) * spread).astype(np.float32)
    return torch.tensor(x).log_softmax(-1).numpy()


def _compare(rng, lp, targets, input_lengths, target_lengths, blank=0, reduction="mean",
             zero_infinity=False, lengths_as=tuple):
    """Loss and log_probs gradient of fastconv and torch, equal (NaN where torch's is)."""
    def lengths(v, lib):
        return tuple(int(n) for n in np.atleast_1d(v)) if lengths_as is tuple \
            else lib.tensor(np.asarray(v, np.int64))

    fl, tl = fc.tensor(lp, requires_grad=True), torch.tensor(lp, requires_grad=True)
    fy = F.ctc_loss(fl, fc.tensor(targets), lengths(input_lengths, fc),
                    lengths(target_lengths, fc), blank, reduction, zero_infinity)
    ty = TF.ctc_loss(tl, torch.tensor(targets), lengths(input_lengths, torch),
                     lengths(target_lengths, torch), blank, reduction, zero_infinity)
    assert tuple(fy.shape) == tuple(ty.shape)
    np.testing.assert_allclose(fy.detach().numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    dy = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
    fy.backward(fc.tensor(dy))
    ty.backward(torch.tensor(dy))
    got, want = fl.grad.numpy(), tl.grad.numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(np.nan_to_num(got), np.nan_to_num(want), rtol=1e-4, atol=1e-5)
    return fy.detach().numpy(), got


def _targets(rng, N, S, C, blank):
    labels = np.array([c for c in range(C) if c != blank])
    return rng.choice(labels, (N, S)).astype(np.int64)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_configurations_match_torch(data):
    draw = data.draw
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    T, N, C = draw(st.integers(1, 30)), draw(st.integers(1, 5)), draw(st.integers(2, 12))
    blank = draw(st.sampled_from([0, C - 1, C // 2]))
    il = rng.integers(0, T + 1, N)
    # mostly feasible targets, sometimes too long for their input
    tl = np.array([rng.integers(0, max(1, n // 2) + 1 + draw(st.integers(0, 2)))
                   for n in il], np.int64)
    S = int(tl.max()) + draw(st.integers(0, 2))
    tg = _targets(rng, N, S, C, blank)
    if draw(st.booleans()):  # concatenated
        tg = np.concatenate([tg[n, :tl[n]] for n in range(N)]).astype(np.int64)
    _compare(rng, _log_probs(rng, T, N, C), tg, il, tl, blank,
             draw(st.sampled_from(["none", "mean", "sum"])), draw(st.booleans()),
             draw(st.sampled_from([tuple, "tensor"])))


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("zero_infinity", [False, True])
def test_impossible_alignments(rng, reduction, zero_infinity):
    """Sample 1's target is longer than its input, sample 2 repeats a label with no step
    left for the blank between; sample 3 has no input steps and an empty target (loss 0),
    sample 4 no input steps and a label (inf, but no step to take a gradient at)."""
    lp = _log_probs(rng, 6, 5, 4)
    tg = np.array([[1, 2, 3], [1, 2, 3], [2, 2, 1], [1, 1, 1], [3, 1, 1]], np.int64)
    il, tl = np.array([6, 2, 2, 0, 0]), np.array([3, 3, 2, 0, 1])
    loss, grad = _compare(rng, lp, tg, il, tl, 0, reduction, zero_infinity, "tensor")
    if reduction == "none":
        assert np.isfinite(loss[0]) and loss[3] == 0
        if zero_infinity:
            assert (loss[[1, 2, 4]] == 0).all()
            assert (grad[:, 1:3] == 0).all()
        else:
            assert np.isinf(loss[[1, 2, 4]]).all()
            assert np.isnan(grad[:2, 1:3]).all() and (grad[2:, 1:3] == 0).all()
    assert (grad[:, 3:] == 0).all()  # no input steps: no gradient
    assert np.isfinite(grad[:, 0]).all()


def test_unbatched_input(rng):
    lp = _log_probs(rng, 7, 5)
    tg = np.array([1, 3, 3], np.int64)
    for reduction in ("none", "mean", "sum"):
        _compare(rng, lp, tg, 7, 3, 0, reduction, lengths_as="tensor")  # 0-dim lengths
        _compare(rng, lp, tg, 7, 3, 0, reduction)  # 1-tuples
    assert F.ctc_loss(fc.tensor(lp), fc.tensor(tg), 7, 3, reduction="none").shape == ()


def test_gradient_through_log_softmax_matches_torch(rng):
    """What training sees: the logits' gradient (torch's exp(log_probs) term cancels)."""
    x = (rng.standard_normal((20, 3, 6)) * 2).astype(np.float32)
    tg = _targets(rng, 3, 5, 6, 0)
    il, tl = (20, 17, 12), (5, 4, 5)
    fx, tx = fc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    F.ctc_loss(F.log_softmax(fx, 2), fc.tensor(tg), il, tl).backward()
    TF.ctc_loss(TF.log_softmax(tx, 2), torch.tensor(tg), il, tl).backward()
    np.testing.assert_allclose(fx.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_long_sequence_against_float64(rng):
    """T = 300 steps: the loss within 1e-5 (relative) of torch in float64. The log-space
    recursions drift in float32 (each step rounds a sum near the loss, ~1000 here, so the
    occupancies carry relative errors ~1e-3): the gradient's error against float64 is
    checked to be no larger than torch's own float32 error (twice it, plus 1e-4)."""
    T, N, C, S = 300, 4, 20, 60
    lp64 = torch.tensor(rng.standard_normal((T, N, C)) * 3).log_softmax(2)
    tg = torch.tensor(_targets(rng, N, S, C, 0))
    il, tl = (300, 280, 250, 200), (60, 55, 40, 30)
    losses, grads = [], []
    for lp in (lp64.clone(), lp64.float()):
        lp.requires_grad_()
        loss = TF.ctc_loss(lp, tg, il, tl, reduction="sum")
        loss.backward()
        losses.append(float(loss.detach()))
        grads.append(lp.grad.double().numpy())
    fl = fc.tensor(lp64.numpy().astype(np.float32), requires_grad=True)
    got = F.ctc_loss(fl, fc.tensor(tg.numpy()), il, tl, reduction="sum")
    got.backward()
    np.testing.assert_allclose(float(got), losses[0], rtol=1e-5)
    torch32_error = np.abs(grads[1] - grads[0]).max()
    assert np.abs(fl.grad.numpy() - grads[0]).max() <= 2 * torch32_error + 1e-4


def test_brute_force_sum_over_alignments(rng):
    """p(target) is the sum over every path of length T whose collapse (merge repeats, drop
    blanks) is the target: checked by enumerating all C^T paths."""
    T, C, blank = 5, 3, 0
    lp = _log_probs(rng, T, 1, C)
    for target in ([1], [1, 2], [1, 1], [2, 1, 2], []):
        p = 0.0
        for path in itertools.product(range(C), repeat=T):
            collapsed = [c for i, c in enumerate(path)
                         if c != blank and (i == 0 or c != path[i - 1])]
            if collapsed == target:
                p += float(np.exp(sum(lp[t, 0, c] for t, c in enumerate(path))))
        loss = F.ctc_loss(fc.tensor(lp), fc.tensor(np.array([target + [1]], np.int64)),
                          (T,), (len(target),), blank, "none")
        np.testing.assert_allclose(float(loss[0]), -np.log(p), rtol=1e-5)


def test_ctc_loss_layer(rng):
    for kw in ({}, {"blank": 3, "reduction": "sum", "zero_infinity": True}):
        f, t = fc.nn.CTCLoss(**kw), torch.nn.CTCLoss(**kw)
        assert repr(f) == repr(t)
        assert (f.blank, f.reduction, f.zero_infinity) == (t.blank, t.reduction, t.zero_infinity)
        lp = _log_probs(rng, 9, 2, 4)
        tg = _targets(rng, 2, 3, 4, f.blank)
        il, tl = torch.tensor([9, 1]), torch.tensor([3, 2])
        got = f(fc.tensor(lp), fc.tensor(tg), fc.tensor(il.numpy()), fc.tensor(tl.numpy()))
        want = t(torch.tensor(lp), torch.tensor(tg), il, tl)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5)


def test_bad_arguments(rng):
    lp = fc.tensor(_log_probs(rng, 5, 2, 4))
    tg = fc.tensor(np.array([[1, 2], [3, 1]], np.int64))
    il, tl = (5, 4), (2, 2)
    with pytest.raises(ValueError, match="2-D or 3-D"):
        F.ctc_loss(fc.randn(5, 2, 4, 1), tg, il, tl)
    with pytest.raises(TypeError, match="float32"):
        F.ctc_loss(fc.tensor(np.zeros((5, 2, 4), np.int64)), tg, il, tl)
    with pytest.raises(ValueError, match="blank must be in label range"):
        F.ctc_loss(lp, tg, il, tl, blank=4)
    with pytest.raises(ValueError, match="at most 5"):
        F.ctc_loss(lp, tg, (6, 4), tl)
    with pytest.raises(ValueError, match="at least 0"):
        F.ctc_loss(lp, tg, il, (-1, 2))
    with pytest.raises(ValueError, match="one length per batch element"):
        F.ctc_loss(lp, tg, (5,), tl)
    with pytest.raises(TypeError, match="integral"):
        F.ctc_loss(lp, tg, fc.tensor(np.array([5.0, 4.0], np.float32)), tl)
    with pytest.raises(ValueError, match="longest target length 3"):
        F.ctc_loss(lp, tg, il, (3, 2))
    with pytest.raises(ValueError, match="sum\\(target_lengths\\)"):
        F.ctc_loss(lp, fc.tensor(np.array([1, 2, 3], np.int64)), il, tl)
    with pytest.raises(TypeError, match="integer class indices"):
        F.ctc_loss(lp, fc.tensor(np.array([[1.0, 2.0], [3.0, 1.0]], np.float32)), il, tl)
    with pytest.raises(ValueError, match="class indices in \\[0, 4\\), got 7"):
        F.ctc_loss(lp, fc.tensor(np.array([[1, 7], [3, 1]], np.int64)), il, tl)
    with pytest.raises(ValueError, match="reduction"):
        F.ctc_loss(lp, tg, il, tl, reduction="avg")
    with pytest.raises(ValueError, match="targets must be 1-D"):
        F.ctc_loss(fc.tensor(_log_probs(rng, 5, 4)), tg, 5, 2)
    with pytest.raises(ValueError, match="reduction"):
        fc.nn.CTCLoss(reduction="avg")
