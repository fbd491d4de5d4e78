"""GEMMs on cuBLAS, the TensorFloat-32 switch, and bfloat16 products for autocast.

Row-major float32 matrices (or batches of them, with a zero batch stride for a broadcast
operand) are handed to ``cublasSgemm`` / ``cublasSgemmStridedBatched`` as raw pointers, so no
CuPy array is created per GEMM and results can accumulate with beta = 1. Set
``FASTCONV_CUDA_GEMM=matmul`` to route every GEMM through ``cupy.matmul`` on the same views
instead (a debugging aid: same results, more copies).

Inside ``with bf16_products():`` (autocast's convolutions and linear layers, through
``conv2d_forward_bf16``, ``conv2d_backward_bf16`` and ``gemm_bf16``), every GEMM rounds its
two operands to bfloat16 (ties to even, as ``round_bf16_``) into packed copies and runs
``cublasGemmEx`` / ``cublasGemmStridedBatchedEx`` on them: bfloat16 inputs on the tensor
cores, float32 sums and output (``CUBLAS_COMPUTE_32F``). Products of bfloat16 values are
exact in float32, so the results are those of the float32 GEMM on rounded operands up to the
order of the sums. ``bf16_kernels()`` says whether that runs ("cublas": a GPU of compute
capability 8.0 or later, a CuPy with both Ex calls, and a first-use check of one product
against the float32 GEMM) or not ("none": the ops then round and use the float32 GEMMs).
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings

import cupy
import numpy as np

from .launch import device_pointer, i64, launch

try:  # direct cuBLAS calls (strided-batched GEMM, accumulation with beta = 1)
    from cupy.cuda import cublas as _cublas
except Exception:  # pragma: no cover
    _cublas = None

_use_raw_cublas = _cublas is not None and os.environ.get("FASTCONV_CUDA_GEMM", "") != "matmul"
_tf32 = False
_CUBLAS_DEFAULT_MATH = int(getattr(_cublas, "CUBLAS_DEFAULT_MATH", 0))
_CUBLAS_TF32_TENSOR_OP_MATH = int(getattr(_cublas, "CUBLAS_TF32_TENSOR_OP_MATH", 3))
# cudaDataType_t and cublasComputeType_t / cublasGemmAlgo_t values (library_types.h, cublas_api.h)
_CUDA_R_32F, _CUDA_R_16BF = 0, 14
_CUBLAS_COMPUTE_32F, _CUBLAS_GEMM_DEFAULT = 68, -1


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


_bf16_state = threading.local()  # .active: inside bf16_products() in this thread
_bf16_checked = None  # the first-use check's verdict (None: not run yet)


@contextlib.contextmanager
def bf16_products():
    """Every GEMM in the block on bfloat16-rounded operands (see the module docstring)."""
    previous = getattr(_bf16_state, "active", False)
    _bf16_state.active = True
    try:
        yield
    finally:
        _bf16_state.active = previous


def _bf16_copy(m: Mat) -> Mat:
    """m's values rounded to bfloat16, packed (row stride = cols) in a new uint16 buffer; a
    broadcast operand (batch stride 0) is converted once and stays broadcast."""
    if len(m.shape) == 3 and m.batch_stride == 0:
        inner = _bf16_copy(Mat(m.base, m.offset, m.shape[1:], m.strides[1:]))
        return Mat(inner.base, 0, m.shape, (0,) + inner.strides)
    src = cupy.ascontiguousarray(m.array())
    dst = cupy.empty(src.shape, dtype=np.uint16)
    launch("elementwise.cu", "to_bf16", src.size, (src.view(np.uint32), dst, i64(src.size)))
    rows, cols = m.shape[-2], m.shape[-1]
    strides = (rows * cols, cols, 1) if len(m.shape) == 3 else (cols, 1)
    return Mat(dst, 0, m.shape, strides)


def _rounded(m: Mat):
    """m's values rounded to bfloat16, as a float32 array (the fallback path's operands)."""
    a = cupy.array(m.array(), dtype=np.float32, order="C")
    launch("elementwise.cu", "round_bf16", a.size, (a.view(np.uint32), i64(a.size)))
    return a


def _mm_bf16(a: Mat, b: Mat, out: Mat, trans_a, trans_b, beta, alpha, M, N, K) -> None:
    a16, b16 = _bf16_copy(a), _bf16_copy(b)
    handle = _cublas_handle()
    one = np.array([alpha, beta], dtype=np.float32)  # host scalars, alive during the calls
    alpha_ptr, beta_ptr = one.ctypes.data, one.ctypes.data + 4
    op_a, op_b = (1 if trans_a else 0), (1 if trans_b else 0)
    if out.batch == 1:
        _cublas.gemmEx(handle, op_b, op_a, N, M, K, alpha_ptr, b16.ptr(), _CUDA_R_16BF, b16.ld,
                       a16.ptr(), _CUDA_R_16BF, a16.ld, beta_ptr, out.ptr(), _CUDA_R_32F,
                       out.ld, _CUBLAS_COMPUTE_32F, _CUBLAS_GEMM_DEFAULT)
    else:
        _cublas.gemmStridedBatchedEx(
            handle, op_b, op_a, N, M, K, alpha_ptr, b16.ptr(), _CUDA_R_16BF, b16.ld,
            b16.batch_stride, a16.ptr(), _CUDA_R_16BF, a16.ld, a16.batch_stride, beta_ptr,
            out.ptr(), _CUDA_R_32F, out.ld, out.batch_stride, out.batch, _CUBLAS_COMPUTE_32F,
            _CUBLAS_GEMM_DEFAULT)


def mm(a: Mat, b: Mat, out: Mat, trans_a: bool = False, trans_b: bool = False,
        beta: float = 0.0, alpha: float = 1.0) -> None:
    """``out = alpha * op(a) @ op(b) + beta * out`` on row-major float32 matrices (batches);
    inside ``bf16_products()`` on bfloat16-rounded operands.

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
    bf16 = getattr(_bf16_state, "active", False)
    if bf16 and bf16_kernels() == "cublas":
        _mm_bf16(a, b, out, trans_a, trans_b, beta, alpha, M, N, K)
        return
    if bf16:  # no bfloat16 GEMM here: the float32 one on rounded copies
        a = Mat(_rounded(a), 0, a.shape, _packed_strides(a.shape))
        b = Mat(_rounded(b), 0, b.shape, _packed_strides(b.shape))
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


def _packed_strides(shape) -> tuple:
    rows, cols = shape[-2], shape[-1]
    return (rows * cols, cols, 1) if len(shape) == 3 else (cols, 1)


def bf16_kernels() -> str:
    """"cublas" where autocast's products run as bfloat16 GEMMs on this GPU, else "none"
    (see the module docstring). The first call checks one product against the float32
    GEMM on rounded operands; a disagreement warns and turns the bfloat16 GEMMs off."""
    global _bf16_checked
    if _bf16_checked is None:
        _bf16_checked = False
        usable = (_use_raw_cublas and hasattr(_cublas, "gemmEx")
                  and hasattr(_cublas, "gemmStridedBatchedEx") and _compute_capability() >= 80)
        if usable:
            _bf16_checked = _bf16_self_test()
    return "cublas" if _bf16_checked else "none"


def _compute_capability() -> int:
    try:
        return int(cupy.cuda.Device().compute_capability)
    except Exception:  # pragma: no cover - an unknown device: no bfloat16 GEMMs
        return 0


def _bf16_self_test() -> bool:
    """One strided-batched and one plain product of odd sizes on the bfloat16 GEMM against the
    float32 GEMM on the same rounded operands."""
    rng = np.random.default_rng(0)
    a = cupy.asarray(rng.standard_normal((3, 37, 83)).astype(np.float32))
    b = cupy.asarray(rng.standard_normal((83, 45)).astype(np.float32))
    got = cupy.empty((3, 37, 45), dtype=np.float32)
    ref = cupy.empty((3, 37, 45), dtype=np.float32)
    A = Mat(a, 0, a.shape, (37 * 83, 83, 1))
    B = Mat(b, 0, (3, 83, 45), (0, 45, 1))
    try:
        _mm_bf16(A, B, Mat(got, 0, got.shape, (37 * 45, 45, 1)), False, False, 0.0, 1.0,
                 37, 45, 83)
        _mm_bf16(A, B, Mat(got, 0, (37, 45), (45, 1)), False, False, 1.0, 1.0, 37, 45, 83)
    except Exception as e:  # pragma: no cover - only on a GPU whose cuBLAS refuses the call
        warnings.warn(f"bfloat16 GEMMs disabled: cublasGemmEx failed ({e})", RuntimeWarning,
                      stacklevel=3)
        return False
    ra, rb = _rounded(A), _rounded(Mat(b, 0, b.shape, (45, 1)))
    ref[...] = cupy.matmul(ra.astype(np.float64), rb.astype(np.float64))
    ref[0] *= 2  # the second call added the first matrix's product again
    scale = float(cupy.abs(ref).max())
    ok = bool(cupy.abs(got - ref).max() <= 1e-4 * max(scale, 1.0))
    if not ok:  # pragma: no cover - a GPU whose bfloat16 GEMM disagrees
        warnings.warn("bfloat16 GEMMs disabled: cublasGemmEx disagreed with the float32 GEMM "
                      "on a test product; autocast uses the float32 GEMMs", RuntimeWarning,
                      stacklevel=3)
    return ok


def gemm_bf16(a, b, trans_a=False, trans_b=False, bias=None, out=None):
    """op(a) @ op(b) on bfloat16-rounded operands with float32 sums; ``bias`` (M,) is added
    to row i; with ``out`` the product is added to it (returned). The CPU's signature."""
    with bf16_products():
        r = gemm(a, b, trans_a, trans_b)
    if bias is not None:
        r += bias.reshape(-1, 1)
    if out is not None:
        out += r
        return out
    return r

