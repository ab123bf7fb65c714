"""Export benchmark: every size, accuracy and speed ratio of the path to the edge, side by side.

Measured in one run on the bundled digits (half held out for test, 899 images) and, for int8
speed, on the keras.io example's teacher (28x28 inputs, conv 256/512; random weights: speed does
not depend on them):

1. int8 `.tflite` bytes / float32 `.tflite` bytes (target <= 0.28x), on the digits teacher
   (165k parameters) and, for the record, on the 13.7k-parameter CNN student (where the flatbuffer's
   ~2 KB of fixed overhead weighs more);
2. int8 test accuracy against the float Keras student: post-training (PTQ, within 0.5 points) and
   quantization-aware (QAT, within 0.3 points, and QAT >= PTQ);
3. batch-1 latency of the int8 `.tflite` / float32 `.tflite` on the keras.io teacher (<= 0.4x);
4. `model.predict` on one sample / float32 `.tflite` invoke on one sample (>= 30x faster);
5. gzip of the 80%-pruned int8 `.tflite` / gzip of the dense float32 `.tflite` (<= 0.10x),
   on the digits teacher, beside the order-0 entropy of its int8 weights (what an ideal coder
   of independent weights would need);
6. max |ONNX - Keras| over the test set (<= 1e-4), teacher and student;
7. the whole path: teacher -> distilled, 80%-pruned, QAT int8 student: teacher's float32
   `.tflite` gzip / student's gzip (>= 50x) at test accuracy within 1.5 points of the teacher.

Latencies are medians of many single calls on 1 thread (LiteRT's XNNPACK delegate). The machine
may be shared: ratios measured side by side in one process are what to read.

Run: `.venv/bin/python benchmarks/export.py [--quick]`; writes `benchmarks/results/export.md`
and `benchmarks/results/export.png` (the whole path as a `tfkd.Report` plot).
"""

import argparse
import os
import tempfile
import time
import types

import numpy as np

import tfkd
from tfkd import keras

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
CALIBRATION = 300


def sparse_ce():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def accuracy(model, x, y):
    outputs = model.predict(x, verbose=0) if hasattr(model, "layers") else model.predict(x)
    return float(np.mean(np.asarray(outputs).argmax(-1) == y))


def train_teacher(x, y, epochs):
    keras.utils.set_random_seed(0)
    teacher = tfkd.models.build_teacher()
    teacher.compile(optimizer=keras.optimizers.Adam(2e-3), loss=sparse_ce(), metrics=["accuracy"])
    teacher.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    return teacher


def distill(teacher, student, x, y, epochs, learning_rate=5e-3):
    distiller = tfkd.Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        metrics=["accuracy"],
        student_loss_fn=sparse_ce(),
        distillation_loss_fn=keras.losses.KLDivergence(),
        alpha=0.5,
        temperature=4.0,
    )
    distiller.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    return distiller.student


def fine_tune(model, x, y, epochs, learning_rate=1e-3):
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=sparse_ce(),
                  metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0,
              callbacks=tfkd.callbacks(model))
    return model


def median_ms(call, runs, warmup=5):
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def entropy_bytes(data):
    """Order-0 entropy (bytes) of the weights of CONV_2D/FULLY_CONNECTED: what an ideal coder of
    independent weight values needs, the bound gzip approaches."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    total = 0.0
    for op in interpreter._get_ops_details():
        if op["op_name"] in ("CONV_2D", "FULLY_CONNECTED", "DEPTHWISE_CONV_2D"):
            weights = interpreter.get_tensor(op["inputs"][1]).ravel()
            _, counts = np.unique(weights, return_counts=True)
            p = counts / counts.sum()
            total += float(-(counts * np.log2(p)).sum()) / 8
    return total


def onnx_difference(model, x, folder, name):
    path = tfkd.export.to_onnx(model, os.path.join(folder, f"{name}.onnx"))
    return float(np.max(np.abs(tfkd.ONNXModel(path).predict(x) - model.predict(x, verbose=0))))


def keras_io_latency(runs):
    """Batch-1 latency of the keras.io teacher as float32 and int8 `.tflite` (1 thread)."""
    keras.utils.set_random_seed(0)
    model = tfkd.models.build_keras_io_teacher()
    calibration = np.random.default_rng(0).random((64, 28, 28, 1), dtype=np.float32)
    float32 = tfkd.TFLiteModel(tfkd.export.to_tflite(model))
    int8 = tfkd.TFLiteModel(tfkd.export.to_tflite(model, quantization="int8",
                                                  representative_data=calibration))
    # Interleave the two so that load changes hit both alike.
    f_times, i_times = [], []
    for _ in range(5):
        f_times.append(float32.latency(warmup=3, runs=runs // 5).median_ms)
        i_times.append(int8.latency(warmup=3, runs=runs // 5).median_ms)
    return float(np.median(f_times)), float(np.median(i_times))


def copy_model(model):
    """A trainable copy (a teacher a Distiller froze clones frozen: its config says so)."""
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    clone.trainable = True
    return clone


def build_student(name="student"):
    """A small CNN student: conv 16 and 32 with pooling, dense 64; 13.7k parameters (1/12)."""
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1"),
            keras.layers.MaxPooling2D(name="pool1"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2"),
            keras.layers.MaxPooling2D(name="pool2"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(64, activation="relu", name="hidden"),
            keras.layers.Dense(10, name="logits"),
        ],
        name=name,
    )


class Table:
    """Rows of (what, measured, target, passed) and the stages' report."""

    def __init__(self):
        self.rows = []

    def add(self, what, measured, target, passed):
        self.rows.append((what, measured, target, "yes" if passed else "**no**"))
        print(f"{what:<62} {measured:>22}  target {target:<14} {'ok' if passed else 'MISSED'}",
              flush=True)

    def markdown(self):
        lines = ["| Measure | Measured | Target | Met |", "|---|---:|---:|:---:|"]
        lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in self.rows]
        return "\n".join(lines)


def run(args):
    """Every measure of the table, in one process: `(table, report, final student's profile)`."""
    (x_train, y_train), (x_test, y_test) = tfkd.data.load_digits()
    with tempfile.TemporaryDirectory(prefix="tfkd-export-bench-") as folder:
        c = types.SimpleNamespace(
            x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
            calibration=x_train[:CALIBRATION], folder=folder, epochs=args.epochs, runs=args.runs,
            table=Table(),
            report=tfkd.Report(title="Digits: teacher -> distilled, 80% pruned, int8 student"),
        )
        teacher, teacher_acc, teacher_f32 = measure_teacher_bytes(c)
        student = measure_quantized_accuracy(c, teacher)
        measure_latencies(c, teacher, teacher_f32)
        dense_gzip = measure_pruned_gzip(c, teacher, teacher_f32)
        measure_onnx(c, teacher, student)
        final_profile = measure_whole_path(c, teacher, teacher_acc, dense_gzip)
    return c.table, c.report, final_profile


def measure_teacher_bytes(c):
    """1. int8 bytes against float32 bytes (digits teacher)."""
    start = time.perf_counter()
    teacher = train_teacher(c.x_train, c.y_train, epochs=c.epochs)
    teacher_seconds = time.perf_counter() - start
    teacher_acc = accuracy(teacher, c.x_test, c.y_test)
    teacher_f32 = tfkd.export.to_tflite(teacher, os.path.join(c.folder, "teacher.tflite"))
    teacher_i8 = tfkd.export.to_tflite(teacher, quantization="int8",
                                       representative_data=c.calibration)
    c.report.add("teacher", teacher, x=c.x_test, y=c.y_test, train_seconds=teacher_seconds)
    c.report.add("teacher float32 .tflite", teacher_f32, x=c.x_test, y=c.y_test)
    ratio = len(teacher_i8) / len(teacher_f32)
    c.table.add("1. int8 / float32 .tflite bytes (teacher, 165k params)",
                f"{len(teacher_i8):,} / {len(teacher_f32):,} = {ratio:.3f}x", "<= 0.28x",
                ratio <= 0.28)
    return teacher, teacher_acc, teacher_f32


def measure_quantized_accuracy(c, teacher):
    """2. PTQ and QAT accuracy against the float Keras student (and 1b, the student's bytes)."""
    keras.utils.set_random_seed(1)
    start = time.perf_counter()
    student = distill(teacher, build_student(), c.x_train, c.y_train, epochs=c.epochs)
    student_seconds = time.perf_counter() - start
    student_acc = accuracy(student, c.x_test, c.y_test)
    student_f32 = tfkd.export.to_tflite(student)
    student_i8 = tfkd.export.to_tflite(student, quantization="int8",
                                       representative_data=c.calibration)
    ratio = len(student_i8) / len(student_f32)
    c.table.add("1b. int8 / float32 .tflite bytes (student, 13.7k params; record)",
                f"{len(student_i8):,} / {len(student_f32):,} = {ratio:.3f}x", "(record)", True)
    c.report.add("distilled", student, x=c.x_test, y=c.y_test, train_seconds=student_seconds)
    ptq_acc = tfkd.TFLiteModel(student_i8).evaluate(c.x_test, c.y_test)["accuracy"]
    keras.utils.set_random_seed(2)
    qat = distill(teacher, tfkd.quantize(copy_model(student)), c.x_train, c.y_train,
                  epochs=max(2, c.epochs // 6), learning_rate=5e-4)
    qat_i8 = tfkd.export.to_tflite(qat, quantization="int8")  # no data: the QAT ranges
    qat_acc = tfkd.TFLiteModel(qat_i8).evaluate(c.x_test, c.y_test)["accuracy"]
    c.report.add("distilled int8 PTQ", student_i8, x=c.x_test, y=c.y_test)
    c.report.add("distilled int8 QAT", qat_i8, x=c.x_test, y=c.y_test)
    ptq_gap, qat_gap = 100 * (student_acc - ptq_acc), 100 * (student_acc - qat_acc)
    c.table.add("2a. float student - int8 PTQ accuracy (points)",
                f"{100 * student_acc:.2f} - {100 * ptq_acc:.2f} = {ptq_gap:+.2f}", "<= 0.5",
                ptq_gap <= 0.5)
    c.table.add("2b. float student - int8 QAT accuracy (points)",
                f"{100 * student_acc:.2f} - {100 * qat_acc:.2f} = {qat_gap:+.2f}", "<= 0.3",
                qat_gap <= 0.3)
    c.table.add("2c. QAT - PTQ accuracy (points)", f"{100 * (qat_acc - ptq_acc):+.2f}", ">= 0",
                qat_acc >= ptq_acc)
    return student


def measure_latencies(c, teacher, teacher_f32):
    """3. int8 against float32 latency (keras.io teacher); 4. `.tflite` against `predict`."""
    f_ms, i_ms = keras_io_latency(c.runs)
    c.table.add("3. int8 / float32 .tflite batch-1 latency (keras.io teacher)",
                f"{i_ms:.3f} / {f_ms:.3f} ms = {i_ms / f_ms:.2f}x", "<= 0.4x", i_ms / f_ms <= 0.4)
    one = c.x_test[:1]
    predict_ms = median_ms(lambda: teacher.predict(one, verbose=0), runs=max(20, c.runs // 10))
    tflite_ms = tfkd.TFLiteModel(teacher_f32).latency(runs=c.runs).median_ms
    c.table.add("4. model.predict / float32 .tflite, one sample (teacher)",
                f"{predict_ms:.2f} / {tflite_ms:.3f} ms = {predict_ms / tflite_ms:.0f}x",
                ">= 30x", predict_ms / tflite_ms >= 30)


def measure_pruned_gzip(c, teacher, teacher_f32):
    """5. 80% pruned + int8 + gzip against the dense float32 file (digits teacher)."""
    keras.utils.set_random_seed(3)
    pruned_teacher = tfkd.prune(copy_model(teacher), target_sparsity=0.8)
    pruned_teacher = tfkd.strip(
        fine_tune(pruned_teacher, c.x_train, c.y_train, epochs=max(2, c.epochs // 3))
    )
    pruned_i8 = tfkd.export.to_tflite(pruned_teacher, quantization="int8",
                                      representative_data=c.calibration)
    dense_gzip, pruned_profile = tfkd.profile(teacher_f32).gzip_bytes, tfkd.profile(pruned_i8)
    ratio = pruned_profile.gzip_bytes / dense_gzip
    c.table.add("5. gzip 80%-pruned int8 / gzip dense float32 (teacher)",
                f"{pruned_profile.gzip_bytes:,} / {dense_gzip:,} = {ratio:.4f}x", "<= 0.10x",
                ratio <= 0.10)
    bound = entropy_bytes(pruned_i8)
    c.table.add("5b. order-0 entropy of its int8 weights / gzip dense float32",
                f"{bound:,.0f} / {dense_gzip:,} = {bound / dense_gzip:.4f}x", "(record)", True)
    c.report.add("teacher 80% pruned int8", pruned_i8, x=c.x_test, y=c.y_test)
    return dense_gzip


def measure_onnx(c, teacher, student):
    """6. ONNX against Keras."""
    diff = max(onnx_difference(teacher, c.x_test, c.folder, "teacher"),
               onnx_difference(student, c.x_test, c.folder, "student"))
    c.table.add("6. max |ONNX - Keras| on the test set (teacher, student)", f"{diff:.2e}",
                "<= 1e-4", diff <= 1e-4)
    c.report.add("distilled .onnx", os.path.join(c.folder, "student.onnx"), x=c.x_test,
                 y=c.y_test)


def measure_whole_path(c, teacher, teacher_acc, dense_gzip):
    """7. The whole path: distilled while pruned to 80%, then QAT preserving the zeros, int8."""
    keras.utils.set_random_seed(4)
    start = time.perf_counter()
    pruned = tfkd.prune(build_student(), target_sparsity=0.8)
    pruned = tfkd.strip(distill(teacher, pruned, c.x_train, c.y_train, epochs=c.epochs))
    final = distill(teacher, tfkd.quantize(pruned, preserve="sparsity"), c.x_train, c.y_train,
                    epochs=max(2, c.epochs // 6), learning_rate=5e-4)
    path_seconds = time.perf_counter() - start
    final_i8 = tfkd.export.to_tflite(final, os.path.join(c.folder, "student_int8.tflite"), "int8")
    final_acc = tfkd.TFLiteModel(final_i8).evaluate(c.x_test, c.y_test)["accuracy"]
    final_profile = tfkd.profile(final_i8)
    ratio = dense_gzip / final_profile.gzip_bytes
    gap = 100 * (teacher_acc - final_acc)
    c.report.add("distilled 80% pruned int8 QAT", final_i8, x=c.x_test, y=c.y_test,
                 train_seconds=path_seconds)
    c.table.add("7a. gzip teacher float32 / gzip distilled pruned int8 student",
                f"{dense_gzip:,} / {final_profile.gzip_bytes:,} = {ratio:.0f}x", ">= 50x",
                ratio >= 50)
    c.table.add("7b. teacher - student accuracy (points)",
                f"{100 * teacher_acc:.2f} - {100 * final_acc:.2f} = {gap:+.2f}", "<= 1.5",
                gap <= 1.5)
    return final_profile


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30, help="teacher and student epochs")
    parser.add_argument("--runs", type=int, default=500, help="timed calls per latency")
    parser.add_argument("--quick", action="store_true", help="few epochs and runs (smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.runs = 4, 50
    start = time.perf_counter()
    table, report, final_profile = run(args)
    print()
    print(report.to_markdown())
    print(final_profile)
    os.makedirs(RESULTS, exist_ok=True)
    if not args.quick:
        report.plot(os.path.join(RESULTS, "export.png"))
        text = "\n".join([
            "# Export benchmark",
            "",
            f"`python benchmarks/export.py --epochs {args.epochs} --runs {args.runs}` "
            f"({time.perf_counter() - start:.0f} s; load average at the end: "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores).",
            "",
            table.markdown(),
            "",
            "## The stages (a `tfkd.Report`)",
            "",
            report.to_markdown().split("\n", 2)[2],
            "![report](export.png)",
            "",
            "## The final student's file (`tfkd.profile`)",
            "",
            "```",
            str(final_profile),
            "```",
            "",
        ])
        tfkd.export._atomic.write_text(os.path.join(RESULTS, "export.md"), text)
        print(f"\nwrote {os.path.join(RESULTS, 'export.md')}")


if __name__ == "__main__":
    main()
