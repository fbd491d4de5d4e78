"""Connectionist temporal classification loss (``ctc_loss``), Graves et al., 2006,
"Connectionist Temporal Classification: Labelling Unsegmented Sequence Data with Recurrent
Neural Networks", as torch.nn.functional.ctc_loss.

A target l of length L is extended to l' = (blank, l1, blank, l2, ..., lL, blank), 2L + 1
labels. An alignment visits l' left to right, one label per time step, moving 0 or 1 labels
on, or 2 when it skips a blank between two different labels. The forward variables

    alpha_t(s) = y_t(l'_s) * (alpha_{t-1}(s) + alpha_{t-1}(s-1) + [skip s] alpha_{t-1}(s-2))

start at alpha_0(0) = y_0(blank), alpha_0(1) = y_0(l1), and p(l | y) = alpha_{T-1}(2L) +
alpha_{T-1}(2L - 1). The backward variables beta_t(s) run the same recursion from the end
(beta_{T-1}(2L) = y_{T-1}(blank), beta_{T-1}(2L - 1) = y_{T-1}(lL)); like torch's, both
include y_t(l'_s), so alpha_t(s) beta_t(s) / y_t(l'_s) is the probability of the alignments
through (t, s). Everything runs in log space, vectorised over the batch: one step of array
code per time step, each sample frozen past its own input length.

The gradient is torch's: d loss / d log_probs[t, n, c] = exp(log_probs[t, n, c]) -
sum over s with l'_s = c of exp(log alpha_t(s) + log beta_t(s) - log_probs[t, n, c] + nll),
the second term being the posterior occupancy of class c at t (in [0, 1], so computed
without overflow). The exp(log_probs) term assumes log_probs come from a log_softmax over C:
it sums to 1 over the classes and log_softmax's backward removes it, so the gradient of the
logits is exact (as torch's). Time steps past a sample's input length get 0. An impossible
alignment gives an infinite loss and NaN gradients, or 0 for both with ``zero_infinity``.
"""

from __future__ import annotations

import numpy as np

from fastconv.function import Function
from fastconv.ops.validate import ArgumentError, contiguous, float_tensor

_NEG_INF = np.float32(-np.inf)


def _logsumexp3(xp, a, b, c):
    """log(exp(a) + exp(b) + exp(c)) elementwise, -inf where all three are."""
    m = xp.maximum(xp.maximum(a, b), c)
    m = xp.where(m == _NEG_INF, np.float32(0), m)
    with np.errstate(divide="ignore"):
        return m + xp.log(xp.exp(a - m) + xp.exp(b - m) + xp.exp(c - m))


def _shift(xp, a, by: int):
    """a moved ``by`` labels along the last axis (right for by > 0), -inf filling in."""
    out = xp.full(a.shape, _NEG_INF, np.float32)
    if by > 0:
        out[..., by:] = a[..., :-by]
    else:
        out[..., :by] = a[..., -by:]
    return out


class CTCLoss(Function):
    """Per-sample negative log-likelihoods (N,) of padded extended targets (see the module
    docstring); the gradient w.r.t. log_probs (T, N, C) is torch's."""

    def forward(self, log_probs, ext, target_lengths, input_lengths, blank, zero_infinity):
        xp = self.xp
        lp = contiguous(xp, log_probs)
        T, N, C = lp.shape
        ext = xp.asarray(ext)  # (N, S2) extended labels, blank past 2L
        L = xp.asarray(target_lengths)
        il = xp.asarray(input_lengths)
        S2 = ext.shape[1]
        s = xp.arange(S2)
        # skip from s - 2 into s: a label (not blank) that differs from the one two back
        skip = xp.zeros((N, S2), bool)
        skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
        lpe = xp.take_along_axis(lp, xp.broadcast_to(ext[None], (T, N, S2)), axis=2)
        alpha = xp.empty((T, N, S2), np.float32)
        if T:
            a = xp.full((N, S2), _NEG_INF, np.float32)
            a[:, 0] = lpe[0, :, 0]
            if S2 > 1:
                a[:, 1] = xp.where(L > 0, lpe[0, :, 1], _NEG_INF)
            alpha[0] = a
            for t in range(1, T):
                prev = alpha[t - 1]
                step = _logsumexp3(xp, prev, _shift(xp, prev, 1),
                                   xp.where(skip, _shift(xp, prev, 2), _NEG_INF)) + lpe[t]
                alpha[t] = xp.where((t < il)[:, None], step, prev)  # frozen past the input
            last = alpha[T - 1]  # alpha at each sample's last input step
            end = xp.take_along_axis(last, (2 * L)[:, None], axis=1)[:, 0]
            before = xp.take_along_axis(last, xp.maximum(2 * L - 1, 0)[:, None], axis=1)[:, 0]
            ll = xp.logaddexp(end, xp.where(L > 0, before, _NEG_INF))
        else:
            ll = xp.zeros(N, np.float32)
        # no input steps: the empty target is certain, any other impossible
        ll = xp.where(il == 0, xp.where(L == 0, np.float32(0), _NEG_INF), ll)
        nll = (-ll).astype(np.float32)
        self.infinite = xp.isinf(nll)
        self.zero_infinity = zero_infinity
        self.saved_state = (lp, lpe, alpha, ext, skip, L, il, nll, s)
        if zero_infinity:
            return xp.where(self.infinite, np.float32(0), nll)
        return nll

    def backward(self, dy):
        xp = self.xp
        lp, lpe, alpha, ext, skip, L, il, nll, s = self.saved_state
        T, N, C = lp.shape
        S2 = ext.shape[1]
        # skip from s + 2 back into s (the forward's skip seen from the other end)
        skip_back = xp.zeros((N, S2), bool)
        skip_back[:, :-2] = skip[:, 2:]
        finals = (s[None] == (2 * L)[:, None]) | (s[None] == (2 * L - 1)[:, None])
        occupancy = xp.empty((T, N, S2), np.float32)
        b = xp.full((N, S2), _NEG_INF, np.float32)
        with np.errstate(invalid="ignore", over="ignore"):
            for t in range(T - 1, -1, -1):
                step = _logsumexp3(xp, b, _shift(xp, b, -1),
                                   xp.where(skip_back, _shift(xp, b, -2), _NEG_INF)) + lpe[t]
                start = xp.where(finals, lpe[t], _NEG_INF)
                b = xp.where((t == il - 1)[:, None], start,
                             xp.where((t < il - 1)[:, None], step, _NEG_INF))
                # alignments through (t, s) over all of them: exp(log alpha + log beta -
                # log y + nll)
                occupancy[t] = xp.exp(alpha[t] + b - lpe[t] + nll[:, None])
            flat = ((xp.arange(T)[:, None, None] * N + xp.arange(N)[None, :, None]) * C
                    + ext[None]).reshape(-1)
            per_class = xp.bincount(flat, weights=occupancy.reshape(-1).astype(np.float64),
                                    minlength=T * N * C)
            grad = xp.exp(lp) - per_class.reshape(T, N, C).astype(np.float32)
        live = xp.arange(T)[:, None] < il[None, :]  # (T, N): steps within the input
        if self.zero_infinity:
            live = live & ~self.infinite[None, :]
        else:  # torch's exp(log(0) + inf - log_probs): NaN for every class
            grad = xp.where(self.infinite[None, :, None], np.float32(np.nan), grad)
        grad = xp.where(live[..., None], grad, np.float32(0))
        grad *= xp.asarray(dy, np.float32).reshape(1, N, 1)
        return grad, None, None, None, None, None


def _lengths(value, name: str, op: str, N: int, upper: int | None = None) -> np.ndarray:
    """input_lengths / target_lengths (a Tensor, a tuple or list, or an int for unbatched
    input) as an (N,) int64 host array, checked."""
    from fastconv.tensor import Tensor

    if isinstance(value, Tensor):
        data = np.asarray(value.data if value.device == "cpu" else value.data.get())
    else:
        data = np.asarray(value)
    if data.dtype.kind not in "iu":
        raise TypeError(f"{op}: {name} must be integral (a Tensor or a tuple of ints), got "
                        f"{data.dtype} values")
    data = data.astype(np.int64).reshape(-1)
    if data.shape != (N,):
        raise ArgumentError(f"{op}: {name} must hold one length per batch element ({N}), got "
                            f"{data.size}")
    if data.size and data.min() < 0:
        raise ArgumentError(f"{op}: expected {name} to have value at least 0, but got value "
                            f"{int(data.min())}")
    if upper is not None and data.size and data.max() > upper:
        raise ArgumentError(f"{op}: expected {name} to have value at most {upper} (the input's "
                            f"time steps), but got value {int(data.max())}")
    return data


def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean",
             zero_infinity=False):
    """The CTC loss (Graves et al., 2006; see the module docstring for the recursions), as
    torch.nn.functional.ctc_loss: -log p(target | log_probs), summed over all alignments.

    Args:
        log_probs: (T, N, C) log-probabilities (a log_softmax over C), or unbatched (T, C).
        targets: (N, S) padded class indices (S >= the longest target), or the N targets
            concatenated into one 1-D tensor of sum(target_lengths) entries; (S,) for
            unbatched input. Integers in [0, C), not ``blank``.
        input_lengths, target_lengths: one length per sample, as an int Tensor or a tuple
            or list of ints (an int for unbatched input); input lengths at most T.
        blank: the blank class, in [0, C).
        reduction: "none" (the (N,) losses), "sum", or "mean": each loss divided by its
            target length (at least 1), then the mean over the batch (torch's rule).
        zero_infinity: an impossible alignment (target too long for its input, with the
            blanks that repeated labels need) gives loss 0 and gradient 0 instead of inf
            and NaN.
    """
    from fastconv.ops.loss import legacy_reduction
    from fastconv.tensor import Tensor

    op = "ctc_loss"
    float_tensor(log_probs, "log_probs", op, (2, 3))
    reduction = legacy_reduction(op, None, None, reduction)
    unbatched = log_probs.ndim == 2
    lp = log_probs.unsqueeze(1) if unbatched else log_probs
    T, N, C = lp.shape
    if isinstance(blank, bool) or not isinstance(blank, (int, np.integer)) or \
            not 0 <= blank < C:
        raise ArgumentError(f"{op}: blank must be in label range [0, {C}), got {blank!r}")
    if not isinstance(targets, Tensor):
        raise TypeError(f"{op}: targets must be a fastconv.Tensor of class indices, got "
                        f"{type(targets).__name__}")
    tg = np.asarray(targets.data if targets.device == "cpu" else targets.data.get())
    if tg.dtype.kind not in "iu":
        raise TypeError(f"{op}: targets must be integer class indices, got {tg.dtype}")
    if unbatched:
        if not (tg.ndim == 1 or (tg.ndim == 2 and tg.shape[0] == 1)):  # (S,) or torch's (1, S)
            raise ArgumentError(f"{op}: for unbatched (T, C) log_probs, targets must be 1-D "
                                f"(or one row), got shape {tuple(tg.shape)}")
        tg = tg.reshape(1, -1)
    il = _lengths(input_lengths, "input_lengths", op, N, upper=T)
    tl = _lengths(target_lengths, "target_lengths", op, N)
    S = int(tl.max()) if N else 0
    padded = np.full((N, S), blank, np.int64)
    if tg.ndim == 2:
        if tg.shape[0] != N or tg.shape[1] < S:
            raise ArgumentError(f"{op}: padded targets must be (N, S) with N = {N} and S at "
                                f"least the longest target length {S}, got shape "
                                f"{tuple(targets.shape)}")
        for n in range(N):
            padded[n, :tl[n]] = tg[n, :tl[n]]
    elif tg.ndim == 1:
        if tg.shape[0] != tl.sum():
            raise ArgumentError(f"{op}: concatenated 1-D targets must hold sum(target_lengths) "
                                f"= {int(tl.sum())} labels, got {tg.shape[0]}")
        starts = np.concatenate([[0], np.cumsum(tl)[:-1]]).astype(np.int64)
        for n in range(N):
            padded[n, :tl[n]] = tg[starts[n]:starts[n] + tl[n]]
    else:
        raise ArgumentError(f"{op}: targets must be (N, S) padded or 1-D concatenated, got shape "
                            f"{tuple(targets.shape)}")
    used = np.arange(S)[None] < tl[:, None]
    if used.any() and (padded[used].min() < 0 or padded[used].max() >= C):
        bad = padded[used][(padded[used] < 0) | (padded[used] >= C)][0]
        raise ArgumentError(f"{op}: targets must be class indices in [0, {C}), got {int(bad)}")
    ext = np.full((N, 2 * S + 1), blank, np.int64)
    ext[:, 1::2] = padded
    from fastconv.backend import get_backend

    xp = get_backend(lp.device).xp
    losses = CTCLoss.apply(lp, xp.asarray(ext), xp.asarray(tl), xp.asarray(il), int(blank),
                           bool(zero_infinity))
    if reduction == "mean":
        divisor = Tensor(xp.asarray(np.maximum(tl, 1).astype(np.float32)))
        return (losses / divisor).mean()
    if reduction == "sum":
        return losses.sum()
    return losses.squeeze(0) if unbatched else losses
