"""What the schemes training several outputs at once share: named metrics and per-sample losses."""

from tfkd._keras import keras, tf

_ACCURACY_NAMES = ("accuracy", "acc")


def is_sparse_loss(loss):
    """Whether the labels are class indices for `loss` (its name or class says "sparse")."""
    if isinstance(loss, str):
        return "sparse" in loss
    name = getattr(loss, "name", None) or getattr(loss, "__name__", "") or ""
    return "sparse" in name or "sparse" in type(loss).__name__.lower()


def named_metrics(metrics, prefix, sparse_labels):
    """Fresh metric objects for `metrics` (names, functions or objects), named `<prefix><name>`.

    `"accuracy"` becomes sparse or categorical accuracy, following the labels the loss expects.
    """
    if metrics is None:
        return []
    if not isinstance(metrics, (list, tuple)):
        raise TypeError(
            "`metrics` must be a list of metrics (names, functions or `keras.metrics.Metric`s). "
            f"Received: metrics={metrics!r}. Pass e.g. `metrics=['accuracy']`."
        )
    return [_named_metric(m, prefix, sparse_labels) for m in metrics]


def _named_metric(metric, prefix, sparse_labels):
    if isinstance(metric, str) and metric in _ACCURACY_NAMES:
        sparse, dense = keras.metrics.SparseCategoricalAccuracy, keras.metrics.CategoricalAccuracy
        cls = sparse if sparse_labels else dense
        return cls(name=f"{prefix}{metric}")
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
        return _named_metric(fn, prefix, sparse_labels)
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


def per_sample(values, batch):
    """A loss value as `[batch]`: feature axes averaged, a scalar broadcast."""
    from tfkd.losses.base import reduce_to_per_sample

    values = reduce_to_per_sample(values)
    return tf.broadcast_to(values, [batch]) if values.shape.rank == 0 else values


def weighted(values, sample_weight):
    if sample_weight is None:
        return values
    return values * tf.reshape(tf.cast(sample_weight, values.dtype), [-1])


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
