"""What a DataLoader worker knows about itself: ``get_worker_info()`` and its random generator.

fastconv's DataLoader workers are threads (see :mod:`fastconv.utils.data.dataloader`), so
what PyTorch keeps per worker *process* is kept per worker *thread* here, in a
``threading.local``: outside a worker both are None.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["WorkerInfo", "get_worker_info", "sample_rng"]

_local = threading.local()


@dataclass(frozen=True)
class WorkerInfo:
    """``id`` (0 .. num_workers - 1), ``num_workers``, ``seed`` (this worker's seed for this
    iterator: the iterator's base seed + id, as in PyTorch) and ``dataset`` (the loader's
    dataset object itself: threads share it, there is no per-worker copy)."""

    id: int
    num_workers: int
    seed: int
    dataset: Any


def get_worker_info() -> WorkerInfo | None:
    """In a DataLoader worker thread: its :class:`WorkerInfo`; elsewhere None (as PyTorch's).

    Use it in an :class:`IterableDataset`'s ``__iter__`` to split the stream between
    workers, or in ``worker_init_fn``."""
    return getattr(_local, "info", None)


def _enter_worker(info: WorkerInfo) -> None:
    _local.info = info
    _local.rng = np.random.default_rng(np.random.SeedSequence(info.seed))


def sample_rng() -> np.random.Generator:
    """The generator per-sample random transforms draw from: the worker's own generator in a
    DataLoader worker thread (seeded from the worker's seed, so results do not depend on
    thread timing), else fastconv's global CPU generator (seeded by ``fastconv.manual_seed``,
    as torchvision's transforms draw from torch's global generator)."""
    rng = getattr(_local, "rng", None)
    if rng is not None:
        return rng
    from fastconv.random import generator

    return generator()
