"""Grading: hostile submissions of a small lab built from real checks, and the course's labs.

One grading run covers all the hostile fixtures (they are graded in parallel); each test
then reads its student's rows. Every submitted file must be byte-identical afterwards.
"""
import csv
import hashlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from concurrent import futures
from pathlib import Path

import nbformat
import psutil
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

import kdlab.checks
from kdlab.grading import generator, make_labs, notebook_io, restore
from kdlab.grading.gradebook import COLUMNS, GradingCancelled, grade_submissions
from kdlab.grading.runner import read_cells

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob(generator.NOTEBOOK_GLOB))
LAB = "01_tiny"
# An honest tiny notebook takes about 7 s on an idle machine (its slowest cell 3 s); it is
# graded in the background while the rest of the suite runs, so the limits leave a 5x margin.
# The loop and hang fixtures cost these times.
CELL_TIMEOUT, NB_TIMEOUT, MAX_OUTPUT = 20, 40, 200_000

SOFTMAX_OK = ("    if not (T > 0 and math.isfinite(T)):\n"
              "        raise ValueError(f'T must be a finite number > 0, got {T}')\n"
              "    return torch.softmax(logits / T, dim=-1)")
SOFTMAX_WRONG = "    return torch.softmax(logits, dim=-1)  # forgets T"
ENTROPY_OK = "    return -torch.xlogy(p, p).sum(-1)  # tiny-solution-marker"
ENTROPY_WRONG = "    return -(p * torch.log2(p)).sum(-1)  # bits, and nan at 0"
SETUP = "import math\nimport kdlab as kd\nimport kdlab.checks\nimport torch"


HIDDEN = ('### BEGIN HIDDEN TESTS\n'
          'kd.checks.check_softmax_with_temperature(softmax_with_temperature, dtype="float64")\n'
          '### END HIDDEN TESTS')


def tiny_solution():
    """A two-exercise solution notebook using the real Lab 01 checks (3 points), one hidden test."""
    def ex(name, body, cid):
        return new_code_cell(f"def {name}:\n    ### BEGIN SOLUTION\n{body}\n    ### END SOLUTION",
                             id=cid, metadata={"kdlab": {"exercise": name.split("(")[0]}})

    def check(name, points, cid, hidden=""):
        return new_code_cell(f"kd.checks.check_{name}({name})" + (f"\n{hidden}" if hidden else ""),
                             id=cid, metadata={"kdlab": {"check": name, "points": points}})
    cells = [new_markdown_cell("# Tiny lab", id="intro"), new_code_cell(SETUP, id="setup"),
             ex("softmax_with_temperature(logits, T=1.0)", SOFTMAX_OK, "ex-softmax"),
             check("softmax_with_temperature", 2, "check-softmax", HIDDEN),
             new_markdown_cell("## Entropy", id="entropy-intro"),
             ex("entropy(p)", ENTROPY_OK, "ex-entropy"), check("entropy", 1, "check-entropy"),
             new_markdown_cell("## Summary", id="summary")]
    return new_notebook(cells=cells, metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}})


def tiny_course(folder: Path):
    """Write the tiny solution to folder/solutions and generate folder/labs; return it."""
    (folder / "solutions").mkdir()
    sol = tiny_solution()
    nbformat.write(sol, str(folder / "solutions" / f"{LAB}.ipynb"))
    assert make_labs(folder / "solutions", folder / "labs", log=lambda *a: None) == 0
    return sol


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

SOLUTION_MARKER = "tiny-solution-marker"  # a comment only solutions/ holds
SECRET_ENV = "KDLAB_TEST_INSTRUCTOR_SECRET"

# ------------------------------------------------------------------ attacks (each on the blank lab)
ATTACKS = {
    # 1. a patched torch.allclose, with wrong answers
    "a1_allclose": {"ex-softmax": "torch.allclose = lambda *a, **k: True\n" + exercise("softmax", SOFTMAX_WRONG),
                    "ex-entropy": exercise("entropy", ENTROPY_WRONG)},
    # 2. a tensor subclass whose __torch_function__ makes allclose/equal/isclose lie
    "a2_liar": {"ex-softmax": """class Liar(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        with torch._C.DisableTorchFunctionSubclass():
            out = func(*args, **(kwargs or {}))
        if func in (torch.allclose, torch.equal, torch.Tensor.equal, torch.isclose):
            return True
        return out

def softmax_with_temperature(logits, T=1.0):
    if not (T > 0 and math.isfinite(T)):
        raise ValueError("T")
    return torch.softmax(logits, dim=-1).as_subclass(Liar)""",
                "ex-entropy": "def entropy(p):\n    return torch.zeros(p.shape[:-1]).as_subclass(Liar)"},
    # 3. an input transformer rewriting the check cells (plainly, and past the syntax screen)
    "a3_transformer": {"ex-softmax": """def _fake(lines):
    if any("kd.checks" in l or "_kdlab" in l for l in lines):
        return ["print('PASSED check_softmax_with_temperature')\\n"]
    return lines
get_ipython().input_transformers_post.append(_fake)"""},
    "a3_transformer_hidden": {"ex-softmax": """import operator
def _fake(lines):
    if any("check" in l for l in lines):
        return ["print('PASSED check_softmax_with_temperature')\\n", "print('PASSED check_entropy')\\n"]
    return lines
operator.attrgetter("input_transformers_" + "post")(get_ipython()).append(_fake)"""},
    # 4. forged report records and pass lines, wherever a report might be
    "a4_forge": {"ex-entropy": """import glob, json, os
forged = {"cell": 99, "id": "check-softmax", "kdlab": {"check": "softmax_with_temperature", "points": 2},
          "ok": True, "error": "", "ename": "", "evalue": "", "probes": [],
          "text": "PASSED check_softmax_with_temperature", "timed_out": False, "kernel_died": False,
          "dead_at_start": False, "output_limit": False, "seconds": 0.1}
hits = []
for pattern in ("/tmp/**/cells.jsonl", os.path.dirname(os.getcwd()) + "/*/cells.jsonl", "cells.jsonl"):
    for f in glob.glob(pattern, recursive=True):
        try:
            with open(f, "a") as h:
                h.write(json.dumps(forged) + "\\n")
            hits.append(f)
        except OSError:
            pass
print("forged into", hits)
print("PASSED check_softmax_with_temperature")
print("PASSED check_entropy")
def entropy(p):
    return -(p * torch.log2(p)).nan_to_num().sum(-1)"""},
    # 5. walk into the check's frames and replace fail / cmp
    "a5_frames": {"ex-softmax": """import sys
def softmax_with_temperature(logits, T=1.0):
    f = sys._getframe(1)
    while f is not None:
        for k in ("fail", "cmp", "_close"):
            if k in f.f_globals:
                f.f_globals[k] = (lambda *a, **kw: None) if k != "_close" else (lambda *a, **kw: True)
        f = f.f_back
    return logits"""},
    # 6. the course's reference implementations: plainly, and reached by a computed name
    "a6_reference": {"ex-softmax": "softmax_with_temperature = kd.losses.soft_targets",
                     "ex-entropy": "from kdlab.checks.lab01 import _ref_entropy as entropy"},
    "a6_reference_hidden": {"ex-softmax": """import operator
softmax_with_temperature = operator.attrgetter("soft_" + "targets")(operator.attrgetter("lo" + "sses")(kd))"""},
    # 7. read the instructor's solutions (editable install: next to kdlab) or any solution notebook
    "a7_solutions": {"ex-softmax": """import pathlib, os
found = []
roots = [pathlib.Path(kdlab.__file__).resolve().parents[1], pathlib.Path("/tmp"), pathlib.Path("/work"),
         pathlib.Path("/root"), pathlib.Path("/home"), pathlib.Path.cwd().parent]
for root in roots:
    for dirpath, dirs, files in os.walk(root):
        if dirpath.count(os.sep) > 8:
            dirs[:] = []
        for f in files:
            if f.endswith(".ipynb"):
                try:
                    text = open(os.path.join(dirpath, f)).read()
                except OSError:
                    continue
                if "BEGIN SOLUTION" in text or "tiny-solution-marker" in text:
                    found.append(text)
def softmax_with_temperature(logits, T=1.0):
    raise RuntimeError("SOLUTIONS FOUND: " + " ".join(found)[:20000] if found else "no solutions found")"""},
    # 8. rewrite the checks on disk for every student graded after
    "a8_rewrite_checks": {"ex-softmax": """import pathlib
target = pathlib.Path(kdlab.__file__).parent / "checks" / "lab01.py"
try:
    target.write_text("def check_softmax_with_temperature(fn): print('PASSED')\\n")
    print("rewrote", target)
except OSError as e:
    print("could not write", e)"""},
    # 9. the grader's command line names the submissions: read the others; the network; the env
    "a9_spy": {"ex-softmax": """import os, socket, psutil
seen, leak = [], []
try:
    for p in psutil.Process().parents():
        seen.append(" ".join(p.cmdline()))
except Exception as e:
    seen.append(repr(e))
for word in " ".join(seen).split() + ["/tmp", "/work", "/root"]:
    if os.path.isdir(word):
        for dirpath, dirs, files in os.walk(word):
            for f in files:
                if f.endswith(".ipynb"):
                    try:
                        leak.append(open(os.path.join(dirpath, f)).read()[:4000])
                    except OSError:
                        pass
try:
    socket.create_connection(("127.0.0.1", PORT), timeout=3).sendall(b"hello from a9_spy")
    leak.append("NETWORK REACHED")
except OSError as e:
    leak.append("no network: " + repr(e))
leak.append(os.environ.get("SECRET_ENV", "no instructor secret"))
def softmax_with_temperature(logits, T=1.0):
    raise RuntimeError("LEAK " + " || ".join(leak + seen)[:30000])"""},
}


def hostile(sol, lab, port=0):
    """{student: notebook text or dict} for each hostile case, the attacks, and honest ones."""
    wrong = {"ex-softmax": exercise("softmax", SOFTMAX_WRONG), "ex-entropy": exercise("entropy", ENTROPY_WRONG)}
    ok = {"ex-softmax": exercise("softmax", SOFTMAX_OK), "ex-entropy": exercise("entropy", ENTROPY_OK)}
    moved = cells_with(lab, replace=ok, delete=("check-softmax",))
    moved.cells.insert(1, moved.cells.pop(5))  # check-entropy to the top
    subs = {
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
        "hang": cells_with(lab, replace=ok, insert_after={"check-softmax": ["import time\ntime.sleep(12)"] * 4}),
        "hog": cells_with(lab, replace=ok, insert_after={"check-softmax": [
            "big = torch.ones(6 * 1024 ** 3 // 4)  # 6 GB"]}),
        "float32_only": cells_with(lab, replace={**ok, "ex-softmax": exercise("softmax", SOFTMAX_OK.replace(
            "logits / T", "logits.float() / T"))}),
    }
    for name, cells in ATTACKS.items():
        cells = {k: v.replace("PORT", str(port)).replace("SECRET_ENV", SECRET_ENV) for k, v in cells.items()}
        subs[name] = cells_with(lab, replace=cells)
    for who, nb in subs.items():  # every student's notebook carries a text of its own
        if not isinstance(nb, str):
            nb.cells.append(new_markdown_cell(f"private note of {who}: secret-{who}-text", id="note"))
    return subs


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class Listener:
    """A TCP server on 127.0.0.1 that counts the connections it receives (the 'network')."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port, self.received, self.stop = self.sock.getsockname()[1], [], False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.received.append(conn.recv(100))
            conn.close()

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close()


def checks_digest():
    """sha256 of every file of the course's kdlab/checks, as the grader's own files are."""
    folder = Path(kdlab.checks.__file__).parent
    return {p.name: sha(p) for p in sorted(folder.glob("*.py"))}


# The two gradings below take most of this module's time, in sandboxed kernels: conftest.py
# starts them in the background as soon as the tests are collected (the rest of the suite
# leaves a core idle most of the time); a fixture waits for its grading's result. They run in
# daemon threads, and conftest.py calls stop_gradings() when the session ends: a session
# stopped early (Ctrl-C, -x) does not wait for them.
_RUNS: dict = {}  # name -> (Future, folder, cancel event)


def start_gradings(names, base: Path) -> None:
    """Start the named gradings ("hostile", "course") in the background, in folders under base."""
    for name in names:
        if name not in _RUNS:
            tmp = base / name
            tmp.mkdir(parents=True)
            fn = {"hostile": grade_hostile, "course": grade_course}[name]
            future, cancel = futures.Future(), threading.Event()

            def work(fn=fn, tmp=tmp, future=future, cancel=cancel):
                try:
                    future.set_result(fn(tmp, cancel))
                except BaseException as e:  # noqa: BLE001 - the waiting fixture re-raises it
                    future.set_exception(e)

            threading.Thread(target=work, name=f"grading-{name}", daemon=True).start()
            _RUNS[name] = (future, tmp, cancel)


def _processes_under(folder: Path) -> list:
    """The processes whose working folder is inside `folder` (graded notebooks, kernels)."""
    found = []
    for p in psutil.process_iter(["cwd", "status"]):
        if (p.info["cwd"] or "").startswith(str(folder)) and p.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(p)
    return found


def stop_gradings() -> list:
    """Cancel the unfinished gradings and kill whatever they still run.

    Returns the names of the gradings that were stopped."""
    stopped = [name for name, (future, _, _) in _RUNS.items() if not future.done()]
    for name in stopped:
        _RUNS[name][2].set()
    empty = 0
    for _ in range(20):  # a grading thread may start its next notebook meanwhile
        procs = [p for name in stopped for p in _processes_under(_RUNS[name][1])]
        empty = 0 if procs else empty + 1
        if empty == 2:
            break
        for p in procs:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(procs, timeout=1)  # our own killed children stay zombies
        time.sleep(0.2)
    futures.wait([_RUNS[name][0] for name in stopped], timeout=10)
    return stopped


def test_stop_gradings_kills_what_an_unfinished_grading_runs(tmp_path, monkeypatch):
    """A session that ends before a background grading does is not kept waiting by it: its
    notebook runs are killed, the next one it starts too, and nothing is left running."""
    monkeypatch.setattr(sys.modules[__name__], "_RUNS", {})
    started = []

    def slow_grading(tmp, cancel):  # three "notebooks" of a minute each; ignores `cancel`
        for _ in range(3):
            p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], cwd=tmp)
            started.append(p)
            p.wait()
        return "finished"

    monkeypatch.setattr(sys.modules[__name__], "grade_course", slow_grading)
    start_gradings(["course"], tmp_path)
    deadline = time.time() + 10
    while not started and time.time() < deadline:
        time.sleep(0.05)
    t0 = time.time()
    assert stop_gradings() == ["course"]
    assert time.time() - t0 < 15
    assert not _processes_under(tmp_path), "a grading process survived stop_gradings"
    assert all(p.poll() is not None for p in started)
    assert _RUNS["course"][0].result(timeout=5) == "finished"  # its thread ran to the end
    assert stop_gradings() == []  # nothing left to stop


def _result(name: str, tmp_path_factory):
    start_gradings([name], tmp_path_factory.mktemp("gradings"))  # if conftest did not
    return _RUNS[name][0].result()


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """({student: {check: row}}, tmp folder, extras) of the hostile submissions' grading."""
    return _result("hostile", tmp_path_factory)


def grade_hostile(tmp: Path, cancel=None):
    """Grade every hostile submission once; return ({student: {check: row}}, tmp, extras)."""
    sol = tiny_course(tmp)
    lab = nbformat.read(str(tmp / "labs" / f"{LAB}.ipynb"), as_version=4)
    subs = tmp / "submissions"
    listener = Listener()
    students = hostile(sol, lab, listener.port)
    for student, nb in students.items():
        (subs / student).mkdir(parents=True)
        path = subs / student / f"{LAB}.ipynb"
        if isinstance(nb, str):
            path.write_text(nb, encoding="utf-8")
        else:
            nbformat.write(nb, str(path))
    before = {p: sha(p) for p in subs.rglob("*.ipynb")}
    checks_before = checks_digest()
    os.environ[SECRET_ENV] = "instructor-secret-" + secrets.token_hex(8)
    t0 = time.time() - 1
    try:
        rows = grade_submissions(subs, labs_dir=tmp / "labs", out=tmp / "gradebook.csv",
                                 solutions_dir=tmp / "solutions", jobs=4, log=lambda *a: None,
                                 cell_timeout=CELL_TIMEOUT, timeout=NB_TIMEOUT,
                                 max_output=MAX_OUTPUT, work_root=tmp / "work",
                                 memory=2 * 1024 ** 3, cancel=cancel)
    finally:
        secret = os.environ.pop(SECRET_ENV)
        listener.close()
    after = {p: sha(p) for p in subs.rglob("*.ipynb")}
    left = [p.info["pid"] for p in psutil.process_iter(["pid", "cwd", "create_time"])
            if p.info["create_time"] and p.info["create_time"] >= t0
            and (p.info["cwd"] or "").startswith(str(tmp / "work"))]
    assert not left, f"processes left running after grading: {left}"
    assert after == before, "a submitted file changed"
    assert sorted(p.name for p in subs.rglob("*")) == sorted(
        list(students) + [f"{LAB}.ipynb"] * len(before)), "files appeared"
    table = {}
    for r in rows:
        table.setdefault(r[0], {})[(r[1], r[2])] = dict(zip(COLUMNS, r))
    extras = {"received": listener.received, "secret": secret, "checks_before": checks_before,
              "checks_after": checks_digest(), "students": list(students)}
    return table, tmp, extras


def score(table, student):
    t = table[student]
    return {k[1]: (v["points"], v["status"]) for k, v in t.items() if k[0] == LAB and k[1] != "TOTAL"}


def reason(table, student, check):
    return table[student][(LAB, check)]["reason"]


def test_gradebook_file_and_feedback(graded):
    table, tmp, _ = graded
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
    table, _, _ = graded
    assert score(table, "blank") == {"softmax_with_temperature": (0, "failed"), "entropy": (0, "failed")}
    assert "not implemented yet" in reason(table, "blank", "entropy")


def test_edited_check_is_restored(graded):
    table, _, _ = graded
    assert score(table, "edited") == {"softmax_with_temperature": (0, "failed"), "entropy": (1, "passed")}
    r = reason(table, "edited", "softmax_with_temperature")
    assert r.startswith("check cell modified (check cell edited)")
    assert "check_softmax_with_temperature:" in r


def test_deleted_and_moved_checks_are_put_back(graded):
    table, _, _ = graded
    student = "deleted_moved"
    assert score(table, student) == {"softmax_with_temperature": (2, "passed"), "entropy": (1, "passed")}
    assert "check cell modified (check cell deleted)" in reason(table, student, "softmax_with_temperature")
    assert "check cell modified (check cell moved)" in reason(table, student, "entropy")


def test_monkeypatched_checks_earn_nothing(graded):
    table, _, _ = graded
    assert score(table, "monkeypatch") == {"softmax_with_temperature": (0, "failed"), "entropy": (0, "failed")}
    assert "(changes a module)" in reason(table, "monkeypatch", "entropy")


def test_swallowed_check_failure_earns_nothing(graded):
    table, _, _ = graded
    assert score(table, "swallow")["softmax_with_temperature"] == (0, "failed")
    assert "set_custom_exc" in reason(table, "swallow", "softmax_with_temperature")


def test_malformed_json(graded):
    table, _, _ = graded
    assert score(table, "malformed") == {"softmax_with_temperature": (0, "invalid"), "entropy": (0, "invalid")}
    assert "not valid JSON" in reason(table, "malformed", "entropy")


def test_infinite_loop_hits_the_cell_limit_and_the_rest_is_graded(graded):
    table, _, _ = graded
    assert score(table, "loop") == {"softmax_with_temperature": (0, "error"), "entropy": (1, "passed")}
    assert f"time limit of {CELL_TIMEOUT} s per cell" in reason(table, "loop", "softmax_with_temperature")


def test_os_exit_scores_what_ran(graded):
    table, _, _ = graded
    assert score(table, "exit") == {"softmax_with_temperature": (2, "passed"), "entropy": (0, "error")}
    assert "the kernel died in cell 3" in reason(table, "exit", "entropy")


def test_huge_output_is_cut(graded):
    table, _, _ = graded
    assert score(table, "huge") == {"softmax_with_temperature": (2, "passed"), "entropy": (0, "error")}
    assert "printed too much output" in reason(table, "huge", "entropy")


def test_import_error_is_readable(graded):
    table, _, _ = graded
    assert score(table, "importerr") == {"softmax_with_temperature": (0, "failed"), "entropy": (0, "failed")}
    r = reason(table, "importerr", "softmax_with_temperature")
    assert "NameError" in r and "ModuleNotFoundError: No module named 'kdlab_no_such_module'" in r


def test_notebook_time_limit(graded):
    table, _, _ = graded
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
    graded = restore.graded_notebook(got, checks, {c.name: [1] * len(c.probes) for c in checks})
    nbformat.validate(nbformat.from_dict(graded))


def test_graded_check_runs_only_probes_with_secret_seeds():
    chk = restore.Check("entropy", 1, {"source": "kd.checks.check_entropy(entropy)"},
                        hidden=restore.parse_calls("kd.checks.check_entropy(entropy, C=7)", "hidden"))
    src = restore.graded_source(chk, [111, 222])
    assert "kd.checks" not in src
    assert "_kdlab_registry.emit('entropy', entropy, 111, {})" in src
    assert "_kdlab_registry.emit('entropy', entropy, 222, {'C': 7})" in src
    for bad in ("print('x')", "kd.checks.check_entropy(entropy, C=len('x'))",
                "kd.checks.check_entropy(entropy(p))"):
        with pytest.raises(notebook_io.NotebookError, match="check"):
            restore.parse_calls(bad, "cell")


# ------------------------------------------------------------------ the nine attacks and the control

ATTACK_REASONS = {  # what the reason of each attack must say (readable, not a crash)
    "a1_allclose": "assigning to torch.allclose",
    "a2_liar": "check_softmax_with_temperature:",
    "a3_transformer": "input_transformers_post",
    "a3_transformer_hidden": "probe reported nothing",
    "a4_forge": "check_softmax_with_temperature: not implemented yet",
    "a5_frames": "sys._getframe",
    "a6_reference": "uses the course's reference implementation",
    "a6_reference_hidden": "uses the course's reference implementation",
    "a7_solutions": "no solutions found",
    "a8_rewrite_checks": "name 'softmax_with_temperature' is not defined",
    "a9_spy": "no network",
}


@pytest.mark.parametrize("attack", sorted(ATTACK_REASONS))
def test_attack_scores_zero_with_a_readable_reason(graded, attack):
    table, _, _ = graded
    got = score(table, attack)
    assert got == {"softmax_with_temperature": (0, "failed"), "entropy": (0, "failed")}, got
    assert ATTACK_REASONS[attack] in reason(table, attack, "softmax_with_temperature")


def test_control_full_marks_and_hidden_test_runs(graded):
    table, _, _ = graded
    assert score(table, "full") == {"softmax_with_temperature": (2, "passed"), "entropy": (1, "passed")}
    # passes the public check (float32 inputs) but the hidden one gives float64 logits
    assert score(table, "float32_only") == {"softmax_with_temperature": (0, "failed"), "entropy": (1, "passed")}
    assert reason(table, "float32_only", "softmax_with_temperature").startswith(
        "hidden test: check_softmax_with_temperature: float64 logits gave a float32 result")


def test_nothing_leaks_and_nothing_reaches_the_network(graded):
    table, tmp, extras = graded
    assert extras["received"] == [], "a submission reached a server on the grader's loopback"
    spy = reason(table, "a9_spy", "softmax_with_temperature")
    assert "instructor-secret" not in spy and "no instructor secret" in spy
    assert "submissions" not in spy, spy[:500]
    for md in (tmp / "feedback").glob("*.md"):
        text = md.read_text()
        assert SOLUTION_MARKER not in text, f"{md.name} shows the solution"
        assert extras["secret"] not in text
        for other in extras["students"]:
            if md.stem != other:
                assert f"secret-{other}-text" not in text, f"{md.name} shows {other}'s notebook"


def test_checks_on_disk_unchanged(graded):
    _, _, extras = graded
    assert extras["checks_after"] == extras["checks_before"]


def test_memory_limit_is_out_of_memory(graded):
    table, _, _ = graded
    assert score(table, "hog") == {"softmax_with_temperature": (2, "passed"), "entropy": (0, "error")}
    assert reason(table, "hog", "entropy").startswith("out of memory")


def test_grader_refuses_without_bubblewrap(tmp_path, monkeypatch):
    from kdlab.grading import sandbox
    from kdlab.grading.__main__ import main
    (tmp_path / "subs" / "ann").mkdir(parents=True)
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    with pytest.raises(sandbox.SandboxError, match="make grade-deps"):
        sandbox.preflight()
    assert main(["grade", str(tmp_path / "subs"), "--out", str(tmp_path / "g.csv")]) == 2


def test_unsandboxed_rows_say_so(tmp_path):
    sol = tiny_course(tmp_path)
    (tmp_path / "subs" / "ann").mkdir(parents=True)
    nbformat.write(sol, str(tmp_path / "subs" / "ann" / f"{LAB}.ipynb"))
    rows = grade_submissions(tmp_path / "subs", labs_dir=tmp_path / "labs", out=tmp_path / "g.csv",
                             solutions_dir=tmp_path / "solutions", jobs=1, log=lambda *a: None,
                             sandbox=False)
    assert all(r[6].startswith("unsandboxed") for r in rows)
    assert [r[3] for r in rows if r[2] != "TOTAL"] == [2, 1]


def _sleepy_class(tmp_path, students=3):
    """A tiny lab and `students` submissions that each sleep 60 s after the first check."""
    sol = tiny_course(tmp_path)
    sleepy = cells_with(sol, insert_after={"check-softmax": ["import time\ntime.sleep(60)"]})
    for i in range(students):
        (tmp_path / "subs" / f"s{i}").mkdir(parents=True)
        nbformat.write(sleepy, str(tmp_path / "subs" / f"s{i}" / f"{LAB}.ipynb"))
    return {p: sha(p) for p in (tmp_path / "subs").rglob("*.ipynb")}


def _wait_for_kernel(folder: Path, limit: float = 60) -> None:
    deadline = time.time() + limit
    while time.time() < deadline:
        if any("ipykernel" in " ".join(p.cmdline()) for p in _processes_under(folder)):
            return
        time.sleep(0.2)
    raise AssertionError(f"no kernel started under {folder} within {limit} s")


def test_cancelled_grading_stops_its_notebooks_and_writes_nothing(tmp_path):
    """Setting the cancel event kills the running notebook, starts no other, raises
    GradingCancelled, writes no gradebook and leaves the submissions as they were."""
    before = _sleepy_class(tmp_path)
    cancel = threading.Event()
    work = tmp_path / "work"
    t0 = time.time()

    def cancel_when_running():
        _wait_for_kernel(work)
        cancel.set()

    threading.Thread(target=cancel_when_running, daemon=True).start()
    with pytest.raises(GradingCancelled, match="no gradebook"):
        grade_submissions(tmp_path / "subs", labs_dir=tmp_path / "labs", out=tmp_path / "g.csv",
                          solutions_dir=tmp_path / "solutions", jobs=1, log=lambda *a: None,
                          sandbox=False, cancel=cancel, work_root=work)
    assert time.time() - t0 < 45, "the grading ran on after it was cancelled"
    assert not _processes_under(work), "a notebook of the cancelled grading is still running"
    assert not (tmp_path / "g.csv").exists()
    assert {p: sha(p) for p in (tmp_path / "subs").rglob("*.ipynb")} == before


def test_ctrl_c_on_the_grader_stops_at_once(tmp_path):
    """Ctrl-C (SIGINT) on `python -m kdlab.grading grade` kills the running notebooks instead
    of grading the rest of the class: exit code 130, a message, nothing left running."""
    import signal
    before = _sleepy_class(tmp_path)
    cmd = [sys.executable, "-m", "kdlab.grading", "grade", str(tmp_path / "subs"), "--out",
           str(tmp_path / "g.csv"), "--labs", str(tmp_path / "labs"), "--solutions",
           str(tmp_path / "solutions"), "--jobs", "1", "--no-sandbox"]
    # the executed copies (and so the kernels' folders) go to the system temp folder: here
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        _wait_for_kernel(tmp_path / "tmp")
        t0 = time.time()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert time.time() - t0 < 20, "the grader went on grading after Ctrl-C"
    assert proc.returncode == 130, out
    assert "interrupted" in out and "no gradebook was written" in out, out
    assert not _processes_under(tmp_path / "tmp"), "a notebook is still running after Ctrl-C"
    assert not (tmp_path / "g.csv").exists()
    assert {p: sha(p) for p in (tmp_path / "subs").rglob("*.ipynb")} == before


def grade_course(tmp: Path, cancel=None):
    """Every lab's solution and its unfilled lab, graded in the sandbox (2 at a time).

    This is also the suite's only run of the solution notebooks (pytest's testpaths leave out
    solutions/): the solutions' executed copies are kept, and their cell records returned.
    Returns (gradebook rows, {lab: (cell records, number of code cells)}).
    """
    rows, cells = [], {}
    for who, folder in (("solution", ROOT / "solutions"), ("blank", ROOT / "labs")):
        subs = tmp / who / "submissions"
        (subs / who).mkdir(parents=True)
        for solution in SOLUTIONS:
            src = folder / solution.name
            assert src.exists(), f"{src} missing: run make labs"
            shutil.copyfile(src, subs / who / solution.name)
        rows += grade_submissions(subs, labs_dir=ROOT / "labs", out=tmp / who / "gradebook.csv",
                                  solutions_dir=ROOT / "solutions", jobs=2, log=lambda *a: None,
                                  cell_timeout=600, timeout=1200, keep=who == "solution",
                                  work_root=tmp / who / "work", cancel=cancel)
    for nb_path in (tmp / "solution" / "work").glob("kdlab-grade-*/*.ipynb"):
        nb = nbformat.read(str(nb_path), as_version=4)
        cells[nb_path.stem] = (read_cells(nb_path.with_name("cells.jsonl")),
                               sum(c.cell_type == "code" for c in nb.cells))
    return rows, cells


@pytest.fixture(scope="module")
def course_graded(tmp_path_factory):
    """(rows, cell records) of the grading of the course's solutions and unfilled labs."""
    return _result("course", tmp_path_factory)


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_course_solution_full_marks_and_lab_zero(solution, course_graded):
    """Grading solutions/NN gives every check its points; grading the unfilled labs/NN, 0."""
    rows, _ = course_graded
    checks = [r for r in rows if r[2] != "TOTAL" and r[1] == solution.stem]
    assert {r[0] for r in checks} == {"solution", "blank"}, "the lab has no check cells"
    for r in checks:
        if r[0] == "solution":
            assert (r[3], r[5]) == (r[4], "passed"), f"solution {r[1]} {r[2]}: {r[6]}"
        else:
            assert (r[3], r[5]) == (0, "failed"), f"blank {r[1]} {r[2]}: {r[5]} {r[6]}"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_course_solution_runs_every_cell(solution, course_graded):
    """Every code cell of solutions/NN runs without error (quick budget, in the sandbox).

    The suite's run of each solution notebook: the course grading above executes it with
    nbval, so pytest does not execute solutions/ a second time (testpaths = tests)."""
    records, n_code = course_graded[1].get(solution.stem, ([], None))
    assert n_code is not None, f"{solution.name} was not graded"
    failed = [f"cell {r['cell']} (id {r['id']!r}) raised "
              + (f"{r['ename']}: {r['evalue']}" if r["ename"] else r["error"])[:500]
              for r in records if not r["ok"]]
    assert not failed, f"{solution.name}: " + "; ".join(failed)
    assert len(records) == n_code, (f"{solution.name}: {len(records)} of {n_code} code cells "
                                    "ran; the run stopped early")


def test_sandbox_binds_only_the_python_installation(tmp_path, monkeypatch):
    """A folder that is merely on sys.path (the grader's script folder, /tmp) is not shown."""
    from kdlab.grading import sandbox
    (tmp_path / "other_student.ipynb").write_text("secret")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend("/tmp")
    for p in sandbox._python_paths():
        assert p not in (Path("/"), Path("/tmp")) and p not in tmp_path.parents and p != tmp_path
        assert not str(tmp_path).startswith(str(p) + "/"), p


def test_sandbox_data_cache_is_readable_and_read_only(tmp_path):
    """Kernels read MNIST from the grader's prepared cache (no extraction per notebook), and no
    submission can write into it (it would be what the next submission reads)."""
    from kdlab.grading import sandbox
    site = sandbox.kdlab_copy(tmp_path / "site")
    assert (site / sandbox.DATA_CACHE / "MNIST" / "raw" / "t10k-images-idx3-ubyte").is_file()
    rt = tmp_path / "rt"
    rt.mkdir()
    argv = sandbox.kernel_argv(rt, site, {})
    cut = argv.index("--", argv.index("--clearenv"))
    code = ("import os, time, kdlab as kd\n"
            "t0 = time.perf_counter(); x, y = kd.data.mnist('test')\n"
            "print('test images', len(x), 'in', round(time.perf_counter() - t0, 2))\n"
            "cache = os.environ['KDLAB_CACHE']\n"
            "try:\n"
            "    open(os.path.join(cache, 'MNIST', 'raw', 't10k-labels-idx1-ubyte'), 'r+b').write(b'x')\n"
            "    print('WROTE the cache')\n"
            "except OSError as e:\n"
            "    print('read-only:', e.errno)\n")
    p = subprocess.run(argv[:cut + 1] + [sys.executable, "-c", code], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "test images 10000" in p.stdout and "read-only: 30" in p.stdout, p.stdout
