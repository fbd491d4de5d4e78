"""CUDA backend: fastconv's own GPU kernels, driven through CuPy.

The kernels are CUDA C in ``fastconv/cuda/*.cu`` (each file says at its top how its work maps
onto threads and blocks); GEMMs go to cuBLAS through CuPy's bindings; no cuDNN anywhere. This
package exports the kernel interface of :mod:`fastconv.backend.interface` with CuPy arrays in
and out, plus the GPU's controls. Where each part lives:

    launch.py       compiling (cupy.RawModule) and launching kernels, argument helpers
    blas.py         gemm on cuBLAS; set_tf32 / get_tf32; bfloat16 GEMMs (cublasGemmEx)
    conv.py         conv2d_forward / conv2d_backward (im2col + GEMM); set_workspace_limit
    pool.py         max / adaptive max / average / global average pooling
    norm.py         LRN and batch norm
    norm_layer.py   group norm (and layer norm through it)
    elementwise.py  ReLU, dropout, accumulate_, round_bf16_
    activation.py   leaky ReLU, ELU, GELU, SiLU, sigmoid, tanh
    pad.py          padding in every mode (index tables)
    resize.py       nearest / bilinear interpolation
    loss.py         softmax cross-entropy
    rng.py          random_uniform (Philox4x32-10); manual_seed, get/set_rng_state
    graphs.py       is_capturing; CapturedStep / capture (a training step as a CUDA graph)

The random numbers' state ``{"seed", "offset"}`` is JSON-serialisable and part of
:func:`fastconv.get_rng_state`, so checkpoints carry it.

It is imported only when a CUDA device is requested; without CuPy or without a GPU the import
raises an :class:`ImportError` / :class:`RuntimeError` that says how to install the extra
(``pip install -e .[cuda]``).

Environment variables: ``FASTCONV_TF32=1`` turns TF32 on at import;
``FASTCONV_CUDA_WORKSPACE_MB`` bounds the im2col column buffer (default 512 MiB);
``FASTCONV_CUDA_GEMM=matmul`` routes every GEMM through ``cupy.matmul`` instead of the direct
cuBLAS calls (a debugging aid: same results, more copies).
"""

from __future__ import annotations

import os

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

from .launch import device_count  # noqa: E402

if device_count() == 0:
    raise RuntimeError(
        "fastconv's CUDA backend found no usable NVIDIA GPU: CuPy is installed but "
        "cupy.cuda.runtime.getDeviceCount() reports no device (no GPU, no driver, or "
        "CUDA_VISIBLE_DEVICES hides them). " + _INSTALL_HINT
    )

from .activation import (
    elu_backward,
    elu_forward,
    gelu_backward,
    gelu_forward,
    leaky_relu_backward,
    leaky_relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    silu_backward,
    silu_forward,
    tanh_backward,
    tanh_forward,
)
from .blas import bf16_kernels, gemm, gemm_bf16, get_tf32, set_tf32  # noqa: E402
from .conv import (  # noqa: E402
    conv2d_backward,
    conv2d_backward_bf16,
    conv2d_forward,
    conv2d_forward_bf16,
    set_workspace_limit,
)
from .elementwise import (  # noqa: E402
    accumulate_,
    dropout_backward,
    dropout_forward,
    relu_backward,
    relu_forward,
    round_bf16_,
)
from .graphs import CapturedStep, capture, is_capturing  # noqa: E402
from .loss import softmax_cross_entropy_backward, softmax_cross_entropy_forward  # noqa: E402
from .norm import (  # noqa: E402
    batch_norm_backward,
    batch_norm_forward_eval,
    batch_norm_forward_train,
    batch_norm_max_pool2d_backward,
    batch_norm_max_pool2d_forward,
    lrn_backward,
    lrn_forward,
)
from .norm_layer import group_norm_backward, group_norm_forward
from .pad import pad_backward, pad_forward
from .pool import (  # noqa: E402
    adaptive_max_pool2d_backward,
    adaptive_max_pool2d_forward,
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
from .resize import interpolate_backward, interpolate_forward
from .rng import get_rng_state, manual_seed, random_uniform, set_rng_state  # noqa: E402

xp = cupy

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
    # the GPU's controls (fastconv.backend.interface.CONTROLS["cuda"])
    "device_count", "set_tf32", "get_tf32", "set_workspace_limit",
    "manual_seed", "get_rng_state", "set_rng_state", "CapturedStep", "capture",
    # bfloat16 products for autocast (blas.py), used by the ops where bf16_kernels() allows
    "bf16_kernels", "gemm_bf16", "conv2d_forward_bf16", "conv2d_backward_bf16",
]

set_tf32(os.environ.get("FASTCONV_TF32", "0") not in ("", "0", "false", "False"))

# Only the real package seeds with fastconv.manual_seed; the tests' copies loaded against a
# stand-in CuPy (other module names) stay out of it.
if __name__ == "fastconv.backend.cuda":
    import fastconv.random as _frandom

    _frandom.register_device_generator("cuda", manual_seed, get_rng_state, set_rng_state)
