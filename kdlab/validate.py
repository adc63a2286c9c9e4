"""Before submitting: what the grader will do with a notebook.

    python -m kdlab.validate labs/01_softmax_temperature.ipynb [--no-run]

Says (1) which lab the notebook is and whether the grader will find it under its file name
(the name it expects, and the rule it follows when the name differs), (2) every cell of
your own that the grader's screen refuses, and why (a refused cell makes every check of the
notebook score 0 and the notebook is not run), and (3) unless ``--no-run``, the result of
each check cell when the notebook is run from the top with the grader's budget (quick, as
``KDLAB_QUICK=1``), in a copy: your file is not changed. Exit code 0 when all is well.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

try:  # the instructor's tree
    from kdlab.grading import pick, screen
except ImportError:  # the student release ships these two files (no answers in them)
    from kdlab import _pick as pick, _screen as screen


def _labs_dir(labs_dir=None) -> Path | None:
    if labs_dir is not None:
        return Path(labs_dir)
    import kdlab

    root = Path(kdlab.__file__).resolve().parent.parent
    return root / "labs" if (root / "labs").is_dir() else None


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def _meta(cell) -> dict:
    m = cell.get("metadata", {}).get("kdlab", {})
    return m if isinstance(m, dict) else {}


def _checks(nb) -> list:
    return [_meta(c)["check"] for c in nb.get("cells", []) if _meta(c).get("check")]


def which_lab(nb: dict, path: Path, labs_dir: Path) -> tuple:
    """(lab name, lab notebook) that `nb` is, from its check cells, else from its file name."""
    labs = {p.stem: json.loads(p.read_text(encoding="utf-8"))
            for p in sorted(labs_dir.glob("[0-9][0-9]_*.ipynb"))}
    mine = set(_checks(nb))
    scored = sorted(((len(mine & set(_checks(lab))), name) for name, lab in labs.items()), reverse=True)
    if scored and scored[0][0] > 0:
        return scored[0][1], labs[scored[0][1]]
    ranked = sorted((pick.rank(path.name, name, list(labs)), name) for name in labs)
    ranked = [(r, n) for r, n in ranked if r]
    if ranked:
        return ranked[0][1], labs[ranked[0][1]]
    return None, None


def screened(nb: dict, lab: dict) -> list:
    """[(cell label, reason)] of every cell of the student's own that the screen refuses."""
    lab_code = {c.get("id"): _source(c) for c in lab["cells"] if c.get("cell_type") == "code"}
    canonical = {s.strip() for s in lab_code.values()}
    exercises = {c.get("id") for c in lab["cells"] if "exercise" in _meta(c)}
    lab_sources = list(lab_code.values())
    out = []
    for i, c in enumerate(nb.get("cells", [])):
        if c.get("cell_type") != "code":
            continue
        src, cid = _source(c), c.get("id")
        if src.strip() in canonical and cid not in exercises:
            continue
        where = f"cell {i} (id {str(cid)[:64]!r})"
        why = screen.screen_cells([(where, src, lab_code.get(cid) if cid not in exercises else None)],
                                  lab_sources)
        if why:
            out.append((where, why))
    return out


def run_checks(path: Path, timeout: float = 600) -> list:
    """[(check, passed, first line of its output)] after running a copy of the notebook."""
    from kdlab._nbformat import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(str(path), as_version=4)
    env = dict(os.environ, KDLAB_QUICK="1", MPLBACKEND="Agg")
    old = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="kdlab-validate-") as tmp:
        try:
            os.environ.update(env)
            client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                    allow_errors=True, resources={"metadata": {"path": tmp}})
            client.execute()
        except CellExecutionError:
            pass
        finally:
            os.environ.clear()
            os.environ.update(old)
    out = []
    for c in nb.cells:
        name = _meta(c).get("check")
        if not name:
            continue
        text = ""
        for o in c.get("outputs", []):
            if o.get("output_type") == "stream":
                text += o.get("text", "")
            elif o.get("output_type") == "error":
                text += f"{o.get('ename')}: {o.get('evalue')}\n"
            elif "text/plain" in o.get("data", {}):
                text += o["data"]["text/plain"] + "\n"
        first = next((ln for ln in text.splitlines() if ln.strip()), "did not run")
        out.append((name, first.startswith("PASSED"), first[:300]))
    return out


def validate(notebook, labs_dir=None, run: bool = True, log=print) -> int:
    """Print what the grader will do with `notebook`; return 0 if all is well, else 1."""
    path = Path(notebook)
    nb = json.loads(path.read_text(encoding="utf-8"))
    labs = _labs_dir(labs_dir)
    if labs is None or not labs.is_dir():
        log("error: cannot find the course's labs/ folder: pass --labs path/to/labs")
        return 2
    name, lab = which_lab(nb, path, labs)
    if name is None:
        log(f"{path.name}: not a notebook of the labs in {labs} (no check cell of theirs)")
        return 1
    ok = True
    r = pick.rank(path.name, name, [p.stem for p in labs.glob("[0-9][0-9]_*.ipynb")])
    if r == 1:
        log(f"file name: {path.name} is the name the grader expects for {name}")
    elif r:
        ok = False
        log(f"file name: the grader expects {name}.ipynb; {path.name} is found too ({pick.RANKS[r]}), "
            f"but another notebook of your folder with such a name would make it ambiguous: "
            f"rename it {name}.ipynb")
    else:
        ok = False
        log(f"file name: the grader expects {name}.ipynb and would NOT find {path.name}: rename it")
    flagged = screened(nb, lab)
    if flagged:
        ok = False
        log(f"the grader refuses {len(flagged)} cell(s): every check of the notebook would score 0 "
            "and it would not be run. Remove what they name:")
        for where, why in flagged:
            log(f"  {where}: {why}")
    else:
        log("screen: nothing in your cells is refused")
    if run:
        results = run_checks(path)
        for check, passed, line in results:
            log(f"  check {check}: {line}")
            ok = ok and passed
        log(f"public checks: {sum(p for _, p, _ in results)}/{len(results)} passed (the grader "
            "also draws fresh inputs and runs hidden tests)")
    if not ok:
        log("not ready: see above")
    else:
        log("ready to submit" if run else "name and code: fine (the checks were not run: "
            "run without --no-run to see them)")
    return 0 if ok else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kdlab.validate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebook")
    ap.add_argument("--labs", default=None, help="folder of the lab notebooks")
    ap.add_argument("--no-run", action="store_true", help="do not run the notebook's checks")
    args = ap.parse_args(argv)
    return validate(args.notebook, labs_dir=args.labs, run=not args.no_run)


if __name__ == "__main__":
    sys.exit(main())
