"""Training you can trust: dead and collapsed networks are caught, non-finite weights are
never checkpointed, a finished run is never overwritten silently, every stop signal saves
(and kill -9 leaves a loadable checkpoint), and command-line errors name what to change.
The training programs run for real: train() on generated image folders, and the CLI in
subprocesses for the signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("PIL")

import fastconv
from fastconv import checkpoint as ck
from fastconv import nn
from models import evaluate as evaluate_cli
from models import predict as predict_cli
from models import registry
from models import train_cifar
from models.train_cifar import DEAD_AFTER_BATCHES, DeadNetworkError, evaluate_model, train
from test_train import TinyNet, base_config, make_folder, quiet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTCONV_CACHE", str(tmp_path / "cache"))


class ReluLogits(TinyNet):
    """TinyNet with a ReLU on its logits, and a bias that puts them all below zero: dead."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.fc.bias.data[...] = -1e3
        self.out_relu = nn.ReLU()

    def forward(self, x):
        out = super().forward(x)
        return self.out_relu(out)


class EvalConstant(TinyNet):
    """Learns in training mode; in eval mode its logits ignore the input."""

    def forward(self, x):
        out = super().forward(x)
        return out * 0.0 + 0.5 if not self.training else out


class EvalOneClass(TinyNet):
    """In eval mode class 1 always wins, by a margin that varies with the input."""

    def forward(self, x):
        out = super().forward(x)
        if self.training:
            return out
        boost = np.zeros((1, out.shape[1]), np.float32)
        boost[0, 1] = 100.0
        return out + fastconv.tensor(boost)


class NaNAfter(TinyNet):
    """An unused weight turns NaN after ``after`` training steps (the loss stays finite)."""

    def __init__(self, after, **kw):
        super().__init__(**kw)
        self.extra = nn.Parameter(np.ones(3, np.float32))
        self.after, self.steps = after, 0

    def forward(self, x):
        if self.training:
            self.steps += 1
            if self.steps > self.after:
                self.extra.data[...] = np.nan
        return super().forward(x)


# ------------------------------------------------------------------------------------------------
# dead, collapsed and diverged networks
# ------------------------------------------------------------------------------------------------

def test_dead_network_stops_in_the_first_epoch(tmp_path, rng):
    data = make_folder(tmp_path / "d", rng, per_class=2 * DEAD_AFTER_BATCHES, size=10)
    out = tmp_path / "r"
    with pytest.raises(DeadNetworkError) as e:
        train(base_config(data, out, epochs=3, ema_decay=0.0, label_smoothing=0.0),
              model=ReluLogits(), log=quiet)
    msg = str(e.value)
    assert f"last {DEAD_AFTER_BATCHES} training batches" in msg and "epoch 1" in msg
    assert "ln 3" in msg and "ReLU on the logits" in msg and "--lr" in msg
    assert not os.path.exists(out / "last.npz")  # nothing of the dead run is kept as a result


def test_dead_validation_pass_is_an_error_and_one_class_a_warning(tmp_path, rng):
    data = make_folder(tmp_path / "d", rng, per_class=4, size=10)
    out = tmp_path / "dead"
    with pytest.raises(DeadNetworkError, match="validation images after epoch 1"):
        train(base_config(data, out, ema_decay=0.0), model=EvalConstant(), log=quiet)
    assert not os.path.exists(out / "last.npz")

    logs = []
    res = train(base_config(data, tmp_path / "one", epochs=2, ema_decay=0.0),
                model=EvalOneClass(), log=logs.append)
    warned = [m for m in logs if "collapsed onto one class" in m]
    assert len(warned) == 2 and "'green'" in warned[0]  # once per epoch; class 1 is green
    assert res["history"][0]["val_top1"] == pytest.approx(100.0 / 3)  # one image per class


def test_nan_scores_are_never_correct_in_evaluation(rng):
    class HalfNaN(nn.Module):
        def forward(self, x):
            n = x.shape[0]
            z = np.zeros((n, 3), np.float32)
            z[::2] = np.nan
            return fastconv.tensor(z)

    x = rng.random((10, 3, 4, 4)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    ev = evaluate_model(HalfNaN(), [(x, y)], "cpu", 3)
    # odd rows: constant scores predict class 0; even rows: no prediction
    assert ev["top1"] == pytest.approx(100.0 * np.sum(y[1::2] == 0) / len(y))
    assert ev["no_prediction"].tolist() == np.bincount(y[::2], minlength=3).tolist()
    assert ev["confusion"].sum() == 5 and ev["confusion"][:, 0].sum() == 5
    text = evaluate_cli.format_confusion(ev["confusion"], ["a", "b", "c"], ev["no_prediction"])
    assert "NaN" in text.splitlines()[1]


def test_non_finite_weights_are_never_checkpointed(tmp_path, rng):
    data = make_folder(tmp_path / "d", rng, per_class=5, size=10)  # 12 training images
    out = tmp_path / "r"
    cfg = base_config(data, out, epochs=3, ema_decay=0.0)  # 3 batches an epoch
    with pytest.raises(FloatingPointError, match="not writing last.npz: weight extra"):
        train(cfg, model=NaNAfter(after=4), log=quiet)
    last = ck.load_checkpoint(str(out / "last.npz"))  # epoch 1's, intact and finite
    assert last["epoch"] == 1
    assert np.all(np.isfinite(last["model"]["extra"]))


# ------------------------------------------------------------------------------------------------
# run folders
# ------------------------------------------------------------------------------------------------

def _snapshot(folder):
    return {f: (folder / f).read_bytes() for f in sorted(os.listdir(folder))}


def test_a_finished_run_is_never_overwritten_silently(tmp_path, rng, capsys):
    data = make_folder(tmp_path / "d", rng, per_class=3, size=28)
    out = tmp_path / "run"
    args = ["--model", "cifar10_tutorial", "--epochs", "1", "--batch-size", "3", "--data", data,
            "--out", str(out), "--val-per-class", "1", "--workers", "1", "--no-progress"]
    assert train_cifar.main(args) == 0
    before = _snapshot(out)
    capsys.readouterr()
    assert train_cifar.main(args + ["--lr", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err and "--overwrite" in err
    assert _snapshot(out) == before  # nothing changed
    assert train_cifar.main(args + ["--epochs", "2", "--overwrite"]) == 0
    last = ck.load_checkpoint(str(out / "last.npz"))
    assert last["epoch"] == 2 and "overwrite" not in last["config"]
    # an empty or unrelated folder is fine
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert train_cifar.main(args[:-3] + ["--out", str(tmp_path / "other"), "--workers", "1",
                                         "--no-progress"]) == 0
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


# ------------------------------------------------------------------------------------------------
# signals: SIGTERM and Ctrl-C save, a second signal stops at once, kill -9 keeps the last save
# ------------------------------------------------------------------------------------------------

def _start(args, cwd):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "models.train_cifar", *args], cwd=cwd,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path, proc, timeout=120):
    t0 = time.monotonic()
    while not os.path.exists(path):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.05)


def _cli_args(data, out, epochs=200):
    return ["--model", "cifar10_tutorial", "--epochs", str(epochs), "--batch-size", "4",
            "--data", data, "--out", str(out), "--val-per-class", "1", "--workers", "1",
            "--no-progress", "--no-plot"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_saves_and_says_how_to_resume(tmp_path, rng, sig):
    data = make_folder(tmp_path / "d", rng, per_class=13, size=26)  # 36 images: 9 batches
    out = tmp_path / "run"
    proc = _start(_cli_args(data, out), tmp_path)
    _wait_for(out / "last.npz", proc)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, stderr
    assert "Traceback" not in stderr
    assert signal.Signals(sig).name in stderr
    assert f"python -m models.train_cifar --out {out} --resume" in stdout
    saved = ck.load_checkpoint(str(out / "last.npz"))
    assert saved["epoch"] >= 1
    # and the run goes on from there
    proc = _start(["--out", str(out), "--resume", "--epochs", str(saved["epoch"] + 1),
                   "--no-progress"], tmp_path)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert ck.load_checkpoint(str(out / "last.npz"))["epoch"] == saved["epoch"] + 1


def test_a_second_signal_stops_at_once_without_a_traceback(tmp_path, rng):
    # The handler itself, deterministically: the first signal only sets the flag, the second
    # ends the process in the middle of a "batch".
    script = ("import os, signal, time\n"
              "from models.train_cifar import _Interrupt\n"
              "with _Interrupt() as intr:\n"
              "    os.kill(os.getpid(), signal.SIGTERM)\n"
              "    time.sleep(0.2)\n"
              "    assert intr.flag and intr.signum == signal.SIGTERM\n"
              "    print('first handled', flush=True)\n"
              "    os.kill(os.getpid(), signal.SIGINT)\n"
              "    time.sleep(30)\n"
              "print('not reached')\n")
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=ROOT), timeout=60)
    assert time.monotonic() - t0 < 20  # at once, not after the "batch"
    assert res.returncode == 128 + signal.SIGINT
    assert res.stdout == "first handled\n"
    assert "Traceback" not in res.stderr and "SIGINT again: stopping now" in res.stderr
    # A real run: whichever way the two signals land, no traceback and an intact checkpoint.
    data = make_folder(tmp_path / "d", rng, per_class=13, size=26)
    out = tmp_path / "run"
    proc = _start(_cli_args(data, out), tmp_path)
    _wait_for(out / "last.npz", proc)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    # 143 from the handler; -15 when the second signal came after training had already
    # saved and restored the default handler (the process is then ending anyway)
    assert proc.returncode in (128 + signal.SIGTERM, -signal.SIGTERM)
    assert "Traceback" not in stderr
    ck.load_checkpoint(str(out / "last.npz"))


def test_kill_9_at_any_moment_leaves_a_loadable_checkpoint(tmp_path, rng):
    # Short epochs (one batch), so that checkpoints are written back to back and the kills,
    # each a random moment after a fresh save, land in the middle of writes too.
    data = make_folder(tmp_path / "d", rng, per_class=3, size=26)  # 6 images: 1 batch of 4
    out = tmp_path / "run"
    last = out / "last.npz"
    kills = np.random.default_rng(int(rng.integers(1 << 30))).uniform(0.0, 0.4, size=6)
    epochs_seen = []
    for k, delay in enumerate(kills):
        args = _cli_args(data, out, epochs=10_000)
        if k:
            args = ["--out", str(out), "--resume", "--no-progress"]
        before = last.stat().st_mtime_ns if last.exists() else None
        proc = _start(args, tmp_path)
        t0 = time.monotonic()
        while not last.exists() or last.stat().st_mtime_ns == before:  # this run has saved
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() - t0 < 120, "no checkpoint written"
            time.sleep(0.01)
        time.sleep(delay)
        proc.kill()
        proc.wait()
        saved = ck.load_checkpoint(str(last))
        model = train_cifar.build_model(saved["config"], num_classes=3)
        ck.load_model_state(model, saved["model"])
        assert all(np.all(np.isfinite(v)) for v in model.state_dict().values())
        epochs_seen.append(saved["epoch"])
    # each run resumed from the one before and got further
    assert all(b > a for a, b in zip(epochs_seen, epochs_seen[1:])), epochs_seen


# ------------------------------------------------------------------------------------------------
# errors a command-line user can act on; checkpoints of custom models
# ------------------------------------------------------------------------------------------------

def test_model_options_and_usage_errors(tmp_path, rng, capsys):
    data = make_folder(tmp_path / "d", rng, per_class=2, size=28)
    common = ["--data", data, "--out", str(tmp_path / "r"), "--val-per-class", "1"]
    assert train_cifar.main(["--model", "cifar10_tutorial", "--model-opt", "dropout=0.5",
                             *common]) == 2
    err = capsys.readouterr().err
    assert "--model-opt dropout" in err and "its options: none" in err
    assert "Traceback" not in err
    assert train_cifar.main(["--model", "nin_cifar", "--model-opt", "dropuot=0.2", *common]) == 2
    assert "its options: dropout, final_relu" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "r")  # refused before anything was written
    usage = train_cifar.build_parser().format_usage()
    assert "--model MODEL --data DATA --out RUN_DIR" in usage  # required: not in brackets
    assert "[--model" not in usage


def test_checkpoints_of_custom_models(tmp_path, rng, capsys, monkeypatch):
    data = make_folder(tmp_path / "d", rng, per_class=3, size=12)
    out = tmp_path / "r"
    train(base_config(data, out, epochs=1), model=TinyNet(), log=quiet)
    img = os.path.join(data, "red", "000.png")
    for cli, extra in ((evaluate_cli, ["--data", data]), (predict_cli, [img])):
        assert cli.main(["--checkpoint", str(out / "last.npz"), *extra]) == 2
        err = capsys.readouterr().err
        assert "'TinyNet' was passed to train(config, model=...)" in err
        assert "--model NAME" in err and "evaluate_model(model, loader)" in err
        # a registered model whose layout differs: said so, no traceback
        assert cli.main(["--checkpoint", str(out / "last.npz"), "--model", "nin_cifar",
                         *extra]) == 2
        assert "do not fit --model nin_cifar" in capsys.readouterr().err
    # registered under a name (for this test only), it rebuilds with --model and --model-opt
    monkeypatch.setitem(registry._REGISTRY, "tiny_test_net", registry.ModelSpec(
        "tiny_test_net", lambda num_classes=3, **kw: TinyNet(num_classes, **kw), (3, 12, 12), 3,
        "test model"))
    assert evaluate_cli.main(["--checkpoint", str(out / "last.npz"), "--data", data,
                              "--model", "tiny_test_net", "--model-opt", "bn=true"]) == 0
    assert "top-1:" in capsys.readouterr().out
    assert predict_cli.main(["--checkpoint", str(out / "last.npz"), "--model",
                             "tiny_test_net", img]) == 0
    assert capsys.readouterr().out.startswith(img)
