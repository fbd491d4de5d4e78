"""Per-op CPU benchmarks: fastconv next to PyTorch (oneDNN) on the same shapes in one run.

Each benchmark id is ``<impl>-<shape>``; groups pair the two implementations. FLOP
counts go into ``extra_info`` so that report.py can turn times into GFLOP/s and
compare them with the machine's sgemm throughput.
"""

import numpy as np
import pytest

import fastconv as fc
import fastconv.functional as F
from fastconv.backend import cpu as cpu_backend

from shapes import CONV_SHAPES, conv_flops

IMPLS = ["fastconv", "torch"]

# Both libraries get the same rounds. The first few calls of a layer in a process are
# slower (scratch buffers and the output cache grow, idle threads wake up): for the
# sub-millisecond GoogLeNet 3a layers the first 2-3 calls took 1.2-2.5x the steady
# time, so with one warm-up round they set the median of five.
ROUNDS = dict(rounds=7, warmup_rounds=3, iterations=1)


def _inputs(rng, N, C, H, W, OC, K, groups):
    x = rng.standard_normal((N, C, H, W), dtype=np.float32)
    w = rng.standard_normal((OC, C // groups, K, K), dtype=np.float32) * 0.05
    b = rng.standard_normal(OC, dtype=np.float32)
    return x, w, b


def _conv_callable(impl, x, w, b, stride, padding, groups, backward, torch):
    if impl == "fastconv":
        xt = fc.tensor(x, requires_grad=backward)
        wt = fc.tensor(w, requires_grad=backward)
        bt = fc.tensor(b, requires_grad=backward)

        def run():
            y = F.conv2d(xt, wt, bt, stride, padding, 1, groups)
            if backward:
                y.backward(dy)
            return y
    else:
        xt = torch.from_numpy(x).requires_grad_(backward)
        wt = torch.from_numpy(w).requires_grad_(backward)
        bt = torch.from_numpy(b).requires_grad_(backward)

        def run():
            y = torch.nn.functional.conv2d(xt, wt, bt, stride, padding, 1, groups)
            if backward:
                y.backward(dy_t)
            return y
    # Upstream gradient of the output shape (computed once, outside the timed region).
    with fc.no_grad():
        out_shape = F.conv2d(fc.tensor(x[:1]), fc.tensor(w), None, stride, padding, 1, groups).shape
    dy = np.random.default_rng(1).standard_normal((x.shape[0],) + out_shape[1:], dtype=np.float32)
    dy_t = torch.from_numpy(dy) if torch is not None else None
    return run


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", CONV_SHAPES, ids=[s[0] for s in CONV_SHAPES])
@pytest.mark.parametrize("direction", ["forward", "forward+backward"])
def test_conv2d(benchmark, impl, shape, direction, request):
    torch = request.getfixturevalue("torch_or_skip") if impl == "torch" else None
    if impl == "fastconv":
        try:
            import torch  # noqa: F811 (only for the upstream-gradient tensor)
        except ImportError:
            torch = None
    name, N, C, H, W, OC, K, stride, padding, groups = shape
    x, w, b = _inputs(np.random.default_rng(0), N, C, H, W, OC, K, groups)
    backward = direction != "forward"
    run = _conv_callable(impl, x, w, b, stride, padding, groups, backward, torch)
    flops = conv_flops(N, C, H, W, OC, K, stride, padding, groups) * (3 if backward else 1)
    benchmark.group = f"conv2d {direction} {name}"
    benchmark.extra_info.update(flops=flops, shape=name)
    benchmark.pedantic(run, **ROUNDS)


@pytest.mark.parametrize("impl", ["fastconv", "numpy"])
def test_sgemm_throughput(benchmark, impl):
    """The machine's sgemm ceiling: fastconv's BLAS next to NumPy's matmul."""
    rng = np.random.default_rng(0)
    n = 2048
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    run = (lambda: cpu_backend.gemm(a, b)) if impl == "fastconv" else (lambda: a @ b)
    benchmark.group = "sgemm 2048^3"
    benchmark.extra_info.update(flops=2.0 * n ** 3, shape="sgemm2048")
    benchmark.pedantic(run, **ROUNDS)


# (name, N, C, H, W): pooling, LRN and batch norm at the sizes where the networks use them.
POOL_SHAPES = [("nin.pool1", 128, 96, 32, 32), ("alexnet.pool1", 8, 96, 55, 55)]
LRN_SHAPES = [("alexnet.norm1", 8, 96, 55, 55), ("tutorial.norm1", 128, 64, 12, 12)]
BN_SHAPES = [("bn_inception.conv2", 16, 192, 56, 56), ("nin_width", 128, 192, 16, 16)]


def _fwd_bwd(impl, fn_fc, fn_torch, x, torch):
    """A callable running fn forward and backward with a random upstream gradient."""
    if impl == "fastconv":
        xt = fc.tensor(x, requires_grad=True)
        with fc.no_grad():
            g = np.random.default_rng(1).standard_normal(fn_fc(fc.tensor(x)).shape, dtype=np.float32)

        def run():
            fn_fc(xt).backward(g)
    else:
        xt = torch.from_numpy(x).requires_grad_(True)
        with torch.no_grad():
            g = torch.randn(fn_torch(xt).shape)

        def run():
            fn_torch(xt).backward(g)
    return run


def _bench_layer(benchmark, request, impl, group, x, fn_fc, fn_torch, rounds=ROUNDS):
    torch = request.getfixturevalue("torch_or_skip") if impl == "torch" else None
    run = _fwd_bwd(impl, fn_fc, fn_torch, x, torch)
    benchmark.group = group
    benchmark.pedantic(run, **rounds)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", POOL_SHAPES, ids=[s[0] for s in POOL_SHAPES])
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool(benchmark, request, impl, shape, kind):
    name, *dims = shape
    x = np.random.default_rng(0).standard_normal(dims, dtype=np.float32)
    if kind == "max":
        fn_fc = lambda t: F.max_pool2d(t, 3, 2, ceil_mode=True)  # noqa: E731
        fn_t = lambda t: __import__("torch").nn.functional.max_pool2d(t, 3, 2, ceil_mode=True)  # noqa: E731
    else:
        fn_fc = lambda t: F.avg_pool2d(t, 3, 2, ceil_mode=True)  # noqa: E731
        fn_t = lambda t: __import__("torch").nn.functional.avg_pool2d(t, 3, 2, ceil_mode=True)  # noqa: E731
    _bench_layer(benchmark, request, impl, f"{kind}_pool 3/2 fwd+bwd {name}", x, fn_fc, fn_t)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", LRN_SHAPES, ids=[s[0] for s in LRN_SHAPES])
def test_lrn(benchmark, request, impl, shape):
    name, *dims = shape
    x = np.random.default_rng(0).standard_normal(dims, dtype=np.float32)
    fn_fc = lambda t: F.local_response_norm(t, 5, 1e-4, 0.75, 2.0)  # noqa: E731
    fn_t = lambda t: __import__("torch").nn.functional.local_response_norm(t, 5, 1e-4, 0.75, 2.0)  # noqa: E731
    _bench_layer(benchmark, request, impl, f"lrn size 5 fwd+bwd {name}", x, fn_fc, fn_t)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", BN_SHAPES, ids=[s[0] for s in BN_SHAPES])
def test_batch_norm(benchmark, request, impl, shape):
    name, N, C, H, W = shape
    x = np.random.default_rng(0).standard_normal((N, C, H, W), dtype=np.float32)
    if impl == "fastconv":
        bn = fc.nn.BatchNorm2d(C)
        fn_fc, fn_t = bn, None
    else:
        torch = request.getfixturevalue("torch_or_skip")
        fn_fc, fn_t = None, torch.nn.BatchNorm2d(C)
    _bench_layer(benchmark, request, impl, f"batch_norm train fwd+bwd {name}", x, fn_fc, fn_t)


# The layers of the PyTorch surface (activations, layer / group norm, padding, dilated and
# adaptive max pooling, resizing), forward and backward, at CIFAR-network sizes.
LAYER_X = ("batch32.c64.32x32", 32, 64, 32, 32)
# Each of these takes a few milliseconds, about the scheduler's tick on a shared VM, where
# single calls came out in steps of 4 ms: five calls per round average over the steps.
LAYER_ROUNDS = dict(rounds=7, warmup_rounds=2, iterations=5)


def _torch_f():
    return __import__("torch").nn.functional


LAYER_CASES = {  # name: (fastconv fn, torch fn)
    "leaky_relu": (lambda t: F.leaky_relu(t, 0.1), lambda t: _torch_f().leaky_relu(t, 0.1)),
    "elu": (F.elu, lambda t: _torch_f().elu(t)),
    "gelu": (F.gelu, lambda t: _torch_f().gelu(t)),
    "gelu_tanh": (lambda t: F.gelu(t, approximate="tanh"),
                  lambda t: _torch_f().gelu(t, approximate="tanh")),
    "silu": (F.silu, lambda t: _torch_f().silu(t)),
    "sigmoid": (lambda t: t.sigmoid(), lambda t: t.sigmoid()),
    "tanh": (lambda t: t.tanh(), lambda t: t.tanh()),
    "layer_norm (C, H, W)": (lambda t: F.layer_norm(t, t.shape[1:]),
                             lambda t: _torch_f().layer_norm(t, t.shape[1:])),
    "group_norm 8 groups": (lambda t: F.group_norm(t, 8), lambda t: _torch_f().group_norm(t, 8)),
    "pad zeros 1": (lambda t: F.pad(t, (1, 1, 1, 1)), lambda t: _torch_f().pad(t, (1, 1, 1, 1))),
    "pad reflect 2": (lambda t: F.pad(t, (2, 2, 2, 2), mode="reflect"),
                      lambda t: _torch_f().pad(t, (2, 2, 2, 2), mode="reflect")),
    "max_pool 2/2": (lambda t: F.max_pool2d(t, 2), lambda t: _torch_f().max_pool2d(t, 2)),
    "max_pool 3/1 padding 1": (lambda t: F.max_pool2d(t, 3, 1, 1),
                               lambda t: _torch_f().max_pool2d(t, 3, 1, 1)),
    "max_pool 3/2 dilation 2": (lambda t: F.max_pool2d(t, 3, 2, 1, 2),
                                lambda t: _torch_f().max_pool2d(t, 3, 2, 1, 2)),
    "adaptive_max_pool 5x5": (lambda t: F.adaptive_max_pool2d(t, 5),
                              lambda t: _torch_f().adaptive_max_pool2d(t, 5)),
    "upsample nearest x2": (lambda t: F.interpolate(t, scale_factor=2),
                            lambda t: _torch_f().interpolate(t, scale_factor=2)),
    "upsample bilinear x2": (lambda t: F.interpolate(t, scale_factor=2, mode="bilinear"),
                             lambda t: _torch_f().interpolate(t, scale_factor=2,
                                                              mode="bilinear")),
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", list(LAYER_CASES))
def test_layer(benchmark, request, impl, case):
    name, *dims = LAYER_X
    x = np.random.default_rng(0).standard_normal(dims, dtype=np.float32)
    fn_fc, fn_t = LAYER_CASES[case]
    _bench_layer(benchmark, request, impl, f"{case} fwd+bwd {name}", x, fn_fc, fn_t,
                 LAYER_ROUNDS)
