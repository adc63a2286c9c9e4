"""Argument checks the course's helpers share, made before any slow work (drawing, loading,
training): a TypeError or ValueError that names the argument, says what came instead of what
was expected, and how to fix it.

``kind`` says what a value is; ``path``, ``whole`` and ``flag`` accept a folder path, a whole
number and a bool. The figures' checks of dicts and arrays are in ``kd.plot._shared``.
"""
from __future__ import annotations

import numbers
import os
from pathlib import Path

import numpy as np


def kind(x) -> str:
    """What `x` is, as an error message names it: 'a Tensor of shape (64, 10)', 'a float (0.5)'."""
    shape = getattr(x, "shape", None)
    if isinstance(shape, tuple) or type(shape).__name__ == "Size":
        return f"a {type(x).__name__} of shape {tuple(shape)}"
    if isinstance(x, (list, tuple, dict)):
        return f"a {type(x).__name__} of {len(x)} item{'s' * (len(x) != 1)}"
    text = repr(x)
    return f"a {type(x).__name__} ({text if len(text) <= 40 else text[:37] + '...'})"


def path(name: str, value, example: str = "'out'") -> Path:
    """`value` as a Path if it is a str or an os.PathLike; else TypeError naming `name`."""
    if isinstance(value, (str, os.PathLike)):
        return Path(value)
    raise TypeError(f"{name} must be a folder path (a str or a pathlib.Path), got {kind(value)}; "
                    f"e.g. {name}={example}")


def whole(name: str, value, minimum: int = 1) -> int:
    """`value` as an int if it is a whole number (int or numpy integer, not a bool) >= `minimum`;
    else TypeError (not a whole number) or ValueError (too small) naming `name`."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be a whole number >= {minimum}, got {kind(value)}; "
                        f"e.g. {name}={max(minimum, 1)}")
    if value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value}")
    return int(value)


def flag(name: str, value) -> bool:
    """`value` as a bool if it is True or False (a Python or numpy bool); else TypeError naming `name`."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {kind(value)}")
    return bool(value)
