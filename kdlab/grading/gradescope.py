"""A Gradescope autograder for one lab: the same grading, run by Gradescope per submission.

    python -m kdlab.grading gradescope --lab 01 --out autograder.zip

Gradescope's autograder specification (gradescope-autograders.readthedocs.io, "Autograder
Specifications") runs ``setup.sh`` once when it builds the image, from the zip's contents in
``/autograder/source``, then ``/autograder/run_autograder`` once per submission, in a fresh
container, with the student's files in ``/autograder/submission``; it reads
``/autograder/results/results.json``: ``{"score", "output", "visibility",
"stdout_visibility", "tests": [{"name", "score", "max_score", "status", "output",
"visibility"}]}``. The zip holds the course (kdlab with its grading package, the lab and its
solution, whose check cells hold the hidden tests), ``setup.sh`` (Python, bubblewrap, the
course's pinned packages and the pytest and nbval pins of its test extra, which run the
notebook) and ``run_autograder``, which calls ``run`` below:

- the notebook is chosen by the same rule as on one machine (pick.py);
- it is graded by ``grade_submissions`` (restore, screen, sandboxed kernel, verdicts here);
- one test per check: its points, its maximum and its reason. A check that failed only on a
  hidden test is reported with visibility ``after_published`` (its details and points are
  shown once you publish the grades), the others ``visible``.

The keys and solutions stay out of the student's reach while the kernel runs in bubblewrap
(it sees no ``/autograder``). Where bubblewrap cannot create its namespaces (a container
without user namespaces), the notebook is graded without it, and results.json's ``output``
says so and why: there, submitted code could read the answer keys in ``/autograder/source``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, in /autograder/source, when it builds the image.
set -euo pipefail
apt-get update
# the course needs Python >= 3.11: Ubuntu 22.04 has python3.11, later images have it as python3
apt-get install -y --no-install-recommends python3.11 python3.11-venv bubblewrap \
  || apt-get install -y --no-install-recommends python3 python3-venv bubblewrap
PY="$(command -v python3.11 || command -v python3)"
"$PY" -c 'import sys; assert sys.version_info >= (3, 11), "the course needs Python 3.11 or later"'
"$PY" -m venv /autograder/venv
/autograder/venv/bin/pip install --no-cache-dir /autograder/source/course {runner}
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this once per submission; results go to /autograder/results/results.json.
set -uo pipefail
ROOT="${{KDLAB_AUTOGRADER_ROOT:-/autograder}}"
PY="${{KDLAB_AUTOGRADER_PYTHON:-$ROOT/venv/bin/python}}"
cd "$ROOT/source/course"
PYTHONPATH="$ROOT/source/course" exec "$PY" -m kdlab.grading.gradescope run --lab {lab} --root "$ROOT"
"""


def make_autograder(lab: str, out, labs_dir, solutions_dir, log=print) -> Path:
    """Write Gradescope's autograder.zip for `lab` (a name or its number, e.g. "01")."""
    import kdlab

    labs_dir, solutions_dir = Path(labs_dir), Path(solutions_dir)
    names = sorted(p.stem for p in labs_dir.glob("[0-9][0-9]_*.ipynb"))
    found = [n for n in names if n == lab or n.split("_", 1)[0] == str(lab).zfill(2)]
    if len(found) != 1:
        raise ValueError(f"no single lab {lab!r} in {labs_dir} (it has {names})")
    lab = found[0]
    if not (solutions_dir / f"{lab}.ipynb").exists():
        raise FileNotFoundError(f"{solutions_dir}/{lab}.ipynb: the hidden tests live there")
    src = Path(kdlab.__file__).resolve().parent
    root = src.parent
    out = Path(out)
    out.resolve().parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        def add(path: Path, arc: str, mode=0o644):
            info = zipfile.ZipInfo(arc, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, path.read_bytes() if isinstance(path, Path) else path)

        import tomllib
        extra = tomllib.loads((root / "pyproject.toml").read_text()).get("project", {}).get(
            "optional-dependencies", {}).get("test", [])
        runner = [t for t in extra if t.split("=")[0].strip().lower() in ("pytest", "nbval")]
        add(SETUP_SH.format(runner=" ".join(runner)).encode(), "setup.sh", 0o755)
        add(RUN_AUTOGRADER.format(lab=lab).encode(), "run_autograder", 0o755)
        for p in sorted(src.rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc":
                add(p, f"course/kdlab/{p.relative_to(src).as_posix()}")
        add(labs_dir / f"{lab}.ipynb", f"course/labs/{lab}.ipynb")
        add(solutions_dir / f"{lab}.ipynb", f"course/solutions/{lab}.ipynb")
        for name in ("pyproject.toml", "LICENSE"):
            if (root / name).exists():
                add(root / name, f"course/{name}")
    log(f"wrote {out} (Gradescope autograder of {lab}; upload it in the assignment's "
        "Configure Autograder page, base image Ubuntu 22.04 or later)")
    return out


def _tests(rows) -> list:
    out = []
    for i, r in enumerate(rows, start=1):
        hidden = r.status != "passed" and "hidden test:" in r.reason
        out.append({"name": f"{r.lab}: {r.check}", "number": str(i), "score": r.points,
                    "max_score": r.max_points, "status": "passed" if r.status == "passed" else "failed",
                    "output": r.reason or "passed",
                    "visibility": "after_published" if hidden else "visible"})
    return out


def run(lab: str, root, log=print) -> dict:
    """Grade /autograder/submission (under `root`) and write results/results.json; return it."""
    from . import sandbox
    from .gradebook import grade_submissions

    root = Path(root)
    course = root / "source" / "course"
    start = time.monotonic()
    notes = []
    use_sandbox = True
    try:
        sandbox.preflight()
    except sandbox.SandboxError as e:
        use_sandbox = False
        notes.append(f"graded WITHOUT the bubblewrap sandbox, because it cannot run in this "
                     f"container ({e}); submitted code could read the answer keys here")
    with tempfile.TemporaryDirectory(prefix="kdlab-gs-") as tmp:
        subs = Path(tmp) / "subs" / "submission"
        shutil.copytree(root / "submission", subs, symlinks=True)
        rows = grade_submissions(Path(tmp) / "subs", labs_dir=course / "labs",
                                 solutions_dir=course / "solutions", lab_names=[lab],
                                 out=Path(tmp) / "gradebook.csv", jobs=1, log=log,
                                 sandbox=use_sandbox)
    first = rows[0]
    if first.file:
        notes.insert(0, f"graded file: {first.file} (sha256 {first.submission_sha256[:12]})")
    if first.other_notebooks:
        notes.append(f"other notebooks, not graded: {first.other_notebooks}")
    results = {"score": sum(r.points for r in rows),
               "execution_time": round(time.monotonic() - start, 1),
               "output": "\n".join(notes), "visibility": "visible",
               "stdout_visibility": "hidden", "tests": _tests(rows)}
    (root / "results").mkdir(parents=True, exist_ok=True)
    (root / "results" / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kdlab.grading.gradescope")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="grade /autograder/submission (inside Gradescope's container)")
    r.add_argument("--lab", required=True)
    r.add_argument("--root", default=os.environ.get("KDLAB_AUTOGRADER_ROOT", "/autograder"))
    args = ap.parse_args(argv)
    run(args.lab, args.root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
