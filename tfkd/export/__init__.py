"""Export: Keras models to `.tflite` (float or quantized), `.onnx` and SavedModel, atomically."""

from tfkd.export.onnx import to_onnx as to_onnx
from tfkd.export.saved_model import to_saved_model as to_saved_model
from tfkd.export.tflite import QUANTIZATION_MODES as QUANTIZATION_MODES
from tfkd.export.tflite import to_tflite as to_tflite

__all__ = ["to_tflite", "to_onnx", "to_saved_model", "QUANTIZATION_MODES"]
