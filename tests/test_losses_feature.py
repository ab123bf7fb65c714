"""FeatureDistillation (FitNets hints, adapters) and AttentionTransfer, alone and in a Distiller."""

import numpy as np
import pytest

import tfkd
from tfkd import keras

L = tfkd.losses


@pytest.fixture(scope="module")
def maps():
    rng = np.random.default_rng(0)
    return rng.normal(size=(2, 4, 4, 8)).astype("float32"), rng.normal(size=(2, 8, 8, 3)).astype(
        "float32"
    )


# ---------------------------------------------------------------------------- FeatureDistillation


def test_feature_distillation_values_by_hand():
    teacher = np.array([[1.0, 2.0, 3.0, 4.0]], "float32")
    student = np.array([[1.0, 0.0, 3.0, 8.0]], "float32")
    # differences 0, -2, 0, 4: mse (0 + 4 + 0 + 16) / 4 = 5, l1 (2 + 4) / 4 = 1.5.
    assert float(L.FeatureDistillation("t", "s")(teacher, student)) == pytest.approx(5.0)
    assert float(L.FeatureDistillation("t", "s", loss="l1")(teacher, student)) == pytest.approx(1.5)
    cosine = L.FeatureDistillation("t", "s", loss="cosine")
    assert float(cosine(teacher, 3.0 * teacher)) == pytest.approx(0.0, abs=1e-6)
    assert float(cosine(teacher, -teacher)) == pytest.approx(2.0)
    same = L.FeatureDistillation("t", "s")
    assert float(same(teacher, teacher)) == 0.0
    assert same.trainable_layers == []  # equal shapes: no adapter


@pytest.mark.parametrize(
    "teacher_shape, student_shape, kinds",
    [
        ((2, 4, 4, 8), (2, 4, 4, 3), ["Conv2D"]),
        ((2, 4, 4, 8), (2, 8, 8, 3), ["Conv2D", "AveragePooling2D"]),
        ((2, 4, 4, 8), (2, 3, 3, 8), ["Conv2D", "Resizing"]),
        ((2, 16), (2, 5), ["Dense"]),
        ((2, 16), (2, 4, 4, 3), ["Flatten", "Dense"]),
    ],
)
def test_auto_adapter_matches_shapes(teacher_shape, student_shape, kinds):
    rng = np.random.default_rng(1)
    loss = L.FeatureDistillation("t", "s")
    teacher = rng.normal(size=teacher_shape).astype("float32")
    value = loss(teacher, rng.normal(size=student_shape).astype("float32"))
    assert np.isfinite(float(value))
    (adapter,) = loss.trainable_layers
    assert [type(layer).__name__ for layer in adapter.layers] == kinds
    assert adapter.output_shape[1:] == teacher_shape[1:]


def test_no_adapter_with_different_shapes_names_both(maps):
    teacher, student = maps
    with pytest.raises(ValueError, match=r"teacher 't' shape=\(2, 4, 4, 8\).*\(2, 8, 8, 3\)"):
        L.FeatureDistillation("t", "s", adapter=None)(teacher, student)


def test_unadaptable_shapes_are_an_error():
    with pytest.raises(ValueError, match=r"Received: teacher shape=\(None, 4, 4, 8\)"):
        L.FeatureDistillation("t", "s").build((None, 4, 4, 8), (None, 16))


def test_custom_adapter_layer_is_used_and_serialized(maps):
    teacher, student = maps
    adapter = keras.Sequential([keras.layers.Conv2D(8, 2, strides=2)])
    loss = L.FeatureDistillation("t", "s", adapter=adapter, loss="l1")
    assert np.isfinite(float(loss(teacher, student)))
    assert loss.trainable_layers == [adapter]
    rebuilt = L.deserialize(L.serialize(loss))
    assert isinstance(rebuilt.adapter, keras.Sequential)
    assert rebuilt.get_config() == loss.get_config()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"loss": "huber"}, ValueError, "Received: loss='huber'"),
        ({"adapter": "conv"}, TypeError, "Received: adapter='conv'"),
        ({"teacher_layer": 3}, TypeError, "Received: teacher_layer=3"),
    ],
)
def test_feature_distillation_rejects_bad_arguments(kwargs, error, match):
    arguments = {"teacher_layer": "t", "student_layer": "s", **kwargs}
    with pytest.raises(error, match=match):
        L.FeatureDistillation(**arguments)


# ------------------------------------------------------------------------------ AttentionTransfer


def test_attention_transfer_by_hand():
    # Teacher attention all on one of 4 positions -> [1, 0, 0, 0]; student uniform -> [.5] * 4.
    # Squared distance: .25 + 3 * .25 = 1. A 4x4 uniform student map is pooled to 2x2 first.
    teacher = np.zeros((1, 2, 2, 3), "float32")
    teacher[0, 0, 0] = 2.0
    loss = L.AttentionTransfer([("t", "s")])
    assert float(loss(teacher, np.ones((1, 2, 2, 5), "float32"))) == pytest.approx(1.0, rel=1e-5)
    assert float(loss(teacher, np.ones((1, 4, 4, 1), "float32"))) == pytest.approx(1.0, rel=1e-5)
    assert float(loss(teacher, np.ones((1, 3, 3, 1), "float32"))) == pytest.approx(1.0, rel=1e-5)


def test_attention_transfer_sums_pairs_and_ignores_scale(maps):
    teacher, student = maps
    loss = L.AttentionTransfer([("a", "b"), ("c", "d")], p=2)
    assert float(loss([teacher, teacher], [3.0 * teacher, teacher])) == pytest.approx(0, abs=1e-6)
    single = float(L.AttentionTransfer([("a", "b")])(teacher, student))
    assert float(loss([teacher, teacher], [student, student])) == pytest.approx(2 * single, 1e-5)
    assert loss.layer_pairs == [("a", "b"), ("c", "d")]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"pairs": []}, TypeError, r"Received: pairs=\[\]"),
        ({"pairs": [("a",)]}, TypeError, r"Received: \('a',\)"),
        ({"pairs": [("a", "b")], "p": 0}, ValueError, "Received: p=0"),
    ],
)
def test_attention_transfer_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        L.AttentionTransfer(**kwargs)


def test_attention_transfer_needs_feature_maps():
    with pytest.raises(ValueError, match=r"student 's' shape=\(None, 16\)"):
        L.AttentionTransfer([("t", "s")]).build((None, 4, 4, 8), (None, 16))


@pytest.mark.parametrize(
    "loss",
    [
        L.FeatureDistillation("t", "s", adapter=None, loss="cosine"),
        L.AttentionTransfer([("a", "b")]),
    ],
    ids=lambda loss: type(loss).__name__,
)
def test_config_round_trip(loss):
    rebuilt = L.deserialize(L.serialize(loss))
    assert type(rebuilt) is type(loss)
    assert rebuilt.get_config() == loss.get_config()
    assert rebuilt.layer_pairs == loss.layer_pairs


# ------------------------------------------------------------------------------ in a Distiller


def test_feature_losses_fit_and_adapters_train(make_teacher, make_student, tiny_data):
    x, y = tiny_data
    teacher, student = make_teacher(), make_student()
    teacher_before = [w.copy() for w in teacher.get_weights()]
    hint_map = L.FeatureDistillation("t_conv", "s_conv")  # 8 vs 4 channels: 1x1 conv adapter
    hint_vector = L.FeatureDistillation("t_embed", "s_embed", loss="cosine")  # dense adapter
    attention = L.AttentionTransfer([("t_conv", "s_conv")])
    distiller = tfkd.Distiller(
        teacher=teacher,
        student=student,
        distillation_losses=[L.LogitsDistillation(), hint_map, hint_vector, attention],
    )
    adapters = hint_map.trainable_layers + hint_vector.trainable_layers
    assert len(adapters) == 2 and len(distiller.adapters) == 2
    adapter_before = [w.copy() for a in adapters for w in a.get_weights()]
    distiller.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(True),
                      metrics=["accuracy"])
    history = distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert {"loss", "student_loss", "distillation_loss", "accuracy"} <= set(history.history)
    for old, new in zip(teacher_before, teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    adapter_after = [w for a in adapters for w in a.get_weights()]
    assert all(not np.array_equal(a, b) for a, b in zip(adapter_before, adapter_after, strict=True))
    # The adapters are the distiller's, never the student's.
    student_variables = {id(v) for v in distiller.student.variables}
    assert not any(id(v) in student_variables for a in adapters for v in a.variables)
    assert [type(layer) for layer in distiller.student.layers] == [
        type(layer) for layer in make_student().layers
    ]
    assert distiller.student.count_params() == make_student().count_params()


def test_wrong_layer_name_lists_the_layers(make_teacher, make_student):
    with pytest.raises(ValueError, match=r"no layer named 's_nope'.*'s_conv'"):
        tfkd.Distiller(
            teacher=make_teacher(),
            student=make_student(),
            distillation_losses=[L.FeatureDistillation("t_conv", "s_nope")],
        )


def test_no_adapter_mismatch_fails_at_construction(make_teacher, make_student):
    with pytest.raises(ValueError, match=r"\(None, 8, 8, 8\).*\(None, 8, 8, 4\)"):
        tfkd.Distiller(
            teacher=make_teacher(),
            student=make_student(),
            distillation_losses=[L.FeatureDistillation("t_conv", "s_conv", adapter=None)],
        )


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__(name="subclassed")
        self.conv = keras.layers.Conv2D(4, 3, name="conv")
        self.head = keras.layers.Dense(10)

    def call(self, inputs):
        return self.head(keras.layers.Flatten()(self.conv(inputs)))


def test_subclassed_model_asked_for_features_says_use_functional(make_teacher):
    with pytest.raises(ValueError, match="Functional or Sequential"):
        tfkd.Distiller(
            teacher=make_teacher(),
            student=_Subclassed(),
            distillation_losses=[L.AttentionTransfer([("t_conv", "conv")])],
        )
