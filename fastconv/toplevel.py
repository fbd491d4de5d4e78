"""The function forms that PyTorch has at its top level (``torch.cat``, ``torch.exp``, ...),
re-exported as ``fastconv.<name>``. Each one calls the Tensor method of the same name, so
the semantics (and the gradients) are those of the methods."""

from __future__ import annotations

import builtins as _builtins

from fastconv import dtypes
from fastconv.backend import get_backend
from fastconv.ops import arith
from fastconv.ops import math as fmath
from fastconv.tensor import Tensor, _as_array, set_printoptions  # noqa: F401

__all__ = [
    "scatter_reduce",
    "nanquantile",
    "mode",
    "quantile",
    "kthvalue",
    "take_along_dim",
    "index_fill",
    "index_copy",
    "index_add",
    "abs",
    "add",
    "addcdiv",
    "addcmul",
    "addmm",
    "all",
    "allclose",
    "isclose",
    "set_default_dtype",
    "set_printoptions",
    "amax",
    "amin",
    "aminmax",
    "any",
    "argmax",
    "argmin",
    "argsort",
    "msort",
    "argwhere",
    "baddbmm",
    "bincount",
    "bmm",
    "broadcast_tensors",
    "broadcast_to",
    "cat",
    "ceil",
    "chunk",
    "clamp",
    "clamp_max",
    "clamp_min",
    "clip",
    "clone",
    "concat",
    "concatenate",
    "cos",
    "count_nonzero",
    "cumprod",
    "cumsum",
    "div",
    "divide",
    "dot",
    "einsum",
    "eq",
    "equal",
    "erf",
    "exp",
    "expm1",
    "finfo",
    "flatten",
    "flip",
    "floor",
    "floor_divide",
    "fmod",
    "frac",
    "gather",
    "ge",
    "ger",
    "get_default_dtype",
    "greater",
    "greater_equal",
    "gt",
    "hstack",
    "iinfo",
    "index_select",
    "is_floating_point",
    "is_tensor",
    "isfinite",
    "isinf",
    "isnan",
    "le",
    "lerp",
    "less",
    "less_equal",
    "log",
    "log1p",
    "log2",
    "log10",
    "log_softmax",
    "logical_and",
    "logical_not",
    "logical_or",
    "logical_xor",
    "logsumexp",
    "lt",
    "masked_fill",
    "masked_scatter",
    "masked_select",
    "matmul",
    "max",
    "maximum",
    "mean",
    "median",
    "meshgrid",
    "min",
    "minimum",
    "mm",
    "moveaxis",
    "movedim",
    "mul",
    "multiply",
    "mv",
    "narrow",
    "ne",
    "neg",
    "nonzero",
    "norm",
    "not_equal",
    "numel",
    "outer",
    "permute",
    "pow",
    "prod",
    "ravel",
    "relu",
    "remainder",
    "repeat_interleave",
    "reshape",
    "roll",
    "round",
    "rsqrt",
    "scatter",
    "scatter_add",
    "sigmoid",
    "sign",
    "sin",
    "softmax",
    "sort",
    "split",
    "sqrt",
    "square",
    "squeeze",
    "stack",
    "std",
    "std_mean",
    "sub",
    "subtract",
    "sum",
    "swapaxes",
    "swapdims",
    "t",
    "tanh",
    "topk",
    "transpose",
    "tril",
    "triu",
    "true_divide",
    "trunc",
    "unbind",
    "unflatten",
    "unique",
    "unique_consecutive",
    "unsqueeze",
    "var",
    "var_mean",
    "vstack",
    "where",
    # trigonometric, hyperbolic and more elementwise math
    "tan",
    "asin",
    "acos",
    "atan",
    "sinh",
    "cosh",
    "asinh",
    "acosh",
    "atanh",
    "arcsin",
    "arccos",
    "arctan",
    "arcsinh",
    "arccosh",
    "arctanh",
    "deg2rad",
    "rad2deg",
    "exp2",
    "absolute",
    "negative",
    "sgn",
    "signbit",
    "isposinf",
    "isneginf",
    "isreal",
    "nan_to_num",
    "frexp",
    "fix",
    "atan2",
    "arctan2",
    "hypot",
    "logaddexp",
    "logaddexp2",
    "copysign",
    "heaviside",
    "fmax",
    "fmin",
    "gcd",
    "lcm",
    "ldexp",
    "float_power",
]


def _tensor(x, like=None):
    if isinstance(x, Tensor):
        return x
    return Tensor(_as_array(x, like.device if like is not None else "cpu", what="an operand"))


def _dim_alias(op, dim, axis, out):
    """``axis=`` is NumPy's name for ``dim`` (PyTorch accepts both); ``out=`` is refused."""
    if out is not None:
        raise TypeError(f"{op}(): out= is not supported by fastconv; use the returned tensor")
    return dim if axis is None else axis


def _tensor_list(op, tensors) -> list:
    """``tensors`` (a sequence of Tensors) as a list, with torch's TypeErrors for anything
    else (a lone tensor, an array or a number in the list)."""
    if isinstance(tensors, Tensor) or not hasattr(tensors, "__iter__") or \
            isinstance(tensors, (str, bytes)) or hasattr(tensors, "shape"):
        raise TypeError(f"{op}(): argument 'tensors' (position 1) must be tuple of Tensors, "
                        f"not {type(tensors).__name__}")
    tensors = list(tensors)
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"expected Tensor as element {i} in argument 0, but got "
                            f"{type(t).__module__ + '.' if type(t).__module__ == 'numpy' else ''}"
                            f"{type(t).__name__}")
    return tensors


def _dim_int(op, dim) -> int:
    """``dim`` as an int, with torch's TypeError naming ``op`` for a float, bool or other
    non-integer."""
    try:
        return arith._dim_int(dim)
    except TypeError:
        raise TypeError(f"{op}(): argument 'dim' (position 2) must be int, not "
                        f"{type(dim).__name__}") from None


def cat(tensors, dim: int = 0, *, axis=None, out=None) -> Tensor:
    """Concatenate tensors along ``dim`` (all other sizes must agree)."""
    dim = _dim_int("cat", _dim_alias("cat", dim, axis, out))
    tensors = _tensor_list("cat", tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty sequence of tensors")
    for i, t in enumerate(tensors):
        if t.ndim == 0:
            raise RuntimeError(f"zero-dimensional tensor (at position {i}) cannot be "
                               f"concatenated")
    ref = tensors[0]
    (d,) = arith._normalise_dims(dim, ref.ndim)
    for i, t in enumerate(tensors[1:], 1):
        if t.ndim != ref.ndim:
            raise RuntimeError(f"Tensors must have same number of dimensions: got {ref.ndim} "
                               f"and {t.ndim}")
        for k, (a, b) in enumerate(zip(ref.shape, t.shape)):
            if a != b and k != d:
                raise RuntimeError(f"Sizes of tensors must match except in dimension {d}. "
                                   f"Expected size {a} but got size {b} for tensor number {i} "
                                   f"in the list.")
    dtype = ref.dtype
    for t in tensors[1:]:
        dtype = dtypes.promote(dtype, t.dtype)
    return arith.Cat.apply(*[t._cast(dtype) for t in tensors], dim=d)


concat = concatenate = cat


def stack(tensors, dim: int = 0, *, axis=None, out=None) -> Tensor:
    """Join same-shape tensors along a new dim ``dim``."""
    dim = _dim_int("stack", _dim_alias("stack", dim, axis, out))
    tensors = _tensor_list("stack", tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    for i, t in enumerate(tensors[1:], 1):
        if t.shape != tensors[0].shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got "
                               f"{list(tensors[0].shape)} at entry 0 and {list(t.shape)} at "
                               f"entry {i}")
    (d,) = arith._normalise_dims(dim, tensors[0].ndim + 1)
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = dtypes.promote(dtype, t.dtype)
    return fmath.Stack.apply(*[t._cast(dtype) for t in tensors], dim=d)


def where(condition, input=None, other=None) -> Tensor:
    """``input`` where ``condition`` is True, else ``other`` (broadcast; either may be a
    number). Differentiable in both. ``where(condition)`` alone gives the indices of the True
    entries, one tensor per dim."""
    cond = condition if isinstance(condition, Tensor) else _tensor(condition)
    if input is None and other is None:
        return tuple(Tensor(i) for i in cond.data.nonzero())
    a, b = input, other
    target = _where_dtype(a, b)
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):  # two numbers
        a = Tensor(get_backend(cond.device).xp.asarray(a, dtype=target))
    a = a._cast(target) if isinstance(a, Tensor) else target.type(a)
    b = b._cast(target) if isinstance(b, Tensor) else target.type(b)
    try:
        return fmath.Where.apply(cond.data.astype(bool), a, b)
    except ValueError:
        arith.raise_if_not_broadcastable(cond, a, b)
        raise


def _where_dtype(a, b):
    """torch.result_type of ``where``'s two values: tensors with dims decide unless the rest
    is of a higher kind (bool < integer < float), then 0-d tensors, then numbers (an int as
    int64, a float as float32); floating results are float32 (fastconv has no float64)."""
    kind = {"b": 0, "u": 1, "i": 1, "f": 2}
    groups = ([], [], [])  # dtypes of tensors with dims, of 0-d tensors, of numbers
    for x in (a, b):
        if isinstance(x, Tensor):
            groups[0 if x.ndim else 1].append(x.dtype)
        elif isinstance(x, (bool, _np.bool_)):
            groups[2].append(_np.dtype(bool))
        elif isinstance(x, (int, _np.integer)):
            groups[2].append(_np.dtype(_np.int64))
        elif isinstance(x, (float, _np.floating)):
            groups[2].append(dtypes.float32)
        else:
            raise TypeError(f"where: expected a tensor or a number, got {type(x).__name__}")
    result = None
    for group in groups:
        if not group:
            continue
        dt = _np.result_type(*group)
        if result is None or kind[_np.dtype(dt).kind] > kind[_np.dtype(result).kind]:
            result = dt
        elif _np.dtype(result).kind == "b":  # bool takes the lower group's integer type
            result = _np.promote_types(result, dt)
    return _np.dtype(dtypes.float32) if _np.dtype(result).kind == "f" else _np.dtype(result)


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
amax = _method("amax")
amin = _method("amin")
argmax = _method("argmax")
argmin = _method("argmin")
topk = _method("topk")
sort = _method("sort")
argsort = _method("argsort")
msort = _method("msort")
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
square = _method("square")
rsqrt = _method("rsqrt")
expm1 = _method("expm1")
log1p = _method("log1p")
log2 = _method("log2")
log10 = _method("log10")
erf = _method("erf")
round = _method("round")
floor = _method("floor")
ceil = _method("ceil")
trunc = _method("trunc")
frac = _method("frac")
sign = _method("sign")
clamp_min = _method("clamp_min")
clamp_max = _method("clamp_max")
isnan = _method("isnan")
isinf = _method("isinf")
isfinite = _method("isfinite")
eq = _method("eq")
ne = not_equal = _method("ne")
gt = greater = _method("gt")
ge = greater_equal = _method("ge")
lt = less = _method("lt")
le = less_equal = _method("le")
logical_and = _method("logical_and")
logical_or = _method("logical_or")
logical_xor = _method("logical_xor")
logical_not = _method("logical_not")
remainder = _method("remainder")
fmod = _method("fmod")
floor_divide = _method("floor_divide")
true_divide = _method("true_divide")
lerp = _method("lerp")
addcmul = _method("addcmul")
addcdiv = _method("addcdiv")
prod = _method("prod")
cumsum = _method("cumsum")
cumprod = _method("cumprod")
logsumexp = _method("logsumexp")
median = _method("median")
aminmax = _method("aminmax")
count_nonzero = _method("count_nonzero")
nonzero = _method("nonzero")
argwhere = _method("argwhere")
unflatten = _method("unflatten")
ravel = _method("ravel")
narrow = _method("narrow")
roll = _method("roll")
tril = _method("tril")
triu = _method("triu")
movedim = moveaxis = _method("movedim")
swapaxes = swapdims = _method("swapaxes")
outer = ger = _method("outer")
dot = _method("dot")
mv = _method("mv")
repeat_interleave = _method("repeat_interleave")
gather = _method("gather")
scatter = _method("scatter")
scatter_add = _method("scatter_add")
scatter_reduce = _method("scatter_reduce")
index_select = _method("index_select")
index_add = _method("index_add")
index_copy = _method("index_copy")
index_fill = _method("index_fill")
take_along_dim = _method("take_along_dim")
kthvalue = _method("kthvalue")
mode = _method("mode")
quantile = _method("quantile")
nanquantile = _method("nanquantile")
masked_fill = _method("masked_fill")
masked_scatter = _method("masked_scatter")
masked_select = _method("masked_select")
tan = _method("tan")
asin = arcsin = _method("asin")
acos = arccos = _method("acos")
atan = arctan = _method("atan")
sinh = _method("sinh")
cosh = _method("cosh")
asinh = arcsinh = _method("asinh")
acosh = arccosh = _method("acosh")
atanh = arctanh = _method("atanh")
deg2rad = _method("deg2rad")
rad2deg = _method("rad2deg")
exp2 = _method("exp2")
absolute = _method("absolute")
negative = _method("negative")
sgn = _method("sgn")
signbit = _method("signbit")
isposinf = _method("isposinf")
isneginf = _method("isneginf")
isreal = _method("isreal")
nan_to_num = _method("nan_to_num")
frexp = _method("frexp")
fix = _method("fix")
atan2 = arctan2 = _method("atan2")
hypot = _method("hypot")
logaddexp = _method("logaddexp")
logaddexp2 = _method("logaddexp2")
copysign = _method("copysign")
heaviside = _method("heaviside")
fmax = _method("fmax")
fmin = _method("fmin")
gcd = _method("gcd")
lcm = _method("lcm")
ldexp = _method("ldexp")


def float_power(input, exponent):
    """``input ** exponent`` computed in float64 (either may be a number, not both); the
    result is float32 (PyTorch's is float64: fastconv has no float64 tensors)."""
    if not isinstance(input, Tensor) and isinstance(exponent, Tensor):
        return exponent._binary_math(input, "float_power", scalars=True, swap=True)
    return _tensor(input).float_power(exponent)


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


subtract = sub


def mul(input, other):
    return _tensor(input) * other


multiply = mul


def div(input, other, *, rounding_mode=None):
    return _tensor(input).div(other, rounding_mode=rounding_mode)


divide = div


def pow(input, exponent):
    """``input ** exponent``; either may be a number (not both), either a tensor."""
    if not isinstance(input, Tensor) and isinstance(exponent, Tensor):
        return input ** exponent  # Tensor.__rpow__
    return _tensor(input) ** exponent


def matmul(input, other):
    """Matrix product with NumPy's broadcasting rules (as ``torch.matmul``)."""
    return _tensor(input) @ other


def mm(input, mat2):
    """2-D matrix product."""
    input, mat2 = _tensor(input), _tensor(mat2, like=input)
    if input.ndim != 2 or mat2.ndim != 2:
        raise RuntimeError("self must be a matrix" if input.ndim != 2 else "mat2 must be a matrix")
    if input.shape[1] != mat2.shape[0]:
        raise arith.matmul_shape_error(input.shape, mat2.shape)
    return input @ mat2


def bmm(input, mat2):
    """Batched matrix product of (B, n, m) and (B, m, p) (no broadcasting of B)."""
    input, mat2 = _tensor(input), _tensor(mat2, like=input)
    if input.ndim != 3 or mat2.ndim != 3:
        raise RuntimeError("batch1 must be a 3D tensor" if input.ndim != 3 else
                           "batch2 must be a 3D tensor")
    b, _, k = input.shape
    if mat2.shape[:2] != (b, k):
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                           f"[{b}, {k}] but got: [{mat2.shape[0]}, {mat2.shape[1]}].")
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


def isclose(input, other, rtol=1e-5, atol=1e-8, equal_nan=False) -> Tensor:
    """Elementwise |input - other| <= atol + rtol * |other|, as a bool tensor (torch's)."""
    a, b = _tensor(input), other.data if isinstance(other, Tensor) else other
    try:
        return Tensor(get_backend(a.device).xp.isclose(a.data, b, rtol, atol, equal_nan))
    except ValueError:
        arith.raise_if_not_broadcastable(a, b)
        raise


def equal(input, other) -> bool:
    import numpy as np

    return input.shape == other.shape and bool(np.array_equal(np.asarray(input),
                                                              np.asarray(other)))


def std_mean(input, dim=None, unbiased=None, keepdim: bool = False, *, correction=None):
    """(std, mean) over ``dim`` (Tensor.std's arguments)."""
    x = _tensor(input)
    return (x.std(dim, unbiased, keepdim, correction=correction),
            x.mean(dim if dim is not None else None, keepdim))


def var_mean(input, dim=None, unbiased=None, keepdim: bool = False, *, correction=None):
    """(var, mean) over ``dim`` (Tensor.var's arguments)."""
    x = _tensor(input)
    return (x.var(dim, unbiased, keepdim, correction=correction),
            x.mean(dim if dim is not None else None, keepdim))


def addmm(input, mat1, mat2, *, beta=1, alpha=1):
    """``beta * input + alpha * (mat1 @ mat2)`` (input broadcast; ignored when beta == 0)."""
    return _scaled_sum(input, mm(mat1, mat2), beta, alpha)


def baddbmm(input, batch1, batch2, *, beta=1, alpha=1):
    """``beta * input + alpha * (batch1 @ batch2)`` per batch (input broadcast; ignored when
    beta == 0, as PyTorch: NaNs in it do not propagate)."""
    return _scaled_sum(input, bmm(batch1, batch2), beta, alpha)


def _scaled_sum(input, product, beta, alpha):
    out = product if alpha == 1 else product * alpha
    if beta == 0:
        return out
    return out + (input if beta == 1 else input * beta)


def einsum(equation, *operands) -> Tensor:
    """Einstein summation as ``torch.einsum``: ``einsum("ij,jk->ik", a, b)``, with an
    implicit output (the subscripts that appear once, sorted), ``...`` for broadcast
    leading dims, and the operands given one by one or as one list. Differentiable in every
    operand."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not isinstance(equation, str):
        raise TypeError(f"einsum(): the equation must be a str, got {type(equation).__name__}")
    ts = [_tensor(o) for o in operands]
    if not ts:
        raise RuntimeError("einsum(): must provide at least one operand")
    equation = _explicit_einsum(equation.replace(" ", ""), [t.ndim for t in ts], ts)
    dtype = ts[0].dtype
    for t in ts[1:]:
        dtype = dtypes.promote(dtype, t.dtype)
    return fmath.Einsum.apply(equation, *[t._cast(dtype) for t in ts])


def _explicit_einsum(equation, ndims, ts):
    """``equation`` with its output written out and each ``...`` replaced by letters (the
    shape checks PyTorch makes, with its messages)."""
    lhs, arrow, out = equation.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ndims):
        raise RuntimeError(f"einsum(): {len(terms)} operands were specified in the equation "
                           f"but {len(ndims)} operands were provided")
    letters = {c for c in equation if c.isalpha()}
    for c in equation:
        if not (c.isalpha() or c in ",.->"):
            raise RuntimeError(f"einsum(): invalid subscript given at index {equation.index(c)} "
                               f"in the equation string, subscripts must be in [a-zA-Z]")
    spare = [c for c in "ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqponmlkjihgfedcba"
             if c not in letters]
    widest = 0
    for term, nd in zip(terms, ndims):
        named = len(term.replace("...", ""))
        if "..." in term:
            widest = _builtins.max(widest, nd - named)
        elif named != nd:
            raise RuntimeError(f"einsum(): the number of subscripts in the equation ({named}) "
                               f"does not match the number of dimensions ({nd}) for operand "
                               f"{terms.index(term)} and no ellipsis was given")
    ell = "".join(spare[:widest])
    new_terms = []
    for term, nd in zip(terms, ndims):
        if "..." in term:
            k = nd - len(term.replace("...", ""))
            if k < 0:
                raise RuntimeError(f"einsum(): the number of subscripts in the equation "
                                   f"does not match the number of dimensions ({nd})")
            term = term.replace("...", ell[widest - k:])
        new_terms.append(term)
    if arrow:
        out = out.replace("...", ell)
    else:
        counts = {c: "".join(new_terms).count(c) for c in set("".join(new_terms))}
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    sizes = {}
    for i, (term, t) in enumerate(zip(new_terms, ts)):
        for c, n in zip(term, t.shape):
            if c in sizes and n != sizes[c] and 1 not in (n, sizes[c]):
                raise RuntimeError(f"einsum(): subscript {c} has size {n} for operand {i} "
                                   f"which does not broadcast with previously seen size "
                                   f"{sizes[c]}")
            sizes[c] = _builtins.max(sizes.get(c, 1), n)
    for c in out:
        if c not in sizes:
            raise RuntimeError(f"einsum(): output subscript {c} does not appear in the "
                               f"equation for any input operand")
    return ",".join(new_terms) + "->" + out


unique_consecutive = _method("unique_consecutive")


def unique(input, sorted: bool = True, return_inverse: bool = False,
           return_counts: bool = False, dim=None):
    """The distinct values (sorted), and the inverse indices and counts when asked, as
    ``torch.unique`` returns them (a tensor, or a tuple). Not differentiable."""
    import numpy as np

    x = _tensor(input)
    data = x.data
    if dim is not None:
        (dim,) = arith._normalise_dims(dim, x.ndim)
    res = np.unique(np.asarray(x.__array__()), return_inverse=True, return_counts=True,
                    axis=dim)
    values, inverse, counts = res
    xp = get_backend(x.device).xp
    out = [Tensor(xp.asarray(values.astype(data.dtype, copy=False)))]
    if return_inverse:
        shape = x.shape if dim is None else (x.shape[dim],)
        out.append(Tensor(xp.asarray(inverse.reshape(shape).astype(np.int64))))
    if return_counts:
        out.append(Tensor(xp.asarray(counts.astype(np.int64))))
    return out[0] if len(out) == 1 else tuple(out)


def bincount(input, weights=None, minlength: int = 0) -> Tensor:
    """Counts of each value of a 1-D non-negative integer tensor (or the sums of
    ``weights`` at each value), at least ``minlength`` long."""
    x = _tensor(input)
    if x.ndim != 1 or x.dtype.kind not in "iub" or (x.numel() and int(x.data.min()) < 0):
        raise RuntimeError("bincount only supports 1-d non-negative integral inputs.")
    if minlength < 0:
        raise RuntimeError("minlength should be >= 0")
    xp = get_backend(x.device).xp
    w = None
    if weights is not None:
        w = _tensor(weights, x)
        if w.shape != x.shape:
            raise RuntimeError("weights should be 1-d and have the same length as input")
        w = w.data
    counts = xp.bincount(x.data.astype("int64"), weights=w, minlength=minlength)
    import numpy as np

    return Tensor(counts.astype(np.int64 if w is None else np.float32))


def broadcast_to(input, size) -> Tensor:
    return _tensor(input).expand(*size)


def broadcast_tensors(*tensors):
    shape = arith.broadcast_shapes(*[t.shape for t in tensors])
    return tuple(t.expand(*shape) for t in tensors)


def meshgrid(*tensors, indexing: str = "ij"):
    """Coordinate grids of 1-D tensors; ``indexing="xy"`` swaps the first two (as NumPy).
    PyTorch's default is "ij" (it warns when indexing is not given; fastconv does not)."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing not in ("ij", "xy"):
        raise ValueError(f"torch.meshgrid: indexing must be one of \"xy\" or \"ij\", but "
                         f"received: {indexing}")
    for t in tensors:
        if t.ndim > 1:
            raise RuntimeError("torch.meshgrid: Expected 0D or 1D tensor in the tensor list")
    ts = [t.reshape(-1) for t in tensors]
    shape = tuple(t.shape[0] for t in ts)
    grids = [t.reshape([-1 if k == i else 1 for k in range(len(ts))]).expand(*shape)
             for i, t in enumerate(ts)]
    if indexing == "xy" and len(ts) >= 2:
        grids = [g.transpose(0, 1) for g in grids]
    return tuple(grids)


def hstack(tensors) -> Tensor:
    tensors = list(tensors)
    return cat(tensors, 0 if tensors and tensors[0].ndim == 1 else 1)


def vstack(tensors) -> Tensor:
    return cat([t.reshape(1, -1) if t.ndim < 2 else t for t in tensors], 0)


def get_default_dtype():
    """float32: fastconv's only floating-point compute type (see fastconv.dtypes)."""
    return dtypes.float32


def set_default_dtype(d) -> None:
    """torch.set_default_dtype: float32 is fastconv's default already; float64, float16 and
    bfloat16 warn and keep float32 (see fastconv.dtypes); other types are refused, as
    torch's."""
    dt = dtypes.resolve(d)
    if dt.kind != "f":
        raise TypeError(f"only floating-point types are supported as the default type, got {d}")
    if dt != dtypes.float32:
        dtypes.warn_float32("set_default_dtype", dt, stacklevel=3)


def finfo(type=None):
    """Machine limits of a float dtype (NumPy's finfo: eps, max, min, tiny, resolution)."""
    import numpy as np

    return np.finfo(dtypes.float32 if type is None else type)


def iinfo(type):
    """Machine limits of an integer dtype (NumPy's iinfo: max, min, bits)."""
    import numpy as np

    return np.iinfo(type)


# ---- ops that live in their own modules, as top-level functions and Tensor methods --------

from fastconv.ops import arrange, matrix, scans, statistics  # noqa: E402

_FUNCTIONS = {
    arrange: ("tile", "rot90", "flipud", "fliplr", "tensor_split", "hsplit", "vsplit", "dsplit",
              "dstack", "column_stack", "row_stack", "atleast_1d", "atleast_2d", "atleast_3d",
              "select", "take", "put", "index_put"),
    matrix: ("diagonal", "diag", "diag_embed", "trace", "kron", "tensordot", "addmv", "addr",
             "chain_matmul", "block_diag", "cartesian_prod", "combinations", "vander",
             "tril_indices", "triu_indices", "cdist", "dist", "renorm"),
    scans: ("cummax", "cummin", "logcumsumexp", "diff", "searchsorted", "bucketize"),
    statistics: ("nansum", "nanmean", "cov", "corrcoef", "histc", "histogram"),
}
#: The ones PyTorch also has as Tensor methods (with an in-place ``_`` form where listed).
_TENSOR_METHODS = ("tile", "rot90", "flipud", "fliplr", "tensor_split", "hsplit", "vsplit",
                   "dsplit", "select", "take", "put", "index_put", "diagonal", "diag",
                   "diag_embed", "trace", "kron", "addmv", "addr", "dist", "renorm", "cummax",
                   "cummin", "logcumsumexp", "diff", "nansum", "nanmean", "cov", "corrcoef",
                   "histc", "histogram")
_INPLACE = ("put", "index_put", "addmv", "addr", "renorm")

for _module, _names in _FUNCTIONS.items():
    for _name in _names:
        globals()[_name] = getattr(_module, _name)
    __all__.extend(_names)


def _as_method(fn):
    def method(self, *args, **kwargs):
        return fn(self, *args, **kwargs)

    method.__name__, method.__doc__ = fn.__name__, fn.__doc__
    return method


def _as_inplace(name):
    def method(self, *args, **kwargs):
        return self._inplace(lambda s: getattr(s, name)(*args, **kwargs), *args,
                             *kwargs.values())

    method.__name__, method.__doc__ = name + "_", f"In-place :meth:`Tensor.{name}`."
    return method


for _name in _TENSOR_METHODS:
    setattr(Tensor, _name, _as_method(globals()[_name]))
for _name in _INPLACE:
    setattr(Tensor, _name + "_", _as_inplace(_name))
del _module, _names, _name


# ----------------------------------------------------------------------------- linalg, special
# torch's top-level forms of fastconv.linalg and fastconv.special (and the older torch.svd,
# torch.qr, torch.cholesky, torch.pinverse, ...), with their own argument conventions.

__all__ += [
    "cholesky", "cross", "det", "digamma", "erfc", "erfinv", "i0", "inverse", "lgamma",
    "logdet", "logit", "matrix_exp", "matrix_power", "mvlgamma", "pinverse", "polygamma", "qr",
    "sinc", "slogdet", "svd", "xlogy",
]

from collections import namedtuple as _namedtuple  # noqa: E402

# torch.return_types of the older functions
_Slogdet = _namedtuple("slogdet", ["sign", "logabsdet"])
_QR = _namedtuple("qr", ["Q", "R"])
_SVD = _namedtuple("svd", ["U", "S", "V"])


def norm(input, p="fro", dim=None, keepdim=False, out=None, dtype=None):
    """torch.norm: ``linalg.vector_norm(input, p, dim)`` for a number p (2 when None) and for
    "fro" over at most two dims; ``linalg.matrix_norm`` for "nuc" (over ``dim``, all dims when
    None: so the input must be 2-D then)."""
    from fastconv import linalg

    if out is not None:
        raise NotImplementedError("norm: out= is not supported by fastconv; use the returned "
                                  "tensor")
    x = _tensor(input)
    dims = [dim] if isinstance(dim, int) else dim
    if isinstance(p, str):
        if p == "fro" and (dim is None or isinstance(dim, int) or len(dim) <= 2):
            return linalg.vector_norm(x, 2, dims, keepdim, dtype=dtype)
        return linalg.matrix_norm(x, p, list(range(x.ndim)) if dims is None else dims, keepdim,
                                  dtype=dtype)
    return linalg.vector_norm(x, 2.0 if p is None else p, dims, keepdim, dtype=dtype)


def det(input):
    """``linalg.det``."""
    from fastconv import linalg

    return linalg.det(input)


def logdet(input):
    """``log(det(A))``: NaN where the determinant is negative, -inf where it is 0 (gradient
    ``A^{-T}``, through slogdet)."""
    from fastconv import linalg

    sign, logabsdet = linalg._slogdet(input, "logdet")
    return logabsdet.masked_fill(sign == -1, float("nan"))


def slogdet(input):
    """``linalg.slogdet`` as torch.slogdet's ``(sign, logabsdet)``."""
    from fastconv import linalg

    return _Slogdet(*linalg._slogdet(input, "linalg.slogdet"))


def inverse(input):
    """``linalg.inv``."""
    from fastconv import linalg

    return linalg.inv(input)


def pinverse(input, rcond=1e-15):
    """``linalg.pinv(input, rtol=rcond)``."""
    from fastconv import linalg

    return linalg.pinv(input, rtol=rcond)


def cholesky(input, upper=False):
    """The older torch.cholesky: ``linalg.cholesky(input, upper=upper)``."""
    from fastconv import linalg

    return linalg.cholesky(input, upper=upper)


def qr(input, some=True):
    """The older torch.qr: ``linalg.qr`` with mode 'reduced' (some=True) or 'complete'."""
    from fastconv import linalg

    return _QR(*linalg.qr(input, "reduced" if some else "complete"))


def svd(input, some=True, compute_uv=True):
    """The older torch.svd: ``(U, S, V)`` with V, not its transpose; reduced when ``some``.
    With ``compute_uv=False``, U and V are zero-filled (m, m) and (n, n) matrices, as torch."""
    from fastconv import linalg

    if not compute_uv:
        s = linalg.svdvals(input)
        xp = get_backend(input.device).xp
        m, n = input.shape[-2:]
        batch = tuple(input.shape[:-2])
        return _SVD(Tensor(xp.zeros(batch + (m, m), input.dtype)), s,
                    Tensor(xp.zeros(batch + (n, n), input.dtype)))
    u, s, vh = linalg.svd(input, full_matrices=not some)
    return _SVD(u, s, vh.mT)


def matrix_power(input, n):
    """``linalg.matrix_power``."""
    from fastconv import linalg

    return linalg.matrix_power(input, n)


def matrix_exp(input):
    """``linalg.matrix_exp``."""
    from fastconv import linalg

    return linalg.matrix_exp(input)


def cross(input, other, dim=None):
    """``linalg.cross`` along ``dim``; without dim, along the first dim of length 3 (torch's
    older default, which it deprecates)."""
    from fastconv import linalg

    if dim is None:
        dim = next((i for i, n in enumerate(_tensor(input).shape) if n == 3), None)
        if dim is None:
            raise RuntimeError(f"no dimension of size 3 in input (shape {tuple(input.shape)})")
    return linalg.cross(input, other, dim=dim)


def erfc(input):
    return _tensor(input).erfc()


def erfinv(input):
    return _tensor(input).erfinv()


def lgamma(input):
    return _tensor(input).lgamma()


def digamma(input):
    return _tensor(input).digamma()


def polygamma(n, input):
    """``special.polygamma(n, input)`` (n first, as torch)."""
    return _tensor(input).polygamma(n)


def mvlgamma(input, p):
    return _tensor(input).mvlgamma(p)


def i0(input):
    return _tensor(input).i0()


def sinc(input):
    return _tensor(input).sinc()


def logit(input, eps=None):
    return _tensor(input).logit(eps)


def xlogy(input, other):
    """``special.xlogy``: either argument may be a number."""
    from fastconv import special

    return special.xlogy(input, other)



# ------------------------------------------------------------------------- more of torch's names
import numpy as _np  # noqa: E402

# Tensor methods PyTorch also has as functions (torch.reciprocal(x), torch.relu_(x), ...)
_MORE_METHODS = (
    "reciprocal", "vdot", "diagflat", "nanmedian", "split_with_sizes", "is_nonzero",
    "is_same_size", "is_signed", "is_complex", "is_conj", "is_neg", "conj", "conj_physical",
    "resolve_conj", "resolve_neg", "positive", "adjoint", "detach", "addbmm", "inner",
    "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not", "hardshrink", "prelu",
    "abs_", "acos_", "acosh_", "arccos_", "arccosh_", "arcsin_", "arcsinh_", "arctan_",
    "arctanh_", "asin_", "asinh_", "atan_", "atanh_", "ceil_", "clamp_", "clamp_max_",
    "clamp_min_", "clip_", "cos_", "cosh_", "deg2rad_", "erf_", "erfc_", "exp2_", "exp_",
    "expm1_", "fix_", "floor_", "frac_", "gcd_", "i0_", "lcm_", "ldexp_", "log10_", "log1p_",
    "log2_", "log_", "logit_", "nan_to_num_", "neg_", "negative_", "rad2deg_", "reciprocal_",
    "round_", "rsqrt_", "sigmoid_", "sin_", "sinc_", "sinh_", "sqrt_", "square_", "tan_",
    "tanh_", "trunc_", "xlogy_", "zero_", "fill_", "detach_", "relu_", "index_put_",
)
for _name in _MORE_METHODS:
    if _name not in globals():
        globals()[_name] = _method(_name)
        __all__.append(_name)

# torch.nn.functional ops PyTorch also has at the top level (torch.conv2d, torch.dropout, ...)
_FUNCTIONAL_ALIASES = (
    "adaptive_avg_pool1d", "adaptive_max_pool1d", "alpha_dropout", "avg_pool1d", "batch_norm",
    "bilinear", "binary_cross_entropy_with_logits", "celu", "channel_shuffle", "conv1d",
    "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "cosine_embedding_loss", "cosine_similarity", "ctc_loss", "dropout", "embedding",
    "embedding_bag", "feature_alpha_dropout", "group_norm", "hinge_embedding_loss",
    "instance_norm", "kl_div", "layer_norm", "margin_ranking_loss", "max_pool1d",
    "max_pool1d_with_indices", "max_pool2d", "max_pool3d", "pairwise_distance", "pdist",
    "pixel_shuffle", "pixel_unshuffle", "poisson_nll_loss", "rrelu", "selu", "threshold",
    "triplet_margin_loss", "rms_norm", "celu_", "selu_", "rrelu_", "threshold_",
)


def __getattr__(name):
    # loaded on first use: fastconv.functional imports this module's neighbours
    if name in _FUNCTIONAL_ALIASES:
        from fastconv import functional

        return getattr(functional, name)
    raise AttributeError(f"module 'fastconv.toplevel' has no attribute {name!r}")


def fill(input, value) -> Tensor:
    """A copy of ``input`` with every element ``value``."""
    return _tensor(input).clone().fill_(value)


def isin(elements, test_elements, *, assume_unique: bool = False, invert: bool = False):
    """Whether each of ``elements`` is among ``test_elements`` (either may be a number)."""
    from fastconv.backend import get_backend

    ref = elements if isinstance(elements, Tensor) else (
        test_elements if isinstance(test_elements, Tensor) else None)
    xp = get_backend(ref.device if ref is not None else "cpu").xp
    a = elements.data if isinstance(elements, Tensor) else xp.asarray(elements)
    b = test_elements.data if isinstance(test_elements, Tensor) else xp.asarray(test_elements)
    return Tensor(xp.isin(a, b, assume_unique=assume_unique, invert=invert))


def broadcast_shapes(*shapes):
    """The shape that tensors of ``shapes`` broadcast to (a tuple; torch returns a Size)."""
    try:
        return tuple(_np.broadcast_shapes(*(tuple(s) if not isinstance(s, int) else (s,)
                                           for s in shapes)))
    except ValueError:
        raise RuntimeError(f"Shape mismatch: objects cannot be broadcast to a single shape: "
                           f"{list(shapes)}") from None


def result_type(tensor1, tensor2):
    """The dtype an arithmetic op of the two gives (fastconv's promotion rules)."""
    from fastconv import dtypes

    def kind(x):
        return x.dtype if isinstance(x, Tensor) else x

    return dtypes.promote(kind(tensor1), kind(tensor2)) if isinstance(tensor1, Tensor) \
        else dtypes.promote(kind(tensor2), kind(tensor1))


def promote_types(type1, type2):
    """The dtype PyTorch promotes the two to (a floating type wins, at its own size)."""
    return dtypes.promote(_np.dtype(type1), _np.dtype(type2))


def can_cast(from_, to) -> bool:
    """torch.can_cast: whether the 'same_kind' casting rule allows it (no float to integer,
    no integer to bool)."""
    return bool(_np.can_cast(from_, to, casting="same_kind"))


def trapezoid(y, x=None, *, dx=None, dim: int = -1):
    """The trapezoidal rule along ``dim``: with sample points ``x`` or spacing ``dx``
    (default 1); differentiable in y (and x)."""
    y = _tensor(y)
    n = y.size(dim)
    if n == 0:
        return y.sum(dim)
    left, right = y.narrow(dim, 0, n - 1), y.narrow(dim, 1, n - 1)
    if x is None:
        return ((left + right) * (0.5 * (1.0 if dx is None else dx))).sum(dim)
    x = _tensor(x)
    spacing = x.diff(dim=dim if x.ndim == y.ndim else -1)
    return (spacing * (left + right) * 0.5).sum(dim)


trapz = trapezoid


def cumulative_trapezoid(y, x=None, *, dx=None, dim: int = -1):
    """The running trapezoidal integral along ``dim`` (one entry fewer than ``y``)."""
    y = _tensor(y)
    n = y.size(dim)
    pairs = _builtins.max(n - 1, 0)
    left, right = y.narrow(dim, 0, pairs), y.narrow(dim, 1, pairs)
    if x is None:
        return ((left + right) * (0.5 * (1.0 if dx is None else dx))).cumsum(dim)
    x = _tensor(x)
    spacing = x.diff(dim=dim if x.ndim == y.ndim else -1)
    return (spacing * (left + right) * 0.5).cumsum(dim)


def unravel_index(indices, shape):
    """The coordinates of flat ``indices`` in a tensor of ``shape``: a tuple of int64
    tensors, one per dim."""
    from fastconv.backend import get_backend

    t = indices if isinstance(indices, Tensor) else Tensor(_np.asarray(indices))
    if t.dtype.kind not in "iu":
        raise TypeError(f"expected 'indices' to be an integer tensor, got {t.dtype}")
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    size = int(_np.prod(shape))
    flat = t.data
    xp = get_backend(t.device).xp
    if flat.size and (int(flat.min()) < -size or int(flat.max()) >= size):
        raise RuntimeError(f"index out of bounds for shape {list(shape)}")
    coords = xp.unravel_index(xp.where(flat < 0, flat + size, flat), shape)
    return tuple(Tensor(c.astype(_np.int64)) for c in coords)


def typename(obj) -> str:
    """'fastconv.FloatTensor' and the like for a tensor, else the type's qualified name."""
    if isinstance(obj, Tensor):
        return obj.type()
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


__all__ += ["fill", "isin", "broadcast_shapes", "result_type", "promote_types", "can_cast",
            "trapezoid", "trapz", "cumulative_trapezoid", "unravel_index", "typename"]
__all__ += list(_FUNCTIONAL_ALIASES)
