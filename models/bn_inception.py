"""BN-Inception / Inception v2 (Ioffe & Szegedy, "Batch Normalization", ICML 2015,
arXiv:1502.03167, Figure 5), and ``bn_inception_cifar`` with the stem adapted to 32x32
CIFAR-10 images."""

from __future__ import annotations

from fastconv import nn

from .inception_blocks import (
    BasicConv2d,
    _cat,
    _he_init,
)
from .registry import register_model


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
