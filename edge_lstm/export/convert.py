"""Stage 1 of export: the float tf-keras model to float TFLite and float ONNX.

TFLite is converted from a fixed-batch (1, max_len) concrete function, which is what gives the
fused ``UNIDIRECTIONAL_SEQUENCE_LSTM`` op (docs/decisions/tf-keras-fixed-batch.md); ONNX keeps a dynamic batch.
"""

from __future__ import annotations

from typing import Any

INPUT_NAME = "token_ids"
ONNX_OPSET = 17


class ConversionError(Exception):
    """A converter failed or produced a model we will not ship."""


def _signature(max_len: int, batch: int | None) -> Any:
    import tensorflow as tf

    return [tf.TensorSpec([batch, max_len], tf.int32, name=INPUT_NAME)]


def _inference_function(model: Any) -> Any:
    """The model's probabilities (a logit head through the sigmoid, as the device reads them)."""
    import tensorflow as tf

    from edge_lstm.evaluate.backends import head_is_logits

    if head_is_logits(model):
        return tf.function(lambda token_ids: tf.sigmoid(model(token_ids, training=False)))
    return tf.function(lambda token_ids: model(token_ids, training=False))


def tflite_converter(model: Any, max_len: int) -> Any:
    """A TFLite converter for batch 1, builtin ops only (no Flex / Select TF ops)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [_inference_function(model).get_concrete_function(*_signature(max_len, 1))], model
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter


def run_converter(converter: Any) -> bytes:
    try:
        return converter.convert()
    except (ValueError, RuntimeError) as err:  # the converter's own error types
        raise ConversionError(f"TFLite conversion failed: {err}") from err


def to_tflite_float(model: Any, max_len: int) -> bytes:
    return run_converter(tflite_converter(model, max_len))


def to_onnx_float(model: Any, max_len: int) -> bytes:
    """Float ONNX with a dynamic batch, through tf2onnx (a real ``LSTM`` node)."""
    import tf2onnx

    try:
        proto, _ = tf2onnx.convert.from_function(
            _inference_function(model), input_signature=_signature(max_len, None), opset=ONNX_OPSET
        )
    except (ValueError, RuntimeError, KeyError) as err:
        raise ConversionError(f"ONNX conversion failed: {err}") from err
    return canonical_names(proto).SerializeToString()


def canonical_names(model: Any) -> Any:
    """Rename nodes and inner tensors by position: tf2onnx's names vary from run to run, and
    the same model should always export to the same bytes (and sha256)."""
    graph = model.graph
    keep = {v.name for v in graph.input} | {v.name for v in graph.output}
    names: dict[str, str] = {}

    def rename(name: str) -> str:
        if not name or name in keep:
            return name
        return names.setdefault(name, f"t{len(names)}")

    for index, node in enumerate(graph.node):
        node.input[:] = [rename(n) for n in node.input]
        node.output[:] = [rename(n) for n in node.output]
        node.name = f"{node.op_type}_{index}"
    for initializer in graph.initializer:
        initializer.name = rename(initializer.name)
    ordered = sorted(graph.initializer, key=lambda t: int(t.name[1:]) if t.name[1:].isdigit() else -1)
    graph.ClearField("initializer")
    graph.initializer.extend(ordered)
    for info in graph.value_info:
        info.name = rename(info.name)
    return model
