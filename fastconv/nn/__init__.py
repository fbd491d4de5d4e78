"""Layers and containers (``fastconv.nn``), with PyTorch's names and defaults."""

from fastconv.nn import init
from fastconv.nn.layers import (
    AdaptiveAvgPool2d,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Concat,
    Conv2d,
    Dropout,
    Dropout2d,
    Flatten,
    Identity,
    Linear,
    LocalResponseNorm,
    MaxPool2d,
    ReLU,
    Sequential,
)
from fastconv.nn.module import Module, Parameter

__all__ = [
    "init", "Module", "Parameter", "Sequential", "Concat", "Identity", "Conv2d", "Linear",
    "ReLU", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "BatchNorm1d", "BatchNorm2d",
    "LocalResponseNorm", "Dropout", "Dropout2d", "Flatten",
]
