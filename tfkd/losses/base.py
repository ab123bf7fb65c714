"""`DistillationLoss`: the base of every tfkd loss. A loss names what it reads and owns its math."""

import copy
import re

from tfkd._keras import keras, tf


def _snake_case(name):
    # "LogitsDistillation" -> "logits_distillation", "DecoupledKD" -> "decoupled_kd", "PKT" -> "pkt"
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def as_list(values):
    """`values` as a list: a list or tuple's items, or `[values]`."""
    return list(values) if isinstance(values, (list, tuple)) else [values]


def reduce_to_per_sample(values):
    """Turns a loss value into one value per sample: batch-level scalars are broadcast later."""
    values = tf.convert_to_tensor(values)
    if values.shape.rank is not None and values.shape.rank > 1:
        values = tf.reduce_mean(values, axis=list(range(1, values.shape.rank)))
    return values


def per_sample(values, batch):
    """A loss value as float32 `[batch]`: feature axes averaged, a batch-level scalar broadcast.

    Every loss value goes through here before losses are summed, so a float16 or bfloat16 value
    (mixed precision) adds to float32 ones.
    """
    values = tf.cast(reduce_to_per_sample(values), tf.float32)
    return tf.broadcast_to(values, [batch]) if values.shape.rank == 0 else values


def weighted(values, sample_weight):
    """Per-sample `values` times `sample_weight` (of any shape holding one weight per sample)."""
    if sample_weight is None:
        return values
    return values * tf.reshape(tf.cast(sample_weight, values.dtype), [-1])


def per_sample_loss_fn(name, loss):
    """A Keras loss (name, class name, function or object) returning one value per sample.

    Args:
        name: The argument's name, for messages.
        loss: A loss function's name (`"sparse_categorical_crossentropy"`), a loss class's name
            (`"SparseCategoricalCrossentropy"`), a function, or a `keras.losses.Loss`.

    Returns:
        A callable `loss(y_true, y_pred)` with no reduction over the batch.

    Raises:
        ValueError: If a string names no Keras loss.
        TypeError: If `loss` is neither a string nor callable.
    """
    if isinstance(loss, str):
        try:
            loss = keras.losses.get(loss)
        except ValueError as error:
            raise ValueError(
                f"`{name}` names no Keras loss. Received: {name}={loss!r}. "
                "Pass e.g. 'sparse_categorical_crossentropy' or a `keras.losses.Loss`."
            ) from error
    if isinstance(loss, keras.losses.Loss):
        loss = copy.copy(loss)  # e.g. a class name gave an object reducing over the batch
        loss.reduction = keras.losses.Reduction.NONE
        return loss
    if callable(loss):
        return loss
    raise TypeError(
        f"`{name}` must be a Keras loss (name, function or `keras.losses.Loss`). "
        f"Received: {name}={loss!r} (of type {type(loss).__name__})."
    )


class DistillationLoss:
    """A loss between what a teacher and a student compute for the same batch.

    A loss names the layers it reads with `teacher_layer` and `student_layer` (`None` reads the
    model's outputs); the `Distiller` builds feature extractors for those names once and passes the
    values to `call`. Subclasses implement `call(teacher_values, student_values)`, returning one
    loss per sample (shape `[batch]`) or one value for the whole batch (a scalar, for relation-based
    losses). A loss that needs the labels sets `uses_labels = True` and takes `labels=` in `call`.

    Calling the loss object itself, `loss(teacher_values, student_values)`, returns the mean loss,
    so it can be tested and reused outside a fit.

    Args:
        teacher_layer: Name of the teacher layer read, or `None` for the teacher's outputs.
            Defaults to `None`.
        student_layer: Name of the student layer read, or `None` for the student's outputs.
            Defaults to `None`.
        name: Name used in logs. Defaults to the class name in snake case.
    """

    uses_labels = False

    def __init__(self, teacher_layer=None, student_layer=None, name=None):
        for arg, value in (("teacher_layer", teacher_layer), ("student_layer", student_layer)):
            if value is not None and not isinstance(value, str):
                raise TypeError(
                    f"`{arg}` must be a layer name (str) or None for the model's outputs. "
                    f"Received: {arg}={value!r} (of type {type(value).__name__})."
                )
        self.teacher_layer = teacher_layer
        self.student_layer = student_layer
        self.name = name or _snake_case(type(self).__name__)
        self.built = False

    @property
    def layer_pairs(self):
        """`[(teacher_layer, student_layer), ...]`: what the loss reads, in the order `call` gets
        it."""
        return [(self.teacher_layer, self.student_layer)]

    @property
    def trainable_layers(self):
        """Layers the loss owns that train with the student (adapters); none by default."""
        return []

    def build(self, teacher_shapes, student_shapes):
        """Creates any state that depends on shapes (e.g. adapters). Shapes follow `layer_pairs`."""
        self.built = True

    def call(self, teacher_values, student_values):
        raise NotImplementedError(f"{type(self).__name__} must implement `call`.")

    def compute(self, teacher_values, student_values, labels=None):
        """The loss per sample (or for the batch), building the loss on first use."""
        if not self.built:
            self.build(_shapes(teacher_values), _shapes(student_values))
        if self.uses_labels:
            return self.call(teacher_values, student_values, labels=labels)
        return self.call(teacher_values, student_values)

    def __call__(self, teacher_values, student_values, labels=None):
        return tf.reduce_mean(self.compute(teacher_values, student_values, labels=labels))

    def get_config(self):
        return {
            "teacher_layer": self.teacher_layer,
            "student_layer": self.student_layer,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _shapes(values):
    if isinstance(values, (list, tuple)):
        return [tf.TensorShape(v.shape) for v in values]
    return tf.TensorShape(values.shape)


def serialize(loss):
    """A JSON-able description of a tfkd loss, for `deserialize`."""
    return keras.utils.serialize_keras_object(loss)


def deserialize(config):
    """Rebuilds a tfkd loss from `serialize`'s output."""
    return keras.utils.deserialize_keras_object(config)
