"""``fastconv.cuda``: whether a GPU can be used, as ``torch.cuda`` says it.

This directory also holds the CUDA C sources (``*.cu``) that the CUDA backend
(``fastconv/backend/cuda/``) compiles at run time; they ship as package data. Nothing here
imports CuPy until asked, and asking never raises: without CuPy or a GPU,
``is_available()`` is False and ``device_count()`` is 0.
"""

from __future__ import annotations


def device_count() -> int:
    """Number of CUDA devices CuPy can see (0 without CuPy, a driver or a GPU)."""
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # noqa: BLE001 (ImportError, CUDARuntimeError, a missing libcuda, ...)
        return 0


def is_available() -> bool:
    """True when fastconv's CUDA backend can run: CuPy is installed and sees a GPU."""
    return device_count() > 0


def current_device() -> int:
    """The index of the GPU fastconv uses (always 0: the current CuPy device)."""
    return 0


def synchronize() -> None:
    """Wait for the GPU's queued work to finish (nothing to do without a GPU)."""
    if is_available():
        import cupy

        cupy.cuda.Device().synchronize()


def manual_seed(seed: int) -> None:
    """Seed the generators (fastconv has one seed for every device: same as fastconv.manual_seed)."""
    from fastconv.random import manual_seed as _seed

    _seed(seed)


manual_seed_all = manual_seed


def __getattr__(name):
    # torch.cuda.amp.autocast / GradScaler: the same float32 stand-ins as fastconv.amp
    if name == "amp":
        from fastconv import amp

        return amp
    raise AttributeError(f"module 'fastconv.cuda' has no attribute {name!r}")
