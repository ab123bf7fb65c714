"""`DistillationLoss`: the base of every tfkd loss. A loss names what it reads and owns its math."""

import copy
import re
from typing import Any

from tfkd._keras import keras, tf
from tfkd._validation import check_non_negative


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
    model's outputs; Keras 3's spellings `teacher_layer_name`/`student_layer_name` are the same
    attributes); the `Distiller` builds feature extractors for those names once and passes the
    values to `compute_loss`.

    Subclasses override `compute_loss(teacher_outputs, student_outputs, **kwargs)` (Keras 3's
    override point; `kwargs` holds `labels=`), or implement `call(teacher_values,
    student_values)`, which the default `compute_loss` calls. Either returns one loss per sample
    (shape `[batch]`, so sample weights apply) or one value for the whole batch (a scalar, e.g. for
    relation-based losses). A loss that needs the labels sets `uses_labels = True` and takes
    `labels=` in `call`. `validate_model_compatibility(teacher, student)` runs when the Distiller
    is built and `validate_outputs(teacher_outputs, student_outputs)` on the first batch; override
    them to refuse what your loss cannot read.

    Calling the loss object itself, `loss(teacher_values, student_values)`, returns the mean loss,
    so it can be tested and reused outside a fit.

    Args:
        teacher_layer: Name of the teacher layer read, or `None` for the teacher's outputs.
            Defaults to `None`.
        student_layer: Name of the student layer read, or `None` for the student's outputs.
            Defaults to `None`.
        name: Name used in logs. Defaults to the class name in snake case.
        teacher_layer_name: Keras 3's spelling of `teacher_layer`. Defaults to `None`.
        student_layer_name: Keras 3's spelling of `student_layer`. Defaults to `None`.
    """

    uses_labels = False
    # Defaults for subclasses written for Keras 3, whose base class has no `__init__` to call.
    teacher_layer = None
    student_layer = None
    built = False

    def __init__(
        self,
        teacher_layer: str | None = None,
        student_layer: str | None = None,
        name: str | None = None,
        *,
        teacher_layer_name: str | None = None,
        student_layer_name: str | None = None,
    ) -> None:
        self.teacher_layer = merge_layer_names("teacher", teacher_layer, teacher_layer_name)
        self.student_layer = merge_layer_names("student", student_layer, student_layer_name)
        self.name = name
        self.built = False

    @property
    def name(self) -> str:
        return self.__dict__.get("_name") or _snake_case(type(self).__name__)

    @name.setter
    def name(self, value):
        self.__dict__["_name"] = value

    @property
    def teacher_layer_name(self) -> str | None:
        """Keras 3's name for `teacher_layer`."""
        return self.teacher_layer

    @teacher_layer_name.setter
    def teacher_layer_name(self, value):
        self.teacher_layer = merge_layer_names("teacher", None, value)

    @property
    def student_layer_name(self) -> str | None:
        """Keras 3's name for `student_layer`."""
        return self.student_layer

    @student_layer_name.setter
    def student_layer_name(self, value):
        self.student_layer = merge_layer_names("student", None, value)

    @property
    def layer_pairs(self) -> Any:
        """`[(teacher_layer, student_layer), ...]`: what the loss reads, in the order `call` gets
        it."""
        return [(self.teacher_layer, self.student_layer)]

    @property
    def trainable_layers(self) -> Any:
        """Layers the loss owns that train with the student (adapters); none by default."""
        return []

    def build(self, teacher_shapes: Any, student_shapes: Any) -> None:
        """Creates any state that depends on shapes (e.g. adapters). Shapes follow `layer_pairs`."""
        self.built = True

    def validate_model_compatibility(self, teacher: Any, student: keras.Model) -> None:
        """Raises a `ValueError` if this loss cannot distil `student` from `teacher`.

        Called once when a `Distiller` is built (its own checks of layer names and shapes run
        beside it). Does nothing by default; override to add checks.
        """

    def validate_outputs(self, teacher_outputs: Any, student_outputs: Any) -> None:
        """Raises a `ValueError` unless both sides have the same structure (tensor, list, dict)."""
        try:
            tf.nest.assert_same_structure(teacher_outputs, student_outputs, check_types=False)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"`{type(self).__name__}` compares teacher and student values of the same "
                f"structure. Received: teacher_outputs={_structure(teacher_outputs)}, "
                f"student_outputs={_structure(student_outputs)}. Read layers whose outputs match "
                "on both sides."
            ) from error

    def call(self, teacher_values: Any, student_values: Any) -> Any:
        raise NotImplementedError(
            f"{type(self).__name__} must override `compute_loss(teacher_outputs, "
            "student_outputs, **kwargs)` or implement `call(teacher_values, student_values)`."
        )

    def compute_loss(self, teacher_outputs: Any, student_outputs: Any, **kwargs: Any) -> Any:
        """The loss per sample `[batch]` (or one value for the batch). Keras 3's override point.

        Args:
            teacher_outputs: What the loss reads from the teacher (a tensor, or a list for losses
                reading several layers).
            student_outputs: The same from the student.
            **kwargs: `labels=` (the batch's labels, or `None`).

        Returns:
            A float tensor of shape `[batch]` or `[]`.
        """
        if self.uses_labels:
            call: Any = self.call  # the subclasses that read labels take them
            return call(teacher_outputs, student_outputs, labels=kwargs.get("labels"))
        return self.call(teacher_outputs, student_outputs)

    def compute(self, teacher_values: Any, student_values: Any, labels: Any = None) -> Any:
        """The loss per sample (or for the batch), checking and building the loss on first use."""
        self.validate_outputs(teacher_values, student_values)  # Python only: at tracing time
        if not self.built:
            self.build(_shapes(teacher_values), _shapes(student_values))
        return self.compute_loss(teacher_values, student_values, labels=labels)

    def __call__(self, teacher_values, student_values, labels=None):
        return tf.reduce_mean(self.compute(teacher_values, student_values, labels=labels))

    def get_config(self) -> dict[str, Any]:
        return {
            "teacher_layer": self.teacher_layer,
            "student_layer": self.student_layer,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Any:
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def merge_layer_names(side, name, keras3_name):
    """One layer name from tfkd's `<side>_layer` and Keras 3's `<side>_layer_name` spellings."""
    for arg, value in ((f"{side}_layer", name), (f"{side}_layer_name", keras3_name)):
        if value is not None and not isinstance(value, str):
            raise TypeError(
                f"`{arg}` must be a layer name (str) or None for the model's outputs. "
                f"Received: {arg}={value!r} (of type {type(value).__name__})."
            )
    if name is not None and keras3_name is not None and name != keras3_name:
        raise ValueError(
            f"`{side}_layer` and `{side}_layer_name` name the same thing. Received: "
            f"{side}_layer={name!r} and {side}_layer_name={keras3_name!r}. Pass one of them."
        )
    return name if name is not None else keras3_name


def _structure(values):
    return tf.nest.map_structure(lambda v: "tensor", values)


def all_teacher_free(losses):
    """Whether `losses` (one or a list) are given and none of them reads a teacher."""
    losses = [losses] if isinstance(losses, DistillationLoss) else losses
    return bool(losses) and isinstance(losses, (list, tuple)) and all(
        getattr(loss, "uses_teacher", True) is False for loss in losses
    )


def check_losses(losses):
    """`distillation_losses` as a list of `DistillationLoss` (empty for `None`); else raises."""
    if losses is None:
        return []
    if isinstance(losses, DistillationLoss):
        losses = [losses]
    if not isinstance(losses, (list, tuple)) or not losses:
        raise TypeError(
            "`distillation_losses` must be a `tfkd.losses.DistillationLoss` or a non-empty list of "
            f"them. Received: distillation_losses={losses!r}. "
            "E.g. `distillation_losses=[tfkd.losses.LogitsDistillation(temperature=3)]`."
        )
    for loss in losses:
        if not isinstance(loss, DistillationLoss):
            raise TypeError(
                "Every item of `distillation_losses` must be a `tfkd.losses.DistillationLoss`. "
                f"Received: {loss!r} (of type {type(loss).__name__}). For a plain Keras loss use "
                "keras.io's idiom: "
                "`compile(..., distillation_loss_fn=keras.losses.KLDivergence())`."
            )
    return list(losses)


def check_loss_weights(weights, losses):
    """One non-negative float per loss (all 1.0 for `None`); raises otherwise."""
    if weights is None:
        return [1.0] * len(losses)
    if not isinstance(weights, (list, tuple)):
        raise TypeError(
            "`distillation_loss_weights` must be a list of numbers, one per distillation loss. "
            f"Received: distillation_loss_weights={weights!r}."
        )
    if len(weights) != len(losses):
        raise ValueError(
            "`distillation_loss_weights` must have one weight per distillation loss "
            f"({len(losses)}). "
            f"Received: distillation_loss_weights={list(weights)!r} (length {len(weights)}). "
            "Pass as many weights as losses, or None for equal weights."
        )
    return [check_non_negative("distillation_loss_weights[i]", w) for w in weights]


def _shapes(values):
    if isinstance(values, (list, tuple)):
        return [tf.TensorShape(v.shape) for v in values]
    return tf.TensorShape(values.shape)


def serialize(loss: Any) -> dict[str, Any]:
    """A JSON-able description of a tfkd loss, for `deserialize`."""
    return keras.utils.serialize_keras_object(loss)


def deserialize(config: dict[str, Any]) -> Any:
    """Rebuilds a tfkd loss from `serialize`'s output."""
    return keras.utils.deserialize_keras_object(config)
