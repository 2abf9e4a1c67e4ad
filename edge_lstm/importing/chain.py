"""The chain of layers of a model file's config, read as data: a Sequential, or a Functional
model that is a single-input chain, every layer built-in and free of code (lambdas, functions,
custom or nested classes are refused, never run)."""

from __future__ import annotations

from typing import Any

from edge_lstm.importing.layer_options import SUPPORTED_ARCHITECTURE
from edge_lstm.importing.spec import ModelFileError
from edge_lstm.importing.spec import show_value as _show

_CODE_CLASSES = {"Lambda", "__lambda__", "function", "TFOpLambda", "SlicingOpLambda"}
_SUBMODEL_CLASSES = {"Sequential", "Functional", "Model"}


def chain_layers(config: dict) -> list[dict]:
    """The layers of a Sequential, or of a Functional model that is a single-input chain, each
    checked to be built-in and free of code."""
    name = config.get("class_name")
    if name not in ("Sequential", "Functional", "Model") or not _keras_module(config.get("module")) \
            or config.get("registered_name") not in (None, name):
        raise ModelFileError(f"the model is a {_show(name)}, not a Keras Sequential or Functional model; "
                             f"supported: {SUPPORTED_ARCHITECTURE}")
    inner = config.get("config")
    layers = inner if isinstance(inner, list) else inner.get("layers") if isinstance(inner, dict) else None
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        raise ModelFileError(f"the {name} config has no list of layers")
    if any(layer.get("class_name") in _CODE_CLASSES for layer in layers):
        raise ModelFileError(wrong_layers(layers))
    for layer in layers:
        if not isinstance(layer.get("config"), dict):
            raise ModelFileError(f"layer {_layer_label(layer)} has no config")
        _check_builtin(layer)
        _scan_objects(layer["config"], f"the {layer['class_name']} layer")
    if name != "Sequential":
        _check_chain(inner, layers)
    return layers


def _check_chain(inner: dict, layers: list[dict]) -> None:
    """Each layer's only input is the layer before it; the model's one output is the last layer."""
    if not layers or layers[0].get("class_name") != "InputLayer":
        raise ModelFileError("a Functional model must start with its Input")
    for before, layer in zip(layers, layers[1:]):
        sources = _inbound(layer)
        if sources != [layer_name(before)]:
            raise ModelFileError(f"the {layer['class_name']} layer {_show(layer_name(layer))} takes "
                                 f"{', '.join(map(_show, sources)) or 'no input'}, not only the layer before it; "
                                 "only a single chain of layers is supported")
    outputs = inner.get("output_layers")
    if isinstance(outputs, list) and outputs and isinstance(outputs[0], str):
        outputs = [outputs]  # Keras 3 writes a single output as [name, 0, 0]
    names = [o[0] for o in outputs] if isinstance(outputs, list) and all(isinstance(o, list) and o for o in outputs) else None
    if names != [layer_name(layers[-1])]:
        raise ModelFileError(f"the model's outputs are {_show(outputs)}; supported: one output, the last layer")


def _inbound(layer: dict) -> list[str]:
    """Names of the layers whose outputs ``layer`` takes (Keras 3 and tf-keras config styles)."""
    nodes = layer.get("inbound_nodes")
    if not isinstance(nodes, list) or len(nodes) != 1:
        return [] if not nodes else ["(called more than once)"]
    node = nodes[0]
    if isinstance(node, dict):  # Keras 3: {"args": [keras tensors], "kwargs": {...}}
        kwargs = node.get("kwargs") or {}
        extra = [k for k, v in kwargs.items() if k not in ("mask", "training") and isinstance(v, dict)] \
            if isinstance(kwargs, dict) else ["kwargs"]
        if extra:
            return [f"(also {', '.join(map(str, extra))})"]
        args = node.get("args")
        return [a["config"]["keras_history"][0] for a in args if isinstance(a, dict) and "keras_history" in a.get("config", {})] \
            if isinstance(args, list) else []
    if isinstance(node, list):  # tf-keras: [[name, node index, tensor index, kwargs], ...]
        return [entry[0] for entry in node if isinstance(entry, list) and entry]
    return []


def layer_name(layer: dict) -> str:
    return str(layer.get("name") or layer["config"].get("name"))


def _check_builtin(layer: dict) -> None:
    name, module = layer.get("class_name"), layer.get("module")
    if not _keras_module(module) or layer.get("registered_name") not in (None, name):
        raise ModelFileError(f"the {name} layer is a custom class {_show(layer.get('registered_name') or name)} "
                             f"from module {_show(module)}; only built-in Keras layers are supported")


def _scan_objects(node: Any, where: str) -> None:
    """Refuse code (lambdas, functions) and any class from outside Keras, anywhere in a layer."""
    if isinstance(node, list):
        for item in node:
            _scan_objects(item, where)
        return
    if not isinstance(node, dict):
        return
    if "class_name" in node:
        name, module = node.get("class_name"), node.get("module")
        if name in _CODE_CLASSES:
            raise ModelFileError(f"{where} holds code ({_show(name)}), which is never run from a model file; "
                                 f"supported: {SUPPORTED_ARCHITECTURE}")
        if name != "__keras_tensor__" and (not _keras_module(module) or node.get("registered_name") not in (None, name)):
            raise ModelFileError(f"{where} uses the custom object {_show(node.get('registered_name') or name)} "
                                 f"from module {_show(module)}; only built-in Keras objects are supported")
        if name in _SUBMODEL_CLASSES:
            raise ModelFileError(f"{where} nests a {name} model; supported: {SUPPORTED_ARCHITECTURE}")
    for value in node.values():
        _scan_objects(value, where)


def _keras_module(module: Any) -> bool:
    return module is None or (isinstance(module, str) and (module == "keras" or module.startswith("keras.")))


def wrong_layers(layers: list[dict]) -> str:
    found = " -> ".join(_layer_label(layer) for layer in layers) or "no layers"
    if any(layer.get("class_name") in _CODE_CLASSES for layer in layers):
        return (f"unsupported model: {found}; a Lambda layer holds code, which is never run from a model file; "
                f"supported: {SUPPORTED_ARCHITECTURE}")
    return f"unsupported model: {found}; supported: {SUPPORTED_ARCHITECTURE}"


def _layer_label(layer: dict) -> str:
    name = layer.get("class_name")
    label = _show(name).strip("'") if isinstance(name, str) else _show(name)
    module = layer.get("module")
    return label if _keras_module(module) else f"{label} (module {_show(module)})"
