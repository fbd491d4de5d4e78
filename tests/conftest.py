"""Shared pytest set-up: random seeds, the ``gpu`` marker, the test path.

Seeds: every run draws a fresh base seed (printed in the header) unless
``FASTCONV_TEST_SEED`` is set; each test gets its own seed derived from the base
seed and its node id, so a failure is reproduced with
``FASTCONV_TEST_SEED=<base> pytest <nodeid>``. The seed of a failing test is also
shown in its report.
"""

from __future__ import annotations

import os
import sys
import zlib

import numpy as np
import pytest

# tests/ on the path so that ``import reference`` / ``import helpers`` work from any rootdir.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

_BASE_SEED = int(os.environ.get("FASTCONV_TEST_SEED", np.random.SeedSequence().entropy % 2**31))


def pytest_report_header(config):
    return f"fastconv test seed: FASTCONV_TEST_SEED={_BASE_SEED}"


def _gpu_available() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def pytest_configure(config):
    # Registered here too, so the markers exist when pytest runs without pyproject.toml.
    config.addinivalue_line("markers", "gpu: needs an NVIDIA GPU and CuPy (skipped otherwise)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


def pytest_collection_modifyitems(config, items):
    if not any("gpu" in item.keywords for item in items):
        return
    if _gpu_available():
        return
    skip = pytest.mark.skip(reason="no CUDA GPU / CuPy available")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def seed(request) -> int:
    """A per-test seed: the run's base seed mixed with the test's node id."""
    s = (_BASE_SEED * 1_000_003 + zlib.crc32(request.node.nodeid.encode())) % 2**31
    request.node.user_properties.append(("seed", s))
    return s


@pytest.fixture
def rng(seed) -> np.random.Generator:
    """A fresh NumPy generator for the test's inputs; also seeds fastconv's generator."""
    try:
        import fastconv

        fastconv.manual_seed(seed)
    except Exception:  # the package is not importable yet: the test itself will say so
        pass
    return np.random.default_rng(seed)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        seeds = [v for k, v in item.user_properties if k == "seed"]
        report.sections.append(
            ("seed", f"FASTCONV_TEST_SEED={_BASE_SEED} (this test's seed: {seeds})"))
