"""``edge-lstm parity`` as a function: load a bundle's artifacts and its reference model, score
the reviews, judge every artifact. The command parses options and prints; scripts call this.

Errors are typed and carry one line each: ``UnknownArtifactError`` (a name not in the bundle),
``BundleError``, ``DataError``, ``ReviewTooLongError``, ``ModelFileError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from edge_lstm_device.bundle.manifest import class_names, read_manifest
from edge_lstm_device.runtime.agreement import Thresholds

from edge_lstm.evaluate.parity import ParityReport, run_parity
from edge_lstm.train.data import Reviews


@dataclass(frozen=True)
class ParityRequest:
    """What to check: the bundle, which reviews, which artifacts, against which reference."""

    bundle_dir: Path
    data: Path | None = None  # an IMDB tarball or folder; None: the shipped 300-review sample
    limit: int | None = None  # a balanced, deterministic subset of this many reviews
    seed: int = 0
    only: tuple[str, ...] = ()  # these artifacts only
    thresholds: Thresholds = field(default_factory=Thresholds)
    original: Path | None = None  # the model file an imported bundle came from: the reference
    threads: int = 1


@dataclass
class _Reference:
    name: str
    model: Any
    inputs: Any
    unpadded: bool = False


def check_parity(request: ParityRequest, log: Callable[[str], None] = lambda _: None) -> ParityReport:
    """Score the request's reviews with the reference and every artifact; the judged report."""
    from edge_lstm.evaluate.backends import KerasBackend
    from edge_lstm.evaluate.subjects import load_subjects, parity_reviews

    tokenizer, model, backends = load_subjects(request.bundle_dir, request.only, request.threads)
    classes = class_names(read_manifest(request.bundle_dir))
    reviews, source = parity_reviews(request.data, request.limit, request.seed)
    rows = tokenizer.encode_batch(reviews.texts)
    reference = _Reference("keras_float", model, rows)
    if request.original is not None:  # the user's own model is the reference; the rebuilt one is judged too
        backends.insert(0, (KerasBackend(model, name="rebuilt_keras_float"), "float32", False))
        reference = _original_reference(request, reviews, rows, log)
    log(f"scoring {len(rows)} reviews with {reference.name} (reference)")
    scores = KerasBackend(reference.model, name=reference.name, unpadded=reference.unpadded).score(reference.inputs)
    return run_parity(reviews, rows, scores, backends, request.thresholds, source, log=log,
                      reference_name=reference.name, classes=classes)


def _original_reference(request: ParityRequest, reviews: Reviews, rows: np.ndarray,
                        log: Callable[[str], None]) -> _Reference:
    from edge_lstm.evaluate.subjects import original_model, text_input

    model, loader, reads_text, unpadded = original_model(request.original, request.bundle_dir)
    log(f"reference: {request.original.name} ({loader})")
    inputs = text_input(model, reviews.texts) if reads_text else rows
    return _Reference(f"original ({request.original.name})", model, inputs, unpadded)
