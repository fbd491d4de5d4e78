"""torch.autograd's functions on fastconv's graph: ``autograd.grad``, ``autograd.backward``,
``Tensor.backward(inputs=...)`` and custom ``autograd.Function`` ops, each against torch on the
same random inputs (float32 on both sides), with torch's errors for misuse."""

from __future__ import annotations

import fastconv.nn.functional as F
import numpy as np
import pytest

import fastconv as fc

torch = pytest.importorskip("torch")


def _pair(rng, *shape):
    a = rng.standard_normal(shape).astype(np.float32)
    return fc.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


def _close(a, b, rtol=1e-5, atol=1e-5):
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=rtol, atol=atol)


def _net(lib, F_, x, w, b, v):
    """A conv, a ReLU, a pooled linear map: h (an intermediate) and the scalar loss."""
    h = F_.relu(F_.conv2d(x, w, b, padding=1))
    z = h.mean(dim=(2, 3)) @ v
    return h, (z * z).sum()


def test_grad_of_leaves_and_an_intermediate_matches_torch(rng):
    fx, tx = _pair(rng, 2, 3, 6, 6)
    fw, tw = _pair(rng, 4, 3, 3, 3)
    fb, tb = _pair(rng, 4)
    fv, tv = _pair(rng, 4, 5)
    fh, floss = _net(fc, F, fx, fw, fb, fv)
    th, tloss = _net(torch, torch.nn.functional, tx, tw, tb, tv)
    fg = fc.autograd.grad(floss, [fw, fh, fx], retain_graph=True)
    tg = torch.autograd.grad(tloss, [tw, th, tx], retain_graph=True)
    assert isinstance(fg, tuple) and len(fg) == 3
    for a, b in zip(fg, tg):
        assert not a.requires_grad
        _close(a, b, rtol=1e-4, atol=1e-5)
    assert all(p.grad is None for p in (fx, fw, fb, fv))  # grad() accumulates nothing
    # the graph was kept: a backward over it now fills .grad, as torch's
    floss.backward()
    tloss.backward()
    _close(fw.grad, tw.grad, rtol=1e-4, atol=1e-5)


def test_grad_outputs_for_a_non_scalar_output_and_several_outputs(rng):
    fx, tx = _pair(rng, 3, 4)
    fy, ty = fx.tanh() * 2, tx.tanh() * 2
    seed = rng.standard_normal((3, 4)).astype(np.float32)
    (a,) = fc.autograd.grad(fy, fx, grad_outputs=fc.tensor(seed))
    (b,) = torch.autograd.grad(ty, tx, grad_outputs=torch.tensor(seed))
    _close(a, b)
    with pytest.raises(RuntimeError, match="only for scalar outputs"):
        fc.autograd.grad(fx.tanh(), fx)
    with pytest.raises(RuntimeError, match="shape"):
        fc.autograd.grad(fx.tanh(), fx, grad_outputs=fc.ones(4, 3))
    # two outputs: their gradients add up
    (a,) = fc.autograd.grad([(fx * fx).sum(), fx.sin().sum()], [fx])
    (b,) = torch.autograd.grad([(tx * tx).sum(), tx.sin().sum()], [tx])
    _close(a, b)


def test_unused_inputs_and_the_freed_graph(rng):
    fx, _ = _pair(rng, 3)
    fu, _ = _pair(rng, 2)
    loss = (fx * 3).sum()
    with pytest.raises(RuntimeError, match="allow_unused=True"):
        fc.autograd.grad(loss, [fx, fu], retain_graph=True)
    gx, gu = fc.autograd.grad(loss, [fx, fu], allow_unused=True, retain_graph=True)
    assert gu is None and np.array_equal(gx.numpy(), np.full(3, 3, np.float32))
    gx, gu = fc.autograd.grad(loss, [fx, fu], materialize_grads=True)
    assert np.array_equal(gu.numpy(), np.zeros(2, np.float32))
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        fc.autograd.grad(loss, fx)  # freed by the call before, as torch does
    with pytest.raises(RuntimeError, match="does not require grad"):
        fc.autograd.grad((fx * 2).sum(), fc.ones(3))
    (g,) = fc.autograd.grad((fx * fx).sum(), fx, create_graph=True)
    assert g.requires_grad  # in a graph of its own: tests/test_double_backward.py
    with pytest.raises(TypeError, match="inputs\\[0\\] must be a Tensor"):
        fc.autograd.grad((fx * 2).sum(), [np.ones(3)])


def test_a_gradient_penalty_style_hook_sees_the_input_gradient(rng):
    fx, tx = _pair(rng, 5)
    seen = []
    fx.register_hook(lambda g: seen.append(g.numpy().copy()) or g * 2)
    tx.register_hook(lambda g: g * 2)
    (a,) = fc.autograd.grad((fx ** 3).sum(), fx)
    (b,) = torch.autograd.grad((tx ** 3).sum(), tx)
    _close(a, b)
    np.testing.assert_allclose(seen[0], 3 * fx.detach().numpy() ** 2, rtol=1e-6)


def test_backward_to_chosen_inputs_and_autograd_backward(rng):
    fx, tx = _pair(rng, 2, 3, 5, 5)
    fw, tw = _pair(rng, 2, 3, 3, 3)
    floss = F.conv2d(fx, fw).square().sum()
    tloss = torch.nn.functional.conv2d(tx, tw).square().sum()
    floss.backward(inputs=[fw])
    tloss.backward(inputs=[tw])
    assert fx.grad is None and tx.grad is None
    _close(fw.grad, tw.grad, rtol=1e-4, atol=1e-4)
    # autograd.backward over two outputs with their incoming gradients
    fa, ta = _pair(rng, 4)
    outs_f, outs_t = [fa * 2, fa.exp()], [ta * 2, ta.exp()]
    seeds = [rng.standard_normal(4).astype(np.float32) for _ in range(2)]
    fc.autograd.backward(outs_f, [fc.tensor(s) for s in seeds])
    torch.autograd.backward(outs_t, [torch.tensor(s) for s in seeds])
    _close(fa.grad, ta.grad)
    with pytest.raises(RuntimeError, match="2 outputs"):
        fc.autograd.backward([fa * 2, fa * 3], [fc.ones(4)])


def _scaled_leaky(lib):
    """The same custom op written for torch or fastconv (``lib``)."""

    class ScaledLeaky(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x, w, slope):
            ctx.save_for_backward(x, w)
            ctx.slope = slope
            y = x * w
            return lib.where(y > 0, y, y * slope)

        @staticmethod
        def backward(ctx, dy):
            x, w = ctx.saved_tensors
            y = x * w
            d = lib.where(y > 0, dy, dy * ctx.slope)
            return (d * w if ctx.needs_input_grad[0] else None,
                    (d * x).sum(0) if ctx.needs_input_grad[1] else None, None)

    return ScaledLeaky


def test_custom_function_matches_torch_in_a_graph(rng):
    fx, tx = _pair(rng, 6, 4)
    fw, tw = _pair(rng, 4)
    fy = _scaled_leaky(fc).apply(fx.tanh(), fw, 0.1)
    ty = _scaled_leaky(torch).apply(tx.tanh(), tw, 0.1)
    _close(fy, ty)
    assert fy.requires_grad
    (fy * fy).sum().backward()
    (ty * ty).sum().backward()
    _close(fx.grad, tx.grad)
    _close(fw.grad, tw.grad)
    with fc.no_grad():
        assert not _scaled_leaky(fc).apply(fx, fw, 0.1).requires_grad


def test_custom_function_newer_style_and_non_differentiable_output(rng):
    class Cube(fc.autograd.Function):
        @staticmethod
        def forward(x):
            return x ** 3

        @staticmethod
        def setup_context(ctx, inputs, output):
            (x,) = inputs
            ctx.save_for_backward(x)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 3 * x * x

    class Sign(fc.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            y = x.sign()
            ctx.mark_non_differentiable(y)
            return y

    fx, tx = _pair(rng, 5)
    Cube.apply(fx).sum().backward()
    (tx ** 3).sum().backward()
    _close(fx.grad, tx.grad)
    assert not Sign.apply(fx).requires_grad


def test_custom_function_misuse_is_reported(rng):
    fx, _ = _pair(rng, 3)

    class TooFew(fc.autograd.Function):
        @staticmethod
        def forward(ctx, x, y):
            return x * y

        @staticmethod
        def backward(ctx, g):
            return g

    class WrongShape(fc.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g.sum()

    class TwoOutputs(fc.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x, x * 2

    class SavesInput(fc.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2

    with pytest.raises(RuntimeError, match="incorrect number of gradients"):
        TooFew.apply(fx, fx).sum().backward()
    with pytest.raises(RuntimeError, match="invalid gradient at index 0"):
        WrongShape.apply(fx).sum().backward()
    with pytest.raises(NotImplementedError, match="2 outputs"):
        TwoOutputs.apply(fx)
    with pytest.raises(TypeError, match="save_for_backward"):
        class SavesArray(fc.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(np.ones(3))
                return x

        SavesArray.apply(fx)
    leaf = fc.tensor(rng.standard_normal(3).astype(np.float32), requires_grad=True)
    x = leaf * 1
    y = SavesInput.apply(x)
    x.add_(1)  # changes a tensor backward needs, as torch refuses too
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_a_zero_dim_parameter_accumulates_over_backward_passes():
    """A 0-d gradient may come back from an op as a NumPy scalar; .grad must still be an
    array that the next backward adds into."""
    p = fc.nn.Parameter(fc.tensor(2.0))
    t = torch.nn.Parameter(torch.tensor(2.0))
    for _ in range(3):
        (p * 3 + p.square()).sum().backward()
        (t * 3 + t.square()).sum().backward()
    assert p.grad.shape == () and float(p.grad.item()) == float(t.grad.item()) == 21.0
