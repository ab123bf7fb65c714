"""`tfkd.prune`, `tfkd.strip`, `tfkd.sparsity`, `tfkd.callbacks` and `tfkd.iterative_prune`."""

import numpy as np
import pytest
import tensorflow_model_optimization as tfmot

import tfkd
from tfkd import keras
from tfkd._keras import tf
from tfkd.optimize.callbacks import PruningEndStep, training_callbacks
from tfkd.optimize.channels import ChannelPruningStep

SCCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
UpdatePruningStep = tfmot.sparsity.keras.UpdatePruningStep


def _mlp(name="mlp"):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten(name="flatten")(inputs)
    x = keras.layers.Dense(16, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(10, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


def _wrapped(model):
    return [layer.layer.name for layer in model.layers if isinstance(layer, keras.layers.Wrapper)]


def _mask_sparsity(model):
    """1 - mean(mask) over every pruning wrapper's masks: what the schedule has imposed so far."""
    masks = [m for layer in model.layers if hasattr(layer, "pruning_vars")
             for _, m, _ in layer.pruning_vars]
    return 1.0 - float(np.mean(np.concatenate([m.numpy().ravel() for m in masks])))


class _RecordSparsity(keras.callbacks.Callback):
    def __init__(self, pruned):
        super().__init__()
        self.pruned, self.per_step = pruned, []

    def on_train_batch_end(self, batch, logs=None):
        self.per_step.append(_mask_sparsity(self.pruned))


# ------------------------------------------------------------------------------------- prune


def test_prune_wraps_layers_with_kernels_and_leaves_the_input_alone(make_student):
    student = make_student()
    before = [w.numpy().copy() for w in student.weights]
    pruned = tfkd.prune(student, target_sparsity=0.5)
    assert _wrapped(pruned) == ["s_conv", "s_embed", "s_logits"]
    assert _wrapped(student) == []
    for old, new in zip(before, student.weights, strict=True):
        np.testing.assert_array_equal(old, new.numpy())
    x = np.random.default_rng(0).random((4, 8, 8, 1), dtype=np.float32)
    np.testing.assert_allclose(pruned(x), student(x), atol=1e-6)  # same weights, own copies
    pruned.layers[1].layer.kernel.assign(tf.zeros_like(pruned.layers[1].layer.kernel))
    assert np.any(student.get_layer("s_conv").kernel.numpy() != 0)


def test_prune_keeps_layers_tf_mot_refuses_whole_model():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Rescaling(1 / 255.0, name="rescale")(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(10, name="logits")(x)
    pruned = tfkd.prune(keras.Model(inputs, outputs))
    assert _wrapped(pruned) == ["logits"]
    assert isinstance(pruned.get_layer("rescale"), keras.layers.Rescaling)


def test_prune_end_step_none_reaches_the_target_two_thirds_through_a_distiller_fit(
    make_teacher, make_student, tiny_data
):
    x, y = tiny_data
    pruned = tfkd.prune(make_student(), target_sparsity=0.75)
    distiller = tfkd.Distiller(teacher=make_teacher(), student=pruned)
    distiller.compile(optimizer="adam", loss=SCCE)
    record = _RecordSparsity(pruned)
    # 64 samples / batch 8 = 8 steps x 3 epochs = 24 steps; 2/3 -> end step 16; frequency 100 is
    # clamped to max(1, 16 // 10) = 1. Polynomial: 0.75 * (1 - (1 - step / 16) ** 3).
    distiller.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[record])
    schedule = pruned.get_layer("prune_low_magnitude_s_embed").pruning_schedule
    assert (schedule.end_step, schedule.frequency) == (16, 1)
    assert len(record.per_step) == 24
    assert record.per_step[3] == pytest.approx(0.75 * (1 - 0.75**3), abs=0.01)  # step 4: 0.434
    assert record.per_step[7] == pytest.approx(0.75 * (1 - 0.5**3), abs=0.01)  # step 8: 0.656
    assert record.per_step[11] < 0.745  # step 12: 0.738, not there yet
    for value in record.per_step[15:]:  # step 16 to the end: the target
        assert value == pytest.approx(0.75, abs=0.005)


def test_plain_fit_with_tfkd_callbacks_prunes(tiny_data):
    x, y = tiny_data
    pruned = tfkd.prune(_mlp(), target_sparsity=0.5, schedule="constant")
    pruned.compile(optimizer="adam", loss=SCCE)
    history = pruned.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=tfkd.callbacks())
    assert set(history.history) == {"loss"}
    # Constant schedule: frequency clamped to 16 // 10 = 1, so every step prunes to 0.5.
    report = tfkd.sparsity(tfkd.strip(pruned))
    assert report.layers["hidden"] == pytest.approx(0.5, abs=0.01)
    assert report.layers["logits"] == pytest.approx(0.5, abs=0.01)


def test_explicit_end_step_clamps_frequency():
    pruned = tfkd.prune(_mlp(), end_step=20, frequency=100)
    schedule = pruned.get_layer("prune_low_magnitude_hidden").pruning_schedule
    assert (schedule.end_step, schedule.frequency) == (20, 20)


def test_dict_target_prunes_only_named_layers():
    pruned = tfkd.prune(_mlp(), target_sparsity={"hidden": 0.6})
    assert _wrapped(pruned) == ["hidden"]
    schedule = pruned.get_layer("prune_low_magnitude_hidden").pruning_schedule
    assert schedule.final_sparsity == 0.6


def test_layers_by_type_and_name():
    assert _wrapped(tfkd.prune(_mlp(), layers=["logits"])) == ["logits"]
    assert _wrapped(tfkd.prune(_mlp(), layers=[keras.layers.Dense])) == ["hidden", "logits"]


def test_structure_2_4_leaves_two_zeros_in_every_four_inputs(tiny_data):
    x, y = tiny_data
    pruned = tfkd.prune(_mlp(), structure="2:4")
    pruned.compile(optimizer="adam", loss=SCCE)
    pruned.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=tfkd.callbacks())
    kernel = tfkd.strip(pruned).get_layer("hidden").kernel.numpy()  # (64, 16)
    groups = kernel.T.reshape(16, 16, 4)  # per output, runs of 4 consecutive inputs
    assert np.all(np.sum(groups == 0, axis=-1) >= 2)


def test_mixed_plan_prunes_some_layers_2_4_and_others_unstructured_in_one_call(
    tmp_path, tiny_data
):
    x, y = tiny_data
    pruned = tfkd.prune(_mlp(), target_sparsity={"hidden": "2:4", "logits": 0.75},
                        schedule="constant")
    structured = pruned.get_layer("prune_low_magnitude_hidden")
    assert structured.sparsity_m_by_n == (2, 4)
    assert pruned.get_layer("prune_low_magnitude_logits").sparsity_m_by_n is None
    pruned.compile(optimizer="adam", loss=SCCE)
    pruned.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=tfkd.callbacks())
    pruned.save(tmp_path / "mixed.keras")  # the plan survives saving
    loaded = tfkd.load_model(tmp_path / "mixed.keras")
    assert loaded.get_layer("prune_low_magnitude_hidden").sparsity_m_by_n == (2, 4)
    stripped = tfkd.strip(pruned)
    hidden = stripped.get_layer("hidden").kernel.numpy().T.reshape(16, 16, 4)
    assert np.all(np.sum(hidden == 0, axis=-1) == 2)  # exactly 2 of every 4 inputs
    logits = stripped.get_layer("logits").kernel.numpy()  # (16, 10): unstructured, 75%
    assert np.mean(logits == 0) == pytest.approx(0.75, abs=0.01)
    assert not np.all(np.sum(logits.T.reshape(10, 4, 4) == 0, axis=-1) == 3)


def test_mixed_plan_rejects_a_malformed_structure():
    with pytest.raises(ValueError, match=r"Received: target_sparsity\['hidden'\]='2-4'"):
        tfkd.prune(_mlp(), target_sparsity={"hidden": "2-4", "logits": 0.5})


def test_block_size_prunes_whole_blocks(tiny_data):
    x, y = tiny_data
    pruned = tfkd.prune(_mlp(), target_sparsity=0.5, schedule="constant", block_size=(1, 4),
                        layers=["hidden"])
    pruned.compile(optimizer="adam", loss=SCCE)
    pruned.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=tfkd.callbacks())
    blocks = tfkd.strip(pruned).get_layer("hidden").kernel.numpy().reshape(64, 4, 4)
    zeros = np.sum(blocks == 0, axis=-1)
    assert set(np.unique(zeros)) <= {0, 4}
    assert np.mean(zeros == 4) == pytest.approx(0.5, abs=0.05)


def test_xnnpack_policy_prunes_only_pointwise_convolutions():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.ZeroPadding2D(1)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="valid", name="stem")(x)
    x = keras.layers.Conv2D(16, 1, name="pointwise")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
    outputs = keras.layers.Dense(10, name="logits")(keras.layers.Flatten()(x))
    pruned = tfkd.prune(keras.Model(inputs, outputs), policy="xnnpack")
    assert _wrapped(pruned) == ["pointwise"]


# ----------------------------------------------------------------------- strip and sparsity


def test_sparsity_counts_exact_zeros_of_kernels_by_hand():
    model = _mlp()
    hidden = np.ones((64, 16), np.float32)
    hidden[:16] = 0.0  # 256 of 1024 zeros
    model.get_layer("hidden").kernel.assign(hidden)
    logits = np.ones((16, 10), np.float32)
    logits[0, :5] = 0.0  # 5 of 160
    model.get_layer("logits").kernel.assign(logits)
    model.get_layer("logits").bias.assign(np.zeros(10))  # biases do not count
    report = tfkd.sparsity(model)
    assert report.layers == {"hidden": 0.25, "logits": 5 / 160}
    assert (report.zeros, report.total) == (261, 1184)
    assert report.overall == pytest.approx(261 / 1184)
    assert report.to_dict()["zeros"] == 261


def test_strip_returns_plain_layers_and_leaves_unpruned_models_as_they_are():
    model = _mlp()
    assert tfkd.strip(model) is model
    stripped = tfkd.strip(tfkd.prune(model))
    assert _wrapped(stripped) == []
    assert [type(layer).__name__ for layer in stripped.layers] == [
        "InputLayer", "Flatten", "Dense", "Dense"
    ]


# --------------------------------------------------------------------------------- callbacks


def test_training_callbacks_add_what_pruning_needs_once():
    pruned = tfkd.prune(_mlp())
    mine = UpdatePruningStep()
    found = training_callbacks(pruned, [mine])
    assert found[0] is mine
    assert [type(c).__name__ for c in found] == ["UpdatePruningStep", "PruningEndStep"]
    assert training_callbacks(pruned, found) == found
    assert training_callbacks(_mlp(), [mine]) == [mine]
    assert tfkd.callbacks(_mlp()) == []
    # Without a model: everything a pruned model may need (weights, end step, channels).
    assert [type(c) for c in tfkd.callbacks()] == [UpdatePruningStep, PruningEndStep,
                                                   ChannelPruningStep]


def test_log_dir_adds_sparsity_summaries_or_says_what_to_install(tmp_path):
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install tensorboard"):
            tfkd.callbacks(log_dir=tmp_path)
        return
    found = training_callbacks(tfkd.prune(_mlp()), None, log_dir=str(tmp_path))
    assert [type(c).__name__ for c in found][-1] == "PruningSummaries"


def test_end_step_needs_known_steps(tiny_data):
    x, y = tiny_data
    pruned = tfkd.prune(_mlp())
    pruned.compile(optimizer="adam", loss=SCCE)
    unknown = tf.data.Dataset.from_tensor_slices((x, y)).filter(lambda a, b: True).batch(8)
    with pytest.raises(ValueError, match="Pass `steps_per_epoch=`"):
        pruned.fit(unknown, epochs=1, verbose=0, callbacks=tfkd.callbacks())


# ------------------------------------------------------------ derived end step: save, clone


def test_derived_end_step_survives_save_and_load_before_the_first_fit(tmp_path, tiny_data):
    x, y = tiny_data
    tfkd.prune(_mlp(), target_sparsity=0.75).save(tmp_path / "pruned.keras")
    loaded = tfkd.load_model(tmp_path / "pruned.keras")
    loaded.compile(optimizer="adam", loss=SCCE)
    # 8 steps x 3 epochs: end step 2/3 * 24 = 16, frequency 100 clamped to 1, as before saving.
    loaded.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=tfkd.callbacks())
    schedule = loaded.get_layer("prune_low_magnitude_hidden").pruning_schedule
    assert (schedule.end_step, schedule.frequency) == (16, 1)
    assert _mask_sparsity(loaded) == pytest.approx(0.75, abs=0.005)
    assert tfkd.sparsity(tfkd.strip(loaded)).layers["hidden"] == pytest.approx(0.75, abs=0.005)


def test_derived_end_step_is_saved_once_derived(tmp_path, tiny_data):
    x, y = tiny_data
    pruned = tfkd.prune(_mlp(), target_sparsity=0.5)
    pruned.compile(optimizer="adam", loss=SCCE)
    pruned.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=tfkd.callbacks())
    pruned.save(tmp_path / "pruned.keras")
    schedule = tfkd.load_model(tmp_path / "pruned.keras").get_layer(
        "prune_low_magnitude_hidden").pruning_schedule
    assert (type(schedule).__name__, schedule.end_step, schedule.frequency) == (
        "FitPolynomialDecay", 16, 1)


@pytest.mark.parametrize("kind", ["polynomial", "constant"])
def test_derived_schedule_survives_clone_and_config_round_trip(kind):
    pruned = tfkd.prune(_mlp(), target_sparsity=0.6, schedule=kind, frequency=50)
    clone = keras.models.clone_model(pruned)
    original = pruned.get_layer("prune_low_magnitude_hidden").pruning_schedule
    cloned = clone.get_layer("prune_low_magnitude_hidden").pruning_schedule
    assert type(cloned) is type(original) and cloned is not original
    assert cloned.get_config() == original.get_config()
    assert cloned.get_config()["class_name"].startswith("tfkd>")
    assert (cloned.end_step, cloned.frequency, cloned.is_derived) == (None, 50, False)


def test_derived_schedule_refuses_a_fit_without_tfkd_callbacks(tiny_data):
    x, y = tiny_data
    pruned = tfkd.prune(_mlp())
    pruned.compile(optimizer="adam", loss=SCCE)
    with pytest.raises(ValueError, match=r"pass `callbacks=tfkd.callbacks\(\)` to `model.fit`"):
        pruned.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[UpdatePruningStep()])


# ------------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"target_sparsity": 0.0}, ValueError, "strictly between 0 and 1"),
        ({"target_sparsity": 1.0}, ValueError, "Received: target_sparsity=1.0"),
        ({"target_sparsity": "high"}, TypeError, "must be a number"),
        ({"target_sparsity": {"hiden": 0.5}}, ValueError, r"not prunable in this model: \['hid"),
        ({"target_sparsity": {"hidden": 1.5}}, ValueError, "strictly between 0 and 1"),
        ({"structure": "2-4"}, ValueError, "must be 'm:n'"),
        ({"structure": "4:2"}, ValueError, "0 < m < n"),
        ({"structure": 24}, TypeError, "Received: structure=24"),
        ({"structure": "2:4", "block_size": (1, 4)}, ValueError, "cannot be combined"),
        ({"block_size": (0, 4)}, ValueError, "two positive integers"),
        ({"schedule": "cosine"}, ValueError, "Received: schedule='cosine'"),
        ({"policy": "fast"}, ValueError, "Received: policy='fast'"),
        ({"layers": ["nope"]}, ValueError, r"Received: layers=\['nope'\]"),
        ({"frequency": 0}, ValueError, "frequency"),
        ({"begin_step": 10, "end_step": 5}, ValueError, "end_step"),
    ],
)
def test_prune_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        tfkd.prune(_mlp(), **kwargs)


def test_prune_rejects_a_pruned_model():
    with pytest.raises(ValueError, match="already pruned.*tfkd.strip"):
        tfkd.prune(tfkd.prune(_mlp()))


def test_prune_rejects_a_model_with_nothing_to_prune():
    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.Flatten()(keras.layers.MaxPooling2D()(inputs))
    with pytest.raises(ValueError, match=r"no layer that can be pruned.*'Flatten'.*'MaxPooling2D'"):
        tfkd.prune(keras.Model(inputs, outputs))


def test_prune_rejects_subclassed_models():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(3)

        def call(self, x):
            return self.dense(x)

    with pytest.raises(ValueError, match="Functional API"):
        tfkd.prune(Net())


def test_prune_and_sparsity_point_a_distiller_to_its_student(make_teacher, make_student):
    distiller = tfkd.Distiller(teacher=make_teacher(), student=make_student())
    with pytest.raises(ValueError, match=r"not a distiller.*Pass `distiller.student`"):
        tfkd.sparsity(distiller)


def test_prune_rejects_non_models():
    with pytest.raises(TypeError, match="must be a Keras model"):
        tfkd.prune("model.keras")


# ---------------------------------------------------------------------------- iterative


def test_iterative_prune_with_a_distiller_reports_each_round(make_teacher, make_student, tiny_data):
    x, y = tiny_data
    distiller = tfkd.Distiller(teacher=make_teacher(), student=make_student())
    distiller.compile(optimizer="adam", loss=SCCE)
    teacher_before = [w.numpy().copy() for w in distiller.teacher.weights]
    result = tfkd.iterative_prune(distiller, (x, y), sparsities=[0.5, 0.8], epochs_per_round=1,
                                  batch_size=8, verbose=0)
    assert [r["round"] for r in result.rounds] == [1, 2]
    assert [r["target_sparsity"] for r in result.rounds] == [0.5, 0.8]
    for r in result.rounds:
        assert r["sparsity"] == pytest.approx(r["target_sparsity"], abs=0.02)
    # The last round's accuracy is the stripped final student's, counted here by hand.
    by_hand = np.mean(np.argmax(result.model.predict(x, verbose=0), axis=-1) == y)
    assert result.rounds[-1]["accuracy"] == pytest.approx(by_hand)
    assert _wrapped(result.model) == []
    assert tfkd.sparsity(result.model).layers["s_embed"] == pytest.approx(0.8, abs=0.01)
    for old, new in zip(teacher_before, distiller.teacher.weights, strict=True):
        np.testing.assert_array_equal(old, new.numpy())
    assert "round  target  reached  accuracy" in str(result)


def test_iterative_prune_of_a_plain_model(tiny_data):
    x, y = tiny_data
    model = _mlp()
    model.compile(optimizer="adam", loss=SCCE, metrics=["accuracy"])
    result = tfkd.iterative_prune(model, (x, y), sparsities=[0.3, 0.6], epochs_per_round=1,
                                  verbose=0, layers=["hidden"])
    assert tfkd.sparsity(result.model).layers["hidden"] == pytest.approx(0.6, abs=0.01)
    assert tfkd.sparsity(result.model).layers["logits"] == 0.0


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"sparsities": [0.8, 0.5]}, ValueError, "must rise"),
        ({"sparsities": []}, TypeError, "non-empty list"),
        ({"epochs_per_round": 0}, ValueError, "epochs_per_round"),
        ({"schedule": "constant"}, TypeError, "passes only"),
    ],
)
def test_iterative_prune_rejects_bad_arguments(tiny_data, kwargs, error, match):
    model = _mlp()
    model.compile(optimizer="adam", loss=SCCE)
    with pytest.raises(error, match=match):
        tfkd.iterative_prune(model, tiny_data, **kwargs)


def test_iterative_prune_needs_a_compiled_model(tiny_data):
    with pytest.raises(ValueError, match="must be compiled"):
        tfkd.iterative_prune(_mlp(), tiny_data)


def test_prune_starts_from_initial_sparsity(tiny_data):
    x, y = tiny_data
    pruned = tfkd.prune(_mlp(), 0.8, end_step=100, frequency=1, initial_sparsity=0.5)
    pruned.compile(optimizer="adam", loss=SCCE)
    # One step: 0.8 + (0.5 - 0.8) * (1 - step / 100) ** 3 is 0.5 at step 0, 0.509 at step 1.
    pruned.fit(x[:8], y[:8], epochs=1, batch_size=8, verbose=0, callbacks=tfkd.callbacks())
    assert _mask_sparsity(pruned) == pytest.approx(0.505, abs=0.006)


@pytest.mark.parametrize("bad", [-0.1, 1.0])
def test_prune_rejects_initial_sparsity_outside_0_1(bad):
    with pytest.raises(ValueError, match="Received: initial_sparsity="):
        tfkd.prune(_mlp(), initial_sparsity=bad)


@pytest.mark.filterwarnings("ignore:`model` is a Keras 3 model")
def test_prune_accepts_a_keras3_model_by_converting_it():
    keras3 = pytest.importorskip("keras")
    model = keras3.Sequential([keras3.Input((8, 8, 1)), keras3.layers.Flatten(),
                               keras3.layers.Dense(10, name="logits")])
    pruned = tfkd.prune(model, target_sparsity=0.5)
    assert isinstance(pruned, keras.Model)
    assert _wrapped(pruned) == ["logits"]
