"""Magnitude pruning over TF-MOT: `prune` and `sparsity` (`strip` lives in `wrappers`).

`prune` wraps layer by layer (TF-MOT's whole-model path refuses layers such as `Rescaling`), so a
model keeps what cannot be pruned and prunes the rest. With `end_step=None` the schedule's steps are
derived when the first `fit` starts (see `tfkd.optimize.callbacks`).
"""

import dataclasses
import re
from typing import Any

import numpy as np

from tfkd._validation import check_int, check_number
from tfkd.optimize._common import (
    check_graph_model,
    check_layer_names,
    clone_with,
    kernels,
    select_layers,
    tfmot,
)
from tfkd.optimize.channels import check_channel_options, prune_channels
from tfkd.optimize.wrappers import (
    is_pruning_wrapper,
    iter_layers,
    prune_wrapper_class,
    structured_prune_wrapper_class,
    unwrap,
    wrapped_layers,
)

__all__ = ["prune", "sparsity", "SparsityReport", "check_sparsity", "check_not_pruned",
           "prunable_layers", "parse_structure"]


def prune(
    model: Any,
    target_sparsity: float | dict[str, float] = 0.8,
    schedule: Any = "polynomial",
    begin_step: int = 0,
    end_step: int | None = None,
    frequency: int = 100,
    structure: str | None = None,
    block_size: Any = None,
    policy: Any = None,
    layers: Any = None,
    initial_sparsity: float = 0.0,
) -> Any:
    """Returns a copy of `model` whose prunable layers learn to be sparse during training.

    Low-magnitude weights of each selected layer's kernel are zeroed on a schedule while the model
    trains (in `Distiller.fit`, or a plain `fit` with `callbacks=tfkd.callbacks()`). Layers TF-MOT
    cannot prune (e.g. `Rescaling`, pooling) are kept as they are. The input model is not changed.
    Call `tfkd.strip` after training to remove the wrappers.

    With `end_step=None` the target is reached two-thirds of the way through the first `fit` that
    trains the model: its end step is derived when that fit starts, from its epochs and steps per
    epoch. `frequency` (steps between mask updates) is then clamped so that the masks are updated
    at least 10 times before the end step (a short fit gets a smaller frequency), and the end step
    is rounded down to a multiple of the frequency, so that the last update reaches the target.
    The schedule keeps this state through `save`, `tfkd.load_model` and `clone_model`
    (`tfkd.optimize.schedules`). An explicit `end_step` clamps `frequency` to at most
    `end_step - begin_step`.

    A mixed plan prunes some layers unstructured and others m:n in one call: give
    `target_sparsity` as a dict whose values are sparsities or `"m:n"` strings, e.g.
    `{"conv": 0.5, "hidden": "2:4"}` (as TF-MOT's 2:4 guide wraps layers one by one).

    Args:
        model: A Sequential or Functional `tfkd.keras.Model`.
        target_sparsity: Fraction of zeros to reach in each kernel, in (0, 1); or a dict
            `{layer_name: sparsity or "m:n"}` (e.g. from `tfkd.sensitivity(...).suggest()`)
            pruning only those layers. Defaults to `0.8`.
        schedule: `"polynomial"` (sparsity rises fast, then levels off at the target), `"constant"`
            (the target from `begin_step` on) or a TF-MOT `PruningSchedule`, used as given.
            Defaults to `"polynomial"`.
        begin_step: Training step at which pruning starts. Defaults to `0`.
        end_step: Step at which the target is reached, or `None` to derive it from the first fit.
            Defaults to `None`.
        frequency: Steps between mask updates (clamped, see above). Defaults to `100`.
        structure: `"m:n"` structured sparsity for every selected layer (e.g. `"2:4"`: at least m
            zeros in every n consecutive input weights), `"channels"` (whole filters and units,
            which `tfkd.strip` then cuts out: see `tfkd.optimize.channels.prune_channels`), or
            `None`. Defaults to `None`.
        block_size: `(height, width)` blocks pruned together (rank-2 kernels, unstructured layers),
            or `None`. Defaults to `None`.
        policy: `"xnnpack"` (TF-MOT's `PruneForLatencyOnXNNPack`: prunes only what XNNPACK's
            sparse kernels speed up), a TF-MOT `PruningPolicy`, or `None`. Defaults to `None`.
        layers: Layer names and/or layer classes to prune, or `None` for every prunable layer.
            Defaults to `None`.
        initial_sparsity: Sparsity at `begin_step` of a polynomial schedule, in [0, 1) (e.g. the
            sparsity a previous round reached). Defaults to `0.0`.

    Returns:
        A new `tfkd.keras.Model` holding TF-MOT `PruneLowMagnitude` wrappers.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If the model is subclassed, already pruned or has nothing prunable; if
            `target_sparsity` is outside (0, 1) or names unknown layers; if `structure` is
            malformed.

    Example:
    >>> pruned = tfkd.prune(student, target_sparsity=0.8)
    >>> tfkd.Distiller(teacher=teacher, student=pruned).compile(...).fit(x, y, epochs=6)
    >>> small = tfkd.strip(pruned)
    >>> mixed = tfkd.prune(student, target_sparsity={"conv": 0.5, "hidden": "2:4"})
    """
    if structure == "channels":  # whole filters and units, cut out by strip
        check_channel_options(block_size, policy, initial_sparsity)
        return prune_channels(model, target_sparsity, schedule, begin_step, end_step, frequency,
                              layers)
    model = check_graph_model("model", model)
    check_not_pruned(model)
    begin_step = check_int("begin_step", begin_step, minimum=0)
    if end_step is not None:
        end_step = check_int("end_step", end_step, minimum=begin_step + 1)
    frequency = check_int("frequency", frequency, minimum=1)
    if end_step is not None:
        frequency = min(frequency, end_step - begin_step)
    initial_sparsity = _check_initial_sparsity(initial_sparsity)
    default_structure = parse_structure("structure", structure)
    block = _check_block_size(block_size)
    if default_structure and block_size is not None:
        raise ValueError(
            "`structure` and `block_size` cannot be combined. Received: "
            f"structure={structure!r}, block_size={block_size!r}. Pass one of them."
        )
    policy = _resolve_policy(policy)
    prunable = prunable_layers(model, policy)
    plan = _plan(model, target_sparsity, layers, prunable, schedule, default_structure)
    if policy is not None:
        policy.ensure_model_supports_pruning(model)
    wrappers = {
        name: _wrapper_for(
            _make_schedule(schedule, sparsity, begin_step, end_step, frequency, initial_sparsity),
            m_by_n,
            block,
        )
        for name, (sparsity, m_by_n) in plan.items()
    }

    def transform(original, copy):
        make = wrappers.get(original.name)
        return copy if make is None else make(copy)

    return clone_with(model, transform)


def _wrapper_for(schedule, m_by_n, block):
    """A function wrapping one layer: tfkd's structured wrapper for m:n, else TF-MOT's."""
    if m_by_n is not None:
        wrapper = structured_prune_wrapper_class()
        return lambda layer: wrapper(layer, pruning_schedule=schedule, sparsity_m_by_n=m_by_n)
    wrapper = prune_wrapper_class()
    return lambda layer: wrapper(layer, pruning_schedule=schedule, block_size=block)


def check_not_pruned(model):
    """Raises a `ValueError` naming the fix if `model` already holds pruning wrappers."""
    wrapped = [layer.name for layer in wrapped_layers(model, is_pruning_wrapper)]
    if wrapped:
        raise ValueError(
            "`model` is already pruned: it holds pruning wrappers "
            f"{wrapped}. Received: model={model.name!r}. Call `tfkd.strip(model)` first, then "
            "prune the stripped model (or use `tfkd.iterative_prune` for rounds of pruning). To "
            "prune some layers unstructured and others m:n, pass one plan in one call: "
            "`tfkd.prune(model, target_sparsity={'conv': 0.5, 'dense': '2:4'})`."
        )


def prunable_layers(model, policy=None):
    """Layers TF-MOT can prune that hold weights to prune (layers without any are left alone)."""
    registry = tfmot().sparsity.keras.PrunableLayer
    from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import (
        PruneRegistry,
    )

    found = []
    for layer in iter_layers(model):
        if isinstance(layer, registry) or hasattr(layer, "get_prunable_weights"):
            found.append(layer)
        elif PruneRegistry.supports(layer) and _has_prunable_weights(PruneRegistry, layer):
            if policy is None or policy.allow_pruning(layer):
                found.append(layer)
    return found


def _has_prunable_weights(registry, layer):
    if registry._is_rnn_layer(layer) or registry._is_mha_layer(layer):
        return True
    return bool(registry._weight_names(layer))


def _plan(model, target_sparsity, layers, prunable, schedule, default_structure):
    """`{layer_name: (sparsity, m_by_n or None)}` for every layer to wrap."""
    if not prunable:
        types = sorted({type(layer).__name__ for layer in iter_layers(model)})
        raise ValueError(
            f"`model` has no layer that can be pruned. Received: model={model.name!r} with layer "
            f"types {types}. Pruning acts on the kernels of Dense, Conv, Embedding and recurrent "
            "layers; add such a layer, or give a custom layer a `get_prunable_weights` method."
        )
    if isinstance(target_sparsity, dict):
        if layers is not None:
            raise ValueError(
                "`layers` cannot be combined with a dict `target_sparsity` (its keys already pick "
                f"the layers). Received: layers={layers!r}. Drop `layers=`."
            )
        if not target_sparsity:
            raise ValueError(
                "`target_sparsity` must name at least one layer. Received: target_sparsity={}. "
                "Pass e.g. `{'dense': 0.8}` or a number."
            )
        check_layer_names(
            "target_sparsity", list(target_sparsity), {layer.name for layer in prunable}, "prunable"
        )
        return {
            name: _plan_entry(f"target_sparsity[{name!r}]", value, default_structure)
            for name, value in target_sparsity.items()
        }
    if isinstance(schedule, str) and default_structure is None:
        target_sparsity = check_sparsity("target_sparsity", target_sparsity)
    names = select_layers("layers", layers, prunable)
    entry = _plan_entry("target_sparsity", target_sparsity, default_structure, check=False)
    return dict.fromkeys(names, entry)


def _plan_entry(name, value, default_structure, check=True):
    """`(sparsity, m_by_n)` for one layer: a number (unstructured or `structure=`) or "m:n"."""
    if isinstance(value, str):
        m_by_n = parse_structure(name, value)
        return m_by_n[0] / m_by_n[1], m_by_n
    if default_structure is not None:
        return default_structure[0] / default_structure[1], default_structure
    return (check_sparsity(name, value) if check else value), None


def check_sparsity(name, value):
    """`value` as a float strictly between 0 and 1; a `TypeError`/`ValueError` naming `name`."""
    value = check_number(name, value)
    if not 0.0 < value < 1.0:
        raise ValueError(
            f"`{name}` must be strictly between 0 and 1 (the fraction of zeros). "
            f"Received: {name}={value!r}. E.g. 0.8 for 80% zeros."
        )
    return value


def _check_initial_sparsity(value):
    value = check_number("initial_sparsity", value)
    if not 0.0 <= value < 1.0:
        raise ValueError(
            "`initial_sparsity` must be in [0, 1) (the sparsity at `begin_step`). "
            f"Received: initial_sparsity={value!r}. E.g. 0.5 to continue from 50% zeros."
        )
    return value


def _make_schedule(schedule, sparsity, begin_step, end_step, frequency, initial_sparsity):
    sparsity_api = tfmot().sparsity.keras
    if isinstance(schedule, sparsity_api.PruningSchedule):
        return schedule
    if schedule not in ("polynomial", "constant"):
        raise ValueError(
            "`schedule` must be 'polynomial', 'constant' or a TF-MOT `PruningSchedule`. "
            f"Received: schedule={schedule!r}. E.g. "
            "`tfmot.sparsity.keras.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=1000)`."
        )
    from tfkd.optimize import schedules

    if schedule == "constant":
        if end_step is None:
            return schedules.FitConstantSparsity(sparsity, begin_step, None, frequency)
        return sparsity_api.ConstantSparsity(sparsity, begin_step, end_step, frequency)
    if end_step is None:
        return schedules.FitPolynomialDecay(initial_sparsity, sparsity, begin_step, None,
                                            frequency=frequency)
    return sparsity_api.PolynomialDecay(initial_sparsity, sparsity, begin_step, end_step,
                                        frequency=frequency)


def parse_structure(name, structure):
    """`(m, n)` from an `"m:n"` string, or `None` for `None`; errors name the argument `name`."""
    if structure is None:
        return None
    if not isinstance(structure, str):
        raise TypeError(
            f"`{name}` must be a string 'm:n' (e.g. '2:4') or None. "
            f"Received: {name}={structure!r} (of type {type(structure).__name__})."
        )
    match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", structure)
    if not match or not 0 < int(match.group(1)) < int(match.group(2)):
        raise ValueError(
            f"`{name}` must be 'm:n' with 0 < m < n: at least m zeros in every n consecutive "
            f"weights. Received: {name}={structure!r}. E.g. {name}='2:4'."
        )
    return int(match.group(1)), int(match.group(2))


def _check_block_size(block_size):
    if block_size is None:
        return (1, 1)
    if (
        not isinstance(block_size, (list, tuple))
        or len(block_size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in block_size)
    ):
        raise ValueError(
            "`block_size` must be two positive integers (height, width). "
            f"Received: block_size={block_size!r}. E.g. block_size=(1, 4)."
        )
    return tuple(block_size)


def _resolve_policy(policy):
    sparsity_api = tfmot().sparsity.keras
    if policy is None or isinstance(policy, sparsity_api.PruningPolicy):
        return policy
    if policy == "xnnpack":
        return sparsity_api.PruneForLatencyOnXNNPack()
    raise ValueError(
        "`policy` must be None, 'xnnpack' or a TF-MOT `PruningPolicy`. "
        f"Received: policy={policy!r}."
    )


# ------------------------------------------------------------------------------------ sparsity


@dataclasses.dataclass
class SparsityReport:
    """Fractions of exact zeros in a model's kernels, as `tfkd.sparsity` measures them.

    Attributes:
        layers: `{layer_name: fraction_of_zeros}` for every layer holding a kernel (Dense, Conv,
            Embedding, ...), named by the layer inside any wrapper.
        overall: Zeros over all those kernels' weights (biases and other weights not counted).
        zeros: Number of zero weights in those kernels.
        total: Number of weights in those kernels.
    """

    layers: dict
    overall: float
    zeros: int
    total: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def sparsity(model: Any) -> SparsityReport:
    """Measures the fraction of exact zeros in each kernel of `model` and overall.

    Reads the real kernel values (through pruning, clustering and QAT wrappers), so it says what an
    exported file will hold, not what a schedule intends.

    Args:
        model: A `tfkd.keras.Model`.

    Returns:
        A `SparsityReport` (`.layers`, `.overall`, `.zeros`, `.total`).

    Example:
    >>> tfkd.sparsity(tfkd.strip(pruned)).layers
    {'hidden': 0.8, 'logits': 0.8}
    """
    model = check_graph_model("model", model)
    per_layer, zeros, total = {}, 0, 0
    for layer in iter_layers(model):
        values = kernels(layer)
        if not values:
            continue
        layer_zeros = sum(int(np.sum(v == 0)) for v in values)
        layer_total = sum(v.size for v in values)
        per_layer[unwrap(layer).name] = layer_zeros / layer_total
        zeros += layer_zeros
        total += layer_total
    return SparsityReport(per_layer, zeros / total if total else 0.0, zeros, total)
