"""FLOPs of a Keras model's forward pass, counted from its Conv, Depthwise and Dense shapes.

One multiply-add counts as 2 FLOPs, for one sample. Zeros in a kernel are counted like any weight:
dense kernels multiply them (what a `.tflite` runs unless its weights are stored sparse), so
unstructured sparsity leaves this number where it was and channel pruning lowers it.
"""

import numpy as np

from tfkd._keras import keras

L = keras.layers


def count_flops(model):
    """FLOPs of one forward pass of `model` on one sample (2 per multiply-add).

    Counts Conv1D/2D/3D (grouped too), DepthwiseConv1D/2D, SeparableConv1D/2D and Dense (on any
    input rank), through pruning, clustering and QAT wrappers and nested models. Other layers
    (pooling, activations, BatchNorm) are not counted: they are small beside these and folded or
    fused on export.

    Args:
        model: A built `tfkd.keras.Model`.

    Returns:
        The FLOPs as an int.

    Example:
    >>> tfkd.flops.count_flops(keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]))
    24
    """
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += count_flops(layer)
            continue
        inner = layer
        while isinstance(inner, L.Wrapper):
            inner = inner.layer
        try:
            in_shape, out_shape = layer.input_shape, layer.output_shape
        except (AttributeError, RuntimeError):
            continue
        total += layer_flops(inner, in_shape, out_shape)
    return int(total)


def layer_flops(layer, input_shape, output_shape):
    """FLOPs of one layer for one sample, given its input and output shapes (batch first)."""
    if not isinstance(input_shape, tuple) or not isinstance(output_shape, tuple):
        return 0
    if None in input_shape[1:] or None in output_shape[1:]:
        return 0
    positions = int(np.prod(output_shape[1:-1])) if len(output_shape) > 2 else 1
    c_in, c_out = input_shape[-1], output_shape[-1]
    if isinstance(layer, (L.SeparableConv1D, L.SeparableConv2D)):
        window = int(np.prod(layer.kernel_size))
        depthwise = positions * c_in * layer.depth_multiplier * window  # at output resolution
        return 2 * (depthwise + positions * c_in * layer.depth_multiplier * c_out)
    if isinstance(layer, (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)):
        inputs = int(np.prod(input_shape[1:-1]))
        return 2 * inputs * c_in * c_out * int(np.prod(layer.kernel_size))
    if isinstance(layer, (L.DepthwiseConv1D, L.DepthwiseConv2D)):
        return 2 * positions * c_out * int(np.prod(layer.kernel_size))
    if isinstance(layer, (L.Conv1D, L.Conv2D, L.Conv3D)):
        window = int(np.prod(layer.kernel_size)) * c_in // max(1, getattr(layer, "groups", 1))
        return 2 * positions * c_out * window
    if isinstance(layer, L.Dense):
        return 2 * positions * c_in * c_out
    return 0


def tflite_op_flops(op_name, weight_shape, output_shape):
    """FLOPs of one `.tflite` op for one sample, from its weight and output tensor shapes.

    Args:
        op_name: The builtin op name (`"CONV_2D"`, `"DEPTHWISE_CONV_2D"`, `"FULLY_CONNECTED"`;
            other ops count 0).
        weight_shape: Shape of the op's input 1 (TFLite layouts: `(O, kh, kw, I)`,
            `(1, kh, kw, C)`, `(O, I)`).
        output_shape: Shape of the op's output, batch first.

    Returns:
        The FLOPs as an int.
    """
    if weight_shape is None or output_shape is None or len(output_shape) < 2:
        return 0
    positions = int(np.prod(output_shape[1:-1])) if len(output_shape) > 2 else 1
    if op_name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        # Every weight is used once per output position (depthwise: once per position too).
        return int(2 * positions * int(np.prod(weight_shape)))
    return 0
