"""fastconv.utils.data (torch.utils.data's surface) and the torchvision-style data sets and
per-sample transforms of fastconv.data: collation and batching against torch's DataLoader,
samplers' index streams (statistics, determinism, errors), thread workers, datasets."""

from __future__ import annotations

import collections
import os
import threading

import numpy as np
import pytest
from PIL import Image

import fastconv
from fastconv.data import datasets
from fastconv.data import transforms as T
from fastconv.utils import data as D

torch = pytest.importorskip("torch")
tud = torch.utils.data


def _np(x):
    """A fastconv or torch batch as plain nested Python/NumPy, for comparison."""
    if isinstance(x, fastconv.Tensor):
        return ("T", x.numpy().dtype.name, x.numpy().tolist())
    if isinstance(x, torch.Tensor):
        return ("T", str(x.dtype).replace("torch.", ""), x.numpy().tolist())
    if isinstance(x, dict):
        return {k: _np(v) for k, v in x.items()}
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return (type(x).__name__,) + tuple(_np(v) for v in x)
    if isinstance(x, (list, tuple)):
        return [_np(v) for v in x]
    return x


Point = collections.namedtuple("Point", "x y")


def _samples(rng, n):
    out = []
    for i in range(n):
        out.append({
            "img": rng.integers(0, 255, (3, 4, 2)).astype(np.uint8),
            "label": int(rng.integers(0, 10)),
            "flag": bool(rng.integers(0, 2)),
            "name": f"s{i}",
            "pair": (np.int64(i), rng.standard_normal(2).astype(np.float32)),
            "pt": Point(int(i), [i, i + 1]),
        })
    return out


def _torchify(x):
    if isinstance(x, dict):
        return {k: _torchify(v) for k, v in x.items()}
    return x


@pytest.mark.parametrize("batch_size,drop_last", [(1, False), (4, False), (4, True), (7, False)])
def test_default_collate_and_batching_match_torch(rng, batch_size, drop_last):
    samples = _samples(rng, 10)
    ours = list(D.DataLoader(samples, batch_size=batch_size, drop_last=drop_last))
    theirs = list(tud.DataLoader(samples, batch_size=batch_size, drop_last=drop_last))
    assert len(ours) == len(theirs) == len(D.DataLoader(samples, batch_size=batch_size,
                                                        drop_last=drop_last))
    assert [_np(b) for b in ours] == [_np(b) for b in theirs]


def test_collate_of_numbers_arrays_and_tensors(rng):
    ints = D.default_collate([1, 2, 3])
    assert ints.numpy().dtype == np.int64 and ints.numpy().tolist() == [1, 2, 3]
    assert D.default_collate([True, False]).numpy().dtype == np.bool_
    t = D.default_collate([fastconv.tensor(np.ones((2, 2), np.float32)) for _ in range(3)])
    assert isinstance(t, fastconv.Tensor) and t.shape == (3, 2, 2)
    u8 = D.default_collate([np.zeros((2, 2, 3), np.uint8)] * 2)
    assert u8.numpy().dtype == np.uint8 and u8.shape == (2, 2, 2, 3)
    assert D.default_collate(["a", "b"]) == ["a", "b"]
    with pytest.warns(UserWarning, match="float64 .*float32"):
        f = D.default_collate([1.5, 2.5])
    assert f.numpy().dtype == np.float32 and f.numpy().tolist() == [1.5, 2.5]
    with pytest.raises(RuntimeError, match="equal size"):
        D.default_collate([[1, 2], [1]])
    with pytest.raises(RuntimeError, match="stack expects"):
        D.default_collate([np.zeros(2), np.zeros(3)])
    with pytest.raises(TypeError, match="default_collate: batch must contain"):
        D.default_collate([object(), object()])
    with pytest.raises(TypeError, match="default_collate: batch must contain"):
        D.default_collate([Image.new("RGB", (2, 2))] * 2)
    with pytest.raises(TypeError):
        D.default_collate([np.array(["a"]), np.array(["b"])])


def test_batch_size_none_converts_sample_by_sample(rng):
    samples = [(np.arange(3), 1.0), (np.arange(3) + 1, 2.0)]
    ours = list(D.DataLoader(samples, batch_size=None))
    theirs = list(tud.DataLoader(samples, batch_size=None))
    assert [_np(b) for b in ours] == [_np(b) for b in theirs]


def test_tensor_dataset_and_loader_with_torch_semantics(rng):
    x = rng.standard_normal((11, 3)).astype(np.float32)
    y = rng.integers(0, 5, 11)
    ds = D.TensorDataset(fastconv.tensor(x), fastconv.tensor(y))
    assert len(ds) == 11
    xb, yb = next(iter(D.DataLoader(ds, batch_size=4)))
    np.testing.assert_array_equal(xb.numpy(), x[:4])
    np.testing.assert_array_equal(yb.numpy(), y[:4])
    with pytest.raises(ValueError, match="Size mismatch"):
        D.TensorDataset(fastconv.tensor(x), fastconv.tensor(y[:3]))


@pytest.mark.parametrize("num_workers", [0, 1, 3])
def test_shuffled_epochs_cover_every_sample_once_and_are_reproducible(rng, num_workers):
    n = 23
    ds = D.TensorDataset(fastconv.tensor(np.arange(n)))
    def epoch(loader):
        return np.concatenate([b[0].numpy() for b in loader])
    fastconv.manual_seed(5)
    loader = D.DataLoader(ds, batch_size=4, shuffle=True, num_workers=num_workers)
    e1, e2 = epoch(loader), epoch(loader)
    assert sorted(e1) == list(range(n)) and sorted(e2) == list(range(n))
    assert not np.array_equal(e1, e2)  # a new order every epoch
    fastconv.manual_seed(5)
    loader = D.DataLoader(ds, batch_size=4, shuffle=True, num_workers=num_workers)
    np.testing.assert_array_equal(epoch(loader), e1)
    g = np.random.default_rng(3)
    a = epoch(D.DataLoader(ds, batch_size=5, shuffle=True, generator=g))
    b = epoch(D.DataLoader(ds, batch_size=5, shuffle=True, generator=np.random.default_rng(3)))
    np.testing.assert_array_equal(a, b)


def test_random_sampler_statistics(rng):
    """Uniform permutations: every index equally likely at every position; with replacement
    uniform draws (chi-square at a loose threshold)."""
    n, trials = 6, 3000
    gen = np.random.default_rng(int(rng.integers(1 << 30)))
    counts = np.zeros((n, n))
    sampler = D.RandomSampler(range(n), generator=gen)
    for _ in range(trials):
        order = list(sampler)
        assert sorted(order) == list(range(n))
        counts[np.arange(n), order] += 1
    expected = trials / n
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 25 * 3 + 100  # 25 d.o.f.: mean 25, a very loose bound
    draws = list(D.RandomSampler(range(n), replacement=True, num_samples=6000, generator=gen))
    c = np.bincount(draws, minlength=n)
    assert len(draws) == 6000 and ((c - 1000) ** 2 / 1000).sum() < 40
    longer = list(D.RandomSampler(range(5), num_samples=12, generator=gen))
    assert sorted(longer[:5]) == list(range(5)) and sorted(longer[5:10]) == list(range(5))
    assert len(longer) == 12 and len(set(longer[10:])) == 2


def test_weighted_and_subset_samplers(rng):
    gen = np.random.default_rng(int(rng.integers(1 << 30)))
    w = [0.1, 0.0, 0.6, 0.3]
    draws = list(D.WeightedRandomSampler(w, 20000, generator=gen))
    freq = np.bincount(draws, minlength=4) / 20000
    np.testing.assert_allclose(freq, w, atol=0.015)
    assert freq[1] == 0
    no_repl = list(D.WeightedRandomSampler(w, 3, replacement=False, generator=gen))
    assert sorted(no_repl) == [0, 2, 3]
    with pytest.raises(RuntimeError):
        D.WeightedRandomSampler(w, 4, replacement=False)
    with pytest.raises(ValueError, match="1d sequence"):
        D.WeightedRandomSampler([[1.0, 2.0]], 2)
    with pytest.raises(ValueError, match="num_samples"):
        D.WeightedRandomSampler(w, 0)
    idx = [3, 9, 27, 81]
    got = list(D.SubsetRandomSampler(idx, generator=gen))
    assert sorted(got) == idx
    # the same generator state gives the same stream
    s1 = list(D.SubsetRandomSampler(idx, generator=np.random.default_rng(1)))
    s2 = list(D.SubsetRandomSampler(idx, generator=np.random.default_rng(1)))
    assert s1 == s2


def test_sequential_and_batch_samplers_match_torch():
    for bs, dl in [(3, False), (3, True), (10, False), (1, True)]:
        ours = list(D.BatchSampler(D.SequentialSampler(range(10)), bs, dl))
        theirs = list(tud.BatchSampler(tud.SequentialSampler(range(10)), bs, dl))
        assert ours == theirs
        assert len(D.BatchSampler(range(10), bs, dl)) == len(tud.BatchSampler(range(10), bs, dl))
    with pytest.raises(ValueError, match="batch_size should be a positive integer"):
        D.BatchSampler(range(3), 0, False)
    with pytest.raises(ValueError, match="drop_last should be a boolean"):
        D.BatchSampler(range(3), 2, 1)
    with pytest.raises(TypeError, match="replacement should be a boolean"):
        D.RandomSampler(range(3), replacement=1)
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        D.RandomSampler(range(3), generator=torch.Generator())


def test_loader_argument_errors_match_torch():
    ds = list(range(10))
    cases = [{"sampler": D.SequentialSampler(ds), "shuffle": True},
             {"batch_sampler": D.BatchSampler(ds, 2, False), "batch_size": 3},
             {"batch_sampler": D.BatchSampler(ds, 2, False), "drop_last": True},
             {"batch_size": None, "drop_last": True},
             {"num_workers": -1},
             {"persistent_workers": True},
             {"prefetch_factor": 2}]
    for kw in cases:
        with pytest.raises(ValueError):
            tud.DataLoader(ds, **kw)
        with pytest.raises(ValueError):
            D.DataLoader(ds, **kw)
    with pytest.raises(ValueError, match="threads"):
        D.DataLoader(ds, num_workers=2, multiprocessing_context="spawn")
    with pytest.warns(UserWarning, match="pin_memory=True has no effect"):
        D.DataLoader(ds, pin_memory=True)
    class Stream(D.IterableDataset):
        def __iter__(self):
            return iter(range(3))
    with pytest.raises(ValueError, match="shuffle"):
        D.DataLoader(Stream(), shuffle=True)


def test_loader_rejects_non_integer_sizes_as_torch():
    """batch_size 2.5 / '4' / True is refused with torch's message (not truncated, not a
    comparison error); a bad prefetch_factor or timeout names the argument."""
    ds = list(range(10))
    for bad in [2.5, "4", True, 0, -1]:
        with pytest.raises(ValueError) as theirs:
            tud.DataLoader(ds, batch_size=bad)
        with pytest.raises(ValueError) as ours:
            D.DataLoader(ds, batch_size=bad)
        assert str(ours.value) == str(theirs.value)
        assert "batch_size should be a positive integer value" in str(ours.value)
    assert [b.tolist() for b in D.DataLoader(ds, batch_size=np.int64(4))] == \
        [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert len(D.DataLoader(ds, batch_size=None)) == len(tud.DataLoader(ds, batch_size=None))
    for kw, name in [({"num_workers": 1, "prefetch_factor": -1}, "prefetch_factor"),
                     ({"num_workers": 1, "prefetch_factor": 0}, "prefetch_factor"),
                     ({"num_workers": 1, "prefetch_factor": 2.5}, "prefetch_factor"),
                     ({"timeout": "a"}, "timeout"), ({"timeout": float("nan")}, "timeout"),
                     ({"num_workers": 2.5}, "num_workers")]:
        with pytest.raises(ValueError, match=name):
            D.DataLoader(ds, **kw)


def test_batch_sampler_argument_and_custom_collate(rng):
    ds = [i * 10 for i in range(9)]
    bs = D.BatchSampler(D.SequentialSampler(ds), 4, drop_last=False)
    got = list(D.DataLoader(ds, batch_sampler=bs, collate_fn=lambda b: sum(b)))
    assert got == [60, 220, 80]


class _Stream(D.IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        info = D.get_worker_info()
        if info is None:
            return iter(range(self.n))
        return iter(range(info.id, self.n, info.num_workers))

    def __len__(self):
        return self.n


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
@pytest.mark.parametrize("num_workers", [0, 2, 3])
@pytest.mark.parametrize("drop_last", [False, True])
def test_iterable_dataset_with_workers_matches_torch(num_workers, drop_last):
    ours = [b.numpy().tolist() for b in D.DataLoader(_Stream(20), batch_size=3,
                                                     num_workers=num_workers,
                                                     drop_last=drop_last)]
    theirs = [b.tolist() for b in tud.DataLoader(_TorchStream(20), batch_size=3,
                                                 num_workers=num_workers, drop_last=drop_last)]
    assert ours == theirs


class _TorchStream(tud.IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        info = tud.get_worker_info()
        if info is None:
            return iter(range(self.n))
        return iter(range(info.id, self.n, info.num_workers))


def test_workers_are_threads_with_info_init_fn_and_errors(rng):
    seen = {}
    lock = threading.Lock()

    class Probe(D.Dataset):
        def __len__(self):
            return 12

        def __getitem__(self, i):
            info = D.get_worker_info()
            with lock:
                seen.setdefault(info.id, set()).add(threading.get_ident())
            assert info.dataset is ds and info.num_workers == 3
            return i

    ds = Probe()
    inits = []
    loader = D.DataLoader(ds, batch_size=2, num_workers=3,
                          worker_init_fn=lambda wid: inits.append(wid))
    assert [b.numpy().tolist() for b in loader] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9],
                                                   [10, 11]]
    assert sorted(inits) == [0, 1, 2] and sorted(seen) == [0, 1, 2]
    assert threading.get_ident() not in set().union(*seen.values())
    assert D.get_worker_info() is None

    class Bad(D.Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, i):
            if i == 5:
                raise KeyError("sample 5 is broken")
            return i

    with pytest.raises(KeyError, match="sample 5 is broken") as err:
        list(D.DataLoader(Bad(), batch_size=2, num_workers=2))
    assert any("worker thread" in n for n in getattr(err.value, "__notes__", []))


def test_persistent_workers_keep_their_threads_and_order_holds(rng):
    inits = []
    ds = D.TensorDataset(fastconv.tensor(np.arange(10)))
    loader = D.DataLoader(ds, batch_size=3, num_workers=2, persistent_workers=True,
                          worker_init_fn=inits.append)
    for _ in range(3):
        assert np.concatenate([b[0].numpy() for b in loader]).tolist() == list(range(10))
    it = iter(loader)
    next(it)  # abandon an epoch half-way; the next one is still complete and in order
    assert np.concatenate([b[0].numpy() for b in loader]).tolist() == list(range(10))
    assert sorted(inits) == [0, 1]
    unordered = D.DataLoader(ds, batch_size=1, num_workers=2, in_order=False)
    assert sorted(int(b[0].numpy()[0]) for b in unordered) == list(range(10))


def test_random_augmentation_in_workers_is_reproducible(rng):
    imgs = rng.integers(0, 255, (16, 8, 8, 3)).astype(np.uint8)

    class Aug(D.Dataset):
        tf = T.Compose([T.RandomCrop(6, padding=1), T.RandomHorizontalFlip(), T.ToTensor()])

        def __len__(self):
            return len(imgs)

        def __getitem__(self, i):
            return self.tf(imgs[i])

    def run(workers):
        fastconv.manual_seed(11)
        return np.concatenate([b.numpy() for b in D.DataLoader(Aug(), batch_size=4,
                                                                 num_workers=workers)])

    a, b = run(3), run(3)
    np.testing.assert_array_equal(a, b)
    c, d = run(0), run(0)
    np.testing.assert_array_equal(c, d)
    assert a.shape == (16, 3, 6, 6) and a.dtype == np.float32


def test_datasets_subset_concat_random_split(rng):
    base = list(range(10))
    sub = D.Subset(base, [9, 0, 4])
    assert [sub[i] for i in range(3)] == [9, 0, 4] and len(sub) == 3
    cat = D.ConcatDataset([base, list(range(100, 103))])
    assert len(cat) == 13 and cat[10] == 100 and cat[-1] == 102 and cat[9] == 9
    with pytest.raises(ValueError, match="absolute value"):
        cat[-14]
    with pytest.raises(TypeError, match="IterableDataset"):
        D.ConcatDataset([_Stream(3)])
    class Map(D.Dataset):
        def __init__(self, k):
            self.k = k

        def __len__(self):
            return 2

        def __getitem__(self, i):
            return self.k * 10 + i
    joined = Map(1) + Map(2)
    assert isinstance(joined, D.ConcatDataset) and [joined[i] for i in range(4)] == [10, 11, 20, 21]
    assert list(_Stream(2) + _Stream(3)) == [0, 1, 0, 1, 2]
    a, b = D.random_split(range(10), [7, 3], generator=np.random.default_rng(0))
    assert sorted(list(a) + list(b)) == list(range(10)) and (len(a), len(b)) == (7, 3)
    a2, _b2 = D.random_split(range(10), [7, 3], generator=np.random.default_rng(0))
    assert list(a) == list(a2)
    # fractions: floors, then the remainder round-robin (as torch)
    parts = D.random_split(range(11), [0.5, 0.3, 0.2], generator=np.random.default_rng(1))
    tparts = tud.random_split(range(11), [0.5, 0.3, 0.2])
    assert [len(p) for p in parts] == [len(p) for p in tparts]
    with pytest.raises(ValueError, match="Sum of input lengths"):
        D.random_split(range(10), [5, 4])
    st = D.StackDataset(a=[1, 2], b=["x", "y"])
    assert st[1] == {"a": 2, "b": "y"} and len(st) == 2


# ------------------------------------------------------------------------------------------------
# per-sample transforms (torchvision's semantics)
# ------------------------------------------------------------------------------------------------

def test_to_tensor_normalize_on_pil_and_arrays(rng):
    a = rng.integers(0, 255, (5, 7, 3)).astype(np.uint8)
    for img in (a, Image.fromarray(a)):
        t = T.ToTensor()(img)
        assert isinstance(t, fastconv.Tensor) and t.shape == (3, 5, 7)
        np.testing.assert_allclose(t.numpy(), a.transpose(2, 0, 1) / 255.0, rtol=1e-6)
    mean, std = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]
    n = T.Normalize(mean, std)(T.ToTensor()(a))
    ref = torch.from_numpy(a.transpose(2, 0, 1) / 255.0).float()
    ref = (ref - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    np.testing.assert_allclose(n.numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)
    grey = T.ToTensor()(a[..., 0])
    assert grey.shape == (1, 5, 7)
    with pytest.raises(TypeError, match="ToTensor"):
        T.Normalize(mean, std)(a[..., :3].astype(np.float32))
    with pytest.raises(ValueError, match="std evaluated to zero"):
        T.Normalize(mean, [0.1, 0.0, 0.2])


def test_geometric_transforms_by_hand(rng):
    a = rng.integers(0, 255, (9, 12, 3)).astype(np.uint8)
    pil = Image.fromarray(a)
    # CenterCrop rounds like torchvision: (9-4)/2 = 2.5 -> 2 (round half to even), (12-5)/2 -> 4
    np.testing.assert_array_equal(T.CenterCrop((4, 5))(a), a[2:6, 4:9])
    np.testing.assert_array_equal(np.asarray(T.CenterCrop((4, 5))(pil)), a[2:6, 4:9])
    big = T.CenterCrop(14)(a)  # padded with zeros, as torchvision
    assert big.shape == (14, 14, 3) and big[0].sum() == 0
    # Resize: an int matches the smaller edge; PIL's bilinear for arrays and PIL images alike
    r = T.Resize(6)(a)
    assert r.shape == (6, 8, 3)
    np.testing.assert_array_equal(r, np.asarray(pil.resize((8, 6), Image.BILINEAR)))
    assert T.Resize((5, 4))(pil).size == (4, 5)
    t = T.Resize(6)(T.ToTensor()(a))
    assert t.shape == (3, 6, 8)
    np.testing.assert_allclose(t.numpy(), r.transpose(2, 0, 1) / 255.0, atol=2 / 255)
    fastconv.manual_seed(0)
    crops = [T.RandomCrop(9, padding=2)(a) for _ in range(50)]
    assert all(c.shape == (9, 9, 3) for c in crops)
    padded = np.pad(a, ((2, 2), (2, 2), (0, 0)))
    assert all(any(np.array_equal(c, padded[i:i + 9, j:j + 9]) for i in range(5)
                   for j in range(8)) for c in crops[:10])
    assert T.RandomCrop(20, pad_if_needed=True)(pil).size == (20, 20)
    with pytest.raises(ValueError, match="larger than input image size"):
        T.RandomCrop(20)(a)
    flips = [T.RandomHorizontalFlip(p=0.5)(a) for _ in range(200)]
    n_flipped = sum(np.array_equal(f, a[:, ::-1]) for f in flips)
    assert 60 < n_flipped < 140
    assert np.array_equal(T.RandomHorizontalFlip(p=1.0)(T.ToTensor()(a)).numpy(),
                          T.ToTensor()(a[:, ::-1]).numpy())
    rrc = T.RandomResizedCrop(7, scale=(0.3, 1.0))
    for _ in range(20):
        out = rrc(pil)
        assert out.size == (7, 7)
        i, j, h, w = T.RandomResizedCrop.get_params(a, (0.3, 1.0), (0.75, 4 / 3))
        assert 0 <= i and i + h <= 9 and 0 <= j and j + w <= 12
        assert 0.3 * 108 - 12 <= h * w <= 108


def test_color_jitter_pil_and_tensor(rng):
    a = rng.integers(0, 255, (6, 6, 3)).astype(np.uint8)
    pil = Image.fromarray(a)
    assert np.array_equal(np.asarray(T.ColorJitter()(pil)), a)  # nothing to do
    fastconv.manual_seed(3)
    out = T.ColorJitter(0.5, 0.5, 0.5, 0.1)(pil)
    assert out.size == pil.size and out.mode == "RGB"
    arr = T.ColorJitter(brightness=0.4)(a)
    assert arr.dtype == np.uint8 and arr.shape == a.shape
    # brightness alone is a scaling by a factor in [0.6, 1.4]: the same on a float Tensor
    t = T.ToTensor()(a)
    fastconv.manual_seed(4)
    jt = T.ColorJitter(brightness=(1.3, 1.3))(t).numpy()
    np.testing.assert_allclose(jt, np.clip(t.numpy() * 1.3, 0, 1), rtol=1e-6)
    h = T.ColorJitter(hue=(0.0, 0.0))  # a zero hue range is no-op
    assert h.hue is None
    with pytest.raises(ValueError, match="hue values should be between"):
        T.ColorJitter(hue=0.7)
    with pytest.raises(ValueError, match="non negative"):
        T.ColorJitter(brightness=-1)


def test_batch_forms_still_take_batches(rng):
    x = rng.integers(0, 255, (4, 8, 8, 3)).astype(np.uint8)
    g = np.random.default_rng(0)
    out = T.Compose([T.RandomCrop(6, padding=1), T.RandomHorizontalFlip(), T.ToFloat(),
                     T.Normalize([0.5] * 3, [0.25] * 3), T.ToCHW()])(x, g)
    assert out.shape == (4, 3, 6, 6) and out.dtype == np.float32
    assert T.CenterCrop(4)(x).shape == (4, 4, 4, 3)
    with pytest.raises(ValueError, match="one int"):
        T.RandomCrop(6, padding=(1, 2))(x, g)


# ------------------------------------------------------------------------------------------------
# torchvision-style data sets
# ------------------------------------------------------------------------------------------------

def test_torchvision_style_cifar10(rng, tmp_path):
    from test_data import write_cifar_batches

    truth = write_cifar_batches(str(tmp_path / "cifar-10-batches-py"), rng)
    with pytest.raises(Exception, match="no CIFAR-10 data"):
        datasets.CIFAR10(str(tmp_path / "nowhere"))  # download=False by default, as torchvision
    ds = datasets.CIFAR10(tmp_path, train=False)
    img, label = ds[0]
    data, labels = truth["test_batch"]
    assert isinstance(img, Image.Image) and img.size == (32, 32) and label == labels[0]
    np.testing.assert_array_equal(np.asarray(img), data[0].reshape(3, 32, 32).transpose(1, 2, 0))
    assert ds.data.shape == (5, 32, 32, 3) and ds.class_to_idx["cat"] == 3
    tf = T.Compose([T.RandomCrop(32, padding=4), T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])
    ds = datasets.CIFAR10(str(tmp_path), train=True, transform=tf,
                          target_transform=lambda y: y + 100)
    x, y = ds[3]
    assert isinstance(x, fastconv.Tensor) and x.shape == (3, 32, 32) and y >= 100
    xb, yb = next(iter(D.DataLoader(ds, batch_size=8, shuffle=True, num_workers=2)))
    assert xb.shape == (8, 3, 32, 32) and xb.numpy().dtype == np.float32
    assert yb.numpy().dtype == np.int64 and (yb.numpy() >= 100).all()
    gx, gy = ds.get_batch([0, 1])  # the batch interface applies the transforms too
    assert gx.shape == (2, 3, 32, 32) and (gy >= 100).all()


def test_torchvision_style_image_folder(rng, tmp_path):
    root = tmp_path / "imgs"
    for c, size in (("b_dog", (10, 14)), ("a_cat", (8, 8))):
        os.makedirs(root / c)
        for k in range(3):
            Image.fromarray(rng.integers(0, 255, size + (3,)).astype(np.uint8)).save(
                root / c / f"{k}.png")
    ds = datasets.ImageFolder(root)
    assert ds.classes == ["a_cat", "b_dog"] and ds.class_to_idx == {"a_cat": 0, "b_dog": 1}
    assert len(ds) == 6 and ds.samples[0] == (os.path.join(str(root), "a_cat/0.png"), 0)
    img, y = ds[4]
    assert isinstance(img, Image.Image) and img.size == (14, 10) and y == 1  # sizes may differ
    ds = datasets.ImageFolder(str(root), transform=T.Compose([T.Resize((6, 6)), T.ToTensor()]),
                              is_valid_file=lambda p: not p.endswith("2.png"))
    assert len(ds) == 4
    xb, yb = next(iter(D.DataLoader(ds, batch_size=4)))
    assert xb.shape == (4, 3, 6, 6) and yb.numpy().tolist() == [0, 0, 1, 1]
    seen = []
    ds = datasets.ImageFolder(str(root), loader=lambda p: seen.append(p) or Image.open(p))
    ds[0]
    assert seen and seen[0].endswith("0.png")


def test_a_fastconv_generator_seeds_shuffling_as_torch_generator_does():
    import fastconv as fc
    from fastconv.utils.data import DataLoader, TensorDataset

    ds = TensorDataset(fc.randn(23, 2), fc.arange(23))

    def order(seed):
        loader = DataLoader(ds, batch_size=5, shuffle=True,
                            generator=fc.Generator().manual_seed(seed))
        return [int(i) for _, y in loader for i in y.numpy()]

    first = order(3)
    assert sorted(first) == list(range(23)) and first != list(range(23))
    assert order(3) == first and order(4) != first
    assert fc.utils.data.DataLoader is DataLoader  # reachable from a plain `import fastconv`


def test_typed_datasets_and_samplers_subscript_as_torchs():
    """``class MyData(Dataset[tuple[Tensor, int]])`` (and IterableDataset[...], Sampler[int]):
    torch's classes are Generic."""
    n = int(np.random.default_rng().integers(3, 9))
    made = []
    for lib in (D, tud):
        class Pairs(lib.Dataset[tuple]):
            def __len__(self):
                return n

            def __getitem__(self, i):
                return i, 2 * i

        class Stream(lib.IterableDataset[int]):
            def __iter__(self):
                return iter(range(n))

        class Backwards(lib.Sampler[int]):
            def __init__(self, data_source):
                self.n = len(data_source)

            def __iter__(self):
                return iter(range(self.n - 1, -1, -1))

            def __len__(self):
                return self.n

        made.append([_np(b) for b in lib.DataLoader(Pairs(), batch_size=2,
                                                    sampler=Backwards(Pairs()))]
                    + [_np(b) for b in lib.DataLoader(Stream(), batch_size=3)])
    assert made[0] == made[1]
