"""What `TFLiteModel` and `ONNXModel` share: batching, accuracy, agreement and latency."""

import dataclasses
import os
import time

import numpy as np

from tfkd._validation import check_int


@dataclasses.dataclass
class Latency:
    """Time of one inference call, measured `runs` times after `warmup` calls.

    Attributes:
        median_ms: Median time in milliseconds.
        p10_ms: 10th percentile in milliseconds.
        p90_ms: 90th percentile in milliseconds.
        mean_ms: Mean in milliseconds.
        std_ms: Standard deviation in milliseconds.
        batch: Samples per call.
        runs: Timed calls.
        threads: CPU threads the runtime used.
    """

    median_ms: float
    p10_ms: float
    p90_ms: float
    mean_ms: float
    std_ms: float
    batch: int
    runs: int
    threads: int

    def to_dict(self):
        return dataclasses.asdict(self)

    def __str__(self):
        return (
            f"{self.median_ms:.3f} ms median (p10 {self.p10_ms:.3f}, p90 {self.p90_ms:.3f}; "
            f"batch {self.batch}, {self.runs} runs, {self.threads} thread"
            f"{'s' if self.threads != 1 else ''})"
        )


def measure_latency(call, batch, warmup, runs, threads):
    """Times `call()` (`warmup` untimed calls first) and returns a `Latency`."""
    for _ in range(warmup):
        call()
    times = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        call()
        times[i] = time.perf_counter() - start
    times *= 1000.0
    return Latency(
        median_ms=float(np.median(times)),
        p10_ms=float(np.percentile(times, 10)),
        p90_ms=float(np.percentile(times, 90)),
        mean_ms=float(times.mean()),
        std_ms=float(times.std()),
        batch=batch,
        runs=runs,
        threads=threads,
    )


def read_model_file(name, value, suffix, article="a"):
    """`(source, data)` of a model file given as a path or as its bytes (`suffix`: `".tflite"`).

    Raises a `TypeError` naming `name` for anything else; `FileNotFoundError`/`ValueError` for a
    missing path or a folder.
    """
    from tfkd.runtime.files import read_file

    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{suffix} bytes>", bytes(value)
    if isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        return path, read_file(path)
    raise TypeError(
        f"`{name}` must be a path to {article} {suffix} file or its bytes. Received: "
        f"{name}={value!r} (of type {type(value).__name__})."
    )


def predictions_of(reference, x):
    """Outputs of `reference` on `x`: a Keras model, a `TFLiteModel`/`ONNXModel`, or an array."""
    if isinstance(reference, ExportedModel):
        outputs = reference.predict(x)
        return outputs[0] if isinstance(outputs, list) else outputs
    if hasattr(reference, "predict") and not isinstance(reference, np.ndarray):
        outputs = reference.predict(x, verbose=0)
        return np.asarray(outputs[0] if isinstance(outputs, list) else outputs)
    return np.asarray(reference)


def class_ids(values):
    """Class ids from logits/probabilities `(n, classes)`, or labels `(n,)` unchanged."""
    values = np.asarray(values)
    if values.ndim >= 2 and values.shape[-1] > 1:
        return values.argmax(axis=-1).reshape(len(values))
    return values.reshape(len(values)).astype(np.int64)


def accuracy_and_agreement(outputs, y=None, reference=None):
    """`{"accuracy": ..., "agreement": ...}` of `outputs` against labels and reference outputs."""
    predicted = class_ids(outputs)
    result = {"accuracy": None, "agreement": None}
    if y is not None:
        labels = class_ids(y)
        _check_one_per_sample("y", "label", labels, predicted)
        result["accuracy"] = float(np.mean(predicted == labels))
    if reference is not None:
        expected = class_ids(reference)
        _check_one_per_sample("reference", "prediction", expected, predicted)
        result["agreement"] = float(np.mean(predicted == expected))
    return result


def _check_one_per_sample(name, what, values, predicted):
    if len(values) != len(predicted):
        raise ValueError(
            f"`{name}` must give one {what} per sample. Received: {name} with {len(values)} "
            f"{what}s for {len(predicted)} samples."
        )


class ExportedModel:
    """Base of `TFLiteModel` and `ONNXModel`. Subclasses set `source`, `data` (the file's bytes),
    `input_shape` (without the batch dimension), `threads`, and implement
    `_run(batch) -> list of float arrays`."""

    source = "<model>"
    data = b""
    input_shape: tuple = ()
    threads = 1

    def predict(self, x, batch_size=None):
        """Runs the model on `x` and returns its float outputs (a list if it has several).

        Int8 inputs are quantized and int8 outputs dequantized with the file's own scales, so
        `x` is what the Keras model takes and the outputs are comparable with its outputs.

        Args:
            x: Array of samples, shape `(n, *input_shape)` (a single sample is accepted too).
            batch_size: Samples per call. Defaults to `None` (128, or 1 for a file whose batch
                size is fixed to 1).

        Returns:
            A float32 array `(n, ...)`, or a list of them for several outputs.
        """
        x = self._check_input(x)
        size = self._batch_size(batch_size)
        chunks = [self._run(x[i : i + size]) for i in range(0, len(x), size)]
        if not chunks:
            raise ValueError(f"`x` must hold at least one sample. Received: x of shape {x.shape}.")
        outputs = [np.concatenate(parts) for parts in zip(*chunks, strict=True)]
        return outputs[0] if len(outputs) == 1 else outputs

    def evaluate(self, x, y=None, reference=None, batch_size=None):
        """Accuracy on `(x, y)` and agreement with a reference model's predictions.

        Args:
            x: Array of samples.
            y: Integer labels `(n,)` or one-hot `(n, classes)`, or `None`. Defaults to `None`.
            reference: A Keras model, another `TFLiteModel`/`ONNXModel`, or an array of its
                predictions (logits, probabilities or class ids) on `x`. Defaults to `None`.
            batch_size: Passed to `predict`. Defaults to `None`.

        Returns:
            `{"accuracy": float or None, "agreement": float or None}` (fractions in [0, 1]).
        """
        outputs = self.predict(x, batch_size=batch_size)
        if isinstance(outputs, list):
            outputs = outputs[0]
        expected = None if reference is None else predictions_of(reference, x)
        return accuracy_and_agreement(outputs, y, expected)

    def latency(self, batch=1, warmup=10, runs=100, threads=None):
        """Median time of one call on random inputs of `batch` samples, and its spread.

        Args:
            batch: Samples per call. Defaults to `1`.
            warmup: Untimed calls first. Defaults to `10`.
            runs: Timed calls. Defaults to `100`.
            threads: CPU threads to time with, or `None` for the model's own `threads`.
                Defaults to `None`.

        Returns:
            A `tfkd.runtime.Latency` (`median_ms`, `p10_ms`, `p90_ms`, ...; `to_dict()`).
        """
        batch = check_int("batch", batch, minimum=1)
        warmup = check_int("warmup", warmup, minimum=0)
        runs = check_int("runs", runs, minimum=1)
        if threads is not None and check_int("threads", threads, minimum=1) != self.threads:
            other = type(self)(self.data, threads=threads)
            other.source = self.source
            return other.latency(batch=batch, warmup=warmup, runs=runs)
        if any(d is None or d < 0 for d in self.input_shape):
            raise ValueError(
                f"{self.source} has free input dimensions {self.input_shape}; `latency` needs a "
                "fixed input shape. Time `predict` on real inputs instead."
            )
        x = np.random.default_rng(0).random((batch, *self.input_shape), dtype=np.float32)
        run = self._prepared_call(x)
        return measure_latency(run, batch, warmup, runs, self.threads)

    def _check_one_input(self, count):
        if count != 1:
            raise ValueError(
                f"{type(self).__name__} runs files with one input. Received: {self.source} with "
                f"{count} inputs. Export a model with a single input, or run the file with its "
                "runtime directly."
            )

    def _prepared_call(self, x):
        return lambda: self._run(x)

    def _batch_size(self, batch_size):
        if batch_size is None:
            return 128
        return check_int("batch_size", batch_size, minimum=1)

    def _check_input(self, x):
        x = np.asarray(x)
        expected = tuple(self.input_shape)

        def fits(shape):
            return len(shape) == len(expected) and all(
                e is None or e < 0 or s == e for s, e in zip(shape, expected, strict=True)
            )

        if fits(x.shape):
            x = x[np.newaxis]  # a single sample
        if x.ndim != len(expected) + 1 or not fits(x.shape[1:]):
            shape = ", ".join("None" if e is None or e < 0 else str(e) for e in expected)
            raise ValueError(
                f"`x` must have shape (n, {shape}) to fit {self.source}. "
                f"Received: x of shape {x.shape}. Reshape the inputs as the model was trained."
            )
        return x
