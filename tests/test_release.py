"""The student release: no solution of solutions/ anywhere in it; it installs and opens its labs."""
import json
import re
import shutil
import site
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from kdlab.grading.markers import BEGIN_SOLUTION, END_SOLUTION
from kdlab.authoring.release import make_release

ROOT = Path(__file__).resolve().parents[1]


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def solution_bodies():
    """Every block between the solution markers in solutions/, whitespace-normalised."""
    out = []
    for path in sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            src = "".join(cell["source"])
            for body in re.findall(re.escape(BEGIN_SOLUTION) + r"[^\n]*\n(.*?)" + re.escape(END_SOLUTION),
                                   src, flags=re.S):
                body = "\n".join(ln for ln in body.splitlines() if not ln.strip().startswith("#"))
                if len(_norm(body)) >= 25:
                    out.append((path.name, cell["id"], _norm(body)))
    return out


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    out = tmp_path_factory.mktemp("rel") / "release"
    make_release(out, labs_dir=ROOT / "labs", log=lambda *a: None)
    return out


def test_no_solution_in_the_release(release):
    bodies = solution_bodies()
    assert len(bodies) >= 8, "found too few solution blocks to test"
    files = [p for p in release.rglob("*") if p.is_file()]
    names = {p.relative_to(release).parts[0] for p in files}
    assert "solutions" not in names and "tests" not in names and "benchmarks" not in names
    assert not (release / "kdlab" / "grading").exists(), "instructor tooling in the release"
    assert not (release / "kdlab" / "authoring").exists(), "instructor tooling in the release"
    for p in files:
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        assert BEGIN_SOLUTION not in text and "BEGIN HIDDEN TESTS" not in text, p
        flat = _norm(text if p.suffix != ".ipynb" else " ".join(
            "".join(c["source"]) for c in json.loads(text)["cells"]))
        for nb, cid, body in bodies:
            assert body not in flat, f"{p.relative_to(release)} contains the solution of {nb} cell {cid}"


def test_release_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("")
    with pytest.raises(FileExistsError, match="not empty"):
        make_release(tmp_path / "x", labs_dir=ROOT / "labs", log=lambda *a: None)


def test_release_installs_and_opens_its_labs(release, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(target), str(release)],
                   check=True, cwd=tmp_path, capture_output=True)
    labs = sorted((release / "labs").glob("*.ipynb"))
    assert labs and (release / "README.md").read_text().count("labs/") >= len(labs)
    setup = next(c.source for c in nbformat.read(str(labs[0]), as_version=4).cells if c.id == "setup")
    code = ("import kdlab, nbformat\n"
            f"assert kdlab.__file__.startswith({str(target)!r}), kdlab.__file__\n"
            f"for p in {[str(p) for p in labs]!r}:\n"
            "    nbformat.validate(nbformat.read(p, as_version=4))\n"
            + setup + "\nprint('opened', kdlab.__file__)\n"
            # the student's validate runs from the release's copies of the rule and the screen
            "from kdlab import validate\n"
            "assert validate.screen.__name__ == 'kdlab._screen', validate.screen\n"
            f"print('validate', validate.validate({str(labs[0])!r}, labs_dir={str(release / 'labs')!r}, run=False))")
    # -S: the development environment's editable-install hook must not supply kdlab
    paths = [str(target)] + [p for p in site.getsitepackages() if Path(p).is_dir()]
    p = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, capture_output=True,
                       text=True, env={"PYTHONPATH": ":".join(paths), "PATH": "/usr/bin:/bin",
                                       "HOME": str(tmp_path), "KDLAB_QUICK": "1"}, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "opened" in p.stdout
    # the blank lab: the right name, nothing refused
    assert "is the name the grader expects" in p.stdout and "nothing in your cells is refused" in p.stdout


def test_release_from_another_folder_says_how_to_submit(tmp_path):
    """`release` finds the installed course's labs from any folder; the student README says
    how to submit and how to validate; environment.yml installs the course without its test
    extra."""
    p = subprocess.run([sys.executable, "-m", "kdlab.authoring", "release", "rel"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    rel = tmp_path / "rel"
    readme = (rel / "README.md").read_text()
    assert "## How to submit" in readme and "python -m kdlab.validate labs/01_softmax_temperature.ipynb" in readme
    env = (rel / "environment.yml").read_text()
    assert "pytest" not in env and "nbval" not in env and "playwright" not in env and "[test]" not in env
    assert "torch==" in env and env.rstrip().endswith("- .")
    assert (rel / "kdlab" / "_pick.py").exists() and (rel / "kdlab" / "_screen.py").exists()


def test_instructor_only_packages_reach_neither_students_nor_the_sandbox(release, tmp_path):
    """kdlab.grading (the grader, the answer keys) and kdlab.authoring (making the course) are
    sandbox.INSTRUCTOR_ONLY: neither the release nor the sandbox's copy of kdlab holds them."""
    import kdlab
    from kdlab.grading import sandbox
    assert sandbox.INSTRUCTOR_ONLY == ("grading", "authoring")
    root = Path(kdlab.__file__).parent
    assert all((root / name / "__init__.py").exists() for name in sandbox.INSTRUCTOR_ONLY)
    copy = sandbox.kdlab_copy(tmp_path / "site", data=False)
    for tree in (release / "kdlab", copy / "kdlab"):
        assert (tree / "data.py").exists() and (tree / "checks").is_dir()
        for name in sandbox.INSTRUCTOR_ONLY:
            assert not (tree / name).exists(), f"{tree / name}"


READABLE = r'''
import hashlib, importlib, inspect, json, pkgutil, sys
import kdlab
assert kdlab.__file__.startswith(sys.argv[1]), kdlab.__file__
out = {}
for m in pkgutil.walk_packages(kdlab.__path__, "kdlab."):
    if m.name.startswith("kdlab.checks") or m.name.endswith("__main__"):
        continue  # as in the sweep: the checks' probes and verdicts compute no answer
    try:
        mod = importlib.import_module(m.name)
    except ImportError:  # the sandbox's kdlab.validate: neither kdlab.grading nor its copies
        continue
    for name, f in vars(mod).items():
        if callable(f) and not name.startswith("__") and getattr(f, "__module__", "").startswith("kdlab"):
            try:
                src = inspect.getsource(f)
            except (OSError, TypeError):
                continue
            out[f"{m.name}.{name}"] = hashlib.sha256(src.encode()).hexdigest()
print(json.dumps(out))
'''

# the course's helpers that compute an answer, run from the release (compiled) and printed
HELPERS = r'''
import inspect, json, sys
import numpy as np, torch
import kdlab as kd
import kdlab.plot
assert kd.train.__file__.endswith("train.pyc"), kd.train.__file__
torch.manual_seed(0)
s, t, y = torch.randn(8, 5, requires_grad=True), torch.randn(8, 5), torch.randint(0, 5, (8,))
out = {"kd_loss": kd.distill.loss(4.0, 0.9)(s, t, y).item()}
model, teacher = torch.nn.Linear(5, 5), torch.nn.Linear(5, 5)
data = [(torch.randn(4, 5), torch.randint(0, 5, (4,))) for _ in range(2)]
kd.train.fit(model, data, kd.distill.loss(4.0, 0.9), teacher=teacher, progress=False)
out["fit"] = model.weight.detach().reshape(-1).tolist()
w = torch.randint(-7, 8, (3, 4)).float()
w[:, 0] = 7
out["grid"] = [x.reshape(-1).tolist() for x in kd.compress._grid(w * 0.05, 4)]  # a 4-bit weight
out["soft"] = kd.plot.probabilities.soft_probabilities(np.array([[1.0, 2.0, 3.0]]), 2.0).tolist()
out["doc"] = kd.train.fit.__doc__.splitlines()[0]
print(json.dumps(out))
'''


def _run_with(path, code, *args):
    """Run `code` with the kdlab found in folder `path` (not the development one)."""
    paths = [str(path)] + [p for p in site.getsitepackages() if Path(p).is_dir()]
    p = subprocess.run([sys.executable, "-S", "-c", code, str(path), *args], capture_output=True, cwd=path,
                       text=True, timeout=600, env={"PYTHONPATH": ":".join(paths), "PATH": "/usr/bin:/bin",
                                                    "HOME": str(path), "KDLAB_QUICK": "1",
                                                    "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"})
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_release_shows_no_source_of_a_helper_that_answers(release, tmp_path):
    """The helpers that compute an exercise's answer (``kd.distill.loss`` and ``kd.train.fit``,
    ``kd.compress._grid``, the figures' softmax and entropy: every helper the grading sandbox
    strips) ship compiled: ``inspect.getsource`` (``??``) finds no code, and no file of the
    release holds their definitions. Every function of the release whose source is readable
    either is the sandbox's own (which test_no_answers' sweep probes as every check's
    answer) or is swept here: none reproduces a check's answer."""
    from kdlab.authoring import release as rel
    from kdlab.grading import sandbox
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from test_no_answers import sweep
    finally:
        sys.path.remove(str(ROOT / "tests"))
    assert set(sandbox.STRIPPED) <= set(rel.SEALED), "a module with an answering helper ships as source"
    for module in rel.SEALED:
        assert not (release / "kdlab" / module).exists(), module
        assert (release / "kdlab" / module).with_suffix(".pyc").is_file(), module
    stripped = {f"kdlab.{m[:-3].replace('/', '.')}.{n}" for m, names in sandbox.STRIPPED.items() for n in names}
    for p in release.rglob("*.py"):
        for name in stripped:
            assert f"def {name.rsplit('.', 1)[1]}(" not in p.read_text(), (p, name)
    site_dir = tmp_path / "r" / "site"  # the sweep wants a path holding /site/
    shutil.copytree(release / "kdlab", site_dir / "kdlab")
    readable = _run_with(site_dir, READABLE)
    assert not stripped & set(readable), stripped & set(readable)
    assert "kdlab.train._check_labels" not in readable and "kdlab.data.mnist" in readable  # compiled / not
    sbx = sandbox.kdlab_copy(tmp_path / "s" / "site", data=False)
    swept = _run_with(sbx, READABLE)  # what test_no_callable_of_the_sandbox_kdlab_passes_a_check probes
    new = sorted({name.rsplit(".", 1)[0] for name, h in readable.items() if swept.get(name) != h})
    assert "kdlab._screen" in new, new  # the grader's screen, shipped for kdlab.validate
    assert sweep(site_dir, tmp_path, only=new) == []


def test_release_notebooks_run_the_compiled_helpers(release, tmp_path):
    """The labs' later cells still run the compiled helpers: from the release they give the
    same numbers as their source (training, loss, quantization grid, the figures' softmax),
    and Lab 03's setup cells import the course."""
    import numpy as np
    import torch

    import kdlab as kd
    import kdlab.plot
    got = _run_with(release, HELPERS)
    torch.manual_seed(0)
    s, t, y = torch.randn(8, 5, requires_grad=True), torch.randn(8, 5), torch.randint(0, 5, (8,))
    assert got["kd_loss"] == kd.distill.loss(4.0, 0.9)(s, t, y).item()
    model, teacher = torch.nn.Linear(5, 5), torch.nn.Linear(5, 5)
    data = [(torch.randn(4, 5), torch.randint(0, 5, (4,))) for _ in range(2)]
    kd.train.fit(model, data, kd.distill.loss(4.0, 0.9), teacher=teacher, progress=False)
    assert got["fit"] == model.weight.detach().reshape(-1).tolist()
    w = torch.randint(-7, 8, (3, 4)).float()
    w[:, 0] = 7
    assert got["grid"] == [x.reshape(-1).tolist() for x in kd.compress._grid(w * 0.05, 4)]
    assert got["soft"] == kd.plot.probabilities.soft_probabilities(np.array([[1.0, 2.0, 3.0]]), 2.0).tolist()
    assert got["doc"] == kd.train.fit.__doc__.splitlines()[0]  # help() still explains them
    lab = next((release / "labs").glob("03_*.ipynb"))
    cells = [c.source for c in nbformat.read(str(lab), as_version=4).cells
             if c.cell_type == "code" and c.get("id") in ("setup", "imports", "settings")]
    assert cells, "Lab 03 has no setup cell"
    code = "\n".join(cells) + "\nimport json\nprint(json.dumps([kd.train.fit.__module__, kd.train.__file__]))"
    module, where = _run_with(release, code)
    assert module == "kdlab.train" and where.endswith("train.pyc"), where
