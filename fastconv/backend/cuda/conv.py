"""The GPU convolution: im2col (``fastconv/cuda/im2col.cu``) and cuBLAS GEMMs.

The column buffer of a chunk of B images is laid out ``(C*KH*KW, B, OH*OW)``; the batch runs
in balanced chunks whose buffer fits the workspace limit (512 MiB by default,
``FASTCONV_CUDA_WORKSPACE_MB`` or :func:`set_workspace_limit`).

Where the work goes:

    forward, 1x1 / stride 1 / no padding   one strided-batched GEMM per group on x in place
    forward, OH*OW >= _BATCHED_MIN_PIXELS   im2col, then one strided-batched GEMM per group
                                            writing NCHW directly, then the bias
    forward, OH*OW <  _BATCHED_MIN_PIXELS   im2col, one GEMM per group over the whole chunk,
                                            one transpose kernel back to NCHW (+ bias)
    dw                                      dy as (OC, N, P), then one GEMM per chunk and group
                                            with K = images x pixels, accumulated (beta = 1)
    dx, 1x1 / stride 1 / no padding         one strided-batched GEMM per group, no col2im
    dx                                      dcol = w^T @ dy (in the column buffer), col2im
    db                                      one block per channel sums dy (elementwise.cu)
"""

from __future__ import annotations

import os

import cupy
import numpy as np

from fastconv import output_size

from .blas import bf16_products, mm, view
from .elementwise import relu_forward, round_bf16_
from .launch import BLOCK, NULL, device_f32, device_f32_or_none, get_kernel, i32, i64, launch

_workspace_limit = int(float(os.environ.get("FASTCONV_CUDA_WORKSPACE_MB", "512")) * 2**20)
# Below this many output pixels per image, the forward GEMM runs once over the whole chunk
# (N = B*OH*OW) and a transpose kernel (which also adds the bias) puts the result back in
# NCHW; above it, one strided-batched GEMM writes NCHW directly.
_BATCHED_MIN_PIXELS = 256


def set_workspace_limit(nbytes: int) -> None:
    """Bound the im2col column buffer (bytes; default 512 MiB or $FASTCONV_CUDA_WORKSPACE_MB).

    The batch is processed in chunks of images whose column buffer fits the bound, so memory
    stays flat for large batches; a single image larger than the bound still runs (alone).
    """
    global _workspace_limit
    if int(nbytes) <= 0:
        raise ValueError(f"set_workspace_limit: nbytes must be positive, got {nbytes}")
    _workspace_limit = int(nbytes)


def _chunk(n: int, per_image_bytes: int) -> int:
    """Images per chunk: as many as the bound allows, balanced (128 -> 64 + 64, not 106 + 22)."""
    most = max(1, min(n, _workspace_limit // max(int(per_image_bytes), 1)))
    chunks = -(-n // most)
    return -(-n // chunks)


def _is_pointwise(KH, KW, stride, padding) -> bool:
    return KH == 1 and KW == 1 and tuple(stride) == (1, 1) and tuple(padding) == (0, 0)


def _im2col(x, n0, B, C, H, W, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW, out=None):
    P = OH * OW
    col = out if out is not None else cupy.empty((C * KH * KW, B, P), dtype=np.float32)
    launch("im2col.cu", "im2col_forward", C * B * P,
            (x[n0:n0 + B], col, i32(B), i32(C), i32(H), i32(W), i32(KH), i32(KW),
             i32(sh), i32(sw), i32(ph), i32(pw), i32(dh), i32(dw), i32(OH), i32(OW)))
    return col


def _check_conv(x, w, groups):
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"conv2d: expected x (N, C, H, W) and w (OC, C/groups, KH, KW), "
                         f"got {x.shape} and {w.shape}")
    C, OC, Cg = x.shape[1], w.shape[0], w.shape[1]
    if groups < 1 or C != Cg * groups or OC % groups:
        raise ValueError(f"conv2d: x has {C} channels, w is {tuple(w.shape)}, groups={groups}: "
                         "need C == w.shape[1] * groups and OC divisible by groups")


def conv2d_forward(x, w, b, stride, padding, dilation, groups):
    """y = conv2d(x, w) + b: im2col per chunk of the batch + cuBLAS GEMM (1x1: no im2col)."""
    x, w, b = device_f32(x, "x"), device_f32(w, "weight"), device_f32_or_none(b, "bias")
    groups = int(groups)
    _check_conv(x, w, groups)
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    N, C, H, W = x.shape
    OC, Cg, KH, KW = w.shape
    OH = output_size.conv_output_size(H, KH, sh, ph, dh)
    OW = output_size.conv_output_size(W, KW, sw, pw, dw)
    if b is not None and b.shape != (OC,):
        raise ValueError(f"conv2d: bias must have shape ({OC},), got {b.shape}")
    y = cupy.empty((N, OC, OH, OW), dtype=np.float32)
    if y.size == 0:
        return y
    G, OCg, KK = groups, OC // groups, KH * KW
    CKg, P = Cg * KK, OH * OW
    w2 = w.reshape(OC, CKg)
    bias_fused = False
    if _is_pointwise(KH, KW, (sh, sw), (ph, pw)):
        # y[n, group] = w_group @ x[n, group]: one strided-batched GEMM per group, no im2col.
        for g in range(G):
            mm(view(w2, g * OCg * CKg, (N, OCg, Cg), (0, Cg, 1)),
                view(x, g * Cg * P, (N, Cg, P), (C * P, P, 1)),
                view(y, g * OCg * P, (N, OCg, P), (OC * P, P, 1)))
    else:
        batched = P >= _BATCHED_MIN_PIXELS
        per_image = 4 * P * (C * KK + (0 if batched else OC))
        chunk = _chunk(N, per_image)
        for n0 in range(0, N, chunk):
            B = min(chunk, N - n0)
            col = _im2col(x, n0, B, C, H, W, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW)
            if batched:
                for g in range(G):
                    mm(view(w2, g * OCg * CKg, (B, OCg, CKg), (0, CKg, 1)),
                        view(col, g * CKg * B * P, (B, CKg, P), (P, B * P, 1)),
                        view(y, (n0 * OC + g * OCg) * P, (B, OCg, P), (OC * P, P, 1)))
            else:
                tmp = cupy.empty((OC, B, P), dtype=np.float32)
                for g in range(G):
                    mm(view(w2, g * OCg * CKg, (OCg, CKg), (CKg, 1)),
                        view(col, g * CKg * B * P, (CKg, B * P), (B * P, 1)),
                        view(tmp, g * OCg * B * P, (OCg, B * P), (B * P, 1)))
                launch("im2col.cu", "conv2d_forward_to_nchw", B * OC * P,
                        (tmp, b if b is not None else NULL, y[n0:n0 + B], i32(B), i32(OC),
                         i64(P)))
                bias_fused = True
            del col
    if b is not None and not bias_fused:
        launch("elementwise.cu", "conv2d_forward_bias", y.size, (y, b, i32(N), i32(OC), i64(P)))
    return y


def conv2d_backward(x, w, dy, stride, padding, dilation, groups, need_dx, need_dw, need_db):
    """(dx, dw, db) of conv2d; each is None unless asked for.

    dw = sum over the batch of dy[n] @ col[n]^T as ONE GEMM per chunk and group (K = images x
    pixels, accumulated with beta = 1 across chunks); dx = col2im(w^T @ dy) (1x1: no col2im).
    """
    x, w, dy = device_f32(x, "x"), device_f32(w, "weight"), device_f32(dy, "grad_output")
    groups = int(groups)
    _check_conv(x, w, groups)
    sh, sw = stride
    ph, pw = padding
    dh, dw_ = dilation
    N, C, H, W = x.shape
    OC, Cg, KH, KW = w.shape
    OH = output_size.conv_output_size(H, KH, sh, ph, dh)
    OW = output_size.conv_output_size(W, KW, sw, pw, dw_)
    if dy.shape != (N, OC, OH, OW):
        raise ValueError(f"conv2d backward: grad_output has shape {dy.shape}, expected "
                         f"{(N, OC, OH, OW)}")
    G, OCg, KK = groups, OC // groups, KH * KW
    CKg, P = Cg * KK, OH * OW
    dx = cupy.empty_like(x) if need_dx else None
    dw = cupy.zeros_like(w) if need_dw else None
    db = cupy.zeros((OC,), dtype=np.float32) if need_db else None
    if need_db and N * P > 0:
        get_kernel("elementwise.cu", "conv2d_backward_bias")(
            (max(1, min(OC, 65535)),), (BLOCK,), (dy, db, i32(N), i32(OC), i64(P)))
    if not (need_dx or need_dw):
        return dx, dw, db
    if N == 0 or P == 0:
        if dx is not None:
            dx.fill(0)
        return dx, dw, db
    w2 = w.reshape(OC, CKg)
    dw2 = dw.reshape(OC, CKg) if dw is not None else None
    pointwise = _is_pointwise(KH, KW, (sh, sw), (ph, pw))
    dyt = None
    if need_dw:
        # dy in (OC, N, P) layout: the rows of the dw GEMM, K = N*P contiguous per channel.
        dyt = cupy.empty((OC, N, P), dtype=np.float32)
        launch("im2col.cu", "conv2d_backward_to_cnhw", dy.size, (dy, dyt, i32(N), i32(OC), i64(P)))
    if pointwise:
        if need_dx:
            for g in range(G):
                mm(view(w2, g * OCg * CKg, (N, OCg, Cg), (0, Cg, 1)),
                    view(dy, g * OCg * P, (N, OCg, P), (OC * P, P, 1)),
                    view(dx, g * Cg * P, (N, Cg, P), (C * P, P, 1)), trans_a=True)
        if need_dw:
            chunk = _chunk(N, 4 * C * P)
            for n0 in range(0, N, chunk):
                B = min(chunk, N - n0)
                xt = cupy.empty((C, B, P), dtype=np.float32)   # the 1x1 "im2col": a transpose
                launch("im2col.cu", "conv2d_backward_to_cnhw", B * C * P,
                        (x[n0:n0 + B], xt, i32(B), i32(C), i64(P)))
                for g in range(G):
                    mm(view(dyt, g * OCg * N * P + n0 * P, (OCg, B * P), (N * P, 1)),
                        view(xt, g * Cg * B * P, (Cg, B * P), (B * P, 1)),
                        view(dw2, g * OCg * CKg, (OCg, CKg), (CKg, 1)), trans_b=True,
                        beta=1.0)
        return dx, dw, db
    chunk = _chunk(N, 4 * C * KK * P)
    for n0 in range(0, N, chunk):
        B = min(chunk, N - n0)
        col = _im2col(x, n0, B, C, H, W, KH, KW, sh, sw, ph, pw, dh, dw_, OH, OW) \
            if need_dw else cupy.empty((C * KK, B, P), dtype=np.float32)
        if need_dw:
            for g in range(G):
                mm(view(dyt, g * OCg * N * P + n0 * P, (OCg, B * P), (N * P, 1)),
                    view(col, g * CKg * B * P, (CKg, B * P), (B * P, 1)),
                    view(dw2, g * OCg * CKg, (OCg, CKg), (CKg, 1)), trans_b=True,
                        beta=1.0)
        if need_dx:
            dcol = col   # the column buffer is free again: reuse it for the column gradient
            for g in range(G):
                if dyt is not None:
                    mm(view(w2, g * OCg * CKg, (OCg, CKg), (CKg, 1)),
                        view(dyt, g * OCg * N * P + n0 * P, (OCg, B * P), (N * P, 1)),
                        view(dcol, g * CKg * B * P, (CKg, B * P), (B * P, 1)), trans_a=True)
                else:
                    mm(view(w2, g * OCg * CKg, (B, OCg, CKg), (0, CKg, 1)),
                        view(dy, (n0 * OC + g * OCg) * P, (B, OCg, P), (OC * P, P, 1)),
                        view(dcol, g * CKg * B * P, (B, CKg, P), (P, B * P, 1)),
                        trans_a=True)
            launch("im2col.cu", "col2im_backward", B * C * H * W,
                    (dcol, dx[n0:n0 + B], i32(B), i32(C), i32(H), i32(W), i32(KH),
                     i32(KW), i32(sh), i32(sw), i32(ph), i32(pw), i32(dh), i32(dw_),
                     i32(OH), i32(OW)))
        del col
    return dx, dw, db


def conv2d_forward_bf16(x, w, b, stride, padding, dilation, groups, relu=False):
    """conv2d_forward with every GEMM on bfloat16-rounded operands (blas.bf16_products): x and
    w are rounded as they enter the GEMMs, the bias is added in float32; y rounded to
    bfloat16 (autocast's output), as the CPU's; then relu_forward with ``relu``."""
    with bf16_products():
        y = conv2d_forward(x, w, b, stride, padding, dilation, groups)
    round_bf16_(y)
    return relu_forward(y) if relu else y


def conv2d_backward_bf16(x, w, dy, stride, padding, dilation, groups, need_dx, need_dw,
                         need_db=False):
    """(dx, dw, db) of conv2d_forward_bf16 with dy rounded to bfloat16, its GEMMs on
    bfloat16-rounded operands: dx rounded to bfloat16, dw and db float32 sums."""
    dy = device_f32(dy, "dy").copy()
    round_bf16_(dy)
    with bf16_products():
        dx, dw, db = conv2d_backward(x, w, dy, stride, padding, dilation, groups, need_dx,
                                     need_dw, need_db)
    if dx is not None:
        round_bf16_(dx)
    return dx, dw, db
