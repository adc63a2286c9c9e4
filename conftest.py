"""Test-suite default: the quick budget, set before any notebook kernel starts (kernels
inherit it). Students get the full budget: they do not run pytest. And the grading tests'
gradings start in the background before the first test: the course grading is also the
suite's one run of the solution notebooks (testpaths leave out solutions/).

``make test`` runs the suite in two pytest-xdist workers (``-n 2 --dist loadfile``: a test
file's module fixtures run once), each with one torch thread: two processes on two cores,
the background gradings beside them. The workers share one run of each grading.
"""
import os
import time

import pytest

import kdlab._nbformat  # noqa: F401 - the tests' nbformat without jsonschema's unused "iri" grammar (~1.3 s per worker)

os.environ.setdefault("KDLAB_QUICK", "1")

_GRADINGS = {"graded": "hostile", "course_graded": "course"}  # fixture -> grading


def _worker(config):
    """("gw0", number of workers) in a pytest-xdist worker, else None (a plain run; also a
    pytest a test starts, which inherits the worker's environment variables)."""
    info = getattr(config, "workerinput", None)
    return (info["workerid"], info["workercount"]) if info else None


def pytest_configure(config):
    """In an xdist worker: one torch thread, here and in the kernels and subprocesses its tests
    start (unless a test or the user says otherwise): a second thread would only wait for the
    other worker and the background gradings."""
    if _worker(config):
        import torch
        torch.set_num_threads(1)
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        os.environ.setdefault("KDLAB_THREADS", "1")


# files whose few tests take long (the sweep of every callable: minutes; every benchmark's
# tiny run; the browser): under xdist they start first, not last beside an idle core
LONG_FIRST = ("test_no_answers.py", "test_benchmarks.py", "test_browser.py")


def pytest_collection_modifyitems(config, items):
    if _worker(config):  # every worker sorts alike (xdist checks the collections are equal)
        items.sort(key=lambda item: item.path.name not in LONG_FIRST)


def _shared_folder(config, tmp_path_factory):
    """The folder the xdist workers of this run share (None without xdist)."""
    if not _worker(config):
        return None
    folder = tmp_path_factory.getbasetemp().parent / "shared-gradings"
    folder.mkdir(exist_ok=True)
    return folder


def _others_finished(config, shared) -> bool:
    """Whether every other xdist worker of this run has finished its tests."""
    me, count = _worker(config)
    return len([p for p in shared.glob("*.finished") if p.stem != me]) >= count - 1


@pytest.fixture(scope="session", autouse=True)
def _background_gradings(request, tmp_path_factory):
    """Start tests/test_grading.py's gradings (sandboxed kernels, minutes of CPU) before the
    first test, when a selected test needs them: they then run beside the rest of the suite,
    which leaves a core idle most of the time. At the end of the session, what is still
    running is killed (a session stopped early by Ctrl-C or -x does not wait for it).

    Under xdist every worker collects every test: the first worker to claim a grading runs
    it, the others read its result (test_grading.SHARED), and a worker that runs a grading
    another one still needs waits for it before its session ends."""
    shared = _shared_folder(request.config, tmp_path_factory)
    modules: dict = {}
    for item in request.session.items:
        module = getattr(item, "module", None)
        names = {_GRADINGS[f] for f in getattr(item, "fixturenames", ()) if f in _GRADINGS}
        if names and hasattr(module, "start_gradings"):
            modules.setdefault(module, set()).update(names)
    for module, names in modules.items():
        if shared is not None:
            module.SHARED = shared
            names = {n for n in names if module.claim(n, shared)}
        module.start_gradings(sorted(names), tmp_path_factory.mktemp("gradings"), shared)
    yield
    if shared is not None:
        (shared / f"{_worker(request.config)[0]}.finished").touch()
        while (any(m.running_gradings() for m in modules)
               and not _others_finished(request.config, shared)
               and not request.session.shouldstop):
            time.sleep(0.5)
    for module in modules:
        module.stop_gradings()

# The checks judge any inputs where the instructor's answer keys are installed (the grader
# hands them over; kdlab.checks never imports kdlab.grading): the tests of the checks judge
# fresh seeds as the grader does.
import kdlab.grading.keys  # noqa: E402,F401

# An answer key is a function of (check, seed, params): the check tests judge dozens of
# answers on the same fresh seed, and each judge() without a key made the same key again
# (a reference training step: seconds). The session makes each key once and hands each
# verdict its own copy, as the grader hands over the one key of a seed.
import copy  # noqa: E402
import json  # noqa: E402

from kdlab.checks import _registry  # noqa: E402

_answer_key, _KEYS_MADE = _registry.answer_key, {}


def _answer_key_once(check, seed=None, params=None):
    if seed is None or not _registry.KEY_MAKERS:  # shipped keys (a file) or NoAnswerKey
        return _answer_key(check, seed, params)
    made_by = (check.name, check.inputs, _registry.KEY_MAKERS[-1], seed,
               json.dumps(params or {}, sort_keys=True, default=repr))
    if made_by not in _KEYS_MADE:
        _KEYS_MADE[made_by] = _answer_key(check, seed, params)
    return copy.deepcopy(_KEYS_MADE[made_by])


_registry.answer_key = _answer_key_once


# KDLAB_TIMELINE=FILE: one JSON line per test (worker, test, start, end, process CPU seconds
# used during it), to see where a run's wall time goes (which worker idles, and when).
_TIMELINE = os.environ.get("KDLAB_TIMELINE")
if _TIMELINE:
    def pytest_runtest_protocol(item, nextitem):
        item._kdlab_t = (time.time(), time.process_time())

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_teardown(item, nextitem):
        t0, c0 = getattr(item, "_kdlab_t", (time.time(), time.process_time()))
        wid = (_worker(item.config) or ("main", 1))[0]
        with open(_TIMELINE, "a") as f:
            f.write(json.dumps({"w": wid, "test": item.nodeid, "start": t0, "end": time.time(),
                                "cpu": time.process_time() - c0}) + "\n")
