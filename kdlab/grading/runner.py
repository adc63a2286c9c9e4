"""Execute one notebook with nbval in a fresh kernel, under a per-cell and a per-notebook limit.

The run is a separate ``python -m pytest`` process in its own session (process group); the
kernel it starts lives in another session. At the notebook time limit, or if anything is
left behind, the whole tree (pytest, kernel, anything they spawned) is killed.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

PLUGIN = "_kdlab_grader_plugin"


@dataclass
class RunResult:
    """What came out of running one notebook."""
    cells: list = field(default_factory=list)  # the plugin's records, one per code cell run
    timed_out: bool = False  # killed at the per-notebook time limit
    cancelled: bool = False  # killed because the grading was cancelled (see `cancel`)
    returncode: int | None = None
    seconds: float = 0.0
    log: str = ""  # the tail of pytest's output, for diagnosing the grader itself


def _kill_tree(procs) -> None:
    for p in procs:
        try:
            if p.is_running():
                try:
                    os.killpg(os.getpgid(p.pid), signal.SIGKILL)
                except (ProcessLookupError, PermissionError, OSError):
                    pass
                p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs([p for p in procs if _alive(p)], timeout=5)


def _alive(p) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def kernel_env(quick: bool, threads: int) -> dict:
    """The variables a graded kernel runs with: budget switch, thread counts, headless plots."""
    env = {"MPLBACKEND": "Agg", "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "KDLAB_THREADS": str(threads), "PYTHONDONTWRITEBYTECODE": "1",
           "JUPYTER_PLATFORM_DIRS": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    if quick:
        env["KDLAB_QUICK"] = "1"
    return env


def read_cells(report) -> list:
    """The per-cell records of a run's report file (``cells.jsonl`` beside the executed
    notebook; see nbval_plugin), [] if there is none; a line cut by a kill is skipped."""
    report = Path(report)
    if not report.exists():
        return []
    cells = []
    for line in report.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            cells.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # a line cut by the kill
    return cells


def run_notebook(nb_path, cell_timeout: float = 300, timeout: float = 1200,
                 max_output: int = 20_000_000, quick: bool = True, threads: int = 1,
                 kernel_argv: list | None = None, cancel=None) -> RunResult:
    """Run the notebook at `nb_path` (in its own folder) with nbval --nbval-lax.

    cell_timeout / timeout: seconds per cell / for the whole notebook; max_output: bytes of
    output allowed; quick: run with KDLAB_QUICK=1; threads: torch/OpenMP threads per kernel;
    kernel_argv: the kernel's command line (see sandbox.kernel_argv; it runs with a runtime
    folder ``rt/`` next to the notebook), default: a kernel of this Python; cancel: a
    threading.Event: once it is set, the run is killed (RunResult.cancelled).
    Returns a RunResult with one record per code cell that ran (see nbval_plugin).
    """
    nb_path = Path(nb_path).resolve()
    work = nb_path.parent
    report = work / "cells.jsonl"
    report.unlink(missing_ok=True)
    (work / "pytest.ini").write_text("[pytest]\naddopts =\n")
    # the plugin is a standalone file: loaded from the work folder, pytest does not import
    # kdlab (and torch) just to load it
    shutil.copyfile(Path(__file__).with_name("nbval_plugin.py"), work / f"{PLUGIN}.py")
    cmd = [sys.executable, "-m", "pytest", str(nb_path), "-c", str(work / "pytest.ini"),
           "--rootdir", str(work), "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
           "-p", PLUGIN, "--nbval-lax", "--nbval-current-env",
           f"--nbval-cell-timeout={cell_timeout}", f"--kdlab-report={report}",
           f"--kdlab-max-output={int(max_output)}"]
    runtime = work / "rt"
    runtime.mkdir(exist_ok=True)
    from .sandbox import plain_argv
    cmd += [f"--kdlab-kernel-argv={json.dumps(kernel_argv or plain_argv())}",
            f"--kdlab-runtime-dir={runtime}"]
    env = dict(os.environ)
    env.pop("KDLAB_QUICK", None)
    env.update(kernel_env(quick, threads))
    log_path = work / "pytest.log"
    start = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        root = psutil.Process(proc.pid)
        seen = {proc.pid: root}
        timed_out = cancelled = False
        while True:
            try:
                proc.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                pass
            try:
                for child in root.children(recursive=True):
                    seen.setdefault(child.pid, child)
            except psutil.NoSuchProcess:
                pass
            cancelled = cancel is not None and cancel.is_set()
            if cancelled or time.monotonic() - start > timeout:
                timed_out = not cancelled
                _kill_tree(list(seen.values()))
                proc.wait()
                break
    _kill_tree([p for p in seen.values() if p.pid != proc.pid])  # e.g. an orphaned kernel
    result = RunResult(timed_out=timed_out, cancelled=cancelled, returncode=proc.returncode,
                       seconds=time.monotonic() - start)
    result.cells = read_cells(report)
    with open(log_path, "rb") as f:
        f.seek(max(0, log_path.stat().st_size - 4000))
        result.log = f.read().decode("utf-8", errors="replace")
    return result
