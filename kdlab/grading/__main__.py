"""Command line of the grader (making the course: python -m kdlab.authoring).

    python -m kdlab.grading collect --from canvas|moodle|gradescope DOWNLOAD -o subs/
    python -m kdlab.grading grade SUBMISSIONS [--out gradebook.csv] [--student NAME] [--lab NN_x]
    python -m kdlab.grading merge week1.csv week2.csv [--manual scores.csv] --out term.csv
    python -m kdlab.grading answers SUBMISSIONS --out answers.csv   free-text answers
    python -m kdlab.grading export gradebook.csv --format canvas --roster roster.csv \
        --assignments assignments.csv --missing zero|leave --out lms.csv
    python -m kdlab.grading validate NOTEBOOK          what the grader will do with a notebook
    python -m kdlab.grading gradescope --lab 01 --out autograder.zip   Gradescope's autograder
"""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

# see nbval_plugin.py: jsonschema's optional rfc3987_syntax costs seconds on import, unused
sys.modules.setdefault("rfc3987_syntax", None)

from .course import CourseError, find_course  # noqa: E402
from .gradebook import GradingCancelled, grade_submissions  # noqa: E402
from .notebook_io import NotebookError  # noqa: E402
from .lms import FORMATS, ExportError, export  # noqa: E402
from .report import merge  # noqa: E402
from .sandbox import SandboxError, parse_memory  # noqa: E402


AUTHORING = ("make-labs", "make-keys", "refresh-outputs", "release")  # python -m kdlab.authoring's


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m kdlab.grading", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    gr = sub.add_parser("grade", help="grade SUBMISSIONS/<student>/<lab>.ipynb into a gradebook")
    gr.add_argument("submissions", help="folder with one folder per student")
    gr.add_argument("--out", default="gradebook.csv", help="the gradebook CSV to write")
    gr.add_argument("--feedback", default=None,
                    help="folder for <student>.md feedback (default: feedback/ next to --out)")
    gr.add_argument("--labs", default=None,
                    help="folder of the canonical lab notebooks (default: the installed course's)")
    gr.add_argument("--solutions", default=None,
                    help="folder of the solution notebooks, whose check cells hold the hidden "
                         "tests (default: the installed course's)")
    gr.add_argument("--no-hidden-tests", action="store_true",
                    help="grade the public checks only (no solutions/ needed)")
    gr.add_argument("--lab", action="append", default=None,
                    help="grade only this lab, e.g. 01_softmax_temperature (repeatable; "
                         "default: every lab some student submitted)")
    gr.add_argument("--student", action="append", default=None,
                    help="grade only this student's folder and update their rows in an "
                         "existing --out gradebook and their feedback (repeatable)")
    gr.add_argument("--resume", action="store_true",
                    help="keep the results of an interrupted grading with the same --out")
    gr.add_argument("--jobs", type=int, default=None, help="notebooks at once (default: CPU cores)")
    gr.add_argument("--cell-timeout", type=float, default=300, help="seconds per cell (300)")
    gr.add_argument("--timeout", type=float, default=1200, help="seconds per notebook (1200)")
    gr.add_argument("--max-output", type=int, default=20_000_000,
                    help="bytes of output a notebook may print (20 MB)")
    gr.add_argument("--full-budget", action="store_true",
                    help="run the notebooks with the students' full budget (default: quick)")
    gr.add_argument("--keep", action="store_true", help="keep the executed copies (debugging)")
    gr.add_argument("--memory", default="4G",
                    help="memory each sandboxed kernel may use (4G); more is 'out of memory'")
    gr.add_argument("--no-sandbox", action="store_true",
                    help="run student code WITHOUT bubblewrap (trusted code only; every "
                         "gradebook row then says 'unsandboxed')")
    ex = sub.add_parser("export", help="a gradebook as the file(s) an LMS imports as they are")
    ex.add_argument("gradebook", help="the gradebook CSV written by grade (or merge)")
    ex.add_argument("--format", required=True, choices=list(FORMATS))
    ex.add_argument("--roster", required=True,
                    help="CSV with a 'folder' column (submission folder) and the LMS's identity "
                         "columns (collect writes it; see INSTRUCTORS.md)")
    ex.add_argument("--missing", required=True, choices=["zero", "leave"],
                    help="a student without a submission gets 0 (zero), or their LMS grade is "
                         "not touched (leave: their row is left out)")
    ex.add_argument("--assignments", default=None,
                    help="CSV mapping each lab to its LMS assignment: columns lab, canvas "
                         "('Title (id)'), moodle, gradescope (required for canvas)")
    ex.add_argument("--lab", action="append", default=None, help="export only this lab (repeatable)")
    ex.add_argument("--total", action="store_true", help="add a total column (moodle only)")
    ex.add_argument("--moodle-id", default="email", choices=["email", "idnumber", "username", "userid"],
                    help="the user field Moodle's import maps by (email)")
    ex.add_argument("--out", required=True,
                    help="the CSV to write (gradescope: a folder, one CSV per lab)")
    mg = sub.add_parser("merge", help="combine gradebooks; the latest grading of each lab wins")
    mg.add_argument("gradebooks", nargs="+")
    mg.add_argument("--out", required=True, help="the gradebook CSV to write")
    mg.add_argument("--manual", default=None,
                    help="a CSV of manual scores (student, lab, item, points, max_points[, comment]), "
                         "e.g. of the free-text answers exported by `answers`")
    mg.add_argument("--feedback", default=None,
                    help="also (re)write every student's feedback into this folder")
    an = sub.add_parser("answers", help="the free-text answers, for teaching assistants")
    an.add_argument("submissions", help="folder with one folder per student")
    an.add_argument("--out", default="answers.csv")
    an.add_argument("--labs", default=None, help="folder of the lab notebooks")
    an.add_argument("--lab", action="append", default=None, help="only this lab (repeatable)")
    co = sub.add_parser("collect", help="an LMS's bulk download -> SUBMISSIONS/<student>/ and a roster")
    co.add_argument("download", help="the zip the LMS gives (or the folder it was extracted to)")
    co.add_argument("--from", dest="source", required=True, choices=["canvas", "moodle", "gradescope"])
    co.add_argument("-o", "--out", required=True, help="the submissions folder to fill")
    co.add_argument("--roster", default=None, help="roster CSV to write or update "
                                                   "(default: roster.csv beside --out)")
    co.add_argument("--identities", default=None,
                    help="the LMS's gradebook export, to fill in identifiers the download lacks")
    va = sub.add_parser("validate", help="what the grader will do with a notebook (for students)")
    va.add_argument("notebook")
    va.add_argument("--labs", default=None, help="folder of the lab notebooks")
    va.add_argument("--no-run", action="store_true", help="do not run the public checks")
    gs = sub.add_parser("gradescope", help="write Gradescope's autograder.zip for one lab")
    gs.add_argument("--lab", required=True, help="the lab's number or name, e.g. 01")
    gs.add_argument("--out", default="autograder.zip")
    gs.add_argument("--labs", default=None, help="folder of the lab notebooks")
    gs.add_argument("--solutions", default=None, help="folder of the solutions (hidden tests)")
    return ap


def main(argv=None) -> int:
    """Parse the command line and run the command; return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in AUTHORING:
        print(f"error: {argv[0]} makes the course, it is not grading: run python -m "
              f"kdlab.authoring {' '.join(argv)}")
        return 2
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "export":
            paths = export(args.gradebook, args.format, args.roster, args.out, missing=args.missing,
                           assignments=args.assignments, labs=args.lab, total=args.total,
                           moodle_id=args.moodle_id)
            print(f"wrote {', '.join(map(str, paths))} ({args.format})")
            return 0
        if args.cmd == "merge":
            from .answers import read_manual
            rows = merge(args.gradebooks, args.out,
                         manual=read_manual(args.manual) if args.manual else ())
            if args.feedback:
                from .report import write_feedback
                write_feedback(rows, args.feedback)
            print(f"wrote {args.out} ({len({r.student for r in rows})} students)")
            return 0
        if args.cmd == "answers":
            from .answers import export_answers
            labs, _ = find_course(args.labs, hidden=False)
            export_answers(args.submissions, labs, args.out, lab_names=args.lab)
            return 0
        if args.cmd == "collect":
            from .collect import collect
            collect(args.source, args.download, args.out, roster=args.roster,
                    identities=args.identities)
            return 0
        if args.cmd == "gradescope":
            from .gradescope import make_autograder
            labs, solutions = find_course(args.labs, args.solutions)
            make_autograder(args.lab, args.out, labs, solutions)
            return 0
        if args.cmd == "validate":
            from kdlab.validate import validate
            return validate(args.notebook, labs_dir=args.labs, run=not args.no_run)
        return _grade(args)
    except ExportError as e:
        print(f"error: {e}")
        return 2
    except (NotebookError, CourseError, ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"error: {e}")
        return 2


def _grade(args) -> int:
    try:
        memory = parse_memory(args.memory)
    except ValueError as e:
        print(f"error: --memory: {e}")
        return 2
    if not Path(args.submissions).is_dir():
        print(f"error: {args.submissions} is not a folder (expected one folder per student)")
        return 2
    labs, solutions = find_course(args.labs, args.solutions, hidden=not args.no_hidden_tests)

    def on_term(signum, frame):  # SIGTERM (kill, a scheduler's stop) is handled like Ctrl-C
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        grade_submissions(args.submissions, labs_dir=labs, out=args.out,
                          feedback_dir=args.feedback, solutions_dir=solutions,
                          lab_names=args.lab, jobs=args.jobs, students=args.student,
                          resume=args.resume, cell_timeout=args.cell_timeout,
                          timeout=args.timeout, max_output=args.max_output,
                          quick=not args.full_budget, keep=args.keep,
                          sandbox=not args.no_sandbox, memory=memory)
    except SandboxError as e:
        print(f"error: cannot grade in the sandbox: {e}")
        return 2
    except (KeyboardInterrupt, GradingCancelled):
        print("interrupted: the running notebooks were stopped; no gradebook was written. The "
              "notebooks graded so far are kept: run the same command with --resume to finish")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
