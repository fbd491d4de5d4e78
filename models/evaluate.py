"""Evaluate a checkpoint: top-1 and top-5 accuracy and the per-class confusion matrix.

    python -m models.evaluate --checkpoint runs/tutorial/best.npz \\
        --data ../shared/data/cifar10-jpeg-train.tar.gz

prints ``top-1: 71.23%`` and ``top-5: 97.50%`` and the confusion matrix (rows: true
class, columns: predicted class) with each class's recall. The model, its input
size and its preprocessing come from the checkpoint's run configuration; the
averaged (EMA) weights are used when the run kept them (``--no-ema``: the raw ones).

Which images: ``--split auto`` (default) evaluates the validation images the run
held back when ``--data`` is the run's own training data, the test batch for
CIFAR-10's python version, and every image otherwise; ``--split all|val|test``
choose explicitly.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

import fastconv
from fastconv.checkpoint import CheckpointError
from fastconv.data import CIFAR10, DataError, DataLoader, Subset, split_per_class

from .common import (
    add_model_arguments,
    add_weights_arguments,
    default_cache_dir,
    eval_transform,
    evaluate_model,
    load_model,
    open_data,
)

__all__ = ["format_confusion", "main", "select_split"]


def _same_path(a, b) -> bool:
    return bool(a) and bool(b) and os.path.realpath(a) == os.path.realpath(b)


def select_split(cfg: dict, data: str, subdir, split: str, cache_dir=None):
    """(dataset, description) of the images to evaluate."""
    if split == "test" or (split == "auto" and not _same_path(data, cfg.get("data"))):
        ds = open_data(data, subdir, cfg.get("image_size"), train=False, cache_dir=cache_dir)
        if split == "test" and not isinstance(ds, CIFAR10):
            raise DataError("--split test: only CIFAR-10's python version has a test batch")
        kind = "test batch" if isinstance(ds, CIFAR10) else "all images"
        return ds, kind
    ds = open_data(data, subdir if subdir is not None else cfg.get("data_subdir"),
               cfg.get("image_size"), train=True, cache_dir=cache_dir)
    if split == "all":
        return ds, "all images"
    if cfg.get("val_data"):
        if split == "val" and not _same_path(data, cfg.get("val_data")):
            raise DataError("the run validated on --val-data "
                            f"{cfg['val_data']}; evaluate that with --split all")
        return ds, "all images (the run trained on these; it validated on --val-data)"
    per = int(cfg.get("val_per_class") or 0)
    if per <= 0:
        raise DataError("the run held back no validation images (--val-per-class 0); use "
                        "--split all")
    _, val = split_per_class(ds.targets, per, mode="last")
    return Subset(ds, val), f"validation split ({per} per class, held back by the run)"


def format_confusion(conf: np.ndarray, classes, no_prediction=None) -> str:
    """The confusion matrix as text: rows true class, columns predicted, plus recall; a
    column for images without a prediction (NaN scores) when there are any."""
    names = [str(c) for c in classes]
    missing = np.zeros(len(names), np.int64) if no_prediction is None else \
        np.asarray(no_prediction, np.int64)
    extra = bool(missing.any())
    w = max(6, max(len(n) for n in names) + 1)
    cw = max(7, len(str(int(conf.max()))) + 2 if conf.size else 7)  # names cut to cw - 1
    head = " " * w + "".join(f"{n[:cw - 1]:>{cw}}" for n in names) \
        + (f"{'NaN':>{cw}}" if extra else "") + "   recall"
    lines = ["confusion matrix (rows: true class, columns: predicted class"
             + ("; NaN: no prediction, the scores held NaN" if extra else "") + ")", head]
    for i, n in enumerate(names):
        total = int(conf[i].sum() + missing[i])
        rec = f"{100.0 * conf[i, i] / total:7.2f}%" if total else "      -"
        lines.append(f"{n:<{w}}" + "".join(f"{int(v):>{cw}}" for v in conf[i])
                     + (f"{int(missing[i]):>{cw}}" if extra else "") + "  " + rec)
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.evaluate",
                                description="Top-1/top-5 accuracy and confusion matrix of a "
                                            "checkpoint written by models.train_cifar.")
    p.add_argument("--checkpoint", help="a .npz checkpoint (best.npz, last.npz); or --weights")
    p.add_argument("--data", required=True, help="CIFAR-10 python version or image folder "
                                                 "(directory or .tar.gz)")
    p.add_argument("--data-subdir", help="the tree of an image folder with several")
    p.add_argument("--split", choices=["auto", "val", "test", "all"], default="auto",
                   help="which images (see the module help) [auto]")
    p.add_argument("--batch-size", type=int, default=256, help="[256]")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="[cpu]")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="data-preparation threads")
    p.add_argument("--tta", action="store_true",
                   help="test-time flip averaging: each image's softmax averaged with its "
                        "mirror image's")
    p.add_argument("--no-ema", dest="ema", action="store_false",
                   help="use the raw weights even if the run kept an average")
    p.add_argument("--precision", choices=["fp32", "bf16"],
                   help="bf16: forward passes under fastconv.autocast, as a run trained with "
                        "--precision bf16 validated [the run's precision; fp32 for weights "
                        "files]")
    add_model_arguments(p)
    add_weights_arguments(p)
    p.add_argument("--cache-dir", default=default_cache_dir(),
                   help="decoded-image cache of image folders ('' or none: off) "
                        "[$FASTCONV_CACHE or ~/.cache/fastconv]")
    args = p.parse_args(argv)
    try:
        model, ck = load_model(args, args.device)
        cfg = ck["config"]
        if args.weights and args.split == "auto":
            args.split = "all"
        ds, what = select_split(cfg, args.data, args.data_subdir, args.split, args.cache_dir)
        if cfg["classes"] is None:  # imported weights: the data names the classes
            cfg["classes"] = list(ds.classes)
        if list(ds.classes) != list(cfg["classes"]):
            raise DataError(f"the data's classes {list(ds.classes)} differ from the model's "
                            f"{cfg['classes']}")
        loader = DataLoader(ds, batch_size=args.batch_size, shuffle=False,
                            transform=eval_transform(cfg, ds.image_shape[:2]),
                            num_workers=args.workers)
        precision = args.precision or cfg.get("precision") or "fp32"
        with fastconv.autocast(args.device, dtype=fastconv.bfloat16,
                               enabled=precision == "bf16"):
            res = evaluate_model(model, loader, args.device, len(cfg["classes"]), tta=args.tta)
    except (CheckpointError, DataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    ema = " (averaged weights)" if args.ema and isinstance(ck.get("ema"), dict) else ""
    source = args.checkpoint or args.weights
    print(f"{args.model or cfg['model']} from {source}{ema}, epoch {ck.get('epoch')}"
          + ("; bf16 autocast" if precision == "bf16" else ""))
    print(f"{res['n']} images: {what} of {args.data}")
    print(f"loss: {res['loss']:.4f}")
    print(f"top-1: {res['top1']:.2f}%")
    print(f"top-5: {res['top5']:.2f}%")
    if res["no_prediction"].any():
        print(f"no prediction (NaN scores, counted wrong): {int(res['no_prediction'].sum())} "
              "images")
    print(format_confusion(res["confusion"], cfg["classes"], res["no_prediction"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
