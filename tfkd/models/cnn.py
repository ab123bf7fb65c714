"""Small reference teachers and students: a CNN teacher for the bundled digits, a student with at
most 1/20 of its parameters, and the keras.io example's pair for benchmarks. All output logits."""

from typing import Any

from tfkd._keras import keras
from tfkd._validation import check_int


def build_teacher(
    input_shape: Any = (8, 8, 1),
    num_classes: int = 10,
    name: str | None = "teacher",
) -> keras.Model:
    """A CNN teacher (about 165k parameters on 8x8 inputs) that reaches ~99% on the digits.

    Args:
        input_shape: Shape of one image. Defaults to `(8, 8, 1)`.
        num_classes: Number of classes (logits out). Defaults to `10`.
        name: Model name. Defaults to `"teacher"`.
    """
    check_int("num_classes", num_classes, minimum=2)
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1"),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2"),
            keras.layers.MaxPooling2D(name="pool1"),
            keras.layers.Conv2D(128, 3, padding="same", activation="relu", name="conv3"),
            keras.layers.MaxPooling2D(name="pool2"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(128, activation="relu", name="embedding"),
            keras.layers.Dropout(0.3, name="dropout"),
            keras.layers.Dense(num_classes, name="logits"),
        ],
        name=name,
    )


def build_student(
    input_shape: Any = (8, 8, 1),
    num_classes: int = 10,
    hidden_units: int = 64,
    name: str | None = "student",
) -> keras.Model:
    """A one-hidden-layer MLP student: 4,810 parameters on the digits (1/34 of the teacher).

    Args:
        input_shape: Shape of one image. Defaults to `(8, 8, 1)`.
        num_classes: Number of classes (logits out). Defaults to `10`.
        hidden_units: Width of the hidden layer. Defaults to `64`.
        name: Model name. Defaults to `"student"`.
    """
    check_int("num_classes", num_classes, minimum=2)
    check_int("hidden_units", hidden_units, minimum=1)
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(hidden_units, activation="relu", name="hidden"),
            keras.layers.Dense(num_classes, name="logits"),
        ],
        name=name,
    )


def build_keras_io_teacher(
    input_shape: Any = (28, 28, 1),
    num_classes: int = 10,
    name: str | None = "teacher",
) -> keras.Model:
    """The keras.io Knowledge Distillation example's teacher: strided convolutions, 256 and 512.

    About 1.4 million parameters on 28x28x1 inputs. Its layers are named `conv1`,
    `leaky_relu`, `pool`, `conv2`, `flatten` and `logits` (for feature distillation).

    Args:
        input_shape: Shape of one image. Defaults to `(28, 28, 1)` (MNIST).
        num_classes: Number of classes (logits out). Defaults to `10`.
        name: Model name. Defaults to `"teacher"`.

    Returns:
        An untrained `tfkd.keras.Sequential` with logits out.
    """
    return _keras_io_pair(input_shape, num_classes, (256, 512), name)


def build_keras_io_student(
    input_shape: Any = (28, 28, 1),
    num_classes: int = 10,
    name: str | None = "student",
) -> keras.Model:
    """The keras.io example's student: the teacher's shape with 16 and 32 filters.

    About 20,000 parameters on 28x28x1 inputs (1/70 of the teacher); layers named as the
    teacher's.

    Args:
        input_shape: Shape of one image. Defaults to `(28, 28, 1)` (MNIST).
        num_classes: Number of classes (logits out). Defaults to `10`.
        name: Model name. Defaults to `"student"`.

    Returns:
        An untrained `tfkd.keras.Sequential` with logits out.
    """
    return _keras_io_pair(input_shape, num_classes, (16, 32), name)


def _keras_io_pair(input_shape, num_classes, filters, name):
    check_int("num_classes", num_classes, minimum=2)
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Conv2D(filters[0], 3, strides=2, padding="same", name="conv1"),
            keras.layers.LeakyReLU(0.2, name="leaky_relu"),
            keras.layers.MaxPooling2D(2, strides=1, padding="same", name="pool"),
            keras.layers.Conv2D(filters[1], 3, strides=2, padding="same", name="conv2"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(num_classes, name="logits"),
        ],
        name=name,
    )


def shrink(model, width, name=None):
    """A new, untrained model shaped like `model` with `width` times its filters and units.

    Every layer's `filters` and `units` are scaled (rounded, at least 1), except those of the
    last layer that has them, which produces the outputs (e.g. the logits), so the student keeps
    the teacher's number of classes. Weights are freshly initialized.

    Args:
        model: A Sequential or Functional `tfkd.keras.Model` (e.g. the teacher).
        width: Scale of the filters and units, in (0, 1]. `0.25` keeps about 1/16 of the
            parameters of a convolutional network.
        name: The new model's name. Defaults to `None` (`"<name>_x<width>"`).

    Returns:
        The new `tfkd.keras.Model`.

    Raises:
        ValueError: If `width` is outside (0, 1] or the model is subclassed.

    Example:
    >>> student = tfkd.models.shrink(teacher, 0.25)
    """
    from tfkd._validation import check_number
    from tfkd.keras3 import check_model

    model = check_model("model", model)
    width = check_number("width", width)
    if not 0.0 < width <= 1.0:
        raise ValueError(f"`width` must be in (0, 1]. Received: width={width!r}. E.g. `0.25`.")
    if not (isinstance(model, keras.Sequential) or getattr(model, "_is_graph_network", False)):
        raise ValueError(
            "`shrink` needs a Sequential or Functional model. Received: "
            f"model={type(model).__name__}(name={model.name!r}). Rebuild it with the Functional "
            "API."
        )
    config = model.get_config()
    layers = [c for c in config["layers"] if {"filters", "units"} & set(c["config"])]
    for layer in layers[:-1]:
        for key in ("filters", "units"):
            if key in layer["config"]:
                layer["config"][key] = max(1, int(round(layer["config"][key] * width)))
    config["name"] = name or f"{model.name}_x{width:g}"
    return model.__class__.from_config(config)
