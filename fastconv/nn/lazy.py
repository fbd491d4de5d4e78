"""Lazy layers (``nn.LazyLinear``, ``nn.LazyConv2d``, ``nn.LazyBatchNorm2d``, ...): the
input size is read from the first input, as in PyTorch.

Until then the parameters are empty placeholders. The first call builds the real layer
(``cls_to_become``) with the inferred size, moves its freshly initialised values into the
placeholder Parameter objects (so an optimizer made before the first call updates the right
tensors, as PyTorch's materialised parameters do) and turns the module into that layer.
"""

from __future__ import annotations

import numpy as np

from fastconv.nn import layers
from fastconv.nn.module import Module, Parameter


class LazyModuleMixin:
    """Shared by the lazy layers: the first call infers the size and materialises them."""

    cls_to_become = None
    _infer_dim = 1  # the input dim that gives the layer its size (-1 for Linear)
    _min_ndim = 2

    def _lazy_init(self, args, kwargs, placeholders):
        Module.__init__(self)
        self._lazy_args, self._lazy_kwargs = args, kwargs
        for name in placeholders:
            setattr(self, name, Parameter(np.zeros(0, np.float32)))

    def has_uninitialized_params(self) -> bool:
        return isinstance(self, LazyModuleMixin)

    def initialize_parameters(self, input) -> None:
        """Build ``cls_to_become`` for ``input`` and become it."""
        if input.ndim < self._min_ndim:
            raise ValueError(f"{type(self).__name__}: expected an input with at least "
                             f"{self._min_ndim} dims to infer its size, got shape "
                             f"{tuple(input.shape)}")
        size = int(input.shape[self._infer_dim])
        real = self.cls_to_become(size, *self._lazy_args, **self._lazy_kwargs)
        device = input.device
        for name, value in real._parameters.items():
            mine = self._parameters.get(name)
            if value is None or mine is None:
                continue
            mine.data = value.data
            real._parameters[name] = mine
        keep = {k: v for k, v in self.__dict__.items()
                if k.startswith(("_forward", "_backward")) or k == "training"}
        self.__dict__.clear()
        self.__dict__.update(real.__dict__)
        self.__dict__.update(keep)
        self.__class__ = self.cls_to_become
        if device != "cpu":
            self.to(device)

    def __call__(self, *args, **kwargs):
        if isinstance(self, LazyModuleMixin):
            if not args:
                raise TypeError(f"{type(self).__name__} needs its input positionally to infer "
                                "its size")
            self.initialize_parameters(args[0])
        return Module.__call__(self, *args, **kwargs)


def _lazy(name, base, placeholders, infer_dim=1, min_ndim=2):
    def __init__(self, *args, **kwargs):
        self._lazy_init(args, kwargs, placeholders)

    doc = (f"``{base.__name__}`` whose size argument is read from dim {infer_dim} of the "
           f"first input; the other arguments are {base.__name__}'s.")
    return type(name, (LazyModuleMixin, Module), {
        "__init__": __init__, "cls_to_become": base, "_infer_dim": infer_dim,
        "_min_ndim": min_ndim, "__doc__": doc, "__module__": __name__})


LazyLinear = _lazy("LazyLinear", layers.Linear, ("weight", "bias"), infer_dim=-1, min_ndim=1)
LazyConv1d = _lazy("LazyConv1d", layers.Conv1d, ("weight", "bias"))
LazyConv2d = _lazy("LazyConv2d", layers.Conv2d, ("weight", "bias"))
LazyConv3d = _lazy("LazyConv3d", layers.Conv3d, ("weight", "bias"))
LazyConvTranspose1d = _lazy("LazyConvTranspose1d", layers.ConvTranspose1d, ("weight", "bias"))
LazyConvTranspose2d = _lazy("LazyConvTranspose2d", layers.ConvTranspose2d, ("weight", "bias"))
LazyConvTranspose3d = _lazy("LazyConvTranspose3d", layers.ConvTranspose3d, ("weight", "bias"))
LazyBatchNorm1d = _lazy("LazyBatchNorm1d", layers.BatchNorm1d, ("weight", "bias"))
LazyBatchNorm2d = _lazy("LazyBatchNorm2d", layers.BatchNorm2d, ("weight", "bias"))
LazyBatchNorm3d = _lazy("LazyBatchNorm3d", layers.BatchNorm3d, ("weight", "bias"))
LazyInstanceNorm1d = _lazy("LazyInstanceNorm1d", layers.InstanceNorm1d, ("weight", "bias"))
LazyInstanceNorm2d = _lazy("LazyInstanceNorm2d", layers.InstanceNorm2d, ("weight", "bias"))
LazyInstanceNorm3d = _lazy("LazyInstanceNorm3d", layers.InstanceNorm3d, ("weight", "bias"))

__all__ = ["LazyModuleMixin", "LazyLinear", "LazyConv1d", "LazyConv2d", "LazyConv3d",
           "LazyConvTranspose1d", "LazyConvTranspose2d", "LazyConvTranspose3d",
           "LazyBatchNorm1d", "LazyBatchNorm2d",
           "LazyBatchNorm3d", "LazyInstanceNorm1d", "LazyInstanceNorm2d", "LazyInstanceNorm3d"]
