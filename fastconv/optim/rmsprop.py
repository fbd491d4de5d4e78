"""RMSprop and Adagrad (PyTorch's formulations, arguments and defaults)."""

from __future__ import annotations

from .optimizer import Optimizer, array_module, check_implementation_flags

__all__ = ["Adagrad", "RMSprop"]


def _grad(p):
    g = p.grad
    return g.data if hasattr(g, "data") else g


def _check(name, **values):
    for k, v in values.items():
        if not 0.0 <= v:
            raise ValueError(f"{name}: invalid {k} value: {v}")


class RMSprop(Optimizer):
    """RMSprop (Hinton, 2012, "Neural Networks for Machine Learning", lecture 6e;
    the centred form is Graves, 2013, "Generating Sequences With Recurrent Neural Networks").

    For each parameter ``p`` with gradient ``g``::

        g = g + weight_decay * p                       (L2 penalty, coupled)
        v = alpha * v + (1 - alpha) * g^2
        m = m + (1 - alpha) * (g - m);  d = sqrt(v - m^2)     if centered
        d = sqrt(v)                                           otherwise
        d = d + eps
        b = momentum * b + g / d;  p = p - lr * b      if momentum > 0
        p = p - lr * g / d                             otherwise

    with ``v``, ``m``, ``b`` starting at zero: ``torch.optim.RMSprop`` (state
    ``square_avg``, ``grad_avg``, ``momentum_buffer``, ``step``). Note ``eps`` is added
    outside the square root, as in PyTorch (TensorFlow and Keras add it inside).
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 capturable: bool = False, foreach=None, maximize: bool = False,
                 differentiable: bool = False):
        check_implementation_flags("RMSprop", foreach, capturable, differentiable, None)
        _check("RMSprop", lr=lr, eps=eps, momentum=momentum, weight_decay=weight_decay,
               alpha=alpha)
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps,
                                  "weight_decay": weight_decay, "momentum": momentum,
                                  "centered": centered, "maximize": maximize})

    def _update(self) -> None:
        for i, p, group in self._params():
            if p.grad is None:
                continue
            lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
            wd, mom = group["weight_decay"], group["momentum"]
            xp = array_module(p.data)
            g = _grad(p)
            if group["maximize"]:
                g = -g
            st = self.state.setdefault(p, {})
            if "step" not in st:
                st["step"] = 0
                st["square_avg"] = xp.zeros_like(p.data)
                if mom > 0:
                    st["momentum_buffer"] = xp.zeros_like(p.data)
                if group["centered"]:
                    st["grad_avg"] = xp.zeros_like(p.data)
            st["step"] += 1
            if wd != 0:
                g = g + wd * p.data
            v = st["square_avg"]
            v *= alpha
            v += (1.0 - alpha) * (g * g)
            if group["centered"]:
                m = st.setdefault("grad_avg", xp.zeros_like(p.data))
                m += (1.0 - alpha) * (g - m)
                d = xp.sqrt(v - m * m)
            else:
                d = xp.sqrt(v)
            d += eps
            if mom > 0:
                b = st.setdefault("momentum_buffer", xp.zeros_like(p.data))
                b *= mom
                b += g / d
                p.data -= lr * b
            else:
                p.data -= lr * (g / d)


class Adagrad(Optimizer):
    """Adagrad (Duchi, Hazan & Singer, 2011, "Adaptive Subgradient Methods for Online
    Learning and Stochastic Optimization").

    For each parameter ``p`` with gradient ``g``, step ``t`` (from 1)::

        g = g + weight_decay * p                       (L2 penalty, coupled)
        clr = lr / (1 + (t - 1) * lr_decay)
        s = s + g^2                                    (s starts at initial_accumulator_value)
        p = p - clr * g / (sqrt(s) + eps)

    as ``torch.optim.Adagrad`` (state ``sum`` and ``step``, created for every parameter
    when the optimizer is built, as PyTorch does). Sparse gradients do not exist in
    fastconv.
    """

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, foreach=None, *, maximize: bool = False,
                 differentiable: bool = False, fused=None):
        check_implementation_flags("Adagrad", foreach, False, differentiable, fused)
        _check("Adagrad", lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
               initial_accumulator_value=initial_accumulator_value, eps=eps)
        super().__init__(params, {"lr": lr, "lr_decay": lr_decay, "weight_decay": weight_decay,
                                  "initial_accumulator_value": initial_accumulator_value,
                                  "eps": eps, "maximize": maximize})
        for i, p, group in self._params():
            self._init_state(i, p, group)

    def _init_state(self, i, p, group) -> dict:
        xp = array_module(p.data)
        st = self.state.setdefault(p, {})
        if "sum" not in st:
            st["step"] = 0
            st["sum"] = xp.full_like(p.data, group["initial_accumulator_value"])
        return st

    def add_param_group(self, group: dict) -> None:
        n = sum(len(g["params"]) for g in self.param_groups)
        super().add_param_group(group)
        if hasattr(self, "state"):
            g = self.param_groups[-1]
            for k, p in enumerate(g["params"]):
                if p not in self.state:
                    self._init_state(n + k, p, g)

    def _update(self) -> None:
        for i, p, group in self._params():
            if p.grad is None:
                continue
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            g = _grad(p)
            if group["maximize"]:
                g = -g
            st = self._init_state(i, p, group)
            st["step"] += 1
            if wd != 0:
                g = g + wd * p.data
            clr = lr / (1 + (st["step"] - 1) * group["lr_decay"])
            s = st["sum"]
            s += g * g
            xp = array_module(p.data)
            std = xp.sqrt(s)
            std += eps
            p.data -= clr * (g / std)
