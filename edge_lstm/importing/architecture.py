"""The supported architectures, read from a model file's config as data into a
:class:`~edge_lstm.importing.spec.ModelSpec`.

A Sequential, or a Functional single-input chain: ``[InputLayer ->] [TextVectorization ->]
Embedding (mask_zero or not)
-> 1 to 3 recurrent layers (LSTM or GRU, each optionally Bidirectional with merge_mode concat,
sum, ave or mul; every one but the last returns sequences) -> 0 to 2 Dense hidden layers (relu,
tanh, gelu, linear) -> the head, Dense(1, sigmoid), Dense(1) logits or Dense(k, softmax) with k >= 2
classes``, with Dropout and
SpatialDropout1D (no-ops at inference) anywhere after the Embedding. Anything else is one
``ModelFileError`` naming the layer and the option. The chain itself (built-in layers, no code,
one input each) is ``chain.py``'s; the rules for a layer's options ``layer_options.py``'s.
"""

from __future__ import annotations

from typing import Any

from edge_lstm.importing.chain import chain_layers, wrong_layers
from edge_lstm.importing.layer_options import (
    SUPPORTED_ARCHITECTURE,
    check_dtype,
    checked_name,
    expect,
    expect_absent,
    expect_bool,
    int_option,
)
from edge_lstm.importing.spec import (
    MAX_PARAMETERS,
    DenseSpec,
    ModelFileError,
    ModelSpec,
    RecurrentSpec,
    VectorizerSpec,
    parameter_count,
)
from edge_lstm.importing.spec import show_value as _show

MAX_LEN_LIMIT = 100_000
MAX_UNITS = 4096
MAX_RECURRENT, MAX_HIDDEN = 3, 2
MAX_CLASSES = 1000
WHOLE_REVIEWS = 2500  # the window of a model that reads whole reviews (IMDB's longest has ~2,500 words)
VECTORIZER_STANDARDIZE = ("lower_and_strip_punctuation", "lower", None)
RECURRENT_KINDS = ("LSTM", "GRU")
MERGE_MODES = ("concat", "sum", "ave", "mul")
HIDDEN_ACTIVATIONS = ("relu", "tanh", "gelu", "linear")
NO_OPS = ("Dropout", "SpatialDropout1D")  # inference ignores them


def check_config(config: dict, kind: str, keras_version: str, max_len: int | None,
                 layers: list[dict] | None = None) -> ModelSpec:
    """Accept only a supported architecture; return its description (``kind``: h5 or keras).
    ``layers``: ``chain_layers(config)``, when the caller has it already."""
    layers = chain_layers(config) if layers is None else layers
    body = [layer for layer in layers if layer.get("class_name") != "InputLayer"]
    vectorizer = _vectorizer(body.pop(0)["config"]) if body and body[0].get("class_name") == "TextVectorization" else None
    if not body or body[0].get("class_name") != "Embedding":
        raise ModelFileError(wrong_layers(layers))
    embedding = body[0]["config"]
    _check_embedding(embedding)
    recurrent, dense = _recurrent_and_dense(body[1:], layers)
    names = [checked_name(layer["config"]) for layer in body]
    if len(set(names)) != len(names):
        raise ModelFileError(f"the layers' names are not unique: {', '.join(names)}")
    fixed = vectorizer.output_sequence_length if vectorizer else _fixed_length(config, layers)
    whole = fixed is None and max_len is None and not vectorizer  # as Keras reads a review given unpadded
    if whole:
        max_len = WHOLE_REVIEWS  # the leading pads are skipped: a long window costs nothing
    if vectorizer and fixed is None:
        if not embedding.get("mask_zero", False):
            raise ModelFileError("TextVectorization has output_sequence_length=None and the Embedding no mask_zero: "
                                 "Keras reads each review unpadded, a fixed window would add pad steps; set one of them")
        max_len = max_len or WHOLE_REVIEWS  # pads are skipped: a long window costs nothing
    spec = ModelSpec(
        format=kind, keras_version=keras_version,
        num_words=int_option(embedding, "input_dim", "Embedding", 4, MAX_PARAMETERS),
        embedding_dim=int_option(embedding, "output_dim", "Embedding", 1, MAX_UNITS),
        max_len=_resolve_length(fixed, max_len),
        max_len_from="model" if fixed else "whole reviews" if whole else "caller", whole_reviews=whole,
        embedding_name=checked_name(embedding), recurrent=recurrent, dense=dense,
        mask_zero=embedding.get("mask_zero", False), functional=config.get("class_name") != "Sequential",
        vectorizer=vectorizer,
    )
    if parameter_count(spec) > MAX_PARAMETERS:
        raise ModelFileError(f"the model has {parameter_count(spec):,} parameters; at most {MAX_PARAMETERS:,} are read")
    return spec


def _recurrent_and_dense(body: list[dict], layers: list[dict]) -> tuple[tuple[RecurrentSpec, ...], tuple[DenseSpec, ...]]:
    """Recurrent layers, then Dense layers; Dropout and SpatialDropout1D are skipped."""
    recurrent: list[RecurrentSpec] = []
    dense: list[DenseSpec] = []
    for layer in body:
        kind, cfg = layer.get("class_name"), layer["config"]
        if kind in NO_OPS:
            check_dtype(cfg, kind)
            continue
        if kind in RECURRENT_KINDS or kind == "Bidirectional":
            if dense:
                raise ModelFileError(f"a {kind} layer after a Dense layer; supported: {SUPPORTED_ARCHITECTURE}")
            recurrent.append(_recurrent(kind, cfg))
        elif kind == "Dense":
            dense.append(DenseSpec(checked_name(cfg), int_option(cfg, "units", "Dense", 1, MAX_UNITS), _dense_activation(cfg)))
        else:
            raise ModelFileError(wrong_layers(layers))
    if not recurrent or not dense:
        raise ModelFileError(wrong_layers(layers))
    if len(recurrent) > MAX_RECURRENT:
        raise ModelFileError(f"{len(recurrent)} recurrent layers; supported: 1 to {MAX_RECURRENT}")
    if len(dense) > MAX_HIDDEN + 1:
        raise ModelFileError(f"{len(dense) - 1} Dense hidden layers; supported: 0 to {MAX_HIDDEN}")
    for r in recurrent[:-1]:
        if not r.return_sequences:
            raise ModelFileError(f"{r.name}: return_sequences=False before another recurrent layer; "
                                 "every recurrent layer but the last must return sequences")
    if recurrent[-1].return_sequences:
        raise ModelFileError(f"{recurrent[-1].name}: the last recurrent layer has return_sequences=True; "
                             "supported: its last state only (no pooling layers)")
    _check_hidden(dense[:-1])
    _check_head(dense[-1])
    return tuple(recurrent), tuple(dense)


def _vectorizer(cfg: dict) -> VectorizerSpec:
    """A TextVectorization the device tokenizer reproduces: whitespace split, int ids."""
    name = checked_name(cfg)
    expect(cfg, "TextVectorization", split="whitespace", output_mode="int", sparse=False, ragged=False,
            encoding="utf-8", ngrams=None)
    standardize = cfg.get("standardize", "lower_and_strip_punctuation")
    if standardize not in VECTORIZER_STANDARDIZE:
        raise ModelFileError(f"TextVectorization has standardize={_show(standardize)}; supported: "
                             "lower_and_strip_punctuation, lower or None")
    length = cfg.get("output_sequence_length")
    if length is not None:
        length = int_option(cfg, "output_sequence_length", "TextVectorization", 1, MAX_LEN_LIMIT)
    vocabulary = cfg.get("vocabulary")
    if vocabulary is not None and not (isinstance(vocabulary, list) and all(isinstance(w, str) for w in vocabulary)):
        raise ModelFileError("TextVectorization's vocabulary in the config is not a list of words")
    return VectorizerSpec(name, standardize, length, tuple(vocabulary) if vocabulary is not None else None)


def _recurrent(kind: str, cfg: dict) -> RecurrentSpec:
    name = checked_name(cfg)
    if kind == "Bidirectional":
        check_dtype(cfg, kind)
        merge = cfg.get("merge_mode", "concat")
        if merge not in MERGE_MODES:
            raise ModelFileError(f"Bidirectional {_show(name)} has merge_mode={_show(merge)}; supported: {', '.join(MERGE_MODES)}")
        inner = cfg.get("layer")
        inner_kind = inner.get("class_name") if isinstance(inner, dict) else None
        if inner_kind not in RECURRENT_KINDS or not isinstance(inner.get("config"), dict):
            raise ModelFileError(f"Bidirectional {_show(name)} wraps {_show(inner_kind)}; supported: LSTM or GRU")
        if not _mirrors(cfg.get("backward_layer"), inner):
            raise ModelFileError(f"Bidirectional {_show(name)} has its own backward_layer; supported: the mirror of its layer")
        layer = _recurrent(inner_kind, inner["config"])
        return RecurrentSpec(name, layer.cell, layer.units, layer.reset_after, True, merge, layer.return_sequences)
    _check_recurrent(cfg, kind)
    return RecurrentSpec(name, kind, int_option(cfg, "units", kind, 1, MAX_UNITS),
                         cfg.get("reset_after", True) if kind == "GRU" else True,
                         return_sequences=cfg.get("return_sequences", False))


_MIRRORED = ("units", "return_sequences", "activation", "recurrent_activation", "use_bias", "reset_after",
             "return_state", "stateful")


def _mirrors(backward: Any, forward: dict) -> bool:
    """A Bidirectional's backward layer is Keras' own mirror of the forward one (or absent)."""
    if backward is None:
        return True
    if not isinstance(backward, dict) or backward.get("class_name") != forward.get("class_name"):
        return False
    back, front = backward.get("config"), forward["config"]
    return isinstance(back, dict) and back.get("go_backwards") is True and all(
        back.get(key) == front.get(key) for key in _MIRRORED)


def _check_embedding(cfg: dict) -> None:
    check_dtype(cfg, "Embedding")
    expect_bool(cfg, "Embedding", "mask_zero", False)
    expect_absent(cfg, "Embedding", "lora_rank", "quantization_config")


def _check_recurrent(cfg: dict, kind: str) -> None:
    """An LSTM or GRU as Keras builds it by default (its sequences, or its last state only)."""
    check_dtype(cfg, kind)
    expect(cfg, kind, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
            return_state=False, go_backwards=False, stateful=False, time_major=False)
    expect_bool(cfg, kind, "return_sequences", False)
    if kind == "GRU":
        expect_bool(cfg, kind, "reset_after", True)
    for key in ("dropout", "recurrent_dropout"):  # training only: inference ignores them
        value = cfg.get(key, 0.0)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1:
            raise ModelFileError(f"{kind} {key} must be a number in [0, 1), found {_show(value)}")


def _dense_activation(cfg: dict) -> str:
    check_dtype(cfg, "Dense")
    expect(cfg, "Dense", use_bias=True)
    expect_absent(cfg, "Dense", "lora_rank", "quantization_config")
    activation = cfg.get("activation", "linear")
    if not isinstance(activation, str):
        raise ModelFileError(f"Dense {_show(cfg.get('name'))} has activation {_show(activation)}; "
                             f"supported: {', '.join(HIDDEN_ACTIVATIONS)}, sigmoid, softmax")
    return activation


def _check_hidden(hidden: list[DenseSpec]) -> None:
    for d in hidden:
        if d.activation not in HIDDEN_ACTIVATIONS:
            raise ModelFileError(f"the Dense hidden layer {_show(d.name)} has activation {_show(d.activation)}; "
                                 f"supported: {', '.join(HIDDEN_ACTIVATIONS)}")


def _check_head(head: DenseSpec) -> None:
    if head.activation == "softmax" and not 2 <= head.units <= MAX_CLASSES:
        raise ModelFileError(f"the Dense head has units={head.units} with softmax; supported: Dense(k, softmax) with "
                             f"2 <= k <= {MAX_CLASSES} classes")
    if head.units != 1 and head.activation != "softmax":
        raise ModelFileError(f"the Dense head has units={head.units} and activation {_show(head.activation)}; supported: "
                             "Dense(1, sigmoid), Dense(1) logits, or Dense(k, softmax) for k classes")
    if head.activation not in ("sigmoid", "linear", "softmax"):
        raise ModelFileError(f"the Dense head has activation {_show(head.activation)}; supported: sigmoid, "
                             "linear (logits: the device applies the sigmoid), or softmax with k >= 2 units")


def _fixed_length(config: dict, layers: list[dict]) -> int | None:
    """The input length the file fixes (Input shape, input_length, build shape), if any."""
    inner = config.get("config") if isinstance(config.get("config"), dict) else {}
    shapes = [inner.get("build_input_shape"), (config.get("build_config") or {}).get("input_shape")]
    for layer in layers:
        if layer.get("class_name") not in ("InputLayer", "Embedding"):
            continue
        cfg = layer["config"]
        shapes += [cfg.get("batch_shape"), cfg.get("batch_input_shape"), (layer.get("build_config") or {}).get("input_shape")]
        if cfg.get("input_length") is not None:
            shapes.append([None, cfg["input_length"]])
    lengths = {_length_of(shape) for shape in shapes if shape is not None} - {None}
    if len(lengths) > 1:
        raise ModelFileError(f"the model's input lengths disagree: {sorted(lengths)}")
    return lengths.pop() if lengths else None


def _length_of(shape: Any) -> int | None:
    if not isinstance(shape, list) or len(shape) != 2:
        raise ModelFileError(f"the model's input shape is {_show(shape)}; supported: (batch, tokens)")
    length = shape[1]
    if length is None:
        return None
    if not isinstance(length, int) or isinstance(length, bool) or not 1 <= length <= MAX_LEN_LIMIT:
        raise ModelFileError(f"the model's input length {_show(length)} is not in [1, {MAX_LEN_LIMIT}]")
    return length


def _resolve_length(fixed: int | None, given: int | None) -> int:
    if fixed is not None and given is not None and fixed != given:
        raise ModelFileError(f"the model reads {fixed} tokens per review, not {given}")
    if fixed is None and given is None:
        raise ModelFileError("the model does not fix its input length; pass it (--max-len; the lecture used 200)")
    return fixed if fixed is not None else given
