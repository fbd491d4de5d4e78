"""Downloading a dataset file, checked against its MD5."""

from __future__ import annotations

import hashlib
import os
import urllib.request

from .dataset import DataError

__all__ = ["check_md5", "download_url"]


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
