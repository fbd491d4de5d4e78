"""AlexNet (Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep
Convolutional Neural Networks", NIPS 2012) and its single-tower variant
(Krizhevsky, "One weird trick for parallelizing convolutional neural networks",
arXiv:1404.5997, 2014).

Three builders:

* ``alexnet`` — the 2012 network for 227×227 crops. The two GPU towers become
  grouped convolutions (``groups=2`` in conv2, conv4 and conv5: those layers
  only see the kernel maps of their own tower); conv3 and the fully connected
  layers connect across towers. 60,965,224 parameters.
* ``alexnet_owt`` — the one-tower 64-192-384-256-256 network of the 2014 paper
  in torchvision's layout, for 224×224 inputs. 61,100,840 parameters.
* ``alexnet_cifar`` — the 2012 network adapted to 32×32 CIFAR-10 images.
"""

from __future__ import annotations

from fastconv import nn
from fastconv.nn import init

from .registry import register_model

__all__ = ["ALEXNET_LRN", "AlexNet", "alexnet", "alexnet_cifar", "alexnet_owt"]

#: The paper's response normalisation, b = a / (k + alpha * sum a^2)^beta over n = 5
#: adjacent maps with k = 2, alpha = 1e-4, beta = 0.75. Our LocalResponseNorm (like
#: PyTorch's and Caffe's) divides alpha by the window size, so the paper's alpha is
#: passed as 1e-4 * 5. (Caffe's bvlc_alexnet passes 1e-4 to its own divide-by-n
#: layer, a five times weaker normalisation than the paper's; with k = 2 the
#: difference in the outputs is small.)
ALEXNET_LRN = {"size": 5, "alpha": 1e-4 * 5, "beta": 0.75, "k": 2.0}


def _original_features(stem: str) -> nn.Sequential:
    """conv1..conv5 of the 2012 network, towers as groups=2."""
    if stem == "imagenet":
        conv1 = nn.Conv2d(3, 96, 11, stride=4)                 # 227 -> 55
        pool = lambda: nn.MaxPool2d(3, stride=2)              # 55 -> 27 -> 13 -> 6
    else:  # "cifar"
        conv1 = nn.Conv2d(3, 96, 5, stride=1, padding=2)       # 32 -> 32
        pool = lambda: nn.MaxPool2d(3, stride=2, padding=1)   # 32 -> 16 -> 8 -> 4
    return nn.Sequential(
        conv1, nn.ReLU(), nn.LocalResponseNorm(**ALEXNET_LRN), pool(),
        nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.ReLU(),
        nn.LocalResponseNorm(**ALEXNET_LRN), pool(),
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, 3, padding=1, groups=2), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1, groups=2), nn.ReLU(),
        pool(),
    )


def _owt_features() -> nn.Sequential:
    """torchvision's single-tower features (224 -> 55 -> 27 -> 13 -> 6)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(),
        nn.MaxPool2d(3, stride=2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(),
        nn.MaxPool2d(3, stride=2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(3, stride=2),
    )


class AlexNet(nn.Module):
    """AlexNet: five convolutions and three fully connected layers.

    Args:
        num_classes: outputs of the last layer.
        variant: ``"original"`` (2012, two towers as groups=2, LRN, 227×227),
            ``"owt"`` (2014 single tower, torchvision's layout, 224×224) or
            ``"cifar"`` (the original adapted to 32×32, see :func:`alexnet_cifar`).
        hidden: width of the two hidden fully connected layers (4096 in both papers).
        dropout: dropout probability in the classifier (0.5 in both papers).
        init_scheme: ``"paper"`` or ``"he"`` (defaults: ``"paper"`` for the original,
            ``"he"`` for the others). ``"paper"`` is Section 5 of the 2012 paper: weights
            from N(0, 0.01²); biases 1 in conv2, conv4, conv5 and the two hidden fully
            connected layers ("provides the ReLUs with positive inputs"), 0 elsewhere.
            ``"he"``: He initialisation (``kaiming_normal_``, fan-in, ReLU gain) for
            every convolution and hidden layer, Xavier (``xavier_uniform_``) for the
            classifier, zero biases.

    Layer order: conv - ReLU [- LRN] - max pool as in the paper. The classifier of the
    original and CIFAR variants is fc6 - ReLU - dropout - fc7 - ReLU - dropout - fc8 (the
    paper's "dropout in the first two fully-connected layers", as in Caffe's
    ``bvlc_alexnet``); the one-tower variant keeps torchvision's dropout - fc6 - ReLU -
    dropout - fc7 - ReLU - fc8 and its adaptive 6×6 average pool (identity at 224×224).
    """

    def __init__(self, num_classes: int = 1000, variant: str = "original", hidden: int = 4096,
                 dropout: float = 0.5, init_scheme: str | None = None):
        super().__init__()
        if variant not in ("original", "owt", "cifar"):
            raise ValueError(f"variant must be 'original', 'owt' or 'cifar', got {variant!r}")
        if init_scheme is None:
            init_scheme = "paper" if variant == "original" else "he"
        if init_scheme not in ("paper", "he"):
            raise ValueError(f"init_scheme must be 'paper' or 'he', got {init_scheme!r}")
        self.variant = variant
        if variant == "owt":
            self.features = _owt_features()
            self.avgpool = nn.AdaptiveAvgPool2d(6)
            self.flatten = nn.Flatten()
            self.classifier = nn.Sequential(
                nn.Dropout(dropout), nn.Linear(256 * 6 * 6, hidden), nn.ReLU(),
                nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(),
                nn.Linear(hidden, num_classes),
            )
        else:
            self.features = _original_features("imagenet" if variant == "original" else "cifar")
            side = 6 if variant == "original" else 4
            self.flatten = nn.Flatten()
            self.classifier = nn.Sequential(
                nn.Linear(256 * side * side, hidden), nn.ReLU(), nn.Dropout(dropout),
                nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
                nn.Linear(hidden, num_classes),
            )
        self._initialise(init_scheme)

    def _initialise(self, scheme: str) -> None:
        layers = [m for m in self.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        convs = [m for m in layers if isinstance(m, nn.Conv2d)]
        for m in layers:
            if scheme == "paper":
                init.normal_(m.weight, mean=0.0, std=0.01)
                init.zeros_(m.bias)
            elif m is layers[-1]:
                init.xavier_uniform_(m.weight)
                init.zeros_(m.bias)
            else:
                init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                init.zeros_(m.bias)
        if scheme == "paper":
            # conv2, conv4, conv5 and the two hidden fully connected layers.
            for m in (convs[1], convs[3], convs[4], layers[-3], layers[-2]):
                init.ones_(m.bias)

    def forward(self, x):
        x = self.features(x)
        if self.variant == "owt":
            x = self.avgpool(x)
        return self.classifier(self.flatten(x))


@register_model("alexnet", input_shape=(3, 227, 227), num_classes=1000,
                description="AlexNet (Krizhevsky et al. 2012), two towers as groups=2, LRN")
def alexnet(num_classes: int = 1000, **options) -> AlexNet:
    """AlexNet as in the 2012 paper, for 227×227 crops.

    ::

        conv1 11×11/4, 96           55×55   ReLU, LRN, max pool 3×3/2 -> 27×27
        conv2 5×5, 256, groups=2    27×27   ReLU, LRN, max pool 3×3/2 -> 13×13
        conv3 3×3, 384              13×13   ReLU
        conv4 3×3, 384, groups=2    13×13   ReLU
        conv5 3×3, 256, groups=2    13×13   ReLU, max pool 3×3/2 -> 6×6
        fc6 9216 -> 4096, ReLU, dropout 0.5
        fc7 4096 -> 4096, ReLU, dropout 0.5
        fc8 4096 -> num_classes

    The paper writes 224×224 but its layer sizes need 227×227 (the "224" is off by
    three, see cs231n). LRN: k=2, n=5, alpha=1e-4, beta=0.75 in the paper's formula,
    which does not divide alpha by n; passed to our LocalResponseNorm as
    ``size=5, alpha=5e-4, beta=0.75, k=2`` (see :data:`ALEXNET_LRN`). Initialisation as
    in the paper (``init_scheme="paper"``, see :class:`AlexNet`).
    60,965,224 parameters for 1000 classes. Options as :class:`AlexNet`.
    """
    return AlexNet(num_classes=num_classes, variant="original", **options)


@register_model("alexnet_owt", input_shape=(3, 224, 224), num_classes=1000,
                description="AlexNet one-tower variant (Krizhevsky 2014), torchvision layout")
def alexnet_owt(num_classes: int = 1000, **options) -> AlexNet:
    """The single-tower AlexNet of "One weird trick" (Krizhevsky 2014), torchvision's layout.

    conv 11×11/4 pad 2 64 - pool - conv 5×5 192 - pool - conv 3×3 384 - conv 3×3 256 -
    conv 3×3 256 - pool - adaptive avg pool 6×6 - (dropout, fc 4096, ReLU) ×2 - fc.
    No LRN, no groups. The 2014 paper does not describe an initialisation: He
    initialisation for convolutions and hidden layers, Xavier for the classifier.
    61,100,840 parameters for 1000 classes. Options as :class:`AlexNet`.
    """
    return AlexNet(num_classes=num_classes, variant="owt", **options)


@register_model("alexnet_cifar", input_shape=(3, 32, 32), num_classes=10,
                description="AlexNet (2012, two towers, LRN) with a stem adapted to 32x32; "
                            "He init, 1024-unit hidden layers, Nesterov + cosine")
def alexnet_cifar(num_classes: int = 10, hidden: int = 1024, **options) -> AlexNet:
    """The 2012 AlexNet adapted to 32×32 CIFAR-10 images.

    Stem adaptation: an 11×11 stride-4 conv1 would leave 6×6 maps after the first
    layer and a single pixel after the third pooling. conv1 becomes 5×5 stride 1
    (padding 2, still 96 maps) and the three overlapping 3×3/2 max pools get padding
    1, so the maps are 32×32 (conv1), 16×16 (conv2), 8×8 (conv3-5) and 4×4 at the
    classifier (256·4·4 = 4096 inputs). Everything else is the original: the towers
    as groups=2, LRN after conv1 and conv2, dropout in the classifier.

    The two hidden fully connected layers default to 1024 units (``hidden``) instead of
    4096: 50,000 training images do not need 34M classifier weights; ``hidden=4096``
    restores the original widths. He initialisation by default (``init_scheme="he"``):
    the paper's N(0, 0.01²) with unit biases was tuned for ImageNet and trains slowly
    from scratch; ``init_scheme="paper"`` selects it. 7,561,610 parameters with the
    defaults and 10 classes. Options as :class:`AlexNet`.

    Recipe (``models.train_cifar``): the paper's momentum 0.9, weight decay 5e-4 and
    batches of 128, with Nesterov momentum, a 2-epoch warm-up to 0.02 and a cosine decay
    over 60 epochs instead of 0.01 divided by 10 whenever the validation error stalls;
    pad-4 crops and flips (measured: loss 2.54 -> 2.14 over the first 60 steps).
    """
    return AlexNet(num_classes=num_classes, variant="cifar", hidden=hidden, **options)
