"""Model files saved by Keras 3: recognised by the Keras version they record, loaded with Keras 3,
converted with `from_keras3`.

A `.keras` file records the Keras version that wrote it in `metadata.json`, an `.h5` file in its
`keras_version` attribute. tf_keras cannot read Keras 3's configs (`batch_shape`,
`keras.src.models.functional`), so `tfkd.load_model` hands those files to Keras 3 and converts
the model it gets.
"""

import json
import os
import warnings
import zipfile

from tfkd._keras import import_keras3
from tfkd.keras3.models import from_keras3

__all__ = ["saved_keras_version", "is_keras3_file", "load_keras3_file"]

_MAX_CAUSE = 400  # characters of Keras 3's own message quoted (its messages can hold a config)


def saved_keras_version(path):
    """The Keras version a `.keras` or `.h5` file records.

    Args:
        path: A file or folder path.

    Returns:
        The version string (e.g. `"3.15.1"`), or `None` for a folder (SavedModel) or a file that
        records none.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        return None
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                metadata = json.loads(archive.read("metadata.json"))
        except (KeyError, ValueError):
            return None
        return metadata.get("keras_version") if isinstance(metadata, dict) else None
    import h5py

    if not h5py.is_hdf5(path):
        return None
    with h5py.File(path, "r") as file:
        version = file.attrs.get("keras_version")
    return version.decode() if isinstance(version, bytes) else version


def is_keras3_file(path):
    """Whether `path` is a `.keras` or `.h5` file written by Keras 3."""
    version = saved_keras_version(path)
    return isinstance(version, str) and version.split(".")[0] == "3"


def load_keras3_file(path):
    """Loads a model file Keras 3 saved and converts it to tf_keras, saying so in one warning.

    Args:
        path: A `.keras` or `.h5` file written by Keras 3 (see `is_keras3_file`).

    Returns:
        A `tfkd.keras.Model` with the same layers and weights (uncompiled: compile it with
        `tfkd.keras` objects).

    Raises:
        ValueError: If Keras 3 cannot load the file, or a layer in it has no tf_keras
            equivalent (the message names the layer).
        TypeError: If the file holds a subclassed Keras 3 model.
    """
    path = os.fspath(path)
    keras3 = import_keras3()
    try:
        model = keras3.models.load_model(path, compile=False)
    except Exception as error:  # Keras 3 raises many kinds; its message is what matters
        raise ValueError(
            f"{path!r} was saved by Keras 3, and Keras 3 could not load it: "
            f"{_brief(error)} Received: path={path!r}. If the model uses custom layers, load "
            "it yourself with `keras.models.load_model(path, custom_objects=...)` and convert it "
            "with `tfkd.from_keras3(model)`."
        ) from error
    try:
        converted = from_keras3(model)
    except (TypeError, ValueError) as error:
        raise type(error)(
            f"{path!r} was saved by Keras 3 and loaded with Keras 3, but tfkd cannot convert it "
            f"to a tf_keras model: {error}"
        ) from error
    warnings.warn(
        f"{path!r} was saved by Keras 3 (keras_version {saved_keras_version(path)}). tfkd "
        "loaded it with Keras 3 and converted it with `tfkd.from_keras3` to a tf_keras model (the "
        "Keras TF-MOT needs) with the same layers and weights, uncompiled. Save the converted "
        "model (`model.save(path)`) to load it directly next time.",
        UserWarning,
        stacklevel=3,
    )
    return converted


def _brief(error):
    text = " ".join(str(error).split())
    if len(text) > _MAX_CAUSE:
        text = text[:_MAX_CAUSE] + " [...]"
    return f"{type(error).__name__}: {text}"
