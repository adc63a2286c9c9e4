"""Checks as probe + verdict: the registry, the in-notebook runner and the grader's probe cell.

A check is three functions of its lab module:

- ``inputs(seed=None, **params) -> dict``: the inputs. ``seed=None`` gives the fixed inputs a
  student sees in the notebook; the grader draws a fresh secret seed for every run. ``params``
  are literal keyword arguments an instructor may pass in a hidden test (e.g. other sizes).
- ``probe(obj, inputs) -> dict``: calls the student's object (always through ``_probe.call``)
  and returns plain data only (see ``_probe``). It runs where the student's code runs.
- ``verdict(data, inputs) -> str``: reads only the plain data and the inputs, raises
  AssertionError (``_common.fail``) naming the mistake, or returns the detail of the pass line.

In the notebook, ``kd.checks.check_<name>(obj)`` runs all three in the kernel (the data goes
through JSON first, so the verdict sees exactly what a grader would). In grading, the check
cell runs only the probe (``emit``) in the sandboxed kernel; the grader runs the verdict
(``judge``) in its own process on the JSON the probe displayed.
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import _probe
from ._common import fail, passed

CHECKS: dict = {}
_HERE = str(Path(__file__).resolve().parent)


class CheckFailed(AssertionError):
    """A failed check: IPython shows the student's frames and the message, not the checker's."""

    def _render_traceback_(self) -> list:  # IPython's hook for custom tracebacks
        frames = [f for f in traceback.extract_tb(self.__traceback__)
                  if not str(Path(f.filename).resolve()).startswith(_HERE)
                  and "/IPython/" not in f.filename]
        return (["-" * 75] + [ln.rstrip("\n") for ln in traceback.format_list(frames)]
                + [f"AssertionError: {self}"])


CheckFailed.__name__ = CheckFailed.__qualname__ = "AssertionError"  # what nbval and students see


@dataclass(frozen=True)
class Check:
    """One registered check: its name (the exercise's) and its three functions."""
    name: str
    inputs: Callable
    probe: Callable
    verdict: Callable

    @property
    def title(self) -> str:
        return f"check_{self.name}"


def _reference_verdict(title: str, data) -> None:
    """Fail if the probe saw the student's object be, or call, a reference implementation."""
    found = []
    if isinstance(data, dict):
        found += [tuple(w) for w in data.get("_provenance", []) if isinstance(w, (list, tuple))]
        stack = [data]
        while stack:
            d = stack.pop()
            if isinstance(d, dict):
                calls = d.get("reference_calls")
                if isinstance(calls, list):
                    found += [tuple(w) for w in calls if isinstance(w, (list, tuple))]
                stack += list(d.values())
            elif isinstance(d, list):
                stack += d
    if found:
        names = sorted({".".join(str(p) for p in w) for w in found})
        fail(title, "uses the course's reference implementation: your code is or calls "
                    + ", ".join(names[:3]),
             "write the exercise yourself with torch operations; the course's own versions "
             "(kd.losses, kd.compress, kd.checks) are for the labs' other cells, not for the "
             "exercises")


def judge(check: Check, data, seed=None, params=None) -> str:
    """The verdict on probe data (plain, e.g. parsed JSON): the pass detail, or AssertionError.

    Inputs are made again here from (seed, params), never taken from the probe's side.
    """
    __tracebackhide__ = True
    _reference_verdict(check.title, data)
    return check.verdict(data, check.inputs(seed, **(params or {})))


def probe_data(check: Check, obj, seed=None, params=None) -> dict:
    """Run the probe of `check` on the student's `obj`: plain data, as JSON would carry it."""
    data = check.probe(obj, check.inputs(seed, **(params or {})))
    data["_provenance"] = [list(w) for w in _probe.provenance(obj)]
    return _probe.from_json(_probe.to_json(data))


def register(name: str, inputs: Callable, probe: Callable, verdict: Callable) -> Callable:
    """Register a check; return the function the notebook calls, ``check_<name>(obj, **params)``."""
    check = Check(name, inputs, probe, verdict)
    CHECKS[name] = check

    def run(obj, **params) -> None:
        __tracebackhide__ = True  # IPython shows the message, not the checker's frames
        data = probe_data(check, obj, None, params)
        try:
            detail = judge(check, data, None, params)
        except AssertionError as e:
            raise CheckFailed(str(e)) from None  # the message only: no checker frames
        passed(check.title, detail)

    run.__name__ = run.__qualname__ = check.title
    run.__doc__ = (verdict.__doc__ or probe.__doc__ or "").strip() or f"Check {name}."
    run.check = check
    return run


def emit(name: str, obj, seed: int, params: dict | None = None) -> None:
    """Grading: run the probe of check `name` on `obj` and display its JSON (MIME ``_probe.MIME``).

    The grader reads the displayed JSON and runs the verdict in its own process.
    """
    from IPython.display import display

    check = CHECKS[name]
    try:
        data = probe_data(check, obj, seed, params)
    except Exception as e:  # noqa: BLE001 - the probe itself broke on hostile input
        data = {"_probe_error": f"{type(e).__name__}: {_probe.text(e)}"}
    display({_probe.MIME: _probe.to_json({"check": name, "seed": seed, "params": params or {},
                                          "data": data})}, raw=True)
