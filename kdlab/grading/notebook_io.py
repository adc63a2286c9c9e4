"""Read and validate notebooks; write them byte-for-byte deterministically.

A notebook is handled as plain JSON (a dict), so that writing it back is under our control:
``dumps`` is the format JupyterLab itself saves (indent 1, sorted keys, UTF-8, trailing
newline), so opening and saving a generated lab does not reformat it.
"""
from __future__ import annotations

import json
from pathlib import Path

from kdlab._nbformat import nbformat


class NotebookError(ValueError):
    """A notebook that cannot be used: malformed JSON, wrong nbformat, invalid structure."""


def loads(text: str, name: str = "notebook", strict: bool = True) -> dict:
    """Parse and validate notebook JSON text; raise NotebookError naming `name` on failure.

    strict: validate against the nbformat 4 schema; otherwise only require code, markdown or
    raw cells with a source (enough to grade a copy rebuilt from them).
    Returns the notebook as a dict (nbformat 4); cell sources are normalised to one string.
    """
    try:
        nb = json.loads(text)
    except json.JSONDecodeError as e:
        raise NotebookError(f"{name}: not valid JSON (line {e.lineno}, column {e.colno}: "
                            f"{e.msg}); open it in JupyterLab or restore it from labs/") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise NotebookError(f"{name}: JSON is not a notebook (no list of 'cells')")
    if nb.get("nbformat") != 4:
        raise NotebookError(f"{name}: nbformat {nb.get('nbformat')!r} is not supported, "
                            "expected nbformat 4 (save it again with JupyterLab)")
    for i, cell in enumerate(nb["cells"]):
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw") \
                or not isinstance(cell.get("source", ""), (str, list)):
            raise NotebookError(f"{name}: cell {i} is not a notebook cell (cell_type and source)")
    if strict:
        try:
            nbformat.validate(nbformat.from_dict(nb), version=4)
        except nbformat.ValidationError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise NotebookError(f"{name}: not a valid nbformat 4 notebook: {first}") from None
    for cell in nb["cells"]:
        if isinstance(cell.get("source"), list):
            cell["source"] = "".join(str(x) for x in cell["source"])
    return nb


def read(path, strict: bool = True) -> dict:
    """Read and validate the notebook at `path` (see ``loads``)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise NotebookError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    return loads(text, str(path), strict)


def dumps(nb: dict) -> str:
    """The canonical text of a notebook: indent 1, sorted keys, UTF-8, one trailing newline.

    Cell sources are written as lists of lines, as Jupyter does.
    """
    nb = json.loads(json.dumps(nb))  # deep copy
    for cell in nb["cells"]:
        src = cell.get("source", "")
        if isinstance(src, str):
            cell["source"] = src.splitlines(keepends=True)
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def write(nb: dict, path) -> None:
    """Write `nb` to `path` in the canonical format (see ``dumps``)."""
    Path(path).write_text(dumps(nb), encoding="utf-8")


def kdlab_meta(cell: dict) -> dict:
    """The cell's ``metadata.kdlab`` dict ({} if absent or not a dict)."""
    meta = cell.get("metadata")
    meta = meta.get("kdlab", {}) if isinstance(meta, dict) else {}
    return meta if isinstance(meta, dict) else {}
