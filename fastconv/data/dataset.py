"""What every dataset here shares: the error type, in-memory datasets and subsets, and the
per-class validation split.

Every dataset holds its images as ``uint8`` arrays of shape (H, W, C) (channels last, as
decoded) and its labels as ``int64``. Besides the usual ``len(ds)`` and
``ds[i] -> (image, label)`` each one has ``get_batch(indices) -> (images (N, H, W, C) uint8,
labels (N,) int64)``, which :class:`fastconv.data.DataLoader` uses to gather a whole batch
with one fancy-indexing copy instead of N Python calls. ``targets`` (all labels as an array)
and ``classes`` (class names, index = label) follow torchvision.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["ArrayDataset", "DataError", "Subset", "is_tarball", "split_per_class"]


class DataError(ValueError):
    """A dataset is missing, malformed or inconsistent (the message says which file and why)."""



def is_tarball(path: str) -> bool:
    return os.path.isfile(path) and path.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2",
                                                   ".tar.xz"))



class ArrayDataset:
    """A dataset over in-memory arrays: ``images`` (N, H, W, C) uint8 and ``labels`` (N,).

    Also the base of :class:`CIFAR10`; useful for tests and for data already in memory.
    """

    def __init__(self, images: np.ndarray, labels, classes=None):
        images = np.asarray(images)
        labels = np.asarray(labels)
        if images.ndim == 3:  # (N, H, W) grey images
            images = images[..., None]
        if images.ndim != 4:
            raise DataError(f"ArrayDataset: images must be (N, H, W, C), got shape {images.shape}")
        if labels.shape != (images.shape[0],):
            raise DataError(f"ArrayDataset: {images.shape[0]} images but labels have shape "
                            f"{labels.shape}")
        if labels.dtype.kind not in "iu":
            raise DataError(f"ArrayDataset: labels must be integers, got {labels.dtype}")
        self.images = images
        self.targets = labels.astype(np.int64)
        if classes is None:
            classes = [str(i) for i in range(int(self.targets.max()) + 1 if len(labels) else 0)]
        self.classes = list(classes)
        t = self.targets
        if len(t) and (t.min() < 0 or t.max() >= len(self.classes)):
            raise DataError(f"ArrayDataset: labels must lie in [0, {len(self.classes)}), got "
                            f"[{self.targets.min()}, {self.targets.max()}]")

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i):
        return self.images[i], int(self.targets[i])

    def get_batch(self, indices):
        indices = np.asarray(indices, dtype=np.int64)
        return self.images[indices], self.targets[indices]

    @property
    def image_shape(self) -> tuple:
        """(H, W, C) of every image."""
        return tuple(self.images.shape[1:])

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self)} images of {self.image_shape}, "
                f"{len(self.classes)} classes)")


class Subset:
    """The images of ``dataset`` at ``indices`` (shares the parent's cache)."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        self.targets = np.asarray(dataset.targets)[self.indices]
        self.classes = dataset.classes

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):
        return self.dataset[int(self.indices[i])]

    def get_batch(self, indices):
        return self.dataset.get_batch(self.indices[np.asarray(indices, dtype=np.int64)])

    @property
    def image_shape(self) -> tuple:
        return self.dataset.image_shape

    def __repr__(self) -> str:
        return f"Subset({len(self)} of {self.dataset!r})"


def split_per_class(targets, per_class: int, mode: str = "last", seed: int = 0):
    """Split indices into (train, val) holding back ``per_class`` images of every class.

    ``mode="last"`` takes the last ``per_class`` images of each class in dataset
    order (deterministic, as the data README suggests); ``mode="random"`` draws
    them with ``seed``. Raises DataError when a class has too few images.
    Returns two sorted int64 index arrays.
    """
    targets = np.asarray(targets)
    val = []
    rng = np.random.default_rng(seed)
    for c in np.unique(targets):
        idx = np.flatnonzero(targets == c)
        if len(idx) <= per_class:
            raise DataError(f"split_per_class: class {c} has {len(idx)} images, cannot hold back "
                            f"{per_class} for validation and still train on it")
        if mode == "last":
            val.append(idx[-per_class:])
        elif mode == "random":
            val.append(rng.choice(idx, per_class, replace=False))
        else:
            raise ValueError(f"split_per_class: mode must be 'last' or 'random', got {mode!r}")
    val = np.sort(np.concatenate(val)) if val else np.zeros(0, np.int64)
    mask = np.ones(len(targets), bool)
    mask[val] = False
    return np.flatnonzero(mask).astype(np.int64), val.astype(np.int64)
