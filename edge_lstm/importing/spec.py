"""The description of a supported model that every stage reads (the rebuild, the exporters,
parity): :class:`ModelSpec`, its layers, their weights' shapes, and its class names."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

MAX_PARAMETERS = 512 * 2**20 // 4  # float32 values of a model file of at most 512 MiB
MAX_CLASS_NAME = 100  # characters


class ModelFileError(ValueError):
    """A model file is unreadable, too large, or not a supported architecture."""


@dataclass(frozen=True)
class RecurrentSpec:
    name: str  # the layer's name in the file
    cell: str  # "LSTM" or "GRU"
    units: int
    reset_after: bool = True  # GRU: the reset gate after the recurrent product (Keras' default)
    bidirectional: bool = False
    merge_mode: str = "concat"
    return_sequences: bool = False

    @property
    def gates(self) -> int:
        return 4 if self.cell == "LSTM" else 3

    @property
    def width(self) -> int:
        """Features this layer gives the next one."""
        return 2 * self.units if self.bidirectional and self.merge_mode == "concat" else self.units

    def label(self) -> str:
        inner = f"{self.cell}({self.units}{'' if self.reset_after or self.cell == 'LSTM' else ', reset_after=False'})"
        return f"Bidirectional({inner}, {self.merge_mode})" if self.bidirectional else inner


@dataclass(frozen=True)
class DenseSpec:
    name: str
    units: int
    activation: str

    def label(self) -> str:
        return f"Dense({self.units}{'' if self.activation == 'linear' else ', ' + self.activation})"


@dataclass(frozen=True)
class VectorizerSpec:
    """A TextVectorization layer first: the model reads raw text (its vocabulary is read with the weights)."""

    name: str
    standardize: str | None
    output_sequence_length: int | None
    vocabulary: tuple[str, ...] | None = None  # from the config when the layer was given one


@dataclass(frozen=True)
class ModelSpec:
    """What a model file holds: its format and the network's description."""

    format: str  # "h5" or "keras"
    keras_version: str  # the writer's, "" when the file does not say
    num_words: int  # Embedding input_dim (vocabulary, ids 0..num_words-1)
    embedding_dim: int
    max_len: int  # tokens per review
    max_len_from: str  # "model" (fixed by the file), "caller" (--max-len) or "whole reviews" (WHOLE_REVIEWS)
    embedding_name: str
    recurrent: tuple[RecurrentSpec, ...]
    dense: tuple[DenseSpec, ...]  # hidden layers, then the head
    mask_zero: bool = False  # Embedding(mask_zero=True): pad ids are skipped
    functional: bool = False
    vectorizer: VectorizerSpec | None = None
    class_names: tuple[str, ...] = ()  # a softmax head's classes, in output order (empty: the defaults)
    whole_reviews: bool = False  # input length None and no window given: each review is read unpadded, whole

    @property
    def units(self) -> int:
        return self.recurrent[0].units

    @property
    def cell(self) -> str:
        return self.recurrent[0].cell

    @property
    def reset_after(self) -> bool:
        return self.recurrent[0].reset_after

    @property
    def skips_pads(self) -> bool:
        """Pad ids leave the state as it is: masked (``mask_zero``), or read as a review given unpadded."""
        return self.mask_zero or self.whole_reviews

    @property
    def layer_names(self) -> tuple[str, ...]:
        return (self.embedding_name, *(r.name for r in self.recurrent), *(d.name for d in self.dense))

    @property
    def head(self) -> str:
        """``sigmoid`` (a probability), ``logits`` (the device applies the sigmoid) or ``softmax``
        (one probability per class)."""
        activation = self.dense[-1].activation
        return "logits" if activation == "linear" else activation

    @property
    def classes(self) -> int:
        """Output units: 1 for a binary head, k for Dense(k, softmax)."""
        return self.dense[-1].units

    @property
    def labels(self) -> tuple[str, ...]:
        """A softmax head's class names (``class_0``... unless named); empty for a binary head."""
        if self.head != "softmax":
            return ()
        return self.class_names or default_class_names(self.classes)

    @property
    def architecture(self) -> str:
        embedding = f"Embedding({self.num_words}, {self.embedding_dim}{', mask_zero' if self.mask_zero else ''})"
        first = ["TextVectorization"] if self.vectorizer else []
        return " -> ".join([*first, embedding, *(r.label() for r in self.recurrent), *(d.label() for d in self.dense)])

    @property
    def description(self) -> str:
        """``Keras 3 .keras``, ``tf-keras .h5`` ... (for messages and records)."""
        major = self.keras_version.split(".", 1)[0]
        writer = "Keras 3" if major == "3" else f"tf-keras (Keras {self.keras_version or '2'})"
        return f"{writer} .{self.format}"

    def to_dict(self) -> dict:
        return {**asdict(self), "architecture": self.architecture, "description": self.description}


def default_class_names(k: int) -> tuple[str, ...]:
    return tuple(f"class_{i}" for i in range(k))


def check_class_names(names: Any, k: int) -> tuple[str, ...]:
    """``k`` class names of a softmax head: unique, non-empty, printable, one line each."""
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise ModelFileError(f"class names must be a list of strings, found {show_value(names)}")
    if len(names) != k:
        raise ModelFileError(f"{len(names)} class names for a head of {k} classes; give exactly {k}")
    for name in names:
        if not name.strip() or name != name.strip() or len(name) > MAX_CLASS_NAME or not name.isprintable():
            raise ModelFileError(f"class name {show_value(name)} is not a non-empty printable name of at most "
                                 f"{MAX_CLASS_NAME} characters without surrounding spaces")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ModelFileError(f"class names are repeated: {', '.join(map(show_value, repeated))}; each must be unique")
    return tuple(names)


def weight_shapes(spec: ModelSpec) -> list[tuple[str, list[tuple[str, tuple[int, ...]]]]]:
    """Per layer with weights (``(name, [(weight, shape), ...])``), in tf-keras ``set_weights`` order;
    a Bidirectional layer's weights are its forward layer's, then its backward layer's."""
    out = [(spec.embedding_name, [("embeddings", (spec.num_words, spec.embedding_dim))])]
    width = spec.embedding_dim
    for r in spec.recurrent:
        two_biases = r.cell == "GRU" and r.reset_after  # input and recurrent bias
        cell = [("kernel", (width, r.gates * r.units)), ("recurrent_kernel", (r.units, r.gates * r.units)),
                ("bias", (2, r.gates * r.units) if two_biases else (r.gates * r.units,))]
        out.append((r.name, [(f"{d}/{w}", s) for d in ("forward", "backward") for w, s in cell] if r.bidirectional else cell))
        width = r.width
    for d in spec.dense:
        out.append((d.name, [("kernel", (width, d.units)), ("bias", (d.units,))]))
        width = d.units
    return out


def parameter_count(spec: ModelSpec) -> int:
    return sum(math.prod(shape) for _, weights in weight_shapes(spec) for _, shape in weights)


def show_value(value: Any, limit: int = 60) -> str:
    """A value for a one-line message: printable, short."""
    scalar = isinstance(value, (bool, int, float, type(None)))
    text = value if isinstance(value, str) else repr(value) if scalar else json.dumps(value, default=str)
    text = "".join(c if c.isprintable() else "?" for c in text)
    return repr(text[:limit] + ("..." if len(text) > limit else "")) if isinstance(value, str) else text[:limit]
