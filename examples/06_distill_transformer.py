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
# # DistilBERT- and TinyBERT-style distillation of a Keras encoder, down to an int8 `.tflite`
#
# **Description:** train a small transformer encoder on a text task, distil it into a student
# with half its blocks (DistilBERT's recipe, then TinyBERT's), train the student with simulated
# int8 quantization, and export an all-integer `.tflite` that LiteRT runs.
#
# **Accelerator:** none needed.
#
# DistilBERT (Sanh et al., 2019) keeps one block of two of BERT, starts from the teacher's weights
# and learns from the teacher's soft targets and last hidden states. TinyBERT (Jiao et al., 2020)
# also matches every block's hidden states (through a learned projection when widths differ) and
# attention maps. tfkd gives both as losses that name the layers they read, for tfkd's reference
# encoders and for encoders you build yourself from `Embedding`, `MultiHeadAttention`,
# `LayerNormalization` and `Dense`.
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
EPOCHS = 1 if QUICK else 12
keras.utils.set_random_seed(0)

# %% [markdown]
# ## Data: sentiment that needs word order
#
# `tfkd.data.load_sentiment` generates sentences such as "the plot was not honestly very good but
# the music was awful". Negation flips the adjective it governs (even several words later),
# intensifiers double it, and the clause after "but" counts three times. "not good but awful" and
# "good but not awful" hold the same words with opposite labels, so a bag of words cannot solve it.

# %%
train_size, test_size = (256, 128) if QUICK else (4000, 1000)
(x_train, y_train), (x_test, y_test) = tfkd.data.load_sentiment(train_size, test_size)
tokenizer = tfkd.data.Tokenizer()
print(tokenizer.decode(x_train[0]), "->", y_train[0])
print("token ids:", x_train.shape, "vocabulary:", tokenizer.vocab_size)

# %% [markdown]
# ## Teacher: a 4-block encoder
#
# `tfkd.models.build_transformer` builds a tf_keras Functional encoder whose layers are named for
# the losses: `embeddings`, `block_{i}_attention` (the `MultiHeadAttention`), `block_{i}_output`
# (the block's hidden states), `logits`. Residuals are `Add` layers, which TF-MOT can wrap.

# %%
teacher = tfkd.models.build_transformer(
    vocab_size=tokenizer.vocab_size, sequence_length=x_train.shape[1], num_classes=2,
    width=64, depth=4, heads=4, ffn_units=128, name="teacher",
)
loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
teacher.compile(keras.optimizers.Adam(1e-3), loss, metrics=["accuracy"])
teacher.fit(x_train, y_train, epochs=EPOCHS, batch_size=64, verbose=0)
print("teacher accuracy:", teacher.evaluate(x_test, y_test, verbose=0)[1])

# %% [markdown]
# ## DistilBERT-style student
#
# `tfkd.models.shrink(teacher, depth=2, copy_weights=True)` keeps blocks 0 and 2 of the teacher,
# its embeddings and its head. The objective is DistilBERT's: soft-target KL
# (`LogitsDistillation`), cosine between the last hidden states (`HiddenStateDistillation` with
# `loss="cosine"`) and the label loss.

# %%
distilbert = tfkd.models.shrink(teacher, depth=2, copy_weights=True, name="distilbert")
distiller = tfkd.Distiller(
    teacher=teacher,
    student=distilbert,
    distillation_losses=[
        tfkd.losses.LogitsDistillation(temperature=2.0),
        tfkd.losses.HiddenStateDistillation(["block_3_output"], ["block_1_output"],
                                            loss="cosine"),
    ],
    student_loss_weight=0.5,
)
distiller.compile(keras.optimizers.Adam(1e-3), loss=loss, metrics=["accuracy"])
distiller.fit(x_train, y_train, epochs=EPOCHS, batch_size=64, verbose=0)
print("DistilBERT-style student:", distiller.evaluate(x_test, y_test, verbose=0, return_dict=True))

# %% [markdown]
# ## TinyBERT-style student
#
# Fresh weights; the student's block `i` learns from the teacher's block `(i + 1) * 4 / 2 - 1`
# (the uniform layer map: blocks 1 and 3), hidden states by MSE and attention probabilities by
# MSE, plus the embeddings and the soft targets. `AttentionDistillation` reads the scores of the
# model's own `MultiHeadAttention` layers by name.

# %%
tinybert = tfkd.models.shrink(teacher, depth=2, name="tinybert")
tiny_losses = [
    tfkd.losses.HiddenStateDistillation(["embeddings"], ["embeddings"]),
    tfkd.losses.HiddenStateDistillation([f"block_{i}_output" for i in range(4)],
                                        ["block_0_output", "block_1_output"]),
    tfkd.losses.AttentionDistillation([f"block_{i}_attention" for i in range(4)],
                                      ["block_0_attention", "block_1_attention"]),
    tfkd.losses.LogitsDistillation(temperature=2.0),
]
print([pair for pair in tiny_losses[2].layer_pairs])
distiller = tfkd.Distiller(teacher=teacher, student=tinybert, distillation_losses=tiny_losses)
distiller.compile(keras.optimizers.Adam(1e-3), loss=loss, metrics=["accuracy"])
distiller.fit(x_train, y_train, epochs=EPOCHS, batch_size=64, verbose=0)
print("TinyBERT-style student:", distiller.evaluate(x_test, y_test, verbose=0, return_dict=True))

# %% [markdown]
# ## Quantization-aware training and an all-integer `.tflite`
#
# `tfkd.quantize` wraps every layer of the encoder: TF-MOT's configs for `Dense` and `Add`, and
# tfkd's for `MultiHeadAttention` (8-bit kernels, projections, both matmuls and the softmax),
# `LayerNormalization`, `Embedding` and the position embeddings. The QAT student fine-tunes with
# the float teacher, then exports to int8: token ids go in as int32, everything else is int8.

# %%
qat = tfkd.quantize(distilbert)
distiller = tfkd.Distiller(teacher=teacher, student=qat,
                           distillation_losses=[tfkd.losses.LogitsDistillation(temperature=2.0)])
distiller.compile(keras.optimizers.Adam(2.5e-4), loss=loss, metrics=["accuracy"])
distiller.fit(x_train, y_train, epochs=1 if QUICK else 3, batch_size=64, verbose=0)

teacher_file = tfkd.export.to_tflite(teacher, "teacher_float32.tflite")
student_file = tfkd.export.to_tflite(qat, "student_int8.tflite", quantization="int8",
                                     representative_data=x_train[:256], check=not QUICK)
for name, path in (("teacher float32", "teacher_float32.tflite"),
                   ("student int8 QAT", "student_int8.tflite")):
    runner = tfkd.TFLiteModel(path, threads=1)
    accuracy = runner.evaluate(x_test, y_test)["accuracy"]
    latency = runner.latency(batch=1).median_ms
    print(f"{name}: accuracy {accuracy:.3f}, {os.path.getsize(path):,} bytes, "
          f"{latency:.3f} ms at batch 1")

# %% [markdown]
# ## Your own encoder
#
# Nothing above needs tfkd's reference layout. An encoder you write yourself (here with a
# bare-bones block) distils with the same losses by naming its layers, prunes (attention, dense
# and embedding kernels) and quantizes.

# %%
inputs = keras.Input((x_train.shape[1],), dtype="int32")
h = keras.layers.Embedding(tokenizer.vocab_size, 32, name="emb")(inputs)
a = keras.layers.MultiHeadAttention(2, 16, name="attn")(h, h)
h = keras.layers.LayerNormalization(name="hidden")(keras.layers.Add()([h, a]))
outputs = keras.layers.Dense(2, name="head")(keras.layers.GlobalAveragePooling1D()(h))
mine = tfkd.prune(keras.Model(inputs, outputs, name="mine"), target_sparsity=0.5)

distiller = tfkd.Distiller(teacher=teacher, student=mine, distillation_losses=[
    tfkd.losses.HiddenStateDistillation(["block_3_output"], ["hidden"]),  # 32 -> 64 projection
    tfkd.losses.AttentionDistillation(["block_3_attention"], ["attn"]),
    tfkd.losses.LogitsDistillation(temperature=2.0),
])
distiller.compile(keras.optimizers.Adam(1e-3), loss=loss, metrics=["accuracy"])
distiller.fit(x_train, y_train, epochs=EPOCHS, batch_size=64, verbose=0)
mine = tfkd.strip(distiller.student)
print("zeros in the attention's query kernel:",
      float(np.mean(mine.get_layer("attn")._query_dense.kernel.numpy() == 0)))
print("your encoder:", distiller.evaluate(x_test, y_test, verbose=0, return_dict=True))

# %% [markdown]
# ## What you should see
#
# With the full settings (`QUICK` unset), `benchmarks/transformers.py` measures the same recipe
# over three seeds on this task and on MNIST cut into 7x7 patches; its table is in
# `benchmarks/results/transformers.md`, with which of the DistilBERT figures (97% of the teacher,
# smaller and faster int8 file) a small encoder reaches and which it does not.
