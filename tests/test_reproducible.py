"""One seed, one result: `compress` run twice gives the same accuracies and the same file bytes."""

import json
import subprocess
import sys

import numpy as np
import pytest

import tfkd
from tfkd.cli import main

TINY = ["--epochs", "2", "--prune-epochs", "1", "--qat-epochs", "1", "--batch-size", "32",
        "--formats", "int8-tflite"]


def _teacher_and_data(folder, digits):
    (x_train, y_train), (x_test, y_test) = digits
    tfkd.keras.utils.set_random_seed(0)
    inputs = tfkd.keras.Input((8, 8, 1))
    x = tfkd.keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = tfkd.keras.layers.Dropout(0.3)(tfkd.keras.layers.Flatten()(x))  # randomness in training
    outputs = tfkd.keras.layers.Dense(10)(tfkd.keras.layers.Dense(16, activation="relu")(x))
    teacher = tfkd.keras.Model(inputs, outputs)
    teacher.compile(optimizer="adam",
                    loss=tfkd.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(x_train[:200], y_train[:200], epochs=2, verbose=0)
    teacher.save(folder / "teacher.keras")
    np.savez(folder / "data.npz", x_train=x_train[:200], y_train=y_train[:200],
             x_test=x_test[:100], y_test=y_test[:100])


def _argv(folder, out, seed):
    return ["compress", "--teacher", str(folder / "teacher.keras"), "--student-width", "0.5",
            "--data", str(folder / "data.npz"), "--out", str(folder / out), "--seed", str(seed),
            *TINY]


def _results(folder, out):
    report = json.loads((folder / out / "report.json").read_text())
    accuracies = {s["name"]: s["accuracy"] for s in report["stages"]}
    return accuracies, (folder / out / "student_int8.tflite").read_bytes()


@pytest.mark.slow
def test_compress_twice_with_one_seed_gives_identical_numbers_and_bytes(tmp_path, digits):
    """`tfkd compress --seed 3` in two processes: the same accuracies at every stage and the same
    int8 file, byte for byte. Within one process (after other random work) the accuracies match
    too; the file differs there only in layer names Keras numbers per process (quantize_layer_1)."""
    _teacher_and_data(tmp_path, digits)
    for out in ("a", "b"):
        subprocess.run([sys.executable, "-m", "tfkd", *_argv(tmp_path, out, seed=3)], cwd=tmp_path,
                       check=True, capture_output=True, timeout=900)
    first_accuracies, first_bytes = _results(tmp_path, "a")
    second_accuracies, second_bytes = _results(tmp_path, "b")
    assert second_accuracies == first_accuracies
    assert second_bytes == first_bytes
    np.random.default_rng().random(10)
    tfkd.keras.utils.set_random_seed(12345)  # whatever the user did before, in this process
    tfkd.keras.layers.Dropout(0.5)(np.ones((4, 4)), training=True)
    assert main(_argv(tmp_path, "c", seed=3)) == 0
    assert _results(tmp_path, "c")[0] == first_accuracies
