"""The sandbox student code runs in while it is graded: bubblewrap around the notebook's kernel.

The kernel of a graded notebook (the only process that runs student code: the notebook's
cells and the checks' probes) is started as

    sh -c 'join the cgroup' bwrap --unshare-all ... prlimit --data=LIMIT -- python -m ipykernel_launcher

- its own user, network, PID, IPC and UTS namespaces: no network, nothing outlives the run,
  no view of the grader's processes (or their command lines);
- read-only views of the Python installation, remapped to neutral paths (``/opt/kdlab-python``,
  ``/opt/kdlab-venv``: nothing of the home folder or of the course's tree, wherever they are),
  and of a private, non-editable copy of kdlab without its instructor tooling (no
  ``kdlab.grading``: no answer keys, no reference implementations, no grader code);
  editable-install hooks that would point back at the course's source tree are masked;
- nothing of the grader's disk is writable: the only writable places are a size-capped
  ``/tmp`` and ``/dev/shm`` (tmpfs). The kernel's sockets live in its own ``/tmp``; the grader
  reaches them through ``/proc/<pid>/root`` (see ``nbval_plugin``);
- nothing of the host's paths: no procfs (``/proc/self/mountinfo`` would name the host path
  of every bind; only a read-only ``/proc/cpuinfo``, which torch needs to pick its CPU
  kernels), and a mount namespace without a procfs cannot mount one. The connection file,
  written by the grader for this kernel, names only the sandbox's own socket path and holds
  a key made for this kernel alone;
- limits: a memory cgroup (which also counts what the tmpfs hold) and a pids cgroup where
  this machine lets the grader make them (root, or a delegated cgroup v2), and always
  RLIMIT_DATA (a large allocation fails with MemoryError) and the tmpfs sizes;
- a minimal environment (PATH, HOME=/tmp, the budget switch, thread counts) and the
  unprivileged user id 65534 with no capabilities.

``preflight()`` runs a tiny sandboxed Python once and says why the sandbox cannot run here.
"""
from __future__ import annotations

import compileall
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

MOUNT_KDLAB = "/opt/kdlab-site"  # where the copy of kdlab appears inside the sandbox
MOUNT_PYTHON = "/opt/kdlab-python"  # the base Python installation, inside
MOUNT_VENV = "/opt/kdlab-venv"  # the virtualenv, inside (if the grader runs in one)
KERNEL_JSON = "/opt/kdlab-kernel.json"  # the kernel's connection file, inside (a read-only copy)
SANDBOX_RUNTIME = "/tmp/kdlab-rt"  # the kernel's sockets, inside its own /tmp
DATA_CACHE = "data-cache"  # beside the copy of kdlab: MNIST extracted, read-only inside
DEFAULT_MEMORY = 4 * 1024 ** 3  # bytes of memory per kernel


class SandboxError(RuntimeError):
    """bubblewrap is missing or cannot create its namespaces here."""


@dataclass(frozen=True)
class Limits:
    """What one sandboxed kernel may use: memory (bytes, tmpfs included where a cgroup
    counts it), the size of its /tmp and /dev/shm, and its number of processes and threads."""
    memory: int = DEFAULT_MEMORY
    tmp: int = 256 * 1024 ** 2
    shm: int = 64 * 1024 ** 2
    pids: int = 256


def parse_memory(text) -> int:
    """'4G', '512M', '2000000000' -> bytes; ValueError with what was wrong otherwise."""
    s = str(text).strip().upper().removesuffix("B")
    units = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}
    try:
        n = float(s[:-1]) * units[s[-1]] if s and s[-1] in units else float(s)
    except ValueError:
        raise ValueError(f"memory limit {text!r} is not a size; use e.g. 4G, 1500M or a number "
                         "of bytes") from None
    if n < 256 * 1024 ** 2:
        raise ValueError(f"memory limit {text!r} is below 256M: torch alone needs more")
    return int(n)


# ------------------------------------------------------------------ what the sandbox shows

# kdlab's instructor-only packages (answer keys, grader, authoring tools): neither the grading
# sandbox's copy of kdlab nor the student release (kdlab.authoring.release) contains them
INSTRUCTOR_ONLY = ("grading", "authoring")

# The course's helpers that compute an exercise's answer (or its core), by file of kdlab: in
# the sandbox's copy their bodies are replaced by a raise. The graded kernel runs no cell that
# needs them (restore.runs_in_grading); tests/test_no_answers.py runs every callable of the
# copy on every check's inputs and fails if one passes a check.
STRIPPED = {
    "train.py": ("fit",),  # Lab 03's distill_step
    "distill.py": ("loss",),  # Lab 03's kd_loss
    "cache.py": ("train_once",),
    "compress.py": ("_grid", "pack"),  # Lab 05's fake_quantize (the grid of 2**bits levels)
    "plot/probabilities.py": ("soft_probabilities", "entropy_nats"),  # Lab 01's softmax with T and entropy (numpy)
}


def _strip(path: Path, names) -> None:
    """Replace the bodies of the top-level functions `names` of the file at `path` by a raise
    (their docstrings stay); ValueError if one of them is not there."""
    import ast

    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    nodes = {n.name: n for n in ast.parse("".join(lines)).body if isinstance(n, ast.FunctionDef)}
    missing = [n for n in names if n not in nodes]
    if missing:
        raise ValueError(f"sandbox.STRIPPED names {missing}, which {path.name} does not define")
    for node in sorted((nodes[n] for n in names), key=lambda n: -n.lineno):
        body = node.body
        first = body[1] if len(body) > 1 and isinstance(body[0], ast.Expr) and isinstance(
            getattr(body[0], "value", None), ast.Constant) else body[0]
        indent = " " * (first.col_offset)
        what = f"kdlab.{path.stem}.{node.name}" if path.parent.name == "kdlab" else node.name
        raise_line = (f"{indent}raise RuntimeError({what + ' is not available while a notebook is graded: the graded kernel runs your cells and the checks, not the experiments'!r})\n")
        lines[first.lineno - 1:node.end_lineno] = [raise_line]
    path.write_text("".join(lines), encoding="utf-8")

def kdlab_copy(dest, data: bool = True, strip: bool = True) -> Path:
    """Copy the installed kdlab (code and assets, without ``INSTRUCTOR_ONLY`` and without the helpers
    of ``STRIPPED``, unless strip=False: a test's control) to dest/kdlab; return dest.

    With data=True, also fill dest/data-cache, the kernels' read-only ``KDLAB_CACHE``: MNIST
    extracted from the package's verified archives (so no kernel spends seconds extracting
    it) and the tensors ``kd.data.mnist`` keeps (so that none parses them either), and the
    grader's cached teacher logits if it has them (each kernel checks them
    against the checkpoint and their digest before use). Read-only, so that no submission can
    change what the next one reads. Also writes dest/pyvenv.cfg, the sandbox's view of the
    grader's virtualenv (see ``_python_mounts``).
    """
    import kdlab
    from kdlab import data as kdata
    from kdlab import teacher

    src = Path(kdlab.__file__).resolve().parent
    dest = Path(dest)
    shutil.copytree(src, dest / "kdlab", ignore=shutil.ignore_patterns(
        "__pycache__", "*.pyc", *INSTRUCTOR_ONLY))
    for rel, names in (STRIPPED if strip else {}).items():
        _strip(dest / "kdlab" / rel, names)
    # compiled once here: the sandbox is read-only, so without .pyc files every kernel would
    # compile all of kdlab again (~0.3 s of CPU each); the code objects name the files by
    # their path inside the sandbox, as compiling there would
    compileall.compile_dir(dest / "kdlab", ddir=f"{MOUNT_KDLAB}/kdlab", quiet=1)
    cfg = Path(sys.prefix) / "pyvenv.cfg"
    if sys.prefix != sys.base_prefix and cfg.is_file():
        keep = [ln for ln in cfg.read_text().splitlines()
                if ln.split("=")[0].strip() in ("include-system-site-packages", "version")]
        (dest / "pyvenv.cfg").write_text(f"home = {MOUNT_PYTHON}/{_exe_relative().parent}\n"
                                         + "\n".join(keep) + "\n")
    if data:
        cache = dest / DATA_CACHE
        kdata.prepare(cache)
        kdata.keep_tensors(cache)
        try:
            sha = teacher.metadata()["sha256"]
        except Exception:  # noqa: BLE001 - no usable teacher metadata: kernels compute logits
            sha = None
        for split in kdata.FILES if sha else ():
            have = teacher.logits_cache_path(split, sha)
            if have.is_file():
                target = cache / have.relative_to(kdata.cache_dir())
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(have, target)
    return dest


def _exe_relative() -> Path:
    """The base interpreter's path relative to the base installation (e.g. bin/python3.11)."""
    exe = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    try:
        return exe.relative_to(Path(sys.base_prefix).resolve())
    except ValueError:
        raise SandboxError(f"the Python interpreter {exe} lies outside its installation "
                           f"{sys.base_prefix}; grade with a regular Python or a virtualenv") from None


def _site_dirs() -> list[Path]:
    dirs = set(site.getsitepackages()) | {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    return sorted({Path(d).resolve() for d in dirs if Path(d).is_dir()})


def _inside(path: Path) -> str | None:
    """Where a path of the grader's Python installation appears inside the sandbox, or None."""
    path = Path(path).resolve()
    base, prefix = Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve()
    if sys.prefix != sys.base_prefix:
        try:
            return f"{MOUNT_VENV}/{path.relative_to(prefix)}"
        except ValueError:
            pass
    try:
        return f"{MOUNT_PYTHON}/{path.relative_to(base)}"
    except ValueError:
        return None


def _python_mounts(site_dir: Path) -> tuple[list[str], str]:
    """(bubblewrap arguments showing the Python installation read-only, the interpreter inside).

    The base installation appears at /opt/kdlab-python, a virtualenv at /opt/kdlab-venv (its
    lib/ and a pyvenv.cfg pointing at the base), so no path of the grader's disk (a home
    folder, a course tree under /tmp) is bound. Editable-install hooks naming kdlab are masked.
    """
    base = Path(sys.base_prefix).resolve()
    args = ["--ro-bind", str(base), MOUNT_PYTHON]
    python = f"{MOUNT_PYTHON}/{_exe_relative()}"
    if sys.prefix != sys.base_prefix:
        prefix = Path(sys.prefix).resolve()
        args += ["--dir", f"{MOUNT_VENV}/bin", "--symlink", python, f"{MOUNT_VENV}/bin/python"]
        for sub in ("lib", "lib64"):
            p = prefix / sub
            if p.is_dir() and not p.is_symlink():
                args += ["--ro-bind", str(p), f"{MOUNT_VENV}/{sub}"]
            elif p.is_symlink():
                args += ["--symlink", os.readlink(p), f"{MOUNT_VENV}/{sub}"]
        args += ["--ro-bind", str(Path(site_dir) / "pyvenv.cfg"), f"{MOUNT_VENV}/pyvenv.cfg"]
        python = f"{MOUNT_VENV}/bin/python"
    for d in _site_dirs():
        for pth in d.glob("*.pth"):
            try:
                hook = "kdlab" in pth.read_text(errors="replace")
            except OSError:
                hook = False
            where = _inside(pth)
            if hook and where:
                args += ["--ro-bind", "/dev/null", where]
        # an editable install's finder and its direct_url.json name the course's source tree
        for f in sorted(d.glob("__editable__*kdlab*")) + sorted(d.glob("kdlab*.dist-info/direct_url.json")):
            where = _inside(f)
            if where and f.is_file():
                args += ["--ro-bind", "/dev/null", where]
    return args, python


def _system_mounts() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for d in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        p = Path("/") / d
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), str(p)]
        elif p.is_dir():
            args += ["--ro-bind", str(p), str(p)]
    for f in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/fonts",
              "/etc/localtime", "/etc/alternatives"):
        args += ["--ro-bind-try", f, f]
    return args


# ------------------------------------------------------------------ cgroups (memory, processes)

class Cgroup:
    """A memory + pids cgroup for one kernel, where this machine lets the grader make one.

    cgroup v1 (memory and pids hierarchies, as root) or v2 (a writable subtree with both
    controllers). The memory cgroup counts what the kernel writes into its tmpfs too.
    """

    def __init__(self, dirs: list, memory_dir: Path):
        self.dirs, self.memory_dir = dirs, memory_dir

    @property
    def procs(self) -> list:
        """The files a process writes its pid into to join the cgroup (one per hierarchy)."""
        return [d / "cgroup.procs" for d in self.dirs]

    @classmethod
    def create(cls, limits: Limits) -> "Cgroup | None":
        """A new cgroup with `limits`, or None if this machine does not allow it."""
        name = f"kdlab-{uuid.uuid4().hex[:12]}"
        root = Path("/sys/fs/cgroup")
        own = {}
        try:
            for line in Path("/proc/self/cgroup").read_text().splitlines():
                _, ctrl, path = line.split(":", 2)
                for c in ctrl.split(",") if ctrl else [""]:
                    own[c] = path
        except OSError:
            return None
        made = []
        try:
            if (root / "memory").is_dir() and (root / "pids").is_dir() and "memory" in own:
                mem = root / "memory" / own["memory"].lstrip("/") / name
                pids = root / "pids" / own.get("pids", "/").lstrip("/") / name
                for d in (mem, pids):
                    d.mkdir()
                    made.append(d)
                (mem / "memory.limit_in_bytes").write_text(str(limits.memory))
                if (mem / "memory.memsw.limit_in_bytes").exists():
                    (mem / "memory.memsw.limit_in_bytes").write_text(str(limits.memory))
                (pids / "pids.max").write_text(str(limits.pids))
                return cls(made, mem)
            if (root / "cgroup.controllers").is_file():
                parent = root / own.get("", "/").lstrip("/")
                for cand in (parent, root):
                    try:
                        (cand / "cgroup.subtree_control").write_text("+memory +pids")
                    except OSError:
                        continue
                    d = cand / name
                    d.mkdir()
                    made.append(d)
                    (d / "memory.max").write_text(str(limits.memory))
                    if (d / "memory.swap.max").exists():
                        (d / "memory.swap.max").write_text("0")
                    (d / "pids.max").write_text(str(limits.pids))
                    return cls(made, d)
        except OSError:
            for d in reversed(made):
                try:
                    d.rmdir()
                except OSError:
                    pass
        return None

    def oom_killed(self) -> bool:
        """True if the kernel hit the memory limit and the OOM killer ended a process."""
        for f in ("memory.oom_control", "memory.events"):
            try:
                for line in (self.memory_dir / f).read_text().splitlines():
                    k, _, v = line.partition(" ")
                    if k == "oom_kill" and int(v) > 0:
                        return True
            except (OSError, ValueError):
                pass
        return False

    def remove(self) -> None:
        """Remove the cgroup (its processes have ended)."""
        for d in self.dirs:
            try:
                d.rmdir()
            except OSError:
                pass


# ------------------------------------------------------------------ the kernel's command line

def kernel_argv(kdlab_site, env: dict, limits: Limits | None = None,
                python: str | None = None, cgroup: Cgroup | None = None) -> list[str]:
    """The command line that starts a sandboxed ipykernel (``{connection_file}`` left in).

    The connection file at ``{connection_file}`` must name the kernel's sockets as the
    sandbox sees them (``SANDBOX_RUNTIME``, in its own /tmp: see ``nbval_plugin``); it is
    shown read-only at ``KERNEL_JSON`` (with no procfs inside, nothing shows where it lies
    on the grader's disk). kdlab_site: folder holding the copy
    of kdlab (``kdlab_copy``); env: variables to set inside (on top of PATH, HOME,
    PYTHONPATH); limits: see ``Limits``; python: the interpreter inside (default: the
    grader's, remapped); cgroup: the cgroup to start in (``Cgroup.create``), if any.
    """
    limits = limits or Limits()
    py_args, py_inside = _python_mounts(Path(kdlab_site))
    # no procfs: /proc/self/mountinfo names the host path of every bind (the Python
    # installation, the copy of kdlab); torch reads /proc/cpuinfo to pick its CPU kernels
    args = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session",
            "--uid", "65534", "--gid", "65534", "--cap-drop", "ALL",
            "--dir", "/proc", "--ro-bind-try", "/proc/cpuinfo", "/proc/cpuinfo", "--dev", "/dev",
            "--size", str(limits.shm), "--tmpfs", "/dev/shm",
            "--size", str(limits.tmp), "--tmpfs", "/tmp",
            "--dir", SANDBOX_RUNTIME, "--ro-bind", "{connection_file}", KERNEL_JSON]
    args += _system_mounts() + py_args
    args += ["--ro-bind", str(Path(kdlab_site).resolve() / "kdlab"), f"{MOUNT_KDLAB}/kdlab",
             "--ro-bind-try", str(Path(kdlab_site).resolve() / DATA_CACHE), f"{MOUNT_KDLAB}/{DATA_CACHE}",
             "--chdir", "/tmp", "--clearenv",
             "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "HOME", "/tmp",
             "--setenv", "USER", "student", "--setenv", "LOGNAME", "student",
             "--setenv", "PYTHONNOUSERSITE", "1", "--setenv", "LD_LIBRARY_PATH", f"{MOUNT_PYTHON}/lib",
             "--setenv", "PYTHONPATH", MOUNT_KDLAB, "--setenv", "KDLAB_CACHE", f"{MOUNT_KDLAB}/{DATA_CACHE}"]
    for k, v in sorted(env.items()):
        args += ["--setenv", k, str(v)]
    args += ["--remount-ro", "/"]  # the sandbox's own root (a tmpfs) is not a place to fill
    prlimit = shutil.which("prlimit")
    limit = [prlimit, f"--data={int(limits.memory)}", f"--fsize={int(limits.tmp)}"] if prlimit else []
    if prlimit and cgroup is None and os.geteuid() != 0:
        limit.append(f"--nproc={int(limits.pids)}")  # a pids cgroup is better; root ignores this
    if limit:
        limit.append("--")
    argv = args + ["--"] + limit + [python or py_inside, "-m", "ipykernel_launcher", "-f", KERNEL_JSON]
    if cgroup is not None:
        join = " && ".join(f"echo $$ > '{p}'" for p in cgroup.procs)
        argv = ["/bin/sh", "-c", f'{join} && exec "$@"', "kdlab-kernel"] + argv
    return argv


def plain_argv(python: str | None = None) -> list[str]:
    """The command line of an unsandboxed kernel (``--no-sandbox``)."""
    return [python or sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]


def preflight(timeout: float = 60) -> list[str]:
    """Run a tiny Python in the sandbox once; raise SandboxError saying why it cannot run.

    It must start, find kdlab in the sandbox's copy (without kdlab.grading), and fail to
    reach the network. Returns warnings: the limits this machine cannot enforce.
    """
    if shutil.which("bwrap") is None:
        raise SandboxError(
            "bubblewrap (the command bwrap) is not installed, and the grader runs student code "
            "only inside it. Install it: `make grade-deps` (Debian/Ubuntu: apt-get install "
            "bubblewrap), or grade without a sandbox with --no-sandbox (then every gradebook "
            "row says 'unsandboxed': only do that for trusted code)")
    with tempfile.TemporaryDirectory(prefix="kdlab-preflight-") as tmp:
        site_dir = kdlab_copy(Path(tmp) / "site", data=False)
        rt = Path(tmp) / "rt"
        rt.mkdir()
        (rt / "kernel.json").write_text("{}")
        argv = kernel_argv(site_dir, {})
        cut = argv.index("--", argv.index("--clearenv"))
        # found, not imported: importing kdlab (torch) costs seconds of CPU on every grading
        code = ("import socket, importlib.util, importlib.machinery\n"
                "try:\n    socket.create_connection(('1.1.1.1', 53), timeout=2)\n"
                "except OSError:\n    print('no network')\n"
                "spec = importlib.util.find_spec('kdlab')\n"
                "sub = importlib.machinery.PathFinder.find_spec('grading', "
                "spec.submodule_search_locations)\n"
                "print('grading' if sub else 'no grading')\n"
                "print(spec.origin)")  # where kdlab would load from
        cmd = [a.replace("{connection_file}", str(rt / "kernel.json")) for a in argv[:cut + 1]]
        cmd += [argv[-5], "-c", code]  # the interpreter inside, without the kernel
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SandboxError(f"a sandboxed `python -c 'import kdlab'` did not finish in "
                               f"{timeout:g} s") from None
        if p.returncode != 0 or not p.stdout.strip().endswith(f"{MOUNT_KDLAB}/kdlab/__init__.py"):
            err = (p.stderr.strip().splitlines() or ["no message"])[-1]
            raise SandboxError(
                f"bubblewrap cannot run the grader's sandbox here ({err}). Typical causes: "
                "unprivileged user namespaces are disabled (sysctl kernel.unprivileged_userns_clone"
                "=1, or run as root), or a container that forbids namespaces (run the grader on "
                "the host or in a VM). Or grade without a sandbox with --no-sandbox (every "
                "gradebook row then says 'unsandboxed')")
        if "no network" not in p.stdout:
            raise SandboxError("the sandbox reached the network; refusing to grade")
        if "no grading" not in p.stdout:
            raise SandboxError("the sandbox's copy of kdlab holds kdlab.grading; refusing to grade")
    warnings = []
    cg = Cgroup.create(Limits())
    if cg is None:
        warnings.append("no cgroup could be made here (run the grader as root, or with a "
                        "delegated cgroup v2): memory written to a kernel's /tmp and /dev/shm "
                        "is capped by their sizes but not counted in --memory"
                        + (", and the number of processes is not capped" if os.geteuid() == 0 else ""))
    else:
        cg.remove()
    return warnings
