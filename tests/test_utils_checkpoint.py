"""fastconv.utils.checkpoint (activation recomputation): the same outputs and gradients as
the plain graph and as torch's checkpoint, dropout masks reproduced, parameters trained when
no input needs a gradient, only the arguments kept, and in-place changes caught."""

from __future__ import annotations

import numpy as np
import pytest

import fastconv as fc
from fastconv.utils.checkpoint import checkpoint, checkpoint_sequential

torch = pytest.importorskip("torch")


def _block(lib, dropout=0.0):
    nn = lib.nn
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Dropout(dropout),
                         nn.Conv2d(4, 5, 3), nn.Tanh(), nn.Flatten(), nn.Linear(5 * 4 * 4, 3))


def _grads(model):
    return {k: p.grad.numpy().copy() for k, p in model.named_parameters()}


def test_matches_the_plain_graph_with_dropout(rng):
    model = _block(fc, dropout=0.4)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    fc.manual_seed(11)
    xa = fc.tensor(x, requires_grad=True)
    plain = model(xa)
    plain.square().sum().backward()
    want, want_x = _grads(model), xa.grad.numpy().copy()
    model.zero_grad()
    fc.manual_seed(11)
    xb = fc.tensor(x, requires_grad=True)
    y = checkpoint(model, xb, use_reentrant=False)
    fc.rand(5)  # random draws between forward and backward: the recomputation is unaffected
    y.square().sum().backward()
    np.testing.assert_array_equal(y.detach().numpy(), plain.detach().numpy())
    np.testing.assert_array_equal(xb.grad.numpy(), want_x)
    for k, g in _grads(model).items():
        np.testing.assert_array_equal(g, want[k], err_msg=k)


def test_matches_torch_checkpoint_and_trains_a_first_block(rng):
    fm, tm = _block(fc), _block(torch)
    tm.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in fm.state_dict().items()})
    x = rng.standard_normal((3, 3, 6, 6)).astype(np.float32)
    # the input needs no gradient: the parameters inside still get theirs
    fy = checkpoint(fm, fc.tensor(x), use_reentrant=False)
    ty = torch.utils.checkpoint.checkpoint(tm, torch.tensor(x), use_reentrant=False)
    (fy * fy).sum().backward()
    (ty * ty).sum().backward()
    for k, p in tm.named_parameters():
        np.testing.assert_allclose(dict(fm.named_parameters())[k].grad.numpy(),
                                   p.grad.numpy(), rtol=1e-4, atol=1e-5, err_msg=k)


def test_only_the_arguments_are_kept(rng):
    model = _block(fc)
    x = fc.tensor(rng.standard_normal((2, 3, 6, 6)).astype(np.float32), requires_grad=True)
    y = checkpoint(model, x, use_reentrant=False)
    node = y._ctx
    tensors = [p for p in node.parents if isinstance(p, fc.Tensor)]
    assert len(tensors) == 2 and tensors[1] is x  # the anchor and x: no activations
    assert len(node.saved) == 1 and node.saved[0] is x.data


def test_sequential_nested_and_no_grad(rng):
    model = _block(fc)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    xa = fc.tensor(x, requires_grad=True)
    model(xa).sum().backward()
    want = _grads(model)
    for segments in (1, 2, 3, 7, 20):
        model.zero_grad()
        xb = fc.tensor(x, requires_grad=True)
        checkpoint_sequential(model, segments, xb, use_reentrant=False).sum().backward()
        np.testing.assert_allclose(xb.grad.numpy(), xa.grad.numpy(), rtol=1e-6, atol=1e-7)
        for k, g in _grads(model).items():
            np.testing.assert_allclose(g, want[k], rtol=1e-6, atol=1e-7, err_msg=k)
    model.zero_grad()
    inner = lambda t: checkpoint(model[:2], t, use_reentrant=False)  # noqa: E731
    outer = checkpoint(lambda t: model[2:](inner(t)), fc.tensor(x), use_reentrant=False)
    outer.sum().backward()
    for k, g in _grads(model).items():
        np.testing.assert_allclose(g, want[k], rtol=1e-6, atol=1e-7, err_msg=k)
    with fc.no_grad():
        assert not checkpoint(model, fc.tensor(x)).requires_grad
    with pytest.raises(ValueError, match="segments"):
        checkpoint_sequential(model, 0, fc.tensor(x))
    with pytest.raises(TypeError, match="callable"):
        checkpoint(3, fc.tensor(x))


def test_an_argument_changed_in_place_is_an_error(rng):
    model = _block(fc)
    leaf = fc.tensor(rng.standard_normal((2, 3, 6, 6)).astype(np.float32), requires_grad=True)
    x = leaf * 1
    y = checkpoint(model, x, use_reentrant=False)
    x.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_tuple_and_dict_outputs_match_torch(rng):
    """A block returning several Tensors (features and logits, a dict of heads) is checkpointed
    as torch's: each output carries its gradient back to the inputs and parameters."""
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    g1 = rng.standard_normal((2, 3)).astype(np.float32)
    sd = {k: v.numpy() for k, v in _block(torch).state_dict().items()}
    results = []
    for lib in (fc, torch):
        model = _block(lib)
        model.load_state_dict({k: lib.tensor(v) for k, v in sd.items()})
        xt = lib.tensor(x, requires_grad=True)

        def pair(a, model=model):
            h = model[1](model[0](a))
            return h, model[6](model[5](model[4](model[3](h))))

        h, y = checkpoint(pair, xt, use_reentrant=False) if lib is fc else \
            torch.utils.checkpoint.checkpoint(pair, xt, use_reentrant=False)
        out = (lib.tensor(g1) * y).sum() + h.square().mean()
        d = (checkpoint if lib is fc else torch.utils.checkpoint.checkpoint)(
            lambda a: {"double": a * 2, "label": 7, "idx": a.flatten(1).argmax(1)}, xt,
            use_reentrant=False)
        assert d["label"] == 7 and not d["idx"].requires_grad
        (out + d["double"].sum()).backward()
        results.append((y.detach().numpy(), h.detach().numpy(), xt.grad.numpy(),
                        {k: p.grad.numpy() for k, p in model.named_parameters()},
                        d["idx"].numpy()))
    ours, theirs = results
    for a, b in zip(ours[:3], theirs[:3]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    for k in theirs[3]:
        np.testing.assert_allclose(ours[3][k], theirs[3][k], rtol=1e-4, atol=1e-5, err_msg=k)
    np.testing.assert_array_equal(ours[4], theirs[4])
