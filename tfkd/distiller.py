"""`Distiller`: a Keras model training a student to mimic a frozen teacher, in either idiom."""

import json
import os
from typing import Any

from tfkd._keras import keras, tf
from tfkd._validation import check_fraction, check_positive
from tfkd.checks import check_first_batch
from tfkd.keras3 import (
    check_model,
    convert_callbacks,
    convert_distillation_losses,
    convert_loss,
    convert_metrics,
    convert_optimizer,
)
from tfkd.losses.base import (
    all_teacher_free,
    as_list,
    check_loss_weights,
    check_losses,
    per_sample,
    per_sample_loss_fn,
    weighted,
)
from tfkd.losses.distribute import average_over_global_batch
from tfkd.losses.reading import (
    OUTPUTS,
    build_reader,
    check_output_shapes,
    keys_read,
    pick,
    reader_shapes,
)
from tfkd.losses.response import LogitsDistillation, SoftenedKerasLoss
from tfkd.schemes.cached import CachedTeacher, split_teacher_outputs
from tfkd.schemes.precision import resolve_teacher_dtype, teacher_in_precision, weights_from


@keras.utils.register_keras_serializable(package="tfkd")
class Distiller(keras.Model):
    """Trains `student` to mimic `teacher` inside an ordinary `fit`.

    Two idioms, so code written for either runs unchanged:

    - keras.io's: `Distiller(student=, teacher=)` then `compile(optimizer, metrics, student_loss_fn,
      distillation_loss_fn, alpha, temperature)`; the loss is `alpha * student_loss + (1 - alpha) *
      distillation_loss_fn(softmax(t / T), softmax(s / T)) * T**2`.
    - Keras 3 `keras.distillation`'s: `Distiller(teacher=, student=, distillation_losses=,
      distillation_loss_weights=, student_loss_weight=)` then `compile(optimizer, loss, metrics)`;
      the loss is `student_loss_weight * student_loss + (1 - student_loss_weight) * sum(w_i *
      loss_i)`. Its loss classes take Keras 3's spellings too (`tfkd.losses.DistillationLoss`).

    The teacher is frozen, called with `training=False` and run outside the gradient tape: only the
    student (and any adapter a loss owns) gets gradients. `fit` and `evaluate` log `loss`,
    `student_loss`, `distillation_loss` and the compiled metrics on the student's outputs, and
    `total_loss` (Keras 3's name) beside `loss`, the same value; `predict` returns the student's
    outputs. `loss` is the whole objective above on every data set: `val_loss` (and `evaluate`'s
    `loss`) is that weighted sum on the validation data, teacher included (a cached teacher runs
    its live model on data without stored outputs), so `EarlyStopping` and `ModelCheckpoint`
    compare like with like; `val_student_loss` is the student's loss on the labels alone. A
    Distiller saves as a `.keras` file (`save`, `ModelCheckpoint(save_weights_only=False)`) that
    `tfkd.load_model` reads back, compiled, to continue training where it stopped. Losses are
    averaged over the global batch, so any `tf.distribute` strategy gives the single-device loss.

    Args:
        teacher: The trained teacher, a `tfkd.keras.Model` (or a list of models, averaged as an
            ensemble), a `tfkd.CachedTeacher` (its stored outputs: train on batches of
            `cached.dataset(x, y)`, `({"x": x, "teacher_outputs": outputs}, y[, sample_weight])`),
            or a `tfkd.EMATeacher(student)` (updated after every optimizer step).
        student: The model to train, a `tfkd.keras.Model`.
        distillation_losses: A `tfkd.losses.DistillationLoss` or a list of them (Keras 3 idiom).
            Defaults to `None`: `LogitsDistillation()` when compiled with `loss=`.
        distillation_loss_weights: One weight per distillation loss. Defaults to `None` (all 1.0).
        student_loss_weight: Weight in [0, 1] of the student's loss on the labels (Keras 3 idiom).
            Defaults to `0.5`.
        teacher_dtype: The precision of the teacher's forward pass: `None` (as built),
            `"float32"`, `"bfloat16"`, `"float16"`, or `"auto"` (bfloat16 on CPUs with
            AVX512_BF16/AMX and on GPUs of compute capability 8.0+, float16 on older GPUs, else
            float32; logged). A lower precision runs a copy of the teacher (the user's teacher is
            unchanged) and casts its outputs and features to float32 for the losses; see
            `tfkd.schemes.precision`. Defaults to `None`.
        name: Model name. Defaults to `"distiller"`.

    Example:
    >>> distiller = tfkd.Distiller(teacher=teacher, student=student)
    >>> distiller.compile(optimizer="adam", metrics=["accuracy"],
    ...     student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    ...     distillation_loss_fn=keras.losses.KLDivergence(), alpha=0.1, temperature=10)
    >>> distiller.fit(x, y, epochs=3)
    """

    def __init__(
        self,
        teacher: Any = None,
        student: Any = None,
        distillation_losses: Any = None,
        distillation_loss_weights: Any = None,
        student_loss_weight: float = 0.5,
        teacher_dtype: str | None = None,
        name: str | None = "distiller",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        distillation_losses = convert_distillation_losses(distillation_losses)  # Keras 3's
        self.student = check_model("student", student)
        self.teacher = _resolve_teacher(teacher, distillation_losses)
        if self.teacher is self.student:
            raise ValueError(
                "`teacher` and `student` must be different models. Received the same model "
                f"(name={student.name!r}) for both. Pass a separate, trained teacher, or use "
                "`tfkd.EMATeacher(student)` to distil a model from its own moving average."
            )
        # An EMATeacher follows the student: updated after every optimizer step.
        self._teacher_follows_student = getattr(self.teacher, "_follows_student", False)
        if self._teacher_follows_student:
            self.teacher.check_student(self.student)
        self.teacher.trainable = False
        self.teacher_dtype = resolve_teacher_dtype(teacher_dtype)  # "auto" picked and logged
        self._teacher_dtype_argument = teacher_dtype
        # What runs the teacher: itself, or an untracked copy computing in `teacher_dtype`.
        object.__setattr__(
            self, "_teacher_compute", teacher_in_precision(self.teacher, self.teacher_dtype)
        )
        self.distillation_losses = check_losses(distillation_losses)
        self.distillation_loss_weights = check_loss_weights(
            distillation_loss_weights, self.distillation_losses
        )
        self.student_loss_weight = check_fraction("student_loss_weight", student_loss_weight)
        self._student_loss_weight_argument = self.student_loss_weight  # keras.io's alpha replaces
        self._uses_constructor_losses = distillation_losses is not None
        self.student_loss_fn = None
        self.adapters: list[Any] = []
        if self.distillation_losses:
            self._prepare_losses()
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.total_loss_tracker = keras.metrics.Mean(name="total_loss")  # Keras 3's name of loss
        self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(name="distillation_loss")

    # ----------------------------------------------------------------------------------- compile

    def compile(
        self,
        optimizer: Any = "rmsprop",
        loss: Any = None,
        metrics: Any = None,
        student_loss_fn: Any = None,
        distillation_loss_fn: Any = None,
        alpha: float | None = None,
        temperature: float | None = None,
        **kwargs: Any,
    ) -> None:
        """Configures training in either idiom (see the class docstring).

        Args:
            optimizer: A Keras optimizer or its name. Defaults to `"rmsprop"`.
            loss: The student's loss on the labels (Keras 3 idiom). Defaults to `None`.
            metrics: Metrics computed on the student's outputs. Defaults to `None`.
            student_loss_fn: The student's loss on the labels (keras.io idiom). Defaults to `None`.
            distillation_loss_fn: A Keras loss between softened teacher and student probabilities
                (keras.io idiom). Defaults to `None`.
            alpha: Weight of `student_loss_fn` (keras.io idiom). Defaults to `0.1`.
            temperature: Softening temperature (keras.io idiom). Defaults to `3`.
            **kwargs: Passed to `keras.Model.compile` (e.g. `jit_compile`, `steps_per_execution`).

        Raises:
            ValueError: If both idioms are mixed, or a required loss is missing.
        """
        optimizer, metrics = convert_optimizer(optimizer), convert_metrics(metrics)  # Keras 3's
        loss, student_loss_fn = convert_loss(loss), convert_loss(student_loss_fn, "student_loss_fn")
        distillation_loss_fn = convert_loss(distillation_loss_fn, "distillation_loss_fn")
        keras_io_args = {
            "student_loss_fn": student_loss_fn,
            "distillation_loss_fn": distillation_loss_fn,
            "alpha": alpha,
            "temperature": temperature,
        }
        given = {k: v for k, v in keras_io_args.items() if v is not None}
        if given:
            self._compile_keras_io(loss, **keras_io_args)
        else:
            self._compile_keras3(loss)
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)
        # What `get_compile_config` saves, as JSON text (a dict attribute would be tracked).
        arguments = {"optimizer": optimizer, "loss": loss, "metrics": metrics, **given, **kwargs}
        self._compile_arguments_json = json.dumps(keras.utils.serialize_keras_object(arguments))

    def _compile_keras_io(self, loss, student_loss_fn, distillation_loss_fn, alpha, temperature):
        mixed = [f"{k}=" for k, v in (("loss", loss),) if v is not None]
        if self._uses_constructor_losses:
            mixed.append("distillation_losses= (in the constructor)")
        if mixed:
            raise ValueError(
                "`compile` got arguments of both Distiller idioms: keras.io's (`student_loss_fn`, "
                "`distillation_loss_fn`, `alpha`, `temperature`) and Keras 3's. "
                f"Received: {', '.join(mixed)} together with keras.io arguments. Use one idiom: "
                "either `compile(optimizer, metrics, student_loss_fn, distillation_loss_fn, alpha, "
                "temperature)`, or `Distiller(..., distillation_losses=[...])` then "
                "`compile(optimizer, loss, metrics)`."
            )
        for arg, value in (
            ("student_loss_fn", student_loss_fn),
            ("distillation_loss_fn", distillation_loss_fn),
        ):
            if value is None:
                raise ValueError(
                    f"keras.io's idiom needs `{arg}`. Received: {arg}=None. Pass a Keras loss, "
                    "e.g. `student_loss_fn="
                    "keras.losses.SparseCategoricalCrossentropy(from_logits=True)` "
                    "and `distillation_loss_fn=keras.losses.KLDivergence()`."
                )
        alpha = 0.1 if alpha is None else alpha
        temperature = 3.0 if temperature is None else temperature
        self.student_loss_weight = check_fraction("alpha", alpha)
        self.student_loss_fn = per_sample_loss_fn("student_loss_fn", student_loss_fn)
        self.distillation_losses = [
            SoftenedKerasLoss(
                per_sample_loss_fn("distillation_loss_fn", distillation_loss_fn),
                check_positive("temperature", temperature),
            )
        ]
        self.distillation_loss_weights = [1.0]
        self._prepare_losses()

    def _compile_keras3(self, loss):
        if loss is None and self.student_loss_weight > 0:
            raise ValueError(
                "`compile` needs the student's loss on the labels. Received: loss=None. Pass "
                "`loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)` "
                "(Keras 3 idiom), "
                "or keras.io's `student_loss_fn=` and `distillation_loss_fn=`; or set "
                "`student_loss_weight=0` to train on the teacher alone."
            )
        if isinstance(loss, (list, tuple, dict)):
            raise ValueError(
                "`loss` must be a single loss for the student's output. "
                f"Received: loss={loss!r}. Pass one Keras loss (name, function or object)."
            )
        self.student_loss_fn = None if loss is None else per_sample_loss_fn("loss", loss)
        if not self.distillation_losses:
            self.distillation_losses = [LogitsDistillation()]
            self.distillation_loss_weights = [1.0]
            self._prepare_losses()

    def _prepare_losses(self):
        """Checks what the losses read against both models and builds the extractors once."""
        self._teacher_keys = keys_read(self.distillation_losses, 0, self._teacher_compute)
        self._student_keys = keys_read(self.distillation_losses, 1, self.student)
        self._teacher_reader = _teacher_reader(self._teacher_compute, self._teacher_keys)
        self._student_reader = build_reader("student", self.student, self._student_keys)
        check_output_shapes(self.teacher, self.student, self.distillation_losses)
        for loss in self.distillation_losses:
            loss.validate_model_compatibility(self.teacher, self.student)
        teacher_shapes = reader_shapes(self._teacher_reader, self._teacher_keys)
        student_shapes = reader_shapes(self._student_reader, self._student_keys)
        for loss in self.distillation_losses:
            if not loss.built and teacher_shapes is not None and student_shapes is not None:
                loss.build(
                    pick(teacher_shapes, self._teacher_keys, loss, side=0),
                    pick(student_shapes, self._student_keys, loss, side=1),
                )
        # Adapters owned by losses train with the student; a tracked list makes them checkpointed.
        self.adapters = [
            layer for loss in self.distillation_losses for layer in loss.trainable_layers
        ]

    # ------------------------------------------------------------------------------ the steps

    def call(self, inputs: Any, training: bool | None = False) -> Any:
        return self.student(inputs, training=training)

    def step_variables(self) -> Any:
        """The variables a training step updates, in the optimizer's order: the student's, then
        the adapters' of the losses."""
        return self.student.trainable_variables + [
            v for layer in self.adapters for v in layer.trainable_variables
        ]

    def train_step(self, data: Any) -> dict[str, Any]:
        x, y, sample_weight, cached = self._unpack(data)
        self.built = True  # the Distiller is built by its first step (`summary()` after `fit`)
        teacher_values = self._read_teacher(x, cached)
        variables = self.step_variables()
        with tf.GradientTape() as tape:
            student_values = self._read_student(x, training=True)
            losses = self._compute_losses(y, teacher_values, student_values, sample_weight)
            scaled_loss = average_over_global_batch(losses["total"])
            if self.student.losses:
                scaled_loss += tf.nn.scale_regularization_loss(tf.add_n(self.student.losses))
        self.optimizer.minimize(scaled_loss, variables, tape=tape)
        if self._teacher_follows_student:
            self.teacher.update(self.student)
        return self._update_metrics(y, student_values[OUTPUTS], sample_weight, losses)

    def test_step(self, data: Any) -> dict[str, Any]:
        x, y, sample_weight, cached = self._unpack(data)
        self.built = True
        teacher_values = self._read_teacher(x, cached)
        student_values = self._read_student(x, training=False)
        losses = self._compute_losses(y, teacher_values, student_values, sample_weight)
        return self._update_metrics(y, student_values[OUTPUTS], sample_weight, losses)

    def predict_step(self, data: Any) -> Any:
        x = self._unpack(data)[0]
        return self.student(x, training=False)

    def _unpack(self, data):
        """`(x, y, sample_weight, cached teacher outputs or None)` from one batch."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        cached = None
        if isinstance(self.teacher, CachedTeacher):  # x = {"x": ..., "teacher_outputs": ...}
            x, cached = split_teacher_outputs(x)
        return x, y, sample_weight, cached

    def _read_teacher(self, x, cached=None):
        if cached is not None:
            return {OUTPUTS: tf.stop_gradient(self.teacher.decode(cached))}
        values = self._teacher_reader(x, training=False)
        if self.teacher_dtype is not None:  # a lower-precision teacher: float32 for the losses
            values = [tf.cast(v, tf.float32) for v in as_list(values)]
        pairs = zip(self._teacher_keys, as_list(values), strict=False)
        return {key: tf.stop_gradient(v) for key, v in pairs}

    def _read_student(self, x, training):
        values = self._student_reader(x, training=training)
        return dict(zip(self._student_keys, as_list(values), strict=False))

    def _compute_losses(self, y, teacher_values, student_values, sample_weight):
        """Per-sample losses (weighted by `sample_weight`), reduced over the global batch later."""
        # Every value is cast to float32 by `per_sample` (mixed precision adds float16 ones).
        y_pred = student_values[OUTPUTS]
        batch = tf.shape(y_pred)[0]
        student_loss = tf.zeros([batch], tf.float32)
        if self.student_loss_fn is not None:
            student_loss = per_sample(self.student_loss_fn(y, y_pred), batch)
        distill_loss = tf.zeros([batch], tf.float32)
        weights = self.distillation_loss_weights
        for loss, weight in zip(self.distillation_losses, weights, strict=True):
            value = loss.compute(
                pick(teacher_values, self._teacher_keys, loss, side=0),
                pick(student_values, self._student_keys, loss, side=1),
                labels=y,
            )
            distill_loss += weight * per_sample(value, batch)
        w = self.student_loss_weight
        total = w * student_loss + (1.0 - w) * distill_loss
        losses = {"total": total, "student": student_loss, "distillation": distill_loss}
        return {k: weighted(v, sample_weight) for k, v in losses.items()}

    def _update_metrics(self, y, y_pred, sample_weight, losses):
        # Per-sample values into Mean trackers: the reported loss is the mean over the global batch
        # under any strategy (each replica adds its samples).
        regularization = tf.add_n(self.student.losses) if self.student.losses else 0.0
        self.loss_tracker.update_state(losses["total"] + regularization)
        self.total_loss_tracker.update_state(losses["total"] + regularization)
        self.student_loss_tracker.update_state(losses["student"])
        self.distillation_loss_tracker.update_state(losses["distillation"])
        if y is not None:
            self.compiled_metrics.update_state(y, y_pred, sample_weight)
        trackers = [
            self.loss_tracker,
            self.total_loss_tracker,
            self.student_loss_tracker,
            self.distillation_loss_tracker,
        ]
        others = [m for m in self.metrics if all(m is not t for t in trackers)]
        return {m.name: m.result() for m in trackers + others}

    # ----------------------------------------------------------------------------- fit & co.

    def fit(
        self,
        x: Any = None,
        y: Any = None,
        *args: Any,
        callbacks: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Keras `fit`, checking for labels and adding what compression wrappers need.

        A pruned student gets TF-MOT's `UpdatePruningStep` (and the schedule's end step) without
        the user adding callbacks.
        """
        _check_has_labels(x, y, self.student_loss_fn)
        weights_from(self._teacher_compute, self.teacher)  # e.g. after `load_weights`
        # One sentence for data that cannot fit, a warning for an untrained teacher, not a trace.
        check_first_batch(x, y, kwargs.get("batch_size"), self.student, self._live_teacher(),
                          self.student_loss_fn, check_teacher=not self._teacher_follows_student,
                          teacher_name=f"teacher {self.teacher.name!r}")
        if isinstance(self.teacher, CachedTeacher):
            self.teacher.check_training_data(x)
            validation = kwargs.get("validation_data")
            validation = validation[0] if isinstance(validation, (tuple, list)) else validation
            if validation is not None:
                self.teacher.check_evaluation_data(validation, "validation_data")
        from tfkd.optimize.callbacks import training_callbacks

        callbacks = convert_callbacks(callbacks)  # Keras 3 callbacks as tf_keras ones
        if isinstance(callbacks, keras.callbacks.Callback):
            callbacks = [callbacks]  # one callback object, as `keras.Model.fit` accepts
        if isinstance(self.teacher, CachedTeacher):
            self.teacher.check_checkpoints(callbacks)
        callbacks = training_callbacks(self.student, callbacks)
        return super().fit(x, y, *args, callbacks=callbacks, **kwargs)

    def evaluate(self, x: Any = None, y: Any = None, *args: Any, **kwargs: Any) -> Any:
        """Keras `evaluate`, checking for the labels the student's loss needs."""
        _check_has_labels(x, y, self.student_loss_fn, method="evaluate")
        weights_from(self._teacher_compute, self.teacher)
        check_first_batch(x, y, kwargs.get("batch_size"), self.student, self._live_teacher(),
                          self.student_loss_fn, check_teacher=False)
        if isinstance(self.teacher, CachedTeacher):
            self.teacher.check_evaluation_data(x)
        return super().evaluate(x, y, *args, **kwargs)

    def _live_teacher(self):
        """The teacher model run on inputs (in its precision), or `None` (cached, EMA, none)."""
        teacher = self._teacher_compute
        if isinstance(self.teacher, CachedTeacher) or not isinstance(teacher, keras.Model):
            return None
        return teacher

    # --------------------------------------------------------------------------- save & load

    def save(self, filepath: str | os.PathLike[str], *args: Any, **kwargs: Any) -> None:
        """Keras `save`, to a `.keras` file: teacher, student, losses, compile arguments and the
        optimizer's state, which `tfkd.load_model` reads back to continue training.

        Raises:
            ValueError: For another format (SavedModel, HDF5), which cannot hold the Distiller's
                training step (export `distiller.student` for inference instead), or a cached
                teacher (data, not a model).
        """
        if isinstance(self.teacher, CachedTeacher):
            raise self.teacher.saving_error(f"distiller.save({filepath!r})")
        path = os.fspath(filepath) if isinstance(filepath, (str, os.PathLike)) else None
        if path is not None and not path.endswith(".keras"):
            raise ValueError(
                "A Distiller saves as a `.keras` file (its teacher, student, losses and optimizer "
                f"state). Received: filepath={path!r}. Pass a path ending in `.keras` (e.g. "
                "`ModelCheckpoint('distiller.keras', save_weights_only=False)`), or save "
                "`distiller.student` (or export it with `tfkd.export`) for inference."
            )
        return super().save(filepath, *args, **kwargs)

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments, models and losses serialized (what `from_config` takes).

        Losses made by `compile` (keras.io's idiom, Keras 3's default `LogitsDistillation`) are
        not constructor arguments: they come back through `get_compile_config`.
        """
        constructor_losses = self._uses_constructor_losses
        serialize = keras.utils.serialize_keras_object
        return {
            "teacher": serialize(self.teacher),
            "student": serialize(self.student),
            "distillation_losses": (
                [serialize(loss) for loss in self.distillation_losses]
                if constructor_losses else None
            ),
            "distillation_loss_weights": (
                list(self.distillation_loss_weights) if constructor_losses else None
            ),
            "student_loss_weight": self._student_loss_weight_argument,
            "teacher_dtype": self._teacher_dtype_argument,
            "name": self.name,
        }

    @classmethod
    def from_config(
        cls,
        config: dict[str, Any],
        custom_objects: dict[str, Any] | None = None,
    ) -> "Distiller":
        """Rebuilds a Distiller from `get_config`: teacher, student and losses revived."""
        config = dict(config)

        def revive(item):
            if isinstance(item, dict):
                return keras.utils.deserialize_keras_object(item, custom_objects=custom_objects)
            return item

        config["teacher"], config["student"] = revive(config["teacher"]), revive(config["student"])
        if config.get("distillation_losses") is not None:
            config["distillation_losses"] = [revive(c) for c in config["distillation_losses"]]
        return cls(**config)

    def get_compile_config(self) -> dict[str, Any] | None:
        """`compile`'s arguments in either idiom (optimizer, losses, metrics, `alpha`, ...)."""
        if not self._is_compiled or not hasattr(self, "_compile_arguments_json"):
            return None
        return json.loads(self._compile_arguments_json)

    def compile_from_config(self, config: dict[str, Any]) -> None:
        """Compiles as `get_compile_config` says, and builds the optimizer so that its saved
        state (step count, moments) loads: training continues where it stopped."""
        self.compile(**keras.utils.deserialize_keras_object(config))
        if hasattr(self.optimizer, "build"):  # legacy optimizers create their slots lazily
            self.optimizer.build(self.step_variables())


# ---------------------------------------------------------------------------------- helpers


def _resolve_teacher(teacher, losses=None):
    if teacher is None and all_teacher_free(losses):
        from tfkd.losses.virtual_teacher import NoTeacher  # e.g. TeacherFreeKD: no teacher to run

        return NoTeacher()
    if isinstance(teacher, CachedTeacher):
        return teacher  # outputs read from the data (see `_unpack`), else from `teacher.teacher`
    if isinstance(teacher, (list, tuple)):
        from tfkd.schemes.ensemble import Ensemble

        return Ensemble(list(teacher))
    return check_model("teacher", teacher)


def _teacher_reader(teacher, keys):
    """`build_reader` for the teacher; a cached teacher's reader is its live model (or None)."""
    if not isinstance(teacher, CachedTeacher):
        return build_reader("teacher", teacher, keys)
    if keys == [OUTPUTS]:
        return teacher.teacher  # runs on data without stored outputs (validation, test)
    raise ValueError(
        "A cached teacher stores only its outputs, so losses cannot read its layers "
        f"{keys[1:]}. Received: teacher={teacher!r}. Distil from the live teacher "
        "(`teacher=model`) for feature and relation losses on inner layers, or use losses that "
        "read the outputs."
    )


def _check_has_labels(x, y, student_loss_fn, method="fit"):
    if student_loss_fn is None:
        return
    if isinstance(x, tf.data.Dataset):
        spec = x.element_spec
        if isinstance(spec, (tuple, list)) and len(spec) >= 2:
            return
    elif y is not None or x is None or not _is_array(x):
        return
    raise ValueError(
        f"`{method}` needs labels for the student's loss. Received: y=None with "
        f"x of type {type(x).__name__}. Pass `{method}(x, y)`, or a dataset of `(x, y)` pairs; "
        "to train on the teacher alone, construct the Distiller with `student_loss_weight=0` and "
        "compile without a student loss."
    )


def _is_array(x):
    return hasattr(x, "shape") and hasattr(x, "dtype")

