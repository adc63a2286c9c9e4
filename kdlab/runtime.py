"""The run's policy: the budget switch, seeding, threads, device, and when helpers may run.

``budget(full=..., quick=...)`` is the single place the quick-budget switch is read: with
``KDLAB_QUICK=1`` in the environment it returns `quick`, otherwise `full`. ``seed``,
``threads`` and ``device`` make a run repeatable and sized to the machine.

A check's probe calls the student's exercise on inputs it chose; while it does, the course's
own training helpers (``kd.train.fit``, ``kd.distill.loss``) refuse to run, in every
thread, so that no exercise can pass by handing its work to them. ``checking()`` marks that
time; ``refuse_in_check(name)`` is what a helper calls first.
"""
from __future__ import annotations

import os
import random
import threading
from contextlib import contextmanager

import numpy as np
import torch

def quick() -> bool:
    """True when the quick budget is on (environment variable KDLAB_QUICK=1)."""
    return os.environ.get("KDLAB_QUICK", "0").strip().lower() not in ("", "0", "false", "no")


_quick_on = quick  # budget's parameter `quick` (the keyword of its call sites) hides quick()


def budget(full, quick):
    """`quick` under KDLAB_QUICK=1 (tests, CI), otherwise `full` (students' default).

    Call it with keywords: ``kd.budget(full=5, quick=1)``.
    """
    return quick if _quick_on() else full


QUICK_BANNER = ("QUICK BUDGET (KDLAB_QUICK=1): a tiny run for the tests; the numbers below mean "
                "nothing. Unset KDLAB_QUICK for the real experiment.")


def quick_banner() -> None:
    """Print a one-line warning before results when the quick budget is on; else nothing."""
    if quick():
        print(QUICK_BANNER)


def seed(n: int = 0) -> None:
    """Seed python, numpy and torch so a run is repeatable on the CPU."""
    random.seed(n)
    np.random.seed(n)
    torch.manual_seed(n)


_THREADS = None


def _cgroup_cpus() -> float | None:
    """The container's CPU quota in cores (cgroup v2 cpu.max or v1 cfs files), or None."""
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int(open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read())
        period = int(open("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def threads() -> int:
    """The number of CPU threads torch uses, chosen once per process and returned.

    $KDLAB_THREADS if set; else the container's CPU quota (cgroup), rounded down, at least 1,
    if there is one (torch ignores it and would start one thread per host core); else
    torch's own default. On a shared or loaded machine, KDLAB_THREADS=1 is often faster.
    """
    global _THREADS
    if _THREADS is None:
        env = os.environ.get("KDLAB_THREADS", "").strip()
        if env:
            try:
                n = int(env)
            except ValueError:
                raise ValueError(f"KDLAB_THREADS must be a whole number >= 1, got {env!r}") from None
            if n < 1:
                raise ValueError(f"KDLAB_THREADS must be a whole number >= 1, got {env!r}")
        else:
            quota = _cgroup_cpus()
            n = max(1, int(quota)) if quota else torch.get_num_threads()
        if n != torch.get_num_threads():
            torch.set_num_threads(n)
        _THREADS = n
    return _THREADS


def device() -> torch.device:
    """The best available device: $KDLAB_DEVICE if set, else cuda, then mps, then cpu."""
    if os.environ.get("KDLAB_DEVICE"):
        return torch.device(os.environ["KDLAB_DEVICE"])
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")



_lock = threading.Lock()
_depth = 0  # probes running now (process-wide, not per thread)


class HelperInCheck(RuntimeError):
    """A course helper was called while a check was probing an exercise."""


def in_check() -> bool:
    """True while a check's probe is calling the student's code (in any thread)."""
    return _depth > 0


@contextmanager
def checking():
    """Mark the time a probe calls student code: course helpers refuse to run meanwhile."""
    global _depth
    with _lock:
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1


def refuse_in_check(name: str) -> None:
    """Raise HelperInCheck if a check is probing: `name` may not stand in for an exercise."""
    if _depth > 0:
        raise HelperInCheck(
            f"{name} is one of the course's helpers for the labs' other cells; an exercise "
            "must be your own code, so it cannot call it (write the steps yourself with torch)")
