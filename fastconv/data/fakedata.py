"""``torchvision.datasets.FakeData``: random images for smoke tests, made from the index."""

from __future__ import annotations

import numpy as np

from .vision import StandardTransform, VisionDataset

__all__ = ["FakeData"]

_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


class FakeData(VisionDataset):
    """``torchvision.datasets.FakeData(size=1000, image_size=(3, 224, 224), num_classes=10,
    transform=None, target_transform=None, random_offset=0)``: ``size`` random images.

    ``ds[i]`` is ``(transform(image), target_transform(label))``: the image a PIL image of
    ``image_size`` ``(C, H, W)`` (or ``(H, W)``: one channel; C = 1, 2, 3, 4 give the modes L,
    LA, RGB, RGBA), as fastconv's CIFAR10 and ImageFolder return theirs, and the label an int
    in ``[0, num_classes)``. Both are drawn from a generator seeded with
    ``i + random_offset``, so an index always gives the same item and the global random state
    is left alone; another ``random_offset`` gives another data set.

    The pixels are made as torchvision makes them (standard normal noise times 255, cut to
    an integer and wrapped to uint8, as ``ToPILImage`` does to a float tensor), from NumPy's
    generator: the values differ from torchvision's, which draws from torch's. Unlike
    torchvision's, ``target_transform`` is given the label as an int (torchvision: a 0-d
    tensor) and its result is returned as it is.
    """

    def __init__(self, size: int = 1000, image_size=(3, 224, 224), num_classes: int = 10,
                 transform=None, target_transform=None, random_offset: int = 0):
        super().__init__(None, transform=transform, target_transform=target_transform)
        shape = tuple(int(s) for s in image_size)
        if len(shape) == 2:
            shape = (1,) + shape
        if len(shape) != 3 or shape[0] not in _MODES or min(shape) < 1:
            raise ValueError("FakeData: image_size must be (C, H, W) with C in 1..4, or (H, W), "
                             f"got {tuple(image_size)}")
        if int(num_classes) < 1:
            raise ValueError(f"FakeData: num_classes must be at least 1, got {num_classes}")
        self.size = int(size)
        self.num_classes = int(num_classes)
        self.image_size = image_size
        self.random_offset = int(random_offset)
        self._shape = shape

    def _draw(self, index: int):
        """(uint8 (H, W, C) image, label) of item ``index``."""
        rng = np.random.default_rng((index + self.random_offset) % 2 ** 64)
        x = rng.standard_normal(self._shape, dtype=np.float32)
        target = int(rng.integers(0, self.num_classes))
        pixels = (np.trunc(x * np.float32(255)).astype(np.int64) & 0xFF).astype(np.uint8)
        return pixels.transpose(1, 2, 0), target

    def __getitem__(self, index):
        i = int(index)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"{type(self).__name__} index out of range")
        from PIL import Image

        pixels, target = self._draw(i)
        c = pixels.shape[2]
        img = Image.fromarray(pixels[:, :, 0] if c == 1 else pixels)  # mode from C: _MODES
        # the attributes at call time, as torchvision reads them
        return StandardTransform(self.transform, self.target_transform)(img, target)

    def __len__(self) -> int:
        return self.size
