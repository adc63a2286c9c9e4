"""When course helpers may run: outside the checks' probes only.

A check's probe calls the student's exercise on inputs it chose; while it does, the course's
own training helpers (``kd.train.fit``, ``kd.train.distillation``) refuse to run, in every
thread, so that no exercise can pass by handing its work to them. ``checking()`` marks that
time; ``refuse_in_check(name)`` is what a helper calls first.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0  # probes running now (process-wide, not per thread)


class HelperInCheck(RuntimeError):
    """A course helper was called while a check was probing an exercise."""


def in_check() -> bool:
    """True while a check's probe is calling the student's code (in any thread)."""
    return _depth > 0


@contextmanager
def checking():
    """Mark the time a probe calls student code: course helpers refuse to run meanwhile."""
    global _depth
    with _lock:
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1


def refuse_in_check(name: str) -> None:
    """Raise HelperInCheck if a check is probing: `name` may not stand in for an exercise."""
    if _depth > 0:
        raise HelperInCheck(
            f"{name} is one of the course's helpers for the labs' other cells; an exercise "
            "must be your own code, so it cannot call it (write the steps yourself with torch)")
