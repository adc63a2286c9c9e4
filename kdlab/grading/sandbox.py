"""The sandbox student code runs in while it is graded: bubblewrap around the notebook's kernel.

The kernel of a graded notebook (the only process that runs student code: the notebook's
cells and the checks' probes) is started as

    bwrap --unshare-all ... prlimit --data=LIMIT -- python -m ipykernel_launcher -f CONN

- its own user, network, PID, IPC and UTS namespaces: no network, nothing outlives the run,
  no view of the grader's processes (or their command lines);
- a read-only view of the Python installation and of a private, non-editable copy of kdlab
  (the grader's ``kdlab`` package copied once per grading run); editable-install hooks that
  would point back at the course's source tree (and its solutions/) are masked;
- no view of solutions/, the submissions, the grader's work folders or the home folder: only
  the folder holding the kernel's connection file and sockets (the kernel talks to the grader
  over Unix sockets there), a private writable /tmp, /proc and a minimal /dev;
- a minimal environment (PATH, HOME=/tmp, the budget switch, thread counts), unprivileged
  user id 65534 with no capabilities, and a memory limit (RLIMIT_DATA).

``preflight()`` runs a tiny sandboxed Python once and says why the sandbox cannot run here.
"""
from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

MOUNT_KDLAB = "/opt/kdlab-site"  # where the copy of kdlab appears inside the sandbox
DEFAULT_MEMORY = 4 * 1024 ** 3  # bytes of data memory per kernel


class SandboxError(RuntimeError):
    """bubblewrap is missing or cannot create its namespaces here."""


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


DATA_CACHE = "data-cache"  # beside the copy of kdlab: MNIST extracted, read-only inside


def kdlab_copy(dest, data: bool = True) -> Path:
    """Copy the installed kdlab package (code and assets, no caches) to dest/kdlab; return dest.

    With data=True, also fill dest/data-cache, the kernels' read-only ``KDLAB_CACHE``: MNIST
    extracted from the package's verified archives (so no kernel spends seconds extracting
    it), and the grader's cached teacher logits if it has them (each kernel checks them
    against the checkpoint and their digest before use). Read-only, so that no submission can
    change what the next one reads.
    """
    import kdlab
    from kdlab import data as kdata
    from kdlab import teacher

    src = Path(kdlab.__file__).resolve().parent
    dest = Path(dest)
    shutil.copytree(src, dest / "kdlab", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if data:
        cache = dest / DATA_CACHE
        kdata.prepare(cache)
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


def _python_paths() -> list[Path]:
    """Folders of the Python installation the kernel needs, read-only.

    The prefixes, the standard library and site-packages folders only: never a folder that
    is merely on sys.path (the script's folder, /tmp, the course's tree), which could show the
    sandbox other students' files or solutions/.
    """
    paths = {Path(sys.base_prefix), Path(sys.prefix), Path(sys.executable).parent}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        p = sysconfig.get_paths().get(key)
        if p:
            paths.add(Path(p))
    paths.update(Path(p) for p in site.getsitepackages())
    if site.ENABLE_USER_SITE and site.getusersitepackages() in sys.path:
        paths.add(Path(site.getusersitepackages()))
    for p in sys.path:  # other site-packages folders on the path (e.g. added by a .pth file)
        if p and Path(p).name in ("site-packages", "dist-packages"):
            paths.add(Path(p))
    import kdlab

    source = Path(kdlab.__file__).resolve().parent.parent  # the course's tree, if editable
    out = []
    for p in sorted(paths, key=lambda q: len(q.parts)):
        if not p.is_dir():
            continue
        p = p.resolve()
        if p == source or p in source.parents or p == source / "kdlab" or (source / "kdlab") in p.parents:
            continue  # never the course's own tree (solutions/) nor its kdlab source
        if p == Path("/") or p == Path("/tmp") or Path("/tmp") in p.parents:
            continue
        if not any(q == p or q in p.parents for q in out):
            out.append(p)
    return out


def _masked_pth_files() -> list[Path]:
    """Editable-install hooks (.pth files) that would import kdlab from the source tree."""
    out = []
    dirs = set(site.getsitepackages()) | {sysconfig.get_paths()["purelib"]}
    for d in dirs:
        for pth in Path(d).glob("*.pth") if Path(d).is_dir() else []:
            try:
                if "kdlab" in pth.read_text(errors="replace"):
                    out.append(pth)
            except OSError:
                pass
    return out


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


def kernel_argv(runtime_dir, kdlab_site, env: dict, memory: int = DEFAULT_MEMORY,
                python: str | None = None) -> list[str]:
    """The command line that starts a sandboxed ipykernel (``{connection_file}`` left in).

    runtime_dir: folder of the connection file and the kernel's sockets (read-write inside);
    kdlab_site: folder holding the copy of kdlab (``kdlab_copy``); env: variables to set
    inside (on top of PATH, HOME, PYTHONPATH); memory: RLIMIT_DATA in bytes.
    """
    python = python or sys.executable
    args = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session",
            "--uid", "65534", "--gid", "65534", "--cap-drop", "ALL",
            "--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev"]
    args += _system_mounts()
    for p in _python_paths():
        args += ["--ro-bind", str(p), str(p)]
    for pth in _masked_pth_files():
        args += ["--ro-bind", "/dev/null", str(pth)]
    args += ["--ro-bind", str(Path(kdlab_site).resolve()), MOUNT_KDLAB,
             "--bind", str(Path(runtime_dir).resolve()), str(Path(runtime_dir).resolve()),
             "--chdir", "/tmp", "--clearenv",
             "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "HOME", "/tmp",
             "--setenv", "USER", "student", "--setenv", "LOGNAME", "student",
             "--setenv", "PYTHONPATH", MOUNT_KDLAB, "--setenv", "KDLAB_CACHE", f"{MOUNT_KDLAB}/{DATA_CACHE}"]
    for k, v in sorted(env.items()):
        args += ["--setenv", k, str(v)]
    prlimit = shutil.which("prlimit")
    limit = [prlimit, f"--data={int(memory)}", "--"] if prlimit else []
    return args + ["--"] + limit + [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]


def plain_argv(python: str | None = None) -> list[str]:
    """The command line of an unsandboxed kernel (``--no-sandbox``)."""
    return [python or sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]


def preflight(timeout: float = 60) -> None:
    """Run a tiny Python in the sandbox once; raise SandboxError saying why it cannot run.

    It must start, find kdlab in the sandbox's copy, and fail to reach the network.
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
        argv = kernel_argv(rt, site_dir, {})
        cut = argv.index("--", argv.index("--clearenv"))
        code = ("import socket, importlib.util\n"
                "try:\n    socket.create_connection(('1.1.1.1', 53), timeout=2)\n"
                "except OSError:\n    print('no network')\n"
                "print(importlib.util.find_spec('kdlab').origin)")  # where kdlab would load from
        cmd = argv[:cut + 1] + [sys.executable, "-c", code]
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
