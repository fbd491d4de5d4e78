"""Utilities under PyTorch's names: :mod:`fastconv.utils.data` is ``torch.utils.data``,
:mod:`fastconv.utils.checkpoint` is ``torch.utils.checkpoint`` (activation recomputation)."""

from . import checkpoint, data  # noqa: F401  (torch.utils.checkpoint / .data as attributes)
