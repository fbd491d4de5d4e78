"""``fastconv.autograd.functional`` (``jacobian``, ``hessian``, ``vjp``, ``jvp``, ``hvp``,
``vhp``) and the numerical gradient checks ``fastconv.autograd.gradcheck`` /
``gradgradcheck``, with PyTorch's names.

Everything here is built on reverse mode (``autograd.grad``); the second-order tools
differentiate a gradient computed with ``create_graph=True`` (fastconv.double_backward).

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


def _prepare(inputs, create_graph=False):
    """The inputs as tensors to differentiate with respect to: fresh leaves, or (with
    ``create_graph``) clones that keep a graph the inputs are already in, as torch's."""
    single, xs = _tensors(inputs, "inputs")
    return single, tuple(x.clone() if create_graph and x.requires_grad
                         else x.detach().requires_grad_(True) for x in xs)


def vjp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), v^T J): the outputs and the vector-Jacobian product for ``v`` (shaped as
    the output; may be omitted for a one-element output)."""
    from fastconv.autograd import grad

    single, xs = _prepare(inputs, create_graph)
    out = func(*xs)
    out_single, outs = _tensors(out, "outputs")
    vs = None if v is None else _tensors(v, "v")[1]
    grads = grad(outs, xs, grad_outputs=vs, allow_unused=True, materialize_grads=not strict,
                 create_graph=create_graph)
    if strict and any(g is None for g in grads):
        raise RuntimeError("The output of the user-provided function is independent of an "
                           "input. This is not allowed in strict mode.")
    outs = tuple(o if create_graph else o.detach() for o in outs)
    return (outs[0] if out_single else outs), (grads[0] if single else grads)


def jacobian(func, inputs, create_graph: bool = False, strict: bool = False,
             vectorize: bool = False, strategy: str = "reverse-mode"):
    """The Jacobian of ``func`` at ``inputs``: for one input and one output, a tensor of
    shape output.shape + input.shape; tuples of them otherwise (nested as PyTorch's).
    Computed row by row in reverse mode."""
    from fastconv.autograd import grad
    from fastconv.tensor import Tensor
    from fastconv.toplevel import stack

    if strategy not in ("reverse-mode", "forward-mode"):
        raise ValueError('Expected strategy to be either "forward-mode" or "reverse-mode".')
    single, xs = _prepare(inputs, create_graph)
    out = func(*xs)
    out_single, outs = _tensors(out, "outputs")
    rows = []
    for o in outs:
        per_input = [[] for _ in xs]  # one gradient per output element
        for k in range(o.numel()):
            seed = np.zeros(o.numel(), np.float32)
            seed[k] = 1.0
            seed_t = Tensor(seed.reshape(o.shape)).to(o.device)
            gs = grad([o], xs, grad_outputs=[seed_t], retain_graph=True, allow_unused=True,
                      create_graph=create_graph)
            for j, g in enumerate(gs):
                if g is None:
                    if strict:
                        raise RuntimeError(f"Output {outs.index(o)} of the user-provided "
                                           f"function is independent of input {j}. This is "
                                           "not allowed in strict mode.")
                    g = xs[j].new_zeros(xs[j].shape)
                per_input[j].append(g if create_graph else g.detach())
        blocks = tuple((stack(b) if b else x.new_zeros((0,) + tuple(x.shape))).reshape(
            tuple(o.shape) + tuple(x.shape)) for b, x in zip(per_input, xs))
        rows.append(blocks[0] if single else blocks)
    return rows[0] if out_single else tuple(rows)


def hessian(func, inputs, create_graph=False, strict=False, vectorize=False,
            outer_jacobian_strategy="reverse-mode"):
    """The Hessian of a function with a one-element output: the Jacobian of its gradient
    (shape input.shape + input.shape; nested tuples for several inputs, as torch's)."""
    from fastconv.autograd import grad

    single, _ = _tensors(inputs, "inputs")

    def gradient(*xs):
        out = func(*xs)
        if not hasattr(out, "numel") or out.numel() != 1:
            raise RuntimeError("The function given to hessian should return a single Tensor "
                               "containing a single element")
        gs = grad(out, xs, create_graph=True, allow_unused=True, materialize_grads=not strict)
        if strict and any(g is None for g in gs):
            raise RuntimeError("The output of the user-provided function is independent of "
                               "an input. This is not allowed in strict mode.")
        return gs[0] if single else gs

    return jacobian(gradient, inputs, create_graph=create_graph, strict=strict)


def _vectors(v, xs):
    """The ``v`` of jvp / hvp / vhp as a tuple; ones when omitted for a one-element input."""
    if v is not None:
        return _tensors(v, "v")[1]
    if any(x.numel() != 1 for x in xs):
        raise RuntimeError("The vector v can only be None if the input to the user-provided "
                           "function is a single Tensor with a single element.")
    return tuple(x.new_ones(x.shape) for x in xs)


def _second_vjp(func, inputs, v, create_graph, strict):
    """(func(inputs), v^T H): the gradient of <grad func, v>."""
    from fastconv.autograd import grad

    single, xs = _prepare(inputs, True)
    out = func(*xs)
    if not hasattr(out, "numel") or out.numel() != 1:
        raise RuntimeError("The function given to hvp/vhp should return a single Tensor "
                           "containing a single element")
    vs = _vectors(v, xs)
    for x, vv in zip(xs, vs):
        if tuple(vv.shape) != tuple(x.shape):
            raise RuntimeError(f"v has shape {tuple(vv.shape)} but the input has shape "
                               f"{tuple(x.shape)}")
    gs = grad(out, xs, create_graph=True, allow_unused=True, materialize_grads=True)
    used = [(g, vv) for g, vv in zip(gs, vs) if g.requires_grad]
    if used:
        hv = grad([g for g, _ in used], xs, grad_outputs=[vv for _, vv in used],
                  create_graph=create_graph, allow_unused=True, materialize_grads=not strict)
    else:
        hv = tuple(x.new_zeros(x.shape) for x in xs)
    if strict and any(h is None for h in hv):
        raise RuntimeError("The second derivative is independent of an input. This is not "
                           "allowed in strict mode.")
    hv = tuple(h if create_graph else h.detach() for h in hv)
    out = out if create_graph else out.detach()
    return out, (hv[0] if single else hv)


def vhp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), v^T H) for a function with a one-element output."""
    return _second_vjp(func, inputs, v, create_graph, strict)


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), H v) for a function with a one-element output; the Hessian of a twice
    differentiable function is symmetric, so this is v^T H."""
    return _second_vjp(func, inputs, v, create_graph, strict)


def jvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), J v): computed from the full Jacobian (reverse mode, row by row), so
    meant for small functions."""
    single, xs = _tensors(inputs, "inputs")
    out = func(*(x.detach() for x in xs))
    out_single, outs = _tensors(out, "outputs")
    jac = jacobian(func, inputs, create_graph=create_graph, strict=strict)
    vs = _vectors(v, xs)

    results = []
    rows = (jac,) if out_single else jac
    for o, row in zip(outs, rows):
        blocks = (row,) if single else row
        total = sum(b.reshape(o.numel(), -1) @ vv.reshape(-1) for b, vv in zip(blocks, vs))
        results.append(total.reshape(o.shape))
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
                        rows.append(outputs_of(args)[j].detach().cpu().numpy().astype(
                            np.float64))
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
                    analytical[:, m] = g.detach().cpu().numpy().reshape(-1)
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
    """gradcheck of the gradient: the vector-Jacobian product of ``func`` for
    ``grad_outputs`` (random when not given), as a function of the inputs and of
    ``grad_outputs``, is checked against central differences."""
    from fastconv.autograd import enable_grad, grad, no_grad
    from fastconv.tensor import Tensor

    _, items = _tensors(inputs, "inputs")
    with no_grad():
        outs = _tensors(func(*(x.detach() for x in items)), "outputs")[1]
    if grad_outputs is None:
        rng = np.random.default_rng()
        grad_outputs = tuple(Tensor(rng.standard_normal(tuple(o.shape)).astype(np.float32))
                             .to(o.device).requires_grad_(True) for o in outs)
    else:
        grad_outputs = _tensors(grad_outputs, "grad_outputs")[1]
    n = len(items)
    wanted = [i for i, x in enumerate(items) if x.requires_grad]

    def first_order(*args):
        with enable_grad():
            xs = [x if x.requires_grad or i not in wanted else x.detach().requires_grad_(True)
                  for i, x in enumerate(args[:n])]
            out = _tensors(func(*xs), "outputs")[1]
            return grad(out, [xs[i] for i in wanted], grad_outputs=list(args[n:]),
                        create_graph=True, allow_unused=True, materialize_grads=True)

    return gradcheck(first_order, tuple(items) + tuple(grad_outputs), **kwargs)


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
