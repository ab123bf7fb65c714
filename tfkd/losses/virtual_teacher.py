"""Teacher-free distillation: a virtual teacher made by hand, with no trained model."""

from typing import Any

from tfkd._keras import keras, tf
from tfkd._validation import check_open_fraction, check_positive
from tfkd.losses.base import DistillationLoss
from tfkd.losses.response import class_indices


@keras.utils.register_keras_serializable(package="tfkd")
class TeacherFreeKD(DistillationLoss):
    """Distillation from a virtual teacher (Tf-KD_reg, Yuan et al., 2020).

    The virtual teacher puts `correct_probability` on the label and spreads the rest uniformly
    over the other classes. Its distribution `u` is treated as a teacher with logits `log u`, so the
    loss is `KL(softmax(log u / T) || softmax(s / T)) * T**2`, the usual KD term; at `T=1` the
    target is `u` itself. (The authors' code softens `u` as `softmax(u / T)` and leaves the student
    at `T=1`; this form keeps the temperature's meaning the same as in `LogitsDistillation`.)

    The loss reads only the student's outputs and the labels (`uses_labels=True`,
    `uses_teacher=False`): a `Distiller` whose losses are all teacher-free needs no teacher,
    `tfkd.Distiller(student=s, distillation_losses=[tfkd.losses.TeacherFreeKD()])`. Called on its
    own, pass anything (e.g. `None`) for the teacher values and the labels as `labels=`.

    Args:
        correct_probability: Probability of the label under the virtual teacher, in (0, 1).
            Defaults to `0.9`.
        temperature: Positive float softening both distributions. Defaults to `20.0`.
        name: As in `DistillationLoss`.

    Example:
    >>> loss = tfkd.losses.TeacherFreeKD(correct_probability=0.9, temperature=20.0)
    >>> loss(None, student_logits, labels=y)
    """

    uses_labels = True
    uses_teacher = False

    def __init__(
        self,
        correct_probability: float = 0.9,
        temperature: float = 20.0,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.correct_probability = check_open_fraction("correct_probability", correct_probability)
        self.temperature = check_positive("temperature", temperature)

    def compute(self, teacher_values: Any, student_values: Any, labels: Any = None) -> Any:
        self.built = True  # nothing to build; the teacher values may be None
        return self.call(teacher_values, student_values, labels=labels)

    def virtual_teacher_logits(self, labels: Any, student_logits: Any) -> Any:
        """The virtual teacher's logits `log u`, shaped like `student_logits`."""
        num_classes = student_logits.shape[-1]
        if num_classes is None or num_classes < 2:
            raise ValueError(
                "`TeacherFreeKD` needs logits over at least 2 classes. Received: student logits "
                f"of shape {tuple(student_logits.shape)}."
            )
        target = tf.one_hot(class_indices(labels, student_logits), num_classes)
        others = (1.0 - self.correct_probability) / (num_classes - 1)
        probabilities = target * self.correct_probability + (1.0 - target) * others
        return tf.cast(tf.math.log(probabilities), student_logits.dtype)

    def call(self, teacher_values: Any, student_logits: Any, labels: Any = None) -> Any:
        if labels is None:
            raise ValueError(
                "`TeacherFreeKD` builds its virtual teacher from the labels. "
                "Received: labels=None. "
                "Pass `labels=` when calling the loss, or `fit(x, y)` with labels."
            )
        t = self.temperature
        log_p_teacher = tf.nn.log_softmax(self.virtual_teacher_logits(labels, student_logits) / t)
        log_p_student = tf.nn.log_softmax(student_logits / t, axis=-1)
        kl = tf.reduce_sum(tf.exp(log_p_teacher) * (log_p_teacher - log_p_student), axis=-1)
        return kl * t**2

    def get_config(self) -> dict[str, Any]:
        return {
            "correct_probability": self.correct_probability,
            "temperature": self.temperature,
            "name": self.name,
        }


@keras.utils.register_keras_serializable(package="tfkd")
class NoTeacher(keras.Model):
    """The stand-in teacher of a `Distiller` whose losses are all teacher-free: outputs nothing.

    Returns a `[batch, 0]` tensor, so the distiller's teacher step costs nothing.
    """

    def __init__(self, name="no_teacher", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, inputs, training=False):
        first = tf.nest.flatten(inputs)[0]
        return tf.zeros([tf.shape(first)[0], 0], tf.float32)

    def get_config(self):
        return {"name": self.name}
