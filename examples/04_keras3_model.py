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
# # A Keras 3 model through the whole path: MobileNetV2 to int8
#
# **Description:** build a `keras.applications.MobileNetV2` with Keras 3 (the `keras` package
# TensorFlow installs today), save it as a Keras 3 `.keras` file, load it with `tfkd.load_model`,
# then distil, prune, quantize and export it to an all-int8 `.tflite`.
#
# **Accelerator:** none needed.
#
# TF-MOT's pruning and quantization only wrap `tf_keras` (Keras 2) models, and refuse Keras 3
# ones. tfkd converts Keras 3 Sequential and Functional models (built-in layers, the operator
# nodes and activations `keras.applications` use) to `tf_keras` with the same weights, so the
# rest of the path is the same as for any other model. MNIST is upsampled to 32x32, the smallest
# input MobileNetV2 accepts. `QUICK=1` makes everything tiny.

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

import keras as keras3  # Keras 3: how the model is written
import numpy as np
import tensorflow as tf

from tfkd import keras  # tf_keras: what tfkd trains

QUICK = os.environ.get("QUICK") == "1"
TEACHER_EPOCHS = 1 if QUICK else 6
EPOCHS = 1 if QUICK else 15
OUT = tempfile.mkdtemp(prefix="tfkd-04-")
keras.utils.set_random_seed(0)
print("Keras 3:", keras3.__version__, "| tfkd trains with tf_keras", keras.__version__)

# %% [markdown]
# ## Data: MNIST at 32x32

# %%
(x_train, y_train), (x_test, y_test) = tfkd.data.load_mnist()
if QUICK:
    x_train, y_train, x_test, y_test = x_train[:300], y_train[:300], x_test[:100], y_test[:100]


def upsample(images):
    return tf.image.resize(images, (32, 32)).numpy()


x_train, x_test = upsample(x_train), upsample(x_test)
print(x_train.shape)

# %% [markdown]
# ## A Keras 3 MobileNetV2, saved as a Keras 3 `.keras` file
#
# `weights=None` builds it offline (no ImageNet weights: they expect 3 channels anyway).
# `alpha=0.35` keeps it small; `classifier_activation=None` outputs logits, which distillation
# needs.

# %%
mobilenet = keras3.applications.MobileNetV2(
    input_shape=(32, 32, 1), alpha=0.35, weights=None, classes=10, classifier_activation=None)
keras3_path = os.path.join(OUT, "mobilenet_v2.keras")
mobilenet.save(keras3_path)
print(f"{mobilenet.count_params():,} parameters, saved by Keras 3 to {keras3_path}")

# %% [markdown]
# ## Load it with tfkd
#
# `tfkd.load_model` sees a Keras 3 file, loads it with Keras 3 and converts it (with one warning
# saying so). `tfkd.from_keras3(model)` does the same for a model in memory.

# %%
student = tfkd.load_model(keras3_path)
print(type(student).__module__, student.count_params())
same = np.allclose(student.predict(x_test[:8], verbose=0),
                   mobilenet.predict(x_test[:8], verbose=0), atol=1e-4)
print("same outputs as the Keras 3 model:", same)

# %% [markdown]
# ## A teacher, and distillation
#
# The keras.io teacher at 32x32 (1.8M parameters). Its outputs are cached once.

# %%
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
teacher = tfkd.models.build_keras_io_teacher(input_shape=(32, 32, 1))
teacher.compile(keras.optimizers.Adam(1e-3), loss_fn, metrics=["accuracy"])
teacher.fit(x_train, y_train, epochs=TEACHER_EPOCHS, batch_size=64, verbose=2)
cached = tfkd.cache_teacher_outputs(teacher, x_train, verbose=0)


def distil(model, epochs, learning_rate):
    distiller = tfkd.Distiller(student=model, teacher=cached)
    distiller.compile(optimizer=keras.optimizers.Adam(learning_rate), metrics=["accuracy"],
                      student_loss_fn=loss_fn, distillation_loss_fn=keras.losses.KLDivergence(),
                      alpha=0.1, temperature=4.0)
    data = cached.dataset(x_train, y_train).shuffle(len(x_train), seed=0).batch(64)
    distiller.fit(data, epochs=epochs, verbose=0)
    return model


distil(student, EPOCHS, 2e-3)

# %% [markdown]
# ## Prune, strip, quantize-aware train, export

# %%
pruned = tfkd.prune(student, target_sparsity=0.5)
distil(pruned, max(1, EPOCHS // 3), 1e-3)
pruned = tfkd.strip(pruned)
qat = tfkd.quantize(pruned, preserve="sparsity")  # BatchNorm folds into the convolutions
distil(qat, max(1, EPOCHS // 5), 5e-4)
int8_path = os.path.join(OUT, "mobilenet_v2_int8.tflite")
tfkd.export.to_tflite(qat, int8_path, quantization="int8")
print(tfkd.profile(int8_path))

# %% [markdown]
# ## Measure

# %%
report = tfkd.Report(title="Keras 3 MobileNetV2 (alpha 0.35) on MNIST 32x32")
stages = (("teacher", teacher), ("distilled", student), ("pruned", pruned), ("qat", qat),
          ("int8-tflite", int8_path))
for name, obj in [stages[i] for i in (0, 1, 4)] if QUICK else stages:  # QUICK: fewer stages
    report.add(name, obj, x=x_test, y=y_test, latency=not QUICK)
print(report.to_markdown())

# %% [markdown]
# ## What you should see
#
# `same outputs as the Keras 3 model: True`: the converted tf_keras model computes what the
# Keras 3 one does, weights included. The int8 file's profile says all-integer with int8 input
# and output, and the report puts its accuracy beside the float stages'. A MobileNetV2 without
# pretrained weights, trained from scratch on a few thousand 32x32 digits for a few epochs, is
# not expected to beat the keras.io student at this size: the point here is that a Keras 3
# `keras.applications` model goes down the same path as any tf_keras model.
