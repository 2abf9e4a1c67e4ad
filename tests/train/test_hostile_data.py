"""The IMDB loader against corrupt and hostile archives and folders: one-line DataError, bounded memory."""

from __future__ import annotations

import gzip
import io
import os
import signal
import tarfile
import tracemalloc
from pathlib import Path
from typing import Callable

import pytest

from edge_lstm.train import data, download
from edge_lstm.train.data import DataError, load_imdb
from tests.support.fixtures import make_tarball, tiny_imdb_files

LAST = "test/neg/5_2.txt"  # the last member make_tarball writes for tiny_imdb_files()


class _Zeros(io.RawIOBase):
    """``size`` zero bytes, produced on demand (never held in memory)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


Extra = Callable[[tarfile.TarFile], None]


def _tar(path: Path, extra: Extra | None = None, mode: str = "w:gz", fmt: int = tarfile.PAX_FORMAT) -> Path:
    """The tiny aclImdb under ``aclImdb/``, then whatever ``extra`` adds (gzip level 1 for speed)."""
    options = {"compresslevel": 1} if mode == "w:gz" else {}
    with tarfile.open(path, mode, format=fmt, **options) as archive:
        for name, text in tiny_imdb_files().items():
            raw = text.encode()
            info = tarfile.TarInfo("aclImdb/" + name)
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))
        if extra:
            extra(archive)
    return path


def _tar_bytes(tmp_path: Path, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """The tiny aclImdb as an uncompressed tar."""
    return _tar(tmp_path / "plain-source.tar", mode="w", fmt=fmt).read_bytes()


def _add(archive: tarfile.TarFile, name: str, kind: bytes = tarfile.REGTYPE, size: int = 0,
         linkname: str = "", content: io.RawIOBase | None = None) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size, linkname
    archive.addfile(info, content if content is not None else (io.BytesIO(b"x" * size) if size else None))


def _write(path: Path, raw: bytes, compresslevel: int = 9) -> Path:
    path.write_bytes(gzip.compress(raw, compresslevel=compresslevel, mtime=0))
    return path


def _fail(path: Path, match: str) -> str:
    with pytest.raises(DataError, match=match) as caught:
        load_imdb(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


# (a) corruption is noticed -------------------------------------------------------------------


@pytest.mark.parametrize("from_end", [1, 4, 5, 8, 12, 30, 50])
def test_flipped_byte_near_the_end_is_noticed(tmp_path: Path, tiny_tarball: Path, from_end: int) -> None:
    # Before: tar stopped at the end-of-archive blocks and never read the gzip trailer, or took a
    # damaged late header for the end of the archive: short splits, no error.
    raw = bytearray(tiny_tarball.read_bytes())
    raw[-from_end] ^= 0x01
    bad = tmp_path / "flipped.tar.gz"
    bad.write_bytes(raw)
    _fail(bad, r"corrupt|truncated|not a readable")


def test_bad_late_header_is_not_the_end_of_the_archive(tmp_path: Path) -> None:
    tar = bytearray(_tar_bytes(tmp_path))
    at = tar.index(("aclImdb/" + LAST).encode())
    tar[at] ^= 0x20  # header checksum no longer matches
    plain = tmp_path / "plain.tar"
    plain.write_bytes(tar)
    assert _fail(plain, "bad tar header").endswith("(bad checksum)")
    stored = _write(tmp_path / "stored.tar.gz", bytes(tar), compresslevel=0)  # the gzip itself is fine
    _fail(stored, "bad tar header")


def test_gzip_crc_is_checked_even_when_the_tar_is_intact(tmp_path: Path) -> None:
    raw = bytearray(gzip.compress(_tar_bytes(tmp_path), compresslevel=0, mtime=0))
    raw[raw.rindex(b"The end")] ^= 0x20  # "the end": still a valid tar, wrong CRC
    bad = tmp_path / "crc.tar.gz"
    bad.write_bytes(raw)
    _fail(bad, "CRC check failed")


def test_tar_cut_at_a_member_boundary(tmp_path: Path) -> None:
    tar = _tar_bytes(tmp_path)
    end = tar.index(("aclImdb/" + LAST).encode())  # drop the last header and the end-of-archive blocks
    cut = tmp_path / "cut.tar"
    cut.write_bytes(tar[:end])
    _fail(cut, "bad tar header")


def test_negative_member_size(tmp_path: Path) -> None:
    tar = bytearray(_tar_bytes(tmp_path, fmt=tarfile.GNU_FORMAT))
    at = tar.index(("aclImdb/" + LAST).encode())
    header = tar[at : at + 512]
    header[124:136] = b"\xff" * 12  # base-256 size -1: tarfile would step backwards, forever
    header[148:156] = b" " * 8
    header[148:155] = f"{sum(header):06o}\0".encode()
    tar[at : at + 512] = header
    _fail(_write(tmp_path / "neg.tar.gz", bytes(tar)), "negative size")


def test_other_compressions_are_checked_too(tmp_path: Path) -> None:
    good = _tar(tmp_path / "t.tar.xz", mode="w:xz")
    assert len(load_imdb(good)["test"]) == 12
    raw = bytearray(good.read_bytes())
    raw[-20] ^= 0x01
    bad = tmp_path / "bad.tar.xz"
    bad.write_bytes(raw)
    _fail(bad, "corrupt or truncated")


def test_messages_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.tar.gz"
    bad.write_bytes(b"\x00not an archive\n" * 40)
    _fail(bad, "not a readable IMDB archive")


# (b) no silent skips, declared counts ------------------------------------------------------


def test_duplicate_review_is_an_error(tmp_path: Path) -> None:
    dup = _tar(tmp_path / "dup.tar.gz", lambda a: _add(a, "aclImdb/train/pos/0_10.txt", size=3))
    _fail(dup, "train/pos/0 appears twice")


def _with_urls(pos_lines: int) -> dict[str, str]:
    files = tiny_imdb_files()
    files["train/urls_pos.txt"] = "".join(f"http://www.imdb.com/title/tt{i}/\n" for i in range(pos_lines))
    files["train/urls_neg.txt"] = "http://x/\n" * 6
    return files


def test_urls_files_declare_the_split_size(tmp_path: Path) -> None:
    assert len(load_imdb(make_tarball(tmp_path / "ok.tar.gz", _with_urls(6)))["train"]) == 12
    short = make_tarball(tmp_path / "short.tar.gz", _with_urls(7))
    _fail(short, r"'train' split is incomplete: 6 pos reviews, but train/urls_pos.txt lists 7")


def test_urls_files_in_a_folder(tmp_path: Path) -> None:
    for name, text in _with_urls(7).items():
        file = tmp_path / "aclImdb" / name
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text)
    _fail(tmp_path, "incomplete: 6 pos reviews")
    (tmp_path / "aclImdb" / "train" / "pos" / "6_9.txt").write_text("one more")
    assert len(load_imdb(tmp_path)["train"]) == 13


# (c) member names and kinds ----------------------------------------------------------------


@pytest.mark.parametrize(
    "name, kind, linkname",
    [
        ("aclImdb/train/pos/99_9.txt", tarfile.SYMTYPE, "/etc/passwd"),
        ("aclImdb/train/pos/99_9.txt", tarfile.LNKTYPE, "aclImdb/train/pos/0_9.txt"),
        ("aclImdb/train/pos/99_9.txt", tarfile.CHRTYPE, ""),
        ("aclImdb/train/pos/99_9.txt", tarfile.FIFOTYPE, ""),
        ("aclImdb/train/pos/99_9.txt", tarfile.DIRTYPE, ""),
        ("/etc/aclImdb/train/pos/99_9.txt", tarfile.REGTYPE, ""),
        ("aclImdb/../../train/pos/99_9.txt", tarfile.REGTYPE, ""),
    ],
)
def test_review_named_entries_that_are_not_safe_files_fail(tmp_path: Path, name: str, kind: bytes,
                                                           linkname: str) -> None:
    size = 3 if kind == tarfile.REGTYPE else 0
    tar = _tar(tmp_path / "x.tar.gz", lambda a: _add(a, name, kind, size, linkname))
    message = _fail(tar, "entries named like reviews were not read")
    assert repr(name) in message


def test_unsafe_entries_not_named_like_reviews_are_ignored(tmp_path: Path) -> None:
    def extra(archive: tarfile.TarFile) -> None:
        _add(archive, "aclImdb/evil", tarfile.SYMTYPE, linkname="/etc/passwd")
        _add(archive, "/etc/passwd", size=5)
        _add(archive, "../../outside.txt", size=5)
        _add(archive, "aclImdb/train/pos/" + "9" * 5000 + "_9.txt", size=5)  # int() of it would fail
        _add(archive, "aclImdb/train/pos/notes.txt", size=5)
        _add(archive, "aclImdb/train/pos/3_9.txt\n", size=5)  # a trailing newline is not ".txt" at the end

    splits = load_imdb(_tar(tmp_path / "x.tar.gz", extra))
    assert len(splits["train"]) == 12 and len(splits["test"]) == 12


# (d) size bounds ----------------------------------------------------------------------------


def test_huge_review_in_a_small_gzip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    size = 50 << 20
    bomb = _tar(tmp_path / "bomb.tar.gz", lambda a: _add(a, "aclImdb/train/pos/77_9.txt", size=size, content=_Zeros(size)))
    assert bomb.stat().st_size < size // 100
    tracemalloc.start()
    try:
        message = _fail(bomb, r"train/pos/77_9.txt' is 52,428,800 bytes; the limit is 1,048,576 \(set EDGE_LSTM_MAX_MEMBER_BYTES")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20 and message.startswith(f"{bomb}: 'aclImdb/")
    monkeypatch.setenv("EDGE_LSTM_MAX_MEMBER_BYTES", str(size))
    assert len(load_imdb(bomb)["train"]) == 13


def test_member_limit_from_the_environment(tmp_path: Path, tiny_tarball: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_LSTM_MAX_MEMBER_BYTES", "10")
    _fail(tiny_tarball, "the limit is 10 ")
    monkeypatch.setenv("EDGE_LSTM_MAX_MEMBER_BYTES", "100000")
    assert len(load_imdb(tiny_tarball)["test"]) == 12
    monkeypatch.setenv("EDGE_LSTM_MAX_MEMBER_BYTES", "lots")
    _fail(tiny_tarball, "EDGE_LSTM_MAX_MEMBER_BYTES must be a positive integer, got 'lots'")


def test_bounded_read_never_reads_past_the_limit() -> None:
    with open("/dev/zero", "rb") as endless:
        with pytest.raises(DataError, match="'x' is larger than 1,000 bytes"):
            data._read_bounded(endless, "x", 1000)
        with pytest.raises(DataError, match="larger than 1,000 bytes"):
            data._read_bounded(endless, "x", 1000, size_hint=10)  # a lying size does not help
    assert data._read_bounded(io.BytesIO(b"abc"), "x", 3, size_hint=3) == b"abc"


def test_total_limit_counts_skipped_members(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    size = 20 << 20
    big = _tar(tmp_path / "big.tar.gz", lambda a: _add(a, "aclImdb/train/unsupBow.feat", size=size, content=_Zeros(size)))
    assert len(load_imdb(big)["train"]) == 12
    monkeypatch.setenv("EDGE_LSTM_MAX_TOTAL_BYTES", str(1 << 20))
    assert _fail(big, r"holds more than 1,048,576 bytes \(set EDGE_LSTM_MAX_TOTAL_BYTES").startswith(f"{big}: ")


def test_total_limit_counts_what_follows_the_end_of_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tar = _tar_bytes(tmp_path) + bytes(5 << 20)  # zero padding after the end-of-archive blocks
    padded = _write(tmp_path / "padded.tar.gz", tar)
    assert len(load_imdb(padded)["test"]) == 12
    monkeypatch.setenv("EDGE_LSTM_MAX_TOTAL_BYTES", str(1 << 20))
    _fail(padded, "holds more than 1,048,576 bytes")


def test_huge_extended_header(tmp_path: Path) -> None:
    def extra(archive: tarfile.TarFile) -> None:
        info = tarfile.TarInfo("aclImdb/README")
        info.pax_headers = {"comment": "x" * (2 << 20)}  # tarfile would read the whole header into memory
        archive.addfile(info)

    _fail(_tar(tmp_path / "pax.tar.gz", extra), "extended tar header of 2,097,")


# folders ------------------------------------------------------------------------------------


def _folder(root: Path) -> Path:
    for name, text in tiny_imdb_files().items():
        file = root / "aclImdb" / name
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text)
    return root / "aclImdb"


def test_folder_symlink_is_not_read(tmp_path: Path) -> None:
    base = _folder(tmp_path)
    (base / "train" / "pos" / "50_9.txt").symlink_to("/etc/passwd")
    _fail(tmp_path, "'train/pos/50_9.txt'")


def test_folder_fifo_is_not_read(tmp_path: Path) -> None:
    base = _folder(tmp_path)
    os.mkfifo(base / "test" / "neg" / "50_1.txt")  # reading it would block forever

    def hung(*_: object) -> None:
        raise TimeoutError("the loader opened the FIFO")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    try:
        _fail(tmp_path, "'test/neg/50_1.txt'")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_folder_big_sparse_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = _folder(tmp_path)
    with open(base / "train" / "neg" / "60_1.txt", "wb") as handle:
        handle.truncate(1 << 30)  # sparse: 1 GiB on paper, nothing on disk
    tracemalloc.start()
    try:
        _fail(tmp_path, r"'train/neg/60_1.txt' is larger than 1,048,576 bytes \(set EDGE_LSTM_MAX_MEMBER_BYTES")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20
    (base / "train" / "neg" / "60_1.txt").unlink()
    monkeypatch.setenv("EDGE_LSTM_MAX_TOTAL_BYTES", "500")
    assert _fail(tmp_path, "holds more than 500 bytes of reviews").startswith(f"{tmp_path}: the folder")


def test_folder_ignores_files_not_named_like_reviews(tmp_path: Path) -> None:
    base = _folder(tmp_path)
    (base / "train" / "pos" / "notes.txt").write_text("not a review")  # crashed the loader before
    (base / "train" / "pos" / "1_9.txt.swp").write_text("editor junk")
    assert len(load_imdb(tmp_path)["train"]) == 12
    (base / "train" / "pos" / "70_9.txt").mkdir()
    _fail(tmp_path, "'train/pos/70_9.txt'")


# (e) download -------------------------------------------------------------------------------


class _Response:
    def __init__(self, chunks: list[bytes | BaseException], length: str = "") -> None:
        self.chunks, self.headers = list(chunks), {"Content-Length": length}

    def __enter__(self) -> _Response:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def read(self, _size: int) -> bytes:
        if not self.chunks:
            return b""
        item = self.chunks.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item


def _serve(monkeypatch: pytest.MonkeyPatch, *chunks: bytes | BaseException, length: str = "") -> None:
    monkeypatch.setattr(download.urllib.request, "urlopen", lambda *a, **k: _Response(list(chunks), length))


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt(), MemoryError(), RuntimeError("boom")])
def test_interrupted_download_leaves_no_part_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  interrupt: BaseException) -> None:
    _serve(monkeypatch, b"x" * 1000, interrupt)
    dest = tmp_path / "cache" / download.ARCHIVE_NAME
    with pytest.raises(type(interrupt)):
        download.fetch_official(dest)
    assert not dest.exists() and not list(dest.parent.iterdir())


def test_broken_download_is_a_data_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import http.client

    dest = tmp_path / download.ARCHIVE_NAME
    _serve(monkeypatch, b"x" * 10, http.client.IncompleteRead(b"x"), length="nonsense")
    with pytest.raises(DataError, match="download failed"):
        download.fetch_official(dest)
    _serve(monkeypatch, b"not the tarball")
    with pytest.raises(DataError, match="wrong checksum"):
        download.fetch_official(dest)
    monkeypatch.setattr(download, "MAX_DOWNLOAD_BYTES", 100)
    _serve(monkeypatch, *[b"y" * 60] * 5)
    with pytest.raises(DataError, match="over 100 bytes"):
        download.fetch_official(dest)
    assert list(tmp_path.iterdir()) == []


def test_progress_callback_error_removes_the_part_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _serve(monkeypatch, b"x" * 10, b"y" * 10)

    def progress(done: int, total: int) -> None:
        raise ValueError("display broke")

    with pytest.raises(ValueError):
        download.fetch_official(tmp_path / download.ARCHIVE_NAME, progress)
    assert list(tmp_path.iterdir()) == []
