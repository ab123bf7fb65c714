"""`tfkd.sensitivity`: one layer pruned at a time, the table, the plan for `prune`, the plot."""

import os

import numpy as np
import pytest

import tfkd
from tfkd import keras
from tfkd.optimize.sensitivity import SensitivityResult, magnitude_prune


def _model():
    keras.utils.set_random_seed(5)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.Dense(16, activation="relu", name="hidden")(keras.layers.Flatten()(x))
    return keras.Model(inputs, keras.layers.Dense(10, name="logits")(x), name="net")


def _accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=-1) == y))


@pytest.fixture(scope="module")
def analysed(tiny_data):
    x, y = tiny_data
    model = _model()
    before = [w.numpy().copy() for w in model.weights]
    result = tfkd.sensitivity(model, (x, y), sparsities=(0.9, 0.5), verbose=0)
    return model, before, result


def test_magnitude_prune_zeroes_the_smallest_by_hand():
    values = np.array([[-3.0, 1.0], [0.5, -2.0]])
    np.testing.assert_array_equal(magnitude_prune(values, 0.5), [[-3.0, 0.0], [0.0, -2.0]])
    np.testing.assert_array_equal(magnitude_prune(values, 0.25), [[-3.0, 1.0], [0.0, -2.0]])
    np.testing.assert_array_equal(magnitude_prune(values, 0.1), values)  # round(0.4) = 0


def test_table_has_every_prunable_layer_and_each_value_is_that_pruned_model(analysed, tiny_data):
    model, before, result = analysed
    x, y = tiny_data
    assert result.baseline == _accuracy(model, x, y)
    assert list(result.table) == ["conv", "hidden", "logits"]
    assert result.sparsities == (0.5, 0.9)
    for row in result.table.values():
        assert list(row) == [0.5, 0.9]
    for old, new in zip(before, model.weights, strict=True):  # the input model is not changed
        np.testing.assert_array_equal(old, new.numpy())
    # Recompute one cell by hand: the hidden kernel at 90%, the rest dense.
    hidden = model.get_layer("hidden")
    kernel = hidden.kernel.numpy()
    try:
        hidden.kernel.assign(magnitude_prune(kernel, 0.9))
        assert result.table["hidden"][0.9] == _accuracy(model, x, y)
    finally:
        hidden.kernel.assign(kernel)


def test_suggest_picks_the_highest_sparsity_within_the_budget():
    result = SensitivityResult(
        0.90,
        {"a": {0.5: 0.90, 0.9: 0.85}, "b": {0.5: 0.895, 0.9: 0.80}, "c": {0.5: 0.70, 0.9: 0.60}},
        (0.5, 0.9),
    )
    assert result.suggest(0.01) == {"a": 0.5, "b": 0.5}
    assert result.suggest(0.05) == {"a": 0.9, "b": 0.5}
    assert result.suggest(0.5) == {"a": 0.9, "b": 0.9, "c": 0.9}
    with pytest.raises(ValueError, match="Received: max_accuracy_drop=-0.1"):
        result.suggest(-0.1)


def test_the_plan_is_accepted_by_prune(analysed):
    model, _, result = analysed
    plan = result.suggest(max_accuracy_drop=1.0)
    assert plan == {"conv": 0.9, "hidden": 0.9, "logits": 0.9}
    pruned = tfkd.prune(model, target_sparsity=plan)
    schedule = pruned.get_layer("prune_low_magnitude_hidden").pruning_schedule
    assert schedule.final_sparsity == 0.9


def test_plot_writes_a_png_and_nothing_else(analysed, tmp_path):
    _, _, result = analysed
    written = result.plot(tmp_path / "sensitivity.png")
    assert written == str(tmp_path / "sensitivity.png")
    with open(written, "rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path) == ["sensitivity.png"]


def test_plot_leaves_matplotlib_global_state_alone(analysed, tmp_path, monkeypatch):
    import sys

    import matplotlib

    def refuse(*args, **kwargs):
        raise AssertionError(f"matplotlib.use{args} changes the backend for the whole process")

    monkeypatch.setattr(matplotlib, "use", refuse)
    _, _, result = analysed
    had_pyplot = "matplotlib.pyplot" in sys.modules
    result.plot(tmp_path / "sensitivity.png")
    if not had_pyplot:  # drawing needs no pyplot (its global figure manager)
        assert "matplotlib.pyplot" not in sys.modules


def test_only_named_layers(tiny_data):
    result = tfkd.sensitivity(_model(), tiny_data, sparsities=[0.5], layers=["logits"], verbose=0)
    assert list(result.table) == ["logits"]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"sparsities": (0.0, 0.5)}, ValueError, "strictly between 0 and 1"),
        ({"sparsities": 0.5}, TypeError, "non-empty list"),
        ({"layers": ["nope"]}, ValueError, r"not prunable in this model: \['nope'\]"),
    ],
)
def test_sensitivity_rejects_bad_arguments(tiny_data, kwargs, error, match):
    with pytest.raises(error, match=match):
        tfkd.sensitivity(_model(), tiny_data, verbose=0, **kwargs)


def test_sensitivity_rejects_bad_data(tiny_data):
    with pytest.raises(TypeError, match=r"`data` must be `\(x, y\)` arrays"):
        tfkd.sensitivity(_model(), tiny_data[0], verbose=0)
