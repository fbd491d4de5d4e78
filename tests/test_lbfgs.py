"""optim.LBFGS against torch.optim.LBFGS: the fixed-step form step for step (same two-loop
recursion, same stopping rules), the strong-Wolfe form to the same minimum; its state across
steps and through state_dict."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close, randn

import fastconv as fc

torch = pytest.importorskip("torch")


def _regression(m, a, b, w0, **options):
    w = m.tensor(w0.copy(), requires_grad=True)
    A, y = m.tensor(a), m.tensor(b)
    opt = m.optim.LBFGS([w], **options)

    def closure():
        opt.zero_grad()
        loss = ((A @ w - y) ** 2).mean() + 0.1 * (w ** 4).sum()
        loss.backward()
        return loss

    losses = [float(opt.step(closure)) for _ in range(3)]
    return w.detach().numpy(), losses


@pytest.mark.parametrize("options", [dict(lr=0.5, max_iter=5), dict(lr=1, history_size=3),
                                     dict(lr=0.1, max_iter=1)])
def test_fixed_step_matches_torch_step_for_step(options, rng):
    """Against torch in float64: 15 float32 iterations that end near the minimum differ from
    the exact trajectory by a few 1e-4 of the weights' scale (the curvature pairs are then
    differences of nearly equal gradients; torch's own float32 run differs as much, and
    which tolerance_change exit fires first can move an iterate by as much), while a
    different update rule moves them by percents."""
    a, b, w0 = randn(rng, 30, 6), randn(rng, 30), randn(rng, 6) * 0.1
    got, got_losses = _regression(fc, a, b, w0, **options)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        want, want_losses = _regression(torch, *(v.astype(np.float64) for v in (a, b, w0)),
                                        **options)
    finally:
        torch.set_default_dtype(previous)
    assert_close(got, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())
    np.testing.assert_allclose(got_losses, want_losses, rtol=1e-4)


def test_strong_wolfe_reaches_the_minimum_of_rosenbrock():
    results = []
    for m in (fc, torch):
        x = m.tensor(np.array([-1.2, 1.0], np.float32), requires_grad=True)
        opt = m.optim.LBFGS([x], line_search_fn="strong_wolfe", max_iter=50)

        def closure():
            opt.zero_grad()
            loss = (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
            loss.backward()
            return loss

        for _ in range(4):
            opt.step(closure)
        results.append(x.detach().numpy())
    np.testing.assert_allclose(results[0], [1.0, 1.0], atol=1e-3)
    np.testing.assert_allclose(results[0], results[1], atol=1e-3)


def test_state_dict_round_trip_continues_the_same_run(rng):
    a, b, w0 = randn(rng, 20, 4), randn(rng, 20), randn(rng, 4) * 0.1

    def make():
        w = fc.tensor(w0.copy(), requires_grad=True)
        opt = fc.optim.LBFGS([w], lr=0.5, max_iter=3)

        def closure():
            opt.zero_grad()
            loss = ((fc.tensor(a) @ w - fc.tensor(b)) ** 2).mean()
            loss.backward()
            return loss
        return w, opt, closure

    w1, opt1, c1 = make()
    opt1.step(c1)
    w2, opt2, c2 = make()
    opt2.step(c2)
    opt2.load_state_dict(opt1.state_dict())
    opt1.step(c1)
    opt2.step(c2)
    np.testing.assert_array_equal(w1.detach().numpy(), w2.detach().numpy())


def test_errors(rng):
    w = fc.tensor(randn(rng, 3), requires_grad=True)
    with pytest.raises(RuntimeError, match="closure"):
        fc.optim.LBFGS([w]).step()
    with pytest.raises(RuntimeError, match="strong_wolfe"):
        fc.optim.LBFGS([w], line_search_fn="armijo")
    with pytest.raises(ValueError, match="parameter groups"):
        fc.optim.LBFGS([{"params": [w]}, {"params": [fc.tensor(randn(rng, 2),
                                                                requires_grad=True)]}])
