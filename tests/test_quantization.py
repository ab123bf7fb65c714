"""`tfkd.quantize`: QAT wrappers, subsets, PQAT keeping zeros, a QAT student in `Distiller.fit`."""

import numpy as np
import pytest
import tensorflow_model_optimization as tfmot

import tfkd
from tfkd import keras

SCCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
QuantizeWrapper = tfmot.quantization.keras.QuantizeWrapper


def _quantized(model):
    return [layer.layer.name for layer in model.layers if isinstance(layer, QuantizeWrapper)]


def _with_layer_norm():
    inputs = keras.Input((8,))
    x = keras.layers.Dense(8, name="dense")(inputs)
    x = keras.layers.UnitNormalization(name="norm")(x)  # LayerNormalization: tfkd quantizes
    outputs = keras.layers.Dense(3, name="logits")(x)
    return keras.Model(inputs, outputs, name="normed")


def test_quantize_wraps_every_layer_and_leaves_the_input_alone(make_student, tiny_data):
    student = make_student()
    qat = tfkd.quantize(student)
    assert _quantized(qat) == ["s_conv", "s_flatten", "s_embed", "s_logits"]
    assert _quantized(student) == []
    wrapper = qat.get_layer("quant_s_embed")
    np.testing.assert_array_equal(wrapper._weight_vars[0][0].numpy(),
                                  student.get_layer("s_embed").kernel.numpy())
    np.testing.assert_array_equal(wrapper.layer.bias.numpy(),
                                  student.get_layer("s_embed").bias.numpy())
    x, _ = tiny_data
    assert qat(x).shape == student(x).shape


def test_quantize_a_subset_by_name_or_type(make_student):
    # TF-MOT also quantizes the output of the layer feeding a quantized one (output only).
    chosen = tfkd.quantize(make_student(), layers=["s_logits"])
    assert _quantized(chosen) == ["s_embed", "s_logits"]
    assert "OutputOnlyConfig" in type(chosen.get_layer("quant_s_embed").quantize_config).__name__
    chosen = tfkd.quantize(make_student(), layers=[keras.layers.Dense])
    assert _quantized(chosen) == ["s_flatten", "s_embed", "s_logits"]  # s_flatten: output only
    assert not isinstance(chosen.get_layer("s_conv"), QuantizeWrapper)


def test_unquantizable_layer_is_named_with_the_annotate_and_scope_recipe():
    expected = r"cannot quantize these layers: norm \(UnitNormalization\).*Pass `layers=`"
    recipe = r"quantize_annotate_layer\(layer, quantize_config=MyConfig\(\)\).*quantize_scope"
    with pytest.raises(ValueError, match=expected + ".*" + recipe):
        tfkd.quantize(_with_layer_norm())
    qat = tfkd.quantize(_with_layer_norm(), layers=["dense", "logits"])
    assert _quantized(qat) == ["dense", "logits"]


class OutputOnly(tfmot.quantization.keras.QuantizeConfig):
    """A user's QuantizeConfig: no weights, the output quantized to 8 bits."""

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [tfmot.quantization.keras.quantizers.MovingAverageQuantizer(
            num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

    def get_config(self):
        return {}


def test_layers_annotated_with_the_users_quantize_config_are_accepted(tiny_data):
    api = tfmot.quantization.keras

    def annotate(layer):
        if layer.name == "norm":
            return api.quantize_annotate_layer(layer, quantize_config=OutputOnly())
        return layer

    annotated = keras.models.clone_model(_with_layer_norm(), clone_function=annotate)
    with api.quantize_scope({"OutputOnly": OutputOnly}):
        qat = tfkd.quantize(annotated)
    assert _quantized(qat) == ["dense", "norm", "logits"]
    assert isinstance(qat.get_layer("quant_norm").quantize_config, OutputOnly)
    x = np.random.default_rng(0).random((16, 8), dtype=np.float32)
    qat.compile("adam", SCCE)
    assert np.isfinite(qat.fit(x, np.arange(16) % 3, epochs=1, verbose=0).history["loss"][0])


def test_separable_conv2d_is_quantized_as_tf_mot_splits_it(tiny_data):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.SeparableConv2D(4, 3, padding="same", activation="relu", name="sep")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inputs, keras.layers.Dense(10, name="logits")(x))
    qat = tfkd.quantize(model)
    kinds = {type(layer.layer).__name__ for layer in qat.layers
             if isinstance(layer, QuantizeWrapper)}
    assert {"DepthwiseConv2D", "Conv2D", "Dense"} <= kinds  # the separable conv, split in two
    x, y = tiny_data
    qat.compile("adam", SCCE)
    qat.fit(x, y, epochs=1, verbose=0)
    data = tfkd.export.to_tflite(qat, quantization="int8")
    assert tfkd.profile(data).all_int8
    assert {"DEPTHWISE_CONV_2D", "CONV_2D"} <= set(tfkd.profile(data).ops)


def test_qat_student_trains_inside_distiller_fit_with_a_float_teacher(
    make_teacher, make_student, tiny_data
):
    x, y = tiny_data
    teacher, student = make_teacher(), tfkd.quantize(make_student())
    teacher_before = [w.numpy().copy() for w in teacher.weights]
    kernel_before = student.get_layer("quant_s_embed").layer.bias.numpy().copy()
    distiller = tfkd.Distiller(teacher=teacher, student=student)
    distiller.compile(optimizer="adam", loss=SCCE, metrics=["accuracy"])
    history = distiller.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert set(history.history) == {
        "loss", "total_loss", "student_loss", "distillation_loss", "accuracy"
    }
    for old, new in zip(teacher_before, teacher.weights, strict=True):
        np.testing.assert_array_equal(old, new.numpy())
    assert not np.array_equal(kernel_before, student.get_layer("quant_s_embed").layer.bias.numpy())
    assert _quantized(teacher) == []


def test_prune_preserving_qat_keeps_the_zeros(tiny_data):
    x, y = tiny_data
    inputs = keras.Input((8, 8, 1))
    hidden = keras.layers.Dense(16, name="hidden")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(10, name="logits")(hidden))
    kernel = model.get_layer("hidden").kernel.numpy()
    kernel[::2] = 0.0  # half the rows
    model.get_layer("hidden").kernel.assign(kernel)
    qat = tfkd.quantize(model, preserve="sparsity")
    qat.compile(optimizer="adam", loss=SCCE)
    qat.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert tfkd.sparsity(qat).layers["hidden"] == 0.5
    plain = tfkd.quantize(model)
    plain.compile(optimizer="adam", loss=SCCE)
    plain.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert tfkd.sparsity(plain).layers["hidden"] < 0.1  # without preserve, the zeros move


@pytest.mark.parametrize(
    "kwargs, match",
    [({"preserve": "zeros"}, "Received: preserve='zeros'"),
     ({"layers": ["nope"]}, r"Received: layers=\['nope'\]")],
)
def test_quantize_rejects_bad_arguments(make_student, kwargs, match):
    with pytest.raises(ValueError, match=match):
        tfkd.quantize(make_student(), **kwargs)


def test_quantize_asks_to_strip_pruning_first(make_student):
    with pytest.raises(ValueError, match=r"still holds pruning or clustering.*tfkd.strip"):
        tfkd.quantize(tfkd.prune(make_student()), preserve="sparsity")


def test_quantize_refuses_a_qat_model(make_student):
    with pytest.raises(ValueError, match="already quantization-aware"):
        tfkd.quantize(tfkd.quantize(make_student()))


def test_quantize_folds_batch_norm_after_a_convolution(tiny_data):
    from ai_edge_litert.interpreter import Interpreter

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))
    rng = np.random.default_rng(0)
    model.get_layer("bn").set_weights([rng.uniform(0.5, 2.0, 4), rng.normal(0, 0.5, 4),
                                       rng.normal(0, 0.5, 4), rng.uniform(0.5, 2.0, 4)])
    qat = tfkd.quantize(model)
    x, y = tiny_data
    qat.compile("adam", SCCE)
    qat.fit(x, y % 3, epochs=1, verbose=0)
    data = tfkd.export.to_tflite(qat, quantization="int8")
    # Folded: the file holds a convolution with a bias (its model had none: it is the batch
    # norm's shift) and no batch-norm arithmetic or weights of its own.
    ops = tfkd.profile(data).ops
    assert {"CONV_2D", "FULLY_CONNECTED"} <= set(ops) and not {"MUL", "ADD", "SUB"} & set(ops)
    interpreter = Interpreter(model_content=data)
    conv = [op for op in interpreter._get_ops_details() if op["op_name"] == "CONV_2D"]
    assert len(conv) == 1 and len(conv[0]["inputs"]) == 3 and conv[0]["inputs"][2] >= 0
    shapes = [tuple(t["shape"]) for t in interpreter.get_tensor_details()]
    assert shapes.count((4,)) == 1  # the folded bias only: no gamma, beta, mean, variance
    # The int8 file computes what the QAT model computes, to within its output quantization.
    scale = interpreter.get_output_details()[0]["quantization"][0]
    expected = qat.predict(x, verbose=0)
    got = tfkd.TFLiteModel(data).predict(x)
    assert np.max(np.abs(got - expected)) <= 3 * scale
    assert np.mean(np.argmax(got, -1) == np.argmax(expected, -1)) >= 0.95
