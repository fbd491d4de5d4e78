"""``nn.utils.stateless.functional_call``: PyTorch's older home of
:func:`fastconv.func.functional_call`."""

from fastconv.func import functional_call

__all__ = ["functional_call"]
