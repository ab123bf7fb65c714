"""Reference teachers and students: small CNNs (`cnn`) and, for transformers, encoders."""

from tfkd.models.cnn import build_keras_io_student as build_keras_io_student
from tfkd.models.cnn import build_keras_io_teacher as build_keras_io_teacher
from tfkd.models.cnn import build_student as build_student
from tfkd.models.cnn import build_teacher as build_teacher
from tfkd.models.transformer import PositionEmbedding as PositionEmbedding
from tfkd.models.transformer import build_transformer as build_transformer
from tfkd.models.transformer import shrink as shrink  # CNNs by width, encoders by depth too

__all__ = [
    "build_teacher", "build_student", "build_keras_io_teacher", "build_keras_io_student", "shrink",
    "build_transformer", "PositionEmbedding",
]
