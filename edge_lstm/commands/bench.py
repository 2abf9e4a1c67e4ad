"""``edge-lstm bench``: size, load time, latency, throughput and memory of every backend."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from edge_lstm.commands.common import BUNDLE_OPTION, JSON_OPTION, echo_json, status


@click.command("bench")
@BUNDLE_OPTION
@click.option("--reviews", type=click.IntRange(min=10), default=200, show_default=True,
              help="Reviews timed one by one (batch 1, one thread) per backend.")
@click.option("--batch", type=click.IntRange(min=1), default=64, show_default=True, help="Batch for throughput.")
@click.option("--only", multiple=True, metavar="BACKEND", help="Benchmark only these (repeatable); keras_float is the baseline.")
@click.option("--no-keras", is_flag=True, help="Skip the float Keras baseline (it loads TensorFlow).")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the markdown table to this file.")
@JSON_OPTION
def bench_command(bundle_dir: Path, reviews: int, batch: int, only: tuple[str, ...], no_keras: bool,
                  out_file: Path | None, as_json: bool) -> None:
    """Measure every backend of a bundle side by side, each in a fresh process on the shipped
    sample reviews: file size, load time, latency per review (batch 1, one thread: median, p90,
    p99 after warm-up), throughput at --batch on one thread and on all cores, peak memory, and
    ratios against float TFLite.

    \b
    Examples:
      edge-lstm bench                       # ./export, all backends + the Keras baseline
      edge-lstm bench --only int8_tflite --only float_tflite --json
    """
    from edge_lstm import bench
    from edge_lstm.bundle import load_tokenizer
    from edge_lstm.samples import TEST_SAMPLE, read_sample
    from edge_lstm_device.files import atomic_write_bytes
    from edge_lstm_device.model import BundleError, read_manifest

    try:
        manifest = read_manifest(bundle_dir)
        rows = load_tokenizer(bundle_dir).encode_batch(read_sample(TEST_SAMPLE).texts)
    except BundleError as err:  # the host's bundle errors are a kind of the device's
        raise click.ClickException(str(err)) from err
    names = ([] if no_keras else [bench.KERAS]) + list(manifest["artifacts"])
    unknown = set(only) - set(names)
    if unknown:
        raise click.UsageError(f"unknown backend {', '.join(sorted(unknown))} (have: {', '.join(names)})")
    opts = bench.BenchOptions(reviews=reviews, batch=batch)
    results = []
    for name in [n for n in names if not only or n in only]:
        status(f"benchmarking {name}")
        results.append(bench.run_isolated(bundle_dir, name, manifest["artifacts"].get(name), rows, opts))
    macs = bench.lstm_macs(manifest["model"])
    bench.add_ratios(results, macs)
    checks = bench.targets(results)
    table = bench.markdown(results, macs, opts)
    table += "".join(f"\n- target {c['target']}: {'met' if c['met'] else 'MISSED'} (ratio {c['ratio']})" for c in checks)
    if out_file:
        atomic_write_bytes(out_file, (table + "\n").encode("utf-8"))
    if as_json:
        echo_json({"options": asdict(opts), "lstm_macs_per_review": macs,
                   "backends": results, "targets": checks})
    else:
        click.echo(table)
