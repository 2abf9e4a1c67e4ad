"""``edge-lstm import`` as a function: a model trained elsewhere becomes a bundle, proven equal to
the original before anything is written. The command parses options and prints; scripts call
:func:`import_model`. Errors: ``ImportModelError`` (``ImportUsageError`` for impossible options).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from edge_lstm.importing.errors import ImportModelError, ImportUsageError

__all__ = ["ImportModelError", "ImportRequest", "ImportResult", "ImportUsageError", "import_model"]


@dataclass(frozen=True)
class ImportRequest:
    model_path: Path
    out: Path
    word_index: Path | None = None  # the Keras IMDB word index the model was trained with
    tokenizer_path: Path | None = None  # or an edge-lstm tokenizer.json
    max_len: int | None = None  # tokens per review, for a model that leaves its input length open
    labels: str | None = None  # a softmax head's class names: "a,b,c" or "@FILE"
    force: bool = False  # replace a bundle already in ``out``


@dataclass
class ImportResult:
    bundle: Path
    files: list[str]
    record: dict  # import.json: the source, architecture, tokenizer and the equivalence proof

    @property
    def max_diff(self) -> float:
        return self.record["equivalence"]["max_abs_diff"]

    def to_dict(self) -> dict:
        return {"bundle": str(self.bundle), "files": self.files, **self.record}


def import_model(request: ImportRequest, log: Callable[[str], None] = lambda _: None) -> ImportResult:
    """Read the model as data, rebuild it in tf-keras, prove it equal, write the bundle."""
    from edge_lstm.importing.equivalence import prove_equal
    from edge_lstm.importing.inputs import check_out, named, read_model, read_tokenizer
    from edge_lstm.importing.modelfile import build_model
    from edge_lstm.importing.writing import import_record, write_bundle

    check_out(request.out, request.force)
    # the --tokenizer file gives the length of a model that leaves it open, and is read once
    loaded = read_tokenizer(request.tokenizer_path) if request.tokenizer_path and request.max_len is None else None
    model_file = named(read_model(request.model_path, request.max_len if loaded is None else loaded.max_len), request.labels)
    spec = model_file.spec
    log(f"{request.model_path.name}: {spec.description}, {spec.architecture}, {spec.max_len} tokens; read as data")
    tok_kind, tok_path, tokenizer = _tokenizer(request, model_file, loaded)
    model = build_model(model_file)
    loader, max_diff, rows = prove_equal(request.model_path, spec, model, tokenizer, log)
    record = import_record(request.model_path, spec, tok_kind, tok_path, tokenizer, loader, max_diff, rows)
    return ImportResult(request.out, write_bundle(request.out, model, model_file, tokenizer, record), record)


def _tokenizer(request: ImportRequest, model_file: Any, loaded: Any) -> tuple[str, Path, Any]:
    """(kind, file, tokenizer): the model's own TextVectorization, else the ids it was trained on
    (``loaded``: the --tokenizer file, if read already)."""
    from edge_lstm.importing.inputs import tokenizer_for, tokenizer_source, vectorizer_tokenizer

    if model_file.spec.vectorizer:
        if request.word_index or request.tokenizer_path:
            raise ImportUsageError("the model tokenizes with its own TextVectorization layer: "
                                   "drop --word-index and --tokenizer")
        return "text-vectorization", request.model_path, vectorizer_tokenizer(model_file)
    kind, path = tokenizer_source(request.word_index, request.tokenizer_path)
    return kind, path, tokenizer_for(kind, path, model_file.spec, loaded)
