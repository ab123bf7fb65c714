"""tfkd.Ensemble: averaged soft targets of several frozen teachers."""

import numpy as np
import pytest
from conftest import build_tiny_teacher

import tfkd
from tfkd import keras


@pytest.fixture
def two_teachers():
    keras.utils.set_random_seed(1)
    return build_tiny_teacher(name="teacher_a"), build_tiny_teacher(name="teacher_b")


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_ensemble_outputs_log_of_weighted_mean_probabilities(two_teachers, tiny_data):
    x, _ = tiny_data
    a, b = two_teachers
    ensemble = tfkd.Ensemble([a, b], weights=[3, 1])
    expected = np.log(0.75 * _softmax(a.predict(x, verbose=0)) + 0.25 * _softmax(b(x).numpy()))
    np.testing.assert_allclose(ensemble(x).numpy(), expected, atol=1e-5)
    # Its softmax is the averaged distribution itself: what a logit loss takes as soft targets.
    mean = 0.75 * _softmax(a(x).numpy()) + 0.25 * _softmax(b(x).numpy())
    np.testing.assert_allclose(_softmax(ensemble(x).numpy()), mean, atol=1e-6)
    loss = tfkd.losses.LogitsDistillation(temperature=1.0)
    student = np.zeros_like(mean)  # uniform student: KL(mean || uniform) = sum mean log(10 mean)
    expected = np.mean(np.sum(mean * np.log(10.0 * mean), axis=-1))
    value = np.mean(np.asarray(loss(ensemble(x), student)))
    np.testing.assert_allclose(value, expected, rtol=1e-5)


def test_ensemble_logit_average_and_zero_weight(two_teachers, tiny_data):
    x, _ = tiny_data
    a, b = two_teachers
    logits = tfkd.Ensemble([a, b], weights=[1, 1], average="logits")(x).numpy()
    np.testing.assert_allclose(logits, 0.5 * a(x).numpy() + 0.5 * b(x).numpy(), atol=1e-5)
    only_a = tfkd.Ensemble([a, b], weights=[1, 0])(x).numpy()
    np.testing.assert_allclose(_softmax(only_a), _softmax(a(x).numpy()), atol=1e-5)


def test_ensemble_freezes_every_member_and_knows_its_output_shape(two_teachers):
    ensemble = tfkd.Ensemble(list(two_teachers))
    assert all(not m.trainable for m in two_teachers)
    assert ensemble.trainable_weights == []
    assert ensemble.output_shape == (None, 10)
    assert ensemble.member_weights == [0.5, 0.5]


def test_ensemble_config_round_trip(two_teachers):
    ensemble = tfkd.Ensemble(list(two_teachers), weights=[1, 3], average="logits", name="ens")
    config = ensemble.get_config()
    assert config["weights"] == [0.25, 0.75] and config["average"] == "logits"
    clone = tfkd.Ensemble.from_config(config)
    assert clone.get_config() == config
    assert [m.name for m in clone.members] == ["teacher_a", "teacher_b"]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"models": "teacher"}, TypeError, "non-empty list of Keras models"),
        ({"models": []}, TypeError, "non-empty list"),
        ({"weights": [1.0]}, ValueError, r"one weight per model \(2\)"),
        ({"weights": [1.0, -1.0]}, ValueError, r"Received: weights\[1\]=-1.0"),
        ({"weights": [0, 0]}, ValueError, "must not all be zero"),
        ({"weights": 0.5}, TypeError, "list of numbers"),
        ({"average": "median"}, ValueError, "Received: average='median'"),
    ],
)
def test_ensemble_rejects_bad_arguments(two_teachers, kwargs, error, match):
    kwargs = {"models": list(two_teachers), **kwargs}
    with pytest.raises(error, match=match):
        tfkd.Ensemble(**kwargs)


def test_ensemble_rejects_teachers_of_other_output_shapes_naming_them(two_teachers):
    other = build_tiny_teacher(num_classes=5, name="five_classes")
    shapes = r"'teacher_a'\): \(None, 10\).*'five_classes'\): \(None, 5\)"
    with pytest.raises(ValueError, match=shapes):
        tfkd.Ensemble([two_teachers[0], other])
    with pytest.raises(ValueError, match=r"same model .* models\[0\] and models\[1\]"):
        tfkd.Ensemble([two_teachers[0], two_teachers[0]])
    with pytest.raises(TypeError, match=r"Received: models\[1\]=3"):
        tfkd.Ensemble([two_teachers[0], 3])


def test_distiller_with_a_list_of_teachers_fits_and_leaves_them_unchanged(
    two_teachers, make_student, tiny_data
):
    x, y = tiny_data
    before = [t.get_weights() for t in two_teachers]
    distiller = tfkd.Distiller(teacher=list(two_teachers), student=make_student())
    assert isinstance(distiller.teacher, tfkd.Ensemble)
    distiller.compile(optimizer="adam", loss=_loss(), metrics=["accuracy"])
    history = distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert {"loss", "student_loss", "distillation_loss", "accuracy"} <= set(history.history)
    for teacher, weights in zip(two_teachers, before, strict=True):
        for old, new in zip(weights, teacher.get_weights(), strict=True):
            np.testing.assert_array_equal(old, new)


def _loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
