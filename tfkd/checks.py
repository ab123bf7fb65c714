"""Traps that run silently to a bad model, caught on the first batch before anything is traced.

- Labels that do not fit the loss (one-hot for a sparse loss and the reverse, ids outside
  `[0, classes)`), inputs that do not fit the student or teacher, NaN or infinite inputs: one
  sentence each, instead of a graph-execution traceback deep inside `fit`.
- A teacher that looks untrained (near-uniform outputs, or worse than chance on the labels): a
  warning naming it, since distilling from it teaches the student nothing.
- A model whose outputs are softmax probabilities where distillation losses expect logits: the
  logits before the softmax are read instead (said once), or the model is refused with the fix.
"""

import warnings

import numpy as np

from tfkd._keras import keras, tf

# First batch ------------------------------------------------------------------------------------


def check_first_batch(x, y, batch_size, student, teacher, loss, check_teacher=True,
                      teacher_name="teacher"):
    """Checks the first batch of `fit`/`evaluate` data before anything is traced.

    Inputs against the student's (and a live teacher's) input shape and for NaN; labels against
    the student's loss and number of classes; and, with `check_teacher`, whether the teacher
    looks untrained on this batch (a warning).

    Args:
        x, y, batch_size: As given to `fit`/`evaluate` (arrays, or a `tf.data.Dataset` of
            `(x, y, ...)` batches; the teacher's cached outputs may travel in `x`).
        student: The student model.
        teacher: A live teacher model, or `None`.
        loss: The student's loss on the labels, or `None`.
        check_teacher: Whether to look at the teacher's outputs. Defaults to `True`.
        teacher_name: How warnings name the teacher. Defaults to `"teacher"`.
    """
    batch = first_batch(x, y, batch_size)
    if batch is None:
        return
    inputs, labels = batch
    cached = None
    if isinstance(inputs, dict) and "teacher_outputs" in inputs:  # a cached teacher's batch
        inputs, cached = inputs.get("x"), inputs["teacher_outputs"]
    models = {"student": student}
    if teacher is not None and getattr(teacher, "inputs", None):
        models["teacher"] = teacher
    check_inputs(inputs, models)
    outputs = getattr(student, "outputs", None)
    classes = outputs[0].shape[-1] if outputs and len(outputs) == 1 else None
    check_labels(labels, loss, classes)
    if not check_teacher:
        return
    if cached is None and teacher is not None:
        cached = logits_model(teacher, "teacher", say=False)(inputs, training=False)
    if cached is not None and not isinstance(cached, dict):
        warn_if_untrained(tf.nest.flatten(cached)[0], labels, name=teacher_name)


def first_batch(x, y, batch_size=None):
    """`(inputs, labels)` of the first batch `fit` would see (numpy), or `None` if unknown."""
    if isinstance(x, tf.data.Dataset):
        for element in x.take(1):
            element = tf.nest.map_structure(np.asarray, element)
            if isinstance(element, tuple):
                return element[0], (element[1] if len(element) > 1 else None)
            return element, None
        return None
    if x is None or not all(hasattr(a, "shape") for a in tf.nest.flatten(x)):
        return None  # generators, Sequences: not looked at
    size = batch_size or 32
    inputs = tf.nest.map_structure(lambda a: np.asarray(a[:size]), x)
    labels = None if y is None or not hasattr(y, "shape") else np.asarray(y[:size])
    return inputs, labels



def check_inputs(x, models):
    """Raises a `ValueError` if the batch `x` holds NaN/inf or does not fit a model's input.

    Args:
        x: One batch of inputs (an array or tensor; dicts and lists are checked per array).
        models: `{role: model}`, e.g. `{"student": s, "teacher": t}`; models without known
            inputs are skipped.
    """
    arrays = [np.asarray(a) for a in tf.nest.flatten(x)]
    for array in arrays:
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            bad = int(np.sum(~np.isfinite(array)))
            raise ValueError(
                "The inputs must be finite numbers. Received: x with "
                f"{bad} NaN or infinite values in the first batch. Clean or impute the data "
                "(e.g. `np.nan_to_num`) before `fit`."
            )
    if len(arrays) != 1:
        return
    shape = arrays[0].shape[1:]
    for role, model in models.items():
        expected = _input_shape(model)
        if expected is None:
            continue
        fits = len(shape) == len(expected) and all(
            e is None or e == s for s, e in zip(shape, expected, strict=True)
        )
        if not fits:
            expected_text = ", ".join("None" if e is None else str(e) for e in expected)
            raise ValueError(
                f"The inputs must fit the {role}'s input shape (batch, {expected_text}). "
                f"Received: x with samples of shape {tuple(shape)}. Reshape the data (e.g. add "
                "a channel axis with `x[..., None]`) or build the model for this shape."
            )


def check_labels(y, loss, num_classes):
    """Raises a `ValueError` if the labels `y` cannot be what `loss` takes.

    Args:
        y: One batch of labels (array or tensor), or `None`.
        loss: The student's loss on the labels: a Keras loss object, function or name (others
            are not checked), or `None`.
        num_classes: Size of the model's last output dimension, or `None`.
    """
    if y is None or num_classes is None or num_classes < 2:
        return
    labels = np.asarray(y)
    kind = _loss_kind(loss)
    one_hot = labels.ndim >= 2 and labels.shape[-1] == num_classes and num_classes > 1
    name = _loss_name(loss)
    if kind == "sparse" and one_hot:
        raise ValueError(
            f"`{name}` takes integer class ids, but the labels are one-hot. Received: y of "
            f"shape {labels.shape}. Pass `y.argmax(-1)`, or use "
            "`keras.losses.CategoricalCrossentropy` for one-hot labels."
        )
    if kind == "dense" and not one_hot:
        raise ValueError(
            f"`{name}` takes one-hot labels of shape (batch, {num_classes}), but these are "
            f"class ids. Received: y of shape {labels.shape}. Pass "
            f"`keras.utils.to_categorical(y, {num_classes})`, or use "
            "`keras.losses.SparseCategoricalCrossentropy` for integer labels."
        )
    if kind == "sparse" or (not one_hot and labels.dtype.kind in "iu"):
        low, high = labels.min(), labels.max()
        if low < 0 or high >= num_classes:
            raise ValueError(
                f"Class ids must be in [0, {num_classes}) for a model with {num_classes} "
                f"outputs. Received: labels from {low} to {high} in the first batch. Map them "
                f"to 0..{num_classes - 1}, or give the model one output per class."
            )


def warn_if_untrained(teacher_logits, y=None, name="teacher"):
    """Warns when a teacher's logits on one batch look untrained: near-uniform probabilities, or
    an accuracy below chance on labels that are given. Returns the reason, or `None`."""
    logits = np.asarray(teacher_logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[-1] < 2 or len(logits) < 8:
        return None
    classes = logits.shape[-1]
    probabilities = _softmax(logits)
    confidence = float(probabilities.max(-1).mean())
    reason = None
    if confidence < 1.5 / classes:
        reason = (f"its outputs are nearly uniform (mean top probability {confidence:.3f} with "
                  f"{classes} classes)")
    elif y is not None:
        labels = _class_ids(np.asarray(y), classes)
        if labels is not None and len(logits) >= 4 * classes:
            accuracy = float(np.mean(logits.argmax(-1) == labels))
            if accuracy < 1.0 / classes:
                reason = f"it is right on {accuracy:.0%} of the first batch, below chance"
    if reason:
        warnings.warn(
            f"The {name} looks untrained: {reason}. Distilling from it teaches the student "
            "nothing. Train the teacher first (and check it with `teacher.evaluate`).",
            stacklevel=3,
        )
    return reason


# Softmax outputs --------------------------------------------------------------------------------


def ends_in_softmax(model):
    """The layer that applies a softmax to the model's (only) output, or `None`."""
    layer = _output_layer(model)
    if layer is None:
        return None
    while isinstance(layer, keras.layers.Wrapper):
        layer = layer.layer
    if isinstance(layer, keras.layers.Softmax):
        return layer
    if getattr(layer, "activation", None) in (keras.activations.softmax, tf.nn.softmax):
        return layer
    return None


def logits_tensor(model, role):
    """The symbolic logits before a model's final softmax, to read instead of its probabilities.

    Returns `None` for a model whose output is not a softmax. A softmax `Activation` or `Softmax`
    layer gives its input; a `Dense` with `activation="softmax"` gives its pre-activation,
    computed with the layer's own weights (so the student's gradients still reach them).

    Raises:
        ValueError: If the model ends in a softmax whose input cannot be read (a subclassed
            model, or another layer kind with a softmax activation).
    """
    layer = ends_in_softmax(model)
    if layer is None:
        return None
    inner = layer
    while isinstance(inner, keras.layers.Wrapper):
        inner = inner.layer
    graph = isinstance(model, keras.Sequential) or getattr(model, "_is_graph_network", False)
    if graph and isinstance(inner, (keras.layers.Softmax, keras.layers.Activation)):
        return layer.input
    if graph and isinstance(inner, keras.layers.Dense):
        return PreActivation(layer, name=f"{layer.name}_logits")(layer.input)
    raise ValueError(
        f"Distillation losses compare logits, but the {role} {model.name!r} ends in a softmax "
        f"({type(inner).__name__} {layer.name!r}) whose input tfkd cannot read. Received: "
        f"{role} with softmax outputs. Give the {role} a separate last layer "
        "`keras.layers.Activation('softmax')` (or none: output logits)."
    )


def logits_model(model, role, say=True):
    """`model` itself, or a model of the same weights returning the logits before its final
    softmax (said once, as a warning, when `say`)."""
    logits = logits_tensor(model, role)
    if logits is None:
        return model
    if say:
        warnings.warn(
            f"The {role} {model.name!r} outputs softmax probabilities; distillation losses "
            "compare logits, so tfkd reads the logits before its final softmax.",
            stacklevel=3,
        )
    return keras.Model(model.inputs, logits, name=f"{model.name}_logits")


class PreActivation(keras.layers.Layer):
    """A `Dense` layer's output before its activation, computed with that layer's own weights."""

    def __init__(self, dense, **kwargs):
        super().__init__(**kwargs)
        self.dense = dense

    def call(self, inputs):
        inner = self.dense
        while isinstance(inner, keras.layers.Wrapper):
            inner = inner.layer
        outputs = tf.tensordot(inputs, inner.kernel, axes=1)
        if inner.use_bias:
            outputs = outputs + inner.bias
        return outputs


# Helpers ----------------------------------------------------------------------------------------


def _output_layer(model):
    if not getattr(model, "outputs", None) or len(model.outputs) != 1:
        return None
    try:
        return model.get_layer(model.output_names[0])
    except (ValueError, AttributeError):
        return model.layers[-1] if model.layers else None


def _input_shape(model):
    inputs = getattr(model, "inputs", None)
    if not inputs or len(inputs) != 1:
        return None
    return tuple(inputs[0].shape[1:])


def _loss_kind(loss):
    """`"sparse"` (class ids), `"dense"` (one-hot or probabilities) or `None` (not known)."""
    losses = keras.losses
    if isinstance(loss, str):
        name = losses.get(loss)
        if name is None:
            return None
        loss = name
    if isinstance(loss, losses.SparseCategoricalCrossentropy) or loss in (
        losses.sparse_categorical_crossentropy,
    ):
        return "sparse"
    dense_objects = (losses.CategoricalCrossentropy, losses.KLDivergence)
    dense_functions = (losses.categorical_crossentropy, losses.kl_divergence)
    if isinstance(loss, dense_objects) or loss in dense_functions:
        return "dense"
    return None


def _loss_name(loss):
    if isinstance(loss, str):
        return loss
    return getattr(loss, "name", None) or getattr(loss, "__name__", None) or repr(loss)


def _class_ids(labels, classes):
    if labels.ndim >= 2 and labels.shape[-1] == classes:
        return labels.argmax(-1)
    labels = labels.reshape(len(labels), -1)
    return labels[:, 0].astype(np.int64) if labels.shape[1] == 1 else None


def _softmax(logits):
    shifted = logits - logits.max(-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(-1, keepdims=True)
