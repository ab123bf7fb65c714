"""`tfkd.load_model`: pruned, clustered and QAT students round-trip through every format."""

import numpy as np
import pytest
import tensorflow_model_optimization as tfmot
from conftest import build_compressible_net

import tfkd
from tfkd import keras

SCCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _mlp():
    return build_compressible_net("student")


def _trained(kind, data):
    keras.utils.set_random_seed(3)
    model = {
        "pruned": lambda: tfkd.prune(_mlp(), target_sparsity=0.5),
        "clustered": lambda: tfkd.cluster(_mlp(), n_clusters=4),
        "qat": lambda: tfkd.quantize(_mlp()),
        "pqat": lambda: tfkd.quantize(_mlp(), preserve="sparsity"),
    }[kind]()
    model.compile(optimizer="adam", loss=SCCE)
    model.fit(*data, epochs=1, batch_size=16, verbose=0, callbacks=tfkd.callbacks(model))
    return model


@pytest.fixture(scope="module")
def trained(tiny_data):
    return {kind: _trained(kind, tiny_data) for kind in ("pruned", "clustered", "qat", "pqat")}


ROUND_TRIPS = [(kind, suffix) for kind in ("pruned", "clustered", "qat", "pqat")
               for suffix in (".keras", ".h5")]
ROUND_TRIPS += [("pruned", ""), ("pqat", "")]  # SavedModel folders (slow to write: two kinds)


@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")
@pytest.mark.parametrize("kind, suffix", ROUND_TRIPS)
def test_compressed_students_round_trip(trained, tiny_data, tmp_path, kind, suffix):
    model = trained[kind]
    path = tmp_path / f"{kind}{suffix or '_savedmodel'}"
    model.save(path)
    loaded = tfkd.load_model(path)
    x, _ = tiny_data
    np.testing.assert_allclose(loaded(x[:8]).numpy(), model(x[:8]).numpy(), atol=1e-6)
    kinds = [type(layer).__name__ for layer in loaded.layers]
    assert kinds == [type(layer).__name__ for layer in model.layers]
    assert tfkd.sparsity(loaded).layers == tfkd.sparsity(model).layers
    for old, new in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(old.numpy(), new.numpy())


def test_loaded_pruned_model_keeps_training_where_it_stopped(trained, tiny_data, tmp_path):
    path = tmp_path / "pruned.keras"
    trained["pruned"].save(path)
    loaded = tfkd.load_model(path)
    wrapper = loaded.get_layer("prune_low_magnitude_hidden")
    assert int(wrapper.pruning_step.numpy()) == 4  # 64 samples / 16 = 4 steps trained
    assert isinstance(wrapper.pruning_schedule, tfmot.sparsity.keras.PolynomialDecay)
    loaded.fit(*tiny_data, epochs=1, batch_size=16, verbose=0, callbacks=tfkd.callbacks())
    assert int(wrapper.pruning_step.numpy()) == 8


def test_structured_pruning_keeps_its_structure_through_a_file(tmp_path):
    pruned = tfkd.prune(_mlp(), structure="2:4")
    path = tmp_path / "structured.keras"
    pruned.save(path)
    wrapper = tfkd.load_model(path).get_layer("prune_low_magnitude_hidden")
    assert wrapper.sparsity_m_by_n == (2, 4)  # TF-MOT's own get_config drops it


def test_load_model_of_a_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="No saved model at this path"):
        tfkd.load_model(tmp_path / "nothing.keras")
