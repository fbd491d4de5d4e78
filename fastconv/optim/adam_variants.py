"""NAdam, RAdam and Adamax: Adam's relatives, with PyTorch's formulations, arguments,
defaults and state names."""

from __future__ import annotations

import math

from .optimizer import Optimizer, array_module, check_implementation_flags

__all__ = ["Adamax", "NAdam", "RAdam"]


def _grad(p):
    g = p.grad
    return g.data if hasattr(g, "data") else g


def _check_adam_args(lr, betas, eps, weight_decay) -> None:
    """The checks torch.optim's Adam family makes, with its messages."""
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")
    if not 0.0 <= eps:
        raise ValueError(f"Invalid epsilon value: {eps}")
    if not 0.0 <= betas[0] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
    if not 0.0 <= betas[1] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
    if not 0.0 <= weight_decay:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")


def _moments(st, p, xp) -> None:
    """The first and second moments Adam-like methods keep (``exp_avg``, ``exp_avg_sq``)."""
    st["exp_avg"] = xp.zeros_like(p.data)
    st["exp_avg_sq"] = xp.zeros_like(p.data)


class NAdam(Optimizer):
    """NAdam: Adam with Nesterov momentum (Dozat, 2016, "Incorporating Nesterov Momentum
    into Adam"), with the momentum schedule of the paper.

    For each parameter ``p`` with gradient ``g`` (``-g`` with ``maximize``), step ``t``::

        p = p * (1 - lr * weight_decay)                (decoupled_weight_decay: NAdamW)
        g = g + weight_decay * p                       (otherwise: L2 penalty, coupled)
        mu_t = beta1 * (1 - 0.5 * 0.96^(t * momentum_decay))
        P_t = mu_1 * ... * mu_t                        (state mu_product, 1 before step 1)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2
        d = sqrt(v / (1 - beta2^t)) + eps
        p = p - lr * (1 - mu_t) / (1 - P_t) * g / d
              - lr * mu_{t+1} / (1 - P_t * mu_{t+1}) * m / d

    as ``torch.optim.NAdam`` (state ``step``, ``mu_product``, ``exp_avg``, ``exp_avg_sq``,
    created at a parameter's first step with a gradient).
    """

    def __init__(self, params, lr: float = 2e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, *, foreach=None, maximize: bool = False,
                 capturable: bool = False, differentiable: bool = False):
        check_implementation_flags("NAdam", foreach, capturable, differentiable, None)
        _check_adam_args(lr, betas, eps, weight_decay)
        if not 0.0 <= momentum_decay:
            raise ValueError(f"Invalid momentum_decay value: {momentum_decay}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps,
                                  "weight_decay": weight_decay, "momentum_decay": momentum_decay,
                                  "decoupled_weight_decay": decoupled_weight_decay,
                                  "maximize": maximize})

    def _update(self) -> None:
        for i, p, group in self._params():
            if p.grad is None:
                continue
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            b1, b2 = group["betas"]
            psi = group["momentum_decay"]
            xp = array_module(p.data)
            g = _grad(p)
            if group["maximize"]:
                g = -g
            st = self.state.setdefault(p, {})
            if "step" not in st:
                st["step"] = 0
                st["mu_product"] = 1.0
                _moments(st, p, xp)
            st["step"] += 1
            t = st["step"]
            if wd != 0:
                if group["decoupled_weight_decay"]:
                    p.data *= 1.0 - lr * wd
                else:
                    g = g + wd * p.data
            mu = b1 * (1.0 - 0.5 * 0.96 ** (t * psi))
            mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
            st["mu_product"] *= mu
            prod = st["mu_product"]
            m, v = st["exp_avg"], st["exp_avg_sq"]
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * (g * g)
            denom = xp.sqrt(v / (1.0 - b2 ** t))
            denom += eps
            p.data -= (lr * (1.0 - mu) / (1.0 - prod)) * (g / denom)
            p.data -= (lr * mu_next / (1.0 - prod * mu_next)) * (m / denom)


class RAdam(Optimizer):
    """RAdam: Adam with the variance of its adaptive rate rectified (Liu et al., 2020,
    "On the Variance of the Adaptive Learning Rate and Beyond").

    For each parameter ``p`` with gradient ``g`` (``-g`` with ``maximize``), step ``t``::

        p = p * (1 - lr * weight_decay)                (decoupled_weight_decay: RAdamW)
        g = g + weight_decay * p                       (otherwise: L2 penalty, coupled)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2
        m_hat = m / (1 - beta1^t)
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)
        if rho_t > 5:                                  (the variance is tractable)
            r = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
            p = p - lr * m_hat * r * sqrt(1 - beta2^t) / (sqrt(v) + eps)
        else:                                          (the first steps: SGD with momentum)
            p = p - lr * m_hat

    as ``torch.optim.RAdam`` (state ``step``, ``exp_avg``, ``exp_avg_sq``).
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, decoupled_weight_decay: bool = False, *,
                 foreach=None, maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False):
        check_implementation_flags("RAdam", foreach, capturable, differentiable, None)
        _check_adam_args(lr, betas, eps, weight_decay)
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps,
                                  "weight_decay": weight_decay,
                                  "decoupled_weight_decay": decoupled_weight_decay,
                                  "maximize": maximize})

    def _update(self) -> None:
        for i, p, group in self._params():
            if p.grad is None:
                continue
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            b1, b2 = group["betas"]
            xp = array_module(p.data)
            g = _grad(p)
            if group["maximize"]:
                g = -g
            st = self.state.setdefault(p, {})
            if "step" not in st:
                st["step"] = 0
                _moments(st, p, xp)
            st["step"] += 1
            t = st["step"]
            if wd != 0:
                if group["decoupled_weight_decay"]:
                    p.data *= 1.0 - lr * wd
                else:
                    g = g + wd * p.data
            m, v = st["exp_avg"], st["exp_avg_sq"]
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * (g * g)
            bc1, bc2 = 1.0 - b1 ** t, 1.0 - b2 ** t
            rho_inf = 2.0 / (1.0 - b2) - 1.0
            rho_t = rho_inf - 2.0 * t * b2 ** t / bc2
            if rho_t > 5.0:
                rect = math.sqrt((rho_t - 4.0) * (rho_t - 2.0) * rho_inf
                                 / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
                denom = xp.sqrt(v)
                denom += eps
                p.data -= (lr / bc1 * rect * math.sqrt(bc2)) * (m / denom)
            else:
                p.data -= (lr / bc1) * m


class Adamax(Optimizer):
    """Adamax: Adam with the infinity norm in place of the second moment (Kingma & Ba, 2015,
    "Adam: A Method for Stochastic Optimization", section 7.1).

    For each parameter ``p`` with gradient ``g`` (``-g`` with ``maximize``), step ``t``::

        g = g + weight_decay * p                       (L2 penalty, coupled)
        m = beta1 * m + (1 - beta1) * g
        u = max(beta2 * u, |g| + eps)
        p = p - lr / (1 - beta1^t) * m / u

    as ``torch.optim.Adamax`` (state ``step``, ``exp_avg``, ``exp_inf``).
    """

    def __init__(self, params, lr: float = 2e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, foreach=None, *, maximize: bool = False,
                 differentiable: bool = False, capturable: bool = False):
        check_implementation_flags("Adamax", foreach, capturable, differentiable, None)
        _check_adam_args(lr, betas, eps, weight_decay)
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps,
                                  "weight_decay": weight_decay, "maximize": maximize})

    def _update(self) -> None:
        for i, p, group in self._params():
            if p.grad is None:
                continue
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            b1, b2 = group["betas"]
            xp = array_module(p.data)
            g = _grad(p)
            if group["maximize"]:
                g = -g
            st = self.state.setdefault(p, {})
            if "step" not in st:
                st["step"] = 0
                st["exp_avg"] = xp.zeros_like(p.data)
                st["exp_inf"] = xp.zeros_like(p.data)
            st["step"] += 1
            if wd != 0:
                g = g + wd * p.data
            m, u = st["exp_avg"], st["exp_inf"]
            m *= b1
            m += (1.0 - b1) * g
            u *= b2
            a = xp.abs(g)
            a += eps
            xp.maximum(u, a, out=u)
            p.data -= (lr / (1.0 - b1 ** st["step"])) * (m / u)
