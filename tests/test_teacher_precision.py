"""Distiller(teacher_dtype=...): the teacher's forward pass in bfloat16/float16 on a copy."""

import logging

import numpy as np
import pytest
from conftest import build_tiny_student, build_tiny_teacher

import tfkd
from tfkd import keras
from tfkd.schemes.precision import pick_teacher_dtype, resolve_teacher_dtype, teacher_in_precision


def _loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@pytest.fixture
def pair():
    keras.utils.set_random_seed(5)
    return build_tiny_teacher(), build_tiny_student()


def _distil_logs(teacher, student, x, y, teacher_dtype, losses=None):
    distiller = tfkd.Distiller(teacher=teacher, student=student, teacher_dtype=teacher_dtype,
                               distillation_losses=losses)
    distiller.compile(optimizer=keras.optimizers.SGD(0.0), loss=_loss())
    return distiller.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)


def test_copy_computes_in_bfloat16_returns_float32_and_leaves_the_teacher_alone(pair, tiny_data):
    x, _ = tiny_data
    teacher, _ = pair
    before = [w.copy() for w in teacher.get_weights()]
    copy = teacher_in_precision(teacher, "bfloat16")
    assert copy is not teacher
    assert {layer.compute_dtype for layer in copy.layers if layer.name == "t_conv"} == {"bfloat16"}
    assert {layer.dtype_policy.name for layer in teacher.layers} == {"float32"}
    reference, low = teacher(x).numpy(), copy(x)
    assert low.dtype == "float32"
    np.testing.assert_allclose(low.numpy(), reference, atol=0.05 * np.abs(reference).max())
    assert not np.array_equal(low.numpy(), reference)  # it really ran in bfloat16
    for old, new in zip(before, teacher.get_weights(), strict=True):
        assert new.dtype == old.dtype
        np.testing.assert_array_equal(old, new)
    assert teacher_in_precision(teacher, None) is teacher
    assert teacher_in_precision(teacher, "float32") is teacher


def test_distiller_loss_is_close_to_float32_and_fit_trains_the_student(pair, tiny_data):
    x, y = tiny_data
    teacher, student = pair
    exact = _distil_logs(teacher, student, x, y, None)
    low = _distil_logs(teacher, student, x, y, "bfloat16")
    np.testing.assert_allclose(low["distillation_loss"], exact["distillation_loss"], rtol=0.03)
    assert low["distillation_loss"] != exact["distillation_loss"]
    np.testing.assert_allclose(low["student_loss"], exact["student_loss"], rtol=1e-6)

    teacher_weights = [w.copy() for w in teacher.get_weights()]
    student_weights = [w.copy() for w in student.get_weights()]
    distiller = tfkd.Distiller(teacher=teacher, student=student, teacher_dtype="bfloat16")
    assert distiller.teacher is teacher and distiller.teacher_dtype == "bfloat16"
    distiller.compile(optimizer="adam", loss=_loss(), metrics=["accuracy"])
    history = distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert {"loss", "student_loss", "distillation_loss", "accuracy"} <= set(history.history)
    for old, new in zip(teacher_weights, teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    assert any(not np.array_equal(a, b) for a, b in zip(student_weights, student.get_weights(),
                                                         strict=True))
    assert distiller.get_config()["teacher_dtype"] == "bfloat16"


def test_feature_losses_read_inner_layers_of_the_copy(pair, tiny_data):
    x, y = tiny_data
    teacher, _ = pair
    student = build_tiny_teacher(name="same_widths")  # no adapter: nothing random in the loss

    def losses():
        return [tfkd.losses.FeatureDistillation("t_embed", "t_embed"),
                tfkd.losses.RKDDistance("t_conv", "t_conv")]

    exact = _distil_logs(teacher, student, x, y, None, losses())
    low = _distil_logs(teacher, student, x, y, "bfloat16", losses())
    np.testing.assert_allclose(low["distillation_loss"], exact["distillation_loss"], rtol=0.03)
    assert low["distillation_loss"] != exact["distillation_loss"]


def test_ensemble_and_float16(tiny_data):
    x, y = tiny_data
    keras.utils.set_random_seed(6)
    teachers = [build_tiny_teacher(name="a"), build_tiny_teacher(name="b")]
    student = build_tiny_student()
    exact = _distil_logs(teachers, student, x, y, None)
    for dtype in ("bfloat16", "float16"):
        low = _distil_logs(teachers, student, x, y, dtype)
        np.testing.assert_allclose(low["distillation_loss"], exact["distillation_loss"],
                                   rtol=0.03, err_msg=dtype)
    ensemble = teacher_in_precision(tfkd.Ensemble(teachers, weights=[3, 1]), "bfloat16")
    assert isinstance(ensemble, tfkd.Ensemble) and ensemble.member_weights == [0.75, 0.25]
    assert all(not m.trainable for m in teachers)


def test_cache_teacher_outputs_in_bfloat16(pair, tiny_data):
    x, y = tiny_data
    teacher, student = pair
    exact = tfkd.cache_teacher_outputs(teacher, x, verbose=0)
    low = tfkd.cache_teacher_outputs(teacher, x, verbose=0, teacher_dtype="bfloat16")
    stored, reference = low.logits(), exact.logits()
    assert stored.dtype == np.float32 and low.teacher is teacher
    np.testing.assert_allclose(stored, reference, atol=0.05 * np.abs(reference).max())
    assert not np.array_equal(stored, reference)
    distiller = tfkd.Distiller(teacher=low, student=student, teacher_dtype="bfloat16")
    distiller.compile(optimizer="adam", loss=_loss())
    history = distiller.fit(low.dataset(x, y).batch(16), epochs=1, verbose=0,
                            validation_data=(x, y))
    assert np.isfinite(history.history["val_loss"][0])


@pytest.mark.parametrize(
    "bad, error", [("int8", ValueError), ("BF16", ValueError), (16, TypeError)]
)
def test_rejects_bad_teacher_dtype(pair, bad, error):
    teacher, student = pair
    with pytest.raises(error, match=f"Received: teacher_dtype={bad!r}"):
        tfkd.Distiller(teacher=teacher, student=student, teacher_dtype=bad)
    with pytest.raises(error, match="Received: teacher_dtype="):
        tfkd.cache_teacher_outputs(teacher, np.zeros((2, 8, 8, 1), "float32"), teacher_dtype=bad)


def test_ema_teacher_is_refused(pair):
    _, student = pair
    with pytest.raises(ValueError, match="EMATeacher.*Received: teacher_dtype='bfloat16'"):
        tfkd.Distiller(teacher=tfkd.EMATeacher(student), student=student,
                       teacher_dtype="bfloat16")


def test_auto_picks_from_the_hardware_and_says_what(caplog):
    assert pick_teacher_dtype(cpu_flags={"avx2", "avx512_bf16"}, gpus=[])[0] == "bfloat16"
    assert pick_teacher_dtype(cpu_flags={"amx_bf16"}, gpus=[])[0] == "bfloat16"
    assert pick_teacher_dtype(cpu_flags={"avx2"}, gpus=[])[0] == "float32"
    assert pick_teacher_dtype(cpu_flags=set(), gpus=[("A100", (8, 0))])[0] == "bfloat16"
    assert pick_teacher_dtype(cpu_flags=set(), gpus=[("T4", (7, 5))])[0] == "float16"
    with caplog.at_level(logging.WARNING):
        picked = resolve_teacher_dtype("auto")
    assert picked == pick_teacher_dtype()[0]
    assert f"teacher_dtype='auto' runs the teacher in {picked}" in caplog.text
