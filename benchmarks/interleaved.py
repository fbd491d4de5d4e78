"""fastconv and torch timed call by call in alternation (A/B pairs), for a shared machine.

pytest-benchmark runs all rounds of one library, then all rounds of the other; when other
jobs come and go on the same cores, the two see different loads. Here each pair runs one
fastconv call and one torch call back to back (the order alternating), and the ratio is
the median of the per-pair ratios. The cases are those of bench_ops.py (``layers``:
LAYER_CASES, forward and backward) and bench_models.py (``steps``: the training steps).

    python benchmarks/interleaved.py layers --threads 1 --pairs 11
    python benchmarks/interleaved.py steps --threads 1 --pairs 7
"""

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_ops

import fastconv as fc
import fastconv.functional as F
from fastconv.backend import cpu


def pairs(a, b, n):
    """(median ms of a, median ms of b, median of the per-pair ratios a / b)."""
    for _ in range(2):  # warm-up: caches, scratch buffers, thread pools
        a()
        b()
    ta, tb = [], []
    for i in range(n):
        times = {}
        for f in ((a, b) if i % 2 == 0 else (b, a)):
            t0 = time.perf_counter()
            f()
            times[f] = time.perf_counter() - t0
        ta.append(times[a])
        tb.append(times[b])
    ratio = np.median(np.array(ta) / np.array(tb))
    return np.median(ta) * 1e3, np.median(tb) * 1e3, ratio


def layers(n):
    name, *dims = bench_ops.LAYER_X
    x = np.random.default_rng(0).standard_normal(dims, dtype=np.float32)
    print(f"| op, forward + backward ({name}) | fastconv ms | torch ms | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for case, (fn_fc, fn_t) in bench_ops.LAYER_CASES.items():
        a = bench_ops._fwd_bwd("fastconv", fn_fc, None, x, torch)
        b = bench_ops._fwd_bwd("torch", None, fn_t, x, torch)
        print("| {} | {:.2f} | {:.2f} | {:.2f} |".format(case, *pairs(a, b, n)), flush=True)


def training_step_fastconv(model_name, x, y):
    import models

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
    return step


def training_step_torch(model_name, x, y):
    from torch_networks import torch_network

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
    return step


def steps(n):
    from bench_models import STEPS

    print("| training step | fastconv ms | torch ms | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for network, (model_name, batch, size) in STEPS.items():
        rng = np.random.default_rng(0)
        x = rng.standard_normal((batch, 3, size, size), dtype=np.float32)
        y = rng.integers(0, 10, size=batch)
        a = training_step_fastconv(model_name, x, y)
        b = training_step_torch(model_name, x, y)
        print("| {} batch {} {}x{} | {:.1f} | {:.1f} | {:.2f} |".format(
            network, batch, size, size, *pairs(a, b, n)), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["layers", "steps"])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--pairs", type=int, default=9)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cpu.set_num_threads(args.threads)
    print(f"fastconv {fc.__file__}, torch {torch.__version__}, {args.threads} thread(s), "
          f"{args.pairs} pairs\n")
    (layers if args.what == "layers" else steps)(args.pairs)


if __name__ == "__main__":
    main()
