"""Published anchors beside tfkd's measured figures, for BENCHMARKS.md (used by run_all.py).

Each anchor is a published figure (with its source) and the tfkd figure that answers it, read
from `results/*.json` when the benchmark that measures it has run; otherwise the row says which
script to run.
"""

import json

KERAS_IO = {"teacher": 97.81, "scratch": 97.78, "distilled": 96.92}  # % test accuracy, full MNIST
HINTON = {"teacher": 67, "scratch": 146, "distilled": 74}  # test errors of 10,000, full MNIST
# TF-MOT's "Quantization aware training" overview page, ImageNet top-1 (float -> 8-bit QAT).
TFMOT_QAT = {"MobileNetV1 224": (71.03, 71.06), "ResNet v1 50": (76.3, 76.1),
             "MobileNetV2 224": (70.77, 70.01)}
DISTILBERT = "97% of BERT-base's GLUE score with 40% fewer parameters (60% of the size)"


def _load(results, name):
    try:
        return json.loads((results / f"{name}.json").read_text())
    except (OSError, ValueError):
        return None


def anchors_table(results):
    """Markdown lines: one row per anchor, published figure against tfkd's."""
    lines = ["| Anchor | Published | tfkd, measured | Where |", "|---|---|---|---|"]
    lines += _mnist_rows(_load(results, "mnist_distill"))
    lines.append(
        "| TF-MOT QAT (ImageNet top-1, float -> 8-bit) | "
        + "; ".join(f"{k}: {a:.2f}% -> {b:.2f}%" for k, (a, b) in TFMOT_QAT.items())
        + f" | {_demo_qat(_load(results, 'demo'))} | [demo](#demo), [compression](#compression) |")
    transformers = _load(results, "transformers")
    measured = _transformer_summary(transformers) if transformers else (
        "not run yet: `python benchmarks/transformers.py`")
    lines.append(f"| DistilBERT (Sanh et al., 2019) | {DISTILBERT} | {measured} | "
                 "[transformers](#transformers) |")
    return lines


def _demo_qat(report):
    """The demo's float (pruned) -> QAT -> int8 `.tflite` accuracies, from results/demo.json."""
    if report is None:
        return "not recorded: run `make demo`, copy report.json to results/demo.json"
    accuracy = {s["name"]: s["accuracy"] for s in report["stages"]}
    names = ("pruned", "qat", "int8-tflite")
    if not all(accuracy.get(n) is not None for n in names):
        return "see the demo section"
    return ("keras.io student on bundled MNIST, 80% pruned: float "
            + " -> ".join(f"{100 * accuracy[n]:.2f}% ({n})" for n in names[1:]).join(
                [f"{100 * accuracy['pruned']:.2f}% -> ", ""]))


def _mnist_rows(result):
    where = "[mnist_distill](#mnist_distill)"
    if result is None:
        missing = "not run yet: `python benchmarks/mnist_distill.py`"
        return [f"| keras.io KD example (full MNIST) | teacher {KERAS_IO['teacher']}%, scratch "
                f"{KERAS_IO['scratch']}%, distilled {KERAS_IO['distilled']}% | {missing} | "
                f"{where} |",
                f"| Hinton et al. 2015 (full MNIST, errors) | {HINTON['teacher']} / "
                f"{HINTON['scratch']} / {HINTON['distilled']} | {missing} | {where} |"]
    mean = result["means"]["all"]
    few = result["means"]["10pct"]
    n = result["data"]["test"]
    data = f"{result['data']['source']} MNIST, {result['data']['train']:,} train, {n:,} test"
    seeds = len({r["seed"] for r in result["runs"]})
    return [
        f"| keras.io KD example (full MNIST, 3 epochs) | teacher {KERAS_IO['teacher']}%, "
        f"scratch {KERAS_IO['scratch']}%, distilled {KERAS_IO['distilled']}% (distilled "
        f"{KERAS_IO['distilled'] - KERAS_IO['scratch']:+.2f} pts) | teacher "
        f"{100 * result['teacher_accuracy']:.2f}%, scratch {100 * mean['scratch_accuracy']:.2f}%, "
        f"distilled {100 * mean['distilled_accuracy']:.2f}% (mean of {seeds} seeds; {data}) | "
        f"{where} |",
        f"| Hinton et al. 2015 (full MNIST, test errors of 10,000) | teacher {HINTON['teacher']}, "
        f"scratch {HINTON['scratch']}, distilled {HINTON['distilled']} (0.51x) | errors of "
        f"{n:,}: teacher {result['teacher_errors']}, scratch {mean['scratch_errors']:.1f}, "
        f"distilled {mean['distilled_errors']:.1f} ({mean['errors_ratio']:.2f}x; target <= "
        f"{mean['target']}x {'met' if mean['met'] else 'not met'}); 10% labels "
        f"{few['errors_ratio']:.2f}x (target <= {few['target']}x "
        f"{'met' if few['met'] else 'not met'}) | {where} |",
    ]


def _transformer_summary(result):
    """The DistilBERT-style student against its teacher, per task, from transformers.json."""
    parts = []
    for task, stages in (result.get("summary") or {}).items():
        teacher, student = stages.get("teacher/float32"), stages.get("distilbert/float32")
        if not (teacher and student):
            continue
        parts.append(f"{task}: {100 * student['of_teacher']:.1f}% of the teacher's accuracy at "
                     f"{100 * student['params'] / teacher['params']:.0f}% of its parameters")
    seeds = result.get("seeds")
    return "; ".join(parts) + (f" ({seeds} seed{'s' if seeds != 1 else ''})" if seeds else "") \
        if parts else "see the section below"
