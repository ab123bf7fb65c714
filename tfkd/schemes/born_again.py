"""`born_again`: self-distillation across generations of one architecture (Furlanello et al.)."""

from dataclasses import dataclass, field
from typing import Any

from tfkd._keras import keras, tf
from tfkd._validation import check_choice, check_int
from tfkd.keras3 import convert_optimizer


@dataclass
class BornAgainResult:
    """What `born_again` returns.

    Attributes:
        models: The trained student of every generation, oldest first (`models[-1]` is the last).
        scores: One dict per generation, `{"generation": g, <evaluate's logs>}` (`loss`,
            `student_loss`, `distillation_loss` and the compiled metrics, e.g. `accuracy`),
            measured on `validation_data` when given, else on the training data.
        histories: The `History` of each generation's `fit`.
    """

    models: list = field(default_factory=list)
    scores: list = field(default_factory=list)
    histories: list = field(default_factory=list)

    def best(self, metric: str = "accuracy", mode: str = "max") -> Any:
        """The model of the generation with the best `metric` (`mode` "max" or "min")."""
        if not self.scores or metric not in self.scores[0]:
            known = sorted(self.scores[0]) if self.scores else []
            raise ValueError(f"`metric` must be one of {known}. Received: metric={metric!r}.")
        pick = max if check_choice("mode", mode, ("max", "min")) == "max" else min
        index = pick(range(len(self.scores)), key=lambda i: self.scores[i][metric])
        return self.models[index]


def born_again(
    build_student: Any,
    teacher: Any,
    data: Any,
    generations: int = 3,
    *,
    distillation_losses: Any = None,
    student_loss_weight: float = 0.5,
    optimizer: Any = "adam",
    loss: Any = None,
    metrics: Any = ("accuracy",),
    **fit_kwargs: Any,
) -> BornAgainResult:
    """Trains generations of one architecture, each distilled from the one before.

    Born-again networks: generation 1 learns from `teacher`; every later generation is a fresh
    model from `build_student()` that learns from the previous generation's trained model, with
    the same losses, optimizer settings and `fit` arguments. Each teacher is frozen while it
    teaches; afterwards every returned model is trainable again.

    Args:
        build_student: A function with no arguments returning a new, untrained `tfkd.keras.Model`
            (called once per generation).
        teacher: The trained model generation 1 learns from.
        data: An `(x, y)` tuple of arrays or a `tf.data.Dataset` of `(x, y)` batches.
        generations: Number of student generations, at least 1. Defaults to `3`.
        distillation_losses: `tfkd.losses` objects, copied fresh for every generation. Defaults
            to `None`: `tfkd.losses.LogitsDistillation()`.
        student_loss_weight: Weight in [0, 1] of the label loss (as in `tfkd.Distiller`).
            Defaults to `0.5`.
        optimizer: An optimizer name, instance (its config is copied per generation) or a function
            returning one. Defaults to `"adam"`.
        loss: The label loss (logits). Defaults to `None`:
            `SparseCategoricalCrossentropy(from_logits=True)`.
        metrics: Metrics of every generation. Defaults to `("accuracy",)`.
        **fit_kwargs: Passed to every `fit` (`epochs`, `batch_size`, `validation_data`, ...).
            `validation_data`, when given, is also what the scores are measured on.

    Returns:
        A `BornAgainResult` with `.models`, `.scores` and `.histories`, one entry per generation.

    Raises:
        TypeError: If `build_student` is not callable or returns no Keras model, or `data` is
            neither an `(x, y)` tuple nor a dataset.
        ValueError: If `generations` < 1, or `build_student` returns a model it returned before.

    Example:
    >>> result = tfkd.born_again(tfkd.models.build_student, teacher, (x, y), generations=3,
    ...                          epochs=20, validation_data=(x_val, y_val))
    >>> [s["accuracy"] for s in result.scores]
    """
    from tfkd.distiller import Distiller
    from tfkd.losses.base import check_losses

    if not callable(build_student) or isinstance(build_student, keras.layers.Layer):
        raise TypeError(
            "`build_student` must be a function returning a new model. Received: "
            f"build_student={build_student!r} (of type {type(build_student).__name__}). Pass e.g. "
            "`tfkd.models.build_student` (the function, not a model)."
        )
    generations = check_int("generations", generations, minimum=1)
    fit_args, eval_args = _data_arguments(data, fit_kwargs.get("validation_data"))
    losses = check_losses(distillation_losses)
    result = BornAgainResult()
    for generation in range(1, generations + 1):
        student = _new_student(build_student, teacher, result.models)
        distiller = Distiller(
            teacher=teacher,
            student=student,
            distillation_losses=[_fresh(loss) for loss in losses] if losses else None,
            student_loss_weight=student_loss_weight,
            name=f"born_again_{generation}",
        )
        distiller.compile(
            optimizer=_fresh_optimizer(optimizer),
            loss=loss or keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=list(metrics or []),
        )
        result.histories.append(distiller.fit(*fit_args, **fit_kwargs))
        verbose = fit_kwargs.get("verbose", 0)
        scores = distiller.evaluate(*eval_args, verbose=verbose, return_dict=True)
        result.scores.append({"generation": generation, **{k: float(v) for k, v in scores.items()}})
        result.models.append(student)
        teacher = student
    for model in result.models:
        model.trainable = True
    return result


def _data_arguments(data, validation_data):
    """Positional `fit` arguments for `data`, and `evaluate` arguments for the scores."""
    fit_args = _positional("data", data)
    if validation_data is None:
        return fit_args, fit_args
    eval_args = _positional("validation_data", validation_data)
    return fit_args, eval_args


def _positional(name, data):
    if isinstance(data, tf.data.Dataset):
        return (data,)
    if isinstance(data, tuple) and len(data) == 2:
        return data
    raise TypeError(
        f"`{name}` must be an `(x, y)` tuple of arrays or a `tf.data.Dataset` of `(x, y)` batches. "
        f"Received: {name} of type {type(data).__name__}"
        f"{f' with {len(data)} items' if isinstance(data, tuple) else ''}."
    )


def _new_student(build_student, teacher, previous):
    student = build_student()
    if not isinstance(student, keras.Model):
        raise TypeError(
            "`build_student()` must return a `tfkd.keras.Model`. Received: "
            f"{student!r} (of type {type(student).__name__})."
        )
    if student is teacher or any(student is model for model in previous):
        raise ValueError(
            "`build_student()` must return a new model on every call. Received: the same model "
            f"(name={student.name!r}) again. Build the model inside the function."
        )
    return student


def _fresh(loss):
    """A new, unbuilt copy of a tfkd loss (adapters must not be shared across generations)."""
    return type(loss).from_config(loss.get_config())


def _fresh_optimizer(optimizer):
    optimizer = convert_optimizer(optimizer)  # a Keras 3 optimizer as its tf_keras equivalent
    if isinstance(optimizer, keras.optimizers.Optimizer):
        return type(optimizer).from_config(optimizer.get_config())
    if callable(optimizer) and not isinstance(optimizer, (str, dict)):
        return optimizer()
    return keras.optimizers.get(optimizer)
