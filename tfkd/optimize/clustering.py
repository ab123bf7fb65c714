"""Weight clustering over TF-MOT: `cluster` (strip it with `tfkd.strip`, then CQAT)."""

from typing import Any

from tfkd._keras import keras
from tfkd._validation import check_choice, check_int
from tfkd.optimize._common import check_graph_model, clone_with, select_layers, tfmot
from tfkd.optimize.wrappers import cluster_wrapper_class, iter_layers, training_wrappers

_INITS = {
    "kmeans++": "KMEANS_PLUS_PLUS",
    "linear": "LINEAR",
    "random": "RANDOM",
    "density": "DENSITY_BASED",
}


def cluster(
    model: keras.Model,
    n_clusters: int = 16,
    init: str = "kmeans++",
    preserve_sparsity: bool = False,
    layers: Any = None,
) -> keras.Model:
    """Returns a copy of `model` whose kernels share `n_clusters` values each.

    Each selected kernel is replaced by `n_clusters` centroids and, per weight, the index of its
    centroid; training (in `Distiller.fit` or a plain `fit`, no callback needed) fine-tunes the
    centroids. After training, `tfkd.strip` writes the clustered values back into plain layers, and
    `tfkd.quantize(stripped, preserve="clusters")` keeps them through QAT (CQAT). Clustering
    a trained model works best; the input model is not changed. Layers without a kernel, and
    convolutions with fewer weights than clusters, are kept as they are.

    Args:
        model: A Sequential or Functional `tfkd.keras.Model`.
        n_clusters: Number of distinct values per kernel, at least 2. Defaults to `16`.
        init: Centroid initialization: `"kmeans++"`, `"linear"`, `"random"` or `"density"`.
            Defaults to `"kmeans++"`.
        preserve_sparsity: Keep the zeros of a pruned model (sparsity-preserving clustering).
            Defaults to `False`.
        layers: Layer names and/or layer classes to cluster, or `None` for every clusterable
            layer. Defaults to `None`.

    Returns:
        A new `tfkd.keras.Model` holding TF-MOT `ClusterWeights` wrappers.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If `n_clusters` < 2, `init` is unknown, the model is already clustered or
            pruned, or it has no layer to cluster.

    Example:
    >>> clustered = tfkd.cluster(trained_student, n_clusters=16)
    >>> clustered.compile(...); clustered.fit(x, y, epochs=2)
    >>> small = tfkd.strip(clustered)
    """
    model = check_graph_model("model", model)
    n_clusters = check_int("n_clusters", n_clusters)
    if n_clusters < 2:
        raise ValueError(
            "`n_clusters` must be at least 2 (one value per kernel would erase it). "
            f"Received: n_clusters={n_clusters}. E.g. n_clusters=16 (4-bit indices)."
        )
    check_choice("init", init, sorted(_INITS))
    if not isinstance(preserve_sparsity, bool):
        raise TypeError(
            "`preserve_sparsity` must be True or False. "
            f"Received: preserve_sparsity={preserve_sparsity!r}."
        )
    _check_unwrapped(model)
    candidates = _clusterable_layers(model, n_clusters)
    if not candidates:
        types = sorted({type(layer).__name__ for layer in iter_layers(model)})
        raise ValueError(
            f"`model` has no layer that can be clustered. Received: model={model.name!r} with "
            f"layer types {types}. Clustering acts on the kernels of Dense and Conv layers with "
            "more weights than `n_clusters`."
        )
    names = set(select_layers("layers", layers, candidates))
    api = tfmot().clustering.keras
    centroid_init = getattr(api.CentroidInitialization, _INITS[init])
    wrapper = cluster_wrapper_class()

    def transform(original, copy):
        if original.name not in names:
            return copy
        return wrapper(copy, n_clusters, centroid_init, preserve_sparsity)

    return clone_with(model, transform)


def _check_unwrapped(model):
    wrapped = [layer.name for layer in training_wrappers(model)]
    if wrapped:
        raise ValueError(
            f"`model` already holds pruning or clustering wrappers: {wrapped}. Received: "
            f"model={model.name!r}. Call `tfkd.strip(model)` first (with "
            "`preserve_sparsity=True` to keep pruned zeros)."
        )


def _clusterable_layers(model, n_clusters):
    from tensorflow_model_optimization.python.core.clustering.keras.clustering_registry import (
        ClusteringRegistry,
    )

    found = []
    for layer in iter_layers(model):
        if isinstance(layer, keras.layers.InputLayer):
            continue
        custom = hasattr(layer, "get_clusterable_weights")
        weight_names = ClusteringRegistry._LAYERS_WEIGHTS_MAP.get(layer.__class__, True)
        supported = ClusteringRegistry.supports(layer) and layer.trainable_weights
        if not custom and not (supported and weight_names):
            continue
        if isinstance(layer, keras.layers.Conv2D) and _too_small(layer, n_clusters):
            continue
        found.append(layer)
    return found


def _too_small(layer, n_clusters):
    return layer.built and int(layer.kernel.shape.num_elements()) <= n_clusters
