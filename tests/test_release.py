"""The student release: no solution of solutions/ anywhere in it; it installs and opens its labs."""
import json
import re
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
        assert (tree / "train.py").exists() and (tree / "checks").is_dir()
        for name in sandbox.INSTRUCTOR_ONLY:
            assert not (tree / name).exists(), f"{tree / name}"
