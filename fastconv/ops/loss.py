"""Softmax cross-entropy and top-k accuracy."""

from __future__ import annotations

import numpy as np

from fastconv.backend import get_backend
from fastconv.function import Function
from fastconv.ops.validate import contiguous, float_tensor


class SoftmaxCrossEntropy(Function):
    def forward(self, logits, target, label_smoothing):
        loss, prob = self.kernels.softmax_cross_entropy_forward(
            contiguous(self.xp, logits), target, label_smoothing)
        self.save_for_backward(prob, target)
        self.label_smoothing = label_smoothing
        return self.xp.asarray(loss, dtype=np.float32).reshape(())

    def backward(self, dy):
        prob, target = self.saved
        # On the GPU dy stays a device scalar: no host round trip (a captured step needs none).
        dloss = float(dy) if self.xp is np else dy
        dlogits = self.kernels.softmax_cross_entropy_backward(
            prob, target, self.label_smoothing, dloss)
        return dlogits, None, None


def _target_array(op, target, n, device):
    from fastconv.tensor import Tensor

    data = target.data if isinstance(target, Tensor) else target
    xp = get_backend(device).xp
    data = xp.asarray(data)
    if data.dtype.kind not in "iu":
        raise TypeError(f"{op}: target must hold integer class indices, got dtype {data.dtype}")
    if data.shape != (n,):
        raise ValueError(f"{op}: target must have shape ({n},) to match the batch, got {data.shape}")
    return xp.ascontiguousarray(data, dtype=np.int64)


def cross_entropy(logits, target, label_smoothing=0.0):
    """Mean softmax cross-entropy between (N, K) logits and class indices (N,).

    loss_i = -(1 - ls) * log p_i[t_i] - ls * mean_k log p_i[k],  p = softmax(logits),
    with label smoothing ``ls`` (Szegedy et al., 2016) as defined by PyTorch.
    """
    op = "cross_entropy"
    float_tensor(logits, "input", op, (2,))
    N, K = logits.shape
    t = _target_array(op, target, N, logits.device)
    # The range check reads the targets on the host, which a CUDA-graph capture cannot do;
    # while capturing, the kernels guard the reads and an out-of-range target gives NaN.
    capturing = get_backend(logits.device).is_capturing()
    if N and not capturing and (int(t.min()) < 0 or int(t.max()) >= K):
        bad = int(t.min()) if int(t.min()) < 0 else int(t.max())
        raise ValueError(f"{op}: target holds class index {bad}, outside [0, {K}) for logits "
                         f"of shape {logits.shape}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be in [0, 1], got {label_smoothing}")
    return SoftmaxCrossEntropy.apply(logits, t, float(label_smoothing))


def accuracy(logits, target, topk=(1, 5)):
    """Top-k accuracies in percent: the share of rows whose target is among their k top
    classes, picked as ``torch.topk`` picks them (ties go to the lower class index; a row
    holding NaN is never right; see :mod:`fastconv.metrics`).

    Returns a list with one float per k (k at or above the class count counts every row
    without NaN); 0.0 for an empty batch.
    """
    from fastconv.metrics import topk_hits

    ks = (topk,) if isinstance(topk, int) else tuple(topk)
    return [float(topk_hits(logits, target, k).mean() * 100.0) if len(target) else 0.0
            for k in ks]
