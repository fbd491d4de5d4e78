"""Tensor factories with PyTorch's names and arguments: zeros, ones, full, empty, rand, randn,
randint, randperm, arange, linspace, eye, their ``*_like`` forms, from_numpy and as_tensor;
the sampling functions bernoulli, multinomial, normal and poisson.

Every factory takes ``dtype=``, ``device=`` and ``requires_grad=`` (keywords, as in PyTorch).
Default dtypes follow PyTorch: float32 for floating values, int64 for integer ones (``arange``
and ``full`` infer it from their arguments), bool for a bool fill. ``dtype=fastconv.float64``
gives float32 with a warning (see :mod:`fastconv.dtypes`).

Random factories draw from fastconv's seeded generator (``fastconv.manual_seed``), or from a
``fastconv.Generator`` passed as ``generator=``. They draw on the CPU and copy to the device,
so one seed gives the same values on "cpu" and "cuda".
"""

from __future__ import annotations

import numpy as np

from fastconv import dtypes
from fastconv import random as _random
from fastconv.device import as_device
from fastconv.ops.validate import check_allocation
from fastconv.tensor import Tensor, _as_array, _shape_args

__all__ = [
    "Generator",
    "logspace",
    "scalar_tensor",
    "hann_window",
    "hamming_window",
    "blackman_window",
    "bartlett_window",
    "kaiser_window",
    "layout",
    "strided",
    "arange",
    "bernoulli",
    "as_tensor",
    "empty",
    "empty_like",
    "eye",
    "from_numpy",
    "full",
    "full_like",
    "linspace",
    "multinomial",
    "normal",
    "ones",
    "ones_like",
    "poisson",
    "rand",
    "rand_like",
    "randint",
    "randint_like",
    "randn",
    "randn_like",
    "randperm",
    "zeros",
    "zeros_like",
    # torch's legacy typed constructors
    "BoolTensor",
    "ByteTensor",
    "DoubleTensor",
    "FloatTensor",
    "HalfTensor",
    "IntTensor",
    "LongTensor",
]


class Generator:
    """A random generator of its own (``fastconv.Generator().manual_seed(0)``), for the
    ``generator=`` argument of the random factories."""

    def __init__(self, device="cpu"):
        self.device = as_device(device)
        self._seed = int(np.random.SeedSequence().entropy % 2**63)
        self._rng = np.random.Generator(np.random.PCG64(self._seed))

    def manual_seed(self, seed: int) -> Generator:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"manual_seed: seed must be a non-negative int, got {seed!r}")
        self._seed = int(seed)
        self._rng = np.random.Generator(np.random.PCG64(self._seed))
        return self

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self) -> dict:
        return self._rng.bit_generator.state

    def set_state(self, state: dict) -> Generator:
        self._rng.bit_generator.state = state
        return self


def _rng(generator) -> np.random.Generator:
    if generator is None or generator is _random.default_generator:
        return _random.generator()
    if not isinstance(generator, Generator):
        raise TypeError(f"generator must be a fastconv.Generator, got {type(generator).__name__}")
    return generator._rng


def _size(size, what: str = "tensor creation") -> tuple:
    if len(size) == 1 and size[0] is not None and not isinstance(size[0], (int, np.integer)):
        size = tuple(size[0])
    shape = _shape_args(size)
    if any(s < 0 for s in shape):
        raise RuntimeError(f"Trying to create tensor with negative dimension: {list(shape)}")
    check_allocation(what, shape)
    return shape


class layout:
    """A tensor layout (``fastconv.strided``, the only one: dense arrays)."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"fastconv.{self.name}"


strided = layout("strided")


def _shape_of(what: str, shape: tuple, size, options: dict) -> tuple:
    """The shape given positionally (ints or one sequence) or as ``size=``, after checking
    PyTorch's other factory options (layout, pin_memory, memory_format, out)."""
    for key, value in options.items():
        if key == "out":
            if value is not None:
                raise TypeError(f"{what}(): out= is not supported by fastconv; use the "
                                "returned tensor")
        elif key == "layout":
            if value is not None and value is not strided:
                raise RuntimeError(f"{what}(): only the strided layout (fastconv.strided) "
                                   f"exists in fastconv, got {value}")
        elif key not in ("pin_memory", "memory_format"):
            raise TypeError(f"{what}() got an unexpected keyword argument '{key}'")
    if size is not None:
        if shape:
            raise TypeError(f"{what}() received the shape both positionally and as size=")
        shape = (size,)
    return _size(shape, what)


def _make(array: np.ndarray, dtype, device, requires_grad: bool, what: str,
          default=dtypes.float32) -> Tensor:
    """A leaf tensor of ``array`` as ``dtype`` on ``device``."""
    target = default if dtype is None else dtypes.storable(dtype, what, stacklevel=3)
    array = np.asarray(array).astype(target, copy=False)
    dev = "cpu" if device is None else as_device(device).type
    if dev != "cpu":
        array = _as_array(array, dev)
    return Tensor(array, requires_grad=requires_grad)


def zeros(*shape, size=None, dtype=None, device=None, requires_grad: bool = False,
          **options) -> Tensor:
    """A tensor of zeros of shape ``size`` (ints or one sequence)."""
    return _make(np.zeros(_shape_of("zeros", shape, size, options)),
                 dtype, device, requires_grad, "zeros")


def ones(*shape, size=None, dtype=None, device=None, requires_grad: bool = False,
         **options) -> Tensor:
    """A tensor of ones of shape ``size``."""
    return _make(np.ones(_shape_of("ones", shape, size, options)),
                 dtype, device, requires_grad, "ones")


def empty(*shape, size=None, dtype=None, device=None, requires_grad: bool = False,
          **options) -> Tensor:
    """A tensor of shape ``size`` whose values are not to be relied on (fastconv fills it with
    zeros: uninitialised memory is no faster here)."""
    return _make(np.zeros(_shape_of("empty", shape, size, options)),
                 dtype, device, requires_grad, "empty")


def _fill_dtype(value):
    if isinstance(value, (bool, np.bool_)):
        return dtypes.bool_
    if isinstance(value, (int, np.integer)):
        return dtypes.int64
    return dtypes.float32


def full(size, fill_value, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of shape ``size`` filled with ``fill_value`` (dtype inferred from it as in
    PyTorch: bool, int64 or float32)."""
    if isinstance(fill_value, Tensor):
        fill_value = fill_value.item()
    return _make(np.full(_size((size,)), fill_value), dtype, device, requires_grad, "full",
                 default=_fill_dtype(fill_value))


def rand(*shape, size=None, generator=None, dtype=None, device=None,
         requires_grad: bool = False, **options) -> Tensor:
    """Uniform draws from [0, 1)."""
    shape = _shape_of("rand", shape, size, options)
    return _make(_rng(generator).random(shape, dtype=np.float32), dtype, device, requires_grad,
                 "rand")


def randn(*shape, size=None, generator=None, dtype=None, device=None,
          requires_grad: bool = False, **options) -> Tensor:
    """Standard normal draws (mean 0, variance 1)."""
    shape = _shape_of("randn", shape, size, options)
    return _make(_rng(generator).standard_normal(shape, dtype=np.float32), dtype, device,
                 requires_grad, "randn")


def randint(*args, size=None, generator=None, dtype=None, device=None,
            requires_grad: bool = False) -> Tensor:
    """Integers drawn uniformly from [low, high): ``randint(high, size)`` or
    ``randint(low, high, size)``; int64 unless ``dtype`` says otherwise."""
    args = list(args)
    if size is None:
        if not args or isinstance(args[-1], (int, np.integer)):
            raise TypeError("randint() missing the required argument 'size' (a tuple)")
        size = args.pop()
    if len(args) == 1:
        low, high = 0, args[0]
    elif len(args) == 2:
        low, high = args
    else:
        raise TypeError("randint(low=0, high, size): expected one or two bounds")
    if high <= low:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} >= "
                           f"to={high}")
    draws = _rng(generator).integers(int(low), int(high), size=_size((size,)))
    return _make(draws, dtype, device, requires_grad, "randint", default=dtypes.int64)


def randperm(n: int, *, generator=None, dtype=None, device=None,
             requires_grad: bool = False) -> Tensor:
    """A random permutation of 0 .. n-1 (int64)."""
    return _make(_rng(generator).permutation(int(n)), dtype, device, requires_grad, "randperm",
                 default=dtypes.int64)


def arange(start, end=None, step=1, *, dtype=None, device=None,
           requires_grad: bool = False) -> Tensor:
    """``start, start+step, ...`` below ``end`` (``arange(end)`` starts at 0); int64 when all
    arguments are integers, else float32."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise RuntimeError("step must be nonzero")
    values = [v.item() if isinstance(v, Tensor) else v for v in (start, end, step)]
    is_int = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values)
    start, end, step = values
    if not (np.isfinite(start) and np.isfinite(end)):
        raise RuntimeError(f"unsupported range: {start:g} -> {end:g}")
    if (step > 0 and end < start) or (step < 0 and end > start):
        raise RuntimeError("upper bound and lower bound inconsistent with step sign")
    if is_int:
        array = np.arange(start, end, step, dtype=np.int64)
    else:  # computed in float64 (PyTorch's count: ceil((end - start) / step))
        n = max(int(np.ceil((end - start) / step)), 0)
        array = start + step * np.arange(n, dtype=np.float64)
    return _make(array, dtype, device, requires_grad, "arange",
                 default=dtypes.int64 if is_int else dtypes.float32)


def linspace(start, end, steps: int, *, dtype=None, device=None,
             requires_grad: bool = False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive (float32)."""
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    return _make(np.linspace(float(start), float(end), int(steps)), dtype, device,
                 requires_grad, "linspace")


def logspace(start, end, steps: int, base: float = 10.0, *, dtype=None, device=None,
             requires_grad: bool = False) -> Tensor:
    """``base ** linspace(start, end, steps)``."""
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    return _make(np.logspace(float(start), float(end), int(steps), base=float(base)), dtype,
                 device, requires_grad, "logspace")


def scalar_tensor(s, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A 0-d tensor holding the number ``s`` (float32 unless ``dtype``)."""
    return _make(np.asarray(s), dtype, device, requires_grad, "scalar_tensor")


def _window(name, periodic, length, values, dtype, device, requires_grad):
    """A window of ``length`` points; ``periodic`` (the default, as torch's) drops the last
    point of the symmetric window of ``length + 1``, for use with an FFT."""
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
        raise RuntimeError(f"{name} requires non-negative window length, got "
                           f"window_length={length!r}")
    if length <= 1:
        return _make(np.ones(int(length)), dtype, device, requires_grad, name)
    n = length + 1 if periodic else length
    return _make(values(np.arange(n), n)[:length], dtype, device, requires_grad, name)


def hann_window(window_length: int, periodic: bool = True, *, dtype=None, device=None,
                requires_grad: bool = False) -> Tensor:
    return _window("hann_window", periodic, window_length,
                   lambda k, n: 0.5 - 0.5 * np.cos(2 * np.pi * k / (n - 1)), dtype, device,
                   requires_grad)


def hamming_window(window_length: int, periodic: bool = True, alpha: float = 0.54,
                   beta: float = 0.46, *, dtype=None, device=None,
                   requires_grad: bool = False) -> Tensor:
    return _window("hamming_window", periodic, window_length,
                   lambda k, n: alpha - beta * np.cos(2 * np.pi * k / (n - 1)), dtype, device,
                   requires_grad)


def blackman_window(window_length: int, periodic: bool = True, *, dtype=None, device=None,
                    requires_grad: bool = False) -> Tensor:
    return _window("blackman_window", periodic, window_length,
                   lambda k, n: (0.42 - 0.5 * np.cos(2 * np.pi * k / (n - 1))
                                 + 0.08 * np.cos(4 * np.pi * k / (n - 1))), dtype, device,
                   requires_grad)


def bartlett_window(window_length: int, periodic: bool = True, *, dtype=None, device=None,
                    requires_grad: bool = False) -> Tensor:
    return _window("bartlett_window", periodic, window_length,
                   lambda k, n: 1 - np.abs(2 * k / (n - 1) - 1), dtype, device, requires_grad)


def kaiser_window(window_length: int, periodic: bool = True, beta: float = 12.0, *, dtype=None,
                  device=None, requires_grad: bool = False) -> Tensor:
    return _window("kaiser_window", periodic, window_length,
                   lambda k, n: np.i0(beta * np.sqrt(1 - (2 * k / (n - 1) - 1) ** 2))
                   / np.i0(beta), dtype, device, requires_grad)


def eye(n: int, m: int | None = None, *, dtype=None, device=None,
        requires_grad: bool = False) -> Tensor:
    """An n x m matrix with ones on the diagonal (m defaults to n)."""
    return _make(np.eye(int(n), int(n if m is None else m)), dtype, device, requires_grad, "eye")


# ----------------------------------------------------------------------------- *_like


def _like(input, dtype, device):
    return (input.dtype if dtype is None else dtype), (input.device if device is None else device)


def zeros_like(input, *, dtype=None, device=None, requires_grad: bool = False,
               memory_format=None, layout=None, pin_memory: bool = False) -> Tensor:
    dtype, device = _like(input, dtype, device)
    return zeros(input.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def ones_like(input, *, dtype=None, device=None, requires_grad: bool = False,
              memory_format=None, layout=None, pin_memory: bool = False) -> Tensor:
    dtype, device = _like(input, dtype, device)
    return ones(input.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def empty_like(input, *, dtype=None, device=None, requires_grad: bool = False,
               memory_format=None, layout=None, pin_memory: bool = False) -> Tensor:
    dtype, device = _like(input, dtype, device)
    return empty(input.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def full_like(input, fill_value, *, dtype=None, device=None,
              requires_grad: bool = False,
              memory_format=None, layout=None, pin_memory: bool = False) -> Tensor:
    dtype, device = _like(input, dtype, device)
    return full(input.shape, fill_value, dtype=dtype, device=device, requires_grad=requires_grad)


def rand_like(input, *, generator=None, dtype=None, device=None,
              requires_grad: bool = False,
              memory_format=None, layout=None, pin_memory: bool = False) -> Tensor:
    dtype, device = _like(input, dtype, device)
    return rand(input.shape, generator=generator, dtype=dtype, device=device,
                requires_grad=requires_grad)


def randn_like(input, *, generator=None, dtype=None, device=None,
               requires_grad: bool = False,
               memory_format=None, layout=None, pin_memory: bool = False) -> Tensor:
    dtype, device = _like(input, dtype, device)
    return randn(input.shape, generator=generator, dtype=dtype, device=device,
                 requires_grad=requires_grad)


def randint_like(input, low=0, high=None, *, generator=None, dtype=None, device=None,
                 requires_grad: bool = False) -> Tensor:
    """``randint_like(input, high)`` or ``randint_like(input, low, high)``."""
    if high is None:
        low, high = 0, low
    dtype, device = _like(input, dtype, device)
    return randint(low, high, input.shape, generator=generator, dtype=dtype, device=device,
                   requires_grad=requires_grad)


# ----------------------------------------------------------------------------- from arrays


def from_numpy(ndarray: np.ndarray) -> Tensor:
    """A tensor sharing ``ndarray``'s memory (changes to one show in the other).

    float32, integer and bool arrays are shared. A float64 / float16 array cannot be: it is
    copied to float32 with a :class:`fastconv.dtypes.DtypeWarning` that says so (PyTorch would
    share a float64 tensor).
    """
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(ndarray).__name__})")
    if ndarray.dtype.kind not in "biuf":
        raise TypeError(f"can't convert np.ndarray of type {ndarray.dtype}. The only supported "
                        "types are: float32, int64, int32, int16, int8, uint8, and bool.")
    if ndarray.dtype.kind == "f" and ndarray.dtype != np.float32:
        dtypes.warn_float32("from_numpy (the float32 copy does not share memory)", ndarray.dtype,
                            stacklevel=2)
        return Tensor(ndarray.astype(np.float32))
    return Tensor(ndarray)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """``data`` as a tensor, sharing memory when it already is one (or a NumPy array) of the
    requested dtype and device; otherwise a copy (as ``torch.as_tensor``)."""
    target = None if dtype is None else dtypes.storable(dtype, "as_tensor", stacklevel=2)
    dev = None if device is None else as_device(device).type
    if isinstance(data, Tensor):
        out = data
        if target is not None and target != out.dtype:
            out = out.to(target)
        if dev is not None and dev != out.device:
            out = out.to(dev)
        return out
    if isinstance(data, np.ndarray) and data.dtype.kind in "biuf" and (
            target is None or target == data.dtype) and dev in (None, "cpu"):
        if data.dtype.kind == "f" and data.dtype != np.float32:
            dtypes.warn_float32("as_tensor (the float32 copy does not share memory)",
                                data.dtype, stacklevel=2)
            return Tensor(data.astype(np.float32))
        return Tensor(data)
    array = _as_array(data, "cpu", what="as_tensor") if not type(data).__module__.startswith(
        "cupy") else data
    if target is not None:
        array = array.astype(target)
    return Tensor(_as_array(array, dev or ("cuda" if type(array).__module__.startswith("cupy")
                                            else "cpu")))


# ----------------------------------------------------------------------------- sampling


def _host_values(t, name: str) -> np.ndarray:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name}(): argument 'input' must be a Tensor, got {type(t).__name__}")
    a = t.data if t.device == "cpu" else t.data.get()
    return np.asarray(a)


def _like_input(array, input: Tensor, dtype) -> Tensor:
    return _make(array, dtype if dtype is not None else input.dtype, input.device, False,
                 "sample")


def bernoulli(input, p=None, *, generator=None) -> Tensor:
    """1 with probability ``input`` (or ``p``) elementwise, else 0, in input's dtype."""
    probs = _host_values(input, "bernoulli")
    if probs.dtype.kind != "f":
        raise RuntimeError(f"bernoulli: expected a floating-point tensor, got {probs.dtype}")
    if p is not None:
        probs = np.full(probs.shape, float(p))
    if probs.size and not (np.all(probs >= 0) and np.all(probs <= 1)):
        raise RuntimeError("bernoulli: all elements of input must lie in [0, 1]")
    draws = _rng(generator).random(probs.shape) < probs
    return _like_input(draws, input, None)


def multinomial(input, num_samples: int, replacement: bool = False, *,
                generator=None) -> Tensor:
    """Category indices drawn by the (unnormalised) weights of each row of ``input`` (1-D or
    2-D), with or without replacement, as int64."""
    weights = _host_values(input, "multinomial").astype(np.float64)
    if weights.ndim not in (1, 2):
        raise RuntimeError(f"multinomial: prob_dist must be 1 or 2 dim, got {weights.ndim}")
    if not isinstance(num_samples, (int, np.integer)) or num_samples <= 0:
        raise RuntimeError(f"multinomial: cannot sample n_sample <= 0 samples, got "
                           f"{num_samples!r}")
    rows = weights.reshape(-1, weights.shape[-1])
    if rows.shape[1] == 0:
        raise RuntimeError("multinomial: the distribution has no categories")
    if not np.all(np.isfinite(rows)) or np.any(rows < 0):
        raise RuntimeError("multinomial: probability tensor contains either `inf`, `nan` or "
                           "element < 0")
    rng = _rng(generator)
    out = np.empty((rows.shape[0], int(num_samples)), np.int64)
    for i, w in enumerate(rows):
        total = w.sum()
        if total <= 0:
            raise RuntimeError("multinomial: invalid multinomial distribution (sum of "
                               "probabilities <= 0)")
        if not replacement and num_samples > np.count_nonzero(w):
            raise RuntimeError("multinomial: cannot sample n_sample > prob_dist.size(-1) "
                               "samples without replacement")
        out[i] = rng.choice(w.size, size=int(num_samples), replace=bool(replacement),
                            p=w / total)
    out = out.reshape(weights.shape[:-1] + (int(num_samples),))
    return _make(out, None, input.device, False, "multinomial", default=dtypes.int64)


def normal(mean=0.0, std=1.0, size=None, *, generator=None, dtype=None, device=None,
           requires_grad: bool = False) -> Tensor:
    """Draws from N(mean, std): elementwise for tensor ``mean`` and/or ``std`` (broadcast), or
    ``size`` draws for two numbers, as torch.normal."""
    tensors = [t for t in (mean, std) if isinstance(t, Tensor)]
    if tensors:
        if size is not None:
            raise RuntimeError("normal: size is given by the tensor arguments; pass numbers "
                               "for mean and std to give a size")
        m = _host_values(mean, "normal") if isinstance(mean, Tensor) else float(mean)
        s = _host_values(std, "normal") if isinstance(std, Tensor) else float(std)
        if np.any(np.asarray(s) < 0):
            raise RuntimeError("normal expects all elements of std >= 0.0")
        shape = np.broadcast_shapes(np.shape(m), np.shape(s))
        draws = m + s * _rng(generator).standard_normal(shape)
        return _make(draws, dtype, device if device is not None else tensors[0].device,
                     requires_grad, "normal")
    if size is None:
        raise TypeError("normal(mean: float, std: float) needs a size")
    if float(std) < 0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
    draws = _rng(generator).normal(float(mean), float(std), size=_size((size,)))
    return _make(draws, dtype, device, requires_grad, "normal")


def poisson(input, generator=None) -> Tensor:
    """Draws from Poisson(rate) for each rate in ``input``, in input's dtype."""
    rates = _host_values(input, "poisson")
    if rates.size and np.any(rates < 0):
        raise RuntimeError("poisson: rates must be non-negative")
    return _like_input(_rng(generator).poisson(rates), input, None)


# ----------------------------------------------------------------------------- legacy constructors


def _typed_constructor(name: str, dtype):
    def make(*args, device=None) -> Tensor:
        if not args:
            return empty(0, dtype=dtype, device=device)
        if all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in args):
            return empty(*args, dtype=dtype, device=device)  # FloatTensor(2, 3): sizes
        if len(args) != 1:
            raise TypeError(f"{name}(): expected sizes or one data argument, got {args!r}")
        data = args[0]
        if isinstance(data, Tensor):
            data = data.data if data.device == "cpu" else data.data.get()
        return _make(np.asarray(data), dtype, device, False, name)

    make.__name__ = name
    make.dtype = dtype  # read by Tensor.type(fastconv.FloatTensor)
    make.__doc__ = (f"torch.{name}: ``{name}(*sizes)`` uninitialised, ``{name}(data)`` a copy "
                    f"of data, as {dtypes.resolve(dtype)}.")
    return make


FloatTensor = _typed_constructor("FloatTensor", dtypes.float32)
DoubleTensor = _typed_constructor("DoubleTensor", dtypes.float64)  # float32, with a warning
HalfTensor = _typed_constructor("HalfTensor", dtypes.float16)  # float32, with a warning
LongTensor = _typed_constructor("LongTensor", dtypes.int64)
IntTensor = _typed_constructor("IntTensor", dtypes.int32)
ByteTensor = _typed_constructor("ByteTensor", dtypes.uint8)
BoolTensor = _typed_constructor("BoolTensor", dtypes.bool_)

