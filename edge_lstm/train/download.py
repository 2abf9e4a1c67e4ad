"""Where the IMDB data comes from: ``--data``, ``$EDGE_LSTM_DATA``, the cache, or the official
tarball downloaded into the cache (checked by SHA-1, written atomically)."""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from edge_lstm_device.bundle.files import cache_dir

from edge_lstm.train.data import DataError, _one_line

OFFICIAL_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
OFFICIAL_SHA1 = "01ada507287d82875905620988597833ad4e0903"
ARCHIVE_NAME = "aclImdb_v1.tar.gz"
DATA_ENV = "EDGE_LSTM_DATA"
MAX_DOWNLOAD_BYTES = 256 << 20  # the official tarball is 84 MB


def resolve_source(
    data: Path | None = None,
    download: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Find the data: ``data``, then ``$EDGE_LSTM_DATA``, then the cache, then download."""
    for candidate, origin in ((data, "--data"), (os.environ.get(DATA_ENV), DATA_ENV)):
        if candidate:
            path = Path(candidate).expanduser()
            if not path.exists():
                raise DataError(f"{origin}: no such file or directory: {path}")
            return path
    cached = cache_dir() / ARCHIVE_NAME
    if cached.exists():
        return cached
    if not download:
        raise DataError(_where_to_put(cached))
    return fetch_official(cached, progress)


def _where_to_put(cached: Path) -> str:
    return (
        f"IMDB data not found. Download {OFFICIAL_URL} and pass --data PATH, "
        f"set {DATA_ENV}=PATH, or put it at {cached}"
    )


def fetch_official(dest: Path, progress: Callable[[int, int], None] | None = None) -> Path:
    """Download the official tarball to ``dest`` (checked by SHA-1, written atomically).

    The ``.part`` file is removed whatever happens, Ctrl-C included.
    """
    part = dest.with_name(dest.name + ".part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        digest = _download(part, progress)
        if digest != OFFICIAL_SHA1:
            raise DataError(f"downloaded file has the wrong checksum. {_where_to_put(dest)}")
        part.replace(dest)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        raise DataError(f"download failed ({_one_line(err)}). {_where_to_put(dest)}") from err
    finally:
        part.unlink(missing_ok=True)
    return dest


def _download(part: Path, progress: Callable[[int, int], None] | None) -> str:
    """Stream ``OFFICIAL_URL`` into ``part``; the SHA-1 of what was written."""
    sha1 = hashlib.sha1()
    with urllib.request.urlopen(OFFICIAL_URL, timeout=30) as response, part.open("wb") as out:
        length = response.headers.get("Content-Length") or ""
        total = int(length) if length.isdigit() else 0
        done = 0
        while chunk := response.read(1 << 20):
            done += len(chunk)
            if done > MAX_DOWNLOAD_BYTES:
                raise DataError(f"download is over {MAX_DOWNLOAD_BYTES:,} bytes; not the official tarball")
            out.write(chunk)
            sha1.update(chunk)
            if progress:
                progress(done, total)
    return sha1.hexdigest()
