"""Magnitude pruning over TF-MOT: `prune`, `strip`, `sparsity` and `iterative_prune`.

`prune` wraps layer by layer (TF-MOT's whole-model path refuses layers such as `Rescaling`), so a
model keeps what cannot be pruned and prunes the rest. With `end_step=None` the schedule's steps are
derived when the first `fit` starts (see `tfkd.optimize.callbacks`).
"""

import dataclasses
import re

import numpy as np

from tfkd._validation import check_int, check_number
from tfkd.optimize._common import (
    check_graph_model,
    check_layer_names,
    clone_with,
    cluster_wrapper_class,
    iter_layers,
    kernels,
    prune_wrapper_class,
    select_layers,
    structured_prune_wrapper_class,
    tfmot,
    unwrap,
)
from tfkd.optimize.channels import check_channel_options, prune_channels, strip_channels

# Set on schedules whose end step is derived by the first fit; read by the callbacks module.
AUTO_END_STEP = "_tfkd_auto_end_step"


def prune(
    model,
    target_sparsity=0.8,
    schedule="polynomial",
    begin_step=0,
    end_step=None,
    frequency=100,
    structure=None,
    block_size=None,
    policy=None,
    layers=None,
):
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
    An explicit `end_step` clamps `frequency` to at most `end_step - begin_step`.

    Args:
        model: A Sequential or Functional `tfkd.keras.Model`.
        target_sparsity: Fraction of zeros to reach in each kernel, in (0, 1); or a dict
            `{layer_name: sparsity}` (e.g. from `tfkd.sensitivity(...).suggest()`) pruning only
            those layers. Defaults to `0.8`.
        schedule: `"polynomial"` (sparsity rises fast, then levels off at the target), `"constant"`
            (the target from `begin_step` on) or a TF-MOT `PruningSchedule`, used as given.
            Defaults to `"polynomial"`.
        begin_step: Training step at which pruning starts. Defaults to `0`.
        end_step: Step at which the target is reached, or `None` to derive it from the first fit.
            Defaults to `None`.
        frequency: Steps between mask updates (clamped, see above). Defaults to `100`.
        structure: `"m:n"` structured sparsity (e.g. `"2:4"`: at least m zeros in every n
            consecutive input weights), or `None`. Defaults to `None`.
        block_size: `(height, width)` blocks pruned together (rank-2 kernels), or `None`.
            Defaults to `None`.
        policy: `"xnnpack"` (TF-MOT's `PruneForLatencyOnXNNPack`: prunes only what XNNPACK's
            sparse kernels speed up), a TF-MOT `PruningPolicy`, or `None`. Defaults to `None`.
        layers: Layer names and/or layer classes to prune, or `None` for every prunable layer.
            Defaults to `None`.

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
    """
    return _prune(model, target_sparsity, schedule, begin_step, end_step, frequency, structure,
                  block_size, policy, layers)


def _prune(model, target_sparsity, schedule, begin_step, end_step, frequency, structure,
           block_size, policy, layers, initial_sparsity=0.0):
    if structure == "channels":  # whole filters and units, cut out by strip
        check_channel_options(block_size, policy, initial_sparsity)
        return prune_channels(model, target_sparsity, schedule, begin_step, end_step, frequency,
                              layers)
    model = check_graph_model("model", model)
    _check_not_pruned(model)
    begin_step = check_int("begin_step", begin_step, minimum=0)
    if end_step is not None:
        end_step = check_int("end_step", end_step, minimum=begin_step + 1)
    frequency = check_int("frequency", frequency, minimum=1)
    if end_step is not None:
        frequency = min(frequency, end_step - begin_step)
    params = {
        "block_size": _check_block_size(block_size),
        "sparsity_m_by_n": _parse_structure(structure),
    }
    if params["sparsity_m_by_n"] and block_size is not None:
        raise ValueError(
            "`structure` and `block_size` cannot be combined. Received: "
            f"structure={structure!r}, block_size={block_size!r}. Pass one of them."
        )
    policy = _resolve_policy(policy)
    prunable = _prunable_layers(model, policy)
    plan = _plan(model, target_sparsity, layers, prunable, schedule)
    if policy is not None:
        policy.ensure_model_supports_pruning(model)
    schedules = {
        name: _make_schedule(schedule, sparsity, begin_step, end_step, frequency, initial_sparsity)
        for name, sparsity in plan.items()
    }
    structured = params["sparsity_m_by_n"] is not None
    wrapper = structured_prune_wrapper_class() if structured else prune_wrapper_class()

    def transform(original, copy):
        if original.name not in schedules:
            return copy
        return wrapper(copy, pruning_schedule=schedules[original.name], **params)

    return clone_with(model, transform)


def _check_not_pruned(model):
    wrapper = prune_wrapper_class()
    wrapped = [layer.name for layer in iter_layers(model) if isinstance(layer, wrapper)]
    if wrapped:
        raise ValueError(
            "`model` is already pruned: it holds pruning wrappers "
            f"{wrapped}. Received: model={model.name!r}. Call `tfkd.strip(model)` first, then "
            "prune the stripped model (or use `tfkd.iterative_prune` for rounds of pruning)."
        )


def _prunable_layers(model, policy):
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


def _plan(model, target_sparsity, layers, prunable, schedule):
    """`{layer_name: sparsity}` for every layer to wrap."""
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
            name: _check_sparsity(f"target_sparsity[{name!r}]", value)
            for name, value in target_sparsity.items()
        }
    if isinstance(schedule, str):
        target_sparsity = _check_sparsity("target_sparsity", target_sparsity)
    names = select_layers("layers", layers, prunable)
    return dict.fromkeys(names, target_sparsity)


def _check_sparsity(name, value):
    value = check_number(name, value)
    if not 0.0 < value < 1.0:
        raise ValueError(
            f"`{name}` must be strictly between 0 and 1 (the fraction of zeros). "
            f"Received: {name}={value!r}. E.g. 0.8 for 80% zeros."
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
    if schedule == "constant":
        made = sparsity_api.ConstantSparsity(
            sparsity, begin_step, end_step=-1 if end_step is None else end_step, frequency=frequency
        )
    else:
        placeholder = begin_step + frequency if end_step is None else end_step
        made = sparsity_api.PolynomialDecay(
            initial_sparsity, sparsity, begin_step, placeholder, frequency=frequency
        )
    if end_step is None:
        setattr(made, AUTO_END_STEP, True)
    return made


def _parse_structure(structure):
    if structure is None:
        return None
    if not isinstance(structure, str):
        raise TypeError(
            "`structure` must be a string 'm:n' (e.g. '2:4') or None. "
            f"Received: structure={structure!r} (of type {type(structure).__name__})."
        )
    match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", structure)
    if not match or not 0 < int(match.group(1)) < int(match.group(2)):
        raise ValueError(
            "`structure` must be 'm:n' with 0 < m < n: at least m zeros in every n consecutive "
            f"weights. Received: structure={structure!r}. E.g. structure='2:4'."
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


# ------------------------------------------------------------------------------- strip & sparsity


def strip(model):
    """Returns `model` without its pruning and clustering wrappers, keeping QAT wrappers.

    Pruned kernels keep their zeros (the masks are applied once more before unwrapping) and
    clustered kernels keep their centroid values. The result shares its other layers with `model`,
    as TF-MOT's `strip_pruning` does. A model without such wrappers comes back unchanged.

    Args:
        model: A `tfkd.keras.Model`, pruned and/or clustered.

    Returns:
        A `tfkd.keras.Model` ready to export or to quantize (e.g. `tfkd.quantize(stripped,
        preserve="sparsity")`).

    Raises:
        TypeError: If `model` is not a Keras model.
    """
    model = check_graph_model("model", model)
    api = tfmot()
    prune_wrapper = prune_wrapper_class()
    has_pruning = any(isinstance(layer, prune_wrapper) for layer in iter_layers(model))
    if has_pruning:
        for layer in iter_layers(model):
            if isinstance(layer, prune_wrapper) and layer.pruning_obj is not None:
                layer.pruning_obj.weight_mask_op()
        model = api.sparsity.keras.strip_pruning(model)
    if any(isinstance(layer, cluster_wrapper_class()) for layer in iter_layers(model)):
        model = api.clustering.keras.strip_clustering(model)
    return strip_channels(model)


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

    def to_dict(self):
        return dataclasses.asdict(self)


def sparsity(model):
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
