"""``edge-lstm reference``: refresh the shipped reference bundle (the device package links to it)."""

from __future__ import annotations

from pathlib import Path

import click

from edge_lstm.commands.common import JSON_OPTION, echo_json, status
from edge_lstm.tf_setup import quiet_tensorflow


@click.command("reference")
@click.option("--from", "source", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Make this trained bundle (model.h5, tokenizer.json, metrics.json) the new reference.")
@JSON_OPTION
def reference_command(source: Path | None, as_json: bool) -> None:
    """Re-export the shipped reference bundle (./export) with --int8. The device package ships
    its int8 TFLite files, numpy weights, tokenizer, reference scores and manifest through links
    (device/edge_lstm_device/reference), so they are refreshed too. No other command writes
    there; `train` writes to runs/ unless given --out.

    \b
    Examples:
      edge-lstm reference                              # re-export ./export (the device links to it)
      edge-lstm reference --from runs/20261124-140000  # adopt a new trained model, then the same
    """
    quiet_tensorflow()
    from edge_lstm.bundle import BundleError
    from edge_lstm.export.exporter import ExportError
    from edge_lstm.export.reference import refresh_reference

    try:
        result = refresh_reference(source, log=status)
    except (ExportError, BundleError) as err:
        raise click.ClickException(str(err)) from err
    if as_json:
        echo_json(result)
    else:
        order = ", ".join(result["manifest"]["device_order"])
        click.echo(f"reference exported (device order: {order}); the device package ships: "
                   f"{', '.join(result['device_files'])}")
