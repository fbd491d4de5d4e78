"""``fastconv.autograd.functional`` (``jacobian``, ``vjp``) and the numerical gradient
checks ``fastconv.autograd.gradcheck`` / ``gradgradcheck``, with PyTorch's names.

Everything here is built on first-order reverse mode (``autograd.grad``). fastconv records
no graph of the backward pass, so the second-order tools (``hessian``, ``hvp``, ``vhp``,
``jvp`` with ``create_graph``, ``gradgradcheck``) raise a NotImplementedError that says so.

gradcheck compares the analytical gradients with central differences of the function itself.
fastconv computes in float32, so its default step and tolerances are float32's
(``eps=1e-3, atol=1e-3, rtol=1e-2``; PyTorch's defaults assume float64 inputs).
"""

from __future__ import annotations

import numpy as np


def _tensors(x, what):
    from fastconv.tensor import Tensor

    single = isinstance(x, Tensor)
    items = (x,) if single else tuple(x)
    for i, t in enumerate(items):
        if not isinstance(t, Tensor):
            raise TypeError(f"The {what} given to the function must be either a Tensor or a "
                            f"tuple of Tensors but the value at index {i} has type "
                            f"{type(t).__name__}.")
    return single, items


def _second_order(name):
    raise NotImplementedError(
        f"autograd.functional.{name}: needs the gradient of a gradient, and fastconv records "
        "no graph of the backward pass (first-order tools: jacobian, vjp)")


def _prepare(inputs):
    single, xs = _tensors(inputs, "inputs")
    return single, tuple(x.detach().requires_grad_(True) for x in xs)


def vjp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), v^T J): the outputs and the vector-Jacobian product for ``v`` (shaped as
    the output; may be omitted for a one-element output)."""
    from fastconv.autograd import grad

    if create_graph:
        _second_order("vjp(create_graph=True)")
    single, xs = _prepare(inputs)
    out = func(*xs)
    out_single, outs = _tensors(out, "outputs")
    vs = None if v is None else _tensors(v, "v")[1]
    grads = grad(outs, xs, grad_outputs=vs, allow_unused=True, materialize_grads=not strict)
    if strict and any(g is None for g in grads):
        raise RuntimeError("The output of the user-provided function is independent of an "
                           "input. This is not allowed in strict mode.")
    outs = tuple(o.detach() for o in outs)
    return (outs[0] if out_single else outs), (grads[0] if single else grads)


def jacobian(func, inputs, create_graph: bool = False, strict: bool = False,
             vectorize: bool = False, strategy: str = "reverse-mode"):
    """The Jacobian of ``func`` at ``inputs``: for one input and one output, a tensor of
    shape output.shape + input.shape; tuples of them otherwise (nested as PyTorch's).
    Computed row by row in reverse mode."""
    from fastconv.autograd import grad
    from fastconv.tensor import Tensor

    if create_graph:
        _second_order("jacobian(create_graph=True)")
    if strategy not in ("reverse-mode", "forward-mode"):
        raise ValueError('Expected strategy to be either "forward-mode" or "reverse-mode".')
    single, xs = _prepare(inputs)
    out = func(*xs)
    out_single, outs = _tensors(out, "outputs")
    rows = []
    for o in outs:
        per_input = [np.zeros((o.numel(),) + tuple(x.shape), np.float32) for x in xs]
        for k in range(o.numel()):
            seed = np.zeros(o.numel(), np.float32)
            seed[k] = 1.0
            seed_t = Tensor(seed.reshape(o.shape)).to(o.device)
            gs = grad([o], xs, grad_outputs=[seed_t], retain_graph=True, allow_unused=True)
            for j, g in enumerate(gs):
                if g is None:
                    if strict:
                        raise RuntimeError(f"Output {outs.index(o)} of the user-provided "
                                           f"function is independent of input {j}. This is "
                                           "not allowed in strict mode.")
                    continue
                per_input[j][k] = g.cpu().numpy()
        blocks = tuple(Tensor(b.reshape(tuple(o.shape) + tuple(x.shape))).to(x.device)
                       for b, x in zip(per_input, xs))
        rows.append(blocks[0] if single else blocks)
    return rows[0] if out_single else tuple(rows)


def hessian(func, inputs, create_graph=False, strict=False, vectorize=False,
            outer_jacobian_strategy="reverse-mode"):
    _second_order("hessian")


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    _second_order("hvp")


def vhp(func, inputs, v=None, create_graph=False, strict=False):
    _second_order("vhp")


def jvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), J v): computed from the full Jacobian (reverse mode, row by row), so
    meant for small functions."""
    single, xs = _tensors(inputs, "inputs")
    out = func(*(x.detach() for x in xs))
    out_single, outs = _tensors(out, "outputs")
    jac = jacobian(func, inputs, create_graph=create_graph, strict=strict)
    vs = _tensors(v, "v")[1] if v is not None else None
    if vs is None:
        if any(x.numel() != 1 for x in xs):
            raise RuntimeError("The vector v can only be None if the input to the "
                               "user-provided function is a single Tensor with a single "
                               "element.")
        vs = tuple(x.new_ones(x.shape) for x in xs)
    from fastconv.tensor import Tensor

    results = []
    rows = (jac,) if out_single else jac
    for o, row in zip(outs, rows):
        blocks = (row,) if single else row
        total = np.zeros(o.numel(), np.float64)
        for b, x, vv in zip(blocks, xs, vs):
            total += b.cpu().numpy().reshape(o.numel(), -1) @ vv.cpu().numpy().reshape(-1)
        results.append(Tensor(total.reshape(o.shape).astype(np.float32)).to(o.device))
    outs = tuple(o.detach() for o in outs)
    return (outs[0] if out_single else outs), (results[0] if out_single else tuple(results))


def gradcheck(func, inputs, *, eps: float = 1e-3, atol: float = 1e-3, rtol: float = 1e-2,
              raise_exception: bool = True, nondet_tol: float = 0.0,
              check_undefined_grad: bool = True, check_grad_dtypes: bool = False,
              check_batched_grad: bool = False, check_batched_forward_grad: bool = False,
              check_forward_ad: bool = False, check_backward_ad: bool = True,
              fast_mode: bool = False, masked=None) -> bool:
    """Check the analytical gradients of ``func`` against central differences
    (func(x + eps) - func(x - eps)) / (2 eps) for every input that requires grad, entry by
    entry: |analytical - numerical| <= atol + rtol * |numerical|. Returns True, or raises
    (or returns False with ``raise_exception=False``) naming the first mismatch. float32
    step and tolerances by default (see the module docstring)."""
    from fastconv.autograd import grad, no_grad
    from fastconv.tensor import Tensor

    _, items = _tensors(inputs, "inputs")
    checked = [i for i, x in enumerate(items) if x.requires_grad]
    if not checked:
        raise ValueError("gradcheck expects at least one input tensor to require gradient, "
                         "but none of the them have requires_grad=True.")

    def outputs_of(args):
        return _tensors(func(*args), "outputs")[1]

    base = [x.detach() for x in items]
    with no_grad():
        outs = outputs_of(base)
    for j, o in enumerate(outs):
        for i in checked:
            x = items[i]
            numerical = np.zeros((x.numel(), o.numel()), np.float64)
            flat = x.detach().cpu().numpy().astype(np.float64).reshape(-1)
            for k in range(x.numel()):
                rows = []
                for sign in (1, -1):
                    moved = flat.copy()
                    moved[k] += sign * eps
                    args = list(base)
                    args[i] = Tensor(moved.reshape(x.shape).astype(np.float32)).to(x.device)
                    with no_grad():
                        rows.append(outputs_of(args)[j].cpu().numpy().astype(np.float64))
                numerical[k] = ((rows[0] - rows[1]) / (2 * eps)).reshape(-1)
            analytical = np.zeros_like(numerical)
            leaves = [t.detach().requires_grad_(True) if t.requires_grad else t.detach()
                      for t in items]
            out = outputs_of(leaves)[j]
            for m in range(o.numel()):
                seed = np.zeros(o.numel(), np.float32)
                seed[m] = 1.0
                (g,) = grad([out], [leaves[i]], grad_outputs=[Tensor(seed.reshape(o.shape))
                                                              .to(o.device)],
                            retain_graph=True, allow_unused=True)
                if g is not None:
                    analytical[:, m] = g.cpu().numpy().reshape(-1)
            bad = np.abs(analytical - numerical) > atol + rtol * np.abs(numerical)
            if bad.any():
                if not raise_exception:
                    return False
                k, m = np.argwhere(bad)[0]
                raise GradcheckError(
                    f"Jacobian mismatch for output {j} with respect to input {i},\n"
                    f"numerical:{numerical.T}\nanalytical:{analytical.T}\n"
                    f"first mismatch: input entry {k}, output entry {m}: analytical "
                    f"{analytical[k, m]:.6g}, numerical {numerical[k, m]:.6g} (eps={eps}, "
                    f"atol={atol}, rtol={rtol})")
    return True


def gradgradcheck(func, inputs, grad_outputs=None, **kwargs):
    _second_order("gradgradcheck")


class GradcheckError(RuntimeError):
    """Raised by :func:`gradcheck` when the analytical and numerical gradients differ."""


def Variable(data, requires_grad: bool = False, volatile: bool = False):
    """PyTorch's old wrapper: today a Variable is a Tensor. Returns ``data`` itself with
    ``requires_grad`` set, as ``torch.autograd.Variable`` does."""
    from fastconv.tensor import Tensor

    if not isinstance(data, Tensor):
        raise TypeError(f"Variable data has to be a tensor, but got {type(data).__name__}")
    if requires_grad:
        data.requires_grad_(True)
    return data
