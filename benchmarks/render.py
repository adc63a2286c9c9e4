"""Render the results tables from benchmarks/results/*.json.

The full table, with the conditions of every run, sits in benchmarks/README.md between
``<!-- bench:begin -->`` and ``<!-- bench:end -->``; the README's few headline rows (each
measured by the default ``make bench``) between ``<!-- headline:begin -->`` and
``<!-- headline:end -->``. ``python -m benchmarks.render`` rewrites those blocks and the last
cell (run time) of each course-map row that links a lab (``| [..](labs/NAME.ipynb) | ... |``),
and nothing else; ``--check`` exits with 1 if a file differs from what the JSON files give.
Benchmarks whose JSON is missing are left out.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from .catalog import BENCHMARKS, BY_NAME, names
from ._common import RESULTS, ROOT, cpu_conditions, minutes

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
HEAD_BEGIN, HEAD_END = "<!-- headline:begin -->", "<!-- headline:end -->"
README = ROOT / "README.md"
BENCH_README = ROOT / "benchmarks" / "README.md"
def load(results: Path = RESULTS) -> dict:
    """{benchmark name: parsed JSON} for every results/*.json."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(Path(results).glob("*.json"))}


def _conditions(name: str, d: dict) -> str:
    """The conditions line of benchmark `name`: budget, its own conditions, date, versions,
    machine, load and wall time."""
    e, ld = d["env"], d["load"]
    shared = ("shared machine, timings inflated" if d["load_note"].startswith("machine shared")
              else "quiet machine")
    budget = "" if d["budget"] == "full" else f" **{d['budget']} budget**,"
    if not d["complete"]:
        budget += " **run not finished**,"
    extra = BY_NAME[name].module().conditions(d)
    extra = f" {extra};" if extra else ""
    return (f"- `{name}.json`:{budget}{extra} {e['date'][:16].replace('T', ' ')} UTC, "
            f"torch {e['torch']}, threads {e['threads']}, {e['cpu_count']} CPUs ({e['machine']}), "
            f"{cpu_conditions(e)}, "
            f"load {ld['start'][0]:.1f} → {ld['end'][0]:.1f} ({shared}), "
            f"{_wall(d) / 60:.1f} min in all" + (
                f" ({d['results']['reused_seconds'] / 60:.1f} min of it the students of the earlier "
                "runs it resumed)" if d["results"].get("reused_seconds") else ""))


def _wall(d: dict) -> float:
    """Seconds a run took, with the students it reused from earlier (interrupted or parallel) runs."""
    return d["wall_seconds"] + d["results"].get("reused_seconds", 0)


def _rows(data: dict) -> tuple[list, list]:
    """(table rows, conditions lines) of the benchmarks present in `data`, in the table's order."""
    rows, notes = [], []
    for b in BENCHMARKS:
        if b.name in data:
            rows += b.module().rows(data[b.name], data)
            notes.append(_conditions(b.name, data[b.name]))
    return rows, notes


def headline_rows(data: dict) -> list:
    """The README's headline rows: those of each benchmark matching its ``headlines``, in order."""
    picked = []
    for b in BENCHMARKS:
        rows = b.module().rows(data[b.name], data) if b.name in data else []
        picked += [r for h in b.headlines for r in rows if re.match(h, r[0])]
    return picked


TABLE_HEAD = ["| Measurement | Paper / goal | This course | Compared with the paper / goal |",
              "|---|---|---|---|"]


def headline(results: Path = RESULTS) -> str:
    """The README's block: the headline rows of the benchmarks (``catalog.Benchmark.headlines``)."""
    picked = headline_rows(load(results))
    if not picked:
        return "No benchmark results yet: run `make bench`."
    return "\n".join(TABLE_HEAD + [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in picked])


def render(results: Path = RESULTS) -> str:
    """The full markdown block (table + conditions of each run) for the JSON files in `results`."""
    data = load(results)
    if not any(name in data for name in BY_NAME):
        return "No benchmark results yet: run `make bench`."
    rows, notes = _rows(data)
    lines = TABLE_HEAD + [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    png, what = BY_NAME["hinton_consistent"].module().FIGURE
    if (Path(results) / png).exists() and Path(results).resolve() == RESULTS.resolve():
        lines += ["", f"![{what}](results/{png})"]
    lines += ["", "Conditions of each run (from the JSON files in `benchmarks/results/`):", ""]
    lines += notes
    full = {name: _wall(d) for name, d in data.items()  # the catalog's runs (lm_* files are Lab 07's own records)
            if name in BY_NAME and d.get("budget") == "full"}
    default = names("default")
    short = sum(v for k, v in full.items() if k in default)
    lines += ["", f"On the full budget, the runs above took {minutes(sum(full.values()))} in all: "
                  f"{minutes(short)} for the {sum(k in default for k in full)} runs of `make bench`, "
                  f"the rest for `make bench-long` (wall times, without each run's wait for a "
                  "quiet machine)."]
    return "\n".join(lines)


LAB_ROW = re.compile(r"^\| \[[^]]*\]\(labs/([\w.-]+)\.ipynb\) \|")


def course_map(readme_text: str, results: Path = RESULTS) -> str:
    """`readme_text` with the last cell of every lab row set from course.json (if present)."""
    d = load(results).get("course")
    if d is None:
        return readme_text
    lines = []
    for line in readme_text.splitlines(keepends=True):
        m = LAB_ROW.match(line)
        if m:
            head = line.rstrip().removesuffix("|").rstrip().rpartition(" | ")[0]
            line = f"{head} | {BY_NAME['course'].module().lab_time(d, m.group(1))} |\n"
        lines.append(line)
    return "".join(lines)


def section(readme_text: str, begin: str = BEGIN, end: str = END) -> str:
    """The text between the markers; ValueError if the markers are missing."""
    if begin not in readme_text or end not in readme_text:
        raise ValueError(f"no {begin} ... {end} block; add both markers where the table goes")
    return readme_text.split(begin, 1)[1].split(end, 1)[0].strip("\n")


def _rendered(text: str, results: Path) -> str:
    """`text` with every block it has (full table, headline rows) and its course map rendered."""
    if BEGIN not in text and HEAD_BEGIN not in text:
        section(text)  # raises: a file to render needs one of the blocks
    for begin, end, make in ((BEGIN, END, render), (HEAD_BEGIN, HEAD_END, headline)):
        if begin in text:
            section(text, begin, end)
            head, rest = text.split(begin, 1)
            text = f"{head}{begin}\n{make(results)}\n{end}{rest.split(end, 1)[1]}"
    return course_map(text, results)


def update(readme: Path | None = None, results: Path = RESULTS) -> bool:
    """Rewrite the blocks of `readme` (default: README.md and benchmarks/README.md); return
    True if anything changed."""
    changed = False
    for path in [readme] if readme is not None else [README, BENCH_README]:
        text = Path(path).read_text()
        new = _rendered(text, results)
        if new != text:
            Path(path).write_text(new)
            changed = True
    return changed


def up_to_date(readme: Path | None = None, results: Path = RESULTS) -> bool:
    """True if the blocks and course-map times of `readme` (default: both files) match the JSON."""
    return all(_rendered(Path(p).read_text(), results) == Path(p).read_text()
               for p in ([readme] if readme is not None else [README, BENCH_README]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="exit 1 if the README is out of date")
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--readme", type=Path, default=None,
                   help="one file to render (default: README.md and benchmarks/README.md)")
    a = p.parse_args(argv)
    if a.check:
        ok = up_to_date(a.readme, a.results)
        print("results tables and course-map times are up to date" if ok else
              "a results table or the course-map times differ from the JSON: "
              "run python -m benchmarks.render")
        return 0 if ok else 1
    changed = update(a.readme, a.results)
    print(f"{'updated' if changed else 'unchanged'}: {a.readme or 'README.md, benchmarks/README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
