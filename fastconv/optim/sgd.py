"""SGD with momentum, Nesterov momentum and L2 weight decay (PyTorch's formulation)."""

from __future__ import annotations

from .optimizer import Optimizer, _required, array_module, check_implementation_flags

__all__ = ["SGD"]


def _grad(p):
    g = p.grad
    return g.data if hasattr(g, "data") else g


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum.

    For each parameter ``p`` with gradient ``g``, step ``t``::

        g = g + weight_decay * p                       (L2 penalty, coupled)
        b = g                                  at t = 1
        b = momentum * b + (1 - dampening) * g  later
        g = g + momentum * b   if nesterov   else   g = b
        p = p - lr * g

    This is ``torch.optim.SGD`` (Sutskever et al., 2013, "On the importance of
    initialization and momentum in deep learning", for the Nesterov form).
    ``maximize`` ascends instead of descends. ``lr`` defaults to 1e-3, as in PyTorch 2.
    """

    def __init__(self, params, lr=1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False,
                 foreach=None, differentiable: bool = False, fused=None):
        check_implementation_flags("SGD", foreach, False, differentiable, fused)
        if lr is not _required and lr < 0:
            raise ValueError(f"SGD: invalid learning rate {lr}")
        if momentum < 0 or weight_decay < 0:
            raise ValueError("SGD: momentum and weight_decay must be >= 0")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening = 0")
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                      "weight_decay": weight_decay, "nesterov": nesterov,
                                      "maximize": maximize})

    def _update(self) -> None:
        for i, p, group in self._params():
            if p.grad is None:
                continue
            lr, mom = group["lr"], group["momentum"]
            wd, damp = group["weight_decay"], group["dampening"]
            xp = array_module(p.data)
            d = _grad(p)
            if group["maximize"]:
                d = -d
            if wd != 0:
                d = d + wd * p.data
            if mom != 0:
                st = self.state.setdefault(p, {})
                buf = st.get("momentum_buffer")
                if buf is None:
                    buf = st["momentum_buffer"] = xp.array(d, dtype=p.data.dtype, copy=True)
                else:
                    buf *= mom
                    buf += (1.0 - damp) * d
                d = d + mom * buf if group["nesterov"] else buf
            p.data -= lr * d
