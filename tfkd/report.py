"""`Report`: every stage of a compression path side by side, as a table, JSON and a plot."""

import json
import os

import numpy as np

from tfkd._keras import is_keras_model
from tfkd.export._atomic import atomic_file, write_text
from tfkd.runtime.base import ExportedModel, accuracy_and_agreement, class_ids, measure_latency

STAGE_KEYS = (
    "name",
    "kind",
    "accuracy",
    "accuracy_change",
    "agreement",
    "params",
    "bytes",
    "gzip_bytes",
    "sparsity",
    "latency_ms",
    "train_seconds",
)
_DERIVED = ("accuracy_change", "agreement")


class Report:
    """Stages of a compression path side by side: accuracy, size, sparsity, speed.

    Each `add` measures one stage (a Keras model, a `.tflite`/`.onnx` file or bytes, or a
    `TFLiteModel`/`ONNXModel`) on the same test data: accuracy, parameters, bytes, gzip bytes,
    sparsity of the weights and batch-1 latency. Against the reference stage (the teacher) it adds
    the accuracy change and the agreement (fraction of samples where both predict the same class).
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

    def __init__(self, title="tfkd report", reference="teacher"):
        if not isinstance(title, str):
            raise TypeError(f"`title` must be a string. Received: title={title!r}.")
        if reference is not None and not isinstance(reference, str):
            raise TypeError(
                f"`reference` must be a stage name or None. Received: reference={reference!r}."
            )
        self.title = title
        self.reference = reference
        self._stages = []
        self._predictions = {}
        self._given = {}

    @property
    def stages(self):
        """The stages in the order added: a list of dicts (copies)."""
        return [dict(stage) for stage in self._stages]

    def stage(self, name):
        """The stage called `name` (a copy)."""
        for stage in self._stages:
            if stage["name"] == name:
                return dict(stage)
        names = ", ".join(repr(s["name"]) for s in self._stages) or "none yet"
        raise KeyError(f"No stage named {name!r}. Stages: {names}.")

    def add(self, name, model_or_file=None, *, x=None, y=None, train_seconds=None, latency=True,
            **extra):
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
            latency: Whether to measure batch-1 latency (Keras: a direct call of the model;
                files: their runtime). Defaults to `True`.
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
        if is_keras_model(obj):
            info, runner = profile(obj), None
        elif isinstance(obj, ExportedModel):
            info, runner = profile(obj.data), obj
        elif isinstance(obj, (str, os.PathLike)) and is_keras_file(obj):
            info, runner = profile(obj), None
            obj = load_keras_file(os.fspath(obj))
        elif isinstance(obj, (str, os.PathLike, bytes, bytearray)):
            info = profile(obj)
            source = obj if info.format == "tflite" else os.fspath(obj)
            runner = TFLiteModel(source) if info.format == "tflite" else ONNXModel(source)
        else:
            raise TypeError(
                "`model_or_file` must be a Keras model, a .tflite/.onnx path, .tflite bytes, a "
                f"TFLiteModel or ONNXModel. Received: model_or_file={obj!r} (of type "
                f"{type(obj).__name__})."
            )
        values = {
            "kind": info.format,
            "params": info.params,
            "bytes": info.bytes,
            "gzip_bytes": info.gzip_bytes,
            "sparsity": info.sparsity,
        }
        if x is not None:
            outputs = runner.predict(x) if runner else obj.predict(x, verbose=0, batch_size=256)
            outputs = outputs[0] if isinstance(outputs, list) else outputs
            self._predictions[name] = class_ids(outputs)
            values["accuracy"] = accuracy_and_agreement(outputs, y)["accuracy"]
        if latency:
            values["latency_ms"] = _latency_ms(obj, runner, x)
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

    def to_dict(self):
        """`{"title": ..., "reference": ..., "stages": [...]}`."""
        return {"title": self.title, "reference": self.reference, "stages": self.stages}

    def to_json(self, path=None):
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
    def from_json(cls, path_or_text):
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

    def to_markdown(self, path=None):
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

    def plot(self, path):
        """Draws accuracy against gzip size (one labelled point per stage, log x) beside bars of
        gzip size and latency, and writes it as a PNG atomically.

        Args:
            path: The PNG file to write.

        Returns:
            `path`.
        """
        path = os.fspath(path)
        with atomic_file(path) as tmp:
            _draw(self.title, self.stages, self._reference_stage(), tmp)
        return path


def _latency_ms(obj, runner, x):
    if runner is not None:
        return runner.latency(batch=1, warmup=5, runs=50).median_ms
    if not obj.inputs and x is None:
        return None  # a subclassed model without data: no input shape to time with
    shape = tuple(obj.inputs[0].shape[1:]) if obj.inputs else np.asarray(x).shape[1:]
    sample = np.random.default_rng(0).random((1, *shape), dtype=np.float32)
    return measure_latency(lambda: obj(sample, training=False), 1, 5, 50, 0).median_ms


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
    ("bytes", "Bytes", lambda v: f"{v:,}"),
    ("gzip_bytes", "Gzip bytes", lambda v: f"{v:,}"),
    ("smaller", "Gzip smaller", lambda v: f"{v:.1f}x"),
    ("sparsity", "Sparsity", lambda v: f"{100 * v:.0f}%"),
    ("latency_ms", "Latency b=1", lambda v: f"{v:.3f} ms"),
    ("train_seconds", "Train", lambda v: f"{v:.1f} s"),
)


def _with_ratio(stages, reference):
    base = reference.get("gzip_bytes") if reference else None
    rows = []
    for stage in stages:
        gz = stage.get("gzip_bytes")
        rows.append({**stage, "smaller": base / gz if base and gz else None})
    return rows


def _markdown_table(title, stages, reference):
    rows = _with_ratio(stages, reference)
    columns = [c for c in _COLUMNS if any(r.get(c[0]) is not None for r in rows)]
    lines = [f"# {title}", ""]
    if reference:
        lines += [f"Reference: **{reference['name']}**.", ""]
    lines.append("| Stage | Kind | " + " | ".join(header for _, header, _ in columns) + " |")
    lines.append("|---|---|" + "---:|" * len(columns))
    for row in rows:
        cells = [fmt(row[key]) if row.get(key) is not None else "-" for key, _, fmt in columns]
        lines.append(f"| {row['name']} | {row.get('kind') or '-'} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _draw(title, stages, reference, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _with_ratio(stages, reference)
    sized = [r for r in rows if r.get("gzip_bytes")]
    timed = [r for r in rows if r.get("latency_ms")]
    bars = [b for b in (sized and "size", timed and "time") if b]
    fig = plt.figure(figsize=(11, 4.6 + (0.32 * len(rows) + 1.2 if bars else 0)))
    grid = fig.add_gridspec(2 if bars else 1, max(len(bars), 1),
                            height_ratios=[4.6, 0.32 * len(rows) + 1.2] if bars else [1])
    colors = {r["name"]: plt.cm.tab10(i % 10) for i, r in enumerate(rows)}
    _draw_tradeoff(fig.add_subplot(grid[0, :]), rows, reference, colors)
    names = [r["name"] for r in rows]
    for column, kind in enumerate(bars):
        ax = fig.add_subplot(grid[1, column])
        if kind == "size":
            labels = [
                " reference" if reference and r["name"] == reference["name"]
                else (f" {r['smaller']:.1f}x smaller" if (r.get("smaller") or 0) >= 1
                      else f" {1 / r['smaller']:.1f}x larger" if r.get("smaller") else "")
                for r in sized
            ]
            _draw_bars(ax, sized, names, "gzip_bytes", 1 / 1024, "gzip size (KiB)", colors,
                       labels)
            ax.set_title("Download size")
        else:
            labels = [f" {r['latency_ms']:.3g} ms" for r in timed]
            _draw_bars(ax, timed, names, "latency_ms", 1.0, "batch-1 latency (ms)", colors,
                       labels)
            ax.set_title("Speed (one sample)")
        if column:
            ax.tick_params(labelleft=False)
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)


def _draw_bars(ax, rows, names, key, scale, label, colors, texts):
    """Horizontal bars, one row per stage in `names` (stages without a value leave a gap)."""
    from matplotlib.ticker import FuncFormatter

    values = [r[key] * scale for r in rows]
    positions = [names.index(r["name"]) for r in rows]
    ax.barh(positions, values, color=[colors[r["name"]] for r in rows])
    ax.set_yticks(range(len(names)), names)
    ax.set_ylim(len(names) - 0.5, -0.5)
    if max(values) / max(min(values), 1e-12) > 20:
        ax.set_xscale("log")
        label += ", log"
    ax.set_xlim(right=max(values) * (8 if ax.get_xscale() == "log" else 1.45))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel(label)
    for position, value, text in zip(positions, values, texts, strict=True):
        ax.text(value, position, text, va="center", fontsize=8)


def _draw_tradeoff(ax, rows, reference, colors):
    from matplotlib.ticker import FuncFormatter, LogLocator

    points = [r for r in rows if r.get("gzip_bytes") and r.get("accuracy") is not None]
    for r in points:
        xy = (r["gzip_bytes"] / 1024, 100 * r["accuracy"])
        ax.scatter(*xy, s=70, color=colors[r["name"]], zorder=3, edgecolor="black", linewidth=0.5)
    for i, group in enumerate(_nearby_groups(points)):
        xy = (group[0]["gzip_bytes"] / 1024, 100 * group[0]["accuracy"])
        offset = (8, 5) if i % 2 == 0 else (8, -13)  # alternate so neighbours do not overlap
        ax.annotate(" + ".join(r["name"] for r in group), xy, textcoords="offset points",
                    xytext=offset, fontsize=9)
    if reference and reference.get("accuracy") is not None:
        ax.axhline(100 * reference["accuracy"], color="grey", linestyle="--", linewidth=1,
                   label=f"{reference['name']} accuracy")
        ax.legend(loc="lower right", fontsize=8)
    if points:
        ax.set_xscale("log")
        sizes = [r["gzip_bytes"] / 1024 for r in points]
        ax.set_xlim(min(sizes) / 1.6, max(sizes) * 2.2)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        accuracies = [100 * r["accuracy"] for r in points]
        middle, span = (max(accuracies) + min(accuracies)) / 2, max(accuracies) - min(accuracies)
        half = max(span * 0.6, 1.0)  # at least 2 points tall, so noise does not look like a cliff
        ax.set_ylim(middle - half, middle + half)
    else:
        ax.text(0.5, 0.5, "no stage has both accuracy and size", ha="center",
                transform=ax.transAxes)
    ax.set_xlabel("gzip size (KiB, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy against size (up and left is better)")
    ax.grid(True, which="both", alpha=0.3)


def _nearby_groups(points):
    """Points that would share a label spot (within 15% in size and 0.05 points), grouped."""
    groups = []
    for point in sorted(points, key=lambda r: r["gzip_bytes"]):
        last = groups[-1][0] if groups else None
        if (last and point["gzip_bytes"] <= 1.15 * last["gzip_bytes"]
                and abs(point["accuracy"] - last["accuracy"]) <= 0.0005):
            groups[-1].append(point)
        else:
            groups.append([point])
    return groups
