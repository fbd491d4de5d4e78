"""Data: CIFAR-10 and image-folder datasets, batch transforms and a threaded loader.

    from fastconv.data import ImageFolder, DataLoader, split_per_class, Subset, make_transform

    ds = ImageFolder("cifar10-jpeg-train.tar.gz")          # read straight from the archive
    train_idx, val_idx = split_per_class(ds.targets, 500)   # last 500 per class held back
    loader = DataLoader(Subset(ds, train_idx), batch_size=128, shuffle=True, seed=0,
                        transform=make_transform("crop-flip", train=True), num_workers=2)
    for x, y in loader:   # x: float32 (N, 3, 32, 32), y: int64 (N,)
        ...

Images are decoded once and cached as one uint8 (N, H, W, C) array; transforms
augment a whole batch with vectorised NumPy; the loader prepares batches ahead
in threads, with shuffling and augmentation seeded by (seed, epoch, batch).

torchvision-style use (per-sample ``(image, label)`` with ``transform=``):
:mod:`fastconv.data.datasets` (``datasets.CIFAR10``, ``datasets.ImageFolder``) for
``torchvision.datasets``, :mod:`fastconv.data.transforms` for
``torchvision.transforms`` (the same module: per-sample on one image, per-batch on
a 4-D array; :mod:`fastconv.data.transforms.v2` for ``torchvision.transforms.v2``),
:mod:`fastconv.data.utils` for ``torchvision.utils`` (``make_grid``, ``save_image``), and
:class:`fastconv.utils.data.DataLoader` to batch them. The
classes above are the zoo's: raw uint8 arrays, batch transforms, the fast loader.
"""

from . import datasets, transforms, utils
from .cifar import CIFAR10, CIFAR10_CLASSES, CIFAR10_MD5, CIFAR10_URL
from .dataset import ArrayDataset, DataError, Subset, split_per_class
from .datasets import open_dataset
from .download import check_md5, download_url
from .image_folder import ImageFolder
from .loader import DataLoader
from .transforms import make_transform

__all__ = [
    "CIFAR10",
    "CIFAR10_CLASSES",
    "CIFAR10_MD5",
    "CIFAR10_URL",
    "ArrayDataset",
    "DataError",
    "DataLoader",
    "ImageFolder",
    "Subset",
    "check_md5",
    "datasets",
    "download_url",
    "make_transform",
    "open_dataset",
    "split_per_class",
    "transforms",
    "utils",
]
