"""Response-based losses: the student learns from the teacher's outputs (logits)."""

from typing import Any

from tfkd._keras import keras, tf
from tfkd._validation import check_choice, check_non_negative, check_positive
from tfkd.losses.base import DistillationLoss, per_sample_loss_fn
from tfkd.losses.distribute import gather_global_batch

_LOGIT_LOSSES = ("kl", "ce", "mse")
# Keras 3 `keras.distillation.LogitsDistillation` spellings, as tfkd's own modes.
_KERAS3_LOGIT_LOSSES = {
    "kl_divergence": "kl",
    "kld": "kl",
    "kullback_leibler_divergence": "kl",
    "KLDivergence": "kl",
    "categorical_crossentropy": "ce",
    "CategoricalCrossentropy": "ce",
    "mean_squared_error": "mse",
    "MeanSquaredError": "mse",
}


@keras.utils.register_keras_serializable(package="tfkd")
class LogitsDistillation(DistillationLoss):
    """Matches temperature-softened teacher and student logits (Hinton et al., 2015).

    `"kl"` is the KL divergence `KL(softmax(t/T) || softmax(s/T))` and `"ce"` the cross-entropy
    `-sum softmax(t/T) * log_softmax(s/T)`; both are scaled by `temperature**2` so their gradients
    keep their size as the temperature changes. `"mse"` is the mean squared difference of the raw
    logits (logit matching, the high-temperature limit; the temperature does not enter).
    Log-softmax keeps every mode numerically stable.

    Keras 3's spellings are accepted: `"kl_divergence"` (or `"kld"`, `keras.losses.KLDivergence()`)
    is `"kl"`, `"categorical_crossentropy"` is `"ce"`, `"mean_squared_error"` is `"mse"`. Any other
    Keras loss object or function is applied as Keras 3 does, per sample to the scaled logits:
    `loss(t / T, s / T)`.

    Args:
        temperature: Positive float softening both distributions. Defaults to `3.0`.
        loss: One of `"kl"`, `"ce"`, `"mse"`, a Keras 3 name above, or a Keras loss.
            Defaults to `"kl"`.
        teacher_layer, student_layer, name: As in `DistillationLoss`.

    Example:
    >>> loss = tfkd.losses.LogitsDistillation(temperature=2.0)
    >>> loss(teacher_logits, student_logits)  # mean over the batch
    """

    def __init__(self, temperature: float = 3.0, loss: Any = "kl", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.temperature = check_positive("temperature", temperature)
        self.loss, self._mode, self._loss_fn = _logit_loss(loss)

    def call(self, teacher_logits: Any, student_logits: Any) -> Any:
        teacher_logits = tf.cast(teacher_logits, student_logits.dtype)
        t = self.temperature
        if self._mode == "keras":
            return self._loss_fn(teacher_logits / t, student_logits / t)
        if self._mode == "mse":
            return tf.reduce_mean(tf.square(student_logits - teacher_logits), axis=-1)
        log_p_teacher = tf.nn.log_softmax(teacher_logits / t, axis=-1)
        log_p_student = tf.nn.log_softmax(student_logits / t, axis=-1)
        p_teacher = tf.exp(log_p_teacher)
        if self._mode == "kl":
            per_sample = tf.reduce_sum(p_teacher * (log_p_teacher - log_p_student), axis=-1)
        else:
            per_sample = -tf.reduce_sum(p_teacher * log_p_student, axis=-1)
        return per_sample * t**2

    def get_config(self) -> dict[str, Any]:
        loss = self.loss if isinstance(self.loss, str) else keras.losses.serialize(self.loss)
        return {**super().get_config(), "temperature": self.temperature, "loss": loss}


def _logit_loss(loss):
    """`(loss as given, tfkd mode, per-sample Keras loss or None)` for `LogitsDistillation`."""
    if isinstance(loss, dict):
        loss = keras.losses.deserialize(loss)
    if isinstance(loss, str):
        names = _LOGIT_LOSSES + tuple(_KERAS3_LOGIT_LOSSES)
        check_choice("loss", loss, names)
        return loss, _KERAS3_LOGIT_LOSSES.get(loss, loss), None
    if isinstance(loss, keras.losses.KLDivergence) or loss is keras.losses.kl_divergence:
        return loss, "kl", None
    if callable(loss):
        return loss, "keras", per_sample_loss_fn("loss", loss)
    raise TypeError(
        '`loss` must be "kl", "ce", "mse", a Keras 3 loss name or a Keras loss. '
        f"Received: loss={loss!r} (of type {type(loss).__name__})."
    )


class SoftenedKerasLoss(DistillationLoss):
    """keras.io's distillation term: `fn(softmax(t / T), softmax(s / T)) * T**2`.

    What `Distiller.compile(distillation_loss_fn=, temperature=)` builds; `fn` returns one value
    per sample (see `per_sample_loss_fn`).
    """

    def __init__(self, fn, temperature):
        super().__init__(name="distillation_loss_fn")
        self.fn = fn
        self.temperature = temperature

    def call(self, teacher_logits, student_logits):
        t = self.temperature
        teacher_logits = tf.cast(teacher_logits, student_logits.dtype)
        soft_teacher = tf.nn.softmax(teacher_logits / t, axis=-1)
        soft_student = tf.nn.softmax(student_logits / t, axis=-1)
        return self.fn(soft_teacher, soft_student) * t**2

    def get_config(self):
        return {
            "fn": keras.utils.serialize_keras_object(self.fn),
            "temperature": self.temperature,
        }


def class_indices(labels, logits):
    """Integer class labels `[batch]` from sparse (`[batch]`, `[batch, 1]`) or one-hot labels."""
    labels = tf.convert_to_tensor(labels)
    num_classes = logits.shape[-1]
    if labels.shape.rank == 2 and num_classes is not None and labels.shape[-1] == num_classes > 1:
        return tf.argmax(labels, axis=-1, output_type=tf.int32)
    return tf.cast(tf.reshape(labels, [-1]), tf.int32)


@keras.utils.register_keras_serializable(package="tfkd")
class DecoupledKD(DistillationLoss):
    """Decoupled knowledge distillation, DKD (Zhao et al., 2022).

    Splits the classic KD loss into a target-class part (TCKD: the binary distribution "target
    class or not") and a non-target-class part (NCKD: the distribution among the other classes) and
    weights them apart: `alpha * TCKD + beta * NCKD`, both at `temperature` and scaled by
    `temperature**2`. Classic KD weights NCKD by the teacher's `1 - p_target`, which silences it
    exactly when the teacher is confident; DKD frees it.

    Inside a `Distiller` fit the loss receives the labels. Called on its own it takes `labels=` and
    falls back to the teacher's argmax when none are given. Labels may be sparse or one-hot.

    Args:
        alpha: Non-negative weight of the target-class part. Defaults to `1.0`.
        beta: Non-negative weight of the non-target-class part. Defaults to `8.0`.
        temperature: Positive float softening both distributions. Defaults to `4.0`.
        teacher_layer, student_layer, name: As in `DistillationLoss`.

    Example:
    >>> loss = tfkd.losses.DecoupledKD(alpha=1.0, beta=8.0, temperature=4.0)
    >>> loss(teacher_logits, student_logits, labels=y)
    """

    uses_labels = True

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 8.0,
        temperature: float = 4.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.alpha = check_non_negative("alpha", alpha)
        self.beta = check_non_negative("beta", beta)
        self.temperature = check_positive("temperature", temperature)

    def call(self, teacher_logits: Any, student_logits: Any, labels: Any = None) -> Any:
        teacher_logits = tf.cast(teacher_logits, student_logits.dtype)
        if labels is None:
            target = tf.argmax(teacher_logits, axis=-1, output_type=tf.int32)
        else:
            target = class_indices(labels, student_logits)
        t = self.temperature
        mask = tf.one_hot(target, tf.shape(student_logits)[-1], dtype=student_logits.dtype)
        tckd = _binary_kl(teacher_logits / t, student_logits / t, mask)
        # Non-target distributions: the target logit pushed to -inf (a large finite offset).
        offset = 1000.0 * mask
        log_q_teacher = tf.nn.log_softmax(teacher_logits / t - offset, axis=-1)
        log_q_student = tf.nn.log_softmax(student_logits / t - offset, axis=-1)
        nckd = tf.reduce_sum(
            (1.0 - mask) * tf.exp(log_q_teacher) * (log_q_teacher - log_q_student), axis=-1
        )
        return (self.alpha * tckd + self.beta * nckd) * t**2

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "alpha": self.alpha,
            "beta": self.beta,
            "temperature": self.temperature,
        }


def _binary_log_probs(logits, mask):
    """`log p_target` and `log(1 - p_target)` of `softmax(logits)`, stably through logsumexp."""
    log_total = tf.reduce_logsumexp(logits, axis=-1)
    log_target = tf.reduce_sum(logits * mask, axis=-1) - log_total
    log_others = tf.reduce_logsumexp(logits - 1000.0 * mask, axis=-1) - log_total
    return log_target, log_others


def _binary_kl(teacher_logits, student_logits, mask):
    t_target, t_others = _binary_log_probs(teacher_logits, mask)
    s_target, s_others = _binary_log_probs(student_logits, mask)
    return tf.exp(t_target) * (t_target - s_target) + tf.exp(t_others) * (t_others - s_others)


@keras.utils.register_keras_serializable(package="tfkd")
class DIST(DistillationLoss):
    """Knowledge distillation from a stronger teacher, DIST (Huang et al., 2022).

    Matches relations rather than exact probabilities: with `p = softmax(logits / T)`, the
    inter-class part is `1 - pearson(p_teacher[i], p_student[i])` across the classes of each sample,
    the intra-class part is `1 - pearson` of each class's column across the batch (averaged over
    the classes, one value for the batch; under `tf.distribute` the global batch). The loss is
    `(beta * inter + gamma * intra) * T**2`, invariant to shifting or scaling the student's
    probabilities, so a small student need not match a large teacher exactly.

    Args:
        beta: Non-negative weight of the inter-class relation. Defaults to `1.0`.
        gamma: Non-negative weight of the intra-class relation. Defaults to `1.0`.
        temperature: Positive float softening both distributions. Defaults to `1.0`.
        teacher_layer, student_layer, name: As in `DistillationLoss`.

    Example:
    >>> loss = tfkd.losses.DIST(beta=2.0, gamma=2.0, temperature=4.0)
    >>> loss(teacher_logits, student_logits)
    """

    def __init__(
        self,
        beta: float = 1.0,
        gamma: float = 1.0,
        temperature: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.beta = check_non_negative("beta", beta)
        self.gamma = check_non_negative("gamma", gamma)
        self.temperature = check_positive("temperature", temperature)

    def call(self, teacher_logits: Any, student_logits: Any) -> Any:
        teacher_logits = tf.cast(teacher_logits, student_logits.dtype)
        t = self.temperature
        p_teacher = tf.nn.softmax(teacher_logits / t, axis=-1)
        p_student = tf.nn.softmax(student_logits / t, axis=-1)
        inter = 1.0 - _pearson(p_teacher, p_student, axis=-1)  # [batch]
        # Over the global batch under tf.distribute (see tfkd.losses.distribute).
        (p_teacher, p_student), _ = gather_global_batch(p_teacher, p_student)
        intra = 1.0 - tf.reduce_mean(_pearson(p_teacher, p_student, axis=0))  # batch scalar
        return (self.beta * inter + self.gamma * intra) * t**2

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "beta": self.beta,
            "gamma": self.gamma,
            "temperature": self.temperature,
        }


def _pearson(a, b, axis, epsilon=1e-8):
    a = a - tf.reduce_mean(a, axis=axis, keepdims=True)
    b = b - tf.reduce_mean(b, axis=axis, keepdims=True)
    norms = _safe_norm(a, axis) * _safe_norm(b, axis)
    return tf.reduce_sum(a * b, axis=axis) / (norms + epsilon)


def _safe_norm(values, axis):
    """The L2 norm with a finite gradient at zero (`tf.norm`'s is NaN there)."""
    return tf.sqrt(tf.maximum(tf.reduce_sum(tf.square(values), axis=axis), 1e-24))
