"""Running exported files: `TFLiteModel` (LiteRT) and `ONNXModel` (onnxruntime), with `predict`,
`evaluate` and `latency`."""

from tfkd.runtime.base import Latency as Latency
from tfkd.runtime.onnx import ONNXModel as ONNXModel
from tfkd.runtime.tflite import TFLiteModel as TFLiteModel

__all__ = ["TFLiteModel", "ONNXModel", "Latency"]
