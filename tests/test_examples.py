"""The tutorial in examples/ runs top to bottom (small: `QUICK=1`) and writes what it says."""

import os
import runpy

EXAMPLES = os.path.join(os.path.dirname(__file__), os.pardir, "examples")


def test_distill_and_compress_example_runs_quick(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("QUICK", "1")
    monkeypatch.setenv("OUT_DIR", str(tmp_path))
    namespace = runpy.run_path(os.path.join(EXAMPLES, "distill_and_compress.py"),
                               run_name="__main__")
    out = capsys.readouterr().out
    # No network here: the MNIST download fails and the bundled digits take over.
    assert namespace["dataset"] in ("digits", "mnist")
    assert "all int8, int8 input and output" in out
    assert "| int8-tflite |" in out and "compress(): int8 .tflite" in out
    report = namespace["report"]
    assert [s["name"] for s in report.stages][:3] == ["teacher", "student", "distilled"]
    assert report.stage("pruned")["sparsity"] >= 0.79
    for name in ("student_int8.tflite", "student_float32.tflite", "student.onnx", "report.png",
                 os.path.join("compress", "report.json")):
        assert (tmp_path / name).exists(), name
