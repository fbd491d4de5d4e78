"""Checkpoints: NumPy ``.npz`` files, written atomically, read without pickle.

A checkpoint is a nested dict -- model parameters and buffers, optimizer and
scheduler state, epoch and step, random-generator state, the run's
configuration, anything else -- stored as one ``.npz`` archive:

* every array of the tree is one member of the archive, named by its path in
  the tree (``model/conv1.weight``, ``optimizer/state/3/exp_avg``, ...);
* everything else (numbers, strings, lists, dicts, None) goes into a JSON
  header, member ``__fastconv__``, in which each array is a placeholder
  ``{"__ndarray__": "<member name>"}``. The header also names the format and
  its version.

Reading uses ``np.load(..., allow_pickle=False)``: a checkpoint can never run
code, and object arrays are refused when saving; a file that is not a
checkpoint is named for what it is (an image, a PyTorch pickle, ...). Writing
goes to a temporary file in the same directory which is flushed, fsync'ed and
then renamed over the target (``os.replace`` is atomic), so a crash mid-write
leaves the old checkpoint intact; the file gets the permissions of any other
output (0o666 less the umask). The directory is never created: a missing one is an
error, as for ``torch.save``. Before anything is allocated, every member's ``.npy``
header is checked against the member's stored size, so an edited or damaged header
cannot ask for more memory than the member can hold.

PyTorch's pair, ``torch.save(obj, f)`` / ``torch.load(f)``:

    fastconv.save(model.state_dict(), "w.npz")
    model.load_state_dict(fastconv.load("w.npz"))
    fastconv.save({"model": model.state_dict(), "opt": opt.state_dict(), "epoch": 3}, "ck.npz")

:func:`save` takes any nesting of dicts, lists and tuples of fastconv Tensors,
NumPy/CuPy arrays, numbers, strings and None, and :func:`load` returns it as it
was (Tensors as Tensors, arrays as NumPy arrays, tuples as tuples, integer dict
keys as ints). Unlike ``torch.save`` it stores data, not objects: a Module, an
optimizer or any other object is refused with a TypeError that names its
``state_dict()`` -- a fastconv file never holds a pickle.

Training checkpoints (the model zoo's) in one call:

    fastconv.checkpoint.save_training("run/last.npz", model, optimizer, scheduler=sched,
                                      epoch=3, step=1170, config={"lr": 0.1})
    ckpt = fastconv.checkpoint.load_training("run/last.npz", model, optimizer,
                                             scheduler=sched)
    ckpt["epoch"], ckpt["config"]

(These were ``fastconv.save(path, model, ...)`` / ``fastconv.load(path, model, ...)``
before fastconv took PyTorch's argument order; a call in the old order raises a
TypeError that names the new functions.)

Low level: :func:`save_checkpoint` / :func:`load_checkpoint` write and read a
tree as it is; :func:`load_model_state` puts a state dict into a module,
strictly (an error listing missing/unexpected keys and shape mismatches) or
not (loading what fits and reporting the rest).
"""

from __future__ import annotations

import json
import math
import os
import sys
import warnings
import zipfile

import numpy as np

from fastconv.files import atomic_open

__all__ = [
    "FORMAT",
    "VERSION",
    "CheckpointError",
    "load",
    "load_checkpoint",
    "load_model_state",
    "load_training",
    "save",
    "save_checkpoint",
    "save_training",
]

FORMAT = "fastconv-checkpoint"
#: 1: arrays, JSON values, dicts and lists. 2 (written only when used): also Tensors and
#: tuples kept as such (``{"__tensor__": ...}``, ``{"__tuple__": [...]}``).
VERSION = 2
HEADER = "__fastconv__"
_ARRAY_TAG = "__ndarray__"
_ITEMS_TAG = "__items__"     # a dict with non-string keys, stored as [[key, value], ...]
_FLOAT_TAG = "__float__"     # non-finite floats ("nan", "inf", "-inf") kept exact in JSON
_TENSOR_TAG = "__tensor__"   # with _ARRAY_TAG: the array was a fastconv Tensor (version 2)
_TUPLE_TAG = "__tuple__"     # a tuple, kept a tuple (version 2)
_RESERVED = (_ARRAY_TAG, _ITEMS_TAG, _FLOAT_TAG, _TENSOR_TAG, _TUPLE_TAG)


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written or read, or does not fit what it is loaded into."""


class _NoParentDirectory(CheckpointError, FileNotFoundError):
    """The directory a checkpoint is saved into does not exist: a RuntimeError with
    torch.save's message, and a FileNotFoundError, as ``open`` raises."""


# ------------------------------------------------------------------------------------------------
# tree <-> (JSON header, arrays)
# ------------------------------------------------------------------------------------------------

def _to_host(a):
    if isinstance(a, np.ndarray):
        return a
    if type(a).__module__.startswith("cupy"):
        return a.get()
    return None


def _is_tensor(obj) -> bool:
    if isinstance(obj, (np.ndarray, np.generic)):  # (.data of a datetime array raises)
        return False
    return hasattr(obj, "data") and hasattr(obj, "requires_grad") and not isinstance(obj, dict)


def _where(path) -> str:
    return repr("/".join(path)) if path else "the top level"


def _flatten(obj, path, arrays, names, exact=False, used=None, open_=None):
    """JSON-able copy of ``obj`` with arrays moved into ``arrays`` (member name -> ndarray).

    ``exact`` (fastconv.save): Tensors and tuples are tagged so that they come back as
    such, and objects (anything else) are refused; otherwise Tensors are stored as their
    arrays, tuples as lists and objects with ``state_dict()`` as their state dicts.
    ``used`` collects the version-2 tags written. ``open_`` maps the id of each container
    being stored to its path: a container met again inside itself is a reference cycle,
    which a file (a tree) cannot hold -- refused with a ValueError naming both paths."""
    if open_ is None:
        open_ = {}
    if isinstance(obj, (dict, list, tuple)) or (
            not exact and callable(getattr(obj, "state_dict", None)) and not _is_tensor(obj)):
        if id(obj) in open_:
            kind = type(obj).__name__
            raise ValueError(f"{'fastconv.save' if exact else 'save_checkpoint'}: the {kind} at "
                             f"{_where(path)} is the {kind} at {_where(open_[id(obj)])}, which "
                             "contains it (a reference cycle); a file stores a tree of values: "
                             "break the cycle before saving")
        open_[id(obj)] = path
        try:
            return _flatten_value(obj, path, arrays, names, exact, used, open_)
        finally:
            del open_[id(obj)]
    return _flatten_value(obj, path, arrays, names, exact, used, open_)


def _flatten_value(obj, path, arrays, names, exact, used, open_):
    def rec(v, key):
        return _flatten(v, path + [key], arrays, names, exact, used, open_)

    tensor = None
    if _is_tensor(obj):
        tensor = {"requires_grad": bool(obj.requires_grad)}
        if type(obj).__name__ == "Parameter":  # comes back as one, as torch's
            tensor["parameter"] = True
        device = str(getattr(obj, "device", "cpu"))
        if device != "cpu":  # the location a map_location dict or function is asked about
            tensor["device"] = "cuda:0" if device == "cuda" else device
        obj = obj.data  # a fastconv Tensor: store its array
    host = _to_host(obj)
    if host is not None:
        if host.dtype.kind == "O" or host.dtype.hasobject:
            raise CheckpointError(f"save: {'/'.join(path) or 'value'} is an object array; "
                                  "checkpoints hold numeric arrays only (no pickle)")
        name = "/".join(path) or "value"
        name = name.replace("\\", "_")
        base, k = name, 1
        while name in names or name == HEADER:
            name, k = f"{base}~{k}", k + 1
        names.add(name)
        arrays[name] = host if host.flags.c_contiguous else np.array(host, order="C")
        if exact and tensor is not None:
            if used is not None:
                used.add(_TENSOR_TAG)
            return {_ARRAY_TAG: name, _TENSOR_TAG: tensor}
        return {_ARRAY_TAG: name}
    if isinstance(obj, np.generic):
        obj = obj.item()
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {_FLOAT_TAG: repr(obj)}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            if any(t in obj for t in _RESERVED):
                raise CheckpointError(f"save: dict keys {', '.join(map(repr, _RESERVED))} are "
                                      "reserved")
            return {k: rec(v, k) for k, v in obj.items()}
        items = []
        for k, v in obj.items():
            if not isinstance(k, (str, int, float, bool)) and k is not None:
                raise CheckpointError(f"save: dict key {k!r} at {'/'.join(path)} is not a "
                                      "str/int/float/bool")
            kk = k.item() if isinstance(k, np.generic) else k
            items.append([kk, rec(v, str(k))])
        return {_ITEMS_TAG: items}
    if exact and isinstance(obj, tuple):
        if used is not None:
            used.add(_TUPLE_TAG)
        return {_TUPLE_TAG: [rec(v, str(i)) for i, v in enumerate(obj)]}
    if isinstance(obj, (list, tuple)):
        return [rec(v, str(i)) for i, v in enumerate(obj)]
    if exact:
        where = "/".join(path) or "the top level"
        hint = ("; save its state_dict() -- fastconv.save(obj.state_dict(), f) -- and restore "
                "it with obj.load_state_dict(fastconv.load(f))"
                if callable(getattr(obj, "state_dict", None)) else "")
        raise TypeError(f"fastconv.save: cannot store a {type(obj).__name__} at {where}: "
                        "fastconv files hold data (Tensors, arrays, numbers, strings, None, "
                        "and dicts/lists/tuples of them), never pickled objects" + hint)
    if hasattr(obj, "state_dict") and callable(obj.state_dict):
        return _flatten(obj.state_dict(), path, arrays, names, open_=open_)
    raise CheckpointError(f"save: cannot store {type(obj).__name__} at "
                          f"{'/'.join(path) or 'top level'} (store arrays, numbers, strings, "
                          "lists and dicts)")


def _unflatten(obj, arrays, path, make_tensor=None):
    def rec(v):
        return _unflatten(v, arrays, path, make_tensor)

    if isinstance(obj, dict):
        if _ARRAY_TAG in obj:
            name = obj[_ARRAY_TAG]
            if name not in arrays:
                raise CheckpointError(f"{path}: the header refers to array {name!r}, which the "
                                      "file lacks (truncated or edited checkpoint)")
            if _TENSOR_TAG in obj and make_tensor is not None:
                return make_tensor(arrays[name], obj[_TENSOR_TAG])
            return arrays[name]
        if _FLOAT_TAG in obj:
            return float(obj[_FLOAT_TAG])
        if _ITEMS_TAG in obj:
            return {k: rec(v) for k, v in obj[_ITEMS_TAG]}
        if _TUPLE_TAG in obj:
            return tuple(rec(v) for v in obj[_TUPLE_TAG])
        return {k: rec(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [rec(v) for v in obj]
    return obj


# ------------------------------------------------------------------------------------------------
# low level
# ------------------------------------------------------------------------------------------------

def save_checkpoint(path: str, tree: dict, compress: bool = False) -> str:
    """Write the nested dict ``tree`` to ``path`` atomically; return ``path``.

    Arrays (NumPy, CuPy -- copied to the host -- or fastconv Tensors) become
    archive members, the rest a JSON header; objects with ``state_dict()`` are
    stored as their state dict. ``path`` is used as given (no ``.npz`` is
    appended). The file is written to a temporary name in the same directory,
    fsync'ed and renamed over ``path``. The directory must exist: it is not created
    (a CheckpointError, also a FileNotFoundError, with torch.save's message).
    """
    if not isinstance(tree, dict):
        raise CheckpointError(f"save_checkpoint: expected a dict, got {type(tree).__name__}")
    return _write(path, tree, compress, exact=False)


def _write(path, tree, compress: bool, exact: bool):
    """Write ``tree`` to ``path`` (atomically) or to a binary file object; return ``path``."""
    # Everything is checked and encoded before the file is opened: a refused tree leaves
    # no file behind, and an earlier file at ``path`` as it was.
    too_deep = ValueError(f"{'fastconv.save' if exact else 'save_checkpoint'}: the object is "
                          "nested too deeply to store (more levels of dicts/lists/tuples than "
                          f"Python's recursion limit, {sys.getrecursionlimit()}, allows)")
    arrays: dict = {}
    used: set = set()
    try:
        body = _flatten(tree, [], arrays, set(), exact=exact, used=used)
    except RecursionError:
        raise too_deep from None
    header = {"format": FORMAT, "version": 2 if used else 1, "tree": body}
    try:
        text = json.dumps(header, allow_nan=False)
    except RecursionError:  # pragma: no cover - _flatten is deeper per level
        raise too_deep from None
    except (TypeError, ValueError) as e:  # pragma: no cover - _flatten already checked
        raise CheckpointError(f"save_checkpoint: the tree is not serialisable: {e}") from e
    members = {HEADER: np.frombuffer(text.encode("utf-8"), dtype=np.uint8)}
    members.update(arrays)
    writer = np.savez_compressed if compress else np.savez
    if hasattr(path, "write"):  # a binary file object, as torch.save accepts
        writer(path, **members)
        return path
    path = os.fsdecode(path)
    parent = os.path.dirname(path)
    if not os.path.isdir(parent or "."):
        # torch.save's message; the directory is not created (a mistyped path would leave
        # stray directories, even at the file-system root).
        raise _NoParentDirectory(f"Parent directory {parent} does not exist.")
    with atomic_open(path, make_dirs=False) as f:
        writer(f, **members)
    return path


#: What a checkpoint is, for the messages about files that are not one.
_WHAT = ("a fastconv checkpoint (.npz written by fastconv.save / checkpoint.save_training / "
         "models.train_cifar)")
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first member / an empty zip
#: torch.save's legacy (pre-zip) format opens with this number, pickled with protocol 2.
_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
_PICKLE_HINT = ("; it is a pickle, which fastconv does not unpickle (unpickling can run any "
                "code). To reuse PyTorch weights, save them as arrays in PyTorch -- "
                "np.savez('w.npz', **{k: v.numpy() for k, v in state_dict.items()}) -- and "
                "load those with model.load_state_dict(np.load('w.npz'))")
_SIGNATURES = (  # (leading bytes, what the file is)
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"\x93NUMPY", "a single NumPy array (.npy)"),
    (b"\x1f\x8b", "a gzip-compressed file (a .tar.gz data set?)"),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file (Keras .h5?)"),
)


def _text_of(head: bytes):
    """The start of ``head`` as text when it looks like UTF-8 text, else None."""
    if b"\x00" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 3:  # not just a character cut at the end of the sample
            return None
        text = head[:e.start].decode("utf-8")
    text = text.lstrip("\ufeff")
    return text if all(c.isprintable() or c in "\t\r\n\f" for c in text) else None


def _what_is(path: str, head: bytes, size: int) -> tuple[str, str]:
    """(what a file that is not a zip seems to be, a hint or ""), from its first bytes."""
    for magic, what in _SIGNATURES:
        if head.startswith(magic):
            return what, ""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image", ""
    if head.startswith(_TORCH_LEGACY_MAGIC):
        return "a PyTorch pickle file (torch.save's legacy format)", _PICKLE_HINT
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle file (a PyTorch .pt/.pth?)", _PICKLE_HINT
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < size:
        return "a safetensors file", ""
    text = _text_of(head)
    if text is not None:
        if text.lstrip()[:1] in ("{", "[") and size <= 1 << 24:
            try:
                with open(path, encoding="utf-8-sig") as f:
                    json.load(f)
                return "a JSON file", ""
            except (ValueError, OSError):
                pass
        first = text.strip().splitlines()[0] if text.strip() else ""
        return f"a text file (starting {first[:60]!r})", ""
    return f"a file of unknown format (starting with bytes {head[:8].hex(' ')})", ""


def _npz_files_in(directory: str) -> str:
    """' (it holds: a.npz, b.npz)' -- a hint for a path that names the wrong file."""
    try:
        found = sorted(f for f in os.listdir(directory) if f.endswith(".npz"))
    except OSError:
        return ""
    if not found:
        return ""
    return f" (checkpoints in {directory or '.'}: " + ", ".join(found[:8]) + \
        (", ..." if len(found) > 8 else "") + ")"


def _check_is_npz(path: str) -> None:
    """Raise a CheckpointError saying what the file at ``path`` is unless it is a readable
    ``.npz`` archive. Looks only at bytes and zip member names: nothing is unpickled."""
    if not os.path.exists(path):
        raise CheckpointError(f"no checkpoint at {path}: no such file"
                              + _npz_files_in(os.path.dirname(path)))
    if os.path.isdir(path):
        raise CheckpointError(f"{path} is a directory, not a checkpoint file; name the .npz "
                              "file inside it" + _npz_files_in(path))
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as e:
        raise CheckpointError(f"cannot read the checkpoint {path}: {e}") from e
    if not head:
        raise CheckpointError(f"{path} is an empty file (0 bytes), not {_WHAT}; if it was "
                              "meant to be one, its copy or download did not finish")
    if not head.startswith(_ZIP_MAGIC):
        what, hint = _what_is(path, head, size)
        raise CheckpointError(f"{path} is {what}, not {_WHAT}{hint}")
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
                raise CheckpointError(f"{path} is a PyTorch pickle file (torch.save's zip "
                                      f"format), not {_WHAT}{_PICKLE_HINT}")
            if not names or not all(n.endswith(".npy") for n in names):
                shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
                raise CheckpointError(f"{path} is a zip archive (holding {shown or 'nothing'}) "
                                      f"but not an .npz, not {_WHAT}")
            _check_member_sizes(path, zf, size)
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is a truncated or corrupt zip/.npz file ({e}): not a "
                              f"readable checkpoint; if it is one, its copy or download did "
                              "not finish") from e


#: Deflate expands a byte at most about 1032-fold (a 258-byte match coded in 2 bits).
_DEFLATE_MAX_RATIO = 1032


def _check_member_sizes(path: str, zf: zipfile.ZipFile, size: int) -> None:
    """Refuse a member whose sizes cannot be true, before anything is allocated for it.

    ``np.load`` allocates the shape an ``.npy`` header declares and only then reads the
    data, so a few edited header bytes would ask for terabytes (a MemoryError) or gigabytes
    read from a member of a few bytes. The member's stored size bounds its real size: its
    compressed size fits in the file, its uncompressed size follows from that (equal when
    stored, at most ``_DEFLATE_MAX_RATIO`` times when deflated), and the header's
    ``prod(shape) * itemsize`` fits in the uncompressed size after the header."""
    for info in zf.infolist():
        what = f"{path} is corrupt: member {info.filename!r}"
        if info.compress_size > size:
            raise CheckpointError(f"{what} claims {info.compress_size} bytes, more than the "
                                  f"whole file ({size} bytes)")
        if info.compress_type == zipfile.ZIP_STORED:
            bound = info.compress_size
        elif info.compress_type == zipfile.ZIP_DEFLATED:
            bound = info.compress_size * _DEFLATE_MAX_RATIO + 1024
        else:
            raise CheckpointError(f"{path}: member {info.filename!r} is compressed with zip "
                                  f"method {info.compress_type}, which numpy.savez and "
                                  "savez_compressed never use (they store or deflate): not "
                                  f"{_WHAT}")
        if info.file_size > bound:
            raise CheckpointError(f"{what} claims {info.file_size} bytes of data from "
                                  f"{info.compress_size} stored bytes, more than they can hold")
        try:
            with zf.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(member)
                else:
                    shape, _, dtype = np.lib.format._read_array_header(member, version)
                data = info.file_size - member.tell()
        except (ValueError, TypeError, SyntaxError, EOFError, zipfile.BadZipFile,
                OSError) as e:
            raise CheckpointError(f"{what} is not a readable .npy array ({e})") from e
        if dtype.hasobject:
            continue  # refused without reading by np.load(allow_pickle=False), named there
        declared = math.prod(shape) * dtype.itemsize
        if declared > data:
            raise CheckpointError(f"{what}: its .npy header declares shape {tuple(shape)} of "
                                  f"{dtype} ({declared} bytes), larger than the member's "
                                  f"{max(data, 0)} bytes of data (truncated or edited "
                                  "checkpoint)")


def load_checkpoint(path: str, make_tensor=None) -> dict:
    """Read a tree written by :func:`save_checkpoint` (arrays as NumPy arrays on the host).

    Raises CheckpointError with the reason when the file is missing, truncated
    or corrupt, or not a checkpoint -- and then says what it seems to be (an
    image, a text or JSON file, a PyTorch or other pickle file, a zip that is
    not an ``.npz``, an ``.npz`` not written by fastconv) -- or was written by a
    newer version of the format.
    """
    path = os.fspath(path)
    _check_is_npz(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            names = list(z.files)
            if HEADER not in names:
                shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
                raise CheckpointError(f"{path} is an .npz archive without the {HEADER!r} header "
                                      f"(it holds: {shown}), not {_WHAT}; plain weight arrays "
                                      "by parameter name load with "
                                      "model.load_state_dict(np.load(path))")
            header_bytes = z[HEADER]
            arrays = {n: z[n] for n in names if n != HEADER}
    except CheckpointError:
        raise
    except ValueError as e:
        if "pickle" in str(e):
            raise CheckpointError(f"{path} holds pickled object arrays, which fastconv does not "
                                  f"unpickle; not {_WHAT}") from e
        raise CheckpointError(f"{path} is corrupt or not a fastconv checkpoint ({e})") from e
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as e:
        raise CheckpointError(f"{path} is truncated or corrupt: a member of the .npz cannot be "
                              f"read ({type(e).__name__}: {e})") from e
    if isinstance(header_bytes, np.ndarray) and header_bytes.dtype == np.uint8:
        try:
            header = json.loads(header_bytes.tobytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{path}: the checkpoint header is damaged ({e})") from e
        except RecursionError:
            raise CheckpointError(f"{path}: the checkpoint header is nested too deeply to "
                                  "read (not written by fastconv.save)") from None
    else:
        raise CheckpointError(f"{path}: the {HEADER!r} member is not a fastconv header")
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a fastconv checkpoint (format "
                              f"{header.get('format') if isinstance(header, dict) else header!r})")
    if not isinstance(header.get("version"), int) or header["version"] > VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {header.get('version')} is "
                              f"newer than this fastconv reads ({VERSION}); upgrade fastconv")
    try:
        return _unflatten(header["tree"], arrays, path, make_tensor)
    except RecursionError:
        raise CheckpointError(f"{path}: the checkpoint header is nested too deeply to read "
                              "(not written by fastconv.save)") from None


# ------------------------------------------------------------------------------------------------
# models
# ------------------------------------------------------------------------------------------------

def _shape(v):
    return tuple(getattr(v, "shape", np.shape(v)))


def load_model_state(model, state: dict, strict: bool = True, source: str = "checkpoint") -> dict:
    """Load the state dict ``state`` into ``model``; return a report.

    The report is ``{"loaded": [...], "missing": [...], "unexpected": [...],
    "mismatched": [(key, checkpoint_shape, model_shape), ...]}``: keys the model
    has but ``state`` lacks, keys ``state`` has but the model lacks, and keys
    whose shapes differ. With ``strict`` any of these raises CheckpointError
    listing them all, and nothing is loaded; otherwise the entries that fit
    are loaded, the rest skipped (and a warning lists them). A value that is not
    a numeric array (datetimes, strings, ...) raises a CheckpointError naming its
    key in both modes.
    """
    from fastconv.nn.module import incompatible_keys_errors, non_numeric_errors

    own = model.state_dict()
    # A value that is not a numeric array is a damaged file, not a mismatch to skip: refused
    # in both modes.
    bad_values = non_numeric_errors(state, [k for k in own if k in state])
    if bad_values:
        raise CheckpointError(f"Error(s) in loading state_dict for {type(model).__name__} from "
                              f"the {source}:\n\t" + "\n\t".join(bad_values))
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [(k, _shape(state[k]), _shape(own[k])) for k in own
                  if k in state and _shape(state[k]) != _shape(own[k])]
    report = {"missing": missing, "unexpected": unexpected, "mismatched": mismatched}
    # The lines of Module.load_state_dict's error, so both read alike.
    problems = incompatible_keys_errors(missing, unexpected, mismatched)
    if problems and strict:
        raise CheckpointError(f"Error(s) in loading state_dict for {type(model).__name__} from "
                              f"the {source}:\n\t" + "\n\t".join(problems)
                              + "\n(use strict=False to load the entries that fit)")
    bad = {k for k, _, _ in mismatched}
    fitting = {k: np.asarray(v) for k, v in state.items() if k in own and k not in bad}
    model.load_state_dict(fitting, strict=False)
    report["loaded"] = sorted(fitting)
    if problems:
        warnings.warn(f"loaded {len(fitting)} of {len(own)} entries of {type(model).__name__} "
                      f"from the {source}; skipped:\n\t" + "\n\t".join(problems), stacklevel=3)
    return report


# ------------------------------------------------------------------------------------------------
# high level
# ------------------------------------------------------------------------------------------------

def _rng_state():
    try:
        import fastconv

        return fastconv.get_rng_state()
    except (ImportError, AttributeError):  # pragma: no cover - core without an RNG
        return None


def save_training(path: str, model=None, optimizer=None, *, scheduler=None, ema=None,
                  epoch=None, step=None, config=None, rng_state=True, compress: bool = False,
                  **extra) -> str:
    """Save a training checkpoint to ``path`` (atomically; see the module docstring).

    Args:
        model: a ``fastconv.nn.Module``: its ``state_dict()`` (parameters and buffers).
        optimizer, scheduler, ema: objects with ``state_dict()`` (fastconv.optim's).
        epoch, step: ints, stored as they are.
        config: the run's configuration, a JSON-serialisable dict.
        rng_state: store ``fastconv.get_rng_state()`` (True), or a dict to store, or False.
        **extra: further entries: arrays, JSON values, dicts of them, or objects
            with ``state_dict()`` (for example a DataLoader).
    Returns ``path``.
    """
    tree = {}
    if model is not None:
        tree["model"] = model.state_dict()
    if optimizer is not None:
        tree["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        tree["scheduler"] = scheduler.state_dict()
    if ema is not None:
        tree["ema"] = ema.state_dict()
    if epoch is not None:
        tree["epoch"] = int(epoch)
    if step is not None:
        tree["step"] = int(step)
    if config is not None:
        try:
            json.dumps(config)
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"save_training: config must be JSON-serialisable ({e})") \
                from e
        tree["config"] = config
    if rng_state is True:
        rng_state = _rng_state()
    if rng_state:
        tree["rng_state"] = rng_state
    tree.update(extra)
    return save_checkpoint(path, tree, compress=compress)


def load_training(path: str, model=None, optimizer=None, *, scheduler=None, ema=None,
                  strict: bool = True, restore_rng: bool = False) -> dict:
    """Read the checkpoint at ``path`` and restore what is passed in; return its contents.

    Args:
        model: loads ``ckpt["model"]`` into it. ``strict=True`` (default): keys
            and shapes must match exactly, else a CheckpointError lists the
            missing keys, unexpected keys and shape mismatches. ``strict=False``:
            loads the entries that fit and reports the rest (a warning, and
            ``ckpt["skipped"]``) -- e.g. to reuse a network with a new classifier.
        optimizer, scheduler, ema: ``load_state_dict`` from the checkpoint's entry
            (a CheckpointError when the checkpoint has none).
        restore_rng: also ``fastconv.set_rng_state(ckpt["rng_state"])``.
    Returns the checkpoint as a dict (arrays as NumPy arrays): "model",
    "optimizer", "epoch", "step", "config", "rng_state" and any extras, as saved;
    plus "skipped" (the non-strict load report) when a model was given.
    """
    ckpt = load_checkpoint(path)
    if model is not None:
        if "model" not in ckpt:
            raise CheckpointError(f"{path} holds no model state (entries: {sorted(ckpt)})")
        ckpt["skipped"] = load_model_state(model, ckpt["model"], strict=strict,
                                           source=f"checkpoint {os.path.basename(path)}")
    for name, obj in (("optimizer", optimizer), ("scheduler", scheduler), ("ema", ema)):
        if obj is None:
            continue
        if name not in ckpt:
            raise CheckpointError(f"{path} holds no {name} state (entries: {sorted(ckpt)})")
        try:
            obj.load_state_dict(ckpt[name])
        except CheckpointError:
            raise
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{path}: cannot load the {name} state: {e}") from e
    if restore_rng:
        if "rng_state" not in ckpt:
            raise CheckpointError(f"{path} holds no random-generator state")
        import fastconv

        fastconv.set_rng_state(ckpt["rng_state"])
    return ckpt


# ------------------------------------------------------------------------------------------------
# PyTorch's pair: save(obj, f) / load(f)
# ------------------------------------------------------------------------------------------------

_TRAINING_KEYWORDS = ("model", "optimizer", "scheduler", "ema", "epoch", "step", "config",
                      "rng_state", "strict", "restore_rng")


def _is_path(x) -> bool:
    return isinstance(x, (str, bytes, os.PathLike))


def _old_order(fn: str, new: str, detail: str) -> TypeError:
    return TypeError(
        f"fastconv.{fn} now takes PyTorch's arguments -- {fn}({'obj, f' if fn == 'save' else 'f'})"
        f" -- and {detail}. The training-checkpoint helper that took (path, model, optimizer, "
        f"scheduler=..., ...) is fastconv.checkpoint.{new}(path, model, optimizer, ...).")


def save(obj, f=None, pickle_module=None, pickle_protocol=None, *, compress: bool = False,
         **kwargs) -> None:
    """Save ``obj`` to ``f`` (a path or a writable binary file object), as ``torch.save``.

    ``obj`` is any nesting of dicts, lists and tuples of fastconv Tensors, NumPy or
    CuPy arrays (copied to the host), Python or NumPy numbers, strings and None --
    a model's or an optimizer's ``state_dict()``, or a dict holding both and more.
    It is stored as an ``.npz`` archive (one member per array) with a JSON header;
    ``path`` is used as given (no suffix is added) and written atomically; its
    directory must exist, as for ``torch.save`` ("Parent directory ... does not exist.",
    a RuntimeError that is also a FileNotFoundError). A container that holds itself
    (a reference cycle) is refused with a ValueError naming where, and nothing is written.

    Differences from PyTorch, all raised as errors rather than done silently:
    objects (a Module, an optimizer, any class instance) are refused -- store their
    ``state_dict()``; ``pickle_module`` is refused (nothing is ever pickled).
    ``pickle_protocol`` is accepted and ignored. ``compress=True`` (fastconv's
    addition) deflates the archive.
    """
    bad = sorted(k for k in kwargs if k in _TRAINING_KEYWORDS)
    if bad:
        raise _old_order("save", "save_training", f"has no {', '.join(map(repr, bad))} argument")
    for k in kwargs:
        if k not in ("_use_new_zipfile_serialization", "_disable_byteorder_record"):
            raise TypeError(f"fastconv.save() got an unexpected keyword argument {k!r}")
    if _is_path(obj) and not (_is_path(f) or hasattr(f, "write")) and f is not None:
        raise _old_order("save", "save_training", f"was called the old way round, with a path "
                         f"first and a {type(f).__name__} second")
    if f is None:
        if _is_path(obj):
            raise _old_order("save", "save_training", "was given a path but nothing to save")
        raise TypeError("fastconv.save(obj, f): f (a path or a binary file object) is missing")
    if pickle_module is not None:
        raise ValueError("fastconv.save: pickle_module is not supported: fastconv files are "
                         ".npz archives with a JSON header and never hold a pickle")
    if not (_is_path(f) or hasattr(f, "write")):
        raise TypeError(f"fastconv.save: f must be a path or a binary file object, got "
                        f"{type(f).__name__}")
    if isinstance(f, bytes):
        f = os.fsdecode(f)
    _write(f, obj, compress, exact=True)


def _map_target(target, who: str):
    """'cpu' or 'cuda' for a map_location target (a str or a device)."""
    device = str(target)
    if device.startswith("cuda"):
        return "cuda"
    if device != "cpu":
        raise ValueError(f"fastconv.load: map_location {who} must name 'cpu' or 'cuda', got "
                         f"{target!r}")
    return device


def _tensor_maker(map_location):
    """How a stored array becomes a Tensor under ``map_location``, as torch.load: None or a
    device (str or fastconv.device) puts every Tensor there; a dict maps a Tensor's saved
    location ('cpu', 'cuda:0') to another; a function ``f(tensor, location)`` is given each
    Tensor (loaded on the CPU -- fastconv has no storages) and returns it where it should
    be, or None to keep it on the CPU."""
    mapping = fn = device = None
    if isinstance(map_location, dict):
        mapping = {str(k): v for k, v in map_location.items()}
        for v in mapping.values():
            _map_target(v, "dict value")
    elif callable(map_location):
        fn = map_location
    elif map_location is not None:
        device = _map_target(map_location, "value")

    def make(array, info):
        from fastconv.tensor import Tensor

        info = info if isinstance(info, dict) else {}
        t = Tensor(np.array(array, copy=True))
        location = info.get("device", "cpu")
        target = device
        if mapping is not None:
            target = _map_target(mapping.get(location, "cpu"), "dict value")
        if target == "cuda":
            t = t.to("cuda")
        if fn is not None:
            moved = fn(t, location)
            if moved is not None:
                if not isinstance(moved, Tensor):
                    raise TypeError(f"fastconv.load: the map_location function returned a "
                                    f"{type(moved).__name__}; it must return the Tensor it "
                                    "was given (moved where it should be) or None")
                t = moved
        if info.get("parameter"):
            from fastconv.nn.module import Parameter

            return Parameter(t, requires_grad=bool(info.get("requires_grad")))
        if info.get("requires_grad"):
            t.requires_grad_(True)
        return t

    return make


def load(f, map_location=None, pickle_module=None, *, weights_only=None, mmap=None, **kwargs):
    """Load what :func:`save` stored in ``f`` (a path or a readable binary file object), as
    ``torch.load``: dicts, lists and tuples as they were, Tensors as fastconv Tensors,
    arrays as NumPy arrays, numbers and strings as Python values.

    ``model.load_state_dict(fastconv.load(p))`` after ``fastconv.save(model.state_dict(),
    p)``, and the same for an optimizer or scheduler. Files written by
    ``save_training`` and ``models.train_cifar`` load too (as the dict they hold).

    ``map_location``: None or "cpu" (Tensors on the CPU), "cuda" (moved to the GPU), a dict
    from saved locations to targets (``{"cuda:0": "cpu"}``) or a function ``f(tensor,
    location)`` returning the Tensor moved (``lambda storage, loc: storage``), as torch's.
    ``weights_only`` is accepted and has no effect: a fastconv file can only hold data
    (the file is read with ``allow_pickle=False``), so every load is weights-only.
    ``pickle_module`` and ``mmap=True`` are refused (ValueError); the message for a
    file that is not a fastconv file says what it is (a PyTorch pickle, an image, ...).
    """
    if _is_path(f) and map_location is not None and (
            callable(getattr(map_location, "state_dict", None))
            or callable(getattr(map_location, "load_state_dict", None))):
        raise _old_order("load", "load_training", "its second argument is map_location, not a "
                         f"{type(map_location).__name__}")
    bad = sorted(k for k in kwargs if k in _TRAINING_KEYWORDS)
    if bad:
        raise _old_order("load", "load_training", f"has no {', '.join(map(repr, bad))} argument")
    if kwargs:
        raise TypeError("fastconv.load() got an unexpected keyword argument "
                        f"{next(iter(kwargs))!r}")
    if pickle_module is not None:
        raise ValueError("fastconv.load: pickle_module is not supported: fastconv files never "
                         "hold a pickle")
    if mmap:
        raise ValueError("fastconv.load: mmap=True is not supported (members of an .npz "
                         "archive cannot be memory-mapped)")
    make = _tensor_maker(map_location)
    if hasattr(f, "read"):
        import shutil
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            tmp = os.path.join(d, "in.npz")
            with open(tmp, "wb") as out:
                shutil.copyfileobj(f, out)
            return load_checkpoint(tmp, make_tensor=make)
    if isinstance(f, bytes):
        f = os.fsdecode(f)
    return load_checkpoint(f, make_tensor=make)
