"""Pruning schedules whose end step the first `fit` derives: `tfkd.prune(..., end_step=None)`.

TF-MOT designed `PruningSchedule` for subclassing; these subclasses of its `PolynomialDecay` and
`ConstantSparsity` accept `end_step=None` and carry it in `get_config`, so a model saved, loaded
(`tfkd.load_model`) or cloned before its first fit still derives its steps when that fit starts
(`tfkd.optimize.callbacks.PruningEndStep`), and one saved after it keeps the derived steps. A
schedule whose end step is still unknown refuses to run, with an error naming the fix.

Importing this module imports TF-MOT; tfkd imports it only where a model is pruned or loaded.
"""

from absl import logging
from tensorflow_model_optimization.python.core.sparsity.keras import pruning_schedule

from tfkd._keras import keras
from tfkd._validation import check_int

MASK_UPDATES = 10  # a derived schedule updates the masks at least this many times
TARGET_AT = 2.0 / 3.0  # fraction of the first fit at which a derived schedule reaches its target


class FitDerivedSchedule:
    """What both schedules share: an end step unknown until `derive_end_step(total_steps)`."""

    reaches_target_at = TARGET_AT

    @property
    def is_derived(self):
        """Whether the end step is known (derived by a fit, or loaded from a config)."""
        return self.end_step is not None

    def derive_end_step(self, total_steps):
        """Sets the end step (and lowers the frequency) for a fit of `total_steps` steps.

        The target is reached at `reaches_target_at` of the fit, rounded down to a multiple of the
        frequency; the frequency is lowered so that the masks are updated at least 10 times.

        Args:
            total_steps: Steps of the fit (epochs times steps per epoch), at least 1.

        Raises:
            ValueError: If the fit ends before the schedule begins.
        """
        total_steps = check_int("total_steps", total_steps, minimum=1)
        begin = self.begin_step
        target = int(round(total_steps * self.reaches_target_at))
        span = target - begin
        if span < 1:
            raise ValueError(
                f"The pruning schedule begins at step {begin}, but this fit has only "
                f"{total_steps} steps (it would reach its target at step {target}). Received: "
                f"begin_step={begin}. Lower `begin_step`, or train for more epochs."
            )
        frequency = min(self.frequency, max(1, span // MASK_UPDATES))
        if frequency != self.frequency:
            logging.info("tfkd: pruning frequency lowered from %d to %d steps for a %d-step fit.",
                         self.frequency, frequency, total_steps)
        self.frequency = frequency
        self.end_step = self._end_step_for(begin, span, frequency)

    def check_derived(self):
        """Raises unless the end step is known: a fit without `PruningEndStep` would not prune."""
        if self.end_step is None:
            raise ValueError(
                "This model was pruned with `end_step=None`: its end step is derived when its "
                "first fit starts, by the callbacks tfkd adds. Received: a fit without them "
                f"(schedule {type(self).__name__} with end_step=None). Train it with "
                "`tfkd.Distiller(...).fit(...)`, or pass `callbacks=tfkd.callbacks()` to "
                "`model.fit`, or prune with an explicit `end_step=`."
            )

    def get_config(self):
        config = super().get_config()
        config["class_name"] = keras.utils.get_registered_name(type(self))
        config["config"]["end_step"] = self.end_step
        return config


@keras.utils.register_keras_serializable(package="tfkd")
class FitPolynomialDecay(FitDerivedSchedule, pruning_schedule.PolynomialDecay):
    """TF-MOT's `PolynomialDecay` whose end step may be `None` until the first fit derives it.

    Args:
        initial_sparsity: Sparsity at `begin_step`, in [0, 1).
        final_sparsity: Sparsity reached at the end step, in [0, 1).
        begin_step: Step at which pruning starts.
        end_step: Step at which `final_sparsity` is reached, or `None` to derive it (two-thirds
            through the first fit). Defaults to `None`.
        power: Exponent of the decay. Defaults to `3`.
        frequency: Steps between mask updates (lowered when derived). Defaults to `100`.
    """

    def __init__(self, initial_sparsity, final_sparsity, begin_step, end_step=None, power=3,
                 frequency=100):
        placeholder = begin_step + frequency if end_step is None else end_step
        super().__init__(initial_sparsity, final_sparsity, begin_step, placeholder, power,
                         frequency)
        self.end_step = end_step

    def _end_step_for(self, begin, span, frequency):
        return begin + frequency * (span // frequency)

    def __call__(self, step):
        self.check_derived()
        return super().__call__(step)


@keras.utils.register_keras_serializable(package="tfkd")
class FitConstantSparsity(FitDerivedSchedule, pruning_schedule.ConstantSparsity):
    """TF-MOT's `ConstantSparsity` whose frequency the first fit fits to its length.

    With `end_step=None` the first fit lowers the frequency (masks updated at least 10 times in
    the fit) and sets `end_step=-1` (pruning continues to the end of training).

    Args:
        target_sparsity: Sparsity from `begin_step` on, in [0, 1).
        begin_step: Step at which pruning starts.
        end_step: Last pruning step, `-1` (never stop) or `None` (derived). Defaults to `None`.
        frequency: Steps between mask updates (lowered when derived). Defaults to `100`.
    """

    reaches_target_at = 1.0

    def __init__(self, target_sparsity, begin_step, end_step=None, frequency=100):
        super().__init__(target_sparsity, begin_step, -1 if end_step is None else end_step,
                         frequency)
        self.end_step = end_step

    def _end_step_for(self, begin, span, frequency):
        return -1

    def __call__(self, step):
        self.check_derived()
        return super().__call__(step)
