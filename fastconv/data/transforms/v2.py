"""torchvision.transforms.v2: the transforms of :mod:`fastconv.data.transforms` under v2's
calling convention, plus v2's own (ToImage, ToDtype, CutMix, MixUp ...).

``fastconv.data.transforms.v2`` stands in for ``torchvision.transforms.v2``::

    from fastconv.data.transforms import v2
    train_tf = v2.Compose([v2.RandomResizedCrop(224), v2.RandomHorizontalFlip(), v2.ToImage(),
                           v2.ToDtype(fastconv.float32, scale=True), v2.Normalize(mean, std)])
    cutmix_or_mixup = v2.RandomChoice([v2.CutMix(num_classes=10), v2.MixUp(num_classes=10)])
    for images, labels in loader:                  # images (N, C, H, W), labels int64 (N,)
        images, labels = cutmix_or_mixup(images, labels)   # labels now float32 (N, 10)

What it holds (names, arguments and defaults as torchvision's):

* v2's own -- ToImage, ToDtype, ToPureTensor, Identity, the batch transforms CutMix and MixUp,
  the containers Compose, RandomApply, RandomChoice, RandomOrder, Lambda (with ``*types``),
  ConvertImageDtype (``ToDtype(dtype, scale=True)``, as v2 defines it), ToTensor (deprecated
  in v2: it warns, then converts as ever) and ``Transform``, the base class for one's own;
* every other torchvision transform of :mod:`fastconv.data.transforms` (Resize, RandomCrop,
  ColorJitter, RandomErasing, AutoAugment ... InterpolationMode, AutoAugmentPolicy), as a
  subclass that takes v2's inputs; results and random draws are those of the class it
  extends (``isinstance(v2.RandomCrop(8), transforms.RandomCrop)`` holds).

v2's calling convention. A transform takes one input or several -- ``t(img)``,
``t(img, label)``, ``t((img, target))``, ``t({"image": img, "label": 3})`` -- looks through
nested tuples, lists and dicts, transforms the image among them and returns the same structure
with everything else passed through. What counts as the image is torchvision's rule, with
fastconv's NumPy images added: PIL images and NumPy images ((H, W), (H, W, C), or an
(N, H, W, C) batch) are images; a Tensor is the image only when the sample holds neither, and
then only the first Tensor (later ones -- label tensors -- pass through). One input that is
not a container behaves exactly as in :mod:`fastconv.data.transforms`, and so does the batch
form ``t(x, rng)`` on a 4-D NumPy array (containers hand the ``rng`` on and draw from it).
A transform of :mod:`fastconv.data.transforms` itself put in a v2 container is called the
same way; any other callable gets all the inputs, as in torchvision.

Differences from torchvision:

* There are no tv_tensors (Image, Video, BoundingBoxes, Mask): every Tensor is a "pure"
  tensor, so ToPureTensor changes nothing and ``ToDtype``'s dict form is keyed by Python
  types (``{fastconv.Tensor: fastconv.float32, "others": None}``).
* The transforms extended from :mod:`fastconv.data.transforms` draw their random parameters
  per image, so a sample holding two images (an image and its mask) is refused with a
  ValueError; torchvision would transform both with the same parameters.
* CutMix and MixUp also take NumPy arrays -- images (N, C, H, W) and labels (N,), as
  :class:`fastconv.data.DataLoader` yields them -- and return NumPy arrays then. They work on
  the arrays, outside autograd.
* fastconv has no float64 Tensors: ``ToDtype(fastconv.float64)`` gives float32 with a
  ``DtypeWarning`` (see :mod:`fastconv.dtypes`).

Randomness comes from :func:`fastconv.utils.data.sample_rng` (``fastconv.manual_seed``, or a
DataLoader worker's own generator), as for :mod:`fastconv.data.transforms`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from fastconv.data import augment as _augment
from fastconv.data import transforms as _v1
from fastconv.data.transforms import (
    AutoAugmentPolicy,
    InterpolationMode,
    _is_batch,
    _is_pil,
    _sample_rng,
    _tensor_cls,
    _xp,
)

__all__ = [
    "AutoAugment",
    "AutoAugmentPolicy",
    "CenterCrop",
    "ColorJitter",
    "Compose",
    "ConvertImageDtype",
    "CutMix",
    "FiveCrop",
    "GaussianBlur",
    "Grayscale",
    "Identity",
    "InterpolationMode",
    "Lambda",
    "MixUp",
    "Normalize",
    "PILToTensor",
    "Pad",
    "RandAugment",
    "RandomAdjustSharpness",
    "RandomAffine",
    "RandomApply",
    "RandomAutocontrast",
    "RandomChoice",
    "RandomCrop",
    "RandomEqualize",
    "RandomErasing",
    "RandomGrayscale",
    "RandomHorizontalFlip",
    "RandomInvert",
    "RandomOrder",
    "RandomPosterize",
    "RandomResizedCrop",
    "RandomRotation",
    "RandomSolarize",
    "RandomVerticalFlip",
    "Resize",
    "TenCrop",
    "ToDtype",
    "ToImage",
    "ToPILImage",
    "ToPureTensor",
    "ToTensor",
    "Transform",
    "TrivialAugmentWide",
]

# ------------------------------------------------------------------------------------------------
# samples: nested tuples / lists / dicts of images, labels and anything else
# ------------------------------------------------------------------------------------------------


def _flatten(tree):
    """(leaves, spec): the leaves of nested tuples, lists and dicts in order, and what
    :func:`_unflatten` needs to rebuild the structure around new leaves."""
    if isinstance(tree, (tuple, list)):
        kind, items = type(tree), list(tree)
    elif isinstance(tree, Mapping):
        kind, items = (type(tree), list(tree.keys())), list(tree.values())
    else:
        return [tree], None
    leaves, children = [], []
    for item in items:
        sub, spec = _flatten(item)
        leaves += sub
        children.append((spec, len(sub)))
    return leaves, (kind, children)


def _unflatten(leaves, spec):
    if spec is None:
        return leaves[0]
    kind, children = spec
    items, i = [], 0
    for child, n in children:
        items.append(_unflatten(leaves[i:i + n], child))
        i += n
    if isinstance(kind, tuple):  # a mapping: (its type, its keys)
        cls, keys = kind
        try:
            return cls(zip(keys, items))
        except TypeError:  # a mapping type that is not built from pairs
            return dict(zip(keys, items))
    if hasattr(kind, "_fields"):  # a namedtuple
        return kind(*items)
    return kind(items)


def _is_tensor(x) -> bool:
    return isinstance(x, _tensor_cls())


def _is_image_array(x) -> bool:
    """A NumPy image as fastconv's transforms take it: (H, W), (H, W, C) or a batch."""
    return isinstance(x, np.ndarray) and x.ndim in (2, 3, 4)


def _is_image_like(x) -> bool:
    return _is_tensor(x) or _is_pil(x) or _is_image_array(x)


def _needs_transform(leaves, accepts):
    """Which leaves a transform acts on: those ``accepts`` takes, except that Tensors are
    images only when the sample holds no PIL image nor NumPy image, and then only the first
    accepted Tensor (torchvision's rule for plain tensors: the rest are labels and such)."""
    tensor_is_image = not any(_is_pil(x) or _is_image_array(x) for x in leaves)
    needs = []
    for x in leaves:
        take = bool(accepts(x))
        if take and _is_tensor(x):
            take, tensor_is_image = tensor_is_image, False
        needs.append(take)
    return needs


def _is_batch_form(inputs) -> bool:
    """fastconv's batch form ``t(x, rng)`` (or ``t(x)``) on a 4-D NumPy batch."""
    if len(inputs) == 1:
        return _is_batch(inputs[0])
    return (len(inputs) == 2 and _is_batch(inputs[0])
            and (inputs[1] is None or isinstance(inputs[1], np.random.Generator)))


def _sample_of(inputs):
    """The sample of a call: its one input, or the tuple of several (torchvision's); in the
    batch form the batch alone (the rng is v1's argument, not part of the sample)."""
    if not inputs:
        raise TypeError("a transform takes at least one input")
    if _is_batch_form(inputs):
        return inputs[0]
    return inputs if len(inputs) > 1 else inputs[0]


def _apply_to_image(fn, who, sample):
    """``fn`` (one image in, one out) applied to the image of ``sample``, the rest passed
    through."""
    leaves, spec = _flatten(sample)
    idx = [i for i, n in enumerate(_needs_transform(leaves, _is_image_like)) if n]
    if len(idx) > 1:
        raise ValueError(f"{who}: the sample holds {len(idx)} images; fastconv's transforms "
                         "draw their random parameters per image and take one image per call "
                         "(torchvision would transform them all with the same parameters)")
    for i in idx:
        leaves[i] = fn(leaves[i])
    return _unflatten(leaves, spec)


_V1_MODULES = ("fastconv.data.transforms", "fastconv.data.augment")


def _call_one(t, inputs):
    """Call one transform of a v2 container with the container's inputs: a transform of
    fastconv.data.transforms (v1: one image per call) acts on the image among several inputs;
    v2 transforms and any other callable get them all, as in torchvision."""
    if len(inputs) > 1 and not isinstance(t, Transform) and type(t).__module__ in _V1_MODULES:
        return _apply_to_image(t, type(t).__name__, inputs)
    return t(*inputs)


def _chain(transforms, inputs):
    """Apply ``transforms`` in turn (torchvision's Compose): with several inputs each
    transform's output is the next one's inputs; in the batch form ``(x, rng)`` the rng is
    handed on."""
    if _is_batch_form(inputs):
        x, rng = inputs[0], (inputs[1] if len(inputs) == 2 else None)
        for t in transforms:
            x = t(x, rng)
        return x
    needs_unpacking = len(inputs) > 1
    outputs = inputs if needs_unpacking else inputs[0]
    for t in transforms:
        outputs = _call_one(t, inputs)
        inputs = outputs if needs_unpacking else (outputs,)
    return outputs


def _passthrough(inputs):
    return inputs[0] if _is_batch_form(inputs) or len(inputs) == 1 else inputs


def _rng_of(inputs):
    """The generator a container draws from: the batch form's own, else sample_rng()."""
    if _is_batch_form(inputs) and len(inputs) == 2 and inputs[1] is not None:
        return inputs[1]
    return _sample_rng()


# ------------------------------------------------------------------------------------------------
# the base class, and the v1 transforms under v2's convention
# ------------------------------------------------------------------------------------------------


class Transform:
    """Base class of v2 transforms (torchvision's ``v2.Transform``). A subclass defines
    ``transform(inpt, params)`` -- one leaf of the sample in, its replacement out -- and, if
    random, ``make_params(flat_inputs)``, drawn once per call from the leaves to be
    transformed and shared by all of them. ``_accepts(leaf)`` says which leaves are
    transformed (default: Tensors, PIL images and NumPy images, under the rule of the module
    docstring)."""

    def _accepts(self, x) -> bool:
        return _is_image_like(x)

    def make_params(self, flat_inputs) -> dict:
        return {}

    def transform(self, inpt, params):
        raise NotImplementedError(f"{type(self).__name__} must define transform()")

    def __call__(self, *inputs):
        leaves, spec = _flatten(_sample_of(inputs))
        needs = _needs_transform(leaves, self._accepts)
        params = self.make_params([x for x, n in zip(leaves, needs) if n])
        return _unflatten([self.transform(x, params) if n else x
                           for x, n in zip(leaves, needs)], spec)

    def __repr__(self):
        return f"{type(self).__name__}()"


def _call_v1_on_image(self, *inputs):
    """``__call__`` of the v1 transforms under v2's convention: a plain input (or the batch
    form) goes to the v1 class as it is, a sample of several inputs has its image
    transformed."""
    v1_call = self._v1_cls.__call__
    if len(inputs) == 1 and not isinstance(inputs[0], (tuple, list, Mapping)):
        return v1_call(self, inputs[0])
    if _is_batch_form(inputs):
        return v1_call(self, *inputs)
    return _apply_to_image(lambda img: v1_call(self, img), type(self).__name__,
                           _sample_of(inputs))


def _v2_of(cls, **namespace):
    """``cls`` of fastconv.data.transforms as a v2 transform: a subclass with v2's
    ``__call__`` (and its arguments, defaults, random draws and repr)."""
    doc = (cls.__doc__ or "").rstrip() + (
        "\n\n    (fastconv.data.transforms.v2: also takes v2's inputs -- several, or nested "
        "tuples / lists / dicts -- and transforms the image among them.)")
    ns = {"__call__": _call_v1_on_image, "__doc__": doc, "__module__": __name__,
          "__qualname__": cls.__name__, "_v1_cls": cls, **namespace}
    return type(cls.__name__, (cls, Transform), ns)


CenterCrop = _v2_of(_v1.CenterCrop)
ColorJitter = _v2_of(_v1.ColorJitter)
Normalize = _v2_of(_v1.Normalize)
RandomCrop = _v2_of(_v1.RandomCrop)
RandomHorizontalFlip = _v2_of(_v1.RandomHorizontalFlip)
RandomResizedCrop = _v2_of(_v1.RandomResizedCrop)
Resize = _v2_of(_v1.Resize)
AutoAugment = _v2_of(_augment.AutoAugment)
FiveCrop = _v2_of(_augment.FiveCrop)
GaussianBlur = _v2_of(_augment.GaussianBlur)
Grayscale = _v2_of(_augment.Grayscale)
Pad = _v2_of(_augment.Pad)
PILToTensor = _v2_of(_augment.PILToTensor)
RandAugment = _v2_of(_augment.RandAugment)
RandomAdjustSharpness = _v2_of(_augment.RandomAdjustSharpness)
RandomAffine = _v2_of(_augment.RandomAffine)
RandomAutocontrast = _v2_of(_augment.RandomAutocontrast)
RandomEqualize = _v2_of(_augment.RandomEqualize)
RandomErasing = _v2_of(_augment.RandomErasing)
RandomGrayscale = _v2_of(_augment.RandomGrayscale)
RandomInvert = _v2_of(_augment.RandomInvert)
RandomPosterize = _v2_of(_augment.RandomPosterize)
RandomRotation = _v2_of(_augment.RandomRotation)
RandomSolarize = _v2_of(_augment.RandomSolarize)
RandomVerticalFlip = _v2_of(_augment.RandomVerticalFlip)
TenCrop = _v2_of(_augment.TenCrop)
ToPILImage = _v2_of(_augment.ToPILImage)
TrivialAugmentWide = _v2_of(_augment.TrivialAugmentWide)


def _to_tensor_init(self):
    warnings.warn("The transform `ToTensor()` is deprecated and will be removed in a future "
                  "release. Instead, please use `v2.Compose([v2.ToImage(), "
                  "v2.ToDtype(fastconv.float32, scale=True)])`.Output is equivalent up to "
                  "float precision.", stacklevel=2)


ToTensor = _v2_of(_v1.ToTensor, __init__=_to_tensor_init)


# ------------------------------------------------------------------------------------------------
# containers
# ------------------------------------------------------------------------------------------------


def _check_transforms(transforms):
    if not isinstance(transforms, Sequence):
        raise TypeError("Argument transforms should be a sequence of callables")


class Compose(_v1.Compose, Transform):
    """Apply ``transforms`` in order (torchvision v2's Compose): with several inputs each
    transform's outputs are the next one's inputs; a 4-D NumPy batch (``t(x, rng)``) goes
    through as :class:`fastconv.data.transforms.Compose` takes it."""

    def __init__(self, transforms):
        _check_transforms(transforms)
        if not transforms:
            raise ValueError("Pass at least one transform")
        super().__init__(transforms)

    def __call__(self, *inputs):
        return _chain(self.transforms, inputs)


class RandomApply(_augment.RandomApply, Transform):
    """Apply all of ``transforms``, in order, with probability ``p`` (torchvision v2's: the
    draw ``u >= p`` skips them)."""

    def __init__(self, transforms, p: float = 0.5):
        _check_transforms(transforms)
        if not 0.0 <= p <= 1.0:
            raise ValueError("`p` should be a floating point value in the interval [0.0, 1.0].")
        super().__init__(transforms, p)

    def __call__(self, *inputs):
        if _rng_of(inputs).random() >= self.p:
            return _passthrough(inputs)
        return _chain(self.transforms, inputs)


class RandomChoice(_augment.RandomChoice, Transform):
    """Apply one of ``transforms``, picked with probabilities ``p`` (relative weights, default
    equal; normalised to sum to 1 as torchvision v2 stores them)."""

    def __init__(self, transforms, p=None):
        _check_transforms(transforms)
        if p is None:
            p = [1] * len(transforms)
        elif len(p) != len(transforms):
            raise ValueError(f"Length of p doesn't match the number of transforms: {len(p)} != "
                             f"{len(transforms)}")
        total = sum(p)
        self.transforms = list(transforms)
        self.p = [prob / total for prob in p]

    def __call__(self, *inputs):
        k = int(_rng_of(inputs).choice(len(self.transforms), p=self.p))
        return _chain([self.transforms[k]], inputs)


class RandomOrder(_augment.RandomOrder, Transform):
    """Apply all of ``transforms`` in a random order."""

    def __init__(self, transforms):
        _check_transforms(transforms)
        super().__init__(transforms)

    def __call__(self, *inputs):
        order = _rng_of(inputs).permutation(len(self.transforms))
        return _chain([self.transforms[int(k)] for k in order], inputs)


class Lambda(_v1.Lambda, Transform):
    """Apply ``lambd`` to every leaf of the sample whose type is one of ``types`` (default:
    any type), as torchvision v2's Lambda (Tensors under the first-Tensor rule)."""

    def __init__(self, lambd, *types):
        super().__init__(lambd)
        self.types = types or (object,)

    def _accepts(self, x) -> bool:
        return isinstance(x, self.types)

    def transform(self, inpt, params):
        return self.lambd(inpt)

    __call__ = Transform.__call__


class Identity(Transform):
    """Return the input(s) unchanged."""

    def __call__(self, *inputs):
        return _sample_of(inputs)


# ------------------------------------------------------------------------------------------------
# type and dtype conversions
# ------------------------------------------------------------------------------------------------


class ToImage(Transform):
    """A PIL image or a NumPy (H, W[, C]) array -> a Tensor (C, H, W) of the same dtype (uint8
    for 8-bit images), not scaled; a Tensor passes through ((H, W) becomes (1, H, W)). As
    torchvision v2's ToImage, with fastconv Tensors for tv_tensors.Image."""

    def _accepts(self, x) -> bool:
        return _is_tensor(x) or _is_pil(x) or (isinstance(x, np.ndarray) and x.ndim >= 2)

    def transform(self, inpt, params):
        return _to_image(inpt)


def _to_image(inpt):
    Tensor = _tensor_cls()
    if isinstance(inpt, np.ndarray):
        if inpt.ndim > 3:
            raise ValueError(f"ToImage: a NumPy image is (H, W) or (H, W, C), got shape "
                             f"{inpt.shape}")
        return Tensor(np.ascontiguousarray(np.atleast_3d(inpt).transpose(2, 0, 1)).copy())
    if _is_pil(inpt):
        t = _augment.PILToTensor()(inpt)
        return t if t.data.flags.writeable else Tensor(t.data.copy())
    if isinstance(inpt, Tensor):
        if inpt.ndim < 2:
            raise ValueError(f"ToImage: an image Tensor has at least 2 dimensions, got shape "
                             f"{tuple(inpt.shape)}")
        return inpt if inpt.ndim > 2 else Tensor(inpt.data[None])
    raise TypeError(f"Input can either be a pure Tensor, a numpy array, or a PIL image, but got "
                    f"{type(inpt)} instead.")


class ToPureTensor(Transform):
    """torchvision's ToPureTensor turns tv_tensors into plain tensors; fastconv's Tensors are
    all plain, so everything passes through unchanged."""

    def __call__(self, *inputs):
        return _sample_of(inputs)


def _torch_type_name(dtype) -> str:
    """PyTorch's scalar-type name of a dtype (Float, Long, Byte ...), as its errors print."""
    from fastconv.tensor import _TENSOR_TYPE_NAMES

    return next((k for k, v in _TENSOR_TYPE_NAMES.items() if v == dtype), str(dtype))


_VALUE_BITS = {np.dtype(np.uint8): 8, np.dtype(np.int8): 7, np.dtype(np.int16): 15,
               np.dtype(np.uint16): 16, np.dtype(np.int32): 31, np.dtype(np.int64): 63}


def _max_value(dtype) -> float:
    return 1.0 if dtype == np.bool_ else float(np.iinfo(dtype).max)


def _to_dtype(t, dtype, scale: bool):
    """torchvision's ``to_dtype_image``: a plain cast, or with ``scale`` the value range
    mapped too -- int -> float multiplies by 1 / max, float -> int multiplies by
    ``max + 1 - 1e-3`` and truncates, int -> int shifts bits."""
    Tensor = _tensor_cls()
    a = t.data
    src = np.dtype(a.dtype)
    if src == dtype:
        return t
    if not scale or (src.kind == "f" and dtype.kind == "f"):
        return Tensor(a.astype(dtype))
    if src.kind == "f":
        if (src == np.float32 and dtype in (np.int32, np.int64)) or (
                src == np.float64 and dtype == np.int64):
            raise RuntimeError(f"The conversion from {src} to {dtype} cannot be performed "
                               f"safely.")
        return Tensor((a * src.type(_max_value(dtype) + 1.0 - 1e-3)).astype(dtype))
    if dtype.kind == "f":
        return Tensor(a.astype(dtype) * dtype.type(1.0 / _max_value(src)))
    for d in (src, dtype):
        if d not in _VALUE_BITS:
            raise TypeError(f"Number of value bits is only defined for integer dtypes, but got "
                            f"{d}.")
    bits_in, bits_out = _VALUE_BITS[src], _VALUE_BITS[dtype]
    if bits_in > bits_out:
        return Tensor((a >> (bits_in - bits_out)).astype(dtype))
    return Tensor(a.astype(dtype) << (bits_out - bits_in))


def _as_dtype(dtype):
    return None if dtype is None else np.dtype(dtype)


class ToDtype(Transform):
    """Convert image Tensors to ``dtype`` (torchvision v2's ``ToDtype(dtype, scale=False)``).

    ``scale=False`` casts; ``scale=True`` also maps the value range: uint8 [0, 255] -> float32
    [0, 1] (times 1/255), float -> integer (times ``max + 1 - 1e-3``, truncated), integer ->
    integer (bit shifts); float32 -> int32/int64 (and float64 -> int64) raise RuntimeError.
    ``dtype`` a dtype converts the image Tensor of the sample (other leaves pass); a dict maps
    leaf types to dtypes (``"others"``: every other type; a value None: left alone)."""

    def __init__(self, dtype, scale: bool = False):
        if isinstance(dtype, Mapping):
            dtype = {k: _as_dtype(v) for k, v in dtype.items()}
        else:
            dtype = np.dtype(dtype)
        self.dtype, self.scale = dtype, scale

    def _accepts(self, x) -> bool:  # torchvision's default: tensors and PIL images
        return _is_tensor(x) or _is_pil(x)

    def transform(self, inpt, params):
        if isinstance(self.dtype, Mapping):
            if type(inpt) in self.dtype:
                dtype = self.dtype[type(inpt)]
            elif "others" in self.dtype:
                dtype = self.dtype["others"]
            else:
                raise ValueError(
                    f"No dtype was specified for type {type(inpt)}. If you only need to convert "
                    f"the dtype of images or videos, you can just pass e.g. "
                    f"dtype=fastconv.float32. If you're passing a dict as dtype, you can use "
                    f"\"others\" as a catch-all key e.g. dtype={{fastconv.Tensor: "
                    f"fastconv.int64, \"others\": None}} to pass-through the rest of the inputs.")
        elif not _is_tensor(inpt):
            return inpt
        else:
            dtype = self.dtype
        if dtype is None:
            if self.scale and _is_tensor(inpt):
                warnings.warn("scale was set to True but no dtype was specified for images or "
                              "videos: no scaling will be done.", stacklevel=3)
            return inpt
        if not _is_tensor(inpt):
            raise TypeError(f"ToDtype converts Tensors, got {type(inpt).__name__} (apply "
                            f"ToImage() first)")
        return _to_dtype(inpt, dtype, self.scale)

    def __repr__(self):
        return f"ToDtype(dtype={self.dtype}, scale={self.scale})"


class ConvertImageDtype(_augment.ConvertImageDtype, Transform):
    """Convert image Tensors to ``dtype`` with scaling: torchvision v2's ConvertImageDtype,
    the same as ``ToDtype(dtype, scale=True)`` (int -> float multiplies by 1 / max, where
    :class:`fastconv.data.transforms.ConvertImageDtype` divides by max: equal to within an
    ulp). Leaves other than Tensors pass through."""

    def __init__(self, dtype=np.float32):
        super().__init__(dtype)

    def _accepts(self, x) -> bool:
        return _is_tensor(x)

    def transform(self, inpt, params):
        return _to_dtype(inpt, self.dtype, True)

    __call__ = Transform.__call__


# ------------------------------------------------------------------------------------------------
# CutMix and MixUp: batch transforms
# ------------------------------------------------------------------------------------------------


def _is_array_or_tensor(x) -> bool:
    return _is_tensor(x) or isinstance(x, np.ndarray)


def _data(x):
    return x.data if _is_tensor(x) else x


def _like(out, x):
    return _tensor_cls()(out) if _is_tensor(x) else out


def _find_labels_default_heuristic(inputs):
    """torchvision's default labels_getter: the second item of a tuple / list (or the
    first key named "labels", else containing "label", case-insensitively, of a dict there or
    of the sample itself)."""
    if isinstance(inputs, (tuple, list)):
        inputs = inputs[1]
    if _is_array_or_tensor(inputs):
        return inputs
    if not isinstance(inputs, Mapping):  # torchvision's error type: ValueError
        raise ValueError(f"When using the default labels_getter, the input passed to forward "  # noqa: TRY004
                         f"must be a dictionary or a two-tuple whose second item is a "
                         f"dictionary or a tensor, but got {type(inputs).__name__} instead.")
    keys = list(inputs.keys())
    key = next((k for k in keys if isinstance(k, str) and k.lower() == "labels"), None)
    if key is None:
        key = next((k for k in keys if isinstance(k, str) and "label" in k.lower()), None)
    if key is None:
        raise ValueError("Could not infer where the labels are in the sample. Try passing a "
                         "callable as the labels_getter parameter?If there are no labels in the "
                         "sample by design, pass labels_getter=None.")
    return inputs[key]


def _parse_labels_getter(labels_getter):
    if isinstance(labels_getter, str) and labels_getter == "default":
        return _find_labels_default_heuristic
    if callable(labels_getter):
        return labels_getter
    if labels_getter is None:
        return lambda _: None
    raise ValueError(f"labels_getter should either be 'default', a callable, or None, but got "
                     f"{labels_getter}.")


class _BaseMixUpCutMix(Transform):
    """What CutMix and MixUp share: the Beta(alpha, alpha) mixing weight, finding and checking
    the labels, and mixing them: one-hot (N, num_classes) rows, each mixed with the previous
    row (the batch rolled by one) -- ``lam * y + (1 - lam) * roll(y, 1)``."""

    def __init__(self, *, alpha: float = 1.0, num_classes=None, labels_getter="default"):
        alpha = float(alpha)
        if not alpha > 0:
            raise ValueError(f"{type(self).__name__}: alpha must be positive (Beta(alpha, alpha) "
                             f"needs concentrations > 0), got {alpha}")
        self.alpha = alpha
        self.num_classes = num_classes
        self._labels_getter = _parse_labels_getter(labels_getter)

    def __call__(self, *inputs):
        sample = _sample_of(inputs)
        leaves, spec = _flatten(sample)
        if any(_is_pil(x) for x in leaves):
            raise ValueError(f"{type(self).__name__}() does not support PIL images, bounding "
                             f"boxes, keypoints and masks.")
        labels = self._labels_getter(sample)
        if not _is_array_or_tensor(labels):
            raise ValueError(f"The labels must be a tensor, but got {type(labels)} instead.")
        if labels.ndim not in (1, 2):
            raise ValueError(f"labels should be index based with shape (batch_size,) or "
                             f"probability based with shape (batch_size, num_classes), but got a "
                             f"tensor of shape {tuple(labels.shape)} instead.")
        if labels.ndim == 2 and self.num_classes is not None and \
                labels.shape[-1] != self.num_classes:
            raise ValueError(f"When passing 2D labels, the number of elements in last dimension "
                             f"must match num_classes: {labels.shape[-1]} != "
                             f"{self.num_classes}. You can Leave num_classes to None.")
        if labels.ndim == 1 and self.num_classes is None:
            raise ValueError("num_classes must be passed if the labels are index-based (1D)")
        # the images: the first Tensor / array that is not the labels (torchvision: the first
        # plain tensor); anything else passes through
        image = next((i for i, x in enumerate(leaves)
                      if x is not labels and _is_array_or_tensor(x)), None)
        params = {"labels": labels, "batch_size": labels.shape[0],
                  **self.make_params([] if image is None else [leaves[image]])}
        out = [self.transform(x, params) if (x is labels or i == image) else x
               for i, x in enumerate(leaves)]
        return _unflatten(out, spec)

    def _sample_lam(self, rng) -> float:
        # a float32 value, as torchvision's (its Beta distribution samples float32 tensors)
        return float(np.float32(rng.beta(self.alpha, self.alpha)))

    def _check_image(self, inpt, *, batch_size: int):
        if inpt.ndim != 4:
            raise ValueError(f"Expected a batched input with 4 dims, but got {inpt.ndim} "
                             f"dimensions instead.")
        if inpt.shape[0] != batch_size:
            raise ValueError(f"The batch size of the image or video does not match the batch "
                             f"size of the labels: {inpt.shape[0]} != {batch_size}.")

    def _mixup_label(self, label, *, lam: float):
        a = _data(label)
        xp = _xp(a)
        if a.ndim == 1:  # class indices -> one-hot, with torch's one_hot checks
            if a.dtype != np.int64:
                raise RuntimeError("one_hot is only applicable to index tensor of type "
                                   "LongTensor.")
            n = int(self.num_classes)
            if a.size and int(a.min()) < 0:
                raise RuntimeError("Class values must be non-negative.")
            if n == -1:
                n = int(a.max()) + 1
            elif a.size and int(a.max()) >= n:
                raise RuntimeError("Class values must be smaller than num_classes.")
            a = (a[:, None] == xp.arange(n)).astype(np.float32)
        elif a.dtype.kind != "f":
            a = a.astype(np.float32)
        s = a.dtype.type
        return _like(xp.roll(a, 1, axis=0) * s(1.0 - lam) + a * s(lam), label)

    def __repr__(self):
        return f"{type(self).__name__}(alpha={self.alpha}, num_classes={self.num_classes})"


class MixUp(_BaseMixUpCutMix):
    """MixUp on a batch: ``images, labels = MixUp(num_classes=K)(images, labels)``.

    Zhang et al., 2018, "mixup: Beyond Empirical Risk Minimization" (arXiv:1710.09412), as
    torchvision v2's MixUp: one ``lam ~ Beta(alpha, alpha)`` per call; each image becomes
    ``lam * x[i] + (1 - lam) * x[i - 1]`` (the batch rolled by one, so shuffle the batches) and
    each label the same mix of the one-hot rows, float32 (N, num_classes).

    Args:
        alpha: the Beta distribution's parameter (default 1: lam uniform in [0, 1]).
        num_classes: the one-hot width; may be None only for labels already (N, K).
        labels_getter: "default" (the second input, or a "labels"-like key of a dict), a
            callable taking the sample and returning the labels, or None.

    Images: a float (N, C, H, W) Tensor (or NumPy array); labels: int64 (N,) class indices or
    float (N, K) probabilities. Errors as torchvision's (labels not int64, not 1-D/2-D, images
    not 4-D, batch sizes that differ, num_classes missing).
    """

    def make_params(self, flat_inputs) -> dict:
        return {"lam": self._sample_lam(_sample_rng())}

    def transform(self, inpt, params):
        lam = params["lam"]
        if inpt is params["labels"]:
            return self._mixup_label(inpt, lam=lam)
        self._check_image(inpt, batch_size=params["batch_size"])
        a = _data(inpt)
        if a.dtype.kind != "f":  # torch multiplies in place: a float result into an int tensor
            raise RuntimeError(f"result type Float can't be cast to the desired output type "
                               f"{_torch_type_name(a.dtype)}")
        s = a.dtype.type
        return _like(_xp(a).roll(a, 1, axis=0) * s(1.0 - lam) + a * s(lam), inpt)


class CutMix(_BaseMixUpCutMix):
    """CutMix on a batch: ``images, labels = CutMix(num_classes=K)(images, labels)``.

    Yun et al., 2019, "CutMix: Regularization Strategy to Train Strong Classifiers with
    Localizable Features" (arXiv:1905.04899), as torchvision v2's CutMix: one
    ``lam ~ Beta(alpha, alpha)`` and one box per call -- centre ``(r_x, r_y)`` uniform over
    the pixels, half-sides ``int(r W)``, ``int(r H)`` with ``r = sqrt(1 - lam) / 2``, clipped
    to the image -- in which every image gets the pixels of the previous image of the batch
    (rolled by one). The labels are mixed with the area actually kept,
    ``lam = 1 - box area / (H W)``: ``lam * onehot(y[i]) + (1 - lam) * onehot(y[i - 1])``.

    Arguments, inputs and errors as :class:`MixUp`'s; the images may be of any dtype.
    ``make_params([images])`` draws ``{"box": (x1, y1, x2, y2), "lam_adjusted": lam}``.
    """

    def make_params(self, flat_inputs) -> dict:
        rng = _sample_rng()
        lam = self._sample_lam(rng)
        if not flat_inputs:
            raise TypeError("No image, video, mask, bounding box of keypoint was found in the "
                            "sample")
        if flat_inputs[0].ndim < 2:
            raise ValueError(f"Expected a batched input with 4 dims, but got "
                             f"{flat_inputs[0].ndim} dimensions instead.")
        H, W = (int(s) for s in flat_inputs[0].shape[-2:])
        r_x = int(rng.integers(W))
        r_y = int(rng.integers(H))
        r = 0.5 * math.sqrt(1.0 - lam)
        r_w_half, r_h_half = int(r * W), int(r * H)
        x1, y1 = max(r_x - r_w_half, 0), max(r_y - r_h_half, 0)
        x2, y2 = min(r_x + r_w_half, W), min(r_y + r_h_half, H)
        lam_adjusted = float(1.0 - (x2 - x1) * (y2 - y1) / (W * H))
        return {"box": (x1, y1, x2, y2), "lam_adjusted": lam_adjusted}

    def transform(self, inpt, params):
        if inpt is params["labels"]:
            return self._mixup_label(inpt, lam=params["lam_adjusted"])
        self._check_image(inpt, batch_size=params["batch_size"])
        x1, y1, x2, y2 = params["box"]
        a = _data(inpt)
        out = a.copy()
        out[..., y1:y2, x1:x2] = _xp(a).roll(a[..., y1:y2, x1:x2], 1, axis=0)
        return _like(out, inpt)
