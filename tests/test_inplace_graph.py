"""In-place changes inside a recorded graph, against torch: writes into slices and views of
non-leaf tensors, augmented assignment on an indexed entry, and consumers that read a tensor
before it was changed. Each case runs the same code on torch and on fastconv (the module is
the argument) from the same random values and compares the final values and the gradient."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close, randn

import fastconv as fc

torch = pytest.importorskip("torch")


def _slice_add(lib, a):
    b = a * 3
    b[:, 0] += 1
    return b


def _entry_rewritten_from_itself(lib, a):
    b = a * 2
    b[0] = b[0] * 10
    return b


def _masked_rewrite(lib, a):
    b = a * 2
    m = b > 0
    b[m] = b[m] * 0.5
    return b


def _column_through_sigmoid(lib, a):
    b = a * 2
    b[:, 0] = lib.sigmoid(b[:, 0])
    return b


def _consumer_before_mul_(lib, a):
    b = a * 1
    c = b + 0
    b.mul_(3)
    return c * b


def _zero_slice(lib, a):
    b = a * 2
    b[:2].zero_()
    return b * b


def _clamp_slice(lib, a):
    b = a * 2
    b[1:].clamp_(min=0)
    return b * b


def _row_view_mul_(lib, a):
    b = a * 2
    r = b[0]
    r.mul_(3)
    return b * r.sum()


def _view_of_view(lib, a):
    b = a * 2
    r = b[1]
    r[1:].add_(5)
    return b * b


def _view_after_base_changed(lib, a):
    b = a * 1
    v = b[1:]
    b.mul_(2)
    v.add_(1)
    return b * b


def _view_of_untracked_takes_a_gradient(lib, a):
    x = lib.zeros(a.shape)
    x[:, 1:].add_(a[:, 1:] * 2)
    return x * x


def _shifted_copy(lib, a):
    b = a * 2
    b[1:] = b[:-1] * 1
    return b


def _copy_into_column(lib, a):
    b = a + 1
    b[:, 2].copy_(a[:, 0] * 4)
    return b.exp()


CASES = [_slice_add, _entry_rewritten_from_itself, _masked_rewrite, _column_through_sigmoid,
         _consumer_before_mul_, _zero_slice, _clamp_slice, _row_view_mul_, _view_of_view,
         _view_after_base_changed, _view_of_untracked_takes_a_gradient, _shifted_copy,
         _copy_into_column]


@pytest.mark.parametrize("case", CASES, ids=lambda f: f.__name__.strip("_"))
def test_inplace_in_a_graph_matches_torch(case, rng):
    a = randn(rng, 4, 3)
    g = randn(rng, 4, 3)
    results = []
    for lib in (torch, fc):
        x = lib.tensor(a, requires_grad=True)
        out = case(lib, x)
        out.backward(lib.tensor(g))
        results.append((out.detach().numpy(), x.grad.numpy()))
    (want_out, want_grad), (got_out, got_grad) = results
    assert_close(got_out, want_out, rtol=1e-5, atol=1e-6, name="value")
    assert_close(got_grad, want_grad, rtol=1e-5, atol=1e-6, name="gradient")


def test_inplace_on_a_view_of_a_leaf_is_refused_as_torch():
    a = fc.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="a view of a leaf Variable"):
        a[:2].zero_()
    with pytest.raises(RuntimeError, match="a view of a leaf Variable"):
        a[1:][0].add_(1)
    with fc.no_grad():  # allowed without a graph, and written into the leaf
        a[:2].zero_()
    assert a.detach().numpy()[:2].tolist() == [0.0, 0.0]


def test_inplace_on_a_view_without_a_graph_writes_the_base(rng):
    x = fc.tensor(randn(rng, 3, 4))
    want = x.numpy().copy()
    x[1].mul_(2)
    x[:, 0][2:].fill_(7)
    x[0][1] += 1  # an integer index of a row: a scalar view
    want[1] *= 2
    want[2:, 0] = 7
    want[0, 1] += 1
    assert_close(x.numpy(), want, rtol=0, atol=0)


def test_counting_correct_predictions_in_a_tensor(rng):
    """The evaluation loop's habit: ``correct += (pred == y).sum()`` starting from 0, and an
    augmented assignment to one entry."""
    correct = 0
    want = 0
    for _ in range(3):
        pred, y = rng.integers(0, 4, size=20), rng.integers(0, 4, size=20)
        correct += (fc.tensor(pred) == fc.tensor(y)).sum()
        want += int((pred == y).sum())
    assert correct.item() == want and correct.dtype == np.int64
    x = fc.tensor(randn(rng, 2, 3))
    before = x.numpy().copy()
    x[1, 2] += 1
    before[1, 2] += 1
    assert_close(x.numpy(), before, rtol=0, atol=0)


# the activations' inplace=True: (name, arguments after the input), as torch spells them
INPLACE_ACTIVATIONS = [("relu", ()), ("leaky_relu", (0.2,)), ("elu", (0.7,)), ("silu", ()),
                       ("hardtanh", (-0.5, 0.5)), ("relu6", ()), ("hardsigmoid", ()),
                       ("hardswish", ()), ("mish", ()), ("selu", ()), ("celu", (1.3,)),
                       ("threshold", (0.1, -2.0)), ("rrelu", (0.1, 0.3, False))]


@pytest.mark.parametrize("name,args", INPLACE_ACTIVATIONS, ids=[n for n, _ in INPLACE_ACTIVATIONS])
def test_functional_inplace_writes_the_input_as_torch(name, args, rng):
    """``F.<act>(x, inplace=True)`` changes x and returns it; after a convolution (in a graph)
    the weight gradient is torch's; on a leaf that requires grad it is refused."""
    import torch.nn.functional as TF

    import fastconv.functional as F

    x, w = randn(rng, 2, 3, 6, 6), randn(rng, 4, 3, 3, 3)
    results = []
    for lib, functional in ((torch, TF), (fc, F)):
        plain = lib.tensor(x)
        assert getattr(functional, name)(plain, *args, inplace=True) is plain
        weight = lib.tensor(w, requires_grad=True)
        y = functional.conv2d(lib.tensor(x), weight)
        version = y._version
        assert getattr(functional, name)(y, *args, inplace=True) is y
        assert y._version > version
        (y * y).sum().backward()
        results.append((plain.numpy(), y.detach().numpy(), weight.grad.numpy()))
        with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
            getattr(functional, name)(lib.tensor(x, requires_grad=True), *args, inplace=True)
    # the weight gradient sums 2 x 6 x 6... products per entry: its rounding is relative to the
    # size of the gradient, not of one entry (seed 4242, mish: one entry of 0.1026 off by 2e-5)
    for want, got, what in zip(results[0], results[1], ("input", "graph value", "gradient")):
        scale = max(1.0, float(np.abs(want).max())) if what == "gradient" else 1.0
        assert_close(got, want, rtol=1e-4, atol=1e-5 * scale, name=what)


def test_inplace_modules_train_as_torch(rng):
    """A network written with torch's ``inplace=True`` layers: the same loss and gradients."""
    import fastconv.nn as nn

    x, w1, w2 = randn(rng, 4, 3, 8, 8), randn(rng, 6, 3, 3, 3), randn(rng, 5, 6, 3, 3)
    grads = []
    for lib, layers in ((torch, torch.nn), (fc, nn)):
        net = layers.Sequential(layers.Conv2d(3, 6, 3, bias=False), layers.ReLU(inplace=True),
                                layers.Conv2d(6, 5, 3, bias=False),
                                layers.Hardtanh(-0.5, 0.5, inplace=True),
                                layers.Dropout(0.0, inplace=True))
        with lib.no_grad():
            net[0].weight.copy_(lib.tensor(w1))
            net[2].weight.copy_(lib.tensor(w2))
        loss = (net(lib.tensor(x)) ** 2).mean()
        loss.backward()
        grads.append([loss.item(), net[0].weight.grad.numpy(), net[2].weight.grad.numpy()])
    assert grads[1][0] == pytest.approx(grads[0][0], rel=1e-5)
    for want, got in zip(grads[0][1:], grads[1][1:]):
        assert_close(got, want, rtol=1e-4, atol=1e-6, name="weight gradient")
