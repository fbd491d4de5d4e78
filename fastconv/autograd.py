"""Define-by-run reverse mode: the grad-enabled flag and the backward pass.

Each Tensor produced by a Function with a tensor input that needs a gradient
points to that Function (``_ctx``); each Function keeps its arguments
(``parents``). ``backward`` orders the graph topologically from the output,
walks it once in reverse, and accumulates leaf gradients into ``.grad``. Unless
``retain_graph`` is set, each node drops its saved arrays and its parents as
soon as it has run, so the graph is freed by the backward pass itself and
memory stays flat across training steps.
"""

from __future__ import annotations

import contextlib

from fastconv.backend import device_of, get_backend

_grad_enabled = True


def is_grad_enabled() -> bool:
    return _grad_enabled


class _GradMode(contextlib.ContextDecorator):
    """Sets the flag on entry and restores it on exit; also a decorator (``@no_grad()``).
    One instance may be entered again while active (a decorated function that recurses):
    each entry keeps its own previous value."""

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


class no_grad(_GradMode):
    """``with fastconv.no_grad():`` (or ``@fastconv.no_grad()``) runs ops without recording a
    graph."""

    def __init__(self):
        super().__init__(False)


class enable_grad(_GradMode):
    """Turns graph recording back on inside a ``no_grad`` region (torch.enable_grad)."""

    def __init__(self):
        super().__init__(True)


class inference_mode(_GradMode):
    """torch.inference_mode: here the same as ``no_grad`` when ``mode`` is True (fastconv has
    no separate inference tensors, so their results may later enter a recorded graph, which
    PyTorch refuses)."""

    def __init__(self, mode: bool = True):
        super().__init__(not mode)


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


def _topological_order(root):
    """Functions reachable from ``root`` with every node after all its consumers."""
    order, visited = [], set()
    stack = [(root._ctx, False)]
    while stack:
        fn, expanded = stack.pop()
        if expanded:
            order.append(fn)
            continue
        if id(fn) in visited:
            continue
        visited.add(id(fn))
        stack.append((fn, True))
        for parent in fn.parents:
            ctx = getattr(parent, "_ctx", None)
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
        for parent in fn.parents:
            if getattr(parent, "_post_accumulate_hooks", None) and parent._ctx is None:
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


def backward(root, grad, retain_graph: bool = False) -> None:
    """Propagate ``grad`` (the gradient of some scalar w.r.t. ``root``) through the graph,
    then run the callbacks that hooks queued during it (``queue_callback``)."""
    global _queued_callbacks
    outer, _queued_callbacks = _queued_callbacks, []
    try:
        _backward(root, grad, retain_graph)
        callbacks = _queued_callbacks
    finally:
        _queued_callbacks = outer
    for callback in callbacks:
        callback()


def _backward(root, grad, retain_graph: bool) -> None:
    from fastconv.tensor import Tensor

    if root._ctx is None:  # a leaf: its gradient is the incoming one
        _accumulate(root, grad)
        if root.requires_grad and root._post_accumulate_hooks:
            _run_post_accumulate_hooks(root)
        return
    if root._ctx.released:
        raise RuntimeError(
            "backward through a graph that was already freed: a second backward over the "
            "same graph needs retain_graph=True on the first call"
        )
    grads = {id(root._ctx): grad}  # gradient flowing into each Function's output
    order = _topological_order(root)
    # Leaves with post-accumulate-grad hooks: edges still to come, and those that got a
    # gradient (a leaf may be used by several nodes; its hooks run once, when it is complete).
    pending, received = _leaf_edge_counts(order), set()
    with set_grad_enabled(False):
        for fn in order:
            dy = grads.pop(id(fn), None)
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
            input_grads = fn.backward(dy)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            for parent, g in zip(fn.parents, input_grads):
                if g is None or not isinstance(parent, Tensor) or not parent.requires_grad:
                    continue
                if parent._ctx is None:
                    _accumulate(parent, g)
                    received.add(id(parent))
                else:
                    key = id(parent._ctx)
                    grads[key] = g if key not in grads else grads[key] + g
            if pending:
                _settle_leaf_edges(fn, pending, received)
            if not retain_graph:
                fn.saved = None
                fn.parents = ()
                fn.released = True


def _run_hooks(hooks, g):
    """Each hook sees the gradient (a Tensor); one that returns a tensor replaces it."""
    from fastconv.tensor import Tensor

    for hook in list(hooks):
        out = hook(Tensor(g))
        if out is not None:
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


def _accumulate(leaf, g) -> None:
    from fastconv.tensor import Tensor

    if not leaf.requires_grad:
        return
    if leaf._hooks:
        g = _run_hooks(leaf._hooks, g)
    if g.shape != leaf.shape:
        raise RuntimeError(f"gradient of shape {g.shape} for a tensor of shape {leaf.shape}")
    if leaf.grad is None:
        # A copy: backward functions may hand the same array to several inputs.
        leaf.grad = Tensor(g.copy())
    else:
        get_backend(device_of(g)).accumulate_(leaf.grad.data, g)
