"""`tfkd demo`: the whole path on the bundled digits, with baselines that show what each step buys.

A CNN teacher is trained; the same small student is trained on the labels alone and distilled, on
every training label and on 10% of them (where soft targets pay most); the distilled student is then
pruned, quantization-aware trained and exported by `tfkd.compress`. Every stage is measured on the
same held-out half of the digits and written to `report.json`, `report.md` and `report.png`.
"""

import os

from tfkd._keras import keras
from tfkd._validation import check_int, check_open_fraction
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

DEMO_EPOCHS = 150  # student epochs (alone and distilled); pruning gets 1/5, QAT 1/15 of them
TEACHER_EPOCHS = 40
QUICK_EPOCHS = 3


def demo_config(epochs=DEMO_EPOCHS, seed=0):
    """The distillation settings the demo uses for every student (alone ones share them).

    Tuned on the bundled digits so that a 4,810-parameter student learns the teacher's soft
    targets in the epochs given (a smaller learning rate or fewer epochs leaves the distilled
    student behind the one trained alone, see FIELD-NOTES).
    """
    return DistillConfig(epochs=epochs, batch_size=32, learning_rate=5e-3, temperature=8.0,
                         alpha=0.1, seed=seed)


def run_demo(out_dir="tfkd-demo", *, epochs=None, seed=0, quick=False, label_fraction=0.1,
             compress_student=True, teacher=None, verbose=1):
    """Runs the demo and writes `report.json`, `report.md` and `report.png` to `out_dir`.

    Stages, in order: `"teacher"`; `"student-10pct"` and `"distilled-10pct"` (the student on
    `label_fraction` of the labels, alone and distilled); `"student"` (alone, every label); then
    `tfkd.compress`'s `"distilled"`, `"pruned"` (80%), `"qat"`, `"float32-tflite"`,
    `"int8-tflite"` and `"onnx"`. Both students of a pair start from the same weights and train
    with the same epochs, batch, optimizer and seed.

    Args:
        out_dir: Folder for the report and artifacts, or `None` to write nothing. Defaults to
            `"tfkd-demo"`.
        epochs: Student epochs, or `None` for `150` (`3` with `quick`). Defaults to `None`.
        seed: Seed of the weights, the shuffling and the 10% subset. Defaults to `0`.
        quick: A few epochs everywhere, to check that the path runs (numbers mean nothing).
            Defaults to `False`.
        label_fraction: Fraction of the training labels of the scarce-label stages, in (0, 1).
            Defaults to `0.1`.
        compress_student: Whether to prune, quantize and export after distilling (otherwise the
            demo stops at `"distilled"`). Defaults to `True`.
        teacher: A teacher trained on the digits to reuse, or `None` to train one (seeded by
            `seed`). Defaults to `None`.
        verbose: `1` shows a line (and a progress bar on a terminal) per stage. Defaults to `1`.

    Returns:
        The `tfkd.Report`.
    """
    from tfkd.data import load_digits, subsample_per_class
    from tfkd.models import build_student
    from tfkd.report import Report

    if epochs is None:
        epochs = QUICK_EPOCHS if quick else DEMO_EPOCHS
    check_int("epochs", epochs, minimum=1)
    check_int("seed", seed)
    check_open_fraction("label_fraction", label_fraction)
    config = demo_config(epochs, seed)
    (x_train, y_train), (x_test, y_test) = load_digits()
    report = Report(title="tfkd demo: distil, prune, quantize, export (bundled digits)")

    def add(name, model, seconds, labels):
        epochs_run = config.epochs if name != "teacher" else (teacher_epochs if seconds else None)
        stage = report.add(name, model, x=x_test, y=y_test, train_seconds=seconds, labels=labels,
                           epochs=epochs_run)
        if verbose:
            print(f"  {name}: accuracy {100 * stage['accuracy']:.2f}%", flush=True)

    teacher_epochs = QUICK_EPOCHS if quick else TEACHER_EPOCHS
    seconds = None
    if teacher is None:
        teacher, seconds = train_demo_teacher(seed, teacher_epochs, verbose)
    add("teacher", teacher, seconds, len(y_train))

    x_few, y_few = subsample_per_class(x_train, y_train, label_fraction, seed=seed)
    tag = f"{round(100 * label_fraction)}pct"
    for name, train in ((f"student-{tag}", None), (f"distilled-{tag}", teacher)):
        student = _fresh_student(build_student, seed)
        seconds = _train(student, train, (x_few, y_few), config, verbose, name)
        add(name, student, seconds, len(y_few))

    student = _fresh_student(build_student, seed)
    add("student", student, _train(student, None, (x_train, y_train), config, verbose, "student"),
        len(y_train))

    student = _fresh_student(build_student, seed)
    if compress_student:
        compress(teacher, student, (x_train, y_train), (x_test, y_test), distill=config,
                 prune=PruneConfig(target_sparsity=0.8, epochs=max(1, epochs // 5)),
                 quantize=QuantizeConfig(epochs=max(1, epochs // 15)),
                 export=ExportConfig(), out_dir=out_dir, report=report, verbose=verbose)
    else:
        seconds = _train(student, teacher, (x_train, y_train), config, verbose, "distilled")
        add("distilled", student, seconds, len(y_train))
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


def train_demo_teacher(seed=0, epochs=TEACHER_EPOCHS, verbose=1):
    """The demo's teacher: `tfkd.models.build_teacher()` trained on the digits' training half.

    Returns:
        `(teacher, seconds spent training)`.
    """
    from tfkd.data import load_digits
    from tfkd.models import build_teacher

    (x_train, y_train), _ = load_digits()
    keras.utils.set_random_seed(seed)
    teacher = build_teacher()
    teacher.compile(
        optimizer=keras.optimizers.Adam(2e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return teacher, timed_fit(teacher, x_train, y_train, epochs, 32, verbose, "teacher", seed=seed)


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
