"""Shared set-up of the CPU benchmarks: thread counts and the optional torch baseline."""

import os

import pytest

try:
    import torch
except ImportError:  # the suites still time fastconv alone
    torch = None


def pytest_configure(config):
    if torch is not None:
        # Same core count for both libraries: the whole machine.
        torch.set_num_threads(os.cpu_count() or 1)


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record which kernels fastconv ran on, next to pytest-benchmark's CPU description."""
    from fastconv.backend import cpu

    machine_info["fastconv"] = {"conv_kernels": cpu.cpu_features().get("conv_kernels"),
                                "blas_corename": cpu.blas_info().get("corename")}
    if torch is not None:
        machine_info["torch"] = torch.__version__


@pytest.fixture
def torch_or_skip():
    if torch is None:
        pytest.skip("torch is not installed (pip install torch==2.13.0)")
    return torch
