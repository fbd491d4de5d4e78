"""The Inception family.

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

from .registry import register_model

__all__ = [
    "BNInception",
    "GoogLeNet",
    "GoogLeNetOutputs",
    "Inception3",
    "InceptionOutputs",
    "InceptionSmall",
    "bn_inception",
    "bn_inception_cifar",
    "googlenet",
    "googlenet_cifar",
    "inception_small",
    "inception_v3",
    "main_logits",
]

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


# --------------------------------------------------------------------------------------
# GoogLeNet (Inception v1)
# --------------------------------------------------------------------------------------

#: LRN of the BVLC GoogLeNet reference model (the paper gives no values): window 5,
#: alpha 1e-4, beta 0.75, k 1, in Caffe's convention, which (like ours) divides alpha
#: by the window size, so the values pass through unchanged.
GOOGLENET_LRN = {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 1.0}


class InceptionV1(nn.Module):
    """The Inception module of Szegedy et al. 2014 (Figure 2b).

    Four branches concatenated along channels: 1×1; 1×1 reduce → 3×3; 1×1 reduce → 5×5;
    3×3 max pool (stride 1) → 1×1 projection. Every convolution is followed by ReLU.
    """

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int,
                 ch5x5red: int, ch5x5: int, pool_proj: int, unit=ConvReLU,
                 kernel5x5: int = 5):
        super().__init__()
        self.branch1 = unit(in_channels, ch1x1, 1)
        self.branch2 = nn.Sequential(unit(in_channels, ch3x3red, 1),
                                     unit(ch3x3red, ch3x3, 3, padding=1))
        self.branch3 = nn.Sequential(unit(in_channels, ch5x5red, 1),
                                     unit(ch5x5red, ch5x5, kernel5x5, padding=kernel5x5 // 2))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1),
                                     unit(in_channels, pool_proj, 1))
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x):
        return _cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)])


class InceptionAuxV1(nn.Module):
    """GoogLeNet's auxiliary classifier (Section 5): 5×5/3 average pool, 1×1 conv with
    128 filters and ReLU, fully connected 1024 with ReLU, dropout 0.7, linear classifier.
    On a 14×14 map (224×224 input) or a 16×16 map (32×32 CIFAR input) the pool gives 4×4."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7,
                 unit=ConvReLU, adaptive_pool: bool = False):
        super().__init__()
        # torchvision's head pools adaptively to 4x4 (other windows than 5x5/3 on 14x14).
        self.avgpool = nn.AdaptiveAvgPool2d(4) if adaptive_pool else nn.AvgPool2d(5, stride=3)
        self.conv = unit(in_channels, 128, 1)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x):
        x = self.flatten(self.conv(self.avgpool(x)))
        return self.fc2(self.dropout(self.relu(self.fc1(x))))


class GoogLeNet(nn.Module):
    """GoogLeNet (Inception v1), Szegedy et al. 2014, Table 1.

    ImageNet layout (``stem="imagenet"``, 224×224 input)::

        conv1 7×7/2, 64                   112×112   ReLU
        max pool 3×3/2 (ceil)              56×56    LRN
        conv2 1×1, 64; conv3 3×3, 192      56×56    ReLU each, LRN
        max pool 3×3/2 (ceil)              28×28
        inception 3a (256), 3b (480)       28×28
        max pool 3×3/2 (ceil)              14×14
        inception 4a (512)  -> aux1        14×14
        inception 4b, 4c (512), 4d (528) -> aux2
        inception 4e (832)
        max pool 3×3/2 (ceil)               7×7
        inception 5a (832), 5b (1024)       7×7
        global average pool, dropout 0.4, linear -> num_classes

    The 5×5 branches are real 5×5 convolutions (torchvision's GoogLeNet uses 3×3
    there and adds batch norm; this one follows the paper: no batch norm, LRN in the
    stem). 6,998,552 parameters for 1000 classes without the auxiliary heads,
    13,378,280 with them.

    CIFAR layout (``stem="cifar"``, 32×32 input), see :func:`googlenet_cifar`.

    Auxiliary heads (``aux_logits=True``): in training mode ``forward`` returns
    ``GoogLeNetOutputs(logits, aux1, aux2)`` (aux1 on 4a, aux2 on 4d); in eval mode
    only the logits tensor. With ``aux_logits=False`` the heads are not built.

    Initialisation: the paper does not give one (it trained with DistBelief); by
    default (``init_scheme="bvlc"``) we follow the BVLC reference model: Xavier
    (Glorot) uniform weights, biases 0.2 for layers followed by ReLU and 0 for the
    classifiers. ``init_scheme="he"``: He (fan-in, ReLU gain) normal weights and zero
    biases, Xavier uniform classifiers (the default of :func:`googlenet_cifar`).

    Args:
        num_classes: classifier outputs (main and auxiliary).
        aux_logits: build the two auxiliary classifiers.
        dropout: before the main classifier (paper: 0.4).
        dropout_aux: inside the auxiliary classifiers (paper: 0.7).
        stem: ``"imagenet"`` or ``"cifar"``.
        layout: ``"paper"`` (above) or ``"torchvision"``: torchvision's GoogLeNet, whose
            ImageNet weights ``models.get_model("googlenet", weights=...)`` loads: every
            convolution is conv (no bias) - batch norm (eps 1e-3) - ReLU, the "5×5"
            branches are 3×3 (torchvision keeps that known bug for its weights), no LRN,
            the last stem-to-5a pool is 2×2/2, the auxiliary heads pool adaptively to 4×4,
            and dropout defaults to 0.2. Same module names (the stem is ``stem.0``,
            ``stem.2``, ``stem.3`` for torchvision's ``conv1``, ``conv2``, ``conv3``).
        transform_input: apply torchvision's ``transform_input`` first (re-normalises
            ImageNet-normalised inputs to the [-1, 1] scaling its weights were trained on).
        init_scheme: ``"bvlc"`` or ``"he"`` (see Initialisation above).
    """

    def __init__(self, num_classes: int = 1000, aux_logits: bool = True,
                 dropout: float | None = None, dropout_aux: float = 0.7,
                 stem: str = "imagenet", layout: str = "paper", transform_input: bool = False,
                 init_scheme: str = "bvlc"):
        super().__init__()
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        if init_scheme not in ("bvlc", "he"):
            raise ValueError(f"init_scheme must be 'bvlc' or 'he', got {init_scheme!r}")
        if layout not in ("paper", "torchvision"):
            raise ValueError(f"layout must be 'paper' or 'torchvision', got {layout!r}")
        if layout == "torchvision" and stem != "imagenet":
            raise ValueError("layout='torchvision' has only the ImageNet stem")
        self.aux_logits = aux_logits
        self.layout = layout
        self.transform_input = transform_input
        if dropout is None:
            dropout = 0.2 if layout == "torchvision" else 0.4
        tv = layout == "torchvision"
        unit = (lambda cin, cout, k, stride=1, padding=0:
                BasicConv2d(cin, cout, k, stride=stride, padding=padding, eps=1e-3)) \
            if tv else ConvReLU
        block = (lambda *widths: InceptionV1(*widths, unit=unit, kernel5x5=3)) if tv \
            else InceptionV1
        if tv:
            self.stem = nn.Sequential(
                unit(3, 64, 7, stride=2, padding=3),
                nn.MaxPool2d(3, stride=2, ceil_mode=True),
                unit(64, 64, 1),
                unit(64, 192, 3, padding=1),
                nn.MaxPool2d(3, stride=2, ceil_mode=True),
            )
        elif stem == "imagenet":
            self.stem = nn.Sequential(
                ConvReLU(3, 64, 7, stride=2, padding=3),
                nn.MaxPool2d(3, stride=2, ceil_mode=True),
                nn.LocalResponseNorm(**GOOGLENET_LRN),
                ConvReLU(64, 64, 1),
                ConvReLU(64, 192, 3, padding=1),
                nn.LocalResponseNorm(**GOOGLENET_LRN),
                nn.MaxPool2d(3, stride=2, ceil_mode=True),
            )
        else:
            self.stem = nn.Sequential(
                ConvReLU(3, 64, 3, padding=1),
                nn.LocalResponseNorm(**GOOGLENET_LRN),
                ConvReLU(64, 64, 1),
                ConvReLU(64, 192, 3, padding=1),
                nn.LocalResponseNorm(**GOOGLENET_LRN),
            )
        self.inception3a = block(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = block(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = block(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = block(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = block(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = block(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = block(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2 if tv else 3, stride=2, ceil_mode=True)
        self.inception5a = block(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = block(832, 384, 192, 384, 48, 128, 128)
        if aux_logits:
            self.aux1 = InceptionAuxV1(512, num_classes, dropout_aux, unit, adaptive_pool=tv)
            self.aux2 = InceptionAuxV1(528, num_classes, dropout_aux, unit, adaptive_pool=tv)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)
        self._initialise(init_scheme)

    def _initialise(self, scheme: str) -> None:
        classifiers = [self.fc]
        if self.aux_logits:
            classifiers += [self.aux1.fc2, self.aux2.fc2]
        if scheme == "he":
            _he_init(self, classifiers=classifiers)
            return
        classifiers = {id(m) for m in classifiers}
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    init.constant_(m.bias, 0.0 if id(m) in classifiers else 0.2)

    def forward(self, x):
        if self.transform_input:
            x = _transform_input(x)
        x = self.stem(x)
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux1 = self.aux1(x) if self.aux_logits and self.training else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if self.aux_logits and self.training else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        x = self.fc(self.dropout(self.flatten(self.avgpool(x))))
        if aux1 is not None:
            return GoogLeNetOutputs(x, aux1, aux2)
        return x


@register_model("googlenet", input_shape=(3, 224, 224), num_classes=1000,
                description="GoogLeNet / Inception v1 (Szegedy et al. 2014) with aux heads")
def googlenet(num_classes: int = 1000, aux_logits: bool = True, **options) -> GoogLeNet:
    """GoogLeNet for 224×224 ImageNet crops; see :class:`GoogLeNet`.

    13,378,280 parameters with the auxiliary heads (default), 6,998,552 with
    ``aux_logits=False`` (1000 classes).
    """
    return GoogLeNet(num_classes=num_classes, aux_logits=aux_logits, stem="imagenet", **options)


@register_model("googlenet_cifar", input_shape=(3, 32, 32), num_classes=10,
                description="GoogLeNet with its stem adapted to 32x32 CIFAR-10 images; He init "
                            "and gradient clipping (BVLC's init does not learn here)")
def googlenet_cifar(num_classes: int = 10, aux_logits: bool = False, **options) -> GoogLeNet:
    """GoogLeNet adapted to 32×32 CIFAR-10 images.

    Stem adaptation: the ImageNet stem shrinks 224 pixels by 8 before inception 3a
    (7×7/2 conv and two 3×3/2 pools); on 32 pixels that would leave 4×4 maps for 3a
    and 1×1 for 5b. The CIFAR stem is conv 3×3-64 (stride 1), ReLU, LRN, conv
    1×1-64, conv 3×3-192, ReLU, LRN, with no pooling, so inception 3a/3b run at
    32×32, 4a-4e at 16×16 and 5a/5b at 8×8: the same depths as Table 1 and a last
    grid close to ImageNet's 7×7 (the layout of the widely used pytorch-cifar
    GoogLeNet, minus its batch norm). The auxiliary heads work unchanged (16×16 →
    4×4 after the 5×5/3 pool) but are off by default (``aux_logits=True`` builds
    them). Modules and outputs as :class:`GoogLeNet`.

    Initialisation: He (``init_scheme="he"``) instead of BVLC's Xavier weights with
    0.2 biases: without batch norm, and without the auxiliary heads that feed the
    gradient into the middle of the network, the BVLC weights make logits that hardly
    depend on the image (their spread over images is about 1% of their size) and the
    network did not learn in the learnability test (tests/test_learnability.py, even at
    a tenth of the rate). ``init_scheme="bvlc"`` restores them.

    Recipe (``models.train_cifar``): Nesterov SGD, peak rate 0.1 after a 2-epoch
    warm-up, cosine over 100 epochs, weight decay 5e-4, batches of 128, crops and
    flips, and the gradient norm clipped to 1. Deviations from BVLC's solver (SGD with
    momentum 0.9 at 0.01 for batches of 32, step decay): the rate schedule, and the
    clipping because He-initialised logits start large: without it the loss spiked (to
    8.7) at the peak rate and training accuracy stayed near 50% in the learnability
    test, with it 100%. On the CIFAR-10 images (batches of 32 at 0.025, clipped): loss
    3.25 -> 2.34 over the first 40 steps.
    """
    options.setdefault("init_scheme", "he")
    return GoogLeNet(num_classes=num_classes, aux_logits=aux_logits, stem="cifar", **options)


# --------------------------------------------------------------------------------------
# BN-Inception (Inception v2)
# --------------------------------------------------------------------------------------

class InceptionV2(nn.Module):
    """The Inception module of BN-Inception (Ioffe & Szegedy 2015, Figure 5).

    Branches (each convolution is conv - batch norm - ReLU):

    * 1×1 (left out when ``ch1x1 == 0``),
    * 1×1 reduce → 3×3 (stride ``stride``),
    * 1×1 reduce → 3×3 → 3×3 (stride ``stride``): the 5×5 of Inception v1 factorised,
    * 3×3 pooling (``"avg"`` or ``"max"``, stride ``stride``) → 1×1 projection, or the
      pooled input passed through unchanged when ``pool_proj == 0``.

    A stride-2 module (``stride=2``, ``ch1x1=0``, max pooling with pass-through)
    halves the grid and widens the channels. Stride-2 convolutions and pooling both pad
    by 1, so their windows line up and their outputs agree at any input size.
    ``conv_bias`` keeps the (redundant) convolution biases before batch norm.
    """

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int,
                 chdblred: int, chdbl: int, pool: str, pool_proj: int, stride: int = 1,
                 conv_bias: bool = False):
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")

        def conv(cin, cout, k, stride=1, padding=0):
            return BasicConv2d(cin, cout, k, stride=stride, padding=padding, bias=conv_bias)

        self.branch1 = conv(in_channels, ch1x1, 1) if ch1x1 else None
        self.branch2 = nn.Sequential(conv(in_channels, ch3x3red, 1),
                                     conv(ch3x3red, ch3x3, 3, stride=stride, padding=1))
        self.branch3 = nn.Sequential(conv(in_channels, chdblred, 1),
                                     conv(chdblred, chdbl, 3, padding=1),
                                     conv(chdbl, chdbl, 3, stride=stride, padding=1))
        pool_layer = (nn.AvgPool2d(3, stride=stride, padding=1) if pool == "avg"
                      else nn.MaxPool2d(3, stride=stride, padding=1))
        if pool_proj:
            self.branch4 = nn.Sequential(pool_layer, conv(in_channels, pool_proj, 1))
        else:
            self.branch4 = nn.Sequential(pool_layer)
        self.out_channels = ch1x1 + ch3x3 + chdbl + (pool_proj or in_channels)

    def forward(self, x):
        outs = [self.branch1(x)] if self.branch1 is not None else []
        outs += [self.branch2(x), self.branch3(x), self.branch4(x)]
        return _cat(outs)


class BNInception(nn.Module):
    """BN-Inception (Inception v2), Ioffe & Szegedy 2015, Figure 5.

    ImageNet layout (224×224 input)::

        conv 7×7/2, 64                        112×112
        max pool 3×3/2 (ceil)                  56×56
        conv 1×1, 64; conv 3×3, 192            56×56
        max pool 3×3/2 (ceil)                  28×28
        inception 3a (256), 3b (320)           28×28
        inception 3c, stride 2 (576)           14×14
        inception 4a-4d (576, 576, 608, 608)   14×14
        inception 4e, stride 2 (1056)           7×7
        inception 5a, 5b (1024)                 7×7
        global average pool, linear -> num_classes

    Module widths (#1×1, #3×3 reduce, #3×3, double #3×3 reduce, double #3×3,
    pool + proj) are Figure 5's. Batch norm follows every convolution (conv - BN -
    ReLU); as in the authors' released model the convolutions keep their biases,
    although batch norm's shift makes them redundant (10,016 of the parameters;
    ``conv_bias=False`` drops them). The 5×5 convolutions of GoogLeNet become two
    3×3; the stride-2 modules 3c and 4e have no 1×1 branch and pass the max-pooled
    input through. Figure 5's output column lists 576 channels for 4c and 4d and 1024
    for 4e, but its branch widths sum to 160+160+160+128 = 608, 96+192+192+128 = 608
    and 192+256+608 = 1056; we follow the branch widths, as the released model does. No dropout (Section
    4.2.1 removes it) and no LRN (4.2.1 removes it too). 11,295,240 parameters for
    1000 classes (batch-norm scale and shift and the convolution biases included).

    Initialisation: the paper does not give one; He (fan-in, ReLU gain) normal for
    the convolutions, Xavier uniform for the classifier, batch norm 1/0.

    Args:
        num_classes: classifier outputs.
        stem: ``"imagenet"`` or ``"cifar"`` (see :func:`bn_inception_cifar`).
        dropout: before the classifier; 0 (none) as in the paper.
        conv_bias: keep the convolution biases (default, as the released model).
    """

    def __init__(self, num_classes: int = 1000, stem: str = "imagenet", dropout: float = 0.0,
                 conv_bias: bool = True):
        super().__init__()
        b = conv_bias
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        if stem == "imagenet":
            self.stem = nn.Sequential(
                BasicConv2d(3, 64, 7, stride=2, padding=3, bias=b),
                nn.MaxPool2d(3, stride=2, ceil_mode=True),
                BasicConv2d(64, 64, 1, bias=b),
                BasicConv2d(64, 192, 3, padding=1, bias=b),
                nn.MaxPool2d(3, stride=2, ceil_mode=True),
            )
        else:
            self.stem = nn.Sequential(
                BasicConv2d(3, 64, 3, padding=1, bias=b),
                BasicConv2d(64, 64, 1, bias=b),
                BasicConv2d(64, 192, 3, padding=1, bias=b),
            )
        self.inception3a = InceptionV2(192, 64, 64, 64, 64, 96, "avg", 32, conv_bias=b)
        self.inception3b = InceptionV2(256, 64, 64, 96, 64, 96, "avg", 64, conv_bias=b)
        self.inception3c = InceptionV2(320, 0, 128, 160, 64, 96, "max", 0, stride=2, conv_bias=b)
        self.inception4a = InceptionV2(576, 224, 64, 96, 96, 128, "avg", 128, conv_bias=b)
        self.inception4b = InceptionV2(576, 192, 96, 128, 96, 128, "avg", 128, conv_bias=b)
        self.inception4c = InceptionV2(576, 160, 128, 160, 128, 160, "avg", 128, conv_bias=b)
        self.inception4d = InceptionV2(608, 96, 128, 192, 160, 192, "avg", 128, conv_bias=b)
        self.inception4e = InceptionV2(608, 0, 128, 192, 192, 256, "max", 0, stride=2, conv_bias=b)
        self.inception5a = InceptionV2(1056, 352, 192, 320, 160, 224, "avg", 128, conv_bias=b)
        self.inception5b = InceptionV2(1024, 352, 192, 320, 192, 224, "max", 128, conv_bias=b)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None
        self.fc = nn.Linear(1024, num_classes)
        _he_init(self, classifiers=[self.fc])

    def forward(self, x):
        x = self.stem(x)
        x = self.inception3c(self.inception3b(self.inception3a(x)))
        x = self.inception4b(self.inception4a(x))
        x = self.inception4e(self.inception4d(self.inception4c(x)))
        x = self.inception5b(self.inception5a(x))
        x = self.flatten(self.avgpool(x))
        if self.dropout is not None:
            x = self.dropout(x)
        return self.fc(x)


@register_model("bn_inception", input_shape=(3, 224, 224), num_classes=1000,
                description="BN-Inception / Inception v2 (Ioffe & Szegedy 2015, Figure 5)")
def bn_inception(num_classes: int = 1000, **options) -> BNInception:
    """BN-Inception for 224×224 ImageNet crops, 11,295,240 parameters; see :class:`BNInception`."""
    return BNInception(num_classes=num_classes, stem="imagenet", **options)


@register_model("bn_inception_cifar", input_shape=(3, 32, 32), num_classes=10,
                description="BN-Inception with its stem adapted to 32x32 CIFAR-10 images; "
                            "a CIFAR batch-norm recipe instead of the paper's ImageNet one")
def bn_inception_cifar(num_classes: int = 10, **options) -> BNInception:
    """BN-Inception adapted to 32×32 CIFAR-10 images.

    Stem adaptation: the ImageNet stem (7×7/2 conv and two 3×3/2 max pools) shrinks
    the image by 8 before inception 3a, which on 32 pixels would leave 1×1 maps
    after module 4e. The CIFAR stem keeps the stem's convolutions but drops the
    downsampling: conv 3×3-64 (stride 1), conv 1×1-64, conv 3×3-192, each with batch
    norm and ReLU, no pooling. The two stride-2 modules then give 32×32 (3a-3c), 16×16
    (4a-4e) and 8×8 (5a, 5b) grids, the last close to ImageNet's 7×7. All modules are
    Figure 5's; see :class:`BNInception`.

    Recipe (``models.train_cifar``): Nesterov SGD at a peak 0.1 after a 1-epoch
    warm-up, cosine over 100 epochs, weight decay 5e-4, batches of 128, crops and
    flips: the usual CIFAR-10 recipe for batch-norm networks in place of the paper's
    accelerated ImageNet schedule (Section 4.2.1), which is for another dataset and
    batch size.
    """
    return BNInception(num_classes=num_classes, stem="cifar", **options)


# --------------------------------------------------------------------------------------
# Inception v3 (torchvision's layout)
# --------------------------------------------------------------------------------------

def _v3conv(in_channels, out_channels, kernel_size, stride=1, padding=0) -> BasicConv2d:
    # torchvision's Inception3 uses batch norm eps 0.001 (TensorFlow's value).
    return BasicConv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                       eps=1e-3)


class InceptionA(nn.Module):
    """35×35 module (the paper's Figure 5): 1×1 | 1×1→5×5 | 1×1→3×3→3×3 | avg pool→1×1.

    torchvision keeps a 5×5 branch here, as Google's released checkpoint does."""

    def __init__(self, in_channels: int, pool_features: int):
        super().__init__()
        self.branch1x1 = _v3conv(in_channels, 64, 1)
        self.branch5x5_1 = _v3conv(in_channels, 48, 1)
        self.branch5x5_2 = _v3conv(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _v3conv(in_channels, 64, 1)
        self.branch3x3dbl_2 = _v3conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _v3conv(96, 96, 3, padding=1)
        self.branch_pool_avg = nn.AvgPool2d(3, stride=1, padding=1)
        self.branch_pool = _v3conv(in_channels, pool_features, 1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b2 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        b4 = self.branch_pool(self.branch_pool_avg(x))
        return _cat([b1, b2, b3, b4])


class InceptionB(nn.Module):
    """Grid reduction 35 → 17 (the paper's Figure 10): 3×3/2 | 1×1→3×3→3×3/2 | max pool/2."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = _v3conv(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = _v3conv(in_channels, 64, 1)
        self.branch3x3dbl_2 = _v3conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _v3conv(96, 96, 3, stride=2)
        self.branch_pool = nn.MaxPool2d(3, stride=2)

    def forward(self, x):
        b1 = self.branch3x3(x)
        b2 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return _cat([b1, b2, self.branch_pool(x)])


class InceptionC(nn.Module):
    """17×17 module with factorised 7×7 convolutions (the paper's Figure 6, n = 7)."""

    def __init__(self, in_channels: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = _v3conv(in_channels, 192, 1)
        self.branch7x7_1 = _v3conv(in_channels, c7, 1)
        self.branch7x7_2 = _v3conv(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = _v3conv(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = _v3conv(in_channels, c7, 1)
        self.branch7x7dbl_2 = _v3conv(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = _v3conv(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = _v3conv(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = _v3conv(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool_avg = nn.AvgPool2d(3, stride=1, padding=1)
        self.branch_pool = _v3conv(in_channels, 192, 1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b2 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b3 = self.branch7x7dbl_1(x)
        b3 = self.branch7x7dbl_3(self.branch7x7dbl_2(b3))
        b3 = self.branch7x7dbl_5(self.branch7x7dbl_4(b3))
        b4 = self.branch_pool(self.branch_pool_avg(x))
        return _cat([b1, b2, b3, b4])


class InceptionD(nn.Module):
    """Grid reduction 17 → 8: 1×1→3×3/2 | 1×1→1×7→7×1→3×3/2 | max pool/2."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3_1 = _v3conv(in_channels, 192, 1)
        self.branch3x3_2 = _v3conv(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _v3conv(in_channels, 192, 1)
        self.branch7x7x3_2 = _v3conv(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _v3conv(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _v3conv(192, 192, 3, stride=2)
        self.branch_pool = nn.MaxPool2d(3, stride=2)

    def forward(self, x):
        b1 = self.branch3x3_2(self.branch3x3_1(x))
        b2 = self.branch7x7x3_2(self.branch7x7x3_1(x))
        b2 = self.branch7x7x3_4(self.branch7x7x3_3(b2))
        return _cat([b1, b2, self.branch_pool(x)])


class InceptionE(nn.Module):
    """8×8 module with expanded filter banks (the paper's Figure 7): the 3×3 outputs
    split into parallel 1×3 and 3×1 convolutions."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch1x1 = _v3conv(in_channels, 320, 1)
        self.branch3x3_1 = _v3conv(in_channels, 384, 1)
        self.branch3x3_2a = _v3conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = _v3conv(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = _v3conv(in_channels, 448, 1)
        self.branch3x3dbl_2 = _v3conv(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _v3conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _v3conv(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool_avg = nn.AvgPool2d(3, stride=1, padding=1)
        self.branch_pool = _v3conv(in_channels, 192, 1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b2 = self.branch3x3_1(x)
        b2 = _cat([self.branch3x3_2a(b2), self.branch3x3_2b(b2)])
        b3 = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        b3 = _cat([self.branch3x3dbl_3a(b3), self.branch3x3dbl_3b(b3)])
        b4 = self.branch_pool(self.branch_pool_avg(x))
        return _cat([b1, b2, b3, b4])


class InceptionAux(nn.Module):
    """Inception v3's auxiliary classifier on the 17×17 grid: 5×5/3 average pool,
    1×1 conv 128, 5×5 conv 768 (both with batch norm), global average pool, linear."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.avgpool0 = nn.AvgPool2d(5, stride=3)
        self.conv0 = _v3conv(in_channels, 128, 1)
        self.conv1 = _v3conv(128, 768, 5)
        self.avgpool1 = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x):
        x = self.conv1(self.conv0(self.avgpool0(x)))
        return self.fc(self.flatten(self.avgpool1(x)))


class Inception3(nn.Module):
    """Inception v3 (Szegedy et al. 2015) for 299×299 inputs, torchvision's layout.

    ::

        Conv2d_1a_3x3 3×3/2, 32          149×149
        Conv2d_2a_3x3 3×3, 32            147×147
        Conv2d_2b_3x3 3×3 pad 1, 64      147×147
        max pool 3×3/2                    73×73
        Conv2d_3b_1x1 1×1, 80             73×73
        Conv2d_4a_3x3 3×3, 192            71×71
        max pool 3×3/2                    35×35
        Mixed_5b, 5c, 5d  (InceptionA)    35×35   256, 288, 288
        Mixed_6a          (InceptionB)    17×17   768
        Mixed_6b-6e       (InceptionC)    17×17   768    -> AuxLogits
        Mixed_7a          (InceptionD)     8×8    1280
        Mixed_7b, 7c      (InceptionE)     8×8    2048
        global average pool, dropout 0.5, fc -> num_classes

    Every convolution is conv (no bias) - batch norm (eps 1e-3) - ReLU; the module
    and parameter names are torchvision's (``Mixed_6e.branch7x7_2.conv.weight``...),
    except that the average pools inside the modules are modules of their own
    (``branch_pool_avg``), which hold no parameters. 27,161,264 parameters for 1000
    classes with the auxiliary head, 23,834,568 without.

    Training mode with ``aux_logits=True`` returns ``InceptionOutputs(logits,
    aux_logits)``; eval mode returns the logits tensor.

    Initialisation: the paper does not give one. He (fan-in, ReLU gain) normal for
    the convolutions, Xavier uniform for both classifiers, batch norm 1/0
    (torchvision uses a truncated normal with std 0.1 instead).

    Args:
        num_classes: classifier outputs (main and auxiliary).
        aux_logits: build the auxiliary classifier.
        dropout: before the main classifier (0.5).
        transform_input: apply torchvision's ``transform_input`` first (its ImageNet
            weights expect it; ``models.get_model("inception_v3", weights=...)`` turns it on
            for torchvision weights, as torchvision does).
    """

    def __init__(self, num_classes: int = 1000, aux_logits: bool = True, dropout: float = 0.5,
                 transform_input: bool = False):
        super().__init__()
        self.aux_logits = aux_logits
        self.transform_input = transform_input
        self.Conv2d_1a_3x3 = _v3conv(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = _v3conv(32, 32, 3)
        self.Conv2d_2b_3x3 = _v3conv(32, 64, 3, padding=1)
        self.maxpool1 = nn.MaxPool2d(3, stride=2)
        self.Conv2d_3b_1x1 = _v3conv(64, 80, 1)
        self.Conv2d_4a_3x3 = _v3conv(80, 192, 3)
        self.maxpool2 = nn.MaxPool2d(3, stride=2)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.AuxLogits = InceptionAux(768, num_classes) if aux_logits else None
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(2048, num_classes)
        classifiers = [self.fc] + ([self.AuxLogits.fc] if aux_logits else [])
        _he_init(self, classifiers=classifiers)

    def forward(self, x):
        if self.transform_input:
            x = _transform_input(x)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(self.maxpool1(x)))
        x = self.maxpool2(x)
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))
        x = self.Mixed_6a(x)
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))
        aux = self.AuxLogits(x) if self.AuxLogits is not None and self.training else None
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))
        x = self.fc(self.flatten(self.dropout(self.avgpool(x))))
        if aux is not None:
            return InceptionOutputs(x, aux)
        return x


@register_model("inception_v3", input_shape=(3, 299, 299), num_classes=1000,
                description="Inception v3 (Szegedy et al. 2015), torchvision layout, aux head")
def inception_v3(num_classes: int = 1000, aux_logits: bool = True, **options) -> Inception3:
    """Inception v3 for 299×299 crops; see :class:`Inception3`.

    27,161,264 parameters with the auxiliary head (default), 23,834,568 with
    ``aux_logits=False`` (1000 classes).
    """
    return Inception3(num_classes=num_classes, aux_logits=aux_logits, **options)


# --------------------------------------------------------------------------------------
# inception_small
# --------------------------------------------------------------------------------------

def _halve(size: int) -> int:
    """Output size of a 3×3 stride-2 window with padding 1: ceil(size / 2)."""
    return (size - 1) // 2 + 1


class InceptionSmall(nn.Module):
    """A ten-layer Inception-v2 network for small images.

    ::

        conv 3×3, 64                                 S
        conv 3×3/2, 128                              S/2
        max pool 3×3/2                               S/4
        inception: 1×1 64 | 1×1 64 → 3×3 96 | 1×1 64 → 3×3 96 → 3×3 96 | avg pool → 1×1 64
                                                     320 channels
        max pool 3×3/2, spatial dropout              S/8
        inception: 1×1 32 | 1×1 96 → 3×3 64 | 1×1 96 → 3×3 64 → 3×3 64 | avg pool → 1×1 32
                                                     192 channels
        max pool 3×3/2, spatial dropout              S/16
        fc 256, batch norm, ReLU, dropout
        linear -> num_classes

    Ten weight layers on the longest path: two convolutions, three per Inception
    module (1×1 bottleneck and two 3×3), the hidden and the output layer. Every
    convolution is conv (no bias) - batch norm - ReLU; the Inception modules are
    :class:`InceptionV2` with average-pool projections. The 3×3/2 windows pad by 1, so
    each halves the size rounding up (S/2 means ceil(S/2)); for 32×32 inputs the grids
    are 32, 16, 8, 4, 2 and the hidden layer sees 192·2·2 = 768 features.

    Spatial dropout (``Dropout2d``) drops whole feature maps; the dropout rates are
    options. Initialisation: He (fan-in, ReLU gain) normal for the convolutions and
    the hidden layer, Xavier uniform for the classifier, batch norm 1/0.

    Args:
        num_classes: classifier outputs.
        input_size: side of the square input images (the hidden layer's width depends
            on it); any size ≥ 1 works.
        in_channels: image channels.
        spatial_dropout: ``Dropout2d`` probability after the two later pools.
        dropout: dropout probability after the hidden layer.
    """

    def __init__(self, num_classes: int = 10, input_size: int = 32, in_channels: int = 3,
                 spatial_dropout: float = 0.2, dropout: float = 0.5):
        super().__init__()
        self.input_size = int(input_size)
        self.conv1 = BasicConv2d(in_channels, 64, 3, padding=1)
        self.conv2 = BasicConv2d(64, 128, 3, stride=2, padding=1)
        self.pool1 = nn.MaxPool2d(3, stride=2, padding=1)
        self.inception1 = InceptionV2(128, 64, 64, 96, 64, 96, "avg", 64)
        self.pool2 = nn.MaxPool2d(3, stride=2, padding=1)
        self.drop2 = nn.Dropout2d(spatial_dropout)
        self.inception2 = InceptionV2(320, 32, 96, 64, 96, 64, "avg", 32)
        self.pool3 = nn.MaxPool2d(3, stride=2, padding=1)
        self.drop3 = nn.Dropout2d(spatial_dropout)
        side = self.input_size
        for _ in range(4):
            side = _halve(side)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(192 * side * side, 256, bias=False)
        self.bn1 = nn.BatchNorm1d(256)
        self.relu1 = nn.ReLU()
        self.drop4 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(256, num_classes)
        _he_init(self, classifiers=[self.fc2])

    def forward(self, x):
        x = self.pool1(self.conv2(self.conv1(x)))
        x = self.drop2(self.pool2(self.inception1(x)))
        x = self.drop3(self.pool3(self.inception2(x)))
        x = self.drop4(self.relu1(self.bn1(self.fc1(self.flatten(x)))))
        return self.fc2(x)


@register_model("inception_small", input_shape=(3, 32, 32), num_classes=10,
                description="Ten-layer network of two Inception-v2 modules for small images; "
                            "the usual batch-norm CIFAR recipe")
def inception_small(num_classes: int = 10, **options) -> InceptionSmall:
    """The ten-layer Inception-v2 network; ``input_size`` (default 32) and the other
    options as :class:`InceptionSmall`.

    Recipe (``models.train_cifar``; no paper recipe to follow): the usual one for
    batch-norm networks on CIFAR-10, Nesterov SGD at a peak 0.1 after a 1-epoch
    warm-up, cosine over 60 epochs, weight decay 5e-4, batches of 128, crops and flips
    (measured: loss 2.44 -> 2.00 and validation top-1 25% -> 38% over the first 80
    steps).
    """
    return InceptionSmall(num_classes=num_classes, **options)
