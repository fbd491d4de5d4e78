"""Softmax cross-entropy with label smoothing (``fastconv/cuda/loss.cu``)."""

from __future__ import annotations

import cupy
import numpy as np

from .launch import BLOCK, MAX_GRID, NULL, device_f32, f32, get_kernel, i32, launch


def _target(target, N, K):
    if isinstance(target, cupy.ndarray):
        t = target
    else:  # a host array of class indices is fine: it is tiny
        t = cupy.asarray(np.asarray(target))
    if t.shape != (N,):
        raise ValueError(f"cross_entropy: target must have shape ({N},), got {t.shape}")
    if t.dtype != np.int64 or not t.flags.c_contiguous:
        t = cupy.ascontiguousarray(t, dtype=np.int64)
    return t


def softmax_cross_entropy_forward(logits, target, label_smoothing):
    """(loss, prob): loss is a 0-d float32 CuPy array (no host sync), prob = softmax(logits).

    A target outside [0, K) gives a NaN loss instead of an out-of-bounds read; the ops layer
    is expected to have rejected it with a clear error (outside graph capture).
    """
    logits = device_f32(logits, "logits")
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: logits must be (N, K), got {logits.shape}")
    N, K = logits.shape
    t = _target(target, N, K)
    prob = cupy.empty_like(logits)
    rows = cupy.empty((N,), dtype=np.float32)
    loss = cupy.empty((), dtype=np.float32)
    if N == 0 or K == 0:
        loss.fill(np.nan)
        return loss, prob
    warps = BLOCK // 32
    get_kernel("loss.cu", "softmax_cross_entropy_forward")(
        (max(1, min((N + warps - 1) // warps, MAX_GRID)),), (BLOCK,),
        (logits, t, prob, rows, i32(N), i32(K), f32(label_smoothing)))
    get_kernel("loss.cu", "softmax_cross_entropy_forward_mean")((1,), (BLOCK,), (rows, loss, i32(N)))
    return loss, prob


def softmax_cross_entropy_backward(prob, target, label_smoothing, dloss):
    """dlogits = dloss / N * (prob - (1 - eps) onehot - eps / K).

    ``dloss`` may be a Python / NumPy number (passed by value) or a CuPy scalar array (read on
    the device, so a captured step needs no host round trip).
    """
    prob = device_f32(prob, "prob")
    N, K = prob.shape
    t = _target(target, N, K)
    dlogits = cupy.empty_like(prob)
    if isinstance(dloss, cupy.ndarray):
        dl_ptr = device_f32(dloss.reshape(-1)[:1], "dloss")
        dl_val = f32(0.0)
    else:
        dl_ptr, dl_val = NULL, f32(float(dloss))
    launch("loss.cu", "softmax_cross_entropy_backward", prob.size,
            (prob, t, dl_ptr, dl_val, dlogits, i32(N), i32(K), f32(label_smoothing)))
    return dlogits
