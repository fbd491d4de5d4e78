"""Compiling and launching the kernels of ``fastconv/cuda/*.cu``, and the argument helpers
every op module of the CUDA backend uses.

Each .cu file is compiled at run time by NVRTC through :class:`cupy.RawModule`, once per file
and device (CuPy also keeps the binaries on disk, so only the very first use on a machine pays
for the compilation). Every kernel runs 256-thread blocks over a grid-stride loop; its scalar
arguments are NumPy scalars of the exact C type (a Python int would be passed as int64).
"""

from __future__ import annotations

from pathlib import Path

import cupy
import numpy as np


def device_count() -> int:
    """Number of CUDA devices CuPy can see (0 when the driver or the GPU is missing)."""
    try:
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # CUDARuntimeError, missing libcuda, ...
        return 0


_CUDA_SRC_DIR = Path(__file__).resolve().parents[2] / "cuda"   # fastconv/cuda
_NVRTC_OPTIONS: tuple = ()          # CuPy adds the architecture of the current device
BLOCK = 256                        # threads per block for every kernel (a multiple of 32)
MAX_GRID = 1 << 20                 # the kernels use grid-stride loops beyond this
_modules: dict = {}                 # (file, device) -> cupy.RawModule
_functions: dict = {}               # (file, kernel, device) -> cupy.RawKernel
NULL = np.uint64(0)                # a null device pointer passed by value
_sm_count: dict = {}


def current_device() -> int:
    return int(cupy.cuda.runtime.getDevice())


def get_kernel(file: str, name: str):
    """The kernel ``name`` of ``fastconv/cuda/<file>``, compiled once per file and device."""
    dev = current_device()
    key = (file, name, dev)
    fn = _functions.get(key)
    if fn is None:
        mkey = (file, dev)
        mod = _modules.get(mkey)
        if mod is None:
            path = _CUDA_SRC_DIR / file
            try:
                source = path.read_text()
            except OSError as exc:  # pragma: no cover - a broken installation
                raise RuntimeError(
                    f"fastconv: CUDA source {path} is missing; reinstall fastconv "
                    "(the .cu files ship as package data)"
                ) from exc
            mod = cupy.RawModule(code=source, options=_NVRTC_OPTIONS)
            _modules[mkey] = mod
        fn = mod.get_function(name)
        _functions[key] = fn
    return fn


def grid(n: int, per_block: int = BLOCK) -> tuple:
    return (max(1, min((int(n) + per_block - 1) // per_block, MAX_GRID)),)


def launch(file: str, name: str, n: int, args: tuple, block: int = BLOCK) -> None:
    """Launch a grid-stride kernel over ``n`` work items (one thread each)."""
    if n <= 0:
        return
    get_kernel(file, name)(grid(n, block), (block,), args)


def sms() -> int:
    dev = current_device()
    n = _sm_count.get(dev)
    if n is None:
        try:
            n = int(cupy.cuda.Device(dev).attributes["MultiProcessorCount"])
        except Exception:  # pragma: no cover
            n = 80
        _sm_count[dev] = n
    return n


def i32(v) -> np.int32:
    return np.int32(v)


def i64(v) -> np.int64:
    return np.int64(v)


def f32(v) -> np.float32:
    return np.float32(v)


def device_f32(a, name: str):
    """``a`` as a C-contiguous float32 CuPy array; a NumPy array here is a device mix-up."""
    if not isinstance(a, cupy.ndarray):
        raise TypeError(
            f"CUDA backend: {name} must be a CUDA (CuPy) array, got {type(a).__module__}."
            f"{type(a).__name__}; move every input of the op to the same device first "
            "(Tensor.to('cuda'))"
        )
    if a.dtype != np.float32 or not a.flags.c_contiguous:
        a = cupy.ascontiguousarray(a, dtype=np.float32)
    return a


def device_f32_or_none(a, name: str):
    return None if a is None else device_f32(a, name)


def device_pointer(a) -> int:
    """Device address of the first element of ``a`` (view offsets included)."""
    return a.data.ptr
