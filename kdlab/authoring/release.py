"""The student release: what an instructor hands to students, without answers.

    python -m kdlab.authoring release OUT     (make release)

OUT gets the generated lab notebooks (labs/), the kdlab package without the instructor-only
packages (``kdlab.grading`` and ``kdlab.authoring``, ``sandbox.INSTRUCTOR_ONLY``; only the
grader's file-name rule and screen, for ``kdlab.validate``), a
student README with the two commands and how to submit, pyproject.toml (without
the instructor's test configuration), environment.yml, a two-target Makefile and the licence.
No solutions/, no hidden tests, no tests/ or benchmarks/. The release is checked before it is
reported done: no notebook in it may contain a solution or hidden-test marker.

The course's helpers that compute an exercise's answer (``kd.distill.loss`` and
``kd.train.fit``: Lab 03's ``kd_loss`` and ``distill_step``; ``kd.compress._grid``: the
core of ``fake_quantize``; the figures' softmax and entropy) ship without their source:
the modules that hold them (``SEALED``) are compiled (``.pyc`` only), so the labs' later
cells still use them, and their docstrings and signatures still show, but ``??`` and
``inspect.getsource`` find no code to paste. Compiled code is tied to the Python version
that compiles it (the release's pyproject.toml says which): build the release with the
course's Python (environment.yml pins it). Bytecode can be disassembled (``dis``): this
hands out no source, it does not make the helpers secret.
"""
from __future__ import annotations

import py_compile
import re
import shutil
import sys
from pathlib import Path

from kdlab.grading import notebook_io
from kdlab.grading.markers import BEGIN_HIDDEN, BEGIN_SOLUTION, NOTEBOOK_GLOB
from kdlab.grading.notebook_io import NotebookError
from kdlab.grading.sandbox import INSTRUCTOR_ONLY, STRIPPED

README = """# kd-lab: knowledge distillation, hands-on

A Jupyter lab course on knowledge distillation (KD) in PyTorch, after Lecture 9 of MIT 6.5940
(EfficientML.ai). It runs on a laptop CPU, offline: MNIST and the pretrained teacher ship with
the course. You need Python 3.11, git and make.

```bash
make install   # creates .venv and installs the course into it
make lab       # opens JupyterLab on labs/
```

Without make: `python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/jupyter lab labs/`.
Conda: `conda env create -f environment.yml && conda activate kdlab && jupyter lab labs/`.

Work through the labs in order:

{labs}

Each exercise is followed by a check cell: run it after your code. It prints a line starting
with PASSED, or tells you what is wrong and gives a hint. Your instructor grades the same
checks on fresh inputs, so a check passes only for code that is right in general. Write each
exercise yourself with torch: the course's helpers refuse to run inside a check, and the
grader runs your notebook with the modules an exercise needs (torch, numpy, math, kdlab's
public parts, matplotlib): a notebook that uses the interpreter's internals, the IPython
shell or the system (`get_ipython`, `exec`, `open`, `os`, `sys`, threads) scores 0.

## How to submit

Submit each lab's notebook under its own name, as in labs/ (`01_softmax_temperature.ipynb`,
...): the grader grades the file of that name. A renamed file is found when its name holds
the lab's name (`lab01_softmax_temperature.ipynb`), else its topic or number; two files that
match a lab equally are graded as neither (`ambiguous`). Before you submit, run

```bash
.venv/bin/python -m kdlab.validate labs/01_softmax_temperature.ipynb
```

It says whether the grader will find the file, every cell of yours that the grader would
refuse and why (such a cell makes the whole notebook score 0), and runs the notebook's checks
with the grader's quick budget (a few minutes; `--no-run` skips that). It prints "ready to
submit" when all is well. The feedback you get names the file graded, its digest and when it
was graded, and says how to ask for a regrade.

Long experiments run the full budget by default; `KDLAB_QUICK=1 make lab` runs tiny versions
(the numbers then mean nothing). `KDLAB_THREADS=1` helps on a busy shared server.
"""

MAKEFILE = """# kd-lab (student release): make install | lab
PYTHON ?= python3
VENV   ?= .venv

.PHONY: install lab

install:
\ttest -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
\t$(VENV)/bin/python -m pip install .

lab: install
\t$(VENV)/bin/jupyter lab labs/
"""


# the modules of kdlab that hold a helper computing an exercise's answer (or its core): the
# release ships them compiled, without source (see the module's docstring); the grading
# sandbox strips the same helpers' bodies: the files of sandbox.STRIPPED, listed there once
SEALED = tuple(STRIPPED)


def _pyproject(text: str) -> str:
    """The instructor's pyproject.toml without its test extra's pytest configuration."""
    text = re.sub(r"\n\[tool\.pytest\.ini_options\]\n(?:(?!\[).*(?:\n|$))*", "\n", text)
    return text.rstrip() + "\n"


def _sealed_pyproject(text: str) -> str:
    """The release's pyproject.toml: the compiled modules (``SEALED``) are package data, and
    the Python version is the one that compiled them (another cannot load them)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    text, n = re.subn(r'^requires-python = .*$', f'requires-python = "=={version}.*"  # kdlab/'
                      f'{SEALED[0]}c and the other compiled modules are Python {version} bytecode',
                      text, count=1, flags=re.M)
    pyc = ", ".join(f'"{Path(m).with_suffix(".pyc").as_posix()}"' for m in SEALED)
    text, k = re.subn(r"^(kdlab = \[)", rf"\g<1>{pyc}, ", text, count=1, flags=re.M)
    if not (n and k):
        raise ValueError("pyproject.toml has no requires-python or no [tool.setuptools.package-data] "
                         "kdlab = [...] line: the release cannot ship its compiled modules")
    return text


def _seal(package: Path) -> None:
    """Replace each module of ``SEALED`` in `package` (a copy of kdlab) by its compiled form
    (``train.pyc`` beside where ``train.py`` was: Python imports it without source)."""
    for rel in SEALED:
        src = package / rel
        py_compile.compile(str(src), cfile=str(src.with_suffix(".pyc")), doraise=True,
                           dfile=f"<kdlab/{rel}: compiled, no source>",
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
        src.unlink()


def _environment(text: str, test_extra: list) -> str:
    """The instructor's environment.yml without the test extra: its pins are dropped and the
    course is installed as `.` (not `-e .[test]`)."""
    names = {re.split(r"[=<>!~\[ ]", t, maxsplit=1)[0].strip().lower() for t in test_extra}
    out = []
    for line in text.splitlines():
        item = line.strip()[2:].strip() if line.strip().startswith("- ") else None
        if item and re.split(r"[=<>!~\[ ]", item, maxsplit=1)[0].strip().lower() in names:
            continue
        if item and item.startswith("-e .") or item == ".[test]":
            line = line[:line.index("- ")] + "- ."
        out.append(line)
    return "\n".join(out).rstrip() + "\n"


def make_release(out, labs_dir="labs", log=print) -> Path:
    """Write the student release to `out` (a new or empty folder); return its path."""
    import kdlab

    out = Path(out)
    labs_dir = Path(labs_dir)
    root = labs_dir.resolve().parent
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty: give a new folder")
    labs = sorted(labs_dir.glob(NOTEBOOK_GLOB))
    if not labs:
        raise FileNotFoundError(f"no lab notebooks NN_*.ipynb in {labs_dir}/ (run make labs)")
    (out / "labs").mkdir(parents=True, exist_ok=True)
    lines = []
    for path in labs:
        nb = notebook_io.read(path)
        for cell in nb["cells"]:
            src = cell.get("source", "")
            if BEGIN_SOLUTION in src or BEGIN_HIDDEN in src or cell.get("outputs"):
                raise NotebookError(f"{path}: cell {cell.get('id')!r} holds a solution, a hidden "
                                    "test or outputs: regenerate labs/ with make labs")
        shutil.copyfile(path, out / "labs" / path.name)
        title = next((c["source"].splitlines()[0].lstrip("# ").strip() for c in nb["cells"]
                      if c.get("cell_type") == "markdown" and c.get("source", "").strip()), path.stem)
        lines.append(f"- [{title}](labs/{path.name})")
    src = Path(kdlab.__file__).resolve().parent
    shutil.copytree(src, out / "kdlab", ignore=shutil.ignore_patterns(
        "__pycache__", "*.pyc", *INSTRUCTOR_ONLY))
    # what `python -m kdlab.validate` needs of the grader: its file-name rule and its screen
    # (neither holds an answer, a key or a hidden test)
    shutil.copyfile(src / "grading" / "pick.py", out / "kdlab" / "_pick.py")
    shutil.copyfile(src / "grading" / "screen.py", out / "kdlab" / "_screen.py")
    _seal(out / "kdlab")
    (out / "README.md").write_text(README.format(labs="\n".join(lines)), encoding="utf-8")
    (out / "Makefile").write_text(MAKEFILE, encoding="utf-8")
    (out / "pyproject.toml").write_text(
        _sealed_pyproject(_pyproject((root / "pyproject.toml").read_text())), encoding="utf-8")
    if (root / "LICENSE").exists():
        shutil.copyfile(root / "LICENSE", out / "LICENSE")
    if (root / "environment.yml").exists():
        import tomllib
        extra = tomllib.loads((root / "pyproject.toml").read_text()).get("project", {}).get(
            "optional-dependencies", {}).get("test", [])
        (out / "environment.yml").write_text(
            _environment((root / "environment.yml").read_text(), extra), encoding="utf-8")
    log(f"wrote the student release to {out}/ ({len(labs)} labs)")
    return out
