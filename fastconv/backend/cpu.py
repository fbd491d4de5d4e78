"""CPU backend: NumPy arrays, kernels from the compiled extension ``fastconv._C``.

Exports the kernel interface of :mod:`fastconv.backend.interface`, plus the CPU's controls
(threads, caches, which BLAS and SIMD kernels run).
The heavy lifting (convolution, pooling, normalisation, activations, padding,
resizing, the loss) is C++ with OpenMP; every matrix product goes through a private OpenBLAS (the
``scipy-openblas32`` wheel) that ``_C`` loads at import, so fastconv's GEMM speed
does not depend on which BLAS NumPy happens to use.

There is no pure-Python fallback: if ``_C`` is missing, stale or cannot load
its BLAS, importing this module raises ImportError saying how to fix it.
"""

from __future__ import annotations

import os

import numpy

__all__ = [
    # the kernel interface (fastconv.backend.interface.KERNELS)
    "xp", "gemm", "conv2d_forward", "conv2d_backward",
    "max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
    "adaptive_max_pool2d_forward", "adaptive_max_pool2d_backward",
    "lrn_forward", "lrn_backward",
    "batch_norm_forward_train", "batch_norm_forward_eval", "batch_norm_backward",
    "batch_norm_max_pool2d_forward", "batch_norm_max_pool2d_backward",
    "group_norm_forward", "group_norm_backward",
    "relu_forward", "relu_backward", "accumulate_", "round_bf16_",
    "leaky_relu_forward", "leaky_relu_backward", "elu_forward", "elu_backward",
    "gelu_forward", "gelu_backward", "silu_forward", "silu_backward",
    "sigmoid_forward", "sigmoid_backward", "tanh_forward", "tanh_backward",
    "pad_forward", "pad_backward", "interpolate_forward", "interpolate_backward",
    "softmax_cross_entropy_forward", "softmax_cross_entropy_backward",
    "random_uniform", "dropout_forward", "dropout_backward", "is_capturing",
    # the CPU's controls (fastconv.backend.interface.CONTROLS["cpu"])
    "ABI_VERSION", "blas_info", "cpu_features", "set_num_threads", "get_num_threads",
    "cache_info", "empty_cache",
    # bfloat16 products for autocast, where the CPU has bfloat16 kernels (ops use them if present)
    "bf16_kernels", "gemm_bf16", "conv2d_forward_bf16", "conv2d_backward_bf16",
]

# Must equal _C.ABI_VERSION (csrc/kernels.h, kAbiVersion): both change together.
ABI_VERSION = 12

_REBUILD = "rebuild it with `pip install -e .` from the repository root"


# How long an idle OpenMP thread spins before it sleeps. libgomp reads this once,
# when it is loaded, which happens right here as a dependency of _C (unless
# another library, e.g. torch, loaded its libgomp first: the process then shares
# that one). Its default, ~300k spins (milliseconds), holds on to cores that other
# processes on a busy machine need, and the spinning threads slow everyone down;
# 3,000 spins (~0.2 ms) still bridge the gaps between kernels, so an idle machine
# loses nothing. The measurements are in BENCHMARKS.md ("Why the CPU kernels are
# tuned as they are"). A setting the user made is kept, and the variable is
# removed again after loading.
_SPIN_COUNT = "3000"


def _import_extension():
    set_spin = "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ
    if set_spin:
        os.environ["GOMP_SPINCOUNT"] = _SPIN_COUNT
    try:
        from fastconv import _C as ext
    finally:
        if set_spin:
            os.environ.pop("GOMP_SPINCOUNT", None)
    return ext


try:
    _C = _import_extension()
except ImportError as exc:  # not built, or built for another Python / platform
    if "FASTCONV_ISA" in str(exc) or "FASTCONV_BF16_ISA" in str(exc):
        # a kernel set the user asked for by name; a rebuild won't help
        raise ImportError(f"fastconv._C: {exc}") from None
    import importlib.util

    built = importlib.util.find_spec("fastconv._C") is not None
    reason = f"does not load ({exc})" if built else "is not built"
    raise ImportError(f"fastconv._C (the compiled CPU kernels) {reason}; {_REBUILD}") from exc

if getattr(_C, "ABI_VERSION", None) != ABI_VERSION:
    raise ImportError(
        f"fastconv._C is stale: it has ABI_VERSION {getattr(_C, 'ABI_VERSION', None)}, this "
        f"checkout expects {ABI_VERSION}; {_REBUILD}")


def _blas_path() -> str:
    """Path of the OpenBLAS shared library shipped by the `scipy-openblas32` wheel.

    Found without importing the package: its __init__ loads the library itself,
    and _C.load_blas must be the first to load it, because OpenBLAS reads its
    settings (core type, thread idle time) only when it is loaded.
    """
    import importlib.util

    spec = importlib.util.find_spec("scipy_openblas32")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "fastconv's CPU backend needs the OpenBLAS from the `scipy-openblas32` package: "
            "`pip install scipy-openblas32` (it is a dependency of fastconv)")
    lib_dir = os.path.join(list(spec.submodule_search_locations)[0], "lib")
    names = os.listdir(lib_dir) if os.path.isdir(lib_dir) else []
    for name in sorted(names):
        if name.startswith("libscipy_openblas") and (".so" in name or name.endswith(".dylib")):
            return os.path.join(lib_dir, name)
    raise ImportError(
        f"no libscipy_openblas library in {lib_dir}; reinstall it with "
        "`pip install --force-reinstall scipy-openblas32`")


try:
    _C.load_blas(_blas_path())
except ImportError:
    raise
except Exception as exc:  # noqa: BLE001 - turn any loader failure into an ImportError
    raise ImportError(f"fastconv._C could not load OpenBLAS: {exc}; "
                      "reinstall it with `pip install --force-reinstall scipy-openblas32`") from exc

xp = numpy


def blas_info() -> dict:
    """Which OpenBLAS kernels (core name) and how many threads the backend uses."""
    return _C.blas_info()


def cpu_features() -> dict:
    """The CPU's SIMD features (with 'avx512bf16', 'amx_bf16', 'amx_tile'), the convolution
    kernels in use ('conv_kernels'), the bfloat16 GEMM in use ('bf16_kernels', see
    :func:`bf16_kernels`) and OpenMP thread counts, for benchmarks and notes."""
    return _C.cpu_features()


def set_num_threads(n: int) -> None:
    """Threads for both the OpenMP kernels and OpenBLAS (capped at OMP_THREAD_LIMIT)."""
    _C.set_num_threads(int(n))


def get_num_threads() -> int:
    return _C.get_num_threads()


def cache_info() -> dict:
    """Sizes of the output cache and of the kernels' working buffers (see _C.cache_info)."""
    return _C.cache_info()


def empty_cache() -> None:
    """Give the memory cached for reuse by large kernel outputs, and every thread's
    working buffers, back to the OS."""
    _C.empty_cache()


# ---------------------------------------------------------------- GEMM

def gemm(a, b, trans_a=False, trans_b=False):
    """op(a) @ op(b) for 2-D float32 arrays (op = transpose when the flag is set)."""
    return _C.gemm(a, b, trans_a, trans_b)


# ---------------------------------------------------------------- bfloat16 products (autocast)

def bf16_kernels() -> str:
    """The bfloat16 GEMM variant in use (csrc/gemm_bf16.h): 'amx' (AMX-BF16 tiles),
    'avx512bf16' (VDPBF16PS), 'emulated' / 'emulated_amx' (the same kernels with the
    instructions done in software, bit for bit; slow, for tests) or 'none'.

    Chosen at import: ``FASTCONV_BF16_ISA`` names one (an unknown name, or one this CPU cannot
    run, fails the import), else amx where the CPU and the OS allow it, else avx512bf16 where
    the CPU has it, else none. A real variant is checked against its emulation on the first
    call; if they disagree, a RuntimeWarning says so and this returns 'none'. Under
    ``fastconv.autocast``, conv2d, linear and 2-D matmul run their products on it unless it
    is 'none' (then they round their inputs and run the float32 kernels: the same numbers up
    to the order of the float32 sums).
    Tests switch the variant with the private ``_C._set_bf16_isa(name)``."""
    return _C.bf16_kernels()


def gemm_bf16(a, b, trans_a=False, trans_b=False, bias=None, out=None):
    """op(a) @ op(b) for 2-D float32 arrays (any strides), each value rounded to bfloat16 as it
    is read, summed in float32; ``bias`` (M,) starts row i's sums; with ``out`` (M, N) the
    product is added to it (returned). Needs ``bf16_kernels() != 'none'``."""
    return _C.gemm_bf16(a, b, bool(trans_a), bool(trans_b), bias, out)


def conv2d_forward_bf16(x, w, b, stride, padding, dilation, groups, relu=False):
    """conv2d_forward with x and w rounded to bfloat16, on the bfloat16 GEMM; y rounded to
    bfloat16 (autocast's output), then relu_forward's max(y, 0) with ``relu``, as y is
    written."""
    return _C.conv2d_forward_bf16(x, w, b, tuple(stride), tuple(padding), tuple(dilation),
                                  int(groups), bool(relu))


def conv2d_backward_bf16(x, w, dy, stride, padding, dilation, groups, need_dx, need_dw,
                         need_db=False):
    """(dx, dw, db) of conv2d_forward_bf16 with x, w and dy rounded to bfloat16: dx rounded
    to bfloat16, dw and db float32 sums."""
    return _C.conv2d_backward_bf16(x, w, dy, tuple(stride), tuple(padding), tuple(dilation),
                                   int(groups), bool(need_dx), bool(need_dw), bool(need_db))


# ---------------------------------------------------------------- convolution

def conv2d_forward(x, w, b, stride, padding, dilation, groups):
    return _C.conv2d_forward(x, w, b, tuple(stride), tuple(padding), tuple(dilation), int(groups))


def conv2d_backward(x, w, dy, stride, padding, dilation, groups, need_dx, need_dw, need_db):
    return _C.conv2d_backward(x, w, dy, tuple(stride), tuple(padding), tuple(dilation),
                              int(groups), bool(need_dx), bool(need_dw), bool(need_db))


# ---------------------------------------------------------------- pooling

def max_pool2d_forward(x, kernel, stride, padding, ceil_mode, dilation=(1, 1)):
    return _C.max_pool2d_forward(x, tuple(kernel), tuple(stride), tuple(padding), bool(ceil_mode),
                                 tuple(dilation))


def max_pool2d_backward(dy, indices, x_shape, kernel, stride, padding, dilation=(1, 1)):
    # The window is not needed here: one thread scatters each plane in order, which is
    # already deterministic. (The CUDA backend uses it to gather instead of using atomics.)
    return _C.max_pool2d_backward(dy, indices, list(x_shape))


def adaptive_max_pool2d_forward(x, output_size):
    return _C.adaptive_max_pool2d_forward(x, tuple(output_size))


def adaptive_max_pool2d_backward(dy, indices, x_shape):
    # The saved argmax is all the scatter needs, whatever the windows were.
    return _C.max_pool2d_backward(dy, indices, list(x_shape))


def avg_pool2d_forward(x, kernel, stride, padding, ceil_mode, count_include_pad):
    return _C.avg_pool2d_forward(x, tuple(kernel), tuple(stride), tuple(padding), bool(ceil_mode),
                                 bool(count_include_pad))


def avg_pool2d_backward(dy, x_shape, kernel, stride, padding, ceil_mode, count_include_pad):
    return _C.avg_pool2d_backward(dy, list(x_shape), tuple(kernel), tuple(stride), tuple(padding),
                                  bool(ceil_mode), bool(count_include_pad))


# ---------------------------------------------------------------- normalisation

def lrn_forward(x, size, alpha, beta, k):
    return _C.lrn_forward(x, int(size), float(alpha), float(beta), float(k))


def lrn_backward(x, y, scale, dy, size, alpha, beta, k):
    return _C.lrn_backward(x, y, scale, dy, int(size), float(alpha), float(beta), float(k))


def batch_norm_forward_train(x, weight, bias, eps):
    return _C.batch_norm_forward_train(x, weight, bias, float(eps))


def batch_norm_forward_eval(x, mean, var, weight, bias, eps):
    return _C.batch_norm_forward_eval(x, mean, var, weight, bias, float(eps))


def batch_norm_backward(x, weight, mean, var, eps, dy):
    return _C.batch_norm_backward(x, weight, mean, var, float(eps), dy)


def batch_norm_max_pool2d_forward(x, weight, bias, eps, kernel, stride, padding, ceil_mode,
                                  dilation=(1, 1)):
    return _C.batch_norm_max_pool2d_forward(x, weight, bias, float(eps), tuple(kernel),
                                            tuple(stride), tuple(padding), bool(ceil_mode),
                                            tuple(dilation))


def batch_norm_max_pool2d_backward(x, weight, mean, var, eps, dy, indices, kernel, stride, padding,
                                   dilation=(1, 1)):
    # the window is not needed: as in max_pool2d_backward, each plane is scattered in order
    return _C.batch_norm_max_pool2d_backward(x, weight, mean, var, float(eps), dy, indices)


def group_norm_forward(x, weight, bias, groups, eps):
    return _C.group_norm_forward(x, weight, bias, int(groups), float(eps))


def group_norm_backward(x, weight, mean, rstd, dy, groups, need_dx, need_dparams):
    return _C.group_norm_backward(x, weight, mean, rstd, dy, int(groups), bool(need_dx),
                                  bool(need_dparams))


# ---------------------------------------------------------------- padding and resizing

def pad_forward(x, index, value):
    return _C.pad_forward(x, list(index), float(value))


def pad_backward(dy, x_shape, index):
    return _C.pad_backward(dy, list(x_shape), list(index))


def interpolate_forward(x, h_index, h_weight, w_index, w_weight):
    return _C.interpolate_forward(x, h_index, h_weight, w_index, w_weight)


def interpolate_backward(dy, x_shape, h_index, h_weight, w_index, w_weight):
    return _C.interpolate_backward(dy, list(x_shape), h_index, h_weight, w_index, w_weight)


# ---------------------------------------------------------------- activation and loss

def relu_forward(x):
    return _C.relu_forward(x)


def relu_backward(y, dy):
    return _C.relu_backward(y, dy)


def round_bf16_(x):
    _C.round_bf16_inplace(x)


def leaky_relu_forward(x, negative_slope):
    return _C.leaky_relu_forward(x, float(negative_slope))


def leaky_relu_backward(x, dy, negative_slope):
    return _C.leaky_relu_backward(x, dy, float(negative_slope))


def elu_forward(x, alpha):
    return _C.elu_forward(x, float(alpha))


def elu_backward(x, dy, alpha):
    return _C.elu_backward(x, dy, float(alpha))


def gelu_forward(x, approximate):
    return _C.gelu_forward(x, approximate == "tanh")


def gelu_backward(x, dy, approximate):
    return _C.gelu_backward(x, dy, approximate == "tanh")


def silu_forward(x):
    return _C.silu_forward(x)


def silu_backward(x, dy):
    return _C.silu_backward(x, dy)


def sigmoid_forward(x):
    return _C.sigmoid_forward(x)


def sigmoid_backward(y, dy):
    return _C.sigmoid_backward(y, dy)


def tanh_forward(x):
    return _C.tanh_forward(x)


def tanh_backward(y, dy):
    return _C.tanh_backward(y, dy)


def accumulate_(dst, src):
    # Threaded where both are plain float32 arrays of one shape (what autograd
    # hands it almost always); NumPy's in-place add (broadcasts, casts) otherwise.
    if (isinstance(src, numpy.ndarray) and dst.dtype == src.dtype == numpy.float32
            and dst.shape == src.shape and dst.flags.c_contiguous and src.flags.c_contiguous
            and not numpy.may_share_memory(dst, src)):
        _C.add_inplace(dst, src)
    else:
        dst += src


def softmax_cross_entropy_forward(logits, target, label_smoothing):
    return _C.softmax_cross_entropy_forward(logits, target, float(label_smoothing))


def softmax_cross_entropy_backward(prob, target, label_smoothing, dloss):
    return _C.softmax_cross_entropy_backward(prob, target, float(label_smoothing), float(dloss))


# ---------------------------------------------------------------- random numbers, graphs

def _seed() -> int:
    """A 64-bit Philox key for one call, from fastconv.random's CPU generator (so manual_seed
    and saved generator states reproduce the draws)."""
    from fastconv import random

    return int(random.generator().integers(0, 2**64, dtype=numpy.uint64))


def random_uniform(shape):
    """Uniform [0, 1) float32 draws (24 random bits): Philox4x32-10 in ``_C``."""
    shape = (shape,) if isinstance(shape, (int, numpy.integer)) else tuple(shape)
    return _C.random_uniform(shape, _seed())


def dropout_forward(x, p):
    return _C.dropout_forward(x, float(p), _seed())


def dropout_backward(dy, mask):
    return _C.dropout_backward(dy, mask)


def is_capturing() -> bool:
    """Always False: the CPU has no graph capture."""
    return False
