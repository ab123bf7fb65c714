"""Keras 3 models in tfkd: rebuilt as tf_keras models (config and weights), which TF-MOT can wrap.

tfkd never imports Keras 3 to convert: it reads the model it is given (its graph, layer configs and
weights) and builds the same graph with `tfkd.keras` (tf_keras). Layers are translated in
`tfkd.keras3.layers`, activations tf_keras lacks are written out in `tfkd.keras3.activations`, and
the operator nodes Keras 3 records for `keras.ops` calls (`x + 3.0`) are translated in
`tfkd.keras3.ops`.
"""

import warnings
from typing import Any

from tfkd._keras import import_keras3, is_keras3_model, is_keras_model, keras, tf
from tfkd.keras3 import layers as k3layers
from tfkd.keras3 import ops as k3ops

__all__ = ["from_keras3", "convert_keras3_argument", "check_model"]


def from_keras3(model: Any) -> keras.Model:
    """Rebuilds a Keras 3 Sequential or Functional model as a tf_keras model with the same weights.

    tfkd trains tf_keras (Keras 2) models, the kind TF-MOT's pruning, quantization and clustering
    wrap. This reads the Keras 3 model's graph and layer configs, builds the same graph with
    `tfkd.keras`, and copies every layer's weights (matched by name, so BatchNormalization and
    Normalization statistics land in the right variables). The Keras 3 model is not changed.

    Converted: the common built-in layers (Dense, convolutions incl. depthwise and separable,
    Batch/Layer normalization, pooling, padding, Dropout, Flatten, Reshape, activation layers, merge
    layers, Embedding, Rescaling, Normalization, ...), nested Functional/Sequential models, Keras 3
    activations tf_keras lacks (`hard_silu`, `relu6`, ... written out with Keras 3's formulas) and
    the operator nodes Keras 3 records for `keras.ops` calls on symbolic tensors (`x + 3.0`,
    `x * (1 / 6)`, `ops.mean`, `x[:, 0]`, ...), which become tf_keras `TFOpLambda` layers.

    Args:
        model: A Keras 3 `keras.Sequential` (built, i.e. with a known input shape) or Functional
            `keras.Model`.

    Returns:
        A new `tfkd.keras.Model` (a `tfkd.keras.Sequential` for a Sequential input) with the same
        name, layer names and weights, giving the same outputs. Inputs keep their shapes and dtypes
        with a free batch size.

    Raises:
        TypeError: If `model` is not a Keras 3 model, or is a subclassed one (the message gives the
            Functional fix).
        ValueError: If a layer, activation or operation cannot be converted (the message names it
            and its class), or a Sequential model is not built.

    Example:
    >>> k3 = keras.applications.MobileNetV3Small(input_shape=(64, 64, 3), weights=None,
    ...                                          classifier_activation=None)  # Keras 3
    >>> student = tfkd.from_keras3(k3)  # a tf_keras model: prune, quantize, distill, export
    """
    if not is_keras3_model(model):
        hint = (
            " It is already a tf_keras model: pass it to tfkd directly."
            if is_keras_model(model)
            else ""
        )
        raise TypeError(
            f"`model` must be a Keras 3 model (`keras.Model`). "
            f"Received: model={model!r} (of type {type(model).__name__}).{hint}"
        )
    pairs: list[Any] = []
    converted = _convert_model(model, pairs)
    for source, target in pairs:
        k3layers.copy_weights(source, target)
    return converted


def check_model(name, obj):
    """Returns `obj` if it is a tf_keras model, converts a Keras 3 model, refuses anything else.

    A Keras 3 model is converted with `from_keras3`, with one warning saying so (see
    `convert_keras3_argument`).

    Args:
        name: The argument's name (e.g. `"student"`), used in messages.
        obj: What the user passed.

    Returns:
        A `tfkd.keras.Model`: `obj` itself, or its tf_keras conversion.

    Raises:
        TypeError: If `obj` is neither a tf_keras nor a Keras 3 model.
    """
    if is_keras_model(obj):
        return obj
    if is_keras3_model(obj):
        return convert_keras3_argument(name, obj)
    raise TypeError(
        f"`{name}` must be a Keras model (a `tfkd.keras.Model`). "
        f"Received: {name}={obj!r} (of type {type(obj).__name__}). "
        "Build it with `tfkd.keras` (tf_keras), e.g. `tfkd.keras.Sequential([...])`."
    )


def convert_keras3_argument(name, model):
    """Converts a Keras 3 model passed to a tfkd function (via `check_model`), saying so once.

    Args:
        name: The argument's name (e.g. `"student"`), used in the message.
        model: The Keras 3 model.

    Returns:
        The converted tf_keras model (see `from_keras3`).
    """
    converted = from_keras3(model)
    warnings.warn(
        f"`{name}` is a Keras 3 model ({type(model).__name__} {model.name!r}); tfkd converted it "
        "to a tf_keras model (the Keras TF-MOT needs) with the same weights, and works on that "
        "copy: the Keras 3 model is left unchanged. To convert explicitly (and keep a handle on "
        f"the copy, silencing this message), call `{name} = tfkd.from_keras3({name})` first.",
        UserWarning,
        stacklevel=3,
    )
    return converted


def _convert_model(model, pairs):
    keras3 = import_keras3()  # already imported: `model` is a Keras 3 model
    functional = keras3.src.models.functional.Functional
    if isinstance(model, keras3.Sequential) and type(model).call is keras3.Sequential.call:
        return _convert_sequential(model, pairs)
    if isinstance(model, functional) and type(model).call is functional.call:
        return _convert_functional(model, pairs)
    raise TypeError(
        f"`model` is a subclassed Keras 3 model (class {type(model).__name__}, name "
        f"{model.name!r}): its layers are wired by Python code in `call`, which tfkd cannot read. "
        f"Received: model={type(model).__name__}(name={model.name!r}). Build it with the "
        "Functional API instead: `inputs = keras.Input(shape=...)`, "
        "`outputs = ...layers...(inputs)`, "
        "`model = keras.Model(inputs, outputs)` (the same layers, so weights carry over with "
        "`set_weights`), then call `tfkd.from_keras3(model)`; or build it with `tfkd.keras`."
    )


def _convert_sequential(model, pairs):
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs or getattr(model, "_functional", None) is None:
        raise ValueError(
            f"The Keras 3 Sequential model {model.name!r} is not built, so its input shape is "
            f"unknown. Received: model={type(model).__name__}(name={model.name!r}, built=False). "
            "Start it with `keras.Input(shape=...)` or call `model.build(input_shape)` first."
        )
    source = inputs[0]
    layers = [
        keras.Input(shape=tuple(source.shape)[1:], dtype=source.dtype, name=_input_name(source))
    ]
    for layer in model.layers:
        layers.append(_convert_operation(layer, pairs))
    converted = keras.Sequential(layers, name=model.name)
    if not model.trainable:  # setting True would also unfreeze the layers frozen one by one
        converted.trainable = False
    return converted


def _input_name(tensor):
    return tensor._keras_history.operation.name


def _convert_operation(operation, pairs):
    """A tf_keras layer (or model) for a Keras 3 layer or nested model; records it for weights."""
    if is_keras3_model(operation):
        return _convert_model(operation, pairs)
    layer = k3layers.translate_layer(operation)
    pairs.append((operation, layer))
    return layer


def _convert_functional(model, pairs):
    tensors = {}
    for source in model.inputs:
        tensors[id(source)] = keras.Input(
            shape=tuple(source.shape)[1:], dtype=source.dtype, name=_input_name(source)
        )
    layers = {}
    nodes_by_depth = model._nodes_by_depth
    for depth in sorted(nodes_by_depth, reverse=True):
        for node in nodes_by_depth[depth]:
            if not node.operation or node.is_input:
                continue
            args, kwargs = node.arguments.fill_in(tensors)
            operation = node.operation
            if k3ops.is_operation_node(operation):
                outputs = k3ops.apply_operation(operation, args, kwargs)
            else:
                if id(operation) not in layers:
                    layers[id(operation)] = _convert_operation(operation, pairs)
                outputs = layers[id(operation)](*args, **kwargs)
            for source, target in zip(node.outputs, tf.nest.flatten(outputs), strict=True):
                tensors[id(source)] = target
    inputs = tf.nest.map_structure(lambda x: tensors[id(x)], model._inputs_struct)
    outputs = tf.nest.map_structure(lambda x: tensors[id(x)], model._outputs_struct)
    converted = keras.Model(inputs, outputs, name=model.name)
    if not model.trainable:  # setting True would also unfreeze the layers frozen one by one
        converted.trainable = False
    return converted
