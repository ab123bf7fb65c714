"""`tfkd.data` (bundled digits) and `tfkd.models` (reference teachers and students)."""

import numpy as np
import pytest

import tfkd
from tfkd import keras


def test_load_digits_shapes_dtypes_and_range(digits):
    (x_train, y_train), (x_test, y_test) = digits
    assert x_train.shape == (898, 8, 8, 1) and x_test.shape == (899, 8, 8, 1)
    assert y_train.shape == (898,) and y_test.shape == (899,)
    assert x_train.dtype == np.float32 and x_test.dtype == np.float32
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64
    for x in (x_train, x_test):
        assert x.min() == 0.0 and x.max() == 1.0
    assert set(np.unique(y_train)) == set(range(10)) == set(np.unique(y_test))


def test_load_digits_is_stratified_and_disjoint(digits):
    (x_train, y_train), (x_test, y_test) = digits
    train_counts, test_counts = np.bincount(y_train), np.bincount(y_test)
    assert np.all(np.abs(train_counts - test_counts) <= 1)  # every class split in half
    train_rows = {row.tobytes() for row in x_train.reshape(len(x_train), -1)}
    shared = sum(row.tobytes() in train_rows for row in x_test.reshape(len(x_test), -1))
    assert shared <= 5  # sklearn's digits hold a few duplicate images, no more


def test_load_digits_is_deterministic_and_seeded(digits):
    (x_train, y_train), _ = digits
    (x_again, y_again), _ = tfkd.data.load_digits()
    np.testing.assert_array_equal(x_train, x_again)
    np.testing.assert_array_equal(y_train, y_again)
    (x_other, _), _ = tfkd.data.load_digits(seed=1)
    assert not np.array_equal(x_train, x_other)


def test_load_digits_test_fraction():
    (x_train, y_train), (x_test, y_test) = tfkd.data.load_digits(test_fraction=0.2)
    assert len(x_test) == 360 and len(x_train) == 1437
    every = np.bincount(y_train) + np.bincount(y_test)
    assert np.all(np.abs(np.bincount(y_train) - 0.8 * every) <= 1)  # each class split 80/20


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"test_fraction": 1.0}, ValueError, "strictly between 0 and 1.*Received: test_fraction=1"),
        ({"test_fraction": 0}, ValueError, "Received: test_fraction=0"),
        ({"test_fraction": "half"}, TypeError, "Received: test_fraction='half'"),
        ({"seed": 1.5}, TypeError, "must be an integer.*Received: seed=1.5"),
    ],
)
def test_load_digits_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        tfkd.data.load_digits(**kwargs)


def test_subsample_per_class_keeps_every_class(digits):
    (x_train, y_train), _ = digits
    x, y = tfkd.data.subsample_per_class(x_train, y_train, 0.1, seed=0)
    assert len(x) == len(y) and 85 <= len(x) <= 95
    assert np.all(np.bincount(y, minlength=10) >= 8)
    x_again, _ = tfkd.data.subsample_per_class(x_train, y_train, 0.1, seed=0)
    np.testing.assert_array_equal(x, x_again)
    with pytest.raises(ValueError, match="Received: fraction=0"):
        tfkd.data.subsample_per_class(x_train, y_train, 0)


def test_reference_student_is_at_most_a_twentieth_of_the_teacher():
    teacher, student = tfkd.models.build_teacher(), tfkd.models.build_student()
    assert student.count_params() == 4810
    assert student.count_params() * 20 <= teacher.count_params()
    for model in (teacher, student):
        assert isinstance(model, keras.Model)
        assert model.output_shape == (None, 10)
        assert model.layers[-1].get_config()["activation"] == "linear"  # logits, not probabilities
    x = np.random.default_rng(0).random((4, 8, 8, 1), dtype=np.float32)
    assert not np.allclose(student(x).numpy().sum(axis=-1), 1.0)  # unnormalized outputs


def test_keras_io_pair_for_benchmarks():
    teacher, student = tfkd.models.build_keras_io_teacher(), tfkd.models.build_keras_io_student()
    assert teacher.input_shape == student.input_shape == (None, 28, 28, 1)
    assert teacher.output_shape == student.output_shape == (None, 10)
    convolutions = [layer.filters for layer in teacher.layers if hasattr(layer, "filters")]
    assert convolutions == [256, 512]
    assert student.count_params() * 20 <= teacher.count_params()


def test_builders_take_shapes_and_reject_bad_arguments():
    model = tfkd.models.build_student(input_shape=(4, 4, 3), num_classes=3, hidden_units=5)
    assert model.output_shape == (None, 3) and model.count_params() == (48 * 5 + 5) + (5 * 3 + 3)
    with pytest.raises(ValueError, match="Received: num_classes=1"):
        tfkd.models.build_teacher(num_classes=1)
    with pytest.raises(TypeError, match="Received: hidden_units='wide'"):
        tfkd.models.build_student(hidden_units="wide")


@pytest.fixture(scope="module")
def mnist():
    """The bundled 5,000 real MNIST images, split 4,000 / 1,000."""
    return tfkd.data.load_mnist(source="bundled")


def test_load_mnist_bundled_shapes_dtypes_and_range(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    assert x_train.shape == (4000, 28, 28, 1) and x_test.shape == (1000, 28, 28, 1)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    for x in (x_train, x_test):
        assert x.min() == 0.0 and x.max() == 1.0
    # Real digits, not noise: most pixels are background, and the mean image is a blurred digit.
    assert 0.75 < float(np.mean(x_train == 0.0)) < 0.85
    assert x_train[:, 12:16, 12:16].mean() > 3 * x_train[:, :3, :3].mean()


def test_load_mnist_bundled_is_stratified_disjoint_and_deterministic(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    np.testing.assert_array_equal(np.bincount(y_train), [400] * 10)
    np.testing.assert_array_equal(np.bincount(y_test), [100] * 10)
    train_rows = {row.tobytes() for row in x_train.reshape(len(x_train), -1)}
    assert not any(row.tobytes() in train_rows for row in x_test.reshape(len(x_test), -1))
    (x_again, y_again), _ = tfkd.data.load_mnist(source="bundled")
    np.testing.assert_array_equal(x_train, x_again)
    np.testing.assert_array_equal(y_train, y_again)
    (x_other, _), (x_small_test, y_small_test) = tfkd.data.load_mnist(
        source="bundled", seed=1, test_fraction=0.1)
    assert not np.array_equal(x_train[:100], x_other[:100])
    assert len(x_small_test) == 500 and np.all(np.bincount(y_small_test) == 50)


def test_load_mnist_auto_falls_back_to_bundled_and_says_so_once(monkeypatch, capsys):
    def offline():
        raise OSError("URL fetch failure: Name or service not known")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    monkeypatch.setattr(tfkd.data.mnist, "_announced", set())
    (x_train, _), (x_test, _) = tfkd.data.load_mnist()
    assert x_train.shape == (4000, 28, 28, 1) and x_test.shape == (1000, 28, 28, 1)
    tfkd.data.load_mnist()
    said = capsys.readouterr().err
    assert said.count("[tfkd]") == 1
    assert "did not download (URL fetch failure" in said and "5,000 real MNIST" in said
    with pytest.raises(OSError, match='Full MNIST could not be downloaded.*source="bundled"'):
        tfkd.data.load_mnist(source="full")


def test_load_mnist_full_set_is_scaled_like_the_bundled_one(monkeypatch, capsys):
    raw = np.arange(2 * 28 * 28, dtype="uint8").reshape(2, 28, 28)
    labels = np.array([3, 7], dtype="uint8")
    monkeypatch.setattr(keras.datasets.mnist, "load_data", lambda: ((raw, labels), (raw, labels)))
    monkeypatch.setattr(tfkd.data.mnist, "_announced", set())
    (x_train, y_train), _ = tfkd.data.load_mnist(source="full")
    assert x_train.shape == (2, 28, 28, 1) and x_train.dtype == np.float32
    assert x_train[0, 0, 1, 0] == np.float32(1 / 255) and y_train.dtype == np.int64
    assert "[tfkd] using full MNIST" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"source": "web"}, ValueError, "'auto', 'full', 'bundled'. Received: source='web'"),
        ({"test_fraction": 1.0}, ValueError, "Received: test_fraction=1"),
        ({"seed": "0"}, TypeError, "Received: seed='0'"),
        ({"timeout": 0}, ValueError, "Received: timeout=0"),
    ],
)
def test_load_mnist_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        tfkd.data.load_mnist(**kwargs)
