"""Relation-based losses: the student learns how samples relate inside the teacher.

Each reads one layer pair (`teacher_layer=`, `student_layer=`; `None`: the model outputs), flattens
it per sample, and compares structures within the batch, so teacher and student widths may differ.
Each returns one value per sample (its row of the batch structure) whose batch mean is the loss of
the paper's reference code; the values depend on the whole batch.

Under `tf.distribute` (inside `strategy.run`, as in `fit`), the batch is the global batch: every
replica all-gathers the embeddings of the others (`tfkd.losses.distribute.gather_global_batch`,
gradients included) and returns the values of its own samples, so any number of replicas gives
the loss and gradients of one device.
"""

from typing import Any

from tfkd._keras import keras, tf
from tfkd._validation import check_positive
from tfkd.losses.base import DistillationLoss
from tfkd.losses.distribute import gather_global_batch
from tfkd.losses.feature import flatten


def _embeddings(values):
    return flatten(tf.cast(values, tf.float32))


def pairwise_distances(embeddings, epsilon=1e-12):
    """Euclidean distances `[batch, batch]` between rows, zero on the diagonal."""
    squared_norms = tf.reduce_sum(tf.square(embeddings), axis=-1)
    squared = (
        squared_norms[:, None]
        + squared_norms[None, :]
        - 2.0 * tf.matmul(embeddings, embeddings, transpose_b=True)
    )
    distances = tf.sqrt(tf.maximum(squared, epsilon))
    batch = tf.shape(embeddings)[0]
    return distances * (1.0 - tf.eye(batch, dtype=distances.dtype))


def _huber(difference):
    """Smooth L1 with delta 1: `0.5 x**2` below 1, `|x| - 0.5` above."""
    absolute = tf.abs(difference)
    return tf.where(absolute < 1.0, 0.5 * tf.square(difference), absolute - 0.5)


def _global_embeddings(teacher_values, student_values):
    """Flattened float32 embeddings of the global batch, and the rows of this replica."""
    return gather_global_batch(_embeddings(teacher_values), _embeddings(student_values))


class _RelationLoss(DistillationLoss):
    """Base of the relation losses: layer pair as in `DistillationLoss`, nothing else to build."""

    def __init__(self, teacher_layer=None, student_layer=None, name=None):
        super().__init__(teacher_layer=teacher_layer, student_layer=student_layer, name=name)


@keras.utils.register_keras_serializable(package="tfkd")
class RKDDistance(_RelationLoss):
    """Distance-wise relational KD (Park et al., 2019).

    The pairwise Euclidean distances of the batch's embeddings, each divided by the mean of the
    non-zero distances, are matched with the Huber (smooth L1) loss. Invariant to scaling, rotating
    and translating either embedding. The paper weights it by 25.

    Args:
        teacher_layer, student_layer, name: As in `DistillationLoss`. Defaults to `None` (outputs).

    Example:
    >>> tfkd.losses.RKDDistance("embedding", "embedding")(teacher_embeddings, student_embeddings)
    """

    def call(self, teacher_values: Any, student_values: Any) -> Any:
        (teacher, student), local = _global_embeddings(teacher_values, student_values)
        teacher, student = _normalized_distances(teacher), _normalized_distances(student)
        return local(tf.reduce_mean(_huber(student - teacher), axis=-1))


def _normalized_distances(embeddings):
    distances = pairwise_distances(embeddings)
    positive = tf.cast(distances > 0, distances.dtype)
    mean = tf.reduce_sum(distances) / tf.maximum(tf.reduce_sum(positive), 1.0)
    return distances / tf.maximum(mean, 1e-12)


@keras.utils.register_keras_serializable(package="tfkd")
class RKDAngle(_RelationLoss):
    """Angle-wise relational KD (Park et al., 2019).

    For every triplet `(i, j, k)` of the batch, the cosine of the angle at `e_i` between `e_j - e_i`
    and `e_k - e_i` is matched with the Huber loss; the value for sample `i` averages its triplets.
    Invariant to scaling and translating either embedding. Memory grows as `batch**3 * width`.
    The paper weights it by 50.

    Args:
        teacher_layer, student_layer, name: As in `DistillationLoss`. Defaults to `None` (outputs).
    """

    def call(self, teacher_values: Any, student_values: Any) -> Any:
        (teacher, student), local = _global_embeddings(teacher_values, student_values)
        return local(tf.reduce_mean(_huber(_angles(student) - _angles(teacher)), axis=[1, 2]))


def _angles(embeddings):
    differences = tf.math.l2_normalize(embeddings[None, :, :] - embeddings[:, None, :], axis=-1)
    return tf.matmul(differences, differences, transpose_b=True)  # [i, j, k]


@keras.utils.register_keras_serializable(package="tfkd")
class SimilarityPreserving(_RelationLoss):
    """Similarity-preserving KD (Tung & Mori, 2019).

    The batch Gram matrices `G = F F^T` of the flattened features, each row L2-normalized, are
    compared by the squared Frobenius distance divided by `batch**2` (the batch mean of the
    per-sample values). The paper weights it by 3000.

    Args:
        teacher_layer, student_layer, name: As in `DistillationLoss`. Defaults to `None` (outputs).
    """

    def call(self, teacher_values: Any, student_values: Any) -> Any:
        (teacher, student), local = _global_embeddings(teacher_values, student_values)
        teacher, student = _normalized_gram(teacher), _normalized_gram(student)
        batch = tf.cast(tf.shape(teacher)[0], teacher.dtype)
        return local(tf.reduce_sum(tf.square(student - teacher), axis=-1) / batch)


def _normalized_gram(features):
    return tf.math.l2_normalize(tf.matmul(features, features, transpose_b=True), axis=-1)


@keras.utils.register_keras_serializable(package="tfkd")
class PKT(_RelationLoss):
    """Probabilistic knowledge transfer (Passalis & Tefas, 2018).

    Cosine similarities between the batch's embeddings, mapped to `[0, 1]` by `(s + 1) / 2` and
    normalized per row into conditional probabilities `p(j | i)`, are matched by the KL divergence
    of the teacher's from the student's (averaged over `j`, as in the authors' code). Invariant to
    scaling either embedding; the paper's weight in later benchmarks is about 30000.

    Args:
        epsilon: Small positive constant for the logarithm and the norms. Defaults to `1e-7`.
        teacher_layer, student_layer, name: As in `DistillationLoss`. Defaults to `None` (outputs).
    """

    def __init__(
        self,
        teacher_layer: str | None = None,
        student_layer: str | None = None,
        epsilon: float = 1e-7,
        name: str | None = None,
    ) -> None:
        super().__init__(teacher_layer=teacher_layer, student_layer=student_layer, name=name)
        self.epsilon = check_positive("epsilon", epsilon)

    def call(self, teacher_values: Any, student_values: Any) -> Any:
        (teacher, student), local = _global_embeddings(teacher_values, student_values)
        teacher = self._conditional_probabilities(teacher)
        student = self._conditional_probabilities(student)
        eps = self.epsilon
        kl = tf.reduce_mean(teacher * tf.math.log((teacher + eps) / (student + eps)), axis=-1)
        return local(kl)

    def _conditional_probabilities(self, embeddings):
        squared = tf.reduce_sum(tf.square(embeddings), axis=-1, keepdims=True)
        norms = tf.sqrt(tf.maximum(squared, 1e-24))  # finite gradient for all-zero rows
        unit = embeddings / (norms + self.epsilon)
        similarity = (tf.matmul(unit, unit, transpose_b=True) + 1.0) / 2.0
        return similarity / tf.reduce_sum(similarity, axis=-1, keepdims=True)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "epsilon": self.epsilon}
