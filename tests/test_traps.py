"""Silent traps get a word: labels, inputs, untrained teachers and softmax outputs."""

import warnings

import numpy as np
import pytest
import tensorflow as tf

from tfkd import keras
from tfkd.checks import (
    check_inputs,
    check_labels,
    ends_in_softmax,
    logits_tensor,
    warn_if_untrained,
)


def _mlp(last_activation=None, separate_softmax=False, name="m"):
    inputs = keras.Input((4,))
    x = keras.layers.Dense(8, activation="relu")(inputs)
    x = keras.layers.Dense(3, activation=last_activation, name="out")(x)
    if separate_softmax:
        x = keras.layers.Activation("softmax", name="probs")(x)
    return keras.Model(inputs, x, name=name)


@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy",
                                  keras.losses.SparseCategoricalCrossentropy(from_logits=True)])
def test_one_hot_labels_for_a_sparse_loss(loss):
    with pytest.raises(ValueError, match=r"labels are one-hot. Received: y of shape \(8, 3\)"):
        check_labels(np.eye(3)[np.arange(8) % 3], loss, num_classes=3)


def test_class_ids_for_a_categorical_loss():
    with pytest.raises(ValueError, match=r"these are class ids. Received: y of shape \(8,\)"):
        check_labels(np.arange(8) % 3, keras.losses.CategoricalCrossentropy(), num_classes=3)


def test_labels_outside_the_classes():
    with pytest.raises(ValueError, match=r"in \[0, 3\).*Received: labels from 0 to 9"):
        check_labels(np.arange(10), "sparse_categorical_crossentropy", num_classes=3)


def test_fitting_labels_pass():
    check_labels(np.arange(9) % 3, "sparse_categorical_crossentropy", num_classes=3)
    check_labels(np.eye(3)[np.arange(9) % 3], "categorical_crossentropy", num_classes=3)
    check_labels(np.arange(9) % 3, None, num_classes=3)


def test_inputs_with_nan():
    x = np.zeros((4, 4), "float32")
    x[1, 2] = np.inf
    with pytest.raises(ValueError, match="Received: x with 1 NaN or infinite values"):
        check_inputs(x, {"student": _mlp()})


def test_inputs_that_do_not_fit_the_teacher():
    teacher = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match=r"teacher's input shape \(batch, 5\).*shape \(4,\)"):
        check_inputs(np.zeros((2, 4), "float32"), {"student": _mlp(), "teacher": teacher})


def test_an_untrained_teacher_is_named():
    logits = np.random.default_rng(0).normal(scale=0.01, size=(32, 10))
    with pytest.warns(UserWarning, match="The teacher looks untrained: its outputs are nearly"):
        warn_if_untrained(logits)


def test_a_teacher_worse_than_chance_is_named():
    labels = np.arange(40) % 4
    logits = np.eye(4)[(labels + 1) % 4] * 5.0  # confident and always wrong
    with pytest.warns(UserWarning, match="right on 0% of the first batch, below chance"):
        warn_if_untrained(logits, labels, name="teacher 'big'")


def test_a_trained_teacher_passes_quietly():
    labels = np.arange(40) % 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_if_untrained(np.eye(4)[labels] * 5.0, labels) is None


def test_logits_before_a_separate_softmax_layer():
    model = _mlp(separate_softmax=True)
    assert ends_in_softmax(model).name == "probs"
    reader = keras.Model(model.inputs, logits_tensor(model, "teacher"))
    x = np.random.default_rng(0).random((5, 4)).astype("float32")
    logits = reader(x).numpy()
    np.testing.assert_allclose(tf.nn.softmax(logits).numpy(), model(x).numpy(),
                               rtol=1e-5, atol=1e-6)


def test_logits_of_a_dense_softmax_use_its_own_weights():
    model = _mlp("softmax")
    reader = keras.Model(model.inputs, logits_tensor(model, "student"))
    x = np.random.default_rng(1).random((5, 4)).astype("float32")
    probabilities = tf.nn.softmax(reader(x)).numpy()
    np.testing.assert_allclose(probabilities, model(x).numpy(), rtol=1e-5, atol=1e-6)
    assert {id(w) for w in reader.trainable_weights} == {id(w) for w in model.trainable_weights}


def test_logit_outputs_are_left_alone():
    assert ends_in_softmax(_mlp()) is None and logits_tensor(_mlp(), "teacher") is None


def test_a_softmax_it_cannot_read_is_refused_with_the_fix():
    inputs = keras.Input((4, 4, 2))
    outputs = keras.layers.Conv2D(3, 1, activation="softmax", name="seg")(inputs)
    model = keras.Model(inputs, outputs, name="segmenter")
    with pytest.raises(ValueError, match=r"teacher 'segmenter' ends in a softmax \(Conv2D 'seg'\)"
                                         r".*Activation\('softmax'\)"):
        logits_tensor(model, "teacher")


# Through the Distiller: each trap is one sentence (or one warning) before anything is traced.


def _distiller(teacher, student):
    import tfkd

    distiller = tfkd.Distiller(teacher=teacher, student=student)
    distiller.compile(optimizer="adam", metrics=["accuracy"],
                      student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      distillation_loss_fn=keras.losses.KLDivergence(), alpha=0.1, temperature=4)
    return distiller


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    return rng.random((16, 4)).astype("float32"), np.arange(16) % 3


def test_fit_with_one_hot_labels_is_one_sentence(batch):
    x, y = batch
    distiller = _distiller(_mlp(name="t"), _mlp(name="s"))
    with pytest.raises(ValueError, match="labels are one-hot"):
        distiller.fit(x, np.eye(3)[y], epochs=1, verbose=0)
    assert distiller.optimizer.iterations.numpy() == 0  # nothing ran


def test_fit_with_inputs_the_teacher_cannot_take(batch):
    x, y = batch
    teacher = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)], name="wide")
    distiller = _distiller(teacher, _mlp(name="s"))
    with pytest.raises(ValueError, match=r"teacher's input shape \(batch, 5\)"):
        distiller.fit(x, y, epochs=1, verbose=0)


def test_evaluate_with_labels_out_of_range(batch):
    x, y = batch
    distiller = _distiller(_mlp(name="t"), _mlp(name="s"))
    with pytest.raises(ValueError, match="Received: labels from 0 to 7"):
        distiller.evaluate(x, np.arange(16) % 8, verbose=0)


def test_fit_from_an_untrained_teacher_warns_by_name(batch):
    x, y = batch
    teacher = _mlp(name="fresh")
    for layer in teacher.layers[1:]:
        layer.set_weights([w * 0.0 for w in layer.get_weights()])  # uniform outputs
    with pytest.warns(UserWarning, match="The teacher 'fresh' looks untrained"):
        _distiller(teacher, _mlp(name="s")).fit(x, y, epochs=1, verbose=0)


def test_a_softmax_teacher_is_read_as_logits(batch):
    """A teacher ending in softmax gives the same distillation loss as its logits would."""
    x, y = batch
    logits_teacher = _mlp(name="t")
    probabilities = keras.layers.Activation("softmax")(logits_teacher.output)
    softmax_teacher = keras.Model(logits_teacher.inputs, probabilities, name="soft")
    student = _mlp(name="s")
    expected = _distiller(logits_teacher, student).evaluate(x, y, verbose=0, return_dict=True)
    with pytest.warns(UserWarning, match="'soft' outputs softmax probabilities"):
        distiller = _distiller(softmax_teacher, student)
    got = distiller.evaluate(x, y, verbose=0, return_dict=True)
    assert got["distillation_loss"] == pytest.approx(expected["distillation_loss"], rel=1e-5)


def test_a_softmax_teacher_is_cached_as_logits(batch):
    import tfkd

    x, _ = batch
    logits_teacher = _mlp(name="t")
    dense_softmax = keras.Model(logits_teacher.inputs, keras.layers.Activation("softmax")(
        logits_teacher.output), name="soft")
    with pytest.warns(UserWarning, match="reads the logits before its final softmax"):
        cached = tfkd.cache_teacher_outputs(dense_softmax, x, verbose=0)
    np.testing.assert_allclose(cached.logits(), logits_teacher.predict(x, verbose=0), rtol=1e-5,
                               atol=1e-6)
