"""Special functions (the elementwise core of :mod:`fastconv.special`), each with its derivative.

On the GPU they are CuPy's (``cupyx.scipy.special``); on the CPU they are computed here in
float64 NumPy and rounded to float32, because fastconv does not depend on SciPy. The CPU
methods, chosen so that every float32 input gets a float32-accurate result:

* erf, erfc, lgamma: the C library's (Python's ``math``), elementwise.
* erfcx(x) = exp(x^2) erfc(x): directly below x = 12, above it the asymptotic series
  ``1 / (x sqrt(pi)) sum_k (-1)^k (2k-1)!! / (2x^2)^k`` (eleven terms: error < 1e-17).
* erfinv and ndtri: P. J. Acklam's rational approximation of the normal quantile (relative
  error 1.2e-9) refined by two Halley steps on erf (centre) or erfc (tails), which are
  accurate to the last bit there; so erfinv(1e-30) and ndtri(1e-40) keep their digits.
* log_ndtr: log1p(-ndtr(-x)) for x > -1, log(erfcx(-x / sqrt 2) / 2) - x^2 / 2 below.
* digamma: the recurrence psi(x) = psi(x + 1) - 1/x up to x >= 10, then the asymptotic series
  with Bernoulli numbers up to B_14; reflection psi(1 - x) - pi / tan(pi x) for x < 0.
* zeta(x, q) (Hurwitz) and polygamma(n, x) = (-1)^(n+1) n! zeta(n + 1, x): Euler-Maclaurin
  summation as in Cephes (the direct sum up to q + N > 9, N >= 9, then up to 12 Bernoulli
  correction terms).
* i0, i1 and their exponentially scaled forms: the power series (positive terms, so exact to
  rounding) for |x| <= 30, the Hankel asymptotic expansion (20 terms) above.

The derivatives are torch's (``tools/autograd/derivatives.yaml``), evaluated in float64.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from fastconv.function import Function
from fastconv.ops.arith import unbroadcast

SQRT_PI = math.sqrt(math.pi)
SQRT_2 = math.sqrt(2.0)
SQRT_2PI = math.sqrt(2 * math.pi)


# ----------------------------------------------------------------------------- CPU kernels


def _bernoulli(count):
    """B_0 .. B_{count-1} as exact fractions."""
    b = [Fraction(1)]
    for m in range(1, count):
        b.append(-sum(math.comb(m + 1, k) * b[k] for k in range(m)) / Fraction(m + 1))
    return b


_B = _bernoulli(26)
# (2j)! / B_2j, j = 1..12: the Euler-Maclaurin denominators of zeta
_ZETA_A = [float(Fraction(math.factorial(2 * j)) / _B[2 * j]) for j in range(1, 13)]
# B_2k / (2k), k = 1..7: digamma's asymptotic series
_PSI_C = [float(_B[2 * k] / (2 * k)) for k in range(1, 8)]


def _elementwise(scalar_fn):
    vec = np.vectorize(scalar_fn, otypes=[np.float64])

    def fn(x):
        return vec(x) if x.size else x.astype(np.float64)
    return fn


def _lgamma_scalar(v):
    try:
        return math.lgamma(v)
    except ValueError:  # a pole (0, -1, -2, ...)
        return math.inf


erf = _elementwise(math.erf)
erfc = _elementwise(math.erfc)
gammaln = _elementwise(_lgamma_scalar)


def erfcx(x):
    out = np.empty_like(x)
    small = ~(x >= 12)  # NaN goes here too
    with np.errstate(over="ignore", invalid="ignore"):
        out[small] = np.exp(x[small] ** 2) * erfc(x[small])
    big = x[~small]
    inv = 1.0 / (2 * big * big)
    term, total = np.ones_like(big), np.ones_like(big)
    for k in range(1, 11):
        term = -term * (2 * k - 1) * inv
        total += term
    out[~small] = total / (big * SQRT_PI)
    return out


def ndtr(x):
    return 0.5 * erfc(-x / SQRT_2)


# P. J. Acklam's rational approximation of the standard normal quantile.
_AA = (-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
       1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00)
_AB = (-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
       6.680131188771972e+01, -1.328068155288572e+01)
_AC = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
       -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00)
_AD = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
       3.754408661907416e+00)
_P_LOW = 0.02425


def _poly(coeffs, x):
    out = np.zeros_like(x)
    for c in coeffs:
        out = out * x + c
    return out


def _quantile_center(q):
    """Phi^{-1}(0.5 + q) for |q| <= 0.5 - _P_LOW; Halley on Phi(x) - 0.5 = erf(x / sqrt 2) / 2."""
    r = q * q
    x = q * _poly(_AA, r) / (_poly(_AB, r) * r + 1)
    for _ in range(2):
        e = 0.5 * erf(x / SQRT_2) - q
        u = e * SQRT_2PI * np.exp(x * x / 2)
        x = x - u / (1 + x * u / 2)
    return x


def _quantile_tail(p):
    """Phi^{-1}(p) for 0 <= p <= 0.5 (a negative x); Halley on Phi(x) = erfc(-x / sqrt 2) / 2."""
    out = np.full_like(p, -np.inf)
    pos = p > 0
    pp = p[pos]
    t = np.sqrt(-2 * np.log(pp))
    x = _poly(_AC, t) / (_poly(_AD, t) * t + 1)
    for _ in range(2):
        e = 0.5 * erfc(-x / SQRT_2) - pp
        u = e * SQRT_2PI * np.exp(x * x / 2)
        x = x - u / (1 + x * u / 2)
    out[pos] = x
    return out


def _normal_quantile(q, lower, upper, scale):
    """Phi^{-1}(0.5 + q) / scale, given q and, for the tails, the exact lower and upper tail
    probabilities ``lower`` = 0.5 + q and ``upper`` = 0.5 - q (NaN outside [0, 1])."""
    out = np.full_like(q, np.nan)
    center = np.abs(q) <= 0.5 - _P_LOW
    low = (lower >= 0) & (q < 0) & ~center
    high = (upper >= 0) & (q > 0) & ~center
    out[center] = _quantile_center(q[center])
    out[low] = _quantile_tail(lower[low])
    out[high] = -_quantile_tail(upper[high])
    return out / scale


def ndtri(p):
    with np.errstate(invalid="ignore"):
        return _normal_quantile(p - 0.5, p, 1 - p, 1.0)


def erfinv(y):
    # erf(x) = 2 Phi(x sqrt 2) - 1: erfinv(y) = Phi^{-1}((1 + y) / 2) / sqrt 2
    with np.errstate(invalid="ignore"):
        return _normal_quantile(y / 2, (1 + y) / 2, (1 - y) / 2, SQRT_2)


def log_ndtr(x):
    out = np.empty_like(x)
    upper = ~(x <= -1)  # NaN goes here too
    with np.errstate(divide="ignore"):
        out[upper] = np.log1p(-0.5 * erfc(x[upper] / SQRT_2))
        low = x[~upper]
        out[~upper] = np.log(0.5 * erfcx(-low / SQRT_2)) - low * low / 2
    return out


def digamma(x):
    x = np.array(x, dtype=np.float64)
    out = np.zeros_like(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        neg = x < 0
        frac = x - np.trunc(x)
        out[neg] = -math.pi / np.tan(math.pi * frac[neg])
        out[neg & (frac == 0)] = np.nan
        z = np.where(neg, 1 - x, x)
        zero = x == 0
        z[zero] = 1.0  # placeholder, set below
        small = z < 10
        while small.any():
            out[small] -= 1 / z[small]
            z[small] += 1
            small = z < 10
        r = 1 / (z * z)
        series = np.zeros_like(z)
        for c in reversed(_PSI_C):
            series = (series + c) * r
        out += np.log(z) - 0.5 / z - series
        out[zero] = np.copysign(np.inf, -x[zero])
    return out


def zeta(s, q):
    """Hurwitz zeta sum_k (k + q)^(-s), elementwise over the broadcast arrays."""
    s, q = (np.array(a, dtype=np.float64) for a in np.broadcast_arrays(s, q))
    out = np.full(s.shape, np.nan)
    with np.errstate(all="ignore"):
        q_int = q == np.floor(q)
        out[s == 1] = np.inf
        pole = (s > 1) & (q <= 0) & q_int
        out[pole] = np.inf
        ok = (s > 1) & ~pole & ~((q <= 0) & (s != np.floor(s)))
        ok &= ~np.isnan(s) & ~np.isnan(q)
        ss, qq = s[ok], q[ok]
        total = qq ** -ss
        a = qq.copy()
        b = np.zeros_like(qq)
        i = 0
        active = np.ones(qq.shape, bool)
        while active.any():
            a[active] += 1
            b[active] = a[active] ** -ss[active]
            total[active] += b[active]
            i += 1
            active &= (i < 9) | (a <= 9)
        w = a
        total += b * w / (ss - 1) - 0.5 * b
        fac = np.ones_like(qq)
        k = 0.0
        live = np.ones(qq.shape, bool)
        for coeff in _ZETA_A:
            fac = np.where(live, fac * (ss + k), fac)
            b = np.where(live, b / w, b)
            t = fac * b / coeff
            total = np.where(live, total + t, total)
            live &= ~(np.abs(t / total) < 1e-17)
            k += 1
            fac = np.where(live, fac * (ss + k), fac)
            b = np.where(live, b / w, b)
            k += 1
        out[ok] = total
    return out


def polygamma(n, x):
    if n == 0:
        return digamma(x)
    with np.errstate(over="ignore", invalid="ignore"):
        factorial = np.exp(np.float64(math.lgamma(n + 1)))
        return (-1.0) ** (n + 1) * factorial * zeta(np.float64(n + 1), x)


def _bessel_scaled(nu, x):
    """exp(-|x|) I_nu(|x|) for nu in (0, 1)."""
    ax = np.abs(x)
    out = np.empty_like(ax)
    series = ~(ax > 30)  # NaN goes here too
    xs = ax[series]
    half2 = (xs / 2) ** 2
    term = (xs / 2) ** nu / math.factorial(nu)
    total = term.copy()
    for k in range(1, 90):
        term = term * half2 / (k * (k + nu))
        total += term
    out[series] = total * np.exp(-xs)
    xl = ax[~series]
    mu = 4.0 * nu * nu
    term, total = np.ones_like(xl), np.ones_like(xl)
    for k in range(1, 21):
        term = -term * (mu - (2 * k - 1) ** 2) / (k * 8 * xl)
        total += term
    out[~series] = total / np.sqrt(2 * math.pi * xl)
    return out


def i0e(x):
    return _bessel_scaled(0, x)


def i1e(x):
    return np.sign(x) * _bessel_scaled(1, x)


def i0(x):
    # at +-inf this is 0 * inf = NaN, as torch's (and Cephes') i0
    with np.errstate(over="ignore", invalid="ignore"):
        return i0e(x) * np.exp(np.abs(x))


def i1(x):
    with np.errstate(over="ignore", invalid="ignore"):
        return i1e(x) * np.exp(np.abs(x))


def entr(x):
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(x > 0, -x * np.log(np.where(x > 0, x, 1)), -np.inf)
    out[x == 0] = 0
    out[np.isnan(x)] = np.nan
    return out


CPU = {"erf": erf, "erfc": erfc, "erfcx": erfcx, "erfinv": erfinv, "ndtr": ndtr,
       "ndtri": ndtri, "log_ndtr": log_ndtr, "gammaln": gammaln, "digamma": digamma,
       "i0": i0, "i0e": i0e, "i1": i1, "i1e": i1e, "entr": entr, "sinc": np.sinc}


def call(xp, name, *args):
    """The special function ``name`` on ``xp``'s arrays (float64 on the CPU, as computed here;
    ``cupyx.scipy.special``'s, or CuPy's sinc, on the GPU)."""
    if xp is np:
        if name == "polygamma":
            return polygamma(int(args[0]), np.asarray(args[1], np.float64))
        if name == "zeta":
            return zeta(*args)
        return CPU[name](*(np.asarray(a, np.float64) for a in args))
    if name == "sinc":
        return xp.sinc(*args)
    import cupyx.scipy.special

    return getattr(cupyx.scipy.special, name)(*args)


# ----------------------------------------------------------------------------- derivatives


def _derivative(xp, name, a, y, n):
    """d name(a) / da, from the input ``a`` and output ``y`` (both float64)."""
    with np.errstate(all="ignore"):
        if name == "erf":
            return (2 / SQRT_PI) * xp.exp(-a * a)
        if name == "erfc":
            return (-2 / SQRT_PI) * xp.exp(-a * a)
        if name == "erfcx":
            return 2 * a * y - 2 / SQRT_PI
        if name == "erfinv":
            return (SQRT_PI / 2) * xp.exp(y * y)
        if name == "ndtr":
            return xp.exp(-a * a / 2) / SQRT_2PI
        if name == "ndtri":
            return SQRT_2PI * xp.exp(y * y / 2)
        if name == "log_ndtr":
            return xp.exp(-(y + a * a / 2)) / SQRT_2PI
        if name == "gammaln":
            return call(xp, "digamma", a)
        if name == "digamma":
            return call(xp, "polygamma", 1, a)
        if name == "polygamma":
            return call(xp, "polygamma", n + 1, a)
        if name == "i0":
            return call(xp, "i1", a)
        if name == "i0e":
            return call(xp, "i1e", a) - xp.sign(a) * y
        if name == "i1":
            return xp.where(a == 0, 0.5, call(xp, "i0", a) - y / a)
        if name == "i1e":
            return xp.where(a == 0, 0.5, call(xp, "i0e", a) - y * (xp.sign(a) + 1 / a))
        if name == "entr":
            return -(1 + xp.log(a))
        if name == "sinc":
            pa = math.pi * a
            return xp.where(a == 0, 0.0, (pa * xp.cos(pa) - xp.sin(pa)) / (pa * a))
    raise KeyError(name)


class Special(Function):
    """One special function of one tensor (``n``: polygamma's order), with its derivative."""

    def forward(self, a, name, n=None):
        xp = self.xp
        self.name, self.n = name, n
        args = (n, a) if name == "polygamma" else (a,)
        with np.errstate(all="ignore"):
            y = xp.asarray(call(xp, name, *args)).astype(a.dtype, copy=False)
        self.save_for_backward(a, y)
        return y

    def backward(self, g):
        xp = self.xp
        a, y = self.saved
        d = _derivative(xp, self.name, a.astype(np.float64), y.astype(np.float64), self.n)
        return (g * d).astype(g.dtype), None, None


class Logit(Function):
    """log(z / (1 - z)) with z = a clamped to [eps, 1 - eps] (when eps is given). Gradient as
    torch: 1 / (a (1 - a)), zero outside [eps, 1 - eps] with eps, NaN outside [0, 1]
    without."""

    def forward(self, a, eps):
        xp = self.xp
        self.eps = eps
        z = a.astype(np.float64)
        if eps is not None:
            z = xp.clip(z, eps, 1 - eps)
        with np.errstate(divide="ignore", invalid="ignore"):
            y = xp.log(z / (1 - z)).astype(a.dtype)
        self.save_for_backward(a)
        return y

    def backward(self, g):
        xp = self.xp
        (a,) = self.saved
        a64 = a.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = g / (a64 * (1 - a64))
            if self.eps is None:
                d = xp.where((a64 < 0) | (a64 > 1), np.nan, d)
            else:
                d = xp.where((a64 < self.eps) | (a64 > 1 - self.eps), 0.0, d)
        return d.astype(g.dtype), None


class Binary(Function):
    """xlogy(x, y) = x log y, xlog1py(x, y) = x log1p(y) (both 0 where x == 0, unless y is
    NaN) and zeta(x, q), broadcast. Gradients as torch; zeta has none in x (torch's
    "not implemented")."""

    def forward(self, x, y, name):
        xp = self.xp
        self.name, self.shapes = name, (x.shape, y.shape)
        x64, y64 = x.astype(np.float64), y.astype(np.float64)
        with np.errstate(all="ignore"):
            if name == "zeta":
                out = call(xp, "zeta", x64, y64)
            else:
                log = xp.log(y64) if name == "xlogy" else xp.log1p(y64)
                out = xp.where((x64 == 0) & ~xp.isnan(y64), 0.0, x64 * log)
        self.save_for_backward(x64, y64)
        return xp.asarray(out).astype(np.float32)

    def backward(self, g):
        xp = self.xp
        x, y = self.saved
        g64 = g.astype(np.float64)
        dx = dy = None
        with np.errstate(all="ignore"):
            if self.name == "zeta":
                if self.needs_input_grad[0]:
                    raise NotImplementedError("the derivative for 'zeta' is not implemented "
                                              "(for its first argument, as in torch).")
                if self.needs_input_grad[1]:
                    dy = g64 * -x * call(xp, "zeta", x + 1, y)
            else:
                shifted = y if self.name == "xlogy" else y + 1
                edge = 0.0 if self.name == "xlogy" else -1.0
                if self.needs_input_grad[0]:
                    log = xp.log(shifted)
                    dx = xp.where((g64 == 0) & ~xp.isnan(y), 0.0, g64 * log)
                    dx = xp.where((x == 0) & (y <= edge), 0.0, dx)
                if self.needs_input_grad[1]:
                    dy = g64 * x / shifted
        dx = None if dx is None else unbroadcast(xp, dx, self.shapes[0]).astype(np.float32)
        dy = None if dy is None else unbroadcast(xp, dy, self.shapes[1]).astype(np.float32)
        return dx, dy, None
