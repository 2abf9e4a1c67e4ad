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
@click.option("--rounds", type=click.IntRange(min=0), default=5, show_default=True,
              help="Rounds of the side-by-side run (every TFLite form and onnxruntime interleaved); 0 skips it.")
@click.option("--only", multiple=True, metavar="BACKEND", help="Benchmark only these (repeatable); keras_float is the baseline.")
@click.option("--no-keras", is_flag=True, help="Skip the float Keras baseline (it loads TensorFlow).")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the markdown table to this file.")
@JSON_OPTION
def bench_command(bundle_dir: Path, reviews: int, batch: int, rounds: int, only: tuple[str, ...], no_keras: bool,
                  out_file: Path | None, as_json: bool) -> None:
    """Measure every backend of a bundle, on the shipped sample reviews, two ways.

    Each in a fresh process: file size, load time, latency per review (batch 1, one thread:
    median, p90, p99 after warm-up), throughput at --batch on one thread and on all cores, peak
    memory, and ratios against float TFLite.

    Then side by side, interleaved in one process (--rounds): every TFLite form and onnxruntime
    at batch 1 and at --batch, text in and probability out: microseconds per review one at a
    time on real and on short reviews, reviews/s of a file with 1 worker and with one per core,
    as medians of per-round ratios; the speed targets, and the compute floor of the default model.

    \b
    Examples:
      edge-lstm bench --out docs/bench.md   # ./export: the published report
      edge-lstm bench --rounds 0 --only int8_tflite --only float_tflite --json
    """
    from edge_lstm_device.bundle.files import atomic_write_bytes
    from edge_lstm_device.bundle.manifest import BundleError

    from edge_lstm.evaluate import bench
    from edge_lstm.evaluate.subjects import UnknownArtifactError

    opts = bench.BenchOptions(reviews=reviews, batch=batch, rounds=rounds)
    try:
        run = bench.run_all(bundle_dir, opts, only, keras=not no_keras, log=status)
    except UnknownArtifactError as err:
        raise click.UsageError(str(err)) from err
    except BundleError as err:  # the host's bundle errors are the device's
        raise click.ClickException(str(err)) from err
    table = run["table"]
    if out_file:
        atomic_write_bytes(out_file, (table + "\n").encode("utf-8"))
    if as_json:
        echo_json({"options": asdict(opts), **{k: v for k, v in run.items() if k != "table"}})
    else:
        click.echo(table)
