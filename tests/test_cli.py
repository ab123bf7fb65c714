"""The `tfkd` command line through `main([...])`, and once as a real subprocess."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tfkd
from tfkd.cli import main

COMMANDS = ("demo", "compress", "convert", "inspect", "bench", "eval")


@pytest.fixture(scope="module")
def files(tmp_path_factory, digits):
    """A tiny functional teacher saved as .keras, data .npz files, and bad files."""
    folder = tmp_path_factory.mktemp("cli")
    (x_train, y_train), (x_test, y_test) = digits
    tfkd.keras.utils.set_random_seed(0)
    inputs = tfkd.keras.Input((8, 8, 1))
    x = tfkd.keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(inputs)
    x = tfkd.keras.layers.Flatten(name="flatten")(x)
    x = tfkd.keras.layers.Dense(16, activation="relu", name="hidden")(x)
    outputs = tfkd.keras.layers.Dense(10, name="logits")(x)
    teacher = tfkd.keras.Model(inputs, outputs, name="teacher")
    teacher.compile(optimizer=tfkd.keras.optimizers.Adam(3e-3),
                    loss=tfkd.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(x_train, y_train, epochs=5, batch_size=64, verbose=0)
    paths = {"teacher": folder / "teacher.keras", "data": folder / "data.npz",
             "rep": folder / "rep.npz", "partial": folder / "partial.npz",
             "wrong_shape": folder / "wrong_shape.npz", "text": folder / "notes.txt"}
    teacher.save(paths["teacher"])
    np.savez(paths["data"], x_train=x_train[:200], y_train=y_train[:200], x_test=x_test[:200],
             y_test=y_test[:200])
    np.savez(paths["rep"], x=x_train[:64])
    np.savez(paths["partial"], x_train=x_train[:10], y_train=y_train[:10])
    np.savez(paths["wrong_shape"], x_train=np.zeros((4, 5, 5, 1)), y_train=np.zeros(4, int),
             x_test=np.zeros((4, 5, 5, 1)), y_test=np.zeros(4, int))
    paths["text"].write_text("not a model\n")
    return {k: str(v) for k, v in paths.items()}


@pytest.mark.parametrize("command", ("",) + COMMANDS)
def test_help_of_every_command(command, capsys):
    argv = [command, "--help"] if command else ["--help"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "usage: tfkd" in out
    if not command:
        assert all(c in out for c in COMMANDS)


def test_convert_inspect_bench_eval(files, tmp_path, capsys):
    int8 = str(tmp_path / "teacher_int8.tflite")
    argv = ["convert", files["teacher"], "--to", "tflite", "--quantization", "int8", "--data",
            files["rep"], "--out", int8]
    assert main(argv) == 0
    assert os.path.getsize(int8) > 0
    assert main(["inspect", int8]) == 0
    out = capsys.readouterr().out
    assert "all-integer  yes (all int8, int8 input and output)" in out
    assert main(["bench", int8, "--threads", "1", "--runs", "5"]) == 0
    assert "ms median" in capsys.readouterr().out
    assert main(["eval", int8, "--data", files["data"]]) == 0
    int8_line = capsys.readouterr().out
    assert main(["eval", files["teacher"], "--data", files["data"]]) == 0
    keras_line = capsys.readouterr().out
    accuracy = float(int8_line.split("accuracy ")[1].split("%")[0])
    assert accuracy > 60  # the int8 file works (the tiny teacher scores ~90%)
    assert abs(accuracy - float(keras_line.split("accuracy ")[1].split("%")[0])) < 3
    assert main(["inspect", files["teacher"]]) == 0
    assert "parameters" in capsys.readouterr().out


def test_convert_writes_next_to_the_model_by_default(files, tmp_path, capsys):
    model = tmp_path / "m.keras"
    tfkd.load_model(files["teacher"]).save(model)
    assert main(["convert", str(model), "--to", "onnx"]) == 0
    assert (tmp_path / "m.onnx").exists()
    assert main(["bench", str(tmp_path / "m.onnx"), "--runs", "5"]) == 0


def test_compress_with_student_width(files, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["compress", "--teacher", files["teacher"], "--student-width", "0.5", "--data",
            files["data"], "--out", str(out), "--epochs", "2", "--sparsity", "0.5"]
    assert main(argv) == 0  # without --int8: no QAT, float files (the int8 path: test_pipeline)
    report = json.loads((out / "report.json").read_text())
    names = [s["name"] for s in report["stages"]]
    assert names == ["teacher", "distilled", "pruned", "float32-tflite", "onnx"]
    assert report["stages"][2]["sparsity"] >= 0.49
    assert report["stages"][1]["params"] < report["stages"][0]["params"] / 3  # width 0.5
    assert (out / "student_float32.tflite").exists() and (out / "report.png").exists()
    assert "| onnx |" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["eval", "{missing}", "--data", "{data}"], "no such file"),
        (["eval", "{text}", "--data", "{data}"], "must be a .tflite, .onnx, .keras or .h5"),
        (["eval", "{teacher}", "--data", "{partial}"], "must hold `x_test` and `y_test`"),
        (["eval", "{teacher}", "--data", "{wrong_shape}"], "do not fit"),
        (["eval", "{teacher}", "--data", "{text}"], "must be an `.npz` file"),
        (["inspect", "{data}"], "must be a .tflite, .onnx, .keras or .h5"),
        (["convert", "{text}", "--to", "onnx"], "must be a Keras model"),
        (["convert", "{teacher}", "--to", "tflite", "--quantization", "int8"],
         "needs `representative_data`"),
        (["convert", "{teacher}", "--to", "tflite", "--data", "{wrong_shape}"], "do not fit"),
        (["convert", "{teacher}", "--to", "pb"], "invalid choice: 'pb'"),
        (["compress", "--teacher", "{teacher}", "--student-width", "0.5", "--data",
          "{partial}", "--out", "{out}"], "lacks the arrays ['x_test', 'y_test']"),
        (["compress", "--teacher", "{teacher}", "--student-width", "2", "--data", "{data}",
          "--out", "{out}"], "`width` must be in (0, 1]"),
        (["compress", "--teacher", "{teacher}", "--student", "{text}", "--data", "{data}",
          "--out", "{out}"], "--student must be a Keras model"),
        (["compress", "--teacher", "{teacher}", "--data", "{data}", "--out", "{out}"],
         "one of the arguments --student --student-width is required"),
        (["bench", "{missing}"], "no such file"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(files, tmp_path, capsys, argv, message):
    paths = {**files, "missing": str(tmp_path / "missing.tflite"), "out": str(tmp_path / "o")}
    assert main([arg.format(**paths) for arg in argv]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("tfkd")
    assert "Traceback" not in captured.err
    assert message in lines[0]
    assert not (tmp_path / "o").exists()


def test_real_subprocess(files, tmp_path):
    """`python -m tfkd` in its own process: the exit code and tfkd's one line on stderr."""
    missing = tmp_path / "none.tflite"
    bad = subprocess.run([sys.executable, "-m", "tfkd", "eval", str(missing), "--data",
                          files["data"]], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    # TensorFlow logs its start-up on stderr before tfkd runs; tfkd's own message is one line.
    ours = [line for line in bad.stderr.splitlines() if line.startswith("tfkd")]
    assert ours == [f"tfkd eval: error: FILE: no such file: {missing}"]
