"""Checks as probe + answer key + verdict: the registry, the notebook's runner, the grader's probe.

A check is an object declared once in its lab module, ``check_<name> = Check(name, inputs,
probe, verdict, mistakes)``; its name is the only place the check is spelled, and it carries:

- ``inputs(seed=None, **params) -> dict``: the inputs. ``seed=None`` gives the fixed cases a
  student sees in the notebook, of the same kinds as those the grader draws from a fresh secret
  seed; ``params`` are literal keyword arguments of an instructor's hidden test.
- ``probe(obj, inputs) -> dict``: calls the student's object (always through ``_probe.call``)
  and returns plain data only (see ``_probe``). It runs where the student's code runs.
- the answer key: the right values and each named mistake's values on those inputs. For the
  notebook's fixed cases it ships as data (``check.key_file``, keys/<name>.json); for any other inputs it is
  computed by the instructor-only ``kdlab.grading.keys``, which neither the student release
  nor the grading sandbox contains, and which this package never imports: the grader hands
  the key to ``judge``. No reference implementation is in the public package.
- ``verdict(check, data, inputs, key) -> str``: receives the check itself (its title, its
  mistakes table) and reads only the plain data, the inputs and the key; raises
  AssertionError (``_common.fail``) naming the mistake (``check.mistake(name)``), or returns
  the detail of the pass line.
- ``mistakes``: the Mistake entries the verdict may name; the key maker of the instructor's
  side (``kdlab.grading.keys.key_of(check)``) writes one key entry for each of them.

In the notebook, ``kd.checks.check_<name>(obj)`` runs the probe in the kernel, sends its data
through JSON (so the verdict sees exactly what a grader would) and judges it there against
the shipped key. In grading, each probe runs in a cell of its own (``bind_probes``) on inputs
the grader drew and wrote into the cell; the grader judges the displayed JSON in its own
process.
"""
from __future__ import annotations

import contextvars
import json
import threading
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from . import _probe

# The grader scores two notebooks at a time, in threads of one process, and makes inputs and
# answer keys there. Many of them draw from torch's global random generator (a tiny model's
# initial weights, fork_rng + manual_seed around a reference call, a key's sampled tokens):
# another thread's draws in between change them, and a right answer then fails against a key
# made from other weights or samples. Whoever makes inputs, keys or verdicts in the grader
# holds this lock (re-entrant: key makers take it again inside). Lab 07 also takes it while it
# resolves transformers' lazy attributes (one thread got ImportError otherwise).
RNG_LOCK = threading.RLock()
from ._common import Mistake, passed, rng

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


@dataclass(frozen=True, eq=False)
class Check:
    """One check, declared once in its lab module: ``check_<name> = Check(name, inputs, probe,
    verdict, mistakes)``. Constructing it registers it in ``CHECKS``; calling it runs it on the
    student's object in the notebook: ``check_<name>(obj, **params)``.

    name: the exercise's name; everything else that names the check derives from it (the title
    ``check_<name>``, the random stream of its inputs ``rng``, its shipped answer key
    ``key_file``, the instructor's key maker joined to it by ``kdlab.grading.keys.key_of``).
    inputs(seed=None, **params) -> dict; probe(obj, inputs) -> plain data;
    verdict(check, data, inputs, key) -> the pass detail (raises AssertionError naming the
    mistake); mistakes: the Mistake entries the verdict may name (``mistake``); parts: the
    names of the parts the verdict judges one by one (``part``), on which a check cell's
    metadata may split the check's points (``kdlab.grading.parts``).
    """
    name: str
    inputs: Callable
    probe: Callable
    verdict: Callable
    mistakes: tuple = field(default=())
    parts: tuple = field(default=())

    def __post_init__(self):
        object.__setattr__(self, "mistakes", tuple(self.mistakes))
        object.__setattr__(self, "parts", tuple(self.parts))
        if len(set(self.parts)) != len(self.parts) or "hidden" in self.parts or "public" in self.parts:
            raise ValueError(f"check {self.name}: parts must be distinct names other than "
                             f"'public' and 'hidden', got {self.parts}")
        names = [m.name for m in self.mistakes]
        if len(set(names)) != len(names) or not all(isinstance(m, Mistake) for m in self.mistakes):
            raise ValueError(f"check {self.name}: mistakes must be Mistake entries with distinct names")
        doc = (self.verdict.__doc__ or self.probe.__doc__ or "").strip() or f"Check {self.name}."
        object.__setattr__(self, "__doc__", doc)  # what help() and `?` show the student
        CHECKS[self.name] = self

    @property
    def title(self) -> str:
        return f"check_{self.name}"

    @property
    def key_file(self) -> Path:
        """The shipped answer key of the notebook's own cases: keys/<name>.json."""
        return KEYS_DIR / f"{self.name}.json"

    def rng(self, seed=None, part: str = "") -> torch.Generator:
        """The random generator of this check's inputs (its own stream; see ``_common.rng``)."""
        return rng(self.name, seed, part)

    def mistake(self, name: str) -> Mistake:
        """The entry `name` of this check's mistakes table (KeyError naming the check if none)."""
        for m in self.mistakes:
            if m.name == name:
                return m
        raise KeyError(f"check {self.name} has no mistake {name!r}; known: "
                       f"{[m.name for m in self.mistakes]}")

    @contextmanager
    def part(self, name: str):
        """The block of the verdict that judges part `name` of the check (one of ``parts``).

        Judged through ``judge_parts`` (the grader, the notebook), a failure inside the block
        is recorded for that part and the verdict goes on to the next part; the first failure
        is still the message the student sees. Called directly, the block fails as any code.
        """
        if name not in self.parts:
            raise ValueError(f"check {self.name}: no part {name!r}; its parts: {self.parts}")
        record = _RECORD.get()
        if record is None:
            yield
            return
        try:
            yield
        except AssertionError as e:
            record.setdefault(name, str(e) or "failed")
            record.setdefault("", str(e) or "failed")  # the first failure of all
        else:
            record.setdefault(name, "")

    def __call__(self, obj, **params) -> None:
        """The notebook's check: probe `obj`, judge the data against the shipped key, print
        the pass line or raise AssertionError with the message only (no checker frames)."""
        __tracebackhide__ = True  # IPython shows the message, not the checker's frames
        data = probe_data(self, obj, None, params)
        try:
            detail = judge(self, data, None, params)
        except AssertionError as e:
            raise CheckFailed(str(e)) from None  # the message only: no checker frames
        passed(self.title, detail)

    def __repr__(self) -> str:
        return f"<check {self.name}>"


_RECORD = contextvars.ContextVar("kdlab_check_parts", default=None)  # see Check.part
KEY_MAKERS: list = []  # where keys for other inputs come from: the grader adds its own


def answer_key(check: Check, seed=None, params=None) -> dict:
    """The answer key of `check` for the inputs of (seed, params), as plain decoded data.

    The notebook's fixed inputs (seed None, no params): the shipped ``keys/<name>.json``.
    Anything else: from a key maker the instructor's tooling registered in ``KEY_MAKERS``
    (``kdlab.grading.keys`` does so when imported; this package never imports it);
    NoAnswerKey where there is none (the student release, the grading sandbox).
    """
    params = dict(params or {})
    path = check.key_file
    if seed is None and not params and path.is_file():
        return _probe.decode(json.loads(path.read_text(encoding="utf-8")))
    if not KEY_MAKERS:
        raise NoAnswerKey(
            f"{check.title}: no answer key for these inputs here (seed {seed}, parameters "
            f"{params}): the course ships keys only for the notebook's own cases (instructors: "
            "`import kdlab.grading.keys` first to judge any inputs)")
    return KEY_MAKERS[-1](check, check.inputs(seed, **params))


def judge(check: Check, data, seed=None, params=None, key=None, inputs=None) -> str:
    """The verdict on probe data (plain, e.g. parsed JSON): the pass detail, or AssertionError.

    Inputs are made again here from (seed, params), never taken from the probe's side; key:
    the answer key of those inputs (the grader hands it over), else ``answer_key``; inputs:
    those of (seed, params) made already by the judge's own side (a caller that judges many
    records of one check makes them once and hands each verdict a copy), else made here.
    """
    __tracebackhide__ = True
    detail, _, first = judge_parts(check, data, seed, params, key, inputs)
    if first:
        raise AssertionError(first)
    return detail


def judge_parts(check: Check, data, seed=None, params=None, key=None, inputs=None) -> tuple:
    """The verdict part by part: (pass detail or None, {part: "" if passed, else the reason},
    the first failure's message or "" if none).

    A failure outside every ``Check.part`` block (the call raised, returned no tensor, ...)
    fails each part it stopped before its block ran; the first failure is the message the
    whole verdict gives (it judges the parts in order and the student reads the first).
    seed, params, key, inputs: as in ``judge``.
    """
    __tracebackhide__ = True
    if not isinstance(data, dict):
        msg = (f"{check.title}: the probe's data is not a record (got {type(data).__name__}): "
               "the check cell or its output was tampered with")
        return None, {p: msg for p in check.parts}, msg
    inp = inputs if inputs is not None else check.inputs(seed, **(params or {}))
    key = key if key is not None else answer_key(check, seed, params)
    record: dict = {}
    token = _RECORD.set(record)
    try:
        detail, outside = check.verdict(check, data, inp, key), ""
    except AssertionError as e:
        detail, outside = None, str(e) or "failed"
    finally:
        _RECORD.reset(token)
    first = record.pop("", "") or outside
    if first:
        detail = None
    by_part = {p: record.get(p, outside or f"part {p!r} was not judged") for p in check.parts}
    return detail, by_part, first


def probe_data(check: Check, obj, seed=None, params=None, inputs=None) -> dict:
    """Run the probe of `check` on the student's `obj`: plain data, as JSON would carry it."""
    inp = inputs if inputs is not None else check.inputs(seed, **(params or {}))
    return _probe.from_json(_probe.to_json(check.probe(obj, inp)))


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
