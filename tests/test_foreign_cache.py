"""The foreign environments' cache (``tests/support/foreign.py``): built once, into place whole,
even when two pytest workers ask for the same environment at the same time."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.support.foreign import _cached


def test_two_builders_at_once_build_it_once(tmp_path: Path) -> None:
    built = []

    def build(dest: Path) -> str:
        built.append(dest)
        time.sleep(0.3)  # long enough for the other caller to arrive while this one builds
        (dest / "python").write_text("ok")
        return "an environment"

    target = tmp_path / "env"
    results: list[str] = []
    callers = [threading.Thread(target=lambda: results.append(_cached(target, build))) for _ in range(2)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert results == ["an environment", "an environment"] and len(built) == 1
    assert (target / "python").read_text() == "ok"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []


def test_a_failed_build_leaves_nothing_and_the_next_call_builds_again(tmp_path: Path) -> None:
    target = tmp_path / "env"

    def fails(dest: Path) -> str:
        (dest / "half").write_text("")
        raise RuntimeError("download failed")

    with pytest.raises(RuntimeError, match="download failed"):
        _cached(target, fails)
    assert not target.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []
    assert _cached(target, lambda dest: "built") == "built"
