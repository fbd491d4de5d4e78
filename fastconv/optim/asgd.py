"""ASGD: averaged stochastic gradient descent (PyTorch's formulation, arguments and
defaults)."""

from __future__ import annotations

from .optimizer import Optimizer, array_module, check_implementation_flags

__all__ = ["ASGD"]


def _grad(p):
    g = p.grad
    return g.data if hasattr(g, "data") else g


class ASGD(Optimizer):
    """Averaged SGD (Polyak & Juditsky, 1992, "Acceleration of Stochastic Approximation by
    Averaging"; the step-size schedule is Bottou's, 2012, "Stochastic Gradient Descent
    Tricks").

    For each parameter ``p`` with gradient ``g`` (``-g`` with ``maximize``), step ``t``::

        g = g + weight_decay * p                       (L2 penalty, coupled)
        p = p * (1 - lambd * eta) - eta * g
        ax = p                                          while mu == 1
        ax = ax + mu * (p - ax)                         afterwards
        eta = lr / (1 + lambd * lr * t)^alpha           (for the next step)
        mu = 1 / max(1, t - t0)

    with ``eta`` starting at ``lr``, ``mu`` at 1 and ``ax`` at zero: ``torch.optim.ASGD``
    (state ``step``, ``eta``, ``mu``, ``ax``). The parameters themselves follow plain SGD
    with a decaying rate; ``ax`` is the running average of the iterates from step ``t0``
    on, the weights to evaluate with (copy them into the model for that, as with
    ``swa_utils``).
    """

    def __init__(self, params, lr: float = 1e-2, lambd: float = 1e-4, alpha: float = 0.75,
                 t0: float = 1e6, weight_decay: float = 0, foreach=None,
                 maximize: bool = False, differentiable: bool = False,
                 capturable: bool = False):
        check_implementation_flags("ASGD", foreach, capturable, differentiable, None)
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        super().__init__(params, {"lr": lr, "lambd": lambd, "alpha": alpha, "t0": t0,
                                  "weight_decay": weight_decay, "maximize": maximize})

    def _update(self) -> None:
        for i, p, group in self._params():
            if p.grad is None:
                continue
            lr, lambd, wd = group["lr"], group["lambd"], group["weight_decay"]
            xp = array_module(p.data)
            g = _grad(p)
            if group["maximize"]:
                g = -g
            st = self.state.setdefault(p, {})
            if "step" not in st:
                st["step"] = 0
                st["eta"] = float(lr)
                st["mu"] = 1.0
                st["ax"] = xp.zeros_like(p.data)
            st["step"] += 1
            t = st["step"]
            if wd != 0:
                g = g + wd * p.data
            eta = st["eta"]
            p.data *= 1.0 - lambd * eta
            p.data -= eta * g
            ax = st["ax"]
            if st["mu"] != 1:
                ax += st["mu"] * (p.data - ax)
            else:
                ax[...] = p.data
            st["eta"] = lr / (1.0 + lambd * lr * t) ** group["alpha"]
            st["mu"] = 1.0 / max(1.0, t - group["t0"])
