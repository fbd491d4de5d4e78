"""Differentiating the backward pass: what ``create_graph=True`` runs.

With ``create_graph=True`` the autograd engine calls each node's ``backward_graph(dy)``
instead of ``backward(dy)``: ``dy`` is a Tensor and the input gradients come back as Tensors
built from differentiable ops, so the gradients are themselves in a graph (gradient
penalties, Hessian-vector products, ``gradgradcheck``). An op says how, in one of four ways:

* its own ``backward_graph``, the derivative written with Tensor ops (``Mul``: ``dy * b``
  and ``dy * a``; ``Conv2d``: unfold, batched matmul and fold);
* a ``composite(*parents)`` method, its forward written again with differentiable Tensor
  ops (batch norm, the fused cross-entropy): the gradients are those of the composite;
* ``double_backward = "linear"``: the op is linear in its first argument, the only one that
  takes a gradient (reshape, sum, indexing, padding, pooling by averaging, ...). Its backward
  is then a linear map of ``dy`` alone, and the adjoint of that map is the op itself:
  :class:`AdjointPair` runs the op's backward forwards and the op forwards backwards;
* ``double_backward = "fixed_mask"``: an elementwise op whose derivative is piecewise
  constant (ReLU, clamp, abs, dropout's mask, ...). Its backward multiplies ``dy`` by that
  derivative, so its own derivative is the same product with respect to ``dy`` and zero
  (almost everywhere) with respect to the input: an :class:`AdjointPair` of the backward
  with itself.

Any other op refuses with an error naming it, rather than returning gradients that are
silently missing their second-order part.
"""

from __future__ import annotations

import copy

from fastconv.function import Function


def _first(grads):
    return grads[0] if isinstance(grads, tuple) else grads


class AdjointPair(Function):
    """A linear map of ``dy`` and its adjoint (array functions) as one differentiable op:
    forward applies ``linear``, backward applies ``adjoint``, and differentiating once more
    swaps them back. The backward of an op whose gradient is linear in ``dy`` with
    coefficients that do not change with its input is such a map."""

    def forward(self, dy, linear, adjoint):
        self.linear, self.adjoint = linear, adjoint
        return linear(dy)

    def backward(self, g):
        return self.adjoint(g), None, None

    def backward_graph(self, g):
        return AdjointPair.apply(g, self.adjoint, self.linear), None, None


def node_backward(fn):
    """``fn``'s backward for its first input as an array function. It works on a copy of the
    node: the original frees its saved arrays when the first backward pass moves on, and
    the map may be differentiated later."""
    node = copy.copy(fn)
    return lambda dy: _first(node.backward(dy))


def reapply(fn):
    """``fn``'s op run again on another first argument (the rest of the call as recorded),
    as an array function: the adjoint of the backward of an op linear in that argument."""
    from fastconv.autograd import no_grad
    from fastconv.tensor import Tensor

    op, rest, kwargs = type(fn), fn.parents[1:], fn.call_kwargs

    def run(g):
        with no_grad():
            return op.apply(Tensor(g), *rest, **kwargs).data
    return run


def _through_composite(fn, dy):
    """The gradients of ``fn.composite(*parents)``, the op's forward written again in
    differentiable Tensor ops, with respect to the parents that need them."""
    from fastconv import autograd

    wanted = [i for i, need in enumerate(fn.needs_input_grad) if need]
    # Each input through a copy of its own: the gradient taken at the copies is the partial
    # derivative for that argument only (an input may also feed another one, as x and
    # x.tanh() do), while the copies keep the graph to the inputs for the next order.
    args = list(fn.parents)
    for i in wanted:
        args[i] = args[i].clone()
    out = fn.composite(*args)
    grads = autograd.grad(out, [args[i] for i in wanted], dy, create_graph=True,
                          allow_unused=True)
    result = [None] * len(fn.parents)
    for i, g in zip(wanted, grads):
        result[i] = g
    return tuple(result)


def backward_graph(fn, dy):
    """The default ``Function.backward_graph``: by the op's ``double_backward`` kind."""
    n = len(fn.parents)
    if hasattr(fn, "composite"):
        return _through_composite(fn, dy)
    kind = getattr(fn, "double_backward", None)
    if kind == "linear":
        return (AdjointPair.apply(dy, node_backward(fn), reapply(fn)),) + (None,) * (n - 1)
    if kind == "fixed_mask":  # elementwise: the map is its own adjoint
        linear = node_backward(fn)
        return (AdjointPair.apply(dy, linear, linear),) + (None,) * (n - 1)
    raise NotImplementedError(
        f"double backward (create_graph=True) through {fn.profile_name()} is not supported: "
        "its gradient cannot itself be differentiated yet")
