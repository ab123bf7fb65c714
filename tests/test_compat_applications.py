"""Keras 3 `keras.applications` models (weights=None, small inputs) through `tfkd.from_keras3`, then
prune, quantize and export. Heavy: two small families here; `benchmarks/keras3_applications.py`
covers the rest (ResNet, EfficientNet, DenseNet, ...)."""

import importlib
import warnings

import numpy as np

import tfkd
from tfkd import keras

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


def test_mobilenet_v2_converts_quantizes_and_exports():
    model, images = application("MobileNetV2", alpha=0.35)
    converted = tfkd.from_keras3(model)
    expected = np.asarray(model(images, training=False))
    np.testing.assert_allclose(converted(images, training=False).numpy(), expected, atol=1e-4)

    kinds = [keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense]
    qat = tfkd.quantize(converted, layers=kinds)
    assert any("Quantize" in type(layer).__name__ for layer in qat.layers)
    qat_logits = qat(images, training=False).numpy()
    assert np.isfinite(qat_logits).all() and qat_logits.shape == expected.shape

    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tfkd.export.to_tflite(converted))
    interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]["index"]
    out = interpreter.get_output_details()[0]["index"]
    for image, logits in zip(images[:2], expected[:2], strict=True):
        interpreter.set_tensor(index, image[None])
        interpreter.invoke()
        np.testing.assert_allclose(interpreter.get_tensor(out)[0], logits, atol=1e-3)
