"""nn.utils.parametrize and nn.utils.parametrizations against torch: the same modules, state_dict
keys and shapes (a torch state_dict loads unchanged), parametrized weights, outputs and the
gradients of the originals; right_inverse (one tensor and several), assignment, removal,
caching, deep copies, and the errors. Also the matrix functions behind orthogonal."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import fastconv as fc
from fastconv.nn.utils import parametrizations as fpz
from fastconv.nn.utils import parametrize as fp
from fastconv.ops import linalg

torch = pytest.importorskip("torch")
tpz = torch.nn.utils.parametrizations
tp = torch.nn.utils.parametrize


@pytest.fixture
def rng(seed):
    """The test's NumPy generator; fastconv's and torch's generators seeded too."""
    fc.manual_seed(seed)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def _np(t):
    return np.asarray(t.detach().numpy())


def _close(a, b, what="", rtol=1e-4, atol=1e-5):
    np.testing.assert_allclose(_np(a), _np(b), rtol=rtol, atol=atol, err_msg=what)


def _to_torch(f, t):
    """Copy fastconv's state into the torch twin (same keys, same order)."""
    state = f.state_dict()
    assert list(state) == list(t.state_dict())
    t.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in state.items()})


def _to_fastconv(t, f):
    """Copy torch's state into the fastconv twin: a torch state_dict loads unchanged."""
    tstate = t.state_dict()
    fstate = f.state_dict()
    assert list(fstate) == list(tstate)
    for k, v in tstate.items():
        assert tuple(fstate[k].shape) == tuple(v.shape), k
    f.load_state_dict({k: v.numpy() for k, v in tstate.items()})


def _compare_run(f, t, x, rng):
    """Same output, then the same gradients of every parameter after one backward."""
    yf, yt = f(fc.tensor(x)), t(torch.tensor(x))
    _close(yf, yt, "output")
    w = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    (yf * fc.tensor(w)).sum().backward()
    (yt * torch.tensor(w)).sum().backward()
    tparams = dict(t.named_parameters())
    names = [n for n, _ in f.named_parameters()]
    assert names == list(tparams)
    for name, p in f.named_parameters():
        _close(p.grad, tparams[name].grad, f"grad of {name}")


# ----------------------------------------------------------------------------- parametrize

class FSymmetric(fc.nn.Module):
    def forward(self, X):
        return X.triu() + X.triu(1).mT

    def right_inverse(self, A):
        return A.triu()


class TSymmetric(torch.nn.Module):
    def forward(self, X):
        return X.triu() + X.triu(1).mT

    def right_inverse(self, A):
        return A.triu()


class FScale(fc.nn.Module):
    def forward(self, X):
        return 2 * X

    def right_inverse(self, A):
        return A / 2


class TScale(torch.nn.Module):
    def forward(self, X):
        return 2 * X

    def right_inverse(self, A):
        return A / 2


class FSum(fc.nn.Module):
    """Two originals: weight = a + b; right_inverse splits a weight in halves."""

    def forward(self, a, b):
        return a + b

    def right_inverse(self, w):
        return w * 0.25, w * 0.75


class TSum(torch.nn.Module):
    def forward(self, a, b):
        return a + b

    def right_inverse(self, w):
        return w * 0.25, w * 0.75


def _linear_pair(n_in=4, n_out=4):
    f, t = fc.nn.Linear(n_in, n_out), torch.nn.Linear(n_in, n_out)
    _to_torch(f, t)
    return f, t


def test_register_and_chain_match_torch(rng):
    f, t = _linear_pair()
    weight = f.weight
    fp.register_parametrization(f, "weight", FSymmetric())
    tp.register_parametrization(t, "weight", TSymmetric())
    assert type(f).__name__ == "ParametrizedLinear" and isinstance(f, fc.nn.Linear)
    assert fp.type_before_parametrizations(f) is fc.nn.Linear
    assert fp.is_parametrized(f) and fp.is_parametrized(f, "weight")
    assert not fp.is_parametrized(f, "bias")
    assert f.parametrizations.weight.original is weight  # the same Parameter object
    assert list(f.state_dict()) == list(t.state_dict()) == ["bias",
                                                            "parametrizations.weight.original"]
    _close(f.weight, t.weight, "symmetric weight")
    w = _np(f.weight)
    np.testing.assert_array_equal(w, w.T)
    # a second parametrization runs after the first
    fp.register_parametrization(f, "weight", FScale())
    tp.register_parametrization(t, "weight", TScale())
    assert len(f.parametrizations.weight) == 2
    _close(f.weight, t.weight, "chained weight")
    _compare_run(f, t, rng.standard_normal((3, 4)).astype(np.float32), rng)
    assert repr(f.parametrizations) == repr(t.parametrizations).replace(
        "TSymmetric", "FSymmetric").replace("TScale", "FScale")


def test_assignment_goes_through_right_inverse(rng):
    f, t = _linear_pair()
    fp.register_parametrization(f, "weight", FSymmetric())
    tp.register_parametrization(t, "weight", TSymmetric())
    fp.register_parametrization(f, "weight", FScale())
    tp.register_parametrization(t, "weight", TScale())
    a = rng.standard_normal((4, 4)).astype(np.float32)
    a = a + a.T
    f.weight = fc.tensor(a)
    t.weight = torch.tensor(a)
    _close(f.parametrizations.weight.original, t.parametrizations.weight.original, "original")
    _close(f.weight, torch.tensor(a), "weight after assignment")
    with pytest.raises(KeyError, match="already exists"):
        f.weight = fc.nn.Parameter(fc.tensor(a))


def test_right_inverse_with_several_originals(rng):
    f, t = _linear_pair(3, 5)
    fp.register_parametrization(f, "weight", FSum())
    tp.register_parametrization(t, "weight", TSum())
    plist = f.parametrizations.weight
    assert not plist.is_tensor and plist.ntensors == 2
    assert isinstance(plist.original0, fc.nn.Parameter)
    assert list(f.state_dict()) == list(t.state_dict())
    _close(plist.original0, t.parametrizations.weight.original0, "original0")
    _compare_run(f, t, rng.standard_normal((2, 3)).astype(np.float32), rng)
    w = rng.standard_normal((5, 3)).astype(np.float32)
    f.weight = fc.tensor(w)
    _close(plist.original1, torch.tensor(0.75 * w), "original1 after assignment")
    with pytest.raises(ValueError, match="sequence of tensors"):
        fp.remove_parametrizations(f, "weight", leave_parametrized=False)
    fp.remove_parametrizations(f, "weight")
    assert type(f) is fc.nn.Linear and isinstance(f._parameters["weight"], fc.nn.Parameter)
    _close(f.weight, torch.tensor(w), "weight left parametrized")


@pytest.mark.parametrize("leave", [True, False])
def test_remove_parametrizations(rng, leave):
    f, t = _linear_pair()
    fp.register_parametrization(f, "weight", FSymmetric())
    tp.register_parametrization(t, "weight", TSymmetric())
    fp.register_parametrization(f, "bias", FScale())
    tp.register_parametrization(t, "bias", TScale())
    original = f.parametrizations.weight.original
    fp.remove_parametrizations(f, "weight", leave_parametrized=leave)
    tp.remove_parametrizations(t, "weight", leave_parametrized=leave)
    assert f.weight is original  # the object is kept, so optimizers stay valid
    _close(f.weight, t.weight, "weight after removal")
    assert type(f).__name__ == "ParametrizedLinear"  # bias is still parametrized
    assert list(f.state_dict()) == list(t.state_dict())
    fp.remove_parametrizations(f, "bias", leave_parametrized=leave)
    assert type(f) is fc.nn.Linear and "parametrizations" not in f._modules
    assert not fp.is_parametrized(f)
    with pytest.raises(ValueError, match="does not have a parametrization on weight"):
        fp.remove_parametrizations(f, "weight")
    _compare_run(f, tp.remove_parametrizations(t, "bias", leave_parametrized=leave),
                 rng.standard_normal((2, 4)).astype(np.float32), rng)


def test_buffer_parametrized():
    m = fc.nn.BatchNorm1d(3)
    fp.register_parametrization(m, "running_var", FScale())
    assert "parametrizations.running_var.original" in m.state_dict()
    assert not isinstance(m.parametrizations.running_var.original, fc.nn.Parameter)
    np.testing.assert_allclose(_np(m.running_var), 1.0)
    np.testing.assert_allclose(_np(m.parametrizations.running_var.original), 0.5)


def test_cached_computes_once():
    class Counting(fc.nn.Module):
        calls = 0

        def forward(self, X):
            Counting.calls += 1
            return X * 1.0

    m = fc.nn.Linear(3, 3)
    fp.register_parametrization(m, "weight", Counting())
    Counting.calls = 0
    m.weight, m.weight
    assert Counting.calls == 2
    with fp.cached():
        a, b = m.weight, m.weight
        with fp.cached():
            assert m.weight is a
    assert a is b and Counting.calls == 3
    m.weight
    assert Counting.calls == 4  # the cache is gone after the block


def test_deepcopy_and_pickle(rng):
    f, _ = _linear_pair()
    fp.register_parametrization(f, "weight", FSymmetric())
    g = copy.deepcopy(f)
    _close(g.weight, f.weight, "copied weight")
    assert g.parametrizations.weight.original is not f.parametrizations.weight.original
    fp.remove_parametrizations(g, "weight")  # leaves the original's class alone
    assert type(g) is fc.nn.Linear and type(f).__name__ == "ParametrizedLinear"
    _close(f.weight, g.weight, "weights after removal on the copy")
    with pytest.raises(RuntimeError, match="state_dict"):
        pickle.dumps(f)


def test_transfer_parametrizations_and_params(rng):
    f, _ = _linear_pair()
    fp.register_parametrization(f, "weight", FSymmetric())
    g = fc.nn.Linear(4, 4)
    fp.transfer_parametrizations_and_params(f, g)
    assert g.parametrizations.weight.original is f.parametrizations.weight.original
    _close(g.weight, f.weight, "transferred weight")
    h = fc.nn.Identity()
    fp.transfer_parametrizations_and_params(f, h, "weight")
    _close(h.weight, f.weight, "weight created on the target")


def test_parametrize_errors():
    m = fc.nn.Linear(3, 4)
    with pytest.raises(ValueError, match="does not have a parameter, a buffer, or a "
                                         "parametrized element with name 'weigth'"):
        fp.register_parametrization(m, "weigth", FScale())

    class Shrink(fc.nn.Module):
        def forward(self, X):
            return X[:2]

    with pytest.raises(ValueError, match="may not change the shape"):
        fp.register_parametrization(fc.nn.Linear(3, 4), "weight", Shrink())
    fp.register_parametrization(m, "weight", Shrink(), unsafe=True)  # allowed when unsafe
    assert m.weight.shape == (2, 3)

    class ToInt(fc.nn.Module):
        def forward(self, X):
            return X.int()

    with pytest.raises(ValueError, match="may not change the dtype"):
        fp.register_parametrization(fc.nn.Linear(3, 4), "weight", ToInt())

    class NotATensor(fc.nn.Module):
        def forward(self, X):
            return X

        def right_inverse(self, X):
            return 3

    with pytest.raises(ValueError, match="must return a Tensor or a Sequence"):
        fp.register_parametrization(fc.nn.Linear(3, 4), "weight", NotATensor())
    with pytest.raises(ValueError, match="requires one or more modules"):
        fp.ParametrizationList([], fc.nn.Parameter(fc.zeros(2)))
    with pytest.raises(TypeError, match="parametrization must be a fastconv.nn.Module"):
        fp.register_parametrization(fc.nn.Linear(3, 4), "weight", lambda x: x)

    class NoInverse(fc.nn.Module):
        def forward(self, X):
            return X

    n = fc.nn.Linear(3, 4)
    fp.register_parametrization(n, "weight", NoInverse())
    with pytest.raises(RuntimeError, match="NoInverse does not implement right_inverse"):
        n.weight = fc.zeros(4, 3)


# ----------------------------------------------------------------------------- weight_norm

def _conv_pair(kind, *args, **kw):
    f, t = getattr(fc.nn, kind)(*args, **kw), getattr(torch.nn, kind)(*args, **kw)
    _to_torch(f, t)
    return f, t


@pytest.mark.parametrize("dim", [0, 1, None, -1])
@pytest.mark.parametrize("kind", ["Linear", "Conv2d"])
def test_weight_norm_matches_torch(rng, kind, dim):
    args = (5, 4) if kind == "Linear" else (3, 4, 3)
    f, t = _conv_pair(kind, *args)
    fpz.weight_norm(f, dim=dim)
    tpz.weight_norm(t, dim=dim)
    assert list(f.state_dict()) == list(t.state_dict())
    _close(f.weight, t.weight, "weight right after registration")
    # new random g and v (from torch's module): torch's state_dict loads unchanged
    with torch.no_grad():
        for p in t.parametrizations.weight.parameters():
            p.copy_(torch.randn(p.shape))
    _to_fastconv(t, f)
    x = rng.standard_normal((2, 5) if kind == "Linear" else (2, 3, 6, 6)).astype(np.float32)
    _compare_run(f, t, x, rng)
    fp.remove_parametrizations(f, "weight")
    tp.remove_parametrizations(t, "weight")
    _close(f.weight, t.weight, "weight after removal")
    assert list(f.state_dict()) == list(t.state_dict())


def test_weight_norm_errors():
    with pytest.raises(ValueError, match="no parameter or buffer with name 'kernel'"):
        fpz.weight_norm(fc.nn.Linear(2, 3), "kernel")
    with pytest.raises(IndexError, match="Dimension out of range"):
        fpz.weight_norm(fc.nn.Linear(2, 3), dim=2)


# ----------------------------------------------------------------------------- spectral_norm

@pytest.mark.parametrize("kind,args,kw,xshape", [
    ("Linear", (6, 4), {}, (2, 6)), ("Linear", (3, 7), {"n_power_iterations": 3}, (2, 3)),
    ("Conv2d", (3, 4, 3), {}, (2, 3, 5, 5)), ("Conv2d", (3, 4, 3), {"dim": 1}, (2, 3, 5, 5)),
    ("ConvTranspose2d", (3, 5, 3), {}, (2, 3, 4, 4)),
    ("Conv1d", (2, 3, 3), {"eps": 1e-6}, (2, 2, 7)),
])
def test_spectral_norm_matches_torch(rng, kind, args, kw, xshape):
    f, t = _conv_pair(kind, *args)
    # a random weight whose top singular value stands clear of the next (3 : 1), so that the
    # 15 power steps at registration must have found it (a random matrix's gap can be too
    # small for 15 steps, in torch as here)
    dim = kw.get("dim", 1 if kind.startswith("ConvTranspose") else 0)
    w0 = np.moveaxis(_np(f.weight), dim, 0)
    m = w0.reshape(w0.shape[0], -1)
    left, _, right = np.linalg.svd(rng.standard_normal(m.shape), full_matrices=False)
    s = np.concatenate([[3.0], rng.uniform(0.1, 1.0, left.shape[1] - 1)])
    m = ((left * s) @ right).astype(np.float32)
    f.weight.data[...] = np.moveaxis(m.reshape(w0.shape), 0, dim)
    _to_torch(f, t)
    fpz.spectral_norm(f, **kw)
    tpz.spectral_norm(t, **kw)
    keys = list(f.state_dict())
    assert keys == list(t.state_dict())
    assert "parametrizations.weight.0._u" in keys and "parametrizations.weight.0._v" in keys
    sn = f.parametrizations.weight[0]
    assert sn.dim == t.parametrizations.weight[0].dim  # 1 for transposed convolutions
    # after 15 power steps at registration, the weight's largest singular value is 1
    w = np.moveaxis(_np(f.weight), sn.dim, 0)
    assert np.linalg.svd(w.reshape(w.shape[0], -1), compute_uv=False)[0] == pytest.approx(
        1.0, rel=1e-4)
    _to_fastconv(t, f)
    x = rng.standard_normal(xshape).astype(np.float32)
    _compare_run(f, t, x, rng)  # training: one power step each, on the same u and v
    tstate = t.state_dict()
    for k, v in f.state_dict().items():
        np.testing.assert_allclose(v, tstate[k].numpy(), rtol=1e-4, atol=1e-6, err_msg=k)
    u = _np(sn._u).copy()
    f.eval()
    t.eval()
    _close(f.weight, t.weight, "weight in evaluation")
    np.testing.assert_array_equal(_np(sn._u), u)  # no power step in evaluation


def test_spectral_norm_of_a_vector_and_errors(rng):
    f, t = _linear_pair(3, 5)
    fpz.spectral_norm(f, "bias")
    tpz.spectral_norm(t, "bias")
    assert list(f.state_dict()) == list(t.state_dict())  # no _u / _v for a vector
    _close(f.bias, t.bias, "normalised bias")
    with pytest.raises(ValueError, match="n_power_iterations to be positive"):
        fpz.spectral_norm(fc.nn.Linear(2, 3), n_power_iterations=0)
    with pytest.raises(IndexError, match="Dimension out of range"):
        fpz.spectral_norm(fc.nn.Linear(2, 3), dim=2)
    with pytest.raises(ValueError, match="no parameter or buffer with name 'w'"):
        fpz.spectral_norm(fc.nn.Linear(2, 3), "w")


# ----------------------------------------------------------------------------- orthogonal

class FBatched(fc.nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.weight = fc.nn.Parameter(fc.randn(*shape))

    def forward(self, x):
        return x @ self.weight


class TBatched(torch.nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(*shape))

    def forward(self, x):
        return x @ self.weight


def _orthogonal_pair(shape):
    if len(shape) == 2:
        return _linear_pair(shape[1], shape[0])
    f, t = FBatched(shape), TBatched(shape)
    _to_torch(f, t)
    return f, t


def _assert_orthonormal(w):
    w = _np(w).astype(np.float64)
    if w.shape[-2] < w.shape[-1]:
        w = np.swapaxes(w, -1, -2)
    eye = np.eye(w.shape[-1])
    np.testing.assert_allclose(np.swapaxes(w, -1, -2) @ w, np.broadcast_to(eye, w.shape[:-2]
                                                                           + eye.shape),
                               atol=1e-5)


ORTH = [(m, triv) for m in (None, "matrix_exp", "cayley", "householder")
        for triv in (True, False)]


@pytest.mark.parametrize("shape", [(4, 4), (6, 3), (3, 5), (2, 4, 3)])
@pytest.mark.parametrize("orthogonal_map,use_trivialization", ORTH)
def test_orthogonal_matches_torch(rng, shape, orthogonal_map, use_trivialization):
    f, t = _orthogonal_pair(shape)
    kw = {"orthogonal_map": orthogonal_map, "use_trivialization": use_trivialization}
    fpz.orthogonal(f, **kw)
    tpz.orthogonal(t, **kw)
    assert list(f.state_dict()) == list(t.state_dict())
    assert f.parametrizations.weight[0].orthogonal_map.name == \
        t.parametrizations.weight[0].orthogonal_map.name
    _assert_orthonormal(f.weight)
    # the weight right after registration is a deterministic function of the old one (its
    # QR factor, or the map of it where right_inverse is not implemented)
    _close(f.weight, t.weight, "weight right after registration", atol=1e-5)
    # a random point of the unconstrained space, the same in both (loaded from torch)
    with torch.no_grad():
        orig = t.parametrizations.weight.original
        orig.copy_(0.5 * torch.randn(orig.shape))
        if t.parametrizations.weight[0].orthogonal_map.name == "householder":
            orig.diagonal(dim1=-2, dim2=-1).copy_(torch.tensor(1.0) - 2.0 * (
                torch.rand(orig.diagonal(dim1=-2, dim2=-1).shape) < 0.5))
    _to_fastconv(t, f)
    _close(f.weight, t.weight, "weight at a random point")
    _assert_orthonormal(f.weight)
    x = rng.standard_normal((2,) + (shape[-1] if len(shape) == 2 else shape[-2],)).astype(
        np.float32)
    if len(shape) == 3:
        x = rng.standard_normal((shape[0], 2, shape[-2])).astype(np.float32)
    _compare_run(f, t, x, rng)


def test_orthogonal_assignment_and_training(rng):
    f, t = _linear_pair(5, 5)
    fpz.orthogonal(f)
    tpz.orthogonal(t)
    q = np.linalg.qr(rng.standard_normal((5, 5)))[0].astype(np.float32)
    f.weight = fc.tensor(q)
    t.weight = torch.tensor(q)
    _close(f.weight, torch.tensor(q), "assigned orthogonal weight")
    _close(f.parametrizations.weight[0].base, t.parametrizations.weight[0].base, "base")
    a = rng.standard_normal((5, 5)).astype(np.float32)  # not orthogonal: orthogonalised
    f.weight = fc.tensor(a)
    _assert_orthonormal(f.weight)
    _assert_orthonormal(f.parametrizations.weight[0].base)
    opt = fc.optim.SGD(f.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        f(fc.tensor(rng.standard_normal((4, 5)).astype(np.float32))).square().sum().backward()
        opt.step()
    _assert_orthonormal(f.weight)


def test_orthogonal_errors():
    with pytest.raises(ValueError, match="Expected a matrix or batch of matrices. Got a "
                                         "tensor of 1 dimensions"):
        fpz.orthogonal(fc.nn.Linear(3, 4), "bias")
    with pytest.raises(ValueError, match='orthogonal_map has to be one of "matrix_exp", '
                                         '"cayley", "householder". Got: qr'):
        fpz.orthogonal(fc.nn.Linear(3, 4), orthogonal_map="qr")
    m = fpz.orthogonal(fc.nn.Linear(3, 3), orthogonal_map="cayley", use_trivialization=False)
    with pytest.raises(NotImplementedError, match="use_trivialization=False"):
        m.weight = fc.zeros(3, 3)
    m = fpz.orthogonal(fc.nn.Linear(3, 4))
    with pytest.raises(ValueError, match=r"of shape \(4, 3\). Got a tensor of shape \(3, 4\)"):
        m.weight = fc.zeros(3, 4)
    with pytest.raises(ValueError, match="no parameter or buffer with name 'W'"):
        fpz.orthogonal(fc.nn.Linear(3, 4), "W")


# ----------------------------------------------------------------------------- matrix functions

@pytest.mark.parametrize("shape", [(4, 4), (3, 5, 5)])
def test_matrix_exp_and_solve_match_torch(rng, shape):
    a = (rng.standard_normal(shape) * 1.5).astype(np.float32)  # scaled: norms above theta_13
    b = rng.standard_normal(shape[:-1] + (2,)).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    fa, ta = fc.tensor(4 * a, requires_grad=True), torch.tensor(4 * a, requires_grad=True)
    fy, ty = linalg.matrix_exp(fa), torch.matrix_exp(ta)
    _close(fy, ty, "matrix_exp", rtol=2e-4, atol=1e-4 * float(np.abs(_np(ty)).max()))
    (fy * fc.tensor(g)).sum().backward()
    (ty * torch.tensor(g)).sum().backward()
    _close(fa.grad, ta.grad, "matrix_exp gradient", rtol=1e-3,
           atol=1e-4 * float(np.abs(_np(ta.grad)).max()))
    a = a + 3 * np.eye(shape[-1], dtype=np.float32)  # well conditioned
    fa, ta = fc.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    fb, tb = fc.tensor(b, requires_grad=True), torch.tensor(b, requires_grad=True)
    fx, tx = linalg.solve(fa, fb), torch.linalg.solve(ta, tb)
    _close(fx, tx, "solve")
    gx = rng.standard_normal(b.shape).astype(np.float32)
    (fx * fc.tensor(gx)).sum().backward()
    (tx * torch.tensor(gx)).sum().backward()
    _close(fa.grad, ta.grad, "solve: gradient of A")
    _close(fb.grad, tb.grad, "solve: gradient of B")
    with pytest.raises(RuntimeError, match="square matrix"):
        linalg.matrix_exp(fc.zeros(2, 3))
    with pytest.raises(RuntimeError, match="batch shape"):
        linalg.solve(fc.zeros(3, 3), fc.zeros(2, 1))


def test_product_of_column_slices(rng):
    """A column slice is a strided view: the product still runs on the GEMM (the householder
    map multiplies by such slices)."""
    a = rng.standard_normal((5, 3)).astype(np.float32)
    b = rng.standard_normal((1, 4)).astype(np.float32)
    fa, ta = fc.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    fy, ty = fa[:, 1:2] @ fc.tensor(b), ta[:, 1:2] @ torch.tensor(b)
    _close(fy, ty, "product")
    fy.sum().backward()
    ty.sum().backward()
    _close(fa.grad, ta.grad, "gradient")
