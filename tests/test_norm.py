"""Batch normalisation (training, running statistics, evaluation) and local
response normalisation (PyTorch's form, and the TensorFlow / Caffe mappings)."""

from __future__ import annotations

import numpy as np
import pytest
import reference as R
from helpers import (
    assert_close,
    assert_nonfinite_like,
    check_op,
    check_vs_torch,
    poison,
    randn,
    to_numpy,
)

import fastconv
import fastconv.functional as F

# ----------------------------------------------------------------------------- batch norm

BN_SHAPES = [(4, 3, 3, 3), (2, 2, 5, 3), (1, 3, 4, 4), (6, 4), (3, 5, 4), (3, 4, 7, 9), (2, 3, 40)]


def _affine(rng, c):
    return (1.0 + 0.3 * randn(rng, c)).astype(np.float32), randn(rng, c, scale=0.5)


@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
def test_batch_norm_train_vs_reference(shape, rng):
    c = shape[1]
    w, b = _affine(rng, c)
    x = (randn(rng, *shape) * 2 + 0.5).astype(np.float32)

    def fc(x, w, b):
        rm, rv = fastconv.tensor(np.zeros(c, np.float32)), fastconv.tensor(np.ones(c, np.float32))
        return F.batch_norm(x, rm, rv, w, b, training=True)

    check_op(fc, lambda x, w, b: R.batch_norm_train(x, w, b)[0], [x, w, b], rng=rng,
             name="batch_norm(train)")


@pytest.mark.parametrize("shape", [(16, 64, 32, 32), (9, 7, 129, 131)], ids=str)
def test_batch_norm_train_of_large_inputs(shape, rng):
    """Outputs of 4 MB and more are written with streaming stores (rows of an odd length
    start off the 16-byte boundaries): y and dx against float64 formulas."""
    c = shape[1]
    w, b = _affine(rng, c)
    x = (randn(rng, *shape) * 2 + 0.5).astype(np.float32)
    dy = randn(rng, *shape)
    xt, wt, bt = (fastconv.tensor(a, requires_grad=True) for a in (x, w, b))
    rm, rv = fastconv.tensor(np.zeros(c, np.float32)), fastconv.tensor(np.ones(c, np.float32))
    y = F.batch_norm(xt, rm, rv, wt, bt, training=True)
    y.backward(fastconv.tensor(dy))
    axes = (0, 2, 3)
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    mean, var = x64.mean(axis=axes, keepdims=True), x64.var(axis=axes, keepdims=True)
    xhat = (x64 - mean) / np.sqrt(var + 1e-5)
    w4 = w.astype(np.float64).reshape(1, c, 1, 1)
    want_y = xhat * w4 + b.reshape(1, c, 1, 1)
    want_dx = w4 / np.sqrt(var + 1e-5) * (dy64 - dy64.mean(axis=axes, keepdims=True)
                                          - xhat * (dy64 * xhat).mean(axis=axes, keepdims=True))
    np.testing.assert_allclose(to_numpy(y), want_y, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(to_numpy(xt.grad), want_dx, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(to_numpy(wt.grad), (dy64 * xhat).sum(axis=axes), rtol=1e-4,
                               atol=1e-2)
    np.testing.assert_allclose(to_numpy(bt.grad), dy64.sum(axis=axes), rtol=1e-4, atol=1e-2)


def test_batch_norm_statistics_are_accurate_far_from_zero(rng):
    """Channel means of 50 with unit spread over 4096 values per channel: a one-pass
    E[x^2] - E[x]^2 in float32 loses about 1e-2 here; PyTorch's float32 stays near 1e-6."""
    x = (50.0 + randn(rng, 16, 4, 16, 16)).astype(np.float32)
    w, b = _affine(rng, 4)
    check_op(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
             lambda x, w, b: R.batch_norm_train(x, w, b)[0], [x, w, b], rng=rng,
             max_numerical=100, name="batch_norm(mean 50)")


@pytest.mark.parametrize("shape", BN_SHAPES[:2], ids=str)
def test_batch_norm_train_without_affine(shape, rng):
    c = shape[1]
    x = randn(rng, *shape)

    def fc(x):
        rm, rv = fastconv.tensor(np.zeros(c, np.float32)), fastconv.tensor(np.ones(c, np.float32))
        return F.batch_norm(x, rm, rv, None, None, training=True)

    check_op(fc, lambda x: R.batch_norm_train(x)[0], [x], rng=rng, name="batch_norm(no affine)")


@pytest.mark.parametrize("momentum", [0.1, 0.5, 1.0])
@pytest.mark.parametrize("shape", [(5, 3, 4, 2), (7, 4)], ids=str)
def test_batch_norm_running_statistics_update(shape, momentum, rng):
    c = shape[1]
    rm0 = randn(rng, c, scale=0.2)
    rv0 = (0.5 + np.abs(randn(rng, c))).astype(np.float32)
    w, b = _affine(rng, c)
    rm, rv = fastconv.tensor(rm0), fastconv.tensor(rv0)
    want_rm, want_rv = rm0.astype(np.float64), rv0.astype(np.float64)
    for _ in range(3):  # three steps: the update compounds
        x = (randn(rng, *shape) * 1.5 + 2.0).astype(np.float32)
        F.batch_norm(fastconv.tensor(x), rm, rv, fastconv.tensor(w), fastconv.tensor(b),
                     training=True, momentum=momentum)
        _, mean, _, var_unbiased = R.batch_norm_train(x, w, b)
        want_rm, want_rv = R.batch_norm_running_update(want_rm, want_rv, mean, var_unbiased,
                                                       momentum)
    assert rm.dtype == np.float32 and rv.dtype == np.float32
    assert_close(to_numpy(rm), want_rm, name="running_mean")
    assert_close(to_numpy(rv), want_rv, name="running_var (unbiased)")


def test_batch_norm_eval_uses_running_statistics_and_does_not_update(rng):
    c = 3
    x = randn(rng, 4, c, 5, 5)
    rm0 = randn(rng, c)
    rv0 = (0.5 + np.abs(randn(rng, c))).astype(np.float32)
    w, b = _affine(rng, c)
    rm, rv = fastconv.tensor(rm0), fastconv.tensor(rv0)

    def fc(x, w, b):
        return F.batch_norm(x, rm, rv, w, b, training=False)

    check_op(fc, lambda x, w, b: R.batch_norm_eval(x, rm0, rv0, w, b), [x, w, b], rng=rng,
             name="batch_norm(eval)")
    np.testing.assert_array_equal(to_numpy(rm), rm0)
    np.testing.assert_array_equal(to_numpy(rv), rv0)


def test_batch_norm_eps(rng):
    x, (w, b) = randn(rng, 3, 2, 2, 2, scale=0.01), _affine(rng, 2)
    for eps in (1e-5, 1e-3, 0.5):
        y = F.batch_norm(fastconv.tensor(x), None, None, fastconv.tensor(w), fastconv.tensor(b),
                         training=True, eps=eps)
        assert_close(to_numpy(y), R.batch_norm_train(x, w, b, eps)[0], name=f"eps={eps}")


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(8, 16, 9, 7), (32, 20), (1, 5, 6, 6)], ids=str)
def test_batch_norm_vs_torch(shape, training, rng):
    torch = pytest.importorskip("torch")
    c = shape[1]
    rm0, rv0 = randn(rng, c), (0.5 + np.abs(randn(rng, c))).astype(np.float32)
    rm, rv = fastconv.tensor(rm0), fastconv.tensor(rv0)
    trm, trv = torch.tensor(rm0, dtype=torch.float64), torch.tensor(rv0, dtype=torch.float64)
    w, b = _affine(rng, c)
    check_vs_torch(lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training, 0.1, 1e-5),
                   lambda x, w, b: torch.nn.functional.batch_norm(x, trm, trv, w, b, training,
                                                                  0.1, 1e-5),
                   [randn(rng, *shape), w, b], rng=rng, name=f"batch_norm(training={training})")
    assert_close(to_numpy(rm), trm.numpy(), name="running_mean vs torch")
    assert_close(to_numpy(rv), trv.numpy(), name="running_var vs torch")


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(2, 0, 3, 3), (0, 0, 3, 3), (2, 0), (2, 0, 4), (2, 0, 2, 2, 2)],
                         ids=str)
def test_batch_norm_with_no_channels_returns_the_empty_input(shape, training):
    """Zero channels: nothing to normalise; torch's F.batch_norm returns an empty tensor of the
    input's shape (and so do the modules here, where torch 2.13's fail on the empty weight),
    with a gradient of the same shape."""
    torch = pytest.importorskip("torch")
    want = torch.nn.functional.batch_norm(torch.zeros(shape), torch.zeros(0), torch.ones(0),
                                          training=training)
    x = fastconv.zeros(*shape, requires_grad=True)
    y = F.batch_norm(x, fastconv.zeros(0), fastconv.ones(0), fastconv.ones(0),
                     fastconv.zeros(0), training=training)
    assert tuple(y.shape) == tuple(want.shape) == shape
    y.sum().backward()
    assert tuple(x.grad.shape) == shape
    module = {2: fastconv.nn.BatchNorm1d, 3: fastconv.nn.BatchNorm1d,
              4: fastconv.nn.BatchNorm2d, 5: fastconv.nn.BatchNorm3d}[len(shape)](0)
    module.train(training)
    assert tuple(module(fastconv.zeros(*shape)).shape) == shape


@pytest.mark.parametrize("shape", [(0, 3, 4, 4), (2, 3, 0, 4), (0, 3), (0, 3, 5), (2, 3, 2, 0, 2)],
                         ids=str)
def test_batch_norm_of_an_empty_batch_in_training_is_empty_as_torch(shape, rng):
    """No values per channel in training: torch returns an empty result, keeps the running
    statistics and counts the batch; the gradient is empty too."""
    torch = pytest.importorskip("torch")
    kind = {2: "BatchNorm1d", 3: "BatchNorm1d", 4: "BatchNorm2d", 5: "BatchNorm3d"}[len(shape)]
    ours, theirs = getattr(fastconv.nn, kind)(3), getattr(torch.nn, kind)(3)
    start = rng.standard_normal(3).astype(np.float32)  # not the defaults: kept, not reset
    ours.running_mean.data[...] = start
    theirs.running_mean.data[...] = torch.from_numpy(start)
    x = fastconv.zeros(*shape, requires_grad=True)
    y, want = ours(x), theirs(torch.zeros(shape))
    assert tuple(y.shape) == tuple(want.shape) == shape
    y.sum().backward()
    assert tuple(x.grad.shape) == shape
    assert_close(ours.running_mean, theirs.running_mean, rtol=0, atol=0)
    assert_close(ours.running_var, theirs.running_var, rtol=0, atol=0)
    assert int(ours.num_batches_tracked.item()) == int(theirs.num_batches_tracked) == 1


@pytest.mark.parametrize("case", ["layer_norm_empty_normalized", "layer_norm_empty_batch",
                                  "instance_norm_empty_plane", "instance_norm_no_channels",
                                  "group_norm_empty_plane"])
def test_norms_of_empty_inputs_are_empty_as_torch(case):
    """Normalising over nothing (a zero in normalized_shape, an empty plane or batch): torch
    returns an empty result of the input's shape, and an empty gradient."""
    torch = pytest.importorskip("torch")
    shape, call = {
        "layer_norm_empty_normalized": ((2, 3, 0, 4), lambda m, x: m.nn.functional.layer_norm(
            x, (3, 0, 4))),
        "layer_norm_empty_batch": ((0, 5), lambda m, x: m.nn.functional.layer_norm(x, (5,))),
        "instance_norm_empty_plane": ((2, 3, 0, 4), lambda m, x: m.nn.functional.instance_norm(x)),
        "instance_norm_no_channels": ((2, 0, 4, 4), lambda m, x: m.nn.functional.instance_norm(
            x)),
        "group_norm_empty_plane": ((2, 4, 0), lambda m, x: m.nn.functional.group_norm(x, 2)),
    }[case]
    want = call(torch, torch.zeros(shape))
    x = fastconv.zeros(*shape, requires_grad=True)
    y = call(fastconv, x)
    assert tuple(y.shape) == tuple(want.shape) == shape
    y.sum().backward()
    assert tuple(x.grad.shape) == shape


# ----------------------------------------------------------------------------- LRN

LRN_CASES = [  # (shape, size, alpha, beta, k)
    ((2, 7, 3, 3), 5, 1e-4, 0.75, 1.0),     # AlexNet's hyper-parameters
    ((2, 7, 3, 3), 5, 0.5, 0.75, 2.0),      # large alpha: the normaliser matters
    ((2, 6, 2, 3), 3, 0.8, 0.5, 1.0),
    ((1, 5, 3, 2), 4, 0.9, 0.75, 1.5),      # even size: asymmetric window
    ((2, 3, 3, 3), 9, 1.0, 0.6, 1.0),       # window wider than the channels
    ((2, 4, 2, 2), 1, 0.7, 0.75, 0.5),      # size 1: only the channel itself
    ((1, 1, 4, 4), 5, 0.6, 0.75, 1.0),      # a single channel
    ((2, 8, 5, 5), 2, 0.3, 1.2, 1.0),
]


@pytest.mark.parametrize("shape,size,alpha,beta,k", LRN_CASES, ids=str)
def test_local_response_norm_vs_reference(shape, size, alpha, beta, k, rng):
    check_op(lambda t: F.local_response_norm(t, size, alpha, beta, k),
             lambda a: R.local_response_norm(a, size, alpha, beta, k),
             [randn(rng, *shape)], rng=rng, name="local_response_norm")


@pytest.mark.parametrize("shape,size,alpha,beta,k", LRN_CASES, ids=str)
def test_local_response_norm_vs_torch(shape, size, alpha, beta, k, rng):
    torch = pytest.importorskip("torch")
    check_vs_torch(lambda t: F.local_response_norm(t, size, alpha, beta, k),
                   lambda t: torch.nn.functional.local_response_norm(t, size, alpha, beta, k),
                   [randn(rng, *shape)], rng=rng, name="local_response_norm")


def test_local_response_norm_alexnet_shape_vs_torch(rng):
    torch = pytest.importorskip("torch")
    check_vs_torch(lambda t: F.local_response_norm(t, 5, 1e-4, 0.75, 2.0),
                   lambda t: torch.nn.functional.local_response_norm(t, 5, 1e-4, 0.75, 2.0),
                   [randn(rng, 2, 96, 27, 27, scale=10.0)], rng=rng, name="lrn(AlexNet)")


def test_local_response_norm_3d_input(rng):
    x = randn(rng, 2, 6, 5)
    check_op(lambda t: F.local_response_norm(t, 3, 0.5, 0.75, 1.0),
             lambda a: R.local_response_norm(a, 3, 0.5, 0.75, 1.0), [x], rng=rng, name="lrn 3-D")


@pytest.mark.parametrize("shape,size,alpha,beta,k", LRN_CASES + [
    ((2, 16, 17, 19), 5, 0.5, 0.75, 1.0),   # more pixels than one block of the CPU kernel
    ((1, 12, 3, 2), 7, 2.0, 0.6, 1.0),      # the general power
    ((2, 9, 2, 2), 3, 1.0, 0.0, 1.0),       # beta = 0: y = x even beside an inf
], ids=str)
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_local_response_norm_nonfinite_values_stay_in_their_windows(shape, size, alpha, beta, k,
                                                                      rng):
    """An inf or NaN (or |x| > 1.8e19, whose float32 square is inf) in a channel makes
    non-finite or zero only the outputs whose windows hold it, with the same NaN / inf as
    torch: a running window sum (add the entering channel, subtract the leaving one) would
    keep it, or the rounding it caused, after it has left. Gradients the same, with an inf
    or NaN in dy too."""
    torch = pytest.importorskip("torch")
    values = (np.inf, -np.inf, np.nan, 3e19, -1e20)
    for trial in range(4):
        x = poison(rng, randn(rng, *shape), count=1 + trial, values=values)
        xf, xt = fastconv.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        y = F.local_response_norm(xf, size, alpha, beta, k)
        yt = torch.nn.functional.local_response_norm(xt, size, alpha, beta, k)
        assert_nonfinite_like(y.detach(), yt.detach(), name="local_response_norm")
        dy = randn(rng, *shape)
        if trial % 2:
            poison(rng, dy, count=trial)
        y.backward(fastconv.tensor(dy))
        yt.backward(torch.tensor(dy))
        assert_nonfinite_like(xf.grad, xt.grad, rtol=1e-4, atol=1e-4,
                              name="local_response_norm grad")


@pytest.mark.parametrize("big", [np.nan, np.inf, 1e20, 1e15])
def test_local_response_norm_far_channels_ignore_one_extreme_value(big):
    """x = 1 with one extreme channel: the channels whose windows miss it get exactly the
    value they have without it (scale 1 + 1/3 * 3 = 2, y = 2^-0.75), however large it was;
    the two whose windows hold it are torch's (NaN for a NaN, 0 for an infinite scale)."""
    torch = pytest.importorskip("torch")
    x = np.ones((1, 8, 1, 1), np.float32)
    x[0, 0] = big
    y = to_numpy(F.local_response_norm(fastconv.tensor(x), 3, 1.0, 0.75, 1.0)).reshape(-1)
    np.testing.assert_allclose(y[2:7], 2.0 ** -0.75, rtol=1e-6)
    want = torch.nn.functional.local_response_norm(torch.tensor(x), 3, 1.0, 0.75, 1.0)
    assert_nonfinite_like(y, want.numpy().reshape(-1), name=f"lrn beside {big}")


@pytest.mark.parametrize("depth_radius,bias,alpha,beta", [(2, 1.0, 0.1, 0.75), (4, 2.0, 1e-3, 0.5),
                                                          (1, 1.0, 0.3, 0.75), (5, 1.0, 1.0, 0.5)])
def test_local_response_norm_tensorflow_mapping(depth_radius, bias, alpha, beta, rng):
    """TF's depth_radius r, bias, alpha (not divided by the window) map to
    size = 2r + 1, k = bias, alpha_pytorch = alpha * size, as documented."""
    x = randn(rng, 2, 9, 3, 3)
    size = 2 * depth_radius + 1
    y = F.local_response_norm(fastconv.tensor(x), size, alpha * size, beta, bias)
    assert_close(to_numpy(y), R.lrn_tensorflow(x, depth_radius, bias, alpha, beta),
                 name="lrn vs TensorFlow's formula")


@pytest.mark.parametrize("local_size,alpha,beta,k", [(5, 1e-4, 0.75, 1.0), (3, 0.5, 0.75, 2.0),
                                                     (7, 1.0, 0.5, 1.0)])
def test_local_response_norm_caffe_mapping(local_size, alpha, beta, k, rng):
    """Caffe's ACROSS_CHANNELS LRN divides alpha by local_size like PyTorch: direct mapping."""
    x = randn(rng, 2, 8, 3, 3, scale=3.0)
    y = F.local_response_norm(fastconv.tensor(x), local_size, alpha, beta, k)
    assert_close(to_numpy(y), R.lrn_caffe(x, local_size, alpha, beta, k),
                 name="lrn vs Caffe's formula")


def test_local_response_norm_docstring_documents_the_mappings():
    doc = F.local_response_norm.__doc__ or ""
    assert "depth_radius" in doc and "TensorFlow" in doc
    assert "Caffe" in doc and "local_size" in doc


def test_statistics_that_cannot_be_taken_are_refused_as_torch(rng):
    """Evaluation without running statistics, and training statistics of a single value per
    channel (batch norm) or per instance (instance norm): torch refuses all three."""
    torch = pytest.importorskip("torch")
    cases = [
        (lambda m, x: m.nn.functional.batch_norm(x, None, None, training=False),
         (2, 3, 4, 4), RuntimeError, "running_mean must be defined in evaluation mode"),
        (lambda m, x: m.nn.functional.batch_norm(x, None, None, training=True),
         (1, 3, 1, 1), ValueError, "Expected more than 1 value per channel when training"),
        (lambda m, x: m.nn.functional.instance_norm(x),
         (2, 3, 1, 1), ValueError, "Expected more than 1 spatial element when training"),
    ]
    for call, shape, error, message in cases:
        x = randn(rng, *shape)
        for lib in (torch, fastconv):
            with pytest.raises(error, match=message):
                call(lib, lib.tensor(x))


def test_batchnorm_module_without_running_stats_uses_the_batch_in_eval(rng):
    torch = pytest.importorskip("torch")
    x = randn(rng, 4, 3, 5, 5)
    got = fastconv.nn.BatchNorm2d(3, track_running_stats=False).eval()(fastconv.tensor(x))
    want = torch.nn.BatchNorm2d(3, track_running_stats=False).eval()(torch.tensor(x))
    assert_close(got, want.detach(), rtol=1e-4, atol=1e-5)
