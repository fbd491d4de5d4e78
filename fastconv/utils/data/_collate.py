"""default_collate / default_convert: samples -> batches of fastconv Tensors.

As PyTorch's, with fastconv's types:

* fastconv Tensors are stacked on a new first dimension (on their device); the
  batch is a new leaf Tensor (no autograd history);
* NumPy arrays and NumPy scalars become Tensors of the same dtype -- uint8 images
  stay uint8, int64 labels int64, float32 float32;
* Python ints become an int64 Tensor, bools a bool Tensor, floats a float Tensor;
* strings and bytes stay a list;
* dicts (any Mapping) collate per key, namedtuples per field, other sequences
  element-wise (a list of collated fields, after checking equal lengths; tuples
  come back as lists, as in PyTorch).

The one difference: PyTorch makes float64 tensors of Python floats and float64
arrays; fastconv has no float64 Tensor (its kernels compute in float32), so they
become float32 and a UserWarning says so (once per place in the program).
"""

from __future__ import annotations

import collections.abc
import warnings

import numpy as np

__all__ = ["default_collate", "default_convert"]

_ERR = ("default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; "
        "found {}")


def _tensor_cls():
    from fastconv.tensor import Tensor

    return Tensor


def _as_tensor(array):
    if array.dtype == np.float64:
        warnings.warn("fastconv.utils.data: float64 data (Python floats or float64 arrays) is "
                      "collated into a float32 Tensor: fastconv has no float64 Tensor (PyTorch "
                      "would keep float64); convert to float32 yourself to silence this",
                      UserWarning, stacklevel=4)
        array = array.astype(np.float32)
    return _tensor_cls()(array)


def _is_namedtuple(x) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def default_collate(batch):
    """Collate a list of samples into a batch (see the module docstring)."""
    Tensor = _tensor_cls()
    elem = batch[0]
    if isinstance(elem, Tensor):
        from fastconv.optim.optimizer import array_module

        datas = [b.data for b in batch]
        shapes = {tuple(d.shape) for d in datas}
        if len(shapes) > 1:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got "
                               f"{sorted(shapes)}")
        return Tensor(array_module(datas[0]).stack(datas))
    if isinstance(elem, (np.ndarray, np.generic)):
        if elem.dtype.str[1] in "SaUO" or elem.dtype.hasobject:
            raise TypeError(_ERR.format(elem.dtype))
        if isinstance(elem, np.ndarray):
            shapes = {b.shape for b in batch}
            if len(shapes) > 1:
                raise RuntimeError(f"stack expects each tensor to be equal size, but got "
                                   f"{sorted(shapes)}")
        return _as_tensor(np.stack([np.asarray(b) for b in batch]))
    if isinstance(elem, bool):
        return Tensor(np.array(batch, dtype=np.bool_))
    if isinstance(elem, int):
        return Tensor(np.array(batch, dtype=np.int64))
    if isinstance(elem, float):
        return _as_tensor(np.array(batch, dtype=np.float64))
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        out = {key: default_collate([d[key] for d in batch]) for key in elem}
        try:
            return type(elem)(out)
        except TypeError:
            return out
    if _is_namedtuple(elem):
        return type(elem)(*(default_collate(list(s)) for s in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        it = iter(batch)
        size = len(next(it))
        if not all(len(e) == size for e in it):
            raise RuntimeError("each element in list of batch should be of equal size")
        fields = [default_collate(list(s)) for s in zip(*batch)]
        if isinstance(elem, tuple):
            return fields
        try:
            return type(elem)(fields)
        except TypeError:
            return fields
    raise TypeError(_ERR.format(type(elem)))


def default_convert(data):
    """The conversion without batching (``batch_size=None``): arrays and NumPy scalars
    become Tensors, containers are converted element-wise, the rest is returned as is."""
    if isinstance(data, _tensor_cls()):
        return data
    if isinstance(data, (np.ndarray, np.generic)):
        if data.dtype.str[1] in "SaUO" or data.dtype.hasobject:
            return data
        return _as_tensor(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        return {k: default_convert(v) for k, v in data.items()}
    if _is_namedtuple(data):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        return [default_convert(d) for d in data]
    return data
