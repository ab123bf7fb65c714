"""The one place that chooses Keras for tfkd: Keras 2 (`tf_keras`), which TF-MOT requires.

`TF_USE_LEGACY_KERAS=1` is set before TensorFlow is imported so that `tf.keras` inside TensorFlow's
own helpers (and TF-MOT's) resolves to `tf_keras` too. tfkd itself never goes through `tf.keras`: it
imports `tf_keras` directly, so the choice holds even when the user imported TensorFlow and touched
`tf.keras` (Keras 3) before `import tfkd`.
"""

import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["keras", "tf", "is_keras3_model", "is_keras_model", "import_keras3"]


def is_keras3_model(obj):
    """Whether `obj` is a Keras 3 model (`keras.Model`), found without importing Keras 3.

    A Keras 3 object exists only once Keras 3 was imported, so looking in `sys.modules` suffices.
    """
    keras3 = sys.modules.get("keras")
    return (
        keras3 is not None
        and str(getattr(keras3, "__version__", "")).startswith("3.")
        and isinstance(obj, keras3.Model)
    )


def is_keras_model(obj):
    """Whether `obj` is a tf_keras model, the kind tfkd trains."""
    return isinstance(obj, keras.Model)


def import_keras3():
    """Keras 3 (`import keras`), imported on demand: only to read what users made with it.

    tfkd trains tf_keras models; Keras 3 is needed only to load a file Keras 3 saved (which
    `tfkd.load_model` then converts) and to read Keras 3 objects passed to tfkd.

    Returns:
        The `keras` module (Keras 3).

    Raises:
        ImportError: If Keras 3 is not installed (`pip install keras`).
    """
    try:
        import keras as keras3
    except ImportError as error:
        raise ImportError(
            "Reading a Keras 3 file or object needs Keras 3, which is not installed. "
            "Install it with `pip install keras` (it comes with TensorFlow)."
        ) from error
    return keras3
