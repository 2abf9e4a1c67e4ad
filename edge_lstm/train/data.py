"""The IMDB Large Movie Review Dataset (aclImdb): find it, read it, sample it.

Reads the official tarball layout (``aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt``)
straight from the ``.tar.gz`` (nothing is extracted) or from an extracted directory.

Hostile or corrupt data ends in a one-line ``DataError``, with bounded memory:

* Reviews are regular files whose names match the layout. Links, devices, absolute names and
  names with ``..`` are never read; if such an entry is named like a review, loading fails
  (a split must not come out silently short).
* A review over ``$EDGE_LSTM_MAX_MEMBER_BYTES`` (default 1 MiB; real reviews are < 15 kB) is
  an error naming it; it is read with a bounded ``read``, so it is never held in memory.
* An archive whose uncompressed stream, or a folder whose reviews, hold more than
  ``$EDGE_LSTM_MAX_TOTAL_BYTES`` (default 1 GiB, well above the official data set) is an error.
* A tarball is read to its very end: the gzip (bz2, xz) check sums are verified; a bad tar
  header, which ``tarfile`` would take for the end of the archive, a missing end-of-archive
  block, a negative member size and a pax/GNU header over 1 MiB are errors.
* A split is complete if it has both classes and, where the split holds the official
  ``urls_pos.txt``/``urls_neg.txt`` (one line per review), exactly as many reviews per class as
  those files have lines. There is no other record of how many reviews a split should have.
"""

from __future__ import annotations

import gzip
import os
import re
import stat
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np
from edge_lstm_device.bundle.limits import env_limit

try:
    from lzma import LZMAError

    _DECOMPRESSION_ERRORS: tuple[type[Exception], ...] = (LZMAError,)
except ImportError:  # Python built without lzma: no .tar.xz either
    _DECOMPRESSION_ERRORS = ()

SPLITS = ("train", "test")
LABELS = ("pos", "neg")
MAX_MEMBER_BYTES = 1 << 20
MAX_TOTAL_BYTES = 1 << 30
MEMBER_ENV = "EDGE_LSTM_MAX_MEMBER_BYTES"
TOTAL_ENV = "EDGE_LSTM_MAX_TOTAL_BYTES"
_MAX_HEADER_BYTES = 1 << 20  # a pax or GNU long-name header that tarfile would read whole
_MAX_URLS_BYTES = 8 << 20  # urls_pos.txt: 12,500 lines, ~0.7 MB
_MEMBER = re.compile(r"(?:\A|/)(train|test)/(pos|neg)/(\d{1,9})_(\d{1,3})\.txt\Z")
_URLS = re.compile(r"(?:\A|/)(train|test)/urls_(pos|neg)\.txt\Z")
_EXTENDED_HEADERS = (
    tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK
)


class DataError(Exception):
    """The data set is missing, unreadable, or not in the aclImdb layout."""


class _Corrupt(Exception):
    """Raised inside the tar reader (``tarfile`` passes it through); becomes a ``DataError``."""


class _OverLimit(DataError):
    """A size bound was hit; ``read_members`` adds the data set's path to the message."""


@dataclass(frozen=True)
class Limits:
    """Byte bounds of one review and of everything read (``Limits.from_env()``)."""

    member: int = MAX_MEMBER_BYTES
    total: int = MAX_TOTAL_BYTES

    @classmethod
    def from_env(cls) -> Limits:
        return cls(_env_bytes(MEMBER_ENV, MAX_MEMBER_BYTES), _env_bytes(TOTAL_ENV, MAX_TOTAL_BYTES))


def _env_bytes(name: str, default: int) -> int:
    try:
        return env_limit(name, default)
    except ValueError as err:
        raise DataError(str(err)) from err


@dataclass
class Scan:
    """What a reader saw besides the reviews: how many entries named like reviews it would not
    read (and the first), and the reviews per ``(split, label)`` the ``urls_*.txt`` files list."""

    skipped: int = 0
    first_skipped: str = ""
    declared: dict[tuple[str, str], int] = field(default_factory=dict)

    def skip(self, name: str) -> None:
        self.skipped += 1
        self.first_skipped = self.first_skipped or name


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


def _one_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class _CheckedTarInfo(tarfile.TarInfo):
    """Refuses what ``tarfile`` would read whole or take for the end of the archive."""

    __slots__ = ()

    @classmethod
    def frombuf(cls, buf: bytes, encoding: str, errors: str) -> _CheckedTarInfo:
        info = super().frombuf(buf, encoding, errors)
        if info.type in _EXTENDED_HEADERS and not 0 <= info.size <= _MAX_HEADER_BYTES:
            raise _Corrupt(f"an extended tar header of {info.size:,} bytes (the limit is {_MAX_HEADER_BYTES:,})")
        return info

    @classmethod
    def fromtarfile(cls, archive: tarfile.TarFile) -> _CheckedTarInfo:
        try:
            return super().fromtarfile(archive)
        except (tarfile.InvalidHeaderError, tarfile.TruncatedHeaderError, tarfile.EmptyHeaderError) as err:
            if archive.offset == 0:  # not a tar at all: tarfile.open tries the next format
                raise
            raise _Corrupt(f"bad tar header at byte {archive.offset:,} ({_one_line(err)})") from err


def _review_like(name: str) -> bool:
    return bool(_MEMBER.search(name) or _URLS.search(name))


def _safe_name(name: str) -> bool:
    return not name.startswith("/") and ".." not in name.split("/")


def _read_bounded(
    handle: BinaryIO, name: str, limit: int, size_hint: int | None = None, env: str | None = MEMBER_ENV
) -> bytes:
    """At most ``limit`` bytes of ``handle``; more is a ``DataError`` naming ``name`` (and ``env``).

    ``size_hint`` (the size the header or ``stat`` tells) only saves a 1 MiB buffer per read.
    """
    want = limit if size_hint is None else max(0, min(size_hint, limit))
    raw = handle.read(want + 1)
    if len(raw) > want and want < limit:  # grew since the hint: read on, still bounded
        raw += handle.read(limit - len(raw) + 1)
    if len(raw) > limit:
        raise _OverLimit(f"{name!r} is larger than {limit:,} bytes" + (f" (set {env} to raise the limit)" if env else ""))
    return raw


def _members(archive: tarfile.TarFile, limits: Limits) -> Iterator[tarfile.TarInfo]:
    """Every member in order, within ``limits.total``, without tarfile's member list growing."""
    while (member := archive.next()) is not None:
        archive.members.clear()  # nothing here looks members up by name; 2M TarInfos would be ~1 GB
        if member.size < 0:
            raise _Corrupt(f"{member.name!r} has a negative size")
        if member.offset_data + member.size > limits.total:
            raise _OverLimit(f"the archive holds more than {limits.total:,} bytes (set {TOTAL_ENV} to raise the limit)")
        yield member


def _drain(stream: BinaryIO, limit: int) -> None:
    """Read ``stream`` to its end, where gzip checks its CRC and length (``limit``: tell() bound)."""
    while stream.read(1 << 20):
        if stream.tell() > limit:
            raise _OverLimit(f"the archive holds more than {limit:,} bytes (set {TOTAL_ENV} to raise the limit)")


def _open_tar(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:*", tarinfo=_CheckedTarInfo)
    except tarfile.ReadError as err:  # its message lists every format tried, one per line
        raise DataError(f"{path}: not a readable IMDB archive (not a tar, tar.gz, tar.bz2 or tar.xz file)") from err


def _iter_tar(path: Path, limits: Limits, scan: Scan) -> Iterator[tuple[str, bytes]]:
    with _open_tar(path) as archive:
        for member in _members(archive, limits):
            if not _review_like(member.name):
                continue
            if not (member.isreg() and _safe_name(member.name)):
                scan.skip(member.name)
            elif _URLS.search(member.name):
                urls = _read_bounded(archive.extractfile(member), member.name, _MAX_URLS_BYTES, env=None)
                _declare(scan, member.name, urls)
            elif member.size > limits.member:
                raise _OverLimit(f"{member.name!r} is {member.size:,} bytes; the limit is {limits.member:,} "
                                f"(set {MEMBER_ENV} to raise it)")
            else:
                yield member.name, _read_bounded(archive.extractfile(member), member.name, limits.member, member.size)
        _drain(archive.fileobj, limits.total)


def _declare(scan: Scan, name: str, raw: bytes) -> None:
    split, label = _URLS.search(name).groups()
    scan.declared[(split, label)] = sum(1 for line in raw.splitlines() if line.strip())


def _iter_dir(path: Path, limits: Limits, scan: Scan) -> Iterator[tuple[str, bytes]]:
    root = path / "aclImdb" if (path / "aclImdb").is_dir() else path
    total = 0
    for split in SPLITS:
        for entry in _dir_entries(root / split):
            name = f"{split}/{entry.name}"
            if _URLS.search(name) and _regular(entry, name, scan):
                _declare(scan, name, _read_file(entry, name, _MAX_URLS_BYTES, env=None))
        for label in LABELS:
            for entry in _dir_entries(root / split / label):
                name = f"{split}/{label}/{entry.name}"
                if not _MEMBER.search(name) or not _regular(entry, name, scan):
                    continue
                raw = _read_file(entry, name, limits.member)
                total += len(raw)
                if total > limits.total:
                    raise _OverLimit(f"the folder holds more than {limits.total:,} bytes of reviews "
                                    f"(set {TOTAL_ENV} to raise the limit)")
                yield name, raw


def _dir_entries(folder: Path) -> list[os.DirEntry]:
    if not folder.is_dir():
        return []
    with os.scandir(folder) as entries:
        return sorted(entries, key=lambda entry: entry.name)


def _regular(entry: os.DirEntry, name: str, scan: Scan) -> bool:
    """Whether ``entry`` is a regular file (not a link); if not, ``scan`` records it."""
    if stat.S_ISREG(entry.stat(follow_symlinks=False).st_mode):
        return True
    scan.skip(name)
    return False


def _read_file(entry: os.DirEntry, name: str, limit: int, env: str | None = MEMBER_ENV) -> bytes:
    with open(entry.path, "rb") as handle:
        return _read_bounded(handle, name, limit, entry.stat(follow_symlinks=False).st_size, env)


def read_members(path: Path, scan: Scan | None = None) -> Iterator[tuple[str, bytes]]:
    """Yield ``(name, raw bytes)`` of every review file, from a tarball or a directory.

    ``scan``, if given, collects the entries not read and the declared counts (see ``Scan``).
    """
    scan = Scan() if scan is None else scan
    limits = Limits.from_env()
    try:
        if path.is_dir():
            yield from _iter_dir(path, limits, scan)
        else:
            yield from _iter_tar(path, limits, scan)
    except _OverLimit as err:
        raise DataError(f"{path}: {err}") from err
    except _Corrupt as err:
        raise DataError(f"{path}: corrupt archive: {err}") from err
    except tarfile.TarError as err:
        raise DataError(f"{path}: not a readable IMDB archive ({_one_line(err)})") from err
    except (EOFError, zlib.error, gzip.BadGzipFile, *_DECOMPRESSION_ERRORS) as err:
        raise DataError(f"{path}: corrupt or truncated archive ({_one_line(err)})") from err
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or _one_line(err)})") from err


def load_imdb(path: Path, splits: tuple[str, ...] = SPLITS) -> dict[str, Reviews]:
    """Read the requested splits; each is sorted by id so the order never depends on the archive.

    ``DataError`` if the data is corrupt, over the limits, or a split is incomplete (module docstring).
    """
    path, scan = Path(path), Scan()
    rows: dict[str, list[tuple[str, str, int]]] = {s: [] for s in splits}
    seen: dict[tuple[str, str, int], str] = {}
    for name, raw in read_members(path, scan):
        split, label, number, rating = _MEMBER.search(name).groups()
        key = (split, label, int(number))
        if key in seen:
            raise DataError(f"{path}: review {split}/{label}/{number} appears twice ({seen[key]!r} and {name!r})")
        seen[key] = name
        if split in rows:
            review_id = f"{split}/{label}/{number}_{rating}"
            rows[split].append((review_id, raw.decode("utf-8", errors="replace"), int(label == "pos")))
    _check_complete(path, scan, rows)
    result = {}
    for split, items in rows.items():
        items.sort(key=_sort_key)
        result[split] = Reviews(
            [t for _, t, _ in items], np.array([y for *_, y in items], np.int32), [i for i, _, _ in items]
        )
    return result


def _check_complete(path: Path, scan: Scan, rows: dict[str, list[tuple[str, str, int]]]) -> None:
    """No review-like entry skipped; every split has both classes, as many as any urls file lists."""
    if scan.skipped:
        raise DataError(
            f"{path}: {scan.skipped:,} entries named like reviews were not read, e.g. {scan.first_skipped!r} "
            "(links, devices, folders, absolute or '..' names are not reviews)"
        )
    for split, items in rows.items():
        if not items:
            raise DataError(
                f"{path}: no reviews in the '{split}' split (expected aclImdb/{split}/pos/*.txt "
                f"and aclImdb/{split}/neg/*.txt)"
            )
        positives = sum(label for _, _, label in items)
        counts = {"pos": positives, "neg": len(items) - positives}
        if 0 in counts.values():
            raise DataError(f"{path}: the '{split}' split has only one class")
        for label, found in counts.items():
            declared = scan.declared.get((split, label))
            if declared is not None and found != declared:
                raise DataError(
                    f"{path}: the '{split}' split is incomplete: {found:,} {label} reviews, "
                    f"but {split}/urls_{label}.txt lists {declared:,}"
                )


def _sort_key(item: tuple[str, str, int]) -> tuple[str, int]:
    split_label, file_part = item[0].rsplit("/", 1)
    return split_label, int(file_part.split("_")[0])

