"""Shared machinery of the benchmarks: budgets, run conditions, the JSON they write, and the
wording of the table cells they render.

Every benchmark writes one JSON file ``<out>/<name>.json`` holding what it measured
("results"), with what settings ("settings", "budget"), and under which conditions
("env": torch version, threads, machine, the CPU's model, torch's CPU capability and the
instruction-set flags that pick its kernels, date; "load": ``os.getloadavg()`` at start and end,
and a "load_note" saying whether other work on the machine inflated the timings). Each
benchmark module also turns its JSON into the rows of the results table (``rows(d, results)``)
and the part of its conditions line only it knows (``conditions(d)``), with the helpers below.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BUDGETS = ("tiny", "full")


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark takes: --budget and --out."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--budget", choices=BUDGETS, default="full",
                   help="'full' for the real measurement, 'tiny' for a seconds-long smoke run")
    p.add_argument("--out", type=Path, default=RESULTS, help=f"folder for the JSON (default {RESULTS})")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice; 1 is much faster when other "
                        "work shares the cores)")
    return p


def set_threads(n: int | None) -> None:
    """Use n torch CPU threads (None keeps torch's default); the JSON records the number."""
    if n is not None:
        if n < 1:
            raise ValueError(f"--threads must be >= 1, got {n}")
        torch.set_num_threads(n)


def pick(budget: str, full, tiny):
    """The value of a setting for the chosen budget ('full' or 'tiny')."""
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {BUDGETS}, got {budget!r}")
    return full if budget == "full" else tiny


def _cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else platform.processor().

    Recorded because float results of the same seed differ between CPUs (MKL picks kernels
    per instruction set), and the difference grows over training."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: the /proc/cpuinfo flags that decide which kernels torch and its libraries run (x86: vector
#: widths, fused multiply-add, the AVX-512 and AMX extensions; ARM: NEON and SVE): machines
#: with the same model string ("AMD EPYC") differ in them and run 2x apart
CPU_FLAGS = ("fma", "avx2", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni",
             "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "amx_fp16",
             "asimd", "sve", "sve2")


def cpu_capability() -> str:
    """The instruction set torch's CPU kernels use here: 'AVX512', 'AVX2', 'DEFAULT', 'SVE256'...

    torch.backends.cpu.get_cpu_capability(), which honours ATEN_CPU_CAPABILITY. Two machines
    with the same CPU model string can differ in it, and with it in speed (about 2x between
    AVX2 and AVX-512 here) and in the last bits of float results."""
    return torch.backends.cpu.get_cpu_capability()


def cpu_flags(cpuinfo: str | None = None) -> list[str]:
    """The flags of CPU_FLAGS the CPU has, in that order ([] if none, or no /proc/cpuinfo).

    Inputs: cpuinfo, the text of /proc/cpuinfo (default: read it). The flags come from the
    first "flags" (x86) or "Features" (ARM) line."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return []
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            have = set(value.split())
            return [f for f in CPU_FLAGS if f in have]
    return []


def cpu_conditions(e: dict) -> str:
    """The CPU part of a conditions line from a run's env: 'CPU AMD EPYC (torch capability
    AVX2; flags fma avx2)'; a run made before the scripts recorded the capability says
    'capability not recorded' rather than guess it from the model."""
    cap, flags = e.get("cpu_capability"), e.get("cpu_flags")
    if cap is None and e["cpu_model"].startswith("model not recorded"):  # benchmarks.migrate's
        return "CPU model and capability not recorded (run before the scripts recorded them)"
    if cap is None:
        return f"CPU {e['cpu_model']} (capability not recorded)"
    return (f"CPU {e['cpu_model']} (torch capability {cap}; flags "
            f"{' '.join(flags) if flags else 'none'})")


def env() -> dict:
    """The conditions of a run: software versions, threads, machine (CPU model, torch's CPU
    capability, the instruction-set flags of CPU_FLAGS it has), date (UTC)."""
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_capability": cpu_capability(),
        "cpu_flags": cpu_flags(),
        "system": f"{platform.system()} {platform.release()}",
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


SETTLE_SECONDS = 240  # the longest a full-budget benchmark waits for an idle machine


# benchmarks whose own processes (notebook kernels, make test, busy spinners) add load beyond
# their threads: the end load says nothing about other work for them
SPAWNING = ("course", "grading", "threads")


def own_threads(name: str, threads: int) -> int | None:
    """The load a benchmark itself adds (its threads), or None if it spawns other processes."""
    return None if name in SPAWNING else threads


def load_note(start: list[float], end: list[float], threads: int | None = None,
              cores: int | None = None) -> str:
    """Say whether the timings are trustworthy, from the 1-minute load before and after.

    The load at the start is other people's work (ours has not begun); a value above a
    quarter of the cores means the run shared the CPU and its timings are inflated. At the
    end the load counts our own `threads` too: more than that plus a quarter of the cores
    means other work joined during the run. cores: the machine's CPU count (default: this
    machine's).
    """
    cores = cores or os.cpu_count() or 1
    if start[0] > 0.25 * cores:
        return (f"machine shared with other work: 1-min load {start[0]:.1f} at start on "
                f"{cores} cores (end {end[0]:.1f}), so wall times are inflated relative to an "
                "idle machine")
    if threads is not None and end[0] > threads + 0.25 * cores:
        return (f"machine shared with other work during the run: 1-min load {end[0]:.1f} at the "
                f"end on {cores} cores, above this run's {threads} thread(s) (start "
                f"{start[0]:.1f}), so wall times are inflated relative to an idle machine")
    return f"machine quiet at start (1-min load {start[0]:.1f} on {cores} cores)"


def wait_until_quiet(max_seconds: float, poll: float = 5.0) -> float:
    """Wait (at most max_seconds) until the 1-minute load is at most a quarter of the cores.

    The 1-minute load average lags: right after a benchmark ends it still counts that
    benchmark's work for a minute or two. Waiting lets the next benchmark start on a machine
    that is really idle, so that its load note reports other people's work, not our own.
    Returns the seconds waited.
    """
    limit, t0 = 0.25 * (os.cpu_count() or 1), time.perf_counter()
    load = os.getloadavg()[0]
    if load > limit and max_seconds > 0:
        print(f"waiting up to {max_seconds:.0f} s for the machine to settle "
              f"(1-min load {load:.2f}, waiting for <= {limit:.2f})", flush=True)
    while load > limit and time.perf_counter() - t0 < max_seconds:
        time.sleep(poll)
        load = os.getloadavg()[0]
    return time.perf_counter() - t0


class Run:
    """Context of one benchmark run: records load and wall time, then writes the JSON.

    Use::

        with Run("hinton", budget, settings, out) as run:
            run.results["teacher_errors"] = ...
    """

    def __init__(self, name: str, budget: str, settings: dict, out: Path = RESULTS,
                 title: str = ""):
        self.name, self.budget, self.settings, self.out = name, budget, settings, Path(out)
        self.title = title
        self.results: dict = {}
        self.complete = True  # a run may leave a checkpoint instead (complete: false)

    def __enter__(self):
        if self.budget == "full":
            self.waited = wait_until_quiet(SETTLE_SECONDS)
        self.env = env()
        self.load_start = list(os.getloadavg())
        self.t0 = time.perf_counter()
        return self

    def save(self, complete: bool = False) -> Path:
        """Write the JSON now; complete=False marks a checkpoint of a run still going on."""
        # the note is judged from the loads as stored, so that it can be judged again from the file
        start, end = ([round(v, 2) for v in ld] for ld in (self.load_start, os.getloadavg()))
        payload = {
            "benchmark": self.name,
            "title": self.title,
            "budget": self.budget,
            "complete": complete,
            "settings": self.settings,
            "results": self.results,
            "wall_seconds": round(time.perf_counter() - self.t0, 1),
            "env": self.env,
            "load": {"start": start, "end": end},
            "load_note": load_note(start, end, own_threads(self.name, self.env["threads"]),
                                   cores=self.env["cpu_count"]),
        }
        self.path = write(self.out, self.name, payload)
        return self.path

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            return False
        path = self.save(complete=self.complete)
        print(f"wrote {path}" + ("" if self.complete else " (a checkpoint, not a complete run)"))
        return False


def write(out: Path, name: str, payload: dict) -> Path:
    """Write payload as pretty JSON to out/name.json (atomically); return the path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    tmp = path.with_suffix(".json.part")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def timed(fn, *args, **kwargs):
    """Call fn(*args, **kwargs); return (its result, seconds of wall time)."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


# the wording of the results table (benchmarks.render), shared by every benchmark's rows()

def mean_std(d: dict, digits: int = 1) -> str:
    """'134.0 ± 7.5 (3 seeds)' from a summary {"mean", "std", "n_seeds"}; '91 (1 seed)'."""
    if d["n_seeds"] == 1:
        return f"{d['mean']:.0f} (1 seed)"
    return f"{d['mean']:.{digits}f} ± {d['std']:.{digits}f} ({d['n_seeds']} seeds)"


def goal_verdict(ok: bool) -> str:
    """The last column of a row with a goal of the course."""
    return "goal met" if ok else "goal missed"


def vs_paper(ours: float, paper: float, what: str = "errors") -> str:
    """The last column of a row compared with the paper: fewer / as many / more `what`.

    Fewer errors than the paper is not a match: the teacher and the recipe differ."""
    if ours < paper:
        return f"fewer {what} than the paper"
    return f"as many {what} as the paper" if ours == paper else f"more {what} than the paper"


def plural(n: int, what: str) -> str:
    """'1 epoch', '30 epochs'."""
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def minutes(seconds: float) -> str:
    """'7.8 min'."""
    return f"{seconds / 60:.1f} min"


def ratios(values: list[float]) -> str:
    """'1.04, 1.07, 1.01': per-round ratios, two decimals."""
    return ", ".join(f"{q:.2f}" for q in values)
