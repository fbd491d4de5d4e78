"""Adadelta (PyTorch's formulation, arguments and defaults)."""

from __future__ import annotations

from .optimizer import Optimizer, array_module, check_implementation_flags

__all__ = ["Adadelta"]


class Adadelta(Optimizer):
    """Adadelta (Zeiler, 2012, "ADADELTA: An Adaptive Learning Rate Method").

    For each parameter ``p`` with gradient ``g`` (``-g`` with ``maximize``)::

        g = g + weight_decay * p                       (L2 penalty, coupled)
        v = rho * v + (1 - rho) * g^2
        d = sqrt(u + eps) / sqrt(v + eps) * g
        u = rho * u + (1 - rho) * d^2
        p = p - lr * d

    with ``v`` and ``u`` starting at zero: ``torch.optim.Adadelta`` (state ``square_avg``,
    ``acc_delta`` and ``step``, created at a parameter's first step with a gradient). ``lr``
    scales the update, 1.0 by default as in the paper.
    """

    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0, foreach=None, *, capturable: bool = False,
                 maximize: bool = False, differentiable: bool = False):
        check_implementation_flags("Adadelta", foreach, capturable, differentiable, None)
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        super().__init__(params, {"lr": lr, "rho": rho, "eps": eps,
                                  "weight_decay": weight_decay, "maximize": maximize})

    def _update(self) -> None:
        for i, p, group in self._params():
            if p.grad is None:
                continue
            lr, rho, eps, wd = group["lr"], group["rho"], group["eps"], group["weight_decay"]
            xp = array_module(p.data)
            g = p.grad.data if hasattr(p.grad, "data") else p.grad
            if group["maximize"]:
                g = -g
            st = self.state.setdefault(p, {})
            if "step" not in st:
                st["step"] = 0
                st["square_avg"] = xp.zeros_like(p.data)
                st["acc_delta"] = xp.zeros_like(p.data)
            st["step"] += 1
            if wd != 0:
                g = g + wd * p.data
            v, u = st["square_avg"], st["acc_delta"]
            v *= rho
            v += (1 - rho) * (g * g)
            delta = xp.sqrt(u + eps)
            delta /= xp.sqrt(v + eps)
            delta *= g
            u *= rho
            u += (1 - rho) * (delta * delta)
            p.data -= lr * delta
