"""The callbacks a compression-wrapped model needs during `fit`, added by tfkd itself.

`Distiller.fit` calls `training_callbacks(student, callbacks)`; a plain `fit` uses
`tfkd.callbacks()`. Both give TF-MOT's `UpdatePruningStep` (and `PruningSummaries` with a log dir)
plus `PruningEndStep`, which derives the end step of schedules made with `end_step=None`.
"""

from typing import Any

from tfkd._keras import keras
from tfkd._validation import check_int
from tfkd.optimize._common import tfmot
from tfkd.optimize.channels import ChannelPruningStep, channel_callbacks, mask_owners
from tfkd.optimize.wrappers import is_pruning_wrapper, wrapped_layers


def callbacks(model: Any = None, log_dir: str | Any | None = None) -> list[Any]:
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
    return wrapped_layers(model, is_pruning_wrapper) if isinstance(model, keras.Model) else []


class PruningEndStep(keras.callbacks.Callback):
    """Derives the end step of schedules of `tfkd.prune(..., end_step=None)` when a fit starts.

    The end step is two-thirds of the fit's steps (`epochs * steps`, read from `self.params` in
    `on_train_begin`, before the training function is traced, so the compiled step uses it),
    rounded down to a multiple of the schedule's frequency; the frequency is lowered where needed
    so that the masks are updated at least 10 times before it. Only the first fit derives steps:
    the schedules (`tfkd.optimize.schedules`) keep them, through saving and cloning too.
    """

    def on_train_begin(self, logs=None):
        wrappers = _pruning_wrappers(self.model)
        if not wrappers:
            return
        from tfkd.optimize.schedules import FitDerivedSchedule  # TF-MOT is loaded: wrappers exist

        pending = []
        for layer in wrappers:
            schedule = layer.pruning_schedule
            derive = isinstance(schedule, FitDerivedSchedule) and not schedule.is_derived
            if derive and all(s is not schedule for s in pending):
                pending.append(schedule)
        if not pending:
            return
        total = _total_steps(self.params)
        for schedule in pending:
            schedule.derive_end_step(total)


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
