"""Utilities under PyTorch's names: :mod:`fastconv.utils.data` is ``torch.utils.data``."""
