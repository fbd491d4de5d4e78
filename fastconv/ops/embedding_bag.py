"""``embedding_bag``: sums, means or maxima of bags of embedding rows without building the
(bag, length, dim) tensor in between (``torch.nn.functional.embedding_bag``).

Composed of differentiable ops: the rows are looked up with ``embedding`` and reduced into
their bags with ``index_add`` (sum, mean) or ``scatter_reduce`` (max), so gradients and both
backends come from those. Entries equal to ``padding_idx`` take no part (a mean divides by
the bag's other entries); an empty bag gives zeros.
"""

from __future__ import annotations

import numpy as np

from fastconv.ops.validate import ArgumentError

MODES = ("sum", "mean", "max")


def _host(a):
    return a if isinstance(a, np.ndarray) else a.get()


def embedding_bag(input, weight, offsets=None, max_norm=None, norm_type=2,
                  scale_grad_by_freq=False, mode="mean", sparse=False, per_sample_weights=None,
                  include_last_offset=False, padding_idx=None):
    """Each bag's rows of ``weight`` reduced by ``mode``. Bags: the rows of a 2-D ``input``
    (B, L), or, for a 1-D ``input``, the runs starting at ``offsets`` (B,) (with
    ``include_last_offset``, offsets has B + 1 entries, the last the end).
    ``per_sample_weights`` (only with mode "sum") scales each looked-up row first.
    Returns (B, embedding_dim)."""
    from fastconv.ops.index import embedding
    from fastconv.tensor import Tensor

    op = "embedding_bag"
    if mode not in MODES:
        raise ArgumentError(f"{op}: mode has to be one of sum, mean or max, got {mode!r}")
    if not isinstance(input, Tensor) or input.dtype.kind not in "iu":
        raise ArgumentError(f"{op}: input has to be an integer (int64) tensor, got "
                            f"{getattr(input, 'dtype', type(input).__name__)}")
    if per_sample_weights is not None:
        if mode != "sum":
            raise NotImplementedError(f"{op}: per_sample_weights is only supported for "
                                      f"mode='sum' (got mode='{mode}')")
        if tuple(per_sample_weights.shape) != tuple(input.shape):
            raise ArgumentError(f"{op}: per_sample_weights {tuple(per_sample_weights.shape)} must "
                                f"have the shape of the input {tuple(input.shape)}")
    if input.ndim == 2:
        if offsets is not None:
            raise ArgumentError(f"{op}: if input is 2D, then offsets has to be None, as input is "
                                "treated is a mini-batch of fixed length sequences.")
        bags, length = input.shape
        starts = np.arange(bags, dtype=np.int64) * length
        flat = input.reshape(-1)
        weights = None if per_sample_weights is None else per_sample_weights.reshape(-1)
    elif input.ndim == 1:
        if offsets is None:
            raise ArgumentError(f"{op}: offsets has to be a 1D Tensor but got None")
        off = _host(offsets.data if isinstance(offsets, Tensor) else np.asarray(offsets))
        off = off.astype(np.int64).reshape(-1)
        if off.ndim != 1 or off.size == 0:
            raise ArgumentError(f"{op}: offsets has to be a non-empty 1D Tensor")
        if off[0] != 0:
            raise ArgumentError(f"{op}: offsets[0] has to be 0, i.e., the first sequence in the "
                                f"mini-batch has to start from position 0. However, got {off[0]}")
        if np.any(np.diff(off) < 0) or off[-1] > input.shape[0]:
            raise ArgumentError(f"{op}: offsets must be non-decreasing and at most the input "
                                f"length {input.shape[0]}, got {off.tolist()}")
        starts = off[:-1] if include_last_offset else off
        flat, weights = input, per_sample_weights
    else:
        raise ArgumentError(f"{op}: input has to be 1D or 2D Tensor, but got Tensor of dimension "
                            f"{input.ndim}")
    n = flat.shape[0]
    bag = np.searchsorted(starts, np.arange(n), side="right") - 1  # the bag of each entry
    if include_last_offset and input.ndim == 1:
        bag = np.where(np.arange(n) < off[-1], bag, -1)  # entries past the last offset
    keep = bag >= 0
    idx = _host(flat.data).astype(np.int64)
    if padding_idx is not None:
        rows = weight.shape[0]
        if not -rows <= padding_idx < rows:
            raise AssertionError("padding_idx must be within num_embeddings")
        keep &= idx != padding_idx % rows
    B = len(starts)
    device = weight.device
    kept = np.nonzero(keep)[0]
    looked_up = embedding(Tensor(idx[kept]).to(device), weight, None, max_norm, norm_type,
                          scale_grad_by_freq, sparse)
    if weights is not None:
        looked_up = looked_up * weights.reshape(-1)[Tensor(kept).to(device)].unsqueeze(1)
    target = Tensor(bag[kept].astype(np.int64)).to(device)
    base = weight.new_zeros(B, weight.shape[1])
    if mode == "max":
        if kept.size == 0:
            return base
        where = target.unsqueeze(1).expand(-1, weight.shape[1])
        return base.scatter_reduce(0, where, looked_up, "amax", include_self=False)
    out = base.index_add(0, target, looked_up)
    if mode == "mean":
        counts = np.bincount(bag[kept], minlength=B).astype(np.float32)
        out = out / Tensor(np.maximum(counts, 1.0)[:, None]).to(device)
    return out
