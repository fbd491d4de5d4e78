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
        fastconv.load(str(tmp_path / "x.pt"), map_location="tpu")
    assert fastconv.load(str(tmp_path / "x.pt"), weights_only=True) == {"x": 1}
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.zeros(2)}, str(tmp_path / "t.pt"))
    with pytest.raises(ck.CheckpointError, match="PyTorch pickle"):
        fastconv.load(str(tmp_path / "t.pt"))


def test_map_location_dicts_functions_and_parameters_as_torchs(tmp_path):
    """torch.load's map_location may be a dict of locations or a function (storage, location);
    a saved Parameter comes back a Parameter."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng()
    w = rng.standard_normal((3, 4)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    ours = {"w": fastconv.tensor(w), "p": nn.Parameter(fastconv.tensor(b))}
    theirs = {"w": torch.tensor(w), "p": torch.nn.Parameter(torch.tensor(b))}
    fastconv.save(ours, str(tmp_path / "f.pt"))
    torch.save(theirs, str(tmp_path / "t.pt"))
    seen = []
    for ml in ({"cuda:0": "cpu"}, {"cpu": "cpu"}, lambda storage, loc: storage,
               lambda storage, loc: seen.append(loc), fastconv.device("cpu")):
        got = fastconv.load(str(tmp_path / "f.pt"), map_location=ml)
        want = torch.load(str(tmp_path / "t.pt"), map_location=ml)
        for k in ("w", "p"):
            np.testing.assert_array_equal(got[k].detach().numpy(), want[k].detach().numpy())
            assert got[k].requires_grad == want[k].requires_grad
        assert type(got["p"]).__name__ == type(want["p"]).__name__ == "Parameter"
        assert type(got["w"]) is fastconv.Tensor
    assert seen == ["cpu"] * 4  # each library asks once per tensor
    with pytest.raises(TypeError, match="map_location function"):
        fastconv.load(str(tmp_path / "f.pt"), map_location=lambda s, loc: 3)
    with pytest.raises(ValueError, match="map_location"):
        fastconv.load(str(tmp_path / "f.pt"), map_location={"cpu": "tpu"})


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


def test_self_referencing_containers_are_refused_and_nothing_is_written(rng, tmp_path):
    d = {}
    d["self"] = d
    a = {"x": {"y": [1]}}
    a["x"]["y"].append(a["x"])
    t = ([],)
    t[0].append(t)
    cases = [(d, "the dict at 'self' is the dict at the top level"),
             (a, "the dict at 'x/y/1' is the dict at 'x'"),
             (t, "the tuple at '0/0' is the tuple at the top level"),
             ({"w": rng.standard_normal(3), "d": d}, "the dict at 'd/self' is the dict at 'd'")]
    old = {"w": rng.standard_normal(4)}
    fastconv.save(old, str(tmp_path / "old.pt"))
    for obj, where in cases:
        for name in ("new.pt", "old.pt"):
            with pytest.raises(ValueError, match="reference cycle") as e:
                fastconv.save(obj, str(tmp_path / name))
            assert str(e.value).startswith(f"fastconv.save: {where}, which contains it")
    with pytest.raises(ValueError, match="save_checkpoint: the dict at 'self' is the dict at "
                                         "the top level, which contains it"):
        ck.save_checkpoint(str(tmp_path / "new.pt"), d)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.pt"]  # no new or temp file
    np.testing.assert_array_equal(fastconv.load(str(tmp_path / "old.pt"))["w"], old["w"])
    # the same container twice, side by side, is no cycle: stored twice
    shared = [1, rng.standard_normal(2)]
    fastconv.save({"a": shared, "b": (shared, shared)}, str(tmp_path / "shared.pt"))
    got = fastconv.load(str(tmp_path / "shared.pt"))
    np.testing.assert_array_equal(got["b"][1][1], shared[1])
    # nesting too deep to store is a ValueError too, not a RecursionError
    deep = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ValueError, match="nested too deeply"):
        fastconv.save(deep, str(tmp_path / "old.pt"))
    np.testing.assert_array_equal(fastconv.load(str(tmp_path / "old.pt"))["w"], old["w"])


def test_save_creates_no_directories(tmp_path):
    missing = tmp_path / "no_such_dir"
    for save in (lambda p: fastconv.save({"x": 1}, p),
                 lambda p: ck.save_checkpoint(p, {"x": 1}),
                 lambda p: ck.save_training(p, small_net())):
        for parent in (missing, missing / "deeper"):
            p = str(parent / "a.pt")
            with pytest.raises(RuntimeError) as e:
                save(p)
            assert str(e.value) == f"Parent directory {parent} does not exist."
            assert isinstance(e.value, FileNotFoundError)  # what open() raises
            assert isinstance(e.value, ck.CheckpointError)
            assert not missing.exists()
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(RuntimeError, match="Parent directory .*file does not exist"):
        fastconv.save({}, str(tmp_path / "file" / "a.pt"))
    fastconv.save({"x": 1}, str(tmp_path / "a.pt"))  # an existing directory
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError) as te:
        torch.save({}, str(missing / "a.pt"))
    assert str(te.value) == f"Parent directory {missing} does not exist."


@pytest.mark.parametrize("bad", ["datetime64", "str", "bytes", "complex", "object", "void"])
def test_load_state_dict_refuses_non_numeric_values(rng, tmp_path, bad):
    model = small_net()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    state = {k: v + 1 for k, v in before.items()}
    key = "4.bias"
    n = state[key].size
    state[key] = {"datetime64": np.arange(n).astype("datetime64[D]"),
                  "str": np.array(["a"] * n), "bytes": np.array([b"a"] * n),
                  "complex": np.ones(n, np.complex64), "object": np.array([None] * n),
                  "void": np.zeros(n, "V4")}[bad]
    dtype = state[key].dtype
    for strict in (True, False):
        with pytest.raises(RuntimeError) as e:
            model.load_state_dict(state, strict=strict)
        assert f'parameter named "{key}", expected a numeric array' in str(e.value)
        assert f"dtype {dtype}" in str(e.value)
        for k, v in model.state_dict().items():  # nothing was copied
            np.testing.assert_array_equal(v, before[k])
        with pytest.raises(ck.CheckpointError, match=f'named "{key}", expected a numeric'):
            ck.load_model_state(model, state, strict=strict)
    if bad in ("datetime64", "str", "bytes", "complex"):  # what a checkpoint can hold
        fastconv.save(state, str(tmp_path / "m.pt"))
        with pytest.raises(RuntimeError, match=f'"{key}", expected a numeric array'):
            model.load_state_dict(fastconv.load(str(tmp_path / "m.pt")))
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    # numeric dtypes still load (bool, ints, float64 arrays)
    state[key] = np.arange(n, dtype=np.int64)
    model.load_state_dict(state)
    np.testing.assert_array_equal(model.state_dict()[key], np.arange(n, dtype=np.float32))
