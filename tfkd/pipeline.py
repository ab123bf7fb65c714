"""`compress`: the whole path in one call, from a trained teacher to int8 `.tflite` and `.onnx`.

teacher -> distilled student -> pruned (inside the distillation) -> prune-preserving QAT (still
distilled, float teacher) -> exported files, each stage measured side by side in a `tfkd.Report`.
Every step is configured by a small dataclass (or a dict of its fields); `False` skips the step.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from tfkd._keras import keras, tf
from tfkd._validation import (
    check_choice,
    check_fraction,
    check_int,
    check_open_fraction,
    check_positive,
)
from tfkd.keras3 import check_model

if TYPE_CHECKING:
    from tfkd.report import Report

Model = Any  # a tf_keras model (tf_keras ships no type information)
XY = tuple[Any, Any]  # (x, y) arrays

EXPORT_FORMATS = ("float32-tflite", "float16-tflite", "dynamic-tflite", "int8-tflite", "onnx")


@dataclasses.dataclass
class DistillConfig:
    """How `compress` distils the student (keras.io's loss, Adam).

    Args:
        epochs: Epochs of distillation. Defaults to `150`.
        batch_size: Batch size (also of the pruning and QAT fits). Defaults to `32`.
        learning_rate: Adam's learning rate. Defaults to `5e-3`.
        temperature: Softening temperature of the teacher's and student's logits. Defaults to `8.0`.
        alpha: Weight of the student's loss on the labels; `1 - alpha` weighs the distillation
            loss. Defaults to `0.1`.
        seed: Seed set (`keras.utils.set_random_seed`: Python, NumPy, TensorFlow) before each
            fit: shuffling, dropout, the initial values of what pruning and QAT add. Int8
            calibration takes the first training inputs, so it draws nothing. The same seed
            gives the same accuracies and the same `.tflite` bytes run after run on CPU
            (`tests/test_reproducible.py`; seed before building the student, as `tfkd
            compress` does), without TensorFlow's op determinism. On a GPU, call
            `tf.config.experimental.enable_op_determinism()` first: it makes cuDNN and
            scatter-style ops deterministic for the whole process, at a cost in speed, and
            raises for ops that have no deterministic kernel. Defaults to `0`.
        cache_teacher: Run the teacher once over the training inputs and distil from its stored
            outputs (`tfkd.cache_teacher_outputs`): the same loss, since the inputs are not
            augmented, at about the cost of the student's plain fit. Defaults to `True`.
    """

    epochs: int = 150
    batch_size: int = 32
    learning_rate: float = 5e-3
    temperature: float = 8.0
    alpha: float = 0.1
    seed: int = 0
    cache_teacher: bool = True

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs, minimum=1)
        check_int("batch_size", self.batch_size, minimum=1)
        check_positive("learning_rate", self.learning_rate)
        check_positive("temperature", self.temperature)
        check_fraction("alpha", self.alpha)
        check_int("seed", self.seed)


@dataclasses.dataclass
class PruneConfig:
    """How `compress` prunes the distilled student (`tfkd.prune`, trained inside a Distiller).

    Args:
        target_sparsity: Fraction of zeros in every prunable kernel, in (0, 1). Defaults to `0.8`.
        epochs: Epochs of distillation while pruning (the target is reached two-thirds of the way
            through). Defaults to `30`.
        learning_rate: Adam's learning rate while pruning. Defaults to `3e-3`.
        structure: `None`, `"m:n"` structured sparsity such as `"2:4"`, or `"channels"`: whole
            filters and units removed (`target_sparsity` is then the fraction of channels), the
            stripped model physically smaller. Defaults to `None`.
    """

    target_sparsity: float = 0.8
    epochs: int = 30
    learning_rate: float = 3e-3
    structure: str | None = None

    def __post_init__(self) -> None:
        check_open_fraction("target_sparsity", self.target_sparsity)
        check_int("epochs", self.epochs, minimum=1)
        check_positive("learning_rate", self.learning_rate)


@dataclasses.dataclass
class QuantizeConfig:
    """How `compress` runs quantization-aware training (`tfkd.quantize`, inside a Distiller).

    A pruned student uses the prune-preserving scheme (`preserve="sparsity"`), so its zeros stay.

    Args:
        epochs: Epochs of distillation with simulated 8-bit quantization. Defaults to `10`.
        learning_rate: Adam's learning rate during QAT. Defaults to `5e-4`.
    """

    epochs: int = 10
    learning_rate: float = 5e-4

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs, minimum=1)
        check_positive("learning_rate", self.learning_rate)


@dataclasses.dataclass
class ExportConfig:
    """Which files `compress` writes and measures.

    The float files come from the float student (pruned and stripped, or distilled); the
    `"int8-tflite"` file from the QAT student when there is one (no calibration needed), else
    from the float student calibrated on training inputs.

    Args:
        formats: Any of `"float32-tflite"`, `"float16-tflite"`, `"dynamic-tflite"`,
            `"int8-tflite"`, `"onnx"`, or `None` for `("float32-tflite", "int8-tflite")` plus
            `"onnx"` when the `tfkd[onnx]` extra is installed. Defaults to `None`.
        representative_samples: Training inputs to calibrate int8 on (float student only; the
            first ones, so a run is reproducible). Defaults to `300`.
        latency: Whether to measure batch-1 latency of every stage. Defaults to `True`.

    Raises:
        ImportError: If `"onnx"` is asked for without the `tfkd[onnx]` extra (before any training).
    """

    formats: tuple[str, ...] | None = None
    representative_samples: int = 300
    latency: bool = True

    def __post_init__(self) -> None:
        if self.formats is None:
            self.formats = ("float32-tflite", "int8-tflite") + (("onnx",) if has_onnx() else ())
        if isinstance(self.formats, str):
            self.formats = (self.formats,)
        self.formats = tuple(self.formats)
        for fmt in self.formats:
            check_choice("formats", fmt, EXPORT_FORMATS)
        check_int("representative_samples", self.representative_samples, minimum=1)
        if "onnx" in self.formats and not has_onnx():
            raise ImportError(
                'formats="onnx" needs tf2onnx and onnxruntime. Install them with `pip install '
                '"tfkd[onnx]"`, or leave "onnx" out of `formats`. Received: '
                f"formats={self.formats!r}."
            )


def has_onnx() -> bool:
    """Whether the `tfkd[onnx]` extra (tf2onnx, onnxruntime) is installed (found, not imported)."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("tf2onnx", "onnxruntime"))


def compress(
    teacher: Model,
    student: Model,
    train: XY,
    val: XY,
    *,
    distill: DistillConfig | dict[str, Any] | bool | None = None,
    prune: PruneConfig | dict[str, Any] | bool | None = None,
    quantize: QuantizeConfig | dict[str, Any] | bool | None = None,
    export: ExportConfig | dict[str, Any] | bool | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    report: Report | None = None,
    verbose: int = 1,
) -> Report:
    """Distils, prunes, quantizes and exports `student`, measuring every stage against `teacher`.

    The path: the student is distilled from the frozen teacher (stage `"distilled"`), pruned while
    still distilled (`"pruned"`, `tfkd.prune` then `tfkd.strip`), trained with prune-preserving
    simulated 8-bit quantization against the float teacher (`"qat"`), and exported (stages
    `"float32-tflite"`, `"int8-tflite"`, `"onnx"`, ...). Each stage is measured on `val`
    (accuracy, agreement with the teacher, parameters, bytes, gzip bytes, sparsity, batch-1
    latency, training time) in a `tfkd.Report`. With `out_dir`, the models (`distilled.keras`,
    `pruned.keras`, `qat.keras`), the exported files, `report.json`, `report.md` and the plot
    `report.png` are written there.

    Each step takes its config dataclass, a dict of its fields (e.g. `prune={"target_sparsity":
    0.5}`), `None` for the defaults, or `False` to skip it (`distill=False`: `student` is already
    trained).

    Args:
        teacher: The trained teacher, a `tfkd.keras.Model` with logits out.
        student: The student to train (in place), a `tfkd.keras.Model` with logits out. Its
            initial weights are the caller's: for a reproducible run, build it after
            `tfkd.keras.utils.set_random_seed(seed)`.
        train: `(x_train, y_train)` arrays (integer labels).
        val: `(x_test, y_test)` arrays every stage is measured on.
        distill: A `DistillConfig`, dict, `None` or `False`. Defaults to `None`.
        prune: A `PruneConfig`, dict, `None` or `False`. Defaults to `None`.
        quantize: A `QuantizeConfig`, dict, `None` or `False`. Defaults to `None`.
        export: An `ExportConfig`, dict, `None` or `False`. Defaults to `None`.
        out_dir: Folder for the artifacts and report files, or `None` to write nothing.
            Defaults to `None`.
        report: A `tfkd.Report` to add the stages to (e.g. holding baselines), or `None` for a new
            one. A `"teacher"` stage is added when it has none. Defaults to `None`.
        verbose: `1` prints a line and a progress bar per stage, `0` is silent. Defaults to `1`.

    Returns:
        The `tfkd.Report`.

    Raises:
        TypeError: If a model or config has the wrong type.
        ValueError: If the data or a config value is malformed.

    Example:
    >>> report = tfkd.compress(teacher, tfkd.models.build_student(), (x_train, y_train),
    ...                        (x_test, y_test), prune={"target_sparsity": 0.8}, out_dir="out")
    >>> print(report.to_markdown())
    """
    from tfkd.report import Report

    teacher = check_model("teacher", teacher)
    student = check_model("student", student)
    train, val = check_xy("train", train), check_xy("val", val)
    steps = {
        "distill": _config("distill", distill, DistillConfig),
        "prune": _config("prune", prune, PruneConfig),
        "quantize": _config("quantize", quantize, QuantizeConfig),
        "export": _config("export", export, ExportConfig),
    }
    if report is None:
        report = Report(title="tfkd compress")
    elif not isinstance(report, Report):
        raise TypeError(f"`report` must be a `tfkd.Report` or None. Received: report={report!r}.")
    run = _Run(teacher, train, val, steps, out_dir, report, verbose)
    with tempfile.TemporaryDirectory(prefix="tfkd-compress-") as scratch:
        run.files_dir = os.fspath(out_dir) if out_dir is not None else scratch
        run.all(student)
    return report


class _Run:
    """One walk down the path; holds what the stages share."""

    def __init__(self, teacher: Model, train: XY, val: XY, steps: dict[str, Any],
                 out_dir: str | os.PathLike[str] | None, report: Report, verbose: int) -> None:
        self.teacher, self.train, self.val = teacher, train, val
        self.steps, self.out_dir, self.report, self.verbose = steps, out_dir, report, verbose
        self.latency = steps["export"].latency if steps["export"] else True
        # Batch, seed, temperature and alpha of the later fits: the distillation's.
        self.fit_config = steps["distill"] or DistillConfig()
        self.files_dir = ""  # out_dir, or a scratch folder while compress runs

    def all(self, student: Model) -> None:
        if self.out_dir is not None:
            os.makedirs(self.out_dir, exist_ok=True)
        if not any(s["name"] == "teacher" for s in self.report.stages):
            self.add("teacher", self.teacher)
        float_model, qat_model = student, None
        if self.steps["distill"]:
            cfg = self.steps["distill"]
            seconds = self.distil(student, cfg.epochs, cfg.learning_rate,
                                  "distilled (from the teacher)")
            self.add("distilled", student, seconds, file="distilled.keras")
        if self.steps["prune"]:
            float_model = self.prune(student, self.steps["prune"])
        if self.steps["quantize"]:
            qat_model = self.quantize(float_model, self.steps["quantize"])
        if self.steps["export"]:
            self.export(float_model, qat_model, self.steps["export"])
        if self.out_dir is not None:
            self.write_report()

    def say(self, text: str) -> None:
        if self.verbose:
            print(text, file=sys.stdout, flush=True)

    def add(self, name: str, model_or_file: Any, seconds: float | None = None,
            file: str | None = None, **extra: Any) -> dict[str, Any]:
        if file is not None and self.out_dir is not None:
            _save_model(model_or_file, os.path.join(self.out_dir, file))
        x, y = self.val
        stage = self.report.add(name, model_or_file, x=x, y=y, train_seconds=seconds,
                                latency=self.latency, **extra)
        self.say(f"  {name}: accuracy {100 * stage['accuracy']:.2f}%")
        return stage

    def distil(self, student: Model, epochs: int, learning_rate: float, what: str) -> float:
        return distil(self.teacher, student, self.train, self.fit_config, epochs=epochs,
                      learning_rate=learning_rate, verbose=self.verbose, what=what)

    def prune(self, student: Model, cfg: PruneConfig) -> Model:
        from tfkd.optimize.pruning import prune
        from tfkd.optimize.wrappers import strip

        pruned = prune(student, target_sparsity=cfg.target_sparsity, structure=cfg.structure)
        what = "of channels removed" if cfg.structure == "channels" else "(distilled)"
        seconds = self.distil(pruned, cfg.epochs, cfg.learning_rate,
                              f"pruned to {cfg.target_sparsity:.0%} {what}")
        stripped = strip(pruned)
        self.add("pruned", stripped, seconds, file="pruned.keras")
        return stripped

    def quantize(self, model: Model, cfg: QuantizeConfig) -> Model:
        from tfkd.optimize.quantization import quantize

        sparse = self.steps["prune"] and self.steps["prune"].structure != "channels"
        preserve = "sparsity" if sparse else None  # channels are gone: no zeros to keep
        qat = quantize(model, preserve=preserve)
        seconds = self.distil(qat, cfg.epochs, cfg.learning_rate,
                              "qat: quantization-aware (distilled)")
        self.add("qat", qat, seconds, file="qat.keras")
        return qat

    def export(self, float_model: Model, qat_model: Model | None, cfg: ExportConfig) -> None:
        from tfkd.export import to_onnx, to_tflite

        samples = self.train[0][: cfg.representative_samples]
        for fmt in cfg.formats or ():
            self.say(f"[tfkd] exporting {fmt}")
            if fmt == "onnx":
                path = os.path.join(self.files_dir, "student.onnx")
                to_onnx(float_model, path)
            else:
                mode = fmt.split("-")[0]
                source = qat_model if mode == "int8" and qat_model is not None else float_model
                path = os.path.join(self.files_dir, f"student_{mode}.tflite")
                data = samples if mode == "int8" and source is float_model else None
                to_tflite(source, path, quantization=mode, representative_data=data)
            self.add(fmt, path)

    def write_report(self) -> None:
        from tfkd.export._atomic import write_text

        names = ("report.json", "report.md", "report.png")
        paths = [os.path.join(self.files_dir, n) for n in names]
        self.report.to_json(paths[0])
        write_text(paths[1], self.report.to_markdown())
        try:
            self.report.plot(paths[2])
        except ImportError:  # matplotlib is optional
            self.say("[tfkd] matplotlib is not installed: no report.png (pip install matplotlib)")
        self.say(f"[tfkd] wrote {', '.join(paths)}")


def distil(teacher: Model, student: Model, train: XY, config: DistillConfig, *,
           epochs: int | None = None, learning_rate: float | None = None, verbose: int = 1,
           what: str = "distilling") -> float:
    """Distils `student` from `teacher` on `train` (keras.io's loss); returns the seconds spent."""
    from tfkd.distiller import Distiller
    from tfkd.schemes.cached import cache_teacher_outputs

    x, y = train
    epochs = config.epochs if epochs is None else epochs
    learning_rate = config.learning_rate if learning_rate is None else learning_rate
    keras.utils.set_random_seed(config.seed)
    cached = cache_teacher_outputs(teacher, x, verbose=0) if config.cache_teacher else None
    distiller = Distiller(student=student, teacher=cached or teacher)
    distiller.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        metrics=["accuracy"],
        student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        distillation_loss_fn=keras.losses.KLDivergence(),
        alpha=config.alpha,
        temperature=config.temperature,
    )
    if verbose:  # what the logged numbers are
        print(f"       loss = {config.alpha:g} x student_loss (cross-entropy with the labels) + "
              f"{1 - config.alpha:g} x distillation_loss (KL divergence of the teacher's and "
              f"student's softmax at T={config.temperature:g}, x T^2)", flush=True)
    return timed_fit(distiller, x, y, epochs, config.batch_size, verbose, what,
                     seed=config.seed, cached=cached)


def train_alone(student: Model, train: XY, config: DistillConfig, *, epochs: int | None = None,
                verbose: int = 1, what: str = "training alone") -> float:
    """Trains `student` on the labels alone with the distillation's optimizer, epochs, batch,
    shuffling and seed; returns the seconds spent."""
    x, y = train
    keras.utils.set_random_seed(config.seed)
    student.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    epochs = config.epochs if epochs is None else epochs
    return timed_fit(student, x, y, epochs, config.batch_size, verbose, what, seed=config.seed)


def timed_fit(model: Model, x: np.ndarray, y: np.ndarray, epochs: int, batch_size: int,
              verbose: int, what: str, seed: int = 0, cached: Any = None) -> float:
    """`model.fit` on `(x, y)` (plus a cached teacher's outputs), shuffled with `seed`, with one
    progress bar over the epochs (not one line per epoch); returns the seconds spent."""
    if verbose:
        print(f"[tfkd] {what}: {epochs} epochs on {len(x)} samples", flush=True)
    if cached is not None:
        data = cached.dataset(x, y)
    else:
        data = tf.data.Dataset.from_tensor_slices((x, y))
    data = data.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    # A live progress bar on a terminal; elsewhere (logs, pipes) one line when the stage ends.
    bar = verbose and sys.stdout.isatty()
    callbacks = [_EpochProgress(epochs)] if bar else []
    start = time.perf_counter()
    history = model.fit(data, epochs=epochs, verbose=0, callbacks=callbacks)
    seconds = time.perf_counter() - start
    if verbose and not bar:
        logs = {k: v[-1] for k, v in history.history.items()}
        shown = "".join(f", {k} {logs[k]:.4f}" for k in ("loss", "accuracy") if k in logs)
        print(f"       done in {seconds:.1f} s{shown}", flush=True)
    return seconds


class _EpochProgress(keras.callbacks.Callback):
    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.progbar = keras.utils.Progbar(epochs, unit_name="epoch")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        shown = [(k, logs[k]) for k in ("loss", "accuracy") if k in logs]
        self.progbar.update(epoch + 1, values=shown, finalize=epoch + 1 == self.progbar.target)


def check_xy(name: str, data: Any) -> tuple[np.ndarray, np.ndarray]:
    """`(x, y)` as NumPy arrays of the same length, or a `ValueError` that says what to pass."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError(
            f"`{name}` must be a pair `(x, y)` of arrays. Received: {name} of type "
            f"{type(data).__name__}. Pass e.g. `{name}=(x, y)`."
        )
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if x.ndim < 2 or y.ndim != 1 or len(x) != len(y) or len(x) == 0:
        raise ValueError(
            f"`{name}` must be `(x, y)` with x of shape (n, ...) and integer labels y of shape "
            f"(n,). Received: x of shape {x.shape}, y of shape {y.shape}."
        )
    return x.astype("float32", copy=False), y


def _config(name: str, value: Any, cls: type) -> Any:
    if value is False:
        return None
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, dict):
        fields = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise ValueError(
                f"`{name}` got unknown settings {unknown}. Received: {name}={value!r}. "
                f"Valid settings: {fields}."
            )
        return cls(**value)
    raise TypeError(
        f"`{name}` must be a `{cls.__name__}`, a dict of its fields, None or False. "
        f"Received: {name}={value!r} (of type {type(value).__name__})."
    )


def _save_model(model: Any, path: str) -> None:
    """Saves a Keras model atomically (the `.keras` suffix kept on the temporary file)."""
    from tfkd.export._atomic import atomic_file

    if not hasattr(model, "save"):
        return
    with atomic_file(path) as tmp:
        keras_tmp = tmp + ".keras"
        try:
            model.save(keras_tmp)
            os.replace(keras_tmp, tmp)
        finally:
            if os.path.exists(keras_tmp):
                os.remove(keras_tmp)
