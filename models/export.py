"""Export a checkpoint's model as ONNX or its weights as safetensors.

    python -m models.export --checkpoint runs/tutorial/best.npz --format onnx \\
        --out tutorial.onnx
    python -m models.export --checkpoint runs/tutorial/best.npz --format safetensors \\
        --out tutorial.safetensors

ONNX: the model in eval mode (dropout gone, batch norm on its running statistics, no
auxiliary heads), traced on an input of the run's preprocessed size and checked by
``onnx.checker``; the batch dimension is symbolic unless ``--static-batch``. The input is
named ``input`` and the output ``logits``: feed it images preprocessed as for
``models.evaluate`` (the run's crop and normalisation).

safetensors: the state dict (the averaged weights when the run kept them, unless
``--no-ema``), with the run's configuration as metadata, so that
``models.get_model(name, weights=FILE)`` and ``models.evaluate --weights FILE`` rebuild
and preprocess as the run did.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from fastconv.checkpoint import CheckpointError

from .common import add_model_arguments, eval_transform, model_arguments, model_from_checkpoint

__all__ = ["example_input", "main"]


def example_input(cfg: dict, batch: int = 1) -> np.ndarray:
    """A random batch shaped as the run's preprocessed inputs (N, C, H, W)."""
    hw = cfg.get("image_hw") or [cfg.get("image_size") or 32] * 2
    images = np.random.default_rng(0).integers(0, 256, (batch, int(hw[0]), int(hw[1]), 3),
                                               dtype=np.uint8)
    return np.ascontiguousarray(eval_transform(cfg, (int(hw[0]), int(hw[1])))(
        images, np.random.default_rng(0)), dtype=np.float32)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.export",
                                description="Write a checkpoint's model as ONNX or its "
                                            "weights as safetensors.")
    p.add_argument("--checkpoint", required=True, help="a .npz checkpoint (best.npz, last.npz)")
    p.add_argument("--format", required=True, choices=["onnx", "safetensors"])
    p.add_argument("--out", required=True, help="the file to write")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset [17]")
    p.add_argument("--static-batch", action="store_true",
                   help="fix the ONNX batch dimension to --batch-size (default: symbolic)")
    p.add_argument("--batch-size", type=int, default=1,
                   help="batch of the example input the model is traced on [1]")
    p.add_argument("--no-ema", dest="ema", action="store_false",
                   help="the raw weights even if the run kept an average")
    add_model_arguments(p)
    args = p.parse_args(argv)
    if args.batch_size < 1:
        p.error(f"--batch-size must be at least 1, got {args.batch_size}")
    try:
        model, ck = model_from_checkpoint(args.checkpoint, use_ema=args.ema,
                                          **model_arguments(args))
        cfg = ck["config"]
        name = args.model or cfg["model"]
        if args.format == "onnx":
            import fastconv.onnx

            x = example_input(cfg, args.batch_size)
            fastconv.onnx.export(model, x, args.out, opset_version=args.opset,
                                 input_names=["input"], output_names=["logits"],
                                 dynamic_batch=not args.static_batch)
            what = f"ONNX opset {args.opset}, input {['N' if not args.static_batch else x.shape[0]] + list(x.shape[1:])}"
        else:
            from .weights import save_safetensors

            options = dict(args.model_opt or []) if args.model else \
                cfg.get("model_options") or {}
            save_safetensors(model, args.out, name, options, config=cfg,
                             num_classes=len(cfg["classes"]))
            what = f"safetensors, {len(model.state_dict())} tensors"
    except (CheckpointError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{name} from {args.checkpoint} -> {args.out} ({what})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
