"""Open a path as whichever dataset it holds: CIFAR-10's python version or an image folder."""

from __future__ import annotations

import os

from .cifar import CIFAR10, looks_like_cifar
from .image_folder import ImageFolder

__all__ = ["open_dataset"]


def open_dataset(path: str, train: bool = True, subdir: str | None = None, size=None,
                 download: bool = False, cache_dir: str | None = None):
    """Open ``path`` as CIFAR-10 (python version) or as an image folder, whichever it is.

    CIFAR-10 is recognised by its batch files (``data_batch_1``/``test_batch``,
    in ``path``, in ``path/cifar-10-batches-py`` or inside the archive);
    anything else is read as an :class:`ImageFolder`. For image folders
    ``train`` is ignored (pick the tree with ``subdir``); ``cache_dir`` is
    ImageFolder's disk cache of decoded images.
    """
    if looks_like_cifar(path):
        return CIFAR10(path, train=train, download=False)
    if not os.path.exists(path) and download:
        return CIFAR10(path, train=train, download=True)
    return ImageFolder(path, subdir=subdir, size=size, cache_dir=cache_dir)
