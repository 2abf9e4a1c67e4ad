"""``edge-lstm train``: train the IMDB LSTM and write a bundle directory."""

from __future__ import annotations

from pathlib import Path

import click

from edge_lstm.commands.common import JSON_OPTION, echo_json, is_terminal, status
from edge_lstm.tf_setup import quiet_tensorflow
from edge_lstm.train.training import VALIDATION_MODES, TrainConfig

DEFAULTS = TrainConfig()  # the options' defaults are the config's


def _train(data: Path | None, out_dir: Path, cfg: TrainConfig, limit: int | None, test_limit: int | None,
           as_json: bool) -> dict:
    """Read the data, train, write the bundle; returns the metrics."""
    from edge_lstm_device.bundle.files import file_sha256
    from edge_lstm_device.bundle.text import ReviewTooLongError

    from edge_lstm.bundle import BundleError, ensure_writable
    from edge_lstm.train.data import DataError, load_imdb
    from edge_lstm.train.download import resolve_source

    try:
        ensure_writable(out_dir)
        source = resolve_source(data, progress=_download_progress)
        status(f"reading {source}")
        splits = load_imdb(source)
    except (DataError, BundleError) as err:
        raise click.ClickException(str(err)) from err
    train_set = splits["train"].balanced(limit, cfg.seed)
    test_set = splits["test"].balanced(test_limit, cfg.seed)
    quiet_tensorflow()
    from edge_lstm.train.training import train

    status(f"training on {len(train_set)} reviews ({cfg.validation_split:.0%} held out), "
           f"{cfg.epochs} epochs, batch {cfg.batch_size}")
    verbose = 1 if is_terminal() and not as_json else 0
    sha = file_sha256(source) if source.is_file() else "directory"
    try:
        return train(train_set, test_set, cfg, out_dir, sha, verbose=verbose, log=status)
    except ReviewTooLongError as err:
        raise click.ClickException(f"a review of {source} is too long to train on: {err}") from err


def _new_run_dir() -> Path:
    """``runs/<date-time>``, with a suffix if that folder exists already."""
    import time

    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate, n = Path("runs") / stamp, 1
    while candidate.exists():
        candidate, n = Path("runs") / f"{stamp}-{n}", n + 1
    return candidate


def _download_progress(done: int, total: int) -> None:
    """One self-overwriting progress line on stderr while the tarball downloads."""
    size = f"{done / 1e6:.1f}/{total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"
    click.echo(f"\rdownloading IMDB: {size}", err=True, nl=bool(total and done >= total))


@click.command("train")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="aclImdb .tar.gz or extracted folder. Default: $EDGE_LSTM_DATA, the cache, "
                   "then download the official tarball.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Bundle directory to write. Default: a new runs/<date-time> folder (the shipped "
                   "reference in ./export changes only through 'edge-lstm reference').")
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True,
              help="Seed for shuffling, init and dropout.")
@click.option("--epochs", type=click.IntRange(min=1), default=DEFAULTS.epochs, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULTS.batch_size, show_default=True)
@click.option("--num-words", type=click.IntRange(min=4), default=DEFAULTS.num_words, show_default=True,
              help="Vocabulary size including the pad, start and out-of-vocabulary ids.")
@click.option("--max-len", type=click.IntRange(min=1), default=DEFAULTS.max_len, show_default=True,
              help="Tokens per review (pre-padded, pre-truncated).")
@click.option("--embedding-dim", type=click.IntRange(min=1), default=DEFAULTS.embedding_dim, show_default=True)
@click.option("--lstm-units", type=click.IntRange(min=1), default=DEFAULTS.lstm_units, show_default=True)
@click.option("--validation-split", type=click.FloatRange(0.01, 0.9), default=DEFAULTS.validation_split,
              show_default=True)
@click.option("--validation", "validation_mode", type=click.Choice(VALIDATION_MODES), default=DEFAULTS.validation,
              show_default=True,
              help="Which reviews are held out: whole movies (like the test split) or a random share.")
@click.option("--keep-best-epoch/--keep-last-epoch", default=DEFAULTS.keep_best_epoch, show_default=True,
              help="Keep the weights of the epoch with the best validation accuracy, or the last.")
@click.option("--checks-per-epoch", type=click.IntRange(min=1), default=DEFAULTS.checks_per_epoch, show_default=True,
              help="Validation checks per epoch; the best checkpoint's weights are kept.")
@click.option("--ema-momentum", type=click.FloatRange(0, 1, max_open=True), default=DEFAULTS.ema_momentum,
              show_default=True,
              help="Also validate a moving average of the weights (0 turns it off).")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=DEFAULTS.dropout, show_default=True,
              help="Dropout on the LSTM's inputs while training; the exported model is unchanged.")
@click.option("--refit/--no-refit", default=DEFAULTS.refit, show_default=True,
              help="After choosing the checkpoint, retrain on all reviews (validation ones too) up to it.")
@click.option("--limit", type=click.IntRange(min=10), default=None,
              help="Train on a balanced subset of N training reviews (quick runs).")
@click.option("--test-limit", type=click.IntRange(min=10), default=None,
              help="Evaluate on a balanced subset of N test reviews.")
@JSON_OPTION
def train_command(data: Path | None, out_dir: Path, seed: int, epochs: int, batch_size: int,
                  num_words: int, max_len: int, embedding_dim: int, lstm_units: int,
                  validation_split: float, validation_mode: str, keep_best_epoch: bool, checks_per_epoch: int,
                  ema_momentum: float, dropout: float, refit: bool, limit: int | None,
                  test_limit: int | None, as_json: bool) -> None:
    """Train the IMDB LSTM of the reference lecture and write a bundle: the float
    model (model.h5), its tokenizer (tokenizer.json) and metrics.json.

    \b
    Examples:
      edge-lstm train --data ~/Downloads/aclImdb_v1.tar.gz           # writes runs/<date-time>
      edge-lstm train --data aclImdb_v1.tar.gz --limit 2000 --epochs 1 --out /tmp/quick
      edge-lstm reference --from runs/<date-time>      # make a run the shipped reference
    """
    if refit and not keep_best_epoch:
        raise click.UsageError("--refit retrains up to the kept checkpoint; it needs --keep-best-epoch.")
    cfg = TrainConfig(num_words=num_words, max_len=max_len, embedding_dim=embedding_dim, lstm_units=lstm_units,
                      epochs=epochs, batch_size=batch_size, validation_split=validation_split, seed=seed,
                      keep_best_epoch=keep_best_epoch, checks_per_epoch=checks_per_epoch,
                      ema_momentum=ema_momentum, dropout=dropout, validation=validation_mode, refit=refit)
    out_dir = out_dir or _new_run_dir()
    created = [p for p in (out_dir, *out_dir.parents) if not p.exists()]  # deepest first
    try:
        metrics = _train(data, out_dir, cfg, limit, test_limit, as_json)
    except BaseException:
        for folder in created:  # a failed run leaves no empty folders behind
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    if as_json:
        echo_json(metrics)
    else:
        kept = f"{metrics['kept_weights']} weights of epoch {metrics['kept_epoch']}"
        if metrics["refit"]:
            kept += f", refit on {metrics['refit']['reviews']} reviews"
        click.echo(f"test accuracy {metrics['test_accuracy']:.4f} ({kept}), "
                   f"{metrics['wall_time_s']:.0f} s; bundle written to {out_dir}")
