"""`TFLiteModel`: runs a `.tflite` file on the LiteRT interpreter (`ai-edge-litert`)."""

from typing import Any

import numpy as np

from tfkd._validation import check_int
from tfkd.runtime.base import ExportedModel, read_model_file


class TFLiteModel(ExportedModel):
    """A `.tflite` file ready to run on the LiteRT interpreter (`ai_edge_litert`, with XNNPACK).

    `predict` takes float inputs as the Keras model does: int8/int16 inputs are quantized and
    outputs dequantized with the file's own scales and zero points. Batches run by resizing the
    input tensor (files converted from Keras have a free batch dimension) or, for a file fixed to
    one batch size, one call per sample. A corrupt or truncated file raises a `ValueError` naming
    it, before the interpreter ever runs it.

    Args:
        path_or_bytes: Path to a `.tflite` file, or its bytes (what `tfkd.export.to_tflite`
            returns).
        threads: CPU threads for the interpreter. Defaults to `1`.

    Raises:
        ValueError: If the file is not a valid `.tflite`.
        FileNotFoundError: If the path does not exist.
        TypeError: If `path_or_bytes` is neither a path nor bytes.

    Example:
    >>> model = tfkd.TFLiteModel("student_int8.tflite")
    >>> model.evaluate(x_test, y_test, reference=teacher)
    {'accuracy': 0.97, 'agreement': 0.98}
    >>> print(model.latency(batch=1))
    """

    def __init__(self, path_or_bytes: str | Any | bytes, threads: int = 1) -> None:
        from tfkd.runtime.files import parse_tflite

        self.threads = check_int("threads", threads, minimum=1)
        self.source, self.data = read_model_file("path_or_bytes", path_or_bytes, ".tflite")
        parse_tflite(self.data, self.source)  # a structural check before the interpreter
        self._interpreter = self._load()
        self._inputs = self._interpreter.get_input_details()
        self._outputs = self._interpreter.get_output_details()
        self._check_one_input(len(self._inputs))
        signature = self._inputs[0].get("shape_signature", self._inputs[0]["shape"])
        self.input_shape = tuple(int(d) for d in signature[1:])
        self._fixed_batch = int(signature[0]) if signature[0] > 0 else None
        self._shape = tuple(int(d) for d in self._inputs[0]["shape"])

    def _load(self):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as error:
            raise ImportError(
                "TFLiteModel needs LiteRT: `pip install ai-edge-litert`."
            ) from error
        try:
            interpreter = Interpreter(model_content=self.data, num_threads=self.threads)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise ValueError(
                f"{self.source} is not a valid .tflite model: {error}. Export it again with "
                "`tfkd.export.to_tflite`."
            ) from None
        return interpreter

    @property
    def input_dtype(self) -> np.dtype:
        """The numpy dtype the file takes (int8 for full-int8 files)."""
        return np.dtype(self._inputs[0]["dtype"])

    @property
    def output_dtypes(self) -> list[np.dtype]:
        return [np.dtype(o["dtype"]) for o in self._outputs]

    def _batch_size(self, batch_size):
        if self._fixed_batch is not None:
            return self._fixed_batch
        return super()._batch_size(batch_size)

    def _resize(self, shape):
        if shape != self._shape:
            index = self._inputs[0]["index"]
            self._interpreter.resize_tensor_input(index, list(shape))
            self._interpreter.allocate_tensors()
            self._shape = shape

    def _prepared_call(self, x):
        self._resize(tuple(x.shape))
        value = _quantize(x, self._inputs[0])
        index = self._inputs[0]["index"]
        interpreter = self._interpreter

        def call():
            interpreter.set_tensor(index, value)
            interpreter.invoke()
            return [interpreter.get_tensor(o["index"]) for o in self._outputs]

        return call

    def _run(self, x):
        count = len(x)
        if self._fixed_batch is not None and count < self._fixed_batch:  # pad the last batch
            padding = np.zeros((self._fixed_batch - count, *x.shape[1:]), x.dtype)
            x = np.concatenate([x, padding])
        outputs = self._prepared_call(x)()
        pairs = zip(outputs, self._outputs, strict=True)
        return [_dequantize(value, details)[:count] for value, details in pairs]

    def __repr__(self):
        return (
            f"TFLiteModel({self.source!r}, input={self.input_dtype.name}{list(self.input_shape)}, "
            f"threads={self.threads})"
        )


def _quantize(x, details):
    dtype = np.dtype(details["dtype"])
    if dtype.kind == "f":
        return x.astype(dtype)
    scale, zero_point = details["quantization"]
    if scale == 0:
        return x.astype(dtype)
    info = np.iinfo(dtype)
    q = np.round(np.asarray(x, np.float32) / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def _dequantize(value, details):
    scale, zero_point = details["quantization"]
    if np.dtype(details["dtype"]).kind in "iu" and scale != 0:
        return ((value.astype(np.float32) - zero_point) * scale).astype(np.float32)
    return value.astype(np.float32) if value.dtype.kind == "f" else value
