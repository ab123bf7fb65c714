"""`tfkd.export.to_onnx` (checked in onnxruntime against Keras) and `to_saved_model`: outputs match,
pruning wrappers are stripped, failures leave no partial file or folder."""

import os

import numpy as np
import onnx
import pytest
import tensorflow_model_optimization as tfmot
from _export_cases import build_cnn, digits, pruned_cnn, trained_cnn

import tfkd
from tfkd import keras


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory):
    return tfkd.export.to_onnx(trained_cnn(), tmp_path_factory.mktemp("onnx") / "cnn.onnx")


def test_onnx_outputs_match_keras_within_1e_4(onnx_path):
    _, (x_test, y_test) = digits()
    model = tfkd.ONNXModel(onnx_path)
    expected = trained_cnn().predict(x_test, verbose=0)
    np.testing.assert_allclose(model.predict(x_test), expected, atol=1e-4)
    assert model.evaluate(x_test, y_test, reference=trained_cnn())["agreement"] == 1.0


def test_onnx_has_a_free_batch_dimension_and_named_input(onnx_path):
    graph = onnx.load(onnx_path).graph
    shape = graph.input[0].type.tensor_type.shape.dim
    assert shape[0].dim_param and [d.dim_value for d in shape[1:]] == [8, 8, 1]
    assert graph.input[0].name == "input_1" or graph.input[0].name.startswith("input")


def test_opset_is_respected(tmp_path):
    path = tfkd.export.to_onnx(trained_cnn(), tmp_path / "m.onnx", opset=17)
    assert [o.version for o in onnx.load(path).opset_import if o.domain in ("", "ai.onnx")] == [17]


def test_pruned_model_is_stripped_and_keeps_its_zeros(tmp_path):
    path = tfkd.export.to_onnx(pruned_cnn(), tmp_path / "pruned.onnx")
    profile = tfkd.profile(path)
    assert profile.params == trained_cnn().count_params()
    assert profile.sparsity >= 0.79


def test_bad_opset_is_refused(tmp_path):
    with pytest.raises(ValueError, match="Received: opset=3"):
        tfkd.export.to_onnx(trained_cnn(), tmp_path / "m.onnx", opset=3)
    with pytest.raises(ValueError, match="opsets 7 to 18. Received: opset=21"):
        tfkd.export.to_onnx(trained_cnn(), tmp_path / "m.onnx", opset=21)
    assert os.listdir(tmp_path) == []


def test_failed_conversion_leaves_no_file_and_keeps_the_old_one(tmp_path):
    # A quantization-aware model never trained has min == max == 0 in its fake-quant ops:
    # tf2onnx logs a ZeroDivisionError and writes an invalid file; to_onnx must not keep it.
    keras.utils.set_random_seed(0)
    untrained_qat = tfmot.quantization.keras.quantize_model(build_cnn())
    path = tmp_path / "qat.onnx"
    path.write_bytes(b"previous")
    with pytest.raises(ValueError, match="could not convert model"):
        tfkd.export.to_onnx(untrained_qat, path)
    assert path.read_bytes() == b"previous"
    assert os.listdir(tmp_path) == ["qat.onnx"]


def test_saved_model_loads_back_with_the_same_outputs(tmp_path):
    _, (x_test, _) = digits()
    path = tfkd.export.to_saved_model(pruned_cnn(), tmp_path / "saved")
    assert os.path.exists(os.path.join(path, "saved_model.pb"))
    loaded = keras.models.load_model(path)
    assert not any("prune" in layer.name for layer in loaded.layers)
    np.testing.assert_allclose(
        loaded.predict(x_test[:16], verbose=0), pruned_cnn().predict(x_test[:16], verbose=0),
        atol=1e-5,
    )
    # Saving again replaces the folder whole.
    tfkd.export.to_saved_model(trained_cnn(), path)
    np.testing.assert_allclose(
        keras.models.load_model(path).predict(x_test[:4], verbose=0),
        trained_cnn().predict(x_test[:4], verbose=0), atol=1e-5,
    )
    assert sorted(os.listdir(tmp_path)) == ["saved"]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's 0o700


class _Unsaveable(keras.layers.Layer):
    def call(self, inputs):
        return inputs

    def get_config(self):
        raise RuntimeError("this layer cannot be saved")


def test_failed_saved_model_leaves_no_folder(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(_Unsaveable()(inputs)))
    with pytest.raises(RuntimeError, match="cannot be saved"):
        tfkd.export.to_saved_model(model, tmp_path / "saved")
    assert os.listdir(tmp_path) == []


def test_exporters_reject_what_is_not_a_keras_model(tmp_path):
    with pytest.raises(TypeError, match="Received: model="):
        tfkd.export.to_onnx([1, 2], tmp_path / "m.onnx")
    with pytest.raises(TypeError, match="Received: model="):
        tfkd.export.to_saved_model(None, tmp_path / "m")
