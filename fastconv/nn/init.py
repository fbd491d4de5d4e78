"""Weight initialisers (PyTorch's ``torch.nn.init`` names and formulas), in place on Tensors.

Draws come from fastconv's generator, so ``fastconv.manual_seed`` makes them
reproducible; the random ones also take torch's ``generator=`` (a ``fastconv.Generator``, or a
``numpy.random.Generator``) to draw from instead. Each returns the tensor it filled.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from fastconv import random
from fastconv.tensor import Tensor, _as_array


def _fill(tensor: Tensor, values: np.ndarray) -> Tensor:
    tensor.data = _as_array(values.astype(np.float32).reshape(tensor.shape), tensor.device)
    return tensor


def _fans(tensor: Tensor) -> tuple[int, int]:
    if tensor.ndim < 2:
        raise ValueError(f"fan in/out need a tensor with at least 2 dims, got shape {tensor.shape}")
    receptive = int(np.prod(tensor.shape[2:])) if tensor.ndim > 2 else 1
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


# PyTorch's private names for these, which many scripts call directly.
_calculate_fan_in_and_fan_out = _fans


def _calculate_correct_fan(tensor, mode):
    return _fan(tensor, mode)


def _rng(generator, who: str) -> np.random.Generator:
    """The generator to draw from: fastconv's global one, or the ``generator=`` given."""
    if generator is None:
        return random.generator()
    if isinstance(generator, np.random.Generator):
        return generator
    from fastconv.creation import Generator

    if isinstance(generator, Generator):
        return generator._rng
    raise TypeError(f"{who}: generator must be a fastconv.Generator (as torch.Generator), a "
                    f"numpy.random.Generator or None, got {type(generator).__name__}")


_LINEAR_FNS = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
               "conv_transpose3d", "sigmoid", "identity")


def _is_real(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def calculate_gain(nonlinearity: str, param=None) -> float:
    """Recommended gain for a nonlinearity (PyTorch's table); ``param`` is leaky_relu's
    negative slope (default 0.01)."""
    if nonlinearity in _LINEAR_FNS:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif _is_real(param):
            slope = float(param)
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _check_mode(mode):
    low = mode.lower() if isinstance(mode, str) else mode  # torch lower-cases it
    if low not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    return low


def _fan(tensor, mode):
    fan_in, fan_out = _fans(tensor)
    return fan_in if _check_mode(mode) == "fan_in" else fan_out


def _number(who, name, value) -> float:
    if not _is_real(value):
        raise TypeError(f"{who}: {name} must be a real number, got {value!r}")
    return float(value)


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """U(a, b), as torch's (which needs finite a <= b)."""
    a, b = _number("uniform_", "a", a), _number("uniform_", "b", b)
    for name, v, word in (("a", a, "from"), ("b", b, "to")):
        if not math.isfinite(v):
            raise ValueError(f"uniform_: {name} ({word}) must be finite, got {v}")
    if a > b:
        raise ValueError(f"uniform_ expects to return a [from, to) range, but found "
                         f"from={a:g} > to={b:g} (a must be <= b)")
    return _fill(tensor, _rng(generator, "uniform_").uniform(a, b, tensor.shape))


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """N(mean, std^2), as torch's (which needs std >= 0)."""
    mean, std = _number("normal_", "mean", mean), _number("normal_", "std", std)
    if not std >= 0:  # NaN too
        raise ValueError(f"normal expects std >= 0.0, but found std {std:g}")
    return _fill(tensor, _rng(generator, "normal_").normal(mean, std, tensor.shape))


def _ndtr(x: float) -> float:
    """Phi(x), the standard normal CDF, accurate in the lower tail."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _open_uniform(gen, n: int) -> np.ndarray:
    """n draws from U(0, 1) that are never exactly 0 or 1."""
    return (gen.integers(0, 2 ** 52, n) + 0.5) / 2.0 ** 52  # exact: k + 0.5 < 2^52


def _standard_trunc_normal(gen, lo: float, hi: float, n: int) -> np.ndarray:
    """n draws of a standard normal truncated to [lo, hi] (lo <= hi) by the inverse CDF.

    The interval is mirrored so that most of it lies below 0, where Phi is accurate to its
    last bits; then u ~ U(Phi(lo), Phi(hi)) and z = Phi^{-1}(u). Beyond about 37 standard
    deviations Phi underflows, and the same draw is made with log Phi instead: solve
    log Phi(z) = log Phi(hi) + log(v + (1 - v) Phi(lo) / Phi(hi)), v ~ U(0, 1), by Newton's
    method (log Phi is concave, so the iterates rise monotonically to the root)."""
    from fastconv.ops import special

    if lo + hi > 0:
        return -_standard_trunc_normal(gen, -hi, -lo, n)
    v = _open_uniform(gen, n)
    p_lo, p_hi = _ndtr(lo), _ndtr(hi)
    if p_hi > 1e-280:
        return special.ndtri(p_lo + v * (p_hi - p_lo))
    log_lo = special.log_ndtr(np.array([lo]))[0]
    log_hi = special.log_ndtr(np.array([hi]))[0]
    target = log_hi + np.log(v + (1 - v) * math.exp(log_lo - log_hi))
    z = -np.sqrt(-2 * target)  # below the root
    for _ in range(50):
        step = (special.log_ndtr(z) - target) * special.erfcx(-z / math.sqrt(2.0)) \
            / math.sqrt(2.0 / math.pi)
        z = z - step
        if np.all(np.abs(step) <= 1e-12 * np.abs(z)):
            break
    return z


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    """N(mean, std^2) truncated to [a, b] (absolute bounds, as PyTorch).

    When [a, b] holds more than 30% of the normal's mass, normal draws outside it are drawn
    again (a few rounds); otherwise, and for whatever is still outside after those rounds,
    the values come from the inverse CDF (see ``_standard_trunc_normal``), which takes no
    retries however far in the tails [a, b] lies. The result is clamped to [a, b]."""
    gen = _rng(generator, "trunc_normal_")
    mean, std = _number("trunc_normal_", "mean", mean), _number("trunc_normal_", "std", std)
    a, b = _number("trunc_normal_", "a", a), _number("trunc_normal_", "b", b)
    for name, v in (("mean", mean), ("std", std)):
        if not math.isfinite(v):
            raise ValueError(f"trunc_normal_: {name} must be finite, got {v}")
    if std < 0:
        raise ValueError(f"trunc_normal_: std must be >= 0, got {std:g}")
    if math.isnan(a) or math.isnan(b) or a == math.inf or b == -math.inf:
        raise ValueError(f"trunc_normal_: need bounds -inf <= a < inf and -inf < b <= inf, "
                         f"got a={a}, b={b}")
    if a > b:
        raise ValueError(f"trunc_normal_: the lower bound a must be <= the upper bound b, "
                         f"got a={a:g} > b={b:g}")
    n = int(np.prod(tensor.shape))
    if std == 0 or n == 0:
        return _fill(tensor, np.full(tensor.shape, min(max(mean, a), b)))
    lo, hi = (a - mean) / std, (b - mean) / std
    if _ndtr(hi) - _ndtr(lo) > 0.3:
        values = gen.normal(mean, std, tensor.shape)
        bad = (values < a) | (values > b)
        for _ in range(20):
            if not bad.any():
                break
            values[bad] = gen.normal(mean, std, int(bad.sum()))
            bad = (values < a) | (values > b)
        if bad.any():
            values[bad] = mean + std * _standard_trunc_normal(gen, lo, hi, int(bad.sum()))
    else:
        values = mean + std * _standard_trunc_normal(gen, lo, hi, n)
    return _fill(tensor, np.clip(values, a, b))


def constant_(tensor, val):
    return _fill(tensor, np.full(tensor.shape, val))


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


def _zero_element(tensor) -> bool:
    """A tensor with a zero-size dim has nothing to fill and no usable fan: torch's kaiming
    initialisers leave it as it is (with this warning)."""
    if 0 in tuple(tensor.shape):
        warnings.warn("Initializing zero-element tensors is a no-op", UserWarning, stacklevel=3)
        return True
    return False


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    fan_in, fan_out = _fans(tensor)
    if 0 in tuple(tensor.shape):  # nothing to fill (and fan_in + fan_out may be 0)
        return tensor
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    """N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    fan_in, fan_out = _fans(tensor)
    if 0 in tuple(tensor.shape):  # nothing to fill (and fan_in + fan_out may be 0)
        return tensor
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu",
                     generator=None):
    """U(-b, b), b = gain * sqrt(3 / fan) (He et al., 2015)."""
    gain = calculate_gain(nonlinearity, a)
    mode = _check_mode(mode)
    if _zero_element(tensor):
        return tensor
    fan = _fan(tensor, mode)
    std = gain / math.sqrt(fan)
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu",
                    generator=None):
    """N(0, std^2), std = gain / sqrt(fan) (He et al., 2015)."""
    gain = calculate_gain(nonlinearity, a)
    mode = _check_mode(mode)
    if _zero_element(tensor):
        return tensor
    fan = _fan(tensor, mode)
    return normal_(tensor, 0.0, gain / math.sqrt(fan), generator)


def orthogonal_(tensor, gain=1.0, generator=None):
    """A (semi-)orthogonal matrix over the tensor flattened to (size(0), rest), times
    ``gain``: the Q of a QR decomposition of Gaussian draws with R's diagonal signs folded in
    (Saxe et al., 2013), as torch's."""
    if tensor.ndim < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    rows = tensor.shape[0]
    cols = int(np.prod(tensor.shape)) // rows if rows else 0
    if rows == 0 or cols == 0:
        return tensor
    flat = _rng(generator, "orthogonal_").normal(0.0, 1.0, (rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _fill(tensor, q * gain)


def eye_(tensor):
    """The identity matrix (2-D tensors), as torch's."""
    if tensor.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    return _fill(tensor, np.eye(*tensor.shape))


def dirac_(tensor, groups=1):
    """The Dirac delta of a convolution weight (3 to 5 dims): each of the first
    min(out/groups, in) output channels of a group passes its input channel through at the
    kernel's centre, as torch's."""
    if tensor.ndim not in (3, 4, 5):
        raise ValueError("Only tensors with 3, 4, or 5 dimensions are supported")
    if not isinstance(groups, int) or groups < 1 or tensor.shape[0] % groups:
        raise ValueError(f"dim 0 ({tensor.shape[0]}) must be divisible by groups ({groups})")
    per_group = tensor.shape[0] // groups
    values = np.zeros(tensor.shape)
    centre = tuple(k // 2 for k in tensor.shape[2:])
    for g in range(groups):
        for d in range(min(per_group, tensor.shape[1])):
            values[(g * per_group + d, d) + centre] = 1
    return _fill(tensor, values)


def sparse_(tensor, sparsity, std=0.01, generator=None):
    """A 2-D tensor drawn from N(0, std^2) with ceil(sparsity * rows) entries of every column
    set to zero at random rows (Martens, 2010), as torch's."""
    if tensor.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must lie in [0, 1], got {sparsity}")
    rows, cols = tensor.shape
    zeros = int(math.ceil(sparsity * rows))
    rng = _rng(generator, "sparse_")
    values = rng.normal(0.0, std, (rows, cols))
    for c in range(cols):
        values[rng.permutation(rows)[:zeros], c] = 0.0
    return _fill(tensor, values)
