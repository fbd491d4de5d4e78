"""``fastconv.testing``: :func:`assert_close` and :func:`make_tensor`, as ``torch.testing``.

``assert_close(actual, expected)`` compares fastconv Tensors, NumPy arrays, Python and NumPy
numbers, bools and None, and (nested) sequences and mappings of them, with torch's rules: the
two sides have the same kind (a Tensor with a Tensor, an array with an array), the same shape,
device and (with ``check_dtype``) dtype, and every pair of values satisfies

    |actual - expected| <= atol + rtol * |expected|

(``equal_nan``: NaN equals NaN), with ``rtol`` and ``atol`` chosen by dtype when omitted:

    ==========================  ==========  ==========
    dtype                       rtol        atol
    ==========================  ==========  ==========
    float16                     1e-3        1e-5
    bfloat16                    1.6e-2      1e-5
    float32                     1.3e-6      1e-5
    float64                     1e-7        1e-7
    other (integers, bool)      0           0
    ==========================  ==========  ==========

(Python floats count as float64 and ints as int64.) A mismatch raises an AssertionError
worded as torch's: how many elements mismatch, the greatest absolute and relative
differences and where they are, and which item of a sequence or mapping failed.
"""

from __future__ import annotations

import collections.abc
import contextlib
import math

import numpy as np

from fastconv import dtypes
from fastconv.tensor import Size, Tensor

__all__ = ["assert_close", "make_tensor"]

_DTYPE_PRECISIONS = {
    np.dtype(np.float16): (1e-3, 1e-5),
    dtypes.bfloat16: (1.6e-2, 1e-5),
    np.dtype(np.float32): (1.3e-6, 1e-5),
    np.dtype(np.float64): (1e-7, 1e-7),
    np.dtype(np.complex64): (1.3e-6, 1e-5),
    np.dtype(np.complex128): (1e-7, 1e-7),
}
_NUMBER_DTYPES = {int: np.dtype(np.int64), float: np.dtype(np.float64),
                  complex: np.dtype(np.complex128)}


class _Failure(Exception):
    """A mismatch found while pairing or comparing: the exception type to raise, the message,
    and the path (``id``) of the item inside nested sequences and mappings."""

    def __init__(self, kind, msg, id=()):
        super().__init__(msg)
        self.kind, self.msg, self.id = kind, msg, id

    def to_error(self, msg=None):
        if not isinstance(msg, str):
            generated = self.msg
            if self.id:
                generated += ("\n\nThe failure occurred for item "
                              + "".join(str([item]) for item in self.id))
            msg = msg(generated) if callable(msg) else generated
        return self.kind(msg)


class _Unsupported(Exception):
    """This pair type does not handle these inputs: try the next."""


def _tolerances(dts, rtol, atol, id):
    if (rtol is None) ^ (atol is None):
        raise _Failure(ValueError, "Both 'rtol' and 'atol' must be either specified or omitted, "
                                   f"but got no {'rtol' if rtol is None else 'atol'}.", id)
    if rtol is not None:
        return rtol, atol
    rtols, atols = zip(*[_DTYPE_PRECISIONS.get(np.dtype(d), (0.0, 0.0)) for d in dts])
    return max(rtols), max(atols)


def _mismatch_message(identifier, extra, abs_diff, abs_idx, atol, rel_diff, rel_idx, rtol):
    equality = rtol == 0 and atol == 0

    def line(kind, diff, idx, tol):
        text = (f"{kind.title()} difference: {diff}" if idx is None else
                f"Greatest {kind} difference: {diff} at index {idx}")
        return text + ("" if equality else f" (up to {tol} allowed)") + "\n"

    msg = f"{identifier} are not {'equal' if equality else 'close'}!\n\n"
    if extra:
        msg += f"{extra.strip()}\n"
    msg += line("absolute", abs_diff, abs_idx, atol)
    msg += line("relative", rel_diff, rel_idx, rtol)
    return msg.strip()


def _scalar_message(actual, expected, rtol, atol):
    abs_diff = abs(actual - expected)
    rel_diff = float("inf") if expected == 0 else abs_diff / abs(expected)
    return _mismatch_message("Scalars", f"Expected {expected} but got {actual}.", abs_diff,
                             None, atol, rel_diff, None, rtol)


class _NonePair:
    def __init__(self, actual, expected, id, **options):
        if not (actual is None or expected is None):
            raise _Unsupported
        self.actual, self.expected, self.id = actual, expected, id

    def compare(self):
        if not (self.actual is None and self.expected is None):
            raise _Failure(AssertionError,
                           f"None mismatch: {self.actual} is not {self.expected}", self.id)


class _BooleanPair:
    def __init__(self, actual, expected, id, **options):
        if not all(isinstance(v, (bool, np.bool_)) for v in (actual, expected)):
            raise _Unsupported
        self.actual, self.expected, self.id = bool(actual), bool(expected), id

    def compare(self):
        if self.actual is not self.expected:
            raise _Failure(AssertionError,
                           f"Booleans mismatch: {self.actual} is not {self.expected}", self.id)


class _NumberPair:
    def __init__(self, actual, expected, id, rtol=None, atol=None, equal_nan=False,
                 check_dtype=False, **options):
        kinds = (int, float, complex, np.number)
        if not all(isinstance(v, kinds) and not isinstance(v, (bool, np.bool_))
                   for v in (actual, expected)):
            raise _Unsupported
        actual, expected = (v.item() if isinstance(v, np.number) else v
                            for v in (actual, expected))
        self.actual, self.expected, self.id = actual, expected, id
        self.rtol, self.atol = _tolerances(
            [_NUMBER_DTYPES[type(v)] for v in (actual, expected)], rtol, atol, id)
        self.equal_nan, self.check_dtype = equal_nan, check_dtype

    def compare(self):
        a, e = self.actual, self.expected
        if self.check_dtype and type(a) is not type(e):
            raise _Failure(AssertionError,
                           f"The (d)types do not match: {type(a)} != {type(e)}.", self.id)
        if a == e:
            return
        if self.equal_nan and _isnan(a) and _isnan(e):
            return
        diff = abs(a - e)
        if _isfinite(diff) and diff <= self.atol + self.rtol * abs(e):
            return
        raise _Failure(AssertionError, _scalar_message(a, e, self.rtol, self.atol), self.id)


def _isnan(v):
    return v != v


def _isfinite(v):
    return not (math.isinf(abs(v)) or _isnan(v))


def _host(a):
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)


class _TensorLikePair:
    """fastconv Tensors with Tensors, NumPy arrays with arrays."""

    def __init__(self, actual, expected, id, allow_subclasses=True, rtol=None, atol=None,
                 equal_nan=False, check_device=True, check_dtype=True, check_layout=True,
                 check_stride=False, **options):
        kinds = (Tensor, np.ndarray)
        if not (isinstance(actual, kinds) and isinstance(expected, kinds)):
            raise _Unsupported
        related = isinstance(actual, type(expected)) or isinstance(expected, type(actual))
        if not related or (not allow_subclasses and type(actual) is not type(expected)):
            raise _Unsupported
        self.actual, self.expected, self.id = actual, expected, id
        self.rtol, self.atol = _tolerances([actual.dtype, expected.dtype], rtol, atol, id)
        self.equal_nan, self.check_device = equal_nan, check_device
        self.check_dtype, self.check_stride = check_dtype, check_stride

    def _fail_attribute(self, name, a, e):
        raise _Failure(AssertionError,
                       f"The values for attribute '{name}' do not match: {a} != {e}.", self.id)

    def compare(self):
        a, e = self.actual, self.expected
        if tuple(a.shape) != tuple(e.shape):
            self._fail_attribute("shape", repr(Size(a.shape)), repr(Size(e.shape)))
        if self.check_stride:
            sa, se = _strides(a), _strides(e)
            if sa != se:
                self._fail_attribute("stride()", sa, se)
        da, de = _device(a), _device(e)
        if self.check_device and da != de:
            self._fail_attribute("device", da, de)
        if self.check_dtype and a.dtype != e.dtype:
            self._fail_attribute("dtype", a.dtype, e.dtype)
        a = _host(a.data if isinstance(a, Tensor) else a)
        e = _host(e.data if isinstance(e, Tensor) else e)
        if a.dtype != e.dtype:
            common = _promote(a.dtype, e.dtype)
            a, e = a.astype(common), e.astype(common)
        self._compare_values(a, e)

    def _compare_values(self, a, e):
        with np.errstate(invalid="ignore", over="ignore"):
            matches = a == e
            if self.equal_nan and a.dtype.kind in "fc":
                matches |= np.isnan(a) & np.isnan(e)
            if a.dtype.kind in "fc" and (self.rtol or self.atol):
                error = np.abs(a - e)
                matches |= np.isfinite(error) & (error <= self.atol + np.abs(self.rtol * e))
        if matches.all():
            return
        if a.shape == ():
            msg = _scalar_message(a.item(), e.item(), self.rtol, self.atol)
        else:
            msg = _tensor_message(a, e, matches, self.rtol, self.atol)
        raise _Failure(AssertionError, msg, self.id)


def _promote(a, b):
    """torch.promote_types: a floating type beats an integral one whatever its width."""
    fa, fb = a.kind in "fc", b.kind in "fc"
    if fa != fb:
        return a if fa else b
    return np.promote_types(a, b)


def _strides(t):
    if isinstance(t, Tensor):
        return tuple(t.stride())
    return tuple(int(s) // t.itemsize for s in t.strides)


def _device(t):
    return t.device if isinstance(t, Tensor) else "cpu"


def _tensor_message(a, e, matches, rtol, atol):
    shape = matches.shape
    n = matches.size
    mismatched = n - int(matches.sum())
    extra = f"Mismatched elements: {mismatched} / {n} ({mismatched / n:.1%})"
    a, e, matches = a.reshape(-1), e.reshape(-1), matches.reshape(-1)
    if a.dtype.kind not in "fc":  # integers and bools: differences in int64, as torch's
        a, e = a.astype(np.int64), e.astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        abs_diff = np.abs(a - e)
        abs_diff[matches] = 0
        # relative differences in the floating dtype (float32 for integers, as torch's)
        ftype = a.dtype if a.dtype.kind in "fc" else np.float32
        rel_diff = (abs_diff.astype(ftype) / np.abs(e).astype(ftype)).real
        rel_diff[matches] = 0
    abs_diff = abs_diff.real if abs_diff.dtype.kind == "c" else abs_diff
    i_abs, i_rel = int(np.argmax(abs_diff)), int(np.argmax(rel_diff))

    def index(flat):
        return tuple(int(i) for i in np.unravel_index(flat, shape))

    return _mismatch_message("Tensor-likes", extra, abs_diff[i_abs].item(), index(i_abs), atol,
                             rel_diff[i_rel].item(), index(i_rel), rtol)


_PAIR_TYPES = (_NonePair, _BooleanPair, _NumberPair, _TensorLikePair)


def _originate(actual, expected, id, options):
    seq, mapping = collections.abc.Sequence, collections.abc.Mapping
    if (isinstance(actual, seq) and not isinstance(actual, str) and isinstance(expected, seq)
            and not isinstance(expected, str)):
        if len(actual) != len(expected):
            raise _Failure(AssertionError, f"The length of the sequences mismatch: "
                                           f"{len(actual)} != {len(expected)}", id)
        pairs = []
        for i in range(len(actual)):
            pairs += _originate(actual[i], expected[i], (*id, i), options)
        return pairs
    if isinstance(actual, mapping) and isinstance(expected, mapping):
        akeys, ekeys = set(actual.keys()), set(expected.keys())
        if akeys != ekeys:
            raise _Failure(AssertionError,
                           f"The keys of the mappings do not match:\n"
                           f"Missing keys in the actual mapping: {sorted(ekeys - akeys)}\n"
                           f"Additional keys in the actual mapping: {sorted(akeys - ekeys)}", id)
        keys = akeys
        with contextlib.suppress(Exception):
            keys = sorted(keys)
        pairs = []
        for k in keys:
            pairs += _originate(actual[k], expected[k], (*id, k), options)
        return pairs
    for pair_type in _PAIR_TYPES:
        try:
            return [pair_type(actual, expected, id=id, **options)]
        except _Unsupported:
            continue
    raise _Failure(TypeError, f"No comparison pair was able to handle inputs of type "
                              f"{type(actual)} and {type(expected)}.", id)


def assert_close(actual, expected, *, allow_subclasses: bool = True, rtol=None, atol=None,
                 equal_nan: bool = False, check_device: bool = True, check_dtype: bool = True,
                 check_layout: bool = True, check_stride: bool = False, msg=None) -> None:
    """Assert that ``actual`` and ``expected`` are close (see the module docstring).

    Args:
        actual, expected: Tensors, NumPy arrays, numbers, bools, None, or sequences and
            mappings of them (compared item by item, after checking lengths and keys).
        allow_subclasses: a Parameter may be compared with a Tensor (False: the types must
            be equal).
        rtol, atol: the relative and absolute tolerances; both or neither (ValueError).
        equal_nan: NaN values compare equal.
        check_device: the tensors must be on one device (else both are compared on the host).
        check_dtype: the dtypes must be equal (else both are promoted to a common one).
        check_layout: accepted (fastconv has the strided layout only).
        check_stride: the strides must be equal (the strides PyTorch would have).
        msg: a message that replaces the generated one, or a callable that gets the
            generated message and returns the one to raise.

    Raises:
        AssertionError: the values or attributes do not match.
        TypeError: no comparison handles the two inputs (a Tensor with an array, strings, ...).
        ValueError: only one of rtol and atol is given.
    """
    __tracebackhide__ = True
    options = dict(allow_subclasses=allow_subclasses, rtol=rtol, atol=atol,
                   equal_nan=equal_nan, check_device=check_device, check_dtype=check_dtype,
                   check_layout=check_layout, check_stride=check_stride)
    try:
        pairs = _originate(actual, expected, (), options)
        for pair in pairs:
            pair.compare()
    except _Failure as failure:
        raise failure.to_error(msg) from None


# ----------------------------------------------------------------------------- make_tensor

def make_tensor(*shape, dtype, device=None, low=None, high=None, requires_grad: bool = False,
                noncontiguous: bool = False, exclude_zero: bool = False, memory_format=None):
    """A tensor of ``shape`` filled with random values from fastconv's generator, as
    ``torch.testing.make_tensor``: floats uniform in [low, high) (default [-9, 9)), integers
    uniform in [low, high) (default [-9, 10), [0, 10) for uint8), bools half True. ``low`` and
    ``high`` are clamped to the dtype's range. ``exclude_zero`` replaces zeros by 1 (integers)
    or the dtype's smallest normal number (floats). ``noncontiguous`` and ``memory_format`` are
    accepted: fastconv tensors are stored contiguously either way."""
    from fastconv.creation import _rng
    from fastconv.device import as_device
    from fastconv.tensor import _as_array

    if len(shape) == 1 and isinstance(shape[0], (tuple, list, Size)):
        shape = tuple(shape[0])
    shape = tuple(int(s) for s in shape)
    dt = dtypes.storable(dtype, "make_tensor", stacklevel=2)
    if requires_grad and dt.kind != "f":
        raise ValueError("make_tensor: requires_grad=True is not supported for integer or "
                         "bool dtypes")
    rng = _rng(None)
    if dt.kind == "b":
        values = rng.random(shape) < 0.5
    else:
        for name, v in (("low", low), ("high", high)):
            if v is not None and (isinstance(v, bool) or not math.isfinite(float(v))):
                raise ValueError(f"`{name}` must be finite, but got {v}.")
        if dt.kind in "iu":
            info = np.iinfo(dt)
            lo = (0 if dt.kind == "u" else -9) if low is None else max(math.ceil(low), info.min)
            hi = 10 if high is None else min(math.ceil(high), info.max + 1)
        else:
            info = np.finfo(dt)
            lo = -9.0 if low is None else max(float(low), float(info.min))
            hi = 9.0 if high is None else min(float(high), float(info.max))
        if lo > hi:
            raise ValueError(f"`low` must be less than or equal to `high`, but got {lo} > {hi}")
        if dt.kind in "iu":
            values = rng.integers(lo, max(hi, lo + 1), size=shape) if hi > lo else \
                np.full(shape, lo)
        else:
            values = rng.uniform(lo, hi, size=shape) if hi > lo else np.full(shape, lo)
        values = values.astype(dt)
        if exclude_zero:
            values[values == 0] = 1 if dt.kind in "iu" else np.finfo(dt).tiny
    dev = "cpu" if device is None else as_device(device).type
    return Tensor(_as_array(values.astype(dt), dev), requires_grad=requires_grad)
