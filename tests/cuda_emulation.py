"""A stand-in for CuPy that runs the CUDA backend on the CPU, for the tests.

fastconv/cuda/*.cu are compiled as C++ and driven by the CUDA backend (fastconv/backend/cuda)
through this stand-in. No GPU, no CuPy, no nvcc needed.

How it works
  * Each .cu file is compiled by g++ behind tests/cuda_emulation.hpp, the device runtime:
    a launch runs every block of the grid with its real blockDim threads as cooperative
    fibers, with real barriers, 32-lane warp intrinsics, per-block shared memory and the
    checks listed at the top of that header. Compilation happens at the first launch, so
    loading the backend alone needs no compiler.
  * A launch is checked as CUDA would check it: grid and block within the device limits,
    static + dynamic shared memory within the 48 KiB default, and every argument of the C
    type of its parameter (an array's dtype that of the pointer; CuPy passes a NumPy scalar
    by its own size, so a mismatch would be garbage on a GPU, not an error).
  * ``thread_order(...)`` (or ``FC_EMU_ORDER=ascending|descending|random:<seed>``) sets the
    order in which threads run between sync points, and blocks run: a kernel whose result
    depends on it has a race.
  * The stand-in CuPy module maps arrays to NumPy arrays (``empty`` ones are filled with 0xff
    bytes, NaN as float32, like the stale memory a real pool hands out), ``RawModule`` to the
    compiled library (through ctypes) and cuBLAS's ``sgemm`` / ``sgemmStridedBatched`` to a
    column-major NumPy implementation that reads and writes raw addresses with the given
    leading dimensions and batch strides, so the backend's pointer/stride arithmetic for
    cuBLAS is exercised too; ``gemmEx`` / ``gemmStridedBatchedEx`` the same for bfloat16
    operands (uint16 bits) with float32 output, alpha and beta read from host pointers.
    Without cuBLAS the backend takes its ``cupy.matmul`` path.
  * Every array handed to a kernel must be C-contiguous (the kernels assume it): the
    stand-in launcher asserts it.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib.util
import itertools
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CUDA_DIR = ROOT / "fastconv" / "cuda"
CUDA_PKG = ROOT / "fastconv" / "backend" / "cuda"
RUNTIME = Path(__file__).resolve().with_name("cuda_emulation.hpp")
CXXFLAGS = ("-std=c++14", "-O1", "-shared", "-fPIC", "-Wall", "-Wno-unused-function")

KERNEL_RE = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(')
# extern __shared__ [__align__(n)] T name[];  ->  a pointer to the runtime's dynamic buffer
DYN_SHARED_RE = re.compile(r"extern\s+__shared__\s+(?:__align__\s*\(\s*\d+\s*\)\s+)?"
                           r"(?P<type>[A-Za-z_][\w\s]*?)\s+(?P<name>\w+)\s*\[\s*\]\s*;")

# CUDA's limits on a launch (compute capability 7.0 and later) and the shared memory a block
# gets without opting in (cudaFuncAttributeMaxDynamicSharedMemorySize).
MAX_BLOCK_THREADS = 1024
MAX_BLOCK = (1024, 1024, 64)
MAX_GRID = (2**31 - 1, 65535, 65535)
SHARED_LIMIT = 48 * 1024


class LaunchError(RuntimeError):
    """What CUDA would report for a launch: a bad configuration, or a failed runtime check."""


# ------------------------------------------------------------------------------------------
# Thread order
# ------------------------------------------------------------------------------------------

ORDERS = {"ascending": 0, "descending": 1, "random": 2}


def _parse_order(text: str) -> tuple[str, int]:
    mode, _, seed = text.partition(":")
    if mode not in ORDERS:
        raise ValueError(f"FC_EMU_ORDER: expected ascending, descending or random:<seed>, "
                         f"got {text!r}")
    return mode, int(seed or 0)


_order = _parse_order(os.environ.get("FC_EMU_ORDER", "ascending"))
_launches = itertools.count()
_checks_only: list | None = None     # the launches checked but not run, inside checks_only()


@contextlib.contextmanager
def thread_order(mode: str, seed: int = 0):
    """Run the launches inside in ``mode`` order (``random``: a fresh permutation per launch
    and per round between sync points, drawn from ``seed``)."""
    global _order
    saved, _order = _order, _parse_order(f"{mode}:{seed}")
    try:
        yield
    finally:
        _order = saved


@contextlib.contextmanager
def checks_only():
    """Inside, launches are checked (configuration, shared memory, argument types) but not
    run: for shapes too large to emulate. Yields the list of (kernel, grid, block) checked."""
    global _checks_only
    saved, _checks_only = _checks_only, []
    try:
        yield _checks_only
    finally:
        _checks_only = saved


# ------------------------------------------------------------------------------------------
# The stand-in CuPy
# ------------------------------------------------------------------------------------------

_CTYPES = {
    np.dtype(np.int32): ctypes.c_int32,
    np.dtype(np.int64): ctypes.c_int64,
    np.dtype(np.uint32): ctypes.c_uint32,
    np.dtype(np.uint64): ctypes.c_uint64,
    np.dtype(np.float32): ctypes.c_float,
    np.dtype(np.float64): ctypes.c_double,
}


def _code(dtype: np.dtype) -> str:
    """The runtime's name of a C type (cuda_emulation.hpp, fcemu::code): f4, i8, u8, ..."""
    return {"f": "f", "i": "i", "u": "u"}[dtype.kind] + str(dtype.itemsize)


class _Config(ctypes.Structure):   # fcemu::Config
    _fields_ = [("grid", ctypes.c_uint * 3), ("block", ctypes.c_uint * 3),
                ("dyn_smem", ctypes.c_ulonglong), ("order", ctypes.c_int),
                ("seed", ctypes.c_ulonglong)]


def _dims(value, name, kernel) -> tuple[int, int, int]:
    dims = tuple(int(v) for v in (value if isinstance(value, tuple) else (value,)))
    if not 1 <= len(dims) <= 3:
        raise LaunchError(f"{kernel}: {name} must have 1 to 3 dimensions, got {value!r}")
    return dims + (1,) * (3 - len(dims))


class _Kernel:
    def __init__(self, module, name):
        self.name = name
        self.static_shared = module.static_shared.get(name, 0)
        self.launch = getattr(module.lib, f"fc_emu_launch_{name}")
        self.launch.restype = ctypes.c_int
        self.launch.argtypes = [ctypes.POINTER(_Config), ctypes.c_void_p, ctypes.c_char_p,
                                ctypes.c_size_t]
        sig = getattr(module.lib, f"fc_emu_signature_{name}")
        sig.restype = ctypes.c_char_p
        self.params = sig().decode().split()

    def _value(self, i, a, param):
        """A ctypes value of argument ``a`` for parameter ``param``, or a TypeError."""
        where = f"{self.name}: argument {i}"
        if isinstance(a, np.ndarray):
            assert a.flags.c_contiguous, f"{where}: non-contiguous array argument"
            if not param.startswith("p:"):
                raise TypeError(f"{where}: an array for a by-value {param} parameter")
            if param != "p:v" and param != "p:" + _code(a.dtype):
                raise TypeError(f"{where}: a {a.dtype} array for a {param[2:]} pointer")
            return ctypes.c_void_p(a.ctypes.data)
        if isinstance(a, np.generic) and a.dtype in _CTYPES:
            code = _code(a.dtype)
            if param.startswith("p:") and code == "u8" and int(a) == 0:
                return ctypes.c_void_p(0)      # NULL passed as np.uint64(0)
            if code != param:
                raise TypeError(f"{where}: a {a.dtype} scalar for a {param} parameter (CuPy "
                                "passes it by its own size: garbage on a GPU)")
            return _CTYPES[a.dtype](a.item())
        raise TypeError(f"{where}: {a!r} is not a NumPy scalar of a fixed C type (CuPy would "
                        "pass a Python int as int64 / float as double)")

    def __call__(self, grid, block, args, shared_mem=0, **_):
        grid, block = _dims(grid, "grid", self.name), _dims(block, "block", self.name)
        if (min(grid + block) < 1 or any(g > m for g, m in zip(grid, MAX_GRID))
                or any(b > m for b, m in zip(block, MAX_BLOCK))
                or block[0] * block[1] * block[2] > MAX_BLOCK_THREADS):
            raise LaunchError(f"{self.name}: invalid configuration argument: grid {grid}, "
                              f"block {block} (limits: grid {MAX_GRID}, block {MAX_BLOCK}, "
                              f"{MAX_BLOCK_THREADS} threads)")
        shared_mem = int(shared_mem)
        if shared_mem < 0 or self.static_shared + shared_mem > SHARED_LIMIT:
            raise LaunchError(f"{self.name}: {self.static_shared} bytes of static + "
                              f"{shared_mem} of dynamic shared memory exceed the "
                              f"{SHARED_LIMIT}-byte limit of a block")
        if len(args) != len(self.params):
            raise TypeError(f"{self.name}: {len(args)} arguments for {len(self.params)} "
                            "parameters")
        values = [self._value(i, a, p) for i, (a, p) in enumerate(zip(args, self.params))]
        if _checks_only is not None:
            _checks_only.append((self.name, grid, block))
            return
        argv = (ctypes.c_void_p * max(len(values), 1))(
            *[ctypes.addressof(v) for v in values])
        mode, seed = _order
        cfg = _Config((ctypes.c_uint * 3)(*grid), (ctypes.c_uint * 3)(*block), shared_mem,
                      ORDERS[mode], seed * 1_000_003 + next(_launches))
        err = ctypes.create_string_buffer(1024)
        if self.launch(ctypes.byref(cfg), argv, err, len(err)):
            raise LaunchError(f"{self.name}: {err.value.decode(errors='replace')}")


def _emulated_source(code: str) -> str:
    """The .cu text as the runtime compiles it: header, the source with its line numbers
    kept, and one typed entry point per kernel."""
    body = DYN_SHARED_RE.sub(
        lambda m: f"{m['type']}* const {m['name']} = "
                  f"reinterpret_cast<{m['type']}*>(fcemu::fc_emu_dyn_smem);", code)
    entries = "".join(
        f'extern "C" int fc_emu_launch_{k}(const fcemu::Config* c, void** a, char* e, '
        f"size_t n)\n{{ return fcemu::launch({k}, c, a, e, n); }}\n"
        f'extern "C" const char* fc_emu_signature_{k}() {{ return fcemu::signature({k}); }}\n'
        for k in KERNEL_RE.findall(code))
    return f'#include "{RUNTIME}"\n#line 1\n{body}\n{entries}'


def _static_shared(so: Path) -> dict[str, int]:
    """Bytes of static __shared__ memory per kernel: the sizes of the function-local statics
    (mangled _ZZ<len><kernel>E...) in the section the runtime puts them in."""
    out = subprocess.run(["nm", "-S", "--defined-only", str(so)], capture_output=True,
                         text=True, check=True).stdout
    symbols = [line.split() for line in out.splitlines()]
    bounds = {p[-1]: int(p[0], 16) for p in symbols
              if p[-1] in ("__start_fc_emu_shared", "__stop_fc_emu_shared")}
    sizes: dict[str, int] = {}
    for p in symbols:
        m = re.match(r"_ZZ(\d+)", p[-1])
        if len(p) != 4 or m is None or not (bounds.get("__start_fc_emu_shared", 0)
                                            <= int(p[0], 16)
                                            < bounds.get("__stop_fc_emu_shared", 0)):
            continue
        kernel = p[-1][m.end():m.end() + int(m.group(1))]
        sizes[kernel] = sizes.get(kernel, 0) + int(p[1], 16)
    return sizes


class _RawModule:
    build_dir: Path = Path(".")

    def __init__(self, code, options=(), **_):
        self.code = code
        self.lib = None
        self.static_shared: dict[str, int] = {}

    def _build(self):
        src = _emulated_source(self.code)
        digest = hashlib.sha1((src + RUNTIME.read_text() + " ".join(CXXFLAGS)).encode())
        so = self.build_dir / f"emu_{digest.hexdigest()[:16]}.so"
        if not so.exists():
            cpp = so.with_suffix(".cpp")
            cpp.write_text(src)
            tmp = so.parent / f"{so.name}.{os.getpid()}.tmp"   # parallel builds: no torn .so
            r = subprocess.run(["g++", *CXXFLAGS, "-o", str(tmp), str(cpp)],
                               capture_output=True, text=True, check=False)
            assert r.returncode == 0, r.stderr[-4000:]
            tmp.replace(so)
        self.lib = ctypes.CDLL(str(so.resolve()))
        self.static_shared = _static_shared(so)

    def get_function(self, name):
        if self.lib is None:
            self._build()
        return _Kernel(self, name)


def compile_module(code: str, build_dir: Path) -> _RawModule:
    """The stand-in ``cupy.RawModule(code=code)``, building into ``build_dir``."""
    module = type("RawModule", (_RawModule,), {"build_dir": build_dir})
    return module(code=code)


def _strided(ptr, shape, strides_elems, ctype=ctypes.c_float):
    """A NumPy view of raw memory at ``ptr`` (element strides, all non-negative): float32, or
    the elements of ``ctype``."""
    extent = 1 + sum((n - 1) * s for n, s in zip(shape, strides_elems) if n > 0)
    buf = (ctype * max(extent, 1)).from_address(ptr)
    base = np.ctypeslib.as_array(buf)
    size = ctypes.sizeof(ctype)
    return np.lib.stride_tricks.as_strided(base, shape=shape,
                                           strides=tuple(size * s for s in strides_elems))


def _cm(ptr, trans, rows, cols, ld, ctype=ctypes.c_float):
    """op(X) for a column-major X at ptr: op(X) is rows x cols."""
    if not trans:            # X is rows x cols, X[i, j] at i + j*ld
        return _strided(ptr, (rows, cols), (1, ld), ctype)
    return _strided(ptr, (cols, rows), (1, ld), ctype).T   # X is cols x rows


# cublasGemmEx's types as fastconv passes them: bfloat16 inputs, float32 output and sums
CUDA_R_32F, CUDA_R_16BF, CUBLAS_COMPUTE_32F = 0, 14, 68


def _bf16_values(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def _gemm_strided_batched_ex(handle, transa, transb, m, n, k, alpha, A, atype, lda, sA, B,
                             btype, ldb, sB, beta, C, ctype, ldc, sC, batch, compute, algo):
    """cublasGemmStridedBatchedEx for bfloat16 A and B, float32 C: alpha and beta are host
    pointers to float32 (the handle's default pointer mode)."""
    assert (atype, btype, ctype, compute) == (CUDA_R_16BF, CUDA_R_16BF, CUDA_R_32F,
                                              CUBLAS_COMPUTE_32F), "unexpected GemmEx types"
    assert lda >= max(1, (k if transa else m)), "lda too small for cuBLAS"
    assert ldb >= max(1, (n if transb else k)), "ldb too small for cuBLAS"
    assert ldc >= max(1, m), "ldc too small for cuBLAS"
    alpha = ctypes.c_float.from_address(alpha).value
    beta = ctypes.c_float.from_address(beta).value
    for i in range(batch):
        a = _bf16_values(_cm(A + 2 * i * sA, transa, m, k, lda, ctypes.c_uint16))
        b = _bf16_values(_cm(B + 2 * i * sB, transb, k, n, ldb, ctypes.c_uint16))
        c = _strided(C + 4 * i * sC, (m, n), (1, ldc))
        r = alpha * (a @ b)
        if beta != 0.0:
            r += beta * c.astype(np.float64)
        c[...] = r.astype(np.float32)


def _gemm_ex(handle, transa, transb, m, n, k, alpha, A, atype, lda, B, btype, ldb, beta, C,
             ctype, ldc, compute, algo):
    _gemm_strided_batched_ex(handle, transa, transb, m, n, k, alpha, A, atype, lda, 0, B,
                             btype, ldb, 0, beta, C, ctype, ldc, 0, 1, compute, algo)


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


def _poisoned(a: np.ndarray) -> np.ndarray:
    """``a`` filled with 0xff bytes: NaN as float32, -1 as int, so an output element that no
    kernel wrote shows."""
    ctypes.memset(a.ctypes.data, 0xFF, a.nbytes)
    return a


def _fake_cupy(build_dir: Path, with_cublas: bool, devices: int = 1):
    cp = types.ModuleType("cupy")
    cp.ndarray = np.ndarray
    for name in ("zeros", "ones", "zeros_like", "ascontiguousarray", "asarray", "matmul",
                 "array", "arange", "abs", "float32", "int32", "int64", "uint64"):
        setattr(cp, name, getattr(np, name))
    cp.empty = lambda *a, **k: _poisoned(np.empty(*a, **k))
    cp.empty_like = lambda *a, **k: _poisoned(np.empty_like(*a, **k))
    cp.asnumpy = lambda a: np.array(a)
    cp.lib = types.SimpleNamespace(
        stride_tricks=types.SimpleNamespace(as_strided=np.lib.stride_tricks.as_strided))

    class _Device:
        def __init__(self, i=0):
            self.id = i
            self.attributes = {"MultiProcessorCount": 2}
            self.compute_capability = "90"  # bfloat16 tensor cores (checked by blas.py)

        def synchronize(self):
            pass

    cuda = types.ModuleType("cupy.cuda")
    cuda.runtime = types.SimpleNamespace(getDeviceCount=lambda: devices, getDevice=lambda: 0)
    cuda.Device = _Device
    cuda.device = types.SimpleNamespace(get_cublas_handle=lambda: 0)
    if with_cublas:
        cuda.cublas = types.SimpleNamespace(
            sgemm=_sgemm, sgemmStridedBatched=_sgemm_strided_batched,
            gemmEx=_gemm_ex, gemmStridedBatchedEx=_gemm_strided_batched_ex,
            setMathMode=lambda h, m: None, CUBLAS_DEFAULT_MATH=0,
            CUBLAS_TF32_TENSOR_OP_MATH=3)
    cp.cuda = cuda
    cp.RawModule = lambda code, options=(), **_: compile_module(code, build_dir)
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
