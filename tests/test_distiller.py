"""`tfkd.Distiller`: both idioms' math by hand, a frozen teacher, Keras integration, bad inputs."""

import numpy as np
import pytest

import tfkd
from tfkd import keras
from tfkd._keras import tf

SCCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _sparse_ce(labels, logits):
    """Per-sample cross-entropy of integer labels against logits."""
    return -_log_softmax(logits)[np.arange(len(labels)), labels]


def _kl(p, q):
    """keras.losses.KLDivergence per sample (it clips both to [1e-7, 1])."""
    p, q = np.clip(p, 1e-7, 1), np.clip(q, 1e-7, 1)
    return np.sum(p * np.log(p / q), axis=-1)


def _weights(model):
    return [w.numpy().copy() for w in model.weights]


def _keras_io(teacher, student, alpha=0.1, temperature=3.0, **compile_kwargs):
    distiller = tfkd.Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer=compile_kwargs.pop("optimizer", "adam"),
        metrics=["accuracy"],
        student_loss_fn=SCCE,
        distillation_loss_fn=keras.losses.KLDivergence(),
        alpha=alpha,
        temperature=temperature,
        **compile_kwargs,
    )
    return distiller


def _keras3(teacher, student, **compile_kwargs):
    distiller = tfkd.Distiller(
        teacher=teacher,
        student=student,
        distillation_losses=[
            tfkd.losses.LogitsDistillation(temperature=2.0),
            tfkd.losses.LogitsDistillation(loss="mse"),
        ],
        distillation_loss_weights=[0.3, 0.7],
        student_loss_weight=0.4,
    )
    distiller.compile(
        optimizer=compile_kwargs.pop("optimizer", "adam"),
        loss=SCCE,
        metrics=["accuracy"],
        **compile_kwargs,
    )
    return distiller


def _dropout_bn_teacher():
    """A teacher whose outputs change if it is ever called with `training=True`."""
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", name="t_conv")(inputs)
    x = keras.layers.BatchNormalization(name="t_bn")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.5, name="t_dropout")(x)
    outputs = keras.layers.Dense(10, name="t_logits")(x)
    teacher = keras.Model(inputs, outputs, name="dropout_teacher")
    # Moving statistics away from their initial values, so a training-mode call would move them.
    bn = teacher.get_layer("t_bn")
    bn.moving_mean.assign(tf.fill(bn.moving_mean.shape, 0.3))
    bn.moving_variance.assign(tf.fill(bn.moving_variance.shape, 2.0))
    return teacher


# ------------------------------------------------------------------------------ the math


def test_keras_io_loss_matches_hand_computation(make_teacher, make_student, tiny_data):
    x, y = tiny_data
    teacher, student = make_teacher(), make_student()
    alpha, temperature = 0.3, 4.0
    distiller = _keras_io(teacher, student, alpha=alpha, temperature=temperature)
    logs = distiller.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)

    t, s = teacher(x).numpy(), student(x).numpy()
    student_loss = _sparse_ce(y, s).mean()
    soft = _kl(_softmax(t / temperature), _softmax(s / temperature)).mean() * temperature**2
    expected = alpha * student_loss + (1 - alpha) * soft
    np.testing.assert_allclose(logs["student_loss"], student_loss, rtol=1e-5)
    np.testing.assert_allclose(logs["distillation_loss"], soft, rtol=1e-4)
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-5)


def test_keras3_loss_matches_hand_computation(make_teacher, make_student, tiny_data):
    x, y = tiny_data
    teacher, student = make_teacher(), make_student()
    distiller = _keras3(teacher, student)
    logs = distiller.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)

    t, s = teacher(x).numpy(), student(x).numpy()
    student_loss = _sparse_ce(y, s).mean()
    log_pt, log_ps = _log_softmax(t / 2.0), _log_softmax(s / 2.0)
    kl = (np.exp(log_pt) * (log_pt - log_ps)).sum(axis=-1).mean() * 4.0
    mse = ((t - s) ** 2).mean()
    distill = 0.3 * kl + 0.7 * mse
    np.testing.assert_allclose(logs["student_loss"], student_loss, rtol=1e-5)
    np.testing.assert_allclose(logs["distillation_loss"], distill, rtol=1e-5)
    np.testing.assert_allclose(logs["loss"], 0.4 * student_loss + 0.6 * distill, rtol=1e-5)


def test_keras3_idiom_defaults_to_logits_distillation(make_teacher, make_student, tiny_data):
    x, y = tiny_data
    teacher, student = make_teacher(), make_student()
    distiller = tfkd.Distiller(teacher=teacher, student=student)
    distiller.compile(optimizer="adam", loss=SCCE)
    logs = distiller.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    t, s = teacher(x).numpy(), student(x).numpy()
    expected = tfkd.losses.LogitsDistillation()(t, s).numpy()
    np.testing.assert_allclose(logs["distillation_loss"], expected, rtol=1e-5)
    np.testing.assert_allclose(
        logs["loss"], 0.5 * _sparse_ce(y, s).mean() + 0.5 * expected, rtol=1e-5
    )


# ------------------------------------------------------------------------ frozen teacher


def test_teacher_runs_in_inference_mode(make_student, tiny_data):
    """A zero learning rate keeps the student still, so the step's logged loss must be the one
    computed with the teacher's inference-mode outputs (dropout off, moving statistics used)."""
    x, y = tiny_data
    keras.utils.set_random_seed(3)
    teacher, student = _dropout_bn_teacher(), make_student()
    distiller = _keras_io(teacher, student, optimizer=keras.optimizers.SGD(0.0), temperature=2.0)
    history = distiller.fit(x, y, batch_size=len(x), epochs=2, verbose=0)
    t, s = teacher(x, training=False).numpy(), student(x).numpy()
    expected = _kl(_softmax(t / 2.0), _softmax(s / 2.0)).mean() * 4.0
    np.testing.assert_allclose(history.history["distillation_loss"], [expected] * 2, rtol=1e-4)


def test_one_epoch_fit_trains_only_the_student(make_student, tiny_data, tmp_path):
    x, y = tiny_data
    keras.utils.set_random_seed(4)
    teacher, student = _dropout_bn_teacher(), make_student()
    teacher_before, student_before = _weights(teacher), _weights(student)
    distiller = _keras_io(teacher, student, optimizer=keras.optimizers.Adam(1e-2))
    assert {id(v) for v in distiller.trainable_variables} == {
        id(v) for v in student.trainable_variables
    }
    seen = []
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(logs))
    history = distiller.fit(
        x, y, batch_size=16, epochs=1, verbose=0, validation_data=(x, y), callbacks=[record]
    )

    keys = {"loss", "total_loss", "student_loss", "distillation_loss", "accuracy"}
    assert set(history.history) == keys | {f"val_{k}" for k in keys}
    assert len(seen) == 1 and keys <= set(seen[0])
    for before, after in zip(teacher_before, _weights(teacher), strict=True):
        np.testing.assert_array_equal(before, after)  # bit-identical, BN statistics included
    for before, after in zip(student_before, _weights(student), strict=True):
        assert not np.array_equal(before, after)

    # predict and call give the student's outputs; the student saves and loads on its own.
    np.testing.assert_allclose(distiller.predict(x, verbose=0), student.predict(x, verbose=0))
    np.testing.assert_allclose(distiller(x).numpy(), student(x).numpy())
    path = str(tmp_path / "student.keras")
    distiller.student.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.name == student.name and len(loaded.layers) == len(student.layers)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), student.predict(x, verbose=0))


def test_tf_data_with_jit_compile_matches_unjitted_numbers(make_teacher, make_student, tiny_data):
    x, y = tiny_data
    teacher, student = make_teacher(), make_student()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    distiller = _keras3(teacher, student, jit_compile=True)
    history = distiller.fit(dataset, epochs=1, verbose=0)
    keys = {"loss", "total_loss", "student_loss", "distillation_loss", "accuracy"}
    assert keys == set(history.history)
    jit_logs = distiller.evaluate(dataset, verbose=0, return_dict=True)
    plain_logs = _keras3(teacher, student).evaluate(dataset, verbose=0, return_dict=True)
    for key in ("loss", "student_loss", "distillation_loss"):
        np.testing.assert_allclose(jit_logs[key], plain_logs[key], rtol=1e-5)


def test_sample_weights_scale_per_sample_losses(make_teacher, make_student, tiny_data):
    """Like Keras, a weighted loss is `sum(w_i * loss_i) / batch`: weights (2 on half the batch,
    0 on the rest) give exactly the unweighted loss and step on that half."""
    x, y = tiny_data
    half = len(x) // 2
    weights = np.concatenate([np.full(half, 2.0), np.zeros(half)]).astype("float32")
    teacher, student = make_teacher(), make_student()
    initial = student.get_weights()
    distiller = _keras_io(teacher, student, optimizer=keras.optimizers.SGD(0.1))
    weighted = distiller.evaluate(
        x, y, sample_weight=weights, batch_size=len(x), verbose=0, return_dict=True
    )
    half_logs = distiller.evaluate(x[:half], y[:half], batch_size=half, verbose=0, return_dict=True)
    for key in ("loss", "student_loss", "distillation_loss"):
        np.testing.assert_allclose(weighted[key], half_logs[key], rtol=1e-5)

    distiller.fit(x, y, sample_weight=weights, batch_size=len(x), epochs=1, verbose=0)
    stepped_weighted = student.get_weights()
    student.set_weights(initial)
    reference = _keras_io(teacher, student, optimizer=keras.optimizers.SGD(0.1))
    reference.fit(x[:half], y[:half], batch_size=half, epochs=1, verbose=0)
    for a, b in zip(stepped_weighted, student.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(stepped_weighted[0], initial[0])


def test_backup_and_restore_resumes_to_the_same_weights(
    make_teacher, make_student, tiny_data, tmp_path
):
    """An interrupted fit resumed from its backup ends where an uninterrupted one does."""
    x, y = tiny_data
    teacher = make_teacher()
    epochs = 4

    def run(seed, callbacks):
        keras.utils.set_random_seed(seed)
        distiller = _keras3(teacher, make_student(), optimizer=keras.optimizers.Adam(1e-2))
        distiller.fit(
            x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0, callbacks=callbacks
        )
        return distiller

    reference = run(seed=2, callbacks=[])

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("simulated preemption")

    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    with pytest.raises(RuntimeError, match="simulated preemption"):
        run(seed=2, callbacks=[backup, Crash()])
    # A new process would rebuild the models from scratch: other initial weights, same backup.
    resumed = run(seed=99, callbacks=[keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))])
    pairs = zip(reference.student.get_weights(), resumed.student.get_weights(), strict=True)
    for a, b in pairs:
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# -------------------------------------------------------------------------------- errors


def test_rejects_non_models(make_teacher, make_student):
    with pytest.raises(TypeError, match="Received: student='not a model'"):
        tfkd.Distiller(student="not a model", teacher=make_teacher())
    with pytest.raises(TypeError, match=r"Received: teacher=None"):
        tfkd.Distiller(student=make_student(), teacher=None)


def test_rejects_the_same_model_twice(make_student):
    student = make_student()
    with pytest.raises(ValueError, match="must be different models.*tiny_student"):
        tfkd.Distiller(student=student, teacher=student)


def test_rejects_incomparable_output_shapes(make_teacher, make_student):
    teacher, student = make_teacher(), make_student(num_classes=5)
    shapes = r"teacher output shape=\(None, 10\), student output shape=\(None, 5\)"
    with pytest.raises(ValueError, match=shapes):
        tfkd.Distiller(
            teacher=teacher, student=student, distillation_losses=tfkd.losses.LogitsDistillation()
        )
    with pytest.raises(ValueError, match=shapes):
        _keras_io(teacher, student)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"temperature": 0}, ValueError, "Received: temperature=0"),
        ({"temperature": -2.0}, ValueError, "Received: temperature=-2.0"),
        ({"temperature": "hot"}, TypeError, "Received: temperature='hot'"),
        ({"alpha": 1.5}, ValueError, "between 0 and 1.*Received: alpha=1.5"),
        ({"alpha": -0.1}, ValueError, "Received: alpha=-0.1"),
    ],
)
def test_keras_io_compile_rejects_bad_numbers(make_teacher, make_student, kwargs, error, match):
    with pytest.raises(error, match=match):
        _keras_io(make_teacher(), make_student(), **kwargs)


@pytest.mark.parametrize("weight", [1.01, -0.5])
def test_rejects_student_loss_weight_outside_unit_interval(make_teacher, make_student, weight):
    with pytest.raises(ValueError, match=f"Received: student_loss_weight={weight}"):
        tfkd.Distiller(teacher=make_teacher(), student=make_student(), student_loss_weight=weight)


def test_rejects_loss_weights_of_the_wrong_length(make_teacher, make_student):
    with pytest.raises(ValueError, match=r"one weight per distillation loss \(1\).*length 2"):
        tfkd.Distiller(
            teacher=make_teacher(),
            student=make_student(),
            distillation_losses=[tfkd.losses.LogitsDistillation()],
            distillation_loss_weights=[0.5, 0.5],
        )


def test_rejects_mixed_idioms(make_teacher, make_student):
    teacher, student = make_teacher(), make_student()
    distiller = tfkd.Distiller(student=student, teacher=teacher)
    with pytest.raises(ValueError, match="both Distiller idioms.*Received: loss="):
        distiller.compile(
            optimizer="adam", loss=SCCE, student_loss_fn=SCCE,
            distillation_loss_fn=keras.losses.KLDivergence(),
        )
    keras3 = tfkd.Distiller(
        teacher=teacher, student=student, distillation_losses=tfkd.losses.LogitsDistillation()
    )
    with pytest.raises(ValueError, match="both Distiller idioms.*distillation_losses="):
        keras3.compile(
            optimizer="adam", student_loss_fn=SCCE,
            distillation_loss_fn=keras.losses.KLDivergence(),
        )


def test_teacher_alone_trains_on_unlabeled_data(make_teacher, make_student, tiny_data):
    """`student_loss_weight=0`, no student loss: the soft targets are the only signal."""
    x, _ = tiny_data
    teacher, student = make_teacher(), make_student()
    distiller = tfkd.Distiller(
        teacher=teacher,
        student=student,
        distillation_losses=tfkd.losses.LogitsDistillation(temperature=2.0),
        student_loss_weight=0.0,
    )
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = tfkd.losses.LogitsDistillation(2.0)(teacher(x), student(x)).numpy()
    history = distiller.fit(x, batch_size=16, epochs=3, verbose=0)
    assert history.history["student_loss"] == [0.0, 0.0, 0.0]
    assert history.history["loss"][-1] < before
    after = tfkd.losses.LogitsDistillation(2.0)(teacher(x), student(x)).numpy()
    assert after < 0.8 * before


def test_fit_without_labels_is_refused(make_teacher, make_student, tiny_data):
    x, _ = tiny_data
    distiller = _keras_io(make_teacher(), make_student())
    with pytest.raises(ValueError, match="`fit` needs labels.*Received: y=None"):
        distiller.fit(x, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="`fit` needs labels"):
        distiller.fit(tf.data.Dataset.from_tensor_slices(x).batch(8), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"`evaluate` needs labels.*`evaluate\(x, y\)`"):
        distiller.evaluate(x, verbose=0)


# ------------------------------------------------------------- calling conventions (issue 8)


def test_fit_accepts_one_callback_object(make_teacher, make_student, tiny_data):
    """`callbacks=one_callback`, as `keras.Model.fit` accepts, also for a pruned student."""
    x, y = tiny_data
    seen = []
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(epoch))
    distiller = _keras_io(make_teacher(), make_student())
    distiller.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=record)
    assert seen == [0, 1]

    pruned = tfkd.prune(make_student(), target_sparsity=0.5)
    import tensorflow_model_optimization as tfmot

    distiller = _keras_io(make_teacher(), pruned)
    update = tfmot.sparsity.keras.UpdatePruningStep()
    distiller.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=update)
    assert update.prunable_layers  # the user's callback ran, and tfkd added no second one
    assert all(int(layer.pruning_step) == 2 for layer in update.prunable_layers)


def test_a_loss_given_by_class_name_is_per_sample(make_teacher, tiny_data):
    """`loss="SparseCategoricalCrossentropy"` weighs each sample by its own weight, like the
    function name and a loss object do: the logged loss is `mean(w_i * loss_i)`."""
    x, y = tiny_data
    keras.utils.set_random_seed(5)
    student = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10, "softmax")]
    )
    weights = np.linspace(0.0, 3.0, len(x)).astype("float32")
    probabilities = student.predict(x, verbose=0)
    expected = np.mean(weights * -np.log(probabilities[np.arange(len(y)), y]))
    for loss in ("SparseCategoricalCrossentropy", "sparse_categorical_crossentropy",
                 keras.losses.SparseCategoricalCrossentropy()):
        distiller = tfkd.Distiller(teacher=make_teacher(), student=student)
        distiller.compile(optimizer="sgd", loss=loss)
        logs = distiller.evaluate(
            x, y, sample_weight=weights, batch_size=len(x), verbose=0, return_dict=True
        )
        np.testing.assert_allclose(logs["student_loss"], expected, rtol=1e-5, err_msg=str(loss))


@pytest.fixture
def mixed_precision():
    """Sets a mixed precision policy for one test, and the float32 policy back afterwards."""

    def set_policy(name):
        keras.mixed_precision.set_global_policy(name)

    yield set_policy
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_every_loss_trains_under_mixed_precision(mixed_precision, tiny_data, policy):
    """FeatureDistillation (with a float16 adapter), logits and relation losses beside a float32
    teacher: each loss value is cast to float32 before the sum."""
    from conftest import build_tiny_student, build_tiny_teacher

    x, y = tiny_data
    keras.utils.set_random_seed(6)
    teacher = build_tiny_teacher()  # float32, built before the policy
    mixed_precision(policy)
    student = build_tiny_student()
    assert student.get_layer("s_embed").compute_dtype != "float32"
    losses = [
        tfkd.losses.LogitsDistillation(temperature=2.0),
        tfkd.losses.FeatureDistillation("t_embed", "s_embed"),
        tfkd.losses.DecoupledKD(),
        tfkd.losses.DIST(),
        tfkd.losses.RKDDistance("t_embed", "s_embed"),
    ]
    distiller = tfkd.Distiller(teacher=teacher, student=student, distillation_losses=losses)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2), loss=SCCE)
    before = [w.numpy().copy() for w in student.trainable_weights]
    history = distiller.fit(x, y, batch_size=16, epochs=2, verbose=0)
    for key in ("loss", "student_loss", "distillation_loss"):
        assert np.all(np.isfinite(history.history[key])), key
    # (float16's loss scaling skips the first steps while it finds its scale: no decrease check)
    after = student.trainable_weights
    assert all(not np.array_equal(b, a.numpy()) for b, a in zip(before, after, strict=True))


def test_list_and_per_sample_helpers_are_defined_once_in_the_package():
    """`as_list`, per-sample reduction, sample weighting and the per-sample Keras loss live in
    `tfkd.losses.base` alone (issue 8, point 19)."""
    import pathlib
    import re

    root = pathlib.Path(tfkd.__file__).parent
    sources = {p: p.read_text() for p in root.rglob("*.py")}
    for name in ("as_list", "per_sample", "weighted", "per_sample_loss_fn"):
        pattern = re.compile(rf"^def _?{name}\(", re.MULTILINE)
        owners = [p.relative_to(root).as_posix() for p, text in sources.items()
                  if pattern.search(text)]
        assert owners == ["losses/base.py"], (name, owners)
