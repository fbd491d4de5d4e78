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


def test_dropout2d_needs_a_channel_dim(rng):
    # as torch: any input with a channel dim is taken (other ranks than 3-D and 4-D warn)
    _raises(RuntimeError, lambda: F.dropout2d(T(randn(rng, 3)), 0.5, True), INPUT_NAME,
            shapes=[(3,)])


def test_cat_shape_mismatch(rng):
    a, b = randn(rng, 2, 3, 4, 4), randn(rng, 2, 3, 5, 4)
    _raises(RuntimeError, lambda: F.cat([T(a), T(b)], 1),
            r"Sizes of tensors must match except in dimension 1", r"Expected size 4 but got "
            r"size 5 for tensor number 1")


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
    lambda x: F.conv_transpose2d(x, T(np.ones((3, 2, 3, 3), np.float32)), stride=10**9),
    lambda x: F.conv_transpose3d(x[None], T(np.ones((2, 2, 1, 3, 3), np.float32)),
                                 stride=(10**9, 1, 1)),
    lambda x: F.unfold(x, 3, padding=10**9),
    lambda x: F.fold(T(np.ones((1, 12, 1), np.float32)), (10**9, 10**9), 2),
    lambda x: F.one_hot(T(np.array([0, 1])), 10**12),
    lambda x: F.affine_grid(T(np.zeros((1, 2, 3), np.float32)), (1, 1, 10**9, 10**9)),
], ids=["adaptive_avg", "adaptive_max", "interpolate size", "interpolate scale", "pad",
        "zeros", "randn", "conv_transpose2d", "conv_transpose3d", "unfold", "fold", "one_hot",
        "affine_grid"])
def test_a_result_larger_than_memory_is_refused_at_once(call, rng):
    """Sizes no machine holds get a clear error before anything is allocated or built (not
    minutes of building tables, nor the out-of-memory killer)."""
    x = fastconv.tensor(randn(rng, 2, 3, 6, 6))
    with pytest.raises(RuntimeError, match=r"would take [\d.]+ GiB, more than this machine"):
        call(x)


_HUGE_GEOMETRY = textwrap.dedent(r"""
    import numpy as np
    import fastconv
    import fastconv.functional as F
    x = fastconv.tensor(np.ones((1, 2, 5, 5), np.float32))
    w = fastconv.tensor(np.ones((2, 2, 3, 3), np.float32))
    calls = {
        # the kernel's zero-padded copy of x: its size overflows 64 bits (a write past the
        # buffer), or is just larger than any memory
        "conv2d stride and padding 2**61": lambda: F.conv2d(x, w, stride=2**61, padding=2**61),
        "conv2d padding 2**63-1": lambda: F.conv2d(x, w, stride=2**62, padding=2**63 - 1),
        "conv2d stride and padding 2**40": lambda: F.conv2d(x, w, stride=2**40, padding=2**40),
        "conv1d stride and padding 2**61": lambda: F.conv1d(x[:, :, 0], w[:, :, 0],
                                                            stride=2**61, padding=2**61),
        "conv_transpose2d stride 2**30, padding 2**31": lambda: F.conv_transpose2d(
            x, w, stride=2**30, padding=2**31),
    }
    for name, call in calls.items():
        try:
            y = call()
        except RuntimeError as e:
            ok = "would take" in str(e)
            print(f"{'OK' if ok else 'UNCLEAR'} {name}: {type(e).__name__}: {e}", flush=True)
        except Exception as e:
            print(f"UNCLEAR {name}: {type(e).__name__}: {e}", flush=True)
        else:
            print(f"NO-ERROR {name}: {tuple(y.shape)}", flush=True)
""")


_HUGE_GEOMETRY_IN_THE_KERNEL = textwrap.dedent(r"""
    import numpy as np
    from fastconv.backend import get_backend
    x, w = np.ones((1, 2, 5, 5), np.float32), np.ones((2, 2, 3, 3), np.float32)
    for stride, padding in [(2**61, 2**61), (2**62, 2**61), (1, 2**31), (1, 2**30)]:
        try:
            get_backend("cpu").conv2d_forward(x, w, None, (stride,) * 2, (padding,) * 2, (1, 1), 1)
        except ValueError as e:
            print("OK" if "at most 2^31 - 1" in str(e) or "too large" in str(e) else "UNCLEAR", e)
        else:
            print("ACCEPTED", stride, padding)
""")


def test_the_convolution_kernel_refuses_geometry_that_overflows_on_its_own():
    """The compiled kernel checks the sizes itself (not only the public op): strides,
    paddings and dilations past int32, and zero-padded inputs past 2^48 elements."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", _HUGE_GEOMETRY_IN_THE_KERNEL], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env=env)
    assert proc.returncode == 0, f"the process died (exit code {proc.returncode}):\n{proc.stderr}"
    lines = proc.stdout.splitlines()
    assert len(lines) == 4 and all(line.startswith("OK") for line in lines), proc.stdout


def test_conv_geometry_that_overflows_the_kernels_is_refused():
    """A stride and padding so large that the padded input's size overflows the kernels'
    64-bit arithmetic: refused before the kernel runs (it wrote past its buffer, or returned
    a small wrong output). Run in a subprocess, so a crash fails only this test."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", _HUGE_GEOMETRY], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env=env)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"the process died (exit code {proc.returncode}):\n{report}"
    bad = [line for line in proc.stdout.splitlines() if not line.startswith("OK")]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("call", [
    lambda x: F.max_pool2d(x, 2**31 + 1, padding=2**30),
    lambda x: F.avg_pool2d(x, 2**62, stride=2**62, padding=2**61 - 1),
    lambda x: F.avg_pool2d(x, 2, stride=2**31),
    lambda x: F.max_pool1d(x[0], 2, dilation=2**31),
], ids=["max kernel", "avg kernel", "avg stride", "max1d dilation"])
def test_pooling_sizes_past_int32_are_refused(call, rng):
    """torch's pooling takes 32-bit sizes; past that the kernels' window sums and divisors
    overflowed (avg_pool2d returned a wrong average instead of an error)."""
    x = T(randn(rng, 1, 2, 5, 5))
    _raises(ValueError, lambda: call(x), "too large")


def test_per_channel_vectors_of_the_wrong_length_are_refused(rng):
    """A bias or statistics vector that would broadcast against the result (a wrong
    result, no error) is refused, naming the argument and the expected shape."""
    x1, x2 = T(randn(rng, 2, 3)), T(randn(rng, 2, 4))
    _raises(ValueError, lambda: F.bilinear(x1, x2, T(randn(rng, 1, 3, 4)), T(randn(rng, 2))),
            "bias", shapes=[(1,), (2,)])
    x = T(randn(rng, 1, 2, 3, 4, 4))
    _raises(ValueError, lambda: F.conv3d(x, T(randn(rng, 1, 2, 1, 1, 1)), T(randn(rng, 3))),
            "bias", shapes=[(1,), (3,)])
    x = T(randn(rng, 2, 3, 4))
    ones = {n: T(np.ones(n, np.float32)) for n in (1, 3, 4)}
    for kw, name in [({"running_mean": ones[4], "running_var": ones[4]}, "running_mean"),
                     ({"running_mean": ones[3], "running_var": ones[3], "weight": ones[1],
                       "use_input_stats": False}, "weight"),
                     ({"running_mean": ones[3], "running_var": ones[3], "bias": ones[1],
                       "use_input_stats": False}, "bias")]:
        _raises(ValueError, lambda: F.instance_norm(x, **kw), name, shapes=[(3,)])
    _raises(TypeError, lambda: F.instance_norm(
        x, T(np.zeros(3, np.int64)), ones[3]), "running_mean", "float32")


@pytest.mark.parametrize("groups", [0, -2, 1.5, True])
def test_group_norm_layer_needs_a_positive_int_group_count(groups):
    _raises(ValueError, lambda: fastconv.nn.GroupNorm(groups, 6), "num_groups")


def test_max_unpool2d_output_size_within_a_stride_of_the_default(rng):
    """torch's rule: output_size within a stride of the unpooled size (a larger one was
    accepted, and a huge one allocated its whole size)."""
    x = T(randn(rng, 1, 2, 4, 4))
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    assert F.max_unpool2d(y, idx, 2, output_size=(5, 5)).shape == (1, 2, 5, 5)
    for size in [(6, 4), (2, 4), (2**31, 4)]:
        _raises(ValueError, lambda: F.max_unpool2d(y, idx, 2, output_size=size),
                "output_size", "between 2 and 6")


# ----------------------------------------------------------------------------- torch's errors
# Bad dims, shapes and values raise torch's exception type, and the message carries torch's
# key words (checked on torch's message too, so a drift in the reference shows up here).

def _x(m):
    return m.tensor(np.arange(24, dtype=np.float32).reshape(2, 3, 4))


def _set(target, index, value):
    target[index] = value


_OUT_OF_RANGE = r"Dimension out of range \(expected to be in range of \[-3, 2\], but got {}\)"
_BROADCAST = r"size of tensor a \({}\) must match the size of tensor b \({}\) at " \
             r"non-singleton dimension {}"

TORCH_ERRORS = [
    # a dim out of range, repeated, or not an integer
    ("cat dim 3", lambda m: m.cat([_x(m), _x(m)], 3), _OUT_OF_RANGE.format(3)),
    ("cat dim -4", lambda m: m.cat([_x(m), _x(m)], -4), _OUT_OF_RANGE.format(-4)),
    ("cat 0-d", lambda m: m.cat([m.tensor(1.0), m.tensor(2.0)]),
     r"zero-dimensional tensor \(at position 0\) cannot be concatenated"),
    ("cat array element", lambda m: m.cat([_x(m), np.ones((2, 3, 4), np.float32)]),
     r"expected Tensor as element 1 in argument 0, but got numpy.ndarray"),
    ("cat float dim", lambda m: m.cat([_x(m), _x(m)], 1.0), r"'dim'.*must be int, not float"),
    ("cat of a tensor", lambda m: m.cat(_x(m)), r"must be tuple of Tensors, not Tensor"),
    ("cat sizes", lambda m: m.cat([_x(m), _x(m)[:, :2]], 0),
     r"Sizes of tensors must match except in dimension 0\. Expected size 3 but got size 2 "
     r"for tensor number 1"),
    ("cat ranks", lambda m: m.cat([_x(m), _x(m)[0]], 0),
     r"Tensors must have same number of dimensions: got 3 and 2"),
    ("stack dim 4", lambda m: m.stack([_x(m), _x(m)], 4),
     r"Dimension out of range \(expected to be in range of \[-4, 3\], but got 4\)"),
    ("stack array element", lambda m: m.stack([np.ones(3, np.float32), m.ones(3)]),
     r"expected Tensor as element 0 in argument 0, but got numpy.ndarray"),
    ("stack float dim", lambda m: m.stack([_x(m), _x(m)], 1.0), r"'dim'.*must be int"),
    ("transpose", lambda m: _x(m).transpose(0, 3), _OUT_OF_RANGE.format(3)),
    ("swapaxes", lambda m: _x(m).swapaxes(-4, 0), _OUT_OF_RANGE.format(-4)),
    ("permute out of range", lambda m: _x(m).permute(3, 1, 2), _OUT_OF_RANGE.format(3)),
    ("permute repeated", lambda m: _x(m).permute(0, 0, 1), r"duplicate dims are not allowed"),
    ("permute length", lambda m: _x(m).permute(0, 1), r"input.dim\(\) = 3 is not equal to "
                                                      r"len\(dims\) = 2"),
    ("size", lambda m: _x(m).size(3), _OUT_OF_RANGE.format(3)),
    ("size of a 0-d tensor", lambda m: m.tensor(1.0).size(0),
     r"Dimension specified as 0 but tensor has no dimensions"),
    ("stride", lambda m: _x(m).stride(-4), _OUT_OF_RANGE.format(-4)),
    ("glu", lambda m: m.nn.functional.glu(_x(m), 3), _OUT_OF_RANGE.format(3)),
    ("all", lambda m: _x(m).all(3), _OUT_OF_RANGE.format(3)),
    ("any", lambda m: _x(m).any(-4), _OUT_OF_RANGE.format(-4)),
    ("argmin", lambda m: _x(m).argmin(3), _OUT_OF_RANGE.format(3)),
    ("argmax", lambda m: m.argmax(_x(m), -4), _OUT_OF_RANGE.format(-4)),
    ("count_nonzero", lambda m: m.count_nonzero(_x(m), 3), _OUT_OF_RANGE.format(3)),
    ("sum", lambda m: _x(m).sum((0, 3)), _OUT_OF_RANGE.format(3)),
    ("trapezoid", lambda m: m.trapezoid(_x(m), dim=3), _OUT_OF_RANGE.format(3)),
    ("sum repeated dim", lambda m: _x(m).sum((1, 1)), r"dim 1 appears multiple times"),
    ("mean repeated dim", lambda m: _x(m).mean((1, -2)), r"dim 1 appears multiple times"),
    ("amax repeated dim", lambda m: _x(m).amax((0, 0)), r"dim 0 appears multiple times"),
    ("sum float dim", lambda m: _x(m).sum(1.0), r""),
    # reductions over nothing
    ("max of empty", lambda m: m.max(m.zeros(0, 3)),
     r"max\(\): Expected reduction dim to be specified for input.numel\(\) == 0"),
    ("min of empty", lambda m: m.zeros(0, 3).min(),
     r"min\(\): Expected reduction dim to be specified for input.numel\(\) == 0"),
    ("amax of empty", lambda m: m.zeros(0, 3).amax(),
     r"amax\(\): Expected reduction dim to be specified"),
    ("argmax of empty", lambda m: m.zeros(0, 3).argmax(),
     r"argmax\(\): Expected reduction dim to be specified"),
    ("max over an empty dim", lambda m: m.zeros(0, 3).max(0),
     r"max\(\): Expected reduction dim 0 to have non-zero size"),
    ("argmin over an empty dim", lambda m: m.zeros(0, 3).argmin(0),
     r"argmin\(\): Expected reduction dim 0 to have non-zero size"),
    ("aminmax of empty", lambda m: m.zeros(0, 3).aminmax(),
     r"cannot compute aminmax over an empty dimension"),
    # values accepted before
    ("reshape -2", lambda m: _x(m).reshape(-2, 12),
     r"invalid shape dimension -2 at index 0 of shape \[-2, 12\]"),
    ("view -3", lambda m: _x(m).view(4, -3), r"invalid shape dimension -3 at index 1"),
    ("reshape two -1", lambda m: _x(m).reshape(-1, -1), r"only one dimension can be inferred"),
    ("reshape size", lambda m: _x(m).reshape(5, 5),
     r"shape '\[5, 5\]' is invalid for input of size 24"),
    ("arange step sign", lambda m: m.arange(0, 5, -1),
     r"upper bound and \w+ bound inconsistent with step sign"),
    ("arange reversed", lambda m: m.arange(5.0, 0.0, 0.5),
     r"upper bound and \w+ bound inconsistent with step sign"),
    ("arange infinite", lambda m: m.arange(0, float("inf")), r"unsupported range: 0 -> inf"),
    ("datetime64", lambda m: m.tensor(np.array(["2020-01-01"], "datetime64[D]")),
     r"can't convert np.ndarray of type numpy.datetime64"),
    ("timedelta64", lambda m: m.as_tensor(np.array([1], "timedelta64[s]")),
     r"can't convert np.ndarray of type numpy.timedelta64"),
    ("object", lambda m: m.tensor(np.array([1, "a"], object)),
     r"can't convert np.ndarray of type numpy.object_"),
    ("str", lambda m: m.tensor(np.array(["a", "b"])), r"can't convert np.ndarray of type "
                                                      r"numpy.str_"),
    ("Tensor(datetime64)", lambda m: m.Tensor(np.array(["2020-01-01"], "datetime64[D]")),
     r"numpy.datetime64"),
    # shapes that do not broadcast
    ("add", lambda m: _x(m) + _x(m)[:, :2], _BROADCAST.format(3, 2, 1)),
    ("radd of an array", lambda m: np.ones((2, 2, 4), np.float32) + _x(m)
     if m is fastconv else m.ones(2, 2, 4) + _x(m), _BROADCAST.format(2, 3, 1)),
    ("mul, last dim first", lambda m: m.ones(3, 4) * m.ones(2, 4, 3), _BROADCAST.format(4, 3, 2)),
    ("pow", lambda m: _x(m) ** _x(m)[:, :2], _BROADCAST.format(3, 2, 1)),
    ("maximum", lambda m: m.maximum(_x(m), _x(m)[:, :2]), _BROADCAST.format(3, 2, 1)),
    ("eq", lambda m: _x(m) == _x(m)[:, :2], _BROADCAST.format(3, 2, 1)),
    ("logical_and", lambda m: (_x(m) > 1).logical_and(_x(m)[:, :2] > 1),
     _BROADCAST.format(3, 2, 1)),
    ("atan2", lambda m: m.atan2(_x(m), _x(m)[:, :2]), _BROADCAST.format(3, 2, 1)),
    ("integer floor division", lambda m: m.ones(2, 3, dtype=m.int64).div(
        m.ones(2, 2, dtype=m.int64), rounding_mode="floor"), _BROADCAST.format(3, 2, 1)),
    ("add_", lambda m: _x(m).add_(_x(m)[:, :2]), _BROADCAST.format(3, 2, 1)),
    ("lerp", lambda m: m.zeros(2, 3).lerp(m.ones(2, 2), 0.5), _BROADCAST.format(3, 2, 1)),
    ("addcmul", lambda m: m.zeros(2, 3).addcmul(m.ones(2, 2), m.ones(2, 3)),
     _BROADCAST.format(3, 2, 1)),
    ("isclose", lambda m: m.isclose(m.zeros(2, 3), m.ones(2, 2)), _BROADCAST.format(3, 2, 1)),
    ("where condition", lambda m: m.where(m.ones(2, 2, 4, dtype=m.bool), _x(m), 0.0),
     _BROADCAST.format(2, 3, 1)),
    ("where other", lambda m: m.where(_x(m) > 1, _x(m), _x(m)[:, :2]),
     _BROADCAST.format(3, 2, 1)),
    ("masked_fill", lambda m: _x(m).masked_fill(m.ones(2, 2, 4, dtype=m.bool), 0.0),
     _BROADCAST.format(2, 3, 1)),
    ("masked_select", lambda m: _x(m).masked_select(m.ones(2, 2, 4, dtype=m.bool)),
     _BROADCAST.format(2, 3, 1)),
    ("broadcast_tensors", lambda m: m.broadcast_tensors(m.zeros(2, 3), m.zeros(4, 3)),
     _BROADCAST.format(2, 4, 0)),
    ("copy_", lambda m: m.zeros(3, 4).copy_(m.ones(2, 4)), _BROADCAST.format(3, 2, 0)),
    ("copy_ growing", lambda m: m.zeros(3, 4).copy_(m.ones(2, 3, 4)),
     r"output with shape \[3, 4\] doesn't match the broadcast shape \[2, 3, 4\]"),
    ("setitem", lambda m: _set(_x(m), 0, m.ones(2, 4)),
     r"expanded size of the tensor \(3\) must match the existing size \(2\) at non-singleton "
     r"dimension 0.  Target sizes: \[3, 4\].  Tensor sizes: \[2, 4\]"),
    ("setitem array", lambda m: _set(_x(m), (slice(None), 0), np.ones((3, 4), np.float32)
                                     if m is fastconv else m.ones(3, 4)),
     r"expanded size of the tensor \(2\) must match the existing size \(3\)"),
    ("setitem recorded", lambda m: _set(_x(m).requires_grad_() * 1, 1, m.ones(2, 4)),
     r"expanded size of the tensor \(3\) must match the existing size \(2\)"),
    ("setitem advanced index", lambda m: _set(m.zeros(3, 4), m.tensor([0, 1]), m.ones(3, 4)),
     r"value tensor of shape \[3, 4\] cannot be broadcast to indexing result of shape \[2, 4\]"),
    # products whose shapes do not fit
    ("bmm batch", lambda m: m.bmm(m.ones(2, 3, 4), m.ones(3, 4, 2)),
     r"Expected size for first two dimensions of batch2 tensor to be: \[2, 4\] but got: "
     r"\[3, 4\]"),
    ("bmm inner", lambda m: m.ones(2, 3, 4).bmm(m.ones(2, 5, 2)),
     r"batch2 tensor to be: \[2, 4\] but got: \[2, 5\]"),
    ("mm", lambda m: m.mm(m.ones(2, 3), m.ones(4, 5)),
     r"mat1 and mat2 shapes cannot be multiplied \(2x3 and 4x5\)"),
    ("matmul", lambda m: m.matmul(m.ones(2, 3), m.ones(4, 5)),
     r"mat1 and mat2 shapes cannot be multiplied \(2x3 and 4x5\)"),
    ("@ folded rows", lambda m: m.ones(5, 2, 3) @ m.ones(4, 5),
     r"mat1 and mat2 shapes cannot be multiplied \(10x3 and 4x5\)"),
    ("@ vector", lambda m: m.ones(2, 3) @ m.ones(4),
     r"size mismatch, got input \(2\), mat \(2x3\), vec \(4\)"),
    ("@ vectors", lambda m: m.ones(3) @ m.ones(4), r"inconsistent tensor size"),
    ("@ row vector", lambda m: m.ones(3) @ m.ones(4, 2),
     r"mat1 and mat2 shapes cannot be multiplied \(1x3 and 4x2\)"),
    ("@ batch", lambda m: m.ones(2, 2, 3) @ m.ones(3, 3, 5), _BROADCAST.format(2, 3, 0)),
    ("@ batched inner", lambda m: m.ones(2, 2, 3) @ m.ones(2, 4, 5),
     r"batch2 tensor to be: \[2, 3\] but got: \[2, 4\]"),
    ("@ 0-d", lambda m: m.tensor(1.0) @ m.ones(3),
     r"both arguments to matmul need to be at least 1D, but they are 0D and 1D"),
    ("@ integers", lambda m: m.ones(2, 3, dtype=m.int64) @ m.ones(4, 5, dtype=m.int64),
     r"cannot be multiplied \(2x3 and 4x5\)"),
    ("mv", lambda m: m.ones(2, 3).mv(m.ones(4)), r"size mismatch"),
]


@pytest.mark.parametrize("name, call, keys", TORCH_ERRORS, ids=[e[0] for e in TORCH_ERRORS])
def test_bad_input_raises_torchs_error(name, call, keys):
    torch = pytest.importorskip("torch")
    with pytest.raises(Exception) as want:
        call(torch)
    assert re.search(keys, str(want.value)), f"torch's message changed: {want.value}"
    with pytest.raises(want.type) as got:
        call(fastconv)
    assert re.search(keys, str(got.value)), f"{name}: {got.value!r}, torch: {want.value!r}"


def test_op_argument_errors_are_runtime_errors_as_in_torch(rng):
    """PyTorch raises RuntimeError for a shape, size or dtype an op cannot take; code written
    for it catches RuntimeError. fastconv's are ValueError / TypeError and RuntimeError."""
    torch = pytest.importorskip("torch")
    x, w = randn(rng, 2, 3, 8, 8), randn(rng, 4, 5, 3, 3)  # 3 channels against a 5-channel weight
    cases = [
        lambda m: m.nn.functional.conv2d(m.tensor(x), m.tensor(w)),
        lambda m: m.nn.functional.max_pool2d(m.tensor(x), 0),
        lambda m: m.nn.functional.batch_norm(m.tensor(x), m.zeros(5), m.ones(5)),
        lambda m: m.nn.functional.conv2d(m.tensor(x).long(), m.tensor(w)),
    ]
    for case in cases:
        for lib in (torch, fastconv):
            with pytest.raises(RuntimeError):
                case(lib)
    with pytest.raises(ValueError):
        cases[0](fastconv)
    with pytest.raises(TypeError):
        cases[3](fastconv)


@pytest.mark.parametrize("kw, match", [
    ({"scale_factor": float("nan")}, "scale_factor must be a finite positive number"),
    ({"scale_factor": float("inf")}, "scale_factor must be a finite positive number"),
    ({"scale_factor": (2.0, -1.0)}, "scale_factor must be a finite positive number"),
    ({"size": 4.5}, "size must be a positive int"),
    ({"size": "4"}, "size must be a positive int"),
    ({}, "either size or scale_factor should be defined"),
    ({"size": 3, "scale_factor": 2.0}, "only one of size or scale_factor"),
])
def test_interpolate_bad_sizes_and_scales(kw, match, rng):
    x = fastconv.tensor(randn(rng, 1, 2, 4, 4))
    with pytest.raises((ValueError, RuntimeError), match=match):
        F.interpolate(x, **kw)
