"""``torch.optim.swa_utils``: weight averaging as a model you call.

    swa_model = AveragedModel(model)                      # SWA: the running mean
    ema_model = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.999))
    swa_sched = SWALR(optimizer, swa_lr=0.05, anneal_epochs=5)
    for epoch in range(epochs):
        train_one_epoch(model, optimizer)
        if epoch >= swa_start:
            swa_model.update_parameters(model)
            swa_sched.step()
    update_bn(train_loader, swa_model)                    # batch-norm statistics for it

As torch's: ``AveragedModel`` holds a deep copy of the model (``.module``) and the count
``n_averaged``; its first update copies the weights, later ones apply ``avg_fn``
(``(averaged, current, n) -> new averaged``, per tensor) or ``multi_avg_fn`` (lists, in
place); the default is the equal-weight running mean of SWA (Izmailov et al., 2018). With
``use_buffers=True`` the buffers are averaged too; otherwise they are copied from the model.
Integer tensors (``num_batches_tracked``) are copied, never averaged.
``fastconv.optim.ExponentialMovingAverage`` keeps the same kind of average beside the model
instead (what models.train_cifar uses).
"""

from __future__ import annotations

import copy
import itertools
import math

import numpy as np

from fastconv.autograd import no_grad
from fastconv.nn.layers import _BatchNorm
from fastconv.nn.module import Module
from fastconv.tensor import Tensor

from .lr_scheduler import LRScheduler

__all__ = ["SWALR", "AveragedModel", "get_ema_avg_fn", "get_ema_multi_avg_fn",
           "get_swa_avg_fn", "get_swa_multi_avg_fn", "update_bn"]


def _check_decay(decay: float) -> float:
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"decay must lie in [0, 1], got {decay}")
    return float(decay)


def get_ema_multi_avg_fn(decay: float = 0.999):
    """In place: averaged += (1 - decay) * (current - averaged), for each pair of tensors."""
    decay = _check_decay(decay)

    def ema_update(averaged_list, current_list, num_averaged):
        for a, c in zip(averaged_list, current_list):
            a.data += (1.0 - decay) * (c.data - a.data)

    return ema_update


def get_swa_multi_avg_fn():
    """In place: the running mean, averaged += (current - averaged) / (n + 1)."""

    def swa_update(averaged_list, current_list, num_averaged):
        n = float(num_averaged.item() if isinstance(num_averaged, Tensor) else num_averaged)
        for a, c in zip(averaged_list, current_list):
            a.data += (c.data - a.data) / (n + 1.0)

    return swa_update


def get_ema_avg_fn(decay: float = 0.999):
    decay = _check_decay(decay)

    def ema_update(averaged, current, num_averaged):
        return decay * averaged + (1.0 - decay) * current

    return ema_update


def get_swa_avg_fn():
    def swa_update(averaged, current, num_averaged):
        return averaged + (current - averaged) / (num_averaged + 1)

    return swa_update


class AveragedModel(Module):
    """A copy of ``model`` whose weights are an average of the model's (see the module
    docstring)."""

    def __init__(self, model: Module, device=None, avg_fn=None, multi_avg_fn=None,
                 use_buffers: bool = False):
        super().__init__()
        if avg_fn is not None and multi_avg_fn is not None:
            raise ValueError("AveragedModel: give avg_fn or multi_avg_fn, not both")
        if not isinstance(model, Module):
            raise TypeError(f"AveragedModel wraps a Module, got {type(model).__name__}")
        self.module = copy.deepcopy(model)
        if device is not None:
            self.module = self.module.to(device)
        self.register_buffer("n_averaged", Tensor(np.zeros((), np.int64)))
        self.avg_fn, self.multi_avg_fn, self.use_buffers = avg_fn, multi_avg_fn, use_buffers

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def _tensors(self, model: Module) -> list:
        if self.use_buffers:
            return list(itertools.chain(model.parameters(), model.buffers()))
        return list(model.parameters())

    @no_grad()
    def update_parameters(self, model: Module) -> None:
        """Fold ``model``'s current weights into the average."""
        mine, theirs = self._tensors(self.module), self._tensors(model)
        if len(mine) != len(theirs) or any(a.shape != b.shape for a, b in zip(mine, theirs)):
            raise ValueError("AveragedModel.update_parameters: the model's parameters differ "
                             "in number or shape from the averaged model's")
        theirs = [t.to(a.device) for a, t in zip(mine, theirs)]
        n = int(self.n_averaged.item())
        floats = [(a, t) for a, t in zip(mine, theirs) if a.data.dtype.kind == "f"]
        for a, t in zip(mine, theirs):
            if n == 0 or a.data.dtype.kind != "f":
                a.data[...] = t.data
        if n > 0 and floats:
            if self.multi_avg_fn is not None or self.avg_fn is None:
                update = self.multi_avg_fn or get_swa_multi_avg_fn()
                update([a for a, _ in floats], [t for _, t in floats], self.n_averaged.clone())
            else:
                for a, t in floats:
                    new = self.avg_fn(a.detach(), t.detach(), n)
                    a.data[...] = new.data if isinstance(new, Tensor) else new
        if not self.use_buffers:  # the buffers follow the model
            for a, t in zip(self.module.buffers(), model.buffers()):
                a.data[...] = t.to(a.device).data
        self.n_averaged.data += 1


@no_grad()
def update_bn(loader, model: Module, device=None) -> None:
    """Recompute every batch norm's running statistics with one pass over ``loader``, as an
    equal-weight average over its batches (momentum None), then restore each layer's
    momentum and the model's training mode. Batches may be tensors or (input, ...) tuples."""
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    if not bns:
        return
    momenta = {}
    for bn in bns:
        bn.running_mean.data[...] = 0
        bn.running_var.data[...] = 1
        bn.num_batches_tracked.data[...] = 0
        momenta[bn] = bn.momentum
        bn.momentum = None
    was_training = model.training
    model.train()
    for batch in loader:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        if not isinstance(x, Tensor):
            x = Tensor(np.asarray(x, np.float32))
        if device is not None:
            x = x.to(device)
        model(x)
    for bn, m in momenta.items():
        bn.momentum = m
    model.train(was_training)


class SWALR(LRScheduler):
    """Anneals each group's rate to ``swa_lr`` over ``anneal_epochs`` steps (cosine or linear),
    then holds it, as torch's (a chained schedule: each rate comes from the current one)."""

    def __init__(self, optimizer, swa_lr, anneal_epochs: int = 10, anneal_strategy: str = "cos",
                 last_epoch: int = -1):
        groups = optimizer.param_groups
        swa_lrs = list(swa_lr) if isinstance(swa_lr, (list, tuple)) else [swa_lr] * len(groups)
        if len(swa_lrs) != len(groups):
            raise ValueError(f"swa_lr must have one value per parameter group ({len(groups)}), "
                             f"got {len(swa_lrs)}")
        for g, lr in zip(groups, swa_lrs):
            g["swa_lr"] = float(lr)
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got "
                             f"{anneal_strategy!r}")
        if not isinstance(anneal_epochs, int) or anneal_epochs < 0:
            raise ValueError(f"anneal_epochs must be an integer >= 0, got {anneal_epochs!r}")
        self.anneal_strategy, self.anneal_epochs = anneal_strategy, anneal_epochs
        super().__init__(optimizer, last_epoch)

    def _anneal(self, t: float) -> float:
        return (1 - math.cos(math.pi * t)) / 2 if self.anneal_strategy == "cos" else t

    def get_lr(self):
        step = self._step_count - 1
        if self.anneal_epochs == 0:
            step = max(1, step)
        prev_alpha = self._anneal(max(0.0, min(1.0, (step - 1) / max(1, self.anneal_epochs))))
        alpha = self._anneal(max(0.0, min(1.0, step / max(1, self.anneal_epochs))))
        out = []
        for g in self.optimizer.param_groups:
            # the rate before annealing, recovered from the current one
            prev = g["swa_lr"] if prev_alpha == 1 else \
                (g["lr"] - prev_alpha * g["swa_lr"]) / (1 - prev_alpha)
            out.append(g["swa_lr"] * alpha + prev * (1 - alpha))
        return out

    _get_closed_form_lr = get_lr

    def _update_lr(self, epoch=None) -> None:
        self.last_epoch = self.last_epoch + 1 if epoch is None else int(epoch)
        self._apply(self.get_lr())
