"""``torchvision.transforms.functional`` for fastconv: the transforms as plain functions.

    import fastconv.data.transforms.functional as TF
    i, j, h, w = T.RandomCrop.get_params(image, output_size=(256, 256))
    image, mask = TF.crop(image, i, j, h, w), TF.crop(mask, i, j, h, w)
    if random.random() > 0.5:
        image, mask = TF.hflip(image), TF.hflip(mask)

Each takes the inputs of :mod:`fastconv.data.transforms` (a PIL image, an (H, W[, C]) NumPy
array or a (..., C, H, W) fastconv Tensor) and returns the input's kind; the work is the same
code as the transform class of the same name, so ``TF.resize(img, s)`` equals
``T.Resize(s)(img)``. Names, arguments and defaults are torchvision's.
"""

from __future__ import annotations

import numbers

from fastconv.data import augment as _augment
from fastconv.data.transforms import (
    ColorJitter,
    ConvertImageDtype,
    InterpolationMode,
    Normalize,
    PILToTensor,
    Resize,
    ToPILImage,
    ToTensor,
    _center_crop,
    _check_image,
    _crop,
    _hflip,
    _is_pil,
    _size,
    _tensor_cls,
)

__all__ = [
    "InterpolationMode",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "adjust_sharpness",
    "affine",
    "autocontrast",
    "center_crop",
    "convert_image_dtype",
    "crop",
    "equalize",
    "erase",
    "five_crop",
    "gaussian_blur",
    "get_dimensions",
    "get_image_num_channels",
    "get_image_size",
    "hflip",
    "invert",
    "normalize",
    "pad",
    "pil_to_tensor",
    "posterize",
    "resize",
    "resized_crop",
    "rgb_to_grayscale",
    "rotate",
    "solarize",
    "ten_crop",
    "to_grayscale",
    "to_pil_image",
    "to_tensor",
    "vflip",
]


# -- conversions ---------------------------------------------------------------------------------
def to_tensor(pic):
    """A PIL image or (H, W[, C]) array -> a (C, H, W) Tensor, uint8 scaled to [0, 1]."""
    return ToTensor()(pic)


def pil_to_tensor(pic):
    """A PIL image -> a (C, H, W) Tensor of its dtype (uint8 stays uint8)."""
    return PILToTensor()(pic)


def to_pil_image(pic, mode=None):
    """A (C, H, W) Tensor or (H, W[, C]) array -> a PIL image."""
    return ToPILImage(mode)(pic)


def convert_image_dtype(image, dtype=None):
    """A Tensor image to ``dtype`` with its values rescaled (uint8 255 <-> float 1.0)."""
    from fastconv import float32

    return ConvertImageDtype(float32 if dtype is None else dtype)(image)


def normalize(tensor, mean, std, inplace: bool = False):
    """Per-channel ``(x - mean[c]) / std[c]`` of a float Tensor (..., C, H, W)."""
    return Normalize(mean, std, inplace)(tensor)


# -- sizes ---------------------------------------------------------------------------------------
def get_dimensions(img) -> list:
    """[channels, height, width]."""
    h, w = _size(img)
    return [_augment._channels(img), h, w]


def get_image_size(img) -> list:
    """[width, height] (torchvision's order)."""
    h, w = _size(img)
    return [w, h]


def get_image_num_channels(img) -> int:
    _check_image(img, "get_image_num_channels")
    return _augment._channels(img)


# -- geometry ------------------------------------------------------------------------------------
def resize(img, size, interpolation=InterpolationMode.BILINEAR, max_size=None, antialias=True):
    """Resize to ``size`` (an int: the smaller edge, keeping the aspect ratio; or (h, w))."""
    return Resize(size, interpolation, max_size, antialias)(img)


def crop(img, top: int, left: int, height: int, width: int):
    """The window at (top, left) of (height, width); parts outside the image are zeros."""
    return _crop(img, int(top), int(left), int(height), int(width))


def center_crop(img, output_size):
    """The central ``output_size`` window (an int or (h, w)); a smaller image is zero-padded."""
    if isinstance(output_size, numbers.Number):
        output_size = (int(output_size), int(output_size))
    elif isinstance(output_size, (tuple, list)) and len(output_size) == 1:
        output_size = (output_size[0], output_size[0])
    return _center_crop(img, output_size)


def resized_crop(img, top: int, left: int, height: int, width: int, size,
                 interpolation=InterpolationMode.BILINEAR, antialias=True):
    """``crop`` then ``resize`` to ``size``."""
    return resize(crop(img, top, left, height, width), size, interpolation,
                  antialias=antialias)


def hflip(img):
    """Mirror left-right."""
    _check_image(img, "hflip")
    return _hflip(img)


def vflip(img):
    """Mirror top-bottom."""
    return _augment._vflip(img)


def pad(img, padding, fill=0, padding_mode: str = "constant"):
    """Pad by ``padding`` (an int, (left/right, top/bottom) or (left, top, right, bottom));
    ``padding_mode`` constant|edge|reflect|symmetric."""
    return _augment.Pad(padding, fill, padding_mode)(img)


def rotate(img, angle, interpolation=InterpolationMode.NEAREST, expand=False, center=None,
           fill=None):
    """Rotate by ``angle`` degrees counter-clockwise about ``center`` (default the centre)."""
    return _augment.rotate(img, angle, interpolation, expand, center, fill)


def affine(img, angle, translate, scale, shear, interpolation=InterpolationMode.NEAREST,
           fill=None, center=None):
    """Rotate, translate, scale and shear about ``center`` (default the centre)."""
    return _augment.affine(img, angle, translate, scale, shear, interpolation, fill, center)


def five_crop(img, size):
    """(top-left, top-right, bottom-left, bottom-right, centre) crops of ``size``."""
    if isinstance(size, numbers.Number):
        size = (int(size), int(size))
    elif isinstance(size, (tuple, list)) and len(size) == 1:
        size = (size[0], size[0])
    return _augment._five_crop(img, tuple(size))


def ten_crop(img, size, vertical_flip: bool = False):
    """five_crop of the image and of its mirror image."""
    return _augment.TenCrop(size, vertical_flip)(img)


# -- colour --------------------------------------------------------------------------------------
def _factor(value, name):
    if value < 0:
        raise ValueError(f"{name} ({value}) is not non-negative.")
    return float(value)


def adjust_brightness(img, brightness_factor: float):
    """Blend with black: 0 gives a black image, 1 the original."""
    return ColorJitter._apply(img, [0], (_factor(brightness_factor, "brightness_factor"),
                                         None, None, None))


def adjust_contrast(img, contrast_factor: float):
    """Blend with the mean grey level: 0 gives a solid grey image, 1 the original."""
    return ColorJitter._apply(img, [1], (None, _factor(contrast_factor, "contrast_factor"),
                                         None, None))


def adjust_saturation(img, saturation_factor: float):
    """Blend with the greyscale image: 0 gives it, 1 the original."""
    return ColorJitter._apply(img, [2], (None, None,
                                         _factor(saturation_factor, "saturation_factor"), None))


def adjust_hue(img, hue_factor: float):
    """Shift the hue by ``hue_factor`` of a turn, in [-0.5, 0.5]."""
    if not -0.5 <= hue_factor <= 0.5:
        raise ValueError(f"hue_factor ({hue_factor}) is not in [-0.5, 0.5].")
    return ColorJitter._apply(img, [3], (None, None, None, float(hue_factor)))


def adjust_sharpness(img, sharpness_factor: float):
    """PIL's sharpness enhancement: 0 blurs, 1 is the original, 2 sharpens."""
    return _augment._enhance(img, "Sharpness", _factor(sharpness_factor, "sharpness_factor"))


def rgb_to_grayscale(img, num_output_channels: int = 1):
    """ITU-R 601-2 luma, on 1 or 3 output channels."""
    return _augment._grayscale(img, num_output_channels)


def to_grayscale(img, num_output_channels: int = 1):
    """The PIL form of :func:`rgb_to_grayscale`."""
    if not _is_pil(img):
        raise TypeError(f"img should be PIL Image. Got {type(img)}")
    return _augment._grayscale(img, num_output_channels)


def invert(img):
    return _augment._invert(img)


def posterize(img, bits: int):
    if not 0 <= int(bits) <= 8:
        raise ValueError(f"The number if bits should be between 0 and 8. Got {bits}")
    return _augment._posterize(img, bits)


def solarize(img, threshold: float):
    return _augment._solarize(img, threshold)


def autocontrast(img):
    return _augment._autocontrast(img)


def equalize(img):
    return _augment._equalize(img)


def gaussian_blur(img, kernel_size, sigma=None):
    """A separable Gaussian blur of ``kernel_size`` (odd, an int or (kx, ky)); ``sigma``
    defaults to torchvision's ``0.3 * ((k - 1) * 0.5 - 1) + 0.8`` per axis."""
    if isinstance(kernel_size, numbers.Integral):
        kernel_size = [int(kernel_size)] * 2
    kernel_size = list(kernel_size)
    if len(kernel_size) == 1:
        kernel_size = kernel_size * 2
    for k in kernel_size:
        if k <= 0 or k % 2 == 0:
            raise ValueError(f"kernel_size should have odd and positive integers. Got "
                             f"{kernel_size}")
    if sigma is None:
        sigma = [k * 0.15 + 0.35 for k in kernel_size]
    elif isinstance(sigma, numbers.Real):
        sigma = [float(sigma)] * 2
    sigma = list(sigma)
    if len(sigma) == 1:
        sigma = sigma * 2
    if any(s <= 0 for s in sigma):
        raise ValueError(f"sigma should have positive values. Got {sigma}")
    return _augment.gaussian_blur(img, kernel_size, sigma)


def erase(img, i: int, j: int, h: int, w: int, v, inplace: bool = False):
    """Set the (h, w) window at (i, j) of a Tensor image (..., C, H, W) to ``v`` (a number or a
    Tensor that broadcasts to the window)."""
    Tensor = _tensor_cls()
    if not isinstance(img, Tensor):
        raise TypeError(f"img should be Tensor Image. Got {type(img)}")
    out = img if inplace else Tensor(img.data.copy())
    value = v.data if isinstance(v, Tensor) else v
    out.data[..., i:i + h, j:j + w] = value
    return out
