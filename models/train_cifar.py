"""Train a model of the zoo on CIFAR-10 (or any image-folder dataset), on the CPU or a GPU.

    python -m models.train_cifar --model cifar10_tutorial --epochs 50 --batch-size 128 \\
        --optimizer sgd --lr 0.05 --device cpu \\
        --data ../shared/data/cifar10-jpeg-train.tar.gz --out runs/tutorial
    python -m models.train_cifar --out runs/tutorial --resume          # continue after a stop
    python -m models.train_cifar --help                                 # every option
    python -m models.train_cifar --list-models                          # per-model defaults

``--data`` is CIFAR-10's python version (``cifar-10-batches-py/``, its parent, or
``cifar-10-python.tar.gz``) or an image folder ``root/<class>/*.png|jpg`` as a
directory or a .tar.gz. A validation split is held back from the training images
(``--val-per-class``, the last images of each class) unless ``--val-data`` names
a separate set.

The run folder (``--out``) receives: ``config.json``; ``history.csv`` with the
per-epoch train/validation loss and top-1/top-5; ``curves.png`` (redrawn every
epoch); with ``--tensorboard``, the same numbers as TensorBoard scalars in
``tensorboard/``; ``last.npz`` (every epoch, and on Ctrl-C) and ``best.npz`` (best validation
top-1). ``--resume`` continues from ``last.npz`` -- also from the middle of an
epoch after Ctrl-C -- and gives the same weights as a run that was never stopped
(bit-exact on the CPU).

Data parallel on several processes (MPI through mpi4py: ``pip install -e ".[mpi]"``; on
GPUs one rank per GPU, the gradients all-reduced by NCCL)::

    mpirun -np 4 python -m models.train_cifar --model nin_cifar --batch-size 32 ... --out runs/nin4
    mpirun -np 8 --hostfile hosts python -m models.train_cifar ... --out /shared/runs/nin8
    mpirun -np 4 python -m models.train_cifar --device cuda ... --out runs/nin_4gpus

Started by mpirun with more than one rank (or with ``--distributed``), the program joins the
process group (MPI; NCCL with ``--device cuda``) and wraps the model in
DistributedDataParallel. ``--batch-size`` is per rank: each step takes one global batch of N
x batch-size images from the shared seeded order, rank r its r-th slice, and averages the
gradients, so a step equals one process's step on the global batch (augmentation draws
aside). The learning rate is NOT scaled: ``--lr`` (or the recipe's) applies to the global
batch as given; for the linear scaling rule pass ``--lr`` x N yourself (with a warm-up).
Validation is sharded and its sums all-reduced. Rank 0 alone prints and writes the run
folder; ``config.json`` records ``world_size``. ``--resume`` works with any number of ranks
(every rank reads the checkpoint, so on several machines ``--out`` must be on a shared file
system); with another rank count the schedule is re-counted in the new steps per epoch and
the augmentation (and the cut of a half-done epoch) differs from an unchanged run. Ctrl-C /
SIGTERM on any rank stops every rank after the batch, with one checkpoint; an error on any
rank ends the whole job (MPI_Abort).

Everything also works from Python: ``train(config_dict, model=my_module)``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import os
import signal
import sys
import time
import warnings

import numpy as np

import fastconv
from fastconv import checkpoint as ckpt_io
from fastconv import optim
from fastconv.data import (
    DataError,
    DataLoader,
    Subset,
    make_transform,
    split_per_class,
)
from fastconv.data.transforms import AUGMENTATIONS
from fastconv.files import atomic_write

from .common import (
    build_model,
    check_model_options,
    default_cache_dir,
    eval_transform,
    evaluate_model,
    model_from_checkpoint,
    open_data,
    parse_model_option,
    rows_constant,
    split_output,
    top_k_correct,
)

__all__ = [
    "DEFAULTS",
    "MODEL_DEFAULTS",
    "build_model",
    "build_parser",
    "eval_transform",
    "evaluate_model",
    "main",
    "model_from_checkpoint",
    "resolve_config",
    "top_k_correct",
    "train",
]

# ------------------------------------------------------------------------------------------------
# configuration
# ------------------------------------------------------------------------------------------------

#: Defaults for every model (overridden by MODEL_DEFAULTS, then by the command line).
DEFAULTS = {
    # model and data
    "model": None, "model_options": {}, "data": None, "data_subdir": None,
    "val_data": None, "val_subdir": None, "val_per_class": 500, "image_size": None,
    "input_size": None, "augment": "crop-flip", "cache_dir": None,
    # optimisation
    "epochs": 30, "batch_size": 128, "eval_batch_size": None, "optimizer": "sgd", "lr": 0.1,
    "momentum": 0.9, "nesterov": True, "beta1": 0.9, "beta2": 0.999, "weight_decay": 5e-4,
    "wd_bias_bn": False, "schedule": "cosine", "warmup_epochs": 0.0, "step_size": 30,
    "gamma": 0.1, "milestones": None, "min_lr": 0.0, "plateau_patience": 5,
    "label_smoothing": 0.0, "aux_weight": 0.3, "ema_decay": 0.0, "clip_grad": 0.0,
    "early_stop": 0, "tta": False,
    # fine-tuning and the run
    "init_from": None, "freeze_backbone": False, "seed": 0, "workers": None, "device": "cpu",
    "out": None, "limit_batches": 0, "progress": True, "plot": True, "tensorboard": False,
    "precision": "fp32",
    "sync_bn": False,
}

_CIFAR_SGD = {"augment": "crop-flip", "optimizer": "sgd", "weight_decay": 5e-4,
              "schedule": "cosine"}

#: Per-model recipes: what a user gets without further options.
MODEL_DEFAULTS = {
    # TensorFlow's tutorial: 24x24 crops, flips, brightness/contrast jitter, per-image
    # standardisation, centre crops for evaluation; L2 0.004 on local3/local4 only (taken
    # from the model's weight_decay_params()); averaged weights for evaluation. The
    # tutorial's plain SGD at 0.1 is about Nesterov momentum 0.9 at 0.01-0.02.
    "cifar10_tutorial": {"input_size": 24, "augment": "tutorial", "optimizer": "sgd",
                         "lr": 0.02, "momentum": 0.9, "nesterov": True, "weight_decay": None,
                         "epochs": 50, "schedule": "cosine", "warmup_epochs": 1.0,
                         "ema_decay": 0.999, "batch_size": 128},
    # Network in Network (no batch norm; models/nin.py: He init, no ReLU on the class
    # maps): Nesterov SGD at a peak 0.05 after a 2-epoch warm-up, cosine, the paper's wd
    # 1e-4, the gradient norm clipped to 5. The authors' Caffe recipe (N(0, 0.05^2) init,
    # lr 0.1, last layer at 0.1x, ReLU on the class maps, ZCA data) stalled or died on our
    # per-channel standardised images; without clipping the He-initialised net collapsed
    # at the peak rate on the learnability test's images; clipping at 1 with wd 5e-4
    # underfitted (decay is not clipped: 80.5% after 46 epochs against 83.6% in 30 for
    # this recipe, measured; NIN's docstring).
    "nin_cifar": {**_CIFAR_SGD, "lr": 0.05, "epochs": 60, "warmup_epochs": 2.0,
                  "weight_decay": 1e-4, "clip_grad": 5.0},
    # GoogLeNet without batch norm (He init in googlenet_cifar; BVLC's Xavier + 0.2
    # biases do not learn without the aux heads): clipping as NIN, for the same reason.
    "googlenet_cifar": {**_CIFAR_SGD, "lr": 0.1, "epochs": 100, "warmup_epochs": 2.0,
                        "aux_weight": 0.3, "clip_grad": 1.0},
    # Batch-norm networks: the usual CIFAR-10 recipe (no paper recipe for 32x32 images).
    "bn_inception_cifar": {**_CIFAR_SGD, "lr": 0.1, "epochs": 100, "warmup_epochs": 1.0},
    "inception_small": {**_CIFAR_SGD, "lr": 0.1, "epochs": 60, "warmup_epochs": 1.0},
    # AlexNet (He init in alexnet_cifar): the paper's momentum 0.9, wd 5e-4 and batch 128,
    # Nesterov and a cosine decay from 0.02 instead of 0.01 divided by 10 on plateaus.
    "alexnet_cifar": {**_CIFAR_SGD, "lr": 0.02, "epochs": 60, "warmup_epochs": 2.0},
    # ImageNet-sized networks: the 32x32 images are resized to the network's input on
    # loading (image_size from the model spec), flips only.
    "alexnet": {"augment": "flip", "lr": 0.01, "epochs": 30, "warmup_epochs": 1.0},
    "alexnet_owt": {"augment": "flip", "lr": 0.01, "epochs": 30, "warmup_epochs": 1.0},
    "googlenet": {"augment": "flip", "lr": 0.05, "epochs": 30, "aux_weight": 0.3,
                  "warmup_epochs": 1.0},
    "bn_inception": {"augment": "flip", "lr": 0.05, "epochs": 30, "warmup_epochs": 1.0},
    "inception_v3": {"augment": "flip", "lr": 0.05, "epochs": 30, "aux_weight": 0.4,
                     "warmup_epochs": 1.0},
}

#: What --resume may change in a stopped run; everything else comes from its checkpoint.
RESUME_OVERRIDES = ("epochs", "device", "workers", "progress", "plot", "tensorboard",
                    "early_stop", "eval_batch_size", "cache_dir", "tta")
#: Options of one session only: not stored in the run's configuration.
SESSION_ONLY = ("stop_after_epochs", "resume", "overwrite", "distributed")
#: What a run folder holds; a folder holding any of these is a run (see _claim_run_dir).
RUN_FILES = ("config.json", "history.csv", "curves.png", "last.npz", "best.npz")


def _model_spec(name):
    try:
        import models

        return models.get_model_spec(name)
    except (ImportError, KeyError):
        return None


def resolve_config(given: dict, model=None) -> dict:
    """Fill a config from ``given`` (explicit options), the model's recipe and DEFAULTS."""
    name = given.get("model")
    cfg = dict(DEFAULTS)
    cfg.update(MODEL_DEFAULTS.get(name, {}))
    cfg.update({k: v for k, v in given.items() if v is not None})
    spec = _model_spec(name) if model is None else None
    if spec is not None:
        native = spec.input_shape[1]
        if cfg["input_size"] is None:
            cfg["input_size"] = native
        if cfg["image_size"] is None and native > 32:
            cfg["image_size"] = native
    if cfg["eval_batch_size"] is None:
        cfg["eval_batch_size"] = 2 * cfg["batch_size"]
    if cfg["workers"] is None:
        cfg["workers"] = min(4, os.cpu_count() or 1)
    return cfg


# ------------------------------------------------------------------------------------------------
# building blocks
# ------------------------------------------------------------------------------------------------

def load_datasets(cfg: dict):
    """(train set, validation set or None, class names) as the config says."""
    kw = {"cache_dir": cfg.get("cache_dir"), "progress": bool(cfg.get("progress", True)),
              "threads": cfg.get("workers")}
    full = open_data(cfg["data"], cfg.get("data_subdir"), cfg.get("image_size"), train=True, **kw)
    if cfg.get("val_data"):
        val = open_data(cfg["val_data"], cfg.get("val_subdir"), cfg.get("image_size"), train=False,
                    **kw)
        if list(val.classes) != list(full.classes):
            raise DataError(f"--val-data classes {val.classes} differ from the training "
                            f"classes {full.classes}")
        return full, val, list(full.classes)
    if cfg.get("val_per_class", 0) > 0:
        tr, va = split_per_class(full.targets, int(cfg["val_per_class"]), mode="last")
        return Subset(full, tr), Subset(full, va), list(full.classes)
    return full, None, list(full.classes)


def _classifier_names(model) -> set:
    """Parameter names of the last Linear layer (the classifier)."""
    from fastconv import nn

    last = None
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            last = name
    if last is None:
        return set()
    prefix = f"{last}." if last else ""
    return {n for n, _ in model.named_parameters()
            if n.startswith(prefix) and "." not in n[len(prefix):]}


def init_from_checkpoint(model, path: str, freeze: bool, log=print) -> dict:
    """Fine-tuning: load every tensor of ``path`` that fits ``model`` (a new classifier for a
    new class count does not), and with ``freeze`` train only what was not loaded plus the
    final classifier."""
    ck = ckpt_io.load_checkpoint(path)
    state = ck.get("model")
    if state is None:
        raise ckpt_io.CheckpointError(f"--init-from {path}: holds no model state")
    if isinstance(ck.get("ema"), dict) and "shadow" in ck["ema"]:
        state = ck["ema"]["shadow"]  # the averaged weights are the better starting point
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = ckpt_io.load_model_state(model, state, strict=False,
                                          source=f"checkpoint {os.path.basename(path)}")
    fresh = set(report["missing"]) | {k for k, _, _ in report["mismatched"]}
    log(f"init-from {path}: loaded {len(report['loaded'])} tensors"
        + (f"; new (not loaded): {', '.join(sorted(fresh))}" if fresh else "")
        + (f"; unused from the checkpoint: {', '.join(report['unexpected'])}"
           if report["unexpected"] else ""))
    if freeze:
        head = (fresh | _classifier_names(model)) & {n for n, _ in model.named_parameters()}
        for name, p in model.named_parameters():
            p.requires_grad = name in head
        log(f"freeze-backbone: training only {', '.join(sorted(head))}")
    return report


def _frozen_bn_to_eval(model) -> None:
    """Batch-norm layers whose parameters are all frozen keep their running statistics."""
    from fastconv import nn

    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            ps = list(m.parameters())
            if ps and not any(p.requires_grad for p in ps):
                m.eval()


def build_optimizer(cfg: dict, model):
    """The optimizer of ``cfg`` over the trainable parameters, in one group per (weight
    decay, learning-rate factor): decay from ``cfg`` or the model's ``weight_decay_params()``
    table, factors from the model's ``lr_multipliers()`` where it has one (Caffe's per-layer
    ``lr_mult``). Groups at the base rate come first, so group 0 shows the schedule's rate."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("no trainable parameters (everything is frozen)")
    wd_of = {}
    if cfg["weight_decay"] is None and hasattr(model, "weight_decay_params"):
        table = model.weight_decay_params()
        wd_of = {n: float(table.get(n, 0.0)) for n, _ in named}
    else:
        wd = float(cfg["weight_decay"] or 0.0)
        wd_of = {n: (wd if (cfg["wd_bias_bn"] or p.ndim > 1) else 0.0) for n, p in named}
    mult_of = model.lr_multipliers() if hasattr(model, "lr_multipliers") else {}
    unknown = set(mult_of) - {n for n, _ in model.named_parameters()}
    if unknown:
        raise ValueError(f"{type(model).__name__}.lr_multipliers() names parameters it does "
                         f"not have: {', '.join(sorted(unknown))}")
    groups = {}
    for n, p in named:
        groups.setdefault((float(mult_of.get(n, 1.0)), wd_of[n]), []).append(p)
    param_groups = [{"params": ps, "weight_decay": wd, "lr": float(cfg["lr"]) * mult}
                    for (mult, wd), ps in sorted(groups.items(), key=lambda kv: (
                        kv[0][0] != 1.0, kv[0][1], kv[0][0]))]
    kind = cfg["optimizer"]
    if kind == "sgd":
        mom = float(cfg["momentum"])
        return optim.SGD(param_groups, lr=cfg["lr"], momentum=mom,
                         nesterov=bool(cfg["nesterov"]) and mom > 0)
    betas = (float(cfg["beta1"]), float(cfg["beta2"]))
    if kind == "adam":
        return optim.Adam(param_groups, lr=cfg["lr"], betas=betas)
    if kind == "adamw":
        return optim.AdamW(param_groups, lr=cfg["lr"], betas=betas)
    raise ValueError(f"unknown optimizer {kind!r} (sgd, adam, adamw)")


def build_scheduler(cfg: dict, opt, steps_per_epoch: int):
    """A per-batch schedule (or ReduceLROnPlateau, stepped per epoch on validation top-1)."""
    S = optim.lr_scheduler
    total = max(1, int(cfg["epochs"]) * steps_per_epoch)
    warm = round(float(cfg["warmup_epochs"]) * steps_per_epoch)
    warm = min(warm, total - 1) if total > 1 else 0
    kind = cfg["schedule"]
    if kind == "onecycle":
        pct = warm / total if warm else 0.3
        return S.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=total,
                            pct_start=pct)
    if kind == "plateau":
        return S.ReduceLROnPlateau(opt, mode="max", factor=float(cfg["gamma"]),
                                   patience=int(cfg["plateau_patience"]),
                                   min_lr=float(cfg["min_lr"]))
    if kind == "constant":
        after = S.LambdaLR(opt, lambda t: 1.0)
    elif kind == "step":
        after = S.StepLR(opt, step_size=int(cfg["step_size"]) * steps_per_epoch,
                         gamma=float(cfg["gamma"]))
    elif kind == "multistep":
        ms = cfg.get("milestones") or []
        after = S.MultiStepLR(opt, [int(m) * steps_per_epoch - warm for m in ms],
                              gamma=float(cfg["gamma"]))
    elif kind == "cosine":
        after = S.CosineAnnealingLR(opt, T_max=max(1, total - warm), eta_min=float(cfg["min_lr"]))
    else:
        raise ValueError(f"unknown schedule {kind!r}")
    return S.LinearWarmup(opt, warm, after=after) if warm > 0 else after


# ------------------------------------------------------------------------------------------------
# run-folder output: CSV and plot
# ------------------------------------------------------------------------------------------------

CSV_FIELDS = ["epoch", "lr", "train_loss", "train_top1", "train_top5", "val_loss", "val_top1",
              "val_top5", "epoch_time_s", "images_per_s"]


def write_csv(path: str, history: list) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    w.writeheader()
    for row in history:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write(path, buf.getvalue().encode())


def plot_curves(path: str, history: list, title: str = "") -> None:
    """Loss and accuracy curves as a PNG (matplotlib's Agg canvas; no pyplot, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    ep = [r["epoch"] for r in history]

    def col(k):
        return [float("nan") if r.get(k) is None else r[k] for r in history]

    fig = Figure(figsize=(11, 4), dpi=90)
    FigureCanvasAgg(fig)
    a1, a2 = fig.subplots(1, 2)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.88, wspace=0.22)
    a1.plot(ep, col("train_loss"), "o-", label="train")
    a1.plot(ep, col("val_loss"), "s-", label="validation")
    a1.set_xlabel("epoch")
    a1.set_ylabel("cross-entropy loss")
    a1.legend()
    a1.grid(alpha=0.3)
    a2.plot(ep, col("train_top1"), "o-", label="train top-1")
    a2.plot(ep, col("val_top1"), "s-", label="validation top-1")
    a2.plot(ep, col("val_top5"), "s--", label="validation top-5", alpha=0.6)
    a2.set_xlabel("epoch")
    a2.set_ylabel("accuracy (%)")
    for ax in (a1, a2):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    a2.legend()
    a2.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write(path, buf.getvalue())


# ------------------------------------------------------------------------------------------------
# training
# ------------------------------------------------------------------------------------------------

class _Interrupt:
    """Ctrl-C (SIGINT) and SIGTERM (kill, schedulers, containers) set a flag; the loop
    finishes the batch, saves a checkpoint and stops. A second signal exits at once, without
    a traceback: checkpoints are written atomically, so the last complete one stays intact."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.flag = False
        self.signum = None
        self._old = {}

    def _handler(self, signum, frame):
        name = signal.Signals(signum).name
        if self.flag:
            print(f"\n{name} again: stopping now; the last complete checkpoint is kept",
                  file=sys.stderr, flush=True)
            os._exit(128 + signum)
        self.flag, self.signum = True, signum
        print(f"\n{name}: saving a checkpoint after this batch (send it again to stop at once)",
              file=sys.stderr, flush=True)

    def __enter__(self):
        for sig in self.SIGNALS:
            try:
                self._old[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not in the main thread: no handlers
                break
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


class DeadNetworkError(RuntimeError):
    """The network's output no longer depends on its input: training cannot go on."""


#: Training stops when this many batches in a row gave every image the same logits.
DEAD_AFTER_BATCHES = 20

_DEAD_CAUSES = ("usual causes: a learning rate too high for the start of training (lower "
                "--lr or lengthen --warmup-epochs), an initialisation that makes the last "
                "layer's outputs all negative, or a ReLU on the logits (no gradient flows once "
                "they are all <= 0)")


def _dead_message(where: str, loss: float, num_classes: int) -> str:
    chance = math.log(num_classes) if num_classes > 1 else 0.0
    at_chance = f" = ln {num_classes}, chance" if abs(loss - chance) < 1e-3 else ""
    return (f"the network is dead: {where} every image got the same logits (loss "
            f"{loss:.4f}{at_chance}), so its output no longer depends on its input and it "
            f"cannot learn; {_DEAD_CAUSES}. Checkpoints written before this are kept.")


def _check_predictions(ev: dict, classes, epoch: int, log) -> None:
    """After a validation pass: a dead network is an error, a collapse onto one class a
    warning (once per epoch)."""
    if ev["constant_logits"]:
        raise DeadNetworkError(_dead_message(
            f"on the {ev['n']} validation images after epoch {epoch}", ev["loss"], len(classes)))
    hit = np.flatnonzero(ev["predicted"])
    if len(classes) > 1 and len(hit) == 1:
        log(f"warning: after epoch {epoch} every validation image with a prediction was "
            f"predicted as class {classes[hit[0]]!r}: the model has collapsed onto one class "
            f"(validation top-1 {ev['top1']:.2f}%)")


def _check_finite_weights(model, ema, name: str) -> None:
    """Refuse to checkpoint weights that are not finite (they would overwrite good ones)."""
    tensors = list(model.state_dict().items())
    if ema is not None:
        tensors += [(f"EMA {k}", v) for k, v in ema.shadow.items()]
    for key, v in tensors:
        a = v.get() if hasattr(v, "get") and not isinstance(v, np.ndarray) else np.asarray(v)
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise FloatingPointError(
                f"not writing {name}: weight {key} holds {int(np.sum(~np.isfinite(a)))} "
                "non-finite values (training diverged); the checkpoints written before are "
                "kept; lower --lr or set --clip-grad")


def _claim_run_dir(run_dir: str, overwrite: bool) -> list:
    """The files of an earlier run in ``run_dir`` that --overwrite will replace; without
    --overwrite, a folder holding a run is refused (nothing is changed)."""
    found = [f for f in RUN_FILES if os.path.exists(os.path.join(run_dir, f))]
    if found and not overwrite:
        raise ValueError(f"--out {run_dir} already holds a run ({', '.join(found)}); continue "
                         f"it with --resume, start it over with --overwrite (its files are "
                         f"replaced), or choose another --out")
    return found


def _resume_command(run_dir: str) -> str:
    return f"python -m models.train_cifar --out {run_dir} --resume"


def _resume_path(cfg_given: dict) -> str | None:
    r = cfg_given.get("resume")
    if not r:
        return None
    if r is True or r == "auto":
        if not cfg_given.get("out"):
            raise ValueError("--resume needs --out RUN_DIR (or --resume PATH)")
        return os.path.join(cfg_given["out"], "last.npz")
    return r


def _resolve_run_config(given: dict, model, resume: str | None, log, claim: bool = True):
    """Step 1, the configuration: (config, resume checkpoint or None, files --overwrite
    replaces). On --resume the run's own configuration, with only RESUME_OVERRIDES taken
    from ``given`` (the others are reported as ignored)."""
    if resume:
        resume_ck = ckpt_io.load_checkpoint(resume)
        if not isinstance(resume_ck.get("config"), dict):
            raise ckpt_io.CheckpointError(f"{resume}: no run configuration to resume")
        cfg = dict(resume_ck["config"])
        ignored = [k for k, v in given.items()
                   if k not in RESUME_OVERRIDES + SESSION_ONLY + ("out",) and v is not None
                   and k in DEFAULTS and v != cfg.get(k)]
        if ignored:
            log("warning: --resume keeps the run's own "
                + ", ".join(f"--{k.replace('_', '-')} {cfg.get(k)!r}" for k in ignored)
                + " (given: " + ", ".join(repr(given[k]) for k in ignored) + "); on --resume "
                "only " + ", ".join(f"--{k.replace('_', '-')}" for k in RESUME_OVERRIDES)
                + " may change")
        for k in RESUME_OVERRIDES:
            if given.get(k) is not None:
                cfg[k] = given[k]
        if given.get("out"):
            cfg["out"] = given["out"]
        return cfg, resume_ck, []
    if given.get("init_from") and not given.get("model"):
        src = ckpt_io.load_checkpoint(given["init_from"]).get("config") or {}
        given["model"] = src.get("model")
        given.setdefault("model_options", src.get("model_options"))
    if not given.get("model") and model is None:
        raise ValueError("--model is required (see --list-models)")
    if not given.get("data"):
        raise ValueError("--data is required")
    if not given.get("out"):
        raise ValueError("--out RUN_DIR is required")
    cfg = resolve_config(given, model=model)
    if model is not None and not cfg.get("model"):
        cfg["model"] = type(model).__name__
    if model is not None:
        cfg["custom_model"] = True  # evaluate/predict cannot rebuild it from the registry
    # several ranks: rank 0 alone looks at (and later writes) the run folder
    return cfg, None, (_claim_run_dir(given["out"], bool(given.get("overwrite"))) if claim
                       else [])


def _check_config(cfg: dict, model) -> None:
    if cfg["augment"] not in AUGMENTATIONS:
        raise ValueError(f"--augment must be one of {AUGMENTATIONS}")
    if model is None:
        import models

        try:
            models.get_model_spec(cfg["model"])
        except KeyError as e:
            raise ValueError(str(e).strip("'\"")) from None
        check_model_options(cfg["model"], cfg.get("model_options"))
    if cfg["device"] == "cuda":
        try:
            from fastconv.backend import get_backend

            get_backend("cuda")
        except Exception as e:
            raise ValueError(f"--device cuda is not available here: {e}") from e


# ------------------------------------------------------------------------------------------------
# data parallel over MPI
# ------------------------------------------------------------------------------------------------

#: Variables launchers set to the job's process count (Open MPI, MPICH/Intel MPI/Slurm PMI).
_WORLD_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE")


def launched_world_size() -> int:
    """The number of processes mpirun started this one with (1 when not under MPI)."""
    for var in _WORLD_SIZE_VARS:
        v = os.environ.get(var)
        if v and v.strip().isdigit():
            return int(v)
    return 1


class _Comm:
    """The collectives a run needs; on one process (no MPI) every one is the identity.

    Made before the run's config is read (rank 0 alone claims the run folder), it knows only
    rank and size; :meth:`join` starts the process group once the device is known. The run's
    own small sums (losses, counts, the stop flag) travel over MPI on either backend."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.rank, self.size = 0, 1
        self.dist = self.comm = None
        if enabled:
            from fastconv.distributed.mpi import import_mpi

            world = import_mpi().COMM_WORLD
            self.rank, self.size = world.Get_rank(), world.Get_size()

    def join(self, device: str) -> None:
        """Join the process group: NCCL for a GPU run (the gradient all-reduces stay on the
        GPUs, each rank on the GPU of its local rank), MPI for a CPU run."""
        if not self.enabled:
            return
        import fastconv.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if str(device).startswith("cuda") else "mpi")
        self.dist, self.comm = dist, dist._default_group().comm

    def sum(self, values) -> np.ndarray:
        a = np.array(values, dtype=np.float64)
        if self.enabled and self.size > 1:
            self.dist.allreduce_array_(self.comm, a, self.dist.ReduceOp.SUM)
        return a

    def max(self, values) -> np.ndarray:
        a = np.array(values, dtype=np.float64)
        if self.enabled and self.size > 1:
            self.dist.allreduce_array_(self.comm, a, self.dist.ReduceOp.MAX)
        return a

    def barrier(self) -> None:
        if self.enabled and self.size > 1:
            self.dist.barrier()


def _evaluate_shard(comm: _Comm, model, loader, device, num_classes: int,
                    tta: bool = False) -> dict:
    """evaluate_model on this rank's shard, its sums (loss, correct counts, confusion)
    added over the ranks."""
    ev = evaluate_model(model, loader, device, num_classes, tta=tta)
    if comm.size == 1:
        return ev
    n = ev["n"]
    K = num_classes
    conf = ev["confusion"] if n else np.zeros((K, K), np.int64)
    missing = ev["no_prediction"] if n else np.zeros(K, np.int64)
    head = [ev["loss"] * n if n else 0.0, round(ev["top1"] * n / 100) if n else 0,
            round(ev["top5"] * n / 100) if n else 0, n]
    tot = comm.sum(head + list(conf.ravel()) + list(missing))
    loss_sum, c1, c5, n = tot[0], int(tot[1]), int(tot[2]), int(tot[3])
    conf = tot[4:4 + K * K].astype(np.int64).reshape(K, K)
    missing = tot[4 + K * K:].astype(np.int64)
    # each shard's logits constant (a shard of one image says nothing; it does not veto)
    constant = comm.max([0.0 if (ev["constant_logits"] or ev["n"] <= 1) else 1.0])[0] == 0
    if n == 0:
        return {"loss": float("nan"), "top1": float("nan"), "top5": float("nan"), "n": 0,
                "confusion": conf, "no_prediction": missing, "predicted": conf.sum(axis=0),
                "constant_logits": False}
    return {"loss": loss_sum / n, "top1": 100.0 * c1 / n, "top5": 100.0 * c5 / n, "n": n,
            "confusion": conf, "no_prediction": missing, "predicted": conf.sum(axis=0),
            "constant_logits": bool(constant and n > 1)}


class _Run:
    """One training run, in the steps a reader can hold in mind: :meth:`setup` (data, model,
    optimizer), :meth:`restore` (from a checkpoint), :meth:`train_epoch`, :meth:`end_epoch`."""

    def __init__(self, cfg: dict, log, comm: _Comm | None = None):
        self.comm = comm or _Comm(False)
        self.lead = self.comm.rank == 0  # prints and writes the run folder
        self.cfg, self.log = cfg, (log if self.lead else (lambda *a, **k: None))
        self.net = None  # what the training step calls: the model or its DDP wrapper
        self.run_dir, self.device = cfg["out"], cfg["device"]
        self.epochs = int(cfg["epochs"])
        self.history, self.best = [], {"val_top1": -math.inf, "epoch": 0}
        self.epoch, self.start_batch, self.step, self.bad_epochs = 0, 0, 0, 0
        self.partial = self._fresh_partial()
        self.dead_run = 0  # training batches in a row whose logits were the same for every image
        self.run_epochs = 0  # epochs finished in this session
        self.stopped = None
        self.tb_writer = None  # --tensorboard's SummaryWriter, made at the first epoch's end

    @staticmethod
    def _fresh_partial() -> dict:
        """Sums over the epoch so far (kept in mid-epoch checkpoints)."""
        return {"loss": 0.0, "c1": 0, "c5": 0, "n": 0, "time": 0.0}

    # -- step 2: data, model, optimizer -----------------------------------------------------------
    def setup(self, model, resume_ck) -> None:
        cfg, comm = self.cfg, self.comm
        if not self.lead:
            comm.barrier()  # rank 0 decodes (and caches) the images first
        train_ds, val_ds, classes = load_datasets(cfg)
        if self.lead:
            comm.barrier()
        if resume_ck is not None and cfg.get("classes") and list(cfg["classes"]) != classes:
            raise DataError(f"the data's classes {classes} differ from the run's "
                            f"{cfg['classes']}")
        cfg["classes"] = self.classes = classes
        image_hw = train_ds.image_shape[:2]
        cfg["image_hw"] = [int(image_hw[0]), int(image_hw[1])]  # what predict resizes files to
        if cfg["input_size"] is None:
            cfg["input_size"] = int(image_hw[0])
        self.n_train, self.n_val = len(train_ds), (len(val_ds) if val_ds is not None else 0)
        self.train_loader = DataLoader(
            train_ds, batch_size=int(cfg["batch_size"]), shuffle=True, seed=int(cfg["seed"]),
            transform=make_transform(cfg["augment"], train=True, input_size=cfg["input_size"],
                                     image_size=image_hw),
            drop_last=True, num_workers=int(cfg["workers"]), num_replicas=comm.size,
            rank=comm.rank)
        if val_ds is not None and comm.size > 1:
            val_ds = Subset(val_ds, np.arange(len(val_ds))[comm.rank::comm.size])
        self.val_loader = None if val_ds is None else DataLoader(
            val_ds, batch_size=int(cfg["eval_batch_size"]), shuffle=False,
            transform=make_transform(cfg["augment"], train=False, input_size=cfg["input_size"],
                                     image_size=image_hw),
            num_workers=int(cfg["workers"]))
        if len(self.train_loader) == 0:
            raise DataError(f"{len(train_ds)} training images make no batch of "
                            f"{self.train_loader.global_batch_size}"
                            + (f" ({comm.size} ranks x {cfg['batch_size']})"
                               if comm.size > 1 else "") + "; lower --batch-size")
        self.steps_per_epoch = len(self.train_loader)
        if cfg.get("limit_batches"):
            self.steps_per_epoch = min(self.steps_per_epoch, int(cfg["limit_batches"]))

        fastconv.manual_seed(int(cfg["seed"]))
        if model is None:
            model = build_model(cfg, num_classes=len(classes))
        if resume_ck is None and cfg.get("init_from"):
            init_from_checkpoint(model, cfg["init_from"], bool(cfg.get("freeze_backbone")),
                                 log=self.log)
        elif resume_ck is not None and resume_ck.get("trainable") is not None:
            trainable = set(resume_ck["trainable"])  # a frozen backbone stays frozen
            for name, p in model.named_parameters():
                p.requires_grad = name in trainable
        model.to(self.device)
        self.model = model
        self.opt = build_optimizer(cfg, model)
        self.sched = build_scheduler(cfg, self.opt, self.steps_per_epoch)
        self.per_epoch_sched = isinstance(self.sched, optim.ReduceLROnPlateau)
        self.ema = optim.ExponentialMovingAverage(model, decay=float(cfg["ema_decay"])) \
            if cfg["ema_decay"] else None
        self.net = model

    def distribute(self) -> None:
        """Step 3b (several ranks): wrap the (restored) model in DistributedDataParallel,
        which checks that every rank built the same model and copies rank 0's weights."""
        from fastconv.nn import SyncBatchNorm
        from fastconv.nn.parallel import DistributedDataParallel

        if self.cfg.get("sync_bn"):  # the same tensors: optimizer and EMA are unaffected
            self.model = SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.net = DistributedDataParallel(self.model)
        if self.comm.rank > 0:  # dropout masks of their own (rank 0 keeps the saved stream)
            seq = np.random.SeedSequence(int(self.cfg["seed"]), spawn_key=(self.comm.rank,
                                                                           self.step))
            fastconv.manual_seed(int(seq.generate_state(1)[0]))

    def _sync_buffers(self) -> None:
        """Rank 0's buffers (batch-norm statistics) to every rank before evaluating."""
        if self.comm.size > 1:
            with fastconv.no_grad():
                for b in self.model.buffers():
                    self.comm.dist.broadcast(b, src=0)

    # -- step 3: restore ---------------------------------------------------------------------------
    def restore(self, ck: dict, path: str) -> None:
        ckpt_io.load_model_state(self.model, ck["model"], strict=True,
                                 source=f"checkpoint {path}")
        self.model.to(self.device)
        self.opt.load_state_dict(ck["optimizer"])
        if self.ema is not None and "ema" in ck:
            self.ema.load_state_dict(ck["ema"])
        fastconv.set_rng_state(ck["rng_state"])
        pos = ck["position"]
        self.epoch, self.start_batch = int(pos["epoch"]), int(pos["batch"])
        self.step = int(ck["step"])
        saved_ranks = int((ck.get("config") or {}).get("world_size") or 1)
        if saved_ranks != self.comm.size:
            # the same images: global batch b of the old run ends at image b x old size;
            # the step count is re-counted in the new steps per epoch (the schedule's clock)
            done = self.start_batch * saved_ranks * int(self.cfg["batch_size"])
            self.start_batch = min(-(-done // self.train_loader.global_batch_size),
                                   self.steps_per_epoch)
            self.step = self.epoch * self.steps_per_epoch + self.start_batch
            self.log(f"the checkpoint was written by {saved_ranks} rank(s), this run has "
                     f"{self.comm.size}: global batch {self.train_loader.global_batch_size}, "
                     f"{self.steps_per_epoch} steps per epoch; the data order and "
                     f"augmentation from here on differ from a run on {saved_ranks}")
        self.history = list(ck.get("history") or [])
        self.best = dict(ck.get("best") or self.best)
        self.bad_epochs = int(ck.get("bad_epochs", 0))
        self.partial = dict(ck.get("partial") or self.partial)
        if not self.lead:  # the saved sums are over all ranks: count them once
            self.partial.update(loss=0.0, c1=0, c5=0, n=0)
        if self.per_epoch_sched:
            self.sched.load_state_dict(ck["scheduler"])
        else:
            self.sched.step(epoch=self.step)  # closed form: the rate now (even if --epochs grew)
        self.log(f"resuming {path}: epoch {self.epoch + 1}, batch {self.start_batch}, "
                 f"step {self.step}")

    def announce(self) -> None:
        cfg, model = self.cfg, self.model
        n_params = sum(int(np.prod(p.shape)) for p in model.parameters())
        n_train = sum(int(np.prod(p.shape)) for p in model.parameters() if p.requires_grad)
        self.log(f"{cfg['model']}: {n_params:,} parameters ({n_train:,} trainable) on "
                 f"{self.device}; {self.n_train} training / {self.n_val} validation images, "
                 f"{len(self.classes)} classes, input {cfg['input_size']}x{cfg['input_size']}, "
                 f"augment {cfg['augment']}; {cfg['optimizer']} lr {cfg['lr']} "
                 f"{cfg['schedule']}"
                 + ("; bf16 autocast" if cfg.get("precision") == "bf16" else "")
                 + (f"; data parallel on {self.comm.size} ranks, global batch "
                    f"{self.train_loader.global_batch_size} ({self.comm.size} x "
                    f"{cfg['batch_size']})" if self.comm.size > 1 else ""))

    def _global_partial(self) -> dict:
        """The epoch's sums so far over all ranks (time: rank 0's)."""
        p = dict(self.partial)
        if self.comm.size > 1:
            tot = self.comm.sum([p["loss"], p["c1"], p["c5"], p["n"]])
            p.update(loss=float(tot[0]), c1=int(tot[1]), c5=int(tot[2]), n=int(tot[3]))
        return p

    def save(self, name: str, position: dict, partial: dict | None = None) -> str:
        path = os.path.join(self.run_dir, name)
        if not self.lead:
            return path
        _check_finite_weights(self.model, self.ema, name)
        saved_partial, self.partial = self.partial, (partial or self.partial)
        try:
            return self._write_checkpoint(name, position)
        finally:
            self.partial = saved_partial

    def _write_checkpoint(self, name: str, position: dict) -> str:
        return ckpt_io.save_training(
            os.path.join(self.run_dir, name), self.model, self.opt, scheduler=self.sched,
            ema=self.ema, epoch=position["epoch"], step=self.step, config=self.cfg,
            position=position, history=self.history, best=self.best,
            bad_epochs=self.bad_epochs, partial=self.partial, loader=self.train_loader,
            trainable=[n for n, p in self.model.named_parameters() if p.requires_grad])

    # -- step 4: one epoch -------------------------------------------------------------------------
    def autocast(self):
        """The region of forward passes: bfloat16 autocast with --precision bf16."""
        return fastconv.autocast(self.device, dtype=fastconv.bfloat16,
                                 enabled=self.cfg.get("precision", "fp32") == "bf16")

    def train_step(self, x, y) -> np.ndarray:
        """One optimisation step on a batch; returns the main logits (host array)."""
        import fastconv.functional as F

        cfg, model, opt = self.cfg, self.model, self.opt
        ls = float(cfg["label_smoothing"])
        yt = fastconv.tensor(y, device=self.device)
        with self.autocast():
            main, aux = split_output(self.net(fastconv.tensor(x, device=self.device)))
            loss = F.cross_entropy(main, yt, label_smoothing=ls)
            total = loss
            for a in aux:
                total = total + float(cfg["aux_weight"]) * F.cross_entropy(a, yt,
                                                                           label_smoothing=ls)
        opt.zero_grad()
        total.backward()
        if float(cfg["clip_grad"]) > 0:
            optim.clip_grad_norm_([p for p in model.parameters() if p.requires_grad],
                                  float(cfg["clip_grad"]))
        self.partial["lr"] = float(opt.param_groups[0]["lr"])  # the rate of this update
        opt.step()
        self.step += 1
        if not self.per_epoch_sched:
            self.sched.step()
        if self.ema is not None:
            self.ema.update(model)
        lv = float(loss.item())
        if not math.isfinite(lv):
            raise FloatingPointError(f"the loss became {lv} at epoch {self.epoch + 1}, step "
                                     f"{self.step}; lower --lr or set --clip-grad")
        lg = main.detach().numpy()
        self.dead_run = self.dead_run + 1 if len(lg) > 1 and rows_constant(lg, lg[0]) else 0
        if self.dead_run >= DEAD_AFTER_BATCHES:
            raise DeadNetworkError(_dead_message(
                f"in the last {self.dead_run} training batches (up to epoch {self.epoch + 1}, "
                f"step {self.step})", lv, lg.shape[1]))
        p = self.partial
        p["loss"] += lv * len(y)
        p["c1"] += top_k_correct(lg, y, 1)
        p["c5"] += top_k_correct(lg, y, 5)
        p["n"] += len(y)
        return lg

    def train_epoch(self, intr, interrupt_after_steps: int = 0) -> bool:
        """Train to the end of the epoch; False when a stop signal ended it early (a
        mid-epoch checkpoint is then written)."""
        self.model.train()
        _frozen_bn_to_eval(self.model)
        t0 = time.perf_counter() - self.partial["time"]
        bar = None
        if self.cfg.get("progress", True) and self.lead:
            from tqdm import tqdm

            # redirected to a log file, the bar writes a line every 30 s, not every batch
            bar = tqdm(total=self.steps_per_epoch, initial=self.start_batch, unit="batch",
                       desc=f"epoch {self.epoch + 1}/{self.epochs}", dynamic_ncols=True,
                       leave=True, file=sys.stderr,
                       mininterval=0.1 if sys.stderr.isatty() else 30.0)
        b, stopping = self.start_batch, False
        batches = self.train_loader.iter_epoch(self.epoch, start_batch=self.start_batch)
        try:
            for x, y in batches:
                if b >= self.steps_per_epoch:
                    break
                self.train_step(x, y)
                b += 1
                if bar is not None:
                    p, el = self.partial, time.perf_counter() - t0
                    bar.set_postfix(loss=f"{p['loss'] / p['n']:.3f}",
                                    acc=f"{100.0 * p['c1'] / p['n']:.1f}%",
                                    img_s=f"{p['n'] / max(el, 1e-9):.0f}", refresh=False)
                    bar.update(1)
                if interrupt_after_steps and self.step >= interrupt_after_steps:
                    intr.flag = True
                if self._agree_on_stop(intr):
                    stopping = True
                    break
        finally:
            batches.close()
            if bar is not None:
                bar.close()
        self.partial["time"] = time.perf_counter() - t0
        if stopping and b < self.steps_per_epoch:
            path = self.save("last.npz", {"epoch": self.epoch, "batch": b},
                             partial=self._global_partial())
            self.log(f"saved {path} at epoch {self.epoch + 1}, batch {b}; continue with: "
                     f"{_resume_command(self.run_dir)}")
            self.stopped = "interrupted"
            return False
        return True

    def _agree_on_stop(self, intr) -> bool:
        """Whether to stop: a signal on any rank stops them all at the same point (each rank
        must leave the loop where the others do, or one waits in a collective for ever). The
        answer is the reduced flag, never the local one: a signal handled during the reduction
        sets the local flag after the others have read it; the next call carries it."""
        if self.comm.size == 1:
            return bool(intr.flag)
        flag, signum = self.comm.max([float(intr.flag), float(intr.signum or 0)])
        if flag and not intr.flag:
            intr.flag, intr.signum = True, int(signum) or None
        return bool(flag)

    # -- step 5: end of epoch ----------------------------------------------------------------------
    def end_epoch(self, intr, stop_after: int) -> None:
        """Validate, log, write the CSV, plot and checkpoints, decide whether to stop."""
        cfg, p = self.cfg, self._global_partial()
        n = max(p["n"], 1)
        row = {"epoch": self.epoch + 1, "lr": p.get("lr", self.opt.param_groups[0]["lr"]),
               "train_loss": p["loss"] / n, "train_top1": 100.0 * p["c1"] / n,
               "train_top5": 100.0 * p["c5"] / n, "epoch_time_s": p["time"],
               "images_per_s": p["n"] / max(p["time"], 1e-9)}
        if self.val_loader is not None:
            self._sync_buffers()
            with contextlib.ExitStack() as region:
                if self.ema is not None:
                    region.enter_context(self.ema.average_parameters(self.model))
                region.enter_context(self.autocast())
                ev = _evaluate_shard(self.comm, self.model, self.val_loader, self.device,
                                     len(self.classes), bool(self.cfg.get("tta")))
            row.update(val_loss=ev["loss"], val_top1=ev["top1"], val_top5=ev["top5"])
            _check_predictions(ev, self.classes, self.epoch + 1, self.log)
        self.history.append(row)
        self.epoch += 1
        self.run_epochs += 1
        self.start_batch = 0
        self.partial = self._fresh_partial()
        improved = False
        if "val_top1" in row:
            if self.per_epoch_sched:
                self.sched.step(row["val_top1"])
            if row["val_top1"] > self.best["val_top1"]:
                self.best = {"val_top1": row["val_top1"], "val_top5": row["val_top5"],
                             "val_loss": row["val_loss"], "epoch": self.epoch}
                self.bad_epochs, improved = 0, True
            else:
                self.bad_epochs += 1
        msg = (f"epoch {self.epoch}/{self.epochs}  train loss {row['train_loss']:.4f} "
               f"top-1 {row['train_top1']:.2f}%")
        if "val_top1" in row:
            msg += (f"  val loss {row['val_loss']:.4f} top-1 {row['val_top1']:.2f}% "
                    f"top-5 {row['val_top5']:.2f}%")
        self.log(msg + f"  lr {row['lr']:.4g}  {row['epoch_time_s']:.1f}s  "
                       f"{row['images_per_s']:.0f} img/s")
        if self.lead:
            write_csv(os.path.join(self.run_dir, "history.csv"), self.history)
        try:
            if cfg.get("plot", True) and self.lead:
                plot_curves(os.path.join(self.run_dir, "curves.png"), self.history,
                            title=f"{cfg['model']} "
                                  f"({os.path.basename(os.path.abspath(self.run_dir))})")
        except Exception as e:  # noqa: BLE001 - a plot must never stop training
            self.log(f"(plot not written: {e})")
        if cfg.get("tensorboard") and self.lead:
            self._tensorboard(row)
        if cfg.get("early_stop") and self.bad_epochs >= int(cfg["early_stop"]):
            self.stopped = "early_stop"
        elif stop_after and self.run_epochs >= stop_after and self.epoch < self.epochs:
            self.stopped = "stop_after_epochs"
        self.save("last.npz", {"epoch": self.epoch, "batch": 0})
        if improved:
            self.save("best.npz", {"epoch": self.epoch, "batch": 0})
        if self.stopped == "early_stop":
            self.log(f"early stop: no better validation top-1 for {self.bad_epochs} epochs "
                     f"(best {self.best['val_top1']:.2f}% at epoch {self.best['epoch']})")
        if self._agree_on_stop(intr):  # a signal during validation or the saves
            self.stopped = "interrupted"
            self.log(f"saved {os.path.join(self.run_dir, 'last.npz')} after epoch "
                     f"{self.epoch}; continue with: {_resume_command(self.run_dir)}")


    def _tensorboard(self, row: dict) -> None:
        """The epoch's numbers as TensorBoard scalars in <out>/tensorboard (step = epoch), as
        history.csv has them; like the plot, a failure is reported and training goes on. The
        first write of a session purges later steps an interrupted session left there."""
        try:
            if self.tb_writer is None:
                from fastconv.utils.tensorboard import SummaryWriter

                self.tb_writer = SummaryWriter(os.path.join(self.run_dir, "tensorboard"),
                                               purge_step=row["epoch"])
            w, step = self.tb_writer, row["epoch"]
            for key, tag in (("train_loss", "loss/train"), ("val_loss", "loss/val"),
                             ("train_top1", "top1/train"), ("val_top1", "top1/val"),
                             ("train_top5", "top5/train"), ("val_top5", "top5/val"),
                             ("lr", "lr"), ("images_per_s", "images_per_s")):
                if key in row:
                    w.add_scalar(tag, row[key], step)
            w.flush()
        except Exception as e:  # noqa: BLE001 - logging must never stop training
            self.log(f"(TensorBoard scalars not written: {e})")

    def close(self) -> None:
        if self.tb_writer is not None:
            self.tb_writer.close()


def train(config: dict, model=None, log=print, _interrupt_after_steps: int = 0) -> dict:
    """Run training as ``config`` says (keys as the command-line options, with underscores).

    ``model``: a Module to train instead of ``models.get_model(config["model"])`` (its
    class count must match the data). Returns a summary dict: ``best_val_top1``,
    ``best_epoch``, ``epochs_done``, ``history``, ``run_dir``, ``stopped`` (None,
    "interrupted", "early_stop", "stop_after_epochs" or "complete"), ``signal`` (the stop
    signal's number, if one stopped it) and ``model``.
    """
    given = dict(config)
    comm = _Comm(bool(given.get("distributed")) or launched_world_size() > 1)
    lead = comm.rank == 0
    resume = _resume_path(given)
    cfg, resume_ck, replaced = _resolve_run_config(given, model, resume,
                                                   log if lead else (lambda *a: None),
                                                   claim=lead)
    stop_after = int(given.get("stop_after_epochs") or 0)
    for k in SESSION_ONLY:
        cfg.pop(k, None)
    _check_config(cfg, model)
    comm.join(cfg["device"])
    cfg["world_size"] = comm.size
    if lead:
        os.makedirs(cfg["out"], exist_ok=True)

    run = _Run(cfg, log, comm)
    run.setup(model, resume_ck)
    if resume_ck is not None:
        run.restore(resume_ck, resume)
    elif lead:
        for f in replaced:  # --overwrite: the old run goes only once the new one can start
            os.remove(os.path.join(run.run_dir, f))
        atomic_write(os.path.join(run.run_dir, "config.json"),
                     (json.dumps(cfg, indent=2, sort_keys=True) + "\n").encode())
    if comm.size > 1:
        run.distribute()
    run.announce()

    if run.epoch >= run.epochs:
        run.log(f"the run is complete ({run.epoch} of {run.epochs} epochs); raise --epochs to "
                "go on")
        run.stopped = "complete"
    with _Interrupt() as intr:
        try:
            while run.epoch < run.epochs and run.stopped is None:
                if run.train_epoch(intr, _interrupt_after_steps):
                    run.end_epoch(intr, stop_after)
        finally:
            run.close()
    best = run.best
    if best["epoch"]:
        run.log(f"best validation top-1 {best['val_top1']:.2f}% (top-5 {best['val_top5']:.2f}%) at "
            f"epoch {best['epoch']}; checkpoints in {run.run_dir}")
    return {"best_val_top1": best["val_top1"] if best["epoch"] else None,
            "best_epoch": best["epoch"], "epochs_done": run.epoch, "history": run.history,
            "run_dir": run.run_dir, "stopped": run.stopped or "complete",
            "signal": intr.signum, "model": run.model}


# ------------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m models.train_cifar",
        usage="%(prog)s --model MODEL --data DATA --out RUN_DIR [options]\n"
              "       %(prog)s --out RUN_DIR --resume [CKPT] [options]\n"
              "       %(prog)s --list-models",
        description="Train a fastconv model on CIFAR-10 or an image-folder dataset.\n"
                    "Options left out take the model's recipe (--list-models shows them),\n"
                    "then the general defaults given in [brackets] below.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  python -m models.train_cifar --model cifar10_tutorial --epochs 50 "
               "--batch-size 128 --optimizer sgd --lr 0.05 --device cpu \\\n"
               "      --data ../shared/data/cifar10-jpeg-train.tar.gz --out runs/tutorial\n"
               "  python -m models.train_cifar --out runs/tutorial --resume\n"
               "outputs in --out: config.json, history.csv, curves.png, last.npz, best.npz")
    g = p.add_argument_group("model and data")
    g.add_argument("--model", help="registry name of the model (see --list-models); required "
                                   "unless --resume or --init-from names the run")
    g.add_argument("--model-opt", action="append", type=parse_model_option, metavar="KEY=VALUE",
                   help="option for the model builder, e.g. aux_logits=true or dropout=0.5 "
                        "(repeatable; values parsed as JSON)")
    g.add_argument("--list-models", action="store_true",
                   help="list the models with their default recipes and exit")
    g.add_argument("--data", help="training data: CIFAR-10 python version (directory or "
                                  "cifar-10-python.tar.gz) or an image folder root/<class>/* "
                                  "(directory or .tar.gz)")
    g.add_argument("--data-subdir", help="image folders holding several trees (train/, "
                                         "validation/): the one to train on")
    g.add_argument("--val-data", help="a separate validation set (same formats; for CIFAR-10 "
                                      "its test batch); default: hold back --val-per-class")
    g.add_argument("--val-subdir", help="the tree of --val-data to use")
    g.add_argument("--val-per-class", type=int,
                   help="images per class held back from --data for validation (the last ones "
                        "of each class; 0: no validation)")
    g.add_argument("--image-size", type=int,
                   help="resize image-folder images to this size on loading [native size; "
                        "the model's input for ImageNet-sized models]")
    g.add_argument("--input-size", type=int,
                   help="crop fed to the model (random crop for training, centre crop for "
                        "evaluation) [the model's input size, e.g. 24 for cifar10_tutorial]")
    g.add_argument("--augment", choices=AUGMENTATIONS,
                   help="augmentation: tutorial (crop, flip, brightness/contrast, per-image "
                        "standardisation), crop-flip (pad 4, crop, flip, normalise), flip, none")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, help="epochs to train")
    g.add_argument("--batch-size", type=int, help="images per training batch")
    g.add_argument("--eval-batch-size", type=int, help="images per validation batch "
                                                       "[2 x batch size]")
    g.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], help="the optimizer")
    g.add_argument("--lr", type=float, help="(peak) learning rate")
    g.add_argument("--momentum", type=float, help="SGD momentum")
    g.add_argument("--nesterov", action=argparse.BooleanOptionalAction,
                   help="Nesterov momentum for SGD")
    g.add_argument("--beta1", type=float, help="Adam/AdamW beta1")
    g.add_argument("--beta2", type=float, help="Adam/AdamW beta2")
    g.add_argument("--weight-decay", type=float,
                   help="L2 weight decay (decoupled for AdamW) on weights of 2+ dimensions "
                        "(cifar10_tutorial: its own per-layer table)")
    g.add_argument("--wd-bias-bn", action=argparse.BooleanOptionalAction,
                   help="also decay biases and batch-norm parameters")
    g.add_argument("--schedule", choices=["constant", "step", "multistep", "cosine", "onecycle",
                                          "plateau"],
                   help="learning-rate schedule, stepped every batch (plateau: every epoch on "
                        "validation top-1)")
    g.add_argument("--warmup-epochs", type=float,
                   help="linear warm-up from 0 over this many epochs (onecycle: its rising "
                        "part)")
    g.add_argument("--step-size", type=int, help="step schedule: epochs between decays")
    g.add_argument("--gamma", type=float, help="step/multistep/plateau decay factor")
    g.add_argument("--milestones", type=int, nargs="+", help="multistep: epochs of the decays")
    g.add_argument("--min-lr", type=float, help="cosine/plateau: lowest rate")
    g.add_argument("--plateau-patience", type=int, help="plateau: epochs without improvement "
                                                        "before a decay")
    g.add_argument("--label-smoothing", type=float, help="label smoothing of the loss")
    g.add_argument("--aux-weight", type=float,
                   help="weight of auxiliary-classifier losses (models returning (main, aux, "
                        "...) in training)")
    g.add_argument("--ema-decay", type=float,
                   help="keep an exponential moving average of the weights with this decay "
                        "and validate/checkpoint-evaluate with it (0: off)")
    g.add_argument("--clip-grad", type=float, help="clip the gradient norm to this (0: off)")
    g.add_argument("--tta", action=argparse.BooleanOptionalAction,
                   help="validate with test-time flip averaging: each image's softmax "
                        "averaged with its mirror image's")
    g.add_argument("--early-stop", type=int,
                   help="stop after this many epochs without a better validation top-1 "
                        "(0: off)")
    g = p.add_argument_group("fine-tuning")
    g.add_argument("--init-from", metavar="CKPT",
                   help="start from a checkpoint's weights; tensors that do not fit (a "
                        "classifier for another class count) are freshly initialised")
    g.add_argument("--freeze-backbone", action="store_true",
                   help="with --init-from: train only the new classifier (the layers not "
                        "loaded plus the last Linear)")
    g = p.add_argument_group("run")
    g.add_argument("--device", choices=["cpu", "cuda"], help="where to train")
    g.add_argument("--precision", choices=["fp32", "bf16"],
                   help="bf16: forward passes under fastconv.autocast (convolutions and linear "
                        "layers in bfloat16, float32 master weights); fp32: float32 throughout")
    g.add_argument("--distributed", action="store_true", default=None,
                   help="train data parallel over MPI (mpi4py; NCCL for the gradients with "
                        "--device cuda, one rank per GPU); implied when mpirun -np N "
                        "started this with N > 1 (OMPI_COMM_WORLD_SIZE / PMI_SIZE). "
                        "--batch-size is per rank (global batch N x batch size); the learning "
                        "rate is used unchanged for the global batch (no automatic scaling: "
                        "for the linear scaling rule give --lr x N); rank 0 writes the run "
                        "folder, whose config.json records world_size; --resume works with "
                        "any rank count (the data order then differs)")
    g.add_argument("--sync-bn", action="store_true", default=None,
                   help="data parallel: batch norm with the statistics of the global batch "
                        "(nn.SyncBatchNorm, one all-gather per layer in forward and one "
                        "all-reduce in backward) instead of each rank's own; kept on --resume")
    g.add_argument("--out", metavar="RUN_DIR", help="run folder for checkpoints, CSV and plot")
    g.add_argument("--resume", nargs="?", const="auto", metavar="CKPT",
                   help="continue the run in --out from last.npz (or from CKPT); only {} "
                        "may change, the rest comes from the checkpoint (other options given "
                        "are ignored, with a warning)")
    g.add_argument("--overwrite", action="store_true",
                   help="start over in an --out that already holds a run, replacing its "
                        "checkpoints, history and plot (without it such an --out is refused)")
    g.add_argument("--seed", type=int, help="seed of initialisation, shuffling and "
                                            "augmentation")
    g.add_argument("--workers", type=int, help="data-preparation threads [min(4, cores)]")
    g.add_argument("--cache-dir", metavar="DIR",
                   help="keep decoded image folders here so later runs skip decoding ('' or "
                        "none: off) [$FASTCONV_CACHE or ~/.cache/fastconv]")
    g.add_argument("--limit-batches", type=int,
                   help="train on at most this many batches per epoch (quick trials; 0: all)")
    g.add_argument("--stop-after-epochs", type=int,
                   help="stop (as after Ctrl-C) once this many epochs ran in this session; "
                        "--resume goes on; the schedule keeps the full --epochs [0: off]")
    g.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                   help="no progress bar (the per-epoch lines are still printed)")
    g.add_argument("--no-plot", dest="plot", action="store_false", default=None,
                   help="do not draw curves.png")
    g.add_argument("--tensorboard", action="store_true", default=None,
                   help="also write each epoch's numbers as TensorBoard scalars to "
                        "RUN_DIR/tensorboard (needs the tensorboard package; view with "
                        "tensorboard --logdir RUN_DIR)")
    _append_defaults(p)
    flags = {a.dest: a.option_strings[0] for a in p._actions if a.option_strings}
    resume = next(a for a in p._actions if a.dest == "resume")
    resume.help = resume.help.format(", ".join(flags[k] for k in RESUME_OVERRIDES))
    return p


def _append_defaults(parser: argparse.ArgumentParser) -> None:
    """End each option's help with its default from DEFAULTS ("per model" where a recipe in
    MODEL_DEFAULTS sets it), so the table is the one place the defaults are written."""
    for action in parser._actions:
        key = action.dest
        if key not in DEFAULTS or DEFAULTS[key] is None or action.help is None \
                or action.help.endswith("]") or isinstance(action, argparse._StoreFalseAction):
            continue
        v = DEFAULTS[key]
        text = ("on" if v else "off") if isinstance(v, bool) else str(v)
        per_model = sorted(m for m, r in MODEL_DEFAULTS.items() if key in r and r[key] != v)
        if per_model:
            text = f"per model; {text}"
        action.help += f" [{text}]"


def list_models_text() -> str:
    import models

    lines = []
    for name in models.list_models():
        spec = models.get_model_spec(name)
        rec = resolve_config({"model": name})
        lines.append(f"{name:22s} input {spec.input_shape[1]}x{spec.input_shape[2]}  "
                     f"{rec['optimizer']} lr {rec['lr']} {rec['schedule']} "
                     f"warm-up {rec['warmup_epochs']}  augment {rec['augment']}  "
                     f"epochs {rec['epochs']}  wd "
                     f"{'per layer' if rec['weight_decay'] is None else rec['weight_decay']}"
                     + (f"  ema {rec['ema_decay']}" if rec["ema_decay"] else "")
                     + (f"  clip {rec['clip_grad']}" if rec["clip_grad"] else "")
                     + f"\n{'':22s} {spec.description}")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_models:
        print(list_models_text())
        return 0
    given = {k: v for k, v in vars(args).items() if v is not None and k != "list_models"}
    if not given.get("resume"):
        given.setdefault("cache_dir", default_cache_dir())
    if "model_opt" in given:
        given["model_options"] = dict(given.pop("model_opt"))
    try:
        result = train(given)
    except (DataError, ckpt_io.CheckpointError, ValueError, FloatingPointError,
            DeadNetworkError) as e:
        print(f"error: {e}", file=sys.stderr)
        _abort_other_ranks(2)
        return 2
    if result["stopped"] == "interrupted":
        return 128 + int(result.get("signal") or signal.SIGINT)  # 130 Ctrl-C, 143 SIGTERM
    return 0


def _abort_other_ranks(code: int) -> None:
    """After an error on one rank of a data-parallel job, end them all (the others would wait
    in their next collective for ever)."""
    mpi = sys.modules.get("mpi4py.MPI")  # imported only by a run under MPI
    if mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized() \
            and mpi.COMM_WORLD.Get_size() > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        mpi.COMM_WORLD.Abort(code)


if __name__ == "__main__":
    sys.exit(main())
