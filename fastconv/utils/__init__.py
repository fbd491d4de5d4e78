"""Utilities under PyTorch's names: :mod:`fastconv.utils.data` is ``torch.utils.data``,
:mod:`fastconv.utils.checkpoint` is ``torch.utils.checkpoint`` (activation recomputation),
:mod:`fastconv.utils.benchmark` is ``torch.utils.benchmark`` (Timer, Measurement)."""

from . import benchmark, checkpoint, data  # noqa: F401  (torch.utils.* as attributes)
