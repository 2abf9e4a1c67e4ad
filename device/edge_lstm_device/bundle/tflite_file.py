"""A TFLite file's structure checked before an interpreter reads it.

The Python interpreters build a model with ``FlatBufferModel::BuildFromBuffer``, which runs no
flatbuffer verifier: an offset or a vector length changed by one byte makes the interpreter read
past the file, and whether that read crashes depends on the process's memory layout (a child
process can load the file and the caller then crash on it). This walks every table, vector and
string the interpreter reads (``tensorflow/lite/schema/schema.fbs``) and refuses a file in which
one lies outside it, as flatbuffers' own verifier would. Sparse tensors, quantization details,
StableHLO operators and external buffers (which the exporter never writes) are refused, not walked.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

_U16, _U32, _I32 = struct.Struct("<H"), struct.Struct("<I"), struct.Struct("<i")


class TFLiteFileError(ValueError):
    """The file is not a well-formed TFLite flatbuffer."""


@dataclass(frozen=True)
class Vector:
    item_bytes: int  # 1, 4 or 8
    terminated: bool = False  # a string: its bytes and a zero


@dataclass(frozen=True)
class Tables:
    schema: str  # a vector of tables of this schema


@dataclass(frozen=True)
class Table:
    schema: str


@dataclass(frozen=True)
class Union:
    type_field: int  # the field that holds the union's type
    schemas: dict[int, str]  # type -> schema of the tables that have offsets to follow (others: fields only)


@dataclass(frozen=True)
class Refused:
    what: str


STRING = Vector(1, terminated=True)
# schema name -> {field index: what the field holds}; a field not listed is a scalar of at most 8 bytes
SCHEMAS: dict[str, dict[int, object]] = {
    "Model": {1: Tables("OperatorCode"), 2: Tables("SubGraph"), 3: STRING, 4: Tables("Buffer"), 5: Vector(4),
              6: Tables("Metadata"), 7: Tables("SignatureDef"), 8: Refused("external buffer groups"),
              9: Refused("external buffers")},
    "OperatorCode": {1: STRING},
    "SubGraph": {0: Tables("Tensor"), 1: Vector(4), 2: Vector(4), 3: Tables("Operator"), 4: STRING},
    "Tensor": {0: Vector(4), 3: STRING, 4: Table("QuantizationParameters"), 6: Refused("a sparse tensor"),
               7: Vector(4), 9: Tables("VariantSubType")},
    "QuantizationParameters": {0: Vector(4), 1: Vector(4), 2: Vector(4), 3: Vector(8),
                               5: Refused("custom or blockwise quantization")},
    "VariantSubType": {0: Vector(4)},
    "Operator": {1: Vector(4), 2: Vector(4), 4: Union(3, {3: "ConcatEmbeddingsOptions", 8: "FullyConnectedOptions",
                                                          17: "ReshapeOptions", 30: "SqueezeOptions",
                                                          111: "VarHandleOptions", 115: "BucketizeOptions"}),
                 5: Vector(1), 7: Vector(1), 8: Vector(4), 12: Refused("a StableHLO operator")},
    "ConcatEmbeddingsOptions": {1: Vector(4), 2: Vector(4)},
    "FullyConnectedOptions": {5: Vector(1)},
    "ReshapeOptions": {0: Vector(4)},
    "SqueezeOptions": {0: Vector(4)},
    "VarHandleOptions": {0: STRING, 1: STRING},
    "BucketizeOptions": {0: Vector(4)},
    "Buffer": {0: Vector(1)},
    "Metadata": {0: STRING},
    "SignatureDef": {0: Tables("TensorMap"), 1: Tables("TensorMap"), 2: STRING},
    "TensorMap": {0: STRING},
}
_BUFFER_OFFSET, _BUFFER_SIZE = 1, 2  # Buffer fields: data kept outside the flatbuffer, at this offset of the file


def verify_tflite(data: bytes) -> None:
    """Raise ``TFLiteFileError`` unless every table, vector and string of the model lies inside ``data``."""
    _Walk(bytes(data)).table(_Walk.root(data), "Model")


class _Walk:
    def __init__(self, data: bytes) -> None:
        self.data = data

    @staticmethod
    def root(data: bytes) -> int:
        if len(data) < 8:
            raise TFLiteFileError(f"not a TFLite file: {len(data)} bytes")
        return _U32.unpack_from(data, 0)[0]

    def need(self, pos: int, size: int, what: str, align: int = 1) -> None:
        if pos < 0 or size < 0 or pos + size > len(self.data) or pos % align:
            raise TFLiteFileError(f"not a well-formed TFLite file: its {what} at byte {pos:,} lies outside the file "
                                  "or is misaligned")

    def u32(self, pos: int, what: str) -> int:
        self.need(pos, 4, what)
        return _U32.unpack_from(self.data, pos)[0]

    def table(self, pos: int, schema: str) -> None:
        """The table at ``pos`` and everything it refers to, by ``SCHEMAS[schema]``."""
        self.need(pos, 4, f"{schema} table", 4)
        vtable = pos - _I32.unpack_from(self.data, pos)[0]
        self.need(vtable, 4, f"{schema} vtable", 2)
        vtable_bytes, table_bytes = _U16.unpack_from(self.data, vtable)[0], _U16.unpack_from(self.data, vtable + 2)[0]
        if vtable_bytes < 4 or vtable_bytes % 2 or table_bytes < 4:
            raise TFLiteFileError(f"not a well-formed TFLite file: a {schema} vtable of {vtable_bytes} bytes for a "
                                  f"table of {table_bytes}")
        self.need(vtable, vtable_bytes, f"{schema} vtable")
        self.need(pos, table_bytes, f"{schema} table")
        fields = {i: _U16.unpack_from(self.data, vtable + 4 + 2 * i)[0] for i in range((vtable_bytes - 4) // 2)}
        present = {i: pos + offset for i, offset in fields.items() if offset}
        if any(offset + 1 > table_bytes for offset in fields.values()):
            raise TFLiteFileError(f"not a well-formed TFLite file: a field of its {schema} table lies outside it")
        kinds = SCHEMAS.get(schema, {})
        for index, at in present.items():
            self.field(at, kinds.get(index), schema, present)
        if schema == "Buffer":
            self.external_buffer(present)

    def field(self, at: int, kind: object, schema: str, present: dict[int, int]) -> None:
        if kind is None:
            return  # a scalar inside the table (checked above)
        if isinstance(kind, Refused):
            raise TFLiteFileError(f"the model holds {kind.what}, which the device does not run")
        target = at + self.u32(at, f"{schema} offset")
        if isinstance(kind, Vector):
            self.vector(target, kind.item_bytes, schema, kind.terminated)
        elif isinstance(kind, Tables):
            for item in range(self.vector(target, 4, schema)):
                element = target + 4 + 4 * item
                self.table(element + self.u32(element, f"{kind.schema} offset"), kind.schema)
        elif isinstance(kind, Table):
            self.table(target, kind.schema)
        elif isinstance(kind, Union):
            kind_at = present.get(kind.type_field)
            union_type = self.data[kind_at] if kind_at is not None else 0
            self.table(target, kind.schemas.get(union_type, f"{schema} option {union_type}"))

    def vector(self, pos: int, item_bytes: int, schema: str, terminated: bool = False) -> int:
        """The length of the vector at ``pos``, once its items (and a string's zero) are inside the file."""
        length = self.u32(pos, f"{schema} vector length")
        self.need(pos, 4 + length * item_bytes + int(terminated), f"{schema} vector of {length:,} items", 4)
        return length

    def external_buffer(self, present: dict[int, int]) -> None:
        """A buffer kept outside the flatbuffer (models over 2 GB) must still lie inside the file."""
        if _BUFFER_OFFSET in present and _BUFFER_SIZE in present:
            self.need(present[_BUFFER_OFFSET], 8, "Buffer offset")
            self.need(present[_BUFFER_SIZE], 8, "Buffer size")
            offset = struct.unpack_from("<Q", self.data, present[_BUFFER_OFFSET])[0]
            size = struct.unpack_from("<Q", self.data, present[_BUFFER_SIZE])[0]
            if offset > 1:
                self.need(offset, size, "buffer kept outside the flatbuffer")
