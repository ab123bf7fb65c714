"""Channel pruning: whole filters and units removed during training, then cut out of the model.

`prune_channels` (reached through `tfkd.prune(model, structure="channels")`) inserts a `ChannelMask`
after every layer whose output channels can be removed. During `fit`, `ChannelPruningStep` (added
by `Distiller.fit` and `tfkd.callbacks`) zeroes more channels of each group every `frequency` steps,
following TF-MOT's polynomial schedule up to the target fraction, lowest importance first
(importance: the L2 norm of each output filter, summed over the group's producers after dividing
each by its mean; or L1, or BatchNorm |gamma|). Masks only grow. `strip_channels` (reached through
`tfkd.strip`) rebuilds a physically smaller model: fewer filters and units, the next layers' inputs
cut to match, with the same outputs as the masked model. Which channels go together is decided by
`tfkd.optimize.channel_groups`.
"""

import numpy as np

from tfkd._keras import keras
from tfkd._validation import check_choice, check_int, check_open_fraction
from tfkd.optimize import channel_groups as cg
from tfkd.optimize._common import check_graph_model, select_layers
from tfkd.optimize.channel_mask import (  # noqa: F401 (ChannelPruningStep, ... re-exported)
    ChannelMask,
    ChannelPruningStep,
    channel_callbacks,
    mask_owners,
    update_masks,
)

CRITERIA = ("l2", "l1", "bn_gamma")


def prune_channels(model, target_sparsity=0.5, schedule="polynomial", begin_step=0,
                   end_step=None, frequency=100, layers=None, exclude=None, criterion="l2"):
    """Returns a copy of `model` that learns to drop whole channels (filters/units) in `fit`.

    Channels coupled by the architecture are pruned as one group: a Conv's filters with the
    BatchNorm, activation and depthwise convolution on them, every tensor added to them in a
    residual `Add`, and the inputs of the next layers (Conv, Dense, also through `Flatten` and
    global pooling). Groups that reach a model output (the logits) or a layer that cannot be cut
    (e.g. `Reshape`, `LayerNormalization`) are left whole. The masks grow in `Distiller.fit`
    (which adds `ChannelPruningStep` itself); a plain `fit` needs `callbacks=tfkd.callbacks()`.
    Call `tfkd.strip` after training.

    Args:
        model: A built Sequential or Functional `tfkd.keras.Model`.
        target_sparsity: Fraction of each group's channels to remove, in (0, 1); or a dict
            `{layer_name: fraction}` naming producer layers. Defaults to `0.5`.
        schedule: `"polynomial"` (TF-MOT's cubic ramp) or `"constant"`. Defaults to
            `"polynomial"`.
        begin_step: Optimizer step at which pruning starts. Defaults to `0`.
        end_step: Step at which the target is reached, or `None`: two-thirds into the first fit.
            Defaults to `None`.
        frequency: Steps between mask updates. Defaults to `100` (lowered for short fits).
        layers: Names or classes of Conv/Dense layers whose channels to prune, or `None` for
            every group that can be cut. Defaults to `None`.
        exclude: Names of Conv/Dense layers whose channels are kept. Defaults to `None`.
        criterion: Channel importance: `"l2"` or `"l1"` norm of each output filter,
            `"bn_gamma"` (|gamma| of the BatchNorm on the channel), or a dict `{group: scores}`
            from `channel_sensitivity` (groups it does not name use `"l2"`). Defaults to `"l2"`.

    Returns:
        A new `tfkd.keras.Model` holding `ChannelMask` layers.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If a requested layer cannot be cut (the message names the layer that
            blocks it), if nothing can be pruned, or if an argument is out of range.
    """
    model = _check_model(model)
    check_choice("schedule", schedule, ("polynomial", "constant"))
    scores = criterion if isinstance(criterion, dict) else {}
    if not scores:
        check_choice("criterion", criterion, CRITERIA)
    begin_step = check_int("begin_step", begin_step, minimum=0)
    if end_step is not None:
        end_step = check_int("end_step", end_step, minimum=begin_step + 1)
    frequency = check_int("frequency", frequency, minimum=1)
    graph = cg.analyze(model, exclude=_names("exclude", exclude))
    targets = _targets(graph, model, target_sparsity, layers)
    _check_scores(graph, targets, scores)
    settings = dict(schedule=schedule, begin_step=begin_step, end_step=end_step,
                    frequency=frequency)
    masked = {}

    def make(layer, node, args, kwargs):
        outputs = _copy_call(layer, args, kwargs, layer.get_weights())
        space = graph.spaces[id(cg.node_outputs(node)[0])]
        if isinstance(layer, cg.ZERO_PRESERVING) or len(space.segments) != 1 or space.repeat > 1:
            return outputs
        gid = graph.find(space.segments[0][0])
        if gid not in targets:
            return outputs
        group = graph.group(gid)
        masked[gid] = True
        chosen = [float(v) for v in scores[group.name]] if group.name in scores else (
            "l2" if scores else criterion)
        return ChannelMask(group.name, group.producers, group.batch_norms, targets[gid],
                           name=f"channel_mask_{layer.name}", criterion=chosen,
                           **settings)(outputs)

    return cg.rebuild(model, make)


def check_channel_options(block_size=None, policy=None, initial_sparsity=0.0):
    """Raises if `tfkd.prune(structure="channels")` got an option only weight pruning has."""
    given = {"block_size": block_size, "policy": policy}
    given = {k: v for k, v in given.items() if v is not None}
    if initial_sparsity:
        given["initial_sparsity"] = initial_sparsity
    if given:
        listed = ", ".join(f"{k}={v!r}" for k, v in given.items())
        raise ValueError(
            f"`structure='channels'` removes whole channels and takes no {', '.join(given)}. "
            f"Received: {listed}. Drop them, or prune weights with `structure=None`."
        )


def _check_scores(graph, targets, scores):
    names = {graph.group(gid).name: graph.group(gid).size for gid in targets}
    for name, values in scores.items():
        if name not in names or len(values) != names[name]:
            raise ValueError(
                f"`criterion` gives scores for {name!r} ({len(values)} values), which is not a "
                f"group being pruned or has another size. Received: criterion with keys "
                f"{sorted(scores)}. The groups and their sizes are: {names}. Compute the scores "
                "with `channel_sensitivity(model, x, layers=...)` on the same model and layers."
            )


def channel_sensitivity(model, x, layers=None, batch_size=256):
    """Scores each prunable channel by how much the model's outputs change without it.

    Each channel of each group is removed alone (its mask set to 0 on every tensor of the group)
    and the mean squared change of the outputs on `x` is its score: the channels whose removal
    changes the least come first when `prune_channels(..., criterion=scores)` prunes. Costs one
    pass over `x` per channel: use a few hundred inputs.

    Args:
        model: The model to prune (unpruned).
        x: Inputs to measure on (an array).
        layers: As in `prune_channels`. Defaults to `None`.
        batch_size: Samples per call. Defaults to `256`.

    Returns:
        `{group_name: [score per channel]}` (group name: its first Conv/Dense layer).
    """
    masked = prune_channels(model, 0.5, schedule="constant", layers=layers)
    base = masked.predict(x, batch_size=batch_size, verbose=0)
    result = {}
    for _, masks in mask_owners(masked):
        groups = {}
        for mask in masks:
            groups.setdefault(mask.group, []).append(mask)
        for name, members in groups.items():
            ones = np.ones(int(members[0].mask.shape[0]), dtype=np.float32)
            scores = []
            for channel in range(ones.size):
                values = ones.copy()
                values[channel] = 0.0
                for mask in members:
                    mask.mask.assign(values)
                out = masked.predict(x, batch_size=batch_size, verbose=0)
                scores.append(float(np.mean((out - base) ** 2)))
            for mask in members:
                mask.mask.assign(ones)
            result[name] = scores
    return result


def _check_model(model):
    model = check_graph_model("model", model)
    if not model.inputs:
        raise ValueError(
            f"`model` must be built (called on an input) to find its channel groups. Received: "
            f"model={model.name!r}. Start it with `keras.Input(shape)`, or call `model.build`."
        )
    return model


def _names(name, value):
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, (list, tuple, set)) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"`{name}` must be a list of layer names. Received: {name}={value!r}.")
    return tuple(value)


def _targets(graph, model, target_sparsity, layers):
    """`{group_id: fraction}` of the groups to prune; errors name what blocks a requested one."""
    producers = {name: gid for gid, g in graph.groups.items() for name in g.producers}
    candidates = [layer for layer in model.layers if layer.name in producers]
    if isinstance(target_sparsity, dict):
        picked = list(target_sparsity)
        select_layers("target_sparsity", picked, candidates)
        fractions = {
            n: check_open_fraction(f"target_sparsity[{n!r}]", v) for n, v in target_sparsity.items()
        }
    else:
        fraction = check_open_fraction("target_sparsity", target_sparsity)
        picked = None if layers is None else select_layers("layers", layers, candidates)
        fractions = dict.fromkeys(picked or producers, fraction)
    targets = {}
    for name, fraction in fractions.items():
        gid = graph.find(producers[name])
        blockers = graph.groups[gid].blockers
        if blockers and picked is not None:
            raise ValueError(_blocked_message(name, blockers))
        if not blockers:
            targets[gid] = max(fraction, targets.get(gid, 0.0))
    if not targets:
        found = sorted({f"{n!r} ({why})" for g in graph.groups.values() for n, why in g.blockers})
        raise ValueError(
            f"`model` has no channels that can be removed. Received: model={model.name!r}. "
            f"Every group of channels is blocked: {', '.join(found)}. Channel pruning cuts "
            "Conv/Dense filters followed by per-channel layers, Add, Concatenate, Flatten->Dense."
        )
    return targets


def _blocked_message(name, blockers):
    reasons = "; ".join(f"layer {n!r} {why}" for n, why in blockers)
    return (
        f"Cannot remove channels of layer {name!r}: {reasons}. Received: layers including "
        f"{name!r}. Leave it out of `layers=` (or `exclude=` it), or change the blocking layer."
    )


def _copy_call(layer, args, kwargs, weights, config=None):
    copy = layer.__class__.from_config(config or layer.get_config())
    outputs = copy(*args, **kwargs)
    if weights:
        copy.set_weights(weights)
    return outputs


# ----------------------------------------------------------------------------------------- strip


def has_channel_masks(model):
    return any(isinstance(layer, ChannelMask) for layer in getattr(model, "layers", []))


def strip_channels(model):
    """Returns the physically smaller model: masked channels cut out, masks removed.

    Args:
        model: A model from `prune_channels` (trained, or with masks set by `update_masks`).

    Returns:
        A new `tfkd.keras.Model` without `ChannelMask` layers, with fewer filters and units and
        the same outputs as `model` (up to float rounding); `model` itself if it has no masks.
    """
    model = _check_model(model)
    if not has_channel_masks(model):
        return model
    graph = cg.analyze(model, mask_class=ChannelMask)
    kept = {}
    for layer, _, inputs, _ in graph.nodes:
        if isinstance(layer, ChannelMask):
            mask = np.asarray(layer.mask.numpy())
            kept[graph.find(inputs[0].segments[0][0])] = np.flatnonzero(mask)
    info = {id(node): (inputs, outs) for _, node, inputs, outs in graph.nodes}

    def make(layer, node, args, kwargs):
        if isinstance(layer, ChannelMask):
            return args[0]
        inputs, outs = info[id(node)]
        config, weights = _shrink(layer, graph, inputs, outs, kept)
        return _copy_call(layer, args, kwargs, weights, config)

    return cg.rebuild(model, make)


def _shrink(layer, graph, inputs, outs, kept):
    """The config and weights of `layer` with the removed input and output channels cut out."""
    config, weights = layer.get_config(), layer.get_weights()
    if not weights or len(inputs) != 1:
        return config, weights
    k_in = graph.kept(inputs[0], kept)
    if isinstance(layer, cg.PRODUCERS):
        k_out = graph.kept(outs[0], kept)
        key = "units" if isinstance(layer, keras.layers.Dense) else "filters"
        config[key] = len(k_out)
        if isinstance(layer, (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)):
            mult = layer.depth_multiplier
            rows = (k_in[:, None] * mult + np.arange(mult)[None, :]).reshape(-1)
            weights[0] = np.take(weights[0], k_in, axis=-2)
            weights[1] = np.take(np.take(weights[1], rows, axis=-2), k_out, axis=-1)
            return config, [*weights[:2], *(w[k_out] for w in weights[2:])]
        kernel = np.take(np.take(weights[0], k_in, axis=-2), k_out, axis=-1)
        return config, [kernel, *(w[k_out] for w in weights[1:])]
    channels = inputs[0].channels
    if isinstance(layer, (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)):
        return config, [np.take(weights[0], k_in, axis=-2), *(w[k_in] for w in weights[1:])]
    return config, [
        np.take(w, k_in, axis=-1) if w.shape and w.shape[-1] == channels else w for w in weights
    ]
