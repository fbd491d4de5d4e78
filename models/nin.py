"""Network in Network (Lin, Chen & Yan, "Network In Network", ICLR 2014, arXiv:1312.4400).

An mlpconv block is a k×k convolution followed by two 1×1 convolutions (the
"micro network", a small MLP slid over the image), each followed by ReLU. The
network stacks three of them and replaces the fully connected classifier with
global average pooling over the last block, whose last 1×1 convolution has one
output map per class.
"""

from __future__ import annotations

from fastconv import nn
from fastconv.nn import init

from .registry import register_model

__all__ = ["NIN", "nin_cifar"]


def _mlpconv(in_channels: int, widths: tuple[int, int, int], kernel_size: int,
             final_relu: bool = True) -> nn.Sequential:
    """k×k conv - ReLU - 1×1 conv - ReLU - 1×1 conv [- ReLU], 'same' padding."""
    c1, c2, c3 = widths
    layers = [
        nn.Conv2d(in_channels, c1, kernel_size, padding=kernel_size // 2), nn.ReLU(),
        nn.Conv2d(c1, c2, 1), nn.ReLU(),
        nn.Conv2d(c2, c3, 1),
    ]
    if final_relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class NIN(nn.Module):
    """Network in Network for 32×32 CIFAR-10 images (the paper's CIFAR-10 model).

    Layout (input 3×32×32, as in the authors' released Caffe model for CIFAR-10)::

        mlpconv 5×5-192, 1×1-160, 1×1-96      32×32
        max pool 3×3/2 (ceil)                 16×16
        dropout 0.5
        mlpconv 5×5-192, 1×1-192, 1×1-192     16×16
        avg pool 3×3/2 (ceil)                  8×8
        dropout 0.5
        mlpconv 3×3-192, 1×1-192, 1×1-C        8×8
        global average pool                    C

    Pooling rounds up (``ceil_mode=True``) as Caffe does, so 32 → 16 → 8.
    966,986 parameters for 10 classes.

    Details:
        * As in the authors' Caffe model the last 1×1 convolution is also followed by
          a ReLU before the global average pooling, so the class scores are
          non-negative; ``final_relu=False`` removes it.
        * Initialisation: the paper only says the initial weights were "manually
          set" following Krizhevsky et al.; we use He initialisation
          (``kaiming_normal_``, fan-in, ReLU gain) for every convolution and zero
          biases, which trains this ReLU network from scratch without tuning.

    Args:
        num_classes: output maps of the last 1×1 convolution (= classes).
        dropout: dropout probability after the first two blocks (paper: 0.5).
        final_relu: keep the ReLU after the last 1×1 convolution.

    Returns ``(N, num_classes)`` scores (unnormalised).
    """

    def __init__(self, num_classes: int = 10, dropout: float = 0.5, final_relu: bool = True):
        super().__init__()
        self.block1 = _mlpconv(3, (192, 160, 96), 5)
        self.pool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.drop1 = nn.Dropout(dropout)
        self.block2 = _mlpconv(96, (192, 192, 192), 5)
        self.pool2 = nn.AvgPool2d(3, stride=2, ceil_mode=True)
        self.drop2 = nn.Dropout(dropout)
        self.block3 = _mlpconv(192, (192, 192, num_classes), 3, final_relu=final_relu)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                init.zeros_(m.bias)

    def forward(self, x):
        x = self.drop1(self.pool1(self.block1(x)))
        x = self.drop2(self.pool2(self.block2(x)))
        x = self.gap(self.block3(x))
        return self.flatten(x)


@register_model("nin_cifar", input_shape=(3, 32, 32), num_classes=10,
                description="Network in Network for CIFAR-10 (Lin et al. 2013), 966,986 params")
def nin_cifar(num_classes: int = 10, **options) -> NIN:
    """Network in Network for CIFAR-10; options as :class:`NIN`."""
    return NIN(num_classes=num_classes, **options)
