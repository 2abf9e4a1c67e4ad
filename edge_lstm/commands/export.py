"""``edge-lstm export``: float model -> TFLite and ONNX (float, and int8 with --int8) + manifest."""

from __future__ import annotations

import time
from pathlib import Path

import click

from edge_lstm.commands.common import BUNDLE_OPTION, JSON_OPTION, echo_json, status
from edge_lstm.tf_setup import quiet_tensorflow


def _summary(result: dict, seconds: float) -> str:
    manifest, measured = result["manifest"], result["report"]["artifacts"]
    lines = [f"{'artifact':<22}{'file':<28}{'KiB':>7}{'ratio':>7}{'labels':>8}{'max|Δp|':>9}{'p50 ms':>8}"]
    for name, entry in manifest["artifacts"].items():
        check, latency = measured[name]["selfcheck"], measured[name].get("latency_ms")
        ratio = f"{entry['size_ratio_to_float']:.2f}" if "size_ratio_to_float" in entry else "-"
        lines.append(f"{name:<22}{entry['file']:<28}{entry['bytes'] / 1024:>7.0f}{ratio:>7}"
                     f"{check['label_agreement']:>8.1%}{check['max_abs_diff']:>9.2g}"
                     f"{latency['median'] if latency else '-':>8}")
    lines.append(f"device order (fastest TFLite first): {', '.join(manifest['device_order'])}")
    lines.append(f"manifest.json and export_report.json written; export took {seconds:.0f} s "
                 f"(agreement with the float model on {check['reviews']} shipped reviews)")
    lines += [note] if (note := signature_note(result)) else []
    return "\n".join(lines)


def signature_note(result: dict) -> str | None:
    """What became of the bundle's manifest.sig, if it had one."""
    if result.get("signature") == "removed":
        return "manifest.sig removed: it signed the previous manifest; sign the bundle again (edge-lstm sign)"
    if result.get("signature") == "kept":
        return "manifest.sig kept: the new manifest has the same bytes, so its signature still holds"
    return None


@click.command("export")
@BUNDLE_OPTION
@click.option("--int8", is_flag=True, help="Also write int8 TFLite and int8 ONNX.")
@click.option("--tflite-scheme", type=click.Choice(["full-integer", "dynamic-range", "both"]),
              default="both", show_default=True,
              help="int8 TFLite scheme of model_int8.tflite: full-integer (int8 weights and "
                   "activations, calibrated) or dynamic-range (int8 weights, float activations); "
                   "both = full-integer, plus dynamic-range as model_int8_dynamic.tflite.")
@click.option("--calibration-reviews", type=click.IntRange(min=1), default=400, show_default=True,
              help="Real training reviews used to calibrate full-integer int8.")
@click.option("--data", type=click.Path(exists=True, path_type=Path), default=None,
              help="Calibrate on this IMDB data's train split instead of the shipped 400-review sample.")
@JSON_OPTION
def export_command(bundle_dir: Path, int8: bool, tflite_scheme: str, calibration_reviews: int,
                   data: Path | None, as_json: bool) -> None:
    """Convert a bundle's float model to TFLite (fused LSTM, builtin ops) and ONNX (LSTM node),
    validate every file against the float model, and write manifest.json beside them. A
    manifest.sig the new manifest makes stale is removed: sign the bundle again (edge-lstm sign).

    \b
    Examples:
      edge-lstm export --int8                      # the shipped reference bundle in ./export
      edge-lstm export --int8 --bundle runs/b1 --tflite-scheme both
    """
    if tflite_scheme != "both" and not int8:
        raise click.UsageError("--tflite-scheme needs --int8")
    quiet_tensorflow()
    from edge_lstm_device.bundle.text import ReviewTooLongError

    from edge_lstm.bundle import BundleError
    from edge_lstm.export.exporter import ExportError, ExportOptions, export_bundle
    from edge_lstm.train.data import DataError

    options = ExportOptions(int8, tflite_scheme, calibration_reviews, data)
    started = time.perf_counter()
    try:
        result = export_bundle(bundle_dir, options, log=status)
    except (ExportError, BundleError, DataError, ReviewTooLongError) as err:
        raise click.ClickException(str(err)) from err
    if as_json:
        echo_json(result)
    else:
        click.echo(_summary(result, time.perf_counter() - started))
