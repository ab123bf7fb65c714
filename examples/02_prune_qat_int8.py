# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # From a distilled student to an int8 `.tflite`: prune, QAT, export, run
#
# **Description:** distil the keras.io student on MNIST while pruning it to 80% zeros, train it
# with simulated int8 quantization, export an all-int8 `.tflite`, run it with LiteRT, and measure
# size and like-for-like latency of every stage.
#
# **Accelerator:** none needed.
#
# A phone or a microcontroller wants a model that is small (few non-zero weights, 8-bit) and
# integer-only. Pruning and quantization-aware training (QAT) from the TensorFlow Model
# Optimization Toolkit (TF-MOT) get there; tfkd runs both *inside* the distillation, so the
# student keeps learning from the teacher while it loses weights and precision.
#
# `QUICK=1` in the environment makes every step tiny (the numbers then mean nothing).

# %% [markdown]
# ## Setup

# %%
try:
    import tfkd
except ImportError:  # e.g. on Colab
    # %pip install tfkd
    import tfkd

# %%
import os
import tempfile

from IPython.display import Image

from tfkd import keras

QUICK = os.environ.get("QUICK") == "1"
TEACHER_EPOCHS = 1 if QUICK else 6
EPOCHS = 1 if QUICK else 20
OUT = tempfile.mkdtemp(prefix="tfkd-02-")
keras.utils.set_random_seed(0)

(x_train, y_train), (x_test, y_test) = tfkd.data.load_mnist()
if QUICK:
    x_train, y_train, x_test, y_test = x_train[:500], y_train[:500], x_test[:200], y_test[:200]
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

# %% [markdown]
# ## Teacher, and the distilled student
#
# The keras.io pair; the teacher's outputs are computed once and reused by every distillation
# below (`tfkd.cache_teacher_outputs`).

# %%
teacher = tfkd.models.build_keras_io_teacher()
teacher.compile(keras.optimizers.Adam(1e-3), loss_fn, metrics=["accuracy"])
teacher.fit(x_train, y_train, epochs=TEACHER_EPOCHS, batch_size=64, verbose=2)
cached = tfkd.cache_teacher_outputs(teacher, x_train, verbose=0)


def distil(student, epochs, learning_rate):
    """Distils `student` (plain, pruned or QAT-wrapped) from the cached teacher, in place."""
    distiller = tfkd.Distiller(student=student, teacher=cached)
    distiller.compile(optimizer=keras.optimizers.Adam(learning_rate), metrics=["accuracy"],
                      student_loss_fn=loss_fn, distillation_loss_fn=keras.losses.KLDivergence(),
                      alpha=0.1, temperature=4.0)
    data = cached.dataset(x_train, y_train).shuffle(len(x_train), seed=0).batch(32)
    distiller.fit(data, epochs=epochs, verbose=0)  # pruning steps are added for you
    return student


student = distil(tfkd.models.build_keras_io_student(), EPOCHS, 2e-3)

# %% [markdown]
# ## Which layers can lose weights? Sensitivity analysis
#
# `tfkd.sensitivity` zeroes the smallest weights of one layer at a time and measures accuracy.
# Layers whose accuracy falls fast need a gentler sparsity; `suggest` turns the table into a
# per-layer plan that `tfkd.prune` accepts.

# %%
result = tfkd.sensitivity(student, (x_test, y_test), sparsities=(0.5, 0.8, 0.9, 0.95), verbose=0)
print(f"baseline {result.baseline:.2%}")
for layer, row in result.table.items():
    print(layer, {s: f"{a:.1%}" for s, a in row.items()})
plan = result.suggest(max_accuracy_drop=0.01)
print("plan:", plan)
result.plot(os.path.join(OUT, "sensitivity.png"))

# %%
Image(os.path.join(OUT, "sensitivity.png"))

# %% [markdown]
# ## Prune inside the distillation
#
# `tfkd.prune` wraps the prunable layers with TF-MOT's low-magnitude pruning (a polynomial
# schedule reaching 80% two-thirds of the way through); `Distiller.fit` adds the
# `UpdatePruningStep` callback itself. `tfkd.strip` removes the wrappers and keeps the zeros.

# %%
pruned = tfkd.prune(student, target_sparsity=0.8)
distil(pruned, max(1, EPOCHS // 4), 1e-3)
pruned = tfkd.strip(pruned)
print(tfkd.sparsity(pruned))

# %% [markdown]
# ## Quantization-aware training, still distilled
#
# `tfkd.quantize(..., preserve="sparsity")` simulates int8 weights and activations during
# training and keeps the pruned zeros at zero (TF-MOT's prune-preserving QAT).

# %%
qat = tfkd.quantize(pruned, preserve="sparsity")
distil(qat, max(1, EPOCHS // 10), 5e-4)

# %% [markdown]
# ## Export an all-int8 `.tflite` and run it with LiteRT
#
# A QAT model carries its own scales, so no calibration data is needed. The file has int8 inputs
# and outputs; `tfkd.TFLiteModel` quantizes and dequantizes them with the file's scales.

# %%
int8_path = os.path.join(OUT, "student_int8.tflite")
tfkd.export.to_tflite(qat, int8_path, quantization="int8")
float_path = os.path.join(OUT, "student_float32.tflite")
tfkd.export.to_tflite(pruned, float_path)
print(tfkd.profile(int8_path))
int8_model = tfkd.TFLiteModel(int8_path)
print(int8_model.evaluate(x_test, y_test, reference=teacher))

# %% [markdown]
# ## Every stage side by side
#
# `tfkd.Report` measures each stage on the same test images: accuracy, agreement with the
# teacher, parameters, bytes, gzip bytes (what a download costs), sparsity and batch-1 latency.
# Keras models are timed as their float32 `.tflite` under the same interpreter settings as the
# files, so the latencies compare like with like.

# %%
report = tfkd.Report(title="keras.io student: distilled, pruned, QAT, int8")
for name, obj in (("teacher", teacher), ("distilled", student), ("pruned", pruned),
                  ("qat", qat), ("float32-tflite", float_path), ("int8-tflite", int8_path)):
    report.add(name, obj, x=x_test, y=y_test)
print(report.to_markdown())
report.plot(os.path.join(OUT, "report.png"))
Image(os.path.join(OUT, "report.png"))

# %%
for name in ("teacher", "float32-tflite", "int8-tflite"):
    stage = report.stage(name)
    print(f"{name}: {stage['bytes']:,} bytes, {stage['gzip_bytes']:,} gzipped, "
          f"{stage['latency_us']:.0f} us per image (LiteRT, 1 thread)")
print(int8_model.latency(batch=1))

# %% [markdown]
# ## What you should see
#
# The pruned and QAT students have 80% zeros in their kernels (`tfkd.sparsity` and the report's
# sparsity column); the int8 file is about a quarter of the float32 one in bytes and smaller still
# gzipped (zeros compress); `tfkd.profile` says all-integer with int8 input and output; and the
# int8 file's accuracy is close to the QAT model's (the report's rows side by side). The
# sensitivity table shows which layers lose accuracy first as they are pruned one at a time;
# `suggest` gives those a lower sparsity. `make demo` runs the same path through `tfkd.compress`;
# its measured table is in BENCHMARKS.md and README.
