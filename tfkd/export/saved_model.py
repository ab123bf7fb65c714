"""`to_saved_model`: a Keras model to a TensorFlow SavedModel folder, written atomically."""

import os
from typing import Any

from tfkd.export._atomic import atomic_dir
from tfkd.export._prepare import prepare_model


def to_saved_model(model: Any, path: str | os.PathLike[str]) -> str:
    """Saves a Keras model as a TensorFlow SavedModel folder (for TF Serving, TF.js, converters).

    Pruning wrappers are stripped first. The folder is written beside `path` and moved into place
    only when complete, so a failed save leaves no folder behind (and an existing one untouched).
    It loads back with `tfkd.keras.models.load_model(path)` or `tf.saved_model.load(path)` (the
    `serving_default` signature).

    Args:
        model: A `tfkd.keras.Model` with known inputs.
        path: The folder to write.

    Returns:
        The path written, as a string.

    Raises:
        TypeError: If `model` is not a tf_keras model.

    Example:
    >>> tfkd.export.to_saved_model(student, "student_savedmodel")
    """
    model, _ = prepare_model(model)
    path = os.fspath(path)
    with atomic_dir(path) as tmp:
        model.save(tmp, save_format="tf", include_optimizer=False)
    return path
