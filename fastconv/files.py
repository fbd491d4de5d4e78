"""Atomic file writes: a reader, or a run killed mid-write, sees the old file or the new one,
never a torn one.

The data goes to a temporary file in the target's directory (so the rename cannot cross file
systems), which is flushed, fsync'ed and renamed over the target with ``os.replace``; the
directory is fsync'ed too, so the rename survives a power cut. The temporary file is created
with mode 0o666, so the umask decides the permissions as for any other output
(``tempfile.mkstemp`` would make it 0o600). Used by checkpoints, run logs and plots, and the
decoded-image cache.
"""

from __future__ import annotations

import contextlib
import os
import secrets

__all__ = ["atomic_open", "atomic_write"]


def _create_temp(directory: str, base: str):
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f".{base}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise OSError(f"cannot create a temporary file in {directory}")  # pragma: no cover


@contextlib.contextmanager
def atomic_open(path, make_dirs: bool = True):
    """``with atomic_open(path) as f: f.write(...)``: a binary file that replaces ``path``
    when the block ends without an exception (and is removed when it raises).

    ``make_dirs``: create the missing directories above ``path`` (True), or leave a missing
    directory an error, as ``open`` does (False; checkpoints, as ``torch.save``)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if make_dirs:
        os.makedirs(directory, exist_ok=True)
    elif not os.path.isdir(directory):
        raise FileNotFoundError(f"Parent directory {os.path.dirname(path)} does not exist.")
    fd, tmp = _create_temp(directory, os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    try:  # make the rename itself durable
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # pragma: no cover - not every file system allows fsync on a directory
        pass


def atomic_write(path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically."""
    with atomic_open(path) as f:
        f.write(data)
