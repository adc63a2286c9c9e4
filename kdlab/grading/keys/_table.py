"""The table of key makers, each joined to its check by the check object itself.

A key maker is declared beside the reference implementation of its exercise, in the lab's
module of this package::

    from kdlab.checks.lab03 import check_kd_loss

    @key_of(check_kd_loss)
    def kd_loss_key(inputs: dict) -> dict: ...

so the check's name is never typed again: ``KEYS`` is filled from ``check.name``.
"""
from __future__ import annotations

from typing import Callable

KEYS: dict = {}  # check name -> key maker key(inputs) -> dict (see kdlab.grading.keys.make)
CHECK_OF: dict = {}  # check name -> the check object the key maker was declared for


def key_of(check) -> Callable:
    """Decorator: the function computes the answer key of `check` (a ``kdlab.checks.Check``)
    from its inputs, ``key(inputs) -> dict``: the right values and one entry per mistake of
    ``check.mistakes`` that the verdict recognises by its values."""
    name = getattr(check, "name", None)
    if not isinstance(name, str) or not callable(getattr(check, "inputs", None)):
        raise TypeError(f"key_of takes a check object (kdlab.checks.Check), got {check!r}")

    def declare(fn: Callable) -> Callable:
        if name in KEYS and KEYS[name] is not fn and (
                KEYS[name].__module__, KEYS[name].__qualname__) != (fn.__module__, fn.__qualname__):
            raise ValueError(f"check {name} has two key makers: {KEYS[name].__qualname__} and "
                             f"{fn.__qualname__}")
        KEYS[name], CHECK_OF[name] = fn, check
        return fn

    return declare
