"""CUDA backend: fastconv's own GPU kernels, driven through CuPy.

The kernels are CUDA C in ``fastconv/cuda/*.cu`` (each file says at its top how its work maps
onto threads and blocks), compiled at run time by NVRTC through :class:`cupy.RawModule` and
cached per file and device (CuPy also keeps the compiled binaries on disk, so only the very
first use on a machine pays for the compilation). GEMMs go to cuBLAS through CuPy's bindings
(``cupy.cuda.cublas``); no cuDNN anywhere. This module exports the kernel interface of
:mod:`fastconv.backend.interface` with CuPy arrays in and out, plus the GPU's controls:

* the random numbers behind dropout (:func:`random_uniform`) come from a counter-based
  Philox4x32-10 generator seeded by :func:`fastconv.manual_seed`; its state
  ``{"seed", "offset"}`` is JSON-serialisable (:func:`get_rng_state` / :func:`set_rng_state`)
  and part of :func:`fastconv.get_rng_state`, so checkpoints carry it;
* :func:`set_tf32` — TensorFloat-32 GEMMs, off by default;
* :func:`set_workspace_limit` — the bound on the convolution's column buffer;
* :class:`CapturedStep` / :func:`capture` — a whole training step captured as a CUDA graph
  and replayed with one launch.

It is imported only when a CUDA device is requested; without CuPy or without a GPU the import
raises an :class:`ImportError` / :class:`RuntimeError` that says how to install the extra
(``pip install -e .[cuda]``).

Environment variables: ``FASTCONV_TF32=1`` turns TF32 on at import;
``FASTCONV_CUDA_WORKSPACE_MB`` bounds the im2col column buffer (default 512 MiB);
``FASTCONV_CUDA_GEMM=matmul`` routes every GEMM through ``cupy.matmul`` instead of the direct
cuBLAS calls (a debugging aid: same results, more copies).
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib

import numpy as np

_INSTALL_HINT = (
    "Install the CUDA extra with `pip install -e .[cuda]` (it brings the cupy-cuda12x wheel; "
    "on a machine whose driver is CUDA 13 use `pip install cupy-cuda13x`)."
)

try:
    import cupy
except ImportError as _exc:  # pragma: no cover - exercised only on machines without CuPy
    raise ImportError(
        "fastconv's CUDA backend needs CuPy, which is not installed. " + _INSTALL_HINT
    ) from _exc


def device_count() -> int:
    """Number of CUDA devices CuPy can see (0 when the driver or the GPU is missing)."""
    try:
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # CUDARuntimeError, missing libcuda, ...
        return 0


if device_count() == 0:
    raise RuntimeError(
        "fastconv's CUDA backend found no usable NVIDIA GPU: CuPy is installed but "
        "cupy.cuda.runtime.getDeviceCount() reports no device (no GPU, no driver, or "
        "CUDA_VISIBLE_DEVICES hides them). " + _INSTALL_HINT
    )

from fastconv import output_size  # noqa: E402

try:  # direct cuBLAS calls (strided-batched GEMM, accumulation with beta = 1)
    from cupy.cuda import cublas as _cublas  # noqa: E402
except Exception:  # pragma: no cover
    _cublas = None

xp = cupy

__all__ = [
    # the kernel interface (fastconv.backend.interface.KERNELS)
    "xp", "gemm", "conv2d_forward", "conv2d_backward",
    "max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
    "lrn_forward", "lrn_backward",
    "batch_norm_forward_train", "batch_norm_forward_eval", "batch_norm_backward",
    "relu_forward", "relu_backward", "accumulate_",
    "softmax_cross_entropy_forward", "softmax_cross_entropy_backward",
    "random_uniform", "is_capturing",
    # the GPU's controls (fastconv.backend.interface.CONTROLS["cuda"])
    "device_count", "set_tf32", "get_tf32", "set_workspace_limit",
    "manual_seed", "get_rng_state", "set_rng_state", "CapturedStep", "capture",
]

# --------------------------------------------------------------------------------------------
# Kernel loading and launching
# --------------------------------------------------------------------------------------------

_CUDA_SRC_DIR = pathlib.Path(__file__).resolve().parent.parent / "cuda"
_NVRTC_OPTIONS: tuple = ()          # CuPy adds the architecture of the current device
_BLOCK = 256                        # threads per block for every kernel (a multiple of 32)
_MAX_GRID = 1 << 20                 # the kernels use grid-stride loops beyond this
_modules: dict = {}                 # (file, device) -> cupy.RawModule
_functions: dict = {}               # (file, kernel, device) -> cupy.RawKernel
_NULL = np.uint64(0)                # a null device pointer passed by value
_sm_count: dict = {}


def _current_device() -> int:
    return int(cupy.cuda.runtime.getDevice())


def _function(file: str, name: str):
    """The kernel ``name`` of ``fastconv/cuda/<file>``, compiled once per file and device."""
    dev = _current_device()
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


def _grid(n: int, per_block: int = _BLOCK) -> tuple:
    return (max(1, min((int(n) + per_block - 1) // per_block, _MAX_GRID)),)


def _launch(file: str, name: str, n: int, args: tuple, block: int = _BLOCK) -> None:
    """Launch a grid-stride kernel over ``n`` work items (one thread each)."""
    if n <= 0:
        return
    _function(file, name)(_grid(n, block), (block,), args)


def _sms() -> int:
    dev = _current_device()
    n = _sm_count.get(dev)
    if n is None:
        try:
            n = int(cupy.cuda.Device(dev).attributes["MultiProcessorCount"])
        except Exception:  # pragma: no cover
            n = 80
        _sm_count[dev] = n
    return n


def _i32(v) -> np.int32:
    return np.int32(v)


def _i64(v) -> np.int64:
    return np.int64(v)


def _f32(v) -> np.float32:
    return np.float32(v)


def _dev(a, name: str):
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


def _opt(a, name: str):
    return None if a is None else _dev(a, name)


# --------------------------------------------------------------------------------------------
# GEMM (cuBLAS) and TF32
# --------------------------------------------------------------------------------------------

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


def _ptr(a) -> int:
    """Device address of the first element of ``a`` (view offsets included)."""
    return a.data.ptr


def _cublas_handle() -> int:
    handle = cupy.cuda.device.get_cublas_handle()
    _cublas.setMathMode(handle, _CUBLAS_TF32_TENSOR_OP_MATH if _tf32 else _CUBLAS_DEFAULT_MATH)
    return handle


class _Mat:
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
        return _ptr(self.base) + self.offset * self.base.itemsize

    def array(self):
        flat = self.base.reshape(-1)
        item = self.base.itemsize
        return cupy.lib.stride_tricks.as_strided(
            flat[self.offset:], shape=self.shape, strides=tuple(s * item for s in self.strides))


def _view(base, offset: int, shape: tuple, strides: tuple) -> _Mat:
    """The matrix (batch) of contiguous ``base`` that starts ``offset`` elements in."""
    return _Mat(base, offset, shape, strides)


def _whole(a) -> _Mat:
    """A C-contiguous 2-D array as a matrix."""
    return _Mat(a, 0, a.shape, (a.shape[1], 1))


def _mm(a: _Mat, b: _Mat, out: _Mat, trans_a: bool = False, trans_b: bool = False,
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
    _mm(_whole(a), _whole(b), _whole(out), trans_a, trans_b)
    return out


# --------------------------------------------------------------------------------------------
# Convolution
# --------------------------------------------------------------------------------------------

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
    _launch("im2col.cu", "im2col", C * B * P,
            (x[n0:n0 + B], col, _i32(B), _i32(C), _i32(H), _i32(W), _i32(KH), _i32(KW),
             _i32(sh), _i32(sw), _i32(ph), _i32(pw), _i32(dh), _i32(dw), _i32(OH), _i32(OW)))
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
    x, w, b = _dev(x, "x"), _dev(w, "weight"), _opt(b, "bias")
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
            _mm(_view(w2, g * OCg * CKg, (N, OCg, Cg), (0, Cg, 1)),
                _view(x, g * Cg * P, (N, Cg, P), (C * P, P, 1)),
                _view(y, g * OCg * P, (N, OCg, P), (OC * P, P, 1)))
    else:
        batched = P >= _BATCHED_MIN_PIXELS
        per_image = 4 * P * (C * KK + (0 if batched else OC))
        chunk = _chunk(N, per_image)
        for n0 in range(0, N, chunk):
            B = min(chunk, N - n0)
            col = _im2col(x, n0, B, C, H, W, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW)
            if batched:
                for g in range(G):
                    _mm(_view(w2, g * OCg * CKg, (B, OCg, CKg), (0, CKg, 1)),
                        _view(col, g * CKg * B * P, (B, CKg, P), (P, B * P, 1)),
                        _view(y, (n0 * OC + g * OCg) * P, (B, OCg, P), (OC * P, P, 1)))
            else:
                tmp = cupy.empty((OC, B, P), dtype=np.float32)
                for g in range(G):
                    _mm(_view(w2, g * OCg * CKg, (OCg, CKg), (CKg, 1)),
                        _view(col, g * CKg * B * P, (CKg, B * P), (B * P, 1)),
                        _view(tmp, g * OCg * B * P, (OCg, B * P), (B * P, 1)))
                _launch("im2col.cu", "cnhw_to_nchw", B * OC * P,
                        (tmp, b if b is not None else _NULL, y[n0:n0 + B], _i32(B), _i32(OC),
                         _i64(P)))
                bias_fused = True
            del col
    if b is not None and not bias_fused:
        _launch("elementwise.cu", "bias_add", y.size, (y, b, _i32(N), _i32(OC), _i64(P)))
    return y


def conv2d_backward(x, w, dy, stride, padding, dilation, groups, need_dx, need_dw, need_db):
    """(dx, dw, db) of conv2d; each is None unless asked for.

    dw = sum over the batch of dy[n] @ col[n]^T as ONE GEMM per chunk and group (K = images x
    pixels, accumulated with beta = 1 across chunks); dx = col2im(w^T @ dy) (1x1: no col2im).
    """
    x, w, dy = _dev(x, "x"), _dev(w, "weight"), _dev(dy, "grad_output")
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
        _function("elementwise.cu", "channel_sum")(
            (max(1, min(OC, 65535)),), (_BLOCK,), (dy, db, _i32(N), _i32(OC), _i64(P)))
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
        _launch("im2col.cu", "nchw_to_cnhw", dy.size, (dy, dyt, _i32(N), _i32(OC), _i64(P)))
    if pointwise:
        if need_dx:
            for g in range(G):
                _mm(_view(w2, g * OCg * CKg, (N, OCg, Cg), (0, Cg, 1)),
                    _view(dy, g * OCg * P, (N, OCg, P), (OC * P, P, 1)),
                    _view(dx, g * Cg * P, (N, Cg, P), (C * P, P, 1)), trans_a=True)
        if need_dw:
            chunk = _chunk(N, 4 * C * P)
            for n0 in range(0, N, chunk):
                B = min(chunk, N - n0)
                xt = cupy.empty((C, B, P), dtype=np.float32)   # the 1x1 "im2col": a transpose
                _launch("im2col.cu", "nchw_to_cnhw", B * C * P,
                        (x[n0:n0 + B], xt, _i32(B), _i32(C), _i64(P)))
                for g in range(G):
                    _mm(_view(dyt, g * OCg * N * P + n0 * P, (OCg, B * P), (N * P, 1)),
                        _view(xt, g * Cg * B * P, (Cg, B * P), (B * P, 1)),
                        _view(dw2, g * OCg * CKg, (OCg, CKg), (CKg, 1)), trans_b=True,
                        beta=1.0)
        return dx, dw, db
    chunk = _chunk(N, 4 * C * KK * P)
    for n0 in range(0, N, chunk):
        B = min(chunk, N - n0)
        col = _im2col(x, n0, B, C, H, W, KH, KW, sh, sw, ph, pw, dh, dw_, OH, OW) \
            if need_dw else cupy.empty((C * KK, B, P), dtype=np.float32)
        if need_dw:
            for g in range(G):
                _mm(_view(dyt, g * OCg * N * P + n0 * P, (OCg, B * P), (N * P, 1)),
                    _view(col, g * CKg * B * P, (CKg, B * P), (B * P, 1)),
                    _view(dw2, g * OCg * CKg, (OCg, CKg), (CKg, 1)), trans_b=True,
                        beta=1.0)
        if need_dx:
            dcol = col   # the column buffer is free again: reuse it for the column gradient
            for g in range(G):
                if dyt is not None:
                    _mm(_view(w2, g * OCg * CKg, (OCg, CKg), (CKg, 1)),
                        _view(dyt, g * OCg * N * P + n0 * P, (OCg, B * P), (N * P, 1)),
                        _view(dcol, g * CKg * B * P, (CKg, B * P), (B * P, 1)), trans_a=True)
                else:
                    _mm(_view(w2, g * OCg * CKg, (B, OCg, CKg), (0, CKg, 1)),
                        _view(dy, (n0 * OC + g * OCg) * P, (B, OCg, P), (OC * P, P, 1)),
                        _view(dcol, g * CKg * B * P, (B, CKg, P), (P, B * P, 1)),
                        trans_a=True)
            _launch("im2col.cu", "col2im", B * C * H * W,
                    (dcol, dx[n0:n0 + B], _i32(B), _i32(C), _i32(H), _i32(W), _i32(KH),
                     _i32(KW), _i32(sh), _i32(sw), _i32(ph), _i32(pw), _i32(dh), _i32(dw_),
                     _i32(OH), _i32(OW)))
        del col
    return dx, dw, db


# --------------------------------------------------------------------------------------------
# Pooling
# --------------------------------------------------------------------------------------------

def _pool_geometry(x_shape, kernel, stride, padding, ceil_mode):
    if len(x_shape) != 4:
        raise ValueError(f"pool2d: expected (N, C, H, W) input, got shape {tuple(x_shape)}")
    N, C, H, W = (int(s) for s in x_shape)
    KH, KW = kernel
    SH, SW = stride
    PH, PW = padding
    OH = output_size.pool_output_size(H, KH, SH, PH, bool(ceil_mode))
    OW = output_size.pool_output_size(W, KW, SW, PW, bool(ceil_mode))
    return N, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW


def max_pool2d_forward(x, kernel, stride, padding, ceil_mode):
    """(y, indices): indices int32 (N, C, OH, OW) = flat offset h*W + w of the window's max."""
    x = _dev(x, "x")
    N, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW = _pool_geometry(x.shape, kernel, stride,
                                                                 padding, ceil_mode)
    y = cupy.empty((N, C, OH, OW), dtype=np.float32)
    idx = cupy.empty((N, C, OH, OW), dtype=np.int32)
    _launch("pool.cu", "max_pool2d_forward", y.size,
            (x, y, idx, _i64(N * C), _i32(H), _i32(W), _i32(OH), _i32(OW), _i32(KH), _i32(KW),
             _i32(SH), _i32(SW), _i32(PH), _i32(PW)))
    return y, idx


def max_pool2d_backward(dy, indices, x_shape, kernel, stride, padding):
    """dx from the saved argmax (written, not accumulated): each input element gathers from
    the windows that cover it, so the result is the same on every run (no atomics)."""
    dy = _dev(dy, "grad_output")
    if not isinstance(indices, cupy.ndarray):
        raise TypeError("max_pool2d backward: indices must be a CuPy array")
    if indices.shape != dy.shape:
        raise ValueError(f"max_pool2d backward: indices {indices.shape} and grad_output "
                         f"{dy.shape} differ in shape")
    if len(x_shape) != 4 or dy.ndim != 4:
        raise ValueError(f"max_pool2d backward: x_shape must be (N, C, H, W), got {x_shape}")
    N, C, H, W = (int(s) for s in x_shape)
    OH, OW = int(dy.shape[2]), int(dy.shape[3])
    if tuple(dy.shape[:2]) != (N, C):
        raise ValueError(f"max_pool2d backward: grad_output {dy.shape} does not match x_shape "
                         f"{tuple(x_shape)}")
    if indices.dtype != np.int32 or not indices.flags.c_contiguous:
        indices = cupy.ascontiguousarray(indices, dtype=np.int32)
    KH, KW = kernel
    SH, SW = stride
    PH, PW = padding
    dx = cupy.empty((N, C, H, W), dtype=np.float32)
    _launch("pool.cu", "max_pool2d_backward", dx.size,
            (dy, indices, dx, _i64(N * C), _i32(H), _i32(W), _i32(OH), _i32(OW), _i32(KH),
             _i32(KW), _i32(SH), _i32(SW), _i32(PH), _i32(PW)))
    return dx


def _is_global(H, W, KH, KW, PH, PW) -> bool:
    return KH == H and KW == W and PH == 0 and PW == 0


def avg_pool2d_forward(x, kernel, stride, padding, ceil_mode, count_include_pad):
    """Average pooling (PyTorch divisor rules); a window covering the whole plane -> global."""
    x = _dev(x, "x")
    N, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW = _pool_geometry(x.shape, kernel, stride,
                                                                 padding, ceil_mode)
    if _is_global(H, W, KH, KW, PH, PW) and OH == 1 and OW == 1:
        return _global_avg_pool2d_forward(x)
    y = cupy.empty((N, C, OH, OW), dtype=np.float32)
    _launch("pool.cu", "avg_pool2d_forward", y.size,
            (x, y, _i64(N * C), _i32(H), _i32(W), _i32(OH), _i32(OW), _i32(KH), _i32(KW),
             _i32(SH), _i32(SW), _i32(PH), _i32(PW), _i32(1 if count_include_pad else 0)))
    return y


def avg_pool2d_backward(dy, x_shape, kernel, stride, padding, ceil_mode, count_include_pad):
    dy = _dev(dy, "grad_output")
    N, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW = _pool_geometry(x_shape, kernel, stride,
                                                                 padding, ceil_mode)
    if dy.shape != (N, C, OH, OW):
        raise ValueError(f"avg_pool2d backward: grad_output has shape {dy.shape}, expected "
                         f"{(N, C, OH, OW)}")
    if _is_global(H, W, KH, KW, PH, PW) and OH == 1 and OW == 1:
        return _global_avg_pool2d_backward(dy, x_shape)
    dx = cupy.empty((N, C, H, W), dtype=np.float32)
    _launch("pool.cu", "avg_pool2d_backward", dx.size,
            (dy, dx, _i64(N * C), _i32(H), _i32(W), _i32(OH), _i32(OW), _i32(KH), _i32(KW),
             _i32(SH), _i32(SW), _i32(PH), _i32(PW), _i32(1 if count_include_pad else 0)))
    return dx


def _global_avg_pool2d_forward(x):
    """(N, C, H, W) -> (N, C, 1, 1) plane means (adaptive_avg_pool2d to 1x1)."""
    x = _dev(x, "x")
    if x.ndim != 4:
        raise ValueError(f"global_avg_pool2d: expected (N, C, H, W), got {x.shape}")
    N, C, H, W = x.shape
    y = cupy.empty((N, C, 1, 1), dtype=np.float32)
    NC, HW = N * C, H * W
    if NC == 0:
        return y
    warps = _BLOCK // 32
    _function("pool.cu", "global_avg_pool_forward")(
        (max(1, min((NC + warps - 1) // warps, _MAX_GRID)),), (_BLOCK,),
        (x, y, _i64(NC), _i64(HW)))
    return y


def _global_avg_pool2d_backward(dy, x_shape):
    dy = _dev(dy, "grad_output")
    N, C, H, W = (int(s) for s in x_shape)
    if dy.size != N * C:
        raise ValueError(f"global_avg_pool2d backward: grad_output {dy.shape} does not match "
                         f"x_shape {tuple(x_shape)}")
    dx = cupy.empty((N, C, H, W), dtype=np.float32)
    _launch("pool.cu", "global_avg_pool_backward", dx.size,
            (dy, dx, _i64(N * C), _i64(H * W)))
    return dx


# --------------------------------------------------------------------------------------------
# Local response normalisation
# --------------------------------------------------------------------------------------------

def _lrn_segment(N, C, HW, size) -> int:
    """Channels per thread: all of them when the pixels alone fill the GPU, fewer otherwise."""
    target = 4 * _sms() * _BLOCK
    pixels = max(N * HW, 1)
    nseg = max(1, min(C, -(-target // pixels)))
    seg = -(-C // nseg)
    return max(1, max(seg, min(C, 2 * size)))


def lrn_forward(x, size, alpha, beta, k):
    """(y, scale): scale = k + alpha/size * window sum of x^2; y = x * scale^-beta."""
    x = _dev(x, "x")
    if x.ndim < 2:
        raise ValueError(f"local_response_norm: expected (N, C, ...) input, got {x.shape}")
    size = int(size)
    N, C = x.shape[0], x.shape[1]
    HW = int(np.prod(x.shape[2:], dtype=np.int64)) if x.ndim > 2 else 1
    y = cupy.empty_like(x)
    scale = cupy.empty_like(x)
    if x.size == 0:
        return y, scale
    seg = _lrn_segment(N, C, HW, size)
    nseg = -(-C // seg)
    _launch("lrn.cu", "lrn_forward", nseg * N * HW,
            (x, y, scale, _i32(N), _i32(C), _i64(HW), _i32(size), _f32(alpha), _f32(beta),
             _f32(k), _i32(seg)))
    return y, scale


def lrn_backward(x, y, scale, dy, size, alpha, beta, k):
    x, y, scale, dy = _dev(x, "x"), _dev(y, "y"), _dev(scale, "scale"), _dev(dy, "grad_output")
    if not (x.shape == y.shape == scale.shape == dy.shape):
        raise ValueError(f"local_response_norm backward: shapes differ: x {x.shape}, "
                         f"y {y.shape}, scale {scale.shape}, grad_output {dy.shape}")
    size = int(size)
    N, C = x.shape[0], x.shape[1]
    HW = int(np.prod(x.shape[2:], dtype=np.int64)) if x.ndim > 2 else 1
    dx = cupy.empty_like(x)
    if x.size == 0:
        return dx
    seg = _lrn_segment(N, C, HW, size)
    nseg = -(-C // seg)
    _launch("lrn.cu", "lrn_backward", nseg * N * HW,
            (x, y, scale, dy, dx, _i32(N), _i32(C), _i64(HW), _i32(size), _f32(alpha),
             _f32(beta), _i32(seg)))
    return dx


# --------------------------------------------------------------------------------------------
# Batch normalisation
# --------------------------------------------------------------------------------------------

def _bn_dims(x):
    if x.ndim < 2:
        raise ValueError(f"batch_norm: expected (N, C) or (N, C, H, W) input, got {x.shape}")
    N, C = int(x.shape[0]), int(x.shape[1])
    HW = int(np.prod(x.shape[2:], dtype=np.int64)) if x.ndim > 2 else 1
    return N, C, HW


def _bn_splits(C, M) -> int:
    """Slices per channel for the statistics: enough blocks to fill the GPU, >= 1024 elems each."""
    want = -(-4 * _sms() // max(C, 1))
    return int(max(1, min(want, max(1, M // 1024), 65535)))


def _check_channels(a, C, name):
    if a is not None and a.shape != (C,):
        raise ValueError(f"batch_norm: {name} must have shape ({C},), got {a.shape}")


def batch_norm_forward_train(x, weight, bias, eps):
    """(y, mean, var) with one-pass Welford statistics over all axes but C (biased var)."""
    x, weight, bias = _dev(x, "x"), _opt(weight, "weight"), _opt(bias, "bias")
    N, C, HW = _bn_dims(x)
    _check_channels(weight, C, "weight")
    _check_channels(bias, C, "bias")
    M = N * HW
    mean = cupy.empty((C,), dtype=np.float32)
    var = cupy.empty((C,), dtype=np.float32)
    y = cupy.empty_like(x)
    if C == 0:
        return y, mean, var
    if M == 0:
        mean.fill(0)
        var.fill(0)
        return y, mean, var
    splits = _bn_splits(C, M)
    part = cupy.empty((C, splits, 3), dtype=np.float32)
    _function("batchnorm.cu", "bn_stats_partial")(
        (splits, C), (_BLOCK,), (x, part, _i32(N), _i32(C), _i64(HW), _i32(splits)))
    _launch("batchnorm.cu", "bn_stats_finalize", C, (part, mean, var, _i32(C), _i32(splits)))
    _launch("batchnorm.cu", "bn_apply", x.size,
            (x, mean, var, weight if weight is not None else _NULL,
             bias if bias is not None else _NULL, y, _i32(N), _i32(C), _i64(HW), _f32(eps)))
    return y, mean, var


def batch_norm_forward_eval(x, mean, var, weight, bias, eps):
    """y = (x - running_mean) / sqrt(running_var + eps) * weight + bias."""
    x, mean, var = _dev(x, "x"), _dev(mean, "running_mean"), _dev(var, "running_var")
    weight, bias = _opt(weight, "weight"), _opt(bias, "bias")
    N, C, HW = _bn_dims(x)
    for a, name in ((mean, "running_mean"), (var, "running_var"), (weight, "weight"),
                    (bias, "bias")):
        _check_channels(a, C, name)
    y = cupy.empty_like(x)
    _launch("batchnorm.cu", "bn_apply", x.size,
            (x, mean, var, weight if weight is not None else _NULL,
             bias if bias is not None else _NULL, y, _i32(N), _i32(C), _i64(HW), _f32(eps)))
    return y


def batch_norm_backward(x, weight, mean, var, eps, dy):
    """(dx, dweight, dbias) of the training-mode batch norm (batch statistics mean, var)."""
    x, dy = _dev(x, "x"), _dev(dy, "grad_output")
    mean, var, weight = _dev(mean, "mean"), _dev(var, "var"), _opt(weight, "weight")
    if dy.shape != x.shape:
        raise ValueError(f"batch_norm backward: grad_output {dy.shape} != x {x.shape}")
    N, C, HW = _bn_dims(x)
    for a, name in ((mean, "mean"), (var, "var"), (weight, "weight")):
        _check_channels(a, C, name)
    M = N * HW
    dweight = cupy.zeros((C,), dtype=np.float32)
    dbias = cupy.zeros((C,), dtype=np.float32)
    dx = cupy.empty_like(x)
    if C == 0 or M == 0:
        return dx, dweight, dbias
    splits = _bn_splits(C, M)
    part = cupy.empty((C, splits, 2), dtype=np.float32)
    _function("batchnorm.cu", "bn_backward_partial")(
        (splits, C), (_BLOCK,), (x, dy, mean, part, _i32(N), _i32(C), _i64(HW), _i32(splits)))
    sums = cupy.empty((C, 2), dtype=np.float32)
    _launch("batchnorm.cu", "bn_backward_finalize", C,
            (part, var, sums, dweight, dbias, _i32(C), _i32(splits), _f32(eps)))
    _launch("batchnorm.cu", "bn_backward_apply", x.size,
            (x, dy, mean, var, weight if weight is not None else _NULL, sums, dx, _i32(N),
             _i32(C), _i64(HW), _f32(eps)))
    return dx, dweight, dbias


# --------------------------------------------------------------------------------------------
# ReLU, loss
# --------------------------------------------------------------------------------------------

def relu_forward(x):
    x = _dev(x, "x")
    y = cupy.empty_like(x)
    _launch("elementwise.cu", "relu_forward", x.size, (x, y, _i64(x.size)))
    return y


def relu_backward(y, dy):
    """dx = dy where y > 0, else 0."""
    y, dy = _dev(y, "y"), _dev(dy, "grad_output")
    if y.shape != dy.shape:
        raise ValueError(f"relu backward: y {y.shape} and grad_output {dy.shape} differ")
    dx = cupy.empty_like(dy)
    _launch("elementwise.cu", "relu_backward", dy.size, (y, dy, dx, _i64(dy.size)))
    return dx


def accumulate_(dst, src):
    """dst += src in place."""
    dst += src


def _target(target, N, K):
    if isinstance(target, cupy.ndarray):
        t = target
    else:  # a host array of class indices is fine: it is tiny
        t = cupy.asarray(np.asarray(target))
    if t.shape != (N,):
        raise ValueError(f"cross_entropy: target must have shape ({N},), got {t.shape}")
    if t.dtype != np.int64 or not t.flags.c_contiguous:
        t = cupy.ascontiguousarray(t, dtype=np.int64)
    return t


def softmax_cross_entropy_forward(logits, target, label_smoothing):
    """(loss, prob): loss is a 0-d float32 CuPy array (no host sync), prob = softmax(logits).

    A target outside [0, K) gives a NaN loss instead of an out-of-bounds read; the ops layer
    is expected to have rejected it with a clear error (outside graph capture).
    """
    logits = _dev(logits, "logits")
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: logits must be (N, K), got {logits.shape}")
    N, K = logits.shape
    t = _target(target, N, K)
    prob = cupy.empty_like(logits)
    rows = cupy.empty((N,), dtype=np.float32)
    loss = cupy.empty((), dtype=np.float32)
    if N == 0 or K == 0:
        loss.fill(np.nan)
        return loss, prob
    warps = _BLOCK // 32
    _function("loss.cu", "softmax_xent_forward")(
        (max(1, min((N + warps - 1) // warps, _MAX_GRID)),), (_BLOCK,),
        (logits, t, prob, rows, _i32(N), _i32(K), _f32(label_smoothing)))
    _function("loss.cu", "mean_reduce")((1,), (_BLOCK,), (rows, loss, _i32(N)))
    return loss, prob


def softmax_cross_entropy_backward(prob, target, label_smoothing, dloss):
    """dlogits = dloss / N * (prob - (1 - eps) onehot - eps / K).

    ``dloss`` may be a Python / NumPy number (passed by value) or a CuPy scalar array (read on
    the device, so a captured step needs no host round trip).
    """
    prob = _dev(prob, "prob")
    N, K = prob.shape
    t = _target(target, N, K)
    dlogits = cupy.empty_like(prob)
    if isinstance(dloss, cupy.ndarray):
        dl_ptr = _dev(dloss.reshape(-1)[:1], "dloss")
        dl_val = _f32(0.0)
    else:
        dl_ptr, dl_val = _NULL, _f32(float(dloss))
    _launch("loss.cu", "softmax_xent_backward", prob.size,
            (prob, t, dl_ptr, dl_val, dlogits, _i32(N), _i32(K), _f32(label_smoothing)))
    return dlogits


# --------------------------------------------------------------------------------------------
# Random numbers
# --------------------------------------------------------------------------------------------

_rng_states: dict = {}     # device -> cupy uint64[2] = (seed, offset), updated on the device
_seed = None


def _initial_seed() -> int:
    """The seed of the last fastconv.manual_seed, else one derived from the CPU generator.

    Deriving it hashes the CPU generator's state without drawing from it, so the CPU stream
    is untouched and the same program with the same manual_seed gets the same GPU numbers.
    """
    if _seed is not None:
        return _seed
    import fastconv.random as _frandom

    if _frandom.initial_seed() is not None:
        return _frandom.initial_seed()
    state = json.dumps(_frandom.cpu_rng_state(), sort_keys=True).encode()
    return int.from_bytes(hashlib.sha256(state).digest()[:8], "little") >> 1


def _rng_state():
    dev = _current_device()
    st = _rng_states.get(dev)
    if st is None:
        st = cupy.array(np.array([_initial_seed(), 0], dtype=np.uint64))
        _rng_states[dev] = st
    return st


def manual_seed(seed: int) -> None:
    """Reseed the GPU generator of every device in use: state = (seed, offset 0).

    Called by :func:`fastconv.manual_seed` (this module registers its generator with
    ``fastconv.random`` when it is imported). The state arrays are updated in place, so
    captured graphs that read them see the new seed.
    """
    global _seed
    _seed = int(seed) & 0xFFFFFFFFFFFFFFFF
    host = np.array([_seed, 0], dtype=np.uint64)
    for st in _rng_states.values():
        st[...] = cupy.asarray(host)


def get_rng_state() -> dict:
    """The current device's generator state as a JSON-serialisable dict (synchronises)."""
    st = cupy.asnumpy(_rng_state())
    return {"generator": "philox4x32-10", "seed": int(st[0]), "offset": int(st[1])}


def set_rng_state(state: dict) -> None:
    """Restore a state returned by :func:`get_rng_state` on the current device."""
    if not isinstance(state, dict) or state.get("generator") != "philox4x32-10":
        raise ValueError("set_rng_state: expected a dict from "
                         "fastconv.backend.cuda.get_rng_state()")
    host = np.array([int(state["seed"]), int(state["offset"])], dtype=np.uint64)
    _rng_state()[...] = cupy.asarray(host)


def _shape(shape) -> tuple:
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(int(s) for s in shape)


def random_uniform(shape):
    """Uniform [0, 1) float32 draws on the current device (Philox4x32-10, 24-bit mantissa)."""
    out = cupy.empty(_shape(shape), dtype=np.float32)
    st = _rng_state()
    if out.size:
        _launch("elementwise.cu", "philox_uniform", (out.size + 3) // 4,
                (out, _i64(out.size), st))
    _function("elementwise.cu", "rng_advance")((1,), (1,), (st,))
    return out


# --------------------------------------------------------------------------------------------
# CUDA graphs
# --------------------------------------------------------------------------------------------

def is_capturing() -> bool:
    """True while the current stream is being captured into a CUDA graph.

    The ops layer must skip anything that synchronises with the host (``.item()``, range
    checks of class indices read back from the device, printing) while this is true.
    """
    try:
        return bool(cupy.cuda.get_current_stream().is_capturing())
    except Exception:
        return False


class CapturedStep:
    """A training step captured once as a CUDA graph and replayed with a single launch.

    ``step_fn`` is a callable without arguments that runs forward, backward and the optimizer
    step on *static* buffers: it reads its batch from arrays that stay the same objects (copy
    each new batch into them, ``x_static[...] = batch``), and the optimizer updates the
    parameters and its state in place (``p[...] -= ...``, as fastconv.optim does), never by
    rebinding ``param.data`` to a new array. Construction:

    1. runs ``step_fn`` eagerly ``warmup`` times on a side stream (these are real training
       steps: kernels get compiled, gradient and momentum buffers get allocated);
    2. captures one more call into a graph *without executing it* (stream capture records
       the kernels and cuBLAS calls; host-side code in ``step_fn`` does run once);
    3. instantiates the graph.

    Every :meth:`replay` then performs exactly one more training step and returns what the
    captured call returned (for example the device loss array, refreshed in place).
    Memory allocated during capture comes from a private memory pool owned by this object, so
    no other array can be handed the addresses the graph writes to.

    Rules for ``step_fn`` (standard for stream capture): no host synchronisation (``.item()``,
    ``float(loss)``, ``cupy.asnumpy``, printing device values), no host-to-device copies of
    new data inside the step, the same shapes every time. Host-side values (a Python step
    counter, a learning rate) are recorded as they were during capture; one that must change
    per step has to live in a device array that the step reads. Gradients are accumulated by the
    backward pass: zero them inside ``step_fn`` in place (``g.fill(0)``) or let the first
    backward write them (``zero_grad`` to None before capture is fine: the captured backward
    allocates them from the private pool).

    ``params``: optional iterable of the parameters (objects with a ``.data`` array, such as
    fastconv Parameters); if given, the constructor checks that the captured call did not
    rebind any ``.data`` to a new array (replays would then keep updating a stale copy).
    """

    def __init__(self, step_fn, warmup: int = 2, params=None):
        if warmup < 1:
            raise ValueError("CapturedStep: warmup must be >= 1 (kernels must be compiled and "
                             "buffers allocated before capture)")
        self._fn = step_fn
        self._stream = cupy.cuda.Stream(non_blocking=True)
        self._pool = cupy.cuda.MemoryPool()
        self._ev_in = cupy.cuda.Event(disable_timing=True)
        self._ev_out = cupy.cuda.Event(disable_timing=True)
        self.graph = None
        self.output = None
        params = [p for p in params if not isinstance(p, cupy.ndarray)] if params else []
        outer = cupy.cuda.get_current_stream()
        self._ev_in.record(outer)
        self._stream.wait_event(self._ev_in)
        with cupy.cuda.using_allocator(self._pool.malloc):
            with self._stream:
                for _ in range(int(warmup)):
                    step_fn()
                self._stream.synchronize()
                before = [_ptr(p.data) for p in params]
                self._stream.begin_capture()
                try:
                    self.output = step_fn()
                except BaseException:
                    try:
                        self._stream.end_capture()
                    except Exception:
                        pass
                    raise
                self.graph = self._stream.end_capture()
        self._ev_out.record(self._stream)
        outer.wait_event(self._ev_out)
        after = [_ptr(p.data) for p in params]
        if before != after:
            raise RuntimeError("CapturedStep: the step rebound parameter arrays during capture; "
                               "update parameters in place so that replays see the new values")

    def replay(self):
        """Run the captured step once more (ordered after the caller's stream; returns output)."""
        outer = cupy.cuda.get_current_stream()
        self._ev_in.record(outer)
        self._stream.wait_event(self._ev_in)
        self.graph.launch(self._stream)
        self._ev_out.record(self._stream)
        outer.wait_event(self._ev_out)
        return self.output

    __call__ = replay


def capture(step_fn, warmup: int = 2, params=None) -> CapturedStep:
    """Capture ``step_fn`` as a CUDA graph: shorthand for :class:`CapturedStep`."""
    return CapturedStep(step_fn, warmup=warmup, params=params)


# --------------------------------------------------------------------------------------------
# Module set-up
# --------------------------------------------------------------------------------------------

set_tf32(os.environ.get("FASTCONV_TF32", "0") not in ("", "0", "false", "False"))

if __name__ == "fastconv.backend.cuda":
    import fastconv.random as _frandom

    _frandom.register_device_generator("cuda", manual_seed, get_rng_state, set_rng_state)
