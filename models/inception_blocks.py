"""The Inception family: what its networks share (the auxiliary outputs and their
conventions, conv blocks, branch concatenation, initialisation, the ImageNet input
transform). The networks: googlenet.py, bn_inception.py, inception_v3.py,
inception_small.py.


* ``googlenet`` — Inception v1: Szegedy et al., "Going Deeper with Convolutions",
  CVPR 2015 (arXiv:1409.4842), Table 1, with the two auxiliary classifiers.
* ``bn_inception`` — Inception v2 / BN-Inception: Ioffe & Szegedy, "Batch
  Normalization: Accelerating Deep Network Training by Reducing Internal Covariate
  Shift", ICML 2015 (arXiv:1502.03167), Figure 5.
* ``inception_v3`` — Szegedy et al., "Rethinking the Inception Architecture for
  Computer Vision", CVPR 2016 (arXiv:1512.00567), in torchvision's layout
  (module and parameter names included).
* ``inception_small`` — a ten-layer network of two Inception-v2 modules for small images.
* ``googlenet_cifar``, ``bn_inception_cifar`` — the ImageNet networks with their
  stems adapted to 32×32 CIFAR-10 images.

Auxiliary classifiers (``googlenet``, ``googlenet_cifar`` with ``aux_logits=True``,
``inception_v3``): in training mode the forward pass returns a named tuple of the
main logits and the auxiliary logits; in eval mode (``model.eval()``) only the main
logits, as a tensor, and the auxiliary heads are not evaluated. Return conventions:

* GoogLeNet, training: ``GoogLeNetOutputs(logits, aux1, aux2)`` where ``aux1`` is
  the head on inception 4a and ``aux2`` the head on inception 4d (the paper's
  ``loss1`` and ``loss2``; the paper weights each auxiliary loss by 0.3).
  Note: torchvision's namedtuple orders its fields ``(logits, aux_logits2,
  aux_logits1)``; ours is in network order. Use the field names when in doubt.
* Inception v3, training: ``InceptionOutputs(logits, aux_logits)`` as torchvision
  (the aux head sits on Mixed_6e; the paper treats it as a regulariser, PyTorch's
  fine-tuning tutorial weights its loss by 0.4).

:func:`main_logits` takes either form and returns the main logits.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from fastconv import functional as F
from fastconv import nn
from fastconv.nn import init
from fastconv.tensor import Tensor

GoogLeNetOutputs = namedtuple("GoogLeNetOutputs", ["logits", "aux1", "aux2"])
GoogLeNetOutputs.__doc__ = ("GoogLeNet's training-mode output: main logits, the head on "
                            "inception 4a, the head on inception 4d.")
InceptionOutputs = namedtuple("InceptionOutputs", ["logits", "aux_logits"])
InceptionOutputs.__doc__ = "Inception v3's training-mode output: main logits, aux logits."


def main_logits(output):
    """The main logits of a model output, whether a tensor or an aux-output tuple."""
    return output[0] if isinstance(output, tuple) else output


# --------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------

class ConvReLU(nn.Module):
    """Convolution (with bias) followed by ReLU: GoogLeNet's unit (no batch norm)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                              padding=padding)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv(x))


class BasicConv2d(nn.Module):
    """Convolution (no bias) - batch norm - ReLU, torchvision's ``BasicConv2d``.

    The convolution has no bias by default because batch norm's shift replaces it
    (Ioffe & Szegedy 2015, Section 3.2); ``bias=True`` keeps it (BN-Inception's
    released model has one).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 eps: float = 1e-5, bias: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                              padding=padding, bias=bias)
        self.bn = nn.BatchNorm2d(out_channels, eps=eps)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


def _cat(branches):
    return F.cat(branches, 1)


#: torchvision's ``transform_input``: its ImageNet weights for GoogLeNet and Inception v3
#: were trained on inputs scaled to [-1, 1] ((x - 0.5) / 0.5), while its presets normalise
#: with the ImageNet mean and std; x * std / 0.5 + (mean - 0.5) / 0.5 converts one into
#: the other, per channel.
_TRANSFORM_SCALE = np.array([0.229 / 0.5, 0.224 / 0.5, 0.225 / 0.5],
                            np.float32).reshape(1, 3, 1, 1)
_TRANSFORM_SHIFT = np.array([(0.485 - 0.5) / 0.5, (0.456 - 0.5) / 0.5, (0.406 - 0.5) / 0.5],
                            np.float32).reshape(1, 3, 1, 1)


def _transform_input(x):
    """torchvision's transform_input (see :data:`_TRANSFORM_SCALE`)."""
    return x * Tensor(_TRANSFORM_SCALE).to(x.device) + Tensor(_TRANSFORM_SHIFT).to(x.device)


def _he_init(model: nn.Module, classifiers=(), bias: float = 0.0) -> None:
    """He (fan-in, ReLU gain) normal for convolutions and hidden linear layers,
    Xavier uniform for the layers in ``classifiers``; batch norm scale 1 and shift 0;
    biases ``bias`` (0 for classifiers)."""
    classifiers = {id(m) for m in classifiers}
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if id(m) in classifiers:
                init.xavier_uniform_(m.weight)
            else:
                init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                init.constant_(m.bias, 0.0 if id(m) in classifiers else bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            init.ones_(m.weight)
            init.zeros_(m.bias)
