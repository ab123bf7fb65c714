"""Shared tiny models and seeded data. Models are built fresh per test (they are cheap); data and
the one trained teacher are shared per session."""

import numpy as np
import pytest

import tfkd
from tfkd import keras


@pytest.fixture(scope="session")
def digits():
    """The bundled digits split: `(x_train, y_train), (x_test, y_test)`."""
    return tfkd.data.load_digits()


@pytest.fixture(scope="session")
def tiny_data():
    """64 seeded random 8x8x1 images with labels in 0..9."""
    rng = np.random.default_rng(0)
    x = rng.random((64, 8, 8, 1), dtype=np.float32)
    y = rng.integers(0, 10, size=64)
    return x, y


def build_tiny_teacher(num_classes=10, name="tiny_teacher"):
    """A functional CNN with named layers to tap: t_conv, t_embed, t_logits."""
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="t_conv")(inputs)
    x = keras.layers.Flatten(name="t_flatten")(x)
    x = keras.layers.Dense(16, activation="relu", name="t_embed")(x)
    outputs = keras.layers.Dense(num_classes, name="t_logits")(x)
    return keras.Model(inputs, outputs, name=name)


def build_tiny_student(num_classes=10, name="tiny_student"):
    """A smaller functional CNN: s_conv, s_embed, s_logits."""
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="s_conv")(inputs)
    x = keras.layers.Flatten(name="s_flatten")(x)
    x = keras.layers.Dense(8, activation="relu", name="s_embed")(x)
    outputs = keras.layers.Dense(num_classes, name="s_logits")(x)
    return keras.Model(inputs, outputs, name=name)


def build_compressible_net(name="net"):
    """Conv, Dense and logits layers named conv, hidden, logits: what prune/cluster/QAT wrap."""
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.Dense(16, activation="relu", name="hidden")(keras.layers.Flatten()(x))
    return keras.Model(inputs, keras.layers.Dense(10, name="logits")(x), name=name)


@pytest.fixture
def make_teacher():
    keras.utils.set_random_seed(1)
    return build_tiny_teacher


@pytest.fixture
def make_student():
    keras.utils.set_random_seed(2)
    return build_tiny_student


@pytest.fixture(scope="session")
def trained_teacher(digits):
    """The reference teacher trained briefly on the digits (~97%). Do not train it further."""
    (x_train, y_train), _ = digits
    keras.utils.set_random_seed(0)
    teacher = tfkd.models.build_teacher()
    teacher.compile(
        optimizer=keras.optimizers.Adam(2e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    teacher.fit(x_train, y_train, epochs=12, batch_size=32, verbose=0)
    return teacher
