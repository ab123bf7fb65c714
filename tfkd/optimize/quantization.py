"""Quantization-aware training over TF-MOT: `quantize` (8-bit QAT, PQAT, CQAT)."""

import re
from typing import Any

from tfkd._validation import check_choice
from tfkd.optimize._common import check_graph_model, select_layers, tfmot
from tfkd.optimize.wrappers import (
    find_layer,
    is_quantization_layer,
    is_quantize_annotation,
    training_wrappers,
    unwrap,
)

_PRESERVE = (None, "sparsity", "clusters")


def quantize(model: Any, preserve: str | None = None, layers: Any = None) -> Any:
    """Returns a copy of `model` that trains with simulated 8-bit quantization (QAT).

    Uses TF-MOT's default 8-bit scheme: weights per channel, activations per tensor, batch norm
    folded into the convolution before it. The result trains like any model, in `Distiller.fit`
    (with a float teacher) or a plain `fit`, and converts to an INT8 `.tflite` that keeps its
    accuracy. The input model is not changed.

    To keep what pruning or clustering achieved, strip their wrappers first (`tfkd.strip`) and pass
    `preserve`: `"sparsity"` uses the prune-preserving scheme (PQAT: zeros stay zero through QAT),
    `"clusters"` the cluster-preserving one (CQAT: weights keep their cluster count, and zeros).

    TF-MOT decides what it can quantize, after its own rewrites: it splits `SeparableConv2D` into a
    depthwise and a pointwise convolution and folds BatchNormalization into the convolution before
    it. A layer TF-MOT has no config for can be given one of yours: annotate it with
    `tfmot.quantization.keras.quantize_annotate_layer(layer, quantize_config=MyConfig())` (tfkd
    keeps such annotations as they are) and call `tfkd.quantize` inside
    `tfmot.quantization.keras.quantize_scope({"MyConfig": MyConfig})`.

    Args:
        model: A Sequential or Functional `tfkd.keras.Model` without pruning or clustering wrappers.
        preserve: `None`, `"sparsity"` or `"clusters"`. Defaults to `None`.
        layers: Layer names and/or layer classes to quantize, or `None` for every layer (input
            `Normalization` and operator nodes such as `x + 3.0` in converted Keras 3 graphs stay
            float in the QAT model and are calibrated by the int8 export). Defaults to `None`.

    Returns:
        A new `tfkd.keras.Model` holding TF-MOT `QuantizeWrapperV2` layers.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If `preserve` is unknown, the model still holds pruning or clustering wrappers,
            or a selected layer is one TF-MOT cannot quantize (the message names it).

    Example:
    >>> qat = tfkd.quantize(tfkd.strip(pruned_student), preserve="sparsity")
    >>> tfkd.Distiller(teacher=teacher, student=qat).compile(...).fit(x, y, epochs=2)
    """
    model = check_graph_model("model", model)
    check_choice("preserve", preserve, _PRESERVE)
    _check_no_training_wrappers(model)
    api = tfmot().quantization.keras
    scheme = _scheme(preserve)
    candidates = [layer for layer in model.layers if not _is_input(layer)]
    if layers is None:
        # Operator nodes (`x + 3.0` in converted Keras 3 graphs) and input Normalization hold no
        # kernel and TF-MOT has no config for them; left float, the int8 export calibrates them.
        candidates = [layer for layer in candidates if not _stays_float(layer)]
    names = set(select_layers("layers", layers, candidates))

    def annotate(layer):
        if is_quantize_annotation(layer) or layer.name not in names:
            return layer  # annotated by the user (their own QuantizeConfig), or not selected
        # tfkd's config first: TF-MOT "supports" Activation layers but not e.g. hard_silu.
        return api.quantize_annotate_layer(layer, quantize_config=quantize_config_for(layer))

    from tfkd._keras import keras

    annotated = keras.models.clone_model(model, clone_function=annotate)
    annotated.set_weights(model.get_weights())
    try:
        from tfkd.optimize.transformer_quantize import integer_inputs_scheme

        with api.quantize_scope():  # token ids stay int32 (no fake quantizer after them)
            quantized = api.quantize_apply(annotated, integer_inputs_scheme(scheme))
    except RuntimeError as error:  # TF-MOT decides, after its own splits and folds
        raise ValueError(_unsupported_message(model, _failing_layer(model, error))) from error
    _untrack_inner_copies(quantized)
    return quantized


def _untrack_inner_copies(model):
    """Leaves each QAT wrapper tracking only the weights it quantizes, as a loaded one does.

    `quantize_apply` leaves the wrapped layer's kernel and bias in the wrapper's own list besides
    the quantized kernel ([kernel, bias, kernel]); a wrapper rebuilt from a `.keras` file tracks
    [kernel], so the file would not load. Training is unchanged (the bias stays with the layer).
    """
    api = tfmot().quantization.keras
    for layer in model.layers:
        if not isinstance(layer, api.QuantizeWrapper):
            continue
        quantized = [weight for weight, _, _ in getattr(layer, "_weight_vars", [])]
        kept = []
        for variable in layer._trainable_weights:
            if any(variable is q for q in quantized) and all(variable is not k for k in kept):
                kept.append(variable)
        layer._trainable_weights[:] = kept


def _scheme(preserve):
    api = tfmot().quantization.keras
    if preserve == "sparsity":
        return api.collab_opts.Default8BitPrunePreserveQuantizeScheme()
    if preserve == "clusters":
        from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.cluster_preserve import (  # noqa: E501
            default_8bit_cluster_preserve_quantize_scheme as cqat,
        )

        return cqat.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True)
    return api.default_8bit.Default8BitQuantizeScheme()


def _stays_float(layer):
    from tfkd._keras import keras

    operator_nodes = keras.src.layers.core.tf_op_layer  # `x + 3.0`, `x[:, 0]` in Functional graphs
    kinds = (operator_nodes.TFOpLambda, operator_nodes.SlicingOpLambda, keras.layers.Normalization)
    return isinstance(layer, kinds)


def quantize_config_for(layer):
    """tfkd's quantize config for a layer TF-MOT lacks (converted Keras 3 layers, transformer
    layers), else None."""
    from tfkd.optimize.quantize_configs import quantize_config_for as config_for  # TF-MOT
    from tfkd.optimize.transformer_quantize import transformer_quantize_config

    return transformer_quantize_config(layer) or config_for(layer)


def _is_input(layer):
    from tfkd._keras import keras

    return isinstance(layer, keras.layers.InputLayer)


def _check_no_training_wrappers(model):
    wrapped = [layer.name for layer in training_wrappers(model)]
    if wrapped:
        raise ValueError(
            "`model` still holds pruning or clustering wrappers, which QAT cannot wrap: "
            f"{wrapped}. Received: model={model.name!r}. Strip them first and keep their effect: "
            "`tfkd.quantize(tfkd.strip(model), preserve='sparsity')` (or preserve='clusters')."
        )
    if any(is_quantization_layer(layer) for layer in model.layers):
        raise ValueError(
            "`model` is already quantization-aware (it holds QuantizeWrapper layers). "
            f"Received: model={model.name!r}. Quantize the float model once."
        )
    from tfkd._keras import keras

    nested = [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
    if nested:
        raise ValueError(
            f"TF-MOT cannot quantize models nested inside a model: {nested}. Received: "
            f"model={model.name!r}. Flatten the model into one Functional graph, or quantize the "
            "inner model on its own."
        )


def _failing_layer(model, error):
    """`"name (Class)"` of the layer TF-MOT's error names, or the error's text."""
    match = re.search(r"Layer (\S+?):", str(error))
    layer = find_layer(model, match.group(1)) if match else None
    if layer is None:
        return match.group(1) if match else str(error)
    return f"{layer.name} ({type(unwrap(layer)).__name__})"


def _unsupported_message(model, described):
    name = described.split(" ")[0]
    return (
        f"TF-MOT cannot quantize these layers: {described}. Received: model={model.name!r}. "
        "Pass `layers=` to quantize only the supported ones (e.g. `layers=[keras.layers.Dense, "
        "keras.layers.Conv2D]`), or give each such layer a QuantizeConfig of your own and "
        "quantize under its scope: `annotated = keras.models.clone_model(model, clone_function="
        "lambda layer: tfmot.quantization.keras.quantize_annotate_layer(layer, "
        f"quantize_config=MyConfig()) if layer.name == {name!r} else layer)`, then `with "
        "tfmot.quantization.keras.quantize_scope({'MyConfig': MyConfig}): qat = "
        "tfkd.quantize(annotated)`."
    )
