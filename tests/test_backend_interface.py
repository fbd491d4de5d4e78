"""Both backends export exactly the kernel interface of fastconv/backend/interface.py, with
its signatures, plus the controls it lists for them, and nothing else.

The CUDA backend is loaded through the stand-in CuPy of tests/cuda_emulation.py, so this
runs without a GPU, CuPy or a compiler (nothing is launched).
"""

from __future__ import annotations

import inspect
import types

import pytest
from cuda_emulation import load_emulated_backend

from fastconv.backend import get_backend
from fastconv.backend.interface import CONTROLS, KERNELS, Kernels


@pytest.fixture(scope="module", params=["cpu", "cuda"])
def backend(request, tmp_path_factory):
    if request.param == "cpu":
        return "cpu", get_backend("cpu")
    return "cuda", load_emulated_backend(tmp_path_factory.mktemp("cuda_emu"))


def _public(module) -> set[str]:
    """Every public name of ``module`` except imported modules and ``annotations``."""
    return {name for name, value in vars(module).items()
            if not name.startswith("_") and name != "annotations"
            and (not isinstance(value, types.ModuleType) or name in KERNELS)}


def _parameters(fn):
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()
            if p.name != "self"]


def test_backend_exports_exactly_the_interface(backend):
    device, be = backend
    assert sorted(be.__all__) == sorted(KERNELS + CONTROLS[device])
    assert _public(be) == set(be.__all__), "public names missing from, or extra to, __all__"


@pytest.mark.parametrize("name", [n for n in KERNELS if n != "xp"])
def test_kernel_signature(backend, name):
    _, be = backend
    assert _parameters(getattr(be, name)) == _parameters(getattr(Kernels, name)), name


def test_the_cpu_never_captures():
    assert get_backend("cpu").is_capturing() is False
