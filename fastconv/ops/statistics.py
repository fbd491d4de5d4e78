"""Descriptive statistics with PyTorch's names: ``nansum``, ``nanmean``, ``cov``,
``corrcoef``, ``histc``, ``histogram``. The first four are differentiable compositions of
Tensor ops; the histograms count (no gradient, as in PyTorch)."""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from fastconv.ops.validate import ArgumentError

HistogramResult = namedtuple("histogram", ["hist", "bin_edges"])


def _tensor(x, op, name="input"):
    from fastconv.tensor import Tensor

    if not isinstance(x, Tensor):
        raise TypeError(f"{op}(): argument '{name}' must be Tensor, not {type(x).__name__}")
    return x


def nansum(input, dim=None, keepdim: bool = False, *, dtype=None):
    """The sum over ``dim`` treating NaN as zero (NaN entries get a zero gradient)."""
    _tensor(input, "nansum")
    x = input if dtype is None else input.to(dtype)
    if x.dtype.kind == "f":
        x = x.masked_fill(x.isnan(), 0.0)
    return x.sum(dim, keepdim)


def nanmean(input, dim=None, keepdim: bool = False, *, dtype=None):
    """The mean over ``dim`` of the entries that are not NaN (NaN where all are)."""
    _tensor(input, "nanmean")
    x = input if dtype is None else input.to(dtype)
    if x.dtype.kind != "f":
        raise RuntimeError(f"nanmean(): expected input to have floating point or complex "
                           f"dtype but got {x.dtype}")
    keep = x.isnan().logical_not()
    return nansum(x, dim, keepdim) / keep.sum(dim, keepdim)


def cov(input, *, correction: int = 1, fweights=None, aweights=None):
    """The covariance matrix of the variables in the rows of ``input`` (observations in the
    columns; a 1-D input is one variable), with integer frequency weights ``fweights`` and
    observation weights ``aweights`` as ``torch.cov`` / ``numpy.cov``."""
    _tensor(input, "cov")
    if input.ndim > 2:
        raise ArgumentError(f"cov(): expected input to have two or fewer dimensions but got an "
                            f"input with {input.ndim} dimensions")
    x = input.reshape(1, -1) if input.ndim < 2 else input
    if x.dtype.kind != "f":
        x = x.float()
    n_obs = x.shape[1]
    w = None
    for name, weights in (("fweights", fweights), ("aweights", aweights)):
        if weights is None:
            continue
        _tensor(weights, "cov", name)
        if weights.ndim > 1 or weights.numel() != n_obs:
            raise ArgumentError(f"cov(): expected {name} to have one dimension and the same "
                                f"number of elements as the observations ({n_obs}), got shape "
                                f"{tuple(weights.shape)}")
        if name == "fweights" and weights.dtype.kind == "f":
            raise ArgumentError("cov(): expected fweights to have integral dtype")
        if weights.numel() and float(weights.min()) < 0:
            raise ArgumentError(f"cov(): {name} cannot be negative")
        weights = weights.float()
        w = weights if w is None else w * weights
    if w is None:
        w_sum = float(n_obs)
        avg = x.mean(1, keepdim=True)
    else:
        w_sum = w.sum()
        avg = (x * w).sum(1, keepdim=True) / w_sum
    if w is None:
        norm = w_sum - correction
    elif correction == 0:
        norm = w_sum
    elif aweights is None:
        norm = w_sum - correction
    else:
        norm = w_sum - correction * (w * aweights.float()).sum() / w_sum
    xm = x - avg
    xw = xm if w is None else xm * w
    c = (xw @ xm.t()) / (norm.clamp(min=0) if hasattr(norm, "clamp") else max(norm, 0))
    return c.reshape(()) if input.ndim < 2 else c


def corrcoef(input):
    """Pearson correlation coefficients of the variables in the rows, clipped to [-1, 1]."""
    c = cov(input)
    if c.ndim == 0:
        return c / c
    d = c.diagonal().sqrt()
    return (c / d.unsqueeze(1) / d.unsqueeze(0)).clamp(-1.0, 1.0)


def _host(t):
    a = t.data
    return a if isinstance(a, np.ndarray) else a.get()


def histc(input, bins: int = 100, min: float = 0, max: float = 0):
    """Counts in ``bins`` equal-width bins over [min, max] (the data's own range when
    min == max); values outside are ignored, the last bin includes max."""
    from fastconv.tensor import Tensor

    _tensor(input, "histc")
    if input.dtype.kind != "f":
        raise RuntimeError(f"torch.histc: input tensor and weight tensor should have the same "
                           f"dtype, and only floating point is supported, got {input.dtype}")
    if bins <= 0:
        raise RuntimeError(f"torch.histc(): bins must be > 0, but got {bins} for dimension 0")
    a = _host(input).reshape(-1)
    lo, hi = float(min), float(max)
    if lo > hi:
        raise RuntimeError("torch.histc(): max must be larger than min")
    if lo == hi and a.size:
        lo, hi = float(a.min()), float(a.max())
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise RuntimeError(f"torch.histc(): range of [{lo}, {hi}] is not finite")
    counts, _ = np.histogram(a[(a >= lo) & (a <= hi)], bins=bins, range=(lo, hi))
    out = Tensor(counts.astype(np.float32))
    return out if input.device == "cpu" else out.to(input.device)


def histogram(input, bins=100, *, range=None, weight=None, density: bool = False):
    """(hist, bin_edges) as ``torch.histogram``: ``bins`` equal bins over ``range`` (the
    data's range by default) or the given edges, weighted and normalised to a density on
    request."""
    from fastconv.tensor import Tensor

    _tensor(input, "histogram")
    if input.dtype.kind != "f":
        raise RuntimeError(f"torch.histogram: input tensor and bins tensors should have the "
                           f"same dtype, and only floating point is supported, got "
                           f"{input.dtype}")
    a = _host(input).reshape(-1)
    edges = _host(bins) if isinstance(bins, Tensor) else int(bins)
    if isinstance(edges, int) and edges <= 0:
        raise RuntimeError(f"torch.histogram(): bins must be > 0, but got {edges} for "
                           "dimension 0")
    w = None
    if weight is not None:
        _tensor(weight, "histogram", "weight")
        if weight.shape != input.shape:
            raise RuntimeError(f"torch.histogram(): if weight tensor is provided it should have "
                               f"the same shape as the input tensor excluding its innermost "
                               f"dimension, but got input with shape {tuple(input.shape)} and "
                               f"weight with shape {tuple(weight.shape)}")
        w = _host(weight).reshape(-1)
    if isinstance(edges, int):
        lo, hi = (float(a.min()), float(a.max())) if range is None and a.size else \
            (0.0, 0.0) if range is None else (float(range[0]), float(range[1]))
        if lo > hi:
            raise RuntimeError(f"torch.histogram(): min should not exceed max, but got min "
                               f"{lo} max {hi}")
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5  # numpy and torch widen an empty range alike
        edges = np.linspace(lo, hi, edges + 1, dtype=np.float32)
    hist, edges = np.histogram(a, bins=edges.astype(np.float64), weights=w, density=density)
    out = HistogramResult(Tensor(hist.astype(np.float32)), Tensor(edges.astype(np.float32)))
    if input.device != "cpu":
        out = HistogramResult(*(t.to(input.device) for t in out))
    return out
