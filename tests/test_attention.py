"""F.scaled_dot_product_attention, nn.MultiheadAttention and nn.TransformerEncoderLayer /
TransformerEncoder against torch: outputs, attention weights, and the gradients of the inputs
and of every parameter, with the state_dict copied across (so the keys must match)."""

from __future__ import annotations

import numpy as np
import pytest

import fastconv as fc

torch = pytest.importorskip("torch")

RTOL, ATOL = 1e-4, 1e-5


def _close(a, b, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


def _randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------- scaled_dot_product_attention

def _sdpa_case(rng, mask_kind, L=5, S=6, **kw):
    q, k, v = _randn(rng, 2, 3, L, 4), _randn(rng, 2, 3, S, 4), _randn(rng, 2, 3, S, 7)
    mask = None
    if mask_kind == "bool":
        mask = rng.random((L, S)) > 0.4
        mask[:, 0] = True  # every query attends to something
    elif mask_kind == "float":
        mask = _randn(rng, 2, 1, L, S)
    fq, fk, fv = (fc.tensor(a, requires_grad=True) for a in (q, k, v))
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    fm = None if mask is None else fc.tensor(mask)
    tm = None if mask is None else torch.tensor(mask)
    fy = fc.nn.functional.scaled_dot_product_attention(fq, fk, fv, fm, **kw)
    ty = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, tm, **kw)
    _close(fy.detach().numpy(), ty.detach().numpy())
    dy = _randn(rng, *ty.shape)
    fy.backward(fc.tensor(dy))
    ty.backward(torch.tensor(dy))
    for a, b in ((fq, tq), (fk, tk), (fv, tv)):
        _close(a.grad.numpy(), b.grad.numpy())


@pytest.mark.parametrize("mask_kind,kw", [
    (None, {}), ("bool", {}), ("float", {}), (None, {"is_causal": True}),
    ("float", {"scale": 0.3}), (None, {"is_causal": True, "scale": 1.7})],
    ids=["plain", "bool_mask", "float_mask", "causal", "scale", "causal_scale"])
def test_sdpa_matches_torch(rng, mask_kind, kw):
    _sdpa_case(rng, mask_kind, **kw)


def test_sdpa_causal_rectangular_and_gqa(rng):
    _sdpa_case(rng, None, L=4, S=7, is_causal=True)
    q, k, v = _randn(rng, 2, 4, 3, 5), _randn(rng, 2, 2, 6, 5), _randn(rng, 2, 2, 6, 5)
    got = fc.nn.functional.scaled_dot_product_attention(fc.tensor(q), fc.tensor(k),
                                                        fc.tensor(v), enable_gqa=True)
    want = torch.nn.functional.scaled_dot_product_attention(
        torch.tensor(q), torch.tensor(k), torch.tensor(v), enable_gqa=True)
    _close(got.numpy(), want.numpy())


def test_sdpa_fully_masked_query_gets_zeros(rng):
    q, k, v = _randn(rng, 3, 4, 5), _randn(rng, 3, 6, 5), _randn(rng, 3, 6, 5)
    mask = rng.random((3, 4, 6)) > 0.5
    mask[:, :, 0] = True
    mask[1, 2] = False  # query 2 of batch 1 may attend to nothing
    fq, tq = fc.tensor(q, requires_grad=True), torch.tensor(q, requires_grad=True)
    fy = fc.nn.functional.scaled_dot_product_attention(fq, fc.tensor(k), fc.tensor(v),
                                                       fc.tensor(mask))
    ty = torch.nn.functional.scaled_dot_product_attention(tq, torch.tensor(k),
                                                          torch.tensor(v), torch.tensor(mask))
    assert not fy.detach().numpy()[1, 2].any()
    _close(fy.detach().numpy(), ty.detach().numpy())
    fy.sum().backward()
    ty.sum().backward()
    _close(fq.grad.numpy(), tq.grad.numpy())


def test_sdpa_dropout_and_errors(rng):
    q, k, v = (fc.tensor(_randn(rng, 2, 8, 4)) for _ in range(3))
    F = fc.nn.functional
    fc.manual_seed(3)
    a = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5).numpy()
    fc.manual_seed(3)
    b = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, F.scaled_dot_product_attention(q, k, v).numpy())
    with pytest.raises(RuntimeError, match="Explicit attn_mask should not be set"):
        F.scaled_dot_product_attention(q, k, v, fc.ones(8, 8), is_causal=True)
    with pytest.raises(RuntimeError, match="do not match"):
        F.scaled_dot_product_attention(q, fc.randn(2, 8, 3), v)


# ------------------------------------------------------------------------ MultiheadAttention

def _pair(*args, **kw):
    f, t = fc.nn.MultiheadAttention(*args, **kw), torch.nn.MultiheadAttention(*args, **kw)
    t.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in f.state_dict().items()})
    assert repr(f) == repr(t)
    f.eval()
    t.eval()
    return f, t


def _mha_case(rng, f, t, q, k, v, *, fwd_kw=None, masks=None):
    """Forward both with the same inputs and masks; compare output, weights and every
    gradient (inputs and parameters) of a random projection of both outputs."""
    fwd_kw, masks = fwd_kw or {}, masks or {}
    fin = [fc.tensor(a, requires_grad=True) for a in (q, k, v)]
    tin = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
    fy, fw = f(*fin, **{n: fc.tensor(m) for n, m in masks.items()}, **fwd_kw)
    ty, tw = t(*tin, **{n: torch.tensor(m) for n, m in masks.items()}, **fwd_kw)
    _close(fy.detach().numpy(), ty.detach().numpy())
    dy = _randn(rng, *ty.shape)
    floss, tloss = (fy * fc.tensor(dy)).sum(), (ty * torch.tensor(dy)).sum()
    if tw is None:
        assert fw is None
    else:
        assert tuple(fw.shape) == tuple(tw.shape)
        _close(fw.detach().numpy(), tw.detach().numpy())
        dw = _randn(rng, *tw.shape)
        floss = floss + (fw * fc.tensor(dw)).sum()
        tloss = tloss + (tw * torch.tensor(dw)).sum()
    floss.backward()
    tloss.backward()
    for a, b in zip(fin, tin):
        _close(a.grad.numpy(), b.grad.numpy())
    tparams = dict(t.named_parameters())
    fparams = dict(f.named_parameters())
    assert list(fparams) == list(tparams)
    for name, p in fparams.items():
        _close(p.grad.numpy(), tparams[name].grad.numpy(), atol=1e-4)
    return fy, fw


@pytest.mark.parametrize("batch_first", [False, True])
def test_mha_self_and_cross_attention(rng, batch_first):
    f, t = _pair(8, 2, batch_first=batch_first)
    N, L, S = 3, 4, 5
    q_shape = (N, L, 8) if batch_first else (L, N, 8)
    kv_shape = (N, S, 8) if batch_first else (S, N, 8)
    x = _randn(rng, *q_shape)
    y, w = _mha_case(rng, f, t, x, x, x)
    assert tuple(y.shape) == q_shape and tuple(w.shape) == (N, L, L)
    _mha_case(rng, f, t, x, _randn(rng, *kv_shape), _randn(rng, *kv_shape),
              fwd_kw={"average_attn_weights": False})


def test_mha_unbatched(rng):
    f, t = _pair(6, 3, batch_first=True)
    y, w = _mha_case(rng, f, t, _randn(rng, 4, 6), _randn(rng, 5, 6), _randn(rng, 5, 6))
    assert tuple(y.shape) == (4, 6) and tuple(w.shape) == (4, 5)
    mask = rng.random((3, 4, 5)) > 0.7
    mask[..., 0] = False
    _mha_case(rng, f, t, _randn(rng, 4, 6), _randn(rng, 5, 6), _randn(rng, 5, 6),
              masks={"attn_mask": mask, "key_padding_mask": np.array([0, 0, 1, 0, 1], bool)},
              fwd_kw={"average_attn_weights": False})


@pytest.mark.parametrize("need_weights", [True, False])
def test_mha_masks(rng, need_weights):
    f, t = _pair(8, 4)
    N, L, S = 2, 4, 6
    q, k, v = _randn(rng, L, N, 8), _randn(rng, S, N, 8), _randn(rng, S, N, 8)
    kpm = np.zeros((N, S), bool)
    kpm[0, 4:] = kpm[1, 1] = True
    bool2d = rng.random((L, S)) > 0.6
    bool2d[:, 0] = False
    kw = {"need_weights": need_weights}
    _mha_case(rng, f, t, q, k, v, fwd_kw=kw, masks={"key_padding_mask": kpm})
    _mha_case(rng, f, t, q, k, v, fwd_kw=kw, masks={"attn_mask": bool2d})
    float_kpm = np.where(kpm, -1e4, 0.0).astype(np.float32)
    _mha_case(rng, f, t, q, k, v, fwd_kw=kw,
              masks={"attn_mask": _randn(rng, N * 4, L, S), "key_padding_mask": float_kpm})
    _mha_case(rng, f, t, q, k, v, fwd_kw=kw,
              masks={"attn_mask": _randn(rng, L, S), "key_padding_mask": float_kpm})
    bool3d = rng.random((N * 4, L, S)) > 0.7
    bool3d[..., 0] = False
    _mha_case(rng, f, t, q, k, v, fwd_kw=kw,
              masks={"attn_mask": bool3d, "key_padding_mask": kpm})
    causal = np.triu(np.ones((L, L), bool), 1)
    x = _randn(rng, L, N, 8)
    _mha_case(rng, f, t, x, x, x, fwd_kw={**kw, "is_causal": True},
              masks={"attn_mask": causal})


def test_mha_kdim_vdim_no_bias_and_bias_kv(rng):
    f, t = _pair(8, 2, kdim=5, vdim=3, batch_first=True)
    assert tuple(f.q_proj_weight.shape) == (8, 8) and tuple(f.v_proj_weight.shape) == (8, 3)
    assert f.in_proj_weight is None
    _mha_case(rng, f, t, _randn(rng, 2, 4, 8), _randn(rng, 2, 6, 5), _randn(rng, 2, 6, 3))
    f, t = _pair(6, 2, bias=False)
    assert f.in_proj_bias is None and f.out_proj.bias is None
    _mha_case(rng, f, t, *(_randn(rng, 3, 2, 6) for _ in range(3)))
    f, t = _pair(6, 2, add_bias_kv=True, add_zero_attn=True)
    kpm = np.zeros((2, 4), bool)
    kpm[1, 2] = True
    _mha_case(rng, f, t, _randn(rng, 3, 2, 6), _randn(rng, 4, 2, 6), _randn(rng, 4, 2, 6),
              masks={"key_padding_mask": kpm, "attn_mask": rng.random((3, 4)) > 0.7})


def test_mha_init_and_dropout(rng):
    f = fc.nn.MultiheadAttention(16, 4, dropout=0.5)
    w = f.in_proj_weight.detach().numpy()
    bound = np.sqrt(6 / (16 + 48))  # xavier_uniform_ on (3E, E)
    assert 0.8 * bound < np.abs(w).max() <= np.float32(bound)
    assert not f.in_proj_bias.detach().numpy().any() and not f.out_proj.bias.detach().numpy().any()
    x = fc.tensor(_randn(rng, 5, 2, 16))
    with fc.no_grad():
        for need_weights in (True, False):
            fc.manual_seed(7)
            a = f(x, x, x, need_weights=need_weights)[0].numpy()
            fc.manual_seed(7)
            np.testing.assert_array_equal(a, f(x, x, x, need_weights=need_weights)[0].numpy())
            f.eval()
            c = f(x, x, x, need_weights=need_weights)[0].numpy()
            assert not np.allclose(a, c)
            np.testing.assert_array_equal(c, f(x, x, x, need_weights=need_weights)[0].numpy())
            f.train()


def test_mha_errors():
    with pytest.raises(AssertionError, match="embed_dim must be divisible by num_heads"):
        fc.nn.MultiheadAttention(10, 3)
    with pytest.raises(ValueError, match="must be greater than 0"):
        fc.nn.MultiheadAttention(0, 1)
    f = fc.nn.MultiheadAttention(4, 2)
    x = fc.randn(3, 2, 4)
    with pytest.raises(RuntimeError, match="The shape of the 2D attn_mask is"):
        f(x, x, x, attn_mask=fc.zeros(3, 4))
    with pytest.raises(RuntimeError, match="The shape of the 3D attn_mask is"):
        f(x, x, x, attn_mask=fc.zeros(2, 3, 3))
    with pytest.raises(AssertionError, match="expecting key_padding_mask shape"):
        f(x, x, x, key_padding_mask=fc.zeros(3, 3))
    with pytest.raises(AssertionError, match="expected `key` and `value` to be 3-D"):
        f(x, fc.randn(3, 4), x)
    with pytest.raises(RuntimeError, match="Need attn_mask"):
        f(x, x, x, is_causal=True)
    with pytest.raises(AssertionError, match="only bool and floating types"):
        f(x, x, x, attn_mask=fc.zeros(3, 3, dtype=fc.int64))


# ------------------------------------------------------------------- Transformer encoder


@pytest.mark.parametrize("norm_first,activation", [(False, "relu"), (True, "gelu")])
def test_transformer_encoder_matches_torch(rng, norm_first, activation):
    kw = dict(dim_feedforward=12, dropout=0.1, activation=activation, batch_first=True,
              norm_first=norm_first)
    f = fc.nn.TransformerEncoder(fc.nn.TransformerEncoderLayer(8, 2, **kw), 2,
                                 norm=fc.nn.LayerNorm(8))
    t = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(8, 2, **kw), 2,
                                    norm=torch.nn.LayerNorm(8), enable_nested_tensor=False)
    t.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in f.state_dict().items()})
    f.eval()
    t.eval()
    x = _randn(rng, 2, 5, 8)
    kpm = np.zeros((2, 5), bool)
    kpm[1, 3:] = True
    mask = np.triu(np.ones((5, 5), bool), 1)
    fx, tx = fc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    fy = f(fx, mask=fc.tensor(mask), src_key_padding_mask=fc.tensor(kpm))
    ty = t(tx, mask=torch.tensor(mask), src_key_padding_mask=torch.tensor(kpm))
    _close(fy.detach().numpy(), ty.detach().numpy())
    dy = _randn(rng, 2, 5, 8)
    fy.backward(fc.tensor(dy))
    ty.backward(torch.tensor(dy))
    _close(fx.grad.numpy(), tx.grad.numpy())
    tparams = dict(t.named_parameters())
    for name, p in f.named_parameters():
        _close(p.grad.numpy(), tparams[name].grad.numpy(), atol=1e-4)
    assert [n for n, _ in f.named_modules()] == [n for n, _ in t.named_modules()]
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        fc.nn.TransformerEncoderLayer(8, 2, activation="tanh")
