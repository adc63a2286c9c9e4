"""A check's points split across its parts, as its cell says.

A check cell's metadata may hold ``"parts"`` beside ``"points"`` (whole numbers adding up to
``points``), in one of two forms:

- ``{"public": a, "hidden": b}``: the public probe (the notebook's cases, on the grader's
  fresh inputs) passing earns a, every hidden test passing too earns b;
- the parts of the check's own verdict (``Check.parts``, e.g. Lab 01's softmax: values,
  gradient, errors), every one of them named, and optionally ``"hidden"``: e.g.
  ``{"values": 1, "gradient": 1, "errors": 1}``. The verdict judges each part on its own
  (the student still reads the first failure, as in the notebook); each part the public probe
  passes earns its points, and ``hidden`` is earned when the public probe passes whole and
  every hidden test passes. A failed check's reason then starts with the parts that passed.

Without ``parts`` a check is all or nothing.
"""
from __future__ import annotations

from dataclasses import replace

from .notebook_io import NotebookError, kdlab_meta

HIDDEN = "hidden test:"  # how scoring.verdict starts the reason of a failed hidden test


def _declared(name: str) -> tuple:
    from kdlab.checks import CHECKS

    check = CHECKS.get(name)
    return tuple(check.parts) if check is not None else ()


def parts(chk) -> dict | None:
    """The check's split {part: points}, None if it has none; NotebookError if malformed."""
    meta = kdlab_meta(chk.cell)
    p = meta.get("parts")
    if p is None:
        return None
    declared = _declared(chk.name)
    forms = [{"public", "hidden"}]
    if declared:
        forms += [set(declared), set(declared) | {"hidden"}]
    whole = isinstance(p, dict) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                        for v in p.values())
    if not (whole and set(p) in forms and sum(p.values()) == chk.points):
        of_verdict = (f', or one entry for each part of its verdict {list(declared)} (plus '
                      f'"hidden" if it has hidden tests)' if declared else
                      " (its verdict has no parts of its own)")
        raise NotebookError(
            f"check cell {chk.cell.get('id')!r} ({chk.name}): kdlab.parts must be "
            f'{{"public": a, "hidden": b}}{of_verdict}, whole numbers >= 0 adding up to points '
            f"({chk.points}); got {p!r}")
    return p


def validate(lab) -> None:
    """Raise NotebookError if a check cell of `lab` (course.Lab) has malformed parts."""
    for chk in lab.checks:
        parts(chk)


def apply(rows: list, lab) -> list:
    """The rows of failed checks with a split given the points of the parts that passed."""
    split = {chk.name: parts(chk) for chk in lab.checks}
    out = []
    for r in rows:
        p = split.get(r.check)
        if p and r.status == "failed":
            r = _split(r, p)
        out.append(r)
    return out


def _split(r, p: dict):
    """A failed row with the points its passed parts earn (see the module's docstring)."""
    core = r.reason
    if core.startswith("check cell modified"):  # see scoring.score
        core = core.split("the canonical check from labs/ was run: ", 1)[-1]
    if set(p) == {"public", "hidden"}:
        if core.startswith(HIDDEN):
            return replace(r, points=p["public"], reason=f"public part passed ({p['public']}/"
                                                         f"{r.max_points} points); {r.reason}")
        return r
    by_part = getattr(r, "part_reasons", None) or {}
    passed = [n for n in by_part if n in p and n != "hidden" and not by_part[n]]  # verdict's order
    if not passed:
        return r
    points = sum(p[n] for n in passed)
    return replace(r, points=points, reason=f"parts passed: {', '.join(passed)} ({points}/"
                                            f"{r.max_points} points); {r.reason}")
