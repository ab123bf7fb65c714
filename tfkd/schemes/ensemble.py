"""`Ensemble`: frozen teachers whose soft targets are averaged (Hinton's "set of models")."""

from typing import Any

from tfkd._keras import keras, tf
from tfkd._validation import check_choice, check_non_negative
from tfkd.keras3 import check_model
from tfkd.schemes._common import with_models_deserialized

_AVERAGES = ("probabilities", "logits")


@keras.utils.register_keras_serializable(package="tfkd")
class Ensemble(keras.Model):
    """Several frozen teachers acting as one: their predictions are averaged, output as logits.

    With `average="probabilities"` (the default) the ensemble outputs `log(sum_i w_i softmax(z_i))`,
    whose softmax is the weighted arithmetic mean of the teachers' distributions, so every
    logit-based loss sees the ensemble's averaged soft targets. The average is taken at temperature
    1 and the loss then softens it. With `average="logits"` it outputs `sum_i w_i z_i`, whose
    softmax at any temperature `T` is the normalized weighted geometric mean of the teachers'
    distributions at `T` (Hinton et al., 2015, use either mean).

    Every teacher is frozen (`trainable=False`) and called with `training=False`. `Distiller(
    teacher=[t1, t2])` builds an `Ensemble` with equal weights.

    Args:
        models: The teachers: a list of at least one `tfkd.keras.Model`, all with outputs of one
            shape.
        weights: One non-negative weight per model (normalized to sum to 1). Defaults to `None`
            (equal weights).
        average: `"probabilities"` or `"logits"` (see above). Defaults to `"probabilities"`.
        name: Model name. Defaults to `"ensemble"`.

    Raises:
        TypeError: If `models` is not a list of models, or `weights` not a list of numbers.
        ValueError: If the models' outputs differ in shape, a model appears twice, or the weights
            do not match the models or are negative or all zero.

    Example:
    >>> teacher = tfkd.Ensemble([teacher_a, teacher_b], weights=[2, 1])
    >>> distiller = tfkd.Distiller(teacher=teacher, student=student)
    """

    def __init__(
        self,
        models: list[keras.Model],
        weights: Any = None,
        average: str = "probabilities",
        name: str | None = "ensemble",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.members = _check_members(models)
        self.member_weights = _check_weights(weights, len(self.members))
        self.average = check_choice("average", average, _AVERAGES)
        self._member_output_shape = _check_output_shapes(self.members)
        for member in self.members:
            member.trainable = False

    def call(self, inputs: Any, training: bool | None = False) -> Any:
        outputs = [member(inputs, training=False) for member in self.members]
        if self.average == "logits":
            return tf.add_n([w * z for w, z in zip(self.member_weights, outputs, strict=True)])
        log_terms = [
            tf.nn.log_softmax(z, axis=-1) + tf.math.log(w)
            for w, z in zip(self.member_weights, outputs, strict=True)
            if w > 0
        ]
        # log(sum_i w_i p_i), computed stably in log space.
        return tf.reduce_logsumexp(tf.stack(log_terms, axis=0), axis=0)

    @property
    def output_shape(self) -> Any:
        """The members' common output shape (known without calling the ensemble)."""
        if self._member_output_shape is None:
            return super().output_shape
        return self._member_output_shape

    def get_config(self) -> dict[str, Any]:
        return {
            "models": [keras.utils.serialize_keras_object(m) for m in self.members],
            "weights": self.member_weights,
            "average": self.average,
            "name": self.name,
        }

    @classmethod
    def from_config(
        cls,
        config: dict[str, Any],
        custom_objects: dict[str, Any] | None = None,
    ) -> "Ensemble":
        return cls(**with_models_deserialized(config, custom_objects))


def _check_members(models):
    if isinstance(models, keras.Model) or not isinstance(models, (list, tuple)) or not models:
        raise TypeError(
            "`models` must be a non-empty list of Keras models (the teachers). "
            f"Received: models={models!r} (of type {type(models).__name__}). "
            "Pass e.g. `tfkd.Ensemble([teacher_a, teacher_b])`."
        )
    members = [check_model(f"models[{i}]", m) for i, m in enumerate(models)]
    for i, member in enumerate(members):
        for j in range(i):
            if members[j] is member:
                raise ValueError(
                    "Every model of an ensemble must be a different object. Received the same "
                    f"model (name={member.name!r}) as models[{j}] and models[{i}]. Pass each "
                    "teacher once; to count one more, give it a larger weight with `weights=`."
                )
    return members


def _check_weights(weights, count):
    if weights is None:
        return [1.0 / count] * count
    if not isinstance(weights, (list, tuple)):
        raise TypeError(
            "`weights` must be a list of numbers, one per model. "
            f"Received: weights={weights!r} (of type {type(weights).__name__})."
        )
    if len(weights) != count:
        raise ValueError(
            f"`weights` must have one weight per model ({count}). "
            f"Received: weights={list(weights)!r} (length {len(weights)}). "
            "Pass as many weights as models, or None for equal weights."
        )
    weights = [check_non_negative(f"weights[{i}]", w) for i, w in enumerate(weights)]
    total = sum(weights)
    if total <= 0:
        raise ValueError(
            f"`weights` must not all be zero. Received: weights={weights!r}. "
            "Give at least one model a positive weight."
        )
    return [w / total for w in weights]


def _check_output_shapes(members):
    """The members' common output shape, or None when some are not built yet."""
    shapes = []
    for member in members:
        try:
            shape = member.output_shape
        except (AttributeError, RuntimeError):
            return None
        if isinstance(shape, list):
            raise ValueError(
                "Every teacher of an ensemble must have one output (the logits). Received: "
                f"{member.name!r} with {len(shape)} outputs of shapes {shape}. Pass models with a "
                "single output, e.g. `keras.Model(model.inputs, model.outputs[0])`."
            )
        shapes.append(tuple(shape))
    if len({shape[1:] for shape in shapes}) > 1:
        described = ", ".join(
            f"models[{i}] ({m.name!r}): {s}"
            for i, (m, s) in enumerate(zip(members, shapes, strict=True))
        )
        raise ValueError(
            "The teachers of an ensemble must have outputs of one shape, so their predictions can "
            f"be averaged. Received output shapes {described}. Pass teachers trained for the same "
            "classes (same last dimension)."
        )
    return shapes[0]
