"""``fastconv.func``: torch.func's function transforms on fastconv's autograd.

* ``functional_call(module, params, args)``: the module run with other tensors in place of
  its parameters and buffers (by their state_dict names), the module left as it was;
* ``grad`` / ``grad_and_value``: the gradient of a function with a one-element output with
  respect to some of its arguments (a tensor, or a dict / tuple / list of tensors);
* ``vjp``, ``jacrev`` / ``jacfwd`` (both reverse mode here), ``hessian``;
* ``vmap``: the function mapped over a dim of its arguments.

The transforms compose (``vmap(grad(loss))`` gives per-sample gradients, ``grad(grad(f))``
a second derivative): an argument that is already in a graph is differentiated with
``create_graph=True``, so an outer transform can differentiate the result again. ``vmap``
runs the function once per slice and stacks the results: the answers are torch's, the speed
is that of a Python loop.
"""

from __future__ import annotations

import contextlib

from fastconv import autograd
from fastconv.tensor import Tensor

__all__ = ["functional_call", "grad", "grad_and_value", "vjp", "jacrev", "jacfwd", "hessian",
           "vmap"]


# ----------------------------------------------------------------------------- functional_call

def _owner(module, name):
    """(submodule, attribute, table) of a dotted state_dict name."""
    *path, attr = name.split(".")
    for part in path:
        module = module._modules.get(part) if hasattr(module, "_modules") else None
        if module is None:
            raise KeyError(f"functional_call: no submodule {part!r} on the path of {name!r}")
    for table in (module._parameters, module._buffers):
        if attr in table:
            return module, attr, table
    raise KeyError(f"functional_call: {name!r} is neither a parameter nor a buffer of "
                   f"{type(module).__name__}")


@contextlib.contextmanager
def _swapped(module, tensors: dict, strict: bool):
    if strict:
        expected = set(dict(module.named_parameters())) | set(dict(module.named_buffers()))
        missing, unexpected = expected - set(tensors), set(tensors) - expected
        if missing or unexpected:
            raise RuntimeError(f"functional_call (strict): missing keys {sorted(missing)}, "
                               f"unexpected keys {sorted(unexpected)}")
    saved = []
    try:
        for name, value in tensors.items():
            if not isinstance(value, Tensor):
                raise TypeError(f"functional_call: {name!r} must be a Tensor, got "
                                f"{type(value).__name__}")
            owner, attr, table = _owner(module, name)
            saved.append((table, attr, table[attr]))
            table[attr] = value
        yield
    finally:
        for table, attr, value in reversed(saved):
            table[attr] = value


def functional_call(module, parameter_and_buffer_dicts, args=(), kwargs=None, *,
                    tie_weights: bool = True, strict: bool = False):
    """``module(*args, **kwargs)`` with the given tensors as its parameters and buffers
    (one dict, or a tuple of dicts merged in order); the module's own are restored after."""
    dicts = (parameter_and_buffer_dicts if isinstance(parameter_and_buffer_dicts, (tuple, list))
             else (parameter_and_buffer_dicts,))
    tensors = {}
    for d in dicts:
        for name, value in d.items():
            if name in tensors:
                raise ValueError(f"functional_call: {name!r} appears in more than one dict")
            tensors[name] = value
    args = args if isinstance(args, tuple) else (args,)
    with _swapped(module, tensors, strict):
        return module(*args, **(kwargs or {}))


# ----------------------------------------------------------------------------- grad and friends

def _leaves(tree):
    """The tensors of an argument: itself, or the values of a dict / items of a sequence."""
    if isinstance(tree, Tensor):
        return [tree]
    if isinstance(tree, dict):
        return list(tree.values())
    if isinstance(tree, (tuple, list)):
        return list(tree)
    raise TypeError(f"expected a Tensor or a dict / tuple / list of Tensors, got "
                    f"{type(tree).__name__}")


def _rebuild(tree, leaves):
    if isinstance(tree, Tensor):
        return leaves[0]
    if isinstance(tree, dict):
        return dict(zip(tree.keys(), leaves))
    return type(tree)(leaves)


def _track(tree):
    """A copy of the argument whose tensors take gradients: fresh leaves, or (for a tensor
    already in a graph, inside another transform) a copy that keeps that graph."""
    leaves = [t.clone() if t.requires_grad else t.detach().requires_grad_(True)
              for t in _leaves(tree)]
    return _rebuild(tree, leaves), leaves


def _argnums(argnums, n):
    single = isinstance(argnums, int)
    nums = (argnums,) if single else tuple(argnums)
    for a in nums:
        if not -n <= a < n:
            raise RuntimeError(f"Got argnums={argnums} but only {n} positional arguments")
    return single, tuple(a % n for a in nums)


#: How many grad transforms are running (each one's function is being evaluated).
_grad_depth = 0


def grad_and_value(func, argnums=0, has_aux: bool = False):
    """A function returning (gradient, value) of ``func`` (one-element output; with
    ``has_aux`` it returns (output, aux) and the value is that pair)."""
    def wrapper(*args, **kwargs):
        single, nums = _argnums(argnums, len(args))
        args = list(args)
        tracked = {}
        for a in nums:
            args[a], tracked[a] = _track(args[a])
        global _grad_depth
        _grad_depth += 1
        try:
            with autograd.enable_grad():
                result = func(*args, **kwargs)
        finally:
            _grad_depth -= 1
        # Inside another grad (which may differentiate this result, also through tensors the
        # function captured), or with an argument already in a graph: keep the graph.
        outer = _grad_depth > 0 or any(t._ctx is not None for a in nums for t in tracked[a])
        out, aux = result if has_aux else (result, None)
        if not isinstance(out, Tensor) or out.numel() != 1:
            raise RuntimeError("grad: the function must return a one-element Tensor, got "
                               f"{getattr(out, 'shape', type(out).__name__)}")
        inputs = [t for a in nums for t in tracked[a]]
        gs = autograd.grad(out, inputs, create_graph=outer, allow_unused=True,
                           materialize_grads=True)
        grads, i = [], 0
        for a in nums:
            k = len(tracked[a])
            grads.append(_rebuild(args[a], list(gs[i:i + k])))
            i += k
        g = grads[0] if single else tuple(grads)
        value = out if outer else out.detach()
        return g, ((value, aux) if has_aux else value)

    return wrapper


def grad(func, argnums=0, has_aux: bool = False):
    """The gradient of ``func`` (one-element output) with respect to the arguments
    ``argnums`` (torch.func.grad); with ``has_aux``, (gradient, aux)."""
    both = grad_and_value(func, argnums, has_aux)

    def wrapper(*args, **kwargs):
        g, value = both(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    return wrapper


def vjp(func, *primals, has_aux: bool = False):
    """(output, vjp_fn): ``vjp_fn(v)`` gives v^T J for each primal."""
    tracked = [_track(p) for p in primals]
    with autograd.enable_grad():
        result = func(*(t for t, _ in tracked))
    out, aux = result if has_aux else (result, None)
    inputs = [leaf for _, leaves in tracked for leaf in leaves]

    def vjp_fn(v):
        gs = autograd.grad(out, inputs, grad_outputs=v, retain_graph=True, allow_unused=True,
                           materialize_grads=True)
        res, i = [], 0
        for primal, (_, leaves) in zip(primals, tracked):
            res.append(_rebuild(primal, list(gs[i:i + len(leaves)])))
            i += len(leaves)
        return tuple(res)

    return (out.detach(), vjp_fn, aux) if has_aux else (out.detach(), vjp_fn)


def jacrev(func, argnums=0, has_aux: bool = False):
    """The Jacobian of ``func`` with respect to the tensor argument(s) ``argnums``:
    output.shape + input.shape (reverse mode, row by row)."""
    from fastconv import autograd_functional

    if has_aux:
        raise NotImplementedError("jacrev(has_aux=True) is not supported")

    def wrapper(*args):
        single, nums = _argnums(argnums, len(args))

        def of(*xs):
            full = list(args)
            for a, x in zip(nums, xs):
                full[a] = x
            return func(*full)

        inputs = tuple(args[a] for a in nums)
        jac = autograd_functional.jacobian(of, inputs,
                                           create_graph=any(x.requires_grad for x in inputs))
        return jac[0] if single and isinstance(jac, tuple) else jac

    return wrapper


jacfwd = jacrev  # the same Jacobian; computed in reverse mode here


def hessian(func, argnums=0):
    """The Hessian of a one-element ``func`` with respect to the tensor argument ``argnums``."""
    return jacrev(jacrev(func, argnums), argnums)


# ----------------------------------------------------------------------------- vmap

def vmap(func, in_dims=0, out_dims=0, randomness: str = "error", *, chunk_size=None):
    """``func`` mapped over dim ``in_dims`` of its arguments (an int for all, or one entry per
    positional argument, None for an argument passed whole), its results stacked along
    ``out_dims``. Dict / tuple / list arguments are mapped leaf by leaf. ``randomness`` is
    accepted for torch's signature: each slice draws its own random numbers ("different")."""
    if randomness not in ("error", "different", "same"):
        raise ValueError(f"vmap: randomness must be 'error', 'different' or 'same', got "
                         f"{randomness!r}")

    def wrapper(*args):
        dims = in_dims if isinstance(in_dims, (tuple, list)) else (in_dims,) * len(args)
        if len(dims) != len(args):
            raise ValueError(f"vmap: in_dims has {len(dims)} entries for {len(args)} "
                             "positional arguments")
        sizes = {t.shape[d] for a, d in zip(args, dims) if d is not None
                 for t in _leaves(a)}
        if not sizes:
            raise ValueError("vmap: at least one argument must be mapped (in_dims not all "
                             "None)")
        if len(sizes) != 1:
            raise ValueError(f"vmap: the mapped dims have different sizes {sorted(sizes)}")
        (n,) = sizes
        results = []
        for i in range(n):
            sliced = [a if d is None else _rebuild(a, [t.select(d, i) for t in _leaves(a)])
                      for a, d in zip(args, dims)]
            results.append(func(*sliced))
        return _stack(results, out_dims)

    return wrapper


def _stack(results, out_dims):
    from fastconv.toplevel import stack

    first = results[0]
    if isinstance(first, Tensor):
        return stack(results, out_dims if isinstance(out_dims, int) else out_dims[0])
    if isinstance(first, (tuple, list)):
        dims = out_dims if isinstance(out_dims, (tuple, list)) else (out_dims,) * len(first)
        return type(first)(_stack([r[k] for r in results], dims[k])
                           for k in range(len(first)))
    if isinstance(first, dict):
        return {k: _stack([r[k] for r in results], out_dims) for k in first}
    raise TypeError(f"vmap: the function must return Tensors (or tuples / lists / dicts of "
                    f"them), got {type(first).__name__}")
