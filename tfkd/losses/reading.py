"""What a loss reads from a model: its outputs and named layers, extracted once per fit.

A `DistillationLoss` names the layers it reads (`layer_pairs`); the `Distiller` collects the keys
of every loss on each side (`keys_read`), builds one reader per model (`build_reader`: a Keras
model returning the outputs and those layers), and hands each loss its values (`pick`).
"""

import warnings

from tfkd._keras import keras, tf
from tfkd.checks import ends_in_softmax, logits_tensor
from tfkd.losses.base import as_list
from tfkd.optimize._common import is_graph_model
from tfkd.optimize.wrappers import find_layer, layer_names

OUTPUTS = None  # the key under which a model's outputs are read (a layer name reads that layer)


class _LogitsKey:
    def __repr__(self):
        return "LOGITS"


# The key of the logits before a model's final softmax: losses that read `OUTPUTS` get these.
LOGITS = _LogitsKey()


def keys_read(losses, side, model=None):
    """`OUTPUTS` then every layer the losses read on one side (0 teacher, 1 student), once; and
    `LOGITS` last when `model` ends in a softmax (said once), so losses compare logits."""
    keys = [OUTPUTS]
    for loss in losses:
        for pair in loss.layer_pairs:
            if pair[side] not in keys:
                keys.append(pair[side])
    if model is not None and losses and ends_in_softmax(model) is not None:
        role = ("teacher", "student")[side]
        warnings.warn(
            f"The {role} {model.name!r} outputs softmax probabilities; distillation losses "
            "compare logits, so tfkd reads the logits before its final softmax.",
            stacklevel=3,
        )
        keys.append(LOGITS)
    return keys


def pick(values, keys, loss, side):
    """What `loss` reads from one side: one value, or a list for losses reading several layers.
    A model's `OUTPUTS` are its logits (`LOGITS`) where it ends in a softmax."""

    def key(pair):
        wanted = pair[side]
        return LOGITS if wanted is OUTPUTS and LOGITS in keys else wanted

    if isinstance(values, dict):
        picked = [values[key(pair)] for pair in loss.layer_pairs]
    else:
        picked = [values[keys.index(key(pair))] for pair in loss.layer_pairs]
    return picked[0] if len(picked) == 1 else picked


def build_reader(role, model, keys):
    """A callable returning the model's outputs followed by the named layers' outputs.

    Args:
        role: `"teacher"` or `"student"`, for messages.
        model: The model read (Functional or Sequential when `keys` name layers).
        keys: `keys_read(...)`: `OUTPUTS` first, then layer names (or keys with a `tap`).

    Returns:
        `model` itself when only its outputs are read, else a Keras model with one output per
        key.

    Raises:
        ValueError: If a layer cannot be read (a subclassed model, or no such layer).
    """
    if keys == [OUTPUTS]:
        return model
    model = getattr(model, "_feature_model", model)  # e.g. an EMATeacher's averaged model
    if not is_graph_model(model):
        raise ValueError(
            f"Reading layers {keys[1:]} of the {role} needs a Functional or Sequential model, "
            "whose "
            f"layers can be tapped. Received: {role}={type(model).__name__}(name={model.name!r}). "
            "Rebuild it with the Functional API (`keras.Model(inputs, outputs)`) or as a "
            "`keras.Sequential`, or use losses that read only the outputs."
        )
    outputs = as_list(model.outputs)[:1]
    for key in keys[1:]:
        if hasattr(key, "tap"):  # a key that computes its value, e.g. attention scores
            outputs.append(key.tap(model, role))
            continue
        if key is LOGITS:
            outputs.append(logits_tensor(model, role))
            continue
        layer = find_layer(model, key)  # through pruning, clustering and QAT wrappers
        if layer is None:
            raise ValueError(
                f"The {role} has no layer named {key!r}. Received: {role}_layer={key!r}. "
                f"Its layers are: {layer_names(model)}."
            )
        outputs.append(layer.output)
    return keras.Model(model.inputs, outputs, name=f"{model.name}_features")


def reader_shapes(reader, keys):
    """The shapes a graph-model reader returns, in `keys` order, or `None` if unknown."""
    if not is_graph_model(reader):
        return None
    if not reader.built or reader.outputs is None:
        return None
    return [tf.TensorShape(o.shape) for o in as_list(reader.outputs)[: len(keys)]]


def check_output_shapes(teacher, student, losses):
    """Teacher and student outputs read by the same loss must agree in their last dimension."""
    if not any(pair == (OUTPUTS, OUTPUTS) for loss in losses for pair in loss.layer_pairs):
        return
    teacher_shape = output_shape(teacher)
    student_shape = output_shape(student)
    if teacher_shape is None or student_shape is None:
        return
    if teacher_shape[-1] is not None and teacher_shape[-1] != student_shape[-1]:
        raise ValueError(
            "The teacher's and the student's outputs must have the same shape for a loss that "
            f"compares them. Received: teacher output shape={tuple(teacher_shape)}, "
            f"student output shape={tuple(student_shape)}. Give the student the teacher's number "
            "of classes (last dimension), or read other layers with "
            "`teacher_layer=`/`student_layer=`."
        )


def output_shape(model):
    """A model's (first) output shape, or `None` when it is not known yet."""
    try:
        shape = model.output_shape
    except (AttributeError, RuntimeError):
        return None
    if isinstance(shape, list):
        shape = shape[0]
    return shape
