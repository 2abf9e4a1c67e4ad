"""Export a bundle's float model to TFLite and ONNX (float and int8) with a manifest.

Everything is built and checked in a staging folder inside the bundle, then renamed into
place with SIGINT/SIGTERM held back: a failed or interrupted export leaves the previous
artifacts and manifest exactly as they were.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from edge_lstm import bundle, termination
from edge_lstm.export import convert
from edge_lstm.export import lstm_loop
from edge_lstm.export import manifest
from edge_lstm.export import numpy_weights
from edge_lstm.export import quantize
from edge_lstm.export import reference_scores
from edge_lstm.export import selfcheck
from edge_lstm.evaluate.backends import KerasBackend, NumpyBackend, TFLiteBackend, open_artifact
from edge_lstm.samples import TEST_SAMPLE, TRAIN_SAMPLE, read_sample
from edge_lstm_device.files import atomic_write_json
from edge_lstm_device import bundle as bundle_format
from edge_lstm_device.bundle import MAX_MANIFEST_BYTES, NUMPY_WEIGHTS, BundleError, read_bounded, read_manifest
from edge_lstm_device.numpy_weights import WEIGHTS_FILE
from edge_lstm_device.signing import SIGNATURE_FILE
from edge_lstm_device.timing import time_calls
from edge_lstm_device.tokenizer import Tokenizer

STAGING_PREFIX = ".export-staging-"
SELFCHECK_REVIEWS = 64
LATENCY_CALLS = 100  # per TFLite artifact, to order them for the device
RANK_MARGIN = 1.25
REPORT_FILE = bundle_format.REPORT_FILE


class ExportError(Exception):
    """The bundle cannot be exported (bad model, mismatched tokenizer, failed conversion...)."""


@dataclasses.dataclass(frozen=True)
class Artifact:
    name: str  # key in the manifest
    file: str
    format: str  # "tflite" or "onnx"
    precision: str  # "float32" or "int8"
    scheme: str  # quantization scheme, "none" for float
    lstm: str  # the LSTM as: "fused" (one TFLite op), "loop" (a WHILE loop of builtin ops), "onnx"


# Every file an export may write: the only files it ever replaces or removes in a bundle.
ALL_ARTIFACTS = tuple(
    Artifact(name, bundle_format.ARTIFACT_FILES[name], fmt, precision, scheme, lstm)
    for name, fmt, precision, scheme, lstm in (
        (bundle_format.FLOAT_TFLITE, "tflite", "float32", "none", "fused"),
        (bundle_format.FLOAT_ONNX, "onnx", "float32", "none", "onnx"),
        (bundle_format.FLOAT_LOOP_TFLITE, "tflite", "float32", "none", "loop"),
        (bundle_format.INT8_LOOP_TFLITE, "tflite", "int8", "dynamic-range", "loop"),
        (bundle_format.INT8_TFLITE, "tflite", "int8", "full-integer", "fused"),
        (bundle_format.INT8_DYNAMIC_TFLITE, "tflite", "int8", "dynamic-range", "fused"),
        (bundle_format.INT8_ONNX, "onnx", "int8", "dynamic", "onnx"),
    )
)
EXPORT_FILES = frozenset({a.file for a in ALL_ARTIFACTS}
                         | {bundle.MANIFEST_FILE, REPORT_FILE, WEIGHTS_FILE, bundle_format.REFERENCE_SCORES_FILE})


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    int8: bool = True
    tflite_scheme: str = "both"  # "full-integer", "dynamic-range", or both (full-integer first)
    calibration_reviews: int = 400
    data: Path | None = None  # IMDB data for calibration; default: the shipped training sample
    seed: int = 0


FUSED = (bundle_format.FLOAT_TFLITE, bundle_format.INT8_TFLITE, bundle_format.INT8_DYNAMIC_TFLITE)
FULL_INTEGER_SOFTMAX = ("full-integer int8 gives a softmax head's probabilities in steps of 1/256 and its activations "
                        "in int8: near classes tie or swap (a 3-class model: 97.0% top labels agreed, the dynamic-range "
                        "forms 99.4-99.6%); the dynamic-range forms keep float activations")


def planned_artifacts(options: ExportOptions, config: dict | None = None) -> list[Artifact]:
    """Float TFLite (fused and loop form) and ONNX; with int8 also the loop-form dynamic-range
    TFLite, the fused TFLite scheme(s) of ``options.tflite_scheme`` and int8 ONNX. The fused
    forms only for an unmasked LSTM, full-integer only for a binary head (``not_exported`` says why)."""
    by_name = {a.name: a for a in ALL_ARTIFACTS}
    floats = [by_name[n] for n in (bundle_format.FLOAT_TFLITE, bundle_format.FLOAT_ONNX, bundle_format.FLOAT_LOOP_TFLITE)]
    plan = floats
    if options.int8:
        plan = floats + [by_name[n] for n in (bundle_format.INT8_LOOP_TFLITE, bundle_format.INT8_TFLITE)]
        if options.tflite_scheme == "dynamic-range":  # model_int8.tflite is then fused dynamic-range
            plan[-1] = dataclasses.replace(plan[-1], scheme="dynamic-range")
        if options.tflite_scheme == "both":
            plan.append(by_name[bundle_format.INT8_DYNAMIC_TFLITE])
        plan = plan + [by_name[bundle_format.INT8_ONNX]]
    return [a for a in plan if a.name not in not_exported(config or {}, options)]


def not_exported(config: dict, options: ExportOptions = ExportOptions()) -> dict[str, str]:
    """Artifacts the architecture has no form for, and why: the fused TFLite forms exist for one
    unmasked LSTM layer only; the full-integer one for a binary head only."""
    layers = config.get("layers", [{"cells": ["LSTM"]}])
    if len(layers) > 1 or len(layers[0]["cells"]) > 1:
        why = "TFLite's fused forms are for one unidirectional LSTM layer (the loop form runs this one)"
    elif layers[0]["cells"][0] != "LSTM":
        why = f"TFLite has no fused {layers[0]['cells'][0]} op (the loop form runs it)"
    elif config.get("whole_reviews"):
        why = "the model reads each review unpadded; TFLite's fused LSTM would run the pad steps (the loop form skips them)"
    elif config.get("masked"):
        why = "TFLite's fused LSTM has no mask (the loop form skips the pad steps)"
    elif config.get("head") == "softmax" and options.tflite_scheme != "dynamic-range":
        return {bundle_format.INT8_TFLITE: FULL_INTEGER_SOFTMAX}
    else:
        return {}
    return dict.fromkeys(FUSED, why)


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
        from edge_lstm.train.data import load_imdb, resolve_source

        reviews = load_imdb(resolve_source(options.data, download=False), ("train",))["train"]
        origin = f"{options.data} (train split)"
    else:
        reviews, origin = read_sample(TRAIN_SAMPLE), f"shipped sample {TRAIN_SAMPLE.name}"
    reviews = reviews.balanced(options.calibration_reviews, options.seed)
    return tokenizer.encode_batch(reviews.texts), f"{len(reviews)} reviews from {origin}"


def _build(art: Artifact, model: Any, max_len: int, staging: Path, calibration: np.ndarray) -> Path:
    path = staging / art.file
    if art.format == "onnx":
        data = convert.to_onnx_float(model, max_len)
    elif art.lstm == "loop":
        scheme = art.scheme if art.precision == "int8" else "float"
        data = lstm_loop.to_tflite_loop(model, max_len, scheme, lambda: iter(calibration))
    elif art.precision == "float32":
        data = convert.to_tflite_float(model, max_len)
    else:
        data = quantize.to_tflite_int8(model, max_len, art.scheme, lambda: iter(calibration))
    path.write_bytes(data)
    return path


def _check_onnx(path: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        raise convert.ConversionError(f"{path.name} fails onnx.checker: {' '.join(str(err).split())[:200]}") from err


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold back SIGINT/SIGTERM while files are renamed into place."""
    held = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


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


def _commit(bundle_dir: Path, staging: Path, files: list[str], new_manifest: dict, report: dict) -> str | None:
    """Rename the staged files into place, manifest last; remove artifacts of an earlier export
    that this one did not write, and a ``manifest.sig`` the new manifest makes stale (returns
    ``_signature_status``). Only files an export writes (``EXPORT_FILES``, plain names in the
    bundle) and the signature are ever replaced or removed, whatever the old manifest says."""
    stamped = manifest.stamp_version(new_manifest, _previous_manifest(bundle_dir))
    new_manifest.clear()  # in place: the caller's result is the manifest written, keys in the file's order
    new_manifest.update(stamped)
    atomic_write_json(staging / bundle.MANIFEST_FILE, new_manifest)
    atomic_write_json(staging / REPORT_FILE, report)
    stale = [name for name in EXPORT_FILES - set(files) - {bundle.MANIFEST_FILE, REPORT_FILE}
             if (bundle_dir / name).is_file() and not (bundle_dir / name).is_symlink()]
    signature = _signature_status(bundle_dir, staging / bundle.MANIFEST_FILE)
    with _signals_held():
        termination.check()  # a SIGTERM a converter swallowed: nothing is committed
        for name in files:
            os.replace(staging / name, bundle_dir / name)
        os.replace(staging / REPORT_FILE, bundle_dir / REPORT_FILE)
        if signature == "removed":
            (bundle_dir / SIGNATURE_FILE).unlink(missing_ok=True)
        os.replace(staging / bundle.MANIFEST_FILE, bundle_dir / bundle.MANIFEST_FILE)
        for name in stale:
            (bundle_dir / name).unlink(missing_ok=True)
    return signature


def _build_and_check(art: Artifact, model: Any, max_len: int, staging: Path, calibration: np.ndarray,
                        calibration_origin: str, rows: np.ndarray, reference: np.ndarray, tools: dict,
                        log: Callable[[str], None], judge: Callable[[Path], tuple[float, float]]) -> tuple[dict, dict]:
    """Build one artifact in ``staging``, run it against the float model; returns its manifest
    entry (reproducible) and its measurements (for the report)."""
    log(f"building {art.name} ({art.lstm} form, {art.scheme if art.precision == 'int8' else 'float'})")
    started = time.perf_counter()
    quantizer = None
    if art.name == bundle_format.INT8_ONNX:  # the quantizer whose scores agree best with the float model's
        path = staging / art.file
        quantizer, candidates = quantize.to_onnx_int8(staging / "model_float.onnx", path, judge)
        log("  " + ", ".join(f"{'per channel' if c['per_channel'] else 'per tensor'}: {c['label_agreement']:.2%}"
                             for c in candidates) + f" labels agree with float; kept {_quantizer_name(quantizer)}")
    else:
        path = _build(art, model, max_len, staging, calibration)
    if art.format == "onnx":
        _check_onnx(path)
    tolerance = selfcheck.INT8_TOLERANCE if art.precision == "int8" else selfcheck.FLOAT_TOLERANCE
    backend = open_artifact(staging, art.name, {"file": art.file, "format": art.format})
    measured = {"selfcheck": selfcheck.check(backend, rows, reference, tolerance).to_dict()}
    entry = manifest.artifact_entry(path, art.format, art.precision, art.scheme, tools)
    entry["lstm"] = art.lstm
    if art.lstm == "loop":
        entry["loop"] = lstm_loop.describe(model, max_len)
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
    from edge_lstm_device.numpy_engine import NumpyScorer

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
    for leftover in bundle_dir.glob(STAGING_PREFIX + "*"):
        shutil.rmtree(leftover, ignore_errors=True)
    scores = reference_scores.build(KerasBackend(model).score, tokenizer, sample, f"shipped sample {TEST_SAMPLE.name}")
    judge = _onnx_judge(tokenizer, scores)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=bundle_dir))  # (removed by the finally below)
    try:
        skipped = not_exported(config, options)
        built = {}
        for art in planned_artifacts(options, config):
            if art.format == "onnx" and bundle_format.FLOAT_ONNX in skipped:
                skipped.setdefault(art.name, skipped[bundle_format.FLOAT_ONNX])
                continue
            try:
                built[art.name] = _build_and_check(art, model, config["max_len"], staging, calibration,
                                                   calibration_origin, rows, reference, tools, log, judge)
            except (convert.ConversionError, selfcheck.SelfCheckError) as err:
                if art.format != "onnx":
                    raise
                skipped[art.name] = f"tf2onnx: {' '.join(str(err).split())[:200]}"  # ONNX where it converts
                log(f"  {art.file} left out: {skipped[art.name]}")
            termination.check()
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
        signature = _commit(bundle_dir, staging, files, result, report)
        return {"manifest": result, "report": report, **({"signature": signature} if signature else {})}
    except (convert.ConversionError, selfcheck.SelfCheckError) as err:
        raise ExportError(str(err)) from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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
    from edge_lstm.evaluate.backends import OnnxBackend
    from edge_lstm_device.agreement import label_agreement

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
