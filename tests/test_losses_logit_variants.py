"""DecoupledKD, DIST and TeacherFreeKD: hand-checked values, properties, configs, errors, fits."""

import math

import numpy as np
import pytest

import tfkd
from tfkd import keras

L = tfkd.losses


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _pearson(a, b, axis):
    a = a - a.mean(axis=axis, keepdims=True)
    b = b - b.mean(axis=axis, keepdims=True)
    return (a * b).sum(axis) / (np.linalg.norm(a, axis=axis) * np.linalg.norm(b, axis=axis))


@pytest.fixture(scope="module")
def logits():
    rng = np.random.default_rng(0)
    teacher = rng.normal(size=(6, 5)).astype("float32")
    student = rng.normal(size=(6, 5)).astype("float32")
    labels = rng.integers(0, 5, size=6)
    return teacher, student, labels


# ------------------------------------------------------------------------------------ DecoupledKD


def test_decoupled_kd_two_classes_is_binary_kl_by_hand():
    # With 2 classes the non-target part is empty: DKD is the KL of the binary distributions.
    # p_teacher = [.5, .5], p_student = [.75, .25]: KL = .5 ln(.5/.75) + .5 ln(.5/.25) = .5 ln(4/3).
    loss = L.DecoupledKD(alpha=1.0, beta=8.0, temperature=1.0)
    value = loss(np.array([[0.0, 0.0]]), np.array([[math.log(3.0), 0.0]]), labels=[0])
    assert float(value) == pytest.approx(0.5 * math.log(4 / 3), rel=1e-5)


def test_decoupled_kd_decomposes_classic_kd(logits):
    # Zhao et al.'s identity: KD = TCKD + (1 - p_target) * NCKD, per sample.
    teacher, student, labels = logits
    t = 2.0
    p_target = _softmax(teacher / t)[np.arange(6), labels]
    for i in range(6):
        dkd = L.DecoupledKD(alpha=1.0, beta=float(1.0 - p_target[i]), temperature=t)
        kd = L.LogitsDistillation(temperature=t)
        one = slice(i, i + 1)
        got = float(dkd(teacher[one], student[one], labels=labels[one]))
        assert got == pytest.approx(float(kd(teacher[one], student[one])), rel=1e-4)


def test_decoupled_kd_labels_sparse_one_hot_and_argmax_fallback(logits):
    teacher, student, labels = logits
    loss = L.DecoupledKD()
    sparse = float(loss(teacher, student, labels=labels))
    one_hot = float(loss(teacher, student, labels=np.eye(5)[labels]))
    column = float(loss(teacher, student, labels=labels[:, None]))
    assert sparse == pytest.approx(one_hot, rel=1e-6) == pytest.approx(column, rel=1e-6)
    fallback = float(loss(teacher, student))
    assert fallback == pytest.approx(float(loss(teacher, student, labels=teacher.argmax(1))))
    assert float(loss(teacher, teacher, labels=labels)) == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"alpha": -1.0}, ValueError, "Received: alpha=-1.0"),
        ({"beta": "8"}, TypeError, "Received: beta='8'"),
        ({"temperature": 0}, ValueError, "Received: temperature=0"),
    ],
)
def test_decoupled_kd_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        L.DecoupledKD(**kwargs)


# ------------------------------------------------------------------------------------------- DIST


def test_dist_matches_pearson_definition_and_is_zero_on_equal(logits):
    teacher, student, _ = logits
    p_t, p_s = _softmax(teacher / 2.0), _softmax(student / 2.0)
    inter = 1.0 - _pearson(p_s, p_t, axis=1).mean()
    intra = 1.0 - _pearson(p_s, p_t, axis=0).mean()
    expected = 4.0 * (2.0 * inter + 0.5 * intra)
    got = float(L.DIST(beta=2.0, gamma=0.5, temperature=2.0)(teacher, student))
    assert got == pytest.approx(expected, rel=1e-5)
    assert float(L.DIST()(teacher, teacher)) == pytest.approx(0.0, abs=1e-5)


def test_dist_temperature_scaling(logits):
    # DIST(T) on (T*t, T*s) sees the same probabilities as DIST(1) on (t, s), times T**2.
    teacher, student, _ = logits
    base = float(L.DIST(temperature=1.0)(teacher, student))
    assert float(L.DIST(temperature=3.0)(3 * teacher, 3 * student)) == pytest.approx(9 * base, 1e-4)


def test_dist_rejects_bad_gamma():
    with pytest.raises(ValueError, match="Received: gamma=-0.5"):
        L.DIST(gamma=-0.5)


# ---------------------------------------------------------------------------------- TeacherFreeKD


def test_teacher_free_kd_by_hand():
    # u = [.9, .1] on label 0, student uniform at T=1: KL = .9 ln(.9/.5) + .1 ln(.1/.5).
    loss = L.TeacherFreeKD(correct_probability=0.9, temperature=1.0)
    value = float(loss(None, np.zeros((1, 2), "float32"), labels=[0]))
    assert value == pytest.approx(0.9 * math.log(1.8) + 0.1 * math.log(0.2), rel=1e-5)


def test_teacher_free_kd_is_zero_at_the_virtual_teacher():
    loss = L.TeacherFreeKD(correct_probability=0.7, temperature=20.0)
    labels = np.array([2, 0, 3])
    u = np.full((3, 4), 0.1, "float32")
    u[np.arange(3), labels] = 0.7
    assert float(loss(None, np.log(u), labels=labels)) == pytest.approx(0.0, abs=1e-4)
    assert float(loss(None, np.zeros((3, 4), "float32"), labels=labels)) > 1e-3


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"correct_probability": 1.0}, ValueError, "Received: correct_probability=1.0"),
        ({"temperature": "hot"}, TypeError, "Received: temperature='hot'"),
    ],
)
def test_teacher_free_kd_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        L.TeacherFreeKD(**kwargs)


def test_teacher_free_kd_needs_labels():
    with pytest.raises(ValueError, match="Received: labels=None"):
        L.TeacherFreeKD()(None, np.zeros((2, 3), "float32"))


# -------------------------------------------------------------------------------------- configs


@pytest.mark.parametrize(
    "loss",
    [
        L.DecoupledKD(alpha=0.5, beta=4.0, temperature=2.0, name="dkd"),
        L.DIST(beta=2.0, gamma=3.0, temperature=4.0),
        L.TeacherFreeKD(correct_probability=0.8, temperature=5.0),
    ],
    ids=lambda loss: type(loss).__name__,
)
def test_config_round_trip(loss):
    rebuilt = L.deserialize(L.serialize(loss))
    assert type(rebuilt) is type(loss)
    assert rebuilt.get_config() == loss.get_config()
    assert type(loss).from_config(loss.get_config()).get_config() == loss.get_config()


# ------------------------------------------------------------------------------------------- fits


def _weights(model):
    return [w.copy() for w in model.get_weights()]


def test_one_epoch_fits(make_teacher, make_student, tiny_data):
    x, y = tiny_data
    teacher, student = make_teacher(), make_student()
    before = _weights(teacher)
    distiller = tfkd.Distiller(
        teacher=teacher,
        student=student,
        distillation_losses=[L.DecoupledKD(), L.DIST(temperature=4.0), L.TeacherFreeKD()],
        distillation_loss_weights=[1.0, 1.0, 0.5],
    )
    distiller.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(True),
                      metrics=["accuracy"])
    history = distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert {"loss", "student_loss", "distillation_loss", "accuracy"} <= set(history.history)
    assert np.isfinite(history.history["distillation_loss"][0])
    for old, new in zip(before, teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    # Inside the fit the losses get the labels (not the teacher's argmax): one batch of all 64.
    logged = distiller.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    t, s = teacher(x, training=False), student(x, training=False)
    expected = (
        L.DecoupledKD()(t, s, labels=y)
        + L.DIST(temperature=4.0)(t, s)
        + 0.5 * L.TeacherFreeKD()(None, s, labels=y)
    )
    assert logged["distillation_loss"] == pytest.approx(float(expected), rel=1e-4)
    assert float(L.DecoupledKD()(t, s)) != pytest.approx(float(L.DecoupledKD()(t, s, labels=y)))


def test_teacher_free_distiller_needs_no_teacher(make_student, tiny_data):
    x, y = tiny_data
    student = make_student()
    distiller = tfkd.Distiller(student=student, distillation_losses=[L.TeacherFreeKD()])
    distiller.compile(optimizer=keras.optimizers.Adam(0.01),
                      loss=keras.losses.SparseCategoricalCrossentropy(True))
    history = distiller.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert set(history.history) >= {"loss", "student_loss", "distillation_loss"}
    assert history.history["loss"][1] < history.history["loss"][0]
    assert distiller.predict(x[:3], verbose=0).shape == (3, 10)


def test_distiller_without_teacher_needs_teacher_free_losses(make_student):
    with pytest.raises(TypeError, match="Received: teacher=None"):
        tfkd.Distiller(student=make_student(), distillation_losses=[L.DecoupledKD()])
