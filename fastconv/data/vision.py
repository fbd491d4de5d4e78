"""``torchvision.datasets.VisionDataset``: the base class of the torchvision-style data sets,
and ``StandardTransform``, the ``transforms(image, target)`` made from ``transform`` and
``target_transform``."""

from __future__ import annotations

import os

from fastconv.utils.data.dataset import Dataset

__all__ = ["StandardTransform", "VisionDataset"]


def _format_transform_repr(transform, head: str) -> list[str]:
    lines = repr(transform).splitlines()
    return [f"{head}{lines[0]}"] + [" " * len(head) + line for line in lines[1:]]


class StandardTransform:
    """``transform`` on the input and ``target_transform`` on the target, as one callable
    ``(input, target) -> (input, target)``; either may be None (left as it is)."""

    def __init__(self, transform=None, target_transform=None):
        self.transform = transform
        self.target_transform = target_transform

    def __call__(self, input, target):
        if self.transform is not None:
            input = self.transform(input)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return input, target

    def __repr__(self) -> str:
        body = [type(self).__name__]
        if self.transform is not None:
            body += _format_transform_repr(self.transform, "Transform: ")
        if self.target_transform is not None:
            body += _format_transform_repr(self.target_transform, "Target transform: ")
        return "\n".join(body)


class VisionDataset(Dataset):
    """``torchvision.datasets.VisionDataset(root=None, transforms=None, transform=None,
    target_transform=None)``: the base class of image data sets.

    ``transforms`` is a callable on ``(image, target)``; ``transform`` / ``target_transform``
    act on one of them each, and are combined into ``transforms`` (a
    :class:`StandardTransform`). Passing ``transforms`` together with either of the others is
    a ValueError. A string ``root`` has ``~`` expanded. Subclasses define ``__getitem__`` and
    ``__len__``, and may add lines to the ``repr`` with ``extra_repr``.
    """

    _repr_indent = 4

    def __init__(self, root=None, transforms=None, transform=None, target_transform=None):
        if isinstance(root, str):
            root = os.path.expanduser(root)
        self.root = root
        self._set_transforms(transforms, transform, target_transform)

    def _set_transforms(self, transforms=None, transform=None, target_transform=None) -> None:
        has_separate_transform = transform is not None or target_transform is not None
        if transforms is not None and has_separate_transform:
            raise ValueError("Only transforms or transform/target_transform can be passed as "
                             "argument")
        self.transform = transform
        self.target_transform = target_transform
        if has_separate_transform:
            transforms = StandardTransform(transform, target_transform)
        self.transforms = transforms

    def __getitem__(self, index):
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        body = [f"Number of datapoints: {len(self)}"]
        if getattr(self, "root", None) is not None:
            body.append(f"Root location: {self.root}")
        body += self.extra_repr().splitlines()
        if getattr(self, "transforms", None) is not None:
            body.append(repr(self.transforms))  # only its first line indented, as torchvision
        return "\n".join([f"Dataset {type(self).__name__}"]
                         + [" " * self._repr_indent + line for line in body])
