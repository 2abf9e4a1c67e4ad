"""Fixtures and helpers the host tests share: the IMDB tarball (the shared one, and small ones built
on the fly), a small bundle trained and exported once per session, the shipped bundle's folder.
(The device's shared fixtures and the test tiers: ``device/tests/support.py``, ``tiers.py``.)"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from tests.support.once import built_once

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data" / "aclImdb_train_test.tar.gz"
BUNDLE = ROOT / "export"


def imdb_data() -> Path:
    """The real IMDB tarball (tests that need it skip loudly when it is absent, except in CI)."""
    path = Path(os.environ.get("EDGE_LSTM_DATA", SHARED_DATA))
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the IMDB tarball at {path}")
        pytest.skip(f"IMDB tarball not found at {path}")
    return path


@pytest.fixture(scope="session")
def imdb_tarball() -> Path:
    return imdb_data()


def make_tarball(path: Path, files: dict[str, str], prefix: str = "aclImdb/") -> Path:
    """Write a .tar.gz holding ``files`` (name -> text) under ``prefix``."""
    with tarfile.open(path, "w:gz") as archive:
        for name, text in files.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def tiny_imdb_files(n: int = 6) -> dict[str, str]:
    """A miniature aclImdb: ``n`` reviews per split and class."""
    files = {}
    for split in ("train", "test"):
        for label, word in (("pos", "great wonderful"), ("neg", "awful boring")):
            for i in range(n):
                rating = 9 if label == "pos" else 2
                files[f"{split}/{label}/{i}_{rating}.txt"] = f"A {word} film number {i}.<br />The end"
    return files


@pytest.fixture()
def tiny_tarball(tmp_path: Path) -> Path:
    return make_tarball(tmp_path / "tiny.tar.gz", tiny_imdb_files())


@pytest.fixture(scope="session")
def small_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (short) training run on a subset of the shared data, exported with --int8 (once per
    run: under ``pytest -n 2`` the other worker waits for it)."""
    return built_once(tmp_path_factory, "small-bundle", _train_and_export)


def _train_and_export(out: Path) -> None:
    from click.testing import CliRunner

    from edge_lstm.cli import main

    runner = CliRunner()
    args = ["train", "--data", str(imdb_data()), "--out", str(out), "--limit", "1200", "--test-limit", "400",
            "--epochs", "2", "--seed", "7"]
    result = runner.invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["export", "--int8", "--bundle", str(out), "--calibration-reviews", "100"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="session")
def exported_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the shipped bundle (``export/``) with every artifact exported, the ONNX files the
    repository does not hold included (once per run)."""
    return built_once(tmp_path_factory, "exported-reference", _export_reference)


def _export_reference(out: Path) -> None:
    from click.testing import CliRunner

    from edge_lstm.cli import main

    shutil.copytree(BUNDLE, out, dirs_exist_ok=True)
    result = CliRunner().invoke(main, ["export", "--int8", "--bundle", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
