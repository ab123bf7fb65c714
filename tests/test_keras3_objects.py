"""Keras 3 optimizers, losses, metrics, callbacks and `keras.distillation` losses handed to tfkd:
converted to their tf_keras (or tfkd.losses) equivalents, or refused naming the equivalent."""

import csv
import importlib
import warnings

import numpy as np
import pytest
from conftest import build_tiny_student, build_tiny_teacher

import tfkd
from tfkd import keras
from tfkd.keras3 import objects

keras3 = importlib.import_module("keras")  # Keras 3: only to make the objects users bring


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# ------------------------------------------------------------------------------- optimizers


def test_keras3_optimizer_becomes_the_tf_keras_one_with_its_settings():
    k3 = keras3.optimizers.Adam(learning_rate=0.01, beta_1=0.8, epsilon=1e-5, clipnorm=1.5)
    with pytest.warns(UserWarning, match="Keras 3 Adam"):
        converted = objects.convert_optimizer(k3)
    assert isinstance(converted, keras.optimizers.Adam)
    config = converted.get_config()
    assert config["learning_rate"] == pytest.approx(0.01)
    assert (config["beta_1"], config["epsilon"], config["clipnorm"]) == (0.8, 1e-5, 1.5)


def test_keras3_optimizer_keeps_its_learning_rate_schedule():
    schedule = keras3.optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    converted = _quiet(objects.convert_optimizer, keras3.optimizers.SGD(schedule, momentum=0.9))
    assert isinstance(converted, keras.optimizers.SGD) and converted.get_config()["momentum"] == 0.9
    saved = converted.get_config()["learning_rate"]
    assert saved["class_name"] == "ExponentialDecay"
    new_schedule = keras.optimizers.schedules.deserialize(saved)
    assert float(new_schedule(10)) == pytest.approx(0.05)


def test_tf_keras_optimizers_and_names_pass_through():
    adam = keras.optimizers.Adam()
    assert objects.convert_optimizer(adam) is adam
    assert objects.convert_optimizer("adam") == "adam"


@pytest.mark.parametrize("build, match", [
    (lambda: keras3.optimizers.Lamb(), r"tfkd\.keras\.optimizers\.Adam"),
    (lambda: keras3.optimizers.Adam(gradient_accumulation_steps=2), "gradient_accumulation_steps"),
])
def test_keras3_optimizer_without_an_equivalent_is_refused(build, match):
    with pytest.raises(ValueError, match="Received: optimizer=") as info:
        objects.convert_optimizer(build())
    assert info.match(match)


# ------------------------------------------------------------------------------ metrics, losses


def test_keras3_metrics_become_tf_keras_metrics_of_the_same_name():
    metrics = [keras3.metrics.SparseCategoricalAccuracy(name="acc"), "mae",
               keras3.metrics.SparseTopKCategoricalAccuracy(k=3)]
    converted = _quiet(objects.convert_metrics, metrics)
    assert isinstance(converted[0], keras.metrics.SparseCategoricalAccuracy)
    assert converted[0].name == "acc" and converted[1] == "mae"
    assert isinstance(converted[2], keras.metrics.SparseTopKCategoricalAccuracy)
    assert converted[2].get_config()["k"] == 3
    by_output = _quiet(objects.convert_metrics, {"out": [keras3.metrics.AUC(num_thresholds=50)]})
    assert isinstance(by_output["out"][0], keras.metrics.AUC)
    assert by_output["out"][0].num_thresholds == 50


def test_keras3_metric_without_an_equivalent_is_refused():
    with pytest.raises(ValueError, match=r"Received: metrics\[0\]=.*PearsonCorrelation"):
        objects.convert_metrics([keras3.metrics.PearsonCorrelation()])


def test_keras3_loss_object_and_function_become_tf_keras_losses():
    loss = _quiet(objects.convert_loss,
                  keras3.losses.SparseCategoricalCrossentropy(from_logits=True), "loss")
    assert isinstance(loss, keras.losses.SparseCategoricalCrossentropy)
    assert loss.get_config()["from_logits"] is True
    function = _quiet(objects.convert_loss, keras3.losses.mean_squared_error, "loss")
    assert function is keras.losses.mean_squared_error
    by_output = _quiet(objects.convert_loss, {"a": keras3.losses.MeanSquaredError(), "b": "mae"})
    assert isinstance(by_output["a"], keras.losses.MeanSquaredError) and by_output["b"] == "mae"
    with pytest.raises(ValueError, match="`loss` is a Keras 3 Dice.*Received: loss="):
        objects.convert_loss(keras3.losses.Dice(), "loss")


# ----------------------------------------------------------------------------------- callbacks


def test_keras3_callbacks_become_tf_keras_callbacks_with_their_settings(tmp_path):
    def schedule(epoch, lr):
        return lr * 0.5

    given = [
        keras3.callbacks.EarlyStopping(monitor="val_acc", min_delta=0.01, patience=3, mode="max",
                                       baseline=0.5, restore_best_weights=True, start_from_epoch=2),
        keras3.callbacks.ModelCheckpoint(str(tmp_path / "w.weights.h5"), monitor="loss",
                                         save_best_only=True, save_weights_only=True),
        keras3.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.2, patience=4, min_lr=1e-4,
                                           cooldown=1, min_delta=0.001),
        keras3.callbacks.CSVLogger(str(tmp_path / "log.csv"), separator=";", append=True),
        keras3.callbacks.TensorBoard(str(tmp_path / "tb"), histogram_freq=2, write_graph=False),
        keras3.callbacks.LearningRateScheduler(schedule, verbose=1),
        keras3.callbacks.TerminateOnNaN(),
    ]
    with pytest.warns(UserWarning, match="Keras 3") as record:
        stop, checkpoint, plateau, logger, board, scheduler, nan = (
            objects.convert_callbacks(given))
    assert len([w for w in record if "Keras 3" in str(w.message)]) == 1
    assert isinstance(stop, keras.callbacks.EarlyStopping)
    assert (stop.monitor, stop.patience, stop.baseline, stop.start_from_epoch) == (
        "val_acc", 3, 0.5, 2)
    assert stop.min_delta == pytest.approx(0.01) and stop.restore_best_weights
    assert stop.monitor_op is np.greater
    assert isinstance(checkpoint, keras.callbacks.ModelCheckpoint)
    assert checkpoint.filepath == str(tmp_path / "w.weights.h5") and checkpoint.monitor == "loss"
    assert checkpoint.save_best_only and checkpoint.save_weights_only
    assert isinstance(plateau, keras.callbacks.ReduceLROnPlateau)
    assert (plateau.factor, plateau.patience, plateau.min_lr, plateau.cooldown) == (
        0.2, 4, 1e-4, 1)
    assert plateau.min_delta == pytest.approx(0.001)
    assert isinstance(logger, keras.callbacks.CSVLogger)
    assert (logger.filename, logger.sep, logger.append) == (str(tmp_path / "log.csv"), ";", True)
    assert isinstance(board, keras.callbacks.TensorBoard)
    assert (board.log_dir, board.histogram_freq, board.write_graph) == (
        str(tmp_path / "tb"), 2, False)
    assert isinstance(scheduler, keras.callbacks.LearningRateScheduler)
    assert scheduler.schedule is schedule and scheduler.verbose == 1
    assert isinstance(nan, keras.callbacks.TerminateOnNaN)


def test_a_single_keras3_callback_is_accepted():
    converted = _quiet(objects.convert_callbacks, keras3.callbacks.TerminateOnNaN())
    assert len(converted) == 1 and isinstance(converted[0], keras.callbacks.TerminateOnNaN)


class _MyKeras3Callback(keras3.callbacks.Callback):
    pass


@pytest.mark.parametrize("build, equivalent", [
    (lambda: keras3.callbacks.LambdaCallback(on_epoch_end=print), "LambdaCallback"),
    (lambda: _MyKeras3Callback(), "Callback"),
])
def test_keras3_callback_without_a_conversion_is_refused(build, equivalent):
    with pytest.raises(ValueError, match=r"Received: callbacks\[1\]=") as info:
        objects.convert_callbacks([keras.callbacks.TerminateOnNaN(), build()])
    assert f"tfkd.keras.callbacks.{equivalent}" in str(info.value)


# ------------------------------------------------------------------- keras.distillation losses


def _logits(seed, shape=(6, 10)):
    return np.random.default_rng(seed).normal(0.0, 2.0, shape).astype("float32")


def test_keras3_logits_distillation_becomes_tfkd_with_the_same_value():
    k3 = keras3.distillation.LogitsDistillation(temperature=4.0, loss=keras3.losses.KLDivergence())
    converted = _quiet(objects.convert_distillation_losses, k3)
    assert len(converted) == 1 and isinstance(converted[0], tfkd.losses.LogitsDistillation)
    assert converted[0].temperature == 4.0
    teacher, student = _logits(0), _logits(1)
    expected = float(np.asarray(k3.compute_loss(teacher, student)))
    assert float(converted[0](teacher, student)) == pytest.approx(expected, rel=1e-5)
    default = _quiet(objects.convert_distillation_losses,
                     [keras3.distillation.LogitsDistillation()])
    assert default[0].temperature == 3.0 and default[0].loss == "kl"


def test_keras3_feature_distillation_becomes_tfkd_with_the_same_value():
    k3 = keras3.distillation.FeatureDistillation(
        loss="mse", teacher_layer_name="t_embed", student_layer_name="s_embed")
    (converted,) = _quiet(objects.convert_distillation_losses, [k3])
    assert isinstance(converted, tfkd.losses.FeatureDistillation)
    assert (converted.teacher_layer, converted.student_layer) == ("t_embed", "s_embed")
    teacher, student = _logits(2, (6, 8)), _logits(3, (6, 8))
    expected = float(np.asarray(k3.compute_loss(teacher, student)))
    assert float(converted(teacher, student)) == pytest.approx(expected, rel=1e-5)


def test_keras3_distillation_loss_without_an_equivalent_is_refused():
    k3 = keras3.distillation.LogitsDistillation(loss=["kl_divergence", None])  # per output
    with pytest.raises(ValueError, match=r"Received: distillation_losses\[0\]=") as info:
        objects.convert_distillation_losses([k3])
    assert "tfkd.losses.LogitsDistillation" in str(info.value)


# ------------------------------------------------------------------ through Distiller, end to end


def _distill(tiny_data, optimizer, loss, metrics, callbacks, distillation_losses):
    keras.utils.set_random_seed(5)
    teacher, student = build_tiny_teacher(), build_tiny_student()
    distiller = tfkd.Distiller(teacher=teacher, student=student,
                               distillation_losses=distillation_losses)
    distiller.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    history = distiller.fit(*tiny_data, epochs=2, batch_size=16, shuffle=False, verbose=0,
                            callbacks=callbacks)
    return distiller, history.history


def test_distiller_trains_with_keras3_objects_as_with_their_tf_keras_equivalents(
        tiny_data, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        k3_run, k3_history = _distill(
            tiny_data,
            keras3.optimizers.SGD(learning_rate=0.1, momentum=0.5),
            keras3.losses.SparseCategoricalCrossentropy(from_logits=True),
            [keras3.metrics.SparseCategoricalAccuracy(name="acc")],
            [keras3.callbacks.CSVLogger(str(tmp_path / "k3.csv")),
             keras3.callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))],
            [keras3.distillation.LogitsDistillation(temperature=2.0,
                                                    loss=keras3.losses.KLDivergence())],
        )
    said = [str(w.message) for w in caught if "Keras 3" in str(w.message)]
    assert said and all("tf_keras" in message for message in said)
    tk_run, tk_history = _distill(
        tiny_data,
        keras.optimizers.SGD(learning_rate=0.1, momentum=0.5),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        [keras.metrics.SparseCategoricalAccuracy(name="acc")],
        [keras.callbacks.CSVLogger(str(tmp_path / "tk.csv")),
         keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))],
        [tfkd.losses.LogitsDistillation(temperature=2.0)],
    )
    assert isinstance(k3_run.optimizer, keras.optimizers.SGD)
    assert float(k3_run.optimizer.learning_rate) == pytest.approx(0.05)  # the scheduler ran
    np.testing.assert_allclose(k3_history["loss"], tk_history["loss"], rtol=1e-6)
    np.testing.assert_allclose(k3_history["acc"], tk_history["acc"])
    for a, b in zip(k3_run.student.weights, tk_run.student.weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
    with open(tmp_path / "k3.csv") as file:
        rows = list(csv.DictReader(file))
    assert [row["epoch"] for row in rows] == ["0", "1"] and "acc" in rows[0]


def test_distiller_refuses_an_unconvertible_keras3_callback_at_fit(tiny_data):
    distiller = tfkd.Distiller(teacher=build_tiny_teacher(), student=build_tiny_student())
    distiller.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(True))
    with pytest.raises(ValueError, match=r"tfkd\.keras\.callbacks\.LambdaCallback"):
        distiller.fit(*tiny_data, epochs=1, verbose=0,
                      callbacks=[keras3.callbacks.LambdaCallback(on_epoch_end=print)])


def test_mutual_distiller_and_deep_supervision_compile_with_keras3_objects(tiny_data):
    keras.utils.set_random_seed(6)
    schemes = [
        tfkd.MutualDistiller([build_tiny_student(name="a"), build_tiny_student(name="b")]),
        tfkd.DeepSupervision(build_tiny_teacher(), taps=["t_embed"]),
    ]
    for scheme in schemes:
        with pytest.warns(UserWarning, match="Keras 3"):
            scheme.compile(
                optimizer=keras3.optimizers.Adam(learning_rate=0.02),
                loss=keras3.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=[keras3.metrics.SparseCategoricalAccuracy(name="acc")],
            )
        assert isinstance(scheme.optimizer, keras.optimizers.Adam)
        assert float(scheme.optimizer.learning_rate) == pytest.approx(0.02)
        history = scheme.fit(*tiny_data, epochs=1, batch_size=32, verbose=0).history
        assert any(key.endswith("acc") for key in history) and history["loss"][0] > 0


def test_born_again_takes_a_keras3_optimizer_fresh_for_each_generation(tiny_data):
    keras.utils.set_random_seed(7)
    k3_optimizer = keras3.optimizers.Adam(learning_rate=0.02)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = tfkd.born_again(build_tiny_student, build_tiny_teacher(), tiny_data,
                                 generations=2, optimizer=k3_optimizer, epochs=1, batch_size=32,
                                 verbose=0, callbacks=[keras3.callbacks.TerminateOnNaN()])
    assert len(result.models) == 2 and all(h.history["loss"][0] > 0 for h in result.histories)
    assert int(k3_optimizer.iterations.numpy()) == 0  # the user's Keras 3 optimizer untouched
