"""Keras 3 activations in tf_keras terms, written out with Keras 3's formulas (TensorFlow backend).

tf_keras lacks several Keras 3 activations (`hard_silu`, `relu6`, `leaky_relu`, ...) and disagrees
on one (`hard_sigmoid` is `clip(0.2 x + 0.5)` in tf_keras, `relu6(x + 3) / 6` in Keras 3). The
functions here are registered under the package "tfkd", so converted models save and load (with
tfkd imported).
Function names match Keras 3's, so TF-MOT recognises the ones it supports by name (e.g. `relu6`).
"""

from tfkd._keras import keras, tf

_register = keras.utils.register_keras_serializable(package="tfkd")


@_register
def relu6(x):
    """`min(max(x, 0), 6)`, as Keras 3 `relu6`."""
    return tf.nn.relu6(x)


@_register
def hard_sigmoid(x):
    """`relu6(x + 3) / 6`, as Keras 3 `hard_sigmoid` (tf_keras's differs: `clip(0.2 x + 0.5)`)."""
    x = tf.convert_to_tensor(x)
    return tf.nn.relu6(x + tf.constant(3.0, x.dtype)) / tf.constant(6.0, x.dtype)


@_register
def hard_silu(x):
    """`x * relu6(x + 3) / 6`, as Keras 3 `hard_silu` (alias `hard_swish`)."""
    x = tf.convert_to_tensor(x)
    return x * hard_sigmoid(x)


@_register
def leaky_relu(x):
    """`x` if `x > 0` else `0.2 x`, as Keras 3 `leaky_relu` (default `negative_slope=0.2`)."""
    return tf.nn.leaky_relu(x, alpha=0.2)


@_register
def log_softmax(x):
    """Log of softmax over the last axis, as Keras 3 `log_softmax`."""
    return tf.nn.log_softmax(x, axis=-1)


@_register
def log_sigmoid(x):
    """`log(sigmoid(x))`, as Keras 3 `log_sigmoid`."""
    return tf.math.log_sigmoid(x)


@_register
def celu(x):
    """`max(x, 0) + expm1(min(x, 0))`, as Keras 3 `celu` (default `alpha=1`)."""
    return tf.maximum(x, 0.0) + 1.0 * tf.math.expm1(tf.minimum(x, 0.0) / 1.0)


@_register
def glu(x):
    """`a * sigmoid(b)` for the two halves `a, b` of the last axis, as Keras 3 `glu`."""
    x1, x2 = tf.split(x, num_or_size_splits=2, axis=-1)
    return x1 * tf.sigmoid(x2)


@_register
def hard_tanh(x):
    """`clip(x, -1, 1)`, as Keras 3 `hard_tanh`."""
    return tf.clip_by_value(x, clip_value_min=-1.0, clip_value_max=1.0)


@_register
def hard_shrink(x):
    """`x` where `|x| > 0.5`, else 0, as Keras 3 `hard_shrink`."""
    return tf.where(tf.abs(x) > 0.5, x, tf.zeros_like(x))


@_register
def soft_shrink(x):
    """`x - 0.5` above 0.5, `x + 0.5` below -0.5, else 0, as Keras 3 `soft_shrink`."""
    return tf.where(x > 0.5, x - 0.5, tf.where(x < -0.5, x + 0.5, tf.zeros_like(x)))


@_register
def tanh_shrink(x):
    """`x - tanh(x)`, as Keras 3 `tanh_shrink`."""
    return x - tf.math.tanh(x)


@_register
def squareplus(x):
    """`(x + sqrt(x**2 + 4)) / 2`, as Keras 3 `squareplus` (default `b=4`)."""
    x = tf.convert_to_tensor(x)
    return (x + tf.sqrt(tf.square(x) + tf.constant(4.0, x.dtype))) / 2


@_register
def sparse_plus(x):
    """0 below -1, `(x + 1)**2 / 4` in (-1, 1), `x` above, as Keras 3 `sparse_plus`."""
    return tf.where(x <= -1, tf.zeros_like(x), tf.where(x < 1, (1 / 4) * tf.pow(x + 1, 2), x))


@_register
def sparse_sigmoid(x):
    """0 below -1, `(x + 1) / 2` in (-1, 1), 1 above, as Keras 3 `sparse_sigmoid`."""
    x = tf.convert_to_tensor(x)
    one = tf.constant(1.0, dtype=x.dtype)
    return tf.where(x <= -1, tf.constant(0.0, dtype=x.dtype), tf.where(x >= 1, one, 0.5 * (x + 1)))


# Keras 3 names tf_keras computes the same way under the same (or another) name.
_SAME = {
    name: name
    for name in (
        "linear", "relu", "sigmoid", "tanh", "softmax", "elu", "selu", "softplus", "softsign",
        "exponential", "gelu", "mish",
    )
}
_SAME.update({"silu": "swish", "swish": "swish"})

WRITTEN_OUT = {
    fn.__name__: fn
    for fn in (
        relu6, hard_sigmoid, hard_silu, leaky_relu, log_softmax, log_sigmoid, celu, glu, hard_tanh,
        hard_shrink, soft_shrink, tanh_shrink, squareplus, sparse_plus, sparse_sigmoid,
    )
}
WRITTEN_OUT["hard_swish"] = hard_silu

SUPPORTED_ACTIVATIONS = tuple(sorted(set(_SAME) | set(WRITTEN_OUT)))


def translate_activation(value, where):
    """The tf_keras activation (a name or a tfkd function) computing Keras 3's activation `value`.

    Args:
        value: A Keras 3 activation as it appears in a layer config (a name, or `None`).
        where: Words naming the layer, for the error message.

    Returns:
        A string tf_keras understands, or one of the functions of this module.

    Raises:
        ValueError: If the activation is not a Keras 3 built-in that tfkd can write out.
    """
    if value is None:
        return "linear"
    if isinstance(value, str):
        if value in _SAME:
            return _SAME[value]
        if value in WRITTEN_OUT:
            return WRITTEN_OUT[value]
    raise ValueError(
        f"{where} uses the activation {value!r}, which tfkd cannot convert to tf_keras. "
        f"Supported activations: {', '.join(SUPPORTED_ACTIVATIONS)}. "
        f"Received: activation={value!r}. "
        "Use one of these, or rebuild the model with `tfkd.keras` and copy the weights."
    )
