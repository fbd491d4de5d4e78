"""``fastconv.nn.utils``: gradient clipping, flat parameter vectors, weight_norm /
spectral_norm (weight_reparam.py) and conv/linear + BatchNorm fusion (fusion.py), under
PyTorch's names; the submodules ``parametrize`` (register_parametrization and its kin),
``parametrizations`` (weight_norm, spectral_norm and orthogonal as parametrizations),
``rnn`` (PackedSequence and the pad / pack functions), ``fusion`` and ``stateless``
(functional_call), as torch's.

The clipping functions are the ones in ``fastconv.optim.clip``; here they take PyTorch's
signatures (``foreach`` is accepted and has no effect) and ``clip_grad_norm_`` returns
the total norm as a Tensor, as PyTorch's does.
"""

from __future__ import annotations

import math

import numpy as np

from fastconv.tensor import Tensor

from . import fusion, parametrizations, parametrize, rnn, stateless  # noqa: F401  (submodules)
from .fusion import (
    fuse_conv_bn_eval,
    fuse_conv_bn_weights,
    fuse_linear_bn_eval,
    fuse_linear_bn_weights,
)
from .weight_reparam import (
    remove_spectral_norm,
    remove_weight_norm,
    spectral_norm,
    weight_norm,
)

__all__ = ["clip_grad_norm_", "clip_grad_value_", "clip_grads_with_norm_", "fuse_conv_bn_eval",
           "fuse_conv_bn_weights", "fuse_linear_bn_eval", "fuse_linear_bn_weights",
           "get_total_norm", "parameters_to_vector",
           "parametrizations", "parametrize", "remove_spectral_norm", "remove_weight_norm",
           "rnn", "spectral_norm", "stateless", "vector_to_parameters", "weight_norm"]


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False,
                    foreach=None):
    """Scale the gradients in place so that their joint ``norm_type``-norm (all gradients
    as one vector) is at most ``max_norm``: every gradient is multiplied by
    min(1, max_norm / (total_norm + 1e-6)) (Pascanu et al., 2013).

    Args:
        parameters: a Tensor or an iterable of Tensors; those without a gradient are skipped.
        max_norm: the largest norm allowed.
        norm_type: p of the p-norm (float('inf') for the largest absolute value).
        error_if_nonfinite: raise a RuntimeError when the total norm is nan or inf.
        foreach: accepted for PyTorch compatibility (no effect).
    Returns the total norm before clipping, as a 0-d float32 Tensor.
    """
    from fastconv.optim import clip as _clip  # on first use: optim loads lazily

    total = _clip.clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite)
    return total if isinstance(total, Tensor) else Tensor(np.asarray(total, dtype=np.float32))


def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """The ``norm_type``-norm of ``tensors`` (a Tensor or an iterable of Tensors, usually the
    gradients) taken as one vector, as a 0-d float32 Tensor (torch 2.6's first half of
    ``clip_grad_norm_``; ``foreach`` has no effect)."""
    from fastconv.optim.optimizer import array_module

    arrays = [t.data for t in _parameter_list(tensors, "get_total_norm") if t is not None]
    norm_type = float(norm_type)
    if not arrays:
        total = 0.0
    elif math.isinf(norm_type):
        total = max(float(array_module(a).abs(a).max()) if a.size else 0.0 for a in arrays)
    else:
        total = sum(float((array_module(a).abs(a.astype("float64")) ** norm_type).sum())
                    for a in arrays) ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from "
                           "`parameters` is non-finite, so it cannot be clipped. To disable "
                           "this error and scale the gradients by the non-finite norm anyway, "
                           "set `error_if_nonfinite=False`")
    return Tensor(np.asarray(total, dtype=np.float32))


def clip_grads_with_norm_(parameters, max_norm, total_norm, foreach=None) -> None:
    """Scale the gradients of ``parameters`` in place by min(1, max_norm / (total_norm +
    1e-6)), ``total_norm`` from :func:`get_total_norm` (torch 2.6's second half of
    ``clip_grad_norm_``; ``foreach`` has no effect)."""
    grads = [p.grad for p in _parameter_list(parameters, "clip_grads_with_norm_")
             if p.grad is not None]
    total = float(total_norm.item() if isinstance(total_norm, Tensor) else total_norm)
    coef = min(float(max_norm) / (total + 1e-6), 1.0)
    for g in grads:
        g.data *= np.float32(coef)


def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp every gradient element to [-clip_value, clip_value] in place.

    Args:
        parameters: a Tensor or an iterable of Tensors (those without a gradient skipped).
        clip_value: the largest absolute value allowed.
        foreach: accepted for PyTorch compatibility (no effect).
    """
    from fastconv.optim import clip as _clip

    _clip.clip_grad_value_(parameters, clip_value)


def _parameter_list(parameters, op):
    if isinstance(parameters, Tensor):
        return [parameters]
    params = list(parameters)
    for p in params:
        if not isinstance(p, Tensor):
            raise TypeError(f"{op}: expected fastconv.Tensors, but got: {type(p).__name__}")
    return params


def parameters_to_vector(parameters):
    """Flatten and concatenate the parameters into one 1-D Tensor (differentiable: the
    gradient flows back to each parameter). All must be on one device."""
    from fastconv.functional import cat

    params = _parameter_list(parameters, "parameters_to_vector")
    if not params:
        raise ValueError("parameters_to_vector: expected at least one parameter")
    device = params[0].device
    for p in params:
        if p.device != device:
            raise TypeError(f"parameters_to_vector: found two parameters on different devices, "
                            f"{device} and {p.device}")
    return cat([p.reshape(-1) for p in params])


def vector_to_parameters(vec, parameters):
    """Copy consecutive slices of the 1-D Tensor ``vec`` into the parameters, in order.

    fastconv copies the values into each parameter's existing array (PyTorch rebinds
    ``param.data`` to a view of ``vec``), so optimizers holding the parameters keep seeing
    them; the values are the same either way.
    """
    if not isinstance(vec, Tensor):
        raise TypeError(f"vector_to_parameters: expected vec to be a fastconv.Tensor, but got: "
                        f"{type(vec).__name__}")
    params = _parameter_list(parameters, "vector_to_parameters")
    need = sum(p.numel() for p in params)
    if vec.ndim != 1 or vec.numel() != need:
        raise ValueError(f"vector_to_parameters: vec must be 1-D with {need} elements (the "
                         f"parameters' total), got shape {vec.shape}")
    offset = 0
    for p in params:
        if p.device != vec.device:
            raise TypeError(f"vector_to_parameters: vec is on {vec.device} and a parameter on "
                            f"{p.device}")
        n = p.numel()
        p.data[...] = vec.data[offset:offset + n].reshape(p.shape)
        offset += n
