"""The mask channel pruning trains with, and the schedule that grows it during `fit`.

`ChannelMask` multiplies a tensor's channels by 0/1 values; `ChannelPruningStep` (added by
`Distiller.fit` and `tfkd.callbacks`) grows the masks of each channel group every `frequency`
optimizer steps, following TF-MOT's polynomial schedule, least important channels first. Masks
only grow. `tfkd.optimize.channels` places the masks and cuts the channels out.
"""

import numpy as np
from absl import logging

from tfkd._keras import keras, tf

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
        criterion: `"l2"`, `"l1"`, `"bn_gamma"`, or one score per channel (a list, e.g. from
            `channel_sensitivity`). Defaults to `"l2"`.
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
    if isinstance(mask.criterion, (list, tuple)):
        return np.asarray(mask.criterion, dtype=np.float64)
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
