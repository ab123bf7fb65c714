"""End to end on the bundled digits: distill, prune to 80% inside the distillation, then PQAT."""

import pytest

import tfkd
from tfkd import keras
from tfkd.optimize._common import accuracy

SCCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _distill(teacher, student, data, epochs, learning_rate):
    distiller = tfkd.Distiller(teacher=teacher, student=student)
    distiller.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=SCCE,
                      metrics=["accuracy"])
    return distiller.fit(*data, epochs=epochs, batch_size=32, verbose=0)


@pytest.mark.slow
def test_distill_prune_80_then_pqat_keeps_zeros_and_accuracy(trained_teacher, digits):
    train, test = digits
    keras.utils.set_random_seed(0)
    dense = tfkd.models.build_student()
    _distill(trained_teacher, dense, train, epochs=10, learning_rate=3e-3)
    dense_accuracy = accuracy(dense, test)
    assert dense_accuracy > 0.9

    pruned = tfkd.prune(dense, target_sparsity=0.8)  # end step: 2/3 through the next fit
    history = _distill(trained_teacher, pruned, train, epochs=5, learning_rate=3e-3)
    assert "distillation_loss" in history.history
    stripped = tfkd.strip(pruned)
    after_pruning = tfkd.sparsity(stripped)
    assert set(after_pruning.layers) == {"hidden", "logits"}
    for name, value in after_pruning.layers.items():
        assert value >= 0.79, name

    qat = tfkd.quantize(stripped, preserve="sparsity")
    _distill(trained_teacher, qat, train, epochs=2, learning_rate=1e-3)
    after_qat = tfkd.sparsity(qat)
    for name, value in after_qat.layers.items():
        assert value >= 0.79, name
        assert value == after_pruning.layers[name]  # not one zero lost
    assert accuracy(qat, test) >= dense_accuracy - 0.02
