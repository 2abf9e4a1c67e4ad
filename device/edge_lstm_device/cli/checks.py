"""``info``, ``verify`` and ``calibrate``: which model runs here and why, and how each model of
the bundle agrees with the float model on this CPU."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from edge_lstm_device.bundle.signing import resolve_trust
from edge_lstm_device.cli.output import EXIT_FATAL, EXIT_THRESHOLD_FAILED, out, plain

if TYPE_CHECKING:
    from edge_lstm_device.runtime.calibrate import Calibration


def info(args: argparse.Namespace) -> int:
    from edge_lstm_device.bundle.manifest import model_entry
    from edge_lstm_device.runtime.cpu import detect
    from edge_lstm_device.runtime.interpreters import interpreter_version
    from edge_lstm_device.runtime.model import REFERENCE_BUNDLE, BundleError, SentimentModel, device_order

    try:
        trusted = resolve_trust(args.trust)
        model = SentimentModel.load(args.bundle, args.model, args.threads, args.interpreter, trust=trusted,
                                    calibrate=not args.no_calibrate)
    except (BundleError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FATAL
    dist = model.scorer.interpreter_dist
    entry = model_entry(model.manifest, model.name)
    labels = list(model.labels)
    data = {
        "bundle": str(args.bundle or "reference (shipped with edge-lstm-device)"),
        "model": model.name, "why": model.choice.reason, "file": entry["file"], "bytes": entry["bytes"],
        "precision": entry["precision"], "quantization": entry["quantization"], "lstm": entry.get("lstm", "fused"),
        "interpreter": f"{dist} {interpreter_version(dist)}", "cpu": str(detect()),
        **({"measured_here": _measured(model.choice.calibration)} if model.choice.calibration else {}),
        "device_order": device_order(model.manifest, args.bundle or REFERENCE_BUNDLE),
        "skipped": model.choice.skipped,
        "verified_in": [f"{v['interpreter']} {v['version']} ({v['machine']})" for v in entry.get("verified_in", [])],
        "vocabulary": model.tokenizer.num_words, "max_len": model.tokenizer.max_len,
        **({"labels": labels} if labels else {}),
        "signature": f"valid, by the trusted key {trusted.key_id}" if trusted else "not checked (no --trust)",
        "bundle_version": _version_line(model.manifest, trusted.key_id if trusted else None),
    }
    out(json.dumps(data, indent=2) if args.json else "\n".join(f"{k:<15}{plain(v)}" for k, v in data.items()))
    return 0


def _version_line(manifest: dict, key_id: str | None) -> str:
    """The bundle's version and, under a trusted key, that of the last bundle run here."""
    from edge_lstm_device.bundle.manifest import bundle_version
    from edge_lstm_device.bundle.rollback import RollbackGuard, VersionStateError, describe

    version = describe(bundle_version(manifest))
    if key_id is None:
        return version
    try:
        last = RollbackGuard.default().state.last_version(key_id)
    except VersionStateError as err:
        return f"{version}; {err}"
    return f"{version}; last run here under key {key_id}: {'none' if last is None else describe(last)}"


def verify(args: argparse.Namespace) -> int:
    from edge_lstm_device.runtime.model import BundleError
    from edge_lstm_device.runtime.verify import table, verify_bundle

    try:
        result = verify_bundle(args.bundle, args.only, args.interpreter, args.threads, resolve_trust(args.trust),
                               limit=args.limit)
    except (BundleError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FATAL
    out(json.dumps(result.to_dict(), indent=2) if args.json else table(result))
    return 0 if result.passed else EXIT_THRESHOLD_FAILED


def calibrate(args: argparse.Namespace) -> int:
    from edge_lstm_device.runtime.calibrate import CalibrationError
    from edge_lstm_device.runtime.model import BundleError, recalibrate

    try:
        model = recalibrate(args.bundle, args.threads, args.interpreter, trust=resolve_trust(args.trust))
    except CalibrationError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_THRESHOLD_FAILED
    except (BundleError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FATAL
    calibration = model.choice.calibration
    out(json.dumps(calibration.to_dict(), indent=2) if args.json else calibration_table(calibration))
    return 0


def calibration_table(calibration: Calibration) -> str:
    from edge_lstm_device.runtime.cpu import CpuFeatures

    lines = [f"{'model':<22}{'time':>7}  verdict"]
    for name, relative in calibration.relative_time.items():
        verdict = "CHOSEN" if name == calibration.chosen else calibration.skipped.get(name, "-")
        lines.append(f"{name:<22}{relative:>6.2f}×  {verdict}")
    env = calibration.environment
    lines += ["time: each model's time ÷ the fastest's, one review at a time, median of interleaved rounds",
              f"CPU: {CpuFeatures(**env['cpu'])}; interpreter: {env['interpreter']}; {calibration.seconds:.2f} s",
              f"{calibration.chosen}: {calibration.reason}"]
    return "\n".join(lines)


def _measured(calibration: Calibration) -> dict:
    """Each model's time here relative to the fastest's, and its verdict where it was verified."""
    return {name: f"{relative:.2f}× the time" + (
        "" if name not in calibration.verdicts else
        ", verify passed" if calibration.verdicts[name]["passed"] else ", verify FAILED")
        for name, relative in calibration.relative_time.items()}
