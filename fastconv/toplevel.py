"""The function forms that PyTorch has at its top level (``torch.cat``, ``torch.exp``, ...),
re-exported as ``fastconv.<name>``. Each one calls the Tensor method of the same name, so
the semantics (and the gradients) are those of the methods."""

from __future__ import annotations

import builtins as _builtins

from fastconv import dtypes
from fastconv.ops import arith
from fastconv.ops import math as fmath
from fastconv.tensor import Tensor, _as_array

__all__ = [
    "abs",
    "add",
    "all",
    "allclose",
    "amax",
    "amin",
    "any",
    "argmax",
    "argmin",
    "argsort",
    "bmm",
    "cat",
    "chunk",
    "clamp",
    "clip",
    "clone",
    "concat",
    "concatenate",
    "cos",
    "div",
    "equal",
    "exp",
    "flatten",
    "flip",
    "is_floating_point",
    "is_tensor",
    "log",
    "log_softmax",
    "matmul",
    "max",
    "maximum",
    "mean",
    "min",
    "minimum",
    "mm",
    "mul",
    "neg",
    "norm",
    "numel",
    "permute",
    "pow",
    "relu",
    "reshape",
    "sigmoid",
    "sin",
    "softmax",
    "sort",
    "split",
    "sqrt",
    "squeeze",
    "stack",
    "std",
    "sub",
    "sum",
    "t",
    "tanh",
    "topk",
    "transpose",
    "unbind",
    "unsqueeze",
    "var",
    "where",
]


def _tensor(x, like=None):
    if isinstance(x, Tensor):
        return x
    return Tensor(_as_array(x, like.device if like is not None else "cpu", what="an operand"))


def cat(tensors, dim: int = 0) -> Tensor:
    """Concatenate tensors along ``dim`` (all other sizes must agree)."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty sequence of tensors")
    ref = tensors[0]
    d = dim % _builtins.max(ref.ndim, 1)
    for i, t in enumerate(tensors[1:], 1):
        if t.ndim != ref.ndim or _builtins.any(a != b for k, (a, b) in enumerate(zip(t.shape, ref.shape))
                                     if k != d):
            raise ValueError(f"cat: tensor {i} has shape {t.shape}, which does not match "
                             f"{ref.shape} outside dim {dim}")
    dtype = ref.dtype
    for t in tensors[1:]:
        dtype = dtypes.promote(dtype, t.dtype)
    return arith.Cat.apply(*[t._cast(dtype) for t in tensors], dim=d)


concat = concatenate = cat


def stack(tensors, dim: int = 0) -> Tensor:
    """Join same-shape tensors along a new dim ``dim``."""
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    for i, t in enumerate(tensors[1:], 1):
        if t.shape != tensors[0].shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got "
                               f"{list(tensors[0].shape)} at entry 0 and {list(t.shape)} at "
                               f"entry {i}")
    nd = tensors[0].ndim + 1
    if not -nd <= dim < nd:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-nd}, {nd - 1}], "
                         f"but got {dim})")
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = dtypes.promote(dtype, t.dtype)
    return fmath.Stack.apply(*[t._cast(dtype) for t in tensors], dim=dim % nd)


def where(condition, input=None, other=None) -> Tensor:
    """``input`` where ``condition`` is True, else ``other`` (broadcast; either may be a
    number). Differentiable in both. ``where(condition)`` alone gives the indices of the True
    entries, one tensor per dim."""
    cond = condition if isinstance(condition, Tensor) else _tensor(condition)
    if input is None and other is None:
        return tuple(Tensor(i) for i in cond.data.nonzero())
    ref = input if isinstance(input, Tensor) else other if isinstance(other, Tensor) else None
    if ref is None:
        raise TypeError("where: input or other must be a tensor")
    a, b = input, other
    ta, tb = [x.dtype if isinstance(x, Tensor) else x for x in (a, b)]
    if isinstance(ta, (bool, int, float)):
        target = dtypes.promote(tb, ta)
    else:
        target = dtypes.promote(ta, tb)
    a = a._cast(target) if isinstance(a, Tensor) else target.type(a)
    b = b._cast(target) if isinstance(b, Tensor) else target.type(b)
    return fmath.Where.apply(cond.data.astype(bool), a, b)


def _method(name, doc=None):
    def fn(input, *args, **kwargs):
        return getattr(_tensor(input), name)(*args, **kwargs)

    fn.__name__ = name
    fn.__doc__ = doc or f"``fastconv.{name}(input, ...)`` is ``input.{name}(...)``."
    return fn


exp = _method("exp")
log = _method("log")
sqrt = _method("sqrt")
sin = _method("sin")
cos = _method("cos")
abs = _method("abs")
clamp = _method("clamp")
clip = _method("clip")
sigmoid = _method("sigmoid")
tanh = _method("tanh")
relu = _method("relu")
neg = _method("neg")
sum = _method("sum")
mean = _method("mean")
std = _method("std")
var = _method("var")
norm = _method("norm")
amax = _method("amax")
amin = _method("amin")
argmax = _method("argmax")
argmin = _method("argmin")
topk = _method("topk")
sort = _method("sort")
argsort = _method("argsort")
any = _method("any")
all = _method("all")
flatten = _method("flatten")
reshape = _method("reshape")
squeeze = _method("squeeze")
unsqueeze = _method("unsqueeze")
transpose = _method("transpose")
permute = _method("permute")
flip = _method("flip")
split = _method("split")
chunk = _method("chunk")
unbind = _method("unbind")
clone = _method("clone")
t = _method("t")


def softmax(input, dim, dtype=None):
    """``exp(x) / sum(exp(x))`` along ``dim``."""
    x = _tensor(input)
    return (x if dtype is None else x.to(dtype)).softmax(dim)


def log_softmax(input, dim, dtype=None):
    """``log(softmax(x))`` along ``dim``, computed stably."""
    x = _tensor(input)
    return (x if dtype is None else x.to(dtype)).log_softmax(dim)


def max(input, dim=None, keepdim: bool = False):
    """``max(input)``: the largest element; ``max(input, dim)``: (values, indices);
    ``max(input, other)``: the elementwise maximum."""
    return _tensor(input).max(dim, keepdim)


def min(input, dim=None, keepdim: bool = False):
    """``min(input)``, ``min(input, dim)`` -> (values, indices), or ``min(input, other)``."""
    return _tensor(input).min(dim, keepdim)


def maximum(input, other):
    return _tensor(input).maximum(other)


def minimum(input, other):
    return _tensor(input).minimum(other)


def add(input, other, *, alpha=1):
    return _tensor(input) + (other if alpha == 1 else other * alpha)


def sub(input, other, *, alpha=1):
    return _tensor(input) - (other if alpha == 1 else other * alpha)


def mul(input, other):
    return _tensor(input) * other


def div(input, other):
    return _tensor(input) / other


def pow(input, exponent):
    return _tensor(input) ** exponent


def matmul(input, other):
    """Matrix product with NumPy's broadcasting rules (as ``torch.matmul``)."""
    return _tensor(input) @ other


def mm(input, mat2):
    """2-D matrix product."""
    if input.ndim != 2 or mat2.ndim != 2:
        raise RuntimeError("self must be a matrix" if input.ndim != 2 else "mat2 must be a matrix")
    return input @ mat2


def bmm(input, mat2):
    """Batched matrix product of (B, n, m) and (B, m, p)."""
    if input.ndim != 3 or mat2.ndim != 3:
        raise RuntimeError("batch1 must be a 3D tensor" if input.ndim != 3 else
                           "batch2 must be a 3D tensor")
    return input @ mat2


def numel(input) -> int:
    return input.numel()


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)


def is_floating_point(input) -> bool:
    return input.is_floating_point()


def allclose(input, other, rtol=1e-5, atol=1e-8, equal_nan=False) -> bool:
    import numpy as np

    return bool(np.allclose(np.asarray(input), np.asarray(other), rtol, atol, equal_nan))


def equal(input, other) -> bool:
    import numpy as np

    return input.shape == other.shape and bool(np.array_equal(np.asarray(input),
                                                              np.asarray(other)))
