"""Module and Parameter: the containers layers and networks are built from (PyTorch's API)."""

from __future__ import annotations

import warnings
from collections import OrderedDict, namedtuple
from collections.abc import Mapping

import numpy as np

from fastconv.autograd import is_grad_enabled
from fastconv.nn import backward_hooks
from fastconv.tensor import Tensor, torch_methods_view


def factory_kwargs(module, device, dtype) -> None:
    """A layer's ``device=`` / ``dtype=`` constructor arguments, as torch's factory kwargs:
    the parameters and buffers, made in float32 on the CPU, move by ``module.to`` (so a
    dtype follows its rules: float32, or float64/float16 kept float32 with a warning)."""
    if device is not None or dtype is not None:
        module.to(device=device, dtype=dtype)


def _typename(value) -> str:
    from fastconv.toplevel import typename

    return typename(value) if isinstance(value, Tensor) else type(value).__name__


class Parameter(Tensor):
    """A Tensor that a Module registers as trainable (requires_grad=True by default)."""

    def __init__(self, data, requires_grad: bool = True):
        if isinstance(data, Tensor):
            data = data.data
        super().__init__(data, requires_grad=requires_grad)

    @property
    def data(self):
        return self.__dict__["data"]

    @data.setter
    def data(self, value):  # kept as an array that also has torch's in-place methods
        self.__dict__["data"] = torch_methods_view(value.data if isinstance(value, Tensor)
                                                   else value)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class RemovableHandle:
    """What ``register_forward_hook`` returns: ``handle.remove()`` unregisters the hook.
    Also a context manager that removes it on exit."""

    _next_id = 0

    def __init__(self, hooks: OrderedDict, hook, prepend: bool = False):
        self._hooks = hooks
        self.id = RemovableHandle._next_id
        RemovableHandle._next_id += 1
        hooks[self.id] = hook
        if prepend:
            hooks.move_to_end(self.id, last=False)

    def remove(self) -> None:
        self._hooks.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


class _KwargsHook:
    """A forward hook registered with ``with_kwargs`` and/or ``always_call``."""

    def __init__(self, fn, with_kwargs: bool = True, always_call: bool = False):
        self.fn, self.with_kwargs, self.always_call = fn, with_kwargs, always_call

    def call(self, module, args, kwargs, output):
        if self.with_kwargs:
            return self.fn(module, args, kwargs, output)
        return self.fn(module, args, output)


def _checked_hook(hook):
    if not callable(hook):
        raise TypeError(f"hook must be callable, got {type(hook).__name__}")
    return hook


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What ``Module.load_state_dict`` returns (PyTorch's name and fields)."""

    __slots__ = ()

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


def incompatible_keys_errors(missing, unexpected, mismatched) -> list[str]:
    """The lines of PyTorch's load_state_dict error: missing keys, unexpected keys, and
    ``(key, checkpoint shape, model shape)`` size mismatches (shapes as tuples)."""
    errors = []
    if missing:
        errors.append("Missing key(s) in state_dict: "
                      + ", ".join(f'"{k}"' for k in missing) + ". ")
    if unexpected:
        errors.append("Unexpected key(s) in state_dict: "
                      + ", ".join(f'"{k}"' for k in unexpected) + ". ")
    for k, src, dst in mismatched:
        errors.append(f"size mismatch for {k}: copying a param with shape {tuple(src)} from "
                      f"checkpoint, the shape in current model is {tuple(dst)}.")
    return errors


def non_numeric_errors(values, keys) -> list[str]:
    """An error line for each of ``keys`` whose value in ``values`` is not a real numeric array
    (bool, integer or floating point): a datetime, string, bytes, structured, complex or
    object array would otherwise be cast into the float32 weights (datetimes silently)."""
    errors = []
    for k in keys:
        v = values[k].data if isinstance(values[k], Tensor) else values[k]
        dtype = getattr(v, "dtype", None)
        if not isinstance(dtype, np.dtype):
            dtype = np.asarray(v).dtype
        if dtype.kind not in "biuf":
            errors.append(f'While copying the parameter named "{k}", expected a numeric array '
                          "(bool, integer or floating point) from checkpoint, but received "
                          f"one of dtype {dtype}.")
    return errors


class Module:
    """Base class of layers and networks.

    Assigning a Parameter, a Module or (through ``register_buffer``) a buffer
    Tensor as an attribute registers it, in order, so that ``parameters()``,
    ``state_dict()`` and ``to()`` find it.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "_backward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_backward_hooks", OrderedDict())

    # ---- registration -----------------------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() "
                                 f"before assigning {name!r}")
        # a registered parameter or child module takes its own kind or None, as in torch: a
        # plain Tensor assigned to ``weight`` would otherwise drop out of parameters()
        for table, kind, want in ((self._parameters, "parameter", Parameter),
                                  (self._modules, "child module", Module)):
            if name in table and not isinstance(value, want):
                if value is not None:
                    raise TypeError(f"cannot assign '{_typename(value)}' as {kind} '{name}' "
                                    f"(nn.{want.__name__} or None expected)")
                table[name] = None
                return
        for table in (self._parameters, self._buffers, self._modules):
            table.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif name in self.__dict__.get("_buffer_names", ()):
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)
            return
        self.__dict__.pop(name, None)

    def __getattr__(self, name):
        for table in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(table)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        for table in (self._parameters, self._buffers, self._modules):
            if name in table:
                del table[name]
                if table is self._buffers:
                    self.__dict__.get("_buffer_names", set()).discard(name)
                    self.__dict__.get("_non_persistent_buffers_set", set()).discard(name)
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """A non-trainable state tensor (e.g. running statistics).

        Persistent buffers (the default) are part of ``state_dict()``; with
        ``persistent=False`` the buffer still moves with the module (``to()``) and is
        listed by ``buffers()``, but is neither saved nor expected by ``load_state_dict``.
        """
        if not isinstance(name, str):
            raise TypeError(f"buffer name should be a string, got {type(name).__name__}")
        if "." in name:
            raise KeyError(f'buffer name can\'t contain ".", got {name!r}')
        if name == "":
            raise KeyError('buffer name can\'t be empty string ""')
        if hasattr(self, name) and name not in self._buffers:
            raise KeyError(f"attribute {name!r} already exists")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign {type(tensor).__name__} object to buffer {name!r} "
                            "(fastconv.Tensor or None required)")
        self.__dict__.setdefault("_buffer_names", set()).add(name)
        non_persistent = self.__dict__.setdefault("_non_persistent_buffers_set", set())
        if persistent:
            non_persistent.discard(name)
        else:
            non_persistent.add(name)
        self.__dict__.pop(name, None)
        self._buffers[name] = tensor

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if not isinstance(name, str):
            raise TypeError(f"parameter name should be a string. Got {type(name).__name__}")
        if not name:
            raise KeyError('parameter name can\'t be empty string ""')
        if "." in name:
            raise KeyError('parameter name can\'t contain "."')
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{_typename(param)}' object to parameter '{name}' "
                            "(nn.Parameter or None required)")
        if param is None:
            self._parameters[name] = None
        else:
            setattr(self, name, param)

    def add_module(self, name: str, module: Module) -> None:
        self._modules[name] = module

    def register_module(self, name: str, module: Module) -> None:
        self.add_module(name, module)

    def get_submodule(self, target: str) -> Module:
        """The submodule at the dotted path ``target`` ("" is this module), as torch's."""
        module = self
        for i, name in enumerate(target.split(".") if target else []):
            child = module._modules.get(name, getattr(module, name, None))
            if not isinstance(child, Module):
                where = ".".join(target.split(".")[:i]) or type(self).__name__
                raise AttributeError(f"{where} has no attribute `{name}`" if child is None else
                                     f"`{name}` is not an nn.Module")
            module = child
        return module

    def get_parameter(self, target: str):
        """The parameter at the dotted path ``target`` ("block.0.weight")."""
        return self._get_tensor(target, "_parameters", "nn.Parameter")

    def get_buffer(self, target: str):
        """The buffer at the dotted path ``target`` ("bn.running_mean")."""
        return self._get_tensor(target, "_buffers", "buffer")

    def _get_tensor(self, target: str, table: str, kind: str):
        path, _, name = target.rpartition(".")
        module = self.get_submodule(path)
        if name not in getattr(module, table):
            raise AttributeError(f"{type(module).__name__} has no {kind} `{name}`")
        return getattr(module, table)[name]

    # ---- traversal --------------------------------------------------------------------------
    def named_modules(self, memo=None, prefix: str = "", remove_duplicate: bool = True):
        """(name, module) for this module and every submodule, depth first, each module
        once (unless ``remove_duplicate`` is False), as PyTorch."""
        if isinstance(memo, str):  # named_modules("prefix"): fastconv's former signature
            memo, prefix = None, memo
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(memo, f"{prefix}.{name}" if prefix else name,
                                               remove_duplicate)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        seen = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self):
        for _, child in self.named_children():
            yield child

    def _named_members(self, table: str, prefix: str, recurse: bool, remove_duplicate: bool):
        modules = (self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
                   if recurse else [(prefix, self)])
        seen = set()
        for module_name, module in modules:
            for name, t in getattr(module, table).items():
                if t is None or (remove_duplicate and id(t) in seen):
                    continue
                seen.add(id(t))
                yield (f"{module_name}.{name}" if module_name else name), t

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True):
        """(name, parameter) module by module (each module's own parameters in the order
        they were registered); a parameter shared by several modules comes once."""
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True):
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn) -> Module:
        """Call ``fn(module)`` on every submodule (children first) and then on this module,
        as PyTorch; typically used to initialise weights. Returns self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ---- modes and devices ------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> Module:
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's gradient: drop it (``set_to_none=True``, PyTorch's default)
        or, with ``set_to_none=False``, cut it from any graph and fill it with zeros in place
        (``torch.nn.Module.zero_grad``)."""
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                if p.grad._ctx is not None:
                    p.grad.detach_()
                else:
                    p.grad.requires_grad_(False)
                p.grad.zero_()

    def to(self, *args, **kwargs) -> Module:
        """Move every parameter and buffer to a device in place; returns self.

        As ``torch.nn.Module.to``: ``to(device)``, ``to(dtype)``, ``to(device, dtype)``,
        ``to(tensor)`` and the keywords ``device``, ``dtype``, ``non_blocking``. A dtype must be
        floating point; float32 changes nothing and float64/float16 keep float32 with a
        DtypeWarning (fastconv computes in float32, see fastconv.dtypes). Parameters stay the
        same objects (optimizers keep holding them).
        """
        from fastconv import dtypes
        from fastconv.device import as_device
        from fastconv.tensor import _as_array, to_arguments

        device, dtype, _ = to_arguments(args, kwargs)
        if dtype is not None:
            dt = dtypes.resolve(dtype)
            if dt.kind != "f":
                raise TypeError("nn.Module.to only accepts floating point or complex dtypes, but "
                                f"got desired dtype={dt}")
            if dt != dtypes.float32:
                dtypes.warn_float32("Module.to", dt, stacklevel=2)
        if device is None:
            return self
        target = as_device(device).type
        for t in list(self.parameters()) + list(self.buffers()):
            t.data = _as_array(t.data, target)
            if t.grad is not None:
                t.grad = Tensor(_as_array(t.grad.data, target))
        return self

    def share_memory(self) -> Module:
        """Return self: fastconv's arrays live in ordinary process memory (PyTorch moves them
        to shared memory for multiprocessing workers)."""
        return self

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self, device=None) -> Module:
        return self.to("cuda" if device is None else device)

    def float(self) -> Module:
        """Floating-point parameters and buffers as float32: already so in fastconv."""
        return self

    def double(self) -> Module:
        """Kept float32 with a DtypeWarning: fastconv has no float64 parameters (PyTorch would
        convert them; see fastconv.dtypes)."""
        from fastconv import dtypes

        dtypes.warn_float32("Module.double()", dtypes.float64, stacklevel=2)
        return self

    def half(self) -> Module:
        """Kept float32 with a DtypeWarning: fastconv has no float16 parameters."""
        from fastconv import dtypes

        dtypes.warn_float32("Module.half()", dtypes.float16, stacklevel=2)
        return self

    def bfloat16(self) -> Module:
        """Kept float32 with a DtypeWarning: fastconv has no bfloat16 parameters (autocast
        computes in bfloat16 on float32 master weights, see fastconv.amp)."""
        from fastconv import dtypes

        dtypes.warn_float32("Module.bfloat16()", dtypes.bfloat16, stacklevel=2)
        return self

    # ---- state ------------------------------------------------------------------------------
    _version = 1  # torch's per-class state_dict version, given to hooks as local_metadata

    def _own_state(self):
        """(name, tensor) of this module's own state, without its children's: its parameters,
        then its persistent buffers, in registration order (PyTorch's order)."""
        for name, p in self._parameters.items():
            if p is not None:
                yield name, p
        skip = self.__dict__.get("_non_persistent_buffers_set", ())
        for name, b in self._buffers.items():
            if b is not None and name not in skip:
                yield name, b

    def _hooks(self, name: str) -> tuple:
        """The hooks of the table ``name`` (a snapshot: a hook may remove itself)."""
        table = self.__dict__.get(name)
        return tuple(table.values()) if table else ()

    def state_dict(self, *, destination=None, prefix: str = "", keep_vars: bool = False):
        """Parameters and persistent buffers by dotted name, as host (NumPy) copies, in
        PyTorch's order (module by module, depth first: each module's parameters, then its
        buffers), so the keys of a PyTorch twin's state_dict line up by name and by position.
        A module reached under two names appears under both (as in PyTorch).

        ``keep_vars=True`` gives the Tensors themselves instead of copies (PyTorch gives
        detached tensors either way: fastconv's copies are its own difference, on purpose,
        so that a saved state never changes under a training step).

        As torch's, each module runs its ``register_state_dict_pre_hook`` hooks before saving
        its state and its ``register_state_dict_post_hook`` hooks after its children's, and
        the new dictionary carries ``_metadata`` (``{module prefix: {"version": ...}}``).
        """
        if destination is None:
            destination = OrderedDict()
            destination._metadata = OrderedDict()
        local_metadata = {"version": self._version}
        if hasattr(destination, "_metadata"):
            destination._metadata[prefix[:-1]] = local_metadata
        for hook in self._hooks("_state_dict_pre_hooks"):
            hook(self, prefix, keep_vars)
        for name, t in self._own_state():
            destination[prefix + name] = t if keep_vars else np.array(t.__array__(), copy=True)
        for name, child in self._modules.items():
            if child is not None:
                child.state_dict(destination=destination, prefix=f"{prefix}{name}.",
                                 keep_vars=keep_vars)
        for hook in self._hooks("_state_dict_hooks"):
            if hook(self, destination, prefix, local_metadata) is not None:
                raise RuntimeError("state_dict post-hook must return None")
        return destination

    def load_state_dict(self, state_dict, strict: bool = True,
                        assign: bool = False) -> _IncompatibleKeys:
        """Copy arrays into the parameters and buffers of the same names (as PyTorch).

        Returns ``_IncompatibleKeys(missing_keys, unexpected_keys)``: the names the
        module has but ``state_dict`` lacks, and the other way round. With ``strict``
        (the default) either kind raises a RuntimeError listing them all; without
        it, the matching entries are loaded. A shape mismatch, or a value that is not a
        numeric array (a datetime or string array, say), raises in both modes.
        Nothing is copied when an error is raised (torch keeps what it copied before the
        error). ``assign`` (PyTorch's switch between copying and taking the given tensors)
        is accepted; fastconv always copies, which gives the same values.

        The modules are visited as in torch: each runs its ``register_load_state_dict_pre_hook``
        hooks on its part of a copy of ``state_dict`` (which they may edit), then its
        children are loaded, then its ``register_load_state_dict_post_hook`` hooks run (on
        the values already copied); they may edit the missing and unexpected keys before
        ``strict`` judges them.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
        metadata = getattr(state_dict, "_metadata", None)
        state_dict = OrderedDict(state_dict)
        if metadata is not None:
            state_dict._metadata = metadata
        missing, unexpected, errors = [], [], []
        pending, backups = [], []  # (tensor, value) to copy; (tensor, its former array)

        def copy_pending(keep_backups: bool) -> None:
            from fastconv.tensor import _as_array

            for t, value in pending:
                if keep_backups:
                    backups.append((t, t.data.copy()))
                # Copy into the existing array, so references to it (an optimizer's) stay valid.
                t.data[...] = _as_array(value, t.device)
            pending.clear()

        def load(module: Module, local: dict, prefix: str) -> None:
            local_metadata = {} if metadata is None else metadata.get(prefix[:-1], {})
            if assign:
                local_metadata["assign_to_params_buffers"] = assign
            for hook in module._hooks("_load_state_dict_pre_hooks"):
                hook(module, local, prefix, local_metadata, True, missing, unexpected, errors)
            own = OrderedDict(module._own_state())
            for name, t in own.items():
                key = prefix + name
                if key not in local:
                    missing.append(key)
                    continue
                value = local[key].data if isinstance(local[key], Tensor) else local[key]
                if tuple(np.shape(value)) != t.shape:
                    errors.extend(incompatible_keys_errors([], [], [(key, np.shape(value),
                                                                     t.shape)]))
                    continue
                bad = non_numeric_errors({key: value}, [key])
                if bad:
                    errors.extend(bad)
                    continue
                pending.append((t, value))
            for key in local:
                if key.startswith(prefix):
                    head, dot, _ = key[len(prefix):].partition(".")
                    if head not in (module._modules if dot else own):
                        unexpected.append(key)
            for name, child in module._modules.items():
                if child is not None:
                    child_prefix = f"{prefix}{name}."
                    load(child, {k: v for k, v in local.items() if k.startswith(child_prefix)},
                         child_prefix)
            post_hooks = module._hooks("_load_state_dict_post_hooks")
            if post_hooks:
                copy_pending(keep_backups=True)  # a post hook sees the values loaded
                keys = _IncompatibleKeys(missing, unexpected)
                for hook in post_hooks:
                    if hook(module, keys) is not None:
                        raise AssertionError(
                            "Hooks registered with ``register_load_state_dict_post_hook`` are "
                            "not expected to return new values, if incompatible_keys need to be "
                            "modified, it should be done inplace.")

        try:
            load(self, state_dict, "")
            if strict:
                errors[:0] = incompatible_keys_errors(missing, unexpected, [])
            if errors:
                raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:"
                                   "\n\t" + "\n\t".join(errors))
        except BaseException:
            for t, old in reversed(backups):
                t.data[...] = old
            raise
        copy_pending(keep_backups=False)
        return _IncompatibleKeys(missing, unexpected)

    # ---- calling and display ----------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        for hook in tuple(self._forward_pre_hooks.values()):
            if isinstance(hook, _KwargsHook):
                result = hook.fn(self, args, kwargs)
                if result is not None:
                    if not (isinstance(result, tuple) and len(result) == 2):
                        raise RuntimeError("forward pre-hook must return None or a tuple of "
                                           f"(new_args, new_kwargs), but got {result}.")
                    args, kwargs = result
                continue
            new_args = hook(self, args)
            if new_args is not None:
                args = new_args if isinstance(new_args, tuple) else (new_args,)
        wrap_output = None
        if (self.__dict__.get("_backward_hooks") or self.__dict__.get("_backward_pre_hooks")) \
                and is_grad_enabled():
            args, wrap_output = backward_hooks.wrap_inputs(self, args)
        try:
            out = self.forward(*args, **kwargs)
        except BaseException:
            # always_call hooks run even when forward raises (their result is dropped).
            for hook in tuple(self._forward_hooks.values()):
                if getattr(hook, "always_call", False):
                    hook.call(self, args, kwargs, None)
            raise
        for hook in tuple(self._forward_hooks.values()):
            new_out = hook.call(self, args, kwargs, out) if isinstance(hook, _KwargsHook) \
                else hook(self, args, out)
            if new_out is not None:
                out = new_out
        return out if wrap_output is None else wrap_output(out)

    def register_forward_pre_hook(self, hook, *, prepend: bool = False,
                                  with_kwargs: bool = False) -> RemovableHandle:
        """Call ``hook(module, args)`` before each forward. It may return new positional
        arguments (a tuple, or a single value); None keeps them. With ``with_kwargs=True``
        it is ``hook(module, args, kwargs)`` and may return ``(new_args, new_kwargs)``.
        ``prepend=True`` runs it before the hooks already registered. ``.remove()`` on the
        returned handle unregisters it."""
        hook = _checked_hook(hook)
        return RemovableHandle(self._forward_pre_hooks,
                               _KwargsHook(hook) if with_kwargs else hook, prepend)

    def register_forward_hook(self, hook, *, prepend: bool = False, with_kwargs: bool = False,
                              always_call: bool = False) -> RemovableHandle:
        """Call ``hook(module, args, output)`` after each forward (``hook(module, args,
        kwargs, output)`` with ``with_kwargs=True``). It may return a new output; None keeps
        it. ``prepend=True`` runs it first; ``always_call=True`` also runs it when forward
        raises. ``.remove()`` on the returned handle unregisters it."""
        hook = _checked_hook(hook)
        if with_kwargs or always_call:
            hook = _KwargsHook(hook, with_kwargs, always_call)
        return RemovableHandle(self._forward_hooks, hook, prepend)

    def register_full_backward_hook(self, hook) -> RemovableHandle:
        """Call ``hook(module, grad_input, grad_output)`` when the gradients with respect to
        the module's inputs have been computed (tuples, None for an input that needs none);
        it may return a new ``grad_input``. See fastconv/nn/backward_hooks.py."""
        return RemovableHandle(self._hook_dict("_backward_hooks"), _checked_hook(hook))

    def register_full_backward_pre_hook(self, hook) -> RemovableHandle:
        """Call ``hook(module, grad_output)`` when the gradient with respect to the module's
        output has been computed; it may return a new ``grad_output``."""
        return RemovableHandle(self._hook_dict("_backward_pre_hooks"), _checked_hook(hook))

    def register_backward_hook(self, hook) -> RemovableHandle:
        """torch's deprecated form: here it is ``register_full_backward_hook`` (torch's old
        hook saw the gradients of the module's last op instead, which torch warns about)."""
        warnings.warn("register_backward_hook is deprecated in PyTorch; fastconv runs it as "
                      "register_full_backward_hook", FutureWarning, stacklevel=2)
        return self.register_full_backward_hook(hook)

    def register_state_dict_pre_hook(self, hook) -> RemovableHandle:
        """Call ``hook(module, prefix, keep_vars)`` when ``state_dict()`` reaches this module,
        before its state is saved (torch's signature); its return value is ignored."""
        return RemovableHandle(self._hook_dict("_state_dict_pre_hooks"), _checked_hook(hook))

    def register_state_dict_post_hook(self, hook) -> RemovableHandle:
        """Call ``hook(module, state_dict, prefix, local_metadata)`` when ``state_dict()`` has
        saved this module and its children. It may edit ``state_dict`` in place and must
        return None (a RuntimeError otherwise, as torch's)."""
        return RemovableHandle(self._hook_dict("_state_dict_hooks"), _checked_hook(hook))

    def register_load_state_dict_pre_hook(self, hook) -> RemovableHandle:
        """Call ``hook(module, state_dict, prefix, local_metadata, strict, missing_keys,
        unexpected_keys, error_msgs)`` when ``load_state_dict`` reaches this module, before
        it loads its own state. ``state_dict`` is the module's part of a copy of the input
        (keys starting with ``prefix``), which the hook may edit (rename legacy keys, say);
        a message appended to ``error_msgs`` fails the load. ``strict`` is always True, as
        torch passes it; the caller's ``strict`` applies at the end."""
        return RemovableHandle(self._hook_dict("_load_state_dict_pre_hooks"),
                               _checked_hook(hook))

    def register_load_state_dict_post_hook(self, hook) -> RemovableHandle:
        """Call ``hook(module, incompatible_keys)`` when ``load_state_dict`` has loaded this
        module and its children. ``incompatible_keys.missing_keys`` / ``.unexpected_keys``
        are the lists found so far; editing them in place changes what ``strict`` rejects
        and what ``load_state_dict`` returns. The hook must return None (an AssertionError
        otherwise, as torch's)."""
        return RemovableHandle(self._hook_dict("_load_state_dict_post_hooks"),
                               _checked_hook(hook))

    def _hook_dict(self, name: str) -> OrderedDict:
        if name not in self.__dict__:  # a module made before these hooks existed (unpickled)
            object.__setattr__(self, name, OrderedDict())
        return self.__dict__[name]

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"({name}): " + repr(child).replace("\n", "\n  ")
                 for name, child in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"
