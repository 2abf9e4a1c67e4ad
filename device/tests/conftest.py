"""Device tests: they need only the device package, numpy, a TFLite interpreter and pytest, so
they run on a Raspberry Pi from a checkout: ``python -m pytest device/tests``. What they share
is in ``support.py``; the test tiers are in ``tiers.py``. The tests are in folders named after the
package's layers (``bundle/``, ``runtime/``, ``serving/``), without ``__init__.py``: each test
module is imported by its file name, so file names are unique across the folders."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import support

# a test module imports another by its file name, from any folder (``bundle/test_rollback.py``
# serves through ``serving/test_serve.py``): every folder is on sys.path, whichever file runs
for _folder in sorted(Path(__file__).resolve().parent.iterdir()):
    if _folder.is_dir() and not _folder.name.startswith(("_", ".")) and str(_folder) not in sys.path:
        sys.path.append(str(_folder))


def pytest_configure(config: pytest.Config) -> None:
    support.register(config)
