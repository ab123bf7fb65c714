"""tfkd: knowledge distillation, pruning and quantization for Keras models, down to INT8 `.tflite`.

`tfkd.keras` is the Keras tfkd uses (tf_keras, Keras 2), which TF-MOT requires.
"""

from tfkd._keras import keras as keras  # first: chooses Keras before anything else loads it

from tfkd import data as data  # noqa: I001
from tfkd import losses as losses
from tfkd import models as models
from tfkd.distiller import Distiller as Distiller
from tfkd.schemes.ensemble import Ensemble as Ensemble

__version__ = "0.1.0"

__all__ = ["keras", "data", "losses", "models", "Distiller", "Ensemble", "__version__"]
