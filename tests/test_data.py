"""fastconv.data: datasets in every supported format, transforms, the threaded loader.

All data is generated here (tiny CIFAR-10 python-version batches, image folders of
PNG and JPEG files, as directories and as .tar.gz); nothing depends on the real
CIFAR-10 files.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

PIL = pytest.importorskip("PIL")
from PIL import Image

from fastconv.data import (
    CIFAR10,
    ArrayDataset,
    DataError,
    DataLoader,
    ImageFolder,
    Subset,
    make_transform,
    open_dataset,
    split_per_class,
)
from fastconv.data import cifar as ds_mod
from fastconv.data import transforms as T

CLASSES = ["cat", "dog", "frog"]


# ------------------------------------------------------------------------------------------------
# generators of test data
# ------------------------------------------------------------------------------------------------

def write_cifar_batches(folder, rng, per_batch=6, n_test=5):
    """The official python-version layout: pickled dicts with bytes keys (protocol 2)."""
    os.makedirs(folder, exist_ok=True)
    truth = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        n = n_test if name == "test_batch" else per_batch
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        d = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
             b"filenames": [f"img{i}.png".encode() for i in range(n)]}
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump(d, f, protocol=2)
        truth[name] = (data, labels)
    meta = {b"num_cases_per_batch": per_batch, b"label_names": [c.encode() for c in
                                                                ds_mod.CIFAR10_CLASSES],
            b"num_vis": 3072}
    with open(os.path.join(folder, "batches.meta"), "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return truth


def make_tar(src_dir, tar_path, arcname):
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(src_dir, arcname=arcname)
    return tar_path


def write_image_folder(root, rng, per_class=4, size=(10, 12), ext=".png", classes=CLASSES,
                       sizes=None):
    """root/<class>/<k><ext>; returns {relative path: pixels} of what was written."""
    written = {}
    for c in classes:
        os.makedirs(os.path.join(root, c), exist_ok=True)
        for k in range(per_class):
            h, w = sizes[k % len(sizes)] if sizes else size
            a = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
            rel = f"{c}/{k:04d}{ext}"
            Image.fromarray(a).save(os.path.join(root, rel), quality=95)
            written[rel] = a
    return written


# ------------------------------------------------------------------------------------------------
# CIFAR-10
# ------------------------------------------------------------------------------------------------

def _expected(truth, names):
    data = np.concatenate([truth[n][0] for n in names])
    labels = np.concatenate([truth[n][1] for n in names])
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def test_cifar10_python_version_dir_parent_and_tarball(tmp_path, rng):
    batches = tmp_path / "cifar-10-batches-py"
    truth = write_cifar_batches(str(batches), rng)
    x_train, y_train = _expected(truth, [f"data_batch_{i}" for i in range(1, 6)])
    x_test, y_test = _expected(truth, ["test_batch"])
    tar = make_tar(str(batches), str(tmp_path / "mycifar.tar.gz"), "cifar-10-batches-py")
    for root in (str(batches), str(tmp_path), tar):
        tr = CIFAR10(root, train=True, download=False)
        te = CIFAR10(root, train=False, download=False)
        assert tr.images.dtype == np.uint8 and tr.images.shape == (30, 32, 32, 3)
        np.testing.assert_array_equal(tr.images, x_train)
        np.testing.assert_array_equal(tr.targets, y_train)
        np.testing.assert_array_equal(te.images, x_test)
        np.testing.assert_array_equal(te.targets, y_test)
        assert tr.classes == ds_mod.CIFAR10_CLASSES
    # the pixel layout: row = 1024 red, 1024 green, 1024 blue values, each row-major 32x32
    img, label = tr[3]
    row = truth["data_batch_1"][0][3]
    assert img[5, 7, 0] == row[5 * 32 + 7] and img[5, 7, 2] == row[2048 + 5 * 32 + 7]
    assert label == truth["data_batch_1"][1][3]
    assert isinstance(open_dataset(tar), CIFAR10)
    assert isinstance(open_dataset(str(tmp_path)), CIFAR10)


def test_cifar10_missing_without_network_says_where_to_put_it(tmp_path, monkeypatch):
    def no_network(url, dest, md5=None, **kw):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(ds_mod, "download_url", no_network)
    with pytest.raises(DataError) as e:
        CIFAR10(str(tmp_path / "nowhere"), download=True)
    msg = str(e.value)
    assert "Network is unreachable" in msg and ds_mod.CIFAR10_URL in msg
    assert os.path.join(str(tmp_path / "nowhere"), "cifar-10-python.tar.gz") in msg
    assert ds_mod.CIFAR10_MD5 in msg
    with pytest.raises(DataError, match="by hand"):
        CIFAR10(str(tmp_path / "nowhere"), download=False)


def test_cifar10_download_is_checked_and_used(tmp_path, monkeypatch, rng):
    """A 'download' (served from a local file) lands in root, passes its MD5 and is read."""
    batches = tmp_path / "src" / "cifar-10-batches-py"
    write_cifar_batches(str(batches), rng)
    archive = make_tar(str(batches), str(tmp_path / "src" / "a.tar.gz"), "cifar-10-batches-py")
    md5 = hashlib.md5(Path(archive).read_bytes()).hexdigest()
    url = "file://" + archive
    ds = CIFAR10(str(tmp_path / "root"), download=True, md5=md5, url=url)
    assert len(ds) == 30
    assert os.path.isfile(tmp_path / "root" / "cifar-10-python.tar.gz")
    with pytest.raises(DataError, match="MD5"):  # the archive is not the official one
        CIFAR10(str(tmp_path / "root2"), download=True, url=url)
    assert not os.path.exists(tmp_path / "root2" / "cifar-10-python.tar.gz")


def test_cifar10_official_name_with_wrong_md5_is_rejected(tmp_path, rng):
    batches = tmp_path / "b" / "cifar-10-batches-py"
    write_cifar_batches(str(batches), rng)
    tar = make_tar(str(batches), str(tmp_path / "cifar-10-python.tar.gz"), "cifar-10-batches-py")
    with pytest.raises(DataError, match="official MD5"):
        CIFAR10(tar, download=False)
    assert len(CIFAR10(tar, download=False, md5=None)) == 30  # the check can be turned off


def test_cifar10_bad_files_are_rejected(tmp_path, rng):
    batches = tmp_path / "cifar-10-batches-py"
    write_cifar_batches(str(batches), rng)
    # a pickle that would run code is refused, not executed
    with open(batches / "data_batch_2", "wb") as f:
        pickle.dump({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0],
                     b"x": os.getcwd}, f, protocol=2)
    with pytest.raises(DataError, match="not allowed"):
        CIFAR10(str(tmp_path), download=False)
    # wrong shape
    with open(batches / "data_batch_2", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f, protocol=2)
    with pytest.raises(DataError, match=r"uint8 \(N, 3072\)"):
        CIFAR10(str(tmp_path), download=False)
    # garbage and a missing batch
    (batches / "data_batch_2").write_bytes(b"this is not a pickle")
    with pytest.raises(DataError, match="data_batch_2"):
        CIFAR10(str(tmp_path), download=False)
    os.remove(batches / "data_batch_2")
    with pytest.raises(DataError, match="lacks data_batch_2"):
        CIFAR10(str(tmp_path), download=False)
    # a truncated archive
    batches2 = tmp_path / "c" / "cifar-10-batches-py"
    write_cifar_batches(str(batches2), rng)
    tar = make_tar(str(batches2), str(tmp_path / "c.tar.gz"), "cifar-10-batches-py")
    raw = Path(tar).read_bytes()
    Path(tar).write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="truncated"):
        CIFAR10(tar, download=False)


# ------------------------------------------------------------------------------------------------
# image folders
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_image_folder_dir_and_tarball(tmp_path, rng, ext):
    root = tmp_path / "tree" / "train"
    written = write_image_folder(str(root), rng, ext=ext)
    tar = make_tar(str(tmp_path / "tree"), str(tmp_path / "tree.tar.gz"), "mydata")
    a = ImageFolder(str(root))
    b = ImageFolder(tar)  # root prefix mydata/train found automatically
    assert a.classes == b.classes == CLASSES
    assert b.prefix == "mydata/train"
    assert len(a) == len(b) == 12
    np.testing.assert_array_equal(a.targets, np.repeat([0, 1, 2], 4))
    np.testing.assert_array_equal(a.targets, b.targets)
    xa, _ya = a.get_batch(np.arange(12))
    xb, _yb = b.get_batch(np.arange(12))
    assert xa.dtype == np.uint8 and xa.shape == (12, 10, 12, 3)
    np.testing.assert_array_equal(xa, xb)  # same bytes decoded the same way
    if ext == ".png":  # lossless: exactly the pixels written
        truth = np.stack([written[f] for f in a.files])
    else:  # lossy: exactly what PIL decodes from each file
        truth = np.stack([np.asarray(Image.open(root / f).convert("RGB")) for f in a.files])
    np.testing.assert_array_equal(xa, truth)
    img, label = b[-1]
    np.testing.assert_array_equal(img, xb[-1])
    assert label == 2
    assert isinstance(open_dataset(tar), ImageFolder)


def test_image_folder_layouts_and_errors(tmp_path, rng):
    tree = tmp_path / "x"
    write_image_folder(str(tree / "train"), rng, per_class=2)
    write_image_folder(str(tree / "validation"), rng, per_class=1)
    (tree / "labels.txt").write_text("\n".join(CLASSES))
    tar = make_tar(str(tree), str(tmp_path / "x.tgz"), "x")
    for src in (str(tree), tar):
        with pytest.raises(DataError, match="several roots.*subdir"):
            ImageFolder(src)
        assert len(ImageFolder(src, subdir="train")) == 6
        assert len(ImageFolder(src, subdir="validation")) == 3
    # an explicit class list fixes the label order and may leave classes out
    ds = ImageFolder(str(tree / "train"), classes=["frog", "cat"])
    assert ds.classes == ["frog", "cat"] and len(ds) == 4
    assert [ds.files[i].split("/")[0] for i in np.flatnonzero(ds.targets == 0)] == ["frog"] * 2
    with pytest.raises(DataError, match="no folder"):
        ImageFolder(str(tree / "train"), classes=["cat", "unicorn"])
    # nothing there / not a dataset / missing
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image files"):
        ImageFolder(str(tmp_path / "empty"))
    (tmp_path / "file.txt").write_text("hello")
    with pytest.raises(DataError, match="neither a directory nor a tar"):
        ImageFolder(str(tmp_path / "file.txt"))
    with pytest.raises(DataError, match="does not exist"):
        ImageFolder(str(tmp_path / "absent"))
    # images at the top level, without class folders
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(flat / "a.png")
    with pytest.raises(DataError, match="top level"):
        ImageFolder(str(flat))


def test_image_folder_bad_images_and_sizes(tmp_path, rng):
    root = tmp_path / "mixed"
    write_image_folder(str(root), rng, per_class=2, sizes=[(8, 8), (12, 10)])
    ds = ImageFolder(str(root))
    with pytest.raises(DataError, match=r"size=\(H, W\)"):
        ds.get_batch(np.arange(len(ds)))
    resized = ImageFolder(str(root), size=(9, 7))
    x, _ = resized.get_batch(np.arange(len(resized)))
    assert x.shape == (6, 9, 7, 3)
    # a broken file names itself
    (root / "dog" / "0001.png").write_bytes(b"\x89PNG not really")
    ds = ImageFolder(str(root), size=(9, 7))
    with pytest.raises(DataError, match=r"dog/0001\.png"):
        ds.get_batch(np.arange(len(ds)))
    # grey images become RGB by default, stay one channel with mode="L"
    grey = tmp_path / "grey" / "a"
    grey.mkdir(parents=True)
    g = rng.integers(0, 256, (5, 5), dtype=np.uint8)
    Image.fromarray(g).save(grey / "0.png")
    np.testing.assert_array_equal(ImageFolder(str(tmp_path / "grey"))[0][0],
                                  np.repeat(g[..., None], 3, axis=2))
    assert ImageFolder(str(tmp_path / "grey"), mode="L")[0][0].shape == (5, 5, 1)
    # a truncated archive
    tar = make_tar(str(tmp_path / "grey"), str(tmp_path / "g.tar.gz"), "g")
    raw = Path(tar).read_bytes()
    Path(tar).write_bytes(raw[:40])
    with pytest.raises(DataError, match="truncated"):
        ImageFolder(tar)


def _files_only_tar(src_dir, tar_path, arcname):
    """A .tar.gz of the files under ``src_dir`` without directory members (as some tools
    write them): folders exist only as the parents of files."""
    with tarfile.open(tar_path, "w:gz") as tar:
        for dirpath, _, filenames in os.walk(src_dir):
            for f in filenames:
                full = os.path.join(dirpath, f)
                tar.add(full, arcname=f"{arcname}/{os.path.relpath(full, src_dir)}")
    return tar_path


@pytest.mark.parametrize("content", ["nothing", "a text file"])
def test_an_empty_class_folder_is_an_error_naming_it(tmp_path, rng, content):
    root = tmp_path / "data" / "train"
    write_image_folder(str(root), rng, per_class=2)
    empty = sorted(rng.choice(["ant", "bee", "zebra", "dog2"], int(rng.integers(1, 3)),
                              replace=False).tolist())
    for name in empty:
        (root / name).mkdir()
        if content == "a text file":
            (root / name / "notes.txt").write_text("no images yet")
    (root / ".ipynb_checkpoints").mkdir()  # hidden folders are not classes
    sources = {str(root): [str(root / n) for n in empty]}
    tar = make_tar(str(tmp_path / "data"), str(tmp_path / "d.tar.gz"), "d")
    sources[tar] = [f"{tar}:d/train/{n}" for n in empty]
    if content == "a text file":
        bare = _files_only_tar(str(tmp_path / "data"), str(tmp_path / "bare.tgz"), "d")
        with tarfile.open(bare) as t:
            assert not any(m.isdir() for m in t.getmembers())
        sources[bare] = [f"{bare}:d/train/{n}" for n in empty]
    for src, where in sources.items():
        with pytest.raises(DataError) as e:
            ImageFolder(src)
        msg = str(e.value)
        assert msg.startswith("ImageFolder: found no image files (.png, .jpg")
        assert f"for the class{'es' if len(empty) > 1 else ''} {', '.join(empty)}: " in msg
        assert ", ".join(where) + (" are empty" if len(empty) > 1 else " is empty") in msg
        # naming the classes to use leaves the empty folder out; naming it is the same error
        ds = ImageFolder(src, classes=CLASSES[::-1])
        assert ds.classes == CLASSES[::-1] and len(ds) == 2 * len(CLASSES)
        with pytest.raises(DataError, match=f"for the class {empty[-1]}: {where[-1]} is empty"):
            ImageFolder(src, classes=[CLASSES[0], empty[-1]])
    # with every class folder filled, the hidden folder alone is no error
    for name in empty:
        write_image_folder(str(root), rng, per_class=1, classes=[name])
    assert ImageFolder(str(root)).classes == sorted(CLASSES + empty)


@pytest.mark.parametrize("source", ["dir", "tar"])
def test_the_size_error_says_how_to_resize_in_python_and_on_the_command_line(tmp_path, rng,
                                                                              source):
    sizes = [(int(rng.integers(4, 9)), int(rng.integers(4, 9)))]
    sizes.append((sizes[0][0] + int(rng.integers(1, 4)), sizes[0][1]))
    root = tmp_path / "imgs"
    per_class = int(rng.integers(2, 4))
    write_image_folder(str(root), rng, per_class=per_class, sizes=sizes[::int(rng.choice([1, -1]))])
    src = str(root) if source == "dir" else make_tar(str(root), str(tmp_path / "i.tgz"), "imgs")
    ds = ImageFolder(src)
    # which image fixes the size and which one first differs, read with PIL independently
    whs = [Image.open(root / f.split("/", 1)[-1] if source == "tar" else root / f).size
           for f in ds.files]
    first = next(i for i, wh in enumerate(whs) if wh != whs[0])
    with pytest.raises(DataError) as e:
        ds.get_batch(np.arange(len(ds)))
    msg = str(e.value)
    assert (f"have different sizes (W x H: {whs[0][0]}x{whs[0][1]} in {ds.files[0]}, "
            f"{whs[first][0]}x{whs[first][1]} in {ds.files[first]})") in msg
    assert "--image-size N (models.train_cifar)" in msg and "size=(H, W)" in msg
    # and what it says works
    h, w = int(rng.integers(3, 9)), int(rng.integers(3, 9))
    x, _ = ImageFolder(src, size=(h, w)).get_batch(np.arange(len(ds)))
    assert x.shape == (len(ds), h, w, 3)


def test_images_are_decoded_once(tmp_path, rng, monkeypatch):
    root = tmp_path / "d"
    write_image_folder(str(root), rng, per_class=5)
    ds = ImageFolder(str(root))
    calls = []
    orig = ImageFolder._decode

    def counting(self, i):
        calls.append(i)
        return orig(self, i)

    monkeypatch.setattr(ImageFolder, "_decode", counting)
    loader = DataLoader(ds, batch_size=4, shuffle=True, seed=1, num_workers=2)
    first = [x for x, _ in loader]
    assert sorted(calls) == list(range(15))
    second = [x for x, _ in loader]
    assert len(calls) == 15  # the second epoch decodes nothing
    assert sum(len(x) for x in second) == sum(len(x) for x in first) == 15
    # decode_all on a fresh dataset: every image once, in threads
    calls.clear()
    ds2 = ImageFolder(str(root)).decode_all(num_threads=3)
    assert sorted(calls) == list(range(15))
    np.testing.assert_array_equal(ds2.images, ds.images)


# ------------------------------------------------------------------------------------------------
# splits and subsets
# ------------------------------------------------------------------------------------------------

def test_split_per_class(rng):
    targets = rng.permutation(np.repeat(np.arange(4), 10))
    train, val = split_per_class(targets, 3)
    assert len(val) == 12 and len(train) == 28
    assert not set(train) & set(val) and set(train) | set(val) == set(range(40))
    for c in range(4):
        idx = np.flatnonzero(targets == c)
        np.testing.assert_array_equal(np.sort(val[targets[val] == c]), idx[-3:])
    _tr2, va2 = split_per_class(targets, 3, mode="random", seed=5)
    assert np.bincount(targets[va2]).tolist() == [3] * 4
    assert split_per_class(targets, 3, mode="random", seed=5)[1].tolist() == va2.tolist()
    with pytest.raises(DataError, match="cannot hold back"):
        split_per_class(targets, 10)
    ds = ArrayDataset(rng.integers(0, 256, (40, 4, 4, 3), dtype=np.uint8), targets)
    sub = Subset(ds, val)
    x, y = sub.get_batch([0, 2])
    np.testing.assert_array_equal(x, ds.images[val[[0, 2]]])
    np.testing.assert_array_equal(y, targets[val[[0, 2]]])


def test_array_dataset_rejects_bad_input(rng):
    with pytest.raises(DataError, match="labels"):
        ArrayDataset(np.zeros((3, 4, 4, 3), np.uint8), [0, 1])
    with pytest.raises(DataError, match=r"\[0, 2\)"):
        ArrayDataset(np.zeros((2, 4, 4, 3), np.uint8), [0, 5], classes=["a", "b"])
    with pytest.raises(DataError, match="integers"):
        ArrayDataset(np.zeros((2, 4, 4, 3), np.uint8), [0.5, 1.0])


# ------------------------------------------------------------------------------------------------
# loader
# ------------------------------------------------------------------------------------------------

def _toy(rng, n=37, hw=6):
    return ArrayDataset(rng.integers(0, 256, (n, hw, hw, 3), dtype=np.uint8),
                        rng.integers(0, 5, n), classes=list("abcde"))


def test_loader_covers_each_sample_once_per_epoch(rng):
    ds = _toy(rng)
    ds.images[:, 0, 0, 0] = np.arange(len(ds))  # tag each image with its index
    loader = DataLoader(ds, batch_size=8, shuffle=True, seed=3, num_workers=2)
    assert len(loader) == 5
    orders = []
    for _ in range(2):
        batches = list(loader)
        assert [len(y) for _, y in batches] == [8, 8, 8, 8, 5]
        seen = np.concatenate([x[:, 0, 0, 0] for x, _ in batches])
        assert sorted(seen.tolist()) == list(range(37))
        ys = np.concatenate([y for _, y in batches])
        np.testing.assert_array_equal(ys, ds.targets[seen])
        orders.append(seen)
    assert loader.epoch == 2
    assert orders[0].tolist() != orders[1].tolist()  # a new permutation every epoch
    assert DataLoader(ds, batch_size=8, drop_last=True).__len__() == 4
    plain = np.concatenate([x[:, 0, 0, 0] for x, _ in DataLoader(ds, batch_size=8)])
    assert plain.tolist() == list(range(37))


def test_loader_is_reproducible_and_resumable(rng):
    ds = _toy(rng, n=50, hw=8)
    tf = make_transform("crop-flip", train=True, input_size=8, image_size=8, padding=2)

    def run(workers, epoch, start=0, seed=11):
        loader = DataLoader(ds, batch_size=7, shuffle=True, seed=seed, transform=tf,
                            num_workers=workers, prefetch=3)
        return list(loader.iter_epoch(epoch, start_batch=start))

    ref = run(0, 4)
    for other in (run(3, 4), run(1, 4)):  # threads do not change a single bit
        for (xa, ya), (xb, yb) in zip(ref, other, strict=True):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
    tail = run(2, 4, start=3)  # resuming at batch 3 gives the rest of the same epoch
    assert len(tail) == len(ref) - 3
    for (xa, _), (xb, _) in zip(ref[3:], tail, strict=True):
        np.testing.assert_array_equal(xa, xb)
    other_seed = run(0, 4, seed=12)
    assert not np.array_equal(ref[0][0], other_seed[0][0])
    # the state is (seed, epoch)
    loader = DataLoader(ds, batch_size=7, shuffle=True, seed=11, transform=tf)
    loader.set_epoch(4)
    state = loader.state_dict()
    fresh = DataLoader(ds, batch_size=7, shuffle=True, seed=0, transform=tf)
    fresh.load_state_dict(state)
    np.testing.assert_array_equal(next(iter(fresh))[0], ref[0][0])


def test_loader_breaking_out_early_and_item_datasets(rng):
    class ItemsOnly:  # no get_batch: the loader stacks items
        def __init__(self, n):
            self.x = rng.integers(0, 256, (n, 3, 3, 1), dtype=np.uint8)

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return self.x[i], i % 2

    d = ItemsOnly(10)
    loader = DataLoader(d, batch_size=4, num_workers=2)
    it = iter(loader)
    x, y = next(it)
    np.testing.assert_array_equal(x, d.x[:4])
    assert y.dtype == np.int64 and y.tolist() == [0, 1, 0, 1]
    it.close()  # stops the threads; the epoch does not count as finished
    assert loader.epoch == 0
    with pytest.raises(ValueError):
        DataLoader(d, batch_size=0)


@pytest.mark.parametrize("kw,name", [({"batch_size": 2.5}, "batch_size"),
                                     ({"batch_size": "4"}, "batch_size"),
                                     ({"batch_size": True}, "batch_size"),
                                     ({"batch_size": None}, "batch_size"),
                                     ({"prefetch": -1}, "prefetch"),
                                     ({"prefetch": 2.5}, "prefetch"),
                                     ({"num_workers": 1.5}, "num_workers"),
                                     ({"num_workers": "2"}, "num_workers"),
                                     ({"seed": 0.5}, "seed"), ({"seed": -1}, "seed"),
                                     ({"num_replicas": 2.0}, "num_replicas"),
                                     ({"num_replicas": 2, "rank": 1.0}, "rank")], ids=str)
def test_loader_refuses_non_integer_arguments(kw, name):
    """Not truncated (batch_size=2.5 is not 2) and not a comparison TypeError: a ValueError
    naming the argument (torch's message for batch_size)."""
    ds = ArrayDataset(np.zeros((10, 4, 4, 3), np.uint8), np.zeros(10, np.int64))
    with pytest.raises(ValueError, match=rf"\b{name}=") as info:
        DataLoader(ds, **kw)
    if name == "batch_size":
        assert "batch_size should be a positive integer value" in str(info.value)


# ------------------------------------------------------------------------------------------------
# transforms
# ------------------------------------------------------------------------------------------------

def test_random_crop_offsets_are_windows_and_uniform(rng):
    n, h = 4000, 6
    x = np.broadcast_to(np.arange(h * h, dtype=np.int32).reshape(1, h, h, 1) + 1,
                        (n, h, h, 1))
    out = T.RandomCrop(4, padding=1)(x, rng)
    assert out.shape == (n, 4, 4, 1)
    padded = np.pad(x[:1], ((0, 0), (1, 1), (1, 1), (0, 0)))[0, :, :, 0]
    windows = {padded[i:i + 4, j:j + 4].tobytes(): (i, j) for i in range(5) for j in range(5)}
    # every output is one window of the padded image; count how often each offset was drawn
    offsets = [windows.get(img.tobytes()) for img in np.ascontiguousarray(out[:, :, :, 0])]
    assert None not in offsets
    counts = np.unique(np.array(offsets), axis=0, return_counts=True)[1]
    assert len(counts) == 25  # 6 + 2*1 - 4 + 1 = 5 positions per axis, all reached
    expected = n / 25
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 60  # 24 degrees of freedom: p < 1e-4 for a fair draw


def test_random_crop_negative_padding_crops_and_bad_padding_is_refused(rng):
    """Negative padding crops, as torchvision's pad does (batch and per sample alike)."""
    x = rng.integers(0, 256, (20, 10, 12, 3), dtype=np.uint8)
    out = T.RandomCrop(4, padding=-2)(x, rng)
    inner = x[:, 2:8, 2:10]
    for o, a in zip(out, inner):
        assert any(np.array_equal(a[i:i + 4, j:j + 4], o) for i in range(3) for j in range(5))
    one = T.RandomCrop(6, padding=(-3, -2))(x[0])  # (left/right, top/bottom)
    np.testing.assert_array_equal(one, x[0, 2:8, 3:9])
    assert T.RandomCrop(6, padding=(-3, -2))(Image.fromarray(x[0])).size == (6, 6)
    with pytest.raises(ValueError, match="padding=-5 crops away the whole"):
        T.RandomCrop(4, padding=-5)(x, rng)
    with pytest.raises(ValueError, match="padding=-6 crops away the whole"):
        T.RandomCrop(4, padding=-6)(x[0])
    for bad in [1.5, "2", (1, 2.0), (1, True)]:
        with pytest.raises(TypeError, match="padding"):
            T.RandomCrop(4, padding=bad)
    with pytest.raises(ValueError, match="4 element tuple"):
        T.RandomCrop(4, padding=(1, 2, 3))


@pytest.mark.parametrize("kw,match", [({"scale": (-1, 0)}, r"scale values should be >= 0"),
                                      ({"scale": (0.9, 0.1)}, r"scale should be of kind \(min"),
                                      ({"scale": (float("nan"), 1)}, r"scale values .*finite"),
                                      ({"scale": (0.5,)}, r"scale should be a sequence"),
                                      ({"ratio": (0, 0)}, r"ratio values should be > 0"),
                                      ({"ratio": (-1, 2)}, r"ratio values should be > 0"),
                                      ({"ratio": (2, 0.5)}, r"ratio should be of kind \(min"),
                                      ({"ratio": (1, float("inf"))}, r"ratio values .*finite")],
                         ids=str)
def test_random_resized_crop_refuses_bad_ranges(kw, match):
    with pytest.raises(ValueError, match=match):
        T.RandomResizedCrop(5, **kw)


def test_random_resized_crop_accepts_torchvisions_ranges(rng):
    img = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    for kw in [{"scale": (0, 0)}, {"scale": (0.5, 2.0)}, {"ratio": (1, 1)}, {"scale": [0.3, 0.3]}]:
        assert T.RandomResizedCrop(5, **kw)(img).shape == (5, 5, 3)
    with pytest.raises(TypeError, match="scale should be a sequence"):
        T.RandomResizedCrop(5, scale=0.5)


def test_center_crop_and_flip(rng):
    x = rng.integers(0, 256, (500, 7, 9, 3), dtype=np.uint8)
    c = T.CenterCrop((3, 5))(x)
    np.testing.assert_array_equal(c, x[:, 2:5, 2:7])
    f = T.RandomHorizontalFlip(p=0.3)(x, rng)
    flipped = np.array([np.array_equal(a, b[:, ::-1]) for a, b in zip(f, x)])
    kept = np.array([np.array_equal(a, b) for a, b in zip(f, x)])
    assert np.all(flipped | kept)
    assert 0.2 < flipped.mean() < 0.4
    with pytest.raises(ValueError, match="larger"):
        T.CenterCrop(10)(x)


def test_brightness_contrast_statistics(rng):
    n = 3000
    x = rng.random((n, 5, 5, 3), dtype=np.float32)
    d = 0.25
    b = T.RandomBrightness(d)(x, rng)
    delta = (b - x).reshape(n, -1)
    assert np.allclose(delta, delta[:, :1], atol=1e-6)  # one delta per image
    delta = delta[:, 0]
    assert np.abs(delta).max() <= d + 1e-6
    assert abs(delta.mean()) < 0.02 and abs(delta.var() - d * d / 3) < 0.003  # uniform(-d, d)
    c = T.RandomContrast(0.2, 1.8)(x, rng)
    np.testing.assert_allclose(c.mean(axis=(1, 2)), x.mean(axis=(1, 2)), atol=1e-5)
    ratio = c.std(axis=(1, 2)) / x.std(axis=(1, 2))  # the same factor for all channels
    assert np.allclose(ratio, ratio[:, :1], rtol=1e-3)
    assert ratio.min() >= 0.2 - 1e-4 and ratio.max() <= 1.8 + 1e-4
    assert abs(ratio.mean() - 1.0) < 0.03


def test_standardization_and_normalize(rng):
    x = (rng.integers(0, 256, (50, 6, 6, 3)) * rng.random((50, 1, 1, 1))).astype(np.float32)
    s = T.PerImageStandardization()(x)
    np.testing.assert_allclose(s.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    # unit std, except for images flatter than the divisor's floor 1/sqrt(HWC) (a scale
    # factor below ~0.001 above; about one run in 16 draws one)
    std64 = x.astype(np.float64).std(axis=(1, 2, 3))
    floor = 1 / np.sqrt(x[0].size)
    np.testing.assert_allclose(s.std(axis=(1, 2, 3)), std64 / np.maximum(std64, floor), rtol=1e-4)
    flat = np.full((2, 4, 4, 3), 7.0, np.float32)  # uniform image: no division by zero
    assert np.all(T.PerImageStandardization()(flat) == 0)
    mean, std = rng.random(3), rng.random(3) + 0.5
    nz = T.Normalize(mean, std)(x)
    np.testing.assert_allclose(nz, (x - mean) / std, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="channel"):
        T.Normalize([0.5] * 2, [0.2] * 2)(x)
    chw = T.ToCHW()(x)
    assert chw.flags.c_contiguous and chw.shape == (50, 3, 6, 6)
    np.testing.assert_array_equal(chw[3, 1], x[3, :, :, 1])


def test_make_transform_pipelines(rng):
    x = rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    before = x.copy()
    tut = make_transform("tutorial", train=True, input_size=24)(x, rng)
    ev = make_transform("tutorial", train=False, input_size=24)(x, rng)
    assert tut.shape == ev.shape == (16, 3, 24, 24) and tut.dtype == ev.dtype == np.float32
    np.testing.assert_allclose(ev.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    # evaluation is the standardised centre crop, deterministic
    ref = T.PerImageStandardization()(x[:, 4:28, 4:28].astype(np.float32) / 255)
    np.testing.assert_allclose(ev, ref.transpose(0, 3, 1, 2), rtol=1e-5, atol=1e-5)
    cf = make_transform("crop-flip", train=True)(x, rng)
    assert cf.shape == (16, 3, 32, 32)
    np.testing.assert_array_equal(x, before)  # inputs (the cache) are never modified
    with pytest.raises(ValueError, match="augment"):
        make_transform("fancy", train=True)


def test_random_crop_with_fused_flip(rng):
    x = rng.integers(0, 256, (300, 6, 7, 3), dtype=np.uint8)
    out = T.RandomCrop((4, 5), flip_p=0.5)(x, rng)
    n_flipped = 0
    for o, a in zip(out, x):
        plain = [(i, j) for i in range(3) for j in range(3)
                 if np.array_equal(a[i:i + 4, j:j + 5], o)]
        mirrored = [(i, j) for i in range(3) for j in range(3)
                    if np.array_equal(a[i:i + 4, j:j + 5][:, ::-1], o)]
        assert plain or mirrored  # a window of the image, read left-to-right or mirrored
        n_flipped += bool(mirrored) and not plain
    assert 0.35 < n_flipped / len(x) < 0.65


def test_decoded_images_disk_cache(tmp_path, rng, monkeypatch):
    root = tmp_path / "tree" / "train"
    write_image_folder(str(root), rng, per_class=3, ext=".jpg")
    tar = make_tar(str(tmp_path / "tree"), str(tmp_path / "t.tar.gz"), "t")
    cache = tmp_path / "cache"
    for src in (tar, str(root)):
        first = ImageFolder(src, cache_dir=str(cache))
        assert not first.cache_hit
        first.decode_all(num_threads=2)
        files = sorted(os.listdir(cache))
        assert any(f.endswith(".npz") for f in files)

        def no_decoding(self, i):
            raise AssertionError("decoded although cached")

        monkeypatch.setattr(ImageFolder, "_decode", no_decoding)
        again = ImageFolder(src, cache_dir=str(cache))
        assert again.cache_hit
        np.testing.assert_array_equal(again.images, first.images)
        np.testing.assert_array_equal(again.targets, first.targets)
        assert again.files == first.files and again.classes == first.classes
        monkeypatch.undo()
        # other options are another cache entry
        assert not ImageFolder(src, cache_dir=str(cache), size=(5, 5)).cache_hit
    # a changed source is not served from the stale cache
    img = root / "dog" / "0001.jpg"
    Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(img)
    os.utime(img, ns=(1, 1))
    changed = ImageFolder(str(root), cache_dir=str(cache))
    assert not changed.cache_hit
    np.testing.assert_array_equal(changed[4][0], np.asarray(Image.open(img).convert("RGB")))
