"""Size limits that a user may need to raise, read from the environment at each use."""

from __future__ import annotations

import os


def env_limit(name: str, default: int) -> int:
    """The positive integer in ``$name``, else ``default``; ``ValueError`` for anything else."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {raw!r}")
    return value
