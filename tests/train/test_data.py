"""The IMDB loader: tarballs and folders, good and bad, and where it looks for data."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from edge_lstm.train import download
from edge_lstm.train.data import DataError, load_imdb
from edge_lstm.train.download import resolve_source
from tests.support.fixtures import make_tarball, tiny_imdb_files


def test_reads_tarball(tiny_tarball: Path) -> None:
    splits = load_imdb(tiny_tarball)
    assert set(splits) == {"train", "test"}
    train = splits["train"]
    assert len(train) == 12 and train.labels.sum() == 6
    assert train.ids[0] == "train/neg/0_2" and train.texts[0].startswith("A awful boring")


def test_reads_extracted_folder_the_same(tmp_path: Path, tiny_tarball: Path) -> None:
    for name, text in tiny_imdb_files().items():
        file = tmp_path / "aclImdb" / name
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text)
    from_dir, from_tar = load_imdb(tmp_path), load_imdb(tiny_tarball)
    assert from_dir["test"].texts == from_tar["test"].texts
    assert from_dir["test"].ids == from_tar["test"].ids


def test_order_is_numeric_and_archive_independent(tmp_path: Path) -> None:
    files = tiny_imdb_files(12)
    a = make_tarball(tmp_path / "a.tar.gz", files)
    b = make_tarball(tmp_path / "b.tar.gz", dict(reversed(list(files.items()))))
    ids = load_imdb(a)["train"].ids
    assert ids == load_imdb(b)["train"].ids
    assert ids.index("train/neg/2_2") < ids.index("train/neg/10_2")


def test_corrupt_archive(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"this is not a tarball at all")
    with pytest.raises(DataError, match="not a readable IMDB archive"):
        load_imdb(bad)


def test_truncated_archive(tmp_path: Path, tiny_tarball: Path) -> None:
    raw = tiny_tarball.read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError):
        load_imdb(cut)


def test_wrong_layout(tmp_path: Path) -> None:
    tar = make_tarball(tmp_path / "x.tar.gz", {"reviews/a.txt": "hello"})
    with pytest.raises(DataError, match="no reviews in the 'train' split"):
        load_imdb(tar)


def test_empty_split(tmp_path: Path) -> None:
    files = {k: v for k, v in tiny_imdb_files().items() if k.startswith("train/")}
    with pytest.raises(DataError, match="'test' split"):
        load_imdb(make_tarball(tmp_path / "x.tar.gz", files))


def test_one_class_split(tmp_path: Path) -> None:
    files = {k: v for k, v in tiny_imdb_files().items() if "/neg/" not in k}
    with pytest.raises(DataError, match="only one class"):
        load_imdb(make_tarball(tmp_path / "x.tar.gz", files))


def test_gzip_of_garbage(tmp_path: Path) -> None:
    path = tmp_path / "g.tar.gz"
    path.write_bytes(gzip.compress(b"\x01" * 2000))
    with pytest.raises(DataError):
        load_imdb(path)


def test_balanced_subset_is_deterministic(tiny_tarball: Path) -> None:
    train = load_imdb(tiny_tarball)["train"]
    a, b = train.balanced(4, seed=1), train.balanced(4, seed=1)
    assert a.ids == b.ids and a.labels.sum() == 2
    assert train.balanced(None) is train


def test_source_order(tmp_path: Path, tiny_tarball: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_LSTM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("EDGE_LSTM_DATA", raising=False)
    with pytest.raises(DataError, match="aclImdb_v1.tar.gz"):
        resolve_source(None, download=False)
    cached = tmp_path / "cache" / download.ARCHIVE_NAME
    cached.parent.mkdir()
    cached.write_bytes(tiny_tarball.read_bytes())
    assert resolve_source(None) == cached
    monkeypatch.setenv("EDGE_LSTM_DATA", str(tiny_tarball))
    assert resolve_source(None) == tiny_tarball
    other = tmp_path / "other.tar.gz"
    other.write_bytes(b"")
    assert resolve_source(other) == other
    with pytest.raises(DataError, match="no such file"):
        resolve_source(tmp_path / "missing.tar.gz")


@pytest.mark.process
def test_offline_download_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "OFFICIAL_URL", "http://127.0.0.1:9/aclImdb_v1.tar.gz")
    dest = tmp_path / "cache" / download.ARCHIVE_NAME
    with pytest.raises(DataError, match="download failed"):
        download.fetch_official(dest)
    assert not dest.exists() and not list(dest.parent.glob("*.part"))


def test_real_data_has_both_splits(imdb_tarball: Path) -> None:
    splits = load_imdb(imdb_tarball)
    for split in ("train", "test"):
        assert len(splits[split]) == 25_000
        assert int(np.sum(splits[split].labels)) == 12_500
