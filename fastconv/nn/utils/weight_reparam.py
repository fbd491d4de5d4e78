"""``torch.nn.utils.weight_norm`` and ``spectral_norm``: a layer's weight recomputed before each
forward from parameters of its own (the hook form torch has had since 0.4; state_dict keys
as torch's, so checkpoints load both ways).

* weight_norm(module, name="weight", dim=0): ``weight = g * v / ||v||`` with the norm over
  every dim but ``dim`` (the whole tensor for dim=None, and, as in torch, for dim=-1);
  parameters ``weight_g`` and ``weight_v`` (Salimans & Kingma, 2016).
* spectral_norm(module, name="weight", n_power_iterations=1, eps=1e-12, dim=None):
  ``weight = weight_orig / sigma``, sigma the largest singular value of weight_orig as a
  (size(dim), -1) matrix, estimated by power iteration on the buffers ``weight_u`` and
  ``weight_v``, which advance ``n_power_iterations`` steps at each forward in training mode
  (Miyato et al., 2018). dim defaults to 1 for transposed convolutions, else 0.

``remove_weight_norm`` / ``remove_spectral_norm`` put the current weight back as a plain
parameter.
"""

from __future__ import annotations

import numpy as np

from fastconv.autograd import no_grad
from fastconv.nn.module import Module, Parameter
from fastconv.tensor import Tensor, _as_array

__all__ = ["remove_spectral_norm", "remove_weight_norm", "spectral_norm", "weight_norm"]


def _norm_except_dim(v: Tensor, dim):
    if dim is None:
        return v.norm()
    dims = tuple(i for i in range(v.ndim) if i != dim)
    return v.norm(2, dim=dims, keepdim=True) if dims else v.abs()


def _take_parameter(module: Module, name: str) -> Parameter:
    for hook in module._forward_pre_hooks.values():
        if isinstance(hook, (_WeightNorm, _SpectralNorm)) and hook.name == name:
            raise RuntimeError(f"Cannot register two {type(hook).__name__.strip('_')} hooks on "
                               f"the same parameter {name}")
    weight = module._parameters.get(name)
    if not isinstance(weight, Parameter):
        raise ValueError(f"{type(module).__name__} has no parameter {name!r} to reparametrise")
    del module._parameters[name]
    return weight


class _WeightNorm:
    def __init__(self, name: str, dim):
        self.name, self.dim = name, dim

    def weight(self, module: Module) -> Tensor:
        g = getattr(module, self.name + "_g")
        v = getattr(module, self.name + "_v")
        return v * (g / _norm_except_dim(v, self.dim))

    def __call__(self, module, inputs):
        setattr(module, self.name, self.weight(module))


def weight_norm(module: Module, name: str = "weight", dim=0) -> Module:
    """Reparametrise ``module.<name>`` as g * v / ||v|| (see the module docstring)."""
    weight = _take_parameter(module, name)
    if dim == -1:  # torch's weight_norm reads -1 as None: the whole tensor
        dim = None
    if dim is not None:
        dim = dim % weight.ndim if dim >= -weight.ndim else dim
        if not 0 <= dim < weight.ndim:
            raise IndexError(f"weight_norm: dim {dim} out of range for a {weight.ndim}-D weight")
    fn = _WeightNorm(name, dim)
    with no_grad():
        g = _norm_except_dim(weight, dim)
    setattr(module, name + "_g", Parameter(g.data.copy()))
    setattr(module, name + "_v", Parameter(weight.data.copy()))
    setattr(module, name, fn.weight(module))
    module.register_forward_pre_hook(fn)
    return module


def remove_weight_norm(module: Module, name: str = "weight") -> Module:
    return _remove(module, name, _WeightNorm, (name + "_g", name + "_v"))


class _SpectralNorm:
    def __init__(self, name: str, n_power_iterations: int, eps: float, dim: int):
        self.name, self.n, self.eps, self.dim = name, n_power_iterations, eps, dim

    def matrix(self, w: Tensor) -> Tensor:
        if self.dim != 0:
            w = w.movedim(self.dim, 0)
        return w.reshape(w.shape[0], -1)

    def weight(self, module: Module, power: bool) -> Tensor:
        w = getattr(module, self.name + "_orig")
        u = getattr(module, self.name + "_u")
        v = getattr(module, self.name + "_v")
        mat = self.matrix(w)
        if power:
            with no_grad():
                m = mat.detach()
                for _ in range(self.n):
                    v.data[...] = _unit(m.t().mv(u), self.eps).data
                    u.data[...] = _unit(m.mv(v), self.eps).data
        sigma = u.dot(mat.mv(v.detach()))
        return w / sigma

    def __call__(self, module, inputs):
        setattr(module, self.name, self.weight(module, power=module.training))


def _unit(x: Tensor, eps: float) -> Tensor:
    return x / x.norm().clamp(min=eps)


def spectral_norm(module: Module, name: str = "weight", n_power_iterations: int = 1,
                  eps: float = 1e-12, dim=None) -> Module:
    """Divide ``module.<name>`` by its largest singular value (see the module docstring)."""
    if not isinstance(n_power_iterations, int) or n_power_iterations <= 0:
        raise ValueError("Expected n_power_iterations to be positive, but got "
                         f"n_power_iterations={n_power_iterations!r}")
    if dim is None:
        transposed = type(module).__name__.startswith("ConvTranspose")
        dim = 1 if transposed else 0
    weight = _take_parameter(module, name)
    fn = _SpectralNorm(name, n_power_iterations, eps, dim)
    mat = fn.matrix(weight)
    from fastconv import random

    rng = random.generator()
    u = rng.standard_normal(mat.shape[0]).astype(np.float32)
    v = rng.standard_normal(mat.shape[1]).astype(np.float32)
    setattr(module, name + "_orig", weight)
    module.register_buffer(name + "_u", Tensor(_as_array(u / max(np.linalg.norm(u), eps),
                                                         weight.device)))
    module.register_buffer(name + "_v", Tensor(_as_array(v / max(np.linalg.norm(v), eps),
                                                         weight.device)))
    with no_grad():
        setattr(module, name, fn.weight(module, power=False).detach())
    module.register_forward_pre_hook(fn)
    return module


def remove_spectral_norm(module: Module, name: str = "weight") -> Module:
    return _remove(module, name, _SpectralNorm, (name + "_orig", name + "_u", name + "_v"))


def _remove(module: Module, name: str, kind, entries) -> Module:
    for key, hook in list(module._forward_pre_hooks.items()):
        if isinstance(hook, kind) and hook.name == name:
            with no_grad():
                weight = hook.weight(module, power=False) if kind is _SpectralNorm \
                    else hook.weight(module)
            del module._forward_pre_hooks[key]
            for entry in entries:
                delattr(module, entry)
            module.__dict__.pop(name, None)
            setattr(module, name, Parameter(weight.data.copy()))
            return module
    raise ValueError(f"{kind.__name__.strip('_').lower()} of {name!r} not found in {module}")
