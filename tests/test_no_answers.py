"""The public package (what students get, what runs in the grading sandbox) holds no answer.

The reference implementations of the exercises and of their common mistakes live only in the
instructor's ``kdlab.grading.keys``; the course's helpers that could stand in for an exercise
refuse to run while a check probes one.
"""
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest
import torch

import kdlab
from kdlab.checks import CHECKS
from kdlab.checks._registry import KEYS_DIR

PUBLIC = [m.name for m in pkgutil.walk_packages(kdlab.__path__, "kdlab.")
          if not m.name.startswith(("kdlab.grading", "kdlab.authoring"))]


def _reference_names() -> set:
    """The public functions of the answer-key modules: the exercises' reference implementations."""
    from kdlab.grading import keys
    names = set()
    for mod in {inspect.getmodule(fn) for fn in keys.KEYS.values()}:
        names |= {n for n, f in vars(mod).items() if inspect.isfunction(f) and not n.startswith("_")
                  and f.__module__ == mod.__name__ and not n.endswith("_key")}
    return names


def test_no_reference_in_the_public_package():
    """No public module defines a function named like an exercise's reference, and no public
    source file holds the definition of one (``kd.losses``, ``kd.compress.prune_mask``...)."""
    refs = _reference_names()
    assert {"softmax_with_temperature", "entropy", "kd_loss"} <= refs, refs
    for name in PUBLIC:
        mod = importlib.import_module(name)
        defined = {n for n, f in vars(mod).items() if inspect.isfunction(f) and f.__module__ == name}
        assert not defined & refs, f"{name} defines {sorted(defined & refs)}"
    root = Path(kdlab.__file__).parent
    for path in root.rglob("*.py"):
        if "grading" in path.parts or "authoring" in path.parts:
            continue
        text = path.read_text()
        for ref in sorted(refs):
            assert not re.search(rf"^\s*def {ref}\(", text, re.M), f"{path} defines {ref}"
    assert not hasattr(kdlab, "losses")


def test_shipped_keys_are_those_of_the_notebooks_cases():
    """Keys ship only for the notebooks' own cases, and are up to date (make-keys --check)."""
    from kdlab.grading import keys
    assert keys.write_public(check=True) == []
    assert sorted(p.stem for p in KEYS_DIR.glob("*.json")) == sorted(CHECKS)


def test_course_helpers_refuse_inside_a_check():
    """An exercise that hands its work to kd.train.fit or kd.distill.loss fails its
    check, in the notebook and in grading, also when it calls them from another thread."""
    from concurrent.futures import ThreadPoolExecutor

    from kdlab.checks import check_kd_loss
    from kdlab.runtime import HelperInCheck, checking

    def kd_loss(s, t, y, T=4.0, alpha=0.9):
        if T <= 0:
            raise ValueError("T")
        return kdlab.distill.loss(T, alpha)(s, t, y)

    def kd_loss_in_thread(s, t, y, T=4.0, alpha=0.9):
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(kd_loss, s, t, y, T, alpha).result()

    for fn in (kd_loss, kd_loss_in_thread):
        with pytest.raises(AssertionError, match="course helper"):
            check_kd_loss(fn)
    s, t, y = torch.randn(4, 3, requires_grad=True), torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    assert kd_loss(s, t, y).dim() == 0  # outside a check it works
    with checking(), pytest.raises(HelperInCheck):
        kdlab.train.fit(torch.nn.Linear(3, 3), [(torch.randn(2, 3), torch.tensor([0, 1]))],
                        torch.nn.functional.cross_entropy, progress=False)


def test_keys_compare_within_a_tolerance():
    """A key computed on another CPU differs in the last digits (a training step's weights):
    make-keys --check accepts that, and nothing larger."""
    from kdlab.grading.keys import same
    a = {"w": [1.0, 2.5, float("nan")], "n": 3, "name": "x"}
    assert same(a, {"w": [1.0 + 1e-9, 2.5, float("nan")], "n": 3, "name": "x"})
    assert not same(a, {"w": [1.001, 2.5, float("nan")], "n": 3, "name": "x"})
    assert not same(a, {"w": [1.0, 2.5], "n": 3, "name": "x"})
    assert not same(a, {"w": [1.0, 2.5, float("nan")], "n": 4, "name": "x"})


SWEEP = r'''
import contextlib, copy, faulthandler, importlib, inspect, json, pkgutil, resource, signal, sys, time
faulthandler.enable()
# a candidate called with a seed for a size (Teacher(5, 1_000_000_000)) allocates for half a
# minute inside one C++ call, which no signal interrupts: past 3 GB it fails at once (the
# sweep itself needs under 1 GB)
resource.setrlimit(resource.RLIMIT_DATA, (3 << 30, 3 << 30))
import kdlab
import kdlab.runtime
from kdlab.checks import CHECKS
from kdlab.checks._registry import probe_data

assert "/site/" in kdlab.__file__, kdlab.__file__
for _name in kdlab.__all__:  # the submodules load on first use: all of them now, before open is replaced
    getattr(kdlab, _name)


import builtins, io
_open = builtins.open


def no_fd_open(file, *a, **k):  # a tensor taken for a path would open (and close) fd 1
    if not isinstance(file, (str, bytes)) and not hasattr(file, "__fspath__"):
        raise TypeError("not a path")
    return _open(file, *a, **k)


builtins.open = io.open = no_fd_open


class Slow(BaseException):  # not Exception: library code that catches Exception must not swallow it
    pass


ARMED = {"on": False}  # the timer interrupts a probe only: never the sweep's own bookkeeping


def alarm(*_):
    if ARMED["on"]:
        raise Slow()


signal.signal(signal.SIGALRM, alarm)
seen, fns = set(), []
only = json.loads(sys.argv[3]) if len(sys.argv) > 3 else None  # these modules only
for m in pkgutil.walk_packages(kdlab.__path__, "kdlab."):
    if m.name.startswith("kdlab.checks") or m.name.endswith("__main__"):
        continue  # the checks themselves: probes and verdicts (they compute no answer)
    if only is not None and m.name not in only:
        continue
    mod = importlib.import_module(m.name)
    for name, f in vars(mod).items():
        if callable(f) and not name.startswith("__") and getattr(f, "__module__", "").startswith("kdlab") \
                and id(f) not in seen:
            seen.add(id(f))
            fns.append((f"{m.name}.{name}", f))


kdlab.runtime.checking = contextlib.nullcontext  # full Python: no refusal inside a check
kdlab.checks._probe.checking = contextlib.nullcontext


def curried(f, k):
    return lambda *a, **kw: f(*a[k:], **kw)(*a[:k])


def numpy_to_torch(f):
    import numpy as np, torch
    def g(*a, **kw):
        out = f(*a, **kw)
        like = next((x for x in a if torch.is_tensor(x)), None)
        if torch.is_tensor(out) or like is None:
            return out
        return torch.from_numpy(np.asarray(out)).to(like.dtype)
    return g


inputs = json.loads(sys.argv[1])
out = open(sys.argv[2], "w", buffering=1)
# The inputs of each (check, seed) are made once; every probe gets a deep copy of its own (a
# candidate may change what it is handed). Each check's probe first runs once on a candidate
# that returns nothing, before the timer is ever armed: what a probe imports on its first run
# (an optimizer imports torch._dynamo, Lab 07's GPT-2 imports half of transformers: seconds)
# is then imported whole. Cut halfway by the timer, such an import left torch._dynamo or
# transformers broken, and the probe of those checks raised for every later callable.
made = {}
for check, seed in inputs:
    made[check, seed] = CHECKS[check].inputs(seed)
    try:
        probe_data(CHECKS[check], lambda *a, **k: None, seed, inputs=copy.deepcopy(made[check, seed]))
        out.write(json.dumps({"warm": check, "seed": seed}) + "\n")
    except BaseException as e:  # the parent fails the test: this check would probe nothing
        out.write(json.dumps({"warm": check, "seed": seed, "error": f"{type(e).__name__}: {e}"}) + "\n")


def close_figures():  # a plotting callable's figures stay open in pyplot: each probe closes them
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


for name, f in fns:
    slow, t0 = 0, time.process_time()
    for label, cand in [("", f), ("numpy", numpy_to_torch(f))] + [(f"curried {k}", curried(f, k)) for k in (2, 3)]:
        for check, seed in inputs:
            if slow >= 2 or time.process_time() - t0 > 5:  # it trains, loads or draws: it had its chance
                break
            inp = copy.deepcopy(made[check, seed])
            try:  # armed inside the try: a signal that fires as the probe returns is caught here
                ARMED["on"] = True
                signal.setitimer(signal.ITIMER_REAL, 1.0, 0.2)  # then every 0.2 s: a probe calls its candidate many times, each call interrupted
                data = probe_data(CHECKS[check], cand, seed, inputs=inp)
            except Slow:
                data, slow = None, slow + 1
            except BaseException:  # the probe itself choked on what came back
                data = None
            finally:
                ARMED["on"] = False  # first: a signal handled from here on returns without raising
                signal.setitimer(signal.ITIMER_REAL, 0)
                close_figures()
            text = json.dumps(data) if data is not None else None
            if text is not None and '"type": "Slow"' in text:
                slow += 1
            if text is not None:
                out.write(json.dumps({"fn": name, "how": label, "check": check, "seed": seed})[:-1]
                          + ', "data": ' + text + "}\n")
    out.write(json.dumps({"fn": name, "cpu": time.process_time() - t0}) + "\n")
out.write(f"DONE {len(fns)}\n")
out.close()
'''


def test_no_callable_of_the_sandbox_kdlab_passes_a_check(tmp_path):
    """Every callable of the sandbox's copy of kdlab (public or not, also curried as
    ``f(T, alpha)(s, t, y)`` and with numpy results turned into tensors), with the course's
    refusal inside a check switched off (the student has full Python), is probed as the
    answer of every check on fresh inputs: none passes its verdict. With nothing stripped
    (KDLAB_TEST_NO_STRIP=1) it fails: the figures' entropy passes check_entropy and
    ``kd.distill.loss(T, alpha)(s, t, y)`` passes check_kd_loss. (``fit`` and
    ``compress._grid`` answer only inside code a student writes around them: they are
    stripped as well, see ``sandbox.STRIPPED``.)"""
    import os

    from kdlab.grading import sandbox

    site = sandbox.kdlab_copy(tmp_path / "site", data=False,
                              strip=not os.environ.get("KDLAB_TEST_NO_STRIP"))  # the control
    passed = sweep(site, tmp_path)
    assert not passed, passed


def sweep(site, tmp_path, only=None) -> list:
    """Probe every callable of the kdlab in folder `site` (a path holding "/site/"), or of the
    modules `only`, as the answer of every check (see ``SWEEP``); return what passed a verdict.

    Each check's inputs and answer key are made once here too, and each verdict gets a copy of
    the inputs; records with the same data (a callable that raises the same error as is and
    with numpy results turned into tensors) get the same verdict: it is given once."""
    import copy
    import json
    import subprocess
    import sys

    from kdlab.checks._registry import judge
    from kdlab.grading import keys

    todo = [(name, 7) for name in sorted(CHECKS)]
    found = tmp_path / "sweep.jsonl"
    argv = [sys.executable, "-c", SWEEP, json.dumps(todo), str(found)]
    argv += [json.dumps(sorted(only))] if only is not None else []
    p = subprocess.run(argv, capture_output=True, text=True,
                       cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin",
                                          "KDLAB_QUICK": "1", "OMP_NUM_THREADS": "1",
                                          "KDLAB_THREADS": "1", "MPLBACKEND": "Agg",
                                          "HOME": str(tmp_path)}, timeout=1500)
    lines = found.read_text().splitlines() if found.exists() else []
    assert lines and lines[-1].startswith("DONE"), (p.returncode, lines[-3:], p.stderr[-3000:])
    warm = {(d["warm"], d["seed"]): d.get("error", "")
            for d in (json.loads(line) for line in lines if line.startswith('{"warm"'))}
    assert warm == {t: "" for t in todo}, f"a check's probe failed before any callable: {warm}"
    passed, made, verdicts = [], {}, {}
    for line in lines:
        head, sep, data = line.partition(', "data": ')  # the child writes the data last
        if not sep:
            continue
        d = json.loads(head + "}")
        check, seed = CHECKS[d["check"]], d["seed"]
        if (check.name, seed) not in made:
            inputs = check.inputs(seed)
            made[check.name, seed] = inputs, keys.make(check.name, copy.deepcopy(inputs))
        if (check.name, seed, data) not in verdicts:
            inputs, key = made[check.name, seed]
            try:
                judge(check, json.loads(data[:-1]), seed, key=key, inputs=copy.deepcopy(inputs))
                verdicts[check.name, seed, data] = True
            except AssertionError:
                verdicts[check.name, seed, data] = False
        if verdicts[check.name, seed, data]:
            passed.append(f"{d['fn']} ({d['how'] or 'as is'}) passes check_{d['check']}")
    return passed


def test_checks_never_import_the_grading_package():
    """kdlab.checks judges the notebook's own cases without kdlab.grading (the student's side
    never reaches the grader's code); keys of other inputs come only from a key maker the
    grader registers, and without one a check says so."""
    import subprocess
    import sys
    code = ("import sys, torch, kdlab.checks as C\n"
            "C.check_entropy(lambda p: -torch.xlogy(p, p).sum(-1))\n"
            "assert not [m for m in sys.modules if m.startswith('kdlab.grading')], 'grading imported'\n"
            "from kdlab.checks._registry import NoAnswerKey, answer_key\n"
            "try:\n    answer_key(C.CHECKS['entropy'], seed=3)\nexcept NoAnswerKey as e:\n    print('NoAnswerKey', e)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "PASSED check_entropy" in p.stdout and "NoAnswerKey" in p.stdout, p.stdout
    root = Path(kdlab.__file__).parent / "checks"
    for path in root.glob("*.py"):
        assert not re.search(r"^\s*(from|import) kdlab\.grading|from \.\.grading", path.read_text(), re.M), path
