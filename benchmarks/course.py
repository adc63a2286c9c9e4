"""The course's own run time: every solution notebook executed end to end (nbclient), under
the quick and the full budget, and the whole test suite (``make test``).

Goals: every full-budget lab <= 10 min, the whole course (full budget) <= 25 min, the
quick-budget suite (all notebooks with KDLAB_QUICK=1) <= 5 min. The notebooks run in memory:
the files in solutions/ are not modified.

    python -m benchmarks.course [--budget tiny|full] [--notebooks a.ipynb ...]
                                [--budgets quick full full-1thread] [--skip-make-test]
                                [--update] [--save-outputs] [--fresh-cache]

``--budget tiny`` executes a one-cell notebook instead of the labs (a smoke test of the
machinery) and skips ``make test``. ``--update`` re-measures only what is asked (the given
notebooks and budgets, and ``make test`` unless skipped) and keeps the other measurements of
the existing course.json; every measurement records its own date and load.
``--save-outputs`` writes each full-budget notebook back with its outputs (the saved outputs
of solutions/ then come from the timed run; with both full budgets, from the last one run).

Budgets: ``quick`` (KDLAB_QUICK=1), ``full`` (torch's default number of threads, or
``--kernel-threads``) and ``full-1thread`` (the full budget with KDLAB_THREADS=1 and
OMP_NUM_THREADS=1, as on a busy or single-core machine): the course map gives students both.
``--fresh-cache`` runs each budget's notebooks, in order, with a new empty kdlab cache folder
(KDLAB_CACHE): what a student's first pass through the course costs, teacher logits and
cached models included (each lab pays for the caches it is the first to need).
``make test`` then runs with a new empty cache too, as on a fresh clone. Its row records its
wall and CPU seconds (the CPU time is what a shared machine does not inflate) and torch's CPU
capability, as every row does: one model string ("AMD EPYC") covers machines 2x apart.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from kdlab.authoring import outputs

from . import render
from ._common import (RESULTS, ROOT, Run, cpu_capability, goal_verdict, minutes, parser,
                      set_threads)

GOALS = {"lab_full_minutes": 10, "course_full_minutes": 25, "quick_suite_minutes": 5}
BUDGETS = ("quick", "full", "full-1thread")
FULL = ("full", "full-1thread")  # the budgets students get (default threads, one thread)
MAKE_TEST = ["make", "-o", ".venv/.installed", "test"]  # the test recipe, without reinstalling
# the kdlab cache the notebooks use (settings["cache"]): the user's, or new ones (--fresh-cache)
USER_CACHE = "the user's kdlab cache (teacher logits and models of earlier runs)"
FRESH_CACHE = "a new empty kdlab cache per budget, notebooks in order"
FRESH_CACHE_MAKE_TEST = "a new empty kdlab cache (as on a fresh clone)"


def _tiny_notebook(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import kdlab as kd\nprint(kd.quick())", id="setup")]
    path = folder / "tiny.ipynb"
    nbformat.write(nb, path)
    return path


def _stamp() -> dict:
    """When, at what load and on what CPU kind (torch's CPU capability) a measurement was
    taken (kept per row by --update: rows of one course.json may come from other machines)."""
    return {"measured": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "load_before": round(os.getloadavg()[0], 2), "cpu_capability": cpu_capability()}


def execute(path: Path, quick: bool, timeout: int = 1800, kernel_threads=None,
            save: bool = False, env: dict | None = None) -> dict:
    """Execute the notebook at `path` with KDLAB_QUICK set or unset (in memory unless save).

    kernel_threads: if given, OMP_NUM_THREADS for the kernel (torch's thread count).
    save: write the executed notebook (with its outputs) back to `path` if it ran without
    error, as ``python -m kdlab.authoring refresh-outputs`` does (the same function).
    env: more environment variables for the kernel (e.g. KDLAB_THREADS, KDLAB_CACHE).

    Returns {"seconds": float, "cpu_seconds": float (the kernel's), "ok": bool, "error": str
    or None, "cells": int, "kernel_threads", "measured", "load_before", "cpu_capability"}.
    """
    stamp = _stamp()
    env = {**(env or {}), "KDLAB_QUICK": "1" if quick else None}
    if kernel_threads is not None:
        env["OMP_NUM_THREADS"] = str(kernel_threads)
    r = outputs.execute(path, env=env, timeout=timeout, save=save)
    return {"seconds": r["seconds"], "cpu_seconds": r["cpu_seconds"], "ok": r["ok"],
            "error": r["error"], "cells": r["cells"],
            "kernel_threads": kernel_threads or "torch default", **stamp}


def make_test(cwd: Path = ROOT, fresh_cache: bool = False) -> dict:
    """Run the test suite as `make test` does.

    fresh_cache: run it with a new empty kdlab cache (KDLAB_CACHE), as on a fresh clone.
    Returns seconds (wall), cpu_seconds (user + system time of make and everything it ran,
    which the load of other work on a shared machine does not inflate), exit code, pytest's
    summary line, the failed tests, pytest's ten slowest test phases ("12.34s call tests/...")
    to show where the time goes, and the stamp (date, load, torch's CPU capability).
    """
    stamp = _stamp()
    env = {**os.environ, "PYTEST_ADDOPTS": f"{os.environ.get('PYTEST_ADDOPTS', '')} --durations=10"}
    cache = tempfile.TemporaryDirectory(prefix="kdlab-cache-") if fresh_cache else None
    if cache is not None:
        env["KDLAB_CACHE"] = cache.name
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    try:
        p = subprocess.run(MAKE_TEST, cwd=cwd, capture_output=True, text=True, env=env)
    finally:
        if cache is not None:
            cache.cleanup()
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = [ln for ln in p.stdout.strip().splitlines() if ln.strip()]
    slowest = []
    for i, ln in enumerate(lines):
        if "slowest 10 durations" in ln:
            slowest = [x.strip() for x in lines[i + 1:i + 11] if x.strip()[:1].isdigit()]
    return {"seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1),
            "returncode": p.returncode,
            "summary": lines[-1].strip("= ") if lines else p.stderr.strip()[-300:],
            "failed": [ln.split(" - ")[0][len("FAILED "):] for ln in lines
                       if ln.startswith("FAILED ")],
            "slowest_tests": slowest, "command": " ".join(MAKE_TEST),
            "cache": FRESH_CACHE_MAKE_TEST if fresh_cache else USER_CACHE, **stamp}


def _goals(res: dict) -> None:
    """Add the goal verdicts to the results of the notebooks run so far."""
    for b in FULL:
        if b in res:
            worst = max((v["seconds"] for v in res[b]["notebooks"].values()), default=0)
            res[b]["lab_goal_met"] = worst <= 60 * GOALS["lab_full_minutes"]
            res[b]["course_goal_met"] = res[b]["total_seconds"] <= 60 * GOALS["course_full_minutes"]
    if "quick" in res:
        res["quick"]["suite_goal_met"] = (res["quick"]["total_seconds"]
                                          <= 60 * GOALS["quick_suite_minutes"])


def _previous(out: Path) -> dict:
    """The results of the existing course.json in `out` (complete runs only), or {}."""
    path = Path(out) / "course.json"
    if not path.exists():
        return {}
    d = json.loads(path.read_text())
    if not (d.get("complete") and d.get("budget") == "full"):
        return {}
    earlier = d["results"].get("earlier_run") or {
        "date": d["env"]["date"], "load": d["load"], "load_note": d["load_note"],
        "cpu_capability": d["env"].get("cpu_capability")}
    threads = d["settings"].get("kernel_threads", "torch default")
    for b in ("quick", "full"):  # rows of older runs: the kernel threads of their settings
        for row in d["results"].get(b, {}).get("notebooks", {}).values():
            row.setdefault("kernel_threads", threads)
    return {**d["results"], "earlier_run": earlier}


def run(budget: str = "full", out=RESULTS, notebooks=None, budgets=("quick", "full"),
        skip_make_test: bool = False, kernel_threads=None, update: bool = False,
        save_outputs: bool = False, fresh_cache: bool = False) -> dict:
    """Time the notebooks (and make test) and write course.json; return the results."""
    tmp = None
    if notebooks is None and budget == "tiny":
        tmp = tempfile.TemporaryDirectory()
        notebooks = [_tiny_notebook(Path(tmp.name))]
        budgets, skip_make_test = ("quick",), True
    all_notebooks = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
    if notebooks is None:
        notebooks = all_notebooks
    notebooks = [Path(n) for n in notebooks]
    kept = _previous(out) if update else {}
    s = {"notebooks": [n.name for n in (all_notebooks if kept else notebooks)],
         "budgets": sorted(set(budgets) | {b for b in BUDGETS if b in kept}),
         "runner": "nbclient, kernel python3, in memory (files untouched"
                   + ("; full-budget notebooks then saved with their outputs)" if save_outputs
                      else ")"),
         "make_test": None if skip_make_test and "make_test" not in kept else " ".join(MAKE_TEST),
         "goals": GOALS, "kernel_threads": kernel_threads or "torch default",
         "kernel_threads_full_1thread": 1, "cpu_count": os.cpu_count(),
         "cache": FRESH_CACHE if fresh_cache else USER_CACHE,
         "updated": bool(kept)}
    with Run("course", budget, s, out=out, title="Course run time") as r:
        res = r.results
        res.update(kept)
        if kept:
            res["remeasured"] = ([] if skip_make_test else ["make test"]) + [
                f"{b} {n.stem}" for b in budgets for n in notebooks]
        # make test first, while benchmarks/results/course.json still holds the finished run
        # the README was rendered from: the checkpoints below would make the README test fail
        if not skip_make_test:
            res["make_test"] = make_test(fresh_cache=fresh_cache)
            print(f"make test: {res['make_test']['seconds']:.0f} s, "
                  f"{res['make_test']['summary']}", flush=True)
            r.save(complete=False)
        for b in budgets:
            rows = dict(res.get(b, {}).get("notebooks", {})) if kept else {}
            cache = tempfile.TemporaryDirectory(prefix="kdlab-cache-") if fresh_cache else None
            env = {"KDLAB_CACHE": cache.name} if cache else {}
            threads = kernel_threads
            if b == "full-1thread":
                env["KDLAB_THREADS"], threads = "1", 1
            for nb in notebooks:
                rows[nb.stem] = execute(nb, quick=(b == "quick"), kernel_threads=threads,
                                        save=save_outputs and b in FULL, env=env)
                print(f"{b:5s} {nb.name}: {rows[nb.stem]['seconds']:.0f} s"
                      f"{'' if rows[nb.stem]['ok'] else ' FAILED ' + rows[nb.stem]['error']}",
                      flush=True)
                res[b] = {"notebooks": dict(sorted(rows.items())),
                          "total_seconds": round(sum(v["seconds"] for v in rows.values()), 1),
                          "all_ok": all(v["ok"] for v in rows.values()),
                          "all_run": len(rows) == len(s["notebooks"])}
                _goals(res)
                r.save(complete=False)  # a checkpoint after every notebook
            if cache is not None:
                cache.cleanup()
    if tmp is not None:
        tmp.cleanup()
    return r.results


def rows(d: dict, results: dict | None = None) -> list[tuple]:
    """The results-table rows of course.json: slowest lab and whole course per full budget,
    the quick-budget notebooks, make test; each against its goal.

    Inputs: d, the parsed course.json; results (all parsed JSON files) is not used.
    Returns: [(measurement, goal, this course, compared)]; a budget not run has no rows, and
    one run on part of the notebooks says so ("not measured" where the goal needs them all).
    """
    r, goals = d["results"], d["settings"]["goals"]
    n_all = len(d["settings"]["notebooks"])
    out = []

    def status(b):
        v = r[b]
        done = "" if len(v["notebooks"]) == n_all else f", only {len(v['notebooks'])} of {n_all} run"
        return done + ("" if v["all_ok"] else ", with failures")

    for b, how in (("full", ""), ("full-1thread", ", 1 thread")):
        if b not in r:
            continue
        nbs = r[b]["notebooks"]
        # default threads: wall time; 1 thread: the kernels' CPU time (see one_thread_seconds)
        t = {k: (one_thread_seconds(v) if b == "full-1thread" else v["seconds"]) for k, v in nbs.items()}
        cpu = b == "full-1thread" and all(v.get("cpu_seconds") for v in nbs.values())
        slow = max(t, key=t.get)
        complete = len(nbs) == n_all
        met = max(t.values()) <= 60 * goals["lab_full_minutes"]
        total = sum(t.values())
        out.append((f"Slowest lab, full budget{how}", f"≤ {goals['lab_full_minutes']} min",
                    f"{minutes(t[slow])}{' of CPU' if cpu else ''} ({slow}, "
                    f"{_capability_words(row_capability(d, nbs[slow]))}{status(b)})",
                    goal_verdict(met) if complete or not met else "not measured"))
        out.append((f"Whole course, full budget{how}", f"≤ {goals['course_full_minutes']} min",
                    minutes(total) + (" of CPU" if cpu else "") + status(b),
                    goal_verdict(total <= 60 * goals["course_full_minutes"] and r[b]["all_ok"])
                    if complete else "not measured"))
    if "quick" in r:
        complete = len(r["quick"]["notebooks"]) == n_all
        out.append(("All notebooks, quick budget", f"≤ {goals['quick_suite_minutes']} min",
                    minutes(r["quick"]["total_seconds"]) + status("quick"),
                    goal_verdict(r["quick"]["suite_goal_met"] and r["quick"]["all_ok"])
                    if complete else "not measured"))
    if "make_test" in r:
        m = r["make_test"]
        out.append(("`make test`, whole suite (quick budget)",
                    f"≤ {goals['quick_suite_minutes']} min",
                    f"{minutes(m['seconds'])} ({m['summary']}; "
                    + (f"{minutes(m['cpu_seconds'])} of CPU; " if "cpu_seconds" in m else "")
                    + f"{_capability_words(row_capability(d, m))})",
                    goal_verdict(m["seconds"] <= 60 * goals["quick_suite_minutes"]
                                 and m["returncode"] == 0)))
    return out


def row_capability(d: dict, row: dict) -> str | None:
    """torch's CPU capability a row of the parsed course.json `d` was measured with: the row's
    own, else (a row kept by --update from before rows recorded it) the earlier run's, else
    the run's; None if the script that measured it did not record it."""
    if "cpu_capability" in row:
        return row["cpu_capability"]
    if "earlier_run" in d["results"]:
        return d["results"]["earlier_run"].get("cpu_capability")
    return d["env"].get("cpu_capability")


def _capability_words(cap: str | None) -> str:
    """'torch capability AVX2', or 'capability not recorded' (never guessed)."""
    return "capability not recorded" if cap is None else f"torch capability {cap}"


def _capabilities(d: dict) -> str:
    """The rows measured on another CPU kind than the run's (or with none recorded), for the
    conditions line: 'make test measured with capability not recorded; 03_x (full) measured
    with torch capability AVX512'; '' if every row shares the run's capability."""
    here, others = d["env"].get("cpu_capability"), {}
    rows = [(f"{nb} ({b})", row) for b in BUDGETS
            for nb, row in d["results"].get(b, {}).get("notebooks", {}).items()]
    if "make_test" in d["results"]:
        rows.append(("make test", d["results"]["make_test"]))
    for name, row in rows:
        cap = row_capability(d, row)
        if cap != here:
            others.setdefault(_capability_words(cap), []).append(name)
    return "; ".join(f"{', '.join(names)} measured with {words}"
                     for words, names in others.items())


def _kernel_threads(d: dict) -> str:
    """The notebook kernels' threads of course.json: the value of most rows, then the others
    with their notebooks and budgets ("torch default; 1 for 06_x (full, quick)")."""
    by_value = {}  # value -> {notebook: [budgets]}
    for b in ("full", "quick"):
        for nb, row in d["results"].get(b, {}).get("notebooks", {}).items():
            by_value.setdefault(str(row["kernel_threads"]), {}).setdefault(nb, []).append(b)
    if len(by_value) <= 1:
        return str(next(iter(by_value), d["settings"]["kernel_threads"]))
    common = max(by_value, key=lambda v: sum(len(bs) for bs in by_value[v].values()))
    others = [f"{v} for " + ", ".join(f"{nb} ({', '.join(bs)})" for nb, bs in by_nb.items())
              for v, by_nb in by_value.items() if v != common]
    return f"{common}; " + "; ".join(others)


def conditions(d: dict) -> str:
    """The kernels' threads, the kdlab cache and what an --update run re-measured, for the
    conditions line."""
    st, r = d["settings"], d["results"]
    parts = [f"notebook kernels: threads {_kernel_threads(d)}"
             + ("; 1 for the full budget at 1 thread (KDLAB_THREADS=1)" if "full-1thread" in r
                else ""), f"kdlab cache: {st['cache']}"]
    if _capabilities(d):
        parts.append(_capabilities(d))
    if r.get("remeasured"):
        parts.append(f"this run re-measured {', '.join(r['remeasured'])}; the other rows come "
                     f"from earlier runs, {_kept_rows_measured(r)}")
    return "; ".join(parts)


def _kept_rows_measured(r: dict) -> str:
    """When the rows an --update run kept were measured: 'measured 2026-12-06 06:19 to 06:38
    UTC'. A row without its own time (written before rows recorded it) dates from the
    earlier run the file records."""
    times = []
    for b in BUDGETS:
        for nb, row in r.get(b, {}).get("notebooks", {}).items():
            if f"{b} {nb}" not in r["remeasured"]:
                times.append(row.get("measured") or r["earlier_run"]["date"])
    if "make_test" in r and "make test" not in r["remeasured"]:
        times.append(r["make_test"].get("measured") or r["earlier_run"]["date"])
    first, last = (t[:16].replace("T", " ") for t in (min(times), max(times)))
    return (f"measured {first} UTC" if first == last else
            f"measured {first} to {last[11:] if last[:10] == first[:10] else last} UTC")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else minutes(seconds)


def one_thread_seconds(nb: dict) -> float:
    """The time of a 1-thread notebook row: its kernel's CPU seconds when recorded (what a
    shared machine does not inflate; on an idle one a 1-thread kernel's wall time), else wall."""
    return nb["cpu_seconds"] if nb.get("cpu_seconds") else nb["seconds"]


def lab_time(d: dict, stem: str) -> str:
    """The course-map cell for notebook `stem` from the parsed course.json `d`: full-budget
    (default threads: wall time; 1 thread: CPU time when recorded) and quick-budget wall time,
    each with the torch CPU capability it was measured with when recorded, or "not measured"."""
    parts = []
    for budget, label in (("full", ""), ("full-1thread", "1 thread "), ("quick", "quick budget ")):
        nb = d["results"].get(budget, {}).get("notebooks", {}).get(stem)
        if nb is None:
            continue
        if budget == "full-1thread" and nb.get("cpu_seconds"):
            text = f"{_duration(nb['cpu_seconds'])} of CPU"
        else:
            text = _duration(nb["seconds"])
        cap = nb.get("cpu_capability")
        parts.append(f"{label}{text}" + (f" ({cap})" if cap else "") + ("" if nb["ok"] else " (failed)"))
    return "; ".join(parts) or "not measured"


def main(argv=None) -> None:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--notebooks", type=Path, nargs="+", default=None,
                   help="default: solutions/NN_*.ipynb")
    p.add_argument("--budgets", nargs="+", choices=BUDGETS, default=["quick", "full"])
    p.add_argument("--skip-make-test", action="store_true", help="do not time make test")
    p.add_argument("--kernel-threads", type=int, default=None,
                   help="OMP_NUM_THREADS of the notebook kernels (default: torch's choice)")
    p.add_argument("--update", action="store_true",
                   help="re-measure only what is asked; keep the rest of the existing course.json")
    p.add_argument("--save-outputs", action="store_true",
                   help="write each full-budget notebook back with its outputs")
    p.add_argument("--fresh-cache", action="store_true",
                   help="each budget's notebooks run in order with a new empty kdlab cache, "
                        "and make test with one of its own (as on a fresh clone)")
    a = p.parse_args(argv)
    set_threads(a.threads)
    run(a.budget, a.out, a.notebooks, a.budgets, a.skip_make_test, a.kernel_threads, a.update,
        a.save_outputs, a.fresh_cache)
    if Path(a.out).resolve() == RESULTS.resolve():  # the READMEs show these rows: as run_all does
        print(f"{'updated' if render.update() else 'unchanged'}: README.md, benchmarks/README.md")


if __name__ == "__main__":
    sys.exit(main())
