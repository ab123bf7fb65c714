"""`tfkd.cluster`: kernels share few values, strip keeps them, zeros kept, CQAT after it."""

import numpy as np
import pytest
from conftest import build_compressible_net

import tfkd
from tfkd import keras

SCCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _model():
    return build_compressible_net("net")


def _fit(model, data, epochs=1):
    model.compile(optimizer="adam", loss=SCCE)
    model.fit(*data, epochs=epochs, batch_size=16, verbose=0)


def _distinct(model, name):
    return len(np.unique(model.get_layer(name).kernel.numpy()))


def test_cluster_then_strip_leaves_n_values_per_kernel_and_cqat_keeps_them(tiny_data):
    model = _model()
    clustered = tfkd.cluster(model, n_clusters=4)
    kinds = [type(layer).__name__ for layer in clustered.layers]
    assert kinds == ["InputLayer", "ClusterWeights", "Flatten", "ClusterWeights", "ClusterWeights"]
    assert _distinct(model, "hidden") > 4  # the input model is not changed
    _fit(clustered, tiny_data)
    stripped = tfkd.strip(clustered)
    assert [_distinct(stripped, n) for n in ("conv", "hidden", "logits")] == [4, 4, 4]
    cqat = tfkd.quantize(stripped, preserve="clusters")
    _fit(cqat, tiny_data)
    for name in ("conv", "hidden", "logits"):
        kernel = cqat.get_layer(f"quant_{name}")._weight_vars[0][0].numpy()
        assert len(np.unique(kernel)) <= 4


def test_cluster_selected_layers_and_skips_small_convolutions():
    clustered = tfkd.cluster(_model(), n_clusters=8, layers=["logits"])
    assert [layer.name for layer in clustered.layers if "cluster" in layer.name] == [
        "cluster_logits"
    ]
    # The conv kernel holds 36 weights: with 64 clusters it is left alone (TF-MOT's rule).
    kept = tfkd.cluster(_model(), n_clusters=64)
    assert isinstance(kept.get_layer("conv"), keras.layers.Conv2D)


def test_sparsity_preserving_clustering_keeps_pruned_zeros(tiny_data):
    model = _model()
    kernel = model.get_layer("hidden").kernel.numpy()
    kernel[:, ::2] = 0.0  # half the outputs' weights
    model.get_layer("hidden").kernel.assign(kernel)
    clustered = tfkd.cluster(model, n_clusters=4, preserve_sparsity=True, layers=["hidden"])
    _fit(clustered, tiny_data)
    assert tfkd.sparsity(clustered).layers["hidden"] >= 0.5
    assert tfkd.sparsity(tfkd.strip(clustered)).layers["hidden"] >= 0.5


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"n_clusters": 1}, ValueError, "at least 2.*Received: n_clusters=1"),
        ({"n_clusters": 2.5}, TypeError, "must be an integer"),
        ({"init": "kmeans"}, ValueError, "Received: init='kmeans'"),
        ({"preserve_sparsity": "yes"}, TypeError, "True or False"),
        ({"layers": ["nope"]}, ValueError, r"Received: layers=\['nope'\]"),
    ],
)
def test_cluster_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        tfkd.cluster(_model(), **kwargs)


def test_cluster_rejects_a_clustered_model():
    with pytest.raises(ValueError, match="already holds pruning or clustering.*tfkd.strip"):
        tfkd.cluster(tfkd.cluster(_model(), n_clusters=4))


def test_cluster_rejects_a_model_without_kernels():
    inputs = keras.Input((8, 8, 1))
    with pytest.raises(ValueError, match=r"no layer that can be clustered.*'Flatten'"):
        tfkd.cluster(keras.Model(inputs, keras.layers.Flatten()(inputs)))
