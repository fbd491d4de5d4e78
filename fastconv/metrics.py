"""Classification metrics over (N, K) class scores: top-k hits, predicted classes, confusion.

One definition of "correct" serves ``F.accuracy``, the training loop, ``models.evaluate``,
``models.predict`` and the confusion matrix: a row's top k are the k classes a stable
descending sort puts first, as ``torch.topk`` / ``torch.argmax`` pick them. On ties the lower
class index wins, so constant scores are right exactly as often as argmax makes them (the
target is class 0), never always. A row holding NaN has no prediction and is never right;
every comparison with NaN is false, so a rank-based count would call it right instead.
"""

from __future__ import annotations

import numpy as np

__all__ = ["confusion_matrix", "predicted_class", "topk_hits"]


def _arrays(scores, target=None, op="topk_hits"):
    from fastconv.tensor import Tensor

    s = np.asarray(scores.numpy() if isinstance(scores, Tensor) else scores)
    if s.ndim != 2:
        raise ValueError(f"{op}: scores must be 2-D (N, K), got shape {s.shape}")
    if target is None:
        return s, None
    t = np.asarray(target.numpy() if isinstance(target, Tensor) else target)
    if t.dtype.kind not in "iu":
        raise TypeError(f"{op}: target must hold integer class indices, got dtype {t.dtype}")
    if t.shape != (s.shape[0],):
        raise ValueError(f"{op}: target must have shape ({s.shape[0]},) to match scores "
                         f"{s.shape}, got {t.shape}")
    if t.size and (t.min() < 0 or t.max() >= s.shape[1]):
        raise ValueError(f"{op}: target holds a class index outside [0, {s.shape[1]})")
    return s, t.astype(np.int64, copy=False)


def topk_hits(scores, target, k: int = 1) -> np.ndarray:
    """(N,) bool: whether each row's target is among its ``k`` top-scoring classes.

    Ties go to the lower class index; a row with a NaN score is never a hit; ``k`` at or
    above the class count makes every other row a hit.
    """
    s, t = _arrays(scores, target)
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"topk_hits: k must be a positive int, got {k!r}")
    valid = ~np.isnan(s).any(axis=1)
    if k == 1:
        hit = predicted_class(s) == t
    elif k >= s.shape[1]:
        hit = np.ones(len(t), bool)
    else:
        # Negated scores in a stable ascending sort: the largest first, ties by index.
        top = np.argsort(-s, axis=1, kind="stable")[:, :k]
        hit = (top == t[:, None]).any(axis=1)
    return hit & valid


def predicted_class(scores) -> np.ndarray:
    """(N,) int64: each row's top class (the lowest index among equal maxima); -1 where the
    row holds a NaN."""
    s, _ = _arrays(scores, op="predicted_class")
    if s.shape[1] == 0:
        return np.full(s.shape[0], -1, np.int64)
    pred = s.argmax(axis=1).astype(np.int64)
    pred[np.isnan(s).any(axis=1)] = -1
    return pred


def confusion_matrix(target, pred, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) counts, row = true class, column = predicted class, of the
    rows that have a prediction (``pred`` >= 0; rows with NaN scores are left out, so a
    class's recall is its diagonal over the class's count, not over its row's sum)."""
    t = np.asarray(target, dtype=np.int64)
    p = np.asarray(pred, dtype=np.int64)
    conf = np.zeros((num_classes, num_classes), np.int64)
    ok = p >= 0
    np.add.at(conf, (t[ok], p[ok]), 1)
    return conf
