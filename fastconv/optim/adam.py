"""Adam and AdamW (PyTorch's formulations)."""

from __future__ import annotations

import math

from .optimizer import Optimizer, array_module, check_implementation_flags

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015, "Adam: A Method for Stochastic Optimization").

    For each parameter ``p`` with gradient ``g``, step ``t``::

        g = g + weight_decay * p                       (Adam: L2 penalty in the gradient)
        p = p * (1 - lr * weight_decay)                (AdamW: decoupled decay instead)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2
        v_hat = max(v_hat, v) if amsgrad else v
        p = p - lr / (1 - beta1^t) * m / (sqrt(v_hat) / sqrt(1 - beta2^t) + eps)

    as ``torch.optim.Adam``; ``amsgrad`` is Reddi et al., 2018.
    """

    _decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *, foreach=None,
                 maximize: bool = False, capturable: bool = False, differentiable: bool = False,
                 fused=None, decoupled_weight_decay: bool = False):
        check_implementation_flags(type(self).__name__, foreach, capturable, differentiable,
                                   fused)
        if decoupled_weight_decay:
            self._decoupled = True  # Adam(decoupled_weight_decay=True) is AdamW
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError(f"{type(self).__name__}: lr, eps and weight_decay must be >= 0")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"{type(self).__name__}: betas must lie in [0, 1), got {betas}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps,
                                      "weight_decay": weight_decay, "amsgrad": amsgrad,
                                      "maximize": maximize})

    def _update(self) -> None:
        for i, p, group in self._params():
            if p.grad is None:
                continue
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            b1, b2 = group["betas"]
            xp = array_module(p.data)
            d = p.grad.data if hasattr(p.grad, "data") else p.grad
            if group["maximize"]:
                d = -d
            st = self.state.setdefault(p, {})
            if "step" not in st:
                st["step"] = 0
                st["exp_avg"] = xp.zeros_like(p.data)
                st["exp_avg_sq"] = xp.zeros_like(p.data)
                if group["amsgrad"]:
                    st["max_exp_avg_sq"] = xp.zeros_like(p.data)
            st["step"] += 1
            t = st["step"]
            if wd != 0:
                if self._decoupled:
                    p.data *= 1.0 - lr * wd
                else:
                    d = d + wd * p.data
            m, v = st["exp_avg"], st["exp_avg_sq"]
            m *= b1
            m += (1.0 - b1) * d
            v *= b2
            v += (1.0 - b2) * (d * d)
            if group["amsgrad"]:
                vmax = st.setdefault("max_exp_avg_sq", xp.zeros_like(p.data))
                xp.maximum(vmax, v, out=vmax)
                v = vmax
            denom = xp.sqrt(v)
            denom /= math.sqrt(1.0 - b2 ** t)
            denom += eps
            p.data -= (lr / (1.0 - b1 ** t)) * (m / denom)


class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, 2019,
    "Decoupled Weight Decay Regularization"): ``p = p * (1 - lr * weight_decay)``
    before the Adam step, instead of adding ``weight_decay * p`` to the gradient.
    Default ``weight_decay=0.01`` as ``torch.optim.AdamW``."""

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01, amsgrad: bool = False, *, maximize: bool = False,
                 foreach=None, capturable: bool = False, differentiable: bool = False,
                 fused=None):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize, foreach=foreach,
                         capturable=capturable, differentiable=differentiable, fused=fused)
