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
    from edge_lstm.evaluate import bench
    from edge_lstm.evaluate.subjects import UnknownArtifactError
    from edge_lstm_device.bundle import BundleError
    from edge_lstm_device.files import atomic_write_bytes

    opts = bench.BenchOptions(reviews=reviews, batch=batch)
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
