"""torchvision's further per-sample transforms: geometry, colour, blur, erasing, conversions,
multi-crops and the learned / random augmentation policies.

What it holds (names, arguments and defaults as ``torchvision.transforms`` 0.2x):

* geometry -- RandomVerticalFlip, Pad, RandomRotation, RandomAffine, FiveCrop, TenCrop;
* colour -- Grayscale, RandomGrayscale, RandomInvert, RandomPosterize, RandomSolarize,
  RandomAdjustSharpness, RandomAutocontrast, RandomEqualize, GaussianBlur;
* containers -- RandomApply, RandomChoice, RandomOrder;
* Tensors -- RandomErasing (Tensors only, as torchvision's), PILToTensor, ToPILImage,
  ConvertImageDtype;
* policies -- AutoAugment (with AutoAugmentPolicy IMAGENET / CIFAR10 / SVHN), RandAugment,
  TrivialAugmentWide.

They live apart from :mod:`fastconv.data.transforms` because that module is also the zoo's
vectorised batch pipeline (``t(x, rng)`` on (N, H, W, C) batches); everything here is per
sample only, built on PIL, and larger than the rest put together. Every name is re-exported
from :mod:`fastconv.data.transforms`, so ``import fastconv.data.transforms as T;
T.RandAugment()`` works as with torchvision.

Input kinds follow :mod:`fastconv.data.transforms`: a PIL image, an (H, W[, C]) NumPy
array (uint8, as decoded) or a fastconv Tensor (C, H, W); the output has the input's kind.

* Geometric transforms (rotation, affine, flips, padding, crops) use PIL for PIL images and
  uint8 arrays; other arrays and Tensors are resampled plane by plane in PIL's float mode
  ``"F"``, so their values and dtype are kept (the geometry is PIL's: centre of rotation at
  (W/2, H/2), as torchvision's PIL path).
* Inversion and solarization of Tensors use torchvision's tensor formulas (``bound - x``,
  the bound 1 for float Tensors and the dtype's maximum for integer ones).
* The other colour operations (posterize, equalize, autocontrast, sharpness, grayscale of
  arrays) and the policies AutoAugment / RandAugment / TrivialAugmentWide are PIL's: a
  float Tensor in [0, 1] is rounded to 8 bits (``round(255 x)``), transformed as a PIL
  image and returned as a float32 Tensor ``/ 255`` (torchvision's tensor path takes uint8
  tensors only for most of them); a uint8 Tensor stays uint8.
* GaussianBlur is torchvision's separable kernel with reflect padding, computed in NumPy
  for every kind (PIL images go through an array, as torchvision's do through a tensor).

Randomness comes from :func:`fastconv.utils.data.sample_rng` (``_sample_rng``), so
``fastconv.manual_seed`` and DataLoader workers make every transform reproducible.
"""

from __future__ import annotations

import enum
import math
import numbers
import warnings
from collections.abc import Sequence

import numpy as np

from fastconv.data.transforms import (
    InterpolationMode,
    _center_crop,
    _check_image,
    _crop,
    _hflip,
    _is_pil,
    _is_real,
    _min_max,
    _padding4,
    _pil_filter,
    _sample_rng,
    _size,
    _tensor_cls,
    _xp,
)

__all__ = [
    "AutoAugment",
    "AutoAugmentPolicy",
    "ConvertImageDtype",
    "FiveCrop",
    "GaussianBlur",
    "Grayscale",
    "PILToTensor",
    "Pad",
    "RandAugment",
    "RandomAdjustSharpness",
    "RandomAffine",
    "RandomApply",
    "RandomAutocontrast",
    "RandomChoice",
    "RandomEqualize",
    "RandomErasing",
    "RandomGrayscale",
    "RandomInvert",
    "RandomOrder",
    "RandomPosterize",
    "RandomRotation",
    "RandomSolarize",
    "RandomVerticalFlip",
    "TenCrop",
    "ToPILImage",
    "TrivialAugmentWide",
]


# ------------------------------------------------------------------------------------------------
# conversions between the input kinds
# ------------------------------------------------------------------------------------------------

def _is_tensor(img) -> bool:
    return isinstance(img, _tensor_cls())


def _host(a) -> np.ndarray:
    return a.get() if hasattr(a, "get") else np.asarray(a)


def _like(out: np.ndarray, a):
    """A Tensor of ``out`` on the device of the array ``a``."""
    return _tensor_cls()(out if isinstance(a, np.ndarray) else _xp(a).asarray(out))


def _channels(img) -> int:
    if _is_pil(img):
        return len(img.getbands())
    if isinstance(img, np.ndarray):
        return 1 if img.ndim == 2 else int(img.shape[2])
    return 1 if img.ndim == 2 else int(img.shape[-3])


def _bound(dtype) -> float:
    return 1.0 if np.dtype(dtype).kind == "f" else float(np.iinfo(dtype).max)


def _via_pil(img, fn, who):
    """Apply ``fn`` (PIL image -> PIL image) to any kind, returning the input's kind: uint8
    arrays and Tensors through an 8-bit PIL image (a float Tensor in [0, 1] is rounded to
    ``round(255 x)`` and comes back as float32 ``/ 255``)."""
    from PIL import Image

    _check_image(img, who)
    if _is_pil(img):
        return fn(img)
    if isinstance(img, np.ndarray):
        if img.dtype != np.uint8:
            raise TypeError(f"{who}: a NumPy image must be uint8, got {img.dtype} (convert it "
                            f"with ToTensor() first to work on floats)")
        one = img.ndim == 3 and img.shape[2] == 1
        if img.ndim == 3 and img.shape[2] not in (1, 3, 4):
            raise TypeError(f"{who}: expected 1, 3 or 4 channels, got {img.shape[2]}")
        out = np.asarray(fn(Image.fromarray(img[..., 0] if one else img)))
        return out[..., None] if one else out.copy()
    a = _host(img.data)
    if a.ndim != 3 or a.shape[0] not in (1, 3, 4):
        raise TypeError(f"{who}: expected a Tensor (C, H, W) with 1, 3 or 4 channels, got "
                        f"shape {tuple(a.shape)}")
    if a.dtype == np.uint8:
        q = a
    elif a.dtype.kind == "f":
        q = np.clip(np.rint(a.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    else:
        raise TypeError(f"{who}: expected a float or uint8 Tensor, got {a.dtype}")
    hwc = q.transpose(1, 2, 0)
    out = np.asarray(fn(Image.fromarray(hwc[..., 0] if a.shape[0] == 1 else
                                        np.ascontiguousarray(hwc))))
    out = (out[..., None] if out.ndim == 2 else out).transpose(2, 0, 1)
    if a.dtype == np.uint8:
        return _like(np.ascontiguousarray(out), img.data)
    return _like(out.astype(np.float32) / np.float32(255.0), img.data)


def _pil_fill(fill, img):
    """torchvision's fill for PIL: a number for every band, or one value per band."""
    bands = len(img.getbands())
    fill = 0 if fill is None else fill
    if isinstance(fill, (list, tuple)):
        if len(fill) == 1:
            fill = tuple(fill) * bands
        elif len(fill) != bands:
            raise ValueError(f"The number of elements in 'fill' does not match the number of "
                             f"channels of the image ({len(fill)} != {bands})")
        fill = tuple(fill)
    elif bands > 1:
        fill = (fill,) * bands
    if img.mode != "F":
        fill = tuple(int(v) for v in fill) if isinstance(fill, tuple) else int(fill)
    if isinstance(fill, tuple) and bands == 1:
        fill = fill[0]
    return fill


def _plane_fills(fill, c):
    fill = 0 if fill is None else fill
    if isinstance(fill, (list, tuple)):
        if len(fill) == 1:
            return [float(fill[0])] * c
        if len(fill) != c:
            raise ValueError(f"The number of elements in 'fill' does not match the number of "
                             f"channels of the image ({len(fill)} != {c})")
        return [float(v) for v in fill]
    return [float(fill)] * c


def _geometric(img, fn, fill):
    """Apply ``fn(pil_image, fillcolor) -> pil_image`` (a resampling) to any kind: PIL images
    and uint8 arrays as such, other arrays and Tensors plane by plane in PIL's float mode."""
    from PIL import Image

    _check_image(img)
    if _is_pil(img):
        return fn(img, _pil_fill(fill, img))
    if isinstance(img, np.ndarray) and img.dtype == np.uint8 and (
            img.ndim == 2 or img.shape[2] in (1, 3, 4)):
        one = img.ndim == 3 and img.shape[2] == 1
        pil = Image.fromarray(img[..., 0] if one else img)
        out = np.asarray(fn(pil, _pil_fill(fill, pil)))
        return out[..., None] if one else out.copy()

    def planes(chw):  # (C, H, W) -> (C, H', W') in float32, one PIL "F" image per channel
        fills = _plane_fills(fill, chw.shape[0])
        return np.stack([np.asarray(fn(Image.fromarray(np.ascontiguousarray(p, np.float32),
                                                       mode="F"), f))
                         for p, f in zip(chw, fills)])

    def cast(out, dtype):
        if np.dtype(dtype).kind in "iub":
            info = np.iinfo(dtype)
            out = np.clip(np.rint(out), info.min, info.max)
        return out.astype(dtype)

    if isinstance(img, np.ndarray):
        chw = img[None] if img.ndim == 2 else img.transpose(2, 0, 1)
        out = cast(planes(chw), img.dtype)
        return out[0] if img.ndim == 2 else np.ascontiguousarray(out.transpose(1, 2, 0))
    a = _host(img.data)
    flat = a.reshape((-1,) + a.shape[-2:])
    out = cast(planes(flat), a.dtype)
    return _like(out.reshape(a.shape[:-2] + out.shape[-2:]), img.data)


def _vflip(img):
    from PIL import Image

    _check_image(img, "vflip")
    if _is_pil(img):
        return img.transpose(Image.FLIP_TOP_BOTTOM)
    if isinstance(img, np.ndarray):
        return img[::-1].copy()
    return _tensor_cls()(img.data[..., ::-1, :].copy())


def _interpolation(interpolation, who):
    if isinstance(interpolation, numbers.Integral):
        warnings.warn(f"{who}: an int interpolation is deprecated, use InterpolationMode",
                      stacklevel=3)
        return interpolation
    if not isinstance(interpolation, InterpolationMode):
        raise TypeError(f"{who}: argument interpolation should be an InterpolationMode or int, "
                        f"got {type(interpolation).__name__}")
    return interpolation


def _interp_name(interpolation):
    return interpolation.value if isinstance(interpolation, InterpolationMode) else interpolation


# ------------------------------------------------------------------------------------------------
# functional pieces shared by the transforms and the policies
# ------------------------------------------------------------------------------------------------

def _inverse_affine_matrix(center, angle, translate, scale, shear):
    """The output -> input pixel map of torchvision's affine: with R the rotation by
    ``angle``, S the shear, C the centre and T the translation, the forward map is
    ``T C R S scale C^-1``; PIL's ``Image.transform`` wants its inverse (a, b, c, d, e, f)."""
    rot = math.radians(angle)
    sx, sy = math.radians(shear[0]), math.radians(shear[1])
    cx, cy = center
    tx, ty = translate
    a = math.cos(rot - sy) / math.cos(sy)
    b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
    c = math.sin(rot - sy) / math.cos(sy)
    d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
    m = [d / scale, -b / scale, 0.0, -c / scale, a / scale, 0.0]
    m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty) + cx
    m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty) + cy
    return m


def affine(img, angle, translate, scale, shear, interpolation=InterpolationMode.NEAREST,
           fill=None, center=None):
    """torchvision's ``F.affine``: rotate by ``angle`` degrees (clockwise), translate
    by ``translate`` = (tx, ty) pixels, scale, and shear by ``shear`` = (sx, sy) degrees,
    about ``center`` (default the image centre (W/2, H/2)); the output keeps the size."""
    h, w = _size(img)
    if isinstance(shear, numbers.Number):
        shear = (float(shear), 0.0)
    shear = tuple(shear) if len(shear) == 2 else (float(shear[0]), 0.0)
    center = (w * 0.5, h * 0.5) if center is None else tuple(center)
    matrix = _inverse_affine_matrix(center, angle, translate, scale, shear)
    f = _pil_filter(interpolation)

    def fn(pil, fillcolor):
        from PIL import Image

        return pil.transform(pil.size, Image.AFFINE, matrix, f, fillcolor=fillcolor)

    return _geometric(img, fn, fill)


def rotate(img, angle, interpolation=InterpolationMode.NEAREST, expand=False, center=None,
           fill=None):
    """torchvision's ``F.rotate``: ``angle`` degrees counter-clockwise about ``center``
    (default the image centre); ``expand`` enlarges the output to hold the whole image."""
    f = _pil_filter(interpolation)
    center = None if center is None else tuple(center)
    return _geometric(img, lambda pil, fc: pil.rotate(angle, f, expand, center,
                                                      fillcolor=fc), fill)


def _invert(img):
    from PIL import ImageOps

    if _is_pil(img) or (isinstance(img, np.ndarray) and img.dtype == np.uint8):
        return _via_pil(img, ImageOps.invert, "invert")
    _check_image(img, "invert")
    if isinstance(img, np.ndarray):
        return (_bound(img.dtype) - img).astype(img.dtype)
    a = img.data
    return _tensor_cls()((_bound(a.dtype) - a).astype(a.dtype))


def _solarize(img, threshold):
    from PIL import ImageOps

    if _is_pil(img) or (isinstance(img, np.ndarray) and img.dtype == np.uint8):
        return _via_pil(img, lambda p: ImageOps.solarize(p, threshold), "solarize")
    _check_image(img, "solarize")
    a = img if isinstance(img, np.ndarray) else img.data
    bound = _bound(a.dtype)
    if threshold > bound:
        raise TypeError(f"Threshold should be less than bound of img ({threshold} > {bound})")
    xp = np if isinstance(a, np.ndarray) else _xp(a)
    out = xp.where(a >= threshold, (bound - a).astype(a.dtype), a)
    return out if isinstance(img, np.ndarray) else _tensor_cls()(out)


def _posterize(img, bits):
    from PIL import ImageOps

    return _via_pil(img, lambda p: ImageOps.posterize(p, int(bits)), "posterize")


def _equalize(img):
    from PIL import ImageOps

    return _via_pil(img, ImageOps.equalize, "equalize")


def _autocontrast(img):
    from PIL import ImageOps

    return _via_pil(img, ImageOps.autocontrast, "autocontrast")


def _enhance(img, kind, factor):
    from PIL import ImageEnhance

    cls = {"Brightness": ImageEnhance.Brightness, "Color": ImageEnhance.Color,
           "Contrast": ImageEnhance.Contrast, "Sharpness": ImageEnhance.Sharpness}[kind]
    return _via_pil(img, lambda p: cls(p).enhance(factor), f"adjust_{kind.lower()}")


def _grayscale(img, num_output_channels):
    """torchvision's ``rgb_to_grayscale``: PIL's ``convert("L")`` (ITU-R 601-2 luma,
    L = 0.299 R + 0.587 G + 0.114 B) for PIL images and uint8 arrays, the tensor formula
    (0.2989, 0.587, 0.114) for Tensors; 3 output channels repeat the luma."""
    from PIL import Image

    if num_output_channels not in (1, 3):
        raise ValueError("num_output_channels should be either 1 or 3")
    _check_image(img, "Grayscale")
    if _is_pil(img) or isinstance(img, np.ndarray):
        if isinstance(img, np.ndarray) and img.dtype != np.uint8:
            raise TypeError(f"Grayscale: a NumPy image must be uint8, got {img.dtype}")
        pil = img if _is_pil(img) else Image.fromarray(
            img[..., 0] if img.ndim == 3 and img.shape[2] == 1 else img)
        grey = np.asarray(pil.convert("L"))
        if _is_pil(img):
            return (Image.fromarray(grey) if num_output_channels == 1
                    else Image.fromarray(np.dstack([grey] * 3)))
        if num_output_channels == 3:
            return np.dstack([grey] * 3)
        return grey if img.ndim == 2 else grey[..., None]
    a = img.data
    c = a.shape[-3]
    if c not in (1, 3):
        raise TypeError(f"Input image tensor permitted channel values are [1, 3], but found {c}")
    if c == 3:
        lum = 0.2989 * a[..., 0:1, :, :] + 0.587 * a[..., 1:2, :, :] + 0.114 * a[..., 2:3, :, :]
        lum = lum.astype(a.dtype)  # an integer tensor truncates, as torchvision's
    else:
        lum = a.copy()
    if num_output_channels == 3:
        xp = np if isinstance(a, np.ndarray) else _xp(a)
        lum = xp.concatenate([lum] * 3, axis=-3)
    return _tensor_cls()(lum)


def _gaussian_kernel1d(k, sigma):
    x = np.linspace(-(k - 1) * 0.5, (k - 1) * 0.5, k)
    pdf = np.exp(-0.5 * (x / sigma) ** 2)
    return (pdf / pdf.sum()).astype(np.float32)


def gaussian_blur(img, kernel_size, sigma):
    """torchvision's ``F.gaussian_blur``: a separable Gaussian of ``kernel_size`` = (kx, ky)
    (width, height) taps and ``sigma`` = (sx, sy), reflect padding; integer images are
    computed in float32 and rounded back."""
    from PIL import Image

    kx, ky = kernel_size
    sx, sy = sigma
    wx, wy = _gaussian_kernel1d(kx, sx), _gaussian_kernel1d(ky, sy)

    def blur(chw):  # (C, H, W) any dtype -> same dtype
        x = chw.astype(np.float32)
        x = np.pad(x, ((0, 0), (ky // 2, ky // 2), (kx // 2, kx // 2)), mode="reflect")
        h, w = chw.shape[1], chw.shape[2]
        rows = sum(wx[i] * x[:, :, i:i + w] for i in range(kx))
        out = sum(wy[i] * rows[:, i:i + h, :] for i in range(ky))
        if chw.dtype.kind in "iub":
            info = np.iinfo(chw.dtype)
            out = np.clip(np.rint(out), info.min, info.max)
        return out.astype(chw.dtype)

    _check_image(img, "GaussianBlur")
    if _is_pil(img):
        a = np.asarray(img)
        out = blur(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
        out = out[0] if a.ndim == 2 else out.transpose(1, 2, 0)
        res = Image.fromarray(np.ascontiguousarray(out))
        if img.mode == "P":  # pragma: no cover - palette images keep their palette
            res.putpalette(img.getpalette())
        return res
    if isinstance(img, np.ndarray):
        out = blur(img[None] if img.ndim == 2 else img.transpose(2, 0, 1))
        return out[0] if img.ndim == 2 else np.ascontiguousarray(out.transpose(1, 2, 0))
    a = _host(img.data)
    flat = a.reshape((-1,) + a.shape[-2:])
    return _like(blur(flat).reshape(a.shape), img.data)


def _pad_any(img, padding, fill, mode):
    """torchvision's ``F.pad``: ``padding`` as in :class:`Pad`; negative padding crops; a
    per-channel ``fill`` for constant padding."""
    left, top, right, bottom = _padding4(padding)
    if min(left, top, right, bottom) < 0:
        h, w = _size(img)
        cl, ct, cr, cb = (max(-v, 0) for v in (left, top, right, bottom))
        img = _crop(img, ct, cl, h - ct - cb, w - cl - cr)
        left, top, right, bottom = (max(v, 0) for v in (left, top, right, bottom))
    if not (left or top or right or bottom):
        return img
    from PIL import Image

    def pad_hwc(a, fillv):  # (H, W[, C]) array
        spec = ((top, bottom), (left, right)) + (((0, 0),) if a.ndim == 3 else ())
        if mode != "constant":
            return np.pad(a, spec, mode=mode)
        out = np.pad(a, spec)
        inside = np.zeros(out.shape[:2], bool)
        inside[top:top + a.shape[0], left:left + a.shape[1]] = True
        out[~inside] = fillv
        return out

    if _is_pil(img):
        a = np.asarray(img)
        fillv = _pil_fill(fill, img) if mode == "constant" else 0
        out = Image.fromarray(pad_hwc(a, fillv), mode=img.mode)
        if img.mode == "P":  # pragma: no cover - palette images keep their palette
            out.putpalette(img.getpalette())
        return out
    if isinstance(img, np.ndarray):
        fillv = np.asarray(_plane_fills(fill, _channels(img)), img.dtype)
        return pad_hwc(img, fillv if img.ndim == 3 else fillv[0])
    a = _host(img.data)
    hwc = a.reshape((-1,) + a.shape[-2:]).transpose(1, 2, 0)
    fills = _plane_fills(fill, a.shape[-3] if a.ndim >= 3 else 1)
    fillv = np.tile(np.asarray(fills, a.dtype), hwc.shape[2] // len(fills))
    out = pad_hwc(hwc, fillv).transpose(2, 0, 1)
    return _like(np.ascontiguousarray(out.reshape(a.shape[:-2] + out.shape[-2:])), img.data)


# ------------------------------------------------------------------------------------------------
# argument checks (torchvision's messages)
# ------------------------------------------------------------------------------------------------

def _setup_angle(x, name, req_sizes=(2,)):
    if isinstance(x, numbers.Number):
        if not _is_real(x):
            raise TypeError(f"{name} should be a real number or a sequence, got {x!r}")
        if x < 0:
            raise ValueError(f"If {name} is a single number, it must be positive.")
        if not math.isfinite(x):
            raise ValueError(f"{name} should be a finite number, got {x}")
        return [-float(x), float(x)]
    _check_sequence(x, name, req_sizes)
    for d in x:
        if not _is_real(d):
            raise TypeError(f"{name} values should be numbers, got {x!r}")
        if not math.isfinite(d):
            raise ValueError(f"{name} values should be finite, got {x!r}")
    for lo, hi in zip(x[::2], x[1::2]):
        # the angle is drawn with uniform_(min, max), which needs min <= max
        if lo > hi:
            raise ValueError(f"{name} should be of kind (min, max), got {x!r}")
    return [float(d) for d in x]


def _check_sequence(x, name, req_sizes):
    if not isinstance(x, Sequence) or isinstance(x, str):
        raise TypeError(f"{name} should be a sequence of length "
                        f"{' or '.join(map(str, req_sizes))}.")
    if len(x) not in req_sizes:
        raise ValueError(f"{name} should be a sequence of length "
                         f"{' or '.join(map(str, req_sizes))}.")


def _setup_size(size, error_msg):
    if isinstance(size, numbers.Number):
        return int(size), int(size)
    if isinstance(size, Sequence) and len(size) == 1:
        return int(size[0]), int(size[0])
    if not isinstance(size, Sequence) or len(size) != 2:
        raise ValueError(error_msg)
    return int(size[0]), int(size[1])


def _check_fill(fill):
    if fill is None:
        return 0
    if not isinstance(fill, (Sequence, numbers.Number)) or isinstance(fill, str):
        raise TypeError("Fill should be either a sequence or a number.")
    return fill


# ------------------------------------------------------------------------------------------------
# geometry
# ------------------------------------------------------------------------------------------------

class RandomVerticalFlip:
    """Flip the image top-bottom with probability ``p`` (torchvision's)."""

    def __init__(self, p: float = 0.5):
        self.p = float(p)

    def __call__(self, img):
        return _vflip(img) if _sample_rng().random() < self.p else img

    def __repr__(self):
        return f"RandomVerticalFlip(p={self.p})"


class Pad:
    """Pad the image on all sides (torchvision's ``Pad(padding, fill=0,
    padding_mode="constant")``): ``padding`` an int (all sides), (left/right, top/bottom) or
    (left, top, right, bottom); ``fill`` a number or one value per channel (PIL images and
    arrays) for constant padding; ``padding_mode`` constant | edge | reflect | symmetric."""

    def __init__(self, padding, fill=0, padding_mode: str = "constant"):
        if not isinstance(padding, (numbers.Number, tuple, list)):
            raise TypeError("Got inappropriate padding arg")
        if not isinstance(fill, (numbers.Number, tuple, list)):
            raise TypeError("Got inappropriate fill arg")
        if padding_mode not in ("constant", "edge", "reflect", "symmetric"):
            raise ValueError("Padding mode should be either constant, edge, reflect or symmetric")
        if isinstance(padding, Sequence) and len(padding) not in (1, 2, 4):
            raise ValueError(f"Padding must be an int or a 1, 2, or 4 element tuple, not a "
                             f"{len(padding)} element tuple")
        self.padding, self.fill, self.padding_mode = padding, fill, padding_mode

    def __call__(self, img):
        return _pad_any(img, self.padding, self.fill, self.padding_mode)

    def __repr__(self):
        return (f"Pad(padding={self.padding}, fill={self.fill}, "
                f"padding_mode={self.padding_mode})")


class RandomRotation:
    """Rotate by an angle drawn uniformly from ``degrees`` (a number d: [-d, d]), counter-
    clockwise, about ``center`` (default the image centre) -- torchvision's
    ``RandomRotation(degrees, interpolation=NEAREST, expand=False, center=None, fill=0)``.
    ``expand`` enlarges the output to hold the whole rotated image; ``fill`` paints the
    area outside the image (a number, or one value per channel)."""

    def __init__(self, degrees, interpolation=InterpolationMode.NEAREST, expand=False,
                 center=None, fill=0):
        self.degrees = _setup_angle(degrees, name="degrees", req_sizes=(2,))
        self.interpolation = _interpolation(interpolation, "RandomRotation")
        if center is not None:
            _check_sequence(center, "center", req_sizes=(2,))
        self.center, self.expand = center, expand
        self.fill = _check_fill(fill)

    @staticmethod
    def get_params(degrees, rng=None):
        """The angle (degrees), uniform in [degrees[0], degrees[1]]."""
        rng = rng if rng is not None else _sample_rng()
        return float(rng.uniform(float(degrees[0]), float(degrees[1])))

    def __call__(self, img):
        angle = self.get_params(self.degrees)
        return rotate(img, angle, self.interpolation, self.expand, self.center, self.fill)

    def __repr__(self):
        s = (f"RandomRotation(degrees={self.degrees}, "
             f"interpolation={_interp_name(self.interpolation)}, expand={self.expand}")
        if self.center is not None:
            s += f", center={self.center}"
        if self.fill is not None:
            s += f", fill={self.fill}"
        return s + ")"


class RandomAffine:
    """A random affine map keeping the image centre fixed (torchvision's
    ``RandomAffine(degrees, translate=None, scale=None, shear=None, interpolation=NEAREST,
    fill=0, center=None)``).

    ``degrees``: rotation range (a number d: [-d, d]; positive turns clockwise, as
    torchvision's ``F.affine``, whereas RandomRotation's positive angles turn
    counter-clockwise); ``translate`` = (a, b): horizontal
    shift uniform in [-a W, a W], vertical in [-b H, b H] (rounded to whole pixels);
    ``scale`` = (lo, hi); ``shear``: a number s (x-shear in [-s, s]), (lo, hi) (x-shear) or
    (xlo, xhi, ylo, yhi), in degrees; ``center``: the fixed point (default (W/2, H/2))."""

    def __init__(self, degrees, translate=None, scale=None, shear=None,
                 interpolation=InterpolationMode.NEAREST, fill=0, center=None):
        self.degrees = _setup_angle(degrees, name="degrees", req_sizes=(2,))
        if translate is not None:
            _check_sequence(translate, "translate", req_sizes=(2,))
            for t in translate:
                if not 0.0 <= t <= 1.0:
                    raise ValueError("translation values should be between 0 and 1")
        if scale is not None:
            _check_sequence(scale, "scale", req_sizes=(2,))
            for s in scale:
                if _is_real(s) and s <= 0:
                    raise ValueError("scale values should be positive")
            _min_max(scale, "scale", "RandomAffine")
        self.translate, self.scale = translate, scale
        self.shear = (_setup_angle(shear, name="shear", req_sizes=(2, 4))
                      if shear is not None else None)
        self.interpolation = _interpolation(interpolation, "RandomAffine")
        self.fill = _check_fill(fill)
        if center is not None:
            _check_sequence(center, "center", req_sizes=(2,))
        self.center = center

    @staticmethod
    def get_params(degrees, translate, scale_ranges, shears, img_size, rng=None):
        """(angle, (tx, ty), scale, (shear_x, shear_y)) for an image of ``img_size`` =
        (W, H), drawn in this order as torchvision does."""
        rng = rng if rng is not None else _sample_rng()
        angle = float(rng.uniform(float(degrees[0]), float(degrees[1])))
        if translate is not None:
            max_dx = float(translate[0] * img_size[0])
            max_dy = float(translate[1] * img_size[1])
            tx = int(round(float(rng.uniform(-max_dx, max_dx))))
            ty = int(round(float(rng.uniform(-max_dy, max_dy))))
            translations = (tx, ty)
        else:
            translations = (0, 0)
        s = 1.0 if scale_ranges is None else float(rng.uniform(scale_ranges[0],
                                                               scale_ranges[1]))
        shear_x = shear_y = 0.0
        if shears is not None:
            shear_x = float(rng.uniform(shears[0], shears[1]))
            if len(shears) == 4:
                shear_y = float(rng.uniform(shears[2], shears[3]))
        return angle, translations, s, (shear_x, shear_y)

    def __call__(self, img):
        h, w = _size(img)
        angle, translations, s, shear = self.get_params(self.degrees, self.translate,
                                                        self.scale, self.shear, (w, h))
        return affine(img, angle, translations, s, shear, self.interpolation, self.fill,
                      self.center)

    def __repr__(self):
        s = f"RandomAffine(degrees={self.degrees}"
        for name in ("translate", "scale", "shear"):
            if getattr(self, name) is not None:
                s += f", {name}={getattr(self, name)}"
        if self.interpolation != InterpolationMode.NEAREST:
            s += f", interpolation={_interp_name(self.interpolation)}"
        if self.fill != 0:
            s += f", fill={self.fill}"
        if self.center is not None:
            s += f", center={self.center}"
        return s + ")"


def _five_crop(img, size):
    h, w = _size(img)
    ch, cw = size
    if ch > h or cw > w:
        raise ValueError(f"Requested crop size {tuple(size)} is bigger than input size "
                         f"{(h, w)}")
    return (_crop(img, 0, 0, ch, cw), _crop(img, 0, w - cw, ch, cw),
            _crop(img, h - ch, 0, ch, cw), _crop(img, h - ch, w - cw, ch, cw),
            _center_crop(img, (ch, cw)))


class FiveCrop:
    """The four corner crops and the central crop of ``size`` (an int or (h, w)): a tuple
    (top-left, top-right, bottom-left, bottom-right, centre), as torchvision's."""

    def __init__(self, size):
        self.size = _setup_size(size, "Please provide only two dimensions (h, w) for size.")

    def __call__(self, img):
        return _five_crop(img, self.size)

    def __repr__(self):
        return f"FiveCrop(size={self.size})"


class TenCrop:
    """FiveCrop of the image and of its mirror image (left-right, or top-bottom with
    ``vertical_flip=True``): a tuple of 10 crops, as torchvision's."""

    def __init__(self, size, vertical_flip: bool = False):
        self.size = _setup_size(size, "Please provide only two dimensions (h, w) for size.")
        self.vertical_flip = vertical_flip

    def __call__(self, img):
        flipped = _vflip(img) if self.vertical_flip else _hflip(img)
        return _five_crop(img, self.size) + _five_crop(flipped, self.size)

    def __repr__(self):
        return f"TenCrop(size={self.size}, vertical_flip={self.vertical_flip})"


# ------------------------------------------------------------------------------------------------
# containers
# ------------------------------------------------------------------------------------------------

class _RandomTransforms:
    def __init__(self, transforms):
        if not isinstance(transforms, Sequence):
            raise TypeError("Argument transforms should be a sequence")
        self.transforms = list(transforms)

    def _inner(self):
        return "".join(f"\n    {t}" for t in self.transforms)


class RandomApply(_RandomTransforms):
    """Apply all of ``transforms``, in order, with probability ``p`` (torchvision's)."""

    def __init__(self, transforms, p: float = 0.5):
        super().__init__(transforms)
        self.p = float(p)

    def __call__(self, img):
        if self.p < _sample_rng().random():
            return img
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self):
        return f"RandomApply(\n    p={self.p}{self._inner()}\n)"


class RandomChoice(_RandomTransforms):
    """Apply one of ``transforms``, picked with the relative weights ``p`` (default equal),
    as torchvision's."""

    def __init__(self, transforms, p=None):
        super().__init__(transforms)
        if p is not None and not isinstance(p, Sequence):
            raise TypeError("Argument p should be a sequence")
        if p is not None and len(p) != len(self.transforms):
            raise ValueError(f"RandomChoice: {len(p)} weights for {len(self.transforms)} "
                             f"transforms")
        self.p = p

    def __call__(self, *args):
        rng = _sample_rng()
        if self.p is None:
            k = int(rng.integers(0, len(self.transforms)))
        else:
            w = np.asarray(self.p, np.float64)
            k = int(rng.choice(len(self.transforms), p=w / w.sum()))
        return self.transforms[k](*args)

    def __repr__(self):
        return f"RandomChoice({self._inner()}\n)(p={self.p})"


class RandomOrder(_RandomTransforms):
    """Apply all of ``transforms`` in a random order (torchvision's)."""

    def __call__(self, img):
        for k in _sample_rng().permutation(len(self.transforms)):
            img = self.transforms[int(k)](img)
        return img

    def __repr__(self):
        return f"RandomOrder({self._inner()}\n)"


# ------------------------------------------------------------------------------------------------
# colour
# ------------------------------------------------------------------------------------------------

class Grayscale:
    """Convert to grayscale with 1 or 3 (repeated) output channels (torchvision's): PIL's
    ``convert("L")`` for PIL images and uint8 arrays (L = 0.299 R + 0.587 G + 0.114 B), the
    tensor formula with 0.2989 / 0.587 / 0.114 for Tensors."""

    def __init__(self, num_output_channels: int = 1):
        if num_output_channels not in (1, 3):
            raise ValueError("num_output_channels should be either 1 or 3")
        self.num_output_channels = num_output_channels

    def __call__(self, img):
        return _grayscale(img, self.num_output_channels)

    def __repr__(self):
        return f"Grayscale(num_output_channels={self.num_output_channels})"


class RandomGrayscale:
    """With probability ``p``, convert to grayscale keeping the number of channels
    (a 3-channel image stays 3-channel), as torchvision's."""

    def __init__(self, p: float = 0.1):
        self.p = float(p)

    def __call__(self, img):
        c = _channels(img)
        if _sample_rng().random() < self.p:
            return _grayscale(img, num_output_channels=c)
        return img

    def __repr__(self):
        return f"RandomGrayscale(p={self.p})"


class RandomInvert:
    """Invert the colours (``bound - x``) with probability ``p`` (torchvision's)."""

    def __init__(self, p: float = 0.5):
        self.p = float(p)

    def __call__(self, img):
        return _invert(img) if _sample_rng().random() < self.p else img

    def __repr__(self):
        return f"RandomInvert(p={self.p})"


class RandomPosterize:
    """Keep only the ``bits`` high bits of each channel (``x & ~(2**(8 - bits) - 1)``), with
    probability ``p`` (torchvision's; PIL's ``ImageOps.posterize``)."""

    def __init__(self, bits: int, p: float = 0.5):
        if not isinstance(bits, numbers.Integral) or not 0 <= bits <= 8:
            raise ValueError(f"The number if bits should be between 0 and 8. Got {bits}")
        self.bits, self.p = int(bits), float(p)

    def __call__(self, img):
        return _posterize(img, self.bits) if _sample_rng().random() < self.p else img

    def __repr__(self):
        return f"RandomPosterize(bits={self.bits},p={self.p})"


class RandomSolarize:
    """Invert every pixel value at or above ``threshold``, with probability ``p``
    (torchvision's; the threshold is on the image's scale: 0..255 for uint8, 0..1 for float
    Tensors)."""

    def __init__(self, threshold: float, p: float = 0.5):
        self.threshold, self.p = threshold, float(p)

    def __call__(self, img):
        return _solarize(img, self.threshold) if _sample_rng().random() < self.p else img

    def __repr__(self):
        return f"RandomSolarize(threshold={self.threshold},p={self.p})"


class RandomAdjustSharpness:
    """Adjust the sharpness by ``sharpness_factor`` (0 blurs, 1 keeps, 2 doubles), with
    probability ``p`` (torchvision's; PIL's ``ImageEnhance.Sharpness``)."""

    def __init__(self, sharpness_factor: float, p: float = 0.5):
        if sharpness_factor < 0:
            raise ValueError("sharpness_factor is not non-negative.")
        self.sharpness_factor, self.p = float(sharpness_factor), float(p)

    def __call__(self, img):
        if _sample_rng().random() < self.p:
            return _enhance(img, "Sharpness", self.sharpness_factor)
        return img

    def __repr__(self):
        return f"RandomAdjustSharpness(sharpness_factor={self.sharpness_factor},p={self.p})"


class RandomAutocontrast:
    """Stretch each channel to the full range, with probability ``p`` (torchvision's; PIL's
    ``ImageOps.autocontrast``)."""

    def __init__(self, p: float = 0.5):
        self.p = float(p)

    def __call__(self, img):
        return _autocontrast(img) if _sample_rng().random() < self.p else img

    def __repr__(self):
        return f"RandomAutocontrast(p={self.p})"


class RandomEqualize:
    """Equalize the histogram, with probability ``p`` (torchvision's; PIL's
    ``ImageOps.equalize``)."""

    def __init__(self, p: float = 0.5):
        self.p = float(p)

    def __call__(self, img):
        return _equalize(img) if _sample_rng().random() < self.p else img

    def __repr__(self):
        return f"RandomEqualize(p={self.p})"


class GaussianBlur:
    """Blur with a Gaussian of ``kernel_size`` (an odd int, or (kx, ky): width, height) and a
    standard deviation drawn uniformly from ``sigma`` (a number: fixed; (min, max): range),
    as torchvision's ``GaussianBlur(kernel_size, sigma=(0.1, 2.0))``; reflect padding."""

    def __init__(self, kernel_size, sigma=(0.1, 2.0)):
        self.kernel_size = _setup_size(kernel_size, "Kernel size should be a tuple/list of "
                                                    "two integers")
        for ks in self.kernel_size:
            if ks <= 0 or ks % 2 == 0:
                raise ValueError("Kernel size value should be an odd and positive number.")
        if isinstance(sigma, numbers.Number):
            if not _is_real(sigma) or not 0 < sigma < math.inf:  # NaN too
                raise ValueError(f"If sigma is a single number, it must be positive (and "
                                 f"finite), got {sigma!r}.")
            sigma = (float(sigma), float(sigma))
        elif isinstance(sigma, Sequence) and len(sigma) == 2:
            if not all(_is_real(v) for v in sigma) or not 0.0 < sigma[0] <= sigma[1] < math.inf:
                raise ValueError(f"sigma values should be positive, finite and of the form "
                                 f"(min, max), got {sigma!r}.")
            sigma = (float(sigma[0]), float(sigma[1]))
        else:
            raise ValueError("sigma should be a single number or a list/tuple with length 2.")
        self.sigma = sigma

    @staticmethod
    def get_params(sigma_min: float, sigma_max: float, rng=None) -> float:
        """The standard deviation, uniform in [sigma_min, sigma_max]."""
        rng = rng if rng is not None else _sample_rng()
        return float(rng.uniform(sigma_min, sigma_max))

    def __call__(self, img):
        s = self.get_params(self.sigma[0], self.sigma[1])
        return gaussian_blur(img, self.kernel_size, (s, s))

    def __repr__(self):
        return f"GaussianBlur(kernel_size={self.kernel_size}, sigma={self.sigma})"


# ------------------------------------------------------------------------------------------------
# Tensors
# ------------------------------------------------------------------------------------------------

class RandomErasing:
    """With probability ``p``, erase a random rectangle of a Tensor (C, H, W) (Zhong et al.,
    2017, "Random Erasing Data Augmentation"), as torchvision's ``RandomErasing(p=0.5,
    scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0, inplace=False)``.

    The rectangle's area is a fraction of the image drawn from ``scale``, its aspect ratio
    (h / w) drawn log-uniformly from ``ratio``; 10 tries, else nothing is erased.
    ``value``: a number, one per channel, or ``"random"`` (standard normal noise per pixel).
    Tensors only (apply after ToTensor): a PIL image or an array is a TypeError."""

    def __init__(self, p=0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0, inplace=False):
        if not isinstance(value, (numbers.Number, str, tuple, list)):
            raise TypeError("Argument value should be either a number or str or a sequence")
        if isinstance(value, str) and value != "random":
            raise ValueError("If value is str, it should be 'random'")
        if not isinstance(scale, Sequence):
            raise TypeError("Scale should be a sequence")
        if not isinstance(ratio, Sequence):
            raise TypeError("Ratio should be a sequence")
        # torchvision draws from these with uniform_(min, max), which needs min <= max
        _min_max(scale, "scale", "RandomErasing")
        _min_max(ratio, "ratio", "RandomErasing", low=0, low_open=True)
        if scale[0] < 0 or scale[1] > 1:
            raise ValueError(f"Scale should be between 0 and 1, got scale={scale!r}")
        if not _is_real(p) or not 0 <= p <= 1:  # NaN too
            raise ValueError(f"Random erasing probability should be between 0 and 1, got "
                             f"p={p!r}")
        self.p, self.scale, self.ratio = float(p), scale, ratio
        self.value, self.inplace = value, inplace

    @staticmethod
    def get_params(img, scale, ratio, value=None, rng=None):
        """(i, j, h, w, v): the rectangle's top, left, height, width and the values to write
        (``value`` None: standard normal noise of shape (C, h, w); else ``value`` (C,) as
        (C, 1, 1)). After 10 misses: (0, 0, H, W, img), which erases nothing."""
        rng = rng if rng is not None else _sample_rng()
        c, ih, iw = img.shape[-3], img.shape[-2], img.shape[-1]
        area = ih * iw
        log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
        for _ in range(10):
            erase_area = area * float(rng.uniform(scale[0], scale[1]))
            aspect = math.exp(float(rng.uniform(log_ratio[0], log_ratio[1])))
            h = int(round(math.sqrt(erase_area * aspect)))
            w = int(round(math.sqrt(erase_area / aspect)))
            if not (h < ih and w < iw):
                continue
            if value is None:
                v = rng.standard_normal((c, h, w)).astype(np.float32)
            else:
                v = np.asarray(value, np.float32)[:, None, None]
            i = int(rng.integers(0, ih - h + 1))
            j = int(rng.integers(0, iw - w + 1))
            return i, j, h, w, v
        return 0, 0, ih, iw, img

    def __call__(self, img):
        if not _is_tensor(img):
            raise TypeError(f"RandomErasing takes a Tensor (C, H, W) -- apply ToTensor() "
                            f"first -- got {type(img).__name__}")
        if img.ndim < 3:
            raise ValueError(f"RandomErasing: expected a Tensor (..., C, H, W), got shape "
                             f"{tuple(img.shape)}")
        rng = _sample_rng()
        if not rng.random() < self.p:
            return img
        if isinstance(self.value, numbers.Number):
            value = [float(self.value)]
        elif isinstance(self.value, str):
            value = None
        else:
            value = [float(v) for v in self.value]
        c = img.shape[-3]
        if value is not None and len(value) not in (1, c):
            raise ValueError(f"If value is a sequence, it should have either a single value or "
                             f"{c} (number of input channels)")
        i, j, h, w, v = self.get_params(img, self.scale, self.ratio, value, rng)
        if v is img:
            return img
        a = img.data if self.inplace else img.data.copy()
        a[..., i:i + h, j:j + w] = _xp(a).asarray(v).astype(a.dtype)
        return img if self.inplace else _tensor_cls()(a)

    def __repr__(self):
        return (f"RandomErasing(p={self.p}, scale={self.scale}, ratio={self.ratio}, "
                f"value={self.value}, inplace={self.inplace})")


class PILToTensor:
    """A PIL image (or an (H, W[, C]) array) -> a Tensor (C, H, W) of the same dtype, not
    scaled (torchvision's PILToTensor; ToTensor scales uint8 to [0, 1])."""

    def __call__(self, pic):
        if _is_pil(pic):
            a = np.asarray(pic)
        elif isinstance(pic, np.ndarray) and pic.ndim in (2, 3):
            a = pic
        else:
            raise TypeError(f"pic should be PIL Image. Got {type(pic)}")
        a = a[:, :, None] if a.ndim == 2 else a
        return _tensor_cls()(np.ascontiguousarray(a.transpose(2, 0, 1)))

    def __repr__(self):
        return "PILToTensor()"


_MODES = {1: (["L", "I;16", "I", "F"], None), 2: (["LA"], "LA"),
          3: (["RGB", "YCbCr", "HSV"], "RGB"), 4: (["RGBA", "CMYK", "RGBX"], "RGBA")}


class ToPILImage:
    """A Tensor (C, H, W) or an array (H, W, C) -> a PIL image (torchvision's). A float
    Tensor is scaled by 255 and truncated to uint8 (``mul(255).byte()``, as torchvision's)
    unless ``mode="F"``; ``mode`` None picks L / LA / RGB / RGBA from the channel count
    (1-channel int16 / int32 / float32 give I;16 / I / F)."""

    def __init__(self, mode=None):
        self.mode = mode

    def __call__(self, pic):
        from PIL import Image

        mode = self.mode
        if _is_tensor(pic):
            a = _host(pic.data)
            if a.ndim not in (2, 3):
                raise ValueError(f"pic should be 2/3 dimensional. Got {a.ndim} dimensions.")
            a = a[None] if a.ndim == 2 else a
            if a.shape[-3] > 4:
                raise ValueError(f"pic should not have > 4 channels. Got {a.shape[-3]} "
                                 f"channels.")
            if a.dtype.kind == "f" and mode != "F":
                a = (a * np.float32(255)).astype(np.uint8)
            npimg = a.transpose(1, 2, 0)
        elif isinstance(pic, np.ndarray):
            if pic.ndim not in (2, 3):
                raise ValueError(f"pic should be 2/3 dimensional. Got {pic.ndim} dimensions.")
            npimg = pic[:, :, None] if pic.ndim == 2 else pic
            if npimg.shape[-1] > 4:
                raise ValueError(f"pic should not have > 4 channels. Got {npimg.shape[-1]} "
                                 f"channels.")
        else:
            raise TypeError(f"pic should be Tensor or ndarray. Got {type(pic)}.")
        c = npimg.shape[2]
        if c == 1:
            npimg = npimg[:, :, 0]
            expected = {np.dtype(np.uint8): "L", np.dtype(np.int16): "I;16",
                        np.dtype(np.int32): "I", np.dtype(np.float32): "F"}.get(npimg.dtype)
            if mode is not None and mode != expected:
                raise ValueError(f"Incorrect mode ({mode}) supplied for input type "
                                 f"{npimg.dtype}. Should be {expected}")
            mode = expected
        else:
            permitted, default = _MODES[c]
            if mode is not None and mode not in permitted:
                raise ValueError(f"Only modes {permitted} are supported for {c}D inputs")
            if mode is None and npimg.dtype == np.uint8:
                mode = default
        if mode is None:
            raise TypeError(f"Input type {npimg.dtype} is not supported")
        npimg = np.ascontiguousarray(npimg)
        if mode == "I;16":
            return Image.frombytes(mode, (npimg.shape[1], npimg.shape[0]),
                                   npimg.astype("<u2").tobytes())
        if mode in ("L", "I", "F", "LA", "RGB", "RGBA"):
            return Image.fromarray(npimg, mode=mode)
        return Image.frombytes(mode, (npimg.shape[1], npimg.shape[0]), npimg.tobytes())

    def __repr__(self):
        return "ToPILImage()" if self.mode is None else f"ToPILImage(mode={self.mode})"


class ConvertImageDtype:
    """Convert a Tensor image to ``dtype``, rescaling the values (torchvision's): integer ->
    float divides by the integer maximum; float -> integer multiplies by ``max + 1 - 1e-3``
    and truncates; integer -> integer shifts bits. float32 -> int32/int64 and float64 ->
    int64 raise RuntimeError (not exact)."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def __call__(self, image):
        if not _is_tensor(image):
            raise TypeError(f"Input img should be Tensor Image. Got {type(image).__name__}")
        a = image.data
        src, dst = a.dtype, self.dtype
        if src == dst:
            return image
        if src.kind == "f":
            if dst.kind == "f":
                return _tensor_cls()(a.astype(dst))
            if (src == np.float32 and dst in (np.int32, np.int64)) or (
                    src == np.float64 and dst == np.int64):
                raise RuntimeError(f"The cast from {src} to {dst} cannot be performed safely.")
            top = float(np.iinfo(dst).max)
            return _tensor_cls()((a * (top + 1.0 - 1e-3)).astype(dst))
        src_max = float(np.iinfo(src).max)
        if dst.kind == "f":
            return _tensor_cls()(a.astype(dst) / dst.type(src_max))
        dst_max = float(np.iinfo(dst).max)
        if src_max > dst_max:  # e.g. int32 -> uint8: drop the low bits
            shift = int(round(math.log2((src_max + 1) / (dst_max + 1))))
            return _tensor_cls()((a >> shift).astype(dst))
        shift = int(round(math.log2((dst_max + 1) / (src_max + 1))))
        return _tensor_cls()((a.astype(dst) << shift))

    def __repr__(self):
        return f"ConvertImageDtype(dtype={self.dtype})"


# ------------------------------------------------------------------------------------------------
# augmentation policies
# ------------------------------------------------------------------------------------------------

def _apply_op(img, op_name, magnitude, interpolation, fill):
    """One operation of the policies, as torchvision's ``_apply_op``: shears are
    ``shear = degrees(atan(magnitude))`` about the top-left corner (the PIL map
    (1, m, 0, 0, 1, 0) of the AutoAugment paper), translations whole pixels, the enhance
    factors ``1 + magnitude``."""
    if op_name == "ShearX":
        return affine(img, 0.0, (0, 0), 1.0, (math.degrees(math.atan(magnitude)), 0.0),
                      interpolation, fill, center=(0, 0))
    if op_name == "ShearY":
        return affine(img, 0.0, (0, 0), 1.0, (0.0, math.degrees(math.atan(magnitude))),
                      interpolation, fill, center=(0, 0))
    if op_name == "TranslateX":
        return affine(img, 0.0, (int(magnitude), 0), 1.0, (0.0, 0.0), interpolation, fill)
    if op_name == "TranslateY":
        return affine(img, 0.0, (0, int(magnitude)), 1.0, (0.0, 0.0), interpolation, fill)
    if op_name == "Rotate":
        return rotate(img, magnitude, interpolation, fill=fill)
    if op_name in ("Brightness", "Color", "Contrast", "Sharpness"):
        return _enhance(img, op_name, 1.0 + magnitude)
    if op_name == "Posterize":
        return _posterize(img, int(magnitude))
    if op_name == "Solarize":
        return _solarize(img, magnitude)
    if op_name == "AutoContrast":
        return _autocontrast(img)
    if op_name == "Equalize":
        return _equalize(img)
    if op_name == "Invert":
        return _invert(img)
    if op_name == "Identity":
        return img
    raise ValueError(f"The provided operator {op_name} is not recognized.")


def _run_as_pil(img, fn, who):
    """Run a whole policy on one 8-bit PIL image (see the module docstring for Tensors)."""
    if _is_pil(img):
        return fn(img)
    return _via_pil(img, fn, who)


class AutoAugmentPolicy(enum.Enum):
    """The AutoAugment policies learned on ImageNet, CIFAR-10 and SVHN."""

    IMAGENET = "imagenet"
    CIFAR10 = "cifar10"
    SVHN = "svhn"


# Each policy: 25 sub-policies of two (operation, probability, magnitude bin of 10) steps
# (Cubuk et al., 2019, appendix; bins as torchvision's).
_POLICIES = {
    AutoAugmentPolicy.IMAGENET: (
        "Posterize .4 8 Rotate .6 9 | Solarize .6 5 AutoContrast .6 - | "
        "Equalize .8 - Equalize .6 - | Posterize .6 7 Posterize .6 6 | "
        "Equalize .4 - Solarize .2 4 | Equalize .4 - Rotate .8 8 | "
        "Solarize .6 3 Equalize .6 - | Posterize .8 5 Equalize 1 - | "
        "Rotate .2 3 Solarize .6 8 | Equalize .6 - Posterize .4 6 | "
        "Rotate .8 8 Color .4 0 | Rotate .4 9 Equalize .6 - | "
        "Equalize 0 - Equalize .8 - | Invert .6 - Equalize 1 - | "
        "Color .6 4 Contrast 1 8 | Rotate .8 8 Color 1 2 | "
        "Color .8 8 Solarize .8 7 | Sharpness .4 7 Invert .6 - | "
        "ShearX .6 5 Equalize 1 - | Color .4 0 Equalize .6 - | "
        "Equalize .4 - Solarize .2 4 | Solarize .6 5 AutoContrast .6 - | "
        "Invert .6 - Equalize 1 - | Color .6 4 Contrast 1 8 | Equalize .8 - Equalize .6 -"),
    AutoAugmentPolicy.CIFAR10: (
        "Invert .1 - Contrast .2 6 | Rotate .7 2 TranslateX .3 9 | "
        "Sharpness .8 1 Sharpness .9 3 | ShearY .5 8 TranslateY .7 9 | "
        "AutoContrast .5 - Equalize .9 - | ShearY .2 7 Posterize .3 7 | "
        "Color .4 3 Brightness .6 7 | Sharpness .3 9 Brightness .7 9 | "
        "Equalize .6 - Equalize .5 - | Contrast .6 7 Sharpness .6 5 | "
        "Color .7 7 TranslateX .5 8 | Equalize .3 - AutoContrast .4 - | "
        "TranslateY .4 3 Sharpness .2 6 | Brightness .9 6 Color .2 8 | "
        "Solarize .5 2 Invert 0 - | Equalize .2 - AutoContrast .6 - | "
        "Equalize .2 - Equalize .6 - | Color .9 9 Equalize .6 - | "
        "AutoContrast .8 - Solarize .2 8 | Brightness .1 3 Color .7 0 | "
        "Solarize .4 5 AutoContrast .9 - | TranslateY .9 9 TranslateY .7 9 | "
        "AutoContrast .9 - Solarize .8 3 | Equalize .8 - Invert .1 - | "
        "TranslateY .7 9 AutoContrast .9 -"),
    AutoAugmentPolicy.SVHN: (
        "ShearX .9 4 Invert .2 - | ShearY .9 8 Invert .7 - | Equalize .6 - Solarize .6 6 | "
        "Invert .9 - Equalize .6 - | Equalize .6 - Rotate .9 3 | "
        "ShearX .9 4 AutoContrast .8 - | ShearY .9 8 Invert .4 - | "
        "ShearY .9 5 Solarize .2 6 | Invert .9 - AutoContrast .8 - | "
        "Equalize .6 - Rotate .9 3 | ShearX .9 4 Solarize .3 3 | ShearY .8 8 Invert .7 - | "
        "Equalize .9 - TranslateY .6 6 | Invert .9 - Equalize .6 - | "
        "Contrast .3 3 Rotate .8 4 | Invert .8 - TranslateY 0 2 | "
        "ShearY .7 6 Solarize .4 8 | Invert .6 - Rotate .8 4 | ShearY .3 7 TranslateX .9 3 | "
        "ShearX .1 6 Invert .6 - | Solarize .7 2 TranslateY .6 7 | "
        "ShearY .8 4 Invert .8 - | ShearX .7 9 TranslateY .8 3 | "
        "ShearY .8 5 AutoContrast .7 - | ShearX .7 2 Invert .1 -"),
}


def _parse_policy(text):
    subs = []
    for sub in text.split("|"):
        w = sub.split()
        subs.append(tuple((w[k], float(w[k + 1]), None if w[k + 2] == "-" else int(w[k + 2]))
                          for k in (0, 3)))
    return subs


def _posterize_bins(num_bins, lowest):
    """8 down to ``8 - lowest`` bits over ``num_bins`` bins, rounded (half to even)."""
    return (8 - np.round(np.arange(num_bins) / ((num_bins - 1) / lowest))).astype(np.int64)


def _space(num_bins, width, height, wide=False):
    """op name -> (magnitudes per bin, signed): torchvision's augmentation spaces (the wide
    one is TrivialAugment's)."""
    lin = lambda hi: np.linspace(0.0, hi, num_bins)  # noqa: E731 - a local shorthand
    if wide:
        geo = {"ShearX": (lin(0.99), True), "ShearY": (lin(0.99), True),
               "TranslateX": (lin(32.0), True), "TranslateY": (lin(32.0), True),
               "Rotate": (lin(135.0), True)}
        enh, post = 0.99, 6
    else:
        geo = {"ShearX": (lin(0.3), True), "ShearY": (lin(0.3), True),
               "TranslateX": (lin(150.0 / 331.0 * width), True),
               "TranslateY": (lin(150.0 / 331.0 * height), True),
               "Rotate": (lin(30.0), True)}
        enh, post = 0.9, 4
    space = dict(geo)
    for name in ("Brightness", "Color", "Contrast", "Sharpness"):
        space[name] = (lin(enh), True)
    space["Posterize"] = (_posterize_bins(num_bins, post), False)
    space["Solarize"] = (np.linspace(255.0, 0.0, num_bins), False)
    for name in ("AutoContrast", "Equalize"):
        space[name] = (np.array(0.0), False)
    return space


class AutoAugment:
    """AutoAugment (Cubuk et al., 2019, "AutoAugment: Learning Augmentation Strategies from
    Data"), as torchvision's ``AutoAugment(policy=AutoAugmentPolicy.IMAGENET,
    interpolation=NEAREST, fill=None)``: pick one of the policy's 25 sub-policies, then apply
    each of its two operations with its probability, at its magnitude bin (of 10), with a
    random sign for signed operations. PIL images in mode L or RGB (see the module docstring
    for arrays and Tensors)."""

    def __init__(self, policy=AutoAugmentPolicy.IMAGENET,
                 interpolation=InterpolationMode.NEAREST, fill=None):
        if not isinstance(policy, AutoAugmentPolicy):
            raise ValueError(f"The provided policy {policy} is not recognized.")
        self.policy = policy
        self.interpolation = _interpolation(interpolation, "AutoAugment")
        self.fill = fill
        self.policies = self._get_policies(policy)

    @staticmethod
    def _get_policies(policy):
        return _parse_policy(_POLICIES[policy])

    def _augmentation_space(self, num_bins, image_size):
        """op name -> (magnitudes, signed) for an image of ``image_size`` = (W, H)."""
        space = _space(num_bins, image_size[0], image_size[1])
        space["Invert"] = (np.array(0.0), False)
        return space

    @staticmethod
    def get_params(transform_num, rng=None):
        """(sub-policy index, two uniform draws in [0, 1), two signs in {0, 1})."""
        rng = rng if rng is not None else _sample_rng()
        return int(rng.integers(0, transform_num)), rng.random(2), rng.integers(0, 2, size=2)

    def __call__(self, img):
        def run(pil):
            transform_id, probs, signs = self.get_params(len(self.policies))
            for i, (op_name, p, magnitude_id) in enumerate(self.policies[transform_id]):
                if probs[i] <= p:
                    magnitudes, signed = self._augmentation_space(10, pil.size)[op_name]
                    magnitude = (float(magnitudes[magnitude_id]) if magnitude_id is not None
                                 else 0.0)
                    if signed and signs[i] == 0:
                        magnitude = -magnitude
                    pil = _apply_op(pil, op_name, magnitude, self.interpolation, self.fill)
            return pil

        return _run_as_pil(img, run, "AutoAugment")

    def __repr__(self):
        return f"AutoAugment(policy={self.policy}, fill={self.fill})"


class RandAugment:
    """RandAugment (Cubuk et al., 2020, "RandAugment: Practical automated data augmentation
    with a reduced search space"), as torchvision's ``RandAugment(num_ops=2, magnitude=9,
    num_magnitude_bins=31, interpolation=NEAREST, fill=None)``: ``num_ops`` operations drawn
    uniformly from 14 (Identity included), each at bin ``magnitude`` of
    ``num_magnitude_bins``, with a random sign for signed operations."""

    def __init__(self, num_ops: int = 2, magnitude: int = 9, num_magnitude_bins: int = 31,
                 interpolation=InterpolationMode.NEAREST, fill=None):
        if not 0 <= magnitude < num_magnitude_bins:
            raise ValueError(f"magnitude should be in [0, num_magnitude_bins - 1 = "
                             f"{num_magnitude_bins - 1}], got {magnitude}")
        self.num_ops, self.magnitude = num_ops, magnitude
        self.num_magnitude_bins = num_magnitude_bins
        self.interpolation = _interpolation(interpolation, "RandAugment")
        self.fill = fill

    def _augmentation_space(self, num_bins, image_size):
        """op name -> (magnitudes, signed) for an image of ``image_size`` = (W, H)."""
        space = {"Identity": (np.array(0.0), False)}
        space.update(_space(num_bins, image_size[0], image_size[1]))
        return space

    def __call__(self, img):
        def run(pil):
            rng = _sample_rng()
            for _ in range(self.num_ops):
                space = self._augmentation_space(self.num_magnitude_bins, pil.size)
                op_name = list(space)[int(rng.integers(0, len(space)))]
                magnitudes, signed = space[op_name]
                magnitude = float(magnitudes[self.magnitude]) if magnitudes.ndim > 0 else 0.0
                if signed and rng.integers(0, 2):
                    magnitude = -magnitude
                pil = _apply_op(pil, op_name, magnitude, self.interpolation, self.fill)
            return pil

        return _run_as_pil(img, run, "RandAugment")

    def __repr__(self):
        return (f"RandAugment(num_ops={self.num_ops}, magnitude={self.magnitude}, "
                f"num_magnitude_bins={self.num_magnitude_bins}, "
                f"interpolation={self.interpolation}, fill={self.fill})")


class TrivialAugmentWide:
    """TrivialAugment Wide (Müller and Hutter, 2021, "TrivialAugment: Tuning-free Yet
    State-of-the-Art Data Augmentation"), as torchvision's ``TrivialAugmentWide(
    num_magnitude_bins=31, interpolation=NEAREST, fill=None)``: one operation drawn
    uniformly from 14 at a uniformly drawn bin of the wide ranges (shear 0.99, translate 32
    pixels, rotate 135 degrees, enhance 0.99, posterize down to 2 bits), random sign."""

    def __init__(self, num_magnitude_bins: int = 31, interpolation=InterpolationMode.NEAREST,
                 fill=None):
        self.num_magnitude_bins = num_magnitude_bins
        self.interpolation = _interpolation(interpolation, "TrivialAugmentWide")
        self.fill = fill

    def _augmentation_space(self, num_bins):
        space = {"Identity": (np.array(0.0), False)}
        space.update(_space(num_bins, 0, 0, wide=True))
        return space

    def __call__(self, img):
        def run(pil):
            rng = _sample_rng()
            space = self._augmentation_space(self.num_magnitude_bins)
            op_name = list(space)[int(rng.integers(0, len(space)))]
            magnitudes, signed = space[op_name]
            magnitude = (float(magnitudes[int(rng.integers(0, len(magnitudes)))])
                         if magnitudes.ndim > 0 else 0.0)
            if signed and rng.integers(0, 2):
                magnitude = -magnitude
            return _apply_op(pil, op_name, magnitude, self.interpolation, self.fill)

        return _run_as_pil(img, run, "TrivialAugmentWide")

    def __repr__(self):
        return (f"TrivialAugmentWide(num_magnitude_bins={self.num_magnitude_bins}, "
                f"interpolation={self.interpolation}, fill={self.fill})")
