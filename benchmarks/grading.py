"""Grading cost: wall time to grade N copies of a lab's solution, sandboxed vs --no-sandbox.

For each lab, N students each submit the solution notebook; the grader grades the folder
twice in one run, in the sandbox (bubblewrap) and without it, alternating which goes first
over the rounds so that neither always meets a warmer cache. Records the wall time of each
grading, the mean seconds per notebook, that every notebook got full marks, and the cost of
the sandbox (sandboxed / unsandboxed wall time - 1).

    python -m benchmarks.grading [--budget tiny|full] [--labs 01_softmax_temperature ...] [--n 20]
"""
from __future__ import annotations

import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from kdlab.grading.gradebook import grade_submissions

from ._common import RESULTS, ROOT, Run, goal_verdict, parser, pick, set_threads

LABS = ("01_softmax_temperature", "03_response_kd")


def settings_for(budget: str, labs=None, n=None, rounds=None) -> dict:
    """Settings for a budget; explicit arguments override the budget's values."""
    return {"labs": list(labs or pick(budget, LABS, LABS[:1])), "submissions": n or pick(budget, 20, 1),
            "rounds": rounds or pick(budget, 1, 1), "jobs": 2, "grading_budget": "quick"}


def grade_once(subs: Path, lab: str, sandbox: bool, work: Path) -> dict:
    """Grade the folder once; return wall seconds, seconds per notebook, points, max points."""
    c0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    rows = grade_submissions(subs, labs_dir=ROOT / "labs", out=work / "gradebook.csv",
                             solutions_dir=ROOT / "solutions", lab_names=[lab], jobs=2,
                             log=lambda *a: None, sandbox=sandbox, work_root=work / "tmp")
    wall = time.perf_counter() - t0
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # kernels, nbval, screens: what grading costs
    cpu = c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime
    mine = [r for r in rows if r.lab == lab]
    secs = {r.student: r.seconds for r in mine}  # one grading time per notebook
    failed = sorted({f"{r.check}: {r.reason[:200]}" for r in mine if r.points != r.max_points})
    return {"wall_seconds": round(wall, 1), "seconds_per_notebook": round(statistics.mean(secs.values()), 2),
            "cpu_seconds_per_notebook": round(cpu / max(1, len(secs)), 1),
            "points": sum(r.points for r in mine), "max_points": sum(r.max_points for r in mine),
            "failures": failed[:5]}


def run(budget: str = "full", out: Path = RESULTS, labs=None, n=None) -> dict:
    """Measure and write ``grading.json``; return its results."""
    s = settings_for(budget, labs, n)
    with Run("grading", budget, s, out, title="grading cost, sandboxed vs unsandboxed") as r:
        for lab in s["labs"]:
            with tempfile.TemporaryDirectory(prefix="kdlab-bench-grading-") as tmp:
                tmp = Path(tmp)
                subs = tmp / "submissions"
                for i in range(s["submissions"]):
                    (subs / f"student{i:02d}").mkdir(parents=True)
                    shutil.copyfile(ROOT / "solutions" / f"{lab}.ipynb",
                                    subs / f"student{i:02d}" / f"{lab}.ipynb")
                runs = {"sandbox": [], "no_sandbox": []}
                for k in range(s["rounds"]):
                    order = (True, False) if k % 2 == 0 else (False, True)
                    for sandboxed in order:
                        print(f"{lab}: round {k + 1}, {'sandboxed' if sandboxed else 'unsandboxed'}",
                              flush=True)
                        got = grade_once(subs, lab, sandboxed, tmp)
                        runs["sandbox" if sandboxed else "no_sandbox"].append(got)
                        print(f"  {got['wall_seconds']} s, {got['points']}/{got['max_points']} points",
                              flush=True)
                walls = {m: statistics.mean(x["wall_seconds"] for x in v) for m, v in runs.items()}
                r.results[lab] = {"runs": runs, "sandbox_cost": round(walls["sandbox"] / walls["no_sandbox"] - 1, 3)}
            r.save()
    return r.results


def rows(d: dict, results: dict | None = None) -> list[tuple]:
    """One results-table row per lab: sandboxed vs unsandboxed wall time, against the goal.

    Inputs: d, the parsed grading.json; results (all parsed JSON files) is not used.
    Returns: [(measurement, goal, this course, compared)].
    """
    out = []
    for lab, v in d["results"].items():
        sb, ns = v["runs"]["sandbox"], v["runs"]["no_sandbox"]
        wall_sb = sum(x["wall_seconds"] for x in sb) / len(sb)
        wall_ns = sum(x["wall_seconds"] for x in ns) / len(ns)
        per = sum(x["seconds_per_notebook"] for x in sb) / len(sb)
        full = all(x["points"] == x["max_points"] for x in sb + ns)
        out.append((f"Grading {d['settings']['submissions']} submissions of {lab}, sandboxed vs "
                    "`--no-sandbox` (2 at a time)", "sandbox costs ≤ 10%",
                    f"{wall_sb:.0f} s vs {wall_ns:.0f} s ({v['sandbox_cost']:+.0%}); "
                    f"{per:.1f} s per notebook" + ("" if full else "; NOT all full marks"),
                    goal_verdict(v["sandbox_cost"] <= 0.10 and full)))
    return out


def conditions(d: dict) -> str:
    """Nothing beyond the common conditions line: ''."""
    return ""


def main(argv=None) -> int:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--labs", nargs="+", default=None, help=f"labs to grade (default {LABS})")
    p.add_argument("--n", type=int, default=None, help="submissions per lab")
    a = p.parse_args(argv)
    set_threads(a.threads)
    run(a.budget, a.out, a.labs, a.n)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
