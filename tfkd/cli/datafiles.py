"""Data files for the command line: `.npz` arrays, or a folder of images per class.

Every command reads a folder the same way: `compress` trains on its training part, `eval` measures
on its test part (a `test/` folder, or the same held-out 20% of each class).
"""

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from tfkd.pipeline import check_xy

Shape = Sequence[int | None]  # one input's shape, batch excluded
XY = tuple[np.ndarray, np.ndarray]

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def load_data(path: str | os.PathLike[str], input_shape: Shape | None = None,
              test_fraction: float = 0.2, seed: int = 0) -> tuple[XY, XY]:
    """Reads `((x_train, y_train), (x_test, y_test))` from an `.npz` file or a folder of images.

    An `.npz` holds the arrays `x_train`, `y_train`, `x_test` and `y_test`. A folder holds one
    sub-folder of images per class (named by the class; sorted names give the label ids), or
    `train/` and `test/` folders laid out that way; without them, a stratified `test_fraction` of
    each class is held out. Images are resized to `input_shape` (height, width, channels; 1 channel
    reads grayscale) and scaled to [0, 1].

    Args:
        path: An `.npz` file or a folder.
        input_shape: Shape of one input, needed for a folder of images. Defaults to `None`.
        test_fraction: Held-out fraction for a folder without `train/`/`test/`. Defaults to `0.2`.
        seed: Seed of that split. Defaults to `0`.

    Returns:
        `(x_train, y_train), (x_test, y_test)`.

    Raises:
        FileNotFoundError: If `path` does not exist.
        ValueError: If keys are missing, or the file or folder holds no usable data.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No data at this path. Received: path={path!r}.")
    if os.path.isdir(path):
        return _load_image_folder(path, input_shape, test_fraction, seed)
    arrays = _read_npz(path)
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
    if missing:
        raise ValueError(
            f"{path} lacks the arrays {missing}. Received: arrays {sorted(arrays)}. Save the data "
            "with `np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)`."
        )
    train = check_xy("x_train/y_train", (arrays["x_train"], arrays["y_train"]))
    test = check_xy("x_test/y_test", (arrays["x_test"], arrays["y_test"]))
    return train, test


def load_inputs(path: str | os.PathLike[str], input_shape: Shape | None = None) -> np.ndarray:
    """Reads inputs from an `.npz` (its `x_train`, or `x` when that is its only array: e.g. a
    representative set for int8 calibration), or the training images of a folder."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No data at this path. Received: path={path!r}.")
    if os.path.isdir(path):
        return load_data(path, input_shape)[0][0]
    arrays = _read_npz(path)
    if "x_train" in arrays:
        return np.asarray(arrays["x_train"], dtype="float32")
    if list(arrays) == ["x"]:
        return np.asarray(arrays["x"], dtype="float32")
    raise ValueError(
        f"{path} must hold `x_train`, or `x` as its only array. Received: arrays {sorted(arrays)}."
    )


def check_input_shape(model_input_shape: Shape, x: Any, source: str = "the model") -> None:
    """Raises a `ValueError` if samples `x` do not fit an input shape (batch dimension excluded)."""
    expected = tuple(model_input_shape)
    got = tuple(np.asarray(x).shape[1:])
    fits = len(expected) == len(got) and all(e in (None, -1) or e == g
                                             for e, g in zip(expected, got, strict=False))
    if not fits:
        raise ValueError(
            f"The data do not fit {source}: it takes inputs of shape {expected}. Received: "
            f"samples of shape {got}. Reshape or resize the data to {expected}."
        )


def _read_npz(path: str) -> dict[str, np.ndarray]:
    if not path.endswith(".npz"):
        raise ValueError(
            "Data must be an `.npz` file (or a folder of images per class). "
            f"Received: path={path!r}."
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not a readable `.npz` file ({error}).") from None


def _load_image_folder(path: str, input_shape: Shape | None, test_fraction: float,
                       seed: int) -> tuple[XY, XY]:
    if input_shape is None or len(input_shape) != 3:
        raise ValueError(
            "Reading a folder of images needs the model's input shape (height, width, channels). "
            f"Received: input_shape={input_shape!r}."
        )
    if all(os.path.isdir(os.path.join(path, d)) for d in ("train", "test")):
        classes = _class_names(os.path.join(path, "train"))
        return (_read_images(os.path.join(path, "train"), classes, input_shape),
                _read_images(os.path.join(path, "test"), classes, input_shape))
    from sklearn.model_selection import train_test_split

    x, y = _read_images(path, _class_names(path), input_shape)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, stratify=y, random_state=seed)
    return (x_train, y_train), (x_test, y_test)


def _class_names(path: str) -> list[str]:
    names = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))
    if len(names) < 2:
        raise ValueError(
            f"A folder of images needs one sub-folder per class (at least 2). Received: {path} "
            f"with sub-folders {names}."
        )
    return names


def _read_images(path: str, classes: list[str], input_shape: Shape) -> XY:
    from PIL import Image

    height, width, channels = (int(d or 0) for d in input_shape)
    mode = "L" if channels == 1 else "RGB"
    xs, ys = [], []
    for label, name in enumerate(classes):
        folder = os.path.join(path, name)
        for file in sorted(os.listdir(folder)):
            if not file.lower().endswith(_IMAGE_SUFFIXES):
                continue
            with Image.open(os.path.join(folder, file)) as image:
                pixels = np.asarray(image.convert(mode).resize((width, height)), dtype="float32")
                xs.append(pixels.reshape((height, width, channels)) / 255.0)
            ys.append(label)
    if not xs:
        raise ValueError(f"No images ({', '.join(_IMAGE_SUFFIXES)}) under {path}.")
    return np.stack(xs), np.asarray(ys, dtype="int64")


def load_test_data(path: str | os.PathLike[str], input_shape: Shape | None = None) -> XY:
    """Reads `(x_test, y_test)` from an `.npz` (or `(x, y)` when it holds those instead), or the
    test part of a folder of images (what `load_data` holds out)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No data at this path. Received: path={path!r}.")
    if os.path.isdir(path):
        return load_data(path, input_shape)[1]
    arrays = _read_npz(path)
    for keys in (("x_test", "y_test"), ("x", "y")):
        if all(k in arrays for k in keys):
            return check_xy(f"{keys[0]}/{keys[1]}", (arrays[keys[0]], arrays[keys[1]]))
    raise ValueError(
        f"{path} must hold `x_test` and `y_test` (or `x` and `y`). Received: arrays "
        f"{sorted(arrays)}."
    )
