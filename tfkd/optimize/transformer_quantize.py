"""TF-MOT quantize configs of tfkd's own for transformer layers TF-MOT's 8-bit scheme lacks.

TF-MOT 0.8.1 cannot quantize `MultiHeadAttention`, `LayerNormalization` or `Embedding`. These
configs (subclasses of TF-MOT's `QuantizeConfig`, applied by `tfkd.quantize` through
`quantize_annotate_layer` and `quantize_scope`) make a whole encoder quantization-aware:

- `MultiHeadAttentionQuantizeConfig`: 8-bit weights (symmetric, per tensor) for the query, key,
  value and output kernels; 8-bit fake quantization (asymmetric, moving-average ranges) of the
  query, key and value projections, of the first matmul (the scaled scores, softmax's input), of
  the softmax probabilities and of the second matmul (probabilities times values, the output
  projection's input) and of the output.
- `LayerNormalizationQuantizeConfig` and `OutputQuantizeConfig` (position embeddings, GELU):
  8-bit output. LiteRT lowers layer norm to MEAN, SQUARED_DIFFERENCE, RSQRT, MUL and ADD, whose
  intermediate tensors the int8 export calibrates on `representative_data`.
- `EmbeddingQuantizeConfig`: 8-bit table (symmetric, per tensor); GATHER keeps its scale.

`MultiHeadAttention` works under TF-MOT's `QuantizeWrapperV2` because the wrapper passes keyword
arguments (`value=`, `attention_mask=`) through to the layer; its kernels are created at its first
call, so the config builds them from the shapes the layer remembers (`query_shape`, ...).
"""

import math
import types

import tensorflow_model_optimization as tfmot

from tfkd._keras import keras, tf
from tfkd.optimize.quantize_configs import OutputQuantizeConfig

_quantizers = tfmot.quantization.keras.quantizers
_PROJECTIONS = ("_query_dense", "_key_dense", "_value_dense", "_output_dense")
_ATTENTION_POINTS = ("scores", "probabilities", "context")


def _weight_quantizer():
    return _quantizers.LastValueQuantizer(
        num_bits=8, per_axis=False, symmetric=True, narrow_range=True
    )


def _activation_quantizer():
    return _quantizers.MovingAverageQuantizer(
        num_bits=8, per_axis=False, symmetric=False, narrow_range=False
    )


@keras.utils.register_keras_serializable(package="tfkd")
class LayerNormalizationQuantizeConfig(OutputQuantizeConfig):
    """`LayerNormalization`: 8-bit output; gamma and beta stay float in training (LiteRT folds
    them into the int8 MUL and ADD it lowers the layer to)."""


@keras.utils.register_keras_serializable(package="tfkd")
class EmbeddingQuantizeConfig(OutputQuantizeConfig):
    """`Embedding`: an 8-bit table (symmetric, per tensor); the lookup keeps the table's scale."""

    def get_weights_and_quantizers(self, layer):
        return [(layer.embeddings, _weight_quantizer())]

    def set_quantize_weights(self, layer, quantize_weights):
        layer.embeddings = quantize_weights[0]

    def get_output_quantizers(self, layer):
        return []


@keras.utils.register_keras_serializable(package="tfkd")
class MultiHeadAttentionQuantizeConfig(OutputQuantizeConfig):
    """`MultiHeadAttention`: 8-bit kernels and 8-bit projections, matmuls and softmax (see the
    module docstring)."""

    def get_weights_and_quantizers(self, layer):
        build_attention(layer)
        return [(getattr(layer, name).kernel, _weight_quantizer()) for name in _PROJECTIONS]

    def get_activations_and_quantizers(self, layer):
        build_attention(layer)
        count = len(_PROJECTIONS) + len(_ATTENTION_POINTS)
        return [(keras.activations.linear, _activation_quantizer()) for _ in range(count)]

    def set_quantize_weights(self, layer, quantize_weights):
        for name, weight in zip(_PROJECTIONS, quantize_weights, strict=True):
            getattr(layer, name).kernel = weight

    def set_quantize_activations(self, layer, quantize_activations):
        projections = quantize_activations[: len(_PROJECTIONS)]
        for name, activation in zip(_PROJECTIONS, projections, strict=True):
            getattr(layer, name).activation = activation
        points = quantize_activations[len(_PROJECTIONS) :]
        layer._tfkd_quantize = dict(zip(_ATTENTION_POINTS, points, strict=True))
        layer._compute_attention = types.MethodType(_quantized_attention, layer)

    def get_output_quantizers(self, layer):
        # The output is the output projection's, quantized as its activation above (TF-MOT's
        # wrapper cannot ask `MultiHeadAttention` for its output shape from one input shape).
        return []


def _quantized_attention(self, query, key, value, attention_mask=None, training=None):
    """`MultiHeadAttention._compute_attention` with fake quantization after each matmul and the
    softmax (the ops LiteRT runs as BATCH_MATMUL and SOFTMAX)."""
    quantize = self._tfkd_quantize
    query = tf.multiply(query, 1.0 / math.sqrt(float(self._key_dim)))
    scores = quantize["scores"](tf.einsum(self._dot_product_equation, key, query))
    scores = quantize["probabilities"](self._masked_softmax(scores, attention_mask))
    dropped = self._dropout_layer(scores, training=training)
    context = quantize["context"](tf.einsum(self._combine_equation, dropped, value))
    return context, scores


def build_attention(layer):
    """Creates a `MultiHeadAttention`'s kernels from the shapes it remembers, if not yet made.

    Keras builds the projections at the first call; TF-MOT's wrapper reads the kernels before it.
    A layer that never saw its value and key shapes is taken as self-attention.
    """
    if not layer._built_from_signature:
        shape = getattr(layer, "_build_input_shape", None)
        if shape is None:
            raise ValueError(
                "A `MultiHeadAttention` must be built (called once) before it is quantized. "
                f"Received: layer={layer.name!r}, never called. Call the model on data first."
            )
        layer._build_from_signature(tf.TensorShape(shape), tf.TensorShape(shape))
    query, key, value = layer._query_shape, layer._key_shape, layer._value_shape
    for name, shape in (("_query_dense", query), ("_key_dense", key), ("_value_dense", value)):
        dense = getattr(layer, name)
        if not dense.built:
            with tf.name_scope(layer.name):
                dense.build(shape)
    output = layer._output_dense
    if not output.built:
        shape = query[:-1].concatenate([layer._num_heads, layer._value_dim])
        with tf.name_scope(layer.name):
            output.build(shape)


def transformer_quantize_config(layer):
    """tfkd's config for a transformer layer TF-MOT lacks, else `None`.

    Args:
        layer: A tf_keras layer.

    Returns:
        A `QuantizeConfig` for `MultiHeadAttention`, `LayerNormalization`, `Embedding` and
        tfkd's `PositionEmbedding`, or `None`.
    """
    from tfkd.models.transformer import PositionEmbedding

    if isinstance(layer, keras.layers.MultiHeadAttention):
        return MultiHeadAttentionQuantizeConfig()
    if isinstance(layer, keras.layers.LayerNormalization):
        return LayerNormalizationQuantizeConfig()
    if isinstance(layer, keras.layers.Embedding):
        return EmbeddingQuantizeConfig()
    if isinstance(layer, PositionEmbedding):
        return OutputQuantizeConfig()
    return None


def integer_inputs_scheme(scheme):
    """`scheme` for a model whose integer inputs (token ids) must stay integer.

    TF-MOT's 8-bit layout puts a fake-quantizing `QuantizeLayer` after every input that feeds a
    quantized layer, which fails on int32 ids. An `Embedding` needs no quantized input: the int8
    `.tflite` takes the ids as int32 and gathers from the int8 table. The returned scheme's
    layout leaves integer inputs out of the layers it transforms; all else is `scheme`'s.
    """
    return IntegerInputsScheme(scheme)


class IntegerInputsLayout(tfmot.quantization.keras.QuantizeLayoutTransform):
    """A layout transform that runs `layout` on every layer but the integer inputs."""

    def __init__(self, layout):
        self.layout = layout

    def apply(self, model, layer_quantize_map):
        integer = {
            layer.name for layer in model.layers
            if isinstance(layer, keras.layers.InputLayer)
            and not tf.as_dtype(layer.dtype).is_floating
        }
        kept = {name: value for name, value in layer_quantize_map.items() if name not in integer}
        return self.layout.apply(model, kept)


class IntegerInputsScheme(tfmot.quantization.keras.QuantizeScheme):
    """A TF-MOT `QuantizeScheme` that is `scheme` with an `IntegerInputsLayout`."""

    def __init__(self, scheme):
        self.scheme = scheme

    def get_layout_transformer(self):
        return IntegerInputsLayout(self.scheme.get_layout_transformer())

    def get_quantize_registry(self):
        return self.scheme.get_quantize_registry()
