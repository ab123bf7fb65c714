"""The wrappers compression puts around layers: one predicate per kind, `find_layer` and `strip`.

Every module that asks "is this layer pruned / clustered / quantization-aware?" asks here, with
`isinstance`, so subclasses (tfkd's `StructuredPruneLowMagnitude`, TF-MOT's `ClusterWeightsRNN`,
`QuantizeWrapperV2`) are covered everywhere at once. `strip` removes every training-time wrapper
kind (pruning, clustering); each kind is one step in `STRIP_STEPS`, so a new kind adds a step.

No model can hold a TF-MOT wrapper before TF-MOT is imported, so the predicates answer `False`
without importing it (its import takes ~3 s, and exported files run without it).
"""

import sys
from typing import Any

from tfkd._keras import keras

_TFMOT = "tensorflow_model_optimization"
_STRUCTURED: list[Any] = []


def _tfmot_loaded():
    return _TFMOT in sys.modules


def prune_wrapper_class():
    """TF-MOT's `PruneLowMagnitude` (not exported by its public API)."""
    from tensorflow_model_optimization.python.core.sparsity.keras import pruning_wrapper

    return pruning_wrapper.PruneLowMagnitude


def cluster_wrapper_class():
    """TF-MOT's `ClusterWeights` (its RNN and MultiHeadAttention variants subclass it)."""
    from tensorflow_model_optimization.python.core.clustering.keras import cluster_wrapper

    return cluster_wrapper.ClusterWeights


def quantize_classes():
    """TF-MOT's QAT layers: `QuantizeWrapper` (and its V2 subclass) and `QuantizeLayer`."""
    from tensorflow_model_optimization.python.core.quantization.keras import (
        quantize_layer,
        quantize_wrapper,
    )

    return quantize_wrapper.QuantizeWrapper, quantize_layer.QuantizeLayer


def structured_prune_wrapper_class():
    """`PruneLowMagnitude` that saves its m:n structure (TF-MOT's `get_config` leaves it out).

    Defined on first use (TF-MOT is imported lazily) and registered as
    `tfkd>StructuredPruneLowMagnitude`, so `tfkd.load_model` restores the structure.
    """
    if not _STRUCTURED:
        base = prune_wrapper_class()

        @keras.utils.register_keras_serializable(package="tfkd")
        class StructuredPruneLowMagnitude(base):
            def __init__(self, layer, **kwargs):
                super().__init__(layer, **kwargs)
                self._name = f"prune_low_magnitude_{self.layer.name}"  # as TF-MOT names it

            def get_config(self):
                return {**super().get_config(), "sparsity_m_by_n": self.sparsity_m_by_n}

        _STRUCTURED.append(StructuredPruneLowMagnitude)
    return _STRUCTURED[0]


# ------------------------------------------------------------------------------- predicates


def is_pruning_wrapper(layer):
    """Whether `layer` is a pruning wrapper: TF-MOT's `PruneLowMagnitude` or a subclass (tfkd's
    `StructuredPruneLowMagnitude` included)."""
    return _tfmot_loaded() and isinstance(layer, prune_wrapper_class())


def is_cluster_wrapper(layer):
    """Whether `layer` is a TF-MOT clustering wrapper (`ClusterWeights` or a subclass)."""
    return _tfmot_loaded() and isinstance(layer, cluster_wrapper_class())


def is_quantize_wrapper(layer):
    """Whether `layer` is a QAT wrapper around a layer (`QuantizeWrapper`, `QuantizeWrapperV2`)."""
    return _tfmot_loaded() and isinstance(layer, quantize_classes()[0])


def is_quantization_layer(layer):
    """Whether `layer` is any QAT layer: a `QuantizeWrapper` or the input's `QuantizeLayer`."""
    return _tfmot_loaded() and isinstance(layer, quantize_classes())


def is_quantize_annotation(layer):
    """Whether `layer` is annotated for QAT (`quantize_annotate_layer`), not yet quantized."""
    if not _tfmot_loaded():
        return False
    from tensorflow_model_optimization.python.core.quantization.keras import quantize_annotate

    return isinstance(layer, quantize_annotate.QuantizeAnnotate)


def iter_layers(model):
    """Every layer of `model`, descending into nested models (the models themselves not listed)."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from iter_layers(layer)
        else:
            yield layer


def wrapped_layers(model, predicate):
    """The layers of `model` (nested models included) for which `predicate(layer)` holds."""
    return [layer for layer in iter_layers(model) if predicate(layer)]


def unwrap(layer):
    """The innermost layer under any chain of wrappers (pruning, clustering, quantization)."""
    while isinstance(layer, keras.layers.Wrapper):
        layer = layer.layer
    return layer


def find_layer(model, name):
    """The layer of `model` named `name`, or the wrapper around the layer of that name.

    Pruning, clustering and QAT rename the layers they wrap (`prune_low_magnitude_dense`,
    `quant_dense`); a name given before wrapping still finds the layer, whose `output` is then the
    wrapper's (the pruned, clustered or fake-quantized computation). Only `model.layers` is
    searched, as `model.get_layer` does.

    Args:
        model: A Sequential or Functional `tfkd.keras.Model`.
        name: The layer's name, as given when the model was built.

    Returns:
        The layer (or its outermost wrapper), or `None` if `model` has no such layer.
    """
    for layer in model.layers:
        if layer.name == name:
            return layer
    for layer in model.layers:
        if isinstance(layer, keras.layers.Wrapper) and unwrap(layer).name == name:
            return layer
    return None


def layer_names(model):
    """The names `find_layer` accepts: each layer's own name, or its unwrapped name."""
    return [unwrap(layer).name for layer in model.layers]


# ------------------------------------------------------------------------------------- strip


def strip_pruning(model):
    """`model` without pruning wrappers; each mask is applied once more so the zeros stay."""
    wrappers = wrapped_layers(model, is_pruning_wrapper)
    if not wrappers:
        return model
    for layer in wrappers:
        if layer.pruning_obj is not None:
            layer.pruning_obj.weight_mask_op()
    import tensorflow_model_optimization as tfmot

    return tfmot.sparsity.keras.strip_pruning(model)


def strip_clustering(model):
    """`model` without clustering wrappers; kernels hold their centroid values."""
    if not wrapped_layers(model, is_cluster_wrapper):
        return model
    import tensorflow_model_optimization as tfmot

    return tfmot.clustering.keras.strip_clustering(model)


def strip_channel_masks(model):
    """`model` with its channel masks cut out: physically smaller (`tfkd.optimize.channels`)."""
    from tfkd.optimize.channels import strip_channels  # imports this module's users

    return strip_channels(model)


# One step per training-time wrapper kind, applied in order. QAT wrappers stay: the converter
# reads their ranges to write an int8 file.
STRIP_STEPS = [strip_pruning, strip_clustering, strip_channel_masks]


def _is_training_wrapper(layer):
    return is_pruning_wrapper(layer) or is_cluster_wrapper(layer)


def training_wrappers(model):
    """The wrappers of `model` that `strip` removes (pruning, clustering), nested ones included."""
    return wrapped_layers(model, _is_training_wrapper)


def strip(model: keras.Model) -> keras.Model:
    """Returns `model` without its pruning and clustering wrappers, keeping QAT wrappers.

    Pruned kernels keep their zeros (the masks are applied once more before unwrapping) and
    clustered kernels keep their centroid values; tfkd's own wrappers (`prune(structure="2:4")`)
    are stripped like TF-MOT's. The result shares its other layers with `model`, as TF-MOT's
    `strip_pruning` does. A model without such wrappers comes back unchanged. Every exporter calls
    this first.

    Args:
        model: A Sequential or Functional `tfkd.keras.Model`, pruned and/or clustered.

    Returns:
        A `tfkd.keras.Model` ready to export or to quantize (e.g. `tfkd.quantize(stripped,
        preserve="sparsity")`).

    Raises:
        TypeError: If `model` is not a Keras model.
        ValueError: If `model` is subclassed or a distiller.
    """
    from tfkd.optimize._common import check_graph_model

    model = check_graph_model("model", model)
    for step in STRIP_STEPS:
        model = step(model)
    return model
