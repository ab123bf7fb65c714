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
    # The data set the example says it loaded is the one it trained on (without network MNIST
    # may be unavailable and the bundled digits take over).
    shapes = {"digits": (8, 8, 1), "mnist": (28, 28, 1)}
    dataset = namespace["dataset"]
    assert dataset in shapes and f"{dataset} {namespace['x_train'].shape}" in out
    assert namespace["x_train"].shape[1:] == namespace["teacher"].input_shape[1:] == shapes[dataset]
    assert "all int8, int8 input and output" in out
    assert "| int8-tflite |" in out and "compress(): int8 .tflite" in out
    report = namespace["report"]
    assert [s["name"] for s in report.stages][:3] == ["teacher", "student", "distilled"]
    assert report.stage("pruned")["sparsity"] >= 0.79
    for name in ("student_int8.tflite", "student_float32.tflite", "student.onnx", "report.png",
                 os.path.join("compress", "report.json")):
        assert (tmp_path / name).exists(), name
