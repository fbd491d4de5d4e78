"""Memory stays flat over many training steps: backward frees the graph, and no
step leaves tensors or arrays behind."""

from __future__ import annotations

import gc
import tracemalloc
import weakref

import numpy as np
from helpers import randn

import fastconv
import fastconv.functional as F
from fastconv import nn


def _small_net():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Dropout2d(0.2),
        nn.LocalResponseNorm(3), nn.AvgPool2d(2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(16, 10),
    )


def _sgd_step(net, x, target, lr=0.01):
    loss = F.cross_entropy(net(x), target, label_smoothing=0.1)
    loss.backward()
    with fastconv.no_grad():
        for p in net.parameters():
            p.data -= lr * p.grad.data
    net.zero_grad()
    return float(loss.item())


def _live_tensors():
    gc.collect()
    return sum(1 for o in gc.get_objects() if issubclass(type(o), fastconv.Tensor))


def test_live_tensor_count_is_flat_over_training_steps(rng):
    net = _small_net()
    x = fastconv.tensor(randn(rng, 8, 3, 8, 8))
    target = rng.integers(0, 10, size=8)
    for _ in range(3):  # warm-up: every lazily created object exists after this
        _sgd_step(net, x, target)
    before = _live_tensors()
    for _ in range(50):
        loss = _sgd_step(net, x, target)
    after = _live_tensors()
    assert np.isfinite(loss)
    assert after <= before, f"live Tensors grew from {before} to {after} over 50 steps"


def test_traced_memory_is_flat_over_training_steps(rng):
    net = _small_net()
    x = fastconv.tensor(randn(rng, 8, 3, 16, 16))
    target = rng.integers(0, 10, size=8)
    for _ in range(3):
        _sgd_step(net, x, target)
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(5):
            _sgd_step(net, x, target)
        gc.collect()
        start, _ = tracemalloc.get_traced_memory()
        for _ in range(45):
            _sgd_step(net, x, target)
        gc.collect()
        end, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # one step's activations are ~100 KB here; a leak of even one of them per step would
    # add several MB over 45 steps
    assert end - start < 256 * 1024, (
        f"traced memory grew by {(end - start) / 1024:.0f} KiB over 45 steps "
        f"(peak {peak / 1024:.0f} KiB)")


def test_backward_frees_the_graph(rng):
    """After backward, the intermediate activations are gone even while the loss is held."""
    net = _small_net()
    x = fastconv.tensor(randn(rng, 4, 3, 8, 8))
    h = net[0](x)  # an intermediate activation, referenced only by the graph below
    rest = nn.Sequential(*list(net)[1:])
    loss = F.cross_entropy(rest(h), rng.integers(0, 10, size=4))
    ref = weakref.ref(h)
    del h
    gc.collect()
    assert ref() is not None, "the graph must keep the activation alive until backward"
    loss.backward()
    gc.collect()
    assert ref() is None, "backward left the intermediate activation alive (graph not freed)"
    assert all(p.grad is not None for p in net.parameters())


def test_backward_releases_saved_arrays(rng):
    """Holding the loss after backward keeps (almost) nothing of the forward pass."""
    net = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
    x = fastconv.tensor(randn(rng, 8, 16, 32, 32))
    target = rng.integers(0, 10, size=8)
    gc.collect()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        loss = F.cross_entropy(net(x), target)
        gc.collect()
        alive, _ = tracemalloc.get_traced_memory()
        loss.backward()
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    grads = sum(p.numel() * 4 for p in net.parameters())
    activations = alive - base
    assert activations > 2 * 2**20, f"only {activations} bytes traced: the test cannot see arrays"
    leftover = after - base - grads
    assert leftover < 256 * 1024, (
        f"{leftover / 1024:.0f} KiB still held after backward "
        f"(the forward pass held {activations / 1024:.0f} KiB)")
    del loss


def test_dropped_graph_without_backward_is_collected(rng):
    """A forward pass whose loss is discarded (e.g. evaluation with grad on) frees everything."""
    net = _small_net()
    x = fastconv.tensor(randn(rng, 4, 3, 8, 8))
    h = net[0](x)
    ref = weakref.ref(h)
    loss = F.cross_entropy(nn.Sequential(*list(net)[1:])(h), rng.integers(0, 10, size=4))
    del h, loss
    gc.collect()
    assert ref() is None


def test_no_grad_builds_no_graph(rng):
    net = _small_net().eval()
    x = fastconv.tensor(randn(rng, 4, 3, 8, 8))
    with fastconv.no_grad():
        h = net[0](x)
        y = nn.Sequential(*list(net)[1:])(h)
    assert not h.requires_grad and not y.requires_grad
    ref = weakref.ref(h)
    del h
    gc.collect()
    assert ref() is None, "an output computed under no_grad must not be kept by its consumers"


def test_empty_cache_frees_every_threads_buffers(rng):
    """After a convolution the output cache and the kernels' per-thread working buffers
    hold memory; empty_cache gives all of it back (the pool threads' buffers included),
    and the next convolution still computes the same result."""
    from fastconv.backend import cpu

    x = fastconv.tensor(randn(rng, 4, 3, 40, 40), requires_grad=True)
    w = fastconv.tensor(randn(rng, 32, 3, 5, 5), requires_grad=True)
    upstream = randn(rng, 4, 32, 40, 40)
    before = fastconv.get_num_threads()

    def run():
        x.grad = w.grad = None
        F.conv2d(x, w, padding=2).backward(upstream)
        return x.grad.numpy().copy(), w.grad.numpy().copy()

    try:
        fastconv.set_num_threads(3)  # the pool threads hold buffers of their own,
        first = run()
        fastconv.set_num_threads(2)  # also those no longer in the team
        assert cpu.cache_info()["scratch_bytes"] > 0
        cpu.empty_cache()
        info = cpu.cache_info()
        assert info["scratch_bytes"] == 0, info
        assert info["cached_bytes"] == 0 and info["cached_blocks"] == 0, info
        again = run()
    finally:
        fastconv.set_num_threads(before)
    np.testing.assert_array_equal(again[0], first[0])
    np.testing.assert_array_equal(again[1], first[1])
