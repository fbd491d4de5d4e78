"""Module hooks that see a module's gradients: ``register_full_backward_hook`` and
``register_full_backward_pre_hook``, torch's (Grad-CAM and gradient inspection use them).

How: as in torch, the module's tensor inputs and its output pass through identity ops whose
backward sees the gradients. The output's one receives ``grad_output`` and runs the pre-hooks
(``hook(module, grad_output)``, which may return a replacement). Each input's one receives
that input's gradient; once every input that needs one has it, the hooks run
(``hook(module, grad_input, grad_output)``, which may return a replacement ``grad_input``).
When no input needs a gradient (a network's first layer), the hooks run right after the
pre-hooks with ``grad_input`` all None; otherwise the tensor inputs that need none get zeros,
as torch's.
"""

from __future__ import annotations

from fastconv.custom_function import Function


def _tuple(value, what: str, n: int) -> tuple:
    value = value if isinstance(value, tuple) else (value,)
    if len(value) != n:
        raise RuntimeError(f"backward hook returned {len(value)} {what}, expected {n}")
    return value


class _Call:
    """The gradients of one call of the module, gathered for its hooks."""

    def __init__(self, module, args):
        from fastconv.tensor import Tensor

        self.module = module
        self.grad_input = [None] * len(args)
        self.pending = self.needing = sum(1 for a in args if _needs_grad(a))
        self.grad_output = None
        # torch hands zeros for the tensor inputs that need no gradient, once one does
        self.constant = [(i, a) for i, a in enumerate(args)
                         if isinstance(a, Tensor) and not a.requires_grad]

    def output_grad(self, g):
        grads = (g,)
        for hook in tuple(self.module._backward_pre_hooks.values()):
            new = hook(self.module, grads)
            if new is not None:
                grads = _tuple(new, "grad_output values", 1)
        self.grad_output = grads
        if self.pending == 0:  # no input needs a gradient: nothing else will call them
            self.run_hooks()
        return grads[0]

    def input_grad(self, index: int, g):
        self.grad_input[index] = g
        self.pending -= 1
        if self.pending:
            return g
        for i, a in self.constant:
            self.grad_input[i] = a.new_zeros(a.shape)
        replaced = self.run_hooks()
        if replaced is None:
            return g
        if self.needing > 1:
            raise NotImplementedError(
                f"a full backward hook of {type(self.module).__name__} returned new "
                "grad_input for a module with several inputs that need gradients: fastconv "
                "can replace the gradient of a single input only")
        return replaced[index]

    def run_hooks(self):
        grads, replaced = tuple(self.grad_input), None
        for hook in tuple(self.module._backward_hooks.values()):
            new = hook(self.module, grads, self.grad_output)
            if new is not None:
                grads = replaced = _tuple(new, "grad_input values", len(grads))
        return replaced


def _needs_grad(a) -> bool:
    from fastconv.tensor import Tensor

    return isinstance(a, Tensor) and a.requires_grad


class _OutputIdentity(Function):
    @staticmethod
    def forward(ctx, y, call):
        ctx.call = call
        return y

    @staticmethod
    def backward(ctx, g):
        return ctx.call.output_grad(g), None


class _InputIdentity(Function):
    @staticmethod
    def forward(ctx, x, call, index):
        ctx.call, ctx.index = call, index
        return x

    @staticmethod
    def backward(ctx, g):
        return ctx.call.input_grad(ctx.index, g), None, None


def wrap_inputs(module, args):
    """The module's arguments, tensors that need gradients routed through identities, and a
    function to apply to its output."""
    from fastconv.tensor import Tensor

    call = _Call(module, args)
    args = tuple(_InputIdentity.apply(a, call, i) if _needs_grad(a) else a
                 for i, a in enumerate(args))

    def wrap_output(out):
        if not isinstance(out, Tensor):
            raise NotImplementedError(
                f"full backward hooks on {type(module).__name__}: its forward returned a "
                f"{type(out).__name__}; fastconv supports them on modules returning one Tensor")
        if not out.requires_grad:
            return out
        return _OutputIdentity.apply(out, call)

    return args, wrap_output
