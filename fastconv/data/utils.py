"""torchvision.utils: :func:`make_grid` and :func:`save_image`.

``fastconv.data.utils`` stands in for ``torchvision.utils``::

    from fastconv.data.utils import make_grid, save_image
    grid = make_grid(images, nrow=8, padding=2, normalize=True)   # (3, H', W') Tensor
    save_image(images, "batch.png", nrow=8)                       # the same grid, as a PNG

Both take a fastconv Tensor, a NumPy array, or a list of either (all the same shape):
(N, C, H, W) batches, (C, H, W) or (H, W) single images. The grid has the input's kind
(Tensor in, Tensor out, on the input's device; arrays in, array out) and dtype; it is computed
outside autograd, as torchvision's ``@torch.no_grad()`` functions are.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["make_grid", "save_image"]


def _tensor_cls():
    from fastconv.tensor import Tensor

    return Tensor


def _xp(a):
    from fastconv.optim.optimizer import array_module

    return array_module(a)


def _float_into_int_error(dtype) -> RuntimeError:
    """PyTorch's error for a float result written into an integer tensor (its in-place ops)."""
    from fastconv.tensor import _TENSOR_TYPE_NAMES

    name = next((k for k, v in _TENSOR_TYPE_NAMES.items() if v == dtype), str(dtype))
    return RuntimeError(f"result type Float can't be cast to the desired output type {name} "
                        f"(make_grid's normalize and save_image take float images in [0, 1])")


def _as_array(tensor):
    """(the data array, whether the result is a Tensor) of make_grid's input."""
    Tensor = _tensor_cls()
    if isinstance(tensor, Tensor):
        return tensor.data, True
    if isinstance(tensor, np.ndarray):
        return tensor, False
    if isinstance(tensor, list):
        for t in tensor:
            if not isinstance(t, (Tensor, np.ndarray)):
                raise TypeError(f"tensor or list of tensors expected, got a list containing "
                                f"{type(t)}")
        if not tensor:
            raise ValueError("make_grid: the list of images is empty")
        arrays = [t.data if isinstance(t, Tensor) else t for t in tensor]
        xp = _xp(arrays[0])
        return xp.stack([xp.asarray(a) for a in arrays], axis=0), \
            any(isinstance(t, Tensor) for t in tensor)
    raise TypeError(f"tensor or list of tensors expected, got {type(tensor)}")


def make_grid(tensor, nrow: int = 8, padding: int = 2, normalize: bool = False,
              value_range=None, scale_each: bool = False, pad_value: float = 0.0):
    """Lay a batch of images out in a grid (torchvision's ``make_grid``, the same layout).

    The images are placed row by row, ``min(nrow, N)`` per row and ``ceil(N / that)`` rows,
    each image ``padding`` pixels from its neighbours and from the border, on a canvas filled
    with ``pad_value``: shape ``(C, (H + padding) rows + padding, (W + padding) cols +
    padding)``. One-channel images are repeated to three (RGB); a single image (N = 1, or a
    3-D / 2-D input) is returned without padding (sharing the input's memory when nothing
    else changed it, as torchvision's ``squeeze``).

    Args:
        tensor: (N, C, H, W), (C, H, W) or (H, W) Tensor or array, or a list of (C, H, W) images.
        nrow: images per row.
        padding: pixels between images and around the grid.
        normalize: shift and scale to [0, 1]: clamp to ``value_range`` (default: the min and
            max of the input), subtract the low end and divide by ``max(high - low, 1e-5)``.
        value_range: the (min, max) tuple of ``normalize``.
        scale_each: with ``normalize``, each image's own min and max instead of the batch's.
        pad_value: the value of the padding pixels.

    Returns: the grid (C, H', W'), a Tensor for Tensor input and a NumPy array for arrays.
    """
    a, as_tensor = _as_array(tensor)
    xp = _xp(a)
    if a.ndim == 2:  # single image H x W
        a = a[None]
    if a.ndim == 3:  # single image C x H x W
        if a.shape[0] == 1:  # one channel -> three
            a = xp.concatenate((a, a, a), axis=0)
        a = a[None]
    if a.ndim != 4:
        raise ValueError(f"make_grid: expected (N, C, H, W), (C, H, W) or (H, W) images, got "
                         f"shape {tuple(a.shape)}")
    if a.shape[1] == 1:  # one-channel images -> three
        a = xp.concatenate((a, a, a), axis=1)

    if normalize is True:
        if value_range is not None and not isinstance(value_range, tuple):
            raise TypeError("value_range has to be a tuple (min, max) if specified. min and max "
                            "are numbers")
        if a.dtype.kind != "f":
            raise _float_into_int_error(a.dtype)
        scalar = a.dtype.type

        def norm_range(img):
            low, high = value_range if value_range is not None else (float(img.min()),
                                                                     float(img.max()))
            img = xp.clip(img, scalar(low), scalar(high))
            return (img - scalar(low)) / scalar(max(high - low, 1e-5))

        a = xp.stack([norm_range(img) for img in a]) if scale_each is True else norm_range(a)

    if a.shape[0] == 1:
        grid = a[0]
    else:
        nmaps = a.shape[0]
        xmaps = min(nrow, nmaps)
        ymaps = math.ceil(nmaps / xmaps)
        height, width = int(a.shape[2] + padding), int(a.shape[3] + padding)
        grid = xp.full((a.shape[1], height * ymaps + padding, width * xmaps + padding), pad_value,
                       dtype=a.dtype)
        for k in range(nmaps):
            y, x = divmod(k, xmaps)
            grid[:, y * height + padding:(y + 1) * height,
                 x * width + padding:(x + 1) * width] = a[k]
    return _tensor_cls()(grid) if as_tensor else grid


def save_image(tensor, fp, format=None, **kwargs) -> None:
    """Save an image, or a batch as a grid, to a file (torchvision's ``save_image``).

    The grid is :func:`make_grid` ``(tensor, **kwargs)``; its float values in [0, 1] become
    8-bit pixels as ``uint8(clamp(x * 255 + 0.5, 0, 255))`` (rounded to nearest) and are
    written by PIL (RGB for 3 channels, RGBA for 4).

    Args:
        tensor: as :func:`make_grid` takes it (float images in [0, 1]).
        fp: a file name (str or path) or a binary file object.
        format: PIL's format name ("PNG", "JPEG" ...); without it PIL goes by the file name's
            extension, so a file object needs one.
        **kwargs: make_grid's arguments (nrow, padding, normalize, value_range, scale_each,
            pad_value).
    """
    from PIL import Image

    grid = make_grid(tensor, **kwargs)
    a = grid.data if isinstance(grid, _tensor_cls()) else grid
    a = a.get() if hasattr(a, "get") else np.asarray(a)
    if a.dtype.kind != "f":
        raise _float_into_int_error(a.dtype)
    scalar = a.dtype.type
    # Add 0.5 after scaling to [0, 255] to round to the nearest integer (as torchvision)
    ndarr = np.clip(a * scalar(255) + scalar(0.5), 0, 255).transpose(1, 2, 0).astype(np.uint8)
    im = Image.fromarray(np.ascontiguousarray(ndarr))
    im.save(fp, format=format)
