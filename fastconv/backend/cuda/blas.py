"""GEMMs on cuBLAS, and the TensorFloat-32 switch.

Row-major float32 matrices (or batches of them, with a zero batch stride for a broadcast
operand) are handed to ``cublasSgemm`` / ``cublasSgemmStridedBatched`` as raw pointers, so no
CuPy array is created per GEMM and results can accumulate with beta = 1. Set
``FASTCONV_CUDA_GEMM=matmul`` to route every GEMM through ``cupy.matmul`` on the same views
instead (a debugging aid: same results, more copies).
"""

from __future__ import annotations

import os

import cupy
import numpy as np

from .launch import device_pointer

try:  # direct cuBLAS calls (strided-batched GEMM, accumulation with beta = 1)
    from cupy.cuda import cublas as _cublas
except Exception:  # pragma: no cover
    _cublas = None

_use_raw_cublas = _cublas is not None and os.environ.get("FASTCONV_CUDA_GEMM", "") != "matmul"
_tf32 = False
_CUBLAS_DEFAULT_MATH = int(getattr(_cublas, "CUBLAS_DEFAULT_MATH", 0))
_CUBLAS_TF32_TENSOR_OP_MATH = int(getattr(_cublas, "CUBLAS_TF32_TENSOR_OP_MATH", 3))


def set_tf32(enabled: bool) -> None:
    """Allow (``True``) or forbid (``False``, the default) TensorFloat-32 in float32 GEMMs.

    TF32 rounds the GEMM inputs to a 10-bit mantissa on the tensor cores of Ampere and newer
    GPUs: several times faster, with relative errors around 1e-3 instead of 1e-6. fastconv's
    convolutions and linear layers all run through cuBLAS GEMMs, so this one switch covers
    them. It acts on three levels so that no float32 GEMM in the process escapes it:

    * the math mode of CuPy's cuBLAS handle (``CUBLAS_TF32_TENSOR_OP_MATH`` or
      ``CUBLAS_DEFAULT_MATH``), re-applied before every fastconv GEMM, which governs
      ``cublasSgemm`` / ``cublasSgemmStridedBatched`` and CuPy's batched matmul;
    * CuPy's compute type for float32 (``cupy._core._routines_linalg.set_compute_type``),
      which governs ``cupy.matmul`` / ``cupy.dot`` on 2-D arrays (``CUBLAS_COMPUTE_32F`` vs
      ``CUBLAS_COMPUTE_32F_FAST_TF32``);
    * the ``CUPY_TF32`` environment variable, which CuPy reads only once, for the compute
      type of a dtype it has not used yet, and which child processes inherit.

    fastconv's own (non-GEMM) kernels are always strict float32. PyTorch enables TF32 for
    cuDNN convolutions by default: benchmarks must set it the same way on both sides
    (``torch.backends.cuda.matmul.allow_tf32`` and ``torch.backends.cudnn.allow_tf32``).
    """
    global _tf32
    _tf32 = bool(enabled)
    os.environ["CUPY_TF32"] = "1" if _tf32 else "0"
    try:
        from cupy._core import _routines_linalg as _linalg

        ctype = getattr(_linalg, "COMPUTE_TYPE_TF32", 7) if _tf32 else \
            getattr(_linalg, "COMPUTE_TYPE_DEFAULT", 1)
        _linalg.set_compute_type(np.float32, ctype)
    except Exception:  # pragma: no cover - CuPy internals moved; the handle mode still applies
        pass
    if _cublas is not None:
        try:
            _cublas_handle()
        except Exception:  # pragma: no cover
            pass


def get_tf32() -> bool:
    """Whether TF32 GEMMs are enabled (see :func:`set_tf32`)."""
    return _tf32


def _cublas_handle() -> int:
    handle = cupy.cuda.device.get_cublas_handle()
    _cublas.setMathMode(handle, _CUBLAS_TF32_TENSOR_OP_MATH if _tf32 else _CUBLAS_DEFAULT_MATH)
    return handle


class Mat:
    """A row-major float32 matrix, or a batch of them, inside a contiguous buffer.

    ``shape`` is (rows, cols) or (batch, rows, cols) and ``strides`` the matching element
    strides; the last one must be 1 and a batch stride may be 0 (one matrix broadcast over
    the batch, the weights of a convolution). The cuBLAS path reads only the base address,
    leading dimension and batch stride, so no CuPy array is created per GEMM; the fallback
    path materialises the view with ``as_strided``.
    """

    __slots__ = ("base", "offset", "shape", "strides")

    def __init__(self, base, offset, shape, strides):
        self.base = base
        self.offset = int(offset)
        self.shape = tuple(int(v) for v in shape)
        self.strides = tuple(int(v) for v in strides)

    @property
    def batch(self) -> int:
        return self.shape[0] if len(self.shape) == 3 else 1

    @property
    def batch_stride(self) -> int:
        return self.strides[0] if len(self.shape) == 3 else 0

    @property
    def ld(self) -> int:
        """Leading dimension: the row stride, at least the row length (cuBLAS's rule)."""
        rows, cols = self.shape[-2], self.shape[-1]
        return self.strides[-2] if rows > 1 else max(cols, 1)

    def ptr(self) -> int:
        return device_pointer(self.base) + self.offset * self.base.itemsize

    def array(self):
        flat = self.base.reshape(-1)
        item = self.base.itemsize
        return cupy.lib.stride_tricks.as_strided(
            flat[self.offset:], shape=self.shape, strides=tuple(s * item for s in self.strides))


def view(base, offset: int, shape: tuple, strides: tuple) -> Mat:
    """The matrix (batch) of contiguous ``base`` that starts ``offset`` elements in."""
    return Mat(base, offset, shape, strides)


def whole(a) -> Mat:
    """A C-contiguous 2-D array as a matrix."""
    return Mat(a, 0, a.shape, (a.shape[1], 1))


def mm(a: Mat, b: Mat, out: Mat, trans_a: bool = False, trans_b: bool = False,
        beta: float = 0.0, alpha: float = 1.0) -> None:
    """``out = alpha * op(a) @ op(b) + beta * out`` on row-major float32 matrices (batches).

    cuBLAS is column-major, so the row-major ``C = A B`` is computed as ``C^T = B^T A^T``:
    the operands swap places and each keeps its own transpose flag.
    """
    M, N = out.shape[-2], out.shape[-1]
    K = a.shape[-2] if trans_a else a.shape[-1]
    batch = out.batch
    if M == 0 or N == 0 or batch == 0:
        return
    if K == 0:
        c = out.array()
        if beta == 0.0:
            c.fill(0)
        else:
            c *= beta
        return
    if _use_raw_cublas:
        handle = _cublas_handle()
        op_a = 1 if trans_a else 0   # CUBLAS_OP_T / CUBLAS_OP_N
        op_b = 1 if trans_b else 0
        if batch == 1:
            _cublas.sgemm(handle, op_b, op_a, N, M, K, float(alpha), b.ptr(), b.ld,
                          a.ptr(), a.ld, float(beta), out.ptr(), out.ld)
        else:
            _cublas.sgemmStridedBatched(handle, op_b, op_a, N, M, K, float(alpha),
                                        b.ptr(), b.ld, b.batch_stride,
                                        a.ptr(), a.ld, a.batch_stride,
                                        float(beta), out.ptr(), out.ld, out.batch_stride,
                                        batch)
        return
    # Fallback: cupy.matmul (copies strided operands), same arithmetic. The handle's math
    # mode still carries the TF32 setting into CuPy's batched matmul.
    if _cublas is not None:
        _cublas_handle()
    A, B, C = a.array(), b.array(), out.array()
    if trans_a:
        A = A.swapaxes(-1, -2)
    if trans_b:
        B = B.swapaxes(-1, -2)
    r = cupy.matmul(A, B)
    if alpha != 1.0:
        r *= alpha
    if beta == 0.0:
        C[...] = r
    else:
        if beta != 1.0:
            C *= beta
        C += r


def gemm(a, b, trans_a: bool = False, trans_b: bool = False):
    """``op(a) @ op(b)`` for 2-D arrays through cuBLAS (float32; other dtypes via cupy.matmul)."""
    if not isinstance(a, cupy.ndarray) or not isinstance(b, cupy.ndarray):
        raise TypeError("CUDA backend gemm: both operands must be CuPy arrays")
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"gemm: expected 2-D operands, got shapes {a.shape} and {b.shape}")
    M = a.shape[1] if trans_a else a.shape[0]
    Ka = a.shape[0] if trans_a else a.shape[1]
    Kb = b.shape[1] if trans_b else b.shape[0]
    N = b.shape[0] if trans_b else b.shape[1]
    if Ka != Kb:
        raise ValueError(f"gemm: inner dimensions differ: op(a) is {M}x{Ka}, op(b) is {Kb}x{N}")
    if a.dtype != np.float32 or b.dtype != np.float32:
        return cupy.matmul(a.T if trans_a else a, b.T if trans_b else b)
    a = cupy.ascontiguousarray(a)
    b = cupy.ascontiguousarray(b)
    out = cupy.empty((M, N), dtype=np.float32)
    mm(whole(a), whole(b), whole(out), trans_a, trans_b)
    return out
