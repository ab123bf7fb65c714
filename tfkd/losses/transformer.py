"""Losses for transformer encoders: hidden states and attention scores, block by block.

With `LogitsDistillation` they give DistilBERT's objective (soft-target KL, cosine between the last
hidden states, the label loss; Sanh et al., 2019) and TinyBERT's (embedding and per-block
hidden-state MSE through a learned projection, attention-score MSE, prediction-layer KL; Jiao et
al., 2020). Student block `i` learns from teacher block `(i + 1) * N // M - 1` by default.
"""

from typing import Any

from tfkd._keras import keras, tf
from tfkd._validation import check_choice
from tfkd.losses.base import DistillationLoss, as_list
from tfkd.losses.feature import build_adapter


def uniform_layer_map(teacher_count, student_count):
    """`[(teacher_index, student_index), ...]`: student `i` reads teacher `(i+1)*N//M - 1`."""
    return [((i + 1) * teacher_count // student_count - 1, i) for i in range(student_count)]


def _check_names(arg, names):
    if isinstance(names, str):
        names = [names]
    if (
        not isinstance(names, (list, tuple))
        or not names
        or not all(isinstance(n, str) for n in names)
    ):
        raise TypeError(
            f"`{arg}` must be a non-empty list of layer names. Received: {arg}={names!r}. "
            f'E.g. {arg}=["block_0_output", "block_1_output"].'
        )
    return list(names)


def _check_layer_map(layer_map, teacher_layers, student_layers):
    """The map as `[(teacher_index, student_index), ...]`, checked against both lists."""
    n, m = len(teacher_layers), len(student_layers)
    if layer_map == "uniform":
        if m > n:
            raise ValueError(
                "A uniform `layer_map` maps each student layer to a teacher layer, so the student "
                f"cannot read more layers than the teacher. Received: {m} student_layers and {n} "
                "teacher_layers. Read fewer student layers, or pass an explicit layer_map."
            )
        return uniform_layer_map(n, m)
    example = 'E.g. layer_map=[(1, 0), (3, 1)] (teacher index, student index), or "uniform".'
    if not isinstance(layer_map, (list, tuple)) or not all(
        isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(i, int) for i in p)
        for p in layer_map
    ):
        raise TypeError(
            '`layer_map` must be "uniform" or a list of (teacher_index, student_index) pairs. '
            f"Received: layer_map={layer_map!r}. {example}"
        )
    if len(layer_map) != m or sorted(p[1] for p in layer_map) != list(range(m)):
        raise ValueError(
            f"`layer_map` must pair every one of the {m} student_layers once. Received: "
            f"layer_map={layer_map!r} ({len(layer_map)} pairs). {example}"
        )
    bad = [tuple(p) for p in layer_map if not 0 <= p[0] < n]
    if bad:
        raise ValueError(
            f"`layer_map` names teacher indices outside 0..{n - 1}: {bad}. Received: "
            f"layer_map={layer_map!r} with {n} teacher_layers."
        )
    return [tuple(p) for p in layer_map]


class _LayerMapLoss(DistillationLoss):
    """A loss over pairs of layers chosen by a layer map (shared by the two losses below)."""

    def __init__(self, teacher_layers, student_layers, layer_map="uniform", name=None):
        super().__init__(name=name)
        self.teacher_layers = _check_names("teacher_layers", teacher_layers)
        self.student_layers = _check_names("student_layers", student_layers)
        self.layer_map = layer_map if layer_map == "uniform" else [list(p) for p in layer_map]
        self.pairs = _check_layer_map(layer_map, self.teacher_layers, self.student_layers)

    def _key(self, name):
        return name

    @property
    def layer_pairs(self):
        return [
            (self._key(self.teacher_layers[t]), self._key(self.student_layers[s]))
            for t, s in self.pairs
        ]

    def get_config(self):
        return {
            "teacher_layers": list(self.teacher_layers),
            "student_layers": list(self.student_layers),
            "layer_map": self.layer_map,
            "name": self.name,
        }


@keras.utils.register_keras_serializable(package="tfkd")
class HiddenStateDistillation(_LayerMapLoss):
    """The student's hidden states follow the teacher's, layer by layer (DistilBERT, TinyBERT).

    Reads sequences `(batch, length, width)` (e.g. `"embeddings"`, `"block_{i}_output"`). When
    widths differ, a learned projection (a `Dense` to the teacher's width, one per pair) maps the
    student's states; it trains with the student and is not part of `distiller.student`.

    The loss per sample is the sum over pairs of: `"mse"`, the mean squared difference (TinyBERT),
    or `"cosine"`, `1 - cosine similarity` of the states at each position, averaged over positions
    (DistilBERT's cosine embedding loss).

    Args:
        teacher_layers: Names of the teacher layers read, in order.
        student_layers: Names of the student layers read, in order.
        loss: `"mse"` or `"cosine"`. Defaults to `"mse"`.
        layer_map: `"uniform"` (student layer `i` reads teacher layer `(i+1)*N//M - 1`) or a list of
            `(teacher_index, student_index)` pairs into the two lists. Defaults to `"uniform"`.
        name: As in `DistillationLoss`.

    Raises:
        TypeError: If the names or the map have the wrong type.
        ValueError: If the map does not pair each student layer once or names indices outside the
            lists; at `build` (the `Distiller`'s construction), if the sequences differ in length.

    Example:
    >>> hidden = tfkd.losses.HiddenStateDistillation(
    ...     [f"block_{i}_output" for i in range(4)], ["block_0_output", "block_1_output"])
    """

    def __init__(
        self,
        teacher_layers: Any,
        student_layers: Any,
        loss: Any = "mse",
        layer_map: Any = "uniform",
        name: str | None = None,
    ) -> None:
        super().__init__(teacher_layers, student_layers, layer_map, name=name)
        self.loss = check_choice("loss", loss, ("mse", "cosine"))
        self.projections: list[Any] = []

    @property
    def trainable_layers(self) -> Any:
        return [p for p in self.projections if p is not None]

    def build(self, teacher_shapes: Any, student_shapes: Any) -> None:
        teacher_shapes, student_shapes = _shape_list(teacher_shapes), _shape_list(student_shapes)
        self.projections = []
        for (t_name, s_name), t_shape, s_shape in zip(
            self.layer_pairs, teacher_shapes, student_shapes, strict=True
        ):
            if t_shape.rank != s_shape.rank or t_shape[1:-1] != s_shape[1:-1]:
                raise ValueError(
                    "`HiddenStateDistillation` compares states of the same length. Received: "
                    f"teacher {t_name!r} shape={_describe(t_shape)}, student {s_name!r} "
                    f"shape={_describe(s_shape)}. Read layers whose outputs differ only in width."
                )
            projection = None
            if t_shape[-1] != s_shape[-1]:
                uid = keras.backend.get_uid(self.name + "_projection")
                projection = build_adapter(t_shape, s_shape, f"{self.name}_projection_{uid}")
            self.projections.append(projection)
        self.built = True

    def call(self, teacher_states: Any, student_states: Any) -> Any:
        teacher_states, student_states = as_list(teacher_states), as_list(student_states)
        projections = self.projections or [None] * len(student_states)
        total = 0.0
        for teacher, student, projection in zip(
            teacher_states, student_states, projections, strict=True
        ):
            student = tf.convert_to_tensor(student)
            if projection is not None:
                student = projection(student)
            teacher = tf.cast(teacher, student.dtype)
            if self.loss == "mse":
                value = tf.reduce_mean(tf.square(student - teacher), axis=-1)
            else:
                unit_t = tf.math.l2_normalize(teacher, axis=-1)
                value = 1.0 - tf.reduce_sum(unit_t * tf.math.l2_normalize(student, axis=-1), -1)
            if value.shape.rank > 1:
                value = tf.reduce_mean(value, axis=list(range(1, value.shape.rank)))
            total += value
        return total

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "loss": self.loss}


class AttentionScores:
    """What `AttentionDistillation` reads: the attention probabilities of a `MultiHeadAttention`.

    A key the `Distiller` reads with `tap(model, role)`: the layer is called once more, on its own
    inputs in the model's graph, with `return_attention_scores=True`, so user-built encoders need
    no change. Equal when they name the same layer.
    """

    def __init__(self, layer_name):
        self.layer_name = layer_name

    def __eq__(self, other):
        return isinstance(other, AttentionScores) and other.layer_name == self.layer_name

    def __hash__(self):
        return hash(("attention_scores", self.layer_name))

    def __repr__(self):
        return f"AttentionScores({self.layer_name!r})"

    def tap(self, model, role="model"):
        """The scores `(batch, heads, query_length, key_length)` as a tensor of `model`'s graph.

        Raises:
            ValueError: If `model` has no layer of that name or it is not a `MultiHeadAttention`.
        """
        layer = _find_layer(model, self.layer_name, role)
        attention = layer
        while isinstance(attention, keras.layers.Wrapper):
            attention = attention.layer
        if not isinstance(attention, keras.layers.MultiHeadAttention):
            raise ValueError(
                f"`AttentionDistillation` reads `MultiHeadAttention` layers. Received: {role} "
                f"layer {self.layer_name!r} of type {type(attention).__name__}. Name the "
                "attention layers, e.g. 'block_0_attention'."
            )
        node = _model_node(model, layer)
        # A pruning wrapper counts its steps per call: read through it (the kernel is masked).
        caller = layer.layer if hasattr(layer, "pruning_step") else layer
        kwargs = {**node.call_kwargs, "return_attention_scores": True}
        _, scores = caller(*node.call_args, **kwargs)
        return scores


def _find_layer(model, name, role):
    for layer in model.layers:
        inner = layer
        while isinstance(inner, keras.layers.Wrapper):
            inner = inner.layer
        if name in (layer.name, inner.name):
            return layer
    raise ValueError(
        f"The {role} has no layer named {name!r}. Received: {role}_layers containing {name!r}. "
        f"Its layers are: {[layer.name for layer in model.layers]}."
    )


def _model_node(model, layer):
    """The node that calls `layer` inside `model` (a layer may also be called elsewhere)."""
    network_nodes = getattr(model, "_network_nodes", set())
    for index, node in enumerate(layer.inbound_nodes):
        if f"{layer.name}_ib-{index}" in network_nodes:
            return node
    return layer.inbound_nodes[0]


@keras.utils.register_keras_serializable(package="tfkd")
class AttentionDistillation(_LayerMapLoss):
    """The student's attention follows the teacher's, block by block (TinyBERT, MiniLM).

    Reads the attention probabilities `(batch, heads, query, key)` of the named
    `MultiHeadAttention` layers, in tfkd's encoders and in user-built ones alike (see
    `AttentionScores`). When the head counts differ, both sides are averaged over heads. Per sample,
    the loss is the sum over pairs of `"mse"` (mean squared difference of the probabilities;
    TinyBERT fits the scores before softmax, which Keras's layer does not return) or `"kl"` (KL
    divergence of each query's distribution, teacher to student, averaged; MiniLM).

    Args:
        teacher_layers: Names of the teacher's attention layers, in order.
        student_layers: Names of the student's attention layers, in order.
        layer_map: As in `HiddenStateDistillation`. Defaults to `"uniform"`.
        loss: `"mse"` or `"kl"`. Defaults to `"mse"`.
        name: As in `DistillationLoss`.

    Raises:
        TypeError, ValueError: As `HiddenStateDistillation`; and, at the `Distiller`'s
            construction, if a named layer is missing or is not a `MultiHeadAttention`, or the
            attention maps differ in size.

    Example:
    >>> attention = tfkd.losses.AttentionDistillation(
    ...     [f"block_{i}_attention" for i in range(4)], ["block_0_attention", "block_1_attention"])
    """

    def __init__(
        self,
        teacher_layers: Any,
        student_layers: Any,
        layer_map: Any = "uniform",
        loss: Any = "mse",
        name: str | None = None,
    ) -> None:
        super().__init__(teacher_layers, student_layers, layer_map, name=name)
        self.loss = check_choice("loss", loss, ("mse", "kl"))

    def _key(self, name):
        return AttentionScores(name)

    def build(self, teacher_shapes: Any, student_shapes: Any) -> None:
        teacher_shapes, student_shapes = _shape_list(teacher_shapes), _shape_list(student_shapes)
        for (t_key, s_key), t_shape, s_shape in zip(
            self.layer_pairs, teacher_shapes, student_shapes, strict=True
        ):
            if t_shape.rank != 4 or s_shape.rank != 4 or t_shape[2:] != s_shape[2:]:
                raise ValueError(
                    "`AttentionDistillation` compares attention maps (batch, heads, query, key) "
                    f"of one size. Received: teacher {t_key.layer_name!r} shape="
                    f"{_describe(t_shape)}, student {s_key.layer_name!r} shape="
                    f"{_describe(s_shape)}. Give both models the same sequence length."
                )
        self.built = True

    def call(self, teacher_scores: Any, student_scores: Any) -> Any:
        total = 0.0
        for teacher, student in zip(
            as_list(teacher_scores), as_list(student_scores), strict=True
        ):
            student = tf.convert_to_tensor(student)
            teacher = tf.cast(teacher, student.dtype)
            if teacher.shape[1] != student.shape[1]:
                teacher = tf.reduce_mean(teacher, axis=1, keepdims=True)
                student = tf.reduce_mean(student, axis=1, keepdims=True)
            if self.loss == "mse":
                total += tf.reduce_mean(tf.square(student - teacher), axis=[1, 2, 3])
            else:
                eps = 1e-8
                kl = tf.reduce_sum(
                    teacher * (tf.math.log(teacher + eps) - tf.math.log(student + eps)), axis=-1
                )
                total += tf.reduce_mean(kl, axis=[1, 2])
        return total

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "loss": self.loss}



def _shape_list(shapes):
    if isinstance(shapes, tf.TensorShape):
        return [shapes]
    if isinstance(shapes, (list, tuple)) and all(d is None or isinstance(d, int) for d in shapes):
        return [tf.TensorShape(shapes)]
    return [tf.TensorShape(s) for s in shapes]


def _describe(shape):
    return tuple(shape.as_list()) if shape.rank is not None else "unknown"
