"""The IMDB Large Movie Review Dataset (aclImdb): find it, read it, sample it.

Reads the official tarball layout (``aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt``)
straight from the ``.tar.gz`` (nothing is extracted) or from an extracted directory.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import tarfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

OFFICIAL_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
OFFICIAL_SHA1 = "01ada507287d82875905620988597833ad4e0903"
ARCHIVE_NAME = "aclImdb_v1.tar.gz"
DATA_ENV = "EDGE_LSTM_DATA"
CACHE_ENV = "EDGE_LSTM_CACHE"
SPLITS = ("train", "test")
_MEMBER = re.compile(r"(?:^|/)(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")


class DataError(Exception):
    """The data set is missing, unreadable, or not in the aclImdb layout."""


@dataclass(frozen=True)
class Reviews:
    """One split: texts, labels (1 = positive) and ids like ``test/pos/123_9``."""

    texts: list[str]
    labels: np.ndarray
    ids: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: np.ndarray) -> Reviews:
        return Reviews(
            [self.texts[i] for i in indices], self.labels[indices], [self.ids[i] for i in indices]
        )

    def balanced(self, limit: int | None, seed: int = 0) -> Reviews:
        """A deterministic, class-balanced subset of at most ``limit`` reviews."""
        if limit is None or limit >= len(self):
            return self
        rng = np.random.default_rng(seed)
        picked = []
        for label, share in ((0, limit // 2), (1, limit - limit // 2)):
            members = np.flatnonzero(self.labels == label)
            picked.append(rng.permutation(members)[:share])
        return self.subset(np.sort(np.concatenate(picked)))


def cache_dir() -> Path:
    """Where downloads and caches live (``$EDGE_LSTM_CACHE`` or ``~/.cache/edge-lstm``)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "edge-lstm"


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
    """Download the official tarball to ``dest`` (checked by SHA-1, written atomically)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    sha1 = hashlib.sha1()
    try:
        with urllib.request.urlopen(OFFICIAL_URL, timeout=30) as response, part.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while chunk := response.read(1 << 20):
                out.write(chunk)
                sha1.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
    except (urllib.error.URLError, OSError) as err:
        part.unlink(missing_ok=True)
        raise DataError(f"download failed ({err}). {_where_to_put(dest)}") from err
    if sha1.hexdigest() != OFFICIAL_SHA1:
        part.unlink(missing_ok=True)
        raise DataError(f"downloaded file has the wrong checksum. {_where_to_put(dest)}")
    part.replace(dest)
    return dest


def _iter_tar(path: Path) -> Iterator[tuple[str, bytes]]:
    with tarfile.open(path, "r:*") as archive:
        for member in archive:
            if member.isfile() and _MEMBER.search(member.name):
                handle = archive.extractfile(member)
                if handle is not None:
                    yield member.name, handle.read()


def _iter_dir(path: Path) -> Iterator[tuple[str, bytes]]:
    root = path / "aclImdb" if (path / "aclImdb").is_dir() else path
    for split in SPLITS:
        for label in ("pos", "neg"):
            folder = root / split / label
            if folder.is_dir():
                for file in sorted(folder.glob("*.txt")):
                    yield f"{split}/{label}/{file.name}", file.read_bytes()


def read_members(path: Path) -> Iterator[tuple[str, bytes]]:
    """Yield ``(name, raw bytes)`` of every review file, from a tarball or a directory."""
    if path.is_dir():
        yield from _iter_dir(path)
        return
    try:
        yield from _iter_tar(path)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise DataError(f"{path}: not a readable IMDB archive ({err or type(err).__name__})") from err
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from err


def load_imdb(path: Path, splits: tuple[str, ...] = SPLITS) -> dict[str, Reviews]:
    """Read the requested splits; each is sorted by id so the order never depends on the archive."""
    rows: dict[str, list[tuple[str, str, int]]] = {s: [] for s in splits}
    for name, raw in read_members(Path(path)):
        match = _MEMBER.search(name)
        split, label = match.group(1), match.group(2)
        if split in rows:
            review_id = f"{split}/{label}/{match.group(3)}_{match.group(4)}"
            rows[split].append((review_id, raw.decode("utf-8", errors="replace"), int(label == "pos")))
    result = {}
    for split, items in rows.items():
        if not items:
            raise DataError(
                f"{path}: no reviews in the '{split}' split (expected aclImdb/{split}/pos/*.txt "
                f"and aclImdb/{split}/neg/*.txt)"
            )
        if len({label for _, _, label in items}) < 2:
            raise DataError(f"{path}: the '{split}' split has only one class")
        items.sort(key=_sort_key)
        result[split] = Reviews(
            [t for _, t, _ in items], np.array([y for *_, y in items], np.int32), [i for i, _, _ in items]
        )
    return result


def _sort_key(item: tuple[str, str, int]) -> tuple[str, int]:
    split_label, file_part = item[0].rsplit("/", 1)
    return split_label, int(file_part.split("_")[0])

