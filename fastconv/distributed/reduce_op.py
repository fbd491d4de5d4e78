"""ReduceOp, shared by the process group and its backends."""

from __future__ import annotations

import enum


class ReduceOp(enum.Enum):
    """How ``all_reduce`` combines the ranks' tensors (torch.distributed.ReduceOp's names).
    AVG is SUM followed by a division by the world size (floating-point tensors only)."""

    SUM = "sum"
    AVG = "avg"
    PRODUCT = "product"
    MAX = "max"
    MIN = "min"
