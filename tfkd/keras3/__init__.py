"""Keras 3 -> tf_keras: models (and the layers, operator nodes and activations inside them).

tfkd trains tf_keras (Keras 2) models, the kind TF-MOT wraps. `from_keras3` rebuilds a Keras 3
Sequential or Functional model as a tf_keras one with the same weights; `check_model` is what every
tfkd entry point calls on a model argument (tf_keras passes, Keras 3 is converted with one warning).
"""

from tfkd.keras3.models import check_model as check_model
from tfkd.keras3.models import convert_keras3_argument as convert_keras3_argument
from tfkd.keras3.models import from_keras3 as from_keras3

__all__ = ["from_keras3", "check_model", "convert_keras3_argument"]
