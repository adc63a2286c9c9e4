"""Score one executed notebook: a typed row per check, from the probes' data and the verdicts.

Pure: it reads the run's per-cell records (``runner.RunResult``) and judges each check's probe
data here, in the grader's process, on the inputs the grader drew and the answer key it
computes for them; nothing the kernel printed counts but those numbers. A probe's data is
accepted only from the probe's own grader cell (marked by the grader in metadata the kernel
never sees), only if that cell ran to its end, and only if it shows exactly one well-formed
record: a record missing from a cell that finished, unparseable, oversize or duplicated scores
0 as "record tampered with".

status is one of passed, failed (the check ran and rejected the code, or the code crashed),
error (the check could not run: time limit, dead kernel, too much output), invalid (the file
is not a notebook the grader reads), missing (no notebook for that lab), ambiguous (two
notebooks match the lab equally: none graded; see pick.py); manual rows (a teaching
assistant's score, e.g. of free-text answers) come from answers.py, not from here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

COLUMNS = ["student", "lab", "check", "points", "max_points", "status", "reason", "seeds",
           "check_sha256", "submission_sha256", "file", "graded_at", "other_notebooks"]


@dataclass
class Row:
    """The grade of one check of one student's notebook of one lab."""
    student: str
    lab: str
    check: str
    points: int
    max_points: int
    status: str
    reason: str = ""
    seeds: str = ""  # the secret seeds of the check's probes, ";"-separated
    check_sha256: str = ""  # digest of the code that judged it (see course.Lab)
    submission_sha256: str = ""  # digest of the submitted file
    seconds: float = 0.0  # how long the notebook took to grade (not a CSV column)
    file: str = ""  # the graded notebook, relative to the student's folder (see pick.py)
    graded_at: str = ""  # when it was graded, UTC, ISO 8601
    other_notebooks: str = ""  # the folder's other notebooks, "; "-separated (not graded here)
    part_reasons: dict = field(default_factory=dict)  # the public probe's verdict by part:
    # {part: "" if passed, else why}, for a check whose verdict has parts (not a CSV column)

    def cells(self) -> list:
        """The CSV cells, in COLUMNS order."""
        return [getattr(self, c) for c in COLUMNS]


def rows_for(student: str, lab, status: str, reason: str, sha: str = "") -> list:
    """The same status and reason for every check of `lab` (a notebook that did not run)."""
    return [Row(student, lab.name, c.name, 0, c.points, status, reason,
                check_sha256=lab.check_sha256.get(c.name, ""), submission_sha256=sha)
            for c in lab.checks]


def _oom(r) -> bool:
    evalue = r.get("evalue", "")
    return r.get("ename") == "MemoryError" or "can't allocate memory" in evalue or (
        "out of memory" in evalue.lower())


def first_event(run, memory: float | None = None):
    """The first cell that stopped the notebook: (record, sentence) or (None, "").

    memory: the memory limit in bytes, for the message (None: unsandboxed).
    """
    for r in run.cells:
        where = f"cell {r['cell']} (id {r['id']!r})"
        limit = f" of {memory / 1024 ** 3:.3g} GB" if memory else ""
        if r["timed_out"]:
            return r, f"{where} exceeded the time limit per cell"
        if _oom(r) or (r["kernel_died"] and getattr(run, "oom_killed", False)):
            return r, f"out of memory: {where} exceeded the memory limit{limit}"
        if r["kernel_died"]:
            return r, f"the kernel died in {where} (the code exited or crashed, e.g. os._exit)"
        if r["output_limit"]:
            return r, f"{where} printed too much output and the kernel was stopped"
    return None, ""


TAMPERED = "record tampered with"


def _record(r: dict, check: str):
    """The one probe record of a grader cell (plain data), or the reason it cannot be used."""
    problems = list(r.get("probe_problems") or [])
    texts = r.get("probes") or []
    if problems:
        return None, f"{TAMPERED}: {problems[0]}"
    if len(texts) != 1:
        return None, (f"{TAMPERED}: the probe cell showed {len(texts)} probe records, not one "
                      "(was the probe, its display or the cell's output rewritten?)")
    try:
        d = json.loads(texts[0])
    except (ValueError, RecursionError):
        return None, f"{TAMPERED}: the probe record is not JSON"
    if not isinstance(d, dict) or d.get("check") != check or set(d) != {"check", "data"}:
        return None, f"{TAMPERED}: the probe record is not the record of check {check!r}"
    return d["data"], ""


def verdict(draw, r: dict, label: str = "", key=None, by_part: dict | None = None) -> str:
    """'' if the probe of `draw` (a ``restore.Draw``) passed its verdict, else the reason.

    r: the record of that probe's own grader cell; label: put before a reason (hidden tests);
    key: the answer key of the draw's inputs (default: computed here, ``keys.make``); by_part:
    a dict to fill with the verdict part by part ({part: "" if passed, else why}; left empty
    when the probe's record cannot be judged at all).
    """
    from kdlab.checks import CHECKS
    from kdlab.checks._registry import RNG_LOCK, judge_parts

    from . import keys

    if r["ename"] or not r["ok"]:  # the cell did not run to its end: nothing it showed counts
        if r["ename"] == "NameError":
            return label + f"NameError: {r['evalue']} (run the exercise cell before its check)"
        return label + (f"the check cell raised {r['ename']}: {r['evalue']}" if r["ename"]
                        else f"the check cell did not finish ({r['error'][:300]})")
    data, problem = _record(r, draw.probe.check)
    if problem:
        return label + problem
    if isinstance(data, dict) and "_probe_error" in data:
        return label + f"the probe could not run on your code ({str(data['_probe_error'])[:300]})"
    check = CHECKS[draw.probe.check]
    params = dict(draw.probe.params)
    try:
        with RNG_LOCK:  # inputs, keys and verdicts: one thread at a time (see _registry)
            if key is None:
                key = keys.make(check, check.inputs(draw.seed, **params))
            _, parts, first = judge_parts(check, data, draw.seed, params, key=key)
    except AssertionError as e:
        return label + str(e)
    except Exception as e:  # noqa: BLE001 - data that is not what the probe writes
        return (label + f"{TAMPERED}: the probe's result could not be read ({type(e).__name__}: "
                f"{str(e)[:200]})")
    if by_part is not None:
        by_part.update(parts)
    return label + first if first else ""


def score(student: str, lab, run, modified: dict, draws: dict, sha: str,
          memory: float | None = None, timeouts=(None, None)) -> list:
    """The rows of one executed notebook.

    lab: course.Lab; run: runner.RunResult; modified: {check: what was wrong with its cell};
    draws: {check: [restore.Draw]}; sha: the submission's digest; memory: the memory limit
    (bytes) or None; timeouts: (seconds per cell, seconds per notebook), for the messages.
    """
    cell_timeout, nb_timeout = timeouts
    by_probe = {}
    for r in run.cells:
        g = r.get("grader") or {}
        if g.get("check") is not None:
            by_probe.setdefault((g.get("check"), g.get("probe"), g.get("token")), []).append(r)
    event, event_text = first_event(run, memory)
    out = []
    for chk in lab.checks:
        points, status, reason, first, by_part = 0, "passed", "", None, {}
        for k, d in enumerate(draws.get(chk.name, [])):
            label = "hidden test: " if k > 0 else ""
            found = by_probe.get((chk.name, k, d.token), [])
            r = found[0] if len(found) == 1 else None
            first = first or r
            if len(found) > 1:
                status, reason = "failed", f"{label}{TAMPERED}: the probe's cell ran {len(found)} times"
            elif r is None:
                status = "error"
                if event is not None:
                    reason = f"not run: {event_text}"
                elif run.timed_out:
                    reason = f"not run: the notebook exceeded its time limit of {nb_timeout:g} s"
                else:
                    reason = "not run: the notebook could not be executed (" + (
                        run.log.strip().splitlines() or ["no output"])[-1][:300] + ")"
            elif r.get("start_failed"):  # the grader's machine, not the notebook: grade it again
                status, reason = "error", (f"not run: {r['error'].split(': ', 1)[-1][:300]}; "
                                           "grade this notebook again")
            elif event is not None and event_text.startswith("out of memory") and event["cell"] <= r["cell"]:
                status, reason = "error", event_text
            elif r["timed_out"]:
                status, reason = "error", f"the check exceeded the time limit of {cell_timeout:g} s per cell"
            elif r["kernel_died"] or r["output_limit"]:
                status, reason = "error", r["error"].split(": ", 1)[-1]
            elif r.get("dead_at_start"):
                status, reason = "error", f"not run: {event_text or 'the kernel had stopped'}"
            else:
                reason = verdict(d, r, label, by_part=by_part if k == 0 else None)
                status = "failed" if reason else "passed"
            if status != "passed":
                break
        if status == "passed":
            points = chk.points
        r = first
        earlier = [x for x in run.cells if r is not None and x["cell"] < r["cell"]
                   and not x["ok"] and x["ename"] not in ("", "NotImplementedError")
                   and not x.get("grader")]
        if status == "failed" and earlier:
            e = earlier[0]
            what = f"{e['ename']}: {e['evalue'][:300]}" if e["evalue"] else e["ename"]
            reason += f" (an earlier cell failed: cell {e['cell']} (id {e['id']!r}): {what})"
        if status == "failed" and event is not None and event is not r \
                and not event_text.startswith("out of memory"):
            reason += f" (earlier: {event_text})"
        if chk.name in modified:
            note = f"check cell modified ({modified[chk.name]}); the canonical check from labs/ was run"
            reason = note + (f": {reason}" if reason else "")
        seeds = ";".join(str(d.seed) for d in draws.get(chk.name, []))
        out.append(Row(student, lab.name, chk.name, points, chk.points, status, reason, seeds,
                       lab.check_sha256.get(chk.name, ""), sha, run.seconds, part_reasons=by_part))
    return out
