"""Feature-based losses: the student learns from the teacher's intermediate activations."""

from typing import Any

from tfkd._keras import keras, tf
from tfkd._validation import check_choice, check_positive
from tfkd.losses.base import DistillationLoss, as_list, per_sample_loss_fn

_FEATURE_LOSSES = ("mse", "l1", "cosine")
# Keras 3 `keras.distillation.FeatureDistillation` spellings; "cosine_similarity" is Keras's loss,
# minus the cosine (tfkd's "cosine" is one minus it: same gradients).
_KERAS3_FEATURE_LOSSES = {
    "mean_squared_error": "mse",
    "MeanSquaredError": "mse",
    "mae": "l1",
    "mean_absolute_error": "l1",
    "MeanAbsoluteError": "l1",
    "cosine_similarity": "cosine_similarity",
    "CosineSimilarity": "cosine_similarity",
}


@keras.utils.register_keras_serializable(package="tfkd")
class FeatureDistillation(DistillationLoss):
    """The FitNets hint: the student's features regress the teacher's (Romero et al., 2015).

    Reads `teacher_layer` of the teacher and `student_layer` of the student. When their shapes
    differ, `adapter="auto"` builds a trainable adapter on the student's side (in `build`, from
    the two shapes): a 1x1 `Conv2D` to the teacher's channels for feature maps, a `Dense` to the
    teacher's width for vectors (a student map read against a teacher vector is flattened first).
    Spatial sizes are matched by average pooling when the student's map is an integer multiple of
    the teacher's and by bilinear resizing otherwise. The adapter is listed in `trainable_layers`,
    so the `Distiller` trains it with the student, and it is never part of `distiller.student`: the
    exported student stays as built.

    Keras 3's spellings are accepted: `FeatureDistillation(loss="mse", teacher_layer_name=None,
    student_layer_name=None)`, with `loss` also `"mae"`/`"mean_absolute_error"` (`"l1"`),
    `"mean_squared_error"`, `"cosine_similarity"` (Keras's loss, `-cosine`) or a Keras loss
    object or function, applied per sample to the flattened features `loss(teacher, student)`.

    Args:
        teacher_layer: Name of the teacher layer read (`None`: its outputs). Defaults to `None`.
        student_layer: Name of the student layer read (`None`: its outputs). Defaults to `None`.
        adapter: `"auto"` (an adapter only when shapes differ), `None` (shapes must agree), or a
            Keras layer mapping the student's features to the teacher's shape. Defaults to `"auto"`.
        loss: `"mse"` (mean squared difference), `"l1"` (mean absolute difference) or `"cosine"`
            (`1 - cosine similarity` of the flattened features), a Keras 3 name above, or a Keras
            loss. Defaults to `"mse"`.
        name: As in `DistillationLoss`.
        teacher_layer_name, student_layer_name: Keras 3's spellings of `teacher_layer` and
            `student_layer`. Default to `None`.

    Raises:
        ValueError: At `build` (the `Distiller`'s construction or compile), if the shapes differ and
            `adapter=None`, or if no adapter can map the student's shape to the teacher's.

    Example:
    >>> hint = tfkd.losses.FeatureDistillation("conv3", "conv2")  # 1x1 conv adapter if needed
    >>> tfkd.Distiller(teacher=t, student=s, distillation_losses=[logits_kd, hint])
    """

    def __init__(
        self,
        teacher_layer: str | None = None,
        student_layer: str | None = None,
        adapter: Any = "auto",
        loss: Any = "mse",
        name: str | None = None,
        *,
        teacher_layer_name: str | None = None,
        student_layer_name: str | None = None,
    ) -> None:
        super().__init__(
            teacher_layer=teacher_layer,
            student_layer=student_layer,
            name=name,
            teacher_layer_name=teacher_layer_name,
            student_layer_name=student_layer_name,
        )
        if isinstance(adapter, dict):
            adapter = keras.layers.deserialize(adapter)
        if not (adapter is None or adapter == "auto" or isinstance(adapter, keras.layers.Layer)):
            raise TypeError(
                '`adapter` must be "auto", None or a Keras layer. '
                f"Received: adapter={adapter!r} (of type {type(adapter).__name__}). Pass "
                '`adapter="auto"` to let tfkd build a 1x1 convolution or dense adapter.'
            )
        self.adapter = adapter
        self.loss, self._mode, self._loss_fn = _feature_loss(loss)
        self._adapter_layer = adapter if isinstance(adapter, keras.layers.Layer) else None

    @property
    def trainable_layers(self) -> Any:
        return [] if self._adapter_layer is None else [self._adapter_layer]

    def build(self, teacher_shape: Any, student_shape: Any) -> None:
        teacher_shape = tf.TensorShape(teacher_shape)
        student_shape = tf.TensorShape(student_shape)
        if self._adapter_layer is not None:
            if not self._adapter_layer.built:
                self._adapter_layer.build(student_shape)
        elif teacher_shape[1:] != student_shape[1:]:
            if self.adapter is None:
                raise ValueError(
                    "`FeatureDistillation` with adapter=None needs features of one shape. "
                    f"Received: teacher {self.teacher_layer!r} shape={_describe(teacher_shape)}, "
                    f"student {self.student_layer!r} shape={_describe(student_shape)}. Pass "
                    '`adapter="auto"` for a trainable adapter, or read layers of the same shape.'
                )
            self._adapter_layer = build_adapter(teacher_shape, student_shape, self._adapter_name())
        self.built = True

    def _adapter_name(self):
        return f"{self.name}_adapter_{keras.backend.get_uid(self.name + '_adapter')}"

    def call(self, teacher_features: Any, student_features: Any) -> Any:
        student_features = tf.convert_to_tensor(student_features)
        if self._adapter_layer is not None:
            student_features = self._adapter_layer(student_features)
        teacher_features = tf.cast(teacher_features, student_features.dtype)
        teacher_flat = flatten(teacher_features)
        student_flat = flatten(student_features)
        if self._mode == "keras":
            return self._loss_fn(teacher_flat, student_flat)
        if self._mode == "mse":
            return tf.reduce_mean(tf.square(student_flat - teacher_flat), axis=-1)
        if self._mode == "l1":
            return tf.reduce_mean(tf.abs(student_flat - teacher_flat), axis=-1)
        teacher_unit = tf.math.l2_normalize(teacher_flat, axis=-1)
        cosine = tf.reduce_sum(teacher_unit * tf.math.l2_normalize(student_flat, axis=-1), axis=-1)
        return -cosine if self._mode == "cosine_similarity" else 1.0 - cosine

    def get_config(self) -> dict[str, Any]:
        adapter = self.adapter
        if isinstance(adapter, keras.layers.Layer):
            adapter = keras.layers.serialize(adapter)
        loss = self.loss if isinstance(self.loss, str) else keras.losses.serialize(self.loss)
        return {**super().get_config(), "adapter": adapter, "loss": loss}


def _feature_loss(loss):
    """`(loss as given, tfkd mode, per-sample Keras loss or None)` for `FeatureDistillation`."""
    if isinstance(loss, dict):
        loss = keras.losses.deserialize(loss)
    if isinstance(loss, str):
        check_choice("loss", loss, _FEATURE_LOSSES + tuple(_KERAS3_FEATURE_LOSSES))
        return loss, _KERAS3_FEATURE_LOSSES.get(loss, loss), None
    if callable(loss):
        return loss, "keras", per_sample_loss_fn("loss", loss)
    raise TypeError(
        '`loss` must be "mse", "l1", "cosine", a Keras 3 loss name or a Keras loss. '
        f"Received: loss={loss!r} (of type {type(loss).__name__})."
    )


def build_adapter(teacher_shape, student_shape, name=None):
    """A trainable Keras model mapping features of `student_shape` to `teacher_shape` (built).

    Feature maps (rank 4) get a 1x1 `Conv2D` to the teacher's channels, then average pooling (an
    integer ratio of sizes) or bilinear resizing to the teacher's spatial size; other ranks get a
    `Dense` on the last axis, after flattening the student when the teacher's features are vectors.
    """
    teacher_shape = tf.TensorShape(teacher_shape)
    student_shape = tf.TensorShape(student_shape)
    layers = []
    if teacher_shape.rank == 4 and student_shape.rank == 4:
        layers.append(keras.layers.Conv2D(teacher_shape[-1], 1, name="project"))
        layers.extend(_spatial_match(teacher_shape[1:3], student_shape[1:3]))
    elif teacher_shape.rank == 2:
        if student_shape.rank != 2:
            layers.append(keras.layers.Flatten(name="flatten"))
        layers.append(keras.layers.Dense(teacher_shape[-1], name="project"))
    elif teacher_shape.rank == student_shape.rank and teacher_shape[1:-1] == student_shape[1:-1]:
        layers.append(keras.layers.Dense(teacher_shape[-1], name="project"))
    else:
        raise ValueError(
            "No adapter maps these student features to the teacher's. Expected feature maps "
            "(batch, height, width, channels) on both sides, teacher vectors, or equal shapes "
            f"except the last axis. Received: teacher shape={_describe(teacher_shape)}, student "
            f"shape={_describe(student_shape)}. Read other layers, or pass your own `adapter=`."
        )
    adapter = keras.Sequential(layers, name=name)
    adapter.build(student_shape)
    return adapter


def _spatial_match(teacher_size, student_size):
    if teacher_size == student_size:
        return []
    (th, tw), (sh, sw) = teacher_size, student_size
    if None in (th, tw, sh, sw):
        raise ValueError(
            "Matching feature maps of different spatial sizes needs static sizes. Received: "
            f"teacher size={(th, tw)}, student size={(sh, sw)}. Give the models fixed input shapes."
        )
    if sh % th == 0 and sw % tw == 0:
        return [keras.layers.AveragePooling2D((sh // th, sw // tw), name="pool")]
    return [keras.layers.Resizing(th, tw, interpolation="bilinear", name="resize")]


@keras.utils.register_keras_serializable(package="tfkd")
class AttentionTransfer(DistillationLoss):
    """Attention transfer over several layer pairs (Zagoruyko & Komodakis, 2017).

    For each `(teacher_layer, student_layer)` pair of feature maps `(batch, height, width,
    channels)`, the spatial attention map is `mean_c |F|**p`, flattened and L2-normalized per
    sample; the loss per sample is the sum over pairs of the squared distance between the teacher's
    and the student's maps. Channel counts may differ; the student's map is average-pooled or
    bilinearly resized to the teacher's spatial size. (The authors' code averages the squared
    distance over positions and weights it by 1000/2; this sum is their mean times height*width.)

    Args:
        pairs: A list of `(teacher_layer, student_layer)` name pairs of feature maps.
        p: Positive power applied to activations before averaging over channels. Defaults to `2`.
        name: As in `DistillationLoss`.

    Raises:
        ValueError: If a pair reads something other than a rank-4 feature map (at `build`).

    Example:
    >>> at = tfkd.losses.AttentionTransfer([("conv2", "conv1"), ("conv3", "conv2")])
    """

    def __init__(self, pairs: Any, p: float = 2, name: str | None = None) -> None:
        super().__init__(name=name)
        self.pairs = _check_pairs(pairs)
        self.p = check_positive("p", p)

    @property
    def layer_pairs(self) -> Any:
        return list(self.pairs)

    def build(self, teacher_shapes: Any, student_shapes: Any) -> None:
        teacher_shapes = _as_shape_list(teacher_shapes)
        student_shapes = _as_shape_list(student_shapes)
        shapes = zip(self.pairs, teacher_shapes, student_shapes, strict=True)
        for (t_name, s_name), t_shape, s_shape in shapes:
            if t_shape.rank != 4 or s_shape.rank != 4:
                raise ValueError(
                    "`AttentionTransfer` reads feature maps (batch, height, width, channels). "
                    f"Received: teacher {t_name!r} shape={_describe(t_shape)}, student {s_name!r} "
                    f"shape={_describe(s_shape)}. Pair convolutional layers, or use "
                    "`FeatureDistillation` for vectors."
                )
        self.built = True

    def attention_map(self, features: Any, size: Any = None) -> Any:
        """The flattened, L2-normalized attention map of `features`, optionally resized."""
        features = tf.cast(features, tf.float32)
        attention = tf.reduce_mean(tf.pow(tf.abs(features) + 1e-12, self.p), axis=-1, keepdims=True)
        if size is not None and tuple(attention.shape[1:3]) != tuple(size):
            height, width = attention.shape[1:3]
            if height % size[0] == 0 and width % size[1] == 0:
                factor = (height // size[0], width // size[1])
                attention = tf.nn.avg_pool2d(attention, factor, factor, "VALID")
            else:
                attention = tf.image.resize(attention, size, method="bilinear")
        return tf.math.l2_normalize(flatten(attention), axis=-1)

    def call(self, teacher_features: Any, student_features: Any) -> Any:
        teacher_features = as_list(teacher_features)
        student_features = as_list(student_features)
        total = 0.0
        for teacher, student in zip(teacher_features, student_features, strict=True):
            teacher_map = self.attention_map(teacher)
            student_map = self.attention_map(student, size=teacher.shape[1:3])
            total += tf.reduce_sum(tf.square(teacher_map - student_map), axis=-1)
        return total

    def get_config(self) -> dict[str, Any]:
        return {"pairs": [list(pair) for pair in self.pairs], "p": self.p, "name": self.name}


def _check_pairs(pairs):
    example = 'E.g. pairs=[("teacher_conv2", "student_conv1"), ("teacher_conv3", "student_conv2")].'
    if not isinstance(pairs, (list, tuple)) or not pairs:
        raise TypeError(
            "`pairs` must be a non-empty list of (teacher_layer, student_layer) name pairs. "
            f"Received: pairs={pairs!r}. {example}"
        )
    checked = []
    for pair in pairs:
        if (
            not isinstance(pair, (list, tuple))
            or len(pair) != 2
            or not all(isinstance(n, str) for n in pair)
        ):
            raise TypeError(
                "Every item of `pairs` must be a (teacher_layer, student_layer) pair of layer "
                "names. "
                f"Received: {pair!r} in pairs={pairs!r}. {example}"
            )
        checked.append(tuple(pair))
    return checked


def flatten(values):
    """`values` as `[batch, features]`."""
    values = tf.convert_to_tensor(values)
    if values.shape.rank == 2:
        return values
    return tf.reshape(values, [tf.shape(values)[0], -1])


def _as_shape_list(shapes):
    one_shape = isinstance(shapes, (list, tuple)) and all(
        d is None or isinstance(d, int) for d in shapes
    )
    if isinstance(shapes, tf.TensorShape) or one_shape:
        return [tf.TensorShape(shapes)]
    return [tf.TensorShape(s) for s in shapes]


def _describe(shape):
    return tuple(tf.TensorShape(shape).as_list()) if shape.rank is not None else "unknown"
