"""nn.TransformerDecoderLayer, nn.TransformerDecoder and nn.Transformer against torch, with
torch's weights loaded through its state_dict (so the keys must match): outputs and the
gradients of the inputs and of every parameter, in eval and train mode (dropout 0), post-
and pre-norm, relu / gelu / a callable activation, batch_first, bias=False, unbatched
input, every mask; custom encoder and decoder; generate_square_subsequent_mask; the form
(repr, initialisation); bad arguments."""

from __future__ import annotations

import numpy as np
import pytest

import fastconv as fc

torch = pytest.importorskip("torch")
# torch's own notes (nested-tensor fast path off, mixed bool/float masks) are not ours
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:torch")

RTOL, ATOL = 1e-4, 1e-5


def _close(a, b, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


def _randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _load_torch_weights(f, t):
    state = {k: v.detach().numpy() for k, v in t.state_dict().items()}
    assert list(f.state_dict()) == list(state)
    f.load_state_dict(state)


def _run_both(rng, f, t, inputs, masks=None, train=False):
    """f(*inputs, **masks) and t(...) from the same arrays: outputs, input gradients and
    every parameter's gradient equal."""
    masks = masks or {}
    f.train(train)
    t.train(train)
    fx = [fc.tensor(a, requires_grad=True) for a in inputs]
    tx = [torch.tensor(a, requires_grad=True) for a in inputs]
    fm = {k: v if isinstance(v, bool) or v is None else fc.tensor(v) for k, v in masks.items()}
    tm = {k: v if isinstance(v, bool) or v is None else torch.tensor(v)
          for k, v in masks.items()}
    fy, ty = f(*fx, **fm), t(*tx, **tm)
    _close(fy.detach().numpy(), ty.detach().numpy())
    dy = _randn(rng, *ty.shape)
    fy.backward(fc.tensor(dy))
    ty.backward(torch.tensor(dy))
    for a, b in zip(fx, tx):
        _close(a.grad.numpy(), b.grad.numpy())
    tparams = dict(t.named_parameters())
    assert [n for n, _ in f.named_parameters()] == list(tparams)
    for name, p in f.named_parameters():
        _close(p.grad.numpy(), tparams[name].grad.numpy(), atol=1e-4)


def _padding(N, L, rng):
    """A key padding mask (True = padded) with some padding, never a whole row."""
    kpm = np.zeros((N, L), bool)
    for n in range(1, N):
        kpm[n, int(rng.integers(1, L)):] = True
    return kpm


# ------------------------------------------------------------------------- decoder layer

@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu", "callable"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_decoder_layer_matches_torch(rng, norm_first, activation, batch_first):
    act = {"callable": (fc.nn.functional.silu, torch.nn.functional.silu)}.get(
        activation, (activation, activation))
    kw = dict(dim_feedforward=12, dropout=0.0, batch_first=batch_first, norm_first=norm_first,
              layer_norm_eps=1e-4)
    f = fc.nn.TransformerDecoderLayer(8, 2, activation=act[0], **kw)
    t = torch.nn.TransformerDecoderLayer(8, 2, activation=act[1], **kw)
    assert repr(f) == repr(t)
    _load_torch_weights(f, t)
    N, T, S = 3, 5, 6
    tgt = _randn(rng, N, T, 8) if batch_first else _randn(rng, T, N, 8)
    mem = _randn(rng, N, S, 8) if batch_first else _randn(rng, S, N, 8)
    masks = {"tgt_mask": np.triu(np.ones((T, T), bool), 1),
             "memory_mask": _randn(rng, T, S),  # a float mask: added to the scores
             "tgt_key_padding_mask": _padding(N, T, rng),
             "memory_key_padding_mask": _padding(N, S, rng)}
    for train in (False, True):
        _run_both(rng, f, t, [tgt, mem], masks, train)
    _run_both(rng, f, t, [tgt, mem])  # no masks


def test_decoder_layer_unbatched_bias_free_and_causal_hint(rng):
    kw = dict(dim_feedforward=10, dropout=0.0, bias=False)
    f, t = fc.nn.TransformerDecoderLayer(6, 3, **kw), torch.nn.TransformerDecoderLayer(6, 3, **kw)
    assert repr(f) == repr(t)
    _load_torch_weights(f, t)
    causal = torch.nn.Transformer.generate_square_subsequent_mask(4).numpy()
    _run_both(rng, f, t, [_randn(rng, 4, 6), _randn(rng, 7, 6)],
              {"tgt_mask": causal, "tgt_is_causal": True,
               "memory_key_padding_mask": np.array([False] * 5 + [True] * 2)})
    with pytest.raises(RuntimeError, match="Need attn_mask"):
        f(fc.randn(4, 6), fc.randn(7, 6), tgt_is_causal=True)


# ------------------------------------------------------------------------------- decoder

@pytest.mark.parametrize("with_norm", [False, True])
def test_decoder_stack_matches_torch(rng, with_norm):
    kw = dict(dim_feedforward=12, dropout=0.0, batch_first=True)
    f = fc.nn.TransformerDecoder(fc.nn.TransformerDecoderLayer(8, 4, **kw), 3,
                                 norm=fc.nn.LayerNorm(8) if with_norm else None)
    t = torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(8, 4, **kw), 3,
                                    norm=torch.nn.LayerNorm(8) if with_norm else None)
    assert repr(f) == repr(t)
    assert [n for n, _ in f.named_modules()] == [n for n, _ in t.named_modules()]
    _load_torch_weights(f, t)
    causal = torch.nn.Transformer.generate_square_subsequent_mask(5).numpy()
    for train in (False, True):
        # tgt_is_causal left None: torch detects the causal mask; the mask is applied either way
        _run_both(rng, f, t, [_randn(rng, 2, 5, 8), _randn(rng, 2, 4, 8)],
                  {"tgt_mask": causal, "memory_key_padding_mask": _padding(2, 4, rng)}, train)
    # the layers are copies, not one module three times
    assert f.layers[0].linear1.weight is not f.layers[1].linear1.weight


# --------------------------------------------------------------------------- Transformer

@pytest.mark.parametrize("batch_first,norm_first", [(False, False), (True, True),
                                                    (True, False)])
def test_transformer_matches_torch(rng, batch_first, norm_first):
    kw = dict(d_model=8, nhead=2, num_encoder_layers=2, num_decoder_layers=2,
              dim_feedforward=16, dropout=0.0, batch_first=batch_first, norm_first=norm_first)
    f = fc.nn.Transformer(**kw)
    t = torch.nn.Transformer(**kw)
    assert repr(f) == repr(t)
    _load_torch_weights(f, t)
    N, S, T = 3, 6, 5
    src = _randn(rng, N, S, 8) if batch_first else _randn(rng, S, N, 8)
    tgt = _randn(rng, N, T, 8) if batch_first else _randn(rng, T, N, 8)
    src_pad = _padding(N, S, rng)
    masks = {"src_mask": _randn(rng, S, S) * 0.5,
             "tgt_mask": fc.nn.Transformer.generate_square_subsequent_mask(T).numpy(),
             "memory_mask": np.zeros((T, S), bool),
             "src_key_padding_mask": src_pad, "tgt_key_padding_mask": _padding(N, T, rng),
             "memory_key_padding_mask": src_pad, "tgt_is_causal": True}
    for train in (False, True):
        _run_both(rng, f, t, [src, tgt], masks, train)
    _run_both(rng, f, t, [src[:, 0] if not batch_first else src[0],
                          tgt[:, 0] if not batch_first else tgt[0]])  # unbatched


def test_transformer_inference_without_grad_matches_torch(rng):
    """torch.no_grad in eval mode sends torch's encoder layers down its fused fast path:
    the same numbers."""
    kw = dict(d_model=8, nhead=2, num_encoder_layers=2, num_decoder_layers=1,
              dim_feedforward=16, batch_first=True)
    f, t = fc.nn.Transformer(**kw), torch.nn.Transformer(**kw)
    _load_torch_weights(f, t)
    f.eval()
    t.eval()
    src, tgt = _randn(rng, 2, 6, 8), _randn(rng, 2, 4, 8)
    mask = fc.nn.Transformer.generate_square_subsequent_mask(4)
    with fc.no_grad():
        got = f(fc.tensor(src), fc.tensor(tgt), tgt_mask=mask)
    with torch.no_grad():
        want = t(torch.tensor(src), torch.tensor(tgt),
                 tgt_mask=torch.nn.Transformer.generate_square_subsequent_mask(4))
    _close(got.numpy(), want.numpy())


def test_custom_encoder_and_decoder(rng):
    f_enc = fc.nn.TransformerEncoder(fc.nn.TransformerEncoderLayer(8, 2, 16, 0.0), 1)
    t_enc = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(8, 2, 16, 0.0), 1,
                                        enable_nested_tensor=False)
    f_dec = fc.nn.TransformerDecoder(fc.nn.TransformerDecoderLayer(8, 2, 16, 0.0), 2)
    t_dec = torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(8, 2, 16, 0.0), 2)
    f = fc.nn.Transformer(8, 2, dropout=0.0, custom_encoder=f_enc, custom_decoder=f_dec)
    t = torch.nn.Transformer(8, 2, dropout=0.0, custom_encoder=t_enc, custom_decoder=t_dec)
    assert f.encoder is f_enc and f.decoder is f_dec
    assert repr(f) == repr(t)
    _load_torch_weights(f, t)
    _run_both(rng, f, t, [_randn(rng, 6, 2, 8), _randn(rng, 3, 2, 8)])


def test_generate_square_subsequent_mask():
    got = fc.nn.Transformer.generate_square_subsequent_mask(5)
    want = torch.nn.Transformer.generate_square_subsequent_mask(5)
    assert got.dtype == np.float32 and tuple(got.shape) == (5, 5)
    np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_initialisation_and_defaults():
    f, t = fc.nn.Transformer(), torch.nn.Transformer()
    assert (f.d_model, f.nhead, f.batch_first) == (t.d_model, t.nhead, t.batch_first)
    assert {k: tuple(v.shape) for k, v in f.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in t.state_dict().items()}
    assert len(f.encoder.layers) == 6 and len(f.decoder.layers) == 6
    assert f.encoder.layers[0].dropout.p == 0.1
    # xavier_uniform for every matrix: U(-a, a), a = sqrt(6 / (fan_in + fan_out))
    w = f.decoder.layers[0].linear1.weight.detach().numpy()  # (2048, 512)
    bound = np.sqrt(6 / (512 + 2048))
    # the weights are float32: a draw next to the bound rounds to float32(bound), just above it
    assert 0.95 * bound < np.abs(w).max() <= np.float32(bound)
    assert abs(float(w.std()) - bound / np.sqrt(3)) < 0.01 * bound
    sd = f.state_dict()
    np.testing.assert_array_equal(sd["decoder.norm.weight"], np.ones(512, np.float32))
    np.testing.assert_array_equal(sd["encoder.layers.0.self_attn.in_proj_bias"],
                                  np.zeros(1536, np.float32))


def test_dropout_runs_in_training_only(rng):
    f = fc.nn.Transformer(8, 2, 1, 1, 16, dropout=0.5)
    src, tgt = fc.tensor(_randn(rng, 6, 2, 8)), fc.tensor(_randn(rng, 5, 2, 8))
    f.eval()
    a, b = f(src, tgt).detach(), f(src, tgt).detach()
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    f.train()
    c = f(src, tgt)
    assert not np.allclose(a.numpy(), c.detach().numpy())
    c.sum().backward()
    assert all(p.grad is not None for p in f.parameters())


def test_bad_arguments(rng):
    f = fc.nn.Transformer(8, 2, 1, 1, 16, dropout=0.0)
    with pytest.raises(RuntimeError, match="batch number of src and tgt"):
        f(fc.randn(6, 2, 8), fc.randn(5, 3, 8))
    with pytest.raises(RuntimeError, match="feature number of src and tgt"):
        f(fc.randn(6, 2, 8), fc.randn(5, 2, 6))
    with pytest.raises(RuntimeError, match="Need attn_mask"):
        f(fc.randn(6, 2, 8), fc.randn(5, 2, 8), tgt_is_causal=True)
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        fc.nn.TransformerDecoderLayer(8, 2, activation="tanh")
    with pytest.raises(AssertionError, match="divisible by num_heads"):
        fc.nn.Transformer(8, 3)
    with pytest.raises(RuntimeError, match="2D attn_mask"):
        f(fc.randn(6, 2, 8), fc.randn(5, 2, 8), tgt_mask=fc.zeros(4, 4))
