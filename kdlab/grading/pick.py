"""Which notebook of a student's folder is graded for a lab: one ranked rule, never a silent pick.

For lab ``NN_topic`` (e.g. ``03_response_kd``) every ``.ipynb`` file of the folder (at any
depth; not in ``.ipynb_checkpoints`` or hidden folders) is ranked by its name, compared in
lower case with spaces, dots and dashes read as ``_``:

1. the lab's file name: ``03_response_kd.ipynb``;
2. a name that contains the lab's name: ``lab03_response_kd.ipynb``, ``03_response_kd (1).ipynb``;
3. a name that contains the topic (``response_kd_mine.ipynb``) or the lab's number as a
   number of its own (``lab3.ipynb``, ``Lab_03-final.ipynb``), and no other lab's name.

The best rank held by exactly one file is graded. Two files at the best rank give
``ambiguous`` with both names (the student, or you, keep one). Every other notebook in the
folder is reported with the graded one, so a file the student meant is never ignored unseen.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

RANKS = {1: "the lab's file name", 2: "a name containing the lab's name",
         3: "a name containing the lab's topic or number"}


@dataclass
class Choice:
    """The notebook graded for one lab in one student's folder.

    path: the graded file (None if none or ambiguous); file: its name relative to the
    student's folder; rank: its rank (1-3, 0 if none);
    ambiguous: the files tied at the best rank (empty unless ambiguous); others: every other
    notebook of the folder, relative names; error: why the folder or file was refused.
    """
    path: Path | None = None
    file: str = ""
    rank: int = 0
    ambiguous: list = field(default_factory=list)
    others: list = field(default_factory=list)
    error: str = ""


def _norm(name: str) -> str:
    return re.sub(r"[\s.\-]+", "_", name.lower())


def notebooks(folder: Path) -> list:
    """Every .ipynb under `folder`, sorted, without checkpoints or hidden folders; symbolic
    links are listed (and refused when chosen), never followed."""
    out = []
    for dirpath, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d != ".ipynb_checkpoints" and not d.startswith("."))
        out += [Path(dirpath) / f for f in sorted(files)
                if f.lower().endswith(".ipynb") and not f.startswith(".")]
    return sorted(out)


def rank(file_name: str, lab: str, all_labs=()) -> int:
    """The rank (1-3) of a notebook's file name for `lab`, 0 if it does not match."""
    stem = _norm(file_name[:-len(".ipynb")] if file_name.lower().endswith(".ipynb") else file_name)
    lab_n = _norm(lab)
    if stem == lab_n:
        return 1
    if lab_n in stem:
        return 2
    if any(_norm(o) in stem for o in all_labs if o != lab):
        return 0  # another lab's notebook
    number, _, topic = lab.partition("_")
    if topic and _norm(topic) in stem:
        return 3
    if number.isdigit() and re.search(rf"(?<![0-9])0*{int(number)}(?![0-9])", stem):
        return 3
    return 0


def choose(folder, lab: str, all_labs=()) -> Choice:
    """The notebook graded for `lab` in a student's `folder` (see the module's rule).

    all_labs: every lab name of the course (a file named for another lab never ranks 3 here).
    """
    folder = Path(folder)
    if folder.is_symlink():
        return Choice(error=f"the folder {folder.name} is a symbolic link: submit a real folder")
    files = notebooks(folder)
    ranked = [(rank(p.name, lab, all_labs), p) for p in files]
    ranked = [(r, p) for r, p in ranked if r]
    rel = [p.relative_to(folder).as_posix() for p in files]
    if not ranked:
        return Choice(others=rel)
    best = min(r for r, _ in ranked)
    top = [p for r, p in ranked if r == best]
    if len(top) > 1:
        names = [p.relative_to(folder).as_posix() for p in top]
        return Choice(rank=best, ambiguous=names, others=[n for n in rel if n not in names])
    chosen = top[0]
    name = chosen.relative_to(folder).as_posix()
    c = Choice(path=chosen, file=name, rank=best, others=[n for n in rel if n != name])
    if chosen.is_symlink():
        c.error = f"{chosen.name} is a symbolic link: submit the notebook file itself"
    return c


def ambiguous_reason(choice: Choice, lab: str) -> str:
    """The reason of an `ambiguous` row: the tied files and how to settle it."""
    return (f"{len(choice.ambiguous)} notebooks match {lab} equally ({RANKS[choice.rank]}): "
            + ", ".join(choice.ambiguous) + f"; none was graded. Keep one, or name the one to "
            f"grade {lab}.ipynb, and ask for a regrade")


def missing_reason(choice: Choice, lab: str) -> str:
    """The reason of a `missing` row: what the folder holds instead."""
    if choice.others:
        return (f"no notebook {lab}.ipynb (nor one whose name holds {lab}, its topic or number) "
                f"submitted; the folder holds {', '.join(choice.others)}")
    return f"no notebook {lab}.ipynb submitted (the folder holds no notebook)"
