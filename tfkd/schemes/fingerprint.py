"""Fingerprints of a data set: a hash of its inputs in sample order, so a cache of teacher outputs
recognizes the data it was built from (same values, same order) and refuses any other."""

import hashlib

import numpy as np

from tfkd._keras import tf


def count_samples(values):
    """The number of rows (samples) of `values`, an array or nested arrays."""
    first = tf.nest.flatten(values)[0]
    try:
        return int(first.shape[0])
    except (AttributeError, TypeError, IndexError) as error:
        raise TypeError(
            "Expected arrays with one row per sample. "
            f"Received: a value of type {type(first).__name__}."
        ) from error


def update_hashers(hashers, batch):
    """One hash per input component, fed the component's bytes in sample order."""
    parts = [np.ascontiguousarray(np.asarray(p)) for p in tf.nest.flatten(batch)]
    if hashers is None:
        hashers = []
        for part in parts:
            hasher = hashlib.blake2b(digest_size=16)
            hasher.update(f"{part.dtype.str}{part.shape[1:]}".encode())
            hashers.append(hasher)
    for hasher, part in zip(hashers, parts, strict=True):
        hasher.update(part.tobytes())
    return hashers


def digest(hashers):
    """The hex digest of `update_hashers`' hashers, one per input component."""
    return "".join(h.hexdigest() for h in hashers or [])


def fingerprint_arrays(x):
    """The fingerprint of arrays `x` (or nested arrays), in sample order."""
    return digest(update_hashers(None, x))


def fingerprint_dataset(inputs, batch_size=1024):
    """`(count, fingerprint)` of an unbatched dataset of inputs, in order."""
    hashers, count = None, 0
    for batch in inputs.batch(batch_size):
        hashers = update_hashers(hashers, batch)
        count += int(tf.nest.flatten(batch)[0].shape[0])
    return count, digest(hashers)
