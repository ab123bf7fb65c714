"""`to_tflite`: a Keras model to a `.tflite` flatbuffer, float or quantized, written atomically."""

from typing import Any

import numpy as np

from tfkd._keras import tf
from tfkd._validation import check_choice
from tfkd.export._atomic import write_bytes
from tfkd.export._prepare import prepare_model
from tfkd.export.check import check_calibration_data, check_samples, compare_with_model

QUANTIZATION_MODES = ("float32", "float16", "dynamic", "int4", "int8", "int16x8")


def to_tflite(
    model: Any,
    path: str | Any | None = None,
    quantization: str = "float32",
    representative_data: Any = None,
    check: bool = True,
) -> bytes:
    """Converts a Keras model to a `.tflite` flatbuffer and returns its bytes.

    Pruning wrappers (`prune_low_magnitude`) are stripped first; the pruned zeros stay exact zeros
    in the file's weight tensors (weights are stored dense, int8 weights per channel with zero
    point 0). `path` is written atomically: a failed conversion leaves no file (and an existing
    file at `path` untouched).

    Modes:

    - `"float32"`: no quantization.
    - `"float16"`: float16 weights, float32 compute.
    - `"dynamic"`: int8 weights, activations quantized on the fly (dynamic range).
    - `"int4"`: int4 weights per channel, float activations quantized on the fly, through Google's
      `ai-edge-quantizer` (recipe `dynamic_wi4_afp32`).
    - `"int8"`: full integer: every op int8 (int32 biases), int8 input and output. A
      quantization-aware (QAT, `tfkd.quantize`) model needs no data: its learned ranges are used;
      a float model is calibrated on `representative_data`.
    - `"int16x8"`: int16 activations and int8 weights (float input and output), calibrated on
      `representative_data`.

    A QAT model's fake-quantization is folded into int8 kernels in every mode it allows: the
    float modes keep float input and output around int8 ops; `"int4"` and `"int16x8"` refuse it.

    Every export checks itself (unless `check=False`): calibration data that cannot be what the
    model was trained on (integers for a float model, NaN, raw 0..255 pixels on which the model
    predicts one class) is refused before converting, and the new file is run beside the Keras
    model on up to 64 samples (`representative_data`, or random inputs in [0, 1) for a float
    model without it). A file whose outputs differ by more than quantization explains (e.g. 25%
    of the outputs' range for int8), or whose top-1 agreement is far too low, raises a
    `ValueError` with the figures; nothing is written.

    Args:
        model: A `tfkd.keras.Model` with known inputs (functional or Sequential); may hold
            pruning or QAT wrappers. A `tfkd.Distiller` exports its student.
        path: Where to write the `.tflite` file, or `None` to only return the bytes. Defaults to
            `None`.
        quantization: One of `"float32"`, `"float16"`, `"dynamic"`, `"int4"`, `"int8"`,
            `"int16x8"`. Defaults to `"float32"`.
        representative_data: Inputs to calibrate `"int8"` and `"int16x8"` on: an array of samples
            (a few hundred training inputs are plenty), a `tf.data.Dataset` of inputs or
            `(inputs, labels)` (batched or not), or a callable yielding `[input]` lists of batch 1
            (TFLite's `representative_dataset`).
            The other modes use it only to check the file. Defaults to `None`.
        check: Whether to check the calibration data and compare the new file with the Keras
            model (see above). Defaults to `True`.

    Returns:
        The `.tflite` flatbuffer as `bytes`.

    Raises:
        ValueError: If `quantization` is not a mode above (or is `"int4"`/`"int16x8"` for a QAT
            model), if `"int8"`/`"int16x8"` needs
            `representative_data` and none was given, if the data does not fit the model's
            input or is not preprocessed like training inputs, if the converted `"int8"` model
            is not integer-only, or if the file disagrees with the Keras model.
        TypeError: If `model` is not a tf_keras model.

    Example:
    >>> data = tfkd.export.to_tflite(student, "student.tflite", quantization="int8",
    ...                              representative_data=x_train[:300])
    >>> tfkd.TFLiteModel("student.tflite").evaluate(x_test, y_test)
    """
    check_choice("quantization", quantization, QUANTIZATION_MODES)
    model, is_qat = prepare_model(model)
    if is_qat and quantization in ("int4", "int16x8"):
        raise ValueError(
            f'A quantization-aware (QAT) model learned 8-bit ranges and exports as "int8" (or with '
            f'float input and output in the float modes). Received: quantization="{quantization}" '
            "for a QAT model. Pass `quantization=\"int8\"`, or export the float model before "
            "`tfkd.quantize`."
        )
    samples, array = None, None
    if representative_data is not None:
        array = _representative_array(representative_data, model)
    if quantization in ("int8", "int16x8"):
        if representative_data is None and not (quantization == "int8" and is_qat):
            raise ValueError(
                f'quantization="{quantization}" calibrates activation ranges on sample inputs, '
                "and needs `representative_data` for a float model. Received: "
                "representative_data=None. Pass a few hundred training inputs, e.g. "
                f'`to_tflite(model, quantization="{quantization}", '
                "representative_data=x_train[:300])`, or quantization-aware train the model "
                "first (`tfkd.quantize(model)`, then fit) to export int8 without data."
            )
        if representative_data is not None:
            if check and array is not None:
                check_calibration_data(array, model)
            samples = representative_data if array is None else _generator(array, model)
    data = _convert(model, quantization, samples, is_qat)
    if quantization == "int8":
        _check_integer_only(data, calibrated=samples is not None)
    if check:
        probe = check_samples(model, array)
        if probe is not None:
            compare_with_model(data, model, _as_input_dtype(probe, model), quantization)
    if path is not None:
        write_bytes(path, data)
    return data


def _convert(model, quantization, samples, is_qat):
    if quantization == "int4":
        return _quantize_int4(_convert(model, "float32", None, is_qat))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantization != "float32" or is_qat:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        if samples is not None:
            # Setting supported_ops without data fails on QAT models in TF 2.21 (its check runs
            # before the graph is known); with QAT and no data, integer-only is checked afterwards.
            converter.representative_dataset = samples
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    elif quantization == "int16x8":
        converter.representative_dataset = samples
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        ]
    return bytes(converter.convert())


def _quantize_int4(float_data):
    try:
        from ai_edge_quantizer import quantizer, recipe
    except ImportError as error:
        raise ImportError(
            'quantization="int4" needs Google\'s ai-edge-quantizer. Install it with '
            '`pip install "tfkd[int4]"`.'
        ) from error
    int4 = quantizer.Quantizer(bytearray(float_data))
    int4.load_quantization_recipe(recipe.dynamic_wi4_afp32())
    return bytes(int4.quantize(enable_progress_report=False).quantized_model)


def _representative_array(data, model):
    """The samples of `representative_data` as one array checked against the model's input, or
    `None` for a callable (TFLite's `representative_dataset`, passed through as it is)."""
    if len(model.inputs) != 1:
        raise ValueError(
            "`representative_data` is supported for models with one input. Received a model with "
            f"{len(model.inputs)} inputs. Pass a callable yielding lists of inputs instead."
        )
    expected = tuple(model.inputs[0].shape[1:])
    if callable(data) and not isinstance(data, tf.data.Dataset):
        return None
    if isinstance(data, tf.data.Dataset):
        array = np.concatenate([_dataset_inputs(element, expected) for element in data])
    else:
        array = np.asarray(data)
    if array.ndim == len(expected) and _fits(array.shape, expected):
        array = array[np.newaxis]  # a single sample
    if array.ndim != len(expected) + 1 or not _fits(array.shape[1:], expected) or not len(array):
        raise ValueError(
            f"`representative_data` must be samples of shape (n, {', '.join(map(str, expected))}) "
            f"to fit the model's input. Received: representative_data of shape {array.shape}. "
            "Pass inputs as the model takes them (e.g. `x_train[:300]`)."
        )
    return array


def _as_input_dtype(array, model):
    return array.astype(model.inputs[0].dtype.as_numpy_dtype)


def _generator(array, model):
    """TFLite's `representative_dataset`: a callable yielding `[sample]` lists of batch 1."""
    array = _as_input_dtype(array, model)

    def generator():
        for sample in array:
            yield [sample[np.newaxis]]

    return generator


def _dataset_inputs(element, expected):
    if isinstance(element, (tuple, list)):
        element = element[0]
    array = np.asarray(element)
    return array[np.newaxis] if array.ndim == len(expected) else array


def _fits(shape, expected):
    return all(e is None or s == e for s, e in zip(shape, expected, strict=True))


def _check_integer_only(data, calibrated=False):
    from tfkd.profile import profile

    report = profile(data)
    if not report.all_integer:
        floats = sorted(op for op, dtypes in report.op_dtypes.items() if "float32" in dtypes)
        fix = (
            "The converter left these ops in float: quantize those layers with "
            "`tfkd.quantize(model, layers=...)` or export with quantization='dynamic'."
            if calibrated
            else "Pass `representative_data` to calibrate the rest "
            "(e.g. `representative_data=x_train[:300]`)."
        )
        raise ValueError(
            'quantization="int8" must give a file whose every op is integer, but these ops still '
            f"compute in float: {', '.join(floats) or 'inputs/outputs'}. Received a model whose "
            f"quantization-aware layers do not cover every op. {fix}"
        )

