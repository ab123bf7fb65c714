"""`Report`: every stage of a compression path side by side, as a table, JSON and a plot."""

import json
import os
from typing import Any

import numpy as np

from tfkd._keras import is_keras_model
from tfkd.export._atomic import atomic_file, write_text
from tfkd.runtime.base import ExportedModel, accuracy_and_agreement, class_ids

STAGE_KEYS = (
    "name",
    "kind",
    "accuracy",
    "accuracy_change",
    "agreement",
    "params",
    "flops",
    "file",
    "bytes",
    "gzip_bytes",
    "sparsity",
    "latency_us",
    "train_seconds",
)
_DERIVED = ("accuracy_change", "agreement")


class Report:
    """Stages of a compression path side by side: accuracy, size, sparsity, speed.

    Each `add` measures one stage (a Keras model, a `.tflite`/`.onnx` file or bytes, or a
    `TFLiteModel`/`ONNXModel`) on the same test data: accuracy, parameters, bytes, gzip bytes,
    sparsity of the weights and batch-1 latency. Against the reference stage (the teacher) it adds
    the accuracy change and the agreement (fraction of samples where both predict the same class).

    Like is compared with like: a Keras stage is measured as a device would run it, converted to a
    float32 `.tflite` whose size is its `bytes` and whose batch-1 time is its `latency_us`, under
    the same interpreter settings as every `.tflite` stage (LiteRT with XNNPACK, 1 thread, 20
    warm-up calls, median of 200). `file` says which file `bytes` and `latency_us` are of.
    Stages are dicts with the keys of `STAGE_KEYS` (missing values are `None`) plus any extra
    values given to `add`.

    Args:
        title: Title of the table and plot. Defaults to `"tfkd report"`.
        reference: Name of the stage the others are compared with; the first stage added when no
            stage has that name. Defaults to `"teacher"`.

    Example:
    >>> report = tfkd.Report()
    >>> report.add("teacher", teacher, x=x_test, y=y_test)
    >>> report.add("int8-tflite", "student_int8.tflite", x=x_test, y=y_test)
    >>> print(report.to_markdown())
    >>> report.plot("report.png")
    """

    def __init__(self, title: str = "tfkd report", reference: Any = "teacher") -> None:
        if not isinstance(title, str):
            raise TypeError(f"`title` must be a string. Received: title={title!r}.")
        if reference is not None and not isinstance(reference, str):
            raise TypeError(
                f"`reference` must be a stage name or None. Received: reference={reference!r}."
            )
        self.title = title
        self.reference = reference
        self._stages: list[dict[str, Any]] = []
        self._predictions: dict[str, Any] = {}
        self._given: dict[str, Any] = {}

    @property
    def stages(self) -> list[dict[str, Any]]:
        """The stages in the order added: a list of dicts (copies)."""
        return [dict(stage) for stage in self._stages]

    def stage(self, name: str | None) -> dict[str, Any]:
        """The stage called `name` (a copy)."""
        for stage in self._stages:
            if stage["name"] == name:
                return dict(stage)
        names = ", ".join(repr(s["name"]) for s in self._stages) or "none yet"
        raise KeyError(f"No stage named {name!r}. Stages: {names}.")

    def add(
        self,
        name: str | None,
        model_or_file: Any = None,
        *,
        x: Any = None,
        y: Any = None,
        train_seconds: float | None = None,
        latency: bool = True,
        **extra: Any,
    ) -> dict[str, Any]:
        """Measures one stage and adds it (replacing a stage of the same name).

        Args:
            name: The stage's name, e.g. `"teacher"`, `"distilled"`, `"int8-tflite"`.
            model_or_file: A Keras model or saved model (`.keras`, `.h5`, SavedModel folder), a
                path to a `.tflite`/`.onnx` file, `.tflite` bytes, a
                `tfkd.TFLiteModel`/`tfkd.ONNXModel`, or `None` to record only given values.
                Defaults to `None`.
            x: Test inputs for accuracy and agreement. Defaults to `None` (not measured).
            y: Test labels for accuracy. Defaults to `None`.
            train_seconds: Training time of this stage in seconds. Defaults to `None`.
            latency: Whether to measure batch-1 latency in microseconds (a Keras model as its
                float32 `.tflite`; files in their runtime). Defaults to `True`.
            **extra: Further values to record (JSON-able), e.g. `epochs=30`. A key of
                `STAGE_KEYS` (such as `accuracy=0.97`) overrides what was measured.

        Returns:
            The stage, a dict.
        """
        if not isinstance(name, str) or not name:
            raise TypeError(f"`name` must be a non-empty string. Received: name={name!r}.")
        stage = dict.fromkeys(STAGE_KEYS)
        stage.update(name=name, train_seconds=train_seconds)
        if model_or_file is not None:
            stage.update(self._measure(model_or_file, name, x, y, latency))
        stage.update(_jsonable(extra))
        self._given[name] = {k for k in extra if k in _DERIVED}
        self._stages = [s for s in self._stages if s["name"] != name] + [stage]
        self._update_relative()
        return dict(stage)

    def _measure(self, obj, name, x, y, latency):
        from tfkd.profile import is_keras_file, load_keras_file, profile
        from tfkd.runtime.onnx import ONNXModel
        from tfkd.runtime.tflite import TFLiteModel

        if hasattr(obj, "student") and is_keras_model(getattr(obj, "student", None)):
            obj = obj.student  # a Distiller: its student is the stage
        file, source = None, "the model"
        if isinstance(obj, (str, os.PathLike)) and is_keras_file(obj):
            source = os.path.basename(os.fspath(obj))
            obj = load_keras_file(os.fspath(obj))
        if is_keras_model(obj):
            info, runner, file = profile(obj), None, f"weights of {source} (in memory)"
            device_file = float32_tflite(obj)
            if device_file is not None:
                runner, file = TFLiteModel(device_file), f"{tflite_kind(obj)} of {source}"
                size = profile(device_file)
                info.bytes, info.gzip_bytes = size.bytes, size.gzip_bytes
        elif isinstance(obj, ExportedModel):
            info, runner, file = profile(obj.data), obj, obj.source
        elif isinstance(obj, (str, os.PathLike, bytes, bytearray)):
            info = profile(obj)
            source = obj if info.format == "tflite" else os.fspath(obj)
            runner = TFLiteModel(source) if info.format == "tflite" else ONNXModel(source)
            file = runner.source if isinstance(source, bytes) else os.path.basename(source)
        else:
            raise TypeError(
                "`model_or_file` must be a Keras model, a .tflite/.onnx path, .tflite bytes, a "
                f"TFLiteModel or ONNXModel. Received: model_or_file={obj!r} (of type "
                f"{type(obj).__name__})."
            )
        values = {
            "kind": info.format,
            "params": info.params,
            "flops": info.flops,
            "file": file,
            "bytes": info.bytes,
            "gzip_bytes": info.gzip_bytes,
            "sparsity": info.sparsity,
        }
        if x is not None:
            predictor = obj if is_keras_model(obj) else runner  # accuracy of the model itself
            outputs = (predictor.predict(x, verbose=0, batch_size=256) if predictor is obj
                       else predictor.predict(x))
            outputs = outputs[0] if isinstance(outputs, list) else outputs
            self._predictions[name] = class_ids(outputs)
            values["accuracy"] = accuracy_and_agreement(outputs, y)["accuracy"]
        if latency and runner is not None:
            values["latency_us"] = device_latency_us(runner)
        return values

    def _reference_stage(self):
        for stage in self._stages:
            if stage["name"] == self.reference:
                return stage
        return self._stages[0] if self._stages else None

    def _update_relative(self):
        reference = self._reference_stage()
        if reference is None:
            return
        expected = self._predictions.get(reference["name"])
        for stage in self._stages:
            given = self._given.get(stage["name"], set())
            if "accuracy_change" not in given:
                both = stage["accuracy"] is not None and reference["accuracy"] is not None
                stage["accuracy_change"] = (
                    stage["accuracy"] - reference["accuracy"] if both else stage["accuracy_change"]
                )
            mine = self._predictions.get(stage["name"])
            if "agreement" not in given and mine is not None and expected is not None:
                if len(mine) == len(expected):
                    stage["agreement"] = float(np.mean(mine == expected))

    # Output ------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """`{"title": ..., "reference": ..., "stages": [...]}`."""
        return {"title": self.title, "reference": self.reference, "stages": self.stages}

    def to_json(self, path: str | os.PathLike[str] | None = None) -> Any:
        """The report as JSON (`{"stages": [...], ...}`), written atomically to `path` if given.

        Args:
            path: File to write, or `None` to only return the text. Defaults to `None`.

        Returns:
            The JSON text.
        """
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            write_text(path, text + "\n")
        return text

    @classmethod
    def from_json(cls, path_or_text: str) -> "Report":
        """A report read back from `to_json`'s output (a path or the JSON text).

        Also reads `{"stages": [{"name": ..., "accuracy": ...}, ...]}` written by other tools:
        missing keys become `None`.
        """
        text = os.fspath(path_or_text)
        if not text.lstrip().startswith(("{", "[")):
            with open(text, encoding="utf-8") as f:
                text = f.read()
        data = json.loads(text)
        stages = data if isinstance(data, list) else data.get("stages")
        if not isinstance(stages, list):
            raise ValueError(
                'A report must be JSON holding {"stages": [...]}. Received: '
                f"{str(path_or_text)[:200]!r}."
            )
        meta = data if isinstance(data, dict) else {}
        report = cls(meta.get("title", "tfkd report"), meta.get("reference", "teacher"))
        for stage in stages:
            if not isinstance(stage, dict) or "name" not in stage:
                raise ValueError(f"Every stage needs a 'name'. Received: stage={stage!r}.")
            report._stages.append({**dict.fromkeys(STAGE_KEYS), **stage})
            report._given[stage["name"]] = {k for k in _DERIVED if stage.get(k) is not None}
        report._update_relative()
        return report

    def to_markdown(self, path: str | os.PathLike[str] | None = None) -> str:
        """The stages as a Markdown table (written atomically to `path` if given).

        Args:
            path: File to write, or `None` to only return the text. Defaults to `None`.

        Returns:
            The Markdown text.
        """
        text = _markdown_table(self.title, self.stages, self._reference_stage())
        if path is not None:
            write_text(path, text)
        return text

    def __str__(self):
        return self.to_markdown()

    def __repr__(self):
        return f"Report(title={self.title!r}, stages={[s['name'] for s in self._stages]})"

    def plot(self, path: str | os.PathLike[str]) -> Any:
        """Draws accuracy against gzip size (one labelled point per stage, log x) beside bars of
        gzip size and latency, and writes it as a PNG atomically.

        Args:
            path: The PNG file to write.

        Returns:
            `path`.
        """
        from tfkd.report_plot import draw_report

        path = os.fspath(path)
        reference = self._reference_stage()
        with atomic_file(path) as tmp:
            draw_report(self.title, with_size_ratio(self.stages, reference), reference, tmp)
        return path


def float32_tflite(model):
    """The model as a float32 `.tflite` (bytes), what a device would run; `None` if it cannot be
    converted (e.g. a subclassed model without known inputs)."""
    from tfkd.export.tflite import to_tflite

    if not model.inputs:
        return None
    try:
        return to_tflite(model, quantization="float32", check=False)
    except (ValueError, TypeError):
        return None


def tflite_kind(model: Any) -> str:
    """What `float32_tflite(model)` holds: a QAT model's file already has int8 weights."""
    from tfkd.optimize.wrappers import is_quantization_layer, wrapped_layers

    if wrapped_layers(model, is_quantization_layer):
        return "float32-I/O .tflite with int8 weights (QAT)"
    return "float32 .tflite"


def device_latency_us(runner):
    """Median batch-1 time in microseconds, the same settings for every stage: 1 thread (the
    file's own runtime, XNNPACK for LiteRT), 20 untimed calls first, median of 200."""
    if runner.threads != 1:
        runner = type(runner)(runner.data, threads=1)
    return runner.latency(batch=1, warmup=20, runs=200).median_ms * 1000.0


def _jsonable(values):
    def convert(value):
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
        return value

    return {k: convert(v) for k, v in values.items()}


# Formatting --------------------------------------------------------------------------------------

_COLUMNS = (  # (key, header, format)
    ("accuracy", "Accuracy", lambda v: f"{100 * v:.2f}%"),
    ("accuracy_change", "vs reference", lambda v: f"{100 * v:+.2f} pts"),
    ("agreement", "Agreement", lambda v: f"{100 * v:.1f}%"),
    ("params", "Params", lambda v: f"{v:,}"),
    ("flops", "MFLOPs", lambda v: f"{v / 1e6:,.2f}"),
    ("bytes", "Bytes", lambda v: f"{v:,}"),
    ("gzip_bytes", "Gzip bytes", lambda v: f"{v:,}"),
    ("smaller", "Gzip smaller", lambda v: f"{v:.1f}x"),
    ("sparsity", "Sparsity", lambda v: f"{100 * v:.0f}%"),
    ("latency_us", "Latency b=1 (.tflite/.onnx)", lambda v: f"{v:,.0f} us"),
    ("train_seconds", "Train", lambda v: f"{v:.1f} s"),
)


def with_size_ratio(stages, reference):
    """The stages, each with `smaller`: how many times smaller its gzip is than the reference's."""
    base = reference.get("gzip_bytes") if reference else None
    rows = []
    for stage in stages:
        gz = stage.get("gzip_bytes")
        rows.append({**stage, "smaller": base / gz if base and gz else None})
    return rows


def _markdown_table(title, stages, reference):
    rows = with_size_ratio(stages, reference)
    columns = [c for c in _COLUMNS if any(r.get(c[0]) is not None for r in rows)]
    lines = [f"# {title}", ""]
    if reference:
        lines += [f"Reference: **{reference['name']}**.", ""]
    lines.append("| Stage | Kind | " + " | ".join(header for _, header, _ in columns) + " |")
    lines.append("|---|---|" + "---:|" * len(columns))
    for row in rows:
        cells = [fmt(row[key]) if row.get(key) is not None else "-" for key, _, fmt in columns]
        lines.append(f"| {row['name']} | {row.get('kind') or '-'} | " + " | ".join(cells) + " |")
    files = {}  # which file each stage's bytes and latency are of, stages grouped by it
    for row in rows:
        if row.get("file"):
            files.setdefault(row["file"], []).append(row["name"])
    if files:
        lines += ["", "Bytes, gzip bytes and latency are those of: " + "; ".join(
            f"{', '.join(names)}: {file}" for file, names in files.items()) + "."]
    return "\n".join(lines) + "\n"
