"""Operator nodes of Keras 3 functional graphs (`x + 3.0`, `ops.mean(x, axis=1)`, `x[:, 0]`).

Keras 3 records a `keras.ops` call on symbolic tensors as an operation node. The tf_keras equivalent
is the same TensorFlow function applied to tf_keras symbolic tensors, which tf_keras records as a
`TFOpLambda` (or `SlicingOpLambda`) layer: serializable, and converted by the TFLite converter like
any TensorFlow op.
"""

from tfkd._keras import keras, tf
from tfkd.keras3 import activations


def _unary(fn):
    return lambda op, x: fn(x)


def _binary(fn):
    return lambda op, x1, x2: fn(x1, x2)


def _activation(fn):
    return lambda op, x: keras.layers.Activation(fn, name=op.name)(x)


def _reduce(fn):
    return lambda op, x: fn(x, axis=op.axis, keepdims=op.keepdims)


def _softmax(op, x):
    return tf.nn.softmax(x, axis=op.axis)


def _log_softmax(op, x):
    return tf.nn.log_softmax(x, axis=op.axis)


def _gelu(op, x):
    return tf.nn.gelu(x, approximate=op.approximate)


def _leaky_relu(op, x):
    return tf.nn.leaky_relu(x, alpha=op.negative_slope)


def _reshape(op, x):
    return tf.reshape(x, [-1 if d is None else d for d in op.newshape])


def _transpose(op, x):
    return tf.transpose(x, perm=op.axes)


def _concatenate(op, xs):
    return tf.concat(list(xs), axis=op.axis)


def _stack(op, xs):
    return tf.stack(list(xs), axis=op.axis)


def _expand_dims(op, x):
    axis = op.axis
    if isinstance(axis, (list, tuple)):
        for a in sorted(axis):
            x = tf.expand_dims(x, a)
        return x
    return tf.expand_dims(x, axis)


def _squeeze(op, x):
    return tf.squeeze(x, axis=op.axis)


def _clip(op, x):
    return tf.clip_by_value(x, op.x_min, op.x_max)


def _cast(op, x):
    return tf.cast(x, op.dtype)


def _get_item(op, x, key):
    return x[key]


# Keras 3 operation class name -> function(op, *call_args) building the tf_keras node.
_OPS = {
    "Add": _binary(tf.math.add),
    "Subtract": _binary(tf.math.subtract),
    "Multiply": _binary(tf.math.multiply),
    "Divide": _binary(tf.math.truediv),
    "TrueDivide": _binary(tf.math.truediv),
    "FloorDivide": _binary(tf.math.floordiv),
    "Power": _binary(tf.math.pow),
    "Maximum": _binary(tf.math.maximum),
    "Minimum": _binary(tf.math.minimum),
    "Matmul": _binary(tf.linalg.matmul),
    "Negative": _unary(tf.math.negative),
    "Absolute": _unary(tf.math.abs),
    "Abs": _unary(tf.math.abs),
    "Sqrt": _unary(tf.math.sqrt),
    "Rsqrt": _unary(tf.math.rsqrt),
    "Square": _unary(tf.math.square),
    "Exp": _unary(tf.math.exp),
    "Log": _unary(tf.math.log),
    "Tanh": _unary(tf.math.tanh),
    "Sigmoid": _unary(tf.math.sigmoid),
    "Relu": _unary(tf.nn.relu),
    "Relu6": _unary(tf.nn.relu6),
    "Silu": _unary(tf.nn.silu),
    "HardSigmoid": _activation(activations.hard_sigmoid),
    "HardSilu": _activation(activations.hard_silu),
    "Softplus": _unary(tf.math.softplus),
    "Softmax": _softmax,
    "LogSoftmax": _log_softmax,
    "Gelu": _gelu,
    "LeakyRelu": _leaky_relu,
    "Mean": _reduce(tf.math.reduce_mean),
    "Sum": _reduce(tf.math.reduce_sum),
    "Reshape": _reshape,
    "Transpose": _transpose,
    "Concatenate": _concatenate,
    "Stack": _stack,
    "ExpandDims": _expand_dims,
    "Squeeze": _squeeze,
    "Clip": _clip,
    "Cast": _cast,
    "GetItem": _get_item,
}

SUPPORTED_OPS = tuple(sorted(_OPS))


def is_operation_node(operation):
    """Whether a Keras 3 graph operation is a `keras.ops` call rather than a layer."""
    return type(operation).__module__.startswith("keras.src.ops.")


def apply_operation(operation, args, kwargs):
    """Applies the tf_keras equivalent of a Keras 3 operation node to tf_keras symbolic tensors.

    Args:
        operation: The Keras 3 operation (e.g. `keras.src.ops.numpy.Add`).
        args: Its call arguments, with Keras 3 tensors replaced by tf_keras ones.
        kwargs: Its call keyword arguments, likewise.

    Returns:
        The tf_keras symbolic output.

    Raises:
        ValueError: If tfkd has no translation for the operation.
    """
    name = type(operation).__name__
    build = _OPS.get(name)
    if build is None or kwargs:
        detail = f" with keyword arguments {sorted(kwargs)}" if build is not None else ""
        raise ValueError(
            f"tfkd cannot convert the Keras 3 operation node {operation.name!r} (class "
            f"{type(operation).__module__}.{name}){detail} to tf_keras. Supported operations: "
            f"{', '.join(SUPPORTED_OPS)}. Received: operation={name}. Replace it with a Keras "
            "layer (e.g. `keras.layers.Add`, `Rescaling`) or one of the supported operations."
        )
    return build(operation, *args)
