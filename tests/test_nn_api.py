"""The PyTorch nn surface: containers (Sequential, ModuleList, ModuleDict, ParameterList,
ParameterDict), Module.apply, non-persistent buffers, state_dict in PyTorch's order (checked
key for key and by position against a torch twin), the new layers against their torch
counterparts (forward, input and parameter gradients), Conv2d padding strings and modes,
unbatched input, and nn.utils (gradient clipping, parameter vectors).
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
from helpers import assert_close, assert_grad_close, distinct, randn, to_numpy

import fastconv
import fastconv.functional as F
from fastconv import nn

torch = pytest.importorskip("torch")
tnn = torch.nn


def T(a, **kw):
    return fastconv.tensor(a, **kw)


# ----------------------------------------------------------------------------- twins

def _copy_torch_into(ours, theirs):
    """Load the torch module's state into ours (strict: the keys must agree)."""
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


def _compare_layer(ours, theirs, x, rng, name, grads=True):
    """Same state, same input: forward, then the input's and every parameter's gradient."""
    theirs = theirs.double()
    _copy_torch_into(ours, theirs)
    xt = T(x, requires_grad=grads)
    tt = torch.tensor(x, dtype=torch.float64, requires_grad=grads)
    y, ty = ours(xt), theirs(tt)
    if isinstance(ty, tuple):  # return_indices
        np.testing.assert_array_equal(to_numpy(y[1]), ty[1].numpy(), err_msg=name)
        y, ty = y[0], ty[0]
    assert_close(to_numpy(y), ty.detach().numpy(), name=f"{name} forward")
    if not grads:
        return
    g = rng.standard_normal(ty.shape)
    y.backward(T(g.astype(np.float32)))
    ty.backward(torch.tensor(g))
    assert_grad_close(to_numpy(xt.grad), tt.grad.numpy(), name=f"{name} input grad")
    tparams = dict(theirs.named_parameters())
    for k, p in ours.named_parameters():
        assert_grad_close(to_numpy(p.grad), tparams[k].grad.numpy(), name=f"{name} {k}.grad")


LAYERS = [
    ("LeakyReLU", lambda m: m.LeakyReLU(0.2), (2, 6, 5, 4)),
    ("ELU", lambda m: m.ELU(alpha=0.5), (2, 6, 5, 4)),
    ("GELU", lambda m: m.GELU(), (2, 6, 5, 4)),
    ("GELU(tanh)", lambda m: m.GELU(approximate="tanh"), (2, 6, 5, 4)),
    ("SiLU", lambda m: m.SiLU(), (2, 6, 5, 4)),
    ("Sigmoid", lambda m: m.Sigmoid(), (2, 6, 5, 4)),
    ("Tanh", lambda m: m.Tanh(), (3, 7)),
    ("Softmax", lambda m: m.Softmax(dim=1), (2, 6, 5, 4)),
    ("LogSoftmax", lambda m: m.LogSoftmax(dim=-1), (3, 7)),
    ("MaxPool2d(dilation)", lambda m: m.MaxPool2d(3, 2, 1, 2), (2, 6, 11, 10)),
    ("MaxPool2d(indices)", lambda m: m.MaxPool2d(3, 2, return_indices=True, ceil_mode=True),
     (2, 6, 11, 10)),
    ("MaxPool2d(unbatched)", lambda m: m.MaxPool2d(2), (6, 8, 9)),
    ("AvgPool2d(unbatched)", lambda m: m.AvgPool2d(3, 2, 1), (6, 8, 9)),
    ("AdaptiveMaxPool2d", lambda m: m.AdaptiveMaxPool2d((3, 4)), (2, 6, 11, 10)),
    ("AdaptiveMaxPool2d(indices)", lambda m: m.AdaptiveMaxPool2d(3, return_indices=True),
     (6, 7, 8)),
    ("AdaptiveAvgPool2d(unbatched)", lambda m: m.AdaptiveAvgPool2d((3, 4)), (6, 7, 8)),
    ("LayerNorm", lambda m: m.LayerNorm([5, 4]), (2, 6, 5, 4)),
    ("LayerNorm(no affine)", lambda m: m.LayerNorm(4, elementwise_affine=False), (2, 6, 5, 4)),
    ("LayerNorm(no bias)", lambda m: m.LayerNorm(4, bias=False, eps=1e-3), (3, 4)),
    ("GroupNorm", lambda m: m.GroupNorm(3, 6), (2, 6, 5, 4)),
    ("GroupNorm(no affine)", lambda m: m.GroupNorm(2, 6, affine=False), (2, 6, 5)),
    ("ZeroPad2d", lambda m: m.ZeroPad2d(2), (2, 6, 5, 4)),
    ("ZeroPad2d(4-tuple)", lambda m: m.ZeroPad2d((1, 2, 0, 3)), (6, 5, 4)),
    ("ConstantPad2d", lambda m: m.ConstantPad2d((1, 0, 2, 1), 0.5), (2, 6, 5, 4)),
    ("ReflectionPad2d", lambda m: m.ReflectionPad2d((2, 1, 3, 0)), (2, 6, 5, 4)),
    ("ReplicationPad2d", lambda m: m.ReplicationPad2d(2), (6, 5, 4)),
    ("CircularPad2d", lambda m: m.CircularPad2d((1, 2, 3, 1)), (2, 6, 5, 4)),
    ("Upsample", lambda m: m.Upsample(scale_factor=2), (2, 6, 5, 4)),
    ("Upsample(bilinear)", lambda m: m.Upsample(size=(7, 9), mode="bilinear"), (2, 6, 5, 4)),
    ("Upsample(align_corners)", lambda m: m.Upsample(scale_factor=1.5, mode="bilinear",
                                                    align_corners=True), (2, 6, 5, 4)),
    ("UpsamplingNearest2d", lambda m: m.UpsamplingNearest2d(size=7), (2, 6, 5, 4)),
    ("UpsamplingBilinear2d", lambda m: m.UpsamplingBilinear2d(scale_factor=2), (2, 6, 5, 4)),
    ("Conv2d(same)", lambda m: m.Conv2d(6, 4, 3, padding="same"), (2, 6, 7, 8)),
    ("Conv2d(same, even)", lambda m: m.Conv2d(6, 4, (4, 2), padding="same", dilation=(1, 3)),
     (2, 6, 7, 8)),
    ("Conv2d(valid)", lambda m: m.Conv2d(6, 4, 3, padding="valid", bias=False), (2, 6, 7, 8)),
    ("Conv2d(reflect)", lambda m: m.Conv2d(6, 4, 3, stride=2, padding=(1, 2),
                                          padding_mode="reflect"), (2, 6, 7, 8)),
    ("Conv2d(replicate, same)", lambda m: m.Conv2d(6, 4, 4, padding="same",
                                                  padding_mode="replicate"), (2, 6, 7, 8)),
    ("Conv2d(circular)", lambda m: m.Conv2d(6, 4, 3, padding=1, padding_mode="circular",
                                           groups=2), (2, 6, 7, 8)),
    ("Conv2d(unbatched)", lambda m: m.Conv2d(6, 4, 3, padding=1), (6, 7, 8)),
    ("Conv2d(unbatched, reflect)", lambda m: m.Conv2d(6, 4, 3, padding=2, dilation=2,
                                                     padding_mode="reflect"), (6, 7, 8)),
]


@pytest.mark.parametrize("name,make,shape", LAYERS, ids=[c[0] for c in LAYERS])
def test_layer_matches_torch(name, make, shape, rng):
    ours, theirs = make(nn), make(tnn)
    _compare_layer(ours, theirs, distinct(rng, *shape), rng, name)
    assert list(ours.state_dict()) == list(theirs.state_dict())


def test_conv2d_padding_mode_and_string_errors():
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv2d(3, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="strided"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="'full'"):
        nn.Conv2d(3, 4, 3, padding="full")
    assert "padding_mode=reflect" in repr(nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"))
    assert repr(nn.Conv2d(3, 4, 3, padding="same")) == \
        "Conv2d(3, 4, kernel_size=(3, 3), stride=(1, 1), padding=same)"  # torch's form


def test_layers_with_inplace_keep_torch_defaults_and_repr():
    names = ("ReLU", "LeakyReLU", "ELU", "SiLU", "ReLU6", "Hardtanh", "Hardsigmoid", "Hardswish",
             "Mish", "SELU", "CELU", "RReLU", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d",
             "AlphaDropout", "FeatureAlphaDropout")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in names:
            for kw in ({}, {"inplace": True}):
                assert repr(getattr(nn, name)(**kw)) == repr(getattr(tnn, name)(**kw)), name
                assert getattr(nn, name)(**kw).inplace is getattr(tnn, name)(**kw).inplace
    assert repr(nn.Threshold(0.1, 2.0, inplace=True)) == repr(tnn.Threshold(0.1, 2.0, True))
    assert nn.Dropout().inplace is tnn.Dropout().inplace is False
    assert nn.LeakyReLU().negative_slope == tnn.LeakyReLU().negative_slope
    assert nn.ELU().alpha == tnn.ELU().alpha
    assert nn.GELU().approximate == tnn.GELU().approximate
    assert nn.Softmax().dim is None and nn.LogSoftmax().dim is None
    m, tm = nn.MaxPool2d(3), tnn.MaxPool2d(3)
    assert (m.stride, m.padding, m.dilation, m.return_indices, m.ceil_mode) == \
        (tm.stride, tm.padding, tm.dilation, tm.return_indices, tm.ceil_mode)
    assert nn.LayerNorm(4).eps == tnn.LayerNorm(4).eps
    assert nn.GroupNorm(2, 4).eps == tnn.GroupNorm(2, 4).eps
    with pytest.raises(ValueError, match="divisible"):
        nn.GroupNorm(3, 4)


# ----------------------------------------------------------------------------- losses

LOSSES = [
    ("CrossEntropyLoss", lambda m, w: m.CrossEntropyLoss(), "class"),
    ("CrossEntropyLoss(all)", lambda m, w: m.CrossEntropyLoss(weight=w, ignore_index=1,
                                                             label_smoothing=0.1), "class"),
    ("CrossEntropyLoss(sum)", lambda m, w: m.CrossEntropyLoss(reduction="sum"), "class"),
    ("NLLLoss", lambda m, w: m.NLLLoss(weight=w, reduction="none"), "class"),
    ("MSELoss", lambda m, w: m.MSELoss(), "float"),
    ("L1Loss", lambda m, w: m.L1Loss(reduction="sum"), "float"),
    ("BCEWithLogitsLoss", lambda m, w: m.BCEWithLogitsLoss(pos_weight=w), "prob"),
    ("BCEWithLogitsLoss(weight)", lambda m, w: m.BCEWithLogitsLoss(weight=w, reduction="none"),
     "prob"),
]


@pytest.mark.parametrize("name,make,kind", LOSSES, ids=[c[0] for c in LOSSES])
def test_loss_layer_matches_torch(name, make, kind, rng):
    N, C = 6, 5
    w = rng.uniform(0.5, 2.0, C).astype(np.float32)
    ours, theirs = make(nn, T(w)), make(tnn, torch.tensor(w, dtype=torch.float64))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = randn(rng, N, C, scale=2.0)
    if kind == "class":
        target = rng.integers(0, C, N)
        target[:2] = (0, 1)
        ft, tt = target, torch.tensor(target)
    elif kind == "prob":
        target = rng.uniform(size=(N, C)).astype(np.float32)
        ft, tt = T(target), torch.tensor(target, dtype=torch.float64)
    else:
        target = randn(rng, N, C)
        ft, tt = T(target), torch.tensor(target, dtype=torch.float64)
    xf = T(x, requires_grad=True)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y, ty = ours(xf, ft), theirs(xt, tt)
    assert_close(to_numpy(y), ty.detach().numpy(), name=name)
    g = rng.standard_normal(ty.shape)
    y.backward(T(g.astype(np.float32)))
    ty.backward(torch.tensor(g))
    assert_grad_close(to_numpy(xf.grad), xt.grad.numpy(), name=f"{name} grad")


def test_loss_layers_map_legacy_flags_with_a_warning():
    with pytest.warns(UserWarning, match="reduction='sum'"):
        assert nn.MSELoss(size_average=False).reduction == "sum"
    with pytest.raises(ValueError, match="reduction"):
        nn.L1Loss(reduction="avg")


# ----------------------------------------------------------------------------- containers

def _tagged(m, i):
    return m.Linear(i, 1)  # in_features tags the module


def _layout(container):
    """[(name, tag)] of a container's direct children, comparable across the libraries."""
    return [(name, child.in_features) for name, child in container.named_children()]


def _same_ops(ops, make):
    """Run ``ops`` on a fastconv and a torch container and compare their layouts."""
    ours, theirs = make(nn), make(tnn)
    for op in ops:
        ro, rt = op(ours, nn), op(theirs, tnn)
        if isinstance(rt, (tnn.Module,)):
            assert type(ro).__name__ == type(rt).__name__
            if hasattr(rt, "in_features"):
                assert ro.in_features == rt.in_features
            else:
                assert _layout(ro) == _layout(rt)
        assert _layout(ours) == _layout(theirs)
        assert list(ours.state_dict()) == list(theirs.state_dict())
    return ours, theirs


def test_sequential_edits_match_torch(rng):
    ops = [
        lambda s, m: s.append(_tagged(m, 5)),
        lambda s, m: s.insert(1, _tagged(m, 6)),
        lambda s, m: s.insert(-1, _tagged(m, 7)),
        lambda s, m: s.extend([_tagged(m, 8), _tagged(m, 9)]),
        lambda s, m: s[2],
        lambda s, m: s[-1],
        lambda s, m: s[1:4],
        lambda s, m: s.__delitem__(0),
        lambda s, m: s.pop(2),
        lambda s, m: s.__setitem__(1, _tagged(m, 10)),
        lambda s, m: s.__delitem__(slice(0, 2)),
        lambda s, m: s + m.Sequential(_tagged(m, 11)),
    ]
    ours, theirs = _same_ops(ops, lambda m: m.Sequential(_tagged(m, 1), _tagged(m, 2),
                                                         _tagged(m, 3)))
    assert len(ours) == len(theirs)
    assert [c.in_features for c in ours] == [c.in_features for c in theirs]
    # a slice keeps the names, as torch
    named = nn.Sequential(__import__("collections").OrderedDict(a=nn.ReLU(), b=nn.Identity()))
    assert [n for n, _ in named[1:].named_children()] == ["b"]
    with pytest.raises(IndexError):
        nn.Sequential(nn.ReLU())[3]
    with pytest.raises(TypeError):
        nn.Sequential(nn.ReLU(), 3)


def test_sequential_runs_in_order_after_edits(rng):
    seq = nn.Sequential(nn.Linear(4, 3))
    seq.append(nn.ReLU())
    seq.insert(0, nn.Identity())
    seq.extend([nn.Linear(3, 2)])
    x = T(randn(rng, 5, 4))
    want = F.linear(F.relu(F.linear(x, seq[1].weight, seq[1].bias)), seq[3].weight, seq[3].bias)
    assert_close(to_numpy(seq(x)), to_numpy(want))


def test_modulelist_matches_torch():
    ops = [
        lambda s, m: s.append(_tagged(m, 5)),
        lambda s, m: s.extend([_tagged(m, 6), _tagged(m, 7)]),
        lambda s, m: s.insert(1, _tagged(m, 8)),
        lambda s, m: s[-2],
        lambda s, m: s[1:3],
        lambda s, m: s.__setitem__(0, _tagged(m, 9)),
        lambda s, m: s.__delitem__(1),
        lambda s, m: s.pop(1),
        lambda s, m: s.__iadd__([_tagged(m, 10)]),
    ]
    ours, theirs = _same_ops(ops, lambda m: m.ModuleList([_tagged(m, 1), _tagged(m, 2)]))
    assert len(ours) == len(theirs)
    assert [c.in_features for c in ours] == [c.in_features for c in theirs]
    with pytest.raises(NotImplementedError):
        ours(T(np.zeros(1, np.float32)))
    with pytest.raises(TypeError, match="Modules"):
        ours.append(3)


def test_moduledict_matches_torch():
    def make(m):
        return m.ModuleDict({"b": _tagged(m, 1), "a": _tagged(m, 2)})

    ours, theirs = _same_ops([
        lambda d, m: d.update([("c", _tagged(m, 3)), ("b", _tagged(m, 4))]),
        lambda d, m: d.__setitem__("z", _tagged(m, 5)),
        lambda d, m: d.pop("a"),
        lambda d, m: d.__delitem__("c"),
        lambda d, m: d["z"],
    ], make)
    assert list(ours.keys()) == list(theirs.keys()) and list(ours) == list(theirs)
    assert "z" in ours and "a" not in ours and len(ours) == len(theirs)
    assert [v.in_features for v in ours.values()] == [v.in_features for v in theirs.values()]
    with pytest.raises(KeyError):
        ours["no.dots"] = nn.ReLU()


def test_parameterlist_and_parameterdict_register_parameters(rng):
    a, b = randn(rng, 2, 3), randn(rng, 4)
    ours = nn.ParameterList([nn.Parameter(a), T(b)])
    theirs = tnn.ParameterList([tnn.Parameter(torch.tensor(a)), torch.tensor(b)])
    ours.append(T(np.ones(2, np.float32)))
    theirs.append(torch.ones(2))
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in ours)
    assert len(ours) == 3 and ours[-1].shape == (2,)

    class Holder(nn.Module):
        def __init__(self):
            super().__init__()
            self.ps = nn.ParameterList([nn.Parameter(a)])
            self.pd = nn.ParameterDict({"w": nn.Parameter(b)})

    h = Holder()
    assert list(h.state_dict()) == ["ps.0", "pd.w"]
    assert len(list(h.parameters())) == 2


# ----------------------------------------------------------------------------- Module API

def test_apply_visits_children_first_as_torch():
    def build(m):
        return m.Sequential(m.Conv2d(3, 4, 3), m.Sequential(m.BatchNorm2d(4), m.ReLU()),
                            m.Linear(4, 2))

    seen = {}
    for lib, model in (("ours", build(nn)), ("theirs", build(tnn))):
        names = {id(mod): name for name, mod in model.named_modules()}
        order = []
        assert model.apply(lambda mod, order=order, names=names: order.append(names[id(mod)])) \
            is model
        seen[lib] = order
    assert seen["ours"] == seen["theirs"]


def test_apply_initialises_weights():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))

    def init(m):
        if isinstance(m, nn.Linear):
            nn.init.constant_(m.weight, 0.5)
            nn.init.zeros_(m.bias)

    model.apply(init)
    assert all(np.all(to_numpy(m.weight) == 0.5) for m in (model[0], model[2]))


class _Twin:
    """The same network in fastconv and torch: nested Sequentials, a ModuleList, a
    ModuleDict, BatchNorm, LayerNorm, GroupNorm, a parameter and buffers on the root."""

    @staticmethod
    def build(m, tensor):
        class Net(m.Module):
            def __init__(self):
                super().__init__()
                self.stem = m.Sequential(m.Conv2d(3, 4, 3, padding=1), m.BatchNorm2d(4), m.ReLU())
                self.blocks = m.ModuleList([
                    m.Sequential(m.Conv2d(4, 4, 3, padding="same", bias=False),
                                 m.BatchNorm2d(4), m.LeakyReLU(0.1))
                    for _ in range(2)])
                self.gn = m.GroupNorm(2, 4)
                self.heads = m.ModuleDict({"cls": m.Linear(4, 5), "aux": m.Linear(4, 2)})
                self.ln = m.LayerNorm(4)
                self.scale = m.Parameter(tensor(np.full(1, 1.5, np.float32)))
                self.register_buffer("steps", tensor(np.zeros(1, np.float32)))
                self.register_buffer("cache", tensor(np.zeros(2, np.float32)), persistent=False)

            def forward(self, x):
                x = self.stem(x)
                for block in self.blocks:
                    x = x + block(x)
                x = self.ln(self.gn(x).mean((2, 3)))
                return self.heads["cls"](x) * self.scale

        return Net()


def test_state_dict_order_matches_a_torch_twin_key_for_key(rng):
    ours = _Twin.build(nn, T)
    theirs = _Twin.build(tnn, lambda a: torch.tensor(a))
    ok, tk = list(ours.state_dict()), list(theirs.state_dict())
    assert ok == tk
    assert ok[:3] == ["scale", "steps", "stem.0.weight"]
    assert "cache" not in ok
    for (k, v), tv in zip(ours.state_dict().items(), theirs.state_dict().values()):
        assert v.shape == tuple(tv.shape), k
        assert v.dtype == tv.numpy().dtype, k
    # named_parameters / named_buffers / named_modules in torch's order too
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]


def test_torch_twin_state_loads_by_name_and_by_position_and_computes_the_same(rng):
    theirs = _Twin.build(tnn, lambda a: torch.tensor(a)).double()
    with torch.no_grad():
        for p in theirs.parameters():
            p.add_(torch.tensor(rng.standard_normal(tuple(p.shape)) * 0.1))
        for name, b in theirs.named_buffers():
            if b.dtype == torch.float64 and "running_var" in name:
                b.copy_(torch.tensor(rng.uniform(0.5, 2.0, tuple(b.shape))))
            elif b.dtype == torch.float64:
                b.copy_(torch.tensor(rng.standard_normal(tuple(b.shape))))
    by_name = _Twin.build(nn, T)
    by_name.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    by_position = _Twin.build(nn, T)
    keys = list(by_position.state_dict())
    by_position.load_state_dict({k: v.numpy() for k, v in
                                 zip(keys, theirs.state_dict().values())})
    x = randn(rng, 2, 3, 6, 6)
    for mode in ("eval", "train"):
        getattr(theirs, mode)()
        want = theirs(torch.tensor(x, dtype=torch.float64)).detach().numpy()
        for ours in (by_name, by_position):
            getattr(ours, mode)()
            assert_close(to_numpy(ours(T(x))), want, rtol=1e-4, atol=1e-4,
                         name=f"twin forward ({mode})")
    # and back: our state loads into torch strictly
    theirs.load_state_dict({k: torch.tensor(v) for k, v in by_name.state_dict().items()})


def test_non_persistent_buffers(rng):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("kept", T(np.ones(2, np.float32)))
            self.register_buffer("scratch", T(np.zeros(3, np.float32)), persistent=False)

    m = M()
    assert [n for n, _ in m.named_buffers()] == ["kept", "scratch"]
    assert list(m.state_dict()) == ["kept"]
    result = m.load_state_dict({"kept": np.full(2, 3.0, np.float32)})
    assert result.missing_keys == [] and result.unexpected_keys == []
    with pytest.raises(RuntimeError, match="Unexpected key.*scratch"):
        m.load_state_dict({"kept": np.ones(2, np.float32), "scratch": np.ones(3, np.float32)})
    # re-registering as persistent puts it back in the state
    m.register_buffer("scratch", T(np.zeros(3, np.float32)))
    assert list(m.state_dict()) == ["kept", "scratch"]
    # deleting a buffer forgets it
    del m.scratch
    assert list(m.state_dict()) == ["kept"] and "scratch" not in dict(m.named_buffers())


def test_register_buffer_errors_as_torch():
    m = nn.Linear(2, 2)
    with pytest.raises(KeyError, match=r"\."):
        m.register_buffer("a.b", T(np.ones(1, np.float32)))
    with pytest.raises(KeyError, match="empty"):
        m.register_buffer("", T(np.ones(1, np.float32)))
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("weight", T(np.ones(1, np.float32)))
    with pytest.raises(TypeError, match="buffer"):
        m.register_buffer("x", np.ones(1, np.float32))
    with pytest.raises(TypeError, match="string"):
        m.register_buffer(3, T(np.ones(1, np.float32)))
    m.register_buffer("empty", None)
    assert "empty" not in m.state_dict() and m.empty is None


def test_shared_modules_and_parameters_come_once_as_torch():
    def build(m):
        shared = m.Linear(3, 3)
        return m.Sequential(shared, m.ReLU(), shared)

    ours, theirs = build(nn), build(tnn)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert list(ours.state_dict()) == list(theirs.state_dict())  # both names, as torch


def test_state_dict_prefix_and_keep_vars():
    m = nn.Sequential(nn.Linear(2, 3))
    assert list(m.state_dict(prefix="net.")) == ["net.0.weight", "net.0.bias"]
    kept = m.state_dict(keep_vars=True)
    assert kept["0.weight"] is m[0].weight


# ----------------------------------------------------------------------------- nn.utils

def _grad_pair(rng, scale=1.0):
    """The same three parameters with the same gradients, in fastconv and in torch."""
    shapes = [(3, 4), (4,), (2, 2, 3)]
    ours, theirs = [], []
    for s in shapes:
        v, g = randn(rng, *s), randn(rng, *s, scale=scale)
        p = nn.Parameter(v)
        p.grad = T(g)
        tp = torch.tensor(v, dtype=torch.float64, requires_grad=True)
        tp.grad = torch.tensor(g, dtype=torch.float64)
        ours.append(p)
        theirs.append(tp)
    return ours, theirs


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(norm_type, max_norm, rng):
    ours, theirs = _grad_pair(rng)
    total = nn.utils.clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    want = tnn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    assert isinstance(total, fastconv.Tensor) and total.shape == ()
    assert_close(to_numpy(total), want.numpy(), name="total norm")
    for p, tp in zip(ours, theirs):
        assert_close(to_numpy(p.grad), tp.grad.numpy(), name="clipped grad")


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
def test_get_total_norm_and_clip_grads_with_norm_match_torch(norm_type, rng):
    """torch 2.6 split clip_grad_norm_ into get_total_norm + clip_grads_with_norm_."""
    ours, theirs = _grad_pair(rng)
    total = nn.utils.get_total_norm([p.grad for p in ours], norm_type)
    want = tnn.utils.get_total_norm([p.grad for p in theirs], norm_type)
    assert isinstance(total, fastconv.Tensor) and total.shape == ()
    assert_close(to_numpy(total), want.numpy(), name="total norm")
    max_norm = float(want) / 3
    nn.utils.clip_grads_with_norm_(ours, max_norm, total)
    tnn.utils.clip_grads_with_norm_(theirs, max_norm, want)
    for p, tp in zip(ours, theirs):
        assert_close(to_numpy(p.grad), tp.grad.numpy(), name="clipped grad")
    assert float(nn.utils.get_total_norm([])) == 0.0
    bad = [T(np.array([np.inf, 1.0], np.float32))]
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.get_total_norm(bad, error_if_nonfinite=True)


def test_clip_grad_norm_nonfinite_and_value(rng):
    ours, _ = _grad_pair(rng)
    ours[0].grad.data[0, 0] = np.inf
    with pytest.raises(RuntimeError, match="norm"):
        nn.utils.clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
    ours, theirs = _grad_pair(rng, scale=2.0)
    assert nn.utils.clip_grad_value_(ours, 0.7) is None
    tnn.utils.clip_grad_value_(theirs, 0.7)
    for p, tp in zip(ours, theirs):
        assert_close(to_numpy(p.grad), tp.grad.numpy())
    # a single tensor is accepted as torch accepts it
    p = ours[0]
    nn.utils.clip_grad_value_(p, 0.1)
    assert np.abs(to_numpy(p.grad)).max() <= 0.1 + 1e-7


def test_parameters_to_vector_and_back(rng):
    ours, theirs = _grad_pair(rng)
    vec = nn.utils.parameters_to_vector(ours)
    want = tnn.utils.parameters_to_vector(theirs)
    assert_close(to_numpy(vec.detach()), want.detach().numpy())
    # differentiable, as torch's
    g = randn(rng, vec.shape[0])
    for p in ours:
        p.grad = None
    vec.backward(T(g))
    offset = 0
    for p in ours:
        n = p.numel()
        np.testing.assert_array_equal(to_numpy(p.grad), g[offset:offset + n].reshape(p.shape))
        offset += n
    new = randn(rng, vec.shape[0])
    arrays_before = [p.data for p in ours]
    nn.utils.vector_to_parameters(T(new), ours)
    tnn.utils.vector_to_parameters(torch.tensor(new, dtype=torch.float64), theirs)
    for p, tp, a in zip(ours, theirs, arrays_before):
        assert_close(to_numpy(p.detach()), tp.detach().numpy())
        assert p.data is a  # copied in place: an optimizer holding the arrays sees the values
    with pytest.raises(TypeError, match="vec"):
        nn.utils.vector_to_parameters(new, ours)
    with pytest.raises(ValueError, match=str(vec.shape[0])):
        nn.utils.vector_to_parameters(T(new[:-1]), ours)
    with pytest.raises(TypeError, match="Tensor"):
        nn.utils.parameters_to_vector([np.ones(3)])


def test_utils_names_exist_where_torch_users_look():
    from fastconv.nn.utils import (  # noqa: F401
        clip_grad_norm_,
        clip_grad_value_,
        parameters_to_vector,
        vector_to_parameters,
    )

    assert re.search("max_norm", nn.utils.clip_grad_norm_.__doc__)
