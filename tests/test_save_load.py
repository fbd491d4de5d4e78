"""fastconv.save(obj, f) / fastconv.load(f) in PyTorch's argument order: round trips of state
dicts, optimizer states and nested containers (against torch.save/torch.load's results where
torch is installed), file objects, the refusals, and the old training-helper order's errors."""

from __future__ import annotations

import io

import numpy as np
import pytest

import fastconv
from fastconv import checkpoint as ck
from fastconv import nn, optim


def small_net():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Flatten(), nn.Linear(4 * 5 * 5, 3))


def _same(a, b):
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    elif isinstance(a, fastconv.Tensor):
        assert a.dtype == b.dtype and a.requires_grad == b.requires_grad
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)
    else:
        assert a == b


def test_nested_containers_come_back_as_saved(rng, tmp_path):
    obj = {
        "w": fastconv.tensor(rng.standard_normal((2, 3)).astype(np.float32), requires_grad=True),
        "idx": fastconv.tensor(rng.integers(0, 9, 5)),
        "arr": rng.standard_normal(4),                # float64 arrays stay float64
        "u8": rng.integers(0, 255, (2, 2, 3)).astype(np.uint8),
        "nums": [1, 2.5, True, None, "text", float("nan"), float("inf")],
        "tup": (3, (fastconv.tensor(np.ones(2, np.float32)), "x")),
        "by_int": {0: {"m": np.zeros(2, np.float32)}, 7: "seven"},
        "empty": {}, "nil": [],
    }
    p = tmp_path / "obj.pt"
    assert fastconv.save(obj, p) is None  # a PathLike works, as in torch
    _same(obj, fastconv.load(p))
    buf = io.BytesIO()
    fastconv.save(obj, buf)
    buf.seek(0)
    _same(obj, fastconv.load(buf))


def test_model_and_optimizer_state_dicts_round_trip(rng, tmp_path):
    fastconv.manual_seed(int(rng.integers(1 << 30)))
    model = small_net()
    opt = optim.Adam(model.parameters(), lr=1e-2)
    x = fastconv.tensor(rng.standard_normal((2, 3, 5, 5)).astype(np.float32))
    for _ in range(2):
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()
    fastconv.save(model.state_dict(), str(tmp_path / "m.pt"))
    fastconv.save(opt.state_dict(), str(tmp_path / "o.pt"))
    model2 = small_net()
    model2.load_state_dict(fastconv.load(str(tmp_path / "m.pt")))
    opt2 = optim.Adam(model2.parameters(), lr=1e-2)
    opt2.load_state_dict(fastconv.load(str(tmp_path / "o.pt")))
    for (k, a), (_, b) in zip(model.state_dict().items(), model2.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=k)
    assert opt2.param_groups[0]["betas"] == opt.param_groups[0]["betas"]
    for m in (model, model2):  # the same next step
        for o in ((opt,) if m is model else (opt2,)):
            o.zero_grad()
            m(x).sum().backward()
            o.step()
    for a, b in zip(model.parameters(), model2.parameters()):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


def test_what_torch_load_returns_for_the_same_tree(rng, tmp_path):
    """The same structure as torch.save/torch.load of the torch equivalent: containers,
    key types and order, dtypes, values."""
    torch = pytest.importorskip("torch")
    a = rng.standard_normal((3, 2)).astype(np.float32)
    i = rng.integers(0, 5, 4)
    ours = {"a": fastconv.tensor(a), "i": fastconv.tensor(i), "t": (1, [2.0, "s"]),
            "d": {3: None}}
    theirs = {"a": torch.from_numpy(a), "i": torch.from_numpy(i), "t": (1, [2.0, "s"]),
              "d": {3: None}}
    fastconv.save(ours, str(tmp_path / "f.pt"))
    torch.save(theirs, str(tmp_path / "t.pt"))
    got, want = fastconv.load(str(tmp_path / "f.pt")), torch.load(str(tmp_path / "t.pt"))

    def shape_of(x):
        if isinstance(x, dict):
            return {k: shape_of(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return type(x)(shape_of(v) for v in x)
        if hasattr(x, "shape") and not isinstance(x, (int, float)):
            return ("tensor", tuple(x.shape), str(x.dtype).replace("torch.", ""),
                    np.asarray(x.numpy() if hasattr(x, "numpy") else x).tolist())
        return x

    assert shape_of(got) == shape_of(want)


def test_objects_and_pickles_are_refused(tmp_path):
    with pytest.raises(TypeError, match=r"cannot store a Sequential.*state_dict\(\)"):
        fastconv.save(small_net(), str(tmp_path / "m.pt"))
    with pytest.raises(TypeError, match="cannot store a object"):
        fastconv.save({"x": object()}, str(tmp_path / "x.pt"))
    with pytest.raises(ValueError, match="pickle_module"):
        fastconv.save({}, str(tmp_path / "x.pt"), pickle_module=object())
    fastconv.save({"x": 1}, str(tmp_path / "x.pt"))
    with pytest.raises(ValueError, match="mmap"):
        fastconv.load(str(tmp_path / "x.pt"), mmap=True)
    with pytest.raises(ValueError, match="map_location"):
        fastconv.load(str(tmp_path / "x.pt"), map_location={"cuda:0": "cpu"})
    assert fastconv.load(str(tmp_path / "x.pt"), weights_only=True) == {"x": 1}
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.zeros(2)}, str(tmp_path / "t.pt"))
    with pytest.raises(ck.CheckpointError, match="PyTorch pickle"):
        fastconv.load(str(tmp_path / "t.pt"))


def test_the_old_argument_order_names_the_training_helpers(tmp_path):
    model, path = small_net(), str(tmp_path / "c.npz")
    opt = optim.SGD(model.parameters(), lr=0.1)
    for call in (lambda: fastconv.save(path, model),
                 lambda: fastconv.save(path, model, opt),
                 lambda: fastconv.save(path, model=model),
                 lambda: fastconv.save(path, epoch=3),
                 lambda: fastconv.save(path)):
        with pytest.raises(TypeError, match=r"fastconv\.checkpoint\.save_training\(path, model"):
            call()
    ck.save_training(path, model, opt, epoch=2)
    for call in (lambda: fastconv.load(path, model),
                 lambda: fastconv.load(path, model, opt),
                 lambda: fastconv.load(path, optimizer=opt),
                 lambda: fastconv.load(path, strict=False)):
        with pytest.raises(TypeError, match=r"fastconv\.checkpoint\.load_training\(path, model"):
            call()
    # a training checkpoint still reads as the dict it holds
    got = fastconv.load(path)
    assert got["epoch"] == 2 and set(got["model"]) == set(model.state_dict())
    assert ck.load_training(path, small_net())["epoch"] == 2
