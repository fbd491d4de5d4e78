"""fastconv.nn: the Module API (registration, traversal, state_dict, modes, repr),
each layer against its functional op, PyTorch's default initialisation, and nn.init."""

from __future__ import annotations

import math
import warnings
from collections import OrderedDict

import numpy as np
import pytest
import reference as R
from helpers import assert_close, randn, to_numpy

import fastconv
import fastconv.functional as F
from fastconv import nn


class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.features = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2))
        self.fc = nn.Linear(4 * 3 * 3, 5)
        self.scale = nn.Parameter(np.ones(1, np.float32))
        self.not_a_parameter = 3

    def forward(self, x):
        x = self.features(self.bn(self.conv(x)))
        return self.fc(x.flatten(1)) * self.scale


PARAM_NAMES = ["scale", "conv.weight", "conv.bias", "bn.weight", "bn.bias", "fc.weight", "fc.bias"]




# ----------------------------------------------------------------------------- registration

def test_named_parameters_and_buffers():
    net = SmallNet()
    names = [n for n, _ in net.named_parameters()]
    assert names == PARAM_NAMES
    params = list(net.parameters())
    assert len(params) == 7
    assert all(isinstance(p, nn.Parameter) and isinstance(p, fastconv.Tensor) for p in params)
    assert all(p.requires_grad for p in params)
    assert params[1] is net.conv.weight
    buffer_names = [n for n, _ in net.named_buffers()]
    assert "bn.running_mean" in buffer_names and "bn.running_var" in buffer_names
    assert all(not b.requires_grad for b in net.buffers())
    assert net.not_a_parameter == 3


def test_children_and_modules():
    net = SmallNet()
    assert [n for n, _ in net.named_children()] == ["conv", "bn", "features", "fc"]
    assert list(net.children())[2] is net.features
    names = [n for n, _ in net.named_modules()]
    assert names == ["", "conv", "bn", "features", "features.0", "features.1", "fc"]
    assert len(list(net.modules())) == 7


def test_reassigning_an_attribute_replaces_the_registration():
    net = SmallNet()
    net.fc = nn.Linear(36, 2)
    assert [n for n, _ in net.named_parameters()].count("fc.weight") == 1
    assert net.fc.weight.shape == (2, 36)


def test_register_buffer():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("steps", fastconv.tensor(np.zeros(2, np.float32)))

    m = M()
    assert [n for n, _ in m.named_buffers()] == ["steps"]
    assert "steps" in m.state_dict()
    assert list(m.parameters()) == []


# ----------------------------------------------------------------------------- state_dict

def test_state_dict_holds_host_copies_of_parameters_and_buffers(rng):
    net = SmallNet()
    sd = net.state_dict()
    assert isinstance(sd, OrderedDict)
    assert set(PARAM_NAMES) <= set(sd)
    assert {"bn.running_mean", "bn.running_var"} <= set(sd)
    for k, v in sd.items():
        assert isinstance(v, np.ndarray), k
    np.testing.assert_array_equal(sd["conv.weight"], to_numpy(net.conv.weight))
    sd["conv.weight"][...] = 7.0
    assert not np.any(to_numpy(net.conv.weight) == 7.0), "state_dict must hold copies"


def test_load_state_dict_roundtrip(rng):
    fastconv.manual_seed(1)
    a = SmallNet()
    fastconv.manual_seed(2)
    b = SmallNet()
    x = fastconv.tensor(randn(rng, 2, 3, 6, 6))
    a.train()
    a(x)  # moves the BN running statistics away from their initial values
    a.eval()
    b.eval()
    missing, unexpected = b.load_state_dict(a.state_dict())
    assert list(missing) == [] and list(unexpected) == []
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        np.testing.assert_array_equal(va, vb, err_msg=k)
    np.testing.assert_array_equal(to_numpy(a(x)), to_numpy(b(x)))


def test_load_state_dict_copies_its_input():
    net, sd = SmallNet(), SmallNet().state_dict()
    net.load_state_dict(sd)
    sd["fc.bias"][...] = 42.0
    assert not np.any(to_numpy(net.fc.bias) == 42.0)


def _random_state(rng, template):
    """Fresh values of the shapes and dtypes of ``template`` (integer buffers included)."""
    return {k: (rng.integers(0, 100, v.shape).astype(v.dtype) if v.dtype.kind in "iu"
                else rng.standard_normal(v.shape).astype(v.dtype)) for k, v in template.items()}


def _torch_style(keys):
    return ", ".join(f'"{k}"' for k in keys)


def test_load_state_dict_strict_rejects_missing_and_unexpected_keys(rng):
    net = SmallNet()
    before = {k: v.copy() for k, v in net.state_dict().items()}
    sd = _random_state(rng, before)
    names = list(sd)
    dropped = sorted(rng.choice(len(names), size=int(rng.integers(1, 4)), replace=False))
    missing = [names[i] for i in dropped]
    for k in missing:
        del sd[k]
    unexpected = [f"extra{i}.weight" for i in range(int(rng.integers(1, 3)))]
    for k in unexpected:
        sd[k] = np.zeros(3, np.float32)
    with pytest.raises(RuntimeError) as e:
        net.load_state_dict(sd)
    assert not isinstance(e.value, (KeyError, ValueError))
    assert str(e.value) == ("Error(s) in loading state_dict for SmallNet:\n\t"
                            f"Missing key(s) in state_dict: {_torch_style(missing)}. \n\t"
                            f"Unexpected key(s) in state_dict: {_torch_style(unexpected)}. ")
    for k, v in net.state_dict().items():  # a failed load copies nothing
        np.testing.assert_array_equal(v, before[k], err_msg=k)
    # only one kind: only its line
    del sd[unexpected[0]]
    for k in unexpected[1:]:
        del sd[k]
    with pytest.raises(RuntimeError) as e:
        net.load_state_dict(sd, strict=True)
    assert str(e.value).endswith(f"\n\tMissing key(s) in state_dict: {_torch_style(missing)}. ")


def test_load_state_dict_non_strict_reports_and_loads_the_rest(rng):
    net = SmallNet()
    sd = _random_state(rng, SmallNet().state_dict())
    del sd["fc.bias"]
    sd["extra.weight"] = np.zeros(3, np.float32)
    result = net.load_state_dict(sd, strict=False)
    assert type(result).__name__ == "_IncompatibleKeys"
    assert result.missing_keys == ["fc.bias"] and result.unexpected_keys == ["extra.weight"]
    missing, unexpected = result  # still unpacks as a pair
    assert (missing, unexpected) == (["fc.bias"], ["extra.weight"])
    for k, v in sd.items():
        if k != "extra.weight":
            np.testing.assert_array_equal(net.state_dict()[k], v, err_msg=k)
    # strict and matching: an empty result, shown as PyTorch shows it
    ok = net.load_state_dict(net.state_dict())
    assert ok.missing_keys == [] and ok.unexpected_keys == []
    assert repr(ok) == "<All keys matched successfully>"
    assert "fc.bias" in repr(result)


def test_load_state_dict_shape_mismatch_raises(rng):
    net = SmallNet()
    before = net.state_dict()
    sd = SmallNet().state_dict()
    rows = int(rng.integers(6, 9))
    sd["fc.weight"] = rng.standard_normal((rows, 36)).astype(np.float32)
    sd["conv.bias"] = fastconv.tensor(np.zeros((2, 4), np.float32))  # Tensors are read too
    expected = ("Error(s) in loading state_dict for SmallNet:\n\t"
                "size mismatch for conv.bias: copying a param with shape (2, 4) from checkpoint, "
                "the shape in current model is (4,).\n\t"
                f"size mismatch for fc.weight: copying a param with shape ({rows}, 36) from "
                "checkpoint, the shape in current model is (5, 36).")
    for strict in (True, False):
        with pytest.raises(RuntimeError) as e:
            net.load_state_dict(sd, strict=strict)
        assert str(e.value) == expected
        for k, v in net.state_dict().items():
            np.testing.assert_array_equal(v, before[k], err_msg=k)
    with pytest.raises(TypeError, match="dict-like"):
        net.load_state_dict([("fc.bias", np.zeros(5))])


def test_load_state_dict_reads_an_npz_of_named_arrays(rng, tmp_path):
    """What the checkpoint errors suggest for plain weight files: np.load's mapping works."""
    sd = _random_state(rng, SmallNet().state_dict())
    np.savez(tmp_path / "w.npz", **sd)
    net = SmallNet()
    with np.load(tmp_path / "w.npz", allow_pickle=False) as z:
        result = net.load_state_dict(z)
    assert (result.missing_keys, result.unexpected_keys) == ([], [])
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, sd[k], err_msg=k)


def test_load_state_dict_errors_read_as_pytorch(rng):
    """The same bad state dicts into the same layer names: the messages are PyTorch's, with
    shapes written (a, b) instead of torch.Size([a, b])."""
    torch = pytest.importorskip("torch")
    import re

    sizes = [int(v) for v in rng.integers(2, 6, 3)]
    ours = nn.Sequential(nn.Linear(sizes[0], sizes[1]), nn.ReLU(), nn.Linear(sizes[1], sizes[2]))
    theirs = torch.nn.Sequential(torch.nn.Linear(sizes[0], sizes[1]), torch.nn.ReLU(),
                                 torch.nn.Linear(sizes[1], sizes[2]))
    good = {k: rng.standard_normal(tuple(v.shape)).astype(np.float32)
            for k, v in theirs.state_dict().items()}
    assert list(good) == list(ours.state_dict())

    def as_ours(msg):
        return re.sub(r"torch\.Size\(\[([^\]]*)\]\)",
                      lambda m: str(tuple(int(v) for v in m.group(1).split(",") if v.strip())),
                      msg)

    cases = []
    bad = dict(good)
    del bad[list(good)[int(rng.integers(0, 4))]]
    bad["2.scale"] = np.ones(1, np.float32)
    cases.append((bad, True))
    bad = dict(good)
    bad["2.weight"] = np.zeros((sizes[2] + 1, sizes[1]), np.float32)
    bad["0.bias"] = np.zeros((), np.float32)
    cases += [(bad, True), (bad, False)]
    bad = dict(bad)
    del bad["2.bias"]
    bad["3.weight"] = np.zeros(2, np.float32)
    cases.append((bad, True))
    for sd, strict in cases:
        with pytest.raises(RuntimeError) as theirs_e:
            theirs.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()},
                                   strict=strict)
        with pytest.raises(RuntimeError) as ours_e:
            ours.load_state_dict(sd, strict=strict)
        assert str(ours_e.value) == as_ours(str(theirs_e.value))
    sd = dict(good)
    sd["2.scale"] = np.ones(1, np.float32)
    del sd["0.bias"]
    t = theirs.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=False)
    o = ours.load_state_dict(sd, strict=False)
    assert (o.missing_keys, o.unexpected_keys) == (t.missing_keys, t.unexpected_keys)
    assert tuple(o) == tuple(t)


# ----------------------------------------------------------------------------- modes, grads

def test_train_eval_propagate_to_every_submodule():
    net = SmallNet()
    assert net.training and all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net.train(False)
    assert not any(m.training for m in net.modules())


def test_zero_grad_and_parameter_gradients(rng):
    net = SmallNet()
    x = fastconv.tensor(randn(rng, 2, 3, 6, 6))
    net(x).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, name
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_zero_grad_set_to_none_false_zeroes_in_place_as_torch(rng):
    torch = pytest.importorskip("torch")
    w, b, x = randn(rng, 3, 4), randn(rng, 3), randn(rng, 2, 4)
    got = {}
    for lib in (torch, fastconv):
        net = lib.nn.Linear(4, 3)
        with lib.no_grad():
            net.weight.copy_(lib.tensor(w))
            net.bias.copy_(lib.tensor(b))
        net(lib.tensor(x)).sum().backward()
        grads = [p.grad for p in net.parameters()]
        net.zero_grad(set_to_none=False)
        assert all(p.grad is g for p, g in zip(net.parameters(), grads))  # the same tensors
        assert all(not p.grad.requires_grad and not p.grad.any() for p in net.parameters())
        net(lib.tensor(x)).sum().backward()  # accumulates onto the zeros
        net.zero_grad(False)  # positional, as torch allows
        zeros = [float(p.grad.abs().sum()) for p in net.parameters()]
        (net(lib.tensor(x)) ** 2).sum().backward()
        got[lib] = [p.grad.numpy().copy() for p in net.parameters()] + [zeros]
        net.zero_grad()
        assert all(p.grad is None for p in net.parameters())
    for a, b in zip(got[fastconv], got[torch]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_module_to_cpu_returns_self():
    net = SmallNet()
    assert net.to("cpu") is net
    assert all(p.device == "cpu" for p in net.parameters())


def test_forward_hooks_see_and_may_replace_inputs_and_outputs(rng):
    lin = nn.Linear(5, 3)
    x = fastconv.tensor(randn(rng, 4, 5))
    plain = to_numpy(lin(x))
    seen = []
    h_seen = lin.register_forward_hook(lambda m, args, out: seen.append((m, args, to_numpy(out))))
    h_pre = lin.register_forward_pre_hook(lambda m, args: (args[0] * 2,))
    h_post = lin.register_forward_hook(lambda m, args, out: out + 1)
    out = to_numpy(lin(x))
    b = to_numpy(lin.bias)
    # linear(2x) = 2 * linear(x) - bias, then the second hook adds 1.
    assert_close(out, 2 * plain - b + 1, rtol=1e-5, atol=1e-5)
    (module, args, recorded), = seen
    assert module is lin and len(args) == 1
    assert_close(to_numpy(args[0]), 2 * to_numpy(x), rtol=0, atol=0)
    assert_close(recorded, 2 * plain - b, rtol=1e-5, atol=1e-5)  # hooks run in order
    for handle in (h_seen, h_pre, h_post):
        handle.remove()
    handle.remove()  # removing twice is harmless
    assert_close(to_numpy(lin(x)), plain, rtol=0, atol=0)
    assert len(seen) == 1


def test_forward_hook_handle_is_a_context_manager_and_hooks_must_be_callable(rng):
    relu = nn.ReLU()
    calls = []
    with relu.register_forward_hook(lambda m, a, o: calls.append(o.shape)):
        relu(fastconv.tensor(randn(rng, 2, 3)))
    relu(fastconv.tensor(randn(rng, 2, 3)))
    assert calls == [(2, 3)]
    with pytest.raises(TypeError, match="callable"):
        relu.register_forward_hook("not a function")


def test_repr_is_readable():
    net = SmallNet()
    text = repr(net)
    for part in ("SmallNet", "(conv): Conv2d", "(bn): BatchNorm2d", "(features): Sequential",
                 "(0): ReLU", "(1): MaxPool2d", "(fc): Linear"):
        assert part in text, f"{part!r} not in\n{text}"
    conv = repr(nn.Conv2d(3, 16, 5, stride=2, padding=2))
    assert "3" in conv and "16" in conv and "5" in conv and "stride" in conv
    assert "0.3" in repr(nn.Dropout(0.3))


def test_sequential_indexing_and_order(rng):
    seq = nn.Sequential(nn.Conv2d(2, 3, 1), nn.ReLU(), nn.Flatten())
    assert len(seq) == 3
    assert isinstance(seq[0], nn.Conv2d) and isinstance(seq[-1], nn.Flatten)
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias"]
    x = fastconv.tensor(randn(rng, 2, 2, 3, 3))
    want = seq[2](seq[1](seq[0](x)))
    np.testing.assert_array_equal(to_numpy(seq(x)), to_numpy(want))


def test_sequential_from_ordered_dict():
    seq = nn.Sequential(OrderedDict([("conv", nn.Conv2d(1, 2, 3)), ("act", nn.ReLU())]))
    assert [n for n, _ in seq.named_parameters()] == ["conv.weight", "conv.bias"]


# ----------------------------------------------------------------------------- layers = ops

def _check_layer(layer, fn, x):
    """layer(x) equals fn(x) and gradients flow into x."""
    t = fastconv.tensor(x, requires_grad=True)
    y = layer(t)
    want = fn(fastconv.tensor(x))
    assert_close(to_numpy(y), to_numpy(want), name=type(layer).__name__)
    y.sum().backward()
    assert t.grad is not None and t.grad.shape == t.shape


def test_conv2d_layer_matches_functional(rng):
    layer = nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2)
    assert layer.weight.shape == (6, 2, 3, 2) and layer.bias.shape == (6,)
    x = randn(rng, 2, 4, 7, 8)
    _check_layer(layer, lambda t: F.conv2d(t, layer.weight, layer.bias, (2, 1), (1, 0), (1, 2), 2),
                 x)
    assert_close(to_numpy(layer(fastconv.tensor(x))),
                 R.conv2d(x, to_numpy(layer.weight), to_numpy(layer.bias), (2, 1), (1, 0),
                          (1, 2), 2), name="Conv2d vs reference")
    nobias = nn.Conv2d(4, 6, 1, bias=False)
    assert nobias.bias is None and [n for n, _ in nobias.named_parameters()] == ["weight"]


def test_linear_layer_matches_functional(rng):
    layer = nn.Linear(7, 3)
    assert layer.weight.shape == (3, 7) and layer.bias.shape == (3,)
    x = randn(rng, 5, 7)
    _check_layer(layer, lambda t: F.linear(t, layer.weight, layer.bias), x)
    assert_close(to_numpy(layer(fastconv.tensor(x))),
                 R.linear(x, to_numpy(layer.weight), to_numpy(layer.bias)), name="vs reference")


@pytest.mark.parametrize("layer,fn", [
    (nn.ReLU(), F.relu),
    (nn.MaxPool2d(3, 2, 1, ceil_mode=True), lambda t: F.max_pool2d(t, 3, 2, 1, ceil_mode=True)),
    (nn.MaxPool2d(2), lambda t: F.max_pool2d(t, 2, 2)),
    (nn.AvgPool2d(3, 2, 1, count_include_pad=False),
     lambda t: F.avg_pool2d(t, 3, 2, 1, False, False)),
    (nn.AvgPool2d(2), lambda t: F.avg_pool2d(t, 2)),
    (nn.AdaptiveAvgPool2d(1), lambda t: F.adaptive_avg_pool2d(t, 1)),
    (nn.LocalResponseNorm(3, 0.5, 0.6, 2.0), lambda t: F.local_response_norm(t, 3, 0.5, 0.6, 2.0)),
    (nn.Flatten(), lambda t: t.flatten(1)),
    (nn.Identity(), lambda t: t),
], ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else "")
def test_parameterless_layers_match_functional(layer, fn, rng):
    _check_layer(layer, fn, randn(rng, 2, 4, 7, 6))


def test_batchnorm2d_layer_train_and_eval(rng):
    bn = nn.BatchNorm2d(3, momentum=0.2)
    assert_close(to_numpy(bn.weight), np.ones(3), name="weight init")
    assert_close(to_numpy(bn.bias), np.zeros(3), name="bias init")
    assert_close(to_numpy(bn.running_mean), np.zeros(3), name="running_mean init")
    assert_close(to_numpy(bn.running_var), np.ones(3), name="running_var init")
    x = (randn(rng, 4, 3, 5, 5) * 2 + 1).astype(np.float32)
    y = bn(fastconv.tensor(x))
    yr, mean, _, var_u = R.batch_norm_train(x)
    assert_close(to_numpy(y), yr, name="train output")
    rm, rv = R.batch_norm_running_update(np.zeros(3), np.ones(3), mean, var_u, 0.2)
    assert_close(to_numpy(bn.running_mean), rm, name="running_mean")
    assert_close(to_numpy(bn.running_var), rv, name="running_var")
    bn.eval()
    x2 = randn(rng, 2, 3, 4, 4)
    assert_close(to_numpy(bn(fastconv.tensor(x2))), R.batch_norm_eval(x2, rm, rv), name="eval")
    assert_close(to_numpy(bn.running_mean), rm, name="eval leaves running_mean alone")


def test_batchnorm1d_layer(rng):
    bn = nn.BatchNorm1d(5)
    x = randn(rng, 8, 5)
    assert_close(to_numpy(bn(fastconv.tensor(x))), R.batch_norm_train(x)[0], name="BatchNorm1d")
    x3 = randn(rng, 4, 5, 6)
    assert_close(to_numpy(bn(fastconv.tensor(x3))), R.batch_norm_train(x3)[0], name="(N, C, L)")


def test_dropout_layers_follow_the_mode(rng, seed):
    x = (1.0 + np.abs(randn(rng, 8, 6, 4, 4))).astype(np.float32)
    for layer, fn in ((nn.Dropout(0.4), F.dropout), (nn.Dropout2d(0.4), F.dropout2d)):
        fastconv.manual_seed(seed)
        y = to_numpy(layer(fastconv.tensor(x)))
        fastconv.manual_seed(seed)
        want = to_numpy(fn(fastconv.tensor(x), 0.4, True))
        np.testing.assert_array_equal(y, want)
        assert (y == 0).any()
        layer.eval()
        np.testing.assert_array_equal(to_numpy(layer(fastconv.tensor(x))), x)


def test_concat_runs_branches_on_the_same_input(rng):
    b1 = nn.Conv2d(3, 2, 1)
    b2 = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
    b3 = nn.MaxPool2d(3, 1, 1)
    block = nn.Concat(b1, b2, b3)
    assert len([n for n, _ in block.named_parameters()]) == 4
    x = randn(rng, 2, 3, 5, 5)
    t = fastconv.tensor(x, requires_grad=True)
    y = block(t)
    assert y.shape == (2, 2 + 4 + 3, 5, 5)
    parts = [to_numpy(b(fastconv.tensor(x))) for b in (b1, b2, b3)]
    assert_close(to_numpy(y), np.concatenate(parts, axis=1), name="Concat")
    y.sum().backward()
    assert t.grad is not None
    assert b1.weight.grad is not None and b2[0].weight.grad is not None


# ----------------------------------------------------------------------------- initialisation

def _uniform_bound_check(values, bound, name):
    v = values.astype(np.float64).reshape(-1)
    assert np.abs(v).max() <= bound * (1 + 1e-6), f"{name}: value outside [-{bound}, {bound}]"
    assert v.max() > 0.95 * bound and v.min() < -0.95 * bound, f"{name}: does not fill the range"
    assert abs(v.std() / (bound / math.sqrt(3)) - 1) < 0.03, f"{name}: std {v.std()}"
    assert abs(v.mean()) < 0.05 * bound, f"{name}: mean {v.mean()}"


def test_conv2d_default_init_matches_pytorch():
    layer = nn.Conv2d(64, 96, 3)
    fan_in = 64 * 9
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)) gives U(-1/sqrt(fan_in), ..)
    _uniform_bound_check(to_numpy(layer.weight), bound, "Conv2d.weight")
    b = to_numpy(layer.bias)
    assert np.abs(b).max() <= np.float32(bound) and b.std() > 0.3 * bound
    grouped = nn.Conv2d(64, 96, 3, groups=4)
    _uniform_bound_check(to_numpy(grouped.weight), 1 / math.sqrt(16 * 9), "grouped Conv2d.weight")


def test_linear_default_init_matches_pytorch():
    layer = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    _uniform_bound_check(to_numpy(layer.weight), bound, "Linear.weight")
    b = to_numpy(layer.bias)
    assert np.abs(b).max() <= np.float32(bound) and b.std() > 0.3 * bound


def test_default_init_is_reproducible_under_manual_seed(seed):
    fastconv.manual_seed(seed)
    a = nn.Conv2d(3, 8, 3)
    fastconv.manual_seed(seed)
    b = nn.Conv2d(3, 8, 3)
    np.testing.assert_array_equal(to_numpy(a.weight), to_numpy(b.weight))
    c = nn.Conv2d(3, 8, 3)
    assert not np.array_equal(to_numpy(a.weight), to_numpy(c.weight))


def _param(shape):
    return nn.Parameter(np.zeros(shape, np.float32))


CONV_SHAPE = (128, 64, 3, 3)  # fan_in 576, fan_out 1152
FAN_IN, FAN_OUT = 64 * 9, 128 * 9


@pytest.mark.parametrize("kwargs,std", [
    ({}, math.sqrt(2.0 / FAN_IN)),  # default: a=0, fan_in, leaky_relu -> gain sqrt(2)
    ({"mode": "fan_out", "nonlinearity": "relu"}, math.sqrt(2.0 / FAN_OUT)),
    ({"a": 0.2}, math.sqrt(2.0 / (1 + 0.04)) / math.sqrt(FAN_IN)),
    ({"nonlinearity": "linear"}, 1 / math.sqrt(FAN_IN)),
], ids=str)
def test_kaiming_normal(kwargs, std):
    p = _param(CONV_SHAPE)
    out = nn.init.kaiming_normal_(p, **kwargs)
    assert out is p
    v = to_numpy(p).astype(np.float64)
    assert p.dtype == np.float32 and p.shape == CONV_SHAPE
    assert abs(v.std() / std - 1) < 0.02, (v.std(), std)
    assert abs(v.mean()) < 0.02 * std


@pytest.mark.parametrize("kwargs,bound", [
    ({}, math.sqrt(6.0 / FAN_IN)),
    ({"a": math.sqrt(5)}, 1 / math.sqrt(FAN_IN)),
    ({"mode": "fan_out", "nonlinearity": "relu"}, math.sqrt(6.0 / FAN_OUT)),
], ids=str)
def test_kaiming_uniform(kwargs, bound):
    p = _param(CONV_SHAPE)
    assert nn.init.kaiming_uniform_(p, **kwargs) is p
    _uniform_bound_check(to_numpy(p), bound, "kaiming_uniform_")


@pytest.mark.parametrize("gain", [1.0, math.sqrt(2.0)])
def test_xavier(gain):
    p = _param(CONV_SHAPE)
    assert nn.init.xavier_uniform_(p, gain=gain) is p
    _uniform_bound_check(to_numpy(p), gain * math.sqrt(6.0 / (FAN_IN + FAN_OUT)), "xavier_uniform_")
    q = _param((300, 500))
    assert nn.init.xavier_normal_(q, gain=gain) is q
    std = gain * math.sqrt(2.0 / 800)
    v = to_numpy(q).astype(np.float64)
    assert abs(v.std() / std - 1) < 0.02 and abs(v.mean()) < 0.02 * std


def test_normal_uniform_constant():
    p = _param((400, 500))
    nn.init.normal_(p, mean=0.5, std=2.0)
    v = to_numpy(p).astype(np.float64)
    assert abs(v.mean() - 0.5) < 0.03 and abs(v.std() / 2.0 - 1) < 0.01
    nn.init.uniform_(p, a=-3.0, b=1.0)
    v = to_numpy(p).astype(np.float64)
    assert v.min() >= -3.0 and v.max() <= 1.0 and abs(v.mean() + 1.0) < 0.02
    assert abs(v.std() - 4 / math.sqrt(12)) < 0.02
    assert nn.init.constant_(p, 0.25) is p
    np.testing.assert_array_equal(to_numpy(p), np.full((400, 500), 0.25, np.float32))
    nn.init.zeros_(p)
    np.testing.assert_array_equal(to_numpy(p), 0.0)
    nn.init.ones_(p)
    np.testing.assert_array_equal(to_numpy(p), 1.0)


def test_trunc_normal():
    p = _param((400, 500))
    assert nn.init.trunc_normal_(p, mean=0.0, std=1.0, a=-2.0, b=2.0) is p
    v = to_numpy(p).astype(np.float64)
    assert v.min() >= -2.0 and v.max() <= 2.0
    # std of a standard normal truncated to [-2, 2]
    phi2 = math.exp(-2.0) / math.sqrt(2 * math.pi)
    z = math.erf(2 / math.sqrt(2))
    want_std = math.sqrt(1 - 2 * 2 * phi2 / z)
    assert abs(v.std() / want_std - 1) < 0.01 and abs(v.mean()) < 0.015
    q = _param((200, 200))
    nn.init.trunc_normal_(q, mean=1.0, std=0.5, a=0.5, b=1.2)
    w = to_numpy(q)
    assert w.min() >= 0.5 and w.max() <= 1.2 and w.std() > 0.1


def _ks_two_sample(x, y) -> float:
    """The two-sample Kolmogorov-Smirnov statistic max |F_x - F_y|."""
    x, y = np.sort(x), np.sort(y)
    grid = np.concatenate([x, y])
    return float(np.abs(np.searchsorted(x, grid, "right") / len(x)
                        - np.searchsorted(y, grid, "right") / len(y)).max())


@pytest.mark.parametrize("a,b,mean,std", [(8.0, 9.0, 0.0, 1.0), (-3.0, -2.5, 0.0, 1.0),
                                          (0.1, 0.2, 0.0, 1.0), (-1.0, 1.0, 5.0, 0.5),
                                          (2.0, 6.0, 0.0, 1.0)], ids=str)
def test_trunc_normal_tails_match_torch(a, b, mean, std):
    """Bounds with little of the normal's mass between them (torch 2.13 samples these by
    rejection from uniform proposals): the same distribution, within [a, b]."""
    torch = pytest.importorskip("torch")
    fastconv.manual_seed(0)
    ours = to_numpy(nn.init.trunc_normal_(_param((4000,)), mean, std, a, b)).astype(np.float64)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch: "mean is more than 2 std from [a, b]"
        theirs = torch.nn.init.trunc_normal_(torch.empty(4000, dtype=torch.float64), mean, std,
                                             a, b).numpy()
    assert ours.min() >= np.float32(a) and ours.max() <= np.float32(b)
    assert _ks_two_sample(ours, theirs) < 0.05  # 4000 vs 4000 draws: the 0.1% level is 0.044


@pytest.mark.parametrize("sign", [1, -1])
def test_trunc_normal_far_tail_terminates_with_the_right_shape(sign):
    """[40, 50]: Phi underflows there; the draws are a + E / a with E ~ Exp(1) to O(1/a^2)."""
    fastconv.manual_seed(1)
    a, b = sign * 40.0, sign * 50.0
    v = sign * to_numpy(nn.init.trunc_normal_(_param((20000,)), a=min(a, b), b=max(a, b)))
    v = v.astype(np.float64)
    assert v.min() >= 40.0 and v.max() <= 50.0
    e = (v - 40.0) * 40.0
    assert abs(e.mean() - (1 - 2 / 40 ** 2)) < 0.03 and abs(e.std() - 1) < 0.05


def test_trunc_normal_degenerate_and_bad_bounds():
    p = _param((1000,))
    np.testing.assert_array_equal(to_numpy(nn.init.trunc_normal_(p, a=1.0, b=1.0)), 1.0)
    np.testing.assert_array_equal(to_numpy(nn.init.trunc_normal_(p, mean=5.0, std=0.0)), 2.0)
    assert tuple(nn.init.trunc_normal_(_param((0, 3)), a=8.0, b=9.0).shape) == (0, 3)
    v = to_numpy(nn.init.trunc_normal_(p, a=3.0, b=math.inf))  # torch 2.13 refuses this one
    assert np.isfinite(v).all() and v.min() >= 3.0 and 3.2 < v.mean() < 3.4  # E = 3.28
    with pytest.raises(ValueError, match=r"\ba\b.*\bb\b.*a=2 > b=-2"):
        nn.init.trunc_normal_(p, a=2.0, b=-2.0)
    for kwargs, name in [({"a": math.nan}, "a="), ({"b": -math.inf}, "b="),
                         ({"std": -1.0}, "std"), ({"mean": math.inf}, "mean")]:
        with pytest.raises(ValueError, match=name):
            nn.init.trunc_normal_(p, **kwargs)
    with pytest.raises(TypeError, match=r"\bb\b"):
        nn.init.trunc_normal_(p, b="2")


def test_init_argument_errors_give_torchs_messages():
    torch = pytest.importorskip("torch")
    cases = [(lambda m, t: m.uniform_(t, a=1, b=0), ValueError),
             (lambda m, t: m.normal_(t, std=-1), ValueError),
             (lambda m, t: m.normal_(t, std=math.nan), ValueError),
             (lambda m, t: m.calculate_gain("leaky_relu", "a"), ValueError),
             (lambda m, t: m.calculate_gain("leaky_relu", True), ValueError),
             (lambda m, t: m.kaiming_uniform_(t, a="x"), ValueError)]
    for fn, exc in cases:
        with pytest.raises(Exception) as theirs:
            fn(torch.nn.init, torch.empty(3, 3))
        with pytest.raises(exc) as ours:
            fn(nn.init, _param((3, 3)))
        assert str(theirs.value) in str(ours.value)
    with pytest.raises(ValueError, match=r"a must be <= b"):
        nn.init.uniform_(_param((3,)), a=1, b=0)
    with pytest.raises(ValueError, match=r"\ba\b.*finite"):
        nn.init.uniform_(_param((3,)), a=-math.inf)
    # what torch accepts
    for name in ("conv1d", "conv3d", "conv_transpose2d", "linear", "sigmoid"):
        assert nn.init.calculate_gain(name) == torch.nn.init.calculate_gain(name) == 1
    assert nn.init.calculate_gain("leaky_relu", 2) == torch.nn.init.calculate_gain("leaky_relu", 2)
    np.testing.assert_array_equal(to_numpy(nn.init.uniform_(_param((3,)), 1, 1)), 1.0)
    np.testing.assert_array_equal(to_numpy(nn.init.normal_(_param((3,)), 2, 0)), 2.0)


def test_zero_element_layers_build_and_run_as_torchs():
    """No inputs (in_channels / in_features 0): torch warns that initialising the empty weight
    is a no-op and builds the layer; the output is the bias alone."""
    torch = pytest.importorskip("torch")
    for make, shape in [(lambda m: m.Linear(0, 4), (2, 0)), (lambda m: m.Linear(4, 0), (2, 4)),
                        (lambda m: m.Conv2d(0, 4, 3), (2, 0, 5, 5))]:
        with pytest.warns(UserWarning, match="zero-element"):
            ours = make(nn)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = make(torch.nn)
        assert tuple(ours.weight.shape) == tuple(theirs.weight.shape)
        y = ours(fastconv.zeros(*shape))
        expect = to_numpy(ours.bias).reshape((1, -1) + (1,) * (len(shape) - 2))
        np.testing.assert_array_equal(to_numpy(y), np.broadcast_to(expect, y.shape))
        if shape[1] == 0:
            np.testing.assert_array_equal(to_numpy(ours.bias), 0.0)  # not uninitialised memory
    for init_ in ("kaiming_uniform_", "kaiming_normal_"):
        t = _param((4, 0))
        with pytest.warns(UserWarning, match="Initializing zero-element tensors is a no-op"):
            assert getattr(nn.init, init_)(t) is t
    for shape in [(4, 0), (0, 0)]:
        assert tuple(nn.init.xavier_normal_(_param(shape)).shape) == shape
        assert tuple(nn.init.xavier_uniform_(_param(shape)).shape) == shape


def test_init_keeps_the_parameter_usable(rng):
    """After init the same Parameter object is in the module and still trains."""
    layer = nn.Conv2d(2, 3, 3)
    w = layer.weight
    nn.init.kaiming_normal_(layer.weight)
    assert layer.weight is w and layer.weight.requires_grad
    layer(fastconv.tensor(randn(rng, 1, 2, 4, 4))).sum().backward()
    assert layer.weight.grad is not None


def test_init_takes_torchs_generator_argument():
    """torch 2's initialisers take ``generator=``: the same seed gives the same values, and the
    global generator is left alone."""
    fns = [nn.init.uniform_, nn.init.normal_, nn.init.trunc_normal_, nn.init.xavier_uniform_,
           nn.init.xavier_normal_, nn.init.kaiming_uniform_, nn.init.kaiming_normal_,
           nn.init.orthogonal_, lambda t, generator: nn.init.sparse_(t, 0.5, generator=generator)]
    seed = int(np.random.default_rng().integers(0, 2 ** 31))
    for fn in fns:
        fastconv.manual_seed(seed)
        expect_global = to_numpy(fastconv.randn(3))
        fastconv.manual_seed(seed)
        a = to_numpy(fn(_param((5, 4)), generator=fastconv.Generator().manual_seed(seed)))
        b = to_numpy(fn(_param((5, 4)), generator=fastconv.Generator().manual_seed(seed)))
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(to_numpy(fastconv.randn(3)), expect_global)
        c = to_numpy(fn(_param((5, 4)), generator=np.random.default_rng(seed)))
        assert c.shape == (5, 4)
    with pytest.raises(TypeError, match="generator"):
        nn.init.normal_(_param((3,)), generator=3)


def test_init_mode_is_case_insensitive_as_torchs():
    torch = pytest.importorskip("torch")
    for mode in ("FAN_OUT", "Fan_In"):
        t = nn.init.kaiming_normal_(_param((8, 4)), mode=mode)
        assert tuple(t.shape) == (8, 4)
        assert nn.init._calculate_correct_fan(_param((8, 4, 3)), mode) == \
            torch.nn.init._calculate_correct_fan(torch.empty(8, 4, 3), mode)
    with pytest.raises(ValueError, match="fan_in, fan_out"):
        nn.init.kaiming_uniform_(_param((8, 4)), mode="fan_avg")
