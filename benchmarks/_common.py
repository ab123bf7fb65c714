"""What the benchmark scripts share: an epoch timer and the keras.io pair built in Keras 3.

The scripts run as `python benchmarks/<name>.py`, so this folder is first on `sys.path` and they
import it as `_common`. It imports no Keras itself: the caller passes the Keras it uses (tf_keras
in tfkd's process, Keras 3 in the worker processes that time Keras 3).
"""

import time


def epoch_timer(callback_base):
    """A callback recording each epoch's wall seconds (`times`) and process CPU seconds
    (`cpu_times`, all threads).

    Args:
        callback_base: The `Callback` class of the Keras that fits (`tfkd.keras.callbacks.Callback`
            or Keras 3's).

    Returns:
        An instance of a `callback_base` subclass.
    """

    class EpochTimer(callback_base):
        def __init__(self):
            super().__init__()
            self.times, self.cpu_times = [], []

        def on_epoch_begin(self, epoch, logs=None):
            self._start, self._cpu_start = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self._start)
            self.cpu_times.append(time.process_time() - self._cpu_start)

    return EpochTimer()


def build_keras3_keras_io_model(keras3, filters, name=None):
    """The keras.io Knowledge Distillation example's model in Keras 3 layers, the same as
    `tfkd.models.build_keras_io_teacher/student` (filters `(256, 512)` and `(16, 32)`).

    Args:
        keras3: The Keras 3 module.
        filters: Filters of the two strided convolutions.
        name: The model's name. Defaults to `None` (Keras names it).

    Returns:
        A Keras 3 `Sequential` taking `(28, 28, 1)` images and returning 10 logits.
    """
    return keras3.Sequential(
        [
            keras3.Input((28, 28, 1)),
            keras3.layers.Conv2D(filters[0], 3, strides=2, padding="same"),
            keras3.layers.LeakyReLU(0.2),
            keras3.layers.MaxPooling2D(2, strides=1, padding="same"),
            keras3.layers.Conv2D(filters[1], 3, strides=2, padding="same"),
            keras3.layers.Flatten(),
            keras3.layers.Dense(10),
        ],
        name=name,
    )
