"""Response-based losses: the student learns from the teacher's outputs (logits)."""

from tfkd._keras import keras, tf
from tfkd._validation import check_choice, check_positive
from tfkd.losses.base import DistillationLoss

_LOGIT_LOSSES = ("kl", "ce", "mse")


@keras.utils.register_keras_serializable(package="tfkd")
class LogitsDistillation(DistillationLoss):
    """Matches temperature-softened teacher and student logits (Hinton et al., 2015).

    `"kl"` is the KL divergence `KL(softmax(t/T) || softmax(s/T))` and `"ce"` the cross-entropy
    `-sum softmax(t/T) * log_softmax(s/T)`; both are scaled by `temperature**2` so their gradients keep
    their size as the temperature changes. `"mse"` is the mean squared difference of the raw logits
    (logit matching, the high-temperature limit; the temperature does not enter). Log-softmax keeps
    every mode numerically stable.

    Args:
        temperature: Positive float softening both distributions. Defaults to `3.0`.
        loss: One of `"kl"`, `"ce"`, `"mse"`. Defaults to `"kl"`.
        teacher_layer, student_layer, name: As in `DistillationLoss`.

    Example:
    >>> loss = tfkd.losses.LogitsDistillation(temperature=2.0)
    >>> loss(teacher_logits, student_logits)  # mean over the batch
    """

    def __init__(self, temperature=3.0, loss="kl", **kwargs):
        super().__init__(**kwargs)
        self.temperature = check_positive("temperature", temperature)
        self.loss = check_choice("loss", loss, _LOGIT_LOSSES)

    def call(self, teacher_logits, student_logits):
        teacher_logits = tf.cast(teacher_logits, student_logits.dtype)
        if self.loss == "mse":
            return tf.reduce_mean(tf.square(student_logits - teacher_logits), axis=-1)
        t = self.temperature
        log_p_teacher = tf.nn.log_softmax(teacher_logits / t, axis=-1)
        log_p_student = tf.nn.log_softmax(student_logits / t, axis=-1)
        p_teacher = tf.exp(log_p_teacher)
        if self.loss == "kl":
            per_sample = tf.reduce_sum(p_teacher * (log_p_teacher - log_p_student), axis=-1)
        else:
            per_sample = -tf.reduce_sum(p_teacher * log_p_student, axis=-1)
        return per_sample * t**2

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature, "loss": self.loss}
