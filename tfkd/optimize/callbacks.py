"""The callbacks a compression-wrapped model needs during `fit`, added by tfkd itself.

`Distiller.fit` calls `training_callbacks(student, callbacks)`; a plain `fit` uses
`tfkd.callbacks()`. Both give TF-MOT's `UpdatePruningStep` (and `PruningSummaries` with a log dir)
plus `PruningEndStep`, which derives the end step of schedules made with `end_step=None`.
"""

import sys

from absl import logging

from tfkd._keras import keras
from tfkd._validation import check_int
from tfkd.optimize._common import tfmot
from tfkd.optimize.channels import ChannelPruningStep, channel_callbacks, mask_owners

_MASK_UPDATES = 10  # a derived schedule updates the masks at least this many times
_TARGET_AT = 2.0 / 3.0  # fraction of the first fit at which a derived schedule reaches its target


def callbacks(model=None, log_dir=None):
    """The callbacks a plain `model.fit` of a pruned model needs.

    `Distiller.fit` adds these itself; pass them to `fit` when training a pruned model alone:
    `pruned.fit(x, y, epochs=3, callbacks=tfkd.callbacks())`. For sparsity summaries in
    TensorBoard, pass `callbacks=tfkd.callbacks(log_dir=...)` to either fit (nothing is added
    twice).

    Args:
        model: The model to be trained, or `None` for the pruning callbacks in any case. With a
            model that holds no pruning wrapper the list is empty. Defaults to `None`.
        log_dir: A folder for TensorBoard sparsity summaries (TF-MOT's `PruningSummaries`), or
            `None`. Defaults to `None`.

    Returns:
        A list of Keras callbacks.
    """
    channel = [ChannelPruningStep()] if model is None or mask_owners(model) else []
    if model is not None and not _has_pruning(model):
        return channel
    found = [tfmot().sparsity.keras.UpdatePruningStep(), PruningEndStep(), *channel]
    if log_dir is not None:
        found.append(_summaries(log_dir))
    return found


def _summaries(log_dir):
    try:
        import tensorboard  # noqa: F401 (tf.summary needs it to write anything)
    except ImportError as error:
        raise ImportError(
            "Sparsity summaries (`log_dir=`) are written for TensorBoard, which is not installed. "
            f"Received: log_dir={str(log_dir)!r}. Install it with `pip install tensorboard`, or "
            "leave `log_dir` unset."
        ) from error
    return tfmot().sparsity.keras.PruningSummaries(log_dir=str(log_dir))


def training_callbacks(model, callbacks=None, log_dir=None):
    """Returns `callbacks` plus what `model`'s compression wrappers need during `fit`.

    Callbacks of the same kinds already in `callbacks` are not added twice.
    """
    given = channel_callbacks(model, callbacks)
    if not _has_pruning(model):
        return given
    api = tfmot().sparsity.keras
    needed = [(api.UpdatePruningStep, api.UpdatePruningStep), (PruningEndStep, PruningEndStep)]
    if log_dir is not None:
        needed.append((api.PruningSummaries, lambda: _summaries(log_dir)))
    for kind, make in needed:
        if not any(isinstance(callback, kind) for callback in given):
            given.append(make())
    return given


def _has_pruning(model):
    return bool(_pruning_wrappers(model))


def _pruning_wrappers(model):
    # No model can hold TF-MOT wrappers before TF-MOT is imported: skip its ~3 s import then.
    if "tensorflow_model_optimization" not in sys.modules:
        return []
    from tensorflow_model_optimization.python.core.sparsity.keras import pruning_wrapper

    return pruning_wrapper.collect_prunable_layers(model) if isinstance(model, keras.Model) else []


class PruningEndStep(keras.callbacks.Callback):
    """Sets the end step of schedules made with `tfkd.prune(..., end_step=None)` when a fit starts.

    The end step is two-thirds of the fit's steps (`epochs * steps`, read from `self.params` in
    `on_train_begin`, before the training function is traced, so the compiled step uses it),
    rounded down to a multiple of the schedule's frequency; the frequency is lowered where needed
    so that the masks are updated at least 10 times before it. Only the first fit derives steps.
    """

    def on_train_begin(self, logs=None):
        from tfkd.optimize.pruning import AUTO_END_STEP

        pending = []
        for layer in _pruning_wrappers(self.model):
            schedule = layer.pruning_schedule
            if getattr(schedule, AUTO_END_STEP, False) and all(s is not schedule for s in pending):
                pending.append(schedule)
        if not pending:
            return
        total = _total_steps(self.params)
        for schedule in pending:
            _set_end_step(schedule, total)
            delattr(schedule, AUTO_END_STEP)


def _total_steps(params):
    epochs, steps = params.get("epochs"), params.get("steps")
    if not epochs or not steps:
        raise ValueError(
            "A model pruned with `end_step=None` derives its end step from the first fit's epochs "
            f"and steps, but this fit does not know them. Received: epochs={epochs}, "
            f"steps per epoch={steps}. Pass `steps_per_epoch=` to `fit` (a dataset of unknown "
            "length), or prune with an explicit `end_step=`."
        )
    return check_int("epochs * steps", int(epochs) * int(steps), minimum=1)


def _set_end_step(schedule, total_steps):
    begin = schedule.begin_step
    is_constant = isinstance(schedule, tfmot().sparsity.keras.ConstantSparsity)
    target = total_steps if is_constant else int(round(total_steps * _TARGET_AT))
    span = target - begin
    if span < 1:
        raise ValueError(
            f"The pruning schedule begins at step {begin}, but this fit has only {total_steps} "
            f"steps (it would reach its target at step {target}). Received: begin_step={begin}. "
            "Lower `begin_step`, or train for more epochs."
        )
    frequency = min(schedule.frequency, max(1, span // _MASK_UPDATES))
    if frequency != schedule.frequency:
        logging.info("tfkd: pruning frequency lowered from %d to %d steps for a %d-step fit.",
                     schedule.frequency, frequency, total_steps)
    schedule.frequency = frequency
    if not is_constant:
        schedule.end_step = begin + frequency * (span // frequency)
