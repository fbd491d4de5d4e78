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
    """Seed the generators (fastconv has one seed for every device: as fastconv.manual_seed)."""
    from fastconv.random import manual_seed as _seed

    _seed(seed)


manual_seed_all = manual_seed


def _pool():
    import cupy

    return cupy.get_default_memory_pool()


def empty_cache() -> None:
    """Hand the cached, unused GPU memory back to the driver (CuPy's memory pool)."""
    if is_available():
        _pool().free_all_blocks()


def memory_allocated(device=None) -> int:
    """Bytes of GPU memory held by arrays now (0 without a GPU, as torch's CPU builds)."""
    return int(_pool().used_bytes()) if is_available() else 0


def memory_reserved(device=None) -> int:
    """Bytes the memory pool holds, used or cached."""
    return int(_pool().total_bytes()) if is_available() else 0


_peak = [0]


def max_memory_allocated(device=None) -> int:
    """The largest memory_allocated() seen by this function or reset_peak_memory_stats()
    (CuPy's pool keeps no peak of its own: it is sampled when asked)."""
    _peak[0] = max(_peak[0], memory_allocated())
    return _peak[0]


def reset_peak_memory_stats(device=None) -> None:
    _peak[0] = memory_allocated()


def get_device_name(device=None) -> str:
    if not is_available():
        raise AssertionError("fastconv.cuda: no CUDA GPU is available (CuPy sees none)")
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def set_device(device) -> None:
    """Accepted for device 0 (fastconv uses the current CuPy device)."""
    index = getattr(device, "index", device)
    if index not in (None, 0) and str(device) not in ("cuda", "cuda:0"):
        raise ValueError(f"fastconv.cuda.set_device: only device 0 is used, got {device!r}")


def __getattr__(name):
    # torch.cuda.amp.autocast / GradScaler: the same float32 stand-ins as fastconv.amp
    if name == "amp":
        from fastconv import amp

        return amp
    raise AttributeError(f"module 'fastconv.cuda' has no attribute {name!r}")
