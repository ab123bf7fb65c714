"""Reference transformer encoders (text or ViT-style images) and `shrink`, which makes students.

Blocks are post-norm (BERT's): `h = LayerNorm(h + MHA(h, h))`, `h = LayerNorm(h + FFN(h))` with
a GELU feed-forward, every residual an `Add` layer (never a bare `h + a`, which TF-MOT cannot wrap).
Layers are named so losses can address them: `embeddings` (token or patch embeddings plus
positions), `block_{i}_attention` (the `MultiHeadAttention`), `block_{i}_output` (the block's
hidden states), `pooled` and `logits`.
"""

import re
from typing import Any

from tfkd._keras import keras, tf
from tfkd._validation import check_choice, check_int, check_number

_BLOCK = re.compile(r"^block_(\d+)_attention$")


@keras.utils.register_keras_serializable(package="tfkd")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned embedding of each position to a sequence `(batch, length, width)`.

    Args:
        initializer: Initializer of the position embeddings. Defaults to `None` (truncated normal,
            standard deviation 0.02, as BERT).
    """

    def __init__(self, initializer: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if initializer is None:  # BERT's: small next to the token embeddings (uniform 0.05)
            initializer = keras.initializers.TruncatedNormal(stddev=0.02)
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape: Any) -> None:
        self.position_embeddings = self.add_weight(
            name="position_embeddings",
            shape=(int(input_shape[1]), int(input_shape[2])),
            initializer=self.initializer,
        )
        super().build(input_shape)

    def call(self, inputs: Any) -> Any:
        return inputs + tf.cast(self.position_embeddings, inputs.dtype)[tf.newaxis]

    def get_config(self) -> dict[str, Any]:
        initializer = keras.initializers.serialize(self.initializer)
        return {**super().get_config(), "initializer": initializer}


def build_transformer(
    num_classes: int = 2,
    vocab_size: int | None = None,
    sequence_length: int | None = None,
    image_shape: Any = None,
    patch_size: int | None = None,
    width: Any = 32,
    depth: Any = 2,
    heads: int = 2,
    ffn_units: int | None = None,
    pooling: str = "cls",
    dropout: float = 0.0,
    name: str | None = "transformer",
) -> keras.Model:
    """A tf_keras Functional transformer encoder classifier that outputs logits.

    Give either `vocab_size` and `sequence_length` (integer token ids in, e.g. from
    `tfkd.data.load_sentiment`, whose first token is `[CLS]`) or `image_shape` and `patch_size`
    (images cut into non-overlapping patches, ViT-style, by a strided `Conv2D`).

    Args:
        num_classes: Number of classes (logits out). Defaults to `2`.
        vocab_size: Number of token ids, for text. Defaults to `None`.
        sequence_length: Tokens per input, for text. Defaults to `None`.
        image_shape: `(height, width, channels)`, for images. Defaults to `None`.
        patch_size: Side of a square patch, for images. Defaults to `None`.
        width: Hidden size (a multiple of `heads`). Defaults to `32`.
        depth: Number of blocks. Defaults to `2`.
        heads: Attention heads per block. Defaults to `2`.
        ffn_units: Units of the feed-forward's hidden layer. Defaults to `None` (`4 * width`).
        pooling: `"cls"` (the first position's hidden state; text only) or `"mean"` (average
            over positions). Defaults to `"cls"`.
        dropout: Dropout rate after attention and feed-forward. Defaults to `0.0`.
        name: Model name. Defaults to `"transformer"`.

    Returns:
        A `tfkd.keras.Model`.

    Raises:
        ValueError: If neither or both input kinds are given, or `width` is not a multiple of
            `heads`.

    Example:
    >>> teacher = tfkd.models.build_transformer(vocab_size=64, sequence_length=24, depth=4)
    """
    check_int("num_classes", num_classes, minimum=2)
    for arg, value in (("width", width), ("depth", depth), ("heads", heads)):
        check_int(arg, value, minimum=1)
    if width % heads:
        raise ValueError(
            f"`width` must be a multiple of `heads`. Received: width={width}, heads={heads}. "
            f"E.g. width={heads * max(1, round(width / heads))}."
        )
    ffn_units = 4 * width if ffn_units is None else check_int("ffn_units", ffn_units, minimum=1)
    check_choice("pooling", pooling, ("cls", "mean"))
    check_number("dropout", dropout)
    text = vocab_size is not None or sequence_length is not None
    image = image_shape is not None or patch_size is not None
    if text == image:
        raise ValueError(
            "Give the inputs as tokens (`vocab_size` and `sequence_length`) or as images "
            f"(`image_shape` and `patch_size`), not {'both' if text else 'neither'}. Received: "
            f"vocab_size={vocab_size!r}, sequence_length={sequence_length!r}, "
            f"image_shape={image_shape!r}, patch_size={patch_size!r}."
        )
    if text:
        inputs, h = _token_embeddings(vocab_size, sequence_length, width)
    else:
        if pooling == "cls":
            pooling = "mean"  # images carry no [CLS] token
        inputs, h = _patch_embeddings(image_shape, patch_size, width)
    h = PositionEmbedding(name="embeddings")(h)
    for i in range(depth):
        h = _block(h, i, width, heads, ffn_units, dropout)
    if pooling == "cls":
        h = keras.layers.Cropping1D((0, h.shape[1] - 1), name="cls_token")(h)
        h = keras.layers.Flatten(name="pooled")(h)
    else:
        h = keras.layers.GlobalAveragePooling1D(name="pooled")(h)
    outputs = keras.layers.Dense(num_classes, name="logits")(h)
    return keras.Model(inputs, outputs, name=name)


def _token_embeddings(vocab_size, sequence_length, width):
    check_int("vocab_size", vocab_size, minimum=2)
    check_int("sequence_length", sequence_length, minimum=1)
    inputs = keras.Input((sequence_length,), dtype="int32", name="tokens")
    return inputs, keras.layers.Embedding(vocab_size, width, name="token_embedding")(inputs)


def _patch_embeddings(image_shape, patch_size, width):
    check_int("patch_size", patch_size, minimum=1)
    if not isinstance(image_shape, (list, tuple)) or len(image_shape) != 3:
        raise ValueError(
            "`image_shape` must be (height, width, channels). "
            f"Received: image_shape={image_shape!r}. E.g. image_shape=(28, 28, 1)."
        )
    height, image_width, _ = image_shape
    if height % patch_size or image_width % patch_size:
        raise ValueError(
            f"`patch_size` must divide the image's height and width. Received: "
            f"patch_size={patch_size}, image_shape={tuple(image_shape)}."
        )
    inputs = keras.Input(tuple(image_shape), name="images")
    h = keras.layers.Conv2D(width, patch_size, strides=patch_size, name="patch_embedding")(inputs)
    count = (height // patch_size) * (image_width // patch_size)
    return inputs, keras.layers.Reshape((count, width), name="patches")(h)


def _block(h, i, width, heads, ffn_units, dropout):
    prefix = f"block_{i}"
    attention = keras.layers.MultiHeadAttention(
        heads, width // heads, dropout=dropout, name=f"{prefix}_attention"
    )(h, h)
    if dropout:
        attention = keras.layers.Dropout(dropout, name=f"{prefix}_attention_dropout")(attention)
    h = keras.layers.Add(name=f"{prefix}_attention_add")([h, attention])
    h = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{prefix}_attention_norm")(h)
    f = keras.layers.Dense(ffn_units, name=f"{prefix}_ffn_1")(h)
    f = keras.layers.Activation("gelu", name=f"{prefix}_gelu")(f)
    f = keras.layers.Dense(width, name=f"{prefix}_ffn_2")(f)
    if dropout:
        f = keras.layers.Dropout(dropout, name=f"{prefix}_ffn_dropout")(f)
    h = keras.layers.Add(name=f"{prefix}_ffn_add")([h, f])
    return keras.layers.LayerNormalization(epsilon=1e-6, name=f"{prefix}_output")(h)


def block_count(model):
    """How many `block_{i}_attention` layers a `build_transformer` model has (0 if none)."""
    return sum(
        1
        for layer in model.layers
        if _BLOCK.match(layer.name) and isinstance(layer, keras.layers.MultiHeadAttention)
    )


def is_reference_transformer(model):
    """Whether `model` has the layout of `build_transformer` (so `shrink` can rebuild it)."""
    names = {layer.name for layer in model.layers}
    return block_count(model) > 0 and {"embeddings", "logits", "pooled"} <= names


def _architecture(model):
    """The `build_transformer` arguments that rebuild `model`'s architecture."""
    attention = model.get_layer("block_0_attention")
    names = {layer.name for layer in model.layers}
    kwargs = {
        "num_classes": model.get_layer("logits").units,
        "width": model.get_layer("embeddings").output.shape[-1],
        "depth": block_count(model),
        "heads": attention.get_config()["num_heads"],
        "ffn_units": model.get_layer("block_0_ffn_1").units,
        "pooling": "cls" if "cls_token" in names else "mean",
        "dropout": attention.get_config()["dropout"],
    }
    if "token_embedding" in names:
        kwargs["vocab_size"] = model.get_layer("token_embedding").input_dim
        kwargs["sequence_length"] = model.inputs[0].shape[1]
    else:
        kwargs["image_shape"] = tuple(model.inputs[0].shape[1:])
        kwargs["patch_size"] = model.get_layer("patch_embedding").kernel_size[0]
    return kwargs


def shrink_transformer(model, width=None, depth=None, copy_weights=False, name=None):
    """A student shaped like the encoder `model`: fewer blocks (`depth`) and/or narrower (`width`).

    See `tfkd.models.shrink`. With `copy_weights=True` (DistilBERT's initialisation, same width
    only) the student gets the teacher's embeddings and head, and its block `j` the weights of the
    teacher's block `j * N // M` (one block of two when halving).
    """
    kwargs = _architecture(model)
    teacher_depth = kwargs["depth"]
    if depth is None:
        depth = teacher_depth
    check_int("depth", depth, minimum=1)
    if depth > teacher_depth:
        raise ValueError(
            f"`depth` must be at most the teacher's {teacher_depth} blocks. Received: "
            f"depth={depth}."
        )
    scale = 1.0 if width is None else _check_width(width)
    if scale != 1.0:
        if copy_weights:
            raise ValueError(
                "`copy_weights=True` needs the teacher's width (weights of another shape cannot "
                f"be copied). Received: width={width!r}. Pass width=None, or copy_weights=False."
            )
        heads = kwargs["heads"]
        kwargs["width"] = max(heads, int(round(kwargs["width"] * scale / heads)) * heads)
        kwargs["ffn_units"] = max(1, int(round(kwargs["ffn_units"] * scale)))
    kwargs["depth"] = depth
    suffix = f"_d{depth}" + ("" if scale == 1.0 else f"_x{scale:g}")
    student = build_transformer(**kwargs, name=name or f"{model.name}{suffix}")
    if copy_weights:
        _copy_every_other_block(model, student, teacher_depth, depth)
    return student


def _copy_every_other_block(teacher, student, teacher_depth, depth):
    for layer in student.layers:
        if not layer.weights:
            continue
        match = re.match(r"^block_(\d+)_(.*)$", layer.name)
        source = layer.name
        if match:
            source = f"block_{int(match.group(1)) * teacher_depth // depth}_{match.group(2)}"
        layer.set_weights(teacher.get_layer(source).get_weights())


def _check_width(width):
    width = check_number("width", width)
    if not 0.0 < width <= 1.0:
        raise ValueError(f"`width` must be in (0, 1]. Received: width={width!r}. E.g. `0.5`.")
    return width


def shrink(
    model: keras.Model,
    width: Any = None,
    depth: Any = None,
    copy_weights: bool = False,
    name: str | None = None,
) -> keras.Model:
    """A student shaped like `model`: narrower (`width`) and, for encoders, shallower (`depth`).

    For a CNN or MLP (see `tfkd.models.cnn.shrink`), `width` scales every layer's filters and
    units except the output layer's; the weights are new. For an encoder built by
    `build_transformer`, `depth` keeps that many blocks and `width` scales the hidden size and the
    feed-forward (heads kept); `copy_weights=True` initialises the student DistilBERT's way: the
    teacher's embeddings and head, and one teacher block of every `N / depth` (blocks 0, 2, ...
    when halving).

    Args:
        model: The teacher, a Sequential or Functional `tfkd.keras.Model`.
        width: Scale of the widths, in (0, 1]. Defaults to `None` (required for CNNs; `1.0` for
            encoders).
        depth: Number of blocks of an encoder student. Defaults to `None` (the teacher's).
        copy_weights: Copy the teacher's weights (encoders at the same width only). Defaults to
            `False`.
        name: The new model's name. Defaults to `None` (derived from the teacher's).

    Returns:
        The new `tfkd.keras.Model`.

    Raises:
        ValueError: If `width` is outside (0, 1], `depth` is given for a model that is not an
            encoder or exceeds its blocks, or `copy_weights=True` with another width.

    Example:
    >>> student = tfkd.models.shrink(teacher, depth=2, copy_weights=True)
    """
    from tfkd.keras3 import check_model

    model = check_model("model", model)
    if is_reference_transformer(model):
        return shrink_transformer(model, width, depth, copy_weights, name)
    if depth is not None or copy_weights:
        raise ValueError(
            "`depth` and `copy_weights` apply to encoders built by "
            "`tfkd.models.build_transformer`. Received: "
            f"depth={depth!r}, copy_weights={copy_weights!r} for model={model.name!r}. Pass only "
            "`width` for this model."
        )
    if width is None:
        raise ValueError(
            "`shrink` needs `width` for this model. Received: width=None. E.g. `width=0.25`."
        )
    from tfkd.models.cnn import shrink as shrink_width

    return shrink_width(model, width, name=name)
