"""Put the canonical check cells of labs/ back into a copy of a submission, ready to grade.

A check cell is found by its metadata ``{"kdlab": {"check": name, "points": N}}`` (or its
canonical id). One that is missing, duplicated, edited, re-labelled or moved out of its
section is replaced by the canonical cell at its canonical place (just before the next cell
of the lab that follows it) and reported as "check cell modified".

In the copy that is executed, each check cell calls the check from a module object loaded
fresh from the files of kdlab/checks (not the ``kd.checks`` the student's code can reach),
and then prints a line with a secret token: a check earns its points only if its cell ran
to that line and the check printed its PASSED line.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path

from .generator import BEGIN_HIDDEN, END_HIDDEN
from .notebook_io import NotebookError, kdlab_meta

CHECK_CALL = re.compile(r"\b(?:kd|kdlab)\.checks\.")


@dataclass
class Check:
    """One canonical check cell of a lab."""
    name: str
    points: int
    cell: dict
    hidden: str = ""  # instructor-only test code run after the check (from solutions/)


@dataclass
class Restored:
    """A submission with its check cells restored: cells, and what was modified per check."""
    cells: list
    modified: dict = field(default_factory=dict)  # check name -> what was wrong


def canonical_checks(lab_nb: dict, name: str = "lab", solution_nb: dict | None = None) -> list:
    """The Check list of a lab notebook (dict), in notebook order; validates the metadata.

    solution_nb: the solution notebook; hidden tests in its check cells (same cell id) are
    attached to the Check so that grading runs them too.
    """
    hidden = {}
    for cell in (solution_nb or {}).get("cells", []):
        src = cell.get("source", "")
        if "check" in kdlab_meta(cell) and BEGIN_HIDDEN in src:
            blocks = re.findall(re.escape(BEGIN_HIDDEN) + r"[^\n]*\n(.*?)^[ \t]*"
                                + re.escape(END_HIDDEN), src, flags=re.S | re.M)
            hidden[cell.get("id")] = "\n".join(b.rstrip("\n") for b in blocks)
    checks, seen = [], set()
    for i, cell in enumerate(lab_nb["cells"]):
        meta = kdlab_meta(cell)
        if "check" not in meta:
            continue
        cname, points = meta["check"], meta.get("points")
        where = f"{name}: cell {i} (id {cell.get('id')!r})"
        if cell.get("cell_type") != "code" or not isinstance(cname, str) or not cname:
            raise NotebookError(f"{where}: kdlab.check must name a check in a code cell")
        if not isinstance(points, int) or isinstance(points, bool) or points < 0:
            raise NotebookError(f"{where}: kdlab.points must be an integer >= 0, got {points!r}")
        if cname in seen:
            raise NotebookError(f"{where}: check {cname!r} appears twice")
        if not CHECK_CALL.search(cell.get("source", "")):
            raise NotebookError(f"{where}: a check cell must call kd.checks.check_<name>(...)")
        seen.add(cname)
        checks.append(Check(cname, points, cell, hidden.get(cell.get("id"), "")))
    return checks


def _same_source(a: str, b: str) -> bool:
    return [ln.rstrip() for ln in a.strip().splitlines()] == [ln.rstrip() for ln in b.strip().splitlines()]


def restore(student_nb: dict, lab_nb: dict, checks: list) -> Restored:
    """Return the student's cells with the canonical check cells in place (a deep copy).

    A check stays where the student has it only if it is there exactly once, unchanged
    (source, kdlab metadata) and between the lab cells around it; otherwise it is put back.
    """
    lab_ids = [c.get("id") for c in lab_nb["cells"]]
    check_ids = {c.cell.get("id") for c in checks}
    names = {c.name for c in checks}
    cells = copy.deepcopy(student_nb["cells"])

    def is_check_cell(cell):
        return kdlab_meta(cell).get("check") in names or cell.get("id") in check_ids

    def index_of(cid, cs):
        for j, c in enumerate(cs):
            if cid is not None and c.get("id") == cid:
                return j
        return None

    modified, keep = {}, set()
    for chk in checks:
        cid = chk.cell.get("id")
        found = [j for j, c in enumerate(cells)
                 if kdlab_meta(c).get("check") == chk.name or (cid and c.get("id") == cid)]
        if not found:
            modified[chk.name] = "check cell deleted"
            continue
        if len(found) > 1:
            modified[chk.name] = "check cell duplicated"
            continue
        j, cell = found[0], cells[found[0]]
        if cell.get("cell_type") != "code" or not _same_source(cell.get("source", ""), chk.cell["source"]):
            modified[chk.name] = "check cell edited"
            continue
        meta = kdlab_meta(cell)
        if meta.get("check") != chk.name or meta.get("points") != chk.points:
            modified[chk.name] = "check cell metadata changed"
            continue
        k = lab_ids.index(cid)
        before = [index_of(x, cells) for x in lab_ids[:k] if x not in check_ids]
        after = [index_of(x, cells) for x in lab_ids[k + 1:] if x not in check_ids]
        before = [b for b in before if b is not None]
        after = [a for a in after if a is not None]
        if (before and max(before) > j) or (after and min(after) < j):
            modified[chk.name] = "check cell moved"
            continue
        keep.add(id(cell))
    cells = [c for c in cells if id(c) in keep or not is_check_cell(c)]
    for chk in checks:
        if chk.name not in modified:
            continue
        k = lab_ids.index(chk.cell.get("id"))
        prev = [index_of(x, cells) for x in lab_ids[:k]]
        nxt = [index_of(x, cells) for x in lab_ids[k + 1:]]
        prev = max([p for p in prev if p is not None], default=-1)
        nxt = [n for n in nxt if n is not None and n > prev]
        pos = min(nxt) if nxt else len(cells)  # before the next lab cell after its section
        cells.insert(pos, copy.deepcopy(chk.cell))
    return Restored(cells, modified)


def ok_line(token: str, name: str) -> str:
    """The line a graded check cell prints once its check returned without error."""
    return f"KDLAB-GRADER-OK {token} {name}"


def graded_source(chk: Check, checks_dir, token: str, tag: str) -> str:
    """The source run in place of a check cell: the canonical call on freshly loaded checks.

    checks_dir: the kdlab/checks directory; token: this run's secret; tag: unique per cell.
    """
    mod = f"_kdlab_grader_checks_{tag}"
    call = CHECK_CALL.sub(mod + ".", chk.cell["source"].strip())
    lines = [
        f"# grader: check {chk.name!r}, with the checks loaded fresh from the course files",
        "def _kdlab_grader_load(tag, path):",
        "    import importlib.util, sys",
        "    name = '_kdlab_grader_checks_' + tag",
        "    spec = importlib.util.spec_from_file_location(",
        "        name, path + '/__init__.py', submodule_search_locations=[path])",
        "    mod = importlib.util.module_from_spec(spec)",
        "    sys.modules[name] = mod",
        "    spec.loader.exec_module(mod)",
        "    return mod",
        f"{mod} = _kdlab_grader_load({tag!r}, {str(Path(checks_dir))!r})",
        "del _kdlab_grader_load",
        call,
    ]
    if chk.hidden.strip():
        lines.append(CHECK_CALL.sub(mod + ".", chk.hidden))
    lines.append(f"print({ok_line(token, chk.name)!r})")
    return "\n".join(lines)


def graded_notebook(restored: Restored, checks: list, checks_dir, token: str) -> dict:
    """The notebook that is executed: restored cells, check cells running fresh checks.

    Cells are rebuilt clean (type, unique id, metadata, source; no outputs), so that any
    notebook that parsed can be executed.
    """
    by_name = {c.name: c for c in checks}
    cells, ids = [], set()
    for i, old in enumerate(restored.cells):
        kind = old.get("cell_type") if old.get("cell_type") in ("code", "markdown", "raw") else "raw"
        meta = old.get("metadata") if isinstance(old.get("metadata"), dict) else {}
        cid = old.get("id")
        if not isinstance(cid, str) or not re.fullmatch(r"[a-zA-Z0-9-_]{1,64}", cid) or cid in ids:
            cid = f"kdlab-cell-{i}"  # missing, invalid or duplicate ids would stop nbval
        ids.add(cid)
        src = old.get("source", "")
        cell = {"cell_type": kind, "id": cid, "metadata": copy.deepcopy(meta),
                "source": "".join(src) if isinstance(src, list) else str(src)}
        if kind == "code":
            cell.update(outputs=[], execution_count=None)
            name = kdlab_meta(cell).get("check")
            if name in by_name:
                cell["source"] = graded_source(by_name[name], checks_dir, token, f"{i}_{token[:8]}")
        cells.append(cell)
    return {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                        "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}
