"""Grading as an instructor uses it: defaults from the installed course, regrading a student,
resuming an interrupted grading, progress lines, and the LMS exports."""
import csv
import os
import subprocess
import sys
import threading
from pathlib import Path

import nbformat
import pytest

from kdlab.grading import report
from kdlab.grading.__main__ import main
from kdlab.grading.gradebook import GradingCancelled, grade_submissions

sys.path.insert(0, str(Path(__file__).parent))
from test_grading import LAB, ROOT, cells_with, exercise, tiny_course  # noqa: E402


def _class(tmp_path, students=("ann", "bob")):
    """A tiny course and honest submissions; returns the solution notebook."""
    sol = tiny_course(tmp_path)
    for s in students:
        (tmp_path / "subs" / s).mkdir(parents=True)
        nbformat.write(sol, str(tmp_path / "subs" / s / f"{LAB}.ipynb"))
    return sol


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_grade_from_another_folder_uses_the_installed_course(tmp_path):
    """Run from a folder that is not the course: the labs and solutions (hidden tests) of the
    installed course are used, not an empty set that gives everyone 0/0."""
    (tmp_path / "subs" / "ann").mkdir(parents=True)
    lab = ROOT / "labs" / "01_softmax_temperature.ipynb"
    (tmp_path / "subs" / "ann" / lab.name).write_bytes(lab.read_bytes())
    p = subprocess.run([sys.executable, "-m", "kdlab.grading", "grade", "subs", "--out", "g.csv",
                        "--lab", "01_softmax_temperature", "--jobs", "1"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    rows = [r for r in _rows(tmp_path / "g.csv") if r["check"] != "TOTAL"]
    assert {r["check"] for r in rows} == {"softmax_with_temperature", "entropy", "gradient_scale"}
    assert all(r["status"] == "failed" and "not implemented yet" in r["reason"] for r in rows)
    from kdlab.grading.course import find_course
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        assert find_course() == (ROOT / "labs", ROOT / "solutions")  # hidden tests included
    finally:
        os.chdir(cwd)


def test_missing_solutions_or_labs_is_an_error(tmp_path, capsys):
    """Labs without solutions/ would silently drop the hidden tests; an empty labs folder
    would grade nothing: both are errors that say what to pass."""
    _class(tmp_path)
    (tmp_path / "alone").mkdir()
    (tmp_path / "alone" / "labs").mkdir()
    lab = tmp_path / "labs" / f"{LAB}.ipynb"
    (tmp_path / "alone" / "labs" / lab.name).write_bytes(lab.read_bytes())
    assert main(["grade", str(tmp_path / "subs"), "--labs", str(tmp_path / "alone" / "labs"),
                 "--out", str(tmp_path / "g.csv"), "--no-sandbox"]) == 2
    assert "--no-hidden-tests" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert main(["grade", str(tmp_path / "subs"), "--labs", str(tmp_path / "empty"),
                 "--out", str(tmp_path / "g.csv"), "--no-sandbox"]) == 2
    assert "no lab notebooks" in capsys.readouterr().out
    assert not (tmp_path / "g.csv").exists()


def test_regrading_one_student_keeps_the_class(tmp_path):
    """--student NAME regrades that student into the existing gradebook: the others' rows and
    feedback stay as they were."""
    sol = _class(tmp_path)
    args = ["grade", str(tmp_path / "subs"), "--labs", str(tmp_path / "labs"), "--solutions",
            str(tmp_path / "solutions"), "--out", str(tmp_path / "g.csv"), "--no-sandbox", "--jobs", "1"]
    assert main(args) == 0
    bob_before = [r for r in _rows(tmp_path / "g.csv") if r["student"] == "bob"]
    bob_feedback = (tmp_path / "feedback" / "bob.md").read_text()
    wrong = cells_with(sol, replace={"ex-entropy": exercise("entropy", "    return p.sum(-1) * 0")})
    nbformat.write(wrong, str(tmp_path / "subs" / "ann" / f"{LAB}.ipynb"))
    assert main(args + ["--student", "ann"]) == 0
    rows = _rows(tmp_path / "g.csv")
    assert [r for r in rows if r["student"] == "bob"] == bob_before
    ann = {r["check"]: r for r in rows if r["student"] == "ann" and r["lab"] == LAB}
    assert ann["entropy"]["points"] == "0" and ann["TOTAL"]["points"] == "2"
    assert (tmp_path / "feedback" / "bob.md").read_text() == bob_feedback
    assert "Total: **2 / 3**" in (tmp_path / "feedback" / "ann.md").read_text()
    assert main(args + ["--student", "nobody"]) == 2


def test_interrupted_grading_resumes_where_it_stopped(tmp_path):
    """Ctrl-C keeps the notebooks graded so far (a journal beside the gradebook); --resume
    grades only the rest, and the gradebook is then complete."""
    _class(tmp_path, students=("ann", "bob", "cid"))
    logs, cancel = [], threading.Event()

    def log(line):
        logs.append(line)
        if line.startswith("[1/3]"):
            cancel.set()  # stop once the first notebook is done

    kw = dict(labs_dir=tmp_path / "labs", solutions_dir=tmp_path / "solutions",
              out=tmp_path / "g.csv", jobs=1, sandbox=False)
    with pytest.raises(GradingCancelled, match="resume"):
        grade_submissions(tmp_path / "subs", log=log, cancel=cancel, **kw)
    assert not (tmp_path / "g.csv").exists()
    assert (tmp_path / "g.csv.partial.jsonl").read_text().count("\n") == 1
    logs.clear()
    rows = grade_submissions(tmp_path / "subs", log=logs.append, resume=True, **kw)
    assert any("1 notebooks kept from the interrupted grading" in ln for ln in logs), logs
    assert sum(ln.startswith("[") for ln in logs) == 2, logs  # two more graded, with progress lines
    assert {r.student for r in rows} == {"ann", "bob", "cid"} and all(r.status == "passed" for r in rows)
    assert not (tmp_path / "g.csv.partial.jsonl").exists()


def test_export_for_each_lms(tmp_path):
    """The wide CSV each LMS imports: identity columns from the roster, one column per lab,
    the total; a Canvas file has its Points Possible row. Formulas are neutralised."""
    from kdlab.grading.scoring import Row
    rows = [Row("ann", "01_a", "x", 2, 2, "passed"), Row("ann", "01_a", "y", 0, 1, "failed"),
            Row("ann", "02_b", "z", 3, 3, "passed"), Row("bob", "01_a", "x", 1, 2, "failed"),
            Row("eve", "01_a", "x", 2, 2, "passed")]
    report.write_csv(rows, tmp_path / "g.csv")
    with open(tmp_path / "roster.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["folder", "name", "canvas_id", "sis_user_id", "sis_login_id", "section", "sid",
                    "email", "first_name", "last_name"])
        w.writerow(["ann", "Ann A", "101", "S1", "ann1", "A", "9001", "ann@x.org", "Ann", "A"])
        w.writerow(["bob", "=Bob", "102", "S2", "bob2", "A", "9002", "bob@x.org", "Bob", "B"])
        w.writerow(["dan", "Dan D", "103", "S3", "dan3", "B", "9003", "dan@x.org", "Dan", "D"])
    warned = []
    out = report.export(tmp_path / "g.csv", "canvas", tmp_path / "roster.csv", tmp_path / "c.csv",
                        log=warned.append)
    got = list(csv.reader(open(out, newline="")))
    assert got[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Lab 01_a",
                      "Lab 02_b", "Total"]
    assert got[1][0].strip() == "Points Possible" and got[1][5:] == ["3", "3", "6"]
    assert got[2] == ["Ann A", "101", "S1", "ann1", "A", "2", "3", "5"]
    assert got[3][0] == "'=Bob" and got[3][5:] == ["1", "", "1"]
    assert got[4][5:] == ["", "", ""]  # on the roster, not graded
    assert any("eve" in w for w in warned)  # graded, not on the roster
    for fmt, head in (("gradescope", ["Name", "SID", "Email"]),
                      ("moodle", ["First name", "Last name", "ID number", "Email address"])):
        got = list(csv.reader(open(report.export(tmp_path / "g.csv", fmt, tmp_path / "roster.csv",
                                                 tmp_path / f"{fmt}.csv", log=lambda *a: None))))
        assert got[0] == head + ["Lab 01_a", "Lab 02_b", "Total"] and got[1][-1] == "5"
    assert main(["export", str(tmp_path / "g.csv"), "--format", "moodle", "--roster",
                 str(tmp_path / "g.csv"), "--out", str(tmp_path / "x.csv")]) == 2  # no folder column


def test_file_names_are_portable_and_distinct():
    names = ["ann b", "ann_b", "ann:b", "x" * 300, os.fsdecode(b"caf\xe9"), ".hidden"]
    files = [report.file_name(n) for n in names]
    assert len(set(files)) == len(files)
    assert all(len(f) <= 90 and f.endswith(".md") and not f.startswith(".") for f in files)
    assert all(all(c.isalnum() or c in "-_." for c in f) for f in files)
    assert report.file_name("ann") == "ann.md"
    assert report.display_name(os.fsdecode(b"caf\xe9")).startswith("caf\ufffd~")
