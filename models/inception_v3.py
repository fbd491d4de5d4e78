"""Inception v3 (Szegedy et al., "Rethinking the Inception Architecture for Computer
Vision", CVPR 2016, arXiv:1512.00567) in torchvision's layout (module and parameter
names included), with its auxiliary head."""

from __future__ import annotations

from fastconv import nn

from .inception_blocks import (
    BasicConv2d,
    InceptionOutputs,
    _cat,
    _he_init,
    _transform_input,
)
from .registry import register_model


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
