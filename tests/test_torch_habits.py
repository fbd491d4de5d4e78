"""Everyday PyTorch habits that are not ops: NumPy's argument names, factory keywords,
in-place shape changes, the in-place functional activations, hook options, lazy layers,
init's private fan helpers and tensor introspection. Each is checked against what torch does
with the same call."""

from __future__ import annotations

import math

import fastconv.nn.functional as F
import numpy as np
import pytest
from helpers import assert_close, check_vs_torch, randn

import fastconv as fc
from fastconv import nn

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("name", ["sum", "mean", "amax", "amin", "std", "var", "prod",
                                  "logsumexp", "argmax"])
def test_axis_and_keepdims_are_numpy_names_for_dim_and_keepdim(name, rng):
    x = randn(rng, 3, 4, 5)
    args = ()
    got = getattr(fc.tensor(x), name)(*args, axis=1, keepdims=True)
    want = getattr(torch.tensor(x), name)(*args, axis=1, keepdims=True)
    assert_close(got, want, rtol=1e-5, atol=1e-6)
    got = getattr(fc, name)(fc.tensor(x), *args, axis=-1)
    want = getattr(torch, name)(torch.tensor(x), *args, axis=-1)
    assert_close(got, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="alias"):
        getattr(fc.tensor(x), name)(*args, dim=1, axis=1)


def test_cat_and_stack_take_axis(rng):
    a, b = randn(rng, 2, 3), randn(rng, 2, 3)
    assert_close(fc.cat([fc.tensor(a), fc.tensor(b)], axis=1),
                 torch.cat([torch.tensor(a), torch.tensor(b)], axis=1))
    assert_close(fc.stack([fc.tensor(a), fc.tensor(b)], axis=2),
                 torch.stack([torch.tensor(a), torch.tensor(b)], axis=2))


@pytest.mark.parametrize("factory", ["zeros", "ones", "empty", "rand", "randn"])
def test_factories_take_size_and_torch_options(factory):
    t = getattr(fc, factory)(size=(2, 3), layout=fc.strided, pin_memory=False)
    assert tuple(t.shape) == tuple(getattr(torch, factory)(size=(2, 3)).shape)
    assert tuple(getattr(fc, factory)([4]).shape) == (4,)
    with pytest.raises(TypeError, match="both"):
        getattr(fc, factory)(2, size=(2,))
    with pytest.raises(TypeError, match="unexpected keyword"):
        getattr(fc, factory)(2, colour="red")
    like = getattr(fc, "zeros_like")(t, memory_format=fc.preserve_format)
    assert like.shape == t.shape


def test_in_place_shape_changes_keep_the_graph(rng):
    x = randn(rng, 3, 4)
    w = randn(rng, 4, 1, 3)

    def fc_fn(t):
        y = t * 2
        y.t_()
        y.unsqueeze_(1)
        return y * fc.tensor(w)

    def torch_fn(t):
        y = t * 2
        y.t_()
        y.unsqueeze_(1)
        return y * torch.tensor(w, dtype=t.dtype)

    check_vs_torch(fc_fn, torch_fn, [x], rng=rng, name="t_ then unsqueeze_")
    y = fc.tensor(randn(rng, 1, 3, 1))
    assert tuple(y.squeeze_().shape) == (3,)
    assert tuple(fc.tensor(x).transpose_(0, 1).shape) == (4, 3)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        fc.tensor(x, requires_grad=True).unsqueeze_(0)


def test_resize_keeps_the_leading_elements(rng):
    x = randn(rng, 2, 3)
    t = fc.tensor(x.copy())
    t.resize_(3, 2)
    np.testing.assert_array_equal(t.numpy(), x.reshape(3, 2))
    t.resize_(2)
    np.testing.assert_array_equal(t.numpy(), x.reshape(-1)[:2])
    with pytest.raises(RuntimeError, match="require grad"):
        fc.tensor(x, requires_grad=True).resize_(6)


@pytest.mark.parametrize("name, args", [("relu_", ()), ("elu_", (0.5,)),
                                        ("leaky_relu_", (0.2,)), ("hardtanh_", (-0.5, 0.5)),
                                        ("threshold_", (0.1, -2.0)), ("selu_", ()),
                                        ("celu_", (1.5,))])
def test_in_place_functional_activations(name, args, rng):
    x = randn(rng, 3, 4)

    def run(mod, t):
        y = t * 1
        out = getattr(mod, name)(y, *args)
        assert out is y
        return y

    check_vs_torch(lambda t: run(F, t), lambda t: run(torch.nn.functional, t), [x], rng=rng,
                   name=name)


def test_forward_hooks_with_kwargs_prepend_and_always_call(rng):
    m = nn.Linear(3, 2)
    order = []

    def pre(mod, args, kwargs):
        order.append("pre")
        return (args[0] * 2,), kwargs

    m.register_forward_pre_hook(pre, with_kwargs=True)
    m.register_forward_hook(lambda mod, a, out: order.append("second"))
    m.register_forward_hook(lambda mod, a, kw, out: order.append("first") or out + 1,
                            with_kwargs=True, prepend=True)
    x = randn(rng, 1, 3)
    got = m(fc.tensor(x))
    want = fc.tensor(x * 2) @ m.weight.t() + m.bias + 1
    assert_close(got, want)
    assert order == ["pre", "first", "second"]

    class Fails(nn.Module):
        def forward(self, x):
            raise ValueError("boom")

    seen = []
    f = Fails()
    f.register_forward_hook(lambda mod, a, out: seen.append(out), always_call=True)
    with pytest.raises(ValueError, match="boom"):
        f(fc.tensor(x))
    assert seen == [None]


def test_lazy_layers_infer_their_size_and_train(rng):
    torch_model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1),
                                      torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                      torch.nn.Flatten(), torch.nn.Linear(4 * 5 * 5, 6))
    model = nn.Sequential(nn.LazyConv2d(4, 3, padding=1), nn.LazyBatchNorm2d(), nn.ReLU(),
                          nn.Flatten(), nn.LazyLinear(6))
    opt = fc.optim.SGD(model.parameters(), lr=0.1)  # made before the sizes are known
    placeholders = list(model.parameters())
    x = randn(rng, 2, 3, 5, 5)
    model(fc.tensor(x))
    assert [type(m).__name__ for m in model] == ["Conv2d", "BatchNorm2d", "ReLU", "Flatten",
                                                 "Linear"]
    assert all(p is q for p, q in zip(placeholders, model.parameters()))
    model.load_state_dict({k: v.detach().numpy() for k, v in torch_model.state_dict().items()})
    before = model[4].weight.detach().numpy().copy()
    out = model(fc.tensor(x))
    assert_close(out, torch_model(torch.tensor(x)), rtol=1e-4, atol=1e-5)
    out.sum().backward()
    opt.step()
    assert not np.allclose(model[4].weight.detach().numpy(), before)
    assert repr(model[4]) == repr(torch_model[4])


def test_init_fan_helpers_match_torch():
    for shape in [(3, 4), (8, 3, 5, 5), (6, 2, 3)]:
        t = fc.empty(*shape)
        want = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
        assert nn.init._calculate_fan_in_and_fan_out(t) == want
        for mode in ("fan_in", "fan_out"):
            assert nn.init._calculate_correct_fan(t, mode) == \
                torch.nn.init._calculate_correct_fan(torch.empty(shape), mode)


def test_tensor_introspection(rng):
    a = randn(rng, 2, 3)
    t, tt = fc.from_numpy(a), torch.from_numpy(a)
    assert t.data_ptr() == a.__array_interface__["data"][0] == tt.data_ptr()
    assert (t.nbytes, t.itemsize, t.get_device()) == (tt.nbytes, tt.itemsize, tt.get_device())
    m = nn.Linear(2, 2)
    assert m.share_memory() is m
    m.load_state_dict(nn.Linear(2, 2).state_dict(), assign=True)


@pytest.mark.parametrize("call", [
    lambda m, t: t.sort(), lambda m, t: t.sort(0, descending=True), lambda m, t: t.argsort(),
    lambda m, t: t.topk(1), lambda m, t: t.logsumexp(0), lambda m, t: m.msort(t.reshape(1)),
    lambda m, t: t.reshape(1).msort(), lambda m, t: t.sum(-1), lambda m, t: t.flatten(),
    lambda m, t: t.mean(0, keepdim=True), lambda m, t: t.amax(-1), lambda m, t: t.prod(0),
    lambda m, t: t.max(0), lambda m, t: t.min(-1), lambda m, t: t.median(0),
    lambda m, t: t.quantile(0.5, 0), lambda m, t: t.flip(0), lambda m, t: t.norm(2, 0),
    lambda m, t: t.var(0, correction=0),
])
def test_zero_dim_tensors_take_dim_0_and_minus_1(call, rng):
    """A 0-d tensor takes dim 0 or -1 as torch's (sort, topk, logsumexp, ...)."""
    x = np.float32(rng.standard_normal())
    got, want = call(fc, fc.tensor(x)), call(torch, torch.tensor(x))
    for g, w in zip(got if isinstance(got, tuple) else (got,),
                    want if isinstance(want, tuple) else (want,)):
        assert tuple(g.shape) == tuple(w.shape)
        assert_close(g, w)


def test_empty_tensors_as_torch(rng):
    for shape, dim in (((0, 5), 1), ((3, 0), 1), ((0, 5), 0)):
        for name in ("softmax", "log_softmax"):
            assert getattr(F, name)(fc.zeros(*shape), dim).shape == shape
    assert np.isnan(float(fc.zeros(0, 3).median()))
    x = randn(rng, 0, 3, 2)
    assert fc.tensor(x).flatten(1).shape == torch.tensor(x).flatten(1).shape == (0, 6)
    with pytest.raises(RuntimeError, match="start_dim cannot come after end_dim"):
        fc.tensor(randn(rng, 2, 3, 4)).flatten(2, 1)
    with pytest.raises(IndexError, match="out of range"):
        fc.tensor(randn(rng, 2, 3, 4)).flatten(5)


def test_masked_scatter(rng):
    x, src = randn(rng, 3, 4), randn(rng, 12)
    mask = rng.random((1, 4)) > 0.4  # broadcast over the rows
    check_vs_torch(lambda a, s: a.masked_scatter(fc.tensor(mask), s),
                   lambda a, s: a.masked_scatter(torch.tensor(mask), s), [x, src], rng=rng,
                   name="masked_scatter")
    t = fc.tensor(x)
    t.masked_scatter_(fc.tensor(mask), fc.tensor(src))
    assert_close(t, torch.tensor(x).masked_scatter_(torch.tensor(mask), torch.tensor(src)))
    with pytest.raises(RuntimeError, match="selects .* elements but source has only 1"):
        fc.tensor(x).masked_scatter(fc.ones(3, 4, dtype=fc.bool), fc.ones(1))
    with pytest.raises(RuntimeError, match="boolean"):
        fc.tensor(x).masked_scatter(fc.ones(3, 4), fc.ones(12))


def test_constructor_arguments_checked_as_torch(rng):
    with pytest.raises(ValueError, match="non-leaf"):
        fc.optim.SGD([fc.tensor(randn(rng, 3), requires_grad=True) * 2], lr=0.1)
    for cls in (nn.Dropout, nn.Dropout2d, nn.AlphaDropout):
        for p in (1.5, -0.1):
            with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
                cls(p)
        assert cls(1).p == 1 and cls(0.0).p == 0.0


_MORE_NAMES = {
    "broadcast_to": lambda m, x, y: x[:1].broadcast_to((3, 4)),
    "where": lambda m, x, y: x.where(x > 0, y),
    "addmm": lambda m, x, y: x[:, :3].addmm(y, y.t()[:, :3], beta=0.5, alpha=2.0),
    "baddbmm": lambda m, x, y: x[None, :, :3].baddbmm(y[None], y.t()[None, :, :3], alpha=0.5),
    "addbmm": lambda m, x, y: x[:, :3].addbmm(m.stack([y, y * 2]),
                                              m.stack([y.t()[:, :3], y.t()[:, :3]])),
    "vdot": lambda m, x, y: x[0].vdot(y[0]),
    "unfold": lambda m, x, y: x.unfold(1, 2, 1) * 2,
    "unfold step": lambda m, x, y: x.unfold(0, 2, 2).sin(),
    "diagflat": lambda m, x, y: x[:2, :2].diagflat(1),
    "nanmedian": lambda m, x, y: m.where(x > 1, m.tensor(float("nan")), x).nanmedian(1)[0],
    "nanmedian all": lambda m, x, y: m.where(x > 1, m.tensor(float("nan")), x).nanmedian(),
    "split_with_sizes": lambda m, x, y: x.split_with_sizes([1, 3], 1)[1],
    "sum_to_size": lambda m, x, y: x.sum_to_size(1, 4),
    "hardshrink": lambda m, x, y: x.hardshrink(0.3),
    "mH": lambda m, x, y: x.mH * 1.0,
    "adjoint": lambda m, x, y: x.adjoint() * 1.0,
    "H": lambda m, x, y: x.H * 1.0,
    "conj": lambda m, x, y: x.conj().resolve_conj().positive() * 1.0,
    "eq_": lambda m, x, y: x.clone().gt_(y),
    "logical_and_": lambda m, x, y: (x > 0).logical_and_(y > 0),
    "cumsum_": lambda m, x, y: x.clone().cumsum_(1),
    "tril_": lambda m, x, y: x.clone().tril_(-1),
    "subtract_": lambda m, x, y: x.clone().subtract_(y, alpha=2),
    "unique_consecutive": lambda m, x, y: m.unique_consecutive(m.tensor([1, 1, 2, 2, 3, 1, 1]),
                                                               return_inverse=True,
                                                               return_counts=True)[2],
}


@pytest.mark.parametrize("name", list(_MORE_NAMES))
def test_more_tensor_names_as_torch(name, rng):
    x, y = randn(rng, 3, 4), randn(rng, 3, 4)
    f = _MORE_NAMES[name]
    got = f(fc, fc.tensor(x), fc.tensor(y))
    want = f(torch, torch.tensor(x), torch.tensor(y))
    assert tuple(got.shape) == tuple(want.shape), name
    np.testing.assert_allclose(got.numpy().astype(np.float64),
                               want.numpy().astype(np.float64), rtol=1e-5, atol=1e-5)


def test_more_tensor_predicates_and_fills(rng):
    x = fc.tensor(randn(rng, 3, 3))
    assert x.is_cpu and x.is_signed() and not x.is_complex() and not x.is_shared()
    assert x.is_same_size(fc.zeros(3, 3)) and not x.is_same_size(fc.zeros(3))
    assert fc.tensor([2.0]).is_nonzero() and not fc.tensor(0.0).is_nonzero()
    with pytest.raises(RuntimeError, match="ambiguous"):
        x.is_nonzero()
    assert x.share_memory_() is x and x.storage_offset() == 0
    y = fc.tensor(randn(rng, 4, 4)).fill_diagonal_(7.0)
    want = torch.tensor(y.numpy()).fill_diagonal_(7.0)
    np.testing.assert_array_equal(y.numpy(), want.numpy())
    tall = fc.zeros(7, 3).fill_diagonal_(1.0, wrap=True)
    np.testing.assert_array_equal(tall.numpy(), torch.zeros(7, 3).fill_diagonal_(1.0, wrap=True))
    r = fc.zeros(1000).random_(3, 7)
    assert set(np.unique(r.numpy())) == {3.0, 4.0, 5.0, 6.0}
    assert fc.zeros(1000).geometric_(0.5).numpy().min() >= 1
    assert fc.zeros(1000).log_normal_().numpy().min() > 0
    c = fc.zeros(20000).cauchy_()
    assert abs(float(c.median())) < 0.1  # the median of Cauchy(0, 1)
    h = fc.tensor(randn(rng, 2, 3))
    w = fc.tensor(np.float32([0.25]))
    np.testing.assert_allclose(h.prelu(w).numpy(), torch.tensor(h.numpy()).prelu(
        torch.tensor(w.numpy())).numpy())
    with pytest.raises(RuntimeError, match="does not broadcast"):
        fc.zeros(5, 5).addmm(fc.zeros(2, 3), fc.zeros(3, 2))


def test_pdist_and_triplet_with_distance(rng):
    x = randn(rng, 5, 3)
    check_vs_torch(lambda t: F.pdist(t), lambda t: torch.nn.functional.pdist(t), [x], rng=rng,
                   name="pdist")
    check_vs_torch(lambda t: F.pdist(t, p=1), lambda t: torch.nn.functional.pdist(t, p=1), [x],
                   rng=rng, name="pdist p=1")
    a, p, n = randn(rng, 4, 3), randn(rng, 4, 3), randn(rng, 4, 3)
    for dist in (None, lambda u, v: 1 - (u * v).sum(-1)):
        for swap in (False, True):
            check_vs_torch(
                lambda x, y, z: F.triplet_margin_with_distance_loss(
                    x, y, z, distance_function=dist, margin=0.5, swap=swap),
                lambda x, y, z: torch.nn.functional.triplet_margin_with_distance_loss(
                    x, y, z, distance_function=dist, margin=0.5, swap=swap),
                [a, p, n], rng=rng, name="triplet_margin_with_distance_loss")
    loss = nn.TripletMarginWithDistanceLoss(margin=2.0, reduction="sum")
    want = torch.nn.TripletMarginWithDistanceLoss(margin=2.0, reduction="sum")
    assert_close(loss(*map(fc.tensor, (a, p, n))), want(*map(torch.tensor, (a, p, n))))
    with pytest.raises(RuntimeError, match="2D"):
        F.pdist(fc.tensor(randn(rng, 2, 3, 4)))


def test_gumbel_softmax(rng):
    fc.manual_seed(0)
    logits = fc.tensor(np.log(np.float32([0.1, 0.2, 0.7])).reshape(1, 3).repeat(4000, 0))
    soft = F.gumbel_softmax(logits, tau=0.5)
    assert_close(soft.sum(-1), np.ones(4000))
    hard = F.gumbel_softmax(logits, hard=True)
    assert set(np.unique(hard.numpy())) == {0.0, 1.0}
    # a hard sample is categorical with the softmax of the logits
    np.testing.assert_allclose(hard.numpy().mean(0), [0.1, 0.2, 0.7], atol=0.03)
    x = fc.tensor(randn(rng, 2, 5), requires_grad=True)
    (F.gumbel_softmax(x, hard=True) * fc.tensor(randn(rng, 2, 5))).sum().backward()
    assert x.grad is not None and np.abs(x.grad.numpy()).sum() > 0  # straight-through


def test_older_functional_names(rng):
    x = randn(rng, 1, 2, 6, 6)
    y, idx = F.max_pool2d_with_indices(fc.tensor(x), 2)
    ty, tidx = torch.nn.functional.max_pool2d_with_indices(torch.tensor(x), 2)
    assert_close(y, ty)
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    with pytest.warns(UserWarning, match="deprecated"):
        got = F.upsample_bilinear(fc.tensor(x), scale_factor=2)
    assert_close(got, torch.nn.functional.interpolate(torch.tensor(x), scale_factor=2,
                                                      mode="bilinear", align_corners=True))
    with pytest.warns(UserWarning, match="deprecated"):
        assert F.upsample(fc.tensor(x), size=(3, 4)).shape == (1, 2, 3, 4)
    assert nn.NLLLoss2d is nn.NLLLoss and issubclass(nn.LSTM, nn.RNNBase)


_TOP_LEVEL = {
    "isin": lambda m, x: m.isin(m.tensor([1, 2, 3, 4]), m.tensor([2, 4])),
    "isin invert": lambda m, x: m.isin(m.tensor([1, 2, 3, 4]), 2, invert=True),
    "trapezoid": lambda m, x: m.trapezoid(x, dim=1),
    "trapezoid x": lambda m, x: m.trapezoid(x, m.tensor([0.0, 0.5, 2.0, 2.5])),
    "trapz dx": lambda m, x: m.trapz(x, dx=0.3),
    "cumulative_trapezoid": lambda m, x: m.cumulative_trapezoid(x, dim=0),
    "logspace": lambda m, x: m.logspace(-1, 2, 5),
    "logspace base": lambda m, x: m.logspace(0, 3, 4, base=2),
    "hann": lambda m, x: m.hann_window(8),
    "hann symmetric": lambda m, x: m.hann_window(7, periodic=False),
    "hamming": lambda m, x: m.hamming_window(9),
    "blackman": lambda m, x: m.blackman_window(6, periodic=False),
    "bartlett": lambda m, x: m.bartlett_window(5),
    "kaiser": lambda m, x: m.kaiser_window(6, True, 5.0),
    "window of 1": lambda m, x: m.hann_window(1),
    "scalar_tensor": lambda m, x: m.scalar_tensor(3.5),
    "fill": lambda m, x: m.fill(x, 2.0),
    "unravel_index": lambda m, x: m.stack(m.unravel_index(m.tensor([0, 5, 11, -1]), (3, 4))),
    "conv2d": lambda m, x: m.conv2d(x[None, None], x[None, None, :2, :2], padding=1),
    "dropout eval": lambda m, x: m.dropout(x, 0.5, False),
    "layer_norm": lambda m, x: m.layer_norm(x, (4,)),
    "reciprocal": lambda m, x: m.reciprocal(x),
    "relu_": lambda m, x: m.relu_(x.clone()),
    "sigmoid_": lambda m, x: m.sigmoid_(x.clone()),
    "pdist": lambda m, x: m.pdist(x),
    "bitwise_and": lambda m, x: m.bitwise_and(m.tensor([3, 5]), m.tensor([1, 4])),
}


@pytest.mark.parametrize("name", list(_TOP_LEVEL))
def test_more_top_level_names_as_torch(name, rng):
    x = randn(rng, 3, 4)
    got = _TOP_LEVEL[name](fc, fc.tensor(x))
    want = _TOP_LEVEL[name](torch, torch.tensor(x))
    assert tuple(got.shape) == tuple(want.shape), name
    np.testing.assert_allclose(got.numpy().astype(np.float64),
                               want.numpy().astype(np.float64), rtol=1e-5, atol=1e-5)


def test_type_helpers_as_torch():
    assert fc.broadcast_shapes((3, 1), (1, 4), (4,)) == tuple(torch.broadcast_shapes(
        (3, 1), (1, 4), (4,)))
    with pytest.raises(RuntimeError, match="cannot be broadcast"):
        fc.broadcast_shapes((3,), (4,))
    assert fc.result_type(fc.tensor([1, 2]), 1.5) == fc.float32
    assert fc.result_type(fc.tensor([1, 2]), 3) == fc.int64
    assert fc.promote_types(fc.int32, fc.float32) == fc.float32
    assert fc.can_cast(fc.int64, fc.float32) and not fc.can_cast(fc.float32, fc.int64)
    assert fc.typename(fc.zeros(2)) == "fastconv.FloatTensor"
    with pytest.raises(RuntimeError, match="window length"):
        fc.hann_window(-1)


def test_lp_pool3d_and_lazy_conv_transpose3d(rng):
    x = np.abs(randn(rng, 1, 2, 4, 6, 5)) + 0.1
    for p, k, s in ((2, 2, None), (3, (2, 3, 2), 1)):
        check_vs_torch(lambda t: F.lp_pool3d(t, p, k, s),
                       lambda t: torch.nn.functional.lp_pool3d(t, p, k, s), [x], rng=rng,
                       name=f"lp_pool3d p={p}")
    assert nn.LPPool3d(2, 2)(fc.tensor(x)).shape == (1, 2, 2, 3, 2)
    m = nn.LazyConvTranspose3d(4, 3, stride=2)
    y = m(fc.tensor(x))
    want = torch.nn.LazyConvTranspose3d(4, 3, stride=2)(torch.tensor(x))
    assert tuple(y.shape) == tuple(want.shape) and m.weight.shape == (2, 4, 3, 3, 3)


def test_abs_builtin_as_torch(rng):
    x = randn(rng, 3, 4)
    t, w = fc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    got, want = abs(t), abs(w)
    assert_close(got, want)
    got.sum().backward()
    want.sum().backward()
    assert_close(t.grad, w.grad)
    assert abs(fc.tensor([-3])).tolist() == abs(torch.tensor([-3])).tolist()


def test_is_inference_mode_enabled_as_torch():
    def states(m):
        out = [m.is_inference_mode_enabled()]
        with m.inference_mode():
            out.append(m.is_inference_mode_enabled())
            with m.inference_mode(False):
                out += [m.is_inference_mode_enabled(), m.is_grad_enabled()]
            out.append(m.is_inference_mode_enabled())
        with m.no_grad():
            out.append(m.is_inference_mode_enabled())

        @m.inference_mode()
        def f():
            return m.is_inference_mode_enabled(), m.is_grad_enabled()

        out += [*f(), m.is_inference_mode_enabled(), m.is_grad_enabled()]
        return out

    assert states(fc) == states(torch)


def test_requires_grad_errors_as_torch(rng):
    x = randn(rng, 3)
    # torch raises RuntimeError; fastconv's error is a TypeError too
    for make in (lambda m: m.tensor([1, 2], requires_grad=True),
                 lambda m: m.tensor([1, 2]).requires_grad_(),
                 lambda m: setattr(m.tensor([1, 2]), "requires_grad", True)):
        with pytest.raises(RuntimeError):
            make(torch)
        with pytest.raises(RuntimeError, match="floating-point"):
            make(fc)
    with pytest.raises(TypeError):
        fc.tensor([1, 2], requires_grad=True)
    for m in (torch, fc):
        t = m.tensor(x)
        t.requires_grad = True
        y = t * 2
        for flag in (False, True):
            with pytest.raises(RuntimeError, match="leaf"):
                y.requires_grad = flag
        with pytest.raises(RuntimeError, match="leaf"):
            y.requires_grad_(False)
        assert y.requires_grad_(True) is y  # already true: allowed, as in torch
        (y * t).sum().backward()
        assert t.grad is not None and y.requires_grad
        t.requires_grad = False
        assert not t.requires_grad and not (t * 2).requires_grad


def test_item_and_one_hot_errors_are_torchs_runtime_errors(rng):
    for m in (torch, fc):
        with pytest.raises(RuntimeError, match="2 elements"):
            m.tensor([1.0, 2.0]).item()
        with pytest.raises(RuntimeError):
            getattr(m.nn.functional, "one_hot")(m.tensor([0.0, 1.0]), 2)
        with pytest.raises(ValueError, match="only one element"):
            float(m.tensor([1.0, 2.0]))


def test_max_min_with_several_dims_raise_type_error(rng):
    x = randn(rng, 2, 3)
    for m in (torch, fc):
        t = m.tensor(x)
        for call in (lambda: t.max(dim=(0, 1)), lambda: m.min(t, dim=(0,)),
                     lambda: t.argmax(dim=[1])):
            with pytest.raises(TypeError):
                call()
    with pytest.raises(TypeError, match="amax"):
        fc.tensor(x).max(dim=(0, 1))


def test_list_of_sequences_indexes_as_a_tuple_as_torch(rng):
    x = randn(rng, 4, 5, 3)
    idx_sets = [lambda m: [[0, 1], [2, 3]], lambda m: [slice(None), [1, 2]],
                lambda m: [0, None], lambda m: [Ellipsis, 1],
                lambda m: [m.tensor([0, 3]), m.tensor([1, 1])],
                lambda m: [m.tensor(1), m.tensor(2)]]
    for make in idx_sets:
        with pytest.warns(UserWarning, match="non-tuple sequence"):
            want = torch.tensor(x)[make(torch)]
        with pytest.warns(UserWarning, match="non-tuple sequence"):
            got = fc.tensor(x)[make(fc)]
        assert_close(got, want)
        w, g = torch.tensor(x), fc.tensor(x)
        with pytest.warns(UserWarning):
            w[make(torch)] = -1.0
        with pytest.warns(UserWarning):
            g[make(fc)] = -1.0
        assert_close(g, w)
    # a list of ints or of bools stays one index, without a warning
    assert_close(fc.tensor(x)[[0, 2]], torch.tensor(x)[[0, 2]])
    assert_close(fc.tensor(x)[[True, False, True, False]],
                 torch.tensor(x)[[True, False, True, False]])


_RESUMED = [("StepLR", dict(step_size=2, gamma=0.5)),
            ("MultiStepLR", dict(milestones=[5, 7], gamma=0.5)),
            ("ExponentialLR", dict(gamma=0.9)), ("CosineAnnealingLR", dict(T_max=8)),
            ("LinearLR", dict(start_factor=0.2, total_iters=7)),
            ("PolynomialLR", dict(total_iters=8)),
            ("ConstantLR", dict(factor=0.5, total_iters=6)),
            ("CosineAnnealingWarmRestarts", dict(T_0=3))]


@pytest.mark.parametrize("name,kw", _RESUMED, ids=[n for n, _ in _RESUMED])
def test_scheduler_resumed_with_last_epoch_steps_as_torch(name, kw, rng):
    import fastconv.optim as optim

    last_epoch = int(rng.integers(2, 6))
    initial = float(rng.uniform(0.05, 0.2))

    def rates(m, opt_mod, lr):
        p = m.zeros(2, requires_grad=True)
        opt = opt_mod.SGD([p], lr=lr)
        opt.param_groups[0]["initial_lr"] = initial
        sched = getattr(opt_mod.lr_scheduler, name)(opt, last_epoch=last_epoch, **kw)
        out = [opt.param_groups[0]["lr"]]
        for _ in range(6):
            opt.step()
            sched.step()
            out.append(opt.param_groups[0]["lr"])
        return np.array(out + sched.get_last_lr())

    # the group's rate as the initial one, or as restored from a checkpoint
    for lr in (initial, float(rng.uniform(0.01, 0.2))):
        np.testing.assert_allclose(rates(fc, optim, lr), rates(torch, torch.optim, lr),
                                   rtol=1e-6)


def _torch_factory_layers():
    import inspect

    names = []
    for name in dir(torch.nn):
        cls = getattr(torch.nn, name)
        if (isinstance(cls, type) and issubclass(cls, torch.nn.Module) and hasattr(nn, name)
                and "device" in inspect.signature(cls.__init__).parameters):
            names.append(name)
    return names


def test_every_layer_taking_device_and_dtype_in_torch_takes_them():
    import inspect

    names = _torch_factory_layers()
    assert {"Linear", "Conv2d", "BatchNorm2d", "LayerNorm", "Embedding"} <= set(names)
    for name in names:
        params = inspect.signature(getattr(nn, name).__init__).parameters
        assert {"device", "dtype"} <= set(params) or any(
            p.kind is p.VAR_KEYWORD for p in params.values()), name


_FACTORY = {
    "Linear": (lambda m, **kw: m.nn.Linear(4, 3, **kw), (2, 4)),
    "Conv2d": (lambda m, **kw: m.nn.Conv2d(2, 3, 3, padding=1, **kw), (1, 2, 5, 5)),
    "Conv1d": (lambda m, **kw: m.nn.Conv1d(2, 3, 3, **kw), (1, 2, 6)),
    "ConvTranspose2d": (lambda m, **kw: m.nn.ConvTranspose2d(2, 3, 2, stride=2, **kw),
                        (1, 2, 3, 3)),
    "BatchNorm2d": (lambda m, **kw: m.nn.BatchNorm2d(2, **kw), (3, 2, 2, 2)),
    "LayerNorm": (lambda m, **kw: m.nn.LayerNorm(4, **kw), (2, 4)),
    "GroupNorm": (lambda m, **kw: m.nn.GroupNorm(1, 2, **kw), (1, 2, 3, 3)),
    "PReLU": (lambda m, **kw: m.nn.PReLU(2, **kw), (1, 2, 3)),
    "Embedding": (lambda m, **kw: m.nn.Embedding(5, 3, **kw), None),
    "LSTM": (lambda m, **kw: m.nn.LSTM(4, 3, **kw), (2, 1, 4)),
    "GRUCell": (lambda m, **kw: m.nn.GRUCell(4, 3, **kw), (2, 4)),
}


@pytest.mark.parametrize("name", list(_FACTORY))
def test_layers_take_device_and_dtype_as_torch(name, rng):
    make, shape = _FACTORY[name]
    ref = make(torch, device="cpu", dtype=torch.float32)
    m = make(fc, device=fc.device("cpu"), dtype=fc.float32)
    assert list(m.state_dict()) == list(ref.state_dict())
    m.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    x = (randn(rng, *shape) if shape else rng.integers(0, 5, (2, 3)))
    got, want = m(fc.tensor(x)), ref(torch.tensor(x))
    got, want = (got[0], want[0]) if isinstance(want, tuple) else (got, want)
    assert_close(got, want, rtol=1e-5, atol=1e-6)
    with pytest.warns(fc.DtypeWarning):
        m = make(fc, dtype=fc.float64)
    assert all(p.dtype == np.float32 for p in m.parameters())
    with pytest.raises(TypeError, match="floating point"):
        make(fc, dtype=fc.int64)


def test_reset_parameters_and_running_stats_as_torch(rng):
    x = randn(rng, 4, 3, 2, 2)
    makers = [lambda m: m.nn.BatchNorm2d(3), lambda m: m.nn.InstanceNorm2d(
        3, affine=True, track_running_stats=True), lambda m: m.nn.LayerNorm([2, 2]),
        lambda m: m.nn.GroupNorm(1, 3), lambda m: m.nn.PReLU(3, init=0.1)]
    for make in makers:
        layers = []
        for m in (torch, fc):
            layer = make(m)
            layer(m.tensor(x))  # running statistics move
            with m.no_grad():
                for p in layer.parameters():
                    p.mul_(3).add_(1)
            params = list(layer.parameters())
            layer.reset_parameters()
            assert [id(p) for p in layer.parameters()] == [id(p) for p in params]
            layers.append(layer)
        for (k, want), got in zip(layers[0].state_dict().items(),
                                  layers[1].state_dict().values()):
            assert_close(got, want, name=k)
    for m in (torch, fc):
        bn = m.nn.BatchNorm2d(3)
        bn(m.tensor(x))
        bn.reset_running_stats()
        assert bn.num_batches_tracked.item() == 0 and float(bn.running_var.sum()) == 3
    bl = nn.Bilinear(2, 3, 4)
    with fc.no_grad():
        bl.weight.fill_(5.0)
    bl.reset_parameters()
    assert float(bl.weight.abs().max()) <= 1 / np.sqrt(2)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
@pytest.mark.parametrize("align_corners", [False, True])
def test_interpolate_antialias_matches_torch(mode, align_corners, rng):
    for _ in range(6):
        h, w = (int(v) for v in rng.integers(2, 20, 2))
        if rng.integers(2):
            kw = dict(size=tuple(int(v) for v in rng.integers(2, 24, 2)))
        else:
            kw = dict(scale_factor=tuple(float(v) for v in rng.uniform(0.25, 2.5, 2)))
            if min(math.floor(n * f) for n, f in zip((h, w), kw["scale_factor"])) < 2:
                continue  # an empty output, or a width of 1 (below)
        x = randn(rng, 2, 3, h, w)
        t = torch.tensor(x, requires_grad=True)
        want = torch.nn.functional.interpolate(t, mode=mode, align_corners=align_corners,
                                               antialias=True, **kw)
        if min(want.shape[2:]) < 2:
            continue  # torch's CPU kernel gives one value per column for an output width of 1
        got_in = fc.tensor(x, requires_grad=True)
        got = F.interpolate(got_in, mode=mode, align_corners=align_corners, antialias=True, **kw)
        assert_close(got, want, rtol=1e-5, atol=1e-5, name=f"{mode} {kw}")
        g = randn(rng, *want.shape)
        want.backward(torch.tensor(g))
        (got * fc.tensor(g)).sum().backward()
        if "scale_factor" in kw and not align_corners and (
                want.shape[2] == h or want.shape[3] == w):
            # an axis that keeps its size is copied in torch's forward but filtered with the
            # scale factor in its backward; the gradient is the adjoint of the forward:
            # <grad, v> = <g, interpolate(v)> for any v
            v = randn(rng, *x.shape)
            moved = F.interpolate(fc.tensor(v), mode=mode, antialias=True, **kw).numpy()
            np.testing.assert_allclose(float((got_in.grad.numpy() * v).sum()),
                                       float((g * moved).sum()), rtol=1e-4)
            continue
        assert_close(got_in.grad, t.grad, rtol=1e-5, atol=1e-5, name=f"grad {mode} {kw}")
    # shrinking averages every covered pixel: a 4x downscale of a constant stays constant and
    # a checkerboard becomes flat, where plain bilinear picks pixels
    board = np.indices((16, 16)).sum(0) % 2
    y = F.interpolate(fc.tensor(board[None, None].astype(np.float32)), size=(4, 4), mode=mode,
                      antialias=True)
    np.testing.assert_allclose(y.numpy(), 0.5, atol=0.05)
    with pytest.raises(ValueError, match="antialias"):
        F.interpolate(fc.tensor(x), scale_factor=2, mode="nearest", antialias=True)


def test_parameter_and_module_slots_take_their_kind_or_none_as_torch(rng):
    for m in (torch, fc):
        lin = m.nn.Linear(2, 2)
        with pytest.raises(TypeError, match="parameter 'weight'"):
            lin.weight = m.tensor(randn(rng, 2, 2))
        assert [n for n, _ in lin.named_parameters()] == ["weight", "bias"]
        lin.bias = None  # stays registered, as None
        assert list(lin.state_dict()) == ["weight"] and "bias" in lin._parameters
        seq = m.nn.Sequential(m.nn.Linear(2, 2))
        with pytest.raises(TypeError, match="child module '0'"):
            setattr(seq, "0", m.ones(2))
        holder = m.nn.Module()
        with pytest.raises(TypeError, match="parameter 'x'"):
            holder.register_parameter("x", m.ones(2))
        for bad in ("a.b", ""):
            with pytest.raises(KeyError):
                holder.register_parameter(bad, None)
        holder.register_parameter("p", None)
        holder.p = m.nn.Parameter(m.ones(1))
        assert [n for n, _ in holder.named_parameters()] == ["p"]


def test_repr_leaves_out_the_default_dtypes_as_torch():
    for make in (lambda m: m.tensor([1, 2]), lambda m: m.tensor([True, False]),
                 lambda m: m.tensor([1.5, 2.0]), lambda m: m.tensor([3], dtype=m.int32),
                 lambda m: m.tensor([], dtype=m.int64), lambda m: m.tensor([], dtype=m.bool),
                 lambda m: m.tensor([1], dtype=m.uint8)):
        want = repr(make(torch)).replace("torch.", "")
        got = repr(make(fc))
        assert ("dtype=" in got) == ("dtype=" in want), (got, want)
        if "dtype=" in want:
            assert want[want.index("dtype="):] == got[got.index("dtype="):]
