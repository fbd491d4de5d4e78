"""``torch.nn.utils.parametrize``: a parameter or buffer of a module computed, on each access,
by modules (the parametrizations) from tensors of their own.

    register_parametrization(linear, "weight", Symmetric())
    linear.weight            # Symmetric()(linear.parametrizations.weight.original)

How it works, as in torch:

* The module's class is swapped for a subclass made for this one module
  (``ParametrizedLinear``) with a property per parametrized name: reading ``module.weight``
  runs ``module.parametrizations.weight`` (a :class:`ParametrizationList`), assigning to it
  runs the parametrizations' ``right_inverse`` and stores the result in the originals.
* ``module.parametrizations`` is a ModuleDict of ParametrizationLists. Each list holds the
  parametrizations (``"0"``, ``"1"``, ...) and the original tensor: ``original``, or
  ``original0``, ``original1``, ... when the first ``right_inverse`` returns a sequence (weight
  norm's g and v). The state_dict keys are therefore torch's
  (``parametrizations.weight.original``, ``parametrizations.weight.0._u``, ...).
* At registration the original takes the value ``right_inverse(weight)`` in place: the same
  Parameter object stays, so an optimizer built before keeps working (not so for a
  right_inverse that returns several tensors: those are new Parameters).
* ``cached()``: inside it, each parametrized tensor is computed once and reused (a layer
  applied several times in one forward, as a recurrent weight is).

``remove_parametrizations(module, name, leave_parametrized=True)`` turns the name back into
a plain parameter or buffer (holding the parametrized value, or the original's with
``leave_parametrized=False``) and restores the class when nothing is parametrized any more.
Parametrized modules deep-copy but do not pickle (torch refuses too): save their state_dict.
"""

from __future__ import annotations

import collections.abc
import copy
from contextlib import contextmanager

from fastconv.autograd import no_grad
from fastconv.backend import get_backend
from fastconv.nn.container import ModuleDict, ModuleList
from fastconv.nn.module import Module, Parameter
from fastconv.tensor import Tensor

__all__ = ["ParametrizationList", "cached", "is_parametrized", "register_parametrization",
           "remove_parametrizations", "transfer_parametrizations_and_params",
           "type_before_parametrizations"]

# torch's cache: a counter of open ``cached()`` blocks and the tensors computed inside them,
# keyed by (id(module), name). Process-wide as torch's, and empty outside every block.
_cache_enabled = 0
_cache: dict = {}


@contextmanager
def cached():
    """Compute each parametrized tensor once inside the block, and reuse it (the cache is
    dropped when the outermost block ends). Use it when a parametrized weight is read several
    times in one forward pass, or to read parametrized weights cheaply in evaluation."""
    global _cache_enabled, _cache
    _cache_enabled += 1
    try:
        yield
    finally:
        _cache_enabled -= 1
        if not _cache_enabled:
            _cache = {}


def _register_parameter_or_buffer(module: Module, name: str, value) -> None:
    if isinstance(value, Parameter):
        module.register_parameter(name, value)
    else:
        module.register_buffer(name, value)


def _copy(t: Tensor):
    """A plain array copy of ``t``'s data (a 0-d array where a reduction left a scalar)."""
    return get_backend(t.device).xp.array(Tensor(t.data).data, copy=True)


def _maybe_set(dest: Tensor, src: Tensor) -> None:
    """Give ``dest`` the value (and shape) of ``src`` while keeping the object, as torch's
    ``set_``: optimizers and other holders of ``dest`` see the new value."""
    dest.data = _copy(src)


class ParametrizationList(ModuleList):
    """The parametrizations of one tensor of a module (``module.parametrizations.weight``),
    in the order they were registered, and the original tensor(s) they start from.

    Calling it computes the parametrized tensor: ``self[0](original)`` (or
    ``self[0](original0, original1, ...)``), then each further parametrization in turn.
    ``right_inverse(value)`` runs the parametrizations' ``right_inverse`` methods in reverse
    order and stores the result in the original(s).

    Args:
        modules: the parametrizations (at least one).
        original: the parameter or buffer being parametrized.
        unsafe: skip the check that the parametrized tensor keeps the original's shape and
            dtype.
    """

    def __init__(self, modules, original: Tensor, unsafe: bool = False) -> None:
        if len(modules) == 0:
            raise ValueError("ParametrizationList requires one or more modules.")
        super().__init__(modules)
        self.unsafe = unsafe
        original_shape, original_dtype = original.shape, original.dtype

        with no_grad():
            new = original
            for module in reversed(list(self)):
                if hasattr(module, "right_inverse"):
                    try:
                        new = module.right_inverse(new)
                    except NotImplementedError:
                        pass  # then right_inverse is taken to be the identity, as torch does
        if not isinstance(new, (Tensor, collections.abc.Sequence)):
            raise ValueError("'right_inverse' must return a Tensor or a Sequence of tensors "
                             f"(list, tuple...). Got {type(new).__name__}")

        self.is_tensor = isinstance(new, Tensor)
        self.ntensors = 1 if self.is_tensor else len(new)
        if self.is_tensor:
            if original.dtype != new.dtype:
                raise ValueError("When `right_inverse` outputs one tensor, it may not change "
                                 f"the dtype.\noriginal.dtype: {original.dtype}\n"
                                 f"right_inverse(original).dtype: {new.dtype}")
            if original.device != new.device:
                raise ValueError("When `right_inverse` outputs one tensor, it may not change "
                                 f"the device.\noriginal.device: {original.device}\n"
                                 f"right_inverse(original).device: {new.device}")
            with no_grad():
                _maybe_set(original, new)
            _register_parameter_or_buffer(self, "original", original)
        else:
            for i, originali in enumerate(new):
                if not isinstance(originali, Tensor):
                    raise ValueError("'right_inverse' must return a Tensor or a Sequence of "
                                     f"tensors (list, tuple...). Got element {i} of the "
                                     f"sequence with type {type(originali).__name__}.")
                if isinstance(original, Parameter):
                    originali = Parameter(_copy(originali), original.requires_grad)
                else:
                    originali = Tensor(_copy(originali), original.requires_grad)
                _register_parameter_or_buffer(self, f"original{i}", originali)

        if not self.unsafe:
            # forward(right_inverse(original)) must live where the original did
            z = self()
            if not isinstance(z, Tensor):
                raise ValueError(f"A parametrization must return a tensor. Got "
                                 f"{type(z).__name__}.")
            if z.dtype != original_dtype:
                raise ValueError("Registering a parametrization may not change the dtype of "
                                 "the tensor, unless `unsafe` flag is enabled.\n"
                                 f"unparametrized dtype: {original_dtype}\n"
                                 f"parametrized dtype: {z.dtype}")
            if z.shape != original_shape:
                raise ValueError("Registering a parametrization may not change the shape of "
                                 "the tensor, unless `unsafe` flag is enabled.\n"
                                 f"unparametrized shape: {original_shape}\n"
                                 f"parametrized shape: {z.shape}")

    def right_inverse(self, value: Tensor) -> None:
        """Store in the original(s) the tensor that the parametrizations map to ``value``:
        each parametrization's ``right_inverse``, last registered first."""
        with no_grad():
            for module in reversed(list(self)):
                if not hasattr(module, "right_inverse"):
                    raise RuntimeError(f"parametrization {type(module).__name__} does not "
                                       "implement right_inverse.")
                value = module.right_inverse(value)
            if self.is_tensor:
                if not isinstance(value, Tensor):
                    raise ValueError("`right_inverse` should return a tensor. Got "
                                     f"{type(value).__name__}")
                if value.dtype != self.original.dtype:
                    raise ValueError(f"The tensor returned by `right_inverse` has dtype "
                                     f"{value.dtype} while `original` has dtype "
                                     f"{self.original.dtype}")
                _maybe_set(self.original, value)
                return
            if not isinstance(value, collections.abc.Sequence):
                raise ValueError("'right_inverse' must return a sequence of tensors. Got "
                                 f"{type(value).__name__}.")
            if len(value) != self.ntensors:
                raise ValueError("'right_inverse' must return a sequence of tensors of length "
                                 f"{self.ntensors}. Got a sequence of length {len(value)}.")
            for i, tensor in enumerate(value):
                original_i = getattr(self, f"original{i}")
                if not isinstance(tensor, Tensor):
                    raise ValueError("`right_inverse` must return a sequence of tensors. Got "
                                     f"element {i} of type {type(tensor).__name__}")
                if original_i.dtype != tensor.dtype:
                    raise ValueError(f"Tensor {i} returned by `right_inverse` has dtype "
                                     f"{tensor.dtype} while `original{i}` has dtype "
                                     f"{original_i.dtype}")
                _maybe_set(original_i, tensor)

    def forward(self) -> Tensor:
        if self.is_tensor:
            x = self[0](self.original)
        else:
            x = self[0](*(getattr(self, f"original{i}") for i in range(self.ntensors)))
        for module in list(self)[1:]:
            x = module(x)
        return x


def _parametrized_property(tensor_name: str) -> property:
    """The class property that stands for ``tensor_name``: reading computes it (or takes it
    from the cache inside ``cached()``), assigning goes through ``right_inverse``."""

    def get_parametrized(self) -> Tensor:
        parametrization = self.parametrizations[tensor_name]
        if not _cache_enabled:
            return parametrization()
        key = (id(self), tensor_name)
        tensor = _cache.get(key)
        if tensor is None:
            tensor = _cache[key] = parametrization()
        return tensor

    def set_original(self, value: Tensor) -> None:
        self.parametrizations[tensor_name].right_inverse(value)

    return property(get_parametrized, set_original)


def _parametrized_setattr(self, name, value):
    # torch's Module.__setattr__ refuses a Parameter under a name taken by a property
    # (register_parameter: "attribute ... already exists"); a plain tensor goes to the
    # property's setter, that is to right_inverse.
    if isinstance(value, Parameter) and is_parametrized(self, name):
        raise KeyError(f"attribute '{name}' already exists")
    super(type(self), self).__setattr__(name, value)


def _parametrized_getstate(self):
    raise RuntimeError("Serialization of parametrized modules is only supported through "
                       "state_dict(): save module.state_dict() and load it into a module "
                       "parametrized the same way")


def _parametrized_deepcopy(self, memo):
    # A copy gets a class of its own, so that removing a parametrization from one of them
    # (which deletes a property of the class) leaves the other alone.
    replica = object.__new__(_new_parametrized_class(type(self)))
    memo[id(self)] = replica
    replica.__dict__.update(copy.deepcopy(self.__dict__, memo))
    return replica


def _new_parametrized_class(cls: type) -> type:
    """A fresh ``Parametrized<Name>`` class; given such a class, a twin of it (same base,
    same properties)."""
    if getattr(cls, "_is_parametrized_class", False):
        own = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
        return type(cls.__name__, cls.__bases__, own)
    return type(f"Parametrized{cls.__name__}", (cls,), {
        "_is_parametrized_class": True, "__setattr__": _parametrized_setattr,
        "__getstate__": _parametrized_getstate, "__deepcopy__": _parametrized_deepcopy})


def register_parametrization(module: Module, tensor_name: str, parametrization: Module, *,
                             unsafe: bool = False) -> Module:
    """Make ``module.<tensor_name>`` the output of ``parametrization`` (a Module) applied to
    an original tensor held in ``module.parametrizations.<tensor_name>``.

    The first parametrization of a name takes the parameter or buffer ``tensor_name`` as its
    original (after ``right_inverse``, if the parametrization has one); a further one is
    applied after the earlier ones. Unless ``unsafe``, the parametrized tensor must keep the
    shape and dtype of the tensor it replaces. Returns the module.

    Args:
        module: the module holding the tensor.
        tensor_name: the name of a parameter or buffer (or of an already parametrized
            tensor).
        parametrization: a Module whose ``forward`` maps the original(s) to the tensor; an
            optional ``right_inverse(tensor)`` maps a tensor back to the original (or to a
            sequence of originals: ``original0``, ``original1``, ...).
        unsafe: skip the shape and dtype checks.
    """
    if not isinstance(module, Module):
        raise TypeError(f"register_parametrization: module must be a fastconv.nn.Module, got "
                        f"{type(module).__name__}")
    if not isinstance(parametrization, Module):
        raise TypeError("register_parametrization: parametrization must be a "
                        f"fastconv.nn.Module, got {type(parametrization).__name__}")
    parametrization.train(module.training)
    if is_parametrized(module, tensor_name):
        if not unsafe:
            y = getattr(module, tensor_name)
            x = parametrization(y)
            if not isinstance(x, Tensor):
                raise ValueError(f"A parametrization must return a tensor. Got "
                                 f"{type(x).__name__}.")
            if x.dtype != y.dtype:
                raise ValueError("Registering a parametrization may not change the dtype of "
                                 "the tensor, unless the `unsafe` flag is enabled.\n"
                                 f"module.{tensor_name}.dtype: {y.dtype}\n"
                                 f"parametrization(module.{tensor_name}).dtype: {x.dtype}")
            if x.shape != y.shape:
                raise ValueError("Registering a parametrization may not change the shape of "
                                 "the tensor, unless the `unsafe` flag is enabled.\n"
                                 f"module.{tensor_name}.shape: {y.shape}\n"
                                 f"parametrization(module.{tensor_name}).shape: {x.shape}")
            if hasattr(parametrization, "right_inverse"):
                try:
                    z = parametrization.right_inverse(x)
                except NotImplementedError:
                    z = None
                if z is not None:
                    if not isinstance(z, Tensor):
                        raise ValueError("parametrization.right_inverse must return a tensor. "
                                         f"Got: {type(z).__name__}")
                    if z.dtype != y.dtype:
                        raise ValueError(
                            "The tensor returned by parametrization.right_inverse must have "
                            f"the same dtype as module.{tensor_name}, unless the `unsafe` "
                            f"flag is enabled.\nmodule.{tensor_name}.dtype: {y.dtype}\n"
                            f"returned dtype: {z.dtype}")
                    if z.shape != y.shape:
                        raise ValueError(
                            "The tensor returned by parametrization.right_inverse must have "
                            f"the same shape as module.{tensor_name}, unless the `unsafe` "
                            f"flag is enabled.\nmodule.{tensor_name}.shape: {y.shape}\n"
                            f"returned shape: {z.shape}")
        plist = module.parametrizations[tensor_name]
        plist.append(parametrization)
        plist.unsafe |= unsafe  # one unsafe parametrization makes the whole list unsafe
    elif tensor_name in module._buffers or tensor_name in module._parameters:
        original = getattr(module, tensor_name)
        if original is None:
            raise ValueError(f"Module '{type(module).__name__}' has {tensor_name!r} set to "
                             "None: there is no tensor to parametrize")
        plist = ParametrizationList([parametrization], original, unsafe=unsafe)
        delattr(module, tensor_name)
        if not is_parametrized(module):
            object.__setattr__(module, "__class__", _new_parametrized_class(type(module)))
            module.parametrizations = ModuleDict()
        setattr(type(module), tensor_name, _parametrized_property(tensor_name))
        module.parametrizations[tensor_name] = plist
    else:
        raise ValueError(f"Module '{module}' does not have a parameter, a buffer, or a "
                         f"parametrized element with name '{tensor_name}'")
    return module


def is_parametrized(module: Module, tensor_name: str | None = None) -> bool:
    """Whether ``module`` has a parametrization on ``tensor_name`` (on anything, for None)."""
    parametrizations = module.__dict__.get("_modules", {}).get("parametrizations")
    if not isinstance(parametrizations, ModuleDict):
        return False
    if tensor_name is None:
        return len(parametrizations) > 0
    return tensor_name in parametrizations


def remove_parametrizations(module: Module, tensor_name: str,
                            leave_parametrized: bool = True) -> Module:
    """Undo the parametrizations of ``tensor_name``: it becomes a plain parameter (or buffer)
    again, holding the current parametrized value (``leave_parametrized=True``) or the
    original's (False; only for a single original tensor). A single original keeps its
    object, so optimizers holding it keep working. Returns the module."""
    if not is_parametrized(module, tensor_name):
        raise ValueError(f"Module {module} does not have a parametrization on {tensor_name}")
    plist = module.parametrizations[tensor_name]
    if plist.is_tensor:
        original = plist.original
        if leave_parametrized:
            with no_grad():
                _maybe_set(original, getattr(module, tensor_name))
    elif leave_parametrized:
        t = getattr(module, tensor_name)
        original = Parameter(_copy(t)) if t.requires_grad else Tensor(_copy(t))
    else:
        raise ValueError("Cannot leave unparametrized (`leave_parametrized=False`) a tensor "
                         "that is parametrized in terms of a sequence of tensors.")
    delattr(type(module), tensor_name)
    del module.parametrizations[tensor_name]
    _register_parameter_or_buffer(module, tensor_name, original)
    if not is_parametrized(module):
        delattr(module, "parametrizations")
        object.__setattr__(module, "__class__", type(module).__bases__[0])
    return module


def type_before_parametrizations(module: Module) -> type:
    """The class of ``module`` before it was parametrized (its class when it is not)."""
    if is_parametrized(module):
        return type(module).__bases__[0]
    return type(module)


def transfer_parametrizations_and_params(from_module: Module, to_module: Module,
                                         tensor_name: str | None = None) -> Module:
    """Register on ``to_module`` the parametrizations of ``from_module`` (of ``tensor_name``
    only, or of all its parametrized tensors) and make ``to_module``'s originals the very
    objects of ``from_module``'s (shared, as torch). A tensor that ``to_module`` lacks is
    created from ``from_module``'s parametrized value first. Returns ``to_module``."""
    if not is_parametrized(from_module):
        return to_module
    names = list(from_module.parametrizations) if tensor_name is None else [tensor_name]
    for name in names:
        if not hasattr(to_module, name):
            setattr(to_module, name, Parameter(_copy(getattr(from_module, name))))
        source = from_module.parametrizations[name]
        for parametrization in source:
            register_parametrization(to_module, name, parametrization)
        target = to_module.parametrizations[name]
        if source.is_tensor:
            target.original = source.original
        else:
            for i in range(source.ntensors):
                setattr(target, f"original{i}", getattr(source, f"original{i}"))
    return to_module
