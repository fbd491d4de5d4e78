"""torchvision's base data sets and smoke-test data set in fastconv.data.datasets:
VisionDataset (and StandardTransform), DatasetFolder with find_classes / make_dataset, and
FakeData; ImageFolder as a DatasetFolder and CIFAR10 as a VisionDataset."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

import fastconv
from fastconv.data import datasets
from fastconv.data import transforms as T
from fastconv.utils import data as D

# ------------------------------------------------------------------------------------------------
# VisionDataset
# ------------------------------------------------------------------------------------------------


def test_vision_dataset_transforms_and_repr(rng):
    class _Pairs(datasets.VisionDataset):
        def __init__(self, values, **kw):
            super().__init__("~/somewhere", **kw)
            self.values = values

        def __getitem__(self, i):
            x, y = self.values[i], i
            return (x, y) if self.transforms is None else self.transforms(x, y)

        def __len__(self):
            return len(self.values)

    values = [float(v) for v in rng.standard_normal(int(rng.integers(2, 7)))]
    ds = _Pairs(values)
    assert ds.root == os.path.expanduser("~/somewhere") and ds.transforms is None
    assert ds[1] == (values[1], 1)
    assert isinstance(ds, D.Dataset)
    assert repr(ds) == (f"Dataset _Pairs\n    Number of datapoints: {len(values)}\n"
                        f"    Root location: {ds.root}")
    ds = _Pairs(values, transform=lambda x: 2 * x, target_transform=lambda y: y + 10)
    assert isinstance(ds.transforms, datasets.StandardTransform)
    assert ds[0] == (2 * values[0], 10)
    ds = _Pairs(values, target_transform=str)
    assert ds.transform is None and ds[1] == (values[1], "1")
    joint = _Pairs(values, transforms=lambda x, y: (y, x))
    assert joint[1] == (1, values[1]) and joint.transform is None
    with pytest.raises(ValueError, match="Only transforms or transform/target_transform"):
        _Pairs(values, transforms=lambda x, y: (x, y), transform=abs)
    # torchvision's layout: the StandardTransform's later lines are not indented
    ds = _Pairs(values, transform=T.ToTensor())
    assert repr(ds).endswith("\n    StandardTransform\nTransform: ToTensor()")
    with pytest.raises(NotImplementedError):
        datasets.VisionDataset()[0]


# ------------------------------------------------------------------------------------------------
# DatasetFolder, find_classes, make_dataset
# ------------------------------------------------------------------------------------------------

def _tree(root, rng, classes):
    """root/<class>/[sub/]<k>.npy with fresh arrays, plus a .txt beside each class's files;
    returns {path: (array, class name)} of the .npy files."""
    files = {}
    for c in classes:
        for k in range(int(rng.integers(1, 4))):
            folder = root / c / ("sub" if k == 2 else "")
            folder.mkdir(parents=True, exist_ok=True)
            a = rng.standard_normal(int(rng.integers(1, 5))).astype(np.float32)
            np.save(folder / f"{k}.npy", a)
            files[str(folder / f"{k}.npy")] = (a, c)
        (root / c / "notes.txt").write_text("not data")
    return files


def test_dataset_folder_reads_a_tree_of_any_files(tmp_path, rng):
    classes = ["zebra", "ant", "moth"][:int(rng.integers(2, 4))]
    files = _tree(tmp_path, rng, classes)
    ds = datasets.DatasetFolder(tmp_path, loader=np.load, extensions=(".npy",))
    assert isinstance(ds, datasets.VisionDataset) and isinstance(ds, D.Dataset)
    assert ds.classes == sorted(classes)
    assert ds.class_to_idx == {c: i for i, c in enumerate(sorted(classes))}
    expected = sorted((p, ds.class_to_idx[c]) for p, (_, c) in files.items())
    assert ds.samples == expected and ds.targets == [t for _, t in expected]
    assert len(ds) == len(files) and ds.loader is np.load and ds.extensions == (".npy",)
    for i in range(len(ds)):
        x, y = ds[i]
        np.testing.assert_array_equal(x, files[ds.samples[i][0]][0])
        assert y == ds.targets[i]
    # transforms, and the same samples picked by a predicate instead of extensions
    ds2 = datasets.DatasetFolder(str(tmp_path), loader=np.load,
                                 transform=lambda a: a.sum(), target_transform=lambda y: -y,
                                 is_valid_file=lambda p: p.endswith(".npy"))
    assert ds2.samples == ds.samples and ds2.extensions is None
    x, y = ds2[len(ds2) - 1]
    assert y == -ds.targets[-1] and np.isclose(x, files[ds.samples[-1][0]][0].sum())
    # a string extension, upper case on disk
    (tmp_path / classes[0] / "extra.NPY").write_bytes((tmp_path / classes[0] / "0.npy")
                                                      .read_bytes())
    assert len(datasets.DatasetFolder(tmp_path, np.load, extensions=".npy")) == len(ds) + 1
    # batches through the DataLoader when the items are the same size
    fixed = datasets.DatasetFolder(tmp_path, np.load, extensions=".npy",
                                   transform=lambda a: np.float32(a[0]))
    xb, yb = next(iter(D.DataLoader(fixed, batch_size=len(fixed))))
    assert xb.shape == (len(fixed),) and yb.numpy().tolist() == fixed.targets


def test_dataset_folder_errors_and_empty_classes(tmp_path, rng):
    files = _tree(tmp_path, rng, ["a", "b"])
    (tmp_path / "c_empty").mkdir()
    with pytest.raises(FileNotFoundError,
                       match="Found no valid file for the classes c_empty. Supported extensions "
                             "are: .npy, .npz"):
        datasets.DatasetFolder(tmp_path, np.load, extensions=(".npy", ".npz"))
    ds = datasets.DatasetFolder(tmp_path, np.load, extensions=(".npy",), allow_empty=True)
    assert ds.classes == ["a", "b", "c_empty"] and len(ds) == len(files)
    for kw in ({}, {"extensions": ".npy", "is_valid_file": bool}):
        with pytest.raises(ValueError, match="Both extensions and is_valid_file"):
            datasets.DatasetFolder(tmp_path, np.load, **kw)
    (tmp_path / "none").mkdir()
    with pytest.raises(FileNotFoundError, match="Couldn't find any class folder"):
        datasets.DatasetFolder(tmp_path / "none", np.load, extensions=".npy")
    with pytest.raises(ValueError, match="class_to_idx parameter cannot be None"):
        datasets.DatasetFolder.make_dataset(str(tmp_path), None, extensions=".npy")
    with pytest.raises(ValueError, match="at least one entry"):
        datasets.make_dataset(str(tmp_path), {}, extensions=".npy")


def test_find_classes_and_make_dataset_functions(tmp_path, rng):
    files = _tree(tmp_path, rng, ["b", "a"])
    (tmp_path / "loose.npy").write_bytes(b"")  # files beside the class folders are not classes
    classes, class_to_idx = datasets.find_classes(tmp_path)
    assert classes == ["a", "b"] and class_to_idx == {"a": 0, "b": 1}
    everything = datasets.make_dataset(str(tmp_path), extensions=".npy")  # its own classes
    assert everything == sorted((p, class_to_idx[c]) for p, (_, c) in files.items())
    only_b = datasets.make_dataset(str(tmp_path), {"b": 7}, is_valid_file=lambda p: "sub" in p,
                                   allow_empty=True)
    assert only_b == sorted((p, 7) for p, (_, c) in files.items() if c == "b" and "sub" in p)
    assert datasets.has_file_allowed_extension("X.PNG", (".png", ".jpg"))
    assert datasets.is_image_file("a/b.webp") and not datasets.is_image_file("a/b.gif")


def test_a_dataset_folder_subclass_chooses_its_classes(tmp_path, rng):
    files = _tree(tmp_path, rng, ["cat", "dog", "eel"])

    class NoEel(datasets.DatasetFolder):
        def find_classes(self, directory):
            return ["dog", "cat"], {"dog": 0, "cat": 1}

    ds = NoEel(tmp_path, np.load, extensions=".npy")
    assert ds.classes == ["dog", "cat"]
    assert sorted(ds.samples) == sorted((p, {"dog": 0, "cat": 1}[c])
                                        for p, (_, c) in files.items() if c != "eel")


# ------------------------------------------------------------------------------------------------
# ImageFolder and CIFAR10 in the hierarchy
# ------------------------------------------------------------------------------------------------

def test_image_folder_is_a_dataset_folder_and_agrees_with_make_dataset(tmp_path, rng):
    for c in ("dog", "cat", "bird"):
        (tmp_path / c).mkdir()
        for k in range(int(rng.integers(1, 4))):
            Image.fromarray(rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)).save(
                tmp_path / c / f"{k}.png")
    ds = datasets.ImageFolder(tmp_path)
    assert isinstance(ds, datasets.DatasetFolder) and isinstance(ds, datasets.VisionDataset)
    classes, class_to_idx = ds.find_classes(str(tmp_path))
    assert (classes, class_to_idx) == (ds.classes, ds.class_to_idx)
    assert ds.make_dataset(str(tmp_path), class_to_idx,
                           extensions=datasets.IMG_EXTENSIONS) == ds.samples
    assert ds.transforms is None and ".png" in ds.extensions
    ds = datasets.ImageFolder(tmp_path, transform=T.ToTensor(), target_transform=lambda y: y * 2,
                              is_valid_file=lambda p: p.endswith("0.png"))
    assert isinstance(ds.transforms, datasets.StandardTransform) and ds.extensions is None
    x, y = ds[len(ds) - 1]
    assert x.shape == (3, 5, 6) and y == 2 * ds.class_to_idx["dog"]


def test_cifar10_is_a_vision_dataset(tmp_path, rng):
    from test_data import write_cifar_batches

    write_cifar_batches(str(tmp_path / "cifar-10-batches-py"), rng)
    ds = datasets.CIFAR10(tmp_path, train=False, target_transform=str)
    assert isinstance(ds, datasets.VisionDataset)
    assert isinstance(ds.transforms, datasets.StandardTransform) and ds.transform is None
    assert isinstance(ds[0][1], str)


# ------------------------------------------------------------------------------------------------
# FakeData
# ------------------------------------------------------------------------------------------------

def test_fake_data_defaults_are_torchvisions():
    ds = datasets.FakeData()
    img, y = ds[int(np.random.default_rng().integers(0, 1000))]
    assert len(ds) == 1000 and isinstance(ds, datasets.VisionDataset)
    assert isinstance(img, Image.Image) and img.mode == "RGB" and img.size == (224, 224)
    assert isinstance(y, int) and 0 <= y < 10
    assert repr(ds) == "Dataset FakeData\n    Number of datapoints: 1000"
    assert (ds.size, ds.image_size, ds.num_classes, ds.random_offset) == (
        1000, (3, 224, 224), 10, 0)


def test_fake_data_is_reproducible_from_index_and_offset(rng):
    n, classes = int(rng.integers(20, 60)), int(rng.integers(2, 6))
    shape = (3, int(rng.integers(2, 9)), int(rng.integers(2, 9)))
    offset = int(rng.integers(1, 1000))
    a = datasets.FakeData(n, shape, classes)
    b = datasets.FakeData(n, shape, classes)
    shifted = datasets.FakeData(n, shape, classes, random_offset=offset)
    state = np.random.get_state()[1].copy()
    fastconv.manual_seed(0)
    before = fastconv.randn(3).numpy()
    targets = []
    for i in range(n):
        x, y = a[i]
        targets.append(y)
        assert x.size == (shape[2], shape[1]) and 0 <= y < classes
        assert np.array_equal(np.asarray(x), np.asarray(b[i][0])) and y == b[i][1]
    np.testing.assert_array_equal(np.asarray(a[-1][0]), np.asarray(a[n - 1][0]))
    fastconv.manual_seed(0)
    np.testing.assert_array_equal(fastconv.randn(3).numpy(), before)  # global state untouched
    np.testing.assert_array_equal(np.random.get_state()[1], state)
    assert len(set(targets)) > 1 and len({np.asarray(a[i][0]).tobytes() for i in range(n)}) == n
    # another offset is another data set: item i is item i + offset of the plain one
    long = datasets.FakeData(n + offset, shape, classes)
    for i in (0, n - 1):
        x, y = shifted[i]
        np.testing.assert_array_equal(np.asarray(x), np.asarray(long[i + offset][0]))
        assert y == long[i + offset][1]
    with pytest.raises(IndexError, match="FakeData index out of range"):
        a[n]
    with pytest.raises(IndexError):
        a[-n - 1]


def test_fake_data_pixels_are_made_as_torchvisions_to_pil_image(rng):
    """torchvision: torch.randn(C, H, W) -> ToPILImage (mul(255).byte(): truncated and
    wrapped). Here the noise comes from NumPy, converted the same way."""
    torch = pytest.importorskip("torch")
    offset, i = int(rng.integers(0, 100)), int(rng.integers(0, 5))
    for c, mode in ((1, "L"), (2, "LA"), (3, "RGB"), (4, "RGBA")):
        shape = (c, int(rng.integers(2, 7)), int(rng.integers(2, 7)))
        img, _ = datasets.FakeData(5, shape, random_offset=offset)[i]
        noise = np.random.default_rng(i + offset).standard_normal(shape, dtype=np.float32)
        expected = torch.from_numpy(noise).mul(255).byte().permute(1, 2, 0).numpy()
        assert img.mode == mode
        np.testing.assert_array_equal(np.asarray(img).reshape(expected.shape), expected)
    img, _ = datasets.FakeData(2, (4, 6))[0]
    assert img.mode == "L" and img.size == (6, 4)
    with pytest.raises(ValueError, match="image_size"):
        datasets.FakeData(2, (5, 4, 4))


def test_fake_data_transforms_and_loader(rng):
    n, h, w = int(rng.integers(5, 12)), int(rng.integers(4, 10)), int(rng.integers(4, 10))
    ds = datasets.FakeData(n, (3, h, w), num_classes=4,
                           transform=T.Compose([T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)]),
                           target_transform=lambda y: y + 100)
    x, y = ds[0]
    assert isinstance(x, fastconv.Tensor) and x.shape == (3, h, w) and 100 <= y < 104
    raw, label = datasets.FakeData(n, (3, h, w), num_classes=4)[0]
    np.testing.assert_allclose(x.numpy(), (np.asarray(raw).transpose(2, 0, 1) / 255 - 0.5) / 0.5,
                               rtol=1e-5, atol=1e-6)
    assert y == label + 100
    xb, yb = next(iter(D.DataLoader(ds, batch_size=n, shuffle=True, num_workers=2)))
    assert xb.shape == (n, 3, h, w) and sorted(yb.numpy().tolist()) == sorted(
        ds[i][1] for i in range(n))
