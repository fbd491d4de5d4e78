"""Test helpers: one call runs the same inputs through fastconv and an oracle.

``check_op`` (in the spirit of tinygrad's ``helper_test_op``) takes fresh random
float32 inputs and

1. runs the fastconv op (float32) and the NumPy float64 reference
   (tests/reference.py) on the same values, checks the output's type, shape and
   dtype, and compares the values with ``rtol=1e-4, atol=1e-5``;
2. back-propagates a random upstream gradient ``g`` through fastconv (the
   gradient of ``sum(out * g)``) and compares each input's analytic gradient with
   central differences of ``sum(ref(inputs) * g)`` computed in float64.

``check_vs_torch`` does the same against ``torch.nn.functional`` run in float64
(forward and autograd gradients). Tests that call it start with
``pytest.importorskip("torch")`` so that they skip cleanly without torch.

``check_devices`` runs an op on "cpu" and "cuda" and compares the two (for tests
marked ``gpu``).

``assert_close`` / ``assert_grad_close`` are the one comparison every test uses, also
the backend tests (test_gpu.py, test_cuda_emulated.py) that call kernels directly:
they take NumPy, CuPy, torch arrays or fastconv Tensors on either side.

Mismatches are reported like llm.c's ``validate_result``: the worst errors and the
first offending entries, with their indices, values and the tolerance.

Tolerances
----------
Forward: ``rtol=1e-4, atol=1e-5`` (the project's float32-vs-float64 rule). The
tests draw weights scaled by 1/sqrt(fan_in), as real initialisers do, so outputs
are O(1) and this bound is meaningful.

Gradients: the same ``rtol=1e-4``, with the absolute part ``1e-5`` scaled by
``max(1, max|g_ref|)``. Reason for the scaling: gradients are float32 reductions
over many more terms than the forward (a conv weight gradient sums over
N*OH*OW products), so their entries carry a rounding error proportional to the
*largest* partial sums, not to their own value; entries that come out small by
cancellation can only be checked against a bound relative to the gradient's
overall scale (a normwise bound). The central differences themselves are
float64 with eps=1e-6 (truncation ~1e-12, rounding ~1e-10), far below these
bounds.

Reductions, float32 against float32 (``reduction_atol``): where two float32
implementations each sum ``n`` terms in their own order (a GPU and a CPU weight
gradient, batch statistics, a mean loss), their results differ by rounding
alone, about ``sqrt(n) * 6e-8`` (6e-8 = 2**-24, float32's unit roundoff; the
errors of a long sum add like a random walk) relative to the largest value.
``reduction_atol(ref, n)`` gives 8 times that, scaled by ``max(1, max|ref|)``,
and never less than ``FWD_ATOL``.
"""

from __future__ import annotations

import re

import numpy as np

import fastconv

FWD_RTOL, FWD_ATOL = 1e-4, 1e-5
GRAD_RTOL, GRAD_ATOL = 1e-4, 1e-5
NUM_EPS = 1e-6
MAX_NUMERICAL = 400  # entries per input checked by central differences (a random subset beyond)
FLOAT32_ROUNDOFF = 6e-8  # 2**-24, float32's unit roundoff
REDUCTION_SAFETY = 8  # reduction_atol's margin over the random-walk estimate


# ----------------------------------------------------------------------------- arrays

def to_numpy(t) -> np.ndarray:
    """Host NumPy copy of a fastconv Tensor, a CuPy or torch array, or anything array-like."""
    if isinstance(t, fastconv.Tensor):
        t = t.data
    if type(t).__module__.split(".")[0] == "torch":  # torch.Tensor, on any device, with grad
        return t.detach().cpu().numpy()
    if hasattr(t, "get") and not isinstance(t, np.ndarray):  # cupy
        t = t.get()
    return np.asarray(t)


def randn(rng: np.random.Generator, *shape, scale: float = 1.0) -> np.ndarray:
    """Standard-normal float32 values (never exactly zero), times ``scale``."""
    a = np.asarray(rng.standard_normal(shape) * scale)
    a[a == 0] = 1e-3
    return a.astype(np.float32)


def conv_weight(rng, oc, c_per_group, kh, kw) -> np.ndarray:
    """Random conv weight with PyTorch-like scale 1/sqrt(fan_in), so outputs stay O(1)."""
    return randn(rng, oc, c_per_group, kh, kw, scale=1.0 / np.sqrt(c_per_group * kh * kw))


def distinct(rng: np.random.Generator, *shape) -> np.ndarray:
    """float32 values that are pairwise distinct (so max/argmax have no ties)."""
    n = int(np.prod(shape))
    vals = rng.permutation(n).astype(np.float64) / n * 4 - 2 + rng.uniform(0.1, 0.4) / n
    return vals.reshape(shape).astype(np.float32)


# ----------------------------------------------------------------------------- comparison

def assert_close(got, want, rtol=FWD_RTOL, atol=FWD_ATOL, name="output", show=5):
    """Entrywise |got - want| <= atol + rtol * |want|, with a readable report.

    ``got`` and ``want`` may be NumPy, CuPy or torch arrays or fastconv Tensors (copied
    to the host). Checks the shape first. On failure prints the largest absolute and
    relative errors and the first ``show`` offending entries (index, got, want, diff).
    """
    __tracebackhide__ = True
    got = np.asarray(to_numpy(got), dtype=np.float64)
    want = np.asarray(to_numpy(want), dtype=np.float64)
    assert got.shape == want.shape, f"{name}: shape {got.shape}, expected {want.shape}"
    if not np.all(np.isfinite(got)):
        bad = np.argwhere(~np.isfinite(got))[:show]
        raise AssertionError(f"{name}: non-finite values at {[tuple(i) for i in bad]}")
    diff = np.abs(got - want)
    bound = atol + rtol * np.abs(want)
    bad = diff > bound
    if not bad.any():
        return
    idx = np.argwhere(bad)
    lines = [
        f"{name}: {bad.sum()} of {bad.size} entries outside atol={atol:g} + rtol={rtol:g}*|want|",
        (f"  max abs err {diff.max():.3g}, "
         f"max rel err {(diff / np.maximum(np.abs(want), 1e-30)).max():.3g}, "
         f"max |want| {np.abs(want).max():.3g}"),
        "  first mismatches (index: got vs want, diff):",
    ]
    for i in idx[:show]:
        i = tuple(int(v) for v in i)
        lines.append(f"    {i}: {got[i]:.8g} vs {want[i]:.8g}, {diff[i]:.3g}")
    raise AssertionError("\n".join(lines))


def poison(rng: np.random.Generator, a: np.ndarray, count: int = 3,
           values=(np.inf, -np.inf, np.nan)) -> np.ndarray:
    """``a`` (changed in place and returned) with ``count`` entries at random positions set
    to values drawn from ``values``."""
    flat = a.reshape(-1)
    at = rng.choice(flat.size, size=min(count, flat.size), replace=False)
    flat[at] = rng.choice(np.asarray(values, dtype=a.dtype), size=at.size)
    return a


def assert_nonfinite_like(got, want, rtol=FWD_RTOL, atol=FWD_ATOL, name="output",
                          same_kind=True):
    """``got`` is non-finite exactly where ``want`` is (with ``same_kind``, also the same NaN
    or signed inf there) and close to it (assert_close) everywhere else."""
    __tracebackhide__ = True
    got = np.asarray(to_numpy(got), dtype=np.float64)
    want = np.asarray(to_numpy(want), dtype=np.float64)
    assert got.shape == want.shape, f"{name}: shape {got.shape}, expected {want.shape}"
    finite = np.isfinite(want)
    wrong = np.isfinite(got) != finite
    if wrong.any():
        at = [tuple(int(v) for v in i) for i in np.argwhere(wrong)[:5]]
        raise AssertionError(f"{name}: {wrong.sum()} entries finite in one and not the other, "
                             f"first at {at}: got {[got[i] for i in at]}, want "
                             f"{[want[i] for i in at]}")
    if same_kind:
        np.testing.assert_array_equal(got[~finite], want[~finite],
                                      err_msg=f"{name}: different NaN / inf")
    assert_close(got[finite], want[finite], rtol=rtol, atol=atol, name=name)


def assert_grad_close(got, want, rtol=GRAD_RTOL, atol=GRAD_ATOL, name="grad"):
    """Gradient comparison: entrywise rtol plus a floor relative to the gradient's scale."""
    __tracebackhide__ = True
    want = np.asarray(to_numpy(want), dtype=np.float64)
    scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    assert_close(got, want, rtol=rtol, atol=atol * scale, name=name)


def reduction_atol(ref, n_terms: int, floor: float = FWD_ATOL) -> float:
    """Absolute tolerance for two float32 sums of ``n_terms`` terms taken in different orders.

    ``REDUCTION_SAFETY * FLOAT32_ROUNDOFF * sqrt(n_terms) * max(1, max|ref|)``, at least
    ``floor`` (see "Reductions" in the module docstring). ``ref`` is the reference result.
    """
    ref = to_numpy(ref)
    scale = max(1.0, float(np.abs(ref).max())) if ref.size else 1.0
    return max(floor, REDUCTION_SAFETY * FLOAT32_ROUNDOFF * float(np.sqrt(n_terms)) * scale)


def mentions_shape(message: str, shape) -> bool:
    """Whether ``message`` spells ``shape``'s dimensions in order, e.g. "(2, 3, 8, 8)",
    "[2, 3, 8, 8]" or "2x3x8x8"."""
    dims = [str(int(d)) for d in shape]
    pattern = r"(?<!\d)" + r"\D{1,3}".join(dims) + r"(?!\d)"
    return re.search(pattern, message) is not None


# ----------------------------------------------------------------------------- gradients

def backward_with(out, g: np.ndarray) -> None:
    """Back-propagate upstream gradient ``g`` (d loss / d out) through ``out``."""
    out.backward(fastconv.tensor(np.asarray(g, dtype=np.float32)))


def numerical_grad(ref_fn, inputs64, i, g, eps=NUM_EPS, indices=None):
    """Central differences of ``sum(ref_fn(*inputs64) * g)`` w.r.t. ``inputs64[i]`` (float64).

    ``indices``: flat entries to differentiate (default all). Returns
    ``(flat_indices, values)``.
    """
    x = inputs64[i]
    assert x.dtype == np.float64 and x.flags.c_contiguous
    flat = x.reshape(-1)  # a view: perturbing it perturbs the input
    if indices is None:
        indices = np.arange(flat.size)
    vals = np.empty(len(indices))
    for n, j in enumerate(indices):
        orig = flat[j]
        flat[j] = orig + eps
        fp = np.sum(ref_fn(*inputs64) * g)
        flat[j] = orig - eps
        fm = np.sum(ref_fn(*inputs64) * g)
        flat[j] = orig
        vals[n] = (fp - fm) / (2 * eps)
    return indices, vals


def _as_inputs(inputs):
    xs32 = [np.ascontiguousarray(np.asarray(a, dtype=np.float32)) for a in inputs]
    xs64 = [a.astype(np.float64) for a in xs32]  # the exact values fastconv sees
    return xs32, xs64


def _run_fastconv(fc_fn, xs32, grad_idx):
    ts = [fastconv.tensor(a.copy(), requires_grad=(i in grad_idx)) for i, a in enumerate(xs32)]
    out = fc_fn(*ts)
    assert isinstance(out, fastconv.Tensor), f"expected a fastconv.Tensor, got {type(out)}"
    return ts, out


def check_op(fc_fn, ref_fn, inputs, *, grad=True, grad_idx=None, rtol=FWD_RTOL, atol=FWD_ATOL,
             grad_rtol=GRAD_RTOL, grad_atol=GRAD_ATOL, eps=NUM_EPS,
             max_numerical=MAX_NUMERICAL, rng=None, name="op"):
    """Check a fastconv op against its float64 reference: forward, then gradients.

    fc_fn(*tensors) -> Tensor and ref_fn(*float64 arrays) -> array take the same
    positional inputs; other arguments are closed over. ``grad_idx`` lists the
    inputs to differentiate (default: all). Returns ``(out, grads)`` as NumPy arrays.
    """
    __tracebackhide__ = True
    rng = rng if rng is not None else np.random.default_rng()
    grad_idx = list(range(len(inputs))) if grad_idx is None else list(grad_idx)
    xs32, xs64 = _as_inputs(inputs)
    ts, out = _run_fastconv(fc_fn, xs32, grad_idx if grad else [])
    want = np.asarray(ref_fn(*xs64))
    got = to_numpy(out)
    assert got.dtype == np.float32, f"{name}: output dtype {got.dtype}, expected float32"
    assert out.shape == want.shape, f"{name}: output shape {out.shape}, expected {want.shape}"
    assert_close(got, want, rtol, atol, name=f"{name} forward")
    grads = []
    if not grad:
        return got, grads
    assert out.requires_grad, f"{name}: output does not require grad"
    g = rng.standard_normal(want.shape).astype(np.float32).astype(np.float64)
    backward_with(out, g)
    for i in grad_idx:
        t = ts[i]
        assert t.grad is not None, f"{name}: input {i} got no gradient"
        gi = to_numpy(t.grad)
        assert gi.shape == xs32[i].shape, f"{name}: grad {i} shape {gi.shape} != {xs32[i].shape}"
        assert gi.dtype == np.float32, f"{name}: grad {i} dtype {gi.dtype}"
        n = xs64[i].size
        sub = None if n <= max_numerical else np.sort(rng.choice(n, max_numerical, replace=False))
        idx, num = numerical_grad(ref_fn, xs64, i, g, eps, sub)
        assert_grad_close(gi.reshape(-1)[idx], num, grad_rtol, grad_atol,
                          name=f"{name} grad of input {i} (analytic vs central differences)")
        grads.append(gi)
    return got, grads


def check_vs_torch(fc_fn, torch_fn, inputs, *, grad=True, grad_idx=None, rtol=FWD_RTOL,
                   atol=FWD_ATOL, grad_rtol=GRAD_RTOL, grad_atol=GRAD_ATOL, rng=None, name="op"):
    """Forward and autograd gradients of fastconv (float32) against torch (float64)."""
    __tracebackhide__ = True
    import torch

    rng = rng if rng is not None else np.random.default_rng()
    grad_idx = list(range(len(inputs))) if grad_idx is None else list(grad_idx)
    xs32, xs64 = _as_inputs(inputs)
    ts, out = _run_fastconv(fc_fn, xs32, grad_idx if grad else [])
    tts = [torch.tensor(a, requires_grad=grad and i in grad_idx) for i, a in enumerate(xs64)]
    tout = torch_fn(*tts)
    want = tout.detach().numpy()
    got = to_numpy(out)
    assert got.dtype == np.float32, f"{name}: output dtype {got.dtype}"
    assert_close(got, want, rtol, atol, name=f"{name} forward vs torch")
    if not grad:
        return
    g = rng.standard_normal(want.shape).astype(np.float32).astype(np.float64)
    backward_with(out, g)
    tout.backward(torch.tensor(g))
    for i in grad_idx:
        assert ts[i].grad is not None, f"{name}: input {i} got no gradient"
        assert_grad_close(to_numpy(ts[i].grad), tts[i].grad.numpy(), grad_rtol, grad_atol,
                          name=f"{name} grad of input {i} vs torch")


def check_devices(fc_fn, inputs, *, grad=True, grad_idx=None, rtol=FWD_RTOL, atol=FWD_ATOL,
                  grad_rtol=GRAD_RTOL, grad_atol=GRAD_ATOL, rng=None, name="op"):
    """The same fastconv op on "cpu" and "cuda": forward and gradients agree.

    For tests marked ``@pytest.mark.gpu`` (skipped without CuPy and a GPU).
    """
    __tracebackhide__ = True
    rng = rng if rng is not None else np.random.default_rng()
    grad_idx = list(range(len(inputs))) if grad_idx is None else list(grad_idx)
    xs32, _ = _as_inputs(inputs)
    outs, grads = {}, {}
    g = None
    for device in ("cpu", "cuda"):
        ts = [fastconv.tensor(a, requires_grad=grad and i in grad_idx, device=device)
              for i, a in enumerate(xs32)]
        out = fc_fn(*ts)
        assert out.device == device, f"{name}: output on {out.device}, expected {device}"
        outs[device] = to_numpy(out)
        if grad:
            if g is None:
                g = rng.standard_normal(out.shape).astype(np.float32)
            out.backward(fastconv.tensor(g, device=device))
            grads[device] = [to_numpy(ts[i].grad) for i in grad_idx]
    assert_close(outs["cuda"], outs["cpu"], rtol, atol, name=f"{name} forward cuda vs cpu")
    for i, gc, gg in zip(grad_idx, grads.get("cpu", []), grads.get("cuda", [])):
        assert_grad_close(gg, gc, grad_rtol, grad_atol, name=f"{name} grad {i} cuda vs cpu")
