"""Double backward (``create_graph=True``) against torch.

For each op: the first-order gradients that ``autograd.grad(..., create_graph=True)`` returns,
then the gradient of ``sum_i <g_i, v_i>`` (a Hessian-vector product, random v) with respect
to every input, against torch in float64 on the same fresh random inputs. Also the
habits built on it: gradient penalties through ``backward(create_graph=True)``, ``.grad``
that keeps its graph, ``hessian`` / ``hvp`` / ``gradgradcheck``, and the clear error of an op
whose backward cannot be differentiated yet.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close, randn

import fastconv as fc
import fastconv.functional as F

torch = pytest.importorskip("torch")
tF = torch.nn.functional

RTOL, ATOL = 2e-4, 2e-4


def check_double(fc_fn, torch_fn, inputs, rng, name, grad_idx=None):
    """First and second derivatives of ``fn(*inputs)`` (a scalar, or reduced by a random
    weighting) match torch's."""
    grad_idx = range(len(inputs)) if grad_idx is None else grad_idx
    a = [fc.tensor(x, requires_grad=i in grad_idx) if x.dtype.kind == "f" else fc.tensor(x)
         for i, x in enumerate(inputs)]
    b = [torch.tensor(x.astype(np.float64) if x.dtype.kind == "f" else x,
                      requires_grad=i in grad_idx) for i, x in enumerate(inputs)]
    ya, yb = fc_fn(*a), torch_fn(*b)
    if ya.ndim:  # a random weighting makes every output element count
        w = randn(rng, *ya.shape)
        ya, yb = (ya * fc.tensor(w)).sum(), (yb * torch.tensor(w, dtype=torch.float64)).sum()
    assert_close(ya, yb.detach(), name=f"{name} output")
    wa = [a[i] for i in grad_idx]
    wb = [b[i] for i in grad_idx]
    ga = fc.autograd.grad(ya, wa, create_graph=True)
    gb = torch.autograd.grad(yb, wb, create_graph=True)
    for i, (g, h) in zip(grad_idx, zip(ga, gb)):
        assert_close(g.detach(), h.detach(), RTOL, ATOL, name=f"{name} grad {i}")
    vs = [randn(rng, *x.shape) for x in (inputs[i] for i in grad_idx)]
    sa = sum((g * fc.tensor(v)).sum() for g, v in zip(ga, vs))
    sb = sum((g * torch.tensor(v, dtype=torch.float64)).sum() for g, v in zip(gb, vs))
    if not sb.requires_grad:  # torch: the gradient is constant (a linear op)
        assert not sa.requires_grad or all(
            h is None or not np.any(h.numpy())
            for h in fc.autograd.grad(sa, wa, allow_unused=True)), name
        return
    ha = fc.autograd.grad(sa, wa, allow_unused=True)
    hb = torch.autograd.grad(sb, wb, allow_unused=True)
    for i, (g, h) in zip(grad_idx, zip(ha, hb)):
        want = np.zeros(inputs[i].shape) if h is None else h.numpy()
        got = np.zeros(inputs[i].shape) if g is None else g.numpy()
        assert_close(got, want, RTOL, ATOL, name=f"{name} second derivative {i}")


ELEMENTWISE = {
    "mul-div": (lambda x, y: x * y / (y * y + 1), lambda x, y: x * y / (y * y + 1)),
    "add-sub-neg": (lambda x, y: (x + y) * (x - y) - (-x) * x, None),
    "pow-exp-log": (lambda x, y: (x * x + 1).log() * (0.3 * y).exp() + (x.abs() + 0.5) ** 1.5,
                    None),
    "sqrt": (lambda x, y: (x * x + y * y + 0.1).sqrt(), None),
    "tanh-sigmoid": (lambda x, y: x.tanh() * y.sigmoid(), None),
    "sin-cos": (lambda x, y: x.sin() * y.cos(), None),
    "broadcast": (lambda x, y: x[:, :1] * y[:1] + x.sum(0, keepdim=True) ** 2, None),
    "clamp-abs": (lambda x, y: x.clamp(-0.5, 0.7) * y + x.abs() * y * y, None),
    "maximum-where": (lambda x, y: x.maximum(y) * x + fc.where(x > 0, x * y, y * y),
                      lambda x, y: x.maximum(y) * x + torch.where(x > 0, x * y, y * y)),
    "var-mean": (lambda x, y: x.var(1) * y.mean(1) + (x * y).std(0).sum(), None),
}


@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_elementwise(name, rng):
    f, g = ELEMENTWISE[name]
    check_double(f, g or f, [randn(rng, 3, 4), randn(rng, 3, 4)], rng, name)


@pytest.mark.parametrize("name", ["expm1", "log1p", "erf", "rsqrt", "tan", "atan", "sinh",
                                  "cosh", "asinh", "exp2", "deg2rad", "frac"])
def test_pointwise_table(name, rng):
    x = randn(rng, 2, 5) * 0.5
    if name in ("rsqrt", "log1p"):
        x = np.abs(x) + 0.5
    check_double(lambda t: getattr(t, name)() * t, lambda t: getattr(t, name)() * t, [x], rng,
                 name)


ACTIVATIONS = ["relu", "leaky_relu", "elu", "gelu", "silu", "softplus", "mish", "selu", "celu",
               "logsigmoid", "softsign", "hardtanh", "hardswish", "tanhshrink", "softshrink"]


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activations(name, rng):
    x = randn(rng, 3, 6) * 2
    check_double(lambda t: getattr(F, name)(t) * t, lambda t: getattr(tF, name)(t) * t, [x],
                 rng, name)


def test_gelu_tanh(rng):
    check_double(lambda t: F.gelu(t, approximate="tanh") ** 2,
                 lambda t: tF.gelu(t, approximate="tanh") ** 2, [randn(rng, 4, 5)], rng,
                 "gelu tanh")


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_family(dim, rng):
    check_double(lambda t: F.softmax(t, dim) * t, lambda t: tF.softmax(t, dim) * t,
                 [randn(rng, 3, 5)], rng, "softmax")
    check_double(lambda t: F.log_softmax(t, dim) ** 2, lambda t: tF.log_softmax(t, dim) ** 2,
                 [randn(rng, 3, 5)], rng, "log_softmax")


@pytest.mark.parametrize("shapes", [((3, 4), (4, 5)), ((2, 3, 4), (4, 2)), ((4,), (4, 3)),
                                    ((3, 4), (4,)), ((4,), (4,)), ((2, 1, 3, 4), (5, 4, 2))])
def test_matmul(shapes, rng):
    f = lambda a, b: (a @ b).tanh()  # noqa: E731
    check_double(f, f, [randn(rng, *s) for s in shapes], rng, f"matmul {shapes}")


def test_shapes_and_indexing(rng):
    f = lambda x: (x.reshape(4, 6).t()[1:, ::2].permute(1, 0).flip(0) ** 2).cumsum(1)  # noqa
    check_double(f, f, [randn(rng, 2, 3, 4)], rng, "shape ops")
    g = lambda x: (fc.cat([x, x * x], 1).unsqueeze(0).expand(2, 3, 8) ** 2).sum()  # noqa
    h = lambda x: (torch.cat([x, x * x], 1).unsqueeze(0).expand(2, 3, 8) ** 2).sum()  # noqa
    check_double(g, h, [randn(rng, 3, 4)], rng, "cat/expand")
    g = lambda x: fc.stack([x.sin(), x.repeat(1, 2)[:, :4] * x]).max(0)[0]  # noqa
    h = lambda x: torch.stack([x.sin(), x.repeat(1, 2)[:, :4] * x]).max(0)[0]  # noqa
    check_double(g, h, [randn(rng, 3, 4)], rng, "stack/repeat/max")


@pytest.mark.parametrize("stride, padding, dilation, groups", [(1, 0, 1, 1), (2, 1, 1, 1),
                                                               (1, 2, 2, 2), (2, 1, 1, 4)])
def test_conv2d(stride, padding, dilation, groups, rng):
    f = lambda x, w, b: F.conv2d(x, w, b, stride, padding, dilation, groups).tanh()  # noqa
    g = lambda x, w, b: tF.conv2d(x, w, b, stride, padding, dilation, groups).tanh()  # noqa
    check_double(f, g, [randn(rng, 2, 4, 7, 6), randn(rng, 8, 4 // groups, 3, 3) * 0.3,
                        randn(rng, 8)], rng, f"conv2d s{stride} p{padding} d{dilation} g{groups}")


@pytest.mark.parametrize("stride, padding, output_padding, groups", [(1, 0, 0, 1), (2, 1, 1, 1),
                                                                     (2, 0, 1, 2)])
def test_conv_transpose2d(stride, padding, output_padding, groups, rng):
    f = lambda x, w: F.conv_transpose2d(x, w, None, stride, padding, output_padding,  # noqa
                                        groups).sin()
    g = lambda x, w: tF.conv_transpose2d(x, w, None, stride, padding, output_padding,  # noqa
                                         groups).sin()
    check_double(f, g, [randn(rng, 2, 4, 5, 4), randn(rng, 4, 6 // groups, 3, 3) * 0.3], rng,
                 "conv_transpose2d")


def test_linear_pool_pad_resize(rng):
    f = lambda x, w: F.linear(F.max_pool2d(F.pad(x, (1, 0, 2, 1), value=0.5).tanh(), 2),  # noqa
                              w) ** 2
    g = lambda x, w: tF.linear(tF.max_pool2d(tF.pad(x, (1, 0, 2, 1), value=0.5).tanh(), 2),  # noqa
                               w) ** 2
    check_double(f, g, [randn(rng, 2, 3, 5, 5), randn(rng, 4, 3)], rng, "linear/max_pool/pad")
    f = lambda x: (F.avg_pool2d(x, 2, 1, 1) ** 2).sum() + (  # noqa: E731
        F.adaptive_avg_pool2d(x, 3) ** 3).sum()
    g = lambda x: (tF.avg_pool2d(x, 2, 1, 1) ** 2).sum() + (  # noqa: E731
        tF.adaptive_avg_pool2d(x, 3) ** 3).sum()
    check_double(f, g, [randn(rng, 2, 3, 5, 5)], rng, "avg pools")
    f = lambda x: F.interpolate(x, scale_factor=2, mode="bilinear").sin()  # noqa
    g = lambda x: tF.interpolate(x, scale_factor=2, mode="bilinear").sin()  # noqa
    check_double(f, g, [randn(rng, 1, 2, 3, 4)], rng, "bilinear")
    f = lambda x: F.adaptive_max_pool2d(x * x, 2).sum()  # noqa
    g = lambda x: tF.adaptive_max_pool2d(x * x, 2).sum()  # noqa
    check_double(f, g, [randn(rng, 1, 2, 5, 4)], rng, "adaptive max pool")


@pytest.mark.parametrize("ls", [0.0, 0.1])
def test_losses(ls, rng):
    t = rng.integers(0, 5, 6)
    check_double(lambda x: F.cross_entropy(x * x, fc.tensor(t), label_smoothing=ls),
                 lambda x: tF.cross_entropy(x * x, torch.tensor(t), label_smoothing=ls),
                 [randn(rng, 6, 5)], rng, "cross_entropy")
    w = np.abs(randn(rng, 5)) + 0.1
    w64 = torch.tensor(w, dtype=torch.float64)
    check_double(lambda x: F.cross_entropy(x.tanh(), fc.tensor(t), fc.tensor(w)),
                 lambda x: tF.cross_entropy(x.tanh(), torch.tensor(t), w64),
                 [randn(rng, 6, 5)], rng, "weighted cross_entropy")
    y = rng.random((4, 3)).astype(np.float32)
    y64 = torch.tensor(y, dtype=torch.float64)
    check_double(lambda x, p: F.binary_cross_entropy_with_logits(x * 2, fc.tensor(y),
                                                                 pos_weight=p),
                 lambda x, p: tF.binary_cross_entropy_with_logits(x * 2, y64, pos_weight=p),
                 [randn(rng, 4, 3), np.abs(randn(rng, 3)) + 0.5], rng, "bce with logits",
                 grad_idx=[0])  # torch refuses a gradient for pos_weight
    check_double(lambda x, z: F.mse_loss(x.sin(), z) + F.l1_loss(x * z, z) + F.huber_loss(x, z),
                 lambda x, z: tF.mse_loss(x.sin(), z) + tF.l1_loss(x * z, z) + tF.huber_loss(x, z),
                 [randn(rng, 4, 3), randn(rng, 4, 3)], rng, "regression losses")


def test_norms(rng):
    check_double(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True).tanh(),
                 lambda x, w, b: tF.batch_norm(x, None, None, w, b, training=True).tanh(),
                 [randn(rng, 4, 3, 2, 2), randn(rng, 3), randn(rng, 3)], rng, "batch norm")
    rm, rv = randn(rng, 3), np.abs(randn(rng, 3)) + 0.5
    check_double(lambda x, w: F.batch_norm(x, fc.tensor(rm), fc.tensor(rv), w).sin(),
                 lambda x, w: tF.batch_norm(x, *(torch.tensor(a, dtype=torch.float64)
                                                 for a in (rm, rv)), w).sin(),
                 [randn(rng, 4, 3, 2), randn(rng, 3)], rng, "batch norm (eval)")
    check_double(lambda x, w, b: F.layer_norm(x, (5,), w, b).sin(),
                 lambda x, w, b: tF.layer_norm(x, (5,), w, b).sin(),
                 [randn(rng, 3, 5), randn(rng, 5), randn(rng, 5)], rng, "layer norm")
    check_double(lambda x, w, b: F.group_norm(x, 2, w, b).sin(),
                 lambda x, w, b: tF.group_norm(x, 2, w, b).sin(),
                 [randn(rng, 2, 4, 3), randn(rng, 4), randn(rng, 4)], rng, "group norm")
    check_double(lambda x: F.local_response_norm(x, 3, 0.1, 0.75, 1.0).sin(),
                 lambda x: tF.local_response_norm(x, 3, 0.1, 0.75, 1.0).sin(),
                 [randn(rng, 2, 5, 3, 3)], rng, "LRN")
    for p in (1, 2, 3):
        check_double(lambda x: x.norm(p, dim=1) ** 2, lambda x: x.norm(p, dim=1) ** 2,
                     [randn(rng, 3, 4)], rng, f"vector norm p={p}")


# Ops whose double backward comes from the ops they are built of, or from the generic
# mechanisms (fastconv/double_backward.py): f(lib, x) on fastconv or torch.
def _embedding(m, x):
    index = m.tensor(np.array([0, 2, 1, 2]))
    return m.nn.functional.embedding(index, x, padding_idx=2) ** 2


COMPOSED = {
    "logsumexp": (lambda m, x: m.logsumexp(x, 1), (3, 4)),
    "amax": (lambda m, x: m.amax(x * x, 1), (3, 4)),
    "sort": (lambda m, x: m.sort(x * x, 1)[0], (3, 4)),
    "topk": (lambda m, x: m.topk(x * x, 2, 1)[0], (3, 4)),
    "median": (lambda m, x: m.median(x * x, 1)[0], (3, 5)),
    "gather": (lambda m, x: m.gather(x * x, 1, m.tensor(np.array([[0, 2], [1, 1], [3, 0]]))),
               (3, 4)),
    "index_select": (lambda m, x: m.index_select(x * x, 1, m.tensor(np.array([0, 2, 2]))),
                     (3, 4)),
    "masked_fill": (lambda m, x: (x * x).masked_fill(m.tensor(np.array([[True, False] * 2] * 3)),
                                                     0.5), (3, 4)),
    "embedding": (_embedding, (3, 4)),
    "pad reflect": (lambda m, x: m.nn.functional.pad(x * x, (1, 1), mode="reflect"), (2, 3, 4)),
    "nearest": (lambda m, x: m.nn.functional.interpolate(x * x, scale_factor=2), (1, 2, 3, 3)),
    "conv1d": (lambda m, x: m.nn.functional.conv1d(x, x[:2, :, :2] * 1.0).tanh(), (3, 3, 6)),
    "conv3d": (lambda m, x: m.nn.functional.conv3d(x, x[:2, :, :2, :2, :2] * 1.0).tanh(),
               (2, 2, 3, 3, 3)),
    "max_pool1d": (lambda m, x: m.nn.functional.max_pool1d(x * x, 2), (2, 3, 6)),
    "instance_norm": (lambda m, x: m.nn.functional.instance_norm(x).tanh(), (2, 3, 4, 4)),
    "attention": (lambda m, x: m.nn.functional.scaled_dot_product_attention(x, x * 2, x.tanh()),
                  (2, 3, 4)),
    "unfold": (lambda m, x: m.nn.functional.unfold(x * x, 2), (1, 2, 3, 3)),
    "pixel_shuffle": (lambda m, x: m.nn.functional.pixel_shuffle(x * x, 2), (1, 4, 2, 2)),
    "cosine_similarity": (lambda m, x: m.nn.functional.cosine_similarity(x, x.flip(0), 1),
                          (3, 4)),
    "normalize": (lambda m, x: m.nn.functional.normalize(x, dim=1), (3, 4)),
    "kl_div": (lambda m, x: m.nn.functional.kl_div(m.nn.functional.log_softmax(x, 1),
                                                   m.nn.functional.softmax(x.flip(0), 1),
                                                   reduction="batchmean"), (3, 4)),
    "bce": (lambda m, x: m.nn.functional.binary_cross_entropy(x.sigmoid(), x.flip(0).sigmoid()),
            (3, 4)),
    "glu": (lambda m, x: m.nn.functional.glu(x, 1), (3, 4)),
    "bmm": (lambda m, x: m.bmm(x, x.transpose(1, 2)), (2, 3, 4)),
    "einsum attention": (lambda m, x: m.einsum("bqd,bkd->bqk", x, x.tanh()), (2, 3, 4)),
    "einsum diagonal": (lambda m, x: m.einsum("iij,jk->ik", x, x[0, :, :2] * 1.0), (4, 4, 4)),
    "einsum trace": (lambda m, x: m.einsum("ii->", x * x), (3, 3)),
    "einsum outer": (lambda m, x: m.einsum("i,j->ij", x[0], x[1].sin()), (2, 3)),
    "einsum broadcast": (lambda m, x: m.einsum("...ij,jk->...ik", x, x[0].t()), (2, 3, 3)),
    # an input that also feeds another argument: partial derivatives, not totals
    "layer_norm shared": (lambda m, x: m.nn.functional.layer_norm(x, (4,), x[0].tanh(),
                                                                 x[1] * 0.5), (3, 4)),
    "batch_norm shared": (lambda m, x: m.nn.functional.batch_norm(x, None, None, x[0].sin(),
                                                                 training=True), (4, 3)),
}


@pytest.mark.parametrize("name", list(COMPOSED))
def test_composed_and_generic(name, rng):
    f, shape = COMPOSED[name]
    check_double(lambda t: f(fc, t), lambda t: f(torch, t), [randn(rng, *shape)], rng, name)


def test_gradient_penalty_through_backward(rng):
    """WGAN-GP: ||d critic / d x|| - 1, squared, as a loss of the critic's weights, with
    ``backward(create_graph=True)`` leaving ``x.grad`` in the graph."""
    xs, w1, w2 = randn(rng, 5, 6), randn(rng, 8, 6) * 0.5, randn(rng, 1, 8) * 0.5

    def run(lib, mod):
        x = lib.tensor(xs, requires_grad=True)
        p1, p2 = (lib.tensor(w, requires_grad=True) for w in (w1, w2))
        out = mod.linear(mod.leaky_relu(mod.linear(x, p1), 0.2), p2).sum()
        out.backward(create_graph=True)
        penalty = ((x.grad.pow(2).sum(1) + 1e-12).sqrt() - 1).pow(2).mean()
        p1.grad = p2.grad = None
        penalty.backward()
        return penalty, p1.grad, p2.grad

    got, want = run(fc, F), run(torch, tF)
    for g, h, what in zip(got, want, ["penalty", "grad w1", "grad w2"]):
        assert_close(g.detach(), h.detach(), RTOL, ATOL, name=what)


def test_grad_keeps_graph_only_with_create_graph(rng):
    x = fc.tensor(randn(rng, 4), requires_grad=True)
    (g,) = fc.autograd.grad((x ** 3).sum(), x, create_graph=True)
    assert g.requires_grad and g.grad_fn is not None
    (g2,) = fc.autograd.grad((x ** 3).sum(), x)
    assert not g2.requires_grad
    (h,) = fc.autograd.grad(g.sum(), x)
    assert_close(h, 6 * x.detach().numpy())


def test_hessian_hvp_and_gradgradcheck(rng):
    from fastconv.autograd.functional import hessian, hvp, vhp
    from torch.autograd.functional import hessian as t_hessian

    x = randn(rng, 4)
    f = lambda t: (t.sin() * t).sum() + (t[:2] * t[2:]).sum() ** 2  # noqa: E731
    h = hessian(f, fc.tensor(x))
    assert_close(h, t_hessian(f, torch.tensor(x, dtype=torch.float64)), RTOL, ATOL, "hessian")
    v = randn(rng, 4)
    val, hv = hvp(f, fc.tensor(x), fc.tensor(v))
    assert_close(hv, h.numpy() @ v, RTOL, ATOL, "hvp")
    val, vh = vhp(f, fc.tensor(x), fc.tensor(v))
    assert_close(vh, v @ h.numpy(), RTOL, ATOL, "vhp")
    x64 = fc.tensor(x, requires_grad=True)
    assert fc.autograd.gradgradcheck(lambda t: (t.tanh() * t).sum(), (x64,), eps=1e-2,
                                     atol=1e-2, rtol=1e-2)


def test_an_op_without_double_backward_says_so(rng):
    x = fc.tensor(randn(rng, 3, 4), requires_grad=True)
    y = (x.cumprod(1) ** 2).sum()
    with pytest.raises(NotImplementedError, match="double backward.*cumprod"):
        fc.autograd.grad(y, x, create_graph=True)


def test_grad_of_an_intermediate_does_not_run_below_it(rng):
    """autograd.grad with respect to an intermediate tensor only runs the nodes above it
    (as torch's engine): an op below it that cannot be differentiated twice is not reached."""
    x = fc.tensor(randn(rng, 3, 4), requires_grad=True)
    h = x.cumprod(1)
    y = (h.tanh() ** 2).sum()
    (g,) = fc.autograd.grad(y, h, create_graph=True)
    th = torch.tensor(h.detach().numpy().astype(np.float64), requires_grad=True)
    (tg,) = torch.autograd.grad((th.tanh() ** 2).sum(), th, create_graph=True)
    assert_close(g.detach(), tg.detach(), RTOL, ATOL, "grad at the intermediate")
