"""Bad input gets a clear TypeError/ValueError naming the argument and the shapes,
never a segfault, a hang or silent garbage."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from helpers import mentions_shape, randn, to_numpy

import fastconv
import fastconv.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INPUT_NAME = r"\b(input|x)\b"  # fastconv names the data argument ``input`` (PyTorch) or ``x``


def T(a, **kw):
    return fastconv.tensor(a, **kw)


def _raises(exc, fn, *names, shapes=()):
    """``fn()`` raises ``exc``; the message names each of ``names`` (regexes, case-insensitive)
    and spells each shape in ``shapes``."""
    with pytest.raises(exc) as info:
        fn()
    msg = str(info.value)
    for name in names:
        assert re.search(name, msg, re.IGNORECASE), f"message does not name {name!r}: {msg}"
    for shape in shapes:
        assert mentions_shape(msg, shape), f"message does not show shape {shape}: {msg}"
    return msg


# ----------------------------------------------------------------------------- conv2d

def test_conv2d_wrong_input_rank(rng):
    # (C, H, W) is unbatched input, as in PyTorch; a 2-D input is not.
    x, w = randn(rng, 8, 8), randn(rng, 4, 3, 3, 3)
    _raises(ValueError, lambda: F.conv2d(T(x), T(w)), INPUT_NAME, "4", shapes=[x.shape])


def test_conv2d_wrong_weight_rank(rng):
    x, w = randn(rng, 1, 3, 8, 8), randn(rng, 4, 27)
    _raises(ValueError, lambda: F.conv2d(T(x), T(w)), "weight", shapes=[w.shape])


def test_conv2d_channel_mismatch_with_weight(rng):
    x, w = randn(rng, 2, 3, 8, 8), randn(rng, 4, 2, 3, 3)
    msg = _raises(ValueError, lambda: F.conv2d(T(x), T(w)), "weight", "channel", shapes=[w.shape])
    assert "3" in msg


def test_conv2d_groups_must_divide_channels(rng):
    x, w = randn(rng, 2, 4, 8, 8), randn(rng, 6, 2, 3, 3)
    _raises(ValueError, lambda: F.conv2d(T(x), T(w), groups=3), "groups")
    x2, w2 = randn(rng, 2, 4, 8, 8), randn(rng, 5, 2, 3, 3)  # out channels 5, groups 2
    _raises(ValueError, lambda: F.conv2d(T(x2), T(w2), groups=2), "groups")
    _raises(ValueError, lambda: F.conv2d(T(x), T(randn(rng, 6, 4, 3, 3)), groups=0), "groups")


def test_conv2d_kernel_larger_than_padded_input(rng):
    x, w = randn(rng, 1, 1, 3, 3), randn(rng, 1, 1, 5, 5)
    _raises(ValueError, lambda: F.conv2d(T(x), T(w)), "kernel", shapes=[x.shape])
    # dilation makes a 3x3 kernel span 5
    _raises(ValueError, lambda: F.conv2d(T(x), T(randn(rng, 1, 1, 3, 3)), dilation=2), "kernel")
    # but padding can make it fit
    assert F.conv2d(T(x), T(w), padding=1).shape == (1, 1, 1, 1)


@pytest.mark.parametrize("kwargs,name", [
    ({"padding": -1}, "padding"), ({"padding": (1, -2)}, "padding"),
    ({"stride": 0}, "stride"), ({"stride": (1, 0)}, "stride"), ({"stride": -1}, "stride"),
    ({"dilation": 0}, "dilation"),
], ids=str)
def test_conv2d_bad_hyper_parameters(kwargs, name, rng):
    x, w = randn(rng, 1, 2, 6, 6), randn(rng, 3, 2, 3, 3)
    _raises(ValueError, lambda: F.conv2d(T(x), T(w), **kwargs), name)


@pytest.mark.parametrize("value", [1.5, (1, 2, 3), "1", None], ids=repr)
def test_conv2d_non_integer_hyper_parameters(value, rng):
    x, w = randn(rng, 1, 2, 6, 6), randn(rng, 3, 2, 3, 3)
    _raises((TypeError, ValueError), lambda: F.conv2d(T(x), T(w), stride=value), "stride")


def test_conv2d_bias_shape(rng):
    x, w, b = randn(rng, 1, 2, 6, 6), randn(rng, 3, 2, 3, 3), randn(rng, 4)
    _raises(ValueError, lambda: F.conv2d(T(x), T(w), T(b)), "bias", shapes=[b.shape])


def test_conv2d_integer_input_is_rejected(rng):
    x = rng.integers(0, 5, size=(1, 2, 6, 6))
    w = randn(rng, 3, 2, 3, 3)
    _raises(TypeError, lambda: F.conv2d(T(x), T(w)), INPUT_NAME)
    _raises(TypeError, lambda: F.conv2d(T(randn(rng, 1, 2, 6, 6)), T(w.astype(np.int64))),
            "weight")


def test_float64_arrays_are_converted_to_float32(rng):
    x, w = rng.standard_normal((1, 2, 6, 6)), rng.standard_normal((3, 2, 3, 3))
    with pytest.warns(fastconv.DtypeWarning, match="float64"):  # said, never silent
        y = F.conv2d(T(x), T(w))
        assert T(x).dtype == np.float32 and y.dtype == np.float32


def test_raw_numpy_input_is_converted_or_rejected_explicitly(rng):
    x, w = randn(rng, 1, 2, 6, 6), randn(rng, 3, 2, 3, 3)
    try:
        y = F.conv2d(x, T(w))
    except TypeError as e:
        assert re.search(INPUT_NAME, str(e)), str(e)
        assert "tensor" in str(e).lower()
        return
    np.testing.assert_allclose(np.asarray(y.data), np.asarray(F.conv2d(T(x), T(w)).data))


# ----------------------------------------------------------------------------- pooling

@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
def test_pool_errors(op, rng):
    pool = getattr(F, op)
    x = randn(rng, 1, 2, 5, 5)
    _raises(ValueError, lambda: pool(T(randn(rng, 5, 5)), 2), INPUT_NAME, shapes=[(5, 5)])
    _raises(ValueError, lambda: pool(T(x), 7), "kernel", shapes=[x.shape])
    _raises(ValueError, lambda: pool(T(x), 2, stride=0), "stride")
    _raises(ValueError, lambda: pool(T(x), 3, padding=-1), "padding")
    _raises(ValueError, lambda: pool(T(x), 2, padding=2), "padding")  # more than half the kernel
    _raises(ValueError, lambda: pool(T(x), 0), "kernel")
    _raises(TypeError, lambda: pool(T(rng.integers(0, 3, size=(1, 2, 5, 5))), 2), INPUT_NAME)


def test_adaptive_avg_pool2d_errors(rng):
    _raises(ValueError, lambda: F.adaptive_avg_pool2d(T(randn(rng, 3, 4)), 1), INPUT_NAME)
    _raises(ValueError, lambda: F.adaptive_avg_pool2d(T(randn(rng, 1, 2, 4, 4)), 0), "output")


# ----------------------------------------------------------------------------- other ops

def test_linear_feature_mismatch(rng):
    x, w = randn(rng, 4, 7), randn(rng, 3, 6)
    _raises(ValueError, lambda: F.linear(T(x), T(w)), "weight", shapes=[x.shape, w.shape])
    _raises(ValueError, lambda: F.linear(T(randn(rng, 4, 6)), T(w), T(randn(rng, 4))), "bias")


def test_batch_norm_errors(rng):
    x = randn(rng, 4, 3, 5, 5)
    rm, rv = T(np.zeros(3, np.float32)), T(np.ones(3, np.float32))
    bad = T(np.zeros(4, np.float32))
    _raises(ValueError, lambda: F.batch_norm(T(x), bad, rv, training=True), "running_mean",
            shapes=[(4,)])
    _raises(ValueError, lambda: F.batch_norm(T(x), rm, rv, bad, None, training=True), "weight")
    _raises(ValueError, lambda: F.batch_norm(T(randn(rng, 4)), None, None, training=True),
            INPUT_NAME)
    # a single value per channel has no variance
    _raises(ValueError, lambda: F.batch_norm(T(randn(rng, 1, 3)), rm, rv, training=True),
            INPUT_NAME)


def test_batch_norm_layer_rank(rng):
    _raises(ValueError, lambda: fastconv.nn.BatchNorm2d(3)(T(randn(rng, 4, 3))), "4",
            shapes=[(4, 3)])


def test_lrn_errors(rng):
    x = randn(rng, 1, 4, 3, 3)
    _raises(ValueError, lambda: F.local_response_norm(T(x), 0), "size")
    _raises(ValueError, lambda: F.local_response_norm(T(randn(rng, 4, 3)), 3), INPUT_NAME)


@pytest.mark.parametrize("op", ["dropout", "dropout2d"])
def test_dropout_probability_out_of_range(op, rng):
    x = T(randn(rng, 2, 3, 4, 4))
    for p in (-0.1, 1.5):
        _raises(ValueError, lambda p=p: getattr(F, op)(x, p, True), r"\bp\b")


def test_dropout2d_needs_4d(rng):
    _raises(ValueError, lambda: F.dropout2d(T(randn(rng, 3, 4)), 0.5, True), INPUT_NAME,
            shapes=[(3, 4)])


def test_cat_shape_mismatch(rng):
    a, b = randn(rng, 2, 3, 4, 4), randn(rng, 2, 3, 5, 4)
    _raises(ValueError, lambda: F.cat([T(a), T(b)], 1), shapes=[b.shape])


# ----------------------------------------------------------------------------- cross_entropy

@pytest.mark.parametrize("bad", [10, -1, 1000])
def test_cross_entropy_class_index_out_of_range(bad, rng):
    logits = randn(rng, 4, 10)
    target = np.array([0, 3, bad, 9])
    msg = _raises(ValueError, lambda: F.cross_entropy(T(logits), target), "target",
                  shapes=[logits.shape])
    assert str(bad) in msg
    _raises(ValueError, lambda: F.cross_entropy(T(logits), T(target)), "target")


def test_cross_entropy_bad_target(rng):
    logits = T(randn(rng, 4, 10))
    _raises(TypeError, lambda: F.cross_entropy(logits, np.array([0.0, 1.0, 2.0, 3.0])), "target")
    _raises(ValueError, lambda: F.cross_entropy(logits, np.array([0, 1, 2])), "target",
            shapes=[(3,)])
    _raises(ValueError, lambda: F.cross_entropy(T(randn(rng, 10)), np.array([1])), INPUT_NAME)
    _raises(ValueError, lambda: F.cross_entropy(logits, np.array([0, 1, 2, 3]),
                                                label_smoothing=1.5), "label_smoothing")


# ----------------------------------------------------------------------------- autograd

def test_backward_through_freed_graph_is_a_runtime_error(rng):
    net = fastconv.nn.Sequential(fastconv.nn.Conv2d(2, 3, 3), fastconv.nn.ReLU(),
                                 fastconv.nn.Flatten(), fastconv.nn.Linear(12, 2))
    loss = F.cross_entropy(net(T(randn(rng, 2, 2, 4, 4))), np.array([0, 1]))
    loss.backward()
    with pytest.raises(RuntimeError, match="(?i)freed|retain_graph"):
        loss.backward()


def test_backward_gradient_shape_mismatch(rng):
    x = T(randn(rng, 2, 3), requires_grad=True)
    with pytest.raises((ValueError, RuntimeError)):
        (x * 2.0).backward(T(randn(rng, 3, 2)))


# ----------------------------------------------------------------------------- the C++ side

_KERNEL_ABUSE = textwrap.dedent(r"""
    import numpy as np
    from fastconv.backend import get_backend
    cpu = get_backend("cpu")
    f = np.float32
    x = np.ones((2, 3, 8, 8), f)
    calls = {
        # weight channels disagree with the input
        "conv2d_forward channels": lambda: cpu.conv2d_forward(
            x, np.ones((4, 2, 3, 3), f), None, (1, 1), (0, 0), (1, 1), 1),
        # bias of the wrong length
        "conv2d_forward bias": lambda: cpu.conv2d_forward(
            x, np.ones((4, 3, 3, 3), f), np.ones(2, f), (1, 1), (0, 0), (1, 1), 1),
        # dy of the wrong shape for the backward
        "conv2d_backward dy": lambda: cpu.conv2d_backward(
            x, np.ones((4, 3, 3, 3), f), np.ones((2, 4, 3, 3), f), (1, 1), (0, 0), (1, 1), 1,
            True, True, True),
        # indices that point outside the input plane
        "max_pool2d_backward indices": lambda: cpu.max_pool2d_backward(
            np.ones((2, 3, 4, 4), f), np.full((2, 3, 4, 4), 10**6, np.int32), (2, 3, 8, 8),
            (2, 2), (2, 2), (0, 0)),
        "max_pool2d_backward negative": lambda: cpu.max_pool2d_backward(
            np.ones((2, 3, 4, 4), f), np.full((2, 3, 4, 4), -5, np.int32), (2, 3, 8, 8),
            (2, 2), (2, 2), (0, 0)),
        # dy larger than the pooled output of x_shape
        "avg_pool2d_backward dy": lambda: cpu.avg_pool2d_backward(
            np.ones((2, 3, 9, 9), f), (2, 3, 8, 8), (2, 2), (2, 2), (0, 0), False, True),
        # lrn backward with mismatched arrays
        "lrn_backward shapes": lambda: cpu.lrn_backward(
            x, x, np.ones((2, 3, 8, 7), f), x, 5, 1e-4, 0.75, 1.0),
        # batch norm with a weight of the wrong length
        "batch_norm_forward_train weight": lambda: cpu.batch_norm_forward_train(
            x, np.ones(5, f), np.zeros(5, f), 1e-5),
        # class index out of range handed straight to the kernel
        "softmax_cross_entropy_forward target": lambda: cpu.softmax_cross_entropy_forward(
            np.ones((4, 10), f), np.array([0, 1, 99, 3], np.int64), 0.0),
        "relu_backward shapes": lambda: cpu.relu_backward(np.ones((2, 3), f), np.ones((3, 3), f)),
        # in-place sum: wrong shape, overlap, read-only destination, wrong dtype
        "add_inplace shapes": lambda: cpu._C.add_inplace(np.ones(10, f), np.ones(9, f)),
        "add_inplace overlap": lambda: cpu._C.add_inplace(x.reshape(-1)[1:], x.reshape(-1)[:-1]),
        "add_inplace read-only": lambda: cpu._C.add_inplace(
            np.broadcast_to(np.ones(1, f), (10,)), np.ones(10, f)),
        "add_inplace dtype": lambda: cpu._C.add_inplace(np.ones(10), np.ones(10, f)),
    }
    for name, call in calls.items():
        try:
            call()
        except Exception as e:
            print(f"OK {name}: {type(e).__name__}", flush=True)
        else:
            print(f"NO-ERROR {name}", flush=True)
""")


def test_compiled_kernels_check_what_they_are_given():
    """Inconsistent arrays handed straight to the backend kernels raise an exception
    (run in a subprocess, so a crash fails this test instead of the whole run)."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", _KERNEL_ABUSE], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env=env)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"the process died (exit code {proc.returncode}):\n{report}"
    silent = [line for line in proc.stdout.splitlines() if line.startswith("NO-ERROR")]
    assert not silent, "kernels accepted inconsistent input:\n" + "\n".join(silent)


# ----------------------------------------------------------------------------- layouts

@pytest.mark.parametrize("name,op", [
    ("relu", F.relu),
    ("conv2d", lambda t: F.conv2d(t, T(np.linspace(-1, 1, 2 * 4 * 9, dtype=np.float32)
                                       .reshape(2, 4, 3, 3)), padding=1)),
    ("max_pool2d", lambda t: F.max_pool2d(t, 3, 2, 1, ceil_mode=True)),
    ("avg_pool2d", lambda t: F.avg_pool2d(t, 3, 2, 1)),
    ("local_response_norm", lambda t: F.local_response_norm(t, 3, 0.5)),
    ("batch_norm", lambda t: F.batch_norm(t, None, None, training=True)),
    ("softmax", lambda t: F.softmax(t, dim=1)),
    ("dropout(eval)", lambda t: F.dropout(t, 0.5, training=False)),
])
def test_ops_on_strided_and_fortran_layouts(name, op, rng):
    """Views with strides (x[..., ::2]) and Fortran-ordered arrays give the same values and
    gradients as a C-contiguous copy: the kernels never read the raw buffer as if contiguous."""
    base = randn(rng, 2, 4, 9, 14)
    want_x = np.ascontiguousarray(base[..., ::2])
    ref = T(want_x, requires_grad=True)
    want_y = op(ref)
    g = randn(rng, *want_y.shape)
    want_y.backward(T(g))
    want_y, want_g = to_numpy(want_y), to_numpy(ref.grad)
    # a strided view of a larger leaf
    leaf = T(base, requires_grad=True)
    y = op(leaf[..., ::2])
    np.testing.assert_allclose(to_numpy(y), want_y, rtol=1e-6, atol=1e-6, err_msg=name)
    y.backward(T(g))
    got = to_numpy(leaf.grad)
    np.testing.assert_allclose(got[..., ::2], want_g, rtol=1e-6, atol=1e-6, err_msg=name)
    assert not got[..., 1::2].any(), name
    # a Fortran-ordered leaf
    fleaf = T(np.asfortranarray(want_x), requires_grad=True)
    y = op(fleaf)
    np.testing.assert_allclose(to_numpy(y), want_y, rtol=1e-6, atol=1e-6, err_msg=name)
    y.backward(T(g))
    np.testing.assert_allclose(to_numpy(fleaf.grad), want_g, rtol=1e-6, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("call", [
    lambda x: F.adaptive_avg_pool2d(x, 10**9), lambda x: F.adaptive_max_pool2d(x, (10**9, 2)),
    lambda x: F.interpolate(x, size=10**9), lambda x: F.interpolate(x, scale_factor=10**8),
    lambda x: F.pad(x, (10**9, 10**9)), lambda x: fastconv.zeros(10**9, 10**3),
    lambda x: fastconv.randn(10**7, 10**6),
], ids=["adaptive_avg", "adaptive_max", "interpolate size", "interpolate scale", "pad",
        "zeros", "randn"])
def test_a_result_larger_than_memory_is_refused_at_once(call, rng):
    """Sizes no machine holds get a clear error before anything is allocated or built (not
    minutes of building tables, nor the out-of-memory killer)."""
    x = fastconv.tensor(randn(rng, 2, 3, 6, 6))
    with pytest.raises(RuntimeError, match=r"would take [\d.]+ GiB, more than this machine"):
        call(x)
