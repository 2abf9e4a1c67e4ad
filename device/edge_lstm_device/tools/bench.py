"""``edge-lstm-device bench``: rank the bundle's models on this CPU and interpreter.

Per model: start-up to first prediction and peak memory (fresh processes running
``python -m edge_lstm_device predict``), latency per review in this process after a warm-up, for
a short review (one sentence) and a long one (a full window of ids): the loop form runs only the
real ids' steps, the fused forms always run ``max_len``. Then reviews/s of the default model on
reviews of mixed length, in batches, with one and with N parallel interpreters. The export ranked the
models on its own machine; an ARM CPU may rank them differently, so the table ends with the
command that makes the fastest model here the default.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

from edge_lstm_device.bundle.manifest import NUMPY_WEIGHTS, model_entry
from edge_lstm_device.bundle.signing import read_trusted_manifest, resolve_trust
from edge_lstm_device.runtime.cpu import CpuFeatures, detect
from edge_lstm_device.runtime.interpreters import interpreter_class, interpreter_version
from edge_lstm_device.runtime.model import MODEL_ENV, REFERENCE_BUNDLE, BundleError, SentimentModel, device_order
from edge_lstm_device.runtime.numpy_engine import engine as numpy_engine
from edge_lstm_device.runtime.pool import ModelPool, default_workers
from edge_lstm_device.tools.timing import time_calls

STARTUP_BUDGET_S = 0.35
MEMORY_BUDGET_MB = 50.0
RUNS = 5
THROUGHPUT_REVIEWS = 400
TEXT = "What a wonderful film, the cast was great and the story moved me."
LONG_TEXT = " ".join([TEXT] * 16)  # 208 words: the 200-id window is full


def startup_and_memory(args: argparse.Namespace, model: str) -> tuple[float, float]:
    """Median seconds from process start to the first printed prediction, and peak RSS in MB."""
    cmd = [sys.executable, "-m", "edge_lstm_device", "predict", "--model", model, "--threads", "1", "--workers", "1", TEXT]
    if args.bundle:
        cmd[4:4] = ["--bundle", str(args.bundle)]
    if args.interpreter:
        cmd[4:4] = ["--interpreter", args.interpreter]
    if args.trust:
        cmd[4:4] = ["--trust", str(args.trust)]
    times, peaks = [], []
    for _ in range(RUNS):
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        first = proc.stdout.readline() if proc.stdout else b""
        times.append(time.perf_counter() - start)
        if proc.stdout:
            proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0 or not first:
            raise BenchError(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
        peaks.append(usage.ru_maxrss / 1024)  # KiB on Linux
    return statistics.median(times), max(peaks)


def latency_ms(args: argparse.Namespace, model: str) -> dict:
    """Milliseconds per review (text in, prediction out) for the short and the long review."""
    loaded = SentimentModel.load(args.bundle, model, 1, args.interpreter, trust=args.trusted)
    return {kind: time_calls(lambda _: loaded.predict(text), args.reviews).to_dict()
            for kind, text in (("short", TEXT), ("long", LONG_TEXT))}


def throughput(pool: ModelPool) -> float:
    """Reviews per second through ``predict_batch`` (tokenizing included) with the pool's workers,
    on reviews of 14 to 225 words."""
    texts = [" ".join([TEXT] * (1 + i % 16)) + f" Review number {i}." for i in range(THROUGHPUT_REVIEWS)]
    pool.predict_batch(texts[: 4 * pool.workers])  # warm-up
    start = time.perf_counter()
    pool.predict_batch(texts)
    return len(texts) / (time.perf_counter() - start)


def scaling(args: argparse.Namespace) -> dict:
    """Reviews/s of the default model (the one ``predict`` would run) with 1 and N workers."""
    with ModelPool.load(args.bundle, args.model, args.workers or default_workers(), 1, args.interpreter,
                        trust=args.trusted) as pool:
        with ModelPool([pool.first]) as alone:
            one = throughput(alone)
        many = throughput(pool)
        return {"model": pool.first.name, "workers": pool.workers, "max_batch": pool.first.scorer.max_batch,
                "reviews_per_s_1": round(one, 1),
                "reviews_per_s_n": round(many, 1), "speedup": round(many / one, 2)}


def measure(args: argparse.Namespace, manifest: dict, name: str) -> dict:
    """Every figure for one model; a model the interpreter refuses is reported, not fatal."""
    try:
        latency = latency_ms(args, name)
    except BundleError as err:
        return {"model": name, "bytes": model_entry(manifest, name)["bytes"], "error": str(err)}
    startup, peak = startup_and_memory(args, name)
    return {"model": name, "bytes": model_entry(manifest, name)["bytes"],
            "startup_s": round(startup, 3), "peak_rss_mb": round(peak, 1), "latency_ms": latency,
            "startup_ok": startup <= STARTUP_BUDGET_S, "memory_ok": peak <= MEMORY_BUDGET_MB}


class BenchError(RuntimeError):
    """A measurement could not be made (e.g. the predict process failed)."""


def run_bench(args: argparse.Namespace) -> tuple[dict, str, int]:
    """The report, its table, and the exit code (3 when a budget is missed)."""
    bundle = args.bundle or REFERENCE_BUNDLE
    args = argparse.Namespace(**vars(args), trusted=resolve_trust(args.trust))  # the key file read once
    manifest = read_trusted_manifest(bundle, args.trusted)
    numpy = numpy_engine.chosen(args.interpreter, args.model)
    models = [NUMPY_WEIGHTS] if numpy else [args.model] if args.model else device_order(manifest, bundle)
    rows = sorted((measure(args, manifest, name) for name in models),
                  key=lambda r: r["latency_ms"]["long"]["median"] if "latency_ms" in r else float("inf"))
    timed = [r for r in rows if "latency_ms" in r]
    workers = scaling(args)
    default = workers["model"]
    report = {"threads": 1, "budgets": {"startup_s": STARTUP_BUDGET_S, "peak_rss_mb": MEMORY_BUDGET_MB},
              "python": sys.version.split()[0], "machine": platform.machine(), "cpu": detect().to_dict(),
              "interpreter": numpy_engine.version() if numpy else _interpreter(args),
              "models": rows, "default": default, "fastest_here": timed[0]["model"] if timed else None,
              "workers": workers}
    code = 0 if timed and all(r["startup_ok"] and r["memory_ok"] for r in timed) else 3
    return report, _table(report), code


def _interpreter(args: argparse.Namespace) -> str:
    _, dist = interpreter_class(args.interpreter)
    return f"{dist} {interpreter_version(dist)}"


def _table(report: dict) -> str:
    cpu = CpuFeatures(**report["cpu"])
    lines = [f"{report['interpreter']} on {cpu}, Python {report['python']}, one thread per interpreter",
             f"{'rank':<5}{'model':<22}{'KiB':>7}{'start s':>9}{'RSS MB':>8}{'short p50 ms':>14}{'long p50 ms':>13}"
             f"{'long p99 ms':>13}  budgets"]
    for rank, r in enumerate(report["models"], start=1):
        if "error" in r:
            lines.append(f"{'-':<5}{r['model']:<22}{r['bytes'] / 1024:>7.0f}  cannot load here: {r['error'][:80]}")
            continue
        short, long = r["latency_ms"]["short"], r["latency_ms"]["long"]
        verdict = "ok" if r["startup_ok"] and r["memory_ok"] else "MISSED"
        lines.append(f"{rank:<5}{r['model']:<22}{r['bytes'] / 1024:>7.0f}{r['startup_s']:>9.3f}{r['peak_rss_mb']:>8.1f}"
                     f"{short['median']:>14.3f}{long['median']:>13.3f}{long['p99']:>13.3f}  {verdict}")
    w = report["workers"]
    lines += [f"latency: one review at a time, text in, prediction out; short: {len(TEXT.split())} words, long: "
              f"{len(LONG_TEXT.split())} words",
              f"budgets: start-up to first prediction <= {STARTUP_BUDGET_S} s, peak RSS <= {MEMORY_BUDGET_MB} MB",
              f"{w['model']}: {w['reviews_per_s_1']:.0f} reviews/s with 1 worker, {w['reviews_per_s_n']:.0f} with "
              f"{w['workers']} ({w['speedup']:.2f}x), reviews of 14 to 225 words in batches of up to {w['max_batch']}"]
    fastest = report["fastest_here"]
    if fastest and fastest != report["default"]:
        lines.append(f"fastest here: {fastest}, the default is {report['default']}; to make it the default: "
                     f"export {MODEL_ENV}={fastest}   (or Environment={MODEL_ENV}={fastest} in a systemd unit)")
    elif fastest:
        lines.append(f"fastest here: {fastest}, already the default")
    return "\n".join(lines)
