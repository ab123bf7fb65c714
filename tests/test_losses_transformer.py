"""`HiddenStateDistillation` and `AttentionDistillation`: values, maps, configs, errors, fit."""

import numpy as np
import pytest

import tfkd
from tfkd import keras
from tfkd.losses.transformer import uniform_layer_map


def encoder(depth=2, width=16, name="encoder"):
    return tfkd.models.build_transformer(
        vocab_size=20, sequence_length=8, width=width, depth=depth, heads=2, ffn_units=32,
        name=name,
    )


def user_encoder(name="user"):
    """An encoder written by hand, with its own layer names (not tfkd's reference layout)."""
    inputs = keras.Input((8,), dtype="int32")
    h = keras.layers.Embedding(20, 8, name="emb")(inputs)
    a = keras.layers.MultiHeadAttention(1, 8, name="attn")(h, h)
    h = keras.layers.LayerNormalization(name="norm")(keras.layers.Add(name="res")([h, a]))
    outputs = keras.layers.Dense(2, name="head")(keras.layers.GlobalAveragePooling1D()(h))
    return keras.Model(inputs, outputs, name=name)


TOKENS = np.random.default_rng(0).integers(0, 20, size=(16, 8)).astype("int32")
LABELS = np.random.default_rng(1).integers(0, 2, size=16)


@pytest.mark.parametrize(
    "n, m, expected",
    [(4, 2, [(1, 0), (3, 1)]), (6, 3, [(1, 0), (3, 1), (5, 2)]), (5, 2, [(1, 0), (4, 1)]),
     (3, 3, [(0, 0), (1, 1), (2, 2)])],
)
def test_uniform_map_reads_teacher_block_i_plus_one_times_n_over_m_minus_one(n, m, expected):
    assert uniform_layer_map(n, m) == expected
    loss = tfkd.losses.HiddenStateDistillation([f"t{i}" for i in range(n)],
                                               [f"s{i}" for i in range(m)])
    assert loss.layer_pairs == [(f"t{t}", f"s{s}") for t, s in expected]


def test_hidden_state_mse_and_cosine_by_hand():
    teacher = np.array([[[1.0, 2.0], [3.0, 4.0]]], "float32")
    student = np.zeros_like(teacher)
    mse = tfkd.losses.HiddenStateDistillation(["t"], ["s"])
    assert float(mse(teacher, student)) == pytest.approx((2.5 + 12.5) / 2)
    cosine = tfkd.losses.HiddenStateDistillation(["t"], ["s"], loss="cosine")
    t = np.array([[[1.0, 0.0], [1.0, 1.0]]], "float32")
    s = np.array([[[0.0, 1.0], [2.0, 2.0]]], "float32")
    assert float(cosine(t, s)) == pytest.approx(0.5, abs=1e-6)  # (1 + 0) / 2 positions
    two = tfkd.losses.HiddenStateDistillation(["a", "b"], ["x", "y"])
    assert float(two([teacher, teacher], [student, teacher])) == pytest.approx(7.5)


def test_hidden_state_projection_when_widths_differ():
    loss = tfkd.losses.HiddenStateDistillation(["t"], ["s"])
    value = loss(np.ones((2, 3, 8), "float32"), np.ones((2, 3, 4), "float32"))
    assert np.isfinite(float(value))
    (projection,) = loss.trainable_layers
    assert projection.output_shape == (None, 3, 8) or projection.output_shape[-1] == 8


def test_attention_mse_kl_and_head_mean_by_hand():
    teacher = np.array([[[[0.5, 0.5], [1.0, 0.0]]]], "float32")  # (1, 1 head, 2, 2)
    student = np.array([[[[1.0, 0.0], [1.0, 0.0]]]], "float32")
    mse = tfkd.losses.AttentionDistillation(["t"], ["s"])
    assert float(mse(teacher, student)) == pytest.approx(0.125)
    kl = tfkd.losses.AttentionDistillation(["t"], ["s"], loss="kl")
    student = np.array([[[[0.25, 0.75], [0.5, 0.5]]]], "float32")
    expected = (0.5 * np.log(2) + 0.5 * np.log(2 / 3) + np.log(2)) / 2
    assert float(kl(teacher, student)) == pytest.approx(expected, rel=1e-5)
    # Two teacher heads against one student head: both averaged over heads first.
    two_heads = np.concatenate([teacher, teacher[..., ::-1]], axis=1)
    heads_mean = np.full((1, 1, 2, 2), 0.5, "float32")
    assert float(mse(two_heads, heads_mean)) == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("cls", [tfkd.losses.HiddenStateDistillation,
                                 tfkd.losses.AttentionDistillation])
def test_config_round_trip(cls):
    loss = cls(["a", "b", "c"], ["x", "y"], layer_map=[(0, 0), (2, 1)], name="mine")
    restored = tfkd.losses.deserialize(tfkd.losses.serialize(loss))
    assert type(restored) is cls and restored.get_config() == loss.get_config()
    assert restored.layer_pairs == loss.layer_pairs


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"teacher_layers": [], "student_layers": ["s"]}, TypeError, "Received: teacher_layers="),
        ({"teacher_layers": ["t"], "student_layers": ["a", "b"]}, ValueError, "more layers"),
        ({"teacher_layers": ["t", "u"], "student_layers": ["a", "b"], "layer_map": [(0, 0)]},
         ValueError, "every one of the 2 student_layers"),
        ({"teacher_layers": ["t"], "student_layers": ["a"], "layer_map": [(3, 0)]},
         ValueError, "outside 0..0"),
        ({"teacher_layers": ["t"], "student_layers": ["a"], "layer_map": "first"},
         TypeError, "Received: layer_map='first'"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    for cls in (tfkd.losses.HiddenStateDistillation, tfkd.losses.AttentionDistillation):
        with pytest.raises(error, match=match):
            cls(**kwargs)


def test_attention_scores_are_those_of_the_models_own_layer():
    model = encoder()
    key = tfkd.losses.transformer.AttentionScores("block_1_attention")
    reader = keras.Model(model.inputs, key.tap(model))
    hidden = keras.Model(model.inputs, model.get_layer("block_0_output").output)(TOKENS[:2])
    _, expected = model.get_layer("block_1_attention")(hidden, hidden,
                                                        return_attention_scores=True)
    np.testing.assert_allclose(reader(TOKENS[:2]), expected, rtol=1e-5, atol=1e-6)


def test_distiller_errors_name_the_layer_that_is_missing_or_not_attention():
    teacher, student = encoder(), encoder(depth=1, name="student")
    with pytest.raises(ValueError, match="not_there"):
        tfkd.Distiller(teacher=teacher, student=student, distillation_losses=[
            tfkd.losses.AttentionDistillation(["block_0_attention"], ["not_there"])])
    with pytest.raises(ValueError, match="reads `MultiHeadAttention`.*block_0_output"):
        tfkd.Distiller(teacher=teacher, student=student, distillation_losses=[
            tfkd.losses.AttentionDistillation(["block_0_output"], ["block_0_attention"])])
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        tfkd.Distiller(teacher=teacher, student=student, distillation_losses=[
            tfkd.losses.HiddenStateDistillation(["block_0_output"], ["nope"])])


def test_tinybert_objective_trains_a_narrower_user_built_student():
    teacher = encoder()
    student = user_encoder()
    frozen = [w.copy() for w in teacher.get_weights()]
    losses = [
        tfkd.losses.HiddenStateDistillation(["embeddings", "block_1_output"], ["emb", "norm"],
                                            layer_map=[(0, 0), (1, 1)]),
        tfkd.losses.AttentionDistillation(["block_0_attention", "block_1_attention"], ["attn"]),
        tfkd.losses.LogitsDistillation(temperature=2.0),
    ]
    distiller = tfkd.Distiller(teacher=teacher, student=student, distillation_losses=losses)
    assert len(distiller.adapters) == 2  # width 8 -> 16 projections, one per pair
    distiller.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(True),
                      metrics=["accuracy"])
    before = [w.numpy().copy() for w in distiller.adapters[0].weights]
    history = distiller.fit(TOKENS, LABELS, epochs=1, batch_size=8, verbose=0)
    assert {"loss", "student_loss", "distillation_loss"} <= set(history.history)
    assert np.isfinite(history.history["distillation_loss"][0])
    for w, f in zip(teacher.get_weights(), frozen, strict=True):
        np.testing.assert_array_equal(w, f)
    assert any(not np.allclose(b, a.numpy()) for b, a in
               zip(before, distiller.adapters[0].weights, strict=True))


@pytest.mark.slow
def test_distilbert_objective_on_half_depth_student():
    teacher = encoder(depth=2)
    student = tfkd.models.shrink(teacher, depth=1, copy_weights=True)
    losses = [tfkd.losses.LogitsDistillation(temperature=2.0),
              tfkd.losses.HiddenStateDistillation(["block_1_output"], ["block_0_output"],
                                                  loss="cosine")]
    distiller = tfkd.Distiller(teacher=teacher, student=student, distillation_losses=losses,
                               student_loss_weight=0.5)
    distiller.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(True))
    history = distiller.fit(TOKENS, LABELS, epochs=1, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert distiller.adapters == []  # same width: no projection
