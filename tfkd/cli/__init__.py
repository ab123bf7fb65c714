"""The `tfkd` command line (and `python -m tfkd`): parses arguments and calls tfkd's public API.

Commands: `demo`, `compress`, `convert`, `inspect`, `bench`, `eval`; `tfkd COMMAND --help` for each.
`--help`, `--version` and usage errors answer without importing TensorFlow. A user error (a bad
flag, path, file type or data) prints one line on stderr and exits with code 2; an unexpected
error prints one line naming `--debug` (which shows its traceback) and exits with code 1; Ctrl-C
prints one line and exits with code 130, leaving no half-written output.
"""

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence

from tfkd.cli.parser import build_parser


class UsageError(Exception):
    """A user's mistake the command line reports in one line (no traceback)."""


# Errors that mean "the input was wrong": tfkd raises ValueError for a wrong value, and an
# ImportError that names the extra to install (`pip install "tfkd[onnx]"`).
_USER_ERRORS = (UsageError, FileNotFoundError, IsADirectoryError, NotADirectoryError, ValueError,
                ImportError)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs `tfkd` with `argv` (default: `sys.argv[1:]`); returns the exit code."""
    from tfkd import __version__

    parser = build_parser(__version__)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 0 if exit_.code is None else 2
    verbose, debug = getattr(args, "verbose", False), getattr(args, "debug", False)
    prefix = f"tfkd {args.command}"
    try:
        with quiet_tensorflow(verbose):
            from tfkd.cli import commands

            getattr(commands, args.run)(args)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{prefix}: interrupted (nothing half-written was kept)", file=sys.stderr)
        return 130
    except Exception as error:
        if debug:
            raise
        message = " ".join(str(error).split()) or type(error).__name__
        if isinstance(error, _USER_ERRORS):
            print(f"{prefix}: error: {message}", file=sys.stderr)
            return 2
        print(f"{prefix}: unexpected error: {type(error).__name__}: {message} (run again with "
              "--debug to see where; please report it)", file=sys.stderr)
        return 1
    return 0


@contextlib.contextmanager
def quiet_tensorflow(verbose: bool) -> Iterator[None]:
    """Keeps TensorFlow's and LiteRT's own log lines (start-up, CUDA probes, converter and
    interpreter notes) off the terminal while a command runs, unless `verbose`.

    Sets `TF_CPP_MIN_LOG_LEVEL` (unless the user did) and TensorFlow's Python loggers to errors,
    and sends the process's native stderr (file descriptor 2, where C++ logs go, some before
    TensorFlow reads its log level) to a temporary file; Python's `sys.stderr` keeps the terminal,
    so tfkd's messages, warnings and tracebacks still show.
    """
    if verbose:
        yield
        return
    import logging
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    for module in ("tensorflow", "tf_keras", "tensorflow_model_optimization", "keras", "tf2onnx",
                   "absl", "google"):
        warnings.filterwarnings("ignore", module=module)
    python_stderr = sys.stderr
    if python_stderr is not sys.__stderr__ or python_stderr is None:
        yield  # stderr is already redirected (e.g. by pytest): leave file descriptors alone
        return
    import tempfile

    python_stderr.flush()
    # Left open: logging handlers created meanwhile (absl's, TensorFlow's) keep writing to it.
    terminal = open(os.dup(2), "w", buffering=1, encoding=python_stderr.encoding,
                    errors="backslashreplace")
    with tempfile.TemporaryFile() as native_log:
        os.dup2(native_log.fileno(), 2)
        sys.stderr = terminal
        try:
            yield
        finally:
            terminal.flush()
            sys.stderr = python_stderr
            os.dup2(terminal.fileno(), 2)
