"""What every exporter does first: check the model, strip training wrappers, notice QAT."""

from tfkd.keras3 import check_model
from tfkd.optimize._common import is_graph_model
from tfkd.optimize.wrappers import is_quantization_layer, strip, wrapped_layers


def is_quantization_aware(model):
    """Whether `model` holds TF-MOT quantization-aware training layers (`tfkd.quantize`)."""
    return bool(wrapped_layers(model, is_quantization_layer))


def prepare_model(model, name="model"):
    """Returns `(model, is_qat)`: a tf_keras model ready to export.

    A `Distiller` gives its student. A Sequential or Functional model goes through `tfkd.strip`,
    which removes every training-time wrapper (pruning, tfkd's m:n pruning, clustering, channel
    masks) keeping the pruned zeros and clustered values in the kernels and dropping masks,
    indices and centroids, so exported files hold only the weights (a model without any comes
    back unchanged).
    """
    model = check_model(name, model)
    from tfkd.distiller import Distiller

    if isinstance(model, Distiller):  # what gets deployed is the student
        model = model.student
    if is_graph_model(model):
        model = strip(model)
    if not model.built or not model.inputs:
        raise ValueError(
            f"`{name}` must be a built model with known inputs to export. Received: "
            f"{name}={model.name!r} (built={model.built}). Build it with `keras.Input(...)` "
            "(a functional or Sequential model), or call it once on data first."
        )
    return model, is_quantization_aware(model)
