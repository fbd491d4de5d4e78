"""Argument checks shared by the ops: clear errors before any kernel runs.

Every message names the function, the argument, what it got and what was expected.
"""

from __future__ import annotations

import math
import os

import numpy as np


class ArgumentError(ValueError, RuntimeError):
    """A bad argument to an op (a shape, a size, a value out of range). A ValueError, and a
    RuntimeError too: PyTorch raises RuntimeError for most of these, so code written for
    PyTorch (``except RuntimeError``) catches them as well."""


class ArgumentTypeError(TypeError, RuntimeError):
    """A tensor of a dtype the op does not take (PyTorch: a RuntimeError)."""


def _memory_bytes() -> int:
    """This machine's physical memory (0 where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def check_allocation(op: str, shape, itemsize: int = 4, what: str = "a result") -> None:
    """Refuse a result larger than the machine's memory before anything is built: the
    allocation would fail anyway, or (memory being overcommitted) bring in the out-of-memory
    killer, which may pick another process; index tables for such a size can also take
    minutes to build first."""
    need = math.prod(int(s) for s in shape) * itemsize
    have = _memory_bytes()
    if have and need > have:
        raise RuntimeError(f"{op}: {what} of shape {tuple(int(s) for s in shape)} would take "
                           f"{need / 2**30:.1f} GiB, more than this machine's "
                           f"{have / 2**30:.1f} GiB of memory")


def pair(value, name: str, op: str, minimum: int) -> tuple[int, int]:
    """``value`` as an (h, w) pair of ints, each at least ``minimum``."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (int(value), int(value))
    elif (isinstance(value, (tuple, list)) and len(value) == 2
          and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)):
        value = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    if min(value) < minimum:
        raise ArgumentError(f"{op}: {name} must be >= {minimum}, got {value}")
    return value


def positive_int(value, name: str, op: str) -> int:
    """``value`` as an int >= 1 (NumPy integers accepted, bools not)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ArgumentError(f"{op}: {name} must be a positive int, got {value!r}")
    return int(value)


def float_tensor(t, name: str, op: str, ndims: tuple[int, ...] | None = None):
    """Check that ``t`` is a float32 Tensor of one of the ranks ``ndims``."""
    from fastconv.tensor import Tensor

    if not isinstance(t, Tensor):
        raise TypeError(f"{op}: {name} must be a fastconv.Tensor, got {type(t).__name__} "
                        "(wrap arrays with fastconv.tensor(...))")
    if t.dtype != np.float32:
        raise ArgumentTypeError(f"{op}: {name} must be float32, got {t.dtype} "
                        "(fastconv computes in float32; convert with .float())")
    if ndims is not None and t.ndim not in ndims:
        want = " or ".join(f"{n}-D" for n in ndims)
        raise ArgumentError(f"{op}: {name} must be {want}, got shape {t.shape}")
    return t


def contiguous(xp, a):
    """C-contiguous float32 view or copy of ``a`` (what the kernels expect), of ``a``'s
    shape (ascontiguousarray alone turns a 0-d array into a 1-element 1-d one)."""
    out = xp.ascontiguousarray(a, dtype=np.float32)
    return out.reshape(()) if out.ndim != np.ndim(a) else out


def nonempty(t, name: str, op: str, first: int) -> None:
    """Refuse a zero size in ``t``'s dims from ``first`` on, as PyTorch's pooling, resizing,
    reflect / replicate padding, unfolding and transposed-convolution kernels do: an empty
    plane has no window or neighbour to read, and most of them take no empty channel list.
    Each op says where its checks start, as torch's differ: the channel dim (dim 0 of an
    unbatched input) for most, dim 1 whatever the rank for the adaptive max pools, the
    spatial dims only for adaptive average pooling. A zero batch passes (an empty result)."""
    for d in range(max(first, 0), t.ndim):
        if t.shape[d] == 0:
            raise ArgumentError(f"{op}: expected {name} to have a non-zero size in every "
                                f"non-batch dim, got shape {tuple(t.shape)} (dim {d} is 0)")
