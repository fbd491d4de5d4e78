"""Whole training steps (forward, backward, SGD update) on the CPU: fastconv next to PyTorch.

The PyTorch baselines (torch_networks.py) are the same architectures as the model zoo's,
written with torch.nn, so both libraries do the same arithmetic on the same batch.
"""

import numpy as np
import pytest

import fastconv as fc
import fastconv.functional as F
import models
from torch_networks import torch_network

STEPS = {  # name: (model, batch, input size)
    "nin_cifar": ("nin_cifar", 128, 32),
    "cifar10_tutorial": ("cifar10_tutorial", 128, 24),
}


@pytest.mark.parametrize("impl", ["fastconv", "torch"])
@pytest.mark.parametrize("network", list(STEPS))
def test_training_step(benchmark, request, impl, network):
    model_name, batch, size = STEPS[network]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 3, size, size), dtype=np.float32)
    y = rng.integers(0, 10, size=batch)
    if impl == "fastconv":
        fc.manual_seed(0)
        model = models.get_model(model_name, num_classes=10)
        model.train()
        opt = fc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        xt, yt = fc.tensor(x), fc.tensor(y)

        def step():
            loss = F.cross_entropy(model(xt), yt)
            opt.zero_grad()
            loss.backward()
            opt.step()
    else:
        torch = request.getfixturevalue("torch_or_skip")
        torch.manual_seed(0)
        model = torch_network(model_name)
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def step():
            loss = torch.nn.functional.cross_entropy(model(xt), yt)
            opt.zero_grad()
            loss.backward()
            opt.step()
    benchmark.group = f"training step {network} batch {batch} {size}x{size}"
    benchmark.pedantic(step, rounds=5, warmup_rounds=2, iterations=1)
