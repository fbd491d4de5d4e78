"""The PyTorch surface of fastconv.optim: RMSprop and Adagrad against torch.optim step by
step, and every scheduler against torch.optim.lr_scheduler step by step (rates, get_last_lr,
chaining two schedulers, the closed form past the end, state-dict round trips)."""

from __future__ import annotations

import inspect
import math
import warnings

import numpy as np
import pytest

import fastconv
from fastconv import checkpoint, optim
from fastconv.nn import Parameter
from fastconv.optim import lr_scheduler as S

torch = pytest.importorskip("torch")


def _pair(rng, shapes=((3, 4), (5,), (2, 3, 2))):
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    ours = [Parameter(a.copy()) for a in arrays]
    theirs = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in arrays]
    return ours, theirs


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


RMSPROP = [{}, {"weight_decay": 0.1}, {"momentum": 0.9}, {"centered": True},
           {"centered": True, "momentum": 0.5, "weight_decay": 0.01, "alpha": 0.9},
           {"maximize": True, "eps": 1e-3}]


@pytest.mark.parametrize("kw", RMSPROP, ids=[str(k) for k in RMSPROP])
def test_rmsprop_matches_torch(rng, kw):
    ours, theirs = _pair(rng)
    lr = float(rng.uniform(1e-3, 2e-2))
    _run_both(rng, ours, theirs, optim.RMSprop(ours, lr=lr, **kw),
              torch.optim.RMSprop(theirs, lr=lr, **kw))


ADAGRAD = [{}, {"weight_decay": 0.1}, {"lr_decay": 0.05}, {"initial_accumulator_value": 0.3},
           {"lr_decay": 0.01, "weight_decay": 0.02, "eps": 1e-4, "maximize": True}]


@pytest.mark.parametrize("kw", ADAGRAD, ids=[str(k) for k in ADAGRAD])
def test_adagrad_matches_torch(rng, kw):
    ours, theirs = _pair(rng)
    lr = float(rng.uniform(1e-2, 1e-1))
    _run_both(rng, ours, theirs, optim.Adagrad(ours, lr=lr, **kw),
              torch.optim.Adagrad(theirs, lr=lr, **kw))


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_optimizer_arguments_and_defaults_are_torchs(name):
    ours = inspect.signature(getattr(optim, name).__init__).parameters
    theirs = inspect.signature(getattr(torch.optim, name).__init__).parameters
    assert list(ours) == list(theirs)
    for k, p in theirs.items():
        if p.default is not inspect.Parameter.empty:
            assert ours[k].default == p.default, k
            assert ours[k].kind == p.kind, k


def test_optimizer_errors_and_unsupported_switches(rng):
    ps = [Parameter(np.zeros(3, np.float32))]
    with pytest.raises(ValueError, match="learning rate|lr"):
        optim.RMSprop(ps, lr=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        optim.RMSprop(ps, alpha=-0.5)
    with pytest.raises(ValueError, match="lr_decay"):
        optim.Adagrad(ps, lr_decay=-1)
    with pytest.raises(ValueError, match="differentiable=True is not supported"):
        optim.RMSprop(ps, differentiable=True)
    with pytest.raises(ValueError, match="fused=True is not supported"):
        optim.Adam(ps, fused=True)
    with pytest.raises(TypeError, match="got a Tensor"):
        optim.SGD(ps[0])
    optim.SGD(ps, foreach=True)  # one implementation: accepted, same results


def test_adagrad_state_exists_before_the_first_step_and_round_trips(rng, tmp_path):
    ours, theirs = _pair(rng)
    opt = optim.Adagrad(ours, initial_accumulator_value=0.5)
    topt = torch.optim.Adagrad(theirs, initial_accumulator_value=0.5)
    assert sorted(opt.state_dict()["state"]) == sorted(topt.state_dict()["state"])
    np.testing.assert_array_equal(opt.state[0]["sum"], np.full((3, 4), 0.5, np.float32))
    _run_both(rng, ours, theirs, opt, topt, steps=3, skip_one=False)
    path = str(tmp_path / "o.npz")
    checkpoint.save(opt.state_dict(), path)
    ours2 = [Parameter(p.data.copy()) for p in ours]
    opt2 = optim.Adagrad(ours2, initial_accumulator_value=0.5)
    opt2.load_state_dict(checkpoint.load(path))
    _run_both(rng, ours2, theirs, opt2, topt, steps=3, skip_one=False)


def test_step_takes_a_closure_and_returns_its_loss(rng):
    p = Parameter(np.ones(2, np.float32))
    opt = optim.RMSprop([p], lr=0.1)
    calls = []

    def closure():
        calls.append(1)
        p.grad = Parameter(np.ones(2, np.float32))
        return 3.5

    assert opt.step(closure) == 3.5 and calls == [1]
    assert opt.step() is None


def test_named_parameters_are_accepted(rng):
    a, b = Parameter(np.ones(2, np.float32)), Parameter(np.ones(3, np.float32))
    opt = optim.SGD([("a", a), ("b", b)], lr=0.1)
    assert opt.param_groups[0]["params"] == [a, b]
    assert opt.param_groups[0]["param_names"] == ["a", "b"]


def test_one_cycle_momentum_with_rmsprop_matches_torch(rng):
    ours, theirs = _pair(rng, ((2,),))
    opt = optim.RMSprop(ours, lr=0.1, momentum=0.9)
    topt = torch.optim.RMSprop(theirs, lr=0.1, momentum=0.9)
    sched = S.OneCycleLR(opt, max_lr=0.5, epochs=3, steps_per_epoch=4)
    tsched = torch.optim.lr_scheduler.OneCycleLR(topt, max_lr=0.5, epochs=3, steps_per_epoch=4)
    for _ in range(11):
        assert opt.param_groups[0]["lr"] == pytest.approx(topt.param_groups[0]["lr"], rel=1e-12)
        assert opt.param_groups[0]["momentum"] == pytest.approx(
            topt.param_groups[0]["momentum"], rel=1e-12)
        topt.step()
        sched.step()
        tsched.step()
    with pytest.raises(ValueError, match="total_steps OR"):
        S.OneCycleLR(opt, max_lr=0.5, epochs=3)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        S.OneCycleLR(opt, max_lr=0.5, epochs=3, steps_per_epoch=0)


# ------------------------------------------------------------------------------------------------
# schedulers, step by step against torch
# ------------------------------------------------------------------------------------------------

def _both(rng, groups=2):
    lrs = [float(rng.uniform(0.05, 0.5)) for _ in range(groups)]
    ours = optim.SGD([{"params": [Parameter(np.zeros(2, np.float32))], "lr": lr} for lr in lrs],
                     lr=0.1, momentum=0.9)
    theirs = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr}
                              for lr in lrs], lr=0.1, momentum=0.9)
    return ours, theirs


def _compare(opt, topt, step, tstep, n, rel=1e-12):
    for k in range(n):
        mine = [g["lr"] for g in opt.param_groups]
        want = [g["lr"] for g in topt.param_groups]
        np.testing.assert_allclose(mine, want, rtol=rel, atol=1e-15, err_msg=f"step {k}")
        topt.step()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            step(k)
            tstep(k)


def _lib(mod, name):
    return getattr(mod.optim.lr_scheduler if mod is torch else S, name)


SCHEDULES = {
    "StepLR": lambda m, o: _lib(m, "StepLR")(o, step_size=3, gamma=0.5),
    "MultiStepLR": lambda m, o: _lib(m, "MultiStepLR")(o, [2, 5, 5, 9], gamma=0.3),
    "ExponentialLR": lambda m, o: _lib(m, "ExponentialLR")(o, gamma=0.8),
    "ConstantLR": lambda m, o: _lib(m, "ConstantLR")(o, factor=0.25, total_iters=4),
    "LinearLR": lambda m, o: _lib(m, "LinearLR")(o, start_factor=0.1, total_iters=6),
    "PolynomialLR": lambda m, o: _lib(m, "PolynomialLR")(o, total_iters=8, power=2.0),
    "CosineAnnealingLR": lambda m, o: _lib(m, "CosineAnnealingLR")(o, T_max=7, eta_min=0.01),
    "CosineAnnealingWarmRestarts": lambda m, o: _lib(m, "CosineAnnealingWarmRestarts")(
        o, T_0=4, T_mult=2, eta_min=0.001),
    "CosineAnnealingWarmRestarts-1": lambda m, o: _lib(m, "CosineAnnealingWarmRestarts")(
        o, T_0=5),
    "LambdaLR": lambda m, o: _lib(m, "LambdaLR")(o, [lambda t: 0.9 ** t, lambda t: 1 / (1 + t)]),
    "MultiplicativeLR": lambda m, o: _lib(m, "MultiplicativeLR")(o, lambda t: 0.95),
    "OneCycleLR": lambda m, o: _lib(m, "OneCycleLR")(o, max_lr=[1.0, 0.5], total_steps=30,
                                                     three_phase=True),
    "SequentialLR": lambda m, o: _lib(m, "SequentialLR")(
        o, [_lib(m, "LinearLR")(o, start_factor=0.2, total_iters=3),
            _lib(m, "CosineAnnealingLR")(o, T_max=5)], milestones=[3]),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_matches_torch_step_by_step(rng, name):
    """30 steps: past T_max (the cosine climbs again), through warm restarts, milestones."""
    opt, topt = _both(rng)
    make = SCHEDULES[name]
    s, ts = make(None, opt), make(torch, topt)
    _compare(opt, topt, lambda k: s.step(), lambda k: ts.step(), 30,
             rel=1e-12 if "Cosine" not in name else 1e-10)
    np.testing.assert_allclose(s.get_last_lr(), ts.get_last_lr(), rtol=1e-10)
    assert s.last_epoch == ts.last_epoch


@pytest.mark.parametrize("name", [n for n in SCHEDULES if n not in ("MultiplicativeLR",)])
def test_closed_form_step_epoch_matches_torch(rng, name):
    """step(epoch=t) jumps straight to step t (torch: the closed form, deprecated there)."""
    if name == "SequentialLR":
        pytest.skip("torch's SequentialLR.step takes no epoch (fastconv's: tested below)")
    opt, topt = _both(rng)
    make = SCHEDULES[name]
    s, ts = make(None, opt), make(torch, topt)
    for t in [3, 11, 0, 7, 20, 29]:
        s.step(t)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch deprecates the argument
            ts.step(t)
        np.testing.assert_allclose(s.get_last_lr(), ts.get_last_lr(), rtol=1e-10, atol=1e-15)


def test_cosine_past_t_max_follows_the_cosine_as_torch(rng):
    opt, _topt = _both(rng, 1)
    s = S.CosineAnnealingLR(opt, T_max=5, eta_min=0.0)
    base = opt.param_groups[0]["initial_lr"]
    lrs = []
    for _ in range(21):
        lrs.append(opt.param_groups[0]["lr"])
        s.step()
    assert lrs[5] == pytest.approx(0.0, abs=1e-15) and lrs[10] == pytest.approx(base)
    np.testing.assert_allclose(lrs, [base * (1 + math.cos(math.pi * t / 5)) / 2
                                     for t in range(21)], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("pair", [("ExponentialLR", "MultiStepLR"), ("StepLR", "CosineAnnealingLR"),
                                  ("ConstantLR", "ExponentialLR")])
def test_two_schedulers_on_one_optimizer_chain_as_in_torch(rng, pair):
    opt, topt = _both(rng)
    made = {}
    for lib, o in ((None, opt), (torch, topt)):
        made[lib] = []
        for name in pair:
            made[lib].append(SCHEDULES[name](lib, o))
    _compare(opt, topt, lambda k: [s.step() for s in made[None]],
             lambda k: [s.step() for s in made[torch]], 25, rel=1e-10)
    # and ChainedScheduler
    opt, topt = _both(rng)
    ours = S.ChainedScheduler([SCHEDULES[n](None, opt) for n in pair])
    theirs = torch.optim.lr_scheduler.ChainedScheduler([SCHEDULES[n](torch, topt) for n in pair])
    _compare(opt, topt, lambda k: ours.step(), lambda k: theirs.step(), 25, rel=1e-10)
    np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-10)


def test_a_rate_changed_by_hand_is_chained_onto_as_in_torch(rng):
    opt, topt = _both(rng)
    s = S.CosineAnnealingLR(opt, T_max=10)
    ts = torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max=10)

    def step(k, o, sched):
        if k == 4:
            for g in o.param_groups:
                g["lr"] *= 0.5
        sched.step()

    _compare(opt, topt, lambda k: step(k, opt, s), lambda k: step(k, topt, ts), 15, rel=1e-10)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_state_dict_round_trip_through_a_file_continues_the_schedule(rng, tmp_path, name):
    opt, topt = _both(rng)
    make = SCHEDULES[name]
    s, ts = make(None, opt), make(torch, topt)
    for _ in range(6):
        s.step()
        topt.step()
        ts.step()
    path = str(tmp_path / "s.npz")
    checkpoint.save({"sched": s.state_dict(), "opt": opt.state_dict()}, path)
    ck = checkpoint.load(path)
    opt2 = optim.SGD([{"params": [Parameter(np.zeros(2, np.float32))], "lr": 0.3}
                      for _ in range(2)], lr=0.1, momentum=0.9)
    s2 = make(None, opt2)
    s2.load_state_dict(ck["sched"])  # the scheduler first, the optimizer after: either order
    opt2.load_state_dict(ck["opt"])
    assert s2.get_last_lr() == s.get_last_lr()
    _compare(opt2, topt, lambda k: s2.step(), lambda k: ts.step(), 10, rel=1e-10)


def test_sequential_step_epoch_resumes_bit_exact(rng):
    """The zoo's resume: a fresh schedule jumped with step(epoch=t) continues with the same
    bits as the uninterrupted one."""
    def build(o):
        return S.LinearWarmup(o, 5, after=S.CosineAnnealingLR(o, T_max=40, eta_min=1e-4))

    opt, _ = _both(rng, 1)
    s = build(opt)
    full = []
    for _ in range(45):
        full.append(opt.param_groups[0]["lr"])
        s.step()
    for t0 in (0, 3, 5, 6, 30):
        opt2, _ = _both(rng, 1)
        opt2.param_groups[0]["lr"] = opt.param_groups[0]["initial_lr"]
        opt2.param_groups[0].pop("initial_lr", None)
        s2 = build(opt2)
        s2.step(epoch=t0)
        got = []
        for _ in range(t0, 45):
            got.append(opt2.param_groups[0]["lr"])
            s2.step()
        assert got == full[t0:], t0


def test_scheduler_errors(rng):
    opt, _ = _both(rng)
    with pytest.raises(TypeError, match="not an Optimizer"):
        S.StepLR(object(), 2)
    with pytest.raises(KeyError, match="initial_lr"):
        S.ExponentialLR(optim.SGD([Parameter(np.zeros(1, np.float32))], lr=0.1), 0.9,
                        last_epoch=3)
    with pytest.raises(ValueError, match="T_0"):
        S.CosineAnnealingWarmRestarts(opt, T_0=0)
    with pytest.raises(ValueError, match="T_mult"):
        S.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=0)
    with pytest.raises(ValueError, match="max_lr must have the same length"):
        S.OneCycleLR(opt, max_lr=[0.1, 0.2, 0.3], total_steps=10)
    with pytest.raises(ValueError, match="milestone"):
        S.SequentialLR(opt, [S.StepLR(opt, 2), S.StepLR(opt, 3)], milestones=[])
    with pytest.raises(ValueError, match="same optimizer"):
        other, _ = _both(rng)
        S.SequentialLR(opt, [S.StepLR(opt, 2), S.StepLR(other, 3)], milestones=[2])
    with pytest.raises(ValueError, match="Expected non-negative epoch"):
        S.CosineAnnealingWarmRestarts(opt, T_0=2).step(-1)


# ------------------------------------------------------------------------------------------------
# subclasses written as in PyTorch
# ------------------------------------------------------------------------------------------------

def _momentum_sgd(lib):
    """A hand-written momentum SGD in PyTorch's style: its buffers live in ``self.state[p]``."""

    class MomentumSGD(lib.optim.Optimizer):
        def __init__(self, params, lr=0.1, momentum=0.9, dampening=0.0):
            super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening))

        @lib.no_grad()
        def step(self, closure=None):
            loss = None
            if closure is not None:
                with lib.enable_grad():
                    loss = closure()
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    state = self.state[p]
                    if len(state) == 0:
                        state["momentum_buffer"] = lib.clone(p.grad).detach()
                        state["step"] = lib.tensor(0.0)
                    else:
                        state["momentum_buffer"].mul_(group["momentum"]).add_(
                            p.grad, alpha=1 - group["dampening"])
                    state["step"] += 1
                    p.add_(state["momentum_buffer"], alpha=-group["lr"])
            return loss

    return MomentumSGD


def test_a_torch_style_optimizer_subclass_matches_torch(rng, tmp_path):
    """``self.state[p]`` persists (a defaultdict keyed by the parameters), is counted by
    len, and goes through state_dict()/load_state_dict() (also via a file) with torch's
    integer-index layout; the weights follow torch's step for step."""
    w, b = rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    xs = [rng.standard_normal((5, 3)).astype(np.float32) for _ in range(5)]
    nets, opts = {}, {}
    for lib in (fastconv, torch):
        net = lib.nn.Linear(3, 4)
        with lib.no_grad():
            net.weight.copy_(lib.tensor(w))
            net.bias.copy_(lib.tensor(b))
        nets[lib] = net
        opts[lib] = _momentum_sgd(lib)([{"params": [net.weight]},
                                        {"params": [net.bias], "lr": 0.05}], lr=0.1)

    def train_step(lib, x, opt=None):
        (opt or opts[lib]).zero_grad()
        (nets[lib](lib.tensor(x)) ** 2).mean().backward()
        (opt or opts[lib]).step()

    ours, theirs = opts[fastconv], opts[torch]
    assert len(ours.state) == 0 and ours.state_dict()["state"] == {}
    for x in xs[:3]:
        train_step(fastconv, x)
        train_step(torch, x)
        for p, tp in zip(nets[fastconv].parameters(), nets[torch].parameters()):
            np.testing.assert_allclose(p.detach().numpy(), tp.detach().numpy(), rtol=1e-5,
                                       atol=1e-6)
    assert len(ours.state) == len(theirs.state) == 2
    assert [type(k) for k in ours.state] == [fastconv.nn.Parameter] * 2
    assert ours.state[nets[fastconv].bias] is ours.state[1]  # the index names the parameter
    sd, tsd = ours.state_dict(), theirs.state_dict()
    assert list(sd["state"]) == list(tsd["state"]) == [0, 1]
    assert [g["params"] for g in sd["param_groups"]] == [g["params"] for g in tsd["param_groups"]]
    for i in (0, 1):
        assert float(sd["state"][i]["step"]) == float(tsd["state"][i]["step"]) == 3.0
        np.testing.assert_allclose(sd["state"][i]["momentum_buffer"].numpy(),
                                   tsd["state"][i]["momentum_buffer"].numpy(), rtol=1e-5,
                                   atol=1e-6)
    # round trips: in memory, then through a file (Tensors come back as Tensors)
    def fresh(lib):
        return _momentum_sgd(lib)([{"params": [nets[lib].weight]},
                                   {"params": [nets[lib].bias], "lr": 0.05}], lr=0.1)

    topt = fresh(torch)
    topt.load_state_dict(tsd)
    source = sd
    for k, x in enumerate(xs[3:]):
        opt = fresh(fastconv)
        opt.load_state_dict(source)
        assert len(opt.state) == 2
        buf = opt.state[nets[fastconv].weight]["momentum_buffer"]
        assert isinstance(buf, fastconv.Tensor) and buf.dtype == np.float32
        train_step(fastconv, x, opt)
        train_step(torch, x, topt)
        for p, tp in zip(nets[fastconv].parameters(), nets[torch].parameters()):
            np.testing.assert_allclose(p.detach().numpy(), tp.detach().numpy(), rtol=1e-5,
                                       atol=1e-6)
        assert float(opt.state[1]["step"]) == float(topt.state[nets[torch].bias]["step"]) == 4 + k
        path = str(tmp_path / f"opt{k}.npz")
        fastconv.save(opt.state_dict(), path)
        source = fastconv.load(path)


def test_builtin_optimizer_state_is_keyed_by_parameter_as_torch(rng):
    ours, theirs = _pair(rng)
    opt, topt = optim.Adam(ours, lr=0.01), torch.optim.Adam(theirs, lr=0.01)
    _run_both(rng, ours, theirs, opt, topt, steps=2, skip_one=False)
    assert len(opt.state) == len(topt.state) == 3
    assert all(any(k is p for p in ours) for k in opt.state)
    assert set(opt.state_dict()["state"]) == set(topt.state_dict()["state"]) == {0, 1, 2}
    for p in ours:
        assert set(opt.state[p]) == set(topt.state[theirs[0]])


def _custom_schedulers(lib):
    L = lib.optim.lr_scheduler

    class WarmupCosine(L.LRScheduler):  # only get_lr(), as custom torch schedulers are written
        def __init__(self, optimizer, warmup, total, last_epoch=-1):
            self.warmup, self.total = warmup, total
            super().__init__(optimizer, last_epoch)

        def get_lr(self):
            t = self.last_epoch
            if t < self.warmup:
                return [b * (t + 1) / self.warmup for b in self.base_lrs]
            c = 0.5 * (1 + math.cos(math.pi * (t - self.warmup) / (self.total - self.warmup)))
            return [b * c for b in self.base_lrs]

    class Halving(L._LRScheduler):  # the old base-class name; chained on the current rates
        def get_lr(self):
            if not self._get_lr_called_within_step:
                raise AssertionError("get_lr called outside step")
            groups = self.optimizer.param_groups
            return [g["lr"] * (0.5 if self.last_epoch else 1.0) for g in groups]

    class SlowerStep(L.StepLR):  # a built-in schedule with its get_lr() replaced
        def get_lr(self):
            factor = 0.9 if self.last_epoch else 1.0
            return [g["lr"] * factor for g in self.optimizer.param_groups]

    return {"WarmupCosine": lambda o: WarmupCosine(o, 3, 12), "Halving": Halving,
            "SlowerStep": lambda o: SlowerStep(o, 4)}


@pytest.mark.parametrize("name", ["WarmupCosine", "Halving", "SlowerStep"])
def test_a_scheduler_subclass_overriding_get_lr_matches_torch(rng, name):
    assert issubclass(S._LRScheduler, S.LRScheduler)
    opt, topt = _both(rng)
    s, ts = _custom_schedulers(fastconv)[name](opt), _custom_schedulers(torch)[name](topt)
    np.testing.assert_allclose(s.get_last_lr(), ts.get_last_lr(), rtol=1e-12)
    _compare(opt, topt, lambda k: s.step(), lambda k: ts.step(), 15)
    np.testing.assert_allclose(s.get_last_lr(), ts.get_last_lr(), rtol=1e-12)
    assert s.last_epoch == ts.last_epoch == 15
    if name == "WarmupCosine":  # step(epoch) without a closed form calls get_lr(), as torch
        s.step(5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ts.step(5)
        np.testing.assert_allclose(s.get_last_lr(), ts.get_last_lr(), rtol=1e-12)
