"""Layer-by-layer summary of a model: output shape, parameters and multiply-accumulates.

    >>> import models
    >>> s = models.summary(models.get_model("alexnet"), (3, 227, 227))   # prints the table
    >>> s.total_params, s.total_macs
    (60965224, 724406816)

How it works: the model runs one forward pass in eval mode without gradients on a
random batch, and a forward hook on every leaf module (a module without children:
Conv2d, ReLU, MaxPool2d, ...) records the shape of its output while it runs. The
hooks are removed afterwards, and the modules' training flags restored.

Counting conventions:
    * Parameters: each parameter is counted once, on the row of the module that owns
      it, on that module's first call. Modules with parameters that the eval-mode pass
      does not run (auxiliary classifiers) are listed at the end with no output shape,
      so the parameter total always equals ``sum(p.numel() for p in model.parameters())``.
      Batch norm's running statistics are buffers, not parameters, and are not counted.
    * MACs (multiply-accumulates) per image, for the layers that dominate the cost:
      ``Conv2d``: output elements × (in_channels / groups) × KH × KW;
      ``Linear``: output elements × in_features. Biases, batch norm, LRN, pooling,
      activations and concatenations are counted as 0 (they are memory-bound and
      together cost well under 1% of the multiply-adds in these networks).
      One MAC is two FLOPs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import fastconv
from fastconv import nn

__all__ = ["LayerSummary", "ModelSummary", "summary"]


@dataclass
class LayerSummary:
    """One row: a leaf module's call (or a parameter owner that was not run)."""

    name: str
    type: str
    output_shape: tuple | None     # per image (no batch dimension); None: not run
    params: int
    macs: int


@dataclass
class ModelSummary:
    """The result of :func:`summary`; ``str()`` gives the printed table."""

    input_shape: tuple
    layers: list = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    total_macs: int = 0

    def __str__(self) -> str:
        rows = [("Layer", "Type", "Output shape", "Params", "MACs")]
        for r in self.layers:
            shape = "-" if r.output_shape is None else "x".join(str(s) for s in r.output_shape)
            rows.append((r.name, r.type, shape, f"{r.params:,}", f"{r.macs:,}"))
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        align = ("<", "<", ">", ">", ">")

        def fmt(row):
            return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(row, align, widths)).rstrip()

        rule = "-" * len(fmt(rows[0]))
        lines = [fmt(rows[0]), rule] + [fmt(r) for r in rows[1:]] + [rule]
        lines.append(f"Input shape: {'x'.join(str(s) for s in self.input_shape)}")
        lines.append(f"Total params: {self.total_params:,}")
        lines.append(f"Trainable params: {self.trainable_params:,}")
        lines.append(f"Non-trainable params: {self.total_params - self.trainable_params:,}")
        lines.append(f"MACs per image: {self.total_macs:,} ({self.total_macs / 1e9:.3f} G)")
        if any(r.output_shape is None for r in self.layers):
            lines.append("Rows without an output shape were not run in eval mode "
                         "(auxiliary classifiers); their parameters are counted.")
        return "\n".join(lines)


def _numel(p) -> int:
    return int(np.prod(p.shape, dtype=np.int64))


def _unique_params(module):
    seen, out = set(), []
    for p in module.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


def _layer_macs(module, out_shape: tuple) -> int:
    """Multiply-accumulates of one call for one image (``out_shape`` without batch)."""
    out_elems = int(np.prod(out_shape, dtype=np.int64))
    if isinstance(module, nn.Conv2d):
        _, cin_per_group, kh, kw = module.weight.shape
        return out_elems * int(cin_per_group) * int(kh) * int(kw)
    if isinstance(module, nn.Linear):
        return out_elems * int(module.weight.shape[1])
    return 0


def _first_tensor(out):
    while isinstance(out, (tuple, list)):
        out = out[0]
    return out


def summary(model, input_shape, batch_size: int = 1, print_fn=print, seed: int = 0
            ) -> ModelSummary:
    """Summarise ``model`` for inputs of shape ``input_shape`` = (C, H, W).

    Args:
        model: a ``fastconv.nn.Module``.
        input_shape: one image's shape ``(C, H, W)`` (for example
            ``models.get_model_spec(name).input_shape``).
        batch_size: images in the forward pass (shapes and MACs are reported per
            image); 1 is enough.
        print_fn: called with the table (``print`` by default; ``None`` prints nothing).
        seed: seed of the NumPy generator for the random input.

    Returns:
        A :class:`ModelSummary`: the rows (name, type, output shape, parameters,
        MACs), ``total_params`` (equal to the sum over ``model.parameters()``),
        ``trainable_params`` and ``total_macs`` (per image).
    """
    input_shape = tuple(int(s) for s in input_shape)
    modules = list(model.named_modules())
    owned: dict[int, list] = {}
    for name, m in modules:
        child_ids = {id(p) for c in m.children() for p in c.parameters()}
        owned[id(m)] = [p for p in _unique_params(m) if id(p) not in child_ids]

    rows: list[LayerSummary] = []
    counted: set[int] = set()          # ids of parameters already attributed

    def own_param_count(m) -> int:
        n = 0
        for p in owned[id(m)]:
            if id(p) not in counted:
                counted.add(id(p))
                n += _numel(p)
        return n

    leaves = [(name, m) for name, m in modules if not list(m.children())]
    handles = []

    def make_recorder(name):
        def record(m, args, out):
            shape = tuple(int(s) for s in _first_tensor(out).shape[1:])
            rows.append(LayerSummary(name or type(m).__name__, type(m).__name__, shape,
                                     own_param_count(m), _layer_macs(m, shape)))
        return record

    flags = [(m, m.training) for _, m in modules]
    params = _unique_params(model)
    device = getattr(params[0], "device", "cpu") if params else "cpu"
    x = np.random.default_rng(seed).standard_normal((batch_size,) + input_shape)
    x = fastconv.tensor(x.astype(np.float32), device=device)
    try:
        for name, m in leaves:
            handles.append(m.register_forward_hook(make_recorder(name)))
        model.eval()
        with fastconv.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
        for m, flag in flags:
            m.training = flag

    # Parameter owners the eval pass did not reach (auxiliary heads), in module order.
    for name, m in modules:
        n = own_param_count(m)
        if n:
            rows.append(LayerSummary(name or type(m).__name__, type(m).__name__, None, n, 0))

    result = ModelSummary(input_shape=input_shape, layers=rows)
    result.total_params = sum(r.params for r in rows)
    result.trainable_params = sum(_numel(p) for p in params if p.requires_grad)
    result.total_macs = sum(r.macs for r in rows)
    expected = sum(_numel(p) for p in params)
    if result.total_params != expected:  # pragma: no cover - an accounting bug
        raise AssertionError(f"summary counted {result.total_params} parameters, "
                             f"model has {expected}")
    if print_fn is not None:
        print_fn(str(result))
    return result
