"""RKDDistance, RKDAngle, SimilarityPreserving and PKT: values, invariances, configs, fits."""

import math

import numpy as np
import pytest

import tfkd
from tfkd import keras

L = tfkd.losses
RELATION_LOSSES = [L.RKDDistance, L.RKDAngle, L.SimilarityPreserving, L.PKT]


@pytest.fixture(scope="module")
def embeddings():
    rng = np.random.default_rng(0)
    return rng.normal(size=(6, 8)).astype("float32"), rng.normal(size=(6, 5)).astype("float32")


def _angles(e):
    d = e[None, :, :] - e[:, None, :]
    d = d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-12)
    return np.einsum("ijd,ikd->ijk", d, d)


def _huber(x):
    return np.where(np.abs(x) < 1, 0.5 * x**2, np.abs(x) - 0.5)


def test_rkd_distance_by_hand():
    # Teacher points 0, 1, 2: distances 1, 2, 1 over mean 4/3 -> .75, 1.5, .75.
    # Student points 0, 1, 3: distances 1, 3, 2 over mean 2 -> .5, 1.5, 1.
    # Differences -.25, 0, .25 (each twice in the 3x3 matrix): Huber .03125 * 4 / 9.
    teacher = np.array([[0.0], [1.0], [2.0]], "float32")
    student = np.array([[0.0], [1.0], [3.0]], "float32")
    assert float(L.RKDDistance()(teacher, student)) == pytest.approx(0.125 / 9, rel=1e-5)


def test_rkd_angle_matches_triplet_definition(embeddings):
    teacher, student = embeddings
    expected = _huber(_angles(student) - _angles(teacher)).mean()
    assert float(L.RKDAngle()(teacher, student)) == pytest.approx(expected, rel=1e-5)


def test_similarity_preserving_by_hand():
    # Teacher Gram = I; student features equal -> Gram rows [1, 1] / sqrt(2).
    # Per row (1 - 1/sqrt 2)**2 + 1/2; two rows over batch**2 = 4: (2 - sqrt 2) / 2.
    teacher = np.eye(2, dtype="float32")
    student = np.ones((2, 1), "float32")
    value = float(L.SimilarityPreserving()(teacher, student))
    assert value == pytest.approx((2 - math.sqrt(2)) / 2, rel=1e-5)


def test_pkt_by_hand():
    # Orthogonal teacher: similarities (cos + 1) / 2 -> rows [1, .5] / 1.5 = [2/3, 1/3].
    # Identical student vectors: rows [.5, .5]. Mean over the 2x2 matrix of p log(p / q).
    teacher = np.eye(2, dtype="float32")
    student = np.ones((2, 3), "float32")
    row = 2 / 3 * math.log(4 / 3) + 1 / 3 * math.log(2 / 3)
    assert float(L.PKT()(teacher, student)) == pytest.approx(2 * row / 4, rel=1e-4)


@pytest.mark.parametrize("loss_class", RELATION_LOSSES, ids=lambda c: c.__name__)
def test_zero_when_student_equals_teacher_and_scale_invariant(loss_class, embeddings):
    teacher, student = embeddings
    loss = loss_class()
    assert float(loss(teacher, teacher)) == pytest.approx(0.0, abs=1e-5)
    base = float(loss(teacher, student))
    assert base > 1e-4
    # Every relation loss promises invariance to scaling either side.
    assert float(loss(5.0 * teacher, 0.1 * student)) == pytest.approx(base, rel=1e-3)


@pytest.mark.parametrize("loss_class", [L.RKDDistance, L.RKDAngle], ids=lambda c: c.__name__)
def test_rkd_invariant_to_translation_and_rotation(loss_class, embeddings):
    teacher, student = embeddings
    loss = loss_class()
    base = float(loss(teacher, student))
    rotation, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(5, 5)))
    moved = (student @ rotation + 7.0).astype("float32")
    assert float(loss(teacher - 2.0, moved)) == pytest.approx(base, rel=1e-3)


def test_layer_outputs_of_any_rank_are_flattened(embeddings):
    teacher, student = embeddings
    maps = teacher.reshape(6, 2, 2, 2)
    for loss_class in RELATION_LOSSES:
        loss = loss_class()
        assert float(loss(maps, student)) == pytest.approx(float(loss(teacher, student)), 1e-5)


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: L.RKDDistance(teacher_layer=3), TypeError, "Received: teacher_layer=3"),
        (lambda: L.SimilarityPreserving(student_layer=["a"]), TypeError, "student_layer="),
        (lambda: L.PKT(epsilon=0.0), ValueError, "Received: epsilon=0.0"),
    ],
)
def test_relation_losses_reject_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("loss_class", RELATION_LOSSES, ids=lambda c: c.__name__)
def test_config_round_trip(loss_class):
    loss = loss_class(teacher_layer="t_embed", student_layer="s_embed")
    rebuilt = L.deserialize(L.serialize(loss))
    assert type(rebuilt) is loss_class
    assert rebuilt.get_config() == loss.get_config()
    assert rebuilt.layer_pairs == [("t_embed", "s_embed")]


def test_relation_losses_fit_in_a_distiller(make_teacher, make_student, tiny_data):
    x, y = tiny_data
    teacher, student = make_teacher(), make_student()
    before = [w.copy() for w in teacher.get_weights()]
    losses = [
        L.RKDDistance("t_embed", "s_embed"),
        L.RKDAngle("t_embed", "s_embed"),
        L.SimilarityPreserving("t_conv", "s_conv"),  # feature maps, flattened per sample
        L.PKT(),  # the outputs
    ]
    distiller = tfkd.Distiller(
        teacher=teacher,
        student=student,
        distillation_losses=losses,
        distillation_loss_weights=[25.0, 50.0, 100.0, 100.0],
    )
    distiller.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(True),
                      metrics=["accuracy"])
    history = distiller.fit(x, y, batch_size=16, epochs=1, validation_data=(x, y), verbose=0)
    keys = {"loss", "student_loss", "distillation_loss", "accuracy", "val_distillation_loss"}
    assert keys <= set(history.history)
    assert np.isfinite(history.history["distillation_loss"][0])
    assert history.history["distillation_loss"][0] > 0
    for old, new in zip(before, teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
