"""Datasets (``torch.utils.data.dataset``): Dataset, IterableDataset, TensorDataset,
StackDataset, ConcatDataset, ChainDataset, Subset and random_split."""

from __future__ import annotations

import bisect
import math
import warnings
from collections.abc import Sequence
from typing import Generic, TypeVar

import numpy as np

from .sampler import _numpy_generator

__all__ = [
    "ChainDataset",
    "ConcatDataset",
    "Dataset",
    "IterableDataset",
    "StackDataset",
    "Subset",
    "TensorDataset",
    "random_split",
]

T_co = TypeVar("T_co", covariant=True)


class Dataset(Generic[T_co]):
    """A map-style dataset: ``ds[i]`` gives sample ``i``; define ``__getitem__`` and
    (for samplers that need it) ``__len__``. Optionally ``__getitems__(indices) -> list of
    samples`` fetches a batch in one call (the DataLoader uses it when present). ``a + b``
    concatenates. Generic as torch's: ``class MyData(Dataset[tuple[Tensor, int]])``."""

    def __getitem__(self, index):
        raise NotImplementedError("Subclasses of Dataset should implement __getitem__.")

    def __add__(self, other):
        return ConcatDataset([self, other])


class IterableDataset(Dataset[T_co]):
    """A stream of samples: define ``__iter__``. With ``num_workers > 0`` every worker
    iterates it (shard it with :func:`get_worker_info`, as in PyTorch). ``a + b`` chains."""

    def __iter__(self):
        raise NotImplementedError("Subclasses of IterableDataset should implement __iter__.")

    def __add__(self, other):
        return ChainDataset([self, other])


def _first_dim(t) -> int:
    shape = getattr(t, "shape", None)
    if shape is None or len(shape) == 0:
        raise ValueError(f"TensorDataset: every tensor needs a first dimension, got {t!r}")
    return int(shape[0])


class TensorDataset(Dataset):
    """Sample ``i`` is ``tuple(t[i] for t in tensors)``: fastconv Tensors or NumPy arrays of the
    same first dimension."""

    def __init__(self, *tensors):
        n = [_first_dim(t) for t in tensors]
        if any(k != n[0] for k in n):
            raise ValueError(f"Size mismatch between tensors (first dimensions {n})")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return _first_dim(self.tensors[0])


class StackDataset(Dataset):
    """Sample ``i`` is ``tuple(d[i] for d in args)`` or ``{k: d[i] for k, d in kwargs}``."""

    def __init__(self, *args, **kwargs):
        if args and kwargs:
            raise ValueError("Supported either ``tuple``- (via ``args``) or``dict``- (via "
                             "``kwargs``) like input/output, but both types are given.")
        sets = list(args) or list(kwargs.values())
        if not sets:
            raise ValueError("At least one dataset should be passed")
        self._length = len(sets[0])
        if any(self._length != len(d) for d in sets):
            raise ValueError("Size mismatch between datasets")
        self.datasets = args if args else kwargs

    def __getitem__(self, index):
        if isinstance(self.datasets, dict):
            return {k: d[index] for k, d in self.datasets.items()}
        return tuple(d[index] for d in self.datasets)

    def __len__(self) -> int:
        return self._length


class ConcatDataset(Dataset):
    """The samples of several map-style datasets one after the other."""

    @staticmethod
    def cumsum(sequence):
        r, s = [], 0
        for e in sequence:
            s += len(e)
            r.append(s)
        return r

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if len(self.datasets) == 0:
            raise ValueError("datasets should not be an empty iterable")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise TypeError("ConcatDataset does not support IterableDataset")
        self.cumulative_sizes = self.cumsum(self.datasets)

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx):
        if idx < 0:
            if -idx > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            idx = len(self) + idx
        k = bisect.bisect_right(self.cumulative_sizes, idx)
        if k >= len(self.datasets):
            raise IndexError(f"index {idx} is out of range for a ConcatDataset of {len(self)}")
        start = self.cumulative_sizes[k - 1] if k > 0 else 0
        return self.datasets[k][idx - start]


class ChainDataset(IterableDataset):
    """The streams of several iterable datasets one after the other."""

    def __init__(self, datasets):
        self.datasets = datasets

    def __iter__(self):
        for d in self.datasets:
            if not isinstance(d, IterableDataset):
                raise TypeError("ChainDataset only supports IterableDataset")
            yield from d

    def __len__(self) -> int:
        total = 0
        for d in self.datasets:
            if not isinstance(d, IterableDataset):
                raise TypeError("ChainDataset only supports IterableDataset")
            total += len(d)
        return total


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices`` (in that order). Datasets with fastconv's
    batch interface (``get_batch``) keep it through the subset."""

    def __init__(self, dataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices):
        mapped = [self.indices[i] for i in indices]
        if callable(getattr(self.dataset, "__getitems__", None)):
            return self.dataset.__getitems__(mapped)
        return [self.dataset[i] for i in mapped]

    def __len__(self) -> int:
        return len(self.indices)

    def __getattr__(self, name):
        if name == "get_batch":  # only when the parent has one
            parent = self.__dict__.get("dataset")
            if parent is not None and callable(getattr(parent, "get_batch", None)):
                idx = np.asarray(self.indices, dtype=np.int64)
                return lambda i: parent.get_batch(idx[np.asarray(i, dtype=np.int64)])
        raise AttributeError(f"'Subset' object has no attribute {name!r}")


def random_split(dataset, lengths, generator=None) -> list:
    """Split ``dataset`` into non-overlapping random :class:`Subset` s of the given ``lengths``
    (ints summing to ``len(dataset)``, or fractions summing to 1: the floors, then the
    remaining samples handed out one each round-robin, as in PyTorch). ``generator``: a
    ``numpy.random.Generator`` (fastconv's stand-in for ``torch.Generator``); default:
    one drawn from fastconv's global generator (``fastconv.manual_seed``)."""
    lengths = list(lengths)
    n = len(dataset)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        counts = []
        for i, frac in enumerate(lengths):
            if frac < 0 or frac > 1:
                raise ValueError(f"Fraction at index {i} is not between 0 and 1")
            counts.append(math.floor(n * frac))
        remainder = n - sum(counts)
        for i in range(remainder):
            counts[i % len(counts)] += 1
        lengths = counts
        for i, length in enumerate(lengths):
            if length == 0:
                warnings.warn(f"Length of split at index {i} is 0. This might result in an empty "
                              "dataset.", stacklevel=2)
    if sum(lengths) != n:
        raise ValueError("Sum of input lengths does not equal the length of the input dataset!")
    rng = _numpy_generator(generator, "random_split")
    perm = rng.permutation(sum(lengths)).tolist()
    out, offset = [], 0
    for length in lengths:
        out.append(Subset(dataset, perm[offset:offset + length]))
        offset += length
    return out
