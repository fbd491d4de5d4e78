"""``fastconv.backends``: the switches PyTorch scripts set through ``torch.backends``.

A training script often starts with ``torch.backends.cudnn.benchmark = True``; the same lines
run here. fastconv has no cuDNN: its kernels are chosen by fixed shape tables (nothing to
autotune), so ``cudnn.benchmark``, ``cudnn.deterministic`` and ``cudnn.enabled`` are stored
and have no effect. ``cudnn.allow_tf32`` and ``cuda.matmul.allow_tf32`` are one switch here,
the CUDA backend's ``set_tf32`` (fastconv's convolutions and linear layers all run through
cuBLAS GEMMs): setting either sets it on a machine with a GPU; reading either reads it.
Its default is False for both (PyTorch's is True for cuDNN convolutions).
"""

from __future__ import annotations

__all__ = ["cuda", "cudnn"]


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
