"""`tfkd.TFLiteModel` (LiteRT) and `tfkd.ONNXModel` (onnxruntime): predict with int8 I/O handled,
batching, evaluate, latency, and clear errors for corrupt files."""

import numpy as np
import pytest
from _export_cases import digits, tflite, trained_cnn

import tfkd
from tfkd import keras


@pytest.fixture(scope="module")
def int8_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("runtime") / "cnn_int8.tflite"
    path.write_bytes(tflite("int8"))
    return path


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    return tfkd.export.to_onnx(trained_cnn(), tmp_path_factory.mktemp("onnx") / "cnn.onnx")


def test_runs_on_litert_not_tf_lite():
    model = tfkd.TFLiteModel(tflite("float32"))
    assert type(model._interpreter).__module__.startswith("ai_edge_litert")


def test_int8_predict_quantizes_inputs_and_dequantizes_outputs(int8_file):
    _, (x_test, _) = digits()
    model = tfkd.TFLiteModel(int8_file)
    assert model.input_dtype == np.int8
    outputs = model.predict(x_test)
    expected = trained_cnn().predict(x_test, verbose=0)
    assert outputs.dtype == np.float32 and outputs.shape == expected.shape
    # Dequantized logits are close to the float ones (a few quantization steps), not raw int8.
    assert np.abs(outputs - expected).mean() < 0.1 * np.abs(expected).mean()


@pytest.mark.parametrize("batch_size", [1, 7, None, 1000])
def test_batch_size_does_not_change_outputs(batch_size):
    _, (x_test, _) = digits()
    model = tfkd.TFLiteModel(tflite("float32"))
    expected = trained_cnn().predict(x_test[:20], verbose=0)
    outputs = model.predict(x_test[:20], batch_size=batch_size)
    np.testing.assert_allclose(outputs, expected, atol=1e-5)


def test_a_file_with_a_fixed_batch_size_pads_the_last_batch():
    _, (x_test, _) = digits()
    inputs = keras.Input((8, 8, 1), batch_size=4)
    fixed = keras.Model(inputs, trained_cnn()(inputs))
    model = tfkd.TFLiteModel(tfkd.export.to_tflite(fixed))
    outputs = model.predict(x_test[:10])
    np.testing.assert_allclose(outputs, trained_cnn().predict(x_test[:10], verbose=0), atol=1e-5)


def test_a_single_sample_is_accepted():
    _, (x_test, _) = digits()
    assert tfkd.TFLiteModel(tflite("float32")).predict(x_test[0]).shape == (1, 10)


def test_evaluate_counts_hits_and_agreement():
    _, (x_test, y_test) = digits()
    model = tfkd.TFLiteModel(tflite("float32"))
    predicted = model.predict(x_test).argmax(-1)
    result = model.evaluate(x_test, y_test, reference=trained_cnn())
    assert result["accuracy"] == pytest.approx(np.mean(predicted == y_test))
    assert result["agreement"] == 1.0
    # A reference may be an array of labels or of logits; half the labels flipped halves agreement.
    flipped = predicted.copy()
    flipped[::2] = (flipped[::2] + 1) % 10
    assert model.evaluate(x_test, reference=flipped)["agreement"] == pytest.approx(0.5)
    assert model.evaluate(x_test, reference=np.eye(10)[predicted])["agreement"] == 1.0
    assert model.evaluate(x_test, np.eye(10)[y_test])["accuracy"] == result["accuracy"]


def test_latency_reports_median_and_spread():
    latency = tfkd.TFLiteModel(tflite("int8")).latency(batch=2, warmup=2, runs=15)
    assert latency.batch == 2 and latency.runs == 15 and latency.threads == 1
    assert 0 < latency.p10_ms <= latency.median_ms <= latency.p90_ms
    assert set(latency.to_dict()) >= {"median_ms", "p10_ms", "p90_ms", "std_ms"}
    assert "ms median" in str(latency)
    assert tfkd.TFLiteModel(tflite("int8")).latency(warmup=0, runs=3, threads=2).threads == 2


def test_onnx_model_predicts_evaluates_and_times(onnx_file):
    _, (x_test, y_test) = digits()
    model = tfkd.ONNXModel(onnx_file, threads=1)
    np.testing.assert_allclose(
        model.predict(x_test, batch_size=64), trained_cnn().predict(x_test, verbose=0), atol=1e-4
    )
    assert model.evaluate(x_test, y_test, reference=trained_cnn())["agreement"] == 1.0
    assert model.latency(warmup=1, runs=5).median_ms > 0


@pytest.mark.parametrize("cut", [0.5, 0.9, 0.1])
def test_truncated_tflite_is_a_clear_error_naming_the_file(tmp_path, cut):
    data = tflite("int8")
    path = tmp_path / "truncated.tflite"
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(ValueError, match="truncated.tflite.*(corrupt|not a valid)"):
        tfkd.TFLiteModel(path)


@pytest.mark.parametrize(
    "content",
    [b"", np.random.default_rng(0).bytes(4000), b"\x10\x00\x00\x00TFL3" + bytes(100)],
)
def test_random_bytes_are_a_clear_error(tmp_path, content):
    path = tmp_path / "random.tflite"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="random.tflite"):
        tfkd.TFLiteModel(path)
    with pytest.raises(ValueError, match="random.onnx"):
        (tmp_path / "random.onnx").write_bytes(content)
        tfkd.ONNXModel(tmp_path / "random.onnx")


@pytest.mark.parametrize("seed", range(5))
def test_flipped_bytes_give_a_clear_error_or_a_running_model(seed):
    data = bytearray(tflite("int8"))
    rng = np.random.default_rng(seed)
    for position in rng.integers(0, len(data), size=20):
        data[position] = int(rng.integers(0, 256))
    try:
        model = tfkd.TFLiteModel(bytes(data))
    except ValueError as error:
        assert "<.tflite bytes>" in str(error)
    else:  # the flips hit weight values only: the file still runs
        assert model.predict(np.zeros((2, 8, 8, 1), np.float32)).shape == (2, 10)


def test_truncated_onnx_is_a_clear_error(tmp_path, onnx_file):
    data = open(onnx_file, "rb").read()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.onnx"):
        tfkd.ONNXModel(path)


def test_bad_arguments(tmp_path):
    model = tfkd.TFLiteModel(tflite("float32"))
    with pytest.raises(ValueError, match=r"Received: x of shape \(3, 28, 28\)"):
        model.predict(np.zeros((3, 28, 28)))
    with pytest.raises(ValueError, match="Received: batch=0"):
        model.latency(batch=0)
    with pytest.raises(ValueError, match="Received: threads=0"):
        tfkd.TFLiteModel(tflite("float32"), threads=0)
    with pytest.raises(TypeError, match="Received: path_or_bytes=3"):
        tfkd.TFLiteModel(3)
    with pytest.raises(FileNotFoundError, match="missing.tflite"):
        tfkd.TFLiteModel(tmp_path / "missing.tflite")
    with pytest.raises(ValueError, match="is a folder"):
        tfkd.ONNXModel(tmp_path)
    with pytest.raises(ValueError, match="one label per sample"):
        model.evaluate(np.zeros((4, 8, 8, 1), np.float32), np.zeros(3))


def test_a_file_with_two_inputs_is_a_clear_error():
    first, second = keras.Input((4,)), keras.Input((4,))
    joined = keras.layers.Concatenate()([first, second])
    model = keras.Model([first, second], keras.layers.Dense(2)(joined))
    with pytest.raises(ValueError, match="one input. Received: <.tflite bytes> with 2 inputs"):
        tfkd.TFLiteModel(tfkd.export.to_tflite(model))
