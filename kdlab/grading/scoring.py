"""Score one executed notebook: a typed row per check, from the probes' data and the verdicts.

Pure: it reads the run's per-cell records (``runner.RunResult``) and judges each check's probe
data here, in the grader's process, on the inputs the grader drew; nothing the kernel printed
counts but those numbers. A probe's data is accepted only from its own check cell, once, with
the token the grader gave it, and only if that cell ran to its end.

status is one of passed, failed (the check ran and rejected the code, or the code crashed),
error (the check could not run: time limit, dead kernel, too much output), invalid (the file
is not a notebook the grader reads), missing (no notebook for that lab), ambiguous (two
notebooks match the lab equally: none graded; see pick.py); manual rows (a teaching
assistant's score, e.g. of free-text answers) come from answers.py, not from here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

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


def _payloads(r) -> list:
    out = []
    for text in r.get("probes", []):
        try:
            d = json.loads(text)
        except (ValueError, RecursionError):
            continue
        if isinstance(d, dict):
            out.append(d)
    return out


def verdict(draws: list, r: dict) -> str:
    """'' if every probe of a check passed its verdict, else the reason it failed.

    draws: the check's ``restore.Draw`` list; r: its check cell's record.
    """
    from kdlab.checks import CHECKS
    from kdlab.checks._registry import judge

    payloads = _payloads(r)
    for k, d in enumerate(draws):
        label = "hidden test: " if k > 0 else ""
        mine = [p for p in payloads if p.get("token") == d.token and p.get("check") == d.probe.check]
        if r["ename"] or not r["ok"]:  # the cell did not run to its end: nothing it showed counts
            if r["ename"] == "NameError":
                return label + f"NameError: {r['evalue']} (run the exercise cell before its check)"
            return label + (f"the check cell raised {r['ename']}: {r['evalue']}" if r["ename"]
                            else f"the check cell did not finish ({r['error'][:300]})")
        if not mine:
            return (label + "the check cell ran but its probe reported nothing (was the cell's "
                    "code or output rewritten?)")
        if len(mine) > 1:
            return label + "the probe's result appeared more than once: the check cell's output was tampered with"
        data = mine[0].get("data")
        if isinstance(data, dict) and "_probe_error" in data:
            return label + f"the probe could not run on your code ({str(data['_probe_error'])[:300]})"
        try:
            judge(CHECKS[d.probe.check], data, d.seed, dict(d.probe.params))
        except AssertionError as e:
            return label + str(e)
        except Exception as e:  # noqa: BLE001 - data that is not what the probe writes
            return (label + f"the probe's result could not be read ({type(e).__name__}: "
                    f"{str(e)[:200]}): was the probe or its output tampered with?")
    return ""


def score(student: str, lab, run, modified: dict, draws: dict, sha: str,
          memory: float | None = None, timeouts=(None, None)) -> list:
    """The rows of one executed notebook.

    lab: course.Lab; run: runner.RunResult; modified: {check: what was wrong with its cell};
    draws: {check: [restore.Draw]}; sha: the submission's digest; memory: the memory limit
    (bytes) or None; timeouts: (seconds per cell, seconds per notebook), for the messages.
    """
    cell_timeout, nb_timeout = timeouts
    by_check = {r["grader"]["check"]: r for r in run.cells if r.get("grader", {}).get("check")}
    event, event_text = first_event(run, memory)
    out = []
    for chk in lab.checks:
        r = by_check.get(chk.name)
        earlier = [x for x in run.cells if r is not None and x["cell"] < r["cell"]
                   and not x["ok"] and x["ename"] not in ("", "NotImplementedError")
                   and not x.get("grader")]
        points, status = 0, "failed"
        if r is None:
            status = "error"
            if event is not None:
                reason = f"not run: {event_text}"
            elif run.timed_out:
                reason = f"not run: the notebook exceeded its time limit of {nb_timeout:g} s"
            else:
                reason = "not run: the notebook could not be executed (" + (
                    run.log.strip().splitlines() or ["no output"])[-1][:300] + ")"
        elif event is not None and event_text.startswith("out of memory") and event["cell"] <= r["cell"]:
            status, reason = "error", event_text
        elif r["timed_out"]:
            status, reason = "error", f"the check exceeded the time limit of {cell_timeout:g} s per cell"
        elif r["kernel_died"] or r["output_limit"]:
            status, reason = "error", r["error"].split(": ", 1)[-1]
        elif r.get("dead_at_start"):
            status, reason = "error", f"not run: {event_text or 'the kernel had stopped'}"
        else:
            reason = verdict(draws[chk.name], r)
            if not reason:
                points, status = chk.points, "passed"
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
                       lab.check_sha256.get(chk.name, ""), sha, run.seconds))
    return out
