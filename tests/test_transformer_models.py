"""`tfkd.models.build_transformer` and `tfkd.models.shrink` on encoders (2 blocks, width 16)."""

import numpy as np
import pytest

import tfkd
from tfkd import keras


def tiny_text(depth=2, **kwargs):
    return tfkd.models.build_transformer(
        vocab_size=20, sequence_length=8, width=16, depth=depth, heads=2, ffn_units=32, **kwargs
    )


def test_text_encoder_outputs_logits_and_names_its_blocks():
    model = tiny_text(num_classes=3)
    tokens = np.random.default_rng(0).integers(0, 20, size=(4, 8)).astype("int32")
    assert model(tokens).shape == (4, 3)
    names = [layer.name for layer in model.layers]
    for name in ("embeddings", "block_0_attention", "block_1_output", "pooled", "logits"):
        assert name in names
    assert isinstance(model.get_layer("block_0_attention"), keras.layers.MultiHeadAttention)
    # Residuals are Add layers, not TFOpLambda nodes TF-MOT cannot wrap.
    assert isinstance(model.get_layer("block_0_attention_add"), keras.layers.Add)
    assert not any(type(layer).__name__ == "TFOpLambda" for layer in model.layers)


def test_cls_pooling_reads_only_the_first_position():
    model = tiny_text(pooling="cls")
    tokens = np.zeros((2, 8), "int32")
    tokens[1, 0] = 5  # change only the first token: the [CLS] state, the pooled vector, changes
    pooled = keras.Model(model.inputs, model.get_layer("pooled").output)(tokens).numpy()
    first = keras.Model(model.inputs, model.get_layer("block_1_output").output)(tokens).numpy()
    np.testing.assert_allclose(pooled, first[:, 0], rtol=1e-6)


def test_image_encoder_cuts_patches():
    model = tfkd.models.build_transformer(
        num_classes=10, image_shape=(28, 28, 1), patch_size=7, width=16, depth=1, heads=2
    )
    assert model.get_layer("patches").output.shape[1:] == (16, 16)
    assert model(np.zeros((2, 28, 28, 1), "float32")).shape == (2, 10)


def test_encoder_config_round_trip():
    model = tiny_text()
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    tokens = np.arange(16, dtype="int32").reshape(2, 8) % 20
    np.testing.assert_allclose(clone(tokens), model(tokens), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, "neither"),
        ({"vocab_size": 9, "sequence_length": 4, "image_shape": (8, 8, 1), "patch_size": 2},
         "both"),
        ({"vocab_size": 9, "sequence_length": 4, "width": 10, "heads": 4}, "multiple of `heads`"),
        ({"image_shape": (8, 8, 1), "patch_size": 3}, "divide"),
    ],
)
def test_build_transformer_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tfkd.models.build_transformer(**kwargs)


def test_shrink_halves_depth_and_copies_every_other_block():
    teacher = tiny_text(depth=4)
    student = tfkd.models.shrink(teacher, depth=2, copy_weights=True)
    assert [n for n in (layer.name for layer in student.layers) if n.endswith("_attention")] == [
        "block_0_attention",
        "block_1_attention",
    ]
    for s_name, t_name in [("block_0_ffn_1", "block_0_ffn_1"), ("block_1_ffn_1", "block_2_ffn_1"),
                           ("block_1_attention", "block_2_attention"), ("embeddings", "embeddings"),
                           ("token_embedding", "token_embedding"), ("logits", "logits")]:
        for s, t in zip(student.get_layer(s_name).get_weights(),
                        teacher.get_layer(t_name).get_weights(), strict=True):
            np.testing.assert_array_equal(s, t)
    assert student.count_params() < teacher.count_params()


def test_shrink_narrower_encoder_has_fresh_weights():
    teacher = tiny_text()
    student = tfkd.models.shrink(teacher, width=0.5)
    assert student.get_layer("embeddings").output.shape[-1] == 8
    assert student.get_layer("block_0_ffn_1").units == 16
    assert student.get_layer("logits").units == 2


def test_shrink_rejects_bad_encoder_arguments():
    teacher = tiny_text()
    with pytest.raises(ValueError, match="copy_weights"):
        tfkd.models.shrink(teacher, width=0.5, copy_weights=True)
    with pytest.raises(ValueError, match="at most the teacher's 2 blocks"):
        tfkd.models.shrink(teacher, depth=3)
    with pytest.raises(ValueError, match="Received: depth="):
        tfkd.models.shrink(tfkd.models.build_teacher(), 0.5, depth=1)


def test_shrink_keeps_the_cnn_behaviour():
    teacher = tfkd.models.build_teacher()
    student = tfkd.models.shrink(teacher, 0.25)
    assert student.get_layer("conv1").filters == 8
    assert student.get_layer("logits").units == 10


# ------------------------------------------------------------------ the generated sentiment task


def test_sentiment_is_deterministic_and_balanced():
    (x1, y1), (xt1, yt1) = tfkd.data.load_sentiment(train_size=200, test_size=50, seed=3)
    (x2, y2), _ = tfkd.data.load_sentiment(train_size=200, test_size=50, seed=3)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert x1.shape == (200, 32) and xt1.shape == (50, 32) and x1.dtype == np.int32
    assert (x1[:, 0] == 1).all()  # [CLS] first
    assert 0.35 < y1.mean() < 0.65
    assert x1.max() < tfkd.data.Tokenizer().vocab_size


def test_sentiment_labels_follow_negation_intensifier_and_but():
    texts, labels = tfkd.data.generate_sentiment(300, seed=1)
    for text, label in zip(texts, labels, strict=True):
        total = 0.0
        for i, clause in enumerate(text.replace(" and ", " | and ").replace(" but ", " | but ")
                                   .split(" | ")):
            words = clause.split()
            score = 1.0 if words[-1] in tfkd.data.text.POSITIVE else -1.0
            score *= -1.0 if {"not", "never"} & set(words) else 1.0
            score *= 2.0 if {"very", "extremely", "so"} & set(words) else 1.0
            total += 3.0 * score if i and words[0] == "but" else score
        assert label == int(total > 0), text
    # Same words, other order, other label: a bag of words cannot solve the task.
    tokenizer = tfkd.data.Tokenizer()
    a, b = tokenizer.encode(["the film was not good but the plot was awful",
                             "the film was good but the plot was not awful"], 12)
    assert sorted(a) == sorted(b) and tokenizer.decode(a).startswith("the film was not")


def test_tokenizer_marks_unknown_words_and_cuts_long_texts():
    ids = tfkd.data.Tokenizer().encode(["the zebra was good and the plot was bad"], 4)
    assert ids.tolist() == [[1, 3, 2, 4]]
    with pytest.raises(ValueError, match="Received: count=0"):
        tfkd.data.generate_sentiment(0)
