"""Test-suite default: the quick budget, set before any notebook kernel starts (kernels
inherit it). Students get the full budget: they do not run pytest. And the grading tests'
gradings start in the background once the tests are collected: the course grading is also the
suite's one run of the solution notebooks (testpaths leave out solutions/).
"""
import os

os.environ.setdefault("KDLAB_QUICK", "1")


def pytest_collection_finish(session):
    """Start tests/test_grading.py's gradings (sandboxed kernels, minutes of CPU) in the
    background right after collection, when a selected test needs them: they then run beside
    the rest of the suite, which leaves a core idle most of the time."""
    if session.config.option.collectonly:
        return
    wanted = {"graded": "hostile", "course_graded": "course"}
    modules: dict = {}
    for item in session.items:
        module = getattr(item, "module", None)
        names = {wanted[f] for f in getattr(item, "fixturenames", ()) if f in wanted}
        if names and hasattr(module, "start_gradings"):
            modules.setdefault(module, set()).update(names)
    for module, names in modules.items():
        module.start_gradings(sorted(names), session.config._tmp_path_factory.mktemp("gradings"))
