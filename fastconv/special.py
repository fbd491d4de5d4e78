"""``torch.special`` for fastconv: error and gamma functions, Bessel functions, the normal
distribution's CDF and quantile, and the numerically careful forms of log and exp.

Names, arguments and results follow ``torch.special``; every function is differentiable where
torch's is, with torch's derivative. Integer tensors become float32 (as torch promotes them).
On the CPU the functions are computed in float64 by fastconv itself (no SciPy dependency) and
rounded to float32; on the GPU they are CuPy's (``cupyx.scipy.special``). See
:mod:`fastconv.ops.special` for the methods and their accuracy.

Functions torch implements elsewhere are those ones here: ``erf`` (``Tensor.erf``), ``expit``
(sigmoid), ``log1p``, ``expm1``, ``exp2``, ``logsumexp``, ``softmax``, ``log_softmax``,
``round``.
"""

from __future__ import annotations

import math

import numpy as np

from fastconv.backend import get_backend
from fastconv.ops import special as ops
from fastconv.tensor import Tensor

__all__ = [
    "digamma", "entr", "erf", "erfc", "erfcx", "erfinv", "exp2", "expit", "expm1", "gammaln",
    "i0", "i0e", "i1", "i1e", "log1p", "log_ndtr", "log_softmax", "logit", "logsumexp",
    "multigammaln", "ndtr", "ndtri", "polygamma", "psi", "round", "sinc", "softmax",
    "xlog1py", "xlogy", "zeta",
]


def _input(x, op, name="input"):
    if not isinstance(x, Tensor):
        raise TypeError(f"special.{op}(): argument '{name}' must be a fastconv.Tensor, not "
                        f"{type(x).__name__}")
    return x._floating()


def _unary(name, x, op=None, n=None):
    return ops.Special.apply(_input(x, op or name), name, n)


def erf(input):
    """The error function ``2 / sqrt(pi) * integral_0^x exp(-t^2) dt`` (``Tensor.erf``)."""
    return _input(input, "erf").erf()


def erfc(input):
    """``1 - erf(x)``, accurate where erf(x) is close to 1."""
    return _unary("erfc", input)


def erfcx(input):
    """The scaled complementary error function ``exp(x^2) erfc(x)`` (finite for large x)."""
    return _unary("erfcx", input)


def erfinv(input):
    """The inverse of erf on (-1, 1) (+-inf at +-1, NaN outside)."""
    return _unary("erfinv", input)


def expit(input):
    """The logistic sigmoid ``1 / (1 + exp(-x))`` (``Tensor.sigmoid``)."""
    return _input(input, "expit").sigmoid()


def logit(input, eps=None):
    """``log(p / (1 - p))`` of p clamped to [eps, 1 - eps] when ``eps`` is given (then the
    gradient is 0 outside that interval; without eps it is NaN outside [0, 1], as torch)."""
    return ops.Logit.apply(_input(input, "logit"), None if eps is None else float(eps))


def _binary(name, input, other):
    t = input if isinstance(input, Tensor) else other if isinstance(other, Tensor) else None
    if t is None:
        raise TypeError(f"special.{name}(): at least one of input and other must be a "
                        f"fastconv.Tensor, got {type(input).__name__} and "
                        f"{type(other).__name__}")
    xp = get_backend(t.device).xp

    def lift(v):
        if isinstance(v, Tensor):
            return v._floating()
        if isinstance(v, (bool, int, float, np.number)):
            return xp.asarray(v, dtype=np.float32)
        raise TypeError(f"special.{name}(): expected a fastconv.Tensor or a number, got "
                        f"{type(v).__name__}")

    a, b = lift(input), lift(other)
    shapes = [tuple(np.shape(v.data if isinstance(v, Tensor) else v)) for v in (a, b)]
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        raise RuntimeError(f"special.{name}: the shapes {shapes[0]} and {shapes[1]} do not "
                           "broadcast") from None
    return ops.Binary.apply(a, b, name)


def xlogy(input, other):
    """``input * log(other)``, 0 where input is 0 (unless other is NaN); either argument may
    be a number."""
    return _binary("xlogy", input, other)


def xlog1py(input, other):
    """``input * log1p(other)``, 0 where input is 0 (unless other is NaN); either argument may
    be a number."""
    return _binary("xlog1py", input, other)


def zeta(input, other):
    """The Hurwitz zeta function ``sum_k (k + other)^(-input)`` (Riemann's for other = 1);
    differentiable in ``other`` only, as torch."""
    return _binary("zeta", input, other)


def gammaln(input):
    """``log |Gamma(x)|`` (``torch.lgamma``); +inf at the poles 0, -1, -2, ..."""
    return _unary("gammaln", input)


def digamma(input):
    """The digamma function ``Gamma'(x) / Gamma(x)`` (-inf at 0, NaN at negative integers)."""
    return _unary("digamma", input)


psi = digamma


def polygamma(n, input):
    """The n-th derivative of digamma (``polygamma(0, x)`` is digamma)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"special.polygamma(): argument 'n' must be an int, not "
                        f"{type(n).__name__}")
    if n < 0:
        raise RuntimeError("polygamma(n, x) does not support negative n.")
    if n == 0:
        return digamma(input)
    return _unary("polygamma", input, n=int(n))


def multigammaln(input, p):
    """The multivariate log-gamma ``p (p - 1) / 4 log(pi) + sum_{i<p} lgamma(x - i / 2)``."""
    if isinstance(p, bool) or not isinstance(p, (int, np.integer)):
        raise TypeError(f"special.multigammaln(): argument 'p' must be an int, not "
                        f"{type(p).__name__}")
    if p < 1:
        raise RuntimeError("p has to be greater than or equal to 1")
    x = _input(input, "multigammaln")
    total = gammaln(x)
    for i in range(1, int(p)):
        total = total + gammaln(x - i / 2)
    return total + p * (p - 1) / 4 * math.log(math.pi)


def i0(input):
    """The modified Bessel function of the first kind, order 0."""
    return _unary("i0", input)


def i0e(input):
    """``exp(-|x|) i0(x)`` (finite for large |x|)."""
    return _unary("i0e", input)


def i1(input):
    """The modified Bessel function of the first kind, order 1."""
    return _unary("i1", input)


def i1e(input):
    """``exp(-|x|) i1(x)``."""
    return _unary("i1e", input)


def sinc(input):
    """The normalised sinc ``sin(pi x) / (pi x)`` (1 at 0)."""
    return _unary("sinc", input)


def entr(input):
    """The elementwise entropy ``-x log x`` (0 at 0, -inf for x < 0)."""
    return _unary("entr", input)


def log1p(input):
    """``log(1 + x)``, accurate for small x."""
    return _input(input, "log1p").log1p()


def expm1(input):
    """``exp(x) - 1``, accurate for small x."""
    return _input(input, "expm1").expm1()


def exp2(input):
    """``2^x`` (``Tensor.exp2``)."""
    return _input(input, "exp2").exp2()


def ndtr(input):
    """The standard normal CDF ``(1 + erf(x / sqrt 2)) / 2``."""
    return _unary("ndtr", input)


def ndtri(input):
    """The standard normal quantile, the inverse of ndtr on (0, 1) (+-inf at 1 and 0)."""
    return _unary("ndtri", input)


def log_ndtr(input):
    """``log(ndtr(x))``, accurate far into the lower tail."""
    return _unary("log_ndtr", input)


def logsumexp(input, dim, keepdim=False):
    """``log(sum(exp(x)))`` over ``dim``, computed stably (``Tensor.logsumexp``)."""
    return _input(input, "logsumexp").logsumexp(dim, keepdim)


def softmax(input, dim, *, dtype=None):
    """``exp(x) / sum(exp(x))`` along ``dim``."""
    from fastconv.toplevel import softmax as _softmax

    return _softmax(_input(input, "softmax"), dim, dtype)


def log_softmax(input, dim, *, dtype=None):
    """``log(softmax(x))`` along ``dim``, computed stably."""
    from fastconv.toplevel import log_softmax as _log_softmax

    return _log_softmax(_input(input, "log_softmax"), dim, dtype)


def round(input, *, decimals=0):
    """Round half to even to ``decimals`` places (``Tensor.round``; gradient zero)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"special.round(): argument 'input' must be a fastconv.Tensor, not "
                        f"{type(input).__name__}")
    return input.round(decimals)
