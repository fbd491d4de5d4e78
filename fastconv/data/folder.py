"""``torchvision.datasets.DatasetFolder`` and the helpers of ``torchvision.datasets.folder``:
``root/<class>/<file>`` trees of any file type, read by a ``loader`` given the path.

    from fastconv.data import datasets
    ds = datasets.DatasetFolder("spectra", loader=np.load, extensions=(".npy",))
    x, y = ds[0]      # loader(path) -> transform, class index -> target_transform

:class:`fastconv.data.datasets.ImageFolder` is a subclass (it keeps its own scanning, which
also reads ``.tar`` archives and skips hidden files and folders)."""

from __future__ import annotations

import os

from .vision import StandardTransform, VisionDataset

__all__ = ["IMG_EXTENSIONS", "DatasetFolder", "find_classes", "has_file_allowed_extension",
           "is_image_file", "make_dataset"]

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def has_file_allowed_extension(filename: str, extensions) -> bool:
    """Whether ``filename`` ends (case-insensitively) with ``extensions`` (a string or a
    tuple of strings)."""
    return filename.lower().endswith(extensions if isinstance(extensions, str)
                                     else tuple(extensions))


def is_image_file(filename: str) -> bool:
    """Whether ``filename`` has one of torchvision's image extensions (IMG_EXTENSIONS)."""
    return has_file_allowed_extension(filename, IMG_EXTENSIONS)


def find_classes(directory) -> tuple[list[str], dict[str, int]]:
    """``(classes, class_to_idx)``: the sorted names of the folders in ``directory``, and each
    name's index. A FileNotFoundError when there is none."""
    classes = sorted(entry.name for entry in os.scandir(directory) if entry.is_dir())
    if not classes:
        raise FileNotFoundError(f"Couldn't find any class folder in {directory}.")
    return classes, {cls_name: i for i, cls_name in enumerate(classes)}


def make_dataset(directory, class_to_idx=None, extensions=None, is_valid_file=None,
                 allow_empty: bool = False) -> list[tuple[str, int]]:
    """``[(path, class index), ...]`` of the files under ``directory/<class>/`` (sub-folders
    included, links followed), class by class in sorted name order, files sorted.

    Exactly one of ``extensions`` (the allowed file endings) and ``is_valid_file`` (a
    predicate on the path) selects the files. ``class_to_idx`` defaults to
    :func:`find_classes`; a class without any file is a FileNotFoundError unless
    ``allow_empty``.
    """
    directory = os.path.expanduser(directory)
    if class_to_idx is None:
        _, class_to_idx = find_classes(directory)
    elif not class_to_idx:
        raise ValueError("'class_to_index' must have at least one entry to collect any samples.")
    if (extensions is None) == (is_valid_file is None):
        raise ValueError("Both extensions and is_valid_file cannot be None or not None at the "
                         "same time")
    if extensions is not None:
        def is_valid_file(path: str) -> bool:
            return has_file_allowed_extension(path, extensions)

    instances, available_classes = [], set()
    for target_class in sorted(class_to_idx):
        class_index = class_to_idx[target_class]
        target_dir = os.path.join(directory, target_class)
        if not os.path.isdir(target_dir):
            continue
        for root, _, fnames in sorted(os.walk(target_dir, followlinks=True)):
            for fname in sorted(fnames):
                path = os.path.join(root, fname)
                if is_valid_file(path):
                    instances.append((path, class_index))
                    available_classes.add(target_class)
    empty_classes = set(class_to_idx) - available_classes
    if empty_classes and not allow_empty:
        msg = f"Found no valid file for the classes {', '.join(sorted(empty_classes))}. "
        if extensions is not None:
            msg += ("Supported extensions are: "
                    f"{extensions if isinstance(extensions, str) else ', '.join(extensions)}")
        raise FileNotFoundError(msg)
    return instances


class DatasetFolder(VisionDataset):
    """``torchvision.datasets.DatasetFolder(root, loader, extensions=None, transform=None,
    target_transform=None, is_valid_file=None, allow_empty=False)``: the files of
    ``root/<class>/...``; ``ds[i]`` is ``(transform(loader(path)),
    target_transform(class index))``.

    Attributes, as torchvision's: ``classes`` (sorted folder names), ``class_to_idx``,
    ``samples`` (``[(path, class index), ...]``), ``targets`` (a list of class indices),
    ``loader``, ``extensions``. Subclasses change how classes are found or files listed by
    overriding :meth:`find_classes` / :meth:`make_dataset`.
    """

    def __init__(self, root, loader, extensions=None, transform=None, target_transform=None,
                 is_valid_file=None, allow_empty: bool = False):
        super().__init__(root, transform=transform, target_transform=target_transform)
        classes, class_to_idx = self.find_classes(self.root)
        samples = self.make_dataset(self.root, class_to_idx=class_to_idx, extensions=extensions,
                                    is_valid_file=is_valid_file, allow_empty=allow_empty)
        self.loader = loader
        self.extensions = extensions
        self.classes = classes
        self.class_to_idx = class_to_idx
        self.samples = samples
        self.targets = [s[1] for s in samples]

    @staticmethod
    def make_dataset(directory, class_to_idx, extensions=None, is_valid_file=None,
                     allow_empty: bool = False) -> list[tuple[str, int]]:
        """:func:`make_dataset`, with ``class_to_idx`` required (the one :meth:`find_classes`
        gave, which a subclass may have overridden)."""
        if class_to_idx is None:
            raise ValueError("The class_to_idx parameter cannot be None.")
        return make_dataset(directory, class_to_idx, extensions=extensions,
                            is_valid_file=is_valid_file, allow_empty=allow_empty)

    def find_classes(self, directory) -> tuple[list[str], dict[str, int]]:
        """:func:`find_classes`: the folders of ``directory`` as the classes."""
        return find_classes(directory)

    def __getitem__(self, index):
        path, target = self.samples[index]
        sample = self.loader(path)
        # the attributes at call time, as torchvision reads them
        return StandardTransform(self.transform, self.target_transform)(sample, target)

    def __len__(self) -> int:
        return len(self.samples)
