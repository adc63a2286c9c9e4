"""Checks as probe + answer key + verdict: the registry, the notebook's runner, the grader's probe.

A check is four things, named in its lab module's ``register(...)`` call:

- ``inputs(seed=None, **params) -> dict``: the inputs. ``seed=None`` gives the fixed cases a
  student sees in the notebook, of the same kinds as those the grader draws from a fresh secret
  seed; ``params`` are literal keyword arguments of an instructor's hidden test.
- ``probe(obj, inputs) -> dict``: calls the student's object (always through ``_probe.call``)
  and returns plain data only (see ``_probe``). It runs where the student's code runs.
- the answer key: the right values and each named mistake's values on those inputs. For the
  notebook's fixed cases it ships as data (``keys/<check>.json``); for any other inputs it is
  computed by the instructor-only ``kdlab.grading.keys``, which neither the student release
  nor the grading sandbox contains. No reference implementation is in the public package.
- ``verdict(data, inputs, key) -> str``: reads only the plain data, the inputs and the key,
  raises AssertionError (``_common.fail``) naming the mistake (from the check's ``MISTAKES``
  table), or returns the detail of the pass line.

In the notebook, ``kd.checks.check_<name>(obj)`` runs the probe in the kernel, sends its data
through JSON (so the verdict sees exactly what a grader would) and judges it there against
the shipped key. In grading, the check cell runs only ``probe_cell`` on inputs the grader drew
and wrote into the cell; the grader judges the displayed JSON in its own process.
"""
from __future__ import annotations

import json
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import _probe
from ._common import Mistake, passed

CHECKS: dict = {}
_HERE = str(Path(__file__).resolve().parent)
KEYS_DIR = Path(__file__).resolve().parent / "keys"


class CheckFailed(AssertionError):
    """A failed check: IPython shows the student's frames and the message, not the checker's."""

    def _render_traceback_(self) -> list:  # IPython's hook for custom tracebacks
        frames = [f for f in traceback.extract_tb(self.__traceback__)
                  if not str(Path(f.filename).resolve()).startswith(_HERE)
                  and "/IPython/" not in f.filename]
        return (["-" * 75] + [ln.rstrip("\n") for ln in traceback.format_list(frames)]
                + [f"AssertionError: {self}"])


CheckFailed.__name__ = CheckFailed.__qualname__ = "AssertionError"  # what nbval and students see


class NoAnswerKey(RuntimeError):
    """The answer key for these inputs is not available here (student release, sandbox)."""


@dataclass(frozen=True)
class Check:
    """One registered check: its name (the exercise's), its functions and its mistakes."""
    name: str
    inputs: Callable
    probe: Callable
    verdict: Callable
    mistakes: tuple = field(default=())

    @property
    def title(self) -> str:
        return f"check_{self.name}"


def answer_key(check: Check, seed=None, params=None) -> dict:
    """The answer key of `check` for the inputs of (seed, params), as plain decoded data.

    The notebook's fixed inputs (seed None, no params): the shipped ``keys/<name>.json``.
    Anything else: computed by the instructor-only ``kdlab.grading.keys``; NoAnswerKey where
    that is not installed (the student release, the grading sandbox).
    """
    params = dict(params or {})
    path = KEYS_DIR / f"{check.name}.json"
    if seed is None and not params and path.is_file():
        return _probe.decode(json.loads(path.read_text(encoding="utf-8")))
    try:
        from kdlab.grading import keys
    except ImportError:
        raise NoAnswerKey(
            f"{check.title}: no answer key for these inputs here (seed {seed}, parameters "
            f"{params}): the course ships keys only for the notebook's own cases") from None
    return keys.make(check.name, check.inputs(seed, **params))


def judge(check: Check, data, seed=None, params=None) -> str:
    """The verdict on probe data (plain, e.g. parsed JSON): the pass detail, or AssertionError.

    Inputs and key are made again here from (seed, params), never taken from the probe's side.
    """
    __tracebackhide__ = True
    if not isinstance(data, dict):
        raise AssertionError(f"{check.title}: the probe's data is not a record (got "
                             f"{type(data).__name__}): the check cell or its output was tampered with")
    inp = check.inputs(seed, **(params or {}))
    return check.verdict(data, inp, answer_key(check, seed, params))


def probe_data(check: Check, obj, seed=None, params=None, inputs=None) -> dict:
    """Run the probe of `check` on the student's `obj`: plain data, as JSON would carry it."""
    inp = inputs if inputs is not None else check.inputs(seed, **(params or {}))
    return _probe.from_json(_probe.to_json(check.probe(obj, inp)))


def register(name: str, inputs: Callable, probe: Callable, verdict: Callable,
             mistakes=()) -> Callable:
    """Register a check; return the function the notebook calls, ``check_<name>(obj, **params)``."""
    check = Check(name, inputs, probe, verdict, tuple(mistakes))
    names = [m.name for m in check.mistakes]
    if len(set(names)) != len(names) or not all(isinstance(m, Mistake) for m in check.mistakes):
        raise ValueError(f"check {name}: MISTAKES must be Mistake entries with distinct names")
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


def probe_cell(name: str, obj, token: str, inputs_json: str) -> None:
    """Grading: run the probe of check `name` on `obj` with the inputs the grader wrote into
    the cell; display the data as JSON (MIME ``_probe.MIME``) for the grader to judge.

    token: the grader's label of this probe (matches the display to the probe it asked for).
    """
    from IPython.display import display

    check = CHECKS[name]
    try:
        inp = _probe.decode(json.loads(inputs_json))
        data = probe_data(check, obj, inputs=inp)
    except BaseException as e:  # noqa: BLE001 - the probe itself broke on hostile input
        if type(e) is KeyboardInterrupt:
            raise
        data = {"_probe_error": f"{type(e).__name__}: {_probe.text(e)}"}
    display({_probe.MIME: _probe.to_json({"check": name, "token": token, "data": data})}, raw=True)
