"""What the device tests share (one module for the package): the shipped sample of reviews, copies
of the shipped reference bundle (some changed on purpose, re-pinned so the change is all that
differs), the session's own device cache, and the test tiers (``tiers.py``).

Standard library, numpy, pytest and the device package only: the device tests run without the
host package (on a Raspberry Pi, under qemu). Both test roots' conftests call :func:`register`,
so these fixtures and the tiers are installed once per session, for every test.
"""

from __future__ import annotations

import gzip
import json
import random
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import numpy.testing  # noqa: F401 (numpy 1.x runs lscpu when it is first imported: before any unit test's guard)
import pytest
import tiers
from edge_lstm_device.bundle.files import bytes_sha256
from edge_lstm_device.runtime.model import REFERENCE_BUNDLE, SentimentModel

# 300 real IMDB test reviews (the host package's shipped sample: plain gzipped JSON lines)
SAMPLE = Path(__file__).resolve().parents[2] / "edge_lstm" / "samples" / "test_reviews.jsonl.gz"
PLUGIN_NAME = "edge-lstm-device-support"


def sample_reviews() -> tuple[list[str], list[int]]:
    """Texts and labels (1 = positive) of the shipped sample."""
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    return [r["text"] for r in records], [int(r["label"]) for r in records]


@pytest.fixture(scope="module")
def model() -> SentimentModel:
    return SentimentModel.load()


@pytest.fixture(scope="session", autouse=True)
def calibration_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The device's cache (calibration choices, probed files) of this test session: a choice cached
    by an earlier session, or by the user, cannot decide which model a test gets."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EDGE_LSTM_CACHE", str(tmp_path_factory.mktemp("edge-lstm-cache")))
        yield


def register(config: pytest.Config) -> None:
    """Install the tiers and this module's fixtures once per session. Registered as a plugin (not
    imported into each conftest), its session fixtures exist once for both test roots."""
    tiers.register(config)
    if not config.pluginmanager.has_plugin(PLUGIN_NAME):
        config.pluginmanager.register(sys.modules[__name__], PLUGIN_NAME)


def copy_reference(dest: Path) -> Path:
    """The shipped reference bundle, copied to ``dest`` (every file its manifest names)."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in REFERENCE_BUNDLE.iterdir():
        if path.is_file() and path.suffix in (".tflite", ".json"):
            shutil.copy(path, dest / path.name)
    return dest


def mutated_copies(path: Path, count: int) -> list[bytes]:
    """``count`` copies of the file at ``path``, each with 1, 8 or 64 random bytes changed (seeded:
    the same files in every run and on every platform)."""
    original, rng, copies = path.read_bytes(), random.Random(1), []
    for _ in range(count):
        data = bytearray(original)
        for _ in range(rng.choice([1, 8, 64])):
            data[rng.randrange(len(data))] = rng.randrange(256)
        copies.append(bytes(data))
    return copies


def edit_manifest(bundle: Path, change: Callable[[dict], None]) -> dict:
    manifest = json.loads((bundle / "manifest.json").read_text())
    change(manifest)
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def edit_reference_scores(bundle: Path, change: Callable[[dict], None]) -> None:
    """Change ``reference_scores.json`` and pin the new bytes in the manifest."""
    document = json.loads((bundle / "reference_scores.json").read_text())
    change(document)
    data = json.dumps(document).encode("utf-8")
    (bundle / "reference_scores.json").write_bytes(data)

    def pin(manifest: dict) -> None:
        manifest["reference_scores"].update(sha256=bytes_sha256(data), bytes=len(data))

    edit_manifest(bundle, pin)


def invert_scores(document: dict) -> None:
    """Every reference score p becomes 1 - p: no model can agree with it."""
    for text_set in document["sets"]:
        for item in text_set["items"]:
            item["score"] = 1.0 - item["score"]
