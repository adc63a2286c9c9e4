"""Generate the student notebooks labs/NN_*.ipynb from the instructor's solutions/NN_*.ipynb.

Per cell:
- code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (markers included) becomes
  ``# YOUR CODE HERE`` + ``raise NotImplementedError`` at the BEGIN marker's indentation
  (in a markdown cell: ``YOUR ANSWER HERE``);
- code between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` is removed;
- outputs and execution counts are cleared, volatile metadata (execution timestamps, widget
  state, scroll state) dropped; cell ids are kept;
- check cells (metadata ``{"kdlab": {"check": ...}}``) are locked: not editable, not deletable.
The output is byte-for-byte deterministic (see ``notebook_io.dumps``). The markers and the
student version of a cell's source are ``kdlab.grading.markers`` (the grader restores check
cells with the same rule).
"""
from __future__ import annotations

import sys
from pathlib import Path

from kdlab.grading import notebook_io
from kdlab.grading.markers import NOTEBOOK_GLOB, strip_source
from kdlab.grading.notebook_io import NotebookError, kdlab_meta

# cell / notebook metadata that changes on every run or every open, never copied to labs/
VOLATILE_CELL_META = ("execution", "ExecuteTime", "scrolled", "collapsed", "jupyter", "widgets")
KEPT_NB_META = ("kernelspec", "kdlab")


def generate_lab(nb: dict, name: str = "notebook") -> dict:
    """The lab notebook (dict) generated from a solution notebook (dict, see notebook_io)."""
    if nb.get("nbformat_minor", 0) < 5:
        raise NotebookError(f"{name}: nbformat 4.{nb.get('nbformat_minor')} has no cell ids; "
                            "save it as nbformat 4.5 with stable readable ids")
    cells = []
    for idx, cell in enumerate(nb["cells"]):
        cid = cell.get("id")
        where = f"{name}: cell {idx} (id {cid!r})"
        kind = cell["cell_type"]
        meta = {k: v for k, v in cell.get("metadata", {}).items() if k not in VOLATILE_CELL_META}
        if "check" in kdlab_meta(cell):
            meta.update(editable=False, deletable=False)
        new = {"cell_type": kind, "id": cid, "metadata": meta,
               "source": strip_source(cell.get("source", ""), kind == "markdown", where)}
        if kind == "code":
            new.update(execution_count=None, outputs=[])
        if cell.get("attachments"):
            new["attachments"] = cell["attachments"]
        cells.append(new)
    meta = {k: v for k, v in nb.get("metadata", {}).items() if k in KEPT_NB_META}
    lang = nb.get("metadata", {}).get("language_info", {})
    if isinstance(lang, dict) and lang.get("name"):
        meta["language_info"] = {"name": lang["name"]}
    return {"cells": cells, "metadata": meta, "nbformat": 4, "nbformat_minor": 5}


def lab_texts(solutions_dir) -> dict[str, str]:
    """{file name: canonical text of its lab} for every solutions/NN_*.ipynb."""
    out = {}
    for path in sorted(Path(solutions_dir).glob(NOTEBOOK_GLOB)):
        out[path.name] = notebook_io.dumps(generate_lab(notebook_io.read(path), str(path)))
    return out


def make_labs(solutions_dir="solutions", labs_dir="labs", check: bool = False,
              log=print) -> int:
    """Write labs/ from solutions/ (or with check=True, only compare); return an exit code.

    Exit code 0: labs/ written (or up to date); 1: with check=True, labs/ differ from what
    solutions/ generate (each difference is logged); 2: a solution notebook is unusable.
    """
    solutions_dir, labs_dir = Path(solutions_dir), Path(labs_dir)
    try:
        texts = lab_texts(solutions_dir)
    except NotebookError as e:
        log(f"error: {e}")
        return 2
    if not texts:
        log(f"error: no notebooks named NN_*.ipynb in {solutions_dir}/")
        return 2
    stale = sorted(p.name for p in labs_dir.glob(NOTEBOOK_GLOB) if p.name not in texts)
    if check:
        bad = []
        for fname, text in texts.items():
            target = labs_dir / fname
            if not target.exists():
                bad.append(f"{target} is missing")
            elif target.read_bytes() != text.encode("utf-8"):
                bad.append(f"{target} differs from what {solutions_dir / fname} generates")
        bad += [f"{labs_dir / s} has no solution notebook {solutions_dir / s}" for s in stale]
        for b in bad:
            log(b)
        if bad:
            log("run `make labs` (python -m kdlab.authoring make-labs) and commit labs/")
            return 1
        log(f"labs/ up to date ({len(texts)} notebooks)")
        return 0
    labs_dir.mkdir(parents=True, exist_ok=True)
    for fname, text in texts.items():
        target = labs_dir / fname
        if not target.exists() or target.read_bytes() != text.encode("utf-8"):
            target.write_bytes(text.encode("utf-8"))
            log(f"wrote {target}")
    for s in stale:
        log(f"warning: {labs_dir / s} has no solution notebook (left alone)")
    log(f"labs/ up to date ({len(texts)} notebooks)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(make_labs())
