"""fastconv: a small convolutional-network library.

NumPy arrays in, a PyTorch-style API on top (Tensor with define-by-run autograd,
``fastconv.functional``, ``fastconv.nn``, ``fastconv.optim``), and its own kernels
underneath: compiled C++ on the CPU (``fastconv._C``) and CUDA through CuPy.
"""

import builtins as _builtins

from fastconv.backend import get_backend as _get_backend

_cpu = _get_backend("cpu")  # fail at import, with the rebuild command, if _C is missing or stale

from fastconv import (
    cuda,
    functional,
    linalg,
    nn,
    special,
)
from fastconv.autograd import (
    enable_grad,
    inference_mode,
    is_grad_enabled,
    is_inference_mode_enabled,
    no_grad,
    set_grad_enabled,
)
from fastconv.creation import *
from fastconv.creation import __all__ as _creation_names
from fastconv.device import device
from fastconv.dtypes import ALIASES as _DTYPE_ALIASES
from fastconv.dtypes import (
    DtypeWarning,
    bfloat16,
    bool_,
    double,
    dtype,
    float16,
    float32,
    float64,
    half,
    int8,
    int16,
    int32,
    int64,
    long,
    short,
    uint8,
)
from fastconv.random import (
    default_generator,
    get_rng_state,
    initial_seed,
    manual_seed,
    seed,
    set_rng_state,
)
from fastconv.memory_formats import (
    channels_last,
    channels_last_3d,
    contiguous_format,
    memory_format,
    preserve_format,
)
from fastconv.tensor import Size, Tensor, tensor
from fastconv.toplevel import *
from fastconv.toplevel import __all__ as _toplevel_names

# PyTorch's dtype names that shadow Python builtins inside this module only (fastconv.float,
# fastconv.int, fastconv.bool), as torch.float / torch.int / torch.bool do.
globals().update(float=_DTYPE_ALIASES["float"], int=_DTYPE_ALIASES["int"],
                 bool=_DTYPE_ALIASES["bool"])

__version__ = "0.1.0"


def set_num_threads(n: int) -> None:
    """Threads of the CPU kernels (OpenMP), which also run OpenBLAS's parts of each matrix
    product. The default is OMP_NUM_THREADS if set, else one per core."""
    if isinstance(n, _builtins.bool) or not isinstance(n, _builtins.int) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive int, got {n!r}")
    _cpu.set_num_threads(n)


def get_num_threads() -> int:
    """Threads the CPU kernels use (see set_num_threads)."""
    return _cpu.get_num_threads()

def compile(model=None, *, fullgraph=False, dynamic=None, backend="inductor", mode=None,
            options=None, disable=False):
    """torch.compile's signature; returns ``model`` (a Module or a function) unchanged.

    fastconv has no graph compiler: it runs eagerly, with its kernels picked per shape. The
    result computes what ``model`` computes, so a script's ``model = torch.compile(model)``
    keeps working. Used as a decorator with arguments (``@compile(mode=...)``), it returns
    the identity decorator."""
    if model is None:
        return lambda fn: fn
    return model


__all__ = [
    "Size", "Tensor", "tensor", "channels_last", "channels_last_3d", "contiguous_format",
    "memory_format", "preserve_format", "no_grad", "enable_grad", "inference_mode", "set_grad_enabled",
    "is_grad_enabled", "is_inference_mode_enabled", "manual_seed", "seed", "default_generator",
    "get_rng_state", "set_rng_state", "set_num_threads", "get_num_threads", "functional", "nn",
    "optim", "save", "load", "cuda", "device", "dtype", "DtypeWarning", "float32", "float64",
    "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool_", "float",
    "double", "half", "long", "int", "short", "bool", "initial_seed", "compile", "amp",
    "autocast", "is_autocast_enabled", "get_autocast_dtype", "backends", "profiler", "testing",
    "linalg", "special", "func", "vmap",
] + list(_creation_names) + list(_toplevel_names)


_BACKEND_SWITCHES = ("use_deterministic_algorithms", "are_deterministic_algorithms_enabled",
                     "is_deterministic_algorithms_warn_only_enabled",
                     "set_float32_matmul_precision", "get_float32_matmul_precision")


def __getattr__(name):
    # optim, utils, onnx, amp, backends, jit, profiler, testing, func and the checkpoint
    # functions load on first use (they pull in more modules).
    if name in ("optim", "utils", "onnx", "amp", "backends", "jit", "profiler", "testing",
                "func"):
        import importlib

        return importlib.import_module(f"fastconv.{name}")
    if name in ("autocast", "is_autocast_enabled", "get_autocast_dtype"):
        from fastconv import amp

        return getattr(amp, name)
    if name in _BACKEND_SWITCHES:
        from fastconv import backends

        return getattr(backends, name)
    if name == "vmap":
        from fastconv import func

        return func.vmap
    if name in ("save", "load"):
        from fastconv import checkpoint

        return getattr(checkpoint, name)
    raise AttributeError(f"module 'fastconv' has no attribute {name!r}")
