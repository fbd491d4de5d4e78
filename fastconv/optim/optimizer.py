"""Optimizer base class: parameter groups, per-parameter state, state_dict.

Optimizers update ``p.data`` in place from ``p.grad.data`` with the array
module of the parameter (NumPy on the CPU, CuPy on the GPU), so one
implementation serves both devices and no autograd graph is recorded.
Parameters whose ``grad`` is None (frozen, or unused in this step) are skipped.
"""

from __future__ import annotations

from collections import defaultdict

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


def _pack(v):
    """A state value as ``state_dict()`` gives it: host copies of arrays, detached copies of
    Tensors, anything else as it is."""
    if _is_tensor(v):
        return v.detach().clone()
    return _to_host(v) if hasattr(v, "shape") and not np.isscalar(v) else v


def _state_tensor(v, p, name):
    """A saved buffer as a Tensor on ``p``'s device; floating values take ``p``'s dtype
    except ``step`` (float32 there: fastconv has no float64)."""
    from fastconv.tensor import Tensor

    a = v.data if _is_tensor(v) else v
    xp = array_module(p.data)
    a = _to_host(a) if xp is np else a
    dtype = np.dtype(a.dtype)
    if dtype.kind == "f":
        dtype = p.data.dtype if name != "step" and p.data.dtype.kind == "f" else np.float32
    return Tensor(xp.array(a, dtype=dtype))


def _is_index(key) -> bool:
    return isinstance(key, (int, np.integer)) and not isinstance(key, bool)


def _is_tensor(v) -> bool:
    from fastconv.tensor import Tensor

    return isinstance(v, Tensor)


class ParamState(defaultdict):
    """``optimizer.state`` as PyTorch's: a ``defaultdict(dict)`` keyed by the parameters
    themselves, so ``st = self.state[p]`` creates (and keeps) the parameter's entry on first
    use, ``len(state)`` counts the parameters with state and iteration yields parameters.

    An int ``i`` also names the i-th parameter in group order (the index ``state_dict()``
    writes): ``state[i] is state[p_i]``. A tensor that is not a parameter of the optimizer is
    refused (KeyError), since ``state_dict()`` could not index it; other keys (strings) are
    kept as in a plain dict."""

    def __init__(self, optimizer, entries=()):
        super().__init__(dict)
        self._optimizer = optimizer
        for k, v in dict(entries).items():
            self[k] = v

    def _key(self, key):
        """The stored key for ``key``: the parameter for an index or a parameter."""
        if _is_index(key):
            for i, p, _ in self._optimizer._params():
                if i == key:
                    return p
            raise KeyError(f"the optimizer has no parameter {int(key)}")
        if _is_tensor(key) and not dict.__contains__(self, key):
            if not any(p is key for _, p, _ in self._optimizer._params()):
                raise KeyError("the tensor is not a parameter of this optimizer")
        return key

    def __getitem__(self, key):
        return super().__getitem__(self._key(key) if _is_index(key) else key)

    def __setitem__(self, key, value):
        super().__setitem__(self._key(key), value)

    def __delitem__(self, key):
        super().__delitem__(self._key(key) if _is_index(key) else key)

    def __contains__(self, key):
        if _is_index(key):
            try:
                key = self._key(key)
            except KeyError:
                return False
        return super().__contains__(key)

    def get(self, key, default=None):
        return super().get(self._key(key), default) if key in self else default

    def setdefault(self, key, default=None):
        return super().setdefault(self._key(key), default)

    def pop(self, key, *default):
        if _is_index(key) and key not in self:
            if default:
                return default[0]
            raise KeyError(key)
        return super().pop(self._key(key) if _is_index(key) else key, *default)

    def update(self, other=(), **kwargs):
        for k, v in dict(other, **kwargs).items():
            self[k] = v

    def copy(self):
        return _rebuild_state(self._optimizer, dict(self))

    __copy__ = copy

    def __reduce__(self):  # copy.deepcopy / pickle: entries as they are, keys already checked
        return _rebuild_state, (self._optimizer, dict(self))


def _rebuild_state(optimizer, entries):
    state = ParamState(optimizer)
    dict.update(state, entries)
    return state


class Optimizer:
    """Base class of fastconv's optimizers (PyTorch's interface).

    ``params``: an iterable of Parameters, or of dicts ``{"params": [...], **options}``
    (parameter groups with their own hyperparameters, e.g. no weight decay on
    biases). ``defaults``: the hyperparameters groups fall back on.

    ``state[p]`` holds the buffers of parameter ``p`` (a ``defaultdict(dict)`` as in
    PyTorch, also indexable by the parameter's position ``i`` in group order);
    ``state_dict()`` returns ``{"state": {i: {name: ndarray | Tensor | number}},
    "param_groups": [{hyperparameters..., "params": [i, ...]}]}`` with copies, as
    ``torch.optim.Optimizer.state_dict`` lays it out.

    A subclass either implements ``_update()`` (fastconv's optimizers: raw arrays, in
    place) or overrides ``step()`` as in PyTorch, keeping Tensors in ``self.state[p]``.
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
    def _state_as_tensors(self) -> bool:
        """Whether restored buffers become Tensors: True for an optimizer written as in
        PyTorch (its own ``step()`` on Tensors, no ``_update``); the built-in optimizers keep
        raw arrays."""
        return type(self)._update is Optimizer._update

    def state_dict(self) -> dict:
        """``{"state": {i: {name: value}}, "param_groups": [{..., "params": [i, ...]}]}``, the
        parameters replaced by their index in group order (PyTorch's layout). Arrays come as
        host copies, Tensors as detached copies."""
        index = {id(p): i for i, p, _ in self._params()}
        packed = {}
        for key, entry in dict.items(self.state):
            if _is_tensor(key):
                if id(key) not in index:  # no longer in any group
                    continue
                key = index[id(key)]
            packed[key] = {k: _pack(v) for k, v in entry.items()}
        state = {i: packed.pop(i) for i in sorted(k for k in packed if _is_index(k))}
        state.update(packed)
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
        and the buffers must match the parameters' shapes (ValueError otherwise). Tensors
        (and, for an optimizer written as in PyTorch, arrays) come back as Tensors on the
        parameter's device, floating ones in its dtype except ``step``, as PyTorch casts
        them; those are not shape-checked (PyTorch does not either)."""
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
        saved, other = {}, {}
        for k, v in state_dict["state"].items():
            try:
                saved[int(k)] = v
            except (TypeError, ValueError):
                other[k] = v  # a key that names no parameter, kept as it is
        params = list(self._params())
        ids = [i for sg in groups for i in sg["params"]]
        as_tensors = self._state_as_tensors()
        new_state = {}
        problems = []
        for (i, p, _), sid in zip(params, ids):
            if int(sid) not in saved:
                continue
            xp = array_module(p.data)
            entry = {}
            for name, v in saved[int(sid)].items():
                if _is_tensor(v) or (as_tensors and hasattr(v, "shape") and not np.isscalar(v)):
                    entry[name] = _state_tensor(v, p, name)
                elif hasattr(v, "shape") and np.ndim(v) > 0:
                    if tuple(v.shape) != tuple(p.data.shape):
                        problems.append(f"param {i} {name}: state {tuple(v.shape)} vs parameter "
                                        f"{tuple(p.data.shape)}")
                        continue
                    entry[name] = xp.array(v, dtype=p.data.dtype)
                elif hasattr(v, "shape"):  # 0-d array
                    entry[name] = v.item()
                else:
                    entry[name] = v
            new_state[p] = entry
        if problems:
            raise ValueError(f"{type(self).__name__}.load_state_dict: buffer shapes do not match "
                             "the parameters: " + "; ".join(problems))
        new_state.update(other)
        self.state = _rebuild_state(self, new_state)
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
