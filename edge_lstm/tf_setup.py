"""TensorFlow's environment, set just before a command imports it (never at package import),
and the native libraries' start-up chatter kept off the terminal."""

from __future__ import annotations

import os

from edge_lstm_device.runtime.quiet import hide_native_stderr  # noqa: F401 (one implementation, shared)


def quiet_tensorflow() -> None:
    """Silence TensorFlow's C++ logging; call it before ``import tensorflow``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
