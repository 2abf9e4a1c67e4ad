"""The device's TFLite structure check (``bundle/tflite_file.py``) against the schema the
interpreter is built from: every field that holds an offset is followed (or refused), and each is
followed as what it is. Read from ai-edge-litert's generated ``schema_py_generated.py``."""

from __future__ import annotations

import functools
import importlib
import inspect
import re
from pathlib import Path

import pytest
from edge_lstm_device.bundle.tflite_file import (
    SCHEMAS,
    Refused,
    Table,
    Tables,
    Union,
    Vector,
)

OFFSET_FIELD = re.compile(r"self\._tab\.Offset\((\d+)\)\)\n(.*?)(?=\n    def |\Z)", re.DOTALL)


@pytest.fixture(scope="module")
def schema():
    return importlib.import_module("ai_edge_litert.schema_py_generated")


@functools.cache
def _classes(path: str) -> dict[str, str]:
    """Each generated class's source, by name (inspect.getsource parses the whole module per class)."""
    source = Path(path).read_text(encoding="utf-8")
    return {m.group(1): m.group(2) for m in re.finditer(r"\nclass (\w+)\(object\):(.*?)(?=\nclass |\Z)", source, re.DOTALL)}


def _offset_fields(cls: type) -> dict[int, str]:
    """Field index -> how the generated reader follows it (Vector, String, Indirect or Union)."""
    fields = {}
    for match in OFFSET_FIELD.finditer(_classes(inspect.getsourcefile(cls)).get(cls.__name__, "")):
        follows = re.search(r"\b(Vector|String|Indirect|Union)\(", match.group(2))
        if follows:
            fields[(int(match.group(1)) - 4) // 2] = follows.group(1)
    return fields


def _offset_tables(schema, enum: type) -> dict[int, str]:
    """The union's types whose tables hold offsets: type -> table name."""
    return {value: name for name, value in vars(enum).items()
            if not name.startswith("_") and value and _offset_fields(getattr(schema, name, type(None)))}


@pytest.mark.parametrize("name", sorted(n for n in SCHEMAS))
def test_every_offset_field_is_followed_as_what_it_is(schema, name: str) -> None:
    generated, ours = _offset_fields(getattr(schema, name)), SCHEMAS[name]
    assert set(generated) == set(ours), f"{name}: the schema's offset fields {generated}, ours {ours}"
    expected = {"String": (Vector, Refused), "Vector": (Vector, Tables, Refused), "Indirect": (Table, Refused),
                "Union": (Union, Refused)}
    for index, follows in generated.items():
        assert isinstance(ours[index], expected[follows]), f"{name} field {index}: {follows}, ours {ours[index]}"


def test_every_option_table_with_offsets_is_walked(schema) -> None:
    options = SCHEMAS["Operator"][4]
    assert options.type_field == 3 and options.schemas == _offset_tables(schema, schema.BuiltinOptions)
    assert isinstance(SCHEMAS["Operator"][12], Refused) and _offset_tables(schema, schema.BuiltinOptions2)
    assert isinstance(SCHEMAS["QuantizationParameters"][5], Refused) and _offset_tables(schema, schema.QuantizationDetails)
