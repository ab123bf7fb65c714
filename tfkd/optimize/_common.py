"""What the compression modules share: TF-MOT, model checks, layer selection and cloning."""

import numpy as np

from tfkd._keras import keras, tf
from tfkd.keras3 import check_model
from tfkd.optimize.wrappers import is_cluster_wrapper, is_quantize_wrapper, unwrap

_KERNEL_NAMES = ("kernel", "depthwise_kernel", "pointwise_kernel", "embeddings")


def tfmot():
    """TF-MOT, imported after `tfkd._keras` has chosen tf_keras (TF-MOT reads the same choice)."""
    import tensorflow_model_optimization as module

    return module


def is_graph_model(model):
    """Whether `model` is a Sequential or Functional tf_keras model (its layers can be tapped and
    cloned), not a subclassed one."""
    return isinstance(model, keras.Sequential) or getattr(model, "_is_graph_network", False)


def check_graph_model(name, model):
    """A Sequential or Functional tf_keras model (what TF-MOT clones); a clear error otherwise."""
    model = check_model(name, model)
    if is_graph_model(model):
        return model
    if hasattr(model, "student") and hasattr(model, "teacher"):
        raise ValueError(
            f"`{name}` must be the model to compress, not a distiller. Received: {name}="
            f"{type(model).__name__}(name={model.name!r}). Pass `distiller.student`."
        )
    raise ValueError(
        f"`{name}` must be a Sequential or Functional model: TF-MOT rebuilds models layer by layer "
        f"and cannot see inside a subclassed `call`. Received: {name}="
        f"{type(model).__name__}(name={model.name!r}). Rebuild it with the Functional API: "
        "`inputs = keras.Input(shape); outputs = ...; model = keras.Model(inputs, outputs)`."
    )


def kernels(layer):
    """The current values (numpy) of a layer's kernels, the weights pruning and clustering act on.

    Reads through wrappers: a clustering wrapper gives its clustered values, a QAT wrapper the float
    kernel it quantizes, a pruning wrapper the kernel itself.
    """
    if is_cluster_wrapper(layer) and layer.built:
        # What the next forward pass (and `strip`) computes: pruned zeros re-zeroed, indices fresh.
        layer.update_clustered_weights_associations()
        return [
            np.asarray(layer.get_weight_from_layer(name))
            for name in layer.original_clusterable_weights
        ]
    variables = unwrap(layer).weights
    if is_quantize_wrapper(layer) and layer._weight_vars:  # kernel replaced by the wrapper's
        variables = [weight for weight, _, _ in layer._weight_vars]
    return [
        np.asarray(v.numpy())
        for v in variables
        if is_kernel(v)
    ]


def is_kernel(variable):
    """Whether `variable` is a kernel pruning and clustering act on (not a bias or statistic)."""
    return variable.name.split("/")[-1].split(":")[0] in _KERNEL_NAMES


def check_layer_names(name, requested, available, what):
    """Every requested name is among `available`; a `ValueError` listing them otherwise."""
    unknown = [n for n in requested if n not in available]
    if unknown:
        raise ValueError(
            f"`{name}` names layers that are not {what} in this model: {unknown}. "
            f"Received: {name}={requested!r}. The {what} layers are: {sorted(available)}."
        )


def select_layers(name, layers, candidates):
    """The names of `candidates` picked by `layers` (None: all; else names and/or layer classes).

    Args:
        name: Argument name, for messages.
        layers: `None`, or a list of layer names (str) and layer classes.
        candidates: Layers eligible for the operation, unwrapped.
    """
    eligible = {layer.name: layer for layer in candidates}
    if layers is None:
        return list(eligible)
    if isinstance(layers, (str, type)):
        layers = [layers]
    if not isinstance(layers, (list, tuple, set)) or not layers:
        raise TypeError(
            f"`{name}` must be a non-empty list of layer names or layer classes. "
            f"Received: {name}={layers!r}. E.g. `{name}=['dense_1', keras.layers.Conv2D]`."
        )
    names = [item for item in layers if isinstance(item, str)]
    types = [item for item in layers if isinstance(item, type)]
    others = [item for item in layers if not isinstance(item, (str, type))]
    if others:
        raise TypeError(
            f"Every item of `{name}` must be a layer name (str) or a layer class. "
            f"Received: {others[0]!r} (of type {type(others[0]).__name__})."
        )
    check_layer_names(name, names, eligible, "eligible")
    picked = [n for n, layer in eligible.items() if n in names or isinstance(layer, tuple(types))]
    if not picked:
        raise ValueError(
            f"`{name}` selects no eligible layer. Received: {name}={layers!r}. "
            f"The eligible layers are: {sorted(eligible)}."
        )
    return picked


def clone_with(model, transform):
    """Clones `model` through `keras.models.clone_model`, copying weights, with `transform(copy)`.

    Each layer (nested models included) is copied from its config and gets the original's weights,
    so the result shares nothing with `model`; `transform(original, copy)` returns the layer to use
    (the copy, or a wrapper around it).
    """
    late = []

    def clone_function(layer):
        if isinstance(layer, keras.Model):
            return clone_with(layer, transform)
        copy = layer.__class__.from_config(layer.get_config())
        if layer.weights:
            shape = getattr(layer, "_build_input_shape", None)
            if shape is None:
                late.append((layer, copy))
            else:  # weights in before wrapping: some wrappers replace the layer's variables
                with tf.name_scope(copy.name):  # variables named as Keras names them
                    copy.build(shape)
                if len(copy.weights) != len(layer.weights):
                    build_by_calling(layer, copy)  # e.g. MultiHeadAttention builds in `call`
                copy.set_weights(layer.get_weights())
        return transform(layer, copy)

    clone = keras.models.clone_model(model, clone_function=clone_function)
    for original, copy in late:
        copy.set_weights(original.get_weights())
    return clone


def build_by_calling(original, copy):
    """Builds `copy` by calling it once on zeros shaped like `original`'s first inputs.

    For layers whose `build` creates no weights: `MultiHeadAttention` builds its projections on
    its first call, from the query, value and key it gets.
    """
    node = original.inbound_nodes[0]

    def zeros(value):
        if hasattr(value, "_keras_history") or isinstance(value, tf.Tensor):
            return tf.zeros([1 if d is None else d for d in value.shape], value.dtype)
        return value

    copy(*tf.nest.map_structure(zeros, node.call_args),
         **tf.nest.map_structure(zeros, node.call_kwargs))


def split_data(name, data):
    """`(x, y)` arrays or a batched `tf.data.Dataset` of `(x, y)`: checked, returned as given."""
    from tfkd._keras import tf

    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        if isinstance(spec, (tuple, list)) and len(spec) >= 2:
            return data
    elif isinstance(data, (tuple, list)) and len(data) == 2 and all(
        hasattr(a, "shape") for a in data
    ):
        if len(data[0]) != len(data[1]):
            raise ValueError(
                f"`{name}` must hold as many labels as inputs. Received: {len(data[0])} inputs "
                f"and {len(data[1])} labels."
            )
        return data
    raise TypeError(
        f"`{name}` must be `(x, y)` arrays or a batched `tf.data.Dataset` of `(x, y)` pairs. "
        f"Received: {name} of type {type(data).__name__}. E.g. `{name}=(x_test, y_test)`."
    )


def accuracy(model, data, batch_size=256):
    """Top-1 accuracy of a classifier on `(x, y)` arrays or a dataset of `(x, y)` batches."""
    from tfkd._keras import tf
    from tfkd.runtime.base import accuracy_and_agreement

    correct, total = 0, 0
    if isinstance(data, tf.data.Dataset):
        batches = ((x, y) for x, y, *_ in data)
    else:
        inputs, targets = data
        batches = [
            (inputs[i : i + batch_size], targets[i : i + batch_size])
            for i in range(0, len(inputs), batch_size)
        ]
    for x, y in batches:
        outputs = np.asarray(model(x, training=False))
        # One definition of accuracy (labels sparse or one-hot), the one reports use.
        correct += round(accuracy_and_agreement(outputs, y)["accuracy"] * len(outputs))
        total += len(outputs)
    return correct / total if total else 0.0

