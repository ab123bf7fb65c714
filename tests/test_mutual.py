"""tfkd.MutualDistiller: deep mutual learning, models learning from the labels and each other."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import build_tiny_student, build_tiny_teacher

import tfkd
from tfkd import keras


@pytest.fixture
def peers():
    keras.utils.set_random_seed(3)
    return [build_tiny_teacher(name="big"), build_tiny_student(name="small")]


def _log_softmax(z):
    return tf.nn.log_softmax(z, axis=-1).numpy()


def test_loss_is_labels_plus_mean_kl_to_the_peers(peers, tiny_data):
    x, y = tiny_data
    third = build_tiny_student(name="third")
    mutual = tfkd.MutualDistiller([*peers, third], temperature=2.0, distillation_loss_weight=0.5)
    mutual.compile(optimizer=keras.optimizers.SGD(0.0))
    logs = mutual.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    logits = [m(x).numpy() for m in mutual.models]
    expected_total = 0.0
    for i, z in enumerate(logits):
        ce = -_log_softmax(z)[np.arange(64), y]
        kls = []
        for j, other in enumerate(logits):
            if j != i:
                lp_t, lp_s = _log_softmax(other / 2.0), _log_softmax(z / 2.0)
                kls.append((np.exp(lp_t) * (lp_t - lp_s)).sum(-1) * 4.0)
        expected = np.mean(ce + 0.5 * np.mean(kls, axis=0))
        np.testing.assert_allclose(logs[f"model_{i}_loss"], expected, rtol=1e-4)
        expected_total += expected
    np.testing.assert_allclose(logs["loss"], expected_total, rtol=1e-4)


def test_fit_trains_every_model_and_leaves_plain_models(peers, tiny_data):
    x, y = tiny_data
    before = [m.get_weights() for m in peers]
    mutual = tfkd.MutualDistiller(peers, temperature=3.0)
    mutual.compile(optimizer="adam", metrics=["accuracy"])
    history = mutual.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert set(history.history) == {
        "loss", "model_0_loss", "model_1_loss", "model_0_accuracy", "model_1_accuracy"
    }
    for model, weights in zip(mutual.models, before, strict=True):
        assert any(model is peer for peer in peers)  # the user's own models, unwrapped
        assert model.trainable
        after = model.get_weights()
        assert any(not np.array_equal(a, b) for a, b in zip(weights, after, strict=True))
    outputs = mutual.predict(x, verbose=0)
    assert len(outputs) == 2
    np.testing.assert_allclose(outputs[1], peers[1].predict(x, verbose=0), atol=1e-5)


def test_sample_weights_scale_each_sample(peers, tiny_data):
    x, y = tiny_data
    mutual = tfkd.MutualDistiller(peers)
    mutual.compile(optimizer=keras.optimizers.SGD(0.0))
    weights = np.zeros(64, "float32")
    weights[:32] = 1.0
    weighted = mutual.evaluate(x, y, sample_weight=weights, batch_size=64, verbose=0)
    half = mutual.evaluate(x[:32], y[:32], batch_size=64, verbose=0)
    # Per-sample losses averaged over all 64 samples (zeros count), as the Distiller does.
    np.testing.assert_allclose(weighted[0], half[0] / 2.0, rtol=1e-5)


def test_config_round_trip(peers):
    mutual = tfkd.MutualDistiller(peers, temperature=4.0, distillation_loss_weight=2.0, name="dml")
    config = mutual.get_config()
    assert (config["temperature"], config["distillation_loss_weight"]) == (4.0, 2.0)
    clone = tfkd.MutualDistiller.from_config(config)
    assert clone.get_config() == config


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"temperature": 0}, ValueError, "Received: temperature=0"),
        ({"temperature": "hot"}, TypeError, "Received: temperature='hot'"),
        ({"distillation_loss_weight": -1}, ValueError, "Received: distillation_loss_weight=-1"),
    ],
)
def test_rejects_bad_numbers(peers, kwargs, error, match):
    with pytest.raises(error, match=match):
        tfkd.MutualDistiller(peers, **kwargs)


def test_rejects_bad_models(peers):
    with pytest.raises(ValueError, match="at least two models"):
        tfkd.MutualDistiller([peers[0]])
    with pytest.raises(TypeError, match="list of at least two Keras models"):
        tfkd.MutualDistiller(peers[0])
    with pytest.raises(ValueError, match=r"same model .* models\[0\] and models\[1\]"):
        tfkd.MutualDistiller([peers[0], peers[0]])
    five = build_tiny_student(num_classes=5, name="five")
    with pytest.raises(ValueError, match=r"'big'\): \(None, 10\).*'five'\): \(None, 5\)"):
        tfkd.MutualDistiller([peers[0], five])
    with pytest.raises(TypeError, match=r"Received: metrics='accuracy'"):
        tfkd.MutualDistiller(peers).compile(metrics="accuracy")


def _my_ce(y_true, y_pred):
    """A custom-named loss: nothing in its name says the labels are class indices."""
    return keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)


def test_accuracy_follows_label_and_output_shapes_not_the_loss_name(peers, tiny_data):
    x, y = tiny_data
    mutual = tfkd.MutualDistiller(peers)
    mutual.compile(optimizer=keras.optimizers.SGD(0.0), loss=_my_ce, metrics=["accuracy"])
    logs = mutual.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    for i, model in enumerate(mutual.models):
        expected = np.mean(np.argmax(model(x).numpy(), axis=-1) == y)
        np.testing.assert_allclose(logs[f"model_{i}_accuracy"], expected, atol=1e-6)
    one_hot = np.eye(10, dtype="float32")[y]
    mutual.compile(
        optimizer=keras.optimizers.SGD(0.0), metrics=["acc"],
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
    )
    logs = mutual.evaluate(x, one_hot, batch_size=64, verbose=0, return_dict=True)
    expected = np.mean(np.argmax(mutual.models[1](x).numpy(), axis=-1) == y)
    np.testing.assert_allclose(logs["model_1_acc"], expected, atol=1e-6)
