"""Stage 1b of export: the recurrent layer (LSTM or GRU, ``cells``) as builtin ``WHILE`` loops of
plain ops, length-aware and batched.

TFLite's fused ``UNIDIRECTIONAL_SEQUENCE_LSTM`` runs in TFLite's own kernels and keeps state
between calls; XNNPACK has no LSTM op. Written as ``FULLY_CONNECTED`` + elementwise ops, every
step is XNNPACK's (docs/decisions/loop-form.md). The form, for ``(B, max_len)`` int32
ids (``B`` resizable, 1 as converted) giving ``(B, 1)`` probabilities:

* **length-aware**: the graph finds where each row's real ids start. From the zero state, the
  state after ``k`` pad steps is the same for every review, so it is read from a table the export
  computes in float64 from the model's own weights (:func:`pad_state_table`), and the loop runs
  over the real ids only, plus at most the loop block's remainder. In a masked model
  (``Embedding(mask_zero=True)``) a pad step leaves the state as it is: the table is the zero
  state, every pad step is held, and the loop ends at the last real id (post-padding costs nothing);
* **batched**: rows start at different steps; a first loop (the ramp) holds each row's state
  until its own start, then one loop runs all rows. A row's result does not depend on its batch
  mates: its start state, its steps and the per-row quantization of dynamic-range kernels are its own;
* the input projection ``x·W + b`` of the steps the loop runs is one ``FULLY_CONNECTED`` before it;
* the loop body runs ``STEPS_PER_ITERATION`` steps, its inputs taken apart with ``UNPACK``
  (a ``STRIDED_SLICE`` of a 3-d block per step halves XNNPACK's speed, docs/loop_variants.md);
* weights per tensor: per-channel ``FULLY_CONNECTED`` is version 12, which tflite-runtime 2.14
  cannot load, and agreed less with the float model.

Stacked and Bidirectional layers (:func:`stacked_function`) run each direction as its own loop
over the window (a backward one in reverse), keeping the outputs a next layer reads; a masked
model's pad steps are held there too. Dense hidden layers and the head follow (a logit head
through the sigmoid). The graph keeps no state between ``invoke()`` calls.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np

from edge_lstm.export.convert import INPUT_NAME, ConversionError, run_converter
from edge_lstm.export.loop_model import (  # noqa: F401 (LoopModel and pad_state_table: this module's public names too)
    PAD_ID,
    DenseLayer,
    LoopForm,
    LoopModel,
    pad_state_table,
    steps_per_iteration,
    whole_blocks,
)

LOOP_SCHEMES = {
    "dynamic-range": "int8 weights (per tensor), float activations",
    "dynamic-range-per-channel": "int8 weights (per output channel), float activations",
    "full-integer": "int8 weights and activations (calibrated)",
    "float": "float32",
}


def loop_function(m: LoopModel, max_len: int, form: LoopForm = LoopForm()) -> Any:
    """A ``tf.function`` over ``(B, max_len)`` int32 ids giving positive probabilities ``(B, 1)``:
    the single forward layer's fast path (the pad-state table, rows started one by one), else
    :func:`stacked_function`."""
    return _single_layer_function(m, max_len, form) if m.single else stacked_function(m, max_len, form)


def _padded_ids(token_ids: Any, max_len: int, padded_len: int) -> tuple[int, Any, Any, Any]:
    """``(lead, ids, real, position)``: the ids pre-padded to whole blocks (``lead`` pad ids in
    front, never a step of the model), where they are real ids, and their positions."""
    import tensorflow as tf

    lead = padded_len - max_len
    ids = tf.pad(token_ids, [[0, 0], [lead, 0]]) if lead else token_ids
    real = tf.not_equal(ids, PAD_ID)
    position = tf.range(padded_len)
    return lead, ids, real, position


def block_steps(block_tensor: Any) -> list[Any]:
    """A block's steps, taken apart with one ``UNPACK`` (a ``STRIDED_SLICE`` per step halves
    XNNPACK's speed). The one hook ``scripts/loop_variants.py`` replaces, to measure that."""
    import tensorflow as tf

    return tf.unstack(block_tensor, axis=0)


def _held_runner(cell_step: Callable, block: int) -> Callable:
    """One forward direction's loop over blocks of ``block`` steps: ``run(inputs, active, first,
    stop, base, state, hold)`` runs blocks ``first`` to ``stop`` of ``inputs`` (indexed from
    ``base``); with ``hold``, a row's state changes only at its active steps."""
    import tensorflow as tf

    def run(inputs: Any, active: Any, first: Any, stop: Any, base: Any, state: tuple, hold: bool) -> tuple:
        def body(i: Any, *state: Any) -> tuple:
            x = tf.gather(inputs, i - base)
            keep = block_steps(tf.gather(active, i)) if hold else [None] * block
            for x_t, keep_t in zip(block_steps(x), keep):
                following = cell_step(x_t, state)
                state = tuple(tf.where(keep_t, a, b) for a, b in zip(following, state)) if hold else following
            return (i + 1, *state)

        return tuple(tf.while_loop(lambda i, *state: i < stop, body, (first, *state))[1:])

    return run


def _single_layer_function(m: LoopModel, max_len: int, form: LoopForm) -> Any:
    """One forward layer: each row starts from the pad-state table's row for its leading pads; a
    ramp loop holds rows until their own start, then one loop runs them all."""
    import tensorflow as tf

    block = form.steps_per_iteration
    padded_len = whole_blocks(max_len, block)  # the graph pre-pads the input to whole blocks
    blocks = padded_len // block
    table = pad_state_table(m, padded_len)
    kernel, bias = (tf.constant(a) for a in m.cell.projection())
    embedding = tf.constant(m.embedding)
    tables = [tf.constant(t) for t in table.states]  # read with GATHER_ND: the converter quantizes a GATHER's table
    run = _held_runner(m.cell.tf_step(), block)
    head = dense_stack(m.dense)

    @tf.function(input_signature=[tf.TensorSpec([None, max_len], tf.int32, name=INPUT_NAME)])
    def score(token_ids: Any) -> Any:
        lead, ids, real, position = _padded_ids(token_ids, max_len, padded_len)
        start = tf.reduce_min(tf.where(real, position[None, :], padded_len), axis=1)  # (B,): padded_len if none
        start_block = start // block
        row_start = tf.maximum(start_block * block, lead)  # the first step each row runs
        row_state = tf.minimum(row_start - lead, table.rows - 1)[:, None]  # pad steps before it
        state = tuple(tf.gather_nd(t, row_state) for t in tables)
        end, active = _end_and_active(m.masked, real, position, row_start, padded_len)
        first = tf.minimum(tf.reduce_min(start_block), blocks - 1)  # at least one block: no empty tensors
        main = tf.maximum(first, tf.minimum(tf.reduce_max(start_block), blocks))
        if lead:  # the added pads are held in the ramp
            main = tf.maximum(main, 1)
        stop = tf.maximum(main, (end + block - 1) // block)
        inputs = _projected_window(ids, first, stop, block, embedding, kernel, bias)
        active = tf.reshape(tf.transpose(active), [blocks, block, -1, 1])
        state = run(inputs, active, first, main, first, state, hold=True)  # the ramp: rows start one by one
        state = run(inputs, active, main, stop, first, state, hold=m.masked)
        return head(state[0])

    return score


def _end_and_active(masked: bool, real: Any, position: Any, row_start: Any, padded_len: int) -> tuple[Any, Any]:
    """Where the loop may end, and which steps change a row's state: a masked model's real ids
    (the loop ends at the last one), else every step from the row's start."""
    import tensorflow as tf

    if masked:
        return tf.reduce_max(tf.where(real, position[None, :] + 1, 0)), real
    return tf.constant(padded_len), position[None, :] >= row_start[:, None]


def _projected_window(ids: Any, first: Any, stop: Any, block: int, embedding: Any, kernel: Any, bias: Any) -> Any:
    """The embedded ids of blocks ``first`` to ``stop``, time-major, through the input projection
    ``x·W + b`` (one matmul), as ``(blocks, block, B, width)``."""
    import tensorflow as tf

    time_major = tf.transpose(ids)[first * block : stop * block]  # (steps, B): the window the loops run
    inputs = tf.matmul(tf.gather(embedding, tf.reshape(time_major, [-1])), kernel) + bias
    return tf.reshape(inputs, [stop - first, block, tf.shape(ids)[0], int(kernel.shape[1])])


def dense_stack(layers: tuple[DenseLayer, ...]) -> Callable[[Any], Any]:
    """The Dense layers on the recurrent output; the head gives probabilities (a logit's sigmoid)."""
    import tensorflow as tf

    activations = {"relu": tf.nn.relu, "tanh": tf.tanh, "gelu": lambda x: tf.nn.gelu(x, approximate=False),
                   "linear": tf.identity, "sigmoid": tf.sigmoid, "softmax": tf.nn.softmax}
    constants = [(tf.constant(d.kernel), tf.constant(d.bias), activations[d.activation]) for d in layers]

    def apply(x: Any) -> Any:
        for kernel, bias, activation in constants:
            x = activation(tf.matmul(x, kernel) + bias)
        return tf.sigmoid(x) if layers[-1].activation == "linear" else x  # a logit head: the device reads probabilities

    return apply


def merge(mode: str, forward: Any, backward: Any) -> Any:
    """A Bidirectional layer's two outputs, as Keras merges them."""
    import tensorflow as tf

    merges = {"concat": lambda: tf.concat([forward, backward], axis=-1), "sum": lambda: forward + backward,
              "ave": lambda: (forward + backward) / 2.0, "mul": lambda: forward * backward}
    return merges[mode]()


def direction_runner(step: Callable, block: int) -> Callable:
    """Any cell's loop in one direction: ``run(inputs, active, first, stop, state, backward,
    collect)`` runs blocks ``first`` to ``stop`` (a backward one in reverse) and gives its last
    state, and its outputs (``(stop - first, block, B, units)``, in time order) when ``collect``.
    Steps are held where ``active`` is false (``active`` None: every step runs)."""
    import tensorflow as tf

    def run(inputs: Any, active: Any, first: Any, stop: Any, state: tuple, backward: bool,
            collect: bool) -> tuple[tuple, Any]:
        from tensorflow.compiler.tf2xla.python import xla  # DYNAMIC_UPDATE_SLICE: a block's outputs in place

        outputs = tf.zeros(tf.stack([stop - first, block, tf.shape(state[0])[0], state[0].shape[-1]])) if collect else None

        def body(i: Any, *carried: Any) -> tuple:
            state, buffer = carried[: len(carried) - collect], carried[len(carried) - collect :]
            index = stop - 1 - (i - first) if backward else i
            xs = tf.unstack(tf.gather(inputs, index - first))
            keep = tf.unstack(tf.gather(active, index)) if active is not None else None
            seen = [None] * block
            for j in (reversed(range(block)) if backward else range(block)):
                state = step(xs[j], state) if keep is None else tuple(
                    tf.where(keep[j], a, b) for a, b in zip(step(xs[j], state), state))
                seen[j] = state[0]
            if collect:
                buffer = (xla.dynamic_update_slice(buffer[0], tf.stack(seen)[None], tf.stack([index - first, 0, 0, 0])),)
            return (i + 1, *state, *buffer)

        loop = tf.while_loop(lambda i, *c: i < stop, body, (first, *state, *([outputs] if collect else [])))
        return tuple(loop[1 : 1 + len(state)]), (loop[-1] if collect else None)

    return run


def recurrent_layer(layer: Any, directions: list[tuple], run: list[Callable], x: Any, rows: Any, active: Any,
                    first: Any, stop: Any, block: int) -> tuple[Any, bool]:
    """One recurrent layer over the window ``x`` (``(steps, rows, width)``): each direction projected
    and run, a Bidirectional pair merged as Keras merges it. ``(output, is_sequence)``: the
    sequence a next layer reads, or the last state."""
    import tensorflow as tf

    finals, sequences = [], []
    for direction, (cell, kernel, bias, step) in enumerate(directions):
        inputs = tf.reshape(tf.matmul(tf.reshape(x, [-1, kernel.shape[0]]), kernel) + bias,
                            [stop - first, block, rows, kernel.shape[1]])
        zero = tuple(tf.zeros([rows, cell.units]) for _ in range(cell.states))
        state, outputs = run[direction](inputs, active, first, stop, zero, bool(direction), layer.return_sequences)
        finals.append(state[0])
        sequences.append(outputs)
    two = len(directions) == 2
    if layer.return_sequences:
        return tf.reshape(merge(layer.merge_mode, *sequences) if two else sequences[0], [(stop - first) * block, rows, -1]), True
    return (merge(layer.merge_mode, *finals) if two else finals[0]), False


def stacked_function(m: LoopModel, max_len: int, form: LoopForm = LoopForm()) -> Any:
    """Stacked and Bidirectional layers: each direction a loop over the window, in its order, its
    outputs kept for the next layer. Pad ids are held in a masked model (the window is the real
    ids'); an unmasked model runs every step, as Keras does (a backward pass reads the pads last)."""
    import tensorflow as tf

    block = steps_per_iteration(m, form)
    padded_len = whole_blocks(max_len, block)
    blocks = padded_len // block
    embedding = tf.constant(m.embedding)
    head = dense_stack(m.dense)
    layers = [[(cell, *(tf.constant(a) for a in cell.projection()), cell.tf_step()) for cell in layer.cells]
              for layer in m.layers]
    runners = [[direction_runner(step, block) for *_, step in directions] for directions in layers]

    @tf.function(input_signature=[tf.TensorSpec([None, max_len], tf.int32, name=INPUT_NAME)])
    def score(token_ids: Any) -> Any:
        lead, ids, real, position = _padded_ids(token_ids, max_len, padded_len)
        rows = tf.shape(ids)[0]
        first, stop, active = _stacked_window(m.masked, ids, real, position, lead, padded_len, block)
        active = tf.reshape(tf.transpose(active), [blocks, block, -1, 1]) if active is not None else None
        x = tf.gather(embedding, tf.transpose(ids)[first * block : stop * block])  # (steps, B, embedding_dim)
        for layer, directions, run in zip(m.layers, layers, runners):
            x, is_sequence = recurrent_layer(layer, directions, run, x, rows, active, first, stop, block)
            if not is_sequence:
                return head(x)
        raise ConversionError("the last recurrent layer returns sequences")

    return score


def _stacked_window(masked: bool, ids: Any, real: Any, position: Any, lead: int, padded_len: int,
                    block: int) -> tuple[Any, Any, Any]:
    """``(first, stop, active)``: the blocks every layer runs, and the steps that change a state
    (a masked model: its real ids' window and ids; else every block, every step but added pads)."""
    import tensorflow as tf

    blocks = padded_len // block
    if masked:
        start = tf.reduce_min(tf.where(real, position[None, :], padded_len))
        end = tf.reduce_max(tf.where(real, position[None, :] + 1, 0))
        first = tf.minimum(start // block, blocks - 1)
        stop = tf.maximum(first + 1, (end + block - 1) // block)
        return first, stop, real
    first, stop = tf.constant(0), tf.constant(blocks)
    active = tf.broadcast_to(position[None, :] >= lead, tf.shape(ids)) if lead else None  # every step is real
    return first, stop, active


def describe(model: Any, max_len: int, form: LoopForm = LoopForm()) -> dict:
    """The manifest's record of a loop-form file: how the loop runs and how the pad-state table was made."""
    loop_model = LoopModel.from_model(model)
    steps = steps_per_iteration(loop_model, form)
    padded_len = whole_blocks(max_len, steps)
    record = {**form.describe(), "steps_per_iteration": steps, "cell": loop_model.cell.kind, "masked": loop_model.masked,
              "layers": [{"cells": [c.kind for c in layer.cells], "merge_mode": layer.merge_mode if len(layer.cells) > 1 else None}
                         for layer in loop_model.layers]}
    if loop_model.single:
        return {**record, "pad_state_table": pad_state_table(loop_model, padded_len).describe()}
    skipping = "pad ids are held; the loops run the real ids' window" if loop_model.masked else "every step runs, as in Keras"
    return {**record, "length_aware": loop_model.masked, "pads": skipping}


def to_tflite_loop(
    model: Any, max_len: int, scheme: str, calibration: Callable[[], Iterable[np.ndarray]],
    form: LoopForm = LoopForm(),
) -> bytes:
    """The loop form as TFLite, quantized by ``scheme`` (a key of ``LOOP_SCHEMES``)."""
    if scheme not in LOOP_SCHEMES:
        raise ConversionError(f"unknown loop scheme {scheme!r}")
    return convert_loop(loop_function(LoopModel.from_model(model), max_len, form), scheme, calibration)


def convert_loop(function: Any, scheme: str, calibration: Callable[[], Iterable[np.ndarray]]) -> bytes:
    """A loop function (:func:`loop_function`, :func:`stacked_function`) as TFLite, quantized by ``scheme``."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], function)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if scheme != "float":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if scheme == "dynamic-range":
        converter._experimental_disable_per_channel = True  # noqa: SLF001 (the converter's only switch)
    if scheme == "full-integer":
        converter.representative_dataset = lambda: ([row[None, :]] for row in calibration())
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_output_type = tf.int8
    return run_converter(converter)
