"""`tfkd inspect`'s inputs and outputs: name, shape, dtype and, for quantized tensors, the scale and
zero point a deployer needs (`real = scale * (q - zero_point)`)."""

from typing import Any


def describe_io(obj: Any) -> str:
    """Lines describing the inputs and outputs of a Keras model or a `.tflite`/`.onnx` path."""
    if isinstance(obj, str) and obj.endswith(".tflite"):
        inputs, outputs = _tflite_io(obj)
    elif isinstance(obj, str):
        inputs, outputs = _onnx_io(obj)
    else:
        inputs, outputs = _keras_io(obj)
    lines = []
    for kind, tensors in (("input", inputs), ("output", outputs)):
        for tensor in tensors:
            line = f"  {kind:<7}{tensor['name']}: shape {tensor['shape']}, {tensor['dtype']}"
            if tensor.get("scale"):
                line += f", scale {tensor['scale']:.9g}, zero point {tensor['zero_point']}"
            lines.append(line)
    return "\n".join(lines)


def _shape(dims: Any) -> str:
    return "(" + ", ".join("None" if d is None or d == -1 else str(d) for d in dims) + ")"


def _tflite_io(path: str) -> tuple[list[dict], list[dict]]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path)

    def tensors(details: list[dict]) -> list[dict]:
        found = []
        for d in details:
            scale, zero_point = d.get("quantization", (0.0, 0))
            dims = d.get("shape_signature", d["shape"])
            found.append({"name": d["name"], "shape": _shape([int(x) for x in dims]),
                          "dtype": d["dtype"].__name__, "scale": float(scale),
                          "zero_point": int(zero_point)})
        return found

    return tensors(interpreter.get_input_details()), tensors(interpreter.get_output_details())


def _onnx_io(path: str) -> tuple[list[dict], list[dict]]:
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}

    def tensors(values: Any) -> list[dict]:
        found = []
        for value in values:
            if value.name in initializers:
                continue
            kind = value.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else None for d in kind.shape.dim]
            dtype = onnx.helper.tensor_dtype_to_np_dtype(kind.elem_type).name
            found.append({"name": value.name, "shape": _shape(dims), "dtype": dtype})
        return found

    return tensors(graph.input), tensors(graph.output)


def _keras_io(model: Any) -> tuple[list[dict], list[dict]]:
    def tensors(values: list) -> list[dict]:
        return [{"name": t.name, "shape": _shape(t.shape.as_list()), "dtype": t.dtype.name}
                for t in values]

    return tensors(model.inputs), tensors(model.outputs)
