"""``torch.utils.checkpoint``: trade compute for memory by recomputing a block in backward.

    y = checkpoint(block, x, use_reentrant=False)       # block's activations are not kept
    y = checkpoint_sequential(model, 4, x, use_reentrant=False)

``checkpoint(function, *args)`` runs ``function`` without recording its graph, keeping only
its arguments; backward runs it again with recording on (and with the random state it had
the first time, so dropout draws the same masks) and backpropagates through that copy. The
parameters used inside ``function`` get their gradients as without checkpointing, also when
no argument needs a gradient (a network's first block). ``use_reentrant`` is accepted for
torch's signature; both settings behave as torch's non-reentrant one here.

An argument changed in place between forward and backward is an error (the recomputation
would differ). The function may return a Tensor or tuples, lists and dicts of them (and of other
values), as torch's: the floating-point Tensors among them carry gradients.
"""

from __future__ import annotations

import numpy as np

from fastconv.autograd import enable_grad, is_grad_enabled, run_backward
from fastconv.custom_function import Function
from fastconv.random import get_rng_state, set_rng_state
from fastconv.tensor import Tensor

__all__ = ["checkpoint", "checkpoint_sequential"]


def _map_tensors(out, fn):
    """``out`` with every Tensor in it (through tuples, namedtuples, lists and dicts) replaced
    by ``fn(tensor)``."""
    if isinstance(out, Tensor):
        return fn(out)
    if isinstance(out, tuple) and hasattr(out, "_fields"):
        return type(out)(*(_map_tensors(v, fn) for v in out))
    if isinstance(out, (tuple, list)):
        return type(out)(_map_tensors(v, fn) for v in out)
    if isinstance(out, dict):
        return {k: _map_tensors(v, fn) for k, v in out.items()}
    return out


def _float_tensors(out) -> list:
    found = []
    _map_tensors(out, lambda t: found.append(t) if t.data.dtype.kind == "f" else None)
    return found


class _Recompute(Function):
    """One node for the whole block. Its output is the block's Tensor, or for a block that
    returns several, their floating-point values flattened into one vector that
    :func:`checkpoint` slices back into shape (``box`` carries the structure)."""

    @staticmethod
    def forward(ctx, anchor, function, preserve_rng_state, kwargs, box, *args):
        ctx.function, ctx.kwargs, ctx.args = function, kwargs, args
        ctx.rng = get_rng_state() if preserve_rng_state else None
        ctx.save_for_backward(*[a for a in args if isinstance(a, Tensor)])  # version checks
        out = function(*args, **kwargs)
        box["out"] = out
        if isinstance(out, Tensor):
            return out
        floats = _float_tensors(out)
        if not floats:  # nothing that carries a gradient
            return Tensor(np.zeros(0, np.float32))
        xp = _array_module(floats[0].data)
        return Tensor(xp.concatenate([t.data.reshape(-1).astype(np.float32) for t in floats]))

    @staticmethod
    def backward(ctx, dy):
        inputs = [a.detach().requires_grad_(a.requires_grad) if isinstance(a, Tensor) else a
                  for a in ctx.args]
        now = get_rng_state() if ctx.rng is not None else None
        try:
            if ctx.rng is not None:
                set_rng_state(ctx.rng)
            with enable_grad():
                out = ctx.function(*inputs, **ctx.kwargs)
        finally:
            if now is not None:
                set_rng_state(now)
        roots, grads, offset = [], [], 0
        for t in [out] if isinstance(out, Tensor) else _float_tensors(out):
            n = int(np.prod(t.shape))
            if t.requires_grad:
                roots.append(t)
                grads.append(dy.data if t is out else
                             dy.data[offset:offset + n].reshape(t.shape).astype(t.data.dtype))
            offset += n
        if roots:
            run_backward(roots, grads)
        grads = [a.grad if isinstance(a, Tensor) and a.requires_grad else None for a in inputs]
        return (None, None, None, None, None, *grads)


def _array_module(a):
    from fastconv.optim.optimizer import array_module

    return array_module(a)


def _unpack(out, packed: Tensor):
    """The block's output ``out`` with its floating-point Tensors replaced by slices of
    ``packed`` (so their gradients reach the recomputation)."""
    offset = 0

    def piece(t):
        nonlocal offset
        if t.data.dtype.kind != "f":
            return t
        n = int(np.prod(t.shape))
        p = packed[offset:offset + n].reshape(t.shape)
        offset += n
        return p if p.data.dtype == t.data.dtype else p.to(t.dtype)

    return _map_tensors(out, piece)


def checkpoint(function, *args, use_reentrant=None, context_fn=None, determinism_check=None,
               debug: bool = False, preserve_rng_state: bool = True, **kwargs):
    """``function(*args, **kwargs)``, its activations recomputed in backward (see the module
    docstring)."""
    if not callable(function):
        raise TypeError(f"checkpoint: function must be callable, got {type(function).__name__}")
    if context_fn is not None:
        raise NotImplementedError("checkpoint(context_fn=...) is not supported")
    if not is_grad_enabled():  # nothing to recompute for
        return function(*args, **kwargs)
    # a leaf that needs a gradient, so that the call is recorded even when no argument needs
    # one: the parameters inside function still get theirs
    anchor = Tensor(np.zeros((), np.float32), requires_grad=True)
    box = {}
    out = _Recompute.apply(anchor, function, bool(preserve_rng_state), kwargs, box, *args)
    structure = box.pop("out")  # the node keeps box: drop the outputs computed without a graph
    return out if isinstance(structure, Tensor) else _unpack(structure, out)


def checkpoint_sequential(functions, segments: int, input, use_reentrant=None, **kwargs):
    """Run a Sequential (or a list of modules) as ``segments`` checkpointed pieces, the last
    one recorded normally, as torch's."""
    layers = list(functions.children()) if hasattr(functions, "children") else list(functions)
    if not isinstance(segments, int) or not 1 <= segments:
        raise ValueError(f"checkpoint_sequential: segments must be a positive integer, got "
                         f"{segments!r}")
    size = max(1, len(layers) // segments)

    def run(start, end):
        def forward(x):
            for layer in layers[start:end]:
                x = layer(x)
            return x
        return forward

    start = 0
    for _ in range(segments - 1):
        end = min(start + size, len(layers))
        if end <= start:
            break
        input = checkpoint(run(start, end), input, use_reentrant=use_reentrant, **kwargs)
        start = end
    return run(start, len(layers))(input)
