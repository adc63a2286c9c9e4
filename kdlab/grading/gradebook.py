"""Grade a folder of submissions into gradebook.csv and one feedback markdown per student.

SUBMISSIONS_DIR/<student>/<NN_lab>.ipynb -> for each student and lab: validate, restore the
check cells (restore.py), screen the student's code (screen.py), execute a copy whose check
cells run only the checks' probes on secret inputs, in a sandboxed kernel (runner.py,
sandbox.py), and score each check by running its verdict here, in the grader's process, on
the numbers the probes displayed. Nothing else the student's kernel prints or writes counts.
Notebooks are graded in parallel (``jobs`` at a time, each in its own pytest + kernel).

gradebook.csv columns: student,lab,check,points,max_points,status,reason. status is one of
passed, failed (the check ran and rejected the code, or the code crashed), error (the check
could not run: time limit, dead kernel, too much output), invalid (the notebook file is not
a valid notebook), missing (no notebook for that lab). Totals are rows too: check=TOTAL for
each student and lab, and lab=ALL, check=TOTAL for each student's grand total. Graded with
``sandbox=False``, every row's reason starts with "unsandboxed".
"""
from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from . import notebook_io, restore, sandbox, screen
from .generator import NOTEBOOK_GLOB
from .notebook_io import NotebookError
from .runner import RunResult, kernel_env, run_notebook

COLUMNS = ["student", "lab", "check", "points", "max_points", "status", "reason"]
UNSANDBOXED = "unsandboxed"
_DEFAULT_MEMORY = sandbox.DEFAULT_MEMORY


@dataclass
class Lab:
    """A lab as the grader sees it: file name and canonical checks."""
    name: str  # e.g. "01_softmax_temperature"
    checks: list
    nb: dict  # the lab notebook (the canonical cells and their order)


@dataclass
class Options:
    """Grading limits, locations and the sandbox."""
    cell_timeout: float = 300
    timeout: float = 1200
    max_output: int = 20_000_000
    quick: bool = True
    threads: int = 1
    keep: bool = False
    work_root: Path | None = None  # where the executed copies go (default: the system temp)
    sandbox: bool = True  # run kernels under bubblewrap (sandbox.py)
    memory: int = _DEFAULT_MEMORY  # bytes of data memory per sandboxed kernel
    kdlab_site: Path | None = None  # the copy of kdlab the sandbox sees (made per run)
    cancel: threading.Event | None = None  # set it to stop the grading (GradingCancelled)


class GradingCancelled(RuntimeError):
    """The grading was stopped (Ctrl-C, or its cancel event set): no gradebook was written."""


def load_labs(labs_dir, solutions_dir=None) -> dict:
    """{lab name: Lab} for labs/NN_*.ipynb (hidden tests from solutions/ if given)."""
    labs = {}
    for path in sorted(Path(labs_dir).glob(NOTEBOOK_GLOB)):
        sol = Path(solutions_dir) / path.name if solutions_dir else None
        sol_nb = notebook_io.read(sol) if sol is not None and sol.exists() else None
        lab_nb = notebook_io.read(path)
        labs[path.stem] = Lab(path.stem, restore.canonical_checks(lab_nb, str(path), sol_nb), lab_nb)
    return labs


def find_notebook(folder: Path, lab: str):
    """The student's notebook for `lab` in `folder`: the exact name, else the first NN_*.ipynb."""
    exact = folder / f"{lab}.ipynb"
    if exact.is_file():
        return exact
    cands = sorted(p for p in folder.rglob(f"{lab[:3]}*.ipynb")
                   if ".ipynb_checkpoints" not in p.parts and p.is_file())
    return cands[0] if cands else None


def _rows(student, lab, status, reason):
    return [[student, lab.name, c.name, 0, c.points, status, reason] for c in lab.checks]


def _oom(r) -> bool:
    return r.get("ename") == "MemoryError" or "can't allocate memory" in r.get("evalue", "") or (
        "out of memory" in r.get("evalue", "").lower())


def _event(cells, opts=None):
    """The first cell that stopped the notebook: (record, sentence) or (None, "")."""
    for r in cells:
        where = f"cell {r['cell']} (id {r['id']!r})"
        if r["timed_out"]:
            return r, f"{where} exceeded the time limit per cell"
        if _oom(r):
            limit = f" of {opts.memory / 1024 ** 3:.3g} GB" if opts is not None and opts.sandbox else ""
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


def _verdicts(chk, r, seeds) -> str:
    """'' if every probe of the check passed its verdict, else the reason it failed."""
    from kdlab.checks import CHECKS
    from kdlab.checks._registry import judge

    payloads = _payloads(r)
    for k, (probe, seed) in enumerate(zip(chk.probes, seeds)):
        label = "hidden test: " if k > 0 else ""
        mine = [d for d in payloads if d.get("seed") == seed and d.get("check") == probe.check]
        if not mine:
            if r["ename"]:
                return label + (r["evalue"] if r["ename"] == "AssertionError"
                                else f"{r['ename']}: {r['evalue']}")
            return (label + "the check cell ran but its probe reported nothing (was the cell's "
                    "code or output rewritten?)")
        if len(mine) > 1:
            return label + "the probe's result appeared more than once: the check cell's output was tampered with"
        check = CHECKS.get(probe.check)
        if check is None:
            return f"the course has no check named {probe.check!r} (update kdlab)"
        try:
            judge(check, mine[0].get("data"), seed, dict(probe.params))
        except AssertionError as e:
            return label + str(e)
        except Exception as e:  # noqa: BLE001 - data that is not what the probe writes
            return (label + f"the probe's result could not be read ({type(e).__name__}: "
                    f"{str(e)[:200]}): was the probe or its output tampered with?")
    return ""


def score(lab: Lab, run: RunResult, modified: dict, seeds: dict, opts: Options,
          finding: screen.Finding | None = None):
    """Rows [check, points, max_points, status, reason] for one executed notebook."""
    finding = finding or screen.Finding()
    by_check = {r["kdlab"].get("check"): r for r in run.cells if r.get("kdlab", {}).get("check")}
    event, event_text = _event(run.cells, opts)
    out = []
    for chk in lab.checks:
        r = by_check.get(chk.name)
        earlier = [x for x in run.cells if r is not None and x["cell"] < r["cell"]
                   and not x["ok"] and x["ename"] not in ("", "NotImplementedError")
                   and not x.get("kdlab", {}).get("check")]
        points, status = 0, "failed"
        if r is None:
            status = "error"
            if event is not None:
                reason = f"not run: {event_text}"
            elif run.timed_out:
                reason = f"not run: the notebook exceeded its time limit of {opts.timeout:g} s"
            else:
                reason = "not run: the notebook could not be executed (" + (
                    run.log.strip().splitlines() or ["no output"])[-1][:300] + ")"
        elif event is not None and _oom(event) and event["cell"] <= r["cell"]:
            status, reason = "error", event_text
        elif r["timed_out"]:
            status, reason = "error", f"the check exceeded the time limit of {opts.cell_timeout:g} s per cell"
        elif r["kernel_died"] or r["output_limit"]:
            status, reason = "error", r["error"].split(": ", 1)[-1]
        elif r.get("dead_at_start"):
            status, reason = "error", f"not run: {event_text or 'the kernel had stopped'}"
        else:
            reason = _verdicts(chk, r, seeds[chk.name])
            if not reason:
                points, status = chk.points, "passed"
        if chk.name in finding.reference:
            points, status, reason = 0, "failed", finding.reference[chk.name]
        if status == "failed" and earlier and chk.name not in finding.reference:
            e = earlier[0]
            what = f"{e['ename']}: {e['evalue'][:300]}" if e["evalue"] else e["ename"]
            reason += f" (an earlier cell failed: cell {e['cell']} (id {e['id']!r}): {what})"
        if status == "failed" and event is not None and event is not r and not _oom(event):
            reason += f" (earlier: {event_text})"
        if chk.name in modified:
            note = f"check cell modified ({modified[chk.name]}); the canonical check from labs/ was run"
            reason = note + (f": {reason}" if reason else "")
        out.append([chk.name, points, chk.points, status, reason])
    return out


def grade_notebook(student: str, lab: Lab, path, opts: Options):
    """Rows for one student's notebook of one lab, and the seconds it ran (never raises)."""
    try:
        return _grade_notebook(student, lab, path, opts)
    except Exception as e:  # noqa: BLE001 - one submission must not stop the others
        return _rows(student, lab, "error", f"grader error: {type(e).__name__}: {e}"), 0.0


def _grade_notebook(student: str, lab: Lab, path, opts: Options):
    if opts.cancel is not None and opts.cancel.is_set():
        return _rows(student, lab, "error", "not graded: the grading was cancelled"), 0.0
    if path is None:
        return _rows(student, lab, "missing", f"no notebook {lab.name}.ipynb submitted"), 0.0
    try:
        nb = notebook_io.read(path, strict=False)
    except NotebookError as e:
        return _rows(student, lab, "invalid", str(e).replace(str(path), path.name)), 0.0
    restored = restore.restore(nb, lab.nb, lab.checks)
    finding = screen.screen(restored.cells, lab.nb, lab.checks)
    if finding.tampering:  # not executed at all
        return _rows(student, lab, "failed", finding.tampering), 0.0
    seeds = {chk.name: [secrets.randbelow(2 ** 31 - 1) + 1 for _ in chk.probes] for chk in lab.checks}
    if opts.work_root is not None:
        Path(opts.work_root).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"kdlab-grade-{lab.name[:2]}-", dir=opts.work_root))
    try:
        graded = restore.graded_notebook(restored, lab.checks, seeds)
        notebook_io.write(graded, work / f"{lab.name}.ipynb")
        argv = None
        if opts.sandbox:
            (work / "rt").mkdir()
            argv = sandbox.kernel_argv(work / "rt", opts.kdlab_site,
                                       kernel_env(opts.quick, opts.threads), opts.memory)
        run = run_notebook(work / f"{lab.name}.ipynb", opts.cell_timeout, opts.timeout,
                           opts.max_output, opts.quick, opts.threads, kernel_argv=argv,
                           cancel=opts.cancel)
    finally:
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
    rows = [[student, lab.name, *r] for r in score(lab, run, restored.modified, seeds, opts, finding)]
    return rows, run.seconds


def grade_submissions(submissions, labs_dir="labs", out="gradebook.csv", feedback_dir=None,
                      solutions_dir=None, lab_names=None, jobs=None, log=print, **limits):
    """Grade SUBMISSIONS/<student>/*.ipynb; write `out` (CSV) and feedback/<student>.md.

    lab_names: the labs to grade (default: every lab some student submitted); jobs: notebooks
    graded at once (default: the number of CPU cores); limits: fields of Options
    (cell_timeout, timeout, max_output, quick, keep, work_root, sandbox, memory, cancel).
    Returns the rows. With sandbox=True (the default) raises sandbox.SandboxError if bubblewrap
    cannot run. Ctrl-C (KeyboardInterrupt) or setting `cancel` (a threading.Event) kills the
    notebooks running, starts no other and raises (KeyboardInterrupt, or GradingCancelled):
    no gradebook is written, and no submitted file is touched.
    """
    submissions = Path(submissions)
    if not submissions.is_dir():
        raise FileNotFoundError(f"{submissions} is not a folder of student folders")
    labs = load_labs(labs_dir, solutions_dir)
    students = sorted(p.name for p in submissions.iterdir() if p.is_dir() and not p.name.startswith("."))
    for p in sorted(submissions.glob("*.ipynb")):
        log(f"warning: {p} is not inside a student folder, skipped")
    found = {(s, lab): find_notebook(submissions / s, lab) for s in students for lab in labs}
    if lab_names:
        unknown = [n for n in lab_names if n not in labs]
        if unknown:
            raise ValueError(f"unknown lab(s) {unknown}; labs/ has {sorted(labs)}")
        chosen = list(lab_names)
    else:
        chosen = [lab for lab in labs if any(found[(s, lab)] for s in students)]
    cpus = os.cpu_count() or 1
    jobs = max(1, jobs or cpus)
    opts = Options(threads=max(1, cpus // jobs), **limits)
    site_tmp = None
    if opts.sandbox:
        sandbox.preflight()
        if opts.work_root is not None:
            Path(opts.work_root).mkdir(parents=True, exist_ok=True)
        site_tmp = tempfile.mkdtemp(prefix="kdlab-site-", dir=opts.work_root)
        opts.kdlab_site = sandbox.kdlab_copy(site_tmp)
    else:
        log("warning: grading WITHOUT the sandbox (--no-sandbox): student code runs with your "
            "rights; every gradebook row says 'unsandboxed'")
    tasks = [(s, labs[lab], found[(s, lab)]) for s in students for lab in chosen]
    log(f"grading {len(tasks)} notebooks ({len(students)} students x {len(chosen)} labs), "
        f"{jobs} at a time")
    start = time.monotonic()
    opts.cancel = opts.cancel or threading.Event()
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        results = list(pool.map(lambda t: grade_notebook(*t, opts), tasks))
    except BaseException:  # Ctrl-C: kill the running notebooks instead of finishing the queue
        opts.cancel.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if site_tmp is not None:
            shutil.rmtree(site_tmp, ignore_errors=True)
    if opts.cancel.is_set():
        raise GradingCancelled("the grading was cancelled; no gradebook was written")
    wall = time.monotonic() - start
    rows = []
    for (student, lab, _), (lab_rows, secs) in zip(tasks, results):
        rows += lab_rows
        rows.append([student, lab.name, "TOTAL", sum(r[3] for r in lab_rows),
                     sum(r[4] for r in lab_rows), "", f"graded in {secs:.1f} s" if secs else ""])
    totals = []
    for s in students:
        mine = [r for r in rows if r[0] == s and r[2] == "TOTAL"]
        totals.append([s, "ALL", "TOTAL", sum(r[3] for r in mine), sum(r[4] for r in mine), "", ""])
    rows = [r for s in students for r in [x for x in rows if x[0] == s] + [t for t in totals if t[0] == s]]
    if not opts.sandbox:
        for r in rows:
            r[6] = UNSANDBOXED + (f"; {r[6]}" if r[6] else "")
    write_csv(rows, out)
    feedback_dir = Path(feedback_dir) if feedback_dir else Path(out).resolve().parent / "feedback"
    write_feedback(rows, feedback_dir)
    log(f"graded {len(tasks)} notebooks in {wall:.1f} s; wrote {out} and {feedback_dir}/")
    for t in totals:
        log(f"  {t[0]}: {t[3]}/{t[4]}")
    return rows


def write_csv(rows, path) -> None:
    """Write the gradebook rows (COLUMNS) to `path`."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        w.writerows(rows)


def write_feedback(rows, folder) -> None:
    """One markdown file per student: per lab a table of checks, then each failure message."""
    folder.mkdir(parents=True, exist_ok=True)
    for student in dict.fromkeys(r[0] for r in rows):
        mine = [r for r in rows if r[0] == student]
        total = next(r for r in mine if r[1] == "ALL")
        md = [f"# Feedback for {student}", "", f"Total: **{total[3]} / {total[4]}** points", ""]
        for lab in dict.fromkeys(r[1] for r in mine if r[1] != "ALL"):
            lab_rows = [r for r in mine if r[1] == lab and r[2] != "TOTAL"]
            sub = next(r for r in mine if r[1] == lab and r[2] == "TOTAL")
            md += [f"## {lab}: {sub[3]} / {sub[4]}", "", "| check | points | status |",
                   "|---|---|---|"]
            md += [f"| {r[2]} | {r[3]} / {r[4]} | {r[5]} |" for r in lab_rows]
            md.append("")
            for r in lab_rows:
                if r[6]:
                    md += [f"### {r[2]}: {r[5]}", "", "```", r[6], "```", ""]
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in student)
        (folder / f"{safe}.md").write_text("\n".join(md), encoding="utf-8")
