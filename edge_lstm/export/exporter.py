"""Export a bundle's float model to TFLite and ONNX (float and int8) with a manifest.

Everything is built and checked in a staging folder inside the bundle, then renamed into
place with SIGINT/SIGTERM held back (``edge_lstm.transaction``): a failed or interrupted export
leaves the previous artifacts and manifest exactly as they were.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from edge_lstm_device.bundle import manifest as bundle_format
from edge_lstm_device.bundle.files import atomic_write_json
from edge_lstm_device.bundle.manifest import MAX_MANIFEST_BYTES, NUMPY_WEIGHTS, BundleError, read_bounded, read_manifest
from edge_lstm_device.bundle.numpy_weights import WEIGHTS_FILE
from edge_lstm_device.bundle.signing import SIGNATURE_FILE
from edge_lstm_device.bundle.tokenizer import Tokenizer
from edge_lstm_device.tools.timing import time_calls

from edge_lstm import bundle, termination
from edge_lstm.evaluate.backends import KerasBackend, NumpyBackend, TFLiteBackend, open_artifact
from edge_lstm.export import convert, lstm_loop, manifest, numpy_weights, reference_scores, selfcheck
from edge_lstm.export.recipes import (  # noqa: F401 (ExportOptions, not_exported: this module's names too)
    RECIPES,
    BuildInputs,
    ExportOptions,
    Recipe,
    not_exported,
    planned,
)
from edge_lstm.samples import TEST_SAMPLE, TRAIN_SAMPLE, read_sample
from edge_lstm.transaction import BundleTransaction

STAGING_PREFIX = ".export-staging-"
SELFCHECK_REVIEWS = 64
LATENCY_CALLS = 100  # per TFLite artifact, to order them for the device
RANK_MARGIN = 1.25
REPORT_FILE = bundle_format.REPORT_FILE


class ExportError(Exception):
    """The bundle cannot be exported (bad model, mismatched tokenizer, failed conversion...)."""


# Every file an export may write: the only files it ever replaces or removes in a bundle.
EXPORT_FILES = frozenset({r.file for r in RECIPES}
                         | {bundle.MANIFEST_FILE, REPORT_FILE, WEIGHTS_FILE, bundle_format.REFERENCE_SCORES_FILE})


def check_model(model: Any, tokenizer: Tokenizer, spec: Any) -> dict:
    """The model (as ``importing.modelfile`` rebuilds it from ``spec``) must read the tokenizer's
    ids and give one probability or logit, or one probability per class of a softmax head;
    returns its description for the manifest (``labels``: the class names, softmax heads only)."""
    from edge_lstm.export.lstm_loop import LoopModel

    embedding = model.layers[0]
    if type(embedding).__name__ != "Embedding":
        raise ExportError(f"expected an Embedding first, got {type(embedding).__name__}")
    max_len = model.input_shape[1]
    if max_len != tokenizer.max_len:
        raise ExportError(f"the model reads {max_len} tokens but the tokenizer writes {tokenizer.max_len}")
    if embedding.input_dim != tokenizer.num_words:
        raise ExportError(
            f"the model's vocabulary has {embedding.input_dim} ids but the tokenizer's has {tokenizer.num_words}"
        )
    if model.output_shape[-1] != spec.classes:
        raise ExportError(f"expected {spec.classes} output units, got {model.output_shape[-1]}")
    loop = LoopModel.from_model(model)
    layers = [{"cells": [c.kind.upper() for c in layer.cells], "units": layer.cells[0].units,
               **({"merge_mode": layer.merge_mode} if len(layer.cells) > 1 else {})} for layer in loop.layers]
    return {"num_words": embedding.input_dim, "max_len": max_len, "embedding_dim": embedding.output_dim,
            "cell": layers[0]["cells"][0], "units": layers[0]["units"], "masked": loop.masked, "layers": layers,
            **({"whole_reviews": True} if spec.whole_reviews else {}),
            "head": spec.head, **({"labels": list(spec.labels)} if spec.labels else {}),
            "step_macs": loop.step_macs(), "architecture": spec.architecture}


def calibration_rows(options: ExportOptions, tokenizer: Tokenizer) -> tuple[np.ndarray, str]:
    """Real training reviews through the same tokenizer (never random ids)."""
    if options.data is not None:
        from edge_lstm.train.data import load_imdb
        from edge_lstm.train.download import resolve_source

        reviews = load_imdb(resolve_source(options.data, download=False), ("train",))["train"]
        origin = f"{options.data} (train split)"
    else:
        reviews, origin = read_sample(TRAIN_SAMPLE), f"shipped sample {TRAIN_SAMPLE.name}"
    reviews = reviews.balanced(options.calibration_reviews, options.seed)
    return tokenizer.encode_batch(reviews.texts), f"{len(reviews)} reviews from {origin}"


def _check_onnx(path: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        raise convert.ConversionError(f"{path.name} fails onnx.checker: {' '.join(str(err).split())[:200]}") from err


def _signature_status(bundle_dir: Path, staged_manifest: Path) -> str | None:
    """None (the bundle is not signed), "kept" (the new manifest has the very bytes of the one in
    place, so ``manifest.sig`` still holds) or "removed" (it would sign the previous manifest)."""
    if not os.path.lexists(bundle_dir / SIGNATURE_FILE):
        return None
    try:
        unchanged = read_bounded(bundle_dir / bundle.MANIFEST_FILE, MAX_MANIFEST_BYTES) == staged_manifest.read_bytes()
    except BundleError:
        unchanged = False
    return "kept" if unchanged else "removed"


def _commit(txn: BundleTransaction, files: list[str], new_manifest: dict, report: dict) -> str | None:
    """Put the staged ``files``, the report and the manifest (last) in place; the transaction removes
    artifacts of an earlier export that this one did not write, and a ``manifest.sig`` the new
    manifest makes stale (returns ``_signature_status``). Only files an export writes
    (``EXPORT_FILES``, plain names in the bundle) and the signature are ever replaced or removed,
    whatever the old manifest says."""
    stamped = manifest.stamp_version(new_manifest, _previous_manifest(txn.target))
    new_manifest.clear()  # in place: the caller's result is the manifest written, keys in the file's order
    new_manifest.update(stamped)
    for name in files:  # built in the staging folder by the recipes; registered here, once they passed, so a
        txn.stage(name)  # left-out ONNX file stays behind and goes with the folder
    staged_manifest = txn.stage_json(bundle.MANIFEST_FILE, new_manifest)
    txn.stage_json(REPORT_FILE, report)
    signature = _signature_status(txn.target, staged_manifest)
    txn.commit(last=bundle.MANIFEST_FILE, drop=[SIGNATURE_FILE] if signature == "removed" else [])
    return signature


def _build_and_check(art: Recipe, inputs: BuildInputs, calibration_origin: str, rows: np.ndarray,
                     reference: np.ndarray, tools: dict, log: Callable[[str], None]) -> tuple[dict, dict]:
    """Build one artifact in ``staging`` by its recipe, run it against the float model; returns
    its manifest entry (reproducible) and its measurements (for the report)."""
    log(f"building {art.name} ({art.lstm} form, {art.built_as})")
    started = time.perf_counter()
    path = inputs.staging / art.file
    chosen = art.build(inputs, path)
    quantizer, candidates = chosen.get("quantizer"), chosen.get("quantizers")
    if quantizer is not None:
        log("  " + ", ".join(f"{'per channel' if c['per_channel'] else 'per tensor'}: {c['label_agreement']:.2%}"
                             for c in candidates) + f" labels agree with float; kept {_quantizer_name(quantizer)}")
    if art.format == "onnx":
        _check_onnx(path)
    backend = open_artifact(inputs.staging, art.name, {"file": art.file, "format": art.format})
    measured = {"selfcheck": selfcheck.check(backend, rows, reference, art.tolerance).to_dict()}
    entry = manifest.artifact_entry(path, art.format, art.precision, art.scheme, tools)
    entry["lstm"] = art.lstm
    if art.lstm == "loop":
        entry["loop"] = lstm_loop.describe(inputs.model, inputs.max_len)
    if isinstance(backend, TFLiteBackend):
        entry["verified_in"] = [manifest.runtime_id(backend.scorer.interpreter_dist)]
        latency = time_calls(lambda i: backend.score(rows[i % len(rows)][None, :]), LATENCY_CALLS)
        measured["latency_ms"] = latency.to_dict()
    if art.scheme == "full-integer":
        entry["calibration"] = calibration_origin
    if quantizer is not None:
        entry["quantizer"] = quantizer
        measured["quantizers"] = candidates
    log(f"  {art.file}: {path.stat().st_size / 1024:.0f} KiB in {time.perf_counter() - started:.1f} s")
    return entry, measured


def _build_numpy_weights(model: Any, max_len: int, staging: Path, rows: np.ndarray, reference: np.ndarray,
                         log: Callable[[str], None]) -> tuple[dict, dict]:
    """The numpy engine's weights file (int8, the int8 loop file's own values), run by the engine
    against the float model like an artifact; returns its manifest entry and its measurements."""
    from edge_lstm_device.runtime.numpy_engine.engine import NumpyScorer

    path = staging / WEIGHTS_FILE
    path.write_bytes(numpy_weights.to_weights_file(lstm_loop.LoopModel.from_model(model), max_len))
    backend = NumpyBackend(NumpyScorer(path.read_bytes()), NUMPY_WEIGHTS)
    measured = {"selfcheck": selfcheck.check(backend, rows, reference, selfcheck.INT8_TOLERANCE).to_dict()}
    log(f"  {path.name}: {path.stat().st_size / 1024:.0f} KiB (the numpy engine's weights)")
    return numpy_weights.manifest_entry(path), measured


def device_order(measured: dict[str, dict], previous: list[str]) -> list[str]:
    """TFLite artifacts, fastest first (median latency at batch 1, one thread, measured here).
    Starting from the ``previous`` order, a model moves ahead of another only when it is more
    than ``RANK_MARGIN`` times faster, so a re-export on a similar machine writes the same order."""
    latency = {name: m["latency_ms"]["median"] for name, m in measured.items() if "latency_ms" in m}
    order = [n for n in previous if n in latency] + sorted(set(latency) - set(previous), key=latency.get)
    swapped = True
    while swapped:  # each swap removes one pair out of latency order: this ends
        swapped = False
        for i in range(len(order) - 1):
            if latency[order[i]] > RANK_MARGIN * latency[order[i + 1]]:
                order[i], order[i + 1], swapped = order[i + 1], order[i], True
    return order


def _previous_manifest(bundle_dir: Path) -> dict | None:
    """The manifest in place, if it is one (its version is the floor of the next)."""
    try:
        return read_manifest(bundle_dir)
    except BundleError:
        return None


def _previous_order(bundle_dir: Path) -> list[str]:
    try:
        order = read_manifest(bundle_dir).get("device_order", [])
    except BundleError:
        return []
    return [n for n in order if isinstance(n, str)] if isinstance(order, list) else []


def export_bundle(
    bundle_dir: Path, options: ExportOptions = ExportOptions(), log: Callable[[str], None] = print
) -> dict:
    """Write the float (and with ``options.int8`` the int8) artifacts, manifest.json and
    export_report.json; returns both documents. The manifest depends only on the model, the
    tools and the speed ranking (no timings, no timestamps), so re-exporting the same model
    rewrites the same bytes; what this machine measured goes to the report."""
    if not bundle_dir.is_dir():
        raise bundle.BundleError(f"no bundle at {bundle_dir} (run 'edge-lstm train' or 'edge-lstm import' first)")
    from edge_lstm.importing.modelfile import build_model

    tokenizer = bundle.load_tokenizer(bundle_dir)
    model_file = bundle.load_model_file(bundle_dir)
    model = build_model(model_file)
    bundle.ensure_writable(bundle_dir)
    config = check_model(model, tokenizer, model_file.spec)
    calibration, calibration_origin = calibration_rows(options, tokenizer)
    sample = read_sample(TEST_SAMPLE)
    rows = tokenizer.encode_batch(sample.texts[:SELFCHECK_REVIEWS])
    reference = KerasBackend(model).score(rows)
    tools = manifest.tool_versions()
    scores = reference_scores.build(KerasBackend(model).score, tokenizer, sample, f"shipped sample {TEST_SAMPLE.name}")
    judge = _onnx_judge(tokenizer, scores)
    with BundleTransaction(bundle_dir, owns=EXPORT_FILES, prefix=STAGING_PREFIX) as txn:
        try:
            staging = txn.staging
            inputs = BuildInputs(model, config["max_len"], staging, calibration, judge)
            built, skipped = _build_all(options, config, inputs, calibration_origin, rows, reference, tools, log)
            entries = {name: entry for name, (entry, _) in built.items()}
            measured = {name: m for name, (_, m) in built.items()}
            _add_size_ratios(entries)
            scores_entry = _write_reference_scores(staging, scores, log)
            result = manifest.build_manifest(bundle_dir / bundle.MODEL_FILE, bundle_dir / bundle.TOKENIZER_FILE,
                                             tokenizer, config, entries,
                                             device_order(measured, _previous_order(bundle_dir)), skipped, scores_entry)
            report = manifest.export_report(measured, SELFCHECK_REVIEWS, LATENCY_CALLS)
            files = [e["file"] for e in entries.values()] + [scores_entry["file"]]
            if options.int8:  # the numpy engine's weights: int8, as the int8 loop file holds them
                result[NUMPY_WEIGHTS], report["artifacts"][NUMPY_WEIGHTS] = _build_numpy_weights(
                    model, config["max_len"], staging, rows, reference, log)
                files.append(WEIGHTS_FILE)
            signature = _commit(txn, files, result, report)
            return {"manifest": result, "report": report, **({"signature": signature} if signature else {})}
        except (convert.ConversionError, selfcheck.SelfCheckError) as err:
            raise ExportError(str(err)) from err


def _build_all(options: ExportOptions, config: dict, inputs: BuildInputs, calibration_origin: str, rows: np.ndarray,
               reference: np.ndarray, tools: dict, log: Callable[[str], None]) -> tuple[dict, dict[str, str]]:
    """Every planned artifact built and checked: ``({name: (entry, measured)}, {name: why not})``.
    An ONNX file that does not convert is left out with the reason; any other failure raises."""
    skipped = not_exported(config, options)
    built = {}
    for art in planned(options, config):
        if art.format == "onnx" and bundle_format.FLOAT_ONNX in skipped:
            skipped.setdefault(art.name, skipped[bundle_format.FLOAT_ONNX])
            continue
        try:
            built[art.name] = _build_and_check(art, inputs, calibration_origin, rows, reference, tools, log)
        except (convert.ConversionError, selfcheck.SelfCheckError) as err:
            if art.format != "onnx":
                raise
            skipped[art.name] = f"tf2onnx: {' '.join(str(err).split())[:200]}"  # ONNX where it converts
            log(f"  {art.file} left out: {skipped[art.name]}")
        termination.check()
    return built, skipped


def _write_reference_scores(staging: Path, document: dict, log: Callable[[str], None]) -> dict:
    """``reference_scores.json`` in ``staging`` (``reference_scores.build``: the float model on the
    shipped test reviews and short texts cut from them); returns its manifest entry."""
    path = staging / bundle_format.REFERENCE_SCORES_FILE
    atomic_write_json(path, document)
    counts = {s["name"]: len(s["items"]) for s in document["sets"]}
    log(f"  {path.name}: the float model's scores of " + ", ".join(f"{n} {name}" for name, n in counts.items()))
    return {**manifest.file_entry(path), "sets": counts}


def _onnx_judge(tokenizer: Tokenizer, document: dict) -> Callable[[Path], tuple[float, float]]:
    """An ONNX file's lowest label agreement over the reference sets and its max |Δp|, against the
    float model's scores (how the int8 ONNX quantizer is chosen)."""
    from edge_lstm_device.runtime.agreement import label_agreement

    from edge_lstm.evaluate.backends import OnnxBackend

    sets = [(tokenizer.encode_batch([i["text"] for i in s["items"]]), np.array([i["score"] for i in s["items"]]))
            for s in document["sets"]]

    def judge(path: Path) -> tuple[float, float]:
        backend = OnnxBackend.from_bytes(path.read_bytes(), path.name)
        scored = [(backend.score(rows), ref) for rows, ref in sets]
        return (min(label_agreement(scores, ref) for scores, ref in scored),
                max(float(np.abs(scores - ref).max()) for scores, ref in scored))

    return judge


def _quantizer_name(settings: dict) -> str:
    return ("per channel" if settings["per_channel"] else "per tensor") + (", 7-bit" if settings["reduce_range"] else "")


def _add_size_ratios(entries: dict[str, dict]) -> None:
    """Each int8 artifact's size as a fraction of its float twin (same format and LSTM form)."""
    floats = {(e["format"], e["lstm"] == "loop"): e for e in entries.values() if e["precision"] == "float32"}
    for entry in entries.values():
        twin = floats.get((entry["format"], entry["lstm"] == "loop"))
        if entry["precision"] == "int8" and twin:
            entry["size_ratio_to_float"] = round(entry["bytes"] / twin["bytes"], 4)
