"""Cached teacher speed: tfkd's cached-teacher distillation against a plain fit and Keras 3.

Measured side by side in one run, on the bundled digits upscaled to 28x28 with the keras.io
example's teacher (conv 256/512) and student (conv 16/32):

1. one epoch of cached distillation vs one epoch of the student's plain `fit` (target <= 1.15x);
2. ten epochs of cached distillation, building the cache included, vs ten epochs of Keras 3's
   `keras.distillation.Distiller` on the same models (target <= 0.2x);
3. the test accuracy of (2) vs tfkd's own live-teacher run (target: within 0.3 points). The live
   and cached runs see the same shuffles, so they differ only by float rounding.

Keras 3 runs in this process, on twins of the same models and initial weights, with its default
`compile` (XLA on). Epoch times are medians over epochs 2..N (epoch 1 holds tracing); totals
include tracing but not imports (done before the clocks start, for both sides). Wall clock and
process CPU time are both reported. The training set is the digits' training half plus fixed
shifted copies (`--copies`, default 4: made once, no random augmentation), since fixed per-fit
costs (tracing) weigh less on bigger data; about 15 minutes on a busy 2-core machine.
Run: `.venv/bin/python benchmarks/cached_speed.py [--quick]`; writes
`benchmarks/results/cached_speed.md`.
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np
from _common import build_keras3_keras_io_model, epoch_timer

import tfkd
from tfkd import keras
from tfkd._keras import tf
from tfkd.export._atomic import write_text

BATCH = 32
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def load_data(copies=1):
    """Digits at 28x28: `copies` fixed shifted versions of each training image (no randomness)."""
    (x_train, y_train), (x_test, y_test) = tfkd.data.load_digits()
    resize = lambda x: tf.image.resize(x, (28, 28)).numpy()  # noqa: E731
    x_train, x_test = resize(x_train), resize(x_test)
    shifts = [(0, 0), (2, 0), (-2, 0), (0, 2), (0, -2), (2, 2), (-2, -2), (2, -2), (-2, 2)]
    xs = [np.roll(x_train, s, axis=(1, 2)) for s in shifts[:copies]]
    return (np.concatenate(xs), np.tile(y_train, copies)), (x_test, y_test)


def _sparse_ce():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def train_teacher(x, y, epochs):
    keras.utils.set_random_seed(0)
    teacher = tfkd.models.build_keras_io_teacher()
    teacher.compile(optimizer="adam", loss=_sparse_ce(), metrics=["accuracy"])
    teacher.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0)
    return teacher


def new_student(seed):
    keras.utils.set_random_seed(seed)
    return tfkd.models.build_keras_io_student()


def shuffled(dataset, n, seed):
    return dataset.shuffle(n, seed=seed, reshuffle_each_iteration=True).batch(BATCH)


def run_plain(x, y, epochs, seed):
    student = new_student(seed)
    student.compile(optimizer="adam", loss=_sparse_ce(), metrics=["accuracy"])
    timer = epoch_timer(keras.callbacks.Callback)
    student.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0, callbacks=[timer])
    return timer


def run_tfkd(teacher, x, y, test, epochs, seed, cached):
    """tfkd's Distiller with a live or cached teacher: ((wall s, CPU s), EpochTimer, accuracy)."""
    start, cpu_start = time.perf_counter(), time.process_time()
    if cached:
        teacher = tfkd.cache_teacher_outputs(teacher, x, verbose=0)
        data = shuffled(teacher.dataset(x, y), len(x), seed)
    else:
        data = shuffled(tf.data.Dataset.from_tensor_slices((x, y)), len(x), seed)
    distiller = tfkd.Distiller(teacher=teacher, student=new_student(seed))
    distiller.compile(optimizer="adam", loss=_sparse_ce(), metrics=["accuracy"])
    timer = epoch_timer(keras.callbacks.Callback)
    distiller.fit(data, epochs=epochs, verbose=0, callbacks=[timer])
    total = (time.perf_counter() - start, time.process_time() - cpu_start)
    accuracy = distiller.evaluate(*test, verbose=0, return_dict=True)["accuracy"]
    return total, timer, accuracy


def run_keras3(teacher, x, y, test, epochs, seed):
    """Keras 3's `keras.distillation.Distiller` on twins of the same models and weights."""
    import keras as keras3

    teacher3 = _keras3_twin(keras3, teacher, "teacher")
    student3 = _keras3_twin(keras3, new_student(seed), "student")
    distiller = keras3.distillation.Distiller(
        teacher=teacher3,
        student=student3,
        distillation_losses=keras3.distillation.LogitsDistillation(temperature=3.0),
        student_loss_weight=0.5,
    )
    distiller.compile(
        optimizer="adam",
        loss=keras3.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    data = shuffled(tf.data.Dataset.from_tensor_slices((x, y)), len(x), seed)
    start, cpu_start = time.perf_counter(), time.process_time()
    distiller.fit(data, epochs=epochs, verbose=0)
    total = (time.perf_counter() - start, time.process_time() - cpu_start)
    logs = distiller.evaluate(*test, verbose=0, return_dict=True)
    return total, logs.get("accuracy", logs.get("compile_metrics", float("nan")))


def _keras3_twin(keras3, model, kind):
    """The keras.io model as a Keras 3 model with `model`'s weights."""
    width = (256, 512) if kind == "teacher" else (16, 32)
    twin = build_keras3_keras_io_model(keras3, width)
    twin.set_weights(model.get_weights())
    return twin


def _warm_imports():
    """Imports both sides need, done before any clock starts (Keras 3; TF-MOT, which
    `Distiller.fit` reaches to look for pruning wrappers)."""
    import keras as keras3  # noqa: F401
    import tensorflow_model_optimization  # noqa: F401


def measure(epochs=10, copies=1, teacher_epochs=5, seed=0):
    """Every figure of the table, measured in this process, side by side."""
    (x, y), test = load_data(copies)
    _warm_imports()
    load_before = os.getloadavg()[0]
    teacher = train_teacher(x, y, teacher_epochs)
    teacher_accuracy = teacher.evaluate(*test, verbose=0, return_dict=True)["accuracy"]
    plain = run_plain(x, y, epochs, seed)
    cached_total, cached_epochs, cached_accuracy = run_tfkd(teacher, x, y, test, epochs, seed, True)
    live_total, live_epochs, live_accuracy = run_tfkd(teacher, x, y, test, epochs, seed, False)
    keras3_total, keras3_accuracy = run_keras3(teacher, x, y, test, epochs, seed)
    median = lambda times: statistics.median(times[1:] if len(times) > 1 else times)  # noqa: E731
    epoch = lambda timer: (median(timer.times), median(timer.cpu_times))  # noqa: E731
    return {
        "samples": len(x),
        "epochs": epochs,
        "teacher_accuracy": teacher_accuracy,
        "plain_epoch": epoch(plain),
        "cached_epoch": epoch(cached_epochs),
        "live_epoch": epoch(live_epochs),
        "cached_total": cached_total,
        "live_total": live_total,
        "keras3_total": keras3_total,
        "cached_accuracy": cached_accuracy,
        "live_accuracy": live_accuracy,
        "keras3_accuracy": keras3_accuracy,
        "load": (load_before, os.getloadavg()[0]),
    }


def rows(r):
    """Table rows: (what, wall: measured and ratio, CPU: measured and ratio, target, met)."""

    def pair(a, b, unit_format):
        return [
            (f"{unit_format(r[a][k])} / {unit_format(r[b][k])}", r[a][k] / r[b][k]) for k in (0, 1)
        ]

    epoch = pair("cached_epoch", "plain_epoch", lambda v: f"{v:.3f} s")
    total = pair("cached_total", "keras3_total", lambda v: f"{v:.1f} s")
    live_epoch = pair("live_epoch", "plain_epoch", lambda v: f"{v:.3f} s")
    live_total = pair("live_total", "keras3_total", lambda v: f"{v:.1f} s")
    gap = 100 * abs(r["cached_accuracy"] - r["live_accuracy"])
    accuracy = f"{100 * r['cached_accuracy']:.2f}% vs {100 * r['live_accuracy']:.2f}%"
    n = r["epochs"]
    return [
        ("cached-teacher epoch / student's plain `fit` epoch", epoch, 1.15),
        (f"{n} epochs cached, cache included / {n} epochs Keras 3 Distiller", total, 0.2),
        ("test accuracy: cached vs tfkd live teacher", [(accuracy, gap)] * 2, 0.3),
        ("(reference) live-teacher epoch / plain epoch", live_epoch, None),
        (f"(reference) {n} epochs tfkd live / Keras 3 Distiller", live_total, None),
    ]


def to_markdown(r):
    lines = [
        "# Cached teacher speed",
        "",
        f"Digits at 28x28, {r['samples']} training samples, batch {BATCH}, keras.io teacher "
        f"({100 * r['teacher_accuracy']:.1f}% test) and student, {r['epochs']} epochs. Load "
        f"average {r['load'][0]:.1f} -> {r['load'][1]:.1f} on {os.cpu_count()} cores"
        f"{' (busy machine: ratios are noisy)' if max(r['load']) > 1.5 else ''}. Made by "
        "`benchmarks/cached_speed.py`.",
        "",
        "| measure | wall clock | ratio | CPU time | ratio | target | met (wall / CPU) |",
        "|---|---|---|---|---|---|---|",
    ]
    for what, ((wall, wall_ratio), (cpu, cpu_ratio)), target in rows(r):
        if what.startswith("test accuracy"):
            met = "yes" if wall_ratio <= target else "**no**"
            points = f"{wall_ratio:.2f} points"
            lines.append(f"| {what} | {wall} | {points} | | | <= 0.3 points | {met} |")
            continue
        ratio_text = f"<= {target}x" if target else ""
        met = ""
        if target:
            met = " / ".join("yes" if v <= target else "**no**" for v in (wall_ratio, cpu_ratio))
        lines.append(
            f"| {what} | {wall} | {wall_ratio:.2f}x | {cpu} | {cpu_ratio:.2f}x | {ratio_text} "
            f"| {met} |"
        )
    lines += [
        "",
        f"Keras 3 Distiller test accuracy: {100 * r['keras3_accuracy']:.2f}%. CPU time is the "
        "process's CPU seconds (all threads), less sensitive than wall clock to other work on "
        "the machine.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 epochs, teacher 1 epoch")
    parser.add_argument("--copies", type=int, default=4, help="fixed shifted copies of the data")
    args = parser.parse_args(argv)
    epochs, teacher_epochs = (3, 1) if args.quick else (10, 3)
    result = measure(epochs=epochs, copies=args.copies, teacher_epochs=teacher_epochs)
    text = to_markdown(result)
    print(text)
    if not args.quick:
        write_text(os.path.join(RESULTS, "cached_speed.md"), text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
