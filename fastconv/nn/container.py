"""Containers: Sequential, ModuleList, ModuleDict, ParameterList and ParameterDict (PyTorch's).

Each registers what it holds under string keys ("0", "1", ... for the list-like ones), so
``parameters()``, ``state_dict()`` and ``to()`` reach the contents with PyTorch's names.
"""

from __future__ import annotations

import operator
from collections import OrderedDict
from collections.abc import Iterable, Mapping

from fastconv.nn.module import Module, Parameter
from fastconv.ops.activation import relu
from fastconv.ops.conv import conv2d_relu
from fastconv.ops.norm import batch_norm_max_pool2d
from fastconv.tensor import Tensor


def _index(idx, n: int, what: str) -> int:
    try:
        idx = operator.index(idx)
    except TypeError:
        raise TypeError(f"{what} indices must be integers or slices, got "
                        f"{type(idx).__name__}") from None
    if not -n <= idx < n:
        raise IndexError(f"index {idx} is out of range for a {what} of length {n}")
    return idx % n


def _module(value, what: str) -> Module:
    if not isinstance(value, Module) and value is not None:
        raise TypeError(f"{what} holds Modules, got {type(value).__name__}")
    return value


def _plain(module, cls) -> bool:
    """``module`` is exactly a ``cls``, with nothing that would see or change the values going
    in or out of it (hooks, a forward replaced on the instance)."""
    return (type(module) is cls and not (module._forward_pre_hooks or module._forward_hooks
                                         or module._backward_hooks or module._backward_pre_hooks)
            and "forward" not in module.__dict__)


def _fused(modules, i):
    """How Sequential runs modules[i], modules[i + 1], ... as one step: (step, how many modules
    it runs), or None. Each rewrite gives the same values and gradients as the modules:
    * BatchNorm2d in training mode, ReLU, MaxPool2d: batch norm and max pooling as one op
      (ops.norm.batch_norm_max_pool2d: on the CPU the normalised activations are pooled
      plane by plane and never stored), then the ReLU on the pooled values (see below);
    * Conv2d then ReLU: one op (ops.conv.conv2d_relu; the CPU's bfloat16 GEMM applies the
      ReLU as it writes the convolution's output);
    * ReLU then MaxPool2d: the pool first, then the ReLU on the pooled values (fewer of
      them). Max pooling commutes with ReLU: where a window's maximum is positive both pick
      the same first maximum, elsewhere both outputs are 0 with zero gradient."""
    # layers imports this module
    from fastconv.nn.layers import BatchNorm2d, Conv2d, MaxPool2d, ReLU

    first, second, third = (modules[i:i + 3] + [None, None])[:3]
    if (_plain(first, BatchNorm2d) and first.training and _plain(second, ReLU)
            and _plain(third, MaxPool2d) and not third.return_indices):
        return (lambda x: _batch_norm_relu_max_pool(first, third, x)), 3
    if _plain(first, Conv2d) and _plain(second, ReLU) and first.padding_mode == "zeros":
        return (lambda x: conv2d_relu(x, first.weight, first.bias, first.stride, first.padding,
                                      first.dilation, first.groups)), 2
    if _plain(first, ReLU) and _plain(second, MaxPool2d) and not second.return_indices:
        return (lambda x: relu(second(x))), 2
    return None


def _batch_norm_relu_max_pool(bn, pool, x):
    if not (isinstance(x, Tensor) and x.ndim == 4 and x.data.size):
        return relu(pool(bn(x)))  # the modules' own errors (and empty batches)
    y = batch_norm_max_pool2d(x, bn.running_mean, bn.running_var, bn.weight, bn.bias,
                              bn._update_factor(), bn.eps, pool.kernel_size, pool.stride,
                              pool.padding, pool.dilation, pool.ceil_mode)
    return relu(y)


class Sequential(Module):
    """Runs its modules in order: ``Sequential(m0, m1, ...)`` (keys "0", "1", ...) or
    ``Sequential(OrderedDict(name=module, ...))``.

    Indexing gives a module (``seq[-1]``) or, for a slice, a Sequential of the same class
    keeping the original names (``seq[1:3]``). Some runs of adjacent modules run as one step
    with the same values and gradients (a Conv2d and the ReLU after it as one op, a ReLU and
    the MaxPool2d after it as the pool then the ReLU, a training-mode BatchNorm2d, ReLU and
    MaxPool2d as batch norm and pooling in one op: :func:`_fused`), unless a hook is
    registered on one of them. ``append``, ``insert``, ``extend``, ``pop``,
    ``del seq[i]``, ``seq[i] = m``, ``len``, ``iter`` and ``+`` behave as in PyTorch
    (deleting or inserting renumbers the keys).
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, _module(m, "Sequential"))
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), _module(m, "Sequential"))

    def forward(self, x):
        modules = list(self._modules.values())
        i = 0
        while i < len(modules):
            fused = _fused(modules, i)
            if fused is not None:
                step, count = fused
                x = step(x)
                i += count
            else:
                x = modules[i](x)
                i += 1
        return x

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return self.__class__(OrderedDict(list(self._modules.items())[idx]))
        return list(self._modules.values())[_index(idx, len(self), "Sequential")]

    def __setitem__(self, idx, module) -> None:
        key = list(self._modules)[_index(idx, len(self), "Sequential")]
        self.add_module(key, _module(module, "Sequential"))

    def __delitem__(self, idx) -> None:
        keys = list(self._modules)
        doomed = (keys[idx] if isinstance(idx, slice)
                  else [keys[_index(idx, len(keys), "Sequential")]])
        for key in doomed:
            del self._modules[key]
        # PyTorch renumbers what is left, so the names stay "0", "1", ...
        items = list(self._modules.values())
        self._modules.clear()
        for i, m in enumerate(items):
            self._modules[str(i)] = m

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __add__(self, other: Sequential) -> Sequential:
        if not isinstance(other, Sequential):
            raise ValueError(f"add operator supports only objects of Sequential class, but "  # noqa: TRY004 (PyTorch's exception)
                             f"{type(other).__name__} is given.")
        return Sequential(*self, *other)

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self)), _module(module, "Sequential"))
        return self

    def insert(self, index: int, module: Module) -> Sequential:
        _module(module, "Sequential")
        n = len(self)
        if not isinstance(index, int) or not -n <= index <= n:
            raise IndexError(f"Index out of range: {index}")
        if index < 0:
            index += n
        items = list(self._modules.values())
        items.insert(index, module)
        self._modules.clear()
        for i, m in enumerate(items):
            self._modules[str(i)] = m
        return self

    def extend(self, sequential: Iterable[Module]) -> Sequential:
        for m in sequential:
            self.append(m)
        return self

    def pop(self, key: int | slice) -> Module:
        v = self[key]
        del self[key]
        return v


class ModuleList(Module):
    """A list of modules, registered as "0", "1", ...; it has no forward of its own.

    Supports indexing (a slice gives a ModuleList), assignment, ``del``, ``len``, ``iter``,
    ``append``, ``extend``, ``insert``, ``pop``, ``+`` and ``+=`` as in PyTorch.
    """

    def __init__(self, modules: Iterable[Module] | None = None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __repr__(self) -> str:
        """As torch's: a run of equal entries prints once, as "(0-5): 6 x Layer(...)"."""
        reprs = [repr(m) for m in self._modules.values()]
        if not reprs:
            return f"{type(self).__name__}()"
        runs = []  # [first index, last index, repr]
        for i, r in enumerate(reprs):
            if runs and runs[-1][2] == r:
                runs[-1][1] = i
            else:
                runs.append([i, i, r])
        lines = [(f"({a}): {r}" if a == b else f"({a}-{b}): {b - a + 1} x {r}")
                 .replace("\n", "\n  ") for a, b, r in runs]
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return self.__class__(list(self._modules.values())[idx])
        return self._modules[str(_index(idx, len(self), "ModuleList"))]

    def __setitem__(self, idx, module) -> None:
        self.add_module(str(_index(idx, len(self), "ModuleList")), _module(module, "ModuleList"))

    def __delitem__(self, idx) -> None:
        items = list(self._modules.values())
        if isinstance(idx, slice):
            del items[idx]
        else:
            del items[_index(idx, len(items), "ModuleList")]
        self._modules.clear()
        for i, m in enumerate(items):
            self._modules[str(i)] = m

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __iadd__(self, modules: Iterable[Module]):
        return self.extend(modules)

    def __add__(self, other: Iterable[Module]) -> ModuleList:
        return ModuleList(list(self) + list(other))

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self)), _module(module, "ModuleList"))
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        if not isinstance(modules, Iterable):
            raise TypeError("ModuleList.extend should be called with an iterable, but got "
                            + type(modules).__name__)
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        items = list(self._modules.values())
        items.insert(index, _module(module, "ModuleList"))
        self._modules.clear()
        for i, m in enumerate(items):
            self._modules[str(i)] = m

    def pop(self, key: int | slice = -1) -> Module:
        v = self[key]
        del self[key]
        return v

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList has no forward: iterate over it in the forward "
                                  "of the module that holds it")


class ModuleDict(Module):
    """An ordered dict of modules (insertion order), registered under their keys.

    ``md[key]``, ``md[key] = m``, ``del md[key]``, ``in``, ``len``, ``iter`` (keys),
    ``keys()``, ``values()``, ``items()``, ``update()``, ``pop()`` and ``clear()`` as in
    PyTorch.
    """

    def __init__(self, modules: Mapping | Iterable | None = None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(key, str):
            raise TypeError(f"module name should be a string, got {type(key).__name__}")
        if "." in key or key == "":
            raise KeyError(f'module name can\'t contain "." or be empty, got {key!r}')
        self.add_module(key, _module(module, "ModuleDict"))

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key) -> bool:
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def clear(self) -> None:
        self._modules.clear()

    def pop(self, key: str) -> Module:
        v = self[key]
        del self[key]
        return v

    def update(self, modules) -> None:
        if isinstance(modules, Mapping):
            pairs = modules.items()
        elif isinstance(modules, Iterable):
            pairs = []
            for j, kv in enumerate(modules):
                if not isinstance(kv, Iterable) or len(kv) != 2:
                    raise ValueError(f"ModuleDict update sequence element #{j} should be a "
                                     "(key, module) pair")
                pairs.append(kv)
        else:
            raise TypeError("ModuleDict.update should be called with a mapping or an iterable "
                            f"of (key, module) pairs, got {type(modules).__name__}")
        for k, m in pairs:
            self[k] = m

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleDict has no forward: call its modules in the forward "
                                  "of the module that holds it")


def _parameter(value):
    """A Parameter for ``value``: Parameters stay as they are, Tensors and arrays are wrapped
    (as PyTorch wraps plain tensors put into a ParameterList)."""
    if value is None or isinstance(value, Parameter):
        return value
    if isinstance(value, Tensor):
        return Parameter(value, requires_grad=value.dtype.kind == "f")
    return Parameter(Tensor(value))


class ParameterList(Module):
    """A list of parameters, registered as "0", "1", ...; plain Tensors are wrapped in
    Parameters. Indexing, assignment, ``len``, ``iter``, ``append``, ``extend`` and ``+=``
    as in PyTorch."""

    def __init__(self, values: Iterable | None = None):
        super().__init__()
        if values is not None:
            self.extend(values)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return self.__class__(list(self)[idx])
        return self._parameters[str(_index(idx, len(self), "ParameterList"))]

    def __setitem__(self, idx, value) -> None:
        self.register_parameter(str(_index(idx, len(self), "ParameterList")), _parameter(value))

    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters.values())

    def __iadd__(self, values: Iterable):
        return self.extend(values)

    def append(self, value) -> ParameterList:
        self.register_parameter(str(len(self)), _parameter(value))
        return self

    def extend(self, values: Iterable) -> ParameterList:
        if not isinstance(values, Iterable) or isinstance(values, Tensor):
            raise TypeError("ParameterList.extend should be called with an iterable, but got "
                            + type(values).__name__)
        for v in values:
            self.append(v)
        return self

    def extra_repr(self) -> str:
        return "\n".join(f"({k}): Parameter containing: [shape {tuple(p.shape)}]"
                         for k, p in self._parameters.items() if p is not None)


class ParameterDict(Module):
    """An ordered dict of parameters registered under their keys; plain Tensors are
    wrapped in Parameters."""

    def __init__(self, parameters: Mapping | Iterable | None = None):
        super().__init__()
        if parameters is not None:
            self.update(parameters)

    def __getitem__(self, key: str):
        return self._parameters[key]

    def __setitem__(self, key: str, value) -> None:
        if not isinstance(key, str) or "." in key or key == "":
            raise KeyError(f"parameter name must be a non-empty string without '.', got {key!r}")
        self.register_parameter(key, _parameter(value))

    def __delitem__(self, key: str) -> None:
        del self._parameters[key]

    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters)

    def __contains__(self, key) -> bool:
        return key in self._parameters

    def keys(self):
        return self._parameters.keys()

    def values(self):
        return self._parameters.values()

    def items(self):
        return self._parameters.items()

    def pop(self, key: str):
        v = self[key]
        del self[key]
        return v

    def update(self, parameters) -> None:
        pairs = parameters.items() if isinstance(parameters, Mapping) else parameters
        for k, v in pairs:
            self[k] = v
