"""Keras 3 `keras.applications` models (weights=None, small inputs) through `tfkd.from_keras3`, then
prune, quantize and export. Heavy: one family here (MobileNetV3Small: hard_silu and operator nodes)
and a miniature of it through quantize and export; `benchmarks/keras3_applications.py` runs the
families (MobileNetV2/V3, ResNet, EfficientNet, DenseNet, ...) through all of it."""

import importlib
import warnings

import numpy as np
import pytest

import tfkd

keras3 = importlib.import_module("keras")


def randomize(model, images, seed=0):
    """He-scaled kernels, BatchNorm statistics away from 0 and 1, logits scaled to at most 10."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        depthwise = "Depthwise" in type(layer).__name__
        for w in layer.weights:
            shape, name = tuple(w.shape), w.name
            if name in ("gamma", "moving_variance"):
                value = rng.uniform(0.8, 1.2, shape)
            elif len(shape) >= 2:
                fan_axes = shape[:-2] if depthwise else shape[:-1]
                value = rng.normal(0.0, np.sqrt(2.0 / max(1, int(np.prod(fan_axes)))), shape)
            else:
                value = rng.normal(0.0, 0.1, shape)
            w.assign(value.astype("float32"))
    head = [layer for layer in model.layers if type(layer).__name__ in ("Dense", "Conv2D")][-1]
    scale = 10.0 / float(np.abs(np.asarray(model(images, training=False))).max())
    for w in head.weights:
        w.assign(np.asarray(w.numpy()) * scale)
    return model


def application(name, **kwargs):
    keras3.utils.set_random_seed(0)
    images = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    model = getattr(keras3.applications, name)(
        input_shape=(32, 32, 3), weights=None, classes=10, classifier_activation=None, **kwargs
    )
    return randomize(model, images), images


@pytest.mark.slow
def test_mobilenet_v3_small_converts_agrees_and_prunes():
    """hard_silu activations and the `x + 3.0`, `x * (1 / 6)` operator nodes of hard_sigmoid."""
    model, images = application("MobileNetV3Small", alpha=0.75)
    converted = tfkd.from_keras3(model)
    kinds = {type(layer).__name__ for layer in converted.layers}
    assert {"TFOpLambda", "Activation", "DepthwiseConv2D", "Rescaling"} <= kinds
    assert converted.count_params() == model.count_params()
    expected = np.asarray(model(images, training=False))
    assert np.abs(expected).max() > 1.0  # logits of a useful size, not vanishing
    np.testing.assert_allclose(converted.predict(images, verbose=0), expected, atol=1e-4, rtol=0)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruned = tfkd.prune(converted, target_sparsity=0.5)
    wrapped = [layer for layer in pruned.layers if "Prune" in type(layer).__name__]
    assert len(wrapped) >= 40  # every conv, depthwise conv and dense layer
    # before any pruning step the masks are all ones: same logits
    np.testing.assert_allclose(pruned(images, training=False).numpy(), expected, atol=1e-4)


def mobilenet_v3_style(keras3):
    """A two-block MobileNetV3 in miniature: Rescaling, conv/BN/hard_silu, depthwise, squeeze-excite
    with the `ReLU(6)(x + 3.0) * (1.0 / 6.0)` hard sigmoid Keras 3 records as operator nodes,
    a residual Add, and a Dense head."""
    L = keras3.layers
    inputs = keras3.Input((16, 16, 3))
    x = L.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = L.Activation("hard_silu")(L.BatchNormalization()(L.Conv2D(8, 3, strides=2, padding="same",
                                                                   use_bias=False)(x)))
    shortcut = x
    x = L.ReLU()(L.BatchNormalization()(L.DepthwiseConv2D(3, padding="same", use_bias=False)(x)))
    gate = L.GlobalAveragePooling2D(keepdims=True)(x)
    gate = L.Conv2D(8, 1)(L.ReLU()(L.Conv2D(4, 1)(gate)))
    x = L.Multiply()([x, L.ReLU(6.0)(gate + 3.0) * (1.0 / 6.0)])
    x = L.Add()([shortcut, L.BatchNormalization()(L.Conv2D(8, 1, use_bias=False)(x))])
    x = L.Dropout(0.2)(L.GlobalAveragePooling2D()(x))
    return keras3.Model(inputs, L.Dense(10)(x), name="mini_mobilenet_v3")


def test_converted_model_quantizes_and_exports():
    keras3.utils.set_random_seed(0)
    images = np.random.default_rng(1).uniform(0, 255, (8, 16, 16, 3)).astype("float32")
    model = randomize(mobilenet_v3_style(keras3), images)
    converted = tfkd.from_keras3(model)
    expected = np.asarray(model(images, training=False))
    np.testing.assert_allclose(converted(images, training=False).numpy(), expected, atol=1e-5)

    qat = tfkd.quantize(converted)  # every layer: BatchNorm folded, hard_silu, Multiply
    wrapped = {type(layer.layer).__name__ for layer in qat.layers if hasattr(layer, "layer")}
    assert {"Conv2D", "DepthwiseConv2D", "Activation", "Multiply", "Dense"} <= wrapped
    qat_logits = qat(images, training=False).numpy()
    assert np.isfinite(qat_logits).all() and qat_logits.shape == expected.shape
    # The QAT model, after one training step (its input quantizer learns the input range), exports
    # to an all-int8 file (float operator nodes calibrated) that runs and computes what it does
    # (measured: max difference 1.13 on logits spanning 12.0).
    qat.compile("sgd", tfkd.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    qat.fit(images, np.arange(8) % 10, epochs=1, verbose=0)
    qat_file = tfkd.export.to_tflite(qat, quantization="int8", representative_data=images)
    assert tfkd.profile(qat_file).all_int8
    qat_logits = qat(images, training=False).numpy()
    int8_logits = tfkd.TFLiteModel(qat_file).predict(images)
    assert np.max(np.abs(int8_logits - qat_logits)) <= 0.15 * np.ptp(qat_logits)

    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tfkd.export.to_tflite(converted))
    interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], images)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, expected, atol=1e-4)
