"""benchmarks/run_all.py (`make bench`): finds every benchmark script, and builds BENCHMARKS.md
from the result files, each published anchor beside the figure measured."""

import importlib.util
import json
import os
import sys

BENCHMARKS = os.path.normpath(os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks"))


def _load(name):
    sys.path.insert(0, BENCHMARKS)
    try:
        spec = importlib.util.spec_from_file_location(name, os.path.join(BENCHMARKS, f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(BENCHMARKS)


def test_discovers_every_script_but_helpers_and_itself(tmp_path):
    run_all = _load("run_all")
    for name in ("a.py", "b.py", "_helper.py", "run_all.py", "notes.md"):
        (tmp_path / name).write_text('parser.add_argument("--quick")' if name == "a.py" else "")
    found = [p.name for p in run_all.discover(tmp_path)]
    assert found == ["a.py", "b.py"]
    assert run_all.supports_quick(tmp_path / "a.py")
    assert not run_all.supports_quick(tmp_path / "b.py")
    real = {p.name for p in run_all.discover()}
    assert "mnist_distill.py" in real and "run_all.py" not in real and "_common.py" not in real


def test_page_puts_anchors_beside_measured_figures(tmp_path, monkeypatch):
    run_all = _load("run_all")
    mnist = _load("mnist_distill")
    runs = [{"seed": 0, "labels": labels, "n_labels": n,
             "scratch": {"accuracy": 0.95, "errors": 50, "seconds": 1.0},
             "distilled": {"accuracy": 0.96, "errors": 40, "seconds": 1.0}, "errors_ratio": 0.8}
            for labels, n in (("all", 4000), ("10pct", 400))]
    means = {labels: {"scratch_accuracy": 0.95, "distilled_accuracy": 0.96, "scratch_errors": 50,
                      "distilled_errors": 40, "errors_ratio": 0.8, "target": target,
                      "met": 0.8 <= target}
             for labels, target in (("all", 0.8), ("10pct", 0.6))}
    result = {"command": "python benchmarks/mnist_distill.py", "machine": run_all.machine(),
              "data": {"source": "bundled", "train": 4000, "test": 1000},
              "settings": {"teacher_epochs": 10, "student_epochs": 20, "batch_size": 32,
                           "learning_rate": 0.002, "temperature": 8.0, "alpha": 0.1},
              "teacher_accuracy": 0.97, "teacher_errors": 30, "runs": runs, "means": means,
              "seconds": 12.0}
    (tmp_path / "mnist_distill.json").write_text(json.dumps(result))
    (tmp_path / "mnist_distill.md").write_text(mnist.to_markdown(result))
    page = run_all.benchmarks_page(tmp_path)
    assert "| keras.io KD example (full MNIST, 3 epochs) | teacher 97.81%" in page
    assert "teacher 97.00%, scratch 95.00%, distilled 96.00%" in page
    assert "teacher 67, scratch 146, distilled 74" in page
    assert "0.80x; target <= 0.8x met" in page
    assert "10% labels 0.80x (target <= 0.6x not met)" in page
    assert "DistilBERT" in page and "not run yet: `python benchmarks/transformers.py`" in page
    assert "### mnist_distill" in page and "| 0 | 10pct (400) | 95.00% | 96.00% | 50 | 40 |" in page
