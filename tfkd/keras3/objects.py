"""Keras 3 optimizers, losses, metrics, callbacks and `keras.distillation` losses as tf_keras ones.

tfkd trains tf_keras models, which cannot use Keras 3 objects (`Could not interpret optimizer
identifier`, `'EarlyStopping' object has no attribute '_implements_train_batch_hooks'`). Each
function here returns tf_keras (or `tfkd.losses`) objects unchanged, converts a built-in Keras 3
object to the tf_keras class of the same name with the same settings (a new object: the Keras 3
one is not updated by training), and refuses any other Keras 3 object with a `ValueError` naming
the tf_keras equivalent to pass instead. Each call that converts says so in one warning.

Keras 3 objects are recognised by their module (`keras.src...`), so Keras 3 is imported only when
the user already holds one of its objects.
"""

import inspect
import warnings

from tfkd._keras import import_keras3, keras

__all__ = [
    "is_keras3_object",
    "convert_optimizer",
    "convert_loss",
    "convert_metrics",
    "convert_callbacks",
    "convert_distillation_losses",
    "convert_compile_arguments",
]

# Keras 3 settings tf_keras lacks, with the values that mean "nothing to do".
_NEUTRAL = {
    "loss_scale_factor": (None,),
    "gradient_accumulation_steps": (None, 1),
    "reduction": ("sum_over_batch_size", "auto", "mean_with_sample_weight"),
    "dtype": (None, "float32"),
}

# Keras 3 callbacks tfkd rebuilds: `{class name: {tf_keras argument: Keras 3 attribute}}`.
_CALLBACKS = {
    "EarlyStopping": {
        "monitor": "monitor", "min_delta": "min_delta", "patience": "patience",
        "verbose": "verbose", "mode": "mode", "baseline": "baseline",
        "restore_best_weights": "restore_best_weights", "start_from_epoch": "start_from_epoch",
    },
    "ModelCheckpoint": {
        "filepath": "filepath", "monitor": "monitor", "verbose": "verbose",
        "save_best_only": "save_best_only", "save_weights_only": "save_weights_only",
        "mode": "mode", "save_freq": "save_freq", "initial_value_threshold": "best",
    },
    "ReduceLROnPlateau": {
        "monitor": "monitor", "factor": "factor", "patience": "patience", "verbose": "verbose",
        "mode": "mode", "min_delta": "min_delta", "cooldown": "cooldown", "min_lr": "min_lr",
    },
    "CSVLogger": {"filename": "filename", "separator": "sep", "append": "append"},
    "TensorBoard": {
        "log_dir": "log_dir", "histogram_freq": "histogram_freq", "write_graph": "write_graph",
        "write_images": "write_images", "write_steps_per_second": "write_steps_per_second",
        "update_freq": "update_freq", "embeddings_freq": "embeddings_freq",
        "embeddings_metadata": "embeddings_metadata",
    },
    "LearningRateScheduler": {"schedule": "schedule", "verbose": "verbose"},
    "TerminateOnNaN": {},
}


def is_keras3_object(obj):
    """Whether `obj` is a Keras 3 function or an instance of a Keras 3 class (or a subclass of
    one), found without importing Keras 3."""
    if inspect.isfunction(obj):
        return getattr(obj, "__module__", "").split(".")[0] == "keras"
    return any(cls.__module__.split(".")[0] == "keras" for cls in type(obj).__mro__)


def convert_optimizer(optimizer):
    """A Keras 3 optimizer as the tf_keras optimizer of the same class and settings.

    The learning rate (a number or a built-in schedule) and every setting tf_keras's class
    accepts carry over; the optimizer's state (step count, moments) does not.

    Args:
        optimizer: Anything `compile` accepts as `optimizer`.

    Returns:
        `optimizer` itself unless it is a Keras 3 optimizer, else a new `tfkd.keras` optimizer.

    Raises:
        ValueError: If the Keras 3 optimizer has no tf_keras equivalent, or uses a setting
            tf_keras lacks.
    """
    if not is_keras3_object(optimizer):
        return optimizer
    keras3 = import_keras3()
    if not isinstance(optimizer, keras3.optimizers.Optimizer):
        return optimizer
    fix = "Pass a tf_keras optimizer, e.g. `tfkd.keras.optimizers.Adam(learning_rate=1e-3)`."
    target = _builtin_twin(optimizer, keras.optimizers, keras.optimizers.Optimizer)
    if target is None:
        _refuse("optimizer", optimizer, fix)
    config = optimizer.get_config()
    rate = config.get("learning_rate")
    if isinstance(rate, dict):
        try:
            config["learning_rate"] = keras.optimizers.schedules.deserialize(
                {"class_name": rate.get("class_name"), "config": rate.get("config", {})}
            )
        except (TypeError, ValueError):
            _refuse("optimizer", optimizer, "Its learning rate schedule has no tf_keras "
                    "equivalent. " + fix)
    converted = target(**_accepted_config(config, target, "optimizer", optimizer, fix))
    _say_converted([f"optimizer ({_describe(optimizer)})"])
    return converted


def convert_loss(loss, name="loss"):
    """A Keras 3 loss object or loss function (or a list or dict of them, one per output) as the
    tf_keras one of the same name.

    Args:
        loss: Anything `compile` accepts as a loss.
        name: The argument's name, used in messages. Defaults to `"loss"`.

    Returns:
        The same structure, with each Keras 3 loss replaced.

    Raises:
        ValueError: If the Keras 3 loss has no tf_keras equivalent.
    """
    converted = []
    result = _map_structure(
        loss, name, lambda item, where: _convert_loss_or_metric(item, where, "losses", converted)
    )
    _say_converted(converted)
    return result


def convert_metrics(metrics, name="metrics"):
    """Keras 3 metrics (in a list, or a dict by output) as the tf_keras metrics of the same name.

    Args:
        metrics: Anything `compile` accepts as `metrics` (`None`, a list, a dict of lists).
        name: The argument's name, used in messages. Defaults to `"metrics"`.

    Returns:
        The same structure, with each Keras 3 metric replaced.

    Raises:
        ValueError: If a Keras 3 metric has no tf_keras equivalent.
    """
    converted = []
    result = _map_structure(
        metrics, name, lambda m, where: _convert_loss_or_metric(m, where, "metrics", converted)
    )
    _say_converted(converted)
    return result


def convert_callbacks(callbacks, name="callbacks"):
    """Keras 3 callbacks as tf_keras callbacks with the same settings.

    Converted: `EarlyStopping`, `ModelCheckpoint`, `ReduceLROnPlateau`, `CSVLogger`,
    `TensorBoard` (without `profile_batch`), `LearningRateScheduler`, `TerminateOnNaN`. Their
    state (epochs waited, best value so far) starts afresh.

    Args:
        callbacks: `None`, one callback, or a list of callbacks.
        name: The argument's name, used in messages. Defaults to `"callbacks"`.

    Returns:
        `callbacks` itself if it holds no Keras 3 callback (a single one is put in a list), else
        a new list with each Keras 3 callback replaced.

    Raises:
        ValueError: If a Keras 3 callback is of another kind (a subclass of yours included); the
            message names the `tfkd.keras.callbacks` class to use instead.
    """
    if callbacks is None:
        return None
    single = not isinstance(callbacks, (list, tuple))
    items = [callbacks] if single else list(callbacks)
    if not any(is_keras3_object(c) for c in items):
        return items if single else callbacks
    converted, said = [], []
    for index, callback in enumerate(items):
        where = name if single else f"{name}[{index}]"
        if is_keras3_object(callback):
            said.append(f"{where} ({_describe(callback)})")
            callback = _convert_callback(callback, where)
        converted.append(callback)
    _say_converted(said)
    return converted


def convert_distillation_losses(losses, name="distillation_losses"):
    """Keras 3 `keras.distillation` losses as their `tfkd.losses` equivalents.

    `LogitsDistillation(temperature, loss)` becomes `tfkd.losses.LogitsDistillation(temperature,
    loss="kl")` for a KL loss (the string `"kl_divergence"` or a `keras.losses.KLDivergence()`;
    note that Keras 3 applies the string's function to the softened logits themselves, while tfkd
    and Keras 3's `KLDivergence()` object compare the softmax distributions). Other loss names are
    passed to `tfkd.losses.LogitsDistillation` as they are, when it accepts them.
    `FeatureDistillation(loss, teacher_layer_name, student_layer_name)` becomes
    `tfkd.losses.FeatureDistillation(teacher_layer, student_layer, loss=...)` for `"mse"` and
    `"mae"` (tfkd's `"mse"`/`"l1"`).

    Args:
        losses: `None`, one loss or a list of losses.
        name: The argument's name, used in messages. Defaults to `"distillation_losses"`.

    Returns:
        `losses` itself if it holds no Keras 3 loss, else a list with each converted.

    Raises:
        ValueError: If a Keras 3 loss has no tfkd equivalent (e.g. one loss per output, or a
            subclass of yours); the message names the `tfkd.losses` class to use.
    """
    if losses is None:
        return None
    single = not isinstance(losses, (list, tuple))
    items = [losses] if single else list(losses)
    if not any(is_keras3_object(loss) for loss in items):
        return losses
    converted, said = [], []
    for index, loss in enumerate(items):
        where = name if single else f"{name}[{index}]"
        if is_keras3_object(loss):
            said.append(f"{where} ({_describe(loss)})")
            loss = _convert_distillation_loss(loss, where)
        converted.append(loss)
    _say_converted(said)
    return converted


def convert_compile_arguments(optimizer, loss, metrics):
    """`convert_optimizer`, `convert_loss` and `convert_metrics` at once, for a `compile`.

    Returns:
        `(optimizer, loss, metrics)`, each converted if it is a Keras 3 object.
    """
    return convert_optimizer(optimizer), convert_loss(loss), convert_metrics(metrics)


# ------------------------------------------------------------------------------------- helpers


def _describe(obj):
    return f"Keras 3 {type(obj).__name__}"


def _refuse(where, obj, fix):
    raise ValueError(
        f"`{where}` is a {_describe(obj)}, which tfkd cannot convert to tf_keras (the Keras tfkd "
        f"trains with). Received: {where}={obj!r}. {fix}"
    )


def _say_converted(items):
    if items:
        warnings.warn(
            f"tfkd converted Keras 3 objects to their tf_keras equivalents (the Keras tfkd trains "
            f"with): {', '.join(items)}. The new objects have the same settings; the Keras 3 "
            "ones are not updated by training. Pass `tfkd.keras` objects to silence this.",
            UserWarning,
            stacklevel=4,
        )


def _is_builtin(obj):
    module = obj.__module__ if inspect.isfunction(obj) else type(obj).__module__
    return module.startswith("keras.src.")


def _builtin_twin(obj, module, base):
    """The tf_keras class of the same name in `module` for a built-in Keras 3 object, or None."""
    if not _is_builtin(obj):
        return None
    target = getattr(module, type(obj).__name__, None)
    return target if isinstance(target, type) and issubclass(target, base) else None


def _accepted_config(config, target, where, obj, fix):
    accepted = set()
    for klass in target.__mro__:
        if "__init__" in vars(klass):
            accepted |= set(inspect.signature(klass.__init__).parameters)
    result = {}
    for key, value in config.items():
        if key in accepted:
            result[key] = value
        elif key not in _NEUTRAL or value not in _NEUTRAL[key]:
            _refuse(where, obj, f"It sets `{key}={value!r}`, which tf_keras's "
                    f"{target.__name__} does not have. {fix}")
    return result


def _map_structure(value, where, fn):
    if isinstance(value, dict):
        return {k: _map_structure(v, f"{where}[{k!r}]", fn) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_map_structure(v, f"{where}[{i}]", fn) for i, v in enumerate(value))
    return fn(value, where)


def _convert_loss_or_metric(obj, where, kind, said=None):
    if not is_keras3_object(obj):
        return obj
    keras3 = import_keras3()
    module = getattr(keras, kind)
    base = keras.losses.Loss if kind == "losses" else keras.metrics.Metric
    fix = f"Pass a tf_keras one instead, e.g. `tfkd.keras.{kind}.{_example(kind)}`."
    if callable(obj) and inspect.isfunction(obj):  # a Keras 3 loss or metric function
        target = getattr(module, obj.__name__, None) if _is_builtin(obj) else None
        if not callable(target):
            _refuse(where, obj, fix)
        converted = target
    else:
        k3_base = keras3.losses.Loss if kind == "losses" else keras3.metrics.Metric
        target = _builtin_twin(obj, module, base) if isinstance(obj, k3_base) else None
        if target is None:
            _refuse(where, obj, fix)
        config = {k: v for k, v in obj.get_config().items() if k != "dtype"}
        converted = target(**_accepted_config(config, target, where, obj, fix))
    if said is not None:
        said.append(f"{where} ({_describe(obj)})")
    return converted


def _example(kind):
    return "SparseCategoricalCrossentropy(from_logits=True)" if kind == "losses" else (
        "SparseCategoricalAccuracy()")


def _convert_callback(callback, where):
    attributes = _CALLBACKS.get(type(callback).__name__) if _is_builtin(callback) else None
    target = _builtin_twin(callback, keras.callbacks, keras.callbacks.Callback)
    if attributes is None or target is None:
        equivalent = type(callback).__name__ if target is not None else "Callback"
        _refuse(where, callback, f"Pass `tfkd.keras.callbacks.{equivalent}(...)` instead"
                + (" (subclass it for a callback of your own)." if equivalent == "Callback"
                   else "."))
    kwargs = {arg: getattr(callback, attribute) for arg, attribute in attributes.items()
              if hasattr(callback, attribute)}
    if "min_delta" in kwargs:
        kwargs["min_delta"] = abs(kwargs["min_delta"])  # Keras 3 flips its sign once used
    return target(**kwargs)


def _loss_name(loss):
    return getattr(loss, "__name__", None) or getattr(loss, "name", None)


def _convert_distillation_loss(loss, where):
    from tfkd import losses as tfkd_losses

    keras3 = import_keras3()
    distillation = getattr(keras3, "distillation", None)
    logits_cls = getattr(distillation, "LogitsDistillation", ())
    feature_cls = getattr(distillation, "FeatureDistillation", ())
    exact = type(loss) in (logits_cls, feature_cls)  # a subclass overrides what it computes
    items = loss.loss if exact else None
    if not exact or isinstance(items, (list, tuple, dict)):
        closest = "FeatureDistillation" if isinstance(loss, feature_cls) else "LogitsDistillation"
        _refuse(where, loss, f"Use `tfkd.losses.{closest}` (one loss a pair of outputs or "
                "layers; give several for several outputs), or subclass "
                "`tfkd.losses.DistillationLoss`.")
    name = _loss_name(items)
    try:
        if type(loss) is logits_cls:
            name = "kl" if name == "kl_divergence" else name
            return tfkd_losses.LogitsDistillation(temperature=loss.temperature, loss=name)
        name = {"mean_squared_error": "mse", "mean_absolute_error": "l1"}.get(name, name)
        return tfkd_losses.FeatureDistillation(
            loss.teacher_layer_name, loss.student_layer_name, loss=name
        )
    except (TypeError, ValueError) as error:
        _refuse(where, loss, f"Its loss {name!r} has no tfkd equivalent ({error}). Use "
                f"`tfkd.losses.{type(loss).__name__}` with one of the losses it lists.")
