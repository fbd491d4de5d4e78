"""Data types: PyTorch's names for them, and fastconv's one dtype policy.

``fastconv.float32`` and friends are NumPy dtypes, so ``t.dtype == fastconv.float32`` and
``t.dtype == np.float32`` both hold for a float32 tensor.

The dtype policy (the one place it is written down)
---------------------------------------------------
fastconv computes in float32. There are no float64 (or float16) tensors: every kernel, the
autograd engine and the optimizers work on float32, as JAX does when x64 is not enabled.

* Floating-point data of another width is converted to float32 *with a warning*
  (:class:`DtypeWarning`, a UserWarning; Python shows it once per call site), never silently:
  ``fastconv.tensor(np.float64 array)``, ``as_tensor``, ``from_numpy`` (which then cannot share
  memory, and says so), ``Tensor.double()``, ``Tensor.to(fastconv.float64)``,
  ``Module.double()`` and a factory's ``dtype=fastconv.float64``. PyTorch would keep float64
  in each of these cases. Python floats and lists of them become float32 without a warning,
  as in PyTorch (its default dtype is float32). ``fastconv.Tensor(data)`` always makes float32
  (or keeps integers) like ``torch.Tensor(data)``.
* ``fastconv.bfloat16`` (ml_dtypes' NumPy dtype) names autocast's lower precision
  (:mod:`fastconv.amp`: bfloat16 values in float32 storage). bfloat16 data and
  ``Tensor.bfloat16()`` become float32 with a warning, like float16.
* Integer and bool tensors exist (class targets, indices, masks, counts). They follow
  PyTorch's promotion: integer (op) float tensor or Python float -> float32; integer /
  integer -> float32 (true division); integer (op) integer -> the wider integer type;
  ``exp``, ``log``, ``sqrt``, ``sigmoid``, ``tanh``, ``softmax``, ``log_softmax`` of an
  integer tensor -> float32; ``sum`` of integers -> int64; ``abs``, ``neg``, ``clamp``,
  ``max``/``min``, ``sort``, ``topk``, shape ops keep the integer type.
  ``mean``, ``std``, ``var`` and ``norm`` of an integer tensor raise as PyTorch does
  (they cannot infer a floating output dtype); convert with ``.float()`` first.
* An in-place op keeps its tensor's dtype; a float result into an integer tensor raises
  PyTorch's "result type Float can't be cast to the desired output type Long".
* Only floating-point tensors can require a gradient.
* The neural-network ops (conv2d, pooling, norms, losses) take float32 and raise a TypeError
  on integer input.
"""

from __future__ import annotations

import warnings

import ml_dtypes
import numpy as np

dtype = np.dtype  # the class of the dtype objects, like torch.dtype

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
float16 = np.dtype(np.float16)
bfloat16 = np.dtype(ml_dtypes.bfloat16)  # autocast's lower precision (fastconv.amp)
int64 = np.dtype(np.int64)
int32 = np.dtype(np.int32)
int16 = np.dtype(np.int16)
int8 = np.dtype(np.int8)
uint8 = np.dtype(np.uint8)
bool_ = np.dtype(np.bool_)

double, half, long, short = float64, float16, int64, int16

# PyTorch's aliases (fastconv.float, .double, .half, .long, .int, .short, .bool).
ALIASES = {
    "float32": float32, "float": float32, "float64": float64, "double": float64,
    "float16": float16, "half": float16, "bfloat16": bfloat16, "int64": int64, "long": int64, "int32": int32,
    "int": int32, "int16": int16, "short": int16, "int8": int8, "uint8": uint8, "bool": bool_,
}


class DtypeWarning(UserWarning):
    """A dtype that fastconv does not compute in was converted to float32."""


def warn_float32(what: str, from_dtype, stacklevel: int = 3) -> None:
    """Say that ``what`` of dtype ``from_dtype`` became float32 (see the module's policy)."""
    warnings.warn(
        f"{what}: fastconv computes in float32 and has no {np.dtype(from_dtype).name} tensors, "
        f"so float32 is used instead (PyTorch would keep {np.dtype(from_dtype).name}). Convert "
        "to float32 yourself (.astype(np.float32), .float()) to silence this warning; see "
        "fastconv.dtypes for the policy.",
        DtypeWarning, stacklevel=stacklevel + 1)


def resolve(dt):
    """A NumPy dtype for ``dt`` (a fastconv/NumPy dtype, a Python type or a name), or None."""
    if dt is None:
        return None
    if isinstance(dt, str) and dt in ALIASES:
        return ALIASES[dt]
    if dt is float:
        return float32
    if dt is int:
        return int64
    if dt is bool:
        return bool_
    try:
        return np.dtype(dt)
    except TypeError:
        raise TypeError(f"dtype must be a fastconv dtype (fastconv.float32, ...), got {dt!r}") \
            from None


def storable(dt, what: str, stacklevel: int = 3):
    """The dtype a tensor of requested dtype ``dt`` gets: other floats become float32 (warned)."""
    dt = resolve(dt)
    if (dt.kind == "f" and dt != float32) or dt == bfloat16:
        warn_float32(what, dt, stacklevel + 1)
        return float32
    if dt.kind not in "biuf":
        raise TypeError(f"{what}: fastconv has no {dt} tensors")
    return dt


def is_floating(dt) -> bool:
    return np.dtype(dt).kind == "f"


def promote(a_dtype, b):
    """PyTorch's result dtype of a binary arithmetic op between a tensor of ``a_dtype`` and
    ``b`` (a dtype or a Python scalar). Float wins (as float32); bool and ints widen."""
    a_dtype = np.dtype(a_dtype)
    if isinstance(b, bool):
        return a_dtype
    if isinstance(b, float):
        return a_dtype if a_dtype.kind == "f" else float32
    if isinstance(b, int):
        return int64 if a_dtype.kind == "b" else a_dtype
    b = np.dtype(b)
    if a_dtype.kind == "f" or b.kind == "f":
        return float32
    return np.promote_types(a_dtype, b)
