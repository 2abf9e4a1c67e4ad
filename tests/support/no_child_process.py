"""pytest plugin (``-p no_child_process``) for an interpreter that cannot start a child process.

Under qemu user emulation without binfmt, the host kernel cannot exec the guest's ARM binaries
(``sys.executable``, ``/bin/sh``). With this plugin a test, or a fixture, that starts a child
process is skipped at that point instead of failing, so exactly the tests that need none run.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest


class _NoChildProcess(subprocess.Popen):
    """Stands in for ``subprocess.Popen`` (and so ``subprocess.run``): skips the current test."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pytest.skip("starts a child process (none can run under qemu user emulation)")

    def __del__(self) -> None:
        """Nothing was started, so there is nothing to reap."""


def pytest_configure(config: pytest.Config) -> None:
    subprocess.Popen = _NoChildProcess  # type: ignore[misc]
