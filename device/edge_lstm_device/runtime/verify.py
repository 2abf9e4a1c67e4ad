"""``verify``: the bundle's models on this CPU against the float model's reference scores, with
the thresholds of the host's ``edge-lstm parity`` (numpy and the interpreter only).

Every TFLite model the interpreter loads is scored text in, probability out, on each set of the
bundle's reference scores (whole reviews, short texts); other scorers of the bundle's files can
be added (the host's ``edge_lstm.evaluate.onnx_verify`` adds its ONNX files with onnxruntime). A
model passes when every set meets the thresholds of its precision.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from edge_lstm_device.bundle.manifest import NUMPY_WEIGHTS, BundleError, model_entry, tflite_models
from edge_lstm_device.bundle.reference_scores import ReferenceScores, read_reference_scores
from edge_lstm_device.runtime.agreement import Thresholds
from edge_lstm_device.runtime.cpu import CpuFeatures, detect
from edge_lstm_device.runtime.interpreters import interpreter_version
from edge_lstm_device.runtime.judge import ModelVerdict, TextScorer, judge_scorer
from edge_lstm_device.runtime.numpy_engine import engine as numpy_engine


@dataclass
class Verification:
    bundle: str
    cpu: CpuFeatures
    reference: ReferenceScores
    thresholds: Thresholds
    verdicts: list[ModelVerdict]
    refused: dict[str, str]  # models this interpreter does not load, and why

    @property
    def passed(self) -> bool:
        return bool(self.verdicts) and all(v.passed for v in self.verdicts)

    def to_dict(self) -> dict:
        return {"passed": self.passed, "bundle": self.bundle, "cpu": self.cpu.to_dict(),
                "reference": self.reference.reference,
                "sets": {s.name: s.description for s in self.reference.sets},
                "thresholds": vars(self.thresholds), "models": [v.to_dict() for v in self.verdicts],
                "refused": self.refused}


def verify_bundle(bundle_dir: Path | None = None, models: Sequence[str] = (), interpreter: str | None = None,
                  threads: int = 1, trust: object = None, thresholds: Thresholds = Thresholds(),
                  extra: dict[str, tuple[TextScorer, str]] | None = None, limit: int | None = None) -> Verification:
    """Judge each TFLite model of the bundle this interpreter loads (``models``: only these) on
    this CPU; ``extra``: more of its artifacts, as ``{name: (scorer, what it runs in)}``;
    ``limit``: only the first texts of each reference set."""
    from edge_lstm_device.bundle.signing import read_trusted_manifest
    from edge_lstm_device.runtime.model import REFERENCE_BUNDLE, ModelLoadError, SentimentModel

    bundle_dir = Path(bundle_dir) if bundle_dir else REFERENCE_BUNDLE
    manifest = read_trusted_manifest(bundle_dir, trust)
    reference = read_reference_scores(bundle_dir, manifest).first(limit)
    unknown = set(models) - set(manifest["artifacts"])
    if unknown:
        raise BundleError(f"no model {', '.join(sorted(unknown))} in {bundle_dir} "
                          f"(have: {', '.join(manifest['artifacts'])})")
    present = _runnable(manifest, bundle_dir, interpreter, models)
    if models and not present and not extra:
        raise BundleError(f"{', '.join(models)}: not a file this device can run in {bundle_dir}")
    verdicts, refused = [], {}
    for name in [*present, *(n for n in (extra or {}) if n not in present and (not models or n in models))]:
        if name in (extra or {}):
            scorer, runs_in = extra[name]
        else:
            try:
                scorer = SentimentModel.load(bundle_dir, name, threads, interpreter, trust=trust, calibrate=False)
            except ModelLoadError as err:
                refused[name] = str(err)
                continue
            runs_in = _runs_in(scorer)
        verdicts.append(judge_scorer(scorer, name, model_entry(manifest, name)["precision"], runs_in, reference,
                                     thresholds))
    return Verification(str(bundle_dir), detect(), reference, thresholds, verdicts, refused)


def table(result: Verification) -> str:
    """The parity table: one row per model and set, then the verdict."""
    header = ("model", "runs in", "set", "texts", "labels agree", "max |Δp|", "mean |Δp|", "Δacc (pts)", "verdict")
    rows = [header]
    for v in result.verdicts:
        for name, a in v.sets.items():
            change = "-" if a.accuracy_change is None else f"{a.accuracy_change * 100:+.2f}"
            missed = [f for f in v.failures if f.startswith(f"{name}: ")]
            rows.append((v.name, v.runs_in, name, str(a.texts), f"{a.label_agreement:.2%}", f"{a.max_abs_diff:.2g}",
                         f"{a.mean_abs_diff:.2g}", change, "FAIL" if missed else "pass"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    t = result.thresholds
    lines += [f"{name}: not loaded here: {why}" for name, why in result.refused.items()]
    lines += [f"{v.name}: {why}" for v in result.verdicts for why in v.failures]
    lines.append(f"CPU: {result.cpu}")
    lines.append(f"thresholds: int8 labels agree ≥ {t.int8_min_agreement:.2%}, |Δacc| ≤ "
                 f"{t.int8_max_accuracy_change * 100:.2f} points; float max |Δp| ≤ {t.float_max_abs_diff:g}")
    verdict = "every model meets the thresholds on this CPU" if result.passed else "a threshold failed on this CPU"
    lines.append(f"reference: {result.reference.reference}; {verdict}")
    return "\n".join(lines)


def _runnable(manifest: dict, bundle_dir: Path, interpreter: str | None, models: Sequence[str]) -> list[str]:
    """The bundle's models this device runs (``models``: only these): its TFLite files where an
    interpreter is installed, and the numpy engine's weights where the bundle has them."""
    tflite = [] if numpy_engine.chosen(interpreter) else tflite_models(manifest, bundle_dir)
    names = [*tflite, *([NUMPY_WEIGHTS] if NUMPY_WEIGHTS in manifest else [])]
    return [n for n in names if not models or n in models]


def _runs_in(model: object) -> str:
    """The interpreter (or numpy) that runs a loaded model, and its version."""
    scorer = model.scorer
    if getattr(scorer, "interpreter_dist", None) == numpy_engine.ENGINE:
        return numpy_engine.version()
    return f"{scorer.interpreter_dist} {interpreter_version(scorer.interpreter_dist)}"
