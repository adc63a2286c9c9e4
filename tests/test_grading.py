"""Grading: hostile submissions of a small lab built from real checks, and the course's labs.

One grading run covers all the hostile fixtures (they are graded in parallel); each test
then reads its student's rows from the gradebook CSV and the feedback files (the files an
instructor gets). Every submitted file must be byte-identical afterwards. The sandbox's
own defences are tested apart from the screen, by running code in it directly.
"""
import csv
import hashlib
import json
import os
import pickle
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures
from pathlib import Path

import nbformat
import psutil
import pytest
import torch
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

import kdlab.checks
from kdlab.authoring import generator, make_labs
from kdlab.grading import markers, notebook_io, restore
from kdlab.grading.gradebook import GradingCancelled, grade_submissions
from kdlab.grading.runner import read_cells, runner_memory

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob(markers.NOTEBOOK_GLOB))
LAB = "01_tiny"
# An honest tiny notebook takes about 7 s on an idle machine (its slowest cell 3 s); it is
# graded in the background while the rest of the suite runs, at the suite's busiest (a fresh
# clone's honest control once took over 40 s), so the limits leave a 10x margin.
# The loop and hang fixtures cost these times (the hang's four cells of 25 s pass the notebook's).
CELL_TIMEOUT, NB_TIMEOUT, MAX_OUTPUT = 30, 90, 200_000

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


def cells_with(nb, replace=None, insert_after=None, delete=(), meta=None):
    """A copy of nb: sources replaced by id, new code cells inserted after ids (with
    metadata `meta`), ids deleted."""
    out = []
    for c in nb.cells:
        if c.id in delete:
            continue
        c = nbformat.from_dict(dict(c))
        if replace and c.id in replace:
            c.source = replace[c.id]
        out.append(c)
        for i, src in enumerate((insert_after or {}).get(c.id, [])):
            out.append(new_code_cell(src, id=f"student-{c.id}-{i}", metadata=meta or {}))
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
# "ex-softmax" / "ex-entropy" replace the exercise cells; "+setup" / "+softmax" add a cell
# after the setup cell / after the softmax check; "meta" gives that cell metadata.
ALIAS_PATCH = """m = kd
m.checks._probe._is_reference_code = lambda filename: False
m.checks._probe.provenance = lambda obj: []"""
REFERENCE_ANSWERS = {"ex-softmax": "softmax_with_temperature = m.losses.soft_targets",
                     "ex-entropy": "entropy = m.losses.entropy"}
IN_THREAD = {"ex-softmax": "def softmax_with_temperature(logits, T=1.0):\n"
                           "    return pool.submit(m.losses.soft_targets, logits, T).result()",
             "ex-entropy": "def entropy(p):\n    return pool.submit(m.losses.entropy, p).result()"}
GET_PARENT = r"""import ast, json, re
from IPython.display import display
m = kd
ip = get_ipython()
class Stop(BaseException):
    pass
def _clean(d):
    if isinstance(d, dict):
        d.pop("_provenance", None)
        if "reference_calls" in d:
            d["reference_calls"] = []
        for v in d.values():
            _clean(v)
    elif isinstance(d, list):
        for v in d:
            _clean(v)
def _forge(ref):
    code = ip.kernel.get_parent()["content"]["code"]
    for name, seed, params in re.findall(r"emit\('(\w+)', \w+, (\d+), (\{.*?\})\)", code):
        data = m.checks._registry.probe_data(m.checks.CHECKS[name], ref, int(seed), ast.literal_eval(params))
        _clean(data)
        display({"application/vnd.kdlab.probe+json": json.dumps(
            {"check": name, "seed": int(seed), "params": ast.literal_eval(params), "data": data})}, raw=True)
    raise Stop()
def softmax_with_temperature(logits, T=1.0):
    _forge(m.losses.soft_targets)
def entropy(p):
    _forge(m.losses.entropy)"""
TRANSFORMER = r"""ip = get_ipython()
def _rewrite(lines):
    src = "".join(lines)
    if "_kdlab_registry.emit(" in src:
        src = ("import kdlab.checks._probe as P\nP.provenance = lambda o: []\n"
               "P._is_reference_code = lambda f: False\n"
               + src.replace("softmax_with_temperature,", "kd.losses.soft_targets,")
                    .replace("entropy,", "kd.losses.entropy,"))
    return src.splitlines(True)
ip.input_transformer_manager.cleanup_transforms.insert(0, _rewrite)"""
LEAK = """import pathlib
root = pathlib.Path(kd.__file__).parent
leak = [str(p) + ": " + p.read_text()[:400] for p in sorted(root.glob("grading/*.py"))]
leak += [kd.__file__, torch.__file__, str(pathlib.Path.home())]
class AssertionError(BaseException):
    pass
def softmax_with_temperature(logits, T=1.0):
    raise AssertionError("LEAK " + " || ".join(leak))"""
FILL = """written = {}
for where in ("/tmp", "/dev/shm"):
    n = 0
    try:
        for i in range(24):  # 1.5 GB in 64 MB files
            torch.save(torch.zeros(16 * 1024 ** 2), f"{where}/fill-{i}.pt")
            n += 64
    except Exception:
        pass
    written[where] = n"""
RUNTIME_DISK = """import os, sys
folder = os.path.dirname(sys.argv[sys.argv.index("-f") + 1])
n = 0
try:
    for i in range(20):  # 1.2 GB
        with open(os.path.join(folder, f"fill-{i}.bin"), "wb") as f:
            f.write(b"x" * 64 * 1024 ** 2)
        n += 64
except OSError:
    pass
written = {"runtime": n}"""
FORK = """import time
written = {"processes": 0}
ctx = torch.multiprocessing.get_context("fork")
procs = []
try:
    for i in range(300):
        p = ctx.Process(target=time.sleep, args=(30,))
        p.start()
        procs.append(p)
        written["processes"] = len(procs)
except Exception:
    pass"""
REPORT = "def entropy(p):\n    raise RuntimeError(f'WROTE {written}')"
# --- full Python: the screen is a courtesy, not the defence. Every attack below passes it
# (getattr through an alias reaches the builtins, then exec runs any code in the notebook's
# namespace) and must still earn nothing.


def full_python(code: str) -> str:
    """A cell that runs `code` in the notebook's namespace past the screen."""
    return ("g = getattr\nb = g(print, '__self__')\n"
            f"g(b, 'exec')({code!r}, g(b, 'globals')())")


# the registry's probe of entropy replaced by one that probes a course helper (the figures'
# entropy) instead of the student's blank function
REGISTRY_SWAP = full_python("""import dataclasses
import numpy as np
import kdlab.checks as C
from kdlab.plot import probabilities
real = C.CHECKS["entropy"]
helper = lambda p: torch.from_numpy(np.asarray(probabilities.entropy_nats(p.detach()))).to(p.dtype)
C.CHECKS["entropy"] = dataclasses.replace(real, probe=lambda obj, inp: real.probe(helper, inp))
""")
# a wrong entropy (bits) that, when first probed, reads the running cell's text (inputs,
# token), displays a forged record computed by other code, and makes the real record unreadable
FORGE_RECORD = full_python("""import ast, json
from IPython.display import display
import kdlab.checks as C
from kdlab.checks import _probe, _registry
FORGED = []
def entropy(p):
    if not FORGED:
        FORGED.append(1)
        src = get_ipython().kernel.get_parent()["content"]["code"]
        for node in ast.walk(ast.parse(src)):
            args = getattr(node, "args", None) or []
            if isinstance(node, ast.Call) and args and getattr(args[0], "value", None) == "entropy":
                consts = [a.value for a in args if isinstance(a, ast.Constant)]
                inputs = _probe.decode(json.loads(consts[-1]))
                rec = {"check": "entropy", "data": _registry.probe_data(
                    C.CHECKS["entropy"], lambda q: -torch.xlogy(q, q).sum(-1), inputs=inputs)}
                if len(consts) == 3:
                    rec["token"] = consts[1]
                display({_probe.MIME: json.dumps(rec)}, raw=True)
        _probe.to_json = lambda d: "{not json"
    return -(p * torch.log2(p)).nan_to_num().sum(-1)
""")
# widget (comm) messages: 4 MB of them, far past the output limit
COMM_FLOOD = full_python("""import comm
c = comm.create_comm(target_name="kdlab-flood", data={})
for i in range(40):
    c.send(data={"x": "y" * 100_000})
""")
# what the kernel can read of its own process, its mounts and its connection file: the
# paths that are not the sandbox's own go into the softmax check's feedback, the connection
# file's key and socket path into the entropy check's
HOST_PEEK = full_python(r"""import json, os, re, sys
texts = {}
conn_file = sys.argv[sys.argv.index("-f") + 1] if "-f" in sys.argv else "/opt/kdlab-kernel.json"
for f in ("/proc/self/mountinfo", "/proc/1/mountinfo", "/proc/self/mounts", "/proc/self/environ",
          "/proc/self/cmdline", "/proc/1/cmdline", conn_file):
    try:
        texts[f] = open(f, errors="replace").read().replace("\0", " ")
    except OSError as e:
        texts[f] = ""
texts["sys"] = " ".join(sys.path + sys.argv + getattr(sys, "orig_argv", []) + [sys.prefix, sys.base_prefix])
texts["tmp"] = " ".join("/tmp/" + n for n in os.listdir("/tmp"))
texts["env"] = " ".join(f"{k}={v}" for k, v in os.environ.items())
own = ("/opt/kdlab-", "/proc", "/dev", "/usr", "/etc", "/bin", "/lib", "/sys", "/tmp/kdlab-rt/")
paths = sorted({p for t in texts.values() for p in re.findall(r"/[\w.+~-]+(?:/[\w.+~-]+)*", t)
                if not p.startswith(own) and p not in ("/tmp", "/tmp/kdlab-rt")}, key=len)
try:
    conn = json.loads(texts[conn_file])
except ValueError:
    conn = {}
read = ",".join(os.path.basename(f) for f, t in texts.items() if t and f.startswith("/"))
def softmax_with_temperature(logits, T=1.0):
    raise RuntimeError("HOST " + " ".join(paths))
def entropy(p):
    raise RuntimeError(f"KEY {conn.get('key')} IP {conn.get('ip')} READ {read}")
""")
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
    # 3. an input transformer rewriting the check cells (plainly, and past a syntax screen)
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
          "grader": {"check": "softmax_with_temperature"}, "ok": True, "error": "", "ename": "",
          "evalue": "", "probes": [], "text": "PASSED check_softmax_with_temperature",
          "timed_out": False, "kernel_died": False, "dead_at_start": False, "output_limit": False,
          "seconds": 0.1}
hits = []
for pattern in ("/tmp/**/cells.jsonl", os.path.dirname(os.getcwd()) + "/*/cells.jsonl", "cells.jsonl"):
    for f in glob.glob(pattern, recursive=True):
        try:
            with open(f, "a") as h:
                h.write(json.dumps(forged) + "\\n")
            hits.append(f)
        except OSError:
            pass
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
    # --- second round: points without an answer
    # an alias (m = kd) past a module-name rule: patch the probe's reference recorder, answer
    # with the course's references
    "b1_alias": {"+setup": ALIAS_PATCH, **REFERENCE_ANSWERS},
    # the reference called from a thread (a per-thread call recorder does not see it)
    "b2_thread": {"+setup": "import concurrent.futures\nm = kd\npool = concurrent.futures.ThreadPoolExecutor(2)",
                  **IN_THREAD},
    # unittest.mock patches the recorder
    "b3_mock": {"+setup": "from unittest import mock\nm = kd\n"
                          "mock.patch.object(m.checks._probe, '_is_reference_code', lambda f: False).start()\n"
                          "mock.patch.object(m.checks._probe, 'provenance', lambda o: []).start()",
                **REFERENCE_ANSWERS},
    # asyncio reaches a thread pool too
    "b4_asyncio": {"+setup": "import asyncio\nm = kd\n"
                             "pool = asyncio.base_events.concurrent.futures.ThreadPoolExecutor(2)",
                   **IN_THREAD},
    # code in the body of %%time (and %time), which a screen of the cell's syntax tree skips
    "b5_time_magic": {"+setup": "%%time\n" + ALIAS_PATCH,
                      "ex-softmax": "%time softmax_with_temperature = m.losses.soft_targets",
                      "ex-entropy": "%%time\nentropy = m.losses.entropy"},
    # %config runs its value with exec in the notebook's namespace
    "b6_config": {"+setup": "%config Completer.greedy = bool([globals().update(m=kd), "
                            "setattr(kd.checks._probe, 'provenance', lambda o: []), "
                            "setattr(kd.checks._probe, '_is_reference_code', lambda f: False)])",
                  **REFERENCE_ANSWERS},
    # a student cell dressed as a check cell (kdlab.check metadata)
    "b7_check_metadata": {"+setup": ALIAS_PATCH, "meta": {"kdlab": {"check": "extra_credit", "points": 0}},
                          **REFERENCE_ANSWERS},
    # IPython's input transformer manager rewrites the check cells to probe the references
    "b8_transformer_manager": {"+setup": TRANSFORMER},
    # read the check cell's code (seeds, hidden parameters) from the kernel, display forged
    # probe results computed with the references, then stop the real probe with a
    # BaseException subclass
    "b9_get_parent": {"ex-softmax": GET_PARENT, "ex-entropy": "# entropy is defined above"},
    # --- leaks: an AssertionError that is a BaseException, carrying what the kernel can read
    "l1_leak": {"ex-softmax": LEAK},
    # --- denial of service (checks right; the numbers come back through the entropy check)
    "d1_tmpfs": {"ex-softmax": exercise("softmax", SOFTMAX_OK), "+softmax": FILL, "ex-entropy": REPORT},
    "d2_runtime_disk": {"ex-softmax": exercise("softmax", SOFTMAX_OK), "+softmax": RUNTIME_DISK,
                        "ex-entropy": REPORT},
    "d3_fork": {"ex-softmax": exercise("softmax", SOFTMAX_OK), "+softmax": FORK, "ex-entropy": REPORT},
    # --- full Python (past the screen): the registry's probe swapped; a forged record beside
    # an unreadable real one; a flood of widget messages
    "c1_registry_swap": {"+setup": REGISTRY_SWAP},
    "c2_forged_record": {"ex-entropy": FORGE_RECORD},
    "c3_comm_flood": {"ex-softmax": exercise("softmax", SOFTMAX_OK), "+softmax": COMM_FLOOD,
                      "ex-entropy": exercise("entropy", ENTROPY_OK)},
    # --- the host's paths and the kernel's key, read in the kernel and shown in the feedback
    # (two students: each kernel's key is its own)
    "h1_host_paths": {"ex-softmax": HOST_PEEK, "ex-entropy": "# defined above"},
    "h2_host_paths": {"ex-softmax": HOST_PEEK, "ex-entropy": "# defined above"},
    # --- the gradebook: a formula, forged markdown headings
    "g1_formula": {"ex-softmax": exercise("softmax", SOFTMAX_OK),
                   "ex-entropy": 'def entropy(p):\n    raise AssertionError(\'=HYPERLINK("http://x", "full marks")\')'},
    "g2_fences": {"ex-softmax": exercise("softmax", SOFTMAX_OK),
                  "ex-entropy": "def entropy(p):\n    raise ValueError('```\\n\\n# FORGED full marks\\n\\n```')"},
}
# folder names a file system allows and a gradebook must survive (the first starts a formula)
ODD_NAMES = {"g1_formula": "=cmd|' -C calc'!A0", "g3_latin1": os.fsdecode(b"caf\xe9-g3"),
             "g4_long": "g4" + "x" * 252, "g5_space": "ann b", "g5_underscore": "ann_b"}


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
        "exit": cells_with(lab, replace=ok, insert_after={"check-softmax": [  # a segfault
            "import numpy as np\nnp.lib.stride_tricks.as_strided(np.zeros(1), shape=(10 ** 7,), strides=(10 ** 8,)).sum()"]}),
        "huge": cells_with(lab, replace=ok, insert_after={"check-softmax": ["while True:\n    print('x' * 1000)"]}),
        "importerr": cells_with(lab, replace={**ok, "setup": "from kdlab import no_such_helper\n" + SETUP}),
        "hang": cells_with(lab, replace=ok, insert_after={"check-softmax": ["import time\ntime.sleep(25)"] * 4}),
        "hog": cells_with(lab, replace=ok, insert_after={"check-softmax": [
            "big = torch.ones(6 * 1024 ** 3 // 4)  # 6 GB"]}),
        "float32_only": cells_with(lab, replace={**ok, "ex-softmax": exercise("softmax", SOFTMAX_OK.replace(
            "logits / T", "logits.float() / T"))}),
    }
    for name, cells in ATTACKS.items():
        cells = {k: v.replace("PORT", str(port)).replace("SECRET_ENV", SECRET_ENV) if isinstance(v, str) else v
                 for k, v in cells.items()}
        extra = {"setup": [cells.pop("+setup")]} if "+setup" in cells else {}
        if "+softmax" in cells:
            extra["check-softmax"] = [cells.pop("+softmax")]
        subs[name] = cells_with(lab, replace=cells, insert_after=extra, meta=cells.pop("meta", None))
    for name in ODD_NAMES:  # honest students whose folder names are odd
        subs.setdefault(name, cells_with(lab, replace=ok))
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
# leaves a core idle most of the time); a fixture waits for its grading's result. Each runs in
# a process of its own (a grading seeds torch's generator and sets environment variables: in
# a thread it would change them under the tests of the same process), watched by a daemon
# thread, and conftest.py calls stop_gradings() when the session ends: a session stopped
# early (Ctrl-C, -x) does not wait for them.
GRADINGS = {"hostile": "grade_hostile", "course": "grade_course"}  # name -> function here
_RUNS: dict = {}  # name -> (Future, folder, cancel event)
# Under pytest-xdist the workers of one run share a folder (conftest.py): the first worker to
# claim a grading runs it and writes its result there ("<name>.result"), and a test of that
# grading in another worker reads it from there instead of grading a second time.
SHARED: Path | None = None


def claim(name: str, shared: Path) -> bool:
    """Claim the grading `name` for this process in the workers' shared folder: True for the
    first claimant only (the file is created atomically)."""
    try:
        fd = os.open(shared / f"{name}.owner", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


def write_outcome(path: Path, name: str, result) -> None:
    """Write what `result()` returns, or the exception it raises, to `path` (atomically): the
    record a grading hands to the process or worker that reads it (``read_outcome``)."""
    try:
        data = pickle.dumps(("ok", result()))
    except BaseException as e:  # noqa: BLE001 - handed on to the waiting tests
        try:
            data = pickle.dumps(("error", e))
        except Exception:  # noqa: BLE001 - an exception pickle cannot carry
            data = pickle.dumps(("error", RuntimeError(f"grading {name} failed: {e!r}")))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def read_outcome(path: Path):
    """The result written by ``write_outcome`` at `path`; its exception is raised here."""
    status, value = pickle.loads(path.read_bytes())
    if status == "error":
        raise value
    return value


def _publish(name: str, future, shared: Path) -> None:
    """Write a finished grading's result (or its exception) where the other workers read it."""
    write_outcome(shared / f"{name}.result", name, future.result)


def _shared_result(name: str):
    """The result of a grading another worker of this run claimed (waits for it)."""
    owner = int((SHARED / f"{name}.owner").read_text() or 0)
    result = SHARED / f"{name}.result"
    while not result.exists():
        assert psutil.pid_exists(owner), f"the worker grading {name!r} (pid {owner}) is gone"
        time.sleep(0.5)
    return read_outcome(result)


def start_gradings(names, base: Path, shared: Path | None = None) -> None:
    """Start the named gradings (keys of GRADINGS) in the background, each in a process of its
    own in a folder under base; with `shared` (xdist workers' folder), write each result there
    when it is done."""
    for name in names:
        if name not in _RUNS:
            tmp = base / name
            tmp.mkdir(parents=True)
            future, cancel = futures.Future(), threading.Event()

            def work(name=name, tmp=tmp, future=future, cancel=cancel):
                try:
                    future.set_result(_grade_in_a_process(GRADINGS[name], tmp, cancel))
                except BaseException as e:  # noqa: BLE001 - the waiting fixture re-raises it
                    future.set_exception(e)

            if shared is not None:
                future.add_done_callback(lambda f, name=name: _publish(name, f, shared))
            threading.Thread(target=work, name=f"grading-{name}", daemon=True).start()
            _RUNS[name] = (future, tmp, cancel)


_IN_A_PROCESS = """
import sys
from pathlib import Path
import torch
torch.set_num_threads(1)
sys.path.insert(0, sys.argv[1])
import test_grading
tmp = Path(sys.argv[3])
test_grading.write_outcome(tmp / "result.pickle", sys.argv[2],
                           lambda: getattr(test_grading, sys.argv[2])(tmp))
"""


def _die_with_parent():
    """In the child, before Python starts: killed when the process that started it ends (a
    test run stopped by a signal leaves no grading behind; as a thread it died with it)."""
    import ctypes
    import signal
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _grade_in_a_process(function: str, tmp: Path, cancel: threading.Event):
    """Run this module's `function`(tmp) in a new Python process (working folder tmp) and
    return its result; setting `cancel` kills it (stop_gradings also kills what it started)."""
    log = tmp / "grading.log"
    with open(log, "wb") as out:
        p = subprocess.Popen([sys.executable, "-c", _IN_A_PROCESS, str(Path(__file__).parent),
                              function, str(tmp)], cwd=tmp, stdout=out, stderr=subprocess.STDOUT,
                             preexec_fn=_die_with_parent)
    while p.poll() is None:
        if cancel.wait(0.5):
            p.kill()
            p.wait()
            raise RuntimeError(f"{function} was stopped before it finished")
    result = tmp / "result.pickle"
    if not result.exists():
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{function} ended (exit code {p.returncode}) without a result:\n{tail}")
    return read_outcome(result)


def running_gradings() -> list:
    """The names of the gradings this process started that have not finished."""
    return [name for name, (future, _, _) in _RUNS.items() if not future.done()]


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


def slow_grading(tmp):
    """A stand-in grading for the test below: three "notebooks" of a minute each, one after
    the other, their pids written to tmp/started."""
    for _ in range(3):
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], cwd=tmp)
        with open(tmp / "started", "a") as f:
            f.write(f"{p.pid}\n")
        p.wait()
    return "finished"


def test_stop_gradings_kills_what_an_unfinished_grading_runs(tmp_path, monkeypatch):
    """A session that ends before a background grading does is not kept waiting by it: its
    process and the notebook runs it started are killed, and nothing is left running."""
    monkeypatch.setattr(sys.modules[__name__], "_RUNS", {})
    monkeypatch.setitem(GRADINGS, "slow", "slow_grading")
    start_gradings(["slow"], tmp_path)
    started = tmp_path / "slow" / "started"
    deadline = time.time() + 60
    while not started.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert started.exists(), "the grading process did not start its first notebook"
    pids = [int(x) for x in started.read_text().split()]
    t0 = time.time()
    assert stop_gradings() == ["slow"]
    assert time.time() - t0 < 50  # what it stops would take 60 s each
    assert not _processes_under(tmp_path), "a grading process survived stop_gradings"
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                   for pid in pids)
    with pytest.raises(RuntimeError, match="stopped before it finished"):
        _RUNS["slow"][0].result(timeout=5)  # its watching thread ended too
    assert stop_gradings() == []  # nothing left to stop


def test_a_grading_process_dies_with_the_test_run_that_started_it(tmp_path):
    """A test run killed by a signal (no teardown runs) leaves no grading process behind."""
    script = (f"import os, signal, sys, time\nsys.path.insert(0, {str(Path(__file__).parent)!r})\n"
              "import test_grading as t\nfrom pathlib import Path\n"
              "t.GRADINGS['slow'] = 'slow_grading'\n"
              f"t.start_gradings(['slow'], Path({str(tmp_path)!r}))\n"
              f"while not Path({str(tmp_path / 'slow' / 'started')!r}).exists(): time.sleep(0.05)\n"
              "os.kill(os.getpid(), signal.SIGKILL)\n")
    subprocess.run([sys.executable, "-c", script], timeout=120)
    try:
        deadline = time.time() + 10
        while time.time() < deadline and any(
                "slow_grading" in " ".join(p.cmdline()) for p in _processes_under(tmp_path)):
            time.sleep(0.1)
        assert not any("slow_grading" in " ".join(p.cmdline()) for p in _processes_under(tmp_path))
    finally:
        for p in _processes_under(tmp_path):  # the stand-in's sleeping "notebook"
            p.kill()


def test_a_grading_process_hands_back_its_result_or_its_error(tmp_path, monkeypatch):
    """What a grading returns reaches the tests; what it raises is raised in them."""
    monkeypatch.setattr(sys.modules[__name__], "_RUNS", {})
    monkeypatch.setitem(GRADINGS, "ok", "tiny_course")  # writes a course into tmp, returns it
    monkeypatch.setitem(GRADINGS, "broken", "tiny_solution")  # takes no folder: TypeError
    start_gradings(["ok", "broken"], tmp_path)
    assert _RUNS["ok"][0].result(timeout=120).cells == tiny_solution().cells
    assert (tmp_path / "ok" / "labs" / f"{LAB}.ipynb").exists()
    with pytest.raises(TypeError, match="tiny_solution"):
        _RUNS["broken"][0].result(timeout=120)


def _result(name: str, tmp_path_factory):
    if name not in _RUNS and SHARED is not None and not claim(name, SHARED):
        return _shared_result(name)  # another worker grades it
    start_gradings([name], tmp_path_factory.mktemp("gradings"), SHARED)  # if conftest did not
    return _RUNS[name][0].result()


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """({student: {check: row}}, tmp folder, extras) of the hostile submissions' grading."""
    return _result("hostile", tmp_path_factory)


def folder_of(student: str) -> str:
    """The submission folder of a hostile student (some have names a gradebook must survive)."""
    return ODD_NAMES.get(student, student)


def grade_hostile(tmp: Path, cancel=None):
    """Grade every hostile submission once; return ({student: {(lab, check): CSV row}}, tmp,
    extras). The table is read from the gradebook CSV, keyed by the test's student names."""
    sol = tiny_course(tmp)
    lab = nbformat.read(str(tmp / "labs" / f"{LAB}.ipynb"), as_version=4)
    subs = tmp / "submissions"
    listener = Listener()
    students = hostile(sol, lab, listener.port)
    for student, nb in students.items():
        (subs / folder_of(student)).mkdir(parents=True)
        path = subs / folder_of(student) / f"{LAB}.ipynb"
        if isinstance(nb, str):
            path.write_text(nb, encoding="utf-8")
        else:
            nbformat.write(nb, str(path))
    # a notebook that is a symbolic link to the instructor's solution, and a whole folder
    # that is a link to another student's
    (subs / "b10_symlink").mkdir()
    (subs / "b10_symlink" / f"{LAB}.ipynb").symlink_to(tmp / "solutions" / f"{LAB}.ipynb")
    (subs / "b10_symlink_folder").symlink_to(subs / "full", target_is_directory=True)
    before = {p: sha(p) for p in subs.rglob("*.ipynb") if not p.is_symlink()}
    checks_before = checks_digest()
    os.environ[SECRET_ENV] = "instructor-secret-" + secrets.token_hex(8)
    t0 = time.time() - 1
    try:
        grade_submissions(subs, labs_dir=tmp / "labs", out=tmp / "gradebook.csv",
                          solutions_dir=tmp / "solutions", jobs=4, log=lambda *a: None,
                          cell_timeout=CELL_TIMEOUT, timeout=NB_TIMEOUT,
                          max_output=MAX_OUTPUT, work_root=tmp / "work",
                          memory=2 * 1024 ** 3, cancel=cancel)
    finally:
        secret = os.environ.pop(SECRET_ENV)
        listener.close()
    after = {p: sha(p) for p in subs.rglob("*.ipynb") if not p.is_symlink()}
    left = [p.info["pid"] for p in psutil.process_iter(["pid", "cwd", "create_time"])
            if p.info["create_time"] and p.info["create_time"] >= t0
            and (p.info["cwd"] or "").startswith(str(tmp / "work"))]
    assert not left, f"processes left running after grading: {left}"
    assert after == before, "a submitted file changed"
    names = {folder_of(s): s for s in list(students) + ["b10_symlink", "b10_symlink_folder"]}
    table = {}
    with open(tmp / "gradebook.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            shown = row["student"]
            who = (names.get(shown) or names.get(shown[1:] if shown[:1] == "'" else None)
                   or ("g3_latin1" if shown.startswith("caf") else shown))
            row["points"], row["max_points"] = int(row["points"]), int(row["max_points"])
            table.setdefault(who, {})[(row["lab"], row["check"])] = row
    extras = {"received": listener.received, "secret": secret, "checks_before": checks_before,
              "checks_after": checks_digest(), "students": list(students)}
    return table, tmp, extras


def score(table, student):
    t = table[student]
    return {k[1]: (v["points"], v["status"]) for k, v in t.items() if k[0] == LAB and k[1] != "TOTAL"}


def reason(table, student, check):
    return table[student][(LAB, check)]["reason"]


COLUMNS = ["student", "lab", "check", "points", "max_points", "status", "reason", "seeds",
           "check_sha256", "submission_sha256", "file", "graded_at", "other_notebooks"]


def test_gradebook_file_and_feedback(graded):
    table, tmp, _ = graded
    with open(tmp / "gradebook.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == COLUMNS
    full = [r[:7] for r in rows if r[0] == "full"]
    assert full == [["full", LAB, "softmax_with_temperature", "2", "2", "passed", ""],
                    ["full", LAB, "entropy", "1", "1", "passed", ""],
                    ["full", LAB, "TOTAL", "3", "3", "", full[2][6]],
                    ["full", "ALL", "TOTAL", "3", "3", "", ""]]
    md = (tmp / "feedback" / "blank.md").read_text()
    assert "Total: **0 / 3** points" in md and "check_entropy: not implemented yet" in md


def test_rows_record_seeds_and_digests(graded):
    """Each row says which secret seeds its probes drew, which check code judged it and which
    file was graded: a regrade can tell what changed."""
    table, tmp, _ = graded
    row = table["full"][(LAB, "softmax_with_temperature")]
    assert len(row["seeds"].split(";")) == 2 and all(x.isdigit() for x in row["seeds"].split(";"))
    assert len(row["check_sha256"]) == 64
    assert row["submission_sha256"] == sha(tmp / "submissions" / "full" / f"{LAB}.ipynb")
    assert table["blank"][(LAB, "entropy")]["seeds"] != table["full"][(LAB, "entropy")]["seeds"]


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
    assert "import sys" in reason(table, "monkeypatch", "entropy")


def test_swallowed_check_failure_earns_nothing(graded):
    table, _, _ = graded
    assert score(table, "swallow")["softmax_with_temperature"] == (0, "failed")
    assert "get_ipython" in reason(table, "swallow", "softmax_with_temperature")


def test_malformed_json(graded):
    table, _, _ = graded
    assert score(table, "malformed") == {"softmax_with_temperature": (0, "invalid"), "entropy": (0, "invalid")}
    assert "not valid JSON" in reason(table, "malformed", "entropy")


def test_infinite_loop_hits_the_cell_limit_and_the_rest_is_graded(graded):
    table, _, _ = graded
    assert score(table, "loop") == {"softmax_with_temperature": (0, "error"), "entropy": (1, "passed")}
    assert f"time limit of {CELL_TIMEOUT} s per cell" in reason(table, "loop", "softmax_with_temperature")


def test_crash_scores_what_ran(graded):
    table, _, _ = graded
    assert score(table, "exit") == {"softmax_with_temperature": (2, "passed"), "entropy": (0, "error")}
    assert re.search(r"the kernel died in cell \d+ \(id 'student-check-softmax-0'\)", reason(table, "exit", "entropy"))


def test_huge_output_is_cut(graded):
    table, _, _ = graded
    assert score(table, "huge") == {"softmax_with_temperature": (2, "passed"), "entropy": (0, "error")}
    assert "printed too much output" in reason(table, "huge", "entropy")


def test_import_error_is_readable(graded):
    table, _, _ = graded
    assert score(table, "importerr") == {"softmax_with_temperature": (0, "failed"), "entropy": (0, "failed")}
    r = reason(table, "importerr", "softmax_with_temperature")
    assert "NameError" in r and "ImportError: cannot import name 'no_such_helper'" in r


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
    graded = restore.graded_notebook(got, checks, {c.name: restore.draw(c) for c in checks})
    nbformat.validate(nbformat.from_dict(graded))
    marked = [c for c in graded["cells"] if c["metadata"].get("kdlab_grader", {}).get("check")]
    assert sorted(c["metadata"]["kdlab_grader"]["check"] for c in marked) == [
        "entropy", "softmax_with_temperature"]  # one probe each: no hidden tests here


def test_graded_check_cell_holds_inputs_not_seeds():
    """Each probe runs in a cell of its own (the public one, then the hidden tests) holding the
    inputs drawn in the grader, never a seed, and never the grader's token (which labels the
    cell in metadata the kernel never sees): no cell's text tells the kernel anything about
    another probe's inputs or how the grader recognises a record."""
    import json

    from kdlab.checks import CHECKS
    from kdlab.checks._probe import decode
    chk = restore.CheckCell("entropy", 1, {"source": "kd.checks.check_entropy(entropy)"},
                        hidden=restore.parse_calls("kd.checks.check_entropy(entropy)", "hidden"))
    draws = restore.draw(chk)
    sources = [restore.probe_source(d, k) for k, d in enumerate(draws)]
    for k, (d, src) in enumerate(zip(draws, sources)):
        assert "kd.checks.check_" not in src and "seed" not in src
        assert str(d.seed) not in src and d.token not in src
        assert d.inputs in src and all(o.inputs not in src for o in draws if o is not d)
        want = CHECKS["entropy"].inputs(d.seed)
        got = decode(json.loads(d.inputs))
        assert all(torch.equal(a, b) for (a, _), (b, _) in zip(want["cases"], got["cases"]))
    assert draws[0].seed != draws[1].seed
    restored = restore.Restored([{"cell_type": "code", "id": "ex", "metadata": {}, "source": "x = 1"},
                                 dict(chk.cell, cell_type="code", id="chk",
                                      metadata={"kdlab": {"check": "entropy", "points": 1}})])
    nb = restore.graded_notebook(restored, [chk], {"entropy": draws})
    assert [c["id"] for c in nb["cells"]][0] == "ex"
    assert restore.BIND_LINE in restore.kernel_args()[0]  # bound as the kernel starts
    probes = [c for c in nb["cells"] if c["metadata"].get("kdlab_grader", {}).get("check")]
    assert [c["metadata"]["kdlab_grader"] for c in probes] == [
        {"check": "entropy", "probe": k, "token": d.token} for k, d in enumerate(draws)]
    assert [c["source"] for c in probes] == sources
    for bad in ("print('x')", "kd.checks.check_entropy(entropy, C=len('x'))",
                "kd.checks.check_entropy(entropy(p))"):
        with pytest.raises(notebook_io.NotebookError, match="check"):
            restore.parse_calls(bad, "cell")


def test_graded_kernel_runs_setup_student_and_check_cells_only():
    """The lab's experiment cells do not run in grading (they need the helpers the sandbox
    does not hold); its setup cells, the exercises, the student's own and edited cells do."""
    lab = {"cells": [{"cell_type": "code", "id": "setup", "metadata": {}, "source": "import torch"},
                     {"cell_type": "code", "id": "train", "metadata": {}, "source": "kd.train.fit(m)"},
                     {"cell_type": "code", "id": "ex", "metadata": {"kdlab": {"exercise": "f"}},
                      "source": "def f(x):\n    raise NotImplementedError"}]}
    keep = restore.runs_in_grading(lab)
    cell = lambda cid, src, meta=None: {"cell_type": "code", "id": cid, "metadata": meta or {}, "source": src}
    assert keep(cell("setup", "import torch"))
    assert not keep(cell("train", "kd.train.fit(m)")) and not keep(cell("copy", "kd.train.fit(m)\n"))
    assert keep(cell("train", "kd.train.fit(m, epochs=9)"))  # edited: the student's code
    assert keep(cell("mine", "print(1)"))
    assert keep(cell("ex", "def f(x):\n    raise NotImplementedError", {"kdlab": {"exercise": "f"}}))


# ------------------------------------------------------------------ the attacks and the control

ATTACK_REASONS = {  # what the reason of each attack must say (readable, not a crash)
    "a1_allclose": "assigning to torch.allclose",
    "a2_liar": "defining __torch_function__",
    "a3_transformer": "the name get_ipython",
    "a3_transformer_hidden": "import operator",
    "a4_forge": "import glob",
    "a5_frames": "import sys",
    "a6_reference": "_ref_entropy",
    "a6_reference_hidden": "import operator",
    "a7_solutions": "import pathlib",
    "a8_rewrite_checks": "import pathlib",
    "a9_spy": "import os",
    "b1_alias": "the attribute _is_reference_code",
    "b2_thread": "import concurrent.futures",
    "b3_mock": "from unittest import mock",
    "b4_asyncio": "import asyncio",
    "b5_time_magic": "the attribute _is_reference_code",
    "b6_config": "the magic %config",
    "b7_check_metadata": "the attribute _is_reference_code",
    "b8_transformer_manager": "the name get_ipython",
    "b9_get_parent": "import ast",
    "l1_leak": "import pathlib",
}


@pytest.mark.parametrize("attack", sorted(ATTACK_REASONS))
def test_attack_scores_zero_with_a_readable_reason(graded, attack):
    table, _, _ = graded
    got = score(table, attack)
    assert got == {"softmax_with_temperature": (0, "failed"), "entropy": (0, "failed")}, got
    assert ATTACK_REASONS[attack] in reason(table, attack, "softmax_with_temperature")


def test_full_python_registry_swap_earns_nothing(graded):
    """Replacing a check's probe in the kernel's registry (past the screen) changes nothing:
    the probe cells run the probes bound before any cell of the notebook, and the sandbox's
    kdlab has no helper that computes an answer (the figures' entropy among them)."""
    table, _, _ = graded
    assert score(table, "c1_registry_swap") == {"softmax_with_temperature": (0, "failed"),
                                                "entropy": (0, "failed")}
    assert "not implemented yet" in reason(table, "c1_registry_swap", "entropy")


def test_full_python_forged_record_earns_nothing(graded):
    """A wrong entropy that displays a forged record computed by other code from the running
    cell's text, and makes the real record unreadable: 0, "record tampered with"."""
    table, _, _ = graded
    assert score(table, "c2_forged_record")["entropy"] == (0, "failed")
    assert "record tampered with" in reason(table, "c2_forged_record", "entropy")


def test_widget_messages_count_against_the_output_limit(graded):
    """Comm (widget) messages count against --max-output like printed text: the flood stops
    the kernel, the checks before it keep their points."""
    table, _, _ = graded
    assert score(table, "c3_comm_flood") == {"softmax_with_temperature": (2, "passed"),
                                             "entropy": (0, "error")}
    assert "too much output" in reason(table, "c3_comm_flood", "entropy")


# floods of the grader's output channel: 40 display updates of 20 MB each; JSON of six million
# empty lists (24 MB of text that Python holds as ~400 MB of objects); 100 widget messages
# with a 20 MB binary buffer each
FLOODS = {
    "f1_display_updates": """from IPython.display import display
h = display({"text/plain": "start"}, raw=True, display_id=True)
s = "y" * 20_000_000
for i in range(40):
    h.update({"text/plain": s}, raw=True)""",
    "f2_nested_json": """import json
from IPython.display import display
nested = json.loads("[" + "[]," * 6_000_000 + "[]]")
for i in range(3):
    display({"application/json": nested}, raw=True)""",
    "f3_comm_buffers": """import comm
c = comm.create_comm(target_name="kdlab-flood", data={})
b = b"y" * 20_000_000
for i in range(100):
    c.send(data={}, buffers=[b])""",
}
FLOOD_OUTPUT = 20_000_000  # bytes: the grader's default --max-output
# bytes: the most the grader's nbval process may hold with that limit: its data limit. Most
# floods peak near 90 MB; zmq's I/O thread may queue several 20 MB messages before they are
# read and counted (peaks of 370 and 600 MB were measured), which the data limit bounds.
RUNNER_RSS = runner_memory(FLOOD_OUTPUT)


def _peak_rss(pid: int) -> int:
    """The peak resident memory (VmHWM) of process `pid` so far, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def test_grader_memory_is_bounded_under_output_floods(tmp_path):
    """Floods of displays, display updates, nested JSON and widget messages with binary
    buffers, each past the output limit, stop their kernels; the grader's own nbval processes
    (measured from outside: the peak resident memory of each) stay under RUNNER_RSS, and an
    honest notebook graded beside them gets full marks."""
    sol = tiny_course(tmp_path)
    lab = nbformat.read(str(tmp_path / "labs" / f"{LAB}.ipynb"), as_version=4)
    ok = {"ex-softmax": exercise("softmax", SOFTMAX_OK), "ex-entropy": exercise("entropy", ENTROPY_OK)}
    students = {name: cells_with(lab, replace=ok, insert_after={"check-softmax": [full_python(code)]})
                for name, code in FLOODS.items()}
    students["honest"] = cells_with(lab, replace=ok)
    for who, nb in students.items():
        (tmp_path / "subs" / who).mkdir(parents=True)
        nbformat.write(nb, str(tmp_path / "subs" / who / f"{LAB}.ipynb"))
    peaks, stop = {}, threading.Event()

    def watch():  # the nbval processes the grading starts, sampled every 20 ms
        from kdlab.grading.runner import _descendants
        runners = set()  # known nbval processes (a process just forked shows its parent's command)
        while not stop.is_set():
            for pid in _descendants(os.getpid()):
                try:
                    if pid in runners or psutil.Process(pid).cmdline()[1:3] == ["-m", "pytest"]:
                        runners.add(pid)
                        peaks[pid] = max(peaks.get(pid, 0), _peak_rss(pid))
                except (psutil.Error, OSError, IndexError):
                    pass
            stop.wait(0.02)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        rows = grade_submissions(tmp_path / "subs", labs_dir=tmp_path / "labs", out=tmp_path / "g.csv",
                                 solutions_dir=tmp_path / "solutions", jobs=2, log=lambda *a: None,
                                 cell_timeout=120, timeout=300, max_output=FLOOD_OUTPUT,
                                 work_root=tmp_path / "work")
    finally:
        stop.set()
        watcher.join(5)
    got = {(r.student, r.check): (r.points, r.status, r.reason) for r in rows}
    assert got[("honest", "softmax_with_temperature")][:2] == (2, "passed")
    assert got[("honest", "entropy")][:2] == (1, "passed")
    for who in FLOODS:
        assert got[(who, "softmax_with_temperature")][:2] == (2, "passed"), got[(who, "softmax_with_temperature")]
        assert got[(who, "entropy")][:2] == (0, "error") and "too much output" in got[(who, "entropy")][2], \
            got[(who, "entropy")]
    assert len(peaks) >= len(students), peaks  # every notebook's nbval process was measured
    assert max(peaks.values()) < RUNNER_RSS, {pid: f"{b / 2 ** 20:.0f} MB" for pid, b in peaks.items()}


def test_symlinked_notebook_or_folder_is_refused(graded):
    """A submitted notebook that is a link to the instructor's solution, or a student folder
    that is a link to another student's, is never followed."""
    table, _, _ = graded
    for student in ("b10_symlink", "b10_symlink_folder"):
        assert score(table, student) == {"softmax_with_temperature": (0, "invalid"),
                                         "entropy": (0, "invalid")}, student
        assert "symbolic link" in reason(table, student, "entropy")


def test_control_full_marks_and_hidden_test_runs(graded):
    table, _, _ = graded
    assert score(table, "full") == {"softmax_with_temperature": (2, "passed"), "entropy": (1, "passed")}
    # passes the public check (float32 inputs) but the hidden one gives float64 logits
    assert score(table, "float32_only") == {"softmax_with_temperature": (0, "failed"), "entropy": (1, "passed")}
    assert reason(table, "float32_only", "softmax_with_temperature").startswith(
        "hidden test: check_softmax_with_temperature: float64 logits gave a float32 result")


def _feedback_text(tmp) -> str:
    return "\n".join(p.read_text(errors="replace") for p in (tmp / "feedback").glob("*.md"))


def test_nothing_leaks_and_nothing_reaches_the_network(graded):
    """No feedback or gradebook text shows a solution, another student's notebook, the
    grader's code, the secret seeds or a path of the grader's machine."""
    table, tmp, extras = graded
    assert extras["received"] == [], "a submission reached a server on the grader's loopback"
    every = _feedback_text(tmp) + (tmp / "gradebook.csv").read_text(errors="replace")
    assert extras["secret"] not in every
    for marker in ("def grade_submissions", "def verdict(", "kdlab/grading", str(Path.home()),
                   str(ROOT), "/root/", "_kdlab_registry"):
        assert marker not in every, marker
    seeds = {x for rows in table.values() for r in rows.values() for x in r.get("seeds", "").split(";") if x}
    for md in (tmp / "feedback").glob("*.md"):
        text = md.read_text(errors="replace")
        assert SOLUTION_MARKER not in text, f"{md.name} shows the solution"
        for seed in seeds:
            assert f" {seed}" not in text and f"({seed}" not in text, f"{md.name} shows a seed"
        for other in extras["students"]:
            if md.stem != report_name(other):
                assert f"secret-{other}-text" not in text, f"{md.name} shows {other}'s notebook"


def test_nothing_of_the_host_reaches_the_feedback(graded):
    """A kernel that reads /proc/self/mountinfo, /proc/self/environ and cmdline, its connection
    file and sys.path, and shows every path it finds in its feedback, shows none of the grader's
    machine: not the course's tree, the home folder, the Python installation or virtualenv,
    the grader's temporary folders (the work folders, the copy of kdlab, the kernels' runtime
    folders). Its connection file names its sockets inside the sandbox, and its key is its
    own: another kernel's key appears in no other feedback."""
    table, tmp, extras = graded
    every = _feedback_text(tmp) + (tmp / "gradebook.csv").read_text(errors="replace")
    host = [str(ROOT), str(Path.home()), str(Path(sys.prefix).resolve()),
            str(Path(sys.base_prefix).resolve()), str(tmp), str(Path(tmp).resolve()),
            "kdlab-rt-", "kdlab-site-", "kdlab-grade-"]
    keys = {}
    for who in ("h1_host_paths", "h2_host_paths"):
        paths = reason(table, who, "softmax_with_temperature")
        conn = reason(table, who, "entropy")
        assert "HOST" in paths and "KEY" in conn, (paths, conn)  # the attack ran and reported
        assert "kdlab-kernel.json" in conn, conn  # it read its connection file
        for marker in host:
            assert marker not in paths and marker not in conn, (marker, paths, conn)
        assert "IP /tmp/kdlab-rt/kernel " in conn, conn  # the sandbox's own socket path
        keys[who] = re.search(r"KEY (\S+)", conn).group(1)
        assert len(keys[who]) >= 32, conn
    for marker in host:
        assert marker not in every, marker
    assert keys["h1_host_paths"] != keys["h2_host_paths"]
    for md in (tmp / "feedback").glob("*.md"):  # each key only in its own student's feedback
        for who, key in keys.items():
            assert md.stem == report_name(who) or key not in md.read_text(errors="replace"), (md, who)


def report_name(student: str) -> str:
    from kdlab.grading.report import file_name
    return file_name(folder_of(student), "")


def test_checks_on_disk_unchanged(graded):
    _, _, extras = graded
    assert extras["checks_after"] == extras["checks_before"]


def test_memory_limit_is_out_of_memory(graded):
    table, _, _ = graded
    assert score(table, "hog") == {"softmax_with_temperature": (2, "passed"), "entropy": (0, "error")}
    assert reason(table, "hog", "entropy").startswith("out of memory")


def _written(table, student) -> dict:
    """What a denial-of-service fixture managed (it reports through the entropy check)."""
    import ast
    import re
    m = re.search(r"WROTE (\{[^}]*\})", reason(table, student, "entropy"))
    return ast.literal_eval(m.group(1)) if m else {}


def test_tmp_and_shm_are_capped(graded):
    """A kernel can fill neither /tmp nor /dev/shm past their sizes (RAM outside --memory)."""
    table, _, _ = graded
    assert score(table, "d1_tmpfs")["softmax_with_temperature"] == (2, "passed")
    got = _written(table, "d1_tmpfs")
    assert got and got["/tmp"] <= 256 and got["/dev/shm"] <= 64, got


def test_nothing_of_the_graders_disk_is_writable(graded):
    """The kernel's connection file lies in a read-only place: the folder beside it is not the
    grader's disk (it used to take 1 GB)."""
    table, _, _ = graded
    got = _written(table, "d2_runtime_disk")
    assert got.get("runtime", 0) == 0, got


def test_processes_are_capped(graded):
    """No processes without bound (the sandbox's own cap is tested below, past the screen)."""
    table, _, _ = graded
    got = _written(table, "d3_fork")
    assert got.get("processes", 0) <= 256, got


def test_csv_cells_are_not_formulas(graded):
    """A reason or a student name that starts with = + - @ is written with a leading ' (no
    live formula when the gradebook is opened in a spreadsheet)."""
    table, tmp, _ = graded
    with open(tmp / "gradebook.csv", newline="", encoding="utf-8") as f:
        cells = [c for row in csv.reader(f) for c in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert "g1_formula" in table and score(table, "g1_formula")["softmax_with_temperature"] == (2, "passed")


def _outside_code_blocks(md: str) -> list:
    """The lines of a markdown text that are not inside a fenced code block (CommonMark:
    a block closes at a fence of the same character at least as long as its opening)."""
    out, fence = [], None
    for line in md.splitlines():
        m = re.match(r"^ {0,3}(`{3,}|~{3,})", line)
        if fence is None and m:
            fence = m.group(1)
        elif fence is not None and m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) \
                and not line.strip()[len(m.group(1)):].strip():
            fence = None
        elif fence is None:
            out.append(line)
    return out


def test_feedback_shows_reasons_as_text(graded):
    """A reason holding ``` cannot close its code block and forge headings in the feedback."""
    _, tmp, _ = graded
    md = (tmp / "feedback" / f"{report_name('g2_fences')}.md").read_text()
    assert "FORGED" in md
    assert not [ln for ln in _outside_code_blocks(md) if "FORGED" in ln]


def test_odd_folder_names_are_graded_and_reported(graded):
    """Folder names that are not UTF-8, very long, or that differ only in a space: every
    student gets rows and a feedback file of their own; none crashes the gradebook."""
    table, tmp, _ = graded
    for student in ("g3_latin1", "g4_long", "g5_space", "g5_underscore"):
        assert student in table, f"{student} missing from the gradebook"
    files = {p.name for p in (tmp / "feedback").glob("*.md")}
    assert len(files) == len(table), (len(files), len(table))
    assert max(len(f) for f in files) <= 90
    a = (tmp / "feedback" / f"{report_name('g5_space')}.md").read_text()
    b = (tmp / "feedback" / f"{report_name('g5_underscore')}.md").read_text()
    assert a != b and "secret-g5_space-text" not in b


def test_descendants_lists_the_whole_tree_both_ways(monkeypatch):
    """The runner's list of a run's processes (what it kills at the end): a child, a child
    started from a second, living thread (listed under that thread) and its own child, read from
    /proc's children files and, where the kernel has none, through psutil: the same pids."""
    from kdlab.grading import runner
    inner = "import subprocess, time; subprocess.Popen(['sleep', '30']); time.sleep(30)"
    code = ("import subprocess, sys, threading, time\n"
            "def start():  # this thread lives on: its child is listed under it, not the main one\n"
            f"    subprocess.Popen([sys.executable, '-c', {inner!r}]); time.sleep(30)\n"
            "threading.Thread(target=start, daemon=True).start()\n"
            "subprocess.Popen(['sleep', '30']); print('ready', flush=True); time.sleep(30)\n")
    top = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert top.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 10
        while len(psutil.Process(top.pid).children(recursive=True)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        want = sorted(c.pid for c in psutil.Process(top.pid).children(recursive=True))
        assert len(want) == 3, want  # the second thread's python and its sleep, the other sleep
        assert runner._CHILDREN_FILES, "this kernel shows no /proc/<pid>/task/<tid>/children"
        assert sorted(runner._descendants(top.pid)) == want
        monkeypatch.setattr(runner, "_CHILDREN_FILES", False)
        assert sorted(runner._descendants(top.pid)) == want
    finally:
        for p in psutil.Process(top.pid).children(recursive=True):
            p.kill()
        top.kill()
        top.wait()


def test_grader_refuses_without_bubblewrap(tmp_path, monkeypatch):
    from kdlab.grading import sandbox
    from kdlab.grading.__main__ import main
    (tmp_path / "subs" / "ann").mkdir(parents=True)
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    with pytest.raises(sandbox.SandboxError, match="make grade-deps"):
        sandbox.preflight()
    assert main(["grade", str(tmp_path / "subs"), "--out", str(tmp_path / "g.csv")]) == 2


def test_preflight_refuses_a_sandbox_copy_that_holds_the_grading_package(monkeypatch):
    """The preflight finds kdlab.grading without importing kdlab (seconds of torch on every
    grading): a copy that holds it is refused, a stripped one passes."""
    from kdlab.grading import sandbox
    assert sandbox.preflight() is not None
    copy = sandbox.kdlab_copy

    def leaky(dest, *a, **k):
        out = copy(dest, *a, **k)
        (Path(out) / "kdlab" / "grading").mkdir()
        (Path(out) / "kdlab" / "grading" / "__init__.py").write_text("")
        return out

    monkeypatch.setattr(sandbox, "kdlab_copy", leaky)
    with pytest.raises(sandbox.SandboxError, match="holds kdlab.grading"):
        sandbox.preflight()


def test_a_sandbox_that_does_not_start_is_killed_and_started_again(tmp_path, monkeypatch):
    """A sandbox whose first process does not show up in time (bwrap stuck creating its
    namespaces on a busy machine) is killed and started once more; the kernel of the second
    start answers. A process that never enters a namespace is named with what it waits in; a
    sandbox that exited (a zombie bwrap) is named at once. The file the sandbox is shown is
    its own, never removed while the kernel starts."""
    import nbval.kernel

    from kdlab.grading import nbval_plugin, sandbox
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with pytest.raises(nbval_plugin.KernelStartFailed, match=r"within 0.5 s .*python"):
            nbval_plugin._inner_process(sleeper.pid, timeout=0.5)
    finally:
        sleeper.kill()
        sleeper.wait()
    ended = subprocess.Popen(["/bin/true"])  # exits at once, not reaped: a zombie, as a bwrap that failed
    try:
        while psutil.Process(ended.pid).status() != psutil.STATUS_ZOMBIE:
            time.sleep(0.01)
        t0 = time.monotonic()
        with pytest.raises(nbval_plugin.KernelStartFailed, match="ended before its kernel started"):
            nbval_plugin._inner_process(ended.pid, timeout=30)
        assert time.monotonic() - t0 < 5  # at once, not at the time limit
    finally:
        ended.wait()
    site = sandbox.kdlab_copy(tmp_path / "site", data=False)
    runtime = Path(tempfile.mkdtemp(prefix="kdlab-rt-"))  # Unix socket paths are short
    monkeypatch.setattr(nbval.kernel, "start_new_kernel", nbval.kernel.start_new_kernel)
    nbval_plugin._patch_kernel_start(sandbox.kernel_argv(site, {}), str(runtime),
                                     sandbox.SANDBOX_RUNTIME)
    real, stuck = nbval_plugin._inner_process, []

    def first_start_stuck(pid, timeout=nbval_plugin.INNER_START_S):
        if not stuck:
            stuck.append(psutil.Process(pid))
            raise nbval_plugin.KernelStartFailed("stuck")
        return real(pid, timeout)

    monkeypatch.setattr(nbval_plugin, "_inner_process", first_start_stuck)
    removed, remove = [], os.remove

    def recording_remove(path, *a, **k):  # jupyter_client removes files with os.remove
        removed.append(os.path.realpath(path))
        return remove(path, *a, **k)

    monkeypatch.setattr(os, "remove", recording_remove)
    km, kc = nbval.kernel.start_new_kernel(startup_timeout=120)
    monkeypatch.setattr(os, "remove", remove)
    try:
        assert not stuck[0].is_running() or stuck[0].status() == psutil.STATUS_ZOMBIE
        # the file bwrap binds for the kernel is never removed while it starts (jupyter_client
        # removes and rewrites its own connection file after launching, when its contents
        # differ from what it expects: a bwrap binding it then found no file)
        cmd = km.provisioner.process.args
        shown = os.path.realpath(cmd[cmd.index(sandbox.KERNEL_JSON) - 1])
        assert shown not in removed, (shown, removed)
        assert json.loads(Path(shown).read_text())["ip"] == f"{sandbox.SANDBOX_RUNTIME}/kernel"
        reply = kc.execute_interactive("print(6 * 7)", timeout=60,
                                       output_hook=lambda m: stuck.append(m["content"].get("text")))
        assert reply["content"]["status"] == "ok" and "42\n" in stuck
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        shutil.rmtree(runtime, ignore_errors=True)


def test_unsandboxed_rows_say_so(tmp_path):
    sol = tiny_course(tmp_path)
    (tmp_path / "subs" / "ann").mkdir(parents=True)
    nbformat.write(sol, str(tmp_path / "subs" / "ann" / f"{LAB}.ipynb"))
    rows = grade_submissions(tmp_path / "subs", labs_dir=tmp_path / "labs", out=tmp_path / "g.csv",
                             solutions_dir=tmp_path / "solutions", jobs=1, log=lambda *a: None,
                             sandbox=False)
    assert all(r.reason.startswith("unsandboxed") for r in rows)
    assert [r.points for r in rows] == [2, 1]


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
    assert time.time() - t0 < 100, "the grading ran on after it was cancelled"  # 3 x 60 s if it had
    assert not _processes_under(work), "a notebook of the cancelled grading is still running"
    assert not (tmp_path / "g.csv").exists()
    assert {p: sha(p) for p in (tmp_path / "subs").rglob("*.ipynb")} == before


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_ctrl_c_on_the_grader_stops_at_once(tmp_path, sig):
    """Ctrl-C (SIGINT), or SIGTERM (kill, a scheduler's stop), on `python -m kdlab.grading
    grade` kills the running notebooks instead of grading the rest of the class: exit code
    130, a message, nothing left running, no temporary folder left behind."""
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
        proc.send_signal(getattr(signal, sig))
        out, _ = proc.communicate(timeout=90)
    finally:
        proc.kill()
    assert time.time() - t0 < 50, "the grader went on grading after Ctrl-C"  # 2 x 60 s if it had
    assert proc.returncode == 130, out
    assert "interrupted" in out and "no gradebook was written" in out, out
    assert not _processes_under(tmp_path / "tmp"), "a notebook is still running after Ctrl-C"
    assert not list((tmp_path / "tmp").glob("kdlab-*")), list((tmp_path / "tmp").iterdir())
    assert not (tmp_path / "g.csv").exists()
    assert {p: sha(p) for p in (tmp_path / "subs").rglob("*.ipynb")} == before


def grade_course(tmp: Path, cancel=None):
    """Every lab's solution and its unfilled lab, graded in the sandbox (2 at a time), and
    every solution notebook run whole (its experiments too, which grading does not run).

    This is also the suite's only run of the solution notebooks (pytest's testpaths leave out
    solutions/): each is executed with nbval in a plain kernel of this Python (the sandbox's
    kdlab has no training helpers), and its cell records returned.
    Returns (gradebook rows, {lab: (cell records, number of code cells)}).
    """
    from kdlab.grading.runner import run_notebook
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
                                  cell_timeout=600, timeout=1200, work_root=tmp / who / "work",
                                  cancel=cancel)

    def run_whole(solution):
        work = tmp / "whole" / solution.stem
        work.mkdir(parents=True)
        nb = nbformat.read(str(solution), as_version=4)
        for c in nb.cells:
            if c.cell_type == "code":
                c.outputs, c.execution_count = [], None
        # as an instructor runs it: the hidden tests judge inputs whose keys only the
        # instructor's package computes
        nb.cells.insert(0, new_code_cell("import kdlab.grading.keys", id="instructor-keys"))
        nbformat.write(nb, str(work / solution.name))
        run = run_notebook(work / solution.name, cell_timeout=600, timeout=1200, quick=True,
                           threads=1, cancel=cancel)
        return solution.stem, (run.cells, sum(c.cell_type == "code" for c in nb.cells))

    with futures.ThreadPoolExecutor(2) as pool:
        cells = dict(pool.map(run_whole, SOLUTIONS))
    return rows, cells


@pytest.fixture(scope="module")
def course_graded(tmp_path_factory):
    """(rows, cell records) of the grading of the course's solutions and unfilled labs."""
    return _result("course", tmp_path_factory)


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_course_solution_full_marks_and_lab_zero(solution, course_graded):
    """Grading solutions/NN gives every check its points; grading the unfilled labs/NN, 0."""
    rows, _ = course_graded
    checks = [r for r in rows if r.lab == solution.stem]
    assert {r.student for r in checks} == {"solution", "blank"}, "the lab has no check cells"
    for r in checks:
        if r.student == "solution":
            assert (r.points, r.status) == (r.max_points, "passed"), f"solution {r.lab} {r.check}: {r.reason}"
        else:
            assert (r.points, r.status) == (0, "failed"), f"blank {r.lab} {r.check}: {r.status} {r.reason}"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_course_solution_runs_every_cell(solution, course_graded):
    """Every code cell of solutions/NN runs without error (quick budget).

    The suite's run of each solution notebook, beside the course grading (which runs only the
    setup, exercise and check cells), so pytest does not execute solutions/ a second time
    (testpaths = tests)."""
    records, n_code = course_graded[1].get(solution.stem, ([], None))
    assert n_code is not None, f"{solution.name} was not graded"
    failed = [f"cell {r['cell']} (id {r['id']!r}) raised "
              + (f"{r['ename']}: {r['evalue']}" if r["ename"] else r["error"])[:500]
              for r in records if not r["ok"]]
    assert not failed, f"{solution.name}: " + "; ".join(failed)
    assert len(records) == n_code, (f"{solution.name}: {len(records)} of {n_code} code cells "
                                    "ran; the run stopped early")


# ------------------------------------------------------------------ the sandbox itself (no screen)

def sandbox_python(tmp_path, code: str, limits=None, cgroup=None, timeout=120):
    """Run `python -c code` in the grader's sandbox, as a kernel would run; return the result."""
    from kdlab.grading import sandbox
    site = sandbox.kdlab_copy(tmp_path / "site")
    rt = tmp_path / "rt"
    rt.mkdir()
    (rt / "kernel.json").write_text("{}")
    argv = sandbox.kernel_argv(site, {}, limits, cgroup=cgroup)
    argv = [a.replace("{connection_file}", str(rt / "kernel.json")) for a in argv]
    cut = argv.index("-m")  # the interpreter inside, then -m ipykernel_launcher
    return subprocess.run(argv[:cut] + ["-c", code], capture_output=True, text=True, timeout=timeout)


def test_sandbox_argv_names_no_path_of_the_course_or_home(tmp_path):
    """The Python installation is shown at neutral paths: nothing of the home folder or of
    the course's tree (which may be a clone under /tmp) is bound into the sandbox, and there
    is no procfs (whose mountinfo names the host path of every bind)."""
    from kdlab.grading import sandbox
    site = sandbox.kdlab_copy(tmp_path / "site", data=False)
    argv = sandbox.kernel_argv(site, {})
    sources = [argv[i + 1] for i, a in enumerate(argv) if a in ("--bind", "--ro-bind", "--ro-bind-try")]
    for src in sources:  # of the course's tree, only the virtualenv's lib/ if it lives there
        assert not src.startswith(str(ROOT)) or src.startswith(str(Path(sys.prefix).resolve())), src
        assert src.startswith(("/usr", "/etc", "/bin", "/lib", "/dev/null", "/proc/cpuinfo", "{connection_file}",
                               str(tmp_path), sys.base_prefix, str(Path(sys.prefix).resolve()))), src
    assert "--bind" not in argv, "something of the grader's disk is writable"
    assert "--proc" not in argv, "a procfs: /proc/self/mountinfo names the host path of every bind"


PEEK = """import os, socket, json
found = {"solutions": [], "grading": [], "home": [], "writable": [], "procs": [], "env": dict(os.environ)}
for top in ("/", ):
    for dirpath, dirs, files in os.walk(top):
        if dirpath.startswith(("/proc", "/sys", "/dev", "/usr")):
            dirs[:] = []
            continue
        if os.path.basename(dirpath) == "grading" and "kdlab" in dirpath:
            found["grading"].append(dirpath)
        for f in files:
            p = os.path.join(dirpath, f)
            if f.endswith(".ipynb"):
                found["solutions"].append(p)
            if dirpath.startswith("/root") or dirpath.startswith("/home"):
                found["home"].append(p)
for d in ("/", "/opt", "/opt/kdlab-site/kdlab", "/opt/kdlab-venv", "/etc", "/usr", "/tmp", "/dev/shm"):
    try:
        with open(os.path.join(d, "probe-write"), "w") as f:
            f.write("x")
        found["writable"].append(d)
    except OSError:
        pass
found["procs"] = [p for p in os.listdir("/proc") if p.isdigit()]
try:
    socket.create_connection(("127.0.0.1", PORT), timeout=3)
    found["network"] = True
except OSError:
    found["network"] = False
print(json.dumps(found))
"""


def test_sandbox_shows_nothing_of_the_grader(tmp_path):
    """Code in the sandbox (past any screen) finds no notebook, no kdlab.grading, nothing of a
    home folder, no instructor secret in its environment, no process but its own, no network,
    and can write only to its /tmp and /dev/shm."""
    import json
    listener = Listener()
    os.environ[SECRET_ENV] = "instructor-secret-x"
    try:
        p = sandbox_python(tmp_path, PEEK.replace("PORT", str(listener.port)))
    finally:
        os.environ.pop(SECRET_ENV)
        listener.close()
    assert p.returncode == 0, p.stderr[-2000:]
    found = json.loads(p.stdout)
    assert found["solutions"] == [] and found["grading"] == [] and found["home"] == [], found
    assert sorted(found["writable"]) == ["/dev/shm", "/tmp"], found["writable"]
    assert SECRET_ENV not in found["env"] and not any("instructor-secret" in v for v in found["env"].values())
    assert len(found["procs"]) <= 3, found["procs"]
    assert found["network"] is False and listener.received == []


def test_sandbox_caps_processes_and_memory_with_a_cgroup(tmp_path):
    """In a cgroup (root or delegated v2), forks stop at the pids limit and memory written to
    a tmpfs counts against the memory limit."""
    from kdlab.grading import sandbox
    limits = sandbox.Limits(memory=512 * 1024 ** 2, shm=2 * 1024 ** 3, pids=64)
    cg = sandbox.Cgroup.create(limits)
    if cg is None:
        pytest.skip("no cgroup can be made on this machine (not root, no delegated cgroup v2)")
    try:
        code = ("import os, time\nn = 0\ntry:\n    for i in range(500):\n        if os.fork() == 0:\n"
                "            time.sleep(30)\n            os._exit(0)\n        n += 1\nexcept OSError:\n    pass\n"
                "print('forked', n, flush=True)\n"
                "for i in range(32):\n    open(f'/dev/shm/fill{i}', 'wb').write(b'x' * 32 * 1024 ** 2)\n"
                "    print('shm', (i + 1) * 32, flush=True)\n")
        p = sandbox_python(tmp_path, code, limits, cgroup=cg)
        forked = int(re.search(r"forked (\d+)", p.stdout).group(1))
        shm = [int(x) for x in re.findall(r"shm (\d+)", p.stdout)]
        assert forked < 64, p.stdout
        assert max(shm, default=0) < 512, p.stdout[-500:]
        assert cg.oom_killed()
    finally:
        from kdlab.grading.runner import _kill_cgroup
        _kill_cgroup(cg)
        cg.remove()


def test_sandbox_data_cache_is_readable_and_read_only(tmp_path):
    """Kernels read MNIST from the grader's prepared cache (no extraction per notebook, and the
    kept tensors: no parsing through torchvision either), and no submission can write into it
    (it would be what the next submission reads)."""
    from kdlab.grading import sandbox
    code = ("import os, sys, time, kdlab as kd\n"
            "t0 = time.perf_counter(); x, y = kd.data.mnist('test')\n"
            "print('test images', len(x), 'in', round(time.perf_counter() - t0, 2))\n"
            "print('parsed by torchvision:', 'torchvision.datasets' in sys.modules)\n"
            "cache = os.environ['KDLAB_CACHE']\n"
            "try:\n"
            "    open(os.path.join(cache, 'MNIST', 'raw', 't10k-labels-idx1-ubyte'), 'r+b').write(b'x')\n"
            "    print('WROTE the cache')\n"
            "except OSError as e:\n"
            "    print('read-only:', e.errno)\n")
    p = sandbox_python(tmp_path, code)
    assert p.returncode == 0, p.stderr
    assert "test images 10000" in p.stdout and "read-only: 30" in p.stdout, p.stdout
    assert "parsed by torchvision: False" in p.stdout, p.stdout
    assert (tmp_path / "site" / sandbox.DATA_CACHE / "MNIST" / "raw" / "t10k-images-idx3-ubyte").is_file()


def test_probe_data_counts_only_from_its_finished_grader_cell():
    """A probe's result is judged only if it comes from the probe's own grader-marked cell
    (the grader's label is in the cell's metadata, which the kernel never sees) and that cell
    ran to its end; a cell that finished with its record missing, duplicated, unparseable,
    oversize or of another check scores 0 as "record tampered with" (a forged display beside
    the real one, or the real one made unreadable, earns nothing)."""
    import json

    from kdlab.checks import CHECKS
    from kdlab.checks._registry import probe_data
    from kdlab.grading import course, runner, scoring
    sol = tiny_solution()
    lab_nb = generator.generate_lab(notebook_io.loads(nbformat.writes(sol)), "tiny")
    checks = restore.canonical_checks(lab_nb, "tiny")
    lab = course.Lab(LAB, checks, lab_nb, {})
    draws = {c.name: restore.draw(c) for c in checks}

    def payload(d, fn, check=None):
        from kdlab.checks._probe import decode
        data = probe_data(CHECKS[d.probe.check], fn, inputs=decode(json.loads(d.inputs)))
        return json.dumps({"check": check or d.probe.check, "data": data})

    right = {"softmax_with_temperature": lambda z, T=1.0: (_ for _ in ()).throw(ValueError("T"))
             if not (T > 0 and T < float("inf")) else torch.softmax(z / T, -1),
             "entropy": lambda p: -torch.xlogy(p, p).sum(-1)}

    def records(probes=lambda d, n: [payload(d, right[n])], ename="", ok=True, grader=True,
                token=None, problems=()):
        out = []
        for n in right:
            for k, d in enumerate(draws[n]):
                out.append({"cell": len(out), "id": f"{n}-{k}", "kdlab": {"check": n},
                            "grader": {"check": n, "probe": k, "token": token or d.token} if grader else {},
                            "ok": ok, "error": "" if ok else "AssertionError", "ename": ename,
                            "evalue": "", "text": "", "probes": probes(d, n),
                            "probe_problems": list(problems), "timed_out": False,
                            "kernel_died": False, "dead_at_start": False, "output_limit": False,
                            "seconds": 0.1})
        return out

    def graded(recs):
        run = runner.RunResult(cells=recs)
        return {r.check: (r.points, r.reason) for r in scoring.score("ann", lab, run, {}, draws, "")}

    assert {k: v[0] for k, v in graded(records()).items()} == {"softmax_with_temperature": 2, "entropy": 1}
    for bad, says in [(records(ename="Stop", ok=False), "raised Stop"),
                      (records(grader=False), "not run"),
                      (records(token="0" * 16), "not run"),
                      (records(probes=lambda d, n: [payload(d, right[n])] * 2), scoring.TAMPERED),
                      (records(probes=lambda d, n: []), scoring.TAMPERED),
                      (records(probes=lambda d, n: [payload(d, right[n])[:-1]]), scoring.TAMPERED),
                      (records(problems=["a probe record of 9,000,000 characters"]), scoring.TAMPERED),
                      (records(probes=lambda d, n: [payload(d, right[n], "other")]), scoring.TAMPERED)]:
        got = graded(bad)
        assert {k: v[0] for k, v in got.items()} == {"softmax_with_temperature": 0, "entropy": 0}, got
        assert says in got["entropy"][1], got


def test_names_map_one_to_one_to_files_and_export_rows(tmp_path):
    """A folder named exactly like another student's feedback file (`ann_b-<digest>`), or
    like another's shown name (`bob?~<digest>` beside `bob\\n`), gets a file and an export row
    of its own: feedback file names and the export are keyed one-to-one by folder names."""
    from kdlab.grading import report
    from kdlab.grading.scoring import Row
    mapped = report.file_name("ann b", "")
    shown = report.display_name("bob\n")
    folders = ["ann b", "ann_b", mapped, "bob", "bob\n", shown]
    files = [report.file_name(f) for f in folders]
    assert len(set(files)) == len(files), files
    names = [report.display_name(f) for f in folders]
    assert len(set(names)) == len(names), names
    rows = [Row(f, LAB, "entropy", i, 10, "passed") for i, f in enumerate(folders)]
    report.write_feedback(rows, tmp_path / "feedback")
    assert len(list((tmp_path / "feedback").glob("*.md"))) == len(folders)
    for f, i in zip(folders, range(len(folders))):
        text = (tmp_path / "feedback" / report.file_name(f)).read_text()
        assert f"Total: **{i} / 10**" in text, (f, text)
    report.write_csv(rows, tmp_path / "g.csv")
    with open(tmp_path / "roster.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["folder", "name", "sid", "email"])
        for i, f in enumerate(folders):
            w.writerow([f, f"student {i}", str(i), f"s{i}@example.org"])
    from kdlab.grading import lms
    (path,) = lms.export(tmp_path / "g.csv", "gradescope", tmp_path / "roster.csv",
                         tmp_path / "lms", missing="zero", log=lambda *a: None)
    with open(path, newline="", encoding="utf-8") as fh:
        got = {r["SID"]: r["Total Score"] for r in csv.DictReader(fh)}
    assert got == {str(i): str(i) for i in range(len(folders))}, got


def test_fifo_and_sparse_giant_are_invalid_and_the_others_graded(tmp_path):
    """A FIFO named like a notebook (reading it would block the whole grading before it
    starts) and a sparse 1 TB notebook (reading it would exhaust memory) are `invalid` with
    the reason; the other students are graded."""
    sol = tiny_course(tmp_path)
    for who in ("fifo", "sparse", "ok"):
        (tmp_path / "subs" / who).mkdir(parents=True)
    os.mkfifo(tmp_path / "subs" / "fifo" / f"{LAB}.ipynb")
    with open(tmp_path / "subs" / "sparse" / f"{LAB}.ipynb", "wb") as f:
        f.truncate(1024 ** 4)
    nbformat.write(sol, str(tmp_path / "subs" / "ok" / f"{LAB}.ipynb"))
    done = []
    t = threading.Thread(target=lambda: done.append(grade_submissions(
        tmp_path / "subs", labs_dir=tmp_path / "labs", out=tmp_path / "g.csv",
        solutions_dir=tmp_path / "solutions", jobs=1, log=lambda *a: None, sandbox=False)), daemon=True)
    t.start()
    t.join(240)
    assert done, "the grading hung on a FIFO or a sparse file"
    rows = {(r.student, r.check): r for r in done[0]}
    for who, says in (("fifo", "is a FIFO, not a regular file"), ("sparse", "more than the")):
        for check in ("softmax_with_temperature", "entropy"):
            assert rows[(who, check)].status == "invalid" and says in rows[(who, check)].reason, rows[(who, check)]
    assert [rows[("ok", c)].points for c in ("softmax_with_temperature", "entropy")] == [2, 1]


def test_sandbox_shows_no_editable_install_of_the_course(tmp_path):
    """The venv's editable-install finder and kdlab's direct_url.json (both name the course's
    source tree) read as empty inside the sandbox."""
    import glob
    import site
    hosts = [p for d in site.getsitepackages() for p in glob.glob(f"{d}/__editable__*kdlab*")
             + glob.glob(f"{d}/kdlab*.dist-info/direct_url.json")]
    if not hosts:
        pytest.skip("kdlab is not an editable install here")
    tree = str(Path(kdlab.__file__).resolve().parents[1])
    named = {m for p in hosts for m in re.findall(r"(/[\w./-]+)", Path(p).read_text(errors="replace"))
             if "/kdlab" in m or m.startswith(("/work", "/home", "/root"))}
    code = ("import glob\nfor p in glob.glob('/opt/kdlab-*/lib*/python*/site-packages/*kdlab*') + "
            "glob.glob('/opt/kdlab-*/lib*/python*/site-packages/kdlab*/*'):\n"
            "    try:\n        print(p, open(p).read())\n    except OSError:\n        pass\n")
    p = sandbox_python(tmp_path, code)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "finder" in p.stdout or "direct_url" in p.stdout, p.stdout[:2000]  # the files are there, empty
    for path in named | {tree}:
        assert path not in p.stdout, (path, p.stdout[:3000])
