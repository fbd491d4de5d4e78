"""CIFAR-10, its official "python version": the pickled batch files read without running
code (only the globals those files need are allowed), as a directory or the .tar.gz."""

from __future__ import annotations

import io
import os
import pickle
import tarfile

import numpy as np

from .dataset import ArrayDataset, DataError, is_tarball
from .download import check_md5, download_url
from .image_folder import ImageFolder

__all__ = ["CIFAR10", "CIFAR10_CLASSES", "CIFAR10_MD5", "CIFAR10_URL", "looks_like_cifar"]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR10_TEST = ["test_batch"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck"]


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
        if is_tarball(root):
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
        where = root if not is_tarball(root) and not root.endswith(".tar.gz") else \
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


def looks_like_cifar(path: str) -> bool:
    if os.path.isdir(path):
        return any(os.path.isfile(os.path.join(p, n))
                   for p in (path, os.path.join(path, CIFAR10_DIR))
                   for n in (CIFAR10_TRAIN[0], CIFAR10_TEST[0])) or os.path.isfile(
            os.path.join(path, CIFAR10_ARCHIVE))
    if is_tarball(path):
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
