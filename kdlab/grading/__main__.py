"""Command line: ``python -m kdlab.grading make-labs [--check]``, ``... grade DIR --out CSV``
and ``... release OUT`` (what an instructor hands to students)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

# see nbval_plugin.py: jsonschema's optional rfc3987_syntax costs seconds on import, unused
sys.modules.setdefault("rfc3987_syntax", None)

from .generator import make_labs  # noqa: E402
from .gradebook import grade_submissions  # noqa: E402
from .notebook_io import NotebookError  # noqa: E402
from .release import make_release  # noqa: E402
from .sandbox import SandboxError, parse_memory  # noqa: E402


def main(argv=None) -> int:
    """Parse the command line and run make-labs or grade; return the exit code."""
    ap = argparse.ArgumentParser(prog="python -m kdlab.grading", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make-labs", help="write labs/ from solutions/")
    mk.add_argument("--solutions", default="solutions", help="folder of solution notebooks")
    mk.add_argument("--labs", default="labs", help="folder to write the lab notebooks to")
    mk.add_argument("--check", action="store_true",
                    help="write nothing; exit 1 if labs/ differ from what solutions/ generate")
    gr = sub.add_parser("grade", help="grade SUBMISSIONS/<student>/<lab>.ipynb into a gradebook")
    gr.add_argument("submissions", help="folder with one folder per student")
    gr.add_argument("--out", default="gradebook.csv", help="the gradebook CSV to write")
    gr.add_argument("--feedback", default=None,
                    help="folder for <student>.md feedback (default: feedback/ next to --out)")
    gr.add_argument("--labs", default="labs", help="folder of the canonical lab notebooks")
    gr.add_argument("--solutions", default="solutions",
                    help="folder of the solution notebooks (hidden tests in check cells)")
    gr.add_argument("--lab", action="append", default=None,
                    help="grade only this lab, e.g. 01_softmax_temperature (repeatable; "
                         "default: every lab some student submitted)")
    gr.add_argument("--jobs", type=int, default=None, help="notebooks at once (default: CPU cores)")
    gr.add_argument("--cell-timeout", type=float, default=300, help="seconds per cell (300)")
    gr.add_argument("--timeout", type=float, default=1200, help="seconds per notebook (1200)")
    gr.add_argument("--max-output", type=int, default=20_000_000,
                    help="bytes of output a notebook may print (20 MB)")
    gr.add_argument("--full-budget", action="store_true",
                    help="run the notebooks with the students' full budget (default: quick)")
    gr.add_argument("--keep", action="store_true", help="keep the executed copies (debugging)")
    gr.add_argument("--memory", default="4G",
                    help="data memory each sandboxed kernel may use (4G); more is 'out of memory'")
    gr.add_argument("--no-sandbox", action="store_true",
                    help="run student code WITHOUT bubblewrap (trusted code only; every "
                         "gradebook row then says 'unsandboxed')")
    rl = sub.add_parser("release", help="write the student release (labs/, kdlab, README) to OUT")
    rl.add_argument("out", help="folder to create (must not exist or be empty)")
    rl.add_argument("--labs", default="labs", help="folder of the lab notebooks")
    args = ap.parse_args(argv)
    if args.cmd == "make-labs":
        return make_labs(args.solutions, args.labs, check=args.check)
    if args.cmd == "release":
        try:
            make_release(args.out, labs_dir=args.labs)
        except (NotebookError, ValueError, FileNotFoundError, FileExistsError) as e:
            print(f"error: {e}")
            return 2
        return 0
    try:
        memory = parse_memory(args.memory)
    except ValueError as e:
        print(f"error: --memory: {e}")
        return 2
    if not Path(args.submissions).is_dir():
        print(f"error: {args.submissions} is not a folder (expected one folder per student)")
        return 2
    solutions = args.solutions if Path(args.solutions).is_dir() else None
    try:
        grade_submissions(args.submissions, labs_dir=args.labs, out=args.out,
                          feedback_dir=args.feedback, solutions_dir=solutions,
                          lab_names=args.lab, jobs=args.jobs, cell_timeout=args.cell_timeout,
                          timeout=args.timeout, max_output=args.max_output,
                          quick=not args.full_budget, keep=args.keep,
                          sandbox=not args.no_sandbox, memory=memory)
    except SandboxError as e:
        print(f"error: cannot grade in the sandbox: {e}")
        return 2
    except KeyboardInterrupt:
        print("interrupted: the running notebooks were stopped; no gradebook was written")
        return 130
    except (NotebookError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
