"""`tfkd.compress` (the whole path in one call), its configs, `tfkd.models.shrink` and the data-file
readers the command line uses."""

import json
import tempfile

import numpy as np
import pytest

import tfkd
from tfkd.cli.datafiles import check_input_shape, load_data, load_inputs, load_test_data


@pytest.fixture(scope="module")
def small_digits(digits):
    """300 training and 300 test digits: enough for a few epochs to mean something."""
    (x_train, y_train), (x_test, y_test) = digits
    return (x_train[:300], y_train[:300]), (x_test[:300], y_test[:300])


def test_compress_walks_the_whole_path(trained_teacher, small_digits, tmp_path):
    train, val = small_digits
    teacher_weights = [w.copy() for w in trained_teacher.get_weights()]
    tfkd.keras.utils.set_random_seed(0)
    report = tfkd.compress(
        trained_teacher, tfkd.models.build_student(), train, val,
        distill={"epochs": 10, "learning_rate": 5e-3},
        prune=tfkd.PruneConfig(target_sparsity=0.8, epochs=3),
        quantize={"epochs": 1},
        export={"formats": ("float32-tflite", "int8-tflite", "onnx"), "latency": False},
        out_dir=tmp_path, verbose=0,
    )
    names = [s["name"] for s in report.stages]
    assert names == ["teacher", "distilled", "pruned", "qat", "float32-tflite", "int8-tflite",
                     "onnx"]
    stages = {s["name"]: s for s in report.stages}
    for name in ("pruned", "qat", "float32-tflite", "int8-tflite", "onnx"):
        assert stages[name]["sparsity"] >= 0.79, name  # the zeros survive QAT and export
    assert stages["distilled"]["train_seconds"] > 0 and stages["pruned"]["train_seconds"] > 0
    assert stages["distilled"]["accuracy"] > 0.5  # it learned (10 classes: chance is 0.1)
    # The int8 file computes in integers only and agrees with the QAT model it came from.
    assert tfkd.profile(str(tmp_path / "student_int8.tflite")).all_int8
    assert abs(stages["int8-tflite"]["accuracy"] - stages["qat"]["accuracy"]) <= 0.02
    assert stages["onnx"]["accuracy"] == pytest.approx(stages["float32-tflite"]["accuracy"])
    written = {p.name for p in tmp_path.iterdir()}
    assert {"distilled.keras", "pruned.keras", "qat.keras", "student_float32.tflite",
            "student_int8.tflite", "student.onnx", "report.json", "report.md",
            "report.png"} <= written
    saved = json.loads((tmp_path / "report.json").read_text())
    assert [s["name"] for s in saved["stages"]] == names
    assert all({"accuracy", "params", "bytes", "gzip_bytes"} <= set(s) for s in saved["stages"])
    assert tfkd.sparsity(tfkd.load_model(tmp_path / "pruned.keras")).overall >= 0.79
    for before, after in zip(teacher_weights, trained_teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)


def test_compress_skips_steps_given_false(trained_teacher, small_digits, tmp_path, monkeypatch):
    train, val = small_digits
    student = tfkd.models.build_student()
    # out_dir=None writes nothing: not in the working directory, and no scratch file survives.
    scratch, work = tmp_path / "scratch", tmp_path / "work"
    scratch.mkdir(), work.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.chdir(work)
    report = tfkd.compress(trained_teacher, student, train, val, distill={"epochs": 1},
                           prune=False, quantize=False, export=False, verbose=0)
    assert [s["name"] for s in report.stages] == ["teacher", "distilled"]
    left = [p.name for p in scratch.iterdir() if not p.name.startswith("__autograph_generated")]
    assert list(work.iterdir()) == [] and left == []  # (TensorFlow's own traced code aside)
    # With out_dir, the stages that ran write their model and the report, nothing else.
    out = tmp_path / "out"
    tfkd.compress(trained_teacher, tfkd.models.build_student(), train, val,
                  distill={"epochs": 1}, prune=False, quantize=False, export=False,
                  out_dir=out, verbose=0)
    assert sorted(p.name for p in out.iterdir()) == [
        "distilled.keras", "report.json", "report.md", "report.png"
    ]
    # An existing report keeps its stages; the teacher is not added twice.
    again = tfkd.compress(trained_teacher, student, train, val, distill=False, prune=False,
                          quantize=False, export=False, report=report, verbose=0)
    assert again is report and [s["name"] for s in report.stages] == ["teacher", "distilled"]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"distill": {"epoch": 3}}, ValueError, r"unknown settings \['epoch'\]"),
        ({"prune": 0.8}, TypeError, "Received: prune=0.8"),
        ({"prune": {"target_sparsity": 1.5}}, ValueError, "Received: target_sparsity=1.5"),
        ({"distill": {"alpha": 2}}, ValueError, "Received: alpha=2"),
        ({"distill": {"epochs": 0}}, ValueError, "Received: epochs=0"),
        ({"export": {"formats": ["int3-tflite"]}}, ValueError, "Received: formats='int3-tflite'"),
        ({"report": "report.json"}, TypeError, "Received: report="),
    ],
)
def test_compress_rejects_bad_configs(trained_teacher, small_digits, kwargs, error, match):
    train, val = small_digits
    with pytest.raises(error, match=match):
        tfkd.compress(trained_teacher, tfkd.models.build_student(), train, val, verbose=0,
                      **kwargs)


def test_compress_rejects_bad_data_and_models(trained_teacher, small_digits):
    train, val = small_digits
    student = tfkd.models.build_student()
    with pytest.raises(ValueError, match=r"`train` must be a pair `\(x, y\)`"):
        tfkd.compress(trained_teacher, student, train[0], val)
    with pytest.raises(ValueError, match=r"Received: x of shape \(300, 8, 8, 1\), y of shape"):
        tfkd.compress(trained_teacher, student, train, (val[0], val[1][:10]))
    with pytest.raises(TypeError, match="`student` must be a Keras model"):
        tfkd.compress(trained_teacher, "student.keras", train, val)


def test_shrink_scales_filters_and_units_but_keeps_the_outputs():
    teacher = tfkd.models.build_teacher()
    student = tfkd.models.shrink(teacher, 0.25)
    widths = {layer.name: getattr(layer, "filters", getattr(layer, "units", None))
              for layer in student.layers}
    assert widths["conv1"] == 8 and widths["conv2"] == 16 and widths["conv3"] == 32
    assert widths["embedding"] == 32 and widths["logits"] == 10
    # 80 + 1,168 + 4,640 + (128 * 32 + 32) + (32 * 10 + 10), counted by hand.
    assert student.count_params() == 10_346
    assert student.name == "teacher_x0.25"
    assert tfkd.models.shrink(teacher, 1.0).count_params() == teacher.count_params()


@pytest.mark.parametrize("width, error", [(0, ValueError), (1.5, ValueError), ("0.5", TypeError)])
def test_shrink_rejects_bad_width(width, error):
    with pytest.raises(error, match="Received: width="):
        tfkd.models.shrink(tfkd.models.build_teacher(), width)


def test_load_data_reads_npz_and_names_missing_keys(tmp_path):
    x = np.zeros((6, 8, 8, 1), "float32")
    y = np.arange(6) % 2
    np.savez(tmp_path / "ok.npz", x_train=x, y_train=y, x_test=x[:2], y_test=y[:2])
    (x_train, y_train), (x_test, y_test) = load_data(tmp_path / "ok.npz")
    assert x_train.shape == (6, 8, 8, 1) and y_test.tolist() == [0, 1]
    np.savez(tmp_path / "partial.npz", x_train=x, y_train=y)
    with pytest.raises(ValueError, match=r"lacks the arrays \['x_test', 'y_test'\]"):
        load_data(tmp_path / "partial.npz")
    with pytest.raises(FileNotFoundError, match="Received: path="):
        load_data(tmp_path / "missing.npz")
    (tmp_path / "data.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match=r"must be an `.npz` file"):
        load_data(tmp_path / "data.csv")
    np.savez(tmp_path / "rep.npz", x=x)
    assert load_inputs(tmp_path / "rep.npz").shape == (6, 8, 8, 1)
    assert load_test_data(tmp_path / "ok.npz")[0].shape == (2, 8, 8, 1)
    np.savez(tmp_path / "weights.npz", a=x)
    with pytest.raises(ValueError, match="must hold `x_train`, or `x` as its only array"):
        load_inputs(tmp_path / "weights.npz")


def test_load_data_reads_a_folder_of_images_per_class(tmp_path):
    from PIL import Image

    for label, value in (("cat", 0), ("dog", 255)):
        (tmp_path / label).mkdir()
        for i in range(5):
            Image.new("L", (16, 16), color=value).save(tmp_path / label / f"{i}.png")
    (x_train, y_train), (x_test, y_test) = load_data(tmp_path, input_shape=(8, 8, 1))
    assert x_train.shape == (8, 8, 8, 1) and x_test.shape == (2, 8, 8, 1)
    assert sorted(y_test.tolist()) == [0, 1]
    # Class 0 ("cat", sorted first) is black, class 1 white, scaled to [0, 1].
    assert np.all(x_train[y_train == 0] == 0.0) and np.all(x_train[y_train == 1] == 1.0)
    with pytest.raises(ValueError, match="needs the model's input shape"):
        load_data(tmp_path)


def test_check_input_shape_names_both_shapes():
    check_input_shape((8, 8, 1), np.zeros((2, 8, 8, 1)))
    check_input_shape((None, 3), np.zeros((2, 5, 3)))
    with pytest.raises(ValueError, match=r"shape \(8, 8, 1\). Received: samples of shape"):
        check_input_shape((8, 8, 1), np.zeros((2, 28, 28, 1)))


def test_distil_says_what_the_logged_losses_are(capsys, make_teacher, make_student, tiny_data):
    from tfkd.pipeline import distil

    config = tfkd.DistillConfig(epochs=1, batch_size=32, alpha=0.25, temperature=4.0,
                                cache_teacher=False)
    distil(make_teacher(), make_student(), tiny_data, config, verbose=1)
    printed = capsys.readouterr().out
    assert ("loss = 0.25 x student_loss (cross-entropy with the labels) + 0.75 x "
            "distillation_loss (KL divergence of the teacher's and student's softmax at T=4, "
            "x T^2)") in printed
