"""Rprop: resilient backpropagation (PyTorch's formulation, arguments and defaults)."""

from __future__ import annotations

from .optimizer import Optimizer, array_module, check_implementation_flags

__all__ = ["Rprop"]


def _grad(p):
    g = p.grad
    return g.data if hasattr(g, "data") else g


class Rprop(Optimizer):
    """Rprop (Riedmiller & Braun, 1993, "A Direct Adaptive Method for Faster Backpropagation
    Learning: The RPROP Algorithm"): every weight has its own step size, which grows while
    its gradient keeps its sign and shrinks when the sign flips; only the gradient's sign
    moves the weight.

    For each element of a parameter ``p`` with gradient ``g`` (``-g`` with ``maximize``),
    ``etas = (eta_minus, eta_plus)``, ``step_sizes = (s_min, s_max)``::

        s = min(s * eta_plus, s_max)    if g * g_prev > 0
        s = max(s * eta_minus, s_min)   if g * g_prev < 0,  and then g = 0
        p = p - sign(g) * s
        g_prev = g

    with ``s`` starting at ``lr`` and ``g_prev`` at zero: ``torch.optim.Rprop`` (state
    ``step``, ``prev``, ``step_size``). A sign flip skips the weight's move for that step
    (and the zeroed gradient means the next step neither grows nor shrinks ``s``), as
    PyTorch does. ``lr`` is read once, when a parameter's step sizes are created.
    """

    def __init__(self, params, lr: float = 1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *,
                 capturable: bool = False, foreach=None, maximize: bool = False,
                 differentiable: bool = False):
        check_implementation_flags("Rprop", foreach, capturable, differentiable, None)
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 < etas[0] < 1.0 < etas[1]:
            raise ValueError(f"Invalid eta values: {etas[0]}, {etas[1]}")
        super().__init__(params, {"lr": lr, "etas": tuple(etas),
                                  "step_sizes": tuple(step_sizes), "maximize": maximize})

    def _update(self) -> None:
        for i, p, group in self._params():
            if p.grad is None:
                continue
            eta_minus, eta_plus = group["etas"]
            s_min, s_max = group["step_sizes"]
            xp = array_module(p.data)
            g = _grad(p)
            g = -g if group["maximize"] else g.copy()
            st = self.state.setdefault(p, {})
            if "step" not in st:
                st["step"] = 0
                st["prev"] = xp.zeros_like(p.data)
                st["step_size"] = xp.full_like(p.data, group["lr"])
            st["step"] += 1
            prev, s = st["prev"], st["step_size"]
            agree = g * prev  # in the parameter's dtype, so its underflows are torch's
            flipped = agree < 0
            factor = xp.ones_like(s)
            factor[agree > 0] = eta_plus
            factor[flipped] = eta_minus
            s *= factor
            xp.clip(s, s_min, s_max, out=s)
            g[flipped] = 0
            p.data -= xp.sign(g) * s
            prev[...] = g
