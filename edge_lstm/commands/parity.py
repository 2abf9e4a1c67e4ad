"""``edge-lstm parity``: prove the exported artifacts agree with the float Keras model."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from edge_lstm.commands.common import BUNDLE_OPTION, JSON_OPTION, echo_json, status
from edge_lstm.tf_setup import quiet_tensorflow

EXIT_THRESHOLD_FAILED = 3


def _load(bundle_dir: Path, only: tuple[str, ...], threads: int) -> tuple:
    """Tokenizer, Keras model and (backend, precision, dynamic) for each artifact of the manifest."""
    from edge_lstm import bundle
    from edge_lstm.backends import open_artifact
    from edge_lstm_device.files import file_sha256
    from edge_lstm_device.model import read_manifest

    manifest = read_manifest(bundle_dir)
    if not (bundle_dir / bundle.MODEL_FILE).is_file():
        raise bundle.BundleError(f"no {bundle.MODEL_FILE} in {bundle_dir}: parity needs the float model it was exported from")
    if file_sha256(bundle_dir / bundle.MODEL_FILE) != manifest["source_model"]["sha256"]:
        raise bundle.BundleError(f"{bundle_dir}/{bundle.MODEL_FILE} changed since export: run 'edge-lstm export' again")
    unknown = set(only) - set(manifest["artifacts"])
    if unknown:
        raise click.UsageError(f"no artifact {', '.join(sorted(unknown))} (have: {', '.join(manifest['artifacts'])})")
    backends = [
        (open_artifact(bundle_dir, name, entry, threads), entry["precision"], entry["quantization"] == "dynamic")
        for name, entry in manifest["artifacts"].items() if not only or name in only
    ]
    return bundle.load_tokenizer(bundle_dir), bundle.load_model(bundle_dir), backends


def _original_model(path: Path, rebuilt) -> object:
    """The original model file of an imported bundle, checked as data first, then loaded by its Keras."""
    from edge_lstm.modelfile import ModelFileError, load_with_its_keras, read_model_file

    try:
        spec = read_model_file(path).spec
        if (spec.num_words, spec.embedding_dim, spec.units) != (rebuilt.layers[0].input_dim,
                                                                 rebuilt.layers[0].output_dim, rebuilt.layers[1].units):
            raise click.ClickException(f"{path} is not the model this bundle was imported from (other sizes)")
        model, loader = load_with_its_keras(path, spec)
    except ModelFileError as err:
        raise click.ClickException(str(err)) from err
    status(f"reference: {path.name} ({loader})")
    return model


def _reviews(data: Path | None, limit: int | None, seed: int):
    from edge_lstm.data import load_imdb, resolve_source
    from edge_lstm.samples import TEST_SAMPLE, read_sample

    if data is None:
        reviews = read_sample(TEST_SAMPLE)
        return reviews.balanced(limit, seed), f"the shipped sample ({len(reviews)} IMDB test reviews)"
    test = load_imdb(resolve_source(data, download=False), ("test",))["test"]
    subset = test.balanced(limit, seed)
    return subset, f"{data} test split" + (f" (balanced subset, seed {seed})" if len(subset) < len(test) else "")


@click.command("parity")
@BUNDLE_OPTION
@click.option("--data", type=click.Path(exists=True, path_type=Path), default=None,
              help="IMDB .tar.gz or folder: use its test split instead of the shipped 300-review sample.")
@click.option("--limit", type=click.IntRange(min=2), default=None, help="A balanced, deterministic subset of N reviews.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the --limit subset.")
@click.option("--only", multiple=True, metavar="ARTIFACT", help="Check only these artifacts (repeatable).")
@click.option("--float-min-agreement", type=click.FloatRange(0, 1), default=1.0, show_default=True)
@click.option("--float-max-diff", type=click.FloatRange(0), default=1e-4, show_default=True,
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
    from edge_lstm import report as report_files
    from edge_lstm.backends import KerasBackend
    from edge_lstm.data import DataError
    from edge_lstm.parity import Thresholds, run_parity
    from edge_lstm_device.model import BundleError
    from edge_lstm_device.tokenizer import ReviewTooLongError

    thresholds = Thresholds(float_min_agreement, float_max_diff, int8_min_agreement, int8_max_accuracy_change)
    try:
        tokenizer, model, backends = _load(bundle_dir, only, threads)
        reviews, source = _reviews(data, limit, seed)
        rows = tokenizer.encode_batch(reviews.texts)
    except (BundleError, DataError, ReviewTooLongError) as err:
        raise click.ClickException(str(err)) from err
    reference_name = "keras_float"
    if original is not None:  # the user's own model is the reference; the rebuilt one is judged too
        backends.insert(0, (KerasBackend(model, name="rebuilt_keras_float"), "float32", False))
        model, reference_name = _original_model(original, model), f"original ({original.name})"
    status(f"scoring {len(rows)} reviews with {reference_name} (reference)")
    reference = KerasBackend(model, name=reference_name).score(rows)
    result = run_parity(reviews, rows, reference, backends, thresholds, source, log=status,
                        reference_name=reference_name)
    try:
        written = report_files.write(result, report_dir or bundle_dir) if report else []
        report_error = None
    except OSError as err:  # the verdict is printed all the same
        written, report_error = [], f"cannot write the report into {report_dir or bundle_dir}: {err.strerror or err}"
    if as_json:
        echo_json({**result.to_dict(), "report_files": [str(p) for p in written]})
    else:
        click.echo(report_files.table(result))
        for path in written:
            click.echo(f"wrote {path}")
    if report_error:
        raise click.ClickException(report_error)
    if not result.passed:
        sys.exit(EXIT_THRESHOLD_FAILED)
