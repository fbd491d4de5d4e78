"""Classify image files with a checkpoint: each image's top-5 classes with probabilities.

    python -m models.predict --checkpoint runs/tutorial/best.npz cat.jpg ship.png

Each image is converted to RGB, resized to the size the model was trained on
(32x32 for CIFAR-10) and preprocessed as for validation (the run's centre crop and
normalisation). The averaged (EMA) weights are used when the run kept them.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import fastconv
from fastconv.checkpoint import CheckpointError

from .common import (
    add_model_arguments,
    add_weights_arguments,
    eval_logits,
    eval_transform,
    load_model,
    split_output,
)

__all__ = ["main", "predict"]


def _load_image(path: str, size, keep_aspect: bool = False) -> np.ndarray:
    """The image as (H, W, 3) uint8 of ``size``: resized to it, or, with ``keep_aspect`` (as
    torchvision's ``Resize(s)`` + ``CenterCrop(s)``), its shorter side resized to ``size`` and
    the centre cropped."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        if keep_aspect:
            w, h = im.size
            scale = size[0] / min(w, h)
            nw, nh = max(size[1], round(w * scale)), max(size[0], round(h * scale))
            im = im.resize((nw, nh), Image.BILINEAR)
            left, top = (nw - size[1]) // 2, (nh - size[0]) // 2
            im = im.crop((left, top, left + size[1], top + size[0]))
        elif im.size != (size[1], size[0]):
            im = im.resize((size[1], size[0]), Image.BILINEAR)
        return np.asarray(im, dtype=np.uint8)


def predict(model, cfg: dict, paths, device: str = "cpu", topk: int = 5, tta: bool = False):
    """[(path, [(class name, probability), ...])] for each image, best first (ties: the
    lower class index first, as torch.topk); an empty list for an image whose scores hold
    NaN (the model has no prediction for it). ``tta``: test-time flip averaging."""
    size = cfg.get("image_hw") or [cfg.get("image_size") or 32] * 2
    size = (int(size[0]), int(size[1]))
    tf = eval_transform(cfg, size)
    out = []
    keep_aspect = cfg.get("resize") == "shorter_side"
    batch = np.stack([_load_image(p, size, keep_aspect) for p in paths])
    x = tf(batch, np.random.default_rng(0))
    model.eval()
    with fastconv.no_grad():
        logits = eval_logits(model, x, device, tta)
    z = logits.detach().numpy().astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    prob = np.exp(z)
    prob /= prob.sum(axis=1, keepdims=True)
    k = min(topk, prob.shape[1])
    for path, pr in zip(paths, prob):
        if np.isnan(pr).any():
            out.append((path, []))
            continue
        order = np.argsort(-pr, kind="stable")[:k]
        out.append((path, [(cfg["classes"][i], float(pr[i])) for i in order]))
    return out


def _num_outputs(model, cfg) -> int:
    size = cfg.get("input_size") or 32
    x = np.zeros((1, 3, int(size), int(size)), np.float32)
    with fastconv.no_grad():
        logits, _ = split_output(model(fastconv.tensor(x)))
    return int(logits.shape[1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.predict",
                                description="Print each image's top-5 classes with "
                                            "probabilities, using a models.train_cifar "
                                            "checkpoint.")
    p.add_argument("--checkpoint", help="a .npz checkpoint; or --weights")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...)")
    p.add_argument("--topk", type=int, default=5, help="classes to show per image [5]")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="[cpu]")
    p.add_argument("--tta", action="store_true",
                   help="test-time flip averaging: each image's softmax averaged with its "
                        "mirror image's")
    p.add_argument("--no-ema", dest="ema", action="store_false",
                   help="use the raw weights even if the run kept an average")
    add_model_arguments(p)
    add_weights_arguments(p)
    args = p.parse_args(argv)
    try:
        model, ck = load_model(args, args.device)
        cfg = ck["config"]
        if cfg.get("classes") is None:  # imported weights without class names
            cfg["classes"] = [f"class {i}" for i in range(_num_outputs(model, cfg))]
        results = predict(model, cfg, args.images, args.device, args.topk, args.tta)
    except (CheckpointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: cannot read image: {e}", file=sys.stderr)
        return 2
    for path, top in results:
        print(path)
        if not top:
            print("  no prediction: the model's scores for this image hold NaN")
        for name, pr in top:
            print(f"  {name:<14s} {100.0 * pr:6.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
