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
# # Deploy: `.tflite` and `.onnx` inference, int8 scales for a microcontroller, latency, the CLI
#
# **Description:** export a distilled MNIST student, run the files without TensorFlow's Keras,
# read the int8 input/output scales a microcontroller needs, time the files like for like, and do
# the same from the command line.
#
# **Accelerator:** none needed.
#
# `QUICK=1` makes the training tiny.

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
import subprocess
import sys
import tempfile

import numpy as np

from tfkd import keras

QUICK = os.environ.get("QUICK") == "1"
EPOCHS = 1 if QUICK else 20
OUT = tempfile.mkdtemp(prefix="tfkd-05-")
keras.utils.set_random_seed(0)

(x_train, y_train), (x_test, y_test) = tfkd.data.load_mnist()
if QUICK:
    x_train, y_train, x_test, y_test = x_train[:500], y_train[:500], x_test[:200], y_test[:200]

# %% [markdown]
# ## A student to deploy
#
# For brevity, `tfkd.compress` does the whole path (see `02_prune_qat_int8` for each step):
# distil from the keras.io teacher, prune to 80%, QAT, and export float32 and int8 `.tflite` and
# an `.onnx`.

# %%
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
teacher = tfkd.models.build_keras_io_teacher()
teacher.compile(keras.optimizers.Adam(1e-3), loss_fn, metrics=["accuracy"])
teacher.fit(x_train, y_train, epochs=1 if QUICK else 6, batch_size=64, verbose=0)
report = tfkd.compress(
    teacher, tfkd.models.build_keras_io_student(), (x_train, y_train), (x_test, y_test),
    distill={"epochs": EPOCHS, "learning_rate": 2e-3, "temperature": 4.0},
    prune={"epochs": max(1, EPOCHS // 4)}, quantize={"epochs": max(1, EPOCHS // 10)},
    out_dir=OUT, verbose=0)
print(report.to_markdown())
print(sorted(os.listdir(OUT)))

# %% [markdown]
# ## Run the `.tflite` with LiteRT
#
# `tfkd.TFLiteModel` wraps LiteRT's interpreter (`ai_edge_litert`); `predict` takes float images
# and quantizes them for an int8 file itself. Here is the same by hand, as firmware would do it.

# %%
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

int8_path = os.path.join(OUT, "student_int8.tflite")
interpreter = Interpreter(model_path=int8_path)
interpreter.allocate_tensors()
inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
in_scale, in_zero = inp["quantization"]
out_scale, out_zero = out["quantization"]
print(f"input  {inp['dtype'].__name__} {inp['shape']}: real = {in_scale:.6f} * (q - {in_zero})")
print(f"output {out['dtype'].__name__} {out['shape']}: real = {out_scale:.6f} * (q - {out_zero})")

image = x_test[:1]
q = np.clip(np.round(image / in_scale + in_zero), -128, 127).astype(np.int8)
interpreter.set_tensor(inp["index"], q)
interpreter.invoke()
logits = out_scale * (interpreter.get_tensor(out["index"]).astype(np.float32) - out_zero)
print("by hand:", np.argmax(logits), "| TFLiteModel:",
      np.argmax(tfkd.TFLiteModel(int8_path).predict(image)), "| label:", y_test[0])

# %% [markdown]
# ## For a microcontroller
#
# TensorFlow Lite Micro runs the same file from a C array. The constants firmware needs are the
# ones above: an input pixel `p` in [0, 1] becomes `round(p / scale) + zero_point` as int8, and
# an output byte `q` means `scale * (q - zero_point)` (argmax needs no dequantizing at all). The
# file size is the flash it takes.

# %%
data = open(int8_path, "rb").read()
print(f"{len(data):,} bytes of flash; first bytes as a C array:")
print("const unsigned char model[] = {" + ", ".join(f"0x{b:02x}" for b in data[:12]) + ", ...};")
print(f"#define INPUT_SCALE {in_scale:.8f}f\n#define INPUT_ZERO_POINT {in_zero}")

# %% [markdown]
# ## Run the `.onnx` with onnxruntime

# %%
onnx_model = tfkd.ONNXModel(os.path.join(OUT, "student.onnx"))
print("onnx:", onnx_model.evaluate(x_test, y_test))
print("int8 tflite:", tfkd.TFLiteModel(int8_path).evaluate(x_test, y_test))

# %% [markdown]
# ## Latency, like for like
#
# Batch 1, one thread, warm-up calls first, median of many runs: what one image costs on the
# device's CPU. Compare files under the same settings, not a Keras `predict` call against an
# interpreter.

# %%
for name in ("student_float32.tflite", "student_int8.tflite", "student.onnx"):
    path = os.path.join(OUT, name)
    runner = tfkd.ONNXModel(path) if name.endswith(".onnx") else tfkd.TFLiteModel(path)
    print(f"{name:24s} {runner.latency(batch=1, runs=50 if QUICK else 200)}")

# %% [markdown]
# ## The same from the command line
#
# `tfkd inspect` shows inputs, outputs (with int8 scales), size, sparsity and ops; `tfkd eval`
# measures accuracy on an `.npz`; `tfkd bench` times a file; `tfkd convert` exports a Keras model.
# In a notebook, `!tfkd inspect student_int8.tflite` works too.

# %%
npz = os.path.join(OUT, "mnist_test.npz")
np.savez(npz, x_test=x_test, y_test=y_test)


def tfkd_cli(*args):
    result = subprocess.run([sys.executable, "-m", "tfkd", *args], capture_output=True,
                            text=True, check=True)
    print(f"$ tfkd {' '.join(args)}\n{result.stdout}")


tfkd_cli("inspect", int8_path)
tfkd_cli("eval", int8_path, "--data", npz)
tfkd_cli("bench", int8_path, "--runs", "20")
tfkd_cli("convert", os.path.join(OUT, "pruned.keras"), "--to", "onnx",
         "--out", os.path.join(OUT, "pruned.onnx"))

# %% [markdown]
# ## What you should see
#
# The hand-written int8 call and `TFLiteModel` print the same class. The int8 file is about a
# quarter of the float32 one; `tfkd inspect` shows its int8 input and output with their scale
# and zero point (for images in [0, 1], expect an input scale near 1/255 and zero point -128);
# the `.onnx` (float32) agrees with the float `.tflite`. Latencies are per image at batch 1 on
# one thread; on x86 CPUs with int8 dot-product instructions XNNPACK usually runs the int8 file
# faster than the float32 one, but on a model this small call overhead dominates: compare the
# medians your run prints.
