"""Grading: hostile submissions of a small lab built from real checks, and the course's labs.

One grading run covers all the hostile fixtures (they are graded in parallel); each test
then reads its student's rows. Every submitted file must be byte-identical afterwards.
"""
import csv
import hashlib
import shutil
import time
from pathlib import Path

import nbformat
import psutil
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from kdlab.grading import generator, make_labs, notebook_io, restore
from kdlab.grading.gradebook import COLUMNS, grade_submissions

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob(generator.NOTEBOOK_GLOB))
LAB = "01_tiny"
# generous enough for a loaded 2-core machine; the loop and hang fixtures cost these times
CELL_TIMEOUT, NB_TIMEOUT, MAX_OUTPUT = 30, 75, 200_000

SOFTMAX_OK = ("    if not (T > 0 and math.isfinite(T)):\n"
              "        raise ValueError(f'T must be a finite number > 0, got {T}')\n"
              "    return torch.softmax(logits / T, dim=-1)")
SOFTMAX_WRONG = "    return torch.softmax(logits, dim=-1)  # forgets T"
ENTROPY_OK = "    return -torch.xlogy(p, p).sum(-1)"
ENTROPY_WRONG = "    return -(p * torch.log2(p)).sum(-1)  # bits, and nan at 0"
SETUP = "import math\nimport kdlab as kd\nimport kdlab.checks\nimport torch"


def tiny_solution():
    """A two-exercise solution notebook using the real Lab 01 checks (3 points)."""
    def ex(name, body, cid):
        return new_code_cell(f"def {name}:\n    ### BEGIN SOLUTION\n{body}\n    ### END SOLUTION",
                             id=cid, metadata={"kdlab": {"exercise": name.split("(")[0]}})

    def check(name, points, cid):
        return new_code_cell(f"kd.checks.check_{name}({name})", id=cid,
                             metadata={"kdlab": {"check": name, "points": points}})
    cells = [new_markdown_cell("# Tiny lab", id="intro"), new_code_cell(SETUP, id="setup"),
             ex("softmax_with_temperature(logits, T=1.0)", SOFTMAX_OK, "ex-softmax"),
             check("softmax_with_temperature", 2, "check-softmax"),
             new_markdown_cell("## Entropy", id="entropy-intro"),
             ex("entropy(p)", ENTROPY_OK, "ex-entropy"), check("entropy", 1, "check-entropy"),
             new_markdown_cell("## Summary", id="summary")]
    return new_notebook(cells=cells, metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}})


def cells_with(nb, replace=None, insert_after=None, delete=()):
    """A copy of nb: sources replaced by id, new code cells inserted after ids, ids deleted."""
    out = []
    for c in nb.cells:
        if c.id in delete:
            continue
        c = nbformat.from_dict(dict(c))
        if replace and c.id in replace:
            c.source = replace[c.id]
        out.append(c)
        for i, src in enumerate((insert_after or {}).get(c.id, [])):
            out.append(new_code_cell(src, id=f"student-{c.id}-{i}"))
    return new_notebook(cells=out, metadata=nb.metadata)


def exercise(name, body):
    sig = {"softmax": "softmax_with_temperature(logits, T=1.0)", "entropy": "entropy(p)"}[name]
    return f"def {sig}:\n{body}"


MONKEYPATCH = """import sys
fake = lambda *a, **k: print("PASSED check_softmax_with_temperature")
kd.checks.check_softmax_with_temperature = fake
kdlab.checks.lab01.check_softmax_with_temperature = fake
sys.modules["kdlab.checks"].check_entropy = lambda *a, **k: print("PASSED check_entropy")
kdlab.checks._common.fail = lambda *a, **k: None"""


def hostile(sol, lab):
    """{student: notebook text or dict} for each hostile case (and two honest ones)."""
    wrong = {"ex-softmax": exercise("softmax", SOFTMAX_WRONG), "ex-entropy": exercise("entropy", ENTROPY_WRONG)}
    ok = {"ex-softmax": exercise("softmax", SOFTMAX_OK), "ex-entropy": exercise("entropy", ENTROPY_OK)}
    moved = cells_with(lab, replace=ok, delete=("check-softmax",))
    moved.cells.insert(1, moved.cells.pop(5))  # check-entropy to the top
    return {
        "full": sol,
        "blank": lab,
        "edited": cells_with(lab, replace={**wrong, "ex-entropy": ok["ex-entropy"],
                                           "check-softmax": 'print("PASSED check_softmax_with_temperature")'}),
        "deleted_moved": moved,
        "monkeypatch": cells_with(lab, replace=wrong, insert_after={"ex-softmax": [MONKEYPATCH]}),
        "swallow": cells_with(lab, replace=wrong, insert_after={"setup": [
            "get_ipython().set_custom_exc((AssertionError,), lambda *a, **k: print('PASSED'))"]}),
        "malformed": nbformat.writes(sol)[:500],
        "loop": cells_with(lab, replace={**ok, "ex-softmax": exercise("softmax", "    while True:\n        pass")}),
        "exit": cells_with(lab, replace=ok, insert_after={"check-softmax": ["import os\nos._exit(1)"]}),
        "huge": cells_with(lab, replace=ok, insert_after={"check-softmax": ["while True:\n    print('x' * 1000)"]}),
        "importerr": cells_with(lab, replace={**ok, "setup": "import kdlab_no_such_module\n" + SETUP}),
        "hang": cells_with(lab, replace=ok, insert_after={"check-softmax": ["import time\ntime.sleep(25)"] * 4}),
    }


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade every hostile submission once; return ({student: {check: row}}, tmp folder)."""
    tmp = tmp_path_factory.mktemp("grading")
    (tmp / "solutions").mkdir()
    sol = tiny_solution()
    nbformat.write(sol, str(tmp / "solutions" / f"{LAB}.ipynb"))
    assert make_labs(tmp / "solutions", tmp / "labs", log=lambda *a: None) == 0
    lab = nbformat.read(str(tmp / "labs" / f"{LAB}.ipynb"), as_version=4)
    subs = tmp / "submissions"
    for student, nb in hostile(sol, lab).items():
        (subs / student).mkdir(parents=True)
        path = subs / student / f"{LAB}.ipynb"
        if isinstance(nb, str):
            path.write_text(nb, encoding="utf-8")
        else:
            nbformat.write(nb, str(path))
    before = {p: sha(p) for p in subs.rglob("*.ipynb")}
    t0 = time.time() - 1
    rows = grade_submissions(subs, labs_dir=tmp / "labs", out=tmp / "gradebook.csv",
                             solutions_dir=tmp / "solutions", jobs=2, log=lambda *a: None,
                             cell_timeout=CELL_TIMEOUT, timeout=NB_TIMEOUT, max_output=MAX_OUTPUT,
                             work_root=tmp / "work")
    after = {p: sha(p) for p in subs.rglob("*.ipynb")}
    left = [p.info["pid"] for p in psutil.process_iter(["pid", "cwd", "create_time"])
            if p.info["create_time"] and p.info["create_time"] >= t0
            and (p.info["cwd"] or "").startswith(str(tmp / "work"))]
    assert not left, f"processes left running after grading: {left}"
    assert after == before, "a submitted file changed"
    assert sorted(p.name for p in subs.rglob("*")) == sorted(
        [s for s in hostile(sol, lab)] + [f"{LAB}.ipynb"] * len(before)), "files appeared"
    table = {}
    for r in rows:
        table.setdefault(r[0], {})[(r[1], r[2])] = dict(zip(COLUMNS, r))
    return table, tmp


def score(table, student):
    t = table[student]
    return {k[1]: (v["points"], v["status"]) for k, v in t.items() if k[0] == LAB and k[1] != "TOTAL"}


def reason(table, student, check):
    return table[student][(LAB, check)]["reason"]


def test_gradebook_file_and_feedback(graded):
    table, tmp = graded
    with open(tmp / "gradebook.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == COLUMNS
    full = [r for r in rows if r[0] == "full"]
    assert full == [["full", LAB, "softmax_with_temperature", "2", "2", "passed", ""],
                    ["full", LAB, "entropy", "1", "1", "passed", ""],
                    ["full", LAB, "TOTAL", "3", "3", "", full[2][6]],
                    ["full", "ALL", "TOTAL", "3", "3", "", ""]]
    md = (tmp / "feedback" / "blank.md").read_text()
    assert "Total: **0 / 3** points" in md and "check_entropy: not implemented yet" in md


def test_blank_lab_scores_zero(graded):
    table, _ = graded
    assert score(table, "blank") == {"softmax_with_temperature": (0, "failed"), "entropy": (0, "failed")}
    assert "not implemented yet" in reason(table, "blank", "entropy")


def test_edited_check_is_restored(graded):
    table, _ = graded
    assert score(table, "edited") == {"softmax_with_temperature": (0, "failed"), "entropy": (1, "passed")}
    r = reason(table, "edited", "softmax_with_temperature")
    assert r.startswith("check cell modified (check cell edited)")
    assert "check_softmax_with_temperature:" in r


def test_deleted_and_moved_checks_are_put_back(graded):
    table, _ = graded
    student = "deleted_moved"
    assert score(table, student) == {"softmax_with_temperature": (2, "passed"), "entropy": (1, "passed")}
    assert "check cell modified (check cell deleted)" in reason(table, student, "softmax_with_temperature")
    assert "check cell modified (check cell moved)" in reason(table, student, "entropy")


def test_monkeypatched_checks_earn_nothing(graded):
    table, _ = graded
    assert score(table, "monkeypatch") == {"softmax_with_temperature": (0, "failed"), "entropy": (0, "failed")}
    assert "check_softmax_with_temperature:" in reason(table, "monkeypatch", "softmax_with_temperature")
    assert "check_entropy:" in reason(table, "monkeypatch", "entropy")


def test_swallowed_check_failure_earns_nothing(graded):
    table, _ = graded
    assert score(table, "swallow")["softmax_with_temperature"] == (0, "failed")
    assert "did not report a pass" in reason(table, "swallow", "softmax_with_temperature")


def test_malformed_json(graded):
    table, _ = graded
    assert score(table, "malformed") == {"softmax_with_temperature": (0, "invalid"), "entropy": (0, "invalid")}
    assert "not valid JSON" in reason(table, "malformed", "entropy")


def test_infinite_loop_hits_the_cell_limit_and_the_rest_is_graded(graded):
    table, _ = graded
    assert score(table, "loop") == {"softmax_with_temperature": (0, "error"), "entropy": (1, "passed")}
    assert f"time limit of {CELL_TIMEOUT} s per cell" in reason(table, "loop", "softmax_with_temperature")


def test_os_exit_scores_what_ran(graded):
    table, _ = graded
    assert score(table, "exit") == {"softmax_with_temperature": (2, "passed"), "entropy": (0, "error")}
    assert "the kernel died in cell 3" in reason(table, "exit", "entropy")


def test_huge_output_is_cut(graded):
    table, _ = graded
    assert score(table, "huge") == {"softmax_with_temperature": (2, "passed"), "entropy": (0, "error")}
    assert "printed too much output" in reason(table, "huge", "entropy")


def test_import_error_is_readable(graded):
    table, _ = graded
    assert score(table, "importerr") == {"softmax_with_temperature": (0, "failed"), "entropy": (0, "failed")}
    r = reason(table, "importerr", "softmax_with_temperature")
    assert "NameError" in r and "ModuleNotFoundError: No module named 'kdlab_no_such_module'" in r


def test_notebook_time_limit(graded):
    table, _ = graded
    assert score(table, "hang") == {"softmax_with_temperature": (2, "passed"), "entropy": (0, "error")}
    assert f"time limit of {NB_TIMEOUT} s" in reason(table, "hang", "entropy")


def test_restore_places_checks_after_the_students_own_cells():
    sol = tiny_solution()
    lab = generator.generate_lab(notebook_io.loads(nbformat.writes(sol)), "tiny")
    checks = restore.canonical_checks(lab, "tiny")
    nb = notebook_io.loads(nbformat.writes(sol))
    helper = {"cell_type": "code", "id": "my-helper", "metadata": {}, "source": "x = 1",
              "outputs": [], "execution_count": None}
    dup = dict(nb["cells"][6], id="copy")  # a second check-entropy cell
    nb["cells"][3]["metadata"]["kdlab"]["points"] = 99
    nb["cells"] = nb["cells"][:3] + [helper] + nb["cells"][3:] + [dup]
    got = restore.restore(nb, lab, checks)
    assert got.modified == {"softmax_with_temperature": "check cell metadata changed",
                            "entropy": "check cell duplicated"}
    assert [c["id"] for c in got.cells] == ["intro", "setup", "ex-softmax", "my-helper",
                                            "check-softmax", "entropy-intro", "ex-entropy",
                                            "check-entropy", "summary"]
    assert got.cells[4]["metadata"]["kdlab"]["points"] == 2
    for c in nb["cells"]:  # a notebook without ids: checks matched by metadata, kept
        c.pop("id")
    got = restore.restore({**nb, "cells": nb["cells"][:-1]}, lab, checks)
    assert list(got.modified) == ["softmax_with_temperature"]
    graded = restore.graded_notebook(got, checks, "/x", "TOKEN")
    nbformat.validate(nbformat.from_dict(graded))


def test_graded_check_runs_fresh_checks_and_hidden_tests(tmp_path):
    chk = restore.Check("entropy", 1, {"source": "kd.checks.check_entropy(entropy)"},
                        hidden="assert kd.checks.check_entropy is not None")
    src = restore.graded_source(chk, "/x/checks", "TOKEN", "7")
    assert "kd.checks" not in src and "_kdlab_grader_checks_7.check_entropy(entropy)" in src
    assert "assert _kdlab_grader_checks_7.check_entropy is not None" in src
    assert src.rstrip().endswith("print('KDLAB-GRADER-OK TOKEN entropy')")


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_course_solution_full_marks_and_lab_zero(solution, tmp_path):
    """Grading solutions/NN gives every check its points; grading the unfilled labs/NN, 0."""
    lab = ROOT / "labs" / solution.name
    assert lab.exists(), f"{lab} missing: run make labs"
    subs = tmp_path / "submissions"
    for who, src in (("solution", solution), ("blank", lab)):
        (subs / who).mkdir(parents=True)
        shutil.copyfile(src, subs / who / solution.name)
    rows = grade_submissions(subs, labs_dir=ROOT / "labs", out=tmp_path / "gradebook.csv",
                             solutions_dir=ROOT / "solutions", jobs=2, log=lambda *a: None,
                             cell_timeout=600, timeout=1200, lab_names=[solution.stem])
    checks = [r for r in rows if r[2] != "TOTAL"]
    assert {r[0] for r in checks} == {"solution", "blank"}, "the lab has no check cells"
    for r in checks:
        if r[0] == "solution":
            assert (r[3], r[5]) == (r[4], "passed"), f"solution {r[1]} {r[2]}: {r[6]}"
        else:
            assert (r[3], r[5]) == (0, "failed"), f"blank {r[1]} {r[2]}: {r[5]} {r[6]}"
