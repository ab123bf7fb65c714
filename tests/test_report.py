"""`tfkd.Report`: stages measured side by side, compared with the reference, written as JSON,
Markdown and a PNG, and read back."""

import json
import os

import numpy as np
import pytest
from _export_cases import digits, tflite, trained_cnn

import tfkd
from tfkd.report import STAGE_KEYS


@pytest.fixture(scope="module")
def report():
    _, (x_test, y_test) = digits()
    report = tfkd.Report(title="tiny path")
    report.add("teacher", trained_cnn(), x=x_test, y=y_test, train_seconds=1.5)
    report.add("int8-tflite", tflite("int8"), x=x_test, y=y_test)
    report.add("given", accuracy=0.5, params=10, gzip_bytes=100)
    return report


def test_stages_hold_every_key_measured(report):
    teacher, int8, given = report.stages
    assert set(STAGE_KEYS) <= set(teacher) and teacher["kind"] == "keras"
    _, (x_test, y_test) = digits()
    expected = np.mean(trained_cnn().predict(x_test, verbose=0).argmax(-1) == y_test)
    assert teacher["accuracy"] == pytest.approx(expected)
    assert teacher["agreement"] == 1.0 and teacher["accuracy_change"] == 0.0
    assert teacher["params"] == 2186 and teacher["train_seconds"] == 1.5
    assert teacher["latency_us"] > 0 and teacher["sparsity"] == 0.0
    assert teacher["file"] == "float32 .tflite of the model"
    assert teacher["bytes"] == len(tflite("float32"))  # measured as a device runs it
    assert int8["kind"] == "tflite" and int8["bytes"] == len(tflite("int8"))
    assert int8["accuracy_change"] == pytest.approx(int8["accuracy"] - teacher["accuracy"])
    assert 0.9 <= int8["agreement"] <= 1.0 and int8["latency_us"] > 0
    assert given["accuracy"] == 0.5 and given["accuracy_change"] == pytest.approx(0.5 - expected)
    assert given["agreement"] is None and given["latency_us"] is None


def test_json_round_trip(report, tmp_path):
    path = tmp_path / "report.json"
    text = report.to_json(path)
    assert json.loads(path.read_text()) == json.loads(text)
    assert json.loads(text)["stages"][0]["name"] == "teacher"
    again = tfkd.Report.from_json(path)
    assert again.stages == report.stages and again.title == "tiny path"
    assert tfkd.Report.from_json(text).stages == report.stages


def test_reads_the_demo_schema_with_missing_keys(tmp_path):
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"stages": [
        {"name": "teacher", "accuracy": 0.98, "params": 165000, "train_seconds": 40.0},
        {"name": "distilled", "accuracy": 0.95, "params": 4810, "train_seconds": 12.0},
    ]}))
    report = tfkd.Report.from_json(path)
    distilled = report.stage("distilled")
    assert distilled["gzip_bytes"] is None and distilled["latency_us"] is None
    assert distilled["accuracy_change"] == pytest.approx(-0.03)
    assert "| distilled | - | 95.00% | -3.00 pts |" in report.to_markdown()


def test_markdown_table(report, tmp_path):
    text = report.to_markdown(tmp_path / "report.md")
    assert (tmp_path / "report.md").read_text() == text == str(report)
    lines = text.splitlines()
    assert lines[0] == "# tiny path"
    header = next(line for line in lines if line.startswith("| Stage"))
    assert "Accuracy" in header and "Gzip bytes" in header and "Latency b=1" in header
    assert ("Bytes, gzip bytes and latency are those of: teacher: float32 .tflite of the model; "
            "int8-tflite: <.tflite bytes>.") in text
    row = next(line for line in lines if line.startswith("| int8-tflite |"))
    smaller = report.stage("teacher")["gzip_bytes"] / report.stage("int8-tflite")["gzip_bytes"]
    assert f"{smaller:.1f}x" in row


def test_plot_writes_a_png(report, tmp_path):
    path = report.plot(tmp_path / "report.png")
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path) == ["report.png"]


def test_keras_and_tflite_stages_are_timed_alike(report):
    """Both latencies come from a .tflite under one interpreter setting: the float32 teacher and
    its int8 file are within 10x of each other, not the 1,000x a Python call beside an invoke
    shows."""
    teacher, int8 = report.stage("teacher"), report.stage("int8-tflite")
    assert 0.1 < teacher["latency_us"] / int8["latency_us"] < 10


def test_plot_labels_do_not_overlap(tmp_path):
    """Eight stages at nearly the same size and accuracy: every label gets its own box."""
    from tfkd.report_plot import draw_report, label_boxes

    rows = [{"name": f"stage-{i}", "accuracy": 0.95 + 0.0006 * (i % 2),
             "gzip_bytes": 1000 * 1.03**i, "latency_us": 10.0 + i, "smaller": 1.0}
            for i in range(8)]
    figure = draw_report("crowded", rows, rows[0], tmp_path / "p.png")
    boxes = label_boxes(figure)
    assert len(boxes) >= 2
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), (a, b)


def test_a_saved_keras_file_is_a_stage(report, tmp_path):
    _, (x_test, y_test) = digits()
    trained_cnn().save(tmp_path / "teacher.keras")
    stage = tfkd.Report().add("saved", tmp_path / "teacher.keras", x=x_test, y=y_test,
                              latency=False)
    assert stage["kind"] == "keras" and stage["params"] == 2186
    assert stage["file"] == "float32 .tflite of teacher.keras"
    assert stage["bytes"] == len(tflite("float32"))
    assert stage["accuracy"] == report.stage("teacher")["accuracy"]


def test_reference_falls_back_to_the_first_stage_and_stages_replace():
    report = tfkd.Report(reference="teacher")
    report.add("student", accuracy=0.9)
    report.add("int8", accuracy=0.88)
    assert report.stage("int8")["accuracy_change"] == pytest.approx(-0.02)
    report.add("teacher", accuracy=0.95)  # the named reference, once added, takes over
    assert report.stage("int8")["accuracy_change"] == pytest.approx(-0.07)
    report.add("int8", accuracy=0.9)
    assert [s["name"] for s in report.stages] == ["student", "teacher", "int8"]


def test_bad_arguments():
    report = tfkd.Report()
    with pytest.raises(TypeError, match="Received: name=3"):
        report.add(3)
    with pytest.raises(TypeError, match="Received: model_or_file=1.5"):
        report.add("x", 1.5)
    with pytest.raises(KeyError, match="No stage named 'nope'"):
        report.stage("nope")
    with pytest.raises(ValueError, match="stages"):
        tfkd.Report.from_json('{"rows": []}')
    with pytest.raises(TypeError, match="Received: title=1"):
        tfkd.Report(title=1)
