"""Samplers (``torch.utils.data.sampler``): streams of dataset indices.

Randomness: a sampler's ``generator`` is a ``fastconv.Generator`` (torch.Generator's twin)
or a ``numpy.random.Generator`` (anything else is a TypeError that says so). Without one,
each pass draws a fresh generator from fastconv's global CPU generator, so
``fastconv.manual_seed(s)`` makes every shuffle reproducible -- as ``torch.manual_seed``
does for PyTorch's samplers. The index streams follow PyTorch's definitions (a uniform
permutation, uniform draws with replacement, multinomial draws by weight), not its bits:
the generators differ.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import numpy as np

__all__ = [
    "BatchSampler",
    "RandomSampler",
    "Sampler",
    "SequentialSampler",
    "SubsetRandomSampler",
    "WeightedRandomSampler",
]


def _numpy_generator(generator, who: str) -> np.random.Generator:
    if generator is None:
        from fastconv.random import generator as global_generator

        seed = int(global_generator().integers(0, 2 ** 63 - 1))
        return np.random.default_rng(seed)
    if isinstance(generator, np.random.Generator):
        return generator
    from fastconv.creation import Generator

    if isinstance(generator, Generator):  # torch.Generator's twin: draw from its stream
        return generator._rng
    raise TypeError(f"{who}: generator must be a fastconv.Generator (as torch.Generator), a "
                    f"numpy.random.Generator or None, got {type(generator).__name__}")


def _positive_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool) and x > 0


T_co = TypeVar("T_co", covariant=True)


class Sampler(Generic[T_co]):
    """Base class: ``__iter__`` yields indices (or lists of them, for batch samplers).
    Generic as torch's: ``class MySampler(Sampler[int])``."""

    def __init__(self, data_source=None) -> None:
        pass

    def __iter__(self):
        raise NotImplementedError


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source) -> None:
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler):
    """A random permutation of the indices, or with ``replacement`` ``num_samples`` uniform
    draws (``num_samples`` without replacement: whole permutations, then part of one)."""

    def __init__(self, data_source, replacement: bool = False, num_samples=None,
                 generator=None) -> None:
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        if not isinstance(self.replacement, bool):
            raise TypeError("replacement should be a boolean value, but got replacement="
                            f"{self.replacement}")
        if not _positive_int(self.num_samples):
            raise ValueError("num_samples should be a positive integer value, but got "
                             f"num_samples={self.num_samples}")
        if generator is not None:
            _numpy_generator(generator, "RandomSampler")

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        n = len(self.data_source)
        rng = _numpy_generator(self.generator, "RandomSampler")
        if self.replacement:
            yield from rng.integers(0, n, size=self.num_samples).tolist()
            return
        for _ in range(self.num_samples // n):
            yield from rng.permutation(n).tolist()
        yield from rng.permutation(n)[:self.num_samples % n].tolist()

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given ``indices`` in a random order."""

    def __init__(self, indices, generator=None) -> None:
        self.indices = indices
        self.generator = generator
        if generator is not None:
            _numpy_generator(generator, "SubsetRandomSampler")

    def __iter__(self):
        rng = _numpy_generator(self.generator, "SubsetRandomSampler")
        for i in rng.permutation(len(self.indices)).tolist():
            yield self.indices[i]

    def __len__(self) -> int:
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """``num_samples`` indices drawn with probabilities proportional to ``weights`` (which
    need not sum to one), with or without replacement."""

    def __init__(self, weights, num_samples: int, replacement: bool = True,
                 generator=None) -> None:
        if not _positive_int(num_samples):
            raise ValueError("num_samples should be a positive integer value, but got "
                             f"num_samples={num_samples}")
        if not isinstance(replacement, bool):
            raise ValueError("replacement should be a boolean value, but got replacement="  # noqa: TRY004 - torch's error type
                             f"{replacement}")
        w = np.asarray(weights.numpy() if hasattr(weights, "numpy") else weights,
                       dtype=np.float64)
        if w.ndim != 1:
            raise ValueError(f"weights should be a 1d sequence but given weights have shape "
                             f"{tuple(w.shape)}")
        if len(w) == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise RuntimeError("invalid multinomial distribution: weights must be finite, "
                               "non-negative and not all zero")
        if not replacement and num_samples > np.count_nonzero(w):
            raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without "
                               f"replacement ({num_samples} samples, "
                               f"{np.count_nonzero(w)} non-zero weights)")
        self.weights = w
        self.num_samples = int(num_samples)
        self.replacement = replacement
        self.generator = generator
        if generator is not None:
            _numpy_generator(generator, "WeightedRandomSampler")

    def __iter__(self):
        rng = _numpy_generator(self.generator, "WeightedRandomSampler")
        p = self.weights / self.weights.sum()
        yield from rng.choice(len(p), size=self.num_samples, replace=self.replacement,
                              p=p).tolist()

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler):
    """Lists of ``batch_size`` indices from ``sampler``; the last, shorter one is dropped with
    ``drop_last``."""

    def __init__(self, sampler, batch_size: int, drop_last: bool) -> None:
        if not _positive_int(batch_size):
            raise ValueError("batch_size should be a positive integer value, but got "
                             f"batch_size={batch_size}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got drop_last={drop_last}")  # noqa: TRY004 - torch's error type
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.drop_last = drop_last

    def __iter__(self):
        batch = []
        for idx in self.sampler:
            batch.append(idx)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
