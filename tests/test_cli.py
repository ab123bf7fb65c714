"""The `tfkd` command line through `main([...])`, and as real subprocesses (speed, quiet start)."""

import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

import tfkd
from tfkd.cli import main
from tfkd.cli.parser import build_parser

COMMANDS = ("demo", "compress", "convert", "inspect", "bench", "eval")
TINY = ["--epochs", "2", "--prune-epochs", "1", "--qat-epochs", "1", "--batch-size", "64"]


def _run(*args, cwd, timeout=300):
    """`python -m tfkd ...` in its own process (a cwd without a `tfkd` folder to shadow ours)."""
    return subprocess.run([sys.executable, "-m", "tfkd", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


@pytest.fixture(scope="module")
def files(tmp_path_factory, digits):
    """A tiny functional teacher saved as .keras, data .npz files, an image folder, bad files."""
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
             "wrong_shape": folder / "wrong_shape.npz", "text": folder / "notes.txt",
             "images": folder / "images"}
    teacher.save(paths["teacher"])
    np.savez(paths["data"], x_train=x_train[:200], y_train=y_train[:200], x_test=x_test[:200],
             y_test=y_test[:200])
    np.savez(paths["rep"], x=x_train[:64])
    np.savez(paths["partial"], x_train=x_train[:10], y_train=y_train[:10])
    np.savez(paths["wrong_shape"], x_train=np.zeros((4, 5, 5, 1)), y_train=np.zeros(4, int),
             x_test=np.zeros((4, 5, 5, 1)), y_test=np.zeros(4, int))
    paths["text"].write_text("not a model\n")
    _write_images(paths["images"], x_test[:100], y_test[:100])
    return {k: str(v) for k, v in paths.items()}


def _write_images(folder, x, y):
    """8x8 grayscale PNGs, one sub-folder per class (what `compress --data FOLDER` reads)."""
    from PIL import Image

    for i, (image, label) in enumerate(zip(x, y, strict=True)):
        (folder / f"class_{label}").mkdir(parents=True, exist_ok=True)
        pixels = np.round(image[..., 0] * 255).astype("uint8")
        Image.fromarray(pixels, mode="L").save(folder / f"class_{label}" / f"{i}.png")


# Parsing: no TensorFlow, flags named, defaults as the API's ---------------------------------------


@pytest.mark.parametrize("command", ("",) + COMMANDS)
def test_help_of_every_command(command, capsys):
    argv = [command, "--help"] if command else ["--help"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "usage: tfkd" in out
    if not command:
        assert all(c in out for c in COMMANDS)


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"tfkd {tfkd.__version__}"


def test_compress_help_states_the_defaults_of_tfkd_compress(capsys):
    assert main(["compress", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    defaults = {
        "--epochs": tfkd.DistillConfig().epochs, "--batch-size": tfkd.DistillConfig().batch_size,
        "--learning-rate": tfkd.DistillConfig().learning_rate,
        "--temperature": tfkd.DistillConfig().temperature, "--alpha": tfkd.DistillConfig().alpha,
        "--seed": tfkd.DistillConfig().seed, "--sparsity": tfkd.PruneConfig().target_sparsity,
        "--prune-epochs": tfkd.PruneConfig().epochs, "--qat-epochs": tfkd.QuantizeConfig().epochs,
    }
    for flag, value in defaults.items():
        shown = re.search(re.escape(flag) + r" \S+ [^(]*\(default: ([^,)]+)", text).group(1)
        assert float(shown) == value, flag


def test_compress_without_flags_passes_nothing_but_the_api_defaults():
    from tfkd.cli.commands import compress_settings

    args = build_parser("0").parse_args(
        ["compress", "--teacher", "t.keras", "--student-width", "0.5", "--data", "d.npz",
         "--out", "o"])
    settings = compress_settings(args)
    assert settings == {"distill": {}, "prune": {}, "quantize": {}, "export": {}}
    # What tfkd.compress makes of them: int8 always, the same epochs.
    export = tfkd.ExportConfig(**settings["export"])
    assert "int8-tflite" in export.formats
    assert tfkd.DistillConfig(**settings["distill"]) == tfkd.DistillConfig()
    args = build_parser("0").parse_args(
        ["compress", "--teacher", "t", "--student", "s", "--data", "d", "--out", "o", "--no-qat",
         "--sparsity", "0.5", "--temperature", "4", "--seed", "3", *TINY])
    settings = compress_settings(args)
    assert settings["quantize"] is False
    assert settings["prune"] == {"target_sparsity": 0.5, "epochs": 1}
    assert settings["distill"] == {"epochs": 2, "batch_size": 64, "temperature": 4.0, "seed": 3}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--sparsity", "80"], "argument --sparsity: expected a fraction in (0, 1), e.g. 0.8 for "
         "80% zeros (for 80% write 0.8). Received: 80"),
        (["--epochs", "0"], "argument --epochs: expected a whole number >= 1. Received: 0"),
        (["--alpha", "1.5"], "argument --alpha: expected a number in [0, 1]. Received: 1.5"),
        (["--temperature", "hot"], "argument --temperature: expected a number. Received: hot"),
        (["--student-width", "2"], "argument --student-width: expected a fraction of the "
         "teacher's width in (0, 1]"),
        (["--formats", "int3-tflite"], "argument --formats: invalid choice: 'int3-tflite'"),
    ],
)
def test_bad_flags_are_named_as_flags(argv, message, capsys, tmp_path):
    base = ["compress", "--teacher", "t.keras", "--data", "d.npz", "--out", str(tmp_path / "o")]
    if "--student-width" not in argv:
        base += ["--student-width", "0.5"]
    assert main(base + argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert "target_sparsity" not in err and "Traceback" not in err


# Commands -----------------------------------------------------------------------------------------


def test_convert_inspect_bench_eval(files, tmp_path, capsys):
    int8 = str(tmp_path / "teacher_int8.tflite")
    argv = ["convert", files["teacher"], "--to", "tflite", "--quantization", "int8", "--data",
            files["rep"], "--out", int8]
    assert main(argv) == 0
    assert os.path.getsize(int8) > 0
    assert main(["inspect", int8]) == 0
    out = capsys.readouterr().out
    assert "all-integer  yes (all int8, int8 input and output)" in out
    # What a microcontroller deployer needs: shapes, dtypes, scale and zero point of the I/O.
    interpreter = tfkd.TFLiteModel(int8)
    assert interpreter.input_dtype == np.int8
    lines = {line.split(":")[0].split()[0]: line for line in out.splitlines()
             if line.startswith(("  input", "  output"))}
    assert re.search(r"shape \(-?\w+, 8, 8, 1\), int8, scale [0-9.e-]+, zero point -?\d+",
                     lines["input"]), out
    assert re.search(r"shape \(-?\w+, 10\), int8, scale [0-9.e-]+, zero point -?\d+",
                     lines["output"]), out
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
    out = capsys.readouterr().out
    assert "parameters" in out and re.search(r"input +\S+: shape \(None, 8, 8, 1\), float32", out)
    assert main(["bench", files["teacher"], "--runs", "5"]) == 0  # timed as a device runs it
    assert re.search(r"batch 1, as its .*\.tflite.*: [\d,]+ us median", capsys.readouterr().out)


def test_eval_takes_the_image_folders_compress_takes(files, capsys):
    assert main(["eval", files["teacher"], "--data", files["images"]]) == 0
    line = capsys.readouterr().out
    # No train/ and test/ folders: the held-out 20% of each class, as compress measures on.
    assert " on 20 samples" in line, line
    assert float(line.split("accuracy ")[1].split("%")[0]) > 60


def test_convert_writes_next_to_the_model_by_default(files, tmp_path, capsys):
    model = tmp_path / "m.keras"
    tfkd.load_model(files["teacher"]).save(model)
    assert main(["convert", str(model), "--to", "onnx"]) == 0
    assert (tmp_path / "m.onnx").exists()
    assert main(["bench", str(tmp_path / "m.onnx"), "--runs", "5"]) == 0
    assert main(["inspect", str(tmp_path / "m.onnx")]) == 0
    assert re.search(r"input +\S+: shape \(None, 8, 8, 1\), float32", capsys.readouterr().out)
    before = os.path.getmtime(tmp_path / "m.onnx")
    assert main(["convert", str(model), "--to", "onnx"]) == 2  # exists: needs --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert os.path.getmtime(tmp_path / "m.onnx") == before


@pytest.mark.slow  # ~40 s on a busy 2-core machine; the defaults: the test above
def test_compress_defaults_to_qat_and_int8(files, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["compress", "--teacher", files["teacher"], "--student-width", "0.5", "--data",
            files["data"], "--out", str(out), "--sparsity", "0.5", *TINY]
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    names = [s["name"] for s in report["stages"]]
    # int8 without asking, as tfkd.compress does (and .onnx, since tfkd[onnx] is installed here).
    assert names == ["teacher", "distilled", "pruned", "qat", "float32-tflite", "int8-tflite",
                     "onnx"]
    assert report["stages"][2]["sparsity"] >= 0.49
    assert report["stages"][1]["params"] < report["stages"][0]["params"] / 3  # width 0.5
    assert tfkd.profile(str(out / "student_int8.tflite")).all_int8
    assert (out / "report.png").exists()
    assert "| int8-tflite |" in capsys.readouterr().out
    # Run again into the same folder: refused without --overwrite, files untouched.
    stamp = os.path.getmtime(out / "report.json")
    assert main(argv) == 2
    assert "Pass --overwrite" in capsys.readouterr().err
    assert os.path.getmtime(out / "report.json") == stamp


def test_compress_refuses_an_existing_folder_without_overwrite(files, tmp_path, capsys):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "mine.txt").write_text("keep me")
    argv = ["compress", "--teacher", files["teacher"], "--student-width", "0.5", "--data",
            files["data"], "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "exists and is not empty. Pass --overwrite" in err
    assert os.listdir(tmp_path / "o") == ["mine.txt"]


def test_ctrl_c_is_one_line_and_leaves_no_output_folder(files, tmp_path, capsys, monkeypatch):
    import tfkd.pipeline

    real_compress = tfkd.compress

    def interrupted_when_pruning(*args, **kwargs):
        """The real pipeline, interrupted as by Ctrl-C after it wrote distilled.keras."""
        def stop(*a, **k):
            assert os.path.exists(os.path.join(kwargs["out_dir"], "distilled.keras"))
            raise KeyboardInterrupt
        monkeypatch.setattr(tfkd.pipeline._Run, "prune", stop)
        return real_compress(*args, **kwargs)

    monkeypatch.setattr(tfkd, "compress", interrupted_when_pruning)
    out = tmp_path / "o"
    argv = ["compress", "--teacher", files["teacher"], "--student-width", "0.5", "--data",
            files["data"], "--out", str(out), *TINY]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert err.splitlines() == ["tfkd compress: interrupted (nothing half-written was kept)"]
    assert not out.exists()


def test_unexpected_errors_name_debug_and_debug_shows_the_traceback(files, capsys, monkeypatch):
    import tfkd.cli.commands

    def broken(args):
        return {}["missing"]  # a bug, not the user's mistake

    monkeypatch.setattr(tfkd.cli.commands, "evaluate", broken)
    assert main(["eval", files["teacher"], "--data", files["data"]]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "unexpected error: KeyError: 'missing'" in err and "--debug" in err
    with pytest.raises(KeyError, match="missing"):
        main(["eval", files["teacher"], "--data", files["data"], "--debug"])


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
         "--quantization int8 needs --data"),
        (["convert", "{teacher}", "--to", "onnx", "--quantization", "int8"],
         "--to onnx writes float32 only. Received: --quantization int8"),
        (["convert", "{teacher}", "--to", "tflite", "--out", "{out}.onnx"],
         "--out must end with .tflite for --to tflite"),
        (["convert", "{teacher}", "--to", "onnx", "--out", "{out}.tflite"],
         "--out must end with .onnx for --to onnx"),
        (["convert", "{teacher}", "--to", "tflite", "--data", "{wrong_shape}"], "do not fit"),
        (["convert", "{teacher}", "--to", "pb"], "invalid choice: 'pb'"),
        (["compress", "--teacher", "{teacher}", "--student-width", "0.5", "--data",
          "{partial}", "--out", "{out}"], "lacks the arrays ['x_test', 'y_test']"),
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
    assert not [p for p in os.listdir(tmp_path) if p.startswith("o")]


# Real processes -----------------------------------------------------------------------------------


def test_help_and_usage_errors_answer_fast_without_tensorflow(tmp_path):
    """`tfkd --help` and a usage error in their own process, timed (generous bound: 2 s)."""
    for args, code in ((["--help"], 0), (["compress", "--sparsity", "80"], 2), (["--version"], 0)):
        start = time.perf_counter()
        done = _run(*args, cwd=tmp_path, timeout=60)
        seconds = time.perf_counter() - start
        assert done.returncode == code, done.stderr
        assert seconds < 2.0, (args, seconds)
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, tfkd.cli.parser, tfkd.cli; "
         "print(sorted(m for m in ('tensorflow', 'tf_keras', 'numpy') if m in sys.modules))"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert probe.stdout.strip() == "[]", probe.stderr


@pytest.mark.slow
def test_real_subprocess_is_quiet_unless_verbose(files, tmp_path):
    """TensorFlow's and LiteRT's log lines (start-up, CUDA probe, converter, XNNPACK) reach the
    terminal only with --verbose; tfkd's own error is one line."""
    int8 = tmp_path / "t.tflite"
    quiet = _run("convert", files["teacher"], "--to", "tflite", "--quantization", "int8",
                 "--data", files["rep"], "--out", str(int8), cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stdout.startswith("wrote")
    assert quiet.stderr == ""
    bad = _run("eval", str(int8), "--data", files["wrong_shape"], cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("tfkd eval: error: The data do")
    loud = _run("inspect", files["teacher"], "--verbose", cwd=tmp_path)
    assert loud.returncode == 0 and loud.stderr != ""

