"""fastconv: a small convolutional-network library.

NumPy arrays in, a PyTorch-style API on top (Tensor with define-by-run autograd,
``fastconv.functional``, ``fastconv.nn``, ``fastconv.optim``), and its own kernels
underneath: compiled C++ on the CPU (``fastconv._C``) and CUDA through CuPy.
"""

from fastconv.backend import get_backend as _get_backend

_get_backend("cpu")  # fail at import, with the rebuild command, if fastconv._C is missing or stale

from fastconv import functional, nn  # noqa: E402
from fastconv.autograd import is_grad_enabled, no_grad, set_grad_enabled  # noqa: E402
from fastconv.random import get_rng_state, manual_seed, set_rng_state  # noqa: E402
from fastconv.tensor import Tensor, tensor  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Tensor", "tensor", "no_grad", "set_grad_enabled", "is_grad_enabled", "manual_seed",
    "get_rng_state", "set_rng_state", "functional", "nn", "optim", "save", "load",
]


def __getattr__(name):
    # optim and the checkpoint functions load on first use (they pull in more modules).
    if name == "optim":
        import importlib

        return importlib.import_module("fastconv.optim")
    if name in ("save", "load"):
        from fastconv import checkpoint

        return getattr(checkpoint, name)
    raise AttributeError(f"module 'fastconv' has no attribute {name!r}")
