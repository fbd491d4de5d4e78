"""``torch.nn.parallel``: data-parallel training across processes."""

from fastconv.nn.parallel.distributed import DistributedDataParallel

__all__ = ["DistributedDataParallel"]
