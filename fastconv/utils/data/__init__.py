"""``torch.utils.data`` for fastconv: datasets, samplers, collation and the DataLoader.

    from fastconv.utils.data import DataLoader, Dataset, TensorDataset, random_split

Same names, arguments, defaults and meaning as PyTorch 2's ``torch.utils.data``;
batches are fastconv Tensors. Where fastconv differs it says so:

* DataLoader workers are **threads**, not processes (why, and what follows from
  it: :mod:`fastconv.utils.data.dataloader`); ``multiprocessing_context`` is
  refused and ``pin_memory=True`` warns that it has no effect.
* ``generator`` arguments take a ``fastconv.Generator`` (torch.Generator's twin) or a
  ``numpy.random.Generator`` (anything else is a TypeError). Without one, randomness
  comes from fastconv's global generator (``fastconv.manual_seed``).
* Collation turns float64 (Python floats, float64 arrays) into float32 Tensors,
  with a warning: fastconv has no float64 Tensor.

The torchvision-style data sets (per-sample ``(image, label)`` with
``transform=``) are in :mod:`fastconv.data.datasets`, the per-sample transforms in
:mod:`fastconv.data.transforms`; the zoo's fast batch pipeline is
:class:`fastconv.data.DataLoader`.
"""

from ._collate import default_collate, default_convert
from ._worker import WorkerInfo, get_worker_info, sample_rng
from .dataloader import DataLoader
from .dataset import (
    ChainDataset,
    ConcatDataset,
    Dataset,
    IterableDataset,
    StackDataset,
    Subset,
    TensorDataset,
    random_split,
)
from .distributed import DistributedSampler
from .sampler import (
    BatchSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)

__all__ = [
    "BatchSampler",
    "ChainDataset",
    "ConcatDataset",
    "DataLoader",
    "Dataset",
    "DistributedSampler",
    "IterableDataset",
    "RandomSampler",
    "Sampler",
    "SequentialSampler",
    "StackDataset",
    "Subset",
    "SubsetRandomSampler",
    "TensorDataset",
    "WeightedRandomSampler",
    "WorkerInfo",
    "default_collate",
    "default_convert",
    "get_worker_info",
    "random_split",
    "sample_rng",
]
