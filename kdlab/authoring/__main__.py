"""Command line of the course's authoring (grading submissions: python -m kdlab.grading).

    python -m kdlab.authoring make-labs [--check]        labs/ from solutions/
    python -m kdlab.authoring make-keys [--check]        the answer keys of the notebooks' cases
    python -m kdlab.authoring refresh-outputs [NOTEBOOK ...]  re-execute solutions, save outputs
    python -m kdlab.authoring release OUT                what an instructor hands to students
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kdlab.grading.course import CourseError, find_course
from kdlab.grading.notebook_io import NotebookError

from .generator import make_labs


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m kdlab.authoring", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make-labs", help="write labs/ from solutions/")
    mk.add_argument("--solutions", default="solutions", help="folder of solution notebooks")
    mk.add_argument("--labs", default="labs", help="folder to write the lab notebooks to")
    mk.add_argument("--check", action="store_true",
                    help="write nothing; exit 1 if labs/ differ from what solutions/ generate")
    ky = sub.add_parser("make-keys", help="write kdlab/checks/keys/*.json (the notebooks' cases)")
    ky.add_argument("--check", action="store_true",
                    help="write nothing; exit 1 if a shipped key is missing or out of date")
    ro = sub.add_parser("refresh-outputs",
                        help="re-execute solution notebooks at the full budget and save their "
                             "outputs in place (a notebook that fails is not saved)")
    ro.add_argument("notebooks", nargs="*",
                    help="solution notebooks (paths, or names in solutions/; default: all)")
    ro.add_argument("--cell-timeout", type=int, default=3600, help="seconds per cell (3600)")
    rl = sub.add_parser("release", help="write the student release (labs/, kdlab, README) to OUT")
    rl.add_argument("out", help="folder to create (must not exist or be empty)")
    rl.add_argument("--labs", default=None,
                    help="folder of the lab notebooks (default: the installed course's)")
    return ap


def main(argv=None) -> int:
    """Parse the command line and run the command; return the exit code."""
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "make-labs":
            return make_labs(args.solutions, args.labs, check=args.check)
        if args.cmd == "make-keys":
            from kdlab.grading import keys
            stale = keys.write_public(check=args.check)
            if args.check and stale:
                print(f"answer keys out of date: {stale}; run python -m kdlab.authoring make-keys")
                return 1
            print(f"answer keys: {'up to date' if not stale else 'wrote ' + ', '.join(stale)}")
            return 0
        if args.cmd == "refresh-outputs":
            from .outputs import refresh_outputs, solution_notebooks
            results = refresh_outputs(solution_notebooks(args.notebooks),
                                      timeout=args.cell_timeout)
            failed = [Path(r["path"]).name for r in results if not r["ok"]]
            if failed:
                print(f"not saved, execution failed: {', '.join(failed)}")
            return 1 if failed else 0
        from .release import make_release
        labs, _ = find_course(args.labs, hidden=False)
        make_release(args.out, labs_dir=labs)
        return 0
    except (NotebookError, CourseError, ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"error: {e}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
