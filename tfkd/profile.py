"""`profile`: what a Keras model, `.tflite` or `.onnx` file holds: size, sparsity, op dtypes."""

import collections
import dataclasses
import gzip
import os
from typing import Any

import numpy as np

from tfkd._keras import is_keras3_model, is_keras_model, keras
from tfkd.flops import count_flops, tflite_op_flops
from tfkd.runtime.files import is_tflite, parse_tflite, read_file

# Ops whose input 1 is the weight tensor (inputs 1+ that are constants count as parameters).
_WEIGHT_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "CONV_3D"}
_ONNX_WEIGHT_OPS = {"Conv", "Gemm", "MatMul", "ConvTranspose", "MatMulInteger", "ConvInteger"}
# Variables TF-MOT wrappers add beside the real weights.
_WRAPPER_VARIABLES = ("mask", "threshold", "pruning_step", "optimizer_step")


@dataclasses.dataclass
class Profile:
    """What `tfkd.profile` found. `str(profile)` is a readable summary; `to_dict()` is JSON-able.

    Attributes:
        source: The file's path, `"<bytes>"`, or the Keras model's name.
        format: `"keras"`, `"tflite"` or `"onnx"`.
        params: Number of parameters (weights and biases; TF-MOT wrapper variables excluded).
        bytes: File size in bytes (a Keras model in memory: its weights' bytes, e.g. float32).
        gzip_bytes: Size after gzip (level 9), what a download or app bundle costs.
        sparsity: Fraction of exact zeros over all weight tensors (kernels of Conv/Dense layers).
        weight_sparsity: `{tensor name: fraction of zeros}` for each weight tensor.
        ops: `{op type: count}` (a Keras model: layer classes).
        op_dtypes: `{op type: sorted dtype names of its inputs and outputs}`.
        input_dtypes: Dtype names of the model's inputs.
        output_dtypes: Dtype names of the model's outputs.
        all_integer: Whether every op computes in integers (no float tensor anywhere).
        flops: FLOPs of one forward pass on one sample (2 per multiply-add of the Conv,
            Depthwise and Dense/FULLY_CONNECTED ops; zeros counted), or `None` (`.onnx`).
    """

    source: str
    format: str
    params: int
    bytes: int
    gzip_bytes: int
    sparsity: float
    weight_sparsity: dict
    ops: dict
    op_dtypes: dict
    input_dtypes: list
    output_dtypes: list
    all_integer: bool
    flops: int | None = None

    @property
    def all_int8(self):
        """Whether the model is integer-only with int8 inputs and outputs (full-int8 `.tflite`)."""
        io = self.input_dtypes + self.output_dtypes
        return self.all_integer and bool(io) and all(d == "int8" for d in io)

    def to_dict(self):
        """The profile as a JSON-able dict (with `all_int8`)."""
        return {**dataclasses.asdict(self), "all_int8": self.all_int8}

    def __str__(self):
        lines = [
            f"{self.source} ({self.format})",
            f"  parameters   {self.params:,}",
            f"  bytes        {self.bytes:,}",
            f"  gzip bytes   {self.gzip_bytes:,} ({self.bytes / max(self.gzip_bytes, 1):.2f}x)",
            f"  sparsity     {self.sparsity:.1%} of weights are zero",
            *([f"  FLOPs        {self.flops:,} per sample"] if self.flops is not None else []),
            f"  inputs       {', '.join(self.input_dtypes)}",
            f"  outputs      {', '.join(self.output_dtypes)}",
            f"  all-integer  {'yes' if self.all_integer else 'no'}"
            f"{' (all int8, int8 input and output)' if self.all_int8 else ''}",
            "  ops:",
        ]
        width = max((len(op) for op in self.ops), default=0)
        for op, count in self.ops.items():
            lines.append(f"    {op:<{width}}  x{count:<3} {', '.join(self.op_dtypes.get(op, []))}")
        return "\n".join(lines)


def profile(obj: Any) -> Profile:
    """Measures a Keras model, a `.tflite` file (path or bytes) or an `.onnx` file.

    Reports parameters, bytes, gzip bytes, the sparsity of the weight tensors, the op types with
    their dtypes, and whether the model is all-integer. `.tflite` files are read from their
    flatbuffer (no interpreter), so int4 weights are counted too; quantized weights count as zero
    where they equal their zero point.

    Args:
        obj: A `tfkd.keras.Model`, a path to a `.tflite`, `.onnx` or saved Keras model (`.keras`,
            `.h5`, SavedModel folder: its bytes on disk), or a `.tflite`/`.onnx` file's bytes.

    Returns:
        A `Profile` (`to_dict()`, `str()`, `all_int8`).

    Raises:
        TypeError: If `obj` is none of the above.
        ValueError: If the file is not a valid `.tflite`/`.onnx` (the message names the file).
        FileNotFoundError: If the path does not exist.

    Example:
    >>> print(tfkd.profile("student_int8.tflite"))
    """
    if is_keras_model(obj):
        return _profile_keras(obj)
    if is_keras3_model(obj):
        from tfkd.keras3 import check_model

        return _profile_keras(check_model("obj", obj))
    if isinstance(obj, (bytes, bytearray, memoryview)):
        data = bytes(obj)
        if not is_tflite(data) and data[:1] == b"\x08":  # an ONNX protobuf starts with field 1
            return _profile_onnx(data, "<.onnx bytes>")
        return _profile_tflite(data, "<.tflite bytes>")
    if isinstance(obj, (str, os.PathLike)):
        path = os.fspath(obj)
        if is_keras_file(path):
            return _profile_keras_file(path)
        data = read_file(path)
        if path.lower().endswith(".onnx") or (not is_tflite(data) and data[:1] == b"\x08"):
            return _profile_onnx(data, path)
        return _profile_tflite(data, path)
    raise TypeError(
        "`obj` must be a Keras model, a path to a .tflite or .onnx file, or .tflite bytes. "
        f"Received: obj={obj!r} (of type {type(obj).__name__})."
    )


def is_keras_file(path):
    """Whether `path` is a saved Keras model: a `.keras`/`.h5` file or a SavedModel folder."""
    path = os.fspath(path)
    if os.path.isdir(path):
        return os.path.exists(os.path.join(path, "saved_model.pb"))
    return path.lower().endswith((".keras", ".h5", ".hdf5"))


def load_keras_file(path):
    """Loads a saved Keras model (TF-MOT wrappers and tfkd objects included)."""
    from tfkd.saving import load_model

    if not os.path.exists(path):
        raise FileNotFoundError(f"No such file: {path!r}. Check the path.")
    try:
        return load_model(path, compile=False)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"{path} is not a loadable Keras model: {error}. Received: path={path!r}. Pass a "
            "model saved by `model.save` (tf_keras: .keras, .h5 or a SavedModel folder)."
        ) from None


def _profile_keras_file(path):
    """A saved Keras model: its weights as loaded, its bytes as stored on disk."""
    result = _profile_keras(load_keras_file(path))
    files = [path] if os.path.isfile(path) else [
        os.path.join(root, name) for root, _, names in os.walk(path) for name in names
    ]
    contents = [read_file(f) for f in sorted(files)]
    result.source = path
    result.bytes = sum(len(c) for c in contents)
    result.gzip_bytes = sum(gzip_size(c) for c in contents)
    return result


def gzip_size(data):
    """Bytes of `data` after gzip at level 9 (deterministic: no timestamp)."""
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def _new_profile(
    source, file_format, *, params, data, weights, ops, op_dtypes, input_dtypes, output_dtypes,
    all_integer, flops=None,
):
    """A `Profile` of `data` (the bytes measured) whose sparsity is that of `weights`
    (`{tensor name: array}`); `op_dtypes` maps op types to sets of dtype names."""
    return Profile(
        source=source,
        format=file_format,
        params=int(params),
        bytes=len(data),
        gzip_bytes=gzip_size(data),
        sparsity=_fraction_zero(list(weights.values())),
        weight_sparsity={n: _fraction_zero([v]) for n, v in weights.items()},
        ops=dict(ops),
        op_dtypes={k: sorted(v) for k, v in op_dtypes.items()},
        input_dtypes=input_dtypes,
        output_dtypes=output_dtypes,
        all_integer=bool(all_integer),
        flops=flops,
    )


def _fraction_zero(arrays):
    total = sum(a.size for a in arrays)
    return float(sum(np.count_nonzero(a == 0) for a in arrays) / total) if total else 0.0


# Keras -------------------------------------------------------------------------------------------


def _profile_keras(model):
    weights = [
        w for w in model.weights
        if w.name.split("/")[-1].split(":")[0] not in _WRAPPER_VARIABLES
        and not w.name.split(":")[0].endswith(("_min", "_max"))
    ]
    values = [np.asarray(w.numpy()) for w in weights]
    kernels = {w.name: v for w, v in zip(weights, values, strict=True) if v.ndim >= 2}
    data = b"".join(v.tobytes() for v in values)
    ops, op_dtypes = collections.Counter(), collections.defaultdict(set)
    for layer in _leaf_layers(model):
        name = type(layer).__name__
        ops[name] += 1
        op_dtypes[name].add(str(getattr(layer, "compute_dtype", None) or "float32"))
    return _new_profile(
        model.name,
        "keras",
        params=sum(v.size for v in values),
        data=data,
        weights=kernels,
        ops=ops,
        op_dtypes=op_dtypes,
        input_dtypes=[t.dtype.name for t in (model.inputs or [])],
        output_dtypes=[t.dtype.name for t in (model.outputs or [])],
        all_integer=False,
        flops=count_flops(model),
    )


def _leaf_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            yield from _leaf_layers(layer)
        elif not isinstance(layer, keras.layers.InputLayer):
            yield layer


# TFLite ------------------------------------------------------------------------------------------


def _tflite_names(schema):
    types = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    ops = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    return types, ops


def _tensor_values(model, tensor, type_name):
    buffer = model.buffers[tensor.buffer] if tensor.buffer < len(model.buffers) else None
    raw = None if buffer is None or buffer.data is None else np.asarray(buffer.data, np.uint8)
    if raw is None or raw.size == 0:
        return None
    if type_name == "int4":
        low, high = (raw & 0x0F).astype(np.int8), (raw >> 4).astype(np.int8)
        values = np.stack([low, high], -1).reshape(-1)
        values = np.where(values > 7, values - 16, values)[: int(np.prod(tensor.shape))]
    else:
        try:
            values = raw.view(np.dtype(type_name))
        except TypeError:
            return None
    zero_points = tensor.quantization.zeroPoint if tensor.quantization is not None else None
    zero_points = np.asarray(zero_points if zero_points is not None else [0])
    if np.all(zero_points == 0):
        return values
    if zero_points.size == 1:  # asymmetric (uint8) weights: zero is the zero point
        return values.astype(np.int32) - int(zero_points[0])
    return None


def _profile_tflite(data, source):
    model, schema = parse_tflite(data, source)
    type_names, op_names = _tflite_names(schema)
    graph = model.subgraphs[0]
    produced_by = {out: op for op in graph.operators for out in _indices(op.outputs)}
    codes = model.operatorCodes
    ops, op_dtypes = collections.Counter(), collections.defaultdict(set)
    params, weights, all_integer, flops = 0, {}, True, 0
    for op in graph.operators:
        code = codes[op.opcodeIndex]
        name = _op_name(code, op_names)
        if name == "CUSTOM" and code.customCode:
            name = code.customCode.decode()
        ops[name] += 1
        for index in [i for i in _indices(op.inputs) + _indices(op.outputs) if i >= 0]:
            dtype = type_names.get(graph.tensors[index].type, "unknown")
            op_dtypes[name].add(dtype)
            all_integer &= not dtype.startswith(("float", "complex"))
        if name in _WEIGHT_OPS and len(op.inputs) > 1 and len(op.outputs):
            weight = _through_dequantize(op.inputs[1], produced_by, codes, op_names, graph)
            flops += tflite_op_flops(name, graph.tensors[weight].shape if weight >= 0 else None,
                                     graph.tensors[op.outputs[0]].shape)
        if name in _WEIGHT_OPS:
            for position, index in enumerate(op.inputs[1:], start=1):
                index = _through_dequantize(index, produced_by, codes, op_names, graph)
                tensor = graph.tensors[index] if index >= 0 else None
                if tensor is None or tensor.buffer == 0:
                    continue
                params += int(np.prod(tensor.shape))
                values = _tensor_values(model, tensor, type_names.get(tensor.type, "unknown"))
                if position == 1 and values is not None:
                    weights[tensor.name.decode(errors="replace")] = values

    def io_dtype(index):
        return type_names.get(graph.tensors[index].type, "unknown")

    return _new_profile(
        source,
        "tflite",
        params=params,
        data=data,
        weights=weights,
        ops=ops,
        op_dtypes=op_dtypes,
        input_dtypes=[io_dtype(i) for i in graph.inputs],
        output_dtypes=[io_dtype(i) for i in graph.outputs],
        all_integer=all_integer,
        flops=flops,
    )


def _op_name(code, op_names):
    """The builtin op name of an operator code (`"CUSTOM"` for custom ops)."""
    return op_names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")


def _indices(array):
    return [] if array is None else [int(i) for i in array]


def _through_dequantize(index, produced_by, codes, op_names, graph):
    """Follows a DEQUANTIZE (float16 / weight-only files) back to the stored weight tensor."""
    op = produced_by.get(index)
    if op is not None:
        code = codes[op.opcodeIndex]
        if _op_name(code, op_names) == "DEQUANTIZE":
            return int(op.inputs[0])
    return index


# ONNX --------------------------------------------------------------------------------------------


def _profile_onnx(data, source):
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as error:
        raise ImportError(
            'Profiling .onnx files needs onnx: `pip install "tfkd[onnx]"`.'
        ) from error
    try:
        model = onnx.load_from_string(data)
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception as error:  # protobuf DecodeError and onnx errors
        raise ValueError(
            f"{source} is a corrupt or truncated .onnx file ({len(data)} bytes): {error}. "
            "Export it again with `tfkd.export.to_onnx`."
        ) from None
    graph = inferred.graph
    dtype_of = {}
    for info in list(graph.input) + list(graph.output) + list(graph.value_info):
        dtype_of[info.name] = _onnx_dtype(info.type.tensor_type.elem_type)
    initializers = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for name, value in initializers.items():
        dtype_of[name] = value.dtype.name
    ops, op_dtypes = collections.Counter(), collections.defaultdict(set)
    weights, all_integer = {}, True
    for node in graph.node:
        ops[node.op_type] += 1
        for name in list(node.input) + list(node.output):
            if name in dtype_of:
                op_dtypes[node.op_type].add(dtype_of[name])
                all_integer &= not dtype_of[name].startswith(("float", "complex", "bfloat"))
        if node.op_type in _ONNX_WEIGHT_OPS and len(node.input) > 1:
            source_name = _onnx_weight_source(node.input[1], graph)
            if source_name in initializers and initializers[source_name].ndim >= 2:
                weights[source_name] = initializers[source_name]
    return _new_profile(
        source,
        "onnx",
        params=sum(v.size for v in initializers.values() if _is_parameter(v)),
        data=data,
        weights=weights,
        ops=ops,
        op_dtypes=op_dtypes,
        input_dtypes=[
            dtype_of.get(i.name, "unknown") for i in graph.input if i.name not in initializers
        ],
        output_dtypes=[dtype_of.get(o.name, "unknown") for o in graph.output],
        all_integer=all_integer,
    )


def _is_parameter(value):
    """Float or 8-bit initializers with at least one axis (not shapes, scales or zero points)."""
    return value.ndim >= 1 and (value.dtype.kind == "f" or value.dtype.itemsize == 1)


def _onnx_weight_source(name, graph):
    """Follows DequantizeLinear/Transpose/Cast back to the stored initializer."""
    producers = {out: node for node in graph.node for out in node.output}
    passthrough = ("DequantizeLinear", "Transpose", "Cast")
    while name in producers and producers[name].op_type in passthrough:
        name = producers[name].input[0]
    return name


def _onnx_dtype(elem_type):
    from onnx import helper

    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).name
    except Exception:  # undefined or exotic types
        return "unknown"
