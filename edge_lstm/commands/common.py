"""Small helpers shared by the verbs: typed paths, JSON output, progress on stderr."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from edge_lstm.bundle import DEFAULT_BUNDLE

BUNDLE_OPTION = click.option(
    "--bundle",
    "bundle_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_BUNDLE,
    show_default=True,
    help="Bundle directory (the shipped reference model lives in ./export).",
)
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print one JSON document for scripts.")


def echo_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def status(message: str) -> None:
    """Progress for people goes to stderr, so stdout stays clean for ``--json``."""
    click.echo(message, err=True)


def is_terminal() -> bool:
    return sys.stderr.isatty()
