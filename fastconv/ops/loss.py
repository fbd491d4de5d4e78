"""The losses (cross-entropy, NLL, BCE with logits, MSE, L1, and the rest of PyTorch's losses
but CTC, which is in ``ctc.py``), one_hot and top-k accuracy."""

from __future__ import annotations

import math
import warnings

import numpy as np

from fastconv.backend import get_backend
from fastconv.function import Function
from fastconv.ops.validate import (
    ArgumentError,
    ArgumentTypeError,
    check_allocation,
    contiguous,
    float_tensor,
)


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

    def composite(self, logits, target, label_smoothing):
        from fastconv.ops.activation import log_softmax

        n, c = logits.shape
        q = np.full((n, c), label_smoothing / c, dtype=np.float32)
        q[np.arange(n), np.asarray(self.saved[1]).reshape(-1)] += 1 - label_smoothing
        return -(log_softmax(logits, 1) * q).sum() / n


def legacy_reduction(op, size_average, reduce, reduction):
    """The ``reduction`` string, from PyTorch's deprecated ``size_average``/``reduce`` flags
    when either is given (with PyTorch's warning), and checked."""
    if size_average is not None or reduce is not None:
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = ("mean" if size_average else "sum") if reduce else "none"
        warnings.warn(f"{op}: size_average and reduce args will be deprecated, please use "
                      f"reduction='{reduction}' instead.", UserWarning, stacklevel=3)
    if reduction not in ("none", "mean", "sum"):
        raise ArgumentError(f"{op}: {reduction!r} is not a valid value for reduction "
                            "(expected 'none', 'mean' or 'sum')")
    return reduction


def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _class_weight(op, weight, C, device, name="weight"):
    """The (C,) class-weight array (host or device), or None."""
    if weight is None:
        return None
    float_tensor(weight, name, op, (1,))
    if weight.shape != (C,):
        raise ArgumentError(f"{op}: {name} must hold one value per class, shape ({C},), "
                            f"got {weight.shape}")
    if weight.device != device:
        raise RuntimeError(f"{op}: {name} is on {weight.device}, the input on {device}")
    return weight.data


def _class_targets(op, input, target, ignore_index):
    """Integer class targets for (C,), (N, C) or (N, C, d1, ...) input, checked: shape
    input.shape without dim 1 (or () for unbatched (C,) input), values in [0, C) or
    ``ignore_index``. Returns the int64 array on the input's device."""
    from fastconv.tensor import Tensor

    data = target.data if isinstance(target, Tensor) else target
    xp = get_backend(input.device).xp
    data = xp.asarray(data)
    C = input.shape[0] if input.ndim == 1 else input.shape[1]
    want = () if input.ndim == 1 else input.shape[:1] + input.shape[2:]
    if data.dtype.kind not in "iu":
        raise TypeError(f"{op}: target must hold integer class indices (or, for cross_entropy, "
                        f"class probabilities of the input's shape {input.shape}), got dtype "
                        f"{data.dtype} and shape {tuple(data.shape)}")
    if tuple(data.shape) != want:
        raise ArgumentError(f"{op}: target must have shape {want} to match input of shape "
                            f"{input.shape} (the input without its class dim 1), got "
                            f"{tuple(data.shape)}")
    t = xp.asarray(data, dtype=np.int64, order="C")  # (ascontiguousarray would make () (1,))
    if t.size and not get_backend(input.device).is_capturing():
        bad = t[(t != ignore_index) & ((t < 0) | (t >= C))]
        if bad.size:
            raise ArgumentError(f"{op}: target holds class index {int(bad[0])}, outside [0, {C}) "
                             f"for input of shape {input.shape} (and not ignore_index="
                             f"{ignore_index})")
    return t


def _rows(x, class_dim_last=True):
    """(M, C) view of (C,), (N, C) or (N, C, d1, ...) input: the class dim moved last."""
    if x.ndim == 1:
        return x.reshape(1, x.shape[0])
    if x.ndim == 2:
        return x
    perm = (0,) + tuple(range(2, x.ndim)) + (1,)
    return x.permute(*perm).reshape(-1, x.shape[1])


class NLLLoss(Function):
    """loss_m = -w[t_m] * x[m, t_m] over rows m of (M, C) log-probabilities, 0 where
    t_m == ignore_index; 'mean' divides the sum by sum_m w[t_m] of the rows kept."""

    double_backward = "linear"

    def forward(self, x, target, weight, ignore_index, reduction):
        xp = self.xp
        keep = target != ignore_index
        t = xp.where(keep, target, 0)
        w = keep.astype(np.float32) if weight is None else weight[t] * keep
        rows = xp.arange(x.shape[0])
        losses = -x[rows, t] * w
        self.shape, self.reduction = x.shape, reduction
        self.index, self.w = (rows, t), w
        if reduction == "none":
            return losses
        total = losses.sum(dtype=np.float32)
        if reduction == "sum":
            return xp.asarray(total, dtype=np.float32)
        self.total_weight = w.sum(dtype=np.float32)
        with np.errstate(invalid="ignore", divide="ignore"):  # every target ignored: NaN
            return xp.asarray(total / self.total_weight, dtype=np.float32)

    def backward(self, dy):
        xp = self.xp
        scale = dy
        if self.reduction == "mean":  # every target ignored: a NaN loss whose gradient is 0
            with np.errstate(invalid="ignore", divide="ignore"):
                scale = xp.where(self.total_weight != 0, dy / self.total_weight, 0)
        dx = xp.zeros(self.shape, dtype=np.float32)
        dx[self.index] = -(self.w * scale)
        return dx, None, None, None, None


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    """Negative log-likelihood of class indices given log-probabilities.

        loss_n = -weight[t_n] * input[n, t_n]   (0 where t_n == ignore_index)

    'mean' divides sum_n loss_n by sum_n weight[t_n] over the targets kept (PyTorch's
    weighted mean), 'sum' sums, 'none' keeps the target's shape.

    Args:
        input: (N, C), unbatched (C,), or (N, C, d1, ...) float32 log-probabilities.
        target: integer class indices of shape (N,), (), or (N, d1, ...), in [0, C) or
            equal to ``ignore_index``.
        weight: optional (C,) per-class weights.
        size_average, reduce: PyTorch's deprecated flags (mapped to ``reduction``, with a
            warning).
        ignore_index: a target value that contributes neither loss nor gradient.
        reduction: 'none' | 'mean' | 'sum'.
    """
    op = "nll_loss"
    reduction = legacy_reduction(op, size_average, reduce, reduction)
    float_tensor(input, "input", op)
    if input.ndim < 1:
        raise ArgumentError(f"{op}: input must have a class dim: (C,), (N, C) or (N, C, d1, ...), "
                            f"got shape {input.shape}")
    C = input.shape[0] if input.ndim == 1 else input.shape[1]
    t = _class_targets(op, input, target, ignore_index)
    w = _class_weight(op, weight, C, input.device)
    loss = NLLLoss.apply(_rows(input), t.reshape(-1), w, int(ignore_index), reduction)
    return loss.reshape(t.shape) if reduction == "none" else loss


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    """Softmax cross-entropy between logits and class indices or class probabilities.

    Class indices t (PyTorch's definition, with label smoothing ``ls``, Szegedy et al., 2016):

        loss_n = (1 - ls) * nll_n + ls / C * sum_k -w[k] * log p_n[k],  p = softmax(input)

    where nll_n = -w[t_n] log p_n[t_n], both terms 0 where t_n == ignore_index; 'mean'
    divides by sum_n w[t_n] over the kept targets (the count without weights).

    Class probabilities q (a float target of the input's shape):

        loss_n = -sum_k w[k] * q'_n[k] * log p_n[k],  q' = (1 - ls) q + ls / C

    and 'mean' divides by the number of rows (N times d1 ...).

    Args:
        input: (N, C), unbatched (C,), or (N, C, d1, ...) float32 logits.
        target: integer class indices ((N,), (), (N, d1, ...)) or float32 probabilities of
            the input's shape.
        weight: optional (C,) per-class weights.
        size_average, reduce: PyTorch's deprecated flags (mapped to ``reduction``, warned).
        ignore_index: a class-index target value to skip (default -100).
        reduction: 'none' | 'mean' | 'sum'.
        label_smoothing: in [0, 1].

    The common case (2-D logits, class indices, no weight, 'mean', no target equal to
    ``ignore_index``) runs as one fused kernel per direction.
    """
    from fastconv.ops.activation import log_softmax
    from fastconv.tensor import Tensor

    op = "cross_entropy"
    reduction = legacy_reduction(op, size_average, reduce, reduction)
    float_tensor(input, "input", op)
    if input.ndim < 1:
        raise ArgumentError(f"{op}: input must have a class dim: (C,), (N, C) or (N, C, d1, ...), "
                            f"got shape {input.shape}")
    if isinstance(label_smoothing, bool) or not 0.0 <= label_smoothing <= 1.0:
        raise ArgumentError(f"{op}: label_smoothing must be in [0, 1], got {label_smoothing}")
    C = input.shape[0] if input.ndim == 1 else input.shape[1]
    class_dim = 0 if input.ndim == 1 else 1
    w = _class_weight(op, weight, C, input.device)
    tdata = target.data if isinstance(target, Tensor) else target
    if getattr(tdata, "dtype", np.asarray(tdata).dtype).kind == "f":
        if tuple(np.shape(tdata)) != input.shape:
            raise TypeError(f"{op}: a float target holds class probabilities and must have the "
                            f"input's shape {input.shape}, got {tuple(np.shape(tdata))}; class "
                            "indices must be an integer target")
        q = target if isinstance(target, Tensor) else Tensor(
            get_backend(input.device).xp.asarray(tdata, dtype=np.float32))
        float_tensor(q, "target", op)
        if ignore_index != -100:  # as torch: a probability target has no class to skip
            raise RuntimeError(f"{op}: ignore_index is not supported for floating point target "
                               f"(got ignore_index={ignore_index})")
        if label_smoothing > 0:
            q = q * (1.0 - label_smoothing) + label_smoothing / C
        terms = log_softmax(input, dim=class_dim) * q
        if w is not None:
            terms = terms * Tensor(w.reshape((C,) + (1,) * (input.ndim - 1 - class_dim)))
        per_row = -terms.sum(dim=class_dim)
        return _reduce(per_row, reduction)
    t = _class_targets(op, input, target, ignore_index)
    capturing = get_backend(input.device).is_capturing()
    if (input.ndim == 2 and w is None and reduction == "mean"
            and (capturing or not bool((t == ignore_index).any()))):
        # The fused path. The targets' range was checked above; while a CUDA graph is
        # captured nothing is read on the host and the kernels guard their reads.
        return SoftmaxCrossEntropy.apply(input, t, float(label_smoothing))
    logp = log_softmax(input, dim=class_dim)
    nll = nll_loss(logp, t, weight, ignore_index=ignore_index, reduction=reduction)
    if label_smoothing == 0:
        return nll
    rows = _rows(logp)
    keep = (t.reshape(-1) != ignore_index).astype(np.float32)
    if w is not None:
        rows = rows * Tensor(w)
    smooth = -rows.sum(dim=1) * Tensor(keep)
    if reduction == "mean":
        tc = get_backend(input.device).xp.where(keep > 0, t.reshape(-1), 0)
        denom = float((w[tc] * keep).sum()) if w is not None else float(keep.sum())
        # every target ignored: NaN with zero gradients, as torch (a division by 0 would
        # send inf * 0 = NaN back)
        smooth = smooth.sum() / denom if denom else smooth.sum() * 0.0 + math.nan
    elif reduction == "sum":
        smooth = smooth.sum()
    else:
        smooth = smooth.reshape(t.shape)
    return nll * (1.0 - label_smoothing) + smooth * (label_smoothing / C)


class BCEWithLogits(Function):
    """Elementwise l = (1 - y) x + (1 + (pw - 1) y) softplus(-x), the stable form of
    -[pw y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))]."""

    def forward(self, x, y, pos_weight):
        xp = self.xp
        sp = xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(-x, 0)  # softplus(-x) = -log sigmoid(x)
        lw = 1 + (pos_weight - 1) * y if pos_weight is not None else None
        self.save_for_backward(x, y, pos_weight, sp, lw)
        loss = (1 - y) * x + (sp if lw is None else lw * sp)
        return loss.astype(np.float32, copy=False)

    def backward(self, dy):
        from fastconv.ops.activation import _sigmoid
        from fastconv.ops.arith import unbroadcast

        x, y, pos_weight, sp, lw = self.saved
        xp = self.xp
        need_x, need_y, need_pw = self.needs_input_grad
        s = _sigmoid(xp, x)
        dx = dy * ((1 - y) + (s - 1) * (1 if lw is None else lw)) if need_x else None
        dyy = None
        if need_y:
            dyy = dy * (-x + (0 if pos_weight is None else (pos_weight - 1) * sp))
            dyy = unbroadcast(xp, dyy, y.shape)
        dpw = unbroadcast(xp, dy * y * sp, pos_weight.shape) if need_pw else None
        return dx, dyy, dpw

    def composite(self, x, y, pos_weight):
        from fastconv.ops.activation import logsigmoid

        sp = -logsigmoid(x)
        return (1 - y) * x + (sp if pos_weight is None else (1 + (pos_weight - 1) * y) * sp)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    """Sigmoid + binary cross-entropy in one numerically stable op.

        l = -weight * [pos_weight * y * log sigmoid(x) + (1 - y) * log(1 - sigmoid(x))]

    computed as weight * ((1 - y) x + (1 + (pos_weight - 1) y) * softplus(-x)).

    Args:
        input: float32 logits of any shape.
        target: float32 of the input's shape, values in [0, 1] (soft labels allowed).
        weight: optional float32 rescaling, broadcast to the input's shape.
        size_average, reduce: PyTorch's deprecated flags (mapped to ``reduction``, warned).
        reduction: 'none' | 'mean' | 'sum'.
        pos_weight: optional weight of the positive term, broadcast along the input's last
            dims (typically one value per class, shape (C,)).
    Gradients flow to input, target, weight and pos_weight.
    """
    op = "binary_cross_entropy_with_logits"
    reduction = legacy_reduction(op, size_average, reduce, reduction)
    float_tensor(input, "input", op)
    float_tensor(target, "target", op)
    if target.shape != input.shape:
        raise ArgumentError(f"{op}: target size {target.shape} must be the same as input size "
                            f"{input.shape}")
    for name, t in (("weight", weight), ("pos_weight", pos_weight)):
        if t is None:
            continue
        float_tensor(t, name, op)
        try:
            np.broadcast_shapes(t.shape, input.shape)
        except ValueError:
            raise ArgumentError(f"{op}: {name} of shape {t.shape} does not broadcast to the "
                                f"input's "
                                f"shape {input.shape}") from None
        if len(np.broadcast_shapes(t.shape, input.shape)) != input.ndim:
            raise ArgumentError(f"{op}: {name} of shape {t.shape} has more dims than the input "
                                f"{input.shape}")
    loss = BCEWithLogits.apply(input, target, pos_weight)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


class _AbsDiff(Function):
    """|a - b| elementwise; the gradient is sign(a - b) (0 where a == b, as PyTorch)."""

    def forward(self, a, b):
        d = a - b
        self.sign = self.xp.sign(d)
        self.shapes = (a.shape, b.shape)
        return self.xp.abs(d)

    def backward(self, dy):
        from fastconv.ops.arith import unbroadcast

        g = dy * self.sign
        need_a, need_b = self.needs_input_grad
        return (unbroadcast(self.xp, g, self.shapes[0]) if need_a else None,
                unbroadcast(self.xp, -g, self.shapes[1]) if need_b else None)

    def backward_graph(self, dy):  # the sign is constant almost everywhere
        from fastconv.ops.arith import sum_to

        g = dy * self.sign
        need_a, need_b = self.needs_input_grad
        return (sum_to(g, self.shapes[0]) if need_a else None,
                sum_to(-g, self.shapes[1]) if need_b else None)


def _pointwise_loss(op, input, target, size_average, reduce, reduction, weight, elementwise,
                    mean_over_weight=True):
    """``elementwise`` loss, weighted by ``weight``: 'mean' then divides by sum(weight) (torch's
    mse and l1), or by the element count with ``mean_over_weight=False`` (torch's huber)."""
    reduction = legacy_reduction(op, size_average, reduce, reduction)
    float_tensor(input, "input", op)
    from fastconv.tensor import Tensor

    if isinstance(target, Tensor) and target.dtype.kind in "biu":  # torch promotes these
        target = target.float()
    float_tensor(target, "target", op)
    if target.shape != input.shape:
        warnings.warn(f"Using a target size ({target.shape}) that is different to the input "
                      f"size ({input.shape}). This will likely lead to incorrect results due "
                      "to broadcasting. Please ensure they have the same size.", UserWarning,
                      stacklevel=3)
        try:
            np.broadcast_shapes(input.shape, target.shape)
        except ValueError:
            raise ArgumentError(f"{op}: target of shape {target.shape} does not broadcast with "
                                f"input of shape {input.shape}") from None
    loss = elementwise(input, target)
    if weight is None:
        return _reduce(loss, reduction)
    float_tensor(weight, "weight", op)
    if weight.shape != input.shape:
        raise ArgumentError(f"{op}: weight must have the input's shape {input.shape}, got "
                            f"{weight.shape}")
    loss = loss * weight
    if reduction == "mean" and mean_over_weight:
        return loss.sum() / weight.sum()
    return _reduce(loss, reduction)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean squared error: l = (input - target)^2 elementwise, then reduced.

    Args:
        input, target: float32 of the same shape (a broadcastable target warns, as PyTorch).
        size_average, reduce: PyTorch's deprecated flags (mapped to ``reduction``, warned).
        reduction: 'none' | 'mean' | 'sum'.
        weight: optional float32 of the input's shape; 'mean' is then
            sum(weight * l) / sum(weight).
    """
    def squared(a, b):
        d = a - b
        return d * d

    return _pointwise_loss("mse_loss", input, target, size_average, reduce, reduction, weight,
                           squared)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean absolute error: l = |input - target| elementwise, then reduced; the gradient
    is sign(input - target) (0 at equality, as PyTorch).

    Arguments as :func:`mse_loss`.
    """
    return _pointwise_loss("l1_loss", input, target, size_average, reduce, reduction, weight,
                           _AbsDiff.apply)


def one_hot(tensor, num_classes=-1):
    """One-hot encoding: an int64 Tensor of shape tensor.shape + (num_classes,) with 1 at
    each index and 0 elsewhere. ``num_classes=-1`` takes max(tensor) + 1 (as PyTorch).

    Args:
        tensor: integer class indices (non-negative).
        num_classes: the length of the new last dim, or -1.
    """
    from fastconv.tensor import Tensor

    op = "one_hot"
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{op}: tensor must be a fastconv.Tensor of class indices, got "
                        f"{type(tensor).__name__}")
    if tensor.dtype.kind not in "iu":
        raise ArgumentTypeError(f"{op}: tensor must hold integer class indices (int64), got "
                                f"{tensor.dtype}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise TypeError(f"{op}: num_classes must be an int, got {num_classes!r}")
    xp = get_backend(tensor.device).xp
    t = tensor.data
    if t.size and int(t.min()) < 0:
        raise ArgumentError(f"{op}: class values must be non-negative, got {int(t.min())}")
    if num_classes == -1:
        if t.size == 0:
            raise ArgumentError(f"{op}: can not infer the total number of classes from an empty "
                                "tensor; give num_classes")
        num_classes = int(t.max()) + 1
    elif num_classes < 1 and not (num_classes == 0 and t.size == 0):
        raise ArgumentError(f"{op}: num_classes must be positive or -1, got {num_classes}")
    elif t.size and int(t.max()) >= num_classes:
        raise ArgumentError(f"{op}: class values must be smaller than num_classes={num_classes}, "
                            f"got {int(t.max())}")
    # a huge num_classes: refuse before NumPy's arange (which wraps or fails deep inside)
    check_allocation(op, tuple(t.shape) + (num_classes,), 8)
    return Tensor((t[..., None] == xp.arange(num_classes)).astype(np.int64))


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


# ----------------------------------------------------------------------------- more losses
# Written with the differentiable Tensor ops: gradients flow to input and target.


def _piecewise_quadratic(op, input, target, size_average, reduce, reduction, knot, outer_scale,
                         weight=None):
    """0.5 d^2 / s inside |d| < knot, else a line that continues it (d = |input - target|)."""
    from fastconv.toplevel import where

    _number_at_least(op, "beta" if op == "smooth_l1_loss" else "delta", knot, 0.0,
                     strict=op == "huber_loss")

    def elementwise(a, b):
        d = _AbsDiff.apply(a, b)
        if knot == 0:
            return d
        inner = d * d * (0.5 / knot if op == "smooth_l1_loss" else 0.5)
        outer = (d - 0.5 * knot) * outer_scale
        return where(d < knot, inner, outer)

    return _pointwise_loss(op, input, target, size_average, reduce, reduction, weight,
                           elementwise, mean_over_weight=False)


def _number_at_least(op, name, value, low, strict=False):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{op}: {name} must be a number, got {value!r}")
    if value < low or (strict and value == low):
        raise ArgumentError(f"{op}: {name} must be {'>' if strict else '>='} {low}, got {value}")


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """Smooth L1 (Girshick, 2015, Fast R-CNN): 0.5 d^2 / beta where d = |input - target| <
    beta, else d - 0.5 beta; beta = 0 is the L1 loss."""
    return _piecewise_quadratic("smooth_l1_loss", input, target, size_average, reduce,
                                reduction, beta, 1.0)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """Huber loss (Huber, 1964): 0.5 d^2 where d = |input - target| < delta, else
    delta (d - 0.5 delta). ``weight`` (the input's shape) weighs each element; 'mean' then
    still divides by the number of elements, as torch's (where mse_loss and l1_loss divide
    by the weights' sum)."""
    return _piecewise_quadratic("huber_loss", input, target, None, None, reduction, delta,
                                delta, weight)


class BinaryCrossEntropy(Function):
    """Elementwise l = -(t log p + (1 - t) log(1 - p)), each log clamped at -100, with
    PyTorch's gradients: dl/dp = (p - t) / max(p (1 - p), 1e-12), finite at p = 0 and 1
    (where the clamped logs' own derivative is not), and dl/dt = log(1 - p) - log p, not
    clamped (infinite at p = 0 and 1, as PyTorch's)."""

    EPS = 1e-12

    def forward(self, p, t):
        xp = self.xp
        with np.errstate(divide="ignore"):
            log_p, log_q = xp.log(p), xp.log(1 - p)
        self.save_for_backward(p, t, log_p, log_q)
        return -(t * xp.maximum(log_p, -100) + (1 - t) * xp.maximum(log_q, -100))

    def backward(self, dy):
        p, t, log_p, log_q = self.saved
        dp = dy * (p - t) / self.xp.maximum(p * (1 - p), self.EPS) \
            if self.needs_input_grad[0] else None
        dt = dy * (log_q - log_p) if self.needs_input_grad[1] else None
        return dp, dt

    def backward_graph(self, dy):
        p, t = self.parents
        dp = dy * (p - t) / (p * (1 - p)).clamp(min=self.EPS) \
            if self.needs_input_grad[0] else None
        dt = dy * ((1 - p).log() - p.log()) if self.needs_input_grad[1] else None
        return dp, dt


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction="mean"):
    """-weight * (t log p + (1 - t) log(1 - p)) for probabilities p = ``input`` in [0, 1],
    each log clamped at -100 as PyTorch does (so p = 0 or 1 gives a finite loss).

    Args: input, target: float32 of the same shape; weight: broadcast to the input's
    shape; size_average / reduce / reduction as :func:`mse_loss`.
    """
    op = "binary_cross_entropy"
    reduction = legacy_reduction(op, size_average, reduce, reduction)
    float_tensor(input, "input", op)
    float_tensor(target, "target", op)
    if target.shape != input.shape:
        raise ArgumentError(f"Using a target size ({target.shape}) that is different to the input "
                            f"size ({input.shape}) is deprecated. Please ensure they have the same "
                            "size.")
    for name, t in (("input", input), ("target", target)):
        data = t.data
        if data.size and not bool(((data >= 0) & (data <= 1)).all()):
            raise RuntimeError(f"all elements of {name} should be between 0 and 1")
    loss = BinaryCrossEntropy.apply(input, target)
    if weight is not None:
        float_tensor(weight, "weight", op)
        if np.broadcast_shapes(weight.shape, input.shape) != input.shape:
            raise ArgumentError(f"{op}: weight of shape {weight.shape} does not broadcast to the "
                                f"input's shape {input.shape}")
        loss = loss * weight
    return _reduce(loss, reduction)


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """Kullback-Leibler divergence with ``input`` as log-probabilities:
    target * (log(target) - input) pointwise (0 where target = 0), or with
    ``log_target=True`` exp(target) * (target - input).

    reduction: 'batchmean' (the sum over the batch's first dim's size: the true KL per
    sample), 'sum', 'none', or 'mean' (the mean over every element, which PyTorch warns
    about and so does fastconv).
    """
    from fastconv.toplevel import where

    op = "kl_div"
    if reduction == "batchmean":
        legacy_reduction(op, size_average, reduce, "mean")
    else:
        reduction = legacy_reduction(op, size_average, reduce, reduction)
    float_tensor(input, "input", op)
    float_tensor(target, "target", op)
    if np.broadcast_shapes(input.shape, target.shape) != input.shape:
        raise ArgumentError(f"{op}: target of shape {target.shape} does not broadcast to the "
                            f"input's shape {input.shape}")
    if log_target:
        loss = target.exp() * (target - input)
    else:
        from fastconv.tensor import Tensor

        positive = Tensor(target.data > 0)
        safe = where(positive, target, 1.0)
        loss = where(positive, target * safe.log(), 0.0) - target * input
    if reduction == "batchmean":
        return loss.sum() / (input.shape[0] if input.ndim else 1)
    if reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the "
                      "support size.'batchmean' divides only by the batch size, and aligns with "
                      "the KL div math definition.'mean' will be changed to behave the same as "
                      "'batchmean' in the next major release.", UserWarning, stacklevel=2)
    return _reduce(loss, reduction)


# ----------------------------------------------------------------------------- margin, embedding
# and likelihood losses
# Written with the differentiable Tensor ops, as the losses above. Shapes and errors follow
# PyTorch: RuntimeError for shapes that do not fit, ValueError for bad argument values.


def _float_target(op, target, name="target"):
    """A float32 Tensor of ``target``: float32 as is, integer labels (e.g. +1/-1) converted."""
    from fastconv.tensor import Tensor

    if isinstance(target, Tensor) and target.dtype.kind in "iub":
        return target.float()
    return float_tensor(target, name, op)


def _broadcast_shape(op, *tensors):
    try:
        return np.broadcast_shapes(*(t.shape for t in tensors))
    except ValueError:
        shapes = ", ".join(str(t.shape) for t in tensors)
        raise RuntimeError(f"{op}: the shapes {shapes} do not broadcast") from None


def _mask(condition):
    from fastconv.tensor import Tensor

    return Tensor(condition)


def margin_ranking_loss(input1, input2, target, margin=0, size_average=None, reduce=None,
                        reduction="mean"):
    """Margin ranking loss: max(0, -y (x1 - x2) + margin) elementwise, for labels y = 1
    (x1 should rank higher) or -1 (x2 should); input1, input2 and target broadcast.

    Args:
        input1, input2: float32 scores, all three with the same number of dims.
        target: +1 / -1 labels (float32, or integer, converted).
        margin: the gap asked for (default 0).
        size_average, reduce: PyTorch's deprecated flags (mapped to ``reduction``, warned).
        reduction: 'none' | 'mean' | 'sum'.
    """
    op = "margin_ranking_loss"
    reduction = legacy_reduction(op, size_average, reduce, reduction)
    float_tensor(input1, "input1", op)
    float_tensor(input2, "input2", op)
    target = _float_target(op, target)
    _number_at_least(op, "margin", margin, -math.inf)
    if input1.ndim != input2.ndim or input1.ndim != target.ndim:
        raise RuntimeError(f"{op} : All input tensors should have same dimension but got sizes: "
                           f"input1: {input1.shape}, input2: {input2.shape}, target: "
                           f"{target.shape}")
    _broadcast_shape(op, input1, input2, target)
    loss = (-target * (input1 - input2) + float(margin)).clamp(min=0)
    return _reduce(loss, reduction)


def hinge_embedding_loss(input, target, margin=1.0, size_average=None, reduce=None,
                         reduction="mean"):
    """Hinge embedding loss (for distances x between pairs labelled y = 1, similar, or
    y = -1, dissimilar): x where y = 1, max(0, margin - x) where y = -1. As PyTorch, a label
    that is neither adds both terms; input and target broadcast.

    Args:
        input: float32 (typically pairwise distances).
        target: +1 / -1 labels (float32, or integer, converted).
        margin: default 1.0.
        size_average, reduce, reduction: as :func:`margin_ranking_loss`.
    """
    from fastconv.toplevel import where

    op = "hinge_embedding_loss"
    reduction = legacy_reduction(op, size_average, reduce, reduction)
    float_tensor(input, "input", op)
    target = _float_target(op, target)
    _number_at_least(op, "margin", margin, -math.inf)
    _broadcast_shape(op, input, target)
    t = target.data
    loss = (where(_mask(t != 1), (float(margin) - input).clamp(min=0), 0.0) +
            where(_mask(t != -1), input, 0.0))
    return _reduce(loss, reduction)


def cosine_embedding_loss(input1, input2, target, margin=0, size_average=None, reduce=None,
                          reduction="mean"):
    """Cosine embedding loss: 1 - cos(x1, x2) where y = 1, max(0, cos(x1, x2) - margin)
    where y = -1 (0 for any other label), with
    cos = sum(x1 x2) / sqrt((sum(x1^2) + 1e-12) (sum(x2^2) + 1e-12)) over the last dim.

    Args:
        input1, input2: float32 (N, D) with a (N,) target, or (D,) with a 0-D target.
        target: +1 / -1 labels (float32, or integer, converted).
        margin: in [-1, 1], default 0.
        size_average, reduce, reduction: as :func:`margin_ranking_loss`.
    """
    from fastconv.toplevel import where

    op = "cosine_embedding_loss"
    reduction = legacy_reduction(op, size_average, reduce, reduction)
    float_tensor(input1, "input1", op)
    float_tensor(input2, "input2", op)
    target = _float_target(op, target)
    _number_at_least(op, "margin", margin, -math.inf)
    if target.ndim not in (0, 1):
        raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
    want = target.ndim + 1
    if input1.ndim != want or input2.ndim != want:
        raise RuntimeError(f"{target.ndim}D target tensor expects {want}D input tensors, but "
                           f"found inputs with sizes {list(input1.shape)} and "
                           f"{list(input2.shape)}.")
    _broadcast_shape(op, input1, input2)
    dim = target.ndim
    prod = (input1 * input2).sum(dim)
    mag1 = (input1 * input1).sum(dim) + 1e-12
    mag2 = (input2 * input2).sum(dim) + 1e-12
    cos = prod / (mag1 * mag2).sqrt()
    _broadcast_shape(op, cos, target)
    t = target.data
    loss = (where(_mask(t == 1), 1 - cos, 0.0) +
            where(_mask(t == -1), (cos - float(margin)).clamp(min=0), 0.0))
    return _reduce(loss, reduction)


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-6, swap=False,
                        size_average=None, reduce=None, reduction="mean"):
    """Triplet margin loss (Schroff et al., 2015, FaceNet; Balntas et al., 2016, for
    ``swap``): max(0, margin + d(a, p) - d(a, n)) with d(x, y) = ||x - y + eps||_p over the
    last dim (as :func:`pairwise_distance`).

    Args:
        anchor, positive, negative: float32 (N, D) or (D,), all with the same number of dims
            (they broadcast).
        margin: > 0, default 1.0.
        p: the norm's degree (default 2).
        eps: added to the differences (default 1e-6).
        swap: use min(d(a, n), d(p, n)) as the negative distance.
        size_average, reduce, reduction: as :func:`margin_ranking_loss`.
    """
    from fastconv.ops.distance import pairwise_distance

    op = "triplet_margin_loss"
    reduction = legacy_reduction(op, size_average, reduce, reduction)
    for name, t in (("anchor", anchor), ("positive", positive), ("negative", negative)):
        float_tensor(t, name, op)
    _number_at_least(op, "margin", margin, -math.inf)
    _number_at_least(op, "p", p, 0.0)
    if margin <= 0:
        raise ArgumentError(f"margin must be greater than 0, got {margin}")
    if not anchor.ndim == positive.ndim == negative.ndim:
        raise RuntimeError(f"The anchor, positive, and negative tensors are expected to have the "
                           f"same number of dimensions, but got: anchor {anchor.ndim}D, "
                           f"positive {positive.ndim}D, and negative {negative.ndim}D inputs")
    _broadcast_shape(op, anchor, positive, negative)
    d_pos = pairwise_distance(anchor, positive, p, eps)
    d_neg = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_neg = d_neg.minimum(pairwise_distance(positive, negative, p, eps))
    loss = (float(margin) + d_pos - d_neg).clamp(min=0)
    return _reduce(loss, reduction)


def triplet_margin_with_distance_loss(anchor, positive, negative, *, distance_function=None,
                                      margin=1.0, swap=False, reduction="mean"):
    """:func:`triplet_margin_loss` with any distance: max(0, margin + d(a, p) - d(a, n)),
    ``distance_function(x, y)`` returning one distance per row (default
    :func:`pairwise_distance`); ``swap`` as there."""
    from fastconv.ops.distance import pairwise_distance

    op = "triplet_margin_with_distance_loss"
    reduction = legacy_reduction(op, None, None, reduction)
    for name, t in (("anchor", anchor), ("positive", positive), ("negative", negative)):
        float_tensor(t, name, op)
    if margin <= 0:
        raise ArgumentError(f"{op}: margin must be greater than 0, got {margin}")
    if not anchor.ndim == positive.ndim == negative.ndim:
        raise RuntimeError(f"{op}: the anchor, positive and negative tensors must have the same "
                           f"number of dimensions, got {anchor.ndim}D, {positive.ndim}D and "
                           f"{negative.ndim}D")
    d = pairwise_distance if distance_function is None else distance_function
    d_pos, d_neg = d(anchor, positive), d(anchor, negative)
    if swap:
        d_neg = d_neg.minimum(d(positive, negative))
    return _reduce((float(margin) + d_pos - d_neg).clamp(min=0), reduction)


def _class_index_target(op, input, target):
    """The integer target of the multi-class margin losses, as a host/device int64 array."""
    from fastconv.tensor import Tensor

    data = target.data if isinstance(target, Tensor) else target
    xp = get_backend(input.device).xp
    data = xp.asarray(data)
    if data.dtype.kind not in "iu":
        raise RuntimeError(f"expected scalar type Long but found {_torch_dtype_name(data.dtype)}")
    return data.astype(np.int64)


def _torch_dtype_name(dtype):
    return {"f": "Float" if dtype.itemsize == 4 else "Double", "b": "Bool"}.get(
        dtype.kind, str(dtype))


def _matrix_input(input):
    if input.ndim not in (1, 2) or input.numel() == 0 and input.ndim != 2 or (
            input.ndim == 2 and input.shape[1] == 0):
        raise RuntimeError(f"Expected non-empty vector or matrix with optional 0-dim batch "
                           f"size, but got: {list(input.shape)}")


def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, size_average=None,
                      reduce=None, reduction="mean"):
    """Multi-class hinge loss (Weston & Watkins, 1999; Crammer & Singer, 2001, margins): for
    each sample with class y,

        loss = sum_{i != y} w[y] * max(0, margin - x[y] + x[i])^p / C

    Args:
        input: float32 (N, C) scores, or (C,) for one sample.
        target: integer class indices in [0, C), shape (N,) (or () / (1,) for (C,) input).
        p: 1 or 2.
        margin: default 1.0.
        weight: optional float32 (C,) class weights (w[y] above).
        size_average, reduce, reduction: as :func:`margin_ranking_loss` ('mean' over N).
    """
    op = "multi_margin_loss"
    reduction = legacy_reduction(op, size_average, reduce, reduction)
    if p != 1 and p != 2:
        raise ArgumentError("only p == 1 and p == 2 supported")
    if weight is not None and weight.ndim != 1:
        raise ArgumentError("weight must be one-dimensional")
    float_tensor(input, "input", op)
    _number_at_least(op, "margin", margin, -math.inf)
    _matrix_input(input)
    t = _class_index_target(op, input, target)
    N = input.shape[0] if input.ndim == 2 else 1
    C = input.shape[-1]
    if t.ndim > 1 or t.size != N:
        raise RuntimeError(f"{op}: target tensor should be 1-D with size equal to the number of "
                           f"input samples (batch size). Expected target size [{N}], but got "
                           f"{list(t.shape)}. Input has shape {list(input.shape)}.")
    if weight is not None:
        float_tensor(weight, "weight", op)
        if weight.shape != (C,):
            raise RuntimeError(f"inconsistent weight size, expected {C} but got "
                               f"{list(weight.shape)}")
    if t.size and not get_backend(input.device).is_capturing() and bool(
            ((t < 0) | (t >= C)).any()):
        raise RuntimeError("target out of range")
    xp = get_backend(input.device).xp
    x = input.reshape(N, C)
    onehot = (t.reshape(N, 1) == xp.arange(C)).astype(np.float32)
    x_y = (x * _mask(onehot)).sum(1, keepdim=True)
    hinge = (float(margin) - x_y + x).clamp(min=0)
    if p == 2:
        hinge = hinge * hinge
    hinge = hinge * _mask(1 - onehot)
    if weight is not None:
        hinge = hinge * (weight * _mask(onehot)).sum(1, keepdim=True)
    loss = (hinge.sum(1) / C).reshape(t.shape)
    return _reduce(loss, reduction)


def multilabel_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """Multi-label hinge loss: for each sample, with the target classes j (the leading
    entries of its target row, up to the first -1) and the other classes i,

        loss = sum_{j, i} max(0, 1 - (x[j] - x[i])) / C

    Args:
        input: float32 (N, C), or (C,) for one sample.
        target: integer, the input's shape: class indices, padded with -1 after the last.
        size_average, reduce, reduction: as :func:`margin_ranking_loss` ('mean' over N).
    """
    from fastconv.tensor import Tensor

    op = "multilabel_margin_loss"
    reduction = legacy_reduction(op, size_average, reduce, reduction)
    float_tensor(input, "input", op)
    _matrix_input(input)
    t = _class_index_target(op, input, target)
    if tuple(t.shape) != input.shape:
        raise RuntimeError(f"inconsistent target size: {list(t.shape)} for input of size: "
                           f"{list(input.shape)}")
    N = input.shape[0] if input.ndim == 2 else 1
    C = input.shape[-1]
    rows = np.asarray(t.get() if hasattr(t, "get") else t).reshape(N, C)
    listed = np.cumprod(rows >= 0, axis=1).astype(bool)  # the entries before the first -1
    if bool((rows[listed] >= C).any()):
        raise RuntimeError("argument #2 'target' is out of range")
    K = int(listed.sum(1).max()) if N else 0
    is_target = np.zeros((N, C), bool)
    n_idx, k_idx = np.nonzero(listed)
    is_target[n_idx, rows[n_idx, k_idx]] = True
    # (N, K, C) hinge terms: the K listed classes j (a repeat counts again) against every
    # class i that is not a target.
    xp = get_backend(input.device).xp
    pairs = xp.asarray(listed[:, :K, None] & ~is_target[:, None, :], dtype=np.float32)
    x = input.reshape(N, C)
    x_j = x.gather(1, Tensor(xp.asarray(np.where(listed[:, :K], rows[:, :K], 0))))
    hinge = (1 - x_j.unsqueeze(2) + x.unsqueeze(1)).clamp(min=0) * Tensor(pairs)
    loss = (hinge.sum((1, 2)) / C).reshape(input.shape[:-1])
    return _reduce(loss, reduction)


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction="mean"):
    """Multi-label one-versus-all logistic loss:

        loss = -sum_c w[c] (y[c] log sigmoid(x[c]) + (1 - y[c]) log sigmoid(-x[c])) / C

    per sample, over the last dim (C classes).

    Args:
        input: float32 (N, C) or (C,) logits.
        target: float32 0/1 (or soft) labels, broadcast to the input.
        weight: optional float32 class weights, broadcast to the input.
        size_average, reduce, reduction: as :func:`margin_ranking_loss` ('mean' over N).
    """
    from fastconv.ops.activation import logsigmoid

    op = "multilabel_soft_margin_loss"
    reduction = legacy_reduction(op, size_average, reduce, reduction)
    float_tensor(input, "input", op)
    target = _float_target(op, target)
    if input.ndim == 0:
        raise RuntimeError(f"{op}: input must have a class dim, got a 0-D tensor")
    _broadcast_shape(op, input, target)
    loss = -(target * logsigmoid(input) + (1 - target) * logsigmoid(-input))
    if weight is not None:
        float_tensor(weight, "weight", op)
        _broadcast_shape(op, loss, weight)
        loss = loss * weight
    loss = loss.sum(loss.ndim - 1) / input.shape[-1]
    return _reduce(loss, reduction)


def soft_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """Two-class logistic loss: log(1 + exp(-y x)) elementwise, for labels y = +1 / -1.

    Args:
        input: float32 of any shape.
        target: +1 / -1 labels (float32, or integer, converted) that broadcast to the input's
            shape.
        size_average, reduce, reduction: as :func:`margin_ranking_loss`.
    """
    from fastconv.ops.activation import logsigmoid

    op = "soft_margin_loss"
    reduction = legacy_reduction(op, size_average, reduce, reduction)
    float_tensor(input, "input", op)
    target = _float_target(op, target)
    if _broadcast_shape(op, input, target) != input.shape:
        raise RuntimeError(f"output with shape {list(input.shape)} doesn't match the broadcast "
                           f"shape {list(_broadcast_shape(op, input, target))}")
    return _reduce(-logsigmoid(input * target), reduction)


def poisson_nll_loss(input, target, log_input=True, full=False, size_average=None, eps=1e-8,
                     reduce=None, reduction="mean"):
    """Negative log-likelihood of a Poisson target (up to the constant log(target!)):

        exp(x) - y x          with log_input=True (x is the log of the rate)
        x - y log(x + eps)    with log_input=False (x is the rate)

    ``full=True`` adds Stirling's approximation of log(y!), y log y - y + 0.5 log(2 pi y),
    where y > 1 (0 elsewhere).

    Args:
        input: float32 of any shape; target: float32 counts, broadcast with the input.
        log_input, full, eps: as above (eps keeps log away from 0; default 1e-8).
        size_average, reduce, reduction: as :func:`margin_ranking_loss`.
    """
    from fastconv.toplevel import where

    op = "poisson_nll_loss"
    reduction = legacy_reduction(op, size_average, reduce, reduction)
    float_tensor(input, "input", op)
    target = _float_target(op, target)
    _number_at_least(op, "eps", eps, -math.inf)
    _broadcast_shape(op, input, target)
    if log_input:
        loss = input.exp() - target * input
    else:
        loss = input - target * (input + float(eps)).log()
    if full:
        above = _mask(target.data > 1)
        y = where(above, target, 2.0)  # keeps the unused branch finite
        stirling = y * y.log() - y + 0.5 * (2 * math.pi * y).log()
        loss = loss + where(above, stirling, 0.0)
    return _reduce(loss, reduction)


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean"):
    """Negative log-likelihood of a Gaussian target with predicted mean and variance
    (Nix & Weigend, 1994):

        0.5 (log(max(var, eps)) + (input - target)^2 / max(var, eps))   (+ 0.5 log(2 pi) if full)

    The clamp at ``eps`` is not differentiated (the gradient passes to ``var`` as if
    unclamped, as PyTorch).

    Args:
        input: float32 predicted means; target: float32, broadcast with the input.
        var: float32 predicted variances (>= 0): the input's shape, the input's shape without
            its last dim, or broadcastable to it with exactly one dim of size 1; or a number.
        full: add the constant term.
        eps: the variance's lower bound (default 1e-6).
        reduction: 'none' | 'mean' | 'sum'.
    """
    from fastconv.tensor import Tensor

    op = "gaussian_nll_loss"
    float_tensor(input, "input", op)
    target = _float_target(op, target)
    _number_at_least(op, "eps", eps, -math.inf)
    if not isinstance(var, Tensor):
        _number_at_least(op, "var", var, -math.inf)
        if var < 0:
            raise ArgumentError("var has negative entry/entries")
        var = Tensor(get_backend(input.device).xp.full(input.shape, var, dtype=np.float32))
    else:
        float_tensor(var, "var", op)
        if var.numel() and bool((var.data < 0).any()):
            raise ArgumentError("var has negative entry/entries")
    if var.shape != input.shape:
        if input.shape[:-1] == var.shape:
            var = var.unsqueeze(-1)
        elif not (input.ndim == var.ndim and
                  sum(v for i, v in zip(input.shape, var.shape) if i != v) == 1):
            raise ArgumentError("var is of incorrect size")
    reduction = legacy_reduction(op, None, None, reduction)
    _broadcast_shape(op, input, target, var)
    # max(var, eps) forward; the gradient goes straight to var (PyTorch clamps under no_grad).
    var = var + Tensor(var.data.clip(min=eps) - var.data)
    loss = 0.5 * (var.log() + (input - target) ** 2 / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)
