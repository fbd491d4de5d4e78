"""DataLoader: seeded shuffling, batching and background preparation of batches in threads.

Reproducibility does not depend on threads: the order of epoch ``e`` is a
permutation drawn from a generator seeded with ``(seed, e)``, and the
augmentation of batch ``b`` uses a generator seeded with ``(seed, e, b)``.
The loader's whole state is therefore ``(seed, epoch)``
(:meth:`DataLoader.state_dict`), and a run resumed at epoch ``e`` -- or at
batch ``b`` of it, :meth:`DataLoader.iter_epoch` -- sees exactly the batches an
uninterrupted run would have seen.

Preparation (gathering images from the dataset's cache, augmenting,
converting) runs in ``num_workers`` threads, ``prefetch`` batches ahead of the
consumer. NumPy releases the GIL in its array kernels and PIL while decoding,
so threads overlap with the model's own work.
"""

from __future__ import annotations

import collections
import numbers
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["DataLoader"]

_SHUFFLE, _AUGMENT = 0, 1


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class DataLoader:
    """Iterate over ``dataset`` in batches of ``(x, y)`` NumPy arrays.

    Args:
        dataset: anything with ``len()`` and ``ds[i] -> (image, label)``; datasets
            with ``get_batch(indices)`` (all of ``fastconv.data``'s) are gathered
            a batch at a time.
        batch_size: images per batch.
        shuffle: a new seeded permutation every epoch.
        seed: the seed of shuffling and augmentation (an int).
        transform: a batch transform ``t(x, rng)`` (see fastconv.data.transforms);
            without one, ``x`` is the raw uint8 (N, H, W, C) batch.
        drop_last: drop the last, smaller batch.
        num_workers: preparation threads (0: prepare in the calling thread).
        prefetch: batches prepared ahead of the consumer (at least num_workers).
        num_replicas, rank: data-parallel sharding (one loader per process). Every replica
            draws the same permutation and walks the same *global* batches of
            ``batch_size * num_replicas`` images; replica ``rank`` takes slice ``rank`` of
            each (``batch_size`` images), so the replicas together see exactly what one
            process with the global batch size sees, in the same order. ``len()`` counts
            global batches (each replica yields that many). Augmentation of replica ``rank``
            is seeded with ``(seed, epoch, batch, rank)`` when ``num_replicas > 1``, so its
            random draws differ from a single process's.

    Yields ``(x, y)``: ``x`` as the transform returns it (float32 (N, C, H, W)
    for the standard pipelines), ``y`` int64 (N,).

    ``iter(loader)`` runs epoch ``loader.epoch`` and, when it has run to the
    end, advances ``loader.epoch`` by one; ``set_epoch(e)`` picks an epoch.
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, seed: int = 0,
                 transform=None, drop_last: bool = False, num_workers: int = 2,
                 prefetch: int = 4, num_replicas: int = 1, rank: int = 0):
        if not _is_int(batch_size) or batch_size < 1:
            hint = (" (this loader always batches; batch_size=None, no batching, is "
                    "fastconv.utils.data.DataLoader's)" if batch_size is None else "")
            raise ValueError(f"batch_size should be a positive integer value, but got "
                             f"batch_size={batch_size!r}{hint}")
        for name, value, least in (("num_workers", num_workers, 0), ("prefetch", prefetch, 0),
                                   ("num_replicas", num_replicas, 1), ("rank", rank, 0)):
            if not _is_int(value) or value < least:
                raise ValueError(f"DataLoader: {name} should be an integer >= {least}, but got "
                                 f"{name}={value!r}")
        if not _is_int(seed) or seed < 0:  # a SeedSequence's entropy
            raise ValueError(f"DataLoader: seed should be a non-negative integer, but got "
                             f"seed={seed!r}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.transform = transform
        self.drop_last = bool(drop_last)
        self.num_workers = int(num_workers)
        self.prefetch = max(int(prefetch), self.num_workers, 1)
        if not rank < num_replicas:
            raise ValueError(f"DataLoader: need 0 <= rank < num_replicas, got rank {rank}, "
                             f"num_replicas {num_replicas}")
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.epoch = 0

    # -- state ------------------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """The epoch the next ``iter(loader)`` runs (it decides the order and augmentation)."""
        self.epoch = int(epoch)

    def state_dict(self) -> dict:
        """``{"seed", "epoch"}``: all that decides the batches still to come (JSON-serialisable)."""
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])

    # -- batches ----------------------------------------------------------------------------------
    @property
    def global_batch_size(self) -> int:
        """Images per step over all replicas."""
        return self.batch_size * self.num_replicas

    def __len__(self) -> int:
        n, g = len(self.dataset), self.global_batch_size
        return n // g if self.drop_last else -(-n // g)

    def order(self, epoch: int) -> np.ndarray:
        """The sample order of ``epoch`` (the identity without shuffle)."""
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n, dtype=np.int64)
        ss = np.random.SeedSequence(self.seed, spawn_key=(int(epoch), _SHUFFLE))
        return np.random.default_rng(ss).permutation(n).astype(np.int64)

    def batch_rng(self, epoch: int, batch: int) -> np.random.Generator:
        """The generator that augments batch ``batch`` of ``epoch``."""
        key = (int(epoch), _AUGMENT, int(batch))
        if self.num_replicas > 1:
            key += (self.rank,)
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=key))

    def _make_batch(self, indices, epoch, b):
        ds = self.dataset
        if hasattr(ds, "get_batch"):
            x, y = ds.get_batch(indices)
        else:
            items = [ds[int(i)] for i in indices]
            x = np.stack([np.asarray(it[0]) for it in items])
            y = np.asarray([it[1] for it in items], dtype=np.int64)
        if self.transform is not None:
            x = self.transform(x, self.batch_rng(epoch, b))
        return x, np.asarray(y, dtype=np.int64)

    def iter_epoch(self, epoch: int, start_batch: int = 0):
        """Yield the batches of ``epoch`` from batch ``start_batch`` on (for a resumed run)."""
        order = self.order(epoch)
        g, bs, r = self.global_batch_size, self.batch_size, self.rank
        nb = len(self)
        starts = [(b, order[b * g:(b + 1) * g][r * bs:(r + 1) * bs])
                  for b in range(start_batch, nb)]
        if self.num_workers == 0:
            for b, idx in starts:
                yield self._make_batch(idx, epoch, b)
            return
        pool = ThreadPoolExecutor(self.num_workers, thread_name_prefix="fastconv-loader")
        pending = collections.deque()
        it = iter(starts)
        try:
            for b, idx in it:
                pending.append(pool.submit(self._make_batch, idx, epoch, b))
                if len(pending) >= self.prefetch:
                    break
            while pending:
                x = pending.popleft().result()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append(pool.submit(self._make_batch, nxt[1], epoch, nxt[0]))
                yield x
        finally:
            for f in pending:
                f.cancel()
            pool.shutdown(wait=True, cancel_futures=True)

    def __iter__(self):
        epoch = self.epoch
        yield from self.iter_epoch(epoch)
        self.epoch = epoch + 1

    def __repr__(self) -> str:
        return (f"DataLoader({self.dataset!r}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, seed={self.seed}, num_workers={self.num_workers})")
