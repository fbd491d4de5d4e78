"""GoogLeNet / Inception v1 (Szegedy et al., "Going Deeper with Convolutions", CVPR 2015,
arXiv:1409.4842, Table 1) with its two auxiliary classifiers, and ``googlenet_cifar`` with
the stem adapted to 32x32 CIFAR-10 images."""

from __future__ import annotations

from fastconv import nn
from fastconv.nn import init

from .inception_blocks import (
    BasicConv2d,
    ConvReLU,
    GoogLeNetOutputs,
    _cat,
    _he_init,
    _transform_input,
)
from .registry import register_model

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
