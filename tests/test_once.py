"""``tests/support/once.py``: a session fixture's work done once per run, across xdist workers."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.support.once import built_once, run_folder


def test_built_once_though_asked_at_once(tmp_path_factory: pytest.TempPathFactory) -> None:
    builds = []

    def build(folder: Path) -> None:
        builds.append(folder)
        time.sleep(0.3)  # the other asker arrives meanwhile, and must wait
        (folder / "model").write_text("trained")

    got: list[Path] = []
    askers = [threading.Thread(target=lambda: got.append(built_once(tmp_path_factory, "thing", build)))
              for _ in range(2)]
    for asker in askers:
        asker.start()
    for asker in askers:
        asker.join()
    assert len(builds) == 1 and got[0] == got[1] and (got[0] / "model").read_text() == "trained"


def test_a_failed_build_is_tried_again(tmp_path_factory: pytest.TempPathFactory) -> None:
    def fails(folder: Path) -> None:
        (folder / "half").write_text("")
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        built_once(tmp_path_factory, "retried", fails)
    folder = built_once(tmp_path_factory, "retried", lambda f: (f / "whole").write_text(""))
    assert [p.name for p in folder.iterdir()] == ["whole"]


def test_workers_share_the_run_folder(tmp_path_factory: pytest.TempPathFactory,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    alone = run_folder(tmp_path_factory)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    assert run_folder(tmp_path_factory) == tmp_path_factory.getbasetemp().parent
    assert alone == tmp_path_factory.getbasetemp()
