"""Right answers pass on every kind of CPU: the checks under each of torch's CPU capabilities.

Float32 results differ in their last bits between vector instruction sets (a softmax on
AVX-512 and on AVX2 rounds differently), and the keys of the notebooks' own cases ship as
numbers computed on one machine. A check that compares exactly with such numbers rejects
right answers on another kind of CPU. ``ATEN_CPU_CAPABILITY`` makes torch use another kind's
kernels on this machine, so each capability this CPU can run is tried here:

- ``test_solutions_pass_their_checks``: every exercise of every solution notebook, run
  through its check cell (the notebook's own cases, against the shipped keys);
- the "accepts" sets of the check tests (right answers written in several ways), on the
  notebook's cases;

each in a child pytest run per capability (``test_checks_pass_under_every_capability``).
"""
from __future__ import annotations

import ast
import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import kdlab.grading.keys  # noqa: F401 - the solutions' hidden tests judge other inputs
import torch

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
CHILD = "KDLAB_PORTABILITY_CHILD"

# the check tests whose right answers run on the notebook's own cases (the shipped keys);
# tests on fresh seeds compute their keys on the same CPU and are left to the main run
ACCEPTS = "(accept or (right and pass and not fresh)) and not fresh_inputs"


def _flags() -> set:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def capabilities() -> list:
    """The CPU capabilities torch can use on this machine: default and avx2 on x86 with
    AVX2, avx512 where the CPU has AVX-512 (F, BW, VL, DQ); only default elsewhere."""
    flags = _flags()
    caps = ["default"]
    if {"avx2", "fma"} <= flags:
        caps.append("avx2")
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        caps.append("avx512")
    return caps


def _exercises_and_checks(path: Path):
    """(imports, [(kind, cell id, source, saved stdout)]) of a solution notebook, in order:
    the setup cell's and every code cell's top-level imports, the exercise cells and the
    check cells."""
    nb = nbformat.read(str(path), as_version=4)
    imports, cells = [], []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        imports += [ast.get_source_segment(cell.source, n) for n in tree.body
                    if isinstance(n, (ast.Import, ast.ImportFrom))]
        meta = cell.metadata.get("kdlab", {})
        if "exercise" in meta or "check" in meta:
            kind = "exercise" if "exercise" in meta else "check"
            cells.append((kind, cell.get("id"), cell.source))
    return imports, cells


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solutions_pass_their_checks(path):
    """Each exercise of the solution passes its check cell (hidden tests included) here,
    on the notebook's own cases against the shipped keys."""
    imports, cells = _exercises_and_checks(path)
    assert any(k == "check" for k, _, _ in cells), f"{path.name}: no check cell found"
    ns: dict = {}
    exec("\n".join(imports), ns)  # noqa: S102 - the course's own solution notebooks
    for kind, cid, src in cells:
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(src, f"{path.name}:{cid}", "exec"), ns)  # noqa: S102
        except AssertionError as e:
            pytest.fail(f"{path.name}, cell {cid}, CPU capability "
                        f"{torch.backends.cpu.get_cpu_capability()}: a right answer failed:\n{e}")
        if kind == "check":
            assert "PASSED" in out.getvalue(), f"{path.name}, cell {cid}: no PASSED line"


def _run_here(session, checks: list) -> list:
    """The tests a child run would select (see ACCEPTS) that this session runs itself, or []
    when the session may leave some of them out (a -k, -m, --deselect or --lf selection, or
    a check-test file or solution it did not collect)."""
    from _pytest.mark import KeywordMatcher
    from _pytest.mark.expression import Expression
    opt = session.config.option
    if (opt.keyword or opt.markexpr or getattr(opt, "deselect", None) or getattr(opt, "lf", False)
            or getattr(opt, "last_failed", False)):
        return []
    items = session.items
    files = {str(item.path) for item in items}
    solutions = {item.callspec.params["path"] for item in items
                 if item.originalname == "test_solutions_pass_their_checks"}
    if not set(checks) <= files or solutions != set(SOLUTIONS):
        return []
    accepts = Expression.compile(ACCEPTS)
    return [item for item in items if item.originalname == "test_solutions_pass_their_checks"
            or (str(item.path) in checks and accepts.evaluate(KeywordMatcher.from_item(item)))]


@pytest.mark.skipif(os.environ.get(CHILD) == "1", reason="already a child run")
@pytest.mark.parametrize("cap", capabilities())
def test_checks_pass_under_every_capability(cap, request):
    """Run the solutions and the right answers of the check tests under ATEN_CPU_CAPABILITY=cap.

    The capability torch already uses in this session (its default on this CPU) needs no
    child run when the session itself runs all those tests: the child would run the same
    tests again on the same kernels (for the session's results, see its own report)."""
    env = {**os.environ, "ATEN_CPU_CAPABILITY": cap, CHILD: "1", "KDLAB_QUICK": "1",
           "KDLAB_THREADS": "1", "OMP_NUM_THREADS": "1"}  # one torch thread, as said
    checks = sorted(str(p) for p in (ROOT / "tests").glob("test_checks_lab*.py"))
    probe = ("import torch; print('capability', torch.backends.cpu.get_cpu_capability())")
    seen = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                          text=True, timeout=120).stdout.split()[-1]
    assert seen.lower().startswith(cap[:6]) or (cap == "default" and seen == "DEFAULT"), (
        f"ATEN_CPU_CAPABILITY={cap} was not honoured: torch reports {seen}")
    here = _run_here(request.session, checks)
    if not os.environ.get("ATEN_CPU_CAPABILITY") and seen == torch.backends.cpu.get_cpu_capability() and here:
        assert len(here) >= 40 + len(SOLUTIONS), f"too few tests run under {cap} in this session"
        return
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
           "-o", "addopts=", "-W", "ignore::UserWarning",
           f"{__file__}::test_solutions_pass_their_checks", *checks, "-k",
           f"test_solutions_pass_their_checks or ({ACCEPTS})"]
    run = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    tail = "\n".join((run.stdout + run.stderr).splitlines()[-40:])
    assert run.returncode == 0, f"under ATEN_CPU_CAPABILITY={cap} ({seen}):\n{tail}"
    passed = int(next((w for ln in run.stdout.splitlines()[-3:] for w, nxt in
                       zip(ln.split(), ln.split()[1:]) if nxt.startswith("passed")), "0"))
    assert passed >= 40 + len(SOLUTIONS), f"too few tests ran under {cap}:\n{tail}"


def test_every_check_is_in_a_solution():
    """Every registered check is reached by some solution's check cell (so the test above
    covers every check's notebook cases)."""
    import kdlab

    called = set()
    for path in SOLUTIONS:
        _, cells = _exercises_and_checks(path)
        called |= {name for k, _, src in cells if k == "check"
                   for name in kdlab.checks.CHECKS if f"check_{name}(" in src}
    assert called == set(kdlab.checks.CHECKS), sorted(set(kdlab.checks.CHECKS) - called)
