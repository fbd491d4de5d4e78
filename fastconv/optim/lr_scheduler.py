"""Learning-rate schedules (PyTorch's ``torch.optim.lr_scheduler`` interface).

Each scheduler sets ``group["lr"]`` of its optimizer's parameter groups from
a closed-form function of its step counter ``last_epoch``: ``step()`` advances
the counter by one and writes the new rates. Call it once per epoch or once
per batch -- whichever unit the schedule's lengths (``step_size``, ``T_max``,
``total_steps``, ...) are counted in. Construction applies step 0.

``state_dict()`` is JSON-serialisable, so schedulers go into checkpoints
alongside the optimizer (whose state holds the current rates as well).
"""

from __future__ import annotations

import bisect
import math

__all__ = [
    "ConstantLR",
    "CosineAnnealingLR",
    "LRScheduler",
    "LambdaLR",
    "LinearLR",
    "LinearWarmup",
    "MultiStepLR",
    "OneCycleLR",
    "ReduceLROnPlateau",
    "SequentialLR",
    "StepLR",
]


class LRScheduler:
    """Base class: subclasses define ``lr_at(t) -> [lr per group]`` (``self.base_lrs``
    holds each group's ``initial_lr``, the rate the group had when first scheduled)."""

    def __init__(self, optimizer, last_epoch: int = -1):
        if not hasattr(optimizer, "param_groups"):
            raise TypeError(f"{type(self).__name__}: expected an optimizer, got "
                            f"{type(optimizer).__name__}")
        self.optimizer = optimizer
        for g in optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._last_lr = [g["lr"] for g in optimizer.param_groups]
        self.step()

    def lr_at(self, t: int) -> list:  # pragma: no cover - abstract
        raise NotImplementedError

    def step(self, epoch: int | None = None) -> None:
        """Advance to step ``last_epoch + 1`` (or to ``epoch``) and set the rates."""
        self.last_epoch = self.last_epoch + 1 if epoch is None else int(epoch)
        self._apply(self.lr_at(self.last_epoch))

    def _apply(self, lrs) -> None:
        for g, lr in zip(self.optimizer.param_groups, lrs):
            g["lr"] = lr
        self._last_lr = list(lrs)

    def get_last_lr(self) -> list:
        """The rates set by the last step, one per parameter group."""
        return list(self._last_lr)

    def state_dict(self) -> dict:
        out = {}
        for k, v in self.__dict__.items():
            if k == "optimizer" or callable(v):
                continue
            if isinstance(v, LRScheduler):
                v = v.state_dict()
            elif isinstance(v, list) and v and isinstance(v[0], LRScheduler):
                v = [s.state_dict() for s in v]
            out[k] = list(v) if isinstance(v, tuple) else v
        return out

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            cur = self.__dict__.get(k)
            if isinstance(cur, LRScheduler):
                cur.load_state_dict(v)
            elif isinstance(cur, list) and cur and isinstance(cur[0], LRScheduler):
                for s, sv in zip(cur, v):
                    s.load_state_dict(sv)
            else:
                self.__dict__[k] = v
        self._restore()

    def _restore(self) -> None:
        """Write the rates of step ``last_epoch`` into the optimizer (whatever order the
        optimizer and the scheduler were restored in)."""
        if self.last_epoch >= 0:
            self._apply(self.lr_at(self.last_epoch))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, lr={self._last_lr})"


class LambdaLR(LRScheduler):
    """``lr = base_lr * lr_lambda(t)``. The function itself is not part of the state dict."""

    def __init__(self, optimizer, lr_lambda, last_epoch: int = -1):
        self.lr_lambda = lr_lambda
        super().__init__(optimizer, last_epoch)

    def lr_at(self, t):
        return [b * self.lr_lambda(t) for b in self.base_lrs]


class ConstantLR(LRScheduler):
    """``lr = base_lr * factor`` for ``t < total_iters``, then ``base_lr``."""

    def __init__(self, optimizer, factor: float = 1.0 / 3, total_iters: int = 5,
                 last_epoch: int = -1):
        self.factor, self.total_iters = factor, total_iters
        super().__init__(optimizer, last_epoch)

    def lr_at(self, t):
        return [b * (self.factor if t < self.total_iters else 1.0) for b in self.base_lrs]


class StepLR(LRScheduler):
    """``lr = base_lr * gamma ** (t // step_size)``: times ``gamma`` every ``step_size`` steps."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1):
        if step_size < 1:
            raise ValueError("StepLR: step_size must be >= 1")
        self.step_size, self.gamma = int(step_size), float(gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, t):
        return [b * self.gamma ** (t // self.step_size) for b in self.base_lrs]


class MultiStepLR(LRScheduler):
    """``lr = base_lr * gamma ** (number of milestones <= t)``."""

    def __init__(self, optimizer, milestones, gamma: float = 0.1, last_epoch: int = -1):
        self.milestones, self.gamma = sorted(int(m) for m in milestones), float(gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, t):
        k = bisect.bisect_right(self.milestones, t)
        return [b * self.gamma ** k for b in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2`` for t <= T_max,
    then ``eta_min`` (SGDR without restarts; Loshchilov & Hutter, 2017)."""

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1):
        if T_max < 1:
            raise ValueError("CosineAnnealingLR: T_max must be >= 1")
        self.T_max, self.eta_min = int(T_max), float(eta_min)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, t):
        t = min(t, self.T_max)
        c = (1 + math.cos(math.pi * t / self.T_max)) / 2
        return [self.eta_min + (b - self.eta_min) * c for b in self.base_lrs]


class LinearLR(LRScheduler):
    """Multiply the rate by a factor going linearly from ``start_factor`` to ``end_factor``
    over ``total_iters`` steps, then by ``end_factor``."""

    def __init__(self, optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
                 total_iters: int = 5, last_epoch: int = -1):
        if not (0 <= start_factor <= 1 and 0 <= end_factor <= 1):
            raise ValueError("LinearLR: factors must lie in [0, 1]")
        self.start_factor, self.end_factor = float(start_factor), float(end_factor)
        self.total_iters = int(total_iters)
        super().__init__(optimizer, last_epoch)

    def factor(self, t):
        if self.total_iters <= 0:
            return self.end_factor
        f = min(t, self.total_iters) / self.total_iters
        return self.start_factor + (self.end_factor - self.start_factor) * f

    def lr_at(self, t):
        return [b * self.factor(t) for b in self.base_lrs]


class SequentialLR(LRScheduler):
    """Run ``schedulers[k]`` from ``milestones[k-1]`` on, each restarting at its own step 0."""

    def __init__(self, optimizer, schedulers, milestones, last_epoch: int = -1):
        if len(milestones) != len(schedulers) - 1:
            raise ValueError("SequentialLR: need len(schedulers) - 1 milestones")
        self.schedulers = list(schedulers)
        self.milestones = [int(m) for m in milestones]
        super().__init__(optimizer, last_epoch)

    def lr_at(self, t):
        k = bisect.bisect_right(self.milestones, t)
        start = self.milestones[k - 1] if k > 0 else 0
        s = self.schedulers[k]
        s.last_epoch = t - start
        lrs = s.lr_at(t - start)
        s._last_lr = list(lrs)
        return lrs


def LinearWarmup(optimizer, warmup_steps: int, after: LRScheduler | None = None,
                 start_factor: float = 0.0) -> LRScheduler:
    """Linear warm-up over ``warmup_steps`` steps (factor ``start_factor`` -> 1), then ``after``.

    ``after`` is any scheduler built on the same optimizer, counted from the end of
    the warm-up (e.g. ``CosineAnnealingLR(opt, T_max=total - warmup_steps)``);
    without it the rate stays at the base rate (Goyal et al., 2017, "Accurate,
    Large Minibatch SGD").
    """
    warm = LinearLR(optimizer, start_factor=start_factor, end_factor=1.0,
                    total_iters=max(int(warmup_steps), 1))
    if after is None:
        return warm
    return SequentialLR(optimizer, [warm, after], milestones=[int(warmup_steps)])


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin, 2019, "Super-Convergence"), as torch's OneCycleLR.

    The rate rises from ``max_lr / div_factor`` to ``max_lr`` over the first
    ``pct_start`` of ``total_steps`` and falls to ``max_lr / div_factor /
    final_div_factor`` by the end (cosine or linear ``anneal_strategy``);
    ``three_phase`` returns to the initial rate before the final fall. With
    ``cycle_momentum`` the momentum (SGD) or beta1 (Adam) moves the opposite
    way between ``max_momentum`` and ``base_momentum``. Step once per batch.
    """

    def __init__(self, optimizer, max_lr, total_steps: int, pct_start: float = 0.3,
                 anneal_strategy: str = "cos", cycle_momentum: bool = True,
                 base_momentum: float = 0.85, max_momentum: float = 0.95,
                 div_factor: float = 25.0, final_div_factor: float = 1e4,
                 three_phase: bool = False, last_epoch: int = -1):
        if total_steps < 1:
            raise ValueError("OneCycleLR: total_steps must be >= 1")
        if not 0 <= pct_start <= 1:
            raise ValueError("OneCycleLR: pct_start must lie in [0, 1]")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError("OneCycleLR: anneal_strategy must be 'cos' or 'linear'")
        groups = optimizer.param_groups
        max_lrs = list(max_lr) if isinstance(max_lr, (list, tuple)) else [max_lr] * len(groups)
        self.total_steps = int(total_steps)
        self.anneal_strategy = anneal_strategy
        self.cycle_momentum = bool(cycle_momentum)
        self.max_lrs = [float(m) for m in max_lrs]
        self.initial_lrs = [m / div_factor for m in self.max_lrs]
        self.min_lrs = [i / final_div_factor for i in self.initial_lrs]
        if three_phase:
            self.phases = [[float(pct_start * total_steps) - 1, "initial", "max"],
                           [float(2 * pct_start * total_steps) - 2, "max", "initial"],
                           [total_steps - 1.0, "initial", "min"]]
        else:
            self.phases = [[float(pct_start * total_steps) - 1, "initial", "max"],
                           [total_steps - 1.0, "max", "min"]]
        self.use_beta1 = "betas" in groups[0]
        if self.cycle_momentum and not self.use_beta1 and "momentum" not in groups[0]:
            raise ValueError("OneCycleLR: cycle_momentum needs an optimizer with momentum or "
                             "betas")
        self.base_momentum, self.max_momentum = float(base_momentum), float(max_momentum)
        if last_epoch == -1:
            for g, lr in zip(groups, self.initial_lrs):
                g["initial_lr"] = lr
                g["lr"] = lr
        super().__init__(optimizer, last_epoch)

    def _anneal(self, start, end, pct):
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _values(self, t):
        if t > self.total_steps:
            raise ValueError(f"OneCycleLR: stepped {t} times, more than total_steps="
                             f"{self.total_steps}")
        lrs, moms = [], []
        for k in range(len(self.max_lrs)):
            vals = {"initial": self.initial_lrs[k], "max": self.max_lrs[k], "min": self.min_lrs[k]}
            mom = {"initial": self.max_momentum, "max": self.base_momentum,
                   "min": self.max_momentum}
            start = 0.0
            for i, (end, a, b) in enumerate(self.phases):
                if t <= end or i == len(self.phases) - 1:
                    pct = (t - start) / (end - start)
                    lrs.append(self._anneal(vals[a], vals[b], pct))
                    moms.append(self._anneal(mom[a], mom[b], pct))
                    break
                start = end
        return lrs, moms

    def lr_at(self, t):
        return self._values(t)[0]

    def step(self, epoch=None):
        super().step(epoch)
        self._set_momentum()

    def _restore(self) -> None:
        super()._restore()
        if self.last_epoch >= 0:
            self._set_momentum()

    def _set_momentum(self) -> None:
        if self.cycle_momentum:
            _, moms = self._values(self.last_epoch)
            for g, m in zip(self.optimizer.param_groups, moms):
                if self.use_beta1:
                    g["betas"] = (m, g["betas"][1])
                else:
                    g["momentum"] = m


class ReduceLROnPlateau:
    """Divide the rate by ``1/factor`` when a metric has stopped improving for ``patience`` epochs.

    ``step(metric)`` once per epoch (e.g. the validation loss with mode="min",
    or the accuracy with mode="max"). Improvement means beating the best value
    by ``threshold`` (relative or absolute, ``threshold_mode``); after a
    reduction, ``cooldown`` epochs pass before counting again; rates never go
    below ``min_lr``. As ``torch.optim.lr_scheduler.ReduceLROnPlateau``.
    """

    def __init__(self, optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr=0.0, eps: float = 1e-8):
        if factor >= 1.0:
            raise ValueError("ReduceLROnPlateau: factor must be < 1")
        if mode not in ("min", "max") or threshold_mode not in ("rel", "abs"):
            raise ValueError("ReduceLROnPlateau: mode must be min|max, threshold_mode rel|abs")
        self.optimizer = optimizer
        n = len(optimizer.param_groups)
        self.min_lrs = list(min_lr) if isinstance(min_lr, (list, tuple)) else [min_lr] * n
        self.mode, self.factor, self.patience = mode, float(factor), int(patience)
        self.threshold, self.threshold_mode = float(threshold), threshold_mode
        self.cooldown, self.eps = int(cooldown), float(eps)
        self.cooldown_counter = 0
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.last_epoch = 0
        self._last_lr = [g["lr"] for g in optimizer.param_groups]

    def _is_better(self, a):
        if self.mode == "min":
            ref = self.best * (1 - self.threshold) if self.threshold_mode == "rel" else \
                self.best - self.threshold
            return a < ref
        ref = self.best * (1 + self.threshold) if self.threshold_mode == "rel" else \
            self.best + self.threshold
        return a > ref

    def step(self, metric) -> None:
        current = float(metric)
        self.last_epoch += 1
        if self._is_better(current):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for g, lo in zip(self.optimizer.param_groups, self.min_lrs):
                new = max(g["lr"] * self.factor, lo)
                if g["lr"] - new > self.eps:
                    g["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def get_last_lr(self) -> list:
        return list(self._last_lr)

    def state_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state: dict) -> None:
        self.__dict__.update(state)
