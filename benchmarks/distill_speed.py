"""Epoch time of distillation: tfkd's Distiller against Keras 3's `keras.distillation.Distiller`.

Same architectures (the keras.io Knowledge Distillation example's teacher and student: strided
convolutions of 256/512 and 16/32 filters), same 28x28 data (the bundled digits upsampled), same
batch size, optimizer, temperature and loss weights, each with its Keras's default `compile`.
Keras 3 runs in its own process (tfkd's process holds tf_keras). Every row trains several epochs;
the figure is the median epoch time, leaving out the first epoch (tracing and compilation), and
the median over rounds that alternate Keras 3 and tfkd (the machine's load weighs on both).

    python benchmarks/distill_speed.py    # prints the table, writes results/distill_speed.md
    python benchmarks/distill_speed.py --epochs 6 --samples 1797

Target: tfkd at most 0.7x Keras 3's epoch time.
"""

import argparse
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
from _common import build_keras3_keras_io_model, epoch_timer

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
TEMPERATURE = 3.0
STUDENT_LOSS_WEIGHT = 0.1
LEARNING_RATE = 1e-3


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=4, help="epochs per row (first is dropped)")
    parser.add_argument("--samples", type=int, default=1024, help="training images per epoch")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="alternating Keras 3 / tfkd rounds")
    parser.add_argument("--keras3-worker", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def load_data(samples):
    """The bundled digits, upsampled 8x8 -> 28x28 (nearest neighbour), as float32 in [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    index = np.arange(28) * 8 // 28
    x = (digits.images[:, index][:, :, index] / 16.0).astype("float32")[..., np.newaxis]
    repeats = -(-samples // len(x))
    x = np.concatenate([x] * repeats)[:samples]
    y = np.concatenate([digits.target] * repeats)[:samples].astype("int64")
    return x, y


def median_epoch(seconds):
    """The median epoch time, leaving out the first epoch (tracing, compilation)."""
    return statistics.median(seconds[1:])


# ------------------------------------------------------------------------ tf_keras (tfkd)


def _fit_seconds(model, data, args):
    from tfkd import keras

    timer = epoch_timer(keras.callbacks.Callback)
    x, y = data
    model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, verbose=0, callbacks=[timer])
    return median_epoch(timer.times)


def time_student_fit(data, args):
    """The student alone, a plain `fit` on the labels: the floor any distillation pays on top of."""
    import tfkd
    from tfkd import keras

    keras.utils.set_random_seed(0)
    student = tfkd.models.build_keras_io_student()
    student.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return _fit_seconds(student, data, args)


def _tfkd_distiller(teacher):
    import tfkd
    from tfkd import keras

    distiller = tfkd.Distiller(
        teacher=teacher,
        student=tfkd.models.build_keras_io_student(),
        distillation_losses=[tfkd.losses.LogitsDistillation(temperature=TEMPERATURE)],
        student_loss_weight=STUDENT_LOSS_WEIGHT,
    )
    distiller.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return distiller


def teacher_forward_seconds(tf, teacher, data, args):
    """Median epoch time of the teacher's inference pass alone, batch by batch (a graph function):
    the floor of any live-teacher distillation."""
    forward = tf.function(lambda x: teacher(x, training=False))
    x = data[0]
    seconds = []
    for _ in range(args.epochs):
        start = time.perf_counter()
        for i in range(0, len(x), args.batch_size):
            np.asarray(forward(tf.constant(x[i : i + args.batch_size])))
        seconds.append(time.perf_counter() - start)
    return median_epoch(seconds)


def time_teacher_forward(data, args):
    """The teacher's forward pass alone in tf_keras (oneDNN kernels, no XLA)."""
    import tfkd
    from tfkd._keras import tf

    return teacher_forward_seconds(tf, tfkd.models.build_keras_io_teacher(), data, args)


def time_tfkd_live(data, args):
    """tfkd's Distiller with the teacher run on every batch (outside the gradient tape)."""
    import tfkd
    from tfkd import keras

    keras.utils.set_random_seed(0)
    return _fit_seconds(_tfkd_distiller(tfkd.models.build_keras_io_teacher()), data, args)


def time_tfkd_cached(data, args):
    """tfkd's Distiller from a cached teacher: the teacher ran once, before the fit (not timed
    here; `benchmarks/cached_speed.py` times ten epochs with the cache included)."""
    import tfkd
    from tfkd import keras

    keras.utils.set_random_seed(0)
    x, y = data
    cached = tfkd.cache_teacher_outputs(tfkd.models.build_keras_io_teacher(), x, verbose=0)
    dataset = cached.dataset(x, y).shuffle(len(x), seed=0).batch(args.batch_size)
    timer = epoch_timer(keras.callbacks.Callback)
    _tfkd_distiller(cached).fit(dataset, epochs=args.epochs, verbose=0, callbacks=[timer])
    return median_epoch(timer.times)


# ------------------------------------------------------------------ Keras 3, own process


def _keras3_models(keras):
    """The keras.io pair in Keras 3 layers: the same as `tfkd.models.build_keras_io_*`."""
    return (
        build_keras3_keras_io_model(keras, (256, 512), "teacher"),
        build_keras3_keras_io_model(keras, (16, 32), "student"),
    )


def keras3_worker(args):
    """Runs in its own process with Keras 3: prints the Keras 3 rows as JSON."""
    import keras

    data = load_data(args.samples)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def fit_seconds(model):
        timer = epoch_timer(keras.callbacks.Callback)
        model.fit(*data, batch_size=args.batch_size, epochs=args.epochs, verbose=0,
                  callbacks=[timer])
        return median_epoch(timer.times)

    keras.utils.set_random_seed(0)
    teacher, student = _keras3_models(keras)
    distiller = keras.distillation.Distiller(
        teacher=teacher,
        student=student,
        distillation_losses=[keras.distillation.LogitsDistillation(temperature=TEMPERATURE)],
        student_loss_weight=STUDENT_LOSS_WEIGHT,
    )
    distiller.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss=loss,
                      metrics=["accuracy"])
    rows = {"keras3_distiller": fit_seconds(distiller)}
    _, alone = _keras3_models(keras)
    alone.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss=loss, metrics=["accuracy"])
    rows["keras3_student_fit"] = fit_seconds(alone)
    forward = keras.Sequential([teacher])  # Keras 3 runs its teacher with XLA (jit "auto")
    forward.compile(jit_compile="auto")
    timer = epoch_timer(keras.callbacks.Callback)
    for _ in range(args.epochs):  # predict has no epochs: one call per "epoch"
        timer.on_epoch_begin(0)
        forward.predict(data[0], batch_size=args.batch_size, verbose=0)
        timer.on_epoch_end(0)
    rows["keras3_teacher_forward"] = median_epoch(timer.times)
    rows["keras_version"] = keras.__version__
    print("RESULT " + json.dumps(rows), flush=True)


def run_keras3(args):
    """The Keras 3 rows, measured in a fresh process where `import keras` is Keras 3."""
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    command = [sys.executable, os.path.abspath(__file__), "--keras3-worker"]
    command += ["--epochs", str(args.epochs), "--samples", str(args.samples)]
    command += ["--batch-size", str(args.batch_size)]
    process = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    lines = [line for line in process.stdout.splitlines() if line.startswith("RESULT ")]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"the Keras 3 process failed:\n{process.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


# ---------------------------------------------------------------------------------- table


def table(rows, keras3_seconds, student_seconds):
    lines = [
        "| setup | median epoch (s) | vs Keras 3 Distiller | vs student's plain fit |",
        "|---|---:|---:|---:|",
    ]
    for name, seconds in rows:
        lines.append(
            f"| {name} | {seconds:.3f} | {seconds / keras3_seconds:.2f}x | "
            f"{seconds / student_seconds:.2f}x |"
        )
    return "\n".join(lines)


# Rows measured in this process (tf_keras): (name, function(data, args) -> median epoch seconds).
TFKD_ROWS = [
    ("student alone, plain `fit` (tf_keras)", time_student_fit),
    ("tfkd.Distiller, live teacher", time_tfkd_live),
    ("teacher's forward pass alone (tf_keras)", time_teacher_forward),
    ("tfkd.Distiller, cached teacher", time_tfkd_cached),
]
KERAS3_ROWS = [
    ("keras.distillation.Distiller (Keras 3)", "keras3_distiller"),
    ("student alone, plain `fit` (Keras 3)", "keras3_student_fit"),
    ("teacher's forward pass alone (Keras 3 `predict`)", "keras3_teacher_forward"),
]


def measure(args):
    """`rows`: (name, seconds), each the median over `--rounds` rounds that alternate Keras 3 and
    tfkd, so that a busy machine weighs on both alike."""
    per_round = {name: [] for name, _ in TFKD_ROWS + KERAS3_ROWS}
    data = None
    for _ in range(args.rounds):
        keras3 = run_keras3(args)  # the first round runs before this process loads TensorFlow
        for name, key in KERAS3_ROWS:
            per_round[name].append(keras3[key])
        data = load_data(args.samples) if data is None else data
        for name, function in TFKD_ROWS:
            per_round[name].append(function(data, args))
    rows = [(name, statistics.median(seconds)) for name, seconds in per_round.items()]
    return rows, keras3["keras_version"]


def main(argv=None):
    args = parse_args(argv)
    if args.keras3_worker:
        keras3_worker(args)
        return 0
    rows, keras3_version = measure(args)
    import tfkd
    from tfkd.export._atomic import write_text

    seconds = dict(rows)
    student_seconds = seconds["student alone, plain `fit` (tf_keras)"]
    keras3_seconds = seconds["keras.distillation.Distiller (Keras 3)"]
    text = table(rows, keras3_seconds, student_seconds)
    tfkd_ratio = seconds["tfkd.Distiller, live teacher"] / keras3_seconds
    verdict = "met" if tfkd_ratio <= 0.7 else "NOT met"
    cached_ratio = seconds["tfkd.Distiller, cached teacher"] / student_seconds
    cached_note = (
        "Target cached teacher <= 1.15x the student's plain fit: "
        f"{'met' if cached_ratio <= 1.15 else 'NOT met'} ({cached_ratio:.2f}x). Ten epochs, "
        "cache included, against Keras 3, and accuracy: `benchmarks/cached_speed.py`."
    )
    setup = (
        f"{args.samples} images of 28x28x1 (digits upsampled), batch {args.batch_size}, "
        f"{args.epochs} epochs (median of epochs 2-{args.epochs}; median of {args.rounds} "
        f"alternating rounds), Adam {LEARNING_RATE}, "
        f"T={TEMPERATURE}, student_loss_weight={STUDENT_LOSS_WEIGHT}; tfkd {tfkd.__version__} on "
        f"tf_keras {tfkd.keras.__version__}, Keras {keras3_version}; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    )
    report = (
        "# Distillation speed: epoch time\n\n"
        f"Measured by `python benchmarks/distill_speed.py` ({time.strftime('%Y-%m-%d %H:%M')}).\n"
        f"{setup}.\n\nEach Keras with its default `compile` (Keras 3's `jit_compile='auto'` turns "
        "XLA on; tf_keras's default is off).\n\n"
        f"{text}\n\nTarget tfkd <= 0.70x Keras 3: {verdict} ({tfkd_ratio:.2f}x).\n"
        f"{cached_note}\n"
    )
    print(f"{setup}\n\n{text}\n\nTarget tfkd <= 0.70x Keras 3: {verdict} ({tfkd_ratio:.2f}x)")
    print(cached_note)
    write_text(RESULTS / "distill_speed.md", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
