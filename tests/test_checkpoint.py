"""fastconv.checkpoint: .npz round trips, atomic writes, strict and non-strict loading,
and clear errors for truncated, foreign and pickled files."""

from __future__ import annotations

import ast
import json
import os
import pickle
import stat
import tracemalloc
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
    (tmp_path / "run").mkdir()  # saving creates no directories, as torch.save
    path = ck.save_training(str(tmp_path / "run" / "ck.npz"), model, opt, scheduler=sched, ema=ema,
                         epoch=3, step=117, config=config, history=[{"loss": 1.5}],
                         loader={"seed": 4, "epoch": 3})
    assert path.endswith("ck.npz") and os.path.isfile(path)
    assert not [f for f in os.listdir(tmp_path / "run") if f != "ck.npz"]  # no temp file left
    draw_after_save = fastconv.random.generator().random(3)

    model2 = small_net()
    opt2 = optim.SGD(model2.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-4)
    sched2 = optim.lr_scheduler.StepLR(opt2, 2, gamma=0.5)
    ema2 = optim.ExponentialMovingAverage(model2, decay=0.5)
    out = ck.load_training(path, model2, opt2, scheduler=sched2, ema=ema2, restore_rng=True)
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
    assert len(opt2.state) == len(opt.state) > 0
    for p, p2 in zip(model.parameters(), model2.parameters()):  # state is keyed by parameter
        np.testing.assert_array_equal(opt.state[p]["momentum_buffer"],
                                      opt2.state[p2]["momentum_buffer"])
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
        ck.save_training(str(tmp_path / "x.npz"), config={"f": open})
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
    with pytest.raises(CheckpointError, match=r"foreign\.npz is an \.npz.*weights.*not a "
                                              "fastconv checkpoint"):
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


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions and umask")
@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002, 0o027])
def test_checkpoint_permissions_follow_the_umask(tmp_path, rng, monkeypatch, mask):
    replaced, synced = [], []
    real_replace, real_fsync = os.replace, os.fsync

    def spy_replace(src, dst):
        replaced.append((os.fspath(src), os.fspath(dst), stat.S_IMODE(os.stat(src).st_mode)))
        real_replace(src, dst)

    def spy_fsync(fd):
        synced.append(os.fstat(fd).st_ino)
        real_fsync(fd)

    monkeypatch.setattr(os, "replace", spy_replace)
    monkeypatch.setattr(os, "fsync", spy_fsync)
    (tmp_path / "run").mkdir()
    path = str(tmp_path / "run" / "last.npz")
    old = os.umask(mask)
    try:
        with open(tmp_path / "other.csv", "w") as f:  # what any other output file gets
            f.write("epoch,loss\n")
        for _ in range(2):  # a new file, then one written over an existing checkpoint
            w = rng.standard_normal(int(rng.integers(1, 50)))
            ck.save_training(path, small_net(), epoch=1, w=w)
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~mask
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "other.csv").st_mode) == 0o666 & ~mask
    np.testing.assert_array_equal(ck.load_checkpoint(path)["w"], w)
    # still atomic: a temporary file in the same folder, fsync'ed, then renamed over the target
    assert len(replaced) == 2
    for src, dst, mode in replaced:
        assert dst == path and os.path.dirname(src) == os.path.dirname(path) and src != path
        assert mode == 0o666 & ~mask
    assert os.stat(path).st_ino in synced
    assert os.listdir(tmp_path / "run") == ["last.npz"]


class Trap:
    """Unpickling this creates ``marker``: a file that must never appear."""

    def __init__(self, marker):
        self.marker = Path(marker)

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def _foreign_files(tmp_path, rng):
    """{file name: (how to write it, what the error must call it)}."""
    from PIL import Image

    marker = tmp_path / "unpickled"
    pixels = rng.integers(0, 256, (int(rng.integers(4, 20)), int(rng.integers(4, 20)), 3),
                          dtype=np.uint8)
    trap = pickle.dumps({"w": Trap(marker)}, protocol=int(rng.integers(2, 6)))
    words = " ".join(rng.choice(["loss", "epoch", "cat", "dog", "lr"], 8))
    good = tmp_path / "good.npz"
    ck.save_checkpoint(str(good), {"w": rng.standard_normal(3000)})
    raw = good.read_bytes()
    cut = int(rng.integers(10, len(raw) - 30))
    files = {
        "cat.png": (lambda p: Image.fromarray(pixels).save(p), "a PNG image"),
        "cat.jpg": (lambda p: Image.fromarray(pixels).save(p), "a JPEG image"),
        "cat.gif": (lambda p: Image.fromarray(pixels).save(p), "a GIF image"),
        "config.json": (lambda p: p.write_text(json.dumps({"lr": float(rng.random()),
                                                           "model": "nin"}, indent=2)),
                        "a JSON file"),
        "notes.txt": (lambda p: p.write_text(words + "\n"), f"a text file (starting {words!r})"),
        "model.pkl": (lambda p: p.write_bytes(trap), "a Python pickle file"),
        "legacy.pth": (lambda p: p.write_bytes(
            pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + trap), "a PyTorch pickle file"),
        "model.pt": (lambda p: _zip(p, {"model/data.pkl": trap, "model/version": b"3\n"}),
                     "a PyTorch pickle file"),
        "flat.pt": (lambda p: _zip(p, {"data.pkl": trap}), "a PyTorch pickle file"),
        "photos.zip": (lambda p: _zip(p, {"a.png": b"x", "b/readme.txt": b"y"}),
                       "a zip archive (holding a.png, b/readme.txt) but not an .npz"),
        "arrays.npy": (lambda p: np.save(p, pixels), "a single NumPy array (.npy)"),
        "empty.npz": (lambda p: p.write_bytes(b""), "an empty file (0 bytes)"),
        "truncated.npz": (lambda p: p.write_bytes(raw[:cut]), "a truncated or corrupt"),
        "weights.npz": (lambda p: np.savez(p, **{"fc.weight": pixels}),
                        "an .npz archive without the '__fastconv__' header (it holds: fc.weight)"),
        "objects.npz": (lambda p: np.savez(p, **{ck.HEADER: np.zeros(2, np.uint8),
                                                 "o": np.array([Trap(marker)], dtype=object)}),
                        "pickled object arrays"),
    }
    return files, marker


@pytest.mark.parametrize("name", ["cat.png", "cat.jpg", "cat.gif", "config.json", "notes.txt",
                                  "model.pkl", "legacy.pth", "model.pt", "flat.pt", "photos.zip",
                                  "arrays.npy", "empty.npz", "truncated.npz", "weights.npz",
                                  "objects.npz"])
def test_a_file_that_is_not_a_checkpoint_is_named_for_what_it_is(tmp_path, rng, name):
    files, marker = _foreign_files(tmp_path, rng)
    write, what = files[name]
    p = tmp_path / "runs" / "x" / name
    p.parent.mkdir(parents=True)
    write(p)
    for load in (ck.load_checkpoint, fastconv.load, ck.load_training):
        with pytest.raises(CheckpointError) as e:
            load(str(p))
        msg = str(e.value)
        assert msg.startswith(str(p) + " ")
        assert what in msg
        if name not in ("truncated.npz", "objects.npz"):
            assert msg.startswith(f"{p} is {what}") or what.startswith("an .npz")
            assert "not a fastconv checkpoint (.npz written by fastconv.save" in msg
        if name.endswith((".pt", ".pth", ".pkl")):
            assert "which fastconv does not unpickle" in msg
    assert not marker.exists(), "a pickle was unpickled"


def test_real_pytorch_files_are_named_and_not_unpickled(tmp_path, rng):
    torch = pytest.importorskip("torch")
    marker = tmp_path / "unpickled"
    state = {"fc.weight": torch.from_numpy(rng.standard_normal((3, 4)).astype(np.float32)),
             "trap": Trap(marker)}
    for name, kw in (("new.pt", {}), ("old.pth", {"_use_new_zipfile_serialization": False})):
        torch.save(state, tmp_path / name, **kw)
        with pytest.raises(CheckpointError, match=r"is a PyTorch pickle file .*a pickle, which "
                                                  "fastconv does not unpickle") as e:
            fastconv.load(str(tmp_path / name))
        assert str(tmp_path / name) in str(e.value)
    assert not marker.exists()


def test_missing_files_and_folders_point_at_the_checkpoints_there(tmp_path, rng):
    run = tmp_path / "run"
    run.mkdir()
    names = sorted(f"{w}.npz" for w in rng.choice(["last", "best", "epoch3"], 2, replace=False))
    for n in names:
        ck.save_checkpoint(str(run / n), {"epoch": 1})
    with pytest.raises(CheckpointError) as e:
        fastconv.load(str(run))
    assert str(e.value).startswith(f"{run} is a directory, not a checkpoint file")
    assert ", ".join(names) in str(e.value)
    with pytest.raises(CheckpointError) as e:
        fastconv.load(str(run / "lats.npz"))
    assert str(e.value).startswith(f"no checkpoint at {run / 'lats.npz'}: no such file")
    assert ", ".join(names) in str(e.value)
    with pytest.raises(CheckpointError, match="no such file$"):
        fastconv.load(str(tmp_path / "absent" / "last.npz"))


def test_strict_and_non_strict_model_loading(tmp_path, rng):
    src = small_net(classes=4)
    path = ck.save_training(str(tmp_path / "a.npz"), src)
    # a different classifier size: strict loading names the key and both shapes, loads nothing
    dst = small_net(classes=7)
    before = {k: v.copy() for k, v in dst.state_dict().items()}
    with pytest.raises(CheckpointError) as e:
        ck.load_training(path, dst)
    msg = str(e.value)
    assert isinstance(e.value, RuntimeError)  # as Module.load_state_dict's error
    assert msg.startswith("Error(s) in loading state_dict for Sequential from the checkpoint "
                          "a.npz:\n\t")
    assert ("\n\tsize mismatch for 5.weight: copying a param with shape (4, 5) from checkpoint, "
            "the shape in current model is (7, 5).\n\tsize mismatch for 5.bias: copying a param "
            "with shape (4,) from checkpoint, the shape in current model is (7,).\n") in msg
    assert "strict=False" in msg
    for k, v in dst.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    # non-strict: everything but the classifier is loaded, and the skipped keys are reported
    with pytest.warns(UserWarning, match="5.weight"):
        out = ck.load_training(path, dst, strict=False)
    rep = out["skipped"]
    assert [m[0] for m in rep["mismatched"]] == ["5.weight", "5.bias"]
    np.testing.assert_array_equal(dst.state_dict()["0.weight"], src.state_dict()["0.weight"])
    np.testing.assert_array_equal(dst.state_dict()["5.weight"], before["5.weight"])
    # missing and unexpected keys
    other = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU(), nn.Linear(5, 4))
    with pytest.raises(CheckpointError) as e:
        ck.load_training(path, other)
    msg = str(e.value)
    assert '\n\tMissing key(s) in state_dict: "2.weight", "2.bias". \n' in msg
    # in state_dict order, PyTorch's: module by module, parameters then buffers
    assert ('\n\tUnexpected key(s) in state_dict: "1.weight", "1.bias", "1.running_mean", '
            '"1.running_var", "1.num_batches_tracked", "5.weight", "5.bias". \n') in msg
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = ck.load_training(path, other, strict=False)["skipped"]
    assert "2.weight" in rep["missing"] and "1.running_mean" in rep["unexpected"]
    assert "0.weight" in rep["loaded"]
    # an optimizer that does not fit
    opt = optim.SGD(small_net().parameters(), lr=0.1, momentum=0.9)
    path2 = ck.save_training(str(tmp_path / "b.npz"), src, opt)
    with pytest.raises(CheckpointError, match="optimizer"):
        ck.load_training(path2, optimizer=optim.SGD(other.parameters(), lr=0.1))
    with pytest.raises(CheckpointError, match="no optimizer state"):
        ck.load_training(path, optimizer=opt)


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
    path = ck.save_training(str(tmp_path / "ck.npz"), small_net())
    dev.draw(7)
    ck.load_training(path, small_net(), restore_rng=True)
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


def _rewrite_npy_header(path, member, **fields):
    """Rewrite ``member``'s .npy header in the .npz at ``path`` (same compression, same
    data) with ``fields`` (shape, descr) replaced: what an edited or damaged file holds."""
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
        members = {i.filename: z.read(i) for i in infos}
    raw = members[member]
    assert raw[:8] == b"\x93NUMPY\x01\x00"
    n = int.from_bytes(raw[8:10], "little")
    header = ast.literal_eval(raw[10:10 + n].decode("latin1"))
    header.update(fields)
    text = repr(header).encode("latin1")
    text += b" " * (n - 1 - len(text)) + b"\n"
    assert len(text) == n
    members[member] = raw[:10] + text + raw[10 + n:]
    with zipfile.ZipFile(path, "w") as z:
        for i in infos:
            z.writestr(i, members[i.filename], compress_type=i.compress_type)


def _set_sizes_in_central_directory(path, member, file_size=None, compress_size=None):
    """Patch the sizes the zip's central directory states for ``member``."""
    raw = bytearray(Path(path).read_bytes())
    name, at = member.encode(), raw.index(b"PK\x01\x02")
    while raw[at + 46:at + 46 + len(name)] != name:  # the member's central-directory entry
        at = raw.index(b"PK\x01\x02", at + 1)
    if compress_size is not None:
        raw[at + 20:at + 24] = compress_size.to_bytes(4, "little")
    if file_size is not None:
        raw[at + 24:at + 28] = file_size.to_bytes(4, "little")
    Path(path).write_bytes(bytes(raw))


@pytest.mark.parametrize("compress", [False, True])
def test_a_member_header_claiming_more_data_than_the_member_holds_is_refused(tmp_path, rng,
                                                                            compress):
    path = str(tmp_path / "ck.npz")
    fastconv.save({"w": rng.standard_normal(12).astype(np.float32), "epoch": 3}, path,
                  compress=compress)
    # 40 TiB: np.load asked for it and raised MemoryError
    _rewrite_npy_header(path, "w.npy", shape=(10995116277760,))
    for load in (fastconv.load, ck.load_checkpoint, ck.load_training):
        with pytest.raises(CheckpointError) as e:
            load(path)
        msg = str(e.value)
        assert msg.startswith(f"{path} is corrupt: member 'w.npy'")
        assert "header declares shape (10995116277760,) of float32" in msg
        assert "larger than the member's 48 bytes of data" in msg
    # 400 MB, which could be allocated: refused before any of it is
    _rewrite_npy_header(path, "w.npy", shape=(100_000_000,))
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=r"declares shape \(100000000,\)"):
            fastconv.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 << 20, f"{peak} bytes allocated to read a corrupt 48-byte member"
    # one element more than stored is caught too; the true shape loads
    _rewrite_npy_header(path, "w.npy", shape=(13,))
    with pytest.raises(CheckpointError, match=r"\(13,\) of float32 \(52 bytes\)"):
        fastconv.load(path)
    _rewrite_npy_header(path, "w.npy", shape=(3, 4))
    assert fastconv.load(path)["w"].shape == (3, 4)


def test_zip_sizes_that_cannot_be_true_are_refused(tmp_path, rng):
    path = str(tmp_path / "ck.npz")
    fastconv.save({"w": np.arange(12, dtype=np.float32)}, path, compress=True)
    # a deflated member claiming 4 GB from ~100 stored bytes, with a header to match: the
    # header agrees with the stated size, but deflate cannot expand that far
    _rewrite_npy_header(path, "w.npy", descr="|u1", shape=(4_000_000_000,))
    _set_sizes_in_central_directory(path, "w.npy", file_size=0xFFFFFF00)
    with pytest.raises(CheckpointError, match=r"member 'w\.npy' claims 4294967040 bytes of "
                                              r"data from \d+ stored bytes"):
        fastconv.load(path)
    # a stored member larger than the file, and one whose two sizes disagree
    fastconv.save({"w": np.arange(12, dtype=np.float32)}, path)
    size = os.path.getsize(path)
    _set_sizes_in_central_directory(path, "w.npy", compress_size=size + 1)
    with pytest.raises(CheckpointError, match=f"more than the whole file \\({size} bytes"):
        fastconv.load(path)
    fastconv.save({"w": np.arange(12, dtype=np.float32)}, path)
    _set_sizes_in_central_directory(path, "w.npy", file_size=1 << 31)
    with pytest.raises(CheckpointError, match="claims 2147483648 bytes of data"):
        fastconv.load(path)
    # a member that is not an .npy array at all
    fastconv.save({"w": np.arange(12, dtype=np.float32)}, path)
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("notes.npy", b"just text")
    with pytest.raises(CheckpointError, match=r"member 'notes\.npy' is not a readable \.npy"):
        fastconv.load(path)
    # a compression numpy never writes (its ratio is unbounded)
    with zipfile.ZipFile(tmp_path / "bz.npz", "w", zipfile.ZIP_BZIP2) as z:
        z.writestr("w.npy", b"x" * 100)
    with pytest.raises(CheckpointError, match="compressed with zip method 12, which numpy"):
        fastconv.load(str(tmp_path / "bz.npz"))


def test_a_header_nested_too_deeply_is_a_checkpoint_error(tmp_path):
    deep = {"format": ck.FORMAT, "version": ck.VERSION, "tree": "[" * 100_000 + "]" * 100_000}
    text = json.dumps(deep).replace('"[', "[").replace(']"', "]")
    path = tmp_path / "deep.npz"
    np.savez(path, **{ck.HEADER: np.frombuffer(text.encode(), np.uint8)})
    with pytest.raises(CheckpointError, match="nested too deeply"):
        fastconv.load(str(path))
