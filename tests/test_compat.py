"""tfkd.from_keras3: Keras 3 models rebuilt as tf_keras models with the same weights and outputs."""

import importlib
import warnings

import numpy as np
import pytest

import tfkd
from tfkd import keras
from tfkd.keras3.activations import SUPPORTED_ACTIVATIONS

keras3 = importlib.import_module("keras")
ops = keras3.ops
convnext = importlib.import_module("keras.src.applications.convnext")


def randomize(model, seed=0):
    """Non-trivial weights: He-scaled kernels, and BatchNorm statistics away from 0 and 1."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ == "Normalization":
            continue  # computes with the statistics `adapt` gave it, not its variables
        for w in layer.weights:
            shape, name = tuple(w.shape), w.name
            if name == "count" or not w.dtype.startswith("float"):
                continue
            if name in ("gamma", "moving_variance", "variance"):
                value = rng.uniform(0.5, 1.5, shape)
            elif len(shape) >= 2:
                value = rng.normal(0.0, 1.0 / np.sqrt(max(1, np.prod(shape[:-1]) // 4)), shape)
            else:
                value = rng.normal(0.0, 0.3, shape)
            w.assign(value.astype(w.dtype))
    return model


def functional(input_shape, layer, dtype="float32"):
    inputs = keras3.Input(input_shape, dtype=dtype, name="x")
    return keras3.Model(inputs, layer(inputs), name="k3")


def sample(shape, seed=0):
    return np.random.default_rng(seed).normal(size=(3, *shape)).astype("float32")


def assert_same(k3_model, converted, x, atol=1e-5):
    expected = np.asarray(k3_model(x, training=False))
    got = np.asarray(converted(x, training=False))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=atol, rtol=0)


def adapted_normalization():
    layer = keras3.layers.Normalization(axis=-1)
    layer.adapt(np.random.default_rng(1).normal(2.0, 3.0, size=(50, 4)).astype("float32"))
    return layer


LAYERS = {
    "dense": ((6,), lambda L: L.Dense(4, activation="relu")),
    "conv1d": ((8, 3), lambda L: L.Conv1D(4, 3, padding="same", activation="tanh")),
    "conv2d": ((8, 8, 3), lambda L: L.Conv2D(4, 3, strides=2, padding="same")),
    "conv2d_hard_silu": ((8, 8, 3), lambda L: L.Conv2D(4, 3, activation="hard_silu")),
    "conv2d_transpose": ((4, 4, 3), lambda L: L.Conv2DTranspose(2, 3, strides=2)),
    "depthwise_conv2d": ((8, 8, 3), lambda L: L.DepthwiseConv2D(3, depth_multiplier=2)),
    "separable_conv2d": ((8, 8, 3), lambda L: L.SeparableConv2D(4, 3, padding="same")),
    "batch_normalization": ((5,), lambda L: L.BatchNormalization()),
    "layer_normalization": ((5,), lambda L: L.LayerNormalization()),
    "max_pooling2d": ((8, 8, 2), lambda L: L.MaxPooling2D(2)),
    "average_pooling2d": ((8, 8, 2), lambda L: L.AveragePooling2D(3, strides=2, padding="same")),
    "max_pooling1d": ((8, 2), lambda L: L.MaxPooling1D(2)),
    "global_max_pooling2d": ((4, 4, 2), lambda L: L.GlobalMaxPooling2D()),
    "global_average_pooling2d": ((4, 4, 2), lambda L: L.GlobalAveragePooling2D(keepdims=True)),
    "global_average_pooling1d": ((4, 2), lambda L: L.GlobalAveragePooling1D()),
    "zero_padding2d": ((4, 4, 2), lambda L: L.ZeroPadding2D(((0, 1), (1, 0)))),
    "cropping2d": ((6, 6, 2), lambda L: L.Cropping2D(1)),
    "up_sampling2d": ((3, 3, 2), lambda L: L.UpSampling2D(2)),
    "dropout": ((6,), lambda L: L.Dropout(0.5)),
    "flatten": ((3, 3, 2), lambda L: L.Flatten()),
    "reshape": ((12,), lambda L: L.Reshape((3, 4))),
    "permute": ((3, 4), lambda L: L.Permute((2, 1))),
    "activation_hard_silu": ((6,), lambda L: L.Activation("hard_silu")),
    "activation_hard_swish": ((6,), lambda L: L.Activation("hard_swish")),
    "activation_silu": ((6,), lambda L: L.Activation("silu")),
    "relu6": ((6,), lambda L: L.ReLU(6.0)),
    "relu_options": ((6,), lambda L: L.ReLU(max_value=2.0, negative_slope=0.1, threshold=0.2)),
    "leaky_relu": ((6,), lambda L: L.LeakyReLU(negative_slope=0.1)),
    "prelu": ((6,), lambda L: L.PReLU()),
    "elu": ((6,), lambda L: L.ELU(alpha=0.5)),
    "softmax": ((6,), lambda L: L.Softmax()),
    "rescaling": ((6,), lambda L: L.Rescaling(1 / 127.5, offset=-1.0)),
    "normalization_adapted": ((4,), lambda L: adapted_normalization()),
    "normalization_given": ((2,), lambda L: L.Normalization(mean=[1.0, 2.0], variance=[4.0, 9.0])),
    "convnext_layer_scale": ((3, 6), lambda L: convnext.LayerScale(0.5, 6)),
    "einsum_dense": ((3, 4), lambda L: L.EinsumDense("abc,cd->abd", (3, 2), bias_axes="d")),
    "conv3d": ((4, 4, 4, 2), lambda L: L.Conv3D(2, 2)),
    "conv1d_transpose": ((4, 2), lambda L: L.Conv1DTranspose(3, 2, strides=2)),
    "depthwise_conv1d": ((6, 2), lambda L: L.DepthwiseConv1D(3)),
    "separable_conv1d": ((6, 2), lambda L: L.SeparableConv1D(3, 3)),
    "group_normalization": ((3, 4), lambda L: L.GroupNormalization(groups=2)),
    "unit_normalization": ((4,), lambda L: L.UnitNormalization()),
    "max_pooling3d": ((4, 4, 4, 1), lambda L: L.MaxPooling3D(2)),
    "average_pooling1d": ((6, 2), lambda L: L.AveragePooling1D(2)),
    "global_max_pooling1d": ((6, 2), lambda L: L.GlobalMaxPooling1D()),
    "zero_padding1d": ((4, 2), lambda L: L.ZeroPadding1D(1)),
    "cropping1d": ((6, 2), lambda L: L.Cropping1D((1, 2))),
    "up_sampling1d": ((3, 2), lambda L: L.UpSampling1D(2)),
    "spatial_dropout2d": ((4, 4, 2), lambda L: L.SpatialDropout2D(0.5)),
    "gaussian_noise": ((4,), lambda L: L.GaussianNoise(0.3)),
    "gaussian_dropout": ((4,), lambda L: L.GaussianDropout(0.3)),
    "activity_regularization": ((4,), lambda L: L.ActivityRegularization(l1=0.01)),
    "repeat_vector": ((4,), lambda L: L.RepeatVector(2)),
    "identity": ((4,), lambda L: L.Identity()),
}


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_layer_converts_with_same_outputs_and_weights(kind):
    shape, make = LAYERS[kind]
    k3_model = randomize(functional(shape, make(keras3.layers)))
    converted = tfkd.from_keras3(k3_model)
    assert isinstance(converted, keras.Model)
    k3_layer, layer = k3_model.layers[-1], converted.layers[-1]
    assert layer.name == k3_layer.name
    assert type(layer).__name__ == type(k3_layer).__name__
    for source, target in zip(k3_layer.weights, layer.weights, strict=True):
        np.testing.assert_array_equal(target.numpy(), np.asarray(source.numpy()))
    assert len(layer.weights) == len(k3_layer.weights)
    assert_same(k3_model, converted, sample(shape))


def test_embedding_converts():
    k3_model = randomize(functional((5,), keras3.layers.Embedding(10, 3), dtype="int32"))
    converted = tfkd.from_keras3(k3_model)
    x = np.array([[0, 1, 2, 3, 9], [9, 8, 7, 6, 5]], dtype="int32")
    assert converted.inputs[0].dtype == "int32"
    assert_same(k3_model, converted, x, atol=0)


def test_merge_layers_and_shared_layer_convert():
    L = keras3.layers
    inputs = keras3.Input((6,))
    shared = L.Dense(6, name="shared")
    a, b = shared(inputs), shared(L.Dense(6)(inputs))
    merged = [L.Add()([a, b]), L.Multiply()([a, b]), L.Subtract()([a, b]), L.Maximum()([a, b]),
              L.Minimum()([a, b]), L.Average()([a, b]), L.Dot(axes=1)([a, b])]
    outputs = L.Concatenate(axis=-1)(merged)
    k3_model = randomize(keras3.Model(inputs, outputs))
    converted = tfkd.from_keras3(k3_model)
    assert len(converted.get_layer("shared")._inbound_nodes) == 2
    assert converted.count_params() == k3_model.count_params()
    assert_same(k3_model, converted, sample((6,)))


def test_batch_normalization_statistics_land_in_their_variables():
    bn = keras3.layers.BatchNormalization(name="bn")
    k3_model = randomize(functional((4,), bn))
    bn.trainable = False  # frozen: all four variables non-trainable, order must not matter
    converted = tfkd.from_keras3(k3_model)
    target = converted.get_layer("bn")
    for name in ("gamma", "beta", "moving_mean", "moving_variance"):
        expected = np.asarray(getattr(bn, name).numpy())
        np.testing.assert_array_equal(getattr(target, name).numpy(), expected)
    assert not target.trainable
    assert_same(k3_model, converted, sample((4,)))


def test_every_supported_activation_matches_keras3():
    inputs = keras3.Input((8,))
    outputs = [keras3.layers.Activation(name, name=name)(inputs) for name in SUPPORTED_ACTIVATIONS]
    k3_model = keras3.Model(inputs, outputs)
    converted = tfkd.from_keras3(k3_model)
    x = np.linspace(-4.0, 4.0, 24, dtype="float32").reshape(3, 8)
    results = zip(SUPPORTED_ACTIVATIONS, converted(x), k3_model(x), strict=True)
    for name, got, expected in results:
        np.testing.assert_allclose(got.numpy(), np.asarray(expected), atol=1e-6, err_msg=name)


def test_hard_silu_is_exact():
    k3_model = functional((7,), keras3.layers.Activation("hard_silu"))
    converted = tfkd.from_keras3(k3_model)
    x = np.array([[-5.0, -3.0, -1.0, 0.0, 1.0, 3.0, 5.0]], dtype="float32")
    got = converted(x).numpy()
    np.testing.assert_array_equal(got, np.asarray(k3_model(x)))  # bit for bit
    by_hand = np.array([[0.0, 0.0, -1 / 3, 0.0, 2 / 3, 3.0, 5.0]], dtype="float32")
    np.testing.assert_array_equal(got, by_hand)
    # tf_keras's own hard_sigmoid differs (0.2 x + 0.5): the Keras 3 formula is written out
    hard_sigmoid = tfkd.from_keras3(functional((3,), keras3.layers.Activation("hard_sigmoid")))
    np.testing.assert_allclose(hard_sigmoid(np.array([[-1.0, 1.0, 2.5]])).numpy(),
                               [[2 / 6, 4 / 6, 5.5 / 6]], rtol=1e-6)


def test_operator_nodes_translate():
    inputs = keras3.Input((4, 3), name="x")
    h = keras3.layers.Dense(3)(inputs)
    hard_sigmoid = keras3.layers.ReLU(6.0)(h + 3.0) * (1.0 / 6.0)  # MobileNetV3's
    y = hard_sigmoid - h / 2.0 + ops.square(h)
    y = ops.mean(y, axis=1, keepdims=True) + ops.reshape(y, (-1, 1, 12))[:, :, :3]
    y = ops.concatenate([y, ops.transpose(y, (0, 2, 1))[:, 0:1, :1] ** 2], axis=-1)
    y = ops.hard_silu(y[:, 0]) + ops.relu6(-y[:, 0]) + ops.softmax(y[:, 0], axis=-1)
    k3_model = randomize(keras3.Model(inputs, y))
    converted = tfkd.from_keras3(k3_model)
    kinds = {type(layer).__name__ for layer in converted.layers}
    assert {"TFOpLambda", "SlicingOpLambda", "Dense", "ReLU"} <= kinds
    assert_same(k3_model, converted, sample((4, 3)))


def test_sequential_and_nested_models_convert():
    L = keras3.layers
    inner = keras3.Sequential([keras3.Input((6,)), L.Dense(5, activation="relu6"), L.Dense(4)],
                              name="inner")
    converted_inner = tfkd.from_keras3(randomize(inner))
    assert isinstance(converted_inner, keras.Sequential)
    assert_same(inner, converted_inner, sample((6,)))
    inputs = keras3.Input((6,))
    outer = keras3.Model(inputs, L.Dense(2)(inner(inputs)), name="outer")
    randomize(outer)
    converted = tfkd.from_keras3(outer)
    assert isinstance(converted.get_layer("inner"), keras.Model)
    assert_same(outer, converted, sample((6,)))


def test_converted_model_saves_and_loads(tmp_path):
    inputs = keras3.Input((5,))
    h = keras3.layers.Dense(4, activation="hard_silu")(inputs)
    k3_model = randomize(keras3.Model(inputs, keras3.layers.Activation("relu6")(h * 0.5 + 1.0)))
    converted = tfkd.from_keras3(k3_model)
    path = str(tmp_path / "converted.keras")
    converted.save(path)
    loaded = keras.models.load_model(path)
    assert_same(k3_model, loaded, sample((5,)))


def test_multiple_inputs_and_outputs_keep_their_structure():
    a, b = keras3.Input((3,), name="a"), keras3.Input((2,), name="b")
    h = keras3.layers.Concatenate()([a, b])
    k3_model = randomize(keras3.Model({"a": a, "b": b}, [keras3.layers.Dense(2)(h), h + 1.0]))
    converted = tfkd.from_keras3(k3_model)
    x = {"a": sample((3,)), "b": sample((2,), seed=1)}
    for got, expected in zip(converted(x), k3_model(x), strict=True):
        np.testing.assert_allclose(got.numpy(), np.asarray(expected), atol=1e-6)


class Scale(keras3.layers.Layer):
    def call(self, x):
        return 2.0 * x


class Subclassed(keras3.Model):
    def __init__(self):
        super().__init__(name="subclassed")
        self.dense = keras3.layers.Dense(2)

    def call(self, x):
        return self.dense(x)


def test_unknown_layer_error_names_layer_and_class():
    k3_model = functional((3,), Scale(name="my_scale"))
    with pytest.raises(ValueError, match=r"Layer 'my_scale' \(class .*Scale\) cannot be converted"):
        tfkd.from_keras3(k3_model)


def test_subclassed_model_error_gives_the_functional_fix():
    model = Subclassed()
    model(np.zeros((1, 3), "float32"))
    match = r"subclassed Keras 3 model \(class Subclassed.*keras.Input"
    with pytest.raises(TypeError, match=match):
        tfkd.from_keras3(model)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: functional((3,), lambda x: ops.cumsum(x, axis=-1)), r"operation node .*Cumsum"),
        (lambda: functional((3,), keras3.layers.Activation("sparsemax")),
         r"activation 'sparsemax'"),
        (lambda: functional((3,), keras3.layers.Dense(4, lora_rank=2)),
         r"sets `lora_rank`.*Received: lora_rank=2"),
        (lambda: keras3.Sequential([keras3.layers.Dense(2)]), r"not built.*keras.Input"),
    ],
    ids=["operation", "activation", "config_key", "unbuilt_sequential"],
)
def test_unconvertible_models_are_errors(build, match):
    with pytest.raises(ValueError, match=match):
        tfkd.from_keras3(build())


@pytest.mark.parametrize("bad", [np.zeros(3), "model"])
def test_from_keras3_rejects_non_keras3(bad):
    with pytest.raises(TypeError, match="must be a Keras 3 model"):
        tfkd.from_keras3(bad)


def test_tf_keras_model_is_told_it_needs_no_conversion(make_student):
    with pytest.raises(TypeError, match="already a tf_keras model"):
        tfkd.from_keras3(make_student())


def k3_cnn(width, name):
    L = keras3.layers
    inputs = keras3.Input((8, 8, 1))
    x = L.Conv2D(width, 3, padding="same", name=f"{name}_conv")(inputs)
    x = L.Activation("hard_silu")(L.BatchNormalization()(x))
    x = L.GlobalAveragePooling2D()(x * (1.0 / 2.0))
    return randomize(keras3.Model(inputs, L.Dense(10, name=f"{name}_logits")(x), name=name))


def test_distiller_accepts_keras3_teacher_and_student(tiny_data):
    x, y = tiny_data
    teacher, student = k3_cnn(8, "teacher"), k3_cnn(4, "student")
    teacher_before = [np.asarray(w) for w in teacher.get_weights()]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        distiller = tfkd.Distiller(teacher=teacher, student=student)
    messages = sorted(str(w.message) for w in caught if "Keras 3 model" in str(w.message))
    assert len(messages) == 2
    assert messages[0].startswith("`student` is a Keras 3 model (Functional 'student')")
    assert messages[1].startswith("`teacher` is a Keras 3 model (Functional 'teacher')")
    assert "tfkd.from_keras3" in messages[0]
    assert isinstance(distiller.student, keras.Model)
    assert_same(student, distiller.student, x[:4])
    distiller.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(True))
    history = distiller.fit(x, y, epochs=1, batch_size=32, verbose=0)
    assert {"loss", "student_loss", "distillation_loss"} <= set(history.history)
    for before, after in zip(teacher_before, teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(before, np.asarray(after))


def test_prune_accepts_keras3_model_and_says_so():
    k3_model = k3_cnn(4, "k3")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pruned = tfkd.prune(k3_model, target_sparsity=0.5)
    messages = [str(w.message) for w in caught if "Keras 3 model" in str(w.message)]
    assert len(messages) == 1 and "`model`" in messages[0]
    assert isinstance(pruned, keras.Model)
    assert any("prune" in type(layer).__name__.lower() for layer in pruned.layers)


def test_quantize_configs_let_tf_mot_quantize_keras3_activations():
    """TF-MOT alone refuses Activation(hard_silu) after a BatchNormalization; with tfkd's configs
    for converted layers, QAT builds and keeps the float outputs up to quantization error."""
    import tensorflow_model_optimization as tfmot

    from tfkd.optimize.quantize_configs import OutputQuantizeConfig, quantize_config_for

    L = keras3.layers
    inputs = keras3.Input((8, 8, 3))
    x = L.Activation("hard_silu")(L.BatchNormalization()(L.Conv2D(4, 3)(inputs)))
    gate = L.Activation("hard_sigmoid")(L.Dense(4)(L.GlobalAveragePooling2D(keepdims=True)(x)))
    x = L.GlobalAveragePooling2D()(L.Multiply()([x, gate]))
    converted = tfkd.from_keras3(randomize(keras3.Model(inputs, L.Dense(3)(x))))
    api = tfmot.quantization.keras
    registry = api.default_8bit.Default8BitQuantizeScheme().get_quantize_registry()

    def annotate(layer, configs=True):
        config = quantize_config_for(layer) if configs else None
        if config is not None or registry.supports(layer):
            return api.quantize_annotate_layer(layer, quantize_config=config)
        return layer

    tf_mot_only = keras.models.clone_model(
        converted, clone_function=lambda layer: annotate(layer, False)
    )
    with pytest.raises(ValueError, match="hard_silu"), api.quantize_scope():
        api.quantize_apply(tf_mot_only)

    kinds = {type(layer).__name__: quantize_config_for(layer) for layer in converted.layers}
    assert isinstance(kinds["Multiply"], OutputQuantizeConfig) and kinds["Dense"] is None
    annotated = keras.models.clone_model(converted, clone_function=annotate)
    annotated.set_weights(converted.get_weights())
    with api.quantize_scope():
        qat = api.quantize_apply(annotated)
    wrapped = [layer.layer for layer in qat.layers if isinstance(layer, api.QuantizeWrapperV2)]
    assert {"Activation", "Multiply", "Dense"} <= {type(layer).__name__ for layer in wrapped}
    x = sample((8, 8, 3))
    for _ in range(3):  # calibrate the ranges the quantizers start from
        qat(x, training=True)
    got, want = qat(x, training=False).numpy(), converted(x).numpy()
    assert np.abs(got - want).max() <= 0.25 * np.abs(want).max()  # 8-bit error, not garbage
