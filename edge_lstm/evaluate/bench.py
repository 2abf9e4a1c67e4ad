"""Benchmark every backend of a bundle, two ways.

1. Each backend in a fresh process under the same conditions: file size, load time, latency per
   review at batch 1 on one thread (median, p90, p99 after warm-up, on full 200-id rows),
   throughput at a larger batch on one thread and on all cores, peak memory.
2. Side by side (``sidebyside``): every TFLite form and onnxruntime interleaved in one process,
   text in and probability out, on real and on short reviews, one at a time and as a file; the
   project's speed targets are ratios of that run, and the compute floor (``floor``) is stated.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from edge_lstm_device.bundle import manifest as bf
from edge_lstm_device.runtime.cpu import detect
from edge_lstm_device.tools.timing import WARMUP_CALLS, time_calls

from edge_lstm.bundle import MODEL_FILE

KERAS = "keras_float"


@dataclass(frozen=True)
class BenchOptions:
    reviews: int = 200  # timed at batch 1
    warmup: int = WARMUP_CALLS
    batch: int = 64  # throughput batch
    all_threads: int = os.cpu_count() or 1
    rounds: int = 5  # of the side-by-side run (0: skip it)


def lstm_macs(model: dict) -> int:
    """Multiply-adds of the recurrent layer for one review of ``max_len`` ids."""
    from edge_lstm.evaluate.floor import step_macs

    return step_macs(model) * model["max_len"]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _open(bundle_dir: Path, name: str, entry: dict | None, threads: int):
    if name == KERAS:
        from edge_lstm.tf_setup import quiet_tensorflow

        quiet_tensorflow()
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        from edge_lstm.bundle import load_model
        from edge_lstm.evaluate.backends import KerasBackend

        return KerasBackend(load_model(bundle_dir))
    from edge_lstm.evaluate.backends import open_artifact

    return open_artifact(bundle_dir, name, entry, threads, batch_size=1 << 30)


def _throughput(backend, rows: np.ndarray) -> float:
    backend.score(rows)  # warm-up at this batch size
    start = time.perf_counter()
    backend.score(rows)
    return len(rows) / (time.perf_counter() - start)


def measure(bundle_dir: Path, name: str, entry: dict | None, rows: np.ndarray, opts: BenchOptions) -> dict:
    """All figures for one backend; meant to run in a fresh process."""
    base = _rss_mb()
    start = time.perf_counter()
    backend = _open(bundle_dir, name, entry, threads=1)
    load_s = time.perf_counter() - start
    latency = time_calls(lambda i: backend.score(rows[i % len(rows)][None, :]), opts.reviews, opts.warmup)
    batch = rows[: opts.batch]
    tput_1 = _throughput(backend, batch)
    threaded = _open(bundle_dir, name, entry, threads=opts.all_threads) if name != KERAS else None
    tput_all = _throughput(threaded, batch) if threaded else None
    return {"backend": name, "bytes": entry["bytes"] if entry else (bundle_dir / MODEL_FILE).stat().st_size,
            "load_s": round(load_s, 3), "latency_ms": latency.to_dict(),
            "throughput_1_thread": round(tput_1, 1), "throughput_all_threads": None if tput_all is None else round(tput_all, 1),
            "peak_rss_mb": round(_rss_mb(), 1), "rss_growth_mb": round(_rss_mb() - base, 1)}


def run_isolated(bundle_dir: Path, name: str, entry: dict | None, rows: np.ndarray, opts: BenchOptions) -> dict:
    """``measure`` in a freshly spawned process, so memory and caches start equal."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(measure, (bundle_dir, name, entry, rows, opts))


def add_ratios(results: list[dict], macs: int) -> None:
    """Ratios against float TFLite, and the multiply-add rate each latency implies."""
    ref = next((r for r in results if r["backend"] == bf.FLOAT_TFLITE), None)
    for r in results:
        r["gmacs_per_s"] = round(macs / (r["latency_ms"]["median"] / 1000) / 1e9, 2)
        if ref:
            r["latency_vs_float_tflite"] = round(r["latency_ms"]["median"] / ref["latency_ms"]["median"], 2)
            r["size_vs_float_tflite"] = round(r["bytes"] / ref["bytes"], 3)


def markdown(results: list[dict], macs: int, opts: BenchOptions) -> str:
    head = ("| backend | size KiB | load s | p50 ms | p90 ms | p99 ms | rev/s 1 thr | rev/s "
            f"{opts.all_threads} thr | peak RSS MB | × float TFLite latency | GMAC/s |")
    lines = [head, "|" + "---|" * 11]
    for r in results:
        lat = r["latency_ms"]
        lines.append(
            f"| {r['backend']} | {r['bytes'] / 1024:.0f} | {r['load_s']:.2f} | {lat['median']:.2f} | {lat['p90']:.2f} | "
            f"{lat['p99']:.2f} | {r['throughput_1_thread']:.0f} | {r['throughput_all_threads'] or '-'} | "
            f"{r['peak_rss_mb']:.0f} | {r.get('latency_vs_float_tflite', '-')} | {r['gmacs_per_s']} |")
    lines.append(f"\nLatency: batch 1, one thread, {opts.reviews} reviews after {opts.warmup} warm-up. "
                 f"Throughput: batch {opts.batch}. One review = {macs / 1e6:.1f} M multiply-adds in the LSTM. "
                 "Each backend runs in a fresh process; peak RSS includes the Python runtime and its libraries.")
    return "\n".join(lines)


TARGETS = (  # (backend, reference, largest latency ratio)
    (bf.INT8_LOOP_TFLITE, bf.FLOAT_TFLITE, 0.35),
    (bf.INT8_LOOP_TFLITE, bf.INT8_ONNX, 1.2),
    (bf.INT8_LOOP_TFLITE, bf.INT8_ONNX, 1.0),  # stretch: faster than int8 ONNX
    (bf.INT8_DYNAMIC_TFLITE, bf.FLOAT_TFLITE, 1.0),
    (bf.INT8_TFLITE, bf.FLOAT_TFLITE, 1.0),
    (bf.INT8_ONNX, bf.FLOAT_ONNX, 0.5),
)


def targets(results: list[dict]) -> list[dict]:
    """The project's speed targets at batch 1, one thread (``TARGETS``)."""
    by_name = {r["backend"]: r["latency_ms"]["median"] for r in results}
    checks = []
    for quantized, reference, limit in TARGETS:
        if quantized in by_name and reference in by_name:
            ratio = by_name[quantized] / by_name[reference]
            checks.append({"target": f"{quantized} latency <= {limit:g} x {reference}", "ratio": round(ratio, 2),
                           "met": ratio <= limit})
    return checks


def run_all(bundle_dir: Path, opts: BenchOptions, only: tuple[str, ...] = (), keras: bool = True,
            log: Callable[[str], None] = print) -> dict:
    """Every backend of a bundle (and the Keras baseline), each in a fresh process, on the
    shipped sample reviews: the results, the targets, and the markdown table."""
    from edge_lstm_device.bundle.manifest import read_manifest

    from edge_lstm.bundle import load_tokenizer
    from edge_lstm.evaluate.subjects import check_names
    from edge_lstm.samples import TEST_SAMPLE, read_sample

    manifest = read_manifest(bundle_dir)
    rows = load_tokenizer(bundle_dir).encode_batch(read_sample(TEST_SAMPLE).texts)
    names = ([KERAS] if keras else []) + list(manifest["artifacts"])
    check_names(only, names)
    results = []
    for name in [n for n in names if not only or n in only]:
        log(f"benchmarking {name}")
        results.append(run_isolated(bundle_dir, name, manifest["artifacts"].get(name), rows, opts))
    macs = lstm_macs(manifest["model"])
    add_ratios(results, macs)
    checks = targets(results)
    cpu = detect()  # the features that make XNNPACK and onnxruntime pick their kernels: the figures hold for these
    table = (f"CPU: {cpu} ({os.cpu_count()} cores); the kernels, and so the ratios, differ on other CPUs.\n\n"
             "## Each backend in a fresh process (full 200-id rows)\n\n" + markdown(results, macs, opts)
             + _target_lines(checks))
    run = {"cpu": cpu.to_dict(), "lstm_macs_per_review": macs, "backends": results, "targets": checks}
    if opts.rounds:
        side = side_by_side(bundle_dir, manifest["model"], opts, log)
        table += "\n\n" + side.pop("table")
        run["side_by_side"] = side
    return {**run, "table": table}


def _target_lines(checks: list[dict]) -> str:
    return "".join(f"\n- target {c['target']}: {'met' if c['met'] else 'MISSED'} (ratio {c['ratio']})" for c in checks)


def side_by_side(bundle_dir: Path, model: dict, opts: BenchOptions, log: Callable[[str], None]) -> dict:
    """The interleaved run of ``sidebyside``, its targets and the compute floor of the default model."""
    from edge_lstm.bundle import load_tokenizer
    from edge_lstm.evaluate import floor, sidebyside
    from edge_lstm.samples import TEST_SAMPLE, read_sample
    from edge_lstm.tf_setup import quiet_tensorflow

    quiet_tensorflow()
    tokenizer, texts = load_tokenizer(bundle_dir), read_sample(TEST_SAMPLE).texts
    side_opts = sidebyside.SideBySideOptions(rounds=opts.rounds, file_batch=opts.batch, workers=opts.all_threads)
    rows = sidebyside.ratios(sidebyside.run(bundle_dir, tokenizer, texts, side_opts, log))
    counts = sidebyside.id_counts(tokenizer, texts, side_opts)
    checks = sidebyside.targets(rows)
    peak = floor.int8_peak_macs_per_s()
    default = next((r for r in rows if r["backend"] == bf.INT8_LOOP_TFLITE), None)
    floors = {"int8_peak_gmacs": round(peak / 1e9, 1), "imdb_floor_us": round(floor.floor_us(model, counts["imdb_ids"], peak), 1),
              "short_floor_us": round(floor.floor_us(model, counts["short_ids"], peak), 1)}
    lines = [f"\n\nCompute floor: one step is {floor.step_macs(model) / 1e3:.0f} k multiply-adds (input projection and "
             f"recurrent product); this CPU's int8 rate in the same interpreter (a {'x'.join(map(str, floor.PEAK_SHAPE))} "
             f"dynamic-range product, one thread) is {floors['int8_peak_gmacs']:.0f} G/s, so an IMDB review "
             f"({counts['imdb_ids']:.0f} ids) needs at least {floors['imdb_floor_us']:.0f} µs and a short one "
             f"({counts['short_ids']:.0f} ids) {floors['short_floor_us']:.1f} µs."]
    if default:
        file_us = 1e6 / default["file_1"]
        floors.update(one_at_a_time_x_floor=round(default["imdb_us"] / floors["imdb_floor_us"], 1),
                      file_x_floor=round(file_us / floors["imdb_floor_us"], 1))
        lines.append(f" {bf.INT8_LOOP_TFLITE}: {floors['one_at_a_time_x_floor']}× the floor one review at a time, "
                     f"{floors['file_x_floor']}× in a file, 1 worker (stretch target: 3×).")
    table = ("## Side by side, interleaved: text in, probability out\n\n" + sidebyside.markdown(rows, side_opts, counts)
             + "".join(lines) + _target_lines(checks))
    return {"backends": rows, "reviews": counts, "floor": floors, "targets": checks, "table": table}
