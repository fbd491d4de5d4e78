"""A stand-in for CuPy that runs the CUDA backend on the CPU, for the tests.

fastconv/cuda/*.cu are compiled as C++ and driven by the CUDA backend (fastconv/backend/cuda)
through this stand-in. No GPU, no CuPy, no nvcc needed.

How it works
  * Each .cu file is compiled by g++ with a small prelude that turns the CUDA keywords into
    C++ (``__global__`` -> nothing, ``__shared__`` -> static, blockIdx / gridDim -> globals
    set before each call) and with ``FC_WARP=1``: one thread per block, so the warp-shuffle
    loops do not run and every block reduction degenerates to its single thread. A launch of
    ``grid`` blocks calls the kernel once per block; the grid-stride loops then cover every
    element exactly as on a GPU with a block size of 1. Compilation happens at the first
    launch, so loading the backend alone needs no compiler.
  * The stand-in CuPy module maps arrays to NumPy arrays, ``RawModule`` to the compiled
    library (through ctypes) and cuBLAS's ``sgemm`` / ``sgemmStridedBatched`` to a
    column-major NumPy implementation that reads and writes raw addresses with the given
    leading dimensions and batch strides, so the backend's pointer/stride arithmetic for
    cuBLAS is exercised too. Without cuBLAS the backend takes its ``cupy.matmul`` path.
  * Every array handed to a kernel must be C-contiguous (the kernels assume it): the
    stand-in launcher asserts it.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CUDA_DIR = ROOT / "fastconv" / "cuda"
CUDA_PKG = ROOT / "fastconv" / "backend" / "cuda"

PRELUDE = r"""
#include <cmath>
#include <cstring>
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __shared__ static
struct FcEmuDim3 { unsigned int x, y, z; };
static FcEmuDim3 threadIdx = {0u, 0u, 0u};
static FcEmuDim3 blockIdx = {0u, 0u, 0u};
static FcEmuDim3 blockDim = {1u, 1u, 1u};
static FcEmuDim3 gridDim = {1u, 1u, 1u};
static inline void __syncthreads() {}
template <class T> static inline T __shfl_down_sync(unsigned int, T v, int) { return v; }
template <class T> static inline T __shfl_xor_sync(unsigned int, T v, int) { return v; }
static inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, sizeof f); return f; }
static inline unsigned int __umulhi(unsigned int a, unsigned int b)
{ return (unsigned int)(((unsigned long long)a * (unsigned long long)b) >> 32); }
static inline float fc_emu_rsqrtf(float x) { return 1.0f / std::sqrt(x); }
#define rsqrtf fc_emu_rsqrtf
static inline float atomicAdd(float* p, float v) { float o = *p; *p = o + v; return o; }
template <class T> static inline T min(T a, T b) { return a < b ? a : b; }
template <class T> static inline T max(T a, T b) { return a > b ? a : b; }
"""

EPILOGUE = r"""
extern "C" void fc_emu_set_block(unsigned int gx, unsigned int gy, unsigned int bx,
                                 unsigned int by)
{
    gridDim.x = gx; gridDim.y = gy; gridDim.z = 1u;
    blockIdx.x = bx; blockIdx.y = by; blockIdx.z = 0u;
}
"""


# ------------------------------------------------------------------------------------------
# The stand-in CuPy
# ------------------------------------------------------------------------------------------

_CTYPES = {
    np.dtype(np.int32): ctypes.c_int32,
    np.dtype(np.int64): ctypes.c_int64,
    np.dtype(np.uint64): ctypes.c_uint64,
    np.dtype(np.float32): ctypes.c_float,
}


class _Kernel:
    def __init__(self, lib, name):
        self.lib, self.name = lib, name
        self.fn = getattr(lib, name)
        self.fn.restype = None

    def __call__(self, grid, block, args, **_):
        types_, values = [], []
        for a in args:
            if isinstance(a, np.ndarray):
                assert a.flags.c_contiguous, f"{self.name}: non-contiguous array argument"
                types_.append(ctypes.c_void_p)
                values.append(ctypes.c_void_p(a.ctypes.data))
            elif isinstance(a, np.generic) and a.dtype in _CTYPES:
                t = _CTYPES[a.dtype]
                types_.append(t)
                values.append(t(a.item()))
            else:
                raise TypeError(f"{self.name}: argument {a!r} is not a NumPy scalar of a fixed "
                                "C type (CuPy would pass a Python int as int64 / float as "
                                "double)")
        self.fn.argtypes = types_
        gx = int(grid[0])
        gy = int(grid[1]) if len(grid) > 1 else 1
        for by in range(gy):
            for bx in range(gx):
                self.lib.fc_emu_set_block(gx, gy, bx, by)
                self.fn(*values)


class _RawModule:
    build_dir: Path = Path(".")

    def __init__(self, code, options=(), **_):
        self.code = code
        self._lib = None

    def get_function(self, name):
        if self._lib is None:
            src = PRELUDE + self.code + EPILOGUE
            digest = hashlib.sha1(src.encode()).hexdigest()[:16]
            so = self.build_dir / f"emu_{digest}.so"
            if not so.exists():
                cpp = self.build_dir / f"emu_{digest}.cpp"
                cpp.write_text(src)
                r = subprocess.run(["g++", "-std=c++14", "-O1", "-shared", "-fPIC",
                                    "-DFC_WARP=1", "-o", str(so), str(cpp)],
                                   capture_output=True, text=True)
                assert r.returncode == 0, r.stderr[-4000:]
            self._lib = ctypes.CDLL(str(so))
            self._lib.fc_emu_set_block.argtypes = [ctypes.c_uint] * 4
        return _Kernel(self._lib, name)


def _strided(ptr, shape, strides_elems):
    """A float32 NumPy view of raw memory at ``ptr`` (element strides, all non-negative)."""
    extent = 1 + sum((n - 1) * s for n, s in zip(shape, strides_elems) if n > 0)
    buf = (ctypes.c_float * max(extent, 1)).from_address(ptr)
    base = np.ctypeslib.as_array(buf)
    return np.lib.stride_tricks.as_strided(base, shape=shape,
                                           strides=tuple(4 * s for s in strides_elems))


def _cm(ptr, trans, rows, cols, ld):
    """op(X) for a column-major X at ptr: op(X) is rows x cols."""
    if not trans:            # X is rows x cols, X[i, j] at i + j*ld
        return _strided(ptr, (rows, cols), (1, ld))
    return _strided(ptr, (cols, rows), (1, ld)).T   # X is cols x rows


def _sgemm_strided_batched(handle, transa, transb, m, n, k, alpha, A, lda, sA, B, ldb, sB,
                           beta, C, ldc, sC, batch):
    assert lda >= max(1, (k if transa else m)), "lda too small for cuBLAS"
    assert ldb >= max(1, (n if transb else k)), "ldb too small for cuBLAS"
    assert ldc >= max(1, m), "ldc too small for cuBLAS"
    for i in range(batch):
        a = _cm(A + 4 * i * sA, transa, m, k, lda).astype(np.float64)
        b = _cm(B + 4 * i * sB, transb, k, n, ldb).astype(np.float64)
        c = _strided(C + 4 * i * sC, (m, n), (1, ldc))
        r = alpha * (a @ b)
        if beta != 0.0:
            r += beta * c.astype(np.float64)
        c[...] = r.astype(np.float32)


def _sgemm(handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
    _sgemm_strided_batched(handle, transa, transb, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta,
                           C, ldc, 0, 1)


def _fake_cupy(build_dir: Path, with_cublas: bool, devices: int = 1):
    cp = types.ModuleType("cupy")
    cp.ndarray = np.ndarray
    for name in ("empty", "zeros", "ones", "empty_like", "zeros_like", "ascontiguousarray",
                 "asarray", "matmul", "array", "arange", "float32", "int32", "int64", "uint64"):
        setattr(cp, name, getattr(np, name))
    cp.asnumpy = lambda a: np.array(a)
    cp.lib = types.SimpleNamespace(
        stride_tricks=types.SimpleNamespace(as_strided=np.lib.stride_tricks.as_strided))

    class _Device:
        def __init__(self, i=0):
            self.id = i
            self.attributes = {"MultiProcessorCount": 2}

        def synchronize(self):
            pass

    cuda = types.ModuleType("cupy.cuda")
    cuda.runtime = types.SimpleNamespace(getDeviceCount=lambda: devices, getDevice=lambda: 0)
    cuda.Device = _Device
    cuda.device = types.SimpleNamespace(get_cublas_handle=lambda: 0)
    if with_cublas:
        cuda.cublas = types.SimpleNamespace(
            sgemm=_sgemm, sgemmStridedBatched=_sgemm_strided_batched,
            setMathMode=lambda h, m: None, CUBLAS_DEFAULT_MATH=0,
            CUBLAS_TF32_TENSOR_OP_MATH=3)
    cp.cuda = cuda
    raw = type("RawModule", (_RawModule,), {"build_dir": build_dir})
    cp.RawModule = raw
    return cp


def _forget(name):
    for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
        del sys.modules[key]


def load_emulated_backend(build_dir: Path, with_cublas: bool = True, devices: int = 1):
    """A fresh copy of the fastconv/backend/cuda package loaded against the stand-in CuPy,
    under its own name (its submodules are registered under that name, which relative
    imports need); the real ``fastconv.backend.cuda`` is left alone."""
    import fastconv.backend  # noqa: F401  (the package the backend imports from)

    fake = _fake_cupy(build_dir, with_cublas, devices)
    saved = {k: sys.modules.get(k) for k in ("cupy", "cupy.cuda")}
    sys.modules["cupy"] = fake
    sys.modules["cupy.cuda"] = fake.cuda
    name = "fastconv.backend._cuda_emulated_" + ("cublas" if with_cublas else "matmul")
    _forget(name)
    try:
        spec = importlib.util.spec_from_file_location(
            name, CUDA_PKG / "__init__.py", submodule_search_locations=[str(CUDA_PKG)])
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        try:
            spec.loader.exec_module(mod)
        except BaseException:
            _forget(name)
            raise
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    # NumPy arrays have no device pointer: cuBLAS's stand-in reads their host addresses.
    mod.blas.device_pointer = lambda a: a.ctypes.data
    assert mod.blas._use_raw_cublas is with_cublas
    return mod
