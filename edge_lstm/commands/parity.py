"""``edge-lstm parity``: prove the exported artifacts agree with the float Keras model."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from edge_lstm.commands.common import BUNDLE_OPTION, JSON_OPTION, echo_json, status
from edge_lstm.tf_setup import quiet_tensorflow

EXIT_THRESHOLD_FAILED = 3


@click.command("parity")
@BUNDLE_OPTION
@click.option("--data", type=click.Path(exists=True, path_type=Path), default=None,
              help="IMDB .tar.gz or folder: use its test split instead of the shipped 300-review sample.")
@click.option("--limit", type=click.IntRange(min=2), default=None, help="A balanced, deterministic subset of N reviews.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the --limit subset.")
@click.option("--only", multiple=True, metavar="ARTIFACT", help="Check only these artifacts (repeatable).")
@click.option("--float-min-agreement", type=click.FloatRange(0, 1), default=1.0, show_default=True,
              help="Labels float artifacts must share with the reference; a review the reference holds within "
                   "2 × --float-max-diff of a tie (p near 0.5, or two classes) counts as agreeing.")
@click.option("--float-max-diff", type=click.FloatRange(0), default=1e-5, show_default=True,
              help="Largest |Δp| allowed for float artifacts.")
@click.option("--int8-min-agreement", type=click.FloatRange(0, 1), default=0.995, show_default=True)
@click.option("--int8-max-accuracy-change", type=click.FloatRange(0, 1), default=0.005, show_default=True,
              help="Largest |Δaccuracy| allowed for int8 artifacts (0.005 = half a point).")
@click.option("--original", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The model file an imported bundle came from (.keras/.h5): judge every artifact, and the "
                   "rebuilt model.h5, against it, loaded by the Keras that wrote it.")
@click.option("--threads", type=click.IntRange(min=1, max=64), default=1, show_default=True)
@click.option("--report/--no-report", default=True, show_default=True,
              help="Write parity_report.md and parity_scores.png (into the bundle, or --report-dir).")
@click.option("--report-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write the report here instead of the bundle (e.g. docs, for the published figures).")
@JSON_OPTION
def parity_command(bundle_dir: Path, data: Path | None, limit: int | None, seed: int, only: tuple[str, ...],
                   float_min_agreement: float, float_max_diff: float, int8_min_agreement: float,
                   int8_max_accuracy_change: float, original: Path | None, threads: int, report: bool,
                   report_dir: Path | None, as_json: bool) -> None:
    """Score the same reviews with the float Keras model (the reference) and every artifact of
    the bundle (TFLite through the device runtime, ONNX through onnxruntime), and judge each:
    accuracy, label agreement, |Δp|, and whether scores depend on review order or batch mates.
    A multi-class bundle (Dense(k, softmax)) is judged on top-label agreement and every class's
    |Δp| (no accuracy: the reviews' labels are positive/negative).

    Exit codes: 0 all thresholds met, 3 a threshold failed, 1 an error, 2 bad usage.

    \b
    Examples:
      edge-lstm parity                                     # shipped sample, ./export
      edge-lstm parity --data aclImdb_v1.tar.gz            # all 25,000 test reviews
      edge-lstm parity --data aclImdb_v1.tar.gz --limit 2000 --json
      edge-lstm parity --data aclImdb_v1.tar.gz --report-dir docs   # the published report
      edge-lstm parity --bundle mybundle --original model.keras     # an imported model
    """
    quiet_tensorflow()
    from edge_lstm_device.bundle.text import ReviewTooLongError
    from edge_lstm_device.runtime.model import BundleError

    from edge_lstm.evaluate.check import ParityRequest, check_parity
    from edge_lstm.evaluate.parity import Thresholds
    from edge_lstm.evaluate.subjects import UnknownArtifactError
    from edge_lstm.importing.modelfile import ModelFileError
    from edge_lstm.train.data import DataError

    thresholds = Thresholds(float_min_agreement, float_max_diff, int8_min_agreement, int8_max_accuracy_change)
    request = ParityRequest(bundle_dir, data, limit, seed, only, thresholds, original, threads)
    try:
        result = check_parity(request, log=status)
    except UnknownArtifactError as err:
        raise click.UsageError(str(err)) from err
    except (BundleError, DataError, ReviewTooLongError, ModelFileError) as err:
        raise click.ClickException(str(err)) from err
    _report(result, (report_dir or bundle_dir) if report else None, as_json)
    if not result.passed:
        sys.exit(EXIT_THRESHOLD_FAILED)


def _report(result: Any, folder: Path | None, as_json: bool) -> None:
    """Write the report files into ``folder`` (None: none) and print the verdict, as JSON or a
    table; a report that cannot be written fails the command after the verdict is printed."""
    from edge_lstm.evaluate import report as report_files

    try:
        written = report_files.write(result, folder) if folder else []
        report_error = None
    except OSError as err:  # the verdict is printed all the same
        written, report_error = [], f"cannot write the report into {folder}: {err.strerror or err}"
    if as_json:
        echo_json({**result.to_dict(), "report_files": [str(p) for p in written]})
    else:
        click.echo(report_files.table(result))
        for path in written:
            click.echo(f"wrote {path}")
    if report_error:
        raise click.ClickException(report_error)
