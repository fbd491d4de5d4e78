"""DistributedSampler (``torch.utils.data.distributed``): each rank's share of a data set.

Same definition as torch's: one permutation of the whole data set per epoch, drawn from
``seed + epoch`` (identical on every rank, so the shares partition it), padded by repeating its
head until its length divides by ``num_replicas`` (or, with ``drop_last``, cut to the largest
such length); rank r takes positions r, r + num_replicas, r + 2*num_replicas, ... Every rank
thus gets the same number of indices, and one epoch covers every sample at least once (exactly
once without padding). Call ``set_epoch(epoch)`` at the start of each epoch, as with torch,
or every epoch repeats the same order.

The permutation follows torch's definition (uniform), not its bits: it comes from
``numpy.random.default_rng(seed + epoch)``, not torch's Mersenne Twister. Given the same
permutation, the per-rank lists are torch's exactly.
"""

from __future__ import annotations

import math

import numpy as np

from fastconv.utils.data.sampler import Sampler

__all__ = ["DistributedSampler"]


def _permutation(n: int, seed: int) -> list:
    """The epoch's permutation of range(n) (the same on every rank for the same seed)."""
    return np.random.default_rng(seed).permutation(n).tolist()


class DistributedSampler(Sampler):
    def __init__(self, dataset, num_replicas=None, rank=None, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False) -> None:
        if num_replicas is None or rank is None:
            import fastconv.distributed as dist

            if not dist.is_initialized():
                raise RuntimeError("DistributedSampler: pass num_replicas and rank, or call "
                                   "fastconv.distributed.init_process_group first")
            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        if num_replicas <= 0:
            raise ValueError(f"num_replicas must be positive, got {num_replicas}")
        if rank >= num_replicas or rank < 0:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval "
                             f"[0, {num_replicas - 1}]")
        self.dataset = dataset
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.epoch = 0
        self.drop_last = drop_last
        n = len(dataset)
        if drop_last and n % self.num_replicas != 0:
            self.num_samples = math.ceil((n - self.num_replicas) / self.num_replicas)
        else:
            self.num_samples = math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas
        self.shuffle = shuffle
        self.seed = int(seed)

    def __iter__(self):
        n = len(self.dataset)
        indices = _permutation(n, self.seed + self.epoch) if self.shuffle else list(range(n))
        if not self.drop_last:
            padding = self.total_size - len(indices)
            if padding <= len(indices):
                indices += indices[:padding]
            else:
                indices += (indices * math.ceil(padding / len(indices)))[:padding]
        else:
            indices = indices[:self.total_size]
        assert len(indices) == self.total_size
        indices = indices[self.rank:self.total_size:self.num_replicas]
        assert len(indices) == self.num_samples
        return iter(indices)

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose permutation the next pass draws (seed + epoch)."""
        self.epoch = int(epoch)
