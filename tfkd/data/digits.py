"""scikit-learn's 8x8 handwritten digits, and stratified subsampling."""

from typing import Any

import numpy as np

from tfkd._validation import check_int, check_open_fraction


def load_digits(
    test_fraction: float = 0.5,
    seed: int = 0,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's handwritten digits as 8x8x1 images, split deterministically by class.

    1,797 images of the digits 0-9, scaled to float32 in [0, 1]. The split is stratified, so both
    halves hold every class in the same proportion, and the same `seed` always gives the same split.

    Args:
        test_fraction: Fraction of the images held out for testing, in (0, 1). Defaults to `0.5`.
        seed: Seed of the split. Defaults to `0`.

    Returns:
        `(x_train, y_train), (x_test, y_test)`: images of shape `(n, 8, 8, 1)` (float32) and
        integer labels of shape `(n,)` (int64).
    """
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    check_open_fraction("test_fraction", test_fraction)
    check_int("seed", seed)
    digits = sklearn_digits()
    x = (digits.images / 16.0).astype("float32")[..., np.newaxis]
    y = digits.target.astype("int64")
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, stratify=y, random_state=seed
    )
    return (x_train, y_train), (x_test, y_test)


def subsample_per_class(
    x: Any,
    y: Any,
    fraction: float,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A stratified subset holding `fraction` of the samples of every class (at least one each).

    Used to show distillation where it pays most: when labels are scarce.
    """
    check_open_fraction("fraction", fraction)
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for label in np.unique(y):
        indices = np.flatnonzero(y == label)
        count = max(1, int(round(fraction * len(indices))))
        keep.extend(rng.choice(indices, size=count, replace=False))
    kept = np.sort(np.array(keep))
    return x[kept], y[kept]
