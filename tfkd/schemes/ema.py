"""`EMATeacher`: a teacher that is the exponential moving average of the student's own weights."""

import weakref
from typing import Any

from tfkd._keras import keras, tf
from tfkd._validation import check_number
from tfkd.keras3 import check_model


@keras.utils.register_keras_serializable(package="tfkd")
class EMATeacher(keras.Model):
    """A copy of the student whose weights follow the student's as an exponential moving average.

    Self-distillation from earlier training ("knowledge from earlier epochs", as in Mean Teacher,
    Tarvainen & Valpola 2017): pass it as `Distiller(teacher=EMATeacher(student), student=student)`
    and after every optimizer step the Distiller sets each teacher weight `a` to
    `decay * a + (1 - decay) * w`, `w` the student's weight (non-float weights are copied). The
    average starts from the student's weights at construction; build it right before the fit.
    `ema.model` is the averaged model, a plain Keras model of the student's architecture (often
    worth exporting itself).

    Args:
        student: The student it follows, a Functional or Sequential `tfkd.keras.Model` (built).
        decay: How much of the average each step keeps, in [0, 1). Closer to 1 is slower and
            smoother; about `1 / (1 - decay)` steps are averaged. Defaults to `0.999`.
        name: Model name. Defaults to `"<student name>_ema"`.

    Raises:
        TypeError: If `student` is not a Keras model or `decay` not a number.
        ValueError: If `decay` is not in [0, 1), or the student cannot be cloned.

    Example:
    >>> distiller = tfkd.Distiller(teacher=tfkd.EMATeacher(student, decay=0.99), student=student)
    """

    _follows_student = True

    def __init__(
        self,
        student: keras.Model,
        decay: float = 0.999,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(student, dict):  # from_config
            student = keras.utils.deserialize_keras_object(student)
        student = check_model("student", student)
        super().__init__(name=name or f"{student.name}_ema", **kwargs)
        self.decay = check_number("decay", decay)
        if not 0.0 <= self.decay < 1.0:
            raise ValueError(
                f"`decay` must be in [0, 1). Received: decay={decay!r}. Typical values are 0.99 "
                "to 0.9999; decay=1 would never follow the student (use a frozen copy instead)."
            )
        self.model = _clone(student)
        self.model.trainable = False
        # A weak reference: tracking the student here would freeze it with the teacher.
        self._student_ref = weakref.ref(student)

    def call(self, inputs: Any, training: bool | None = False) -> Any:
        return self.model(inputs, training=False)

    @property
    def output_shape(self) -> Any:
        return self.model.output_shape

    @property
    def _feature_model(self):
        """The model whose layers the Distiller taps for feature losses."""
        return self.model

    def check_student(self, student: keras.Model) -> None:
        """Raises unless `student` is the model this average was built from."""
        if self._student_ref() is not student:
            raise ValueError(
                "An `EMATeacher` must follow the Distiller's own student. Received: "
                f"teacher={self.name!r} built from another model than student={student.name!r}. "
                "Pass `teacher=tfkd.EMATeacher(student)` with the same `student`."
            )

    def update(self, student: keras.Model) -> None:
        """Moves every weight one step toward the student's: `a = decay * a + (1 - decay) * w`."""
        for average, weight in zip(self.model.weights, student.weights, strict=True):
            if average.dtype.is_floating:
                decay = tf.cast(self.decay, average.dtype)
                average.assign(decay * average + (1.0 - decay) * tf.cast(weight, average.dtype))
            else:
                average.assign(weight)

    def get_config(self) -> dict[str, Any]:
        return {
            "student": keras.utils.serialize_keras_object(self.model),
            "decay": self.decay,
            "name": self.name,
        }


def _clone(student):
    is_graph = isinstance(student, keras.Sequential) or getattr(student, "_is_graph_network", False)
    try:
        if not is_graph:
            raise ValueError("not a Functional or Sequential model")
        clone = keras.models.clone_model(student)
    except (ValueError, TypeError) as error:
        raise ValueError(
            "`EMATeacher` copies the student, which needs a Functional or Sequential model. "
            f"Received: student={type(student).__name__}(name={student.name!r}). Rebuild it with "
            "the Functional API (`keras.Model(inputs, outputs)`) or as a `keras.Sequential`."
        ) from error
    if not student.built or len(clone.weights) != len(student.weights):
        raise ValueError(
            "`EMATeacher` needs a built student (its weights exist). Received: student="
            f"{student.name!r}, not built. Give it an input shape (`keras.Input(...)`) first."
        )
    clone.set_weights(student.get_weights())
    return clone
