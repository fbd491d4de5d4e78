"""Backends: the array-level kernels behind every op.

A backend is a module that exports the kernel interface declared in
:mod:`fastconv.backend.interface`: ``cpu`` (NumPy arrays, kernels from ``fastconv._C``) and
``cuda`` (CuPy arrays, kernels from ``fastconv/cuda/*.cu``). :func:`get_backend` finds the one
for a device; :func:`device_of` says which device an array lives on.
"""

from __future__ import annotations

_BACKENDS: dict = {}


def get_backend(device: str):
    """The backend module for ``device`` ("cpu" or "cuda"), imported on first use.

    The CUDA backend is optional: asking for it without CuPy or a GPU raises a
    clear error, while ``import fastconv`` and the CPU backend never need CuPy.
    """
    backend = _BACKENDS.get(device)
    if backend is None:
        if device == "cpu":
            from fastconv.backend import cpu as backend
        elif device == "cuda":
            from fastconv.backend import cuda as backend
        else:
            raise ValueError(f"unknown device {device!r}: expected 'cpu' or 'cuda'")
        _BACKENDS[device] = backend
    return backend


def device_of(array) -> str:
    """'cpu' for NumPy arrays, 'cuda' for CuPy arrays."""
    import numpy as np

    if isinstance(array, (np.ndarray, np.generic)):
        return "cpu"
    if type(array).__module__.startswith("cupy"):
        return "cuda"
    raise TypeError(f"expected a NumPy or CuPy array, got {type(array).__name__}")
