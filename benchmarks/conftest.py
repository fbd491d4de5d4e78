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


@pytest.fixture
def torch_or_skip():
    if torch is None:
        pytest.skip("torch is not installed (pip install torch==2.13.0)")
    return torch
