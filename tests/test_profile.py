"""`tfkd.profile`: parameters, bytes, gzip bytes, sparsity, op dtypes and the all-integer flag of
Keras models, `.tflite` files (every mode) and `.onnx` files."""

import gzip
import json
import os

import numpy as np
import pytest
from _export_cases import build_cnn, pruned_cnn, tflite, trained_cnn

import tfkd
from tfkd import keras

PARAMS = 4 * 9 + 4 + 256 * 8 + 8 + 8 * 10 + 10  # conv, hidden, logits: 2,186


def test_keras_model_counts_params_bytes_and_sparsity_by_hand():
    keras.utils.set_random_seed(0)
    model = build_cnn()
    kernel = model.get_layer("hidden").kernel
    kernel.assign(np.where(np.arange(256)[:, None] < 64, 0.0, kernel.numpy()))  # 64 of 256 rows
    profile = tfkd.profile(model)
    assert profile.format == "keras" and profile.params == PARAMS == model.count_params()
    assert profile.bytes == 4 * PARAMS
    assert profile.gzip_bytes < profile.bytes
    kernel_sizes = 4 * 9 + 256 * 8 + 8 * 10
    assert profile.sparsity == pytest.approx(64 * 8 / kernel_sizes)
    assert profile.weight_sparsity["hidden/kernel:0"] == pytest.approx(0.25)
    assert profile.ops == {"Conv2D": 1, "Flatten": 1, "Dense": 2}
    assert profile.op_dtypes["Dense"] == ["float32"] and not profile.all_integer


def test_pruning_wrapper_variables_are_not_parameters():
    profile = tfkd.profile(pruned_cnn())
    assert profile.params == PARAMS
    assert 0.79 <= profile.sparsity <= 0.81


def test_float32_tflite_matches_the_keras_count():
    data = tflite("float32")
    profile = tfkd.profile(data)
    assert profile.format == "tflite" and profile.params == PARAMS
    assert profile.bytes == len(data)
    assert profile.gzip_bytes == len(gzip.compress(data, compresslevel=9, mtime=0))
    assert profile.input_dtypes == ["float32"] and not profile.all_integer
    assert profile.op_dtypes["FULLY_CONNECTED"] == ["float32"]


def test_int8_tflite_is_all_integer():
    profile = tfkd.profile(tflite("int8"))
    assert profile.all_integer and profile.all_int8
    assert profile.params == PARAMS
    assert profile.op_dtypes["CONV_2D"] == ["int32", "int8"]  # int32 biases
    assert profile.input_dtypes == profile.output_dtypes == ["int8"]


@pytest.mark.parametrize("mode, weight_dtype", [("float16", "float16"), ("dynamic", "int8"),
                                                ("int4", "int4"), ("int16x8", "int16")])
def test_other_modes_count_their_stored_weights(mode, weight_dtype):
    profile = tfkd.profile(tflite(mode))
    assert profile.params == PARAMS
    assert any(weight_dtype in dtypes for dtypes in profile.op_dtypes.values())
    assert not profile.all_integer and not profile.all_int8  # float somewhere (I/O or compute)
    if mode == "int16x8":  # float input and output, integer compute inside
        assert profile.op_dtypes["FULLY_CONNECTED"] == ["int16", "int64", "int8"]


def test_pruned_int8_file_shows_its_sparsity():
    profile = tfkd.profile(tflite("int8", "pruned"))
    assert profile.sparsity >= 0.79
    assert set(profile.weight_sparsity.values()) and min(profile.weight_sparsity.values()) >= 0.79


def test_onnx_file(tmp_path):
    path = tfkd.export.to_onnx(trained_cnn(), tmp_path / "cnn.onnx")
    profile = tfkd.profile(path)
    assert profile.format == "onnx" and profile.params == PARAMS
    assert {"Conv", "MatMul"} <= set(profile.ops) and not profile.all_integer
    assert tfkd.profile(open(path, "rb").read()).params == PARAMS  # bytes work too


def test_saved_keras_models_count_their_bytes_on_disk(tmp_path):
    trained_cnn().save(tmp_path / "cnn.keras")
    profile = tfkd.profile(tmp_path / "cnn.keras")
    assert profile.format == "keras" and profile.params == PARAMS
    assert profile.bytes == os.path.getsize(tmp_path / "cnn.keras")
    folder = tfkd.export.to_saved_model(pruned_cnn(), tmp_path / "saved")
    profile = tfkd.profile(folder)
    assert profile.params == PARAMS and profile.sparsity >= 0.79 and profile.source == folder
    sizes = [os.path.getsize(os.path.join(r, n)) for r, _, ns in os.walk(folder) for n in ns]
    assert profile.bytes == sum(sizes)


def test_to_dict_is_json_and_str_is_readable(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(tflite("int8"))
    profile = tfkd.profile(str(path))
    data = json.loads(json.dumps(profile.to_dict()))
    assert data["all_int8"] is True and data["params"] == PARAMS and data["source"] == str(path)
    text = str(profile)
    assert "all-integer  yes (all int8" in text and "FULLY_CONNECTED" in text and "2,186" in text


def test_bad_inputs(tmp_path):
    with pytest.raises(TypeError, match="Received: obj=3"):
        tfkd.profile(3)
    with pytest.raises(FileNotFoundError, match="nothing.tflite"):
        tfkd.profile(tmp_path / "nothing.tflite")
    (tmp_path / "junk.tflite").write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match="junk.tflite is not a .tflite file"):
        tfkd.profile(tmp_path / "junk.tflite")
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07garbage")
    with pytest.raises(ValueError, match="junk.onnx is a corrupt or truncated .onnx"):
        tfkd.profile(tmp_path / "junk.onnx")
