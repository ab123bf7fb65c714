"""tfkd's distillation losses: each names what it reads and is callable on its own."""

from tfkd.losses.base import DistillationLoss as DistillationLoss
from tfkd.losses.base import deserialize as deserialize
from tfkd.losses.base import serialize as serialize
from tfkd.losses.response import LogitsDistillation as LogitsDistillation

__all__ = ["DistillationLoss", "LogitsDistillation", "serialize", "deserialize"]
