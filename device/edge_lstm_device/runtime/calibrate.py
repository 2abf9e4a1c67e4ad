"""The device chooses its model where it runs: the bundle's models timed against each other on
this CPU (interleaved rounds), then verified against the bundle's reference scores fastest first;
the first that meets the parity thresholds runs. The choice is cached per environment (bundle,
interpreter and version, CPU features, threads), so it is made once per new environment.

The export's ``device_order`` ranks the models by the export machine's latencies, and kernels
differ by CPU (XNNPACK's int8 product runs on AMX tiles on one x86-64 and as plain AVX2 on
another; a Pi has NEON): only this CPU can say which model is fastest here, and whether its
answers hold here.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from edge_lstm_device.bundle.files import atomic_write_json, bytes_sha256, cache_dir
from edge_lstm_device.bundle.manifest import BundleError, parse_json, read_bounded
from edge_lstm_device.bundle.reference_scores import ReferenceScores
from edge_lstm_device.runtime.cpu import CpuFeatures
from edge_lstm_device.runtime.judge import ModelVerdict, judge_scorer

if TYPE_CHECKING:
    from edge_lstm_device.runtime.model import SentimentModel

SLOWER = "slower here"  # how a model not verified because a faster one passed is named (ModelChoice.fallbacks)

ROUNDS = 5  # timed rounds after one warm-up round
CLEARLY_SLOWER = 3.0  # a model this many times the fastest's time after the warm-up round is not timed further
SWITCH_MARGIN = 0.95  # another model replaces the manifest's first only when it takes at most this share of its time
TIMED_TEXTS = 4  # whole reviews and as many short texts, one at a time, per model and round
MAX_CACHE_BYTES = 1 << 16
CACHE_VERSION = 1


class CalibrationError(BundleError):
    """No model of the bundle meets the parity thresholds on this CPU."""


@dataclass
class Calibration:
    """The model chosen on this CPU, and the measurements behind the choice."""

    chosen: str
    reason: str
    environment: dict
    relative_time: dict[str, float]  # median per-round time ÷ the fastest model's
    verdicts: dict[str, dict] = field(default_factory=dict)  # the models verified: passed, summary, failures
    skipped: dict[str, str] = field(default_factory=dict)  # models not chosen, and why
    seconds: float = 0.0
    cached: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def environment(manifest: dict, interpreter: str, threads: int, cpu: CpuFeatures) -> dict:
    """What a choice holds for: the bundle (its manifest's content), the interpreter, the CPU."""
    from edge_lstm_device import __version__

    fingerprint = bytes_sha256(json.dumps(manifest, sort_keys=True).encode("utf-8"))
    return {"bundle": fingerprint, "interpreter": interpreter, "threads": threads, "cpu": cpu.to_dict(),
            "device_package": __version__}


def _cache_file(env: dict) -> Path:
    return cache_dir() / "calibration" / f"{bytes_sha256(json.dumps(env, sort_keys=True).encode())[:32]}.json"


def cached(env: dict, candidates: Sequence[str]) -> Calibration | None:
    """The choice made before in this very environment, if any (and still a model of the bundle)."""
    try:
        record = parse_json(read_bounded(_cache_file(env), MAX_CACHE_BYTES), "calibration cache")
        calibration = Calibration(**{k: v for k, v in record.items() if k != "version"})
    except (BundleError, TypeError):  # none yet, or unreadable: calibrate again
        return None
    if record.get("version") != CACHE_VERSION or calibration.environment != env or calibration.chosen not in candidates:
        return None
    calibration.cached = True
    return calibration


def remember(calibration: Calibration) -> None:
    try:
        path = _cache_file(calibration.environment)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {"version": CACHE_VERSION, **calibration.to_dict(), "cached": False})
    except OSError:
        pass  # no cache: the next start calibrates again


def relative_times(models: dict[str, SentimentModel], texts: Sequence[str], rounds: int = ROUNDS) -> dict[str, float]:
    """Each model's time for ``texts`` one at a time, as the median over interleaved rounds of its
    time ÷ the fastest model's in the same round (the machine's noise hits every model of a round)."""
    first = next(iter(models.values()))
    rows = [first.tokenizer.pad([first.tokenizer.ids(text)]) for text in texts]
    names = list(models)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_number in range(rounds + 1):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:  # each model goes first in turn
            started = time.perf_counter()
            for row in rows:
                models[name].scorer.score(row)
            times[name].append(time.perf_counter() - started)
        if round_number == 0:  # the warm-up round: drop the clearly slower models, time no further
            fastest = min(t[0] for t in times.values())
            names = [n for n in names if times[n][0] <= CLEARLY_SLOWER * fastest]
            times = {n: [] for n in names} | {n: times[n] for n in times if n not in names}
    anchor = min(names, key=lambda n: float(np.median(times[n])))
    ratios = {n: float(np.median([t / a for t, a in zip(times[n], times[anchor])])) for n in names}
    slow = {n: t[0] / min(times[anchor]) for n, t in times.items() if n not in names}
    return {n: round(r, 3) for n, r in sorted({**ratios, **slow}.items(), key=lambda item: item[1])}


def speed_order(relative: dict[str, float], manifest_first: str) -> list[str]:
    """Fastest first; the manifest's first stays first unless another takes at most
    ``SWITCH_MARGIN`` of its time (a tie within the noise keeps the export's choice)."""
    order = sorted(relative, key=relative.get)
    if manifest_first in relative and relative[order[0]] > SWITCH_MARGIN * relative[manifest_first]:
        order.remove(manifest_first)
        order.insert(0, manifest_first)
    return order


def timed_texts(reference: ReferenceScores) -> list[str]:
    """A few whole reviews and short texts of the reference set: what a device scores."""
    return [text for text_set in reference.sets for text in text_set.texts[:TIMED_TEXTS]]


def _verdict_record(verdict: ModelVerdict) -> dict:
    """What ``verify --json`` says of the model (every set's agreement), and its summary in words."""
    return {**verdict.to_dict(), "summary": verdict.summary()}


def choose(models: dict[str, SentimentModel], manifest_first: str, reference: ReferenceScores, env: dict,
           log: Callable[[str], None] = lambda _: None) -> Calibration:
    """Time ``models`` (in the manifest's order), verify them fastest first, and keep the first
    that passes; ``CalibrationError`` when none does."""
    started = time.perf_counter()
    log(f"calibrating {len(models)} models on this CPU ({CpuFeatures(**env['cpu'])})")
    relative = relative_times(models, timed_texts(reference)) if len(models) > 1 else dict.fromkeys(models, 1.0)
    calibration = Calibration("", "", env, relative)
    for name in speed_order(relative, manifest_first):
        if calibration.chosen:
            calibration.skipped[name] = f"{SLOWER} ({relative[name] / relative[calibration.chosen]:.2f}× the time of {calibration.chosen}); not verified"
            continue
        model = models[name]
        verdict = judge_scorer(model, name, model.manifest["artifacts"][name]["precision"], model.scorer.interpreter_dist,
                               reference)
        calibration.verdicts[name] = _verdict_record(verdict)
        if verdict.passed:
            calibration.chosen = name
        else:
            calibration.skipped[name] = "fails verify on this CPU: " + "; ".join(verdict.failures)
    calibration.seconds = round(time.perf_counter() - started, 3)
    if not calibration.chosen:
        details = "; ".join(f"{n}: {why}" for n, why in calibration.skipped.items())
        raise CalibrationError(f"no model of the bundle meets the parity thresholds on this CPU "
                               f"({CpuFeatures(**env['cpu'])}): {details}")
    calibration.reason = _reason(calibration, manifest_first)
    return calibration


def _reason(calibration: Calibration, manifest_first: str) -> str:
    chosen, relative = calibration.chosen, calibration.relative_time
    faster = "" if chosen == manifest_first or manifest_first not in relative else (
        f"; {relative[manifest_first] / relative[chosen]:.2f}× faster here than {manifest_first}, the export's first")
    return (f"calibrated on this CPU: the fastest model that passes verify here "
            f"(labels agree on {calibration.verdicts[chosen]['summary']}){faster}")
