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
  tensor gets the result as a new array (earlier graph nodes keep the old values), so views
  taken before do not see that change.
* ``+=`` and the other augmented operators are in place (``add_`` and so on), as in PyTorch.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from fastconv import autograd, dtypes
from fastconv.backend import device_of, get_backend
from fastconv.device import as_device
from fastconv.device import of as _device_object
from fastconv.ops import arith
from fastconv.ops import math as fmath

_FLOAT_CONVERTED = (np.float64, np.float16)

# PyTorch's torch.return_types: a (values, indices) pair that also unpacks.
MaxResult = namedtuple("max", ["values", "indices"])
MinResult = namedtuple("min", ["values", "indices"])
TopkResult = namedtuple("topk", ["values", "indices"])
SortResult = namedtuple("sort", ["values", "indices"])

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
    if data.dtype.kind == "O" or data.dtype.kind in "USVc":
        raise TypeError(f"cannot make a tensor from an array of dtype {data.dtype}")
    if data.dtype.type in _FLOAT_CONVERTED:
        if what is not None:
            dtypes.warn_float32(what, data.dtype, stacklevel=3)
        data = data.astype(np.float32)
    if device_of(data) != device:
        data = xp.asarray(data) if device == "cuda" else data.get()
    return data


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


class _HookHandle:
    def __init__(self, hooks, hook):
        self.hooks, self.hook = hooks, hook

    def remove(self):
        if self.hook in self.hooks:
            self.hooks.remove(self.hook)


class Tensor:
    """An n-dimensional float32 (or integer / bool) array that records ops for autograd.

    ``data`` is the underlying NumPy/CuPy array. Tensors created by ops on
    inputs that require a gradient point to the Function that made them
    (``_ctx``); ``backward()`` fills ``.grad`` of the leaves.

    ``Tensor(data)`` (like ``torch.Tensor(data)``) makes float32 from any float data, without
    a warning; ``fastconv.tensor`` is the factory that warns about float64.
    """

    __array_priority__ = 1000  # ndarray (op) Tensor defers to Tensor's reflected operators
    _version = 0      # bumped by each in-place change (checked by backward)
    _strides = None   # the strides PyTorch would have (None: those of ``data``)
    _hooks = None     # gradient hooks of a leaf
    _post_accumulate_hooks = None  # hooks run once a leaf's .grad is complete in a backward

    def __init__(self, data, requires_grad: bool = False, _ctx=None):
        if isinstance(data, Tensor):
            data = data.data
        if not hasattr(data, "dtype") or not hasattr(data, "shape"):
            data = np.asarray(data)
        if data.dtype.type in _FLOAT_CONVERTED:
            data = data.astype(np.float32)
        self.data = data
        self.grad: Tensor | None = None
        self._ctx = _ctx
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # ---- properties -------------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return tuple(self.data.shape)

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
        return self.transpose(-2, -1)

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def numel(self) -> int:
        return int(self.data.size)

    nelement = numel

    def dim(self) -> int:
        return self.data.ndim

    def element_size(self) -> int:
        return int(self.data.dtype.itemsize)

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
            raise TypeError(f"only floating-point tensors can require a gradient, got {self.dtype}")
        if not requires_grad and self._ctx is not None:
            raise RuntimeError(
                "you can only change requires_grad flags of leaf variables. If you want to use "
                "a computed variable in a subgraph that doesn't require differentiation use "
                "var_no_grad = var.detach().")
        self.requires_grad = bool(requires_grad)
        return self

    # ---- conversion -------------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (copied from the GPU when needed; shared on the CPU)."""
        if self.requires_grad:
            raise RuntimeError("numpy() on a tensor that requires grad: call .detach().numpy()")
        return self.data if self.device == "cpu" else self.data.get()

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
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
        self.requires_grad = False
        return self

    def clone(self) -> Tensor:
        """A copy that stays in the graph (gradients flow back to ``self``)."""
        return fmath.Clone.apply(self)

    def contiguous(self) -> Tensor:
        """``self`` when it is contiguous, else a contiguous copy (as PyTorch)."""
        if self.is_contiguous():
            return self
        return fmath.Clone.apply(self)

    def is_contiguous(self) -> bool:
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
        return strides if dim is None else strides[dim]

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
        return self._cast(dtypes.storable(dtype, "Tensor.type", stacklevel=2))

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

    def long(self) -> Tensor:
        return self._cast(dtypes.int64)

    def int(self) -> Tensor:
        return self._cast(dtypes.int32)

    def bool(self) -> Tensor:
        return self._cast(dtypes.bool_)

    def type_as(self, other: Tensor) -> Tensor:
        return self._cast(other.dtype)

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

    def cuda(self, device=None, non_blocking: bool = False) -> Tensor:
        return self.to("cuda" if device is None else as_device(device))

    def __array__(self, dtype=None, copy=None):
        a = self.data if self.device == "cpu" else self.data.get()
        return a if dtype is None else a.astype(dtype)

    # ---- autograd ---------------------------------------------------------------------------
    def backward(self, gradient=None, retain_graph: bool = False, grad=None) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``.

        ``gradient`` defaults to 1 for a one-element tensor; other shapes need it given.
        """
        if grad is not None:  # the old keyword
            gradient = grad
        if not self.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a "
                               "grad_fn (backward() on a tensor that does not require grad)")
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"grad can be implicitly created only for scalar outputs: backward() without "
                    f"a gradient needs a one-element tensor, got shape {self.shape}"
                )
            gradient = self.data.dtype.type(1) * get_backend(self.device).xp.ones_like(self.data)
        else:
            gradient = _as_array(gradient, self.device)
            if gradient.shape != self.data.shape:
                raise ValueError(
                    f"backward(): gradient shape {gradient.shape} != tensor shape {self.shape}")
        autograd.backward(self, gradient, retain_graph=retain_graph)

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
        return fn.apply(b, a) if swap else fn.apply(a, b)

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
        return arith.Neg.apply(self)

    def __pow__(self, p):
        if isinstance(p, Tensor) and p.ndim == 0 and not p.requires_grad:
            p = p.item()
        if not isinstance(p, (int, float)):
            raise TypeError(f"only a constant exponent is supported, got {type(p).__name__}")
        if self.dtype.kind != "f" and (isinstance(p, float) or p < 0):
            return self.float() ** p
        return arith.Pow.apply(self, float(p) if self.dtype.kind == "f" else p)

    def __matmul__(self, other):
        return arith.MatMul.apply(self, self._lift(other))

    def __rmatmul__(self, other):
        return arith.MatMul.apply(self._lift(other), self)

    add = __add__
    sub = __sub__
    mul = __mul__
    div = __truediv__
    pow = __pow__
    neg = __neg__
    matmul = __matmul__

    # Comparisons give constant (non-differentiable) tensors.
    def _compare(self, other, op):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor(op(self.data, other))

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
        return fmath.Abs.apply(self)

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

    def sign(self) -> Tensor:
        return Tensor(get_backend(self.device).xp.sign(self.data))

    def masked_fill(self, mask, value) -> Tensor:
        """``value`` where ``mask`` is True, else ``self`` (differentiable in ``self``)."""
        from fastconv.toplevel import where

        return where(mask, value, self)

    # ---- in-place ---------------------------------------------------------------------------
    def _check_inplace(self, *others, view=False) -> bool:
        """Whether this in-place op must be recorded in the graph; raises PyTorch's error for
        a leaf that requires grad."""
        if not autograd.is_grad_enabled():
            return False
        if self.requires_grad and self._ctx is None:
            raise RuntimeError(_LEAF_VIEW_INPLACE if view else _LEAF_INPLACE)
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
            self.requires_grad = out.requires_grad
        else:
            self.data[...] = out.data
        self._version += 1
        return self

    def _inplace(self, compute, *others):
        tracked = self._check_inplace(*others)
        if tracked:
            source = Tensor.__new__(Tensor)
            source.data, source.grad, source._ctx = self.data, None, self._ctx
            source.requires_grad = self.requires_grad
            source._version = self._version
            return self._assign(compute(source), True)
        with autograd.set_grad_enabled(False):
            return self._assign(compute(self), False)

    def add_(self, other, alpha=1):
        return self._inplace(lambda s: s + (other if alpha == 1 else other * alpha), other)

    def sub_(self, other, alpha=1):
        return self._inplace(lambda s: s - (other if alpha == 1 else other * alpha), other)

    def mul_(self, other):
        return self._inplace(lambda s: s * other, other)

    def div_(self, other):
        return self._inplace(lambda s: s / other, other)

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
            source = Tensor.__new__(Tensor)
            source.data, source.grad, source._ctx = self.data, None, self._ctx
            source.requires_grad = self.requires_grad
            v = value._cast(self.dtype) if isinstance(value, Tensor) else value
            if not isinstance(v, Tensor) and not isinstance(v, (int, float, bool)):
                v = Tensor(_as_array(v, self.device, what="x[index] = array"))
            self._assign(fmath.SetItem.apply(source, v, index), True)
            return
        raw = value.data if isinstance(value, Tensor) else value
        if not isinstance(raw, (int, float, bool)) and not isinstance(value, Tensor):
            raw = _as_array(raw, self.device, what="x[index] = array")
        self.data[index] = raw
        self._version += 1

    # ---- reductions -------------------------------------------------------------------------
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

    def mean(self, dim=None, keepdim: bool = False, dtype=None):
        t = self if dtype is None else self._cast(dtypes.storable(dtype, "mean", stacklevel=2))
        t._float_only("mean")
        return arith.Mean.apply(t, dim=dim, keepdim=keepdim)

    def var(self, dim=None, unbiased=None, keepdim: bool = False, *, correction=None):
        """Variance over ``dim`` (all dims by default), divided by N - correction
        (correction=1 by default; ``unbiased=False`` means correction=0)."""
        if isinstance(dim, bool):  # var(unbiased)
            dim, unbiased = None, dim
        if correction is None:
            correction = 1 if unbiased is None or unbiased else 0
        self._float_only("var")
        return fmath.Var.apply(self, dim=dim, correction=correction, keepdim=keepdim)

    def std(self, dim=None, unbiased=None, keepdim: bool = False, *, correction=None):
        """Square root of :meth:`var` (same arguments)."""
        self._float_only("std")
        return self.var(dim, unbiased, keepdim, correction=correction).sqrt()

    def norm(self, p="fro", dim=None, keepdim: bool = False):
        """The p-norm over ``dim`` (all elements by default): "fro"/2, 1, inf, or any p > 0."""
        self._float_only("linalg.vector_norm")
        if p in ("fro", 2, 2.0):
            return (self * self).sum(dim, keepdim).sqrt()
        if p in (1, 1.0):
            return self.abs().sum(dim, keepdim)
        if p in (float("inf"), "inf"):
            a = self.abs()
            return a.max() if dim is None else a.amax(dim, keepdim)
        if isinstance(p, (int, float)) and p > 0:
            return (self.abs() ** float(p)).sum(dim, keepdim) ** (1.0 / p)
        raise ValueError(f"norm: unsupported p={p!r} (use 'fro', 1, 2, inf or a positive number)")

    def amax(self, dim, keepdim: bool = False):
        return self.max(dim, keepdim).values

    def amin(self, dim, keepdim: bool = False):
        return self.min(dim, keepdim).values

    def _select_along(self, index, dim, keepdim):
        xp = get_backend(self.device).xp
        idx = xp.expand_dims(index, dim)
        values = fmath.TakeAlong.apply(self, idx, dim)
        return values if keepdim else values.squeeze(dim)

    def max(self, dim=None, keepdim: bool = False):
        """The largest element; or (values, indices) along ``dim`` as in PyTorch; or the
        elementwise maximum with another tensor."""
        if isinstance(dim, Tensor):
            return self.maximum(dim)
        if dim is None:
            return fmath.MaxAll.apply(self, True)
        values = arith.Max.apply(self, dim=dim, keepdim=keepdim)
        return MaxResult(values, self.argmax(dim=dim, keepdim=keepdim))

    def min(self, dim=None, keepdim: bool = False):
        """The smallest element; or (values, indices) along ``dim``; or the elementwise
        minimum with another tensor."""
        if isinstance(dim, Tensor):
            return self.minimum(dim)
        if dim is None:
            return fmath.MaxAll.apply(self, False)
        (d,) = arith._normalise_dims(dim, self.ndim)
        index = self.data.argmin(axis=d)
        return MinResult(self._select_along(index, d, keepdim),
                         self.argmin(dim=dim, keepdim=keepdim))

    def argmax(self, dim=None, keepdim: bool = False) -> Tensor:
        if dim is None:
            return Tensor(self.data.argmax())
        idx = self.data.argmax(axis=dim)
        return Tensor(get_backend(self.device).xp.expand_dims(idx, dim) if keepdim else idx)

    def argmin(self, dim=None, keepdim: bool = False) -> Tensor:
        if dim is None:
            return Tensor(self.data.argmin())
        idx = self.data.argmin(axis=dim)
        return Tensor(get_backend(self.device).xp.expand_dims(idx, dim) if keepdim else idx)

    def _order(self, dim, descending):
        xp = get_backend(self.device).xp
        key = self.data.astype(np.int8) if self.dtype.kind == "b" else self.data
        if descending:
            key = -key.astype(np.float64) if key.dtype.kind == "u" else -key
        return xp.argsort(key, axis=dim, kind="stable")

    def sort(self, dim: int = -1, descending: bool = False, stable: bool = False):
        """(values, indices) sorted along ``dim``; ties keep their order."""
        (d,) = arith._normalise_dims(dim, self.ndim)
        index = self._order(d, descending)
        return SortResult(fmath.TakeAlong.apply(self, index, d), Tensor(index))

    def argsort(self, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
        (d,) = arith._normalise_dims(dim, self.ndim)
        return Tensor(self._order(d, descending))

    def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
        """The ``k`` largest (or smallest) entries along ``dim``, as (values, indices)."""
        (d,) = arith._normalise_dims(dim, self.ndim)
        if not 0 <= k <= self.shape[d]:
            raise RuntimeError("selected index k out of range")
        index = self._order(d, largest)
        index = index[(slice(None),) * d + (slice(0, k),)]
        return TopkResult(fmath.TakeAlong.apply(self, index, d), Tensor(index))

    def any(self, dim=None, keepdim: bool = False) -> Tensor:
        return Tensor(self.data.astype(bool).any(axis=dim, keepdims=keepdim))

    def all(self, dim=None, keepdim: bool = False) -> Tensor:
        return Tensor(self.data.astype(bool).all(axis=dim, keepdims=keepdim))

    # ---- shape ------------------------------------------------------------------------------
    def reshape(self, *shape):
        return arith.Reshape.apply(self, _shape_args(shape))

    def _resolve_shape(self, shape):
        shape = list(shape)
        if shape.count(-1) > 1:
            raise RuntimeError("only one dimension can be inferred")
        if -1 in shape:
            known = int(np.prod([s for s in shape if s != -1]))
            if known == 0 or self.numel() % known:
                raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size "
                                   f"{self.numel()}")
            shape[shape.index(-1)] = self.numel() // known
        if int(np.prod(shape)) != self.numel():
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {self.numel()}")
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
        nd = max(self.ndim, 1)
        start, end = start_dim % nd, end_dim % nd
        shape = self.shape[:start] + (-1,) + self.shape[end + 1:]
        return self.reshape(shape)

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
        if sorted(d % max(self.ndim, 1) for d in dims) != list(range(self.ndim)):
            raise ValueError(f"permute: {dims} is not a permutation of {self.ndim} dimensions")
        dims = tuple(d % self.ndim for d in dims)
        strides = self.stride()
        out = arith.Permute.apply(self, dims)
        permuted = tuple(strides[d] for d in dims)
        if permuted != _contiguous_strides(out.shape):
            out._strides = permuted
        return out

    def transpose(self, dim0: int, dim1: int):
        dims = list(range(self.ndim))
        dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
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
                raise RuntimeError(
                    f"The expanded size of the tensor ({s}) must match the existing size ({n}) "
                    f"at non-singleton dimension {i}.  Target sizes: {list(sizes)}.  Tensor "
                    f"sizes: {list(self.shape)}")
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

    def flip(self, *dims):
        dims = arith._normalise_dims(_shape_args(dims), self.ndim)
        return fmath.Flip.apply(self, dims)

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
        if isinstance(index, tuple):
            return tuple(i.data if isinstance(i, Tensor) else i for i in index)
        return index

    def __getitem__(self, index):
        return arith.GetItem.apply(self, self._raw_index(index))

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

    def new_tensor(self, data, dtype=None, device=None, requires_grad=False):
        return tensor(data, dtype=dtype or self.dtype, device=device or self.device,
                      requires_grad=requires_grad)

    # ---- display ----------------------------------------------------------------------------
    def __repr__(self) -> str:
        body = np.array2string(np.asarray(self.__array__()), precision=4, separator=", ",
                               prefix="tensor(")
        extras = []
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self.dtype != np.float32:
            extras.append(f"dtype={self.dtype}")
        if self._ctx is not None:
            extras.append(f"grad_fn=<{type(self._ctx).__name__}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"


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
        array = np.asarray(data).astype(target)
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
