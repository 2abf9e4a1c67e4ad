"""Device tests: they need only the device package, numpy, a TFLite interpreter and pytest, so
they run on a Raspberry Pi from a checkout: ``python -m pytest device/tests``. What they share
is in ``support.py``; the test tiers are in ``tiers.py``."""

from __future__ import annotations

import pytest
import support


def pytest_configure(config: pytest.Config) -> None:
    support.register(config)
