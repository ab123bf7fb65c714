"""Reading exported model files: bytes from a path, and the `.tflite` flatbuffer's structure.

Running a file needs only these, LiteRT and onnxruntime: nothing here imports TensorFlow, Keras or
TF-MOT, so `tfkd.runtime` stays light (`tfkd.profile` reads files through here too).
"""

import os


def read_file(path):
    """The bytes of `path`; a clear `FileNotFoundError`/`ValueError` if missing or a folder."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such file: {path!r}. Check the path.")
    if os.path.isdir(path):
        raise ValueError(f"Expected a file, but {path!r} is a folder. Received: path={path!r}.")
    with open(path, "rb") as f:
        return f.read()


def is_tflite(data):
    """Whether `data` carries the TFLite flatbuffer identifier (`TFL3`)."""
    return len(data) >= 8 and data[4:8] == b"TFL3"


def parse_tflite(data, source):
    """The flatbuffer's `ModelT`; a `ValueError` naming `source` if it is not a valid `.tflite`."""
    from ai_edge_litert import schema_py_generated as schema

    if not is_tflite(data):
        raise ValueError(
            f"{source} is not a .tflite file (no TFL3 flatbuffer identifier; {len(data)} bytes). "
            "Pass a file written by `tfkd.export.to_tflite` or the TFLite converter."
        )
    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
        if not model.subgraphs:
            raise ValueError("no subgraph")
    except Exception as error:  # a truncated flatbuffer raises struct/index errors
        raise ValueError(
            f"{source} is a corrupt or truncated .tflite file ({len(data)} bytes): {error}. "
            "Export it again with `tfkd.export.to_tflite`."
        ) from None
    return model, schema
