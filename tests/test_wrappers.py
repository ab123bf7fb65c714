"""`tfkd.optimize.wrappers`: one predicate per wrapper kind, `find_layer` through wrappers, and
losses that name layers keep working after the student is pruned, quantized or clustered."""

import numpy as np
import pytest
from conftest import build_tiny_student, build_tiny_teacher

import tfkd
from tfkd import keras
from tfkd.optimize import wrappers

SCCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

COMPRESS = {
    "pruned": lambda model: tfkd.prune(model, target_sparsity=0.5),
    "pruned_2_4": lambda model: tfkd.prune(model, structure="2:4"),
    "quantized": lambda model: tfkd.quantize(model),
    "clustered": lambda model: tfkd.cluster(model, n_clusters=4, layers=["s_embed", "s_logits"]),
}


def test_one_predicate_per_kind_covers_subclasses():
    student = build_tiny_student()
    structured = tfkd.prune(student, structure="2:4").get_layer("prune_low_magnitude_s_embed")
    plain = tfkd.prune(student).get_layer("prune_low_magnitude_s_embed")
    clustered = tfkd.cluster(student, n_clusters=4).get_layer("cluster_s_embed")
    quantized = tfkd.quantize(student).get_layer("quant_s_embed")
    assert type(structured) is not type(plain)  # tfkd's subclass
    kinds = {
        "prune": wrappers.is_pruning_wrapper,
        "cluster": wrappers.is_cluster_wrapper,
        "quantize": wrappers.is_quantize_wrapper,
    }
    found = {name: [kind for kind, test in kinds.items() if test(layer)]
             for name, layer in [("structured", structured), ("plain", plain),
                                 ("clustered", clustered), ("quantized", quantized),
                                 ("dense", student.get_layer("s_embed"))]}
    assert found == {"structured": ["prune"], "plain": ["prune"], "clustered": ["cluster"],
                     "quantized": ["quantize"], "dense": []}


@pytest.mark.parametrize("kind", sorted(COMPRESS))
def test_find_layer_resolves_names_through_wrappers(kind):
    student = build_tiny_student()
    wrapped = COMPRESS[kind](student)
    found = wrappers.find_layer(wrapped, "s_embed")
    assert found is not None and found.name != "s_embed"  # the wrapper, renamed
    assert wrappers.unwrap(found).name == "s_embed"
    assert wrappers.find_layer(wrapped, "nope") is None


_LOSSES = {
    "fitnets": lambda: tfkd.losses.FeatureDistillation("t_embed", "s_embed"),
    "attention": lambda: tfkd.losses.AttentionTransfer([("t_conv", "s_conv")]),
    "rkd": lambda: tfkd.losses.RKDDistance("t_embed", "s_embed"),
    "sp": lambda: tfkd.losses.SimilarityPreserving("t_embed", "s_embed"),
    "pkt": lambda: tfkd.losses.PKT("t_embed", "s_embed"),
}


# FitNets under every wrapper kind; each other loss under one kind (the lookup they share is
# the Distiller's; those run with `make test-slow`).
@pytest.mark.parametrize(
    "kind, loss",
    [(kind, "fitnets") for kind in sorted(COMPRESS)]
    + [pytest.param(kind, loss, marks=pytest.mark.slow) for kind, loss in
       [("quantized", "attention"), ("clustered", "rkd"), ("pruned_2_4", "sp"), ("pruned", "pkt")]],
)
def test_losses_read_named_layers_of_a_wrapped_student(kind, loss, tiny_data):
    x, y = tiny_data
    keras.utils.set_random_seed(0)
    student = COMPRESS[kind](build_tiny_student())
    distiller = tfkd.Distiller(teacher=build_tiny_teacher(), student=student,
                               distillation_losses=[_LOSSES[loss]()])
    distiller.compile(optimizer="adam", loss=SCCE)
    history = distiller.fit(x, y, epochs=1, batch_size=32, verbose=0)
    assert np.isfinite(history.history["distillation_loss"][0])
    assert history.history["distillation_loss"][0] > 0


def test_iterative_prune_with_a_loss_on_named_layers(tiny_data):
    x, y = tiny_data
    distiller = tfkd.Distiller(
        teacher=build_tiny_teacher(), student=build_tiny_student(),
        distillation_losses=[tfkd.losses.FeatureDistillation("t_embed", "s_embed")],
    )
    distiller.compile(optimizer="adam", loss=SCCE)
    result = tfkd.iterative_prune(distiller, (x, y), sparsities=[0.5, 0.7], epochs_per_round=1,
                                  batch_size=16, verbose=0)
    assert tfkd.sparsity(result.model).layers["s_embed"] == pytest.approx(0.7, abs=0.01)


def test_strip_removes_every_training_wrapper_kind_and_keeps_qat():
    student = build_tiny_student()
    for kind in ("pruned", "pruned_2_4", "clustered"):
        stripped = tfkd.strip(COMPRESS[kind](student))
        assert wrappers.training_wrappers(stripped) == []
        assert [layer.name for layer in stripped.layers] == [layer.name for layer in
                                                             student.layers]
    qat = tfkd.quantize(student)
    assert tfkd.strip(qat) is qat

