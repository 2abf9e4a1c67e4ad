"""``edge-lstm keygen``: an ed25519 key pair that signs bundles (``edge-lstm sign``)."""

from __future__ import annotations

from pathlib import Path

import click

from edge_lstm.commands.common import JSON_OPTION, echo_json


@click.command("keygen")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Private key file to write (mode 0600); the public key goes to OUT.pub (mode 0644).")
@click.option("--force", is_flag=True, help="Overwrite OUT and OUT.pub if they exist.")
@JSON_OPTION
def keygen_command(out: Path, force: bool, as_json: bool) -> None:
    """Write a new ed25519 key pair: OUT (private, PEM, unencrypted, mode 0600: keep it on the
    build host) and OUT.pub (public: copy it to the devices; with --trust OUT.pub or
    EDGE_LSTM_TRUST they run only bundles signed with OUT). Existing files are kept unless --force.

    \b
    Examples:
      edge-lstm keygen --out ~/.config/edge-lstm/signing.key
      edge-lstm sign --bundle export --key ~/.config/edge-lstm/signing.key
      scp ~/.config/edge-lstm/signing.key.pub pi@raspberrypi.local:trusted.pub
    """
    from edge_lstm_device.bundle.manifest import BundleError

    from edge_lstm.signing import SigningError, generate_keypair

    try:
        result = generate_keypair(out, overwrite=force)
    except (SigningError, BundleError) as err:
        raise click.ClickException(str(err)) from err
    if as_json:
        echo_json(result)
    else:
        click.echo(f"wrote {result['private_key']} (private: keep it secret) and {result['public_key']} "
                   f"(key id {result['key_id']}: copy it to the devices)")
