"""Self-distillation: tfkd.born_again, tfkd.EMATeacher, tfkd.DeepSupervision."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import build_tiny_student

import tfkd
from tfkd import keras


def _loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


# ------------------------------------------------------------------------------- born again


def test_born_again_trains_fresh_generations_each_from_the_last(make_teacher, tiny_data):
    x, y = tiny_data
    teacher = make_teacher()
    before = teacher.get_weights()
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    held_out = (x[:24], y[:24])
    result = tfkd.born_again(
        build_tiny_student, teacher, data, generations=2, epochs=1, verbose=0,
        validation_data=held_out,
    )
    assert len(result.models) == len(result.scores) == len(result.histories) == 2
    assert result.models[0] is not result.models[1]
    assert [s["generation"] for s in result.scores] == [1, 2]
    assert {"accuracy", "loss", "student_loss", "distillation_loss"} <= set(result.scores[0])
    assert "val_accuracy" in result.histories[0].history
    assert all(m.trainable for m in result.models)
    accuracies = [s["accuracy"] for s in result.scores]
    assert result.best("accuracy") is result.models[int(np.argmax(accuracies))]
    losses = [s["loss"] for s in result.scores]
    assert result.best("loss", mode="min") is result.models[int(np.argmin(losses))]
    with pytest.raises(ValueError, match="Received: metric='f1'"):
        result.best("f1")
    with pytest.raises(ValueError, match="Received: mode='lowest'"):
        result.best("loss", mode="lowest")
    for old, new in zip(before, teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    # Generation 2 is scored on the validation data against generation 1.
    second = tfkd.Distiller(teacher=result.models[0], student=result.models[1])
    second.compile(optimizer="sgd", loss=_loss(), metrics=["accuracy"])
    logs = second.evaluate(*held_out, verbose=0, return_dict=True)
    expected = result.scores[1]["distillation_loss"]
    np.testing.assert_allclose(logs["distillation_loss"], expected, rtol=1e-5)


def test_born_again_rejects_bad_arguments(make_teacher, tiny_data):
    teacher = make_teacher()
    with pytest.raises(TypeError, match="function returning a new model"):
        tfkd.born_again(build_tiny_student(), teacher, tiny_data)
    with pytest.raises(ValueError, match="Received: generations=0"):
        tfkd.born_again(build_tiny_student, teacher, tiny_data, generations=0)
    with pytest.raises(TypeError, match=r"`data` must be an `\(x, y\)` tuple"):
        tfkd.born_again(build_tiny_student, teacher, tiny_data[0])
    same = build_tiny_student()
    with pytest.raises(ValueError, match="new model on every call"):
        tfkd.born_again(lambda: same, teacher, tiny_data, generations=2, epochs=1, verbose=0)
    with pytest.raises(TypeError, match="must return a `tfkd.keras.Model`"):
        tfkd.born_again(lambda: "model", teacher, tiny_data)


# ------------------------------------------------------------------------------------- EMA


def test_ema_teacher_weights_equal_the_hand_computed_average(make_student, tiny_data):
    x, y = tiny_data
    student = make_student()
    ema = tfkd.EMATeacher(student, decay=0.9)
    distiller = tfkd.Distiller(teacher=ema, student=student)
    distiller.compile(optimizer=keras.optimizers.SGD(0.5), loss=_loss())
    average = student.get_weights()
    snapshots = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: snapshots.append(student.get_weights())
    )
    history = distiller.fit(
        x, y, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=[record]
    )
    assert {"loss", "student_loss", "distillation_loss"} <= set(history.history)
    assert len(snapshots) == 4
    for weights in snapshots:
        average = [0.9 * a + 0.1 * w for a, w in zip(average, weights, strict=True)]
    for expected, actual in zip(average, ema.model.get_weights(), strict=True):
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
    assert student.trainable and student.trainable_weights  # the student was not frozen
    assert not any(np.array_equal(a, b) for a, b in zip(average, snapshots[-1], strict=True))


def test_ema_teacher_feature_losses_tap_the_average(make_student, tiny_data):
    x, y = tiny_data
    student = make_student()
    loss = tfkd.losses.LogitsDistillation(teacher_layer="s_logits", student_layer="s_logits")
    distiller = tfkd.Distiller(
        teacher=tfkd.EMATeacher(student, decay=0.5), student=student, distillation_losses=loss
    )
    distiller.compile(optimizer="sgd", loss=_loss())
    logs = distiller.evaluate(x, y, verbose=0, return_dict=True)
    assert logs["distillation_loss"] == pytest.approx(0.0, abs=1e-6)  # average == student


def test_ema_teacher_config_and_bad_arguments(make_student):
    student = make_student()
    ema = tfkd.EMATeacher(student, decay=0.99, name="avg")
    config = ema.get_config()
    assert (config["decay"], config["name"]) == (0.99, "avg")
    assert tfkd.EMATeacher.from_config(config).get_config() == config
    with pytest.raises(ValueError, match=r"Received: decay=1.0"):
        tfkd.EMATeacher(student, decay=1.0)
    with pytest.raises(TypeError, match="Received: decay='slow'"):
        tfkd.EMATeacher(student, decay="slow")
    with pytest.raises(TypeError, match="Received: student=3"):
        tfkd.EMATeacher(3)
    with pytest.raises(ValueError, match="follow the Distiller's own student"):
        tfkd.Distiller(teacher=ema, student=build_tiny_student())
    with pytest.raises(ValueError, match="Functional or Sequential"):
        tfkd.EMATeacher(_Subclassed())
    with pytest.raises(ValueError, match="built student"):
        tfkd.EMATeacher(keras.Sequential([keras.layers.Dense(3)]))


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(10)

    def call(self, inputs):
        return self.dense(keras.layers.Flatten()(inputs))


# ------------------------------------------------------------------------- deep supervision


def test_deep_supervision_loss_is_hand_computable(make_teacher, tiny_data):
    x, y = tiny_data
    ds = tfkd.DeepSupervision(
        make_teacher(), taps=["t_conv"], temperature=2.0, student_loss_weight=0.25,
        head_loss_weight=0.5,
    )
    ds.compile(optimizer=keras.optimizers.SGD(0.0))
    logs = ds.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    final, head = (o.numpy() for o in ds(x))
    ce = lambda z: -tf.nn.log_softmax(z).numpy()[np.arange(64), y]  # noqa: E731
    lp_t, lp_s = (tf.nn.log_softmax(z / 2.0).numpy() for z in (final, head))
    kl = (np.exp(lp_t) * (lp_t - lp_s)).sum(-1) * 4.0
    head_loss = 0.25 * ce(head) + 0.75 * kl
    np.testing.assert_allclose(logs["t_conv_loss"], head_loss.mean(), rtol=1e-4)
    np.testing.assert_allclose(logs["loss"], (ce(final) + 0.5 * head_loss).mean(), rtol=1e-4)


def test_deep_supervision_fit_then_drop_heads_or_exit_early(make_teacher, tiny_data):
    x, y = tiny_data
    model = make_teacher()
    ds = tfkd.DeepSupervision(model, taps=["t_conv", "t_embed"])
    ds.compile(optimizer="adam", metrics=["accuracy"])
    history = ds.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert set(history.history) == {
        "loss", "t_conv_loss", "t_embed_loss", "accuracy", "t_conv_accuracy", "t_embed_accuracy"
    }
    assert ds.without_heads() is ds.model is model
    assert [layer.name for layer in model.layers][-1] == "t_logits"  # no heads inside
    outputs = ds.predict(x, verbose=0)
    np.testing.assert_allclose(outputs[0], model.predict(x, verbose=0), atol=1e-5)
    early = ds.exit_model("t_conv")
    assert "t_embed" not in [layer.name for layer in early.layers]
    assert early.count_params() < model.count_params()
    np.testing.assert_allclose(early.predict(x, verbose=0), outputs[1], atol=1e-5)


def test_deep_supervision_accuracy_follows_shapes_not_the_loss_name(make_teacher, tiny_data):
    x, y = tiny_data

    def my_ce(y_true, y_pred):
        return keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)

    ds = tfkd.DeepSupervision(make_teacher(), taps=["t_conv"])
    ds.compile(optimizer=keras.optimizers.SGD(0.0), loss=my_ce, metrics=["accuracy"])
    logs = ds.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    final, head = (np.argmax(o.numpy(), axis=-1) for o in ds(x))
    np.testing.assert_allclose(logs["accuracy"], np.mean(final == y), atol=1e-6)
    np.testing.assert_allclose(logs["t_conv_accuracy"], np.mean(head == y), atol=1e-6)


def test_deep_supervision_without_head_loss_trains_exactly_as_the_model_alone(tiny_data):
    """The training step adds nothing of its own (why it can score below the model alone is the
    heads' cost on small networks: benchmarks/deep_supervision.py)."""
    x, y = tiny_data
    runs = []
    for heads in (False, True):
        keras.utils.set_random_seed(7)
        model = build_tiny_student()
        if heads:
            trainable = tfkd.DeepSupervision(model, taps=["s_conv"], head_loss_weight=0.0)
            trainable.compile(optimizer=keras.optimizers.Adam(0.01))
        else:
            trainable = model
            trainable.compile(optimizer=keras.optimizers.Adam(0.01), loss=_loss())
        trainable.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        runs.append(model.get_weights())
    for alone, supervised in zip(*runs, strict=True):
        np.testing.assert_allclose(supervised, alone, atol=1e-5)


def test_deep_supervision_custom_head_and_config_round_trip(make_teacher):
    head = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(10)], name="template")
    ds = tfkd.DeepSupervision(make_teacher(), taps=["t_conv"], head=head, temperature=4.0)
    assert ds.exit_model("t_conv").count_params() == 8 * 8 * 8 * 10 + 10 + 80
    config = ds.get_config()
    assert config["taps"] == ["t_conv"] and config["temperature"] == 4.0
    assert tfkd.DeepSupervision.from_config(config).get_config() == config


def test_deep_supervision_rejects_bad_arguments(make_teacher):
    model = make_teacher()
    with pytest.raises(ValueError, match=r"no layer named 'conv9'.*'t_conv', 't_flatten'"):
        tfkd.DeepSupervision(model, taps=["conv9"])
    with pytest.raises(TypeError, match="non-empty list of layer names"):
        tfkd.DeepSupervision(model, taps="t_conv")
    with pytest.raises(ValueError, match="must not repeat"):
        tfkd.DeepSupervision(model, taps=["t_conv", "t_conv"])
    with pytest.raises(ValueError, match="Functional or Sequential"):
        tfkd.DeepSupervision(_Subclassed(), taps=["dense"])
    with pytest.raises(ValueError, match=r"head on 't_conv' outputs \(None, 3\)"):
        tfkd.DeepSupervision(model, taps=["t_conv"], head=_flat_dense(3))
    with pytest.raises(TypeError, match="Received: head="):
        tfkd.DeepSupervision(model, taps=["t_conv"], head=lambda shape: None)
    with pytest.raises(ValueError, match="Received: student_loss_weight=2"):
        tfkd.DeepSupervision(model, taps=["t_conv"], student_loss_weight=2)
    with pytest.raises(ValueError, match="tapped layers"):
        tfkd.DeepSupervision(model, taps=["t_conv"]).exit_model("t_embed")


def _flat_dense(units):
    return keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(units)])
