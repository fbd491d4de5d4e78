"""Image folders, ``root/<class>/<image>``, as a directory or a .tar(.gz) archive.

Images are decoded once, on first use (or all at once in threads), into a preallocated
``uint8`` array, so epochs after the first do no decoding; the decoded array can be cached on
disk so later runs skip decoding altogether."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from fastconv.files import atomic_open

from .dataset import DataError, is_tarball

__all__ = ["IMAGE_EXTENSIONS", "ImageFolder"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".gif", ".webp", ".tif",
                    ".tiff")


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
        elif is_tarball(root):
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
