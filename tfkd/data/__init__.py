"""Data that ships with tfkd's dependencies, or that tfkd generates: runs offline."""

from tfkd.data.digits import load_digits as load_digits
from tfkd.data.digits import subsample_per_class as subsample_per_class
from tfkd.data.mnist import load_mnist as load_mnist
from tfkd.data.text import Tokenizer as Tokenizer
from tfkd.data.text import generate_sentiment as generate_sentiment
from tfkd.data.text import load_sentiment as load_sentiment

__all__ = [
    "load_digits", "load_mnist", "subsample_per_class", "load_sentiment", "generate_sentiment",
    "Tokenizer",
]
