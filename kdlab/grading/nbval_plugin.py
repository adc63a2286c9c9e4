"""pytest plugin used by the grader around nbval: per-cell report, kernel death, output limit.

Loaded with ``-p kdlab.grading.nbval_plugin --kdlab-report=FILE``. For every notebook cell
item nbval runs, one JSON line is appended (and flushed) to FILE, so the results of the
cells that ran survive if the whole run is killed at the notebook time limit:

    {"cell": code-cell number, "id": cell id, "kdlab": cell metadata "kdlab",
     "grader": cell metadata "kdlab_grader" (set by the grader on the probe cells only),
     "ok": bool, "error": short message, "ename": ..., "evalue": ..., "text": stdout,
     "timed_out": bool, "kernel_died": bool, "dead_at_start": bool, "start_failed": bool,
     "output_limit": bool,
     "seconds": float}

"probes" lists the probe results the cell displayed (the MIME type given by ``--kdlab-probe-mime``:
``kdlab.checks._probe.MIME``, see ``kdlab.checks.bind_probes``) as JSON texts, and
"probe_problems" the records it could not keep (not text, oversize): scoring counts those as tampering.

It also makes nbval notice a dead kernel (``os._exit``, a crash) within a second instead of
waiting for the cell timeout, stops the kernel once a notebook has sent more than
``--kdlab-max-output`` bytes (every message counts as it arrives, by the size of its frames
before any of it is decoded: text, displays, widget messages and their binary buffers), decodes
only messages of bounded size and nesting and keeps of them only what grading reads (so that
this process's memory stays within a few times the output limit, whatever the kernel sends;
its data limit, set by the runner, is the backstop), and with ``--kdlab-kernel-argv`` starts the kernel with the
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

# nbval imports nbformat -> jsonschema, which imports the optional packages of its string
# format checkers when they are installed: rfc3987_syntax builds a grammar for "iri" on import
# (seconds of CPU per graded notebook), isoduration imports arrow (~0.05 s). nbformat never
# checks string formats: skip these imports here (the runner loads this plugin before nbval).
for _name in ("rfc3987_syntax", "rfc3987", "rfc3986_validator", "rfc3339_validator", "fqdn",
              "webcolors", "jsonpointer", "uri_template", "isoduration"):
    sys.modules.setdefault(_name, None)
del _name

# what a kernel reads from its connection file (its key is made for it alone, by jupyter_client)
KERNEL_NEEDS = ("transport", "ip", "shell_port", "iopub_port", "stdin_port", "control_port",
                "hb_port", "key", "signature_scheme", "kernel_name", "curve_publickey",
                "curve_secretkey")
TEXT_LIMIT = 20_000  # characters of a cell's output kept in the report
PROBE_LIMIT = 4_000_000  # characters of one probe result kept
READ_LIMIT = PROBE_LIMIT * 3 // 2  # bytes of a message's content the grader decodes
NESTED_LIMIT = 200_000  # lists and objects in a message's content the grader decodes
HEAD_LIMIT = 256 * 1024  # bytes of a message's header, parent header or metadata


class KernelDied(RuntimeError):
    """The kernel process exited while a cell was running."""


class KernelStartFailed(RuntimeError):
    """The grader could not start the notebook's kernel (the machine's fault, not the notebook's)."""


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


# How long the sandbox may take to show its first process (bwrap's clone into new namespaces:
# milliseconds on an idle machine); a start that passes it, or whose bwrap exits, is killed and
# tried again, up to START_ATTEMPTS starts in all.
INNER_START_S = 60.0
START_ATTEMPTS = 2


def _where_stuck(pid: int) -> str:
    """What the processes under `pid` (and it) were doing: name, state, kernel wait channel."""
    import psutil

    out = []
    try:
        root = psutil.Process(pid)
        procs = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return "its process had ended"
    for p in procs:
        try:
            with open(f"/proc/{p.pid}/wchan") as f:
                wchan = f.read().strip() or "-"
            out.append(f"{p.name()} {p.status()} in {wchan}")
        except (OSError, psutil.Error):
            continue
    return "; ".join(out) or "no process"


def _inner_process(pid: int, timeout: float = INNER_START_S) -> int:
    """The first process under `pid` that lives in another mount namespace (the sandbox's)."""
    import os

    import psutil

    mine = os.readlink("/proc/self/ns/mnt")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            root = psutil.Process(pid)
            if root.status() == psutil.STATUS_ZOMBIE:  # bwrap exited: nothing will start
                raise KernelStartFailed(f"the sandbox ended before its kernel started "
                                        f"(bwrap exited; {_where_stuck(pid)})")
            for child in root.children(recursive=True):
                try:
                    if os.readlink(f"/proc/{child.pid}/ns/mnt") != mine:
                        return child.pid
                except OSError:
                    continue
        except psutil.NoSuchProcess:
            raise KernelStartFailed("the sandbox ended before its kernel started") from None
        time.sleep(0.05)
    raise KernelStartFailed(f"the sandboxed kernel did not start within {timeout:g} s (no process "
                            f"in its namespaces; {_where_stuck(pid)})")


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
        def __init__(self, kernel_argv, **kwargs):
            super().__init__(**kwargs)
            self.kernel_argv = kernel_argv

        def get_kernel_spec(self, kernel_name):
            # interrupts go as a message: a signal to bwrap would not reach the kernel inside
            return KernelSpec(argv=list(self.kernel_argv), display_name="kdlab grading",
                              language="python", interrupt_mode="message")

    class Manager(KernelManager):
        # The sandbox is shown a file of its own (`shown`), not the manager's connection file:
        # after launching, jupyter_client compares its connection file with what it expects and,
        # where they differ (the sandbox's names its sockets as the sandbox sees them), removes
        # and rewrites it while bwrap may be binding it ("Can't find source path").
        shown = None

        def write_connection_file(self, **kwargs):
            """Write the manager's connection file and, for a sandboxed kernel, the file the
            sandbox is shown: its sockets as the sandbox sees them (no path of the grader's),
            and only what a kernel needs to connect; written whole, then moved into place."""
            super().write_connection_file(**kwargs)
            if self.shown is not None:
                with open(self.connection_file, encoding="utf-8") as f:
                    info = {k: v for k, v in json.load(f).items() if k in KERNEL_NEEDS}
                info["ip"] = f"{inside}/kernel"
                part = f"{self.shown}.part"
                with open(part, "w", encoding="utf-8") as f:
                    json.dump(info, f)
                os.replace(part, self.shown)

    def start_new_kernel(startup_timeout=60, kernel_name="python", **kwargs):
        for attempt in range(1, START_ATTEMPTS + 1):
            # each attempt has files of its own: nothing of a killed attempt touches the next
            shown = f"{runtime_dir}/kernel-{attempt}.sandbox.json" if inside is not None else None
            spec = SpecManager([shown if a == "{connection_file}" and shown else a for a in argv])
            km = Manager(kernel_name="kdlab-grading", kernel_spec_manager=spec,
                         transport="ipc", ip=f"{runtime_dir}/k/kernel",
                         connection_file=f"{runtime_dir}/kernel-{attempt}.json")
            km.shown = shown
            km.start_kernel(**kwargs)
            if inside is None:
                break
            try:
                pid = _inner_process(km.provisioner.process.pid)
            except KernelStartFailed as e:
                km.shutdown_kernel(now=True)  # kills the sandbox that did not start
                if attempt == START_ATTEMPTS:
                    raise KernelStartFailed(f"{e} ({attempt} attempts)") from None
                continue
            os.symlink(f"/proc/{pid}/root{inside}", f"{runtime_dir}/k")
            break
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=startup_timeout)
        except RuntimeError as e:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
            raise KernelStartFailed(f"the kernel did not answer within {startup_timeout:g} s of "
                                    f"starting ({e})") from None
        return km, kc

    nbval.kernel.start_new_kernel = start_new_kernel


class _NotText(str):
    """What the grader keeps of a probe record that is not text: the name of its type."""


def _count(kernel, size: int, max_output: int) -> None:
    """Add `size` bytes to what the kernel has sent; stop it and raise past `max_output`."""
    kernel._kdlab_output = getattr(kernel, "_kdlab_output", 0) + size
    if kernel._kdlab_output > max_output:
        if kernel.is_alive():
            kernel.stop()
        raise OutputLimitExceeded(
            f"the notebook sent more than {max_output:,} bytes of output (text, displays, "
            "widget messages); its kernel was stopped (print less, e.g. not inside a long loop)")


def _slim(msg: dict, mime) -> dict:
    """What the grader keeps of a message: of a display, only a probe record (text; or the name
    of its type), of a stream its text, of an error its name, value and traceback (each cut),
    of anything else (widget messages, display updates) nothing but its type."""
    c = msg.get("content") if isinstance(msg.get("content"), dict) else {}
    kind = msg.get("msg_type")
    if kind in ("display_data", "execute_result"):
        data = c.get("data") if isinstance(c.get("data"), dict) else {}
        keep = {}
        if mime and mime in data:
            v = data[mime]
            keep[mime] = v if isinstance(v, str) else _NotText(type(v).__name__)
        slim = {"data": keep, "metadata": {}}
        if kind == "execute_result":
            slim["execution_count"] = c.get("execution_count")
    elif kind == "stream":
        text = c.get("text") if isinstance(c.get("text"), str) else ""
        if len(text) > TEXT_LIMIT:
            text = text[:TEXT_LIMIT // 2] + "\n[... output truncated ...]\n" + text[-TEXT_LIMIT // 2:]
        slim = {"name": str(c.get("name", "stdout"))[:20], "text": text}
    elif kind == "error":
        tb = c.get("traceback") if isinstance(c.get("traceback"), list) else []
        slim = {"ename": str(c.get("ename", ""))[:200], "evalue": str(c.get("evalue", ""))[:8000],
                "traceback": [str(x)[:2000] for x in tb[-20:]]}
    elif kind == "status":
        slim = {"execution_state": str(c.get("execution_state", ""))[:20]}
    elif kind == "execute_reply":
        slim = {"status": str(c.get("status", ""))[:20]}
    else:
        slim = {}
    return {"header": msg["header"], "msg_id": msg["msg_id"], "msg_type": kind,
            "parent_header": msg["parent_header"], "metadata": {}, "content": slim, "buffers": []}


def _receive(kernel, socket, timeout, max_output: int, mime):
    """The next message on `socket` (a client socket of nbval's kernel), as nbval reads it.

    Every message counts against `max_output` by the size of all its frames, before any of
    it is decoded; the grader decodes a message's content only if it is at most READ_LIMIT
    bytes with at most NESTED_LIMIT lists and objects (JSON of many small lists would become
    many times its size in Python objects), keeps only what grading reads (``_slim``), and
    skips a message whose header is larger than HEAD_LIMIT. Raises queue.Empty after
    `timeout` seconds without a message.
    """
    session = kernel.kc.session
    ms = None if timeout is None else max(0, int(timeout * 1000))
    while True:
        if not socket.poll(ms):
            raise Empty
        frames = socket.recv_multipart(copy=False)
        _count(kernel, sum(len(f) for f in frames), max_output)
        try:
            _, parts = session.feed_identities(frames, copy=False)
        except ValueError:
            continue
        if len(parts) < 5 or any(len(parts[i]) > HEAD_LIMIT for i in (1, 2, 3)):
            continue  # not a message of a kernel's: counted, not read
        content = parts[4].bytes
        nested = content.count(b"[") + content.count(b"{")
        try:
            msg = session.deserialize(parts[:5], content=False, copy=False)
        except (ValueError, TypeError):
            continue
        if len(content) <= READ_LIMIT and nested <= NESTED_LIMIT:
            try:
                msg["content"] = session.unpack(content)
            except (ValueError, TypeError, RecursionError):
                msg["content"] = {}
        else:
            msg["content"] = {}
            if mime and mime.encode() in content:  # a probe record too large to be one
                msg["content"] = {"data": {mime: _NotText(
                    f"display of {len(content):,} bytes with {nested:,} nested values")}}
        del frames, parts, content
        return _slim(msg, mime)


def _patch_nbval(max_output: int, mime) -> None:
    """Make nbval's kernel wrapper notice a dead kernel and count (and cap) the output.

    nbval waits for a cell's reply before it reads the cell's output; meanwhile we drain the
    output as it arrives into a buffer (served to nbval afterwards), counting its size and
    keeping only what grading reads (see ``_receive``).
    """
    import zmq
    from nbval.kernel import RunningKernel

    def get_message(self, stream, timeout=None):
        buffer = self.__dict__.setdefault("_kdlab_buffer", deque())
        if stream == "iopub" and buffer:
            return buffer.popleft()
        channel = {"iopub": self.kc.iopub_channel, "shell": self.kc.shell_channel}[stream]
        return _receive(self, channel.socket, timeout, max_output, mime)

    def await_reply(self, msg_id, timeout=None):
        deadline = None if timeout is None else time.monotonic() + float(timeout)
        buffer = self.__dict__.setdefault("_kdlab_buffer", deque())
        shell, iopub = self.kc.shell_channel.socket, self.kc.iopub_channel.socket
        poller = zmq.Poller()
        poller.register(shell, zmq.POLLIN)
        poller.register(iopub, zmq.POLLIN)
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise Empty
            ready = dict(poller.poll(int(1000 * (0.2 if left is None else min(0.2, left)))))
            if iopub in ready:  # drain and count the output as it arrives
                while True:
                    try:
                        buffer.append(_receive(self, iopub, 0, max_output, mime))
                    except Empty:
                        break
            if shell in ready:
                try:
                    msg = _receive(self, shell, 0, max_output, mime)
                except Empty:
                    continue
                if msg["parent_header"].get("msg_id") == msg_id:
                    if msg["content"].get("status") == "aborted":
                        raise RuntimeError("Kernel aborted execution request")
                    return
            elif not ready and not self.is_alive():
                raise KernelDied("the kernel died while running this cell (the code "
                                 "exited or crashed: os._exit, a segfault, out of memory)")

    RunningKernel.get_message = get_message
    RunningKernel.await_reply = await_reply


def pytest_configure(config):
    if config.getoption("--kdlab-report"):
        _patch_nbval(config.getoption("--kdlab-max-output"), config.getoption("--kdlab-probe-mime"))
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
                if isinstance(record, _NotText) or not isinstance(record, str):
                    what = record if isinstance(record, _NotText) else type(record).__name__
                    problems.append(f"a probe record that is not text ({what})")
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
        "start_failed": isinstance(exc, KernelStartFailed),
        "output_limit": isinstance(exc, OutputLimitExceeded),
        "seconds": round(call.stop - call.start, 3),
    }
    if record["timed_out"] and _grader_check(item):
        _TIMED_OUT_CHECKS.add(_grader_check(item))
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
