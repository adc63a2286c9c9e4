"""Grading a term without notebooks running: which notebook is graded, merging gradebooks,
the LMS exports checked the way each LMS's importer reads them (on files shaped like the
LMS's own exports, tests/fixtures/lms), and collecting each LMS's bulk download."""
import csv
import re
import zipfile
from pathlib import Path

import pytest

from kdlab.grading import lms, report
from kdlab.grading.__main__ import main
from kdlab.grading.collect import collect
from kdlab.grading.pick import choose, rank
from kdlab.grading.scoring import Row

FIX = Path(__file__).parent / "fixtures" / "lms"
LABS = ["01_softmax_temperature", "02_dark_knowledge", "03_response_kd"]
L1, L3 = "01_softmax_temperature", "03_response_kd"


def _touch(folder: Path, *names):
    for n in names:
        (folder / n).parent.mkdir(parents=True, exist_ok=True)
        (folder / n).write_text("{}")


# ------------------------------------------------------------------ which notebook is graded

def test_renamed_notebook_is_graded_and_named(tmp_path):
    """erin's lab03_response_kd.ipynb holds the lab's name: it is graded (rank 2), and her
    other notebook is reported."""
    _touch(tmp_path, "lab03_response_kd.ipynb", "scratch.ipynb")
    c = choose(tmp_path, L3, LABS)
    assert c.file == "lab03_response_kd.ipynb" and c.rank == 2 and c.others == ["scratch.ipynb"]
    assert not c.ambiguous and not c.error


def test_two_copies_rank_or_are_ambiguous(tmp_path):
    """frank's two copies: the one named exactly as the lab wins over a longer name (stated
    in his feedback as an other notebook); two of equal rank are graded as neither, both named."""
    _touch(tmp_path, "01_softmax_temperature.ipynb", "01_softmax_temperature_old.ipynb",
           "03_response_kd_copy.ipynb", "03_response_kd (final).ipynb")
    c1 = choose(tmp_path, L1, LABS)
    assert c1.file == "01_softmax_temperature.ipynb" and c1.rank == 1
    assert "01_softmax_temperature_old.ipynb" in c1.others
    c3 = choose(tmp_path, L3, LABS)
    assert c3.path is None and sorted(c3.ambiguous) == ["03_response_kd (final).ipynb",
                                                        "03_response_kd_copy.ipynb"]
    from kdlab.grading.pick import ambiguous_reason
    assert "03_response_kd_copy.ipynb" in ambiguous_reason(c3, L3) and "none was graded" in ambiguous_reason(c3, L3)


def test_rank_rule():
    assert rank("03_response_kd.ipynb", L3, LABS) == 1
    assert rank("03_Response-KD (1).ipynb", L3, LABS) == 2  # case, dashes, spaces
    assert rank("response_kd_mine.ipynb", L3, LABS) == 3
    assert rank("Lab3.ipynb", L3, LABS) == 3 and rank("lab_03-final.ipynb", L3, LABS) == 3
    assert rank("lab13.ipynb", L3, LABS) == 0 and rank("notes.ipynb", L3, LABS) == 0
    assert rank("01_softmax_temperature_lab3.ipynb", L3, LABS) == 0  # another lab's notebook


def test_checkpoints_and_symlinks(tmp_path):
    _touch(tmp_path, ".ipynb_checkpoints/03_response_kd-checkpoint.ipynb")
    assert choose(tmp_path, L3, LABS).path is None
    (tmp_path / "03_response_kd.ipynb").symlink_to(tmp_path / "x.json")
    assert "symbolic link" in choose(tmp_path, L3, LABS).error


# ------------------------------------------------------------------ gradebooks

def _rows(student, lab, points, when="2026-12-01T10:00:00Z", file=None, status=None):
    checks = {L1: [("softmax_with_temperature", 3), ("entropy", 2), ("gradient_scale", 3)],
              L3: [("kd_loss", 3), ("distill_step", 3)]}[lab]
    out = []
    for (name, mx), p in zip(checks, points):
        st = status or ("passed" if p == mx else "failed")
        out.append(Row(student, lab, name, p, mx, st, "" if st == "passed" else "wrong",
                       submission_sha256="ab" * 32, file=file or (f"{lab}.ipynb" if st != "missing" else ""),
                       graded_at=when))
    return out


def test_merge_keeps_the_latest_grading(tmp_path):
    """Weekly gradebooks merge: each student's lab keeps its latest grading, whatever the
    order of the files; every other row is kept."""
    report.write_csv(_rows("ann", L1, [3, 2, 3]) + _rows("bob", L1, [0, 2, 3]), tmp_path / "w1.csv")
    report.write_csv(_rows("bob", L1, [3, 2, 3], when="2026-12-08T10:00:00Z")
                     + _rows("bob", L3, [3, 0]), tmp_path / "w2.csv")
    said = []
    for order in (["w2.csv", "w1.csv"], ["w1.csv", "w2.csv"]):
        rows = report.merge([tmp_path / n for n in order], tmp_path / "term.csv", log=said.append)
        got = {(r.student, r.lab): sum(x.points for x in rows if (x.student, x.lab) == (r.student, r.lab))
               for r in rows}
        assert got == {("ann", L1): 8, ("bob", L1): 8, ("bob", L3): 3}
    assert any("bob 01_softmax_temperature: kept the grading of 2026-12-08" in s for s in said)
    back = report.read_csv(tmp_path / "term.csv")
    assert {r.file for r in back} == {f"{L1}.ipynb", f"{L3}.ipynb"}
    # from the command line, with every student's feedback: one section per lab
    assert main(["merge", str(tmp_path / "w1.csv"), str(tmp_path / "w2.csv"), "--out",
                 str(tmp_path / "t2.csv"), "--feedback", str(tmp_path / "fb")]) == 0
    bob = (tmp_path / "fb" / "bob.md").read_text()
    assert bob.count("\n## ") == 2 and "Total: **11 / 14** points" in bob


def test_old_gradebooks_still_read(tmp_path):
    """A gradebook written before the file columns existed is read (for merge and export)."""
    path = tmp_path / "old.csv"
    path.write_text(",".join(report.OLD_COLUMNS) + "\nann,01_x,c,1,1,passed,,,,\n")
    assert report.read_csv(path)[0].points == 1


# ------------------------------------------------------------------ exports vs the importers

def _gradebook(tmp_path):
    """ann full marks on both labs, bob 5/8 and no Lab 03 notebook, cid graded for Lab 01
    only (no folder for Lab 03), dan only in the roster; eve graded, not in the roster."""
    rows = (_rows("ann", L1, [3, 2, 3]) + _rows("ann", L3, [3, 3]) + _rows("bob", L1, [3, 2, 0])
            + _rows("bob", L3, [0, 0], status="missing") + _rows("cid", L1, [0, 2, 3])
            + _rows("eve", L1, [3, 2, 3]))
    report.write_csv(rows, tmp_path / "g.csv")
    people = {"ann": ("Adams, Ann", "1001", "S1001", "aadams", "Ann", "Adams", "ann.adams@uni.example"),
              "bob": ("Brown, Bob", "1002", "S1002", "bbrown", "Bob", "Brown", "bob.brown@uni.example"),
              "cid": ("Chen, Cid", "1003", "S1003", "cchen", "Cid", "Chen", "cid.chen@uni.example"),
              "dan": ("=Diaz, Dan", "1004", "S1004", "ddiaz", "Dan", "Diaz", "dan.diaz@uni.example")}
    with open(tmp_path / "roster.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["folder", "name", "canvas_id", "sis_user_id", "sis_login_id", "section",
                    "first_name", "last_name", "email", "sid"])
        for folder, (name, cid, sis, login, first, last, email) in people.items():
            w.writerow([folder, name, cid, sis, login, "KD-101", first, last, email, sis])
    with open(tmp_path / "assignments.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["lab", "canvas", "moodle", "gradescope"])
        w.writerow([L1, "Lab 01: Softmax and temperature (5001)", "Lab 01", "Lab 01"])
        w.writerow([L3, "Lab 03: Response-based KD (5003)", "Lab 03", "Lab 03"])
    return tmp_path / "g.csv", tmp_path / "roster.csv", tmp_path / "assignments.csv"


def canvas_import(path, course=FIX / "canvas_gradebook_export.csv"):
    """What Canvas's gradebook importer does with `path` in the course of `course` (its own
    export): {student id: {assignment id: grade}} plus the problems it would cause (new
    assignments, new students, cleared scores). Follows gradebook_importer.rb's rules."""
    known = list(csv.reader(open(course, newline="")))
    ids = {r[1] for r in known[2:]}
    assignments = {m.group(2): m.group(1) for h in known[0][5:] if (m := re.match(r"^(.*\S)\s*\((\d+)\)$", h))}
    rows = list(csv.reader(open(path, newline="")))
    head = rows[0]
    problems = []
    assert "Student" in head[0] and "ID" in head[1], "Canvas: invalid header row"
    n = 3 + (2 if re.match(r"SIS\s+User\s+ID", head[2]) and re.match(r"SIS\s+Login\s+ID", head[3]) else 0)
    assert "Section" in head[n - 1], "Canvas: the student columns must end with Section"
    computed = re.compile("|".join(lms.CANVAS_COMPUTED))
    cols = {}
    for i, h in enumerate(head[n:], start=n):
        if computed.search(h):
            continue
        m = re.match(r"^(.*\S)\s*\((\d+)\)$", h)
        if m and m.group(2) in assignments:
            cols[i] = m.group(2)
        else:
            problems.append(f"new assignment {h!r}")
    grades = {}
    for r in rows[1:]:
        if "Points Possible" in r[0]:
            continue
        if r[1] not in ids:
            problems.append(f"new student {r[0]!r}")
            continue
        for i, a in cols.items():
            if r[i].strip() in ("", "-"):
                problems.append(f"clears {r[0]}'s score of {a}")
            else:
                grades.setdefault(r[1], {})[a] = float(r[i])
    return grades, problems


def test_canvas_export_imports_as_meant(tmp_path):
    gb, roster, assignments = _gradebook(tmp_path)
    warned = []
    main_args = dict(assignments=assignments, log=warned.append)
    out = lms.export(gb, "canvas", roster, tmp_path / "c.csv", missing="zero", **main_args)[0]
    grades, problems = canvas_import(out)
    assert problems == []
    assert grades == {"1001": {"5001": 8, "5003": 6}, "1002": {"5001": 5, "5003": 0},
                      "1003": {"5001": 5, "5003": 0}, "1004": {"5001": 0, "5003": 0}}
    rows = list(csv.reader(open(out, newline="")))
    assert rows[1][0].strip() == "Points Possible" and rows[1][5:] == ["8", "6"]
    assert "Total" not in rows[0] and any("eve" in w for w in warned)
    assert rows[-1][0] == "'=Diaz, Dan"  # a formula is neutralised
    # leave alone: students without any submission are left out, not blanked
    out = lms.export(gb, "canvas", roster, tmp_path / "c1.csv", missing="leave", labs=[L1], **main_args)[0]
    grades, problems = canvas_import(out)
    assert problems == [] and grades == {"1001": {"5001": 8}, "1002": {"5001": 5}, "1003": {"5001": 5}}
    with pytest.raises(lms.ExportError, match="export one lab at a time"):  # bob: Lab 01, no Lab 03
        lms.export(gb, "canvas", roster, tmp_path / "c2.csv", missing="leave", **main_args)
    assert not (tmp_path / "c2.csv").exists()


def test_canvas_export_refuses_what_would_corrupt_the_gradebook(tmp_path, capsys):
    gb, roster, assignments = _gradebook(tmp_path)
    with pytest.raises(lms.ExportError, match="Title \\(id\\)"):
        lms.export(gb, "canvas", roster, tmp_path / "x.csv", missing="zero")
    bad = tmp_path / "bad_assignments.csv"
    bad.write_text(f"lab,canvas\n{L1},Lab 01\n{L3},Final Score (7)\n")
    with pytest.raises(lms.ExportError, match="Lab 01.*Final Score"):
        lms.export(gb, "canvas", roster, tmp_path / "x.csv", missing="zero", assignments=bad)
    with pytest.raises(lms.ExportError, match="Total"):
        lms.export(gb, "canvas", roster, tmp_path / "x.csv", missing="zero", assignments=assignments,
                   total=True)
    text = roster.read_text().replace(",1002,S1002,bbrown,", ",,,,").replace(",1003,", ",1001,")
    roster.write_text(text)
    with pytest.raises(lms.ExportError) as e:
        lms.export(gb, "canvas", roster, tmp_path / "x.csv", missing="zero", assignments=assignments)
    assert "folder 'bob'" in str(e.value) and "folder 'cid'" in str(e.value) and "same identifier" in str(e.value)
    assert not (tmp_path / "x.csv").exists()
    # the command line: no policy for missing submissions -> argparse refuses
    with pytest.raises(SystemExit):
        main(["export", str(gb), "--format", "canvas", "--roster", str(roster), "--out", "x.csv"])


def moodle_import(path, identifier="Email address", course=FIX / "moodle_grades_export.csv"):
    """What Moodle's CSV grade import does with `path` (load_data.php): one unknown or blank
    identifier aborts the import; returns {email: {item: grade}} and {email: {item: feedback}}."""
    users = {r["Email address"] for r in csv.DictReader(open(course, newline=""))}
    grades, feedback = {}, {}
    for r in csv.DictReader(open(path, newline="")):
        who = r[identifier].strip()
        assert who, "Moodle: a blank identifier gives the row's grades to the row before it"
        assert who in users, f"Moodle: user mapping error ({who}): the whole import is aborted"
        for k, v in r.items():
            if k.endswith("(feedback)"):
                feedback.setdefault(who, {})[k[:-len(" (feedback)")]] = v
            elif k.startswith("Lab"):
                assert v.strip() not in ("", "-"), "Moodle: a blank grade clears the grade"
                grades.setdefault(who, {})[k] = float(v)
    return grades, feedback


def test_moodle_export_imports_as_meant(tmp_path):
    gb, roster, assignments = _gradebook(tmp_path)
    out = lms.export(gb, "moodle", roster, tmp_path / "m.csv", missing="zero",
                     assignments=assignments, log=lambda *a: None)[0]
    grades, feedback = moodle_import(out)
    assert grades["ann.adams@uni.example"] == {"Lab 01": 8, "Lab 03": 6}
    assert grades["bob.brown@uni.example"] == {"Lab 01": 5, "Lab 03": 0}
    assert "graded file 01_softmax_temperature.ipynb" in feedback["bob.brown@uni.example"]["Lab 01"]
    assert "not passed: gradient_scale" in feedback["bob.brown@uni.example"]["Lab 01"]
    assert feedback["bob.brown@uni.example"]["Lab 03"] == "no notebook submitted"
    assert "Total" not in open(out).readline()
    out = lms.export(gb, "moodle", roster, tmp_path / "t.csv", missing="zero", total=True,
                     log=lambda *a: None)[0]
    assert open(out).readline().strip().endswith("Total")
    roster.write_text(roster.read_text().replace("cid.chen@uni.example", ""))
    with pytest.raises(lms.ExportError, match="folder 'cid'.*no email"):
        lms.export(gb, "moodle", roster, tmp_path / "m2.csv", missing="zero", log=lambda *a: None)


def test_gradescope_export_one_file_per_assignment(tmp_path):
    gb, roster, assignments = _gradebook(tmp_path)
    paths = lms.export(gb, "gradescope", roster, tmp_path / "gs", missing="leave",
                       assignments=assignments, log=lambda *a: None)
    assert [p.name for p in paths] == ["Lab_01.csv", "Lab_03.csv"]
    course = {r["Email"]: r for r in csv.DictReader(open(FIX / "gradescope_scores_export.csv"))}
    for p, want in zip(paths, ({"ann": 8, "bob": 5, "cid": 5}, {"ann": 6})):
        rows = list(csv.DictReader(open(p, newline="")))
        assert list(rows[0]) == ["Name", "SID", "Email", "Total Score"]
        assert all(r["Email"] in course and r["SID"] == course[r["Email"]]["SID"] for r in rows)
        assert {r["Email"].split(".")[0]: float(r["Total Score"]) for r in rows} == want


# ------------------------------------------------------------------ collect

def _zip(path: Path, files: dict):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def test_collect_canvas_download(tmp_path):
    """Canvas: <lastfirst>_[LATE_]<user id>_<attachment id>_<file>; identities from its export."""
    nb = '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
    dl = _zip(tmp_path / "submissions.zip", {
        "adamsann_1001_90001_01_softmax_temperature.ipynb": nb,
        "brownbob_LATE_1002_90002_lab01_softmax_temperature.ipynb": nb,
        "brownbob_LATE_1002_90003_notes.txt": "x"})
    got = collect("canvas", dl, tmp_path / "subs", identities=FIX / "canvas_gradebook_export.csv",
                  log=lambda *a: None)
    assert got == {"adamsann_1001": ["01_softmax_temperature.ipynb"],
                   "brownbob_1002": ["lab01_softmax_temperature.ipynb"]}
    roster = {r["folder"]: r for r in csv.DictReader(open(tmp_path / "roster.csv"))}
    assert roster["brownbob_1002"]["canvas_id"] == "1002" and roster["brownbob_1002"]["name"] == "Brown, Bob"
    assert roster["brownbob_1002"]["sis_login_id"] == "bbrown" and roster["adamsann_1001"]["section"] == "KD-101"
    with pytest.raises(Exception, match="outside"):
        collect("canvas", _zip(tmp_path / "evil.zip", {"adamsann_1001_1_a.ipynb": nb, "../x_1_2_a.ipynb": nb}),
                tmp_path / "s2", log=lambda *a: None)
    assert not (tmp_path / "s2").exists() and not (tmp_path / "x_1_2_a.ipynb").exists()


def test_collect_moodle_download(tmp_path):
    """Moodle: <Full Name>_<participant id>_assignsubmission_file[/_]<file>; emails from its
    grade export by name."""
    nb = "{}"
    dl = _zip(tmp_path / "m.zip", {
        "Ann Adams_501_assignsubmission_file/01_softmax_temperature.ipynb": nb,
        "Bob Brown_502_assignsubmission_file_01_softmax_temperature.ipynb": nb,
        "Nobody Known_503_assignsubmission_file/01_softmax_temperature.ipynb": nb})
    said = []
    got = collect("moodle", dl, tmp_path / "subs", identities=FIX / "moodle_grades_export.csv",
                  log=said.append)
    assert set(got) == {"ann_adams_501", "bob_brown_502", "nobody_known_503"}
    roster = {r["folder"]: r for r in csv.DictReader(open(tmp_path / "roster.csv"))}
    assert roster["ann_adams_501"]["email"] == "ann.adams@uni.example"
    assert roster["bob_brown_502"]["sid"] == "S1002" and roster["nobody_known_503"]["email"] == ""
    assert any("Nobody Known" in s and "not in" in s for s in said)


def test_collect_gradescope_download(tmp_path):
    """Gradescope: submission_<id>/ folders and submission_metadata.yml (a group submission
    goes to each member)."""
    meta = """submission_7001:
  :submitters:
  - :name: Ann Adams
    :sid: S1001
    :email: ann.adams@uni.example
  :created_at: 2026-12-01 10:00:00.000000000 +00:00
  :score: 0.0
submission_7002:
  :submitters:
  - :name: Bob Brown
    :sid: S1002
    :email: bob.brown@uni.example
  - :name: Cid Chen
    :sid: S1003
    :email: cid.chen@uni.example
"""
    dl = _zip(tmp_path / "g.zip", {"assignment_99_export/submission_metadata.yml": meta,
                                   "assignment_99_export/submission_7001/01_softmax_temperature.ipynb": "{}",
                                   "assignment_99_export/submission_7002/01_softmax_temperature.ipynb": "{}"})
    got = collect("gradescope", dl, tmp_path / "subs", log=lambda *a: None)
    assert set(got) == {"ann_adams_s1001", "bob_brown_s1002", "cid_chen_s1003"}
    roster = {r["folder"]: r for r in csv.DictReader(open(tmp_path / "roster.csv"))}
    assert roster["cid_chen_s1003"]["email"] == "cid.chen@uni.example"


# ------------------------------------------------------------------ Gradescope's results

def test_gradescope_results_hide_hidden_tests_and_state_a_missing_sandbox(tmp_path, monkeypatch):
    """A check failed on a hidden test is shown once grades are published; where bubblewrap
    cannot run, results.json says the notebook was graded without it and why. (No notebook
    runs here: the submission holds none.)"""
    from kdlab.grading import gradescope, sandbox
    tests = gradescope._tests([Row("s", L1, "entropy", 0, 2, "failed", "hidden test: wrong for float64"),
                               Row("s", L1, "gradient_scale", 0, 3, "failed", "wrong"),
                               Row("s", L1, "softmax_with_temperature", 3, 3, "passed")])
    assert [t["visibility"] for t in tests] == ["after_published", "visible", "visible"]
    assert [t["status"] for t in tests] == ["failed", "failed", "passed"]

    def no_bwrap(*a, **k):
        raise sandbox.SandboxError("bwrap: No permissions to create new namespace")
    monkeypatch.setattr(sandbox, "preflight", no_bwrap)
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    (root / "submission" / "notes.txt").write_text("forgot the notebook")
    course = root / "source" / "course"
    root_course = Path(__file__).resolve().parents[1]
    for d in ("labs", "solutions"):
        (course / d).mkdir(parents=True)
        (course / d / f"{L1}.ipynb").write_bytes((root_course / d / f"{L1}.ipynb").read_bytes())
    results = gradescope.run(L1, root, log=lambda *a: None)
    assert "WITHOUT the bubblewrap sandbox" in results["output"] and "No permissions" in results["output"]
    assert results["score"] == 0 and all(t["max_score"] > 0 for t in results["tests"])
    assert all("no notebook" in t["output"] for t in results["tests"])
    assert (root / "results" / "results.json").exists()


# ------------------------------------------------------------------ free-text answers

def test_answers_export_and_manual_scores(tmp_path):
    """answers.csv has one row per student, lab and numbered answer (the placeholder left
    alone gives none); scores typed back by a teaching assistant join the gradebook with
    merge --manual and count in the exports; a bad line is refused with its number."""
    import json as _json
    root = Path(__file__).resolve().parents[1]
    lab = _json.loads((root / "labs" / f"{L1}.ipynb").read_text())
    for c in lab["cells"]:
        if c.get("id") == "answers-md":
            c["source"] = ("**Your answers**\n\n1. It becomes one-hot; uniform.\n"
                           "2. The soft targets say 7 looks like 1.\n3. The entropy.")
    (tmp_path / "subs" / "ann").mkdir(parents=True)
    (tmp_path / "subs" / "ann" / f"lab{L1}.ipynb").write_text(_json.dumps(lab))
    (tmp_path / "subs" / "bob").mkdir()
    (tmp_path / "subs" / "bob" / f"{L1}.ipynb").write_bytes((root / "labs" / f"{L1}.ipynb").read_bytes())
    assert main(["answers", str(tmp_path / "subs"), "--out", str(tmp_path / "answers.csv"),
                 "--lab", L1]) == 0
    rows = list(csv.DictReader(open(tmp_path / "answers.csv", newline="")))
    assert [(r["student"], r["question"][:2], r["text"]) for r in rows] == [
        ("ann", "1.", "It becomes one-hot; uniform."), ("ann", "2.", "The soft targets say 7 looks like 1."),
        ("ann", "3.", "The entropy.")]
    assert "T \\to 0" in rows[0]["question"]
    gb, roster, assignments = _gradebook(tmp_path)
    (tmp_path / "scores.csv").write_text("student,lab,item,points,max_points,comment\n"
                                         f"ann,{L1},1,1,1,right\nbob,{L1},1,0,1,\n")
    assert main(["merge", str(gb), "--manual", str(tmp_path / "scores.csv"), "--out", str(gb)]) == 0
    back = report.read_csv(gb)
    assert [(r.student, r.points, r.reason) for r in back if r.status == "manual"] == [
        ("ann", 1, "right"), ("bob", 0, "")]
    out = lms.export(gb, "canvas", roster, tmp_path / "c.csv", missing="zero",
                     assignments=assignments, log=lambda *a: None)[0]
    grades, problems = canvas_import(out)
    assert problems == [] and grades["1001"]["5001"] == 9 and grades["1002"]["5001"] == 5
    (tmp_path / "bad.csv").write_text(f"student,lab,item,points,max_points\nann,{L1},1,2,1\nann,{L1},2,x,1\n")
    with pytest.raises(ValueError, match="line 2.*\n.*line 3"):
        from kdlab.grading.answers import read_manual
        read_manual(tmp_path / "bad.csv")
    (tmp_path / "typo.csv").write_text(f"student,lab,item,points,max_points\nanm,{L1},1,1,1\n")
    assert main(["merge", str(gb), "--manual", str(tmp_path / "typo.csv"), "--out", str(tmp_path / "x.csv")]) == 2


# ------------------------------------------------------------------ points split across a verdict's parts

def _softmax_never_raises(logits, T):
    """Right values and gradient, but T <= 0, nan and inf are not rejected."""
    import torch
    return torch.softmax(logits / T, dim=-1)


def _kd_loss_teacher_live(s, t, y, T, alpha):
    """The right loss, except that the teacher's logits are not detached."""
    import torch.nn.functional as F
    if T <= 0:
        raise ValueError("T must be > 0")
    soft = F.kl_div(F.log_softmax(s / T, dim=1), F.softmax(t / T, dim=1), reduction="batchmean")
    return (1 - alpha) * F.cross_entropy(s, y) + alpha * T * T * soft


def test_a_verdict_judges_each_part_on_its_own():
    """Lab 01's softmax without its ValueError passes values and gradient and fails errors;
    Lab 03's kd_loss (the shared scalar-loss verdict) with a live teacher fails only the
    teacher part; the message is the first failure, the one the notebook prints."""
    from kdlab.checks import check_kd_loss, check_softmax_with_temperature
    from kdlab.checks._registry import judge, judge_parts, probe_data
    from kdlab.grading import keys

    for check, fn, failing, words in (
            (check_softmax_with_temperature, _softmax_never_raises, "errors",
             "T=0.0 should raise ValueError"),
            (check_kd_loss, _kd_loss_teacher_live, "teacher", "teacher_logits received a gradient")):
        for seed in (None, 3):
            key = keys.make(check, check.inputs(seed))
            data = probe_data(check, fn, seed)
            detail, by_part, first = judge_parts(check, data, seed, key=key)
            assert detail is None and words in first
            assert by_part == {p: (first if p == failing else "") for p in check.parts}
            with pytest.raises(AssertionError) as e:
                judge(check, data, seed, key=key)
            assert str(e.value) == first
        with pytest.raises(AssertionError, match=words):  # the notebook's message, unchanged
            check(fn)
    # a call that raises fails every part at once, with the one message of the check
    data = probe_data(check_kd_loss, lambda *a: 1 / 0, None)
    detail, by_part, first = judge_parts(check_kd_loss, data)
    assert "ZeroDivisionError" in first and set(by_part.values()) == {first}


def _lab(name: str, points: int, split):
    from kdlab.grading.course import Lab
    from kdlab.grading.restore import CheckCell

    cell = {"id": "check-x", "cell_type": "code", "source": f"kd.checks.check_{name}(f)",
            "metadata": {"kdlab": {"check": name, "points": points, "parts": split}}}
    return Lab("01_softmax_temperature", [CheckCell(name, points, cell)], {}, {})


def test_points_split_across_a_verdicts_parts():
    """Each part the public probe passes earns its points; "hidden" only with the public probe
    whole; the reason names the parts that passed before the first failure's message."""
    from kdlab.grading import parts

    S = "softmax_with_temperature"
    lab = _lab(S, 3, {"values": 1, "gradient": 1, "errors": 1})
    why = "check_softmax_with_temperature: T=0.0 should raise ValueError, but ..."
    row = Row("ann", L1, S, 0, 3, "failed", why,
              part_reasons={"values": "", "gradient": "", "errors": why})
    [got] = parts.apply([row], lab)
    assert (got.points, got.status) == (2, "failed")
    assert got.reason == f"parts passed: values, gradient (2/3 points); {why}"
    none = Row("ann", L1, S, 0, 3, "failed", "x", part_reasons={p: "x" for p in ("values", "gradient", "errors")})
    assert parts.apply([none], lab)[0].points == 0
    assert parts.apply([Row("ann", L1, S, 0, 3, "error", "time limit")], lab)[0].points == 0
    lab = _lab(S, 4, {"values": 1, "gradient": 1, "errors": 0, "hidden": 2})
    hidden = Row("ann", L1, S, 0, 4, "failed", "hidden test: wrong for float64",
                 part_reasons={"values": "", "gradient": "", "errors": ""})
    assert parts.apply([hidden], lab)[0].points == 2
    lab = _lab(S, 2, {"public": 1, "hidden": 1})  # the split of before still holds
    assert parts.apply([Row("ann", L1, S, 0, 2, "failed", "hidden test: x")], lab)[0].points == 1


@pytest.mark.parametrize("name,points,split,words", [
    ("softmax_with_temperature", 3, {"values": 1, "gradient": 2}, "['values', 'gradient', 'errors']"),
    ("softmax_with_temperature", 3, {"values": 1, "gradient": 1, "errors": 2}, "adding up to points (3)"),
    ("softmax_with_temperature", 3, {"values": 1, "gradient": 1, "errors": 1.0}, "whole numbers"),
    ("softmax_with_temperature", 3, {"values": 1, "grad": 1, "errors": 1}, "got {'values': 1, 'grad'"),
    ("softmax_with_temperature", 3, {"values": 2, "gradient": 1, "errors": 1, "hidden": -1}, ">= 0"),
    ("entropy", 2, {"values": 2}, "its verdict has no parts of its own"),
])
def test_malformed_part_metadata_is_a_clear_error(name, points, split, words):
    from kdlab.grading import parts
    from kdlab.grading.notebook_io import NotebookError

    with pytest.raises(NotebookError) as e:
        parts.validate(_lab(name, points, split))
    assert "check cell 'check-x'" in str(e.value) and words in str(e.value)
