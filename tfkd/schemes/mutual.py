"""`MutualDistiller`: online distillation, models learning from the labels and each other."""

from typing import Any

from tfkd._keras import keras, tf
from tfkd._validation import check_non_negative, check_positive
from tfkd.keras3 import check_model, convert_compile_arguments
from tfkd.losses.distribute import average_over_global_batch
from tfkd.schemes._common import (
    named_metrics,
    per_sample,
    regularization,
    soft_cross_entropy,
    update_metrics,
    weighted,
    with_models_deserialized,
)


@keras.utils.register_keras_serializable(package="tfkd")
class MutualDistiller(keras.Model):
    """Deep mutual learning (Zhang et al., 2018): every model learns from the labels and the others.

    No trained teacher: the models train together in one `fit`, model `i` on `label_loss_i +
    distillation_loss_weight * mean_{j != i} KL(softmax(z_j/T) || softmax(z_i/T)) * T**2`, the
    peers' outputs taken as fixed targets (no gradient flows into them). The models may differ
    in size; a large one plays the online teacher of the small ones. All models are updated from
    the same batch at once (the paper updates them in turn; with per-model losses and a per-variable
    optimizer such as Adam the two differ only by one step of staleness). Per-sample losses are
    averaged over the global batch, so any `tf.distribute` strategy gives the single-device loss.

    `fit` and `evaluate` log `loss` (the sum of the models' losses, which is minimized) and, for
    every model `i`, `model_i_loss` and each compiled metric as `model_i_<metric>` (e.g.
    `model_0_accuracy`). `predict` returns the list of the models' outputs. Afterwards,
    `mutual.models[i]` are the trained models themselves, plain Keras models.

    Args:
        models: At least two `tfkd.keras.Model`s with outputs (logits) of one shape.
        temperature: Positive float softening the peers' outputs. Defaults to `1.0` (the paper's).
        distillation_loss_weight: Non-negative weight of the mutual term against the label loss.
            Defaults to `1.0` (the paper's).
        name: Model name. Defaults to `"mutual_distiller"`.

    Raises:
        TypeError: If `models` is not a list of Keras models.
        ValueError: If fewer than two models, a model given twice, or outputs of other shapes.

    Example:
    >>> mutual = tfkd.MutualDistiller(models=[big, small], temperature=2.0)
    >>> mutual.compile(optimizer="adam", metrics=["accuracy"])
    >>> mutual.fit(x, y, epochs=10)  # logs model_0_accuracy, model_1_accuracy, ...
    >>> small = mutual.models[1]
    """

    def __init__(
        self,
        models: list[keras.Model],
        temperature: float = 1.0,
        distillation_loss_weight: float = 1.0,
        name: str | None = "mutual_distiller",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.models = _check_models(models)
        self.temperature = check_positive("temperature", temperature)
        self.distillation_loss_weight = check_non_negative(
            "distillation_loss_weight", distillation_loss_weight
        )
        self.label_loss_fn = None
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.model_loss_trackers = [
            keras.metrics.Mean(name=f"model_{i}_loss") for i in range(len(self.models))
        ]
        self.model_metrics: list[list[Any]] = [[] for _ in self.models]

    def compile(
        self,
        optimizer: Any = "adam",
        loss: Any = None,
        metrics: Any = None,
        **kwargs: Any,
    ) -> None:
        """Configures training of all models at once.

        Args:
            optimizer: A Keras optimizer or its name (one optimizer updates every model; its state
                is per variable). Defaults to `"adam"`.
            loss: Each model's loss on the labels (models output logits). Defaults to `None`:
                `SparseCategoricalCrossentropy(from_logits=True)`.
            metrics: Metrics computed for every model, logged as `model_i_<name>`. Defaults to
                `None`.
            **kwargs: Passed to `keras.Model.compile` (e.g. `jit_compile`).
        """
        from tfkd.losses.base import per_sample_loss_fn

        optimizer, loss, metrics = convert_compile_arguments(optimizer, loss, metrics)  # Keras 3's
        if loss is None:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.label_loss_fn = per_sample_loss_fn("loss", loss)
        self.model_metrics = [
            named_metrics(metrics, f"model_{i}_") for i in range(len(self.models))
        ]
        super().compile(optimizer=optimizer, **kwargs)

    @property
    def metrics(self) -> Any:
        flat = [m for group in self.model_metrics for m in group]
        return [self.loss_tracker, *self.model_loss_trackers, *flat]

    def call(self, inputs: Any, training: bool | None = False) -> Any:
        return [model(inputs, training=training) for model in self.models]

    def train_step(self, data: Any) -> dict[str, Any]:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            outputs = self(x, training=True)
            losses = self._compute_losses(y, outputs, sample_weight)
            scaled_loss = average_over_global_batch(tf.add_n(losses))
            reg = regularization(self.models)
            if reg is not None:
                scaled_loss += tf.nn.scale_regularization_loss(reg)
        self.optimizer.minimize(scaled_loss, self.trainable_variables, tape=tape)
        return self._update_metrics(y, outputs, sample_weight, losses)

    def test_step(self, data: Any) -> dict[str, Any]:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        outputs = self(x, training=False)
        losses = self._compute_losses(y, outputs, sample_weight)
        return self._update_metrics(y, outputs, sample_weight, losses)

    def _compute_losses(self, y, outputs, sample_weight):
        """One per-sample loss `[batch]` per model: labels plus the mean over its peers."""
        batch = tf.shape(outputs[0])[0]
        count = len(outputs)
        losses = []
        for i, logits in enumerate(outputs):
            label = per_sample(self.label_loss_fn(y, logits), batch)
            peers = [
                soft_cross_entropy(outputs[j], logits, self.temperature)
                for j in range(count)
                if j != i
            ]
            mutual = tf.add_n(peers) / float(count - 1)
            total = label + self.distillation_loss_weight * tf.cast(mutual, label.dtype)
            losses.append(weighted(total, sample_weight))
        return losses

    def _update_metrics(self, y, outputs, sample_weight, losses):
        parts = zip(self.model_loss_trackers, losses, strict=True)
        groups = zip(self.model_metrics, outputs, strict=True)
        return update_metrics(self, tf.add_n(losses), parts, groups, y, sample_weight)

    def get_config(self) -> dict[str, Any]:
        return {
            "models": [keras.utils.serialize_keras_object(m) for m in self.models],
            "temperature": self.temperature,
            "distillation_loss_weight": self.distillation_loss_weight,
            "name": self.name,
        }

    @classmethod
    def from_config(
        cls,
        config: dict[str, Any],
        custom_objects: dict[str, Any] | None = None,
    ) -> "MutualDistiller":
        return cls(**with_models_deserialized(config, custom_objects))


def _check_models(models):
    if isinstance(models, keras.Model) or not isinstance(models, (list, tuple)):
        raise TypeError(
            "`models` must be a list of at least two Keras models. "
            f"Received: models={models!r} (of type {type(models).__name__}). "
            "Pass e.g. `tfkd.MutualDistiller(models=[model_a, model_b])`."
        )
    if len(models) < 2:
        raise ValueError(
            "Mutual learning needs at least two models. "
            f"Received: models with {len(models)} model(s). Add a peer, or use "
            "`tfkd.Distiller` with a trained teacher."
        )
    models = [check_model(f"models[{i}]", m) for i, m in enumerate(models)]
    for i, model in enumerate(models):
        for j in range(i):
            if models[j] is model:
                raise ValueError(
                    "Every model of a MutualDistiller must be a different object. Received the "
                    f"same model (name={model.name!r}) as models[{j}] and models[{i}]. Build each "
                    "peer separately (e.g. call your model-building function twice)."
                )
    _check_output_shapes(models)
    return models


def _check_output_shapes(models):
    shapes = []
    for model in models:
        try:
            shapes.append(tuple(model.output_shape)[1:])
        except (AttributeError, RuntimeError, TypeError):
            return  # a subclassed model not built yet: Keras checks shapes when it runs
    if len(set(shapes)) > 1:
        described = ", ".join(
            f"models[{i}] ({m.name!r}): {(None, *s)}"
            for i, (m, s) in enumerate(zip(models, shapes, strict=True))
        )
        raise ValueError(
            "The models of a MutualDistiller must have outputs of one shape, so each can learn "
            f"from the others'. Received output shapes {described}. Give every model the same "
            "number of classes."
        )
