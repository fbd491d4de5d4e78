"""``fastconv.autograd.Function``: torch's way to write a differentiable op on Tensors.

    class Exp(fastconv.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            y = x.exp()
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, grad_output):
            y, = ctx.saved_tensors
            return grad_output * y

    y = Exp.apply(x)

As in torch: ``forward`` runs with gradient recording off and gets the arguments as given
(Tensors stay Tensors); ``ctx`` carries ``save_for_backward`` / ``saved_tensors``,
``needs_input_grad``, ``mark_non_differentiable``, ``set_materialize_grads`` and any attribute
you set; ``backward`` returns one gradient per ``forward`` argument (None where there is none,
and for non-Tensor arguments), each of its argument's shape. The newer style, a ``forward``
without ``ctx`` plus ``setup_context(ctx, inputs, output)``, works too.

Differences: one output Tensor per op (a tuple of several is refused with an error), and no
double backward (``backward`` itself is not recorded).

The built-in ops use fastconv.function.Function instead, which works on raw arrays; an op of
this kind becomes one node of that graph, ``_Node``.
"""

from __future__ import annotations

from fastconv import function as _function_module
from fastconv.autograd import forward_site, is_anomaly_enabled, is_grad_enabled, no_grad
from fastconv.function import Function as _ArrayFunction


class FunctionCtx:
    """What ``forward`` leaves for ``backward`` (torch's ``ctx``)."""

    def __init__(self, needs_input_grad: tuple):
        self.needs_input_grad = needs_input_grad
        self.to_save = ()
        self.materialize_grads = True
        self.non_differentiable = ()

    def save_for_backward(self, *tensors) -> None:
        from fastconv.tensor import Tensor

        for i, t in enumerate(tensors):
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(f"save_for_backward can only save Tensors or None, argument {i} "
                                f"is {type(t).__name__}; keep other values as ctx attributes")
        self.to_save = tensors

    @property
    def saved_tensors(self) -> tuple:
        return tuple(self.to_save)

    def mark_non_differentiable(self, *tensors) -> None:
        self.non_differentiable = tensors

    def mark_dirty(self, *tensors) -> None:
        """Accepted for torch's API: fastconv's in-place version counters already see it."""

    def set_materialize_grads(self, value: bool) -> None:
        self.materialize_grads = bool(value)


class _Node(_ArrayFunction):
    """The graph node of one call of a custom Function."""

    def profile_name(self) -> str:
        return self.op.__name__

    def profile_backward_name(self) -> str:
        return self.op.__name__ + "Backward"  # torch's name for a custom Function's node

    def backward(self, dy):
        from fastconv.tensor import Tensor

        name = self.op.__name__
        grads = self.op.backward(self.ctx, Tensor(dy))
        if not isinstance(grads, tuple):
            grads = (grads,)
        n = len(self.parents)
        if len(grads) < n or any(g is not None for g in grads[n:]):
            raise RuntimeError(f"function {name}Backward returned an incorrect number of "
                               f"gradients (expected {n}, got {len(grads)})")
        arrays = []
        for i, (parent, g) in enumerate(zip(self.parents, grads)):
            if g is None or not isinstance(parent, Tensor):
                arrays.append(None)
                continue
            if not isinstance(g, Tensor):
                raise TypeError(f"function {name}Backward returned a {type(g).__name__} as "
                                f"gradient {i}; expected a Tensor or None")
            if tuple(g.shape) != tuple(parent.shape):
                raise RuntimeError(f"function {name}Backward returned an invalid gradient at "
                                   f"index {i} - got {list(g.shape)} but expected shape "
                                   f"{list(parent.shape)}")
            arrays.append(g.data)
        return tuple(arrays)


class Function:
    """Base class of a custom differentiable op (see the module docstring)."""

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("a custom Function must define forward(ctx, *args)")

    @staticmethod
    def setup_context(ctx, inputs, output):
        raise NotImplementedError  # only the newer style defines it

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("a custom Function must define backward(ctx, grad_output) "
                                  "to be differentiated")

    vjp = backward  # torch's alias

    @classmethod
    def apply(cls, *args, **kwargs):
        from fastconv.tensor import Tensor

        tensors = [a for a in args if isinstance(a, Tensor)]
        devices = {t.device for t in tensors}
        if len(devices) > 1:
            raise RuntimeError(f"{cls.__name__}: all tensors must be on one device, got "
                               f"{sorted(devices)}")
        ctx = FunctionCtx(tuple(isinstance(a, Tensor) and a.requires_grad for a in args))
        recorder = _function_module.profile_hook  # a profiler recording (fastconv.profiler)
        event = recorder.begin("fastconv::" + cls.__name__, "cpu_op", args) \
            if recorder is not None else None
        try:
            with no_grad():
                if cls.setup_context is not Function.setup_context:
                    out = cls.forward(*args, **kwargs)
                    cls.setup_context(ctx, args, out)
                else:
                    out = cls.forward(ctx, *args, **kwargs)
        finally:
            if event is not None:
                recorder.end(event)
        if isinstance(out, (tuple, list)):
            if len(out) != 1:
                raise NotImplementedError(
                    f"{cls.__name__}.forward returned {len(out)} outputs: a custom Function in "
                    "fastconv has one output Tensor (split it into one Function per output)")
            out = out[0]
        if not isinstance(out, Tensor):
            raise TypeError(f"{cls.__name__}.forward must return a Tensor, got "
                            f"{type(out).__name__}")
        differentiable = not any(out is t for t in ctx.non_differentiable)
        if not (is_grad_enabled() and any(ctx.needs_input_grad) and differentiable):
            return out
        node = _Node()
        node.op, node.ctx = cls, ctx
        node.needs_input_grad = ctx.needs_input_grad
        node.parents = tuple(args)
        node.parent_nodes = tuple(a._ctx if isinstance(a, Tensor) else None for a in args)
        # an input changed in place after forward matters only if forward saved it
        saved = [t for t in ctx.to_save if t is not None]
        node.versions = tuple(a._version if any(a is t for t in saved) else None
                              for a in args)
        node.saved = tuple(t.data for t in saved)  # (read by the engine's version check)
        if is_anomaly_enabled():
            node.forward_site = forward_site()
        return Tensor(out.data, requires_grad=True, _ctx=node)
