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
