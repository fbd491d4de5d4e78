"""fastconv.optim.swa_utils against torch.optim.swa_utils: AveragedModel (SWA, EMA, custom
averages, buffers), SWALR's rates, update_bn's statistics, and BatchNorm's momentum=None."""

from __future__ import annotations

import numpy as np
import pytest

import fastconv as fc
from fastconv.optim import swa_utils

torch = pytest.importorskip("torch")


def _twins(rng):
    def build(lib):
        nn = lib.nn
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                             nn.Linear(4 * 4 * 4, 3))

    fm, tm = build(fc), build(torch)
    tm.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in fm.state_dict().items()})
    return fm, tm


def _perturb(fm, tm, rng):
    """The same random new weights (and batch-norm statistics) into both models."""
    state = {k: (rng.standard_normal(np.shape(v)).astype(np.float32)
                 if np.asarray(v).dtype.kind == "f" else np.asarray(v) + 1)
             for k, v in fm.state_dict().items()}
    for k in state:
        if k.endswith("running_var"):
            state[k] = np.abs(state[k]) + 0.1
    fm.load_state_dict(state)
    tm.load_state_dict({k: torch.tensor(v) for k, v in state.items()})


def _compare(fa, ta, tol=1e-6):
    fs, ts = fa.state_dict(), ta.state_dict()
    assert set(fs) == set(ts)
    for k in fs:
        if k.endswith("num_batches_tracked") and k.startswith("module."):
            continue  # an integer: fastconv copies it (torch averages it in integer steps)
        np.testing.assert_allclose(np.asarray(fs[k]), ts[k].numpy(), rtol=tol, atol=tol,
                                   err_msg=k)


@pytest.mark.parametrize("kind", ["swa", "ema_multi", "ema_fn", "swa_fn", "buffers"])
def test_averaged_model_matches_torch(rng, kind):
    fm, tm = _twins(rng)
    kw_f, kw_t = {}, {}
    if kind == "ema_multi":
        kw_f["multi_avg_fn"] = swa_utils.get_ema_multi_avg_fn(0.9)
        kw_t["multi_avg_fn"] = torch.optim.swa_utils.get_ema_multi_avg_fn(0.9)
    elif kind == "ema_fn":
        kw_f["avg_fn"] = swa_utils.get_ema_avg_fn(0.8)
        kw_t["avg_fn"] = torch.optim.swa_utils.get_ema_avg_fn(0.8)
    elif kind == "swa_fn":
        kw_f["avg_fn"] = swa_utils.get_swa_avg_fn()
        kw_t["avg_fn"] = torch.optim.swa_utils.get_swa_avg_fn()
    elif kind == "buffers":
        kw_f["use_buffers"] = kw_t["use_buffers"] = True
    fa = swa_utils.AveragedModel(fm, **kw_f)
    ta = torch.optim.swa_utils.AveragedModel(tm, **kw_t)
    for _ in range(4):
        _perturb(fm, tm, rng)
        fa.update_parameters(fm)
        ta.update_parameters(tm)
    _compare(fa, ta, 1e-5)
    assert int(fa.n_averaged.item()) == 4
    np.testing.assert_array_equal(np.asarray(fa.state_dict()["module.1.num_batches_tracked"]),
                                  np.asarray(fm.state_dict()["1.num_batches_tracked"]))
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    fa.eval()
    ta.eval()
    np.testing.assert_allclose(fa(fc.tensor(x)).detach().numpy(),
                               ta(torch.tensor(x)).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_averaged_model_errors(rng):
    fm, _ = _twins(rng)
    with pytest.raises(ValueError, match="not both"):
        swa_utils.AveragedModel(fm, avg_fn=swa_utils.get_swa_avg_fn(),
                                multi_avg_fn=swa_utils.get_swa_multi_avg_fn())
    with pytest.raises(TypeError, match="Module"):
        swa_utils.AveragedModel(np.ones(3))
    fa = swa_utils.AveragedModel(fm)
    with pytest.raises(ValueError, match="differ"):
        fa.update_parameters(fc.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="decay"):
        swa_utils.get_ema_multi_avg_fn(1.5)


@pytest.mark.parametrize("strategy,anneal", [("cos", 3), ("linear", 4), ("cos", 0)])
def test_swalr_rates_match_torch(strategy, anneal):
    fp = [fc.nn.Parameter(fc.ones(2))]
    tp = [torch.nn.Parameter(torch.ones(2))]
    fo = fc.optim.SGD([{"params": fp, "lr": 0.5}], lr=0.5)
    to = torch.optim.SGD([{"params": tp, "lr": 0.5}], lr=0.5)
    fs = swa_utils.SWALR(fo, swa_lr=0.05, anneal_epochs=anneal, anneal_strategy=strategy)
    ts = torch.optim.swa_utils.SWALR(to, swa_lr=0.05, anneal_epochs=anneal,
                                     anneal_strategy=strategy)
    rates = []
    for _ in range(7):
        rates.append((fo.param_groups[0]["lr"], to.param_groups[0]["lr"]))
        fo.step()
        to.step()
        fs.step()
        ts.step()
    np.testing.assert_allclose([r[0] for r in rates], [r[1] for r in rates], rtol=1e-12)
    assert abs(rates[-1][0] - 0.05) < 1e-12
    with pytest.raises(ValueError, match="anneal_strategy"):
        swa_utils.SWALR(fo, 0.1, anneal_strategy="exp")


def test_update_bn_and_cumulative_batch_norm_match_torch(rng):
    fm, tm = _twins(rng)
    batches = [rng.standard_normal((4, 3, 6, 6)).astype(np.float32) + 2 for _ in range(3)]
    fm.eval()
    tm.eval()
    swa_utils.update_bn([(fc.tensor(b), 0) for b in batches], fm)
    torch.optim.swa_utils.update_bn([(torch.tensor(b), 0) for b in batches], tm)
    assert not fm.training and fm[1].momentum == 0.1
    _compare(fm, tm, 1e-5)
    # momentum=None directly: the cumulative average of the batches' statistics
    fb, tb = fc.nn.BatchNorm2d(3, momentum=None), torch.nn.BatchNorm2d(3, momentum=None)
    for b in batches:
        fb(fc.tensor(b))
        tb(torch.tensor(b))
    _compare(fb, tb, 1e-5)
    fb.eval()
    tb.eval()
    np.testing.assert_allclose(fb(fc.tensor(batches[0])).detach().numpy(),
                               tb(torch.tensor(batches[0])).detach().numpy(), atol=1e-5)
