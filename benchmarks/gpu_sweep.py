"""A random sweep of every op of the CUDA backend against torch, forward and every gradient.

Each case draws an op and a random shape (odd sizes, several blocks, partial warps, strides,
padding, dilation, groups, ceil_mode, empty batches), runs it through fastconv's CUDA kernel
interface (``fastconv.backend.cuda``) and through torch on the same inputs, in strict FP32
(TF32 off on both sides), and measures both against a float64 torch reference on the CPU:

    error = max |out - ref64| / max(max |ref64|, 1e-6)       (per output and gradient)

A case fails when fastconv's error exceeds max(FLOOR, FACTOR x torch's own FP32 error): a
wrong index or a race gives errors near 1, far above both. Integer outputs (max-pool
indices) must be equal to torch's.

    python benchmarks/gpu_sweep.py --cases 300 --out $OUT/sweep.json     # on a GPU
    python benchmarks/gpu_sweep.py --emulate --cases 20                   # CPU: the kernels
        through the stand-in CuPy of tests/cuda_emulation.py, torch on the CPU

Exit status 1 when a case fails; every failure is printed with the seed that reproduces it
(``--seed S --cases 1`` after ``--skip``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))            # fastconv, tests/

FLOOR = 2e-5      # relative error any FP32 kernel may have on these sizes
FACTOR = 10.0     # how much worse than torch's own FP32 error fastconv may be


def load_backend(emulate: bool):
    if emulate:
        sys.path.insert(0, str(HERE.parent / "tests"))
        from cuda_emulation import load_emulated_backend

        return load_emulated_backend(Path(tempfile.mkdtemp(prefix="sweep_emu_")))
    import fastconv.backend.cuda as be

    return be


class Sweep:
    def __init__(self, be, torch, device):
        self.be, self.torch, self.device = be, torch, device
        self.xp = be.xp

    # ---- conversions
    def dev(self, a):
        return self.xp.asarray(np.ascontiguousarray(a))

    def host(self, a):
        return np.asarray(self.xp.asnumpy(a)) if hasattr(self.xp, "asnumpy") else np.asarray(a)

    def t(self, a, dtype, grad=False, device=None):
        return self.torch.tensor(a, dtype=dtype, device=device or "cpu", requires_grad=grad)

    def torch_both(self, fn, inputs, grads_of, dys_fn):
        """fn(*tensors) -> list of outputs, in float64 on the CPU (the reference) and float32
        on the device; gradients of the first output wrt the inputs listed in grads_of."""
        results = {}
        for name, dtype, device in (("ref", self.torch.float64, "cpu"),
                                    ("torch", self.torch.float32, self.device)):
            ts = [None if a is None else self.t(a, dtype, i in grads_of, device)
                  for i, a in enumerate(inputs)]
            outs = fn(*ts)
            dy = dys_fn(outs[0])
            grads = []
            if grads_of and dy is not None:
                outs[0].backward(self.t(dy, dtype, device=device))
                grads = [ts[i].grad for i in grads_of]
            results[name] = [o.detach().cpu().double().numpy() for o in outs] + \
                [g.detach().cpu().double().numpy() for g in grads]
        return results["ref"], results["torch"]


def rel_error(got, ref):
    got = np.asarray(got, np.float64)
    if got.shape != ref.shape:
        return math.inf
    if ref.size == 0:
        return 0.0
    if not np.all(np.isfinite(got)):
        return math.inf
    return float(np.max(np.abs(got - ref)) / max(float(np.max(np.abs(ref))), 1e-6))


# ---- the cases: each returns (params, fastconv's outputs, the float64 reference's, torch's
# FP32 ones, their names); outputs first, then the gradients

def batch(rng) -> int:
    """Images in a batch: 1 to 5, now and then none (the ops allow an empty batch)."""
    return 0 if rng.random() < 0.08 else int(rng.integers(1, 6))


def case_conv2d(s: Sweep, rng):
    F = s.torch.nn.functional
    groups = int(rng.choice([1, 1, 2, 3]))
    C, OC = groups * int(rng.integers(1, 6)), groups * int(rng.integers(1, 6))
    KH, KW = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    dil = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    pad = (int(rng.integers(0, KH)), int(rng.integers(0, KW)))
    if rng.random() < 0.2:                 # the 1x1 route: GEMMs on x in place, no im2col
        KH = KW = 1
        stride, pad = (1, 1), (0, 0)
    hmin = max(1, dil[0] * (KH - 1) + 1 - 2 * pad[0])     # at least one output row
    wmin = max(1, dil[1] * (KW - 1) + 1 - 2 * pad[1])
    H, W = int(rng.integers(hmin, hmin + 30)), int(rng.integers(wmin, wmin + 30))
    N = batch(rng)
    has_b = bool(rng.integers(0, 2))
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = (rng.standard_normal((OC, C // groups, KH, KW)) / math.sqrt(C * KH * KW / groups)) \
        .astype(np.float32)
    b = rng.standard_normal(OC).astype(np.float32) if has_b else None
    params = {"N": N, "C": C, "H": H, "W": W, "OC": OC, "KH": KH, "KW": KW, "stride": stride,
              "padding": pad, "dilation": dil, "groups": groups, "bias": has_b}
    be = s.be
    y = be.conv2d_forward(s.dev(x), s.dev(w), None if b is None else s.dev(b), stride, pad,
                          dil, groups)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, dw, db = be.conv2d_backward(s.dev(x), s.dev(w), s.dev(dy), stride, pad, dil, groups,
                                    True, True, has_b)
    ours = [y, dx, dw] + ([db] if has_b else [])
    ref, theirs = s.torch_both(
        lambda x_, w_, b_: [F.conv2d(x_, w_, b_, stride, pad, dil, groups)],
        [x, w, b], [0, 1] + ([2] if has_b else []), lambda out: dy)
    return params, ours, ref, theirs, ["y", "dx", "dw"] + (["db"] if has_b else [])


def _pool_shape(rng):
    KH, KW = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    pad = (int(rng.integers(0, KH // 2 + 1)), int(rng.integers(0, KW // 2 + 1)))
    N, C = batch(rng), int(rng.integers(1, 9))
    H, W = int(rng.integers(KH, 35)), int(rng.integers(KW, 35))
    ceil = bool(rng.integers(0, 2))
    return N, C, H, W, (KH, KW), stride, pad, ceil


def case_max_pool2d(s: Sweep, rng):
    F = s.torch.nn.functional
    N, C, H, W, k, st, pad, ceil = _pool_shape(rng)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    y, idx = s.be.max_pool2d_forward(s.dev(x), k, st, pad, ceil)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = s.be.max_pool2d_backward(s.dev(dy), idx, x.shape, k, st, pad)
    ref, theirs = s.torch_both(
        lambda x_: list(F.max_pool2d(x_, k, st, pad, ceil_mode=ceil, return_indices=True)),
        [x], [0], lambda out: dy)
    params = {"N": N, "C": C, "H": H, "W": W, "kernel": k, "stride": st, "padding": pad,
              "ceil_mode": ceil}
    return params, [y, idx, dx], ref, theirs, ["y", "indices", "dx"]


def case_avg_pool2d(s: Sweep, rng):
    F = s.torch.nn.functional
    N, C, H, W, k, st, pad, ceil = _pool_shape(rng)
    if rng.integers(0, 4) == 0:              # a window that is the whole plane: global route
        k, st, pad, ceil = (H, W), (H, W), (0, 0), False
    cip = bool(rng.integers(0, 2))
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    y = s.be.avg_pool2d_forward(s.dev(x), k, st, pad, ceil, cip)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = s.be.avg_pool2d_backward(s.dev(dy), x.shape, k, st, pad, ceil, cip)
    ref, theirs = s.torch_both(
        lambda x_: [F.avg_pool2d(x_, k, st, pad, ceil_mode=ceil, count_include_pad=cip)],
        [x], [0], lambda out: dy)
    params = {"N": N, "C": C, "H": H, "W": W, "kernel": k, "stride": st, "padding": pad,
              "ceil_mode": ceil, "count_include_pad": cip}
    return params, [y, dx], ref, theirs, ["y", "dx"]


def case_lrn(s: Sweep, rng):
    F = s.torch.nn.functional
    N, C = batch(rng), int(rng.integers(1, 40))
    H, W = int(rng.integers(1, 20)), int(rng.integers(1, 20))
    size = int(rng.integers(1, 10))
    alpha, beta, k = float(rng.uniform(1e-4, 1e-1)), float(rng.uniform(0.5, 0.9)), \
        float(rng.uniform(1.0, 2.5))
    x = (2 * rng.standard_normal((N, C, H, W))).astype(np.float32)
    y, scale = s.be.lrn_forward(s.dev(x), size, alpha, beta, k)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    dx = s.be.lrn_backward(s.dev(x), y, scale, s.dev(dy), size, alpha, beta, k)
    ref, theirs = s.torch_both(lambda x_: [F.local_response_norm(x_, size, alpha, beta, k)],
                               [x], [0], lambda out: dy)
    params = {"N": N, "C": C, "H": H, "W": W, "size": size, "alpha": alpha, "beta": beta, "k": k}
    return params, [y, dx], ref, theirs, ["y", "dx"]


def case_batch_norm(s: Sweep, rng):
    F = s.torch.nn.functional
    N, C = int(rng.integers(2, 9)), int(rng.integers(1, 20))
    spatial = () if rng.integers(0, 3) == 0 else (int(rng.integers(1, 30)),
                                                  int(rng.integers(1, 30)))
    affine = bool(rng.integers(0, 2))
    eps = 1e-5
    x = (rng.standard_normal((N, C, *spatial)) * 2 + 1).astype(np.float32)
    w = rng.standard_normal(C).astype(np.float32) if affine else None
    b = rng.standard_normal(C).astype(np.float32) if affine else None
    dw_ = s.dev(w) if affine else None
    y, mean, var = s.be.batch_norm_forward_train(s.dev(x), dw_, None if b is None else s.dev(b),
                                                 eps)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    dx, dgamma, dbeta = s.be.batch_norm_backward(s.dev(x), dw_, mean, var, eps, s.dev(dy))
    axes = (0,) + tuple(range(2, x.ndim))
    ours = [y, mean, var, dx] + ([dgamma, dbeta] if affine else [])

    def fn(x_, w_, b_):
        y_ = F.batch_norm(x_, None, None, w_, b_, training=True, eps=eps)
        return [y_, x_.mean(dim=axes), x_.var(dim=axes, unbiased=False)]

    ref, theirs = s.torch_both(fn, [x, w, b], [0] + ([1, 2] if affine else []), lambda o: dy)
    params = {"shape": list(x.shape), "affine": affine}
    return params, ours, ref, theirs, ["y", "mean", "var", "dx"] + \
        (["dweight", "dbias"] if affine else [])


def case_relu(s: Sweep, rng):
    shape = tuple(int(v) for v in rng.integers(0, 40, size=int(rng.integers(1, 4))))
    x = rng.standard_normal(shape).astype(np.float32)
    y = s.be.relu_forward(s.dev(x))
    dy = rng.standard_normal(shape).astype(np.float32)
    dx = s.be.relu_backward(y, s.dev(dy))
    ref, theirs = s.torch_both(lambda x_: [s.torch.relu(x_)], [x], [0], lambda o: dy)
    return {"shape": list(shape)}, [y, dx], ref, theirs, ["y", "dx"]


def case_cross_entropy(s: Sweep, rng):
    F = s.torch.nn.functional
    N, K = int(rng.integers(1, 300)), int(rng.integers(1, 1100))
    eps = float(rng.choice([0.0, 0.1]))
    logits = (3 * rng.standard_normal((N, K))).astype(np.float32)
    target = rng.integers(0, K, size=N).astype(np.int64)
    loss, prob = s.be.softmax_cross_entropy_forward(s.dev(logits), s.dev(target), eps)
    dl = float(rng.uniform(0.5, 2.0))
    dlogits = s.be.softmax_cross_entropy_backward(prob, s.dev(target), eps, dl)

    def fn(z):
        tt = s.torch.tensor(target, device=z.device)
        return [F.cross_entropy(z, tt, label_smoothing=eps), s.torch.softmax(z, 1)]

    ref, theirs = s.torch_both(fn, [logits], [0], lambda o: np.array(dl, np.float32))
    return {"N": N, "K": K, "label_smoothing": eps}, [loss, prob, dlogits], ref, theirs, \
        ["loss", "prob", "dlogits"]


def case_gemm(s: Sweep, rng):
    M, K, N = (int(v) for v in rng.integers(1, 200, size=3))
    ta, tb = bool(rng.integers(0, 2)), bool(rng.integers(0, 2))
    a = rng.standard_normal((K, M) if ta else (M, K)).astype(np.float32)
    b = rng.standard_normal((N, K) if tb else (K, N)).astype(np.float32)
    c = s.be.gemm(s.dev(a), s.dev(b), ta, tb)
    ref, theirs = s.torch_both(
        lambda a_, b_: [(a_.T if ta else a_) @ (b_.T if tb else b_)], [a, b], [], lambda o: None)
    return {"M": M, "K": K, "N": N, "trans_a": ta, "trans_b": tb}, [c], ref, theirs, ["c"]


CASES = {
    "conv2d": case_conv2d, "max_pool2d": case_max_pool2d, "avg_pool2d": case_avg_pool2d,
    "lrn": case_lrn, "batch_norm": case_batch_norm, "relu": case_relu,
    "cross_entropy": case_cross_entropy, "gemm": case_gemm,
}


def run(args) -> int:
    import torch

    be = load_backend(args.emulate)
    device = "cpu" if args.emulate else "cuda"
    torch.backends.cuda.matmul.allow_tf32 = False       # strict FP32 on both sides
    torch.backends.cudnn.allow_tf32 = False
    be.set_tf32(False)
    sweep = Sweep(be, torch, device)
    names = sorted(CASES) if not args.ops else args.ops
    rows, failures = [], 0
    start = time.time()
    for i in range(args.skip, args.skip + args.cases):
        if args.time_limit and time.time() - start > args.time_limit:
            print(f"time limit: stopped after {len(rows)} cases", flush=True)
            break
        rng = np.random.default_rng([args.seed, i])
        op = names[i % len(names)]
        try:
            params, ours, ref, theirs, labels = CASES[op](sweep, rng)
            errors, bad = {}, []
            for label, o, r, t in zip(labels, ours, ref, theirs):
                o = sweep.host(o)
                if np.issubdtype(o.dtype, np.integer):
                    ok = o.shape == r.shape and np.array_equal(o, r)
                    errors[label] = [0.0 if ok else 1.0, 0.0]
                else:
                    e_ours, e_torch = rel_error(o, r), rel_error(t, r)
                    errors[label] = [e_ours, e_torch]
                    ok = e_ours <= max(FLOOR, FACTOR * e_torch)
                if not ok:
                    bad.append(label)
        except Exception as exc:   # noqa: BLE001 -- a crash is a failed case, reported
            params, errors, bad = {"error": f"{type(exc).__name__}: {exc}"}, {}, ["exception"]
        rows.append({"case": i, "op": op, "params": params, "errors": errors, "failed": bad})
        if bad:
            failures += 1
            print(f"FAIL case {i} {op} {params}: {bad} errors {errors}", flush=True)
    summary = {}
    for r in rows:
        s = summary.setdefault(r["op"], {"cases": 0, "failed": 0, "worst": 0.0})
        s["cases"] += 1
        s["failed"] += bool(r["failed"])
        s["worst"] = max([s["worst"]] + [e[0] for e in r["errors"].values()])
    for op, s in sorted(summary.items()):
        print(f"{op:14s} {s['cases']:4d} cases  {s['failed']:3d} failed  "
              f"worst relative error {s['worst']:.2e}")
    print(f"{len(rows)} cases, {failures} failed, {time.time() - start:.1f} s "
          f"({'emulated on the CPU' if args.emulate else 'GPU'}; seed {args.seed})")
    if args.out:
        Path(args.out).write_text(json.dumps({"seed": args.seed, "emulate": args.emulate,
                                              "summary": summary, "cases": rows}, indent=1))
    return 1 if failures else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=200, help="number of random cases [200]")
    p.add_argument("--seed", type=int, default=0, help="seed of the sweep [0]")
    p.add_argument("--skip", type=int, default=0, help="start at this case number [0]")
    p.add_argument("--ops", nargs="+", choices=sorted(CASES), help="only these ops")
    p.add_argument("--time-limit", type=float, default=0, help="stop after this many seconds")
    p.add_argument("--emulate", action="store_true",
                   help="run the kernels through the CPU emulation (tests/cuda_emulation.py)")
    p.add_argument("--out", help="write every case and the summary as JSON here")
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
