"""Compression inside the distillation: epoch-time overhead, and one-shot against iterative pruning.

Measured side by side in one run:

1. Epoch time of distillation with a pruning-wrapped student and with a QAT-wrapped student, over
   plain distillation of the same student (targets: pruning <= 1.3x, QAT <= 2x). The keras.io
   example's teacher (conv 256/512) and student (conv 16/32) on the bundled digits upsampled to
   28x28. The teacher's forward pass dominates a distillation step, so the same three students
   are also timed training alone (plain `fit`), where the wrappers' own cost shows undiluted.
   Rounds alternate the variants (the machine's load weighs on all); each figure is the median
   epoch time over epochs 2..N of every round (epoch 1 holds tracing).
2. Test accuracy of the digits student (`tfkd.models.build_student`, distilled from the reference
   teacher) pruned to 50/80/90%: one-shot without retraining (magnitude), one-shot then
   fine-tuned (constant schedule), tfkd's default gradual schedule in one fit (polynomial, target
   at 2/3), and `tfkd.iterative_prune` in 3 rounds. Every fine-tuning variant distils for the
   same number of epochs in total.

Run: `.venv/bin/python benchmarks/compression.py [--quick]`; prints the tables and writes
`benchmarks/results/compression.md`.
"""

import argparse
import os
import statistics

import numpy as np
from _common import epoch_timer

import tfkd
from tfkd import keras
from tfkd._keras import tf
from tfkd.export._atomic import write_text
from tfkd.optimize._common import accuracy
from tfkd.optimize.sensitivity import magnitude_prune

BATCH = 32
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def sparse_ce():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def distill(teacher, student, data, epochs, learning_rate=3e-3, callbacks=None):
    distiller = tfkd.Distiller(teacher=teacher, student=student)
    distiller.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=sparse_ce())
    distiller.fit(*data, epochs=epochs, batch_size=BATCH, verbose=0, callbacks=callbacks)
    return distiller


def train(model, data, epochs):
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss=sparse_ce())
    model.fit(*data, epochs=epochs, batch_size=BATCH, verbose=0)
    return model


# ------------------------------------------------------------------------------ epoch time


def epoch_times(rounds, epochs):
    """Median epoch time per variant, distilled and trained alone (the wrappers' own cost)."""
    (x, y), _ = tfkd.data.load_digits()
    x = tf.image.resize(x, (28, 28)).numpy()
    keras.utils.set_random_seed(0)
    teacher = train(tfkd.models.build_keras_io_teacher(), (x, y), 1)
    variants = {
        "plain": lambda s: s,
        "pruned": lambda s: tfkd.prune(s, target_sparsity=0.8),
        "qat": lambda s: tfkd.quantize(s),
    }
    times = {(name, mode): [] for name in variants for mode in ("distill", "alone")}
    for index in range(rounds):
        for name, wrap in variants.items():
            for mode in ("distill", "alone"):
                keras.utils.set_random_seed(index)
                student = wrap(tfkd.models.build_keras_io_student())
                timer = epoch_timer(keras.callbacks.Callback)
                if mode == "distill":
                    distill(teacher, student, (x, y), epochs, callbacks=[timer])
                else:
                    student.compile(optimizer=keras.optimizers.Adam(3e-3), loss=sparse_ce())
                    student.fit(x, y, epochs=epochs, batch_size=BATCH, verbose=0,
                                callbacks=tfkd.callbacks(student) + [timer])
                times[name, mode].extend(timer.times[1:])
    medians = {key: statistics.median(values) for key, values in times.items()}
    return {
        name: {mode: (medians[name, mode], medians[name, mode] / medians["plain", mode])
               for mode in ("distill", "alone")}
        for name in variants
    }


# --------------------------------------------------------------------- one-shot vs iterative


def pruning_accuracy(targets, epochs, dense_epochs):
    train_data, test_data = tfkd.data.load_digits()
    keras.utils.set_random_seed(0)
    teacher = train(tfkd.models.build_teacher(), train_data, 12)
    keras.utils.set_random_seed(0)
    dense = tfkd.models.build_student()
    distill(teacher, dense, train_data, dense_epochs)
    rows = {"dense": {t: accuracy(dense, test_data) for t in targets}}
    rows["one-shot, no retraining"] = {t: _magnitude(dense, t, test_data) for t in targets}
    rows["one-shot + fine-tune"] = {}
    rows["gradual (polynomial, 1 fit)"] = {}
    rows["iterative (3 rounds)"] = {}
    for target in targets:
        for label, schedule in (("one-shot + fine-tune", "constant"),
                                ("gradual (polynomial, 1 fit)", "polynomial")):
            keras.utils.set_random_seed(1)
            pruned = tfkd.prune(dense, target_sparsity=target, schedule=schedule)
            distill(teacher, pruned, train_data, epochs)
            rows[label][target] = accuracy(tfkd.strip(pruned), test_data)
        keras.utils.set_random_seed(1)
        distiller = tfkd.Distiller(teacher=teacher, student=_copy(dense))
        distiller.compile(optimizer=keras.optimizers.Adam(3e-3), loss=sparse_ce())
        steps = [round(target * k / 3, 3) for k in (1, 2, 3)]
        result = tfkd.iterative_prune(distiller, train_data, sparsities=steps,
                                      epochs_per_round=max(1, epochs // 3), verbose=0,
                                      validation_data=test_data)
        rows["iterative (3 rounds)"][target] = result.rounds[-1]["accuracy"]
    return rows


def _copy(model):
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def _magnitude(model, target, data):
    copy = _copy(model)
    for layer in copy.layers:
        if getattr(layer, "kernel", None) is not None:
            layer.kernel.assign(magnitude_prune(layer.kernel.numpy(), target))
    return accuracy(copy, data)


# ----------------------------------------------------------------------------------- report


def to_markdown(times, rows, targets, args):
    lines = [
        "# Compression benchmark",
        "",
        f"`python benchmarks/compression.py{' --quick' if args.quick else ''}` "
        f"({args.rounds} rounds x {args.epochs} epochs for times; {args.finetune} fine-tuning "
        "epochs per pruning variant). Measured on a shared 2-core machine: times are noisy.",
        "",
        "## Epoch time of distillation (keras.io pair, digits at 28x28)",
        "",
        "| student | distill: median epoch (s) | distill: ratio to plain | target "
        "| student alone: median epoch (s) | alone: ratio to plain |",
        "|---|---|---|---|---|---|",
    ]
    goals = {"plain": "", "pruned": "<= 1.3x", "qat": "<= 2x"}
    for name, modes in times.items():
        (d_seconds, d_ratio), (a_seconds, a_ratio) = modes["distill"], modes["alone"]
        lines.append(f"| {name} | {d_seconds:.3f} | {d_ratio:.2f}x | {goals[name]} | "
                     f"{a_seconds:.3f} | {a_ratio:.2f}x |")
    lines += ["", "## Test accuracy of the pruned digits student", "",
              "| method | " + " | ".join(f"{t:.0%}" for t in targets) + " |",
              "|---|" + "---|" * len(targets)]
    for label, row in rows.items():
        lines.append(f"| {label} | " + " | ".join(f"{row[t]:.4f}" for t in targets) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and epochs")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--finetune", type=int, default=6)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.epochs, args.finetune = 1, 3, 3
    targets = (0.5, 0.8, 0.9)
    times = epoch_times(args.rounds, args.epochs)
    rows = pruning_accuracy(targets, args.finetune, dense_epochs=15)
    text = to_markdown(times, rows, targets, args)
    print(text)
    write_text(os.path.join(RESULTS, "compression.md"), text)


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
