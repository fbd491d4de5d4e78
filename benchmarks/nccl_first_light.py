"""The NCCL backend on a real GPU, one rank (the device machine has one GPU; NCCL refuses two
ranks on one device): what the CPU stand-in of CuPy and NCCL (tests/nccl_emulation.py)
cannot show. Run directly (an MPI singleton) or under ``mpirun -np 1``; part of
benchmarks/gpu_first_light.sh.

Checks, each printed as ``ok`` or ``FAILED: why``; the exit status is the number of failures:
  1. init_process_group("nccl") builds a communicator on GPU 0 (unique id over MPI);
  2. all_reduce (SUM, AVG, MAX), broadcast and all_gather of CUDA tensors give the one-rank
     results, on the current stream;
  3. a DistributedDataParallel step (buckets all-reduced by NCCL during backward) leaves the
     gradients of a plain step (world size 1: the average of one);
  4. models.train_cifar with --device cuda and --distributed runs 3 batches on NCCL.
"""

from __future__ import annotations

import os
import sys
import tempfile
import traceback

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def _check(name, fn, failures):
    try:
        fn()
        print(f"{name}: ok", flush=True)
    except Exception as e:  # noqa: BLE001 -- every failure is reported, the next check runs
        failures.append(name)
        print(f"{name}: FAILED: {type(e).__name__}: {e}", flush=True)
        traceback.print_exc()


def main() -> int:
    import fastconv as fc
    import fastconv.distributed as dist
    from fastconv.nn.parallel import DistributedDataParallel

    failures = []
    _check("init_process_group('nccl')", lambda: dist.init_process_group("nccl"), failures)
    if failures:
        return len(failures)
    rng = np.random.default_rng(0)
    base = rng.standard_normal((3, 5)).astype(np.float32)

    def collectives():
        for op in ("SUM", "AVG", "MAX"):
            t = fc.tensor(base, device="cuda")
            dist.all_reduce(t, op=getattr(dist.ReduceOp, op))
            np.testing.assert_allclose(t.cpu().numpy(), base, rtol=1e-6)
        t = fc.tensor(base, device="cuda")
        dist.broadcast(t, src=0)
        np.testing.assert_array_equal(t.cpu().numpy(), base)
        out = [fc.zeros(3, 5, device="cuda")]
        dist.all_gather(out, fc.tensor(base, device="cuda"))
        np.testing.assert_array_equal(out[0].cpu().numpy(), base)
        assert dist.get_backend() == "nccl" and dist.get_world_size() == 1

    def ddp_step():
        fc.manual_seed(1)
        net = fc.nn.Sequential(fc.nn.Conv2d(3, 8, 3, padding=1), fc.nn.ReLU(),
                               fc.nn.AdaptiveAvgPool2d(1), fc.nn.Flatten(), fc.nn.Linear(8, 4))
        net.to("cuda")
        x = fc.tensor(rng.standard_normal((4, 3, 8, 8)).astype(np.float32), device="cuda")
        y = fc.tensor(np.array([0, 1, 2, 3]), device="cuda")
        fc.nn.functional.cross_entropy(net(x), y).backward()
        plain = [p.grad.cpu().numpy().copy() for p in net.parameters()]
        net.zero_grad()
        ddp = DistributedDataParallel(net, bucket_cap_mb=0.0001)  # several buckets
        fc.nn.functional.cross_entropy(ddp(x), y).backward()
        for p, g in zip(net.parameters(), plain):
            np.testing.assert_allclose(p.grad.cpu().numpy(), g, rtol=1e-5, atol=1e-6)

    def training_program():
        from PIL import Image

        from models import train_cifar

        with tempfile.TemporaryDirectory() as tmp:
            data = os.path.join(tmp, "data")
            for c, colour in enumerate(((200, 30, 30), (30, 200, 30), (30, 30, 200))):
                os.makedirs(os.path.join(data, str(c)))
                for k in range(4):
                    pixels = np.clip(rng.normal(colour, 40, (32, 32, 3)), 0, 255)
                    Image.fromarray(pixels.astype(np.uint8)).save(
                        os.path.join(data, str(c), f"{k}.png"))
            code = train_cifar.main(["--model", "nin_cifar", "--data", data, "--out",
                                     os.path.join(tmp, "run"), "--device", "cuda",
                                     "--distributed", "--epochs", "1", "--limit-batches", "3",
                                     "--batch-size", "8", "--no-progress", "--no-plot",
                                     "--cache-dir", "none", "--val-per-class", "1"])
            assert code == 0, f"train_cifar exited with {code}"

    _check("collectives on CUDA tensors", collectives, failures)
    _check("DistributedDataParallel step", ddp_step, failures)
    _check("models.train_cifar --device cuda --distributed", training_program, failures)
    dist.destroy_process_group()
    print(f"NCCL first light: {3 + 1 - len(failures)} of 4 checks passed", flush=True)
    return len(failures)


if __name__ == "__main__":
    sys.exit(main())
