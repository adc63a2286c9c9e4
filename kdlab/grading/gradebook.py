"""Grade a folder of submissions into gradebook.csv and one feedback markdown per student.

SUBMISSIONS_DIR/<student>/<NN_lab>.ipynb -> for each student and lab, the pipeline

    read (never through a symbolic link) -> restore the check cells (restore.py)
    -> screen the student's code (screen.py) -> draw the probes' secret inputs and execute the
    notebook in a sandboxed kernel (restore.draw, runner.py, sandbox.py)
    -> score each check in this process (scoring.py)

and then the report (report.py): the CSV and the feedback files. Notebooks are graded in
parallel (``jobs`` at a time, each in its own pytest + kernel); each finished notebook's rows
go to a journal beside the gradebook, so an interrupted grading resumes where it stopped
(``resume=True``), and ``students=[...]`` regrades some students into an existing gradebook.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from . import notebook_io, parts, report, restore
from . import screen as _screen
from . import sandbox as _sandbox
from .course import SubmissionError, load_labs, read_submission
from .pick import Choice, ambiguous_reason, choose, missing_reason
from .notebook_io import NotebookError, kdlab_meta
from .runner import run_notebook
from .scoring import COLUMNS, Row, rows_for, score

UNSANDBOXED = "unsandboxed"
__all__ = ["COLUMNS", "Options", "GradingCancelled", "grade_notebook", "grade_submissions"]


@dataclass(frozen=True)
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
    memory: int = _sandbox.DEFAULT_MEMORY  # bytes of memory per sandboxed kernel
    screen_timeout: float = _screen.TIME_LIMIT  # CPU seconds the screen may read a notebook
    cancel: threading.Event | None = None  # set it to stop the grading (GradingCancelled)

    def fingerprint(self) -> str:
        """What makes two gradings of the same notebook comparable (for resuming)."""
        keep = ("cell_timeout", "timeout", "max_output", "quick", "sandbox", "memory")
        return json.dumps({k: getattr(self, k) for k in keep}, sort_keys=True)


class GradingCancelled(RuntimeError):
    """The grading was stopped (Ctrl-C, or its cancel event set): no gradebook was written."""


def _student_cells(cells: list, lab_nb: dict) -> list:
    """[(where, source, canonical source or None)] of the cells the screen reads: every code
    cell that is not identical to a code cell of the lab (exercise cells always)."""
    lab_code = {c.get("id"): c.get("source", "") for c in lab_nb["cells"]
                if c.get("cell_type") == "code"}
    canonical = {src.strip() for cid, src in lab_code.items()}
    exercises = {c.get("id") for c in lab_nb["cells"] if "exercise" in kdlab_meta(c)}
    out = []
    for i, c in enumerate(cells):
        src = c.get("source", "")
        src = "".join(src) if isinstance(src, list) else str(src)
        if c.get("cell_type") != "code":
            continue
        if src.strip() in canonical and c.get("id") not in exercises:
            continue
        out.append((f"cell {i} (id {str(c.get('id'))[:64]!r})", src,
                    lab_code.get(c.get("id")) if c.get("id") not in exercises else None))
    return out


def grade_notebook(student: str, lab, path, opts: Options, site=None) -> list:
    """The rows of one student's notebook of one lab (never raises).

    path: the notebook, or the ``pick.Choice`` of the student's folder for this lab (the
    rows then name the graded file and the folder's other notebooks); site: the sandbox's
    copy of kdlab (``sandbox.kdlab_copy``), None without the sandbox.
    """
    choice = path if isinstance(path, Choice) else Choice(path=path)
    try:
        rows = parts.apply(_grade_notebook(student, lab, choice, opts, site), lab)
    except Exception as e:  # noqa: BLE001 - one submission must not stop the others
        rows = rows_for(student, lab, "error", f"grader error: {type(e).__name__}: {e}")
    name = choice.file or (choice.path.name if choice.path is not None else "")
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return [replace(r, file=name, graded_at=when,
                    other_notebooks="; ".join(choice.others)) for r in rows]


def _grade_notebook(student: str, lab, choice: Choice, opts: Options, site) -> list:
    if opts.cancel is not None and opts.cancel.is_set():
        return rows_for(student, lab, "error", "not graded: the grading was cancelled")
    if choice.error:
        return rows_for(student, lab, "invalid", choice.error)
    if choice.ambiguous:
        return rows_for(student, lab, "ambiguous", ambiguous_reason(choice, lab.name))
    path = choice.path
    if path is None:
        return rows_for(student, lab, "missing", missing_reason(choice, lab.name))
    try:
        data = read_submission(path)
    except SubmissionError as e:
        return rows_for(student, lab, "invalid", str(e))
    sha = hashlib.sha256(data).hexdigest()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return rows_for(student, lab, "invalid", f"{report.display_name(path.name)}: not UTF-8 text "
                                                 f"({e.reason} at byte {e.start})", sha)
    try:
        nb = notebook_io.loads(text, report.display_name(path.name), strict=False)
    except NotebookError as e:
        return rows_for(student, lab, "invalid", str(e), sha)
    restored = restore.restore(nb, lab.nb, lab.checks)
    try:
        tampering = _screen.run(_student_cells(restored.cells, lab.nb),
                               [c.get("source", "") for c in lab.nb["cells"] if c.get("cell_type") == "code"],
                               timeout=opts.screen_timeout)
    except _screen.ScreenBusy as e:  # the machine's fault, not the notebook's
        return rows_for(student, lab, "error", str(e), sha)
    if tampering:  # not executed at all
        return rows_for(student, lab, "failed", tampering, sha)
    draws = {chk.name: restore.draw(chk) for chk in lab.checks}
    if opts.work_root is not None:
        Path(opts.work_root).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"kdlab-grade-{lab.name[:2]}-", dir=opts.work_root))
    try:
        notebook_io.write(restore.graded_notebook(restored, lab.checks, draws,
                                                  keep=restore.runs_in_grading(lab.nb)),
                          work / f"{lab.name}.ipynb")
        run = run_notebook(work / f"{lab.name}.ipynb", opts.cell_timeout, opts.timeout,
                           opts.max_output, opts.quick, opts.threads, site=site,
                           limits=_sandbox.Limits(memory=opts.memory), cancel=opts.cancel)
    finally:
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
    return score(student, lab, run, restored.modified, draws, sha,
                 opts.memory if opts.sandbox else None, (opts.cell_timeout, opts.timeout))


# ------------------------------------------------------------------ a class of submissions

def _journal(out: Path) -> Path:
    return Path(str(out) + ".partial.jsonl")


def _read_journal(path: Path, fingerprint: str) -> dict:
    """{(student, lab, submission sha256, check digests): rows} of an interrupted grading."""
    done = {}
    if not path.exists():
        return done
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            d = json.loads(line)
            if d["options"] == fingerprint:
                done[tuple(d["key"])] = [Row(**r) for r in d["rows"]]
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by the interruption
    return done


def _key(student: str, lab, choice) -> tuple:
    sha, path = "", choice.path
    if choice.ambiguous:
        sha = "ambiguous:" + ";".join(choice.ambiguous)
    elif isinstance(path, Path):
        try:
            sha = hashlib.sha256(read_submission(path)).hexdigest()
        except SubmissionError:
            sha = "refused"
    digests = ",".join(f"{k}={v}" for k, v in sorted(lab.check_sha256.items()))
    return (report.display_name(student), lab.name, sha, digests)


def grade_submissions(submissions, labs_dir, out="gradebook.csv", feedback_dir=None,
                      solutions_dir=None, lab_names=None, jobs=None, log=print,
                      students=None, resume: bool = False, **limits) -> list:
    """Grade SUBMISSIONS/<student>/*.ipynb; write `out` (CSV) and feedback/<student>.md.

    labs_dir, solutions_dir: the course's labs and solutions (hidden tests; see
    ``course.find_course``); lab_names: the labs to grade (default: every lab some student
    submitted); jobs: notebooks graded at once (default: the number of CPU cores); students:
    grade only these students; with `students` or `lab_names`, only those (student, lab)
    rows of an existing gradebook `out` are replaced, every other row (and every manually
    scored one) is kept, and the graded students' feedback is rewritten from all their rows;
    resume: reuse the rows of an interrupted grading (the journal ``<out>.partial.jsonl``)
    for notebooks and checks that did not change; limits: fields of Options. Returns the check rows (typed; totals are added by the
    report). With sandbox=True (the default) raises sandbox.SandboxError if bubblewrap cannot
    run. Ctrl-C (KeyboardInterrupt) or setting `cancel` kills the notebooks running, starts
    no other and raises (KeyboardInterrupt, or GradingCancelled): no gradebook is written,
    the finished notebooks stay in the journal, and no submitted file is touched.
    """
    submissions, out = Path(submissions), Path(out)
    if not submissions.is_dir():
        raise FileNotFoundError(f"{submissions} is not a folder of student folders")
    labs = load_labs(labs_dir, solutions_dir)
    for lab in labs.values():
        parts.validate(lab)
    everyone = sorted(p.name for p in submissions.iterdir() if p.is_dir() and not p.name.startswith("."))
    for p in sorted(submissions.iterdir()):
        if p.is_file() and p.suffix == ".ipynb":
            log(f"warning: {report.display_name(p.name)} is not inside a student folder, skipped")
    chosen_students = everyone
    if students:
        unknown = [s for s in students if s not in everyone]
        if unknown:
            raise ValueError(f"no submission folder for {unknown} in {submissions}")
        chosen_students = sorted(students)
    found = {(s, lab): choose(submissions / s, lab, list(labs))
             for s in chosen_students for lab in labs}
    if lab_names:
        unknown = [n for n in lab_names if n not in labs]
        if unknown:
            raise ValueError(f"unknown lab(s) {unknown}; {labs_dir} has {sorted(labs)}")
        chosen = list(lab_names)
    else:
        chosen = [lab for lab in labs if any(found[(s, lab)].path or found[(s, lab)].ambiguous
                                             or found[(s, lab)].error for s in chosen_students)]
    if not chosen:
        raise ValueError(f"no notebook of any lab of {labs_dir} was found in {submissions} "
                         f"({len(chosen_students)} student folders)")
    cpus = os.cpu_count() or 1
    jobs = max(1, jobs or cpus)
    opts = Options(threads=max(1, cpus // jobs), **limits)
    cancel = opts.cancel or threading.Event()
    opts = replace(opts, cancel=cancel)
    tasks = [(s, labs[lab], found[(s, lab)]) for s in chosen_students for lab in chosen]
    out.resolve().parent.mkdir(parents=True, exist_ok=True)
    journal = _journal(out)
    done = _read_journal(journal, opts.fingerprint()) if resume else {}
    if not resume:
        journal.unlink(missing_ok=True)
    keys = {(t[0], t[1].name): _key(t[0], t[1], t[2]) for t in tasks}
    todo = [t for t in tasks if keys[(t[0], t[1].name)] not in done]
    if done:
        log(f"resuming: {len(tasks) - len(todo)} notebooks kept from the interrupted grading")
    site_tmp = None
    if opts.sandbox:
        for w in _sandbox.preflight():
            log(f"warning: {w}")
        if opts.work_root is not None:
            Path(opts.work_root).mkdir(parents=True, exist_ok=True)
        site_tmp = tempfile.mkdtemp(prefix="kdlab-site-", dir=opts.work_root)
        site = _sandbox.kdlab_copy(site_tmp)
    else:
        site = None
        log("warning: grading WITHOUT the sandbox (--no-sandbox): student code runs with your "
            "rights; every gradebook row says 'unsandboxed'")
    log(f"grading {len(todo)} notebooks ({len(chosen_students)} students x {len(chosen)} labs), "
        f"{jobs} at a time")
    start = time.monotonic()
    lock, finished = threading.Lock(), [len(tasks) - len(todo)]

    def work(task):
        student, lab, path = task
        rows = grade_notebook(student, lab, path, opts, site)
        if cancel.is_set():
            return rows
        with lock:
            finished[0] += 1
            with open(journal, "a", encoding="utf-8") as f:
                f.write(json.dumps({"key": list(keys[(student, lab.name)]), "options": opts.fingerprint(),
                                    "rows": [asdict(r) for r in rows]}) + "\n")
            got, of = sum(r.points for r in rows), sum(r.max_points for r in rows)
            secs = max((r.seconds for r in rows), default=0.0)
            log(f"[{finished[0]}/{len(tasks)}] {report.display_name(student)} {lab.name}: "
                f"{got}/{of}" + (f" in {secs:.1f} s" if secs else f" ({rows[0].status})" if rows else ""))
        return rows

    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        results = dict(zip([(t[0], t[1].name) for t in todo], pool.map(work, todo)))
    except BaseException:  # Ctrl-C: kill the running notebooks instead of finishing the queue
        cancel.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if site_tmp is not None:
            shutil.rmtree(site_tmp, ignore_errors=True)
    if cancel.is_set():
        raise GradingCancelled("the grading was cancelled; no gradebook was written (the finished "
                               f"notebooks are kept in {journal.name}: grade again with --resume)")
    rows = []
    for t in tasks:
        k = (t[0], t[1].name)
        rows += results[k] if k in results else done[keys[k]]
    if not opts.sandbox:
        rows = [replace(r, reason=UNSANDBOXED + (f"; {r.reason}" if r.reason else "")) for r in rows]
    # the gradebook holds display names (report.display_name, one-to-one with folder names,
    # not idempotent): rows read back from it are never mapped again
    shown = [replace(r, student=report.display_name(r.student)) for r in rows]
    folder_of = {report.display_name(s): s for s in chosen_students}
    everything, kept = shown, []
    if (students or lab_names) and out.exists():
        # a partial grading updates exactly the (student, lab) pairs it graded; manually
        # scored items (e.g. free-text answers, answers.py) stay
        redone = {(r.student, r.lab) for r in shown}
        kept = [r for r in report.read_csv(out)
                if (r.student, r.lab) not in redone or r.status == report.MANUAL]
        everything = kept + shown
        everything.sort(key=lambda r: (r.student, r.lab, r.status == report.MANUAL))
    report.write_csv(everything, out, shown=True)
    feedback_dir = Path(feedback_dir) if feedback_dir else out.resolve().parent / "feedback"
    # feedback files are keyed by folder names: the kept rows of the regraded students are
    # given their folder's name back
    report.write_feedback(sorted(rows + [replace(r, student=folder_of[r.student]) for r in kept
                                         if r.student in folder_of],
                                 key=lambda r: (r.student, r.lab, r.status == report.MANUAL)),
                          feedback_dir)
    journal.unlink(missing_ok=True)
    log(f"graded {len(todo)} notebooks in {time.monotonic() - start:.1f} s; wrote {out} and "
        f"{feedback_dir}/")
    for s in chosen_students:
        mine = [r for r in rows if r.student == s]
        log(f"  {report.display_name(s)}: {sum(r.points for r in mine)}/{sum(r.max_points for r in mine)}")
    return rows
