"""Rearranging entries, as PyTorch's top-level helpers: ``tile``, ``rot90``, ``flipud``,
``fliplr``, ``tensor_split`` (and ``hsplit`` / ``vsplit`` / ``dsplit``), ``dstack``,
``column_stack``, ``row_stack``, ``atleast_1d/2d/3d``, ``select``, ``take``, ``put``,
``index_put``.

Each is a composition of differentiable Tensor ops (views, cat, gather, index_add, setitem),
so gradients and both backends follow from those.
"""

from __future__ import annotations

import math

import numpy as np

from fastconv.ops import arith


def _tensor(x, op, name="input"):
    from fastconv.tensor import Tensor

    if not isinstance(x, Tensor):
        raise TypeError(f"{op}(): argument '{name}' must be Tensor, not {type(x).__name__}")
    return x


def tile(input, dims):
    """Repeat the tensor ``dims[i]`` times along each dim; fewer dims than the tensor has
    are padded with ones in front (``numpy.tile``)."""
    _tensor(input, "tile")
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    dims = (1,) * (input.ndim - len(dims)) + dims
    return input.repeat(*dims)


def rot90(input, k: int = 1, dims=(0, 1)):
    """Rotate by 90 degrees ``k`` times in the plane of ``dims``, from the first towards
    the second."""
    _tensor(input, "rot90")
    dims = tuple(dims)
    if len(dims) != 2:
        raise RuntimeError(f"expected total rotation dims == 2, but got dims = {len(dims)}")
    if input.ndim < 2:
        raise RuntimeError(f"expected total dims >= 2, but got total dims = {input.ndim}")
    d0, d1 = arith._normalise_dims(dims[0], input.ndim)[0], \
        arith._normalise_dims(dims[1], input.ndim)[0]
    if d0 == d1:
        raise RuntimeError(f"expected rotation dims to be different, but got dim0 = {d0} and "
                           f"dim1 = {d1}")
    k %= 4
    if k == 1:
        return input.flip(d1).transpose(d0, d1)
    if k == 2:
        return input.flip(d0, d1)
    if k == 3:
        return input.flip(d0).transpose(d0, d1)
    return input.clone()


def flipud(input):
    """Flip the first dim (up/down)."""
    _tensor(input, "flipud")
    if input.ndim < 1:
        raise RuntimeError("Input must be >= 1-d.")
    return input.flip(0)


def fliplr(input):
    """Flip the second dim (left/right)."""
    _tensor(input, "fliplr")
    if input.ndim < 2:
        raise RuntimeError("Input must be >= 2-d.")
    return input.flip(1)


def tensor_split(input, indices_or_sections, dim: int = 0):
    """Split into ``n`` nearly equal parts (the first ``size % n`` one longer), or at the
    given indices along ``dim`` (``numpy.array_split``); the parts are views."""
    _tensor(input, "tensor_split")
    if input.ndim == 0:
        raise RuntimeError("tensor_split expected at least a 1-dimensional tensor, but got a "
                           "tensor with 0 dims")
    (d,) = arith._normalise_dims(dim, input.ndim)
    size = input.shape[d]
    ios = indices_or_sections
    if hasattr(ios, "ndim") and hasattr(ios, "tolist"):
        if ios.ndim > 1 or ios.dtype.kind not in "iu":
            raise RuntimeError("tensor_split expected tensor_indices_or_sections to be a "
                               "zero-dimensional or one-dimensional tensor of integers, but "
                               f"got a tensor with {ios.ndim} dims of {ios.dtype}")
        ios = ios.tolist()
    if isinstance(ios, (int, np.integer)):
        n = int(ios)
        if n <= 0:
            raise RuntimeError(f"number of sections must be larger than 0, got {n}")
        lengths = [size // n + (1 if i < size % n else 0) for i in range(n)]
        bounds = list(np.cumsum([0] + lengths))
    else:
        bounds = [0] + [min(max(int(i) if i >= 0 else int(i) + size, 0), size)
                        for i in ios] + [size]
    out = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        stop = max(stop, start)
        out.append(input.narrow(d, int(start), int(stop - start)))
    return tuple(out)


def _split_along(op, input, indices_or_sections, dim, min_ndim):
    _tensor(input, op)
    if input.ndim < min_ndim:
        raise RuntimeError(f"torch.{op} requires a tensor with at least {min_ndim} dimension, "
                           f"but got a tensor with {input.ndim} dimensions!")
    if isinstance(indices_or_sections, (int, np.integer)) and \
            input.shape[dim] % int(indices_or_sections) != 0:
        raise RuntimeError(f"torch.{op} attempted to split along dimension {dim}, but the "
                           f"size of the dimension {input.shape[dim]} is not divisible by the "
                           f"split_size {indices_or_sections}!")
    return tensor_split(input, indices_or_sections, dim)


def hsplit(input, indices_or_sections):
    """Split along dim 1 (dim 0 for a 1-D tensor) into equal parts or at indices."""
    return _split_along("hsplit", input, indices_or_sections,
                        1 if getattr(input, "ndim", 0) > 1 else 0, 1)


def vsplit(input, indices_or_sections):
    """Split along dim 0 into equal parts or at indices."""
    return _split_along("vsplit", input, indices_or_sections, 0, 2)


def dsplit(input, indices_or_sections):
    """Split along dim 2 into equal parts or at indices."""
    return _split_along("dsplit", input, indices_or_sections, 2, 3)


def _atleast(tensors, n):
    single = len(tensors) == 1 and not isinstance(tensors[0], (list, tuple))
    items = tensors[0] if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)) \
        else tensors
    out = []
    for t in items:
        _tensor(t, f"atleast_{n}d", "tensors")
        if t.ndim == 0:
            t = t.reshape(*([1] * n))
        elif t.ndim == 1 and n >= 2:
            t = t.reshape(1, -1, *([1] * (n == 3)))
        elif t.ndim == 2 and n == 3:
            t = t.unsqueeze(-1)
        out.append(t)
    return out[0] if single else tuple(out)


def atleast_1d(*tensors):
    """Each tensor with at least 1 dim (a 0-d one becomes shape (1,))."""
    return _atleast(tensors, 1)


def atleast_2d(*tensors):
    """Each tensor with at least 2 dims (a 1-D one becomes a row)."""
    return _atleast(tensors, 2)


def atleast_3d(*tensors):
    """Each tensor with at least 3 dims (1-D: (1, n, 1); 2-D: (m, n, 1))."""
    return _atleast(tensors, 3)


def dstack(tensors):
    """Stack along the third dim (after making each at least 3-D)."""
    from fastconv.toplevel import cat

    return cat(list(atleast_3d(list(tensors))), 2)


def column_stack(tensors):
    """Columns side by side: 0- and 1-D tensors become columns, then cat along dim 1."""
    from fastconv.toplevel import cat

    cols = []
    for t in tensors:
        _tensor(t, "column_stack", "tensors")
        cols.append(t.reshape(-1, 1) if t.ndim < 2 else t)
    if not cols:
        raise RuntimeError("column_stack expects a non-empty TensorList")
    return cat(cols, 1)


def row_stack(tensors):
    """Rows on top of each other (``vstack``)."""
    from fastconv.toplevel import vstack

    return vstack(tensors)


def select(input, dim: int, index: int):
    """The slice at ``index`` along ``dim``, that dim removed (``x.select(1, 2)`` is
    ``x[:, 2]``)."""
    _tensor(input, "select")
    if input.ndim == 0:
        raise IndexError("select() cannot be applied to a 0-dim tensor.")
    (d,) = arith._normalise_dims(dim, input.ndim)
    size = input.shape[d]
    if not -size <= index < size:
        raise IndexError(f"select(): index {index} out of range for tensor of size "
                         f"{list(input.shape)} at dimension {d}")
    return input[(slice(None),) * d + (int(index),)]


def _flat_index(op, index, numel):
    idx = index.data.astype(np.int64, copy=False).reshape(-1)
    if idx.size:
        lo, hi = int(idx.min()), int(idx.max())
        if lo < -numel or hi >= numel:
            bad = lo if lo < -numel else hi
            raise IndexError(f"{op}(): index {bad} out of range for tensor of size "
                             f"{numel} (flattened)")
    return idx % numel if numel else idx


def take(input, index):
    """The entries of the flattened tensor at ``index`` (negative ones count from the end),
    in the shape of ``index``."""
    from fastconv.tensor import Tensor

    _tensor(input, "take")
    _index_tensor("take", index)
    idx = _flat_index("take", index, input.numel())
    return input.reshape(-1)[Tensor(idx)].reshape(*index.shape)


def put(input, index, source, accumulate: bool = False):
    """A copy with the flattened entries at ``index`` set to ``source``'s (or added to, with
    ``accumulate=True``, repeated indices adding up)."""
    from fastconv.tensor import Tensor

    _tensor(input, "put")
    _index_tensor("put", index)
    _tensor(source, "put", "source")
    if source.numel() != index.numel():
        raise RuntimeError(f"put_(): Expected source and index to have the same number of "
                           f"elements, but got source.numel() = {source.numel()}, "
                           f"index.numel() = {index.numel()}")
    idx = Tensor(_flat_index("put", index, input.numel()))
    src = source.reshape(-1)._cast(input.dtype) if source.dtype != input.dtype \
        else source.reshape(-1)
    flat = input.reshape(-1)
    out = flat.index_add(0, idx, src) if accumulate else flat.index_copy(0, idx, src)
    return out.reshape(*input.shape)


def _index_tensor(op, index):
    from fastconv.tensor import Tensor

    if not isinstance(index, Tensor) or index.dtype.kind not in "iu":
        raise TypeError(f"{op}(): index must be an integer (int64) Tensor, got "
                        f"{getattr(index, 'dtype', type(index).__name__)}")


def index_put(input, indices, values, accumulate: bool = False):
    """``out[indices] = values`` on a copy (``indices``: a tuple of index tensors, one per
    leading dim, broadcast together, or bool masks); ``accumulate=True`` adds instead,
    repeated positions adding up (a confusion matrix: ``cm.index_put_((t, p), one,
    accumulate=True)``)."""
    from fastconv.tensor import Tensor

    _tensor(input, "index_put")
    if not isinstance(indices, (tuple, list)):
        raise TypeError(f"index_put(): argument 'indices' must be a tuple of Tensors, not "
                        f"{type(indices).__name__}")
    if len(indices) > input.ndim:
        raise IndexError(f"too many indices for tensor of dimension {input.ndim} (got "
                         f"{len(indices)})")
    if not isinstance(values, Tensor):
        values = Tensor(np.asarray(values)).to(input.device)
    values = values._cast(input.dtype) if values.dtype != input.dtype else values
    if not accumulate:
        out = input.clone()
        out[tuple(indices)] = values
        return out
    # Accumulate: positions over the indexed leading dims, then index_add on a flat view.
    expanded = []
    for i in indices:
        if not isinstance(i, Tensor):
            i = Tensor(np.asarray(i))
        if i.dtype.kind == "b":
            expanded.extend(Tensor(np.asarray(c)) for c in np.nonzero(_host(i.data)))
        elif i.dtype.kind in "iu":
            expanded.append(i)
        else:
            raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
    k = len(expanded)
    lead = input.shape[:k]
    parts = np.broadcast_arrays(*[_host(i.data).astype(np.int64) for i in expanded])
    for d, (p, n) in enumerate(zip(parts, lead)):
        if p.size and (p.min() < -n or p.max() >= n):
            bad = p.min() if p.min() < -n else p.max()
            raise IndexError(f"index {bad} is out of bounds for dimension {d} with size {n}")
    flat_pos = np.ravel_multi_index([p % n for p, n in zip(parts, lead)], lead) \
        if parts and parts[0].size else np.zeros(parts[0].shape if parts else (0,), np.int64)
    rest = tuple(input.shape[k:])
    target_shape = flat_pos.shape + rest
    src = values.expand(*target_shape).reshape(-1, *rest)
    idx = Tensor(flat_pos.reshape(-1).astype(np.int64))
    if input.device != "cpu":
        idx = idx.to(input.device)
    flat = input.reshape(math.prod(lead), *rest)
    return flat.index_add(0, idx, src).reshape(*input.shape)


def _host(a):
    return a if isinstance(a, np.ndarray) else a.get()
