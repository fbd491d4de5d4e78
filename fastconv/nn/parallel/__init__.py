"""``torch.nn.parallel``: data-parallel training across processes (DistributedDataParallel),
and DataParallel's single-process form."""

from fastconv.nn.parallel.data_parallel import DataParallel
from fastconv.nn.parallel.distributed import DistributedDataParallel

__all__ = ["DataParallel", "DistributedDataParallel"]
