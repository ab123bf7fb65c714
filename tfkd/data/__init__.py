"""Data that ships with tfkd's dependencies, or that tfkd generates: runs offline."""

from tfkd.data.digits import load_digits as load_digits
from tfkd.data.digits import subsample_per_class as subsample_per_class
from tfkd.data.mnist import load_mnist as load_mnist

__all__ = ["load_digits", "load_mnist", "subsample_per_class"]
