"""`tf.distribute`: the Distiller's loss is the single-device loss under MirroredStrategy on two
logical CPUs (losses relating the samples of a batch included) and under
MultiWorkerMirroredStrategy with two local worker processes.

Both run in subprocesses: logical devices must be configured before TensorFlow initializes, and
each worker is its own process. Every subprocess is bounded by a timeout."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

MIRRORED = textwrap.dedent(
    """
    import json
    import numpy as np
    import tfkd
    from tfkd import keras
    from tfkd._keras import tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    rng = np.random.default_rng(0)
    x = rng.random((64, 8, 8, 1), dtype=np.float32)
    y = rng.integers(0, 10, size=64)
    weights = rng.random(64).astype("float32")

    def build(prefix, width):
        inputs = keras.Input((8, 8, 1))
        h = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name=prefix + "conv")(
            inputs)
        h = keras.layers.Flatten()(h)
        outputs = keras.layers.Dense(10, name=prefix + "logits",
                                     kernel_regularizer=keras.regularizers.L2(1e-3))(h)
        return keras.Model(inputs, outputs)

    keras.utils.set_random_seed(0)
    teacher_weights = build("t_", 8).get_weights()
    student_weights = build("s_", 4).get_weights()

    def run(strategy):
        with strategy.scope():
            teacher, student = build("t_", 8), build("s_", 4)
            teacher.set_weights(teacher_weights)
            student.set_weights(student_weights)
            distiller = tfkd.Distiller(
                teacher=teacher, student=student, student_loss_weight=0.3,
                distillation_losses=[tfkd.losses.LogitsDistillation(temperature=2.0),
                                     tfkd.losses.LogitsDistillation(loss="mse")],
                distillation_loss_weights=[1.0, 0.1])
            distiller.compile(optimizer=keras.optimizers.SGD(0.1),
                              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                              metrics=["accuracy"])
        history = distiller.fit(x, y, sample_weight=weights, batch_size=32, epochs=2,
                                shuffle=False, verbose=0)
        logs = distiller.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
        return {"replicas": strategy.num_replicas_in_sync, "history": history.history,
                "evaluate": logs, "weights": [w.tolist() for w in student.get_weights()]}

    one = run(tf.distribute.OneDeviceStrategy("/cpu:0"))
    two = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    print("RESULT " + json.dumps({"one": one, "two": two}))
    """
)


RELATION = textwrap.dedent(
    """
    import json
    import numpy as np
    import tfkd
    from tfkd import keras
    from tfkd._keras import tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    rng = np.random.default_rng(1)
    x = rng.random((61, 8, 8, 1), dtype=np.float32)  # batches of 32 and 29: 16/16, then 15/14
    y = rng.integers(0, 10, size=61)

    def build(prefix, width):
        inputs = keras.Input((8, 8, 1))
        h = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name=prefix + "conv")(
            inputs)
        h = keras.layers.Dense(6, name=prefix + "embed")(keras.layers.Flatten()(h))
        outputs = keras.layers.Dense(10, name=prefix + "logits")(h)
        return keras.Model(inputs, outputs)

    keras.utils.set_random_seed(0)
    teacher_weights = build("t_", 8).get_weights()
    student_weights = build("s_", 4).get_weights()
    L = tfkd.losses

    def run(strategy):
        with strategy.scope():
            teacher, student = build("t_", 8), build("s_", 4)
            teacher.set_weights(teacher_weights)
            student.set_weights(student_weights)
            losses = [L.RKDDistance("t_embed", "s_embed"), L.RKDAngle("t_embed", "s_embed"),
                      L.SimilarityPreserving("t_conv", "s_conv"), L.PKT("t_embed", "s_embed"),
                      L.DIST(beta=0.0, gamma=1.0)]
            distiller = tfkd.Distiller(teacher=teacher, student=student, student_loss_weight=0.3,
                                       distillation_losses=losses,
                                       distillation_loss_weights=[25.0, 50.0, 300.0, 30.0, 1.0])
            distiller.compile(optimizer=keras.optimizers.SGD(0.05),
                              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        history = distiller.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
        logs = distiller.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
        return {"replicas": strategy.num_replicas_in_sync, "history": history.history,
                "evaluate": logs, "weights": [w.tolist() for w in student.get_weights()]}

    one = run(tf.distribute.OneDeviceStrategy("/cpu:0"))
    two = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    print("RESULT " + json.dumps({"one": one, "two": two}))
    """
)


def _env():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1"}
    env.pop("TF_CONFIG", None)
    return env


def _result(process):
    assert process.returncode == 0, process.stderr[-3000:]
    line = [row for row in process.stdout.splitlines() if row.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


def test_mirrored_two_devices_equals_one_device():
    process = subprocess.run(
        [sys.executable, "-c", MIRRORED], env=_env(), capture_output=True, text=True, timeout=300
    )
    result = _result(process)
    one, two = result["one"], result["two"]
    assert (one["replicas"], two["replicas"]) == (1, 2)
    assert {"loss", "student_loss", "distillation_loss", "accuracy"} <= set(one["history"])
    for key, values in one["history"].items():
        np.testing.assert_allclose(two["history"][key], values, rtol=1e-5, err_msg=key)
    for key, value in one["evaluate"].items():
        np.testing.assert_allclose(two["evaluate"][key], value, rtol=1e-5, err_msg=key)
    for a, b in zip(one["weights"], two["weights"], strict=True):
        np.testing.assert_allclose(np.array(b), np.array(a), rtol=1e-5, atol=1e-6)


def test_multi_worker_example_two_workers_equal_one():
    """examples/multi_worker.py, run as a user would, with one and with two local workers."""
    script = str(ROOT / "examples" / "multi_worker.py")
    small = ["--epochs", "1", "--teacher-epochs", "0", "--samples", "64", "--batch-size", "16"]
    runs = {
        workers: subprocess.Popen(
            [sys.executable, script, "--workers", str(workers), "--timeout", "280", *small],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for workers in (1, 2)  # both at once: most of their time is start-up
    }
    outputs = {}
    try:
        for workers, process in runs.items():
            stdout, stderr = process.communicate(timeout=300)
            assert process.returncode == 0, stderr[-3000:]
            line = [row for row in stdout.splitlines() if row.startswith("FINAL_LOSS")][-1]
            outputs[workers] = line.split()
    finally:
        for process in runs.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    assert outputs[1][5] == "1" and outputs[2][5] == "2"  # replicas: one per worker
    one, two = float(outputs[1][1]), float(outputs[2][1])
    assert np.isfinite(one) and one > 0
    np.testing.assert_allclose(two, one, rtol=1e-4)
    np.testing.assert_allclose(float(outputs[2][3]), float(outputs[1][3]), atol=1e-6)  # accuracy


@pytest.mark.slow  # ~25 s: two strategies trace five batch-relating losses
def test_batch_relation_losses_see_the_global_batch_under_mirrored():
    """RKD, SP, PKT and DIST's intra term relate the samples of the whole global batch: two
    replicas (uneven last batch included) give the single-device loss and gradients."""
    process = subprocess.run(
        [sys.executable, "-c", RELATION], env=_env(), capture_output=True, text=True, timeout=300
    )
    result = _result(process)
    one, two = result["one"], result["two"]
    assert (one["replicas"], two["replicas"]) == (1, 2)
    assert one["history"]["distillation_loss"][0] > 0
    for key, values in one["history"].items():
        np.testing.assert_allclose(two["history"][key], values, rtol=1e-5, err_msg=key)
    for key, value in one["evaluate"].items():
        np.testing.assert_allclose(two["evaluate"][key], value, rtol=1e-5, err_msg=key)
    for a, b in zip(one["weights"], two["weights"], strict=True):
        np.testing.assert_allclose(np.array(b), np.array(a), rtol=1e-4, atol=1e-6)
