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
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

PLUGIN = "_kdlab_grader_plugin"
RUNNER_MEMORY = 1024 ** 3  # bytes of data the grader's own nbval process may hold (plus the output cap)


def runner_memory(max_output: int) -> int:
    """The data limit (RLIMIT_DATA) of the grader's nbval process: enough for pytest, nbval
    and a notebook's output up to `max_output` bytes, several times over; no more."""
    return RUNNER_MEMORY + 4 * int(max_output)


def _limit_memory(limit: int):
    """For Popen's preexec_fn: cap this process's data (soft limit only, so that the kernel
    it starts can still be given its own limit)."""
    import resource

    def apply():
        _, hard = resource.getrlimit(resource.RLIMIT_DATA)
        resource.setrlimit(resource.RLIMIT_DATA, (limit if hard == resource.RLIM_INFINITY
                                                  else min(limit, hard), hard))
    return apply


@dataclass
class RunResult:
    """What came out of running one notebook."""
    cells: list = field(default_factory=list)  # the plugin's records, one per code cell run
    timed_out: bool = False  # killed at the per-notebook time limit
    cancelled: bool = False  # killed because the grading was cancelled (see `cancel`)
    returncode: int | None = None
    oom_killed: bool = False  # the kernel's memory cgroup hit its limit
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


# Linux shows each thread's children in /proc/<pid>/task/<tid>/children (CONFIG_PROC_CHILDREN)
_CHILDREN_FILES = os.path.exists(f"/proc/self/task/{os.getpid()}/children")


def _descendants(pid: int) -> list:
    """The pids of the processes under `pid`, read from each thread's ``/proc/.../children``.

    Reads only the subtree: psutil's ``children(recursive=True)`` reads every process of the
    machine (5-15 ms a call with a test suite running; the runner asks twice a second per
    notebook). Uses psutil where the kernel has no ``children`` files.
    """
    if not _CHILDREN_FILES:
        try:
            return [c.pid for c in psutil.Process(pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:  # ended
            continue
        for tid in tids:
            try:
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    kids = [int(k) for k in f.read().split()]
            except OSError:  # the thread or the process ended
                continue
            out += kids
            stack += kids
    return out


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


def _short_tmp() -> str | None:
    """/tmp if usable: Unix socket paths are limited to about 100 characters."""
    return "/tmp" if os.path.isdir("/tmp") and os.access("/tmp", os.W_OK) else None


def run_notebook(nb_path, cell_timeout: float = 300, timeout: float = 1200,
                 max_output: int = 20_000_000, quick: bool = True, threads: int = 1,
                 site=None, limits=None, cancel=None) -> RunResult:
    """Run the notebook at `nb_path` (in its own folder) with nbval --nbval-lax.

    cell_timeout / timeout: seconds per cell / for the whole notebook; max_output: bytes of
    output allowed; quick: run with KDLAB_QUICK=1; threads: torch/OpenMP threads per kernel;
    site: the sandbox's copy of kdlab (``sandbox.kdlab_copy``): run the kernel in the sandbox
    with `limits` (``sandbox.Limits``), in a cgroup where one can be made; None: a kernel of
    this Python, unsandboxed; cancel: a threading.Event: once it is set, the run is killed
    (RunResult.cancelled). Returns a RunResult with one record per code cell that ran (see
    nbval_plugin).
    """
    from . import sandbox

    runtime = Path(tempfile.mkdtemp(prefix="kdlab-rt-", dir=_short_tmp()))
    cgroup = None
    try:
        if site is not None:
            limits = limits or sandbox.Limits()
            cgroup = sandbox.Cgroup.create(limits)
            argv = sandbox.kernel_argv(site, kernel_env(quick, threads), limits,
                                       cgroup=cgroup)
            inside = sandbox.SANDBOX_RUNTIME
        else:
            argv, inside = sandbox.plain_argv(), None
            if shutil.which("prlimit"):  # the kernel is not the nbval process: lift its cap
                argv = [shutil.which("prlimit"), "--data=unlimited", "--"] + argv
            (runtime / "k").mkdir()
        from .restore import kernel_args
        argv = argv + kernel_args()  # the probes, bound before any cell of the notebook
        result = _run(Path(nb_path).resolve(), cell_timeout, timeout, max_output, quick, threads,
                      argv, runtime, inside, cancel)
        result.oom_killed = cgroup is not None and cgroup.oom_killed()
        return result
    finally:
        if cgroup is not None:
            _kill_cgroup(cgroup)
            cgroup.remove()
        shutil.rmtree(runtime, ignore_errors=True)


def _kill_cgroup(cgroup) -> None:
    """Kill whatever still runs in the kernel's cgroup."""
    procs = []
    for f in cgroup.procs:
        try:
            procs += [psutil.Process(int(x)) for x in f.read_text().split()]
        except (OSError, ValueError, psutil.NoSuchProcess):
            pass
    _kill_tree(procs)


# How long a kernel may take to answer after it starts (its imports: torch). nbval's default
# 60 s is passed on a busy 2-core machine starting several kernels at once; a kernel that does
# not answer in time is an error row ("grade this notebook again"), never a score.
KERNEL_START_S = 120


def _run(nb_path: Path, cell_timeout, timeout, max_output, quick, threads, kernel_argv,
         runtime: Path, inside, cancel) -> RunResult:
    work = nb_path.parent
    report = work / "cells.jsonl"
    report.unlink(missing_ok=True)
    (work / "pytest.ini").write_text("[pytest]\naddopts =\n")
    # the plugin is a standalone file: loaded from the work folder, pytest does not import
    # kdlab (and torch) just to load it
    shutil.copyfile(Path(__file__).with_name("nbval_plugin.py"), work / f"{PLUGIN}.py")
    # only the plugins the run needs (the grader's first: it must run before nbval imports
    # nbformat; then nbval; PYTEST_DISABLE_PLUGIN_AUTOLOAD below), without assertion rewriting:
    # every installed pytest plugin (anyio, xdist, ...) rewritten from source in every run cost
    # about 0.3 s of CPU per notebook
    cmd = [sys.executable, "-m", "pytest", str(nb_path), "-c", str(work / "pytest.ini"),
           "--rootdir", str(work), "-q", "--assert=plain", "-p", "no:cacheprovider",
           "-p", "no:randomly", "-p", PLUGIN, "-p", "nbval", "--nbval-lax", "--nbval-current-env",
           f"--nbval-kernel-startup-timeout={KERNEL_START_S:g}",
           f"--nbval-cell-timeout={cell_timeout}", f"--kdlab-report={report}",
           f"--kdlab-max-output={int(max_output)}"]
    from kdlab.checks._probe import MIME
    cmd += [f"--kdlab-kernel-argv={json.dumps(kernel_argv)}", f"--kdlab-runtime-dir={runtime}",
            f"--kdlab-probe-mime={MIME}"]
    if inside:
        cmd.append(f"--kdlab-sandbox-runtime={inside}")
    env = dict(os.environ)
    env.pop("KDLAB_QUICK", None)
    env.update(kernel_env(quick, threads))
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    log_path = work / "pytest.log"
    start = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=_limit_memory(runner_memory(max_output)))
        root = psutil.Process(proc.pid)
        seen = {proc.pid: root}
        timed_out = cancelled = False
        while True:
            try:
                proc.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                pass
            for pid in _descendants(proc.pid):
                if pid not in seen:
                    try:
                        seen[pid] = psutil.Process(pid)
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
