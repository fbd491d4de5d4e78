"""Pairs of modules nn.Sequential runs as one step (container._fused), each with the same
values and gradients as the two modules run one after the other:
* a Conv2d followed by a ReLU as one op (ops.conv.Conv2dReLU; on the bfloat16 GEMM the ReLU
  is applied as the convolution writes y), in float32 and under autocast, on every
  bfloat16 GEMM variant;
* a ReLU followed by a MaxPool2d as the pool, then the ReLU on the pooled values;
* a training-mode BatchNorm2d, ReLU and MaxPool2d as batch norm and pooling in one op
  (ops.norm.BatchNormMaxPool2d), then the ReLU;
and hooks on any of the modules keep them apart."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv
import fastconv.nn as nn
from fastconv.backend import cpu as cpu_backend

_C = cpu_backend._C

CONFIGS = [  # (N, C, H, W, OC, kernel, stride, padding, groups, bias)
    (2, 3, 9, 7, 5, 3, 1, 1, 1, True),
    (3, 4, 8, 8, 6, 1, 1, 0, 1, False),
    (2, 6, 11, 10, 4, 3, 2, 0, 2, True),
    (1, 5, 7, 7, 7, 5, 1, "same", 1, True),
]


def _variants():
    before = _C.bf16_kernels()
    names = []
    for name in ("emulated", "emulated_amx", "avx512bf16", "amx"):
        try:
            _C._set_bf16_isa(name)
        except ValueError:
            continue
        names.append(name)
    _C._set_bf16_isa(before)
    return names


def _net(cfg, rng):
    N, C, H, W, OC, k, s, p, g, bias = cfg
    conv = nn.Conv2d(C, OC, k, stride=s, padding=p, groups=g, bias=bias)
    with fastconv.no_grad():
        conv.weight.copy_(fastconv.tensor(rng.standard_normal(conv.weight.shape)
                                          .astype(np.float32)))
        if bias:
            conv.bias.copy_(fastconv.tensor(rng.standard_normal(OC).astype(np.float32)))
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    return nn.Sequential(conv, nn.ReLU()), x


def _run(seq, x, dy, apart, autocast):
    """(y, dx, dw, db) of seq on x, with the modules run as Sequential does or one by one."""
    xt = fastconv.tensor(x, requires_grad=True)
    seq.zero_grad()
    with fastconv.autocast("cpu", enabled=autocast):
        y = seq[1](seq[0](xt)) if apart else seq(xt)
    assert (y.grad_fn is not None) and (("Conv2dReLU" in type(y.grad_fn).__name__) != apart), \
        type(y.grad_fn).__name__
    y.backward(fastconv.tensor(dy))
    conv = seq[0]
    return (y.detach().numpy(), xt.grad.numpy(), conv.weight.grad.numpy(),
            None if conv.bias is None else conv.bias.grad.numpy())


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("precision", ["fp32"] + [f"bf16-{v}" for v in _variants()])
def test_fused_equals_the_modules_one_by_one(cfg, precision, rng):
    seq, x = _net(cfg, rng)
    # values that make NaN and both zeros in the convolution's output
    x[0, 0, 0, :3] = [np.nan, 0.0, -0.0]
    dy_shape = seq[1](seq[0](fastconv.tensor(x))).shape
    dy = rng.standard_normal(dy_shape).astype(np.float32)
    autocast = precision != "fp32"
    before = _C.bf16_kernels()
    try:
        if autocast:
            _C._set_bf16_isa(precision.split("-", 1)[1])
        fused = _run(seq, x, dy, apart=False, autocast=autocast)
        apart = _run(seq, x, dy, apart=True, autocast=autocast)
    finally:
        _C._set_bf16_isa(before)
    assert np.isnan(fused[0]).any() and (fused[0] == 0).any() and (fused[0] > 0).any()
    for got, want in zip(fused, apart):
        if want is not None:
            np.testing.assert_array_equal(got, want)
    # signs of zero too: ReLU keeps -0 (a bfloat16 -0 from a tiny negative sum) as torch does
    np.testing.assert_array_equal(np.signbit(fused[0]), np.signbit(apart[0]))


def test_the_bf16_kernel_applies_relu_after_rounding(rng):
    x = rng.standard_normal((2, 8, 9, 9)).astype(np.float32)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    x[0, :, 4, 4] = np.nan
    for name in _variants():
        before = _C.bf16_kernels()
        try:
            _C._set_bf16_isa(name)
            y = _C.conv2d_forward_bf16(x, w, b, (1, 1), (1, 1), (1, 1), 1)
            fused = _C.conv2d_forward_bf16(x, w, b, (1, 1), (1, 1), (1, 1), 1, True)
        finally:
            _C._set_bf16_isa(before)
        np.testing.assert_array_equal(fused, _C.relu_forward(y), err_msg=name)
        assert np.isnan(fused).any() and (fused == 0).any()


def test_hooks_keep_the_modules_apart(rng):
    seq, x = _net(CONFIGS[0], rng)
    seen = []
    handle = seq[1].register_forward_hook(lambda m, args, out: seen.append(args[0]))
    y = seq(fastconv.tensor(x))
    raw = seen[0].detach().numpy()
    assert len(seen) == 1 and (raw < 0).any()  # the ReLU saw the convolution's output
    np.testing.assert_array_equal(y.detach().numpy(), np.maximum(raw, 0))
    handle.remove()
    assert "Conv2dReLU" in type(seq(fastconv.tensor(x)).grad_fn).__name__


def test_only_conv2d_then_relu_fuses(rng):
    conv = nn.Conv2d(3, 4, 3)
    x = fastconv.tensor(rng.standard_normal((1, 3, 6, 6)).astype(np.float32))
    for seq in (nn.Sequential(conv, nn.LeakyReLU()), nn.Sequential(nn.ReLU(), conv),
                nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"),
                              nn.ReLU())):
        y = seq(x)
        assert "Conv2dReLU" not in type(y.grad_fn).__name__


def test_double_backward_through_the_fused_op(rng):
    """A gradient penalty through Sequential(Conv2d, ReLU): the same second-order gradient
    of the weights as with the modules one by one."""
    seq, x = _net(CONFIGS[0], rng)
    grads = []
    for apart in (False, True):
        xt = fastconv.tensor(x, requires_grad=True)
        y = seq[1](seq[0](xt)) if apart else seq(xt)
        (gx,) = fastconv.autograd.grad((y * y).sum(), xt, create_graph=True)
        seq.zero_grad()
        (gx * gx).sum().backward()
        grads.append(seq[0].weight.grad.numpy().copy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pool", [
    dict(kernel_size=2), dict(kernel_size=3, stride=2, ceil_mode=True),
    dict(kernel_size=3, stride=1, padding=1), dict(kernel_size=(2, 3), stride=(1, 2),
                                                   dilation=(2, 1))])
def test_relu_then_max_pool_runs_as_pool_then_relu(pool, rng):
    """Bit for bit the values and gradients of ReLU, then max pooling: windows with positive
    maxima, windows of negatives only (both give 0 with zero gradient), ties of equal values,
    NaN and -0."""
    seq = nn.Sequential(nn.ReLU(), nn.MaxPool2d(**pool))
    x = rng.standard_normal((3, 4, 9, 10)).astype(np.float32)
    x[0, 0] = -np.abs(x[0, 0])                     # a plane of negatives only
    x[0, 1, :4, :4] = 0.75                         # ties
    x[1, 2, 2, 3], x[2, 3, 0, 0] = np.nan, -0.0
    grads = []
    for apart in (False, True):
        xt = fastconv.tensor(x, requires_grad=True)
        y = seq[1](seq[0](xt)) if apart else seq(xt)
        assert ("ReLU" in type(y.grad_fn).__name__) != apart, type(y.grad_fn).__name__
        dy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
        y.backward(fastconv.tensor(dy))
        grads.append((y.detach().numpy(), xt.grad.numpy()))
    (y_fused, dx_fused), (y_apart, dx_apart) = grads
    np.testing.assert_array_equal(y_fused, y_apart)
    np.testing.assert_array_equal(np.signbit(y_fused), np.signbit(y_apart))
    np.testing.assert_array_equal(dx_fused, dx_apart)
    assert np.isnan(y_fused).any() and (y_fused == 0).any() and (dx_fused != 0).any()


def test_relu_then_max_pool_with_indices_or_hooks_stays_apart(rng):
    x = fastconv.tensor(rng.standard_normal((1, 2, 6, 6)).astype(np.float32),
                        requires_grad=True)
    y, _ = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2, return_indices=True))(x)
    assert "MaxPool" in type(y.grad_fn).__name__
    seq = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2))
    seen = []
    seq[0].register_forward_hook(lambda m, args, out: seen.append(out))
    y = seq(x)
    assert len(seen) == 1 and seen[0].shape == (1, 2, 6, 6)
    assert "MaxPool" in type(y.grad_fn).__name__


def _bn_relu_pool(rng, C, pool, affine=True, track=True, momentum=0.1):
    bn = nn.BatchNorm2d(C, affine=affine, track_running_stats=track, momentum=momentum)
    if affine:
        with fastconv.no_grad():
            bn.weight.copy_(fastconv.tensor(rng.uniform(0.5, 1.5, C).astype(np.float32)))
            bn.bias.copy_(fastconv.tensor(rng.standard_normal(C).astype(np.float32)))
    return nn.Sequential(bn, nn.ReLU(), nn.MaxPool2d(**pool))


def _bn_run(seq, x, dy, apart):
    xt = fastconv.tensor(x, requires_grad=True)
    seq.zero_grad()
    y = seq[2](seq[1](seq[0](xt))) if apart else seq(xt)
    assert ("BatchNormMaxPool2d" in repr(_grad_fns(y))) != apart, _grad_fns(y)
    y.backward(fastconv.tensor(dy))
    bn = seq[0]
    params = [] if bn.weight is None else [bn.weight.grad.numpy(), bn.bias.grad.numpy()]
    stats = [] if bn.running_mean is None else [bn.running_mean.numpy(), bn.running_var.numpy(),
                                                bn.num_batches_tracked.numpy()]
    return [y.detach().numpy(), xt.grad.numpy()] + params + stats


def _grad_fns(y):
    """The names of the ops from y back to the inputs."""
    names, todo = [], [y.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is None:
            continue
        names.append(type(fn).__name__)
        todo.extend(p.grad_fn for p in fn.parents if getattr(p, "grad_fn", None) is not None)
    return names


@pytest.mark.parametrize("pool", [
    dict(kernel_size=2), dict(kernel_size=3, stride=2, ceil_mode=True),
    dict(kernel_size=3, stride=1, padding=1), dict(kernel_size=(2, 3), stride=(1, 2),
                                                   dilation=(2, 1))])
@pytest.mark.parametrize("options", [{}, dict(affine=False), dict(track=False)])
def test_batch_norm_relu_max_pool_as_one_op_equals_the_modules(pool, options, rng):
    """Training-mode BatchNorm2d, ReLU, MaxPool2d: bit for bit the values, the gradients of the
    input and the affine parameters, and the running statistics of the three modules one by
    one, over two steps (ties, NaN and a plane of one value included)."""
    x = rng.standard_normal((4, 5, 9, 10)).astype(np.float32) * 3 + 1
    x[0, 1, :4, :4] = 0.75                     # ties
    x[1, 2] = 2.5                              # a constant plane
    x[2, 3, 4, 4] = np.nan                     # NaN: its channel's statistics and pools
    runs = []
    for apart in (False, True):
        seq = _bn_relu_pool(np.random.default_rng(7), 5, pool, **options)
        results = []
        for step in range(2):
            xs = x if step == 0 else x[::-1].copy()
            y = seq[2](seq[1](seq[0](fastconv.tensor(xs))))
            dy = np.random.default_rng(step).standard_normal(y.shape).astype(np.float32)
            results.append(_bn_run(seq, xs, dy, apart))
        runs.append(results)
    for fused, apart in zip(*runs):
        assert len(fused) == len(apart)
        for a, b in zip(fused, apart):
            np.testing.assert_array_equal(a, b)
    y, dx = runs[0][0][:2]
    assert np.isnan(y).any() and (y > 0).any() and (y == 0).any() and (dx != 0).any()


def test_batch_norm_max_pool_kernels_against_torch(rng):
    """The fused kernels against torch's batch norm and max pooling (float64)."""
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((3, 4, 8, 7)).astype(np.float32) * 2 - 1
    w, b = rng.uniform(0.5, 2, 4).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    y, idx, mean, var = _C.batch_norm_max_pool2d_forward(x, w, b, 1e-5, (3, 2), (2, 2), (1, 0),
                                                         True, (1, 1))
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    yt = torch.nn.functional.max_pool2d(
        torch.nn.functional.batch_norm(xt, None, None, wt, bt, True, 0.1, 1e-5),
        (3, 2), (2, 2), (1, 0), ceil_mode=True)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(var, x.var(axis=(0, 2, 3)), rtol=1e-5)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, dw, db = _C.batch_norm_max_pool2d_backward(x, w, mean, var, 1e-5, dy, idx)
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    for got, want in ((dx, xt.grad), (dw, wt.grad), (db, bt.grad)):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-5)


def test_batch_norm_max_pool_kernels_refuse_bad_arguments(rng):
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w = np.ones(3, np.float32)
    y, idx, mean, var = _C.batch_norm_max_pool2d_forward(x, w, w, 1e-5, (2, 2), (2, 2), (0, 0),
                                                         False)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    bad = idx.copy()
    bad[1, 2, 0, 1] = 36                                # one past the plane
    with pytest.raises(ValueError, match="indices out of range"):
        _C.batch_norm_max_pool2d_backward(x, w, mean, var, 1e-5, dy, bad)
    with pytest.raises(ValueError, match="indices"):
        _C.batch_norm_max_pool2d_backward(x, w, mean, var, 1e-5, dy, idx[:, :, :2])
    with pytest.raises(ValueError, match="dy"):
        _C.batch_norm_max_pool2d_backward(x, w, mean, var, 1e-5, dy[:1], idx[:1])
    with pytest.raises(ValueError, match="weight"):
        _C.batch_norm_max_pool2d_forward(x, w[:2], w, 1e-5, (2, 2), (2, 2), (0, 0), False)
    with pytest.raises(ValueError, match="x"):
        _C.batch_norm_max_pool2d_forward(x[0], w, w, 1e-5, (2, 2), (2, 2), (0, 0), False)
    with pytest.raises(ValueError, match="kernel"):
        _C.batch_norm_max_pool2d_forward(x, w, w, 1e-5, (9, 9), (2, 2), (0, 0), False)


def test_batch_norm_relu_max_pool_stays_apart_in_eval_with_hooks_or_odd_inputs(rng):
    x = fastconv.tensor(rng.standard_normal((2, 3, 6, 6)).astype(np.float32))
    seq = _bn_relu_pool(rng, 3, dict(kernel_size=2))
    assert "BatchNormMaxPool2d" in _grad_fns(seq(x.requires_grad_()))
    seq.eval()
    assert "BatchNormMaxPool2d" not in _grad_fns(seq(x))
    seq.train()
    handle = seq[1].register_forward_hook(lambda m, args, out: None)
    assert "BatchNormMaxPool2d" not in _grad_fns(seq(x))
    handle.remove()
    # the modules' own errors: one value per channel, a 3-D input
    with pytest.raises(Exception, match="more than 1 value per channel"):
        seq(fastconv.tensor(np.ones((1, 3, 1, 1), np.float32)))
    with pytest.raises(ValueError, match="4-D"):
        seq(fastconv.tensor(np.ones((3, 6, 6), np.float32)))


def test_double_backward_through_batch_norm_max_pool(rng):
    """A gradient penalty through Sequential(BatchNorm2d, ReLU, MaxPool2d): the second-order
    gradients of the input and weight as with the modules one by one."""
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    grads = []
    for apart in (False, True):
        seq = _bn_relu_pool(np.random.default_rng(3), 3, dict(kernel_size=2))
        xt = fastconv.tensor(x, requires_grad=True)
        y = seq[2](seq[1](seq[0](xt))) if apart else seq(xt)
        (gx,) = fastconv.autograd.grad((y * y * y).sum(), xt, create_graph=True)
        seq.zero_grad()
        (gx * gx).sum().backward()
        grads.append(seq[0].weight.grad.numpy().copy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-4, atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_batch_norm_max_pool_kernels_fuzzed(data):
    """Random geometries (empty batches, windows into the padding, dilation, ceil mode) and
    malformed arguments: the fused kernels give the two kernels' results bit for bit, or a
    ValueError naming the problem, never a crash; indices off the plane are refused."""
    d = data.draw
    n, c = d(st.integers(0, 3)), d(st.integers(0, 4))
    kh, kw = d(st.integers(1, 4)), d(st.integers(1, 4))
    dh, dw = d(st.integers(1, 2)), d(st.integers(1, 2))
    ph, pw = d(st.integers(0, kh // 2)), d(st.integers(0, kw // 2))
    h, w = d(st.integers(0, 9)), d(st.integers(0, 9))
    window = ((kh, kw), (d(st.integers(1, 3)), d(st.integers(1, 3))), (ph, pw), d(st.booleans()),
              (dh, dw))
    rng = np.random.default_rng(d(st.integers(0, 2**31 - 1)))
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt, bt = rng.standard_normal(c).astype(np.float32), rng.standard_normal(c).astype(np.float32)
    try:
        normed, mean, var = _C.batch_norm_forward_train(x, wt, bt, 1e-5)
        want_y, want_idx = _C.max_pool2d_forward(normed, *window)
    except ValueError:
        with pytest.raises(ValueError):
            _C.batch_norm_max_pool2d_forward(x, wt, bt, 1e-5, *window)
        return
    y, idx, mean2, var2 = _C.batch_norm_max_pool2d_forward(x, wt, bt, 1e-5, *window)
    for got, want in ((y, want_y), (idx, want_idx), (mean2, mean), (var2, var)):
        np.testing.assert_array_equal(got, want)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    want = _C.batch_norm_backward(x, wt, mean, var, 1e-5,
                                  _C.max_pool2d_backward(dy, idx, list(x.shape)))
    for got, w_ in zip(_C.batch_norm_max_pool2d_backward(x, wt, mean, var, 1e-5, dy, idx), want):
        np.testing.assert_array_equal(got, w_)
    if idx.size:  # one index off the plane, either side
        bad = idx.copy()
        bad.flat[d(st.integers(0, idx.size - 1))] = d(st.sampled_from([-2, h * w, 2**31 - 1]))
        with pytest.raises(ValueError, match="indices"):
            _C.batch_norm_max_pool2d_backward(x, wt, mean, var, 1e-5, dy, bad)
