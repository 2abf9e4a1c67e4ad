"""The host tests' conftest: their fixtures are in ``tests/support/fixtures.py``; the device tests'
support (the session's device cache, the test tiers) is installed for both test roots."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support.fixtures import exported_reference, imdb_tarball, small_bundle, tiny_tarball  # noqa: F401 (fixtures)

# the device tests' support module: pytest puts its folder on sys.path when it collects the device
# tests; a run of the host tests alone needs it too (one tier plugin, one device cache)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "device" / "tests"))
import support as device_support  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    device_support.register(config)
