"""Sensitivity analysis: how much accuracy each layer loses when pruned alone, one-shot."""

import os
from typing import Any

import numpy as np

from tfkd._keras import keras
from tfkd._validation import check_non_negative
from tfkd.export._atomic import atomic_file
from tfkd.optimize._common import (
    accuracy,
    check_graph_model,
    check_layer_names,
    clone_with,
    is_kernel,
    split_data,
)
from tfkd.optimize.pruning import check_not_pruned, check_sparsity, prunable_layers
from tfkd.optimize.wrappers import iter_layers, unwrap


class SensitivityResult:
    """What `tfkd.sensitivity` returns: accuracy per layer and sparsity, and a pruning plan.

    Attributes:
        baseline: Accuracy of the unpruned model.
        table: `{layer_name: {sparsity: accuracy}}` for every analysed layer.
        sparsities: The sparsities tried, in rising order.
    """

    def __init__(self, baseline: float, table: Any, sparsities: Any) -> None:
        self.baseline = float(baseline)
        self.table = table
        self.sparsities = tuple(sparsities)

    def suggest(self, max_accuracy_drop: float = 0.01) -> dict[str, float]:
        """The highest sparsity per layer whose accuracy stays within the budget.

        Args:
            max_accuracy_drop: Largest accepted drop below `baseline` (0.01 = one point).
                Defaults to `0.01`.

        Returns:
            `{layer_name: sparsity}`, which `tfkd.prune(model, target_sparsity=plan)` accepts.
            Layers that lose more than the budget even at the lowest sparsity are left out.
        """
        budget = check_non_negative("max_accuracy_drop", max_accuracy_drop)
        plan = {}
        for layer, row in self.table.items():
            within = [s for s, acc in row.items() if self.baseline - acc <= budget + 1e-12]
            if within:
                plan[layer] = max(within)
        return plan

    def plot(self, path: str | os.PathLike[str]) -> str:
        """Writes a PNG with one line per layer: accuracy against sparsity (baseline dashed).

        Args:
            path: File to write (atomically: a partial file is never left behind).

        Returns:
            The path written, as a string.
        """
        from matplotlib.figure import Figure  # no pyplot, no backend switch: no global state

        path = os.fspath(path)
        figure = Figure(figsize=(6, 4))
        axes = figure.add_subplot()
        for layer, row in self.table.items():
            axes.plot(list(row), list(row.values()), marker="o", label=layer)
        axes.axhline(self.baseline, color="gray", linestyle="--", label="baseline")
        axes.set_xlabel("sparsity of the layer (others dense)")
        axes.set_ylabel("accuracy")
        axes.set_title("Pruning sensitivity per layer (one-shot)")
        axes.legend(fontsize="small")
        figure.tight_layout()
        with atomic_file(path) as temporary:
            figure.savefig(temporary, format="png", dpi=100)
        return path

    def __repr__(self):
        return (
            f"SensitivityResult(baseline={self.baseline:.4f}, layers={list(self.table)}, "
            f"sparsities={list(self.sparsities)})"
        )


def sensitivity(
    model: keras.Model,
    data: Any,
    sparsities: Any = (0.25, 0.5, 0.75, 0.9),
    layers: Any = None,
    verbose: int = 1,
) -> SensitivityResult:
    """Prunes one layer at a time at each sparsity (one-shot, no retraining) and evaluates.

    For each prunable layer and sparsity, the smallest-magnitude weights of that layer's kernel are
    zeroed (the others stay dense) and the accuracy on `data` measured, then the kernel restored.
    Layers whose accuracy barely moves can be pruned hard; `suggest()` turns the table into a plan
    for `tfkd.prune`. The input model is not changed.

    Args:
        model: A trained Sequential or Functional classifier (a `tfkd.keras.Model`).
        data: `(x, y)` arrays or a batched `tf.data.Dataset` of `(x, y)` to measure accuracy on.
        sparsities: Sparsities to try, each in (0, 1). Defaults to `(0.25, 0.5, 0.75, 0.9)`.
        layers: Names of the layers to analyse, or `None` for every prunable layer.
            Defaults to `None`.
        verbose: 1 shows a progress bar; 0 is silent. Defaults to `1`.

    Returns:
        A `SensitivityResult` with `.baseline`, `.table`, `.plot(path)` and `.suggest(...)`.

    Raises:
        TypeError: If `data` or `sparsities` is malformed.
        ValueError: If a sparsity is outside (0, 1), `layers` names unknown layers, or the model
            has nothing prunable or is already pruned.

    Example:
    >>> result = tfkd.sensitivity(student, (x_test, y_test))
    >>> result.plot("sensitivity.png")
    >>> pruned = tfkd.prune(student, target_sparsity=result.suggest(max_accuracy_drop=0.01))
    """
    model = check_graph_model("model", model)
    check_not_pruned(model)
    data = split_data("data", data)
    if not isinstance(sparsities, (list, tuple)) or not sparsities:
        raise TypeError(
            "`sparsities` must be a non-empty list of numbers in (0, 1). "
            f"Received: sparsities={sparsities!r}."
        )
    sparsities = sorted({check_sparsity("sparsities[i]", s) for s in sparsities})
    names = _layer_names(model, layers)
    work = clone_with(model, lambda original, copy: copy)
    by_name = {unwrap(layer).name: layer for layer in iter_layers(work)}
    baseline = accuracy(work, data)
    bar = keras.utils.Progbar(len(names) * len(sparsities), verbose=verbose, unit_name="eval")
    table: dict[str, Any] = {}
    for name in names:
        variables = [v for v in by_name[name].weights if is_kernel(v)]
        saved = [v.numpy() for v in variables]
        table[name] = {}
        for fraction in sparsities:
            for variable, value in zip(variables, saved, strict=True):
                variable.assign(magnitude_prune(value, fraction))
            table[name][fraction] = accuracy(work, data)
            bar.add(1)
        for variable, value in zip(variables, saved, strict=True):
            variable.assign(value)
    return SensitivityResult(baseline, table, sparsities)


def magnitude_prune(values, fraction):
    """`values` with the `round(fraction * size)` smallest-magnitude entries set to zero."""
    values = np.asarray(values)
    count = int(round(fraction * values.size))
    if count == 0:
        return values.copy()
    flat = values.reshape(-1).copy()
    flat[np.argpartition(np.abs(flat), count - 1)[:count]] = 0
    return flat.reshape(values.shape)


def _layer_names(model, layers):
    prunable = [layer.name for layer in prunable_layers(model)]
    if not prunable:
        types = sorted({type(layer).__name__ for layer in iter_layers(model)})
        raise ValueError(
            f"`model` has no layer that can be pruned. Received: model={model.name!r} with layer "
            f"types {types}."
        )
    if layers is None:
        return prunable
    if isinstance(layers, str) or not isinstance(layers, (list, tuple)):
        raise TypeError(
            f"`layers` must be a list of layer names. Received: layers={layers!r}."
        )
    check_layer_names("layers", list(layers), prunable, "prunable")
    return list(layers)
