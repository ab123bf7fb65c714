"""Every `to_tflite` checks itself: calibration data before converting, the file after."""

import numpy as np
import pytest

import tfkd


@pytest.fixture(scope="module")
def calibration(digits):
    (x_train, _), (x_test, y_test) = digits
    return x_train[:200], x_test, y_test


def test_uint8_calibration_data_is_refused_before_converting(trained_teacher, calibration,
                                                              tmp_path):
    x, _, _ = calibration
    raw = np.round(x * 255).astype("uint8")
    path = tmp_path / "m.tflite"
    with pytest.raises(ValueError, match=r"dtype uint8 with values 0\.\.255\. Convert and scale"):
        tfkd.export.to_tflite(trained_teacher, path, "int8", representative_data=raw)
    assert not path.exists()


def test_unscaled_float_pixels_are_refused(trained_teacher, calibration):
    x, _, _ = calibration
    raw = np.round(x * 255).astype("float32")  # 0..255 floats for a model trained on 0..1
    with pytest.raises(ValueError, match="looks like raw pixel values"):
        tfkd.export.to_tflite(trained_teacher, quantization="int8", representative_data=raw)


def test_unscaled_data_costs_accuracy_when_the_check_is_off(trained_teacher, calibration):
    """What the check prevents: the same file, calibrated on 0..255, is far less accurate."""
    x, x_test, y_test = calibration
    good = tfkd.TFLiteModel(tfkd.export.to_tflite(trained_teacher, quantization="int8",
                                                  representative_data=x))
    raw = np.round(x * 255).astype("float32")
    bad = tfkd.TFLiteModel(tfkd.export.to_tflite(trained_teacher, quantization="int8",
                                                 representative_data=raw, check=False))
    good_accuracy = good.evaluate(x_test, y_test)["accuracy"]
    bad_accuracy = bad.evaluate(x_test, y_test)["accuracy"]
    assert good_accuracy > 0.9
    assert bad_accuracy < good_accuracy - 0.2


def test_integer_pixels_are_accepted_by_a_model_that_rescales_them(calibration):
    from tfkd import keras

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    outputs = keras.layers.Dense(10)(keras.layers.Flatten()(x))
    raw = np.round(calibration[0] * 255).astype("uint8")
    data = tfkd.export.to_tflite(keras.Model(inputs, outputs), quantization="int8",
                                 representative_data=raw)
    assert tfkd.TFLiteModel(data).predict(raw[:4].astype("float32")).shape == (4, 10)


def test_nan_in_calibration_data_is_refused(trained_teacher, calibration):
    x = calibration[0].copy()
    x[3, 2, 2, 0] = np.nan
    with pytest.raises(ValueError, match="1 NaN or infinite values"):
        tfkd.export.to_tflite(trained_teacher, quantization="int8", representative_data=x)


def test_a_file_that_disagrees_with_the_model_is_refused(trained_teacher, calibration, tmp_path):
    """One outlier sample 1,000x the others widens every int8 range until the rest collapse."""
    x = calibration[0][:63]
    outlier = x[:1] * 1000.0 + 0.5
    path = tmp_path / "m.tflite"
    with pytest.raises(ValueError, match=r"disagrees with the Keras model on 64 check samples.*"
                                         r"top-1 agreement"):
        tfkd.export.to_tflite(trained_teacher, path, "int8",
                              representative_data=np.concatenate([x, outlier]))
    assert not path.exists()


@pytest.mark.parametrize("mode", ["float32", "float16", "dynamic", "int8"])
def test_a_faithful_export_passes_its_check(trained_teacher, calibration, mode):
    x, x_test, _ = calibration
    data = tfkd.export.to_tflite(trained_teacher, quantization=mode, representative_data=x)
    agreement = tfkd.TFLiteModel(data).evaluate(x_test[:200], reference=trained_teacher)
    assert agreement["agreement"] >= 0.95
