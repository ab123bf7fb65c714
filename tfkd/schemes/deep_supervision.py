"""`DeepSupervision`: self-distillation inside one model, deeper layers teaching shallower heads."""

from typing import Any

from tfkd._keras import keras, tf
from tfkd._validation import check_fraction, check_non_negative, check_positive
from tfkd.keras3 import check_model, convert_compile_arguments
from tfkd.losses.distribute import average_over_global_batch
from tfkd.schemes._common import (
    named_metrics,
    per_sample,
    regularization,
    soft_cross_entropy,
    update_metrics,
    weighted,
)


@keras.utils.register_keras_serializable(package="tfkd")
class DeepSupervision(keras.Model):
    """Auxiliary classifier heads on shallow layers, taught by the model's deepest output.

    Self-distillation in the manner of "Be Your Own Teacher" (Zhang et al., 2019): a head on each
    tapped layer predicts the classes and learns from the labels and from the model's own final
    output (soft targets, no gradient into the final output through this term). The loss is
    `label_loss(final) + head_loss_weight * sum_k [w * label_loss(head_k) + (1 - w) *
    KL(softmax(final/T) || softmax(head_k/T)) * T**2]` with `w = student_loss_weight`. The heads'
    gradients also reach the shallow layers, which is what deep supervision is for; they also take
    the tapped layers' capacity, so a small network can lose accuracy at its final output (a
    3.6k-parameter CNN on 90 labelled digits: 84.1% against 87.8% alone, 93.8% against 97.1% on
    898; lower with every tap and head weight tried, `benchmarks/deep_supervision.py`). Tap deep
    networks with capacity to spare.

    `fit`/`evaluate` log `loss`, the compiled metrics of the final output under their own names
    (e.g. `accuracy`), and for each tap `<tap>_loss` and `<tap>_<metric>`. `call`/`predict` return
    `[final, head_1, ...]`. For export, `.model` (also `.without_heads()`) is the original model,
    trained, without heads; `.exit_model(tap)` is an early-exit model, the layers up to `tap` and
    its head.

    Args:
        model: A Functional or Sequential `tfkd.keras.Model` with one output (logits).
        taps: Names of the layers that get a head, e.g. `["conv1", "conv2"]`.
        head: A Keras layer (or model) used as a template, copied fresh for every tap; it must map
            the tap's output to the model's output shape. Defaults to `None`: global average
            pooling for feature maps, then a `Dense` layer with one unit per class.
        temperature: Positive float softening the final output for the heads. Defaults to `3.0`.
        student_loss_weight: Weight in [0, 1] of the heads' label loss against their distillation
            loss. Defaults to `0.5`.
        head_loss_weight: Non-negative weight of the heads' losses. Defaults to `1.0`.
        name: Model name. Defaults to `"<model name>_deep_supervision"`.

    Raises:
        TypeError: If `model` is not a Keras model or `taps` not a list of names.
        ValueError: If `model` is subclassed, a tap names no layer (the message lists the layer
            names) or repeats, or a head's output does not match the model's.

    Example:
    >>> ds = tfkd.DeepSupervision(model, taps=["conv1", "conv2"])
    >>> ds.compile(optimizer="adam", metrics=["accuracy"])
    >>> ds.fit(x, y, epochs=10)  # logs accuracy, conv1_accuracy, conv2_accuracy, ...
    >>> ds.model.save("model.keras"); early = ds.exit_model("conv2")
    """

    def __init__(
        self,
        model: keras.Model,
        taps: Any,
        head: Any = None,
        temperature: float = 3.0,
        student_loss_weight: float = 0.5,
        head_loss_weight: float = 1.0,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(model, dict):  # from_config
            model = keras.utils.deserialize_keras_object(model)
        if isinstance(head, dict):
            head = keras.layers.deserialize(head)
        model = _check_graph_model(check_model("model", model))
        super().__init__(name=name or f"{model.name}_deep_supervision", **kwargs)
        self.model = model
        self.taps = _check_taps(taps, model)
        self.head = _check_head(head)
        self.temperature = check_positive("temperature", temperature)
        self.student_loss_weight = check_fraction("student_loss_weight", student_loss_weight)
        self.head_loss_weight = check_non_negative("head_loss_weight", head_loss_weight)
        self.network = _build_network(model, self.taps, self.head)
        self.label_loss_fn = None
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.tap_loss_trackers = [keras.metrics.Mean(name=f"{tap}_loss") for tap in self.taps]
        self.output_metrics: list[list[Any]] = [[] for _ in range(len(self.taps) + 1)]

    def compile(
        self,
        optimizer: Any = "adam",
        loss: Any = None,
        metrics: Any = None,
        **kwargs: Any,
    ) -> None:
        """Configures training of the model and its heads.

        Args:
            optimizer: A Keras optimizer or its name. Defaults to `"adam"`.
            loss: The loss on the labels, for the final output and every head (logits). Defaults
                to `None`: `SparseCategoricalCrossentropy(from_logits=True)`.
            metrics: Metrics for the final output (own names) and each head (`<tap>_<name>`).
                Defaults to `None`.
            **kwargs: Passed to `keras.Model.compile`.
        """
        from tfkd.losses.base import per_sample_loss_fn

        optimizer, loss, metrics = convert_compile_arguments(optimizer, loss, metrics)  # Keras 3's
        if loss is None:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.label_loss_fn = per_sample_loss_fn("loss", loss)
        prefixes = [""] + [f"{tap}_" for tap in self.taps]
        self.output_metrics = [named_metrics(metrics, p) for p in prefixes]
        super().compile(optimizer=optimizer, **kwargs)

    @property
    def metrics(self) -> Any:
        flat = [m for group in self.output_metrics for m in group]
        return [self.loss_tracker, *self.tap_loss_trackers, *flat]

    def call(self, inputs: Any, training: bool | None = False) -> Any:
        return self.network(inputs, training=training)

    def train_step(self, data: Any) -> dict[str, Any]:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            outputs = self(x, training=True)
            total, tap_losses = self._compute_losses(y, outputs, sample_weight)
            scaled_loss = average_over_global_batch(total)
            reg = regularization([self.network])
            if reg is not None:
                scaled_loss += tf.nn.scale_regularization_loss(reg)
        self.optimizer.minimize(scaled_loss, self.network.trainable_variables, tape=tape)
        return self._update_metrics(y, outputs, sample_weight, total, tap_losses)

    def test_step(self, data: Any) -> dict[str, Any]:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        outputs = self(x, training=False)
        total, tap_losses = self._compute_losses(y, outputs, sample_weight)
        return self._update_metrics(y, outputs, sample_weight, total, tap_losses)

    def _compute_losses(self, y, outputs, sample_weight):
        final, heads = outputs[0], outputs[1:]
        batch = tf.shape(final)[0]
        total = per_sample(self.label_loss_fn(y, final), batch)
        w = self.student_loss_weight
        tap_losses = []
        for logits in heads:
            label = per_sample(self.label_loss_fn(y, logits), batch)
            soft = tf.cast(soft_cross_entropy(final, logits, self.temperature), label.dtype)
            tap_losses.append(weighted(w * label + (1.0 - w) * soft, sample_weight))
        total = weighted(total, sample_weight) + self.head_loss_weight * tf.add_n(tap_losses)
        return total, tap_losses

    def _update_metrics(self, y, outputs, sample_weight, total, tap_losses):
        parts = zip(self.tap_loss_trackers, tap_losses, strict=True)
        groups = zip(self.output_metrics, outputs, strict=True)
        return update_metrics(self, total, parts, groups, y, sample_weight)

    # ------------------------------------------------------------------------------ export

    def without_heads(self) -> keras.Model:
        """The original model, trained, without the heads (the same object as `.model`)."""
        return self.model

    def exit_model(self, tap: Any) -> keras.Model:
        """An early-exit model: the layers up to `tap` followed by that tap's head (logits)."""
        if tap not in self.taps:
            raise ValueError(
                f"`tap` must be one of the tapped layers {self.taps}. Received: tap={tap!r}."
            )
        index = self.taps.index(tap)
        return keras.Model(
            self.network.inputs,
            self.network.outputs[index + 1],
            name=f"{self.model.name}_{tap}_exit",
        )

    def get_config(self) -> dict[str, Any]:
        return {
            "model": keras.utils.serialize_keras_object(self.model),
            "taps": list(self.taps),
            "head": None if self.head is None else keras.layers.serialize(self.head),
            "temperature": self.temperature,
            "student_loss_weight": self.student_loss_weight,
            "head_loss_weight": self.head_loss_weight,
            "name": self.name,
        }


def _check_graph_model(model):
    if not (isinstance(model, keras.Sequential) or getattr(model, "_is_graph_network", False)):
        raise ValueError(
            "`DeepSupervision` taps layers, which needs a Functional or Sequential model. "
            f"Received: model={type(model).__name__}(name={model.name!r}). Rebuild it with the "
            "Functional API (`keras.Model(inputs, outputs)`) or as a `keras.Sequential`."
        )
    if len(model.outputs) != 1:
        raise ValueError(
            "`DeepSupervision` needs a model with one output (the logits). "
            f"Received: model={model.name!r} with {len(model.outputs)} outputs."
        )
    return model


def _check_taps(taps, model):
    if isinstance(taps, str) or not isinstance(taps, (list, tuple)) or not taps:
        raise TypeError(
            "`taps` must be a non-empty list of layer names. "
            f"Received: taps={taps!r}. Pass e.g. `taps=['conv1', 'conv2']`."
        )
    names = [layer.name for layer in model.layers]
    for tap in taps:
        if not isinstance(tap, str):
            raise TypeError(
                f"Every tap must be a layer name (str). Received: {tap!r} (of type "
                f"{type(tap).__name__}) in taps={list(taps)!r}."
            )
        if tap not in names:
            raise ValueError(
                f"The model has no layer named {tap!r}. Received: taps={list(taps)!r}. "
                f"Its layers are: {names}."
            )
    if len(set(taps)) != len(taps):
        raise ValueError(f"`taps` must not repeat a layer. Received: taps={list(taps)!r}.")
    return list(taps)


def _check_head(head):
    if head is not None and not isinstance(head, keras.layers.Layer):
        raise TypeError(
            "`head` must be a Keras layer or model used as a template for every tap, or None. "
            f"Received: head={head!r} (of type {type(head).__name__}). E.g. "
            "`head=keras.Sequential([keras.layers.GlobalAveragePooling2D(), "
            "keras.layers.Dense(10)])`."
        )
    return head


def _make_head(template, tap, tap_output, num_classes):
    name = f"{tap}_exit_head"
    if template is not None:
        config = keras.layers.serialize(template)
        config["config"] = {**config["config"], "name": name}
        return keras.layers.deserialize(config)
    layers = []
    rank = tap_output.shape.rank
    if rank == 4:
        layers.append(keras.layers.GlobalAveragePooling2D())
    elif rank == 3:
        layers.append(keras.layers.GlobalAveragePooling1D())
    elif rank is None or rank > 4:
        layers.append(keras.layers.Flatten())
    layers.append(keras.layers.Dense(num_classes))
    return keras.Sequential(layers, name=name)


def _build_network(model, taps, template):
    """One functional model: the model's output followed by a head on every tap."""
    final = model.outputs[0]
    outputs = [final]
    for tap in taps:
        tap_output = model.get_layer(tap).output
        head = _make_head(template, tap, tap_output, final.shape[-1])
        out = head(tap_output)
        if tuple(out.shape[1:]) != tuple(final.shape[1:]):
            raise ValueError(
                "A head must map its tap's output to the model's output shape. Received: head on "
                f"{tap!r} outputs {tuple(out.shape)}, the model outputs {tuple(final.shape)}. "
                "Give the head a `Dense` layer with one unit per class (and pooling for feature "
                "maps)."
            )
        outputs.append(out)
    return keras.Model(model.inputs, outputs, name=f"{model.name}_with_heads")
