"""Data that ships with tfkd's dependencies (or that tfkd generates), so demos and tests run offline."""

from tfkd.data.digits import load_digits as load_digits
from tfkd.data.digits import subsample_per_class as subsample_per_class

__all__ = ["load_digits", "subsample_per_class"]
