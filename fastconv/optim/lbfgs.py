"""L-BFGS (Liu & Nocedal, 1989, "On the limited memory BFGS method for large scale
optimization"), with PyTorch's interface: ``LBFGS(params, lr=1, max_iter=20, max_eval=None,
tolerance_grad=1e-7, tolerance_change=1e-9, history_size=100, line_search_fn=None)`` and
``step(closure)``, the closure re-evaluating the model and returning the loss.

All parameters are handled as one flat vector. Each ``step`` runs up to ``max_iter``
iterations: a search direction from the two-loop recursion over the last ``history_size``
curvature pairs (s, y) (Nocedal & Wright, "Numerical Optimization", Algorithm 7.4, with the
initial Hessian scaled by s.y / y.y), then a step along it of length ``lr`` (the very first
step of a run is shortened to lr * min(1, 1 / |g|_1), as PyTorch does) or of the length a
strong-Wolfe line search finds (``line_search_fn="strong_wolfe"``; Algorithms 3.5 and 3.6,
with safeguarded cubic interpolation). Iterations stop at ``max_iter`` or ``max_eval``
closure calls, or when the gradient, the step or the change in loss falls under its
tolerance. State persists across ``step`` calls, as in PyTorch.
"""

from __future__ import annotations

import math

import numpy as np

from .optimizer import Optimizer, array_module

__all__ = ["LBFGS"]


def _cubic_minimum(a, fa, ga, b, fb, gb, lo, hi):
    """The minimiser of the cubic through (a, fa) and (b, fb) with slopes ga and gb,
    clipped to [lo, hi]; the midpoint of [lo, hi] when the cubic has none."""
    d1 = ga + gb - 3 * (fa - fb) / (a - b)
    disc = d1 * d1 - ga * gb
    if disc < 0 or not math.isfinite(disc):
        return (lo + hi) / 2
    d2 = math.copysign(math.sqrt(disc), b - a)
    x = b - (b - a) * (gb + d2 - d1) / (gb - ga + 2 * d2)
    if not math.isfinite(x):
        return (lo + hi) / 2
    return min(max(x, lo), hi)


class LBFGS(Optimizer):
    """Limited-memory BFGS over all parameters as one vector (see the module docstring).
    One parameter group only, as in PyTorch; ``step`` needs the closure."""

    def __init__(self, params, lr: float = 1, max_iter: int = 20, max_eval=None,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9,
                 history_size: int = 100, line_search_fn=None):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if max_iter < 1:
            raise ValueError(f"LBFGS: max_iter must be >= 1, got {max_iter}")
        if line_search_fn not in (None, "strong_wolfe"):
            raise RuntimeError("only 'strong_wolfe' is supported")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        super().__init__(params, dict(lr=lr, max_iter=max_iter, max_eval=max_eval,
                                      tolerance_grad=tolerance_grad,
                                      tolerance_change=tolerance_change,
                                      history_size=history_size,
                                      line_search_fn=line_search_fn))
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")

    # ---- the parameters as one vector ----------------------------------------------------------
    def _params_list(self):
        return self.param_groups[0]["params"]

    def _flat_grad(self):
        parts = []
        for p in self._params_list():
            g = p.grad
            if g is None:
                parts.append(array_module(p.data).zeros(p.data.size, dtype=p.data.dtype))
            else:
                parts.append((g.data if hasattr(g, "data") else g).reshape(-1))
        xp = array_module(parts[0])
        return xp.concatenate(parts)

    def _add(self, t, d):
        offset = 0
        for p in self._params_list():
            n = p.data.size
            p.data[...] += (t * d[offset:offset + n]).reshape(p.data.shape).astype(p.data.dtype)
            offset += n

    def _snapshot(self):
        return [p.data.copy() for p in self._params_list()]

    def _restore(self, saved):
        for p, v in zip(self._params_list(), saved):
            p.data[...] = v

    def _evaluate(self, closure):
        from fastconv.autograd import set_grad_enabled

        with set_grad_enabled(True):
            loss = closure()
        return float(loss), self._flat_grad()

    # ---- one step ------------------------------------------------------------------------------
    def step(self, closure=None):
        """Up to ``max_iter`` L-BFGS iterations; returns the loss the closure gave first."""
        if closure is None:
            raise RuntimeError("LBFGS.step needs a closure that re-evaluates the model and "
                               "returns the loss")
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tol_grad, tol_change = group["tolerance_grad"], group["tolerance_change"]
        history = group["history_size"]
        state = self.state.setdefault(0, {"func_evals": 0, "n_iter": 0})

        from fastconv.autograd import set_grad_enabled

        with set_grad_enabled(True):
            first = closure()
        loss = float(first)
        g = self._flat_grad()
        xp = array_module(g)
        evals = 1
        state["func_evals"] += 1
        if float(xp.abs(g).max()) <= tol_grad:
            return first

        d, t = state.get("d"), state.get("t")
        dirs, steps, rho = state.get("old_dirs", []), state.get("old_stps", []), \
            state.get("ro", [])
        h_diag, prev_g = state.get("H_diag", 1.0), state.get("prev_flat_grad")
        prev_loss = state.get("prev_loss")
        n = 0
        while n < max_iter:
            n += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d, dirs, steps, rho, h_diag = -g, [], [], [], 1.0
            else:
                y, s = g - prev_g, d * t
                ys = float(y @ s)
                if ys > 1e-10:  # keep the pair only with positive curvature
                    if len(dirs) == history:
                        dirs.pop(0), steps.pop(0), rho.pop(0)
                    dirs.append(y), steps.append(s), rho.append(1.0 / ys)
                    h_diag = ys / float(y @ y)
                d = self._two_loop(-g, dirs, steps, rho, h_diag)
            prev_g = g.copy()
            prev_loss = loss
            t = min(1.0, 1.0 / float(xp.abs(g).sum())) * lr if state["n_iter"] == 1 else lr
            gtd = float(g @ d)
            if gtd > -tol_change:  # not a descent direction
                break
            if group["line_search_fn"] == "strong_wolfe":
                loss, g, t, used = self._strong_wolfe(closure, t, d, loss, g, gtd, tol_change)
                self._add(t, d)
            else:
                self._add(t, d)
                used = 0
                if n != max_iter:
                    loss, g = self._evaluate(closure)
                    used = 1
            evals += used
            state["func_evals"] += used
            if n == max_iter or evals >= max_eval:
                break
            if float(xp.abs(g).max()) <= tol_grad:
                break
            if float(xp.abs(d * t).max()) <= tol_change or abs(loss - prev_loss) < tol_change:
                break
        state.update(d=d, t=t, old_dirs=dirs, old_stps=steps, ro=rho, H_diag=h_diag,
                     prev_flat_grad=prev_g, prev_loss=prev_loss)
        return first

    @staticmethod
    def _two_loop(q, dirs, steps, rho, h_diag):
        """H g by the two-loop recursion (q is -g: the result is the descent direction)."""
        alphas = []
        for y, s, r in zip(reversed(dirs), reversed(steps), reversed(rho)):
            a = float(s @ q) * r
            alphas.append(a)
            q = q - a * y
        r_vec = q * h_diag
        for (y, s, r), a in zip(zip(dirs, steps, rho), reversed(alphas)):
            b = float(y @ r_vec) * r
            r_vec = r_vec + (a - b) * s
        return r_vec

    def _strong_wolfe(self, closure, t, d, f0, g0, gtd0, tol_change, c1=1e-4, c2=0.9,
                      max_ls=25):
        """A step length t along d meeting the strong Wolfe conditions (sufficient decrease
        c1, curvature c2), by bracketing then zooming; returns (loss, flat grad, t, closure
        calls). The parameters are left where they were."""
        start = self._snapshot()

        def phi(step):
            self._add(step, d)
            f, g = self._evaluate(closure)
            self._restore(start)
            return f, g, float(g @ d)

        d_max = float(array_module(d).abs(d).max())
        calls = 0
        prev = (0.0, f0, g0, gtd0)
        lo = hi = None
        f, g, gtd = phi(t)
        calls += 1
        for i in range(max_ls):
            if f > f0 + c1 * t * gtd0 or (i > 0 and f >= prev[1]):
                lo, hi = prev, (t, f, g, gtd)
                break
            if abs(gtd) <= -c2 * gtd0:
                return f, g, t, calls
            if gtd >= 0:
                lo, hi = (t, f, g, gtd), prev
                break
            # extrapolate: a cubic step beyond t, between 1.01 t and 10 t
            new_t = _cubic_minimum(prev[0], prev[1], prev[3], t, f, gtd,
                                   t + 0.01 * (t - prev[0]), 10 * t)
            prev = (t, f, g, gtd)
            t = new_t
            f, g, gtd = phi(t)
            calls += 1
        else:
            return f, g, t, calls
        # zoom: lo has the lower loss (sufficient decrease), hi the other end
        for _ in range(max_ls - calls + 1):
            width = abs(hi[0] - lo[0])
            if width * d_max < tol_change:
                break
            a, b = sorted((lo[0], hi[0]))
            t = _cubic_minimum(lo[0], lo[1], lo[3], hi[0], hi[1], hi[3], a, b)
            margin = 0.1 * (b - a)
            if min(b - t, t - a) < margin:  # too close to an end: stay inside the bracket
                t = a + margin if abs(t - a) < abs(t - b) else b - margin
            f, g, gtd = phi(t)
            calls += 1
            if f > f0 + c1 * t * gtd0 or f >= lo[1]:
                hi = (t, f, g, gtd)
            else:
                if abs(gtd) <= -c2 * gtd0:
                    return f, g, t, calls
                if gtd * (hi[0] - lo[0]) >= 0:
                    hi = lo
                lo = (t, f, g, gtd)
        return lo[1], lo[2], lo[0], calls

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a ``state_dict()`` (the state is one entry of flat vectors and lists)."""
        if not isinstance(state_dict, dict) or "param_groups" not in state_dict:
            raise ValueError("LBFGS.load_state_dict: not an optimizer state dict")
        groups = state_dict["param_groups"]
        if len(groups) != 1 or len(groups[0]["params"]) != len(self._params_list()):
            raise ValueError("LBFGS.load_state_dict: the state's parameter group does not "
                             "match this optimizer's")
        xp = array_module(self._params_list()[0].data)
        entry = dict(state_dict["state"].get(0, state_dict["state"].get("0", {})))
        for k, v in list(entry.items()):
            if isinstance(v, np.ndarray):
                entry[k] = xp.asarray(v)
            elif isinstance(v, list):
                entry[k] = [xp.asarray(a) if isinstance(a, np.ndarray) else a for a in v]
        self.state.clear()
        if entry:
            self.state[0] = entry
        for k, v in groups[0].items():
            if k != "params":
                self.param_groups[0][k] = v
