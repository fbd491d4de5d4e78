"""Weights from files: torchvision's state dicts for the zoo, and fastconv's own in safetensors.

    model = models.get_model("inception_v3", weights="inception_v3.safetensors")
    model = models.get_model("googlenet", weights="googlenet.pth", allow_pickle=True)

Formats, by file suffix:

* ``.safetensors`` -- tensors by name, no code (the safetensors package, NumPy side).
* ``.npz`` -- a NumPy archive of arrays by state-dict name (read with
  ``allow_pickle=False``), or a fastconv checkpoint (its model weights; the averaged
  ones when the run kept them).
* ``.pt`` / ``.pth`` / ``.bin`` -- PyTorch's format is a pickle, and unpickling can run
  any code the file's author wrote. It is read only with ``allow_pickle=True``
  (``--allow-pickle`` on the command line), with a warning, through
  ``torch.load(weights_only=True)`` (PyTorch's restricted unpickler). Convert it once
  to safetensors (``safetensors.torch.save_file(torch.load(path), out)``) instead.

torchvision's layouts and what differs from fastconv's (``TORCHVISION``):

* ``alexnet_owt`` is torchvision's ``alexnet``: same names, same layout.
* ``inception_v3``: same names; torchvision's batch norm eps is 1e-3, as ours. Its ImageNet
  weights expect ``transform_input=True``, which torchvision turns on when it loads them,
  and so do we (pass ``transform_input=False`` to keep it off).
* ``googlenet``: torchvision's network differs from the paper's (batch norm, 3×3 "5×5"
  branches, no LRN), so its weights load into ``layout="torchvision"`` (chosen
  automatically), with ``conv1``/``conv2``/``conv3`` renamed ``stem.0``/``stem.2``/
  ``stem.3``, batch norm eps 1e-3 and ``transform_input=True`` as torchvision.

Also as torchvision: ``num_classes`` comes from the classifier's shape; the auxiliary
heads are built when the file has their weights (``aux_logits=False`` drops them);
``module.`` prefixes (DataParallel) and ``{"state_dict": ...}`` wrappers are removed;
``num_batches_tracked`` may be missing.

Files written by fastconv (``models.export --format safetensors``) carry the metadata
``{"format": "fastconv", "model": ..., "model_options": ..., "config": ...}`` and load
as they are.
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np

__all__ = ["TORCHVISION", "PickleWarning", "WeightsError", "load_weights", "read_weights",
           "save_safetensors", "to_fastconv_names"]


class WeightsError(ValueError):
    """A weights file that cannot be read or does not fit the model (the message says why)."""


class PickleWarning(UserWarning):
    """Loading a pickle-based file (PyTorch .pt/.pth): unpickling can run code."""


#: model name -> (rename prefix map torchvision -> fastconv, builder options for its layout,
#: builder options torchvision sets when it loads its own weights).
TORCHVISION = {
    "alexnet_owt": ({}, {}, {}),
    "inception_v3": ({}, {}, {"transform_input": True}),
    "googlenet": ({"conv1.": "stem.0.", "conv2.": "stem.2.", "conv3.": "stem.3."},
                  {"layout": "torchvision"}, {"transform_input": True}),
}

_PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


def _unwrap(state):
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise WeightsError(f"expected a dict of arrays by name, got {type(state).__name__}")
    out = {}
    for k, v in state.items():
        k = k.removeprefix("module.")
        out[k] = np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v)
    return out


def read_weights(path, allow_pickle: bool = False) -> tuple[dict, dict]:
    """(state dict of NumPy arrays, metadata dict) from a weights file (see the module doc)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights: no file at {path!r}")
    lower = path.lower()
    meta: dict = {}
    if lower.endswith(".safetensors"):
        from safetensors import safe_open

        arrays = {}
        try:
            with safe_open(path, framework="numpy") as f:
                meta = dict(f.metadata() or {})
                for k in f.keys():  # noqa: SIM118 (a safetensors file, not a dict)
                    arrays[k] = f.get_tensor(k)
        except Exception as e:  # safetensors raises its own error types
            raise WeightsError(f"{path}: not a readable safetensors file ({e})") from e
        for key in ("model_options", "config"):
            if key in meta:
                meta[key] = json.loads(meta[key])
        return _unwrap(arrays), meta
    if lower.endswith(".npz"):
        from fastconv.checkpoint import CheckpointError, load_checkpoint

        try:
            with np.load(path, allow_pickle=False) as z:
                names = list(z.files)
                if "__fastconv__" not in names and not any(n.startswith("__") for n in names):
                    return {n: z[n] for n in names}, {}
        except ValueError as e:
            raise WeightsError(f"{path}: not a readable .npz ({e})") from e
        try:
            ck = load_checkpoint(path)
        except CheckpointError as e:
            raise WeightsError(str(e)) from e
        state = ck.get("model")
        if isinstance(ck.get("ema"), dict) and isinstance(ck["ema"].get("shadow"), dict):
            state = ck["ema"]["shadow"]
        cfg = ck.get("config") if isinstance(ck.get("config"), dict) else {}
        meta = {"format": "fastconv", "model": cfg.get("model"),
                "model_options": cfg.get("model_options") or {}, "config": cfg}
        return _unwrap(state), meta
    if lower.endswith(_PICKLE_SUFFIXES):
        if not allow_pickle:
            raise WeightsError(f"{path} is a PyTorch pickle file; unpickling can run code. Pass "
                               "allow_pickle=True (--allow-pickle) if you trust its source, or "
                               "convert it to .safetensors once")
        warnings.warn(f"unpickling {path}: a pickle file can run code when it is loaded; load "
                      "only files from a source you trust", PickleWarning, stacklevel=3)
        try:
            import torch
        except ImportError as e:
            raise WeightsError(f"{path}: reading PyTorch files needs torch") from e
        return _unwrap(torch.load(path, map_location="cpu", weights_only=True)), {}
    raise WeightsError(f"{path}: unknown weights format; expected .safetensors, .npz or "
                       f"(with allow_pickle) .pt/.pth")


def to_fastconv_names(name: str, state: dict) -> dict:
    """torchvision's state-dict keys of model ``name`` renamed to fastconv's."""
    renames = TORCHVISION.get(name, ({},))[0]
    out = {}
    for k, v in state.items():
        for old, new in renames.items():
            if k.startswith(old):
                k = new + k[len(old):]
                break
        out[k] = v
    return out


def _is_torchvision(name: str, state: dict, meta: dict) -> bool:
    if meta.get("format") == "fastconv" or name not in TORCHVISION:
        return False
    if name == "googlenet":  # the paper layout has no batch norm
        return "conv1.conv.weight" in state or "stem.0.bn.weight" in state
    return True


def load_weights(name: str, path, num_classes=None, allow_pickle: bool = False, **options):
    """Build model ``name`` of the registry and load the weights file ``path`` into it
    (strictly: every parameter and buffer, except ``num_batches_tracked``, must be there
    with its shape). Returns the model in eval mode. See the module doc for the formats and
    torchvision's layouts."""
    from .registry import get_model

    state, meta = read_weights(path, allow_pickle=allow_pickle)
    if meta.get("format") == "fastconv" and meta.get("model") not in (None, name):
        raise WeightsError(f"{path} holds weights of {meta['model']!r}, not {name!r}")
    tv = _is_torchvision(name, state, meta)
    if tv:
        state = to_fastconv_names(name, state)
        _, layout, defaults = TORCHVISION[name]
        options = {**layout, **defaults, **options}
    elif meta.get("format") == "fastconv":
        options = {**(meta.get("model_options") or {}), **options}
    if num_classes is None and meta.get("num_classes"):
        num_classes = int(meta["num_classes"])
    if num_classes is None:
        classifier = [k for k in ("fc.weight", "classifier.6.weight", "classifier.weight")
                      if k in state]
        if classifier:
            num_classes = int(state[classifier[0]].shape[0])
    aux_keys = [k for k in state if k.startswith(("aux1.", "aux2.", "AuxLogits."))]
    if "aux_logits" in options and not options["aux_logits"]:
        state = {k: v for k, v in state.items() if k not in set(aux_keys)}
    elif name in ("googlenet", "inception_v3", "googlenet_cifar"):
        options.setdefault("aux_logits", bool(aux_keys))
    model = get_model(name, num_classes=num_classes, **options)
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    for k in own:  # a count saved as a 1-element array (older writers) is still a count
        if k.endswith("num_batches_tracked") and k in state and np.size(state[k]) == 1:
            state[k] = np.asarray(state[k]).reshape(np.shape(own[k]))
    wrong = [(k, state[k].shape, np.shape(own[k])) for k in state
             if k in own and tuple(state[k].shape) != tuple(np.shape(own[k]))]
    if missing or unexpected or wrong:
        lines = []
        if missing:
            lines.append(f"missing {len(missing)}: {', '.join(missing[:6])}"
                         + (" ..." if len(missing) > 6 else ""))
        if unexpected:
            lines.append(f"unexpected {len(unexpected)}: {', '.join(unexpected[:6])}"
                         + (" ..." if len(unexpected) > 6 else ""))
        lines += [f"{k}: file {tuple(a)} vs model {tuple(b)}" for k, a, b in wrong[:6]]
        layout = "torchvision's" if tv else "fastconv's"
        raise WeightsError(f"{path} does not fit {name} (read as {layout} layout): "
                           + "; ".join(lines))
    for k, v in own.items():
        if k not in state:
            state[k] = np.asarray(v)
        elif np.asarray(v).dtype.kind == "f":
            state[k] = np.asarray(state[k], dtype=np.float32)
        else:
            state[k] = np.asarray(state[k]).astype(np.asarray(v).dtype)
    model.load_state_dict(state)
    model.eval()
    return model


def save_safetensors(model, path, name: str | None = None, model_options=None,
                     config=None, num_classes: int | None = None) -> None:
    """Write ``model.state_dict()`` as a .safetensors file with fastconv's metadata."""
    from safetensors.numpy import save

    from fastconv.files import atomic_write

    # (np.ascontiguousarray would turn 0-d buffers such as num_batches_tracked into 1-d.)
    tensors = {k: np.array(v, copy=True, order="C") for k, v in model.state_dict().items()}
    meta = {"format": "fastconv", "model": name or type(model).__name__,
            "num_classes": str(num_classes) if num_classes is not None else "",
            "model_options": json.dumps(model_options or {}),
            "config": json.dumps(config or {}, default=str)}
    atomic_write(os.fspath(path), save(tensors, metadata=meta))
