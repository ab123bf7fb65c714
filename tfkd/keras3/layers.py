"""Keras 3 built-in layers as tf_keras layers: config translation and weight copying."""

import inspect

import numpy as np

from tfkd._keras import import_keras3, keras
from tfkd.keras3.activations import translate_activation

# Keras 3 built-in layers tfkd rebuilds in tf_keras (same class name, config translated).
SUPPORTED_LAYERS = (
    "Dense", "EinsumDense", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose",
    "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D",
    "BatchNormalization", "LayerNormalization", "GroupNormalization", "UnitNormalization",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
    "AveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
    "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D",
    "UpSampling1D", "UpSampling2D", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
    "GaussianNoise", "GaussianDropout", "ActivityRegularization", "Flatten", "Reshape", "Permute",
    "RepeatVector", "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "Add", "Subtract",
    "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot", "Embedding", "Rescaling",
    "Normalization", "Identity", "MultiHeadAttention",
)

# Keys Keras 3 configs have and tf_keras layers do not, with the values that mean "nothing to do".
_NEUTRAL = {
    "synchronized": None,  # any value: only changes how replicas share statistics while training
    "lora_rank": (None,),
    "lora_alpha": None,
    "quantization_config": (None,),
    "rms_scaling": (False,),
    "optional": (False,),
    "data_format": ("channels_last",),  # tf_keras layers without it are channels-last
    "seed": None,
    "use_gate": (False,),  # MultiHeadAttention: Keras 3 options tf_keras's layer lacks
    "sliding_window": (None,),
    "flash_attention": (None, False),
}
_RENAMED = {"LeakyReLU": {"negative_slope": "alpha"}}
_BASE_KWARGS = {"name", "trainable", "dtype", "dynamic", "activity_regularizer", "autocast"}
_OBJECT_MODULES = {
    "initializer": keras.initializers,
    "regularizer": keras.regularizers,
    "constraint": keras.constraints,
}


@keras.utils.register_keras_serializable(package="tfkd")
class LayerScale(keras.layers.Layer):
    """`x * gamma`, a learned scale per channel: Keras 3 ConvNeXt's `LayerScale` in tf_keras.

    Args:
        init_values: Initial value of every scale. Defaults to `1e-6`.
        projection_dim: Number of channels (the last axis). Defaults to `None` (read at build).
    """

    def __init__(self, init_values=1e-6, projection_dim=None, **kwargs):
        super().__init__(**kwargs)
        self.init_values = init_values
        self.projection_dim = projection_dim

    def build(self, input_shape):
        dim = self.projection_dim or int(input_shape[-1])
        self.gamma = self.add_weight(
            name="gamma", shape=(dim,), initializer=keras.initializers.Constant(self.init_values)
        )
        self.built = True

    def call(self, x):
        return x * self.gamma

    def get_config(self):
        config = super().get_config()
        config.update({"init_values": self.init_values, "projection_dim": self.projection_dim})
        return config


# Layers Keras 3 defines outside `keras.layers` (in `keras.applications`) that tfkd rebuilds.
_APPLICATION_LAYERS = {("keras.src.applications.convnext", "LayerScale"): LayerScale}


def describe(layer):
    return f"Layer {layer.name!r} (class {type(layer).__module__}.{type(layer).__name__})"


def _translate_object(key, value, layer):
    """A Keras 3 initializer/regularizer/constraint config as the tf_keras object."""
    if value is None or isinstance(value, str):
        return value
    kind = key.rsplit("_", 1)[-1]
    module = _OBJECT_MODULES[kind]
    cls = getattr(module, value.get("class_name", ""), None) if isinstance(value, dict) else None
    if cls is None:
        raise ValueError(
            f"{describe(layer)} has a {kind} tfkd cannot convert to tf_keras. "
            f"Received: {key}={value!r}. Use a built-in Keras {kind}, or none."
        )
    accepted = inspect.signature(cls.__init__).parameters
    config = {k: v for k, v in (value.get("config") or {}).items() if k in accepted}
    return cls(**config)


def _translate_dtype(value):
    if isinstance(value, dict):
        return value.get("config", {}).get("name", "float32")
    return value


def _accepted_keys(tk_cls):
    keys = set(_BASE_KWARGS)
    for klass in tk_cls.__mro__:
        if klass.__module__.startswith(("tf_keras", "tfkd")) and "__init__" in vars(klass):
            keys |= set(inspect.signature(klass.__init__).parameters)
    return keys


def translate_layer(layer):
    """A new, unbuilt tf_keras layer computing what the Keras 3 `layer` computes.

    Raises:
        ValueError: If the layer (or one of its settings) has no tf_keras equivalent.
    """
    cls_name = type(layer).__name__
    tk_cls = _APPLICATION_LAYERS.get((type(layer).__module__, cls_name))
    if tk_cls is not None:
        return tk_cls(**_translate_config(layer, tk_cls))
    tk_cls = getattr(keras.layers, cls_name, None)
    if cls_name not in SUPPORTED_LAYERS or tk_cls is None or not _is_builtin(layer):
        raise ValueError(
            f"{describe(layer)} cannot be converted to tf_keras by tfkd. "
            f"Supported layers: {', '.join(SUPPORTED_LAYERS)}. Received: layer={cls_name}. "
            "Replace it with supported layers, or rebuild the model with `tfkd.keras` and copy "
            "the weights with `set_weights`."
        )
    return tk_cls(**_translate_config(layer, tk_cls))


def _translate_config(layer, tk_cls):
    """The Keras 3 layer's config, as arguments of the tf_keras class `tk_cls`."""
    cls_name = type(layer).__name__
    config = dict(layer.get_config())
    for old, new in _RENAMED.get(cls_name, {}).items():
        if old in config:
            config[new] = config.pop(old)
    accepted = _accepted_keys(tk_cls)
    for key in list(config):
        value = config[key]
        if key not in accepted:
            neutral = _NEUTRAL.get(key, ())
            if key in _NEUTRAL and (neutral is None or value in neutral):
                del config[key]
                continue
            raise ValueError(
                f"{describe(layer)} sets `{key}`, which tf_keras's {cls_name} does not have. "
                f"Received: {key}={value!r}. Leave `{key}` at its default to convert this model."
            )
        if key == "dtype":
            config[key] = _translate_dtype(value)
        elif key == "activation":
            config[key] = translate_activation(value, describe(layer))
        elif key.endswith(("_initializer", "_regularizer", "_constraint")):
            config[key] = _translate_object(key, value, layer)
    return config


def _is_builtin(layer):
    return type(layer).__module__.startswith("keras.src.layers.")


def _short_name(variable):
    return variable.name.split("/")[-1].split(":")[0]


def copy_weights(source, target):
    """Copies the Keras 3 layer `source`'s weights into the built tf_keras layer `target`.

    Variables are matched by name (`gamma`, `moving_mean`, `kernel`, ...) when both layers use the
    same names, so the order each Keras keeps them in does not matter; otherwise (e.g. Keras 3 names
    a depthwise kernel `kernel`, tf_keras `depthwise_kernel`) in order. Shapes must agree.
    """
    sources, targets = list(source.weights), list(target.weights)
    if len(sources) != len(targets):
        _raise_weights(source, target)
    by_name = {_short_name(w): w for w in sources}
    if len(by_name) == len(sources) and set(by_name) == {_short_name(w) for w in targets}:
        sources = [by_name[_short_name(w)] for w in targets]
    for value, variable in zip(sources, targets, strict=True):
        if tuple(value.shape) != tuple(variable.shape):
            _raise_weights(source, target)
    effective = _effective_values(source)
    for value, variable in zip(sources, targets, strict=True):
        value = effective.get(_short_name(value), value)
        variable.assign(np.reshape(np.asarray(value), tuple(variable.shape)))
    target.finalize_state()  # preprocessing layers (Normalization) cache tensors from variables


def _effective_values(source):
    """Keras 3 Normalization computes with `layer.mean`/`layer.variance`, set from its variables
    when adapted or loaded; those are the values that give its outputs."""
    if not isinstance(source, import_keras3().layers.Normalization) or not source.weights:
        return {}
    return {
        name: getattr(source, name)
        for name in ("mean", "variance")
        if getattr(source, name, None) is not None
    }


def _raise_weights(source, target):
    src = [(_short_name(w), tuple(w.shape)) for w in source.weights]
    dst = [(_short_name(w), tuple(w.shape)) for w in target.weights]
    raise ValueError(
        f"{describe(source)}: its weights do not match the rebuilt tf_keras layer's. "
        f"Received: Keras 3 weights {src}, tf_keras weights {dst}. Please report this with the "
        "layer's config."
    )
