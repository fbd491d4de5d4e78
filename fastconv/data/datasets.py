"""torchvision-style data sets, and :func:`open_dataset` for the zoo.

``fastconv.data.datasets`` stands in for ``torchvision.datasets``:

    from fastconv.data import datasets, transforms
    train = datasets.CIFAR10("data", train=True, download=True,
                             transform=transforms.Compose([transforms.RandomCrop(32, padding=4),
                                                           transforms.RandomHorizontalFlip(),
                                                           transforms.ToTensor(),
                                                           transforms.Normalize(mean, std)]))
    img, label = train[0]          # the transform applied to a PIL image; label an int
    loader = fastconv.utils.data.DataLoader(train, batch_size=128, shuffle=True, num_workers=2)

:class:`CIFAR10` and :class:`ImageFolder` here take torchvision's arguments and
defaults (``download=False``, ``transform``, ``target_transform``, ImageFolder's
``loader`` and ``is_valid_file``) and return one ``(image, target)`` per index,
the image a PIL image (RGB) before the transform, as torchvision's. They are
subclasses of :class:`fastconv.data.CIFAR10` / :class:`fastconv.data.ImageFolder`
-- the zoo's classes, which return raw uint8 (H, W, C) arrays and feed the fast
batch loader :class:`fastconv.data.DataLoader` -- so they read the same sources
(directories, the official archive, ``.tar.gz`` trees read without unpacking)
and keep ``get_batch``: raw arrays without a transform, the transformed samples
stacked with one.

:class:`VisionDataset` and :class:`DatasetFolder` are torchvision's base classes (with
``find_classes``, ``make_dataset``, ``IMG_EXTENSIONS`` and ``has_file_allowed_extension`` of
``torchvision.datasets.folder``); ImageFolder is a DatasetFolder and CIFAR10 a VisionDataset.
:class:`FakeData` gives random PIL images made from the index, for smoke tests.

Differences from torchvision: ``targets`` is an int64 NumPy array (torchvision: a
list of ints); ImageFolder's ``loader`` is used for directories only (an archive's
members are decoded with PIL, and a custom loader with an archive is an error).
"""

from __future__ import annotations

import io
import os

import numpy as np

from . import cifar as _cifar
from . import image_folder as _image_folder
from .cifar import looks_like_cifar
from .dataset import DataError
from .fakedata import FakeData
from .folder import (
    IMG_EXTENSIONS,
    DatasetFolder,
    find_classes,
    has_file_allowed_extension,
    is_image_file,
    make_dataset,
)
from .vision import StandardTransform, VisionDataset

__all__ = ["CIFAR10", "IMG_EXTENSIONS", "DatasetFolder", "FakeData", "ImageFolder",
           "StandardTransform", "VisionDataset", "default_loader", "find_classes",
           "has_file_allowed_extension", "is_image_file", "make_dataset", "open_dataset",
           "pil_loader"]


def pil_loader(path: str):
    """torchvision's loader: the image at ``path`` as an RGB PIL image."""
    from PIL import Image

    with open(path, "rb") as f:
        img = Image.open(f)
        return img.convert("RGB")


default_loader = pil_loader


def _apply(sample, target, transform, target_transform):
    if transform is not None:
        sample = transform(sample)
    if target_transform is not None:
        target = target_transform(target)
    return sample, target


def _stack(samples):
    """Stack transformed samples for get_batch (arrays, Tensors or numbers)."""
    items = [s.data if hasattr(s, "data") and hasattr(s, "requires_grad") else np.asarray(s)
             for s in samples]
    return np.stack(items)


class _TransformedBatches:
    """``get_batch`` of a per-sample dataset: the zoo's one-copy batch path when no transform
    is set, else each sample through its transforms, stacked."""

    def get_batch(self, indices):
        if self.transform is None and self.target_transform is None:
            return super().get_batch(indices)
        items = [self[int(i)] for i in np.asarray(indices).ravel()]
        return _stack([s for s, _ in items]), np.asarray([t for _, t in items])


class CIFAR10(_TransformedBatches, _cifar.CIFAR10, VisionDataset):
    """CIFAR-10 as ``torchvision.datasets.CIFAR10(root, train=True, transform=None,
    target_transform=None, download=False)``: ``ds[i]`` is ``(transform(PIL image),
    target_transform(label))``. ``data`` is the uint8 (N, 32, 32, 3) array, ``classes``
    and ``class_to_idx`` name the labels."""

    def __init__(self, root, train: bool = True, transform=None, target_transform=None,
                 download: bool = False):
        self._set_transforms(None, transform, target_transform)
        super().__init__(os.fspath(root), train=train, download=download)

    @property
    def data(self) -> np.ndarray:
        return self.images

    @property
    def class_to_idx(self) -> dict:
        return {c: i for i, c in enumerate(self.classes)}

    def __getitem__(self, index):
        from PIL import Image

        img = Image.fromarray(self.images[index])
        return _apply(img, int(self.targets[index]), self.transform, self.target_transform)

    def __repr__(self) -> str:
        return (f"Dataset CIFAR10\n    Number of datapoints: {len(self)}\n    Root location: "
                f"{self.root}\n    Split: {'Train' if self.train else 'Test'}"
                + (f"\n    Transform: {self.transform!r}" if self.transform is not None else ""))


class ImageFolder(_TransformedBatches, _image_folder.ImageFolder, DatasetFolder):
    """``root/<class>/<image>`` as ``torchvision.datasets.ImageFolder(root, transform=None,
    target_transform=None, loader=default_loader, is_valid_file=None, allow_empty=False)``:
    ``ds[i]`` is ``(transform(loader(path)), target_transform(class index))``, classes in
    sorted folder order. ``root`` may also be a ``.tar``/``.tar.gz`` archive of such a
    tree. ``samples``/``imgs`` list ``(path, class index)``; images may differ in size.

    A :class:`DatasetFolder` (so ``find_classes`` and ``make_dataset`` are there, as
    torchvision's, for any directory), but it lists its files its own way, archives included:
    hidden files and folders are skipped, and ``extensions`` is the list of image endings it
    reads (``None`` with ``is_valid_file``)."""

    def __init__(self, root, transform=None, target_transform=None, loader=None,
                 is_valid_file=None, allow_empty: bool = False):
        root = os.fspath(root)
        self._set_transforms(None, transform, target_transform)
        self.loader = loader if loader is not None else default_loader
        self.extensions = _image_folder.IMAGE_EXTENSIONS if is_valid_file is None else None
        if loader is not None and not os.path.isdir(root):
            raise ValueError("ImageFolder: a custom loader reads files by path; it cannot be "
                             f"used with the archive {root} (its members are decoded with PIL)")
        try:
            super().__init__(root)
        except DataError as e:
            if allow_empty and "is empty" in str(e):
                raise DataError(f"{e} (allow_empty=True is not supported: every class folder "
                                "needs an image)") from e
            raise
        if is_valid_file is not None:
            keep = [k for k, f in enumerate(self.files) if is_valid_file(self._path(k))]
            self.files = [self.files[k] for k in keep]
            self.targets = self.targets[keep]
            self._have = self._have[keep]

    @property
    def class_to_idx(self) -> dict:
        return {c: i for i, c in enumerate(self.classes)}

    def _path(self, i: int) -> str:
        if self._raw is None:
            return os.path.join(self.root, self.files[i])
        return f"{self.root}:{self.files[i]}"

    @property
    def samples(self) -> list:
        return [(self._path(k), int(t)) for k, t in enumerate(self.targets)]

    imgs = samples

    def _load_pil(self, i: int):
        from PIL import Image

        if self._raw is None:
            return self.loader(os.path.join(self.root, self.files[i]))
        raw = self._raw.get(self.files[i])
        if raw is None:  # decoded into the batch cache already: its bytes were dropped
            return Image.fromarray(np.asarray(self._cache[i]).squeeze())
        with Image.open(io.BytesIO(raw)) as im:
            return im.convert("RGB")

    def __getitem__(self, index):
        i = int(index)
        if i < 0:
            i += len(self)
        return _apply(self._load_pil(i), int(self.targets[i]), self.transform,
                      self.target_transform)

    def __repr__(self) -> str:
        return (f"Dataset ImageFolder\n    Number of datapoints: {len(self)}\n    Root location: "
                f"{self.root}"
                + (f"\n    Transform: {self.transform!r}" if self.transform is not None else ""))


def open_dataset(path: str, train: bool = True, subdir: str | None = None, size=None,
                 download: bool = False, cache_dir: str | None = None):
    """Open ``path`` as CIFAR-10 (python version) or as an image folder, whichever it is
    (the zoo's classes: :class:`fastconv.data.CIFAR10`, :class:`fastconv.data.ImageFolder`).

    CIFAR-10 is recognised by its batch files (``data_batch_1``/``test_batch``,
    in ``path``, in ``path/cifar-10-batches-py`` or inside the archive);
    anything else is read as an image folder. For image folders
    ``train`` is ignored (pick the tree with ``subdir``); ``cache_dir`` is
    ImageFolder's disk cache of decoded images.
    """
    if looks_like_cifar(path):
        return _cifar.CIFAR10(path, train=train, download=False)
    if not os.path.exists(path) and download:
        return _cifar.CIFAR10(path, train=train, download=True)
    return _image_folder.ImageFolder(path, subdir=subdir, size=size, cache_dir=cache_dir)
