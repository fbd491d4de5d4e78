"""models.train_cifar / evaluate / predict on tiny generated datasets: the CLI end to end,
bit-exact resume (at an epoch boundary and mid-epoch), fine-tuning with a frozen
backbone, auxiliary losses, early stopping, and clear errors for bad input."""

from __future__ import annotations

import csv
import os
import re

import numpy as np
import pytest

pytest.importorskip("PIL")
from PIL import Image

import fastconv
from fastconv import checkpoint as ck
from fastconv import nn
from models import evaluate as evaluate_cli
from models import predict as predict_cli
from models import train_cifar
from models.train_cifar import train


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """The command-line tools cache decoded images; keep that inside the test's folder."""
    monkeypatch.setenv("FASTCONV_CACHE", str(tmp_path / "cache"))


COLOURS = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200)}


def make_folder(root, rng, per_class=6, size=12, classes=("red", "green", "blue")):
    """Noisy single-colour images: learnable in a few steps."""
    for c in classes:
        os.makedirs(os.path.join(root, c), exist_ok=True)
        for k in range(per_class):
            a = np.clip(rng.normal(COLOURS[c], 50, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(a).save(os.path.join(root, c, f"{k:03d}.png"))
    return str(root)


class TinyNet(nn.Module):
    """conv-BN-ReLU-dropout-pool-linear, optionally with an auxiliary head (tuple output
    in training mode, as GoogLeNet)."""

    def __init__(self, num_classes=3, aux=False, bn=True):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4) if bn else nn.Identity()
        self.relu = nn.ReLU()
        self.drop = nn.Dropout(0.3)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(16, num_classes)
        self.aux = nn.Linear(16, num_classes) if aux else None

    def forward(self, x):
        h = self.flat(self.pool(self.drop(self.relu(self.bn(self.conv(x))))))
        if self.aux is not None and self.training:
            return self.fc(h), self.aux(h)
        return self.fc(h)


def base_config(data, out, **kw):
    cfg = {"data": data, "out": str(out), "epochs": 3, "batch_size": 4, "val_per_class": 1,
           "lr": 0.05, "optimizer": "sgd", "momentum": 0.9, "nesterov": True,
           "weight_decay": 1e-3, "schedule": "cosine", "warmup_epochs": 1.0,
           "label_smoothing": 0.1, "ema_decay": 0.9, "clip_grad": 5.0, "augment": "crop-flip",
           "input_size": 10, "workers": 2, "seed": 5, "progress": False, "plot": False}
    cfg.update(kw)
    return cfg


def seeded_net(seed=7, **kw):
    """The same initial weights every time (a model passed to train() is built by the caller)."""
    fastconv.manual_seed(seed)
    return TinyNet(**kw)


def weights(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def quiet(*a, **k):
    pass


# ------------------------------------------------------------------------------------------------
# bit-exact resume
# ------------------------------------------------------------------------------------------------

def test_resume_is_bit_exact(tmp_path, rng):
    data = make_folder(tmp_path / "data", rng, per_class=5)  # 12 training images: 3 batches
    ref = train(base_config(data, tmp_path / "a"), model=seeded_net(), log=quiet)
    assert ref["stopped"] == "complete" and ref["epochs_done"] == 3
    w_ref = weights(ref["model"])

    # stop after epoch 1, resume into a freshly built (differently initialised) model
    first = train(base_config(data, tmp_path / "b", stop_after_epochs=1), model=seeded_net(),
                  log=quiet)
    assert first["stopped"] == "stop_after_epochs" and first["epochs_done"] == 1
    fastconv.manual_seed(12345)  # whatever happened to the generator in between
    rest = train({"out": str(tmp_path / "b"), "resume": True}, model=TinyNet(), log=quiet)
    assert rest["stopped"] == "complete" and rest["epochs_done"] == 3
    for k, v in weights(rest["model"]).items():
        np.testing.assert_array_equal(v, w_ref[k], err_msg=k)
    assert len(rest["history"]) == 3
    for a, b in zip(rest["history"], ref["history"], strict=True):  # same losses, bit for bit
        assert a["train_loss"] == b["train_loss"] and a["val_loss"] == b["val_loss"]

    # interrupted in the middle of epoch 2 (as Ctrl-C does), then resumed
    mid = train(base_config(data, tmp_path / "c"), model=seeded_net(), log=quiet,
                _interrupt_after_steps=4)
    assert mid["stopped"] == "interrupted"
    saved = ck.load_checkpoint(str(tmp_path / "c" / "last.npz"))
    assert saved["position"] == {"epoch": 1, "batch": 1} and saved["step"] == 4
    rest = train({"out": str(tmp_path / "c"), "resume": True}, model=TinyNet(), log=quiet)
    for k, v in weights(rest["model"]).items():
        np.testing.assert_array_equal(v, w_ref[k], err_msg=k)
    # the EMA weights too
    e_ref = ck.load_checkpoint(str(tmp_path / "a" / "last.npz"))["ema"]["shadow"]
    e_res = ck.load_checkpoint(str(tmp_path / "c" / "last.npz"))["ema"]["shadow"]
    for k in e_ref:
        np.testing.assert_array_equal(e_ref[k], e_res[k])
    # resuming a finished run does nothing
    done = train({"out": str(tmp_path / "c"), "resume": True}, model=TinyNet(), log=quiet)
    assert done["stopped"] == "complete" and done["history"] == rest["history"]


# ------------------------------------------------------------------------------------------------
# the command line, end to end
# ------------------------------------------------------------------------------------------------

def test_cli_two_epochs_then_evaluate_and_predict(tmp_path, rng, capsys):
    data = make_folder(tmp_path / "data", rng, per_class=3, size=28)
    out = tmp_path / "run"
    code = train_cifar.main(["--model", "cifar10_tutorial", "--epochs", "2", "--batch-size", "3",
                             "--optimizer", "adam", "--lr", "0.001", "--device", "cpu",
                             "--data", data, "--out", str(out), "--val-per-class", "1",
                             "--workers", "1"])
    assert code == 0
    text = capsys.readouterr()
    assert "epoch 2/2" in text.out and "img/s" in text.out
    assert "epoch 1/2" in text.err  # the progress bar
    assert sorted(os.listdir(out)) == ["best.npz", "config.json", "curves.png", "history.csv",
                                       "last.npz"]
    assert len(os.listdir(tmp_path / "cache")) == 1  # the decoded images, for the next run
    with open(out / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert set(train_cifar.CSV_FIELDS) <= set(rows[0])
    for r in rows:
        for k in ("train_loss", "val_loss", "val_top1", "val_top5", "images_per_s"):
            assert np.isfinite(float(r[k]))
        assert float(r["val_top5"]) == 100.0  # three classes
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    last = ck.load_checkpoint(str(out / "last.npz"))
    assert last["epoch"] == 2 and last["config"]["model"] == "cifar10_tutorial"
    assert last["config"]["input_size"] == 24 and last["config"]["augment"] == "tutorial"
    assert last["config"]["classes"] == ["blue", "green", "red"]
    assert "ema" in last  # the tutorial's recipe averages the weights
    assert last["optimizer"]["state"][0]["step"] == 4  # 2 epochs x 2 batches, Adam's counter

    assert evaluate_cli.main(["--checkpoint", str(out / "last.npz"), "--data", data]) == 0
    text = capsys.readouterr().out
    assert re.search(r"^top-1: \d+\.\d\d%$", text, re.MULTILINE)
    assert re.search(r"^top-5: 100\.00%$", text, re.MULTILINE)
    assert "3 images: validation split" in text
    matrix = [line.split() for line in text.splitlines()  # the header line starts with blanks
              if line[:1].strip() and line.split()[0] in ("blue", "green", "red")]
    counts = np.array([[int(v) for v in row[1:4]] for row in matrix])
    assert counts.shape == (3, 3) and counts.sum() == 3 and list(counts.sum(axis=1)) == [1, 1, 1]
    assert evaluate_cli.main(["--checkpoint", str(out / "last.npz"), "--data", data,
                              "--split", "all"]) == 0
    assert "9 images: all images" in capsys.readouterr().out

    imgs = [os.path.join(data, "red", "000.png"), os.path.join(data, "blue", "001.png")]
    assert predict_cli.main(["--checkpoint", str(out / "best.npz"), *imgs]) == 0
    text = capsys.readouterr().out
    blocks = text.strip().split("\n")
    assert blocks[0] == imgs[0] and blocks[4] == imgs[1]
    probs = [float(line.split()[1].rstrip("%")) for line in blocks[1:4]]
    assert sorted(probs, reverse=True) == probs and abs(sum(probs) - 100) < 0.05
    assert {line.split()[0] for line in blocks[1:4]} == {"red", "green", "blue"}


def test_evaluate_validates_as_the_run_did_in_bf16(tmp_path, rng, capsys):
    """A --precision bf16 run validated under autocast: models.evaluate does the same by
    default (the logged loss again), and --precision fp32 evaluates without it."""
    data = make_folder(tmp_path / "data", rng, per_class=4, size=28)
    out = tmp_path / "run"
    assert train_cifar.main(["--model", "cifar10_tutorial", "--epochs", "1", "--batch-size",
                             "3", "--data", data, "--out", str(out), "--val-per-class", "2",
                             "--workers", "1", "--precision", "bf16", "--no-progress",
                             "--no-plot"]) == 0
    capsys.readouterr()
    with open(out / "history.csv") as f:
        logged = float(list(csv.DictReader(f))[-1]["val_loss"])
    assert evaluate_cli.main(["--checkpoint", str(out / "last.npz"), "--data", data]) == 0
    text = capsys.readouterr().out
    assert "bf16 autocast" in text.splitlines()[0]
    # (batches of 256 here, of 6 in the run: the mean's float sums differ in the last digit)
    assert abs(float(re.search(r"^loss: (\S+)$", text, re.MULTILINE).group(1)) - logged) < 2e-4
    assert evaluate_cli.main(["--checkpoint", str(out / "last.npz"), "--data", data,
                              "--precision", "fp32"]) == 0
    assert "autocast" not in capsys.readouterr().out.splitlines()[0]


def test_help_documents_every_option(capsys):
    parser = train_cifar.build_parser()
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, f"{action.option_strings} has no help"
    with pytest.raises(SystemExit):
        train_cifar.main(["--help"])
    text = capsys.readouterr().out
    for opt in ("--model", "--epochs", "--batch-size", "--optimizer", "--lr", "--device",
                "--data", "--out", "--resume", "--label-smoothing", "--aux-weight",
                "--ema-decay", "--early-stop", "--clip-grad", "--init-from",
                "--freeze-backbone", "--val-per-class", "--schedule", "--warmup-epochs"):
        assert opt in text
    assert train_cifar.main(["--list-models"]) == 0
    assert "cifar10_tutorial" in capsys.readouterr().out


def test_cli_rejects_bad_input_clearly(tmp_path, rng, capsys):
    assert train_cifar.main(["--model", "cifar10_tutorial", "--data",
                             str(tmp_path / "absent"), "--out", str(tmp_path / "r")]) == 2
    assert "does not exist" in capsys.readouterr().err
    data = make_folder(tmp_path / "d", rng, per_class=2)
    assert train_cifar.main(["--model", "cifar10_tutorial", "--data", data, "--out",
                             str(tmp_path / "r"), "--val-per-class", "5"]) == 2
    assert "cannot hold back" in capsys.readouterr().err
    assert train_cifar.main(["--out", str(tmp_path / "nothing"), "--resume"]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert train_cifar.main(["--model", "no_such_net", "--data", data, "--out",
                             str(tmp_path / "r2"), "--val-per-class", "1"]) != 0
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 truncated")
    assert evaluate_cli.main(["--checkpoint", str(tmp_path / "junk.npz"), "--data", data]) == 2
    assert "truncated" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# fine-tuning, auxiliary losses, early stopping
# ------------------------------------------------------------------------------------------------

def test_init_from_with_frozen_backbone(tmp_path, rng):
    data3 = make_folder(tmp_path / "three", rng, per_class=4)
    src = train(base_config(data3, tmp_path / "src", epochs=1, ema_decay=0.0), model=TinyNet(),
                log=quiet)
    src_w = weights(src["model"])
    data2 = make_folder(tmp_path / "two", rng, per_class=4, classes=("red", "blue"))
    logs = []
    net = TinyNet(num_classes=2)
    fc_start = net.fc.weight.data.copy()  # the new classifier is not loaded: it starts here
    tuned = train(base_config(data2, tmp_path / "tuned", epochs=2, ema_decay=0.0,
                              weight_decay=0.0, init_from=str(tmp_path / "src" / "last.npz"),
                              freeze_backbone=True),
                  model=net, log=logs.append)
    w = weights(tuned["model"])
    assert w["fc.weight"].shape == (2, 16)
    text = "\n".join(logs)
    assert "fc.weight" in text and "training only fc.bias, fc.weight" in text
    for k in ("conv.weight", "conv.bias", "bn.weight", "bn.bias", "bn.running_mean",
              "bn.running_var"):
        np.testing.assert_array_equal(w[k], src_w[k], err_msg=k)  # frozen, BN stats too
    assert not np.array_equal(w["fc.weight"], fc_start)  # ... and is trained
    # a resumed fine-tuning run keeps the backbone frozen
    part = train(base_config(data2, tmp_path / "part", epochs=2, ema_decay=0.0,
                             init_from=str(tmp_path / "src" / "last.npz"),
                             freeze_backbone=True, stop_after_epochs=1),
                 model=TinyNet(num_classes=2), log=quiet)
    assert part["stopped"] == "stop_after_epochs"
    rest = train({"out": str(tmp_path / "part"), "resume": True}, model=TinyNet(num_classes=2),
                 log=quiet)
    np.testing.assert_array_equal(weights(rest["model"])["conv.weight"], src_w["conv.weight"])
    # unfrozen: the backbone trains as well
    free = train(base_config(data2, tmp_path / "free", epochs=1, ema_decay=0.0,
                             init_from=str(tmp_path / "src" / "last.npz")),
                 model=TinyNet(num_classes=2), log=quiet)
    assert not np.array_equal(weights(free["model"])["conv.weight"], src_w["conv.weight"])


def test_aux_loss_weight(tmp_path, rng):
    data = make_folder(tmp_path / "d", rng, per_class=3)

    def run(weight, name):
        m = TinyNet(aux=True)
        before = weights(m)
        train(base_config(data, tmp_path / name, epochs=1, weight_decay=0.0, ema_decay=0.0,
                          aux_weight=weight), model=m, log=quiet)
        return before, weights(m)

    before, after = run(0.0, "w0")
    np.testing.assert_array_equal(before["aux.weight"], after["aux.weight"])  # no gradient
    before, after = run(0.3, "w3")
    assert not np.array_equal(before["aux.weight"], after["aux.weight"])


def test_early_stopping(tmp_path, rng):
    data = make_folder(tmp_path / "d", rng, per_class=3)
    res = train(base_config(data, tmp_path / "r", epochs=6, lr=0.0, warmup_epochs=0.0,
                            ema_decay=0.0, early_stop=2), model=TinyNet(bn=False), log=quiet)
    # nothing changes the weights (rate 0, no batch-norm statistics): epoch 1 is never
    # beaten, so epochs 2 and 3 are the two without improvement
    assert len({r["val_loss"] for r in res["history"]}) == 1
    assert res["stopped"] == "early_stop" and res["epochs_done"] == 3
    assert res["best_epoch"] == 1
    assert os.path.isfile(tmp_path / "r" / "best.npz")


@pytest.mark.gpu
def test_training_on_gpu(tmp_path, rng):
    data = make_folder(tmp_path / "d", rng, per_class=4)
    res = train(base_config(data, tmp_path / "g", epochs=2, device="cuda"), model=seeded_net(),
                log=quiet)
    assert res["stopped"] == "complete"
    assert all(np.isfinite(r["train_loss"]) and np.isfinite(r["val_loss"])
               for r in res["history"])
    saved = ck.load_checkpoint(str(tmp_path / "g" / "last.npz"))  # host arrays, loadable on CPU
    cpu_model = TinyNet()
    ck.load_model_state(cpu_model, saved["model"])
    for k, v in cpu_model.state_dict().items():
        np.testing.assert_array_equal(v, saved["model"][k])


def test_resume_warns_about_the_options_it_ignores(tmp_path, rng):
    data = make_folder(tmp_path / "d", rng, per_class=3)
    train(base_config(data, tmp_path / "r", stop_after_epochs=1), model=seeded_net(), log=quiet)
    logs = []
    res = train({"out": str(tmp_path / "r"), "resume": True, "lr": 0.5, "momentum": 0.9,
                 "epochs": 2}, model=TinyNet(), log=logs.append)
    warned = [m for m in logs if m.startswith("warning: --resume keeps")]
    assert len(warned) == 1
    assert "--lr 0.05" in warned[0] and "0.5" in warned[0] and "--momentum" not in warned[0]
    assert "--epochs" in warned[0]  # named among the options that may change
    assert res["epochs_done"] == 2
    assert ck.load_checkpoint(str(tmp_path / "r" / "last.npz"))["config"]["lr"] == 0.05


def test_help_defaults_come_from_the_defaults_table(monkeypatch):
    monkeypatch.setitem(train_cifar.DEFAULTS, "step_size", 17)
    monkeypatch.setitem(train_cifar.DEFAULTS, "lr", 0.123)
    text = " ".join(train_cifar.build_parser().format_help().split())
    assert "step schedule: epochs between decays [17]" in text
    assert "(peak) learning rate [per model; 0.123]" in text  # recipes set their own


class HeadSlowNet(TinyNet):
    """TinyNet whose classifier learns at a tenth of the rate (as Caffe's lr_mult)."""

    def lr_multipliers(self):
        return {"fc.weight": 0.1, "fc.bias": 0.1}


@pytest.mark.parametrize("schedule", ["cosine", "onecycle", "step"])
def test_lr_multipliers_of_a_model_scale_its_groups_through_the_schedule(schedule):
    cfg = train_cifar.resolve_config(base_config("unused", "unused", schedule=schedule,
                                                 weight_decay=1e-3), model=HeadSlowNet())
    model = HeadSlowNet()
    opt = train_cifar.build_optimizer(cfg, model)
    sched = train_cifar.build_scheduler(cfg, opt, steps_per_epoch=5)
    head = {id(model.fc.weight), id(model.fc.bias)}
    slow = [k for k, g in enumerate(opt.param_groups) if {id(p) for p in g["params"]} & head]
    assert slow and 0 not in slow  # group 0 runs at the base rate
    for g in slow:
        assert {id(p) for p in opt.param_groups[g]["params"]} <= head
    for _ in range(7):
        sched.step()
        base = opt.param_groups[0]["lr"]
        for g in slow:
            assert opt.param_groups[g]["lr"] == pytest.approx(0.1 * base, rel=1e-9, abs=1e-15)
    # weight decay still splits weights (decayed) from biases (not)
    decays = {opt.param_groups[g]["weight_decay"] for g in slow}
    assert decays == {0.0, 1e-3}


def test_test_time_flip_averaging(tmp_path, rng, capsys):
    """--tta scores an image by the mean of its and its mirror image's softmax: evaluate_model
    with tta agrees with that computed by hand, and the flag reaches evaluation in the CLIs."""
    from models.common import evaluate_model

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    x = rng.standard_normal((7, 3, 8, 8)).astype(np.float32)
    y = rng.integers(0, 5, 7)
    with fastconv.no_grad():
        a = model(fastconv.tensor(x)).numpy().astype(np.float64)
        b = model(fastconv.tensor(x[..., ::-1].copy())).numpy().astype(np.float64)
    soft = [np.exp(z - z.max(1, keepdims=True)) for z in (a, b)]
    prob = sum(s / s.sum(1, keepdims=True) for s in soft) / 2
    ev = evaluate_model(model, [(x, y)], "cpu", 5, tta=True)
    assert ev["loss"] == pytest.approx(-np.log(prob[np.arange(7), y]).mean(), rel=1e-5)
    assert ev["top1"] == pytest.approx(100 * np.mean(prob.argmax(1) == y))
    plain = evaluate_model(model, [(x, y)], "cpu", 5)
    assert plain["loss"] != pytest.approx(ev["loss"], rel=1e-4)  # the mirror images count

    data = make_folder(tmp_path / "data", rng, per_class=3, size=28)
    out = tmp_path / "run"
    assert train_cifar.main(["--model", "cifar10_tutorial", "--epochs", "1", "--batch-size", "3",
                             "--data", data, "--out", str(out), "--val-per-class", "1",
                             "--workers", "1", "--tta"]) == 0
    assert ck.load_checkpoint(str(out / "last.npz"))["config"]["tta"] is True
    assert evaluate_cli.main(["--checkpoint", str(out / "last.npz"), "--data", data,
                              "--tta"]) == 0
    assert predict_cli.main(["--checkpoint", str(out / "last.npz"), "--tta",
                             os.path.join(data, "red", "000.png")]) == 0


def test_bf16_precision_is_stored_and_honoured_on_resume(tmp_path, rng, capsys):
    """--precision bf16 runs the forward passes under autocast: the run differs from the same
    run in float32, is stored in the run's configuration and kept by --resume."""
    data = make_folder(tmp_path / "data", rng, per_class=4, size=28)
    args = ["--model", "cifar10_tutorial", "--epochs", "2", "--batch-size", "4", "--data", data,
            "--val-per-class", "1", "--workers", "1", "--no-plot", "--no-progress"]
    assert train_cifar.main([*args, "--out", str(tmp_path / "fp32")]) == 0
    assert train_cifar.main([*args, "--out", str(tmp_path / "bf16"), "--precision", "bf16",
                             "--stop-after-epochs", "1"]) == 0
    assert "bf16 autocast" in capsys.readouterr().out
    run = ck.load_checkpoint(str(tmp_path / "bf16" / "last.npz"))
    assert run["config"]["precision"] == "bf16" and run["epoch"] == 1
    assert train_cifar.main(["--out", str(tmp_path / "bf16"), "--resume", "--no-plot",
                             "--no-progress"]) == 0
    assert "bf16 autocast" in capsys.readouterr().out
    bf16 = ck.load_checkpoint(str(tmp_path / "bf16" / "last.npz"))
    fp32 = ck.load_checkpoint(str(tmp_path / "fp32" / "last.npz"))
    assert bf16["epoch"] == 2 and bf16["config"]["precision"] == "bf16"
    assert fp32["config"]["precision"] == "fp32"
    w16, w32 = bf16["model"], fp32["model"]
    assert w16.keys() == w32.keys()
    assert all(w16[k].dtype == np.float32 for k in w16)  # float32 master weights
    assert any(not np.array_equal(w16[k], w32[k]) for k in w16)
    # the same training, only rounded differently: all weights as one vector within 0.2%
    # (measured: 0.012%)
    v16, v32 = (np.concatenate([w[k].ravel() for k in sorted(w)]) for w in (w16, w32))
    assert np.linalg.norm(v16 - v32) <= 2e-3 * np.linalg.norm(v32)


def test_tensorboard_scalars_follow_history_csv_across_a_resume(tmp_path, rng):
    """--tensorboard writes each epoch's numbers as TensorBoard scalars in RUN_DIR/tensorboard,
    the same as history.csv, and a resumed run carries on the same curves."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = make_folder(tmp_path / "data", rng, per_class=4, size=28)
    out = tmp_path / "run"
    args = ["--epochs", "3", "--batch-size", "4", "--val-per-class", "1", "--workers", "1",
            "--no-plot", "--no-progress"]
    assert train_cifar.main(["--model", "cifar10_tutorial", "--data", data, "--out", str(out),
                             "--tensorboard", "--stop-after-epochs", "2", *args]) == 0
    assert train_cifar.main(["--out", str(out), "--resume", *args]) == 0  # stored: still on
    acc = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    with open(out / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3
    for key, tag in (("train_loss", "loss/train"), ("val_top1", "top1/val"), ("lr", "lr")):
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [1, 2, 3]
        np.testing.assert_allclose([e.value for e in events], [float(r[key]) for r in rows],
                                   rtol=1e-5)
