"""ReLU and its relatives (leaky ReLU, randomized leaky ReLU, ELU, GELU, SiLU), the shrinkage
and other pointwise activations, dropout and the softmax family.

ReLU and its relatives run the backend kernels (csrc/elementwise.cpp, csrc/activation.cpp;
fastconv/cuda/elementwise.cu, activation.cu): one elementwise pass forward and one backward
from the saved input.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from fastconv import random
from fastconv.function import Function
from fastconv.ops import arith
from fastconv.ops.validate import ArgumentError, contiguous, float_tensor


class ReLU(Function):
    double_backward = "fixed_mask"

    def forward(self, x):
        y = self.kernels.relu_forward(contiguous(self.xp, x))
        self.save_for_backward(y)
        return y

    def backward(self, dy):
        return self.kernels.relu_backward(self.saved[0], contiguous(self.xp, dy))


def relu(input, inplace=False):
    """max(x, 0) elementwise. ``inplace``: write the result into ``input`` and return it."""
    if inplace:
        return in_place(relu, input)
    float_tensor(input, "input", "relu")
    return ReLU.apply(input)


class MaskMultiply(Function):
    """y = x * mask for a constant mask (dropout's scaled keep-mask)."""

    double_backward = "fixed_mask"

    def forward(self, x, mask):
        self.mask = mask
        return x * mask

    def backward(self, dy):
        return dy * self.mask, None


class Dropout(Function):
    """y = x * mask, mask = 1 / (1 - p) where a uniform draw is >= p, else 0: drawn and
    applied in one kernel pass (the mask is what ``random.uniform(x.shape) >= p`` gives)."""

    double_backward = "fixed_mask"

    def forward(self, x, p):
        y, self.mask = self.kernels.dropout_forward(contiguous(self.xp, x), p)
        return y

    def backward(self, dy):
        return self.kernels.dropout_backward(contiguous(self.xp, dy), self.mask), None


def _dropout(op, x, p, training, mask_shape):
    float_tensor(x, "input", op)
    if not 0.0 <= p <= 1.0:
        raise ArgumentError(f"{op}: p must be a probability in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    if tuple(mask_shape) == tuple(x.shape):
        return Dropout.apply(x, float(p))
    keep = random.uniform(mask_shape, x.device) >= p
    mask = keep.astype(np.float32) * np.float32(1.0 / (1.0 - p))
    return MaskMultiply.apply(x, mask)


def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p) (Srivastava et
    al., 2014).

    Identity when ``training`` is False. Masks come from fastconv's generator
    (reproducible under ``fastconv.manual_seed``). ``inplace``: write the result into
    ``input`` and return it.
    """
    if inplace and training:
        return in_place(dropout, input, p, training)
    return _dropout("dropout", input, p, training, input.shape)


def _feature_mask_shape(op, x, training):
    """(N, C, 1, ...): one draw per (sample, channel), as torch's feature dropout."""
    if training and x.ndim < 2:
        raise RuntimeError(f"{op}: Feature dropout requires at least 2 dimensions in the input, "
                           f"got shape {x.shape}")
    return x.shape[:2] + (1,) * (x.ndim - 2)


def _deprecated_rank(op, x):
    warnings.warn(f"{op}: Received a {x.ndim}-D input to {op}, which is deprecated and will "
                  "result in an error in a future release. To retain the behavior and silence "
                  "this warning, please use dropout instead.", UserWarning, stacklevel=3)


def dropout2d(input, p=0.5, training=True, inplace=False):
    """Spatial dropout (Tompson et al., 2015): zero whole feature maps of (N, C, H, W) input.
    ``inplace``: as in :func:`dropout`.

    As torch, a 3-D input is taken as (N, C, L) (channel dropout over L, not an unbatched
    (C, H, W)), and other ranks are accepted with a deprecation warning."""
    if inplace and training:
        return in_place(dropout2d, input, p, training)
    if input.ndim not in (3, 4):
        _deprecated_rank("dropout2d", input)
    elif input.ndim == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise "
                      "1D dropout behavior is desired - input is interpreted as shape (N, C, L), "
                      "where C is the channel dim.", UserWarning, stacklevel=2)
    return _dropout("dropout2d", input, p, training,
                    _feature_mask_shape("dropout2d", input, training))


class Softmax(Function):
    def forward(self, x, dim):
        xp = self.xp
        if x.size == 0:  # nothing to normalise (max of an empty axis would raise)
            self.save_for_backward(x)
            self.dim = dim
            return x.copy()
        e = xp.exp(x - x.max(axis=dim, keepdims=True))
        y = e / e.sum(axis=dim, keepdims=True)
        self.save_for_backward(y)
        self.dim = dim
        return y

    def backward(self, dy):
        (y,) = self.saved
        return y * (dy - (dy * y).sum(axis=self.dim, keepdims=True)), None

    def backward_graph(self, dy):
        y = Softmax.apply(self.parents[0], self.dim)
        return y * (dy - (dy * y).sum(dim=self.dim, keepdim=True)), None


class LogSoftmax(Function):
    def forward(self, x, dim):
        xp = self.xp
        if x.size == 0:  # as Softmax
            self.save_for_backward(x)
            self.dim = dim
            return x.copy()
        shifted = x - x.max(axis=dim, keepdims=True)
        y = shifted - xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True))
        self.save_for_backward(y)
        self.dim = dim
        return y

    def backward(self, dy):
        (y,) = self.saved
        return dy - self.xp.exp(y) * dy.sum(axis=self.dim, keepdims=True), None

    def backward_graph(self, dy):
        p = Softmax.apply(self.parents[0], self.dim)
        return dy - p * dy.sum(dim=self.dim, keepdim=True), None


def _softmax_dim(op, x, dim, stacklevel):
    """PyTorch's rule for a softmax called without ``dim``: dim 0 for 0-, 1- and 3-D input,
    else 1, with PyTorch's deprecation warning."""
    if dim is None:
        dim = 0 if x.ndim in (0, 1, 3) else 1
        warnings.warn(f"Implicit dimension choice for {op} has been deprecated. Change the "
                      "call to include dim=X as an argument.", UserWarning,
                      stacklevel=stacklevel)
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}")
    nd = max(x.ndim, 1)
    if not -nd <= dim < nd:
        raise IndexError(f"{op}: dim {dim} is out of range for input of shape {x.shape} "
                         f"(expected to be in range of [{-nd}, {nd - 1}])")
    return int(dim) % nd


def _no_dtype(op, dtype):
    if dtype is not None and np.dtype(dtype) != np.float32:
        raise TypeError(f"{op}: dtype={dtype!r} is not supported: fastconv computes in float32")


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """softmax(x)_i = exp(x_i - max x) / sum_j exp(x_j - max x) along ``dim``.

    Args:
        input: float32 Tensor.
        dim: the dim to normalise. None picks it as PyTorch does (0 for 0-, 1- and 3-D
            input, else 1) and warns that the implicit choice is deprecated.
        dtype: only None or float32 (fastconv computes in float32).
    """
    float_tensor(input, "input", "softmax")
    _no_dtype("softmax", dtype)
    return Softmax.apply(input, _softmax_dim("softmax", input, dim, _stacklevel))


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """log(softmax(x)) computed stably as (x - max) - log(sum(exp(x - max))).

    Arguments as :func:`softmax` (the same implicit-``dim`` rule and warning).
    """
    float_tensor(input, "input", "log_softmax")
    _no_dtype("log_softmax", dtype)
    return LogSoftmax.apply(input, _softmax_dim("log_softmax", input, dim, _stacklevel))


# ----------------------------------------------------------------------------- relatives of ReLU

def in_place(fn, input, *args, **kwargs):
    """torch's ``inplace=True`` and ``F.relu_``: ``input`` takes ``fn``'s result and is
    returned. Tensor._inplace records the change in the graph when it must, and refuses a leaf
    that requires grad as torch does."""
    from fastconv.tensor import Tensor

    if not isinstance(input, Tensor):
        return fn(input, *args, **kwargs)  # fn names the bad argument
    return input._inplace(lambda s: fn(s, *args, **kwargs))


class LeakyReLU(Function):
    double_backward = "fixed_mask"

    def forward(self, x, slope):
        x = contiguous(self.xp, x)
        self.save_for_backward(x)
        self.slope = slope
        return self.kernels.leaky_relu_forward(x, slope)

    def backward(self, dy):
        (x,) = self.saved
        return self.kernels.leaky_relu_backward(x, contiguous(self.xp, dy), self.slope), None


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """Leaky ReLU (Maas et al., 2013): y = x for x > 0, negative_slope * x otherwise.

    Args:
        input: float32 Tensor of any shape.
        negative_slope: the slope for x <= 0 (default 0.01).
        inplace: write the result into ``input`` and return it.
    """
    float_tensor(input, "input", "leaky_relu")
    _number("leaky_relu", "negative_slope", negative_slope)
    if inplace:
        return in_place(leaky_relu, input, negative_slope)
    return LeakyReLU.apply(input, float(negative_slope))


class ELU(Function):
    def forward(self, x, alpha):
        x = contiguous(self.xp, x)
        self.save_for_backward(x)
        self.alpha = alpha
        return self.kernels.elu_forward(x, alpha)

    def backward(self, dy):
        (x,) = self.saved
        return self.kernels.elu_backward(x, contiguous(self.xp, dy), self.alpha), None

    def backward_graph(self, dy):
        x = self.parents[0]
        positive = (x > 0).float()
        return dy * (positive + (1 - positive) * self.alpha * x.clamp(max=0).exp()), None


def elu(input, alpha=1.0, inplace=False):
    """Exponential linear unit (Clevert et al., 2016): y = x for x > 0, alpha * (exp(x) - 1)
    otherwise. dy/dx = 1 for x > 0, alpha * exp(x) otherwise.

    Args:
        input: float32 Tensor of any shape.
        alpha: the saturation value for large negative x (default 1.0).
        inplace: write the result into ``input`` and return it.
    """
    float_tensor(input, "input", "elu")
    _number("elu", "alpha", alpha)
    if inplace:
        return in_place(elu, input, alpha)
    return ELU.apply(input, float(alpha))


class GELU(Function):
    def forward(self, x, approximate):
        x = contiguous(self.xp, x)
        self.save_for_backward(x)
        self.approximate = approximate
        return self.kernels.gelu_forward(x, approximate)

    def backward(self, dy):
        (x,) = self.saved
        return self.kernels.gelu_backward(x, contiguous(self.xp, dy), self.approximate), None

    def backward_graph(self, dy):
        x = self.parents[0]
        if self.approximate == "tanh":
            c = math.sqrt(2 / math.pi)
            t = (c * (x + 0.044715 * x * x * x)).tanh()
            d = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x)
        else:  # Phi(x) + x phi(x)
            d = 0.5 * (1 + (x * math.sqrt(0.5)).erf()) + \
                x * (-0.5 * x * x).exp() / math.sqrt(2 * math.pi)
        return dy * d, None


def gelu(input, approximate="none"):
    """Gaussian error linear unit (Hendrycks & Gimpel, 2016): y = x * Phi(x), with Phi the
    standard normal CDF, Phi(x) = (1 + erf(x / sqrt(2))) / 2.

    Args:
        input: float32 Tensor of any shape.
        approximate: "none" (the exact CDF) or "tanh":
            y = x / 2 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3))).
    """
    float_tensor(input, "input", "gelu")
    if approximate not in ("none", "tanh"):
        raise ArgumentError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELU.apply(input, approximate)


def _sigmoid(xp, x):
    """1 / (1 + exp(-x)) without overflow: exp only ever sees -|x|."""
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


class SiLU(Function):
    def forward(self, x):
        x = contiguous(self.xp, x)
        self.save_for_backward(x)
        return self.kernels.silu_forward(x)

    def backward(self, dy):
        return self.kernels.silu_backward(self.saved[0], contiguous(self.xp, dy))

    def backward_graph(self, dy):
        x = self.parents[0]
        s = x.sigmoid()
        return dy * s * (1 + x * (1 - s))


def silu(input, inplace=False):
    """Sigmoid linear unit, also called swish (Elfwing et al., 2018; Ramachandran et al.,
    2017): y = x * sigmoid(x); dy/dx = s * (1 + x * (1 - s)) with s = sigmoid(x).

    Args:
        input: float32 Tensor of any shape.
        inplace: write the result into ``input`` and return it.
    """
    float_tensor(input, "input", "silu")
    if inplace:
        return in_place(silu, input)
    return SiLU.apply(input)


def _number(op, name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{op}: {name} must be a number, got {value!r}")


# ----------------------------------------------------------------------------- more activations
# The less common activations: y = f(x) and dy/dx = df(x, y) as formulas in array code, one
# Function (Pointwise) for all of them. Where a formula has a kink, the gradient at the kink
# is PyTorch's.

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _softplus(xp, x, beta, threshold):
    bx = beta * x
    smooth = (xp.log1p(xp.exp(-xp.abs(bx))) + xp.maximum(bx, 0)) / beta
    return xp.where(bx > threshold, x, smooth)


def _mish_grad(xp, x, y):
    t = xp.tanh(_softplus(xp, x, 1.0, 20.0))
    return t + x * _sigmoid(xp, x) * (1 - t * t)


POINTWISE = {
    # name: (f(xp, x, *params), df(xp, x, y, *params))
    "hardtanh": (lambda xp, x, lo, hi: xp.clip(x, lo, hi),
                 lambda xp, x, y, lo, hi: (x > lo) & (x < hi)),
    "hardsigmoid": (lambda xp, x: xp.clip(x / 6 + 0.5, 0, 1),
                    lambda xp, x, y: ((x > -3) & (x < 3)) / 6.0),
    "hardswish": (lambda xp, x: x * xp.clip(x + 3, 0, 6) / 6,
                  # at x = -3 and 3 torch takes the outer pieces' slopes, 0 and 1
                  lambda xp, x, y: xp.where(x <= -3, 0, xp.where(x < 3, x / 3 + 0.5, 1))),
    "softplus": (_softplus,
                 lambda xp, x, y, beta, threshold: xp.where(beta * x > threshold, 1,
                                                           _sigmoid(xp, beta * x))),
    "mish": (lambda xp, x: x * xp.tanh(_softplus(xp, x, 1.0, 20.0)), _mish_grad),
    "selu": (lambda xp, x: _SELU_SCALE * xp.where(x > 0, x, _SELU_ALPHA * xp.expm1(
                 xp.minimum(x, 0))),
             lambda xp, x, y: _SELU_SCALE * xp.where(x > 0, 1, _SELU_ALPHA * xp.exp(
                 xp.minimum(x, 0)))),
    "celu": (lambda xp, x, alpha: xp.where(x > 0, x, alpha * xp.expm1(xp.minimum(x, 0) / alpha)),
             lambda xp, x, y, alpha: xp.where(x > 0, 1, xp.exp(xp.minimum(x, 0) / alpha))),
    "logsigmoid": (lambda xp, x: -_softplus(xp, -x, 1.0, math.inf),
                   # sigmoid(-x), not 1 - sigmoid(x): no cancellation for large x
                   lambda xp, x, y: _sigmoid(xp, -x)),
    # torch's test, x <= threshold: a NaN x (or threshold) keeps x
    "threshold": (lambda xp, x, threshold, value: xp.where(x <= threshold, value, x),
                  lambda xp, x, y, threshold, value: ~(x <= threshold)),
    "softsign": (lambda xp, x: x / (1 + xp.abs(x)),
                 lambda xp, x, y: 1 / (1 + xp.abs(x)) ** 2),
    "softshrink": (lambda xp, x, lambd: xp.where(x > lambd, x - lambd,
                                                 xp.where(x < -lambd, x + lambd, 0)),
                   lambda xp, x, y, lambd: (x > lambd) | (x < -lambd)),
    "hardshrink": (lambda xp, x, lambd: xp.where((x > lambd) | (x < -lambd), x, 0),
                   lambda xp, x, y, lambd: (x > lambd) | (x < -lambd)),
    "tanhshrink": (lambda xp, x: x - xp.tanh(x),
                   lambda xp, x, y: xp.tanh(x) ** 2),
}


class Pointwise(Function):
    """One entry of :data:`POINTWISE` with its parameters."""

    def forward(self, x, name, *params):
        f, self.df = POINTWISE[name]
        self.params = params
        y = f(self.xp, x, *params).astype(x.dtype, copy=False)
        self.save_for_backward(x, y)
        return y

    def backward(self, dy):
        x, y = self.saved
        g = self.df(self.xp, x, y, *self.params)
        return (dy * g).astype(dy.dtype, copy=False), *([None] * (1 + len(self.params)))

    def backward_graph(self, dy):
        # the same derivative formula, evaluated with fastconv's Tensor functions
        import fastconv

        x, name = self.parents[:2]
        g = self.df(fastconv, x, Pointwise.apply(x, name, *self.params), *self.params)
        return dy * g, *([None] * (1 + len(self.params)))


def _pointwise(op, input, *params, inplace=False):
    if inplace:
        return in_place(lambda s: _pointwise(op, s, *params), input)
    float_tensor(input, "input", op)
    return Pointwise.apply(input, op, *params)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """clamp(x, min_val, max_val); the gradient is 1 strictly inside the bounds."""
    _number("hardtanh", "min_val", min_val)
    _number("hardtanh", "max_val", max_val)
    if min_val > max_val:
        raise ArgumentError(f"hardtanh: min_val ({min_val}) cannot be greater than max_val "
                            f"({max_val})")
    return _pointwise("hardtanh", input, float(min_val), float(max_val), inplace=inplace)


def relu6(input, inplace=False):
    """min(max(x, 0), 6) (MobileNet; Howard et al., 2017)."""
    return _pointwise("hardtanh", input, 0.0, 6.0, inplace=inplace)


def hardsigmoid(input, inplace=False):
    """relu6(x + 3) / 6 (Howard et al., 2019, "Searching for MobileNetV3")."""
    return _pointwise("hardsigmoid", input, inplace=inplace)


def hardswish(input, inplace=False):
    """x * relu6(x + 3) / 6 (Howard et al., 2019)."""
    return _pointwise("hardswish", input, inplace=inplace)


def softplus(input, beta=1.0, threshold=20.0):
    """log(1 + exp(beta x)) / beta, and x itself where beta x > threshold."""
    _number("softplus", "beta", beta)
    _number("softplus", "threshold", threshold)
    return _pointwise("softplus", input, float(beta), float(threshold))


def mish(input, inplace=False):
    """x * tanh(softplus(x)) (Misra, 2019)."""
    return _pointwise("mish", input, inplace=inplace)


def selu(input, inplace=False):
    """scale * (x if x > 0 else alpha (exp(x) - 1)), the self-normalising constants of
    Klambauer et al., 2017."""
    return _pointwise("selu", input, inplace=inplace)


def celu(input, alpha=1.0, inplace=False):
    """x if x > 0 else alpha (exp(x / alpha) - 1) (Barron, 2017)."""
    _number("celu", "alpha", alpha)
    if alpha == 0:
        raise ArgumentError("celu: alpha must not be 0 (it divides x)")
    return _pointwise("celu", input, float(alpha), inplace=inplace)


def logsigmoid(input):
    """log(sigmoid(x)) = -softplus(-x), computed without overflow."""
    return _pointwise("logsigmoid", input)


def threshold(input, threshold, value, inplace=False):
    """``value`` where x <= threshold, else x (so a NaN x stays NaN, as in torch)."""
    _number("threshold", "threshold", threshold)
    _number("threshold", "value", value)
    return _pointwise("threshold", input, float(threshold), float(value), inplace=inplace)


def softsign(input):
    """x / (1 + |x|)."""
    return _pointwise("softsign", input)


def softshrink(input, lambd=0.5):
    """Soft shrinkage: x - lambd where x > lambd, x + lambd where x < -lambd, else 0
    (lambd >= 0)."""
    _number("softshrink", "lambd", lambd)
    if lambd < 0:
        raise RuntimeError(f"lambda must be in range [0, 3.40282e+38] for input dtype Float, "
                           f"but found {lambd}")
    return _pointwise("softshrink", input, float(lambd))


def hardshrink(input, lambd=0.5):
    """Hard shrinkage: x where |x| > lambd, else 0."""
    _number("hardshrink", "lambd", lambd)
    return _pointwise("hardshrink", input, float(lambd))


def tanhshrink(input):
    """x - tanh(x)."""
    return _pointwise("tanhshrink", input)


def rrelu(input, lower=1.0 / 8, upper=1.0 / 3, training=False, inplace=False):
    """Randomized leaky ReLU (Xu et al., 2015, "Empirical Evaluation of Rectified
    Activations"): y = x for x >= 0, a x otherwise.

    In training each element draws its own slope a ~ U(lower, upper) from fastconv's
    generator (reproducible under ``fastconv.manual_seed``) and the gradient is that slope;
    in evaluation a = (lower + upper) / 2 (a leaky ReLU).

    Args:
        input: float32 Tensor of any shape.
        lower, upper: the slope's range, lower <= upper (defaults 1/8 and 1/3).
        training: draw random slopes (the functional default is False, as PyTorch).
        inplace: write the result into ``input`` and return it.
    """
    op = "rrelu"
    float_tensor(input, "input", op)
    _number(op, "lower", lower)
    _number(op, "upper", upper)
    if lower > upper:
        raise RuntimeError("Lower bound should be less than or equal to the upper bound")
    if inplace:
        return in_place(rrelu, input, lower, upper, training)
    if not training:
        return LeakyReLU.apply(input, (float(lower) + float(upper)) / 2)
    from fastconv.backend import get_backend

    xp = get_backend(input.device).xp
    u = random.uniform(input.shape, input.device)
    slope = xp.where(input.data > 0, 1, lower + (upper - lower) * u).astype(np.float32)
    return MaskMultiply.apply(input, slope)


def gumbel_softmax(logits, tau: float = 1.0, hard: bool = False, eps: float = 1e-10,
                   dim: int = -1):
    """Samples of the Gumbel-softmax (concrete) distribution (Jang et al., 2017; Maddison et
    al., 2017): softmax((logits + g) / tau) with g = -log(E), E ~ Exp(1) drawn from fastconv's
    generator. ``hard``: the one-hot of each sample's argmax in the forward pass with the soft
    sample's gradient (straight-through). ``eps`` is accepted for torch's signature."""
    from fastconv.tensor import Tensor

    float_tensor(logits, "logits", "gumbel_softmax")
    if not tau > 0:
        raise ArgumentError(f"gumbel_softmax: tau must be positive, got {tau}")
    from fastconv.backend import get_backend

    xp = get_backend(logits.device).xp
    u = xp.clip(random.uniform(tuple(logits.shape), logits.device), np.finfo(np.float32).tiny,
                1.0)
    gumbels = Tensor((-xp.log(-xp.log(u))).astype(np.float32))  # -log(E), E = -log(U) ~ Exp(1)
    soft = softmax((logits + gumbels) / tau, dim)
    if not hard:
        return soft
    index = soft.argmax(dim, keepdim=True)
    one_hot = soft.detach() * 0.0
    one_hot = one_hot.scatter(dim, index, 1.0)
    return one_hot - soft.detach() + soft


def softmin(input, dim=None, _stacklevel=3, dtype=None):
    """softmax(-x) along ``dim``."""
    float_tensor(input, "input", "softmin")
    return softmax(-input, dim, _stacklevel + 1, dtype)


def glu(input, dim=-1):
    """Gated linear unit (Dauphin et al., 2017): a * sigmoid(b), where a and b are the two
    halves of ``input`` along ``dim``."""
    float_tensor(input, "input", "glu")
    if input.ndim == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even")
    (d,) = arith._normalise_dims(dim, input.ndim)
    n = input.shape[d]
    if n % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {d} is size {n}")
    # an empty dim halves into two empty halves (split takes no size 0)
    a, b = input.split(n // 2, d) if n else (input, input)
    return a * b.sigmoid()


def prelu(input, weight):
    """max(0, x) + weight * min(0, x), with one learned slope (weight of shape (1,)) or one
    per channel (dim 1; He et al., 2015). Differentiable in both."""
    float_tensor(input, "input", "prelu")
    float_tensor(weight, "weight", "prelu")
    if weight.ndim > 1:
        raise ArgumentError(f"prelu: weight must be 1-D, got shape {weight.shape}")
    c = weight.numel()
    if c != 1:
        channels = input.shape[1] if input.ndim >= 2 else (input.shape[0] if input.ndim else 1)
        if c != channels:
            raise RuntimeError(f"Mismatch of parameter numbers and input channel size. Found "
                               f"parameter numbers = {c} and channel size = {channels}.")
        if input.ndim >= 2:
            weight = weight.reshape((1, c) + (1,) * (input.ndim - 2))
    elif weight.ndim:
        weight = weight.reshape(())
    return input.clamp(min=0) + weight * input.clamp(max=0)


def dropout1d(input, p=0.5, training=True, inplace=False):
    """Channel dropout of (N, C, L) or (C, L) input: whole channels are zeroed.
    ``inplace``: as in :func:`dropout`."""
    if inplace and training:
        return in_place(dropout1d, input, p, training)
    if input.ndim not in (2, 3):
        raise RuntimeError(f"dropout1d: Expected 2D or 3D input, but received a "
                           f"{input.ndim}D input")
    return _dropout("dropout1d", input, p, training, input.shape[:-1] + (1,))


def dropout3d(input, p=0.5, training=True, inplace=False):
    """Channel dropout of (N, C, D, H, W) or (C, D, H, W) input: whole 3-D feature maps are
    zeroed. ``inplace``: as in :func:`dropout`."""
    if inplace and training:
        return in_place(dropout3d, input, p, training)
    if input.ndim not in (4, 5):
        _deprecated_rank("dropout3d", input)
    if input.ndim == 5:
        return _dropout("dropout3d", input, p, training,
                        _feature_mask_shape("dropout3d", input, training))
    # anything else is taken as unbatched, as torch: a batch dim of one in front
    mask = _feature_mask_shape("dropout3d", input.reshape((1,) + input.shape), training)
    return _dropout("dropout3d", input, p, training, mask[1:])


# SELU's negative saturation value, -scale * alpha (Klambauer et al., 2017)
_SELU_SATURATION = -1.0507009873554805 * 1.6732632423543772


def _alpha_dropout(op, x, p, training, mask_shape):
    """Dropped values are set to SELU's saturation value, then an affine map restores zero
    mean and unit variance (Klambauer et al., 2017), as torch's alpha_dropout."""
    float_tensor(x, "input", op)
    if not 0.0 <= p <= 1.0:
        raise ArgumentError(f"{op}: p must be a probability in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    alpha = _SELU_SATURATION
    a = ((1.0 - p) * (1.0 + p * alpha * alpha)) ** -0.5
    keep = (random.uniform(mask_shape, x.device) >= p).astype(np.float32)
    # a * (x * keep + alpha * (1 - keep)) + b, with b = -a * alpha * p
    shift = (a * alpha * (1.0 - keep) - a * alpha * p).astype(np.float32)
    return MaskMultiply.apply(x, (keep * np.float32(a)).astype(np.float32)) + shift


def alpha_dropout(input, p=0.5, training=False, inplace=False):
    """Alpha dropout for SELU networks (keeps mean 0 and variance 1); identity unless
    ``training`` (torch's default for the function is False)."""
    if inplace and training:
        return in_place(alpha_dropout, input, p, training)
    return _alpha_dropout("alpha_dropout", input, p, training, input.shape)


def feature_alpha_dropout(input, p=0.5, training=False, inplace=False):
    """Alpha dropout of whole channels ((N, C, ...) input)."""
    if inplace and training:
        return in_place(feature_alpha_dropout, input, p, training)
    if training and input.ndim < 2:
        raise RuntimeError("feature_alpha_dropout: expected an input with a channel dim")
    return _alpha_dropout("feature_alpha_dropout", input, p, training,
                          input.shape[:2] + (1,) * (input.ndim - 2))
