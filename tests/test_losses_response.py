"""`tfkd.losses.LogitsDistillation`: hand-checked values, stability, serialization, bad inputs."""

import numpy as np
import pytest

import tfkd
from tfkd import keras

TEACHER = np.array([[2.0, 1.0, 0.1], [0.5, -1.0, 3.0]], dtype="float32")
STUDENT = np.array([[1.0, 1.5, -0.5], [0.0, 0.2, 1.0]], dtype="float32")


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _hand(loss, temperature):
    """The per-sample loss, written out with plain numpy (float64)."""
    t, s = TEACHER.astype("float64"), STUDENT.astype("float64")
    if loss == "mse":
        return ((s - t) ** 2).mean(axis=-1)
    p, q = _softmax(t / temperature), _softmax(s / temperature)
    if loss == "kl":
        return (p * np.log(p / q)).sum(axis=-1) * temperature**2
    return -(p * np.log(q)).sum(axis=-1) * temperature**2


@pytest.mark.parametrize("loss", ["kl", "ce", "mse"])
@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_values_match_hand_computation(loss, temperature):
    distillation = tfkd.losses.LogitsDistillation(temperature=temperature, loss=loss)
    expected = _hand(loss, temperature)
    np.testing.assert_allclose(distillation.compute(TEACHER, STUDENT).numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(distillation(TEACHER, STUDENT).numpy(), expected.mean(), rtol=1e-5)


def test_first_row_by_hand():
    """KL at T=1 of the first row, digit by digit: p = softmax([2, 1, 0.1])."""
    p = np.array([0.6590012, 0.2424329, 0.0985659])
    q = np.array([0.3482093, 0.5740976, 0.0776931])  # softmax([1, 1.5, -0.5])
    kl = float(np.sum(p * np.log(p / q)))
    value = tfkd.losses.LogitsDistillation(temperature=1.0).compute(TEACHER, STUDENT)[0]
    np.testing.assert_allclose(value.numpy(), kl, rtol=1e-4)
    np.testing.assert_allclose(kl, 0.4204 - 0.2090 + 0.0235, atol=1e-3)  # the three terms


@pytest.mark.parametrize("loss", ["kl", "ce"])
def test_scaled_by_temperature_squared(loss):
    """Against the unscaled divergence at the same temperature: exactly T**2 times it."""
    for temperature in (2.0, 4.0, 10.0):
        value = tfkd.losses.LogitsDistillation(temperature, loss=loss)(TEACHER, STUDENT).numpy()
        unscaled = _hand(loss, temperature).mean() / temperature**2
        np.testing.assert_allclose(value / temperature**2, unscaled, rtol=1e-5)


def test_mse_ignores_temperature():
    a = tfkd.losses.LogitsDistillation(1.0, loss="mse")(TEACHER, STUDENT).numpy()
    b = tfkd.losses.LogitsDistillation(7.0, loss="mse")(TEACHER, STUDENT).numpy()
    assert a == b


@pytest.mark.parametrize("loss", ["kl", "ce"])
def test_stable_on_huge_logits(loss):
    teacher = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5e3]], dtype="float32")
    student = np.array([[-1e4, 1e4, 0.0], [1e4, -1e4, 0.0]], dtype="float32")
    value = tfkd.losses.LogitsDistillation(temperature=1.0, loss=loss).compute(teacher, student)
    assert np.all(np.isfinite(value.numpy()))
    # First row: the teacher is one-hot on class 0, where the student's log-probability is -2e4.
    np.testing.assert_allclose(value.numpy()[0], 2e4, rtol=1e-5)
    same = tfkd.losses.LogitsDistillation(temperature=1.0, loss="kl")(teacher, teacher)
    assert np.isfinite(same.numpy()) and abs(float(same)) < 1e-6


def test_zero_when_student_equals_teacher():
    for temperature in (0.5, 3.0):
        value = tfkd.losses.LogitsDistillation(temperature)(TEACHER, TEACHER).numpy()
        assert abs(value) < 1e-6


def test_gradient_points_the_student_to_the_teacher():
    from tfkd._keras import tf

    student = tf.Variable(STUDENT)
    with tf.GradientTape() as tape:
        value = tfkd.losses.LogitsDistillation(2.0)(TEACHER, student)
    gradient = tape.gradient(value, student).numpy()
    # d/ds of T**2 * KL(softmax(t/T) || softmax(s/T)), averaged over 2 rows: T * (q - p) / 2.
    expected = 2.0 * (_softmax(STUDENT / 2.0) - _softmax(TEACHER / 2.0)) / 2
    np.testing.assert_allclose(gradient, expected, rtol=1e-4, atol=1e-6)


def test_config_round_trip():
    loss = tfkd.losses.LogitsDistillation(
        temperature=4, loss="ce", teacher_layer="t_logits", student_layer="s_logits", name="soft"
    )
    config = loss.get_config()
    assert config == {
        "teacher_layer": "t_logits",
        "student_layer": "s_logits",
        "name": "soft",
        "temperature": 4.0,
        "loss": "ce",
    }
    again = tfkd.losses.LogitsDistillation.from_config(config)
    assert again.get_config() == config
    np.testing.assert_allclose(again(TEACHER, STUDENT), loss(TEACHER, STUDENT))


def test_keras_serialization_under_package_tfkd():
    loss = tfkd.losses.LogitsDistillation(temperature=2.0, loss="mse")
    serialized = tfkd.losses.serialize(loss)
    assert "tfkd>LogitsDistillation" in str(serialized)
    assert keras.utils.get_registered_name(type(loss)) == "tfkd>LogitsDistillation"
    restored = tfkd.losses.deserialize(serialized)
    assert isinstance(restored, tfkd.losses.LogitsDistillation)
    assert restored.get_config() == loss.get_config()
    generic = keras.utils.deserialize_keras_object(keras.utils.serialize_keras_object(loss))
    assert generic.get_config() == loss.get_config()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"temperature": 0.0}, ValueError, "must be > 0.*Received: temperature=0.0"),
        ({"temperature": -1}, ValueError, "Received: temperature=-1"),
        ({"temperature": "hot"}, TypeError, "must be a number.*Received: temperature='hot'"),
        ({"temperature": True}, TypeError, "Received: temperature=True"),
        ({"temperature": None}, TypeError, "Received: temperature=None"),
        ({"loss": "hinge"}, ValueError, "one of 'kl', 'ce', 'mse'.*Received: loss='hinge'"),
        ({"teacher_layer": 3}, TypeError, "layer name.*Received: teacher_layer=3"),
        ({"student_layer": ["a"]}, TypeError, r"Received: student_layer=\['a'\]"),
    ],
)
def test_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        tfkd.losses.LogitsDistillation(**kwargs)
