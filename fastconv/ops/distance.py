"""Norms and similarities between vectors along a dim: ``normalize``,
``cosine_similarity``, ``pairwise_distance``. Written with the differentiable Tensor ops."""

from __future__ import annotations

import numpy as np

from fastconv.ops.validate import float_tensor


def _broadcast(op, x1, x2):
    try:
        return np.broadcast_shapes(x1.shape, x2.shape)
    except ValueError:
        raise RuntimeError(f"{op}: x1 of shape {x1.shape} and x2 of shape {x2.shape} do not "
                           "broadcast") from None


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """input / max(||input||_p, eps) along ``dim`` (unit vectors, e.g. embeddings)."""
    float_tensor(input, "input", "normalize")
    if out is not None:
        raise NotImplementedError("normalize: out= is not supported by fastconv; use the "
                                  "returned tensor")
    return input / input.norm(p, dim, keepdim=True).clamp(min=eps)


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """sum(x1 * x2) / (max(||x1||, eps) * max(||x2||, eps)) along ``dim`` (x1 and x2
    broadcast); each norm is bounded below by ``eps`` as PyTorch does."""
    op = "cosine_similarity"
    float_tensor(x1, "x1", op)
    float_tensor(x2, "x2", op)
    shape = _broadcast(op, x1, x2)
    if not -len(shape) <= dim < max(len(shape), 1):
        raise IndexError(f"Dimension out of range (expected to be in range of [{-len(shape)}, "
                         f"{len(shape) - 1}], but got {dim})")
    # the norms of the broadcast operands: an input of size 1 along ``dim`` counts once per
    # entry of the other
    x1 = x1 if tuple(x1.shape) == tuple(shape) else x1.expand(*shape)
    x2 = x2 if tuple(x2.shape) == tuple(shape) else x2.expand(*shape)
    n1, n2 = x1.norm(2, dim, keepdim=True), x2.norm(2, dim, keepdim=True)
    # torch clamps the norms outside autograd: below eps the division takes eps, but the
    # gradient still flows through the norm as if unclamped
    n1 = n1 + (n1.clamp(min=eps) - n1).detach()
    n2 = n2 + (n2.clamp(min=eps) - n2).detach()
    return ((x1 / n1) * (x2 / n2)).sum(dim)


def pdist(input, p=2.0):
    """The p-norm distances between the rows of an (N, M) input, each pair i < j once, in
    row-major order: a 1-D tensor of N (N - 1) / 2 entries (the upper triangle of cdist)."""
    from fastconv.backend import get_backend

    op = "pdist"
    float_tensor(input, "input", op)
    if input.ndim != 2:
        raise RuntimeError(f"pdist only supports 2D tensors, got: {input.ndim}D")
    if isinstance(p, bool) or not isinstance(p, (int, float)) or p < 0:
        raise RuntimeError(f"pdist only supports non-negative p values, got {p!r}")
    n = input.shape[0]
    xp = get_backend(input.device).xp
    i, j = xp.triu_indices(n, 1)
    # differences of the row pairs, then the norm: no cdist matrix whose diagonal (zero
    # distances) would put NaN into the gradient
    return (input[i] - input[j]).norm(p, -1)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """||x1 - x2 + eps||_p over the last dim."""
    op = "pairwise_distance"
    float_tensor(x1, "x1", op)
    float_tensor(x2, "x2", op)
    _broadcast(op, x1, x2)
    return (x1 - x2 + eps).norm(p, -1, keepdim)
