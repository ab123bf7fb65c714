"""What every exporter does first: check the model, strip pruning wrappers, notice QAT."""

from tfkd.keras3 import check_model

_PRUNING_WRAPPERS = {"PruneLowMagnitude"}
_QAT_LAYERS = {"QuantizeWrapper", "QuantizeWrapperV2", "QuantizeLayer", "QuantizeAwareActivation"}


def _layer_class_names(model):
    return {type(layer).__name__ for layer in model.submodules}


def has_pruning_wrappers(model):
    """Whether `model` (or a model nested in it) holds TF-MOT `prune_low_magnitude` wrappers."""
    return bool(_layer_class_names(model) & _PRUNING_WRAPPERS)


def is_quantization_aware(model):
    """Whether `model` holds TF-MOT quantization-aware training layers (`quantize_model`)."""
    return bool(_layer_class_names(model) & _QAT_LAYERS)


def prepare_model(model, name="model"):
    """Returns `(model, is_qat)`: a tf_keras model ready to export.

    A `Distiller` gives its student. Pruning wrappers are stripped (`strip_pruning`), which keeps
    the pruned zeros in the kernels and removes the masks, so exported files hold only the weights.
    """
    model = check_model(name, model)
    from tfkd.distiller import Distiller

    if isinstance(model, Distiller):  # what gets deployed is the student
        model = model.student
    if has_pruning_wrappers(model):
        import tensorflow_model_optimization as tfmot

        model = tfmot.sparsity.keras.strip_pruning(model)
    if not model.built or not model.inputs:
        raise ValueError(
            f"`{name}` must be a built model with known inputs to export. Received: "
            f"{name}={model.name!r} (built={model.built}). Build it with `keras.Input(...)` "
            "(a functional or Sequential model), or call it once on data first."
        )
    return model, is_quantization_aware(model)
