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
from absl import logging

from tfkd._keras import keras, tf
from tfkd._validation import check_choice, check_int, check_open_fraction
from tfkd.optimize import channel_groups as cg
from tfkd.optimize._common import check_graph_model, select_layers

CRITERIA = ("l2", "l1", "bn_gamma")
_TARGET_AT = 2.0 / 3.0  # a derived schedule reaches its target two-thirds into the first fit
_MASK_UPDATES = 10


@keras.utils.register_keras_serializable(package="tfkd")
class ChannelMask(keras.layers.Layer):
    """Multiplies its input's channels (last axis) by a 0/1 mask that a schedule grows.

    One mask per tensor of a channel group; all masks of a group hold the same values. The
    schedule lives in the config, so a saved pruned model resumes where it stopped.

    Args:
        group: Name of the channel group (its first producer layer).
        producers: Names of the layers whose output filters/units are the group's channels.
        batch_norms: Names of the BatchNormalization layers on the group's channels.
        target_sparsity: Fraction of the group's channels to remove, in (0, 1).
        schedule: `"polynomial"` or `"constant"`. Defaults to `"polynomial"`.
        begin_step: Optimizer step at which pruning starts. Defaults to `0`.
        end_step: Step at which the target is reached, or `None` (derived when a fit starts).
        frequency: Steps between mask updates. Defaults to `100`.
        criterion: `"l2"`, `"l1"` or `"bn_gamma"`. Defaults to `"l2"`.
    """

    def __init__(self, group, producers=(), batch_norms=(), target_sparsity=0.5,
                 schedule="polynomial", begin_step=0, end_step=None, frequency=100,
                 criterion="l2", **kwargs):
        super().__init__(**kwargs)
        self.group = group
        self.producers = list(producers)
        self.batch_norms = list(batch_norms)
        self.target_sparsity = target_sparsity
        self.schedule = schedule
        self.begin_step = begin_step
        self.end_step = end_step
        self.frequency = frequency
        self.criterion = criterion

    def build(self, input_shape):
        self.mask = self.add_weight(
            name="mask", shape=(int(input_shape[-1]),), initializer="ones", trainable=False
        )
        super().build(input_shape)

    def call(self, inputs):
        return inputs * tf.cast(self.mask, inputs.dtype)

    def sparsity_at(self, step):
        """The fraction of channels the schedule removes at optimizer step `step`."""
        if step < self.begin_step:
            return 0.0
        if self.schedule == "constant" or self.end_step is None:
            return self.target_sparsity if self.schedule == "constant" else 0.0
        if step >= self.end_step:
            return self.target_sparsity
        done = (step - self.begin_step) // self.frequency * self.frequency
        progress = done / max(1, self.end_step - self.begin_step)
        return self.target_sparsity * (1.0 - (1.0 - progress) ** 3)

    def get_config(self):
        return {
            **super().get_config(), "group": self.group, "producers": self.producers,
            "batch_norms": self.batch_norms, "target_sparsity": self.target_sparsity,
            "schedule": self.schedule, "begin_step": self.begin_step, "end_step": self.end_step,
            "frequency": self.frequency, "criterion": self.criterion,
        }


def prune_channels(model, target_sparsity=0.5, schedule="polynomial", begin_step=0,
                   end_step=None, frequency=100, layers=None, exclude=None, criterion="l2"):
    """Returns a copy of `model` that learns to drop whole channels (filters/units) in `fit`.

    Channels coupled by the architecture are pruned as one group: a Conv's filters with the
    BatchNorm, activation and depthwise convolution on them, every tensor added to them in a
    residual `Add`, and the inputs of the next layers (Conv, Dense, also through `Flatten` and
    global pooling). Groups that reach a model output (the logits) or a layer that cannot be cut
    (e.g. `Reshape`, `LayerNormalization`) are left whole. Call `tfkd.strip` after training.

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
        criterion: Channel importance: `"l2"` or `"l1"` norm of each output filter, or
            `"bn_gamma"` (|gamma| of the BatchNorm on the channel). Defaults to `"l2"`.

    Returns:
        A new `tfkd.keras.Model` holding `ChannelMask` layers.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If a requested layer cannot be cut (the message names the layer that
            blocks it), if nothing can be pruned, or if an argument is out of range.
    """
    model = _check_model(model)
    check_choice("schedule", schedule, ("polynomial", "constant"))
    check_choice("criterion", criterion, CRITERIA)
    begin_step = check_int("begin_step", begin_step, minimum=0)
    if end_step is not None:
        end_step = check_int("end_step", end_step, minimum=begin_step + 1)
    frequency = check_int("frequency", frequency, minimum=1)
    graph = cg.analyze(model, exclude=_names("exclude", exclude))
    targets = _targets(graph, model, target_sparsity, layers)
    settings = dict(schedule=schedule, begin_step=begin_step, end_step=end_step,
                    frequency=frequency, criterion=criterion)
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
        return ChannelMask(group.name, group.producers, group.batch_norms, targets[gid],
                           name=f"channel_mask_{layer.name}", **settings)(outputs)

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


# ----------------------------------------------------------------------------- schedule in fit


def mask_owners(model):
    """`[(model, [ChannelMask, ...])]` for `model` and every model nested in it holding masks."""
    found = []
    for module in [model, *getattr(model, "submodules", ())]:
        if not isinstance(module, keras.Model) or any(owner is module for owner, _ in found):
            continue
        masks = [layer for layer in module.layers if isinstance(layer, ChannelMask)]
        if masks:
            found.append((module, masks))
    return found


def update_masks(model, step, owners=None, removed=None):
    """Grows every channel group's mask to what its schedule asks at optimizer step `step`.

    Masks only grow: channels already removed stay removed; among the others, the least
    important are removed until the group's fraction is reached (at least one channel is kept).

    Args:
        model: A model holding `ChannelMask` layers (or a model nesting one, e.g. a Distiller).
        step: The optimizer step.
        owners: `mask_owners(model)`, when the caller keeps it. Defaults to `None`.
        removed: A dict the caller keeps between calls (channels removed per group), so that
            masks are read only when they must grow. Defaults to `None`.

    Returns:
        `{group_name: number_of_channels_removed}` after the update.
    """
    removed = {} if removed is None else removed
    result = {}
    for owner, masks in owners if owners is not None else mask_owners(model):
        groups = {}
        for mask in masks:
            groups.setdefault(mask.group, []).append(mask)
        for name, members in groups.items():
            first, key = members[0], id(members[0])
            size = int(first.mask.shape[0])
            wanted = min(size - 1, int(np.floor(first.sparsity_at(step) * size + 1e-6)))
            if key not in removed or wanted > removed[key]:
                removed[key] = _grow(owner, members, wanted)
            result[name] = removed[key]
    return result


def _grow(owner, members, wanted):
    current = np.asarray(members[0].mask.numpy())
    already = int(np.sum(current == 0))
    if wanted > already:
        scores = channel_importance(owner, members[0])
        scores[current == 0] = np.inf
        current = current.copy()
        current[np.argsort(scores, kind="stable")[: wanted - already]] = 0.0
        for mask in members:
            mask.mask.assign(current)
        already = wanted
    return already


def channel_importance(owner, mask):
    """One score per channel of `mask`'s group (higher is more important), by its criterion."""
    total = np.zeros(int(mask.mask.shape[0]))
    sources = []
    if mask.criterion == "bn_gamma":
        for name in mask.batch_norms:
            layer = owner.get_layer(name)
            if layer.scale:
                sources.append(np.abs(layer.gamma.numpy()))
    if not sources:
        for name in mask.producers:
            layer = owner.get_layer(name)
            kernel = layer.get_weights()[1 if isinstance(
                layer, (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)) else 0]
            flat = kernel.reshape(-1, kernel.shape[-1])
            l1 = mask.criterion == "l1"
            sources.append(np.abs(flat).sum(0) if l1 else np.sqrt((flat**2).sum(0)))
    for values in sources:
        total += values / (np.mean(values) + 1e-12)
    return total


class ChannelPruningStep(keras.callbacks.Callback):
    """Grows the channel masks of the model being trained, from its optimizer's step.

    At the start of a fit, schedules made with `end_step=None` get their end step (two-thirds of
    the fit, at least 10 mask updates before it). After every batch, the masks follow the schedule.
    """

    def on_train_begin(self, logs=None):
        epochs, steps = self.params.get("epochs"), self.params.get("steps")
        self._owners = mask_owners(self.model)
        self._removed = {}
        for _, masks in self._owners:
            for mask in masks:
                if mask.end_step is None and mask.schedule == "polynomial":
                    _derive_end_step(mask, epochs, steps)

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        update_masks(self.model, step, owners=self._owners, removed=self._removed)


def _derive_end_step(mask, epochs, steps):
    if not epochs or not steps:
        raise ValueError(
            "A model pruned with `end_step=None` derives its end step from the first fit's epochs "
            f"and steps, but this fit does not know them. Received: epochs={epochs}, "
            f"steps={steps}. Pass `steps_per_epoch=` to `fit`, or prune with `end_step=`."
        )
    span = int(round(epochs * steps * _TARGET_AT)) - mask.begin_step
    if span < 1:
        raise ValueError(
            f"The channel schedule begins at step {mask.begin_step} but this fit has only "
            f"{epochs * steps} steps. Received: begin_step={mask.begin_step}. Lower it."
        )
    mask.frequency = min(mask.frequency, max(1, span // _MASK_UPDATES))
    mask.end_step = mask.begin_step + mask.frequency * (span // mask.frequency)
    logging.info("tfkd: channel group %s reaches %.0f%% at step %d.", mask.group,
                 100 * mask.target_sparsity, mask.end_step)


def channel_callbacks(model, callbacks=None):
    """`callbacks` plus a `ChannelPruningStep` when `model` holds channel masks (not twice)."""
    given = list(callbacks or [])
    if mask_owners(model) and not any(isinstance(c, ChannelPruningStep) for c in given):
        given.append(ChannelPruningStep())
    return given
