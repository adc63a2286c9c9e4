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
import statistics
import sys
from pathlib import Path

from . import hinton, kd_cost
from ._common import RESULTS, ROOT, load_note, own_threads

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
HEAD_BEGIN, HEAD_END = "<!-- headline:begin -->", "<!-- headline:end -->"
README = ROOT / "README.md"
BENCH_README = ROOT / "benchmarks" / "README.md"
#: the README's headline rows: the start of their measurement, all from the default make bench
HEADLINES = ("Slowest lab, full budget", "Whole course, full budget", "`make test`",
             "KD epoch, cached teacher logits vs labels only (HintonMLP)", "HintonMLP training",
             "Grading 20 submissions of 01_softmax_temperature")


def load(results: Path = RESULTS) -> dict:
    """{benchmark name: parsed JSON} for every results/*.json."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(Path(results).glob("*.json"))}


def _pm(d: dict, digits: int = 1) -> str:
    if d["n_seeds"] == 1:
        return f"{d['mean']:.0f} (1 seed)"
    return f"{d['mean']:.{digits}f} ± {d['std']:.{digits}f} ({d['n_seeds']} seeds)"


def _goal(ok: bool) -> str:
    """The last column of a row with a goal of the course."""
    return "goal met" if ok else "goal missed"


def _vs_paper(ours: float, paper: float, what: str = "errors") -> str:
    """The last column of a row compared with the paper: fewer / as many / more `what`.

    Fewer errors than the paper is not a match: the teacher and the recipe differ."""
    if ours < paper:
        return f"fewer {what} than the paper"
    return f"as many {what} as the paper" if ours == paper else f"more {what} than the paper"


def _n(n: int, what: str) -> str:
    """'1 epoch', '30 epochs'."""
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def _min(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def _hinton(d: dict) -> list[tuple]:
    r, p, s = d["results"], d["results"]["paper"], d["settings"]  # the paper's counts as recorded
    o = r["omit3"]
    removed_paper = 1 - p["soft_errors"] / p["labels_errors"]
    removed = 1 - r["soft"]["mean"] / r["labels"]["mean"]
    rows = [
        ("Teacher, test errors (of 10,000)", f"{p['teacher_errors']} (1200-1200 MLP, dropout)",
         f"{r['teacher_errors']} (our ResNet)",
         _vs_paper(r["teacher_errors"], p["teacher_errors"]) + " (another teacher)"),
        ("784-800-800-10 MLP trained on labels", str(p["labels_errors"]), _pm(r["labels"]),
         _vs_paper(r["labels"]["mean"], p["labels_errors"])),
        (f"same MLP on soft targets, T = {s['T']:g}", str(p["soft_errors"]), _pm(r["soft"]),
         _vs_paper(r["soft"]["mean"], p["soft_errors"])),
        ("errors removed by soft targets (1 - soft / labels)", f"{removed_paper:.0%}",
         f"{removed:.0%}", _vs_paper(round(removed, 2), round(removed_paper, 2),
                                     "errors removed")),
        ("distilled MLP that never saw a 3: errors (on 3s)",
         f"{p['omit3_errors']} ({p['omit3_errors_on_3s']})",
         f"{o['before']['mean']:.0f} ({o['before_on_3s']['mean']:.0f})",
         _vs_paper(o["before"]["mean"], p["omit3_errors"])),
        ("... after raising the class-3 bias: errors (on 3s), 3s right",
         f"+{p['omit3_bias']} (on test): {p['omit3_bias_errors']} ({p['omit3_bias_errors_on_3s']}), "
         f"{p['omit3_bias_3s_correct_pct']}%",
         f"+{o['bias']:.1f} (on train): {o['after']['mean']:.0f} ({o['after_on_3s']['mean']:.0f}), "
         f"{o['after_3s_correct_pct']:.1f}%",
         _vs_paper(o["after"]["mean"], p["omit3_bias_errors"])),
    ]
    return rows


def _teacher_verdict(mlp: dict, resnet: dict | None) -> str:
    """Which hypothesis the students' errors support: does the teacher's kind matter?

    The gap between the two teachers' students counts when it exceeds twice the larger seed
    std (the same rule as Lab 03's experiment 2)."""
    if resnet is None:
        return "no ResNet-teacher students to compare (run benchmarks.hinton)"
    gap = resnet["mean"] - mlp["mean"]
    noise = max(mlp["std"], resnet["std"])
    if gap > 2 * noise:
        return (f"MLP teacher's students make {gap:.1f} fewer errors (> 2 × seed std {noise:.1f}): "
                "the data support the hypothesis that the teacher's kind matters")
    if -gap > 2 * noise:
        return (f"MLP teacher's students make {-gap:.1f} more errors (> 2 × seed std {noise:.1f}): "
                "the data contradict the hypothesis that an MLP teacher explains the paper's 74")
    return (f"difference {gap:+.1f} errors is within 2 × seed std ({noise:.1f}): the data do not "
            "support the hypothesis that the teacher's kind explains the gap to the paper")


def _hinton_mlp_teacher(d: dict, resnet: dict | None = None) -> list[tuple]:
    r, t = d["results"], d["settings"]["teacher"]
    p = hinton.PAPER
    if "student" not in r:
        return []
    te = r["teacher"]
    recipe = (f"{t['hidden']}-{t['hidden']} MLP, dropout {t['dropout_in']:g}/{t['dropout']:g}, "
              f"max-norm {t['max_norm']:g}, ±{t['pixels']} px jitter, {_n(t['epochs'], 'epoch')}")
    rows = [(f"Paper's teacher, ours: {recipe}", f"{p['teacher_errors']} (goal ≤ {te['goal']})",
             str(te["errors"]), _goal(te["within_goal"]) + "; " + _vs_paper(te["errors"],
                                                                           p["teacher_errors"])),
            (f"800-800 MLP on soft targets, T = {d['settings']['students']['T']:g}, from that MLP "
             "teacher", str(p["soft_errors"]), _pm(r["student"]),
             _vs_paper(r["student"]["mean"], p["soft_errors"]))]
    rn = resnet["results"]["soft"] if resnet else None
    rows.append(("... the same students from the ResNet teacher (hinton.json) vs from the MLP "
                 "teacher", "-", (f"{_pm(rn)} vs {_pm(r['student'])}" if rn else "-"),
                 _teacher_verdict(r["student"], rn)))
    return rows


def _hinton_consistent(d: dict) -> list[tuple]:
    """The rows of the consistent-views run; a run not finished shows the parts it measured."""
    r, s = d["results"], d["settings"]
    k, ep = s["views"], s["epochs"]
    rows = []
    if "kd" in r:
        rows.append((f"800-800 MLP distilled on {k} cached jittered views per image (consistent), "
                     f"T = {s['T']:g}, {_n(ep, 'epoch')}", f"≤ {r['goal_errors']} (goal; paper 74)",
                     _pm(r["kd"]), _goal(r["within_goal_errors"])))
    if "labels" in r:
        rows.append((f"same MLP on the labels of the same views, {_n(ep, 'epoch')}", "-",
                     _pm(r["labels"]), "-"))
    if "k_curve" in r:
        rows.append((f"consistent views: errors vs views K (seed 0, {_n(s['k_curve_epochs'], 'epoch')})",
                     "-", "; ".join(f"K = {q['views']}: {q['errors']}" for q in r["k_curve"]), "-"))
    if "epochs_curve" in r:
        rows.append((f"consistent views: errors vs epochs (seed 0, K = {k})", "-",
                     "; ".join(f"{_n(q['epochs'], 'epoch')}: {q['errors']}" for q in r["epochs_curve"]),
                     "-"))
    if "epoch_cost" in r:
        c = r["epoch_cost"]
        n = len(c["ratio_by_round"])
        rounds = (f"median of {n} rounds, each views ÷ cached of the same round: "
                  f"{_ratios(c['ratio_by_round'])}" if n > 1 else "1 round")
        med_v = statistics.median(c["seconds"]["views"])
        med_c = statistics.median(c["seconds"]["cached"])
        rows.append((f"epoch on {k} cached views vs cached-KD epoch (un-jittered images)",
                     f"≤ {c['goal']:.1f}×", f"{c['ratio']:.2f}× ({rounds}; median epoch "
                     f"{med_v:.1f} s vs {med_c:.1f} s)", _goal(c["within_goal"])))
    if "kd_elastic" in r:
        alpha, sigma = s["elastic_field"]
        rows.append((f"800-800 MLP distilled on {k} cached elastic views per image (consistent: "
                     f"field alpha {alpha:g}, sigma {sigma:g} px, then the shift), same recipe",
                     f"≤ {r['goal_errors']} (goal; paper 74)", _pm(r["kd_elastic"]),
                     _goal(r["kd_elastic"]["within_goal_errors"])))
    return rows


def _hinton_variants(d: dict) -> list[tuple]:
    r = d["results"]
    if not r:
        return []
    paper = hinton.PAPER["soft_errors"]
    got = "; ".join(f"{name} {v['errors']}" for name, v in r.items())
    best = min(r, key=lambda name: r[name]["errors"])
    reached = [name for name, v in r.items() if v["errors"] <= paper]
    verdict = (f"{', '.join(reached)}: at most the paper's {paper} errors" if reached else
               f"none reaches the paper's {paper} errors (best: {best}, {r[best]['errors']})")
    return [(f"soft-target MLP, seed {d['settings']['seed']}, one recipe change at a time",
             str(paper), got, verdict)]


def _ratios(ratios: list[float]) -> str:
    return ", ".join(f"{q:.2f}" for q in ratios)


def _kd_cost(d: dict) -> list[tuple]:
    """Per student: cached and live KD epoch over the labels-only epoch of the same round."""
    rows = []
    for student, v in d["results"].items():
        if not isinstance(v, dict):
            continue
        a = v["all_seconds"]
        n = len(a["labels"])
        cached, live = kd_cost.paired(a, "cached"), kd_cost.paired(a, "live")
        med_c, med_l = statistics.median(cached), statistics.median(live)
        rounds = (f"median of {n} rounds, each cached ÷ labels of the same round: "
                  f"{_ratios(cached)}" if n > 1 else "1 round")
        rows.append((f"KD epoch, cached teacher logits vs labels only ({student})",
                     f"≤ {kd_cost.GOAL:.2f}×",
                     f"{med_c:.2f}× ({rounds}; median epoch {v['cached_seconds']:.1f} s vs "
                     f"{v['labels_seconds']:.1f} s)", _goal(med_c <= kd_cost.GOAL)))
        live_rounds = f"median of {n} rounds: {_ratios(live)}" if n > 1 else "1 round"
        rows.append((f"KD epoch, teacher run live vs labels only ({student})", "-",
                     f"{med_l:.2f}× ({live_rounds}; median epoch {v['live_seconds']:.1f} s)", "-"))
    return rows


def _course(d: dict) -> list[tuple]:
    r, goals = d["results"], d["settings"]["goals"]
    n_all = len(d["settings"]["notebooks"])
    rows = []

    def status(b):
        v = r[b]
        done = "" if len(v["notebooks"]) == n_all else f", only {len(v['notebooks'])} of {n_all} run"
        return done + ("" if v["all_ok"] else ", with failures")

    for b, how in (("full", ""), ("full-1thread", ", 1 thread")):
        if b not in r:
            continue
        nbs = r[b]["notebooks"]
        slow = max(nbs, key=lambda k: nbs[k]["seconds"])
        complete = len(nbs) == n_all
        met = r[b]["lab_goal_met"]
        rows.append((f"Slowest lab, full budget{how}", f"≤ {goals['lab_full_minutes']} min",
                     f"{_min(nbs[slow]['seconds'])} ({slow}{status(b)})",
                     _goal(met) if complete or not met else "not measured"))
        rows.append((f"Whole course, full budget{how}", f"≤ {goals['course_full_minutes']} min",
                     _min(r[b]["total_seconds"]) + status(b),
                     _goal(r[b]["course_goal_met"] and r[b]["all_ok"]) if complete
                     else "not measured"))
    if "quick" in r:
        complete = len(r["quick"]["notebooks"]) == n_all
        rows.append(("All notebooks, quick budget", f"≤ {goals['quick_suite_minutes']} min",
                     _min(r["quick"]["total_seconds"]) + status("quick"),
                     _goal(r["quick"]["suite_goal_met"] and r["quick"]["all_ok"]) if complete
                     else "not measured"))
    if "make_test" in r:
        m = r["make_test"]
        rows.append(("`make test`, whole suite (quick budget)",
                     f"≤ {goals['quick_suite_minutes']} min", f"{_min(m['seconds'])} ({m['summary']})",
                     _goal(m["seconds"] <= 60 * goals["quick_suite_minutes"] and m["returncode"] == 0)))
    return rows


def _throughput(d: dict) -> list[tuple]:
    r = d["results"]
    names = {"loader": "In-memory loader (`kd.data.Batches`)"}
    rows = []
    for key, v in r.items():
        if key in names:
            what = names[key]
        else:
            model, kind = key.rsplit("_", 1)
            what = f"{model} {kind}"
            if "macs" in v:
                what += f" ({v['params'] / 1e6:.2f} M params, {v['macs'] / 1e6:.1f} M MACs/image)"
        rows.append((what, "-", f"{v['images_per_s']:,} images/s (best {v['best_images_per_s']:,})",
                     "-"))
    return rows


def _threads(d: dict) -> list[tuple]:
    r, s = d["results"], d["settings"]
    med = {(q["busy"], q["threads"]): q["median_seconds"] for q in r["runs"]}
    top = max(s["busy"])
    quota = r["cgroup_cpu_quota"]
    choice = (f"`kd.train.threads()` here: {r['kdlab_choice_without_env']} "
              + (f"(the container's CPU quota, {quota:g} cores)" if quota else
                 "(no CPU quota: torch's default, as before; `KDLAB_THREADS=1` is the "
                 "alternative measured)"))
    return [(f"Lab 03 KD epoch ({s['n_train']:,} images) with {top} other busy processes: "
             "2 threads vs 1", "-",
             f"{med[(top, 2)]:.2f} s vs {med[(top, 1)]:.2f} s ({r['busy_two_over_one']:.2f}×); "
             f"idle: {med[(0, 2)]:.2f} s vs {med[(0, 1)]:.2f} s ({r['idle_two_over_one']:.2f}×)",
             choice)]


def _grading(d: dict) -> list[tuple]:
    rows = []
    for lab, v in d["results"].items():
        sb, ns = v["runs"]["sandbox"], v["runs"]["no_sandbox"]
        wall_sb = sum(x["wall_seconds"] for x in sb) / len(sb)
        wall_ns = sum(x["wall_seconds"] for x in ns) / len(ns)
        per = sum(x["seconds_per_notebook"] for x in sb) / len(sb)
        full = all(x["points"] == x["max_points"] for x in sb + ns)
        rows.append((f"Grading {d['settings']['submissions']} submissions of {lab}, sandboxed vs "
                     "`--no-sandbox` (2 at a time)", "sandbox costs ≤ 10%",
                     f"{wall_sb:.0f} s vs {wall_ns:.0f} s ({v['sandbox_cost']:+.0%}); "
                     f"{per:.1f} s per notebook" + ("" if full else "; NOT all full marks"),
                     _goal(v["sandbox_cost"] <= 0.10 and full)))
    return rows


SECTIONS = [("hinton", _hinton), ("hinton_mlp_teacher", _hinton_mlp_teacher),
            ("hinton_consistent", _hinton_consistent),
            ("hinton_variants", _hinton_variants), ("kd_cost", _kd_cost),
            ("course", _course), ("throughput", _throughput), ("threads", _threads), ("grading", _grading)]


def _view_logits(v: dict | None) -> str:
    """How the teacher's logits of the views were made, for the conditions line."""
    if not v:
        return "teacher logits of the views not recorded"
    made = (f"teacher logits of the {v['teacher_passes']:,} views computed in {v['seconds']:.0f} s "
            f"with {v['threads']} thread(s)")
    return made + (" (read from the cache in this run)" if v["source"] == "cache" else "")


def _kernel_threads(d: dict) -> str:
    """The notebook kernels' threads of course.json: the value of most rows, then the others
    with their notebooks and budgets ("torch default; 1 for 06_x (full, quick)")."""
    default = d["settings"].get("kernel_threads", "torch default")
    rows = {}  # value -> {notebook: [budgets]}
    for b in ("full", "quick"):
        for nb, row in d["results"].get(b, {}).get("notebooks", {}).items():
            rows.setdefault(str(row.get("kernel_threads", default)), {}).setdefault(nb, []).append(b)
    if len(rows) <= 1:
        return str(next(iter(rows), default))
    common = max(rows, key=lambda v: sum(len(bs) for bs in rows[v].values()))
    others = [f"{v} for " + ", ".join(f"{nb} ({', '.join(bs)})" for nb, bs in by_nb.items())
              for v, by_nb in rows.items() if v != common]
    return f"{common}; " + "; ".join(others)


def _conditions(name: str, d: dict) -> str:
    e, ld = d["env"], d["load"]
    # judged again from the recorded loads and threads (notes of older runs ignored the end load)
    note = load_note(ld["start"], ld["end"], own_threads(name, e["threads"]))
    shared = "shared machine, timings inflated" if note.startswith("machine shared") \
        else "quiet machine"
    budget = "" if d["budget"] == "full" else f" **{d['budget']} budget**,"
    if not d.get("complete", True):
        budget += " **run not finished**,"
    extra = ""
    if name == "hinton":
        s = d["settings"]
        extra = (f" epochs {s['epochs']}, seeds {s['seeds']} (omit-3s: {s['omit_seeds']}), batch {s['batch_size']}, {s['optimizer']} lr {s['lr']:g} "
                 f"cosine, alpha {s['alpha']:g}, class-3 bias chosen on the training set;"
                 f" {d['results']['soft']['seconds_per_run']:.0f} s per distilled run;")
    if name == "hinton_mlp_teacher":
        t, st = d["settings"]["teacher"], d["settings"]["students"]
        te = d["results"].get("teacher", {})
        extra = (f" teacher: {t['optimizer']} lr {t['lr']:g} one-cycle, batch {t['batch_size']}, "
                 f"{_n(t['epochs'], 'epoch')}, seed {t['seed']}, "
                 + (f"trained in {te['train_seconds'] / 60:.1f} min ({te['threads']} thread(s))"
                    + (", reused from the cache" if te.get("source") == "cache" else "")
                    if "train_seconds" in te else "not trained")
                 + f"; students: the recipe of hinton.json, seeds {st['seeds']};")
    if name == "hinton_consistent":
        s = d["settings"]
        extra = (f" {s['views']} views ({s['shift']}), view seed {s['view_seed']}; "
                 f"{s['optimizer']} lr {s['lr']:g} one-cycle, batch {s['batch_size']}, "
                 f"T {s['T']:g}, alpha {s['alpha']:g}; seeds {s['seeds']} (labels on views: "
                 f"{s['labels_seeds']}); {_view_logits(d['results'].get('view_logits'))};")
        if "elastic_view_logits" in d["results"]:
            extra += (f" elastic views: {s['elastic']}, seeds {s['elastic_seeds']}, "
                      f"{_view_logits(d['results']['elastic_view_logits'])};")
    if name == "hinton_variants":
        extra = (f" {len(d['results'])} students of {d['settings']['baseline']['epochs']} epochs"
                 f" (x2 for 'epochs x2'), seed {d['settings']['seed']};")
    if name == "course":
        st = d["settings"]
        extra = f" notebook kernels: threads {_kernel_threads(d)}"
        if "full-1thread" in d["results"]:
            extra += "; 1 for the full budget at 1 thread (KDLAB_THREADS=1)"
        extra += ";" + (f" kdlab cache: {st['cache']};" if "cache" in st else "")
        if d["results"].get("remeasured"):
            er = d["results"]["earlier_run"]
            extra += (f" this run re-measured {', '.join(d['results']['remeasured'])}; the other "
                      f"rows come from the run of {er['date'][:16].replace('T', ' ')} UTC (load "
                      f"{er['load']['start'][0]:.1f} → {er['load']['end'][0]:.1f});")
    if name == "throughput":
        s = d["settings"]
        if "training_timed" in s:
            extra = (f" training: {s['n_training']:,} images, {s['training_timed']}; "
                     f"{s['warmup']};")
        else:  # written before the training rate was timed like kd_cost's epoch
            extra = (f" training: whole `kd.train.fit` calls (model set-up included) on "
                     f"{s['n_training']:,} images, the first training of the process, no untimed "
                     "warm-up run; kd_cost's labels-only epoch times only the training loop, on "
                     "60,000 images, after a teacher pass: the two training rates were not "
                     "measured alike and do not compare (the scripts now time them the same way);")
    cpu = (f"CPU {e['cpu_model']}" if "cpu_model" in e
           else "CPU model not recorded (run before the scripts recorded it)")
    return (f"- `{name}.json`:{budget}{extra} {e['date'][:16].replace('T', ' ')} UTC, "
            f"torch {e['torch']}, threads {e['threads']}, {e['cpu_count']} CPUs ({e['machine']}), "
            f"{cpu}, "
            f"load {ld['start'][0]:.1f} → {ld['end'][0]:.1f} ({shared}), "
            f"{_wall(d) / 60:.1f} min in all" + (
                f" ({d['results']['reused_seconds'] / 60:.1f} min of it the students of the earlier "
                "runs it resumed)" if d["results"].get("reused_seconds") else ""))


def _wall(d: dict) -> float:
    """Seconds a run took, with the students it reused from earlier (interrupted or parallel) runs."""
    return d["wall_seconds"] + d["results"].get("reused_seconds", 0)


def _rows(data: dict) -> tuple[list, list]:
    """(table rows, conditions lines) of the benchmarks present in `data`."""
    rows, notes = [], []
    for name, fn in SECTIONS:
        if name in data:
            rows += (fn(data[name], data.get("hinton")) if name == "hinton_mlp_teacher"
                     else fn(data[name]))
            notes.append(_conditions(name, data[name]))
    return rows, notes


TABLE_HEAD = ["| Measurement | Paper / goal | This course | Compared with the paper / goal |",
              "|---|---|---|---|"]


def headline(results: Path = RESULTS) -> str:
    """The README's block: the rows of ``HEADLINES`` and where the rest is."""
    rows, _ = _rows(load(results))
    picked = [r for h in HEADLINES for r in rows if r[0].startswith(h)]
    if not picked:
        return "No benchmark results yet: run `make bench`."
    return "\n".join(TABLE_HEAD + [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in picked])


def render(results: Path = RESULTS) -> str:
    """The full markdown block (table + conditions of each run) for the JSON files in `results`."""
    data = load(results)
    if not any(name in data for name, _ in SECTIONS):
        return "No benchmark results yet: run `make bench`."
    rows, notes = _rows(data)
    lines = TABLE_HEAD + [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    for png, what in (("hinton_consistent.png", "Consistent views: errors vs views K and vs epochs"),):
        if (Path(results) / png).exists() and Path(results).resolve() == RESULTS.resolve():
            lines += ["", f"![{what}](results/{png})"]
    lines += ["", "Conditions of each run (from the JSON files in `benchmarks/results/`):", ""]
    lines += notes
    full = {name: _wall(d) for name, d in data.items() if d.get("budget") == "full"}
    from .run_all import DEFAULT
    short = sum(v for k, v in full.items() if k in DEFAULT)
    lines += ["", f"On the full budget, the runs above took {_min(sum(full.values()))} in all: "
                  f"{_min(short)} for the {sum(k in DEFAULT for k in full)} runs of `make bench`, "
                  f"the rest for `make bench-long` (wall times, without each run's wait for a "
                  "quiet machine)."]
    return "\n".join(lines)


LAB_ROW = re.compile(r"^\| \[[^]]*\]\(labs/([\w.-]+)\.ipynb\) \|")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else _min(seconds)


def lab_time(course: dict, stem: str) -> str:
    """The course-map cell for notebook `stem`: full-budget (default threads, then 1 thread)
    and quick-budget wall time."""
    parts = []
    for budget, label in (("full", ""), ("full-1thread", "1 thread "), ("quick", "quick budget ")):
        nb = course["results"].get(budget, {}).get("notebooks", {}).get(stem)
        if nb is not None:
            parts.append(f"{label}{_duration(nb['seconds'])}" + ("" if nb["ok"] else " (failed)"))
    return "; ".join(parts) or "not measured"


def course_map(readme_text: str, results: Path = RESULTS) -> str:
    """`readme_text` with the last cell of every lab row set from course.json (if present)."""
    course = load(results).get("course")
    if course is None:
        return readme_text
    lines = []
    for line in readme_text.splitlines(keepends=True):
        m = LAB_ROW.match(line)
        if m:
            head = line.rstrip().removesuffix("|").rstrip().rpartition(" | ")[0]
            line = f"{head} | {lab_time(course, m.group(1))} |\n"
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
