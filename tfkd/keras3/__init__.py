"""Keras 3 -> tf_keras: models (and the layers, operator nodes and activations inside them), model
files, and the optimizers, losses, metrics and callbacks users hand to tfkd.

tfkd trains tf_keras (Keras 2) models, the kind TF-MOT wraps. `from_keras3` rebuilds a Keras 3
Sequential or Functional model as a tf_keras one with the same weights; `check_model` is what every
tfkd entry point calls on a model argument (tf_keras passes, Keras 3 is converted with one warning);
the `convert_*` functions do the same for compile and fit arguments (see `tfkd.keras3.objects`).
"""

from tfkd.keras3.models import check_model as check_model
from tfkd.keras3.models import convert_keras3_argument as convert_keras3_argument
from tfkd.keras3.models import from_keras3 as from_keras3
from tfkd.keras3.objects import convert_callbacks as convert_callbacks
from tfkd.keras3.objects import convert_compile_arguments as convert_compile_arguments
from tfkd.keras3.objects import convert_distillation_losses as convert_distillation_losses
from tfkd.keras3.objects import convert_loss as convert_loss
from tfkd.keras3.objects import convert_metrics as convert_metrics
from tfkd.keras3.objects import convert_optimizer as convert_optimizer

__all__ = [
    "from_keras3", "check_model", "convert_keras3_argument", "convert_optimizer", "convert_loss",
    "convert_metrics", "convert_callbacks", "convert_distillation_losses",
    "convert_compile_arguments",
]
