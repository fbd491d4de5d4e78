"""Learning-rate schedules: ``torch.optim.lr_scheduler``'s classes, arguments and semantics.

Each scheduler sets ``group["lr"]`` of its optimizer's parameter groups. ``step()``
advances the counter ``last_epoch`` by one and writes the rate of the new step;
construction applies step 0. Call it once per epoch or once per batch --
whichever unit the schedule's lengths (``step_size``, ``T_max``, ``total_steps``,
...) are counted in -- after ``optimizer.step()``.

Closed form and chaining, as PyTorch:

* ``step()`` is *chainable*: once another scheduler (or the user) has changed
  ``group["lr"]`` behind this scheduler's back, every new rate is derived from
  the current one with PyTorch's recursive formula (``get_lr()``), so two
  schedulers on one optimizer compose (e.g. ``ExponentialLR`` and
  ``MultiStepLR`` both stepped each epoch), and a rate changed by hand carries
  on, exactly as in PyTorch. While nobody else touches the rate, the rate is
  the closed-form value of the step (``_get_closed_form_lr()``): mathematically
  the same number as PyTorch's recursion, without its accumulated rounding --
  so a run resumed with ``step(epoch=t)`` continues with the very same bits as
  an uninterrupted one.
* ``step(epoch)`` jumps to step ``epoch`` with the closed form (PyTorch
  deprecates the argument and warns; fastconv keeps it as a supported way to
  resume, without a warning). ``SequentialLR.step(epoch)`` works too (PyTorch's
  takes no argument).
* Past its end a schedule behaves as PyTorch computes it: ``CosineAnnealingLR``
  past ``T_max`` follows the cosine back up (period ``2 * T_max``), it is not
  clamped at ``eta_min``; ``OneCycleLR`` raises ValueError after
  ``total_steps``.

``state_dict()`` is JSON-serialisable (lambdas are left out, as in PyTorch), so
schedulers go into checkpoints alongside the optimizer. ``load_state_dict``
restores the counters and also writes the rates of the restored step into the
optimizer (PyTorch leaves that to the optimizer's own state; with both loaded
the result is the same, in either order).
"""

from __future__ import annotations

import bisect
import math
from collections import Counter

__all__ = [
    "ChainedScheduler",
    "ConstantLR",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "CyclicLR",
    "ExponentialLR",
    "LRScheduler",
    "LambdaLR",
    "LinearLR",
    "LinearWarmup",
    "MultiStepLR",
    "MultiplicativeLR",
    "OneCycleLR",
    "PolynomialLR",
    "ReduceLROnPlateau",
    "SequentialLR",
    "StepLR",
]


def _per_group(name, optimizer, value) -> list:
    n = len(optimizer.param_groups)
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{name} must have the same length as optimizer.param_groups. "
                             f"{name} has {len(value)} values, param_groups has {n}.")
        return list(value)
    return [value] * n


class LRScheduler:
    """Base class (``torch.optim.lr_scheduler.LRScheduler``).

    Subclasses define ``_closed_form(t) -> [lr per group]`` (from ``self.base_lrs``,
    each group's ``initial_lr``) and, when PyTorch's recursive formula differs
    from it, ``get_lr()`` (the chainable update from the groups' current rates).
    A subclass that only overrides ``get_lr()``, as PyTorch's custom schedulers do, is
    stepped with it: ``step()`` sets ``last_epoch`` and writes the rates ``get_lr()``
    returns (``step(epoch)`` uses ``_get_closed_form_lr()`` where the subclass gives one).
    """

    def __init__(self, optimizer, last_epoch: int = -1):
        if not hasattr(optimizer, "param_groups"):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        if last_epoch == -1:
            for g in optimizer.param_groups:
                g.setdefault("initial_lr", g["lr"])
        else:
            for i, g in enumerate(optimizer.param_groups):
                if "initial_lr" not in g:
                    raise KeyError(f"param 'initial_lr' is not specified in param_groups[{i}] "
                                   "when resuming scheduler with last_epoch >= 0 (load the "
                                   "optimizer's state first, or use last_epoch=-1)")
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()
        if last_epoch != -1:
            # resumed: PyTorch steps on from the groups' current rates, which need not be the
            # closed form's (a rate restored from the optimizer's state, or set by hand)
            self._chained = True

    def _initial_step(self) -> None:
        # _last_lr: what this scheduler last wrote (at first: the initial rates); a group
        # whose rate differs was changed by someone else, and from then on every step
        # chains onto the current rate (get_lr) instead of using the closed form.
        self._last_lr = list(self.base_lrs)
        self._chained = False
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    # -- the formulas ------------------------------------------------------------------------------
    def _closed_form(self, t: int) -> list:  # pragma: no cover - abstract
        raise NotImplementedError

    def _get_closed_form_lr(self) -> list:
        """The rates of step ``last_epoch`` from ``base_lrs`` (PyTorch's closed form)."""
        return self._closed_form(self.last_epoch)

    def get_lr(self) -> list:
        """The rates of step ``last_epoch`` chained onto the groups' current rates (PyTorch's
        recursive form). For schedules without one, the closed form."""
        return self._get_closed_form_lr()

    # -- stepping ----------------------------------------------------------------------------------
    def _untouched(self) -> bool:
        groups = self.optimizer.param_groups
        return len(groups) == len(self._last_lr) and all(
            g["lr"] == lr for g, lr in zip(groups, self._last_lr))

    def step(self, epoch: int | None = None) -> None:
        """Advance to step ``last_epoch + 1`` (or jump to ``epoch``, closed form) and set the
        rates."""
        self._step_count += 1
        self._update_lr(epoch)

    def _owner(self, name: str) -> type:
        return next(c for c in type(self).__mro__ if name in c.__dict__)

    def _has_closed_form(self) -> bool:
        """Whether ``_closed_form`` describes this schedule. A subclass written as in PyTorch
        (``get_lr()`` overridden below the class that gives the closed form, or no closed form
        at all) is stepped with its own ``get_lr()``, as PyTorch steps every scheduler."""
        mro = type(self).__mro__
        closed = self._owner("_closed_form")
        return closed is not LRScheduler and mro.index(self._owner("get_lr")) >= mro.index(closed)

    def _update_lr(self, epoch=None) -> None:
        self._get_lr_called_within_step = True  # PyTorch's flag, read by some get_lr()s
        try:
            values = self._next_lrs(epoch)
        finally:
            self._get_lr_called_within_step = False
        self._apply(values)

    def _next_lrs(self, epoch) -> list:
        if epoch is None:
            self.last_epoch += 1
            if not self._has_closed_form():
                return self.get_lr()
            if not self._untouched():
                self._chained = True  # from now on, as PyTorch: each rate from the last one
            chain = self._is_initial or self._chained
            return self.get_lr() if chain else self._get_closed_form_lr()
        self.last_epoch = int(epoch)
        self._chained = False
        if self._has_closed_form() or self._owner("_get_closed_form_lr") is not LRScheduler:
            return self._get_closed_form_lr()
        return self.get_lr()  # no closed form: PyTorch calls get_lr() too

    def _apply(self, lrs) -> None:
        for g, lr in zip(self.optimizer.param_groups, lrs):
            g["lr"] = lr
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def get_last_lr(self) -> list:
        """The rates set by the last step, one per parameter group."""
        return list(self._last_lr)

    # -- state -------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Every attribute but the optimizer and functions (nested schedulers as their state
        dicts), JSON-serialisable."""
        out = {}
        for k, v in self.__dict__.items():
            if k == "optimizer" or callable(v):
                continue
            if isinstance(v, LRScheduler):
                v = v.state_dict()
            elif isinstance(v, list) and v and isinstance(v[0], LRScheduler):
                v = [s.state_dict() for s in v]
            elif isinstance(v, list) and v and callable(v[0]):
                v = [None] * len(v)
            elif isinstance(v, Counter):
                v = sorted(v.elements())
            out[k] = list(v) if isinstance(v, tuple) else v
        return out

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict()`` and write the rates of its last step into the optimizer.

        PyTorch restores the counters only and leaves the rates to the optimizer's own
        ``load_state_dict``; the result is the same when both are loaded, but fastconv's
        order does not matter (a scheduler built after ``optimizer.load_state_dict`` no
        longer leaves its construction-time rate behind)."""
        for k, v in state.items():
            cur = self.__dict__.get(k)
            if isinstance(cur, LRScheduler):
                cur.load_state_dict(v)
            elif isinstance(cur, list) and cur and isinstance(cur[0], LRScheduler):
                for s, sv in zip(cur, v):
                    s.load_state_dict(sv)
            elif isinstance(cur, list) and cur and callable(cur[0]):
                continue  # functions are not part of the state
            elif isinstance(cur, Counter):
                self.__dict__[k] = Counter(v)
            else:
                self.__dict__[k] = v
        self._restore()

    def _restore(self) -> None:
        groups = self.optimizer.param_groups
        if self.last_epoch >= 0 and len(self._last_lr) == len(groups):
            for g, lr in zip(groups, self._last_lr):
                g["lr"] = lr

    def __repr__(self) -> str:
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, lr={self._last_lr})"


class _LRScheduler(LRScheduler):
    """The old name of :class:`LRScheduler`, kept as PyTorch keeps it."""


class LambdaLR(LRScheduler):
    """``lr = base_lr * lr_lambda(t)`` (one function, or one per group). The functions are
    not part of the state dict."""

    def __init__(self, optimizer, lr_lambda, last_epoch: int = -1):
        self.lr_lambdas = _per_group("lr_lambda", optimizer, lr_lambda)
        for f in self.lr_lambdas:
            if not callable(f):
                raise TypeError(f"lr_lambda should be a function, but got {type(f).__name__}")
        super().__init__(optimizer, last_epoch)

    def _closed_form(self, t):
        return [b * f(t) for f, b in zip(self.lr_lambdas, self.base_lrs)]


class MultiplicativeLR(LRScheduler):
    """``lr = lr * lr_lambda(t)`` at every step after the first (a chained schedule only:
    it has no closed form, so ``step(epoch)`` multiplies once too, as in PyTorch)."""

    def __init__(self, optimizer, lr_lambda, last_epoch: int = -1):
        self.lr_lambdas = _per_group("lr_lambda", optimizer, lr_lambda)
        for f in self.lr_lambdas:
            if not callable(f):
                raise TypeError(f"lr_lambda should be a function, but got {type(f).__name__}")
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        groups = self.optimizer.param_groups
        if self._is_initial:
            return [g["lr"] for g in groups]
        return [g["lr"] * f(self.last_epoch) for f, g in zip(self.lr_lambdas, groups)]

    _get_closed_form_lr = get_lr

    def _update_lr(self, epoch=None) -> None:
        self.last_epoch = self.last_epoch + 1 if epoch is None else int(epoch)
        self._apply(self.get_lr())


class ConstantLR(LRScheduler):
    """``lr = base_lr * factor`` for ``t < total_iters``, then ``base_lr``."""

    def __init__(self, optimizer, factor: float = 1.0 / 3, total_iters: int = 5,
                 last_epoch: int = -1):
        if factor > 1.0 or factor < 0:
            raise ValueError("Constant multiplicative factor expected to be between 0 and 1.")
        self.factor, self.total_iters = factor, total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        groups, t = self.optimizer.param_groups, self.last_epoch
        if t == 0:
            return [g["lr"] * self.factor for g in groups]
        if t != self.total_iters:
            return [g["lr"] for g in groups]
        return [g["lr"] * (1.0 / self.factor) for g in groups]

    def _closed_form(self, t):
        return [b * (self.factor + (t >= self.total_iters) * (1 - self.factor))
                for b in self.base_lrs]


class StepLR(LRScheduler):
    """``lr = base_lr * gamma ** (t // step_size)``: times ``gamma`` every ``step_size`` steps."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1):
        if step_size < 1:
            raise ValueError("StepLR: step_size must be >= 1")
        self.step_size, self.gamma = int(step_size), gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        groups, t = self.optimizer.param_groups, self.last_epoch
        if t == 0 or t % self.step_size != 0:
            return [g["lr"] for g in groups]
        return [g["lr"] * self.gamma for g in groups]

    def _closed_form(self, t):
        return [b * self.gamma ** (t // self.step_size) for b in self.base_lrs]


class MultiStepLR(LRScheduler):
    """``lr = base_lr * gamma ** (number of milestones <= t)`` (a milestone listed twice
    counts twice, as in PyTorch)."""

    def __init__(self, optimizer, milestones, gamma: float = 0.1, last_epoch: int = -1):
        self.milestones = Counter(int(m) for m in milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        groups, t = self.optimizer.param_groups, self.last_epoch
        if t not in self.milestones:
            return [g["lr"] for g in groups]
        return [g["lr"] * self.gamma ** self.milestones[t] for g in groups]

    def _closed_form(self, t):
        k = bisect.bisect_right(sorted(self.milestones.elements()), t)
        return [b * self.gamma ** k for b in self.base_lrs]


class ExponentialLR(LRScheduler):
    """``lr = base_lr * gamma ** t``: times ``gamma`` every step."""

    def __init__(self, optimizer, gamma: float, last_epoch: int = -1):
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        groups = self.optimizer.param_groups
        if self._is_initial:
            return [g["lr"] for g in groups]
        return [g["lr"] * self.gamma for g in groups]

    def _closed_form(self, t):
        return [b * self.gamma ** t for b in self.base_lrs]


class PolynomialLR(LRScheduler):
    """``lr = base_lr * (1 - min(t, total_iters) / total_iters) ** power``."""

    def __init__(self, optimizer, total_iters: int = 5, power: float = 1.0, last_epoch: int = -1):
        self.total_iters, self.power = total_iters, power
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        groups, t = self.optimizer.param_groups, self.last_epoch
        if self._is_initial or t > self.total_iters:
            return [g["lr"] for g in groups]
        f = ((1.0 - t / self.total_iters) / (1.0 - (t - 1) / self.total_iters)) ** self.power
        return [g["lr"] * f for g in groups]

    def _closed_form(self, t):
        return [b * (1.0 - min(self.total_iters, t) / self.total_iters) ** self.power
                for b in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2``
    (SGDR without restarts; Loshchilov & Hutter, 2017, "SGDR: Stochastic Gradient Descent
    with Warm Restarts").

    As in PyTorch the formula holds for every ``t``: past ``T_max`` the rate climbs
    back towards ``base_lr`` (reached at ``2 * T_max``) instead of staying at
    ``eta_min``; size ``T_max`` to the number of steps, or use
    :class:`CosineAnnealingWarmRestarts` for deliberate restarts.
    """

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1):
        if T_max < 1:
            raise ValueError("CosineAnnealingLR: T_max must be >= 1")
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        groups, t, T, lo = self.optimizer.param_groups, self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return [g["lr"] for g in groups]
        if self._step_count == 1 and t > 0:
            return [lo + (b - lo) * (1 + math.cos(t * math.pi / T)) / 2 for b in self.base_lrs]
        if (t - 1 - T) % (2 * T) == 0:
            return [g["lr"] + (b - lo) * (1 - math.cos(math.pi / T)) / 2
                    for b, g in zip(self.base_lrs, groups)]
        return [(1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
                * (g["lr"] - lo) + lo for g in groups]

    def _closed_form(self, t):
        c = (1 + math.cos(math.pi * t / self.T_max)) / 2
        return [self.eta_min + (b - self.eta_min) * c for b in self.base_lrs]


class CosineAnnealingWarmRestarts(LRScheduler):
    """Cosine annealing restarted every ``T_i`` steps, ``T_0`` first and ``T_mult`` times longer
    after each restart (SGDR; Loshchilov & Hutter, 2017):
    ``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2``.

    ``step()`` advances by one; ``step(epoch)`` takes a (possibly fractional) epoch,
    e.g. ``epoch + batch / batches_per_epoch``, as in PyTorch.
    """

    def __init__(self, optimizer, T_0: int, T_mult: int = 1, eta_min: float = 0.0,
                 last_epoch: int = -1):
        if T_0 <= 0 or not isinstance(T_0, int):
            raise ValueError(f"Expected positive integer T_0, but got {T_0}")
        if T_mult < 1 or not isinstance(T_mult, int):
            raise ValueError(f"Expected integer T_mult >= 1, but got {T_mult}")
        if not isinstance(eta_min, (float, int)):
            raise ValueError(f"Expected float or int eta_min, but got {eta_min} of type "  # noqa: TRY004 - torch's error type
                             f"{type(eta_min)}")
        self.T_0, self.T_i, self.T_mult, self.eta_min = T_0, T_0, T_mult, eta_min
        self.T_cur = last_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        c = (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2
        return [self.eta_min + (b - self.eta_min) * c for b in self.base_lrs]

    _get_closed_form_lr = get_lr

    def step(self, epoch=None) -> None:
        self._step_count += 1
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        else:
            if epoch < 0:
                raise ValueError(f"Expected non-negative epoch, but got {epoch}")
            if epoch >= self.T_0:
                if self.T_mult == 1:
                    self.T_cur = epoch % self.T_0
                else:
                    n = int(math.log((epoch / self.T_0 * (self.T_mult - 1) + 1), self.T_mult))
                    self.T_cur = epoch - self.T_0 * (self.T_mult ** n - 1) / (self.T_mult - 1)
                    self.T_i = self.T_0 * self.T_mult ** n
            else:
                self.T_i = self.T_0
                self.T_cur = epoch
        self.last_epoch = math.floor(epoch)
        self._apply(self.get_lr())


class LinearLR(LRScheduler):
    """Multiply the rate by a factor going linearly from ``start_factor`` to ``end_factor``
    over ``total_iters`` steps, then by ``end_factor``."""

    def __init__(self, optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
                 total_iters: int = 5, last_epoch: int = -1):
        if start_factor > 1.0 or start_factor < 0:
            raise ValueError("Starting multiplicative factor expected to be between 0 and 1.")
        if end_factor > 1.0 or end_factor < 0:
            raise ValueError("Ending multiplicative factor expected to be between 0 and 1.")
        self.start_factor, self.end_factor = start_factor, end_factor
        self.total_iters = int(total_iters)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        groups, t = self.optimizer.param_groups, self.last_epoch
        if t == 0:
            return [g["lr"] * self.start_factor for g in groups]
        if self._is_initial or t > self.total_iters:
            return [g["lr"] for g in groups]
        d = self.end_factor - self.start_factor
        # start_factor 0 (fastconv allows it, for warm-up from zero): the ratio is undefined
        # at the first step, so continue from the closed form there.
        den = self.total_iters * self.start_factor + (t - 1) * d
        if den == 0:
            return self._closed_form(t)
        return [g["lr"] * (1.0 + d / den) for g in groups]

    def factor(self, t):
        if self.total_iters <= 0:
            return self.end_factor
        f = min(t, self.total_iters) / self.total_iters
        return self.start_factor + (self.end_factor - self.start_factor) * f

    def _closed_form(self, t):
        return [b * self.factor(t) for b in self.base_lrs]



def _check_members(owner: str, schedulers, optimizer) -> None:
    """The schedulers a SequentialLR / ChainedScheduler combines: schedulers of ``optimizer``
    that step without a metric (torch's messages)."""
    for k, s in enumerate(schedulers):
        if not hasattr(s, "optimizer"):
            raise TypeError(f"{owner} at index {k} should have `optimizer` as its attribute.")
        if isinstance(s, ReduceLROnPlateau):
            raise ValueError(f"{owner} does not support `ReduceLROnPlateau` scheduler "  # noqa: TRY004 - torch's error type
                             f"(at index {k}): it needs a metric in `step`")
        if s.optimizer is not optimizer:
            raise ValueError(f"{owner} expects all schedulers to belong to the same optimizer, "
                             f"but scheduler {k} ({type(s).__name__}) has another")

class SequentialLR(LRScheduler):
    """Run ``schedulers[k]`` from ``milestones[k-1]`` on, each restarting at its own step 0
    (PyTorch's SequentialLR). ``step(epoch)`` (fastconv's addition) jumps to step ``epoch``
    with the closed forms."""

    def __init__(self, optimizer, schedulers, milestones, last_epoch: int = -1):
        schedulers = list(schedulers)
        if len(schedulers) < 1:
            raise ValueError("SequentialLR expects at least one scheduler, but got no scheduler.")
        _check_members("SequentialLR", schedulers, optimizer)
        if len(milestones) != len(schedulers) - 1:
            raise ValueError("Sequential Schedulers expects number of schedulers provided to be "
                             "one more than the number of milestone points, but got number of "
                             f"schedulers {len(schedulers)} and the number of milestones to be "
                             f"equal to {len(milestones)}")
        self._schedulers = schedulers
        self._milestones = [int(m) for m in milestones]
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        for g in optimizer.param_groups:
            g["lr"] = g["initial_lr"]
        self._undo(self)
        idx = bisect.bisect_right(self._milestones, 0)
        self._schedulers[idx]._initial_step()
        self._last_lr = self._schedulers[idx].get_last_lr()

    def _undo(self, sched) -> None:
        if hasattr(sched, "_schedulers"):
            for s in sched._schedulers:
                self._undo(s)
        elif hasattr(sched, "last_epoch"):
            sched.last_epoch -= 1

    def step(self, epoch: int | None = None) -> None:
        if epoch is None:
            self.last_epoch += 1
            idx = bisect.bisect_right(self._milestones, self.last_epoch)
            s = self._schedulers[idx]
            if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
                s._update_lr(0)
            else:
                s.step()
        else:
            self.last_epoch = int(epoch)
            idx = bisect.bisect_right(self._milestones, self.last_epoch)
            s = self._schedulers[idx]
            start = self._milestones[idx - 1] if idx > 0 else 0
            s.step(self.last_epoch - start)
        self._last_lr = s.get_last_lr()

    def _closed_form(self, t):
        idx = bisect.bisect_right(self._milestones, t)
        start = self._milestones[idx - 1] if idx > 0 else 0
        return self._schedulers[idx]._closed_form(t - start)


class ChainedScheduler(LRScheduler):
    """Step several schedulers of one optimizer together, each chaining onto the rate the
    previous one set (PyTorch's ChainedScheduler)."""

    def __init__(self, schedulers, optimizer=None):
        schedulers = list(schedulers)
        if len(schedulers) < 1:
            raise ValueError("ChainedScheduler expects at least one scheduler to be chained, but "
                             "got no scheduler.")
        optimizer = optimizer or schedulers[0].optimizer
        _check_members("ChainedScheduler", schedulers, optimizer)
        self._schedulers = schedulers
        self.optimizer = optimizer
        self._last_lr = [g["lr"] for g in optimizer.param_groups]

    def step(self) -> None:
        for s in self._schedulers:
            s.step()
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]


def LinearWarmup(optimizer, warmup_steps: int, after: LRScheduler | None = None,
                 start_factor: float = 0.0) -> LRScheduler:
    """Linear warm-up over ``warmup_steps`` steps (factor ``start_factor`` -> 1), then ``after``
    (fastconv's shorthand for ``SequentialLR([LinearLR(...), after], [warmup_steps])``).

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


class _MomentumCycle(LRScheduler):
    """OneCycleLR and CyclicLR: each step sets the rates of ``_values(t)`` and, with
    ``cycle_momentum``, the momenta (SGD, RMSprop) or beta1 (Adam) that come with them."""

    def _momentum_range(self, optimizer, base_momentum, max_momentum) -> None:
        defaults = getattr(optimizer, "defaults", optimizer.param_groups[0])
        self.use_beta1 = "betas" in defaults
        if self.cycle_momentum and not self.use_beta1 and "momentum" not in defaults:
            raise ValueError("optimizer must support momentum or beta1 with `cycle_momentum` "
                             "option enabled")
        self.base_momentums = [float(m) for m in
                               _per_group("base_momentum", optimizer, base_momentum)]
        self.max_momentums = [float(m) for m in _per_group("max_momentum", optimizer, max_momentum)]

    def _values(self, t) -> tuple:  # pragma: no cover - abstract
        raise NotImplementedError

    def _closed_form(self, t):
        return self._values(t)[0]

    def _update_lr(self, epoch=None) -> None:
        self.last_epoch = self.last_epoch + 1 if epoch is None else int(epoch)
        lrs, moms = self._values(self.last_epoch)
        self._apply(lrs)
        self._set_momentum(moms)

    def _restore(self) -> None:
        super()._restore()
        if self.last_epoch >= 0:
            self._set_momentum(self._values(self.last_epoch)[1])

    def _set_momentum(self, moms) -> None:
        if self.cycle_momentum:
            for g, m in zip(self.optimizer.param_groups, moms):
                if self.use_beta1:
                    g["betas"] = (m, *tuple(g["betas"])[1:])
                else:
                    g["momentum"] = m


class OneCycleLR(_MomentumCycle):
    """The 1cycle policy (Smith & Topin, 2019, "Super-Convergence"), as torch's OneCycleLR.

    The length is ``total_steps``, or ``epochs * steps_per_epoch``. The rate rises
    from ``max_lr / div_factor`` to ``max_lr`` over the first ``pct_start`` of the
    steps and falls to ``max_lr / div_factor / final_div_factor`` by the end
    (cosine or linear ``anneal_strategy``); ``three_phase`` returns to the
    initial rate before the final fall. With ``cycle_momentum`` the momentum
    (SGD, RMSprop) or beta1 (Adam) moves the opposite way between
    ``max_momentum`` and ``base_momentum``. Step once per batch; stepping past
    ``total_steps`` raises ValueError.
    """

    def __init__(self, optimizer, max_lr, total_steps: int | None = None,
                 epochs: int | None = None, steps_per_epoch: int | None = None,
                 pct_start: float = 0.3, anneal_strategy: str = "cos",
                 cycle_momentum: bool = True, base_momentum=0.85, max_momentum=0.95,
                 div_factor: float = 25.0, final_div_factor: float = 1e4,
                 three_phase: bool = False, last_epoch: int = -1):
        if total_steps is not None:
            if isinstance(total_steps, bool) or not isinstance(total_steps, int) or \
                    total_steps <= 0:
                raise ValueError(f"Expected positive integer total_steps, but got {total_steps}")
        elif epochs is not None and steps_per_epoch is not None:
            if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs <= 0:
                raise ValueError(f"Expected positive integer epochs, but got {epochs}")
            if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int) or \
                    steps_per_epoch <= 0:
                raise ValueError("Expected positive integer steps_per_epoch, but got "
                                 f"{steps_per_epoch}")
            total_steps = epochs * steps_per_epoch
        else:
            raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")
        if not 0 <= pct_start <= 1:
            raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError("anneal_strategy must be one of 'cos' or 'linear', instead got "
                             f"{anneal_strategy}")
        groups = optimizer.param_groups
        self.total_steps = int(total_steps)
        self.anneal_strategy = anneal_strategy
        self.cycle_momentum = bool(cycle_momentum)
        self.max_lrs = [float(m) for m in _per_group("max_lr", optimizer, max_lr)]
        self.initial_lrs = [m / div_factor for m in self.max_lrs]
        self.min_lrs = [i / final_div_factor for i in self.initial_lrs]
        if three_phase:
            self.phases = [[float(pct_start * total_steps) - 1, "initial", "max"],
                           [float(2 * pct_start * total_steps) - 2, "max", "initial"],
                           [total_steps - 1.0, "initial", "min"]]
        else:
            self.phases = [[float(pct_start * total_steps) - 1, "initial", "max"],
                           [total_steps - 1.0, "max", "min"]]
        self._momentum_range(optimizer, base_momentum, max_momentum)
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
            raise ValueError(f"Tried to step {t} times. The specified number of total steps is "
                             f"{self.total_steps} (OneCycleLR: total_steps)")
        lrs, moms = [], []
        for k in range(len(self.max_lrs)):
            vals = {"initial": self.initial_lrs[k], "max": self.max_lrs[k],
                    "min": self.min_lrs[k]}
            mom = {"initial": self.max_momentums[k], "max": self.base_momentums[k],
                   "min": self.max_momentums[k]}
            start = 0.0
            for i, (end, a, b) in enumerate(self.phases):
                if t <= end or i == len(self.phases) - 1:
                    pct = (t - start) / (end - start)
                    lrs.append(self._anneal(vals[a], vals[b], pct))
                    moms.append(self._anneal(mom[a], mom[b], pct))
                    break
                start = end
        return lrs, moms



class CyclicLR(_MomentumCycle):
    """Cyclical learning rates (Smith, 2017), as torch's: the rate climbs from ``base_lr`` to
    ``max_lr`` in ``step_size_up`` steps and back in ``step_size_down`` (default the same),
    the height scaled per cycle by ``mode`` ("triangular": 1, "triangular2": halved each
    cycle, "exp_range": ``gamma ** step``) or by ``scale_fn`` (of the cycle, or of the step
    with ``scale_mode="iterations"``). With ``cycle_momentum`` the momentum moves the
    opposite way between ``max_momentum`` and ``base_momentum``. Step once per batch."""

    def __init__(self, optimizer, base_lr, max_lr, step_size_up: int = 2000,
                 step_size_down=None, mode: str = "triangular", gamma: float = 1.0,
                 scale_fn=None, scale_mode: str = "cycle", cycle_momentum: bool = True,
                 base_momentum=0.8, max_momentum=0.9, last_epoch: int = -1):
        if mode not in ("triangular", "triangular2", "exp_range") and scale_fn is None:
            raise ValueError("mode is invalid and scale_fn is None")
        up = float(step_size_up)
        down = float(step_size_down) if step_size_down is not None else up
        if up <= 0 or down < 0:
            raise ValueError(f"CyclicLR: step sizes must be positive, got {step_size_up}, "
                             f"{step_size_down}")
        self.total_size = up + down
        self.step_ratio = up / self.total_size
        self.mode, self.gamma = mode, float(gamma)
        if scale_fn is None:
            self._scale_fn = {"triangular": lambda x: 1.0,
                              "triangular2": lambda x: 1.0 / (2.0 ** (x - 1)),
                              "exp_range": lambda x: self.gamma ** x}[mode]
            self.scale_mode = "iterations" if mode == "exp_range" else "cycle"
        else:
            self._scale_fn, self.scale_mode = scale_fn, scale_mode
        self.base_lrs_given = [float(v) for v in _per_group("base_lr", optimizer, base_lr)]
        self.max_lrs = [float(v) for v in _per_group("max_lr", optimizer, max_lr)]
        self.cycle_momentum = bool(cycle_momentum)
        self._momentum_range(optimizer, base_momentum, max_momentum)
        if last_epoch == -1:
            for g, lr in zip(optimizer.param_groups, self.base_lrs_given):
                g["initial_lr"] = g["lr"] = lr
            self.optimizer = optimizer
            self._set_momentum(self.max_momentums)
        super().__init__(optimizer, last_epoch)

    def _values(self, t):
        cycle = math.floor(1 + t / self.total_size)
        x = 1.0 + t / self.total_size - cycle
        scale = x / self.step_ratio if x <= self.step_ratio else \
            (x - 1) / (self.step_ratio - 1)
        factor = self._scale_fn(cycle if self.scale_mode == "cycle" else t)
        lrs = [b + (m - b) * scale * factor for b, m in zip(self.base_lrs_given, self.max_lrs)]
        moms = [hi - (hi - lo) * scale * factor
                for lo, hi in zip(self.base_momentums, self.max_momentums)]
        return lrs, moms


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
        if not hasattr(optimizer, "param_groups"):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
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

    def step(self, metrics, epoch=None) -> None:
        current = float(metrics)
        self.last_epoch = self.last_epoch + 1 if epoch is None else int(epoch)
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
