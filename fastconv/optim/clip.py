"""Gradient clipping."""

from __future__ import annotations

import math

from .optimizer import array_module

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _grads(parameters):
    if hasattr(parameters, "data"):
        parameters = [parameters]
    out = []
    for p in parameters:
        if p.grad is not None:
            out.append(p.grad.data if hasattr(p.grad, "data") else p.grad)
    return out


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> float:
    """Scale the gradients in place so that their joint norm is at most ``max_norm``.

    The norm is taken over all gradients together as if concatenated into one
    vector (``norm_type`` 2 by default, ``inf`` for the max-abs norm). When it
    exceeds ``max_norm`` every gradient is multiplied by
    ``max_norm / (norm + 1e-6)``, as ``torch.nn.utils.clip_grad_norm_``
    (Pascanu et al., 2013). Returns the norm before clipping (a float).
    """
    grads = _grads(parameters)
    if not grads:
        return 0.0
    norm_type = float(norm_type)
    if math.isinf(norm_type):
        total = max(float(array_module(g).abs(g).max()) for g in grads)
    elif norm_type == 2.0:
        # Squares summed in place, not v @ v: NumPy's dot wakes OpenBLAS's thread pool, whose
        # threads then spin beside the step's own (about 7% of a 2-core machine in training).
        total = math.sqrt(sum(float((v * v).sum()) for v in (g.astype("float64") for g in grads)))
    else:
        total = sum(float((array_module(g).abs(g.astype("float64")) ** norm_type).sum())
                    for g in grads) ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total gradient norm is {total}")
    coef = float(max_norm) / (total + 1e-6)
    if coef < 1.0:
        for g in grads:
            g *= coef
    return total


def clip_grad_value_(parameters, clip_value: float) -> None:
    """Clamp every gradient element to [-clip_value, clip_value], in place."""
    for g in _grads(parameters):
        array_module(g).clip(g, -clip_value, clip_value, out=g)
