"""The bundle directory: the float model, its tokenizer and metrics, and what export writes."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

from edge_lstm_device.bundle import tokenizers
from edge_lstm_device.bundle.manifest import (  # noqa: F401 (the format's names, re-exported for the host)
    MANIFEST_FILE,
    TOKENIZER_FILE,
    BundleError,
)
from edge_lstm_device.bundle.tokenizer_file import TokenizerError, TokenizerFile

from edge_lstm.transaction import BundleTransaction

DEFAULT_BUNDLE = Path("export")
MODEL_FILE = "model.h5"  # the float model (the device never reads it)
METRICS_FILE = "metrics.json"  # how it was trained


def ensure_writable(directory: Path) -> None:
    """Create ``directory`` if needed and prove we can write into it."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".write-probe.")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise BundleError(f"cannot write to {directory}: {err.strerror or err}") from err


TRAINED_FILES = (MODEL_FILE, TOKENIZER_FILE, METRICS_FILE)


def write_trained(out_dir: Path, model: Any, tokenizer: TokenizerFile, metrics: dict) -> None:
    """Write model, tokenizer and metrics; they appear together, each whole, or not at all."""
    ensure_writable(out_dir)
    with BundleTransaction(out_dir, owns=TRAINED_FILES) as txn:
        stage_trained(txn, model, tokenizer, metrics)
        txn.commit()


def stage_trained(txn: BundleTransaction, model: Any, tokenizer: TokenizerFile, metrics: dict) -> None:
    """Model, tokenizer and metrics staged in the ``BundleTransaction`` ``txn``."""
    path = txn.stage(MODEL_FILE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "HDF5 is legacy": it is small and exact
        model.save(path, include_optimizer=False)
    os.chmod(path, 0o644)
    tokenizer.save(txn.stage(TOKENIZER_FILE))
    txn.stage_json(METRICS_FILE, metrics)


def load_tokenizer(bundle_dir: Path) -> TokenizerFile:
    try:
        return tokenizers.load(bundle_dir / TOKENIZER_FILE)
    except TokenizerError as err:
        raise BundleError(str(err)) from err


def load_model_file(bundle_dir: Path) -> Any:
    """The bundle's float model read as data: its checked description and weights (``ModelFile``)."""
    path = bundle_dir / MODEL_FILE
    if not path.is_file():
        raise BundleError(f"no model in {bundle_dir} (expected {MODEL_FILE}; run 'edge-lstm train')")
    from edge_lstm.importing.modelfile import ModelFileError, read_model_file

    try:
        return read_model_file(path)
    except ModelFileError as err:
        raise BundleError(f"cannot load {path}: {err}") from err


def load_model(bundle_dir: Path) -> Any:
    """Load the float tf-keras model of a bundle, safely: the file is read as data (its
    architecture is checked and the model rebuilt in code), never deserialized as code."""
    from edge_lstm.importing.modelfile import build_model

    return build_model(load_model_file(bundle_dir))
