"""``fastconv.amp``: mixed precision with PyTorch's names (``torch.autocast``, ``GradScaler``).

``autocast(device_type="cpu" | "cuda", dtype=fastconv.bfloat16, enabled=True)`` (also
``fastconv.autocast`` and ``fastconv.cuda.amp.autocast``), as a context manager or decorator,
runs the ops of PyTorch's lower-precision list in bfloat16, as ``torch.autocast`` does on the
CPU:

* **bfloat16:** ``conv2d`` (``nn.Conv2d``), ``linear`` (``nn.Linear``) and ``matmul`` (``@``,
  ``mm``, ``bmm``) round their inputs (activations and weights) to bfloat16, multiply them
  with float32 accumulation, and round their outputs to bfloat16. In backward, the incoming
  gradient and the input gradient are rounded to bfloat16 as well (torch computes them in
  bfloat16); the weight and bias gradients keep their float32 sums.
* **float32:** everything else (batch norm, pooling, activations, softmax, losses,
  reductions) computes in float32 on the bfloat16 values it is given. Parameters and optimizer
  state stay float32 (master weights); ``.grad`` is float32.
* **Storage.** fastconv keeps bfloat16 values in float32 arrays: each value is exactly a
  bfloat16 number, and the tensor reports ``float32`` (torch's reports ``bfloat16``). Rounding
  is round-to-nearest-even of the float32 value (NaN stays NaN), the kernel
  ``round_bf16_`` of each backend, as torch converts.
* **Which op is in which list** is decided when the op runs: a backward outside the region
  still rounds where its forward did, as in torch.
* **float16** is not supported: ``dtype=fastconv.float16`` (and ``device_type="cuda"``
  without a dtype, whose torch default is float16) warns and uses bfloat16, which needs no
  loss scaling (it has float32's exponent range).

On CPUs with bfloat16 instructions (AMX-BF16, AVX512-BF16) the CPU backend runs the products of
conv2d, linear and 2-D matmul on its bfloat16 GEMM (``fastconv.backend.cpu.bf16_kernels()``),
which rounds the operands as it packs them: the same results up to float32 summation order.
On GPUs of compute capability 8.0 and later the CUDA backend does the same on the tensor
cores (``cublasGemmEx`` on bfloat16 copies; ``fastconv.backend.cuda.bf16_kernels()``).
On CPUs without them the region runs the float32 kernels on rounded values, so it is slower
than float32 (the rounding passes): it shows bfloat16's numerics, not its speed.

``GradScaler`` (also ``fastconv.cuda.amp.GradScaler``) behaves as PyTorch's
``GradScaler(enabled=False)``: with bfloat16 no gradient underflows, so ``scale(loss)`` returns
``loss``, ``step(optimizer)`` calls ``optimizer.step()``, ``unscale_`` and ``update`` do
nothing and ``get_scale()`` is 1.0; ``enabled=True`` warns that it is disabled.
"""

from __future__ import annotations

import contextlib
import threading
import warnings

import numpy as np

from fastconv import dtypes

__all__ = ["GradScaler", "autocast", "get_autocast_dtype", "is_autocast_enabled", "lowp"]

_DEVICE_TYPES = ("cpu", "cuda")
_state = threading.local()  # per thread, as torch's: {device_type: enabled} as a stack


def _stack() -> list:
    if not hasattr(_state, "stack"):
        _state.stack = []
    return _state.stack


def is_autocast_enabled(device_type: str = "cuda") -> bool:
    """Whether autocast is on for ``device_type`` in this thread (torch's signature)."""
    for dev, on in reversed(_stack()):
        if dev == device_type:
            return on
    return False


def get_autocast_dtype(device_type: str = "cuda"):
    """The lower-precision dtype autocast uses for ``device_type``: always bfloat16."""
    return dtypes.bfloat16


def lowp(device) -> bool:
    """Whether an op of the lower-precision list on ``device`` runs in bfloat16 now."""
    return bool(_stack()) and is_autocast_enabled(getattr(device, "type", str(device)))


class autocast(contextlib.ContextDecorator):
    """torch.autocast: conv2d, linear and matmul in bfloat16 inside the region (see the module
    docstring)."""

    def __init__(self, device_type: str = "cuda", dtype=None, enabled: bool = True,
                 cache_enabled=None):
        if not isinstance(device_type, str):  # a ValueError, as torch raises
            raise ValueError(f"autocast: device_type must be a str like 'cuda' or 'cpu', got "  # noqa: TRY004
                             f"{device_type!r}")
        if device_type not in _DEVICE_TYPES:
            raise RuntimeError(f"autocast: device_type must be 'cpu' or 'cuda', got "
                               f"{device_type!r}")
        if dtype is None:  # torch's defaults: bfloat16 on the CPU, float16 on CUDA
            want = dtypes.bfloat16 if device_type == "cpu" else None
        else:
            want = dtypes.resolve(dtype)
        if enabled and want != dtypes.bfloat16:
            asked = "float16 (torch's default for 'cuda')" if dtype is None else \
                np.dtype(want).name if want is not None else repr(dtype)
            warnings.warn(f"autocast: fastconv's lower precision is bfloat16 only; the region "
                          f"uses bfloat16 instead of {asked}", UserWarning, stacklevel=2)
        self.device_type, self.fast_dtype = device_type, dtypes.bfloat16
        self.enabled = bool(enabled)

    def __enter__(self):
        _stack().append((self.device_type, self.enabled))
        return self

    def __exit__(self, *exc):
        _stack().pop()
        return False


class GradScaler:
    """torch.amp.GradScaler's signature, working as PyTorch's disabled scaler (see the module
    docstring)."""

    def __init__(self, device: str = "cuda", init_scale: float = 2.0 ** 16,
                 growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000, enabled: bool = True):
        if enabled:
            warnings.warn("GradScaler is enabled, but fastconv's mixed precision is bfloat16 "
                          "(gradients cannot underflow as in float16) and float32 otherwise: "
                          "disabling it. scale() returns the loss unchanged and step() calls "
                          "optimizer.step()", UserWarning, stacklevel=2)
        self.device = device
        # kept for torch's getters and setters; a disabled scaler never uses them
        self._init_scale = init_scale
        self._growth_factor = growth_factor
        self._backoff_factor = backoff_factor
        self._growth_interval = growth_interval

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def set_growth_factor(self, new_factor: float) -> None:
        self._growth_factor = new_factor

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def set_backoff_factor(self, new_factor: float) -> None:
        self._backoff_factor = new_factor

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def set_growth_interval(self, new_interval: int) -> None:
        self._growth_interval = new_interval

    def is_enabled(self) -> bool:
        return False

    def scale(self, outputs):
        return outputs

    def unscale_(self, optimizer) -> None:
        pass

    def step(self, optimizer, *args, **kwargs):
        return optimizer.step(*args, **kwargs)

    def update(self, new_scale=None) -> None:
        pass

    def get_scale(self) -> float:
        return 1.0

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state_dict) -> None:
        pass
