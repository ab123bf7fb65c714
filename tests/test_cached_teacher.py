"""tfkd.cache_teacher_outputs / tfkd.CachedTeacher: distillation from stored teacher outputs."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import build_tiny_student, build_tiny_teacher

import tfkd
from tfkd import keras


@pytest.fixture(scope="module")
def teacher():
    keras.utils.set_random_seed(1)
    return build_tiny_teacher()


@pytest.fixture(scope="module")
def cached(teacher, tiny_data):
    return tfkd.cache_teacher_outputs(teacher, tiny_data, batch_size=24, verbose=0)


def _loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _distiller(teacher, seed=2, lr=0.0):
    keras.utils.set_random_seed(seed)
    distiller = tfkd.Distiller(teacher=teacher, student=build_tiny_student())
    distiller.compile(optimizer=keras.optimizers.SGD(lr), loss=_loss(), metrics=["accuracy"])
    return distiller


def test_cache_holds_the_teachers_logits(cached, teacher, tiny_data):
    x, _ = tiny_data
    assert (cached.num_samples, cached.num_classes, cached.top_k) == (64, 10, None)
    assert cached.output_shape == (None, 10)
    np.testing.assert_allclose(cached.logits(), teacher(x).numpy(), atol=1e-5)


def test_cached_and_live_teacher_give_the_same_loss_at_learning_rate_zero(
    cached, teacher, tiny_data
):
    x, y = tiny_data
    live = _distiller(teacher).fit(x, y, batch_size=16, shuffle=False, epochs=1, verbose=0)
    from_cache = _distiller(cached).fit(cached.dataset(x, y).batch(16), epochs=1, verbose=0)
    assert set(from_cache.history) == set(live.history)
    for key in ("loss", "student_loss", "distillation_loss", "accuracy"):
        np.testing.assert_allclose(from_cache.history[key], live.history[key], rtol=1e-5)


def test_dataset_keeps_outputs_with_their_samples_through_shuffling(cached, teacher, tiny_data):
    x, y = tiny_data
    dataset = cached.dataset(x, y)
    inputs_spec, labels_spec = dataset.element_spec  # Keras's (x, y): outputs travel by name in x
    assert set(inputs_spec) == {"x", "teacher_outputs"} and inputs_spec["x"].shape == (8, 8, 1)
    assert labels_spec.shape == ()
    for inputs, by in dataset.shuffle(64, seed=0).batch(20).take(2):
        bx, bt = inputs["x"], inputs["teacher_outputs"]
        np.testing.assert_allclose(bt.numpy(), teacher(bx).numpy(), atol=1e-5)
        rows = [int(np.flatnonzero((x == row).all(axis=(1, 2, 3)))[0]) for row in bx.numpy()]
        np.testing.assert_array_equal(by.numpy(), y[rows])


def test_top_k_stores_k_logits_and_a_flat_tail_with_the_exact_tail_mass():
    logits = np.array([[4.0, 1.0, 3.0, 0.0, -1.0, 2.0]], np.float32)
    identity = keras.Sequential([keras.Input((6,)), keras.layers.Activation("linear")])
    cached = tfkd.cache_teacher_outputs(identity, logits, top_k=2, verbose=0)
    rebuilt = cached.logits()[0]
    tail = np.log(np.exp([1.0, 0.0, -1.0, 2.0]).sum()) - np.log(4.0)
    np.testing.assert_allclose(rebuilt, [4.0, tail, 3.0, tail, tail, tail], rtol=1e-6)
    p_true, p_rebuilt = tf.nn.softmax(logits[0]).numpy(), tf.nn.softmax(rebuilt).numpy()
    np.testing.assert_allclose(p_rebuilt[[0, 2]], p_true[[0, 2]], rtol=1e-5)  # exact top k
    np.testing.assert_allclose(p_rebuilt[[1, 3, 4, 5]].sum(), p_true[[1, 3, 4, 5]].sum(), rtol=1e-5)


def test_top_k_cuts_memory_and_trains(teacher, tiny_data):
    x, y = tiny_data
    full = tfkd.cache_teacher_outputs(teacher, x, verbose=0)
    top1 = tfkd.cache_teacher_outputs(teacher, x, top_k=1, verbose=0)
    assert full.nbytes == 64 * 10 * 4 and top1.nbytes == 64 * 3 * 4  # C / (2k + 1)
    np.testing.assert_array_equal(top1.logits().argmax(-1), full.logits().argmax(-1))
    history = _distiller(top1, lr=0.01).fit(top1.dataset(x, y).batch(32), epochs=1, verbose=0)
    assert np.isfinite(history.history["distillation_loss"][0])


def test_attach_with_sample_weights_trains_like_a_live_teacher(cached, teacher, tiny_data):
    x, y = tiny_data
    weights = np.linspace(0.0, 1.0, 64).astype("float32")
    source = tf.data.Dataset.from_tensor_slices((x, y, weights))
    attached = cached.attach(source)
    assert len(attached.element_spec) == 3  # (x with the outputs, y, sample_weight)
    first = next(iter(attached))
    np.testing.assert_allclose(first[0]["teacher_outputs"].numpy(), cached.logits()[0])
    assert float(first[2]) == 0.0
    history = _distiller(cached, lr=0.0).fit(attached.batch(16), epochs=1, verbose=0)
    live = _distiller(teacher, lr=0.0).fit(
        x, y, sample_weight=weights, batch_size=16, shuffle=False, epochs=1, verbose=0
    )
    for key in ("loss", "student_loss", "distillation_loss", "accuracy"):
        np.testing.assert_allclose(history.history[key], live.history[key], rtol=1e-5)


def test_sample_weights_in_evaluate_and_validation_match_a_live_teacher(cached, teacher, tiny_data):
    """`evaluate(x, y, sample_weight=w)` and `validation_data=(x, y, w)` read `w` as weights,
    never as teacher outputs, with a cached teacher exactly as with a live one; at batch size 10,
    the number of classes, where a third tuple slot of weights looked like teacher outputs."""
    x, y = tiny_data
    batch_size = 10
    weights = np.linspace(0.0, 2.0, 64).astype("float32")
    kwargs = {"sample_weight": weights, "batch_size": batch_size, "verbose": 0}
    from_cache = _distiller(cached).evaluate(x, y, return_dict=True, **kwargs)
    live = _distiller(teacher).evaluate(x, y, return_dict=True, **kwargs)
    assert from_cache == pytest.approx(live, rel=1e-5)

    validation = {"validation_data": (x, y, weights), "validation_batch_size": batch_size}
    from_cache = _distiller(cached).fit(
        cached.dataset(x, y).batch(16), epochs=1, verbose=0, **validation
    )
    live = _distiller(teacher).fit(x, y, batch_size=16, epochs=1, verbose=0, **validation)
    for key in ("val_loss", "val_student_loss", "val_distillation_loss", "val_accuracy"):
        np.testing.assert_allclose(from_cache.history[key], live.history[key], rtol=1e-5)


def test_val_loss_is_the_training_objective(cached, tiny_data):
    """On the training data at learning rate 0, `val_loss` is `loss`: the same weighted sum of the
    student's and the distillation loss (not the student's term alone)."""
    x, y = tiny_data
    history = _distiller(cached).fit(
        cached.dataset(x, y).batch(64), validation_data=(x, y), epochs=1, verbose=0
    ).history
    for key in ("loss", "student_loss", "distillation_loss"):
        np.testing.assert_allclose(history[f"val_{key}"], history[key], rtol=1e-5)
    assert history["distillation_loss"][0] > 0.0


def test_a_loaded_cache_evaluates_with_the_teacher_given_or_refuses(cached, teacher, tiny_data,
                                                                    tmp_path):
    x, y = tiny_data
    path = cached.save(tmp_path / "cache.npz")
    without = _distiller(tfkd.CachedTeacher.load(path))
    with pytest.raises(ValueError, match=r"CachedTeacher.load\(path, teacher=teacher\)"):
        without.evaluate(x, y, verbose=0)
    with pytest.raises(ValueError, match="teacher=teacher"):
        without.fit(cached.dataset(x, y).batch(16), validation_data=(x, y), epochs=1, verbose=0)
    assert without.evaluate(cached.dataset(x, y).batch(16), verbose=0)  # outputs carried: fine
    with_teacher = _distiller(tfkd.CachedTeacher.load(path, teacher=teacher))
    logs = with_teacher.evaluate(x, y, verbose=0, return_dict=True)
    live = _distiller(teacher).evaluate(x, y, verbose=0, return_dict=True)
    assert logs == pytest.approx(live, rel=1e-5)
    np.testing.assert_allclose(
        with_teacher.predict(cached.dataset(x, y).batch(16), verbose=0),
        with_teacher.student.predict(x, verbose=0),
    )


def test_a_cache_built_from_a_dataset_matches_the_same_arrays(teacher, tiny_data):
    x, y = tiny_data
    from_dataset = tfkd.cache_teacher_outputs(
        teacher, tf.data.Dataset.from_tensor_slices((x, y)), batch_size=10, verbose=0
    )
    from_arrays = tfkd.cache_teacher_outputs(teacher, (x, y), batch_size=64, verbose=0)
    assert from_dataset.fingerprint == from_arrays.fingerprint
    np.testing.assert_allclose(from_dataset.logits(), from_arrays.logits(), atol=1e-5)


def test_save_and_load_round_trip(cached, teacher, tiny_data, tmp_path):
    x, y = tiny_data
    top2 = tfkd.cache_teacher_outputs(teacher, x, top_k=2, verbose=0)
    for original in (cached, top2):
        path = original.save(tmp_path / f"cache_{original.top_k}.npz")
        loaded = tfkd.CachedTeacher.load(path)
        assert (loaded.fingerprint, loaded.top_k) == (original.fingerprint, original.top_k)
        np.testing.assert_array_equal(loaded.logits(), original.logits())
        loaded.dataset(x, y)  # still recognizes its data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache_2.npz", "cache_None.npz"]
    # The config describes the cache (a Distiller's config holds it); outputs go through save.
    assert top2.get_config() == {
        "name": "cached_tiny_teacher", "num_samples": 64, "num_classes": 10, "top_k": 2,
        "fingerprint": top2.fingerprint,
    }
    distiller_config = tfkd.Distiller(teacher=top2, student=build_tiny_student()).get_config()
    assert distiller_config["teacher"]["config"]["top_k"] == 2
    with pytest.raises(ValueError, match=r"CachedTeacher.load\(path\)"):
        tfkd.CachedTeacher.from_config(top2.get_config())


def test_a_cache_never_misaligns_silently(cached, tiny_data):
    x, y = tiny_data
    with pytest.raises(ValueError, match="outputs for 64 samples, but `x` has 63"):
        cached.dataset(x[:63], y[:63])
    with pytest.raises(ValueError, match="other values or another order"):
        cached.dataset(x[::-1], y[::-1])
    with pytest.raises(ValueError, match="other values or another order"):
        cached.dataset(x + 0.01, y)
    with pytest.raises(ValueError, match="one entry per sample"):
        cached.dataset(x, y[:10])
    shuffled = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(64, seed=1)
    with pytest.raises(ValueError, match="other values or another order"):
        cached.attach(shuffled)
    batched = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    with pytest.raises(ValueError, match="is it batched"):
        cached.attach(batched)
    with pytest.raises(ValueError, match="before `.repeat"):
        cached.attach(tf.data.Dataset.from_tensor_slices((x, y)).repeat())
    with pytest.raises(TypeError, match=r"\(x, y\)"):
        cached.attach(tf.data.Dataset.from_tensor_slices(x))
    with pytest.raises(TypeError, match="unbatched `tf.data.Dataset`"):
        cached.attach(x)


def test_distiller_with_a_cache_rejects_data_and_losses_it_cannot_serve(cached, tiny_data):
    x, y = tiny_data
    distiller = _distiller(cached)
    with pytest.raises(ValueError, match=r"cached.dataset\(x, y\)"):
        distiller.fit(x, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="element_spec"):
        distiller.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(8), epochs=1, verbose=0)
    weighted = tf.data.Dataset.from_tensor_slices((x, y, np.ones(64, "float32"))).batch(8)
    with pytest.raises(ValueError, match=r"cached.dataset\(x, y\)"):
        distiller.fit(weighted, epochs=1, verbose=0)
    wrong = {"x": x, "teacher_outputs": np.ones((64, 3), "float32")}
    with pytest.raises(ValueError, match=r"teacher outputs, of shape \(10,\)"):
        distiller.fit(tf.data.Dataset.from_tensor_slices((wrong, y)).batch(8), epochs=1, verbose=0)
    top2 = tfkd.cache_teacher_outputs(build_tiny_teacher(), x, top_k=2, verbose=0)
    with pytest.raises(ValueError, match="top_k_values"):
        distiller.fit(top2.dataset(x, y).batch(8), epochs=1, verbose=0)
    feature_loss = tfkd.losses.LogitsDistillation(teacher_layer="t_embed", student_layer="s_embed")
    with pytest.raises(ValueError, match="live teacher"):
        tfkd.Distiller(
            teacher=cached, student=build_tiny_student(), distillation_losses=feature_loss
        )
    with pytest.raises(ValueError, match="same shape"):
        tfkd.Distiller(teacher=cached, student=build_tiny_student(num_classes=5)).compile(
            optimizer="sgd", loss=_loss()
        )


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"top_k": 10}, ValueError, "1 <= top_k < C"),
        ({"top_k": 0}, ValueError, "Received: top_k=0"),
        ({"top_k": 2.5}, TypeError, "Received: top_k=2.5"),
        ({"batch_size": 0}, ValueError, "Received: batch_size=0"),
        ({"teacher": "teacher"}, TypeError, "Received: teacher='teacher'"),
    ],
)
def test_cache_teacher_outputs_rejects_bad_arguments(teacher, tiny_data, kwargs, error, match):
    kwargs = {"teacher": teacher, "data": tiny_data[0], "verbose": 0, **kwargs}
    with pytest.raises(error, match=match):
        tfkd.cache_teacher_outputs(**kwargs)


def test_a_distiller_with_a_cache_is_not_saved_whole(cached, tiny_data, tmp_path):
    """Its file could not be loaded: refused at `save` and before `fit` runs a checkpoint."""
    x, y = tiny_data
    distiller = _distiller(cached, lr=0.01)
    with pytest.raises(ValueError, match=r"cannot be saved whole.*save_weights_only=True"):
        distiller.save(tmp_path / "distiller.keras")
    checkpoint = keras.callbacks.ModelCheckpoint(str(tmp_path / "c.keras"))
    with pytest.raises(ValueError, match=r"Received: a `ModelCheckpoint\(save_weights_only"):
        distiller.fit(cached.dataset(x, y).batch(16), epochs=1, verbose=0, callbacks=checkpoint)
    assert list(tmp_path.iterdir()) == []
    weights = keras.callbacks.ModelCheckpoint(str(tmp_path / "w.h5"), save_weights_only=True)
    distiller.fit(cached.dataset(x, y).batch(16), epochs=1, verbose=0, callbacks=weights)
    assert (tmp_path / "w.h5").exists()
