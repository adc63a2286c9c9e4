"""pytest plugin used by the grader around nbval: per-cell report, kernel death, output limit.

Loaded with ``-p kdlab.grading.nbval_plugin --kdlab-report=FILE``. For every notebook cell
item nbval runs, one JSON line is appended (and flushed) to FILE, so the results of the
cells that ran survive if the whole run is killed at the notebook time limit:

    {"cell": code-cell number, "id": cell id, "kdlab": cell metadata "kdlab",
     "grader": cell metadata "kdlab_grader" (set by the grader on the probe cells only),
     "ok": bool, "error": short message, "ename": ..., "evalue": ..., "text": stdout,
     "timed_out": bool, "kernel_died": bool, "dead_at_start": bool, "output_limit": bool,
     "seconds": float}

"probes" lists the probe results the cell displayed (the MIME type given by ``--kdlab-probe-mime``:
``kdlab.checks._probe.MIME``, see ``kdlab.checks.bind_probes``) as JSON texts, and
"probe_problems" the records it could not keep (not text, oversize): scoring counts those as tampering.

It also makes nbval notice a dead kernel (``os._exit``, a crash) within a second instead of
waiting for the cell timeout, stops the kernel once a notebook has sent more than
``--kdlab-max-output`` bytes on its output channel (every message counts as it arrives:
text, displays, widget messages; none is kept past the limit), and with ``--kdlab-kernel-argv`` starts the kernel with the
given command line (the grader's sandbox) talking over Unix sockets under
``--kdlab-runtime-dir`` (a kernel in its own network namespace cannot reach TCP ports on the
host's loopback; a sandboxed kernel makes its sockets in its own /tmp, reached through
/proc/<pid>/root).
"""
from __future__ import annotations

import json
import sys
import time
from collections import deque
from queue import Empty

import pytest

# nbval imports nbformat -> jsonschema, which, when the optional package rfc3987_syntax is
# installed, builds a grammar for the "iri" string format on import (seconds of CPU per
# graded notebook). nbformat never validates that format: skip the optional import here.
sys.modules.setdefault("rfc3987_syntax", None)

# what a kernel reads from its connection file (its key is made for it alone, by jupyter_client)
KERNEL_NEEDS = ("transport", "ip", "shell_port", "iopub_port", "stdin_port", "control_port",
                "hb_port", "key", "signature_scheme", "kernel_name", "curve_publickey",
                "curve_secretkey")
TEXT_LIMIT = 20_000  # characters of a cell's output kept in the report
PROBE_LIMIT = 4_000_000  # characters of one probe result kept


class KernelDied(RuntimeError):
    """The kernel process exited while a cell was running."""


class OutputLimitExceeded(RuntimeError):
    """The notebook printed more output than the grader allows."""


def pytest_addoption(parser):
    group = parser.getgroup("kdlab grading")
    group.addoption("--kdlab-report", default=None, help="append per-cell JSON lines here")
    group.addoption("--kdlab-max-output", type=int, default=20_000_000,
                    help="bytes of output a notebook may print before its kernel is stopped")
    group.addoption("--kdlab-kernel-argv", default=None,
                    help="JSON list: the kernel's command line, with {connection_file}")
    group.addoption("--kdlab-runtime-dir", default=None,
                    help="folder for the kernel's connection file and Unix sockets")
    group.addoption("--kdlab-probe-mime", default=None,
                    help="the MIME type of the probes' displayed results")
    group.addoption("--kdlab-sandbox-runtime", default=None,
                    help="the sandboxed kernel's socket folder inside its namespaces")


def _inner_process(pid: int, timeout: float = 30.0) -> int:
    """The first process under `pid` that lives in another mount namespace (the sandbox's)."""
    import os

    import psutil

    mine = os.readlink("/proc/self/ns/mnt")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            for child in psutil.Process(pid).children(recursive=True):
                try:
                    if os.readlink(f"/proc/{child.pid}/ns/mnt") != mine:
                        return child.pid
                except OSError:
                    continue
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    raise RuntimeError("the sandboxed kernel did not start (no process in its namespaces)")


def _patch_kernel_start(argv: list, runtime_dir: str, inside: str | None) -> None:
    """Start nbval's kernels with `argv`, over Unix sockets under `runtime_dir`/k.

    inside: for a sandboxed kernel, the folder of its sockets inside its own /tmp: once it
    runs, `runtime_dir`/k becomes a link to it through /proc/<pid>/root (nothing of the
    grader's disk is writable for the kernel). None: `runtime_dir`/k is a plain folder.
    """
    import os

    import nbval.kernel
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import KernelManager

    class SpecManager(KernelSpecManager):
        def get_kernel_spec(self, kernel_name):
            # interrupts go as a message: a signal to bwrap would not reach the kernel inside
            return KernelSpec(argv=list(argv), display_name="kdlab grading", language="python",
                              interrupt_mode="message")

    class Manager(KernelManager):
        def write_connection_file(self, **kwargs):
            """The file the kernel reads: for a sandboxed kernel, its sockets as the sandbox
            sees them (no path of the grader's), and only what a kernel needs to connect."""
            super().write_connection_file(**kwargs)
            if inside is not None:
                path = self.connection_file
                with open(path, encoding="utf-8") as f:
                    info = json.load(f)
                info = {k: v for k, v in info.items() if k in KERNEL_NEEDS}
                info["ip"] = f"{inside}/kernel"
                with open(path, "w", encoding="utf-8") as f:
                    json.dump(info, f)

    def start_new_kernel(startup_timeout=60, kernel_name="python", **kwargs):
        km = Manager(kernel_name="kdlab-grading", kernel_spec_manager=SpecManager(),
                     transport="ipc", ip=f"{runtime_dir}/k/kernel",
                     connection_file=f"{runtime_dir}/kernel.json")
        km.start_kernel(**kwargs)
        if inside is not None:
            pid = _inner_process(km.provisioner.process.pid)
            os.symlink(f"/proc/{pid}/root{inside}", f"{runtime_dir}/k")
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=startup_timeout)
        except RuntimeError:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
            raise
        return km, kc

    nbval.kernel.start_new_kernel = start_new_kernel


def _patch_nbval(max_output: int) -> None:
    """Make nbval's kernel wrapper notice a dead kernel and count (and cap) the output.

    nbval waits for a cell's reply before it reads the cell's output; meanwhile we drain the
    output into a buffer (served to nbval afterwards), counting its size as it arrives.
    """
    from nbval.kernel import RunningKernel

    original_get = RunningKernel.get_message

    def receive_iopub(self, timeout):
        msg = original_get(self, "iopub", timeout=timeout)
        # every message counts (streams, displays, comm messages of widgets, ...): its content
        # and its binary buffers
        content = msg.get("content", {})
        try:
            size = len(json.dumps(content, default=str))
        except (TypeError, ValueError, RecursionError):
            size = max_output + 1
        size += sum(len(b) for b in msg.get("buffers") or [])
        self._kdlab_output = getattr(self, "_kdlab_output", 0) + size
        if self._kdlab_output > max_output:
            if self.is_alive():
                self.stop()
            raise OutputLimitExceeded(
                f"the notebook sent more than {max_output:,} bytes of output (text, displays, "
                "widget messages); its kernel was stopped (print less, e.g. not inside a long loop)")
        return msg

    def get_message(self, stream, timeout=None):
        if stream != "iopub":
            return original_get(self, stream, timeout=timeout)
        buffer = self.__dict__.setdefault("_kdlab_buffer", deque())
        return buffer.popleft() if buffer else receive_iopub(self, timeout)

    def await_reply(self, msg_id, timeout=None):
        deadline = None if timeout is None else time.monotonic() + float(timeout)
        buffer = self.__dict__.setdefault("_kdlab_buffer", deque())
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise Empty
            try:
                msg = original_get(self, "shell", timeout=0.2 if left is None else min(0.2, left))
            except Empty:
                while True:  # drain and count the output produced so far
                    try:
                        buffer.append(receive_iopub(self, 0))
                    except Empty:
                        break
                if not self.is_alive():
                    raise KernelDied("the kernel died while running this cell (the code "
                                     "exited or crashed: os._exit, a segfault, out of memory)")
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                if msg["content"]["status"] == "aborted":
                    raise RuntimeError("Kernel aborted execution request")
                return

    RunningKernel.get_message = get_message
    RunningKernel.await_reply = await_reply


def pytest_configure(config):
    if config.getoption("--kdlab-report"):
        _patch_nbval(config.getoption("--kdlab-max-output"))
    if config.getoption("--kdlab-kernel-argv"):
        _patch_kernel_start(json.loads(config.getoption("--kdlab-kernel-argv")),
                            config.getoption("--kdlab-runtime-dir"),
                            config.getoption("--kdlab-sandbox-runtime"))


def _outputs(item, mime):
    """(stdout text, ename, evalue, probe record texts, problems with the probe records)."""
    text, ename, evalue, probes, problems = [], "", "", [], []
    for out in getattr(item, "test_outputs", None) or []:
        if out.get("output_type") == "stream":
            text.append(out.get("text", ""))
        elif out.get("output_type") == "error":
            ename, evalue = out.get("ename", ""), out.get("evalue", "")
        elif out.get("output_type") in ("display_data", "execute_result", "update_display_data"):
            data = out.get("data") or {}
            if mime and mime in data:
                record = data[mime]
                if not isinstance(record, str):
                    problems.append(f"a probe record that is not text ({type(record).__name__})")
                elif len(record) > PROBE_LIMIT:
                    problems.append(f"a probe record of {len(record):,} characters (at most "
                                    f"{PROBE_LIMIT:,})")
                else:
                    probes.append(record)
    text = "".join(text)
    if len(text) > TEXT_LIMIT:
        text = text[:TEXT_LIMIT // 2] + "\n[... output truncated ...]\n" + text[-TEXT_LIMIT // 2:]
    return text, ename, evalue, probes, problems


_TIMED_OUT_CHECKS: set = set()  # checks one of whose probe cells hit the time limit


def _grader_check(item):
    cell = getattr(item, "cell", None) or {}
    grader = cell.get("metadata", {}).get("kdlab_grader", {}) or {}
    return grader.get("check")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    parent = getattr(item, "parent", None)
    item._kdlab_timed_out_before = bool(getattr(parent, "timed_out", False))
    if _grader_check(item) in _TIMED_OUT_CHECKS:  # its hidden tests would wait as long again
        pytest.skip("an earlier probe of this check hit the time limit")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    yield
    path = item.config.getoption("--kdlab-report")
    cell = getattr(item, "cell", None)
    if not path or cell is None:
        return
    if call.when == "setup" and call.excinfo is None:
        return  # the call phase reports
    if call.when == "teardown":
        return
    exc = call.excinfo.value if call.excinfo is not None else None
    text, ename, evalue, probes, problems = _outputs(item, item.config.getoption("--kdlab-probe-mime"))
    parent = getattr(item, "parent", None)
    error = ""
    if exc is not None:
        error = f"{type(exc).__name__}: {exc}".strip()
        first = error.splitlines()[0] if error else ""
        error = first if len(first) < 2000 else first[:2000] + " ..."
    record = {
        "cell": getattr(item, "cell_num", None), "id": cell.get("id"),
        "kdlab": dict(cell.get("metadata", {}).get("kdlab", {}) or {}),
        "grader": dict(cell.get("metadata", {}).get("kdlab_grader", {}) or {}),
        "ok": exc is None and call.when == "call", "error": error,
        "ename": ename, "evalue": evalue[:4000], "text": text, "probes": probes,
        "probe_problems": problems,
        "timed_out": bool(getattr(parent, "timed_out", False))
        and not getattr(item, "_kdlab_timed_out_before", False),
        "kernel_died": isinstance(exc, KernelDied),
        "dead_at_start": isinstance(exc, RuntimeError) and "Kernel dead" in str(exc),
        "output_limit": isinstance(exc, OutputLimitExceeded),
        "seconds": round(call.stop - call.start, 3),
    }
    if record["timed_out"] and _grader_check(item):
        _TIMED_OUT_CHECKS.add(_grader_check(item))
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
