"""`tfkd.export.to_tflite`: every mode runs and agrees with Keras, int8 is all-integer with int8
I/O, pruned zeros survive in the file, QAT exports without data, bad input is refused, writes are
atomic."""

import os

import numpy as np
import pytest
from _export_cases import (
    N_CALIBRATION,
    build_cnn,
    digits,
    kernels_of,
    pruned_cnn,
    qat_cnn,
    tflite,
    trained_cnn,
)
from ai_edge_litert.interpreter import Interpreter

import tfkd
from tfkd._keras import tf


def _agreement(data, model):
    _, (x_test, _) = digits()
    return tfkd.TFLiteModel(data).evaluate(x_test, reference=model)["agreement"]


@pytest.mark.parametrize(
    "mode, min_agreement",
    [("float32", 1.0), ("float16", 0.99), ("dynamic", 0.95), ("int4", 0.8), ("int8", 0.95),
     ("int16x8", 0.98)],
)
def test_every_mode_runs_and_agrees_with_keras(mode, min_agreement):
    data = tflite(mode)
    assert data[4:8] == b"TFL3"
    assert _agreement(data, trained_cnn()) >= min_agreement


def test_float32_outputs_match_keras():
    _, (x_test, _) = digits()
    outputs = tfkd.TFLiteModel(tflite("float32")).predict(x_test)
    np.testing.assert_allclose(outputs, trained_cnn().predict(x_test, verbose=0), atol=1e-5)


def test_quantized_files_are_smaller():
    sizes = {mode: len(tflite(mode)) for mode in ("float32", "float16", "int8", "int4")}
    assert sizes["int4"] < sizes["int8"] < sizes["float16"] < sizes["float32"]


def test_int8_is_all_integer_with_int8_input_and_output():
    interpreter = Interpreter(model_content=tflite("int8"))
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8
    details = interpreter.get_tensor_details()
    assert [t["name"] for t in details if t["dtype"] == np.float32] == []
    profile = tfkd.profile(tflite("int8"))
    assert profile.all_int8 and {"CONV_2D", "FULLY_CONNECTED"} <= set(profile.ops)
    assert "QUANTIZE" not in profile.ops and "DEQUANTIZE" not in profile.ops


def test_qat_model_exports_int8_without_data():
    data = tflite("int8", "qat")
    assert tfkd.profile(data).all_int8
    assert _agreement(data, qat_cnn()) >= 0.97


@pytest.mark.parametrize("mode", ["int4", "int16x8"])
def test_qat_model_refuses_other_integer_modes(mode):
    with pytest.raises(ValueError, match=f'Received: quantization="{mode}" for a QAT model'):
        tfkd.export.to_tflite(qat_cnn(), quantization=mode)


def _weights_by_op(data):
    """`{op name: [weight arrays]}` of CONV_2D and FULLY_CONNECTED, read through the interpreter."""
    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    weights = {}
    for op in interpreter._get_ops_details():
        if op["op_name"] in ("CONV_2D", "FULLY_CONNECTED"):
            weights.setdefault(op["op_name"], []).append(interpreter.get_tensor(op["inputs"][1]))
    return weights


@pytest.mark.parametrize("mode", ["float32", "int8"])
def test_pruned_zeros_stay_zero_in_the_file(mode):
    kernels = kernels_of(pruned_cnn())
    assert 0.79 <= np.mean(kernels["hidden"] == 0) <= 0.81
    weights = _weights_by_op(tflite(mode, "pruned"))
    # TFLite stores Dense kernels transposed (out, in) and Conv2D kernels as (out, h, w, in).
    fc_in_file = {w.shape: w for w in weights["FULLY_CONNECTED"]}
    for name in ("hidden", "logits"):
        in_file = fc_in_file[kernels[name].T.shape]
        assert np.all(in_file[kernels[name].T == 0] == 0), name
        assert np.mean(in_file == 0) >= 0.79
    conv = np.transpose(kernels["conv"], (3, 0, 1, 2))
    assert np.all(weights["CONV_2D"][0][conv == 0] == 0)


def test_pruning_wrappers_are_stripped():
    assert tfkd.profile(tflite("float32", "pruned")).params == trained_cnn().count_params()


def test_int8_on_a_float_model_needs_representative_data():
    with pytest.raises(ValueError, match=r"representative_data=x_train\[:300\]"):
        tfkd.export.to_tflite(trained_cnn(), quantization="int8")
    with pytest.raises(ValueError, match="Received: representative_data=None"):
        tfkd.export.to_tflite(trained_cnn(), quantization="int16x8")


def test_unknown_mode_lists_the_valid_ones():
    modes = "'float32', 'float16', 'dynamic', 'int4', 'int8', 'int16x8'"
    with pytest.raises(ValueError, match=f"one of {modes}. Received: quantization='int2'"):
        tfkd.export.to_tflite(trained_cnn(), quantization="int2")


def test_representative_data_of_the_wrong_shape_is_refused():
    message = r"shape \(n, 8, 8, 1\).*Received: representative_data of shape \(5, 28, 28\)"
    with pytest.raises(ValueError, match=message):
        tfkd.export.to_tflite(
            trained_cnn(), quantization="int8", representative_data=np.zeros((5, 28, 28))
        )


def test_representative_data_may_be_a_dataset_of_pairs(tmp_path):
    (x_train, y_train), _ = digits()
    n = N_CALIBRATION
    dataset = tf.data.Dataset.from_tensor_slices((x_train[:n], y_train[:n]))
    data = tfkd.export.to_tflite(trained_cnn(), tmp_path / "d.tflite", "int8", dataset.batch(16))
    assert tfkd.profile(data).all_int8
    assert (tmp_path / "d.tflite").read_bytes() == data


def test_a_distiller_exports_its_student():
    distiller = tfkd.Distiller(teacher=build_cnn(), student=trained_cnn())
    assert tfkd.export.to_tflite(distiller) == tflite("float32")


def test_rejects_what_is_not_a_keras_model():
    with pytest.raises(TypeError, match="Received: model="):
        tfkd.export.to_tflite("model.keras")


def test_failed_conversion_leaves_no_file_and_keeps_the_old_one(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"previous")

    def failing_samples():
        yield [np.zeros((1, 8, 8, 1), np.float32)]
        raise RuntimeError("calibration data broke")

    with pytest.raises(Exception, match="calibration data broke"):
        tfkd.export.to_tflite(trained_cnn(), path, "int8", representative_data=failing_samples)
    assert path.read_bytes() == b"previous"
    assert os.listdir(tmp_path) == ["model.tflite"]


def test_written_file_has_the_usual_permissions(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    path = tmp_path / "model.tflite"
    tfkd.export.to_tflite(build_cnn(), path)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0o600


# ------------------------------------------- tfkd's own wrappers: prune(structure=), cluster


_STATEFUL_OPS = {"VAR_HANDLE", "ASSIGN_VARIABLE", "READ_VARIABLE", "CALL_ONCE"}


@pytest.mark.parametrize("which", ["structured", "clustered"])
def test_tfkd_wrapped_models_export_stripped(which):
    from _export_cases import _MODELS

    wrapped = _MODELS[which]()
    data = tflite("float32", which)
    assert _STATEFUL_OPS.isdisjoint(tfkd.profile(data).ops)
    stripped = tfkd.export.to_tflite(tfkd.strip(wrapped), quantization="float32")
    assert len(data) == len(stripped)  # the size of the stripped model, not twice it
    assert tfkd.profile(data).params == trained_cnn().count_params()
    _, (x_test, _) = digits()
    np.testing.assert_allclose(tfkd.TFLiteModel(data).predict(x_test),
                               wrapped.predict(x_test, verbose=0), atol=1e-4)


@pytest.mark.parametrize("which", ["structured", "clustered"])
def test_tfkd_wrapped_models_export_int8(which):
    from _export_cases import _MODELS

    data = tflite("int8", which)
    assert tfkd.profile(data).all_int8
    assert _agreement(data, _MODELS[which]()) >= 0.9
