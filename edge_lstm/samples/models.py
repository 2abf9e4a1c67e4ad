"""Small random tf-keras models of every recurrent shape the loop form writes (no training:
exactness needs none): the loop tests compare them with Keras, and
``scripts/loop_fingerprints.py`` hashes their exported files."""

from __future__ import annotations

from typing import Any

CELLS = {  # name -> the one recurrent layer of a tiny model
    "lstm": lambda keras, seed: keras.layers.LSTM(6, bias_initializer=keras.initializers.RandomNormal(seed=seed)),
    "gru": lambda keras, seed: keras.layers.GRU(6, bias_initializer=keras.initializers.RandomNormal(seed=seed)),
    "gru-reset-before": lambda keras, seed: keras.layers.GRU(
        6, reset_after=False, bias_initializer=keras.initializers.RandomNormal(seed=seed)),
}

STACKS = {  # name -> the layers between Embedding and the head
    "lstm": lambda k: [k.layers.LSTM(5)],  # one forward layer: the pad-state table's form
    "bidirectional": lambda k: [k.layers.Bidirectional(k.layers.LSTM(5))],
    "bidirectional-gru-sum": lambda k: [k.layers.Bidirectional(k.layers.GRU(5), merge_mode="sum")],
    "stacked-bidirectional": lambda k: [k.layers.Bidirectional(k.layers.LSTM(5, return_sequences=True)),
                                        k.layers.Bidirectional(k.layers.LSTM(4), merge_mode="ave")],
    "stacked-three": lambda k: [k.layers.GRU(5, return_sequences=True), k.layers.LSTM(4, return_sequences=True),
                                k.layers.Bidirectional(k.layers.GRU(3, reset_after=False), merge_mode="mul")],
}

HEADS = ("sigmoid", "logits", "softmax")


def tiny_model(mask_zero: bool, max_len: int = 13, seed: int = 0, cell: str = "lstm") -> Any:
    """A random Embedding -> LSTM or GRU (a key of ``CELLS``) -> Dense(1, sigmoid)."""
    import tf_keras as keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.layers.Embedding(50, 8, mask_zero=mask_zero, input_length=max_len),
        CELLS[cell](keras, seed),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.build((None, max_len))
    return model


def stacked_model(stack: str, mask_zero: bool, head: str, max_len: int = 13) -> Any:
    """Embedding -> recurrent layers (a key of ``STACKS``) -> Dense(6, relu) -> the head (one of
    ``HEADS``), random weights."""
    import tf_keras as keras

    keras.utils.set_random_seed(3)
    heads = {"sigmoid": keras.layers.Dense(1, activation="sigmoid"), "logits": keras.layers.Dense(1),
             "softmax": keras.layers.Dense(4, activation="softmax")}
    model = keras.Sequential([keras.layers.Embedding(50, 8, mask_zero=mask_zero, input_length=max_len),
                              *STACKS[stack](keras), keras.layers.Dropout(0.5),
                              keras.layers.Dense(6, activation="relu"), heads[head]])
    model.build((None, max_len))
    return model
