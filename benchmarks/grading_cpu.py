"""CPU seconds to grade one copy of a lab's solution (sandboxed, one torch thread per kernel).

Prints one JSON line: cpu_children, the CPU seconds of every process the grading starts
(nbval, the sandboxed kernel, the screen; sampled every 0.1 s with psutil, so a process's
last 0.1 s may be missed), cpu_grader, the grader's own process (the sandbox's copy of kdlab
and its data cache, the answer keys, the verdicts), the wall time and the points. CPU time,
not wall time: it stays meaningful on a shared machine.

    python -m benchmarks.grading_cpu 03_response_kd
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

import kdlab
from kdlab.grading.gradebook import grade_submissions


def measure(lab: str) -> dict:
    """Grade one copy of solutions/<lab> (jobs=2: one torch thread per kernel); return the costs."""
    root = Path(kdlab.__file__).resolve().parents[1]
    cpu, stop = {}, threading.Event()

    def poll():
        me = psutil.Process()
        while not stop.is_set():
            for p in me.children(recursive=True):
                try:
                    t = p.cpu_times()
                    cpu[(p.pid, p.create_time())] = t.user + t.system
                except psutil.Error:
                    pass
            time.sleep(0.1)

    th = threading.Thread(target=poll, daemon=True)
    th.start()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "subs" / "s").mkdir(parents=True)
        shutil.copyfile(root / "solutions" / f"{lab}.ipynb", tmp / "subs" / "s" / f"{lab}.ipynb")
        t0, s0 = time.perf_counter(), time.process_time()
        rows = grade_submissions(tmp / "subs", labs_dir=root / "labs", out=tmp / "g.csv",
                                 solutions_dir=root / "solutions", lab_names=[lab], jobs=2,
                                 log=lambda *a: None, work_root=tmp / "w")
        stop.set()
        th.join()
        return {"lab": lab, "cpu_children": round(sum(cpu.values()), 1),
                "cpu_grader": round(time.process_time() - s0, 1),
                "wall": round(time.perf_counter() - t0, 1), "points": sum(r.points for r in rows),
                "max_points": sum(r.max_points for r in rows),
                "reasons": [r.reason[:200] for r in rows if r.reason]}


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1] if len(sys.argv) > 1 else "03_response_kd")))
