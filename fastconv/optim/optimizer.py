"""Optimizer base class: parameter groups, per-parameter state, state_dict.

Optimizers update ``p.data`` in place from ``p.grad.data`` with the array
module of the parameter (NumPy on the CPU, CuPy on the GPU), so one
implementation serves both devices and no autograd graph is recorded.
Parameters whose ``grad`` is None (frozen, or unused in this step) are skipped.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Optimizer", "array_module"]

_required = object()


def check_implementation_flags(name: str, foreach=None, capturable: bool = False,
                               differentiable: bool = False, fused=None) -> None:
    """PyTorch's implementation switches. ``foreach`` picks between two implementations with
    the same results in PyTorch, and fastconv has one: it is accepted and ignored.
    ``differentiable`` (autograd through the step), ``capturable`` (CUDA graphs) and
    ``fused`` kernels do not exist in fastconv: asking for them is an error, not a silent
    no-op."""
    for flag, value in (("capturable", capturable), ("differentiable", differentiable),
                        ("fused", fused)):
        if value:
            raise ValueError(f"{name}: {flag}=True is not supported by fastconv (its optimizers "
                             "update the arrays in place, outside autograd, with one "
                             "implementation); leave it at its default")


def array_module(a):
    """``numpy`` or ``cupy``: the module of array ``a`` (CuPy is imported only for CuPy arrays)."""
    if type(a).__module__.startswith("cupy"):
        import cupy

        return cupy
    return np


def _to_host(a):
    return a.get() if type(a).__module__.startswith("cupy") else np.array(a, copy=True)


class ParamState(dict):
    """The per-parameter buffers, keyed by the parameter's position (``state[i]``, what
    ``state_dict`` stores) and also reachable by the parameter itself (``state[p]``, PyTorch's
    key; a parameter without state yet reads as an empty dict, as torch's defaultdict)."""

    def __init__(self, optimizer, entries=()):
        super().__init__(entries)
        self._optimizer = optimizer

    def _key(self, key):
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            return int(key)
        for i, p, _ in self._optimizer._params():
            if p is key:
                return i
        raise KeyError("the tensor is not a parameter of this optimizer")

    def __getitem__(self, key):
        i = self._key(key)
        if i not in self.keys() and not isinstance(key, (int, np.integer)):
            return {}
        return super().__getitem__(i)

    def __setitem__(self, key, value):
        super().__setitem__(self._key(key), value)

    def __delitem__(self, key):
        super().__delitem__(self._key(key))

    def __contains__(self, key):
        try:
            return super().__contains__(self._key(key))
        except KeyError:
            return False

    def get(self, key, default=None):
        return self[key] if key in self else default


class Optimizer:
    """Base class of fastconv's optimizers (PyTorch's interface).

    ``params``: an iterable of Parameters, or of dicts ``{"params": [...], **options}``
    (parameter groups with their own hyperparameters, e.g. no weight decay on
    biases). ``defaults``: the hyperparameters groups fall back on.

    ``state[i]`` holds the buffers (arrays) of the i-th parameter in group order;
    ``state_dict()`` returns ``{"state": {i: {name: ndarray | number}},
    "param_groups": [{hyperparameters..., "params": [i, ...]}]}`` with host
    (NumPy) copies, as ``torch.optim.Optimizer.state_dict`` does.
    """

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        if hasattr(params, "data") and hasattr(params, "grad"):
            raise TypeError(f"{type(self).__name__}: params argument given to the optimizer "
                            "should be an iterable of Tensors or dicts, but got a Tensor")
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        self.param_groups: list[dict] = []
        self.state: dict = ParamState(self)
        for g in params:
            self.add_param_group(g)

    def add_param_group(self, group: dict) -> None:
        group = dict(group)
        ps = group["params"]
        ps = [ps] if hasattr(ps, "data") else list(ps)
        if ps and all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str)
                      for p in ps):  # named parameters, as model.named_parameters() gives
            group["param_names"] = [n for n, _ in ps]
            ps = [p for _, p in ps]
        for p in ps:
            if not (hasattr(p, "data") and hasattr(p, "grad")):
                raise TypeError(f"{type(self).__name__}: parameters must be Tensors, got "
                                f"{type(p).__name__}")
            if getattr(p, "_ctx", None) is not None:  # its updates would be lost
                raise ValueError("can't optimize a non-leaf Tensor (the result of an op); pass "
                                 "the leaf, or .detach().requires_grad_() a copy")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in ps):
            raise ValueError(f"{type(self).__name__}: a parameter appears in two groups")
        group["params"] = ps
        for k, v in self.defaults.items():
            if v is _required and k not in group:
                raise ValueError(f"{type(self).__name__}: parameter group lacks {k!r}")
            group.setdefault(k, v)
        self.param_groups.append(group)

    def _params(self):
        """(index, parameter, group) for every parameter, in state-dict order."""
        i = 0
        for g in self.param_groups:
            for p in g["params"]:
                yield i, p, g
                i += 1

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients: set them to None (default) or to zero."""
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is not None:
                    if set_to_none:
                        p.grad = None
                    else:
                        p.grad.data[...] = 0

    def step(self, closure=None):
        """One update of every parameter with a gradient. ``closure``: a function that
        re-evaluates the model and returns the loss (called first; its result is returned),
        as in PyTorch."""
        loss = None
        if closure is not None:
            from fastconv.autograd import set_grad_enabled

            with set_grad_enabled(True):
                loss = closure()
        self._update()
        return loss

    def _update(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- state ------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = {}
        for i, _, _ in self._params():
            if i in self.state:
                state[i] = {k: (_to_host(v) if hasattr(v, "shape") and not np.isscalar(v) else v)
                            for k, v in self.state[i].items()}
        groups = []
        i = 0
        for g in self.param_groups:
            d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items() if k != "params"}
            d["params"] = list(range(i, i + len(g["params"])))
            i += len(g["params"])
            groups.append(d)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a ``state_dict()``; the groups must hold the same number of parameters
        and the buffers must match the parameters' shapes (ValueError otherwise)."""
        groups = state_dict.get("param_groups")
        if not isinstance(groups, list) or "state" not in state_dict:
            raise ValueError(f"{type(self).__name__}.load_state_dict: not an optimizer state dict")
        if len(groups) != len(self.param_groups):
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state has "
                             f"{len(groups)} parameter groups, the optimizer "
                             f"{len(self.param_groups)}")
        for k, (sg, og) in enumerate(zip(groups, self.param_groups)):
            if len(sg["params"]) != len(og["params"]):
                raise ValueError(f"{type(self).__name__}.load_state_dict: group {k} has "
                                 f"{len(sg['params'])} parameters in the state, "
                                 f"{len(og['params'])} in the optimizer")
        saved = {int(k): v for k, v in state_dict["state"].items()}
        params = list(self._params())
        ids = [i for sg in groups for i in sg["params"]]
        new_state = {}
        problems = []
        for (i, p, _), sid in zip(params, ids):
            if int(sid) not in saved:
                continue
            xp = array_module(p.data)
            entry = {}
            for name, v in saved[int(sid)].items():
                if hasattr(v, "shape") and np.ndim(v) > 0:
                    if tuple(v.shape) != tuple(p.data.shape):
                        problems.append(f"param {i} {name}: state {tuple(v.shape)} vs parameter "
                                        f"{tuple(p.data.shape)}")
                        continue
                    entry[name] = xp.array(v, dtype=p.data.dtype)
                elif hasattr(v, "shape"):  # 0-d array
                    entry[name] = v.item()
                else:
                    entry[name] = v
            new_state[i] = entry
        if problems:
            raise ValueError(f"{type(self).__name__}.load_state_dict: buffer shapes do not match "
                             "the parameters: " + "; ".join(problems))
        self.state = ParamState(self, new_state)
        for sg, og in zip(groups, self.param_groups):
            for k, v in sg.items():
                if k != "params":
                    og[k] = tuple(v) if isinstance(og.get(k), tuple) else v

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for k, g in enumerate(self.param_groups):
            lines.append(f"  group {k}: {len(g['params'])} params, " + ", ".join(
                f"{name}={v}" for name, v in g.items() if name != "params"))
        return "\n".join(lines) + "\n)"
