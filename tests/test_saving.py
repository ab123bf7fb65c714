"""`tfkd.load_model`: pruned, clustered and QAT students round-trip through every format; files
saved by Keras 3 load as tf_keras models."""

import importlib
import json
import warnings
import zipfile

import numpy as np
import pytest
import tensorflow_model_optimization as tfmot
from conftest import build_compressible_net

import tfkd
from tfkd import keras

SCCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _mlp():
    return build_compressible_net("student")


def _trained(kind, data):
    keras.utils.set_random_seed(3)
    model = {
        "pruned": lambda: tfkd.prune(_mlp(), target_sparsity=0.5),
        "clustered": lambda: tfkd.cluster(_mlp(), n_clusters=4),
        "qat": lambda: tfkd.quantize(_mlp()),
        "pqat": lambda: tfkd.quantize(_mlp(), preserve="sparsity"),
    }[kind]()
    model.compile(optimizer="adam", loss=SCCE)
    model.fit(*data, epochs=1, batch_size=16, verbose=0, callbacks=tfkd.callbacks(model))
    return model


@pytest.fixture(scope="module")
def trained(tiny_data):
    return {kind: _trained(kind, tiny_data) for kind in ("pruned", "clustered", "qat", "pqat")}


ROUND_TRIPS = [(kind, suffix) for kind in ("pruned", "clustered", "qat", "pqat")
               for suffix in (".keras", ".h5")]
ROUND_TRIPS += [("pruned", ""), ("pqat", "")]  # SavedModel folders (slow to write: two kinds)


@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")
@pytest.mark.parametrize("kind, suffix", ROUND_TRIPS)
def test_compressed_students_round_trip(trained, tiny_data, tmp_path, kind, suffix):
    model = trained[kind]
    path = tmp_path / f"{kind}{suffix or '_savedmodel'}"
    model.save(path)
    loaded = tfkd.load_model(path)
    x, _ = tiny_data
    np.testing.assert_allclose(loaded(x[:8]).numpy(), model(x[:8]).numpy(), atol=1e-6)
    kinds = [type(layer).__name__ for layer in loaded.layers]
    assert kinds == [type(layer).__name__ for layer in model.layers]
    assert tfkd.sparsity(loaded).layers == tfkd.sparsity(model).layers
    for old, new in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(old.numpy(), new.numpy())


def test_loaded_pruned_model_keeps_training_where_it_stopped(trained, tiny_data, tmp_path):
    path = tmp_path / "pruned.keras"
    trained["pruned"].save(path)
    loaded = tfkd.load_model(path)
    wrapper = loaded.get_layer("prune_low_magnitude_hidden")
    assert int(wrapper.pruning_step.numpy()) == 4  # 64 samples / 16 = 4 steps trained
    assert isinstance(wrapper.pruning_schedule, tfmot.sparsity.keras.PolynomialDecay)
    loaded.fit(*tiny_data, epochs=1, batch_size=16, verbose=0, callbacks=tfkd.callbacks())
    assert int(wrapper.pruning_step.numpy()) == 8


def test_structured_pruning_keeps_its_structure_through_a_file(tmp_path):
    pruned = tfkd.prune(_mlp(), structure="2:4")
    path = tmp_path / "structured.keras"
    pruned.save(path)
    wrapper = tfkd.load_model(path).get_layer("prune_low_magnitude_hidden")
    assert wrapper.sparsity_m_by_n == (2, 4)  # TF-MOT's own get_config drops it


def test_load_model_of_a_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="No saved model at this path"):
        tfkd.load_model(tmp_path / "nothing.keras")


# Files saved by Keras 3 (`import keras`, the default Keras today): loaded with Keras 3, converted.

keras3 = importlib.import_module("keras")  # Keras 3: only to write the files users bring


def _keras3_sequential():
    keras3.utils.set_random_seed(0)
    return keras3.Sequential(
        [keras3.Input((8, 8, 1)), keras3.layers.Conv2D(4, 3, activation="relu"),
         keras3.layers.BatchNormalization(), keras3.layers.Flatten(), keras3.layers.Dense(10)],
        name="k3_sequential",
    )


def _keras3_functional():
    keras3.utils.set_random_seed(1)
    inputs = keras3.Input((8, 8, 1), name="image")
    x = keras3.layers.Flatten()(inputs)
    a = keras3.layers.Dense(6, activation="hard_silu", name="a")(x)
    b = keras3.layers.Dense(6, name="b")(x)
    outputs = keras3.layers.Dense(10, name="logits")(keras3.layers.Add()([a, b * 0.5]))
    return keras3.Model(inputs, outputs, name="k3_functional")


def _load_saying_keras3_once(path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = tfkd.load_model(path)
    ours = [str(w.message) for w in caught if "Keras 3" in str(w.message)]
    assert len(ours) == 1, ours
    assert "tfkd.from_keras3" in ours[0] and str(path) in ours[0]
    return loaded


@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")
@pytest.mark.parametrize("build, suffix", [(_keras3_sequential, ".keras"),
                                           (_keras3_functional, ".keras"),
                                           (_keras3_sequential, ".h5")])
def test_a_file_saved_by_keras3_loads_as_a_tf_keras_model(tiny_data, tmp_path, build, suffix):
    k3_model = build()
    path = tmp_path / f"k3{suffix}"
    k3_model.save(path)
    loaded = _load_saying_keras3_once(path)
    assert isinstance(loaded, keras.Model) and loaded.name == k3_model.name
    assert [layer.name for layer in loaded.layers if layer.weights] == [
        layer.name for layer in k3_model.layers if layer.weights]
    x, _ = tiny_data
    np.testing.assert_allclose(loaded(x[:8]).numpy(), np.asarray(k3_model(x[:8])), atol=1e-5)
    pruned = tfkd.prune(loaded, target_sparsity=0.5)  # a tf_keras model TF-MOT wraps
    assert any("prune_low_magnitude" in layer.name for layer in pruned.layers)


@pytest.mark.slow
def test_a_keras3_mobilenet_v2_file_loads(tmp_path):
    k3_model = keras3.applications.MobileNetV2(weights=None, alpha=0.35, input_shape=(32, 32, 3))
    path = tmp_path / "mobilenet_v2.keras"
    k3_model.save(path)
    loaded = _load_saying_keras3_once(path)
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(loaded(x).numpy(), np.asarray(k3_model(x)), atol=1e-5)
    assert len(loaded.layers) == len(k3_model.layers)


def test_a_keras3_file_with_a_layer_tfkd_cannot_convert_names_it_briefly(tmp_path):
    inputs = keras3.Input((5, 3))
    x = keras3.layers.LSTM(4, name="my_lstm")(inputs)
    keras3.Model(inputs, keras3.layers.Dense(2)(x)).save(tmp_path / "lstm.keras")
    with pytest.raises(ValueError, match="my_lstm") as info:
        tfkd.load_model(tmp_path / "lstm.keras")
    message = str(info.value)
    assert "LSTM" in message and "Keras 3" in message and "lstm.keras" in message
    assert len(message) < 1500  # one readable paragraph, not the model's config


def test_a_keras3_file_keras3_cannot_load_is_a_short_error(tmp_path):
    path = tmp_path / "broken.keras"
    _keras3_sequential().save(path)
    with zipfile.ZipFile(path) as source:
        files = {name: source.read(name) for name in source.namelist()}
    config = json.loads(files["config.json"])
    config["config"]["layers"][1]["class_name"] = "NoSuchLayer"
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as target:
        for name, data in files.items():
            target.writestr(name, data)
    with pytest.raises(ValueError, match="Keras 3 could not load") as info:
        tfkd.load_model(path)
    assert "NoSuchLayer" in str(info.value) and len(str(info.value)) < 1500


def test_the_command_line_reads_keras3_files(tiny_data, tmp_path, capsys):
    from tfkd.cli import main

    k3_model = _keras3_sequential()
    path = tmp_path / "k3.keras"
    k3_model.save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["inspect", str(path)]) == 0
        assert "k3_sequential" in capsys.readouterr().out
        assert main(["convert", str(path), "--to", "tflite"]) == 0
    x, _ = tiny_data
    exported = tfkd.TFLiteModel(tmp_path / "k3.tflite")
    np.testing.assert_allclose(exported.predict(x[:4]), np.asarray(k3_model(x[:4])), atol=1e-4)


def _compiled_keras3_file(tmp_path, optimizer):
    k3_model = _keras3_sequential()
    k3_model.compile(optimizer=optimizer,
                     loss=keras3.losses.SparseCategoricalCrossentropy(from_logits=True),
                     metrics=["accuracy", keras3.metrics.SparseTopKCategoricalAccuracy(k=3)])
    path = tmp_path / "compiled.keras"
    k3_model.save(path)
    return k3_model, path


def test_a_compiled_keras3_file_loads_compiled_with_tf_keras_equivalents(tiny_data, tmp_path):
    k3_model, path = _compiled_keras3_file(tmp_path, keras3.optimizers.Adam(0.01))
    loaded = _load_saying_keras3_once(path)
    assert isinstance(loaded.optimizer, keras.optimizers.Adam)
    assert float(loaded.optimizer.learning_rate) == pytest.approx(0.01)
    assert isinstance(loaded.loss, keras.losses.SparseCategoricalCrossentropy)
    expected = k3_model.evaluate(*tiny_data, verbose=0, return_dict=True)
    got = loaded.evaluate(*tiny_data, verbose=0, return_dict=True)
    assert got["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    assert got["accuracy"] == pytest.approx(expected["accuracy"])
    assert got["sparse_top_k_categorical_accuracy"] == pytest.approx(
        expected["sparse_top_k_categorical_accuracy"])
    assert tfkd.load_model(path, compile=False).optimizer is None


def test_a_keras3_file_whose_compile_settings_do_not_convert_loads_uncompiled(tmp_path):
    _, path = _compiled_keras3_file(tmp_path, keras3.optimizers.Lamb())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = tfkd.load_model(path)
    said = [str(w.message) for w in caught if "Keras 3" in str(w.message)]
    assert len(said) == 1 and "uncompiled" in said[0] and "Lamb" in said[0]
    assert loaded.optimizer is None
