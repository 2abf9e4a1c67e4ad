"""A short real training run on the shared data: what it saves reloads and predicts the same."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_lstm import bundle
from edge_lstm.samples import TEST_SAMPLE, read_sample

pytestmark = pytest.mark.training


def test_bundle_reloads_and_records_metrics(small_bundle: Path) -> None:
    metrics = json.loads((small_bundle / bundle.METRICS_FILE).read_text())
    assert metrics["config"]["epochs"] == 2 and metrics["seed"] == 7
    assert len(metrics["epochs"]) == 2 and "val_accuracy" in metrics["epochs"][0]
    assert 0 < metrics["kept_epoch"] <= 2 and len(metrics["validation_checks"]) == 8 and metrics["n_test"] == 400
    assert 0.5 < metrics["test_accuracy"] <= 1.0
    assert {"tensorflow", "tf_keras", "numpy"} <= set(metrics["versions"])
    model = bundle.load_model(small_bundle)
    tokenizer = bundle.load_tokenizer(small_bundle)
    assert model.input_shape == (None, 200) and tokenizer.num_words == 10_000
    scores = model.predict(tokenizer.encode_batch(read_sample(TEST_SAMPLE).texts[:50]), verbose=0)
    assert scores.shape == (50, 1) and np.all((scores >= 0) & (scores <= 1))


def test_same_seed_same_vocabulary_and_weights(tmp_path: Path, imdb_tarball: Path) -> None:
    from edge_lstm.train.data import load_imdb
    from edge_lstm.train.training import TrainConfig, train

    splits = load_imdb(imdb_tarball)
    train_set, test_set = splits["train"].balanced(300, 1), splits["test"].balanced(100, 1)
    cfg = TrainConfig(embedding_dim=8, lstm_units=8, epochs=1, seed=3)
    for name in ("a", "b"):
        train(train_set, test_set, cfg, tmp_path / name, "sha", log=lambda _: None)
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == (tmp_path / "b" / "tokenizer.json").read_bytes()
    weights = [bundle.load_model(tmp_path / n).get_weights() for n in ("a", "b")]
    assert all(np.array_equal(x, y) for x, y in zip(*weights))


def test_refit_retrains_on_all_reviews_up_to_the_kept_checkpoint(tmp_path: Path, imdb_tarball: Path) -> None:
    from edge_lstm.train.data import load_imdb
    from edge_lstm.train.training import TrainConfig, train

    splits = load_imdb(imdb_tarball)
    train_set, test_set = splits["train"].balanced(300, 2), splits["test"].balanced(100, 2)
    cfg = TrainConfig(embedding_dim=8, lstm_units=8, epochs=2, seed=5, refit=True)
    metrics = train(train_set, test_set, cfg, tmp_path / "refit", "sha", log=lambda _: None)
    refit = metrics["refit"]
    assert refit["reviews"] == 300 == metrics["n_train"] + metrics["n_validation"]
    assert refit["epochs"] == metrics["kept_epoch"] and refit["weights"] == metrics["kept_weights"]
    assert refit["steps"] == round(metrics["kept_epoch"] * 5)  # 300 reviews in batches of 64
    assert len(refit["epoch_log"]) == -(-refit["steps"] // 5)
    assert bundle.load_model(tmp_path / "refit").input_shape == (None, 200)
