"""nn.utils.rnn (PackedSequence, pad / pack / unpad / unpack) and the recurrent layers on
packed input, against torch: the packed data, batch sizes and indices, the padded results
and lengths, the gradients through packing and padding; RNN (tanh, ReLU), LSTM and GRU with
copied weights on packed batches (one or two layers, one or two directions, batch_first
either way, sorted or not, with and without initial states): outputs, final states and the
gradients of the input, the initial states and every weight; and the errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import fastconv as fc
from fastconv.nn.utils import rnn as frnn

torch = pytest.importorskip("torch")
trnn = torch.nn.utils.rnn


def _np(t):
    return np.asarray(t.detach().numpy())


def _close(a, b, what, rtol=1e-4, atol=1e-5):
    np.testing.assert_allclose(_np(a), _np(b), rtol=rtol, atol=atol, err_msg=what)


def _lengths(rng, batch, steps, sorted_):
    lengths = rng.integers(1, steps + 1, size=batch)
    lengths[rng.integers(batch)] = steps  # the longest fills the padded length
    return sorted(lengths.tolist(), reverse=True) if sorted_ else lengths.tolist()


def _same_packed(fp, tp, data=True):
    """batch_sizes and the indices as torch's; data too where the sort agrees (torch's sort
    may order equal lengths either way)."""
    np.testing.assert_array_equal(_np(fp.batch_sizes), _np(tp.batch_sizes))
    assert fp.batch_sizes.dtype == np.int64 and fp.batch_sizes.device == "cpu"
    assert (fp.sorted_indices is None) == (tp.sorted_indices is None)
    same_order = fp.sorted_indices is None or np.array_equal(_np(fp.sorted_indices),
                                                             _np(tp.sorted_indices))
    if fp.sorted_indices is not None:
        np.testing.assert_array_equal(_np(frnn.invert_permutation(fp.sorted_indices)),
                                      _np(fp.unsorted_indices))
    if data and same_order:
        _close(fp.data, tp.data, "packed data", rtol=0, atol=0)
    return same_order


# ----------------------------------------------------------------------------- pad / pack

@pytest.mark.parametrize("batch_first,padding_side", itertools.product((False, True),
                                                                       ("right", "left")))
def test_pad_sequence_matches_torch(rng, batch_first, padding_side):
    lens = [3, 5, 1, 5]
    seqs = [rng.standard_normal((n, 2, 3)).astype(np.float32) for n in lens]
    fs = [fc.tensor(s, requires_grad=True) for s in seqs]
    ts = [torch.tensor(s, requires_grad=True) for s in seqs]
    fy = frnn.pad_sequence(fs, batch_first, -1.5, padding_side)
    ty = trnn.pad_sequence(ts, batch_first, -1.5, padding_side)
    assert fy.shape == tuple(ty.shape)
    _close(fy, ty, "padded", rtol=0, atol=0)
    w = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
    (fy * fc.tensor(w)).sum().backward()
    (ty * torch.tensor(w)).sum().backward()
    for i, (a, b) in enumerate(zip(fs, ts)):
        _close(a.grad, b.grad, f"gradient of sequence {i}")
    # 1-D sequences of integers (labels), a single sequence, and a Tensor of sequences
    labels = [rng.integers(0, 9, size=n) for n in lens]
    fl = frnn.pad_sequence([fc.tensor(v) for v in labels], batch_first, 7, padding_side)
    tl = trnn.pad_sequence([torch.tensor(v) for v in labels], batch_first, 7, padding_side)
    np.testing.assert_array_equal(_np(fl), _np(tl))
    assert fl.dtype == np.int64
    one = rng.standard_normal((4, 3)).astype(np.float32)
    _close(frnn.pad_sequence([fc.tensor(one)], batch_first),
           trnn.pad_sequence([torch.tensor(one)], batch_first), "one sequence")
    _close(frnn.pad_sequence(fc.tensor(one)), trnn.pad_sequence(torch.tensor(one)),
           "a Tensor's rows as sequences")


@pytest.mark.parametrize("batch_first,enforce_sorted", itertools.product((False, True),
                                                                         (True, False)))
def test_pack_and_pad_match_torch(rng, batch_first, enforce_sorted):
    steps, batch = 6, 5
    lengths = _lengths(rng, batch, steps, enforce_sorted)
    shape = (batch, steps, 3) if batch_first else (steps, batch, 3)
    x = rng.standard_normal(shape).astype(np.float32)
    fx, tx = fc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    # lengths as a list or as a Tensor
    flen = lengths if enforce_sorted else fc.tensor(np.array(lengths))
    fp = frnn.pack_padded_sequence(fx, flen, batch_first, enforce_sorted)
    tp = trnn.pack_padded_sequence(tx, lengths, batch_first, enforce_sorted)
    assert isinstance(fp, frnn.PackedSequence) and isinstance(fp, tuple)
    _same_packed(fp, tp)
    for total in (None, steps + 2):
        fy, fl = frnn.pad_packed_sequence(fp, batch_first, 9.0, total)
        ty, tl = trnn.pad_packed_sequence(tp, batch_first, 9.0, total)
        assert fy.shape == tuple(ty.shape)
        _close(fy, ty, "padded again", rtol=0, atol=0)
        np.testing.assert_array_equal(_np(fl), _np(tl))
        assert fl.dtype == np.int64 and fl.device == "cpu"
    # gradients through pack and pad: zero at the padded positions of the input
    w = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
    (fy * fc.tensor(w)).sum().backward()
    (ty * torch.tensor(w)).sum().backward()
    _close(fx.grad, tx.grad, "gradient of the padded input", rtol=0, atol=0)
    wd = rng.standard_normal(tuple(tp.data.shape)).astype(np.float32)
    fx.grad, tx.grad = None, None
    fp = frnn.pack_padded_sequence(fx, lengths, batch_first, enforce_sorted)
    tp = trnn.pack_padded_sequence(tx, lengths, batch_first, enforce_sorted)
    if _same_packed(fp, tp, data=False):
        (fp.data * fc.tensor(wd)).sum().backward()
        (tp.data * torch.tensor(wd)).sum().backward()
        _close(fx.grad, tx.grad, "gradient of the input through pack", rtol=0, atol=0)


def test_pack_sequence_unpack_and_unpad_match_torch(rng):
    lens = [4, 2, 4, 1, 3]
    seqs = [rng.standard_normal((n, 3)).astype(np.float32) for n in lens]
    fs = [fc.tensor(s, requires_grad=True) for s in seqs]
    ts = [torch.tensor(s, requires_grad=True) for s in seqs]
    fp = frnn.pack_sequence(fs, enforce_sorted=False)
    tp = trnn.pack_sequence(ts, enforce_sorted=False)
    _same_packed(fp, tp)
    sorted_seqs = sorted(seqs, key=len, reverse=True)
    fq = frnn.pack_sequence([fc.tensor(s) for s in sorted_seqs])
    _same_packed(fq, trnn.pack_sequence([torch.tensor(s) for s in sorted_seqs]))
    fu, tu = frnn.unpack_sequence(fp), trnn.unpack_sequence(tp)
    assert len(fu) == len(tu) == len(seqs)
    for i, (a, b) in enumerate(zip(fu, tu)):
        _close(a, b, f"unpacked sequence {i}", rtol=0, atol=0)
    sum(((a * float(i + 1)).sum() for i, a in enumerate(fu)), fc.zeros(())).backward()
    sum(((b * float(i + 1)).sum() for i, b in enumerate(tu)), torch.zeros(())).backward()
    for i, (a, b) in enumerate(zip(fs, ts)):
        _close(a.grad, b.grad, f"gradient of sequence {i} through pack and unpack")
    for batch_first in (False, True):
        padded = trnn.pad_sequence([torch.tensor(s) for s in seqs], batch_first)
        fpad = fc.tensor(padded.numpy())
        ups = frnn.unpad_sequence(fpad, fc.tensor(np.array(lens)), batch_first)
        tups = trnn.unpad_sequence(padded.clone(), torch.tensor(lens), batch_first)
        assert fpad.shape == tuple(padded.shape)  # the input is left as it was
        for i, (a, b) in enumerate(zip(ups, tups)):
            _close(a, b, f"unpadded sequence {i}", rtol=0, atol=0)


def test_packed_sequence_class():
    x = fc.randn(5, 2)
    p = frnn.PackedSequence(x, fc.tensor([3, 2]))
    assert p._fields == ("data", "batch_sizes", "sorted_indices", "unsorted_indices")
    data, batch_sizes, sorted_indices, unsorted_indices = p
    assert data is x and sorted_indices is None and unsorted_indices is None
    assert repr(p).startswith("PackedSequence(data=tensor(")
    assert p.to("cpu") is p and p.float() is p and p.cpu() is p and not p.is_cuda
    q = frnn.PackedSequence(x, [3, 2], fc.tensor([1, 0, 2]))  # list batch_sizes accepted
    np.testing.assert_array_equal(_np(q.unsorted_indices), [1, 0, 2])
    assert q.batch_sizes.dtype == np.int64
    r = q.long()
    assert r is not q and r.data.dtype == np.int64 and r.sorted_indices is q.sorted_indices
    s = frnn.PackedSequence((x, fc.tensor([3, 2])))  # torch's (data, batch_sizes) form
    assert s.data is x
    assert frnn.invert_permutation(None) is None
    perm = np.array([3, 0, 2, 1])
    np.testing.assert_array_equal(_np(frnn.invert_permutation(fc.tensor(perm))),
                                  _np(trnn.invert_permutation(torch.tensor(perm))))


# ----------------------------------------------------------------------------- RNN layers

MODES = {"rnn_tanh": ("RNN", {}), "rnn_relu": ("RNN", {"nonlinearity": "relu"}),
         "lstm": ("LSTM", {}), "gru": ("GRU", {})}
H_IN, H = 3, 4


def _pair(mode, **kw):
    name, extra = MODES[mode]
    f = getattr(fc.nn, name)(H_IN, H, **extra, **kw)
    t = getattr(torch.nn, name)(H_IN, H, **extra, **kw)
    t.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in f.state_dict().items()})
    return f, t


@pytest.mark.parametrize("mode,num_layers,bidirectional,batch_first,enforce_sorted",
                         list(itertools.product(MODES, (1, 2), (False, True), (False, True),
                                                (True, False))))
def test_packed_rnn_matches_torch(rng, mode, num_layers, bidirectional, batch_first,
                                  enforce_sorted):
    f, t = _pair(mode, num_layers=num_layers, bidirectional=bidirectional,
                 batch_first=batch_first)
    steps, batch = 5, 4
    lengths = _lengths(rng, batch, steps, enforce_sorted)
    x = rng.standard_normal((batch, steps, H_IN) if batch_first else (steps, batch, H_IN))
    x = x.astype(np.float32)
    fx, tx = fc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    lstm = mode == "lstm"
    with_states = bool(rng.integers(2)) or not enforce_sorted  # unsorted: hx is permuted
    shape = (num_layers * (2 if bidirectional else 1), batch, H)
    states = [rng.standard_normal(shape).astype(np.float32) for _ in range(2 if lstm else 1)]
    fs = [fc.tensor(s, requires_grad=True) for s in states] if with_states else []
    ts = [torch.tensor(s, requires_grad=True) for s in states] if with_states else []
    fh = (tuple(fs) if lstm else fs[0]) if with_states else None
    th = (tuple(ts) if lstm else ts[0]) if with_states else None
    fp = frnn.pack_padded_sequence(fx, lengths, batch_first, enforce_sorted)
    tp = trnn.pack_padded_sequence(tx, lengths, batch_first, enforce_sorted)
    fout, fstate = f(fp, fh)
    tout, tstate = t(tp, th)
    assert isinstance(fout, frnn.PackedSequence)
    assert fout.sorted_indices is fp.sorted_indices and fout.batch_sizes is fp.batch_sizes
    if _same_packed(fout, tout, data=False):
        _close(fout.data, tout.data, "packed output", rtol=1e-5)
    fy, fl = frnn.pad_packed_sequence(fout, batch_first)
    ty, tl = trnn.pad_packed_sequence(tout, batch_first)
    np.testing.assert_array_equal(_np(fl), lengths)
    fres = [fy, *(fstate if lstm else (fstate,))]
    tres = [ty, *(tstate if lstm else (tstate,))]
    floss, tloss = 0, 0
    for i, (a, b) in enumerate(zip(fres, tres)):
        assert a.shape == tuple(b.shape), i
        _close(a, b, ["padded output", "h_n", "c_n"][i], rtol=1e-5)
        w = rng.standard_normal(tuple(b.shape)).astype(np.float32)
        floss = floss + (a * fc.tensor(w)).sum()
        tloss = tloss + (b * torch.tensor(w)).sum()
    floss.backward()
    tloss.backward()
    _close(fx.grad, tx.grad, "gradient of the input")
    for i, (a, b) in enumerate(zip(fs, ts)):
        _close(a.grad, b.grad, f"gradient of hx[{i}]")
    tparams = dict(t.named_parameters())
    for name, p in f.named_parameters():
        _close(p.grad, tparams[name].grad, f"gradient of {name}")


@pytest.mark.parametrize("mode", list(MODES))
def test_packed_rnn_equals_each_sequence_alone(rng, mode):
    """The packed batch gives each sequence what running it alone (unbatched) gives."""
    f, _ = _pair(mode, num_layers=2, bidirectional=True)
    lens = [2, 5, 3]
    seqs = [fc.tensor(rng.standard_normal((n, H_IN)).astype(np.float32)) for n in lens]
    out, state = f(frnn.pack_sequence(seqs, enforce_sorted=False))
    h_n = state[0] if mode == "lstm" else state
    for i, (seq, y) in enumerate(zip(seqs, frnn.unpack_sequence(out))):
        y_alone, state_alone = f(seq)
        _close(y, y_alone, f"output of sequence {i}", rtol=1e-5)
        _close(h_n[:, i], state_alone[0] if mode == "lstm" else state_alone, f"h_n of {i}",
               rtol=1e-5)


def test_packed_rnn_dropout_and_eval(rng):
    f = fc.nn.GRU(H_IN, H, num_layers=2, dropout=0.5)
    p = frnn.pack_sequence([fc.randn(4, H_IN), fc.randn(2, H_IN)])
    f.eval()
    a, b = f(p)[0].data, f(p)[0].data
    _close(a, b, "evaluation is deterministic", rtol=0, atol=0)
    f.train()
    fc.manual_seed(0)
    c = f(p)[0].data
    fc.manual_seed(0)
    _close(c, f(p)[0].data, "dropout follows the seed", rtol=0, atol=0)


# ----------------------------------------------------------------------------- errors

def test_errors():
    x = fc.randn(5, 3, 2)
    with pytest.raises(RuntimeError, match="must be sorted in decreasing order when "
                                           "`enforce_sorted` is True"):
        frnn.pack_padded_sequence(x, [3, 4, 2])
    with pytest.raises(RuntimeError, match="has to be greater than 0"):
        frnn.pack_padded_sequence(x, [4, 3, 0])
    with pytest.raises(RuntimeError, match="has to be greater than 0"):
        frnn.pack_padded_sequence(x, [4, 0, 3], enforce_sorted=False)
    with pytest.raises(RuntimeError, match=r"length \(6\) is greater than the input's time "
                                           r"dimension \(dim 0, of size 5\)"):
        frnn.pack_padded_sequence(x, [6, 3, 2])
    with pytest.raises(RuntimeError, match=r"dim 1, of size 3"):
        frnn.pack_padded_sequence(fc.randn(2, 3, 1), [4, 1], batch_first=True,
                                  enforce_sorted=False)
    with pytest.raises(RuntimeError, match=r"Expected `len\(lengths\)` to be equal to "
                                           r"batch_size, but got 2 \(batch_size=3\)"):
        frnn.pack_padded_sequence(x, [4, 3])
    with pytest.raises(RuntimeError, match="should be a 1D CPU int64 tensor, but got 2D"):
        frnn.pack_padded_sequence(x, fc.tensor([[4, 3, 1]]))
    with pytest.raises(RuntimeError, match="Cannot pack empty tensors"):
        frnn.pack_padded_sequence(fc.randn(0, 3, 2), [1, 1, 1])
    with pytest.raises(IndexError, match="at least 2 dims"):
        frnn.pack_padded_sequence(fc.randn(5), [1])
    with pytest.raises(TypeError, match="lengths must be a 1-D list"):
        frnn.pack_padded_sequence(x, "abc")
    with pytest.raises(RuntimeError, match="received an empty list of sequences"):
        frnn.pad_sequence([])
    with pytest.raises(RuntimeError, match="received an empty list of sequences"):
        frnn.pack_sequence([])
    with pytest.raises(RuntimeError, match="Expected iterable for input sequences"):
        frnn.pad_sequence(5)
    with pytest.raises(RuntimeError, match=r"sequence 1 has shape \(2, 5\), whose trailing "
                                           r"dims do not match \(4,\)"):
        frnn.pad_sequence([fc.randn(3, 4), fc.randn(2, 5)])
    with pytest.raises(RuntimeError, match="Expected padding_side to be one of left or "
                                           "right, but got middle"):
        frnn.pad_sequence([fc.randn(3, 4)], padding_side="middle")
    with pytest.raises(RuntimeError, match="sequence 0 is 0-d"):
        frnn.pad_sequence([fc.tensor(3.0)])
    with pytest.raises(RuntimeError, match="must be sorted in decreasing order"):
        frnn.pack_sequence([fc.randn(3), fc.randn(4)])
    p = frnn.pack_sequence([fc.randn(3, 1), fc.randn(2, 1)])
    with pytest.raises(ValueError, match="Expected total_length to be at least the length of "
                                         "the longest sequence in input, but got "
                                         "total_length=2 and max sequence length being 3"):
        frnn.pad_packed_sequence(p, total_length=2)
    with pytest.raises(TypeError, match="total_length must be an int"):
        frnn.pad_packed_sequence(p, total_length=3.5)
    with pytest.raises(TypeError, match="expected a PackedSequence, got Tensor"):
        frnn.pad_packed_sequence(x)
    with pytest.raises(RuntimeError, match=r"batch_sizes add up to 5"):
        frnn.pad_packed_sequence(frnn.PackedSequence(fc.randn(4, 1), [3, 2]))
    with pytest.raises(RuntimeError, match="non-increasing"):
        frnn.pad_packed_sequence(frnn.PackedSequence(fc.randn(5, 1), [2, 3]))
    with pytest.raises(ValueError, match="got 2 lengths for a batch of 3"):
        frnn.unpad_sequence(fc.randn(4, 3, 2), [4, 2])
    with pytest.raises(ValueError, match=r"lengths must be in \[0, 4\]"):
        frnn.unpad_sequence(fc.randn(4, 2, 2), [5, 2])
    with pytest.raises(TypeError, match="give data and batch_sizes"):
        frnn.PackedSequence(fc.randn(5, 1))

    lstm = fc.nn.LSTM(1, 2)
    with pytest.raises(RuntimeError, match=r"Expected hidden\[0\] size \(1, 2, 2\), got "
                                           r"\[1, 3, 2\]"):
        lstm(p, (fc.zeros(1, 3, 2), fc.zeros(1, 2, 2)))
    with pytest.raises(RuntimeError, match=r"For PackedSequence \(batched\) input, hx and cx "
                                           r"should also be 3-D but got \(2-D, 2-D\)"):
        lstm(p, (fc.zeros(2, 2), fc.zeros(2, 2)))
    with pytest.raises(RuntimeError, match="input.size\\(-1\\) must be equal to input_size. "
                                           "Expected 2, got 1"):
        fc.nn.GRU(2, 2)(p)
    with pytest.raises(RuntimeError, match="data must be 2-D"):
        fc.nn.GRU(1, 2)(frnn.PackedSequence(fc.randn(5), [3, 2]))
    with pytest.raises(RuntimeError, match="Expected sequence length to be larger than 0"):
        fc.nn.GRU(1, 2)(fc.randn(0, 2, 1))
