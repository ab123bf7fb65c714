"""tfkd: knowledge distillation, pruning and quantization for Keras models, down to INT8 `.tflite`.

`tfkd.keras` is the Keras tfkd uses (tf_keras, Keras 2), which TF-MOT requires.

`import tfkd` is cheap: the public names below load on first use, each from its module (the command
line answers `--help` without importing TensorFlow). Type checkers read the import block itself.
"""

import os as _os
import sys as _sys
from typing import TYPE_CHECKING

from tfkd._lazy import LazyPackage as _LazyPackage

__version__ = "0.1.0"

# tf.keras inside TensorFlow and TF-MOT must mean tf_keras, whenever TensorFlow gets imported.
_os.environ["TF_USE_LEGACY_KERAS"] = "1"

if TYPE_CHECKING:  # the public API; `__getattr__` below imports each name from here on first use
    # isort: off
    from tfkd._keras import keras as keras  # first: chooses Keras before anything else loads it

    # isort: on
    from tfkd import data as data
    from tfkd import export as export
    from tfkd import losses as losses
    from tfkd import models as models
    from tfkd.distiller import Distiller as Distiller
    from tfkd.keras3 import from_keras3 as from_keras3
    from tfkd.optimize.callbacks import callbacks as callbacks
    from tfkd.optimize.clustering import cluster as cluster
    from tfkd.optimize.iterative import PruningRounds as PruningRounds
    from tfkd.optimize.iterative import iterative_prune as iterative_prune
    from tfkd.optimize.pruning import SparsityReport as SparsityReport
    from tfkd.optimize.pruning import prune as prune
    from tfkd.optimize.pruning import sparsity as sparsity
    from tfkd.optimize.quantization import quantize as quantize
    from tfkd.optimize.sensitivity import SensitivityResult as SensitivityResult
    from tfkd.optimize.sensitivity import sensitivity as sensitivity
    from tfkd.optimize.wrappers import strip as strip
    from tfkd.pipeline import DistillConfig as DistillConfig
    from tfkd.pipeline import ExportConfig as ExportConfig
    from tfkd.pipeline import PruneConfig as PruneConfig
    from tfkd.pipeline import QuantizeConfig as QuantizeConfig
    from tfkd.pipeline import compress as compress
    from tfkd.profile import profile as profile
    from tfkd.report import Report as Report
    from tfkd.runtime import ONNXModel as ONNXModel
    from tfkd.runtime import TFLiteModel as TFLiteModel
    from tfkd.saving import load_model as load_model
    from tfkd.schemes.born_again import BornAgainResult as BornAgainResult
    from tfkd.schemes.born_again import born_again as born_again
    from tfkd.schemes.cached import CachedTeacher as CachedTeacher
    from tfkd.schemes.cached import cache_teacher_outputs as cache_teacher_outputs
    from tfkd.schemes.deep_supervision import DeepSupervision as DeepSupervision
    from tfkd.schemes.ema import EMATeacher as EMATeacher
    from tfkd.schemes.ensemble import Ensemble as Ensemble
    from tfkd.schemes.mutual import MutualDistiller as MutualDistiller

__all__ = [
    "__version__",
    "keras",
    # distillation
    "Distiller", "losses", "Ensemble", "CachedTeacher", "cache_teacher_outputs", "EMATeacher",
    "MutualDistiller", "born_again", "BornAgainResult", "DeepSupervision",
    # compression
    "prune", "strip", "sparsity", "SparsityReport", "iterative_prune", "PruningRounds",
    "sensitivity", "SensitivityResult", "quantize", "cluster", "callbacks", "load_model",
    "from_keras3",
    # export and measurement
    "export", "TFLiteModel", "ONNXModel", "profile", "Report",
    # the whole path, data and reference models
    "compress", "DistillConfig", "PruneConfig", "QuantizeConfig", "ExportConfig", "data", "models",
]


if not TYPE_CHECKING:
    _sys.modules[__name__].__class__ = _LazyPackage

    def __getattr__(name):
        from tfkd._lazy import load_public_name

        return load_public_name(__name__, __file__, name, globals())

    def __dir__():
        return sorted(set(globals()) | set(__all__))
