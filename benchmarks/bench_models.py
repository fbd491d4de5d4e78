"""Whole training steps (forward, backward, SGD update) on the CPU: fastconv next to PyTorch,
in float32 and under bfloat16 autocast (``fastconv.autocast`` / ``torch.autocast``, forward and
loss inside the region, as a mixed-precision training loop has them).

The PyTorch baselines (torch_networks.py) are the same architectures as the model zoo's,
written with torch.nn, so both libraries do the same arithmetic on the same batch.
"""

import contextlib

import numpy as np
import pytest

import fastconv as fc
import fastconv.functional as F
import models
from torch_networks import torch_network

STEPS = {  # name: (model, batch, input size)
    "nin_cifar": ("nin_cifar", 128, 32),
    "cifar10_tutorial": ("cifar10_tutorial", 128, 24),
    "vgg3x3_bn": ("vgg3x3_bn", 128, 32),
}


def vgg3x3_bn(nn, widths=(64, 256, 256), num_classes=10):
    """A VGG-style network of 3x3 convolutions with batch norm, built from either library's
    ``nn`` (fastconv.nn or torch.nn: the same names)."""
    layers, cin = [], 3
    for w in widths:
        layers += [nn.Conv2d(cin, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
                   nn.MaxPool2d(2)]
        cin = w
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(cin, num_classes))


def make_step(impl, network, precision, torch=None):
    """One training step of ``network`` (a key of STEPS) in ``impl`` ('fastconv' or 'torch',
    which needs the ``torch`` module) at ``precision`` ('fp32', or 'bf16': forward and loss in
    the library's autocast region), on a fixed random batch; returns the step function."""
    model_name, batch, size = STEPS[network]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 3, size, size), dtype=np.float32)
    y = rng.integers(0, 10, size=batch)
    if impl == "fastconv":
        fc.manual_seed(0)
        model = vgg3x3_bn(fc.nn) if model_name == "vgg3x3_bn" else \
            models.get_model(model_name, num_classes=10)
        opt = fc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        xt, yt, loss_fn = fc.tensor(x), fc.tensor(y), F.cross_entropy
        region = (lambda: fc.autocast("cpu", dtype=fc.bfloat16)) if precision == "bf16" \
            else contextlib.nullcontext
    else:
        torch.manual_seed(0)
        model = vgg3x3_bn(torch.nn) if model_name == "vgg3x3_bn" else torch_network(model_name)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        loss_fn = torch.nn.functional.cross_entropy
        region = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bf16" \
            else contextlib.nullcontext
    model.train()

    def step():
        with region():
            loss = loss_fn(model(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("impl", ["fastconv", "torch"])
@pytest.mark.parametrize("network", list(STEPS))
def test_training_step(benchmark, request, impl, network, precision):
    _, batch, size = STEPS[network]
    torch = request.getfixturevalue("torch_or_skip") if impl == "torch" else None
    step = make_step(impl, network, precision, torch)
    benchmark.group = f"training step {network} batch {batch} {size}x{size} {precision}"
    # torch's bfloat16 kernels without native bf16 instructions take tens of seconds a step
    slow = impl == "torch" and precision == "bf16"
    benchmark.pedantic(step, rounds=3 if slow else 5, warmup_rounds=1 if slow else 2,
                       iterations=1)
