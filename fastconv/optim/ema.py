"""Exponential moving average of a model's weights."""

from __future__ import annotations

import contextlib

import numpy as np

from .optimizer import array_module

__all__ = ["ExponentialMovingAverage"]


def _array(t):
    return t.data if hasattr(t, "data") else t


class ExponentialMovingAverage:
    """Keep ``shadow = decay * shadow + (1 - decay) * weight`` for every parameter and
    floating-point buffer of ``model`` (integer buffers are copied).

    Call :meth:`update` after each optimizer step. With ``warmup`` the decay
    used at update ``n`` is ``min(decay, (1 + n) / (10 + n))``, as TensorFlow's
    ``ExponentialMovingAverage(num_updates=...)``, so early averages are not
    dominated by the random initialisation. Evaluate with the averaged weights
    through ``with ema.average_parameters(model): ...`` (swapped in, then
    restored) or copy them for good with :meth:`copy_to`. The shadow lives on
    the model's device; ``state_dict()`` holds host copies.
    (Polyak & Juditsky, 1992, "Acceleration of Stochastic Approximation by Averaging".)
    """

    def __init__(self, model, decay: float = 0.999, warmup: bool = True):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ExponentialMovingAverage: decay must lie in [0, 1), got {decay}")
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.num_updates = 0
        self.shadow = {name: array_module(a).array(a, copy=True)
                       for name, a in self._entries(model)}

    @staticmethod
    def _entries(model):
        for name, p in model.named_parameters():
            yield name, _array(p)
        for name, b in model.named_buffers():
            yield name, _array(b)

    def current_decay(self) -> float:
        if self.warmup:
            return min(self.decay, (1.0 + self.num_updates) / (10.0 + self.num_updates))
        return self.decay

    def update(self, model) -> None:
        """Fold the model's current weights into the average."""
        d = self.current_decay()
        self.num_updates += 1
        for name, a in self._entries(model):
            s = self.shadow[name]
            if array_module(s) is not array_module(a):  # the model moved to another device
                s = self.shadow[name] = array_module(a).asarray(
                    s.get() if hasattr(s, "get") else s)
            if s.dtype.kind == "f":
                s *= d
                s += (1.0 - d) * a
            else:
                s[...] = a

    def copy_to(self, model) -> None:
        """Overwrite the model's weights with the averages."""
        for name, a in self._entries(model):
            s = self.shadow[name]
            if array_module(s) is not array_module(a):
                s = array_module(a).asarray(s.get() if hasattr(s, "get") else s)
            a[...] = s

    @contextlib.contextmanager
    def average_parameters(self, model):
        """Swap the averaged weights into ``model`` for the block, then restore its own."""
        saved = {name: array_module(a).array(a, copy=True) for name, a in self._entries(model)}
        self.copy_to(model)
        try:
            yield model
        finally:
            for name, a in self._entries(model):
                a[...] = saved[name]

    def state_dict(self) -> dict:
        return {"decay": self.decay, "warmup": self.warmup, "num_updates": self.num_updates,
                "shadow": {k: (v.get() if type(v).__module__.startswith("cupy") else
                               np.array(v, copy=True)) for k, v in self.shadow.items()}}

    def load_state_dict(self, state: dict) -> None:
        shadow = state["shadow"]
        missing = sorted(set(self.shadow) - set(shadow))
        unexpected = sorted(set(shadow) - set(self.shadow))
        bad = [k for k in self.shadow if k in shadow and
               tuple(np.shape(shadow[k])) != tuple(self.shadow[k].shape)]
        if missing or unexpected or bad:
            raise ValueError("ExponentialMovingAverage.load_state_dict: entries do not match the "
                             f"model (missing {missing}, unexpected {unexpected}, shape "
                             f"mismatch {bad})")
        self.decay = float(state["decay"])
        self.warmup = bool(state.get("warmup", True))
        self.num_updates = int(state["num_updates"])
        for k, v in shadow.items():
            xp = array_module(self.shadow[k])
            self.shadow[k] = xp.array(v, dtype=self.shadow[k].dtype)
