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
epoch); ``last.npz`` (every epoch, and on Ctrl-C) and ``best.npz`` (best validation
top-1). ``--resume`` continues from ``last.npz`` -- also from the middle of an
epoch after Ctrl-C -- and gives the same weights as a run that was never stopped
(bit-exact on the CPU).

Everything also works from Python: ``train(config_dict, model=my_module)``.
"""

from __future__ import annotations

import argparse
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
    CIFAR10,
    DataError,
    DataLoader,
    ImageFolder,
    Subset,
    make_transform,
    open_dataset,
    split_per_class,
)
from fastconv.data.transforms import AUGMENTATIONS
from fastconv.metrics import confusion_matrix, predicted_class, topk_hits

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
    "early_stop": 0,
    # fine-tuning and the run
    "init_from": None, "freeze_backbone": False, "seed": 0, "workers": None, "device": "cpu",
    "out": None, "limit_batches": 0, "progress": True, "plot": True,
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
    # Network in Network (no batch norm): pad-4 crops + flips, Nesterov SGD, a gentle peak
    # rate after a warm-up, cosine decay.
    "nin_cifar": {**_CIFAR_SGD, "lr": 0.05, "epochs": 60, "warmup_epochs": 2.0},
    "googlenet_cifar": {**_CIFAR_SGD, "lr": 0.1, "epochs": 100, "warmup_epochs": 2.0,
                        "aux_weight": 0.3},
    "bn_inception_cifar": {**_CIFAR_SGD, "lr": 0.1, "epochs": 100, "warmup_epochs": 1.0},
    "inception_small": {**_CIFAR_SGD, "lr": 0.1, "epochs": 60, "warmup_epochs": 1.0},
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
RESUME_OVERRIDES = ("epochs", "device", "workers", "progress", "plot", "early_stop",
                    "eval_batch_size", "cache_dir")
#: Options of one session only: not stored in the run's configuration.
SESSION_ONLY = ("stop_after_epochs", "resume", "overwrite")
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

def eval_transform(cfg: dict, image_size):
    """The deterministic transform used for validation, evaluation and prediction."""
    return make_transform(cfg["augment"], train=False, input_size=cfg.get("input_size"),
                          image_size=image_size)


def default_cache_dir() -> str:
    """Where decoded image folders are cached: $FASTCONV_CACHE or ~/.cache/fastconv."""
    return os.environ.get("FASTCONV_CACHE") or os.path.join("~", ".cache", "fastconv")


def _open(path, subdir, image_size, train=True, cache_dir=None, progress=False, threads=None):
    """Open a dataset; image folders are decoded at once (in threads) and cached on disk."""
    size = None if image_size is None else (int(image_size), int(image_size))
    if cache_dir in ("", "none", "off"):
        cache_dir = None
    ds = open_dataset(path, train=train, subdir=subdir, size=size, cache_dir=cache_dir)
    if isinstance(ds, ImageFolder) and not ds.cache_hit:
        ds.decode_all(num_threads=threads, progress=progress)
    if isinstance(ds, CIFAR10) and size is not None and size != (32, 32):
        raise DataError(f"--image-size {image_size}: CIFAR-10 arrays are 32x32 and are not "
                        "resized; use a *_cifar model (or an image folder of the images)")
    return ds


def load_datasets(cfg: dict):
    """(train set, validation set or None, class names) as the config says."""
    kw = {"cache_dir": cfg.get("cache_dir"), "progress": bool(cfg.get("progress", True)),
              "threads": cfg.get("workers")}
    full = _open(cfg["data"], cfg.get("data_subdir"), cfg.get("image_size"), train=True, **kw)
    if cfg.get("val_data"):
        val = _open(cfg["val_data"], cfg.get("val_subdir"), cfg.get("image_size"), train=False,
                    **kw)
        if list(val.classes) != list(full.classes):
            raise DataError(f"--val-data classes {val.classes} differ from the training "
                            f"classes {full.classes}")
        return full, val, list(full.classes)
    if cfg.get("val_per_class", 0) > 0:
        tr, va = split_per_class(full.targets, int(cfg["val_per_class"]), mode="last")
        return Subset(full, tr), Subset(full, va), list(full.classes)
    return full, None, list(full.classes)


def build_model(cfg: dict, num_classes: int):
    """The registry's model ``cfg["model"]`` with ``cfg["model_options"]``; an option the
    model does not take is a ValueError naming it and listing the ones it takes."""
    import models

    options = dict(cfg.get("model_options") or {})
    _check_model_options(cfg["model"], options)
    return models.get_model(cfg["model"], num_classes=num_classes, **options)


def _check_model_options(name: str, options) -> None:
    import models

    takes = models.model_options(name)
    for key in options or {} if takes is not None else ():
        if key not in takes:
            listed = ", ".join(sorted(takes)) if takes else "none"
            raise ValueError(f"--model-opt {key}: {name} takes no option {key!r} "
                             f"(its options: {listed})")


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
    groups = {}
    for n, p in named:
        groups.setdefault(wd_of[n], []).append(p)
    param_groups = [{"params": ps, "weight_decay": wd} for wd, ps in sorted(groups.items())]
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
        return S.OneCycleLR(opt, max_lr=cfg["lr"], total_steps=total, pct_start=pct)
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


def top_k_correct(logits: np.ndarray, target: np.ndarray, k: int) -> int:
    """How many rows have their target among their ``k`` top classes (as torch.topk picks
    them: ties to the lower class index; a row holding NaN is never right)."""
    return int(topk_hits(logits, target, k).sum())


def _split_output(out):
    """(main logits, [aux logits...]) of a model output (tensor or tuple)."""
    if isinstance(out, (tuple, list)):
        return out[0], [a for a in out[1:] if a is not None]
    return out, []


def evaluate_model(model, loader, device: str = "cpu", num_classes: int | None = None,
                   max_batches: int = 0):
    """Evaluate ``model`` in eval mode over ``loader`` (batches of ``(images, labels)``).

    Returns a dict: ``loss`` (mean cross-entropy), ``top1`` and ``top5`` (percent), ``n``,
    ``confusion`` (rows: true class, columns: predicted class), ``no_prediction`` (per true
    class, the images whose scores held NaN: never counted correct), ``predicted`` (how many
    images each class was predicted for) and ``constant_logits`` (True when every image got
    the same scores: the network ignores its input).
    """
    import fastconv.functional as F

    was_training = model.training
    model.eval()
    conf = None
    loss_sum, c1, c5, n = 0.0, 0, 0, 0
    first_row, constant = None, True
    with fastconv.no_grad():
        for b, (x, y) in enumerate(loader):
            if max_batches and b >= max_batches:
                break
            logits, _ = _split_output(model(fastconv.tensor(x, device=device)))
            loss_sum += float(F.cross_entropy(logits, fastconv.tensor(y, device=device)).item()) \
                * len(y)
            lg = logits.detach().numpy()
            if conf is None:
                K = num_classes or lg.shape[1]
                conf, missing = np.zeros((K, K), np.int64), np.zeros(K, np.int64)
            c1 += top_k_correct(lg, y, 1)
            c5 += top_k_correct(lg, y, 5)
            pred = predicted_class(lg)
            conf += confusion_matrix(y, pred, len(conf))
            missing += np.bincount(np.asarray(y)[pred < 0], minlength=len(conf))
            if len(lg):
                first_row = lg[0] if first_row is None else first_row
                constant = constant and _rows_constant(lg, first_row)
            n += len(y)
    model.train(was_training)
    if n == 0:
        K = num_classes or 0
        return {"loss": float("nan"), "top1": float("nan"), "top5": float("nan"), "n": 0,
                "confusion": np.zeros((K, K), np.int64), "no_prediction": np.zeros(K, np.int64),
                "predicted": np.zeros(K, np.int64), "constant_logits": False}
    return {"loss": loss_sum / n, "top1": 100.0 * c1 / n, "top5": 100.0 * c5 / n, "n": n,
            "confusion": conf, "no_prediction": missing, "predicted": conf.sum(axis=0),
            "constant_logits": bool(constant and n > 1)}


def _rows_constant(logits: np.ndarray, row: np.ndarray) -> bool:
    """Whether every row of ``logits`` equals ``row`` up to float32 rounding of its scale."""
    scale = float(np.max(np.abs(row))) if row.size and np.all(np.isfinite(row)) else 0.0
    return bool(np.all(np.abs(logits - row) <= 1e-6 * scale + 1e-7))


def model_from_checkpoint(path: str, device: str = "cpu", use_ema: bool = True,
                          model: str | None = None, model_options: dict | None = None):
    """(model in eval mode, checkpoint dict) rebuilt from a run's checkpoint and config.

    ``model`` / ``model_options``: the registry name and builder options to rebuild instead
    of the run's own (for a checkpoint of a model trained from Python with
    ``train(config, model=...)``, which the registry cannot rebuild by itself).
    """
    ck = ckpt_io.load_checkpoint(path)
    cfg = ck.get("config")
    if not isinstance(cfg, dict) or not cfg.get("classes"):
        raise ckpt_io.CheckpointError(f"{path} holds no run configuration (model name, "
                                      "classes); was it written by models.train_cifar?")
    name = model or cfg.get("model")
    options = dict(model_options if model is not None else cfg.get("model_options") or {})
    import models

    if name not in models.list_models():
        custom = cfg.get("custom_model") or model is None
        why = (f"its model {name!r} was passed to train(config, model=...) from Python"
               if custom and model is None else f"{name!r} is not in the model registry")
        raise ckpt_io.CheckpointError(
            f"{path}: cannot rebuild the model: {why}. Give a registered model of the same "
            "layout with --model NAME [--model-opt KEY=VALUE ...], or evaluate it from Python: "
            "build the model, fastconv.load(path, model) and "
            "models.train_cifar.evaluate_model(model, loader) (see the README)")
    model_obj = build_model({"model": name, "model_options": options},
                            num_classes=len(cfg["classes"]))
    state = ck["model"]
    if use_ema and isinstance(ck.get("ema"), dict) and "shadow" in ck["ema"]:
        state = ck["ema"]["shadow"]
    try:
        ckpt_io.load_model_state(model_obj, state, strict=True, source=f"checkpoint {path}")
    except (KeyError, RuntimeError, ValueError) as e:
        if model is None:
            raise
        raise ckpt_io.CheckpointError(f"{path}: its weights do not fit --model {name}: "
                                      f"{e}") from None
    model_obj.to(device)
    model_obj.eval()
    return model_obj, ck


# ------------------------------------------------------------------------------------------------
# run-folder output: CSV and plot
# ------------------------------------------------------------------------------------------------

CSV_FIELDS = ["epoch", "lr", "train_loss", "train_top1", "train_top5", "val_loss", "val_top1",
              "val_top5", "epoch_time_s", "images_per_s"]


def _atomic_write(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_csv(path: str, history: list) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    w.writeheader()
    for row in history:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    _atomic_write(path, buf.getvalue().encode())


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
    _atomic_write(path, buf.getvalue())


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


def train(config: dict, model=None, log=print, _interrupt_after_steps: int = 0) -> dict:
    """Run training as ``config`` says (keys as the command-line options, with underscores).

    ``model``: a Module to train instead of ``models.get_model(config["model"])`` (its
    class count must match the data). Returns a summary dict: ``best_val_top1``,
    ``best_epoch``, ``epochs_done``, ``history``, ``run_dir``, ``stopped`` (None,
    "interrupted", "early_stop", "stop_after_epochs" or "complete").
    """
    given = dict(config)
    resume = _resume_path(given)
    resume_ck = None
    if resume:
        resume_ck = ckpt_io.load_checkpoint(resume)
        if not isinstance(resume_ck.get("config"), dict):
            raise ckpt_io.CheckpointError(f"{resume}: no run configuration to resume")
        cfg = dict(resume_ck["config"])
        for k in RESUME_OVERRIDES:
            if given.get(k) is not None:
                cfg[k] = given[k]
        if given.get("out"):
            cfg["out"] = given["out"]
    else:
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
        replaced = _claim_run_dir(given["out"], bool(given.get("overwrite")))
    stop_after = int(given.get("stop_after_epochs") or 0)
    for k in SESSION_ONLY:
        cfg.pop(k, None)
    for k in ("augment",):
        if cfg[k] not in AUGMENTATIONS:
            raise ValueError(f"--augment must be one of {AUGMENTATIONS}")
    if model is None:
        import models

        try:
            models.get_model_spec(cfg["model"])
        except KeyError as e:
            raise ValueError(str(e).strip("'\"")) from None
        _check_model_options(cfg["model"], cfg.get("model_options"))
    device = cfg["device"]
    if device == "cuda":
        try:
            from fastconv.backend import get_backend

            get_backend("cuda")
        except Exception as e:
            raise ValueError(f"--device cuda is not available here: {e}") from e
    run_dir = cfg["out"]
    os.makedirs(run_dir, exist_ok=True)

    # -- data -------------------------------------------------------------------------------------
    train_ds, val_ds, classes = load_datasets(cfg)
    if resume_ck is not None and cfg.get("classes") and list(cfg["classes"]) != classes:
        raise DataError(f"the data's classes {classes} differ from the run's {cfg['classes']}")
    cfg["classes"] = classes
    image_hw = train_ds.image_shape[:2]
    cfg["image_hw"] = [int(image_hw[0]), int(image_hw[1])]  # what predict resizes files to
    if cfg["input_size"] is None:
        cfg["input_size"] = int(image_hw[0])
    train_tf = make_transform(cfg["augment"], train=True, input_size=cfg["input_size"],
                              image_size=image_hw)
    val_tf = make_transform(cfg["augment"], train=False, input_size=cfg["input_size"],
                            image_size=image_hw)
    train_loader = DataLoader(train_ds, batch_size=int(cfg["batch_size"]), shuffle=True,
                              seed=int(cfg["seed"]), transform=train_tf, drop_last=True,
                              num_workers=int(cfg["workers"]))
    val_loader = None if val_ds is None else DataLoader(
        val_ds, batch_size=int(cfg["eval_batch_size"]), shuffle=False, transform=val_tf,
        num_workers=int(cfg["workers"]))
    if len(train_loader) == 0:
        raise DataError(f"{len(train_ds)} training images make no batch of "
                        f"{cfg['batch_size']}; lower --batch-size")
    steps_per_epoch = len(train_loader)
    if cfg.get("limit_batches"):
        steps_per_epoch = min(steps_per_epoch, int(cfg["limit_batches"]))

    # -- model, optimizer, schedule -----------------------------------------------------------
    fastconv.manual_seed(int(cfg["seed"]))
    if model is None:
        model = build_model(cfg, num_classes=len(classes))
    if resume_ck is None and cfg.get("init_from"):
        init_from_checkpoint(model, cfg["init_from"], bool(cfg.get("freeze_backbone")), log=log)
    elif resume_ck is not None and resume_ck.get("trainable") is not None:
        trainable = set(resume_ck["trainable"])  # a frozen backbone stays frozen
        for name, p in model.named_parameters():
            p.requires_grad = name in trainable
    model.to(device)
    opt = build_optimizer(cfg, model)
    sched = build_scheduler(cfg, opt, steps_per_epoch)
    per_epoch_sched = isinstance(sched, optim.ReduceLROnPlateau)
    ema = optim.ExponentialMovingAverage(model, decay=float(cfg["ema_decay"])) \
        if cfg["ema_decay"] else None

    history, best = [], {"val_top1": -math.inf, "epoch": 0}
    epoch, start_batch, step, bad_epochs = 0, 0, 0, 0
    partial = {"loss": 0.0, "c1": 0, "c5": 0, "n": 0, "time": 0.0}
    if resume_ck is not None:
        ckpt_io.load_model_state(model, resume_ck["model"], strict=True,
                                 source=f"checkpoint {resume}")
        model.to(device)
        opt.load_state_dict(resume_ck["optimizer"])
        if ema is not None and "ema" in resume_ck:
            ema.load_state_dict(resume_ck["ema"])
        fastconv.set_rng_state(resume_ck["rng_state"])
        pos = resume_ck["position"]
        epoch, start_batch, step = int(pos["epoch"]), int(pos["batch"]), int(resume_ck["step"])
        history = list(resume_ck.get("history") or [])
        best = dict(resume_ck.get("best") or best)
        bad_epochs = int(resume_ck.get("bad_epochs", 0))
        partial = dict(resume_ck.get("partial") or partial)
        if per_epoch_sched:
            sched.load_state_dict(resume_ck["scheduler"])
        else:
            sched.step(epoch=step)  # closed form: the rate at this step (even if --epochs grew)
        log(f"resuming {resume}: epoch {epoch + 1}, batch {start_batch}, step {step}")

    n_params = sum(int(np.prod(p.shape)) for p in model.parameters())
    n_train = sum(int(np.prod(p.shape)) for p in model.parameters() if p.requires_grad)
    if resume_ck is None:
        for f in replaced:  # --overwrite: the old run goes only once the new one can start
            os.remove(os.path.join(run_dir, f))
        _atomic_write(os.path.join(run_dir, "config.json"),
                      (json.dumps(cfg, indent=2, sort_keys=True) + "\n").encode())
    log(f"{cfg['model']}: {n_params:,} parameters ({n_train:,} trainable) on {device}; "
        f"{len(train_ds)} training / {len(val_ds) if val_ds is not None else 0} validation "
        f"images, {len(classes)} classes, input {cfg['input_size']}x{cfg['input_size']}, "
        f"augment {cfg['augment']}; {cfg['optimizer']} lr {cfg['lr']} {cfg['schedule']}")

    def save(name: str, position: dict) -> str:
        _check_finite_weights(model, ema, name)
        return fastconv.save(
            os.path.join(run_dir, name), model, opt, scheduler=sched, ema=ema,
            epoch=position["epoch"], step=step, config=cfg, position=position, history=history,
            best=best, bad_epochs=bad_epochs, partial=partial, loader=train_loader,
            trainable=[n for n, p in model.named_parameters() if p.requires_grad])

    import fastconv.functional as F

    stopped = None
    label_smoothing = float(cfg["label_smoothing"])
    aux_weight = float(cfg["aux_weight"])
    clip = float(cfg["clip_grad"])
    epochs = int(cfg["epochs"])
    run_epochs = 0
    dead_run = 0  # training batches in a row whose logits were the same for every image
    if epoch >= epochs:
        log(f"the run is complete ({epoch} of {epochs} epochs); raise --epochs to go on")
        stopped = "complete"
    with _Interrupt() as intr:
        while epoch < epochs and stopped is None:
            model.train()
            _frozen_bn_to_eval(model)
            t0 = time.perf_counter() - partial["time"]
            bar = None
            if cfg.get("progress", True):
                from tqdm import tqdm

                bar = tqdm(total=steps_per_epoch, initial=start_batch, unit="batch",
                           desc=f"epoch {epoch + 1}/{epochs}", dynamic_ncols=True, leave=True,
                           file=sys.stderr)
            b = start_batch
            batches = train_loader.iter_epoch(epoch, start_batch=start_batch)
            try:
                for x, y in batches:
                    if b >= steps_per_epoch:
                        break
                    xt = fastconv.tensor(x, device=device)
                    yt = fastconv.tensor(y, device=device)
                    main, aux = _split_output(model(xt))
                    loss = F.cross_entropy(main, yt, label_smoothing=label_smoothing)
                    total_loss = loss
                    for a in aux:
                        total_loss = total_loss + aux_weight * F.cross_entropy(
                            a, yt, label_smoothing=label_smoothing)
                    opt.zero_grad()
                    total_loss.backward()
                    if clip > 0:
                        optim.clip_grad_norm_([p for p in model.parameters() if p.requires_grad],
                                              clip)
                    partial["lr"] = float(opt.param_groups[0]["lr"])  # the rate of this update
                    opt.step()
                    step += 1
                    if not per_epoch_sched:
                        sched.step()
                    if ema is not None:
                        ema.update(model)
                    lv = float(loss.item())
                    if not math.isfinite(lv):
                        raise FloatingPointError(
                            f"the loss became {lv} at epoch {epoch + 1}, batch {b}; lower --lr "
                            "or set --clip-grad")
                    lg = main.detach().numpy()
                    dead_run = dead_run + 1 if len(lg) > 1 and _rows_constant(lg, lg[0]) else 0
                    if dead_run >= DEAD_AFTER_BATCHES:
                        raise DeadNetworkError(_dead_message(
                            f"in the last {dead_run} training batches (up to epoch {epoch + 1}, "
                            f"batch {b + 1})", lv, lg.shape[1]))
                    partial["loss"] += lv * len(y)
                    partial["c1"] += top_k_correct(lg, y, 1)
                    partial["c5"] += top_k_correct(lg, y, 5)
                    partial["n"] += len(y)
                    b += 1
                    if bar is not None:
                        el = time.perf_counter() - t0
                        bar.set_postfix(loss=f"{partial['loss'] / partial['n']:.3f}",
                                        acc=f"{100.0 * partial['c1'] / partial['n']:.1f}%",
                                        img_s=f"{partial['n'] / max(el, 1e-9):.0f}",
                                        refresh=False)
                        bar.update(1)
                    if intr.flag or (_interrupt_after_steps and step >= _interrupt_after_steps):
                        intr.flag = True
                        break
            finally:
                batches.close()
                if bar is not None:
                    bar.close()
            if intr.flag and b < steps_per_epoch:
                partial["time"] = time.perf_counter() - t0
                path = save("last.npz", {"epoch": epoch, "batch": b})
                log(f"saved {path} at epoch {epoch + 1}, batch {b}; continue with: "
                    f"{_resume_command(run_dir)}")
                stopped = "interrupted"
                break
            train_time = time.perf_counter() - t0
            n = max(partial["n"], 1)
            row = {"epoch": epoch + 1, "lr": partial.get("lr", opt.param_groups[0]["lr"]),
                   "train_loss": partial["loss"] / n, "train_top1": 100.0 * partial["c1"] / n,
                   "train_top5": 100.0 * partial["c5"] / n, "epoch_time_s": train_time,
                   "images_per_s": partial["n"] / max(train_time, 1e-9)}
            if val_loader is not None:
                if ema is not None:
                    with ema.average_parameters(model):
                        ev = evaluate_model(model, val_loader, device, len(classes))
                else:
                    ev = evaluate_model(model, val_loader, device, len(classes))
                row.update(val_loss=ev["loss"], val_top1=ev["top1"], val_top5=ev["top5"])
                _check_predictions(ev, classes, epoch + 1, log)
            history.append(row)
            epoch += 1
            run_epochs += 1
            start_batch = 0
            partial = {"loss": 0.0, "c1": 0, "c5": 0, "n": 0, "time": 0.0}
            improved = False
            if "val_top1" in row:
                if per_epoch_sched:
                    sched.step(row["val_top1"])
                if row["val_top1"] > best["val_top1"]:
                    best = {"val_top1": row["val_top1"], "val_top5": row["val_top5"],
                            "val_loss": row["val_loss"], "epoch": epoch}
                    bad_epochs, improved = 0, True
                else:
                    bad_epochs += 1
            msg = (f"epoch {epoch}/{epochs}  train loss {row['train_loss']:.4f} "
                   f"top-1 {row['train_top1']:.2f}%")
            if "val_top1" in row:
                msg += (f"  val loss {row['val_loss']:.4f} top-1 {row['val_top1']:.2f}% "
                        f"top-5 {row['val_top5']:.2f}%")
            log(msg + f"  lr {row['lr']:.4g}  {train_time:.1f}s  {row['images_per_s']:.0f} img/s")
            write_csv(os.path.join(run_dir, "history.csv"), history)
            try:
                if cfg.get("plot", True):
                    plot_curves(os.path.join(run_dir, "curves.png"), history,
                                title=f"{cfg['model']} "
                                      f"({os.path.basename(os.path.abspath(run_dir))})")
            except Exception as e:  # noqa: BLE001 - a plot must never stop training
                log(f"(plot not written: {e})")
            if cfg.get("early_stop") and bad_epochs >= int(cfg["early_stop"]):
                stopped = "early_stop"
            elif stop_after and run_epochs >= stop_after and epoch < epochs:
                stopped = "stop_after_epochs"
            save("last.npz", {"epoch": epoch, "batch": 0})
            if improved:
                save("best.npz", {"epoch": epoch, "batch": 0})
            if stopped == "early_stop":
                log(f"early stop: no better validation top-1 for {bad_epochs} epochs "
                    f"(best {best['val_top1']:.2f}% at epoch {best['epoch']})")
            if intr.flag:
                stopped = "interrupted"
                log(f"saved {os.path.join(run_dir, 'last.npz')} after epoch {epoch}; continue "
                    f"with: {_resume_command(run_dir)}")
    if stopped is None:
        stopped = "complete"
    if best["epoch"]:
        log(f"best validation top-1 {best['val_top1']:.2f}% (top-5 {best['val_top5']:.2f}%) at "
            f"epoch {best['epoch']}; checkpoints in {run_dir}")
    return {"best_val_top1": best["val_top1"] if best["epoch"] else None,
            "best_epoch": best["epoch"], "epochs_done": epoch, "history": history,
            "run_dir": run_dir, "stopped": stopped, "signal": intr.signum, "model": model}


# ------------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------------

def _model_option(text: str):
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    try:
        v = json.loads(v)
    except json.JSONDecodeError:
        pass
    return k, v


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
    g.add_argument("--model-opt", action="append", type=_model_option, metavar="KEY=VALUE",
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
                        "of each class; 0: no validation) [500]")
    g.add_argument("--image-size", type=int,
                   help="resize image-folder images to this size on loading [native size; "
                        "the model's input for ImageNet-sized models]")
    g.add_argument("--input-size", type=int,
                   help="crop fed to the model (random crop for training, centre crop for "
                        "evaluation) [the model's input size, e.g. 24 for cifar10_tutorial]")
    g.add_argument("--augment", choices=AUGMENTATIONS,
                   help="augmentation: tutorial (crop, flip, brightness/contrast, per-image "
                        "standardisation), crop-flip (pad 4, crop, flip, normalise), flip, none "
                        "[per model; crop-flip]")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, help="epochs to train [per model; 30]")
    g.add_argument("--batch-size", type=int, help="images per training batch [128]")
    g.add_argument("--eval-batch-size", type=int, help="images per validation batch "
                                                       "[2 x batch size]")
    g.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], help="[sgd]")
    g.add_argument("--lr", type=float, help="(peak) learning rate [per model; 0.1]")
    g.add_argument("--momentum", type=float, help="SGD momentum [0.9]")
    g.add_argument("--nesterov", action=argparse.BooleanOptionalAction,
                   help="Nesterov momentum for SGD [on]")
    g.add_argument("--beta1", type=float, help="Adam/AdamW beta1 [0.9]")
    g.add_argument("--beta2", type=float, help="Adam/AdamW beta2 [0.999]")
    g.add_argument("--weight-decay", type=float,
                   help="L2 weight decay (decoupled for AdamW) on weights of 2+ dimensions "
                        "[5e-4; cifar10_tutorial: its own per-layer table]")
    g.add_argument("--wd-bias-bn", action=argparse.BooleanOptionalAction,
                   help="also decay biases and batch-norm parameters [off]")
    g.add_argument("--schedule", choices=["constant", "step", "multistep", "cosine", "onecycle",
                                          "plateau"],
                   help="learning-rate schedule, stepped every batch (plateau: every epoch on "
                        "validation top-1) [cosine]")
    g.add_argument("--warmup-epochs", type=float,
                   help="linear warm-up from 0 over this many epochs (onecycle: its rising "
                        "part) [per model; 0]")
    g.add_argument("--step-size", type=int, help="step schedule: epochs between decays [30]")
    g.add_argument("--gamma", type=float, help="step/multistep/plateau decay factor [0.1]")
    g.add_argument("--milestones", type=int, nargs="+", help="multistep: epochs of the decays")
    g.add_argument("--min-lr", type=float, help="cosine/plateau: lowest rate [0]")
    g.add_argument("--plateau-patience", type=int, help="plateau: epochs without improvement "
                                                        "before a decay [5]")
    g.add_argument("--label-smoothing", type=float, help="label smoothing of the loss [0]")
    g.add_argument("--aux-weight", type=float,
                   help="weight of auxiliary-classifier losses (models returning (main, aux, "
                        "...) in training) [0.3, GoogLeNet's; inception_v3 0.4]")
    g.add_argument("--ema-decay", type=float,
                   help="keep an exponential moving average of the weights with this decay "
                        "and validate/checkpoint-evaluate with it (0: off) [per model; 0]")
    g.add_argument("--clip-grad", type=float, help="clip the gradient norm to this (0: off) [0]")
    g.add_argument("--early-stop", type=int,
                   help="stop after this many epochs without a better validation top-1 "
                        "(0: off) [0]")
    g = p.add_argument_group("fine-tuning")
    g.add_argument("--init-from", metavar="CKPT",
                   help="start from a checkpoint's weights; tensors that do not fit (a "
                        "classifier for another class count) are freshly initialised")
    g.add_argument("--freeze-backbone", action="store_true",
                   help="with --init-from: train only the new classifier (the layers not "
                        "loaded plus the last Linear)")
    g = p.add_argument_group("run")
    g.add_argument("--device", choices=["cpu", "cuda"], help="[cpu]")
    g.add_argument("--out", metavar="RUN_DIR", help="run folder for checkpoints, CSV and plot")
    g.add_argument("--resume", nargs="?", const="auto", metavar="CKPT",
                   help="continue the run in --out from last.npz (or from CKPT); --epochs, "
                        "--device, --workers may change, the rest comes from the checkpoint")
    g.add_argument("--overwrite", action="store_true",
                   help="start over in an --out that already holds a run, replacing its "
                        "checkpoints, history and plot (without it such an --out is refused)")
    g.add_argument("--seed", type=int, help="seed of initialisation, shuffling and "
                                            "augmentation [0]")
    g.add_argument("--workers", type=int, help="data-preparation threads [min(4, cores)]")
    g.add_argument("--cache-dir", metavar="DIR",
                   help="keep decoded image folders here so later runs skip decoding ('' or "
                        "none: off) [$FASTCONV_CACHE or ~/.cache/fastconv]")
    g.add_argument("--limit-batches", type=int,
                   help="train on at most this many batches per epoch (quick trials) [0: all]")
    g.add_argument("--stop-after-epochs", type=int,
                   help="stop (as after Ctrl-C) once this many epochs ran in this session; "
                        "--resume goes on; the schedule keeps the full --epochs [0: off]")
    g.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                   help="no progress bar (the per-epoch lines are still printed)")
    g.add_argument("--no-plot", dest="plot", action="store_false", default=None,
                   help="do not draw curves.png")
    return p


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
        return 2
    if result["stopped"] == "interrupted":
        return 128 + int(result.get("signal") or signal.SIGINT)  # 130 Ctrl-C, 143 SIGTERM
    return 0


if __name__ == "__main__":
    sys.exit(main())
