"""fastconv.checkpoint: .npz round trips, atomic writes, strict and non-strict loading,
and clear errors for truncated, foreign and pickled files."""

from __future__ import annotations

import json
import os
import pickle
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import fastconv
from fastconv import checkpoint as ck
from fastconv import nn, optim
from fastconv.checkpoint import CheckpointError


def small_net(classes=4):
    return nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.BatchNorm2d(5), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, classes))


def train_steps(model, opt, rng, n=2, classes=4):
    import fastconv.functional as F

    for _ in range(n):
        x = fastconv.tensor(rng.standard_normal((6, 3, 8, 8)).astype(np.float32))
        y = rng.integers(0, classes, 6)
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()


def test_full_round_trip(rng, tmp_path):
    model = small_net()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    sched = optim.lr_scheduler.StepLR(opt, 2, gamma=0.5)
    ema = optim.ExponentialMovingAverage(model, decay=0.99)
    train_steps(model, opt, rng)
    sched.step()
    ema.update(model)
    config = {"model": "small", "lr": 0.1, "sizes": [24, 24], "note": "ünïcode", "none": None}
    rng_state = fastconv.get_rng_state()
    path = fastconv.save(str(tmp_path / "run" / "ck.npz"), model, opt, scheduler=sched, ema=ema,
                         epoch=3, step=117, config=config, history=[{"loss": 1.5}],
                         loader={"seed": 4, "epoch": 3})
    assert path.endswith("ck.npz") and os.path.isfile(path)
    assert not [f for f in os.listdir(tmp_path / "run") if f != "ck.npz"]  # no temp file left
    draw_after_save = fastconv.random.generator().random(3)

    model2 = small_net()
    opt2 = optim.SGD(model2.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-4)
    sched2 = optim.lr_scheduler.StepLR(opt2, 2, gamma=0.5)
    ema2 = optim.ExponentialMovingAverage(model2, decay=0.5)
    out = fastconv.load(path, model2, opt2, scheduler=sched2, ema=ema2, restore_rng=True)
    for (k, a), (k2, b) in zip(model.state_dict().items(), model2.state_dict().items()):
        assert k == k2
        np.testing.assert_array_equal(a, b)
    assert out["epoch"] == 3 and out["step"] == 117 and out["config"] == config
    assert out["history"] == [{"loss": 1.5}] and out["loader"] == {"seed": 4, "epoch": 3}
    assert out["rng_state"] == rng_state
    np.testing.assert_array_equal(fastconv.random.generator().random(3), draw_after_save)
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    assert sched2.last_epoch == sched.last_epoch
    assert ema2.decay == 0.99
    for i, st in opt.state.items():
        np.testing.assert_array_equal(st["momentum_buffer"], opt2.state[i]["momentum_buffer"])
    # the same next step on both
    seed = int(rng.integers(1 << 30))
    train_steps(model, opt, np.random.default_rng(seed))
    train_steps(model2, opt2, np.random.default_rng(seed))
    for a, b in zip(model.state_dict().values(), model2.state_dict().values()):
        np.testing.assert_array_equal(a, b)
    # plain NumPy reads it too, without pickle, with readable member names
    with np.load(path, allow_pickle=False) as z:
        assert "model/0.weight" in z.files and ck.HEADER in z.files
        assert any(f.startswith("optimizer/state/") for f in z.files)


def test_tree_round_trip_of_values(rng, tmp_path):
    tree = {
        "ints": {3: rng.standard_normal(4), 7: "seven"},  # non-string keys survive
        "floats": [float("inf"), float("-inf"), 0.1, -0.0],
        "nan": float("nan"),
        "tuple": (1, 2),
        "flags": [True, False, None],
        "arrays": {
            "u8": rng.integers(0, 255, (2, 3), dtype=np.uint8),
            "i64": rng.integers(-5, 5, 7),
            "f16": rng.standard_normal(3).astype(np.float16),
            "b": rng.random(5) > 0.5,
            "scalar": np.array(2.5, np.float32),
            "empty": np.zeros((0, 3), np.float32),
            "npscalar": np.float32(1.25),
        },
        "a/b": np.arange(3),  # a slash in a key does not confuse member names
        "a": {"b": np.arange(4)},
    }
    path = ck.save_checkpoint(str(tmp_path / "t.npz"), tree)
    back = ck.load_checkpoint(path)
    assert set(back["ints"]) == {3, 7}
    np.testing.assert_array_equal(back["ints"][3], tree["ints"][3])
    assert back["floats"][:3] == [float("inf"), float("-inf"), 0.1]
    assert np.isnan(back["nan"]) and back["tuple"] == [1, 2] and back["flags"] == [True, False,
                                                                                    None]
    for k, v in tree["arrays"].items():
        got = back["arrays"][k]
        if k == "npscalar":
            assert got == 1.25
            continue
        assert got.dtype == v.dtype and got.shape == v.shape
        np.testing.assert_array_equal(got, v)
    np.testing.assert_array_equal(back["a/b"], np.arange(3))
    np.testing.assert_array_equal(back["a"]["b"], np.arange(4))


def test_save_refuses_what_cannot_be_stored_without_pickle(tmp_path):
    with pytest.raises(CheckpointError, match="object array"):
        ck.save_checkpoint(str(tmp_path / "x.npz"), {"o": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(CheckpointError, match="cannot store set"):
        ck.save_checkpoint(str(tmp_path / "x.npz"), {"s": {1, 2}})
    with pytest.raises(CheckpointError, match="JSON"):
        fastconv.save(str(tmp_path / "x.npz"), config={"f": open})
    assert not os.path.exists(tmp_path / "x.npz")


def test_atomic_write_keeps_the_old_checkpoint(tmp_path, monkeypatch, rng):
    path = str(tmp_path / "last.npz")
    good = {"w": rng.standard_normal(100)}
    ck.save_checkpoint(path, good)

    def crash(f, **arrays):
        f.write(b"PK\x03\x04 half a zip file")
        raise KeyboardInterrupt  # e.g. Ctrl-C or a crash in the middle of writing

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        ck.save_checkpoint(path, {"w": np.zeros(100)})
    monkeypatch.undo()
    np.testing.assert_array_equal(ck.load_checkpoint(path)["w"], good["w"])
    assert os.listdir(tmp_path) == ["last.npz"]


def test_bad_files_give_clear_errors(tmp_path, rng):
    path = str(tmp_path / "ck.npz")
    ck.save_checkpoint(path, {"w": rng.standard_normal(5000), "epoch": 1})
    raw = Path(path).read_bytes()
    cases = {
        "truncated.npz": raw[: len(raw) // 2],
        "tail_cut.npz": raw[:-30],
        "random.npz": rng.integers(0, 256, 3000, dtype=np.uint8).tobytes(),
        "empty.npz": b"",
        "text.npz": b"hello, this is not a checkpoint\n",
    }
    for name, data in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(CheckpointError, match="truncated|corrupt|not a fastconv") as e:
            fastconv.load(str(p))
        assert str(p) in str(e.value)
    # a pickle is never unpickled
    with open(tmp_path / "model.pkl", "wb") as f:
        pickle.dump({"w": np.zeros(3)}, f)
    with pytest.raises(CheckpointError, match="pickle"):
        ck.load_checkpoint(str(tmp_path / "model.pkl"))
    # an .npz from elsewhere
    np.savez(tmp_path / "foreign.npz", weights=np.zeros(3), bias=np.ones(2))
    with pytest.raises(CheckpointError, match="not a fastconv checkpoint.*weights"):
        ck.load_checkpoint(str(tmp_path / "foreign.npz"))
    # a header from the future, and a header that names a missing member
    header = {"format": ck.FORMAT, "version": ck.VERSION + 1, "tree": {}}
    np.savez(tmp_path / "future.npz", **{ck.HEADER: np.frombuffer(json.dumps(header).encode(),
                                                                  np.uint8)})
    with pytest.raises(CheckpointError, match="newer"):
        ck.load_checkpoint(str(tmp_path / "future.npz"))
    header = {"format": ck.FORMAT, "version": ck.VERSION, "tree": {"w": {"__ndarray__": "w"}}}
    np.savez(tmp_path / "hole.npz", **{ck.HEADER: np.frombuffer(json.dumps(header).encode(),
                                                                np.uint8)})
    with pytest.raises(CheckpointError, match="lacks"):
        ck.load_checkpoint(str(tmp_path / "hole.npz"))
    # a damaged member (flip bytes inside the stored array: the zip CRC check catches it)
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("w.npy")
    damaged = bytearray(raw)
    start = info.header_offset + 30 + len(info.filename) + 200
    zeros = b"\x00" * 8
    damaged[start:start + 8] = zeros if damaged[start:start + 8] != zeros else b"\x01" * 8
    (tmp_path / "damaged.npz").write_bytes(bytes(damaged))
    with pytest.raises(CheckpointError, match="corrupt"):
        ck.load_checkpoint(str(tmp_path / "damaged.npz"))
    with pytest.raises(CheckpointError, match="no checkpoint"):
        ck.load_checkpoint(str(tmp_path / "absent.npz"))
    with pytest.raises(CheckpointError, match="directory"):
        ck.load_checkpoint(str(tmp_path))


def test_strict_and_non_strict_model_loading(tmp_path, rng):
    src = small_net(classes=4)
    path = fastconv.save(str(tmp_path / "a.npz"), src)
    # a different classifier size: strict loading names the key and both shapes, loads nothing
    dst = small_net(classes=7)
    before = {k: v.copy() for k, v in dst.state_dict().items()}
    with pytest.raises(CheckpointError) as e:
        fastconv.load(path, dst)
    msg = str(e.value)
    assert "5.weight" in msg and "(4, 5)" in msg and "(7, 5)" in msg and "5.bias" in msg
    assert "strict=False" in msg
    for k, v in dst.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    # non-strict: everything but the classifier is loaded, and the skipped keys are reported
    with pytest.warns(UserWarning, match="5.weight"):
        out = fastconv.load(path, dst, strict=False)
    rep = out["skipped"]
    assert [m[0] for m in rep["mismatched"]] == ["5.weight", "5.bias"]
    np.testing.assert_array_equal(dst.state_dict()["0.weight"], src.state_dict()["0.weight"])
    np.testing.assert_array_equal(dst.state_dict()["5.weight"], before["5.weight"])
    # missing and unexpected keys
    other = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU(), nn.Linear(5, 4))
    with pytest.raises(CheckpointError) as e:
        fastconv.load(path, other)
    msg = str(e.value)
    assert "unexpected" in msg and "1.running_mean" in msg
    assert "missing" in msg and "2.weight" in msg
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = fastconv.load(path, other, strict=False)["skipped"]
    assert "2.weight" in rep["missing"] and "1.running_mean" in rep["unexpected"]
    assert "0.weight" in rep["loaded"]
    # an optimizer that does not fit
    opt = optim.SGD(small_net().parameters(), lr=0.1, momentum=0.9)
    path2 = fastconv.save(str(tmp_path / "b.npz"), src, opt)
    with pytest.raises(CheckpointError, match="optimizer"):
        fastconv.load(path2, optimizer=optim.SGD(other.parameters(), lr=0.1))
    with pytest.raises(CheckpointError, match="no optimizer state"):
        fastconv.load(path, optimizer=opt)


class CountingGenerator:
    """A stand-in for a backend's own generator (the CUDA one): a seed and a draw counter."""

    def __init__(self):
        self.state = {"seed": 0, "offset": 0}

    def seed(self, seed):
        self.state = {"seed": seed, "offset": 0}

    def draw(self, n):
        self.state = dict(self.state, offset=self.state["offset"] + n)

    def get(self):
        return dict(self.state)

    def set(self, state):
        self.state = dict(state)


@pytest.fixture
def device_generators(monkeypatch):
    """Empty registries of device generators, restored after the test."""
    monkeypatch.setattr(fastconv.random, "_device_generators", {})
    monkeypatch.setattr(fastconv.random, "_pending_states", {})


def test_device_generator_state_travels_with_checkpoints(tmp_path, rng, device_generators):
    dev = CountingGenerator()
    fastconv.random.register_device_generator("fake", dev.seed, dev.get, dev.set)
    fastconv.manual_seed(123)
    assert dev.state == {"seed": 123, "offset": 0}
    dev.draw(int(rng.integers(1, 1000)))
    saved = dev.get()
    path = fastconv.save(str(tmp_path / "ck.npz"), small_net())
    dev.draw(7)
    fastconv.load(path, small_net(), restore_rng=True)
    assert dev.state == saved


def test_device_state_restored_before_its_backend_loads(tmp_path, device_generators):
    state = dict(fastconv.get_rng_state(), devices={"fake": {"seed": 5, "offset": 99}})
    fastconv.set_rng_state(json.loads(json.dumps(state)))
    # Until the backend loads, the state is kept and saved as it was restored.
    assert fastconv.get_rng_state()["devices"] == {"fake": {"seed": 5, "offset": 99}}
    dev = CountingGenerator()
    fastconv.random.register_device_generator("fake", dev.seed, dev.get, dev.set)
    assert dev.state == {"seed": 5, "offset": 99}
    # A later manual_seed wins over a pending state.
    fastconv.set_rng_state(dict(state, devices={"other": {"seed": 1}}))
    fastconv.manual_seed(8)
    assert "other" not in fastconv.get_rng_state()["devices"]
    assert dev.state == {"seed": 8, "offset": 0}


def test_bad_device_states_are_rejected(device_generators):
    state = fastconv.get_rng_state()
    with pytest.raises(ValueError, match="devices"):
        fastconv.set_rng_state(dict(state, devices=[1, 2]))
