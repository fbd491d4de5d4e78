"""All-reduce time for the zoo's gradient sizes, and the DDP overhead of a training step.

    OMP_NUM_THREADS=1 mpirun -np 2 python benchmarks/bench_allreduce.py [--out results.json]
    (as root with Open MPI: mpirun --allow-run-as-root --oversubscribe ...)

1. All-reduce (fastconv.distributed, backend "mpi"): float32 buffers of the gradient sizes
   of nin_cifar (3.9 MB), GoogLeNet without its auxiliary heads (28.0 MB) and AlexNet
   (243.9 MB), as one collective and as DDP sends them (25 MB buckets, all started, then
   waited on), the two alternating. Each repeat starts after a barrier; a repeat's time is
   the slowest rank's; the median over the repeats is reported, with the bus bandwidth 2(N-1)/N x bytes / time
   (NCCL-tests' convention: the bytes each rank sends and receives in a ring all-reduce).
2. Training step of nin_cifar on one global batch, forward + backward + SGD, in rounds that
   alternate, in this one run:
     one process   rank 0 alone, all the cores' threads, the whole batch (the other rank
                   waits sleeping, polling a non-blocking barrier, so it takes no core);
     2 ranks local each rank one thread, half the batch, no communication;
     2 ranks DDP   the same with DistributedDataParallel (bucket_cap_mb 25: one bucket for
                   NIN, reduced after backward), and with bucket_cap_mb 1 (several buckets,
                   started during backward).
   Medians over the rounds. On one machine the ranks share its cores, so "2 ranks local"
   against "one process" is the cost of splitting the batch over processes on the same
   cores, and "DDP" against "2 ranks local" is the cost of the averaging itself.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import fastconv.nn.functional as F
import numpy as np

import fastconv
import fastconv.distributed as dist
from fastconv.nn.parallel import DistributedDataParallel
from fastconv.tensor import Tensor

SIZES = [("nin_cifar", 3_867_944), ("googlenet (no aux heads)", 27_994_208),
         ("alexnet", 243_860_896)]
BUCKET_BYTES = 25 * 1024 * 1024


def slowest(comm, seconds: float) -> float:
    from mpi4py import MPI

    return comm.allreduce(seconds, op=MPI.MAX)


def time_allreduce(comm, nbytes: int, repeats: int) -> tuple[float, float]:
    """Median (one collective, 25 MB buckets) times; the two alternate within each repeat
    so that the load of a shared machine falls on both alike."""
    collectives = dist._default_group().collectives
    flat = np.random.default_rng(comm.Get_rank()).standard_normal(nbytes // 4).astype(np.float32)
    step = BUCKET_BYTES // 4
    times = ([], [])
    for r in range(repeats + 2):  # two warm-up repeats
        for bucketed in (False, True):
            comm.Barrier()
            t0 = time.perf_counter()
            if bucketed:
                works = [collectives.start_all_reduce_(flat[i:i + step], dist.ReduceOp.SUM)
                         for i in range(0, flat.size, step)]
                for w in works:
                    w.wait()
            else:
                dist.all_reduce(Tensor(flat))
            t = slowest(comm, time.perf_counter() - t0)
            if r >= 2:
                times[bucketed].append(t)
    return float(np.median(times[0])), float(np.median(times[1]))


def idle_until_rank0(comm) -> None:
    """Wait for rank 0 without spinning on a core (MPI's blocking barrier polls)."""
    request = comm.Ibarrier()
    while not request.Test():
        time.sleep(0.002)


def training_steps(comm, batch: int, rounds: int) -> dict:
    import models

    rank, size = comm.Get_rank(), comm.Get_size()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    part = slice(rank * batch // size, (rank + 1) * batch // size)

    def make(wrap=None):
        fastconv.manual_seed(0)
        net = models.get_model("nin_cifar")
        return (net if wrap is None else DistributedDataParallel(net, bucket_cap_mb=wrap)), \
            fastconv.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)

    def step(net, opt, xs, ys):
        opt.zero_grad()
        F.cross_entropy(net(fastconv.tensor(xs)), fastconv.tensor(ys)).backward()
        opt.step()

    variants = {"one process": make() if rank == 0 else None, "2 ranks local": make(),
                "2 ranks DDP (25 MB buckets)": make(25), "2 ranks DDP (1 MB buckets)": make(1)}
    times = {k: [] for k in variants}
    cores = os.cpu_count() or 1
    for r in range(rounds + 1):  # round 0 warms up
        for name, pair in variants.items():
            if name == "one process":
                if rank == 0:
                    fastconv.set_num_threads(cores)
                    t0 = time.perf_counter()
                    step(*pair, x, y)
                    t = time.perf_counter() - t0
                    fastconv.set_num_threads(1)
                    comm.Ibarrier().Wait()
                else:
                    idle_until_rank0(comm)
                    t = 0.0
            else:
                comm.Barrier()
                t0 = time.perf_counter()
                step(*pair, x[part], y[part])
                t = time.perf_counter() - t0
            t = slowest(comm, t)
            if r > 0:
                times[name].append(t)
    return {k: float(np.median(v)) for k, v in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=15, help="repeats per size (5 for AlexNet)")
    p.add_argument("--rounds", type=int, default=5, help="rounds of training steps")
    p.add_argument("--batch", type=int, default=32, help="global batch of the training step")
    p.add_argument("--out", help="write the results as JSON here (rank 0)")
    args = p.parse_args()
    dist.init_process_group("mpi")
    comm = dist._default_group().comm
    rank, size = comm.Get_rank(), comm.Get_size()
    fastconv.set_num_threads(1)
    load_before = os.getloadavg()
    results = {"ranks": size, "allreduce": [], "load_before": load_before}
    for name, nbytes in SIZES:
        repeats = 5 if nbytes > 100e6 else args.repeats
        one, buckets = time_allreduce(comm, nbytes, repeats)
        results["allreduce"].append({"gradients": name, "bytes": nbytes, "one_ms": one * 1e3,
                                     "buckets_ms": buckets * 1e3,
                                     "busbw_GBps": 2 * (size - 1) / size * nbytes / one / 1e9})
    results["step_ms"] = {k: v * 1e3 for k, v in
                          training_steps(comm, args.batch, args.rounds).items()}
    results["batch"] = args.batch
    results["load_after"] = os.getloadavg()
    if rank == 0:
        print(f"{size} ranks; load average before {load_before[0]:.2f}, after "
              f"{results['load_after'][0]:.2f}")
        print("| gradients | MB | one all-reduce ms | 25 MB buckets ms | bus GB/s |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for row in results["allreduce"]:
            print(f"| {row['gradients']} | {row['bytes'] / 1e6:.1f} | {row['one_ms']:.2f} | "
                  f"{row['buckets_ms']:.2f} | {row['busbw_GBps']:.2f} |")
        print(f"\n| nin_cifar step, global batch {args.batch} | ms |")
        print("| --- | ---: |")
        for k, v in results["step_ms"].items():
            print(f"| {k} | {v:.1f} |")
        if args.out:
            with open(args.out, "w") as f:
                json.dump(results, f, indent=1)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
