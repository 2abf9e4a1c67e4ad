"""``edge-lstm sign``: ``manifest.sig``, an ed25519 signature over a bundle's manifest."""

from __future__ import annotations

from pathlib import Path

import click

from edge_lstm.commands.common import BUNDLE_OPTION, JSON_OPTION, echo_json


@click.command("sign")
@BUNDLE_OPTION
@click.option("--key", "key_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Private key written by 'edge-lstm keygen'.")
@JSON_OPTION
def sign_command(bundle_dir: Path, key_path: Path, as_json: bool) -> None:
    """Check every file of an exported bundle against manifest.json, then write manifest.sig
    beside it: an ed25519 signature over the manifest's exact bytes (the manifest pins the size
    and sha256 of every other file). A device given the public key (--trust KEY.pub or
    EDGE_LSTM_TRUST) runs the bundle only while the signature matches. Sign again after every
    export: export removes a signature its new manifest makes stale. A manifest without a
    bundle_version (an export before versions) is given one first, so that devices trusting
    the key can refuse older bundles (docs/serve.md#signed-bundles).

    \b
    Examples:
      edge-lstm sign --key signing.key                       # the shipped reference bundle in ./export
      edge-lstm sign --bundle runs/b1 --key signing.key --json
    """
    from edge_lstm_device.bundle.manifest import BundleError

    from edge_lstm.signing import SigningError, sign_bundle

    try:
        result = sign_bundle(bundle_dir, key_path)
    except (SigningError, BundleError) as err:
        raise click.ClickException(str(err)) from err
    if as_json:
        echo_json(result)
        return
    absent = f"; not in the folder: {', '.join(result['files_absent'])}" if result["files_absent"] else ""
    if result["bundle_version_added"]:
        click.echo(f"manifest.json had no bundle_version (an export before versions): wrote it with "
                   f"bundle_version {result['bundle_version']}")
    click.echo(f"wrote {result['signature']} (key id {result['key_id']}, manifest sha256 "
               f"{result['manifest_sha256'][:12]}…, bundle_version {result['bundle_version']}); "
               f"{len(result['files_checked'])} files match the manifest{absent}")
