"""Trained tiny models and their converted files, built once per test process and shared by the
export, runtime, profile and report tests (conversion costs 1-2 s each)."""

import functools

import numpy as np
import tensorflow_model_optimization as tfmot

import tfkd
from tfkd import keras

# 500 training digits and 300 test digits keep fits under a second; calibration uses 100 samples.
N_TRAIN, N_TEST, N_CALIBRATION = 500, 300, 100


@functools.lru_cache(maxsize=None)
def digits():
    (x_train, y_train), (x_test, y_test) = tfkd.data.load_digits()
    return (x_train[:N_TRAIN], y_train[:N_TRAIN]), (x_test[:N_TEST], y_test[:N_TEST])


def build_cnn(name="cnn"):
    """A tiny CNN: conv (4 filters) -> dense 16 -> 10 logits; 2,310 parameters."""
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(8, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(10, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


def _fit(model, epochs, callbacks=()):
    (x_train, y_train), _ = digits()
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0, callbacks=list(callbacks))
    return model


@functools.lru_cache(maxsize=None)
def trained_cnn():
    """The tiny CNN trained on 500 digits (~90% test accuracy)."""
    keras.utils.set_random_seed(0)
    return _fit(build_cnn(), epochs=12)


@functools.lru_cache(maxsize=None)
def pruned_cnn():
    """The trained CNN pruned to 80% (constant schedule), still wrapped by TF-MOT."""
    model = keras.models.clone_model(trained_cnn())
    model.set_weights(trained_cnn().get_weights())
    pruned = tfmot.sparsity.keras.prune_low_magnitude(
        model, pruning_schedule=tfmot.sparsity.keras.ConstantSparsity(0.8, 0, frequency=1)
    )
    return _fit(pruned, epochs=1, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])


@functools.lru_cache(maxsize=None)
def qat_cnn():
    """The trained CNN fine-tuned with quantization-aware training for 1 epoch."""
    model = keras.models.clone_model(trained_cnn())
    model.set_weights(trained_cnn().get_weights())
    return _fit(tfmot.quantization.keras.quantize_model(model), epochs=1)


@functools.lru_cache(maxsize=None)
def structured_cnn():
    """The trained CNN pruned by `tfkd.prune(structure="2:4")`, still in tfkd's wrapper."""
    model = tfkd.prune(trained_cnn(), structure="2:4", schedule="constant")
    return _fit(model, epochs=1, callbacks=tfkd.callbacks())


@functools.lru_cache(maxsize=None)
def clustered_cnn():
    """The trained CNN clustered to 4 values per kernel by `tfkd.cluster`, still wrapped."""
    return _fit(tfkd.cluster(trained_cnn(), n_clusters=4, layers=["hidden", "logits"]), epochs=1)


_MODELS = {"cnn": trained_cnn, "pruned": pruned_cnn, "qat": qat_cnn, "structured": structured_cnn,
           "clustered": clustered_cnn}


@functools.lru_cache(maxsize=None)
def tflite(mode, which="cnn"):
    """The `.tflite` bytes of `which` (a key of `_MODELS`) in quantization `mode`."""
    model = _MODELS[which]()
    (x_train, _), _ = digits()
    data = None if which == "qat" else x_train[:N_CALIBRATION]
    return tfkd.export.to_tflite(model, quantization=mode, representative_data=data)


def kernels_of(model):
    """`{layer name: kernel}` of the Conv2D/Dense layers (through pruning wrappers)."""
    result = {}
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)
        if isinstance(inner, (keras.layers.Conv2D, keras.layers.Dense)):
            result[inner.name] = np.asarray(inner.kernel.numpy())
    return result
