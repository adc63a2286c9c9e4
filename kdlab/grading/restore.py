"""Put the canonical check cells of labs/ back into a copy of a submission, ready to grade.

A check cell is found by its metadata ``{"kdlab": {"check": name, "points": N}}`` (or its
canonical id). One that is missing, duplicated, edited, re-labelled or moved out of its
section is replaced by the canonical cell at its canonical place (just before the next cell
of the lab that follows it) and reported as "check cell modified".

In the copy that is executed, each check cell is replaced by one cell per probe (the public
one, then each of the instructor's hidden tests): each runs the check's *probe* on inputs the
grader drew from a secret seed and wrote into that cell, through the probes the kernel bound
as it started (``kdlab.checks.bind_probes``); the grader runs the verdicts in its own
process on the numbers the probes displayed (scoring.py).
"""
from __future__ import annotations

import ast
import copy
import re
from dataclasses import dataclass, field

from .markers import BEGIN_HIDDEN, END_HIDDEN, strip_source
from .notebook_io import NotebookError, kdlab_meta



@dataclass(frozen=True)
class Probe:
    """One probe a graded check cell runs: check name, the student's object, literal params."""
    check: str  # registry name, e.g. "kd_loss"
    expr: str  # the expression naming the student's object, e.g. "kd_loss"
    params: tuple = ()  # sorted (key, value) pairs of literal keyword arguments


@dataclass
class CheckCell:
    """One canonical check cell of a lab."""
    name: str
    points: int
    cell: dict
    hidden: list = field(default_factory=list)  # instructor-only Probes (from solutions/)

    @property
    def probes(self) -> list:
        """The public probe of the cell, then its hidden ones."""
        return parse_calls(self.cell.get("source", ""), f"check {self.name!r}") + list(self.hidden)


def parse_calls(source: str, where: str) -> list:
    """The Probes of a check cell's (or hidden block's) source: ``kd.checks.check_<name>(obj, k=v)``.

    Every statement must be such a call, with one positional argument (a name or attribute)
    and literal keyword arguments; raises NotebookError saying what is wrong otherwise.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise NotebookError(f"{where}: not valid Python ({e.msg}, line {e.lineno})") from None
    out = []
    for stmt in tree.body:
        call = stmt.value if isinstance(stmt, ast.Expr) else None
        func = getattr(call, "func", None)
        ok = (isinstance(call, ast.Call) and isinstance(func, ast.Attribute)
              and func.attr.startswith("check_") and isinstance(func.value, ast.Attribute)
              and func.value.attr == "checks" and isinstance(func.value.value, ast.Name)
              and func.value.value.id in ("kd", "kdlab") and len(call.args) == 1
              and isinstance(call.args[0], (ast.Name, ast.Attribute)))
        if not ok:
            raise NotebookError(f"{where}: line {stmt.lineno}: a check cell (and a hidden test) may "
                                "only call kd.checks.check_<name>(<the student's object>, "
                                "key=literal, ...)")
        try:
            params = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
        except ValueError:
            raise NotebookError(f"{where}: line {stmt.lineno}: keyword arguments of a check call "
                                "must be literals (numbers, strings, tuples, ...)") from None
        if None in params:
            raise NotebookError(f"{where}: line {stmt.lineno}: **kwargs is not allowed in a check call")
        out.append(Probe(func.attr[len("check_"):], ast.unparse(call.args[0]),
                         tuple(sorted(params.items()))))
    if not out:
        raise NotebookError(f"{where}: a check cell must call kd.checks.check_<name>(...)")
    return out


@dataclass
class Restored:
    """A submission with its check cells restored: cells, and what was modified per check."""
    cells: list
    modified: dict = field(default_factory=dict)  # check name -> what was wrong


def canonical_checks(lab_nb: dict, name: str = "lab", solution_nb: dict | None = None) -> list:
    """The CheckCell list of a lab notebook (dict), in notebook order; validates the metadata.

    solution_nb: the solution notebook; hidden tests in its check cells (same cell id) are
    attached to the CheckCell so that grading runs them too.
    """
    hidden = {}
    for cell in (solution_nb or {}).get("cells", []):
        src = cell.get("source", "")
        if "check" in kdlab_meta(cell) and BEGIN_HIDDEN in src:
            blocks = re.findall(re.escape(BEGIN_HIDDEN) + r"[^\n]*\n(.*?)^[ \t]*"
                                + re.escape(END_HIDDEN), src, flags=re.S | re.M)
            hidden[cell.get("id")] = [p for b in blocks for p in parse_calls(
                b, f"{name}: hidden tests of cell {cell.get('id')!r}")]
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
        probes = parse_calls(cell.get("source", ""), where)
        if len(probes) != 1 or probes[0].check != cname:
            raise NotebookError(f"{where}: a check cell calls exactly kd.checks.check_{cname}(...), "
                                "the check its metadata names")
        seen.add(cname)
        checks.append(CheckCell(cname, points, cell, hidden.get(cell.get("id"), [])))
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
        src = cell.get("source", "")
        try:  # a solution notebook's own check cell holds hidden tests: compare without them
            src = strip_source("".join(src) if isinstance(src, list) else str(src))
        except NotebookError:
            pass
        if cell.get("cell_type") != "code" or not _same_source(src, chk.cell["source"]):
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


@dataclass(frozen=True)
class Draw:
    """One probe as the grader runs it: its token, its secret seed, its inputs (JSON text)."""
    probe: Probe
    token: str
    seed: int
    inputs: str


def draw(chk: CheckCell) -> list:
    """Fresh secret draws for every probe of `chk` (public first, then hidden).

    The inputs are made here, in the grader, from a seed that never leaves it; the kernel
    sees only the inputs, and only when the check cell runs.
    """
    import json
    import secrets

    from kdlab.checks import CHECKS
    from kdlab.checks._probe import encode
    from kdlab.checks._registry import RNG_LOCK

    out = []
    for probe in chk.probes:
        if probe.check not in CHECKS:
            raise NotebookError(f"check {chk.name!r} calls kd.checks.check_{probe.check}, which "
                                "this version of kdlab does not have")
        seed = secrets.randbelow(2 ** 31 - 1) + 1
        with RNG_LOCK:  # inputs may draw from torch's global generator (see _registry)
            inputs = CHECKS[probe.check].inputs(seed, **dict(probe.params))
        out.append(Draw(probe, secrets.token_hex(8), seed, json.dumps(encode(inputs), allow_nan=True)))
    return out


GRADED_LAB_CELLS = ("setup", "imports", "settings")  # the lab's own cells a graded kernel runs


def runs_in_grading(lab_nb: dict):
    """The cells of a submission its graded kernel runs (a function cell -> bool), besides the
    check cells: the lab's setup cells (ids in ``GRADED_LAB_CELLS``), the exercise cells and
    every cell that is not one of the lab's own (the student's cells, edited lab cells). The
    lab's experiment cells are not graded and do not run: the kernel needs no helper that
    trains or computes an exercise's answer (the sandbox's kdlab has none, see
    ``sandbox.STRIPPED``), and grading takes a fraction of the notebook's time."""
    own = {}
    for c in lab_nb["cells"]:
        if c.get("cell_type") == "code" and "exercise" not in kdlab_meta(c):
            own.setdefault(str(c.get("source", "")).strip(), c.get("id"))

    def keep(cell) -> bool:
        src = cell.get("source", "")
        src = ("".join(src) if isinstance(src, list) else str(src)).strip()
        if cell.get("cell_type") != "code" or "exercise" in kdlab_meta(cell) or src not in own:
            return True
        return own[src] in GRADED_LAB_CELLS

    return keep


PROBE_NAME = "_kdlab_probe"  # the kernel's name of the probes bound before any notebook cell
# run by the kernel as it starts (ipykernel's exec_lines), before any cell of the notebook
BIND_LINE = f"from kdlab.checks import bind_probes as {PROBE_NAME}; {PROBE_NAME} = {PROBE_NAME}()"


def kernel_args() -> list:
    """The arguments a graded kernel starts with: it binds the checks' probes (``BIND_LINE``)."""
    return [f"--IPKernelApp.exec_lines={[BIND_LINE]!r}"]


def probe_source(d: Draw, k: int) -> str:
    """The source of the cell that runs probe k of a check (0: the public one, then the
    hidden tests) on the inputs the grader drew: no seed, no token, no verdict code."""
    what = "its public probe" if k == 0 else f"hidden test {k}"
    return (f"# grader: check {d.probe.check!r}, {what}; the verdict runs in the grader\n"
            f"{PROBE_NAME}({d.probe.check!r}, {d.probe.expr}, {d.inputs!r})")


def graded_source(chk: CheckCell, draws: list) -> str:
    """The sources of the cells run in place of a check cell, one per probe (see ``probe_source``)."""
    return "\n\n".join(probe_source(d, k) for k, d in enumerate(draws))


def graded_notebook(restored: Restored, checks: list, draws: dict, keep=None) -> dict:
    """The notebook that is executed: the restored cells with each check cell replaced by one
    cell per probe (public, then hidden tests, each after the one before has finished); the
    kernel binds the probes as it starts (``kernel_args``), before any of these cells.

    draws: {check name: ``draw(check)``}; keep: a function cell -> bool, the cells to run
    besides the check cells (default: all).

    Cells are rebuilt clean (type, unique id, metadata, source; no outputs), so that any
    notebook that parsed can be executed. The grader marks its own cells with metadata
    ``kdlab_grader`` ({"check", "probe", "token"}), which the kernel never
    sees (nbval sends it only the source); no submission keeps that key.
    """
    by_name = {c.name: c for c in checks}
    canonical = {id(c) for c in restored.cells if kdlab_meta(c).get("check") in by_name}
    cells, ids = [], set()
    for i, old in enumerate(restored.cells):
        kind = old.get("cell_type") if old.get("cell_type") in ("code", "markdown", "raw") else "raw"
        meta = old.get("metadata") if isinstance(old.get("metadata"), dict) else {}
        meta = {k: v for k, v in meta.items() if k != "kdlab_grader"}  # the grader's mark only
        cid = old.get("id")
        if not isinstance(cid, str) or not re.fullmatch(r"[a-zA-Z0-9-_]{1,64}", cid) or cid in ids \
                or cid.startswith("kdlab-"):
            cid = f"kdlab-cell-{i}"  # missing, invalid or duplicate ids would stop nbval
        ids.add(cid)
        src = old.get("source", "")
        cell = {"cell_type": kind, "id": cid, "metadata": copy.deepcopy(meta),
                "source": "".join(src) if isinstance(src, list) else str(src)}
        if kind == "code":
            cell.update(outputs=[], execution_count=None)
            name = kdlab_meta(cell).get("check")
            if name in by_name and id(old) in canonical:
                for k, d in enumerate(draws[name]):
                    pid = f"kdlab-probe-{len(cells)}"
                    ids.add(pid)
                    cells.append({"cell_type": "code", "id": pid, "metadata": {
                        "kdlab": copy.deepcopy(cell["metadata"].get("kdlab", {})),
                        "kdlab_grader": {"check": name, "probe": k, "token": d.token}},
                        "source": probe_source(d, k), "outputs": [], "execution_count": None})
                continue
            if keep is not None and not keep(old):
                continue
        cells.append(cell)
    return {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                        "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}
