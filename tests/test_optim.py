"""fastconv.optim: each optimizer's update against a hand computation and against
torch.optim (where installed), schedules, gradient clipping, EMA, state dicts."""

from __future__ import annotations

import math

import numpy as np
import pytest

import fastconv
from fastconv import checkpoint, optim
from fastconv.nn import Parameter
from fastconv.optim import lr_scheduler as S


def make_params(rng, shapes=((3, 4), (5,), (2, 3, 2))):
    return [Parameter(rng.standard_normal(s).astype(np.float32)) for s in shapes]


def set_grads(params, grads):
    for p, g in zip(params, grads):
        p.grad = None if g is None else fastconv.tensor(g)


def draw_grads(rng, params, steps):
    return [[rng.standard_normal(p.shape).astype(np.float32) for p in params]
            for _ in range(steps)]


# ------------------------------------------------------------------------------------------------
# hand computations (float64, written out from the papers' update rules)
# ------------------------------------------------------------------------------------------------

def sgd_by_hand(w, grads, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    w = w.astype(np.float64)
    buf = None
    for g in grads:
        g = g.astype(np.float64) + weight_decay * w
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        w = w - lr * g
    return w


def adam_by_hand(w, grads, lr, b1, b2, eps, weight_decay=0.0, decoupled=False, amsgrad=False):
    w = w.astype(np.float64)
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    vmax = np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        g = g.astype(np.float64)
        if decoupled:
            w = w * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = np.maximum(vmax, v)
        vhat = (vmax if amsgrad else v) / (1 - b2 ** t)
        w = w - lr * (m / (1 - b1 ** t)) / (np.sqrt(vhat) + eps)
    return w


SGD_CASES = [
    {"lr": 0.1},
    {"lr": 0.05, "momentum": 0.9},
    {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4},
    {"lr": 0.02, "momentum": 0.8, "dampening": 0.3, "weight_decay": 1e-2},
]
ADAM_CASES = [
    (optim.Adam, {"lr": 1e-2}),
    (optim.Adam, {"lr": 3e-3, "betas": (0.8, 0.99), "weight_decay": 1e-2, "amsgrad": True}),
    (optim.AdamW, {"lr": 1e-2, "weight_decay": 0.1}),
    (optim.AdamW, {"lr": 2e-3, "betas": (0.5, 0.9), "eps": 1e-6, "weight_decay": 0.05,
                   "amsgrad": True}),
]


@pytest.mark.parametrize("kw", SGD_CASES)
def test_sgd_matches_hand_computation(rng, kw):
    params = make_params(rng)
    start = [p.data.copy() for p in params]
    steps = draw_grads(rng, params, 4)
    opt = optim.SGD(params, **kw)
    for grads in steps:
        set_grads(params, grads)
        opt.step()
    for k, p in enumerate(params):
        want = sgd_by_hand(start[k], [g[k] for g in steps], **kw)
        assert p.data.dtype == np.float32
        np.testing.assert_allclose(p.data, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls,kw", ADAM_CASES)
def test_adam_matches_hand_computation(rng, cls, kw):
    params = make_params(rng)
    start = [p.data.copy() for p in params]
    steps = draw_grads(rng, params, 5)
    opt = cls(params, **kw)
    for grads in steps:
        set_grads(params, grads)
        opt.step()
    b1, b2 = kw.get("betas", (0.9, 0.999))
    wd = kw.get("weight_decay", 0.01 if cls is optim.AdamW else 0.0)
    for k, p in enumerate(params):
        want = adam_by_hand(start[k], [g[k] for g in steps], kw["lr"], b1, b2,
                            kw.get("eps", 1e-8), wd, decoupled=cls is optim.AdamW,
                            amsgrad=kw.get("amsgrad", False))
        np.testing.assert_allclose(p.data, want, rtol=1e-5, atol=1e-6)


def _torch_run(torch_cls, kw, start, steps):
    torch = pytest.importorskip("torch")
    tp = [torch.nn.Parameter(torch.from_numpy(s.copy())) for s in start]
    opt = torch_cls(tp, **kw)
    for grads in steps:
        for p, g in zip(tp, grads):
            p.grad = None if g is None else torch.from_numpy(g.copy())
        opt.step()
    return [p.detach().numpy() for p in tp]


@pytest.mark.parametrize("kw", SGD_CASES)
def test_sgd_matches_torch(rng, kw):
    torch = pytest.importorskip("torch")
    params = make_params(rng)
    start = [p.data.copy() for p in params]
    steps = draw_grads(rng, params, 6)
    steps[2][1] = None  # a parameter without gradient in one step is left alone
    opt = optim.SGD(params, **kw)
    for grads in steps:
        set_grads(params, grads)
        opt.step()
    want = _torch_run(torch.optim.SGD, kw, start, steps)
    for p, w in zip(params, want):
        np.testing.assert_allclose(p.data, w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls,kw", ADAM_CASES)
def test_adam_matches_torch(rng, cls, kw):
    torch = pytest.importorskip("torch")
    params = make_params(rng)
    start = [p.data.copy() for p in params]
    steps = draw_grads(rng, params, 6)
    steps[3][0] = None
    opt = cls(params, **kw)
    for grads in steps:
        set_grads(params, grads)
        opt.step()
    tcls = torch.optim.AdamW if cls is optim.AdamW else torch.optim.Adam
    want = _torch_run(tcls, kw, start, steps)
    for p, w in zip(params, want):
        np.testing.assert_allclose(p.data, w, rtol=1e-5, atol=1e-6)


def test_param_groups_frozen_params_and_zero_grad(rng):
    a, b, frozen = make_params(rng, ((4,), (3,), (2,)))
    frozen.requires_grad = False
    a0, b0, f0 = a.data.copy(), b.data.copy(), frozen.data.copy()
    opt = optim.SGD([{"params": [a]}, {"params": [b, frozen], "lr": 0.5, "weight_decay": 0.1}],
                    lr=0.1)
    ga, gb = rng.standard_normal(4).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    set_grads([a, b, frozen], [ga, gb, None])
    opt.step()
    np.testing.assert_allclose(a.data, a0 - 0.1 * ga, rtol=1e-6)
    np.testing.assert_allclose(b.data, b0 - 0.5 * (gb + 0.1 * b0), rtol=1e-6)
    np.testing.assert_array_equal(frozen.data, f0)
    opt.zero_grad()
    assert a.grad is None and b.grad is None
    with pytest.raises(ValueError, match="two groups"):
        optim.SGD([{"params": [a]}, {"params": [a]}], lr=0.1)
    with pytest.raises(ValueError, match="learning rate"):
        optim.SGD([a], lr=-0.1)
    assert optim.SGD([a]).param_groups[0]["lr"] == 1e-3  # torch 2's default
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([a], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="empty"):
        optim.Adam([])


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    lambda ps: optim.Adam(ps, lr=1e-2, amsgrad=True),
    lambda ps: optim.AdamW(ps, lr=1e-2),
])
def test_optimizer_state_dict_resumes_exactly(rng, make, tmp_path):
    params = make_params(rng)
    twin = [Parameter(p.data.copy()) for p in params]
    steps = draw_grads(rng, params, 5)
    opt = make(params)
    for grads in steps[:3]:
        set_grads(params, grads)
        opt.step()
    path = checkpoint.save_checkpoint(str(tmp_path / "o.npz"),
                                               {"opt": opt.state_dict()})
    for p, t in zip(params, twin):
        t.data = p.data.copy()
    opt2 = make(twin)
    opt2.load_state_dict(checkpoint.load_checkpoint(path)["opt"])
    for grads in steps[3:]:
        set_grads(params, grads)
        opt.step()
        set_grads(twin, grads)
        opt2.step()
    for p, t in zip(params, twin):
        np.testing.assert_array_equal(p.data, t.data)  # bit-exact
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


def test_optimizer_load_state_dict_rejects_mismatch(rng):
    params = make_params(rng)
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    set_grads(params, draw_grads(rng, params, 1)[0])
    opt.step()
    state = opt.state_dict()
    state2 = dict(state, param_groups=[dict(state["param_groups"][0], params=[0, 1])])
    with pytest.raises(ValueError, match="2 parameters in the state, 3"):
        optim.SGD(make_params(rng), lr=0.1).load_state_dict(state2)
    with pytest.raises(ValueError, match="3 parameters in the state, 2"):
        optim.SGD(make_params(rng, ((3, 4), (5,))), lr=0.1).load_state_dict(state)
    with pytest.raises(ValueError, match="shapes do not match"):
        optim.SGD(make_params(rng, ((4, 3), (5,), (2, 3, 2))), lr=0.1).load_state_dict(state)
    with pytest.raises(ValueError, match="not an optimizer state"):
        opt.load_state_dict({"foo": 1})


# ------------------------------------------------------------------------------------------------
# schedules
# ------------------------------------------------------------------------------------------------

def _lrs(sched, opt, n):
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        sched.step()
    return out


SCHEDULES = [
    ("StepLR", lambda o: S.StepLR(o, step_size=3, gamma=0.5),
     lambda t, o: t.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5)),
    ("MultiStepLR", lambda o: S.MultiStepLR(o, [2, 5, 9], gamma=0.3),
     lambda t, o: t.optim.lr_scheduler.MultiStepLR(o, [2, 5, 9], gamma=0.3)),
    ("Cosine", lambda o: S.CosineAnnealingLR(o, T_max=12, eta_min=0.01),
     lambda t, o: t.optim.lr_scheduler.CosineAnnealingLR(o, T_max=12, eta_min=0.01)),
    ("LinearLR", lambda o: S.LinearLR(o, start_factor=0.1, total_iters=4),
     lambda t, o: t.optim.lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=4)),
    ("Warmup+cosine",
     lambda o: S.LinearWarmup(o, 3, after=S.CosineAnnealingLR(o, T_max=9), start_factor=0.2),
     lambda t, o: t.optim.lr_scheduler.SequentialLR(
         o, [t.optim.lr_scheduler.LinearLR(o, start_factor=0.2, total_iters=3),
             t.optim.lr_scheduler.CosineAnnealingLR(o, T_max=9)], milestones=[3])),
]


@pytest.mark.parametrize("name,ours,theirs", SCHEDULES, ids=[s[0] for s in SCHEDULES])
def test_schedules_match_torch(rng, name, ours, theirs):
    torch = pytest.importorskip("torch")
    base = float(rng.uniform(0.05, 0.5))
    opt = optim.SGD(make_params(rng, ((2,),)), lr=base, momentum=0.9)
    tparam = torch.nn.Parameter(torch.zeros(2))
    topt = torch.optim.SGD([tparam], lr=base, momentum=0.9)
    # 13 steps: up to the end of every schedule (T_max); tests/test_optim_api.py goes past it.
    mine = _lrs(ours(opt), opt, 13)
    tsched = theirs(torch, topt)
    want = []
    for _ in range(13):
        want.append(topt.param_groups[0]["lr"])
        topt.step()
        tsched.step()
    np.testing.assert_allclose(mine, want, rtol=1e-9, atol=1e-12)


def test_schedules_by_hand(rng):
    p = make_params(rng, ((2,),))
    opt = optim.SGD(p, lr=0.4)
    lrs = _lrs(S.CosineAnnealingLR(opt, T_max=10), opt, 12)
    assert lrs[0] == pytest.approx(0.4) and lrs[5] == pytest.approx(0.2)
    assert lrs[10] == pytest.approx(0.0, abs=1e-12)
    # past T_max the cosine climbs again, as torch computes it (not clamped at eta_min)
    assert lrs[11] == pytest.approx(0.4 * (1 + math.cos(math.pi * 11 / 10)) / 2, rel=1e-12)
    opt = optim.SGD(p, lr=0.4)
    lrs = _lrs(S.LinearWarmup(opt, 4), opt, 6)
    np.testing.assert_allclose(lrs, [0.0, 0.1, 0.2, 0.3, 0.4, 0.4])
    opt = optim.SGD(p, lr=1.0)
    lrs = _lrs(S.StepLR(opt, 2, gamma=0.1), opt, 5)
    np.testing.assert_allclose(lrs, [1, 1, 0.1, 0.1, 0.01])


@pytest.mark.parametrize("kw", [{}, {"anneal_strategy": "linear", "pct_start": 0.4},
                                {"three_phase": True, "div_factor": 10}])
@pytest.mark.parametrize("which", ["sgd", "adam"])
def test_one_cycle_matches_torch(rng, kw, which):
    torch = pytest.importorskip("torch")
    total, max_lr = 20, float(rng.uniform(0.1, 1.0))
    ps = make_params(rng, ((2,),))
    opt = optim.SGD(ps, lr=0.1, momentum=0.9) if which == "sgd" else optim.Adam(ps, lr=0.1)
    sched = S.OneCycleLR(opt, max_lr=max_lr, total_steps=total, **kw)
    tp = torch.nn.Parameter(torch.zeros(2))
    topt = torch.optim.SGD([tp], lr=0.1, momentum=0.9) if which == "sgd" else \
        torch.optim.Adam([tp], lr=0.1)
    tsched = torch.optim.lr_scheduler.OneCycleLR(topt, max_lr=max_lr, total_steps=total, **kw)
    key = "momentum" if which == "sgd" else "betas"
    for i in range(total):
        assert opt.param_groups[0]["lr"] == pytest.approx(topt.param_groups[0]["lr"], rel=1e-9)
        mine, theirs = opt.param_groups[0][key], topt.param_groups[0][key]
        if which == "adam":
            mine, theirs = mine[0], theirs[0]
        assert mine == pytest.approx(theirs, rel=1e-9)
        if i < total - 1:
            topt.step()
            tsched.step()
            sched.step()
    sched.step()  # step number total is still allowed (as in torch), one more is not
    with pytest.raises(ValueError, match="total_steps"):
        sched.step()


def test_one_cycle_shape_by_hand(rng):
    opt = optim.SGD(make_params(rng, ((2,),)), lr=0.1, momentum=0.9)
    sched = S.OneCycleLR(opt, max_lr=1.0, total_steps=100, pct_start=0.3)
    lrs = _lrs(sched, opt, 100)
    assert lrs[0] == pytest.approx(1.0 / 25)
    assert int(np.argmax(lrs)) == 29 and max(lrs) == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(1.0 / 25 / 1e4)
    assert np.all(np.diff(lrs[:30]) > 0) and np.all(np.diff(lrs[29:]) < 0)


def test_reduce_on_plateau_matches_torch_and_hand(rng):
    metrics = [1.0, 0.9, 0.95, 0.93, 0.91, 0.92, 0.94, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99]
    kw = {"mode": "min", "factor": 0.5, "patience": 2, "cooldown": 1, "min_lr": 0.02}
    opt = optim.SGD(make_params(rng, ((2,),)), lr=0.1)
    sched = S.ReduceLROnPlateau(opt, **kw)
    mine = []
    for m in metrics:
        sched.step(m)
        mine.append(opt.param_groups[0]["lr"])
    # by hand: bad epochs 3 (0.95, 0.93, 0.91 do not beat 0.9) -> 0.05 at epoch 5, cooldown 1,
    # then 0.5 improves; 0.6 .. 0.8 are bad -> 0.025 at index 10; cooldown; 0.95, 0.97, 0.99
    # are bad -> 0.0125, clamped to min_lr = 0.02.
    np.testing.assert_allclose(mine[:5], [0.1, 0.1, 0.1, 0.1, 0.05])
    assert mine[10] == pytest.approx(0.025) and mine[-1] == pytest.approx(0.02)
    torch = pytest.importorskip("torch")
    tp = torch.nn.Parameter(torch.zeros(2))
    topt = torch.optim.SGD([tp], lr=0.1)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kw)
    want = []
    for m in metrics:
        tsched.step(m)
        want.append(topt.param_groups[0]["lr"])
    np.testing.assert_allclose(mine, want, rtol=1e-12)


def test_scheduler_state_dict_round_trip(rng, tmp_path):
    def build(o):
        return S.LinearWarmup(o, 4, after=S.CosineAnnealingLR(o, T_max=20))

    opt = optim.SGD(make_params(rng, ((2,),)), lr=0.3)
    sched = build(opt)
    for _ in range(7):
        sched.step()
    path = checkpoint.save_checkpoint(str(tmp_path / "s.npz"),
                                               {"s": sched, "o": opt.state_dict()})
    loaded = checkpoint.load_checkpoint(path)
    opt2 = optim.SGD(make_params(rng, ((2,),)), lr=0.3)
    opt2.load_state_dict(loaded["o"])
    sched2 = build(opt2)
    sched2.load_state_dict(loaded["s"])
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    assert _lrs(sched2, opt2, 10) == _lrs(sched, opt, 10)
    plateau = S.ReduceLROnPlateau(opt, patience=0)
    plateau.step(1.0)
    p2 = S.ReduceLROnPlateau(opt2)
    p2.load_state_dict(checkpoint.load_checkpoint(
        checkpoint.save_checkpoint(str(tmp_path / "p.npz"), {"p": plateau}))["p"])
    assert p2.best == 1.0 and p2.patience == 0


# ------------------------------------------------------------------------------------------------
# clipping and EMA
# ------------------------------------------------------------------------------------------------

def test_clip_grad_norm_by_hand_and_torch(rng):
    params = make_params(rng)
    grads = draw_grads(rng, params, 1)[0]
    total = math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads))
    set_grads(params, grads)
    norm = optim.clip_grad_norm_(params, max_norm=total / 3)
    assert norm == pytest.approx(total, rel=1e-6)
    after = math.sqrt(sum(float((p.grad.data.astype(np.float64) ** 2).sum()) for p in params))
    assert after == pytest.approx(total / 3, rel=1e-5)
    for p, g in zip(params, grads):  # direction kept
        np.testing.assert_allclose(p.grad.data, g / 3, rtol=1e-5)
    set_grads(params, grads)
    optim.clip_grad_norm_(params, max_norm=total * 2)  # below the limit: untouched
    for p, g in zip(params, grads):
        np.testing.assert_array_equal(p.grad.data, g)
    set_grads(params, grads)
    inf = optim.clip_grad_norm_(params, 0.1, norm_type=float("inf"))
    assert inf == pytest.approx(max(np.abs(g).max() for g in grads))
    assert max(np.abs(p.grad.data).max() for p in params) == pytest.approx(0.1, rel=1e-5)
    torch = pytest.importorskip("torch")
    tp = [torch.nn.Parameter(torch.zeros(g.shape)) for g in grads]
    for p, g in zip(tp, grads):
        p.grad = torch.from_numpy(g.copy())
    tn = torch.nn.utils.clip_grad_norm_(tp, max_norm=1.0)
    set_grads(params, grads)
    assert optim.clip_grad_norm_(params, 1.0) == pytest.approx(float(tn), rel=1e-5)
    for p, t in zip(params, tp):
        np.testing.assert_allclose(p.grad.data, t.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_ema_by_hand_swap_and_state(rng, tmp_path):
    from fastconv import nn

    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ema = optim.ExponentialMovingAverage(model, decay=0.9)
    w0 = model[0].weight.data.astype(np.float64)
    shadow = w0.copy()
    for n in range(4):
        model[0].weight.data += rng.standard_normal((2, 3)).astype(np.float32)
        ema.update(model)
        d = min(0.9, (1 + n) / (10 + n))
        shadow = d * shadow + (1 - d) * model[0].weight.data
    np.testing.assert_allclose(ema.shadow["0.weight"], shadow, rtol=1e-5, atol=1e-6)
    own = model[0].weight.data.copy()
    with ema.average_parameters(model):
        np.testing.assert_allclose(model[0].weight.data, shadow, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(model[0].weight.data, own)  # restored
    path = checkpoint.save_checkpoint(str(tmp_path / "e.npz"), {"ema": ema})
    ema2 = optim.ExponentialMovingAverage(model, decay=0.5)
    ema2.load_state_dict(checkpoint.load_checkpoint(path)["ema"])
    assert ema2.decay == 0.9 and ema2.num_updates == 4
    np.testing.assert_array_equal(ema2.shadow["0.weight"], ema.shadow["0.weight"])
    with pytest.raises(ValueError, match="do not match"):
        optim.ExponentialMovingAverage(nn.Linear(3, 2)).load_state_dict(ema.state_dict())


# ------------------------------------------------------------------------------------------------
# GPU: the same update on CuPy arrays
# ------------------------------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda ps: optim.AdamW(ps, lr=1e-2, amsgrad=True),
])
def test_optimizers_on_gpu_match_cpu(rng, make):
    cpu = make_params(rng)
    gpu = [Parameter(fastconv.tensor(p.data.copy(), device="cuda").data) for p in cpu]
    steps = draw_grads(rng, cpu, 3)
    o_cpu, o_gpu = make(cpu), make(gpu)
    for grads in steps:
        set_grads(cpu, grads)
        for p, g in zip(gpu, grads):
            p.grad = fastconv.tensor(g, device="cuda")
        o_cpu.step()
        o_gpu.step()
        optim.clip_grad_norm_(gpu, 1.0)
        optim.clip_grad_norm_(cpu, 1.0)
    for a, b in zip(cpu, gpu):
        assert b.device == "cuda"
        np.testing.assert_allclose(b.detach().numpy(), a.data, rtol=1e-5, atol=1e-6)
    state = o_gpu.state_dict()
    assert all(isinstance(v, np.ndarray) for s in state["state"].values() for v in s.values()
               if hasattr(v, "shape"))
