"""Elementwise math, reductions, selection and shape ops (PyTorch's tensor methods).

Like :mod:`fastconv.ops.arith`, these are memory-bound array expressions, written once on
the array module of the inputs (``self.xp``: NumPy or CuPy), each backward next to its
forward. Dtype handling (integer promotion, float32 only) happens before ``apply``, in the
Tensor methods; see :mod:`fastconv.dtypes` for the policy.
"""

from __future__ import annotations

import numpy as np

from fastconv.function import Function
from fastconv.ops.arith import _normalise_dims, sum_to, unbroadcast
from fastconv.ops.validate import contiguous

# ----------------------------------------------------------------------------- elementwise


class Abs(Function):
    double_backward = "fixed_mask"

    def forward(self, a):
        self.save_for_backward(a)
        return self.xp.abs(a)

    def backward(self, dy):
        return dy * self.xp.sign(self.saved[0]).astype(dy.dtype)


class Sqrt(Function):
    def forward(self, a):
        y = self.xp.sqrt(a)
        self.save_for_backward(y)
        return y

    def backward(self, dy):
        return dy / (2 * self.saved[0])

    def backward_graph(self, dy):
        return dy / (2 * self.parents[0].sqrt())


class Sigmoid(Function):
    """On the backend kernels (csrc/activation.cpp, fastconv/cuda/activation.cu)."""

    def forward(self, a):
        y = self.kernels.sigmoid_forward(contiguous(self.xp, a))
        self.save_for_backward(y)
        return y

    def backward(self, dy):
        return self.kernels.sigmoid_backward(self.saved[0], contiguous(self.xp, dy))

    def backward_graph(self, dy):
        y = self.parents[0].sigmoid()
        return dy * y * (1 - y)


class Tanh(Function):
    """On the backend kernels (csrc/activation.cpp, fastconv/cuda/activation.cu)."""

    def forward(self, a):
        y = self.kernels.tanh_forward(contiguous(self.xp, a))
        self.save_for_backward(y)
        return y

    def backward(self, dy):
        return self.kernels.tanh_backward(self.saved[0], contiguous(self.xp, dy))

    def backward_graph(self, dy):
        y = self.parents[0].tanh()
        return dy * (1 - y * y)


class Sin(Function):
    def forward(self, a):
        self.save_for_backward(a)
        return self.xp.sin(a)

    def backward(self, dy):
        return dy * self.xp.cos(self.saved[0])

    def backward_graph(self, dy):
        return dy * self.parents[0].cos()


class Cos(Function):
    def forward(self, a):
        self.save_for_backward(a)
        return self.xp.cos(a)

    def backward(self, dy):
        return -dy * self.xp.sin(self.saved[0])

    def backward_graph(self, dy):
        return -dy * self.parents[0].sin()


class Clamp(Function):
    """min(max(a, lo), hi) for constant bounds; the gradient passes where lo <= a <= hi
    (both ends included, as in PyTorch)."""

    double_backward = "fixed_mask"

    def forward(self, a, lo, hi):
        self.mask = self.xp.ones(a.shape, dtype=bool)
        if lo is not None:
            self.mask &= a >= lo
        if hi is not None:
            self.mask &= a <= hi
        return self.xp.clip(a, lo, hi).astype(a.dtype, copy=False)

    def backward(self, dy):
        return dy * self.mask, None, None


class Maximum(Function):
    """Elementwise max of two tensors; ties split the gradient in half (as PyTorch)."""

    sign = 1

    def forward(self, a, b):
        self.shapes = (np.shape(a), np.shape(b))
        diff = (a - b) * self.sign
        self.wa = (diff > 0) + 0.5 * (diff == 0)
        return self.xp.maximum(a, b) if self.sign > 0 else self.xp.minimum(a, b)

    def backward(self, dy):
        wa = self.wa.astype(dy.dtype)
        da = unbroadcast(self.xp, dy * wa, self.shapes[0]) if self.needs_input_grad[0] else None
        db = (unbroadcast(self.xp, dy * (1 - wa), self.shapes[1])
              if self.needs_input_grad[1] else None)
        return da, db

    def backward_graph(self, dy):  # the split is constant almost everywhere
        wa = self.wa.astype(np.float32)
        return (sum_to(dy * wa, self.shapes[0]) if self.needs_input_grad[0] else None,
                sum_to(dy * (1 - wa), self.shapes[1]) if self.needs_input_grad[1] else None)


class Minimum(Maximum):
    sign = -1


class Where(Function):
    """cond ? a : b with broadcasting; ``cond`` is a constant bool array."""

    def forward(self, cond, a, b):
        self.cond = cond
        self.shapes = (np.shape(a), np.shape(b))
        return self.xp.where(cond, a, b)

    def backward(self, dy):
        xp = self.xp
        zero = xp.zeros((), dtype=dy.dtype)
        da = (unbroadcast(xp, xp.where(self.cond, dy, zero), self.shapes[0])
              if self.needs_input_grad[1] else None)
        db = (unbroadcast(xp, xp.where(self.cond, zero, dy), self.shapes[1])
              if self.needs_input_grad[2] else None)
        return None, da, db

    def backward_graph(self, dy):
        keep = self.cond.astype(np.float32)
        return (None, sum_to(dy * keep, self.shapes[0]) if self.needs_input_grad[1] else None,
                sum_to(dy * (1 - keep), self.shapes[1]) if self.needs_input_grad[2] else None)


class Clone(Function):
    double_backward = "linear"

    def forward(self, a):
        return a.copy()

    def backward(self, dy):
        return dy


class Cast(Function):
    double_backward = "linear"

    """A float-to-float copy (only float32 exists, so it is the identity with a copy)."""

    def forward(self, a, dtype):
        return a.astype(dtype)

    def backward(self, dy):
        return dy, None


class ToDevice(Function):
    double_backward = "linear"

    """A copy on another device; the gradient is copied back."""

    def forward(self, a, device):
        self.source = "cpu" if self.xp is np else "cuda"
        return _move(a, device)

    def backward(self, dy):
        return _move(dy, self.source), None


def _move(array, device):
    from fastconv.backend import device_of, get_backend

    if device_of(array) == device:
        return array
    return get_backend("cuda").xp.asarray(array) if device == "cuda" else array.get()


# ----------------------------------------------------------------------------- reductions


def _expand_reduced(xp, dy, shape, dims, keepdim):
    if not keepdim:
        dy = dy.reshape([1 if i in dims else n for i, n in enumerate(shape)])
    return dy


class Var(Function):
    """sum((a - mean)^2) / (N - correction) over ``dim``."""

    def forward(self, a, dim=None, correction=1, keepdim=False):
        self.dims = _normalise_dims(dim, a.ndim)
        self.keepdim = keepdim
        self.shape = a.shape
        n = int(np.prod([a.shape[d] for d in self.dims])) if a.ndim else 1
        self.denominator = max(n - correction, 0)
        self.centred = a - a.mean(axis=self.dims, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            var = (self.centred * self.centred).sum(axis=self.dims, keepdims=keepdim)
            return (var / a.dtype.type(self.denominator)).astype(a.dtype)

    def backward(self, dy):
        dy = _expand_reduced(self.xp, dy, self.shape, self.dims, self.keepdim)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (dy * self.centred * (2.0 / self.denominator)).astype(dy.dtype), None, None, None

    def backward_graph(self, dy):
        a = self.parents[0]
        if not self.keepdim:
            dy = dy.reshape([1 if i in self.dims else n for i, n in enumerate(self.shape)])
        centred = a - a.mean(dim=self.dims, keepdim=True)
        return dy * centred * (2.0 / self.denominator), None, None, None


class TakeAlong(Function):
    """``take_along_axis(a, index, dim)``: the values that max/min/topk/sort select; the
    gradient goes back to the selected positions (added where an index repeats)."""

    double_backward = "linear"

    def forward(self, a, index, dim):
        self.shape, self.index, self.dim = a.shape, index, dim
        return self.xp.take_along_axis(a, index, axis=dim)

    def backward(self, dy):
        xp = self.xp
        dx = xp.zeros(self.shape, dtype=dy.dtype)
        if xp is np:
            # put_along_axis overwrites; index tuples are distinct for topk/sort/max/min.
            np.put_along_axis(dx, self.index, dy, axis=self.dim)
        else:
            xp.put_along_axis(dx, self.index, dy, axis=self.dim)
        return dx, None, None


class MaxAll(Function):
    """The largest (or smallest) element; ties share the gradient equally (as PyTorch)."""

    def forward(self, a, largest=True):
        y = a.max() if largest else a.min()
        self.mask = a == y
        return self.xp.asarray(y)

    def backward(self, dy):
        mask = self.mask.astype(dy.dtype)
        return dy * mask / mask.sum(), None

    def backward_graph(self, dy):  # the tie mask is constant almost everywhere
        mask = self.mask.astype(np.float32)
        return dy * (mask / mask.sum()), None


# ----------------------------------------------------------------------------- shape


class Expand(Function):
    double_backward = "linear"

    def forward(self, a, shape):
        self.shape = a.shape
        return self.xp.ascontiguousarray(self.xp.broadcast_to(a, shape))

    def backward(self, dy):
        return unbroadcast(self.xp, dy, self.shape), None


class Repeat(Function):
    double_backward = "linear"

    """``tile``: the gradient of each input element sums its copies."""

    def forward(self, a, repeats):
        self.shape = (1,) * (len(repeats) - a.ndim) + a.shape
        self.in_shape = a.shape
        self.repeats = repeats
        return self.xp.tile(a, repeats)

    def backward(self, dy):
        split = []
        for r, n in zip(self.repeats, self.shape):
            split += [r, n]
        g = dy.reshape(split).sum(axis=tuple(range(0, 2 * len(self.shape), 2)))
        return g.reshape(self.in_shape), None


class Flip(Function):
    double_backward = "linear"

    def forward(self, a, dims):
        self.dims = dims
        return self.xp.ascontiguousarray(self.xp.flip(a, axis=dims))

    def backward(self, dy):
        return self.xp.ascontiguousarray(self.xp.flip(dy, axis=self.dims)), None


class Stack(Function):
    def forward(self, *arrays, dim=0):
        self.dim = dim
        return self.xp.stack(arrays, axis=dim)

    def backward(self, dy):
        xp = self.xp
        return tuple(xp.ascontiguousarray(xp.take(dy, i, axis=self.dim)) if need else None
                     for i, need in enumerate(self.needs_input_grad))

    def backward_graph(self, dy):
        return tuple(dy.select(self.dim, i) if need else None
                     for i, need in enumerate(self.needs_input_grad))


class SetItem(Function):
    """``a[index] = v`` as a new array: the overwritten entries get no gradient from ``a``;
    ``v`` gets the sum of their gradients (PyTorch's CopySlices)."""

    def forward(self, a, v, index):
        self.index = index
        self.v_shape = np.shape(v)
        out = a.copy()
        out[index] = v
        return out

    def backward(self, dy):
        da = dv = None
        if self.needs_input_grad[0]:
            da = dy.copy()
            da[self.index] = 0
        if self.needs_input_grad[1]:
            dv = unbroadcast(self.xp, dy[self.index], self.v_shape)
        return da, dv, None


# ----------------------------------------------------------------------------- pointwise tables


def _erf(xp, a):
    if xp is np:
        from math import erf

        return np.vectorize(erf, otypes=[a.dtype])(a) if a.size else a.copy()
    import cupyx.scipy.special

    return cupyx.scipy.special.erf(a)


#: name -> (f(xp, a), df(xp, a, y)): the elementwise functions whose gradient is a formula of
#: the input and output. Rounding has gradient zero (as PyTorch: a step function).
POINTWISE = {
    "expm1": (lambda xp, a: xp.expm1(a), lambda xp, a, y: y + 1),
    "log1p": (lambda xp, a: xp.log1p(a), lambda xp, a, y: 1 / (1 + a)),
    "log2": (lambda xp, a: xp.log2(a), lambda xp, a, y: 1 / (a * np.log(2.0))),
    "log10": (lambda xp, a: xp.log10(a), lambda xp, a, y: 1 / (a * np.log(10.0))),
    "erf": (_erf, lambda xp, a, y: (2 / np.sqrt(np.pi)) * xp.exp(-a * a)),
    "round": (lambda xp, a: xp.round(a), None),
    "floor": (lambda xp, a: xp.floor(a), None),
    "ceil": (lambda xp, a: xp.ceil(a), None),
    "trunc": (lambda xp, a: xp.trunc(a), None),
    "frac": (lambda xp, a: a - xp.trunc(a), lambda xp, a, y: xp.ones_like(a)),
    "sign": (lambda xp, a: xp.sign(a), None),
    "rsqrt": (lambda xp, a: 1 / xp.sqrt(a), lambda xp, a, y: -0.5 * y * y * y),
}


# Trigonometric and hyperbolic functions, angle conversions and 2 ** x (PyTorch's gradients;
# outside the domain, e.g. asin(2), the value and the gradient are NaN, as PyTorch's).
POINTWISE.update({
    "tan": (lambda xp, a: xp.tan(a), lambda xp, a, y: 1 + y * y),
    "asin": (lambda xp, a: xp.arcsin(a), lambda xp, a, y: 1 / xp.sqrt(1 - a * a)),
    "acos": (lambda xp, a: xp.arccos(a), lambda xp, a, y: -1 / xp.sqrt(1 - a * a)),
    "atan": (lambda xp, a: xp.arctan(a), lambda xp, a, y: 1 / (1 + a * a)),
    "sinh": (lambda xp, a: xp.sinh(a), lambda xp, a, y: xp.cosh(a)),
    "cosh": (lambda xp, a: xp.cosh(a), lambda xp, a, y: xp.sinh(a)),
    "asinh": (lambda xp, a: xp.arcsinh(a), lambda xp, a, y: 1 / xp.sqrt(a * a + 1)),
    "acosh": (lambda xp, a: xp.arccosh(a),
              lambda xp, a, y: 1 / (xp.sqrt(a - 1) * xp.sqrt(a + 1))),
    "atanh": (lambda xp, a: xp.arctanh(a), lambda xp, a, y: 1 / (1 - a * a)),
    "deg2rad": (lambda xp, a: a * (np.pi / 180), lambda xp, a, y: xp.full_like(a, np.pi / 180)),
    "rad2deg": (lambda xp, a: a * (180 / np.pi), lambda xp, a, y: xp.full_like(a, 180 / np.pi)),
    "exp2": (lambda xp, a: xp.exp2(a), lambda xp, a, y: y * np.log(2.0)),
})


class Pointwise(Function):
    """One entry of :data:`POINTWISE` applied elementwise."""

    def forward(self, a, name):
        f, self.df = POINTWISE[name]
        self.op_name = name
        # inf / NaN results (expm1 of a large x, log2 of 0, ...) are the answers, as torch's
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            y = f(self.xp, a).astype(a.dtype, copy=False)
        if self.df is not None:
            self.save_for_backward(a, y)
        return y

    def backward(self, dy):
        if self.df is None:
            return self.xp.zeros_like(dy), None
        a, y = self.saved
        with np.errstate(divide="ignore", invalid="ignore"):
            return (dy * self.df(self.xp, a, y)).astype(dy.dtype, copy=False), None

    def backward_graph(self, dy):
        # the same derivative formula, evaluated with fastconv's Tensor functions
        import fastconv

        if self.df is None:
            return dy * 0.0, None
        a = self.parents[0]
        return dy * self.df(fastconv, a, Pointwise.apply(a, self.op_name)), None


class PowTensor(Function):
    """``a ** b`` with a tensor exponent (either may be a number, broadcast)."""

    def forward(self, a, b):
        self.shapes = (np.shape(a), np.shape(b))
        y = self.xp.power(a, b)
        self.save_for_backward(a, b, y)
        return y

    def backward(self, dy):
        xp = self.xp
        a, b, y = self.saved
        da = db = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.needs_input_grad[0]:
                # b * a^(b-1), with PyTorch's 0 where b == 0 (also at a == 0)
                g = xp.where(b == 0, 0, b * xp.power(a, b - 1))
                da = unbroadcast(xp, (dy * g).astype(dy.dtype), self.shapes[0])
            if self.needs_input_grad[1]:
                # y * log(a), with PyTorch's 0 where a == 0 and b >= 0
                g = xp.where((a == 0) & (b >= 0), 0, y * xp.log(a))
                db = unbroadcast(xp, (dy * g).astype(dy.dtype), self.shapes[1])
        return da, db


class NanToNum(Function):
    """NaN, +inf and -inf replaced by ``nan``, ``posinf`` and ``neginf`` (None: the largest
    and the lowest finite value of the dtype); the gradient passes where the input is finite
    and is zero at the replaced entries (PyTorch's)."""

    def forward(self, a, nan, posinf, neginf):
        self.finite = self.xp.isfinite(a)
        with np.errstate(over="ignore"):
            return self.xp.nan_to_num(a, copy=True, nan=nan, posinf=posinf, neginf=neginf)

    def backward(self, dy):
        return dy * self.finite, None, None, None


class Frexp(Function):
    """The mantissa of ``a = mantissa * 2 ** exponent`` (|mantissa| in [0.5, 1)); its
    gradient is ``dy / 2 ** exponent`` (the exponent is a constant of the input)."""

    def forward(self, a):
        mantissa, self.exponent = self.xp.frexp(a)
        return mantissa.astype(a.dtype, copy=False)

    def backward(self, dy):
        return self.xp.ldexp(dy, -self.exponent).astype(dy.dtype, copy=False)


def _f64(xp, a):
    return xp.asarray(a, dtype=np.float64)


def _pow_grad_base(xp, a, b, y):
    # b * a^(b-1), with PyTorch's 0 where b == 0 (also at a == 0)
    a, b = _f64(xp, a), _f64(xp, b)
    return xp.where(b == 0, 0.0, b * xp.power(a, b - 1))


def _pow_grad_exponent(xp, a, b, y):
    # a^b * log(a), with PyTorch's 0 where a == 0 and b >= 0
    a, b = _f64(xp, a), _f64(xp, b)
    return xp.where((a == 0) & (b >= 0), 0.0, xp.power(a, b) * xp.log(a))


def _copysign_grad(xp, a, b, y):
    # y / a: +1 or -1, and 0 where a == 0 (PyTorch's copysign_tensor_self_backward)
    a = xp.asarray(a)
    return xp.where(a == 0, 0, y / xp.where(a == 0, 1, a))


def _fmax_grad(xp, a, b, y, first=True, sign=1):
    # all to ``a`` where it is chosen (ties too) or ``b`` is NaN, else all to ``b`` (PyTorch's)
    a, b = xp.asarray(a), xp.asarray(b)
    to_a = ((a - b) * sign >= 0) | xp.isnan(b)
    return (to_a if first else ~to_a).astype(np.float32)


def _heaviside(xp, a, b):
    a = xp.asarray(a)
    return xp.where(a == 0, b, (a > 0).astype(a.dtype))


NO_DERIVATIVE = "no derivative"

#: name -> (f(xp, a, b), da(xp, a, b, y), db(xp, a, b, y)): the elementwise functions of two
#: arguments (broadcast; either may be a number). ``da`` / ``db`` give d y / d a and d y / d b
#: (None: the gradient is zero; NO_DERIVATIVE: PyTorch has none, and backward raises its error).
BINARY = {
    "atan2": (lambda xp, a, b: xp.arctan2(a, b),
              lambda xp, a, b, y: b / (a * a + b * b),
              lambda xp, a, b, y: -a / (a * a + b * b)),
    "hypot": (lambda xp, a, b: xp.hypot(a, b),
              lambda xp, a, b, y: a / y,
              lambda xp, a, b, y: b / y),
    "logaddexp": (lambda xp, a, b: xp.logaddexp(a, b),
                  lambda xp, a, b, y: 1 / (1 + xp.exp(b - a)),
                  lambda xp, a, b, y: 1 / (1 + xp.exp(a - b))),
    "logaddexp2": (lambda xp, a, b: xp.logaddexp2(a, b),
                   lambda xp, a, b, y: 1 / (1 + xp.exp2(b - a)),
                   lambda xp, a, b, y: 1 / (1 + xp.exp2(a - b))),
    "copysign": (lambda xp, a, b: xp.copysign(a, b), _copysign_grad, None),
    "ldexp": (lambda xp, a, b: a * xp.exp2(b),
              lambda xp, a, b, y: xp.exp2(b),
              lambda xp, a, b, y: y * np.log(2.0)),
    # computed in float64, as PyTorch's (which also returns float64)
    "float_power": (lambda xp, a, b: xp.power(_f64(xp, a), _f64(xp, b)),
                    _pow_grad_base, _pow_grad_exponent),
    "fmax": (lambda xp, a, b: xp.fmax(a, b), _fmax_grad,
             lambda xp, a, b, y: _fmax_grad(xp, a, b, y, first=False)),
    "fmin": (lambda xp, a, b: xp.fmin(a, b),
             lambda xp, a, b, y: _fmax_grad(xp, a, b, y, sign=-1),
             lambda xp, a, b, y: _fmax_grad(xp, a, b, y, first=False, sign=-1)),
    "heaviside": (_heaviside, NO_DERIVATIVE, NO_DERIVATIVE),
    "gcd": (lambda xp, a, b: xp.gcd(a, b), NO_DERIVATIVE, NO_DERIVATIVE),
    "lcm": (lambda xp, a, b: xp.lcm(a, b), NO_DERIVATIVE, NO_DERIVATIVE),
}


class Binary(Function):
    """One entry of :data:`BINARY` applied elementwise, the result as ``dtype`` (the Tensor
    methods promote the arguments first, as PyTorch)."""

    def forward(self, a, b, name, dtype):
        f, self.da, self.db = BINARY[name]
        self.op_name, self.shapes = name, (np.shape(a), np.shape(b))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            y = self.xp.asarray(f(self.xp, a, b))
        if self.da is not NO_DERIVATIVE:
            self.save_for_backward(a, b, y)
        return y.astype(dtype, copy=False)

    def backward(self, dy):
        grads = []
        for i, derivative in enumerate((self.da, self.db)):
            if not self.needs_input_grad[i]:
                grads.append(None)
            elif derivative is NO_DERIVATIVE:
                raise RuntimeError(f"derivative for aten::{self.op_name} is not implemented")
            elif derivative is None:
                grads.append(self.xp.zeros(self.shapes[i], dtype=dy.dtype))
            else:
                with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                    g = dy * derivative(self.xp, *self.saved)
                grads.append(unbroadcast(self.xp, g.astype(dy.dtype, copy=False),
                                         self.shapes[i]))
        return grads[0], grads[1], None, None


# ----------------------------------------------------------------------------- scans and products


def _exclusive_cumprod(xp, a, axis, reverse=False):
    """prod of the entries before (or, reversed, after) each one along ``axis``."""
    if reverse:
        return xp.flip(_exclusive_cumprod(xp, xp.flip(a, axis), axis), axis)
    ones = xp.ones_like(xp.take(a, [0], axis=axis))
    head = xp.take(a, xp.arange(a.shape[axis] - 1), axis=axis)
    return xp.cumprod(xp.concatenate([ones, head], axis=axis), axis=axis)


class Cumsum(Function):
    double_backward = "linear"

    def forward(self, a, dim):
        self.dim = dim
        return self.xp.cumsum(a, axis=dim, dtype=a.dtype)

    def backward(self, dy):
        xp = self.xp
        return xp.flip(xp.cumsum(xp.flip(dy, self.dim), axis=self.dim), self.dim).copy(), None


class Cumprod(Function):
    """Running product. The gradient, d y_k / d x_i = prod_{j<=k, j!=i} x_j, is computed
    without dividing by x_i, so zeros in the input get PyTorch's exact gradient."""

    def forward(self, a, dim):
        self.dim = dim
        self.save_for_backward(a)
        return self.xp.cumprod(a, axis=dim, dtype=a.dtype)

    def backward(self, dy):
        xp = self.xp
        (a,) = self.saved
        d = self.dim
        n = a.shape[d]
        a_last, dy_last = xp.moveaxis(a, d, -1), xp.moveaxis(dy, d, -1)
        before = _exclusive_cumprod(xp, a_last, -1)
        dx = xp.empty_like(a_last)
        for i in range(n):
            # prod_{i<j<=k} x_j for k >= i, times prod_{j<i} x_j
            after = xp.cumprod(xp.concatenate([xp.ones_like(a_last[..., :1]),
                                               a_last[..., i + 1:]], axis=-1), axis=-1)
            dx[..., i] = before[..., i] * (dy_last[..., i:] * after).sum(-1)
        return xp.ascontiguousarray(xp.moveaxis(dx, -1, d)), None


class Prod(Function):
    """Product over ``dims`` (all by default); the gradient is the product of the other
    entries (exclusive products from both sides: exact with zeros in the input)."""

    def forward(self, a, dims, keepdim=False):
        self.shape, self.dims, self.keepdim = a.shape, dims, keepdim
        self.save_for_backward(a)
        return a.prod(axis=dims, keepdims=keepdim, dtype=a.dtype)

    def backward(self, dy):
        xp = self.xp
        (a,) = self.saved
        rest = [d for d in range(a.ndim) if d not in self.dims]
        # The reduced dims last, flattened into one axis.
        moved = xp.transpose(a, rest + list(self.dims))
        flat = moved.reshape(moved.shape[:len(rest)] + (-1,))
        others = _exclusive_cumprod(xp, flat, -1) * _exclusive_cumprod(xp, flat, -1, True)
        dy = _expand_reduced(xp, dy, self.shape, self.dims, self.keepdim)
        dy = xp.transpose(dy, rest + list(self.dims)).reshape(flat.shape[:-1] + (1,))
        g = (others * dy).reshape(moved.shape)
        return xp.ascontiguousarray(xp.transpose(g, np.argsort(rest + list(self.dims)))), None, None


class LogSumExp(Function):
    """log(sum(exp(a))) over ``dims``, shifted by the max for stability; the gradient is
    the softmax over those dims."""

    def forward(self, a, dims, keepdim=False):
        xp = self.xp
        self.shape, self.dims, self.keepdim = a.shape, dims, keepdim
        m = a.max(axis=dims, keepdims=True) if a.size else xp.zeros((1,) * a.ndim, a.dtype)
        m = xp.where(xp.isfinite(m), m, 0)
        with np.errstate(divide="ignore"):
            y = xp.log(xp.exp(a - m).sum(axis=dims, keepdims=True)) + m
        self.save_for_backward(a, y)
        return y if keepdim else y.reshape([n for i, n in enumerate(a.shape) if i not in dims])

    def backward(self, dy):
        a, y = self.saved
        dy = _expand_reduced(self.xp, dy, self.shape, self.dims, self.keepdim)
        with np.errstate(invalid="ignore"):
            return (dy * self.xp.exp(a - y)).astype(dy.dtype), None, None

    def backward_graph(self, dy):
        a = self.parents[0]
        if not self.keepdim:
            dy = dy.reshape([1 if i in self.dims else n for i, n in enumerate(self.shape)])
        return dy * (a - LogSumExp.apply(a, self.dims, True)).exp(), None, None


class AMax(Function):
    """Max (or min) over ``dims``; ties share the gradient equally (as PyTorch's amax)."""

    def forward(self, a, dims, keepdim=False, largest=True):
        self.shape, self.dims, self.keepdim = a.shape, dims, keepdim
        y = a.max(axis=dims, keepdims=True) if largest else a.min(axis=dims, keepdims=True)
        self.mask = a == y
        return y if keepdim else y.reshape([n for i, n in enumerate(a.shape) if i not in dims])

    def backward(self, dy):
        mask = self.mask.astype(dy.dtype)
        dy = _expand_reduced(self.xp, dy, self.shape, self.dims, self.keepdim)
        return dy * mask / mask.sum(axis=self.dims, keepdims=True), None, None, None

    def backward_graph(self, dy):  # the tie mask is constant almost everywhere
        mask = self.mask.astype(np.float32)
        if not self.keepdim:
            dy = dy.reshape([1 if i in self.dims else n for i, n in enumerate(self.shape)])
        return dy * (mask / mask.sum(axis=self.dims, keepdims=True)), None, None, None


# ----------------------------------------------------------------------------- einsum


class Einsum(Function):
    """``einsum(equation, *operands)``; ``equation`` is explicit (``"ij,jk->ik"``, no
    ellipsis: :func:`fastconv.toplevel.einsum` rewrites it so). The gradient of operand i is
    the einsum of the output gradient with the other operands, written to operand i's
    subscripts; a subscript that repeats within an operand (a diagonal) is put back with
    an identity factor, one that appears only in operand i is broadcast back."""

    def forward(self, equation, *operands):
        self.equation = equation
        self.shapes = [o.shape for o in operands]
        self.save_for_backward(*operands)
        return self.xp.einsum(equation, *operands)

    def composite(self, equation, *operands):
        """The same contraction as a broadcast product and a sum in Tensor ops (for
        double backward): each operand's labels permuted to one order, output labels first
        (a repeated label within an operand taken as its diagonal), size-1 axes for the labels
        it lacks; the product summed over the labels not in the output."""
        lhs, out = equation.split("->")
        terms = lhs.split(",")
        order = list(out) + [c for c in dict.fromkeys("".join(terms)) if c not in out]
        product = None
        for term, t in zip(terms, operands):
            while len(set(term)) < len(term):  # diagonal() drops both dims, appends it last
                c = next(c for c in term if term.count(c) > 1)
                i, j = term.index(c), term.index(c, term.index(c) + 1)
                t = t.diagonal(0, i, j)
                term = term[:i] + term[i + 1:j] + term[j + 1:] + c
            present = [c for c in order if c in term]
            t = t.permute(*[term.index(c) for c in present])
            t = t.reshape([t.shape[present.index(c)] if c in present else 1 for c in order])
            product = t if product is None else product * t
        summed = tuple(range(len(out), len(order)))
        return product.sum(dim=summed) if summed else product

    def backward(self, dy):
        xp = self.xp
        lhs, out = self.equation.split("->")
        terms = lhs.split(",")
        sizes = {}
        for term, shape in zip(terms, self.shapes):
            for c, n in zip(term, shape):
                sizes[c] = max(sizes.get(c, 1), n)
        grads = [None]
        for i, term in enumerate(terms):
            if not self.needs_input_grad[i + 1]:
                grads.append(None)
                continue
            others = [t for j, t in enumerate(terms) if j != i]
            arrays = [o for j, o in enumerate(self.saved) if j != i]
            # Size-1 (broadcast) dims are stretched to the label's size, then summed back.
            arrays = [xp.broadcast_to(o, [sizes[c] for c in t]) for o, t in zip(arrays, others)]
            known = set(out) | set("".join(others))
            target = "".join(dict.fromkeys(c for c in term if c in known))
            g = xp.einsum(f"{out},{','.join(others)}->{target}" if others else f"{out}->{target}",
                          dy, *arrays)
            # Put the gradient on operand i's own subscripts: identity factors for repeats.
            factors, names = [g], [target]
            letters = iter(c for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                           if c not in lhs + out)
            full, seen = "", set()
            for c in term:
                if c in seen:
                    fresh = next(letters)
                    factors.append(xp.eye(sizes[c], dtype=dy.dtype))
                    names.append(c + fresh)
                    c = fresh
                elif c not in known:
                    factors.append(xp.ones(sizes[c], dtype=dy.dtype))
                    names.append(c)
                seen.add(c)
                full += c
            if len(factors) > 1:
                g = xp.einsum(f"{','.join(names)}->{full}", *factors)
            g = unbroadcast(xp, xp.ascontiguousarray(g), self.shapes[i])
            grads.append(g.astype(dy.dtype, copy=False))
        return tuple(grads)
