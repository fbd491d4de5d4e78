"""What training, evaluation and prediction share: opening the data, building a model of the
zoo by name (or from a run's checkpoint), splitting auxiliary outputs, and evaluating a model
over a loader (loss, top-k as :mod:`fastconv.metrics` counts it, the confusion matrix)."""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

import fastconv
from fastconv import checkpoint as ckpt_io
from fastconv.data import CIFAR10, DataError, ImageFolder, make_transform, open_dataset
from fastconv.metrics import confusion_matrix, predicted_class, topk_hits

__all__ = [
    "add_model_arguments",
    "build_model",
    "check_model_options",
    "default_cache_dir",
    "eval_logits",
    "eval_transform",
    "evaluate_model",
    "model_arguments",
    "model_from_checkpoint",
    "model_from_weights",
    "open_data",
    "parse_model_option",
    "rows_constant",
    "split_output",
    "top_k_correct",
]


def eval_transform(cfg: dict, image_size):
    """The deterministic transform used for validation, evaluation and prediction (with the
    configuration's ``mean``/``std`` where it has them: imported ImageNet weights)."""
    norm = {k: tuple(cfg[k]) for k in ("mean", "std") if cfg.get(k) is not None}
    return make_transform(cfg["augment"], train=False, input_size=cfg.get("input_size"),
                          image_size=image_size, **norm)


def default_cache_dir() -> str:
    """Where decoded image folders are cached: $FASTCONV_CACHE or ~/.cache/fastconv."""
    return os.environ.get("FASTCONV_CACHE") or os.path.join("~", ".cache", "fastconv")


def open_data(path, subdir, image_size, train=True, cache_dir=None, progress=False, threads=None):
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



def build_model(cfg: dict, num_classes: int):
    """The registry's model ``cfg["model"]`` with ``cfg["model_options"]``; an option the
    model does not take is a ValueError naming it and listing the ones it takes."""
    import models

    options = dict(cfg.get("model_options") or {})
    check_model_options(cfg["model"], options)
    return models.get_model(cfg["model"], num_classes=num_classes, **options)


def check_model_options(name: str, options) -> None:
    import models

    takes = models.model_options(name)
    for key in options or {} if takes is not None else ():
        if key not in takes:
            listed = ", ".join(sorted(takes)) if takes else "none"
            raise ValueError(f"--model-opt {key}: {name} takes no option {key!r} "
                             f"(its options: {listed})")



def top_k_correct(logits: np.ndarray, target: np.ndarray, k: int) -> int:
    """How many rows have their target among their ``k`` top classes (as torch.topk picks
    them: ties to the lower class index; a row holding NaN is never right)."""
    return int(topk_hits(logits, target, k).sum())


def split_output(out):
    """(main logits, [aux logits...]) of a model output (tensor or tuple)."""
    if isinstance(out, (tuple, list)):
        return out[0], [a for a in out[1:] if a is not None]
    return out, []


def eval_logits(model, x: np.ndarray, device: str = "cpu", tta: bool = False):
    """The model's class scores for the batch ``x`` (N, C, H, W), in eval mode and without
    gradients. With ``tta``, test-time flip averaging: the softmax probabilities of the
    images and of their mirror images (flipped left-right, the flip training augments with)
    are averaged and returned as log-probabilities, which are valid logits (their softmax is
    the averaged probabilities), so loss and top-k read them as any logits."""
    import fastconv.functional as F

    logits, _ = split_output(model(fastconv.tensor(x, device=device)))
    if not tta:
        return logits
    flipped, _ = split_output(model(fastconv.tensor(np.ascontiguousarray(x[..., ::-1]),
                                                    device=device)))
    a, b = F.log_softmax(logits, dim=1), F.log_softmax(flipped, dim=1)
    m = fastconv.where(a > b, a, b)  # log((e^a + e^b) / 2) without underflow
    return m + ((a - m).exp() + (b - m).exp()).log() - float(np.log(2.0))


def evaluate_model(model, loader, device: str = "cpu", num_classes: int | None = None,
                   max_batches: int = 0, tta: bool = False):
    """Evaluate ``model`` in eval mode over ``loader`` (batches of ``(images, labels)``).

    Returns a dict: ``loss`` (mean cross-entropy), ``top1`` and ``top5`` (percent), ``n``,
    ``confusion`` (rows: true class, columns: predicted class), ``no_prediction`` (per true
    class, the images whose scores held NaN: never counted correct), ``predicted`` (how many
    images each class was predicted for) and ``constant_logits`` (True when every image got
    the same scores: the network ignores its input). ``tta``: score each image by test-time
    flip averaging (:func:`eval_logits`).
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
            logits = eval_logits(model, x, device, tta)
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
                constant = constant and rows_constant(lg, first_row)
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


def rows_constant(logits: np.ndarray, row: np.ndarray) -> bool:
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
            "build the model, fastconv.checkpoint.load_training(path, model) and "
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


#: torchvision's ImageNet preprocessing: the shorter side resized to input / 0.875 (256 for
#: 224), centre crop, normalise with the ImageNet mean and std.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def model_from_weights(path: str, model: str | None, model_options: dict | None = None,
                       device: str = "cpu", allow_pickle: bool = False):
    """(model in eval mode, checkpoint-like dict with "config") from a weights file (see
    models.weights): fastconv's safetensors carry their run's configuration; torchvision's
    weights get torchvision's ImageNet preprocessing and classes numbered unless the data
    names them."""
    import models
    from models.weights import read_weights

    _, meta = read_weights(path, allow_pickle=allow_pickle)
    name = model or meta.get("model")
    if not name:
        raise ckpt_io.CheckpointError(f"--weights {path}: say which network it holds with "
                                      "--model NAME (for example inception_v3)")
    options = dict(model_options or {})
    check_model_options(name, options)
    net = models.get_model(name, weights=path, allow_pickle=allow_pickle, **options)
    cfg = dict(meta.get("config") or {})
    if not cfg.get("augment"):
        side = models.get_model_spec(name).input_shape[1]
        cfg.update({"augment": "none", "input_size": side,
                    "image_size": round(side / 0.875), "resize": "shorter_side",
                    "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)})
    cfg.setdefault("model", name)
    cfg.setdefault("classes", None)
    net.to(device)
    net.eval()
    return net, {"config": cfg, "epoch": None}


def add_weights_arguments(p: argparse.ArgumentParser) -> None:
    """--weights / --allow-pickle: evaluate or predict with imported weights (evaluate and
    predict); --checkpoint and --weights exclude each other."""
    p.add_argument("--weights", help="a weights file instead of a checkpoint: .safetensors, "
                                     ".npz (torchvision's layout for alexnet_owt, googlenet, "
                                     "inception_v3, or fastconv's), with --model NAME")
    p.add_argument("--allow-pickle", action="store_true",
                   help="allow a PyTorch .pt/.pth --weights file (unpickling runs code)")


def load_model(args, device: str):
    """(model, checkpoint-like dict) from --checkpoint or --weights."""
    if bool(args.checkpoint) == bool(args.weights):
        raise ValueError("give exactly one of --checkpoint and --weights")
    if args.weights:
        return model_from_weights(args.weights, args.model, dict(args.model_opt or []), device,
                                  args.allow_pickle)
    return model_from_checkpoint(args.checkpoint, device=device, use_ema=args.ema,
                                 **model_arguments(args))


def parse_model_option(text: str):
    """argparse type of --model-opt: KEY=VALUE, the value parsed as JSON where it is JSON."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    try:
        v = json.loads(v)
    except json.JSONDecodeError:
        pass
    return k, v


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """--model / --model-opt: rebuild a checkpoint's model by name (evaluate and predict)."""
    p.add_argument("--model", help="registry name of a model to rebuild instead of the run's "
                                   "own: for checkpoints of models trained from Python with "
                                   "train(config, model=...) [the run's model]")
    p.add_argument("--model-opt", action="append", type=parse_model_option, metavar="KEY=VALUE",
                   help="builder option for --model (repeatable; values parsed as JSON)")


def model_arguments(args) -> dict:
    return {"model": args.model, "model_options": dict(args.model_opt or [])}
