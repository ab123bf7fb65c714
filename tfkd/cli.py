"""The `tfkd` command line (and `python -m tfkd`): parses arguments and calls tfkd's public API.

Commands: `demo`, `compress`, `convert`, `inspect`, `bench`, `eval`; `tfkd COMMAND --help` for each.
A user error (bad path, wrong file type, missing array, data that do not fit the model) prints one
line on stderr and exits with code 2, without a traceback.
"""

import argparse
import os
import sys

_MODEL_SUFFIXES = (".keras", ".h5")
_FILE_SUFFIXES = (".tflite", ".onnx")


class _UserError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line on stderr (exit code 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _build_parser():
    parser = _Parser(prog="tfkd", description="Distil, prune, quantize and export Keras models.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    demo = commands.add_parser("demo", help="the whole path on the bundled digits, with a report",
                               description="Trains a teacher, a student alone and distilled (on "
                               "all and on 10% of the labels), prunes, quantizes and exports the "
                               "distilled student, and writes report.json/md/png.")
    demo.add_argument("--out", default="tfkd-demo", help="output folder (default: tfkd-demo)")
    demo.add_argument("--epochs", type=int, default=None, help="student epochs (default: 150)")
    demo.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    demo.add_argument("--quick", action="store_true", help="a few epochs: checks the path runs")
    demo.set_defaults(run=_demo)

    comp = commands.add_parser("compress", help="distil, prune, QAT and export your own model",
                               description="The demo's path on your teacher and data.")
    comp.add_argument("--teacher", required=True, help="trained teacher (.keras or .h5)")
    student = comp.add_mutually_exclusive_group(required=True)
    student.add_argument("--student", help="untrained student (.keras or .h5)")
    student.add_argument("--student-width", type=float,
                         help="build the student by shrinking the teacher's filters and units")
    comp.add_argument("--data", required=True,
                      help=".npz with x_train, y_train, x_test, y_test, or a folder of images "
                      "per class")
    comp.add_argument("--out", required=True, help="output folder")
    comp.add_argument("--sparsity", type=float, default=0.8, help="pruning target (default: 0.8)")
    comp.add_argument("--int8", action="store_true",
                      help="quantization-aware training and an int8 .tflite")
    comp.add_argument("--epochs", type=int, default=30, help="distillation epochs (default: 30)")
    comp.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    comp.set_defaults(run=_compress)

    conv = commands.add_parser("convert", help="export a Keras model to .tflite or .onnx")
    conv.add_argument("model", metavar="MODEL", help="a .keras or .h5 model")
    conv.add_argument("--to", required=True, choices=("tflite", "onnx"))
    conv.add_argument("--quantization", default="float32",
                      choices=("float32", "float16", "dynamic", "int4", "int8", "int16x8"),
                      help="for --to tflite (default: float32)")
    conv.add_argument("--data", help="representative set (.npz: x_train, or x alone) for int8")
    conv.add_argument("--out", help="output path (default: MODEL with the new suffix)")
    conv.set_defaults(run=_convert)

    inspect = commands.add_parser("inspect", help="parameters, size, sparsity, ops and dtypes")
    inspect.add_argument("file", metavar="FILE", help="a .keras, .h5, .tflite or .onnx file")
    inspect.set_defaults(run=_inspect)

    bench = commands.add_parser("bench", help="batch-1 latency of a model file")
    bench.add_argument("file", metavar="FILE", help="a .tflite, .onnx, .keras or .h5 file")
    bench.add_argument("--threads", type=int, default=1, help="CPU threads (default: 1)")
    bench.add_argument("--runs", type=int, default=100, help="timed runs (default: 100)")
    bench.set_defaults(run=_bench)

    ev = commands.add_parser("eval", help="accuracy of a model file on test data")
    ev.add_argument("file", metavar="FILE", help="a .tflite, .onnx, .keras or .h5 file")
    ev.add_argument("--data", required=True, help=".npz with x_test and y_test")
    ev.set_defaults(run=_eval)
    return parser


def main(argv=None):
    """Runs `tfkd` with `argv` (default: `sys.argv[1:]`); returns the exit code."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code
    try:
        args.run(args)
    except (_UserError, FileNotFoundError, ValueError, TypeError, KeyError, OSError) as error:
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"tfkd {args.command}: error: {message}", file=sys.stderr)
        return 2
    return 0


# Commands -----------------------------------------------------------------------------------------


def _demo(args):
    from tfkd.demo import run_demo

    run_demo(args.out, epochs=args.epochs, seed=args.seed, quick=args.quick)


def _compress(args):
    import tfkd
    from tfkd.datafiles import check_input_shape, load_data

    teacher = _load_keras(args.teacher, "--teacher")
    if args.student is not None:
        student = _load_keras(args.student, "--student")
    else:
        student = tfkd.models.shrink(teacher, args.student_width)
    shape = teacher.input_shape[1:]
    train, test = load_data(args.data, input_shape=shape)
    check_input_shape(shape, train[0], f"the teacher {args.teacher}")
    formats = ("float32-tflite", "int8-tflite", "onnx") if args.int8 else ("float32-tflite", "onnx")
    report = tfkd.compress(
        teacher, student, train, test,
        distill=tfkd.DistillConfig(epochs=args.epochs, seed=args.seed),
        prune=tfkd.PruneConfig(target_sparsity=args.sparsity, epochs=max(1, args.epochs // 5)),
        quantize=tfkd.QuantizeConfig(epochs=max(1, args.epochs // 15)) if args.int8 else False,
        export=tfkd.ExportConfig(formats=formats), out_dir=args.out,
    )
    print(report.to_markdown())


def _convert(args):
    import tfkd
    from tfkd.datafiles import check_input_shape, load_inputs

    model = _load_keras(args.model, "MODEL")
    suffix = ".tflite" if args.to == "tflite" else ".onnx"
    out = args.out or os.path.splitext(args.model)[0] + suffix
    if args.to == "onnx":
        tfkd.export.to_onnx(model, out)
    else:
        data = None
        if args.data is not None:
            data = load_inputs(args.data)
            check_input_shape(model.input_shape[1:], data, args.model)
        tfkd.export.to_tflite(model, out, quantization=args.quantization, representative_data=data)
    print(f"wrote {out} ({os.path.getsize(out):,} bytes)")


def _inspect(args):
    import tfkd

    print(tfkd.profile(_load_any(args.file)))


def _bench(args):
    import tfkd

    obj = _load_any(args.file)
    if isinstance(obj, str):
        runner = (tfkd.TFLiteModel if obj.endswith(".tflite") else tfkd.ONNXModel)(
            obj, threads=args.threads)
        print(f"{args.file}: batch 1, {args.threads} thread(s): "
              f"{runner.latency(batch=1, runs=args.runs)}")
    else:
        stage = tfkd.Report().add(args.file, obj)
        print(f"{args.file}: batch 1 (Keras call): {stage['latency_ms']:.3f} ms median")


def _eval(args):
    import tfkd
    from tfkd.datafiles import check_input_shape, load_test_data

    obj = _load_any(args.file)
    x, y = load_test_data(args.data)
    shape = obj.input_shape[1:] if not isinstance(obj, str) else _file_input_shape(obj)
    check_input_shape(shape, x, args.file)
    stage = tfkd.Report(reference=None).add(args.file, obj, x=x, y=y, latency=False)
    print(f"{args.file}: accuracy {100 * stage['accuracy']:.2f}% on {len(y)} samples")


# Helpers (file types and paths; the work is done by the public API) ------------------------------


def _load_keras(path, what):
    import tfkd

    _check_exists(path, what)
    if not (path.endswith(_MODEL_SUFFIXES) or os.path.isdir(path)):
        raise _UserError(f"{what} must be a Keras model (.keras, .h5 or SavedModel folder). "
                         f"Received: {path}.")
    try:
        return tfkd.load_model(path, compile=False)
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise _UserError(f"could not load {path} as a Keras model: {error}") from None


def _load_any(path):
    """A Keras model (loaded) or the path of a `.tflite`/`.onnx` file."""
    _check_exists(path, "FILE")
    if path.endswith(_FILE_SUFFIXES):
        return path
    if path.endswith(_MODEL_SUFFIXES) or os.path.isdir(path):
        return _load_keras(path, "FILE")
    raise _UserError(f"FILE must be a .tflite, .onnx, .keras or .h5 file. Received: {path}.")


def _check_exists(path, what):
    if not os.path.exists(path):
        raise _UserError(f"{what}: no such file: {path}")


def _file_input_shape(path):
    import tfkd

    runner = tfkd.TFLiteModel(path) if path.endswith(".tflite") else tfkd.ONNXModel(path)
    return runner.input_shape


if __name__ == "__main__":
    sys.exit(main())
