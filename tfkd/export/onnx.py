"""`to_onnx`: a Keras model to ONNX through tf2onnx, checked in onnxruntime, written atomically."""

import os
from typing import Any

import numpy as np

from tfkd._keras import tf
from tfkd._validation import check_int
from tfkd.export._atomic import atomic_file
from tfkd.export._prepare import prepare_model


def to_onnx(
    model: Any,
    path: str | os.PathLike[str],
    opset: int | None = None,
    check: bool = True,
) -> str:
    """Converts a Keras model to an `.onnx` file through tf2onnx.

    Pruning wrappers are stripped first. The file is written to a temporary path, opened in
    onnxruntime and (with `check=True`) run against the Keras model on random inputs before it
    replaces `path`: a failed conversion, a file onnxruntime cannot load (tf2onnx writes one when a
    node fails to convert, logging the error instead of raising it) or outputs that disagree leave
    no file behind. Quantization-aware (QAT) models export their fake-quantization as
    QuantizeLinear/DequantizeLinear pairs; their outputs are checked for shape only, since rounding
    at the quantization steps may differ by one step.

    Args:
        model: A `tfkd.keras.Model` with known inputs (functional or Sequential).
        path: Where to write the `.onnx` file.
        opset: ONNX opset version (7 to 18 with tf2onnx 1.17), or `None` for tf2onnx's default
            (15). Defaults to `None`.
        check: Whether to compare onnxruntime's outputs with Keras's on random inputs (max
            difference at most `1e-3 * (1 + max |output|)`). Defaults to `True`.

    Returns:
        The path written, as a string.

    Raises:
        ValueError: If `opset` is outside what tf2onnx writes, the conversion fails, or its
            outputs disagree with the Keras model.
        ImportError: If tf2onnx or onnxruntime is missing.

    Example:
    >>> tfkd.export.to_onnx(student, "student.onnx")
    >>> tfkd.ONNXModel("student.onnx").evaluate(x_test, y_test, reference=student)
    """
    tf2onnx = _import("tf2onnx")
    if opset is not None:
        newest = max(tf2onnx.constants.OPSET_TO_IR_VERSION)
        if check_int("opset", opset, minimum=7) > newest:
            raise ValueError(
                f"tf2onnx {tf2onnx.__version__} writes ONNX opsets 7 to {newest}. Received: "
                f"opset={opset}. Pass `opset={newest}` or less, or `opset=None` (its default)."
            )
    model, is_qat = prepare_model(model)
    signature = tuple(
        tf.TensorSpec((None, *tensor.shape[1:]), tensor.dtype, name=_input_name(tensor, i))
        for i, tensor in enumerate(model.inputs)
    )
    path = os.fspath(path)
    with atomic_file(path) as tmp:
        try:
            tf2onnx.convert.from_keras(
                model, input_signature=signature, opset=opset, output_path=tmp
            )
            session = _session(tmp)
        except Exception as error:  # tf2onnx and onnxruntime raise many types
            raise ValueError(
                f"tf2onnx could not convert model {model.name!r} to ONNX (opset={opset}): "
                f"{type(error).__name__}: {str(error)[:500]}. Received: model={model.name!r}. "
                "Check that every layer is a built-in Keras layer; a quantization-aware model "
                "must be trained (or calibrated) before export."
            ) from error
        if check:
            _check_outputs(model, session, signature, exact=not is_qat)
    return path


def _import(name):
    try:
        return __import__(name)
    except ImportError as error:
        raise ImportError(
            f'ONNX export needs {name}. Install it with `pip install "tfkd[onnx]"`.'
        ) from error


def _input_name(tensor, index):
    name = tensor.name.split(":")[0].replace("/", "_")
    return name or f"input_{index}"


def _session(path):
    ort = _import("onnxruntime")
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def _check_outputs(model, session, signature, exact):
    rng = np.random.default_rng(0)
    inputs = [
        rng.random((2, *spec.shape[1:]), dtype=np.float32).astype(spec.dtype.as_numpy_dtype)
        for spec in signature
    ]
    feed = {node.name: value for node, value in zip(session.get_inputs(), inputs, strict=True)}
    got = session.run(None, feed)
    expected = model(inputs if len(inputs) > 1 else inputs[0], training=False)
    expected = [np.asarray(e) for e in tf.nest.flatten(expected)]
    for out, ref in zip(got, expected, strict=True):
        if out.shape != ref.shape:
            raise ValueError(
                f"The ONNX file's output has shape {out.shape} but the Keras model's has "
                f"{ref.shape}. Received: model={model.name!r}. Please report this model."
            )
        difference = float(np.max(np.abs(out - ref))) if out.size else 0.0
        if exact and difference > 1e-3 * (1.0 + float(np.max(np.abs(ref)))):
            raise ValueError(
                f"The ONNX file's outputs differ from the Keras model's by up to {difference:.3g}. "
                f"Received: model={model.name!r}. Try another `opset`, or pass `check=False` "
                "to keep the file anyway."
            )
