"""The course the grader grades against: where its labs and solutions are, and each lab's checks.

``find_course`` resolves the default folders from the installed course (the tree kdlab was
installed from), so ``python -m kdlab.grading grade`` works from any folder; an empty lab set
or a missing solutions/ (whose hidden tests would silently be dropped) is an error.
"""
from __future__ import annotations

import hashlib
import inspect
import os
from dataclasses import dataclass
from pathlib import Path

from . import notebook_io, restore
from .markers import NOTEBOOK_GLOB


class CourseError(ValueError):
    """The course's labs or solutions cannot be found or used."""


@dataclass
class Lab:
    """A lab as the grader sees it: file name, canonical checks, notebook, check-code digests."""
    name: str  # e.g. "01_softmax_temperature"
    checks: list  # restore.CheckCell, in notebook order
    nb: dict  # the lab notebook (the canonical cells and their order)
    check_sha256: dict  # check name -> digest of the code that judges it (probe, verdict, key)


def course_root() -> Path | None:
    """The course tree kdlab was installed from (it holds labs/ and solutions/), or None."""
    import kdlab

    root = Path(kdlab.__file__).resolve().parent.parent
    return root if (root / "labs").is_dir() else None


def find_course(labs_dir=None, solutions_dir=None, hidden: bool = True) -> tuple:
    """(labs folder, solutions folder or None): the given ones, else the installed course's.

    hidden: solutions/ is needed for the hidden tests; without it, CourseError (pass
    hidden=False to grade the public checks only).
    """
    root = course_root()
    labs = Path(labs_dir) if labs_dir is not None else (root / "labs" if root else None)
    if labs is None or not labs.is_dir():
        raise CourseError(
            f"no labs folder {'at ' + str(labs) if labs else 'found'}: the installed kdlab is not "
            "in a course tree; pass --labs path/to/labs (and --solutions path/to/solutions)")
    if not sorted(labs.glob(NOTEBOOK_GLOB)):
        raise CourseError(f"{labs} holds no lab notebooks NN_*.ipynb: run `make labs`, or pass the "
                          "right --labs folder")
    if not hidden:
        return labs, None
    sols = Path(solutions_dir) if solutions_dir is not None else (
        root / "solutions" if root and labs_dir is None else labs.parent / "solutions")
    if not sols.is_dir() or not sorted(sols.glob(NOTEBOOK_GLOB)):
        raise CourseError(
            f"no solution notebooks in {sols}: the hidden tests live in solutions/. Pass "
            "--solutions path/to/solutions, or --no-hidden-tests to grade the public checks only")
    return labs, sols


def _digest(check_name: str) -> str:
    """sha256 of the code that judges a check: its lab module, its answer-key module and the
    verdict's shared steps (``kdlab.checks._registry``, ``_common``, ``_scalar``)."""
    from kdlab.checks import CHECKS, _common, _registry, _scalar

    from . import keys

    parts = []
    check = CHECKS.get(check_name)
    for fn in (check.verdict if check else None, keys.KEYS.get(check_name)):
        module = inspect.getmodule(fn) if fn is not None else None
        if module is not None:
            parts.append(Path(module.__file__).read_bytes())
    parts += [Path(m.__file__).read_bytes() for m in (_registry, _common, _scalar)]
    return hashlib.sha256(b"\0".join(parts)).hexdigest()


def load_labs(labs_dir, solutions_dir=None) -> dict:
    """{lab name: Lab} for labs/NN_*.ipynb (hidden tests from solutions/ if given)."""
    labs = {}
    for path in sorted(Path(labs_dir).glob(NOTEBOOK_GLOB)):
        sol = Path(solutions_dir) / path.name if solutions_dir else None
        sol_nb = notebook_io.read(sol) if sol is not None and sol.exists() else None
        lab_nb = notebook_io.read(path)
        checks = restore.canonical_checks(lab_nb, str(path), sol_nb)
        digests = {c.name: _digest(c.name) for c in checks}
        labs[path.stem] = Lab(path.stem, checks, lab_nb, digests)
    if not labs:
        raise CourseError(f"{labs_dir} holds no lab notebooks NN_*.ipynb")
    return labs


class SubmissionError(ValueError):
    """A submitted path the grader refuses to read (a symbolic link, outside the folder)."""


MAX_SUBMISSION = 64 * 1024 ** 2  # bytes a submitted notebook may have (outputs included)


def read_submission(path: Path, limit: int = MAX_SUBMISSION) -> bytes:
    """The bytes of a submitted notebook: only a regular file (never through a symbolic link,
    never a FIFO or a device, which could block or never end) of at most `limit` bytes;
    SubmissionError saying why otherwise. Never blocks: the file is opened non-blocking and
    checked before a byte is read."""
    import stat

    name = Path(path).name
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        if Path(path).is_symlink():
            raise SubmissionError(f"{name} is a symbolic link: submit the notebook "
                                  "file itself") from None
        raise SubmissionError(f"cannot read {name}: {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode)
                    or stat.S_ISBLK(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a file")
            raise SubmissionError(f"{name} is {kind}, not a regular file: submit the notebook file itself")
        if st.st_size > limit:
            raise SubmissionError(f"{name} has {st.st_size:,} bytes, more than the {limit:,} a "
                                  "notebook may have: clear its outputs (Edit > Clear All Outputs) "
                                  "and submit it again")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise SubmissionError(f"{name} has more than the {limit:,} bytes a notebook may have")
    return data
