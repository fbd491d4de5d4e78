"""The extension list: fastconv._C from every C++ file in csrc/."""
import os
import sys
from glob import glob

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

# A portable x86-64 baseline: no -march=native in what users install. OpenMP across the cores.
compile_args = ["-O3", "-fopenmp", "-fno-math-errno"]
link_args = ["-fopenmp"]
if sys.platform == "darwin":  # Apple clang spells OpenMP differently; keep the build working.
    compile_args = ["-O3", "-Xpreprocessor", "-fopenmp"]
    link_args = ["-lomp"]

ext_modules = [
    Pybind11Extension(
        "fastconv._C",
        sorted(glob("csrc/*.cpp")),
        include_dirs=["csrc"],
        extra_compile_args=compile_args,
        extra_link_args=link_args + ["-ldl"],
        cxx_std=17,
    )
]


class build_ext_new_file(build_ext):
    """Puts the rebuilt module in place as a new file: copied over the old one, it would be
    rewritten in place, and a training run that has the old one loaded dies with SIGBUS."""

    def copy_file(self, infile, outfile, *args, **kwargs):
        if os.path.isfile(outfile):
            os.unlink(outfile)
        return super().copy_file(infile, outfile, *args, **kwargs)


setup(ext_modules=ext_modules, cmdclass={"build_ext": build_ext_new_file})
