"""fastconv and torch timed call by call in alternation (A/B pairs), for a shared machine.

pytest-benchmark runs all rounds of one library, then all rounds of the other; when other
jobs come and go on the same cores, the two see different loads. Here each pair runs one
fastconv call and one torch call back to back (the order alternating), and the ratio is
the median of the per-pair ratios. The cases are those of bench_ops.py (``layers``:
LAYER_CASES, forward and backward) and bench_models.py (``steps``: the training steps).

    python benchmarks/interleaved.py layers --threads 1 --pairs 11
    python benchmarks/interleaved.py steps --threads 1 --pairs 7
    python benchmarks/interleaved.py steps --threads 2 --pairs 9 --precision bf16
    python benchmarks/interleaved.py bf16-convs --threads 2 --pairs 9
"""

import argparse
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # the benchmark modules, and the repository's models

import bench_ops  # noqa: E402 (after the path above)

import fastconv as fc  # noqa: E402
from fastconv.backend import cpu  # noqa: E402


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


def steps(n, precision):
    from bench_models import STEPS, make_step

    print(f"| training step ({precision}) | fastconv ms | torch ms | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for network, (_, batch, size) in STEPS.items():
        a = make_step("fastconv", network, precision)
        b = make_step("torch", network, precision, torch)
        print("| {} batch {} {}x{} | {:.1f} | {:.1f} | {:.2f} |".format(
            network, batch, size, size, *pairs(a, b, n)), flush=True)


BF16_CONVS = [(128, 64, 16, 256), (128, 256, 8, 256)]  # (N, C, H = W, OC): vgg3x3_bn's 3x3 layers


def bf16_convs(n):
    """Forward, input gradient and weight gradient of the 3x3 layers on the bfloat16 kernels,
    against aten's convolution on bfloat16 tensors (GFLOP/s from the pairs' medians)."""
    from fastconv import _C

    print("| layer (bf16) | part | fastconv GFLOP/s | torch GFLOP/s | ratio |")
    print("| --- | --- | ---: | ---: | ---: |")
    rng = np.random.default_rng(0)
    one = (1, 1)
    for N, C, H, OC in BF16_CONVS:
        x = rng.standard_normal((N, C, H, H), dtype=np.float32)
        w = rng.standard_normal((OC, C, 3, 3), dtype=np.float32) * 0.05
        dy = rng.standard_normal((N, OC, H, H), dtype=np.float32)
        xt, wt, dyt = (torch.from_numpy(a).bfloat16() for a in (x, w, dy))

        def back(dx, dw):
            return lambda: torch.ops.aten.convolution_backward(
                dyt, xt, wt, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [dx, dw, False])
        parts = {
            "forward": (lambda: _C.conv2d_forward_bf16(x, w, None, one, one, one, 1),
                        lambda: torch.nn.functional.conv2d(xt, wt, None, 1, 1)),
            "dx": (lambda: _C.conv2d_backward_bf16(x, w, dy, one, one, one, 1, True, False),
                   back(True, False)),
            "dw": (lambda: _C.conv2d_backward_bf16(x, w, dy, one, one, one, 1, False, True),
                   back(False, True)),
        }
        gflop = 2 * N * OC * H * H * C * 9 / 1e9
        for part, (a, b) in parts.items():
            ta, tb, ratio = pairs(a, b, n)
            print(f"| {C} -> {OC}, {H}x{H} | {part} | {gflop / ta * 1e3:.0f} | "
                  f"{gflop / tb * 1e3:.0f} | {ratio:.2f} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["layers", "steps", "bf16-convs"])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--pairs", type=int, default=9)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="steps: float32, or forward and loss under each library's "
                             "bfloat16 autocast")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cpu.set_num_threads(args.threads)
    print(f"fastconv {fc.__file__}, torch {torch.__version__}, {args.threads} thread(s), "
          f"{args.pairs} pairs\n")
    if args.what == "layers":
        layers(args.pairs)
    elif args.what == "bf16-convs":
        bf16_convs(args.pairs)
    else:
        steps(args.pairs, args.precision)


if __name__ == "__main__":
    main()
