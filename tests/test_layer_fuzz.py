"""Hypothesis fuzzing of the public ops whose work runs in the compiled layer kernels
(padding, interpolation, dilated and adaptive max pooling, group / layer norm, the
activations): malformed and edge-case arguments, empty dims included.

Whatever Python lets through must either compute what torch computes (forward and
backward) or raise a clear error (ValueError, TypeError, NotImplementedError); the
compiled code must never read or write out of bounds, which here would crash the test
process or show up as wrong values.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close, to_numpy

import fastconv
import fastconv.functional as F

torch = pytest.importorskip("torch")
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

tF = torch.nn.functional
CLEAR_ERRORS = (ValueError, TypeError, NotImplementedError, IndexError)
FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

shapes = st.lists(st.integers(0, 5), min_size=1, max_size=5).map(tuple)


def _run(fc_fn, torch_fn, x, grad=True):
    """fc_fn on x; if it returns, torch must agree (and gradients too, with ``grad``)."""
    t = fastconv.tensor(x, requires_grad=True)
    try:
        y = fc_fn(t)
    except CLEAR_ERRORS as exc:
        assert str(exc), "an error without a message"
        return
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    try:
        yt = torch_fn(xt)
    except (RuntimeError, ValueError, IndexError, NotImplementedError):
        return  # fastconv accepts more than torch here; the values are checked elsewhere
    got, want = to_numpy(y), yt.detach().numpy()
    assert got.shape == want.shape, f"shape {got.shape}, torch {want.shape}"
    special = ~np.isfinite(want)  # -inf of a max window that misses the input: equal, not close
    np.testing.assert_array_equal(got[special], want[special])
    assert_close(got[~special], want[~special], name="forward vs torch")
    if not grad or y.numel() == 0 or x.size == 0:
        return
    if special.any():
        # torch's index for such a window points past its plane (into the next one, which
        # then receives the gradient); fastconv's is -1 and adds nothing, checked in
        # test_layer_kernels.py
        return
    g = np.random.default_rng(0).standard_normal(y.shape).astype(np.float32)
    y.backward(fastconv.tensor(g))
    yt.backward(torch.tensor(g.astype(np.float64)))
    assert_close(to_numpy(t.grad), xt.grad, rtol=1e-4, atol=1e-4, name="grad vs torch")


def _data(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    x[x == 0] = 0.5
    return x


# mostly well-formed pad lists (pairs), sometimes anything
pad_lists = st.one_of(
    st.lists(st.tuples(st.integers(-3, 5), st.integers(-3, 5)), min_size=1, max_size=4)
    .map(lambda pairs: [v for pair in pairs for v in pair]),
    st.lists(st.integers(-4, 6), min_size=0, max_size=10))


@FUZZ
@given(shape=shapes, pads=pad_lists,
       mode=st.sampled_from(["constant", "reflect", "replicate", "circular"]),
       seed=st.integers(0, 2**16))
def test_fuzz_pad(shape, pads, mode, seed):
    x = _data(shape, seed)
    _run(lambda t: F.pad(t, tuple(pads), mode=mode), lambda t: tF.pad(t, tuple(pads), mode=mode),
         x)


@FUZZ
@given(shape=st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 7),
                       st.integers(0, 7)),
       size=st.one_of(st.integers(-1, 9), st.tuples(st.integers(-1, 9), st.integers(-1, 9))),
       scale=st.sampled_from([0.0, 0.3, 0.5, 1.0, 1.7, 2.0, 3.0, -1.0]),
       by_size=st.booleans(), both=st.integers(0, 9),
       mode=st.sampled_from(["nearest", "nearest-exact", "bilinear", "bicubic"]),
       align=st.sampled_from([None, False, True]), seed=st.integers(0, 2**16))
def test_fuzz_interpolate(shape, size, scale, by_size, both, mode, align, seed):
    x = _data(shape, seed)
    if both == 0:  # sometimes both or neither of size and scale_factor
        size, scale = (size, scale) if by_size else (None, None)
    elif by_size:
        scale = None
    else:
        size = None
    if mode not in ("bilinear", "bicubic") and both > 1:  # mostly what the mode accepts
        align = None
    kw = {"size": size, "scale_factor": scale, "mode": mode, "align_corners": align}
    _run(lambda t: F.interpolate(t, **kw), lambda t: tF.interpolate(t, **kw), x)


@FUZZ
@given(shape=st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 12),
                       st.integers(0, 12)),
       k=st.one_of(st.integers(1, 4), st.integers(-1, 5)),
       s=st.one_of(st.none(), st.integers(1, 3), st.integers(0, 3)),
       p=st.one_of(st.integers(0, 1), st.integers(-1, 3)),
       d=st.one_of(st.integers(1, 3), st.integers(0, 4)), ceil=st.booleans(),
       seed=st.integers(0, 2**16))
def test_fuzz_max_pool2d(shape, k, s, p, d, ceil, seed):
    x = _data(shape, seed)
    _run(lambda t: F.max_pool2d(t, k, s, p, d, ceil),
         lambda t: tF.max_pool2d(t, k, s, p, d, ceil), x)


@FUZZ
@given(shape=st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 9),
                       st.integers(0, 9)),
       out=st.one_of(st.integers(-1, 11), st.tuples(st.integers(0, 11), st.integers(0, 11))),
       seed=st.integers(0, 2**16))
def test_fuzz_adaptive_max_pool2d(shape, out, seed):
    x = _data(shape, seed)
    _run(lambda t: F.adaptive_max_pool2d(t, out), lambda t: tF.adaptive_max_pool2d(t, out), x)


@FUZZ
@given(shape=shapes, groups=st.integers(-1, 6), k=st.integers(0, 3), seed=st.integers(0, 2**16))
def test_fuzz_group_and_layer_norm(shape, groups, k, seed):
    x = _data(shape, seed)
    # Gradients only where a group holds 1 or at least 4 values: with 2 or 3 close together
    # dx is a difference of nearly equal terms, beyond what float32 vs float64 can judge.
    per_group = int(np.prod(shape[1:])) // groups if len(shape) > 1 and groups > 0 else 0
    _run(lambda t: F.group_norm(t, groups), lambda t: tF.group_norm(t, groups), x,
         grad=per_group == 1 or per_group >= 4)
    norm = shape[len(shape) - k:] if k else (3,)
    per_row = int(np.prod(norm))
    _run(lambda t: F.layer_norm(t, norm), lambda t: tF.layer_norm(t, norm), x,
         grad=per_row == 1 or per_row >= 4)


@FUZZ
@given(shape=shapes, seed=st.integers(0, 2**16), scale=st.sampled_from([1.0, 30.0, 1e4]))
def test_fuzz_activations(shape, seed, scale):
    x = _data(shape, seed) * np.float32(scale)
    for fc, tf in ((lambda t: F.leaky_relu(t, 0.2), lambda t: tF.leaky_relu(t, 0.2)),
                   (F.elu, tF.elu), (F.gelu, tF.gelu),
                   (lambda t: F.gelu(t, approximate="tanh"),
                    lambda t: tF.gelu(t, approximate="tanh")),
                   (F.silu, tF.silu), (lambda t: t.sigmoid(), torch.sigmoid),
                   (lambda t: t.tanh(), torch.tanh)):
        _run(fc, tf, x)
