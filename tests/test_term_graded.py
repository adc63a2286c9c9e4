"""Grading a term with notebooks running: the renamed and doubled notebooks of a small
two-lab course (unsandboxed, cheap), a regrade that keeps every other row, validate on a
notebook with an extra `import os`, and INSTRUCTORS.md's walk of a term (collect -> grade ->
regrade -> export) run as written on Lab 01 in the sandbox."""
import csv
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat

from kdlab.authoring import make_labs
from kdlab.grading.__main__ import main

sys.path.insert(0, str(Path(__file__).parent))
from test_grading import ROOT, cells_with, exercise, tiny_solution  # noqa: E402
from test_term import FIX, canvas_import  # noqa: E402

L1, L2 = "01_tiny", "02_tinier"


def _read(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _plain(md: str) -> str:
    """Markdown without its escapes (the feedback escapes every markup character)."""
    return re.sub(r"\\(.)", r"\1", md)


def _pairs(rows):
    return {(r["student"], r["lab"], r["check"]): r for r in rows}


def test_renamed_doubled_and_regraded(tmp_path):
    """erin's renamed notebook is graded and named; frank's two equal copies are `ambiguous`
    with both names; `--student bob --lab 01_tiny` replaces exactly bob's Lab 01 rows, and
    `--lab 02_tinier` exactly the class's Lab 02 rows, every other row and feedback kept."""
    sol = tiny_solution()
    (tmp_path / "solutions").mkdir()
    for lab in (L1, L2):
        nbformat.write(sol, str(tmp_path / "solutions" / f"{lab}.ipynb"))
    assert make_labs(tmp_path / "solutions", tmp_path / "labs", log=lambda *a: None) == 0
    blank = nbformat.read(str(tmp_path / "labs" / f"{L1}.ipynb"), as_version=4)
    subs = tmp_path / "subs"
    files = {"bob": {f"{L1}.ipynb": sol, f"{L2}.ipynb": sol},
             "erin": {f"lab{L1}.ipynb": sol, "scratch.ipynb": blank},
             "frank": {f"{L1}_copy.ipynb": blank, f"{L1} (2).ipynb": sol}}
    for student, nbs in files.items():
        (subs / student).mkdir(parents=True)
        for name, nb in nbs.items():
            nbformat.write(nb, str(subs / student / name))
    out = tmp_path / "term" / "new" / "gradebook.csv"  # --out's folders are created
    args = ["grade", str(subs), "--labs", str(tmp_path / "labs"), "--solutions",
            str(tmp_path / "solutions"), "--out", str(out), "--no-sandbox", "--jobs", "2"]
    assert main(args) == 0
    rows = _pairs(_read(out))
    erin = rows[("erin", L1, "TOTAL")]
    assert erin["points"] == "3" and erin["file"] == f"lab{L1}.ipynb" and erin["other_notebooks"] == "scratch.ipynb"
    assert len(erin["submission_sha256"]) == 64 and erin["graded_at"].endswith("Z")
    assert rows[("erin", L2, "entropy")]["status"] == "missing"
    assert f"lab{L1}.ipynb" in rows[("erin", L2, "entropy")]["reason"]  # what the folder holds
    fr = rows[("frank", L1, "entropy")]
    assert fr["status"] == "ambiguous" and f"{L1}_copy.ipynb" in fr["reason"] and f"{L1} (2).ipynb" in fr["reason"]
    md = _plain((out.parent / "feedback" / "erin.md").read_text())
    assert f"Graded file: lab{L1}.ipynb (sha256 {erin['submission_sha256'][:12]}), graded {erin['graded_at']}" in md
    assert "ask for a regrade" in md and "not graded for this lab: scratch.ipynb" in md
    before = _read(out)
    feedback_before = {p.name: p.read_text() for p in (out.parent / "feedback").iterdir()}
    # a teaching assistant's score of bob's Lab 01 answers (it survives his regrade)
    (tmp_path / "scores.csv").write_text(f"student,lab,item,points,max_points\nbob,{L1},1,1,1\n")
    assert main(["merge", str(out), "--manual", str(tmp_path / "scores.csv"), "--out", str(out)]) == 0
    before = _read(out)
    # bob's Lab 01 regraded after he changed it: only those rows change
    wrong = cells_with(sol, replace={"ex-entropy": exercise("entropy", "    return p.sum(-1) * 0")})
    nbformat.write(wrong, str(subs / "bob" / f"{L1}.ipynb"))
    assert main(args + ["--student", "bob", "--lab", L1]) == 0
    after = _read(out)
    changed = {(a["student"], a["lab"]) for a, b in zip(after, before) if a != b}
    assert len(after) == len(before) and changed == {("bob", L1), ("bob", "ALL")}, changed
    rows = _pairs(after)
    assert rows[("bob", L1, "TOTAL")]["points"] == "3" and rows[("bob", L2, "TOTAL")]["points"] == "3"
    assert rows[("bob", L1, "manual: 1")]["points"] == "1"  # 2 of the checks + 1 by hand
    bob = _plain((out.parent / "feedback" / "bob.md").read_text())
    assert f"## {L1}: 3 / 4" in bob and f"## {L2}: 3 / 3" in bob
    for name in ("erin.md", "frank.md"):
        assert (out.parent / "feedback" / name).read_text() == feedback_before[name]
    # the whole class's Lab 02 only: every Lab 01 row stays
    before = after
    assert main(args + ["--lab", L2]) == 0
    after = _read(out)
    assert [r for r in after if r["lab"] == L1] == [r for r in before if r["lab"] == L1]
    assert {r["student"] for r in after} == {"bob", "erin", "frank"}


def test_validate_names_the_refused_cell_and_runs_the_checks(tmp_path):
    """A right Lab 01 with an extra `import os` cell: validate says the file name is right,
    names the refused cell and why, and that the public checks pass, so the student sees the
    0 coming; exit code 1 (not ready)."""
    from kdlab.validate import validate
    nb = nbformat.read(str(ROOT / "solutions" / "01_softmax_temperature.ipynb"), as_version=4)
    nb.cells.insert(2, nbformat.v4.new_code_cell("import os\nprint(os.getcwd())", id="mine"))
    path = tmp_path / "01_softmax_temperature.ipynb"
    nbformat.write(nb, str(path))
    said = []
    assert validate(path, labs_dir=ROOT / "labs", log=said.append) == 1
    text = "\n".join(said)
    assert "is the name the grader expects for 01_softmax_temperature" in text
    assert "cell 2 (id 'mine')" in text and "os" in text.split("cell 2 (id 'mine')")[1]
    assert "public checks: 3/3 passed" in text and "not ready" in text
    renamed = tmp_path / "my lab 1.ipynb"
    shutil.copy(path, renamed)
    said.clear()
    assert validate(renamed, labs_dir=ROOT / "labs", run=False, log=said.append) == 1
    assert any("expects 01_softmax_temperature.ipynb" in s for s in said)


# ------------------------------------------------------------------ the walk of INSTRUCTORS.md

def _walk_commands() -> list:
    text = (ROOT / "INSTRUCTORS.md").read_text()
    block = text.split("### A term, end to end", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [ln for ln in block.splitlines() if ln.startswith("python -m kdlab.grading ")]


def _lab01(change=None) -> str:
    nb = json.loads((ROOT / "solutions" / "01_softmax_temperature.ipynb").read_text())
    for c in nb["cells"]:
        src = "".join(c["source"])
        if change and c.get("id") == change[0]:
            assert change[1] in src
            c["source"] = src.replace(change[1], change[2])
    return json.dumps(nb)


def canvas_download(tmp: Path):
    """Canvas's Download Submissions for Lab 01 of the six students of the fixture course:
    ann right; bob the blank lab; cid nan at 0 in entropy; dan nothing; erin renamed; frank
    the right notebook and a blank copy. Then bob's resubmission (Canvas's `-1` suffix)."""
    blank = (ROOT / "labs" / "01_softmax_temperature.ipynb").read_text()
    right = _lab01()
    nan = _lab01(("ex-entropy", "return -torch.xlogy(p, p).sum(dim=-1)", "return -(p * torch.log(p)).sum(dim=-1)"))
    files = {"adamsann_1001_80001_01_softmax_temperature.ipynb": right,
             "brownbob_1002_80002_01_softmax_temperature.ipynb": blank,
             "chencid_LATE_1003_80003_01_softmax_temperature.ipynb": nan,
             "evanserin_1005_80005_lab01_softmax_temperature.ipynb": right,
             "foxfrank_1006_80006_01_softmax_temperature.ipynb": right,
             "foxfrank_1006_80007_01_softmax_temperature_copy.ipynb": blank}
    with zipfile.ZipFile(tmp / "lab01_submissions.zip", "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    with zipfile.ZipFile(tmp / "lab01_bob_resubmitted.zip", "w") as z:
        z.writestr("brownbob_1002_80017_01_softmax_temperature-1.ipynb", right)
    shutil.copy(FIX / "canvas_gradebook_export.csv", tmp / "canvas_gradebook_export.csv")
    (tmp / "assignments.csv").write_text("lab,canvas\n01_softmax_temperature,"
                                         "Lab 01: Softmax and temperature (5001)\n")


def test_the_term_walk(tmp_path, monkeypatch):
    """INSTRUCTORS.md's commands, as written, on a Canvas-shaped class of six: what Canvas
    would import is each student's right Lab 01 points."""
    cmds = _walk_commands()
    assert [shlex.split(c)[3] for c in cmds] == ["collect", "grade", "collect", "grade", "export"]
    canvas_download(tmp_path)
    monkeypatch.chdir(tmp_path)
    gradebooks = []
    for cmd in cmds:
        assert main(shlex.split(cmd)[3:]) == 0, cmd
        if shlex.split(cmd)[3] == "grade":
            gradebooks.append(_pairs(_read("gradebook.csv")))
    first, second = gradebooks
    assert first[("brownbob_1002", "01_softmax_temperature", "TOTAL")]["points"] == "0"
    assert second[("brownbob_1002", "01_softmax_temperature", "TOTAL")]["points"] == "8"
    assert {k: v for k, v in first.items() if k[0] != "brownbob_1002"} == \
        {k: v for k, v in second.items() if k[0] != "brownbob_1002"}  # the regrade kept the rest
    erin = second[("evanserin_1005", "01_softmax_temperature", "TOTAL")]
    assert erin["file"] == "lab01_softmax_temperature.ipynb" and erin["points"] == "8"
    assert re.fullmatch(r"graded in [0-9.]+ s", erin["reason"]) and float(erin["reason"].split()[2]) > 0
    frank = second[("foxfrank_1006", "01_softmax_temperature", "TOTAL")]
    assert frank["file"] == "01_softmax_temperature.ipynb"
    assert frank["other_notebooks"] == "01_softmax_temperature_copy.ipynb"
    assert "nan" in second[("chencid_1003", "01_softmax_temperature", "entropy")]["reason"].lower()
    grades, problems = canvas_import(tmp_path / "canvas_import.csv")
    assert problems == []
    assert {k: v["5001"] for k, v in grades.items()} == {
        "1001": 8, "1002": 8, "1003": 6, "1004": 0, "1005": 8, "1006": 8}
    print((tmp_path / "canvas_import.csv").read_text())


# ------------------------------------------------------------------ Gradescope's autograder

# results.json as Gradescope's autograder specification documents it
RESULTS_SCHEMA = {
    "type": "object",
    "properties": {
        "score": {"type": "number"}, "execution_time": {"type": "number"},
        "output": {"type": "string"}, "output_format": {"enum": ["text", "html", "simple_format", "md", "ansi"]},
        "visibility": {"enum": ["hidden", "after_due_date", "after_published", "visible"]},
        "stdout_visibility": {"enum": ["hidden", "after_due_date", "after_published", "visible"]},
        "extra_data": {"type": "object"},
        "tests": {"type": "array", "items": {
            "type": "object", "required": ["max_score"],
            "properties": {
                "score": {"type": "number"}, "max_score": {"type": "number"},
                "status": {"enum": ["passed", "failed"]}, "name": {"type": "string"},
                "number": {"type": "string"}, "output": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "visibility": {"enum": ["hidden", "after_due_date", "after_published", "visible"]},
                "extra_data": {"type": "object"}},
            "additionalProperties": False}},
        "leaderboard": {"type": "array"}},
    "additionalProperties": False,
    "anyOf": [{"required": ["score"]}, {"required": ["tests"]}],
}


def test_gradescope_autograder_in_gradescopes_layout(tmp_path):
    """autograder.zip unpacked as Gradescope does (/autograder/source, submission, results)
    in a temporary root; run_autograder grades a renamed Lab 01 with a wrong entropy, and
    results.json follows the documented schema: one test per check, the points right."""
    import jsonschema
    assert main(["gradescope", "--lab", "01", "--out", str(tmp_path / "autograder.zip")]) == 0
    root = tmp_path / "autograder"
    with zipfile.ZipFile(tmp_path / "autograder.zip") as z:
        names = z.namelist()
        assert {"setup.sh", "run_autograder", "course/labs/01_softmax_temperature.ipynb",
                "course/solutions/01_softmax_temperature.ipynb", "course/kdlab/grading/keys/lab01.py"} <= set(names)
        z.extractall(root / "source")
    for name in ("setup.sh", "run_autograder"):
        assert subprocess.run(["bash", "-n", str(root / "source" / name)]).returncode == 0
    setup = (root / "source" / "setup.sh").read_text()
    assert "bubblewrap" in setup and re.search(r"pytest==\S+ nbval==\S+|nbval==\S+ pytest==\S+", setup)
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")  # as Gradescope does
    (root / "submission").mkdir()
    (root / "submission" / "my_lab01_softmax_temperature.ipynb").write_text(
        _lab01(("ex-entropy", "return -torch.xlogy(p, p).sum(dim=-1)", "return -(p * torch.log(p)).sum(dim=-1)")))
    (root / "submission_metadata.json").write_text(json.dumps({"id": 1, "users": [{"name": "Ann"}]}))
    env = dict(os.environ, KDLAB_AUTOGRADER_ROOT=str(root), KDLAB_AUTOGRADER_PYTHON=sys.executable,
               KDLAB_THREADS="1")
    p = subprocess.run(["bash", str(root / "run_autograder")], env=env, capture_output=True,
                       text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    results = json.loads((root / "results" / "results.json").read_text())
    jsonschema.validate(results, RESULTS_SCHEMA)
    tests = {t["name"].split(": ")[1]: t for t in results["tests"]}
    assert {k: (t["score"], t["max_score"], t["status"]) for k, t in tests.items()} == {
        "softmax_with_temperature": (3, 3, "passed"), "entropy": (0, 2, "failed"),
        "gradient_scale": (3, 3, "passed")}
    assert results["score"] == 6 and "nan" in tests["entropy"]["output"].lower()
    assert "graded file: my_lab01_softmax_temperature.ipynb" in results["output"]


def test_points_split_across_the_parts_of_a_verdict(tmp_path):
    """A check cell with kdlab.parts across its verdict's parts: a softmax right in all but its
    ValueError earns values and gradient (2 of 4 points, the hidden test's point lost with the
    public probe), and the reason names them before the message the notebook prints."""
    sol = tiny_solution()
    for c in sol.cells:
        if c.get("id") == "check-softmax":
            c.metadata["kdlab"].update(points=4, parts={"values": 1, "gradient": 1, "errors": 1,
                                                        "hidden": 1})
    (tmp_path / "solutions").mkdir()
    nbformat.write(sol, str(tmp_path / "solutions" / f"{L1}.ipynb"))
    assert make_labs(tmp_path / "solutions", tmp_path / "labs", log=lambda *a: None) == 0
    never_raises = cells_with(sol, replace={"ex-softmax": exercise("softmax", (
        "    return torch.softmax(logits / T, dim=-1)"))})
    (tmp_path / "subs" / "ann").mkdir(parents=True)
    nbformat.write(never_raises, str(tmp_path / "subs" / "ann" / f"{L1}.ipynb"))
    args = ["grade", str(tmp_path / "subs"), "--labs", str(tmp_path / "labs"), "--solutions",
            str(tmp_path / "solutions"), "--out", str(tmp_path / "g.csv"), "--no-sandbox", "--jobs", "1"]
    assert main(args) == 0
    row = _pairs(_read(tmp_path / "g.csv"))[("ann", L1, "softmax_with_temperature")]
    assert (row["points"], row["max_points"], row["status"]) == ("2", "4", "failed")
    assert ("parts passed: values, gradient (2/4 points); check_softmax_with_temperature: "
            "T=0.0 should raise ValueError") in row["reason"]


def test_points_split_between_public_part_and_hidden_tests(tmp_path, capsys):
    """A check cell with kdlab.parts {"public": 1, "hidden": 1}: a softmax right on the
    notebook's float32 cases that turns float64 logits into float32 earns the public part
    (1/2), with the hidden test's message; malformed parts are refused with the cell named."""
    sol = tiny_solution()
    for c in sol.cells:
        if c.get("id") == "check-softmax":
            c.metadata["kdlab"]["parts"] = {"public": 1, "hidden": 1}
    (tmp_path / "solutions").mkdir()
    nbformat.write(sol, str(tmp_path / "solutions" / f"{L1}.ipynb"))
    assert make_labs(tmp_path / "solutions", tmp_path / "labs", log=lambda *a: None) == 0
    casts = cells_with(sol, replace={"ex-softmax": exercise("softmax", (
        "    if not (T > 0 and math.isfinite(T)):\n        raise ValueError('T must be > 0')\n"
        "    return torch.softmax(logits.float() / T, dim=-1)"))})
    (tmp_path / "subs" / "ann").mkdir(parents=True)
    nbformat.write(casts, str(tmp_path / "subs" / "ann" / f"{L1}.ipynb"))
    args = ["grade", str(tmp_path / "subs"), "--labs", str(tmp_path / "labs"), "--solutions",
            str(tmp_path / "solutions"), "--out", str(tmp_path / "g.csv"), "--no-sandbox", "--jobs", "1"]
    assert main(args) == 0
    row = _pairs(_read(tmp_path / "g.csv"))[("ann", L1, "softmax_with_temperature")]
    assert (row["points"], row["max_points"], row["status"]) == ("1", "2", "failed")
    assert "public part passed (1/2 points)" in row["reason"] and "hidden test:" in row["reason"]
    assert "float64" in row["reason"]
    for c in sol.cells:
        if c.get("id") == "check-softmax":
            c.metadata["kdlab"]["parts"] = {"public": 2, "hidden": 1}  # 3 != 2 points
    nbformat.write(sol, str(tmp_path / "solutions" / f"{L1}.ipynb"))
    shutil.rmtree(tmp_path / "labs")
    assert make_labs(tmp_path / "solutions", tmp_path / "labs", log=lambda *a: None) == 0
    capsys.readouterr()
    assert main(args) == 2
    assert "check cell 'check-softmax' (softmax_with_temperature): kdlab.parts" in capsys.readouterr().out


def test_a_busy_screen_is_an_error_to_regrade_not_a_refusal(tmp_path, monkeypatch):
    """When the screen cannot finish for a busy machine (screen.ScreenBusy), every check of
    the notebook is an `error` whose reason says to grade again, never a `failed` refusal."""
    from kdlab.grading import gradebook, screen
    sol = tiny_solution()
    (tmp_path / "solutions").mkdir()
    nbformat.write(sol, str(tmp_path / "solutions" / f"{L1}.ipynb"))
    assert make_labs(tmp_path / "solutions", tmp_path / "labs", log=lambda *a: None) == 0
    (tmp_path / "subs" / "ann").mkdir(parents=True)
    nbformat.write(sol, str(tmp_path / "subs" / "ann" / f"{L1}.ipynb"))

    def busy(*a, **k):
        raise screen.ScreenBusy("reading the notebook's code did not finish in 300 s of wall "
                                "time: the grading machine is too busy; grade this notebook again")
    monkeypatch.setattr(gradebook._screen, "run", busy)
    out = tmp_path / "gradebook.csv"
    assert main(["grade", str(tmp_path / "subs"), "--labs", str(tmp_path / "labs"), "--solutions",
                 str(tmp_path / "solutions"), "--out", str(out), "--no-sandbox", "--jobs", "1"]) == 0
    rows = [r for r in _read(out) if r["check"] not in ("TOTAL",) and r["lab"] == L1]
    assert rows and all(r["status"] == "error" and "grade this notebook again" in r["reason"]
                        for r in rows), rows


def test_a_kernel_that_did_not_start_is_an_error_to_regrade(tmp_path):
    """A kernel the grader could not start (its sandbox did not come up in time on a loaded
    machine) makes every check of the notebook an `error` that says to grade it again, never a
    `failed` the student would be scored by."""
    from kdlab.grading import restore
    from kdlab.grading.course import load_labs
    from kdlab.grading.runner import RunResult
    from kdlab.grading.scoring import score
    from test_grading import LAB, tiny_course
    tiny_course(tmp_path)
    lab = load_labs(tmp_path / "labs", tmp_path / "solutions")[LAB]
    draws = {chk.name: restore.draw(chk) for chk in lab.checks}
    cells = []
    for chk in lab.checks:
        for k, d in enumerate(draws[chk.name]):
            cells.append({"cell": len(cells), "id": f"c{len(cells)}", "kdlab": {},
                          "grader": {"check": chk.name, "probe": k, "token": d.token}, "ok": False,
                          "error": "KernelStartFailed: the sandboxed kernel did not start within "
                                   "120 s (no process in its namespaces)",
                          "ename": "", "evalue": "", "text": "", "probes": [], "probe_problems": [],
                          "timed_out": False, "kernel_died": False, "dead_at_start": False,
                          "start_failed": True, "output_limit": False, "seconds": 0.0})
    rows = score("ann", lab, RunResult(cells=cells, returncode=1), {}, draws, "0" * 64)
    assert rows and {r.status for r in rows} == {"error"}, [(r.status, r.reason) for r in rows]
    assert all("did not start within 120 s" in r.reason and "grade this notebook again" in r.reason
               for r in rows)
    for c in cells:  # the same records without the mark: a cell that did not finish, failed
        c["start_failed"] = False
    assert {r.status for r in score("ann", lab, RunResult(cells=cells, returncode=1), {}, draws,
                                    "0" * 64)} == {"failed"}
