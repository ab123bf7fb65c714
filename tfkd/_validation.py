"""Argument checks shared by tfkd's public objects: messages say what is expected, what was
received, and how to fix it."""

import numbers


def _describe(name, value):
    return f"Received: {name}={value!r} (of type {type(value).__name__})."


def check_number(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a number. {_describe(name, value)}")
    return float(value)


def check_positive(name, value):
    value = check_number(name, value)
    if value <= 0:
        raise ValueError(
            f"`{name}` must be > 0. Received: {name}={value!r}. Pass a positive number."
        )
    return value


def check_non_negative(name, value):
    value = check_number(name, value)
    if value < 0:
        raise ValueError(f"`{name}` must be >= 0. Received: {name}={value!r}.")
    return value


def check_fraction(name, value):
    """A number in [0, 1]."""
    value = check_number(name, value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(
            f"`{name}` must be between 0 and 1 (inclusive). Received: {name}={value!r}."
        )
    return value


def check_open_fraction(name, value):
    """A number strictly between 0 and 1."""
    value = check_number(name, value)
    if not 0.0 < value < 1.0:
        raise ValueError(
            f"`{name}` must be strictly between 0 and 1. Received: {name}={value!r}."
        )
    return value


def check_int(name, value, minimum=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer. {_describe(name, value)}")
    if minimum is not None and value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}. Received: {name}={value!r}.")
    return int(value)


def check_choice(name, value, choices):
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"`{name}` must be one of {options}. Received: {name}={value!r}.")
    return value
