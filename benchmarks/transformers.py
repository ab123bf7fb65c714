"""DistilBERT- and TinyBERT-style students of small encoders as float32, int8 PTQ and QAT files.

Two tasks, both offline: the generated sentiment task (`tfkd.data.load_sentiment`: negation,
intensifiers and "but" decide the label, so word order matters) and the bundled real MNIST
(`tfkd.data.load_mnist(source="bundled")`, 4,000 train / 1,000 test) cut into 7x7 patches.

Per task and seed: a teacher (`tfkd.models.build_transformer`, 4 blocks) trained on labels; three
half-depth students (2 blocks, same width): trained alone on labels; DistilBERT-style (initialised
from every other teacher block, `LogitsDistillation` + cosine `HiddenStateDistillation` on the last
hidden state + the label loss); TinyBERT-style (fresh weights, MSE on the embeddings and every
block's hidden states through the uniform layer map, `AttentionDistillation`, `LogitsDistillation`
+ the label loss). Each student is exported as a float32 `.tflite`, an int8 PTQ `.tflite`
(calibrated on training inputs) and an int8 QAT `.tflite` (`tfkd.quantize` of the student, a few
more epochs of the same distillation with the float teacher). Accuracy, size and batch-1 latency are
all measured on `.tflite` files under LiteRT, one thread, the same settings for every file.

Usage: `python benchmarks/transformers.py [--seeds 3] [--quick]`. Prints a table and writes
`benchmarks/results/transformers.md` and `benchmarks/results/transformers.json`.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import tfkd
from tfkd import keras
from tfkd.export._atomic import write_text

L = tfkd.losses
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
TEACHER = {"width": 64, "depth": 4, "heads": 4, "ffn_units": 128}
STUDENT_DEPTH = 2
BATCH_SIZE = 32
METHODS = ("alone", "distilbert", "tinybert")


def load_task(task, quick):
    if task == "sentiment":
        train, test = (400, 200) if quick else (3000, 1000)
        (x, y), (xt, yt) = tfkd.data.load_sentiment(train, test, sequence_length=32, seed=0)
        spec = {"vocab_size": tfkd.data.Tokenizer().vocab_size, "sequence_length": 32,
                "num_classes": 2, "pooling": "cls"}
    else:
        (x, y), (xt, yt) = tfkd.data.load_mnist(source="bundled", verbose=False)
        if quick:
            size = 400 if quick else 3000
            x, y, xt, yt = x[:size], y[:size], xt[: size // 2], yt[: size // 2]
        spec = {"image_shape": (28, 28, 1), "patch_size": 7, "num_classes": 10}
    return (x, y), (xt, yt), spec


def label_loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def train_alone(model, x, y, epochs, lr):
    model.compile(keras.optimizers.Adam(lr), label_loss(), metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=BATCH_SIZE, verbose=0)
    return model


def distil(teacher, student, losses, x, y, epochs, lr):
    distiller = tfkd.Distiller(teacher=teacher, student=student, distillation_losses=losses,
                               student_loss_weight=0.5)
    distiller.compile(keras.optimizers.Adam(lr), loss=label_loss())
    distiller.fit(x, y, epochs=epochs, batch_size=BATCH_SIZE, verbose=0)
    return distiller.student


def distilbert_losses():
    last_t, last_s = f"block_{TEACHER['depth'] - 1}_output", f"block_{STUDENT_DEPTH - 1}_output"
    return [L.LogitsDistillation(temperature=2.0),
            L.HiddenStateDistillation([last_t], [last_s], loss="cosine")]


def tinybert_losses():
    blocks_t = [f"block_{i}_output" for i in range(TEACHER["depth"])]
    blocks_s = [f"block_{i}_output" for i in range(STUDENT_DEPTH)]
    attention_t = [f"block_{i}_attention" for i in range(TEACHER["depth"])]
    attention_s = [f"block_{i}_attention" for i in range(STUDENT_DEPTH)]
    return [L.HiddenStateDistillation(["embeddings"], ["embeddings"]),
            L.HiddenStateDistillation(blocks_t, blocks_s),
            L.AttentionDistillation(attention_t, attention_s),
            L.LogitsDistillation(temperature=2.0)]


def measure(model, kind, xt, yt, x_calibration, tmp):
    """Accuracy, bytes and batch-1 latency of `model` exported as `kind`."""
    quantization = "float32" if kind == "float32" else "int8"
    path = os.path.join(tmp, f"{model.name}_{kind}.tflite")
    data = tfkd.export.to_tflite(model, path, quantization=quantization,
                                 representative_data=x_calibration[:256], check=False)
    runner = tfkd.TFLiteModel(path, threads=1)
    accuracy = runner.evaluate(xt, yt)["accuracy"]
    latency = runner.latency(batch=1, warmup=20, runs=200).median_ms
    return {"accuracy": accuracy, "bytes": len(data), "latency_ms": latency}


def run_seed(task, seed, quick, tmp):
    (x, y), (xt, yt), spec = load_task(task, quick)
    epochs = 1 if quick else (8 if task == "sentiment" else 5)
    qat_epochs = 1
    lr = 1e-3
    keras.utils.set_random_seed(seed)
    teacher = tfkd.models.build_transformer(**spec, **TEACHER, name=f"teacher_{task}_{seed}")
    train_alone(teacher, x, y, epochs, lr)
    rows = {"teacher": {"params": teacher.count_params(),
                        "float32": measure(teacher, "float32", xt, yt, x, tmp)}}
    students = {}
    keras.utils.set_random_seed(seed + 100)
    students["alone"] = train_alone(
        tfkd.models.shrink(teacher, depth=STUDENT_DEPTH, name="alone"), x, y, epochs, lr)
    keras.utils.set_random_seed(seed + 100)
    students["distilbert"] = distil(
        teacher, tfkd.models.shrink(teacher, depth=STUDENT_DEPTH, copy_weights=True,
                                    name="distilbert"), distilbert_losses(), x, y, epochs, lr)
    keras.utils.set_random_seed(seed + 100)
    students["tinybert"] = distil(
        teacher, tfkd.models.shrink(teacher, depth=STUDENT_DEPTH, name="tinybert"),
        tinybert_losses(), x, y, epochs, lr)
    for method, student in students.items():
        row = {"params": student.count_params()}
        row["float32"] = measure(student, "float32", xt, yt, x, tmp)
        row["int8_ptq"] = measure(student, "int8_ptq", xt, yt, x, tmp)
        keras.utils.set_random_seed(seed + 200)
        qat = tfkd.quantize(student)
        if method == "alone":
            qat = train_alone(qat, x, y, qat_epochs, lr / 4)
        else:
            qat = distil(teacher, qat, [L.LogitsDistillation(temperature=2.0)], x, y,
                         qat_epochs, lr / 4)
        qat._name = f"{method}_qat"
        row["int8_qat"] = measure(qat, "int8_qat", xt, yt, x, tmp)
        rows[method] = row
    return rows


def summarize(runs):
    """Means over seeds per task, method and format."""
    summary = {}
    for task, seeds in runs.items():
        table = {}
        teacher_accuracy = statistics.mean(r["teacher"]["float32"]["accuracy"] for r in seeds)
        for method in ("teacher", *METHODS):
            for kind in ("float32", "int8_ptq", "int8_qat"):
                if kind not in seeds[0][method]:
                    continue
                values = [r[method][kind] for r in seeds]
                accuracies = [v["accuracy"] for v in values]
                table[f"{method}/{kind}"] = {
                    "accuracy": statistics.mean(accuracies),
                    "accuracy_std": statistics.pstdev(accuracies),
                    "of_teacher": statistics.mean(accuracies) / teacher_accuracy,
                    "params": seeds[0][method]["params"],
                    "bytes": values[0]["bytes"],
                    "latency_ms": statistics.median(v["latency_ms"] for v in values),
                }
        summary[task] = table
    return summary


def targets(table):
    """The issue's targets, each as (description, met)."""
    teacher = table["teacher/float32"]
    best = max(("distilbert", "tinybert"), key=lambda m: table[f"{m}/float32"]["accuracy"])
    student = table[f"{best}/float32"]
    int8 = table[f"{best}/int8_qat"]
    return [
        (f"{best} keeps >= 97% of the teacher's accuracy ({student['of_teacher']:.1%})",
         student["of_teacher"] >= 0.97),
        (f"{best} beats the student trained alone ({student['accuracy']:.3f} vs "
         f"{table['alone/float32']['accuracy']:.3f})",
         student["accuracy"] > table["alone/float32"]["accuracy"]),
        (f"{best} int8 QAT >= 6x smaller than the teacher's float32 "
         f"({teacher['bytes'] / int8['bytes']:.1f}x)", teacher["bytes"] >= 6 * int8["bytes"]),
        (f"{best} int8 QAT >= 3x faster at batch 1 than the teacher's float32 "
         f"({teacher['latency_ms'] / int8['latency_ms']:.1f}x)",
         teacher["latency_ms"] >= 3 * int8["latency_ms"]),
        *[(f"{m} QAT int8 accuracy >= PTQ int8 ({table[f'{m}/int8_qat']['accuracy']:.3f} vs "
           f"{table[f'{m}/int8_ptq']['accuracy']:.3f})",
           table[f"{m}/int8_qat"]["accuracy"] >= table[f"{m}/int8_ptq"]["accuracy"])
          for m in METHODS],
    ]


def to_markdown(summary, seeds, seconds, quick):
    lines = [
        "# Transformers: DistilBERT- and TinyBERT-style students, float32 / int8 PTQ / int8 QAT",
        "",
        f"`python benchmarks/transformers.py --seeds {seeds}{' --quick' if quick else ''}` "
        f"({seconds / 60:.1f} min on a shared 2-core CPU). Teacher: 4 blocks, width 64, 4 heads; "
        "students: 2 blocks, same width. Every figure is of a `.tflite` file under LiteRT "
        "(1 thread, batch 1 latency, median over seeds); accuracy is the mean over seeds "
        "(+- population std).",
        "",
    ]
    for task, table in summary.items():
        lines += [f"## {task}", "",
                  "| model | format | accuracy | % of teacher | params | file bytes | "
                  "latency (ms) |", "|---|---|---|---|---|---|---|"]
        for key, row in table.items():
            method, kind = key.split("/")
            lines.append(
                f"| {method} | {kind} | {row['accuracy']:.3f} +- {row['accuracy_std']:.3f} | "
                f"{row['of_teacher']:.1%} | {row['params']:,} | {row['bytes']:,} | "
                f"{row['latency_ms']:.3f} |"
            )
        lines += ["", "Targets:", ""]
        lines += [f"- [{'x' if met else ' '}] {text}" for text, met in targets(table)]
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tasks", nargs="+", default=["sentiment", "mnist"])
    parser.add_argument("--quick", action="store_true", help="small data, few epochs, 1 seed")
    parser.add_argument("--out", default="transformers", help="results file name (no suffix)")
    args = parser.parse_args(argv)
    seeds = 1 if args.quick else args.seeds
    start = time.time()
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks:
            runs[task] = []
            for seed in range(seeds):
                runs[task].append(run_seed(task, seed, args.quick, tmp))
                print(f"[{time.time() - start:.0f} s] {task} seed {seed} done", file=sys.stderr)
    summary = summarize(runs)
    text = to_markdown(summary, seeds, time.time() - start, args.quick)
    print(text)
    if not args.quick:
        os.makedirs(RESULTS, exist_ok=True)
        write_text(os.path.join(RESULTS, f"{args.out}.md"), text + "\n")
        write_text(os.path.join(RESULTS, f"{args.out}.json"),
                   json.dumps({"seeds": seeds, "seconds": time.time() - start,
                               "summary": summary, "runs": runs}, indent=1) + "\n")
    return summary


if __name__ == "__main__":
    main()
