"""`ONNXModel`: runs an `.onnx` file on onnxruntime's CPU provider."""

from typing import Any

import numpy as np

from tfkd._validation import check_int
from tfkd.runtime.base import ExportedModel, read_model_file


class ONNXModel(ExportedModel):
    """An `.onnx` file ready to run on onnxruntime (CPU).

    The same interface as `tfkd.TFLiteModel`: `predict`, `evaluate`, `latency`. Inputs are cast to
    the dtype the file takes. A corrupt or truncated file raises a `ValueError` naming it.

    Args:
        path: Path to an `.onnx` file (or its bytes).
        threads: CPU threads for one inference (onnxruntime's intra-op threads). Defaults to `1`.

    Raises:
        ValueError: If the file is not a valid ONNX model.
        FileNotFoundError: If the path does not exist.

    Example:
    >>> tfkd.ONNXModel("student.onnx").evaluate(x_test, y_test, reference=student)
    """

    def __init__(self, path: str | Any, threads: int = 1) -> None:
        self.threads = check_int("threads", threads, minimum=1)
        self.source, self.data = read_model_file("path", path, ".onnx", article="an")
        self._session = self._load(self.data)
        inputs = self._session.get_inputs()
        self._check_one_input(len(inputs))
        self._input = inputs[0]
        self.input_shape = tuple(d if isinstance(d, int) else None for d in inputs[0].shape[1:])
        self._dtype = np.dtype(_NUMPY_TYPES.get(inputs[0].type, "float32"))

    def _load(self, data):
        try:
            import onnxruntime as ort
        except ImportError as error:
            raise ImportError(
                'ONNXModel needs onnxruntime: `pip install "tfkd[onnx]"`.'
            ) from error
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        try:
            return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own pybind error types
            raise ValueError(
                f"{self.source} is not a valid ONNX model: {str(error)[:300]}. Export it again "
                "with `tfkd.export.to_onnx`."
            ) from None

    @property
    def input_dtype(self) -> np.dtype:
        return self._dtype

    def _prepared_call(self, x):
        feed = {self._input.name: x.astype(self._dtype)}
        return lambda: self._session.run(None, feed)

    def _run(self, x):
        return [np.asarray(o) for o in self._prepared_call(x)()]

    def __repr__(self):
        return f"ONNXModel({self.source!r}, threads={self.threads})"


_NUMPY_TYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
}
