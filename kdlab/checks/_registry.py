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
  nor the grading sandbox contains, and which this package never imports: the grader hands
  the key to ``judge``. No reference implementation is in the public package.
- ``verdict(data, inputs, key) -> str``: reads only the plain data, the inputs and the key,
  raises AssertionError (``_common.fail``) naming the mistake (from the check's ``MISTAKES``
  table), or returns the detail of the pass line.

In the notebook, ``kd.checks.check_<name>(obj)`` runs the probe in the kernel, sends its data
through JSON (so the verdict sees exactly what a grader would) and judges it there against
the shipped key. In grading, each probe runs in a cell of its own (``bind_probes``) on inputs
the grader drew and wrote into the cell; the grader judges the displayed JSON in its own
process.
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


KEY_MAKERS: list = []  # where keys for other inputs come from: the grader adds its own


def answer_key(check: Check, seed=None, params=None) -> dict:
    """The answer key of `check` for the inputs of (seed, params), as plain decoded data.

    The notebook's fixed inputs (seed None, no params): the shipped ``keys/<name>.json``.
    Anything else: from a key maker the instructor's tooling registered in ``KEY_MAKERS``
    (``kdlab.grading.keys`` does so when imported; this package never imports it);
    NoAnswerKey where there is none (the student release, the grading sandbox).
    """
    params = dict(params or {})
    path = KEYS_DIR / f"{check.name}.json"
    if seed is None and not params and path.is_file():
        return _probe.decode(json.loads(path.read_text(encoding="utf-8")))
    if not KEY_MAKERS:
        raise NoAnswerKey(
            f"{check.title}: no answer key for these inputs here (seed {seed}, parameters "
            f"{params}): the course ships keys only for the notebook's own cases (instructors: "
            "`import kdlab.grading.keys` first to judge any inputs)")
    return KEY_MAKERS[-1](check.name, check.inputs(seed, **params))


def judge(check: Check, data, seed=None, params=None, key=None) -> str:
    """The verdict on probe data (plain, e.g. parsed JSON): the pass detail, or AssertionError.

    Inputs are made again here from (seed, params), never taken from the probe's side; key:
    the answer key of those inputs (the grader hands it over), else ``answer_key``.
    """
    __tracebackhide__ = True
    if not isinstance(data, dict):
        raise AssertionError(f"{check.title}: the probe's data is not a record (got "
                             f"{type(data).__name__}): the check cell or its output was tampered with")
    inp = check.inputs(seed, **(params or {}))
    return check.verdict(data, inp, key if key is not None else answer_key(check, seed, params))


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


def bind_probes():
    """Grading: the function the grader's probe cells call, bound now to the probes registered now.

    A graded kernel runs ``_kdlab_probe = bind_probes()`` as it starts, before any cell of
    the notebook, so a later change of ``CHECKS``, of this module or of ``kdlab.checks`` does
    not change which probe a check cell runs. Returns ``probe(name, obj, inputs_json)``: run
    the probe of check `name` on `obj` with the inputs the grader wrote into the cell, and
    display its data once as JSON (MIME ``_probe.MIME``); the grader knows from the cell
    itself (its metadata, which never reaches the kernel) which probe that record belongs to.
    """
    from IPython.display import display

    probes = {name: check.probe for name, check in CHECKS.items()}
    decode, to_json, from_json, text, mime = (_probe.decode, _probe.to_json, _probe.from_json,
                                              _probe.text, _probe.MIME)
    loads = json.loads

    def probe(name: str, obj, inputs_json: str) -> None:
        try:
            data = from_json(to_json(probes[name](obj, decode(loads(inputs_json)))))
        except BaseException as e:  # noqa: BLE001 - the probe itself broke on hostile input
            if type(e) is KeyboardInterrupt:
                raise
            data = {"_probe_error": f"{type(e).__name__}: {text(e)}"}
        display({mime: to_json({"check": name, "data": data})}, raw=True)

    return probe
