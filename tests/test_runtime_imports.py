"""Running an exported file imports what running needs: no TF-MOT, no Keras, no model loaders."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

import tfkd
from tfkd import keras

RUN_ONLY = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tfkd.runtime

    model = tfkd.runtime.TFLiteModel(sys.argv[1])
    x = np.load(sys.argv[2])
    outputs = model.predict(x)
    accuracy = model.evaluate(x, np.argmax(outputs, axis=-1))
    model.latency(runs=3, warmup=1)
    print("RESULT " + json.dumps({
        "outputs": outputs.tolist(),
        "accuracy": float(accuracy["accuracy"] if isinstance(accuracy, dict) else accuracy),
        "modules": sorted(sys.modules),
    }))
    """
)

NOT_FOR_RUNNING = (
    "tensorflow_model_optimization", "tensorflow", "tf_keras", "keras", "tf2onnx",
    "tfkd._keras", "tfkd.saving", "tfkd.keras3", "tfkd.optimize", "tfkd.distiller",
    "tfkd.export", "tfkd.losses", "tfkd.schemes", "tfkd.pipeline",
)


def test_running_a_tflite_file_imports_no_tf_mot_keras_or_loaders(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)])
    path = tmp_path / "model.tflite"
    tfkd.export.to_tflite(model, path)
    x = np.random.default_rng(0).normal(size=(5, 6)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.run(
        [sys.executable, "-c", RUN_ONLY, str(path), str(tmp_path / "x.npy")],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    line = [row for row in process.stdout.splitlines() if row.startswith("RESULT ")][-1]
    result = json.loads(line[len("RESULT "):])
    np.testing.assert_allclose(result["outputs"], model(x).numpy(), atol=1e-5)  # it really ran
    assert result["accuracy"] == 1.0
    loaded = [name for name in result["modules"]
              if any(name == root or name.startswith(root + ".") for root in NOT_FOR_RUNNING)]
    assert loaded == []
