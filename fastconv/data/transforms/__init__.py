"""Transforms: torchvision's per-sample transforms, and fastconv's vectorised batch transforms.

Two calling conventions share these classes (``fastconv.data.transforms`` stands in
for ``torchvision.transforms``):

* **Per sample, as torchvision** -- ``t(img)`` on one image: a PIL image, a NumPy
  array (H, W, C) or (H, W) (uint8, as decoded), or a fastconv Tensor (C, H, W).
  The output has the input's kind (PIL in, PIL out; array in, array out) until
  :class:`ToTensor` makes the float32 (C, H, W) Tensor in [0, 1] that
  :class:`Normalize` then takes. Randomness comes from
  :func:`fastconv.utils.data.sample_rng` (a DataLoader worker's own generator, or
  fastconv's global one, seeded by ``fastconv.manual_seed``).
  Classes: Compose, ToTensor, Normalize, Resize, CenterCrop, RandomCrop,
  RandomHorizontalFlip, RandomResizedCrop, ColorJitter, Lambda (arguments and
  defaults as torchvision's; ``InterpolationMode`` names the resampling filters).
  From :mod:`fastconv.data.augment`, re-exported here: RandomVerticalFlip, Pad,
  RandomRotation, RandomAffine, FiveCrop, TenCrop, Grayscale, RandomGrayscale,
  RandomInvert, RandomPosterize, RandomSolarize, RandomAdjustSharpness,
  RandomAutocontrast, RandomEqualize, GaussianBlur, RandomApply, RandomChoice,
  RandomOrder, RandomErasing, PILToTensor, ToPILImage, ConvertImageDtype, AutoAugment,
  AutoAugmentPolicy, RandAugment, TrivialAugmentWide.
* **Per batch, fastconv's** -- ``t(x, rng)`` on a 4-D NumPy batch (N, H, W, C),
  described below; :func:`make_transform` builds the zoo's pipelines from them.
* **v2** -- :mod:`fastconv.data.transforms.v2` stands in for ``torchvision.transforms.v2``:
  the per-sample classes above under v2's calling convention (several inputs, or nested
  samples such as ``(image, label)``), plus ToImage, ToDtype, ToPureTensor, Identity and the
  batch transforms CutMix and MixUp (``from fastconv.data.transforms import v2``).

A class that exists in both worlds (Compose, RandomCrop, CenterCrop,
RandomHorizontalFlip, Normalize) decides by its input: a 4-D NumPy array is a
batch (channels last, fastconv's convention); anything else -- a PIL image, a 2-D
or 3-D array, a Tensor -- is one sample (torchvision's). The batch forms are the
ones to use with :class:`fastconv.data.DataLoader` (fast); the per-sample forms go
into the ``transform=`` of :mod:`fastconv.data.datasets` and run under
:class:`fastconv.utils.data.DataLoader`. (A batched 4-D *Tensor*, as torchvision
v2 accepts, is not supported: pass a NumPy batch to get the batch form.)

Batch transforms: vectorised NumPy augmentation of a whole batch at once.

Every transform is a callable ``t(x, rng) -> x`` on a batch ``x`` of shape
(N, H, W, C) -- channels last, as images are decoded and cached -- where
``rng`` is a ``numpy.random.Generator`` that supplies all randomness (the
loader derives it from its seed, the epoch and the batch index, so the result
does not depend on thread scheduling). Random transforms draw one parameter
per image, so every image in a batch is augmented differently, but the work is
a handful of array operations per batch rather than a Python loop per image.

Transforms never modify their input in place (the input may be a view of the
decoded-image cache). :class:`ToFloat` turns uint8 pixels into float32 in
[0, 1]; :class:`ToCHW` ends a pipeline by making the (N, C, H, W) float32
array the model expects.

Typical pipelines (:func:`make_transform` builds them by name):

    train: RandomCrop(32, padding=4) -> RandomHorizontalFlip() -> ToFloat()
           -> Normalize(mean, std) -> ToCHW()
    TensorFlow-tutorial style: RandomCrop(24) -> RandomHorizontalFlip() -> ToFloat()
           -> RandomBrightness(63/255) -> RandomContrast(0.2, 1.8)
           -> PerImageStandardization() -> ToCHW();   eval: CenterCrop(24) -> ... (no jitter)
"""

from __future__ import annotations

import enum
import math
import numbers
from collections.abc import Sequence

import numpy as np

from fastconv.ops.validate import pair

__all__ = [
    "AUGMENTATIONS",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CenterCrop",
    "ColorJitter",
    "Compose",
    "InterpolationMode",
    "Lambda",
    "Normalize",
    "PerImageStandardization",
    "RandomBrightness",
    "RandomContrast",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "Resize",
    "ToCHW",
    "ToFloat",
    "ToTensor",
    "make_transform",
]

# Per-channel statistics of the CIFAR-10 training images in [0, 1].
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def _is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _min_max(value, name: str, who: str, *, low=None, low_open=False, high=None) -> tuple:
    """``value`` checked as a (min, max) pair of finite numbers with min <= max, each at or
    above ``low`` (strictly above with ``low_open``) and at or below ``high``."""
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise TypeError(f"{who}: {name} should be a sequence (min, max), got {value!r}")
    if len(value) != 2:
        raise ValueError(f"{who}: {name} should be a sequence of length 2 (min, max), "
                         f"got {value!r}")
    for v in value:
        if not _is_real(v):
            raise TypeError(f"{who}: {name} values should be numbers, got {value!r}")
        if not math.isfinite(v):
            raise ValueError(f"{who}: {name} values should be finite, got {value!r}")
        if low is not None and (v <= low if low_open else v < low):
            raise ValueError(f"{who}: {name} values should be {'>' if low_open else '>='} "
                             f"{low}, got {value!r}")
        if high is not None and v > high:
            raise ValueError(f"{who}: {name} values should be <= {high}, got {value!r}")
    if value[0] > value[1]:
        raise ValueError(f"{who}: {name} should be of kind (min, max), got {value!r}")
    return tuple(value)


def _check_padding(padding, who: str) -> None:
    """None, an int, or a sequence of 1, 2 or 4 ints (torchvision's padding; negative
    values crop)."""
    if padding is None or (isinstance(padding, numbers.Integral)
                           and not isinstance(padding, bool)):
        return
    if not isinstance(padding, Sequence) or isinstance(padding, str):
        raise TypeError(f"{who}: padding must be an int or a sequence of 1, 2 or 4 ints, "
                        f"got {padding!r}")
    if len(padding) not in (1, 2, 4):
        raise ValueError(f"Padding must be an int or a 1, 2, or 4 element tuple, not a "
                         f"{len(padding)} element tuple")
    if not all(isinstance(p, numbers.Integral) and not isinstance(p, bool) for p in padding):
        raise TypeError(f"{who}: padding values must be ints, got {padding!r}")


def _check_batch(x, name):
    if x.ndim != 4:
        raise ValueError(f"{name}: expected a batch (N, H, W, C), got shape {x.shape}")


class Compose:
    """Apply transforms in order: ``Compose([t1, t2])(img) == t2(t1(img))`` per sample (as
    torchvision), ``Compose([t1, t2])(x, rng) == t2(t1(x, rng), rng)`` on a batch."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x, rng=None):
        if _is_batch(x):
            for t in self.transforms:
                x = t(x, rng)
            return x
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self):
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"


class RandomCrop:
    """Crop a random ``size`` window of each image, after zero/reflect padding by ``padding``.

    Per sample (torchvision's ``RandomCrop(size, padding=None, pad_if_needed=False,
    fill=0, padding_mode="constant")``): ``padding`` is an int or (left/right,
    top/bottom) or (left, top, right, bottom); ``pad_if_needed`` pads an image
    smaller than ``size``; ``padding_mode`` constant|edge|reflect|symmetric. On a
    batch ``padding`` must be one int, and ``flip_p`` (fastconv's, keyword-only)
    also mirrors each crop with that probability, in the same gather.

    ``RandomCrop(32, padding=4)`` is the usual CIFAR augmentation (translations
    of up to 4 pixels); ``RandomCrop(24)`` is TensorFlow's ``random_crop`` to
    24x24 of the CIFAR-10 tutorial. Offsets are uniform over every position
    that keeps the window inside the (padded) image. ``flip_p`` also mirrors
    each crop with that probability, in the same gather (cheaper than a
    separate RandomHorizontalFlip).
    """

    def __init__(self, size, padding=None, pad_if_needed: bool = False, fill=0,
                 padding_mode: str = "constant", *, flip_p: float = 0.0):
        self.size = pair(size, "size", "RandomCrop", 1)
        _check_padding(padding, "RandomCrop")
        self.padding = padding
        self.pad_if_needed = pad_if_needed
        self.flip_p = float(flip_p)
        if padding_mode not in ("constant", "reflect", "edge", "symmetric"):
            raise ValueError(f"RandomCrop: padding_mode must be constant|edge|reflect|symmetric, "
                             f"got {padding_mode!r}")
        self.padding_mode = padding_mode
        self.fill = fill

    def __call__(self, x, rng=None):
        if not _is_batch(x):
            return self._sample(x)
        _check_batch(x, "RandomCrop")
        rng = rng if rng is not None else _sample_rng()
        p = 0 if self.padding is None else self.padding
        if not isinstance(p, numbers.Integral):
            raise ValueError(f"RandomCrop: on a batch, padding must be one int, got {p!r}")  # noqa: TRY004 - torch's error type
        p = int(p)
        if p < 0:  # negative padding crops, as torchvision's pad
            h, w = x.shape[1:3]
            if 2 * -p >= min(h, w):
                raise ValueError(f"RandomCrop: padding={p} crops away the whole {h}x{w} image")
            x = x[:, -p:h + p, -p:w + p]
        elif p:
            kw = {"constant_values": self.fill} if self.padding_mode == "constant" else {}
            x = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode=self.padding_mode, **kw)
        n, h, w, _ = x.shape
        ch, cw = self.size
        if ch > h or cw > w:
            raise ValueError(f"RandomCrop: crop {ch}x{cw} is larger than the (padded) image "
                             f"{h}x{w}")
        oy = rng.integers(0, h - ch + 1, size=n)
        ox = rng.integers(0, w - cw + 1, size=n)
        rows = (oy[:, None] + np.arange(ch))[:, :, None]
        cols = np.arange(cw)
        if self.flip_p > 0:  # mirrored images read their window right to left: one gather
            flip = rng.random(n) < self.flip_p
            cols = np.where(flip[:, None], cols[::-1], cols)
        cols = (ox[:, None] + cols)[:, None, :]
        return x[np.arange(n)[:, None, None], rows, cols]

    def _sample(self, img):
        if self.padding is not None:
            ltrb = _padding4(self.padding)
            if min(ltrb) < 0:  # negative padding crops, as torchvision's pad
                h, w = _size(img)
                left, top, right, bottom = (max(-v, 0) for v in ltrb)
                if left + right >= w or top + bottom >= h:
                    raise ValueError(f"RandomCrop: padding={self.padding} crops away the "
                                     f"whole {h}x{w} image")
                img = _crop(img, top, left, h - top - bottom, w - left - right)
                ltrb = tuple(max(v, 0) for v in ltrb)
            if any(ltrb):
                img = _pad(img, ltrb, self.fill, self.padding_mode)
        h, w = _size(img)
        th, tw = self.size
        if self.pad_if_needed and w < tw:
            img = _pad(img, (tw - w, 0, tw - w, 0), self.fill, self.padding_mode)
        if self.pad_if_needed and h < th:
            img = _pad(img, (0, th - h, 0, th - h), self.fill, self.padding_mode)
        h, w = _size(img)
        if h < th or w < tw:
            raise ValueError(f"Required crop size {(th, tw)} is larger than input image size "
                             f"{(h, w)}")
        if h == th and w == tw:
            return img
        i, j, th, tw = self.get_params(img, (th, tw))
        return _crop(img, i, j, th, tw)

    @staticmethod
    def get_params(img, output_size, rng=None):
        """(top, left, height, width) of a random ``output_size`` crop of ``img``, as
        torchvision's (for cropping an image and its mask alike with ``functional.crop``)."""
        h, w = _size(img)
        th, tw = output_size
        if h < th or w < tw:
            raise ValueError(f"Required crop size {(th, tw)} is larger than input image size "
                             f"{(h, w)}")
        if w == tw and h == th:
            return 0, 0, h, w
        rng = rng if rng is not None else _sample_rng()
        i = int(rng.integers(0, h - th + 1))
        j = int(rng.integers(0, w - tw + 1))
        return i, j, th, tw

    def __repr__(self):
        flip = f", flip_p={self.flip_p}" if self.flip_p else ""
        return (f"RandomCrop({self.size}, padding={self.padding}, "
                f"padding_mode={self.padding_mode!r}{flip})")


class CenterCrop:
    """Crop the central ``size`` window (the evaluation counterpart of RandomCrop(size)).

    Per sample as torchvision: the offsets are rounded (``round((H - h) / 2)``) and an
    image smaller than ``size`` is zero-padded first. On a batch the offsets are
    floored and a crop larger than the images is an error."""

    def __init__(self, size):
        self.size = pair(size, "size", "CenterCrop", 1)

    def __call__(self, x, rng=None):
        if not _is_batch(x):
            return _center_crop(x, self.size)
        _check_batch(x, "CenterCrop")
        _, h, w, _ = x.shape
        ch, cw = self.size
        if ch > h or cw > w:
            raise ValueError(f"CenterCrop: crop {ch}x{cw} is larger than the image {h}x{w}")
        top, left = (h - ch) // 2, (w - cw) // 2
        return x[:, top:top + ch, left:left + cw]

    def __repr__(self):
        return f"CenterCrop({self.size})"


class RandomHorizontalFlip:
    """Mirror each image left-right with probability ``p``."""

    def __init__(self, p: float = 0.5):
        self.p = float(p)

    def __call__(self, x, rng=None):
        if not _is_batch(x):
            return _hflip(x) if _sample_rng().random() < self.p else x
        _check_batch(x, "RandomHorizontalFlip")
        rng = rng if rng is not None else _sample_rng()
        flip = rng.random(x.shape[0]) < self.p
        return np.where(flip[:, None, None, None], x[:, :, ::-1], x)

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class ToFloat:
    """uint8 pixels -> float32 times ``scale`` (default 1/255, so values lie in [0, 1])."""

    def __init__(self, scale: float = 1.0 / 255.0):
        self.scale = float(scale)

    def __call__(self, x, rng=None):
        out = x.astype(np.float32)
        if self.scale != 1.0:
            out *= np.float32(self.scale)
        return out

    def __repr__(self):
        return f"ToFloat(scale={self.scale:g})"


class RandomBrightness:
    """Add one uniform delta in [-max_delta, max_delta] to all pixels of each image.

    As ``tf.image.random_brightness``; the tutorial's ``max_delta=63`` on 0..255
    pixels is ``63/255`` on the [0, 1] scale of :class:`ToFloat`. Apply after ToFloat.
    """

    def __init__(self, max_delta: float):
        if max_delta < 0:
            raise ValueError("RandomBrightness: max_delta must be >= 0")
        self.max_delta = float(max_delta)

    def __call__(self, x, rng):
        _check_batch(x, "RandomBrightness")
        delta = rng.uniform(-self.max_delta, self.max_delta, size=(x.shape[0], 1, 1, 1))
        return x + delta.astype(np.float32)

    def __repr__(self):
        return f"RandomBrightness({self.max_delta:g})"


class RandomContrast:
    """Scale each image's deviation from its per-channel mean by a uniform factor in [lower, upper].

    ``y = (x - mean) * f + mean`` with ``mean`` over H and W of each channel, as
    ``tf.image.random_contrast`` (the tutorial uses lower=0.2, upper=1.8). Apply after ToFloat.
    """

    def __init__(self, lower: float, upper: float):
        if not 0 <= lower <= upper:
            raise ValueError("RandomContrast: need 0 <= lower <= upper")
        self.lower, self.upper = float(lower), float(upper)

    def __call__(self, x, rng):
        _check_batch(x, "RandomContrast")
        n, h, w, c = x.shape
        f = rng.uniform(self.lower, self.upper, size=(n, 1, 1, 1)).astype(np.float32)
        x = x.astype(np.float32, copy=False)
        # (1/HW) @ (N, HW, C): a batched GEMM, far faster than mean(axis=1) over the middle axis
        avg = np.full(h * w, 1.0 / (h * w), np.float32)
        mean = (avg @ x.reshape(n, h * w, c)).reshape(n, 1, 1, c)
        out = x * f                    # (x - mean) * f + mean == x * f + mean * (1 - f)
        out += mean * (1 - f)
        return out

    def __repr__(self):
        return f"RandomContrast({self.lower:g}, {self.upper:g})"


class PerImageStandardization:
    """Scale each image to zero mean and unit variance: ``(x - mean) / max(std, 1/sqrt(HWC))``.

    As ``tf.image.per_image_standardization``; the lower bound on the divisor
    protects uniform images.
    """

    def __call__(self, x, rng=None):
        _check_batch(x, "PerImageStandardization")
        shape = x.shape
        flat = x.reshape(shape[0], -1)
        m = flat.shape[1]
        d = flat - flat.mean(axis=1, keepdims=True, dtype=np.float32)  # a new float32 array
        d = d.astype(np.float32, copy=False)
        std = np.sqrt(np.einsum("ij,ij->i", d, d) / np.float32(m)).astype(np.float32)
        d /= np.maximum(std, np.float32(1.0 / np.sqrt(m)))[:, None]
        return d.reshape(shape)

    def __repr__(self):
        return "PerImageStandardization()"


class Normalize:
    """Per-channel ``(x - mean[c]) / std[c]``.

    Per sample (torchvision's ``Normalize(mean, std, inplace=False)``): on a float
    Tensor (C, H, W), after :class:`ToTensor`; returns a new Tensor (``inplace`` writes
    into the input's array). On a batch: channels last, after ToFloat."""

    def __init__(self, mean, std, inplace: bool = False):
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)
        self.inplace = inplace
        if np.any(self.std == 0):
            raise ValueError("std evaluated to zero after conversion to float32, leading to "
                             "division by zero.")
        if np.any(self.std < 0):
            raise ValueError("Normalize: std must be positive")

    def __call__(self, x, rng=None):
        if not _is_batch(x):
            return self._sample(x)
        _check_batch(x, "Normalize")
        if x.shape[-1] != self.mean.size and self.mean.size != 1:
            raise ValueError(f"Normalize: {self.mean.size} channel statistics for "
                             f"{x.shape[-1]} channels")
        if x.dtype == np.float32:
            out = x - self.mean
        else:
            out = x.astype(np.float32)
            out -= self.mean
        out *= 1.0 / self.std
        return out

    def _sample(self, t):
        Tensor = _tensor_cls()
        if not isinstance(t, Tensor):
            raise TypeError(f"Normalize: expected a Tensor (C, H, W) -- apply ToTensor() first "
                            f"-- got {type(t).__name__}")
        a = t.data
        if a.dtype.kind != "f":
            raise TypeError(f"Input tensor should be a float tensor. Got {a.dtype}.")
        if a.ndim < 3:
            raise ValueError(f"Expected tensor to be a tensor image of size (..., C, H, W). Got "
                             f"tensor.size() = {tuple(a.shape)}")
        c = a.shape[-3]
        if self.mean.size not in (1, c) or self.std.size not in (1, c):
            raise ValueError(f"Normalize: {self.mean.size} channel statistics for {c} channels")
        xp = _xp(a)
        mean = xp.asarray(self.mean.reshape(-1, 1, 1))
        std = xp.asarray(self.std.reshape(-1, 1, 1))
        if self.inplace:
            a -= mean
            a /= std
            return t
        return Tensor((a - mean) / std)

    def __repr__(self):
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class ToCHW:
    """(N, H, W, C) -> contiguous float32 (N, C, H, W), the layout fastconv's layers take."""

    def __call__(self, x, rng=None):
        _check_batch(x, "ToCHW")
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32)

    def __repr__(self):
        return "ToCHW()"


AUGMENTATIONS = ("tutorial", "crop-flip", "flip", "none")


def make_transform(augment: str, train: bool, input_size=None, image_size=None,
                   mean=CIFAR10_MEAN, std=CIFAR10_STD, padding: int = 4):
    """The train or evaluation pipeline for a named augmentation, ending in float32 NCHW.

    augment:
        ``"tutorial"`` -- TensorFlow's CIFAR-10 tutorial: train with a random
        ``input_size`` crop (24x24 from 32x32), a flip, brightness (63/255) and
        contrast (0.2..1.8) jitter; evaluate on the centre crop; both end in
        per-image standardisation.
        ``"crop-flip"`` -- the usual CIFAR augmentation: zero-pad by ``padding``,
        random ``input_size`` crop, flip; per-channel ``Normalize(mean, std)``.
        ``"flip"`` -- flip only, then Normalize. ``"none"`` -- Normalize only.
    input_size: the crop fed to the model (default: ``image_size``); for
        evaluation a centre crop of that size is taken when it is smaller than
        the images.
    image_size: the stored image size (default 32).
    """
    if augment not in AUGMENTATIONS:
        raise ValueError(f"make_transform: augment must be one of {AUGMENTATIONS}, got "
                         f"{augment!r}")
    op = "make_transform"
    image_size = pair(image_size if image_size is not None else 32, "image_size", op, 1)
    input_size = pair(input_size, "input_size", op, 1) if input_size is not None else image_size
    crop_needed = input_size != image_size
    ts = []
    if augment == "tutorial":
        if train:
            ts += [RandomCrop(input_size, flip_p=0.5), ToFloat(),
                   RandomBrightness(63.0 / 255.0), RandomContrast(0.2, 1.8)]
        else:
            ts += ([CenterCrop(input_size)] if crop_needed else []) + [ToFloat()]
        ts += [PerImageStandardization()]
    else:
        if train and augment == "crop-flip":
            ts += [RandomCrop(input_size, padding=padding, flip_p=0.5)]
        elif crop_needed:
            ts += [RandomCrop(input_size, flip_p=0.5 if augment == "flip" else 0.0)] if train \
                else [CenterCrop(input_size)]
        elif train and augment == "flip":
            ts += [RandomHorizontalFlip()]
        ts += [ToFloat(), Normalize(mean, std)]
    ts += [ToCHW()]
    return Compose(ts)


# ------------------------------------------------------------------------------------------------
# per-sample transforms (torchvision's)
# ------------------------------------------------------------------------------------------------

def _is_batch(x) -> bool:
    return isinstance(x, np.ndarray) and x.ndim == 4


def _sample_rng():
    from fastconv.utils.data._worker import sample_rng

    return sample_rng()


def _tensor_cls():
    from fastconv.tensor import Tensor

    return Tensor


def _xp(a):
    from fastconv.optim.optimizer import array_module

    return array_module(a)


def _is_pil(img) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - PIL is a dependency of fastconv.data
        return False
    return isinstance(img, Image.Image)


def _check_image(img, who="transform"):
    if _is_pil(img) or isinstance(img, _tensor_cls()):
        return
    if isinstance(img, np.ndarray) and img.ndim in (2, 3):
        return
    raise TypeError(f"{who}: expected a PIL image, a NumPy array (H, W[, C]) or a Tensor "
                    f"(C, H, W), got {type(img).__name__}"
                    + (f" of shape {img.shape}" if hasattr(img, "shape") else ""))


def _size(img) -> tuple:
    """(H, W) of a PIL image, an (H, W[, C]) array or a (..., C, H, W) Tensor."""
    _check_image(img)
    if _is_pil(img):
        return img.size[1], img.size[0]
    if isinstance(img, np.ndarray):
        return int(img.shape[0]), int(img.shape[1])
    return int(img.shape[-2]), int(img.shape[-1])


def _crop(img, top: int, left: int, h: int, w: int):
    """Crop; parts outside the image are zeros (as torchvision's crop)."""
    if _is_pil(img):
        return img.crop((left, top, left + w, top + h))
    H, W = _size(img)
    if top < 0 or left < 0 or top + h > H or left + w > W:
        pads = (max(-left, 0), max(-top, 0), max(left + w - W, 0), max(top + h - H, 0))
        img = _pad(img, pads, 0, "constant")
        top, left = top + pads[1], left + pads[0]
    if isinstance(img, np.ndarray):
        return img[top:top + h, left:left + w].copy()
    return _tensor_cls()(img.data[..., top:top + h, left:left + w].copy())


def _hflip(img):
    if _is_pil(img):
        from PIL import Image

        return img.transpose(Image.FLIP_LEFT_RIGHT)
    _check_image(img)
    if isinstance(img, np.ndarray):
        return img[:, ::-1].copy()
    return _tensor_cls()(img.data[..., ::-1].copy())


def _padding4(padding) -> tuple:
    """(left, top, right, bottom) from torchvision's int / 2-sequence / 4-sequence."""
    if isinstance(padding, numbers.Integral):
        p = int(padding)
        return p, p, p, p
    padding = tuple(int(p) for p in padding)
    if len(padding) == 1:
        return padding * 4
    if len(padding) == 2:
        return padding[0], padding[1], padding[0], padding[1]
    if len(padding) == 4:
        return padding
    raise ValueError(f"Padding must be an int or a 1, 2, or 4 element tuple, not a "
                     f"{len(padding)} element tuple")


def _pad(img, ltrb, fill, mode: str):
    left, top, right, bottom = ltrb
    np_mode = {"constant": "constant", "edge": "edge", "reflect": "reflect",
               "symmetric": "symmetric"}[mode]
    kw = {"constant_values": fill} if mode == "constant" else {}
    if _is_pil(img):
        from PIL import Image

        a = np.asarray(img)
        spec = ((top, bottom), (left, right)) + (((0, 0),) if a.ndim == 3 else ())
        out = Image.fromarray(np.pad(a, spec, mode=np_mode, **kw), mode=img.mode)
        if img.mode == "P":  # pragma: no cover - palette images keep their palette
            out.putpalette(img.getpalette())
        return out
    if isinstance(img, np.ndarray):
        spec = ((top, bottom), (left, right)) + (((0, 0),) if img.ndim == 3 else ())
        return np.pad(img, spec, mode=np_mode, **kw)
    a = img.data
    spec = ((0, 0),) * (a.ndim - 2) + ((top, bottom), (left, right))
    return _tensor_cls()(_xp(a).pad(a, spec, mode=np_mode, **kw))


class InterpolationMode(enum.Enum):
    """Resampling filters (torchvision's ``InterpolationMode``)."""

    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


def _pil_filter(interpolation):
    from PIL import Image

    if isinstance(interpolation, numbers.Integral):  # a PIL constant, as torchvision accepts
        return int(interpolation)
    mode = InterpolationMode(interpolation.value if isinstance(interpolation, enum.Enum)
                             else interpolation)
    return {InterpolationMode.NEAREST: Image.NEAREST, InterpolationMode.NEAREST_EXACT:
            Image.NEAREST, InterpolationMode.BILINEAR: Image.BILINEAR,
            InterpolationMode.BICUBIC: Image.BICUBIC, InterpolationMode.BOX: Image.BOX,
            InterpolationMode.HAMMING: Image.HAMMING,
            InterpolationMode.LANCZOS: Image.LANCZOS}[mode]


def _resize(img, hw, interpolation=InterpolationMode.BILINEAR):
    """Resize to (H, W) with PIL's filters (arrays and Tensors too: uint8 images through PIL
    as such, float ones channel by channel in PIL's float mode)."""
    from PIL import Image

    h, w = int(hw[0]), int(hw[1])
    f = _pil_filter(interpolation)
    if _is_pil(img):
        return img.resize((w, h), f)
    if isinstance(img, np.ndarray) and img.dtype == np.uint8 and (
            img.ndim == 2 or img.shape[2] in (1, 3, 4)):
        grey = img.ndim == 3 and img.shape[2] == 1
        out = np.asarray(Image.fromarray(img[..., 0] if grey else img).resize((w, h), f))
        return out[..., None] if grey else out

    def planes(a):  # (C, H, W) float32 -> (C, h, w)
        return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(c, np.float32),
                                                    mode="F").resize((w, h), f))
                         for c in a])

    if isinstance(img, np.ndarray):
        a = img[..., None] if img.ndim == 2 else img
        out = planes(a.transpose(2, 0, 1).astype(np.float32)).transpose(1, 2, 0)
        out = out[..., 0] if img.ndim == 2 else out
        if img.dtype.kind in "iu":
            info = np.iinfo(img.dtype)
            out = np.clip(np.rint(out), info.min, info.max)
        return out.astype(img.dtype)
    a = img.data
    host = a.get() if hasattr(a, "get") else np.asarray(a)
    lead = host.shape[:-2]
    flat = host.reshape((-1,) + host.shape[-2:]).astype(np.float32)
    out = planes(flat).reshape(lead + (h, w))
    if host.dtype.kind in "iu":
        info = np.iinfo(host.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    out = out.astype(host.dtype)
    return _tensor_cls()(out if isinstance(a, np.ndarray) else _xp(a).asarray(out))


def _resized_output_size(h, w, size, max_size=None):
    """torchvision's rule: an int matches the smaller edge (keeping the aspect ratio), a pair
    is (H, W)."""
    if isinstance(size, (list, tuple)) and len(size) == 2:
        return int(size[0]), int(size[1])
    if isinstance(size, (list, tuple)):
        size = size[0]
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = int(size), int(int(size) * long / short)
    if max_size is not None:
        if max_size <= size:
            raise ValueError(f"max_size = {max_size} must be strictly greater than the requested "
                             f"size for the smaller edge size = {size}")
        if new_long > max_size:
            new_short, new_long = int(max_size * new_short / new_long), max_size
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    return new_h, new_w


def _center_crop(img, size):
    th, tw = pair(size, "size", "CenterCrop", 1)
    h, w = _size(img)
    if tw > w or th > h:
        pads = ((tw - w) // 2 if tw > w else 0, (th - h) // 2 if th > h else 0,
                (tw - w + 1) // 2 if tw > w else 0, (th - h + 1) // 2 if th > h else 0)
        img = _pad(img, pads, 0, "constant")
        h, w = _size(img)
        if tw == w and th == h:
            return img
    top = round((h - th) / 2.0)
    left = round((w - tw) / 2.0)
    return _crop(img, top, left, th, tw)


class ToTensor:
    """A PIL image or an (H, W[, C]) array -> a fastconv Tensor (C, H, W): uint8 pixels (and
    8-bit PIL modes) scaled to float32 in [0, 1], other dtypes kept as they are
    (torchvision's ToTensor). A Tensor passes through."""

    def __call__(self, pic):
        Tensor = _tensor_cls()
        if isinstance(pic, Tensor):
            return pic
        if _is_pil(pic):
            if pic.mode in ("I", "I;16", "F", "1"):
                a = np.asarray(pic)
                a = a.astype(np.float32 if pic.mode == "F" else
                             (np.uint8 if pic.mode == "1" else np.int32))
                if pic.mode == "1":
                    a = a * 255
            else:
                a = np.asarray(pic)
        elif isinstance(pic, np.ndarray):
            if pic.ndim not in (2, 3):
                raise ValueError(f"pic should be 2/3 dimensional. Got {pic.ndim} dimensions.")
            a = pic
        else:
            raise TypeError(f"pic should be PIL Image or ndarray. Got {type(pic)}")
        if a.ndim == 2:
            a = a[:, :, None]
        chw = np.ascontiguousarray(a.transpose(2, 0, 1))
        if chw.dtype == np.uint8:
            return Tensor(chw.astype(np.float32) / np.float32(255.0))
        return Tensor(chw)

    def __repr__(self):
        return "ToTensor()"


class Lambda:
    """Apply a user function as a transform (torchvision's Lambda)."""

    def __init__(self, lambd):
        if not callable(lambd):
            raise TypeError(f"Argument lambd should be callable, got {type(lambd).__name__!r}")
        self.lambd = lambd

    def __call__(self, img):
        return self.lambd(img)

    def __repr__(self):
        return "Lambda()"


class Resize:
    """Resize one image: ``size`` an int (the smaller edge, keeping the aspect ratio;
    ``max_size`` bounds the longer one) or (H, W). ``interpolation``: an
    :class:`InterpolationMode` (default bilinear) or a PIL filter constant. Resampling is
    PIL's (antialiased) for every input kind, so ``antialias`` must stay True."""

    def __init__(self, size, interpolation=InterpolationMode.BILINEAR, max_size=None,
                 antialias=True):
        if not (isinstance(size, numbers.Integral) or (isinstance(size, (list, tuple))
                                                        and len(size) in (1, 2))):
            raise TypeError(f"Size should be int or sequence. Got {type(size)}")
        if antialias is False:
            raise ValueError("Resize: antialias=False is not supported: fastconv resizes with "
                             "PIL's antialiased filters")
        self.size, self.interpolation, self.max_size = size, interpolation, max_size
        self.antialias = antialias

    def __call__(self, img):
        h, w = _size(img)
        return _resize(img, _resized_output_size(h, w, self.size, self.max_size),
                       self.interpolation)

    def __repr__(self):
        return f"Resize(size={self.size}, interpolation={self.interpolation})"


class RandomResizedCrop:
    """A random crop of random area (``scale`` of the image) and aspect ratio (``ratio``,
    drawn log-uniformly), resized to ``size`` (the Inception training crop; Szegedy et al.,
    2015, "Going Deeper with Convolutions"), as torchvision's: 10 tries, then the
    central crop with the ratio clamped."""

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0),
                 interpolation=InterpolationMode.BILINEAR, antialias=True):
        self.size = pair(size, "size", "RandomResizedCrop", 1)
        # torchvision draws from these with uniform_(min, max), which needs min <= max
        _min_max(scale, "scale", "RandomResizedCrop", low=0)
        _min_max(ratio, "ratio", "RandomResizedCrop", low=0, low_open=True)
        if antialias is False:
            raise ValueError("RandomResizedCrop: antialias=False is not supported: fastconv "
                             "resizes with PIL's antialiased filters")
        self.scale, self.ratio = tuple(scale), tuple(ratio)
        self.interpolation, self.antialias = interpolation, antialias

    @staticmethod
    def get_params(img, scale, ratio, rng=None):
        """(top, left, height, width) of a random crop of ``img``."""
        rng = rng if rng is not None else _sample_rng()
        height, width = _size(img)
        area = height * width
        log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
        for _ in range(10):
            target_area = area * float(rng.uniform(scale[0], scale[1]))
            aspect_ratio = math.exp(float(rng.uniform(log_ratio[0], log_ratio[1])))
            w = round(math.sqrt(target_area * aspect_ratio))
            h = round(math.sqrt(target_area / aspect_ratio))
            if 0 < w <= width and 0 < h <= height:
                i = int(rng.integers(0, height - h + 1))
                j = int(rng.integers(0, width - w + 1))
                return i, j, h, w
        in_ratio = float(width) / float(height)
        if in_ratio < min(ratio):
            w = width
            h = round(w / min(ratio))
        elif in_ratio > max(ratio):
            h = height
            w = round(h * max(ratio))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, img):
        i, j, h, w = self.get_params(img, self.scale, self.ratio)
        return _resize(_crop(img, i, j, h, w), self.size, self.interpolation)

    def __repr__(self):
        return (f"RandomResizedCrop(size={self.size}, scale={self.scale}, ratio={self.ratio}, "
                f"interpolation={self.interpolation})")


def _blend(a, b, f, bound):
    return np.clip(f * a + (1.0 - f) * b, 0, bound)


def _grey(a):  # (C, H, W) float RGB -> (1, H, W), ITU-R 601-2 luma as torchvision's tensors
    if a.shape[0] == 1:
        return a
    return (0.2989 * a[0] + 0.587 * a[1] + 0.114 * a[2])[None]


def _rgb_to_hsv(a):
    r, g, b = a
    maxc, minc = a.max(0), a.min(0)
    eqc = maxc == minc
    cr = maxc - minc
    ones = np.ones_like(maxc)
    s = cr / np.where(eqc, ones, maxc)
    crd = np.where(eqc, ones, cr)
    rc, gc, bc = (maxc - r) / crd, (maxc - g) / crd, (maxc - b) / crd
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = np.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return np.stack([h, s, maxc])


def _hsv_to_rgb(a):
    h, s, v = a
    i = np.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.astype(np.int32) % 6
    p = np.clip(v * (1.0 - s), 0.0, 1.0)
    q = np.clip(v * (1.0 - s * f), 0.0, 1.0)
    t = np.clip(v * (1.0 - s * (1.0 - f)), 0.0, 1.0)
    mask = i[None] == np.arange(6)[:, None, None]
    a1 = np.stack([v, q, p, p, t, v])
    a2 = np.stack([t, v, v, q, p, p])
    a3 = np.stack([p, p, t, v, v, q])
    return np.stack([(mask * a1).sum(0), (mask * a2).sum(0), (mask * a3).sum(0)])


class ColorJitter:
    """Random brightness, contrast, saturation and hue, in a random order (torchvision's).

    ``brightness``/``contrast``/``saturation``: a number ``b`` (factor drawn from
    ``[max(0, 1 - b), 1 + b]``) or a (min, max) range; ``hue``: ``h`` in [0, 0.5] (shift
    drawn from ``[-h, h]``) or a range within [-0.5, 0.5]. PIL images and uint8 arrays
    are adjusted with PIL's ImageEnhance and an HSV hue shift, as torchvision does for PIL
    images; float Tensors with torchvision's tensor formulas."""

    def __init__(self, brightness=0, contrast=0, saturation=0, hue=0):
        self.brightness = self._check(brightness, "brightness")
        self.contrast = self._check(contrast, "contrast")
        self.saturation = self._check(saturation, "saturation")
        self.hue = self._check(hue, "hue", center=0, bound=(-0.5, 0.5), clip_first_on_zero=False)

    @staticmethod
    def _check(value, name, center=1, bound=(0, float("inf")), clip_first_on_zero=True):
        if isinstance(value, numbers.Number):
            if value < 0:
                raise ValueError(f"If {name} is a single number, it must be non negative.")
            value = [center - float(value), center + float(value)]
            if clip_first_on_zero:
                value[0] = max(value[0], 0.0)
        elif isinstance(value, (tuple, list)) and len(value) == 2:
            value = [float(value[0]), float(value[1])]
        else:
            raise TypeError(f"{name} should be a single number or a list/tuple with length 2.")
        if not bound[0] <= value[0] <= value[1] <= bound[1]:
            raise ValueError(f"{name} values should be between {bound}, but got {value}.")
        if value[0] == value[1] == center:
            return None
        return tuple(value)

    @staticmethod
    def get_params(brightness, contrast, saturation, hue, rng=None):
        """(order of the four adjustments, brightness, contrast, saturation, hue factors)."""
        rng = rng if rng is not None else _sample_rng()
        order = rng.permutation(4).tolist()
        b = None if brightness is None else float(rng.uniform(brightness[0], brightness[1]))
        c = None if contrast is None else float(rng.uniform(contrast[0], contrast[1]))
        s = None if saturation is None else float(rng.uniform(saturation[0], saturation[1]))
        h = None if hue is None else float(rng.uniform(hue[0], hue[1]))
        return order, b, c, s, h

    def __call__(self, img):
        order, b, c, s, h = self.get_params(self.brightness, self.contrast, self.saturation,
                                            self.hue)
        return self._apply(img, order, (b, c, s, h))

    @classmethod
    def _apply(cls, img, order, factors):
        """The adjustments ``order`` (0 brightness, 1 contrast, 2 saturation, 3 hue) with
        ``factors`` (None: skipped) on any input kind (also transforms.functional's)."""
        Tensor = _tensor_cls()
        if isinstance(img, Tensor):
            a = img.data.get() if hasattr(img.data, "get") else np.asarray(img.data)
            out = cls._tensor(a, order, factors)
            return Tensor(out if isinstance(img.data, np.ndarray) else _xp(img.data).asarray(out))
        if isinstance(img, np.ndarray):
            from PIL import Image

            if img.dtype != np.uint8:
                if img.ndim == 3:
                    return cls._tensor(img.transpose(2, 0, 1), order, factors).transpose(1, 2, 0)
                return cls._tensor(img[None], order, factors)[0]
            grey = img.ndim == 3 and img.shape[2] == 1
            pil = Image.fromarray(img[..., 0] if grey else img)
            out = np.asarray(cls._pil(pil, order, factors))
            return out[..., None] if grey else out
        _check_image(img, "ColorJitter")
        return cls._pil(img, order, factors)

    @staticmethod
    def _pil(img, order, factors):
        from PIL import Image, ImageEnhance

        for k in order:
            f = factors[k]
            if f is None:
                continue
            if k == 0:
                img = ImageEnhance.Brightness(img).enhance(f)
            elif k == 1:
                img = ImageEnhance.Contrast(img).enhance(f)
            elif k == 2:
                img = ImageEnhance.Color(img).enhance(f)
            elif img.mode not in ("L", "1", "I", "F"):
                mode = img.mode
                hh, ss, vv = img.convert("HSV").split()
                np_h = np.array(hh, dtype=np.uint8)
                with np.errstate(over="ignore"):
                    np_h += np.int8(f * 255).astype(np.uint8)
                img = Image.merge("HSV", (Image.fromarray(np_h, "L"), ss, vv)).convert(mode)
        return img

    @staticmethod
    def _tensor(a, order, factors):
        bound = 1.0 if a.dtype.kind == "f" else float(np.iinfo(a.dtype).max)
        dtype = a.dtype
        a = a.astype(np.float32)
        for k in order:
            f = factors[k]
            if f is None:
                continue
            if k == 0:
                a = _blend(a, np.zeros_like(a), f, bound)
            elif k == 1:
                a = _blend(a, _grey(a).mean(), f, bound)
            elif k == 2 and a.shape[0] == 3:
                a = _blend(a, _grey(a), f, bound)
            elif k == 3 and a.shape[0] == 3:
                hsv = _rgb_to_hsv(a / bound)
                hsv[0] = np.fmod(hsv[0] + f, 1.0)
                hsv[0] = np.where(hsv[0] < 0, hsv[0] + 1.0, hsv[0])
                a = (_hsv_to_rgb(hsv) * bound).astype(np.float32)
        return a.astype(dtype) if dtype.kind == "f" else np.rint(a).astype(dtype)

    def __repr__(self):
        return (f"ColorJitter(brightness={self.brightness}, contrast={self.contrast}, "
                f"saturation={self.saturation}, hue={self.hue})")


# The rest of torchvision's per-sample transforms: at the end, because augment.py builds on the
# private helpers above.
from fastconv.data import augment as _augment  # noqa: E402
from fastconv.data.augment import (  # noqa: E402, F401  (re-exported: __all__ below)
    AutoAugment,
    AutoAugmentPolicy,
    ConvertImageDtype,
    FiveCrop,
    GaussianBlur,
    Grayscale,
    Pad,
    PILToTensor,
    RandAugment,
    RandomAdjustSharpness,
    RandomAffine,
    RandomApply,
    RandomAutocontrast,
    RandomChoice,
    RandomEqualize,
    RandomErasing,
    RandomGrayscale,
    RandomInvert,
    RandomOrder,
    RandomPosterize,
    RandomRotation,
    RandomSolarize,
    RandomVerticalFlip,
    TenCrop,
    ToPILImage,
    TrivialAugmentWide,
)

__all__ += _augment.__all__

# torchvision.transforms.functional's twin, reachable as transforms.functional as there
from fastconv.data.transforms import functional  # noqa: E402, F401
