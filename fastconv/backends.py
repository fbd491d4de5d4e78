"""``fastconv.backends``: the switches PyTorch scripts set through ``torch.backends``.

A training script often starts with ``torch.backends.cudnn.benchmark = True``; the same lines
run here. fastconv has no cuDNN: its kernels are chosen by fixed shape tables (nothing to
autotune), so ``cudnn.benchmark``, ``cudnn.deterministic`` and ``cudnn.enabled`` are stored
and have no effect. ``cudnn.allow_tf32`` and ``cuda.matmul.allow_tf32`` are one switch here,
the CUDA backend's ``set_tf32`` (fastconv's convolutions and linear layers all run through
cuBLAS GEMMs): setting either sets it on a machine with a GPU; reading either reads it.
Its default is False for both (PyTorch's is True for cuDNN convolutions).

The top-level switches of the same kind live here too (``fastconv.<name>``, as torch's):
``set_float32_matmul_precision("highest" | "high" | "medium")`` is that TF32 switch
("highest": off, as torch's default), and ``use_deterministic_algorithms(mode,
warn_only=False)`` is stored and reported by ``are_deterministic_algorithms_enabled()``:
fastconv's CPU kernels give the same bits run after run at a fixed thread count, whatever
the setting.
"""

from __future__ import annotations

__all__ = ["are_deterministic_algorithms_enabled", "cuda", "cudnn", "mps",
           "get_float32_matmul_precision", "is_deterministic_algorithms_warn_only_enabled",
           "set_float32_matmul_precision", "use_deterministic_algorithms"]

_deterministic = {"mode": False, "warn_only": False}


def _tf32_backend():
    from fastconv import cuda as _cuda

    if not _cuda.is_available():
        return None
    from fastconv.backend import get_backend

    return get_backend("cuda")


class _TF32Switch:
    """The ``allow_tf32`` attribute, backed by the CUDA backend where there is one."""

    def __init__(self):
        self._value = False

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        backend = _tf32_backend()
        return backend.get_tf32() if backend is not None else self._value

    def __set__(self, obj, value):
        self._value = bool(value)
        backend = _tf32_backend()
        if backend is not None:
            backend.set_tf32(self._value)


_ALLOW_TF32 = _TF32Switch()


class _CuDNN:
    """``fastconv.backends.cudnn`` (see the module docstring)."""

    allow_tf32 = _ALLOW_TF32

    def __init__(self):
        self.benchmark = False  # no effect: no autotuning
        self.deterministic = False  # no effect
        self.enabled = True  # no effect: there is no cuDNN to turn off

    @staticmethod
    def is_available() -> bool:
        """False: fastconv does not use cuDNN."""
        return False

    def __repr__(self):
        return (f"fastconv.backends.cudnn(benchmark={self.benchmark}, deterministic="
                f"{self.deterministic}, enabled={self.enabled}, allow_tf32={self.allow_tf32})")


class _Matmul:
    allow_tf32 = _ALLOW_TF32


class _Cuda:
    """``fastconv.backends.cuda``: ``matmul.allow_tf32`` and ``is_built()``."""

    def __init__(self):
        self.matmul = _Matmul()

    @staticmethod
    def is_built() -> bool:
        """True when fastconv can run on a GPU here (CuPy installed and a GPU seen)."""
        from fastconv import cuda as _cuda

        return _cuda.is_available()


cudnn = _CuDNN()
cuda = _Cuda()


class _Mps:
    """``fastconv.backends.mps``: Apple's Metal backend does not exist in fastconv."""

    @staticmethod
    def is_available() -> bool:
        return False

    @staticmethod
    def is_built() -> bool:
        return False


mps = _Mps()


def use_deterministic_algorithms(mode: bool, *, warn_only: bool = False) -> None:
    """Stored (see the module docstring)."""
    if not isinstance(mode, bool):
        raise TypeError(f"use_deterministic_algorithms expects a bool, but got "
                        f"{type(mode).__name__}")
    _deterministic.update(mode=mode, warn_only=bool(warn_only))


def are_deterministic_algorithms_enabled() -> bool:
    return _deterministic["mode"]


def is_deterministic_algorithms_warn_only_enabled() -> bool:
    return _deterministic["warn_only"]


_PRECISIONS = ("highest", "high", "medium")


def set_float32_matmul_precision(precision: str) -> None:
    """"highest": float32 GEMMs; "high" / "medium": TF32 on the GPU (cuda.matmul.allow_tf32)."""
    if precision not in _PRECISIONS:
        raise ValueError(f"set_float32_matmul_precision: precision must be one of "
                         f"{_PRECISIONS}, got {precision!r}")
    cuda.matmul.allow_tf32 = precision != "highest"


def get_float32_matmul_precision() -> str:
    return "high" if cuda.matmul.allow_tf32 else "highest"
