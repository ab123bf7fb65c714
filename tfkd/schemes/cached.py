"""Cached teacher: run the teacher once, then distil from its stored outputs every epoch.

Offline distillation pays for the teacher's forward pass on every step of every epoch. When the
training data are fixed (no random augmentation), the teacher's outputs are the same each epoch, so
`cache_teacher_outputs` computes them once and `Distiller(teacher=cached)` trains from the stored
values: an epoch then costs about what the student's plain `fit` costs.
"""

import os
import tempfile
import weakref
from typing import Any

import numpy as np

from tfkd._keras import keras, tf
from tfkd._validation import check_int
from tfkd.keras3 import check_model
from tfkd.schemes.fingerprint import (
    count_samples,
    digest,
    fingerprint_arrays,
    fingerprint_dataset,
    update_hashers,
)

_FORMAT = 1

# A batch's `x` with a cached teacher: `{INPUTS: x, TEACHER_OUTPUTS: outputs}`. Keras's own
# `(x, y, sample_weight)` convention is untouched, so the outputs can never be read as weights.
INPUTS = "x"
TEACHER_OUTPUTS = "teacher_outputs"


def with_teacher_outputs(x, outputs):
    """The named structure carrying the teacher's outputs beside the inputs `x`."""
    return {INPUTS: x, TEACHER_OUTPUTS: outputs}


def split_teacher_outputs(x):
    """`(inputs, teacher outputs)` of a batch's `x`, or `(x, None)` when it carries none."""
    if isinstance(x, dict) and set(x) == {INPUTS, TEACHER_OUTPUTS}:
        return x[INPUTS], x[TEACHER_OUTPUTS]
    return x, None


def carries_teacher_outputs(x):
    """Whether `fit`/`evaluate`'s `x` (arrays, a dict or a `tf.data.Dataset`) holds the outputs."""
    return _outputs_spec(x) is not None


def _outputs_spec(x):
    """The teacher outputs' spec (or arrays) that `x` carries, else `None`."""
    if isinstance(x, tf.data.Dataset):
        spec = x.element_spec
        x = spec[0] if isinstance(spec, tuple) else spec
    return split_teacher_outputs(x)[1]


class CachedTeacher:
    """A teacher's outputs on a fixed data set, stored once, read back in step with the data.

    Made by `tfkd.cache_teacher_outputs`. Pass it as `Distiller(teacher=cached)` and train on
    `cached.dataset(x, y)` (or `cached.attach(dataset)`): an unbatched `tf.data.Dataset` of
    `({"x": x, "teacher_outputs": outputs}, y)` (plus `sample_weight` as a third element when
    given, Keras's own convention). Shuffle and batch it as usual: the teacher's outputs travel
    with their samples, so they stay aligned.

    A cache only fits the data it was built from: `dataset` and `attach` check the number of
    samples and a fingerprint (a hash of `x`, in order) and raise on any mismatch, never
    misaligning silently. Caching is for data without random augmentation: an augmented sample
    is not the sample the teacher saw, so distil from a live teacher then.

    With `top_k`, only the `k` largest logits and their indices are stored per sample, plus one
    value for the other `C - k` logits (the flat tail): `2k + 1` numbers instead of `C`, about
    `C / (2k)` times less memory. The tail value is `logsumexp(other logits) - log(C - k)`, so
    at temperature 1 the softmax of the rebuilt logits gives every top-k class its exact
    probability and the tail its exact total mass, spread evenly; at higher temperatures the
    tail is an approximation (slightly more tail mass than the teacher's). The dataset's
    `teacher_outputs` is then a dict (`top_k_values`, `top_k_indices`, `tail`), rebuilt into
    logits inside the training step.

    Data without the teacher's outputs (`evaluate(x_test, y_test)`, `validation_data=(x, y, w)`)
    is run through `teacher`, the live model the cache was built from, so `loss` and
    `distillation_loss` mean what they mean in training. A cache loaded from a file knows no live
    teacher unless given one (`CachedTeacher.load(path, teacher=teacher)`); the Distiller then
    refuses such data rather than report a different loss.

    Attributes:
        num_samples: Number of samples cached.
        num_classes: Size of the teacher's last output dimension.
        top_k: `k`, or `None` when every logit is stored.
        fingerprint: Hex digest identifying the cached `x`.
        nbytes: Bytes held by the stored outputs.
        name: Name, for messages. Defaults to `"cached_<teacher name>"`.
        teacher: The live teacher model the outputs came from, or `None` (kept in memory only).
    """

    trainable = False

    def __init__(
        self,
        outputs: Any,
        fingerprint: Any,
        top_k: int | None = None,
        name: str | None = "cached_teacher",
        teacher: Any = None,
    ) -> None:
        self._outputs = outputs
        self.teacher = None if teacher is None else check_model("teacher", teacher)
        self.fingerprint = str(fingerprint)
        self.top_k = top_k
        self.name = name
        if top_k is None:
            self.num_samples, self.num_classes = outputs.shape[0], outputs.shape[-1]
        else:
            self.num_samples = outputs["top_k_values"].shape[0]
            self.num_classes = int(outputs["num_classes"])

    # ------------------------------------------------------------------------------ the outputs

    @property
    def output_shape(self) -> Any:
        """`(None, num_classes)`, like a model's, so the Distiller can check the student's."""
        if self.top_k is None:
            return (None,) + tuple(self._outputs.shape[1:])
        return (None, self.num_classes)

    @property
    def nbytes(self) -> int:
        if self.top_k is None:
            return int(self._outputs.nbytes)
        return int(sum(v.nbytes for k, v in self._stored().items()))

    def _stored(self):
        """What travels with each sample: the logits, or the top-k values, indices and tail."""
        if self.top_k is None:
            return self._outputs
        return {k: self._outputs[k] for k in ("top_k_values", "top_k_indices", "tail")}

    def decode(self, stored: Any) -> Any:
        """Rebuilds a batch of full logits from what `dataset` yields (a tensor op, jit-safe)."""
        if self.top_k is None:
            return tf.convert_to_tensor(stored)
        values = tf.convert_to_tensor(stored["top_k_values"])
        tail = tf.cast(stored["tail"], values.dtype)[:, None]
        one_hot = tf.one_hot(stored["top_k_indices"], self.num_classes, dtype=values.dtype)
        return tail + tf.reduce_sum(one_hot * (values - tail)[..., None], axis=1)

    def logits(self) -> Any:
        """All cached outputs as a NumPy array `[num_samples, ...]` (rebuilt if `top_k` is set)."""
        if self.top_k is None:
            return self._outputs
        return self.decode(self._stored()).numpy()

    # ---------------------------------------------------------------------------- the data

    def dataset(self, x: Any, y: Any, sample_weight: Any = None) -> Any:
        """An unbatched dataset of `({"x": x, "teacher_outputs": outputs}, y[, sample_weight])`.

        Args:
            x: The inputs the cache was built from, in the same order (array or nested arrays).
            y: Their labels.
            sample_weight: Optional per-sample weights. Defaults to `None`.

        Returns:
            A `tf.data.Dataset` to shuffle and batch, e.g. `.shuffle(len(x)).batch(32)`.

        Raises:
            ValueError: If `x` is not the data the cache was built from, or `y` has another length.
        """
        count = count_samples(x)
        self._check_data(count, fingerprint_arrays(x))
        for arg, value in (("y", y), ("sample_weight", sample_weight)):
            if value is not None and count_samples(value) != count:
                raise ValueError(
                    f"`{arg}` must have one entry per sample of `x` ({count}). "
                    f"Received: {arg} with {count_samples(value)} entries."
                )
        elements: tuple[Any, ...] = (with_teacher_outputs(x, self._stored()), y)
        if sample_weight is not None:
            elements += (sample_weight,)
        return tf.data.Dataset.from_tensor_slices(elements)

    def attach(self, dataset: Any, verify: bool = True) -> Any:
        """Adds the teacher's outputs to an unbatched dataset of `(x, y)` or `(x, y, weight)`.

        Args:
            dataset: The unbatched `tf.data.Dataset` the cache was built from, in the same order
                (attach first, then shuffle and batch).
            verify: Whether to iterate `dataset` once to check its fingerprint. Defaults to `True`.

        Returns:
            An unbatched `tf.data.Dataset` of `({"x": x, "teacher_outputs": outputs}, y[,
            sample_weight])`.

        Raises:
            TypeError: If `dataset` is not a `tf.data.Dataset` of `(x, y)` tuples.
            ValueError: If it is not the data the cache was built from (count or fingerprint).
        """
        if not isinstance(dataset, tf.data.Dataset):
            raise TypeError(
                "`dataset` must be an unbatched `tf.data.Dataset` of `(x, y)` pairs. "
                f"Received: dataset of type {type(dataset).__name__}. For arrays use "
                "`cached.dataset(x, y)`."
            )
        spec = dataset.element_spec
        if not isinstance(spec, tuple) or len(spec) not in (2, 3):
            raise TypeError(
                "`dataset` must yield `(x, y)` or `(x, y, sample_weight)` tuples. "
                f"Received: element_spec={spec!r}. Map it to `(x, y)` pairs first."
            )
        cardinality = int(dataset.cardinality())
        if cardinality == int(tf.data.INFINITE_CARDINALITY):
            raise ValueError(
                "`dataset` must be finite: attach the teacher's outputs before `.repeat()`. "
                "Received: an infinite dataset."
            )
        if verify:
            count, fingerprint = fingerprint_dataset(dataset.map(lambda *e: e[0]))
            self._check_data(count, fingerprint, dataset=True)
        elif cardinality >= 0:
            self._check_data(cardinality, None, dataset=True)
        outputs = tf.data.Dataset.from_tensor_slices(self._stored())
        zipped = tf.data.Dataset.zip((dataset, outputs))
        return zipped.map(lambda e, t: (with_teacher_outputs(e[0], t),) + tuple(e[1:]))

    def check_training_data(self, x: Any) -> None:
        """Raises unless `fit`'s `x` carries these teacher outputs (batched, of the right shape).

        Args:
            x: What `fit` received: a batched `tf.data.Dataset` of `cached.dataset(x, y)`, or
                the dict `{"x": x, "teacher_outputs": outputs}` of arrays.

        Raises:
            ValueError: If `x` carries no teacher outputs, or outputs of another shape.
        """
        spec = _outputs_spec(x)
        if spec is None:
            element_spec = getattr(x, "element_spec", None)
            raise ValueError(
                "A Distiller with a cached teacher trains on data carrying the teacher's outputs: "
                "batches of `cached.dataset(x, y)`, `({'x': x, 'teacher_outputs': outputs}, y)`. "
                f"Received: x of type {type(x).__name__}"
                f"{f' with element_spec={element_spec!r}' if element_spec is not None else ''}. "
                "Pass `cached.dataset(x, y).shuffle(n).batch(32)` (or `cached.attach(dataset)`)."
            )
        expected = tf.nest.map_structure(lambda a: tuple(a.shape[1:]), self._stored())
        try:
            received = tf.nest.map_structure(lambda s: tuple(s.shape[1:]), spec)
            tf.nest.assert_same_structure(expected, received)
            matches = received == expected
        except (TypeError, ValueError, AttributeError):
            matches = False
        if not matches:
            raise ValueError(
                "The batches must carry this cache's teacher outputs, of shape "
                f"{expected} per sample. Received: teacher_outputs={spec!r}. Train on batches of "
                "`cached.dataset(x, y)` or `cached.attach(dataset)` of this cache."
            )

    def check_checkpoints(self, callbacks: Any) -> None:
        """Raises if one of `callbacks` would save the Distiller whole (`ModelCheckpoint` with
        `save_weights_only=False`): before training, not at the end of the first epoch."""
        for callback in callbacks or []:
            if isinstance(callback, keras.callbacks.ModelCheckpoint) and not (
                callback.save_weights_only
            ):
                raise self.saving_error("a `ModelCheckpoint(save_weights_only=False)` callback")

    def saving_error(self, received: str) -> ValueError:
        """The error for saving whole a Distiller that distils from this cache."""
        return ValueError(
            "A Distiller distilling from a cached teacher cannot be saved whole: the cache is data "
            f"(`cached.save(path)`), not a model `tfkd.load_model` can rebuild. Received: "
            f"{received}. Save the weights (`ModelCheckpoint(..., save_weights_only=True)`, "
            "`distiller.save_weights(path)`) or the student (`distiller.student.save(path)`), and "
            "the cache with `cached.save(path)`."
        )

    def check_evaluation_data(self, x: Any, argument: str = "x") -> None:
        """Raises if `x` carries no teacher outputs and no live `teacher` can compute them.

        Raises:
            ValueError: If the loss on `x` cannot be the training objective (see the class).
        """
        if self.teacher is not None or carries_teacher_outputs(x):
            return
        raise ValueError(
            "This cached teacher has no live teacher model to compute outputs for data the cache "
            f"does not hold, so the Distiller's loss on `{argument}` would be another quantity "
            f"than in training. Received: {argument} without teacher outputs, and a cache loaded "
            "from a file. Load it with `tfkd.CachedTeacher.load(path, teacher=teacher)`, pass "
            "data carrying outputs (`cached.dataset(x, y)`), or evaluate the student alone "
            "(`distiller.student`)."
        )

    def _check_data(self, count, fingerprint, dataset=False):
        what = "`dataset`" if dataset else "`x`"
        if count != self.num_samples:
            hint = " (is it batched? attach to the unbatched dataset)" if dataset else ""
            raise ValueError(
                f"This cache holds the teacher's outputs for {self.num_samples} samples, but "
                f"{what} has {count}{hint}. Received: {count} samples. Pass the data the cache was "
                "built from, or build a cache for this data with `tfkd.cache_teacher_outputs`."
            )
        if fingerprint is not None and fingerprint != self.fingerprint:
            raise ValueError(
                f"{what} is not the data this cache was built from: same count ({count}) but other "
                "values or another order (fingerprint "
                f"{fingerprint[:12]} != {self.fingerprint[:12]})."
                " Pass the same inputs in the same order (shuffle the returned dataset, never the "
                "inputs), use no random augmentation, or rebuild the cache for this data."
            )

    # ------------------------------------------------------------------------------ save / load

    def save(self, path: str | os.PathLike[str]) -> Any:
        """Writes the cache to a `.npz` file (atomically), to reuse across runs with `load`."""
        path = os.fspath(path)
        arrays = {"outputs": self._outputs} if self.top_k is None else dict(self._outputs)
        meta = {
            "format": np.array(_FORMAT),
            "fingerprint": np.array(self.fingerprint),
            "top_k": np.array(-1 if self.top_k is None else self.top_k),
            "name": np.array(self.name),
        }
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".npz.tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                values = {**arrays, **{f"meta_{k}": v for k, v in meta.items()}}
                np.savez(f, **values)  # type: ignore[arg-type]  # numpy's stub: allow_pickle
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], teacher: Any = None) -> "CachedTeacher":
        """Reads a cache written by `save`.

        Args:
            path: The `.npz` file `save` wrote.
            teacher: The live teacher model, to compute outputs for data the cache does not
                hold (validation and test data). Defaults to `None`.

        Returns:
            A `CachedTeacher`.
        """
        with np.load(os.fspath(path), allow_pickle=False) as data:
            if "meta_format" not in data:
                raise ValueError(
                    "The file is not a tfkd teacher cache (written by `CachedTeacher.save`). "
                    f"Received: path={os.fspath(path)!r}."
                )
            top_k: int | None = int(data["meta_top_k"])
            if top_k is not None and top_k < 0:
                outputs, top_k = data["outputs"], None
            else:
                keys = ("top_k_values", "top_k_indices", "tail", "num_classes")
                outputs = {k: data[k] for k in keys}
            name = str(data["meta_name"])
            return cls(outputs, str(data["meta_fingerprint"]), top_k, name=name, teacher=teacher)

    def get_config(self) -> dict[str, Any]:
        """A description of the cache (JSON-able); the outputs themselves go through `save`."""
        return {
            "name": self.name,
            "num_samples": int(self.num_samples),
            "num_classes": int(self.num_classes),
            "top_k": self.top_k,
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "CachedTeacher":
        raise ValueError(
            "A `CachedTeacher` cannot be rebuilt from its config, which describes the cache but "
            f"does not hold the teacher's outputs. Received: config={config!r}. Save the cache "
            "with `cached.save(path)` and reload it with `tfkd.CachedTeacher.load(path)`."
        )

    def __repr__(self):
        return (
            f"CachedTeacher(name={self.name!r}, num_samples={self.num_samples}, "
            f"num_classes={self.num_classes}, top_k={self.top_k}, nbytes={self.nbytes})"
        )


# One traced function per (teacher, top_k), so caching the same teacher again does not retrace.
_TEACHER_FUNCTIONS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _teacher_function(teacher, top_k):
    functions = _TEACHER_FUNCTIONS.setdefault(teacher, {})
    if top_k not in functions:
        teacher_ref = weakref.ref(teacher)  # a strong reference here would keep the key alive

        @tf.function(reduce_retracing=True, autograph=False)  # no tensor-dependent Python flow
        def run(batch):
            return _compress(teacher_ref()(batch, training=False), top_k)

        functions[top_k] = run
    return functions[top_k]


def cache_teacher_outputs(
    teacher: Any,
    data: Any,
    top_k: int | None = None,
    batch_size: int | None = 256,
    verbose: int = 1,
    teacher_dtype: str | None = None,
) -> CachedTeacher:
    """Runs `teacher` once over `data` and returns its outputs as a `tfkd.CachedTeacher`.

    The teacher runs in inference mode, batch by batch, with a progress bar. Train afterwards with
    `Distiller(teacher=cached, student=...)` on `cached.dataset(x, y)` (or `cached.attach(ds)`).
    Only for data without random augmentation (see `CachedTeacher`). Losses that read the
    teacher's inner layers need a live teacher: a cache stores its outputs only.

    Args:
        teacher: The trained teacher, a `tfkd.keras.Model` (or a list of models, an ensemble)
            with one output.
        data: The training inputs `x` (array or nested arrays), an `(x, y, ...)` tuple of arrays,
            or an unbatched `tf.data.Dataset` of `x` or `(x, y, ...)` elements, in the order used
            later.
        top_k: Store only the `k` largest logits per sample and a flat tail (about `C / (2k)`
            times less memory; see `CachedTeacher`), or `None` to store all. Defaults to `None`.
        batch_size: Samples per teacher call. Defaults to `256`.
        verbose: `1` shows a progress bar, `0` none. Defaults to `1`.
        teacher_dtype: The precision of the teacher's forward pass, as in `tfkd.Distiller`
            (`None`, `"float32"`, `"bfloat16"`, `"float16"`, `"auto"`); the outputs are stored
            as float32. Defaults to `None`.

    Returns:
        A `tfkd.CachedTeacher`.

    Raises:
        TypeError: If `teacher` is not a model or `top_k`/`batch_size` not integers.
        ValueError: If `top_k` is not in [1, C), or the teacher's output is not `[batch, C]`.

    Example:
    >>> cached = tfkd.cache_teacher_outputs(teacher, x_train)
    >>> distiller = tfkd.Distiller(teacher=cached, student=student)
    >>> distiller.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    >>> distiller.fit(cached.dataset(x_train, y_train).shuffle(2048).batch(32), epochs=10)
    """
    if isinstance(teacher, (list, tuple)):
        from tfkd.schemes.ensemble import Ensemble

        teacher = Ensemble(list(teacher))
    else:
        teacher = check_model("teacher", teacher)
    if top_k is not None:
        top_k = check_int("top_k", top_k, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    from tfkd.checks import logits_model
    from tfkd.schemes.precision import resolve_teacher_dtype, teacher_in_precision

    compute = teacher_in_precision(teacher, resolve_teacher_dtype(teacher_dtype))
    compute = logits_model(compute, "teacher")  # logits, not probabilities, are cached
    batches = _input_batches(data, batch_size)

    run = _teacher_function(compute, top_k)
    progbar = keras.utils.Progbar(batches.cardinality_hint, verbose=verbose, unit_name="batch")
    hashers, chunks, num_classes = None, [], None
    for i, batch in enumerate(batches):
        hashers = update_hashers(hashers, batch)
        chunk = _to_numpy(run(batch))
        if top_k is not None:
            num_classes = chunk.pop("num_classes")
        chunks.append(chunk)
        progbar.update(i + 1)
    if not chunks:
        raise ValueError("`data` must hold at least one sample. Received: an empty data set.")
    outputs = tf.nest.map_structure(lambda *c: np.concatenate(c, axis=0), *chunks)
    if top_k is not None:
        outputs["num_classes"] = np.array(int(num_classes))  # type: ignore[arg-type]
    name = f"cached_{teacher.name}"
    return CachedTeacher(outputs, digest(hashers), top_k, name=name, teacher=teacher)


def _compress(logits, top_k):
    """The logits as stored: all of them, or the top k with their indices and the flat tail."""
    if isinstance(logits, (list, tuple, dict)):
        raise ValueError(
            "A cached teacher must have one output (the logits). Received: a teacher with "
            f"{len(logits)} outputs. Cache `keras.Model(teacher.inputs, teacher.outputs[0])`."
        )
    logits = tf.cast(logits, tf.float32)
    if top_k is None:
        return logits
    num_classes = logits.shape[-1]
    if logits.shape.rank != 2 or top_k >= num_classes:
        raise ValueError(
            "`top_k` needs teacher outputs of shape `[batch, C]` and 1 <= top_k < C. "
            f"Received: top_k={top_k} for outputs of shape {logits.shape}. Pass a smaller "
            "`top_k`, or `top_k=None` to store every logit."
        )
    values, indices = tf.math.top_k(logits, k=top_k)
    in_top = tf.reduce_sum(tf.one_hot(indices, num_classes), axis=1) > 0
    rest = tf.where(in_top, tf.constant(-np.inf, logits.dtype), logits)
    tail = tf.reduce_logsumexp(rest, axis=-1) - tf.math.log(float(num_classes - top_k))
    return {
        "top_k_values": values,
        "top_k_indices": tf.cast(indices, tf.int32),
        "tail": tail,
        "num_classes": tf.constant(num_classes),
    }


class _Batches:
    """Batches of inputs from arrays or an unbatched dataset, with their number when known."""

    def __init__(self, dataset, cardinality_hint):
        self.dataset = dataset
        self.cardinality_hint = cardinality_hint

    def __iter__(self):
        return iter(self.dataset)


def _input_batches(data, batch_size):
    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        inputs = data.map(lambda *e: e[0]) if isinstance(spec, tuple) else data
        batched = inputs.batch(batch_size)
        cardinality = int(batched.cardinality())
        if cardinality == int(tf.data.INFINITE_CARDINALITY):
            raise ValueError(
                "`data` must be finite: cache before `.repeat()`. Received: an infinite dataset."
            )
        return _Batches(batched, cardinality if cardinality >= 0 else None)
    x = data[0] if isinstance(data, tuple) else data
    count = count_samples(x)
    batched = tf.data.Dataset.from_tensor_slices(x).batch(batch_size)
    return _Batches(batched, -(-count // batch_size))


def _to_numpy(structure):
    return tf.nest.map_structure(lambda t: t.numpy(), structure)
