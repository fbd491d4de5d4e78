"""Backends: the array-level kernels behind every op.

A backend is a module (``cpu`` on NumPy + ``fastconv._C``, ``cuda`` on CuPy) that
exposes the same functions with the same signatures. The ops layer
(``fastconv/ops``) validates the arguments, makes the arrays C-contiguous float32,
normalises every size argument to a pair of ints, and then calls the backend of
its inputs. Backends therefore only compute; they may assume valid input, but
compiled code still checks shapes it is handed and raises instead of reading out
of bounds.

Conventions: NCHW float32; pairs are ``(h, w)``; ``x, w, b, y`` and their
gradients ``dx, dw, db, dy``. Functions return new arrays.

Kernel interface (identical in ``cpu`` and ``cuda``):

    xp                                   the array module (numpy or cupy)
    gemm(a, b, trans_a=False, trans_b=False) -> a @ b  (2-D, through the backend BLAS)

    conv2d_forward(x, w, b, stride, padding, dilation, groups) -> y
        x (N, C, H, W), w (OC, C // groups, KH, KW), b (OC,) or None
    conv2d_backward(x, w, dy, stride, padding, dilation, groups,
                    need_dx, need_dw, need_db) -> (dx|None, dw|None, db|None)

    max_pool2d_forward(x, kernel, stride, padding, ceil_mode) -> (y, indices)
        indices: int32 (N, C, OH, OW), flat offset oh*W + ow of the max inside
        its input plane. Tie rule: the first maximum in row-major scan order of
        the window wins (as in PyTorch); padding never wins.
    max_pool2d_backward(dy, indices, x_shape, kernel, stride, padding) -> dx
        dx is the same on every run: the window lets a backend gather per input
        element instead of scattering with atomics.
    avg_pool2d_forward(x, kernel, stride, padding, ceil_mode, count_include_pad) -> y
    avg_pool2d_backward(dy, x_shape, kernel, stride, padding, ceil_mode, count_include_pad) -> dx

    lrn_forward(x, size, alpha, beta, k) -> (y, scale)
        scale[c] = k + alpha / size * sum_{j=c-size//2}^{c+(size-1)//2} x[j]^2 ;  y = x * scale^-beta
    lrn_backward(x, y, scale, dy, size, alpha, beta, k) -> dx

    batch_norm_forward_train(x, weight, bias, eps) -> (y, mean, var)
        x (N, C) or (N, C, H, W); statistics over all axes but C; var is biased.
    batch_norm_forward_eval(x, mean, var, weight, bias, eps) -> y
    batch_norm_backward(x, weight, mean, var, eps, dy) -> (dx, dweight, dbias)

    relu_forward(x) -> y
    relu_backward(y, dy) -> dx                      (dy where y > 0, else 0)
    accumulate_(dst, src)                           dst += src in place (autograd's
                                                    leaf-gradient sums); returns None

    softmax_cross_entropy_forward(logits, target, label_smoothing) -> (loss, prob)
        logits (N, K) float32, target (N,) int64 in [0, K); loss is the float mean.
    softmax_cross_entropy_backward(prob, target, label_smoothing, dloss) -> dlogits
"""

from __future__ import annotations

_BACKENDS: dict = {}


def get_backend(device: str):
    """The backend module for ``device`` ("cpu" or "cuda"), imported on first use.

    The CUDA backend is optional: asking for it without CuPy or a GPU raises a
    clear error, while ``import fastconv`` and the CPU backend never need CuPy.
    """
    backend = _BACKENDS.get(device)
    if backend is None:
        if device == "cpu":
            from fastconv.backend import cpu as backend
        elif device == "cuda":
            from fastconv.backend import cuda as backend
        else:
            raise ValueError(f"unknown device {device!r}: expected 'cpu' or 'cuda'")
        _BACKENDS[device] = backend
    return backend


def device_of(array) -> str:
    """'cpu' for NumPy arrays, 'cuda' for CuPy arrays."""
    import numpy as np

    if isinstance(array, (np.ndarray, np.generic)):
        return "cpu"
    if type(array).__module__.startswith("cupy"):
        return "cuda"
    raise TypeError(f"expected a NumPy or CuPy array, got {type(array).__name__}")
