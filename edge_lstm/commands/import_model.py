"""``edge-lstm import``: an IMDB recurrent model trained elsewhere (Keras 3 ``.keras``/``.h5`` or
tf-keras ``.h5``; LSTM or GRU layers, Bidirectional or stacked, TextVectorization inside or
``keras.datasets.imdb`` ids) becomes a bundle that export, parity and bench accept. The work is
:func:`edge_lstm.importing.pipeline.import_model`."""

from __future__ import annotations

from pathlib import Path

import click

from edge_lstm.commands.common import JSON_OPTION, echo_json, status
from edge_lstm.tf_setup import quiet_tensorflow


@click.command("import")
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Bundle folder to write (new or empty; an existing bundle only with --force).")
@click.option("--word-index", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The Keras IMDB word index the model was trained with "
                   "[default: ~/.keras/datasets/imdb_word_index.json when present].")
@click.option("--tokenizer", "tokenizer_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="An edge-lstm tokenizer.json instead of a Keras word index.")
@click.option("--max-len", type=click.IntRange(1, 100_000), default=None,
              help="Tokens per review, for a model that does not fix its input length (the lecture: 200) "
                   "[default: whole reviews, read unpadded as Keras reads them: a 2,500-id window whose "
                   "leading pads are skipped].")
@click.option("--labels", default=None, metavar="NAMES|@FILE",
              help="Class names of a Dense(k, softmax) head, in output order: 'a,b,c', or @FILE with one name "
                   "per line [default: class_0 ... class_{k-1}]. A binary model's labels are negative and positive.")
@click.option("--force", is_flag=True, help="Replace the bundle folder --out if it already holds one.")
@JSON_OPTION
def import_command(model_path: Path, out: Path, word_index: Path | None, tokenizer_path: Path | None,
                   max_len: int | None, labels: str | None, force: bool, as_json: bool) -> None:
    """Import an IMDB recurrent model trained elsewhere: read MODEL as data (no code from it runs),
    accept a Sequential or Functional chain [Input ->] [TextVectorization ->] Embedding (mask_zero
    or not) -> 1 to 3 LSTM or GRU layers, each optionally Bidirectional -> 0 to 2 Dense ->
    Dense(1, sigmoid), Dense(1) logits or Dense(k, softmax) (Dropout layers anywhere), rebuild it in tf-keras with the
    same weights, prove its outputs equal the original's (Keras loads the original, |Δp| <= 1e-5),
    and write a bundle (model.h5, tokenizer.json, metrics.json, import.json) for export.

    The tokenizer: a model with a TextVectorization brings its own; others read the ids of
    keras.datasets.imdb (--word-index) or of an edge-lstm tokenizer (--tokenizer).

    Supported: Keras 3 .keras, Keras 3 .h5, tf-keras .h5.

    \b
    Examples:
      edge-lstm import model.keras --out mybundle        # ~/.keras/datasets/imdb_word_index.json
      edge-lstm import model.h5 --word-index imdb_word_index.json --out mybundle
      edge-lstm import keras_io.keras --word-index imdb_word_index.json --max-len 200 --out kerasio
      edge-lstm import tutorial.keras --out tutorial     # TextVectorization inside: its own vocabulary
      edge-lstm import ratings.keras --out ratings --labels negative,good,excellent   # Dense(3, softmax)
      edge-lstm export --int8 --bundle mybundle && edge-lstm parity --bundle mybundle --original model.keras
    """
    from edge_lstm.importing.pipeline import ImportModelError, ImportRequest, ImportUsageError, import_model

    quiet_tensorflow()
    request = ImportRequest(model_path, out, word_index, tokenizer_path, max_len, labels, force)
    try:
        result = import_model(request, log=status)
    except ImportUsageError as err:
        raise click.UsageError(str(err)) from err
    except ImportModelError as err:
        raise click.ClickException(str(err)) from err
    if as_json:
        echo_json(result.to_dict())
    else:
        click.echo(f"bundle written to {out} ({', '.join(result.files)}); "
                   f"max |Δp| against the original {result.max_diff:.2g}")
        click.echo(f"next: edge-lstm export --int8 --bundle {out} && edge-lstm parity --bundle {out}")
