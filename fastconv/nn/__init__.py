"""Layers and containers (``fastconv.nn``), with PyTorch's names and defaults.

``fastconv.nn.functional`` is ``fastconv.functional`` (the same module object), so
``import fastconv.nn.functional as F`` works as in PyTorch.
"""

import sys as _sys

from fastconv import functional
from fastconv.nn import init, utils
from fastconv.nn.container import (
    ModuleDict,
    ModuleList,
    ParameterDict,
    ParameterList,
    Sequential,
)
from fastconv.nn.layers import (
    ELU,
    GELU,
    AdaptiveAvgPool2d,
    AdaptiveMaxPool2d,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    BCEWithLogitsLoss,
    CircularPad2d,
    Concat,
    ConstantPad2d,
    Conv2d,
    CrossEntropyLoss,
    Dropout,
    Dropout2d,
    Flatten,
    GroupNorm,
    Identity,
    L1Loss,
    LayerNorm,
    LeakyReLU,
    Linear,
    LocalResponseNorm,
    LogSoftmax,
    MaxPool2d,
    MSELoss,
    NLLLoss,
    ReflectionPad2d,
    ReLU,
    ReplicationPad2d,
    SiLU,
    Softmax,
    Upsample,
    UpsamplingBilinear2d,
    UpsamplingNearest2d,
    ZeroPad2d,
)
from fastconv.nn.module import Module, Parameter

_sys.modules[__name__ + ".functional"] = functional

__all__ = [
    "init", "utils", "functional", "Module", "Parameter", "Sequential", "ModuleList",
    "ModuleDict", "ParameterList", "ParameterDict", "Concat", "Identity", "Conv2d", "Linear",
    "ReLU", "LeakyReLU", "ELU", "GELU", "SiLU", "Softmax", "LogSoftmax", "MaxPool2d",
    "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "BatchNorm1d", "BatchNorm2d",
    "LayerNorm", "GroupNorm", "LocalResponseNorm", "Dropout", "Dropout2d", "Flatten",
    "ZeroPad2d", "ConstantPad2d", "ReflectionPad2d", "ReplicationPad2d", "CircularPad2d",
    "Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d", "CrossEntropyLoss", "NLLLoss",
    "MSELoss", "L1Loss", "BCEWithLogitsLoss",
]
