"""Padding (``fastconv/cuda/pad.cu``): a gather through one index table per dim.

The tables (NumPy, from fastconv/ops/pad.py) go to the device in one int64 "plan" per call;
for the backward the host inverts them (for each input position, the output positions that
read it), so that each thread gathers its dx element without atomics.
"""

from __future__ import annotations

import cupy
import numpy as np

from .launch import device_f32, f32, i32, i64, launch

MAX_DIMS = 8  # FC_PAD_MAX_DIMS in pad.cu


def _check(op, in_shape, index):
    nd = len(in_shape)
    if not 1 <= nd <= MAX_DIMS:
        raise ValueError(f"{op}: the CUDA kernel pads 1 to {MAX_DIMS} dims, got shape "
                         f"{tuple(in_shape)}")
    if len(index) != nd:
        raise ValueError(f"{op}: index must have one entry per dim of shape {tuple(in_shape)}, "
                         f"got {len(index)}")
    tables = []
    for d, (size, t) in enumerate(zip(in_shape, index)):
        if t is not None:
            t = np.ascontiguousarray(t, dtype=np.int64)
            if t.ndim != 1 or (t.size and (t.min() < -1 or t.max() >= size)):
                raise ValueError(f"{op}: index[{d}] must be a 1-D table of positions in [-1, "
                                 f"{size}) for shape {tuple(in_shape)}")
        tables.append(t)
    out_shape = [len(t) if t is not None else s for s, t in zip(in_shape, tables)]
    return nd, [int(s) for s in in_shape], out_shape, tables


def _plan(head, per_dim):
    """int64 device array: head, one offset per dim (-1: None), then the per-dim arrays."""
    nd = len(per_dim)
    offsets, body, at = [], [], len(head) + nd
    for a in per_dim:
        if a is None:
            offsets.append(-1)
            continue
        offsets.append(at)
        body.append(a)
        at += len(a)
    return cupy.asarray(np.concatenate([np.asarray(head + offsets, np.int64)] + body))


def pad_forward(x, index, value):
    x = device_f32(x, "x")
    nd, in_shape, out_shape, tables = _check("pad", x.shape, index)
    y = cupy.empty(tuple(out_shape), dtype=np.float32)
    plan = _plan(in_shape + out_shape, tables)
    launch("pad.cu", "pad_forward", y.size, (x, y, plan, i32(nd), i64(y.size), f32(value)))
    return y


def _inverse(table, size, base):
    """For each input position p < size, [start[p], start[p+1]) = where in the plan (from
    ``base``) the output positions reading p are listed; then the list."""
    valid = np.flatnonzero(table >= 0)
    order = valid[np.argsort(table[valid], kind="stable")]
    counts = np.bincount(table[valid], minlength=size)
    starts = base + size + 1 + np.concatenate([[0], np.cumsum(counts)])
    return np.concatenate([starts, order]).astype(np.int64)


def pad_backward(dy, x_shape, index):
    dy = device_f32(dy, "grad_output")
    nd, in_shape, out_shape, tables = _check("pad backward", tuple(x_shape), index)
    if tuple(dy.shape) != tuple(out_shape):
        raise ValueError(f"pad backward: grad_output {dy.shape} does not match the padded "
                         f"shape {tuple(out_shape)}")
    dx = cupy.empty(tuple(in_shape), dtype=np.float32)
    per_dim, at = [], 3 * nd
    for size, t in zip(in_shape, tables):
        inv = None if t is None else _inverse(t, size, at)
        per_dim.append(inv)
        at += 0 if inv is None else len(inv)
    plan = _plan(in_shape + out_shape, per_dim)
    launch("pad.cu", "pad_backward", dx.size, (dy, dx, plan, i32(nd), i64(dx.size)))
    return dx
