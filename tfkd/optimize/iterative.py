"""Incremental pruning: `iterative_prune` repeats prune then fine-tune, one sparsity at a time."""

import dataclasses
import itertools
from typing import Any

from tfkd._keras import keras, tf
from tfkd._validation import check_int
from tfkd.optimize._common import accuracy, split_data
from tfkd.optimize.callbacks import training_callbacks
from tfkd.optimize.pruning import check_sparsity, prune, sparsity
from tfkd.optimize.wrappers import is_pruning_wrapper, strip, wrapped_layers


@dataclasses.dataclass
class PruningRounds:
    """What `tfkd.iterative_prune` returns.

    Attributes:
        model: The final student, stripped of pruning wrappers (a plain `tfkd.keras.Model`).
        rounds: One dict per round: `round`, `target_sparsity`, `sparsity` (reached, over the
            pruned kernels), `accuracy` (on the validation data, else the training data).
    """

    model: object
    rounds: list

    def __str__(self):
        lines = ["round  target  reached  accuracy"]
        lines += [
            f"{r['round']:>5}  {r['target_sparsity']:>6.2f}  {r['sparsity']:>7.3f}  "
            f"{r['accuracy']:>8.4f}"
            for r in self.rounds
        ]
        return "\n".join(lines)


def iterative_prune(
    model_or_distiller: Any,
    data: Any,
    sparsities: Any = (0.5, 0.7, 0.8),
    epochs_per_round: int = 2,
    validation_data: Any = None,
    batch_size: int | None = 32,
    verbose: int = 1,
    **prune_kwargs: Any,
) -> Any:
    """Prunes in rounds of rising sparsity, fine-tuning (or distilling) after each.

    Each round wraps the current model with `tfkd.prune` (a polynomial schedule from the previous
    round's sparsity to this round's, reached two-thirds through the round), trains it for
    `epochs_per_round` epochs, strips the wrappers and measures sparsity and accuracy. Gradual
    pruning keeps more accuracy at high sparsity than one step (Zhu & Gupta, 2017).

    With a compiled `Distiller` the rounds are distilled: the distiller is re-pointed at each
    round's pruned student (its optimizer restarts from its config each round); afterwards
    `distiller.student` is the last round's student, wrappers still in place. A plain model must be
    compiled; each round compiles a pruned copy the same way (the input model is not changed).

    Args:
        model_or_distiller: A compiled `tfkd.keras.Model`, or a compiled `tfkd.Distiller`.
        data: Training data: `(x, y)` arrays or a batched `tf.data.Dataset` of `(x, y)`.
        sparsities: Increasing target sparsities, each in (0, 1), one per round.
            Defaults to `(0.5, 0.7, 0.8)`.
        epochs_per_round: Training epochs per round, at least 1. Defaults to `2`.
        validation_data: `(x, y)` or a dataset on which accuracy is reported, or `None` to
            report it on `data`. Defaults to `None`.
        batch_size: Batch size for array data. Defaults to `32`.
        verbose: 1 prints one line per round; 0 is silent. Defaults to `1`.
        **prune_kwargs: Passed to `tfkd.prune` (e.g. `layers=`, `structure=`, `frequency=`).

    Returns:
        A `PruningRounds` with `.model` (the stripped final model) and `.rounds`.

    Raises:
        TypeError: If `model_or_distiller` is neither, or `data` is malformed.
        ValueError: If the model is not compiled or `sparsities` do not rise within (0, 1).

    Example:
    >>> result = tfkd.iterative_prune(distiller, (x, y), sparsities=[0.5, 0.7, 0.8])
    >>> print(result); small = result.model
    """
    from tfkd.distiller import Distiller

    trainer = _check_trainer(model_or_distiller)
    sparsities = _check_sparsities(sparsities)
    epochs_per_round = check_int("epochs_per_round", epochs_per_round, minimum=1)
    data = split_data("data", data)
    validation_data = data if validation_data is None else split_data(
        "validation_data", validation_data
    )
    is_distiller = isinstance(trainer, Distiller)
    current = strip(trainer.student if is_distiller else trainer)
    optimizer_config = keras.optimizers.serialize(trainer.optimizer)
    options = _prune_options(prune_kwargs)
    rounds, previous = [], 0.0
    for index, target in enumerate(sparsities, start=1):
        pruned = prune(current, target, "polynomial", 0, None, **options,
                       initial_sparsity=previous)
        fitted = _rebind(trainer, pruned, optimizer_config, is_distiller)
        _fit(fitted, data, epochs_per_round, batch_size)
        current = strip(pruned)
        measured = sparsity(current)
        pruned_names = [unwrapped for unwrapped in measured.layers if unwrapped in _pruned(pruned)]
        reached = min((measured.layers[n] for n in pruned_names), default=0.0)
        rounds.append({
            "round": index,
            "target_sparsity": target,
            "sparsity": reached,
            "accuracy": accuracy(current, validation_data),
        })
        if verbose:
            r = rounds[-1]
            print(f"tfkd.iterative_prune round {index}/{len(sparsities)}: target {target:.2f}, "
                  f"reached {r['sparsity']:.3f}, accuracy {r['accuracy']:.4f}")
        previous = target
    return PruningRounds(current, rounds)


def _check_trainer(model_or_distiller):
    if not isinstance(model_or_distiller, keras.Model):
        raise TypeError(
            "`model_or_distiller` must be a compiled `tfkd.keras.Model` or `tfkd.Distiller`. "
            f"Received: model_or_distiller of type {type(model_or_distiller).__name__}."
        )
    if getattr(model_or_distiller, "optimizer", None) is None:
        raise ValueError(
            "`model_or_distiller` must be compiled: each round trains it. Received: "
            f"an uncompiled {type(model_or_distiller).__name__} "
            f"(name={model_or_distiller.name!r}). Call `compile(...)` first."
        )
    return model_or_distiller


def _check_sparsities(sparsities):
    if not isinstance(sparsities, (list, tuple)) or not sparsities:
        raise TypeError(
            "`sparsities` must be a non-empty list of numbers in (0, 1). "
            f"Received: sparsities={sparsities!r}. E.g. sparsities=[0.5, 0.7, 0.8]."
        )
    values = [check_sparsity("sparsities[i]", s) for s in sparsities]
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise ValueError(
            "`sparsities` must rise from round to round. "
            f"Received: sparsities={list(sparsities)!r}. E.g. sparsities=[0.5, 0.7, 0.8]."
        )
    return values


def _prune_options(kwargs):
    options = {"frequency": 100, "structure": None, "block_size": None, "policy": None,
               "layers": None}
    unknown = sorted(set(kwargs) - set(options))
    if unknown:
        raise TypeError(
            f"`iterative_prune` passes only {sorted(options)} on to `tfkd.prune`. "
            f"Received: {unknown}."
        )
    return {**options, **kwargs}


def _pruned(model):
    return {layer.layer.name for layer in wrapped_layers(model, is_pruning_wrapper)}


def _rebind(trainer, pruned, optimizer_config, is_distiller):
    """The model to fit this round: the distiller re-pointed at `pruned`, or `pruned` compiled."""
    optimizer = keras.optimizers.deserialize(optimizer_config)
    if is_distiller:
        trainer.student = pruned
        trainer._prepare_losses()
        trainer.optimizer = optimizer
        trainer.train_function = trainer.test_function = trainer.predict_function = None
        return trainer
    args = trainer._get_compile_args()
    args["optimizer"] = optimizer
    pruned.compile(**args)
    return pruned


def _fit(model, data, epochs, batch_size):
    # Distiller.fit adds the pruning callbacks itself; a plain model gets them here.
    callbacks = training_callbacks(model, None)
    if isinstance(data, tf.data.Dataset):
        model.fit(data, epochs=epochs, verbose=0, callbacks=callbacks)
    else:
        model.fit(data[0], data[1], epochs=epochs, batch_size=batch_size, verbose=0,
                  callbacks=callbacks)
