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


def test_export_command_line(tmp_path, capsys):
    """The export command writes what lms.export writes (tests/test_term.py checks each
    format against its importer) and refuses a roster without a folder column."""
    from kdlab.grading.scoring import Row
    rows = [Row("ann", "01_a", "x", 2, 2, "passed"), Row("ann", "01_a", "y", 0, 1, "failed")]
    report.write_csv(rows, tmp_path / "g.csv")
    (tmp_path / "roster.csv").write_text("folder,name,sid,email\nann,Ann A,9001,ann@x.org\n")
    assert main(["export", str(tmp_path / "g.csv"), "--format", "gradescope", "--roster",
                 str(tmp_path / "roster.csv"), "--missing", "zero", "--out", str(tmp_path / "gs")]) == 0
    assert (tmp_path / "gs" / "Lab_01_a.csv").read_text().splitlines() == [
        "Name,SID,Email,Total Score", "Ann A,9001,ann@x.org,2"]
    assert main(["export", str(tmp_path / "g.csv"), "--format", "moodle", "--roster",
                 str(tmp_path / "g.csv"), "--missing", "zero", "--out", str(tmp_path / "x.csv")]) == 2
    assert "'folder' column" in capsys.readouterr().out


def test_file_names_are_portable_and_distinct():
    names = ["ann b", "ann_b", "ann:b", "x" * 300, os.fsdecode(b"caf\xe9"), ".hidden"]
    files = [report.file_name(n) for n in names]
    assert len(set(files)) == len(files)
    assert all(len(f) <= 90 and f.endswith(".md") and not f.startswith(".") for f in files)
    assert all(all(c.isalnum() or c in "-_." for c in f) for f in files)
    assert report.file_name("ann") == "ann.md"
    assert report.display_name(os.fsdecode(b"caf\xe9")).startswith("caf\ufffd~")
