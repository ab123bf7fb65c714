"""A `tfkd.Distiller` saves and loads: config round trip, `.keras` files through
`tfkd.load_model`, `ModelCheckpoint(save_weights_only=False)`, and training that continues."""

import numpy as np
import pytest

import tfkd
from tfkd import keras

SCCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _keras3_distiller(make_teacher, make_student, optimizer="adam"):
    distiller = tfkd.Distiller(
        teacher=make_teacher(),
        student=make_student(),
        distillation_losses=[
            tfkd.losses.LogitsDistillation(temperature=2.0),
            tfkd.losses.FeatureDistillation("t_embed", "s_embed"),  # 8 -> 16: a Dense adapter
        ],
        distillation_loss_weights=[0.3, 0.7],
        student_loss_weight=0.4,
    )
    distiller.compile(optimizer=optimizer, loss=SCCE, metrics=["accuracy"])
    return distiller


def _keras_io_distiller(make_teacher, make_student):
    distiller = tfkd.Distiller(student=make_student(), teacher=make_teacher())
    distiller.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        metrics=["accuracy"],
        student_loss_fn=SCCE,
        distillation_loss_fn=keras.losses.KLDivergence(),
        alpha=0.3,
        temperature=4.0,
    )
    return distiller


def _logs(distiller, x, y):
    return distiller.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)


def test_distiller_is_registered_and_its_config_round_trips(make_teacher, make_student):
    assert keras.utils.get_registered_name(tfkd.Distiller) == "tfkd>Distiller"
    distiller = _keras3_distiller(make_teacher, make_student)
    config = distiller.get_config()
    assert config["distillation_loss_weights"] == [0.3, 0.7]
    assert config["student_loss_weight"] == 0.4
    again = tfkd.Distiller.from_config(config)
    assert again.get_config() == config
    assert [type(loss) for loss in again.distillation_losses] == [
        tfkd.losses.LogitsDistillation, tfkd.losses.FeatureDistillation
    ]
    assert again.teacher is not distiller.teacher and again.teacher.name == "tiny_teacher"
    assert [layer.name for layer in again.student.layers] == [
        layer.name for layer in distiller.student.layers
    ]


def test_keras_io_idiom_saves_and_loads_with_its_compile_arguments(
    make_teacher, make_student, tiny_data, tmp_path
):
    """`student_loss_fn`, `distillation_loss_fn`, `alpha` and `temperature` come back: the loaded
    distiller reports the same three losses as the saved one."""
    x, y = tiny_data
    distiller = _keras_io_distiller(make_teacher, make_student)
    distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
    path = tmp_path / "distiller.keras"
    distiller.save(path)
    loaded = tfkd.load_model(path)
    assert isinstance(loaded, tfkd.Distiller)
    assert loaded.student_loss_weight == pytest.approx(0.3)
    assert loaded.distillation_losses[0].temperature == 4.0
    for a, b in zip(distiller.student.get_weights(), loaded.student.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    saved, again = _logs(distiller, x, y), _logs(loaded, x, y)
    for key in ("loss", "student_loss", "distillation_loss", "accuracy"):
        np.testing.assert_allclose(again[key], saved[key], rtol=1e-6)
    # The keras.io idiom's config holds no compile-derived loss: constructor arguments only.
    assert loaded.get_config()["distillation_losses"] is None


def test_summary_works_after_fit(make_teacher, make_student, tiny_data):
    x, y = tiny_data
    distiller = _keras3_distiller(make_teacher, make_student)
    distiller.fit(x, y, batch_size=32, epochs=1, verbose=0)
    lines = []
    distiller.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "tiny_student" in text and "tiny_teacher" in text
    assert "Trainable params" in text


def test_model_checkpoint_then_load_model_continues_to_the_same_weights(
    make_teacher, make_student, tiny_data, tmp_path
):
    """Two epochs, a full `.keras` checkpoint, `tfkd.load_model`, two more epochs: the student
    (and the FeatureDistillation adapter, and Adam's moments) end where four uninterrupted
    epochs end."""
    x, y = tiny_data
    fit_kwargs = {"batch_size": 16, "shuffle": False, "verbose": 0}

    def fresh():
        keras.utils.set_random_seed(3)
        return _keras3_distiller(make_teacher, make_student, keras.optimizers.Adam(1e-2))

    reference = fresh()
    reference.fit(x, y, epochs=4, **fit_kwargs)

    path = str(tmp_path / "checkpoint.keras")
    first = fresh()
    checkpoint = keras.callbacks.ModelCheckpoint(path, save_weights_only=False)
    first.fit(x, y, epochs=2, callbacks=checkpoint, **fit_kwargs)
    resumed = tfkd.load_model(path)
    assert int(resumed.optimizer.iterations) == 2 * 4
    resumed.fit(x, y, epochs=4, initial_epoch=2, **fit_kwargs)

    pairs = zip(reference.student.get_weights(), resumed.student.get_weights(), strict=True)
    for a, b in pairs:
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    adapters = zip(reference.adapters[0].get_weights(), resumed.adapters[0].get_weights(),
                   strict=True)
    for a, b in adapters:
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    lines = []
    resumed.summary(print_fn=lines.append)
    assert "tiny_student" in "\n".join(lines)


def test_a_pruned_student_and_the_default_loss_load_and_keep_training(
    make_teacher, make_student, tiny_data, tmp_path
):
    """Keras 3's idiom with no constructor losses (the default LogitsDistillation comes from
    `compile`) and a TF-MOT-pruned student: the same losses after loading, and it trains on."""
    x, y = tiny_data
    distiller = tfkd.Distiller(
        teacher=make_teacher(), student=tfkd.prune(make_student(), target_sparsity=0.5)
    )
    distiller.compile(optimizer="adam", loss=SCCE)
    distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
    distiller.save(tmp_path / "pruned.keras")
    loaded = tfkd.load_model(tmp_path / "pruned.keras")
    assert loaded.get_config()["distillation_losses"] is None
    assert [type(loss) for loss in loaded.distillation_losses] == [tfkd.losses.LogitsDistillation]
    saved, again = _logs(distiller, x, y), _logs(loaded, x, y)
    for key in ("loss", "student_loss", "distillation_loss"):
        np.testing.assert_allclose(again[key], saved[key], rtol=1e-6)
    loaded.fit(x, y, batch_size=16, epochs=1, verbose=0)


@pytest.mark.parametrize("name", ["distiller", "distiller.h5", "distiller.tf"])
def test_formats_that_cannot_hold_a_distiller_are_refused(make_teacher, make_student, tmp_path,
                                                          name):
    distiller = _keras3_distiller(make_teacher, make_student)
    with pytest.raises(ValueError, match=r"saves as a `.keras` file.*Received: filepath="):
        distiller.save(str(tmp_path / name))
    assert list(tmp_path.iterdir()) == []
