"""Keras 3 `keras.distillation` spellings on tfkd: cases ported from Keras 3's own
`keras/src/distillation` tests (rewritten for tf_keras models), plus hand-computed numbers."""

import numpy as np
import pytest

import tfkd
from tfkd import keras
from tfkd._keras import tf


def _log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


@pytest.fixture
def models():
    """Keras 3's test models: Sequentials of Dense layers named as theirs, built by a call."""
    keras.utils.set_random_seed(7)
    teacher = keras.Sequential(
        [
            keras.layers.Dense(32, activation="relu", name="teacher_dense_1"),
            keras.layers.Dense(16, activation="relu", name="teacher_dense_2"),
            keras.layers.Dense(10, name="teacher_output"),
        ]
    )
    student = keras.Sequential(
        [
            keras.layers.Dense(32, activation="relu", name="student_dense_1"),
            keras.layers.Dense(16, activation="relu", name="student_dense_2"),
            keras.layers.Dense(10, name="student_output"),
        ]
    )
    rng = np.random.default_rng(0)
    x = rng.random((32, 20), dtype=np.float32)
    y = rng.integers(0, 10, 32).astype(np.int32)
    teacher(x[:2])
    student(x[:2])
    return teacher, student, x, y


# ------------------------------------------------------- ported: distillation_loss_test.py


def test_logits_distillation_validate_outputs():
    teacher_logits = tf.constant([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    student_logits = tf.constant([[2.0, 1.0, 4.0], [3.0, 6.0, 2.0]])
    loss = tfkd.losses.LogitsDistillation(temperature=3.0)
    loss.validate_outputs(teacher_logits, student_logits)
    with pytest.raises(ValueError, match="same structure"):
        loss.validate_outputs(teacher_logits, {"output": teacher_logits})


def test_feature_distillation_validate_outputs():
    teacher_features = tf.constant([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    student_features = tf.constant([[1.1, 2.1, 3.1], [4.1, 5.1, 6.1]])
    loss = tfkd.losses.FeatureDistillation(loss="mse")
    loss.validate_outputs(teacher_features, student_features)
    with pytest.raises(ValueError, match="same structure"):
        loss.validate_outputs(teacher_features, [teacher_features, teacher_features])


def _fit(teacher, student, x, y, losses, weights=None, **fit_kwargs):
    distiller = tfkd.Distiller(
        teacher=teacher,
        student=student,
        distillation_losses=losses,
        distillation_loss_weights=weights,
        student_loss_weight=0.5,
    )
    distiller.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    return distiller, distiller.fit(x, y, epochs=2, verbose=0, **fit_kwargs)


def test_logits_distillation_end_to_end(models):
    teacher, student, x, y = models
    distiller, history = _fit(teacher, student, x, y, tfkd.losses.LogitsDistillation(3.0))
    assert {"total_loss", "student_loss", "distillation_loss", "loss"} <= set(history.history)
    assert np.isfinite(history.history["total_loss"][-1]) and history.history["total_loss"][-1] > 0
    np.testing.assert_allclose(history.history["total_loss"], history.history["loss"])
    assert distiller.predict(x[:5], verbose=0).shape == (5, 10)
    assert distiller.student is student and isinstance(distiller.student, keras.Model)


def test_feature_distillation_end_to_end(models):
    teacher, student, x, y = models
    loss = tfkd.losses.FeatureDistillation(
        loss="mse", teacher_layer_name="teacher_dense_1", student_layer_name="student_dense_1"
    )
    assert (loss.teacher_layer, loss.student_layer) == ("teacher_dense_1", "student_dense_1")
    _, history = _fit(teacher, student, x, y, loss)
    assert {"total_loss", "student_loss", "distillation_loss"} <= set(history.history)
    assert loss.trainable_layers == []  # equal shapes: no adapter, as in Keras 3


def test_multi_distillation_loss_end_to_end(models):
    teacher, student, x, y = models
    losses = [
        tfkd.losses.LogitsDistillation(temperature=3.0),
        tfkd.losses.FeatureDistillation(
            loss="mse", teacher_layer_name="teacher_dense_1", student_layer_name="student_dense_1"
        ),
        tfkd.losses.FeatureDistillation(
            loss="mse", teacher_layer_name="teacher_dense_2", student_layer_name="student_dense_2"
        ),
    ]
    distiller = tfkd.Distiller(teacher=teacher, student=student, distillation_losses=losses,
                               distillation_loss_weights=[1.0, 0.5, 0.3])
    distiller.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    logs = distiller.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    t1 = keras.Model(teacher.inputs, teacher.get_layer("teacher_dense_1").output)(x).numpy()
    s1 = keras.Model(student.inputs, student.get_layer("student_dense_1").output)(x).numpy()
    t2 = keras.Model(teacher.inputs, teacher.get_layer("teacher_dense_2").output)(x).numpy()
    s2 = keras.Model(student.inputs, student.get_layer("student_dense_2").output)(x).numpy()
    t, s = teacher(x).numpy(), student(x).numpy()
    log_pt, log_ps = _log_softmax(t / 3.0), _log_softmax(s / 3.0)
    kl = (np.exp(log_pt) * (log_pt - log_ps)).sum(-1).mean() * 9.0
    expected = kl + 0.5 * ((t1 - s1) ** 2).mean() + 0.3 * ((t2 - s2) ** 2).mean()
    np.testing.assert_allclose(logs["distillation_loss"], expected, rtol=1e-5)
    history = distiller.fit(x, y, epochs=2, verbose=0)
    assert all(np.isfinite(history.history["total_loss"]))


# -------------------------------------------------------------- ported: distiller_test.py


def test_teacher_is_frozen_and_call_returns_the_students_outputs(models):
    teacher, student, x, _ = models
    assert teacher.trainable
    distiller = tfkd.Distiller(teacher=teacher, student=student,
                               distillation_losses=tfkd.losses.LogitsDistillation(2.0))
    assert not teacher.trainable and student.trainable
    assert distiller.student_loss_weight == 0.5
    assert distiller.distillation_losses[0].temperature == 2.0
    np.testing.assert_allclose(distiller(x).numpy(), student(x).numpy())


@pytest.mark.parametrize("weight", [0.0, 1.0])
def test_student_loss_weight_at_both_ends_trains(models, weight):
    teacher, student, x, y = models
    distiller = tfkd.Distiller(teacher=teacher, student=student,
                               distillation_losses=tfkd.losses.LogitsDistillation(2.0),
                               student_loss_weight=weight)
    distiller.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy")
    history = distiller.fit(x[:5], y[:5], epochs=1, verbose=0)
    assert "total_loss" in history.history


def test_full_training_workflow_logs_validation_total_loss(models):
    teacher, student, x, y = models
    _, history = _fit(teacher, student, x[:24], y[:24], tfkd.losses.LogitsDistillation(2.0),
                      validation_data=(x[24:], y[24:]), batch_size=8)
    assert {"total_loss", "val_total_loss", "student_loss", "distillation_loss"} <= set(
        history.history
    )
    np.testing.assert_allclose(history.history["val_total_loss"], history.history["val_loss"])


# -------------------------------------------------- Keras 3 spellings beside tfkd's own


@pytest.mark.parametrize(
    "keras3_loss, tfkd_loss",
    [
        ("kl_divergence", "kl"),
        ("kld", "kl"),
        ("categorical_crossentropy", "ce"),
        ("mean_squared_error", "mse"),
    ],
)
def test_logits_distillation_accepts_keras3_loss_names(keras3_loss, tfkd_loss):
    rng = np.random.default_rng(1)
    t, s = rng.normal(size=(6, 5)).astype("float32"), rng.normal(size=(6, 5)).astype("float32")
    keras3 = tfkd.losses.LogitsDistillation(temperature=2.0, loss=keras3_loss)
    ours = tfkd.losses.LogitsDistillation(temperature=2.0, loss=tfkd_loss)
    np.testing.assert_allclose(keras3(t, s).numpy(), ours(t, s).numpy(), rtol=1e-6)
    assert keras3.get_config()["loss"] == keras3_loss  # round trip keeps the user's spelling
    again = tfkd.losses.LogitsDistillation.from_config(keras3.get_config())
    np.testing.assert_allclose(again(t, s).numpy(), ours(t, s).numpy(), rtol=1e-6)


def test_logits_distillation_accepts_a_keras_kl_loss_object():
    rng = np.random.default_rng(2)
    t, s = rng.normal(size=(6, 5)).astype("float32"), rng.normal(size=(6, 5)).astype("float32")
    as_object = tfkd.losses.LogitsDistillation(3.0, loss=keras.losses.KLDivergence())
    np.testing.assert_allclose(
        as_object(t, s).numpy(), tfkd.losses.LogitsDistillation(3.0)(t, s).numpy(), rtol=1e-4
    )


@pytest.mark.parametrize(
    "name, expected",
    [
        ("mse", lambda t, s: ((t - s) ** 2).mean(-1)),
        ("mae", lambda t, s: np.abs(t - s).mean(-1)),
        ("mean_absolute_error", lambda t, s: np.abs(t - s).mean(-1)),
        ("l1", lambda t, s: np.abs(t - s).mean(-1)),
        (
            "cosine_similarity",  # Keras's loss: minus the cosine
            lambda t, s: -(t * s).sum(-1) / np.linalg.norm(t, axis=-1) / np.linalg.norm(s, axis=-1),
        ),
    ],
)
def test_feature_distillation_accepts_keras3_loss_names(name, expected):
    rng = np.random.default_rng(3)
    t, s = rng.normal(size=(4, 6)).astype("float32"), rng.normal(size=(4, 6)).astype("float32")
    loss = tfkd.losses.FeatureDistillation(loss=name)
    assert (loss.teacher_layer_name, loss.student_layer_name) == (None, None)  # the outputs
    np.testing.assert_allclose(loss(t, s).numpy(), expected(t, s).mean(), rtol=1e-5)


def test_a_subclass_overriding_compute_loss_is_the_loss(models):
    """Keras 3's override point: `compute_loss(teacher_outputs, student_outputs, **kwargs)`, with
    no `super().__init__()` call and Keras 3's `*_layer_name` attributes."""
    teacher, student, x, y = models

    class MeanAbsoluteFeatures(tfkd.losses.DistillationLoss):
        def __init__(self, teacher_layer_name=None, student_layer_name=None):
            self.teacher_layer_name = teacher_layer_name
            self.student_layer_name = student_layer_name

        def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
            return tf.reduce_mean(tf.abs(teacher_outputs - student_outputs))

    loss = MeanAbsoluteFeatures("teacher_dense_1", "student_dense_1")
    distiller = tfkd.Distiller(teacher=teacher, student=student, distillation_losses=[loss])
    distiller.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    logs = distiller.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    t1 = keras.Model(teacher.inputs, teacher.get_layer("teacher_dense_1").output)(x).numpy()
    s1 = keras.Model(student.inputs, student.get_layer("student_dense_1").output)(x).numpy()
    np.testing.assert_allclose(logs["distillation_loss"], np.abs(t1 - s1).mean(), rtol=1e-5)
    assert distiller.fit(x, y, epochs=1, verbose=0).history["total_loss"]


def test_validate_model_compatibility_is_called_at_construction(models):
    teacher, student, _, _ = models
    seen = []

    class Picky(tfkd.losses.LogitsDistillation):
        def validate_model_compatibility(self, teacher, student):
            seen.append((teacher.name, student.name))
            if student.count_params() > 100:
                raise ValueError("Picky wants a student of at most 100 parameters.")

    with pytest.raises(ValueError, match="at most 100 parameters"):
        tfkd.Distiller(teacher=teacher, student=student, distillation_losses=Picky())
    assert seen == [(teacher.name, student.name)]


def test_tfkd_names_keep_working():
    hint = tfkd.losses.FeatureDistillation("t_embed", "s_embed", loss="l1")
    assert (hint.teacher_layer, hint.student_layer) == ("t_embed", "s_embed")
    assert (hint.teacher_layer_name, hint.student_layer_name) == ("t_embed", "s_embed")
    with pytest.raises(ValueError, match="Received: loss='hinge'"):
        tfkd.losses.LogitsDistillation(loss="hinge")
    with pytest.raises(ValueError, match="Received: loss='hinge'"):
        tfkd.losses.FeatureDistillation(loss="hinge")


def test_distiller_serialization_and_saving(models, tmp_path):
    """Keras 3's `test_distiller_serialization_and_saving`: a JSON-able config with every
    constructor argument, `from_config`, and a `.keras` round trip."""
    import json

    teacher, student, x, _ = models
    distiller = tfkd.Distiller(
        teacher=teacher,
        student=student,
        distillation_losses=tfkd.losses.LogitsDistillation(temperature=3.0, loss="kl_divergence"),
        student_loss_weight=0.7,
    )
    config = distiller.get_config()
    for key in ("teacher", "student", "distillation_losses", "distillation_loss_weights",
                "student_loss_weight"):
        assert key in config, key
    assert isinstance(json.dumps(config), str)
    rebuilt = tfkd.Distiller.from_config(config)
    assert rebuilt.student_loss_weight == 0.7
    assert isinstance(rebuilt.distillation_losses[0], tfkd.losses.LogitsDistillation)
    assert rebuilt.distillation_losses[0].temperature == 3.0
    assert rebuilt(x[:2]).shape == (2, 10)

    distiller.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy")
    distiller.save(tmp_path / "distiller_model.keras")
    loaded = tfkd.load_model(tmp_path / "distiller_model.keras")
    assert loaded.student_loss_weight == 0.7
    np.testing.assert_allclose(loaded(x[:2]).numpy(), distiller(x[:2]).numpy(), rtol=1e-6)
