"""A check's points split between its public part and its hidden tests, as its cell says.

A check cell's metadata may hold ``{"kdlab": {"check": ..., "points": 3, "parts": {"public":
2, "hidden": 1}}}`` (whole numbers adding up to ``points``). A check then earns its public
part when its public probe (the notebook's cases, on the grader's fresh inputs) passes, and
the rest when every hidden test passes too; without ``parts`` a check is all or nothing.
Only this split is supported: the parts of one probe (values, gradient, errors) are judged
by one verdict, which stops at the first mistake.
"""
from __future__ import annotations

from dataclasses import replace

from .notebook_io import NotebookError, kdlab_meta

HIDDEN = "hidden test:"  # how scoring.verdict starts the reason of a failed hidden test


def parts(chk) -> dict | None:
    """The check's {"public": a, "hidden": b}, None if it has none; NotebookError if malformed."""
    meta = kdlab_meta(chk.cell)
    p = meta.get("parts")
    if p is None:
        return None
    ok = (isinstance(p, dict) and set(p) == {"public", "hidden"}
          and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in p.values())
          and p["public"] + p["hidden"] == chk.points)
    if not ok:
        raise NotebookError(f"check cell {chk.cell.get('id')!r} ({chk.name}): kdlab.parts must be "
                            f'{{"public": a, "hidden": b}} with whole a + b == points ({chk.points}), '
                            f"got {p!r}")
    return p


def validate(lab) -> None:
    """Raise NotebookError if a check cell of `lab` (course.Lab) has malformed parts."""
    for chk in lab.checks:
        parts(chk)


def apply(rows: list, lab) -> list:
    """The rows with each split check's public part awarded where only a hidden test failed."""
    split = {chk.name: parts(chk) for chk in lab.checks}
    out = []
    for r in rows:
        p = split.get(r.check)
        core = r.reason
        if core.startswith("check cell modified"):  # see scoring.score
            core = core.split("the canonical check from labs/ was run: ", 1)[-1]
        if p and r.status == "failed" and core.startswith(HIDDEN):
            r = replace(r, points=p["public"],
                        reason=f"public part passed ({p['public']}/{r.max_points} points); {r.reason}")
        out.append(r)
    return out
