"""What each `tfkd` command does with its parsed flags: read files, call the public API, print.

Imported only once a command runs (it imports TensorFlow through tfkd).
"""

import argparse
import contextlib
import os
import shutil
from collections.abc import Iterator
from typing import Any

import tfkd
from tfkd.cli import UsageError
from tfkd.cli.datafiles import check_input_shape, load_data, load_inputs, load_test_data

MODEL_SUFFIXES = (".keras", ".h5")
FILE_SUFFIXES = (".tflite", ".onnx")


def demo(args: argparse.Namespace) -> None:
    from tfkd.demo import run_demo

    with output_folder(args.out, args.overwrite) as out:
        run_demo(out, data=args.data, epochs=args.epochs, seed=args.seed, quick=args.quick)


def compress(args: argparse.Namespace) -> None:
    check_output_folder(args.out, args.overwrite)
    check_exists(args.data, "--data")
    teacher = load_keras(args.teacher, "--teacher")
    # The student's initial weights come from the same seed as the rest of the run.
    tfkd.keras.utils.set_random_seed(tfkd.DistillConfig().seed if args.seed is None else args.seed)
    if args.student is not None:
        student = load_keras(args.student, "--student")
    else:
        student = tfkd.models.shrink(teacher, args.student_width)
    shape = teacher.input_shape[1:]
    train, test = load_data(args.data, input_shape=shape)
    check_input_shape(shape, train[0], f"the teacher {args.teacher}")
    with output_folder(args.out, args.overwrite) as out:
        report = tfkd.compress(teacher, student, train, test, out_dir=out,
                               **compress_settings(args))
    print(report.to_markdown())


def compress_settings(args: argparse.Namespace) -> dict[str, Any]:
    """`tfkd.compress`'s `distill`, `prune`, `quantize` and `export` from the flags given: a flag
    left out keeps the Python call's default."""

    def given(**flags: Any) -> dict[str, Any]:
        return {name: value for name, value in flags.items() if value is not None}

    prune: dict[str, Any] | bool = given(
        target_sparsity=args.sparsity, epochs=args.prune_epochs,
        structure="channels" if args.prune == "channels" else None)
    quantize: dict[str, Any] | bool = given(epochs=args.qat_epochs)
    return {
        "distill": given(epochs=args.epochs, batch_size=args.batch_size,
                         learning_rate=args.learning_rate, temperature=args.temperature,
                         alpha=args.alpha, seed=args.seed),
        "prune": False if args.no_prune else prune,
        "quantize": False if args.no_qat else quantize,
        "export": given(formats=args.formats),
    }


def convert(args: argparse.Namespace) -> None:
    suffix = "." + args.to
    quantization = args.quantization or "float32"
    if args.to == "onnx" and quantization != "float32":
        raise UsageError(f"--to onnx writes float32 only. Received: --quantization {quantization}. "
                         f"Drop --quantization, or use --to tflite --quantization {quantization}.")
    if quantization in ("int8", "int16x8") and args.data is None:
        raise UsageError(f"--quantization {quantization} needs --data: a representative set of "
                         "inputs (.npz with x_train, or x alone; or a folder of images per class).")
    out = args.out or os.path.splitext(args.model)[0] + suffix
    if not out.endswith(suffix):
        raise UsageError(f"--out must end with {suffix} for --to {args.to}. Received: --out {out}.")
    if os.path.exists(out) and not args.overwrite:
        raise UsageError(f"{out} exists. Pass --overwrite to replace it, or --out another path.")
    if args.data is not None:
        check_exists(args.data, "--data")
    model = load_keras(args.model, "MODEL")
    if args.to == "onnx":
        tfkd.export.to_onnx(model, out)
    else:
        data = None
        if args.data is not None:
            data = load_inputs(args.data, model.input_shape[1:])
            check_input_shape(model.input_shape[1:], data, args.model)
        tfkd.export.to_tflite(model, out, quantization=quantization, representative_data=data)
    print(f"wrote {out} ({os.path.getsize(out):,} bytes)")


def inspect(args: argparse.Namespace) -> None:
    from tfkd.cli.describe import describe_io

    obj = load_any(args.file)
    print(tfkd.profile(obj))
    print(describe_io(obj))


def bench(args: argparse.Namespace) -> None:
    obj = load_any(args.file)
    if isinstance(obj, str):
        runner = (tfkd.TFLiteModel if obj.endswith(".tflite") else tfkd.ONNXModel)(
            obj, threads=args.threads)
        print(f"{args.file}: batch 1, {args.threads} thread(s): "
              f"{runner.latency(batch=1, runs=args.runs)}")
    else:
        stage = tfkd.Report().add(args.file, obj)
        print(f"{args.file}: batch 1, as its {stage['file']} (1 thread): "
              f"{stage['latency_us']:,.0f} us median")


def evaluate(args: argparse.Namespace) -> None:
    check_exists(args.data, "--data")
    obj = load_any(args.file)
    shape = obj.input_shape[1:] if not isinstance(obj, str) else file_input_shape(obj)
    x, y = load_test_data(args.data, shape)
    check_input_shape(shape, x, args.file)
    stage = tfkd.Report(reference=None).add(args.file, obj, x=x, y=y, latency=False)
    print(f"{args.file}: accuracy {100 * stage['accuracy']:.2f}% on {len(y)} samples")


# Files and folders --------------------------------------------------------------------------------


def check_output_folder(path: str, overwrite: bool) -> None:
    """Raises a `UsageError` if `path` is a file, or a non-empty folder without `--overwrite`."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"--out must be a folder. Received: --out {path} (a file).")
    if os.path.isdir(path) and os.listdir(path) and not overwrite:
        raise UsageError(f"--out {path} exists and is not empty. Pass --overwrite to write into "
                         "it, or choose another --out.")


@contextlib.contextmanager
def output_folder(path: str, overwrite: bool) -> Iterator[str]:
    """Yields `path` to write into; a folder this run created is removed again if the run fails or
    is interrupted (files inside are written atomically, so a kept folder holds whole files)."""
    check_output_folder(path, overwrite)
    created = not os.path.exists(path)
    os.makedirs(path, exist_ok=True)
    try:
        yield path
    except BaseException:
        if created:
            shutil.rmtree(path, ignore_errors=True)
        raise


def load_keras(path: str, what: str) -> Any:
    check_exists(path, what)
    if not (path.endswith(MODEL_SUFFIXES) or os.path.isdir(path)):
        raise UsageError(f"{what} must be a Keras model (.keras, .h5 or SavedModel folder). "
                         f"Received: {path}.")
    try:
        return tfkd.load_model(path, compile=False)
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise UsageError(f"could not load {path} as a Keras model: {error}") from None


def load_any(path: str) -> Any:
    """A Keras model (loaded) or the path of a `.tflite`/`.onnx` file."""
    check_exists(path, "FILE")
    if path.endswith(FILE_SUFFIXES):
        return path
    if path.endswith(MODEL_SUFFIXES) or os.path.isdir(path):
        return load_keras(path, "FILE")
    raise UsageError(f"FILE must be a .tflite, .onnx, .keras or .h5 file. Received: {path}.")


def check_exists(path: str, what: str) -> None:
    if not os.path.exists(path):
        raise UsageError(f"{what}: no such file: {path}")


def file_input_shape(path: str) -> tuple:
    runner = tfkd.TFLiteModel(path) if path.endswith(".tflite") else tfkd.ONNXModel(path)
    return tuple(runner.input_shape)
