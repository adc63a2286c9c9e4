"""Test-suite default: the quick budget, set before any notebook kernel starts (kernels
inherit it). Students get the full budget: they do not run pytest. And the grading tests'
gradings start in the background before the first test: the course grading is also the
suite's one run of the solution notebooks (testpaths leave out solutions/).
"""
import os

import pytest

os.environ.setdefault("KDLAB_QUICK", "1")

_GRADINGS = {"graded": "hostile", "course_graded": "course"}  # fixture -> grading


@pytest.fixture(scope="session", autouse=True)
def _background_gradings(request, tmp_path_factory):
    """Start tests/test_grading.py's gradings (sandboxed kernels, minutes of CPU) before the
    first test, when a selected test needs them: they then run beside the rest of the suite,
    which leaves a core idle most of the time. At the end of the session, what is still
    running is killed (a session stopped early by Ctrl-C or -x does not wait for it)."""
    modules: dict = {}
    for item in request.session.items:
        module = getattr(item, "module", None)
        names = {_GRADINGS[f] for f in getattr(item, "fixturenames", ()) if f in _GRADINGS}
        if names and hasattr(module, "start_gradings"):
            modules.setdefault(module, set()).update(names)
    for module, names in modules.items():
        module.start_gradings(sorted(names), tmp_path_factory.mktemp("gradings"))
    yield
    for module in modules:
        module.stop_gradings()

# The checks judge any inputs where the instructor's answer keys are installed (the grader
# hands them over; kdlab.checks never imports kdlab.grading): the tests of the checks judge
# fresh seeds as the grader does.
import kdlab.grading.keys  # noqa: E402,F401
