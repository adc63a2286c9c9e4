"""The solution notebooks' markers, and the student version of a cell's source.

A solution cell holds the exercise's answer between ``### BEGIN SOLUTION`` and ``### END
SOLUTION`` and the grader's hidden tests between ``### BEGIN HIDDEN TESTS`` and ``### END
HIDDEN TESTS``. ``strip_source`` turns such a source into what the lab shows; the authoring
side generates labs/ with it (``kdlab.authoring.generator``) and the grader restores the
canonical check cells with it (``restore``). The course's notebooks are named ``NN_*.ipynb``.
"""
from __future__ import annotations

from .notebook_io import NotebookError

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
MARKERS = (BEGIN_SOLUTION, END_SOLUTION, BEGIN_HIDDEN, END_HIDDEN)
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"


class MarkerError(NotebookError):
    """Unbalanced or nested solution / hidden-test markers in a cell."""


def _marker(line: str) -> str | None:
    stripped = line.strip()
    for m in MARKERS:
        if stripped == m or stripped.startswith(m + " "):
            return m
    return None


def strip_source(source: str, markdown: bool = False, where: str = "cell") -> str:
    """The student version of one cell's source: solutions replaced, hidden tests removed.

    source: the cell's source text; markdown: True for a markdown cell (solution -> "YOUR
    ANSWER HERE"); where: names the cell in error messages. Raises MarkerError on an
    unbalanced or nested marker.
    """
    out, inside, begin_line, hidden_removed = [], None, 0, False
    lines = source.splitlines()
    for i, line in enumerate(lines, 1):
        m = _marker(line)
        if m in (BEGIN_SOLUTION, BEGIN_HIDDEN):
            if inside:
                raise MarkerError(f"{where}, line {i}: {m!r} inside the block opened by "
                                  f"{inside!r} on line {begin_line}; close it first")
            inside, begin_line = m, i
            hidden_removed |= m == BEGIN_HIDDEN
            if m == BEGIN_SOLUTION:
                indent = line[: len(line) - len(line.lstrip())]
                out += ([indent + "YOUR ANSWER HERE"] if markdown else
                        [indent + "# YOUR CODE HERE", indent + "raise NotImplementedError"])
        elif m in (END_SOLUTION, END_HIDDEN):
            expected = BEGIN_SOLUTION if m == END_SOLUTION else BEGIN_HIDDEN
            if inside != expected:
                raise MarkerError(f"{where}, line {i}: {m!r} without a matching {expected!r}"
                                  + (f" (the open block is {inside!r} from line {begin_line})"
                                     if inside else ""))
            inside = None
        elif not inside:
            out.append(line)
    if inside:
        raise MarkerError(f"{where}, line {begin_line}: {inside!r} is never closed "
                          f"(add the matching END line)")
    # drop blank lines left at the end by a removed hidden-test block
    while hidden_removed and out and not out[-1].strip():
        out.pop()
    return "\n".join(out) + ("\n" if out and source.endswith("\n") else "")
