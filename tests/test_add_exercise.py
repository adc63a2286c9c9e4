"""INSTRUCTORS.md's "Adding an exercise and its check", walked in a temporary copy of the tree.

A throwaway exercise (Lab 01's ``total_mass(p)``: the sum of each distribution, whose one
named mistake is the mean) is added by the documented steps, then the documented commands
run (make-keys, make-labs, the check tests); only the exercise's own files change. Removing it
(its files as they were, then make-keys and make-labs) gives back the tree byte for byte.
"""
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NAME = "total_mass"

# the documented steps, in INSTRUCTORS.md's order: file -> what the step appends
CHECK = '''

# ------------------------------------------------------------------ total mass (an added exercise)

TOTAL_MASS_MISTAKES = [
    Mistake("mean", "your result is the mean over classes, not the sum",
            "the mass is the sum over the last dimension: .sum(-1), not .mean(-1)"),
]


def total_mass_inputs(seed=None) -> dict:
    """Inputs of the total-mass check: a (3, 4) batch of distributions."""
    g = check_total_mass.rng(seed)
    return {"cases": [(torch.softmax(torch.randn(3, 4, generator=g), -1), "a (3, 4) batch")]}


def total_mass_probe(fn, inp) -> dict:
    """Call fn on each batch of ``total_mass_inputs``; record the outcomes."""
    return {"cases": [_p.call(fn, p.clone())[0] for p, _ in inp["cases"]]}


def total_mass_verdict(check, data, inp, key) -> str:
    """Check ``fn(p)`` = p.sum(-1): (N, C) -> (N,)."""
    for (p, where), k, out in paired(inp["cases"], key["cases"], data["cases"]):
        got = result(check.title, out)
        name_mistake(check, got, k["mistakes"], where)
        cmp(check.title, got, k["expected"], f"{where}: the total mass",
            hint="sum over the last dimension")
    return "every row sums to 1"


check_total_mass = Check("total_mass", total_mass_inputs, total_mass_probe,
                         total_mass_verdict, TOTAL_MASS_MISTAKES)
'''
KEY = '''

def total_mass(p: torch.Tensor) -> torch.Tensor:
    """Reference: the mass of each distribution, (..., C) -> (...)."""
    return p.sum(-1)


@key_of(check_total_mass)
def total_mass_key(inp: dict) -> dict:
    """The right and mistaken masses of every case of ``total_mass_inputs``."""
    return {"cases": [{"expected": total_mass(p), "mistakes": [["mean", p.mean(-1), {}]]}
                      for p, _ in inp["cases"]]}
'''
TESTS = '''

def test_total_mass_accepts_the_sum_and_names_the_mean(capsys):
    from kdlab.checks.lab01 import check_total_mass
    check_total_mass(lambda p: p.sum(-1))
    assert capsys.readouterr().out.startswith(PASS_MARK)
    with pytest.raises(AssertionError, match="mean over classes, not the sum"):
        check_total_mass(lambda p: p.mean(-1))
    with pytest.raises(AssertionError, match="the total mass"):
        check_total_mass(lambda p: p.max(-1).values)
'''
EXERCISE = {"cell_type": "code", "id": "ex-total-mass", "metadata": {"kdlab": {"exercise": NAME}},
            "execution_count": None, "outputs": [],
            "source": "def total_mass(p):\n    \"\"\"The mass of each distribution: (..., C) -> (...).\"\"\"\n"
                      "    ### BEGIN SOLUTION\n    return p.sum(-1)\n    ### END SOLUTION\n"}
CHECK_CELL = {"cell_type": "code", "id": "check-total-mass", "execution_count": None, "outputs": [],
              "metadata": {"kdlab": {"check": NAME, "points": 1}},
              "source": f"kd.checks.check_{NAME}({NAME})"}
OWN_FILES = {"solutions/01_softmax_temperature.ipynb", "kdlab/checks/lab01.py",
             "kdlab/grading/keys/lab01.py",
             "tests/test_checks_lab01.py", f"kdlab/checks/keys/{NAME}.json",
             "labs/01_softmax_temperature.ipynb"}


def _tree(root: Path) -> dict:
    """{relative path: sha256} of the files under root (no caches)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()
            and "__pycache__" not in p.parts and ".pytest_cache" not in p.parts}


def _run(copy: Path, *args, timeout=600) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(PYTHONPATH=str(copy), KDLAB_QUICK="1", PYTHONDONTWRITEBYTECODE="1")
    p = subprocess.run([sys.executable, *args], cwd=copy, env=env, capture_output=True,
                       text=True, timeout=timeout)
    assert p.returncode == 0, (args, p.stdout[-3000:], p.stderr[-3000:])
    return p.stdout


@pytest.fixture
def copy(tmp_path):
    """The course's files (kdlab, solutions, labs, tests, the project files) in a new folder."""
    dst = tmp_path / "course"
    for name in ("kdlab", "solutions", "labs", "tests"):
        shutil.copytree(ROOT / name, dst / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"))
    for name in ("pyproject.toml", "conftest.py", "INSTRUCTORS.md"):
        shutil.copyfile(ROOT / name, dst / name)
    return dst


def test_adding_an_exercise_touches_its_own_files_only(copy):
    guide = (ROOT / "INSTRUCTORS.md").read_text()
    assert "### Adding an exercise and its check" in guide
    for documented in ("kdlab/checks/lab04.py", "kdlab/grading/keys/lab04.py", "make-keys",
                       "make labs", "Check(\"attention_loss\"", "@key_of(check_attention_loss)"):
        assert documented in guide, documented
    before = _tree(copy)
    kept = {rel: (copy / rel).read_bytes() for rel in OWN_FILES if (copy / rel).exists()}

    # 1. the solution: the exercise cell and its check cell
    from kdlab.grading import notebook_io
    sol = copy / "solutions/01_softmax_temperature.ipynb"
    nb = notebook_io.read(sol)
    nb["cells"] += [EXERCISE, CHECK_CELL]
    sol.write_text(notebook_io.dumps(nb), encoding="utf-8")
    # 2. the check, 3. its key, 4. its tests
    with open(copy / "kdlab/checks/lab01.py", "a") as f:
        f.write(CHECK)
    keys = copy / "kdlab/grading/keys/lab01.py"
    text = keys.read_text()
    assert "from kdlab.checks.lab01 import " in text
    keys.write_text(text.replace("from kdlab.checks.lab01 import ",
                                 "from kdlab.checks.lab01 import check_total_mass, ", 1))
    with open(keys, "a") as f:
        f.write(KEY)
    with open(copy / "tests/test_checks_lab01.py", "a") as f:
        f.write(TESTS)

    # the commands
    assert NAME in _run(copy, "-m", "kdlab.authoring", "make-keys")
    assert "wrote labs/01_softmax_temperature.ipynb" in _run(copy, "-m", "kdlab.authoring", "make-labs")
    whole = ["tests/test_no_answers.py::test_shipped_keys_are_those_of_the_notebooks_cases",
             "tests/test_generator.py::test_committed_labs_match_solutions"]
    # -k selects in every file named: the two named tests are selected by their names too
    out = _run(copy, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
               "tests/test_checks_lab01.py", "tests/test_checks_keys.py", *whole,
               "-k", " or ".join(["total_mass"] + [t.rsplit("::", 1)[1] for t in whole]),
               timeout=1200)
    assert " passed" in out and "failed" not in out, out[-2000:]
    for test in whole:
        assert f"PASSED {test}" in out, (test, out[-2000:])
    lab = notebook_io.read(copy / "labs/01_softmax_temperature.ipynb")
    (cell,) = [c for c in lab["cells"] if c["id"] == "ex-total-mass"]
    assert "raise NotImplementedError" in cell["source"] and "p.sum(-1)" not in cell["source"]

    after = _tree(copy)
    changed = {rel for rel in before.keys() | after.keys() if before.get(rel) != after.get(rel)}
    assert changed == OWN_FILES, sorted(changed ^ OWN_FILES)

    # removed: the files as they were, then the same commands
    for rel in OWN_FILES:
        if rel in kept:
            (copy / rel).write_bytes(kept[rel])
    _run(copy, "-m", "kdlab.authoring", "make-keys")
    _run(copy, "-m", "kdlab.authoring", "make-labs")
    assert _tree(copy) == before
