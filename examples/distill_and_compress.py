# ruff: noqa: E402 (keras.io style: the header and the introduction come before the imports)
"""
Title: From a big CNN to a 3 KB int8 model: distil, prune, quantize and export with tfkd
Author: the tfkd authors
Date created: 2026/11/22
Description: Teach a tiny student from a CNN teacher, prune it to 80% zeros and train it with int8
    quantization inside the same distillation, then export `.tflite` and `.onnx` files and measure
    every step side by side.
Accelerator: None (runs on a laptop CPU in a few minutes)
"""

"""
## Introduction

Knowledge distillation trains a small *student* to mimic a large *teacher*'s softened outputs
(Hinton et al., 2015). On a phone, a small model is only half the answer: it should also be mostly
zeros (pruning) and 8-bit (quantization), and it must come out of the converter as an int8 file.
tfkd does all of it on `tf_keras`, the Keras that TF-MOT's pruning and quantization need:

1. distil the student with `tfkd.Distiller` (keras.io's Distiller API),
2. prune it inside the distillation (`tfkd.prune`, then `tfkd.strip`),
3. train it with simulated int8 quantization against the float teacher (`tfkd.quantize`),
4. export it (`tfkd.export.to_tflite`, `tfkd.export.to_onnx`) and measure every stage with
   `tfkd.Report`,

and `tfkd.compress` does steps 1-4 in one call.

Set `QUICK=1` in the environment to run every step for a few epochs only (what the test does).
"""

"""
## Setup
"""

import os
import tempfile

import numpy as np

import tfkd

keras = tfkd.keras  # tf_keras: the Keras that TF-MOT's pruning and quantization work with

QUICK = os.environ.get("QUICK", "0") == "1"
EPOCHS = 2 if QUICK else 150  # student epochs, alone and distilled
TEACHER_EPOCHS = 2 if QUICK else 40
OUT_DIR = os.environ.get("OUT_DIR") or tempfile.mkdtemp(prefix="tfkd-example-")

keras.utils.set_random_seed(0)

"""
## Data

MNIST when it can be downloaded (on Colab), otherwise the handwritten digits that ship with
scikit-learn (8x8 images, 1,797 of them, half held out for testing), which need no network.
"""


def load_data():
    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as error:  # no network: fall back to the bundled digits
        print(f"MNIST unavailable ({type(error).__name__}); using the bundled digits.")
        return "digits", *tfkd.data.load_digits()
    x_train = (x_train[..., None] / 255.0).astype("float32")
    x_test = (x_test[..., None] / 255.0).astype("float32")
    if QUICK:
        x_train, y_train = x_train[:2000], y_train[:2000]
        x_test, y_test = x_test[:500], y_test[:500]
    return "mnist", (x_train, y_train), (x_test, y_test)


dataset, (x_train, y_train), (x_test, y_test) = load_data()
print(dataset, x_train.shape, x_test.shape)

"""
## The teacher

A CNN: on MNIST the keras.io example's teacher (strided convolutions of 256 and 512 filters), on
the digits tfkd's reference teacher (about 160k parameters). Both output logits.
"""

if dataset == "mnist":
    teacher = tfkd.models.build_keras_io_teacher()
    make_student = tfkd.models.build_keras_io_student
    batch_size, learning_rate = 64, 1e-3
    EPOCHS, TEACHER_EPOCHS = min(EPOCHS, 3), min(TEACHER_EPOCHS, 3)  # 60,000 images: a few epochs
else:
    teacher = tfkd.models.build_teacher()
    make_student = tfkd.models.build_student  # a 4,810-parameter MLP (1/33 of the teacher)
    batch_size, learning_rate = 32, 5e-3

sparse_ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
teacher.compile(optimizer=keras.optimizers.Adam(2e-3), loss=sparse_ce, metrics=["accuracy"])
teacher.fit(x_train, y_train, epochs=TEACHER_EPOCHS, batch_size=batch_size, verbose=0)
print("teacher test accuracy:", teacher.evaluate(x_test, y_test, verbose=0)[1])

"""
## The student, trained alone

The baseline distillation has to beat: the same student, optimizer, epochs and batch, on the
labels alone.
"""

keras.utils.set_random_seed(0)
alone = make_student()
alone.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=sparse_ce, metrics=["accuracy"])
alone.fit(x_train, y_train, epochs=EPOCHS, batch_size=batch_size, verbose=0)

"""
## Distillation

`tfkd.Distiller` takes keras.io's arguments unchanged. The loss is `alpha * student_loss + (1 -
alpha) * KL(softmax(teacher / T), softmax(student / T)) * T**2`; the teacher is frozen and runs
outside the gradient tape.
"""

keras.utils.set_random_seed(0)
student = make_student()
distiller = tfkd.Distiller(student=student, teacher=teacher)
distiller.compile(
    optimizer=keras.optimizers.Adam(learning_rate),
    metrics=["accuracy"],
    student_loss_fn=sparse_ce,
    distillation_loss_fn=keras.losses.KLDivergence(),
    alpha=0.1,
    temperature=8,
)
distiller.fit(x_train, y_train, epochs=EPOCHS, batch_size=batch_size, verbose=0)

"""
## Compression inside the distillation

Pruning zeroes the smallest weights on a schedule while the student keeps learning from the
teacher; `Distiller.fit` adds the pruning callback itself. `tfkd.strip` then removes the wrappers,
and prune-preserving quantization-aware training (`preserve="sparsity"`) keeps the zeros while
the student learns to live with int8 weights and activations, still against the float teacher.
"""


def distil(model, epochs, learning_rate):
    d = tfkd.Distiller(student=model, teacher=teacher)
    d.compile(optimizer=keras.optimizers.Adam(learning_rate), metrics=["accuracy"],
              student_loss_fn=sparse_ce, distillation_loss_fn=keras.losses.KLDivergence(),
              alpha=0.1, temperature=8)
    d.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, verbose=0)


pruned = tfkd.prune(student, target_sparsity=0.8)
distil(pruned, max(1, EPOCHS // 5), 3e-3)
pruned = tfkd.strip(pruned)
print("sparsity per layer:", tfkd.sparsity(pruned).layers)

qat = tfkd.quantize(pruned, preserve="sparsity")
distil(qat, max(1, EPOCHS // 15), 5e-4)

"""
## Export

The QAT student converts to a full-integer `.tflite` (int8 input and output, every op int8)
without calibration data; its learned ranges are used. The float files come from the pruned
student.
"""

int8_path = os.path.join(OUT_DIR, "student_int8.tflite")
float_path = os.path.join(OUT_DIR, "student_float32.tflite")
onnx_path = os.path.join(OUT_DIR, "student.onnx")
tfkd.export.to_tflite(qat, int8_path, quantization="int8")
tfkd.export.to_tflite(pruned, float_path)
tfkd.export.to_onnx(pruned, onnx_path)
print(tfkd.profile(int8_path))

"""
## Every stage side by side

`tfkd.Report` measures each stage on the same test set: accuracy, agreement with the teacher,
parameters, bytes, gzip bytes (what a download costs), sparsity and batch-1 latency.
"""

report = tfkd.Report(title=f"tfkd example ({dataset})")
for name, model in [("teacher", teacher), ("student", alone), ("distilled", student),
                    ("pruned", pruned), ("qat", qat), ("float32-tflite", float_path),
                    ("int8-tflite", int8_path), ("onnx", onnx_path)]:
    report.add(name, model, x=x_test, y=y_test)
print(report.to_markdown())
report.plot(os.path.join(OUT_DIR, "report.png"))

"""
## The whole path in one call

`tfkd.compress` runs the same steps with the same defaults (and caches the teacher's outputs, so
distillation costs about what a plain fit costs) and writes the models, the files, `report.json`,
`report.md` and `report.png` to `out_dir`.
"""

keras.utils.set_random_seed(0)
one_call = tfkd.compress(
    teacher, make_student(), (x_train, y_train), (x_test, y_test),
    distill={"epochs": EPOCHS, "batch_size": batch_size, "learning_rate": learning_rate},
    prune={"target_sparsity": 0.8, "epochs": max(1, EPOCHS // 5)},
    quantize={"epochs": max(1, EPOCHS // 15)},
    out_dir=os.path.join(OUT_DIR, "compress"), verbose=0,
)
int8 = one_call.stage("int8-tflite")
print(f"compress(): int8 .tflite {int8['gzip_bytes']:,} bytes gzipped, "
      f"accuracy {100 * int8['accuracy']:.2f}%")
np.testing.assert_array_less(0, int8["gzip_bytes"])

"""
## What you should see

On the bundled digits (no network; 150 student epochs, 40 teacher epochs, a 2-core CPU), a run
printed (accuracy on the 899 held-out digits, gzip bytes):

| Stage | Accuracy | Params | Gzip bytes | Sparsity |
|---|---:|---:|---:|---:|
| teacher | 98.89% | 159,626 | 591,082 | 0% |
| student (alone) | 97.00% | 4,810 | 17,989 | 0% |
| distilled | 97.78% | 4,810 | 18,021 | 0% |
| pruned | 96.77% | 4,810 | 5,716 | 80% |
| qat | 96.44% | 4,810 | 5,710 | 80% |
| float32-tflite | 96.77% | 4,810 | 6,501 | 80% |
| int8-tflite | 96.44% | 4,810 | 2,883 | 80% |
| onnx | 96.77% | 4,810 | 6,143 | 80% |

and `compress()`: int8 `.tflite` 2,882 bytes gzipped at 96.89%.

The distilled student makes a quarter fewer errors than the same student trained alone (20
against 27 of 899); pruning to 80% zeros and int8 QAT cost about a point and a half together; the
int8 file holds only int8 ops and is 205x smaller gzipped than the teacher, 2.4 points below it.
The `.tflite` and `.onnx` files agree with the Keras models they came from. On MNIST (Colab) the
keras.io teacher and student go down the same path at 28x28.
"""
