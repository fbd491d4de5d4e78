"""Batch transforms: vectorised NumPy augmentation of a whole batch at once.

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

import numpy as np

from fastconv.ops.validate import pair

__all__ = [
    "AUGMENTATIONS",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CenterCrop",
    "Compose",
    "Normalize",
    "PerImageStandardization",
    "RandomBrightness",
    "RandomContrast",
    "RandomCrop",
    "RandomHorizontalFlip",
    "ToCHW",
    "ToFloat",
    "make_transform",
]

# Per-channel statistics of the CIFAR-10 training images in [0, 1].
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def _check_batch(x, name):
    if x.ndim != 4:
        raise ValueError(f"{name}: expected a batch (N, H, W, C), got shape {x.shape}")


class Compose:
    """Apply transforms in order: ``Compose([t1, t2])(x, rng) == t2(t1(x, rng), rng)``."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x, rng=None):
        for t in self.transforms:
            x = t(x, rng)
        return x

    def __repr__(self):
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"


class RandomCrop:
    """Crop a random ``size`` window of each image, after zero/reflect padding by ``padding``.

    ``RandomCrop(32, padding=4)`` is the usual CIFAR augmentation (translations
    of up to 4 pixels); ``RandomCrop(24)`` is TensorFlow's ``random_crop`` to
    24x24 of the CIFAR-10 tutorial. Offsets are uniform over every position
    that keeps the window inside the (padded) image. ``flip_p`` also mirrors
    each crop with that probability, in the same gather (cheaper than a
    separate RandomHorizontalFlip).
    """

    def __init__(self, size, padding: int = 0, padding_mode: str = "constant", fill: int = 0,
                 flip_p: float = 0.0):
        self.size = pair(size, "size", "RandomCrop", 1)
        self.padding = int(padding)
        self.flip_p = float(flip_p)
        if padding_mode not in ("constant", "reflect", "edge"):
            raise ValueError(f"RandomCrop: padding_mode must be constant|reflect|edge, got "
                             f"{padding_mode!r}")
        self.padding_mode = padding_mode
        self.fill = fill

    def __call__(self, x, rng):
        _check_batch(x, "RandomCrop")
        p = self.padding
        if p:
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

    def __repr__(self):
        flip = f", flip_p={self.flip_p}" if self.flip_p else ""
        return (f"RandomCrop({self.size}, padding={self.padding}, "
                f"padding_mode={self.padding_mode!r}{flip})")


class CenterCrop:
    """Crop the central ``size`` window (the evaluation counterpart of RandomCrop(size))."""

    def __init__(self, size):
        self.size = pair(size, "size", "CenterCrop", 1)

    def __call__(self, x, rng=None):
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

    def __call__(self, x, rng):
        _check_batch(x, "RandomHorizontalFlip")
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
    """Per-channel ``(x - mean[c]) / std[c]`` (channels last; apply after ToFloat)."""

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)
        if np.any(self.std <= 0):
            raise ValueError("Normalize: std must be positive")

    def __call__(self, x, rng=None):
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
