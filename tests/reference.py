"""Plain NumPy float64 implementations of every fastconv op: the test oracle.

Each function is written for clarity, not speed: explicit loops over kernel
offsets or output positions, ``einsum`` for the contractions, and no code shared
with the package. This module is never imported by ``fastconv``; the tests run
the same inputs through both and compare.

Conventions follow PyTorch: NCHW layout, ``stride``/``padding``/``dilation`` as an
int or an ``(h, w)`` pair, output sizes rounded down unless ``ceil_mode``.
Every function takes and returns float64 arrays (integer class targets stay
integer).
"""

from __future__ import annotations

import math

import numpy as np


def pair(v):
    """``3 -> (3, 3)``; ``(2, 3) -> (2, 3)``."""
    if isinstance(v, (tuple, list)):
        assert len(v) == 2, v
        return int(v[0]), int(v[1])
    return int(v), int(v)


def f64(a):
    return np.asarray(a, dtype=np.float64)


# ----------------------------------------------------------------------------- sizes

def conv_out_size(size, kernel, stride, padding, dilation=1):
    """floor((size + 2p - d(k-1) - 1) / s) + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def pool_out_size(size, kernel, stride, padding, ceil_mode):
    """PyTorch's pooling output length.

    Floor (or ceil) of (size + 2p - k) / s, plus one; in ceil mode a last window
    that would start in the right padding (or beyond) is dropped.
    """
    numerator = size + 2 * padding - kernel
    if ceil_mode:
        out = math.ceil(numerator / stride) + 1
        if (out - 1) * stride >= size + padding:
            out -= 1
    else:
        out = math.floor(numerator / stride) + 1
    return out


# ----------------------------------------------------------------------------- linear ops

def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation, as torch.nn.functional.conv2d.

    y[n, o, i, j] = b[o] + sum_{c, p, q} w[o, c, p, q] *
                    xpad[n, g*C/G + c, i*sh + p*dh, j*sw + q*dw]
    where g = o // (OC/G) is the group of output channel o.
    """
    x, w = f64(x), f64(w)
    sh, sw = pair(stride)
    ph, pw = pair(padding)
    dh, dw = pair(dilation)
    n, c, h, wd = x.shape
    oc, cg, kh, kw = w.shape
    assert c == cg * groups and oc % groups == 0
    oh = conv_out_size(h, kh, sh, ph, dh)
    ow = conv_out_size(wd, kw, sw, pw, dw)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    y = np.zeros((n, oc, oh, ow))
    ocg = oc // groups
    for g in range(groups):
        xg = xp[:, g * cg:(g + 1) * cg]
        wg = w[g * ocg:(g + 1) * ocg]
        for p in range(kh):
            for q in range(kw):
                # the input pixels that kernel tap (p, q) sees, for every output position
                patch = xg[:, :, p * dh: p * dh + sh * (oh - 1) + 1: sh,
                           q * dw: q * dw + sw * (ow - 1) + 1: sw]
                y[:, g * ocg:(g + 1) * ocg] += np.einsum("nchw,oc->nohw", patch, wg[:, :, p, q])
    if b is not None:
        y += f64(b)[None, :, None, None]
    return y


def linear(x, w, b=None):
    """y = x @ w.T + b  (w is (out_features, in_features))."""
    y = f64(x) @ f64(w).T
    if b is not None:
        y = y + f64(b)
    return y


# ----------------------------------------------------------------------------- pooling

def max_pool2d_with_indices(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """Max over each window; padding never wins.

    Returns ``(y, indices)``, indices the flat offset ``h * W + w`` of the maximum in
    its input plane. Ties: the first maximum in row-major order of the window wins.
    """
    x = f64(x)
    kh, kw = pair(kernel_size)
    sh, sw = pair(stride if stride is not None else kernel_size)
    ph, pw = pair(padding)
    n, c, h, w = x.shape
    oh = pool_out_size(h, kh, sh, ph, ceil_mode)
    ow = pool_out_size(w, kw, sw, pw, ceil_mode)
    y = np.empty((n, c, oh, ow))
    idx = np.empty((n, c, oh, ow), dtype=np.int64)
    for i in range(oh):
        h0 = i * sh - ph
        h1 = min(h0 + kh, h)
        h0 = max(h0, 0)
        for j in range(ow):
            w0 = j * sw - pw
            w1 = min(w0 + kw, w)
            w0 = max(w0, 0)
            win = x[:, :, h0:h1, w0:w1].reshape(n, c, -1)
            k = np.argmax(win, axis=2)  # argmax returns the first maximum: the tie rule
            y[:, :, i, j] = np.take_along_axis(win, k[..., None], axis=2)[..., 0]
            width = w1 - w0
            idx[:, :, i, j] = (h0 + k // width) * w + (w0 + k % width)
    return y, idx


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    return max_pool2d_with_indices(x, kernel_size, stride, padding, ceil_mode)[0]


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Mean over each window, PyTorch's divisor rule.

    With ``count_include_pad`` the divisor counts the padded cells of the window
    (but not the part of a ceil-mode window beyond the right padding); without it,
    only the cells inside the input.
    """
    x = f64(x)
    kh, kw = pair(kernel_size)
    sh, sw = pair(stride if stride is not None else kernel_size)
    ph, pw = pair(padding)
    n, c, h, w = x.shape
    oh = pool_out_size(h, kh, sh, ph, ceil_mode)
    ow = pool_out_size(w, kw, sw, pw, ceil_mode)
    y = np.empty((n, c, oh, ow))
    for i in range(oh):
        h0 = i * sh - ph
        h1 = min(h0 + kh, h + ph)
        for j in range(ow):
            w0 = j * sw - pw
            w1 = min(w0 + kw, w + pw)
            padded_count = (h1 - h0) * (w1 - w0)
            a0, a1 = max(h0, 0), min(h1, h)
            b0, b1 = max(w0, 0), min(w1, w)
            total = x[:, :, a0:a1, b0:b1].sum(axis=(2, 3))
            divisor = padded_count if count_include_pad else (a1 - a0) * (b1 - b0)
            y[:, :, i, j] = total / divisor
    return y


def adaptive_avg_pool2d(x, output_size):
    """Window i covers [floor(i*H/OH), ceil((i+1)*H/OH)), as in PyTorch."""
    x = f64(x)
    oh, ow = pair(output_size)
    n, c, h, w = x.shape
    y = np.empty((n, c, oh, ow))
    for i in range(oh):
        h0, h1 = (i * h) // oh, -(-((i + 1) * h) // oh)
        for j in range(ow):
            w0, w1 = (j * w) // ow, -(-((j + 1) * w) // ow)
            y[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return y


# ----------------------------------------------------------------------------- normalisation

def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """PyTorch's LRN across channels (alpha divided by the window size).

    scale[c] = k + alpha / size * sum_{j = c - size//2}^{c + (size-1)//2} x[j]^2
    y = x * scale^-beta      (channels outside [0, C) contribute zero)
    """
    x = f64(x)
    c = x.shape[1]
    sq = x ** 2
    scale = np.empty_like(x)
    for ch in range(c):
        lo = max(0, ch - size // 2)
        hi = min(c - 1, ch + (size - 1) // 2)
        scale[:, ch] = k + alpha / size * sq[:, lo:hi + 1].sum(axis=1)
    return x * scale ** (-beta)


def lrn_tensorflow(x, depth_radius=5, bias=1.0, alpha=1.0, beta=0.5):
    """tf.nn.local_response_normalization, written in NCHW.

    sqr_sum[c] = sum_{j=c-r}^{c+r} x[j]^2 ;  y = x / (bias + alpha * sqr_sum)^beta
    """
    x = f64(x)
    c = x.shape[1]
    y = np.empty_like(x)
    for ch in range(c):
        lo, hi = max(0, ch - depth_radius), min(c, ch + depth_radius + 1)
        sqr_sum = (x[:, lo:hi] ** 2).sum(axis=1)
        y[:, ch] = x[:, ch] / (bias + alpha * sqr_sum) ** beta
    return y


def lrn_caffe(x, local_size=5, alpha=1.0, beta=0.75, k=1.0):
    """Caffe's LRN layer, ACROSS_CHANNELS (local_size odd).

    scale[c] = k + alpha / n * sum_{j=c-(n-1)/2}^{c+(n-1)/2} x[j]^2 ;  y = x * scale^-beta
    """
    x = f64(x)
    assert local_size % 2 == 1
    c = x.shape[1]
    half = (local_size - 1) // 2
    y = np.empty_like(x)
    for ch in range(c):
        lo, hi = max(0, ch - half), min(c, ch + half + 1)
        scale = k + alpha / local_size * (x[:, lo:hi] ** 2).sum(axis=1)
        y[:, ch] = x[:, ch] * scale ** (-beta)
    return y


def _channel_view(v, ndim):
    """Shape a per-channel vector (C,) to broadcast against (N, C) or (N, C, H, W)."""
    return f64(v).reshape((1, -1) + (1,) * (ndim - 2))


def batch_norm_train(x, weight=None, bias=None, eps=1e-5):
    """Normalise with the batch statistics over every axis but 1 (biased variance).

    Returns ``(y, mean, var_biased, var_unbiased)``.
    """
    x = f64(x)
    axes = (0,) + tuple(range(2, x.ndim))
    count = x.size // x.shape[1]
    mean = x.mean(axis=axes)
    var = ((x - _channel_view(mean, x.ndim)) ** 2).mean(axis=axes)
    y = (x - _channel_view(mean, x.ndim)) / np.sqrt(_channel_view(var, x.ndim) + eps)
    if weight is not None:
        y = y * _channel_view(weight, x.ndim)
    if bias is not None:
        y = y + _channel_view(bias, x.ndim)
    return y, mean, var, var * count / (count - 1)


def batch_norm_eval(x, running_mean, running_var, weight=None, bias=None, eps=1e-5):
    x = f64(x)
    std = np.sqrt(_channel_view(running_var, x.ndim) + eps)
    y = (x - _channel_view(running_mean, x.ndim)) / std
    if weight is not None:
        y = y * _channel_view(weight, x.ndim)
    if bias is not None:
        y = y + _channel_view(bias, x.ndim)
    return y


def batch_norm_running_update(running_mean, running_var, mean, var_unbiased, momentum=0.1):
    """PyTorch's update: r = (1 - m) r + m * batch (the variance unbiased)."""
    new_mean = (1 - momentum) * f64(running_mean) + momentum * mean
    new_var = (1 - momentum) * f64(running_var) + momentum * var_unbiased
    return new_mean, new_var


# ----------------------------------------------------------------------------- activations

def relu(x):
    x = f64(x)
    return np.where(x > 0, x, 0.0)


def softmax(x, dim):
    x = f64(x)
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


def log_softmax(x, dim):
    x = f64(x)
    shifted = x - x.max(axis=dim, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))


def dropout_with_mask(x, keep_mask, p):
    """Inverted dropout: kept entries scaled by 1 / (1 - p)."""
    return f64(x) * keep_mask / (1.0 - p)


# ----------------------------------------------------------------------------- losses, metrics

def cross_entropy(logits, target, label_smoothing=0.0):
    """Mean over the batch of (1 - eps) * nll + eps * mean_k(-log p_k)  (PyTorch's smoothing)."""
    logp = log_softmax(logits, dim=1)
    target = np.asarray(target)
    n = logp.shape[0]
    nll = -logp[np.arange(n), target]
    smooth = -logp.mean(axis=1)
    return np.mean((1.0 - label_smoothing) * nll + label_smoothing * smooth)


def accuracy(logits, target, topk=(1, 5)):
    """Percentage of rows whose target is among the k largest logits, for each k (ties: the
    lower class index first, as a stable sort; a row holding NaN is never right)."""
    logits = f64(logits)
    target = np.asarray(target)
    order = np.argsort(-logits, axis=1, kind="stable")
    out = []
    for k in topk:
        hit = [target[i] in order[i, :k] and not np.isnan(logits[i]).any()
               for i in range(logits.shape[0])]
        out.append(100.0 * np.mean(hit))
    return out


# ----------------------------------------------------------------------------- shape ops

def cat(arrays, dim):
    return np.concatenate([f64(a) for a in arrays], axis=dim)


def flatten(x, start_dim=0, end_dim=-1):
    x = f64(x)
    nd = x.ndim
    s, e = start_dim % nd, end_dim % nd
    return x.reshape(x.shape[:s] + (-1,) + x.shape[e + 1:])


# ----------------------------------------------------------------------------- tensor API math

def abs_(x):
    return np.abs(f64(x))


def sqrt(x):
    return np.sqrt(f64(x))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-f64(x)))


def tanh(x):
    return np.tanh(f64(x))


def clamp(x, lo=None, hi=None):
    y = f64(x)
    if lo is not None:
        y = np.where(y < lo, lo, y)
    if hi is not None:
        y = np.where(y > hi, hi, y)
    return y


def var(x, dim=None, correction=1, keepdim=False):
    x = f64(x)
    m = x.mean(axis=dim, keepdims=True)
    n = x.size if dim is None else np.prod([x.shape[d] for d in np.atleast_1d(dim)])
    return ((x - m) ** 2).sum(axis=dim, keepdims=keepdim) / (n - correction)


def std(x, dim=None, correction=1, keepdim=False):
    return np.sqrt(var(x, dim, correction, keepdim))


def norm(x, p=2, dim=None, keepdim=False):
    x = np.abs(f64(x))
    if p == np.inf:
        return x.max(axis=dim, keepdims=keepdim)
    return (x ** p).sum(axis=dim, keepdims=keepdim) ** (1.0 / p)


def maximum(a, b):
    return np.maximum(f64(a), f64(b))


def minimum(a, b):
    return np.minimum(f64(a), f64(b))


def where(cond, a, b):
    return np.where(cond, f64(a), f64(b))


def expand(x, shape):
    return np.broadcast_to(f64(x), shape).copy()


def repeat(x, sizes):
    return np.tile(f64(x), sizes)


def flip(x, dims):
    return np.flip(f64(x), axis=dims).copy()


def stack(arrays, dim=0):
    return np.stack([f64(a) for a in arrays], axis=dim)


def min_along(x, dim, keepdim=False):
    return f64(x).min(axis=dim, keepdims=keepdim)


def sort_values(x, dim=-1, descending=False):
    y = np.sort(f64(x), axis=dim)
    return np.flip(y, axis=dim).copy() if descending else y


def topk_values(x, k, dim=-1, largest=True):
    y = sort_values(x, dim, descending=largest)
    return np.take(y, np.arange(k), axis=dim)


def setitem(x, v, index):
    y = f64(x).copy()
    y[index] = v
    return y


# ----------------------------------------------------------------------------- PyTorch surface:
# activations, losses, layer/group norm, padding, resizing, dilated and adaptive max pooling

def leaky_relu(x, negative_slope=0.01):
    x = f64(x)
    return np.where(x > 0, x, negative_slope * x)


def elu(x, alpha=1.0):
    x = f64(x)
    return np.where(x > 0, x, alpha * (np.exp(np.minimum(x, 0)) - 1))


def gelu(x, approximate="none"):
    """x * Phi(x) with the exact normal CDF (math.erf per element), or the tanh form."""
    x = f64(x)
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    erf = np.vectorize(math.erf)
    return x * 0.5 * (1 + erf(x / math.sqrt(2)))


def silu(x):
    x = f64(x)
    return x / (1 + np.exp(-x))


def _reduce(loss, reduction, denominator=None):
    if reduction == "none":
        return loss
    if reduction == "sum":
        return np.asarray(loss.sum())
    return np.asarray(loss.sum() / (loss.size if denominator is None else denominator))


def nll_loss(logp, target, weight=None, ignore_index=-100, reduction="mean"):
    """loss = -w[t] * logp[n, t, ...] per target element (class dim 1, or 0 for (C,) input);
    'mean' divides by the summed weights of the targets not ignored."""
    logp = f64(logp)
    target = np.asarray(target)
    if logp.ndim == 1:
        logp, target = logp[None], target[None]
        squeeze = True
    else:
        squeeze = False
    C = logp.shape[1]
    w = np.ones(C) if weight is None else f64(weight)
    loss = np.zeros(target.shape)
    wsum = 0.0
    for idx in np.ndindex(*target.shape):
        t = int(target[idx])
        if t == ignore_index:
            continue
        n, rest = idx[0], idx[1:]
        loss[idx] = -w[t] * logp[(n, t) + rest]
        wsum += w[t]
    if squeeze:
        loss = loss[0]
    return _reduce(loss, reduction, wsum)


def cross_entropy_full(logits, target, weight=None, ignore_index=-100, reduction="mean",
                       label_smoothing=0.0):
    """PyTorch's cross_entropy for class-index targets, written from its definition:
    (1 - ls) * nll + ls / C * sum_k -w[k] log p[k], ignored targets contributing 0."""
    logits = f64(logits)
    dim = 0 if logits.ndim == 1 else 1
    logp = log_softmax(logits, dim)
    nll = nll_loss(logp, target, weight, ignore_index, reduction)
    if label_smoothing == 0:
        return nll
    C = logits.shape[dim]
    w = np.ones(C) if weight is None else f64(weight)
    shape = [1] * logits.ndim
    shape[dim] = C
    smooth = -(logp * w.reshape(shape)).sum(axis=dim)
    target = np.asarray(target)
    keep = target != ignore_index
    smooth = np.where(keep, smooth, 0.0)
    denom = w[np.where(keep, target, 0)][keep].sum() if weight is not None else keep.sum()
    return (1 - label_smoothing) * nll + label_smoothing / C * _reduce(smooth, reduction, denom)


def cross_entropy_probs(logits, probs, weight=None, reduction="mean", label_smoothing=0.0):
    """Cross-entropy against class probabilities (class dim 1): -sum_k w[k] q'[k] log p[k]."""
    logits, probs = f64(logits), f64(probs)
    C = logits.shape[1]
    q = probs * (1 - label_smoothing) + label_smoothing / C
    w = np.ones(C) if weight is None else f64(weight)
    terms = log_softmax(logits, 1) * q * w.reshape([1, C] + [1] * (logits.ndim - 2))
    return _reduce(-terms.sum(axis=1), reduction)


def bce_with_logits(x, y, weight=None, pos_weight=None, reduction="mean"):
    """-w [pw y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))], from the plain definition."""
    x, y = f64(x), f64(y)
    sig = 1 / (1 + np.exp(-x))
    pw = 1.0 if pos_weight is None else f64(pos_weight)
    loss = -(pw * y * np.log(sig) + (1 - y) * np.log(1 - sig))
    if weight is not None:
        loss = loss * f64(weight)
    return _reduce(loss, reduction)


def mse_loss(a, b, reduction="mean"):
    return _reduce((f64(a) - f64(b)) ** 2, reduction)


def l1_loss(a, b, reduction="mean"):
    return _reduce(np.abs(f64(a) - f64(b)), reduction)


def one_hot(t, num_classes):
    t = np.asarray(t)
    out = np.zeros(t.shape + (num_classes,), dtype=np.int64)
    for idx in np.ndindex(*t.shape):
        out[idx + (int(t[idx]),)] = 1
    return out


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    x = f64(x)
    k = len(normalized_shape)
    axes = tuple(range(x.ndim - k, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps)
    if weight is not None:
        y = y * f64(weight)
    if bias is not None:
        y = y + f64(bias)
    return y


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    x = f64(x)
    N, C = x.shape[:2]
    y = np.empty_like(x)
    per = C // num_groups
    for n in range(N):
        for g in range(num_groups):
            block = x[n, g * per:(g + 1) * per]
            y[n, g * per:(g + 1) * per] = (block - block.mean()) / np.sqrt(block.var() + eps)
    cshape = (1, C) + (1,) * (x.ndim - 2)
    if weight is not None:
        y = y * f64(weight).reshape(cshape)
    if bias is not None:
        y = y + f64(bias).reshape(cshape)
    return y


def pad(x, pads, mode="constant", value=0.0):
    """F.pad: ``pads`` from the last dim backwards; np.pad's reflect / edge / wrap are
    PyTorch's reflect / replicate / circular; negative constant amounts crop."""
    x = f64(x)
    width = [(0, 0)] * x.ndim
    for i in range(len(pads) // 2):
        width[x.ndim - 1 - i] = (pads[2 * i], pads[2 * i + 1])
    if mode == "constant":
        crop = tuple(slice(max(-a, 0), x.shape[d] - max(-b, 0)) for d, (a, b) in enumerate(width))
        return np.pad(x[crop], [(max(a, 0), max(b, 0)) for a, b in width],
                      constant_values=value)
    return np.pad(x, width, mode={"reflect": "reflect", "replicate": "edge",
                                  "circular": "wrap"}[mode])


def interpolate(x, size, mode="nearest", align_corners=False, scale=None):
    """Nearest or bilinear resizing of (N, C, H, W) to ``size``, one output pixel at a time.
    ``scale``: the (h, w) scale factors that set the source positions (else in / out)."""
    x = f64(x)
    N, C, H, W = x.shape
    OH, OW = size
    y = np.zeros((N, C, OH, OW))

    def ratio(n, o, s):
        if mode == "bilinear" and align_corners:
            return (n - 1) / (o - 1) if o > 1 else 0.0
        return 1.0 / s if s is not None else n / o

    rh = ratio(H, OH, None if scale is None else scale[0])
    rw = ratio(W, OW, None if scale is None else scale[1])
    for i in range(OH):
        for j in range(OW):
            if mode == "nearest":
                y[:, :, i, j] = x[:, :, min(math.floor(np.float32(i) * np.float32(rh)), H - 1),
                                  min(math.floor(np.float32(j) * np.float32(rw)), W - 1)]
                continue
            if align_corners:
                sh, sw = i * rh, j * rw
            else:
                sh, sw = max((i + 0.5) * rh - 0.5, 0.0), max((j + 0.5) * rw - 0.5, 0.0)
            h0, w0 = min(math.floor(sh), H - 1), min(math.floor(sw), W - 1)
            h1, w1 = min(h0 + 1, H - 1), min(w0 + 1, W - 1)
            lh, lw = sh - h0, sw - w0
            y[:, :, i, j] = ((1 - lh) * ((1 - lw) * x[:, :, h0, w0] + lw * x[:, :, h0, w1])
                             + lh * ((1 - lw) * x[:, :, h1, w0] + lw * x[:, :, h1, w1]))
    return y


def max_pool2d_dilated(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Max pooling with dilation, one window at a time: (y, flat in-plane indices)."""
    x = f64(x)
    kh, kw = pair(kernel_size)
    sh, sw = pair(kernel_size if stride is None else stride)
    ph, pw = pair(padding)
    dh, dw = pair(dilation)
    N, C, H, W = x.shape

    def out_size(n, k, s, p, d):
        span = n + 2 * p - d * (k - 1) - 1
        o = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (o - 1) * s >= n + p:
            o -= 1
        return o

    OH, OW = out_size(H, kh, sh, ph, dh), out_size(W, kw, sw, pw, dw)
    y = np.full((N, C, OH, OW), -np.inf)
    idx = np.zeros((N, C, OH, OW), dtype=np.int64)
    for n in range(N):
        for c in range(C):
            for i in range(OH):
                for j in range(OW):
                    for p in range(kh):
                        for q in range(kw):
                            h, w = i * sh - ph + p * dh, j * sw - pw + q * dw
                            if 0 <= h < H and 0 <= w < W and x[n, c, h, w] > y[n, c, i, j]:
                                y[n, c, i, j], idx[n, c, i, j] = x[n, c, h, w], h * W + w
    return y, idx


def adaptive_max_pool2d(x, output_size):
    """(y, flat in-plane indices) over PyTorch's adaptive windows."""
    x = f64(x)
    N, C, H, W = x.shape
    OH, OW = pair(output_size)
    y = np.zeros((N, C, OH, OW))
    idx = np.zeros((N, C, OH, OW), dtype=np.int64)
    for i in range(OH):
        h0, h1 = (i * H) // OH, -(-((i + 1) * H) // OH)
        for j in range(OW):
            w0, w1 = (j * W) // OW, -(-((j + 1) * W) // OW)
            win = x[:, :, h0:h1, w0:w1].reshape(N, C, -1)
            k = win.argmax(axis=-1)
            y[:, :, i, j] = win.max(axis=-1)
            idx[:, :, i, j] = (h0 + k // (w1 - w0)) * W + w0 + k % (w1 - w0)
    return y, idx


def philox4x32_10(ctr, key):
    """Philox4x32-10 (Salmon et al., SC 2011) on Python ints: counter (4 words), key (2)."""
    M0, M1, W0, W1 = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85
    c0, c1, c2, c3 = ctr
    k0, k1 = key
    for _ in range(10):
        p0, p1 = M0 * c0, M1 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0, p1 & 0xFFFFFFFF,
                          (p0 >> 32) ^ c3 ^ k1, p0 & 0xFFFFFFFF)
        k0, k1 = (k0 + W0) & 0xFFFFFFFF, (k1 + W1) & 0xFFFFFFFF
    return c0, c1, c2, c3
