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
from tfkd.keras3.objects import convert_compile_arguments, convert_metrics

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


def load_keras3_file(path, compile=True):  # noqa: A002 (mirrors keras.models.load_model)
    """Loads a model file Keras 3 saved and converts it to tf_keras, saying so in one warning.

    With `compile=True`, a `.keras` file's compile settings (optimizer, loss, metrics) are
    converted to their tf_keras equivalents (see `tfkd.keras3.objects`) and the model compiled
    with them; the optimizer's state (step count, moments) starts afresh. Settings that do not
    convert leave the model uncompiled, and the warning says why.

    Args:
        path: A `.keras` or `.h5` file written by Keras 3 (see `is_keras3_file`).
        compile: Whether to compile the model as it was saved. Defaults to `True`.

    Returns:
        A `tfkd.keras.Model` with the same layers and weights.

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
    compiled = _compile_as_saved(converted, path, keras3) if compile else "uncompiled"
    warnings.warn(
        f"{path!r} was saved by Keras 3 (keras_version {saved_keras_version(path)}). tfkd "
        "loaded it with Keras 3 and converted it with `tfkd.from_keras3` to a tf_keras model (the "
        f"Keras TF-MOT needs) with the same layers and weights, {compiled}. Save the converted "
        "model (`model.save(path)`) to load it directly next time.",
        UserWarning,
        stacklevel=3,
    )
    return converted


def _saved_compile_config(path):
    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (KeyError, ValueError):
        return None
    return config.get("compile_config") if isinstance(config, dict) else None


def _compile_as_saved(converted, path, keras3):
    """Compiles `converted` as the file's model was; returns how (for the warning)."""
    if not zipfile.is_zipfile(path):
        return "uncompiled (tfkd reads the compile settings of `.keras` files only)"
    config = _saved_compile_config(path)
    if not config:
        return "uncompiled (the file holds no compile settings)"

    def revive(value):
        if isinstance(value, dict) and "class_name" in value:
            return keras3.saving.deserialize_keras_object(value)
        if isinstance(value, dict):
            return {key: revive(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [revive(item) for item in value]
        return value

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # one warning in all: the caller's
            optimizer, loss, metrics = convert_compile_arguments(
                revive(config.get("optimizer")) or "rmsprop",
                revive(config.get("loss")),
                revive(config.get("metrics")),
            )
            weighted = convert_metrics(revive(config.get("weighted_metrics")), "weighted_metrics")
        converted.compile(
            optimizer=optimizer,
            loss=loss,
            metrics=metrics,
            loss_weights=config.get("loss_weights"),
            weighted_metrics=weighted,
        )
    except Exception as error:  # Keras 3 and tf_keras raise many kinds; the reason is what matters
        return (
            f"uncompiled (its compile settings do not convert: {_brief(error)} Compile it with "
            "`tfkd.keras` objects)"
        )
    return "compiled with the tf_keras equivalents of its optimizer, loss and metrics"


def _brief(error):
    text = " ".join(str(error).split())
    if len(text) > _MAX_CAUSE:
        text = text[:_MAX_CAUSE] + " [...]"
    return f"{type(error).__name__}: {text}"
