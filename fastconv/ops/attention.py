"""Scaled dot-product attention (``F.scaled_dot_product_attention``), composed of the
differentiable Tensor ops (matmul, masked_fill, softmax, dropout), so autograd needs nothing
new. The attention layers built on it are in ``fastconv.nn.attention``."""

from __future__ import annotations

import math

import numpy as np

from fastconv.ops.activation import dropout, softmax
from fastconv.ops.validate import ArgumentError
from fastconv.tensor import Tensor

_NEG_INF = float("-inf")


def _as_tensor(x):
    return x if isinstance(x, Tensor) else Tensor(np.asarray(x))


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, enable_gqa=False):
    """softmax(query @ key^T * scale + bias) @ value (Vaswani et al., 2017, "Attention Is
    All You Need"), as torch.nn.functional.scaled_dot_product_attention.

    Args:
        query: (..., L, E); key: (..., S, E); value: (..., S, Ev). Leading dims broadcast.
        attn_mask: broadcastable to (..., L, S). A bool mask keeps the positions where it is
            True (the others get -inf); a float mask is added to the scores.
        dropout_p: dropout probability on the attention weights (always applied when > 0, as
            in torch: pass 0.0 in evaluation). Masks come from fastconv's generator.
            A query whose keys are all masked out gets zero weights (a zero output row),
            as torch.
        is_causal: mask out key j > query i (the upper triangle of the top-left aligned
            (L, S) matrix); cannot be combined with ``attn_mask``.
        scale: the factor on the scores; 1/sqrt(E) when None.
        enable_gqa: grouped-query attention: query's head dim (-3) may be a multiple of
            key's and value's, whose heads are then repeated to match.
    Returns (..., L, Ev).
    """
    if is_causal and attn_mask is not None:
        raise RuntimeError("_scaled_dot_product_attention: Explicit attn_mask should not be "
                           "set when is_causal=True")
    if not 0.0 <= dropout_p <= 1.0:
        raise ArgumentError(f"scaled_dot_product_attention: dropout_p must be in [0, 1], got "
                            f"{dropout_p}")
    if query.ndim < 2 or key.ndim < 2 or value.ndim < 2:
        raise RuntimeError("scaled_dot_product_attention: query, key and value must have at "
                           "least 2 dimensions")
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise RuntimeError(f"scaled_dot_product_attention: query {list(query.shape)}, key "
                           f"{list(key.shape)} and value {list(value.shape)} do not match: "
                           f"query and key need the same last dim, key and value the same "
                           f"sequence length (dim -2)")
    if enable_gqa and query.ndim >= 3 and key.ndim >= 3:
        hq, hk, hv = query.shape[-3], key.shape[-3], value.shape[-3]
        if hq % hk or hq % hv:
            raise RuntimeError(f"scaled_dot_product_attention: with enable_gqa, query's "
                               f"{hq} heads must be a multiple of key's {hk} and value's {hv}")
        key = key.repeat_interleave(hq // hk, dim=-3) if hq != hk else key
        value = value.repeat_interleave(hq // hv, dim=-3) if hq != hv else value
    L, S = query.shape[-2], key.shape[-2]
    if scale is None:  # torch's 1/sqrt(0) for an empty E is inf (0 * inf: NaN scores)
        scale = 1.0 / math.sqrt(query.shape[-1]) if query.shape[-1] else math.inf
    scores = (query @ key.transpose(-2, -1)) * scale
    if is_causal:
        allowed = np.tril(np.ones((L, S), dtype=bool))
        scores = scores.masked_fill(Tensor(~allowed), _NEG_INF)
    if attn_mask is not None:
        attn_mask = _as_tensor(attn_mask)
        if attn_mask.dtype == np.bool_:
            scores = scores.masked_fill(attn_mask.logical_not(), _NEG_INF)
        else:
            scores = scores + attn_mask
    dead = None
    if attn_mask is not None:
        # a query whose every key is masked out attends to nothing: zero weights, not the
        # NaN of softmax over -inf (torch's "safe softmax")
        dead = (scores.detach() == _NEG_INF).all(dim=-1, keepdim=True)
        if bool(dead.any()):
            scores = scores.masked_fill(dead, 0.0)
        else:
            dead = None
    weights = softmax(scores, dim=-1)
    if dead is not None:
        weights = weights.masked_fill(dead, 0.0)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p, training=True)
    return weights @ value
