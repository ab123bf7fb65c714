"""One choice of Keras: tf_keras, even after the user touched Keras 3; no other module chooses."""

import ast
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import tfkd

PACKAGE = pathlib.Path(tfkd.__file__).parent

USER_SESSION = textwrap.dedent(
    """
    import json
    import numpy as np
    import tensorflow as tf

    # The user's session: Keras 3 through tf.keras, a Keras 3 model built, before tfkd.
    keras3 = tf.keras
    k3_model = keras3.Sequential(
        [keras3.Input((8, 8, 1)), keras3.layers.Flatten(), keras3.layers.Dense(10)], name="k3"
    )
    result = {"before": keras3.__version__}

    import tf_keras
    import tfkd

    result["tfkd_keras_is_tf_keras"] = tfkd.keras is tf_keras
    result["tfkd_keras_version"] = tfkd.keras.__version__
    keras = tfkd.keras
    rng = np.random.default_rng(0)
    x = rng.random((32, 8, 8, 1), dtype=np.float32)
    y = rng.integers(0, 10, size=32)

    def build(name, width):
        return keras.Sequential(
            [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(width,
             activation="relu"), keras.layers.Dense(10)], name=name)

    teacher, student = build("teacher", 32), build("student", 8)
    distiller = tfkd.Distiller(teacher=teacher, student=student)
    distiller.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(True))
    history = distiller.fit(x, y, epochs=1, batch_size=16, verbose=0)
    result["fit_loss"] = history.history["loss"][0]
    result["student_is_tf_keras"] = isinstance(distiller.student, tf_keras.Model)

    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        converted = tfkd.Distiller(teacher=teacher, student=k3_model)
    result["warnings"] = [str(w.message) for w in caught]
    result["converted_is_tf_keras"] = isinstance(converted.student, tf_keras.Model)
    result["converted_is_a_copy"] = converted.student is not k3_model
    result["converted_same_outputs"] = bool(np.allclose(
        converted.student(x).numpy(), np.asarray(k3_model(x)), atol=1e-5))
    k3_before = [np.asarray(w).copy() for w in k3_model.weights]
    converted.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(True))
    result["converted_fit_loss"] = converted.fit(x, y, epochs=1, verbose=0).history["loss"][0]
    result["keras3_model_unchanged"] = all(
        np.array_equal(a, np.asarray(w)) for a, w in zip(k3_before, k3_model.weights))
    result["student_trained"] = not all(
        np.array_equal(a, w.numpy()) for a, w in zip(k3_before, converted.student.weights))
    print("RESULT " + json.dumps(result))
    """
)


def test_tf_keras_is_used_after_the_user_touched_keras3():
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    process = subprocess.run(
        [sys.executable, "-c", USER_SESSION], env=env, capture_output=True, text=True, timeout=180
    )
    assert process.returncode == 0, process.stderr[-3000:]
    line = [row for row in process.stdout.splitlines() if row.startswith("RESULT ")][-1]
    result = json.loads(line[len("RESULT ") :])

    assert result["before"].startswith("3.")  # the user really had Keras 3
    assert result["tfkd_keras_is_tf_keras"] and result["tfkd_keras_version"].startswith("2.")
    assert result["student_is_tf_keras"] and result["fit_loss"] > 0
    # A Keras 3 student is converted (a tf_keras copy with the same outputs), saying so once.
    assert result["converted_is_tf_keras"] and result["converted_is_a_copy"]
    assert result["converted_same_outputs"]
    said = [message for message in result["warnings"] if "Keras 3" in message]
    assert len(said) == 1, result["warnings"]
    assert "`student` is a Keras 3 model (Sequential 'k3')" in said[0]
    assert "student = tfkd.from_keras3(student)" in said[0]
    # The copy trains; the user's Keras 3 model is left as it was.
    assert result["converted_fit_loss"] > 0 and result["student_trained"]
    assert result["keras3_model_unchanged"]


def _keras_imports(path):
    """`(line, what)` for each import of Keras (3, tf.keras or tf_keras) and each `tf.keras`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Attribute) and node.attr == "keras":
            value = node.value
            names = [f"{value.id}.keras"] if isinstance(value, ast.Name) else []
            names = [n for n in names if n in ("tf.keras", "tensorflow.keras")]
        else:
            continue
        for name in names:
            root = name.split(".")[0]
            if root in ("keras", "tf_keras") or name.startswith(("tensorflow.keras", "tf.keras")):
                found.append((node.lineno, name))
    return found


def test_only_the_keras_module_imports_keras():
    offenders = {
        str(path.relative_to(PACKAGE.parent)): imports
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "_keras.py" and (imports := _keras_imports(path))
    }
    assert offenders == {}, "import Keras only through `from tfkd._keras import keras`"
    # tf_keras at import; Keras 3 only inside `import_keras3`, to read what users made with it.
    assert [name for _, name in _keras_imports(PACKAGE / "_keras.py")] == ["tf_keras", "keras"]


def test_scanner_sees_every_way_of_importing_keras(tmp_path):
    path = tmp_path / "sample.py"
    path.write_text(
        "import keras\nfrom keras import layers\nimport tensorflow.keras as k\n"
        "from tensorflow.keras import Model\nimport tf_keras\nimport tensorflow as tf\n"
        "m = tf.keras.Model\n'''import keras in a docstring'''\n"
    )
    assert [line for line, _ in _keras_imports(path)] == [1, 2, 3, 4, 5, 7]
