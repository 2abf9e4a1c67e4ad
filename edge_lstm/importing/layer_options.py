"""A layer's options, accepted or refused: those that change the computation must have the
supported value, numbers their range, names a usable form; the one line a refusal names
(``ModelFileError``). Read as data from a model file's config (``architecture.py``)."""

from __future__ import annotations

import re
from typing import Any

from edge_lstm.importing.spec import ModelFileError
from edge_lstm.importing.spec import show_value as _show

SUPPORTED_ARCHITECTURE = ("[Input ->] [TextVectorization ->] Embedding -> 1-3 LSTM/GRU layers, optionally "
                          "Bidirectional -> 0-2 Dense -> Dense(1, sigmoid), Dense(1) logits or Dense(k, softmax)")


def expect(cfg: dict, layer: str, **wanted: Any) -> None:
    """Options that change the computation must have the supported value (absent = default)."""
    for key, value in wanted.items():
        found = cfg.get(key, value)
        if found != value or type(found) is not type(value):
            raise ModelFileError(f"{layer} has {key}={_show(found)}; supported: {key}={value!r} "
                                 f"({SUPPORTED_ARCHITECTURE})")


def expect_bool(cfg: dict, layer: str, key: str, default: bool) -> None:
    """An option that may be either True or False (absent = ``default``)."""
    if type(cfg.get(key, default)) is not bool:
        raise ModelFileError(f"{layer} has {key}={_show(cfg[key])}; supported: True or False")


def expect_absent(cfg: dict, layer: str, *keys: str) -> None:
    for key in keys:
        if cfg.get(key) not in (None, 0):
            raise ModelFileError(f"{layer} has {key}={_show(cfg[key])}; only plain float layers are supported")


def check_dtype(cfg: dict, layer: str) -> None:
    dtype = cfg.get("dtype", "float32")
    if isinstance(dtype, dict):  # Keras 3 DTypePolicy / tf-keras Policy
        dtype = (dtype.get("config") or {}).get("name")
    if dtype not in (None, "float32"):
        raise ModelFileError(f"{layer} computes in {_show(dtype)}; supported: float32")


def int_option(cfg: dict, key: str, layer: str, low: int, high: int) -> int:
    value = cfg.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ModelFileError(f"{layer} {key} must be an integer in [{low}, {high}], found {_show(value)}")
    return value


_NAME = re.compile(r"[^/\x00]{1,200}")


def checked_name(cfg: dict) -> str:
    name = cfg.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ModelFileError(f"unusable layer name {_show(name)}")
    return name
