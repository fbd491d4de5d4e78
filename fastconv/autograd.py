"""Define-by-run reverse mode: the grad-enabled flag and the backward pass.

Each Tensor produced by a Function with a tensor input that needs a gradient
points to that Function (``_ctx``); each Function keeps its arguments
(``parents``). ``backward`` orders the graph topologically from the output,
walks it once in reverse, and accumulates leaf gradients into ``.grad``. Unless
``retain_graph`` is set, each node drops its saved arrays and its parents as
soon as it has run, so the graph is freed by the backward pass itself and
memory stays flat across training steps.

``grad(outputs, inputs)`` walks the same graph but hands back the gradients of the given
inputs (leaves or intermediate tensors) instead of accumulating into any ``.grad``, as
``torch.autograd.grad``. ``Function`` (fastconv/custom_function.py) is torch's custom-op
class, ``forward(ctx, ...)`` / ``backward(ctx, ...)`` on Tensors.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys

import numpy as np

from fastconv.backend import device_of, get_backend

_grad_enabled = True
_inference_mode = False  # read only by is_inference_mode_enabled: inference mode is no_grad here


def is_grad_enabled() -> bool:
    return _grad_enabled


def is_inference_mode_enabled() -> bool:
    """True inside ``inference_mode()`` (and not inside a nested ``inference_mode(False)``),
    as torch.is_inference_mode_enabled."""
    return _inference_mode


class _GradMode(contextlib.ContextDecorator):
    """Sets the flag on entry and restores it on exit; also a decorator (``@no_grad()``).
    One instance may be entered again while active (a decorated function that recurses):
    each entry keeps its own previous value. A decorated generator function runs each of
    its resumptions under the mode, not only the call that creates the generator (as
    torch's decorators)."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self._previous = []

    def __enter__(self):
        global _grad_enabled
        self._previous.append(_grad_enabled)
        _grad_enabled = self.mode

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._previous.pop()
        return False

    def __call__(self, func):
        if inspect.isgeneratorfunction(func):
            return _wrap_generator(self, func)
        return super().__call__(func)


def _wrap_generator(mode, func):
    """``func``'s generator with ``mode`` entered around each resumption (send, throw,
    close), so the caller's code between two ``next()`` keeps its own mode."""

    @functools.wraps(func)
    def generator(*args, **kwargs):
        gen = func(*args, **kwargs)
        try:
            with mode:
                response = gen.send(None)
            while True:
                try:
                    request = yield response
                except GeneratorExit:
                    with mode:
                        gen.close()
                    raise
                except BaseException as exc:
                    with mode:
                        response = gen.throw(exc)
                else:
                    with mode:
                        response = gen.send(request)
        except StopIteration as e:
            return e.value

    return generator


class _NoParamGradMode(_GradMode):
    """A mode whose class is also a decorator without parentheses: ``@no_grad`` is
    ``@no_grad()`` (torch's ``_NoParamDecoratorContextManager``)."""

    def __new__(cls, orig_func=None):
        if orig_func is None:
            return super().__new__(cls)
        return cls()(orig_func)


class no_grad(_NoParamGradMode):
    """``with fastconv.no_grad():`` (or ``@fastconv.no_grad()`` / ``@fastconv.no_grad``) runs
    ops without recording a graph."""

    def __init__(self):
        super().__init__(False)


class enable_grad(_NoParamGradMode):
    """Turns graph recording back on inside a ``no_grad`` region (torch.enable_grad); also a
    decorator, with or without parentheses."""

    def __init__(self):
        super().__init__(True)


class inference_mode(_GradMode):
    """torch.inference_mode: here the same as ``no_grad`` when ``mode`` is True (fastconv has
    no separate inference tensors, so their results may later enter a recorded graph, which
    PyTorch refuses). ``@inference_mode`` without parentheses decorates as
    ``@inference_mode()``."""

    def __new__(cls, mode=True):
        if callable(mode):  # used as a bare decorator: mode is the function
            return cls()(mode)
        return super().__new__(cls)

    def __init__(self, mode: bool = True):
        super().__init__(not mode)
        self._previous_inference = []

    def __enter__(self):
        global _inference_mode
        self._previous_inference.append(_inference_mode)
        _inference_mode = not self.mode
        super().__enter__()

    def __exit__(self, *exc):
        global _inference_mode
        _inference_mode = self._previous_inference.pop()
        return super().__exit__(*exc)


class set_grad_enabled(_GradMode):
    """Turns graph recording on or off, as torch.set_grad_enabled: the call itself sets the
    flag (``fastconv.set_grad_enabled(False)`` on its own line switches recording off for
    good), and used as a context manager it restores the previous value on exit
    (``with fastconv.set_grad_enabled(phase == "train"):``)."""

    def __init__(self, mode: bool):
        global _grad_enabled
        super().__init__(mode)
        self._previous.append(_grad_enabled)
        _grad_enabled = self.mode

    def __enter__(self):
        pass

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._previous.pop() if self._previous else True
        return False

    def __call__(self, func):  # as a decorator the mode applies inside the function only
        global _grad_enabled
        if self._previous:  # undo the switch the decorator's construction made
            _grad_enabled = self._previous.pop()
        return _GradMode(self.mode)(func)


# Anomaly detection (torch.autograd.detect_anomaly): each backward node's gradients are
# checked for NaN, and the error names the node and where its forward ran.
_anomaly_mode = False
_anomaly_check_nan = True


def is_anomaly_enabled() -> bool:
    return _anomaly_mode


def is_anomaly_check_nan_enabled() -> bool:
    return _anomaly_check_nan


class _AnomalyMode(contextlib.ContextDecorator):
    def __init__(self, mode: bool, check_nan: bool):
        self.mode, self.check_nan = bool(mode), bool(check_nan)
        self._previous = []

    def _set(self) -> None:
        global _anomaly_mode, _anomaly_check_nan
        self._previous.append((_anomaly_mode, _anomaly_check_nan))
        _anomaly_mode, _anomaly_check_nan = self.mode, self.check_nan

    def __enter__(self):
        self._set()
        return self

    def __exit__(self, *exc):
        global _anomaly_mode, _anomaly_check_nan
        if self._previous:
            _anomaly_mode, _anomaly_check_nan = self._previous.pop()
        return False


class detect_anomaly(_AnomalyMode):
    """``with fastconv.autograd.detect_anomaly():`` (or as a decorator): a backward node whose
    gradient holds NaN raises, naming the op and the line of its forward call."""

    def __init__(self, check_nan: bool = True):
        super().__init__(True, check_nan)


class set_detect_anomaly(_AnomalyMode):
    """Switches anomaly detection on or off: the call itself sets it (as torch's), and used as
    a context manager it restores the previous setting on exit."""

    def __init__(self, mode: bool, check_nan: bool = True):
        super().__init__(mode, check_nan)
        self._set()

    def __enter__(self):
        return self


def forward_site() -> str:
    """Where user code called the op being recorded: the innermost frame outside fastconv."""
    import traceback

    for frame in reversed(traceback.extract_stack()[:-1]):
        if "/fastconv/" not in frame.filename.replace("\\", "/"):
            return f"{frame.filename}:{frame.lineno}: {frame.line}"
    return "unknown"


def _check_nan(fn, input_grads) -> None:
    for i, g in enumerate(input_grads):
        g = g.data if _is_tensor(g) else g
        if g is not None and g.dtype.kind == "f" and bool(get_backend(device_of(g)).xp.isnan(
                g).any()):
            name = getattr(fn, "op", type(fn)).__name__
            raise RuntimeError(f"Function '{name}Backward' returned nan values in its {i}th "
                               f"output; its forward ran at "
                               f"{getattr(fn, 'forward_site', 'an unknown place')}")


def _edges(fn):
    """(input, node that made it when ``fn`` ran) for each input of ``fn``. An in-place op
    on an input since then gave that tensor a new node; ``fn``'s gradient belongs to the value
    it read, so the graph follows the recorded node, not the tensor's current one."""
    nodes = fn.parent_nodes
    if len(nodes) != len(fn.parents):  # a node built without them
        nodes = tuple(getattr(p, "_ctx", None) for p in fn.parents)
    return zip(fn.parents, nodes)


def _topological_order(roots):
    """Functions reachable from the ``roots`` (tensors with a ``_ctx``) with every node after
    all its consumers."""
    order, visited = [], set()
    stack = [(root._ctx, False) for root in reversed(roots)]
    while stack:
        fn, expanded = stack.pop()
        if expanded:
            order.append(fn)
            continue
        if id(fn) in visited:
            continue
        visited.add(id(fn))
        stack.append((fn, True))
        for _, ctx in _edges(fn):
            if ctx is not None and id(ctx) not in visited:
                stack.append((ctx, False))
    order.reverse()  # post-order reversed: consumers before producers
    return order


# Callbacks queued during the running backward pass (None outside one).
_queued_callbacks = None


def _leaf_edge_counts(order) -> dict:
    """For each leaf with post-accumulate-grad hooks: how many graph edges lead to it. Its
    gradient is complete once every node holding such an edge has been visited."""
    counts = {}
    for fn in order:
        for parent, node in _edges(fn):
            if getattr(parent, "_post_accumulate_hooks", None) and node is None:
                counts[id(parent)] = counts.get(id(parent), 0) + 1
    return counts


def _settle_leaf_edges(fn, counts: dict, received: set) -> None:
    """``fn`` has delivered its gradients (or none, if the output did not depend on it): run
    the post-accumulate-grad hooks of the leaves whose last edge this was."""
    for parent in fn.parents:
        key = id(parent)
        if key in counts:
            counts[key] -= 1
            if counts[key] == 0 and key in received:
                _run_post_accumulate_hooks(parent)


def _run_post_accumulate_hooks(leaf) -> None:
    for hook in list(leaf._post_accumulate_hooks):
        hook(leaf)


def queue_callback(callback) -> None:
    """Run ``callback()`` once the running backward pass has accumulated every leaf gradient
    (torch's ``Variable._execution_engine.queue_callback``). Only valid during backward,
    typically from a gradient hook: DistributedDataParallel uses it to average gradients
    after the last one is accumulated."""
    if _queued_callbacks is None:
        raise RuntimeError("queue_callback() is only valid during a backward pass (call it from a "
                           "gradient hook)")
    _queued_callbacks.append(callback)


def run_backward(roots, grads, retain_graph: bool = False, capture=None,
                 create_graph: bool = False) -> None:
    """Propagate ``grads`` (arrays: the gradient of some scalar w.r.t. each of ``roots``)
    through the graph, then run the callbacks that hooks queued during it
    (``queue_callback``). With ``capture`` ({id(tensor): [tensor, None]}), no ``.grad`` is
    touched: each listed tensor's gradient goes into its entry instead. With
    ``create_graph``, ``grads`` are Tensors and the backward pass is itself recorded
    (each node's ``backward_graph``), so the gradients it produces can be differentiated."""
    global _queued_callbacks
    outer, _queued_callbacks = _queued_callbacks, []
    try:
        _backward(list(roots), list(grads), retain_graph, capture, create_graph)
        callbacks = _queued_callbacks
    finally:
        _queued_callbacks = outer
    for callback in callbacks:
        callback()


def _as_sequence(tensors, what: str) -> list:
    from fastconv.tensor import Tensor

    seq = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    for i, t in enumerate(seq):
        if not isinstance(t, Tensor):
            raise TypeError(f"{what}[{i}] must be a Tensor, got {type(t).__name__}")
    return seq


def _seed_grads(outputs, grad_outputs, fname: str, create_graph: bool = False) -> list:
    """The starting gradient (an array) of each output: 1 for a one-element output without
    one given, the given tensor's array otherwise (its shape must match). With
    ``create_graph`` they are Tensors, a given one itself (the result may be differentiated
    with respect to it)."""
    from fastconv.tensor import Tensor, _as_array

    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    else:
        grad_outputs = ([grad_outputs] if not isinstance(grad_outputs, (list, tuple))
                        else list(grad_outputs))
        if len(grad_outputs) != len(outputs):
            raise RuntimeError(f"{fname}: got {len(grad_outputs)} gradients for "
                               f"{len(outputs)} outputs")
    seeds = []
    for i, (out, g) in enumerate(zip(outputs, grad_outputs)):
        if not out.requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not "
                               "have a grad_fn")
        if g is None:
            if out.data.size != 1:
                raise RuntimeError(
                    f"grad can be implicitly created only for scalar outputs: output {i} has "
                    f"shape {tuple(out.shape)}; pass its gradient")
            g = get_backend(out.device).xp.ones_like(out.data)
        else:
            given = g
            g = _as_array(g, out.device)
            if g.shape != out.data.shape:
                raise RuntimeError(f"{fname}: gradient {i} has shape {tuple(g.shape)}, its "
                                   f"output {tuple(out.shape)}")
            g = g.astype(out.data.dtype, copy=False)
            if create_graph and isinstance(given, Tensor) and given.dtype == g.dtype:
                seeds.append(given)  # itself: what comes back may depend on it
                continue
        seeds.append(Tensor(g) if create_graph else g)
    return seeds


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph: bool = False,
         only_inputs: bool = True, allow_unused=None, is_grads_batched: bool = False,
         materialize_grads: bool = False):
    """torch.autograd.grad: the gradients of ``outputs`` with respect to ``inputs`` (leaves or
    intermediate tensors), as a tuple of Tensors, without touching any ``.grad``.

    ``grad_outputs`` as ``Tensor.backward``'s ``gradient`` (needed for outputs of more than
    one element); an input the outputs do not depend on is an error unless ``allow_unused``
    (then None, or zeros with ``materialize_grads``). The graph is freed unless
    ``retain_graph``."""
    from fastconv.tensor import Tensor

    if is_grads_batched:
        raise NotImplementedError("grad(is_grads_batched=True) is not supported")
    outputs = _as_sequence(outputs, "outputs")
    inputs = _as_sequence(inputs, "inputs")
    if not outputs or not inputs:
        raise RuntimeError("grad requires non-empty outputs and inputs")
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"One of the differentiated Tensors (inputs[{i}], shape "
                               f"{tuple(t.shape)}) does not require grad")
    allow_unused = materialize_grads if allow_unused is None else allow_unused
    if materialize_grads and not allow_unused:
        raise ValueError("Expected allow_unused to be True or not passed when "
                         "materialize_grads=True")
    capture = {id(t): [t, None] for t in inputs}
    retain_graph = create_graph if retain_graph is None else retain_graph
    run_backward(outputs, _seed_grads(outputs, grad_outputs, "grad", create_graph),
                 retain_graph=bool(retain_graph), capture=capture, create_graph=create_graph)
    result = []
    for i, t in enumerate(inputs):
        g = capture[id(t)][1]
        if g is None:
            if not allow_unused:
                raise RuntimeError(
                    f"One of the differentiated Tensors (inputs[{i}], shape {tuple(t.shape)}) "
                    "appears to not have been used in the graph. Set allow_unused=True if this "
                    "is the desired behavior.")
            result.append(Tensor(get_backend(t.device).xp.zeros_like(t.data))
                          if materialize_grads else None)
        else:
            result.append(g if isinstance(g, Tensor) else Tensor(g))
    return tuple(result)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph: bool = False,
             inputs=None) -> None:
    """torch.autograd.backward: accumulate the gradients of ``tensors`` (with ``grad_tensors``
    as their incoming gradients; 1 for one-element tensors) into the leaves' ``.grad``, or
    into the ``.grad`` of ``inputs`` only when they are given. With ``create_graph`` the
    accumulated gradients are themselves in a graph (and the graph is kept)."""
    tensors = _as_sequence(tensors, "tensors")
    seeds = _seed_grads(tensors, grad_tensors, "backward", create_graph)
    retain_graph = bool(create_graph if retain_graph is None else retain_graph)
    if inputs is None:
        run_backward(tensors, seeds, retain_graph=retain_graph, create_graph=create_graph)
        return
    inputs = _as_sequence(inputs, "inputs")
    if not inputs:
        raise RuntimeError("backward: 'inputs' argument to backward() cannot be empty")
    capture = {id(t): [t, None] for t in inputs}
    run_backward(tensors, seeds, retain_graph=retain_graph, capture=capture,
                 create_graph=create_graph)
    for t, g in capture.values():
        if g is not None:  # torch: a given non-leaf input gets .grad too
            _accumulate(t, g, hooks=False)


def _deliver(leaf, g, capture, received) -> None:
    """A gradient reaching a leaf: into ``.grad``, or into ``capture`` if one is given."""
    if capture is None:
        _accumulate(leaf, g)
        received.add(id(leaf))
    elif id(leaf) in capture:
        _capture(capture, leaf, g)


def _capture(capture, tensor, g) -> None:
    if tensor._ctx is None and tensor._hooks:  # a node's hooks already ran on its output
        g = _run_hooks(tensor._hooks, g)
    entry = capture[id(tensor)]
    if entry[1] is not None:
        entry[1] = entry[1] + g
    else:  # a Tensor gradient (create_graph) is never changed in place
        entry[1] = g if _is_tensor(g) else g.copy()


def _is_tensor(g) -> bool:
    from fastconv.tensor import Tensor

    return isinstance(g, Tensor)


def _backward(roots, grads, retain_graph: bool, capture, create_graph: bool = False) -> None:
    from fastconv import function
    from fastconv.tensor import Tensor

    pending_grads = {}  # gradient flowing into each Function's output
    received = set()    # leaves that got a gradient
    for root, grad in zip(roots, grads):
        if root._ctx is None:  # a leaf: its gradient is the incoming one
            _deliver(root, grad, capture, received)
            continue
        if root._ctx.released:
            raise RuntimeError(
                "backward through a graph that was already freed: a second backward over the "
                "same graph needs retain_graph=True on the first call"
            )
        key = id(root._ctx)
        pending_grads[key] = grad if key not in pending_grads else pending_grads[key] + grad
    if capture is None:
        for root in roots:
            if root._ctx is None and root.requires_grad and root._post_accumulate_hooks:
                _run_post_accumulate_hooks(root)
    order = _topological_order([r for r in roots if r._ctx is not None])
    # Leaves with post-accumulate-grad hooks: edges still to come, and those that got a
    # gradient (a leaf may be used by several nodes; its hooks run once, when it is complete).
    pending = _leaf_edge_counts(order) if capture is None else {}
    # the tensors whose gradient is wanted, by the node that made them
    wanted = {} if capture is None else {id(t._ctx): t for t, _ in capture.values()
                                         if t._ctx is not None}
    # with capture, only the nodes between the roots and a wanted tensor run (as torch's
    # engine): nothing below the inputs is differentiated
    useful = None if capture is None else _leading_to(order, capture)
    with set_grad_enabled(create_graph):
        for fn in order:
            dy = pending_grads.pop(id(fn), None)
            if fn.released:
                raise RuntimeError(
                    f"backward through a freed graph node ({type(fn).__name__}): call "
                    "backward(retain_graph=True) the first time to backpropagate twice"
                )
            if dy is None:  # this branch does not influence the output
                if pending:
                    _settle_leaf_edges(fn, pending, received)
                continue
            if fn.saved is not None:
                _check_versions(fn)
            if fn.hooks:
                dy = _run_hooks(fn.hooks, dy)
            if id(fn) in wanted:
                _capture(capture, wanted[id(fn)], dy)
            if useful is not None and id(fn) not in useful:
                continue
            if create_graph:
                input_grads = fn.backward_graph(dy)
            elif function.profile_hook is None:
                input_grads = fn.backward(dy)
            else:  # a profiler is recording (fastconv.profiler)
                input_grads = function.profile_hook.run_backward(fn, dy)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            if _anomaly_mode and _anomaly_check_nan:
                _check_nan(fn, input_grads)
            for (parent, node), g, needed in zip(_edges(fn), input_grads, fn.needs_input_grad):
                if g is None or not needed or not isinstance(parent, Tensor):
                    continue
                if node is None:
                    _deliver(parent, g, capture, received)
                else:
                    key = id(node)
                    pending_grads[key] = g if key not in pending_grads else pending_grads[key] + g
            if pending:
                _settle_leaf_edges(fn, pending, received)
            if not retain_graph:
                fn.saved = None
                fn.parents = fn.parent_nodes = ()
                fn.released = True


def _leading_to(order, capture) -> set:
    """The ids of the nodes in ``order`` (consumers first) that have a captured tensor
    among their inputs or above them in the graph."""
    useful = set()
    for fn in reversed(order):  # producers first
        for parent, node in _edges(fn):
            if id(parent) in capture or id(node) in useful:
                useful.add(id(fn))
                break
    return useful


def _run_hooks(hooks, g):
    """Each hook sees the gradient (a Tensor); one that returns a tensor replaces it. ``g``
    is an array, or a Tensor in a backward pass that records a graph."""
    from fastconv.tensor import Tensor

    graph = isinstance(g, Tensor)
    for hook in list(hooks):
        out = hook(g if graph else Tensor(g))
        if out is not None:
            if graph:
                g = out if isinstance(out, Tensor) else Tensor(out)
            else:
                g = out.data if isinstance(out, Tensor) else out
    return g


def _check_versions(fn) -> None:
    """PyTorch's error when an input that ``fn`` saved was changed in place since it ran."""
    for i, (parent, version) in enumerate(zip(fn.parents, fn.versions)):
        if version is not None and parent._version != version:
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by an "
                f"inplace operation: [{parent.type()} {list(parent.shape)}], which is input {i} "
                f"of {type(fn).__name__}, is at version {parent._version}; expected version "
                f"{version} instead.")


def _accumulate(leaf, g, hooks: bool = True) -> None:
    from fastconv.tensor import Tensor, torch_methods_view

    if not leaf.requires_grad:
        return
    if hooks and leaf._hooks:
        g = _run_hooks(leaf._hooks, g)
    if tuple(g.shape) != tuple(leaf.shape):
        raise RuntimeError(f"gradient of shape {g.shape} for a tensor of shape {leaf.shape}")
    if isinstance(g, Tensor):  # create_graph: .grad keeps its graph, summed out of place
        leaf.grad = g if leaf.grad is None else leaf.grad + g
        return
    if leaf.grad is None:
        # A copy (backward functions may hand the same array to several inputs), and an
        # array even where an op's backward gave a NumPy scalar for a 0-d gradient: the next
        # backward adds into it in place.
        leaf.grad = Tensor(np.array(g) if isinstance(g, np.generic) else g.copy())
        leaf.grad.data = torch_methods_view(leaf.grad.data)  # p.grad.data.norm(2) as torch
    else:
        get_backend(device_of(g)).accumulate_(leaf.grad.data, g)


def _make_profiler_module():
    """``fastconv.autograd.profiler``, torch.autograd.profiler's names: ``profile`` (the older
    interface of :mod:`fastconv.profiler`), ``record_function``, ``EventList``,
    ``FunctionEvent``, ``FunctionEventAvg``. A module registered under its dotted name, so
    ``import fastconv.autograd.profiler`` works; its names load fastconv.profiler on first
    use."""
    import sys
    import types

    module = types.ModuleType(__name__ + ".profiler", _make_profiler_module.__doc__)
    names = {"profile": "_AutogradProfile", "record_function": "record_function",
             "EventList": "EventList", "FunctionEvent": "FunctionEvent",
             "FunctionEventAvg": "FunctionEventAvg"}

    def attribute(name):
        if name not in names:
            raise AttributeError(f"module 'fastconv.autograd.profiler' has no attribute "
                                 f"{name!r}")
        from fastconv import profiler as _profiler

        return getattr(_profiler, names[name])

    module.__getattr__ = attribute
    module.__all__ = list(names)
    sys.modules[module.__name__] = module
    return module


profiler = _make_profiler_module()

# ``from fastconv.autograd.functional import hessian``, as torch's import path
from fastconv import autograd_functional as functional  # noqa: E402

sys.modules[__name__ + ".functional"] = functional


def __getattr__(name):
    # torch.autograd.Function (custom ops on Tensors), loaded on first use: it builds on
    # fastconv.function, which imports this module
    if name in ("Function", "FunctionCtx"):
        from fastconv import custom_function

        return getattr(custom_function, name)
    if name in ("gradcheck", "gradgradcheck", "Variable", "GradcheckError"):
        return getattr(functional, name)
    raise AttributeError(f"module 'fastconv.autograd' has no attribute {name!r}")
