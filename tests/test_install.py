"""`pip install tfkd` without extras, into a fresh virtualenv, runs the headline path.

Slow (a virtualenv with TensorFlow: about 1-2 minutes with the wheels at hand). Wheels are kept in
`$TFKD_TEST_WHEELHOUSE` (default `~/.cache/tfkd-test-wheelhouse`) so a second run downloads nothing;
the first run fetches them from the package index.
"""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WHEELHOUSE = Path(os.environ.get("TFKD_TEST_WHEELHOUSE",
                                 Path.home() / ".cache" / "tfkd-test-wheelhouse"))

# Distil and prune (one epoch each), strip, int8 .tflite, LiteRT, report with plot; then the extras'
# messages. Prints one line per check for the test to read.
SCRIPT = textwrap.dedent("""
    import numpy as np
    import tfkd
    from tfkd import keras

    rng = np.random.default_rng(0)
    x = rng.random((64, 8, 8, 1), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    keras.utils.set_random_seed(0)
    def net(width):
        return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                                 keras.layers.Dense(width, activation="relu"),
                                 keras.layers.Dense(10)])
    teacher, student = net(32), net(8)
    teacher.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(x, y, epochs=1, verbose=0)
    distiller = tfkd.Distiller(teacher=teacher, student=tfkd.prune(student, target_sparsity=0.5))
    distiller.compile(optimizer="adam", metrics=["accuracy"],
                      student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      distillation_loss_fn=keras.losses.KLDivergence(), alpha=0.1, temperature=4)
    distiller.fit(x, y, epochs=1, verbose=0)
    tfkd.export.to_tflite(tfkd.strip(distiller.student), "student.tflite", quantization="int8",
                          representative_data=x, check=False)
    result = tfkd.TFLiteModel("student.tflite").evaluate(x, y)
    print("evaluate", 0 <= result["accuracy"] <= 1, tfkd.profile("student.tflite").all_int8)
    report = tfkd.Report()
    report.add("int8", "student.tflite", x=x, y=y, latency=False)
    report.plot("report.png")
    print("plot", __import__("os").path.getsize("report.png") > 0)
    for what, call in (("onnx", lambda: tfkd.export.to_onnx(teacher, "t.onnx")),
                       ("int4", lambda: tfkd.export.to_tflite(teacher, quantization="int4"))):
        try:
            call()
            print(what, "no error")
        except ImportError as error:
            print(what, error)
""")


def _run(args, **kwargs):
    done = subprocess.run(args, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{args}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.mark.slow
def test_plain_pip_install_runs_distil_prune_int8_litert_and_plot(tmp_path):
    source = tmp_path / "src"  # a copy: building in /work/main would leave build/ there
    shutil.copytree(ROOT / "tfkd", source / "tfkd",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.py", "README.md", "LICENSE", "pyproject.toml"):
        shutil.copy(ROOT / name, source / name)
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    _run(pip + ["download", "--quiet", "--dest", str(WHEELHOUSE), str(source)], timeout=1800)
    _run(pip + ["install", "--quiet", "--no-index", "--find-links", str(WHEELHOUSE), str(source)],
         timeout=1800)
    installed = _run(pip + ["list", "--format", "freeze"]).stdout.lower()
    for extra in ("tf2onnx", "onnxruntime", "ai-edge-quantizer"):
        assert f"{extra}==" not in installed  # extras stay out of a plain install
    version = _run([str(venv / "bin" / "tfkd"), "--version"], cwd=tmp_path).stdout.strip()
    assert version.startswith("tfkd ")
    work = tmp_path / "work"
    work.mkdir()
    done = _run([str(venv / "bin" / "python"), "-c", SCRIPT], cwd=work, timeout=900,
                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    assert lines["evaluate"] == "True True", done.stdout  # an accuracy; an all-int8 file
    assert lines["plot"] == "True"
    assert 'pip install "tfkd[onnx]"' in lines["onnx"], lines["onnx"]
    assert 'pip install "tfkd[int4]"' in lines["int4"], lines["int4"]
