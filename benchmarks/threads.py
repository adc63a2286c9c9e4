"""Threads on a busy machine: a Lab 03 training epoch with 1 and 2 torch threads, idle and loaded.

A JupyterHub server gives many students one machine: other kernels keep the cores busy, and
torch (which starts one thread per core, and ignores a container's CPU quota) can then run a
step several times slower with more threads than with one. ``kd.threads()`` picks the
count once: ``$KDLAB_THREADS`` if set, else the container's CPU quota (cgroup) if any, else
torch's default. This script records what that choice is on this machine and times one epoch
of Lab 03's distillation (HintonMLP, ``kd_loss`` T = 4, alpha 0.9, cached teacher logits,
batch 128, Adam) with each thread count, with no other work and with `busy` extra processes
spinning on the CPU (1-minute load about busy + threads).

    python -m benchmarks.threads [--budget tiny|full]
"""
from __future__ import annotations

import functools
import os
import statistics
import subprocess
import sys
import time

import torch

import kdlab as kd
from kdlab.grading.keys.lab03 import kd_loss

from ._common import RESULTS, Run, parser, pick, set_threads

SPIN = "while True: pass"


def settings_for(budget: str) -> dict:
    return {
        "n_train": pick(budget, 20_000, 512),
        "batch_size": 128,
        "student": "kd.models.HintonMLP",
        "loss": "kdlab.losses.kd_loss, T=4, alpha=0.9, cached teacher logits (Lab 03's default)",
        "threads": [1, 2],
        "busy": pick(budget, [0, 2], [0, 1]),
        "repeats": pick(budget, 3, 1),
        "warmup": "one untimed epoch per setting",
    }


def _epoch(x, y, logits, loss) -> float:
    kd.seed(0)
    h = kd.train.fit(kd.models.HintonMLP(), kd.data.Batches(x, y, 128, seed=0), loss, 1,
                     teacher_logits=logits, progress=False, dev="cpu")
    return h["epoch_time"][0]


def run(budget: str = "full", out=RESULTS) -> dict:
    """Time the epochs and write threads.json; return the results."""
    s = settings_for(budget)
    before = torch.get_num_threads()
    with Run("threads", budget, s, out=out, title="Lab 03 epoch: 1 vs 2 threads, idle and busy") as r:
        res = r.results
        res["torch_default_threads"] = before
        res["cgroup_cpu_quota"] = kd.runtime._cgroup_cpus()
        res["kdlab_choice_without_env"] = (max(1, int(res["cgroup_cpu_quota"]))
                                           if res["cgroup_cpu_quota"] else before)
        x, y = kd.data.mnist("train")
        x, y = x[:s["n_train"]], y[:s["n_train"]]
        logits = kd.teacher.mnist_logits("train", indices=torch.arange(len(x)), progress=False,
                                         verbose=False)
        loss = functools.partial(kd_loss, T=4.0, alpha=0.9)
        res["runs"] = []
        try:
            for busy in s["busy"]:
                spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(busy)]
                try:
                    time.sleep(0.5 if busy else 0)
                    for n in s["threads"]:
                        torch.set_num_threads(n)
                        _epoch(x, y, logits, loss)  # warm-up
                        secs = [_epoch(x, y, logits, loss) for _ in range(s["repeats"])]
                        row = {"busy": busy, "threads": n, "seconds": [round(t, 6) for t in secs],
                               "median_seconds": round(statistics.median(secs), 6),
                               "load_after": round(os.getloadavg()[0], 2)}
                        res["runs"].append(row)
                        print(f"{busy} busy processes, {n} thread(s): epoch of {len(x):,} images "
                              f"{row['median_seconds']:.2f} s (median of {s['repeats']})", flush=True)
                finally:
                    for p in spinners:
                        p.kill()
                        p.wait()
        finally:
            torch.set_num_threads(before)
        med = {(q["busy"], q["threads"]): q["median_seconds"] for q in res["runs"]}
        top = max(s["busy"])
        res["busy_two_over_one"] = round(med[(top, 2)] / med[(top, 1)], 3)
        res["idle_two_over_one"] = round(med[(0, 2)] / med[(0, 1)], 3)
    return r.results


def rows(d: dict, results: dict | None = None) -> list[tuple]:
    """The results-table row of threads.json: 2 threads vs 1, busy and idle, and what
    ``kd.threads()`` picks on this machine.

    Inputs: d, the parsed threads.json; results (all parsed JSON files) is not used.
    Returns: [(measurement, "-", this course, kdlab's choice)].
    """
    r, s = d["results"], d["settings"]
    med = {(q["busy"], q["threads"]): q["median_seconds"] for q in r["runs"]}
    top = max(s["busy"])
    quota = r["cgroup_cpu_quota"]
    choice = (f"`kd.threads()` here: {r['kdlab_choice_without_env']} "
              + (f"(the container's CPU quota, {quota:g} cores)" if quota else
                 "(no CPU quota: torch's default, as before; `KDLAB_THREADS=1` is the "
                 "alternative measured)"))
    return [(f"Lab 03 KD epoch ({s['n_train']:,} images) with {top} other busy processes: "
             "2 threads vs 1", "-",
             f"{med[(top, 2)]:.2f} s vs {med[(top, 1)]:.2f} s ({r['busy_two_over_one']:.2f}×); "
             f"idle: {med[(0, 2)]:.2f} s vs {med[(0, 1)]:.2f} s ({r['idle_two_over_one']:.2f}×)",
             choice)]


def conditions(d: dict) -> str:
    """Nothing beyond the common conditions line: ''."""
    return ""


def main(argv=None) -> None:
    p = parser(__doc__.split("\n")[0])
    a = p.parse_args(argv)
    set_threads(a.threads)
    run(a.budget, a.out)


if __name__ == "__main__":
    sys.exit(main())
