"""The solutions' saved outputs: re-execute solution notebooks and save what they print.

    python -m kdlab.authoring refresh-outputs [NOTEBOOK ...]     (make outputs)

executes each solution notebook (default: every solutions/NN_*.ipynb of the course) from top
to bottom with nbclient at the students' full budget (KDLAB_QUICK unset; KDLAB_THREADS and
KDLAB_CACHE honoured), shows each cell as it starts, and writes the notebook back with its new
outputs only if every cell ran: a notebook whose execution failed keeps the file it had.
``benchmarks.course --save-outputs`` saves through the same ``execute``.
"""
from __future__ import annotations

import os
import resource
import time
from pathlib import Path
from typing import Callable

from kdlab.grading.markers import NOTEBOOK_GLOB


def saved_stdout(cell: dict) -> str:
    """What a code cell printed on stdout, as saved in the notebook ('' if nothing)."""
    text = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("name") == "stdout":
            t = out.get("text", "")
            text.append("".join(t) if isinstance(t, list) else t)
    return "".join(text)


def _kernel_env(env: dict):
    """Set `env` in os.environ for the kernel about to start (a value None unsets the
    variable); return the previous values, for _restore."""
    saved = {k: os.environ.get(k) for k in env}
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = str(value)
    return saved


def _restore(saved: dict) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


KEYS_LINE = "import kdlab.grading.keys"


def execute(path, env: dict | None = None, timeout: int = 3600, save: bool = False,
            progress: Callable[[str], None] | None = None) -> dict:
    """Execute the notebook at `path` in a fresh python3 kernel, in the notebook's folder.

    Inputs:
    - path: the .ipynb file
    - env: environment variables for the kernel ({"KDLAB_QUICK": None} unsets one); the
      other variables of this process are inherited (KDLAB_THREADS, KDLAB_CACHE...)
    - timeout: seconds per cell
    - save: write the notebook back to `path` with its new outputs, only if every cell ran
    - progress: called with a line when each code cell starts (e.g. print), or None
    Returns {"seconds": wall time, "cpu_seconds": CPU time of the kernel (and whatever it
    started), "ok": bool, "error": the error's last line or None, "cells": code cells,
    "saved": bool}.
    """
    from kdlab._nbformat import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    t0 = time.perf_counter()

    def on_cell_start(cell, cell_index):
        if progress is not None and cell.cell_type == "code":
            progress(f"{path.stem}: cell {code.index(cell_index) + 1}/{len(code)} "
                     f"({cell.get('id', '?')}), {time.perf_counter() - t0:.0f} s so far")

    # the solutions' hidden tests judge inputs other than the notebook's own: the kernel
    # registers the instructor's answer keys as it starts (kdlab.checks never imports them)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}},
                            on_cell_start=on_cell_start,
                            extra_arguments=[f"--IPKernelApp.exec_lines={[KEYS_LINE]!r}"])
    saved_env = _kernel_env(dict(env or {}))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    error = None
    try:
        client.execute()
    except Exception as e:  # a failing notebook is reported, and its file left alone
        text = str(e).strip()
        error = f"{type(e).__name__}: {text.splitlines()[-1] if text else ''}"
    finally:
        _restore(saved_env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    if save and error is None:
        nbformat.write(nb, path)
    return {"seconds": round(time.perf_counter() - t0, 1), "cpu_seconds": round(cpu, 1),
            "ok": error is None, "error": error, "cells": len(code),
            "saved": save and error is None}


def solution_notebooks(names=None, solutions_dir=None) -> list[Path]:
    """The solution notebooks to refresh: `names` (paths, or stems/file names inside the
    solutions folder), or every NN_*.ipynb of it (default: the installed course's
    solutions/). FileNotFoundError names a notebook that is not there."""
    from kdlab.grading.course import course_root

    if solutions_dir is None:
        root = course_root()
        if root is None or not (root / "solutions").is_dir():
            raise FileNotFoundError("no solutions/ folder next to the installed kdlab: give "
                                    "the notebooks' paths")
        solutions_dir = root / "solutions"
    solutions_dir = Path(solutions_dir)
    if not names:
        found = sorted(solutions_dir.glob(NOTEBOOK_GLOB))
        if not found:
            raise FileNotFoundError(f"no {NOTEBOOK_GLOB} notebooks in {solutions_dir}")
        return found
    paths = []
    for name in names:
        p = Path(name)
        for candidate in (p, solutions_dir / p.name, solutions_dir / f"{p.name}.ipynb"):
            if candidate.is_file() and candidate.suffix == ".ipynb":
                paths.append(candidate)
                break
        else:
            raise FileNotFoundError(f"{name}: no such notebook (give a path to an .ipynb file, "
                                    f"or the name of one in {solutions_dir})")
    return paths


def refresh_outputs(notebooks, timeout: int = 3600, out: Callable[[str], None] = print) -> list:
    """Re-execute each notebook at the full budget and save its outputs in place.

    Inputs: notebooks, paths of .ipynb files; timeout: seconds per cell; out: where the
    progress and the verdicts go. A notebook that fails is not saved (its earlier outputs
    stay) and the others still run. Returns one ``execute`` result per notebook, with "path".
    """
    results = []
    threads = os.environ.get("KDLAB_THREADS", "torch's default")
    for path in notebooks:
        out(f"{Path(path).name}: executing at the full budget (KDLAB_THREADS {threads})")
        r = execute(path, env={"KDLAB_QUICK": None}, timeout=timeout, save=True, progress=out)
        r["path"] = str(path)
        results.append(r)
        out(f"{Path(path).name}: " + (
            f"saved with its outputs ({r['seconds']:.0f} s, {r['cpu_seconds']:.0f} s of CPU)"
            if r["ok"] else f"FAILED, not saved (the file keeps its earlier outputs): {r['error']}"))
    return results
