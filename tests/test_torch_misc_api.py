"""Smaller parts of torch's surface that scripts use: sampling functions (bernoulli,
multinomial, normal, poisson), Module.get_submodule / get_parameter / get_buffer,
nn.DataParallel, nn.init.orthogonal_ / eye_ / dirac_, Size, set_printoptions, anomaly
detection and the determinism / matmul-precision switches; compared with torch where the
result is deterministic, checked statistically where it is random."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import fastconv as fc

torch = pytest.importorskip("torch")


# ---- sampling -----------------------------------------------------------------------------
def test_bernoulli_and_poisson_follow_their_rates():
    fc.manual_seed(5)
    p = np.linspace(0.05, 0.95, 10).astype(np.float32)
    draws = fc.bernoulli(fc.tensor(np.tile(p, (4000, 1))))
    assert draws.dtype == fc.float32 and set(np.unique(draws.numpy())) <= {0.0, 1.0}
    np.testing.assert_allclose(draws.numpy().mean(0), p, atol=0.03)  # ~4 sigma
    np.testing.assert_allclose(fc.zeros(3000).bernoulli_(0.3).numpy().mean(), 0.3, atol=0.03)
    assert fc.bernoulli(fc.zeros(5), p=1.0).numpy().tolist() == [1.0] * 5
    rates = fc.full((20000,), 3.5)
    counts = fc.poisson(rates).numpy()
    assert abs(counts.mean() - 3.5) < 0.06 and abs(counts.var() - 3.5) < 0.15
    with pytest.raises(RuntimeError, match=r"\[0, 1\]"):
        fc.bernoulli(fc.tensor([0.5, 1.5]))
    with pytest.raises(RuntimeError, match="non-negative"):
        fc.poisson(fc.tensor([-1.0]))


def test_multinomial_with_and_without_replacement():
    fc.manual_seed(6)
    w = fc.tensor([1.0, 0.0, 3.0, 6.0])  # unnormalised
    draws = fc.multinomial(w, 20000, replacement=True).numpy()
    assert draws.dtype == np.int64 and draws.shape == (20000,)
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / 20000, [0.1, 0, 0.3, 0.6],
                               atol=0.015)
    rows = fc.multinomial(fc.tensor([[1.0, 1.0, 1.0], [0.0, 2.0, 5.0]]), 2).numpy()
    assert rows.shape == (2, 2)
    assert len(set(rows[0])) == 2 and set(rows[1]) == {1, 2}  # distinct, never the zero weight
    with pytest.raises(RuntimeError, match="without replacement"):
        fc.multinomial(w, 4)
    with pytest.raises(RuntimeError, match="element < 0"):
        fc.multinomial(fc.tensor([1.0, -1.0]), 1)
    with pytest.raises(RuntimeError, match="1 or 2 dim"):
        fc.multinomial(fc.ones(2, 2, 2), 1)


def test_normal_forms():
    fc.manual_seed(7)
    a = fc.normal(2.0, 3.0, size=(40000,)).numpy()
    assert abs(a.mean() - 2.0) < 0.06 and abs(a.std() - 3.0) < 0.06
    mean = fc.tensor(np.array([[-5.0], [5.0]], np.float32))
    std = fc.tensor(np.array([0.5, 1.0, 2.0], np.float32))
    b = np.stack([fc.normal(mean, std).numpy() for _ in range(3000)])
    assert b.shape == (3000, 2, 3)
    np.testing.assert_allclose(b.mean(0), np.broadcast_to([[-5.0], [5.0]], (2, 3)), atol=0.15)
    np.testing.assert_allclose(b.std(0), np.broadcast_to([0.5, 1.0, 2.0], (2, 3)), rtol=0.08)
    with pytest.raises(RuntimeError, match="std >= 0"):
        fc.normal(fc.zeros(2), fc.tensor([1.0, -1.0]))
    with pytest.raises(TypeError, match="size"):
        fc.normal(0.0, 1.0)


# ---- modules ------------------------------------------------------------------------------
def _pair():
    f = fc.nn.Sequential(fc.nn.Conv2d(1, 2, 3), fc.nn.Sequential(fc.nn.BatchNorm2d(2)))
    t = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Sequential(torch.nn.BatchNorm2d(2)))
    return f, t


def test_get_submodule_parameter_buffer_as_torch():
    f, t = _pair()
    assert type(f.get_submodule("1.0")).__name__ == type(t.get_submodule("1.0")).__name__
    assert f.get_submodule("") is f
    assert f.get_parameter("0.weight") is f[0].weight
    assert f.get_buffer("1.0.running_var") is f[1][0].running_var
    for call in ("get_submodule('2')", "get_submodule('0.weight')", "get_parameter('0.nope')",
                 "get_buffer('0.weight')", "get_parameter('1.0.running_mean')"):
        with pytest.raises(AttributeError):
            eval("t." + call)  # noqa: S307  (torch raises too)
        with pytest.raises(AttributeError):
            eval("f." + call)  # noqa: S307


def test_data_parallel_runs_the_module_with_torchs_state_dict_keys(rng):
    f = fc.nn.DataParallel(fc.nn.Linear(3, 2))
    t = torch.nn.DataParallel(torch.nn.Linear(3, 2))
    assert list(f.state_dict()) == list(t.state_dict()) == ["module.weight", "module.bias"]
    f.load_state_dict({k: v.numpy() for k, v in t.state_dict().items()})
    x = rng.standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_allclose(f(fc.tensor(x)).detach().numpy(),
                               t(torch.tensor(x)).detach().numpy(), rtol=1e-6, atol=1e-6)
    with pytest.warns(UserWarning, match="DistributedDataParallel"):
        fc.nn.DataParallel(fc.nn.Linear(3, 2), device_ids=[0, 1])
    with pytest.raises(TypeError, match="Module"):
        fc.nn.DataParallel(3)


@pytest.mark.parametrize("shape,groups", [((6, 3, 3, 3), 2), ((4, 4, 3), 1),
                                          ((2, 3, 1, 3, 3), 1), ((4, 2, 5, 5), 1)])
def test_dirac_matches_torch(shape, groups):
    f, t = fc.empty(*shape), torch.empty(*shape)
    fc.nn.init.dirac_(f, groups)
    torch.nn.init.dirac_(t, groups)
    np.testing.assert_array_equal(f.numpy(), t.numpy())


def test_orthogonal_and_eye():
    fc.manual_seed(1)
    for shape, gain in (((4, 6, 3, 3), 2.0), ((9, 3), 1.0), ((5, 5), 0.5)):
        w = fc.empty(*shape)
        fc.nn.init.orthogonal_(w, gain=gain)
        a = w.numpy().reshape(shape[0], -1)
        small = min(a.shape)
        gram = a @ a.T if a.shape[0] == small else a.T @ a
        np.testing.assert_allclose(gram, gain ** 2 * np.eye(small), atol=1e-5)
    e = fc.empty(3, 5)
    fc.nn.init.eye_(e)
    np.testing.assert_array_equal(e.numpy(), torch.nn.init.eye_(torch.empty(3, 5)).numpy())
    for bad in (lambda: fc.nn.init.orthogonal_(fc.empty(3)),
                lambda: fc.nn.init.eye_(fc.empty(2, 2, 2)),
                lambda: fc.nn.init.dirac_(fc.empty(3, 3)),
                lambda: fc.nn.init.dirac_(fc.empty(3, 3, 3), groups=2)):
        with pytest.raises(ValueError):
            bad()


# ---- tensors and switches -----------------------------------------------------------------
def test_size_is_a_tuple_with_numel():
    s = fc.randn(2, 3, 4).size()
    assert s == (2, 3, 4) == tuple(torch.randn(2, 3, 4).size())
    assert isinstance(s, tuple) and s.numel() == 24 and s[1:].numel() == 12
    assert repr(s) == "fastconv.Size([2, 3, 4])" and fc.Size([]).numel() == 1
    assert fc.randn(2, 3).size(-1) == 3
    shape = fc.randn(2, 3, 4).shape  # .shape is the same Size, as torch's
    assert type(shape) is fc.Size and shape.numel() == 24 and shape == (2, 3, 4)
    assert f"{shape}" == "(2, 3, 4)"  # str() writes the tuple: error messages spell shapes so


def test_set_printoptions():
    x = fc.tensor([1.23456, 2.5])
    try:
        fc.set_printoptions(precision=2)
        assert "1.23" in repr(x) and "1.2346" not in repr(x)
        fc.set_printoptions(sci_mode=True)
        assert "e+00" in repr(x)
        fc.set_printoptions(threshold=5)
        assert "..." in repr(fc.arange(20))
        with pytest.raises(ValueError, match="profile"):
            fc.set_printoptions(profile="tiny")
    finally:
        fc.set_printoptions(profile="default")
    assert "1.2346" in repr(x) and "..." not in repr(fc.arange(20))


def test_anomaly_detection_names_the_op_and_its_line():
    x = fc.tensor([4.0, -1.0], requires_grad=True)
    with fc.autograd.detect_anomaly():
        y = x.sqrt()  # the line the error names
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            with pytest.raises(RuntimeError, match=r"'SqrtBackward' returned nan.*y = x.sqrt"):
                y.sum().backward()
    assert not fc.autograd.is_anomaly_enabled()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        x.sqrt().sum().backward()  # off: no check, NaN gradient as torch gives
    assert np.isnan(x.grad.numpy()[1])
    fc.autograd.set_detect_anomaly(True)
    try:
        assert fc.autograd.is_anomaly_enabled()
    finally:
        fc.autograd.set_detect_anomaly(False)
    assert not fc.autograd.is_anomaly_enabled()


def test_determinism_and_matmul_precision_switches():
    try:
        fc.use_deterministic_algorithms(True, warn_only=True)
        assert fc.are_deterministic_algorithms_enabled()
        assert fc.is_deterministic_algorithms_warn_only_enabled()
        fc.set_float32_matmul_precision("high")
        assert fc.get_float32_matmul_precision() == "high"
        assert fc.backends.cuda.matmul.allow_tf32
        with pytest.raises(ValueError, match="precision"):
            fc.set_float32_matmul_precision("low")
        with pytest.raises(TypeError):
            fc.use_deterministic_algorithms("yes")
    finally:
        fc.use_deterministic_algorithms(False)
        fc.set_float32_matmul_precision("highest")
    assert fc.get_float32_matmul_precision() == "highest" == torch.get_float32_matmul_precision()


def test_sparse_init_zeroes_a_fraction_of_every_column():
    fc.manual_seed(3)
    w = fc.empty(50, 8)
    fc.nn.init.sparse_(w, sparsity=0.3, std=0.5)
    a = w.numpy()
    assert ((a == 0).sum(axis=0) == 15).all()  # ceil(0.3 * 50) per column, as torch's
    nonzero = a[a != 0]
    assert abs(nonzero.std() - 0.5) < 0.08 and abs(nonzero.mean()) < 0.1
    t = torch.empty(50, 8)
    torch.nn.init.sparse_(t, sparsity=0.3)
    assert ((t.numpy() == 0).sum(axis=0) == 15).all()
    with pytest.raises(ValueError):
        fc.nn.init.sparse_(fc.empty(3, 3, 3), 0.1)


def test_memory_format_hints_keep_the_values(rng):
    x = fc.tensor(rng.standard_normal((2, 3, 4, 5)).astype(np.float32))
    y = x.to(memory_format=fc.channels_last)
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    assert x.contiguous(memory_format=fc.channels_last) is x
    assert x.is_contiguous() and x.is_contiguous(memory_format=fc.contiguous_format)
    assert not x.is_contiguous(memory_format=fc.channels_last)  # fastconv keeps NCHW
    m = fc.nn.Conv2d(3, 4, 3)
    assert m.to(memory_format=fc.channels_last) is m
    assert repr(fc.channels_last) == "fastconv.channels_last"
    with pytest.raises(TypeError, match="memory format"):
        x.to(memory_format="nhwc")


def test_legacy_constructors_and_habits():
    assert fc.Tensor([1, 2, 3]).dtype == fc.float32  # torch.Tensor's float default
    assert fc.Tensor(2, 3).shape == (2, 3) and fc.Tensor(2, 3, 4, 5).shape == (2, 3, 4, 5)
    assert fc.tensor([1, 2]).dtype == fc.int64  # the factory keeps integers
    for name, dtype in (("FloatTensor", fc.float32), ("LongTensor", fc.int64),
                        ("IntTensor", fc.int32), ("BoolTensor", fc.bool)):
        made = getattr(fc, name)([1, 0, 2])
        assert made.dtype == dtype == getattr(torch, name)([1, 0, 2]).numpy().dtype
        assert getattr(fc, name)(2, 3).shape == (2, 3)
    x = fc.randn(2, 3)
    assert x.new(4, 2).shape == (4, 2) and x.new(4, 2).dtype == fc.float32
    np.testing.assert_array_equal(x.new([1, 2]).numpy(), np.array([1, 2], np.float32))
    assert x.pin_memory() is x and not x.is_pinned()
    fc.set_default_dtype(fc.float32)
    with pytest.warns(fc.DtypeWarning):
        fc.set_default_dtype(fc.float64)
    assert fc.get_default_dtype() == fc.float32
    with pytest.raises(TypeError, match="floating-point"):
        fc.set_default_dtype(fc.int64)
    assert fc.backends.mps.is_available() is False
    if not fc.cuda.is_available():  # torch's CPU builds answer these the same way
        assert fc.cuda.memory_allocated() == torch.cuda.memory_allocated() == 0
        fc.cuda.empty_cache()
        with pytest.raises(AssertionError):
            fc.cuda.get_device_name()
    m = fc.nn.Linear(2, 2)
    assert fc.jit.script(m) is m and fc.jit.trace(m, fc.randn(1, 2)) is m
    with pytest.raises(NotImplementedError, match="onnx"):
        fc.jit.save(m, "m.pt")


@pytest.mark.parametrize("kw", [{"mode": "triangular"},
                                {"mode": "triangular2", "step_size_down": 3},
                                {"mode": "exp_range", "gamma": 0.9},
                                {"cycle_momentum": False}])
def test_cyclic_lr_matches_torch(kw):
    fo = fc.optim.SGD([fc.nn.Parameter(fc.ones(2))], lr=0.5, momentum=0.9)
    to = torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=0.5, momentum=0.9)
    fs = fc.optim.lr_scheduler.CyclicLR(fo, 0.01, 0.1, step_size_up=4, **kw)
    ts = torch.optim.lr_scheduler.CyclicLR(to, 0.01, 0.1, step_size_up=4, **kw)
    got, want = [], []
    for _ in range(20):
        got.append((fo.param_groups[0]["lr"], fo.param_groups[0]["momentum"]))
        want.append((to.param_groups[0]["lr"], to.param_groups[0]["momentum"]))
        fo.step()
        to.step()
        fs.step()
        ts.step()
    np.testing.assert_allclose(got, want, rtol=1e-12)
    state = fs.state_dict()
    again = fc.optim.lr_scheduler.CyclicLR(fc.optim.SGD([fc.nn.Parameter(fc.ones(2))], lr=0.5,
                                                        momentum=0.9), 0.01, 0.1,
                                           step_size_up=4, **kw)
    again.load_state_dict(state)
    assert again.get_last_lr() == fs.get_last_lr()
    with pytest.raises(ValueError, match="mode"):
        fc.optim.lr_scheduler.CyclicLR(fo, 0.01, 0.1, mode="sine")
    with pytest.raises(ValueError, match="momentum"):
        fc.optim.lr_scheduler.CyclicLR(fc.optim.Adagrad([fc.nn.Parameter(fc.ones(1))]),
                                       0.01, 0.1)
