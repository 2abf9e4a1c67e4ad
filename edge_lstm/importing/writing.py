"""An import's output: ``import.json`` (what was imported and proven) and the bundle, written
beside ``--out``, read back, then renamed into place (``edge_lstm.transaction``)."""

from __future__ import annotations

import dataclasses
import platform
from pathlib import Path
from typing import Any

import numpy as np

from edge_lstm.importing.equivalence import TOLERANCE
from edge_lstm.importing.errors import ImportModelError

IMPORT_FILE = "import.json"
STAGING_PREFIX = ".edge-lstm-import."


def import_record(model_path: Path, spec: Any, tok_kind: str, tok_path: Path, tokenizer: Any,
            loader: str, max_diff: float, rows: int) -> dict:
    from edge_lstm_device.bundle.files import file_sha256

    return {
        "source": {"file": model_path.name, "sha256": file_sha256(model_path), "bytes": model_path.stat().st_size,
                   "format": spec.description, "keras_version": spec.keras_version},
        "architecture": {"layers": spec.architecture, "num_words": spec.num_words,
                         "embedding_dim": spec.embedding_dim, "cell": spec.cell, "units": spec.units,
                         "mask_zero": spec.mask_zero, "head": spec.head, "max_len": spec.max_len,
                         "max_len_from": spec.max_len_from, "whole_reviews": spec.whole_reviews,
                         "functional": spec.functional,
                         "recurrent": [dataclasses.asdict(r) for r in spec.recurrent],
                         "dense": [dataclasses.asdict(d) for d in spec.dense],
                         **({"labels": list(spec.labels)} if spec.labels else {})},
        "tokenizer": {"from": {"word-index": "Keras IMDB word index (ids rank + 3)", "tokenizer": "edge-lstm tokenizer",
                               "text-vectorization": "the model's TextVectorization layer"}[tok_kind],
                      "file": tok_path.name, "sha256": file_sha256(tok_path), "words": len(tokenizer.words),
                      "fingerprint": tokenizer.fingerprint()},
        "equivalence": {"reference": loader, "rows": rows, "max_abs_diff": max_diff, "tolerance": TOLERANCE},
        "versions": {"python": platform.python_version(), "numpy": np.__version__},
    }


def write_bundle(out: Path, model: Any, model_file: Any, tokenizer: Any, record: dict) -> list[str]:
    """Write the bundle into a folder beside ``out``, check it reads back, then rename it into place."""
    from edge_lstm import bundle
    from edge_lstm.importing.modelfile import ModelFileError, read_model_file, write_bundle_attrs
    from edge_lstm.transaction import BundleTransaction

    txn = BundleTransaction(out, prefix=STAGING_PREFIX, whole=True)
    try:
        staging = txn.begin()
    except OSError as err:
        raise ImportModelError(f"cannot write beside {out}: {err.strerror or err}") from err
    with txn:
        try:
            config = {k: record["architecture"][k] for k in ("num_words", "max_len", "embedding_dim", "cell", "units", "mask_zero")}
            model.compile(loss="binary_crossentropy")  # as training saves it (else tf-keras warns on save)
            bundle.stage_trained(txn, model, tokenizer, {"config": config, "import": record})
            write_bundle_attrs(staging / bundle.MODEL_FILE, model_file.spec)
            txn.stage_json(IMPORT_FILE, record)
            written = read_model_file(staging / bundle.MODEL_FILE)
            if not all(np.array_equal(a, b) for a, b in zip(written.weights, model_file.weights)):
                raise ImportModelError("the written model.h5 does not hold the imported weights")
            if (written.spec.labels, written.spec.whole_reviews) != (model_file.spec.labels, model_file.spec.whole_reviews):
                raise ImportModelError("the written model.h5 does not hold the class names or the window's reading")
            txn.commit()
            return sorted(p.name for p in out.iterdir())
        except (bundle.BundleError, ModelFileError, OSError) as err:
            raise ImportModelError(f"cannot write the bundle to {out}: {err}") from err
