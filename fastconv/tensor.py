"""Tensor: an array (NumPy on the CPU, CuPy on the GPU) plus what autograd needs.

The methods follow ``torch.Tensor``'s names, arguments and defaults. Dtypes follow the one
policy written in :mod:`fastconv.dtypes` (float32 compute; integer promotion as PyTorch).

Where fastconv differs from PyTorch on purpose
----------------------------------------------
* Every op returns a new array (no strided views), except basic indexing (a NumPy/CuPy
  view). A tensor still remembers the strides PyTorch would give it after ``permute``,
  ``transpose``, ``t``, ``expand`` and slicing, so ``is_contiguous()`` answers as PyTorch
  and ``view()`` raises where PyTorch's would; ``reshape`` always works.
* In-place ops (``add_``, ``x[i] = v``, ...) write into the same array when no graph is
  recorded (under ``no_grad``, or when nothing involved requires a gradient), so memory
  shared with ``from_numpy`` arrays and views sees the change. When a graph is recorded the
  tensor gets the result as a new array (earlier graph nodes keep the old values, and the
  nodes that read the tensor before keep their gradients), so views taken before do not see
  that change. An in-place change of a view made by basic indexing (``x[0].mul_(2)``,
  ``x[:, :2].zero_()``) is written into its base in both cases, with the gradients PyTorch
  gives; in a graph, one of a leaf's view is refused as PyTorch refuses it.
* ``+=`` and the other augmented operators are in place (``add_`` and so on), as in PyTorch.
"""

from __future__ import annotations

import re
import sys
import warnings
from collections import namedtuple

import numpy as np

from fastconv import autograd, dtypes
from fastconv.backend import device_of, get_backend
from fastconv.device import as_device
from fastconv.device import of as _device_object
from fastconv.ops import arith
from fastconv.ops import index as index_ops
from fastconv.ops import math as fmath
from fastconv.ops.validate import ArgumentError, ArgumentTypeError

#: The type names of ``Tensor.type("torch.FloatTensor")`` and their dtypes.
_TENSOR_TYPE_NAMES = {"Float": dtypes.float32, "Double": dtypes.float64,
                      "Half": dtypes.float16, "BFloat16": dtypes.bfloat16,
                      "Long": dtypes.int64, "Int": dtypes.int32, "Short": dtypes.int16,
                      "Char": dtypes.int8, "Byte": dtypes.uint8, "Bool": dtypes.bool_}
_FLOAT_CONVERTED = (np.float64, np.float16, dtypes.bfloat16.type)
# Array types a tensor cannot hold: dates and durations, Python objects, text, raw records.
_NON_NUMERIC = (np.datetime64, np.timedelta64, np.object_, np.str_, np.bytes_, np.void)
# Either of the two: one membership test in Tensor() finds both.
_CONVERTED_OR_REFUSED = frozenset(_FLOAT_CONVERTED + _NON_NUMERIC)


def _refuse_dtype(dtype):
    """The TypeError for an array whose values are not numbers (torch's wording, with the
    dtype)."""
    return TypeError(f"can't convert np.ndarray of type numpy.{dtype.type.__name__} (dtype "
                     f"{dtype}). The only supported types are floating-point, integer and bool "
                     f"(float64 and float16 are converted to float32).")

# PyTorch's torch.return_types: a (values, indices) pair that also unpacks.
MaxResult = namedtuple("max", ["values", "indices"])
MinResult = namedtuple("min", ["values", "indices"])
TopkResult = namedtuple("topk", ["values", "indices"])
SortResult = namedtuple("sort", ["values", "indices"])
KthvalueResult = namedtuple("kthvalue", ["values", "indices"])
ModeResult = namedtuple("mode", ["values", "indices"])
MedianResult = namedtuple("median", ["values", "indices"])
AminmaxResult = namedtuple("aminmax", ["min", "max"])
FrexpResult = namedtuple("frexp", ["mantissa", "exponent"])

_LEAF_INPLACE = "a leaf Variable that requires grad is being used in an in-place operation."
_LEAF_VIEW_INPLACE = ("a view of a leaf Variable that requires grad is being used in an "
                      "in-place operation.")


def _as_array(data, device: str, what: str | None = None):
    """An array of ``data`` on ``device``; float64/float16 become float32 (fastconv computes in
    float32). With ``what`` (the public entry point) the conversion of float64/float16 arrays is
    warned about (see fastconv.dtypes); Python floats convert without a warning."""
    xp = get_backend(device).xp
    if isinstance(data, Tensor):
        data = data.data
    is_array = isinstance(data, (np.ndarray, np.generic)) or type(data).__module__.startswith(
        "cupy")
    if not is_array:
        data = np.asarray(data)
        if data.dtype == np.float64:  # Python floats: PyTorch's default dtype is float32 too
            data = data.astype(np.float32)
    if data.dtype.type in _FLOAT_CONVERTED:
        if what is not None:
            dtypes.warn_float32(what, data.dtype, stacklevel=3)
        data = data.astype(np.float32)
    if data.dtype.type in _NON_NUMERIC:
        raise _refuse_dtype(data.dtype)
    if data.dtype.kind == "c":
        raise TypeError(f"cannot make a tensor from an array of dtype {data.dtype}: fastconv "
                        f"has no complex tensors")
    if device_of(data) != device:
        data = xp.asarray(data) if device == "cuda" else data.get()
    return data


def _truth(b):
    return b.astype(bool) if hasattr(b, "astype") else bool(b)


def _contiguous_strides(shape):
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= max(int(n), 1)
    return tuple(reversed(strides))


def _view_strides(old_shape, old_strides, new_shape):
    """PyTorch's computeStride: the strides of a view of a (old_shape, old_strides) tensor as
    new_shape, or None when no view exists (a dimension would span two separate chunks)."""
    if not old_shape:
        return (1,) * len(new_shape)
    numel = int(np.prod(old_shape))
    if numel == 0:
        return _contiguous_strides(new_shape)
    new_strides = [0] * len(new_shape)
    view_d = len(new_shape) - 1
    chunk_base_stride = old_strides[-1]
    tensor_numel = view_numel = 1
    for tensor_d in range(len(old_shape) - 1, -1, -1):
        tensor_numel *= old_shape[tensor_d]
        if tensor_d == 0 or (old_shape[tensor_d - 1] != 1 and
                             old_strides[tensor_d - 1] != tensor_numel * chunk_base_stride):
            while view_d >= 0 and (view_numel < tensor_numel or new_shape[view_d] == 1):
                new_strides[view_d] = view_numel * chunk_base_stride
                view_numel *= new_shape[view_d]
                view_d -= 1
            if view_numel != tensor_numel:
                return None
            if tensor_d > 0:
                chunk_base_stride = old_strides[tensor_d - 1]
                tensor_numel = view_numel = 1
    return None if view_d != -1 else tuple(new_strides)


def _shape_args(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def _expand_error(shape, sizes, i) -> RuntimeError:
    """torch's error for expanding a tensor of ``shape`` to ``sizes``, which differ at
    dimension ``i`` of ``sizes``."""
    return RuntimeError(
        f"The expanded size of the tensor ({sizes[i]}) must match the existing size "
        f"({shape[i - len(sizes) + len(shape)]}) at non-singleton dimension {i}.  Target sizes: "
        f"{list(sizes)}.  Tensor sizes: {list(shape)}")


def _setitem_error(target, shape, basic: bool):
    """torch's error for writing a value of ``shape`` into the entries ``target`` (the shape
    ``x[index]`` selects), or None when it broadcasts: a basic index expands the value (its
    leading size-1 dims dropped), an advanced one broadcasts it."""
    target, shape = tuple(target), tuple(shape)
    while len(shape) > len(target) and shape[0] == 1:
        shape = shape[1:]
    if not basic:
        if arith.broadcast_error(shape, target) is None and len(shape) <= len(target) and \
                tuple(np.broadcast_shapes(shape, target)) == target:
            return None
        return RuntimeError(f"shape mismatch: value tensor of shape {list(shape)} cannot be "
                            f"broadcast to indexing result of shape {list(target)}")
    if len(shape) > len(target):
        return RuntimeError(f"expand: the number of sizes provided ({len(target)}) must be "
                            f"greater or equal to the number of dimensions in the tensor "
                            f"({len(shape)}); the value of shape {list(shape)} does not fit "
                            f"the selected entries of shape {list(target)}")
    lead = len(target) - len(shape)
    for i, n in enumerate(shape, lead):
        if n != 1 and n != target[i]:
            return _expand_error(shape, target, i)
    return None


def _check_broadcast(*operands) -> None:
    """torch's broadcast error for the tensors among ``operands`` (in torch's order) when
    their shapes conflict; for ops computed in several steps, whose own failure would name
    the operands of an inner step."""
    shapes = [o.shape for o in operands if isinstance(o, Tensor)]
    if any(s != shapes[0] for s in shapes[1:]):
        arith.broadcast_shapes(*shapes)


def _check_shape_entries(shape) -> None:
    """torch's error for a size below -1 in a reshape / view target (NumPy would read any
    negative size as the inferred one)."""
    for i, n in enumerate(shape):
        if n < -1:
            raise RuntimeError(f"invalid shape dimension {n} at index {i} of shape "
                               f"{list(shape)}")


class _HookHandle:
    def __init__(self, hooks, hook):
        self.hooks, self.hook = hooks, hook

    def remove(self):
        if self.hook in self.hooks:
            self.hooks.remove(self.hook)


class _TorchMethodsArray(np.ndarray):
    """The array of a Parameter (and of a leaf's ``.grad``) on the CPU: a NumPy array that
    also answers torch's Tensor methods NumPy lacks (``m.weight.data.normal_(0, 0.01)``,
    ``p.data.zero_()``, ``ema.data.mul_(d).add_(p.data, alpha=1 - d)``,
    ``p.grad.data.norm(2)``, ``.clone()``, ``.cpu()``, ...) through a Tensor sharing its
    memory, so in-place ones change it. Where NumPy has the name (``size``, ``view``, ``max``,
    ``sum``), NumPy's meaning stays. Arithmetic on it gives plain arrays, and a Tensor made
    from it holds a plain view."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(Tensor(self), name)

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        def plain(a):
            return a.view(np.ndarray) if isinstance(a, _TorchMethodsArray) else a

        if out is not None:
            kwargs["out"] = tuple(plain(o) for o in out)
        result = getattr(ufunc, method)(*(plain(a) for a in inputs), **kwargs)
        if out is not None:  # in place (p.data -= lr * g): the array itself
            return out[0] if len(out) == 1 else out
        return result


class Size(tuple):
    """torch.Size: what ``Tensor.size()`` and ``.shape`` return, a tuple of ints with
    ``numel()``. Its repr is ``fastconv.Size([2, 3])``; str() and f-strings write the plain
    tuple, as the error messages spell shapes."""

    __str__ = tuple.__repr__

    def numel(self) -> int:
        n = 1
        for d in self:
            n *= int(d)
        return n

    def __getitem__(self, key):
        item = super().__getitem__(key)
        return Size(item) if isinstance(key, slice) else item

    def __repr__(self) -> str:
        return f"fastconv.Size({list(self)})"


def _is_basic_index(index) -> bool:
    """Whether ``x[index]`` is a view in NumPy's (and PyTorch's) sense: integers, slices,
    None and Ellipsis only."""
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, slice) or
               (isinstance(i, (int, np.integer)) and not isinstance(i, (bool, np.bool_)))
               for i in items)


def torch_methods_view(a):
    """``a`` as a _TorchMethodsArray (NumPy arrays only; CuPy's stay as they are)."""
    return a.view(_TorchMethodsArray) if type(a) is np.ndarray else a



def _zero_dim_as_vector(method):
    """For a 0-d tensor reduced along dim 0 or -1, as torch allows: the method runs on the
    1-element view with dim 0, and its results are 0-d again."""
    import functools
    import inspect

    signature = inspect.signature(method)

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if self.ndim:
            return method(self, *args, **kwargs)
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        dim = bound.arguments.get("dim")
        dims = dim if isinstance(dim, (tuple, list)) else (dim,)
        if not dims or not all(isinstance(d, (int, np.integer)) for d in dims):
            return method(self, *args, **kwargs)  # no dim (or max's other tensor)
        arith._normalise_dims(dim, 0)  # the range check (dim 0 or -1)
        bound.arguments["self"] = self.reshape(1)
        bound.arguments["dim"] = 0
        out = method(*bound.args, **bound.kwargs)
        if isinstance(out, tuple):
            items = [r.reshape(()) for r in out]
            return type(out)(*items) if hasattr(out, "_fields") else tuple(items)
        return out.reshape(())

    return wrapper

class _RequiresGrad:
    """``tensor.requires_grad = flag`` with torch's checks (only floating-point tensors, and
    only a leaf's flag may be set). It has no ``__get__``, so a read is a plain instance-dict
    lookup and costs the hot paths nothing."""

    def __set__(self, tensor, value):
        if tensor._ctx is not None:
            raise RuntimeError("you can only change requires_grad flags of leaf variables.")
        tensor.requires_grad_(value)


class Tensor:
    """An n-dimensional float32 (or integer / bool) array that records ops for autograd.

    ``data`` is the underlying NumPy/CuPy array. Tensors created by ops on
    inputs that require a gradient point to the Function that made them
    (``_ctx``); ``backward()`` fills ``.grad`` of the leaves.

    ``Tensor(data)`` (like ``torch.Tensor(data)``) makes float32 from any float data, without
    a warning, and from Python lists of ints or bools too (torch.Tensor's float default);
    ``Tensor(2, 3)`` is an uninitialised 2 x 3 float32 tensor, as torch's; ``fastconv.tensor``
    is the factory that keeps integer data integer and warns about float64.
    """

    __array_priority__ = 1000  # ndarray (op) Tensor defers to Tensor's reflected operators
    _version = 0      # bumped by each in-place change (checked by backward)
    _strides = None   # the strides PyTorch would have (None: those of ``data``)
    # [base, index, base's version] when made by basic indexing (x[0], x[:, 1:]): an in-place
    # change of this tensor is written into the base, as PyTorch's views share its storage
    _view_of = None
    _hooks = None     # gradient hooks of a leaf
    _post_accumulate_hooks = None  # hooks run once a leaf's .grad is complete in a backward
    requires_grad = _RequiresGrad()

    def __init__(self, data, requires_grad: bool = False, _ctx=None, *sizes):
        if type(requires_grad) is int and isinstance(data, (int, np.integer)) and (
                _ctx is None or isinstance(_ctx, (int, np.integer))):
            # torch.Tensor(2, 3, ...): sizes, an uninitialised float32 tensor
            shape = (data, requires_grad, *(() if _ctx is None else (_ctx,)), *sizes)
            data, requires_grad, _ctx = np.empty(tuple(int(n) for n in shape), np.float32), \
                False, None
        if isinstance(data, Tensor):
            data = data.data
        if isinstance(data, (list, tuple)):  # torch.Tensor([1, 2]): float32, as torch's
            data = np.asarray(data)
            if data.dtype.kind in "iub":
                data = data.astype(np.float32)
        if not hasattr(data, "dtype") or not hasattr(data, "shape") or \
                isinstance(data, np.generic):  # a NumPy scalar: a 0-d array, which writes work on
            data = np.asarray(data)
        elif type(data) is _TorchMethodsArray:
            data = data.view(np.ndarray)  # the torch methods stay with their Parameter
        if data.dtype.type in _CONVERTED_OR_REFUSED:
            if data.dtype.type in _NON_NUMERIC:
                raise _refuse_dtype(data.dtype)
            data = data.astype(np.float32)
        self.data = data
        self.grad: Tensor | None = None
        self._ctx = _ctx
        self.__dict__["requires_grad"] = False
        if requires_grad:
            self.requires_grad_(True)

    # ---- properties -------------------------------------------------------------------------
    @property
    def shape(self) -> Size:
        return Size(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self):
        """A :class:`fastconv.device` (a str: compares equal to "cpu" / "cuda")."""
        return _device_object(device_of(self.data))

    @property
    def is_cuda(self) -> bool:
        return self.device == "cuda"

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self):
        return self._ctx

    @property
    def T(self) -> Tensor:
        return self.permute(*reversed(range(self.ndim)))

    @property
    def mT(self) -> Tensor:
        if self.ndim == 1:
            raise RuntimeError("tensor.mT is only supported on matrices or batches of "
                               "matrices. Got 1-D tensor.")
        return self.transpose(-2, -1) if self.ndim else self.reshape(())

    def size(self, dim: int | None = None):
        """The shape as a ``fastconv.Size`` (a tuple with ``numel()``), or one dim's length."""
        if dim is None:
            return Size(self.shape)
        return self.shape[self._one_dim(dim)]

    def _one_dim(self, dim) -> int:
        """``dim`` as an index into this tensor's dims, with torch's IndexError when out of
        range (a 0-d tensor has no dims to index)."""
        nd = self.data.ndim
        if type(dim) is int and -nd <= dim < nd:  # the common case
            return dim % nd
        d = arith._dim_int(dim)
        if not self.ndim:
            raise IndexError(f"Dimension specified as {d} but tensor has no dimensions")
        if not -self.ndim <= d < self.ndim:
            raise arith.dim_out_of_range(d, self.ndim)
        return d % self.ndim

    def numel(self) -> int:
        return int(self.data.size)

    nelement = numel

    def dim(self) -> int:
        return self.data.ndim

    ndimension = dim

    def element_size(self) -> int:
        return int(self.data.dtype.itemsize)

    @property
    def itemsize(self) -> int:
        return int(self.data.dtype.itemsize)

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)

    def data_ptr(self) -> int:
        """The address of the first element (NumPy's or CuPy's data pointer)."""
        if isinstance(self.data, np.ndarray):
            return int(self.data.__array_interface__["data"][0])
        return int(self.data.data.ptr)

    def get_device(self) -> int:
        """-1 on the CPU, else the GPU's index (as PyTorch)."""
        return -1 if self.device == "cpu" else _device_object(self.device).index or 0

    def is_floating_point(self) -> bool:
        return self.data.dtype.kind == "f"

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and self.data.dtype.kind != "f":
            raise ArgumentTypeError(
                f"only floating-point tensors can require a gradient, got {self.dtype}")
        if not requires_grad and self._ctx is not None:
            raise RuntimeError(
                "you can only change requires_grad flags of leaf variables. If you want to use "
                "a computed variable in a subgraph that doesn't require differentiation use "
                "var_no_grad = var.detach().")
        self.__dict__["requires_grad"] = bool(requires_grad)
        return self

    # ---- conversion -------------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (copied from the GPU when needed; shared on the CPU)."""
        if self.requires_grad:
            raise RuntimeError("numpy() on a tensor that requires grad: call .detach().numpy()")
        return self.data if self.device == "cpu" else self.data.get()

    def item(self):
        if self.data.size != 1:
            raise ArgumentError(f"a Tensor with {self.data.size} elements cannot be converted "
                                f"to Scalar (item() needs one element, got shape "
                                f"{tuple(self.shape)})")
        return self.data.reshape(()).item()

    def _scalar(self, kind):
        if self.data.size != 1:
            raise ValueError("only one element tensors can be converted to Python scalars")
        return kind(self.data.reshape(()).item())

    def __float__(self) -> float:
        return self._scalar(float)

    def __int__(self) -> int:
        return self._scalar(int)

    def __index__(self) -> int:
        if self.data.dtype.kind not in "iub":
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return self._scalar(int)

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
        return self._scalar(bool)

    def __format__(self, spec: str) -> str:
        if self.data.size == 1 and (spec or self.ndim == 0):
            return format(self.item(), spec)
        if spec:
            raise TypeError("unsupported format string passed to Tensor.__format__")
        return repr(self)

    def tolist(self):
        return np.asarray(self.detach().numpy()).tolist()

    def detach(self) -> Tensor:
        """A tensor sharing the data, cut from the graph."""
        return Tensor(self.data)

    def detach_(self) -> Tensor:
        self._ctx = None
        self.__dict__["requires_grad"] = False
        return self

    def clone(self) -> Tensor:
        """A copy that stays in the graph (gradients flow back to ``self``)."""
        return fmath.Clone.apply(self)

    def contiguous(self, memory_format=None) -> Tensor:
        """``self`` when it is contiguous, else a contiguous copy (as PyTorch). A
        ``memory_format`` is accepted and keeps the logical order (fastconv.memory_format)."""
        if memory_format is not None:
            from fastconv import memory_formats as formats

            formats.check(memory_format, "contiguous()")
        if self.is_contiguous():
            return self
        return fmath.Clone.apply(self)

    def is_contiguous(self, memory_format=None) -> bool:
        if memory_format is not None:
            from fastconv import memory_formats as formats

            if formats.check(memory_format, "is_contiguous()") in (formats.channels_last,
                                                                   formats.channels_last_3d):
                # fastconv's order is channels first: channels last only where it coincides
                return self.ndim in (4, 5) and (self.shape[1] == 1 or
                                                int(np.prod(self.shape[2:])) == 1)
        if self.numel() == 0:
            return True
        expected = _contiguous_strides(self.shape)
        return all(n == 1 or s == e for n, s, e in zip(self.shape, self.stride(), expected))

    def stride(self, dim: int | None = None):
        """Strides in elements, as PyTorch would have them for this tensor."""
        if self._strides is not None:
            strides = self._strides
        else:
            item = self.data.dtype.itemsize
            strides = tuple(int(s) // item for s in self.data.strides)
        return strides if dim is None else strides[self._one_dim(dim)]

    # ---- dtype and device -------------------------------------------------------------------
    def _cast(self, dtype) -> Tensor:
        """This tensor as ``dtype`` (already resolved); float-to-float stays in the graph."""
        if dtype == self.dtype:
            return self
        if dtype.kind == "f" and self.dtype.kind == "f":
            return fmath.Cast.apply(self, dtype)
        return Tensor(self.data.astype(dtype))

    def type(self, dtype=None):
        """Without an argument: PyTorch's type name (e.g. "fastconv.FloatTensor"); with one:
        the tensor as that dtype."""
        if dtype is None:
            names = {"f": "Float", "i": {8: "Long", 4: "Int", 2: "Short", 1: "Char"},
                     "u": "Byte", "b": "Bool"}
            kind = names.get(self.dtype.kind, "")
            if isinstance(kind, dict):
                kind = kind[self.dtype.itemsize]
            prefix = "fastconv.cuda." if self.device == "cuda" else "fastconv."
            return f"{prefix}{kind}Tensor"
        device = self.device
        if isinstance(dtype, str):
            # "torch.FloatTensor", "torch.cuda.LongTensor", "fastconv.FloatTensor", ...
            m = re.fullmatch(r"(?:torch|fastconv)\.(cuda\.)?([A-Za-z]+)Tensor", dtype)
            if m is None or m.group(2) not in _TENSOR_TYPE_NAMES:
                raise ValueError(f"Tensor.type: invalid type: '{dtype}' (expected a name such "
                                 "as 'torch.FloatTensor' or 'torch.cuda.LongTensor')")
            device = "cuda" if m.group(1) else "cpu"
            dtype = _TENSOR_TYPE_NAMES[m.group(2)]
        elif callable(dtype) and hasattr(dtype, "dtype"):  # fastconv.LongTensor, ...
            dtype = dtype.dtype
        out = self._cast(dtypes.storable(dtype, "Tensor.type", stacklevel=2))
        return out if device == self.device else out.to(device)

    def float(self) -> Tensor:
        return self._cast(dtypes.float32)

    def double(self) -> Tensor:
        """float32, with a DtypeWarning: fastconv has no float64 tensors (see fastconv.dtypes)."""
        dtypes.warn_float32("Tensor.double()", dtypes.float64, stacklevel=2)
        return self._cast(dtypes.float32)

    def half(self) -> Tensor:
        """float32, with a DtypeWarning: fastconv has no float16 tensors (see fastconv.dtypes)."""
        dtypes.warn_float32("Tensor.half()", dtypes.float16, stacklevel=2)
        return self._cast(dtypes.float32)

    def bfloat16(self) -> Tensor:
        """float32, with a DtypeWarning: fastconv has no bfloat16 tensors; ``fastconv.autocast``
        computes in bfloat16 where torch's does (see fastconv.amp)."""
        dtypes.warn_float32("Tensor.bfloat16()", dtypes.bfloat16, stacklevel=2)
        return self._cast(dtypes.float32)

    def long(self) -> Tensor:
        return self._cast(dtypes.int64)

    def int(self) -> Tensor:
        return self._cast(dtypes.int32)

    def bool(self) -> Tensor:
        return self._cast(dtypes.bool_)

    def type_as(self, other: Tensor) -> Tensor:
        return self._cast(other.dtype)

    def byte(self) -> Tensor:
        return self._cast(dtypes.uint8)

    def char(self) -> Tensor:
        return self._cast(dtypes.int8)

    def short(self) -> Tensor:
        return self._cast(dtypes.int16)

    def to(self, *args, **kwargs) -> Tensor:
        """``to(device)``, ``to(dtype)``, ``to(device, dtype)``, ``to(other)`` and the keywords
        ``device``, ``dtype``, ``non_blocking`` (accepted, copies are synchronous) and ``copy``.

        Returns ``self`` when nothing changes (unless ``copy=True``). A move to another device
        stays in the graph: gradients flow back to the source device.
        """
        device, dtype, copy = to_arguments(args, kwargs, allow_copy=True)
        t = self
        if dtype is not None:
            t = t._cast(dtypes.storable(dtype, "Tensor.to", stacklevel=2))
        if device is not None:
            target = as_device(device).type
            if target != t.device:
                t = fmath.ToDevice.apply(t, target)
        if copy and t is self:
            t = self.clone()
        return t

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def pin_memory(self, device=None) -> Tensor:
        """``self``: host arrays go to the GPU through CuPy's own staging, so there is no
        separate pinned copy to make (DataLoader's pin_memory is accepted the same way)."""
        if self.device != "cpu":
            raise RuntimeError(f"cannot pin a tensor on {self.device}: only CPU tensors")
        return self

    def is_pinned(self, device=None) -> bool:
        return False

    def new(self, *args) -> Tensor:
        """torch's legacy ``x.new(...)``: ``new(*sizes)`` an uninitialised tensor, ``new(data)``
        one holding ``data``, both with ``self``'s dtype and device."""
        from fastconv import creation

        if not args:
            return creation.empty(0, dtype=self.dtype, device=self.device)
        if all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in args) or \
                (len(args) == 1 and isinstance(args[0], tuple)):
            return creation.empty(*args, dtype=self.dtype, device=self.device)
        if len(args) != 1:
            raise TypeError(f"new(): expected sizes or one data argument, got {args!r}")
        return self.new_tensor(args[0])

    def cuda(self, device=None, non_blocking: bool = False) -> Tensor:
        return self.to("cuda" if device is None else as_device(device))

    def __array__(self, dtype=None, copy=None):
        a = self.data if self.device == "cpu" else self.data.get()
        return a if dtype is None else a.astype(dtype)

    # ---- autograd ---------------------------------------------------------------------------
    def backward(self, gradient=None, retain_graph=None, create_graph: bool = False,
                 inputs=None, grad=None) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad`` (only into the ``.grad`` of
        ``inputs``, when given), as torch's.

        ``gradient`` defaults to 1 for a one-element tensor; other shapes need it given.
        """
        if grad is not None:  # the old keyword
            gradient = grad
        if not self.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a "
                               "grad_fn (backward() on a tensor that does not require grad)")
        autograd.backward(self, None if gradient is None else [gradient], retain_graph,
                          create_graph, inputs)

    def register_hook(self, hook):
        """Call ``hook(grad)`` with the gradient w.r.t. this tensor when backward computes it;
        a returned tensor replaces the gradient. Returns a handle with ``remove()``."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self._ctx is not None:
            if self._ctx.hooks is None:
                self._ctx.hooks = []
            hooks = self._ctx.hooks
        else:
            if self._hooks is None:
                self._hooks = []
            hooks = self._hooks
        hooks.append(hook)
        return _HookHandle(hooks, hook)

    def register_post_accumulate_grad_hook(self, hook):
        """Call ``hook(tensor)`` once per backward pass, after every gradient of this leaf
        has been accumulated into its ``.grad`` (torch's hook of the same name;
        DistributedDataParallel starts a bucket's all-reduce from it). Returns a handle with
        ``remove()``."""
        if self._ctx is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf "
                               "tensors")
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self._post_accumulate_hooks is None:
            self._post_accumulate_hooks = []
        self._post_accumulate_hooks.append(hook)
        return _HookHandle(self._post_accumulate_hooks, hook)

    def retain_grad(self) -> None:
        """Keep the gradient of a non-leaf tensor in ``.grad`` after backward."""
        if self._ctx is None or getattr(self, "_retains", False):
            return
        self._retains = True

        def keep(g):
            self.grad = Tensor(g.data.copy()) if self.grad is None else self.grad + g

        self.register_hook(keep)

    # ---- arithmetic -------------------------------------------------------------------------
    def _lift(self, other):
        """Tensors pass through; scalars stay Python numbers; arrays become constant tensors."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, (bool, int, float)):
            return other
        if isinstance(other, np.generic) and other.ndim == 0 and other.dtype.kind in "biuf":
            return other.item() if other.dtype.kind != "f" else float(other)
        return Tensor(_as_array(other, self.device, what="an array operand"))

    def _binary(self, other, fn, swap=False, true_div=False):
        other = self._lift(other)
        target = dtypes.promote(self.dtype, other.dtype if isinstance(other, Tensor) else other)
        if true_div and target.kind != "f":
            target = dtypes.float32
        a = self._cast(target)
        if isinstance(other, Tensor):
            b = other._cast(target)
        else:
            b = float(other) if target.kind == "f" else other
        try:
            return fn.apply(b, a) if swap else fn.apply(a, b)
        except ValueError:  # NumPy's broadcast error, in torch's words
            arith.raise_if_not_broadcastable(*((b, a) if swap else (a, b)))
            raise

    def __add__(self, other):
        return self._binary(other, arith.Add)

    def __radd__(self, other):
        return self._binary(other, arith.Add, swap=True)

    def __sub__(self, other):
        return self._binary(other, arith.Sub)

    def __rsub__(self, other):
        return self._binary(other, arith.Sub, swap=True)

    def __mul__(self, other):
        return self._binary(other, arith.Mul)

    def __rmul__(self, other):
        return self._binary(other, arith.Mul, swap=True)

    def __truediv__(self, other):
        return self._binary(other, arith.Div, true_div=True)

    def __rtruediv__(self, other):
        return self._binary(other, arith.Div, swap=True, true_div=True)

    def __neg__(self):
        if self.dtype.kind == "b":
            raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. If "
                               "you are trying to invert a mask, use the `~` or `logical_not()` "
                               "operator instead.")
        return arith.Neg.apply(self)

    def __pow__(self, p):
        if isinstance(p, Tensor) and p.ndim == 0 and not p.requires_grad and self.ndim > 0:
            p = p.item()
        if isinstance(p, Tensor) or (not isinstance(p, (int, float)) and hasattr(p, "shape")):
            return self._binary(p, fmath.PowTensor)
        if not isinstance(p, (int, float)):
            raise TypeError(f"pow: the exponent must be a number or a tensor, got "
                            f"{type(p).__name__}")
        if self.dtype.kind != "f" and (isinstance(p, float) or p < 0):
            return self.float() ** p
        return arith.Pow.apply(self, float(p) if self.dtype.kind == "f" else p)

    def __matmul__(self, other):
        return _matmul(self, self._lift(other))

    def __rmatmul__(self, other):
        return _matmul(self._lift(other), self)

    def __rpow__(self, base):
        return self._binary(base, fmath.PowTensor, swap=True)

    def add(self, other, *, alpha=1):
        return self + (other if alpha == 1 else other * alpha)

    def sub(self, other, *, alpha=1):
        return self - (other if alpha == 1 else other * alpha)

    subtract = sub

    def div(self, other, *, rounding_mode=None):
        """True division, or with ``rounding_mode`` "trunc" / "floor" the rounded quotient
        (integer tensors stay integer, as PyTorch)."""
        if rounding_mode is None:
            return self / other
        if rounding_mode not in ("trunc", "floor"):
            raise RuntimeError(f"div expected rounding_mode to be one of None, 'trunc', or "
                             f"'floor' but found '{rounding_mode}'")
        other = self._lift(other)
        target = dtypes.promote(self.dtype, other.dtype if isinstance(other, Tensor) else other)
        if target.kind == "f":
            q = self / other
            return q.floor() if rounding_mode == "floor" else q.trunc()
        xp = get_backend(self.device).xp
        a = self.data.astype(target)
        b = other.data if isinstance(other, Tensor) else other
        if xp.any(b == 0):
            raise ZeroDivisionError("ZeroDivisionError: integer division by zero")
        try:
            if rounding_mode == "floor":
                return Tensor(xp.floor_divide(a, b).astype(target))
            q = xp.abs(a) // xp.abs(b)
            return Tensor((q * xp.sign(a) * xp.sign(b)).astype(target))
        except ValueError:
            arith.raise_if_not_broadcastable(a, b)
            raise

    divide = div

    def true_divide(self, other):
        return self / other

    def floor_divide(self, other):
        return self.div(other, rounding_mode="floor")

    def __floordiv__(self, other):
        return self.div(other, rounding_mode="floor")

    def __rfloordiv__(self, other):
        return self._lift_full(other).div(self, rounding_mode="floor")

    def remainder(self, other):
        """Python's modulus: the result has the sign of the divisor (``%``)."""
        return self._modulus(other, "floor")

    def fmod(self, other):
        """C's fmod: the result has the sign of the dividend."""
        return self._modulus(other, "trunc")

    def _modulus(self, other, rounding):
        other = self._lift(other)
        target = dtypes.promote(self.dtype, other.dtype if isinstance(other, Tensor) else other)
        if target.kind != "f":
            xp = get_backend(self.device).xp
            b = other.data if isinstance(other, Tensor) else other
            if xp.any(b == 0):
                raise ZeroDivisionError("ZeroDivisionError: integer modulus by zero")
            fn = xp.mod if rounding == "floor" else xp.fmod
            try:
                return Tensor(fn(self.data.astype(target), b).astype(target))
            except ValueError:
                arith.raise_if_not_broadcastable(self, b)
                raise
        # a - round(a / b) * b: the gradient is 1 for a and -round(a / b) for b.
        return self - self.div(other, rounding_mode=rounding) * other

    __mod__ = remainder

    def __rmod__(self, other):
        return self._lift_full(other).remainder(self)

    mul = __mul__
    multiply = __mul__
    pow = __pow__
    neg = negative = __neg__
    matmul = __matmul__

    # Comparisons give constant (non-differentiable) tensors.
    def _compare(self, other, op):
        other = other.data if isinstance(other, Tensor) else other
        try:
            return Tensor(op(self.data, other))
        except ValueError:
            arith.raise_if_not_broadcastable(self, other)
            raise

    def __eq__(self, other):
        return self._compare(other, lambda a, b: a == b)

    def __ne__(self, other):
        return self._compare(other, lambda a, b: a != b)

    def __lt__(self, other):
        return self._compare(other, lambda a, b: a < b)

    def __le__(self, other):
        return self._compare(other, lambda a, b: a <= b)

    def __gt__(self, other):
        return self._compare(other, lambda a, b: a > b)

    def __ge__(self, other):
        return self._compare(other, lambda a, b: a >= b)

    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__

    def __invert__(self):
        if self.dtype.kind not in "biu":
            raise TypeError("~ (bitwise not) is only defined for integer and bool tensors")
        return Tensor(~self.data)

    def __and__(self, other):
        return self._compare(other, lambda a, b: a & b)

    def __or__(self, other):
        return self._compare(other, lambda a, b: a | b)

    def __xor__(self, other):
        return self._compare(other, lambda a, b: a ^ b)

    __rand__, __ror__, __rxor__ = __and__, __or__, __xor__
    bitwise_and, bitwise_or, bitwise_xor, bitwise_not = __and__, __or__, __xor__, __invert__
    greater, greater_equal, less, less_equal, not_equal = __gt__, __ge__, __lt__, __le__, __ne__

    def logical_not(self) -> Tensor:
        return Tensor(~self.data.astype(bool))

    def logical_and(self, other) -> Tensor:
        return self._compare(other, lambda a, b: a.astype(bool) & _truth(b))

    def logical_or(self, other) -> Tensor:
        return self._compare(other, lambda a, b: a.astype(bool) | _truth(b))

    def logical_xor(self, other) -> Tensor:
        return self._compare(other, lambda a, b: a.astype(bool) ^ _truth(b))

    def isnan(self) -> Tensor:
        return Tensor(get_backend(self.device).xp.isnan(self.data))

    def isinf(self) -> Tensor:
        return Tensor(get_backend(self.device).xp.isinf(self.data))

    def isfinite(self) -> Tensor:
        return Tensor(get_backend(self.device).xp.isfinite(self.data))

    def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:
        from fastconv.toplevel import allclose

        return allclose(self, other, rtol, atol, equal_nan)

    def isclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> Tensor:
        from fastconv.toplevel import isclose

        return isclose(self, other, rtol, atol, equal_nan)

    def equal(self, other) -> bool:
        from fastconv.toplevel import equal

        return equal(self, other)

    __hash__ = object.__hash__

    # ---- elementwise math -------------------------------------------------------------------
    def _floating(self) -> Tensor:
        """Integer and bool tensors become float32 for the float-valued ops (as PyTorch)."""
        return self if self.dtype.kind == "f" else self._cast(dtypes.float32)

    def exp(self):
        return arith.Exp.apply(self._floating())

    def log(self):
        return arith.Log.apply(self._floating())

    def sqrt(self):
        return fmath.Sqrt.apply(self._floating())

    def rsqrt(self):
        return self.sqrt() ** -1.0

    def reciprocal(self):
        return self._floating() ** -1.0

    def sin(self):
        return fmath.Sin.apply(self._floating())

    def cos(self):
        return fmath.Cos.apply(self._floating())

    def abs(self):
        if self.dtype.kind == "b":
            raise NotImplementedError("\"abs_cpu\" not implemented for 'Bool'")
        return fmath.Abs.apply(self)

    absolute = __abs__ = abs

    def sigmoid(self):
        return fmath.Sigmoid.apply(self._floating())

    def tanh(self):
        return fmath.Tanh.apply(self._floating())

    def relu(self):
        from fastconv import functional

        return functional.relu(self)

    def softmax(self, dim):
        from fastconv import functional

        return functional.softmax(self._floating(), dim)

    def log_softmax(self, dim):
        from fastconv import functional

        return functional.log_softmax(self._floating(), dim)

    def clamp(self, min=None, max=None):
        """Bound each element to [min, max] (either may be None; tensors broadcast)."""
        if min is None and max is None:
            raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
        if isinstance(min, Tensor) or isinstance(max, Tensor):
            out = self
            if min is not None:
                out = out.maximum(min if isinstance(min, Tensor) else out._lift_full(min))
            if max is not None:
                out = out.minimum(max if isinstance(max, Tensor) else out._lift_full(max))
            return out
        t = self
        if t.dtype.kind != "f" and (isinstance(min, float) or isinstance(max, float)):
            t = t.float()
        return fmath.Clamp.apply(t, min, max)

    clip = clamp

    def _lift_full(self, value) -> Tensor:
        return Tensor(get_backend(self.device).xp.asarray(value, dtype=self.dtype))

    def maximum(self, other):
        return self._binary(other if isinstance(other, Tensor) else self._lift_full(other),
                            fmath.Maximum)

    def minimum(self, other):
        return self._binary(other if isinstance(other, Tensor) else self._lift_full(other),
                            fmath.Minimum)

    def square(self) -> Tensor:
        return self * self

    def _pointwise(self, name) -> Tensor:
        """An entry of fastconv.ops.math.POINTWISE (integer input becomes float32)."""
        return fmath.Pointwise.apply(self._floating(), name)

    def expm1(self):
        return self._pointwise("expm1")

    def log1p(self):
        return self._pointwise("log1p")

    def log2(self):
        return self._pointwise("log2")

    def log10(self):
        return self._pointwise("log10")

    def erf(self):
        return self._pointwise("erf")

    def _rounding(self, name):
        # Integers are already whole: a copy of the same dtype, as PyTorch (which refuses bool).
        if self.dtype.kind == "b" and name != "sign":
            raise NotImplementedError(f"\"{name}_vml_cpu\" not implemented for 'Bool'")
        return self.clone() if self.dtype.kind != "f" else fmath.Pointwise.apply(self, name)

    def round(self, decimals: int = 0):
        """Round half to even (as PyTorch), to ``decimals`` places; the gradient is zero."""
        if decimals and self.dtype.kind == "f":
            scale = 10.0 ** decimals
            return fmath.Pointwise.apply(self * scale, "round") / scale
        return self._rounding("round")

    def floor(self):
        return self._rounding("floor")

    def ceil(self):
        return self._rounding("ceil")

    def trunc(self):
        return self._rounding("trunc")

    fix = trunc

    def frac(self):
        if self.dtype.kind != "f":
            raise RuntimeError(f"frac: expected a floating-point tensor, got {self.dtype}")
        return fmath.Pointwise.apply(self, "frac")

    def sign(self) -> Tensor:
        if self.dtype.kind == "b":
            return self.clone()
        return self._rounding("sign") if self.dtype.kind == "f" else Tensor(
            get_backend(self.device).xp.sign(self.data))

    def clamp_min(self, min):
        return self.clamp(min=min)

    def clamp_max(self, max):
        return self.clamp(max=max)

    def addcmul(self, tensor1, tensor2, *, value=1):
        _check_broadcast(self, tensor1, tensor2)
        return self + value * tensor1 * tensor2

    def addcdiv(self, tensor1, tensor2, *, value=1):
        _check_broadcast(self, tensor1, tensor2)
        return self + value * tensor1 / tensor2

    def lerp(self, end, weight):
        """``self + weight * (end - self)``."""
        _check_broadcast(self, end, weight)
        return self + weight * (end - self)

    def _mask(self, mask, op) -> Tensor:
        if not isinstance(mask, Tensor):
            mask = Tensor(_as_array(mask, self.device))
        if mask.dtype != np.bool_:
            raise RuntimeError(f"{op} only supports boolean masks, but got mask with dtype "
                               f"{mask.dtype}")
        return mask

    def masked_fill(self, mask, value) -> Tensor:
        """``value`` (a number or a 0-dim tensor) where the bool ``mask`` (broadcast to
        ``self``'s shape) is True, else ``self``; differentiable in both."""
        from fastconv.toplevel import where

        mask = self._mask(mask, "masked_fill_")
        if isinstance(value, Tensor) and value.ndim != 0:
            raise RuntimeError(f"masked_fill_ only supports a 0-dimensional value tensor, but "
                               f"got tensor with {value.ndim} dimension(s).")
        if arith.broadcast_shapes(mask.shape, self.shape) != self.shape:
            raise RuntimeError(f"masked_fill: mask of shape {list(mask.shape)} does not "
                               f"broadcast to the tensor's shape {list(self.shape)}")
        if isinstance(value, Tensor):
            value = value._cast(self.dtype) if value.dtype != self.dtype else value
        elif self.dtype.kind != "f":
            value = self.dtype.type(value).item()
        return where(mask, value, self)

    def masked_scatter(self, mask, source) -> Tensor:
        """``self`` with the entries where the bool ``mask`` (broadcast to ``self``'s shape)
        is True taken, in row-major order, from the first elements of ``source``;
        differentiable in both."""
        mask = self._mask(mask, "masked_scatter_")
        if arith.broadcast_shapes(mask.shape, self.shape) != self.shape:
            raise RuntimeError(f"masked_scatter: mask of shape {list(mask.shape)} does not "
                               f"broadcast to the tensor's shape {list(self.shape)}")
        if not isinstance(source, Tensor):
            raise TypeError(f"masked_scatter: source must be a Tensor, got "
                            f"{type(source).__name__}")
        where = get_backend(self.device).xp.broadcast_to(mask.data, self.shape)
        count = int(where.sum())
        if count > source.numel():
            raise RuntimeError(f"masked_scatter: the mask selects {count} elements but source "
                               f"has only {source.numel()}")
        return fmath.SetItem.apply(self, source.reshape(-1)[:count].to(self.dtype), where)

    def masked_select(self, mask) -> Tensor:
        """The entries where ``mask`` is True (both broadcast), as a 1-D tensor."""
        mask = self._mask(mask, "masked_select:")
        shape = arith.broadcast_shapes(mask.shape, self.shape)
        full = self.expand(*shape) if shape != self.shape else self
        xp = get_backend(self.device).xp
        return full[xp.broadcast_to(mask.data, shape)]


    # ---- trigonometric, hyperbolic, and more elementwise math ----------------------------------
    # (entries of fastconv.ops.math.POINTWISE and BINARY; integer input becomes float32 where
    # PyTorch's result is floating-point)
    def tan(self):
        return self._pointwise("tan")

    def asin(self):
        return self._pointwise("asin")

    def acos(self):
        return self._pointwise("acos")

    def atan(self):
        return self._pointwise("atan")

    def sinh(self):
        return self._pointwise("sinh")

    def cosh(self):
        return self._pointwise("cosh")

    def asinh(self):
        return self._pointwise("asinh")

    def acosh(self):
        return self._pointwise("acosh")

    def atanh(self):
        return self._pointwise("atanh")

    arcsin, arccos, arctan = asin, acos, atan
    arcsinh, arccosh, arctanh = asinh, acosh, atanh

    def deg2rad(self):
        return self._pointwise("deg2rad")

    def rad2deg(self):
        return self._pointwise("rad2deg")

    def exp2(self):
        """2 ** x."""
        return self._pointwise("exp2")

    def sgn(self) -> Tensor:
        """sign(x) (the same as :meth:`sign` for real tensors; the gradient is zero)."""
        return self.sign()

    def signbit(self) -> Tensor:
        """Whether the sign bit is set (True for -0.0 and negative NaNs too), as bool."""
        xp = get_backend(self.device).xp
        if self.dtype.kind == "f":
            return Tensor(xp.asarray(xp.signbit(self.data)))
        return Tensor(xp.asarray(self.data < 0)) if self.dtype.kind == "i" else \
            Tensor(xp.zeros(self.shape, dtype=bool))

    def isposinf(self) -> Tensor:
        if self.dtype.kind != "f":
            return Tensor(get_backend(self.device).xp.zeros(self.shape, dtype=bool))
        return Tensor(get_backend(self.device).xp.asarray(self.data == np.inf))

    def isneginf(self) -> Tensor:
        if self.dtype.kind != "f":
            return Tensor(get_backend(self.device).xp.zeros(self.shape, dtype=bool))
        return Tensor(get_backend(self.device).xp.asarray(self.data == -np.inf))

    def isreal(self) -> Tensor:
        """True everywhere: fastconv has no complex tensors."""
        return Tensor(get_backend(self.device).xp.ones(self.shape, dtype=bool))

    def nan_to_num(self, nan=0.0, posinf=None, neginf=None) -> Tensor:
        """NaN -> ``nan``, +inf -> ``posinf``, -inf -> ``neginf`` (None: the dtype's largest
        and lowest finite values). Integer and bool tensors are copied unchanged. The gradient
        is zero at the replaced entries."""
        for arg, value in (("nan", nan), ("posinf", posinf), ("neginf", neginf)):
            if value is not None and (isinstance(value, bool) or
                                      not isinstance(value, (int, float, np.number))):
                raise TypeError(f"nan_to_num(): argument '{arg}' must be float, not "
                                f"{type(value).__name__}")
        if self.dtype.kind != "f":
            return self.clone()
        return fmath.NanToNum.apply(self, float(nan), None if posinf is None else float(posinf),
                                    None if neginf is None else float(neginf))

    def frexp(self):
        """(mantissa, exponent) with ``self = mantissa * 2 ** exponent`` and |mantissa| in
        [0.5, 1); the exponent is int32. Differentiable in the mantissa."""
        if self.dtype.kind != "f":
            raise RuntimeError("torch.frexp() only supports floating-point dtypes")
        xp = get_backend(self.device).xp
        exponent = xp.asarray(xp.frexp(self.data)[1]).astype(np.int32)
        return FrexpResult(fmath.Frexp.apply(self), Tensor(exponent))

    def _binary_math(self, other, name, *, floating=True, float_only=False, scalars=False,
                     same_dtype=False, integral=False, swap=False):
        """``BINARY[name](self, other)`` with PyTorch's argument rules: ``other`` a Tensor
        (or, with ``scalars``, a number); the promoted dtype, made float32 when ``floating``;
        ``float_only``: integer pairs are refused (no integer kernel in PyTorch), as are
        floats for the ``integral`` ops; ``same_dtype``: no promotion at all."""
        if not isinstance(other, Tensor):
            if not scalars or isinstance(other, (str, bytes)) or other is None:
                raise TypeError(f"{name}(): argument 'other' (position 2) must be Tensor, not "
                                f"{type(other).__name__}")
            other = self._lift(other)
        if isinstance(other, Tensor) and other.device != self.device:
            raise RuntimeError(f"Expected all tensors to be on the same device, but found at "
                               f"least two devices, {self.device} and {other.device}!")
        odtype = other.dtype if isinstance(other, Tensor) else other
        if same_dtype and isinstance(other, Tensor) and other.dtype != self.dtype:
            raise RuntimeError(f"{name} is not yet implemented for tensors with different "
                               f"dtypes.")
        target = dtypes.promote(self.dtype, odtype)
        if (float_only and target.kind != "f") or (integral and target.kind not in "iu"):
            raise NotImplementedError(f"\"{name}_cpu\" not implemented for "
                                      f"'{_torch_type_name(target)}'")
        if floating and target.kind != "f":
            target = dtypes.float32
        a = self._cast(target)
        b = other._cast(target) if isinstance(other, Tensor) else (
            float(other) if target.kind == "f" else other)
        out = dtypes.float32 if name == "float_power" else target
        try:
            return fmath.Binary.apply(b, a, name, out) if swap else \
                fmath.Binary.apply(a, b, name, out)
        except ValueError:
            arith.raise_if_not_broadcastable(*((b, a) if swap else (a, b)))
            raise

    def atan2(self, other) -> Tensor:
        """The angle of the point (other, self): arctan(self / other) in the right quadrant."""
        return self._binary_math(other, "atan2")

    arctan2 = atan2

    def hypot(self, other) -> Tensor:
        """sqrt(self ** 2 + other ** 2), without overflow."""
        return self._binary_math(other, "hypot", float_only=True)

    def logaddexp(self, other) -> Tensor:
        """log(exp(self) + exp(other)), computed stably."""
        return self._binary_math(other, "logaddexp", float_only=True)

    def logaddexp2(self, other) -> Tensor:
        """log2(2 ** self + 2 ** other), computed stably."""
        return self._binary_math(other, "logaddexp2", float_only=True)

    def copysign(self, other) -> Tensor:
        """|self| with the sign of ``other`` (a tensor or a number); the gradient of ``other``
        is zero."""
        return self._binary_math(other, "copysign", scalars=True)

    def ldexp(self, other) -> Tensor:
        """self * 2 ** other."""
        return self._binary_math(other, "ldexp")

    def float_power(self, exponent) -> Tensor:
        """self ** exponent computed in float64, as PyTorch's. PyTorch returns float64; fastconv
        has no float64 tensors and returns the float64 result rounded to float32."""
        return self._binary_math(exponent, "float_power", scalars=True)

    def heaviside(self, values) -> Tensor:
        """0 where self < 0, ``values`` where self == 0, 1 where self > 0 (the same dtype on
        both sides, as PyTorch; not differentiable)."""
        return self._binary_math(values, "heaviside", floating=False, same_dtype=True)

    def fmax(self, other) -> Tensor:
        """The elementwise maximum, ignoring NaN (NaN only where both are NaN)."""
        return self._binary_math(other, "fmax", floating=False)

    def fmin(self, other) -> Tensor:
        """The elementwise minimum, ignoring NaN (NaN only where both are NaN)."""
        return self._binary_math(other, "fmin", floating=False)

    def gcd(self, other) -> Tensor:
        """The greatest common divisor (non-negative) of integer tensors."""
        return self._binary_math(other, "gcd", floating=False, integral=True)

    def lcm(self, other) -> Tensor:
        """The least common multiple (non-negative) of integer tensors."""
        return self._binary_math(other, "lcm", floating=False, integral=True)

    # ---- in-place ---------------------------------------------------------------------------
    def _check_inplace(self, *others, view=False) -> bool:
        """Whether this in-place op must be recorded in the graph; raises PyTorch's error for
        a leaf that requires grad, or a view of one."""
        if not autograd.is_grad_enabled():
            return False
        if self.requires_grad and self._ctx is None:
            raise RuntimeError(_LEAF_VIEW_INPLACE if view else _LEAF_INPLACE)
        base = self._view_of
        while base is not None:
            if base[0].requires_grad and base[0]._ctx is None:
                raise RuntimeError(_LEAF_VIEW_INPLACE)
            base = base[0]._view_of
        return self.requires_grad or any(isinstance(o, Tensor) and o.requires_grad
                                         for o in others)

    def _assign(self, out: Tensor, tracked: bool) -> Tensor:
        """Make ``out`` (an out-of-place result) the new value of ``self``."""
        if tuple(out.shape) != tuple(self.shape):
            raise RuntimeError(f"output with shape {list(self.shape)} doesn't match the "
                               f"broadcast shape {list(out.shape)}")
        if out.dtype != self.dtype:
            if self.dtype.kind != "f" and out.dtype.kind == "f":
                names = {"f": "Float", "i": "Long", "u": "Byte", "b": "Bool"}
                raise RuntimeError(f"result type Float can't be cast to the desired output type "
                                   f"{names[self.dtype.kind] if self.dtype != np.int32 else 'Int'}")
            out = Tensor(out.data.astype(self.dtype))
        if tracked:
            self.data = out.data
            self._ctx = out._ctx
            self.__dict__["requires_grad"] = out.requires_grad
        else:
            self.data[...] = out.data
        self._version += 1
        self._write_through(tracked)
        return self

    def _write_through(self, tracked: bool) -> None:
        """After an in-place change of a view: the same change in its base (and the base's
        base). In a graph the base takes a SetItem node, so gradients reach both values."""
        if self._view_of is None:
            return
        base, index = self._view_of[0], self._view_of[1]
        if tracked:
            base[index] = self
            self.data = base.data[index]  # a view of the base's new array again
        else:
            base.data[index] = self.data  # (a no-op copy while the arrays still alias)
            base._version += 1
            base._write_through(False)
        self._view_of[2] = base._version

    def _tracked_source(self) -> Tensor:
        """What an in-place op recorded in the graph starts from: the current value as a
        Tensor of its own (earlier consumers keep this tensor's old node), or, for a view
        whose base has changed in place since, the base's entries now."""
        view = self._view_of
        if view is not None and view[0]._version != view[2]:
            fresh = view[0][view[1]]
            if fresh.shape == self.shape and fresh.dtype == self.dtype:
                return fresh
        source = Tensor.__new__(Tensor)
        source.data, source.grad, source._ctx = self.data, None, self._ctx
        source.__dict__["requires_grad"], source._version = self.requires_grad, self._version
        return source

    def _inplace(self, compute, *others):
        tracked = self._check_inplace(*others)
        if tracked:
            return self._assign(compute(self._tracked_source()), True)
        with autograd.set_grad_enabled(False):
            return self._assign(compute(self), False)

    def _reshape_inplace(self, compute, name):
        """unsqueeze_ / squeeze_ / t_ / transpose_ / swapdims_: ``self`` takes the new shape
        (in the graph when it is tracked)."""
        tracked = self._check_inplace()
        # the graph continues from the old value, as in _inplace
        source = self._tracked_source() if tracked else self
        out = compute(source)
        if tracked:
            self._ctx = out._ctx
            self.__dict__["requires_grad"] = out.requires_grad
        self.data = out.data
        self._version += 1
        return self

    def unsqueeze_(self, dim):
        return self._reshape_inplace(lambda s: s.unsqueeze(dim), "unsqueeze_")

    def squeeze_(self, dim=None):
        return self._reshape_inplace(lambda s: s.squeeze() if dim is None else s.squeeze(dim),
                                     "squeeze_")

    def t_(self):
        return self._reshape_inplace(lambda s: s.t(), "t_")

    def transpose_(self, dim0, dim1):
        return self._reshape_inplace(lambda s: s.transpose(dim0, dim1), "transpose_")

    swapdims_ = swapaxes_ = transpose_

    def resize_(self, *sizes, memory_format=None):
        """Give the tensor shape ``sizes``: its first elements kept in order, new ones zero
        (PyTorch leaves them uninitialised). Not allowed on a tensor that requires grad."""
        shape = _shape_args(sizes)
        if self.requires_grad:
            raise RuntimeError("cannot resize variables that require grad")
        n = int(np.prod(shape))
        flat = self.data.reshape(-1)
        xp = get_backend(self.device).xp
        new = xp.zeros(n, dtype=self.dtype)
        k = min(n, flat.size)
        new[:k] = flat[:k]
        self.data = new.reshape(shape)
        self._version += 1
        return self

    def resize_as_(self, other, memory_format=None):
        return self.resize_(*other.shape)

    def add_(self, other, alpha=1):
        return self._inplace(lambda s: s + (other if alpha == 1 else other * alpha), other)

    def sub_(self, other, alpha=1):
        return self._inplace(lambda s: s - (other if alpha == 1 else other * alpha), other)

    def mul_(self, other):
        return self._inplace(lambda s: s * other, other)

    def div_(self, other, *, rounding_mode=None):
        return self._inplace(lambda s: s.div(other, rounding_mode=rounding_mode), other)

    # ``x += y`` changes x in place, as in PyTorch (so ``p -= lr * p.grad`` under no_grad
    # updates the parameter the model holds).
    def __iadd__(self, other):
        return self.add_(other)

    def __isub__(self, other):
        return self.sub_(other)

    def __imul__(self, other):
        return self.mul_(other)

    def __itruediv__(self, other):
        return self.div_(other)

    def clamp_(self, min=None, max=None):
        return self._inplace(lambda s: s.clamp(min, max), min, max)

    clip_ = clamp_

    def zero_(self):
        return self.fill_(0)

    def fill_(self, value):
        if isinstance(value, Tensor):
            if value.numel() != 1:
                raise RuntimeError("fill_ only supports 0-dimension value tensor but got tensor "
                                   f"with {value.ndim} dimensions.")
            return self._inplace(lambda s: value.reshape(()).expand(*s.shape).clone(), value)
        xp = get_backend(self.device).xp
        return self._inplace(lambda s: Tensor(xp.full(s.shape, value, dtype=s.dtype)))

    def normal_(self, mean=0.0, std=1.0, *, generator=None):
        """Fill with draws from N(mean, std^2) (fastconv's generator, or ``generator``)."""
        return self._random_fill("normal_", lambda rng: rng.normal(mean, std, self.shape),
                                 generator)

    def uniform_(self, from_=0.0, to=1.0, *, generator=None, **kwargs):
        """Fill with draws from U[from, to) (torch's first argument is named ``from``)."""
        from_ = kwargs.pop("from", from_)
        if kwargs:
            raise TypeError(f"uniform_() got an unexpected keyword argument {next(iter(kwargs))!r}")
        return self._random_fill("uniform_", lambda rng: rng.uniform(from_, to, self.shape),
                                 generator)

    def bernoulli(self, p=None, *, generator=None) -> Tensor:
        from fastconv.creation import bernoulli

        return bernoulli(self, p, generator=generator)

    def bernoulli_(self, p=0.5, *, generator=None):
        """Fill with 1 (probability ``p``, a number or a tensor of probabilities) or 0."""
        probs = p.data if isinstance(p, Tensor) else p
        return self._random_fill(
            "bernoulli_", lambda rng: rng.random(self.shape) < np.asarray(
                probs.get() if hasattr(probs, "get") else probs), generator)

    def multinomial(self, num_samples: int, replacement: bool = False, *,
                    generator=None) -> Tensor:
        from fastconv.creation import multinomial

        return multinomial(self, num_samples, replacement, generator=generator)

    def log_normal_(self, mean: float = 1.0, std: float = 2.0, *, generator=None):
        """Fill with exp of draws from N(mean, std^2)."""
        return self._random_fill("log_normal_",
                                 lambda rng: rng.lognormal(mean, std, self.shape), generator)

    def cauchy_(self, median: float = 0.0, sigma: float = 1.0, *, generator=None):
        return self._random_fill(
            "cauchy_", lambda rng: median + sigma * rng.standard_cauchy(self.shape), generator)

    def geometric_(self, p: float, *, generator=None):
        """Fill with the number of Bernoulli(p) trials up to the first success (1, 2, ...)."""
        if not 0 < p <= 1:
            raise ValueError(f"geometric_ expects p to be in (0, 1], got {p}")
        return self._random_fill("geometric_", lambda rng: rng.geometric(p, self.shape),
                                 generator)

    def exponential_(self, lambd: float = 1.0, *, generator=None):
        return self._random_fill("exponential_",
                                 lambda rng: rng.exponential(1.0 / lambd, self.shape), generator)

    def _random_fill(self, name, draw, generator):
        from fastconv.creation import _rng

        if self.dtype.kind != "f":
            raise RuntimeError(f"{name}: expected a floating-point tensor, got {self.dtype}")
        values = get_backend(self.device).xp.asarray(draw(_rng(generator)).astype(self.dtype))
        return self._inplace(lambda s: Tensor(values))

    def copy_(self, src, non_blocking: bool = False):
        """Copy ``src``'s values into ``self`` (broadcast, converted to ``self``'s dtype and
        device); gradients flow to ``src``."""
        if not isinstance(src, Tensor):
            src = Tensor(_as_array(src, self.device, what="copy_"))
        if src.device != self.device:
            src = src.to(self.device)
        if src.dtype != self.dtype:
            src = src._cast(self.dtype) if self.dtype.kind == "f" else Tensor(
                src.data.astype(self.dtype))

        if src.shape != self.shape:
            shape = arith.broadcast_shapes(self.shape, src.shape)
            if shape != self.shape:
                raise RuntimeError(f"output with shape {list(self.shape)} doesn't match the "
                                   f"broadcast shape {list(shape)}")

        def compute(s):
            expanded = src.expand(*s.shape) if src.shape != s.shape else src
            return expanded.clone() if expanded is src else expanded

        return self._inplace(compute, src)

    def __setitem__(self, index, value):
        """``x[index] = value`` in place (a differentiable copy into the selected entries)."""
        index = self._raw_index(index)
        tracked = self._check_inplace(value, view=True)
        if isinstance(value, Tensor) and value.device != self.device:
            value = value.to(self.device)
        if tracked:
            source = self._tracked_source()
            v = value._cast(self.dtype) if isinstance(value, Tensor) else value
            if not isinstance(v, Tensor) and not isinstance(v, (int, float, bool)):
                v = Tensor(_as_array(v, self.device, what="x[index] = array"))
            try:
                out = fmath.SetItem.apply(source, v, index)
            except ValueError:
                self._raise_setitem_error(index, v)
                raise
            self._assign(out, True)
            return
        raw = value.data if isinstance(value, Tensor) else value
        if not isinstance(raw, (int, float, bool)) and not isinstance(value, Tensor):
            raw = _as_array(raw, self.device, what="x[index] = array")
        try:
            self.data[index] = raw
        except ValueError:  # NumPy's "could not broadcast": torch's words, checked on failure
            self._raise_setitem_error(index, raw)
            raise
        self._version += 1
        self._write_through(False)

    def _raise_setitem_error(self, index, value) -> None:
        """After ``x[index] = value`` failed: torch's error when ``value``'s shape does not fit
        the selected entries; returns when it does (the index is the problem then)."""
        try:
            target = self.data[index].shape
        except Exception:  # noqa: BLE001 - the index is at fault; the caller re-raises
            return
        err = _setitem_error(target, np.shape(value), _is_basic_index(index))
        if err is not None:
            raise err from None

    # ---- reductions -------------------------------------------------------------------------
    @_zero_dim_as_vector
    def sum(self, dim=None, keepdim: bool = False, dtype=None):
        t = self if dtype is None else self._cast(dtypes.storable(dtype, "sum", stacklevel=2))
        if t.dtype.kind in "bui" and t.dtype != np.int64:
            t = t._cast(dtypes.int64)
        return arith.Sum.apply(t, dim=dim, keepdim=keepdim)

    def _float_only(self, name: str):
        if self.dtype.kind != "f":
            names = {"i": "Long" if self.dtype == np.int64 else "Int", "b": "Bool", "u": "Byte"}
            raise RuntimeError(
                f"{name}(): could not infer output dtype. Input dtype must be either a floating "
                f"point or complex dtype. Got: {names.get(self.dtype.kind, str(self.dtype))}")

    @_zero_dim_as_vector
    def mean(self, dim=None, keepdim: bool = False, dtype=None):
        t = self if dtype is None else self._cast(dtypes.storable(dtype, "mean", stacklevel=2))
        t._float_only("mean")
        return arith.Mean.apply(t, dim=dim, keepdim=keepdim)

    @_zero_dim_as_vector
    def var(self, dim=None, unbiased=None, keepdim: bool = False, *, correction=None):
        """Variance over ``dim`` (all dims by default), divided by N - correction
        (correction=1 by default; ``unbiased=False`` means correction=0)."""
        if isinstance(dim, bool):  # var(unbiased)
            dim, unbiased = None, dim
        if correction is None:
            correction = 1 if unbiased is None or unbiased else 0
        self._float_only("var")
        return fmath.Var.apply(self, dim=dim, correction=correction, keepdim=keepdim)

    @_zero_dim_as_vector
    def std(self, dim=None, unbiased=None, keepdim: bool = False, *, correction=None):
        """Square root of :meth:`var` (same arguments)."""
        self._float_only("std")
        return self.var(dim, unbiased, keepdim, correction=correction).sqrt()

    @_zero_dim_as_vector
    def norm(self, p="fro", dim=None, keepdim: bool = False, dtype=None):
        """torch.norm: the vector p-norm over ``dim`` (every element by default) for a number
        p (inf, -inf, 0 and negative p included) or "fro"; "nuc" and "fro" over two dims are
        matrix norms (see fastconv.linalg.vector_norm / matrix_norm)."""
        from fastconv.toplevel import norm

        return norm(self, p, dim, keepdim, dtype=dtype)

    @_zero_dim_as_vector
    def amax(self, dim=(), keepdim: bool = False):
        """Max over ``dim`` (an int or a tuple; () or None: all dims); ties share the
        gradient equally, as PyTorch's amax."""
        return self._extreme(dim, keepdim, True)

    @_zero_dim_as_vector
    def amin(self, dim=(), keepdim: bool = False):
        return self._extreme(dim, keepdim, False)

    def _extreme(self, dim, keepdim, largest):
        every = dim is None or (isinstance(dim, (tuple, list)) and not dim)
        if every:
            self._check_not_empty("amax" if largest else "amin")
        dims = arith._normalise_dims(None if every else dim, self.ndim)
        if any(self.shape[d] == 0 for d in dims):
            raise IndexError(f"{'amax' if largest else 'amin'}(): Expected reduction dim "
                             f"{dims[0]} to have non-zero size.")
        return fmath.AMax.apply(self, dims, keepdim, largest)

    def aminmax(self, *, dim=None, keepdim: bool = False):
        if dim is None and self.data.size == 0:
            raise RuntimeError("aminmax(): cannot compute aminmax over an empty dimension as "
                               "the operation has no identity.")
        if dim is not None and self.ndim and self.shape[self._one_dim(dim)] == 0:
            raise IndexError(f"aminmax: Expected reduction dim {self._one_dim(dim)} to have "
                             f"non-zero size.")
        d = () if dim is None else dim
        return AminmaxResult(self.amin(d, keepdim), self.amax(d, keepdim))

    @_zero_dim_as_vector
    def prod(self, dim=None, keepdim: bool = False, dtype=None):
        """Product over ``dim`` (all elements by default); integers give int64."""
        t = self._reduce_dtype(dtype, "prod")
        return fmath.Prod.apply(t, arith._normalise_dims(dim, t.ndim), keepdim)

    def _reduce_dtype(self, dtype, op):
        """PyTorch's accumulating dtype: ``dtype`` if given, else int64 for integers/bools."""
        t = self if dtype is None else self._cast(dtypes.storable(dtype, op, stacklevel=3))
        return t._cast(dtypes.int64) if t.dtype.kind in "bui" else t

    def cumsum(self, dim, dtype=None):
        t = self._reduce_dtype(dtype, "cumsum")
        (d,) = arith._normalise_dims(dim, t.ndim)
        return fmath.Cumsum.apply(t, d) if t.ndim else t.clone()

    def cumprod(self, dim, dtype=None):
        t = self._reduce_dtype(dtype, "cumprod")
        (d,) = arith._normalise_dims(dim, t.ndim)
        return fmath.Cumprod.apply(t, d) if t.ndim else t.clone()

    @_zero_dim_as_vector
    def logsumexp(self, dim=None, keepdim: bool = False):
        """log(sum(exp(x))) over ``dim``, computed stably; the gradient is the softmax."""
        t = self._floating()
        dims = arith._normalise_dims(None if dim in ((), None) else dim, t.ndim)
        return fmath.LogSumExp.apply(t, dims, keepdim)

    @_zero_dim_as_vector
    def median(self, dim=None, keepdim: bool = False):
        """The lower median of all elements, or (values, indices) along ``dim``."""
        if dim is None:
            flat = self.reshape(-1)
            if flat.numel() == 0:  # torch: NaN
                return Tensor(get_backend(self.device).xp.asarray(np.nan, dtype=self.dtype))
            return flat.sort().values[(flat.numel() - 1) // 2]
        (d,) = arith._normalise_dims(dim, self.ndim)
        order = self._order(d, False)
        xp = get_backend(self.device).xp
        pick = xp.take(order, [(self.shape[d] - 1) // 2], axis=d)
        values = fmath.TakeAlong.apply(self, pick, d)
        if not keepdim:
            values, pick = values.squeeze(d), pick.squeeze(d)
        return MedianResult(values, Tensor(pick))

    def count_nonzero(self, dim=None) -> Tensor:
        return Tensor(get_backend(self.device).xp.asarray(
            (self.data != 0).sum(axis=self._axes(dim)), dtype=np.int64))

    def _axes(self, dim):
        """``dim`` (None, an int or a sequence of ints) as NumPy's ``axis``, checked as torch
        checks it (range, repeats); a 0-d tensor's dim 0 / -1 is the whole tensor."""
        if dim is None:
            return None
        dims = arith._normalise_dims(dim, self.ndim)
        return dims if self.ndim else None

    def nonzero(self, *, as_tuple: bool = False):
        """Indices of the non-zero entries: an (n, ndim) int64 tensor, or one tensor per
        dim with ``as_tuple=True``."""
        xp = get_backend(self.device).xp
        data = self.data.reshape(1) if self.ndim == 0 else self.data
        where = xp.nonzero(data)
        if as_tuple:
            return tuple(Tensor(i.astype(np.int64)) for i in where)
        return Tensor(xp.stack(where, axis=1).astype(np.int64)[:, :self.ndim])

    argwhere = nonzero

    def unique(self, sorted: bool = True, return_inverse: bool = False,
               return_counts: bool = False, dim=None):
        """The distinct values, sorted (and the inverse indices / counts when asked)."""
        from fastconv.toplevel import unique

        return unique(self, sorted, return_inverse, return_counts, dim)

    def bincount(self, weights=None, minlength: int = 0) -> Tensor:
        from fastconv.toplevel import bincount

        return bincount(self, weights, minlength)

    # ---- indexing along a dim -----------------------------------------------------------------
    def _index_arg(self, index, op) -> Tensor:
        if not isinstance(index, Tensor):
            index = Tensor(_as_array(index, self.device))
        if index.dtype.kind not in "iu":
            raise RuntimeError(f"{op}(): Expected dtype int32/int64 for index, got "
                               f"{index.dtype}")
        if index.device != self.device:
            raise RuntimeError(f"{op}(): index is on {index.device} but the tensor is on "
                               f"{self.device}")
        return index

    def _index_along(self, dim, index, op, other=None):
        """Check torch's gather/scatter rules: same ndim, index no larger than ``self`` on
        every dim but ``dim`` (nor than ``other``, scatter's src, on any), entries in range."""
        index = self._index_arg(index, op)
        (d,) = arith._normalise_dims(dim, self.ndim)
        if index.ndim != max(self.ndim, 1) and not (index.ndim == 0 and self.ndim == 0):
            raise RuntimeError(f"{op}(): Index tensor must have the same number of dimensions "
                               f"as input tensor (index {list(index.shape)}, input "
                               f"{list(self.shape)})")
        shape = self.shape or (1,)
        # An empty index selects nothing: torch checks no sizes then.
        for k, n in enumerate(index.shape if index.numel() else ()):
            if k != d and n > shape[k]:
                raise RuntimeError(f"{op}(): Size does not match at dimension {k} expected "
                                   f"index {list(index.shape)} to be no larger than self "
                                   f"{list(self.shape)} apart from dimension {d}")
            if other is not None and n > (other.shape or (1,))[k]:
                raise RuntimeError(f"{op}(): Expected index {list(index.shape)} to be no "
                                   f"larger than self {list(self.shape)} apart from dimension "
                                   f"{d} and to be no larger size than src "
                                   f"{list(other.shape)}")
        idx = index.data.astype(np.int64, copy=False)
        index_ops.check_index(op, idx, shape[d], d)
        return d, idx if self.ndim else idx.reshape(())

    def gather(self, dim, index, *, sparse_grad: bool = False) -> Tensor:
        """``out[i][j] = self[index[i][j]][j]`` for dim 0 (and so on): a tensor of index's
        shape; the gradient adds back to the gathered entries."""
        d, idx = self._index_along(dim, index, "gather")
        if self.ndim == 0:
            return self.clone()
        return index_ops.Gather.apply(self, idx, d)

    def scatter(self, dim, index, src=None, *, value=None, reduce=None) -> Tensor:
        """A copy of ``self`` with ``src`` (a tensor or a number; or ``value=``) written at
        ``index`` along ``dim``: ``out[index[i][j]][j] = src[i][j]`` for dim 0.
        ``reduce="add"`` adds instead (see scatter_add), ``reduce="multiply"`` multiplies
        (no gradient, as in torch)."""
        if src is None:
            src = value
        if src is None:
            raise TypeError("scatter() missing 1 required argument: 'src' (or 'value')")
        if reduce not in (None, "add", "multiply"):
            raise RuntimeError(f"reduce argument must be either add or multiply, got {reduce!r}")
        return self._scatter(dim, index, src, reduce, "scatter")

    def scatter_add(self, dim, index, src) -> Tensor:
        """A copy of ``self`` with ``src`` added at ``index`` along ``dim`` (repeated
        indices add up); gradients flow to both."""
        return self._scatter(dim, index, src, "add", "scatter_add")

    def _scatter(self, dim, index, src, reduce, op):
        if isinstance(src, Tensor):
            if src.device != self.device:
                raise RuntimeError(f"{op}(): src is on {src.device} but the tensor is on "
                                   f"{self.device}")
            if src.ndim != self.ndim:
                raise RuntimeError(f"{op}(): Index tensor must have the same number of "
                                   f"dimensions as src tensor")
            src = src._cast(self.dtype) if src.dtype != self.dtype else src
        elif op == "scatter_add":
            raise TypeError(f"{op}(): src must be a tensor, got {type(src).__name__}")
        elif not isinstance(src, (bool, int, float)):
            raise TypeError(f"{op}(): value must be a number, got {type(src).__name__}")
        d, idx = self._index_along(dim, index, op, src if isinstance(src, Tensor) else None)
        if self.ndim == 0:
            idx = idx.reshape(1)
            out = index_ops.Scatter.apply(self.reshape(1), idx, src.reshape(1) if
                                             isinstance(src, Tensor) else src, 0, reduce)
            return out.reshape(())
        return index_ops.Scatter.apply(self, idx, src, d, reduce)

    def scatter_reduce(self, dim, index, src, reduce, *, include_self: bool = True) -> Tensor:
        """A copy of ``self`` with each entry of ``src`` reduced into the entry ``index``
        points at along ``dim`` by "sum", "prod", "mean", "amax" or "amin" (``include_self
        =False``: the original values of those entries are left out)."""
        if reduce not in ("sum", "prod", "mean", "amax", "amin"):
            raise RuntimeError(f"reduce argument must be either sum, prod, mean, amax or amin, "
                               f"got {reduce}")
        if not isinstance(src, Tensor):
            raise TypeError(f"scatter_reduce(): argument 'src' must be Tensor, not "
                            f"{type(src).__name__}")
        if src.device != self.device:
            raise RuntimeError(f"scatter_reduce(): src is on {src.device} but the tensor is on "
                               f"{self.device}")
        if src.ndim != self.ndim:
            raise RuntimeError("scatter_reduce(): Index tensor must have the same number of "
                               "dimensions as src tensor")
        src = src._cast(self.dtype) if src.dtype != self.dtype else src
        d, idx = self._index_along(dim, index, "scatter_reduce", src)
        if self.ndim == 0:
            return index_ops.ScatterReduce.apply(self.reshape(1), idx.reshape(1),
                                                 src.reshape(1), 0, reduce,
                                                 include_self).reshape(())
        return index_ops.ScatterReduce.apply(self, idx, src, d, reduce, include_self)

    def scatter_reduce_(self, dim, index, src, reduce, *, include_self: bool = True) -> Tensor:
        return self._inplace(lambda s: s.scatter_reduce(dim, index, src, reduce,
                                                        include_self=include_self), src)

    def scatter_(self, dim, index, src=None, *, value=None, reduce=None) -> Tensor:
        return self._inplace(lambda s: s.scatter(dim, index, src, value=value, reduce=reduce),
                             src)

    def scatter_add_(self, dim, index, src) -> Tensor:
        return self._inplace(lambda s: s.scatter_add(dim, index, src), src)

    def index_select(self, dim, index) -> Tensor:
        """The entries at the 1-D ``index`` along ``dim``; repeated indices add their
        gradients."""
        index = self._index_arg(index, "index_select")
        if index.ndim > 1:
            raise IndexError("index_select(): Index is supposed to be a vector")
        (d,) = arith._normalise_dims(dim, self.ndim)
        size = self.shape[d] if self.ndim else 1
        idx = index.data.astype(np.int64, copy=False).reshape(-1)
        index_ops.check_index("index_select", idx, size, d)
        if self.ndim == 0:
            return self.reshape(1)[Tensor(idx)].reshape(())
        return index_ops.IndexSelect.apply(self, idx, d)

    def _index_put(self, op, dim, index, source, mode, alpha=1):
        """index_add / index_copy / index_fill: checks, then IndexPut."""
        index = self._index_arg(index, op)
        if index.ndim > 1:
            raise IndexError(f"{op}(): Index is supposed to be a vector")
        (d,) = arith._normalise_dims(dim, max(self.ndim, 1))
        base = self if self.ndim else self.reshape(1)
        idx = index.data.astype(np.int64, copy=False).reshape(-1)
        index_ops.check_index(op, idx, base.shape[d], d)
        if isinstance(source, Tensor):
            want = base.shape[:d] + (idx.size,) + base.shape[d + 1:]
            src = source if source.ndim else source.reshape(1)
            if tuple(src.shape) != tuple(want):
                raise RuntimeError(f"{op}(): source has shape {tuple(source.shape)}, expected "
                                   f"{want} (self's shape with dim {d} of the index's length "
                                   f"{idx.size})")
            if src.device != self.device:
                raise RuntimeError(f"{op}(): source is on {src.device}, self on {self.device}")
            src = src if src.dtype == self.dtype else src.to(self.dtype)
        else:  # index_fill's number
            src = self.dtype.type(source)
        out = index_ops.IndexPut.apply(base, src, idx, d, mode, alpha)
        return out if self.ndim else out.reshape(())

    def index_add(self, dim, index, source, *, alpha=1) -> Tensor:
        """self with ``alpha * source``'s slices added at ``index`` along ``dim``."""
        return self._index_put("index_add", dim, index, source, "add", alpha)

    def index_copy(self, dim, index, source) -> Tensor:
        """self with the slices at ``index`` along ``dim`` replaced by ``source``'s."""
        return self._index_put("index_copy", dim, index, source, "copy")

    def index_fill(self, dim, index, value) -> Tensor:
        """self with the slices at ``index`` along ``dim`` set to ``value`` (a number)."""
        if isinstance(value, Tensor):
            if value.ndim:
                raise RuntimeError("index_fill(): only supports a 0-dimensional value tensor, "
                                   f"but got tensor with {value.ndim} dimension(s)")
            value = value.item()
        return self._index_put("index_fill", dim, index, value, "copy")

    def take_along_dim(self, indices, dim=None) -> Tensor:
        """torch.take_along_dim: gather with ``indices`` broadcast against self (all dims
        but ``dim``); with dim None, along the flattened tensor."""
        indices = self._index_arg(indices, "take_along_dim")
        if dim is None:
            return self.reshape(-1).gather(0, indices.reshape(-1))
        (d,) = arith._normalise_dims(dim, self.ndim)
        if indices.ndim != self.ndim:
            raise RuntimeError(f"take_along_dim(): input and indices should have the same "
                               f"number of dimensions, but got {self.ndim} dimensions for "
                               f"input, and {indices.ndim} dimensions for indices")
        shape = list(arith.broadcast_shapes(
            tuple(1 if i == d else n for i, n in enumerate(self.shape)),
            tuple(1 if i == d else n for i, n in enumerate(indices.shape))))
        src = self.expand(*(shape[:d] + [self.shape[d]] + shape[d + 1:]))
        idx = indices.expand(*(shape[:d] + [indices.shape[d]] + shape[d + 1:]))
        return src.gather(d, idx)

    def kthvalue(self, k: int, dim: int = -1, keepdim: bool = False):
        """(values, indices) of the k-th smallest entry along ``dim`` (k counts from 1)."""
        (d,) = arith._normalise_dims(dim, max(self.ndim, 1))
        size = self.shape[d] if self.ndim else 1
        if not isinstance(k, (int, np.integer)) or not 1 <= k <= size:
            raise IndexError(f"kthvalue(): selected number k out of range for dimension {d} "
                             f"of size {size}, got k={k!r}")
        base = self if self.ndim else self.reshape(1)
        order = base._order(d, False)
        pick = get_backend(self.device).xp.take(order, [k - 1], axis=d)
        values = fmath.TakeAlong.apply(base, pick, d)
        if not keepdim or not self.ndim:
            values, pick = values.squeeze(d), pick.squeeze(d)
        return KthvalueResult(values, Tensor(pick))

    def mode(self, dim: int = -1, keepdim: bool = False):
        """(values, indices): along ``dim``, the most frequent value (the smallest of those
        tied) and the index of its last occurrence, as torch.mode."""
        (d,) = arith._normalise_dims(dim, max(self.ndim, 1))
        base = self if self.ndim else self.reshape(1)
        if base.shape[d] == 0:
            raise IndexError(f"mode(): cannot compute the mode of an empty dimension {d}")
        host = base.data if base.device == "cpu" else base.data.get()
        rows = np.moveaxis(host, d, -1).reshape(-1, base.shape[d])
        pick = np.empty(rows.shape[0], np.int64)
        for r, row in enumerate(rows):
            values, counts = np.unique(row, return_counts=True)
            value = values[np.argmax(counts)]  # the first (smallest) of the most frequent
            pick[r] = row.size - 1 - int(np.argmax(row[::-1] == value))
        shape = list(np.moveaxis(host, d, -1).shape[:-1])
        index = np.moveaxis(pick.reshape(shape + [1]), -1, d)
        index = _as_array(index, self.device)
        values = fmath.TakeAlong.apply(base, index, d)
        if not keepdim or not self.ndim:
            values, index = values.squeeze(d), index.squeeze(d)
        return ModeResult(values, Tensor(index))

    @_zero_dim_as_vector
    def quantile(self, q, dim=None, keepdim: bool = False, *, interpolation: str = "linear"):
        """torch.quantile: the ``q``-th quantiles (a number or a 1-D tensor in [0, 1]) along
        ``dim`` (all elements for None), interpolated between the order statistics as
        ``interpolation`` says (linear, lower, higher, midpoint, nearest). A q tensor puts
        its dim first. A row holding NaN gives NaN."""
        return self._quantile("quantile", q, dim, keepdim, interpolation, ignore_nan=False)

    @_zero_dim_as_vector
    def nanquantile(self, q, dim=None, keepdim: bool = False, *,
                    interpolation: str = "linear"):
        """torch.nanquantile: :meth:`quantile` of the values that are not NaN (NaN where a
        row has none)."""
        return self._quantile("nanquantile", q, dim, keepdim, interpolation, ignore_nan=True)

    def _quantile(self, op, q, dim, keepdim, interpolation, ignore_nan):
        if interpolation not in ("linear", "lower", "higher", "midpoint", "nearest"):
            raise ValueError(f"{op}() interpolation must be one of linear, lower, higher, "
                             f"midpoint or nearest. Got {interpolation}")
        if self.dtype.kind != "f":
            raise RuntimeError(f"{op}() input tensor must be either float or double "
                               f"dtype, got {self.dtype}")
        qs = np.asarray(q.data.get() if hasattr(q.data, "get") else q.data) \
            if isinstance(q, Tensor) else np.asarray(q, np.float64)
        if qs.ndim > 1:
            raise RuntimeError(f"{op}() q must be a scalar or 1D tensor")
        if qs.size and (qs.min() < 0 or qs.max() > 1):
            raise RuntimeError(f"{op}() q values must be in the range [0, 1]")
        x = self.reshape(-1) if dim is None else self
        (d,) = arith._normalise_dims(0 if dim is None else dim, max(x.ndim, 1))
        n = x.shape[d]
        if n == 0:
            raise IndexError(f"{op}() input tensor must be non-empty")
        ordered = x.sort(d).values  # NaN sorts last
        host = x.data if x.device == "cpu" else x.data.get()
        nan = np.isnan(host)
        count = n - nan.sum(axis=d, keepdims=True)  # the values that are not NaN, per row
        n_eff = count if ignore_nan else np.full_like(count, n)
        empty = (count == 0) if ignore_nan else nan.any(axis=d, keepdims=True)
        shape = [1] * x.ndim
        shape[d] = -1
        pos = qs.reshape(shape).astype(np.float64) * (n_eff - 1)  # (.., len(q), ..) along d
        # a row with no answer reads a NaN where torch's does (and its gradient goes there):
        # quantile its last sorted value, nanquantile (all NaN) its first
        pos = np.where(empty, 0.0 if ignore_nan else float(n - 1), pos)
        lo, hi = np.floor(pos), np.ceil(pos)
        if interpolation == "lower":
            hi = lo
        elif interpolation == "higher":
            lo = hi
        elif interpolation == "nearest":
            lo = hi = np.rint(pos)  # half to even, as torch's round
        frac = np.full(pos.shape, 0.5) if interpolation == "midpoint" else pos - lo

        def index(a):
            return Tensor(_as_array(np.clip(a, 0, n - 1).astype(np.int64), self.device))

        a, b = ordered.gather(d, index(lo)), ordered.gather(d, index(hi))
        w = Tensor(_as_array(frac.astype(np.float32), self.device))
        out = a + (b - a) * w
        if keepdim:
            if dim is None:
                out = out.reshape((-1,) + (1,) * self.ndim)
            else:
                out = out.movedim(d, 0).unsqueeze(d + 1)
        else:
            out = out.movedim(d, 0)
        if qs.ndim == 0:
            out = out.squeeze(0)
        return out

    def _select_along(self, index, dim, keepdim):
        xp = get_backend(self.device).xp
        idx = xp.expand_dims(index, dim)
        values = fmath.TakeAlong.apply(self, idx, dim)
        return values if keepdim else values.squeeze(dim)

    @_zero_dim_as_vector
    def max(self, dim=None, keepdim: bool = False):
        """The largest element; or (values, indices) along ``dim`` as in PyTorch; or the
        elementwise maximum with another tensor."""
        if isinstance(dim, Tensor):
            return self.maximum(dim)
        if dim is None:
            self._check_not_empty("max")
            return fmath.MaxAll.apply(self, True)
        self._check_reduced_dim("max", dim)
        values = arith.Max.apply(self, dim=dim, keepdim=keepdim)
        return MaxResult(values, self.argmax(dim=dim, keepdim=keepdim))

    @_zero_dim_as_vector
    def min(self, dim=None, keepdim: bool = False):
        """The smallest element; or (values, indices) along ``dim``; or the elementwise
        minimum with another tensor."""
        if isinstance(dim, Tensor):
            return self.minimum(dim)
        if dim is None:
            self._check_not_empty("min")
            return fmath.MaxAll.apply(self, False)
        d = self._check_reduced_dim("min", dim)
        index = self.data.argmin(axis=d)
        return MinResult(self._select_along(index, d, keepdim),
                         self.argmin(dim=dim, keepdim=keepdim))

    def _check_not_empty(self, op) -> None:
        """torch's error for a reduction over every element of an empty tensor (no identity)."""
        if self.data.size == 0:
            raise RuntimeError(f"{op}(): Expected reduction dim to be specified for "
                               f"input.numel() == 0. Specify the reduction dim with the 'dim' "
                               f"argument.")

    def _check_reduced_dim(self, op, dim) -> int:
        """``dim`` normalised, with torch's error when it has size 0 (a max over nothing)."""
        if isinstance(dim, (tuple, list)):
            several = {"max": " (amax reduces over several dims)",
                       "min": " (amin reduces over several dims)"}.get(op, "")
            raise TypeError(f"{op}(): dim must be one int, got {dim!r}{several}")
        (d,) = arith._normalise_dims(dim, self.ndim)
        if self.ndim and self.shape[d] == 0:
            raise IndexError(f"{op}(): Expected reduction dim {d} to have non-zero size.")
        return d

    def _arg_extreme(self, dim, keepdim, op) -> Tensor:
        data = self.data
        if dim is None:
            if data.size == 0:
                raise IndexError(f"{op}(): Expected reduction dim to be specified for "
                                 f"input.numel() == 0.")
            return Tensor(data.argmax() if op == "argmax" else data.argmin())
        d = self._check_reduced_dim(op, dim)
        if not self.ndim:
            return Tensor(get_backend(self.device).xp.zeros((), np.int64))
        idx = data.argmax(axis=d) if op == "argmax" else data.argmin(axis=d)
        return Tensor(get_backend(self.device).xp.expand_dims(idx, d) if keepdim else idx)

    def argmax(self, dim=None, keepdim: bool = False) -> Tensor:
        return self._arg_extreme(dim, keepdim, "argmax")

    def argmin(self, dim=None, keepdim: bool = False) -> Tensor:
        return self._arg_extreme(dim, keepdim, "argmin")

    def _order(self, dim, descending):
        xp = get_backend(self.device).xp
        key = self.data.astype(np.int8) if self.dtype.kind == "b" else self.data
        if descending:
            key = -key.astype(np.float64) if key.dtype.kind == "u" else -key
        return xp.argsort(key, axis=dim, kind="stable")


    @_zero_dim_as_vector
    def sort(self, dim: int = -1, descending: bool = False, stable: bool = False):
        """(values, indices) sorted along ``dim``; ties keep their order."""
        (d,) = arith._normalise_dims(dim, self.ndim)
        index = self._order(d, descending)
        return SortResult(fmath.TakeAlong.apply(self, index, d), Tensor(index))

    def msort(self) -> Tensor:
        """The values sorted along dim 0 (torch.msort)."""
        return self.sort(0).values

    @_zero_dim_as_vector
    def argsort(self, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
        (d,) = arith._normalise_dims(dim, self.ndim)
        return Tensor(self._order(d, descending))

    @_zero_dim_as_vector
    def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
        """The ``k`` largest (or smallest) entries along ``dim``, as (values, indices)."""
        (d,) = arith._normalise_dims(dim, self.ndim)
        if not 0 <= k <= self.shape[d]:
            raise RuntimeError("selected index k out of range")
        index = self._order(d, largest)
        index = index[(slice(None),) * d + (slice(0, k),)]
        return TopkResult(fmath.TakeAlong.apply(self, index, d), Tensor(index))

    def any(self, dim=None, keepdim: bool = False) -> Tensor:
        return Tensor(self.data.astype(bool).any(axis=self._axes(dim), keepdims=keepdim))

    def all(self, dim=None, keepdim: bool = False) -> Tensor:
        return Tensor(self.data.astype(bool).all(axis=self._axes(dim), keepdims=keepdim))

    # ---- shape ------------------------------------------------------------------------------
    def reshape(self, *shape):
        shape = _shape_args(shape)
        _check_shape_entries(shape)
        try:
            return arith.Reshape.apply(self, shape)
        except ValueError:  # NumPy's wording; torch's is checked only once it failed
            self._resolve_shape(shape)
            raise

    def _resolve_shape(self, shape):
        _check_shape_entries(shape)
        shape = list(shape)
        if shape.count(-1) > 1:
            raise RuntimeError("only one dimension can be inferred")
        if -1 in shape:
            known = int(np.prod([s for s in shape if s != -1]))
            if known == 0 or self.numel() % known:
                raise ArgumentError(f"shape '{list(shape)}' is invalid for input of size "
                                    f"{self.numel()}")
            shape[shape.index(-1)] = self.numel() // known
        if int(np.prod(shape)) != self.numel():
            raise ArgumentError(f"shape '{list(shape)}' is invalid for input of size "
                                f"{self.numel()}")
        return tuple(shape)

    def view(self, *shape):
        """The same elements as ``shape``; raises (as PyTorch) when the tensor's strides do not
        allow a view, e.g. after a transpose — use :meth:`reshape` or ``.contiguous()`` then."""
        if len(shape) == 1 and not isinstance(shape[0], (tuple, list, int, np.integer)):
            raise TypeError(f"view({shape[0]!r}): reinterpreting the bits as another dtype is not "
                            "supported; use .to(dtype) to convert values")
        shape = self._resolve_shape(_shape_args(shape))
        contiguous = self.is_contiguous()
        strides = None
        if not contiguous:
            strides = _view_strides(self.shape, self.stride(), shape)
            if strides is None:
                raise RuntimeError(
                    "view size is not compatible with input tensor's size and stride (at least "
                    "one dimension spans across two contiguous subspaces). Use .reshape(...) "
                    "instead.")
        out = arith.Reshape.apply(self, shape)
        if strides is not None and strides != _contiguous_strides(shape):
            out._strides = strides
        return out

    def view_as(self, other: Tensor) -> Tensor:
        return self.view(other.shape)

    def reshape_as(self, other: Tensor) -> Tensor:
        return self.reshape(other.shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        (start,) = arith._normalise_dims(start_dim, self.ndim)
        (end,) = arith._normalise_dims(end_dim, self.ndim)
        if start > end:
            raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
        if self.ndim == 0:
            return self.reshape(1)
        merged = int(np.prod(self.shape[start:end + 1]))  # explicit: -1 is ambiguous at size 0
        return self.reshape(self.shape[:start] + (merged,) + self.shape[end + 1:])

    def squeeze(self, dim=None):
        """Drop dims of size 1 (all of them, or those in ``dim`` that have size 1)."""
        if dim is None:
            dims = tuple(i for i, n in enumerate(self.shape) if n == 1)
        else:
            dims = tuple(d for d in arith._normalise_dims(dim, self.ndim)
                         if self.ndim and self.shape[d] == 1)
        if not dims:
            out = self.reshape(self.shape)
            out._strides = self._strides
            return out
        return self.reshape(tuple(n for i, n in enumerate(self.shape) if i not in dims))

    def unsqueeze(self, dim: int):
        """Insert a dim of size 1 at ``dim`` (-ndim-1 <= dim <= ndim)."""
        nd = self.ndim + 1
        if not -nd <= dim < nd:
            raise IndexError(f"Dimension out of range (expected to be in range of [{-nd}, "
                             f"{nd - 1}], but got {dim})")
        dim %= nd
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def permute(self, *dims):
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        if not self.ndim and not dims:  # (NumPy's contiguous copy would be 1-D)
            return self.reshape(())
        if len(dims) != self.ndim:
            raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input "
                               f"does not match the length of the desired ordering of "
                               f"dimensions i.e. input.dim() = {self.ndim} is not equal to "
                               f"len(dims) = {len(dims)}")
        try:
            arith._normalise_dims(dims, self.ndim)
        except RuntimeError:  # a dim given twice
            raise RuntimeError("permute(): duplicate dims are not allowed.") from None
        dims = tuple(int(d) % self.ndim for d in dims)
        strides = self.stride()
        out = arith.Permute.apply(self, dims)
        permuted = tuple(strides[d] for d in dims)
        if permuted != _contiguous_strides(out.shape):
            out._strides = permuted
        return out

    def transpose(self, dim0: int, dim1: int):
        (d0,) = arith._normalise_dims(dim0, self.ndim)
        (d1,) = arith._normalise_dims(dim1, self.ndim)
        dims = list(range(self.ndim))
        if self.ndim:
            dims[d0], dims[d1] = dims[d1], dims[d0]
        return self.permute(*dims)

    def t(self):
        if self.ndim > 2:
            raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is "
                               f"{self.ndim}D")
        return self.permute(*reversed(range(self.ndim))) if self.ndim == 2 else self

    def expand(self, *sizes):
        """A broadcast of size-1 dims to ``sizes`` (-1 keeps a dim); gradients sum back."""
        sizes = _shape_args(sizes)
        if len(sizes) < self.ndim:
            raise RuntimeError(f"expand: the number of sizes provided ({len(sizes)}) must be "
                               f"greater or equal to the number of dimensions in the tensor "
                               f"({self.ndim})")
        lead = len(sizes) - self.ndim
        shape, strides = [], []
        own = self.stride()
        for i, s in enumerate(sizes):
            if i < lead:
                if s < 0:
                    raise RuntimeError("expand: -1 is not allowed in a leading, new dimension")
                shape.append(s)
                strides.append(0)
                continue
            n = self.shape[i - lead]
            if s == -1 or s == n:
                shape.append(n)
                strides.append(own[i - lead])
            elif n == 1:
                shape.append(s)
                strides.append(0)
            else:
                raise _expand_error(self.shape, sizes, i)
        shape = tuple(shape)
        if shape == self.shape:
            return self
        out = fmath.Expand.apply(self, shape)
        out._strides = tuple(strides)
        return out

    def expand_as(self, other: Tensor) -> Tensor:
        return self.expand(*other.shape)

    def repeat(self, *sizes):
        """Tile the tensor ``sizes[i]`` times along each dim (as ``numpy.tile``)."""
        sizes = _shape_args(sizes)
        if len(sizes) < self.ndim:
            raise RuntimeError("Number of dimensions of repeat dims can not be smaller than "
                               "number of dimensions of tensor")
        return fmath.Repeat.apply(self, sizes)

    def flip(self, *dims, **kwargs):
        if "dims" in kwargs:
            dims = (kwargs.pop("dims"),)
        if kwargs:
            raise TypeError(f"flip() got an unexpected keyword argument {next(iter(kwargs))!r}")
        dims = arith._normalise_dims(_shape_args(dims), self.ndim)
        return fmath.Flip.apply(self, dims) if self.ndim else self.clone()

    def split(self, split_size_or_sections, dim: int = 0):
        """Pieces of ``split_size`` along ``dim`` (the last may be smaller), or of the listed
        sizes."""
        (d,) = arith._normalise_dims(dim, self.ndim)
        n = self.shape[d]
        if isinstance(split_size_or_sections, int):
            size = split_size_or_sections
            if size <= 0:
                raise RuntimeError(f"split expects split_size be non-negative, but got "
                                   f"split_size={size}")
            sizes = [min(size, n - s) for s in range(0, n, size)] or [0]
        else:
            sizes = [int(s) for s in split_size_or_sections]
            if sum(sizes) != n:
                raise RuntimeError(
                    f"split_with_sizes expects split_sizes to sum exactly to {n} (input tensor's "
                    f"size at dimension {dim}), but got split_sizes={sizes}")
        pieces, start = [], 0
        for s in sizes:
            pieces.append(self[(slice(None),) * d + (slice(start, start + s),)])
            start += s
        return tuple(pieces)

    def chunk(self, chunks: int, dim: int = 0):
        """At most ``chunks`` pieces of ceil(n / chunks) along ``dim`` (as PyTorch)."""
        if chunks <= 0:
            raise RuntimeError("chunk expects `chunks` to be greater than 0, got: "
                               f"{chunks}")
        (d,) = arith._normalise_dims(dim, self.ndim)
        size = -(-self.shape[d] // chunks) if self.shape[d] else 1
        return self.split(max(size, 1), dim)

    def unbind(self, dim: int = 0):
        (d,) = arith._normalise_dims(dim, self.ndim)
        return tuple(self[(slice(None),) * d + (i,)] for i in range(self.shape[d]))

    @staticmethod
    def _raw_index(index):
        if isinstance(index, Tensor):
            return index.data
        if type(index) is list and len(index) < 32 and any(
                i is None or i is Ellipsis or isinstance(i, (Tensor, list, tuple, range, slice,
                                                             np.ndarray)) for i in index):
            # PyTorch (and older NumPy) read such a list as a tuple of indices, with a
            # deprecation warning: x[[[0, 1], [2, 3]]] is x[[0, 1], [2, 3]], x[[t, t]] x[t, t]
            warnings.warn("Using a non-tuple sequence for multidimensional indexing is "
                          "deprecated (as in PyTorch); use x[tuple(seq)] instead of x[seq]",
                          UserWarning, stacklevel=3)
            index = tuple(index)
        if isinstance(index, tuple):
            return tuple(i.data if isinstance(i, Tensor) else i for i in index)
        return index

    def __getitem__(self, index):
        index = self._raw_index(index)
        out = arith.GetItem.apply(self, index)
        if _is_basic_index(index):
            out._view_of = [self, index, self._version]
        return out

    def narrow(self, dim, start, length) -> Tensor:
        """The entries start .. start+length-1 along ``dim`` (a negative start counts from
        the end)."""
        (d,) = arith._normalise_dims(dim, self.ndim)
        n = self.shape[d]
        if not -n <= start <= n:
            raise IndexError(f"start out of range (expected to be in range of [{-n}, {n}], but "
                             f"got {start})")
        start = start + n if start < 0 else start
        if length < 0 or start + length > n:
            raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size "
                               f"({n}).")
        return self[(slice(None),) * d + (slice(start, start + length),)]

    def movedim(self, source, destination) -> Tensor:
        src = (source,) if isinstance(source, int) else tuple(source)
        dst = (destination,) if isinstance(destination, int) else tuple(destination)
        if len(src) != len(dst):
            raise RuntimeError(f"movedim: Invalid source or destination dims: source ({list(src)}"
                               f" dims) should contain the same number of dims as destination "
                               f"({list(dst)} dims)")
        src = [arith._normalise_dims(d, self.ndim)[0] for d in src]
        dst = [arith._normalise_dims(d, self.ndim)[0] for d in dst]
        if len(set(src)) != len(src) or len(set(dst)) != len(dst):
            raise RuntimeError("movedim: repeated dim in source or destination")
        order = [None] * self.ndim
        for s_, d_ in zip(src, dst):
            order[d_] = s_
        rest = iter(d for d in range(self.ndim) if d not in src)
        return self.permute(*[o if o is not None else next(rest) for o in order])

    moveaxis = movedim

    def swapaxes(self, axis0, axis1) -> Tensor:
        return self.transpose(axis0, axis1)

    swapdims = swapaxes

    def unflatten(self, dim, sizes) -> Tensor:
        """Split dim ``dim`` into ``sizes`` (one of them may be -1)."""
        (d,) = arith._normalise_dims(dim, self.ndim)
        sizes = tuple(int(n) for n in sizes)
        if not sizes:
            raise RuntimeError("unflatten: sizes must be non-empty")
        known = int(np.prod([n for n in sizes if n != -1]))
        if sizes.count(-1) > 1 or (-1 in sizes and (known == 0 or self.shape[d] % known)) or (
                -1 not in sizes and known != self.shape[d]):
            raise RuntimeError(f"unflatten: Provided sizes {list(sizes)} don't multiply up to the "
                               f"size of dim {dim} ({self.shape[d]}) in the input tensor")
        sizes = tuple(self.shape[d] // known if n == -1 else n for n in sizes)
        return self.reshape(self.shape[:d] + sizes + self.shape[d + 1:])

    def ravel(self) -> Tensor:
        return self.reshape(-1)

    def roll(self, shifts, dims=None) -> Tensor:
        """Rotate the entries by ``shifts`` along ``dims`` (the flattened tensor when None)."""
        if self.numel() == 0:  # nothing moves (torch checks no dims then)
            return self.clone()
        if dims is None:
            if not isinstance(shifts, int) and len(shifts) != 1:
                raise RuntimeError(f"roll: shifts must have one entry when dims is None, got "
                                   f"{shifts}")
            shift = shifts if isinstance(shifts, int) else shifts[0]
            return self.reshape(-1).roll(shift, 0).reshape(self.shape)
        shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
        dims = (dims,) if isinstance(dims, int) else tuple(dims)
        if len(shifts) != len(dims):
            raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, "
                               f"dims:{len(dims)}")
        out = self
        for shift, dim in zip(shifts, dims):
            (d,) = arith._normalise_dims(dim, self.ndim)
            n = self.shape[d]
            k = shift % n if n else 0
            if k:
                head = (slice(None),) * d
                out = arith.Cat.apply(out[head + (slice(n - k, n),)],
                                      out[head + (slice(0, n - k),)], dim=d)
        return out if out is not self else self.clone()

    def _triangle(self, diagonal, lower, op):
        if self.ndim < 2:
            raise RuntimeError(f"{op}: input tensor must have at least 2 dimensions")
        xp = get_backend(self.device).xp
        rows, cols = self.shape[-2:]
        keep = (xp.arange(cols)[None, :] - xp.arange(rows)[:, None])
        keep = keep <= diagonal if lower else keep >= diagonal
        return fmath.Where.apply(keep, self, self.dtype.type(0))

    def tril(self, diagonal: int = 0) -> Tensor:
        """The lower triangle of the last two dims (entries with col - row <= diagonal)."""
        return self._triangle(diagonal, True, "tril")

    def triu(self, diagonal: int = 0) -> Tensor:
        """The upper triangle of the last two dims (entries with col - row >= diagonal)."""
        return self._triangle(diagonal, False, "triu")

    def _vector(self, other, op):
        for name, t in (("self", self), ("vec2", other)):
            if not isinstance(t, Tensor) or t.ndim != 1:
                raise RuntimeError(f"{op}: Expected 1-D argument {name}, but got "
                                   f"{getattr(t, 'ndim', '?')}-D")

    def outer(self, vec2) -> Tensor:
        self._vector(vec2, "outer")
        return self.reshape(-1, 1) * vec2.reshape(1, -1)

    ger = outer

    # ---- more of torch.Tensor's names -------------------------------------------------------
    def broadcast_to(self, size) -> Tensor:
        return self.expand(*_shape_args((size,)))

    def where(self, condition, other) -> Tensor:
        """``self`` where ``condition`` holds, else ``other`` (torch.Tensor.where)."""
        from fastconv.toplevel import where

        return where(condition, self, other)

    def addmm(self, mat1, mat2, *, beta=1, alpha=1) -> Tensor:
        """beta * self + alpha * (mat1 @ mat2)."""
        return _scaled_sum(self, beta, mat1.mm(mat2), alpha)

    def baddbmm(self, batch1, batch2, *, beta=1, alpha=1) -> Tensor:
        """beta * self + alpha * bmm(batch1, batch2)."""
        return _scaled_sum(self, beta, batch1.bmm(batch2), alpha)

    def addbmm(self, batch1, batch2, *, beta=1, alpha=1) -> Tensor:
        """beta * self + alpha * sum_i batch1[i] @ batch2[i]."""
        return _scaled_sum(self, beta, batch1.bmm(batch2).sum(0), alpha)

    def vdot(self, other) -> Tensor:
        return self.dot(other)  # real tensors: no conjugation

    def unfold(self, dimension: int, size: int, step: int) -> Tensor:
        """All windows of ``size`` elements along ``dimension``, ``step`` apart, as a new last
        dim (torch.Tensor.unfold)."""
        (d,) = arith._normalise_dims(dimension, self.ndim)
        length = self.shape[d] if self.ndim else 1
        if not isinstance(size, int) or not 0 <= size <= length:
            raise RuntimeError(f"maximum size for tensor at dimension {d} is {length} but size "
                               f"is {size}")
        if not isinstance(step, int) or step < 1:
            raise RuntimeError(f"step is {step} but must be > 0")
        xp = get_backend(self.device).xp
        count = (length - size) // step + 1
        index = (xp.arange(count)[:, None] * step + xp.arange(size)[None, :])
        if self.ndim == 0:
            return self.reshape(1)[index.reshape(-1)].reshape(count, size)
        windows = self.index_select(d, Tensor(index.reshape(-1)))
        shape = self.shape[:d] + (count, size) + self.shape[d + 1:]
        return windows.reshape(shape).movedim(d + 1, -1)

    def diagflat(self, offset: int = 0) -> Tensor:
        from fastconv.ops.matrix import diag

        return diag(self.reshape(-1), offset)

    def fill_diagonal_(self, fill_value, wrap: bool = False) -> Tensor:
        """Write ``fill_value`` on the main diagonal (all dims equal, or a 2-D tensor; ``wrap``
        continues below a tall matrix every N + 1 rows, as torch's)."""
        if self.ndim < 2 or (self.ndim > 2 and len(set(self.shape)) != 1):
            raise RuntimeError("all dimensions of input must be of equal length (or the input "
                               f"must be 2-D), got shape {list(self.shape)}")
        xp = get_backend(self.device).xp
        n = min(self.shape)
        if self.ndim == 2 and wrap and self.shape[0] > self.shape[1] + 1:
            rows = xp.arange(self.shape[0])
            rows = rows[rows % (self.shape[1] + 1) < self.shape[1]]
            index = (rows, rows % (self.shape[1] + 1))
        else:
            index = (xp.arange(n),) * self.ndim
        mask = xp.zeros(self.shape, dtype=bool)
        mask[index] = True
        return self.masked_fill_(Tensor(mask), fill_value)

    def random_(self, from_=0, to=None, *, generator=None, **kwargs):
        """Fill with integers drawn uniformly from [from, to) (to defaults to 2**24 for
        float32, as torch's mantissa bound; ``random_(to)`` is [0, to))."""
        from_ = kwargs.pop("from", from_)
        if kwargs:
            raise TypeError(f"random_() got an unexpected keyword argument {next(iter(kwargs))!r}")
        if to is None and from_ != 0:
            from_, to = 0, from_
        high = (2 ** 24 if self.dtype.kind == "f" else np.iinfo(self.dtype).max) if to is None \
            else to
        from fastconv.creation import _rng

        values = _rng(generator).integers(from_, high, self.shape)
        xp = get_backend(self.device).xp
        return self._inplace(lambda s: Tensor(xp.asarray(values, dtype=s.dtype)))

    def nanmedian(self, dim=None, keepdim: bool = False):
        """The lower median ignoring NaN (NaN only where a row is all NaN); (values, indices)
        along ``dim``."""
        xp = get_backend(self.device).xp
        if dim is None:
            flat = self.reshape(-1)
            keep = ~xp.isnan(flat.data)
            if not keep.any():
                return Tensor(xp.asarray(np.nan, dtype=self.dtype))
            return flat[keep].median()
        (d,) = arith._normalise_dims(dim, self.ndim)
        if self.ndim == 0:
            return MedianResult(self.clone(), Tensor(xp.zeros((), np.int64)))
        # NaN sorts last; the lower median of the n values that are not NaN is at (n - 1) // 2
        order = self._order(d, False)
        count = (~xp.isnan(self.data)).sum(axis=d, keepdims=True)
        pick = xp.take_along_axis(order, xp.maximum(count - 1, 0) // 2, axis=d)
        values = fmath.TakeAlong.apply(self, pick, d)
        if not keepdim:
            values, pick = values.squeeze(d), pick.squeeze(d)
        return MedianResult(values, Tensor(pick))

    def hardshrink(self, lambd: float = 0.5) -> Tensor:
        from fastconv.ops.activation import hardshrink

        return hardshrink(self, lambd)

    def prelu(self, weight) -> Tensor:
        from fastconv.ops.activation import prelu

        return prelu(self, weight)

    def split_with_sizes(self, split_sizes, dim: int = 0):
        return self.split(list(split_sizes), dim)

    def sum_to_size(self, *size) -> Tensor:
        """Summed down to ``size`` (which ``self`` must broadcast from)."""
        size = _shape_args(size)
        try:
            ok = np.broadcast_shapes(tuple(size), self.shape) == self.shape
        except ValueError:
            ok = False
        if not ok:
            raise RuntimeError(f"size {list(size)} is not expandable to size "
                               f"{list(self.shape)}")
        return arith.sum_to(self, size)

    def is_same_size(self, other) -> bool:
        return tuple(self.shape) == tuple(other.shape)

    def is_nonzero(self) -> bool:
        if self.numel() != 1:
            raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous"
                               if self.numel() else "Boolean value of Tensor with no values is "
                               "ambiguous")
        return bool(self.item() != 0)

    def is_signed(self) -> bool:
        return self.dtype.kind in "fi"

    @property
    def is_cpu(self) -> bool:
        return self.device == "cpu"

    @property
    def retains_grad(self) -> bool:
        return bool(getattr(self, "_retains", False))

    def share_memory_(self) -> Tensor:
        """Kept for torch's habit: fastconv's DataLoader workers are threads, which share the
        arrays already."""
        return self

    def is_shared(self) -> bool:
        return False

    def is_inference(self) -> bool:
        return False

    # real tensors only: the complex views are the tensor itself
    def is_complex(self) -> bool:
        return False

    def is_conj(self) -> bool:
        return False

    def is_neg(self) -> bool:
        return False

    def conj(self) -> Tensor:
        return self

    resolve_conj = resolve_neg = conj_physical = positive = conj

    @property
    def real(self) -> Tensor:
        return self

    @property
    def mH(self) -> Tensor:
        return self.mT

    def adjoint(self) -> Tensor:
        return self.mT

    @property
    def H(self) -> Tensor:
        if self.ndim > 2:
            raise RuntimeError("tensor.H is only supported on matrices (2-D tensors), got "
                               f"{self.ndim}-D")
        return self.t() if self.ndim == 2 else self

    def storage_offset(self) -> int:
        return 0

    def unique_consecutive(self, return_inverse: bool = False, return_counts: bool = False,
                           dim=None):
        """Each run of equal consecutive values kept once (of the flattened tensor without
        ``dim``); optionally the inverse indices and run lengths."""
        xp = get_backend(self.device).xp
        if dim is not None:
            raise NotImplementedError("unique_consecutive(dim=...) is not supported; flatten "
                                      "or use unique(dim=...)")
        flat = self.data.reshape(-1)
        starts = xp.ones(flat.shape, dtype=bool)
        if flat.size:
            starts[1:] = flat[1:] != flat[:-1]
        out = [Tensor(flat[starts])]
        if return_inverse:
            out.append(Tensor((xp.cumsum(starts) - 1).reshape(self.shape).astype(np.int64)))
        if return_counts:
            bounds = xp.concatenate([xp.nonzero(starts)[0], xp.asarray([flat.size])])
            out.append(Tensor(xp.diff(bounds).astype(np.int64)))
        return out[0] if len(out) == 1 else tuple(out)

    def dot(self, other) -> Tensor:
        self._vector(other, "dot")
        if self.shape != other.shape:
            raise RuntimeError(f"inconsistent tensor size, expected tensor [{self.shape[0]}] and "
                               f"src [{other.shape[0]}] to have the same number of elements, but "
                               f"got {self.shape[0]} and {other.shape[0]} elements respectively")
        return (self * other).sum()

    inner = dot

    def mv(self, vec) -> Tensor:
        if self.ndim != 2 or getattr(vec, "ndim", 0) != 1:
            raise RuntimeError(f"vector + matrix @ vector expected, got {self.ndim}, "
                               f"{getattr(vec, 'ndim', '?')}")
        return self @ vec

    def mm(self, mat2) -> Tensor:
        from fastconv.toplevel import mm

        return mm(self, mat2)

    def bmm(self, mat2) -> Tensor:
        from fastconv.toplevel import bmm

        return bmm(self, mat2)

    def repeat_interleave(self, repeats, dim=None) -> Tensor:
        """Each entry repeated ``repeats`` times (an int, or one count per entry) along
        ``dim`` (the flattened tensor when None)."""
        t = self.reshape(-1) if dim is None else self
        (d,) = arith._normalise_dims(0 if dim is None else dim, t.ndim)
        n = t.shape[d]
        counts = repeats.data if isinstance(repeats, Tensor) else np.asarray(repeats)
        counts = np.asarray(counts.get() if hasattr(counts, "get") else counts)
        if counts.ndim == 0:
            counts = np.full(n, int(counts))
        if counts.shape != (n,) or (counts < 0).any():
            raise RuntimeError(f"repeats must have the same size as input along dim ({n}) and be "
                               f"non-negative, got {counts.tolist()}")
        idx = np.repeat(np.arange(n), counts)
        return t.index_select(d, Tensor(get_backend(self.device).xp.asarray(idx)))

    # ---- linear algebra and special functions (fastconv.linalg, fastconv.special) -----------
    def det(self) -> Tensor:
        from fastconv import linalg

        return linalg.det(self)

    def logdet(self) -> Tensor:
        from fastconv.toplevel import logdet

        return logdet(self)

    def slogdet(self):
        from fastconv.toplevel import slogdet

        return slogdet(self)

    def inverse(self) -> Tensor:
        from fastconv import linalg

        return linalg.inv(self)

    def pinverse(self, rcond: float = 1e-15) -> Tensor:
        from fastconv.toplevel import pinverse

        return pinverse(self, rcond)

    def cholesky(self, upper: bool = False) -> Tensor:
        from fastconv.toplevel import cholesky

        return cholesky(self, upper)

    def qr(self, some: bool = True):
        from fastconv.toplevel import qr

        return qr(self, some)

    def svd(self, some: bool = True, compute_uv: bool = True):
        from fastconv.toplevel import svd

        return svd(self, some, compute_uv)

    def matrix_power(self, n: int) -> Tensor:
        from fastconv import linalg

        return linalg.matrix_power(self, n)

    def matrix_exp(self) -> Tensor:
        from fastconv import linalg

        return linalg.matrix_exp(self)

    def cross(self, other, dim=None) -> Tensor:
        from fastconv.toplevel import cross

        return cross(self, other, dim)

    def _special(self, name, *args, **kwargs) -> Tensor:
        from fastconv import special

        return getattr(special, name)(self, *args, **kwargs)

    def erfc(self) -> Tensor:
        return self._special("erfc")

    def erfinv(self) -> Tensor:
        return self._special("erfinv")

    def lgamma(self) -> Tensor:
        return self._special("gammaln")

    def digamma(self) -> Tensor:
        return self._special("digamma")

    def polygamma(self, n: int) -> Tensor:
        from fastconv import special

        return special.polygamma(n, self)

    def mvlgamma(self, p: int) -> Tensor:
        return self._special("multigammaln", p)

    def i0(self) -> Tensor:
        return self._special("i0")

    def sinc(self) -> Tensor:
        return self._special("sinc")

    def logit(self, eps=None) -> Tensor:
        return self._special("logit", eps)

    def xlogy(self, other) -> Tensor:
        return self._special("xlogy", other)

    # ---- factories on an existing tensor ----------------------------------------------------
    def new_zeros(self, *size, dtype=None, device=None, requires_grad=False):
        from fastconv import creation

        return creation.zeros(*size, dtype=dtype or self.dtype, device=device or self.device,
                              requires_grad=requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad=False):
        from fastconv import creation

        return creation.ones(*size, dtype=dtype or self.dtype, device=device or self.device,
                             requires_grad=requires_grad)

    def new_full(self, size, fill_value, dtype=None, device=None, requires_grad=False):
        from fastconv import creation

        return creation.full(size, fill_value, dtype=dtype or self.dtype,
                             device=device or self.device, requires_grad=requires_grad)

    def new_empty(self, *size, dtype=None, device=None, requires_grad=False):
        return self.new_zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)

    def new_tensor(self, data, dtype=None, device=None, requires_grad=False):
        return tensor(data, dtype=dtype or self.dtype, device=device or self.device,
                      requires_grad=requires_grad)

    # ---- display ----------------------------------------------------------------------------
    def __repr__(self) -> str:
        o = _print_options
        formatter = None
        if o["sci_mode"] is True:
            formatter = {"float_kind": lambda v: f"{v:.{o['precision']}e}"}
        body = np.array2string(np.asarray(self.__array__()), precision=o["precision"],
                               separator=", ", prefix="tensor(", threshold=o["threshold"],
                               edgeitems=o["edgeitems"], max_line_width=o["linewidth"],
                               suppress_small=o["sci_mode"] is False, formatter=formatter)
        extras = []
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        # torch leaves out the default dtypes (int64 and bool are told by the values), but an
        # empty tensor has no values to tell them by
        if self.dtype != np.float32 and (self.data.size == 0
                                         or self.dtype not in (np.int64, np.bool_)):
            extras.append(f"dtype={self.dtype}")
        if self._ctx is not None:
            extras.append(f"grad_fn=<{type(self._ctx).__name__}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"


_PRINT_DEFAULTS = {"precision": 4, "threshold": 1000, "edgeitems": 3, "linewidth": 80,
                   "sci_mode": None}
_print_options = dict(_PRINT_DEFAULTS)


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None,
                     profile=None, sci_mode=None) -> None:
    """How tensors print, as torch.set_printoptions: ``profile`` "default", "short" or "full"
    first, then each option given; ``sci_mode`` True / False forces or suppresses scientific
    notation (None: automatic)."""
    profiles = {"default": _PRINT_DEFAULTS,
                "short": dict(_PRINT_DEFAULTS, precision=2, edgeitems=2),
                "full": dict(_PRINT_DEFAULTS, threshold=sys.maxsize)}
    if profile is not None:
        if profile not in profiles:
            raise ValueError(f"set_printoptions: profile must be one of {sorted(profiles)}, "
                             f"got {profile!r}")
        _print_options.update(profiles[profile])
    for key, value in (("precision", precision), ("threshold", threshold),
                       ("edgeitems", edgeitems), ("linewidth", linewidth)):
        if value is not None:
            _print_options[key] = int(value)
    _print_options["sci_mode"] = sci_mode


def tensor(data, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new leaf Tensor holding a copy of ``data`` on ``device`` (as ``torch.tensor``).

    Python floats become float32 (PyTorch's default dtype); integers keep an integer type
    (int64 for Python ints) and bools stay bool. float64 / float16 arrays are converted to
    float32 with a :class:`fastconv.dtypes.DtypeWarning` (PyTorch would keep float64; fastconv
    computes in float32). ``dtype`` forces a type (float64 is converted with the warning).
    """
    dev = "cpu" if device is None else as_device(device).type
    if isinstance(data, Tensor):
        data = data.detach().__array__()
    elif isinstance(data, (list, tuple)) and any(isinstance(v, Tensor) for v in data):
        data = [v.item() if isinstance(v, Tensor) and v.numel() == 1 else
                (v.detach().__array__() if isinstance(v, Tensor) else v) for v in data]
    if dtype is not None:
        target = dtypes.storable(dtype, "fastconv.tensor(dtype=...)", stacklevel=2)
        if type(data).__module__.startswith("cupy"):
            data = data.get()
        array = np.asarray(data)
        if array.dtype.type in _NON_NUMERIC:
            raise _refuse_dtype(array.dtype)
        array = array.astype(target)
    else:
        array = _as_array(data, "cpu" if dev == "cuda" else dev, what="fastconv.tensor")
    array = np.array(array, copy=True) if dev == "cpu" else _as_array(array, dev)
    return Tensor(array, requires_grad=requires_grad)


def to_arguments(args, kwargs, allow_copy: bool = False):
    """``(device, dtype, copy)`` from the arguments of ``Tensor.to`` / ``Module.to``, read as
    PyTorch reads them: ``(device)``, ``(dtype)``, ``(device, dtype)``, ``(tensor)``, then
    ``non_blocking`` (accepted; copies are synchronous) and, for tensors, ``copy``."""
    kwargs = dict(kwargs)
    device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
    copy = bool(kwargs.pop("copy", False)) if allow_copy else False
    kwargs.pop("non_blocking", None)
    if "memory_format" in kwargs:  # a layout hint: fastconv keeps the logical order
        from fastconv import memory_formats

        memory_formats.check(kwargs.pop("memory_format"), "to()")
    if kwargs:
        raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
    args = list(args)
    if args and isinstance(args[0], Tensor):
        other = args.pop(0)
        device, dtype = other.device, other.dtype
    elif args and isinstance(args[0], (str, int)) and not isinstance(args[0], bool):
        device = args.pop(0)
    if args and not isinstance(args[0], bool):
        dtype = args.pop(0)
    if args and isinstance(args[0], bool):  # non_blocking, then (tensors) copy
        args.pop(0)
        if args and allow_copy:
            copy = bool(args.pop(0))
    if args:
        raise TypeError(f"to() received an invalid combination of arguments: {args}")
    return device, dtype, copy


def _torch_type_name(dt) -> str:
    """PyTorch's scalar-type name of a dtype ("Float", "Long", ...), as its messages use."""
    names = {"float32": "Float", "int64": "Long", "int32": "Int", "int16": "Short",
             "int8": "Char", "uint8": "Byte", "bool": "Bool"}
    return names.get(np.dtype(dt).name, np.dtype(dt).name)


def _matmul(a, b) -> Tensor:
    """``a @ b``; operands whose shapes cannot be multiplied get torch's error."""
    try:
        return arith.MatMul.apply(a, b)
    except ValueError:  # from the GEMM or NumPy's matmul: checked only once it failed
        err = arith.matmul_shape_error(np.shape(a), np.shape(b))
        if err is not None:
            raise err from None
        raise


def _scaled_sum(a, beta, b, alpha):
    """beta * a + alpha * b, as torch's addmm family (beta = 0 ignores a, NaN included)."""
    scaled = b if alpha == 1 else b * alpha
    try:
        fits = np.broadcast_shapes(a.shape, scaled.shape) == tuple(scaled.shape)
    except ValueError:
        fits = False
    if not fits:
        raise RuntimeError(f"the input of shape {list(a.shape)} does not broadcast to the "
                           f"product's shape {list(scaled.shape)}")
    if beta == 0:
        return scaled
    return (a if beta == 1 else a * beta) + scaled


def _inplace_method(name):
    """``Tensor.<name>_``: the out-of-place method's result written into the tensor (see
    Tensor._inplace: in the same array unless a graph is recorded)."""

    def method(self, *args, **kwargs):
        return self._inplace(lambda s: getattr(s, name)(*args, **kwargs), *args,
                             *kwargs.values())

    method.__name__ = name + "_"
    method.__doc__ = f"In-place :meth:`Tensor.{name}`."
    return method


def _numpy_names(method):
    """Let ``method`` also take NumPy's ``axis`` / ``keepdims`` for ``dim`` / ``keepdim``,
    as PyTorch's argument parser does (``x.sum(axis=1)``)."""
    def call(self, *args, **kwargs):
        for alias, name in (("axis", "dim"), ("keepdims", "keepdim")):
            if alias in kwargs:
                if name in kwargs:
                    raise TypeError(f"{method.__name__}() got both '{name}' and its alias "
                                    f"'{alias}'")
                kwargs[name] = kwargs.pop(alias)
        return method(self, *args, **kwargs)

    call.__name__, call.__qualname__, call.__doc__ = \
        method.__name__, method.__qualname__, method.__doc__
    return call


for _name in ("sum", "mean", "var", "std", "norm", "amax", "amin", "prod", "cumsum", "cumprod",
              "logsumexp", "median", "count_nonzero", "max", "min", "argmax", "argmin", "any",
              "all", "softmax", "log_softmax", "squeeze", "unsqueeze", "flip", "roll",
              "quantile", "nanquantile", "mode", "kthvalue", "sort", "argsort", "topk",
              "aminmax"):
    setattr(Tensor, _name, _numpy_names(getattr(Tensor, _name)))


for _name in ("abs", "neg", "exp", "log", "sqrt", "rsqrt", "sigmoid", "tanh", "relu", "pow",
              "floor", "ceil", "round", "trunc", "frac", "sign", "reciprocal", "square",
              "expm1", "log1p", "log2", "log10", "erf", "sin", "cos", "masked_fill", "lerp",
              "masked_scatter",
              "addcmul", "addcdiv",
              "clamp_min", "clamp_max", "remainder", "fmod", "floor_divide", "true_divide",
              "logical_not", "index_add", "index_copy", "index_fill",
              "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh",
              "arcsin", "arccos", "arctan", "arcsinh", "arccosh", "arctanh", "deg2rad",
              "rad2deg", "exp2", "absolute", "negative", "sgn", "nan_to_num", "float_power",
              "ldexp", "fix", "atan2", "arctan2", "hypot", "copysign", "heaviside", "gcd",
              "lcm"):
    setattr(Tensor, _name + "_", _inplace_method(_name))
for _name in ("erfc", "erfinv", "lgamma", "digamma", "polygamma", "mvlgamma", "i0", "sinc",
              "logit", "xlogy"):
    setattr(Tensor, _name + "_", _inplace_method(_name))
for _name in ("eq", "ne", "lt", "le", "gt", "ge", "greater", "greater_equal", "less",
              "less_equal", "not_equal", "logical_and", "logical_or", "logical_xor",
              "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not", "divide", "multiply",
              "subtract", "cumsum", "cumprod", "tril", "triu", "addmm", "baddbmm", "addbmm",
              "hardshrink"):
    setattr(Tensor, _name + "_", _inplace_method(_name))
del _name
