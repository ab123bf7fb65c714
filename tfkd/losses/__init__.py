"""tfkd's distillation losses: each names what it reads and is callable on its own.

- response: `LogitsDistillation`, `DecoupledKD` (DKD), `DIST`
- feature: `FeatureDistillation` (FitNets hint, with adapters), `AttentionTransfer`
- relation: `RKDDistance`, `RKDAngle`, `SimilarityPreserving`, `PKT`
- virtual teacher: `TeacherFreeKD` (no trained teacher needed)
- transformer: `HiddenStateDistillation`, `AttentionDistillation` (DistilBERT, TinyBERT)
"""

from tfkd.losses.base import DistillationLoss as DistillationLoss
from tfkd.losses.base import deserialize as deserialize
from tfkd.losses.base import serialize as serialize
from tfkd.losses.feature import AttentionTransfer as AttentionTransfer
from tfkd.losses.feature import FeatureDistillation as FeatureDistillation
from tfkd.losses.relation import PKT as PKT
from tfkd.losses.relation import RKDAngle as RKDAngle
from tfkd.losses.relation import RKDDistance as RKDDistance
from tfkd.losses.relation import SimilarityPreserving as SimilarityPreserving
from tfkd.losses.response import DIST as DIST
from tfkd.losses.response import DecoupledKD as DecoupledKD
from tfkd.losses.response import LogitsDistillation as LogitsDistillation
from tfkd.losses.transformer import AttentionDistillation as AttentionDistillation
from tfkd.losses.transformer import HiddenStateDistillation as HiddenStateDistillation
from tfkd.losses.virtual_teacher import TeacherFreeKD as TeacherFreeKD

__all__ = [
    "DistillationLoss",
    "LogitsDistillation",
    "DecoupledKD",
    "DIST",
    "FeatureDistillation",
    "AttentionTransfer",
    "RKDDistance",
    "RKDAngle",
    "SimilarityPreserving",
    "PKT",
    "TeacherFreeKD",
    "HiddenStateDistillation",
    "AttentionDistillation",
    "serialize",
    "deserialize",
]
