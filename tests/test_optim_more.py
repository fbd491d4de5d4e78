"""NAdam, RAdam, Adamax, Rprop and ASGD against torch.optim:

* step by step over several steps on random parameters and gradients, parameters and every
  state buffer compared after each step, with parameter groups of different
  hyperparameters and parameters without a gradient in some steps (skipped, and without
  state until their first gradient);
* torch's signatures, defaults and argument checks (the same ValueError messages);
* state_dict keys as torch's, and a round trip through a checkpoint file that continues in
  step with torch;
* RAdam on both sides of its rectification switch, Rprop at its step-size bounds, ASGD's
  average once ``t0`` is passed;
* OneCycleLR cycling NAdam's beta1 as torch's; a small regression trained by each; the same
  updates on the GPU.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from helpers import randn

import fastconv
import fastconv as fc
import fastconv.functional as F
from fastconv import checkpoint, nn, optim
from fastconv.nn import Parameter

torch = pytest.importorskip("torch")

NAMES = ["NAdam", "RAdam", "Adamax", "Rprop", "ASGD"]
SHAPES = ((3, 4), (5,), (2, 3, 2))
SKIP = {(0, 2), (2, 1), (3, 0)}  # (step, parameter) pairs without a gradient


def _pair(rng, shapes=SHAPES):
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    return ([Parameter(a.copy()) for a in arrays],
            [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in arrays])


def _groups(params, options):
    """``options`` = None: one plain list; else a list of per-group option dicts, the
    parameters dealt out to the groups in order (the last group takes the rest)."""
    if options is None:
        return list(params)
    groups, k = [], 0
    for j, opts in enumerate(options):
        n = 1 if j < len(options) - 1 else len(params) - k
        groups.append({"params": list(params[k:k + n]), **opts})
        k += n
    return groups


def _value(v):
    return v.detach().numpy() if hasattr(v, "detach") else np.asarray(v)


def _compare_states(opt, topt):
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert sorted(sd["state"]) == sorted(tsd["state"])
    for i, tstate in tsd["state"].items():
        ours = sd["state"][i]
        assert sorted(ours) == sorted(tstate), i
        for name, tv in tstate.items():
            if name == "step":
                assert ours[name] == int(tv.item()), (i, name)
            else:
                np.testing.assert_allclose(_value(ours[name]), _value(tv), rtol=2e-5, atol=1e-7,
                                           err_msg=f"param {i} state {name}")


def _run_both(rng, ours, theirs, opt, topt, steps=6, skip=SKIP, first=0):
    for k in range(first, first + steps):
        for j, (p, tp) in enumerate(zip(ours, theirs)):
            if (k, j) in skip:
                p.grad, tp.grad = None, None
                continue
            g = rng.standard_normal(p.shape).astype(np.float32)
            p.grad = Parameter(g)
            tp.grad = torch.from_numpy(g.copy())
        opt.step()
        topt.step()
        for j, (p, tp) in enumerate(zip(ours, theirs)):
            np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=2e-5, atol=2e-6,
                                       err_msg=f"step {k} param {j}")
        _compare_states(opt, topt)


CASES = {
    "NAdam": [
        ({}, None),
        ({"lr": 1e-2, "betas": (0.8, 0.95), "eps": 1e-6}, None),
        ({"lr": 1e-2, "weight_decay": 0.1}, None),
        ({"lr": 1e-2, "weight_decay": 0.1, "decoupled_weight_decay": True}, None),
        ({"lr": 5e-3, "momentum_decay": 0.1, "maximize": True}, None),
        ({"lr": 1e-2}, [{"betas": (0.5, 0.9), "momentum_decay": 0.05},
                        {"lr": 3e-2, "weight_decay": 0.05, "decoupled_weight_decay": True,
                         "maximize": True}]),
    ],
    "RAdam": [
        ({}, None),
        ({"lr": 1e-2, "betas": (0.8, 0.9), "eps": 1e-4}, None),
        ({"lr": 1e-2, "weight_decay": 0.1}, None),
        ({"lr": 1e-2, "weight_decay": 0.1, "decoupled_weight_decay": True}, None),
        ({"lr": 5e-3, "maximize": True}, None),
        ({"lr": 1e-2}, [{"betas": (0.5, 0.6)},  # rho_t > 5 from the third step on
                        {"lr": 3e-2, "weight_decay": 0.05, "decoupled_weight_decay": True,
                         "maximize": True}]),
    ],
    "Adamax": [
        ({}, None),
        ({"lr": 1e-2, "betas": (0.8, 0.9), "eps": 1e-3}, None),
        ({"lr": 1e-2, "weight_decay": 0.1}, None),
        ({"lr": 5e-3, "maximize": True}, None),
        ({"lr": 1e-2}, [{"betas": (0.5, 0.6), "eps": 0.5},
                        {"lr": 3e-2, "weight_decay": 0.05, "maximize": True}]),
    ],
    "Rprop": [
        ({}, None),
        ({"lr": 0.05, "etas": (0.3, 1.5)}, None),
        ({"lr": 0.01, "step_sizes": (5e-3, 0.02)}, None),  # both bounds reached
        ({"maximize": True}, None),
        ({"lr": 0.01}, [{"etas": (0.2, 2.0), "step_sizes": (1e-3, 0.05)},
                        {"lr": 0.1, "maximize": True}]),
    ],
    "ASGD": [
        ({}, None),
        ({"lr": 0.05, "lambd": 0.1, "alpha": 0.5, "t0": 2}, None),  # averaging from step 3
        ({"lr": 0.05, "weight_decay": 0.1, "t0": 0}, None),
        ({"lr": 0.02, "maximize": True, "t0": 1.5}, None),
        ({"lr": 0.01}, [{"lambd": 0.05, "alpha": 1.0, "t0": 3},
                        {"lr": 0.1, "weight_decay": 0.05, "maximize": True, "t0": 1}]),
    ],
}
PARAMS = [(name, kw, groups) for name, cases in CASES.items() for kw, groups in cases]


@pytest.mark.parametrize("name,kw,groups", PARAMS,
                         ids=[f"{n}-{kw}-{g}" for n, kw, g in PARAMS])
def test_matches_torch_step_by_step(rng, name, kw, groups):
    ours, theirs = _pair(rng)
    opt = getattr(optim, name)(_groups(ours, groups), **kw)
    topt = getattr(torch.optim, name)(_groups(theirs, groups), **kw)
    _run_both(rng, ours, theirs, opt, topt, steps=8)
    assert [opt.state[p]["step"] for p in ours] == [7, 7, 7]  # each skipped one step


def test_radam_takes_both_branches_of_the_rectification():
    """Default betas: rho_t passes 5 at the sixth step; before it RAdam is SGD with momentum
    (no division by sqrt(v)), after it the rectified Adam step."""
    p = Parameter(np.array([1.0], np.float32))
    opt = optim.RAdam([p], lr=0.1)
    b1, b2 = 0.9, 0.999
    rho_inf = 2 / (1 - b2) - 1
    w, m, v = 1.0, 0.0, 0.0
    for t in range(1, 9):
        g = 2.0 ** -t  # a gradient far from 1, so the two branches give different steps
        p.grad = Parameter(np.array([g], np.float32))
        opt.step()
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        rho = rho_inf - 2 * t * b2 ** t / (1 - b2 ** t)
        assert (rho > 5) == (t >= 6)
        if rho > 5:
            r = np.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
            w -= 0.1 * m / (1 - b1 ** t) * r * np.sqrt(1 - b2 ** t) / (np.sqrt(v) + 1e-8)
        else:
            w -= 0.1 * m / (1 - b1 ** t)
        np.testing.assert_allclose(p.data[0], w, rtol=1e-5)


def test_rprop_step_sizes_and_sign_flips_by_hand():
    p = Parameter(np.zeros(3, np.float32))
    opt = optim.Rprop([p], lr=0.1, etas=(0.5, 2.0), step_sizes=(0.04, 0.3))
    grads = [[1.0, 1.0, 0.0], [1.0, -1.0, 2.0], [1.0, 1.0, 2.0], [-1.0, 1.0, 2.0]]
    # sizes: [.2 .1 .1] -> [.3(clamped) .05 .1] -> ... ; a flip zeroes the move and the memory
    want_sizes = [[0.1, 0.1, 0.1], [0.2, 0.05, 0.1], [0.3, 0.05, 0.2], [0.15, 0.1, 0.3]]
    want_moves = [[-0.1, -0.1, 0.0], [-0.2, 0.0, -0.1], [-0.3, -0.05, -0.2], [0.0, -0.1, -0.3]]
    w = np.zeros(3)
    for g, size, move in zip(grads, want_sizes, want_moves):
        p.grad = Parameter(np.array(g, np.float32))
        opt.step()
        w += move
        np.testing.assert_allclose(opt.state[p]["step_size"], size, rtol=1e-6)
        np.testing.assert_allclose(p.data, w, rtol=1e-6, atol=1e-7)
    p.grad = Parameter(np.array([-1.0, 1.0, 2.0], np.float32))
    opt.step()  # after a flip the memory is 0: the size of the first weight stays at 0.15
    np.testing.assert_allclose(opt.state[p]["step_size"], [0.15, 0.2, 0.3], rtol=1e-6)
    for k in range(10):  # signs alternating: every second step is a flip that halves the size
        p.grad = Parameter(np.full(3, (-1.0) ** k, np.float32))
        opt.step()
    np.testing.assert_allclose(opt.state[p]["step_size"], [0.04] * 3, rtol=1e-6)  # lower bound


def test_asgd_average_by_hand():
    p = Parameter(np.array([2.0], np.float32))
    lr, lambd, alpha, t0 = 0.1, 0.5, 0.75, 2
    opt = optim.ASGD([p], lr=lr, lambd=lambd, alpha=alpha, t0=t0)
    w, eta, mu, ax, iterates = 2.0, lr, 1.0, 0.0, []
    for t in range(1, 7):
        g = 0.3 * t
        p.grad = Parameter(np.array([g], np.float32))
        opt.step()
        w = w * (1 - lambd * eta) - eta * g
        iterates.append(w)
        ax = w if mu == 1 else ax + mu * (w - ax)
        eta = lr / (1 + lambd * lr * t) ** alpha
        mu = 1 / max(1, t - t0)
        np.testing.assert_allclose(p.data[0], w, rtol=1e-6)
        np.testing.assert_allclose(opt.state[p]["ax"][0], ax, rtol=1e-6)
        assert opt.state[p]["eta"] == pytest.approx(eta) and opt.state[p]["mu"] == mu
    # the mu of step t is 1 / max(1, t - 1 - t0): ax is the iterate itself up to step
    # t0 + 2 and the mean of the iterates from step t0 + 2 on after it
    assert opt.state[p]["mu"] == 1 / 4
    np.testing.assert_allclose(ax, np.mean(iterates[t0 + 1:]), rtol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_signature_and_defaults_are_torchs(name):
    ours = inspect.signature(getattr(optim, name).__init__).parameters
    theirs = inspect.signature(getattr(torch.optim, name).__init__).parameters
    assert list(ours) == list(theirs)
    for k, p in theirs.items():
        assert ours[k].kind == p.kind, k
        if p.default is not inspect.Parameter.empty:
            assert ours[k].default == p.default, k
    ps = [Parameter(np.zeros(3, np.float32))]
    tps = [torch.nn.Parameter(torch.zeros(3))]
    group, tgroup = (getattr(optim, name)(ps).param_groups[0],
                     getattr(torch.optim, name)(tps).param_groups[0])
    for k, v in group.items():
        if k != "params":
            assert v == tgroup[k], k


BAD = {
    "NAdam": [{"lr": -1.0}, {"eps": -1e-8}, {"betas": (1.0, 0.999)}, {"betas": (0.9, -0.1)},
              {"weight_decay": -0.1}, {"momentum_decay": -1e-3}],
    "RAdam": [{"lr": -1.0}, {"eps": -1e-8}, {"betas": (-0.1, 0.999)}, {"betas": (0.9, 1.0)},
              {"weight_decay": -0.1}],
    "Adamax": [{"lr": -1.0}, {"eps": -1e-8}, {"betas": (1.5, 0.999)}, {"betas": (0.9, 1.0)},
               {"weight_decay": -0.1}],
    "Rprop": [{"lr": -1.0}, {"etas": (0.0, 1.2)}, {"etas": (1.0, 1.2)}, {"etas": (0.5, 1.0)},
              {"etas": (0.5, 0.9)}],
    "ASGD": [{"lr": -1.0}, {"weight_decay": -0.1}],
}


@pytest.mark.parametrize("name", NAMES)
def test_argument_errors_are_torchs(name):
    ps = [Parameter(np.zeros(3, np.float32))]
    tps = [torch.nn.Parameter(torch.zeros(3))]
    for bad in BAD[name]:
        with pytest.raises(ValueError) as theirs:
            getattr(torch.optim, name)(tps, **bad)
        with pytest.raises(ValueError) as ours:
            getattr(optim, name)(ps, **bad)
        assert str(ours.value) == str(theirs.value), bad
    for flag in ("capturable", "differentiable"):
        with pytest.raises(ValueError, match=f"{flag}=True is not supported"):
            getattr(optim, name)(ps, **{flag: True})
    getattr(optim, name)(ps, foreach=True)  # one implementation: accepted
    with pytest.raises(TypeError, match="got a Tensor"):
        getattr(optim, name)(ps[0])


ROUND_TRIP = [("NAdam", {"lr": 1e-2, "weight_decay": 0.01}, {"lr": 1e-3}),
              ("RAdam", {"lr": 1e-2, "decoupled_weight_decay": True, "weight_decay": 0.1},
               {"lr": 1e-3}),
              ("Adamax", {"lr": 1e-2, "betas": (0.8, 0.9)}, {}),
              ("Rprop", {"lr": 0.02, "etas": (0.4, 1.3)}, {}),
              ("ASGD", {"lr": 0.05, "t0": 2, "lambd": 0.01}, {"t0": 100})]
STATE_NAMES = {"NAdam": ["exp_avg", "exp_avg_sq", "mu_product", "step"],
               "RAdam": ["exp_avg", "exp_avg_sq", "step"],
               "Adamax": ["exp_avg", "exp_inf", "step"],
               "Rprop": ["prev", "step", "step_size"],
               "ASGD": ["ax", "eta", "mu", "step"]}


@pytest.mark.parametrize("name,kw,other", ROUND_TRIP, ids=[r[0] for r in ROUND_TRIP])
def test_state_dict_round_trip_continues_with_torch(rng, tmp_path, name, kw, other):
    ours, theirs = _pair(rng)
    groups = [{}, {"weight_decay": 0.05} if name != "Rprop" else {"lr": 0.05}]
    opt = getattr(optim, name)(_groups(ours, groups), **kw)
    topt = getattr(torch.optim, name)(_groups(theirs, groups), **kw)
    assert opt.state_dict()["state"] == {}
    _run_both(rng, ours, theirs, opt, topt, steps=4, skip={(0, 2)})
    sd, tsd = opt.state_dict(), topt.state_dict()
    for i in tsd["state"]:
        assert sorted(sd["state"][i]) == sorted(tsd["state"][i]) == STATE_NAMES[name]
    for g, tg in zip(sd["param_groups"], tsd["param_groups"]):
        assert g["params"] == tg["params"]
        for k, v in g.items():
            assert v == (list(tg[k]) if isinstance(tg[k], tuple) else tg[k]), k
    path = str(tmp_path / f"{name}.npz")
    checkpoint.save(sd, path)
    ours2 = [Parameter(p.data.copy()) for p in ours]
    opt2 = getattr(optim, name)(_groups(ours2, groups), **other)
    opt2.load_state_dict(checkpoint.load(path))
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    for k in ("betas", "etas", "step_sizes"):
        assert all(isinstance(g[k], tuple) for g in opt2.param_groups if k in g), k
    _run_both(rng, ours2, theirs, opt2, topt, steps=4, skip={(5, 1)}, first=4)


def test_one_cycle_cycles_nadam_beta1_as_torch(rng):
    ours, theirs = _pair(rng)
    opt = optim.NAdam(ours, lr=1e-2)
    topt = torch.optim.NAdam(theirs, lr=1e-2)
    sched = optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=10)
    tsched = torch.optim.lr_scheduler.OneCycleLR(topt, max_lr=0.05, total_steps=10)
    for k in range(8):
        _run_both(rng, ours, theirs, opt, topt, steps=1, skip=set(), first=k)
        sched.step()
        tsched.step()
        assert opt.param_groups[0]["lr"] == pytest.approx(topt.param_groups[0]["lr"])
        assert opt.param_groups[0]["betas"][0] == pytest.approx(
            topt.param_groups[0]["betas"][0])


TRAIN = [("NAdam", {"lr": 0.05}), ("RAdam", {"lr": 0.1}), ("Adamax", {"lr": 0.1}),
         ("Rprop", {"lr": 0.01}), ("ASGD", {"lr": 0.05})]


@pytest.mark.parametrize("name,kw", TRAIN, ids=[t[0] for t in TRAIN])
def test_trains_a_layer(rng, name, kw):
    fc.manual_seed(0)
    layer = nn.Linear(4, 1)
    x = fc.tensor(randn(rng, 64, 4))
    y = x @ fc.tensor(np.array([[1.0], [-2.0], [0.5], [3.0]], np.float32)) + 0.5
    opt = getattr(optim, name)(layer.parameters(), **kw)
    first = None
    for _ in range(150):
        opt.zero_grad()
        loss = F.mse_loss(layer(x), y)
        first = float(loss) if first is None else first
        loss.backward()
        opt.step()
    assert float(loss) < 0.01 * first  # 12 draws: at most 5e-4 (NAdam), RAdam 5e-6


@pytest.mark.gpu
@pytest.mark.parametrize("name,kw,groups", [c for c in PARAMS if c[2] is not None],
                         ids=[c[0] for c in PARAMS if c[2] is not None])
def test_gpu_matches_cpu(rng, name, kw, groups):
    cpu = [Parameter(rng.standard_normal(s).astype(np.float32)) for s in SHAPES]
    gpu = [Parameter(fastconv.tensor(p.data.copy(), device="cuda").data) for p in cpu]
    o_cpu = getattr(optim, name)(_groups(cpu, groups), **kw)
    o_gpu = getattr(optim, name)(_groups(gpu, groups), **kw)
    for k in range(8):
        for j, (a, b) in enumerate(zip(cpu, gpu)):
            if (k, j) in SKIP:
                a.grad = b.grad = None
                continue
            g = rng.standard_normal(a.shape).astype(np.float32)
            a.grad = fastconv.tensor(g)
            b.grad = fastconv.tensor(g, device="cuda")
        o_cpu.step()
        o_gpu.step()
    for a, b in zip(cpu, gpu):
        assert b.device == "cuda"
        np.testing.assert_allclose(b.detach().numpy(), a.data, rtol=1e-5, atol=1e-6)
    sc, sg = o_cpu.state_dict(), o_gpu.state_dict()
    for i, st in sg["state"].items():
        for k, v in st.items():
            if hasattr(v, "shape"):
                assert isinstance(v, np.ndarray)
                np.testing.assert_allclose(v, sc["state"][i][k], rtol=1e-5, atol=1e-7)
            else:
                assert v == pytest.approx(sc["state"][i][k])
