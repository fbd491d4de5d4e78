"""models.train_cifar data parallel: ``mpirun -np 2 python -m models.train_cifar ...`` on a
tiny generated image folder (the registered cifar10_tutorial: a registry entry patched in this
process would not reach the ranks), its checkpoint resumed on one process, and the 2-rank step
against the 1-process step on the same global batch. The sharded loader is checked without
MPI. The MPI tests skip, saying why, without mpi4py or mpirun."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PIL")

from fastconv import checkpoint as ck
from fastconv.data import DataLoader
from models import train_cifar

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_distributed import _check_ok, _mpirun_command, _run_ranks  # the launcher helpers
from test_train import make_folder

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTCONV_CACHE", str(tmp_path / "cache"))


def _train_on_ranks(args, np_=2, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    argv = _mpirun_command() + ["-np", str(np_), sys.executable, "-m", "models.train_cifar",
                                *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=REPO, check=False)
    assert proc.returncode == 0, f"mpirun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


# ---- no MPI: the sharded loader -----------------------------------------------------------------
class _Indices:
    """A dataset whose images are their own indices."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return np.full((1,), i, np.int64), i


def test_sharded_loader_splits_each_global_batch():
    ds = _Indices(23)
    whole = DataLoader(ds, batch_size=6, shuffle=True, seed=3, drop_last=True, num_workers=0)
    shards = [DataLoader(ds, batch_size=3, shuffle=True, seed=3, drop_last=True, num_workers=0,
                         num_replicas=2, rank=r) for r in range(2)]
    assert len(whole) == len(shards[0]) == 3 and shards[0].global_batch_size == 6
    for epoch in (0, 1):
        ys = [[y for _, y in s.iter_epoch(epoch)] for s in shards]
        for b, (_, y) in enumerate(whole.iter_epoch(epoch)):
            np.testing.assert_array_equal(np.concatenate([ys[0][b], ys[1][b]]), y)
        late = [y for _, y in shards[1].iter_epoch(epoch, start_batch=2)]
        np.testing.assert_array_equal(late[0], ys[1][2])
    with pytest.raises(ValueError):
        DataLoader(ds, batch_size=2, num_replicas=2, rank=2)


def test_world_size_from_the_launcher(monkeypatch):
    for var in train_cifar._WORLD_SIZE_VARS:
        monkeypatch.delenv(var, raising=False)
    assert train_cifar.launched_world_size() == 1
    monkeypatch.setenv("PMI_SIZE", "3")
    assert train_cifar.launched_world_size() == 3


def test_help_states_the_learning_rate_rule(capsys):
    with pytest.raises(SystemExit):
        train_cifar.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--distributed" in text and "unchanged" in text and "--lr x N" in text


# ---- 2 ranks -----------------------------------------------------------------------------------
def test_two_rank_cli_run_then_resume_on_one_process(tmp_path, rng, capsys):
    data = make_folder(tmp_path / "data", rng, per_class=4, size=28)
    out = tmp_path / "run"
    proc = _train_on_ranks(["--model", "cifar10_tutorial", "--data", data, "--out", str(out),
                            "--epochs", "1", "--batch-size", "2", "--val-per-class", "1",
                            "--workers", "1", "--no-progress", "--cache-dir", "none"])
    # 9 training images, global batch 2 x 2: 2 steps; 3 validation images over 2 shards
    assert proc.stdout.count("epoch 1/2") == 0 and proc.stdout.count("epoch 1/1") == 1
    assert "data parallel on 2 ranks, global batch 4 (2 x 2)" in proc.stdout
    assert sorted(os.listdir(out)) == ["best.npz", "config.json", "curves.png", "history.csv",
                                       "last.npz"]  # one set of files, no temporaries left
    last = ck.load_checkpoint(str(out / "last.npz"))
    assert last["config"]["world_size"] == 2 and last["step"] == 2
    assert last["history"][0]["val_top5"] == 100.0  # all 3 validation images counted
    # the same run folder goes on in one process
    code = train_cifar.main(["--out", str(out), "--resume", "--epochs", "2", "--workers", "1",
                             "--no-progress", "--no-plot"])
    assert code == 0
    text = capsys.readouterr().out
    assert "written by 2 rank(s), this run has 1" in text and "epoch 2/2" in text
    last = ck.load_checkpoint(str(out / "last.npz"))
    # one process, global batch 2: 4 steps per epoch; the schedule's clock is re-counted so
    # epoch 1 counts as 4 steps
    assert last["epoch"] == 2 and last["step"] == 4 + 4
    assert last["config"]["world_size"] == 1


def test_two_rank_step_equals_one_process_step_on_the_global_batch(tmp_path, rng):
    """cifar10_tutorial has no batch norm and no dropout, and augment none draws nothing, so
    the ranks' halves of global batch 0 give gradients whose average is the global batch's
    mean gradient. Only float32 rounding differs (two means of 2 averaged vs one mean of 4,
    the allreduce, and a convolution's sums, which are not the same for a batch of 2 and of
    4). Near zero such a difference can flip a ReLU or the winner of a max pool, which moves
    a few gradient terms by far more than rounding, so each tensor is compared as a whole,
    within 1e-3 of its own norm: the gradients, and the weights (the same initial weights,
    one step; a zero-initialised bias is the gradient times -lr). A wrong average (a sum,
    one rank's half) puts the gradients off by 1e-2 or more."""
    data = make_folder(tmp_path / "data", rng, per_class=4, size=24)
    common = ["--model", "cifar10_tutorial", "--data", data, "--epochs", "1",
              "--limit-batches", "1", "--val-per-class", "0", "--augment", "none",
              "--optimizer", "sgd", "--lr", "0.1", "--warmup-epochs", "0", "--ema-decay", "0",
              "--workers", "1", "--no-progress", "--no-plot", "--cache-dir", "none"]
    _train_on_ranks(common + ["--batch-size", "2", "--out", str(tmp_path / "two")])
    assert train_cifar.main(common + ["--batch-size", "4", "--out", str(tmp_path / "one")]) == 0
    two = ck.load_checkpoint(str(tmp_path / "two" / "last.npz"))
    one = ck.load_checkpoint(str(tmp_path / "one" / "last.npz"))

    def relative_difference(a, b):
        return float(np.linalg.norm(a - b) / np.linalg.norm(b))

    assert set(two["model"]) == set(one["model"])
    for k in one["model"]:
        assert relative_difference(two["model"][k], one["model"][k]) < 1e-3, k
    # after one step SGD's momentum buffer is the (decayed) gradient itself: compare it too,
    # and make sure it is not trivially small
    g2, g1 = two["optimizer"]["state"], one["optimizer"]["state"]
    assert set(g2) == set(g1)
    for i in g1:
        a, b = g2[i]["momentum_buffer"], g1[i]["momentum_buffer"]
        assert float(np.max(np.abs(b))) > 1e-6
        assert relative_difference(a, b) < 1e-3, f"grad {i}"


def test_the_run_joins_nccl_for_gpus_and_mpi_for_cpus(tmp_path):
    """A GPU run's process group is NCCL (the gradients stay on the GPUs; here through the CPU
    stand-in of CuPy and NCCL), a CPU run's is MPI; the run's own sums go over MPI either
    way, and the rank is known before the group exists (rank 0 claims the run folder)."""
    body = f"""
        sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
        import nccl_emulation
        nccl_emulation.install(devices=2)
        import cupy
        from models.train_cifar import _Comm
        comm = _Comm(True)
        out = {{"rank": comm.rank, "size": comm.size, "before": dist.is_initialized()}}
        comm.join(sys.argv[2])
        out["backend"] = dist.get_backend()
        out["gpu"] = cupy.cuda.Device().id
        out["sum"] = comm.sum([comm.rank + 1.0, 2.5]).tolist()
        out["max"] = comm.max([comm.rank * 3.0]).tolist()
        comm.barrier()
        report(out)
    """
    for device, backend in (("cuda", "nccl"), ("cpu", "mpi")):
        folder = tmp_path / device
        folder.mkdir()
        proc, results = _run_ranks(folder, body.replace("sys.argv[2]", repr(device)))
        _check_ok(proc)
        for rank, out in enumerate(results):
            assert out["rank"] == rank and out["size"] == 2 and not out["before"]
            assert out["backend"] == backend
            assert out["sum"] == [3.0, 5.0] and out["max"] == [3.0]
        if device == "cuda":  # each rank on the GPU of its local rank
            assert [out["gpu"] for out in results] == [0, 1]


def test_an_error_on_rank_0_before_the_group_exists_ends_the_job(tmp_path, rng):
    """Rank 0 alone claims the run folder; when it refuses (a run is there already), the other
    rank, already waiting to join the process group, is ended too: no hang."""
    data = make_folder(tmp_path / "data", rng, per_class=2, size=24)
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    argv = _mpirun_command() + ["-np", "2", sys.executable, "-m", "models.train_cifar",
                                "--model", "cifar10_tutorial", "--data", data, "--out",
                                str(out), "--epochs", "1", "--no-progress", "--cache-dir",
                                "none"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env,
                          cwd=REPO, check=False)
    assert proc.returncode != 0
    assert "error:" in proc.stderr and "--overwrite" in proc.stderr, proc.stderr[-2000:]


def _signal_rank_1(tmp_path, rng, signame: str, after_file: str, delay: float):
    """Start a 2-rank training job (endless epochs) whose rank 1 sends itself ``signame``
    ``delay`` seconds after the run folder holds ``after_file`` (so after start-up, however
    long the load makes it). Returns (Popen, run folder)."""
    data = make_folder(tmp_path / "data", rng, per_class=4, size=24)
    out = tmp_path / "run"
    job = tmp_path / "job.py"
    job.write_text(
        "import os, signal, sys, threading, time\n"
        "from models import train_cifar\n"
        "def signal_later():\n"
        f"    path = os.path.join(sys.argv[sys.argv.index('--out') + 1], {after_file!r})\n"
        "    while not os.path.exists(path):\n"
        "        time.sleep(0.05)\n"
        f"    time.sleep({delay})\n"
        f"    os.kill(os.getpid(), signal.{signame})\n"
        "if os.environ.get('OMPI_COMM_WORLD_RANK', os.environ.get('PMI_RANK')) == '1':\n"
        "    threading.Thread(target=signal_later, daemon=True).start()\n"
        "sys.exit(train_cifar.main(sys.argv[1:]))\n")
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    argv = _mpirun_command() + ["-np", "2", sys.executable, str(job), "--model",
                                "cifar10_tutorial", "--data", data, "--out", str(out),
                                "--epochs", "100000", "--batch-size", "2", "--val-per-class",
                                "1", "--augment", "none", "--workers", "1", "--no-progress",
                                "--no-plot", "--cache-dir", "none"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=REPO)
    return proc, out


def test_sigterm_on_one_rank_stops_both_after_one_checkpoint(tmp_path, rng):
    """Rank 1 alone gets SIGTERM (a second after training set up its run folder): every rank
    stops after the batch, rank 0 writes last.npz once, and both exit with 128 + SIGTERM."""
    proc, out = _signal_rank_1(tmp_path, rng, "SIGTERM", "config.json", 1.0)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 143, f"{stdout[-2000:]}\n{stderr[-2000:]}"
    assert stderr.count("SIGTERM: saving a checkpoint") == 1  # rank 1 only got it
    assert stdout.count("continue with:") == 1  # one rank wrote, once
    last = ck.load_checkpoint(str(out / "last.npz"))
    assert 0 < last["step"] < 100000


def test_sync_bn_two_rank_step_equals_one_process_step(tmp_path, rng):
    """--sync-bn on a batch-norm network (inception_small without dropout): the 2-rank step
    on halves of global batch 0 equals the 1-process step on the whole batch up to float
    sums, running statistics included; the option is stored in the run's configuration, so
    --resume keeps it. Ten batch-norm layers over a batch of 4 (dx subtracts the batch means
    of dy: cancellation) carry the float32 rounding of the other summation order to a few
    1e-6 of each gradient's scale (measured: at most 1.4e-5), so the tolerances are the
    project's float32 ones, rtol 1e-4 / atol 1e-5."""
    data = make_folder(tmp_path / "data", rng, per_class=4, size=16)
    common = ["--model", "inception_small", "--model-opt", "input_size=16",
              "--model-opt", "dropout=0", "--model-opt", "spatial_dropout=0",
              "--data", data, "--input-size", "16", "--epochs", "1", "--limit-batches", "1",
              "--val-per-class", "0", "--augment", "none", "--optimizer", "sgd", "--lr", "0.1",
              "--warmup-epochs", "0", "--ema-decay", "0", "--workers", "1", "--no-progress",
              "--no-plot", "--cache-dir", "none"]
    _train_on_ranks(common + ["--batch-size", "2", "--sync-bn", "--out", str(tmp_path / "two")])
    assert train_cifar.main(common + ["--batch-size", "4", "--out", str(tmp_path / "one")]) == 0
    two = ck.load_checkpoint(str(tmp_path / "two" / "last.npz"))
    one = ck.load_checkpoint(str(tmp_path / "one" / "last.npz"))
    assert two["config"]["sync_bn"] is True and one["config"]["sync_bn"] is False
    assert any("running_var" in k for k in one["model"])
    for k in one["model"]:
        np.testing.assert_allclose(two["model"][k], one["model"][k], rtol=1e-4, atol=1e-5,
                                   err_msg=k)
    g2, g1 = two["optimizer"]["state"], one["optimizer"]["state"]
    for i in g1:  # after one step the momentum buffer is the gradient
        a, b = g2[i]["momentum_buffer"], g1[i]["momentum_buffer"]
        scale = float(np.max(np.abs(b)))
        assert scale > 1e-6
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * scale, err_msg=f"grad {i}")


def test_a_rank_killed_mid_run_ends_the_job_in_bounded_time(tmp_path, rng):
    """Rank 1 is killed (SIGKILL: no handler, no MPI_Abort) while training, half a second
    after the first epoch is logged; rank 0, left in its next collective, must not hang:
    mpirun sees the death and ends the job with an error."""
    import time

    proc, out = _signal_rank_1(tmp_path, rng, "SIGKILL", "history.csv", 0.5)
    deadline = time.monotonic() + 120
    while not (out / "history.csv").exists() and proc.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    start = time.monotonic()  # the kill comes half a second after this
    stdout, stderr = proc.communicate(timeout=120)
    elapsed = time.monotonic() - start
    assert proc.returncode != 0, f"{stdout[-2000:]}\n{stderr[-2000:]}"
    assert "signal 9" in stdout + stderr or "Killed" in stdout + stderr
    assert "epoch 1/100000" in stdout  # it was training when the rank died
    assert elapsed < 60
