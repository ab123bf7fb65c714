"""`load_model`: loads models holding TF-MOT wrappers or tfkd objects; no scopes to remember."""

import contextlib
import os

from tfkd._keras import keras
from tfkd.keras3.files import is_keras3_file, load_keras3_file


def load_model(
    path: str | os.PathLike[str], compile: bool = True,  # noqa: A002 (mirrors keras.models.load_model)
) -> keras.Model:
    """Loads a `.keras`, `.h5` or SavedModel file that may hold TF-MOT wrappers or tfkd objects.

    TF-MOT's pruning, quantization and clustering wrappers (and their schedules, quantizers and
    schemes) and tfkd's registered objects (losses, ...) are in scope while loading, so pruned,
    clustered and QAT models load as they were saved.

    A file saved by Keras 3 (`import keras`, the default Keras today) is loaded with Keras 3 and
    converted with `tfkd.from_keras3` to a tf_keras model with the same weights, with one warning
    saying so; with `compile=True` it is compiled with the tf_keras equivalents of its optimizer,
    loss and metrics (or left uncompiled, the warning says why, when they do not convert).

    Args:
        path: A `.keras` or `.h5` file, or a SavedModel folder, written by `model.save(path)`.
        compile: Whether to compile the model as it was saved. Defaults to `True`.

    Returns:
        The `tfkd.keras.Model`.

    Raises:
        FileNotFoundError: If `path` does not exist.
        ValueError: If a Keras 3 file cannot be loaded by Keras 3, or holds a layer tfkd cannot
            convert (the message names it).

    Example:
    >>> pruned.save("pruned.keras")
    >>> same = tfkd.load_model("pruned.keras")
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"No saved model at this path. Received: path={path!r}. Pass a `.keras` or `.h5` file, "
            "or a SavedModel folder written by `model.save(path)`."
        )
    if is_keras3_file(path):
        return load_keras3_file(path, compile=compile)
    with load_scope():
        return keras.models.load_model(path, compile=compile)


@contextlib.contextmanager
def load_scope():
    """A scope in which Keras deserializes TF-MOT's wrappers and tfkd's objects."""
    import tensorflow_model_optimization as tfmot

    import tfkd.losses  # noqa: F401 (registers tfkd's serializable objects)
    import tfkd.optimize.quantize_configs  # noqa: F401 (registers configs of converted layers)
    import tfkd.optimize.schedules  # noqa: F401 (registers tfkd's pruning schedules)
    from tfkd.optimize.wrappers import (
        cluster_wrapper_class,
        prune_wrapper_class,
        structured_prune_wrapper_class,
    )

    custom = {
        "PruneLowMagnitude": prune_wrapper_class(),
        "ClusterWeights": cluster_wrapper_class(),
        "tfkd>StructuredPruneLowMagnitude": structured_prune_wrapper_class(),
    }
    with contextlib.ExitStack() as stack:
        stack.enter_context(tfmot.sparsity.keras.prune_scope())
        stack.enter_context(tfmot.clustering.keras.cluster_scope())
        stack.enter_context(tfmot.quantization.keras.quantize_scope())
        stack.enter_context(keras.utils.custom_object_scope(custom))
        stack.enter_context(_quantize_layer_built_once())
        yield


@contextlib.contextmanager
def _quantize_layer_built_once():
    """Works around TF-MOT's `QuantizeLayer.build` not marking the layer built.

    Loading a `.keras` file builds each layer from its config, then calls it; `QuantizeLayer` was
    built a second time (5 variables instead of 3) and the weights failed to load.
    """
    from tensorflow_model_optimization.python.core.quantization.keras.quantize_layer import (
        QuantizeLayer,
    )

    had_own = "build_from_config" in vars(QuantizeLayer)
    original = QuantizeLayer.build_from_config

    def build_from_config(self, config):
        original(self, config)
        if config.get("input_shape") is not None:
            self.built = True

    QuantizeLayer.build_from_config = build_from_config
    try:
        yield
    finally:
        if had_own:
            QuantizeLayer.build_from_config = original
        else:
            del QuantizeLayer.build_from_config
