"""The CUDA sources compile, without a GPU.

* nvcc (when on the PATH) compiles every fastconv/cuda/*.cu to PTX for sm_80, and every
  ``extern "C" __global__`` kernel appears unmangled in the PTX (CuPy looks kernels up by
  name).
* NVRTC (when its library can be found: the ``nvidia-cuda-nvrtc-cu12`` wheel, a CUDA
  toolkit, or the system library path) compiles every file exactly as
  ``cupy.RawModule`` will at run time: no host headers, no nvcc driver.
* Every kernel that the CUDA backend (fastconv/backend/cuda/) asks for exists in the file it
  names, and every kernel is used.
* Every .cu file opens with the comment block the conventions ask for.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CUDA_DIR = ROOT / "fastconv" / "cuda"
CU_FILES = sorted(CUDA_DIR.glob("*.cu"))
KERNEL_RE = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(')


def kernels_in(path: Path) -> list[str]:
    return KERNEL_RE.findall(path.read_text())


def test_sources_exist():
    names = {p.name for p in CU_FILES}
    for required in ("im2col.cu", "pool.cu", "lrn.cu", "batchnorm.cu", "elementwise.cu",
                     "loss.cu"):
        assert required in names, f"fastconv/cuda/{required} is missing"


@pytest.mark.parametrize("cu", CU_FILES, ids=lambda p: p.name)
def test_ptx_compiles(cu, tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not on the PATH")
    out = tmp_path / (cu.stem + ".ptx")
    r = subprocess.run([nvcc, "-ptx", "-arch=sm_80", str(cu), "-o", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"nvcc failed on {cu.name}:\n{r.stderr}"
    ptx = out.read_text()
    names = kernels_in(cu)
    assert names, f"{cu.name} defines no extern \"C\" __global__ kernel"
    for name in names:
        assert re.search(rf"\.entry\s+{name}\s*\(", ptx), f"{name} missing from {cu.name}'s PTX"


def _find_nvrtc():
    candidates = []
    try:
        import nvidia.cuda_nvrtc as pkg  # the nvidia-cuda-nvrtc-cu12 wheel

        for d in pkg.__path__:
            candidates += sorted(glob.glob(os.path.join(d, "lib", "libnvrtc.so*")))
    except Exception:
        pass
    for d in (os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if d:
            candidates += sorted(glob.glob(os.path.join(d, "lib64", "libnvrtc.so*")))
    found = ctypes.util.find_library("nvrtc")
    if found:
        candidates.append(found)
    for c in candidates:
        if "alt" in os.path.basename(c) or "builtins" in os.path.basename(c):
            continue
        try:
            return ctypes.CDLL(c)
        except OSError:
            continue
    return None


@pytest.mark.parametrize("cu", CU_FILES, ids=lambda p: p.name)
def test_nvrtc_compiles(cu):
    lib = _find_nvrtc()
    if lib is None:
        pytest.skip("libnvrtc not found (pip install nvidia-cuda-nvrtc-cu12 to run this test)")
    prog = ctypes.c_void_p()
    src = cu.read_text().encode()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), src, cu.name.encode(), 0, None, None) == 0
    try:
        opts = [b"--gpu-architecture=compute_80"]
        arr = (ctypes.c_char_p * len(opts))(*opts)
        rc = lib.nvrtcCompileProgram(prog, len(opts), arr)
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(max(size.value, 1))
        lib.nvrtcGetProgramLog(prog, log)
        assert rc == 0, f"NVRTC failed on {cu.name}:\n{log.value.decode(errors='replace')}"
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def test_backend_asks_only_for_kernels_that_exist():
    src = "\n".join(p.read_text() for p in sorted((ROOT / "fastconv" / "backend" / "cuda")
                                                  .glob("*.py")))
    uses = re.findall(r'\(\s*"(\w+\.cu)"\s*,\s*"(\w+)"', src)
    assert len(uses) > 20, "the pattern no longer matches how the backend names its kernels"
    defined = {p.name: set(kernels_in(p)) for p in CU_FILES}
    for file, name in uses:
        assert file in defined, f"the backend uses {file}, which does not exist"
        assert name in defined[file], f"the backend asks for {name} in {file}, which lacks it"
    used = {(f, n) for f, n in uses}
    unused = [(f, n) for f, names in defined.items() for n in names if (f, n) not in used]
    assert not unused, f"kernels that the backend never launches: {unused}"


@pytest.mark.parametrize("cu", CU_FILES, ids=lambda p: p.name)
def test_file_header(cu):
    text = cu.read_text()
    assert text.startswith("//"), f"{cu.name} must open with a comment block"
    header = text.split("extern \"C\"", 1)[0].lower()
    assert "thread" in header and "block" in header, \
        f"{cu.name}: the opening comment must say how work maps onto threads and blocks"
    assert "+=" in header and "written" in header, \
        f"{cu.name}: the opening comment must state the gradient convention " \
        "(parameter gradients +=, activation gradients written)"
