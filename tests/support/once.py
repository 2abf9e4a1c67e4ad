"""Work done once per test run, whichever process asks first: ``pytest -n 2`` runs the tests in two
worker processes, and a session fixture would otherwise train or export the same thing in each."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def exclusive(lock: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file ``lock`` (released when the file closes, or the process dies)."""
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test run's temporary folder: under xdist every worker's ``basetemp`` is inside it."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """The folder ``name`` of this test run, made by ``build(folder)`` in the first process that asks;
    the others wait for it. A build that raised is tried again by the next that asks."""
    root = run_folder(tmp_path_factory)
    folder, done = root / name, root / f".{name}.done"
    with exclusive(root / f".{name}.lock"):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder
