"""Datasets: CIFAR-10 (the official "python version") and image folders.

Every dataset here holds its images as ``uint8`` arrays of shape (H, W, C)
(channels last, as decoded) and its labels as ``int64``. Besides the usual
``len(ds)`` and ``ds[i] -> (image, label)`` each one has
``get_batch(indices) -> (images (N, H, W, C) uint8, labels (N,) int64)``,
which :class:`fastconv.data.DataLoader` uses to gather a whole batch with one
fancy-indexing copy instead of N Python calls. ``targets`` (all labels as an
array) and ``classes`` (class names, index = label) follow torchvision.

Decoded images are cached: an image file is decoded once, on first use, into a
preallocated ``uint8`` array, so epochs after the first do no decoding at all.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import tarfile
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from fastconv.files import atomic_open

__all__ = [
    "CIFAR10",
    "ArrayDataset",
    "DataError",
    "ImageFolder",
    "Subset",
    "check_md5",
    "download_url",
    "open_dataset",
    "split_per_class",
]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR10_TEST = ["test_batch"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".gif", ".webp", ".tif",
                    ".tiff")


class DataError(ValueError):
    """A dataset is missing, malformed or inconsistent (the message says which file and why)."""


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------

def check_md5(path: str, md5: str, chunk: int = 1 << 20) -> bool:
    """True when the MD5 digest of the file at ``path`` equals ``md5`` (hex)."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest() == md5.lower()


def download_url(url: str, dest: str, md5: str | None = None, timeout: float = 30.0,
                 progress: bool = True) -> str:
    """Download ``url`` to ``dest`` (atomically: a temporary file, then rename), check ``md5``.

    Raises OSError (from urllib) when the network is unreachable and DataError
    when the downloaded file's MD5 differs from ``md5``.
    """
    os.makedirs(os.path.dirname(os.path.abspath(dest)) or ".", exist_ok=True)
    tmp = dest + ".part"
    with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0)
        bar = None
        if progress:
            try:
                from tqdm import tqdm

                bar = tqdm(total=total or None, unit="B", unit_scale=True,
                           desc=f"downloading {os.path.basename(dest)}")
            except ImportError:  # pragma: no cover - tqdm is a dependency
                bar = None
        while True:
            block = response.read(1 << 20)
            if not block:
                break
            out.write(block)
            if bar is not None:
                bar.update(len(block))
        if bar is not None:
            bar.close()
    if md5 is not None and not check_md5(tmp, md5):
        os.remove(tmp)
        raise DataError(f"downloaded {url} but its MD5 is not {md5}: the download is corrupt; "
                        "try again")
    os.replace(tmp, dest)
    return dest


def _is_tarball(path: str) -> bool:
    return os.path.isfile(path) and path.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2",
                                                   ".tar.xz"))


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler for CIFAR's official batch files only.

    The python-version files are pickled dicts holding a NumPy uint8 array, a
    list of labels and byte strings. Only the globals needed to rebuild those
    are allowed: a file that references anything else (code execution) is
    rejected.
    """

    _ALLOWED = frozenset({
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
        ("copy_reg", "_reconstructor"),
        ("copyreg", "_reconstructor"),
        ("__builtin__", "object"),
        ("builtins", "object"),
    })

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed in a CIFAR "
                                         "batch file")
        if module == "numpy.core.multiarray":
            module = "numpy._core.multiarray" if hasattr(np, "_core") else module
        elif module == "copy_reg":
            module = "copyreg"
        elif module == "__builtin__":
            module = "builtins"
        return super().find_class(module, name)


def _load_cifar_pickle(raw: bytes, name: str) -> dict:
    try:
        obj = _CifarUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as e:
        raise DataError(f"{name}: not a CIFAR-10 python-version batch file ({e})") from e
    if not isinstance(obj, dict):
        raise DataError(f"{name}: not a CIFAR-10 python-version batch file (holds "
                        f"{type(obj).__name__}, expected a dict)")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}


# ------------------------------------------------------------------------------------------------
# base classes
# ------------------------------------------------------------------------------------------------

class ArrayDataset:
    """A dataset over in-memory arrays: ``images`` (N, H, W, C) uint8 and ``labels`` (N,).

    Also the base of :class:`CIFAR10`; useful for tests and for data already in memory.
    """

    def __init__(self, images: np.ndarray, labels, classes=None):
        images = np.asarray(images)
        labels = np.asarray(labels)
        if images.ndim == 3:  # (N, H, W) grey images
            images = images[..., None]
        if images.ndim != 4:
            raise DataError(f"ArrayDataset: images must be (N, H, W, C), got shape {images.shape}")
        if labels.shape != (images.shape[0],):
            raise DataError(f"ArrayDataset: {images.shape[0]} images but labels have shape "
                            f"{labels.shape}")
        if labels.dtype.kind not in "iu":
            raise DataError(f"ArrayDataset: labels must be integers, got {labels.dtype}")
        self.images = images
        self.targets = labels.astype(np.int64)
        if classes is None:
            classes = [str(i) for i in range(int(self.targets.max()) + 1 if len(labels) else 0)]
        self.classes = list(classes)
        t = self.targets
        if len(t) and (t.min() < 0 or t.max() >= len(self.classes)):
            raise DataError(f"ArrayDataset: labels must lie in [0, {len(self.classes)}), got "
                            f"[{self.targets.min()}, {self.targets.max()}]")

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i):
        return self.images[i], int(self.targets[i])

    def get_batch(self, indices):
        indices = np.asarray(indices, dtype=np.int64)
        return self.images[indices], self.targets[indices]

    @property
    def image_shape(self) -> tuple:
        """(H, W, C) of every image."""
        return tuple(self.images.shape[1:])

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self)} images of {self.image_shape}, "
                f"{len(self.classes)} classes)")


class Subset:
    """The images of ``dataset`` at ``indices`` (shares the parent's cache)."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        self.targets = np.asarray(dataset.targets)[self.indices]
        self.classes = dataset.classes

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):
        return self.dataset[int(self.indices[i])]

    def get_batch(self, indices):
        return self.dataset.get_batch(self.indices[np.asarray(indices, dtype=np.int64)])

    @property
    def image_shape(self) -> tuple:
        return self.dataset.image_shape

    def __repr__(self) -> str:
        return f"Subset({len(self)} of {self.dataset!r})"


def split_per_class(targets, per_class: int, mode: str = "last", seed: int = 0):
    """Split indices into (train, val) holding back ``per_class`` images of every class.

    ``mode="last"`` takes the last ``per_class`` images of each class in dataset
    order (deterministic, as the data README suggests); ``mode="random"`` draws
    them with ``seed``. Raises DataError when a class has too few images.
    Returns two sorted int64 index arrays.
    """
    targets = np.asarray(targets)
    val = []
    rng = np.random.default_rng(seed)
    for c in np.unique(targets):
        idx = np.flatnonzero(targets == c)
        if len(idx) <= per_class:
            raise DataError(f"split_per_class: class {c} has {len(idx)} images, cannot hold back "
                            f"{per_class} for validation and still train on it")
        if mode == "last":
            val.append(idx[-per_class:])
        elif mode == "random":
            val.append(rng.choice(idx, per_class, replace=False))
        else:
            raise ValueError(f"split_per_class: mode must be 'last' or 'random', got {mode!r}")
    val = np.sort(np.concatenate(val)) if val else np.zeros(0, np.int64)
    mask = np.ones(len(targets), bool)
    mask[val] = False
    return np.flatnonzero(mask).astype(np.int64), val.astype(np.int64)


# ------------------------------------------------------------------------------------------------
# CIFAR-10
# ------------------------------------------------------------------------------------------------

class CIFAR10(ArrayDataset):
    """CIFAR-10 from the official "python version" (Krizhevsky, 2009).

    ``root`` may be the ``cifar-10-batches-py`` directory itself, a directory
    that contains it or the archive ``cifar-10-python.tar.gz``, or the path of
    a ``.tar.gz`` archive (read without unpacking). ``train=True`` reads
    ``data_batch_1..5`` (50,000 images), ``train=False`` reads ``test_batch``
    (10,000). Class names come from ``batches.meta``.

    When nothing is found and ``download`` is true, the archive is fetched from
    the official address into ``root`` and its MD5 checked
    (``c58f30108f718f92721af3b95e74349a``). When that is impossible (no
    network) a DataError says where to put the file. An archive named
    ``cifar-10-python.tar.gz`` is always checked against the official MD5
    (``md5=None`` turns that off); other archive names are read as they are.

    Images: ``uint8`` (N, 32, 32, 3), channels last.
    """

    def __init__(self, root: str, train: bool = True, download: bool = True,
                 md5: str | None = CIFAR10_MD5, url: str = CIFAR10_URL):
        self.root = root
        self.train = train
        names = CIFAR10_TRAIN if train else CIFAR10_TEST
        source = self._locate(root, download, md5, url)
        if os.path.isdir(source):
            files = {}
            for n in names + ["batches.meta"]:
                p = os.path.join(source, n)
                if os.path.isfile(p):
                    with open(p, "rb") as f:
                        files[n] = f.read()
        else:
            files = self._read_tar(source, names + ["batches.meta"])
        missing = [n for n in names if n not in files]
        if missing:
            raise DataError(f"CIFAR10: {source} lacks {', '.join(missing)} (expected the official "
                            f"python-version files {', '.join(names)})")
        images, labels = [], []
        for n in names:
            d = _load_cifar_pickle(files[n], os.path.join(source, n))
            if "data" not in d or "labels" not in d:
                raise DataError(f"CIFAR10: {os.path.join(source, n)} has no 'data'/'labels' "
                                f"entries (keys: {sorted(map(str, d))})")
            data = np.asarray(d["data"])
            if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
                raise DataError(f"CIFAR10: {os.path.join(source, n)}: 'data' must be uint8 "
                                f"(N, 3072), got {data.dtype} {data.shape}")
            lab = np.asarray(d["labels"], dtype=np.int64)
            if lab.shape != (data.shape[0],):
                raise DataError(f"CIFAR10: {os.path.join(source, n)}: {data.shape[0]} images but "
                                f"{lab.size} labels")
            images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            labels.append(lab)
        classes = CIFAR10_CLASSES
        if "batches.meta" in files:
            meta = _load_cifar_pickle(files["batches.meta"], os.path.join(source, "batches.meta"))
            names_ = meta.get("label_names")
            if names_:
                classes = [x.decode() if isinstance(x, bytes) else str(x) for x in names_]
        super().__init__(np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels),
                         classes)
        self.source = source

    @staticmethod
    def _locate(root: str, download: bool, md5: str | None, url: str) -> str:
        """The batches directory or the archive to read, downloading it when allowed."""
        if _is_tarball(root):
            if os.path.basename(root) == CIFAR10_ARCHIVE and md5 and not check_md5(root, md5):
                raise DataError(f"CIFAR10: {root} does not have the official MD5 {md5}: the file "
                                f"is corrupt or incomplete; delete it and download it again from "
                                f"{url}")
            return root
        if os.path.isdir(root):
            if os.path.isfile(os.path.join(root, CIFAR10_TRAIN[0])) or os.path.isfile(
                    os.path.join(root, CIFAR10_TEST[0])):
                return root
            sub = os.path.join(root, CIFAR10_DIR)
            if os.path.isdir(sub):
                return sub
            archive = os.path.join(root, CIFAR10_ARCHIVE)
            if os.path.isfile(archive):
                return CIFAR10._locate(archive, download, md5, url)
        elif os.path.exists(root):
            raise DataError(f"CIFAR10: {root} is neither a directory nor a .tar.gz archive")
        where = root if not _is_tarball(root) and not root.endswith(".tar.gz") else \
            os.path.dirname(root) or "."
        archive = os.path.join(where, CIFAR10_ARCHIVE)
        how = (f"Download {url} (MD5 {md5 or CIFAR10_MD5}) by hand and put it at {archive} "
               f"(or unpack it there so that {os.path.join(where, CIFAR10_DIR)}/data_batch_1 "
               "exists).")
        if not download:
            raise DataError(f"CIFAR10: no CIFAR-10 data at {root}. {how}")
        try:
            download_url(url, archive, md5)
        except DataError:
            raise
        except Exception as e:
            raise DataError(f"CIFAR10: no CIFAR-10 data at {root}, and downloading it failed "
                            f"({type(e).__name__}: {e}). {how}") from e
        return archive

    @staticmethod
    def _read_tar(path: str, names) -> dict:
        wanted = set(names)
        files = {}
        try:
            with tarfile.open(path, "r:*") as tar:
                for m in tar:
                    base = m.name.rsplit("/", 1)[-1]
                    if m.isfile() and base in wanted:
                        files[base] = tar.extractfile(m).read()
        except (tarfile.TarError, OSError, EOFError) as e:
            raise DataError(f"CIFAR10: cannot read the archive {path} ({e}): it is truncated or "
                            "not a tar archive") from e
        return files


# ------------------------------------------------------------------------------------------------
# image folders
# ------------------------------------------------------------------------------------------------

class ImageFolder:
    """Images in ``root/<class>/<name>.png|.jpg|...``, from a directory or a tar(.gz) archive.

    Args:
        root: a directory or a ``.tar``/``.tar.gz``/``.tgz`` archive of such a tree
            (read straight from the archive; nothing is unpacked to disk).
        subdir: pick one tree when the archive or directory holds several, e.g.
            ``"train"`` for ``x/train/<class>/...`` next to ``x/validation/<class>/...``
            (a path fragment matched against whole path components).
        classes: the class names in label order; default: the sorted folder names
            (as torchvision's ImageFolder). Folders not listed are ignored.
        size: ``(H, W)`` to resize every image to on decoding (bilinear); default:
            keep the size, which must then be the same for all images.
        mode: PIL mode to convert to, "RGB" (default) or "L".
        cache_dir: keep the decoded images in ``cache_dir`` as one ``.npz`` (written
            once every image has been decoded); a later ImageFolder of the same
            source (same archive size and time stamp, or the same files, sizes and
            time stamps in a directory) and options loads it instead of reading and
            decoding the files again. Default: no disk cache.

    The class folders are the parent directories of the image files; their
    common parent is the dataset root, found automatically: ``cifar10-jpeg-
    train.tar.gz`` (``cifar10-jpeg/train/<class>/*.jpg``) can be passed as it is.
    Files whose names start with '.' are skipped. Images are decoded with PIL
    on first use and cached as one ``uint8`` (N, H, W, C) array.
    """

    def __init__(self, root: str, subdir: str | None = None, classes=None, size=None,
                 mode: str = "RGB", cache_dir: str | None = None):
        self.root = root
        self.mode = mode
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self._lock = threading.Lock()
        self._cache_file = None
        self._first_file = None     # the image whose size the cache took (for size errors)
        self.cache_hit = False
        if os.path.isdir(root):
            entries, folders = self._scan_dir(root)
            self._raw = None
            if cache_dir:
                sig = [(e, os.stat(os.path.join(root, e)).st_size,
                        os.stat(os.path.join(root, e)).st_mtime_ns) for e in sorted(entries)]
                self._cache_file = self._cache_name(cache_dir, sig, subdir, classes)
                if self._load_cache():
                    return
        elif _is_tarball(root):
            if cache_dir:
                st = os.stat(root)
                self._cache_file = self._cache_name(cache_dir, [st.st_size, st.st_mtime_ns],
                                                    subdir, classes)
                if self._load_cache():
                    return
            entries, self._raw, folders = self._scan_tar(root)
        elif os.path.exists(root):
            raise DataError(f"ImageFolder: {root} is neither a directory nor a tar archive "
                            "(.tar, .tar.gz, .tgz)")
        else:
            raise DataError(f"ImageFolder: {root} does not exist")
        if subdir:
            frag = "/" + subdir.strip("/") + "/"
            entries = [e for e in entries if frag in "/" + e]
        if not entries:
            raise DataError(f"ImageFolder: no image files ({', '.join(IMAGE_EXTENSIONS)}) under "
                            f"{root}" + (f" matching subdir={subdir!r}" if subdir else ""))
        class_dirs = sorted({e.rsplit("/", 1)[0] for e in entries if "/" in e})
        if len(class_dirs) != len({e.rsplit("/", 1)[0] for e in entries}):
            raise DataError(f"ImageFolder: {root} has image files at its top level; expected "
                            "root/<class>/<image>")
        roots = sorted({d.rsplit("/", 1)[0] if "/" in d else "" for d in class_dirs})
        if len(roots) > 1:
            raise DataError(f"ImageFolder: {root} holds image folders under several roots "
                            f"({', '.join(r or '.' for r in roots)}); choose one with subdir=...")
        prefix = roots[0]
        self.prefix = prefix
        found = sorted({d.rsplit("/", 1)[-1] for d in class_dirs})
        # Every folder beside the class folders is a class too (as in torchvision): one
        # without images is an error, not a dropped class that would shift the labels.
        siblings = {d.rsplit("/", 1)[-1] for d in folders
                    if (d.rsplit("/", 1)[0] if "/" in d else "") == prefix}
        empty = sorted(siblings - set(found) - {"__MACOSX"})  # macOS zip/tar metadata
        if classes is not None:
            classes = list(classes)
            empty = [c for c in classes if c in empty]
            unknown = [c for c in classes if c not in found and c not in empty]
            if unknown:
                raise DataError(f"ImageFolder: classes {unknown} have no folder under "
                                f"{os.path.join(root, prefix)} (found: {found})")
        if empty:
            where = ", ".join((f"{root}:{prefix}/{c}" if prefix else f"{root}:{c}")
                              if self._raw is not None else os.path.join(root, prefix, c)
                              for c in empty)
            raise DataError(f"ImageFolder: found no image files ({', '.join(IMAGE_EXTENSIONS)}) "
                            f"for the class{'es' if len(empty) > 1 else ''} "
                            f"{', '.join(empty)}: {where} "
                            f"{'are' if len(empty) > 1 else 'is'} empty; add images, remove the "
                            "folder, or list the classes to use with classes=[...]")
        if classes is None:
            classes = found
        index = {c: i for i, c in enumerate(classes)}
        items = []
        for e in sorted(entries):
            cls = e.rsplit("/", 2)[-2]
            if cls in index:
                items.append((e, index[cls]))
        if not items:
            raise DataError(f"ImageFolder: none of the classes {classes} has images under {root}")
        self.classes = classes
        self.files = [e for e, _ in items]
        self.targets = np.array([t for _, t in items], dtype=np.int64)
        if self._raw is not None:  # keep only the bytes of the selected images
            self._raw = {f: self._raw[f] for f in self.files}
        self._cache = None          # uint8 (N, H, W, C) once the first image is decoded
        self._have = np.zeros(len(self.files), bool)
        self._cache_written = False

    # -- disk cache -------------------------------------------------------------------------------
    def _cache_name(self, cache_dir, signature, subdir, classes) -> str:
        key = json.dumps({"root": os.path.realpath(self.root), "sig": signature,
                          "subdir": subdir, "classes": classes, "size": self.size,
                          "mode": self.mode, "v": 1}, sort_keys=True)
        digest = hashlib.sha1(key.encode()).hexdigest()[:16]
        base = os.path.basename(self.root.rstrip("/")) or "data"
        return os.path.join(os.path.expanduser(cache_dir), f"imagefolder-{base}-{digest}.npz")

    def _load_cache(self) -> bool:
        path = self._cache_file
        if not path or not os.path.isfile(path):
            return False
        try:
            with np.load(path, allow_pickle=False) as z:
                images, targets = z["images"], z["targets"]
                files, classes = [str(f) for f in z["files"]], [str(c) for c in z["classes"]]
                prefix = str(z["prefix"])
        except Exception:  # noqa: BLE001 - a damaged cache is only a slower start
            return False
        if images.ndim != 4 or len(images) != len(files) or len(targets) != len(files):
            return False
        self.classes, self.files, self.targets, self.prefix = classes, files, targets, prefix
        self._cache = images
        self._have = np.ones(len(files), bool)
        self._raw = None
        self._cache_written = True
        self.cache_hit = True
        return True

    def _maybe_write_cache(self) -> None:
        if self._cache_file is None or self._cache_written or not self._have.all():
            return
        with self._lock:
            if self._cache_written:
                return
            self._cache_written = True
        try:
            with atomic_open(self._cache_file) as f:
                np.savez(f, images=self._cache, targets=self.targets,
                         files=np.array(self.files), classes=np.array(self.classes),
                         prefix=np.array(self.prefix))
        except OSError:  # a read-only or full disk: the cache is an optimisation only
            pass

    # -- scanning ---------------------------------------------------------------------------------
    @staticmethod
    def _is_image(name: str) -> bool:
        base = name.rsplit("/", 1)[-1]
        return not base.startswith(".") and base.lower().endswith(IMAGE_EXTENSIONS)

    def _scan_dir(self, root: str):
        """(image paths, folder paths), relative to ``root`` with '/' separators."""
        out, folders = [], set()
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            rel = os.path.relpath(dirpath, root).replace(os.sep, "/")
            if rel != ".":
                folders.add(rel)
            for f in filenames:
                if self._is_image(f):
                    out.append(f if rel == "." else f"{rel}/{f}")
        return out, folders

    def _scan_tar(self, path: str):
        """(image member names, {name: bytes}, folder names) of the archive at ``path``."""
        entries, raw, folders = [], {}, set()
        try:
            with tarfile.open(path, "r:*") as tar:
                for m in tar:
                    name = m.name
                    while name.startswith("./"):
                        name = name[2:]
                    name = name.rstrip("/")
                    parts = name.split("/")
                    dirs = parts if m.isdir() else parts[:-1]
                    if any(d.startswith(".") or not d for d in dirs):
                        continue  # hidden folders are skipped, as on disk
                    # A folder is a directory member, or the parent of any file (archives
                    # need not list directories).
                    folders.update("/".join(dirs[:k]) for k in range(1, len(dirs) + 1))
                    if not m.isfile():
                        continue
                    if self._is_image(name):
                        raw[name] = tar.extractfile(m).read()
                        entries.append(name)
        except (tarfile.TarError, OSError, EOFError) as e:
            raise DataError(f"ImageFolder: cannot read the archive {path} ({e}): it is truncated "
                            "or not a tar archive") from e
        return entries, raw, folders

    # -- decoding ---------------------------------------------------------------------------------
    def _read_bytes(self, i: int) -> bytes:
        name = self.files[i]
        if self._raw is not None:
            return self._raw.get(name)  # None: another thread decoded it and dropped the bytes
        with open(os.path.join(self.root, name), "rb") as f:
            return f.read()

    def _decode(self, i: int) -> np.ndarray:
        from PIL import Image

        where = f"{self.root}:{self.files[i]}" if self._raw is not None else \
            os.path.join(self.root, self.files[i])
        raw = self._read_bytes(i)
        if raw is None:
            return None
        try:
            with Image.open(io.BytesIO(raw)) as im:
                im = im.convert(self.mode)
                if self.size is not None and im.size != (self.size[1], self.size[0]):
                    im = im.resize((self.size[1], self.size[0]), Image.BILINEAR)
                a = np.asarray(im, dtype=np.uint8)
        except Exception as e:
            raise DataError(f"ImageFolder: cannot decode {where}: {e}") from e
        if a.ndim == 2:
            a = a[..., None]
        return a

    def _store(self, i: int, a: np.ndarray) -> None:
        if self._cache is None:
            with self._lock:
                if self._cache is None:
                    self._first_file = self.files[i]
                    self._cache = np.empty((len(self.files),) + a.shape, np.uint8)
        if a.shape != self._cache.shape[1:]:
            h, w = self._cache.shape[1:3]
            raise DataError(f"ImageFolder: the images under {self.root} have different sizes "
                            f"(W x H: {w}x{h} in {self._first_file}, {a.shape[1]}x{a.shape[0]} "
                            f"in {self.files[i]}); resize them on loading: --image-size N "
                            "(models.train_cifar) or size=(H, W) (ImageFolder, open_dataset)")
        self._cache[i] = a
        self._have[i] = True
        if self._raw is not None:
            self._raw.pop(self.files[i], None)  # the encoded bytes are no longer needed

    def _ensure(self, indices) -> None:
        missing = np.unique(indices[~self._have[indices]])
        if len(missing) == 0:
            return
        for i in missing:
            i = int(i)
            if not self._have[i]:
                a = self._decode(i)
                if a is not None:
                    self._store(i, a)
        self._maybe_write_cache()

    def decode_all(self, num_threads: int | None = None, progress: bool = False):
        """Decode every image now (in ``num_threads`` threads) instead of on first use."""
        todo = np.flatnonzero(~self._have)
        if len(todo) == 0:
            return self
        self._ensure(todo[:1])  # fixes the cache shape
        todo = todo[1:]
        num_threads = num_threads or min(8, os.cpu_count() or 1)
        chunks = np.array_split(todo, max(1, min(len(todo), num_threads * 8)))
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(todo) + 1, initial=1, desc="decoding images", unit="img")

        def work(chunk):
            self._ensure(chunk)
            if bar is not None:
                bar.update(len(chunk))

        with ThreadPoolExecutor(num_threads) as pool:
            list(pool.map(work, [c for c in chunks if len(c)]))
        if bar is not None:
            bar.close()
        return self

    @property
    def images(self) -> np.ndarray:
        """All images as one uint8 (N, H, W, C) array (decodes what is not cached yet)."""
        self.decode_all()
        return self._cache

    @property
    def image_shape(self) -> tuple:
        """(H, W, C) of the images (decodes the first one if needed)."""
        if self._cache is None:
            self._ensure(np.array([0]))
        return tuple(self._cache.shape[1:])

    # -- dataset protocol -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i):
        i = int(i)
        if i < 0:
            i += len(self)
        self._ensure(np.array([i]))
        return self._cache[i], int(self.targets[i])

    def get_batch(self, indices):
        indices = np.asarray(indices, dtype=np.int64)
        self._ensure(indices)
        return self._cache[indices], self.targets[indices]

    def __repr__(self) -> str:
        return (f"ImageFolder({self.root!r}, {len(self)} images, {len(self.classes)} classes"
                + (f", prefix={self.prefix!r}" if self.prefix else "") + ")")


def open_dataset(path: str, train: bool = True, subdir: str | None = None, size=None,
                 download: bool = False, cache_dir: str | None = None):
    """Open ``path`` as CIFAR-10 (python version) or as an image folder, whichever it is.

    CIFAR-10 is recognised by its batch files (``data_batch_1``/``test_batch``,
    in ``path``, in ``path/cifar-10-batches-py`` or inside the archive);
    anything else is read as an :class:`ImageFolder`. For image folders
    ``train`` is ignored (pick the tree with ``subdir``); ``cache_dir`` is
    ImageFolder's disk cache of decoded images.
    """
    if _looks_like_cifar(path):
        return CIFAR10(path, train=train, download=False)
    if not os.path.exists(path) and download:
        return CIFAR10(path, train=train, download=True)
    return ImageFolder(path, subdir=subdir, size=size, cache_dir=cache_dir)


def _looks_like_cifar(path: str) -> bool:
    if os.path.isdir(path):
        return any(os.path.isfile(os.path.join(p, n))
                   for p in (path, os.path.join(path, CIFAR10_DIR))
                   for n in (CIFAR10_TRAIN[0], CIFAR10_TEST[0])) or os.path.isfile(
            os.path.join(path, CIFAR10_ARCHIVE))
    if _is_tarball(path):
        if os.path.basename(path) == CIFAR10_ARCHIVE:
            return True
        try:
            with tarfile.open(path, "r:*") as tar:
                for k, m in enumerate(tar):
                    base = m.name.rsplit("/", 1)[-1]
                    if base in (CIFAR10_TRAIN[0], CIFAR10_TEST[0], "batches.meta"):
                        return True
                    if ImageFolder._is_image(m.name) or k > 50:
                        return False
        except (tarfile.TarError, OSError, EOFError):
            return False
    return False
