"""GPU benchmarks: fastconv's CUDA backend next to PyTorch + cuDNN, same shapes, same run.

Two ways to run them (both need an NVIDIA GPU, CuPy and a CUDA build of torch; without
them every benchmark here is skipped):

    # the report: CUDA-event medians, ratios, versions -> JSON + Markdown
    python benchmarks/run_gpu_bench.py --out benchmarks/results/gpu_h100.json

    # the same cases as a pytest-benchmark suite (wall clock around a synchronised call;
    # the CUDA-event median of each case goes into extra_info["cuda_event_median_ms"])
    python -m pytest benchmarks/bench_gpu.py --benchmark-enable --benchmark-only \
        --benchmark-json=benchmarks/results/gpu_pytest.json

Precision modes, set the same way on both sides before each case:
    fp32   strict float32: fastconv.backend.cuda.set_tf32(False),
           torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    tf32   TensorFloat-32 GEMMs / convolutions on both sides (all three switches True)
torch.backends.cudnn.benchmark = True throughout (cuDNN picks its fastest algorithm per
shape during the warm-up).

Timing: CUDA events recorded on each library's current stream around one call, after a
warm-up (which also compiles fastconv's kernels and runs cuDNN's autotuning), median over
the repetitions. What is timed is what a user calls: fastconv's functional API / Module
with its autograd, against torch.nn.functional / torch.nn with its autograd.

Cases
  layers    the convolutions of AlexNet (one-tower, 224x224, and the 2012 two-tower conv2),
            GoogLeNet (224x224) at batch 16 and of NIN (32x32) at batch 128; max / average /
            global pooling, LRN and batch norm on shapes of the same networks;
            each as forward alone ("fwd") and forward + backward ("fwdbwd").
  networks  forward + backward (cross-entropy loss, no optimizer) of alexnet_owt and
            googlenet (no auxiliary heads) at batch 16, 224x224 (the setting of
            jcjohnson/cnn-benchmarks), of nin_cifar at batch 128, 32x32, and of the 2012
            alexnet at batch 16, 227x227 (LRN and grouped convolutions).
  step      a whole NIN training step (forward, backward, SGD with momentum) at batch 128:
            fastconv eager, fastconv captured as a CUDA graph (CapturedStep), torch eager.

The torch networks below are written to be the same architectures as models.get_model(...);
check_same_network() copies fastconv's weights into them and compares the outputs
(run_gpu_bench.py --check, and test_torch_mirrors_match_models here).
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from torch_networks import torch_network

try:
    import cupy

    HAVE_GPU = cupy.cuda.runtime.getDeviceCount() > 0
except Exception:  # no CuPy, no driver
    cupy = None
    HAVE_GPU = False
try:
    import torch

    HAVE_TORCH_CUDA = torch.cuda.is_available()
except Exception:
    torch = None
    HAVE_TORCH_CUDA = False

GPU_READY = HAVE_GPU and HAVE_TORCH_CUDA
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not GPU_READY, reason="needs an NVIDIA GPU, CuPy and torch "
                                                       "with CUDA")]

PRECISIONS = ("fp32", "tf32")
MODES = ("fwd", "fwdbwd")

# ------------------------------------------------------------------------------------------
# Shapes: (name, N, C, H, W, OC, K, stride, padding, groups)
# ------------------------------------------------------------------------------------------

CONV = [
    ("alexnet.conv1_11x11s4", 16, 3, 224, 224, 64, 11, 4, 2, 1),
    ("alexnet.conv2_5x5", 16, 64, 27, 27, 192, 5, 1, 2, 1),
    ("alexnet.conv3_3x3", 16, 192, 13, 13, 384, 3, 1, 1, 1),
    ("alexnet.conv4_3x3", 16, 384, 13, 13, 256, 3, 1, 1, 1),
    ("alexnet.conv5_3x3", 16, 256, 13, 13, 256, 3, 1, 1, 1),
    ("alexnet2012.conv2_5x5g2", 16, 96, 27, 27, 256, 5, 1, 2, 2),
    ("googlenet.conv1_7x7s2", 16, 3, 224, 224, 64, 7, 2, 3, 1),
    ("googlenet.conv2red_1x1", 16, 64, 56, 56, 64, 1, 1, 0, 1),
    ("googlenet.conv2_3x3", 16, 64, 56, 56, 192, 3, 1, 1, 1),
    ("googlenet.3a_1x1", 16, 192, 28, 28, 64, 1, 1, 0, 1),
    ("googlenet.3a_3x3", 16, 96, 28, 28, 128, 3, 1, 1, 1),
    ("googlenet.3a_5x5", 16, 16, 28, 28, 32, 5, 1, 2, 1),
    ("googlenet.4a_3x3", 16, 96, 14, 14, 208, 3, 1, 1, 1),
    ("googlenet.4e_3x3", 16, 160, 14, 14, 320, 3, 1, 1, 1),
    ("googlenet.5b_1x1", 16, 832, 7, 7, 384, 1, 1, 0, 1),
    ("googlenet.5b_3x3", 16, 192, 7, 7, 384, 3, 1, 1, 1),
    ("nin.conv1_5x5", 128, 3, 32, 32, 192, 5, 1, 2, 1),
    ("nin.cccp1_1x1", 128, 192, 32, 32, 160, 1, 1, 0, 1),
    ("nin.cccp2_1x1", 128, 160, 32, 32, 96, 1, 1, 0, 1),
    ("nin.conv2_5x5", 128, 96, 16, 16, 192, 5, 1, 2, 1),
    ("nin.cccp3_1x1", 128, 192, 16, 16, 192, 1, 1, 0, 1),
    ("nin.conv3_3x3", 128, 192, 8, 8, 192, 3, 1, 1, 1),
    ("nin.cccp6_1x1", 128, 192, 8, 8, 10, 1, 1, 0, 1),
]

# (name, kind, N, C, H, W, kernel, stride, padding, ceil_mode)
POOL = [
    ("alexnet.pool1_max3s2", "max", 16, 64, 55, 55, 3, 2, 0, False),
    ("googlenet.pool1_max3s2", "max", 16, 64, 112, 112, 3, 2, 0, True),
    ("googlenet.3a_pool_max3s1", "max", 16, 192, 28, 28, 3, 1, 1, False),
    ("nin.pool1_max3s2", "max", 128, 96, 32, 32, 3, 2, 0, True),
    ("nin.pool2_avg3s2", "avg", 128, 192, 16, 16, 3, 2, 0, True),
    ("nin.global_avg", "global", 128, 10, 8, 8, 8, 1, 0, False),
    ("googlenet.global_avg", "global", 16, 1024, 7, 7, 7, 1, 0, False),
]

# (name, N, C, H, W, size, alpha, beta, k)
LRN = [
    ("alexnet2012.lrn1", 16, 96, 55, 55, 5, 5e-4, 0.75, 2.0),
    ("alexnet2012.lrn2", 16, 256, 27, 27, 5, 5e-4, 0.75, 2.0),
    ("googlenet.lrn1", 16, 64, 56, 56, 5, 1e-4, 0.75, 1.0),
    ("googlenet.lrn2", 16, 192, 56, 56, 5, 1e-4, 0.75, 1.0),
    ("cifar10_tutorial.lrn", 128, 64, 12, 12, 9, 9e-3, 0.75, 1.0),
]

# (name, N, C, H, W)
BN = [
    ("bn.nin_128x192x32x32", 128, 192, 32, 32),
    ("bn.stem_16x64x112x112", 16, 64, 112, 112),
    ("bn.inception_16x256x28x28", 16, 256, 28, 28),
    ("bn.fc_256x1024", 256, 1024, 1, 1),
]

# name: (model name, model options, batch, image side, classes)
NETWORKS = {
    "alexnet_owt": ("alexnet_owt", {}, 16, 224, 1000),
    "googlenet": ("googlenet", {"aux_logits": False}, 16, 224, 1000),
    "nin_cifar": ("nin_cifar", {}, 128, 32, 10),
    "alexnet": ("alexnet", {}, 16, 227, 1000),
}
TARGET_NETWORKS = ("alexnet_owt", "googlenet", "nin_cifar")   # the geometric mean


# ------------------------------------------------------------------------------------------
# Precision, synchronisation, timing
# ------------------------------------------------------------------------------------------

def set_precision(mode: str) -> None:
    from fastconv.backend import cuda as gpu_backend

    tf32 = mode == "tf32"
    gpu_backend.set_tf32(tf32)
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True


def synchronize() -> None:
    cupy.cuda.Device().synchronize()
    torch.cuda.synchronize()


def cuda_event_times(fn, impl: str, warmup: int = 10, reps: int = 30) -> list:
    """Milliseconds of ``reps`` calls, each between two CUDA events on the library's stream."""
    for _ in range(warmup):
        fn()
    synchronize()
    times = []
    for _ in range(reps):
        if impl == "torch":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            start, end = cupy.cuda.Event(), cupy.cuda.Event()
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(cupy.cuda.get_elapsed_time(start, end))
    return times


def summary(times) -> dict:
    return {"median_ms": statistics.median(times), "min_ms": min(times),
            "mean_ms": statistics.fmean(times), "reps": len(times)}


# ------------------------------------------------------------------------------------------
# Layer closures: (fastconv callable, torch callable) for one case and mode
# ------------------------------------------------------------------------------------------

def _arrays(seed, *shapes, scale=1.0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(s) * scale).astype(np.float32) for s in shapes]


def _pair(fc_forward, t_forward, fc_inputs, t_inputs, dy, mode):
    """Wrap two forward functions into timed callables for ``mode``."""
    import fastconv as fc

    if mode == "fwd":
        def run_fc():
            with fc.no_grad():
                return fc_forward()

        def run_t():
            with torch.no_grad():
                return t_forward()
        return run_fc, run_t
    fc_dy = fc.tensor(dy, device="cuda")
    t_dy = torch.tensor(dy, device="cuda")

    def run_fc():
        for t in fc_inputs:
            t.grad = None
        fc_forward().backward(fc_dy)

    def run_t():
        for t in t_inputs:
            t.grad = None
        t_forward().backward(t_dy)
    return run_fc, run_t


def _tensors(arrays, grad=True):
    import fastconv as fc

    fc_t = [fc.tensor(a, device="cuda", requires_grad=grad) for a in arrays]
    t_t = [torch.tensor(a, device="cuda", requires_grad=grad) for a in arrays]
    return fc_t, t_t


def conv_case(case, mode):
    import fastconv.functional as F

    _, N, C, H, W, OC, K, s, p, g = case
    OH, OW = (H + 2 * p - K) // s + 1, (W + 2 * p - K) // s + 1
    x, w, b, dy = _arrays(0, (N, C, H, W), (OC, C // g, K, K), (OC,), (N, OC, OH, OW))
    w *= (C // g * K * K) ** -0.5
    (xf, wf, bf), (xt, wt, bt) = _tensors([x, w, b])
    return _pair(lambda: F.conv2d(xf, wf, bf, s, p, 1, g),
                 lambda: torch.nn.functional.conv2d(xt, wt, bt, s, p, 1, g),
                 (xf, wf, bf), (xt, wt, bt), dy, mode)


def conv_flops(case) -> float:
    _, N, C, H, W, OC, K, s, p, g = case
    OH, OW = (H + 2 * p - K) // s + 1, (W + 2 * p - K) // s + 1
    return 2.0 * N * OC * OH * OW * (C // g) * K * K


def pool_case(case, mode):
    import fastconv.functional as F

    _, kind, N, C, H, W, k, s, p, ceil = case
    tF = torch.nn.functional
    if kind == "global":
        OH = OW = 1
        fc_fn = lambda x: F.adaptive_avg_pool2d(x, 1)            # noqa: E731
        t_fn = lambda x: tF.adaptive_avg_pool2d(x, 1)            # noqa: E731
    else:
        def out(n):
            span = n + 2 * p - k
            o = (-(-span // s) if ceil else span // s) + 1
            return o - 1 if ceil and (o - 1) * s >= n + p else o
        OH, OW = out(H), out(W)
        if kind == "max":
            fc_fn = lambda x: F.max_pool2d(x, k, s, p, ceil_mode=ceil)          # noqa: E731
            t_fn = lambda x: tF.max_pool2d(x, k, s, p, ceil_mode=ceil)          # noqa: E731
        else:
            fc_fn = lambda x: F.avg_pool2d(x, k, s, p, ceil_mode=ceil)          # noqa: E731
            t_fn = lambda x: tF.avg_pool2d(x, k, s, p, ceil_mode=ceil)          # noqa: E731
    x, dy = _arrays(1, (N, C, H, W), (N, C, OH, OW))
    (xf,), (xt,) = _tensors([x])
    return _pair(lambda: fc_fn(xf), lambda: t_fn(xt), (xf,), (xt,), dy, mode)


def lrn_case(case, mode):
    import fastconv.functional as F

    _, N, C, H, W, size, alpha, beta, k = case
    x, dy = _arrays(2, (N, C, H, W), (N, C, H, W), scale=2.0)
    (xf,), (xt,) = _tensors([x])
    return _pair(lambda: F.local_response_norm(xf, size, alpha, beta, k),
                 lambda: torch.nn.functional.local_response_norm(xt, size, alpha, beta, k),
                 (xf,), (xt,), dy, mode)


def bn_case(case, mode):
    import fastconv as fc
    import fastconv.functional as F

    _, N, C, H, W = case
    shape = (N, C) if H == W == 1 else (N, C, H, W)
    x, dy = _arrays(3, shape, shape)
    w, b = np.ones(C, np.float32), np.zeros(C, np.float32)
    (xf, wf, bf), (xt, wt, bt) = _tensors([x, w, b])
    rmf, rvf = fc.tensor(np.zeros(C, np.float32), device="cuda"), \
        fc.tensor(np.ones(C, np.float32), device="cuda")
    rmt, rvt = torch.zeros(C, device="cuda"), torch.ones(C, device="cuda")
    return _pair(lambda: F.batch_norm(xf, rmf, rvf, wf, bf, True, 0.1, 1e-5),
                 lambda: torch.nn.functional.batch_norm(xt, rmt, rvt, wt, bt, True, 0.1, 1e-5),
                 (xf, wf, bf), (xt, wt, bt), dy, mode)


def layer_cases():
    """[(group, name, builder(mode) -> (fastconv fn, torch fn), flops or None)]"""
    out = []
    for c in CONV:
        out.append(("conv", c[0], (lambda m, c=c: conv_case(c, m)), conv_flops(c)))
    for c in POOL:
        out.append(("pool", c[0], (lambda m, c=c: pool_case(c, m)), None))
    for c in LRN:
        out.append(("lrn", c[0], (lambda m, c=c: lrn_case(c, m)), None))
    for c in BN:
        out.append(("batchnorm", c[0], (lambda m, c=c: bn_case(c, m)), None))
    return out


# ------------------------------------------------------------------------------------------
# The networks: fastconv's from the model zoo, torch's twins from torch_networks.py
# ------------------------------------------------------------------------------------------

def fastconv_network(name: str):
    import models

    model_name, options, _, _, classes = NETWORKS[name]
    return models.get_model(model_name, num_classes=classes, **options)


def check_same_network(name: str, atol: float = 1e-3) -> float:
    """Copy fastconv's parameters (in order) into the torch mirror; max |output difference|.

    Raises AssertionError when the parameter lists differ in length or shape (the mirror is
    not the same architecture) or when the eval-mode outputs differ by more than ``atol``
    relative to their scale.
    """
    import fastconv as fc

    set_precision("fp32")
    fc.manual_seed(0)
    fm = fastconv_network(name)
    _, _, _, side, classes = NETWORKS[name]
    tm = torch_network(name, classes)
    fp = [np.asarray(p.detach().numpy()) for p in fm.parameters()]
    tp = list(tm.parameters())
    assert len(fp) == len(tp), f"{name}: {len(fp)} fastconv tensors vs {len(tp)} torch"
    with torch.no_grad():
        for a, b in zip(fp, tp):
            assert tuple(a.shape) == tuple(b.shape), f"{name}: {a.shape} vs {tuple(b.shape)}"
            b.copy_(torch.from_numpy(a))
    fm.to("cuda").eval()
    tm.cuda().eval()
    x = np.random.default_rng(4).standard_normal((2, 3, side, side)).astype(np.float32)
    with fc.no_grad():
        yf = fm(fc.tensor(x, device="cuda")).numpy()
    with torch.no_grad():
        yt = tm(torch.tensor(x, device="cuda")).cpu().numpy()
    diff = float(np.abs(yf - yt).max())
    scale = max(1.0, float(np.abs(yt).max()))
    assert diff <= atol * scale, f"{name}: outputs differ by {diff} (scale {scale})"
    return diff


def network_case(name: str, impl: str):
    """A callable running forward + backward (cross-entropy) of network ``name``."""
    import fastconv as fc
    import fastconv.functional as F

    _, _, N, side, classes = NETWORKS[name]
    rng = np.random.default_rng(5)
    x = rng.standard_normal((N, 3, side, side)).astype(np.float32)
    y = rng.integers(0, classes, size=N)
    if impl == "torch":
        model = torch_network(name, classes).cuda().train()
        xt, yt = torch.tensor(x, device="cuda"), torch.tensor(y, device="cuda")
        params = list(model.parameters())

        def run():
            for p in params:
                p.grad = None
            torch.nn.functional.cross_entropy(model(xt), yt).backward()
        return run
    fc.manual_seed(0)
    model = fastconv_network(name).to("cuda")
    model.train()
    xf, yf = fc.tensor(x, device="cuda"), fc.tensor(y, device="cuda")
    params = list(model.parameters())

    def run():
        for p in params:
            p.grad = None
        F.cross_entropy(model(xf), yf).backward()
    return run


def training_step_case(impl: str, batch: int = 128):
    """One NIN training step (forward, backward, SGD momentum 0.9, weight decay 5e-4).

    impl: "torch" (eager), "fastconv" (eager) or "fastconv_graph" (CapturedStep replay).
    """
    import fastconv as fc
    import fastconv.functional as F

    rng = np.random.default_rng(6)
    x = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, size=batch)
    if impl == "torch":
        model = torch_network("nin_cifar", 10).cuda().train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        xt, yt = torch.tensor(x, device="cuda"), torch.tensor(y, device="cuda")

        def run():
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(xt), yt).backward()
            opt.step()
        return run
    from fastconv.backend import cuda as gpu_backend

    fc.manual_seed(0)
    model = fastconv_network("nin_cifar").to("cuda")
    model.train()
    opt = fc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    xf, yf = fc.tensor(x, device="cuda"), fc.tensor(y, device="cuda")

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(xf), yf)
        loss.backward()
        opt.step()
        return loss.data
    if impl == "fastconv":
        return step
    captured = gpu_backend.CapturedStep(step, warmup=3, params=list(model.parameters()))
    return captured.replay


def geometric_mean(values) -> float:
    values = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


# ------------------------------------------------------------------------------------------
# pytest-benchmark suite
# ------------------------------------------------------------------------------------------

def _bench(benchmark, fn, impl, group, flops=None):
    benchmark.group = group
    if flops:
        benchmark.extra_info["flops"] = flops
    if not getattr(benchmark, "disabled", False):
        benchmark.extra_info.update(
            {"cuda_event_" + k: v for k, v in summary(cuda_event_times(fn, impl)).items()})

    def synced():
        fn()
        synchronize()
    benchmark.pedantic(synced, rounds=20, warmup_rounds=5, iterations=1)


_LAYERS = layer_cases() if GPU_READY else []


@pytest.mark.parametrize("impl", ["fastconv", "torch"])
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", _LAYERS, ids=[c[1] for c in _LAYERS])
def test_layer(benchmark, case, mode, precision, impl):
    group, name, build, flops = case
    set_precision(precision)
    fn_fc, fn_t = build(mode)
    _bench(benchmark, fn_fc if impl == "fastconv" else fn_t, impl,
           f"{group} {name} {mode} {precision}", flops)


@pytest.mark.parametrize("impl", ["fastconv", "torch"])
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("network", list(NETWORKS))
def test_network_fwdbwd(benchmark, network, precision, impl):
    set_precision(precision)
    _bench(benchmark, network_case(network, impl), impl,
           f"network {network} fwd+bwd {precision}")


@pytest.mark.parametrize("impl", ["fastconv", "fastconv_graph", "torch"])
@pytest.mark.parametrize("precision", PRECISIONS)
def test_nin_training_step(benchmark, precision, impl):
    set_precision(precision)
    _bench(benchmark, training_step_case(impl), "torch" if impl == "torch" else "fastconv",
           f"step nin_cifar b128 {precision}")


@pytest.mark.parametrize("network", list(NETWORKS))
def test_torch_mirrors_match_models(network):
    """The torch side of every network benchmark is the same architecture."""
    check_same_network(network)
