"""``fastconv.amp``: PyTorch's mixed-precision names, for scripts that use them.

fastconv computes in float32 only (see ``fastconv.dtypes``), so there is no lower precision to
cast to and no gradient that can underflow. A script written with ``autocast`` and
``GradScaler`` still runs, in float32:

* ``autocast(...)`` (also ``fastconv.autocast`` and ``fastconv.cuda.amp.autocast``) is a
  context manager and decorator that changes nothing; with ``enabled=True`` it warns once per
  call site that the region runs in float32 (PyTorch would compute parts of it in float16 or
  bfloat16, so its numbers differ slightly).
* ``GradScaler(...)`` (also ``fastconv.cuda.amp.GradScaler``) behaves as PyTorch's
  ``GradScaler(enabled=False)``: ``scale(loss)`` returns ``loss``, ``step(optimizer)`` calls
  ``optimizer.step()``, ``unscale_`` and ``update`` do nothing, ``get_scale()`` is 1.0. With
  ``enabled=True`` it warns that it is disabled, as PyTorch's does on a machine without CUDA.
"""

from __future__ import annotations

import contextlib
import warnings

__all__ = ["GradScaler", "autocast"]


class autocast(contextlib.ContextDecorator):
    """torch.autocast's signature; runs the region in float32 (see the module docstring)."""

    def __init__(self, device_type: str = "cuda", dtype=None, enabled: bool = True,
                 cache_enabled=None):
        if not isinstance(device_type, str):  # a ValueError, as torch raises
            raise ValueError(f"autocast: device_type must be a str like 'cuda' or 'cpu', got "  # noqa: TRY004
                             f"{device_type!r}")
        self.device_type, self.fast_dtype, self.enabled = device_type, dtype, bool(enabled)
        if self.enabled:
            warnings.warn("autocast: fastconv computes in float32 only; the region runs in "
                          "float32 (autocast has no effect)", UserWarning, stacklevel=2)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class GradScaler:
    """torch.amp.GradScaler's signature, working as PyTorch's disabled scaler (see the module
    docstring)."""

    def __init__(self, device: str = "cuda", init_scale: float = 2.0 ** 16,
                 growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000, enabled: bool = True):
        if enabled:
            warnings.warn("GradScaler is enabled, but fastconv computes in float32 (gradients "
                          "cannot underflow): disabling it. scale() returns the loss unchanged "
                          "and step() calls optimizer.step()", UserWarning, stacklevel=2)
        self.device = device

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
