"""F.embedding_bag / nn.EmbeddingBag and F.fractional_max_pool2d / nn.FractionalMaxPool2d
against torch: values, indices and gradients on fresh random inputs, with torch's random
samples handed to both for the fractional windows."""

from __future__ import annotations

import fastconv.nn.functional as F
import numpy as np
import pytest
from helpers import assert_close, randn

import fastconv as fc

torch = pytest.importorskip("torch")


def _backward_both(fc_out, t_out, rng):
    w = randn(rng, *fc_out.shape)
    (fc_out * fc.tensor(w)).sum().backward()
    (t_out * torch.tensor(w, dtype=t_out.dtype)).sum().backward()


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
@pytest.mark.parametrize("padding_idx", [None, 3])
@pytest.mark.parametrize("layout", ["offsets", "last offset", "2-D"])
def test_embedding_bag_matches_torch(mode, padding_idx, layout, rng):
    weight = randn(rng, 10, 4)
    if layout == "2-D":
        inp, offsets = rng.integers(0, 10, (3, 4)), None
    else:
        inp, offsets = rng.integers(0, 10, 9), np.array([0, 2, 2, 6])  # an empty bag
        if layout == "last offset":
            offsets = np.append(offsets, 9)
    inp.flat[0] = 3  # a padding entry when padding_idx is 3
    psw = randn(rng, *inp.shape) if mode == "sum" else None
    a, b = fc.tensor(weight, requires_grad=True), torch.tensor(weight, requires_grad=True)
    pa = None if psw is None else fc.tensor(psw, requires_grad=True)
    pb = None if psw is None else torch.tensor(psw, requires_grad=True)
    kw = dict(mode=mode, padding_idx=padding_idx, include_last_offset=layout == "last offset")
    got = F.embedding_bag(fc.tensor(inp), a, None if offsets is None else fc.tensor(offsets),
                          per_sample_weights=pa, **kw)
    want = torch.nn.functional.embedding_bag(
        torch.tensor(inp), b, None if offsets is None else torch.tensor(offsets),
        per_sample_weights=pb, **kw)
    assert_close(got, want.detach())
    _backward_both(got, want, rng)
    assert_close(a.grad, b.grad)
    if psw is not None:
        assert_close(pa.grad, pb.grad)


def test_embedding_bag_module_and_errors(rng):
    m = fc.nn.EmbeddingBag(10, 3, mode="sum", padding_idx=2)
    t = torch.nn.EmbeddingBag(10, 3, mode="sum", padding_idx=2)
    assert repr(m) == repr(t)
    assert np.all(m.weight.detach().numpy()[2] == 0)
    pre = fc.nn.EmbeddingBag.from_pretrained(fc.tensor(randn(rng, 5, 2)))
    assert not pre.weight.requires_grad
    idx = fc.tensor(np.array([1, 2, 4]))
    with pytest.raises(ValueError, match="offsets"):
        F.embedding_bag(idx, m.weight)
    with pytest.raises(ValueError, match="offsets\\[0\\]"):
        F.embedding_bag(idx, m.weight, fc.tensor(np.array([1, 2])))
    with pytest.raises(NotImplementedError, match="mode='sum'"):
        F.embedding_bag(idx, m.weight, fc.tensor(np.array([0])), mode="max",
                        per_sample_weights=fc.ones(3))
    with pytest.raises(ValueError, match="mode"):
        F.embedding_bag(idx, m.weight, fc.tensor(np.array([0])), mode="median")


@pytest.mark.parametrize("shape, kernel, out", [((2, 3, 11, 9), 2, (5, 4)),
                                                ((1, 2, 7, 7), 3, 3),
                                                ((2, 1, 10, 12), (2, 3), (6, 7)),
                                                ((3, 6, 6), 2, (1, 1))])
def test_fractional_max_pool2d_matches_torch(shape, kernel, out, rng):
    x = randn(rng, *shape)
    planes = (1,) + shape[:1] if len(shape) == 3 else shape[:2]
    samples = rng.random((*planes, 2)).astype(np.float32)  # (1, C, 2) for unbatched, as torch
    a, b = fc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    got, got_idx = F.fractional_max_pool2d(a, kernel, out, return_indices=True,
                                           _random_samples=fc.tensor(samples))
    want, want_idx = torch.nn.functional.fractional_max_pool2d(
        b, kernel, out, return_indices=True, _random_samples=torch.tensor(samples))
    np.testing.assert_array_equal(got.detach().numpy(), want.detach().numpy())
    np.testing.assert_array_equal(got_idx.numpy(), want_idx.numpy())
    _backward_both(got, want, rng)
    assert_close(a.grad, b.grad)


def test_fractional_max_pool2d_module_ratio_and_errors(rng):
    x = fc.tensor(randn(rng, 2, 3, 10, 10))
    m = fc.nn.FractionalMaxPool2d(3, output_ratio=0.5)
    y1, y2 = m(x), m(x)
    assert tuple(y1.shape) == (2, 3, 5, 5)
    assert not np.array_equal(y1.numpy(), y2.numpy())  # fresh windows on every call
    with pytest.raises(ValueError, match="output size"):
        fc.nn.FractionalMaxPool2d(2)
    with pytest.raises(RuntimeError, match="too large"):
        F.fractional_max_pool2d(x, 4, output_size=8)
    with pytest.raises(RuntimeError, match="_random_samples"):
        F.fractional_max_pool2d(x, 2, 4, _random_samples=fc.rand(1, 3, 2))
