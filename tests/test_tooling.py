"""The tools PyTorch users reach for around a model, each against torch's own:

* ``optim.Adadelta``: step by step against ``torch.optim.Adadelta`` (every option), its
  signature and argument checks, and a state_dict round trip through a checkpoint file;
* ``nn.utils.fusion``: conv / transposed conv / linear folded with an eval-mode BatchNorm
  give the outputs of the two layers, and the weights torch's fusion gives;
* ``fastconv.testing``: ``assert_close`` raises where torch's does, with torch's messages;
  ``make_tensor``'s shapes, dtypes and ranges;
* ``fastconv.utils.benchmark``: Timer and Measurement (statistics, repr as torch's);
* ``fastconv.profiler``: the ops, backward nodes and ranges recorded, self and total times,
  tables, Chrome traces, schedules, and ``fastconv.autograd.profiler``.
"""

from __future__ import annotations

import gzip
import inspect
import json
import threading
import warnings

import numpy as np
import pytest
from helpers import randn

import fastconv as fc
import fastconv.functional as F
from fastconv import checkpoint, function, nn, optim
from fastconv.nn import Parameter
from fastconv.nn.utils import fusion
from fastconv.profiler import ProfilerAction, ProfilerActivity, profile, record_function
from fastconv.testing import assert_close, make_tensor
from fastconv.utils import benchmark

torch = pytest.importorskip("torch")


# ----------------------------------------------------------------------------- Adadelta

def _pair(rng, shapes=((3, 4), (5,), (2, 3, 2))):
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    return ([Parameter(a.copy()) for a in arrays],
            [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in arrays])


def _run_both(rng, ours, theirs, opt, topt, steps=6, skip_one=True):
    for k in range(steps):
        for j, (p, tp) in enumerate(zip(ours, theirs)):
            if skip_one and k == 2 and j == 1:  # a parameter without a gradient is skipped
                p.grad, tp.grad = None, None
                continue
            g = rng.standard_normal(p.shape).astype(np.float32)
            p.grad = Parameter(g)
            tp.grad = torch.from_numpy(g.copy())
        opt.step()
        topt.step()
        for p, tp in zip(ours, theirs):
            np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=2e-5, atol=2e-6)


ADADELTA = [{}, {"lr": 0.5}, {"rho": 0.5}, {"eps": 1e-3}, {"weight_decay": 0.1},
            {"maximize": True}, {"lr": 2.0, "rho": 0.95, "eps": 1e-4, "weight_decay": 0.01,
                                 "maximize": True}]


@pytest.mark.parametrize("kw", ADADELTA, ids=[str(k) for k in ADADELTA])
def test_adadelta_matches_torch_step_by_step(rng, kw):
    ours, theirs = _pair(rng)
    _run_both(rng, ours, theirs, optim.Adadelta(ours, **kw), torch.optim.Adadelta(theirs, **kw))


def test_adadelta_signature_defaults_and_errors():
    ours = inspect.signature(optim.Adadelta.__init__).parameters
    theirs = inspect.signature(torch.optim.Adadelta.__init__).parameters
    assert list(ours) == list(theirs)
    for k, p in theirs.items():
        if p.default is not inspect.Parameter.empty:
            assert ours[k].default == p.default and ours[k].kind == p.kind, k
    ps = [Parameter(np.zeros(3, np.float32))]
    tps = [torch.nn.Parameter(torch.zeros(3))]
    for bad in ({"lr": -1.0}, {"rho": 1.5}, {"rho": -0.1}, {"eps": -1e-6},
                {"weight_decay": -0.1}):
        with pytest.raises(ValueError):
            torch.optim.Adadelta(tps, **bad)
        with pytest.raises(ValueError, match=f"Invalid {'learning rate' if 'lr' in bad else ''}"):
            optim.Adadelta(ps, **bad)
    with pytest.raises(ValueError, match="differentiable=True is not supported"):
        optim.Adadelta(ps, differentiable=True)
    optim.Adadelta(ps, foreach=True)


def test_adadelta_state_and_round_trip(rng, tmp_path):
    ours, theirs = _pair(rng)
    opt, topt = optim.Adadelta(ours, lr=0.7), torch.optim.Adadelta(theirs, lr=0.7)
    assert opt.state_dict()["state"] == {}
    _run_both(rng, ours, theirs, opt, topt, steps=3, skip_one=False)
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert sorted(sd["state"]) == sorted(tsd["state"])
    for i in sd["state"]:
        assert sorted(sd["state"][i]) == sorted(tsd["state"][i]) == ["acc_delta", "square_avg",
                                                                      "step"]
        assert sd["state"][i]["step"] == int(tsd["state"][i]["step"]) == 3
        for name in ("square_avg", "acc_delta"):
            np.testing.assert_allclose(sd["state"][i][name], tsd["state"][i][name].numpy(),
                                       rtol=2e-5, atol=1e-7)
    assert sd["param_groups"][0]["rho"] == 0.9 and sd["param_groups"][0]["lr"] == 0.7
    path = str(tmp_path / "adadelta.npz")
    checkpoint.save(sd, path)
    ours2 = [Parameter(p.data.copy()) for p in ours]
    opt2 = optim.Adadelta(ours2, lr=0.1)
    opt2.load_state_dict(checkpoint.load(path))
    assert opt2.param_groups[0]["lr"] == 0.7
    _run_both(rng, ours2, theirs, opt2, topt, steps=3, skip_one=False)


def test_adadelta_trains_a_layer(rng):
    fc.manual_seed(0)
    layer = nn.Linear(4, 1)
    x = fc.tensor(randn(rng, 64, 4))
    y = x @ fc.tensor(np.array([[1.0], [-2.0], [0.5], [3.0]], np.float32)) + 0.5
    opt = optim.Adadelta(layer.parameters(), lr=1.0)
    first = None
    for _ in range(600):  # Adadelta starts slowly: ~0.5x after 200 steps, ~0.04x after 600
        opt.zero_grad()
        loss = F.mse_loss(layer(x), y)
        first = float(loss) if first is None else first
        loss.backward()
        opt.step()
    assert float(loss) < 0.2 * first


# ----------------------------------------------------------------------------- fusion

def _bn_with_statistics(bn, rng, shape):
    """Running statistics and affine parameters away from their initial values."""
    n = bn.num_features
    bn.running_mean.data[...] = randn(rng, n)
    bn.running_var.data[...] = np.abs(randn(rng, n)) + 0.5
    if bn.weight is not None:
        bn.weight.data[...] = randn(rng, n)
        bn.bias.data[...] = randn(rng, n)
    return bn


def _torch_copy(ours, theirs):
    theirs.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in
                            ours.state_dict().items()})
    return theirs


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_fuse_conv_bn_eval(bias, affine, rng):
    conv = nn.Conv2d(3, 5, 3, padding=1, bias=bias).eval()
    bn = _bn_with_statistics(nn.BatchNorm2d(5, eps=1e-3, affine=affine), rng, None).eval()
    x = fc.tensor(randn(rng, 2, 3, 6, 6))
    fused = fusion.fuse_conv_bn_eval(conv, bn)
    assert isinstance(fused, nn.Conv2d) and fused is not conv
    assert_close(fused(x), bn(conv(x)), rtol=1e-5, atol=1e-5)
    assert isinstance(fused.weight, Parameter) and isinstance(fused.bias, Parameter)
    assert fused.weight.requires_grad and fused.bias.requires_grad == bias
    assert conv.bias is None or conv.bias is not fused.bias  # the original is unchanged
    tconv = _torch_copy(conv, torch.nn.Conv2d(3, 5, 3, padding=1, bias=bias).eval())
    tbn = _torch_copy(bn, torch.nn.BatchNorm2d(5, eps=1e-3, affine=affine).eval())
    tfused = torch.nn.utils.fusion.fuse_conv_bn_eval(tconv, tbn)
    np.testing.assert_allclose(fused.weight.data, tfused.weight.detach().numpy(), rtol=1e-6,
                               atol=1e-7)
    np.testing.assert_allclose(fused.bias.data, tfused.bias.detach().numpy(), rtol=1e-6,
                               atol=1e-7)
    assert "bias" in dict(fused.named_parameters())


def test_fuse_transposed_conv_and_weights_function(rng):
    conv = nn.ConvTranspose2d(4, 6, 3, stride=2).eval()
    bn = _bn_with_statistics(nn.BatchNorm2d(6), rng, None).eval()
    x = fc.tensor(randn(rng, 2, 4, 5, 5))
    fused = fc.nn.utils.fuse_conv_bn_eval(conv, bn, transpose=True)
    assert_close(fused(x), bn(conv(x)), rtol=1e-5, atol=1e-5)
    w, b = fusion.fuse_conv_bn_weights(conv.weight, None, bn.running_mean, bn.running_var,
                                       bn.eps, None, None, transpose=True)
    tw, tb = torch.nn.utils.fusion.fuse_conv_bn_weights(
        torch.tensor(conv.weight.data), None, torch.tensor(bn.running_mean.data),
        torch.tensor(bn.running_var.data), bn.eps, None, None, transpose=True)
    np.testing.assert_allclose(w.data, tw.detach().numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(b.data, tb.detach().numpy(), rtol=1e-6, atol=1e-7)
    assert w.requires_grad and not b.requires_grad and not tb.requires_grad


@pytest.mark.parametrize("features", [6, 1])
def test_fuse_linear_bn_eval(features, rng):
    linear = nn.Linear(4, 6).eval()
    bn = _bn_with_statistics(nn.BatchNorm1d(features), rng, None).eval()
    x = fc.tensor(randn(rng, 5, 4))
    fused = fusion.fuse_linear_bn_eval(linear, bn)
    want = bn(linear(x)) if features == 6 else bn(linear(x).reshape(5, 1, 6)).reshape(5, 6)
    assert_close(fused(x), want, rtol=1e-5, atol=1e-5)
    tw, tb = torch.nn.utils.fusion.fuse_linear_bn_weights(
        torch.tensor(linear.weight.data), torch.tensor(linear.bias.data),
        torch.tensor(bn.running_mean.data), torch.tensor(bn.running_var.data), bn.eps,
        torch.tensor(bn.weight.data), torch.tensor(bn.bias.data))
    np.testing.assert_allclose(fused.weight.data, tw.detach().numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(fused.bias.data, tb.detach().numpy(), rtol=1e-6, atol=1e-7)


def test_fusion_refuses_what_torch_refuses():
    conv, bn = nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)
    with pytest.raises(AssertionError, match="Fusion only for eval"):
        fusion.fuse_conv_bn_eval(conv, bn.eval())  # conv still training
    with pytest.raises(AssertionError, match="Fusion only for eval"):
        fusion.fuse_linear_bn_eval(nn.Linear(2, 4).eval(), bn.train())
    with pytest.raises(AssertionError, match="out_features"):
        fusion.fuse_linear_bn_eval(nn.Linear(2, 4).eval(), nn.BatchNorm1d(3).eval())
    stateless = nn.BatchNorm2d(4, track_running_stats=False).eval()
    with pytest.raises(AssertionError, match="running_mean"):
        fusion.fuse_conv_bn_eval(conv.eval(), stateless)
    assert set(fusion.__all__) == set(torch.nn.utils.fusion.__all__)


# ----------------------------------------------------------------------------- testing

def _messages(fc_call, torch_call):
    """The exception type and message of each call (None where it passes)."""
    out = []
    for call in (torch_call, fc_call):
        try:
            call()
            out.append(None)
        except Exception as e:  # noqa: BLE001 - the exception is what is compared
            out.append((type(e), str(e)))
    return out


def _tensors(kind, value, dtype=None):
    a = np.array(value) if dtype is None else np.array(value, dtype)
    return fc.tensor(a) if kind == "fc" else torch.tensor(a)


ASSERT_CASES = [
    ("close", [1.0, 2.0, 3.0], [1.0, 2.5, 3.0], np.float32, {}),
    ("2-D", [[1.0, 2.0], [3.0, 4.0]], [[1.0, 2.5], [3.0, 0.0]], np.float32, {}),
    ("integers", [1, 2, 3], [1, 3, 3], np.int64, {}),
    ("bools", [True, False], [True, True], None, {}),
    ("uint8", [1, 200], [3, 100], np.uint8, {}),
    ("nan", [np.nan, 1.0], [np.nan, 1.0], np.float32, {}),
    ("equal_nan", [np.nan, 1.0], [np.nan, 1.0], np.float32, {"equal_nan": True}),
    ("inf", [np.inf, -np.inf], [np.inf, -np.inf], np.float32, {}),
    ("inf vs finite", [np.inf], [1.0], np.float32, {}),
    ("zero expected", [1.0, 0.0], [1.0, 1e-3], np.float32, {}),
    ("0-d", 1.0, 2.0, np.float32, {}),
    ("tolerances", [1.0, 2.0], [1.05, 2.0], np.float32, {"rtol": 0.0, "atol": 0.1}),
    ("tight", [1.0, 2.0], [1.05, 2.0], np.float32, {"rtol": 0.0, "atol": 0.01}),
    ("rtol only", [1.0], [2.0], np.float32, {"rtol": 0.1}),
    ("atol only", [1.0], [2.0], np.float32, {"atol": 0.1}),
    ("msg", [1.0], [2.0], np.float32, {"msg": "custom"}),
    ("msg callable", [1.0], [2.0], np.float32, {"msg": lambda m: "prefix: " + m}),
    ("shape", [1.0, 2.0], [[1.0, 2.0]], np.float32, {}),
    ("many", np.arange(1000.0), np.arange(1000.0) * 1.1, np.float32, {}),
    ("within default", [1.0, 2.0], [1.0 + 1e-6, 2.0], np.float32, {}),
]


@pytest.mark.parametrize("name, a, e, dtype, kw", ASSERT_CASES, ids=[c[0] for c in ASSERT_CASES])
def test_assert_close_on_tensors_as_torch(name, a, e, dtype, kw):
    theirs, ours = _messages(
        lambda: assert_close(_tensors("fc", a, dtype), _tensors("fc", e, dtype), **kw),
        lambda: torch.testing.assert_close(_tensors("torch", a, dtype),
                                           _tensors("torch", e, dtype), **kw))
    if theirs is None:
        assert ours is None
        return
    assert ours is not None and ours[0] is theirs[0], (ours, theirs)
    assert ours[1] == theirs[1].replace("torch.Size", "fastconv.Size"), (ours[1], theirs[1])


def test_assert_close_dtype_device_and_random_values(rng):
    a = randn(rng, 4, 5)
    b = a + randn(rng, 4, 5) * 1e-3  # some elements mismatch, at various indices
    theirs, ours = _messages(lambda: assert_close(fc.tensor(a), fc.tensor(b)),
                             lambda: torch.testing.assert_close(torch.tensor(a),
                                                                torch.tensor(b)))
    assert ours == theirs
    with pytest.raises(AssertionError, match="attribute 'dtype' do not match: int64 != float32"):
        assert_close(fc.tensor([1, 2]), fc.tensor([1.0, 2.0]))
    assert_close(fc.tensor([1, 2]), fc.tensor([1.0, 2.0]), check_dtype=False)
    theirs, ours = _messages(
        lambda: assert_close(fc.tensor([1, 2]), fc.tensor([1.0, 2.5]), check_dtype=False),
        lambda: torch.testing.assert_close(torch.tensor([1, 2]), torch.tensor([1.0, 2.5]),
                                           check_dtype=False))
    assert ours == theirs
    x = fc.tensor(a)
    assert_close(x, x.t().t())
    with pytest.raises(AssertionError, match="stride"):
        assert_close(x.t().contiguous(), x.t(), check_stride=True)
    assert_close(Parameter(a), fc.tensor(a))
    with pytest.raises(TypeError, match="No comparison pair"):
        assert_close(Parameter(a), fc.tensor(a), allow_subclasses=False)


PY_CASES = [
    ("floats", 1.0, 1.5), ("ints", 1, 2), ("int and float", 1, 1.0), ("equal", 2.5, 2.5),
    ("list", [1.0, 2.0], [1.0, 3.0]), ("dict", {"a": 1.0, "b": 2}, {"a": 1.0, "b": 3}),
    ("keys", {"a": 1}, {"b": 1}), ("lengths", [1, 2], [1, 2, 3]), ("strings", "a", "a"),
    ("bools", True, False), ("None", None, None), ("None and 1", None, 1),
    ("tuple and list", (1, 2), [1, 2]), ("nested", {"a": [1.0, 2]}, {"a": [1.0, 2.0]}),
    ("numpy scalars", np.float32(1.0), np.float32(1.5)), ("numpy bool", np.bool_(True), False),
    ("length before values", [1, [2]], [2, [2, 3]]),
    ("numpy arrays", np.array([1.0, 2.0]), np.array([1.0, 2.1])),
    ("float64 tolerance", np.array([1.0]), np.array([1.0 + 1e-6])),
    ("nan scalars", float("nan"), float("nan")),
]


@pytest.mark.parametrize("name, a, e", PY_CASES, ids=[c[0] for c in PY_CASES])
def test_assert_close_on_numbers_arrays_and_containers_as_torch(name, a, e):
    theirs, ours = _messages(lambda: assert_close(a, e), lambda: torch.testing.assert_close(a, e))
    assert ours == theirs


def test_assert_close_containers_of_tensors_and_mixed_kinds():
    ours = [fc.tensor([1.0]), {"w": fc.tensor([2.0, 3.0])}]
    assert_close(ours, [fc.tensor([1.0]), {"w": fc.tensor([2.0, 3.0])}])
    with pytest.raises(AssertionError, match=r"item \[1\]\['w'\]"):
        assert_close(ours, [fc.tensor([1.0]), {"w": fc.tensor([2.0, 3.5])}])
    with pytest.raises(TypeError, match="No comparison pair"):  # as torch: one kind per side
        assert_close(np.array([1.0]), fc.tensor([1.0]))
    with pytest.raises(TypeError):
        torch.testing.assert_close(np.array([1.0]), torch.tensor([1.0]))


def test_make_tensor_shapes_dtypes_and_ranges():
    fc.manual_seed(3)
    x = make_tensor(3, 4, dtype=fc.float32)
    assert x.shape == (3, 4) and x.dtype == fc.float32
    assert float(x.min()) >= -9 and float(x.max()) < 9
    assert make_tensor((2, 5), dtype=fc.int64).shape == (2, 5)
    i = make_tensor(1000, dtype=fc.int64, low=-2, high=3)
    assert set(np.unique(i.numpy())) <= {-2, -1, 0, 1, 2}
    u = make_tensor(1000, dtype=fc.uint8)
    assert u.dtype == fc.uint8 and int(u.max()) < 10
    b = make_tensor(100, dtype=fc.bool)
    assert b.dtype == fc.bool and 0 < int(b.sum()) < 100
    z = make_tensor(2000, dtype=fc.int32, low=-1, high=2, exclude_zero=True)
    assert not (z.numpy() == 0).any()
    f = make_tensor(50, dtype=fc.float32, low=0.5, high=0.75, requires_grad=True)
    assert f.requires_grad and float(f.min()) >= 0.5 and float(f.max()) < 0.75
    with pytest.raises(ValueError):
        make_tensor(3, dtype=fc.float32, low=2, high=1)
    with pytest.raises(ValueError):
        make_tensor(3, dtype=fc.float32, low=float("nan"))
    with pytest.raises(ValueError):
        make_tensor(3, dtype=fc.int64, requires_grad=True)
    with pytest.warns(fc.DtypeWarning):
        assert make_tensor(2, dtype=fc.float64).dtype == fc.float32
    fc.manual_seed(5)
    first = make_tensor(4, dtype=fc.float32)
    fc.manual_seed(5)
    assert_close(make_tensor(4, dtype=fc.float32), first)


# ----------------------------------------------------------------------------- benchmark

def test_timer_timeit_and_measurement_statistics():
    calls = []
    t = benchmark.Timer("f()", globals={"f": lambda: calls.append(1)}, label="append",
                        sub_label="list", description="one call")
    m = t.timeit(50)
    assert m.number_per_run == 50 and len(m.raw_times) == 1 and len(calls) == 50 + 2
    assert m.times == [m.raw_times[0] / 50] and m.median == m.mean == m.times[0]
    text = repr(m)
    assert text.startswith("<fastconv.utils.benchmark.Measurement object at")
    assert "append: list" in text and "one call" in text and "1 measurement, 50 runs , 1 thread" \
        in text
    m2 = benchmark.Measurement(10, [1e-3, 2e-3, 4e-3, 3e-3, 5e-3], m.task_spec)
    times = np.array([1e-4, 2e-4, 4e-4, 3e-4, 5e-4])
    assert m2.median == pytest.approx(np.median(times))
    assert m2.mean == pytest.approx(times.mean())
    assert m2.iqr == pytest.approx(np.quantile(times, 0.75) - np.quantile(times, 0.25))
    assert m2.title == "append: list" and m2.label == "append" and m2.num_threads == 1


def test_measurement_repr_is_torchs():
    from torch.utils.benchmark.utils.common import Measurement as TorchMeasurement
    from torch.utils.benchmark.utils.common import TaskSpec as TorchTaskSpec

    for raw, spec in [([2e-3, 2.1e-3, 1.9e-3, 2.05e-3, 2.5e-3], dict(stmt="x + y", setup="pass")),
                      ([4e-6], dict(stmt="f(x)\ng(x)", setup="import numpy\nx = 1",
                                    sub_label="s", description="d", num_threads=2)),
                      ([1.0, 1.2, 3.0, 0.5], dict(stmt="y", setup="z = 2", label="L")),
                      ([5e-9, 6e-9], dict(stmt="pass", setup="pass"))]:
        ours = benchmark.Measurement(100, raw, benchmark.TaskSpec(**spec))
        theirs = TorchMeasurement(100, raw, TorchTaskSpec(**spec))
        assert repr(ours).splitlines()[1:] == repr(theirs).splitlines()[1:]
        assert ours.median == pytest.approx(theirs.median)
        assert ours.iqr == pytest.approx(theirs.iqr)
        assert ours.has_warnings == theirs.has_warnings
        if len(raw) >= 4:
            assert ours.significant_figures == theirs.significant_figures


def test_blocked_and_adaptive_autorange_and_threads():
    seen = []
    t = benchmark.Timer("seen.append(fastconv.get_num_threads()); x.sum()",
                        setup="x = fastconv.ones(32, 32)", globals={"seen": seen},
                        num_threads=1)
    before = fc.get_num_threads()
    blocks = []
    m = t.blocked_autorange(callback=lambda number, time: blocks.append((number, time)),
                            min_run_time=0.05)
    assert sum(m.raw_times) >= 0.05 and len(m.raw_times) == len(blocks) >= 1
    assert all(n == m.number_per_run for n, _ in blocks)
    assert set(seen) == {1} and fc.get_num_threads() == before
    m = t.adaptive_autorange(threshold=0.5, min_run_time=0.01, max_run_time=0.2)
    assert len(m.raw_times) >= 1 and m.median > 0
    assert isinstance(m.meets_confidence(0.5), bool)
    merged = benchmark.Measurement.merge([m, m])
    assert len(merged) == 1 and merged[0].number_per_run == 1
    assert len(merged[0].times) == 2 * len(m.times)


def test_timer_bad_arguments():
    with pytest.raises(ValueError, match="str"):
        benchmark.Timer(lambda: None)
    with pytest.raises(ValueError, match="global_setup"):
        benchmark.Timer("pass", global_setup="#include <x>")
    with pytest.raises(ValueError, match="language"):
        benchmark.Timer("pass", language="c++")
    with pytest.raises(NotImplementedError):
        benchmark.Timer("pass").repeat()
    with pytest.raises(NameError):
        benchmark.Timer("undefined_name").timeit(1)


# ----------------------------------------------------------------------------- profiler

def _names(prof):
    return [e.name for e in prof.events()]


def _check_nesting(events):
    for e in events:
        assert e.end_ns is not None and e.cpu_time_total >= 0
        assert e.self_cpu_time_total == pytest.approx(
            e.cpu_time_total - sum(c.cpu_time_total for c in e.cpu_children))
        for c in e.cpu_children:
            assert c.cpu_parent is e and c.thread == e.thread
            assert e.start_ns <= c.start_ns and c.end_ns <= e.end_ns


def test_profile_records_ops_backward_and_ranges(rng):
    x = fc.tensor(randn(rng, 8, 8), requires_grad=True)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        with record_function("model_inference"):
            y = x
            for _ in range(3):
                y = (y * 2).tan()
            loss = y.sum()
        loss.backward()
    assert function.profile_hook is None  # nothing records after the block
    names = _names(prof)
    assert names[0] == "model_inference"
    for name, count in (("fastconv::mul", 3), ("fastconv::tan", 3), ("fastconv::sum", 1),
                        ("MulBackward0", 3), ("TanBackward0", 3), ("SumBackward0", 1)):
        assert names.count(name) == count, (name, names)
    rng_event = prof.events()[0]
    assert {c.name for c in rng_event.cpu_children} == {"fastconv::mul", "fastconv::tan",
                                                         "fastconv::sum"}
    _check_nesting(prof.events())
    avg = {a.key: a for a in prof.key_averages()}
    assert avg["fastconv::tan"].count == 3 and avg["TanBackward0"].count == 3
    assert avg["model_inference"].cpu_time_total >= avg["fastconv::tan"].cpu_time_total
    total = sum(a.self_cpu_time_total for a in prof.key_averages())
    assert total == pytest.approx(prof.self_cpu_time_total)
    y = x * 3  # recorded nowhere
    assert "fastconv::mul" in names and y.grad_fn is not None


def test_profile_table_sorting_and_limits(rng):
    x = fc.tensor(randn(rng, 64, 64))
    with profile() as prof:
        for _ in range(5):
            x.sin()
        (x @ x).sum()
    averages = prof.key_averages()
    for key in ("self_cpu_time_total", "cpu_time_total", "count"):
        text = averages.table(sort_by=key, row_limit=10)
        lines = text.splitlines()
        assert "Name" in lines[1] and "Self CPU %" in lines[1] and "# of Calls" in lines[1]
        assert lines[-1].startswith("Self CPU time total:")
        rows = [line.split() for line in lines[3:-2]]
        names = [r[0] for r in rows]
        values = [getattr(next(a for a in averages if a.key == n), key) for n in names]
        assert values == sorted(values, reverse=True)
        assert set(names) == {a.key for a in averages}
    count_rows = averages.table(sort_by="count", row_limit=1).splitlines()[3:-2]
    assert len(count_rows) == 1 and count_rows[0].split()[0] == "fastconv::sin"
    assert count_rows[0].split()[-1] == "5"
    assert "ms" in averages.table(time_unit="ms")
    with pytest.raises(AttributeError, match="sort key"):
        averages.table(sort_by="no_such_column")


def test_profile_shapes_memory_and_stack(rng):
    a, b = fc.tensor(randn(rng, 3, 4)), fc.tensor(randn(rng, 4, 5))
    with profile(record_shapes=True, profile_memory=True, with_stack=True) as prof:
        a @ b
    (event,) = [e for e in prof.events() if e.name == "fastconv::matmul"]
    assert event.input_shapes == [[3, 4], [4, 5]]
    assert event.cpu_memory_usage == 3 * 5 * 4
    assert any("test_tooling.py" in frame for frame in event.stack)
    table = prof.key_averages(group_by_input_shape=True).table()
    assert "Input Shapes" in table and "[[3, 4], [4, 5]]" in table and "CPU Mem" in table
    stack_table = prof.key_averages(group_by_stack_n=2).table()
    assert "Source Location" in stack_table and "test_tooling.py" in stack_table


def test_export_chrome_trace(rng, tmp_path):
    x = fc.tensor(randn(rng, 4, 4), requires_grad=True)
    with profile(record_shapes=True) as prof:
        with record_function("block"):
            (x.exp() * x).sum().backward()
    for name in ("trace.json", "trace.json.gz"):
        path = tmp_path / name
        prof.export_chrome_trace(str(path))
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rt") as f:
            doc = json.load(f)
        complete = [e for e in doc["traceEvents"] if e["ph"] == "X"]
        assert len(complete) == len(prof.events())
        for e in complete:
            assert {"name", "ts", "dur", "pid", "tid", "cat", "args"} <= set(e)
            assert e["dur"] >= 0
        by_name = {e["name"]: e for e in complete}
        block, exp = by_name["block"], by_name["fastconv::exp"]
        assert block["cat"] == "user_annotation" and exp["cat"] == "cpu_op"
        assert block["ts"] <= exp["ts"] and exp["ts"] + exp["dur"] <= block["ts"] + block["dur"]
        assert exp["args"]["Input Dims"] == [[4, 4]]


def test_schedule_matches_torchs_and_drives_the_profile(rng):
    for kw in ({"wait": 1, "warmup": 1, "active": 2}, {"wait": 0, "warmup": 2, "active": 1,
                                                       "repeat": 2},
               {"wait": 2, "warmup": 1, "active": 3, "repeat": 1, "skip_first": 3},
               {"wait": 5, "warmup": 1, "active": 1, "skip_first": 2, "skip_first_wait": 1}):
        ours = fc.profiler.schedule(**kw)
        theirs = torch.profiler.schedule(**kw)
        assert [ours(i).name for i in range(30)] == [theirs(i).name for i in range(30)]
    with pytest.warns(UserWarning, match="warmup"):
        fc.profiler.schedule(wait=0, warmup=0, active=1)
    with pytest.raises(AssertionError, match="Invalid profiler schedule"):
        fc.profiler.schedule(wait=0, warmup=1, active=0)
    ready = []
    x = fc.tensor(randn(rng, 3))
    sched = fc.profiler.schedule(wait=1, warmup=1, active=2, repeat=2)
    with profile(schedule=sched, on_trace_ready=lambda p: ready.append(
            (p.step_num, sorted({e.name for e in p.events()})))) as prof:
        for step in range(10):
            with record_function(f"work{step}"):
                x.sin()
            prof.step()
    # cycles: steps 0-3 (recording 2 and 3), 4-7 (recording 6 and 7), then nothing
    assert [r[0] for r in ready] == [4, 8]
    assert ready[0][1] == sorted(["ProfilerStep#2", "ProfilerStep#3", "work2", "work3",
                                  "fastconv::sin"])
    assert ready[1][1] == sorted(["ProfilerStep#6", "ProfilerStep#7", "work6", "work7",
                                  "fastconv::sin"])
    steps = [e for e in prof.events() if e.name.startswith("ProfilerStep")]
    assert all(any(c.name.startswith("work") for c in s.cpu_children) for s in steps)
    assert function.profile_hook is None
    assert ProfilerAction.RECORD_AND_SAVE.name == "RECORD_AND_SAVE"
    assert {a.name for a in ProfilerActivity} >= {"CPU", "CUDA"}


def test_on_trace_ready_without_schedule_and_tensorboard_handler(rng, tmp_path):
    got = []
    with profile(on_trace_ready=got.append) as prof:
        fc.tensor(randn(rng, 2)).exp()
    assert got == [prof]
    handler = fc.profiler.tensorboard_trace_handler(str(tmp_path / "tb"), worker_name="w0")
    with profile(on_trace_ready=handler):
        fc.tensor(randn(rng, 2)).exp()
    (path,) = (tmp_path / "tb").iterdir()
    assert path.name.startswith("w0.") and path.name.endswith(".pt.trace.json")
    assert json.loads(path.read_text())["traceEvents"]


def test_record_function_decorator_threads_and_idle_cost(rng):
    @record_function("helper")
    def helper(t):
        return t.exp()

    x = fc.tensor(randn(rng, 4))
    helper(x)  # no profiler: nothing happens
    other = []

    def worker():
        other.append(threading.get_ident())
        fc.tensor(np.ones(3, np.float32)).cos()

    with profile() as prof:
        helper(x)
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
    events = prof.events()
    (h,) = [e for e in events if e.name == "helper"]
    assert [c.name for c in h.cpu_children] == ["fastconv::exp"]
    (cos,) = [e for e in events if e.name == "fastconv::cos"]
    assert cos.thread == other[0] != h.thread and cos.cpu_parent is None
    _check_nesting(events)
    assert function.profile_hook is None


def test_profile_stops_on_errors_and_refuses_nesting(rng):
    x = fc.tensor(randn(rng, 2, 3))
    with pytest.raises(ValueError):
        with profile() as prof:
            x.sin()
            x.reshape(7)  # raises inside the block
    assert function.profile_hook is None
    assert "fastconv::sin" in _names(prof)
    with profile():
        with pytest.raises(RuntimeError, match="already recording"):
            with profile():
                pass
    assert function.profile_hook is None
    with pytest.raises(TypeError):
        profile(activities=["cpu"])
    with pytest.warns(FutureWarning):
        profile(use_cuda=False)


def test_custom_functions_are_recorded(rng):
    class Double(fc.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return t * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2

    x = fc.tensor(randn(rng, 3), requires_grad=True)
    with profile() as prof:
        Double.apply(x).sum().backward()
    names = _names(prof)
    assert "fastconv::Double" in names and "DoubleBackward" in names
    (double,) = [e for e in prof.events() if e.name == "fastconv::Double"]
    assert [c.name for c in double.cpu_children] == ["fastconv::mul"]


def test_autograd_profiler_aliases(rng):
    import fastconv.autograd.profiler as legacy

    assert fc.autograd.profiler is legacy
    assert legacy.record_function is fc.profiler.record_function
    x = fc.tensor(randn(rng, 3))
    with legacy.profile(record_shapes=True) as prof:
        with legacy.record_function("outer"):
            x.exp()
    assert [e.name for e in prof.function_events] == ["outer", "fastconv::exp"]
    assert "fastconv::exp" in prof.table(sort_by="self_cpu_time_total")
    assert prof.key_averages()[0].count == 1 and prof.self_cpu_time_total > 0
    assert prof.total_average().count == 2
    with legacy.profile(enabled=False) as off:
        x.exp()
    with pytest.raises(RuntimeError, match="didn't finish"):
        off.key_averages()
    with pytest.raises(AttributeError):
        legacy.no_such_name
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert hasattr(torch.autograd.profiler, "profile") and hasattr(
            torch.autograd.profiler, "record_function")
