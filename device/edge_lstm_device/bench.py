"""``edge-lstm-device bench``: start-up to first prediction, peak memory, per-review latency.

Start-up and memory are measured on fresh processes (``python -m edge_lstm_device predict``),
latency in this process after a warm-up. The LSTM always reads ``max_len`` steps, so latency does
not depend on the review's text.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from edge_lstm_device.model import REFERENCE_BUNDLE, SentimentModel, read_manifest, tflite_models

STARTUP_BUDGET_S = 0.35
MEMORY_BUDGET_MB = 50.0
RUNS = 5
TEXT = "What a wonderful film, the cast was great and the story moved me."


def startup_and_memory(args: argparse.Namespace, model: str) -> tuple[float, float]:
    """Median seconds from process start to the first printed prediction, and peak RSS in MB."""
    cmd = [sys.executable, "-m", "edge_lstm_device", "predict", "--model", model, "--threads", "1", TEXT]
    if args.bundle:
        cmd[4:4] = ["--bundle", str(args.bundle)]
    if args.interpreter:
        cmd[4:4] = ["--interpreter", args.interpreter]
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
            raise RuntimeError(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
        peaks.append(usage.ru_maxrss / 1024)  # KiB on Linux
    return statistics.median(times), max(peaks)


def latency_ms(args: argparse.Namespace, model: str) -> dict:
    loaded = SentimentModel.load(args.bundle, model, 1, args.interpreter)
    rows = loaded.tokenizer.encode_batch([TEXT])
    for _ in range(10):
        loaded.scorer.score(rows)
    samples = []
    for _ in range(args.reviews):
        start = time.perf_counter()
        loaded.scorer.score(rows)
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]  # noqa: E731
    return {"median": round(statistics.median(samples), 3), "p90": round(pick(0.9), 3), "p99": round(pick(0.99), 3)}


def run_bench(args: argparse.Namespace) -> int:
    bundle = args.bundle or REFERENCE_BUNDLE
    manifest = read_manifest(bundle)
    models = [args.model] if args.model else tflite_models(manifest, bundle)
    rows = []
    for name in models:
        startup, peak = startup_and_memory(args, name)
        rows.append({"model": name, "bytes": manifest["artifacts"][name]["bytes"],
                     "startup_s": round(startup, 3), "peak_rss_mb": round(peak, 1),
                     "latency_ms": latency_ms(args, name),
                     "startup_ok": startup <= STARTUP_BUDGET_S, "memory_ok": peak <= MEMORY_BUDGET_MB})
    report = {"threads": 1, "budgets": {"startup_s": STARTUP_BUDGET_S, "peak_rss_mb": MEMORY_BUDGET_MB},
              "python": sys.version.split()[0], "models": rows}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{'model':<22}{'KiB':>7}{'start s':>9}{'RSS MB':>8}{'p50 ms':>8}{'p90 ms':>8}{'p99 ms':>8}  budgets")
        for r in rows:
            lat = r["latency_ms"]
            verdict = "ok" if r["startup_ok"] and r["memory_ok"] else "MISSED"
            print(f"{r['model']:<22}{r['bytes'] / 1024:>7.0f}{r['startup_s']:>9.3f}{r['peak_rss_mb']:>8.1f}"
                  f"{lat['median']:>8.2f}{lat['p90']:>8.2f}{lat['p99']:>8.2f}  {verdict}")
        print(f"budgets: start-up to first prediction <= {STARTUP_BUDGET_S} s, peak RSS <= {MEMORY_BUDGET_MB} MB (one thread)")
    return 0 if all(r["startup_ok"] and r["memory_ok"] for r in rows) else 3
