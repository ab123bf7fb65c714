"""What the schemes training several outputs at once share: named metrics and per-sample losses."""

from tfkd._keras import keras, tf
from tfkd.losses.base import per_sample as per_sample  # one definition, in losses
from tfkd.losses.base import weighted as weighted

_ACCURACY_NAMES = ("accuracy", "acc")


def accuracy(y_true, y_pred):
    """Per-sample accuracy `[batch]`, its kind resolved from the shapes as Keras's `compile` does.

    One output unit: binary accuracy (threshold 0.5). Labels of lower rank than the outputs, or
    one label per sample beside several outputs: class indices (sparse). Otherwise one-hot (or
    soft) labels: the argmax of both is compared.

    Args:
        y_true: Labels, class indices `[batch]` / `[batch, 1]` or one-hot `[batch, classes]`.
        y_pred: Model outputs (logits or probabilities) `[batch, classes]`.

    Returns:
        A float tensor `[batch]` of 0s and 1s.
    """
    y_true, y_pred = tf.convert_to_tensor(y_true), tf.convert_to_tensor(y_pred)
    true_rank, pred_rank = y_true.shape.rank, y_pred.shape.rank
    true_last = y_true.shape[-1] if true_rank else None
    pred_last = y_pred.shape[-1] if pred_rank else None
    if pred_last == 1:
        return keras.metrics.binary_accuracy(y_true, y_pred)
    sparse = (true_rank is not None and pred_rank is not None and true_rank < pred_rank) or (
        true_last == 1 and pred_last is not None and pred_last > 1
    )
    if sparse:
        return keras.metrics.sparse_categorical_accuracy(y_true, y_pred)
    return keras.metrics.categorical_accuracy(y_true, y_pred)


def named_metrics(metrics, prefix):
    """Fresh metric objects for `metrics` (names, functions or objects), named `<prefix><name>`.

    `"accuracy"` (or `"acc"`) becomes `accuracy`, whose kind (binary, sparse or categorical)
    follows the shapes of the labels and outputs it receives, as in Keras's `compile`.
    """
    if metrics is None:
        return []
    if not isinstance(metrics, (list, tuple)):
        raise TypeError(
            "`metrics` must be a list of metrics (names, functions or `keras.metrics.Metric`s). "
            f"Received: metrics={metrics!r}. Pass e.g. `metrics=['accuracy']`."
        )
    return [_named_metric(m, prefix) for m in metrics]


def _named_metric(metric, prefix):
    if isinstance(metric, str) and metric in _ACCURACY_NAMES:
        return keras.metrics.MeanMetricWrapper(accuracy, name=f"{prefix}{metric}")
    if isinstance(metric, keras.metrics.Metric):
        config = {**metric.get_config(), "name": f"{prefix}{metric.name}"}
        return type(metric).from_config(config)
    try:
        fn = keras.metrics.get(metric)
    except ValueError as error:
        raise ValueError(
            f"`metrics` names no Keras metric. Received: {metric!r}. "
            "Pass e.g. 'accuracy' or a `keras.metrics.Metric`."
        ) from error
    if isinstance(fn, keras.metrics.Metric):
        return _named_metric(fn, prefix)
    name = metric if isinstance(metric, str) else getattr(fn, "__name__", "metric")
    return keras.metrics.MeanMetricWrapper(fn, name=f"{prefix}{name}")


def soft_cross_entropy(teacher_logits, student_logits, temperature):
    """`KL(softmax(t/T) || softmax(s/T)) * T**2` per sample (teacher side without gradient)."""
    t = temperature
    teacher_logits = tf.stop_gradient(tf.cast(teacher_logits, student_logits.dtype))
    log_p_teacher = tf.nn.log_softmax(teacher_logits / t, axis=-1)
    log_p_student = tf.nn.log_softmax(student_logits / t, axis=-1)
    kl = tf.reduce_sum(tf.exp(log_p_teacher) * (log_p_teacher - log_p_student), axis=-1)
    return kl * t**2


def regularization(models):
    losses = [loss for m in models for loss in m.losses]
    return tf.add_n(losses) if losses else None


def mean_tracker(name):
    return keras.metrics.Mean(name=name)


def with_models_deserialized(config, custom_objects=None):
    """A copy of a scheme's config whose `"models"` are Keras models again (for `from_config`)."""
    config = dict(config)
    config["models"] = [
        keras.utils.deserialize_keras_object(m, custom_objects=custom_objects)
        for m in config["models"]
    ]
    return config


def update_metrics(model, total, parts, groups, y, sample_weight):
    """Updates `model.loss_tracker` with `total`, each `(tracker, loss)` of `parts` and each
    `(metrics, outputs)` of `groups`; returns the logs of all of `model.metrics`."""
    model.loss_tracker.update_state(total)
    for tracker, loss in parts:
        tracker.update_state(loss)
    for metrics, outputs in groups:
        for metric in metrics:
            metric.update_state(y, outputs, sample_weight)
    return {m.name: m.result() for m in model.metrics}
