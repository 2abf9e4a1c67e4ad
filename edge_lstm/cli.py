"""The ``edge-lstm`` command: a click group whose verbs load lazily from their own modules."""

from __future__ import annotations

import importlib

import click

from edge_lstm import __version__, termination

# verb -> (module, attribute, one-line help shown in ``edge-lstm --help``)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "train": ("edge_lstm.commands.train", "train_command", "Train the IMDB LSTM and write a bundle."),
    "parity": ("edge_lstm.commands.parity", "parity_command", "Check every artifact against the float model."),
    "bench": ("edge_lstm.commands.bench", "bench_command", "Benchmark size, latency, throughput, memory."),
    "export": ("edge_lstm.commands.export", "export_command", "Export TFLite + ONNX (float, --int8) with a manifest."),
    "reference": ("edge_lstm.commands.reference", "reference_command",
                  "Refresh the shipped reference bundle and the device package's copy."),
    "import": ("edge_lstm.commands.import_model", "import_command",
               "Import a Keras LSTM or GRU model (Bidirectional, stacked, TextVectorization)."),
    "keygen": ("edge_lstm.commands.keygen", "keygen_command", "Write an ed25519 key pair for signing bundles."),
    "sign": ("edge_lstm.commands.sign", "sign_command", "Sign a bundle's manifest (manifest.sig) for the devices."),
}


class LazyGroup(click.Group):
    """Imports a verb's module only when that verb runs (or its help is asked for)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, short) for name, (_, _, short) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edge-lstm")
@click.option("-v", "--verbose", is_flag=True, envvar="EDGE_LSTM_VERBOSE",
              help="Also show what TensorFlow and LiteRT print from C++ (start-up lines, converter logs).")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Train the IMDB sentiment LSTM, export it to int8 TFLite and ONNX, and prove the
    quantized models agree with the float one.

    \b
    Typical flow:
      edge-lstm train --data aclImdb_v1.tar.gz     # writes runs/<date-time>
      edge-lstm export --int8                      # TFLite + ONNX + manifest.json
      edge-lstm parity                             # quantized vs float
      edge-lstm bench                              # size, latency, memory
    """
    if ctx.invoked_subcommand is None:
        return
    termination.install()
    if not verbose:
        from edge_lstm.tf_setup import hide_native_stderr

        ctx.call_on_close(hide_native_stderr())


if __name__ == "__main__":
    main()
